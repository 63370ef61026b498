"""Side-keyed order books, in-place modifies (KEEP_PRIORITY) and ranks.

J-GATE ITCH ids are unique only per (order book, side), so an L3 book can key
its orders by (side, id); a J-GATE modify keeps the order's id and its queue
place when the price is unchanged and the quantity does not grow; and the feed
states each order's rank, which ``OrderBook.rank`` computes. Everything runs on
the compiled book and the pure-Python twin, and a hypothesis state machine
compares the two.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import fastbook
from fastbook import _pyl3
from fastbook.errors import UpdateError
from fastbook.events import Action, Flags, events_from_records
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import pair

BID, ASK = fastbook.BID, fastbook.ASK
IMPLS = pair(_pyl3, _l3)


@pytest.fixture(params=sorted(IMPLS))
def impl(request):
    return IMPLS[request.param]


def keyed(impl, **kw):
    return impl.OrderBook(price_decimals=0, side_keys=True, **kw)


def test_same_id_lives_on_both_sides(impl):
    ob = keyed(impl)
    assert ob.side_keys
    ob.add(7, BID, 100, 5)
    ob.add(7, ASK, 101, 3)          # another order: ids are unique per side only
    assert ob.order_count == 2
    assert ob.order(7, side=BID) == (BID, 100, 5)
    assert ob.order(7, side=ASK) == (ASK, 101, 3)
    assert 7 in ob and (BID, 7) in ob and (ASK, 7) in ob and (ASK, 8) not in ob
    ob.execute(7, 2, side=ASK)
    assert ob.order(7, side=ASK) == (ASK, 101, 1)
    assert ob.order(7, side=BID) == (BID, 100, 5)
    ob.delete(7, side=BID)
    assert ob.order(7, side=BID) is None and ob.bbo() == (None, None, 101, 1)
    with pytest.raises(UpdateError, match="already in the book"):
        ob.add(7, ASK, 105, 1)


def test_plain_book_still_refuses_the_same_id_twice(impl):
    ob = impl.OrderBook(price_decimals=0)
    assert not ob.side_keys
    ob.add(7, BID, 100, 5)
    with pytest.raises(UpdateError, match="already in the book"):
        ob.add(7, ASK, 101, 3)
    ob.execute(7, 1, side=ASK)          # side is ignored by a book keyed by id alone
    assert ob.order(7) == (BID, 100, 4)


def test_side_keyed_book_needs_the_side(impl):
    ob = keyed(impl)
    ob.add(1, BID, 100, 5)
    for call in (lambda: ob.execute(1, 1), lambda: ob.reduce(1, 1), lambda: ob.delete(1),
                 lambda: ob.replace(1, 2, 1, 100), lambda: ob.modify(1, 1, 100)):
        with pytest.raises(UpdateError, match=r"keys orders by \(side, id\)"):
            call()
    for read in (ob.order, ob.queue_position, ob.rank):
        with pytest.raises(UpdateError, match="pass side="):
            read(1)
    assert ob.order(1, side=BID) == (BID, 100, 5)
    skip = keyed(impl, on_error="skip")
    skip.add(1, BID, 100, 5)
    assert skip.delete(1) is False and skip.errors["bad_side"] == 1
    assert skip.order(1, side=BID) == (BID, 100, 5)


def test_replace_duplicate_is_checked_on_the_same_side(impl):
    ob = keyed(impl)
    ob.add(1, BID, 100, 5)
    ob.add(2, ASK, 101, 5)
    ob.replace(1, 2, 4, 99, side=BID)       # id 2 is live on the other side only: fine
    assert ob.order(2, side=BID) == (BID, 99, 4) and ob.order(2, side=ASK) == (ASK, 101, 5)
    ob.add(3, BID, 98, 1)
    with pytest.raises(UpdateError, match="order 3 is already in the book"):
        ob.replace(2, 3, 1, 97, side=BID)


def test_modify_keeps_place_only_at_same_price_without_growth(impl):
    ob = impl.OrderBook(price_decimals=0)
    for oid in (1, 2, 3):
        ob.add(oid, BID, 100, 10)
    ob.modify(2, 4, 100)                    # smaller, same price: keeps its place
    assert ob.orders_at(BID, 100) == [(1, 10), (2, 4), (3, 10)]
    ob.modify(2, 4, 100)                    # unchanged: nothing moves
    assert ob.orders_at(BID, 100) == [(1, 10), (2, 4), (3, 10)]
    ob.modify(1, 11, 100)                   # grows: to the back
    assert ob.orders_at(BID, 100) == [(2, 4), (3, 10), (1, 11)]
    ob.modify(3, 1, 101)                    # new price: to the back of the new level
    assert ob.orders_at(BID, 101) == [(3, 1)] and ob.best_bid() == (101, 1)
    assert ob.qty_at(BID, 100) == 15
    with pytest.raises(UpdateError, match="not in the book"):
        ob.modify(9, 1, 100)
    with pytest.raises(UpdateError, match="quantity must be >= 1"):
        ob.modify(2, 0, 100)


def test_rank_counts_better_levels_and_queue(impl):
    ob = keyed(impl)
    ob.add(1, BID, 100, 5)
    ob.add(2, BID, 101, 5)
    ob.add(3, BID, 100, 5)
    ob.add(4, BID, 99, 5)
    ob.add(1, ASK, 103, 5)
    ob.add(5, ASK, 102, 5)
    assert [ob.rank(i, side=BID) for i in (2, 1, 3, 4)] == [1, 2, 3, 4]
    assert ob.rank(5, side=ASK) == 1 and ob.rank(1, side=ASK) == 2
    assert ob.rank(6, side=ASK) is None
    ob.modify(1, 1, 100, side=BID)          # keeps its place
    assert ob.rank(1, side=BID) == 2
    ob.modify(1, 2, 100, side=BID)          # grows: behind order 3
    assert ob.rank(1, side=BID) == 3 and ob.rank(3, side=BID) == 2


def _events(rows):
    return events_from_records(rows)


def test_bookset_routes_side_keyed_events_and_keep_priority(impl):
    bs = impl.BookSet()
    bs.add_instrument("NK225F", venue="XOSE", price_decimals=0, side_keys=True)
    bs.apply(_events([
        {"action": "add", "order_id": 5, "side": BID, "price": 100, "qty": 10},
        {"action": "add", "order_id": 5, "side": ASK, "price": 102, "qty": 10},
        {"action": "add", "order_id": 6, "side": BID, "price": 100, "qty": 10},
        {"action": "replace", "order_id": 5, "new_order_id": 5, "side": BID, "price": 100,
         "qty": 7, "flags": int(Flags.KEEP_PRIORITY)},
        {"action": "execute", "order_id": 5, "side": ASK, "qty": 4},
    ]))
    ob = bs[0]
    assert ob.orders_at(BID, 100) == [(5, 7), (6, 10)]
    assert ob.order(5, side=ASK) == (ASK, 102, 6)
    # the same replace without KEEP_PRIORITY loses the place
    bs.apply(_events([{"action": "replace", "order_id": 5, "new_order_id": 5, "side": BID,
                       "price": 100, "qty": 7}]))
    assert ob.orders_at(BID, 100) == [(6, 10), (5, 7)]
    # a side-keyed book refuses a side-less delete
    with pytest.raises(UpdateError, match=r"event 0: cannot delete order 6: this book keys"):
        bs.apply(_events([{"action": "delete", "order_id": 6, "side": 0}]))


def test_bookset_rollback_restores_keyed_books_and_places(impl):
    bs = impl.BookSet()
    bs.add_instrument("X", price_decimals=0, side_keys=True)
    bs.apply(_events([
        {"action": "add", "order_id": 1, "side": BID, "price": 100, "qty": 10},
        {"action": "add", "order_id": 1, "side": ASK, "price": 101, "qty": 10},
        {"action": "add", "order_id": 2, "side": BID, "price": 100, "qty": 10},
    ]))
    before = (bs[0].orders_at(BID, 100), bs[0].orders_at(ASK, 101), bs[0].order_count)
    keep = int(Flags.KEEP_PRIORITY)
    with pytest.raises(UpdateError, match="event 5"):
        bs.apply(_events([
            {"action": "replace", "order_id": 1, "new_order_id": 1, "side": BID, "price": 100,
             "qty": 3, "flags": keep},
            {"action": "replace", "order_id": 2, "new_order_id": 2, "side": BID, "price": 100,
             "qty": 30, "flags": keep},
            {"action": "delete", "order_id": 1, "side": ASK},
            {"action": "add", "order_id": 1, "side": ASK, "price": 99, "qty": 1},
            {"action": "execute", "order_id": 1, "side": BID, "qty": 1},
            {"action": "delete", "order_id": 9, "side": BID},       # fails: all undone
        ]))
    assert (bs[0].orders_at(BID, 100), bs[0].orders_at(ASK, 101), bs[0].order_count) == before


# ---------------------------------------------------------------------------
# compiled against twin
# ---------------------------------------------------------------------------

pytestmark_diff = pytest.mark.skipif("compiled" not in IMPLS, reason="compiled core not built")

ids = st.integers(0, 12)
sides = st.one_of(st.sampled_from([BID, ASK]), st.sampled_from([0, 3]))
prices = st.integers(95, 104)
qtys = st.one_of(st.integers(1, 20), st.sampled_from([0, -1]))


def outcome(book, method, *args, **kwargs):
    try:
        return getattr(book, method)(*args, **kwargs), None
    except Exception as exc:
        return None, (type(exc), str(exc))


class SideKeyedMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        kw = {"price_decimals": 0, "capacity": 0, "order_capacity": 16, "side_keys": True}
        self.compiled = _l3.OrderBook(**kw)
        self.twin = _pyl3.OrderBook(**kw)

    def both(self, method, *args, **kwargs):
        got = outcome(self.compiled, method, *args, **kwargs)
        want = outcome(self.twin, method, *args, **kwargs)
        assert got == want, (method, args, kwargs, got, want)

    @rule(oid=ids, side=sides, price=prices, qty=qtys)
    def add(self, oid, side, price, qty):
        self.both("add", oid, side, price, qty)

    @rule(oid=ids, side=sides, qty=qtys, verb=st.sampled_from(["execute", "reduce"]))
    def take(self, oid, side, qty, verb):
        self.both(verb, oid, qty, side=side)

    @rule(oid=ids, side=sides)
    def delete(self, oid, side):
        self.both("delete", oid, side=side)

    @rule(oid=ids, new=ids, side=sides, qty=qtys, price=prices)
    def replace(self, oid, new, side, qty, price):
        self.both("replace", oid, new, qty, price, side=side)

    @rule(oid=ids, side=sides, qty=qtys, price=prices)
    def modify(self, oid, side, qty, price):
        self.both("modify", oid, qty, price, side=side)

    @invariant()
    def same_state(self):
        c, t = self.compiled, self.twin
        assert c.bbo() == t.bbo() and c.order_count == t.order_count
        for side in (BID, ASK):
            assert list(c.levels(side)) == list(t.levels(side))
            for price, _ in t.levels(side):
                assert c.orders_at(side, price) == t.orders_at(side, price)
            for oid in range(13):
                for name in ("order", "queue_position", "rank"):
                    assert getattr(c, name)(oid, side=side) == getattr(t, name)(oid, side=side)


if "compiled" in IMPLS:
    TestSideKeyedDifferential = SideKeyedMachine.TestCase
    TestSideKeyedDifferential.settings = settings(
        max_examples=60, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow])


@pytestmark_diff
@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("side_keys", [False, True])
def test_bookset_events_compiled_equal_twin(on_error, side_keys):
    from hypothesis import given

    action = st.sampled_from([Action.ADD, Action.ADD, Action.EXECUTE, Action.DELETE,
                              Action.REPLACE, Action.REPLACE])
    row = st.fixed_dictionaries({
        "action": action, "order_id": ids, "new_order_id": ids, "side": sides,
        "price": prices, "qty": qtys,
        "flags": st.sampled_from([0, int(Flags.KEEP_PRIORITY)]),
    })

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.lists(row, min_size=1, max_size=12), min_size=1, max_size=6))
    def run(batches):
        sets = []
        for mod in (_l3, _pyl3):
            bs = mod.BookSet(on_error=on_error)
            bs.add_instrument("X", price_decimals=0, side_keys=side_keys)
            sets.append(bs)
        for batch in batches:
            rows = [dict(r, action=int(r["action"])) for r in batch]
            ev = _events(rows)
            got = [outcome(bs, "apply", ev) for bs in sets]
            assert got[0] == got[1], (rows, got)
            c, t = sets[0][0], sets[1][0]
            for side in (BID, ASK):
                assert list(c.levels(side)) == list(t.levels(side))
                for price, _ in t.levels(side):
                    assert c.orders_at(side, price) == t.orders_at(side, price)
            assert sets[0].errors == sets[1].errors

    run()


def test_keep_priority_flag_value():
    assert int(Flags.KEEP_PRIORITY) == 0x0200
    assert np.dtype(fastbook.events.EVENT_DTYPE).itemsize == 64
