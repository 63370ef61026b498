"""Samplers and per-event callbacks of BookSet.apply: unit tests and compiled-vs-twin."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbook import _pyl3
from fastbook.errors import UpdateError
from fastbook.events import Flags, events_from_records
from fastbook.sampling import Sampler
from tests.helpers.events import apply_both, as_events, event_records, make_set
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import L3_PAIRS as IMPLS
from tests.helpers.impls import requires_compiled

needs_compiled = requires_compiled(_l3, reason="compiled L3 book disabled or not built")

BID, ASK = 1, 2
EVERY, INTERVAL, BBO = Sampler.EVERY, Sampler.INTERVAL, Sampler.BBO


@pytest.fixture(params=sorted(IMPLS))
def l3mod(request):
    return IMPLS[request.param][0]


def add(oid, side, price, qty, ts=0, inst=0, seq=0):
    return {"action": "add", "order_id": oid, "side": side, "price": price, "qty": qty,
            "ts_exchange": ts, "instrument": inst, "sequence": seq}


def delete(oid, ts=0, inst=0, seq=0):
    return {"action": "delete", "order_id": oid, "ts_exchange": ts, "instrument": inst,
            "sequence": seq}


def rows(sampler):
    """The sampler's rows as plain tuples (ts, instrument, sequence, reason, 4 level lists)."""
    c = sampler.columns()
    return [(int(c["ts"][r]), int(c["instrument"][r]), int(c["sequence"][r]), int(c["reason"][r]),
             c["bid_px"][r].tolist(), c["bid_qty"][r].tolist(), c["ask_px"][r].tolist(),
             c["ask_qty"][r].tolist()) for r in range(len(sampler))]


# ---------------------------------------------------------------------------
# the rules, on hand-computed cases
# ---------------------------------------------------------------------------

def test_every_counts_events_per_instrument(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=2, every=2)
    events = events_from_records([
        add(1, BID, 100, 5, ts=10, seq=1),
        add(2, ASK, 103, 7, ts=11, inst=1, seq=2),
        add(3, BID, 99, 1, ts=12, seq=3),           # 2nd event of instrument 0: row
        add(4, ASK, 104, 2, ts=13, inst=1, seq=4),  # 2nd event of instrument 1: row
        add(5, ASK, 101, 3, ts=14, seq=5),
        delete(1, ts=15, seq=6),                    # 4th of instrument 0: row
    ])
    assert bs.apply(events, sampler=s) == 6
    assert rows(s) == [
        (12, 0, 3, EVERY, [100, 99], [5, 1], [0, 0], [0, 0]),
        (13, 1, 4, EVERY, [0, 0], [0, 0], [103, 104], [7, 2]),
        (15, 0, 6, EVERY, [99, 0], [1, 0], [101, 0], [3, 0]),
    ]


def test_on_bbo_fires_on_price_or_quantity_change_only(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, on_bbo=True)
    events = events_from_records([
        add(1, BID, 100, 5, seq=1),     # bbo changes: row
        add(2, BID, 99, 5, seq=2),      # behind the touch: no row
        add(3, BID, 100, 2, seq=3),     # touch quantity 5 -> 7: row
        add(4, ASK, 102, 1, seq=4),     # ask appears: row
        delete(2, seq=5),               # behind the touch: no row
        {"action": "trade", "price": 100, "qty": 1, "sequence": 6},   # no book effect
        delete(4, seq=7),               # ask gone: row
    ])
    bs.apply(events, sampler=s)
    assert [(r[2], r[4], r[5], r[6], r[7]) for r in rows(s)] == [
        (1, [100], [5], [0], [0]),
        (3, [100], [7], [0], [0]),
        (4, [100], [7], [102], [1]),
        (7, [100], [7], [0], [0]),
    ]
    assert set(s.columns()["reason"].tolist()) == {BBO}


def test_on_bbo_starts_from_the_book_as_it_was(l3mod):
    bs = make_set(l3mod)
    bs.apply(events_from_records([add(1, BID, 100, 5)]))
    s = Sampler(depth=1, on_bbo=True)
    bs.apply(events_from_records([add(2, BID, 99, 5)]), sampler=s)   # the bbo did not change
    assert len(s) == 0


def test_interval_rows_hold_the_book_as_of_each_grid_point(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, interval=100)
    events = events_from_records([
        add(1, BID, 100, 5, ts=50, seq=1),     # first event: grid starts at 100
        add(2, BID, 101, 1, ts=100, seq=2),    # ts == grid point: part of the state at 100
        add(3, BID, 102, 1, ts=101, seq=3),    # crosses 100: row at 100 (best 101), before it
        add(4, BID, 103, 1, ts=150, seq=4),    # next grid point is 200: nothing
        add(5, BID, 104, 1, ts=777, seq=5),    # crosses 200..700: one row at 200 (best 103)
        add(6, BID, 105, 1, ts=801, seq=6),    # crosses 800: row at 800 (best 104)
    ])
    bs.apply(events, sampler=s)
    assert [(r[0], r[2], r[3], r[4]) for r in rows(s)] == [
        (100, 3, INTERVAL, [101]),
        (200, 5, INTERVAL, [103]),
        (800, 6, INTERVAL, [104]),
    ]


def test_interval_grid_of_negative_and_extreme_times(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, interval=10)
    big = 2**63 - 5
    bs.apply(events_from_records([add(1, BID, 100, 5, ts=-25), add(2, BID, 101, 1, ts=-15),
                         add(3, BID, 102, 1, ts=big), add(4, BID, 103, 1, ts=2**63 - 1)]),
             sampler=s)
    # -25 -> grid -20; -15 crosses -20: row; big crosses -10: row at -10; then the
    # next grid point would overflow int64, so it is clamped and never crossed
    assert [(r[0], r[4]) for r in rows(s)] == [(-20, [100]), (-10, [101])]


def test_interval_and_other_rules_on_one_event_give_two_rows(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, interval=10, every=1, on_bbo=True)
    bs.apply(events_from_records([add(1, BID, 100, 5, ts=5, seq=1),
                                  add(2, BID, 101, 5, ts=15, seq=2)]), sampler=s)
    assert [(r[0], r[2], r[3], r[4]) for r in rows(s)] == [
        (5, 1, EVERY | BBO, [100]),
        (10, 2, INTERVAL, [100]),
        (15, 2, EVERY | BBO, [101]),
    ]


def test_chosen_instruments_and_l2_books(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=2, every=1, instruments=[2])
    bs.apply(events_from_records([
        add(1, BID, 100, 5),
        {"action": "set_level", "instrument": 2, "side": ASK, "price": 7, "qty": 3,
         "sequence": 9},
        {"action": "set_level", "instrument": 2, "side": ASK, "price": 6, "qty": 1,
         "ts_exchange": 4},
    ]), sampler=s)
    assert rows(s) == [(0, 2, 9, EVERY, [0, 0], [0, 0], [7, 0], [3, 0]),
                       (4, 2, 0, EVERY, [0, 0], [0, 0], [6, 7], [1, 3])]


def test_instruments_added_later_are_sampled_when_none_chosen(l3mod):
    bs = l3mod.BookSet()
    bs.add_instrument("A", price_decimals=2)
    s = Sampler(depth=1, every=1)
    bs.apply(events_from_records([add(1, BID, 100, 5)]), sampler=s)
    bs.add_instrument("B", price_decimals=2)
    bs.apply(events_from_records([add(1, ASK, 200, 5, inst=1)]), sampler=s)
    assert [(r[1], r[4], r[6]) for r in rows(s)] == [(0, [100], [0]), (1, [0], [200])]


# ---------------------------------------------------------------------------
# storage: growth, take/clear, arrow
# ---------------------------------------------------------------------------

def test_columns_grow_from_capacity_one(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=3, every=1, capacity=1)
    n = 1000
    events = events_from_records([add(i + 1, BID, 90 + i % 7, 1 + i % 3, ts=i, seq=i)
                                  for i in range(n)])
    bs.apply(events, sampler=s)
    assert len(s) == n and s.capacity >= n
    c = s.columns()
    assert c["ts"].tolist() == list(range(n))
    assert c["sequence"].dtype == np.uint64 and c["instrument"].dtype == np.uint32
    assert c["bid_px"].shape == (n, 3)
    assert c["bid_px"][-1].tolist() == [96, 95, 94]
    assert c["bid_qty"][-1].tolist() == bs[0].top(3)[1].tolist()


def test_growing_keeps_rows_and_views_taken_before(l3mod):
    """Columns grow in place (a realloc) when nothing else holds them, and into new
    arrays when views from columns() are out: those views keep their rows, unchanged."""
    def run(capacity, peek_at):
        bs = make_set(l3mod)
        s = Sampler(depth=2, every=1, capacity=capacity)
        seen = {}
        for k in range(0, 600, 50):
            bs.apply(events_from_records([add(i + 1, BID if i % 2 else ASK,
                                              (90 + i % 7) if i % 2 else (120 - i % 5),
                                              1 + i % 3, ts=i, seq=i)
                                          for i in range(k, k + 50)]), sampler=s)
            if k in peek_at:
                seen[k] = ({n: c.copy() for n, c in s.columns().items()}, s.columns())
        return s, seen

    reference, _ = run(4096, ())
    want = reference.columns()
    grown, seen = run(1, (100, 300))
    assert grown.capacity >= 600
    got = grown.columns()
    for name in want:
        assert got[name].tolist() == want[name].tolist(), name
    for copies, views in seen.values():   # the views from before later growths
        for name in copies:
            assert views[name].tolist() == copies[name].tolist(), name


def test_a_growth_cut_short_leaves_a_usable_sampler(l3mod, monkeypatch):
    """Columns grow one by one; if memory runs out halfway, apply fails cleanly and the
    sampler's capacity is its shortest column, so no row is ever written past an end."""
    bs = make_set(l3mod, "skip")
    s = Sampler(depth=2, every=1, capacity=8)
    events = events_from_records([add(i + 1, BID, 100 - i % 9, 1, seq=i) for i in range(8)])
    bs.apply(events, sampler=s)
    from fastbook import sampling

    calls = []
    real_moved = sampling._moved

    def moved(old, shape, count):
        calls.append(shape)
        if len(calls) == 3:
            raise MemoryError("no memory (test)")
        return real_moved(old, shape, count)

    # in-place growth refused (as with views out), and the third new column fails
    monkeypatch.setattr(sampling, "_moved", moved)
    held = s.columns()
    with pytest.raises(MemoryError):
        bs.apply(events_from_records([add(100, BID, 50, 1, seq=99)]), sampler=s)
    monkeypatch.undo()
    assert s.capacity == 8 and len(s) == 8
    assert held["sequence"].tolist() == list(range(8))
    s.clear()
    assert bs.apply(events_from_records([add(101, BID, 51, 1, seq=100)]), sampler=s) == 1
    assert s.columns()["sequence"].tolist() == [100]


def test_large_columns_grow_into_fresh_arrays(l3mod, monkeypatch):
    """Past _FRESH_BYTES a column grows by moving to a new array (huge pages): the rows
    and the views taken before stay as they were, whatever the path each column took."""
    from fastbook import sampling

    monkeypatch.setattr(sampling, "_FRESH_BYTES", 256)    # level columns move, ts too
    bs, ref = make_set(l3mod), make_set(l3mod)
    s, big = Sampler(depth=2, every=1, capacity=2), Sampler(depth=2, every=1, capacity=4096)
    held = None
    for k in range(0, 300, 30):
        events = events_from_records([add(i + 1, BID if i % 3 else ASK,
                                          (90 + i % 7) if i % 3 else (130 - i % 4),
                                          1 + i % 5, ts=i, seq=i) for i in range(k, k + 30)])
        bs.apply(events, sampler=s)
        ref.apply(events, sampler=big)
        if k == 120:
            held = {n: (c, c.copy()) for n, c in s.columns().items()}
    assert s.capacity >= 300 and rows(s) == rows(big)
    for name, (view, copy) in held.items():
        assert view.tolist() == copy.tolist(), name


def test_take_gives_back_spare_capacity(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, every=1, capacity=64)
    bs.apply(events_from_records([add(i + 1, BID, 100 - i, 1, seq=i) for i in range(70)]),
             sampler=s)
    assert s.capacity == 128
    out = s.take()
    assert len(out["ts"]) == 70 and out["sequence"].tolist() == list(range(70))
    # the rows' buffer was cut to them in place (no view of it was out)
    assert out["ts"].base is not None and out["ts"].base.shape == (70,)
    assert out["bid_px"].base.shape == (70, 1)
    # with a view out, the column is left as it is (the view stays valid)
    bs.apply(events_from_records([add(100 + i, BID, 10 + i, 1, seq=i) for i in range(70)]),
             sampler=s)
    held = s.columns()["sequence"]
    out = s.take()
    assert held.tolist() == out["sequence"].tolist() == list(range(70))
    assert out["sequence"].base.shape == (128,)


def test_take_hands_rows_over_and_views_stay_valid(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, every=1)
    bs.apply(events_from_records([add(1, BID, 100, 5, seq=1)]), sampler=s)
    first = s.take()
    view = s.columns()
    assert len(s) == 0 and len(view["ts"]) == 0
    bs.apply(events_from_records([add(2, BID, 101, 5, seq=2)]), sampler=s)
    assert first["sequence"].tolist() == [1] and first["bid_px"].tolist() == [[100]]
    assert s.columns()["sequence"].tolist() == [2]
    s.clear()
    assert len(s) == 0


def test_to_arrow_wraps_the_columns_without_copying(l3mod):
    pa = pytest.importorskip("pyarrow")
    bs = make_set(l3mod)
    s = Sampler(depth=2, every=1)
    bs.apply(events_from_records([add(1, BID, 100, 5, seq=1), add(2, ASK, 102, 3, seq=2)]),
             sampler=s)
    table = s.to_arrow()
    assert table.column_names == ["ts", "instrument", "sequence", "reason", "bid_px", "bid_qty",
                                  "ask_px", "ask_qty"]
    assert table.schema.field("bid_px").type == pa.list_(pa.int64(), 2)
    assert table.column("ask_px").to_pylist() == [[0, 0], [102, 0]]
    flat = table.column("bid_px").chunk(0).values
    assert flat.buffers()[1].address == s.columns()["bid_px"].ctypes.data


# ---------------------------------------------------------------------------
# errors: raise mode takes rows back, skip mode keeps them, misuse is refused
# ---------------------------------------------------------------------------

def test_raise_mode_failure_takes_back_rows_and_rule_state(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, every=2, interval=10, on_bbo=True, capacity=1)
    bs.apply(events_from_records([add(1, BID, 100, 5, ts=1, seq=1)]), sampler=s)
    before = rows(s)
    bad = events_from_records([add(2, BID, 101, 5, ts=25, seq=2), add(3, BID, 102, 5, ts=26, seq=3),
                      delete(99, ts=27, seq=4)])
    message = r"^event 2: cannot delete order 99: it is not in the book \(instrument 0, 'AAPL'\)$"
    with pytest.raises(UpdateError, match=message) as info:
        bs.apply(bad, sampler=s)
    assert info.value.index == 2
    assert rows(s) == before
    # the same events without the bad one give what they would have given the first time
    bs.apply(bad[:2], sampler=s)
    assert [(r[0], r[2], r[3]) for r in rows(s)] == [
        (1, 1, BBO), (10, 2, INTERVAL), (25, 2, EVERY | BBO), (26, 3, BBO)]


def test_skip_mode_keeps_rows_and_skipped_events_do_not_count(l3mod):
    bs = make_set(l3mod, on_error="skip")
    s = Sampler(depth=1, every=2, interval=10)
    bs.apply(events_from_records([add(1, BID, 100, 5, ts=1, seq=1), delete(99, ts=15, seq=2),
                         add(2, BID, 101, 5, ts=16, seq=3)]), sampler=s)
    # the failed delete still crossed the grid point 10 (row before it), but only
    # the two applied adds count towards every=2
    assert [(r[0], r[2], r[3], r[4]) for r in rows(s)] == [
        (10, 2, INTERVAL, [100]), (16, 3, EVERY, [101])]


def test_sampler_refuses_a_second_bookset_and_bad_arguments(l3mod):
    s = Sampler(every=1)
    bs1, bs2 = make_set(l3mod), make_set(l3mod)
    bs1.apply(events_from_records([add(1, BID, 100, 5)]), sampler=s)
    with pytest.raises(ValueError, match="another BookSet"):
        bs2.apply(events_from_records([add(1, BID, 100, 5)]), sampler=s)
    with pytest.raises(TypeError, match="Sampler"):
        bs1.apply(events_from_records([add(2, BID, 100, 5)]), sampler=object())
    with pytest.raises(TypeError, match="callable"):
        bs1.apply(events_from_records([add(2, BID, 100, 5)]), callback=3)
    assert bs1[0].order(2) is None          # nothing was applied by the refused calls


@pytest.mark.parametrize("kwargs, match", [
    ({}, "at least one rule"),
    ({"every": 0}, "every"),
    ({"interval": -5}, "interval"),
    ({"every": 1.5}, "every"),
    ({"depth": 0, "every": 1}, "depth"),
    ({"depth": 1001, "every": 1}, "depth"),
    ({"every": 1, "instruments": [-1]}, "instruments"),
    ({"every": 1, "capacity": 0}, "capacity"),
])
def test_sampler_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Sampler(**kwargs)
    with pytest.raises(TypeError, match="on_bbo"):
        Sampler(on_bbo=1)


# ---------------------------------------------------------------------------
# the per-event callback (the slow path)
# ---------------------------------------------------------------------------

def test_callback_sees_every_applied_event_in_order(l3mod):
    bs = make_set(l3mod, on_error="skip")
    seen = []
    events = events_from_records([add(1, BID, 100, 5), delete(99), add(2, ASK, 101, 5, inst=1)])
    bs.apply(events, callback=lambda i, inst: seen.append((i, inst, bs[inst].bbo())))
    assert seen == [(0, 0, (100, 5, None, None)), (2, 1, (None, None, 101, 5))]


def test_callback_is_used_for_large_batches_too(l3mod):
    bs = make_set(l3mod)
    count = []
    events = events_from_records([add(i + 1, BID, 100, 1) for i in range(600)])
    bs.apply(events, callback=lambda i, inst: count.append(i))
    assert count == list(range(600))


class Stop(Exception):
    pass


def test_callback_exception_rolls_back_in_raise_mode(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, every=1)

    def callback(i, inst):
        if i == 1:
            raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        bs.apply(events_from_records([add(1, BID, 100, 5), add(2, BID, 101, 5)]), sampler=s,
                 callback=callback)
    assert bs[0].bbo() == (None, None, None, None) and len(s) == 0


def test_callback_exception_keeps_applied_events_in_skip_mode(l3mod):
    bs = make_set(l3mod, on_error="skip")

    def callback(i, inst):
        if i == 1:
            raise Stop

    with pytest.raises(Stop):
        bs.apply(events_from_records([add(1, BID, 100, 5), add(2, BID, 101, 5),
                                      add(3, BID, 102, 5)]), callback=callback)
    assert bs[0].best_bid() == (101, 5) and bs[0].order(3) is None


def test_callback_exception_is_not_leaked(l3mod):
    bs = make_set(l3mod)
    exc = Stop()

    def callback(i, inst):
        raise exc

    for _ in range(3):
        with pytest.raises(Stop):
            bs.apply(events_from_records([add(1, BID, 100, 5)]), callback=callback)
    gc.collect()
    # the raises held by pytest.raises are gone; the kernel must not hold extra refs
    assert sys.getrefcount(exc) <= 3


# ---------------------------------------------------------------------------
# differential: the compiled loop against the twin's
# ---------------------------------------------------------------------------

timed_records = st.tuples(event_records, st.integers(-3, 40))
sampler_kwargs = st.fixed_dictionaries({
    "depth": st.integers(1, 4),
    "every": st.one_of(st.none(), st.integers(1, 4)),
    "interval": st.one_of(st.none(), st.integers(1, 30)),
    "on_bbo": st.booleans(),
    "instruments": st.one_of(st.none(), st.sets(st.integers(0, 3), max_size=3)),
}).filter(lambda k: k["every"] or k["interval"] or k["on_bbo"])


def _same_rows(a, b):
    assert rows(a) == rows(b)


def _apply_both(compiled, twin, samplers, events):
    """Apply ``events`` to the compiled and the twin set, each with its sampler; all agree."""
    apply_both(compiled, twin, samplers, events, _same_rows)


@needs_compiled
@pytest.mark.parametrize("on_error", ["raise", "skip", "stop"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(kwargs=sampler_kwargs,
       batches=st.lists(st.lists(timed_records, max_size=30), min_size=1, max_size=6))
def test_differential_sampler(on_error, kwargs, batches):
    compiled, twin = make_set(_l3, on_error), make_set(_pyl3, on_error)
    samplers = Sampler(capacity=1, **kwargs), Sampler(capacity=2, **kwargs)
    clock = 0
    for batch in batches:
        records = []
        for rec, step in batch:
            clock += step
            records.append(dict(rec, ts_exchange=clock, sequence=len(records)))
        _apply_both(compiled, twin, samplers, as_events(records))


# ---------------------------------------------------------------------------
# packet mode: the rules per venue message (Sampler(packets=True))
# ---------------------------------------------------------------------------

LAST = int(Flags.LAST_IN_PACKET)


def test_packets_take_rows_at_message_ends_only(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, on_bbo=True, every=2, packets=True)
    events = events_from_records([
        # a message on two instruments, then one on instrument 0, then an unflagged tail
        dict(add(1, BID, 100, 5, ts=10, seq=1), flags=0),
        dict(add(2, ASK, 200, 7, ts=10, inst=1, seq=1), flags=0),
        dict(add(3, BID, 101, 5, ts=10, seq=1), flags=0),
        dict(add(4, ASK, 201, 1, ts=10, inst=1, seq=1), flags=LAST),
        dict(add(5, BID, 102, 5, ts=20, seq=2), flags=LAST),
        dict(add(6, BID, 99, 5, ts=30, seq=3), flags=0),
        dict(add(7, BID, 103, 5, ts=30, seq=3), flags=0),
    ])
    assert bs.apply(events, sampler=s) == 7
    # rows after each instrument's last event of a packet (the batch's end ends one)
    assert [(r[0], r[1], r[3], r[4]) for r in rows(s)] == [
        (10, 0, BBO, [101]), (10, 1, BBO, [0]), (20, 0, EVERY | BBO, [102]),
        (30, 0, BBO, [103])]
    assert "packets=True" in repr(s)


def test_packets_interval_rows_come_before_a_message(l3mod):
    bs = make_set(l3mod)
    s = Sampler(depth=1, interval=10, packets=True)
    events = events_from_records([
        dict(add(1, BID, 100, 5, ts=5, seq=1), flags=LAST),
        dict(add(2, BID, 101, 5, ts=12, seq=2), flags=0),     # 12 > 10: the grid point 10
        dict(add(3, BID, 102, 5, ts=25, seq=2), flags=LAST),  # inside the message: no row
        dict(add(4, BID, 103, 5, ts=31, seq=3), flags=LAST),  # the grid point 20
    ])
    bs.apply(events, sampler=s)
    assert [(r[0], r[2], r[3], r[4]) for r in rows(s)] == [
        (10, 2, INTERVAL, [100]), (20, 3, INTERVAL, [102])]


def test_sampler_packets_argument():
    with pytest.raises(TypeError, match="packets must be a bool"):
        Sampler(on_bbo=True, packets=1)


packet_records = st.tuples(event_records, st.integers(-3, 40), st.booleans())


@needs_compiled
@pytest.mark.parametrize("on_error", ["raise", "skip", "stop"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(kwargs=sampler_kwargs,
       batches=st.lists(st.lists(packet_records, max_size=30), min_size=1, max_size=6))
def test_differential_packet_sampler(on_error, kwargs, batches):
    """Sampler(packets=True): the compiled loop's packet marks and rules against the twin's."""
    compiled, twin = make_set(_l3, on_error), make_set(_pyl3, on_error)
    samplers = (Sampler(capacity=1, packets=True, **kwargs),
                Sampler(capacity=2, packets=True, **kwargs))
    clock = 0
    for batch in batches:
        records = []
        for rec, step, last in batch:
            clock += step
            records.append(dict(rec, ts_exchange=clock, sequence=len(records),
                                flags=LAST if last else 0))
        _apply_both(compiled, twin, samplers, as_events(records))
