"""The compiled L2 book's price window against the twin, with the layout changes forced.

The compiled ``Book`` keeps the top of each side in a window of slots indexed by
price on a grid it learns from the prices (``_core.pxd``, ``fb_ladder``), and
the rest in a sorted array; it rebuilds the window when the top leaves it,
refines the grid when a price falls between its slots, and falls back to a
plain sorted ladder for prices too sparse or too extreme for a window. None of
that may show: after every step every read must equal the pure-Python twin's.
The scenario tests check that each layout change really happens.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbook import _pycore
from fastbook.errors import UpdateError
from fastbook.events import Action, empty_events

try:
    from fastbook import _core, _l3
    from fastbook.codecs import _checksum
except ImportError:  # pragma: no cover
    _core = None

pytestmark = pytest.mark.skipif(_core is None, reason="compiled core not built")

BID, ASK = 1, 2
INT64_MAX = 2**63 - 1


def pair(capacity=0):
    return (_core.Book(price_decimals=2, qty_decimals=0, capacity=capacity),
            _pycore.Book(price_decimals=2, qty_decimals=0, capacity=capacity))


def assert_same(fast, ref, probe=None, capacity=True):
    for side in (BID, ASK):
        assert [a.tolist() for a in fast.to_arrays(side)] == \
            [a.tolist() for a in ref.to_arrays(side)], side
        assert fast.depth(side) == ref.depth(side)
        assert list(fast.levels(side)) == list(ref.levels(side))
        if probe is not None:
            assert fast.qty_at(side, probe) == ref.qty_at(side, probe)
    assert fast.bbo() == ref.bbo()
    assert fast.top(3).tolist() == ref.top(3).tolist()
    assert len(fast) == len(ref)
    assert fast.missing_deletes == ref.missing_deletes
    if capacity:        # a copy is sized to its contents, not to the original's capacity
        assert fast.capacity(BID) == ref.capacity(BID)


def columns(steps):
    """``steps`` as the three arrays ``Book.apply`` takes."""
    return (np.array([s for s, _, _ in steps], dtype=np.int8),
            np.array([p for _, p, _ in steps], dtype=np.int64),
            np.array([q for _, _, q in steps], dtype=np.int64))


def run(fast, ref, steps, every=1):
    """Both books take ``steps``; set's result always agrees, every read every ``every`` steps."""
    for i, (side, price, qty) in enumerate(steps):
        assert fast.set(side, price, qty) == ref.set(side, price, qty), (side, price, qty)
        assert fast.bbo() == ref.bbo()
        if i % every == 0 or i == len(steps) - 1:
            assert_same(fast, ref, price)


# -- hypothesis: random walks on random grids, with jumps and off-grid prices ----------------

@st.composite
def walks(draw):
    base = draw(st.sampled_from([0, 10**7, -(10**7), 2**61 - 5_000, -(2**61) + 5_000, 2**62]))
    tick = draw(st.sampled_from([1, 3, 100, 2**44, 2**46]))
    n = draw(st.integers(1, 80))
    steps = []
    for _ in range(n):
        side = draw(st.sampled_from([BID, ASK]))
        kind = draw(st.sampled_from(["near"] * 6 + ["far", "jump", "off"]))
        if kind == "near":
            k = draw(st.integers(-40, 40))
        elif kind == "far":
            k = draw(st.integers(-3000, 3000))
        else:
            k = draw(st.integers(-300_000, 300_000))
        price = base + tick * k
        if kind == "off" and tick > 1:
            price += draw(st.integers(1, tick - 1))
        price = max(-INT64_MAX, min(INT64_MAX, price))
        qty = draw(st.integers(0, 3))
        steps.append((side, price, qty))
    return steps


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(walks())
def test_walks_match_the_twin(steps):
    fast, ref = pair()
    run(fast, ref, steps)
    # the same steps as one batch, and a copy, a pickle and a truncation of the result
    batch, ref2 = pair()
    arr = columns(steps)
    batch.apply(*arr)
    ref2.apply(*arr)
    assert_same(batch, ref2)
    assert_same(fast.copy(), ref, capacity=False)
    assert_same(pickle.loads(pickle.dumps(fast)), ref, capacity=False)
    for side in (BID, ASK):
        assert _checksum.truncate(fast, side, 5) == _checksum.truncate(ref, side, 5)
    assert_same(fast, ref)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(walks(), st.integers(0, 79))
def test_clear_in_the_middle(steps, at):
    fast, ref = pair()
    run(fast, ref, steps[:at])
    fast.clear()
    ref.clear()
    assert fast._layout(BID)["quantum"] == 0
    run(fast, ref, steps[at:])


# -- scenarios: each layout change happens, and reads stay right -----------------------------

def grid_steps(side, start, tick, count, qty=5):
    return [(side, start + i * tick, qty + i % 3) for i in range(count)]


def test_a_dense_side_gets_a_window_on_its_grid():
    fast, ref = pair()
    run(fast, ref, grid_steps(BID, 1_000_000, -100, 40))
    lay = fast._layout(BID)
    assert lay["mode"] == "window" and lay["quantum"] == 100
    assert lay["window_levels"] + lay["sorted_levels"] == 40
    assert lay["window_slots"] >= 64 and lay["window_slots"] & (lay["window_slots"] - 1) == 0


def test_a_price_between_slots_refines_the_grid():
    fast, ref = pair()
    run(fast, ref, grid_steps(ASK, 500_000, 100, 30))
    assert fast._layout(ASK)["quantum"] == 100
    run(fast, ref, [(ASK, 500_050, 7)])                 # off the grid, inside the window
    assert fast._layout(ASK)["quantum"] == 50
    run(fast, ref, [(ASK, 600_030, 2)])                 # off the grid, below the window
    assert fast._layout(ASK)["quantum"] == 10
    assert fast._layout(ASK)["mode"] == "window"
    run(fast, ref, [(ASK, 500_050, 0), (ASK, 600_030, 0), (ASK, 600_031, 0)])
    # a new best far off the grid and far away: too sparse for a window of 10-unit slots
    run(fast, ref, [(ASK, 400_033, 2)])
    assert fast._layout(ASK) | {"quantum": 1, "mode": "sorted"} == fast._layout(ASK)


def test_a_rising_top_moves_the_window_up():
    fast, ref = pair()
    # every insert is a new best: the window moves up again and again
    steps = grid_steps(BID, 10_000, 1, 3_000)
    batch_fast, batch_ref = pair()
    batch_fast.apply(*columns(steps))
    batch_ref.apply(*columns(steps))
    assert_same(batch_fast, batch_ref)
    lay = batch_fast._layout(BID)
    assert lay["mode"] == "window" and lay["sorted_levels"] > 0
    run(fast, ref, steps[:300], every=5)


def test_deleting_the_window_rebuilds_it_on_the_levels_below():
    fast, ref = pair()
    steps = grid_steps(BID, 100_000, -1, 2_500)
    run(fast, ref, steps[:50])
    for b in (fast, ref):
        b.apply(*columns(steps[50:]))
    assert fast._layout(BID)["sorted_levels"] > 1_000
    # delete from the top down, well past the window's bottom
    run(fast, ref, [(BID, 100_000 - i, 0) for i in range(2_000)], every=7)
    lay = fast._layout(BID)
    assert lay["mode"] == "window" and lay["window_levels"] + lay["sorted_levels"] == 500


def test_a_window_grows_when_levels_pile_up_below_it():
    fast, ref = pair()
    steps = grid_steps(ASK, 50_000, 1, 2_000)
    run(fast, ref, steps[:20])
    assert fast._layout(ASK)["window_slots"] == 64
    for b in (fast, ref):
        b.apply(*columns(steps[20:]))
    assert_same(fast, ref)
    lay = fast._layout(ASK)
    assert lay["window_slots"] >= 1024 and lay["window_levels"] >= 512


def test_the_last_level_gone_and_back():
    fast, ref = pair()
    run(fast, ref, grid_steps(ASK, 700, 1, 10))
    run(fast, ref, [(ASK, 700 + i, 0) for i in range(10)])
    assert len(fast) == 0 and fast._layout(ASK)["mode"] == "sorted"
    run(fast, ref, [(ASK, 650, 1), (ASK, 651, 0), (ASK, 652, 2)])
    assert fast._layout(ASK)["mode"] == "window"     # the grid is remembered


def test_sparse_or_extreme_prices_use_the_sorted_ladder():
    fast, ref = pair()
    # gaps of 10**9 units: the grid is 10**9 and the side is dense on it
    run(fast, ref, [(BID, i * 10**9, 1) for i in range(1, 40)])
    assert fast._layout(BID)["mode"] == "window"
    run(fast, ref, [(BID, 7, 1)])                     # gcd 1: a window of 1 unit slots is useless
    assert fast._layout(BID)["mode"] == "sorted"
    fast2, ref2 = pair()
    run(fast2, ref2, [(ASK, INT64_MAX - i, 1) for i in range(20)])  # beyond +-2**61
    assert fast2._layout(ASK)["mode"] == "sorted"
    run(fast2, ref2, [(ASK, INT64_MAX - i, 0) for i in range(0, 20, 2)])


def test_levels_iterator_fails_after_a_rebuild():
    fast, _ = pair()
    for side, price, qty in grid_steps(BID, 1_000, 1, 100):
        fast.set(side, price, qty)
    it = fast.levels(BID)
    assert next(it) == (1_099, 5 + 99 % 3)
    fast.set(BID, 1_000_000, 1)                       # far above: the window moves
    with pytest.raises(RuntimeError, match="changed"):
        next(it)


def test_bookset_rollback_restores_a_moved_window():
    bs = _l3.BookSet()          # the compiled one, whatever fastbook exports
    bs.add_instrument("X", kind="l2", price_decimals=2, qty_decimals=0)
    ref = _pycore.Book(price_decimals=2, qty_decimals=0)
    ev = empty_events(60)
    ev["action"] = Action.SET_LEVEL
    ev["side"] = BID
    ev["price"][:50] = np.arange(10_000, 10_050)
    ev["qty"] = 3
    bs.apply(ev[:50])
    for p in range(10_000, 10_050):
        ref.set(BID, p, 3)
    book = bs[0]
    assert book._layout(BID)["mode"] == "window"
    before = book._layout(BID)
    # a batch that moves the window far up, refines the grid, then fails
    ev["price"][50:58] = [2_000_000, 2_000_001, 3, 10_020, 10_021, 5, 6, 7]
    ev["qty"][50:58] = [1, 1, 1, 0, 0, 1, 1, 1]
    ev["action"][58] = 99
    with pytest.raises(UpdateError, match="event 8"):
        bs.apply(ev[50:59])
    assert_same(book, ref, capacity=False)
    assert book._layout(BID)["quantum"] == before["quantum"]
    for side, price, qty in [(BID, 10_060, 1), (BID, 10_000, 0), (BID, 9_990, 4)]:
        one = empty_events(1)
        one["action"], one["side"], one["price"], one["qty"] = Action.SET_LEVEL, side, price, qty
        bs.apply(one)
        ref.set(side, price, qty)
        assert_same(book, ref, price, capacity=False)


# -- best-first snapshot loads into an empty book (applied worst first inside) ---------------

def _snapshot(n, *, interleave, gaps, zeros):
    """``n`` levels a side, best first: bids falling from 100_000, asks rising from 100_050."""
    rng = np.random.default_rng(n + 7 * interleave + 3 * zeros)
    steps_b = (rng.integers(1, 4, n) if gaps else np.ones(n, np.int64)).cumsum() * 5
    steps_a = (rng.integers(1, 4, n) if gaps else np.ones(n, np.int64)).cumsum() * 5
    bids = [(BID, 100_000 - int(d), 0 if zeros and k % 9 == 4 else 1 + k % 13)
            for k, d in enumerate(steps_b)]
    asks = [(ASK, 100_050 + int(d), 0 if zeros and k % 11 == 5 else 1 + k % 7)
            for k, d in enumerate(steps_a)]
    if interleave:
        return [x for pair_ in zip(bids, asks, strict=True) for x in pair_]
    return bids + asks


@pytest.mark.parametrize("n", [31, 32, 33, 200, 5_000])
@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("zeros", [False, True])
def test_best_first_snapshot_load_matches_the_twin(n, interleave, zeros):
    """The compiled apply loads such a batch last first (it would be quadratic in order);
    every read, the missing-delete count and the updates that follow must be unchanged."""
    fast, ref = pair()
    steps = _snapshot(n, interleave=interleave, gaps=True, zeros=zeros)
    assert fast.apply(*columns(steps)) == ref.apply(*columns(steps)) == len(steps)
    assert_same(fast, ref, steps[len(steps) // 2][1])
    assert fast.missing_deletes == ref.missing_deletes == sum(1 for s in steps if s[2] == 0)
    run(fast, ref, [(BID, 100_000 - 10, 0), (ASK, 100_050 + 5, 9), (BID, 100_001, 4),
                    (ASK, 100_040, 2), (BID, 100_000 - 5 * n, 0)])


@pytest.mark.parametrize("case", ["repeat", "improving", "not_empty", "bad"])
def test_batches_that_are_not_best_first_loads_apply_in_order(case):
    """A repeated or improving price, a book that is not empty or an invalid update: the
    batch is applied in order (a repeated price keeps its last quantity)."""
    fast, ref = pair()
    steps = _snapshot(100, interleave=False, gaps=False, zeros=False)
    if case == "repeat":            # the same price twice in a row: still not worse
        steps.insert(41, (BID, steps[40][1], 77))
    elif case == "improving":
        steps.insert(60, (BID, 100_500, 3))
    elif case == "not_empty":
        for book in (fast, ref):
            book.set(ASK, 200_000, 1)
    if case == "bad":
        steps.insert(70, (BID, 5, -1))
        for book in (fast, ref):
            with pytest.raises(UpdateError, match=r"update 70"):
                book.apply(*columns(steps))
        assert len(fast) == len(ref) == 0
        return
    assert fast.apply(*columns(steps)) == ref.apply(*columns(steps))
    assert_same(fast, ref)
    if case == "repeat":
        assert fast.qty_at(BID, steps[41][1]) == ref.qty_at(BID, steps[41][1]) == 77
