"""fastbook.backtest: fill rules, latency, accounting, determinism, bad input, the fast path."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import fastbook as fb
from fastbook import _pyl3
from fastbook.backtest import (
    BacktestError,
    Fees,
    Latency,
    OrderError,
    Strategy,
    backtest,
)
from fastbook.events import events_from_records

BID, ASK = fb.BID, fb.ASK


def books(kind: str = "l3", n: int = 1, twin: bool = False, **kw: Any) -> Any:
    bs = (_pyl3.BookSet if twin else fb.BookSet)(on_error=kw.pop("on_error", "stop"))
    for i in range(n):
        bs.add_instrument(f"S{i}", kind=kind, price_decimals=2, **kw)
    return bs


def ev(*rows: dict[str, Any]) -> np.ndarray:
    out = []
    for k, r in enumerate(rows):
        r = dict(r)
        r.setdefault("ts_exchange", 10 * (k + 1))
        out.append(r)
    return events_from_records(out)


def add(oid: int, side: int, price: int, qty: int, **kw: Any) -> dict[str, Any]:
    return {"action": "add", "order_id": oid, "side": side, "price": price, "qty": qty, **kw}


def exe(oid: int, qty: int, **kw: Any) -> dict[str, Any]:
    return {"action": "execute", "order_id": oid, "qty": qty, **kw}


class Script(Strategy):
    """Places the given orders at the first callback; records what it is told."""

    def __init__(self, orders: list[tuple[Any, ...]], at: int = 0) -> None:
        self.orders = orders
        self.at = at
        self.calls = 0
        self.fills: list[Any] = []
        self.updates: list[Any] = []
        self.views: list[Any] = []
        self.ids: list[int] = []

    def on_book(self, ctx: Any, view: Any) -> None:
        self.views.append((ctx.now, view.ts, view.best_bid, view.best_ask))
        if self.calls == self.at:
            for side, qty, price, *rest in self.orders:
                self.ids.append(ctx.submit(0, side, qty, price, *rest))
        self.calls += 1

    def on_fill(self, ctx: Any, fill: Any) -> None:
        self.fills.append((ctx.now, fill.order_id, fill.price, fill.qty, fill.taker))

    def on_order(self, ctx: Any, order: Any) -> None:
        self.updates.append((ctx.now, order.id, order.status, order.reason))


def run(events: np.ndarray, strategy: Strategy, bs: Any = None, **kw: Any) -> Any:
    return backtest(events, strategy, books=bs if bs is not None else books(), **kw)


def fills(r: Any) -> list[tuple[int, int, int, bool]]:
    f = r.fills
    return list(zip(f["order_id"].tolist(), f["price"].tolist(), f["qty"].tolist(),
                    f["taker"].tolist(), strict=True))


# -- exact FIFO on L3 -------------------------------------------------------------------------

def test_an_own_bid_fills_only_when_executions_reach_orders_behind_it() -> None:
    s = Script([(BID, 5, 1000)])
    r = run(ev(add(1, BID, 1000, 10), add(2, ASK, 1010, 10),
               add(3, BID, 1000, 7),      # behind the own bid (placed at the first BBO)
               exe(1, 4), exe(1, 6),      # the order ahead: no fill
               exe(3, 3),                 # behind: reached first, 3 of 5
               exe(3, 4)), s)             # the rest: 2 (the execution was 4)
    assert fills(r) == [(1, 1000, 3, False), (1, 1000, 2, False)]
    assert r.position(0) == 5
    assert r.orders["status"].tolist() == ["filled"]


def test_orders_ahead_that_cancel_move_the_own_order_up_but_never_fill_it() -> None:
    s = Script([(BID, 5, 1000)])
    r = run(ev(add(1, BID, 1000, 10), add(9, ASK, 1010, 1),
               {"action": "reduce", "order_id": 1, "qty": 4},
               {"action": "delete", "order_id": 1}), s)
    assert fills(r) == []


def test_an_execution_at_a_worse_price_trades_through_the_own_order() -> None:
    s = Script([(BID, 5, 1000)])
    r = run(ev(add(1, BID, 1000, 10), add(2, BID, 990, 10), add(9, ASK, 1010, 1),
               exe(2, 7)), s, instruments=[0])
    # the own bid is placed at the first BBO (event 1): order 2 at 990 ranks behind it
    assert fills(r) == [(1, 1000, 5, False)]


def test_an_add_crossing_a_resting_own_order_fills_it_as_maker() -> None:
    s = Script([(ASK, 5, 1010)])
    r = run(ev(add(1, BID, 1000, 10), add(2, ASK, 1020, 1),
               add(3, BID, 1015, 3),        # a buyer at 1015 would have met the ask at 1010
               add(4, BID, 1005, 50)), s)
    assert fills(r) == [(1, 1010, 3, False)]
    assert r.position(0) == -3


def test_keep_priority_replaces_keep_the_order_ahead() -> None:
    rows = [add(1, BID, 1000, 10), add(9, ASK, 1010, 1),
            {"action": "replace", "order_id": 1, "new_order_id": 1, "price": 1000, "qty": 8,
             "flags": int(fb.events.Flags.KEEP_PRIORITY)},
            add(2, BID, 1000, 5), exe(2, 5)]
    r = run(ev(*rows), Script([(BID, 5, 1000)]))
    assert fills(r) == [(1, 1000, 5, False)]     # order 2 joined behind the own order
    rows[2] = {"action": "replace", "order_id": 1, "new_order_id": 7, "price": 1000, "qty": 8}
    rows[4] = exe(7, 3)                          # the replaced order went behind the own one
    r = run(ev(*rows), Script([(BID, 5, 1000)]))
    assert fills(r) == [(1, 1000, 3, False)]


def test_two_own_orders_at_one_price_fill_in_arrival_order() -> None:
    s = Script([(BID, 2, 1000), (BID, 3, 1000), (BID, 4, 990)])
    r = run(ev(add(1, BID, 1000, 1), add(9, ASK, 1010, 1), add(2, BID, 1000, 9),
               add(3, BID, 980, 9), exe(2, 4), exe(3, 9)), s)
    assert fills(r) == [(1, 1000, 2, False), (2, 1000, 2, False),
                        (2, 1000, 1, False), (3, 990, 4, False)]


# -- taking ----------------------------------------------------------------------------------

def test_a_market_order_walks_the_book_and_pays_the_taker_fee() -> None:
    s = Script([(BID, 12, None)], at=1)      # at the second BBO: every level is there
    bs = books()
    r = run(ev(add(1, ASK, 1010, 5), add(2, ASK, 1020, 5), add(3, ASK, 1030, 5),
               add(4, BID, 1000, 1), add(5, BID, 990, 1)), s, bs,
            fees=Fees(maker=-0.0001, taker=0.001), on_book="bbo")
    assert fills(r) == [(1, 1010, 5, True), (1, 1020, 5, True), (1, 1030, 2, True)]
    notional = (10.10 * 5 + 10.20 * 5 + 10.30 * 2)
    assert r.fees_paid == pytest.approx(0.001 * notional)
    assert r.cash == pytest.approx(-notional - 0.001 * notional)
    assert r.orders["status"].tolist() == ["filled"]
    # the recorded book is untouched (no market impact)
    assert bs[0].best_ask() == (1010, 5)


def test_a_marketable_limit_takes_up_to_its_price_and_rests_the_rest() -> None:
    s = Script([(BID, 8, 1010)])
    r = run(ev(add(1, ASK, 1010, 5), add(2, ASK, 1020, 5), add(3, BID, 1000, 1),
               add(4, ASK, 1005, 2)), s)
    assert fills(r) == [(1, 1010, 5, True), (1, 1010, 2, False)]
    s2 = Script([(BID, 8, 1010, "ioc")])
    r = run(ev(add(1, ASK, 1010, 5), add(2, ASK, 1020, 5)), s2)
    assert fills(r) == [(1, 1010, 5, True)]
    assert r.orders["status"].tolist() == ["cancelled"]


def test_no_taking_fill_from_a_crossed_book_a_snapshot_or_a_halt() -> None:
    crossed = ev(add(1, BID, 1020, 5), add(2, ASK, 1010, 5), add(3, ASK, 1030, 1))
    s = Script([(BID, 1, None)], at=1)
    r = run(crossed, s)
    assert fills(r) == [] and r.rejected == 1
    assert "crossed" in s.updates[0][3]
    halted = ev(add(1, BID, 1000, 5),
                {"action": "status", "flags": int(fb.events.Flags.HALTED)},
                add(2, ASK, 1010, 5), add(3, ASK, 1030, 1))
    s = Script([(BID, 1, None)], at=1)
    r = run(halted, s)
    assert fills(r) == [] and "halted" in s.updates[0][3]
    snap = ev(add(1, BID, 1000, 5), add(2, ASK, 1010, 5),
              {"action": "snapshot_begin"},
              add(3, BID, 1000, 5, flags=int(fb.events.Flags.SNAPSHOT)),
              add(4, ASK, 1010, 5, flags=int(fb.events.Flags.SNAPSHOT)),
              {"action": "snapshot_end"}, add(5, ASK, 1010, 1))
    s = Script([(BID, 1, None)], at=2)     # decided on the first snapshot row's BBO
    r = run(snap, s)
    assert fills(r) == [] and "snapshot" in s.updates[0][3]


def test_after_a_snapshot_every_order_at_the_own_price_is_ahead() -> None:
    s = Script([(BID, 5, 1000)])
    snap = ev(add(1, BID, 1000, 5), add(2, ASK, 1010, 5),
              {"action": "snapshot_begin"},
              add(11, BID, 1000, 6, flags=int(fb.events.Flags.SNAPSHOT)),
              add(12, ASK, 1010, 5, flags=int(fb.events.Flags.SNAPSHOT)),
              {"action": "snapshot_end"}, exe(11, 6), add(13, BID, 1000, 2), exe(13, 2))
    r = run(snap, s)
    assert fills(r) == [(1, 1000, 2, False)]


# -- latency and ordering --------------------------------------------------------------------

def test_order_latency_places_the_order_behind_what_arrived_meanwhile() -> None:
    rows = [add(1, BID, 1000, 10), add(9, ASK, 1010, 1),      # ts 10, 20
            add(2, BID, 1000, 5),                              # ts 30
            exe(1, 10), exe(2, 5)]                             # ts 40, 50
    r = run(ev(*rows), Script([(BID, 5, 1000)]))
    assert fills(r) == [(1, 1000, 5, False)]                   # arrived at 10: ahead of 2
    r = run(ev(*rows), Script([(BID, 5, 1000)]), order_latency=25)
    assert fills(r) == []                                      # arrived at 35: behind 2
    assert r.orders["arrived"].tolist() == [35]


def test_feed_and_response_latency_delay_what_the_strategy_sees() -> None:
    s = Script([(BID, 5, 1000)])
    r = run(ev(add(1, BID, 1000, 10), add(9, ASK, 1010, 1), add(2, BID, 1000, 5),
               exe(2, 5), add(3, ASK, 1020, 1)), s,
            feed_latency=3, order_latency=4, response_latency=6)
    # views reach the strategy 3 ns late, with the book as it was
    assert s.views[0] == (13, 10, 1000, None)
    # the order decided at 13 arrives at 17, is acknowledged at 23; the fill at 40 is
    # known at 46
    assert s.updates[0][:3] == (23, 1, "resting")
    assert s.fills == [(46, 1, 1000, 5, False)]
    assert r.fills["ts"].tolist() == [40]


def test_a_cancel_that_arrives_after_the_fill_is_rejected() -> None:
    class CancelLate(Script):
        def on_book(self, ctx: Any, view: Any) -> None:
            super().on_book(ctx, view)
            if self.calls == 4:           # at the execution of order 2 (ts 40)
                ctx.cancel(self.ids[0])

    s = CancelLate([(BID, 5, 1000)])
    r = run(ev(add(1, BID, 1000, 10), add(9, ASK, 1010, 1), add(2, BID, 1000, 5),
               exe(2, 5), add(3, ASK, 1005, 1), add(4, ASK, 1003, 1)), s, order_latency=5)
    assert fills(r) == [(1, 1000, 5, False)]
    assert s.updates[-1][2:] == ("filled", "order 1 is filled")


def test_a_smaller_size_keeps_the_place_a_new_price_loses_it() -> None:
    class Modify(Script):
        def __init__(self, change: dict[str, int]) -> None:
            super().__init__([(BID, 5, 1000)])
            self.change = change

        def on_book(self, ctx: Any, view: Any) -> None:
            super().on_book(ctx, view)
            if self.calls == 2:
                ctx.modify(self.ids[0], **self.change)

    rows = ev(add(1, BID, 1000, 10), add(9, ASK, 1010, 1), add(9_9, ASK, 1009, 1),
              add(2, BID, 1000, 5), add(3, BID, 990, 5), exe(2, 5), exe(3, 5))
    r = run(rows, Modify({"qty": 3}))
    assert fills(r) == [(1, 1000, 3, False)]
    r = run(rows, Modify({"price": 990}))
    assert fills(r) == [(1, 990, 5, False)]


# -- L2 books ---------------------------------------------------------------------------------

def test_l2_queue_estimates_follow_the_model() -> None:
    def l2(side: int, price: int, qty: int) -> dict[str, Any]:
        return {"action": "set_level", "side": side, "price": price, "qty": qty}

    rows = ev(l2(BID, 1000, 10), l2(ASK, 1010, 5),
              l2(BID, 1000, 16),                       # 6 join behind
              l2(BID, 1000, 12),                       # 4 cancelled: where?
              {"action": "trade", "side": BID, "price": 1000, "qty": 9},
              l2(BID, 1000, 3))
    got = {}
    for model in ("pessimistic", "proportional"):
        r = backtest(rows, Script([(BID, 5, 1000)]), books=books("l2"), queue_model=model)
        got[model] = fills(r)
    # pessimistic: the cancel was behind, 10 ahead, 9 traded: no fill
    assert got["pessimistic"] == []
    # proportional: 4 * 10/16 of the cancel was ahead: 7.5 ahead, a fill of 1
    assert got["proportional"] == [(1, 1000, 1, False)]


# -- accounting ------------------------------------------------------------------------------

def test_a_round_trip_realizes_its_pnl_net_of_fees() -> None:
    class RoundTrip(Strategy):
        def __init__(self) -> None:
            self.n = 0

        def on_book(self, ctx: Any, view: Any) -> None:
            self.n += 1
            if self.n == 2:
                ctx.buy(0, 4)
            if self.n == 4:
                ctx.sell(0, 4)

    rows = ev(add(1, ASK, 1010, 5), add(2, BID, 1000, 5), {"action": "delete", "order_id": 1},
              add(3, BID, 1050, 5), add(4, ASK, 1060, 5))
    r = run(rows, RoundTrip(), fees=Fees(taker=0.001))
    assert fills(r) == [(1, 1010, 4, True), (2, 1050, 4, True)]
    gross = (10.50 - 10.10) * 4
    fees = 0.001 * (10.10 * 4 + 10.50 * 4)
    assert r.realized() == pytest.approx(gross)
    s = r.summary()
    assert s["pnl"] == pytest.approx(gross - fees)
    assert s["fees"] == pytest.approx(fees)
    assert s["unrealized"] == pytest.approx(0, abs=1e-12)
    assert s["fill_ratio"] == 1.0 and s["taker_fills"] == 2


def test_marks_and_markouts_are_taken_on_the_exchange_clock() -> None:
    rows = ev(add(1, ASK, 1010, 5, ts_exchange=0), add(2, BID, 1000, 5, ts_exchange=1),
              add(3, BID, 1006, 5, ts_exchange=150), add(4, ASK, 1008, 5, ts_exchange=250))
    r = run(rows, Script([(BID, 2, None)], at=1), mark=100, markout=120)
    assert r.equity["ts"].tolist() == [101, 201]     # from the first event with a time
    # bought 2 at 10.10; at 100 the mid is 10.05, at 200 it is 10.08
    assert r.equity["equity"].tolist() == pytest.approx([2 * (10.05 - 10.10),
                                                         2 * (10.08 - 10.10)])
    assert r.fills["markout_mid"].tolist() == [1005.0]       # (1000 + 1010) / 2 at 121
    assert r.summary()["markout_bps"] == pytest.approx((1005 - 1010) / 1010 * 1e4)


def test_flat_stretches_are_marked_without_waking_the_engine() -> None:
    rows = ev(add(1, ASK, 1010, 5), add(2, BID, 1000, 5), add(3, BID, 1001, 5),
              add(4, BID, 1002, 5), add(5, BID, 990, 5), add(6, BID, 980, 5))
    r = run(rows, Strategy(), mark=10)
    assert r.equity["ts"].tolist() == [20, 30, 40, 50, 60]
    assert r.equity["equity"].tolist() == [0.0] * 5
    assert r.stops == 4                  # the four BBO changes, no wake-up for the marks
    s = Script([(BID, 2, None)], at=1)   # bought at 20 (decided at the second BBO)
    r = run(rows, s, mark=10)
    assert r.equity["ts"].tolist() == [20, 30, 40, 50, 60]
    # the mark at 20 is before the fill at 20; then the position is marked at the mid
    # of the book before the events at the mark's time (bids 1000, 1001, 1002, 1002)
    assert r.equity["equity"].tolist() == pytest.approx(
        [0.0, 2 * (10.05 - 10.10), 2 * (10.055 - 10.10), 2 * (10.06 - 10.10),
         2 * (10.06 - 10.10)])


# -- the reference, the twin, determinism ----------------------------------------------------

class Random(Strategy):
    """Random quotes, cancels and modifies around the BBO, seeded."""

    def __init__(self, seed: int, instruments: tuple[int, ...] = (0,)) -> None:
        self.rng = np.random.default_rng(seed)

    def on_book(self, ctx: Any, v: Any) -> None:
        if v.best_bid is None or v.best_ask is None:
            return
        rng = self.rng
        r = rng.random()
        mine = ctx.orders(v.instrument)
        if r < 0.3 and len(mine) < 6:
            side = BID if rng.random() < .5 else ASK
            off = int(rng.integers(0, 3)) * 100
            px = v.best_bid - off if side == BID else v.best_ask + off
            if rng.random() < 0.05:
                px = v.best_ask if side == BID else v.best_bid
            ctx.submit(v.instrument, side, int(rng.integers(1, 4)) * 100, price=px)
        elif r < 0.4 and mine:
            ctx.cancel(mine[int(rng.integers(len(mine)))].id)
        elif r < 0.45 and mine and mine[0].status == "resting":
            ctx.modify(mine[0].id, qty=max(100, mine[0].qty - 100))
        elif r < 0.47:
            ctx.submit(v.instrument, BID if rng.random() < .5 else ASK, 100)


@pytest.fixture(scope="module")
def itch() -> tuple[np.ndarray, list[str]]:
    from fastbook import synth
    from fastbook.codecs.itch50 import decode_events

    events, directory, _ = decode_events(synth.itch_day(60_000, n_symbols=4, seed=11))
    return events, [d["symbol"] for d in directory]


def itch_books(symbols: list[str], twin: bool = False) -> Any:
    bs = (_pyl3.BookSet if twin else fb.BookSet)(on_error="stop")
    for sym in symbols:
        bs.add_instrument(sym, price_decimals=4, tick_size=100, lot_size=100)
    return bs


def same(a: Any, b: Any) -> bool:
    return all(np.array_equal(a.fills[k], b.fills[k], equal_nan=True) for k in a.fills) \
        and all(np.array_equal(a.orders[k], b.orders[k]) for k in a.orders)


@pytest.mark.parametrize("latency", [0, 40_000])
def test_the_engine_gives_the_references_fills_on_an_itch_day(itch: Any, latency: int) -> None:
    events, symbols = itch
    kw = {"instruments": [0, 1], "order_latency": latency, "response_latency": latency // 2}
    fast = backtest(events, Random(5), books=itch_books(symbols), **kw)
    ref = backtest(events, Random(5), books=itch_books(symbols), reference=True, **kw)
    assert len(fast.fills["qty"]) > 50
    assert (fast.fills["taker"] == 0).sum() > 10
    assert same(fast, ref)
    assert fast.stops < ref.stops


def test_the_compiled_fast_path_and_its_twin_agree(itch: Any) -> None:
    events, symbols = itch
    kw = {"instruments": [1], "order_latency": 10_000, "on_trade": True}
    a = backtest(events[:20_000], Random(8), books=itch_books(symbols), **kw)
    b = backtest(events[:20_000], Random(8), books=itch_books(symbols, twin=True), **kw)
    assert len(a.fills["qty"]) > 0 and a.stops == b.stops and same(a, b)


def test_a_recorded_file_is_decoded_as_the_backtest_goes(itch: Any, tmp_path: Any) -> None:
    from fastbook import synth

    path = tmp_path / "day.itch"
    path.write_bytes(synth.itch_day(60_000, n_symbols=4, seed=11))
    events, symbols = itch
    by_array = backtest(events, Random(5), books=itch_books(symbols), instruments=[1],
                        order_latency=20_000)
    bs = fb.BookSet(on_error="stop")
    by_file = backtest(path, Random(5), books=bs, instruments=[symbols[1]],
                       order_latency=20_000)
    assert len(bs) == 1 and bs.instrument(0)["symbol"] == symbols[1]   # symbols= defaulted
    assert len(by_array.fills["qty"]) > 10
    for k in by_array.fills:
        if k != "instrument":
            assert np.array_equal(by_array.fills[k], by_file.fills[k], equal_nan=True), k
    with pytest.raises(ValueError, match="codec: options of a recorded source"):
        backtest(events, Random(5), books=itch_books(symbols), codec="itch50")


def test_the_twin_agrees_on_a_capture_whose_exchange_times_go_back() -> None:
    """Coinbase's exchange times are not in stream order: the clock is the latest applied."""
    src = "tests/data/l2/cryptofeed/COINBASE.ws.28.0.gz"
    kw = {"codec": "coinbase-exchange", "order_latency": 2_000_000, "on_trade": True}
    a = backtest(src, Quoter(), books=fb.BookSet(on_error="stop"), **kw)
    b = backtest(src, Quoter(), books=_pyl3.BookSet(on_error="stop"), **kw)
    assert len(a.fills["qty"]) > 10 and a.stops == b.stops and same(a, b)


def test_the_same_seed_gives_identical_results(itch: Any) -> None:
    events, symbols = itch
    kw = {"instruments": [0], "order_latency": Latency.lognormal(30_000, 0.8),
          "feed_latency": Latency.normal(5_000, 2_000),
          "response_latency": Latency.empirical([1_000, 9_000, 50_000])}
    a = backtest(events, Random(3), books=itch_books(symbols), seed=7, **kw)
    b = backtest(events, Random(3), books=itch_books(symbols), seed=7, **kw)
    c = backtest(events, Random(3), books=itch_books(symbols), seed=8, **kw)
    assert same(a, b)
    # the summaries alike, NaN included (a float NaN is never equal to itself)
    assert list(a.summary()) == list(b.summary()) and all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a.summary().values(), b.summary().values(), strict=True))
    assert not same(a, c)


def test_latency_kinds() -> None:
    rng = np.random.default_rng(0)
    assert Latency.constant(5).draw(rng, 0) == 5
    s = Latency.series([0, 100], [7, 9])
    assert [s.draw(rng, t) for t in (-5, 0, 99, 100, 10**9)] == [7, 7, 7, 9, 9]
    h = Latency.histogram([10, 20, 30], [0, 1])
    assert all(20 <= h.draw(rng, 0) <= 30 for _ in range(100))
    assert {Latency.empirical([3, 4]).draw(rng, 0) for _ in range(50)} == {3, 4}
    for bad in (lambda: Latency.constant(-1), lambda: Latency.series([1, 0], [1, 1]),
                lambda: Latency.histogram([0, 1], [0]), lambda: Latency.empirical([])):
        with pytest.raises(ValueError, match="Latency"):
            bad()


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize(("order", "message"), [
    ((5, BID, 100, 1000), "instrument 5: not an instrument"),
    ((0, 3, 100, 1000), "side must be"),
    ((0, BID, -100, 1000), "quantity must be a positive int"),
    ((0, BID, 150, 1000), "not a multiple of the lot size 100"),
    ((0, BID, 100, 1005), "not on the tick grid"),
    ((0, BID, 100, 1000.0), "price must be an int"),
])
def test_bad_orders_are_refused_with_the_time_instrument_and_value(
        order: tuple[Any, ...], message: str) -> None:
    class Bad(Strategy):
        def on_book(self, ctx: Any, view: Any) -> None:
            ctx.submit(*order)

    with pytest.raises(BacktestError, match=message) as info:
        run(ev(add(1, BID, 1000, 100)), Bad(), books(tick_size=10, lot_size=100))
    assert "t=10" in str(info.value)
    assert isinstance(info.value.__cause__, OrderError)


def test_a_strategy_that_raises_stops_with_everything_so_far_or_is_skipped() -> None:
    class Boom(Script):
        def on_fill(self, ctx: Any, fill: Any) -> None:
            super().on_fill(ctx, fill)
            raise RuntimeError("no")

    rows = ev(add(1, ASK, 1010, 5), add(2, BID, 1000, 5), add(3, BID, 1001, 5))
    with pytest.raises(BacktestError, match="on_fill raised RuntimeError: no") as info:
        run(rows, Boom([(BID, 2, None)]))
    assert info.value.result is not None
    assert fills(info.value.result) == [(1, 1010, 2, True)]
    r = run(rows, Boom([(BID, 2, None)]), on_error="skip")
    assert r.strategy_errors == 1 and r.summary()["stopped"] is None


def test_unknown_orders_and_bad_options_are_refused() -> None:
    class CancelsNothing(Strategy):
        def on_book(self, ctx: Any, view: Any) -> None:
            ctx.cancel(42)

    with pytest.raises(BacktestError, match="order 42: no such order"):
        run(ev(add(1, BID, 1000, 1)), CancelsNothing())
    for kw, message in (({"on_book": "tick"}, "on_book"), ({"depth": 0}, "depth"),
                        ({"instruments": [3]}, "instruments"), ({"fees": 0.1}, "fees"),
                        ({"order_latency": -1}, "Latency"), ({"timer": 0}, "timer")):
        with pytest.raises(ValueError, match=message):
            run(ev(add(1, BID, 1000, 1)), Strategy(), **kw)


def test_bad_events_stop_with_their_index_or_are_counted() -> None:
    rows = ev(add(1, BID, 1000, 5), add(2, ASK, 1010, 5), exe(77, 1), add(3, BID, 1000, 5))
    with pytest.raises(fb.UpdateError, match="event 2: cannot execute order 77") as info:
        run(rows, Script([(BID, 1, 1000)]))
    assert info.value.index == 2
    r = run(rows, Script([(BID, 1, 1000)]), books(on_error="skip"))
    assert r.skipped == 1 and r.events == 4


# -- the fast path itself --------------------------------------------------------------------

@pytest.mark.parametrize("twin", [False, True])
def test_advance_stops_where_the_engine_must_look(twin: bool) -> None:
    bs = books(n=2, twin=twin)
    rows = ev(add(1, BID, 1000, 5), add(2, BID, 990, 5, instrument=1), add(3, BID, 990, 5),
              exe(3, 1), add(4, ASK, 1010, 5), exe(1, 1))
    watch = np.array([1, 0], np.uint8)
    lv = np.array([1 << 62, -(1 << 62)] * 4, np.int64)
    far, none = 1 << 62, -(1 << 63)     # none: no event applied
    assert bs._advance(rows, 0, 6, watch, lv, far) == (1, 3, 10, 0, 10)     # bbo changed
    assert bs._advance(rows, 1, 6, watch, lv, far) == (5, 3, 50, 0, 50)     # the ask arrived
    assert bs._advance(rows, 5, 6, watch, lv, far) == (6, 3, 60, 0, 60)
    assert bs._advance(rows, 6, 6, watch, lv, far) == (6, 0, 0, 0, none)
    bs = books(n=2, twin=twin)
    lv[0:2] = (995, 995)          # an own bid at 995
    watch[:] = (8, 0)
    # the execute at 990 < 995 stops, before it is applied
    assert bs._advance(rows, 0, 6, watch, lv, far) == (3, 2, 40, 0, 30)
    assert bs._advance(rows, 3, 6, watch, lv, 25) == (3, 1, 40, 0, none)    # ts 40 >= 25
    bs._advance(rows, 3, 4, np.zeros(2, np.uint8), lv, far)
    assert bs._advance(rows, 4, 6, watch, lv, far) == (6, 0, 0, 0, 60)      # ask above
    lv[2:4] = (1000, 1000)        # an own ask at 1000: the bid add at 1000 crosses it
    bs = books(n=2, twin=twin)
    assert bs._advance(rows, 0, 6, watch, lv, far) == (0, 2, 10, 0, none)
    watch[:] = (0, 4)
    assert bs._advance(rows, 0, 6, watch, lv, far) == (2, 3, 20, 1, 20)     # every event of 1
    assert bs[1].best_bid() == (990, 5)
    watch[:] = (2, 0)             # trades: before they are applied
    assert bs._advance(rows, 2, 6, watch, lv, far) == (3, 2, 40, 0, 30)
    assert bs[0].qty_at(BID, 990) == 5
    with pytest.raises(fb.UpdateError, match=r"event 0: .*order 1"):
        books(twin=twin)._advance(ev(exe(1, 1)), 0, 1, watch * 0, lv, far)
    skip = books(twin=twin, on_error="skip")
    assert skip._advance(ev(exe(1, 1), add(1, BID, 1, 1)), 0, 2, watch[:1] * 0, lv, far) \
        == (2, 0, 0, 0, 20)
    assert skip.errors["unknown_order"] == 1


class Quoter(Strategy):
    """Joins the best bid and ask with a quarter of their size, re-quoting when they move."""

    def on_book(self, ctx: Any, v: Any) -> None:
        if v.best_bid is None or v.best_ask is None:
            return
        mine = ctx.orders(v.instrument)
        for o in mine:
            if o.status == "resting" and o.price not in (v.best_bid, v.best_ask):
                ctx.cancel(o.id)
        sides = {o.side for o in mine}
        lot = ctx._e.insts[v.instrument].lot
        for side, px, q in ((BID, v.best_bid, v.bid_qty[0]), (ASK, v.best_ask, v.ask_qty[0])):
            if side not in sides:
                ctx.submit(v.instrument, side, max(lot, int(q) // 4 // lot * lot), price=px)


D = "tests/data/l2/cryptofeed/"


@pytest.mark.parametrize(("source", "codec", "model"), [
    ([D + "BINANCE_DELIVERY.ws.1.0.gz", D + "BINANCE_DELIVERY.http.0.0.gz"], "binance-coinm",
     "pessimistic"),
    (D + "COINBASE.ws.28.0.gz", "coinbase-exchange", "proportional"),
    (D + "OKX.ws.1.0.gz", "okx", "power"),
], ids=["binance", "coinbase", "okx"])
def test_l2_captures_give_the_same_fills_event_by_event(source: Any, codec: str,
                                                         model: str) -> None:
    """Real captures, REST snapshots included (their rows have no exchange time): the
    fast path gives the fills of the engine that looks at every event."""
    kw = {"codec": codec, "queue_model": model, "order_latency": 2_000_000,
          "response_latency": 1_000_000}
    fast = backtest(source, Quoter(), books=fb.BookSet(on_error="stop"), **kw)
    slow = backtest(source, Quoter(), books=fb.BookSet(on_error="stop"), reference=True,
                    **kw)
    assert len(fast.fills["qty"]) > 20 and (~fast.fills["taker"]).sum() > 15
    assert len(fast.equity["ts"]) > 5
    assert same(fast, slow) and fast.stops < slow.stops


@pytest.mark.parametrize("seed", [1, 2])
def test_corrupted_streams_are_skipped_the_same_way_by_every_engine(itch: Any,
                                                                  seed: int) -> None:
    """One event in 50 damaged (unknown ids, over-executions, bad sides, zero sizes), in
    skip mode: the fast path, the every-event reference and the twin skip the same
    events and give the same fills; nothing raises."""
    events, symbols = itch
    bad = events[:12_000].copy()
    rng = np.random.default_rng(seed)
    hit = rng.choice(len(bad), len(bad) // 50, replace=False)
    kinds = rng.integers(0, 4, len(hit))
    bad["order_id"][hit[kinds == 0]] += 1 << 40
    bad["qty"][hit[kinds == 1]] *= 1000
    bad["side"][hit[kinds == 2]] = 3
    bad["qty"][hit[kinds == 3]] = 0
    runs = []
    for reference, twin in ((False, False), (True, False), (False, True)):
        bs = (_pyl3.BookSet if twin else fb.BookSet)(on_error="skip")
        for sym in symbols:
            bs.add_instrument(sym, price_decimals=4, tick_size=100, lot_size=100)
        runs.append(backtest(bad, Random(seed), books=bs, instruments=[0, 1],
                             order_latency=30_000, reference=reference))
    assert runs[0].skipped > 50
    assert len(runs[0].fills["qty"]) > 10
    for r in runs[1:]:
        assert r.skipped == runs[0].skipped and same(runs[0], r)


def test_marks_taken_at_bbo_changes_equal_marks_taken_by_waking() -> None:
    class BuyOnTimer(Strategy):
        def on_timer(self, ctx: Any, now: int) -> None:
            if not ctx.position(0) and not ctx.orders():
                ctx.buy(0, 3)

    # the best bid climbs a tick every other event; asks pile up above the best ask
    rows = ev(*[add(k + 1, BID, 1000 + k, 2, ts_exchange=7 * k + 1) if k % 2 else
                add(k + 1, ASK, 1100 + k, 5, ts_exchange=7 * k + 1) for k in range(60)])
    woken = run(rows, BuyOnTimer(), on_book=None, timer=50, mark=13)
    seen = run(rows, BuyOnTimer(), on_book="bbo", timer=50, mark=13)
    assert len(woken.fills["qty"]) >= 1 and same(woken, seen)
    assert woken.equity["ts"].tolist() == seen.equity["ts"].tolist()
    assert woken.equity["equity"].tolist() == seen.equity["equity"].tolist()
    assert len(set(seen.equity["equity"].tolist())) > 3


def test_results_go_to_parquet_and_a_plot(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = ev(add(1, ASK, 1010, 5), add(2, BID, 1000, 5), add(3, BID, 1004, 5),
              add(4, ASK, 1008, 5))
    r = run(rows, Script([(BID, 2, None)], at=1), mark=5, markout=5)
    paths = r.to_parquet(tmp_path / "run.parquet")
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "run.fills.parquet", "run.orders.parquet", "run.equity.parquet"]
    fills = pq.read_table(paths[0]).to_pydict()
    assert fills["price"] == [1010] and fills["qty"] == [2] and fills["taker"] == [True]
    assert pq.read_table(paths[1]).to_pydict()["status"] == ["filled"]
    assert pq.read_table(paths[2]).num_rows == len(r.equity["ts"]) > 0
    fig = r.plot(tmp_path / "run.png")
    assert len(fig.axes) == 2 and (tmp_path / "run.png").stat().st_size > 10_000
    assert [line.get_label() for line in fig.axes[0].get_lines()][:2] == [
        "equity", "fees paid (negative: rebates)"]


# -- what the strategy knows, and requests refused ------------------------------------------

def test_the_strategy_sees_its_orders_as_the_answers_say_not_as_the_exchange_has_them() -> None:
    seen = []

    class Look(Script):
        def on_book(self, ctx: Any, view: Any) -> None:
            super().on_book(ctx, view)
            if self.ids:
                o = ctx.order(self.ids[0])
                seen.append((ctx.now, o.status, o.filled, ctx.position(0),
                             [x.id for x in ctx.orders()]))

    rows = ev(add(1, BID, 1000, 10), add(9, ASK, 1010, 1), add(2, BID, 1000, 5),
              exe(2, 5), add(3, ASK, 1005, 1), add(4, ASK, 1004, 1))
    run(rows, Look([(BID, 5, 1000)]), response_latency=25)
    # filled at 40 at the exchange; the answer arrives at 65: until then it is resting
    # (acknowledged at 35), then filled, and no longer among the open orders
    assert seen == [(10, "pending", 0, 0, [1]), (20, "pending", 0, 0, [1]),
                    (30, "pending", 0, 0, [1]), (40, "resting", 0, 0, [1]),
                    (50, "resting", 0, 0, [1]), (60, "resting", 0, 0, [1])]
    seen.clear()
    run(rows, Look([(BID, 5, 1000)]), response_latency=5)
    assert seen[-1] == (60, "filled", 5, 5, [])


def test_a_clear_stops_every_fill_until_a_snapshot_ends() -> None:
    rows = ev(add(1, BID, 1000, 5), add(2, ASK, 1010, 5), {"action": "clear"},
              add(3, BID, 1000, 5), add(4, ASK, 1010, 5), add(5, BID, 1001, 1))
    s = Script([(BID, 1, None)], at=3)       # decided at ts 40, after the clear
    r = run(rows, s)
    assert fills(r) == [] and "cleared" in s.updates[0][3]
    healed = ev(add(1, BID, 1000, 5), add(2, ASK, 1010, 5), {"action": "clear"},
                {"action": "snapshot_begin"},
                add(3, BID, 1000, 5, flags=int(fb.events.Flags.SNAPSHOT)),
                add(4, ASK, 1010, 5, flags=int(fb.events.Flags.SNAPSHOT)),
                {"action": "snapshot_end"}, add(5, BID, 1001, 1))
    r = run(healed, Script([(BID, 1, None)], at=5))      # at ts 80, after the snapshot
    assert fills(r) == [(1, 1010, 1, True)]


def test_a_refused_modify_leaves_the_order_as_it_was() -> None:
    class Reprice(Script):
        def on_timer(self, ctx: Any, now: int) -> None:
            if now == 35:
                ctx.modify(self.ids[0], price=1010)

    rows = ev(add(1, BID, 1000, 10), add(2, ASK, 1010, 10),
              {"action": "status", "flags": int(fb.events.Flags.HALTED)},
              add(3, BID, 990, 1), add(4, BID, 990, 1))
    s = Reprice([(BID, 5, 1000)], at=1)
    r = run(rows, s, timer=25)
    assert s.updates[-1][2:] == ("resting", "no taking fill from a book that is not sound: "
                                            "the instrument is halted")
    assert r.orders["status"].tolist() == ["resting"] and r.orders["price"].tolist() == [1000]


def test_trade_prints_carry_the_execution_price_and_the_fill_ratio_the_largest_size() -> None:
    class Trades(Script):
        def __init__(self) -> None:
            super().__init__([(BID, 2, 900)])
            self.trades: list[Any] = []

        def on_trade(self, ctx: Any, trade: Any) -> None:
            self.trades.append((trade.side, trade.price, trade.qty))
            ctx.modify(self.ids[0], qty=8)

    rows = ev(add(1, BID, 1000, 10), add(2, ASK, 1010, 10), exe(1, 2, price=1003),
              exe(2, 1))
    s = Trades()
    r = run(rows, s, on_trade=True)
    assert s.trades == [(BID, 1003, 2), (ASK, 1010, 1)]     # the print's price, or the book's
    assert r.summary()["fill_ratio"] == 0.0 and r.submitted_qty == 8
