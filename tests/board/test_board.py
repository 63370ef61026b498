"""The top-N board's API, on the twin and (when built) the compiled module alike:
publishing books and arrays, the record layout, versions, and refused arguments."""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import pytest

import fastbook
from fastbook import _pyboard
from tests.helpers.impls import pair

BOARDS = pair(_pyboard, None)
try:  # the compiled board, when built and not disabled
    BOARDS = pair(_pyboard, importlib.import_module("fastbook._board"))
except ImportError:  # pragma: no cover - before/without the build
    pass


@pytest.fixture(params=sorted(BOARDS), ids=lambda n: f"board={n}")
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return BOARDS[request.param]  # type: ignore[return-value]


def make_book(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> fastbook.Book:
    book = fastbook.Book(price_decimals=2, qty_decimals=0)
    for p, q in bids:
        book.set(fastbook.BID, p, q)
    for p, q in asks:
        book.set(fastbook.ASK, p, q)
    return book


def i64(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_a_new_board_reads_empty(mod: ModuleType) -> None:
    board = mod.Board(3, depth=4)
    assert (board.slots, board.depth, board.record_len) == (3, 4, 5 + 16)
    snap = board.read(2)
    assert (snap.version, snap.state, snap.ts_ns, snap.n_bids, snap.n_asks) == (0, 0, 0, 0, 0)
    assert snap.bids.shape == (0, 2) and snap.asks.shape == (0, 2)
    assert snap.spread is None
    assert board.version(0) == 0
    assert board.versions().tolist() == [0, 0, 0]


def test_publish_a_book_copies_its_top(mod: ModuleType) -> None:
    book = make_book([(10000 - i, 10 + i) for i in range(6)],
                     [(10005 + i, 20 + i) for i in range(2)])
    board = mod.Board(2, depth=4)
    assert board.publish(1, book, state=2, ts_ns=1_700_000_000_123_456_789) == 1
    snap = board.read(1)
    assert snap.version == 1 and snap.state == 2 and snap.ts_ns == 1_700_000_000_123_456_789
    assert snap.bids.tolist() == [[10000, 10], [9999, 11], [9998, 12], [9997, 13]]
    assert snap.asks.tolist() == [[10005, 20], [10006, 21]]
    assert snap.spread == 5
    assert board.version(1) == 1 and board.version(0) == 0
    # the book changes; the board keeps what was published until the next publish
    book.set(fastbook.ASK, 10005, 0)
    assert board.read(1).asks.tolist() == [[10005, 20], [10006, 21]]
    assert board.publish(1, book) == 2
    snap = board.read(1)
    assert snap.asks.tolist() == [[10006, 21]] and snap.state == 0 and snap.ts_ns == 0
    assert board.versions().tolist() == [0, 2]


def test_publish_the_twin_book_like_the_compiled_one(mod: ModuleType) -> None:
    from fastbook import _pycore

    levels = ([(500 - i, 1 + i) for i in range(7)], [(501 + i, 9) for i in range(3)])
    twin_book = _pycore.Book(price_decimals=2, qty_decimals=0)
    for p, q in levels[0]:
        twin_book.set(fastbook.BID, p, q)
    for p, q in levels[1]:
        twin_book.set(fastbook.ASK, p, q)
    board = mod.Board(2, depth=5)
    board.publish(0, twin_book, state=4, ts_ns=8)
    board.publish(1, make_book(*levels), state=4, ts_ns=8)
    a, b = np.empty(board.record_len, np.int64), np.empty(board.record_len, np.int64)
    board.read_into(0, a)
    board.read_into(1, b)
    assert a.tolist() == b.tolist() and a[3] == 5 and a[4] == 3


def test_publish_an_object_with_top(mod: ModuleType) -> None:
    class Top:
        def top(self, n: int) -> np.ndarray:
            a = np.zeros((4, n), dtype=np.int64)
            a[:, 0] = (100, 1, 101, 2)
            return a

    board = mod.Board(1, depth=3)
    board.publish(0, Top())
    snap = board.read(0)
    assert snap.bids.tolist() == [[100, 1]] and snap.asks.tolist() == [[101, 2]]


def test_publish_levels_and_read_into_layout(mod: ModuleType) -> None:
    board = mod.Board(1, depth=3)
    v = board.publish_levels(0, i64([50, 49]), i64([1, 2]), i64([51]), i64([3]), state=-1, ts_ns=9)
    assert v == 1
    out = np.full(board.record_len, -7, dtype=np.int64)
    assert board.read_into(0, out) == 1
    assert out.tolist() == [1, -1, 9, 2, 1,  50, 1, 49, 2, 0, 0,  51, 3, 0, 0, 0, 0]
    snap = mod.unpack(out)
    assert snap == (1, -1, 9, 2, 1, snap.bids, snap.asks)
    assert snap.bids.tolist() == [[50, 1], [49, 2]] and snap.asks.tolist() == [[51, 3]]
    # fewer levels next time: the old ones are cleared, not left behind
    board.publish_levels(0, i64([]), i64([]), i64([52, 53]), i64([4, 5]))
    board.read_into(0, out)
    assert out.tolist() == [2, 0, 0, 0, 2,  0, 0, 0, 0, 0, 0,  52, 4, 53, 5, 0, 0]


def test_versions_into_a_strided_buffer(mod: ModuleType) -> None:
    board = mod.Board(3, depth=1)
    for slot, times in ((0, 2), (2, 5)):
        for _ in range(times):
            board.publish_levels(slot, i64([1]), i64([1]), i64([]), i64([]))
    buf = np.full(6, -1, dtype=np.int64)
    assert board.versions(buf[::2]) is not None
    assert buf.tolist() == [2, -1, 0, -1, 5, -1]
    ro = np.zeros(3, dtype=np.int64)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be"):
        board.versions(ro)


def test_snapshots_are_copies(mod: ModuleType) -> None:
    board = mod.Board(1, depth=2)
    board.publish_levels(0, i64([5]), i64([1]), i64([6]), i64([1]))
    snap = board.read(0)
    snap.bids[0, 0] = 99
    assert board.read(0).bids.tolist() == [[5, 1]]


@pytest.mark.parametrize(("args", "match"), [
    ((0,), "slots"), ((-1,), "slots"), ((2, 0), "depth"), ((2, 257), "depth"),
    ((2.0,), "slots"), ((True,), "slots"), ((2, "3"), "depth"),
])
def test_bad_constructor_arguments(mod: ModuleType, args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mod.Board(*args)


def test_bad_slots_are_index_errors(mod: ModuleType) -> None:
    board = mod.Board(2, depth=2)
    book = make_book([(1, 1)], [(2, 1)])
    out = np.zeros(board.record_len, dtype=np.int64)
    for slot in (2, -1, 10**30):
        with pytest.raises(IndexError, match=f"slot {slot} out of range"):
            board.publish(slot, book)
        with pytest.raises(IndexError, match="slot"):
            board.read(slot)
        with pytest.raises(IndexError, match="slot"):
            board.read_into(slot, out)
        with pytest.raises(IndexError, match="slot"):
            board.version(slot)
    with pytest.raises(IndexError, match="slot must be an int"):
        board.read("0")
    assert board.versions().tolist() == [0, 0]


def test_bad_levels_are_value_errors(mod: ModuleType) -> None:
    board = mod.Board(1, depth=2)
    ok = i64([1])
    cases = [
        ((np.array([1.0]), ok, ok, ok), "bid_prices"),
        ((ok, np.array([1], dtype=np.int32), ok, ok), "bid_qtys"),
        ((ok, ok, [1], ok), "ask_prices"),
        ((ok, ok, ok, np.zeros((1, 1), dtype=np.int64)), "ask_qtys"),
        ((i64([1, 2, 3]), i64([1, 2, 3]), ok, ok), "bid_prices has 3 levels, more than"),
        ((i64([1, 2]), ok, ok, ok), "bid_prices has 2 levels but bid_qtys 1"),
        ((ok, ok, ok, i64([])), "ask_prices has 1 levels but ask_qtys 0"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            board.publish_levels(0, *args)
    for kw in ({"state": 2**63}, {"ts_ns": -(2**63) - 1}, {"state": 1.5}, {"ts_ns": None}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            board.publish_levels(0, ok, ok, ok, ok, **kw)
    assert board.version(0) == 0       # nothing refused was published


def test_bad_books_are_value_errors(mod: ModuleType) -> None:
    board = mod.Board(1, depth=2)
    with pytest.raises(ValueError, match="book must be"):
        board.publish(0, object())

    class Wrong:
        def top(self, n: int) -> np.ndarray:
            return np.zeros((4, n + 1), dtype=np.int64)

    with pytest.raises(ValueError, match=r"book.top\(2\) must return"):
        board.publish(0, Wrong())
    assert board.version(0) == 0


def test_bad_out_buffers(mod: ModuleType) -> None:
    board = mod.Board(1, depth=2)
    n = board.record_len
    ro = np.zeros(n, dtype=np.int64)
    ro.flags.writeable = False
    for out in (np.zeros(n - 1, dtype=np.int64), np.zeros(n, dtype=np.int32), ro,
                np.zeros(2 * n, dtype=np.int64)[::2], [0] * n, np.zeros((1, n), dtype=np.int64)):
        with pytest.raises(ValueError, match="out must be"):
            board.read_into(0, out)
    with pytest.raises(ValueError, match="out must be"):
        board.versions(np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="record must be"):
        mod.unpack(np.zeros(n + 1, dtype=np.int64))


def test_the_selector_module() -> None:
    from fastbook import board

    assert board.Board.__module__ == ("fastbook._board" if board.COMPILED else "fastbook._pyboard")
    assert board.record_len(10) == 45 and board.HEADER == 5
