"""BookSet.apply's prefetch pipeline: compiled against the pure-Python twin at its edges.

The compiled loop looks up to 32 events ahead (the event itself, then its book
header, hash slot, order record and queue neighbours) while it applies event i. The
lookahead only issues cache hints and must change no result, so these batches aim at
what could go wrong if it did: batches shorter than, equal to and just longer than
each stage's distance, errors in the middle of a batch (raise mode rolls back, skip
mode counts), events switching between many books of both kinds and a side-keyed
book, instruments outside the set, books whose pools and hash tables grow or are
cleared between an event's lookahead and its turn, and a per-event callback that
grows (reserves room in) a book the lookahead already looked at.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbook import _pyl3
from fastbook.events import Action
from tests.helpers.events import as_events, outcome
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import requires_compiled

pytestmark = requires_compiled(_l3, reason="compiled L3 book disabled or not built")


@pytest.fixture(autouse=True)
def _always_prefetch():
    """apply skips the pipeline for a few small books; these tests are about the pipeline."""
    previous = _l3._set_prefetch("always")
    yield
    _l3._set_prefetch(previous)

BID, ASK = 1, 2
INT64_MIN = -(2**63)
L3_BOOKS = 5            # instruments 0-4: L3 books (4 is side-keyed)
L2_BOOK = 5             # instrument 5: an L2 book
SIDE_KEYED = 4
#: The pipeline's distances (_PF_EVENT, _PF_BOOK, _PF_SLOT, _PF_RECORD, _PF_LINKS in
#: _l3.pyx: 32, 16, 10, 5, 2) and their neighbours.
EDGE_SIZES = (0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 15, 16, 17, 31, 32, 33)


def make_set(mod, on_error):
    """Five L3 books (tiny pools, so they grow mid-batch; one side-keyed) and an L2 book."""
    bs = mod.BookSet(on_error=on_error)
    for i in range(L3_BOOKS):
        if i == SIDE_KEYED:
            book = mod.OrderBook(price_decimals=2, order_capacity=0, capacity=0,
                                 on_error="skip" if on_error == "skip" else "raise",
                                 side_keys=True)
            assert bs.add_book(book, symbol=f"S{i}") == i
        else:
            assert bs.add_instrument(f"S{i}", price_decimals=2, order_capacity=0,
                                     capacity=0) == i
    assert bs.add_instrument("L2", kind="l2", price_decimals=2, capacity=0) == L2_BOOK
    return bs


def state(bs):
    out = []
    for i in range(len(bs)):
        book = bs[i]
        levels = []
        for side in (BID, ASK):
            for price, qty in book.levels(side):
                orders = None
                if i < L3_BOOKS:
                    orders = tuple(book.orders_at(side, price))
                levels.append((side, price, qty, orders))
        count = book.order_count if i < L3_BOOKS else book.missing_deletes
        out.append((levels, count))
    return out, bs.errors, [bs.instrument_errors(i) for i in range(len(bs))]


# Order ids from a small range, so deletes, executions and replaces mostly find their
# order, and adds often collide in the hash tables; a few wild values for errors.
l3_event = st.fixed_dictionaries({
    "instrument": st.integers(0, L3_BOOKS - 1),
    "action": st.sampled_from([Action.ADD] * 5 + [Action.DELETE] * 3
                              + [Action.EXECUTE, Action.REDUCE, Action.REPLACE,
                                 Action.REPLACE]),
    "side": st.sampled_from([BID, BID, ASK, ASK, 0]),
    "price": st.integers(98, 104),
    "qty": st.integers(1, 5),
    "order_id": st.integers(1, 40),
    "new_order_id": st.integers(1, 40),
    "flags": st.sampled_from([0, 0, 0x0200]),
})
l2_event = st.fixed_dictionaries({
    "instrument": st.just(L2_BOOK),
    "action": st.sampled_from([Action.ADD, Action.REDUCE, Action.DELETE, Action.SET_LEVEL]),
    "side": st.sampled_from([BID, ASK]),
    "price": st.integers(98, 104),
    "qty": st.integers(0, 5),
})
rare_event = st.fixed_dictionaries({
    "instrument": st.sampled_from([0, 1, SIDE_KEYED, L2_BOOK, 6, 2**32 - 1]),
    "action": st.sampled_from([0, Action.CLEAR, Action.SNAPSHOT_BEGIN, Action.TRADE, 12, 255]),
    "side": st.sampled_from([BID, ASK, 0, 7]),
    "price": st.sampled_from([100, INT64_MIN]),
    "qty": st.sampled_from([1, 0, -3]),
    "order_id": st.integers(0, 40),
})
event = st.one_of(l3_event, l3_event, l3_event, l3_event, l3_event, l3_event, l2_event,
                  rare_event)
batch_size = st.one_of(st.sampled_from(EDGE_SIZES), st.integers(0, 70))


@st.composite
def batches(draw):
    return [draw(st.lists(event, min_size=n, max_size=n))
            for n in draw(st.lists(batch_size, min_size=1, max_size=6))]


@pytest.mark.parametrize("on_error", ["raise", "skip", "stop"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches())
def test_batches_around_the_lookahead(on_error, batches):
    compiled, twin = make_set(_l3, on_error), make_set(_pyl3, on_error)
    for records in batches:
        events = as_events(records)
        assert outcome(compiled, events) == outcome(twin, events)
        assert state(compiled) == state(twin)


def _growing_batch(n, first_id, instrument_of):
    """n adds with fresh ids (the pools and hash tables double while the batch runs),
    then a delete of every other one."""
    recs = []
    for k in range(n):
        recs.append({"instrument": instrument_of(k), "action": Action.ADD,
                     "side": BID if k % 3 else ASK, "price": 100 + (k % 7) * (1 if k % 3 else -1),
                     "qty": 1 + k % 4, "order_id": first_id + k})
    for k in range(0, n, 2):
        recs.append({"instrument": instrument_of(k), "action": Action.DELETE,
                     "side": BID if k % 3 else ASK, "order_id": first_id + k})
    return recs


@pytest.mark.parametrize("on_error", ["raise", "skip", "stop"])
@pytest.mark.parametrize("n", [3, 12, 40, 700])
def test_pools_grow_and_errors_in_the_middle(on_error, n):
    """Books grow under the lookahead; then the same batch fails in its middle."""
    compiled, twin = make_set(_l3, on_error), make_set(_pyl3, on_error)
    recs = _growing_batch(n, 1000, lambda k: (k * 7) % L3_BOOKS)
    events = as_events(recs)
    assert outcome(compiled, events) == outcome(twin, events)
    assert state(compiled) == state(twin)
    # again, with a clear of book 1 in the middle and an unknown order near the end:
    # raise mode rolls everything back (the clear included), skip mode counts it
    recs = _growing_batch(n, 500_000, lambda k: (k * 3) % L3_BOOKS)
    middle = len(recs) // 2
    recs.insert(middle, {"instrument": 1, "action": Action.CLEAR})
    recs.insert(len(recs) - 2, {"instrument": 0, "action": Action.DELETE, "side": BID,
                                "order_id": 999_999_999})
    events = as_events(recs)
    assert outcome(compiled, events) == outcome(twin, events)
    assert state(compiled) == state(twin)


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_callback_grows_books_the_lookahead_saw(on_error):
    """A per-event callback grows books (pool, hash table, level arrays) right after
    events whose successors the pipeline has already looked at.

    The books are read-only to the callback, but reserving room is allowed: it moves
    every array the pipeline holds indices into.
    """
    compiled, twin = make_set(_l3, on_error), make_set(_pyl3, on_error)
    recs = _growing_batch(60, 1, lambda k: k % 3)
    events = as_events(recs)

    def make_callback(bs):
        def callback(index, instrument):
            if index == 20:
                bs[1].reserve_orders(3000)          # a new pool and hash table
                bs[1].reserve(BID, 500)
            if index == 30:
                bs[2].reserve_orders(5000)
                bs[2].reserve(ASK, 700)
        return callback

    assert (outcome(compiled, events, callback=make_callback(compiled))
            == outcome(twin, events, callback=make_callback(twin)))
    assert state(compiled) == state(twin)
    assert compiled[2].order_capacity == twin[2].order_capacity == 5000
    assert compiled[1].capacity(BID) == twin[1].capacity(BID) == 500
    assert sum(compiled.errors.values()) == 0


def _valid_stream(seed, n, books):
    """``n`` valid adds and deletes (of a random live order) over ``books`` books, and
    the orders still live at the end."""
    rng = np.random.default_rng(seed)
    live = [[] for _ in range(books)]
    recs, next_id = [], 1
    for _ in range(n):
        inst = int(rng.integers(books))
        if live[inst] and rng.random() < 0.5:
            oid, side = live[inst].pop(int(rng.integers(len(live[inst]))))
            recs.append({"instrument": inst, "action": Action.DELETE, "side": side,
                         "order_id": oid})
        else:
            side = BID if rng.random() < 0.5 else ASK
            price = 1000 - int(rng.integers(1, 30)) if side == BID else 1000 + int(
                rng.integers(1, 30))
            recs.append({"instrument": inst, "action": Action.ADD, "side": side,
                         "price": price, "qty": int(rng.integers(1, 9)), "order_id": next_id})
            live[inst].append((next_id, side))
            next_id += 1
    return as_events(recs), sum(len(orders) for orders in live)


def test_long_stream_over_many_books_matches_the_twin():
    """A few thousand valid events over 40 books, applied in batches of odd sizes."""
    compiled, twin = _l3.BookSet(), _pyl3.BookSet()
    for bs in (compiled, twin):
        for i in range(40):
            bs.add_instrument(f"S{i}", price_decimals=2, order_capacity=0, capacity=0)
    events, _ = _valid_stream(7, 6000, 40)
    start = 0
    for size in (1, 2, 5, 10, 16, 32, 33, 257, 1000, 5000):
        chunk = events[start:start + size]
        assert compiled.apply(chunk) == twin.apply(chunk) == len(chunk)
        start += size
    assert start >= len(events)
    for i in range(40):
        assert list(compiled[i]) == list(twin[i])
        assert compiled[i].top(5).tolist() == twin[i].top(5).tolist()


def test_the_pipeline_runs_only_where_it_pays():
    """auto: not for a few small books (they stay in cache), yes for big or many books."""
    _l3._set_prefetch("auto")
    small = _l3.BookSet()
    for i in range(3):
        small.add_instrument(f"S{i}", price_decimals=2)
    assert not small._would_prefetch()
    assert not _l3.BookSet()._would_prefetch()
    big = _l3.BookSet()
    big.add_instrument("BIG", price_decimals=2, order_capacity=20_000)     # 640 KB of records
    assert big[0].nbytes >= 256 * 1024 and big._would_prefetch()
    many = _l3.BookSet()
    for i in range(33):
        many.add_instrument(f"S{i}", price_decimals=2, order_capacity=0, capacity=0)
    assert many._would_prefetch()
    l2_only = _l3.BookSet()
    l2_only.add_instrument("L2", kind="l2", price_decimals=2, capacity=100_000)
    assert not l2_only._would_prefetch()        # the pipeline only looks at L3 books
    _l3._set_prefetch("never")
    assert not big._would_prefetch()
    _l3._set_prefetch("always")
    assert small._would_prefetch()
    with pytest.raises(ValueError, match="'auto', 'always' or 'never'"):
        _l3._set_prefetch("sometimes")


def test_results_do_not_depend_on_the_pipeline():
    """The same stream through a small set, with and without the pipeline."""
    events, live = _valid_stream(11, 3000, 3)
    results = []
    for mode in ("never", "always"):
        _l3._set_prefetch(mode)
        bs = _l3.BookSet()
        for i in range(3):
            bs.add_instrument(f"S{i}", price_decimals=2, order_capacity=0, capacity=0)
        assert bs.apply(events) == len(events)
        results.append([(list(bs[i]), bs[i].top(10).tolist(), bs[i].order_count)
                        for i in range(3)])
    assert results[0] == results[1]
    assert sum(count for _, _, count in results[0]) == live
