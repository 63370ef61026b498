"""Unit tests of the L3 OrderBook, run against the compiled book and its pure-Python twin."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest

import fastbook
from fastbook import _pyl3
from fastbook.errors import ArrayError, FastbookError, UpdateError
from tests.helpers import names_bad_argument
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import pair, requires_compiled

BID, ASK = fastbook.BID, fastbook.ASK
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

# FASTBOOK_NO_EXTENSIONS=1 runs these tests on the twin alone.
L3_IMPLS = pair(_pyl3, _l3)
needs_compiled = requires_compiled(_l3, reason="compiled L3 book disabled or not built")


@pytest.fixture(params=sorted(L3_IMPLS))
def l3impl(request):
    """The module under test: ``fastbook._l3`` (compiled) or ``fastbook._pyl3`` (twin)."""
    return L3_IMPLS[request.param]


@pytest.fixture
def ob(l3impl):
    return l3impl.OrderBook(price_decimals=4)


@pytest.fixture
def skip_ob(l3impl):
    return l3impl.OrderBook(price_decimals=4, on_error="skip")


def state(book):
    """Everything observable about a book, to prove a failed update changed nothing."""
    levels = {}
    for side in (BID, ASK):
        for price, qty in book.levels(side):
            levels[(side, price)] = (qty, tuple(book.orders_at(side, price)))
    return (levels, book.top(5).tolist(), book.order_count, book.bbo(), book.nbytes,
            book.order_capacity, book.capacity(BID), book.capacity(ASK))


def sample(book):
    """A small book: bids 100 (1: 5, 2: 7), 99 (3: 3); asks 105 (4: 1), 107 (5: 2, 6: 4)."""
    for args in ((1, BID, 100, 5), (2, BID, 100, 7), (3, BID, 99, 3),
                 (4, ASK, 105, 1), (5, ASK, 107, 2), (6, ASK, 107, 4)):
        book.add(*args)
    return book


# ---------------------------------------------------------------------------
# construction
# ---------------------------------------------------------------------------

@needs_compiled
def test_selector_uses_the_compiled_book():
    from fastbook import l3

    assert l3.OrderBook is _l3.OrderBook
    assert l3.COMPILED is True
    assert l3.BYTES_PER_ORDER == 32 and l3.BYTES_PER_LEVEL == 44
    assert l3.ERROR_KINDS == _pyl3.ERROR_KINDS == _l3.ERROR_KINDS


def test_selector_honours_no_extensions():
    code = ("from fastbook import l3, _pyl3; "
            "assert l3.OrderBook is _pyl3.OrderBook and l3.COMPILED is False; print('ok')")
    env = dict(os.environ, FASTBOOK_NO_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "ok"


def test_constants_agree(l3impl):
    assert l3impl.BID == BID and l3impl.ASK == ASK
    assert l3impl.BYTES_PER_ORDER == 32
    assert l3impl.BYTES_PER_LEVEL == 44


def test_construction_defaults(l3impl):
    book = l3impl.OrderBook(price_decimals=4)
    assert book.price_decimals == 4 and book.qty_decimals == 0
    assert book.on_error == "raise"
    assert book.order_capacity == 1024 and book.hash_slots == 2048
    assert book.capacity(BID) == book.capacity(ASK) == 256
    assert book.nbytes == 32 * 1024 + 4 * 2048 + 44 * 512
    assert book.order_count == 0
    assert book.errors == dict.fromkeys(l3impl.ERROR_KINDS, 0)


@pytest.mark.parametrize(("hint", "expected", "slots"),
                         [(0, 16, 32), (1, 16, 32), (16, 16, 32), (17, 17, 64),
                          (1000, 1000, 2048), (4096, 4096, 8192)])
def test_order_capacity_is_exact_and_the_table_a_power_of_two(l3impl, hint, expected, slots):
    book = l3impl.OrderBook(price_decimals=2, qty_decimals=8, capacity=0, order_capacity=hint)
    assert book.order_capacity == expected and book.hash_slots == slots
    assert book.capacity(BID) == 0
    assert book.nbytes == 32 * expected + 4 * slots


@pytest.mark.parametrize(
    "kwargs",
    [
        {"price_decimals": -1}, {"price_decimals": 19}, {"price_decimals": 2.0},
        {"price_decimals": True}, {"price_decimals": 2, "qty_decimals": 19},
        {"price_decimals": 2, "capacity": -1}, {"price_decimals": 2, "capacity": 1.5},
        {"price_decimals": 2, "order_capacity": -1}, {"price_decimals": 2, "on_error": "ignore"},
        {"price_decimals": 2, "on_error": None},
    ],
)
def test_construction_errors(l3impl, kwargs):
    with pytest.raises(ValueError, match=names_bad_argument(kwargs)):
        l3impl.OrderBook(**kwargs)


def test_construction_requires_keywords(l3impl):
    with pytest.raises(TypeError):
        l3impl.OrderBook()
    with pytest.raises(TypeError):
        l3impl.OrderBook(4)


def test_too_many_orders(l3impl):
    message = r"order_capacity 2147483648 is too large \(at most 1073741824 orders\)$"
    with pytest.raises(MemoryError, match=message):
        l3impl.OrderBook(price_decimals=2, order_capacity=2**31)


# ---------------------------------------------------------------------------
# add
# ---------------------------------------------------------------------------

def test_add_builds_fifo_levels(ob):
    assert ob.add(1, BID, 100, 5) is True
    assert ob.add(2, BID, 100, 7) is True      # joins the best level: its qty changed
    assert ob.add(3, BID, 99, 3) is False      # below the best
    assert ob.add(4, ASK, 105, 1) is True
    assert ob.add(5, ASK, 107, 2) is False
    assert ob.add(6, ASK, 107, 4) is False
    assert ob.order_count == 6
    assert ob.orders_at(BID, 100) == [(1, 5), (2, 7)]
    assert ob.orders_at(ASK, 107) == [(5, 2), (6, 4)]
    assert ob.count_at(BID, 100) == 2 and ob.count_at(BID, 101) == 0
    assert ob.best_bid() == (100, 12) and ob.best_ask() == (105, 1)
    assert ob.bbo() == (100, 12, 105, 1)
    assert ob.queue_position(1) == (0, 0)
    assert ob.queue_position(2) == (1, 5)
    assert ob.queue_position(6) == (1, 2)
    assert ob.order(2) == (BID, 100, 7)
    assert ob.order(4) == (ASK, 105, 1)
    assert 2 in ob and 7 not in ob and "2" not in ob and -1 not in ob and 2**64 not in ob


def test_add_new_best_level_changes_top(ob):
    sample(ob)
    assert ob.add(10, BID, 101, 1) is True
    assert ob.add(11, ASK, 104, 1) is True
    assert ob.bbo() == (101, 1, 104, 1)


def test_order_id_full_range(ob):
    assert ob.add(0, BID, 1, 1)
    assert ob.add(UINT64_MAX, ASK, 2, 1)
    assert ob.order(0) == (BID, 1, 1)
    assert ob.order(UINT64_MAX) == (ASK, 2, 1)
    assert ob.queue_position(UINT64_MAX) == (0, 0)
    ob.delete(0)
    ob.delete(UINT64_MAX)
    assert ob.order_count == 0


def test_negative_and_extreme_prices(ob):
    ob.add(1, BID, -50, 1)
    ob.add(2, BID, INT64_MAX, 1)
    ob.add(3, ASK, INT64_MIN + 1, 2)
    ob.add(4, ASK, INT64_MAX, 3)
    assert ob.to_arrays(BID)[0].tolist() == [INT64_MAX, -50]
    assert ob.to_arrays(ASK)[0].tolist() == [INT64_MIN + 1, INT64_MAX]
    assert ob.is_crossed()
    assert ob.spread() == INT64_MIN + 1 - INT64_MAX
    assert ob.mid() == (INT64_MIN + 1 + INT64_MAX) // 2


@pytest.mark.parametrize(
    ("args", "kind", "match"),
    [
        ((9, 0, 100, 1), "bad_side",
         r"side must be fastbook.BID \(1\) or fastbook.ASK \(2\), got 0"),
        ((9, 3, 100, 1), "bad_side", "got 3"),
        ((9, -1, 100, 1), "bad_side", "got -1"),
        ((9, 2**32 + 1, 100, 1), "bad_side", "got 4294967297"),  # not truncated to BID
        ((9, BID, 100, 0), "bad_quantity", r"quantity must be >= 1, got 0 \(order 9\)"),
        ((9, ASK, 100, -5), "bad_quantity", "got -5"),
        ((9, BID, INT64_MIN, 1), "bad_price", "INT64_MIN"),
        ((1, BID, 100, 1), "duplicate_order", "cannot add order 1: it is already in the book"),
        ((1, ASK, 200, 1), "duplicate_order", "already in the book"),
        ((9, BID, 100, INT64_MAX), "overflow", "would overflow int64"),
    ],
)
def test_add_errors(l3impl, args, kind, match):
    book = sample(l3impl.OrderBook(price_decimals=4))
    before = state(book)
    with pytest.raises(UpdateError, match=match) as info:
        book.add(*args)
    assert isinstance(info.value, FastbookError) and isinstance(info.value, ValueError)
    assert info.value.index is None
    assert state(book) == before
    assert book.errors[kind] == 0

    skip = sample(l3impl.OrderBook(price_decimals=4, on_error="skip"))
    before = state(skip)
    assert skip.add(*args) is False
    assert state(skip) == before
    assert skip.errors == {**dict.fromkeys(l3impl.ERROR_KINDS, 0), kind: 1}


def test_error_precedence(ob):
    sample(ob)
    with pytest.raises(UpdateError, match="side"):
        ob.add(1, 0, INT64_MIN, 0)          # side is checked first
    with pytest.raises(UpdateError, match="quantity"):
        ob.add(1, BID, INT64_MIN, 0)        # then the quantity
    with pytest.raises(UpdateError, match="INT64_MIN"):
        ob.add(1, BID, INT64_MIN, 1)        # then the price, then the id
    with pytest.raises(UpdateError, match="quantity"):
        ob.execute(77, 0)                   # quantity before the id
    with pytest.raises(UpdateError, match="quantity"):
        ob.replace(77, 1, 0, INT64_MIN)


def test_overflow_exactly_at_the_limit(ob):
    ob.add(1, BID, 100, INT64_MAX - 1)
    assert ob.add(2, BID, 100, 1)            # exactly INT64_MAX is fine
    assert ob.best_bid() == (100, INT64_MAX)
    with pytest.raises(UpdateError, match="overflow"):
        ob.add(3, BID, 100, 1)
    assert ob.add(3, BID, 101, INT64_MAX)    # another level is independent


@pytest.mark.parametrize(
    ("method", "args", "exc"),
    [
        ("add", (-1, BID, 1, 1), OverflowError),
        ("add", (2**64, BID, 1, 1), OverflowError),
        ("add", (1.0, BID, 1, 1), TypeError),
        ("add", ("1", BID, 1, 1), TypeError),
        ("add", (1, BID, 2**63, 1), OverflowError),
        ("add", (1, BID, 1, 2**63), OverflowError),
        ("add", (1, 2**63, 1, 1), OverflowError),
        ("add", (1, 1.0, 1, 1), TypeError),
        ("add", (1, BID, 1, 1.0), TypeError),
        ("execute", (1, 1.0), TypeError),
        ("replace", (1, 2, 1.0, 1), TypeError),
        ("qty_at", (BID, 1.0), TypeError),
        ("top", (1.0,), TypeError),
        ("add", (1, BID, 1.5, 1), TypeError),
        ("execute", (-1, 1), OverflowError),
        ("execute", (1, 2**63), OverflowError),
        ("reduce", (2**64, 1), OverflowError),
        ("delete", (-1,), OverflowError),
        ("delete", (None,), TypeError),
        ("replace", (1, -1, 1, 1), OverflowError),
        ("replace", (1, 2, 1, 2**63), OverflowError),
        ("order", (-1,), OverflowError),
        ("queue_position", (2**64,), OverflowError),
    ],
)
def test_argument_conversion_errors(l3impl, method, args, exc):
    for on_error in ("raise", "skip"):
        book = sample(l3impl.OrderBook(price_decimals=4, on_error=on_error))
        before = state(book)
        with pytest.raises(exc):
            getattr(book, method)(*args)
        assert state(book) == before
        assert sum(book.errors.values()) == 0


def test_numpy_integers_are_accepted(ob):
    ob.add(np.uint64(UINT64_MAX), np.int8(BID), np.int64(-3), np.int32(4))
    assert ob.order(np.uint64(UINT64_MAX)) == (BID, -3, 4)
    ob.execute(np.uint64(UINT64_MAX), np.int64(1))
    assert ob.best_bid() == (-3, 3)


# ---------------------------------------------------------------------------
# execute / reduce / delete
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["execute", "reduce"])
def test_partial_take_keeps_queue_place(ob, verb):
    sample(ob)
    assert getattr(ob, verb)(1, 2) is True
    assert ob.order(1) == (BID, 100, 3)
    assert ob.orders_at(BID, 100) == [(1, 3), (2, 7)]
    assert ob.queue_position(2) == (1, 3)
    assert ob.best_bid() == (100, 10)
    assert getattr(ob, verb)(3, 1) is False          # not the best level
    assert ob.qty_at(BID, 99) == 2
    assert getattr(ob, verb)(6, 4) is False          # full: removed, level keeps order 5
    assert ob.orders_at(ASK, 107) == [(5, 2)]
    assert 6 not in ob


@pytest.mark.parametrize("verb", ["execute", "reduce"])
def test_full_take_removes_order_and_level(ob, verb):
    sample(ob)
    assert getattr(ob, verb)(4, 1) is True
    assert 4 not in ob and ob.order(4) is None and ob.queue_position(4) is None
    assert ob.best_ask() == (107, 6)
    assert ob.depth(ASK) == 1
    assert getattr(ob, verb)(1, 5) is True
    assert ob.orders_at(BID, 100) == [(2, 7)]
    assert ob.queue_position(2) == (0, 0)
    assert ob.order_count == 4


@pytest.mark.parametrize("verb", ["execute", "reduce"])
@pytest.mark.parametrize(
    ("args", "kind", "match"),
    [
        ((1, 6), "over_execute", "cannot {verb} 6 from order 1: only 5 remaining"),
        ((4, 2), "over_execute", "only 1 remaining"),
        ((1, 0), "bad_quantity", r"quantity must be >= 1, got 0 \(order 1\)"),
        ((1, -1), "bad_quantity", "got -1"),
        ((99, 1), "unknown_order", "cannot {verb} order 99: it is not in the book"),
        ((0, 1), "unknown_order", "order 0"),
    ],
)
def test_take_errors(l3impl, verb, args, kind, match):
    match = match.format(verb=verb)
    book = sample(l3impl.OrderBook(price_decimals=4))
    before = state(book)
    with pytest.raises(UpdateError, match=match):
        getattr(book, verb)(*args)
    assert state(book) == before
    skip = sample(l3impl.OrderBook(price_decimals=4, on_error="skip"))
    before = state(skip)
    assert getattr(skip, verb)(*args) is False
    assert state(skip) == before
    assert skip.errors[kind] == 1 and sum(skip.errors.values()) == 1


def test_delete(ob):
    sample(ob)
    assert ob.delete(2) is True
    assert ob.orders_at(BID, 100) == [(1, 5)]
    assert ob.delete(3) is False
    assert ob.depth(BID) == 1
    assert ob.delete(1) is True
    assert ob.best_bid() is None and ob.depth(BID) == 0
    assert ob.delete(5) is False
    assert ob.queue_position(6) == (0, 0)


def test_delete_unknown(l3impl):
    book = sample(l3impl.OrderBook(price_decimals=4))
    before = state(book)
    with pytest.raises(UpdateError, match="cannot delete order 42: it is not in the book"):
        book.delete(42)
    book.delete(1)
    with pytest.raises(UpdateError, match="cannot delete order 1"):
        book.delete(1)                    # already removed
    skip = sample(l3impl.OrderBook(price_decimals=4, on_error="skip"))
    before = state(skip)
    assert skip.delete(42) is False
    assert skip.delete(42) is False
    assert state(skip) == before
    assert skip.errors["unknown_order"] == 2


def test_ids_are_reusable_after_removal(ob):
    sample(ob)
    ob.delete(1)
    ob.execute(4, 1)
    assert ob.add(1, ASK, 110, 9) is False
    assert ob.add(4, BID, 100, 1) is True
    assert ob.orders_at(BID, 100) == [(2, 7), (4, 1)]
    assert ob.order(1) == (ASK, 110, 9)


# ---------------------------------------------------------------------------
# replace
# ---------------------------------------------------------------------------

def test_replace_same_price_goes_to_the_back(ob):
    sample(ob)
    assert ob.replace(1, 10, 4, 100) is True
    assert ob.orders_at(BID, 100) == [(2, 7), (10, 4)]
    assert ob.queue_position(10) == (1, 7)
    assert 1 not in ob
    assert ob.best_bid() == (100, 11)


def test_replace_same_id_loses_priority(ob):
    sample(ob)
    assert ob.replace(1, 1, 5, 100) is True
    assert ob.orders_at(BID, 100) == [(2, 7), (1, 5)]
    assert ob.order(1) == (BID, 100, 5)


def test_replace_moves_price_and_keeps_side(ob):
    sample(ob)
    assert ob.replace(3, 30, 9, 101) is True           # new best bid
    assert ob.order(30) == (BID, 101, 9)
    assert ob.depth(BID) == 2 and ob.qty_at(BID, 99) == 0
    assert ob.replace(30, 31, 1, 50) is True           # was best
    assert ob.best_bid() == (100, 12)
    assert ob.replace(31, 32, 2, 49) is False          # neither old nor new level is best
    assert ob.to_arrays(BID)[0].tolist() == [100, 49]
    assert ob.replace(5, 50, 3, 106) is False          # ask side: 106 is not the best ask
    assert ob.order(50) == (ASK, 106, 3)
    assert ob.orders_at(ASK, 107) == [(6, 4)]
    # a replace may cross the book: the book records what the venue says
    assert ob.replace(4, 40, 1, 90) is True
    assert ob.is_crossed()


def test_replace_into_an_existing_level(ob):
    sample(ob)
    ob.replace(3, 33, 1, 100)
    assert ob.orders_at(BID, 100) == [(1, 5), (2, 7), (33, 1)]
    assert ob.depth(BID) == 1


@pytest.mark.parametrize(
    ("args", "kind", "match"),
    [
        ((99, 100, 1, 100), "unknown_order", "cannot replace order 99: it is not in the book"),
        ((1, 2, 1, 100), "duplicate_order",
         "cannot replace order 1 by 2: order 2 is already in the book"),
        ((1, 4, 1, 100), "duplicate_order", "order 4 is already"),
        ((1, 10, 0, 100), "bad_quantity", r"quantity must be >= 1, got 0 \(order 1\)"),
        ((1, 10, -3, 100), "bad_quantity", "got -3"),
        ((1, 10, 1, INT64_MIN), "bad_price", "INT64_MIN"),
        ((3, 10, INT64_MAX - 11, 100), "overflow", "would overflow int64"),
    ],
)
def test_replace_errors(l3impl, args, kind, match):
    book = sample(l3impl.OrderBook(price_decimals=4))
    before = state(book)
    with pytest.raises(UpdateError, match=match):
        book.replace(*args)
    assert state(book) == before
    skip = sample(l3impl.OrderBook(price_decimals=4, on_error="skip"))
    before = state(skip)
    assert skip.replace(*args) is False
    assert state(skip) == before
    assert skip.errors[kind] == 1 and sum(skip.errors.values()) == 1


def test_replace_overflow_counts_own_quantity_once(ob):
    ob.add(1, BID, 100, INT64_MAX - 10)
    ob.add(2, BID, 100, 10)
    assert ob.replace(1, 3, INT64_MAX - 10, 100) is True   # same level, same total
    with pytest.raises(UpdateError, match="overflow"):
        ob.replace(3, 4, INT64_MAX - 9, 100)


# ---------------------------------------------------------------------------
# reads
# ---------------------------------------------------------------------------

def test_empty_book_reads(ob):
    assert ob.best_bid() is None and ob.best_ask() is None
    assert ob.bbo() == (None, None, None, None)
    assert ob.spread() is None and ob.mid() is None
    assert not ob.is_crossed()
    assert ob.depth(BID) == 0 and ob.qty_at(ASK, 1) == 0
    assert ob.top(2).tolist() == [[0, 0]] * 4
    assert ob.top(0).shape == (4, 0)
    p, q = ob.to_arrays(BID)
    assert p.dtype == q.dtype == np.int64 and p.shape == q.shape == (0,)
    assert list(ob.levels(ASK)) == [] and list(ob) == []
    assert ob.orders_at(BID, 1) == [] and ob.order(1) is None and ob.queue_position(1) is None


def test_one_sided_reads(ob):
    ob.add(1, BID, 100, 3)
    assert ob.bbo() == (100, 3, None, None)
    assert ob.spread() is None and ob.mid() is None and not ob.is_crossed()


def test_l2_reads(ob):
    sample(ob)
    assert ob.spread() == 5
    assert ob.mid() == 102
    assert ob.qty_at(BID, 100) == 12 and ob.qty_at(ASK, 107) == 6 and ob.qty_at(ASK, 100) == 0
    assert ob.qty_at(BID, INT64_MIN) == 0
    assert ob.depth(BID) == 2 and ob.depth(ASK) == 2
    assert not ob.is_crossed()
    assert ob.top(3).tolist() == [[100, 99, 0], [12, 3, 0], [105, 107, 0], [1, 6, 0]]
    assert ob.top(1).tolist() == [[100], [12], [105], [1]]
    prices, qtys = ob.to_arrays(ASK)
    assert prices.tolist() == [105, 107] and qtys.tolist() == [1, 6]
    assert list(ob.levels(BID)) == [(100, 12), (99, 3)]
    assert list(ob) == [(BID, 100, 12), (BID, 99, 3), (ASK, 105, 1), (ASK, 107, 6)]
    ob.add(7, BID, 105, 1)
    assert ob.is_crossed()          # locked counts
    assert ob.spread() == 0


def test_top_matches_l2_book_layout(l3impl):
    rng = random.Random(7)
    book = l3impl.OrderBook(price_decimals=2)
    l2 = fastbook.Book(price_decimals=2, qty_decimals=0)
    for oid in range(300):
        side = rng.choice((BID, ASK))
        price = rng.randrange(90, 110) if side == BID else rng.randrange(105, 125)
        qty = rng.randrange(1, 50)
        book.add(oid, side, price, qty)
        l2.set(side, price, l2.qty_at(side, price) + qty)
    for oid in rng.sample(range(300), 150):
        side, price, qty = book.order(oid)
        book.delete(oid)
        l2.set(side, price, l2.qty_at(side, price) - qty)
    for n in (0, 1, 5, 25, 40):
        assert np.array_equal(book.top(n), l2.top(n))
        out = np.full((4, n), -1, dtype=np.int64)
        assert book.top(n, out=out) is out
        assert np.array_equal(out, l2.top(n))
    for side in (BID, ASK):
        for a, b in zip(book.to_arrays(side), l2.to_arrays(side), strict=True):
            assert np.array_equal(a, b)
        assert list(book.levels(side)) == list(l2.levels(side))
        assert book.depth(side) == l2.depth(side)
    assert book.bbo() == l2.bbo() and book.mid() == l2.mid() and book.spread() == l2.spread()


@pytest.mark.parametrize(
    "out",
    [
        [[0] * 3] * 4,
        np.zeros((4, 3), dtype=np.int32),
        np.zeros((3, 4), dtype=np.int64),
        np.zeros((4, 2), dtype=np.int64),
        np.zeros((4, 6), dtype=np.int64)[:, ::2],
        np.zeros((4, 3), dtype=np.dtype(np.int64).newbyteorder()),
        np.zeros(12, dtype=np.int64),
    ],
)
def test_top_out_validation(ob, out):
    message = r"^out must be a (numpy|writeable C-contiguous) int64 array of shape \(4, 3\)"
    with pytest.raises(ArrayError, match=message):
        ob.top(3, out=out)


def test_top_out_readonly(ob):
    out = np.zeros((4, 3), dtype=np.int64)
    out.flags.writeable = False
    message = r"^out must be a writeable C-contiguous int64 array of shape \(4, 3\)"
    with pytest.raises(ArrayError, match=message):
        ob.top(3, out=out)
    with pytest.raises(ValueError, match=r"^n must be >= 0, got -1$"):
        ob.top(-1)


@pytest.mark.parametrize("side", [0, 3, -1])
def test_reads_with_bad_side(ob, side):
    for method, args in (("qty_at", (side, 1)), ("depth", (side,)), ("to_arrays", (side,)),
                         ("levels", (side,)), ("orders_at", (side, 1)), ("count_at", (side, 1)),
                         ("capacity", (side,)), ("reserve", (side, 10))):
        with pytest.raises(UpdateError, match="side must be"):
            getattr(ob, method)(*args)


def test_levels_iterator_detects_changes(ob):
    sample(ob)
    it = ob.levels(BID)
    assert next(it) == (100, 12)
    ob.add(20, ASK, 200, 1)
    with pytest.raises(RuntimeError, match="changed"):
        next(it)
    it = ob.levels(ASK)
    next(it)
    ob.queue_position(1)               # reads do not invalidate
    ob.reduce(6, 1)
    with pytest.raises(RuntimeError,
                       match=r"^fastbook\.OrderBook changed size or contents during iteration$"):
        next(it)


def test_failed_update_does_not_invalidate_iterators(skip_ob):
    sample(skip_ob)
    it = skip_ob.levels(BID)
    next(it)
    skip_ob.delete(99)
    assert next(it) == (99, 3)


def test_queue_position_walks_the_whole_level(ob):
    for oid in range(1, 101):
        ob.add(oid, ASK, 500, oid)
    for oid in range(1, 101):
        assert ob.queue_position(oid) == (oid - 1, oid * (oid - 1) // 2)
    ob.delete(50)
    ob.execute(1, 1)
    assert ob.queue_position(51) == (48, 51 * 50 // 2 - 50 - 1)
    assert ob.queue_position(100) == (97, 100 * 99 // 2 - 51)


# ---------------------------------------------------------------------------
# clear, errors, capacity, repr
# ---------------------------------------------------------------------------

def test_clear(ob):
    sample(ob)
    cap = ob.order_capacity, ob.capacity(BID), ob.nbytes
    ob.clear()
    assert ob.order_count == 0 and ob.depth(BID) == 0 and ob.depth(ASK) == 0
    assert ob.order(1) is None and ob.best_ask() is None
    assert (ob.order_capacity, ob.capacity(BID), ob.nbytes) == cap
    sample(ob)                      # ids are free again
    assert ob.bbo() == (100, 12, 105, 1)


def test_errors_dict_and_reset(skip_ob):
    sample(skip_ob)
    skip_ob.delete(99)
    skip_ob.add(1, BID, 1, 1)
    skip_ob.execute(1, 99)
    skip_ob.add(9, 7, 1, 1)
    errors = skip_ob.errors
    assert errors == {"bad_side": 1, "bad_quantity": 0, "bad_price": 0, "unknown_order": 1,
                      "duplicate_order": 1, "over_execute": 1, "overflow": 0, "bad_action": 0}
    errors["bad_side"] = 100            # a copy
    assert skip_ob.errors["bad_side"] == 1
    skip_ob.clear()
    assert skip_ob.errors["unknown_order"] == 1      # clear keeps counters
    skip_ob.reset_errors()
    assert sum(skip_ob.errors.values()) == 0
    assert skip_ob.on_error == "skip"


def test_growth_and_reserve(l3impl):
    book = l3impl.OrderBook(price_decimals=0, capacity=0, order_capacity=16)
    assert book.nbytes == 32 * 16 + 4 * 32
    for oid in range(17):
        book.add(oid, BID, oid, 1)                  # 17 levels, 17 orders
    assert book.order_capacity == 24                # grown by half
    assert book.hash_slots == 64
    assert book.capacity(BID) == 32 and book.capacity(ASK) == 0
    assert book.nbytes == 32 * 24 + 4 * 64 + 44 * 32
    for oid in range(17):
        book.delete(oid)
    assert book.order_capacity == 24                # never shrinks
    book.reserve(ASK, 100)
    assert book.capacity(ASK) == 100
    book.reserve(ASK, 10)
    assert book.capacity(ASK) == 100
    book.reserve_orders(40)
    assert book.order_capacity == 40                # a reservation is exact
    book.reserve_orders(5)
    assert book.order_capacity == 40
    with pytest.raises(ValueError, match=r"^capacity must be >= 0, got -1$"):
        book.reserve_orders(-1)
    with pytest.raises(ValueError, match=r"^capacity must be >= 0, got -1$"):
        book.reserve(BID, -1)
    with pytest.raises(MemoryError,
                       match=r"cannot allocate 2147483648 orders \(at most 1073741824\)$"):
        book.reserve_orders(2**31)
    assert book.order_capacity == 40


def test_pool_recycles_records(l3impl):
    book = l3impl.OrderBook(price_decimals=0, order_capacity=16)
    for round_ in range(50):
        for k in range(16):
            book.add(round_ * 100 + k, ASK, k % 3, 1)
        for k in range(16):
            book.delete(round_ * 100 + k)
    assert book.order_capacity == 16 and book.order_count == 0


def test_repr(ob):
    assert repr(ob) == ("<fastbook.OrderBook price_decimals=4 qty_decimals=0 orders=0 "
                        "bids=0 asks=0 best_bid=None best_ask=None>")
    sample(ob)
    assert repr(ob) == ("<fastbook.OrderBook price_decimals=4 qty_decimals=0 orders=6 "
                        "bids=2 asks=2 best_bid=0.0100 x 12 best_ask=0.0105 x 1>")
    assert ob.format_price(5853300) == "585.3300"
    assert ob.format_qty(7) == "7"


# ---------------------------------------------------------------------------
# the compiled hash table under stress, against a dict
# ---------------------------------------------------------------------------

@needs_compiled
@pytest.mark.parametrize("pattern", ["sequential", "random", "strided", "high_bits"])
def test_hash_table_against_a_dict(pattern):
    rng = random.Random(pattern)
    if pattern == "sequential":
        ids = list(range(10_000, 30_000))
    elif pattern == "random":
        ids = list({rng.getrandbits(64) for _ in range(20_000)})
    elif pattern == "strided":
        ids = [k << 32 for k in range(20_000)]
    else:
        ids = [(k << 50) | 7 for k in range(8_192)] + [UINT64_MAX - k for k in range(8_192)]
    book = _l3.OrderBook(price_decimals=0, order_capacity=16)
    ref = {}
    live = []
    for oid in ids:
        side = BID if oid & 1 else ASK
        price = rng.randrange(1, 40)
        qty = rng.randrange(1, 9)
        book.add(oid, side, price, qty)
        ref[oid] = (side, price, qty)
        live.append(oid)
        if rng.random() < 0.45:        # delete a random live order: exercises backward shift
            victim = live.pop(rng.randrange(len(live)))
            book.delete(victim)
            del ref[victim]
    assert book.order_count == len(ref)
    for oid in ids:
        assert book.order(oid) == ref.get(oid)
    assert book.order(12345678901) == ref.get(12345678901)
    totals = {}
    for side, price, qty in ref.values():
        totals[(side, price)] = totals.get((side, price), 0) + qty
    for (side, price), qty in totals.items():
        assert book.qty_at(side, price) == qty
    assert sum(book.depth(s) for s in (BID, ASK)) == len(totals)


# ---------------------------------------------------------------------------
# memory per order
# ---------------------------------------------------------------------------

def _level_bytes(book):
    return (book.capacity(BID) + book.capacity(ASK)) * 44


@needs_compiled
@pytest.mark.slow
@pytest.mark.parametrize("hinted", [False, True], ids=["grown", "hinted"])
def test_memory_per_order_one_million(hinted):
    n = 1_000_000
    book = _l3.OrderBook(price_decimals=2, order_capacity=n if hinted else 1024)
    ids = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(2654435761)
    add = book.add
    for k, oid in enumerate(ids.tolist()):
        add(oid, BID if k & 1 else ASK, 10_000 + (k % 1000) * (1 if k & 1 else -1), 1 + k % 7)
    assert book.order_count == n
    per_order = (book.nbytes - _level_bytes(book)) / n
    assert per_order == (32 * book.order_capacity + 4 * book.hash_slots) / n
    if hinted:      # exactly n records, 2**21 slots: 40.4 bytes per order
        assert book.order_capacity == n and book.hash_slots == 2**21
        assert per_order <= 48
    # and every order is still findable and consistent with the levels
    assert book.order(int(ids[-1])) is not None
    assert sum(q for _, _, q in book) == sum(1 + k % 7 for k in range(n))


def test_top_takes_n_by_keyword(ob):
    # the compiled book once named this parameter n_levels, so top(n=...) failed there only
    ob.add(1, BID, 100, 5)
    assert ob.top(n=2).tolist() == [[100, 0], [5, 0], [0, 0], [0, 0]]
    out = np.zeros((4, 2), dtype=np.int64)
    assert ob.top(n=2, out=out) is out
