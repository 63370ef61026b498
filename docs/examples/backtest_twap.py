"""A TWAP executor on a synthetic ITCH day: buy a target quantity evenly over a window.

    python docs/examples/backtest_twap.py [--messages 1000000] [--target 20000]

The executor (``docs/backtest.md``, "Example: TWAP and VWAP executors") wakes every
``interval`` ns. Its schedule says how much should be bought by now, in whole lots.
When it is on schedule and the microprice is at or below the mid (sellers lean on
the book: a bid is likely to be hit), it joins the best bid with the next slice. When
it is more than ``slack`` slices behind, it crosses: its working orders are repriced
to the best ask, and a new order at the ask covers the rest of the shortfall.

Orders are good-till-cancel and never cancelled part-filled (a reprice keeps the
order), so every order is a whole number of lots and the fills add up to the target
exactly, unless the data ends or the deadline (``grace`` after the window) passes
first; the executor then says why in ``unfilled``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import fastbook as fb
from fastbook import synth
from fastbook.backtest import Context, Fees, Fill, Order, Strategy, backtest
from fastbook.codecs.itch50 import decode_events

BID, ASK = fb.BID, fb.ASK
LOT = 100
SECOND = 1_000_000_000
HOUR = 3600 * SECOND
FINISHED = ("filled", "cancelled", "rejected")


def load_day(messages: int, n_symbols: int, seed: int) -> tuple[Any, Any]:
    """A synthetic ITCH day, decoded, and books for its symbols (one cent, round lots)."""
    events, directory, _ = decode_events(synth.itch_day(messages, n_symbols=n_symbols,
                                                        seed=seed))
    books = fb.BookSet(on_error="stop")
    for d in directory:
        books.add_instrument(d["symbol"], price_decimals=4, tick_size=100, lot_size=LOT)
    return events, books


def lots(qty: float) -> int:
    """``qty`` rounded down to whole lots."""
    return int(qty // LOT) * LOT


class Executor(Strategy):
    """Buys ``target`` of ``instrument`` between ``start`` and ``end`` (exchange ns)."""

    def __init__(self, instrument: int, target: int, start: int, end: int, *,
                 interval: int = 30 * SECOND, slack: float = 2.0,
                 grace: int = 600 * SECOND) -> None:
        if target <= 0 or target % LOT:
            raise ValueError(f"target must be a positive multiple of {LOT}, got {target}")
        self.inst, self.target, self.start, self.end = instrument, target, start, end
        self.interval, self.grace = interval, grace
        n = max(1, math.ceil((end - start) / interval))
        self.slice = max(LOT, math.ceil(target / n / LOT) * LOT)
        self.slack = slack * self.slice
        self.live: dict[int, Order] = {}      # own orders not known to be finished
        self.busy: set[int] = set()           # a request is on its way
        self.filled = 0
        self.cost = 0                         # sum of price * qty (fixed point)
        self.crossings = 0
        self.arrival_mid: float | None = None
        self.unfilled = ""                    # why the target was not reached

    # the schedule: how much should be bought by ``now`` (a whole number of lots)
    def schedule(self, ctx: Context, now: int) -> int:
        frac = min(max((now - self.start) / (self.end - self.start), 0.0), 1.0)
        return lots(self.target * frac)

    def on_timer(self, ctx: Context, now: int) -> None:
        view = ctx.book(self.inst)
        if now < self.start or self.filled >= self.target or self.unfilled or view is None:
            return
        if self.arrival_mid is None:
            self.arrival_mid = view.mid
        if now > self.end + self.grace:
            for oid in list(self.live):
                ctx.cancel(oid)
            self.unfilled = f"{self.target - self.filled} not bought by the deadline"
            return
        bid, ask, micro, mid = view.best_bid, view.best_ask, view.microprice, view.mid
        working = sum(o.remaining for o in self.live.values())
        room = self.target - self.filled - working        # never buy more than the target
        behind = self.schedule(ctx, now) - self.filled
        if behind > self.slack or (now >= self.end and behind > 0):
            if ask is None:
                return
            self.crossings += 1
            for o in self.live.values():                  # reprice what works to the ask
                if o.id not in self.busy and o.px < ask:
                    ctx.modify(o.id, price=ask)
                    o.price = ask
                    self.busy.add(o.id)
            self.send(ctx, min(lots(behind - working), room), ask)
        elif micro is not None and mid is not None and bid is not None and micro <= mid:
            if working < self.slice:                      # join the bid with a slice
                self.send(ctx, min(self.slice, room), bid)

    def send(self, ctx: Context, qty: int, price: int) -> None:
        if qty > 0:
            oid = ctx.buy(self.inst, qty, price=price)
            self.live[oid] = ctx.order(oid)
            self.busy.add(oid)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.filled += fill.qty
        self.cost += fill.price * fill.qty
        o = self.live.get(fill.order_id)
        if o is not None:
            o.filled += fill.qty
            if o.remaining <= 0:
                del self.live[o.id]
                self.busy.discard(o.id)

    def on_order(self, ctx: Context, order: Order) -> None:
        self.busy.discard(order.id)
        if order.status in FINISHED:
            self.live.pop(order.id, None)
        elif order.id in self.live:
            self.live[order.id] = order

    def on_end(self, ctx: Context) -> None:
        if self.filled < self.target and not self.unfilled:
            self.unfilled = f"{self.target - self.filled} not bought when the data ended"

    def report(self, result: Any) -> dict[str, Any]:
        """The execution's figures and the backtest's summary."""
        s = result.summary()
        avg = self.cost / self.filled if self.filled else math.nan
        slip = (avg - self.arrival_mid) / self.arrival_mid * 1e4 \
            if self.arrival_mid and self.filled else math.nan
        return {"target": self.target, "filled": self.filled,
                "avg_price": avg / 10_000, "arrival_mid": (self.arrival_mid or math.nan) / 10_000,
                "slippage_bps": slip, "crossings": self.crossings,
                "unfilled": self.unfilled or "-", **{k: s[k] for k in (
                    "fills", "maker_fills", "taker_fills", "orders", "fees", "pnl")}}


def run(executor: Executor, events: Any, books: Any, **kw: Any) -> Any:
    return backtest(events, executor, books=books, instruments=[executor.inst],
                    timer=executor.interval, feed_latency=20_000, order_latency=50_000,
                    response_latency=50_000, fees=Fees(maker=-0.00002, taker=0.00003), **kw)


def show(title: str, report: dict[str, Any]) -> None:
    print(title)
    for k, v in report.items():
        print(f"  {k:16} {v:,.4f}" if isinstance(v, float) else f"  {k:16} {v:,}"
              if isinstance(v, int) else f"  {k:16} {v}")


def parse(argv: list[str] | None, doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--target", type=int, default=20_000, help="shares to buy")
    ap.add_argument("--instrument", type=int, default=0)
    ap.add_argument("--start", type=float, default=10.0, help="hour of the window's start")
    ap.add_argument("--end", type=float, default=15.0, help="hour of the window's end")
    ap.add_argument("--seed", type=int, default=20240607)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> tuple[Any, Executor]:
    args = parse(argv, __doc__)
    events, books = load_day(args.messages, 4, args.seed)
    twap = Executor(args.instrument, args.target, int(args.start * HOUR), int(args.end * HOUR))
    result = run(twap, events, books)
    show(f"TWAP: buy {args.target:,} {books.instrument(args.instrument)['symbol']} "
         f"from {args.start:g}h to {args.end:g}h", twap.report(result))
    return result, twap


if __name__ == "__main__":
    main()
