"""Streaming byte sources: a file, stdin, a file object or a buffer as a sequence of byte chunks.

A replay reads a multi-GB capture in bounded memory: :func:`open_source` opens
it (plain, gzip or zstd, detected from the first bytes) and the returned
:class:`Source` yields it as chunks of ``chunk_size`` bytes that a codec
decodes in place. Whatever the file size, at most a few chunks are resident:

* plain files are memory-mapped and chunks are zero-copy slices of the map;
  pages already passed are dropped from the process as reading goes on;
* other streams (pipes, stdin, file objects) are read into a pair of reused
  buffers;
* gzip and zstd are decompressed a chunk at a time, by default in a
  background thread that feeds a queue two chunks deep, so decompression
  (which releases the GIL) overlaps the consumer's decoding.

:class:`Progress` draws a one-line progress report on a terminal.

>>> from fastbook.sources import open_source
>>> with open_source(b"ITCH", chunk_size=2) as src:
...     [bytes(chunk) for chunk in src], src.compression, src.bytes_out
([b'ITCH'], 'none', 4)
"""

from __future__ import annotations

import io
import mmap as _mmap
import os
import queue
import stat
import sys
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from fastbook._checks import is_int
from fastbook.errors import DecodeError

__all__ = ["DEFAULT_CHUNK_SIZE", "Peekable", "Progress", "Source", "open_source", "peekable"]

#: Bytes per chunk unless told otherwise.
DEFAULT_CHUNK_SIZE = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSIONS = ("auto", "none", "gzip", "zstd")

_READ_SIZE = 1 << 20  # compressed bytes read at a time
_QUEUE_DEPTH = 2  # decompressed chunks waiting for the consumer
_DROP_EVERY = 16 << 20  # mapped bytes passed before they are dropped from the process
_JOIN_TIMEOUT = 5.0  # seconds close() waits for the decompression thread


def _is_zstd_magic(head: bytes) -> bool:
    # a zstd frame, or a skippable frame (magic 0x184D2A50 to 0x184D2A5F, little-endian)
    return head[:4] == ZSTD_MAGIC or (
        len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and 0x50 <= head[0] <= 0x5F
    )


def _detect(head: bytes) -> str:
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    if _is_zstd_magic(head):
        return "zstd"
    return "none"


# ---------------------------------------------------------------------------
# decompressors: one interface (bz2-style) over zlib, isal and the zstd libraries
# ---------------------------------------------------------------------------


class _Frame:
    """What the bz2-style wrappers share: ``_d``, the library's decompression object."""

    __slots__ = ()
    _d: Any

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data


class _ZlibMember(_Frame):
    """One gzip member through the standard library's ``zlib``, with a bz2-style interface.

    ``decompress(data, max_length)`` keeps input it could not use yet; call it
    with ``b""`` while ``needs_input`` is False.
    """

    __slots__ = ("_d", "_tail", "needs_input")

    def __init__(self, module: Any) -> None:
        self._d = module.decompressobj(wbits=31)
        self._tail = b""
        self.needs_input = True

    def decompress(self, data: Any, max_length: int) -> bytes:
        out = self._d.decompress(data if len(data) else self._tail, max_length)
        self._tail = self._d.unconsumed_tail
        # output may be pending inside zlib even with no input left: ask again when full
        self.needs_input = not self._tail and len(out) < max_length
        return out


class _ZstandardFrame(_Frame):
    """One zstd frame through the ``zstandard`` package, with a bz2-style interface.

    ``zstandard``'s decompression object has no output limit, so input is fed
    in slices sized to keep each call's output near ``max_length``.
    """

    __slots__ = ("_d", "_feed", "_pending", "needs_input")

    def __init__(self, module: Any) -> None:
        self._d = module.ZstdDecompressor().decompressobj()
        self._pending: Any = b""
        self._feed = 64 << 10
        self.needs_input = True

    def decompress(self, data: Any, max_length: int) -> bytes:
        if len(data):
            self._pending = memoryview(data)
        piece = self._pending[: self._feed]
        self._pending = self._pending[len(piece) :]
        out = self._d.decompress(piece) if len(piece) else b""
        if len(out) > max_length and self._feed > 4096:
            self._feed //= 2
        elif len(out) < max_length // 4 and self._feed < _READ_SIZE:
            self._feed *= 2
        self.needs_input = not len(self._pending) or self._d.eof
        return out

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data + bytes(self._pending) if self._d.eof else b""


def _import_isal() -> Any:
    """``isal.igzip_lib`` when the optional ``isal`` package is installed, else None."""
    try:
        from isal import igzip_lib
    except ImportError:
        return None
    return igzip_lib


def _gzip_backend() -> tuple[str, Callable[[], Any], tuple[type[BaseException], ...]]:
    """(name, new member decompressor, its error types): isal when installed, else zlib."""
    igzip_lib = _import_isal()
    if igzip_lib is not None:

        def new_isal() -> Any:
            return igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP)

        return "isal", new_isal, (igzip_lib.error, zlib.error, EOFError, ValueError)
    return "zlib", lambda: _ZlibMember(zlib), (zlib.error,)


def _zstd_backend() -> tuple[str, Callable[[], Any], tuple[type[BaseException], ...]]:
    """(name, new frame decompressor, its error types); ImportError naming the extra if none.

    The standard library's ``compression.zstd`` (Python >= 3.14) bounds each
    call's output exactly, so it is preferred; else the ``zstandard`` package.
    """
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        return "compression.zstd", zstd.ZstdDecompressor, (zstd.ZstdError, EOFError, ValueError)
    try:
        import zstandard
    except ImportError:
        from fastbook._extras import missing

        raise missing("zstd", "reading zstd-compressed input", module="the 'zstandard' package",
                      alternative="or pip install zstandard, or use Python >= 3.14") from None
    return "zstandard", lambda: _ZstandardFrame(zstandard), (zstandard.ZstdError, ValueError)


# ---------------------------------------------------------------------------
# chunk producers: generators of (chunk, raw bytes consumed so far)
# ---------------------------------------------------------------------------


def _mapped_chunks(mm: Any, chunk_size: int) -> Iterator[tuple[Any, int]]:
    """Zero-copy slices of a memory map; passed pages are dropped from the process."""
    view = memoryview(mm)
    size = len(view)
    dontneed = getattr(_mmap, "MADV_DONTNEED", None)
    can_drop = dontneed is not None and hasattr(mm, "madvise")
    page = _mmap.PAGESIZE
    dropped = pos = 0
    try:
        while pos < size:
            end = min(pos + chunk_size, size)
            yield view[pos:end], end
            # the consumer asked for the next chunk: pages before the one just yielded are
            # dropped (safe even if still referenced: touching them reads the file again)
            limit = (pos // page) * page
            if can_drop and limit - dropped >= _DROP_EVERY:
                mm.madvise(dontneed, dropped, limit - dropped)
                dropped = limit
            pos = end
    finally:
        try:
            view.release()
        except BufferError:  # pragma: no cover - slices of it are released with it
            pass


def _buffered_chunks(stream: Any, chunk_size: int, head: bytes) -> Iterator[tuple[Any, int]]:
    """Chunks read into two alternating reused buffers (``head`` was peeked already)."""
    readinto = getattr(stream, "readinto", None)
    total = 0
    if readinto is None:  # only read(): chunks are new bytes objects
        pending = bytearray(head)
        eof = False
        while True:
            while not eof and len(pending) < chunk_size:
                data = stream.read(chunk_size - len(pending))
                if data is None:
                    raise BlockingIOError("the stream is non-blocking and has no data ready")
                eof = not data
                pending += data
            if not pending:
                return
            out = bytes(pending[:chunk_size])
            del pending[:chunk_size]
            total += len(out)
            yield out, total
    views = [memoryview(bytearray(chunk_size)), memoryview(bytearray(chunk_size))]
    turn = 0
    while True:
        view = views[turn]
        filled = min(len(head), chunk_size)
        view[:filled] = head[:filled]
        head = head[filled:]
        while filled < chunk_size:
            got = readinto(view[filled:])
            if got is None:
                raise BlockingIOError("the stream is non-blocking and has no data ready")
            if not got:
                break
            filled += got
        if not filled:
            return
        total += filled
        yield view[:filled], total
        if filled < chunk_size:
            return
        turn ^= 1


def _raw_blocks(stream: Any, head: bytes) -> Iterator[Any]:
    """Compressed input: ``head`` then blocks read from a binary stream."""
    if head:
        yield head
    read = stream.read
    while True:
        block = read(_READ_SIZE)
        if block is None:
            raise BlockingIOError("the stream is non-blocking and has no data ready")
        if not block:
            return
        yield block


def _buffer_blocks(view: memoryview) -> Iterator[Any]:
    """Compressed input held in memory: zero-copy slices."""
    for pos in range(0, len(view), _READ_SIZE):
        yield view[pos : pos + _READ_SIZE]


def _decompressed_chunks(
    blocks: Iterator[Any],
    chunk_size: int,
    name: str,
    fmt: str,
    new: Callable[[], Any],
    errors: tuple[type[BaseException], ...],
) -> Iterator[tuple[Any, int]]:
    """Chunks of exactly ``chunk_size`` decompressed bytes (the last may be shorter).

    Handles concatenated gzip members / zstd frames; NUL padding between gzip
    members is skipped, as gzip does. Errors become DecodeError naming the
    file and the compressed byte offset.
    """
    unit = "member" if fmt == "gzip" else "frame"
    d: Any = None
    number = 0
    start = pos = 0  # where the current member starts / raw bytes read so far
    pieces: list[Any] = []
    filled = 0
    for block in blocks:
        pos += len(block)
        data: Any = block
        while True:
            if d is None:  # between members
                if fmt == "gzip" and len(data) and data[0] == 0:
                    kept = bytes(data).lstrip(b"\0")
                    data = kept
                if not len(data):
                    break
                start = pos - len(data)
                number += 1
                d = new()
            try:
                out = d.decompress(data, chunk_size - filled)
            except errors as exc:
                hint = (
                    f"; is what follows {unit} {number - 1} {fmt} data at all?"
                    if number > 1
                    else ""
                )
                raise DecodeError(
                    f"{name}: corrupt {fmt} data in {unit} {number}, which starts at "
                    f"compressed byte {start} (the error is before byte {pos}): {exc}{hint}"
                ) from None
            data = b""
            while len(out):
                take = min(len(out), chunk_size - filled)
                if take < len(out):
                    pieces.append(memoryview(out)[:take])
                    out = memoryview(out)[take:]
                else:
                    pieces.append(out)
                    out = b""
                filled += take
                if filled == chunk_size:
                    yield (pieces[0] if len(pieces) == 1 else b"".join(pieces)), pos
                    pieces, filled = [], 0
            if d.eof:
                data = d.unused_data
                d = None
                continue
            if d.needs_input:
                break
    if d is not None:
        raise DecodeError(
            f"{name}: truncated {fmt} data: the input ends at compressed byte {pos}, inside "
            f"{unit} {number} (which starts at byte {start}); was the file cut short?"
        )
    if filled:
        yield (pieces[0] if len(pieces) == 1 else b"".join(pieces)), pos


# ---------------------------------------------------------------------------
# the background thread
# ---------------------------------------------------------------------------


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def _put(q: queue.Queue[Any], stop: threading.Event, item: Any) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            pass
    return False


def _pump(
    chunks: Iterator[Any], q: queue.Queue[Any], stop: threading.Event, on_exit: Callable[[], None]
) -> None:
    """Thread body: move chunks into the bounded queue until done, failed or stopped."""
    try:
        for item in chunks:
            if not _put(q, stop, item):
                return
        _put(q, stop, _END)
    except BaseException as exc:
        _put(q, stop, _Failed(exc))
    finally:
        try:
            chunks.close()  # type: ignore[attr-defined]
        finally:
            on_exit()


class _Worker:
    """A decompression thread and its queue; owns nothing of the Source (so GC can close it)."""

    def __init__(self, chunks: Iterator[Any], on_exit: Callable[[], None], name: str) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=_pump,
            args=(chunks, self.queue, self.stop, on_exit),
            name=f"fastbook-source {name}",
            daemon=True,
        )
        self.thread.start()

    def get(self) -> Any:
        return self.queue.get()

    def close(self) -> None:
        self.stop.set()
        while True:  # wake a put() blocked on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        try:  # and a consumer blocked in get() in another thread
            self.queue.put_nowait(_END)
        except queue.Full:
            pass
        if self.thread is not threading.current_thread():
            self.thread.join(_JOIN_TIMEOUT)


# ---------------------------------------------------------------------------
# Source
# ---------------------------------------------------------------------------


class Source:
    """An iterator of byte chunks from a file, stdin, a file object or a buffer.

    Made by :func:`open_source`. Iterate it for the chunks; use it as a
    context manager (or call :meth:`close`) to release the file, the memory
    map and the decompression thread.

    Chunks are bytes-like objects (``bytes`` or ``memoryview``) supporting the
    buffer protocol, never empty, each ``chunk_size`` bytes except the last
    (an in-memory buffer that needs no decompression is one chunk). **A chunk
    may be a view of a buffer that is reused:** it is valid only until the
    next chunk is requested. Copy what must outlive that (``bytes(chunk)``,
    or a codec's carry-over of a message that straddles two chunks).
    Release memoryviews of a memory-mapped file (or let them go) before
    :meth:`close`; otherwise the map is unmapped only when the last one is
    garbage collected.

    Attributes
    ----------
    name : str
        The path, ``"<stdin>"``, a file object's name, or ``"<buffer>"``; for messages.
    compression : str
        ``"none"``, ``"gzip"`` or ``"zstd"`` (as detected when opened with ``"auto"``).
    backend : str or None
        The decompressor in use: ``"isal"``, ``"zlib"``, ``"zstandard"`` or
        ``"compression.zstd"``; None for uncompressed input.
    size : int or None
        Size in bytes of the underlying (compressed) file or buffer, if known.
    raw_bytes_read : int
        Compressed bytes consumed so far (for progress against ``size``).
    bytes_out : int
        Decompressed bytes yielded so far.
    chunk_size : int
    mmapped : bool
        True when chunks are slices of a memory-mapped file.
    """

    def __init__(
        self,
        *,
        name: str,
        compression: str,
        size: int | None,
        chunk_size: int,
        chunks: Iterator[tuple[Any, int]],
        on_close: Callable[[], None],
        threaded: bool,
        backend: str | None = None,
        mmapped: bool = False,
    ) -> None:
        self.name = name
        self.compression = compression
        self.backend = backend
        self.size = size
        self.chunk_size = chunk_size
        self.mmapped = mmapped
        self.raw_bytes_read = 0
        self.bytes_out = 0
        self._done = False
        self._closed = False
        self._chunks: Iterator[tuple[Any, int]] | None = None
        self._worker: _Worker | None = None
        if threaded:
            self._worker = _Worker(chunks, on_close, name)
            # stops the thread if the Source is dropped without close(), and at exit
            self._finalizer = weakref.finalize(self, self._worker.close)
        else:
            self._chunks = chunks
            self._finalizer = weakref.finalize(self, _close_inline, chunks, on_close)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def threaded(self) -> bool:
        """True when a background thread decompresses ahead of the consumer."""
        return self._worker is not None

    def __iter__(self) -> Source:
        return self

    def __next__(self) -> Any:
        if self._closed:
            raise ValueError(f"{self.name}: the source is closed")
        if self._done:
            raise StopIteration
        if self._worker is not None:
            item = self._worker.get()
            if item is _END:
                self._done = True
                raise StopIteration
            if isinstance(item, _Failed):
                self._done = True
                raise item.error
        else:
            assert self._chunks is not None
            try:
                item = next(self._chunks)
            except BaseException:  # the end, or an error: either way there is no more
                self._done = True
                raise
        chunk, self.raw_bytes_read = item
        self.bytes_out += len(chunk)
        return chunk

    def close(self) -> None:
        """Stop the decompression thread and release the file and the map. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.bytes_out} bytes out"
        return f"<fastbook.sources.Source {self.name!r} compression={self.compression!r} {state}>"


def _close_inline(chunks: Any, on_close: Callable[[], None]) -> None:
    try:
        chunks.close()
    finally:
        on_close()


def _closer(*things: Any) -> Callable[[], None]:
    """Close each thing; a memory map still exported by a chunk is left to the GC."""

    def close() -> None:
        for thing in things:
            try:
                thing.close()
            except BufferError:
                pass

    return close


def _check_chunk_size(chunk_size: Any) -> int:
    if not is_int(chunk_size, 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return chunk_size


def _peek(stream: Any, n: int = 4) -> bytes:
    """Read up to ``n`` bytes (fewer only at end of stream)."""
    head = b""
    while len(head) < n:
        more = stream.read(n - len(head))
        if more is None:
            raise BlockingIOError("the stream is non-blocking and has no data ready")
        if not more:
            break
        head += more
    return bytes(head)


class Peekable:
    """A binary stream whose first bytes can be looked at without consuming them.

    A pipe cannot be rewound, so a format sniffer that reads its head would
    take those bytes from the decoder after it. :meth:`peek` reads ahead into
    a buffer that ``read`` / ``readinto`` then return first, so any number of
    sniffers can look at stdin before one consumer reads it whole.
    """

    def __init__(self, stream: Any, name: str | None = None) -> None:
        self._stream = stream
        self._head = b""
        self.name = name if name is not None else _stream_name(stream, "<stream>")

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the current position (fewer only at the end), not consumed."""
        if len(self._head) < n:
            self._head += _peek(self._stream, n - len(self._head))
        return self._head[:n]

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            rest = self._stream.read()
            out, self._head = self._head + (rest or b""), b""
            return out
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._stream.read(n)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            k = min(len(view), len(self._head))
            view[:k] = self._head[:k]
            self._head = self._head[k:]
            return k
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            return readinto(view)  # type: ignore[no-any-return]
        data = self._stream.read(len(view))
        if data is None:
            return None  # type: ignore[return-value]
        view[:len(data)] = data
        return len(data)

    def fileno(self) -> int:
        return int(self._stream.fileno())

    def close(self) -> None:
        """Close nothing: the wrapped stream (stdin) belongs to its owner."""

    def __repr__(self) -> str:
        return f"<fastbook.sources.Peekable {self.name!r} {len(self._head)} bytes peeked>"


def peekable(source: Any) -> Any:
    """``source`` as a :class:`Peekable` when it is ``"-"`` (stdin) or a stream; else unchanged.

    A stream that is already a :class:`Peekable` is returned as it is.
    """
    if isinstance(source, Peekable):
        return source
    if isinstance(source, str) and source == "-":
        stdin = sys.stdin
        if stdin is None or not hasattr(stdin, "buffer"):
            raise ValueError("'-' means standard input, but this process has none")
        return Peekable(stdin.buffer, "<stdin>")
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) \
            and (hasattr(source, "readinto") or hasattr(source, "read")) \
            and not isinstance(source, io.TextIOBase):
        return Peekable(source)
    return source


def _stream_name(stream: Any, default: str) -> str:
    name = getattr(stream, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(name, int):
        return f"<fd {name}>"
    return default


def _file_size(stream: Any) -> int | None:
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def open_source(
    source: Any,
    /,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    compression: str = "auto",
    threads: bool = True,
    mmap: bool = True,
) -> Source:
    """Open a file, stdin, a binary file object or a buffer as a :class:`Source` of chunks.

    Parameters
    ----------
    source : str, os.PathLike, "-", binary file object or bytes-like
        A path; ``"-"`` for standard input; an object with ``readinto`` or
        ``read`` returning bytes (left open); or a bytes-like object (bytes,
        bytearray, memoryview, C-contiguous numpy array), which is yielded as
        one zero-copy chunk when uncompressed.
    chunk_size : int, default 4 MiB
        Bytes per chunk (every chunk but the last has exactly this size).
    compression : {"auto", "none", "gzip", "zstd"}, default "auto"
        ``"auto"`` detects gzip (``1f 8b``) and zstd (``28 b5 2f fd``) from
        the first bytes, also of pipes and stdin (they are peeked and replayed).
    threads : bool, default True
        Decompress in a background thread, two chunks ahead of the consumer
        (uncompressed input is never read in a thread).
    mmap : bool, default True
        Memory-map uncompressed regular files (zero-copy chunks). Streams that
        cannot be mapped (pipes, empty files) are read into reused buffers.

    Returns
    -------
    Source
        Iterate it for chunks; close it (``with`` block) when done.

    Raises
    ------
    fastbook.DecodeError
        While iterating: corrupt or truncated compressed data; the message
        names the source and the compressed byte offset.
    ImportError
        zstd input without the ``zstandard`` package on Python < 3.14
        (``pip install 'fastbook-lob[zstd]'``).

    Notes
    -----
    gzip uses ``isal`` (``pip install 'fastbook-lob[gzip]'``, about twice as fast)
    when installed, else the standard library's ``zlib``; multi-member files
    are read whole. zstd uses the standard library's ``compression.zstd`` on
    Python >= 3.14, else ``zstandard`` (``pip install 'fastbook-lob[zstd]'``).

    Examples
    --------
    >>> import gzip
    >>> data = gzip.compress(b"abc" * 1000)
    >>> with open_source(data, chunk_size=1024) as src:
    ...     sizes = [len(chunk) for chunk in src]
    >>> sizes, src.compression
    ([1024, 1024, 952], 'gzip')
    """
    if isinstance(source, Source):
        return source       # already open (a parallel replay's worker reading its ring)
    chunk_size = _check_chunk_size(chunk_size)
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"compression must be one of {', '.join(map(repr, COMPRESSIONS))}, got {compression!r}"
        )
    if isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and source == "-":
            stdin = sys.stdin
            if stdin is None or not hasattr(stdin, "buffer"):
                raise ValueError("'-' means standard input, but this process has none")
            return _open_stream(stdin.buffer, "<stdin>", chunk_size, compression, threads)
        return _open_path(os.fspath(source), chunk_size, compression, threads, mmap)
    if isinstance(source, io.TextIOBase):
        raise TypeError(
            f"{_stream_name(source, 'the source')} is a text stream; pass a binary "
            f"one (open(path, 'rb'), sys.stdin.buffer) or the path"
        )
    if hasattr(source, "readinto") or hasattr(source, "read"):
        return _open_stream(
            source, _stream_name(source, "<stream>"), chunk_size, compression, threads
        )
    try:
        view = memoryview(source)
    except TypeError:
        raise TypeError(
            f"source must be a path, '-', a binary file object or a bytes-like "
            f"object, got {type(source).__name__}"
        ) from None
    return _open_buffer(view, chunk_size, compression, threads)


def _open_buffer(view: memoryview, chunk_size: int, compression: str, threads: bool) -> Source:
    if not view.c_contiguous:
        raise ValueError("a buffer source must be C-contiguous (use numpy.ascontiguousarray)")
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except (TypeError, ValueError):
            raise TypeError(
                f"cannot read a buffer of format {view.format!r} as bytes; pass "
                f"bytes or a uint8 array"
            ) from None
    fmt = _detect(bytes(view[:4])) if compression == "auto" else compression
    if fmt == "none":

        def whole() -> Iterator[tuple[Any, int]]:
            if len(view):
                yield view, len(view)

        return Source(
            name="<buffer>",
            compression="none",
            size=len(view),
            chunk_size=chunk_size,
            chunks=whole(),
            on_close=lambda: None,
            threaded=False,
        )
    backend, new, errors = _gzip_backend() if fmt == "gzip" else _zstd_backend()
    chunks = _decompressed_chunks(_buffer_blocks(view), chunk_size, "<buffer>", fmt, new, errors)
    return Source(
        name="<buffer>",
        compression=fmt,
        size=len(view),
        chunk_size=chunk_size,
        chunks=chunks,
        on_close=lambda: None,
        threaded=threads,
        backend=backend,
    )


def _open_path(
    path: str, chunk_size: int, compression: str, threads: bool, use_mmap: bool
) -> Source:
    f = open(path, "rb", buffering=0)
    try:
        size = _file_size(f)
        head = b""
        if compression == "auto":
            if size is not None:
                fmt = _detect(
                    os.pread(f.fileno(), 4, 0) if hasattr(os, "pread") else _peek_and_rewind(f)
                )
            else:
                head = _peek(f)
                fmt = _detect(head)
        else:
            fmt = compression
        if fmt == "none" and use_mmap and size and not head:
            try:
                mm = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
            except (OSError, ValueError):
                mm = None
            if mm is not None:
                f.close()
                sequential = getattr(_mmap, "MADV_SEQUENTIAL", None)
                if sequential is not None and hasattr(mm, "madvise"):
                    mm.madvise(sequential)
                return Source(
                    name=path,
                    compression="none",
                    size=size,
                    chunk_size=chunk_size,
                    chunks=_mapped_chunks(mm, chunk_size),
                    on_close=_closer(mm),
                    threaded=False,
                    mmapped=True,
                )
        return _open_stream(f, path, chunk_size, fmt, threads, close=f.close, head=head, size=size)
    except BaseException:
        f.close()
        raise


def _peek_and_rewind(f: Any) -> bytes:
    head = _peek(f)
    f.seek(0)
    return head


def _open_stream(
    stream: Any,
    name: str,
    chunk_size: int,
    compression: str,
    threads: bool,
    *,
    close: Callable[[], None] | None = None,
    head: bytes = b"",
    size: int | None = None,
) -> Source:
    """A source over a binary stream; ``head`` holds bytes already read from it."""
    if size is None:
        size = _file_size(stream)
    if compression == "auto":
        head += _peek(stream, 4 - len(head))
        compression = _detect(head)
    on_close = close if close is not None else (lambda: None)
    if compression == "none":
        return Source(
            name=name,
            compression="none",
            size=size,
            chunk_size=chunk_size,
            chunks=_buffered_chunks(stream, chunk_size, head),
            on_close=on_close,
            threaded=False,
        )
    backend, new, errors = _gzip_backend() if compression == "gzip" else _zstd_backend()
    chunks = _decompressed_chunks(
        _raw_blocks(stream, head), chunk_size, name, compression, new, errors
    )
    return Source(
        name=name,
        compression=compression,
        size=size,
        chunk_size=chunk_size,
        chunks=chunks,
        on_close=on_close,
        threaded=threads,
        backend=backend,
    )


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit} "
    return f"{value:.0f} "


def _bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """A one-line progress report on a terminal: ``45.1% 512.0 MB 12.3 M msgs/s ETA 0:31``.

    Draws (with a carriage return, at most every ``min_interval`` seconds)
    only when ``stream`` is a terminal, unless ``enabled`` says otherwise;
    silent elsewhere, and never raises because of the stream (a closed or
    failing stream just turns it off). Cheap to call per chunk or more often.

    Parameters
    ----------
    total : int, optional
        Total raw bytes (``Source.size``); without it there is no percentage or ETA.
    unit_name : str, default "msgs"
        What ``messages`` counts, for the rate.
    stream : text file, default ``sys.stderr``
    enabled : bool, optional
        Draw or not; default: when ``stream.isatty()``.
    min_interval : float, default 0.2
        Seconds between redraws.

    Examples
    --------
    >>> import io
    >>> with Progress(1000, stream=io.StringIO()) as progress:   # not a tty: silent
    ...     progress.update(500, 10)
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        unit_name: str = "msgs",
        stream: Any = None,
        enabled: bool | None = None,
        min_interval: float = 0.2,
    ) -> None:
        self.total = total if total and total > 0 else None
        self.unit_name = unit_name
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self._isatty() if enabled is None else bool(enabled)
        self.min_interval = min_interval
        self.raw_bytes = 0
        self.messages = 0
        self._start = time.monotonic()
        self._next_draw = self._start + min_interval
        self._width = 0
        self._drawn = False
        self._closed = False

    def _isatty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except Exception:
            return False

    def update(self, raw_bytes: int, messages: int) -> None:
        """Record the totals so far (raw bytes consumed, messages decoded); redraw if due."""
        self.raw_bytes = raw_bytes
        self.messages = messages
        if self.enabled:
            now = time.monotonic()
            if now >= self._next_draw:
                self._next_draw = now + self.min_interval
                self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The progress text for the current totals."""
        elapsed = max((time.monotonic() if now is None else now) - self._start, 1e-9)
        parts = []
        if self.total:
            parts.append(f"{min(100.0, 100.0 * self.raw_bytes / self.total):.1f}%")
        parts.append(_bytes(self.raw_bytes))
        parts.append(f"{_si(self.messages / elapsed)}{self.unit_name}/s")
        if self.total and self.raw_bytes:
            left = max(self.total - self.raw_bytes, 0) * elapsed / self.raw_bytes
            parts.append(f"ETA {_clock(left)}")
        return " ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        try:
            self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
            self.stream.flush()
        except Exception:
            self.enabled = False
            return
        self._width = len(text)
        self._drawn = True

    def close(self) -> None:
        """Draw the final totals and end the line (if enabled). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(time.monotonic())
            if self._drawn:
                try:
                    self.stream.write("\n")
                    self.stream.flush()
                except Exception:
                    self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
