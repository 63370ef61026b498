"""Tests of fastbook.synth: the seeded L2 workload is deterministic and valid for every book."""

from __future__ import annotations

import bisect
import dataclasses
import doctest

import numpy as np
import pytest

import fastbook
from fastbook import _pycore, synth
from fastbook.synth import L2Workload, l2_workload
from tests.helpers.impls import requires_compiled

BID, ASK = 1, 2
ARRAYS = ("snapshot_sides", "snapshot_prices", "snapshot_qtys", "sides", "prices", "qtys",
          "structural")
DTYPES = {"snapshot_sides": np.int8, "snapshot_prices": np.int64, "snapshot_qtys": np.int64,
          "sides": np.int8, "prices": np.int64, "qtys": np.int64, "structural": np.bool_}


@pytest.fixture(scope="module")
def w200k() -> L2Workload:
    return l2_workload(200_000)


@pytest.fixture(scope="module")
def w20k() -> L2Workload:
    return l2_workload(20_000, seed=7)


def _load(book, w: L2Workload):
    book.apply(w.snapshot_sides, w.snapshot_prices, w.snapshot_qtys)
    return book


def _assert_same(a: L2Workload, b: L2Workload) -> None:
    assert (a.price_decimals, a.qty_decimals) == (b.price_decimals, b.qty_decimals)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# -- shape and determinism ---------------------------------------------------------------

def test_fields_dtypes_and_scales(w20k: L2Workload) -> None:
    assert len(w20k) == 20_000
    assert (w20k.price_decimals, w20k.qty_decimals) == (2, 3)
    for name in ARRAYS:
        arr = getattr(w20k, name)
        assert arr.dtype == DTYPES[name], name
        assert arr.ndim == 1 and arr.flags.c_contiguous, name
    n_snap = w20k.snapshot_sides.shape[0]
    assert w20k.snapshot_prices.shape == w20k.snapshot_qtys.shape == (n_snap,)
    assert w20k.prices.shape == w20k.qtys.shape == w20k.structural.shape == (20_000,)
    assert set(np.unique(w20k.sides).tolist()) == {BID, ASK}
    assert set(np.unique(w20k.snapshot_sides).tolist()) == {BID, ASK}
    assert (w20k.snapshot_qtys > 0).all()
    assert (w20k.qtys >= 0).all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        w20k.price_decimals = 4  # type: ignore[misc]


def test_snapshot_has_about_levels_around_50000(w200k: L2Workload) -> None:
    w = w200k
    assert 1900 <= w.snapshot_sides.shape[0] <= 2100
    bids = w.snapshot_prices[w.snapshot_sides == BID]
    asks = w.snapshot_prices[w.snapshot_sides == ASK]
    assert bids.max() == 4_999_999 and asks.min() == 5_000_000  # 49,999.99 x 50,000.00
    assert abs(bids.shape[0] - asks.shape[0]) < 100
    assert np.unique(bids).shape == bids.shape and np.unique(asks).shape == asks.shape
    # best first on each side
    assert (np.diff(bids) < 0).all() and (np.diff(asks) > 0).all()
    # a 1,250-tick ladder per side, so everything within 12.50 of the mid
    assert bids.min() >= 5_000_000 - 1250 and asks.max() < 5_000_000 + 1250


def test_same_seed_same_arrays(w20k: L2Workload) -> None:
    _assert_same(l2_workload(20_000, seed=7), w20k)


def test_different_seed_differs(w20k: L2Workload) -> None:
    other = l2_workload(20_000, seed=8)
    assert not np.array_equal(other.snapshot_prices, w20k.snapshot_prices)
    assert not np.array_equal(other.prices, w20k.prices)
    assert not np.array_equal(other.qtys, w20k.qtys)


def test_default_seed_is_documented_one(w200k: L2Workload) -> None:
    _assert_same(l2_workload(200_000, seed=20240607), w200k)


def test_shorter_stream_is_a_prefix(w200k: L2Workload) -> None:
    short = l2_workload(70_000)  # crosses one internal chunk boundary (65,536)
    for name in ARRAYS:
        full = getattr(w200k, name)
        if name.startswith("snapshot"):
            np.testing.assert_array_equal(getattr(short, name), full)
        else:
            np.testing.assert_array_equal(getattr(short, name), full[:70_000])


def test_stream_is_pinned(w200k: L2Workload) -> None:
    # Golden values: any change to the generator shows up here (and moves the benchmarks).
    w = l2_workload(8)
    assert w.snapshot_sides.shape[0] == 2007
    assert w.sides.tolist() == [1, 2, 1, 2, 2, 2, 2, 1]
    assert w.prices.tolist() == [4999990, 5000002, 4999997, 5000022, 5000001, 5000038, 5000005,
                                 4999894]
    assert w.qtys.tolist() == [413, 10404, 42972, 10, 82, 5359, 1904, 88]
    assert not w.structural.any()
    assert int(w200k.snapshot_qtys.sum()) == 25_167_638
    assert int(w200k.prices.sum()) == 1_000_004_431_634
    assert int(w200k.qtys.sum()) == 1_990_774_467
    assert int(w200k.structural.sum()) == 82_888
    assert int((w200k.sides == BID).sum()) == 99_627


def test_docstring_examples() -> None:
    result = doctest.testmod(synth, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5
    assert result.failed == 0


def test_zero_updates() -> None:
    w = l2_workload(0)
    assert len(w) == 0
    assert w.sides.dtype == np.int8 and w.structural.dtype == np.bool_
    # the snapshot is drawn before the updates: the same as with updates after it
    one = l2_workload(1)
    for name in ("snapshot_sides", "snapshot_prices", "snapshot_qtys"):
        np.testing.assert_array_equal(getattr(w, name), getattr(one, name), err_msg=name)
    assert set(w.snapshot_sides.tolist()) == {BID, ASK}   # slot 0 of each side holds a level


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, None])
def test_bad_n_updates(bad: object) -> None:
    with pytest.raises(ValueError, match="n_updates"):
        l2_workload(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1, 0, -5, 2.0, False])
def test_bad_levels(bad: object) -> None:
    with pytest.raises(ValueError, match="levels"):
        l2_workload(10, levels=bad)  # type: ignore[arg-type]


# -- validity: the replay through the pure-Python twin ------------------------------------

def _replay_checked(w: L2Workload) -> _pycore.Book:
    """Apply update by update through the twin, checking every invariant as it goes."""
    book = _load(_pycore.Book(price_decimals=w.price_decimals, qty_decimals=w.qty_decimals), w)
    assert not book.is_crossed()
    assert book.missing_deletes == 0
    assert len(book) == w.snapshot_sides.shape[0]
    depth = {BID: book.depth(BID), ASK: book.depth(ASK)}
    for i, (s, p, q, x) in enumerate(zip(w.sides.tolist(), w.prices.tolist(), w.qtys.tolist(),
                                         w.structural.tolist(), strict=True)):
        before = book.qty_at(s, p)
        assert q == 0 or q != before, f"update {i} sets the size it already has"
        book.set(s, p, q)
        after = book.depth(s)
        assert x == (after != depth[s]), f"update {i}: structural={x}, depth {depth[s]}->{after}"
        assert abs(after - depth[s]) <= 1
        depth[s] = after
        assert not book.is_crossed(), f"update {i} crossed or locked the book"
        assert book.missing_deletes == 0, f"update {i} deleted an absent level"
    return book


def _final_levels(w: L2Workload) -> dict[int, list[tuple[int, int]]]:
    """The book ``w`` leaves, by a dict per side (absolute sizes, 0 deletes), best first."""
    book: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
    for sides, prices, qtys in ((w.snapshot_sides, w.snapshot_prices, w.snapshot_qtys),
                                (w.sides, w.prices, w.qtys)):
        for s, p, q in zip(sides.tolist(), prices.tolist(), qtys.tolist(), strict=True):
            if q:
                book[s][p] = q
            else:
                book[s].pop(p, None)
    return {BID: sorted(book[BID].items(), reverse=True), ASK: sorted(book[ASK].items())}


def test_twin_replay_never_crosses_and_structural_is_exact(w20k: L2Workload) -> None:
    book = _replay_checked(w20k)
    assert book.missing_deletes == 0
    assert book.depth(BID) > 500 and book.depth(ASK) > 500


@pytest.mark.parametrize("levels", [2, 3, 30, 450])
def test_small_books_stay_valid(levels: int) -> None:
    # bands with no slots fall back to the whole ladder; the invariants still hold
    w = l2_workload(3000, levels=levels, seed=levels)
    assert set(w.snapshot_sides.tolist()) == {BID, ASK}   # slot 0 of each side holds a level
    book = _replay_checked(w)
    want = _final_levels(w)
    for side in (BID, ASK):
        assert list(book.levels(side)) == want[side]
    assert book.best_bid() == (want[BID][0] if want[BID] else None)
    assert book.best_ask() == (want[ASK][0] if want[ASK] else None)


def test_mid_random_walks(w200k: L2Workload) -> None:
    book = _load(fastbook.Book(price_decimals=2, qty_decimals=3), w200k)
    mids = []
    for i in range(0, len(w200k), 1000):
        book.apply(w200k.sides[i:i + 1000], w200k.prices[i:i + 1000], w200k.qtys[i:i + 1000])
        mids.append(book.mid())
        assert book.spread() >= 1
    # about 4,000 one-tick moves in 200,000 updates: the mid wanders tens of ticks
    assert max(mids) - min(mids) >= 20
    assert len(set(mids)) >= 20
    assert book.missing_deletes == 0


# -- shares --------------------------------------------------------------------------------

def _ranks(w: L2Workload) -> np.ndarray:
    """Rank (1 = best) of each update's price on its side, in the book just before it.

    For an insert, the rank the new level takes.
    """
    keys: dict[int, list[int]] = {BID: [], ASK: []}
    for s, p in zip(w.snapshot_sides.tolist(), w.snapshot_prices.tolist(), strict=True):
        keys[s].append(-p if s == BID else p)
    for lst in keys.values():
        lst.sort()
    ranks = []
    for s, p, q in zip(w.sides.tolist(), w.prices.tolist(), w.qtys.tolist(), strict=True):
        k = -p if s == BID else p
        lst = keys[s]
        i = bisect.bisect_left(lst, k)
        ranks.append(i + 1)
        present = i < len(lst) and lst[i] == k
        if q == 0:
            assert present
            del lst[i]
        elif not present:
            lst.insert(i, k)
    return np.array(ranks)


def test_band_shares(w200k: L2Workload) -> None:
    r = _ranks(w200k)
    top, mid, deep = (r <= 10).mean(), ((r > 10) & (r <= 200)).mean(), (r > 200).mean()
    assert top == pytest.approx(0.60, abs=0.025)
    assert mid == pytest.approx(0.30, abs=0.025)
    assert deep == pytest.approx(0.10, abs=0.015)


def test_delete_insert_and_side_shares(w200k: L2Workload) -> None:
    deletes = (w200k.qtys == 0).mean()
    structural = w200k.structural.mean()
    assert deletes == pytest.approx(0.20, abs=0.015)
    # inserts balance deletes (steady depth), so structural is about twice the deletes
    assert structural == pytest.approx(0.41, abs=0.02)
    assert (w200k.structural[w200k.qtys == 0]).all()
    assert (w200k.sides == BID).mean() == pytest.approx(0.5, abs=0.01)


def test_depth_stays_steady(w200k: L2Workload) -> None:
    book = _load(fastbook.Book(price_decimals=2, qty_decimals=3), w200k)
    start = len(book)
    book.apply(w200k.sides, w200k.prices, w200k.qtys)
    assert 0.8 * start <= len(book) <= 1.3 * start


# -- compiled core and twin agree on the whole stream ---------------------------------------

@requires_compiled()
def test_compiled_apply_matches_twin(w200k: L2Workload) -> None:
    from fastbook import _core

    fast = _load(_core.Book(price_decimals=2, qty_decimals=3), w200k)
    twin = _load(_pycore.Book(price_decimals=2, qty_decimals=3), w200k)
    assert fast.apply(w200k.sides, w200k.prices, w200k.qtys) == len(w200k)
    assert twin.apply(w200k.sides, w200k.prices, w200k.qtys) == len(w200k)
    for side in (BID, ASK):
        fp, fq = fast.to_arrays(side)
        tp, tq = twin.to_arrays(side)
        np.testing.assert_array_equal(fp, tp)
        np.testing.assert_array_equal(fq, tq)
        assert fp.shape[0] > 500
    assert fast.bbo() == twin.bbo()
    assert fast.missing_deletes == twin.missing_deletes == 0
    assert not fast.is_crossed()
