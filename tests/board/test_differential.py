"""The compiled board and its twin give the same records for the same publishes."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbook
from fastbook import _pyboard
from tests.helpers.impls import NO_EXTENSIONS

cboard: ModuleType | None
try:
    cboard = importlib.import_module("fastbook._board")
except ImportError:  # pragma: no cover - without the build
    cboard = None
pytestmark = pytest.mark.skipif(cboard is None or NO_EXTENSIONS,
                                reason="the compiled board is not under test")

I64 = st.integers(-(2**63), 2**63 - 1)
LEVEL = st.tuples(st.integers(-(10**12), 10**12), st.integers(1, 10**15))
SIDE = st.lists(LEVEL, max_size=12)
# one publish: (slot, bids, asks, state, ts_ns, through a Book or through arrays)
PUBLISH = st.tuples(st.integers(0, 2), SIDE, SIDE, I64, I64, st.booleans())


def records(board: Any) -> list[list[int]]:
    out = np.empty(board.record_len, dtype=np.int64)
    rows = []
    for slot in range(board.slots):
        board.read_into(slot, out)
        rows.append(out.tolist())
    return rows


def publish(board: Any, slot: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]],
            state: int, ts: int, via_book: bool) -> int:
    if via_book:
        book = fastbook.Book(price_decimals=0, qty_decimals=0)
        for p, q in bids:
            book.set(fastbook.BID, p, q)
        for p, q in asks:
            book.set(fastbook.ASK, p, q)
        return int(board.publish(slot, book, state=state, ts_ns=ts))
    d = board.depth
    b, a = bids[:d], asks[:d]
    return int(board.publish_levels(
        slot, np.array([p for p, _ in b], np.int64), np.array([q for _, q in b], np.int64),
        np.array([p for p, _ in a], np.int64), np.array([q for _, q in a], np.int64),
        state=state, ts_ns=ts))


@settings(max_examples=150, deadline=None)
@given(depth=st.integers(1, 8), steps=st.lists(PUBLISH, max_size=12))
def test_same_records(depth: int, steps: list[tuple[int, list[tuple[int, int]],
                                                      list[tuple[int, int]], int, int, bool]]
                      ) -> None:
    assert cboard is not None
    twin, comp = _pyboard.Board(3, depth=depth), cboard.Board(3, depth=depth)
    for slot, bids, asks, state, ts, via_book in steps:
        assert publish(twin, slot, bids, asks, state, ts, via_book) == \
            publish(comp, slot, bids, asks, state, ts, via_book)
        assert records(twin) == records(comp)
        assert _same(twin.read(slot), comp.read(slot))
    assert twin.versions().tolist() == comp.versions().tolist()
    assert [twin.version(i) for i in range(3)] == [comp.version(i) for i in range(3)]


def _same(a: _pyboard.Snapshot, b: _pyboard.Snapshot) -> bool:
    return a[:5] == b[:5] and np.array_equal(a.bids, b.bids) and np.array_equal(a.asks, b.asks)


def test_same_signatures() -> None:
    import inspect

    assert cboard is not None
    for name in ("publish", "publish_levels", "read", "read_into", "version", "versions"):
        t = inspect.signature(getattr(_pyboard.Board, name))
        c = inspect.signature(getattr(cboard.Board, name))
        assert list(t.parameters) == list(c.parameters), name


def test_strided_levels_and_numpy_ints() -> None:
    assert cboard is not None
    for mod in (_pyboard, cboard):
        board = mod.Board(np.int64(1), depth=np.int32(4))
        p = np.arange(8, dtype=np.int64)[::2]
        assert board.publish_levels(np.int64(0), p, p + 1, p + 10, p + 11, state=np.int64(3)) == 1
        snap = board.read(0)
        assert snap.bids.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]], mod
        assert snap.asks[:, 0].tolist() == [10, 12, 14, 16] and snap.state == 3
