"""``fastbook archive SOURCE OUT`` and ``fastbook book-at ARCHIVE SYMBOL TIME``.

The subcommands' parsers and their run (:mod:`fastbook.archive` does the work).
``cli.py`` adds them with :func:`add_parsers` and dispatches ``args.command`` in
:data:`COMMANDS` to :func:`run`.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

__all__ = ["COMMANDS", "add_parsers", "parse_time", "run"]

#: The subcommands this module adds.
COMMANDS = ("archive", "book-at")

_ARCHIVE_EPILOG = """\
examples:
  fastbook archive day.itch day.fba                   # checkpoints every 1 s
  fastbook archive day.itch day.fba --checkpoint 5000 # every 5000 events of a book
  fastbook archive capture.fbcap btc.fba --codec binance-spot --compression zlib

The archive holds every event plus checkpoints of each book (docs/archive.md); it is
written to OUT.partial and renamed to OUT only when the replay succeeded.
"""

_BOOK_AT_EPILOG = """\
examples:
  fastbook book-at day.fba AAPL 10:30            # ITCH: a time of day on the feed's clock
  fastbook book-at day.fba AAPL 10:30:00.000125 --depth 5 --orders
  fastbook book-at btc.fba BTCUSDT 2024-06-07T12:00:00Z
  fastbook book-at day.fba AAPL 37800000000000   # ns on the feed's clock

The book is the one after every event of the symbol before its first event later than
TIME (docs/archive.md); before its first event it is empty.
"""


def add_parsers(subparsers: Any, formatter_class: Any = argparse.RawDescriptionHelpFormatter
                ) -> None:
    """Add ``archive`` and ``book-at`` to ``subparsers`` (an argparse subparsers action)."""
    from fastbook.cli import _codec_arg

    p = subparsers.add_parser(
        "archive", formatter_class=formatter_class, epilog=_ARCHIVE_EPILOG,
        help="replay a feed into an archive: every event plus periodic book checkpoints, "
             "for book-at",
        description="Replay SOURCE and write an archive of it to OUT (fastbook.archive).")
    p.add_argument("source", nargs="+", metavar="SOURCE",
                   help="the feed file, or L2 captures (as for fastbook replay)")
    p.add_argument("out", metavar="OUT", help="the archive to write")
    p.add_argument("--codec", default=None, type=_codec_arg,
                   help="the input's codec (as for fastbook replay; default: itch50 for a "
                        "feed file, the codec in a fastbook capture's header)")
    p.add_argument("--checkpoint", default="1s",
                   help="a time of exchange clock (1s, 250ms) or a number of events per "
                        "book between checkpoints (default 1s)")
    p.add_argument("--compression", default="auto", choices=("auto", "zstd", "zlib"),
                   help="block compression (auto: zstd when zstandard is installed)")
    p.add_argument("--min-events", type=int, default=1024,
                   help="time checkpoints: at least this many events per block (default 1024)")
    p.add_argument("--symbols", default=None, help="comma-separated symbols to archive")
    p.add_argument("--on-error", default="raise", choices=("raise", "skip"),
                   help="as for fastbook replay")
    q = subparsers.add_parser(
        "book-at", formatter_class=formatter_class, epilog=_BOOK_AT_EPILOG,
        help="print the book of a symbol at a time, from an archive",
        description="Print the exact book of SYMBOL as of TIME from ARCHIVE.")
    q.add_argument("archive", metavar="ARCHIVE", help="an archive (fastbook archive)")
    q.add_argument("symbol", metavar="SYMBOL", help="the symbol, as the feed spells it")
    q.add_argument("time", metavar="TIME",
                   help="ns on the feed's clock, HH:MM[:SS[.fraction]] (feeds timed from "
                        "midnight) or an ISO date-time (feeds timed from the epoch, UTC)")
    q.add_argument("--depth", type=int, default=10, help="levels per side (default 10)")
    q.add_argument("--orders", action="store_true",
                   help="also list each level's orders in queue order (L3 books)")


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$")


def parse_time(text: str, ts_origin: str) -> int:
    """``text`` as int ns on a feed's clock: digits are ns; ``HH:MM[:SS[.f]]`` is a time
    of day (a feed timed from midnight); else an ISO date-time, UTC unless it says (a
    feed timed from the epoch)."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    m = _CLOCK.match(text)
    if m is not None:
        if ts_origin == "epoch":
            raise ValueError(f"time {text!r}: this archive's clock counts from the epoch; "
                             f"give a date-time (2024-06-07T12:00:00Z) or ns")
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        frac = (m.group(4) or "").ljust(9, "0")
        return ((h * 60 + mi) * 60 + s) * 10**9 + int(frac or 0)
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}: give ns, HH:MM[:SS[.fraction]] or "
                         f"an ISO date-time") from None
    if ts_origin == "midnight":
        raise ValueError(f"time {text!r}: this archive's clock counts from midnight; give "
                         f"HH:MM[:SS[.fraction]] or ns")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = when - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def _archive(args: argparse.Namespace) -> int:
    import fastbook as fb
    from fastbook.archive import Target
    from fastbook.cli import _default_codec, _inputs

    files = _inputs(args.source)
    codec = args.codec or _default_codec(files)
    source: Any = files[0] if len(files) == 1 else files
    checkpoint: Any = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
    result = fb.replay(source, codec, symbols=args.symbols, on_error=args.on_error,
                       archive=Target(args.out, codec=args.compression,
                                      min_events=args.min_events),
                       checkpoint=checkpoint, progress=None)
    from fastbook.archive import open as open_archive

    with open_archive(args.out) as archive:
        print(f"{args.out}: {len(archive):,} events of {len(archive.instruments):,} "
              f"instruments in {archive.header['blocks']:,} blocks ({archive.codec}), "
              f"from {result.messages:,} messages")
    return 0


def _book_lines(book: Any, depth: int, orders: bool) -> list[str]:
    lines = []
    for side, name in ((1, "bids"), (2, "asks")):
        prices, qtys = book.to_arrays(side)
        lines.append(f"{name} ({len(prices):,} levels):")
        for p, q in zip(prices[:depth].tolist(), qtys[:depth].tolist(), strict=True):
            row = f"  {book.format_qty(q):>16} @ {book.format_price(p)}"
            if orders and hasattr(book, "orders_at"):
                queue = book.orders_at(side, p)
                row += "   " + " ".join(f"{oid}:{book.format_qty(n)}" for oid, n in queue)
            lines.append(row)
    return lines


def _book_at(args: argparse.Namespace) -> int:
    from fastbook.archive import open as open_archive

    with open_archive(args.archive) as archive:
        t = parse_time(args.time, archive.ts_origin)
        book = archive.book_at(args.symbol, t)
        kind = "orders" if hasattr(book, "orders") else "levels"
        count = book.order_count if kind == "orders" else \
            book.depth(1) + book.depth(2)
        print(f"{args.symbol} as of {t} ns ({args.time}): {count:,} {kind}, "
              f"best bid {_best(book, book.best_bid())}, best ask {_best(book, book.best_ask())}")
        print("\n".join(_book_lines(book, args.depth, args.orders)))
    return 0


def _best(book: Any, level: tuple[int, int] | None) -> str:
    if level is None:
        return "-"
    return f"{book.format_qty(level[1])} @ {book.format_price(level[0])}"


def run(args: argparse.Namespace) -> int:
    """Run ``archive`` or ``book-at``: 0 on success, 2 for bad input, 1 for I/O errors."""
    from fastbook._extras import MissingExtraError

    name = f"fastbook {args.command}"
    try:
        return _archive(args) if args.command == "archive" else _book_at(args)
    except KeyError as exc:
        print(f"{name}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except (ValueError, MissingExtraError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
