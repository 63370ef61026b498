"""BookSet: many books updated by event arrays, compiled and twin, unit and differential tests."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbook
from fastbook import _pycore, _pyl3
from fastbook.errors import ArrayError, UpdateError
from fastbook.events import EVENT_DTYPE, Action, empty_events
from tests.helpers.events import (
    ASK,
    BID,
    INT64_MAX,
    INT64_MIN,
    as_events,
    book_state,
    ev,
    event_records,
    make_set,
    outcome,
    random_updates,
    set_state,
)
from tests.helpers.impls import CORE as _core
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import requires_compiled
from tests.helpers.races import inside_bookset_apply, race_book_apply

needs_compiled = requires_compiled(_l3, reason="compiled L3 book disabled or not built")


SEED = [
    {"instrument": 0, "action": "add", "side": BID, "price": 100, "qty": 5, "order_id": 1},
    {"instrument": 0, "action": "add", "side": BID, "price": 100, "qty": 7, "order_id": 2},
    {"instrument": 0, "action": "add", "side": BID, "price": 100, "qty": 1, "order_id": 3},
    {"instrument": 0, "action": "add", "side": ASK, "price": 105, "qty": 3, "order_id": 4},
    {"instrument": 1, "action": "add", "side": ASK, "price": 200, "qty": 9, "order_id": 1},
    {"instrument": 2, "action": "add", "side": BID, "price": 2743150, "qty": 25},
    {"instrument": 2, "action": "set_level", "side": ASK, "price": 2743175, "qty": 10},
]


def seeded(l3mod, on_error="raise"):
    bs = make_set(l3mod, on_error)
    assert bs.apply(ev(*SEED)) == len(SEED)
    return bs


# ---------------------------------------------------------------------------
# construction and metadata
# ---------------------------------------------------------------------------

@needs_compiled
def test_selector_exports_the_compiled_bookset():
    from fastbook import l3

    assert l3.BookSet is _l3.BookSet
    assert l3.BOOKSET_ERROR_KINDS == _pyl3.BOOKSET_ERROR_KINDS == (*l3.ERROR_KINDS,
                                                                    "bad_instrument")


def test_metadata(impls):
    l3mod, l2mod = impls
    bs = make_set(l3mod)
    assert len(bs) == 3
    assert isinstance(bs[0], l3mod.OrderBook) and isinstance(bs[2], l2mod.Book)
    assert bs.instrument(0) == {"symbol": "AAPL", "venue": "XNAS", "kind": "l3",
                                "price_decimals": 4, "qty_decimals": 0, "tick_size": 100,
                                "lot_size": 1}
    assert bs.instrument(2)["kind"] == "l2" and bs.instrument(2)["qty_decimals"] == 8
    assert bs.find("MSFT", "XNAS") == 1 and bs.find("BTC-USD", venue="COINBASE") == 2
    with pytest.raises(KeyError, match="MSFT"):
        bs.find("MSFT")
    for bad in (3, -1, "0", True, 1.0):
        message = rf"^instrument must be an id from 0 to 2, got {re.escape(repr(bad))}$"
        with pytest.raises(IndexError, match=message):
            bs[bad]
    assert bs.on_error == "raise"
    assert bs.books == [bs[0], bs[1], bs[2]]
    assert repr(bs) == "<fastbook.BookSet instruments=3 on_error='raise'>"


def test_add_book_shares_the_book(impls):
    l3mod, l2mod = impls
    bs = l3mod.BookSet(on_error="skip")
    ob = l3mod.OrderBook(price_decimals=2)
    book = l2mod.Book(price_decimals=2, qty_decimals=0)
    assert bs.add_book(ob, symbol="X") == 0
    assert bs.add_book(book, symbol="X", venue="OTHER", lot_size=100) == 1
    assert bs[0] is ob and bs[1] is book
    bs.apply(ev({"action": "add", "side": ASK, "price": 7, "qty": 1, "order_id": 9},
                {"instrument": 1, "action": "set_level", "side": BID, "price": 5, "qty": 2}))
    assert ob.best_ask() == (7, 1) and book.best_bid() == (5, 2)
    with pytest.raises(ValueError, match="already in the set"):
        bs.add_book(ob, symbol="Y")
    with pytest.raises(ValueError, match="already in the set"):
        bs.add_book(l3mod.OrderBook(price_decimals=2), symbol="X")
    message = r"^book must be a fastbook\.l3\.OrderBook or a fastbook\.Book, got object$"
    with pytest.raises(TypeError, match=message):
        bs.add_book(object(), symbol="Z")
    with pytest.raises(TypeError, match=r"^symbol and venue must be str$"):
        bs.add_book(l3mod.OrderBook(price_decimals=2), symbol=5)
    for bad in (0, -1, 1.5, True, 2**63):
        with pytest.raises(ValueError, match="tick_size"):
            bs.add_book(l3mod.OrderBook(price_decimals=2), symbol="Z", tick_size=bad)
    with pytest.raises(ValueError, match="kind"):
        bs.add_instrument("Z", kind="l4", price_decimals=2)
    with pytest.raises(ValueError, match="on_error"):
        l3mod.BookSet(on_error="ignore")
    assert len(bs) == 2


def test_adding_a_book_looks_it_up_instead_of_scanning_the_set(impls, monkeypatch):
    """The already-in-the-set check is a lookup in a set of ids: scanning the books made
    registering a NASDAQ directory (about 8,000 instruments) take seconds (O(n**2))."""
    from fastbook import _instruments

    l3mod, _ = impls
    module = _l3 if l3mod is _l3 else _pyl3
    seen = []

    def spy(book, kind, *, members, **rest):
        assert isinstance(members, set)
        seen.append(len(members))
        return _instruments.instrument_meta(book, kind, members=members, **rest)

    monkeypatch.setattr(module, "instrument_meta", spy)
    bs = l3mod.BookSet()
    books = [l3mod.OrderBook(price_decimals=2) for _ in range(3)]
    for k, book in enumerate(books):
        assert bs.add_book(book, symbol=f"S{k}") == k
    assert bs.add_instrument("L2", kind="l2", price_decimals=2) == 3
    assert seen == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="already in the set"):
        bs.add_book(books[1], symbol="AGAIN")


def test_instrument_meta_needs_only_membership():
    from fastbook._instruments import instrument_meta

    class Probe:
        """A container that can answer ``in`` but cannot be iterated."""

        def __init__(self, ids):
            self.ids = ids

        def __contains__(self, key):
            return key in self.ids

    book = _pyl3.OrderBook(price_decimals=2)
    meta = instrument_meta(book, "l3", symbol="S", venue="", tick_size=1, lot_size=1,
                           index={}, members=Probe(set()))
    assert meta["symbol"] == "S" and meta["price_decimals"] == 2
    with pytest.raises(ValueError, match="already in the set"):
        instrument_meta(book, "l3", symbol="T", venue="", tick_size=1, lot_size=1, index={},
                        members=Probe({id(book)}))


@needs_compiled
def test_books_of_the_other_implementation_are_refused():
    message = r"^book must be a fastbook\.l3\.OrderBook or a fastbook\.Book, got OrderBook$"
    with pytest.raises(TypeError, match=message):
        _l3.BookSet().add_book(_pyl3.OrderBook(price_decimals=2), symbol="X")
    message = r"^book must be a fastbook\.l3\.OrderBook or a fastbook\.Book, got Book$"
    with pytest.raises(TypeError, match=message):
        _l3.BookSet().add_book(_pycore.Book(price_decimals=2, qty_decimals=0), symbol="X")
    message = r"^book must be a fastbook\.l3\.OrderBook or a fastbook\.Book, got OrderBook$"
    with pytest.raises(TypeError, match=message):
        _pyl3.BookSet().add_book(_l3.OrderBook(price_decimals=2), symbol="X")


# ---------------------------------------------------------------------------
# apply
# ---------------------------------------------------------------------------

def test_apply_routes_by_instrument(impls):
    l3mod, _ = impls
    bs = seeded(l3mod)
    aapl, msft, btc = bs[0], bs[1], bs[2]
    assert aapl.orders_at(BID, 100) == [(1, 5), (2, 7), (3, 1)]
    assert msft.best_ask() == (200, 9) and msft.best_bid() is None
    assert btc.bbo() == (2743150, 25, 2743175, 10)
    n = bs.apply(ev(
        {"instrument": 0, "action": "execute", "order_id": 1, "qty": 2},
        {"instrument": 0, "action": "reduce", "order_id": 2, "qty": 7},
        {"instrument": 0, "action": "replace", "order_id": 4, "new_order_id": 5,
         "price": 104, "qty": 6},
        {"instrument": 1, "action": "delete", "order_id": 1},
        {"instrument": 2, "action": "execute", "side": BID, "price": 2743150, "qty": 5},
        {"instrument": 2, "action": "delete", "side": ASK, "price": 2743175, "qty": 10},
        {"instrument": 1, "action": "trade", "price": 1, "qty": 1, "order_id": 777},
        {"instrument": 0, "action": "status"},
        {"instrument": 2, "action": "snapshot_end"},
    ))
    assert n == 9
    assert aapl.orders_at(BID, 100) == [(1, 3), (3, 1)]
    assert aapl.best_ask() == (104, 6) and 4 not in aapl
    assert msft.order_count == 0
    assert btc.bbo() == (2743150, 20, None, None)
    assert bs.apply(empty_events(0)) == 0


def test_clear_and_snapshot(impls):
    l3mod, _ = impls
    bs = seeded(l3mod)
    bs.apply(ev({"instrument": 0, "action": "clear"},
                {"instrument": 2, "action": "snapshot_begin"},
                {"instrument": 2, "action": "set_level", "side": BID, "price": 9, "qty": 1,
                 "flags": 2},
                {"instrument": 2, "action": "snapshot_end"}))
    assert bs[0].order_count == 0 and bs[0].depth(BID) == 0
    assert bs[1].order_count == 1
    assert list(bs[2]) == [(BID, 9, 1)]


def test_clear_every_book(impls):
    l3mod, _ = impls
    bs = seeded(l3mod, on_error="skip")
    bs.apply(ev({"instrument": 0, "action": "delete", "order_id": 99}))
    bs.clear()
    assert [book_state(b)[0] for b in bs.books] == [{}, {}, {}]
    assert bs.errors["unknown_order"] == 1 and len(bs) == 3
    assert bs.apply(ev(*SEED)) == len(SEED)          # ids are free again


def test_l2_book_missing_delete_is_counted_not_an_error(impls):
    l3mod, _ = impls
    bs = seeded(l3mod)
    bs.apply(ev({"instrument": 2, "action": "set_level", "side": BID, "price": 1, "qty": 0}))
    assert bs[2].missing_deletes == 1


ERROR_CASES = [
    # (event, kind, message)
    ({"instrument": 0, "action": "delete", "order_id": 99}, "unknown_order",
     r"cannot delete order 99: it is not in the book \(instrument 0, 'AAPL'\)"),
    ({"instrument": 1, "action": "add", "side": BID, "price": 1, "qty": 1, "order_id": 1},
     "duplicate_order",
     r"cannot add order 1: it is already in the book \(instrument 1, 'MSFT'\)"),
    ({"instrument": 0, "action": "execute", "order_id": 4, "qty": 4}, "over_execute",
     "cannot execute 4 from order 4: only 3 remaining"),
    ({"instrument": 0, "action": "reduce", "order_id": 4, "qty": 0}, "bad_quantity",
     r"quantity must be >= 1, got 0 \(order 4\)"),
    ({"instrument": 0, "action": "add", "side": 0, "price": 1, "qty": 1, "order_id": 8},
     "bad_side", r"side must be fastbook.BID \(1\) or fastbook.ASK \(2\), got 0"),
    ({"instrument": 0, "action": "add", "side": BID, "price": INT64_MIN, "qty": 1,
      "order_id": 8}, "bad_price", "INT64_MIN"),
    ({"instrument": 0, "action": "replace", "order_id": 1, "new_order_id": 4, "price": 1,
      "qty": 1}, "duplicate_order", "cannot replace order 1 by 4"),
    ({"instrument": 0, "action": "add", "side": BID, "price": 100, "qty": INT64_MAX,
      "order_id": 8}, "overflow", "would overflow int64"),
    ({"instrument": 0, "action": "set_level", "side": BID, "price": 1, "qty": 1},
     "bad_action", r"SET_LEVEL needs an L2 book \(instrument 0, 'AAPL'\)"),
    ({"instrument": 2, "action": "replace", "order_id": 1, "new_order_id": 2, "price": 1,
      "qty": 1}, "bad_action", r"REPLACE needs an L3 book \(instrument 2, 'BTC-USD'\)"),
    ({"instrument": 2, "action": "execute", "side": BID, "price": 2743150, "qty": 26},
     "over_execute", "cannot execute 26 at price 2743150: the level holds only 25"),
    ({"instrument": 2, "action": "delete", "side": BID, "price": 5, "qty": 1},
     "over_execute", "cannot delete 1 at price 5: the level holds only 0"),
    ({"instrument": 2, "action": "add", "side": 3, "price": 5, "qty": 1}, "bad_side", "got 3"),
    ({"instrument": 2, "action": "add", "side": ASK, "price": 5, "qty": 0}, "bad_quantity",
     r"quantity must be >= 1, got 0 \(at price 5\)"),
    ({"instrument": 2, "action": "set_level", "side": ASK, "price": 5, "qty": -1},
     "bad_quantity", "quantity must be >= 0, got -1"),
    ({"instrument": 2, "action": "set_level", "side": ASK, "price": INT64_MIN, "qty": 1},
     "bad_price", "INT64_MIN"),
    ({"instrument": 2, "action": "add", "side": BID, "price": 2743150, "qty": INT64_MAX},
     "overflow", "cannot add 9223372036854775807 at price 2743150"),
]


@pytest.mark.parametrize(("event", "kind", "match"), ERROR_CASES)
def test_errors_raise_and_roll_back(impls, event, kind, match):
    l3mod, _ = impls
    bs = seeded(l3mod)
    before = set_state(bs)
    # a batch that changes every book (with a clear) before the failing event
    batch = ev(
        {"instrument": 0, "action": "add", "side": ASK, "price": 106, "qty": 1, "order_id": 50},
        {"instrument": 0, "action": "execute", "order_id": 1, "qty": 5},     # removes order 1
        {"instrument": 0, "action": "reduce", "order_id": 2, "qty": 3},      # partial
        {"instrument": 1, "action": "clear"},
        {"instrument": 1, "action": "add", "side": BID, "price": 1, "qty": 1, "order_id": 1},
        {"instrument": 2, "action": "set_level", "side": BID, "price": 2743150, "qty": 0},
        {"instrument": 2, "action": "set_level", "side": BID, "price": 2743150, "qty": 25},
        {"instrument": 2, "action": "set_level", "side": BID, "price": 3, "qty": 0},
        {"instrument": 2, "action": "snapshot_begin"},
        {"instrument": 2, "action": "add", "side": BID, "price": 2743150, "qty": 25},
        {"instrument": 0, "action": "replace", "order_id": 2, "new_order_id": 20, "price": 99,
         "qty": 1},
        {"instrument": 0, "action": "replace", "order_id": 20, "new_order_id": 2, "price": 100,
         "qty": 4},
        {"instrument": 0, "action": "add", "side": BID, "price": 100, "qty": 1, "order_id": 1},
        event,
    )
    with pytest.raises(UpdateError, match=match) as info:
        bs.apply(batch)
    assert info.value.index == len(batch) - 1
    assert str(info.value).startswith(f"event {len(batch) - 1}: ")
    assert set_state(bs) == before
    assert bs[0].orders_at(BID, 100) == [(1, 5), (2, 7), (3, 1)]     # queue order restored

    skip = seeded(l3mod, on_error="skip")
    assert skip.apply(batch) == len(batch) - 1
    expected = dict.fromkeys(l3mod.BOOKSET_ERROR_KINDS, 0)
    expected[kind] = 1
    assert skip.errors == expected
    inst = int(batch[-1]["instrument"])
    assert skip.instrument_errors(inst)[kind] == 1
    reference = seeded(l3mod, on_error="skip")
    reference.apply(batch[:-1])
    assert [book_state(b) for b in skip.books] == [book_state(b) for b in reference.books]


def test_bad_instrument_and_action(impls):
    l3mod, _ = impls
    bs = seeded(l3mod)
    before = set_state(bs)
    with pytest.raises(UpdateError, match=r"event 1: instrument 3 is not in this BookSet "
                                          r"\(it has 3 instruments\)") as info:
        bs.apply(ev({"instrument": 0, "action": "delete", "order_id": 1},
                    {"instrument": 3, "action": "trade"}))
    assert info.value.index == 1
    assert set_state(bs) == before
    raw = empty_events(2)
    raw["instrument"] = [0, 2]
    raw["action"] = [0, 12]
    with pytest.raises(UpdateError, match=r"event 0: action 0 is not a fastbook.events.Action"):
        bs.apply(raw)
    skip = seeded(l3mod, on_error="skip")
    raw = empty_events(3)
    raw["instrument"] = [0, 2, 70000]
    raw["action"] = [0, 12, 1]
    assert skip.apply(raw) == 0
    assert skip.errors["bad_action"] == 2 and skip.errors["bad_instrument"] == 1
    assert skip.instrument_errors(0)["bad_action"] == 1
    skip.reset_errors()
    assert sum(skip.errors.values()) == 0


def test_array_validation(impls):
    l3mod, _ = impls
    bs = seeded(l3mod)
    for bad in ([1, 2], np.zeros(3, dtype=np.int64), np.zeros((2, 2), dtype=EVENT_DTYPE),
                empty_events(6)[::2], EVENT_DTYPE and np.zeros(2, EVENT_DTYPE.newbyteorder())):
        with pytest.raises(ArrayError, match=r"^events must "):
            bs.apply(bad)


def test_an_equal_dtype_is_accepted_and_others_still_refused(impls):
    # an array whose dtype equals EVENT_DTYPE without being that object (np.load,
    # unpickling) applies; a different one is refused, whatever was applied before
    l3mod, _ = impls
    bs = seeded(l3mod)
    equal = np.dtype(EVENT_DTYPE.descr)
    assert equal == EVENT_DTYPE and equal is not EVENT_DTYPE
    events = np.zeros(2, dtype=equal)
    events["action"] = Action.TRADE
    for _ in range(2):
        assert bs.apply(events) == 2
        for bad in (np.zeros(2, EVENT_DTYPE.newbyteorder()), np.zeros(2, np.int64)):
            message = r"^events must have dtype fastbook\.events\.EVENT_DTYPE, got "
            with pytest.raises(ArrayError, match=message):
                bs.apply(bad)


def _big_batch(n_orders):
    """Adds on instrument 0 and 1, then deletes of most of them: n_orders * 2 events."""
    recs = []
    for k in range(n_orders):
        recs.append({"instrument": k % 2, "action": "add", "side": BID if k % 3 else ASK,
                     "price": 1000 + (k % 50) * (1 if k % 3 else -1) + (0 if k % 3 else 200),
                     "qty": 1 + k % 9, "order_id": 1000 + k})
    for k in range(0, n_orders, 2):
        recs.append({"instrument": k % 2, "action": "delete", "order_id": 1000 + k})
    return ev(*recs)


def test_large_batches_release_the_gil_and_roll_back(impls):
    l3mod, _ = impls
    bs = seeded(l3mod)
    batch = _big_batch(2000)
    assert len(batch) >= 256
    assert bs.apply(batch) == len(batch)
    assert bs[0].order_count + bs[1].order_count == 5 + 1000
    before = set_state(bs)
    bad = np.concatenate([_big_batch(1500)[:1500], ev({"instrument": 1, "action": "delete",
                                                      "order_id": 5})])
    bad["order_id"][:1500] += 100_000
    with pytest.raises(UpdateError) as info:
        bs.apply(bad)
    assert info.value.index == 1500
    assert set_state(bs) == before
    # the books are not left marked busy
    bs[0].best_bid()
    bs[0].add(424242, BID, 1, 1)
    bs[2].set(BID, 1, 1)


@needs_compiled
def test_books_are_guarded_while_apply_runs_without_the_gil():
    """Held inside apply's GIL-free loop (by a sampler's growth, which takes the GIL back
    there), every book of the set refuses every call from another thread, on every run;
    between batches they all work. A reader thread racing the batches meanwhile only
    ever sees a read succeed or that refusal."""
    import threading

    busy = (r"^fastbook\.(OrderBook is being modified by BookSet\.apply|Book is being "
            r"modified by Book\.apply \(or BookSet\.apply\)) in another thread")
    bs = seeded(_l3)
    batch = _big_batch(60_000)
    seen = {"ok": 0, "busy": 0}
    odd: list[str] = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            for book in bs.books:
                try:
                    book.bbo()
                    seen["ok"] += 1
                except RuntimeError as exc:
                    seen["busy"] += 1
                    if "being modified" not in str(exc):  # pragma: no cover - reported below
                        odd.append(str(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(3):
            bs.clear()
            for book in bs.books:                 # reads work between batches
                book.bbo()
            with inside_bookset_apply(bs, batch):
                for book in bs.books:
                    with pytest.raises(RuntimeError, match=busy):
                        book.bbo()
                    with pytest.raises(RuntimeError, match=busy):
                        book.clear()
                with pytest.raises(RuntimeError, match=busy):
                    bs[0].add(424242, BID, 1, 1)
                with pytest.raises(RuntimeError, match=busy):
                    bs[2].set(BID, 1, 1)
    finally:
        done.set()
        t.join()
    assert not odd
    for book in bs.books:                         # and after the last one
        book.bbo()
    assert bs[0].order_count + bs[1].order_count == 30_000


@needs_compiled
def test_nbytes_may_grow_but_contents_roll_back():
    bs = seeded(_l3)
    before = set_state(bs)
    cap = bs[0].order_capacity
    batch = _big_batch(3000)
    batch = np.concatenate([batch, ev({"instrument": 0, "action": "delete", "order_id": 99})])
    message = (r"^event 4500: cannot delete order 99: it is not in the book \(instrument 0,"
               r" 'AAPL'\)$")
    with pytest.raises(UpdateError, match=message):
        bs.apply(batch)
    assert set_state(bs) == before
    assert bs[0].order_capacity >= cap


@needs_compiled
def test_event_struct_matches_the_dtype():
    assert _l3._EVENT_DTYPE is EVENT_DTYPE or _l3._EVENT_DTYPE == EVENT_DTYPE


def test_top_level_sides_are_fastbook_sides():
    assert fastbook.BID == BID and fastbook.ASK == ASK
    assert int(Action.ADD) == 1


# ---------------------------------------------------------------------------
# differential: compiled against twin, random batches
# ---------------------------------------------------------------------------

@needs_compiled
@pytest.mark.parametrize("on_error", ["raise", "skip", "stop"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(event_records, max_size=30), min_size=1, max_size=8))
def test_differential(on_error, batches):
    compiled, twin = make_set(_l3, on_error), make_set(_pyl3, on_error)
    for records in batches:
        events = as_events(records)
        assert outcome(compiled, events) == outcome(twin, events)
        assert set_state(compiled) == set_state(twin)
        for i in range(3):
            assert compiled.instrument_errors(i) == twin.instrument_errors(i)


# ---------------------------------------------------------------------------
# The callback path: books are read-only to the callback, the set is fixed
# ---------------------------------------------------------------------------

def _adds(n, instrument=0):
    return ev(*[{"action": "add", "side": BID, "price": 5_000 - k, "qty": 1, "order_id": k + 1}
                for k in range(n)], instrument=instrument)


@pytest.mark.parametrize("call", [
    lambda bs: bs[0].add(999, BID, 4_000, 1),
    lambda bs: bs[0].delete(1),
    lambda bs: bs[0].execute(1, 1),
    lambda bs: bs[0].reduce(1, 1),
    lambda bs: bs[0].replace(1, 998, 1, 4_000),
    lambda bs: bs[0].modify(1, 1, 4_000),
    lambda bs: bs[1].clear(),
    lambda bs: bs[2].set(BID, 100, 5),
    lambda bs: bs[2].set_str(BID, "1.00", "5"),
    lambda bs: bs[2].apply(np.array([1], np.int8), np.array([100]), np.array([5])),
    lambda bs: bs[2].clear(),
], ids=["add", "delete", "execute", "reduce", "replace", "modify", "l3-clear", "set",
        "set_str", "l2-apply", "l2-clear"])
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_callback_cannot_change_a_book(impls, call, on_error):
    """A callback that tries to change a book gets RuntimeError, and the batch stops as
    for any callback error: raise mode rolls every event back, skip mode keeps the
    events up to the one whose callback failed. Nothing the callback tried happened."""
    l3mod, _ = impls
    bs = make_set(l3mod, on_error)
    seen = []

    def callback(index, instrument):
        seen.append(index)
        if index == 2:
            call(bs)

    with pytest.raises(RuntimeError, match=r"is read-only while BookSet.apply runs its "
                                           r"callback \(the callback may read"):
        bs.apply(_adds(5), callback=callback)
    assert seen == [0, 1, 2]
    kept = 0 if on_error == "raise" else 3
    assert bs[0].order_count == kept
    assert [p for p, _ in bs[0].levels(BID)] == [5_000 - k for k in range(kept)]
    assert len(bs[2]) == 0 and bs[1].order_count == 0
    # the books are writable again once apply returns
    assert bs[0].add(999, BID, 4_000, 1) is (kept == 0)
    bs[2].set(BID, 100, 5)
    assert bs[2].qty_at(BID, 100) == 5


@pytest.mark.parametrize("call, what", [
    (lambda bs: bs.add_instrument("NEW", price_decimals=2), "add instruments"),
    (lambda bs: bs.add_book(bs[0].__class__(price_decimals=2), symbol="B2"),
     "add instruments"),
    (lambda bs: bs.clear(), "clear the books"),
    (lambda bs: bs.apply(_adds(1, instrument=1)), "apply events"),
])
def test_callback_cannot_change_the_set(impls, call, what):
    """Adding instruments from a callback used to let later events reach a sampler's
    per-instrument state past its end (it is sized when apply starts)."""
    l3mod, _ = impls
    bs = make_set(l3mod)
    sampler = fastbook.Sampler(depth=2, every=1)

    def callback(index, instrument):
        if index == 1:
            call(bs)

    with pytest.raises(RuntimeError, match=rf"BookSet\.apply is running: its callback "
                                           rf"cannot {what}"):
        bs.apply(_adds(3), sampler=sampler, callback=callback)
    assert len(bs) == 3 and bs[0].order_count == 0 and len(sampler) == 0
    bs.add_instrument("NEW", price_decimals=2)      # fine outside apply
    assert len(bs) == 4


def test_callback_reads_and_reserves(impls):
    """Reads work inside the callback, and so does reserving room (capacity only)."""
    l3mod, _ = impls
    bs = make_set(l3mod)
    best = []

    def callback(index, instrument):
        best.append(bs[0].best_bid())
        bs[0].reserve_orders(100)
        bs[2].reserve(ASK, 64)

    assert bs.apply(_adds(3), callback=callback) == 3
    assert best == [(5_000, 1), (5_000, 1), (5_000, 1)]
    assert bs[0].order_capacity == 100 and bs[2].capacity(ASK) == 64


def test_a_book_read_only_in_one_set_refuses_another_sets_apply(impls):
    l3mod, _ = impls
    a, b = l3mod.BookSet(), l3mod.BookSet()
    shared = l3mod.OrderBook(price_decimals=4)
    a.add_book(shared, symbol="X")
    b.add_book(shared, symbol="X")

    def callback(index, instrument):
        b.apply(_adds(1))

    with pytest.raises(RuntimeError, match=r"a book of this BookSet is read-only while "
                                           r"another BookSet\.apply runs its callback"):
        a.apply(_adds(2), callback=callback)
    assert shared.order_count == 0
    assert b.apply(_adds(2)) == 2


def test_sets_sharing_a_book_are_read_only_together(impls):
    """Sets linked by shared books (directly or through a third set) form one group: a
    callback of any of them makes every book of the group read-only, its own and the
    others' alike, and apply on any other set of the group is refused until it returns."""
    l3mod, l2mod = impls
    a, b, c = l3mod.BookSet(), l3mod.BookSet(), l3mod.BookSet()
    x, y = l3mod.OrderBook(price_decimals=4), l3mod.OrderBook(price_decimals=4)
    own_b = l2mod.Book(price_decimals=2, qty_decimals=0)
    a.add_book(x, symbol="X")
    b.add_instrument("B0", price_decimals=4)
    b.add_book(own_b, symbol="B1")
    b.add_book(y, symbol="Y")
    c.add_book(y, symbol="Y")       # b and c share y ...
    c.add_book(x, symbol="X")       # ... and c and a share x: a, b, c are one group
    loner = l3mod.BookSet()
    loner.add_instrument("L", price_decimals=4)
    refused, allowed = [], []

    def callback(index, instrument):
        for name, call in (("b[0].add", lambda: b[0].add(77, BID, 1, 1)),
                           ("own_b.set", lambda: own_b.set(BID, 1, 1)),
                           ("y.add", lambda: y.add(78, ASK, 9, 1)),
                           ("b.apply", lambda: b.apply(_adds(1))),
                           ("loner.apply", lambda: loner.apply(_adds(1)))):
            try:
                call()
                allowed.append(name)
            except RuntimeError:
                refused.append(name)
        # reads are fine
        assert b[0].best_bid() is None and own_b.qty_at(BID, 1) == 0

    assert a.apply(_adds(1), callback=callback) == 1
    assert refused == ["b[0].add", "own_b.set", "y.add", "b.apply"]
    assert allowed == ["loner.apply"]
    # all writable again afterwards
    assert b[0].add(77, BID, 1, 1) and own_b.set(BID, 1, 1) and y.add(78, ASK, 9, 1)
    assert b.apply(_adds(1)) == 1 and c[1].best_bid() == (5_000, 1)


def test_a_book_of_a_collected_set_joins_a_new_group(impls):
    import gc

    l3mod, _ = impls
    x = l3mod.OrderBook(price_decimals=4)
    old = l3mod.BookSet()
    old.add_book(x, symbol="X")
    del old
    gc.collect()
    new = l3mod.BookSet()
    new.add_book(x, symbol="X")
    seen = []

    def callback(index, instrument):
        with pytest.raises(RuntimeError, match="read-only"):
            x.add(99, BID, 1, 1)
        seen.append(index)

    assert new.apply(_adds(2), callback=callback) == 2 and seen == [0, 1]
    assert x.add(99, BID, 1, 1) is False and x.order_count == 3   # writable again


@needs_compiled
def test_a_set_waits_for_book_apply_on_one_of_its_books():
    """Book.apply of one book in another thread (GIL released) makes the sets holding
    the book refuse apply (and the book refuse to join another set) until it is done:
    by one flag of the set's guard, not a walk over the set's books."""
    updates = random_updates(seed=5)
    bs = make_set(_l3, "skip")      # applies outside the window repeat an add: skipped
    book = bs[2]
    race_book_apply(book, updates, (lambda: bs.apply(_adds(1, instrument=1)),
                                    lambda: _l3.BookSet().add_book(book, symbol="B")),
                    "being modified")
    ref = _core.Book(price_decimals=2, qty_decimals=8)
    ref.apply(*updates)
    for side in (BID, ASK):
        assert [x.tolist() for x in book.to_arrays(side)] == \
            [x.tolist() for x in ref.to_arrays(side)]
    # idle again: the set applies and the book may join another set
    bs.clear()
    assert bs.apply(_adds(1, instrument=1)) == 1 and bs[1].order_count == 1
    assert _l3.BookSet().add_book(book, symbol="B") == 0


# ---------------------------------------------------------------------------
# on_error="stop": raise at the failing event, keep the events before it
# ---------------------------------------------------------------------------

def _stream_with_a_bad_event(n, bad):
    """``n`` adds and deletes over instruments 0-2 (2 is L2); event ``bad`` deletes an
    order that does not exist."""
    recs = []
    for k in range(n):
        inst = k % 3
        if inst == 2:
            recs.append({"instrument": 2, "action": "set_level", "side": BID,
                         "price": 10_000 - k, "qty": k + 1})
        elif k % 5 == 4:
            recs.append({"instrument": inst, "action": "delete", "order_id": k - 3})
        else:
            recs.append({"instrument": inst, "action": "add", "side": ASK if k & 1 else BID,
                         "price": 5_000 + (k % 7 if k & 1 else -(k % 7)), "qty": 1 + k % 4,
                         "order_id": k})
    recs[bad] = {"instrument": bad % 3 if bad % 3 != 2 else 0, "action": "delete",
                 "order_id": 10**9}
    return ev(*recs)


@pytest.mark.parametrize("bad", [0, 1, 17, 299, 599])
def test_stop_keeps_the_events_before_the_failure(impls, bad):
    l3mod, _ = impls
    events = _stream_with_a_bad_event(600, bad)
    stop, reference, atomic = (make_set(l3mod, mode) for mode in ("stop", "stop", "raise"))
    assert stop.on_error == "stop"
    with pytest.raises(UpdateError) as got:
        stop.apply(events)
    with pytest.raises(UpdateError) as want:
        atomic.apply(events)
    # the same error as raise mode, but the books stand as of the event before it
    assert got.value.index == want.value.index == bad and str(got.value) == str(want.value)
    assert reference.apply(events[:bad]) == bad
    assert set_state(stop) == set_state(reference)
    assert set_state(atomic) == set_state(make_set(l3mod))        # raise mode: all undone
    assert sum(stop.errors.values()) == 0
    # and it goes on from there (to the next failure), as a set that never saw the bad
    # event would
    rest = events[bad + 1:]
    assert outcome(stop, rest) == outcome(reference, rest)
    assert set_state(stop) == set_state(reference)


def test_stop_keeps_the_sample_rows_and_the_callbacks_event(impls):
    l3mod, _ = impls
    events = _stream_with_a_bad_event(60, 40)
    stop, reference = make_set(l3mod, "stop"), make_set(l3mod, "raise")
    samplers = fastbook.Sampler(depth=2, every=3), fastbook.Sampler(depth=2, every=3)
    with pytest.raises(UpdateError, match="event 40"):
        stop.apply(events, sampler=samplers[0])
    reference.apply(events[:40], sampler=samplers[1])
    assert len(samplers[0]) == len(samplers[1]) > 0
    for a, b in zip(samplers[0].take().values(), samplers[1].take().values(), strict=True):
        assert np.array_equal(a, b)
    # a callback error at event i keeps events 0..i (as skip mode does)
    stop, reference = make_set(l3mod, "stop"), make_set(l3mod, "raise")

    def callback(index, instrument):
        if index == 25:
            raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        stop.apply(events, callback=callback)
    reference.apply(events[:26])
    assert set_state(stop) == set_state(reference)
