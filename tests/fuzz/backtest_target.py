"""Fuzz target for the backtester (``fastbook.backtest``, issue 24).

``backtest``: each input is a short hostile event stream (every action, sides 0-3, prices
and quantities at the int64 limits, unknown and duplicate ids, exchange times that go
back, two L3 books and an L2 one) and a seeded strategy that sends hostile requests
(prices off the tick grid, sizes off the lot grid, zero and negative sizes, unknown
instruments and orders, market orders, modifies and cancels at random), with random
latencies. It runs through three engines: the compiled fast path, the every-event
reference (a shadow book for the L3 queues) and the fast path over the twin's BookSet.
All three must give the same outcome: the same fills, orders, equity marks and counts,
or the same ``UpdateError`` (stop mode); a request the engine refuses is an
``OrderError`` counted as a strategy error (``on_error="skip"``); anything else raising
is a finding.
"""

from __future__ import annotations

import random
from typing import Any

from fastbook.errors import FastbookError
from tests.fuzz.harness import Context, outcome

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
FLAGS = (0, 0, 0, 0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x80, 0x200)


def _records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    clock = rng.randrange(0, 50)
    for _ in range(n):
        wild = rng.random() < 0.1
        clock += rng.randrange(-4, 15)
        out.append({
            "instrument": rng.choice((0, 1, 2, 3)) if wild else rng.choice((0, 0, 1, 2)),
            "action": rng.randrange(0, 13) if wild else rng.choice(
                (1, 1, 1, 1, 2, 3, 3, 3, 4, 4, 5, 6, 6, 8, 9, 10, 11)),
            "side": rng.choice((0, 1, 2, 3)) if wild else rng.choice((1, 2)),
            "price": rng.choice((INT64_MIN, INT64_MAX, -1, 0)) if wild
            else rng.randrange(90, 111),
            "qty": rng.choice((0, -1, INT64_MAX, 1 << 62)) if wild else rng.randrange(1, 9),
            "order_id": rng.randrange(0, 24),
            "new_order_id": rng.randrange(0, 24),
            "flags": rng.choice(FLAGS),
            "ts_exchange": max(clock, 0) if rng.random() < 0.95 else 0,
        })
    return out


class _Hostile:
    """A strategy drawing its requests from ``Random(seed)``: the same in every engine."""

    def __init__(self, seed: int) -> None:
        from fastbook.backtest import Strategy

        rng = random.Random(seed)
        outer = self

        class S(Strategy):
            def on_book(self, ctx: Any, view: Any) -> None:
                outer.act(ctx, view.instrument)

            def on_trade(self, ctx: Any, trade: Any) -> None:
                if rng.random() < 0.3:
                    outer.act(ctx, trade.instrument)

            def on_fill(self, ctx: Any, fill: Any) -> None:
                if rng.random() < 0.3:
                    outer.act(ctx, fill.instrument)

            def on_timer(self, ctx: Any, now: int) -> None:
                outer.act(ctx, rng.choice((0, 1, 2)))

        self.rng = rng
        self.strategy = S()

    def act(self, ctx: Any, inst: int) -> None:
        rng = self.rng
        r = rng.random()
        mine = [o.id for o in ctx.orders()]
        if r < 0.45:
            price = rng.choice((None, rng.randrange(88, 113), rng.randrange(88, 113),
                                rng.randrange(88, 113) * 10, 1.5, -5, INT64_MAX))
            qty = rng.choice((1, 2, 3, 5, 10, 100, 0, -1, 7))
            ctx.submit(rng.choice((inst, inst, inst, 7, -1)), rng.choice((1, 2, 2, 1, 0)), qty,
                       price, rng.choice(("gtc", "gtc", "ioc", "fok")))
        elif r < 0.65 and mine:
            ctx.cancel(rng.choice([*mine, 10_000]))
        elif r < 0.8 and mine:
            ctx.modify(rng.choice(mine), price=rng.choice((None, rng.randrange(88, 113))),
                       qty=rng.choice((None, 1, 4, 0)))


class BacktestTarget:
    """Three engines over the same hostile stream and strategy (see the module docstring)."""

    name = "backtest"

    def setup(self) -> None:
        self._n = 0

    @staticmethod
    def _books(twin: bool, on_error: str) -> Any:
        from fastbook import _l3, _pyl3

        bs = (_pyl3 if twin else _l3).BookSet(on_error=on_error)
        bs.add_instrument("A", price_decimals=2, tick_size=1, order_capacity=8, capacity=0)
        bs.add_instrument("B", price_decimals=2, tick_size=2, lot_size=1, order_capacity=8,
                          capacity=0, side_keys=True)
        bs.add_instrument("C", kind="l2", price_decimals=2, qty_decimals=1, capacity=0)
        return bs

    @staticmethod
    def _result(r: Any) -> Any:
        if not hasattr(r, "fills"):
            return r
        cols = [r.fills[k].tobytes() for k in r.fills] + \
            [r.orders[k].tobytes() for k in r.orders] + \
            [r.equity[k].tobytes() for k in r.equity]
        return cols, r.events, r.skipped, r.rejected, r.strategy_errors, r.cash

    def one(self, ctx: Context, rng: random.Random) -> None:
        from fastbook.backtest import Latency, backtest
        from fastbook.events import empty_events

        ctx.stats.inputs += 1
        recs = _records(rng, rng.randrange(1, 40))
        events = empty_events(len(recs))
        for i, rec in enumerate(recs):
            for k, v in rec.items():
                events[k][i] = v
        ctx.keep(events.tobytes())
        seed = rng.randrange(1 << 30)
        on_error = rng.choice(("skip", "skip", "stop"))
        kw: dict[str, Any] = {
            "on_book": rng.choice(("bbo", "bbo", "event", None)),
            "on_trade": rng.random() < 0.5,
            "timer": rng.choice((None, 7, 20)),
            "mark": rng.choice((0, 5, 13)),
            "markout": rng.choice((0, 9)),
            "queue_model": rng.choice(("pessimistic", "proportional", "log")),
            "order_latency": rng.choice((0, 0, 3, Latency.empirical([0, 2, 9]))),
            "response_latency": rng.choice((0, 4)),
            "feed_latency": rng.choice((0, 0, 2, Latency.normal(3, 2))),
            "depth": rng.randrange(1, 4),
            "on_error": "skip",
            "seed": seed,
        }
        results = []
        for reference, twin in ((False, False), (True, False), (False, True)):
            r = outcome(lambda reference=reference, twin=twin: backtest(
                events, _Hostile(seed).strategy, books=self._books(twin, on_error),
                reference=reference, **kw), ctx, recs, (FastbookError,))
            results.append(self._result(r[1]) if r[0] == "ok"
                           else (type(r[1]).__name__, str(r[1])))
        if results[1] != results[0] or results[2] != results[0]:
            ctx.find("disagree", f"backtest: fast {str(results[0])[:160]}, reference "
                                 f"{str(results[1])[:160]}, twin {str(results[2])[:160]}",
                     recs)
            return
        failed = isinstance(results[0][0], str)      # (error name, message)
        refused = failed or results[0][2] > 0 or results[0][4] > 0
        ctx.stats.refused += refused
        ctx.stats.accepted += not refused
