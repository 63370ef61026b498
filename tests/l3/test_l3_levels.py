"""The compiled L3 book's price index against the twin, on walks that churn levels.

The compiled book keeps each level in a record that stays put while the level
lives (orders name their level's record; a compact sorted key array with the
record ids is the price index). These walks create and empty levels at every
depth, at the top, the bottom and in between, grow the index while levels are
live, reuse freed records, and replace orders onto the level they leave (or a
level they just emptied), comparing every read with the pure-Python twin after
every step. The batch walks do the same through ``BookSet.apply``, where a
failure in raise mode must roll the levels back exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastbook import _pyl3
from fastbook.errors import UpdateError
from fastbook.events import Action, empty_events
from tests.helpers.events import assert_same_reads
from tests.helpers.impls import require

_l3 = require("fastbook._l3")

BID, ASK = 1, 2


def both(c, t, method, *args):
    """Call ``method`` on both books; the results (or the errors) must agree."""
    results = []
    for book in (c, t):
        try:
            results.append((getattr(book, method)(*args), None))
        except UpdateError as exc:
            results.append((None, str(exc)))
    assert results[0] == results[1], (method, args, results)
    return results[0]


@pytest.mark.parametrize("seed", range(6))
def test_level_churn_walk(seed):
    rng = np.random.default_rng(seed)
    kwargs = {"price_decimals": 2, "capacity": 0, "order_capacity": 16}
    c, t = _l3.OrderBook(**kwargs), _pyl3.OrderBook(**kwargs)
    # the span grows and shrinks, so the index is grown while levels are live and
    # most adds open a level at some depth (or at a price just emptied)
    span = int(rng.integers(3, 8))
    live: dict[int, int] = {}       # order id -> side
    next_id = 1
    for step in range(1200):
        if step % 150 == 0:
            span = int(rng.integers(3, 90))
        op = rng.random()
        if op < 0.45 or not live:
            side = BID if rng.random() < 0.5 else ASK
            tick = int(rng.integers(0, span))
            price = 10_000 - 1 - tick if side == BID else 10_000 + tick
            both(c, t, "add", next_id, side, price, int(rng.integers(1, 9)))
            live[next_id] = side
            next_id += 1
        else:
            oid = list(live)[int(rng.integers(0, len(live)))]
            side = live[oid]
            if op < 0.80:
                both(c, t, "delete", oid)
                del live[oid]
            elif op < 0.88:
                remaining = t.order(oid)[2]
                qty = int(rng.integers(1, remaining + 1))
                both(c, t, "execute" if rng.random() < 0.5 else "reduce", oid, qty)
                if qty == remaining:
                    del live[oid]
            else:
                # onto its own level, a neighbour, or far away; new id or the same
                old_price = t.order(oid)[1]
                step_ticks = int(rng.choice([0, 0, 1, -1, 7, -30]))
                price = old_price + step_ticks
                new_id = oid if rng.random() < 0.3 else next_id
                next_id += new_id != oid
                both(c, t, "replace", oid, new_id, int(rng.integers(1, 9)), price)
                del live[oid]
                live[new_id] = side
        if step % 7 == 0 or step > 1150:
            assert_same_reads(c, t)
    assert_same_reads(c, t)
    # and back to empty: every level goes, then the book refills over freed records
    for oid in list(live):
        both(c, t, "delete", oid)
    assert c.depth(BID) == c.depth(ASK) == 0 and c.best_bid() is c.best_ask() is None
    for k in range(40):
        both(c, t, "add", next_id + k, BID if k & 1 else ASK,
             9_990 - k if k & 1 else 10_010 + k, 1)
    assert_same_reads(c, t)


def test_replace_onto_the_level_it_empties():
    c = _l3.OrderBook(price_decimals=0, capacity=0)
    c.add(1, BID, 100, 5)
    c.add(2, BID, 99, 5)
    assert c.replace(1, 3, 7, 100) is True          # alone at the best: level re-made
    assert list(c.levels(BID)) == [(100, 7), (99, 5)]
    assert c.replace(2, 2, 4, 101) is True          # moves above the best
    assert list(c.levels(BID)) == [(101, 4), (100, 7)]
    assert c.order(2) == (BID, 101, 4) and c.order(3) == (BID, 100, 7)
    c.delete(3)
    c.delete(2)
    assert c.depth(BID) == 0 and c.best_bid() is None


def _bookset_pair(on_error):
    books = []
    for mod in (_l3, _pyl3):
        bs = mod.BookSet(on_error=on_error)
        for k in range(3):
            bs.add_instrument(f"S{k}", price_decimals=2, capacity=0, order_capacity=16)
        books.append(bs)
    return books


def _levels(bs):
    return [[list(bs[k].levels(side)) for side in (BID, ASK)] for k in range(3)]


@pytest.mark.parametrize("seed", range(4))
def test_bookset_rollback_restores_levels(seed):
    """Raise mode: a batch that fails half-way leaves every level as it was."""
    rng = np.random.default_rng(100 + seed)
    c, t = _bookset_pair("raise")
    live: dict[tuple[int, int], int] = {}
    next_id = 1
    for batch in range(30):
        n = int(rng.integers(5, 60))
        ev = empty_events(n)
        planned = dict(live)
        for i in range(n):
            inst = int(rng.integers(0, 3))
            ev["instrument"][i] = inst
            mine = [oid for (k, oid) in planned if k == inst]
            if rng.random() < 0.5 or not mine:
                side = BID if rng.random() < 0.5 else ASK
                tick = int(rng.integers(0, 40))
                ev["action"][i] = Action.ADD
                ev["side"][i] = side
                ev["price"][i] = 5_000 - 1 - tick if side == BID else 5_000 + tick
                ev["qty"][i] = int(rng.integers(1, 9))
                ev["order_id"][i] = next_id
                planned[(inst, next_id)] = side
                next_id += 1
            else:
                oid = mine[int(rng.integers(0, len(mine)))]
                ev["action"][i] = Action.DELETE
                ev["order_id"][i] = oid
                del planned[(inst, oid)]
        fail = batch % 3 == 2
        if fail:    # an unknown order late in the batch: all of it must be undone
            k = int(rng.integers(n // 2, n))
            ev["action"][k] = Action.DELETE
            ev["order_id"][k] = 10**12 + batch
        before = _levels(c)
        outcomes = []
        for bs in (c, t):
            try:
                bs.apply(ev)
                outcomes.append(None)
            except UpdateError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1]
        if fail:
            assert outcomes[0] is not None and _levels(c) == before
        else:
            live = planned
        assert _levels(c) == _levels(t)
        for k in range(3):
            assert_same_reads(c[k], t[k], memory=False)
