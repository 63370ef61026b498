"""Event arrays and the BookSets they run through, shared by the L3, BookSet and
sampler tests (moved here from ``test_bookset.py``, ``test_book.py`` and
``test_l3_differential.py``, which other test files imported as helper libraries)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from fastbook.errors import UpdateError
from fastbook.events import empty_events, events_from_records

# spelled out rather than imported, so a renumbering would be caught
BID, ASK = 1, 2
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def make_set(l3mod, on_error="raise"):
    """Instruments 0 and 1 are L3 books, 2 is an L2 book."""
    bs = l3mod.BookSet(on_error=on_error)
    assert bs.add_instrument("AAPL", venue="XNAS", price_decimals=4, tick_size=100,
                             order_capacity=16, capacity=0) == 0
    assert bs.add_instrument("MSFT", venue="XNAS", price_decimals=4, order_capacity=16,
                             capacity=0) == 1
    assert bs.add_instrument("BTC-USD", kind="l2", venue="COINBASE", price_decimals=2,
                             qty_decimals=8, capacity=0) == 2
    return bs


def ev(*records, **defaults):
    """An event array of ``records`` (dicts of fields; see ``events_from_records``)."""
    return events_from_records(records, **defaults)


def book_state(book):
    """Everything observable about an L3 or L2 book's contents."""
    levels = {}
    for side in (BID, ASK):
        for price, qty in book.levels(side):
            orders = None
            if hasattr(book, "orders_at"):
                orders = tuple((oid, q, book.queue_position(oid))
                               for oid, q in book.orders_at(side, price))
            levels[(side, price)] = (qty, orders)
    extra = book.order_count if hasattr(book, "order_count") else book.missing_deletes
    return levels, extra, book.top(4).tolist()


def set_state(bs):
    """Every book's :func:`book_state` and the set's error counts."""
    return [book_state(bs[i]) for i in range(len(bs))], bs.errors


def as_events(records):
    """An event array with the fields of each record dict set (no validation: wild
    values go in as they are)."""
    out = empty_events(len(records))
    for i, rec in enumerate(records):
        for key, value in rec.items():
            out[key][i] = value
    return out


def outcome(bs, events, **kwargs):
    """``(apply's result, None)`` or ``(None, (message, index))`` of one ``bs.apply``."""
    try:
        return bs.apply(events, **kwargs), None
    except UpdateError as exc:
        return None, (str(exc), exc.index)


# mostly plausible events over make_set's instruments (so books fill up), some wild ones
# (every kind of error)
plausible_l3 = st.fixed_dictionaries({
    "instrument": st.sampled_from([0, 0, 1]),
    "action": st.sampled_from([1, 1, 1, 1, 1, 2, 3, 4, 4, 5]),
    "side": st.sampled_from([BID, ASK]),
    "price": st.integers(97, 103),
    "qty": st.integers(1, 6),
    "order_id": st.integers(0, 20),
    "new_order_id": st.integers(0, 20),
})
plausible_l2 = st.fixed_dictionaries({
    "instrument": st.just(2),
    "action": st.sampled_from([1, 1, 2, 3, 4, 6, 6]),
    "side": st.sampled_from([BID, ASK]),
    "price": st.integers(97, 103),
    "qty": st.integers(0, 6),
})
plausible_events = st.one_of(plausible_l3, plausible_l3, plausible_l3, plausible_l2)
wild_events = st.fixed_dictionaries({
    "instrument": st.sampled_from([0, 1, 2, 3]),
    "action": st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    "side": st.sampled_from([BID, ASK, 0, 3]),
    "price": st.one_of(st.integers(95, 105), st.sampled_from([INT64_MIN, INT64_MAX])),
    "qty": st.one_of(st.integers(1, 12), st.sampled_from([0, -1, INT64_MAX])),
    "order_id": st.integers(0, 15),
    "new_order_id": st.integers(0, 15),
})
event_records = st.one_of(plausible_events, plausible_events, plausible_events,
                          plausible_events, plausible_events, plausible_events, wild_events)


def random_updates(n=3_000_000, seed=3):
    """``n`` random (side, price, qty) L2 updates over 5,000 prices a side, qty 0 to 2."""
    rng = np.random.default_rng(seed)
    sides = rng.integers(1, 3, n).astype(np.int8)
    prices = (rng.integers(0, 5000, n) + np.where(sides == 1, 0, 5000)).astype(np.int64)
    qtys = rng.integers(0, 3, n).astype(np.int64)
    return sides, prices, qtys


def assert_same_reads(c, t, *, memory=True):
    """Every read of the compiled L3 book ``c`` equals the twin ``t``'s.

    ``memory=False`` leaves out ``nbytes`` and capacities: a rolled-back BookSet batch
    restores contents, and only the twin (which restores a whole copy) capacities too.
    """
    for method in ("best_bid", "best_ask", "bbo", "spread", "mid", "is_crossed",
                   "order_count", "errors") + (("nbytes", "order_capacity") if memory else ()):
        got, want = getattr(c, method), getattr(t, method)
        if callable(got):
            got, want = got(), want()
        assert got == want, method
    for n in (0, 1, 3, 12):
        assert np.array_equal(c.top(n), t.top(n)), n
    out = np.empty((4, 5), dtype=np.int64)
    assert np.array_equal(c.top(5, out=out), t.top(5))
    for side in (BID, ASK):
        assert c.depth(side) == t.depth(side)
        if memory:
            assert c.capacity(side) == t.capacity(side)
        cp, cq = c.to_arrays(side)
        tp, tq = t.to_arrays(side)
        assert np.array_equal(cp, tp) and np.array_equal(cq, tq)
        assert list(c.levels(side)) == list(t.levels(side))
        for price, qty in t.levels(side):
            assert c.qty_at(side, price) == qty
            assert c.orders_at(side, price) == t.orders_at(side, price)
            assert c.count_at(side, price) == t.count_at(side, price)
            assert sum(q for _, q in t.orders_at(side, price)) == qty
    assert list(c) == list(t)
    assert repr(c) == repr(t)


def apply_both(compiled, twin, samplers, events, same):
    """Apply ``events`` to the compiled and the twin set, each with its sampler: the same
    outcome (count, or UpdateError message and index), ``same(*samplers)``, the same
    books."""
    outcomes = [outcome(bs, events, sampler=s)
                for bs, s in zip((compiled, twin), samplers, strict=True)]
    assert outcomes[0] == outcomes[1]
    same(*samplers)
    assert set_state(compiled) == set_state(twin)
