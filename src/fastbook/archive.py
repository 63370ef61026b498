"""An archive of a replay: the normalized events plus periodic checkpoints of every book.

``fb.replay(source, archive="day.fba")`` (or ``fastbook archive SOURCE OUT``) writes
one file holding every event of every instrument, in per-instrument *blocks*; each
block starts with a checkpoint (a keyframe) of its book: the whole book as of just
before the block's first event (``OrderBook.orders()`` for an L3 book, the levels for
an L2 ``Book``). :func:`open` reads it back:

* :meth:`Archive.book_at` gives the exact book of a symbol at any exchange time by
  loading one block's keyframe and applying the block's events up to that time;
* :meth:`Archive.samples` resamples a window (time and ``bbo`` rules) without
  re-reading the day, with the rows a replay with the same rule gives there;
* :meth:`Archive.events` gives a symbol's events in a window.

The time rule is the sampler's (:mod:`fastbook.sampling`, ``interval=``): the book
*as of* time ``t`` is the book after every event of the instrument that comes
before its first event with ``ts_exchange > t`` (in stream order). When the
instrument's times never go backwards (every feed fastbook reads) that is exactly
"after every event with ``ts_exchange <= t``". Before the instrument's first event
the book is empty (a new book with the instrument's scales).

The layout, versioning, checksums and compression are described in
``docs/archive.md``. numpy is the only dependency; ``codec="zstd"`` needs the
``zstd`` extra (``zstandard``), ``"zlib"`` is the standard library's.
"""

from __future__ import annotations

import builtins
import difflib
import json
import mmap
import os
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from fastbook.errors import DecodeError
from fastbook.events import EVENT_DTYPE

__all__ = ["FORMAT_VERSION", "Archive", "ArchiveWriter", "Target", "open"]

#: The archive format's version (``docs/archive.md``); readers refuse newer files.
FORMAT_VERSION = 1
_MAGIC = b"FBARCH\x00\x01"
_TRAILER_MAGIC = b"FBAEND\x00\x01"
# header: magic, format version (u32), 4 reserved bytes
_HEADER = struct.Struct("<8sI4x")
# trailer: index offset (u64), index length (u64), index crc32 (u32), 4 reserved, magic
_TRAILER = struct.Struct("<QQI4x8s")

#: One row of the block table: where a block is and what it holds.
BLOCK_DTYPE = np.dtype([
    ("instrument", "<u4"),      # the archive's instrument id
    ("n_events", "<u4"),        # events in the block
    ("first", "<i8"),           # position of its first event among the instrument's
    ("ts_first", "<i8"),        # ts_exchange of its first event
    ("ts_max", "<i8"),          # the most ts_exchange reached by the end of the block
    ("offset", "<u8"),          # of its compressed payload in the file
    ("length", "<u4"),          # compressed bytes
    ("raw_length", "<u4"),      # bytes once decompressed
    ("crc32", "<u4"),           # of the compressed payload
    ("key_a", "<u4"),           # keyframe rows: L3 orders / L2 bid levels
    ("key_b", "<u4"),           # L2 ask levels (0 for L3)
    ("reserved", "<u4"),
])

# the event columns of a block (the instrument is the block's), 8-byte ones delta coded
_DELTA = ("ts_exchange", "ts_receive", "order_id", "sequence", "price")
_COLUMNS = ("ts_exchange", "ts_receive", "action", "side", "flags", "price", "qty",
            "order_id", "new_order_id", "sequence")
_CODECS = ("zlib", "zstd")
#: Bytes of one event in a block (every column but the instrument).
_EVENT_BYTES = 8 + 8 + 1 + 1 + 2 + 8 + 8 + 8 + 8 + 8

_TIME_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
               "min": 60_000_000_000, "h": 3_600_000_000_000}


def parse_checkpoint(checkpoint: Any) -> tuple[str, int]:
    """``("time", T ns)`` for ``"1s"``-like text, ``("events", K)`` for an int K."""
    if isinstance(checkpoint, (int, np.integer)) and not isinstance(checkpoint, bool):
        if checkpoint < 1:
            raise ValueError(f"checkpoint must be a positive number of events, got {checkpoint}")
        return "events", int(checkpoint)
    if isinstance(checkpoint, str):
        from fastbook.driver import parse_every

        try:
            rule = parse_every(checkpoint)
        except ValueError:
            rule = {}
        if list(rule) == ["interval"]:
            return "time", int(rule["interval"])
        if list(rule) == ["every"]:
            return "events", int(rule["every"])
    raise ValueError(f"checkpoint must be a time such as '1s' or '250ms', or a number of "
                     f"events (an int or '5000msgs'); got {checkpoint!r}")


# ---------------------------------------------------------------------------
# Compression and the block payload
# ---------------------------------------------------------------------------

def _zstd(purpose: str) -> Any:
    from fastbook._extras import require

    return require("zstandard", "zstd", purpose)


def _compressor(codec: str, level: int | None) -> Callable[[bytes], bytes]:
    if codec == "zlib":
        lv = 1 if level is None else level
        return lambda data: zlib.compress(data, lv)
    zstd = _zstd("an archive with codec='zstd'")
    compress: Callable[[bytes], bytes] = \
        zstd.ZstdCompressor(level=3 if level is None else level).compress
    return compress


def _decompressor(codec: str, path: str) -> Callable[[bytes, int], bytes]:
    if codec == "zlib":
        return lambda data, size: zlib.decompress(data, bufsize=max(size, 1))
    if codec == "zstd":
        d = _zstd(f"reading {path} (written with codec='zstd')").ZstdDecompressor()
        return lambda data, size: d.decompress(data, max_output_size=size)
    raise DecodeError(f"{path}: unknown block codec {codec!r} (this fastbook reads "
                      f"{', '.join(_CODECS)})")


def _shuffle(a: np.ndarray) -> bytes:
    """An 8-byte column as its byte planes (all first bytes, then all second...): small
    deltas become long runs of zeros, which the codecs compress well."""
    planes: bytes = np.ascontiguousarray(a).view(np.uint8).reshape(-1, 8).T.tobytes()
    return planes


def _unshuffle(raw: memoryview | bytes, n: int, dtype: Any) -> np.ndarray:
    planes = np.frombuffer(raw, dtype=np.uint8, count=8 * n).reshape(8, n)
    out: np.ndarray = np.ascontiguousarray(planes.T).view(dtype).reshape(n)
    return out


def _delta(a: np.ndarray) -> np.ndarray:
    u = a.view(np.uint64)
    out = np.empty_like(u)
    if len(u):
        out[0] = u[0]
        np.subtract(u[1:], u[:-1], out=out[1:])
    return out


def _encode_block(kind: str, keyframe: tuple[np.ndarray, ...], events: np.ndarray) -> bytes:
    """The uncompressed payload: the keyframe's columns, then the events' columns."""
    parts = []
    if kind == "l3":
        (orders,) = keyframe
        parts += [_shuffle(orders["order_id"].astype(np.uint64)),
                  orders["side"].astype(np.uint8).tobytes(),
                  _shuffle(orders["price"].astype(np.int64)),
                  _shuffle(orders["qty"].astype(np.int64))]
    else:
        parts += [_shuffle(np.asarray(c, dtype=np.int64)) for c in keyframe]
    for name in _COLUMNS:
        col = events[name]
        if name in _DELTA:
            parts.append(_shuffle(_delta(np.ascontiguousarray(col))))
        elif col.dtype.itemsize == 8:
            parts.append(_shuffle(col))
        else:
            parts.append(np.ascontiguousarray(col).tobytes())
    return b"".join(parts)


def _decode_block(raw: bytes, kind: str, n: int, key_a: int, key_b: int,
                  instrument: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """``(keyframe, events)`` from a payload (``ValueError`` when its sizes are off)."""
    need = (25 * key_a if kind == "l3" else 16 * (key_a + key_b)) + _EVENT_BYTES * n
    if need != len(raw):
        raise ValueError(f"{len(raw)} bytes for {n} events and a keyframe of "
                         f"{key_a} + {key_b} rows, which take {need}")
    view = memoryview(raw)
    pos = 0

    def take8(count: int, dtype: Any) -> np.ndarray:
        nonlocal pos
        out = _unshuffle(view[pos:pos + 8 * count], count, dtype)
        pos += 8 * count
        return out

    def take(count: int, dtype: Any) -> np.ndarray:
        nonlocal pos
        size = np.dtype(dtype).itemsize * count
        out = np.frombuffer(view[pos:pos + size], dtype=dtype, count=count)
        pos += size
        return out

    keyframe: tuple[np.ndarray, ...]
    if kind == "l3":
        from fastbook.l3 import OrderBook

        dtype = OrderBook(price_decimals=0, capacity=0, order_capacity=0).orders().dtype
        orders = np.zeros(key_a, dtype=dtype)
        orders["order_id"] = take8(key_a, np.uint64)
        orders["side"] = take(key_a, np.uint8)
        orders["price"] = take8(key_a, np.int64)
        orders["qty"] = take8(key_a, np.int64)
        keyframe = (orders,)
    else:
        keyframe = (take8(key_a, np.int64), take8(key_a, np.int64),
                    take8(key_b, np.int64), take8(key_b, np.int64))
    events = np.zeros(n, dtype=EVENT_DTYPE)
    events["instrument"] = instrument
    for name in _COLUMNS:
        kind_of = EVENT_DTYPE[name]
        if name in _DELTA:
            events[name] = np.cumsum(take8(n, np.uint64), dtype=np.uint64).view(kind_of)
        elif kind_of.itemsize == 8:
            events[name] = take8(n, kind_of)
        else:
            events[name] = take(n, kind_of)
    if pos != len(raw):
        raise ValueError(f"{len(raw) - pos} bytes left over")
    return keyframe, events


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

#: Blocks handed to the compressing thread and not yet written, at most.
_PENDING = 64


def _pack_block(compress: Callable[[bytes], bytes], kind: str,
                keyframe: tuple[np.ndarray, ...], events: np.ndarray
                ) -> tuple[bytes, int, int, int]:
    """(compressed payload, its raw length, keyframe rows a and b): the thread's work
    (numpy and the codecs release the GIL, so it overlaps the replay)."""
    raw = _encode_block(kind, keyframe, events)
    key_b = len(keyframe[2]) if kind == "l2" else 0
    return compress(raw), len(raw), len(keyframe[0]), key_b


def _join(pieces: list[np.ndarray], total: int) -> np.ndarray:
    """Event arrays (records, or their (n, 8) words) end to end, as one record array
    (np.concatenate of records promotes the dtype field by field, ten times slower than
    copying the words)."""
    if len(pieces) == 1 and pieces[0].ndim == 1:
        return pieces[0]
    words = np.concatenate([p if p.ndim == 2 else _words(p) for p in pieces])
    out: np.ndarray = words.view(EVENT_DTYPE).reshape(total)
    return out


def _words(events: np.ndarray) -> np.ndarray:
    """An event array as (n, 8) uint64 words: numpy copies and gathers these rows many
    times faster than records."""
    return np.ascontiguousarray(events).view(np.uint64).reshape(len(events), 8)


_SNAPSHOT_BEGIN, _SNAPSHOT_END, _CLEAR = 9, 10, 7
_LAST_IN_PACKET = 0x0001


class _Open:
    """The block being filled for one instrument: its keyframe and event pieces."""

    __slots__ = ("bucket", "count", "first", "keyframe", "pieces", "ts_first")

    def __init__(self, keyframe: tuple[np.ndarray, ...], first: int, bucket: int) -> None:
        self.keyframe = keyframe
        self.pieces: list[np.ndarray] = []
        self.count = 0
        self.first = first
        self.bucket = bucket
        self.ts_first = 0


class Target(NamedTuple):
    """Where and how ``fb.replay(archive=...)`` writes an archive, when a plain path (the
    defaults of :class:`ArchiveWriter`) will not do: ``archive=Target("day.fba",
    codec="zlib", min_events=256)``."""

    path: str | os.PathLike[str]
    codec: str = "auto"
    level: int | None = None
    min_events: int = 1024
    max_events: int = 16384


class ArchiveWriter:
    """Write an archive of a replay: every event, per instrument, in checkpointed blocks.

    The driver's loop uses it through :meth:`wrap`: the wrapped run yields each batch
    cut at the events that start a new block, so that the books stand exactly as of
    the event before when the writer takes the block's keyframe. Everything is
    written to ``path + ".partial"``, renamed to ``path`` by :meth:`close`;
    :meth:`abort` (a failed replay) deletes it: a half-written archive is never
    left under the finished name.

    Parameters
    ----------
    path : str or path-like
        The archive to write.
    checkpoint : "1s"-like time, or int
        A time T (``"1s"``, ``"250ms"``): a book's block ends at the first multiple of
        T of exchange time after it holds ``min_events`` events (or at ``max_events``).
        An int K (or ``"5000msgs"``): every block holds K events of its book.
    min_events, max_events : int
        Time checkpoints only: a block holds at least ``min_events`` events (a
        keyframe per second of every book that changed would be most of the
        archive; see ``docs/archive.md``) and at most ``max_events``.
    codec : {"auto", "zlib", "zstd"}
        Block compression; ``"auto"``: zstd when ``zstandard`` is installed, else zlib.
    level : int, optional
        The codec's level (zlib 1, zstd 3 by default).
    ts_origin : str, optional
        What the events' clock counts from (``"midnight"``, ``"epoch"``): the run's,
        for readers (``fastbook book-at`` reads ``HH:MM`` or a date-time by it).
    meta : dict, optional
        Stored in the header as is (the driver stores the codec and ``ts_origin``).
    """

    def __init__(self, path: str | os.PathLike[str], *, checkpoint: Any = "1s",
                 min_events: int = 1024, max_events: int = 16384, codec: str = "auto",
                 level: int | None = None, ts_origin: str | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.mode, self.step = parse_checkpoint(checkpoint)
        for name, value in (("min_events", min_events), ("max_events", max_events)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if max_events < min_events:
            raise ValueError(f"max_events ({max_events}) must be >= min_events ({min_events})")
        if codec == "auto":
            try:
                _zstd("")
                codec = "zstd"
            except ImportError:
                codec = "zlib"
        if codec not in _CODECS:
            raise ValueError(f"codec must be 'auto', 'zlib' or 'zstd', got {codec!r}")
        self.codec = codec
        self._compress = _compressor(codec, level)
        self.min_events = min_events if self.mode == "time" else self.step
        self.max_events = max_events if self.mode == "time" else self.step
        self.path = os.fspath(path)
        self.meta = dict(meta or {})
        if ts_origin is not None:
            self.meta["ts_origin"] = ts_origin
        self.temp = self.path + ".partial"
        self._file: Any = builtins.open(self.temp, "wb")
        self._file.write(_HEADER.pack(_MAGIC, FORMAT_VERSION))
        self._offset = _HEADER.size
        self._rows: list[tuple[Any, ...]] = []
        self._open: dict[int, _Open] = {}
        self._positions: dict[int, int] = {}       # events written per instrument
        self._ts_max: dict[int, int] = {}          # the most ts_exchange seen, planned
        self._block_ts_max: dict[int, int] = {}    # ... and written
        self._pool: Any = None                      # the compressing thread, once started
        self._pending: deque[tuple[Any, tuple[int, int, int, int, int]]] = deque()
        self._instruments: dict[int, dict[str, Any]] = {}
        self._books: Any = None
        self.events = 0
        self.closed = False

    @classmethod
    def create(cls, target: Any, *, checkpoint: Any = "1s",
               meta: dict[str, Any] | None = None) -> ArchiveWriter:
        """The writer for ``fb.replay(archive=target, checkpoint=)``: a path or a
        :class:`Target`; the path is checked before any work (``check_output``)."""
        from fastbook.driver import check_output

        spec = target if isinstance(target, Target) else Target(target)
        check_output(spec.path, "archive")
        return cls(spec.path, checkpoint=checkpoint, min_events=spec.min_events,
                   max_events=spec.max_events, codec=spec.codec, level=spec.level, meta=meta)

    # -- the driver's hook -----------------------------------------------------
    def wrap(self, run: Any, books: Any) -> _ArchivedRun:
        """``run`` (whose batches ``books`` applies) with its batches cut where blocks
        start, archiving as it goes: what ``fastbook.driver.drive`` iterates."""
        self.meta.setdefault("packets", bool(getattr(run, "packets", False)))
        self.meta.setdefault("skip", getattr(books, "on_error", "skip") == "skip")
        self._books = books
        return _ArchivedRun(run, books, self)

    def _batches(self, events: np.ndarray, books: Any, packets: bool
                 ) -> Iterator[np.ndarray]:
        """Yield ``events`` in pieces; between two, the books are as of the cut."""
        n = len(events)
        if n == 0:
            yield events
            return
        inst = events["instrument"]
        # a stable sort of uint16 keys is a radix sort (most runs have < 65,536 books)
        keys = inst.astype(np.uint16) if int(inst.max()) < 65_536 else inst
        order = np.argsort(keys, kind="stable")
        # a copy (the codec may reuse its buffer), gathered as words
        words = _words(events)[order]
        by_inst = words.view(EVENT_DTYPE).reshape(n)
        ids, starts = np.unique(inst[order], return_index=True)
        ends = np.append(starts[1:], n)
        allowed = self._allowed_cuts(events) if packets else None
        cuts: dict[int, list[tuple[int, np.ndarray, int]]] = {}
        highs = np.maximum.reduceat(by_inst["ts_exchange"], starts).tolist()
        opened, ts_max = self._open, self._ts_max
        for i, lo, hi, high in zip(ids.tolist(), starts.tolist(), ends.tolist(), highs,
                                   strict=True):
            blk = opened.get(i)
            if blk is not None and blk.count + (hi - lo) < self.min_events:
                # the common case: too few events to end the open block (no planning)
                blk.pieces.append(words[lo:hi])     # (as words: _join takes both)
                blk.count += hi - lo
                if high > ts_max[i]:
                    ts_max[i] = high
                continue
            self._plan(i, order[lo:hi], by_inst[lo:hi], books, allowed, cuts)
        done = 0
        for cut in sorted(cuts):
            if cut > done:
                yield events[done:cut]
                done = cut
            for i, piece, bucket in cuts[cut]:
                self._start_block(i, books, piece, bucket)
        if done < n:
            yield events[done:]

    @staticmethod
    def _allowed_cuts(events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Packet runs: where a batch may be cut without cutting a packet (a packet's end,
        as ``fastbook.sampling`` says), as (the last allowed index <= j, the first >= j)
        for every j in 0..n."""
        n = len(events)
        action = events["action"]
        ok = np.zeros(n + 1, dtype=bool)
        ok[0] = ok[n] = True
        ok[1:n] = ((events["flags"][:-1] & _LAST_IN_PACKET) != 0) \
            | np.isin(action[:-1], (_SNAPSHOT_END, _CLEAR)) \
            | np.isin(action[1:], (_SNAPSHOT_BEGIN, _CLEAR))
        where = np.flatnonzero(ok)
        j = np.arange(n + 1)
        after = np.searchsorted(where, j, side="left")
        before = np.searchsorted(where, j, side="right") - 1
        return where[before], where[after]

    def _plan(self, i: int, positions: np.ndarray, rows: np.ndarray, books: Any,
              allowed: tuple[np.ndarray, np.ndarray] | None,
              cuts: dict[int, list[tuple[int, np.ndarray, int]]]) -> None:
        """Where instrument ``i``'s events of this batch (``rows``, at ``positions`` of
        the batch) start new blocks, as ``cuts[cut] = [(i, piece, bucket)]``; the events
        before the first start join its open block now.

        A block's keyframe may be taken at any cut after the instrument's previous
        event and at or before the block's first event (the book does not change in
        between); a packet run cuts only at packet ends.
        """
        if i not in self._instruments:
            self._announce(i, books)
        m = len(rows)
        runmax = np.maximum.accumulate(rows["ts_exchange"])
        prev = self._ts_max.get(i)
        if prev is not None:
            runmax = np.maximum(runmax, prev)
        self._ts_max[i] = int(runmax[-1])
        buckets = runmax // self.step if self.mode == "time" else None
        blk = self._open.get(i)
        starts: list[tuple[int, int]] = []
        if blk is None:     # its first block: the book as it is at the batch's start
            starts.append((0, 0))
            local, count = 0, 0
            bucket = int(buckets[0]) if buckets is not None else 0
        else:
            local, count, bucket = 0, blk.count, blk.bucket
        while True:
            need = local + max(self.min_events - count, 0)
            cap = local + max(self.max_events - count, 0)
            if buckets is not None:
                k = int(np.searchsorted(buckets, bucket, side="right"))
                j = min(max(k, need), cap)
            else:
                j = cap
            if j >= m:
                break
            p = int(positions[j])
            cut = p
            if allowed is not None:
                lo = int(positions[j - 1]) + 1 if j > 0 else 0
                cut = int(allowed[0][p])
                if cut < lo:
                    cut = int(allowed[1][p])
                    j = int(np.searchsorted(positions, cut))
                    if j >= m:
                        break
            starts.append((j, cut))
            local, count = j, 0
            bucket = int(buckets[j]) if buckets is not None else 0
        bounds = [j for j, _ in starts] + [m]
        if bounds[0] > 0:
            self._append(i, rows[:bounds[0]])
        for (a, cut), b in zip(starts, bounds[1:], strict=True):
            bucket_a = int(buckets[a]) if buckets is not None else 0
            cuts.setdefault(cut, []).append((i, rows[a:b], bucket_a))

    def _announce(self, i: int, books: Any) -> None:
        meta = dict(books.instrument(i))
        if meta["kind"] == "l3":
            meta["side_keys"] = bool(books[i].side_keys)
        self._instruments[i] = meta
        self._positions[i] = 0

    def _append(self, i: int, piece: np.ndarray) -> None:
        blk = self._open[i]
        if blk.count == 0:
            blk.ts_first = int(piece["ts_exchange"][0])
        blk.pieces.append(piece)
        blk.count += len(piece)

    def _start_block(self, i: int, books: Any, piece: np.ndarray, bucket: int) -> None:
        """Close ``i``'s open block, take the keyframe of its book now, open a new one."""
        old = self._open.pop(i, None)
        if old is not None and old.count:
            self._write_block(i, old)
        book = books[i]
        if self._instruments[i]["kind"] == "l3":
            keyframe: tuple[np.ndarray, ...] = (book.orders(),)
        else:
            keyframe = (*book.to_arrays(1), *book.to_arrays(2))
        self._open[i] = _Open(keyframe, self._positions[i], bucket)
        self._append(i, piece)

    def _write_block(self, i: int, blk: _Open) -> None:
        """Hand the block to the compressing thread; write the oldest ones that are done
        (in order), so at most ``_PENDING`` blocks wait in memory."""
        events = _join(blk.pieces, blk.count)
        kind = self._instruments[i]["kind"]
        ts_max = int(events["ts_exchange"].max())
        ts_max = max(ts_max, self._block_ts_max.get(i, ts_max))
        self._block_ts_max[i] = ts_max
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="fastbook-archive")
        job = self._pool.submit(_pack_block, self._compress, kind, blk.keyframe, events)
        self._pending.append((job, (i, len(events), blk.first, blk.ts_first, ts_max)))
        self._positions[i] += len(events)
        self.events += len(events)
        while len(self._pending) > _PENDING or (self._pending and self._pending[0][0].done()):
            self._write_oldest()

    def _write_oldest(self) -> None:
        job, (i, n, first, ts_first, ts_max) = self._pending.popleft()
        data, raw_length, key_a, key_b = job.result()
        self._file.write(data)
        self._rows.append((i, n, first, ts_first, ts_max, self._offset, len(data), raw_length,
                           zlib.crc32(data), key_a, key_b, 0))
        self._offset += len(data)

    def _drain(self) -> None:
        while self._pending:
            self._write_oldest()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # -- finishing -----------------------------------------------------------------
    def close(self) -> str:
        """Write the last blocks and the index, then rename to ``path``; returns it."""
        if self.closed:
            return self.path
        try:
            for i in sorted(self._open):
                blk = self._open.pop(i)
                if blk.count:
                    self._write_block(i, blk)
            self._drain()
            # the books that saw no event are archived too (book_at gives them empty)
            for i in range(len(self._books) if self._books is not None else 0):
                if i not in self._instruments:
                    self._announce(i, self._books)
        except BaseException:
            self.abort()
            raise
        table = np.array(self._rows, dtype=BLOCK_DTYPE) if self._rows \
            else np.zeros(0, dtype=BLOCK_DTYPE)
        head = {"format": "fastbook-archive", "version": FORMAT_VERSION, "codec": self.codec,
                "checkpoint": {"mode": self.mode, "step": self.step,
                               "min_events": self.min_events, "max_events": self.max_events},
                "events": self.events, "blocks": len(table),
                "instruments": [dict(self._instruments[i], id=i)
                                for i in sorted(self._instruments)],
                "meta": self.meta}
        head_bytes = json.dumps(head, sort_keys=True).encode()
        index = zlib.compress(struct.pack("<Q", len(head_bytes)) + head_bytes
                              + table.tobytes(), 6)
        self._file.write(index)
        self._file.write(_TRAILER.pack(self._offset, len(index), zlib.crc32(index),
                                       _TRAILER_MAGIC))
        self._file.close()
        os.replace(self.temp, self.path)
        self.closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial file (a failed replay): nothing is left under ``path``."""
        if self.closed:
            return
        self.closed = True
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self._pending.clear()
        self._file.close()
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass


class _ArchivedRun:
    """A run whose batches are cut where the archive's blocks start (see ``ArchiveWriter``).

    Everything but iteration is the wrapped run's (``failed`` gets the piece that
    failed, whose indices it reads, as it would get a whole batch).
    """

    def __init__(self, run: Any, books: Any, writer: ArchiveWriter) -> None:
        self._run = run
        self._books = books
        self._writer = writer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    def __enter__(self) -> _ArchivedRun:
        self._run.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._run.__exit__(*exc)

    def __iter__(self) -> Iterator[np.ndarray]:
        packets = bool(getattr(self._run, "packets", False))
        for events in self._run:
            yield from self._writer._batches(events, self._books, packets)

    def failed(self, exc: Any, events: np.ndarray) -> BaseException:
        return self._run.failed(exc, events)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def open(path: str | os.PathLike[str]) -> Archive:
    """Open an archive for reading (:class:`Archive`)."""
    return Archive(path)


class Archive:
    """A finished archive, memory-mapped: ``book_at``, ``samples``, ``events``.

    ``symbols`` lists the archived symbols; ``instruments`` their metadata
    (symbol, venue, kind, decimals, tick and lot size). A file that is not an
    archive, is truncated or corrupt raises :class:`fastbook.errors.DecodeError`
    naming the file (and the block, for a block).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        with builtins.open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _HEADER.size + _TRAILER.size:
                raise DecodeError(f"{self.path}: {size} bytes is too short for a fastbook "
                                  f"archive (truncated?)")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        magic, version = _HEADER.unpack_from(self._map, 0)
        if magic != _MAGIC:
            raise DecodeError(f"{self.path}: not a fastbook archive (bad magic)")
        if version > FORMAT_VERSION:
            raise DecodeError(f"{self.path}: archive format version {version} is newer than "
                              f"this fastbook reads ({FORMAT_VERSION})")
        offset, length, crc, tail = _TRAILER.unpack_from(self._map, size - _TRAILER.size)
        if tail != _TRAILER_MAGIC or offset + length != size - _TRAILER.size \
                or offset < _HEADER.size:
            raise DecodeError(f"{self.path}: the archive's trailer is missing or damaged "
                              f"(truncated, or never finished)")
        index = bytes(self._map[offset:offset + length])
        if zlib.crc32(index) != crc:
            raise DecodeError(f"{self.path}: the archive's index fails its CRC32 check")
        try:
            raw = zlib.decompress(index)
            (hlen,) = struct.unpack_from("<Q", raw, 0)
            self.header: dict[str, Any] = json.loads(raw[8:8 + hlen])
            table = np.frombuffer(raw, dtype=BLOCK_DTYPE, offset=8 + hlen)
        except (ValueError, zlib.error, struct.error) as exc:
            raise DecodeError(f"{self.path}: the archive's index cannot be read: {exc}") \
                from None
        self._index_offset = offset
        self.codec = self.header["codec"]
        self._decompress = _decompressor(self.codec, self.path)
        self.instruments: list[dict[str, Any]] = self.header["instruments"]
        self._by_symbol: dict[str, dict[str, Any]] = {}
        for meta in self.instruments:
            self._by_symbol.setdefault(meta["symbol"], meta)
        # every instrument's blocks, in stream order
        order = np.lexsort((table["first"], table["instrument"]))
        table = table[order]
        ids, starts = np.unique(table["instrument"], return_index=True)
        ends = np.append(starts[1:], len(table))
        self._blocks = {int(i): table[a:b] for i, a, b in zip(ids, starts, ends, strict=True)}
        bad = table["offset"].astype(np.uint64) + table["length"] > offset
        if bad.any():
            raise DecodeError(f"{self.path}: the block table points past the blocks "
                              f"(block {int(np.flatnonzero(bad)[0])})")

    # -- what is in it ----------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        """The archived symbols, in instrument order."""
        return [m["symbol"] for m in self.instruments]

    @property
    def meta(self) -> dict[str, Any]:
        """What the writer stored (codec, ``ts_origin``...)."""
        return dict(self.header.get("meta", {}))

    @property
    def ts_origin(self) -> str:
        """What the archive's clock counts from: ``"midnight"`` (ITCH 5.0) or ``"epoch"``."""
        return str(self.meta.get("ts_origin", ""))

    @property
    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint rule the archive was written with."""
        return dict(self.header["checkpoint"])

    def __len__(self) -> int:
        return int(self.header["events"])

    def __repr__(self) -> str:
        return (f"<fastbook.archive.Archive {self.path!r} instruments={len(self.instruments)} "
                f"events={len(self):,} blocks={self.header['blocks']:,} codec={self.codec}>")

    def close(self) -> None:
        """Release the memory map (the archive cannot be read afterwards)."""
        self._map.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def instrument(self, symbol: str, venue: str | None = None) -> dict[str, Any]:
        """The metadata of ``symbol`` (KeyError naming close symbols when it is not here)."""
        if venue is None:
            meta = self._by_symbol.get(symbol)
        else:
            meta = next((m for m in self.instruments
                         if m["symbol"] == symbol and m["venue"] == venue), None)
        if meta is None:
            close = difflib.get_close_matches(symbol, list(self._by_symbol), n=5, cutoff=0.6)
            hint = f"; close: {', '.join(close)}" if close else ""
            raise KeyError(f"{self.path}: no symbol {symbol!r}"
                           + (f" on venue {venue!r}" if venue is not None else "")
                           + f" in this archive ({len(self.instruments)} instruments{hint})")
        return dict(meta)

    # -- blocks ----------------------------------------------------------------------
    def _read(self, meta: dict[str, Any], row: np.void, number: int
              ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Keyframe and events of one block, checked (DecodeError naming it)."""
        where = f"{self.path}: block {number} of {meta['symbol']!r}"
        off, length = int(row["offset"]), int(row["length"])
        data = self._map[off:off + length]
        if zlib.crc32(data) != int(row["crc32"]):
            raise DecodeError(f"{where} (offset {off}) fails its CRC32 check")
        try:
            raw = self._decompress(data, int(row["raw_length"]))
            if len(raw) != int(row["raw_length"]):
                raise ValueError(f"{len(raw)} bytes, {int(row['raw_length'])} expected")
            return _decode_block(raw, meta["kind"], int(row["n_events"]), int(row["key_a"]),
                                 int(row["key_b"]), int(meta["id"]))
        except DecodeError:
            raise
        except Exception as exc:     # zlib.error, zstd errors, bad sizes
            raise DecodeError(f"{where} (offset {off}) cannot be decoded: {exc}") from None

    def _block_for(self, blocks: np.ndarray, t: int) -> int:
        """The block holding the instrument's first event with ts_exchange > t (the last
        block when there is none)."""
        b = int(np.searchsorted(blocks["ts_max"], t, side="right"))
        return min(b, len(blocks) - 1)

    def _new_book(self, meta: dict[str, Any], keyframe: tuple[np.ndarray, ...] | None) -> Any:
        import fastbook
        from fastbook.l3 import OrderBook

        if meta["kind"] == "l3":
            rows = 0 if keyframe is None else len(keyframe[0])
            book = OrderBook(price_decimals=meta["price_decimals"],
                             qty_decimals=meta["qty_decimals"], capacity=0,
                             order_capacity=max(1024, rows), on_error="skip",
                             side_keys=meta.get("side_keys", False))
            if keyframe is not None:
                book._load_orders(keyframe[0])
            return book
        book2 = fastbook.Book(price_decimals=meta["price_decimals"],
                              qty_decimals=meta["qty_decimals"])
        if keyframe is not None:
            load = getattr(book2, "_load_ladder", None)
            for side, (p, q) in ((1, keyframe[0:2]), (2, keyframe[2:4])):
                if load is not None:
                    load(side, np.ascontiguousarray(p), np.ascontiguousarray(q))
                else:
                    for price, qty in zip(p.tolist(), q.tolist(), strict=True):
                        book2.set(side, price, qty)
        return book2

    @staticmethod
    def _bookset(meta: dict[str, Any], book: Any) -> Any:
        from fastbook.l3 import BookSet

        bs = BookSet(on_error="skip")
        bs.add_book(book, symbol=meta["symbol"], venue=meta["venue"],
                    tick_size=meta["tick_size"], lot_size=meta["lot_size"])
        return bs

    @staticmethod
    def _local(events: np.ndarray) -> np.ndarray:
        out: np.ndarray = events.copy()
        out["instrument"] = 0
        return out

    # -- the reads ---------------------------------------------------------------------
    def book_at(self, symbol: str, t: int, *, venue: str | None = None) -> Any:
        """The exact book of ``symbol`` as of exchange time ``t`` (int ns, the feed's clock).

        After every event of the instrument before its first event with
        ``ts_exchange > t``; the empty book before its first event. An
        ``OrderBook`` for an L3 feed, a ``Book`` for an L2 one (a new object each
        call, the caller's to change).
        """
        meta = self.instrument(symbol, venue)
        t = _as_time(t, "t")
        blocks = self._blocks.get(int(meta["id"]))
        if blocks is None or len(blocks) == 0:
            return self._new_book(meta, None)
        b = self._block_for(blocks, t)
        keyframe, events = self._read(meta, blocks[b], b)
        k = _first_after(events["ts_exchange"], t)
        book = self._new_book(meta, keyframe)
        if k:
            self._bookset(meta, book).apply(self._local(events[:k]))
        return book

    def events(self, symbol: str, t0: int | None = None, t1: int | None = None, *,
               venue: str | None = None) -> np.ndarray:
        """``symbol``'s events (``EVENT_DTYPE``) between ``book_at(t0)`` and ``book_at(t1)``.

        That is, from the first event with ``ts_exchange > t0 - 1`` up to the first
        with ``ts_exchange > t1 - 1``: the half-open window ``[t0, t1)`` of a clock
        that never goes back. ``None``: from the start / to the end. ``instrument``
        is the archive's id of the symbol.
        """
        meta = self.instrument(symbol, venue)
        blocks = self._blocks.get(int(meta["id"]))
        if blocks is None or len(blocks) == 0:
            return np.zeros(0, dtype=EVENT_DTYPE)
        lo = 0 if t0 is None else self._block_for(blocks, _as_time(t0, "t0") - 1)
        hi = len(blocks) - 1 if t1 is None else self._block_for(blocks, _as_time(t1, "t1") - 1)
        parts = [self._read(meta, blocks[b], b)[1] for b in range(lo, hi + 1)]
        events = np.concatenate(parts) if parts else np.zeros(0, dtype=EVENT_DTYPE)
        runmax = np.maximum.accumulate(events["ts_exchange"]) if len(events) else \
            events["ts_exchange"]
        a = 0 if t0 is None else int(np.searchsorted(runmax, t0, side="left"))
        z = len(events) if t1 is None else int(np.searchsorted(runmax, t1, side="left"))
        return events[a:max(a, z)]

    def samples(self, symbol: str, t0: int, t1: int, *, every: Any, depth: int = 10,
                venue: str | None = None) -> dict[str, np.ndarray]:
        """Sample rows of ``symbol`` with ``t0 <= ts < t1``: those ``fb.replay(..., every=,
        depth=, symbols=[symbol])`` gives in that window (``instrument`` is 0, as there).

        ``every`` takes the replay's rules (``"1s"``, ``"100ms,bbo"``, ``"500msgs"``); a
        count rule only for an order-by-order feed replayed with ``on_error="raise"``
        (the count runs from the start of the day: skipped events do not count, and an
        L2 feed's rule counts messages, neither of which the archive records).
        """
        from fastbook.driver import parse_every
        from fastbook.sampling import Sampler

        rules = parse_every(every)
        count = rules.get("every", 0)
        if count and (self.meta.get("packets", True) or self.meta.get("skip", True)):
            raise ValueError(f"Archive.samples: a count rule ({every!r}) counts the events "
                             f"applied since the start of the day, which this archive does "
                             f"not know (a replay that skipped bad events, or an L2 feed, "
                             f"whose rule counts messages): replay the day for it")
        meta = self.instrument(symbol, venue)
        t0, t1 = _as_time(t0, "t0"), _as_time(t1, "t1")
        sampler = Sampler(depth, packets=bool(self.meta.get("packets", False)), **rules)
        empty = sampler.take()
        blocks = self._blocks.get(int(meta["id"]))
        if blocks is None or len(blocks) == 0 or t1 <= t0:
            return empty
        b = self._block_for(blocks, t0 - 1)
        keyframe, first = self._read(meta, blocks[b], b)
        book = self._new_book(meta, keyframe)
        bs = self._bookset(meta, book)
        if b > 0:
            # the sampler as a replay has it here: the previous event was seen (a no-op
            # STATUS event at its time primes the interval rule), and a count rule has
            # counted the events before the block (as many STATUS events, modulo the
            # count); the rows they give are dropped
            n = 1
            if count:
                n = int(blocks[b]["first"]) % count or count
            prime = np.zeros(n, dtype=EVENT_DTYPE)
            prime["ts_exchange"] = int(blocks[b - 1]["ts_max"])
            prime["action"] = 11
            bs.apply(prime, sampler=sampler)
            sampler.take()
        last = self._block_for(blocks, t1)
        for k in range(b, last + 1):
            events = first if k == b else self._read(meta, blocks[k], k)[1]
            bs.apply(self._local(events), sampler=sampler)
        cols = sampler.take()
        keep = (cols["ts"] >= t0) & (cols["ts"] < t1)
        return {name: col[keep] for name, col in cols.items()}


def _as_time(t: Any, name: str) -> int:
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        return int(t)
    raise TypeError(f"{name} must be an int of nanoseconds on the feed's clock, got {t!r}")


def _first_after(ts: np.ndarray, t: int) -> int:
    """Index of the first of ``ts`` greater than ``t`` (``len(ts)`` when none is)."""
    over = np.flatnonzero(ts > t)
    return int(over[0]) if len(over) else len(ts)
