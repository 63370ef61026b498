"""``fastbook replay-many FILES... --out DIR``: many feed files on Dask, one Parquet dataset.

The subcommand's parser and its run (:func:`fastbook.dask.replay_many` does the work).
``cli.py`` adds it with :func:`add_parser` and dispatches ``args.command ==
"replay-many"`` to :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]

_EPILOG = """\
examples:
  fastbook replay-many data/*.NASDAQ_ITCH50.gz --out lob/ --every 1s --shards 4
  fastbook replay-many day1.itch day2.itch --out lob/ --every 1s --workers 2
  fastbook replay-many /shared/itch/*.gz --out /shared/lob --every 1s --scheduler tcp://10.0.0.5:8786

Every file becomes SHARDS tasks (one replay of the whole file each, keeping one shard
of the instruments' books). The samples are written to DIR/date=YYYY-MM-DD/symbol=SYM/
part-*.parquet, and DIR/_fastbook.json lists every file as complete or failed. The
exit status is 0 when every file is complete, 1 when one failed (its error is printed),
2 for bad arguments. Needs fastbook-lob[dask]; see docs/dask.md for a real cluster.
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(subparsers: Any, formatter_class: Any = argparse.RawDescriptionHelpFormatter
               ) -> argparse.ArgumentParser:
    """Add the ``replay-many`` subcommand to ``subparsers`` (an argparse subparsers action)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay-many", formatter_class=formatter_class, epilog=_EPILOG,
        help="replay many feed files on a Dask cluster into one Parquet dataset partitioned "
             "by date and symbol (needs fastbook-lob[dask])",
        description="Replay many feed files, N files x M instrument shards as Dask tasks, "
                    "into one hive-partitioned Parquet dataset.")
    p.add_argument("files", nargs="+", metavar="FILE", help="feed files (one codec for all)")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="the dataset's directory (new or empty)")
    p.add_argument("--codec", default="itch50", help="the files' codec (default itch50)")
    p.add_argument("--shards", type=_positive, default=1, metavar="M",
                   help="instrument shards per file: M tasks a file (default 1)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDR", default=None,
                       help="a running Dask scheduler (tcp://host:8786); default: a local "
                            "cluster")
    where.add_argument("--workers", type=_positive, default=None, metavar="N",
                       help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--every", required=True,
                   help="sampling rule: 1s, 100ms, 5000msgs, bbo (or a comma-separated mix)")
    p.add_argument("--depth", type=_positive, default=10, help="levels per side in samples")
    p.add_argument("--features", metavar="LIST", default=None,
                   help="feature columns in every sample row: mid,spread,microprice,...")
    p.add_argument("--skip-errors", action="store_true",
                   help="count and skip book errors instead of failing the file")
    p.add_argument("--dates", metavar="D1,D2,...", default=None,
                   help="the files' dates (YYYY-MM-DD: one for all, or one per file) when "
                        "the names hold none")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="the progress line (default: when stderr is a terminal)")
    return p


def _dates(text: str | None) -> Any:
    if text is None:
        return None
    dates = [d.strip() for d in text.split(",") if d.strip()]
    return dates[0] if len(dates) == 1 else dates


def run(args: argparse.Namespace) -> int:
    """Run ``fastbook replay-many``: 0 all complete, 1 a file failed, 2 bad input."""
    from fastbook._extras import MissingExtraError

    try:
        from fastbook.dask import replay_many

        client = None
        if args.scheduler is not None:
            from fastbook.dask import _distributed

            client = _distributed().Client(args.scheduler, timeout="30s")
        try:
            result = replay_many(args.files, args.codec, out=args.out, shards=args.shards,
                                 client=client, workers=args.workers, every=args.every,
                                 depth=args.depth, features=args.features,
                                 on_error="skip" if args.skip_errors else "raise",
                                 progress=args.progress,
                                 dates=_dates(args.dates))
        finally:
            if client is not None:
                client.close()
    except (ValueError, MissingExtraError, FileExistsError, FileNotFoundError) as exc:
        print(f"fastbook replay-many: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"fastbook replay-many: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0 if result.ok else 1
