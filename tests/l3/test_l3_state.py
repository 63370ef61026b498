"""Book state as data: ``OrderBook.orders()``, ``_load_orders`` and pickling.

A pickled book must read exactly as the original (every L2 and L3 read, capacities,
error counters) and then apply any further updates exactly as the original would:
seeded random streams and a hypothesis search apply part of a stream, pickle, and
apply the rest to both. The compiled book and the twin must agree on all of it.
"""

from __future__ import annotations

import copy
import pickle
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbook
from fastbook import _pyl3
from fastbook.errors import UpdateError
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import pair, requires_compiled

BID, ASK = fastbook.BID, fastbook.ASK
L3_IMPLS = pair(_pyl3, _l3)
needs_compiled = requires_compiled(_l3, reason="compiled L3 book disabled or not built")


@pytest.fixture(params=sorted(L3_IMPLS))
def l3impl(request):
    return L3_IMPLS[request.param]


def reads(book):
    """Everything a user can read of ``book``, as comparable plain data."""
    orders = book.orders()
    out = {
        "bbo": book.bbo(), "order_count": book.order_count, "errors": book.errors,
        "on_error": book.on_error, "side_keys": book.side_keys, "nbytes": book.nbytes,
        "order_capacity": book.order_capacity, "repr": repr(book),
        "decimals": (book.price_decimals, book.qty_decimals),
        "capacity": (book.capacity(BID), book.capacity(ASK)),
        "top": book.top(8).tolist(), "levels": list(book),
        "orders": orders.tolist(), "orders_bytes": orders.tobytes(),
    }
    kw = {}
    for oid, side, _, _ in orders.tolist():
        if book.side_keys:
            kw = {"side": side}
        out[("queue", side, oid)] = book.queue_position(oid, **kw)
        out[("rank", side, oid)] = book.rank(oid, **kw)
        out[("order", side, oid)] = book.order(oid, **kw)
    for side in (BID, ASK):
        for price, _ in book.levels(side):
            out[("at", side, price)] = book.orders_at(side, price)
    return out


def book_order(book):
    """The rows orders() must give, from the per-level reads."""
    return [(oid, side, price, qty) for side in (BID, ASK) for price, _ in book.levels(side)
            for oid, qty in book.orders_at(side, price)]


def random_ops(rng, n, *, ids=40, prices=(95, 106)):
    """``n`` random update calls (valid and invalid alike: small id and price spaces)."""
    ops = []
    for _ in range(n):
        kind = rng.choice(["add"] * 5 + ["execute", "reduce", "delete", "replace", "modify"])
        oid = rng.randrange(ids)
        side = rng.choice([BID, ASK, BID, ASK, 0])
        price = rng.randint(*prices)
        qty = rng.choice([rng.randint(1, 20), rng.randint(1, 20), 0])
        if kind == "add":
            ops.append(("add", (oid, side, price, qty), {}))
        elif kind in ("execute", "reduce"):
            ops.append((kind, (oid, qty), {"side": side}))
        elif kind == "delete":
            ops.append(("delete", (oid,), {"side": side}))
        elif kind == "replace":
            ops.append(("replace", (oid, rng.randrange(ids), qty, price), {"side": side}))
        else:
            ops.append(("modify", (oid, qty, price), {"side": side}))
    return ops


def run(book, ops):
    """The outcome of every op: its result, or the error's type and message."""
    out = []
    for name, args, kw in ops:
        if not book.side_keys:
            kw = {}
        try:
            out.append(getattr(book, name)(*args, **kw))
        except UpdateError as exc:
            out.append((type(exc), str(exc)))
    return out


def make(mod, on_error="skip", side_keys=False, capacity=0, order_capacity=16):
    return mod.OrderBook(price_decimals=2, qty_decimals=1, capacity=capacity,
                         order_capacity=order_capacity, on_error=on_error,
                         side_keys=side_keys)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("side_keys", [False, True])
@pytest.mark.parametrize("on_error", ["skip", "raise"])
def test_a_pickled_book_reads_and_updates_as_the_original(l3impl, seed, side_keys, on_error):
    rng = random.Random(seed)
    ops = random_ops(rng, 400)
    cut = rng.randrange(len(ops))
    book = make(l3impl, on_error, side_keys)
    run(book, ops[:cut])
    loaded = pickle.loads(pickle.dumps(book))
    assert type(loaded) is type(book)
    assert reads(loaded) == reads(book)
    assert run(loaded, ops[cut:]) == run(book, ops[cut:])
    assert reads(loaded) == reads(book)


@pytest.mark.parametrize("seed", range(4))
def test_orders_is_the_book_in_order(l3impl, seed):
    rng = random.Random(100 + seed)
    book = make(l3impl, capacity=256, order_capacity=1024)
    run(book, random_ops(rng, 3000, ids=500, prices=(1, 400)))
    rows = book.orders()
    assert rows.dtype == l3impl.ORDER_DTYPE and rows.dtype.itemsize == 32
    assert rows.dtype.names == ("order_id", "side", "price", "qty")
    assert rows.tolist() == book_order(book)
    assert len(rows) == book.order_count > 0


def test_an_empty_book_has_no_orders_and_pickles(l3impl):
    book = make(l3impl)
    assert book.orders().shape == (0,) and book.orders().dtype == l3impl.ORDER_DTYPE
    assert reads(pickle.loads(pickle.dumps(book))) == reads(book)


def test_copies_are_independent(l3impl):
    book = make(l3impl)
    book.add(1, BID, 100, 5)
    book.add(2, BID, 100, 7)
    for other in (book.copy(), copy.copy(book), copy.deepcopy(book)):
        assert reads(other) == reads(book)
        other.delete(1)
        assert book.order_count == 2 and other.queue_position(2) == (0, 0)
        assert book.queue_position(2) == (1, 5)


def test_load_orders_rebuilds_a_book_from_its_rows(l3impl):
    rng = random.Random(7)
    book = make(l3impl, capacity=0, order_capacity=16)
    run(book, random_ops(rng, 2000, ids=300, prices=(1, 200)))
    fresh = make(l3impl, capacity=0, order_capacity=16)
    fresh._load_orders(book.orders())
    assert fresh.orders().tobytes() == book.orders().tobytes()
    assert book_order(fresh) == book_order(book)
    # any array with the four fields will do, other dtypes are converted
    plain = np.array(book.orders().tolist(),
                     dtype=[("order_id", "u8"), ("side", "i4"), ("price", "i8"), ("qty", "i4")])
    again = make(l3impl)
    again._load_orders(plain)
    assert book_order(again) == book_order(book)


def rows(*rs):
    return np.array(list(rs), dtype=_pyl3.ORDER_DTYPE)


BAD_ROWS = [
    (rows((1, BID, 100, 5), (2, 3, 100, 5)),
     "orders[1]: side must be fastbook.BID (1) or fastbook.ASK (2), got 3"),
    (rows((1, BID, 99, 5), (2, BID, 100, 5)), "orders[1]: not in book order"),
    (rows((1, ASK, 101, 5), (2, BID, 100, 5)), "orders[1]: not in book order"),
    (rows((1, ASK, 102, 5), (2, ASK, 101, 5)), "orders[1]: not in book order"),
    (rows((1, BID, 100, 5), (1, ASK, 101, 5)),
     "orders[1]: cannot add order 1: it is already in the book"),
    (rows((1, BID, 100, 5), (2, BID, 100, 0)),
     "orders[1]: quantity must be >= 1, got 0 (order 2)"),
    (rows((1, BID, 100, 2**63 - 1), (2, BID, 100, 1)),
     "orders[1]: cannot add order 2: the quantity at price 100 would overflow int64"),
    (rows((1, BID, -(2**63), 5)), "orders[0]: price -9223372036854775808 is INT64_MIN"),
]


@pytest.mark.parametrize("bad, message", BAD_ROWS)
def test_bad_rows_are_refused_by_row_and_leave_the_book_empty(l3impl, bad, message):
    book = make(l3impl)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        book._load_orders(bad)
    assert book.order_count == 0 and book.orders().shape == (0,) and book.bbo() == (
        None, None, None, None)
    book._load_orders(rows((1, BID, 100, 5)))      # still usable
    assert book.best_bid() == (100, 5)


def test_load_orders_needs_an_empty_book_and_a_structured_array(l3impl):
    book = make(l3impl)
    book.add(1, BID, 100, 5)
    with pytest.raises(ValueError, match="needs an empty book; this one has 1 orders"):
        book._load_orders(rows((2, BID, 100, 5)))
    book.clear()
    with pytest.raises(TypeError, match="orders must be a 1-d structured array"):
        book._load_orders(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="orders must be a 1-d structured array"):
        book._load_orders(np.zeros((2, 2), dtype=_pyl3.ORDER_DTYPE))


def test_unpickling_checks_its_counters(l3impl):
    book = make(l3impl)
    fn, args = book.__reduce__()
    with pytest.raises(ValueError, match="errors must have 8 counters"):
        fn(*args[:7], (0, 0), args[8])


# -- compiled against twin ------------------------------------------------------


@needs_compiled
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("side_keys", [False, True])
def test_compiled_and_twin_agree_on_state_and_pickles(seed, side_keys):
    rng = random.Random(1000 + seed)
    ops = random_ops(rng, 500)
    cut = rng.randrange(len(ops))
    fast, slow = make(_l3, side_keys=side_keys), make(_pyl3, side_keys=side_keys)
    assert run(fast, ops[:cut]) == run(slow, ops[:cut])
    assert reads(fast) == reads(slow)
    fast2, slow2 = pickle.loads(pickle.dumps(fast)), pickle.loads(pickle.dumps(slow))
    # each one's rows load into the other
    cross_fast, cross_slow = make(_l3, side_keys=side_keys), make(_pyl3, side_keys=side_keys)
    cross_fast._load_orders(slow.orders())
    cross_slow._load_orders(fast.orders())
    assert book_order(cross_fast) == book_order(cross_slow) == book_order(fast)
    rest = ops[cut:]
    assert run(fast2, rest) == run(slow2, rest) == run(fast, rest) == run(slow, rest)
    assert reads(fast2) == reads(slow2) == reads(fast) == reads(slow)


@needs_compiled
@pytest.mark.parametrize("bad, message", BAD_ROWS)
def test_compiled_and_twin_refuse_the_same_rows_alike(bad, message):
    errors = []
    for mod in (_l3, _pyl3):
        with pytest.raises(ValueError) as info:
            make(mod)._load_orders(bad)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


op_lists = st.lists(
    st.tuples(st.sampled_from(["add", "add", "add", "execute", "delete", "replace", "modify"]),
              st.integers(0, 12), st.sampled_from([BID, ASK]), st.integers(98, 103),
              st.integers(0, 9), st.integers(0, 12)),
    max_size=60)


def as_ops(raw):
    out = []
    for name, oid, side, price, qty, other in raw:
        args = {"add": (oid, side, price, qty), "execute": (oid, qty), "delete": (oid,),
                "replace": (oid, other, qty, price), "modify": (oid, qty, price)}[name]
        out.append((name, args, {} if name == "add" else {"side": side}))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=op_lists, cut=st.integers(0, 60), side_keys=st.booleans())
def test_pickle_then_update_matches_the_original_hypothesis(raw, cut, side_keys):
    ops = as_ops(raw)
    for mod in L3_IMPLS.values():
        book = make(mod, side_keys=side_keys)
        run(book, ops[:cut])
        loaded = pickle.loads(pickle.dumps(book))
        assert reads(loaded) == reads(book)
        assert run(loaded, ops[cut:]) == run(book, ops[cut:])
        assert reads(loaded) == reads(book)


def test_books_of_a_replay_pickle_mid_stream_and_go_on_alike(tmp_path):
    # what parallel workers do with their final books: a real ITCH day, cut in two;
    # every book pickled at the cut and the rest applied to the originals and the copies
    from fastbook import synth
    from tests.archive.conftest import stream_day

    path = tmp_path / "day.itch"
    path.write_bytes(synth.itch_day(20_000, n_symbols=6, seed=9))
    day = stream_day(path, "itch50")
    cut = len(day.events) // 2
    first, rest = day.events[:cut], day.events[cut:]
    original = fastbook.BookSet(on_error="skip")
    for i in range(len(day.books)):
        meta = day.books.instrument(i)
        original.add_instrument(meta["symbol"], price_decimals=meta["price_decimals"])
    original.apply(first)
    copies = fastbook.BookSet(on_error="skip")
    for i in range(len(original)):
        copies.add_book(pickle.loads(pickle.dumps(original[i])),
                        symbol=original.instrument(i)["symbol"])
        assert reads(copies[i]) == reads(original[i])
    assert original.apply(rest) == copies.apply(rest)
    for i in range(len(original)):
        assert reads(copies[i]) == reads(original[i])
        # ... and both are the replay's book
        assert original[i].orders().tobytes() == day.books[i].orders().tobytes()
