"""A market maker on a synthetic ITCH day: quotes around the microprice, skewed by inventory.

    python docs/examples/backtest_market_maker.py [--messages 1000000] [--symbols 2]

The strategy (``docs/backtest.md``, "Example: a market maker") keeps one bid and one ask
on each traded instrument, ``EDGE`` ticks either side of a reservation price: the
microprice moved against the inventory by up to ``SKEW`` ticks. It never lets its
position, counting every order not yet known to be finished, pass ``LIMIT`` shares
either way. It quotes from 09:35 to 15:55 (exchange time) and then cancels its quotes;
what it still holds is marked at the mid.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import fastbook as fb
from fastbook import synth
from fastbook.backtest import BookView, Context, Fees, Fill, Order, Strategy, backtest
from fastbook.codecs.itch50 import decode_events

BID, ASK = fb.BID, fb.ASK
TICK = 100                               # one cent at price_decimals=4
HOUR = 3_600_000_000_000                 # ns
OPEN, CLOSE = 9 * HOUR + 35 * HOUR // 60, 15 * HOUR + 55 * HOUR // 60
FINISHED = ("filled", "cancelled", "rejected")


def load_day(messages: int, n_symbols: int, seed: int) -> tuple[Any, Any]:
    """A synthetic ITCH day, decoded, and books for its symbols (one cent, round lots)."""
    events, directory, _ = decode_events(synth.itch_day(messages, n_symbols=n_symbols,
                                                        seed=seed))
    books = fb.BookSet(on_error="stop")
    for d in directory:
        books.add_instrument(d["symbol"], price_decimals=4, tick_size=100, lot_size=100)
    return events, books


class MarketMaker(Strategy):
    """One bid and one ask per instrument around an inventory-skewed microprice."""

    def __init__(self, size: int = 200, limit: int = 1_000, edge: float = 0.5,
                 skew: float = 2.0) -> None:
        self.size, self.limit, self.edge, self.skew = size, limit, edge, skew
        self.quotes: dict[tuple[int, int], int] = {}   # (instrument, side) -> order id
        self.live: dict[int, Order] = {}               # orders not known to be finished
        self.busy: set[int] = set()                    # a request is on its way
        self.peak: dict[int, int] = {}                 # the largest |position| seen

    def exposure(self, ctx: Context, inst: int, side: int) -> int:
        """The position if every live order of ``side`` filled."""
        pos = ctx.position(inst)
        working = sum(o.remaining for o in self.live.values()
                      if o.instrument == inst and o.side == side)
        return pos + working if side == BID else pos - working

    def on_book(self, ctx: Context, view: BookView) -> None:
        inst = view.instrument
        micro, bid, ask = view.microprice, view.best_bid, view.best_ask
        if micro is None or bid is None or ask is None:
            return
        quoting = OPEN <= ctx.now < CLOSE
        # the microprice, moved against the inventory by up to `skew` ticks
        reservation = micro - self.skew * TICK * ctx.position(inst) / self.limit
        want = {
            # never through the other side as seen: the quotes are passive when sent
            BID: min(math.floor(reservation / TICK - self.edge) * TICK, ask - TICK),
            ASK: max(math.ceil(reservation / TICK + self.edge) * TICK, bid + TICK),
        }
        for side, price in want.items():
            oid = self.quotes.get((inst, side))
            if oid is not None and oid in self.busy:
                continue
            if not quoting:
                if oid is not None:
                    ctx.cancel(oid)
                    self.busy.add(oid)
                continue
            if oid is None:
                # the position if every live order of this side filled stays in bounds
                exposure = self.exposure(ctx, inst, side)
                room = self.limit - exposure if side == BID else self.limit + exposure
                qty = min(self.size, room // 100 * 100)
                if qty > 0:
                    new = ctx.submit(inst, side, qty, price)
                    self.quotes[(inst, side)] = new
                    self.live[new] = ctx.order(new)
                    self.busy.add(new)
            elif self.live[oid].price != price:
                ctx.modify(oid, price=price)
                self.live[oid].price = price
                self.busy.add(oid)

    def on_order(self, ctx: Context, order: Order) -> None:
        self.busy.discard(order.id)
        if order.status in FINISHED:
            self.forget(order)
        elif order.id in self.live:
            self.live[order.id] = order

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        inst = fill.instrument
        self.peak[inst] = max(self.peak.get(inst, 0), abs(ctx.position(inst)))
        o = self.live.get(fill.order_id)
        if o is not None:
            o.filled += fill.qty
            if o.remaining <= 0:
                self.busy.discard(o.id)
                self.forget(o)

    def forget(self, order: Order) -> None:
        self.live.pop(order.id, None)
        key = (order.instrument, order.side)
        if self.quotes.get(key) == order.id:
            del self.quotes[key]


def main(argv: list[str] | None = None) -> tuple[Any, MarketMaker]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=2, help="the most active N are traded")
    ap.add_argument("--seed", type=int, default=20240607)
    args = ap.parse_args(argv)
    events, books = load_day(args.messages, max(args.symbols, 4), args.seed)
    mm = MarketMaker()
    result = backtest(
        events, mm, books=books, instruments=list(range(args.symbols)),
        feed_latency=20_000, order_latency=50_000, response_latency=50_000,
        fees=Fees(maker=-0.00002, taker=0.00003), mark=60_000_000_000,
        markout=5_000_000_000)
    s = result.summary()
    print(f"market maker on {args.symbols} symbols, {s['events']:,} events")
    for k in ("pnl", "realized", "unrealized", "fees", "fills", "maker_fills", "taker_fills",
              "volume", "orders", "fill_ratio", "sharpe", "max_drawdown",
              "markout_bps"):
        v = s[k]
        print(f"  {k:22} {v:,.4f}" if isinstance(v, float) else f"  {k:22} {v:,}")
    for inst in range(args.symbols):
        print(f"  position {books.instrument(inst)['symbol']}: {result.position(inst):,} "
              f"(limit {mm.limit:,}, largest seen {mm.peak.get(inst, 0):,})")
    return result, mm


if __name__ == "__main__":
    main()
