"""Pure-Python twin of ``fastbook._board``: the top-N board, one writer and many readers.

A :class:`Board` holds ``slots`` books' best ``depth`` levels of both sides in fixed
memory. One thread publishes into a slot; any number of threads read consistent copies.
The compiled module does it with a sequence lock (see ``docs/board.md``); this twin
does it the way Python can without locks or atomics: every publish builds a new,
read-only record array and stores it in the slot with one reference assignment, which
is atomic in CPython (with or without the GIL). A reader takes that reference once, so
everything it copies comes from one publish.

It is the reference the compiled board is tested against and the fallback when
``FASTBOOK_NO_EXTENSIONS=1``; :class:`Snapshot`, :func:`unpack` and the record layout
are shared by both.

Record layout (``read_into``; ``int64``, ``HEADER + 4 * depth`` elements)::

    [0] version   [1] state   [2] ts_ns   [3] n_bids   [4] n_asks
    [HEADER : HEADER + 2*depth]            bids, (price, qty) pairs, best first
    [HEADER + 2*depth : HEADER + 4*depth]  asks, (price, qty) pairs, best first

Levels a side does not have are ``(0, 0)`` (a real level never has quantity 0).
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

COMPILED = False

#: Elements of a record before the levels: version, state, ts_ns, n_bids, n_asks.
HEADER = 5
#: Largest ``depth`` a Board accepts (the compiled writer copies a book's top levels
#: through a stack buffer of this many levels per side).
MAX_DEPTH = 256

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

__all__ = ["COMPILED", "HEADER", "MAX_DEPTH", "Board", "Snapshot", "record_len", "unpack"]


class Snapshot(NamedTuple):
    """One consistent copy of a slot: every field comes from the same publish.

    ``version`` counts the slot's publishes (0: never published). ``bids`` and ``asks``
    are ``int64`` arrays of shape ``(n, 2)``, rows ``(price, qty)``, best first.
    """

    version: int
    state: int
    ts_ns: int
    n_bids: int
    n_asks: int
    bids: np.ndarray
    asks: np.ndarray

    @property
    def spread(self) -> int | None:
        """Best ask minus best bid, or None when a side is empty."""
        if self.n_bids == 0 or self.n_asks == 0:
            return None
        return int(self.asks[0, 0]) - int(self.bids[0, 0])


def record_len(depth: int) -> int:
    """Length of a ``read_into`` record for a board of ``depth`` levels per side.

    ``depth`` is an int in ``1..MAX_DEPTH``, as ``Board`` takes (ValueError otherwise).
    """
    return HEADER + 4 * _int_arg(depth, "depth", 1, MAX_DEPTH)


def unpack(record: np.ndarray) -> Snapshot:
    """The :class:`Snapshot` a ``read_into`` record holds (its arrays are views of it).

    ``record`` is a 1-D ``int64`` array of ``HEADER + 4 * depth`` elements filled by
    ``Board.read_into``; copy it first if the buffer is reused.
    """
    if not isinstance(record, np.ndarray) or record.dtype != np.int64 or record.ndim != 1 \
            or len(record) < HEADER + 4 or (len(record) - HEADER) % 4:
        raise ValueError("record must be a 1-D int64 array of HEADER + 4 * depth elements "
                         f"(a Board.read_into buffer), got {_describe(record)}")
    depth = (len(record) - HEADER) // 4
    nb, na = int(record[3]), int(record[4])
    if not (0 <= nb <= depth and 0 <= na <= depth):
        raise ValueError(f"record holds n_bids={nb}, n_asks={na}, outside 0..{depth}: "
                         "not a Board.read_into record")
    asks_at = HEADER + 2 * depth
    return Snapshot(int(record[0]), int(record[1]), int(record[2]), nb, na,
                    record[HEADER:HEADER + 2 * nb].reshape(nb, 2),
                    record[asks_at:asks_at + 2 * na].reshape(na, 2))


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"dtype {a.dtype}, shape {a.shape}"
    return type(a).__name__


def _int_arg(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {v}")
    return v


def _levels_arg(a: object, name: str, depth: int) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.int64 or a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D numpy int64 array, got {_describe(a)}")
    if len(a) > depth:
        raise ValueError(f"{name} has {len(a)} levels, more than the board's depth {depth}")
    return a


def _count(qtys: np.ndarray) -> int:
    """Levels present in a zero-padded, best-first column of quantities."""
    return int(np.count_nonzero(qtys))


class Board:
    """``slots`` books' best ``depth`` levels of both sides, one writer, many readers.

    The writer calls :meth:`publish` (a book) or :meth:`publish_levels` (arrays) for a
    slot; readers on any thread call :meth:`read`, :meth:`read_into` or
    :meth:`version`, and always get every field of one publish. One thread publishes
    into a slot at a time: a second one is refused with RuntimeError.
    """

    def __init__(self, slots: int, depth: int = 10) -> None:
        self._slots = _int_arg(slots, "slots", 1, 2**31 - 1)
        self._depth = _int_arg(depth, "depth", 1, MAX_DEPTH)
        empty = np.zeros(record_len(self._depth), dtype=np.int64)
        empty.flags.writeable = False
        self._records: list[np.ndarray] = [empty] * self._slots
        self._writing = [threading.Lock() for _ in range(self._slots)]

    @property
    def slots(self) -> int:
        """Number of slots."""
        return self._slots

    @property
    def depth(self) -> int:
        """Levels kept per side."""
        return self._depth

    @property
    def record_len(self) -> int:
        """Length of the ``int64`` buffer :meth:`read_into` fills."""
        return record_len(self._depth)

    def __repr__(self) -> str:
        return f"<fastbook Board slots={self._slots} depth={self._depth} (twin)>"

    def _slot(self, slot: object) -> int:
        if isinstance(slot, bool) or not isinstance(slot, (int, np.integer)):
            raise IndexError(f"slot must be an int, got {type(slot).__name__}")
        s = int(slot)
        if not 0 <= s < self._slots:
            raise IndexError(f"slot {s} out of range for a Board of {self._slots} slots")
        return s

    # -- writer ------------------------------------------------------------
    def publish(self, slot: int, book: Any, state: int = 0, ts_ns: int = 0) -> int:
        """Copy ``book``'s best ``depth`` levels of both sides, ``state`` and ``ts_ns``
        into ``slot``; return the slot's new version.

        ``book`` is a ``fastbook.Book`` or any object whose ``top(n)`` returns an
        ``int64`` array of shape ``(4, n)`` (rows bid prices, bid qtys, ask prices, ask
        qtys, zero-padded).
        """
        s = self._slot(slot)
        st = _int_arg(state, "state", _I64_MIN, _I64_MAX)
        ts = _int_arg(ts_ns, "ts_ns", _I64_MIN, _I64_MAX)
        top = getattr(book, "top", None)
        if top is None:
            raise ValueError(f"book must be a fastbook.Book or have top(n), got "
                             f"{type(book).__name__}")
        d = self._depth
        t = top(d)
        if not isinstance(t, np.ndarray) or t.dtype != np.int64 or t.shape != (4, d):
            raise ValueError(f"book.top({d}) must return an int64 array of shape (4, {d}), "
                             f"got {_describe(t)}")
        return self._store(s, st, ts, t[0], t[1], _count(t[1]), t[2], t[3], _count(t[3]))

    def publish_levels(self, slot: int, bid_prices: np.ndarray, bid_qtys: np.ndarray,
                       ask_prices: np.ndarray, ask_qtys: np.ndarray, state: int = 0,
                       ts_ns: int = 0) -> int:
        """Copy levels given as 1-D ``int64`` arrays (best first, at most ``depth`` per
        side; prices and quantities of a side have the same length) into ``slot``;
        return the slot's new version. The levels are copied as given, not checked
        for order or for zero quantities."""
        s = self._slot(slot)
        d = self._depth
        bp = _levels_arg(bid_prices, "bid_prices", d)
        bq = _levels_arg(bid_qtys, "bid_qtys", d)
        ap = _levels_arg(ask_prices, "ask_prices", d)
        aq = _levels_arg(ask_qtys, "ask_qtys", d)
        if len(bp) != len(bq):
            raise ValueError(f"bid_prices has {len(bp)} levels but bid_qtys {len(bq)}")
        if len(ap) != len(aq):
            raise ValueError(f"ask_prices has {len(ap)} levels but ask_qtys {len(aq)}")
        st = _int_arg(state, "state", _I64_MIN, _I64_MAX)
        ts = _int_arg(ts_ns, "ts_ns", _I64_MIN, _I64_MAX)
        return self._store(s, st, ts, bp, bq, len(bp), ap, aq, len(ap))

    def _store(self, s: int, state: int, ts_ns: int, bp: np.ndarray, bq: np.ndarray, nb: int,
               ap: np.ndarray, aq: np.ndarray, na: int) -> int:
        lock = self._writing[s]
        if not lock.acquire(blocking=False):
            raise RuntimeError(f"slot {s} is being published by another thread: one writer "
                               "per slot")
        try:
            d = self._depth
            rec = np.zeros(record_len(d), dtype=np.int64)
            version = int(self._records[s][0]) + 1
            rec[:HEADER] = (version, state, ts_ns, nb, na)
            bids = rec[HEADER:HEADER + 2 * d].reshape(d, 2)
            asks = rec[HEADER + 2 * d:].reshape(d, 2)
            bids[:nb, 0], bids[:nb, 1] = bp[:nb], bq[:nb]
            asks[:na, 0], asks[:na, 1] = ap[:na], aq[:na]
            rec.flags.writeable = False
            self._records[s] = rec      # one reference store: readers see all or nothing
            return version
        finally:
            lock.release()

    # -- readers -----------------------------------------------------------
    def version(self, slot: int) -> int:
        """The slot's version: how many publishes it has had (cheap; to skip unchanged
        slots)."""
        return int(self._records[self._slot(slot)][0])

    def versions(self, out: np.ndarray | None = None) -> np.ndarray:
        """Every slot's version as an ``int64`` array (``out``, of ``slots`` elements,
        when given)."""
        if out is None:
            out = np.empty(self._slots, dtype=np.int64)
        elif not isinstance(out, np.ndarray) or out.dtype != np.int64 \
                or out.shape != (self._slots,) or not out.flags.writeable:
            raise ValueError(f"out must be a writeable int64 array of shape ({self._slots},), "
                             f"got {_describe(out)}")
        records = self._records
        for i in range(self._slots):
            out[i] = records[i][0]
        return out

    def read(self, slot: int) -> Snapshot:
        """A consistent copy of ``slot`` (all fields from one publish)."""
        return unpack(self._records[self._slot(slot)].copy())

    def read_into(self, slot: int, out: np.ndarray) -> int:
        """Copy ``slot`` into ``out`` (a writeable, C-contiguous 1-D ``int64`` array of
        ``record_len`` elements; layout in the module docstring, :func:`unpack` reads
        it) without allocating; return the version copied."""
        s = self._slot(slot)
        n = record_len(self._depth)
        if not isinstance(out, np.ndarray) or out.dtype != np.int64 or out.shape != (n,) \
                or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"out must be a writeable C-contiguous int64 array of shape "
                             f"({n},) (Board.record_len), got {_describe(out)}")
        rec = self._records[s]
        out[:] = rec
        return int(rec[0])
