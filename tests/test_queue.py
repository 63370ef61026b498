"""fastbook.queue: queue position estimates for own orders on L2 books.

Hand-computed cases per model (docs/queue.md gives the formulas), the driver over
event arrays, properties against a small exact FIFO queue simulated here, and the
exact-information check on a synthetic ITCH day: where no order other than the
tracked ones cancelled at the level, every model equals ``OrderBook.queue_position``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbook import ASK, BID
from fastbook.codecs.itch50 import decode_events
from fastbook.events import Action, Flags, events_from_records
from fastbook.queue import MODELS, QueueTracker, compare_with_l3, track_events
from fastbook.synth import itch_day

ALL = [("pessimistic", {}), ("proportional", {}), ("power", {"p": 2.0}), ("power", {"p": 1.0}),
       ("log", {})]


def backtest(model: str, **kw) -> QueueTracker:
    """A tracker whose levels never contain the order (a backtest's virtual order)."""
    return QueueTracker(model, own_in_level=False, **kw)


# -- hand-computed cases ----------------------------------------------------------------------

def _after_one_cancel(model: str, **kw) -> float:
    """60 ahead, 20 join behind, then 20 are cancelled somewhere."""
    t = backtest(model, **kw)
    t.place("k", BID, 100, 10, 60)
    t.on_level(BID, 100, 80)
    assert t.position("k") == 60          # joins are behind
    t.on_level(BID, 100, 60)
    return t.position("k")


def test_cancel_split_per_model():
    assert _after_one_cancel("pessimistic") == 60                   # all behind
    assert _after_one_cancel("proportional") == pytest.approx(60 - 20 * 60 / 80)   # 45
    assert _after_one_cancel("power", p=2.0) == pytest.approx(60 - 20 * 0.9)       # 3600/4000
    assert _after_one_cancel("power", p=1.0) == pytest.approx(45)
    share = math.log1p(60) / (math.log1p(60) + math.log1p(20))
    assert _after_one_cancel("log") == pytest.approx(60 - 20 * share)


def test_power_model_with_a_huge_exponent_does_not_overflow():
    t = backtest("power", p=500.0)
    t.place("k", BID, 100, 1, 10**9)
    t.on_level(BID, 100, 10**9 + 10**8)
    t.on_level(BID, 100, 10**9)               # f(ahead) dwarfs f(behind): all from ahead
    assert t.position("k") == pytest.approx(10**9 - 10**8)


def test_pessimistic_is_exact_integers_and_cancels_beyond_behind_come_from_ahead():
    t = backtest("pessimistic")
    t.place("k", BID, 100, 10, 60)
    t.on_level(BID, 100, 80)
    t.on_level(BID, 100, 60)      # 20 cancelled: the 20 behind
    t.on_level(BID, 100, 50)      # 10 more: nobody is left behind, so they were ahead
    assert t.position("k") == 50 and isinstance(t.position("k"), int)


def test_power_model_overflow_of_behind_comes_from_ahead():
    t = backtest("power", p=0.5)
    t.place("k", ASK, 200, 1, 90)
    t.on_level(ASK, 200, 100)     # 10 behind
    t.on_level(ASK, 200, 70)      # 30 cancelled; f-share from ahead is sqrt(90)/(sqrt(90)+sqrt(10))
    share = math.sqrt(90) / (math.sqrt(90) + math.sqrt(10))
    from_ahead = 30 * share
    from_ahead += max(30 - from_ahead - 10, 0)
    assert t.position("k") == pytest.approx(90 - from_ahead)
    assert t.position("k") <= 70


@pytest.mark.parametrize("model,kw", ALL)
def test_trades_advance_then_fill_partially_then_fully(model, kw):
    t = backtest(model, **kw)
    t.place("k", BID, 100, 10, 40)
    assert t.on_trade(100, 30, aggressor_side=ASK) == []
    t.on_level(BID, 100, 10)                      # the trade's decrease: no cancel
    assert t.position("k") == 10
    assert t.on_trade(100, 14, aggressor_side=ASK) == [("k", 4)]
    assert t.position("k") == 0 and t.filled("k") == 4
    assert t.order("k").remaining == 6 and t.order("k").status == "resting"
    t.on_level(BID, 100, 0)
    assert t.on_trade(100, 100, aggressor_side=ASK) == [("k", 6)]
    o = t.order("k")
    assert (o.status, o.filled, o.remaining, t.position("k")) == ("filled", 10, 0, None)
    assert t.resting() == []


def test_trades_elsewhere_do_not_move_us_and_trade_through_fills():
    t = backtest("proportional")
    t.place("b", BID, 100, 5, 20)
    t.place("a", ASK, 105, 5, 20)
    assert t.on_trade(101, 50, aggressor_side=ASK) == []     # a better bid traded
    assert t.on_trade(100, 50, aggressor_side=BID) == []     # a buy at 100 hits asks, not us
    assert t.position("b") == 20 and t.position("a") == 20
    assert t.on_trade(99, 1, aggressor_side=ASK) == [("b", 5)]   # a sale below our bid
    assert t.on_trade(106, 1) == [("a", 5)]                    # a purchase above our ask
    off = QueueTracker("proportional", trade_through=False, own_in_level=False)
    off.place("b", BID, 100, 5, 20)
    assert off.on_trade(99, 1, aggressor_side=ASK) == [] and off.position("b") == 20


def test_unknown_aggressor_uses_the_side_where_we_rest():
    t = backtest("pessimistic")
    t.place("b", BID, 100, 5, 2)
    assert t.on_trade(100, 4) == [("b", 2)]


def test_level_vanishing_puts_us_first_without_inventing_a_fill():
    t = backtest("pessimistic")
    t.place("k", BID, 100, 10, 60)
    t.on_level(BID, 100, 0)
    assert t.position("k") == 0 and t.filled("k") == 0 and t.order("k").status == "resting"


def test_own_in_level_subtracts_our_orders_and_flags_a_level_below_them():
    t = QueueTracker("proportional")              # live: the feed's level contains our order
    t.place("k", BID, 100, 10, 30)
    t.on_level(BID, 100, 40)                      # our order shows up: no change
    assert t.position("k") == 30
    t.on_level(BID, 100, 50)                      # 10 behind
    t.on_level(BID, 100, 30)                      # 20 cancelled of 30 ahead + 10 behind
    assert t.position("k") == pytest.approx(30 - 20 * 30 / 40)
    t.on_level(BID, 100, 4)                       # less than our own 10: the feed contradicts it
    assert t.position("k") == 0 and t.order("k").inconsistent == 1
    assert t.order("k").status == "resting"


def test_own_reduce_and_cancel_are_not_taken_for_cancels_by_others():
    t = QueueTracker("proportional")
    t.place("k", BID, 100, 10, 30)
    t.on_level(BID, 100, 50)                      # 10 behind
    t.reduce("k", 4)
    t.on_level(BID, 100, 46)
    assert t.position("k") == 30 and t.order("k").remaining == 6
    t.place("j", BID, 100, 5, 46)                 # behind k and the 10 others
    t.cancel("k")
    t.on_level(BID, 100, 45)                      # 51 - k's 6
    assert t.position("j") == 40 and t.order("k").status == "cancelled"


def test_several_own_orders_share_a_trade_in_queue_order():
    t = backtest("pessimistic")
    t.place("first", ASK, 300, 10, 5)             # 5 ahead of it
    t.on_level(ASK, 300, 20)                      # 15 others join behind it
    t.place("second", ASK, 300, 10, 20)           # its others ahead: 5 + 15 (+ first's 10)
    assert t.position("second") == 30
    # 30 traded: 5 others, first's 10 (filled), then 15 of the others between the two
    assert t.on_trade(300, 30, aggressor_side=BID) == [("first", 10)]
    assert t.position("second") == 0
    assert t.on_trade(300, 3, aggressor_side=BID) == [("second", 3)]


def test_trade_credit_is_used_by_the_next_update_only():
    t = backtest("proportional")
    t.place("k", BID, 100, 1, 50)
    t.on_level(BID, 100, 100)                     # 50 behind
    t.on_trade(100, 10, aggressor_side=ASK)       # ahead 40
    t.on_level(BID, 100, 95)                      # +5 added and -10 traded: net -5, all trade
    assert t.position("k") == 40 and t.unmatched_trade_qty == 5
    t.on_level(BID, 100, 85)                      # the credit is gone: a cancel of 10
    assert t.position("k") == pytest.approx(40 - 10 * 40 / 95)


def test_bad_input_is_refused_with_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'fifo'"):
        QueueTracker("fifo")
    with pytest.raises(ValueError, match="p must be"):
        QueueTracker("power", p=-1)
    t = QueueTracker()
    with pytest.raises(ValueError, match="side must be BID"):
        t.place("k", 3, 100, 1, 0)
    with pytest.raises(ValueError, match="qty must be an int >= 1"):
        t.place("k", BID, 100, 0, 0)
    with pytest.raises(ValueError, match="level_qty"):
        t.place("k", BID, 100, 1, -2)
    t.place("k", BID, 100, 5, 0)
    with pytest.raises(ValueError, match="already tracked"):
        t.place("k", BID, 100, 5, 0)
    with pytest.raises(ValueError, match="cannot reduce by 6"):
        t.reduce("k", 6)
    with pytest.raises(KeyError, match="unknown order 'x'"):
        t.position("x")
    with pytest.raises(ValueError, match="aggressor_side"):
        t.on_trade(100, 1, aggressor_side=7)
    t.cancel("k")
    with pytest.raises(ValueError, match="is cancelled"):
        t.cancel("k")
    assert set(MODELS) == {"pessimistic", "proportional", "power", "log"}


# -- the driver over event arrays ------------------------------------------------------------

def test_track_events_reads_levels_trades_and_flags():
    ev = events_from_records([
        {"action": "set_level", "side": BID, "price": 100, "qty": 80, "instrument": 0},
        {"action": "set_level", "side": BID, "price": 100, "qty": 999, "instrument": 1},
        {"action": "trade", "price": 100, "qty": 500, "instrument": 0,
         "flags": int(Flags.HIDDEN | Flags.AGGRESSOR_SELL)},            # hidden: skipped
        {"action": "trade", "price": 100, "qty": 30, "instrument": 0,
         "flags": int(Flags.AGGRESSOR_BUY)},                            # hits asks: not us
        {"action": "trade", "price": 100, "qty": 62, "instrument": 0,
         "flags": int(Flags.AGGRESSOR_SELL)},                           # 60 ahead, fills 2
        {"action": "set_level", "side": BID, "price": 100, "qty": 18, "instrument": 0},
        {"action": "snapshot_begin", "instrument": 0},
        {"action": "set_level", "side": ASK, "price": 101, "qty": 5, "instrument": 0},
        {"action": "snapshot_end", "instrument": 0},
    ])
    t = backtest("pessimistic")
    t.place("k", BID, 100, 10, 60)
    assert track_events(t, ev, instrument=0) == [(4, "k", 2)]
    assert t.position("k") == 0 and t.filled("k") == 2
    t2 = backtest("pessimistic")
    t2.place("k", BID, 100, 10, 60)
    t2.on_level(BID, 100, 80)
    # the snapshot left our level out: it is empty, and we are first
    assert t2.apply(ev[6:]) == [] and t2.position("k") == 0


def test_track_events_execute_with_a_price_is_a_trade_against_its_side():
    ev = events_from_records([
        {"action": "execute", "side": BID, "price": 100, "qty": 7},
        {"action": "execute", "qty": 7, "order_id": 9},    # L3 execute without a price
    ])
    t = backtest("pessimistic")
    t.place("k", BID, 100, 10, 5)
    assert track_events(t, ev) == [(0, "k", 2)]
    assert Action.EXECUTE == 3


# -- properties against an exact FIFO queue ------------------------------------------------

ops = st.lists(st.tuples(st.sampled_from(["add", "cancel", "trade"]), st.integers(1, 40),
                         st.integers(0, 10**6)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(before=st.lists(st.integers(1, 40), max_size=6), own=st.integers(1, 30), steps=ops,
       model=st.sampled_from(range(len(ALL))), own_in_level=st.booleans())
def test_estimates_stay_within_the_level_and_equal_fifo_without_cancels(before, own, steps,
                                                                       model, own_in_level):
    name, kw = ALL[model]
    queue = [["o", q] for q in before]           # the real FIFO level, ours included
    t = QueueTracker(name, own_in_level=own_in_level, **kw)
    t.place("me", BID, 100, own, sum(before))
    queue.append(["me", own])
    cancelled = False
    for op, q, pick in steps:
        if op == "add":
            queue.append(["o", q])
        elif op == "cancel":
            others = [i for i, e in enumerate(queue) if e[0] == "o"]
            if not others:
                continue
            del queue[others[pick % len(others)]]
            cancelled = True
        else:
            left = q
            fills = t.on_trade(100, q, aggressor_side=ASK)
            real = 0
            while left and queue:
                take = min(left, queue[0][1])
                if queue[0][0] == "me":
                    real += take
                queue[0][1] -= take
                left -= take
                if queue[0][1] == 0:
                    queue.pop(0)
            if not cancelled:
                assert sum(f for _, f in fills) == real
        level = sum(e[1] for e in queue if own_in_level or e[0] == "o")
        t.on_level(BID, 100, level)
        o = t.order("me")
        ahead = t.position("me")
        if o.status == "resting":
            others = level - (o.remaining if own_in_level else 0)
            assert 0 <= ahead <= max(others, 0) + 1e-9
            # a level below our own remaining (the model missed a real fill) is flagged
            assert (o.inconsistent > 0) or others >= 0
        if not cancelled:
            exact = next((sum(e[1] for e in queue[:i]) for i, e in enumerate(queue)
                          if e[0] == "me"), None)
            assert (ahead if exact is not None else None) == (exact if o.status == "resting"
                                                              else None)


# -- the exact-information check on a synthetic ITCH day ------------------------------------

@pytest.fixture(scope="module")
def compared():
    events, _, _ = decode_events(itch_day(60_000, n_symbols=6, seed=7))
    return compare_with_l3(events, every=15)


def test_models_equal_exact_l3_positions_where_nobody_else_cancelled(compared):
    r = compared
    clean = r["clean"]
    assert r["orders"] > 500 and clean.sum() > 200 and (~clean).sum() > 1000
    err = r["estimate"] - r["exact"][:, None]
    assert np.array_equal(err[clean], np.zeros_like(err[clean]))
    # cancels ahead make the pessimistic model see too much ahead, and never too little
    pess = r["models"].index("pessimistic")
    assert err[~clean, pess].mean() > 0
    assert abs(err[~clean, r["models"].index("proportional")].mean()) < err[~clean, pess].mean()
    assert (r["estimate"] >= 0).all()
    assert (r["estimate"] <= (r["level"] + 1e-9)[:, None]).all()


def test_compare_with_l3_fill_records(compared):
    f = compared["fills"]
    real = f["real"]
    assert (real >= 0).sum() > 10
    assert len(f["model"]) == len(compared["models"])
    for m in f["model"]:
        assert m.shape == real.shape and ((m == -1) | (m >= 0)).all()
    with pytest.raises(ValueError, match="every must be"):
        compare_with_l3(decode_events(itch_day(100, n_symbols=2))[0], every=0)


def test_compare_with_l3_names_the_row_of_an_inconsistent_stream():
    ev = events_from_records([
        {"action": "add", "side": BID, "price": 100, "qty": 5, "order_id": 1},
        {"action": "delete", "order_id": 2},
    ])
    with pytest.raises(ValueError, match=r"row 1 \(DELETE\) names order 2"):
        compare_with_l3(ev)


def test_module_examples():
    import doctest

    from fastbook import queue

    result = doctest.testmod(queue)
    assert result.attempted > 5 and result.failed == 0


def test_exported_lazily_from_fastbook():
    import fastbook

    assert fastbook.QueueTracker is QueueTracker
