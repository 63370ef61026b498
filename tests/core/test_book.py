"""The L2 Book: behaviour, reads, layout and bad input, on the core and the twin."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from fastbook import ArrayError, DecodeError, FastbookError, UpdateError
from tests.helpers import names_bad_argument
from tests.helpers.events import random_updates
from tests.helpers.races import race_book_apply

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def make(impl, **kw):
    kw.setdefault("price_decimals", 2)
    kw.setdefault("qty_decimals", 3)
    return impl.Book(**kw)


def state(book, impl):
    """Everything observable about a book's levels."""
    return (
        [tuple(a.tolist()) for a in book.to_arrays(impl.BID)],
        [tuple(a.tolist()) for a in book.to_arrays(impl.ASK)],
        book.missing_deletes,
    )


@pytest.fixture
def book(impl):
    b = make(impl)
    for price, qty in [(10000, 5), (9999, 7), (9990, 1)]:
        b.set(impl.BID, price, qty)
    for price, qty in [(10001, 2), (10005, 3)]:
        b.set(impl.ASK, price, qty)
    return b


def test_constants(impl):
    assert (impl.BID, impl.ASK) == (1, 2)
    assert impl.BYTES_PER_LEVEL == 16


def test_empty_book(impl):
    b = make(impl)
    assert b.best_bid() is None and b.best_ask() is None
    assert b.bbo() == (None, None, None, None)
    assert b.spread() is None and b.mid() is None
    assert not b.is_crossed()
    assert len(b) == 0 and b.depth(impl.BID) == 0
    assert list(b) == []
    top = b.top(3)
    assert top.shape == (4, 3) and not top.any()


def test_best_levels_and_derived_reads(book, impl):
    assert book.best_bid() == (10000, 5)
    assert book.best_ask() == (10001, 2)
    assert book.bbo() == (10000, 5, 10001, 2)
    assert book.spread() == 1
    assert book.mid() == 10000  # floor of 10000.5
    assert book.depth(impl.BID) == 3 and book.depth(impl.ASK) == 2 and len(book) == 5
    assert book.qty_at(impl.BID, 9999) == 7
    assert book.qty_at(impl.BID, 9998) == 0
    assert book.qty_at(impl.ASK, 10000) == 0


def test_one_sided_bbo(impl):
    b = make(impl)
    b.set(impl.ASK, 500, 1)
    assert b.bbo() == (None, None, 500, 1)
    assert b.spread() is None


def test_mid_is_floor_for_negative_prices(impl):
    b = make(impl)
    b.set(impl.BID, -7, 1)
    b.set(impl.ASK, -4, 1)
    assert b.mid() == -6  # floor(-5.5)
    assert b.spread() == 3


def test_set_returns_whether_the_best_level_changed(impl):
    b = make(impl)
    assert b.set(impl.BID, 100, 1) is True          # first level
    assert b.set(impl.BID, 99, 1) is False          # below the best
    assert b.set(impl.BID, 101, 1) is True          # new best
    assert b.set(impl.BID, 101, 1) is False         # same quantity: nothing changed
    assert b.set(impl.BID, 101, 2) is True          # best quantity changed
    assert b.set(impl.BID, 99, 0) is False          # deep delete
    assert b.set(impl.BID, 101, 0) is True          # best deleted
    assert b.best_bid() == (100, 1)


def test_set_overwrites_and_deletes(book, impl):
    book.set(impl.BID, 9999, 70)
    assert book.qty_at(impl.BID, 9999) == 70
    book.set(impl.BID, 10000, 0)
    assert book.best_bid() == (9999, 70)
    assert book.depth(impl.BID) == 2


def test_deleting_an_absent_level_is_a_counted_no_op(book, impl):
    before = state(book, impl)
    book.set(impl.BID, 12345, 0)
    book.set(impl.ASK, 1, 0)
    after = state(book, impl)
    assert after[:2] == before[:2]
    assert book.missing_deletes == 2


def test_set_str_parses_exactly(impl):
    b = make(impl, price_decimals=2, qty_decimals=8)
    assert b.set_str(impl.BID, b"27431.50", "0.00012000") is True
    assert b.best_bid() == (2743150, 12000)
    b.set_str(impl.BID, "27431.5", "0")
    assert b.best_bid() is None


def test_set_str_bad_text_names_field_and_leaves_book(book, impl):
    before = state(book, impl)
    with pytest.raises(DecodeError, match=r"price '100\.001' at 2 decimals"):
        book.set_str(impl.BID, "100.001", "1")
    with pytest.raises(DecodeError, match=r"quantity b'x' at 3 decimals"):
        book.set_str(impl.BID, "100.00", b"x")
    with pytest.raises(UpdateError, match="quantity must be >= 0"):
        book.set_str(impl.BID, "100.00", "-1")
    assert state(book, impl) == before


def test_levels_and_iteration_are_best_first(book, impl):
    assert list(book.levels(impl.BID)) == [(10000, 5), (9999, 7), (9990, 1)]
    assert list(book.levels(impl.ASK)) == [(10001, 2), (10005, 3)]
    assert list(book) == [
        (impl.BID, 10000, 5), (impl.BID, 9999, 7), (impl.BID, 9990, 1),
        (impl.ASK, 10001, 2), (impl.ASK, 10005, 3),
    ]


def test_iteration_fails_if_the_book_changes(book, impl):
    it = book.levels(impl.BID)
    assert next(it) == (10000, 5)
    book.set(impl.BID, 5000, 1)
    with pytest.raises(RuntimeError, match="changed"):
        next(it)


def test_iteration_survives_no_op_updates(book, impl):
    it = book.levels(impl.BID)
    next(it)
    book.set(impl.BID, 9999, 7)      # same quantity
    book.set(impl.BID, 1, 0)         # absent level
    assert next(it) == (9999, 7)


def test_top_layout(book, impl):
    top = book.top(4)
    assert top.dtype == np.int64 and top.shape == (4, 4) and top.flags.c_contiguous
    assert top.tolist() == [
        [10000, 9999, 9990, 0],
        [5, 7, 1, 0],
        [10001, 10005, 0, 0],
        [2, 3, 0, 0],
    ]
    assert book.top(0).shape == (4, 0)


def test_top_into_out_fills_and_returns_it(book, impl):
    out = np.full((4, 2), -1, dtype=np.int64)
    res = book.top(2, out=out)
    assert res is out
    assert out.tolist() == [[10000, 9999], [5, 7], [10001, 10005], [2, 3]]
    # padding overwrites stale values
    book.clear()
    book.top(2, out)
    assert not out.any()


@pytest.mark.parametrize(
    "out",
    [
        np.empty((4, 3), dtype=np.int32),
        np.empty((4, 2), dtype=np.int64),
        np.empty((3, 3), dtype=np.int64),
        np.empty(12, dtype=np.int64),
        np.empty((3, 4), dtype=np.int64).T,
        np.empty((4, 3), dtype=">i8"),
        [[0] * 3] * 4,
    ],
    ids=["int32", "short", "rows", "flat", "fortran", "bigendian", "list"],
)
def test_top_rejects_bad_out(book, impl, out):
    with pytest.raises(ArrayError, match=r"shape \(4, 3\)"):
        book.top(3, out=out)


def test_top_rejects_readonly_out(book, impl):
    out = np.empty((4, 3), dtype=np.int64)
    out.flags.writeable = False
    message = r"^out must be a writeable C-contiguous int64 array of shape \(4, 3\)"
    with pytest.raises(ArrayError, match=message):
        book.top(3, out=out)


def test_top_negative_n(book):
    with pytest.raises(ValueError, match="n must be >= 0"):
        book.top(-1)


def test_to_arrays_copies(book, impl):
    prices, qtys = book.to_arrays(impl.ASK)
    assert prices.tolist() == [10001, 10005] and qtys.tolist() == [2, 3]
    prices[0] = 1
    assert book.best_ask() == (10001, 2)


def test_is_crossed_includes_locked(impl):
    b = make(impl)
    b.set(impl.BID, 100, 1)
    b.set(impl.ASK, 101, 1)
    assert not b.is_crossed()
    b.set(impl.ASK, 100, 1)
    assert b.is_crossed()  # locked
    b.set(impl.ASK, 100, 0)
    b.set(impl.ASK, 101, 0)
    b.set(impl.ASK, 99, 1)
    assert b.is_crossed()


def test_clear_keeps_capacity(book, impl):
    cap = book.capacity(impl.BID)
    book.clear()
    assert len(book) == 0 and book.best_bid() is None
    assert book.capacity(impl.BID) == cap


def test_capacity_grows_geometrically(impl):
    b = make(impl, capacity=0)
    assert b.nbytes == 0
    seen = set()
    for i in range(1000):
        b.set(impl.BID, i, 1)
        seen.add(b.capacity(impl.BID))
    assert sorted(seen) == [16, 32, 64, 128, 256, 512, 1024]
    window = window_nbytes(b)
    assert b.nbytes == 16 * (1024 + 0) + window
    b.reserve(impl.ASK, 100)
    assert b.capacity(impl.ASK) == 100 and b.nbytes == 16 * 1124 + window


def window_nbytes(book):
    """Bytes of the compiled core's price windows (the twin has none)."""
    if not hasattr(book, "_layout"):
        return 0
    return sum(book._layout(side)["window_nbytes"] for side in (1, 2))


def test_extreme_prices_keep_order(impl):
    b = make(impl)
    for p in (INT64_MAX, INT64_MIN + 1, 0, -1, 1):
        b.set(impl.BID, p, 1)
        b.set(impl.ASK, p, 1)
    assert [p for p, _ in b.levels(impl.BID)] == [INT64_MAX, 1, 0, -1, INT64_MIN + 1]
    assert [p for p, _ in b.levels(impl.ASK)] == [INT64_MIN + 1, -1, 0, 1, INT64_MAX]
    assert b.qty_at(impl.ASK, INT64_MAX) == 1


def test_repr(book, impl):
    assert repr(book) == (
        "<fastbook.Book price_decimals=2 qty_decimals=3 bids=3 asks=2 "
        "best_bid=100.00 x 0.005 best_ask=100.01 x 0.002>"
    )
    assert "best_bid=None best_ask=None" in repr(make(impl))


def test_format_and_parse_helpers(book):
    assert book.format_price(10000) == "100.00"
    assert book.format_price(10000, strip=True) == "100"
    assert book.format_qty(1500) == "1.500"
    assert book.parse_price("100.5") == 10050
    assert book.parse_qty(b"0.25") == 250


def test_copy_and_pickle_are_independent(book, impl):
    book.set(impl.BID, 1, 0)  # one missing delete, carried along
    for other in (book.copy(), copy.copy(book), copy.deepcopy(book),
                  pickle.loads(pickle.dumps(book))):
        assert type(other) is type(book)
        assert state(other, impl) == state(book, impl)
        assert (other.price_decimals, other.qty_decimals) == (2, 3)
        other.set(impl.BID, 10000, 0)
        assert book.best_bid() == (10000, 5)


# --- bad input -----------------------------------------------------------------

@pytest.mark.parametrize("side", [0, 3, -1, 255])
def test_bad_side_raises_and_changes_nothing(book, impl, side):
    before = state(book, impl)
    with pytest.raises(UpdateError, match=r"side must be fastbook\.BID"):
        book.set(side, 100, 1)
    assert state(book, impl) == before


def test_negative_qty_and_reserved_price(book, impl):
    before = state(book, impl)
    with pytest.raises(UpdateError, match="quantity must be >= 0"):
        book.set(impl.BID, 100, -1)
    with pytest.raises(UpdateError, match="INT64_MIN"):
        book.set(impl.BID, INT64_MIN, 1)
    assert state(book, impl) == before


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 10**30])
def test_out_of_int64_values(book, impl, bad):
    with pytest.raises(OverflowError, match=rf"^price {bad} is outside the int64 range$"):
        book.set(impl.BID, bad, 1)
    with pytest.raises(OverflowError, match=rf"^qty {bad} is outside the int64 range$"):
        book.set(impl.BID, 1, bad)


@pytest.mark.parametrize("bad", [1.5, "100", None])
def test_non_integer_values(book, impl, bad):
    with pytest.raises(TypeError, match=rf"^price must be an integer, got {type(bad).__name__}$"):
        book.set(impl.BID, bad, 1)
    with pytest.raises(TypeError, match=rf"^qty must be an integer, got {type(bad).__name__}$"):
        book.set(impl.BID, 1, bad)


def test_errors_are_fastbook_errors():
    assert issubclass(UpdateError, FastbookError) and issubclass(UpdateError, ValueError)
    assert issubclass(ArrayError, FastbookError) and issubclass(ArrayError, TypeError)
    assert issubclass(DecodeError, FastbookError) and issubclass(DecodeError, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"price_decimals": -1, "qty_decimals": 0},
        {"price_decimals": 19, "qty_decimals": 0},
        {"price_decimals": 2, "qty_decimals": 2.0},
        {"price_decimals": 2, "qty_decimals": True},
        {"price_decimals": 2, "qty_decimals": 2, "capacity": -1},
    ],
)
def test_bad_constructor_arguments(impl, kwargs):
    with pytest.raises(ValueError, match=names_bad_argument(kwargs)):
        impl.Book(**kwargs)


def test_constructor_requires_keywords(impl):
    with pytest.raises(TypeError):
        impl.Book(2, 3)
    with pytest.raises(TypeError):
        impl.Book(price_decimals=2)


# --- batch apply -----------------------------------------------------------------

def arrays(rows):
    sides, prices, qtys = zip(*rows, strict=True) if rows else ((), (), ())
    return (np.array(sides, dtype=np.int8), np.array(prices, dtype=np.int64),
            np.array(qtys, dtype=np.int64))


def test_apply_equals_sequential_set(impl):
    rows = [(1, 100, 5), (2, 105, 1), (1, 101, 2), (1, 100, 0), (2, 104, 9), (2, 105, 0),
            (1, 50, 0), (2, 104, 3)]
    a, b = make(impl), make(impl)
    assert a.apply(*arrays(rows)) == len(rows)
    for row in rows:
        b.set(*row)
    assert state(a, impl) == state(b, impl)
    assert a.missing_deletes == 1


def test_apply_large_batch_releases_gil_path(impl):
    # longer than the no-GIL threshold; the result must still be exact
    n = 5000
    rng = np.random.default_rng(7)
    sides = rng.integers(1, 3, n).astype(np.int8)
    prices = rng.integers(0, 300, n).astype(np.int64) + np.where(sides == 1, 0, 300)
    qtys = rng.integers(0, 4, n).astype(np.int64)
    a, b = make(impl), make(impl)
    a.apply(sides, prices, qtys)
    for s, p, q in zip(sides.tolist(), prices.tolist(), qtys.tolist(), strict=True):
        b.set(s, p, q)
    assert state(a, impl) == state(b, impl)


def test_apply_empty(impl):
    b = make(impl)
    assert b.apply(*arrays([])) == 0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((3, 100, 1), "update 2: side must be"),
        ((0, 100, 1), "update 2: side must be"),
        ((1, 100, -5), "update 2: quantity must be >= 0"),
        ((2, INT64_MIN, 1), r"update 2: price .* INT64_MIN"),
    ],
)
def test_apply_bad_row_is_all_or_nothing(book, impl, row, message):
    before = state(book, impl)
    rows = [(1, 1, 1), (2, 99999, 1), row, (1, 2, 1)]
    with pytest.raises(UpdateError, match=message) as info:
        book.apply(*arrays(rows))
    assert info.value.index == 2
    assert state(book, impl) == before


def test_apply_bad_row_in_long_batch(book, impl):
    before = state(book, impl)
    s, p, q = arrays([(1, i, 1) for i in range(1000)])
    q[777] = -1
    with pytest.raises(UpdateError, match="update 777") as info:
        book.apply(s, p, q)
    assert info.value.index == 777
    assert state(book, impl) == before


def test_apply_rejects_bad_arrays(book, impl):
    s, p, q = arrays([(1, 100, 1), (2, 200, 1)])
    bad_cases = [
        ((s.astype(np.int64), p, q), "sides must have dtype int8"),
        ((s, p.astype(np.float64), q), "prices must have dtype int64"),
        ((s, p, q.astype(np.int32)), "qtys must have dtype int64"),
        ((s, p, q.astype(">i8")), "native byte order"),
        ((s, p.reshape(2, 1), q), "1-dimensional"),
        ((s, np.repeat(p, 2)[::2], q), "C-contiguous"),
        ((list(s), p, q), "numpy array"),
        ((s, p, q[:1]), "equal lengths, got 2, 2 and 1"),
    ]
    before = state(book, impl)
    for args, message in bad_cases:
        with pytest.raises(ArrayError, match=message):
            book.apply(*args)
    assert state(book, impl) == before


def test_apply_accepts_readonly_arrays(impl):
    s, p, q = arrays([(1, 100, 1), (2, 200, 1)])
    for a in (s, p, q):
        a.flags.writeable = False
    b = make(impl)
    b.apply(s, p, q)
    assert b.bbo() == (100, 1, 200, 1)


def test_other_threads_get_an_error_not_a_torn_book(compiled):
    """While apply runs without the GIL, other threads' calls on that book are refused."""
    updates = random_updates()
    book = compiled.Book(price_decimals=2, qty_decimals=3)
    race_book_apply(book, updates, (book.bbo, lambda: book.set(1, 1, 1),
                                    lambda: book.apply(*updates), lambda: book.top(5)),
                    "being modified by Book.apply (or BookSet.apply) in another")
    ref = compiled.Book(price_decimals=2, qty_decimals=3)
    ref.apply(*updates)
    # calls that were not refused (set(1, 1, 1) before or after the window) may add level 1
    book.set(1, 1, 0)
    ref.set(1, 1, 0)
    for side in (1, 2):
        assert [a.tolist() for a in book.to_arrays(side)] == \
            [a.tolist() for a in ref.to_arrays(side)]


def test_top_takes_n_by_keyword(book):
    out = np.zeros((4, 2), dtype=np.int64)
    assert book.top(n=2, out=out) is out
    assert book.top(n=1).tolist() == [[10000], [5], [10001], [2]]
