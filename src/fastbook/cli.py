"""The ``fastbook`` command line.

* ``fastbook demo`` generates a synthetic NASDAQ ITCH 5.0 day in memory, replays
  it into full order-by-order books, prints a few books and the throughput, and
  checks the result against the pure-Python reference (``--l2``: the L2 demo).
* ``fastbook replay FILE`` replays a recorded feed into books, with samples to
  Parquet / Arrow / CSV, LOBSTER files and a closing summary;
  ``fastbook replay CAPTURE [CAPTURE...] --codec binance-spot`` replays exchange
  L2 captures (merged in receive-time order) the same way.
* ``fastbook info FILE`` counts messages by type and lists symbols and the time
  range; on captures, records by kind, time range and per-connection counts.
* ``fastbook capture convert IN [IN...] OUT`` writes cryptofeed (or fastbook)
  captures as one fastbook capture.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import fastbook as fb


def _rate(n: int, seconds: float) -> str:
    per_s = n / seconds if seconds > 0 else float("inf")
    return f"{n:>11,} updates in {seconds:7.3f} s = {per_s / 1e6:6.1f} M updates/s " \
           f"({seconds / n * 1e9:5.0f} ns/update)"


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn(*args)
        return result, time.perf_counter() - t0
    finally:
        if gc_was_enabled:
            gc.enable()


def _per_call(book, sides: list[int], prices: list[int], qtys: list[int]) -> None:  # type: ignore[no-untyped-def]
    set_level = book.set
    for s, p, q in zip(sides, prices, qtys, strict=True):
        set_level(s, p, q)


def _top_every_100(book, sides, prices, qtys, out):  # type: ignore[no-untyped-def]
    set_level, top = book.set, book.top
    for i, (s, p, q) in enumerate(zip(sides, prices, qtys, strict=True)):
        set_level(s, p, q)
        if i % 100 == 0:
            top(10, out)


def _load(book_type, w):  # type: ignore[no-untyped-def]
    book = book_type(price_decimals=w.price_decimals, qty_decimals=w.qty_decimals, capacity=4096)
    book.apply(w.snapshot_sides, w.snapshot_prices, w.snapshot_qtys)
    return book


def _same(a, b) -> bool:  # type: ignore[no-untyped-def]
    return all(
        np.array_equal(x, y)
        for side in (fb.BID, fb.ASK)
        for x, y in zip(a.to_arrays(side), b.to_arrays(side), strict=True)
    )


def _book_state(books, i: int, depth: int):  # type: ignore[no-untyped-def]
    book = books[i]
    return book.order_count, book.top(depth).tolist(), books.instrument(i)["symbol"]


def itch_demo(messages: int, symbols: int, seed: int, depth: int, verify: int) -> int:
    """Generate a synthetic ITCH day in memory, replay it, show books and rate, verify."""
    from fastbook import _pyl3, synth
    from fastbook.codecs import _pyitch50, itch50
    from fastbook.driver import replay

    print(f"fastbook {fb.__version__} demo: a synthetic NASDAQ TotalView-ITCH 5.0 day, "
          f"{symbols} symbols, seed {seed}, "
          f"{'compiled core' if fb.COMPILED else 'pure-Python twin (FASTBOOK_NO_EXTENSIONS)'}")
    data, gen_s = _timed(lambda: synth.itch_day(messages, n_symbols=symbols, seed=seed))
    print(f"  generated {messages:,} messages ({len(data) / 1e6:.1f} MB, BinaryFILE framing) "
          f"in {gen_s:.2f} s")
    result = replay(data, "itch50", every="bbo", depth=depth, progress=False)
    print()
    print("  replay: decode + full order-by-order books for every symbol + a top-"
          f"{depth} sample on every BBO change")
    for line in result.summary().splitlines():
        print(f"    {line}")
    print("  (one run on this machine; `python -m pytest bench` measures properly)")

    books = result.books
    busiest = sorted(range(len(books)), key=lambda i: -books[i].order_count)[:3]
    for i in busiest:
        book = books[i]
        meta = books.instrument(i)
        print()
        print(f"  {meta['symbol']}: {book.order_count:,} live orders, "
              f"{book.depth(fb.BID):,} bid and {book.depth(fb.ASK):,} ask levels")
        top = book.top(depth)
        print(f"  {'level':>5}  {'bid qty':>9}  {'best bid':>10}  {'best ask':>10}  "
              f"{'ask qty':>9}")
        for k in range(depth):
            cells = [
                f"{int(top[1, k]):,}" if top[1, k] else "",
                book.format_price(int(top[0, k])) if top[1, k] else "",
                book.format_price(int(top[2, k])) if top[3, k] else "",
                f"{int(top[3, k]):,}" if top[3, k] else "",
            ]
            print(f"  {k + 1:>5}  {cells[0]:>9}  {cells[1]:>10}  {cells[2]:>10}  {cells[3]:>9}")

    # the same first messages through the pure-Python decoder and book, compared in full
    n_ref = min(verify, messages)
    small = synth.itch_day(n_ref, n_symbols=symbols, seed=seed)
    fast = replay(small, "itch50", every="bbo", depth=depth, progress=False)
    ref_books = _pyl3.BookSet()
    dec = itch50.Decoder(ref_books, kernel=_pyitch50)
    sampler = fb.Sampler(depth, on_bbo=True)
    for events in [*dec.feed(small), *dec.close()]:
        ref_books.apply(events, sampler=sampler)
    ok = len(ref_books) == len(fast.books) and all(
        _book_state(ref_books, i, depth) == _book_state(fast.books, i, depth)
        for i in range(len(ref_books)))
    ref_rows = sampler.columns()
    ok = ok and all(np.array_equal(ref_rows[k], fast.samples[k]) for k in ref_rows)
    print()
    print(f"  verified against the pure-Python decoder and books: {'OK' if ok else 'MISMATCH'} "
          f"(every book and all {len(ref_rows['ts']):,} samples of a {n_ref:,}-message day)")
    return 0 if ok else 1


def demo(updates: int, seed: int, depth: int, verify: int) -> int:
    from fastbook import _pycore, synth

    print(f"fastbook {fb.__version__} demo: synthetic L2 workload, seed {seed}, "
          f"{'compiled core' if fb.COMPILED else 'pure-Python twin (FASTBOOK_NO_EXTENSIONS)'}")
    w, gen_s = _timed(lambda: synth.l2_workload(updates, seed=seed))
    print(f"  generated a {len(w.snapshot_prices):,}-level snapshot and {len(w):,} updates "
          f"in {gen_s:.2f} s")
    sides, prices, qtys = w.sides.tolist(), w.prices.tolist(), w.qtys.tolist()

    per_call = _load(fb.Book, w)
    _, t_call = _timed(_per_call, per_call, sides, prices, qtys)
    batch = _load(fb.Book, w)
    _, t_batch = _timed(batch.apply, w.sides, w.prices, w.qtys)
    topped = _load(fb.Book, w)
    out = np.empty((4, 10), dtype=np.int64)
    _, t_top = _timed(_top_every_100, topped, sides, prices, qtys, out)
    print()
    print(f"  per-call Book.set from Python  {_rate(len(w), t_call)}")
    print(f"  set + top(10, out=) every 100  {_rate(len(w), t_top)}")
    print(f"  batch Book.apply, GIL released {_rate(len(w), t_batch)}")
    print("  (one run on this machine; `python -m pytest bench` measures properly)")

    book = batch
    print()
    print(f"  book after replay: {book.depth(fb.BID):,} bid levels, "
          f"{book.depth(fb.ASK):,} ask levels, spread {book.format_price(book.spread() or 0)}, "
          f"crossed: {book.is_crossed()}")
    top = book.top(depth)
    print(f"  {'level':>5}  {'bid qty':>10}  {'best bid':>10}  {'best ask':>10}  {'ask qty':>10}")
    for i in range(depth):
        cells = [
            book.format_qty(int(top[1, i])) if top[1, i] else "",
            book.format_price(int(top[0, i])) if top[1, i] else "",
            book.format_price(int(top[2, i])) if top[3, i] else "",
            book.format_qty(int(top[3, i])) if top[3, i] else "",
        ]
        print(f"  {i + 1:>5}  {cells[0]:>10}  {cells[1]:>10}  {cells[2]:>10}  {cells[3]:>10}")
    print()

    ok = _same(per_call, batch) and _same(topped, batch)
    print(f"  per-call, sampled and batch books identical: {'OK' if ok else 'MISMATCH'}")
    n_ref = min(verify, len(w))
    ref = _load(_pycore.Book, w)
    fast = _load(fb.Book, w)
    ref.apply(w.sides[:n_ref], w.prices[:n_ref], w.qtys[:n_ref])
    fast.apply(w.sides[:n_ref], w.prices[:n_ref], w.qtys[:n_ref])
    ref_ok = _same(ref, fast)
    ok = ok and ref_ok
    print(f"  verified against the pure-Python reference: {'OK' if ref_ok else 'MISMATCH'} "
          f"(every level after the first {n_ref:,} updates)")
    return 0 if ok else 1


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help with each option's default shown, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text \
                or not action.option_strings:
            return text
        return super()._get_help_string(action)


#: Framings of the binary stream codecs.
FRAMINGS = ["binaryfile", "moldudp64", "soupbintcp"]


def _codec_list() -> str:
    """Every replay codec, as the command line spells them (from the registry's names:
    help text must not import every codec module on each command)."""
    from fastbook import codecs
    from fastbook.driver import display_name

    stream = [display_name(c) for c in sorted(codecs.STREAM_CODECS)]
    l2 = [display_name(c) for c in sorted(codecs.L2_FEEDS)]
    return f"feed files: {', '.join(stream)}; L2 captures: {', '.join(l2)}"


def _codec_arg(text: str) -> str:
    """A --codec value as the registry's name (``ose-itch`` and ``ose_itch`` alike); a
    comma-separated list (one codec per capture, for --consolidate) keeps its commas."""
    from fastbook import codecs
    from fastbook.driver import codec_name, display_name

    if "," in text:
        return ",".join(_codec_arg(part.strip()) for part in text.split(","))
    name = codec_name(text)
    known = sorted((*codecs.STREAM_CODECS, *codecs.L2_FEEDS))
    if name not in known:
        raise argparse.ArgumentTypeError(
            f"unknown codec {text!r}; choose one of "
            f"{', '.join(display_name(c) for c in known)} (`fastbook codecs`)")
    return name


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    fmt = _Formatter
    parser = argparse.ArgumentParser(
        prog="fastbook", description="Exact, fast limit order books for Python.",
        formatter_class=fmt,
        epilog="Try it: `fastbook demo`, or `fastbook synth itch50 -o day.itch` then "
               "`fastbook replay day.itch --every 1s -o samples.parquet`.")
    parser.add_argument("--version", action="version", version=f"fastbook {fb.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo", formatter_class=fmt,
        help="replay a built-in synthetic ITCH day (or, with --l2, an L2 workload) and "
             "print books and throughput")
    p_demo.add_argument("--messages", type=int, default=2_000_000,
                        help="ITCH messages to generate")
    p_demo.add_argument("--symbols", type=int, default=50, help="ITCH symbols")
    p_demo.add_argument("--l2", action="store_true",
                        help="the L2 Book demo instead: a 2,000-level book and --updates")
    p_demo.add_argument("--updates", type=int, default=1_000_000,
                        help="with --l2: number of L2 updates")
    p_demo.add_argument("--seed", type=int, default=20240607, help="workload seed")
    p_demo.add_argument("--depth", type=int, default=5, help="levels to print per side")
    p_demo.add_argument("--live", action="store_true",
                        help="the live demo instead: the live table against the built-in "
                             "loopback exchange simulator, with faults healed (needs [live])")
    p_demo.add_argument("--duration", type=float, default=None,
                        help="with --live: seconds to run (default 10)")
    p_demo.add_argument("--verify", type=int, default=None,
                        help="messages (updates with --l2) of a separate, smaller day (the same "
                             "seed) to replay through the pure-Python reference too and compare "
                             "(default 50,000; 100,000 with --l2)")

    p_replay = sub.add_parser(
        "replay", formatter_class=fmt,
        help="replay a recorded feed file (or L2 captures) into books, with samples "
             "and a summary")
    p_replay.add_argument("file", nargs="+",
                          help="the feed file (plain, .gz or .zst; '-' for stdin), or one or "
                               "more captures of an L2 feed (merged in receive-time order)")
    p_replay.add_argument("--codec", default=None, type=_codec_arg,
                          help=f"the input's codec ({_codec_list()}); default: itch50 for a "
                               f"feed file, the codec in a fastbook capture's header")
    p_replay.add_argument("--symbols", help="comma-separated symbols to build books for, in the "
                                            "feed's own spelling (default: every symbol)")
    p_replay.add_argument("--depth", type=_positive, default=10, help="levels per side in samples")
    p_replay.add_argument("--every", help="sampling rule: 1s, 1.5s, 100ms, 5000msgs, bbo (or a "
                                          "comma-separated mix); no samples without it")
    p_replay.add_argument("-o", "--output", help="write samples to out.parquet, out.arrow "
                                                 "or out.csv as they are taken (needs --every)")
    p_replay.add_argument("--lobster", metavar="DIR", help="also write LOBSTER message and "
                                                           "orderbook files per symbol to DIR")
    p_replay.add_argument("--features", metavar="LIST",
                          help="feature columns in every sample row, computed in the apply "
                               "loop (needs --every): mid,spread,microprice,imbalance_5,"
                               "depth_bps_10,slope_5,walk_cost_100,ofi_5,trade_flow,"
                               "vpin_1000_50 (docs/features.md)")
    p_replay.add_argument("--trades", metavar="FILE",
                          help="write every trade print with its aggressor side to "
                               "FILE.parquet or FILE.csv")
    p_replay.add_argument("--workers", metavar="N", type=_workers_arg, default=None,
                          help="replay in N processes, the instruments sharded across them "
                               "(order-by-order feeds: itch50, ose-itch, jpx-csv); the same "
                               "result as one process; 'auto': one per core")
    p_replay.add_argument("--framing", default=None, choices=FRAMINGS,
                          help="framing of a binary feed file (default: the codec's, "
                               "binaryfile for ITCH)")
    p_replay.add_argument("--book-depth", type=_positive, default=None,
                          help="L2 feeds: the subscribed book depth the venue truncates to "
                               "(Kraken: 10, 25, 100, 500, 1000)")
    p_replay.add_argument("--instruments", metavar="FILE",
                          help="L2 feeds: the venue's instrument metadata (exchangeInfo, "
                               "products, AssetPairs... as JSON, or a capture of the REST "
                               "response) for the symbols' scales")
    out = p_replay.add_argument_group("sample columns (Parquet, Arrow and CSV output; the "
                                      "defaults are the exact fixed-point integers)")
    out.add_argument("--prices", choices=["int", "float"], default="int",
                     help="float: prices divided by each instrument's scale")
    out.add_argument("--quantities", choices=["int", "float"], default="int",
                     help="float: quantities divided by each instrument's scale")
    out.add_argument("--timestamps", choices=["int", "datetime"], default="int",
                     help="datetime: ts as a timestamp (ITCH counts from midnight: give "
                          "--date, or a file name holding its date)")
    out.add_argument("--date", metavar="YYYY-MM-DD",
                     help="the trading date of feeds timed from midnight")
    out.add_argument("--missing", choices=["zero", "nan"], default="zero",
                     help="nan: missing levels are null (NaN in pandas) instead of 0")
    out.add_argument("--reason", choices=["bits", "names"], default="bits",
                     help="names: the sampling rules that fired as text (every|bbo)")
    _consolidate_args(p_replay)
    p_replay.add_argument("--skip-errors", action="store_true",
                          help="count and skip book errors (unknown orders, over-executions) "
                               "and bad feed messages instead of stopping at the first")
    p_replay.add_argument("--top", type=int, default=3,
                          help="print the top of this many of the busiest books at the end")
    p_replay.add_argument("--no-progress", action="store_true",
                          help="no progress line (it is drawn only on a terminal anyway)")

    p_info = sub.add_parser("info", formatter_class=fmt,
                            help="message counts by type, symbols and time range; for "
                                 "captures, records by kind and connection")
    p_info.add_argument("file", nargs="+", help="the feed file (plain, .gz or .zst; '-' for "
                                                "stdin), or one or more captures")
    p_info.add_argument("--codec", default="itch50", type=_codec_arg,
                        help=f"codec of a feed file ({_codec_list()})")
    p_info.add_argument("--framing", default=None, choices=FRAMINGS,
                        help="framing of a binary feed file (default: the codec's)")
    p_info.add_argument("--no-progress", action="store_true",
                        help="no progress line (it is drawn only on a terminal anyway)")

    sub.add_parser("codecs", formatter_class=fmt,
                   help="list the replay codecs, one line each")

    p_synth = sub.add_parser(
        "synth", formatter_class=fmt,
        help="write a synthetic, book-consistent feed file to try the other commands on")
    p_synth.add_argument("kind", choices=["itch50", "ose-itch", "jpx-csv"],
                         help="itch50: a NASDAQ ITCH 5.0 day (BinaryFILE); ose-itch: an Osaka "
                              "Exchange ITCH day (BinaryFILE); jpx-csv: the same OSE day as "
                              "JPX CSV")
    p_synth.add_argument("-o", "--output", required=True,
                         help="the file to write (e.g. day.itch)")
    p_synth.add_argument("--messages", type=_positive, default=1_000_000,
                         help="messages in the day")
    p_synth.add_argument("--symbols", type=_positive, default=None,
                         help="itch50: symbols (default 50); ose-itch and jpx-csv: option "
                              "series besides the futures (default 12)")
    p_synth.add_argument("--seed", type=int, default=20240607, help="generator seed")

    from fastbook._live_cli import add_parsers as live_parsers

    live_parsers(sub, fmt)
    _server_parsers(sub, fmt)
    from fastbook._plot_cli import add_parser as plot_parser

    plot_parser(sub, fmt)
    from fastbook._archive_cli import add_parsers as archive_parsers

    archive_parsers(sub, fmt)
    from fastbook._dask_cli import add_parser as dask_parser

    dask_parser(sub, fmt)
    p_capture = sub.add_parser("capture", formatter_class=fmt, help="fastbook capture files")
    capture_sub = p_capture.add_subparsers(dest="capture_command", required=True)
    p_convert = capture_sub.add_parser(
        "convert", formatter_class=fmt,
        help="write cryptofeed (or fastbook) captures as one fastbook capture, "
             "merged in receive-time order")
    p_convert.add_argument("inputs", nargs="+", help="captures to convert")
    p_convert.add_argument("output", help="the fastbook capture to write (e.g. out.fbcap.zst)")
    p_convert.add_argument("--compression", default="auto", choices=["auto", "zstd", "none"],
                           help="zstd when the zstandard package is installed (auto), or not")
    p_convert.add_argument("--level", type=int, default=3, help="zstd level")
    p_convert.add_argument("--codec", type=_codec_arg,
                           help="record this replay codec in the header (fastbook replay then "
                                "needs no --codec)")
    return parser


def _accepts(fn, name: str) -> bool:  # type: ignore[no-untyped-def]
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _clock(ns: int) -> str:
    """ns since midnight as HH:MM:SS.nnnnnnnnn."""
    s, frac = divmod(ns, 1_000_000_000)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{frac:09d}"


def _print_books(books, n: int) -> None:  # type: ignore[no-untyped-def]
    busiest = sorted(range(len(books)), key=lambda i: -books[i].order_count)[:n]
    for i in busiest:
        book = books[i]
        meta = books.instrument(i)
        bid, ask = book.best_bid(), book.best_ask()
        text = [f"{book.format_qty(q)} @ {book.format_price(p)}" if lvl else "-"
                for lvl in (bid, ask) for p, q in [lvl or (0, 0)]]
        print(f"  {meta['symbol']:<10} {book.order_count:>8,} orders  bid {text[0]:<22} "
              f"ask {text[1]}")


def _inputs(files: list[str]) -> list[object]:
    """The input arguments, with ``-`` as a peekable stdin (sniffing must not consume it)."""
    from fastbook.sources import peekable

    if files.count("-") > 1:
        raise ValueError("'-' (standard input) can be given only once")
    return [peekable(f) if f == "-" else f for f in files]


def _capture_format(path: object) -> str | None:
    from fastbook import capture

    try:
        return capture.sniff(path)
    except (OSError, ValueError, ImportError):
        return None


def _default_codec(files: list[object]) -> str:
    """The codec for ``fastbook replay`` without --codec."""
    from fastbook import capture, codecs
    from fastbook.driver import codec_name, display_name

    fmt = _capture_format(files[0])
    name = getattr(files[0], "name", files[0])
    if fmt is None:
        return "itch50"
    if fmt == "fastbook":
        if isinstance(files[0], str):
            with capture.CaptureReader(files[0]) as reader:
                codec = reader.meta.get("codec")
        else:   # a peeked stream: the header is in its first bytes
            codec = _header_codec(files[0])
        if isinstance(codec, str):
            return codec_name(codec)
    l2 = [display_name(c) for c in codecs.available() if codecs.kind(c) == "l2"]
    raise ValueError(f"{name} is a capture: name its feed with --codec (one of "
                     f"{', '.join(l2) or 'none installed'})")


def _header_codec(stream) -> object:  # type: ignore[no-untyped-def]
    """The ``codec`` in the header of a fastbook capture on a peekable stream, or None."""
    from fastbook import capture

    head = stream.peek(1 << 20)
    try:
        with capture.CaptureReader(head) as reader:
            return reader.meta.get("codec")
    except (ValueError, OSError, ImportError):
        return None


#: Python keyword arguments in fastbook's messages, and the flags that set them here.
_FLAGS = {"every": "--every", "features": "--features", "trades": "--trades",
          "output": "--output", "symbols": "--symbols",
          "lobster": "--lobster", "instruments": "--instruments", "book_depth": "--book-depth",
          "depth": "--depth", "framing": "--framing", "on_error": "--skip-errors",
          "codec": "--codec", "date": "--date", "timestamps": "--timestamps",
          "prices": "--prices", "quantities": "--quantities", "missing": "--missing",
          "reason": "--reason"}


def _flagged(text: str) -> str:
    """A message with Python keyword arguments (``every=``) named as this command's flags."""
    import re

    def flag(m: re.Match[str]) -> str:
        return _FLAGS[m.group(1)]

    names = "|".join(_FLAGS)
    # timestamps='datetime' -> --timestamps datetime; every= -> --every
    text = re.sub(r"\b(" + names + r")='([^'\s]*)'",
                  lambda m: f"{_FLAGS[m.group(1)]} {m.group(2)}", text)
    return re.sub(r"\b(" + names + r")=(?=[\s),;:.]|$)", flag, text)


def _print_l2_books(result, n: int) -> None:  # type: ignore[no-untyped-def]
    feed = result.feed
    books = result.books
    ids = sorted(range(len(books)), key=lambda i: -feed.counts(books.instrument(i)["symbol"])
                 .get("applied", 0))[:n]
    for i in ids:
        book = books[i]
        symbol = books.instrument(i)["symbol"]
        bid, ask = book.best_bid(), book.best_ask()
        text = [f"{book.format_qty(q)} @ {book.format_price(p)}" if lvl else "-"
                for lvl in (bid, ask) for p, q in [lvl or (0, 0)]]
        state = feed.state(symbol).name.lower()
        print(f"  {symbol:<14} {state:<16} {book.depth(fb.BID):>5,} / {book.depth(fb.ASK):<5,} "
              f"levels  bid {text[0]:<28} ask {text[1]}")


def _consolidate_args(p: argparse.ArgumentParser, live: bool = False) -> None:
    """The options of a consolidated run (``replay`` of several venues' captures, or
    ``live``/``record`` of several venues' feeds)."""
    g = p.add_argument_group(
        "consolidated cross-venue view (" + ("the live books, shown under the table"
                                             if live else "several venues' captures merged "
                                             "by receive time") + "; docs/consolidated.md)")
    g.add_argument("--consolidate", nargs="?", const="", action="append", metavar="GROUP",
                   help="consolidate the books by product. Alone: every normalized symbol. "
                        "SYMBOL: only that one (repeatable). SYMBOL=VENUE:NATIVE,...: an "
                        "explicit group (repeatable), e.g. OMG/USD=binance-us:OMGBUSD,"
                        "kraken-v1:OMG/USD")
    g.add_argument("--quote-alias", action="append", default=[], metavar="CUR=CUR",
                   help="currencies to treat as one quote (BUSD=USD); repeatable")
    g.add_argument("--fee", action="append", default=[], metavar="VENUE=RATE",
                   help="a venue's taker fee rate (0.001 = 10 bps) over the defaults")
    g.add_argument("--stale-ms", type=float, default=None,
                   help="a venue's quotes leave the view this long after its last update "
                        "(default 5000)")
    g.add_argument("--min-profit-bps", default="0",
                   help="arbitrage rows need at least this profit after fees")
    g.add_argument("--max-age-ms", type=float, default=None,
                   help="arbitrage rows need both quotes at most this old")
    g.add_argument("--fixed-cost", default="0",
                   help="quote currency subtracted from every opportunity")
    if live:
        g.add_argument("--health", action="store_true",
                       help="watch each venue's health (stale, down, latency, error and "
                            "resync bursts) and show the alerts under the table")
        g.add_argument("--cbbo", metavar="FILE", default=None,
                       help="at the end, write the consolidated BBO changes to FILE.parquet "
                            "(or .arrow) and the arbitrage rows beside it")


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what} {v!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def consolidate_options(args: argparse.Namespace) -> dict[str, Any]:
    """``fb.replay``'s consolidated options from the command line's."""
    values = [v for v in args.consolidate if v]
    if not values:
        select: Any = True
    elif all("=" in v for v in values):
        select = {}
        for v in values:
            symbol, _, members = v.partition("=")
            select[symbol.strip()] = [m.strip() for m in members.split(",") if m.strip()]
    elif any("=" in v for v in values):
        raise ValueError("--consolidate: give symbols or SYMBOL=VENUE:NATIVE,... groups, "
                         "not both")
    else:
        select = [x.strip() for v in values for x in v.split(",") if x.strip()]
    ms = 1_000_000
    return {"consolidate": select, "quote_aliases": _pairs(args.quote_alias, "--quote-alias"),
            "fees": _pairs(args.fee, "--fee"),
            "stale_ns": None if args.stale_ms is None else int(args.stale_ms * ms),
            "max_age_ns": None if args.max_age_ms is None else int(args.max_age_ms * ms),
            "min_profit_bps": args.min_profit_bps, "fixed_cost": args.fixed_cost}


def consolidated_replay_command(args: argparse.Namespace) -> int:
    from fastbook.driver import replay
    from fastbook.errors import DecodeError, FastbookError, UpdateError

    if args.every is not None or args.lobster is not None:
        print("fastbook replay: --consolidate writes the consolidated BBO changes; --every "
              "and --lobster are for one venue's samples", file=sys.stderr)
        return 2
    try:
        options = consolidate_options(args)
        result = replay(args.file, args.codec, symbols=args.symbols,
                        on_error="skip" if args.skip_errors else "raise",
                        output=args.output, progress=False if args.no_progress else None,
                        instruments=args.instruments, book_depth=args.book_depth, **options)
    except BrokenPipeError:
        raise
    except (FastbookError, OSError, ValueError, ImportError, TypeError) as exc:
        print(f"fastbook replay: {exc}", file=sys.stderr)
        if isinstance(exc, (UpdateError, DecodeError)):
            print("  (use --skip-errors to count and skip bad messages)", file=sys.stderr)
        return 1
    print(result.summary())
    if args.output is not None:
        print(f"wrote {args.output} (consolidated BBO changes) and the arbitrage rows "
              f"beside it")
    return 0


def _workers_arg(text: str) -> int | str:
    """``--workers``: a positive int or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1, 2, ... "
                                          f"or auto)")
    return n


def replay_command(args: argparse.Namespace) -> int:
    import warnings

    if args.consolidate is not None:
        return consolidated_replay_command(args)

    from fastbook.driver import display_name, parse_every, replay
    from fastbook.errors import DecodeError, FastbookError, ReplayWarning, UpdateError

    l2 = False
    try:
        files = _inputs(args.file)
        from fastbook import codecs
        from fastbook.live._record import recording_meta

        # a live recording names its venues (a --codec that contradicts it is an error)
        live = len(files) == 1 and recording_meta(files[0]) is not None
        codec = args.codec if live else (args.codec or _default_codec(files))
        l2 = live or codecs.kind(codec) == "l2"
        if not l2 and len(args.file) > 1:
            raise ValueError(f"{display_name(codec)} replays one feed file; several files are "
                             f"for L2 captures")
        if args.every is not None:
            try:
                parse_every(args.every)
            except ValueError as exc:
                raise ValueError(f"--every {args.every}: {exc}") from None
        if args.output is not None and args.every is None:
            raise ValueError("--output needs a sampling rule: add --every (1s, 100ms, "
                             "5000msgs, bbo...)")
        if args.features is not None and args.every is None:
            raise ValueError("--features are columns of the samples: add --every (1s, 100ms, "
                             "5000msgs, bbo...)")
        if args.features is not None:
            from fastbook.features import parse_features

            try:
                parse_features(args.features)
            except ValueError as exc:
                raise ValueError(f"--features: {exc}") from None
        options: dict[str, object] = {
            "prices": args.prices, "quantities": args.quantities,
            "timestamps": args.timestamps, "date": args.date, "missing": args.missing,
            "reason": args.reason}
        if l2:
            options.update(instruments=args.instruments, book_depth=args.book_depth)
        else:
            if args.framing is not None:
                options["framing"] = args.framing
            if args.skip_errors and _accepts(codecs.load(codec).Decoder, "on_invalid"):
                options["on_invalid"] = "skip"      # bad messages too (J-GATE ITCH)
        with warnings.catch_warnings():
            # the summary says what a ReplayWarning says
            warnings.simplefilter("ignore", ReplayWarning)
            result = replay(
                files if l2 and not live else files[0], codec, symbols=args.symbols,
                depth=args.depth,
                every=args.every, on_error="skip" if args.skip_errors else "raise",
                output=args.output, progress=False if args.no_progress else None,
                lobster=args.lobster, features=args.features,
                trades=False if args.trades is None else args.trades,
                workers=args.workers, **options)
    except BrokenPipeError:
        raise
    except (FastbookError, OSError, ValueError, ImportError, TypeError) as exc:
        print(f"fastbook replay: {_flagged(str(exc))}", file=sys.stderr)
        if isinstance(exc, UpdateError) or (l2 and isinstance(exc, DecodeError)
                                            and "is empty" not in str(exc)):
            print("  (use --skip-errors to count and skip such events)", file=sys.stderr)
        return 1
    print(_flagged(result.summary()))
    if args.trades is not None:
        n = len(result.trades.get("ts", ()))
        print(f"{n:,} trade prints written to {args.trades}")
    if result.kind == "live":
        from fastbook.live._record import top_lines

        for line in top_lines(result, args.top):
            print(line)
    elif result.kind == "l2":
        resyncs = [n for n in result.notices if n.kind == "resync"]
        for notice in resyncs[:10]:
            print(f"  {notice}")
        if len(resyncs) > 10:
            print(f"  ... {len(resyncs) - 10:,} more resyncs (result.notices)")
        if args.top:
            _print_l2_books(result, args.top)
    elif args.top:
        _print_books(result.books, args.top)
    return 0


def _utc(ns: int) -> str:
    """ns since the epoch as an ISO UTC time."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f".{frac:09d}"


def capture_info(files: list[object], progress: bool | None = None) -> int:
    from fastbook import capture
    from fastbook.sources import Peekable

    names = capture.source_names(files)
    # a capture on stdin is read twice (header, then records): hold it in memory
    files = [f.read() if isinstance(f, Peekable) else f for f in files]
    info = capture.summarize(files, progress=progress)
    for name, fmt, meta in zip(names, info["formats"], info["meta"], strict=True):
        line = f"{name}: {fmt or 'fastbook'} capture"
        if meta:
            shown = {k: v for k, v in meta.items() if k != "created_ns"}
            line += " " + json.dumps(shown, sort_keys=True)
        print(line)
    print(f"{info['records']:,} records, {info['bytes']:,} payload bytes")
    if info["first_ns"] is not None:
        span = (info["last_ns"] - info["first_ns"]) / 1e9
        print(f"received from {_utc(info['first_ns'])} to {_utc(info['last_ns'])} UTC "
              f"({span:,.3f} s)")
    kinds = ", ".join(f"{k} {v:,}" for k, v in info["kinds"].items() if v)
    print(f"records by kind: {kinds or 'none'}")
    for conn, c in info["connections"].items():
        what = f"connection {conn}" if conn else "no connection (REST)"
        kinds = ", ".join(f"{k} {c[k]:,}" for k in capture.KINDS if c[k])
        print(f"  {what}: {c['records']:,} records, {c['bytes']:,} bytes ({kinds}), "
              f"{(c['last_ns'] - c['first_ns']) / 1e9:,.3f} s")
        if c["url"]:
            url = c["url"] if len(c["url"]) <= 100 else c["url"][:97] + "..."
            print(f"    {url}")
    for path, n in sorted(info["rest"].items()):
        print(f"  REST {path}: {n:,}")
    return 0


def info_command(args: argparse.Namespace) -> int:
    from fastbook.driver import scan
    from fastbook.errors import DecodeError

    try:
        files = _inputs(args.file)
        if _capture_format(files[0]) is not None:
            return capture_info(files, False if args.no_progress else None)
        if len(args.file) > 1:
            raise ValueError("several files are for captures; give one feed file")
        from fastbook import codecs

        framing = {} if args.framing is None else {"framing": args.framing}
        info = scan(files[0], args.codec, progress=False if args.no_progress else None,
                    **framing)
        epoch = getattr(codecs.load(args.codec), "TS_ORIGIN", "") == "epoch"
    except BrokenPipeError:
        raise
    except (DecodeError, OSError, ValueError, ImportError) as exc:
        print(f"fastbook info: {_flagged(str(exc))}", file=sys.stderr)
        return 1
    print(f"{info['messages']:,} messages, {info['bytes']:,} bytes, "
          f"{len(info['directory']):,} symbols")
    if info["first_ts"] is not None:
        clock = _utc if epoch else _clock
        print(f"book events from {clock(info['first_ts'])} to {clock(info['last_ts'])}"
              + (" UTC" if epoch else ""))
    width = max((len(t) for t in info["counts"]), default=1)
    for t, n in sorted(info["counts"].items(), key=lambda kv: -kv[1]):
        print(f"  {t:<{width}} {n:>14,}")
    symbols = [d["symbol"] for d in info["directory"]]
    shown = ", ".join(symbols[:20]) + (f", ... ({len(symbols) - 20} more)"
                                       if len(symbols) > 20 else "")
    if symbols:
        print(f"symbols: {shown}")
    return 0


def capture_command(args: argparse.Namespace) -> int:
    from fastbook import capture
    from fastbook.errors import DecodeError

    try:
        meta = {"codec": args.codec} if args.codec else None
        t0 = time.perf_counter()
        n = capture.convert(args.inputs, args.output, compression=args.compression,
                            level=args.level, meta=meta)
    except BrokenPipeError:
        raise
    except (DecodeError, OSError, ValueError, ImportError) as exc:
        print(f"fastbook capture convert: {exc}", file=sys.stderr)
        return 1
    import os

    size = os.path.getsize(args.output)
    print(f"{n:,} records from {len(args.inputs)} file(s) written to {args.output} "
          f"({size:,} bytes) in {time.perf_counter() - t0:.2f} s")
    return 0


def codecs_command() -> int:
    """One line per replay codec: its name, kind and what it reads."""
    from fastbook import codecs
    from fastbook.driver import display_name

    names = codecs.available()
    width = max(len(display_name(n)) for n in names)
    for kind, title in (("stream", "feed files"), ("l2", "L2 captures (--codec needed, "
                                                           "unless a fastbook capture names it)")):
        print(f"{title}:")
        for name in names:
            if codecs.kind(name) == kind:
                print(f"  {display_name(name):<{width}}  {_describe(codecs.load(name))}")
    return 0


def _describe(obj: object) -> str:
    """The first sentence of a codec's docstring, without reST markup, on one line."""
    import re

    doc = (obj.__doc__ or "").strip().split("\n\n", 1)[0]
    text = " ".join(doc.split()).replace("``", "")
    text = re.split(r"(?<=[.;])\s", text, maxsplit=1)[0].rstrip(".;:")
    return text if len(text) <= 100 else text[:97].rsplit(" ", 1)[0] + "..."


def synth_command(args: argparse.Namespace) -> int:
    from fastbook import synth
    from fastbook.driver import check_output

    t0 = time.perf_counter()
    try:
        path = check_output(args.output, "--output")
        if args.kind == "itch50":
            args.symbols = 50 if args.symbols is None else args.symbols
            if args.messages < 6 + 4 * args.symbols:
                raise ValueError(f"--messages must be at least 6 + 4 x --symbols "
                                 f"({6 + 4 * args.symbols:,})")
            n = synth.write_itch_day(path, args.messages, n_symbols=args.symbols,
                                     seed=args.seed)
            codec = "itch50"
        else:
            form = "csv" if args.kind == "jpx-csv" else "binaryfile"
            n = synth.write_ose_day(path, args.messages, form=form,
                                    n_options=12 if args.symbols is None else args.symbols,
                                    seed=args.seed)
            codec = args.kind
    except (OSError, ValueError) as exc:
        print(f"fastbook synth: {_flagged(str(exc))}", file=sys.stderr)
        return 1
    print(f"wrote a synthetic {args.kind} day of {args.messages:,} messages to {path} "
          f"({n:,} bytes) in {time.perf_counter() - t0:.2f} s")
    print(f"next: fastbook info {path}{'' if codec == 'itch50' else ' --codec ' + codec}; "
          f"fastbook replay {path}{'' if codec == 'itch50' else ' --codec ' + codec} "
          f"--every 1s -o samples.parquet")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status = _main(argv)
        sys.stdout.flush()      # here, where a closed pipe is caught, not at exit
        return status
    except KeyboardInterrupt:
        # Ctrl-C: the work stopped cleanly (workers stopped, no output left looking finished)
        print("\nfastbook: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`fastbook info day.itch | head`): stop quietly, and keep
        # Python's own flush at exit from failing on the closed pipe again
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141 if os.name == "posix" else 1


def _server_parsers(sub, fmt) -> None:  # type: ignore[no-untyped-def]
    """``fastbook serve`` and ``fastbook quotes`` (:mod:`fastbook.server._cli`)."""
    from fastbook.server._cli import add_parsers

    add_parsers(sub, fmt)


def server_command(args: argparse.Namespace) -> int:
    """Run ``fastbook serve`` or ``fastbook quotes``."""
    from fastbook.server._cli import quotes_command, serve_command

    return serve_command(args) if args.command == "serve" else quotes_command(args)


def _main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "codecs":
        return codecs_command()
    if args.command == "synth":
        return synth_command(args)
    if args.command == "demo" and args.live:
        from fastbook._live_demo import demo_command

        return demo_command(args)
    if args.command == "demo":
        verify = args.verify if args.verify is not None else 100_000 if args.l2 else 50_000
        if args.l2:
            if args.updates < 1 or args.depth < 1 or verify < 0:
                print("fastbook demo: --updates and --depth must be >= 1, --verify >= 0",
                      file=sys.stderr)
                return 2
            return demo(args.updates, args.seed, args.depth, verify)
        if args.symbols < 1 or args.depth < 1 or verify < 0 \
                or args.messages < 6 + 4 * args.symbols:
            print("fastbook demo: --symbols and --depth must be >= 1, --verify >= 0, and "
                  "--messages at least 6 + 4 x symbols", file=sys.stderr)
            return 2
        return itch_demo(args.messages, args.symbols, args.seed, args.depth,
                         max(verify, 6 + 4 * args.symbols))
    if args.command == "replay":
        return replay_command(args)
    if args.command in ("live", "record"):
        from fastbook._live_cli import live_command

        return live_command(args)
    if args.command == "plot":
        from fastbook._plot_cli import run as plot_run

        return plot_run(args)
    if args.command in ("archive", "book-at"):
        from fastbook._archive_cli import run as archive_run

        return archive_run(args)
    if args.command == "replay-many":
        from fastbook._dask_cli import run as dask_run

        return dask_run(args)
    if args.command in ("serve", "quotes"):
        return server_command(args)
    if args.command == "info":
        return info_command(args)
    if args.command == "capture":
        return capture_command(args)
    return 2  # pragma: no cover - argparse enforces a command
