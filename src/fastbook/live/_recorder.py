"""The live recorder: fastbook captures written in rotating parts, off the event loop.

A :class:`Recorder` takes the same calls as :class:`fastbook.capture.CaptureWriter`
(``opened``, ``sent``, ``received``, ``rest``, ``disconnected``, ``driver``) and writes them to
``<prefix>-<UTC start>-<n>.fbcap[.zst]`` files in one directory, starting a new
part when the current one is over ``max_bytes`` (after the record that crossed
it) or older than ``max_seconds``. Every record lands in exactly one part.

By default the records are written in the caller: ``bench/bench_http.py``
measured about 2.3 us per 800-byte ``received()`` with zstd, and a worst call
of about 1.3 ms (the zstd write-out of the 1 MiB buffer, once per ~1,300
such messages), while a background thread made the worst call *worse*
(12-25 ms in a tight loop: the writer thread's Python code holds the GIL for
a switch interval). ``threaded=True`` is there for a disk that can stall
(network storage): the caller then stamps the time and puts a tuple on a
bounded queue; when the queue is full it blocks for at most ``block_s``
seconds and then drops the record, counting it in ``dropped`` (a disk that
cannot keep up must not freeze the books). Nothing is dropped uncounted.

:func:`read_recording` reads a directory's parts back as one stream.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastbook.capture import (
    CLOSE,
    DRIVER,
    OPEN,
    RECEIVED,
    REST,
    SENT,
    CaptureWriter,
    Record,
    read_capture,
)

__all__ = ["Recorder", "read_recording", "recording_files"]

_STOP = object()
_NAME = re.compile(r"^(?P<prefix>.+)-(?P<start>\d{8}T\d{6}Z)-(?P<n>\d+)\.fbcap(\.zst)?$")

_Item = tuple[str, bytes, int, int, str, bool]   # kind, payload, recv_ns, conn, url, binary


class Recorder:
    """Write live messages to rotating fastbook capture parts in ``directory``.

    Parameters
    ----------
    directory : path
        Created if missing. Part numbers continue after the highest part of
        ``prefix`` already there, so a restart never overwrites a recording.
    max_bytes : int
        Start a new part after the record that takes the current one over
        this many bytes. With zstd the size moves in write-outs of the
        compression buffer (at most ``max_bytes // 4``, at most 1 MiB
        uncompressed), so a part can end up about one compressed buffer over.
    max_seconds : float
        Start a new part at the first record after the current one is this old.
    compression : {"auto", "zstd", "none"}
        As for :class:`~fastbook.capture.CaptureWriter`.
    meta : dict, optional
        Stored in every part's metadata with ``recorder``, ``part`` and
        ``open_connections`` (conn -> URL of connections open when the part began).
    threaded : bool
        Write in the caller (default) or from a background thread.
    queue_size, block_s :
        The background queue's length in records, and how long a call waits
        for room before the record is dropped and counted in ``dropped``.
    """

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 256 << 20,
                 max_seconds: float = 3600, compression: str = "auto",
                 meta: dict[str, Any] | None = None, prefix: str = "fastbook",
                 threaded: bool = False, queue_size: int = 65536, block_s: float = 0.05
                 ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds!r}")
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"prefix must be a non-empty file name part, got {prefix!r}")
        self._ext = _extension(compression)
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_seconds = float(max_seconds)
        self.compression = compression
        self.meta = dict(meta or {})
        self.prefix = prefix
        self.block_s = float(block_s)
        self.files: list[str] = []
        self.records = 0            # records written to a part
        self.dropped = 0            # records refused because the queue stayed full
        self._lost = 0              # records queued behind a write error
        self._part = max((n for _, n in _parts(self.directory, prefix)), default=0)
        self._open: dict[int, str] = {}
        self._writer: CaptureWriter | None = None
        self._started = 0.0
        self._error: BaseException | None = None
        self._closed = False
        self._rotate()              # the first part now: a bad directory fails here
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=queue_size)
            self._thread = threading.Thread(target=self._run, name="fastbook-recorder",
                                            daemon=True)
            self._thread.start()

    # -- the calls of CaptureWriter ----------------------------------------
    def write(self, kind: str, payload: Any = b"", recv_ns: int | None = None, *,
              conn: int = 0, url: str = "", binary: bool = False) -> None:
        """Append one record of any kind, as :meth:`CaptureWriter.write` does."""
        self._put(kind, payload, recv_ns, conn, url, binary)

    def received(self, conn: int, payload: Any, recv_ns: int | None = None, *,
                 binary: bool = False) -> None:
        """A message received on connection ``conn``."""
        self._put(RECEIVED, payload, recv_ns, conn, "", binary)

    def sent(self, conn: int, payload: Any, recv_ns: int | None = None, *,
             binary: bool = False) -> None:
        """A message sent on connection ``conn``."""
        self._put(SENT, payload, recv_ns, conn, "", binary)

    def opened(self, conn: int, url: str, recv_ns: int | None = None) -> None:
        """Connection ``conn`` opened to ``url``."""
        self._put(OPEN, b"", recv_ns, conn, url, False)

    def disconnected(self, conn: int, reason: Any = b"", recv_ns: int | None = None) -> None:
        """Connection ``conn`` closed."""
        self._put(CLOSE, reason, recv_ns, conn, "", False)

    def rest(self, url: str, body: Any, recv_ns: int | None = None, *, conn: int = 0) -> None:
        """The body of a REST response to ``url``."""
        self._put(REST, body, recv_ns, conn, url, False)

    def driver(self, info: dict[str, Any], recv_ns: int | None = None, *, conn: int = 0) -> None:
        """A live driver's decision that no frame shows (see
        :meth:`fastbook.capture.CaptureWriter.driver`)."""
        self._put(DRIVER, json.dumps(info, separators=(",", ":")), recv_ns, conn, "", False)

    def _put(self, kind: str, payload: Any, recv_ns: int | None, conn: int, url: str,
             binary: bool) -> None:
        if self._closed:
            raise ValueError("this Recorder is closed")
        if self._error is not None:
            raise self._error
        if recv_ns is None:
            recv_ns = time.time_ns()        # stamped now, not when the thread gets to it
        elif isinstance(recv_ns, bool) or not isinstance(recv_ns, int) \
                or not 0 <= recv_ns < 1 << 63:
            raise ValueError(f"recv_ns must be an int from 0 to 2**63-1, got {recv_ns!r}")
        if isinstance(conn, bool) or not isinstance(conn, int) or not 0 <= conn < 1 << 32:
            raise ValueError(f"conn must be an int from 0 to 2**32-1, got {conn!r}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        item = (kind, data, recv_ns, conn, url, binary)
        if self._queue is None:
            self._write(item)
            return
        try:
            self._queue.put(item, timeout=self.block_s)
        except queue.Full:
            self.dropped += 1

    # -- writing ----------------------------------------------------------
    def _run(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):     # flush(): everything before it is out
                try:
                    if self._writer is not None and self._error is None:
                        self._writer.flush()
                except BaseException as exc:
                    self._error = exc
                item.set()
                continue
            if self._error is not None:
                self._lost += 1             # after a write error: counted, never written
                continue
            try:
                self._write(item)
            except BaseException as exc:    # surfaced to the caller on its next call
                self._error = exc

    def _write(self, item: _Item) -> None:
        kind, data, recv_ns, conn, url, binary = item
        w = self._writer
        if w is None or time.monotonic() - self._started >= self.max_seconds:
            w = self._rotate()
        w.write(kind, data, recv_ns, conn=conn, url=url, binary=binary)
        self.records += 1
        if kind == OPEN:
            self._open[conn] = url
        elif kind == CLOSE:
            self._open.pop(conn, None)
        size = w.bytes_out if w.compression == "zstd" else w.bytes_in
        if size > self.max_bytes:
            # over by the record that crossed it; the next part opens with the next record,
            # so a recording never ends in an empty part because of its size
            w.close()
            self._writer = None

    def _rotate(self) -> CaptureWriter:
        """Close the current part (if any) and open the next."""
        if self._writer is not None:
            self._writer.close()
        self._part += 1
        start = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = os.path.join(self.directory,
                            f"{self.prefix}-{start}-{self._part:05d}{self._ext}")
        meta = {**self.meta, "recorder": "fastbook.live", "part": self._part,
                "open_connections": {str(c): u for c, u in sorted(self._open.items())}}
        self._writer = CaptureWriter(path, compression=self.compression, meta=meta,
                                     buffer_size=max(4096, min(1 << 20, self.max_bytes // 4)))
        self._started = time.monotonic()
        self.files.append(path)
        return self._writer

    def flush(self, timeout: float | None = 10.0) -> None:
        """Write out every record given so far to the current part's file (a reader
        then sees them all); re-raise a writer error."""
        if self._closed:
            return
        if self._thread is not None and self._queue is not None:
            done = threading.Event()
            self._queue.put(done)
            if not done.wait(timeout):
                raise TimeoutError(f"the recorder's writer did not flush within {timeout} s")
        elif self._writer is not None:
            self._writer.flush()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Write out everything queued, close the last part; re-raise a writer error."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._queue is not None:
            self._queue.put(_STOP)
            self._thread.join()
        if self._writer is not None:
            self._writer.close()
        if self._error is not None:
            raise self._error

    def stats(self) -> dict[str, Any]:
        """records, dropped, parts, queued (waiting for the thread), the current file."""
        return {"records": self.records, "dropped": self.dropped + self._lost,
                "parts": len(self.files),
                "queued": self._queue.qsize() if self._queue is not None else 0,
                "file": self.files[-1] if self.files else None}

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _extension(compression: str) -> str:
    """``.fbcap.zst`` when CaptureWriter will compress, else ``.fbcap``."""
    if compression == "auto":
        import importlib.util

        compression = "zstd" if importlib.util.find_spec("zstandard") else "none"
    if compression not in ("zstd", "none"):
        raise ValueError(f"compression must be 'auto', 'zstd' or 'none', got {compression!r}")
    return ".fbcap.zst" if compression == "zstd" else ".fbcap"


def _parts(directory: str, prefix: str | None) -> list[tuple[str, int]]:
    out = []
    for name in os.listdir(directory):
        m = _NAME.match(name)
        if m and (prefix is None or m["prefix"] == prefix):
            out.append((os.path.join(directory, name), int(m["n"])))
    return out


def recording_files(directory: str | os.PathLike[str], prefix: str | None = None) -> list[str]:
    """The part files of a recording in ``directory``, in part order."""
    parts = _parts(os.fspath(directory), prefix)
    names: dict[int, str] = {}
    for path, n in parts:
        if n in names:
            raise ValueError(f"two files are part {n} in {os.fspath(directory)!r}: "
                             f"{names[n]!r} and {path!r} (pass prefix=)")
        names[n] = path
    return [names[n] for n in sorted(names)]


def read_recording(directory: str | os.PathLike[str], prefix: str | None = None, *,
                   verify: bool = True) -> Iterator[Record]:
    """Every record of a recording's parts in order (connection ids as recorded)."""
    files = recording_files(directory, prefix)
    if not files:
        raise FileNotFoundError(f"no recording parts (*-<UTC start>-<n>.fbcap[.zst]) in "
                                f"{os.fspath(directory)!r}")
    for path in files:
        yield from read_capture(path, verify=verify)
