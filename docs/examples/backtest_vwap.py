"""A VWAP executor on a synthetic ITCH day: buy a target quantity in step with the volume.

    python docs/examples/backtest_vwap.py [--messages 1000000] [--target 20000]

The TWAP executor of ``backtest_twap.py`` with another schedule: the share of the
target due by now is the share of the window's expected volume traded so far, as seen
through ``on_trade``. The expected volume is what traded in the same window of the
previous day (another synthetic day, another seed). Whatever is still due at the
window's end is crossed, as the TWAP does. The report compares the average fill price
with the market's VWAP over the window.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np

from fastbook.backtest import Context, Trade
from fastbook.events import Action, Flags

# the TWAP example's executor, loaded from the file next to this one
_spec = importlib.util.spec_from_file_location("backtest_twap",
                                               Path(__file__).with_name("backtest_twap.py"))
assert _spec is not None and _spec.loader is not None
twap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(twap)

NOT_VOLUME = int(Flags.CROSS) | int(Flags.NON_PRINTABLE)   # auction prints, bulk-printed later


def window_volume(events: np.ndarray, instrument: int, start: int, end: int) -> int:
    """What traded of ``instrument`` in [start, end) of a recorded day (as on_trade sees it)."""
    e = events[(events["instrument"] == instrument) & (events["ts_exchange"] >= start)
               & (events["ts_exchange"] < end)]
    trades = np.isin(e["action"], [int(Action.EXECUTE), int(Action.TRADE)]) \
        & (e["flags"] & NOT_VOLUME == 0)
    return int(e["qty"][trades].sum())


class VWAP(twap.Executor):
    """The TWAP executor, scheduled by the volume seen instead of the time elapsed."""

    def __init__(self, *args: Any, expected_volume: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.expected = expected_volume
        self.seen = 0               # volume in the window so far
        self.notional = 0           # and its price * qty, for the market's VWAP

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        if self.start <= trade.ts < self.end and not trade.flags & NOT_VOLUME:
            self.seen += trade.qty
            self.notional += trade.price * trade.qty

    def schedule(self, ctx: Context, now: int) -> int:
        if now >= self.end:
            return self.target
        return twap.lots(self.target * min(self.seen / self.expected, 1.0))

    def report(self, result: Any) -> dict[str, Any]:
        out = super().report(result)
        vwap = self.notional / self.seen / 10_000 if self.seen else math.nan
        out["market_vwap"] = vwap
        out["vs_vwap_bps"] = (out["avg_price"] - vwap) / vwap * 1e4
        out["window_volume"] = self.seen
        out["expected_volume"] = self.expected
        return out


def main(argv: list[str] | None = None) -> tuple[Any, VWAP]:
    args = twap.parse(argv, __doc__)
    start, end = int(args.start * twap.HOUR), int(args.end * twap.HOUR)
    yesterday, _ = twap.load_day(args.messages, 4, args.seed + 1)
    expected = window_volume(yesterday, args.instrument, start, end)
    events, books = twap.load_day(args.messages, 4, args.seed)
    vwap = VWAP(args.instrument, args.target, start, end, expected_volume=expected)
    result = twap.run(vwap, events, books, on_trade=True)
    twap.show(f"VWAP: buy {args.target:,} {books.instrument(args.instrument)['symbol']} "
              f"from {args.start:g}h to {args.end:g}h", vwap.report(result))
    return result, vwap


if __name__ == "__main__":
    main()
