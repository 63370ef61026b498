"""``fastbook plot FILE.parquet``: a depth heatmap or time series of a samples file, to PNG.

The subcommand's parser and its run (:mod:`fastbook.plot` draws). ``cli.py`` adds it
with :func:`add_parser` and dispatches ``args.command == "plot"`` to :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_parser", "run"]

_EPILOG = """\
examples:
  fastbook plot day.parquet --instrument AAPL --out aapl.png
  fastbook plot day.parquet --instrument AAPL --start 09:30 --end 10:00
  fastbook plot btc.parquet --series mid,spread,bid_qty_1 --out btc-series.png

The file is what `fastbook replay ... --output FILE.parquet` or
ReplayResult.to_parquet writes (its fastbook.instruments metadata gives the prices'
scales). Only the columns and row groups the picture needs are read, in batches.
"""


def add_parser(subparsers: Any, formatter_class: Any = argparse.RawDescriptionHelpFormatter
               ) -> argparse.ArgumentParser:
    """Add the ``plot`` subcommand to ``subparsers`` (an argparse subparsers action)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "plot", formatter_class=formatter_class, epilog=_EPILOG,
        help="draw a samples file (Parquet) as a depth heatmap or time series, to PNG "
             "(needs fastbook-lob[plot])",
        description="Draw a Parquet samples file as a depth heatmap with the best bid and "
                    "ask over it (the default), or as time series of chosen columns.")
    p.add_argument("file", metavar="FILE.parquet", help="a samples file")
    p.add_argument("--out", "-o", default=None, metavar="X.png",
                   help="the PNG to write (default: FILE with .png)")
    p.add_argument("--instrument", default=None, metavar="SYM",
                   help="symbol, venue:symbol or id (needed when the file holds several)")
    p.add_argument("--series", default=None, metavar="COL1,COL2",
                   help="draw these columns as time series instead of the heatmap (mid, "
                        "spread, bid_px_1, or feature columns such as microprice)")
    p.add_argument("--start", default=None,
                   help="from this time: HH:MM[:SS] on the file's day, ns, or an ISO "
                        "date-time (UTC)")
    p.add_argument("--end", default=None, help="to this time (as --start)")
    p.add_argument("--levels", type=int, default=None,
                   help="levels per side in the heatmap (default: all in the file)")
    p.add_argument("--linear", action="store_true",
                   help="linear colour scale of quantity (default: log)")
    p.add_argument("--width", type=int, default=None,
                   help="time bins (pixel columns) to aggregate to (default 800 for the "
                        "heatmap, 1000 for series)")
    p.add_argument("--dpi", type=int, default=100, help="PNG resolution")
    return p


def _figure_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"dpi": args.dpi}
    if args.width is not None:
        opts["width"] = args.width
    if args.series is None:
        opts["log"] = not args.linear
        if args.levels is not None:
            opts["levels"] = args.levels
    elif args.levels is not None or args.linear:
        raise ValueError("--levels and --linear are for the heatmap, not --series")
    return opts


def run(args: argparse.Namespace) -> int:
    """Run ``fastbook plot``: 0 when the PNG was written, 2 for bad input (said on stderr)."""
    from fastbook._extras import MissingExtraError
    from fastbook.plot import plot_file

    out = args.out or os.path.splitext(args.file)[0] + ".png"
    try:
        if not os.path.exists(args.file):
            raise ValueError(f"{args.file}: no such file")
        plot_file(args.file, out, kind="heatmap" if args.series is None else "series",
                  instrument=args.instrument, columns=args.series, start=args.start,
                  end=args.end, **_figure_options(args))
    except (ValueError, MissingExtraError) as exc:
        print(f"fastbook plot: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"fastbook plot: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0
