"""Recorded raw feed messages: fastbook's capture format and cryptofeed's recorder format.

A capture is the sequence of raw messages a client exchanged with a venue, each
with its local receive time, so that a replay feeds the venue codec exactly what
the live driver fed it. Both formats read as the same :class:`Record` type.

**fastbook captures** (``docs/captures.md`` gives the byte layout) are written
by :class:`CaptureWriter` and read by :class:`CaptureReader`: a magic header
with a format version and JSON metadata, then one binary record per message
(receive time in ns, connection id, kind, URL, payload, CRC32), compressed with
zstd when the ``zstandard`` package is installed (``pip install
'fastbook-lob[zstd]'``) and plain otherwise. Every flush writes a complete zstd
frame, so a capture cut short by a crash reads back up to its last flush.

:func:`read_cryptofeed` reads the recorder format of cryptofeed's
``sample_data`` files (the real captures in ``tests/data/l2/cryptofeed``):

* ``URL <-> <epoch_s>``: a connection opened (first line of a ``.ws.*`` file);
* ``URL <- <epoch_s>: <json>``: a message the client **sent**;
* ``<epoch_s>: <json>``: a message **received**;
* ``URL -> <epoch_s>: <json>``: a REST response (``*.http.*`` and ``*.0`` files);
* ``configuration: <json>``: the recorder's own settings; blank lines.

Receive times are decimal seconds, converted to integer nanoseconds exactly.
Each ``<->`` line starts a new connection (ids 1, 2, ... in file order); REST
responses belong to no connection (id 0).

:func:`read_capture` reads either format (detected from the content),
:func:`merge` interleaves several captures in receive-time order (a Binance
websocket capture and its REST snapshots), :func:`convert` writes any of them
as one fastbook capture, and :func:`summarize` counts what a capture holds.
:func:`as_sources` takes one capture or a list of them as a list, and
:func:`rest_symbol` reads the symbol of a REST order-book snapshot request from its URL
(what the replay driver hands the feed's ``snapshot``).

>>> import io
>>> out = io.BytesIO()
>>> with CaptureWriter(out, compression="none") as w:
...     w.opened(1, "wss://example/ws", 1_000)
...     w.received(1, b'{"x":1}', 2_000)
>>> [(r.kind, r.recv_ns, r.conn, r.url, r.payload) for r in read_capture(out.getvalue())]
[('open', 1000, 1, 'wss://example/ws', b''), ('recv', 2000, 1, '', b'{"x":1}')]
"""

from __future__ import annotations

import heapq
import json
import os
import re
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastbook.errors import DecodeError

__all__ = [
    "CLOSE",
    "DRIVER",
    "KINDS",
    "MAGIC",
    "OPEN",
    "RECEIVED",
    "REST",
    "SENT",
    "VERSION",
    "CaptureReader",
    "CaptureWriter",
    "Record",
    "as_sources",
    "convert",
    "merge",
    "read_capture",
    "read_cryptofeed",
    "rest_symbol",
    "sniff",
    "source_names",
    "summarize",
]

#: Record kinds.
RECEIVED = "recv"       # a message from the venue
SENT = "sent"           # a message the client sent (subscribe, ping)
OPEN = "open"           # a connection opened; ``url`` says where
REST = "rest"           # a REST response body; ``url`` is the request
CLOSE = "close"         # a connection closed; ``payload`` is the reason (may be empty)
DRIVER = "driver"       # a live driver's decision no frame shows; ``payload`` is JSON

#: Every kind, in the order of their codes in the fastbook format (1, 2, ...).
KINDS = (RECEIVED, SENT, OPEN, REST, CLOSE, DRIVER)
_N_KINDS = len(KINDS)
_CODES = {k: i + 1 for i, k in enumerate(KINDS)}
_BY_CODE = (None, *KINDS)

#: Record flag: the websocket message was a binary frame (else text).
BINARY = 0x01
_FLAGS_KNOWN = BINARY


@dataclass(frozen=True)
class Record:
    """One recorded message."""

    kind: str           # RECEIVED, SENT, OPEN, REST, CLOSE or DRIVER
    recv_ns: int        # local time in ns since the epoch
    url: str            # connection or request URL ("" for RECEIVED)
    payload: bytes      # the raw message (b"" for OPEN)
    line: int           # 1-based line (cryptofeed) or record number (fastbook), for errors
    conn: int = 0       # connection id (0: none, e.g. a REST response)
    flags: int = 0      # BINARY for a binary websocket frame (fastbook format only)


# ---------------------------------------------------------------------------
# the fastbook format
# ---------------------------------------------------------------------------

#: The first 8 bytes of every fastbook capture (after decompression).
MAGIC = b"\x89FBCAP\r\n"
#: The format version this module writes (and the newest it reads).
VERSION = 1
#: Largest payload / URL / metadata a record or header may hold; more is refused as corrupt.
MAX_PAYLOAD = 1 << 28
MAX_URL = 0xFFFF
MAX_META = 1 << 20
_INT64_MAX = (1 << 63) - 1
_UINT32_MAX = (1 << 32) - 1

# file header: magic, version, header flags (0), metadata length; then the metadata (JSON)
_HEADER = struct.Struct("<8sHHI")
# record header: crc32 of everything after it (the rest of the header, the url, the
# payload), conn, recv_ns, kind, flags, url length, payload length; then url and payload
_REC = struct.Struct("<IIqBBHI")
_REC_SIZE = _REC.size           # 24

#: Default zstd level of :class:`CaptureWriter` (fast; captures of JSON shrink ~10x).
DEFAULT_LEVEL = 3


def _zstandard(purpose: str) -> Any:
    try:
        import zstandard
    except ImportError:
        from fastbook._extras import missing

        raise missing("zstd", purpose, module="the 'zstandard' package",
                      alternative="or pip install zstandard") from None
    return zstandard


class CaptureWriter:
    """Write raw feed messages to a fastbook capture, zstd-compressed when possible.

    Parameters
    ----------
    target : path or binary file object
        A path is created (truncated); a file object is written to and left open.
    compression : {"auto", "zstd", "none"}
        ``"auto"`` (default): zstd when the ``zstandard`` package is installed,
        else plain. ``"zstd"`` without it raises ImportError.
    level : int
        zstd compression level.
    meta : dict, optional
        JSON-serialisable metadata stored in the header (``codec``, venue,
        subscriptions...); ``writer`` and ``created_ns`` are added.
    buffer_size : int
        Bytes of records held in memory before they are written (as one zstd
        frame); memory stays bounded by about this much.
    flush_interval : float or None
        Also write out buffered records on a :meth:`write` that comes this
        many seconds after the last write-out (None: only by size and
        :meth:`flush`).

    Records are written with :meth:`write` or the helpers :meth:`received`,
    :meth:`sent`, :meth:`opened`, :meth:`rest`, :meth:`disconnected`. Each write-out
    is a complete zstd frame with a content checksum and is flushed to the
    file, so a capture that is cut short (a crash) still reads back up to the
    last write-out. Use the writer as a context manager or call
    :meth:`close`. Not thread-safe: one writer per thread, or guard it.
    """

    def __init__(self, target: Any, *, compression: str = "auto", level: int = DEFAULT_LEVEL,
                 meta: dict[str, Any] | None = None, buffer_size: int = 1 << 20,
                 flush_interval: float | None = 1.0) -> None:
        if compression not in ("auto", "zstd", "none"):
            raise ValueError(f"compression must be 'auto', 'zstd' or 'none', got "
                             f"{compression!r}")
        if not isinstance(buffer_size, int) or isinstance(buffer_size, bool) \
                or buffer_size < 1:
            raise ValueError(f"buffer_size must be a positive int, got {buffer_size!r}")
        self._compress: Any = None
        if compression == "zstd" or compression == "auto":
            try:
                zstandard = _zstandard("writing a zstd capture")
            except ImportError:
                if compression == "zstd":
                    raise
            else:
                self._compress = zstandard.ZstdCompressor(
                    level=level, write_checksum=True, write_content_size=True).compress
        self.compression = "zstd" if self._compress is not None else "none"
        from fastbook import __version__

        header_meta = {"writer": f"fastbook {__version__}", "created_ns": time.time_ns()}
        header_meta.update(meta or {})
        try:
            text = json.dumps(header_meta, sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"capture metadata must be JSON-serialisable: {exc}") from None
        if len(text) > MAX_META:
            raise ValueError(f"capture metadata is {len(text):,} bytes of JSON; at most "
                             f"{MAX_META:,}")
        self.meta = header_meta
        if isinstance(target, (str, os.PathLike)):
            self.path: str | None = os.fspath(target)
            self._file: Any = open(self.path, "wb")
            self._owned = True
        else:
            if not hasattr(target, "write"):
                raise TypeError(f"target must be a path or a binary file object, got "
                                f"{type(target).__name__}")
            self.path = getattr(target, "name", None)
            self._file = target
            self._owned = False
        self.buffer_size = buffer_size
        self.flush_interval = flush_interval
        self._buf = bytearray(_HEADER.pack(MAGIC, VERSION, 0, len(text)) + text)
        self._last_out = time.monotonic()
        self._closed = False
        self.records = 0            # records written
        self.bytes_in = len(self._buf)  # uncompressed bytes of the capture stream
        self.bytes_out = 0          # bytes written to the file
        self.frames = 0             # zstd frames (write-outs) written

    # -- writing -----------------------------------------------------------
    def write(self, kind: str, payload: bytes | bytearray | memoryview | str = b"",
              recv_ns: int | None = None, *, conn: int = 0, url: str = "",
              binary: bool = False) -> None:
        """Append one record; ``recv_ns`` defaults to now (``time.time_ns()``)."""
        if self._closed:
            raise ValueError("this CaptureWriter is closed")
        code = _CODES.get(kind)
        if code is None:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if recv_ns is None:
            recv_ns = time.time_ns()
        elif not isinstance(recv_ns, int) or isinstance(recv_ns, bool) \
                or not 0 <= recv_ns <= _INT64_MAX:
            raise ValueError(f"recv_ns must be an int from 0 to 2**63-1 (ns since the "
                             f"epoch), got {recv_ns!r}")
        if not isinstance(conn, int) or isinstance(conn, bool) or not 0 <= conn <= _UINT32_MAX:
            raise ValueError(f"conn must be an int from 0 to 2**32-1, got {conn!r}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        link = url.encode() if url else b""
        if len(data) > MAX_PAYLOAD:
            raise ValueError(f"a payload of {len(data):,} bytes is over the "
                             f"{MAX_PAYLOAD:,}-byte limit of the capture format")
        if len(link) > MAX_URL:
            raise ValueError(f"a URL of {len(link):,} bytes is over the {MAX_URL:,}-byte "
                             f"limit of the capture format")
        head = _REC.pack(0, conn, recv_ns, code, BINARY if binary else 0, len(link),
                         len(data))[4:]
        crc = zlib.crc32(data, zlib.crc32(link, zlib.crc32(head)))
        buf = self._buf
        buf += crc.to_bytes(4, "little")
        buf += head
        buf += link
        buf += data
        self.records += 1
        self.bytes_in += _REC_SIZE + len(link) + len(data)
        if len(buf) >= self.buffer_size or (
                self.flush_interval is not None
                and time.monotonic() - self._last_out >= self.flush_interval):
            self.flush()

    def write_record(self, record: Record) -> None:
        """Append a :class:`Record` (from any reader) as it is."""
        self.write(record.kind, record.payload, record.recv_ns, conn=record.conn,
                   url=record.url, binary=bool(record.flags & BINARY))

    def received(self, conn: int, payload: Any, recv_ns: int | None = None, *,
                 binary: bool = False) -> None:
        """A message received on connection ``conn``."""
        self.write(RECEIVED, payload, recv_ns, conn=conn, binary=binary)

    def sent(self, conn: int, payload: Any, recv_ns: int | None = None, *,
             binary: bool = False) -> None:
        """A message the client sent on connection ``conn`` (subscribe, ping...)."""
        self.write(SENT, payload, recv_ns, conn=conn, binary=binary)

    def opened(self, conn: int, url: str, recv_ns: int | None = None) -> None:
        """Connection ``conn`` opened to ``url``."""
        self.write(OPEN, b"", recv_ns, conn=conn, url=url)

    def disconnected(self, conn: int, reason: Any = b"", recv_ns: int | None = None) -> None:
        """Connection ``conn`` closed (``reason``: close code and text, or an error)."""
        self.write(CLOSE, reason, recv_ns, conn=conn)

    def driver(self, info: dict[str, Any], recv_ns: int | None = None, *, conn: int = 0) -> None:
        """A live driver's decision that no frame shows (``info``, written as JSON): a
        standby connection ``conn`` promoted (``{"promote": true}``), a venue given up
        on (``{"down": venue, "reason": ...}``)."""
        self.write(DRIVER, json.dumps(info, separators=(",", ":")), recv_ns, conn=conn)

    def rest(self, url: str, body: Any, recv_ns: int | None = None, *, conn: int = 0) -> None:
        """The body of a REST response to ``url`` (the full request URL with its query)."""
        self.write(REST, body, recv_ns, conn=conn, url=url)

    def flush(self) -> None:
        """Write the buffered records out (one zstd frame) and flush the file."""
        if self._closed:
            raise ValueError("this CaptureWriter is closed")
        self._write_out()

    def _write_out(self) -> None:
        self._last_out = time.monotonic()
        if not self._buf:
            return
        data = self._compress(bytes(self._buf)) if self._compress is not None else self._buf
        self._file.write(data)
        self.bytes_out += len(data)
        self.frames += 1
        self._buf = bytearray()
        self._file.flush()

    def close(self) -> None:
        """Write out what is buffered and close the file (if the writer opened it)."""
        if self._closed:
            return
        try:
            self._write_out()
        finally:
            self._closed = True
            if self._owned:
                self._file.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<fastbook CaptureWriter {self.path or '<stream>'!r} "
                f"compression={self.compression!r} records={self.records}>")


class CaptureReader:
    """Read a fastbook capture (plain, zstd or gzip; detected from the content).

    Iterating yields :class:`Record` objects (``line`` is the 1-based record
    number); :meth:`raw` yields plain tuples, faster, for replay loops. The
    header is read on construction: :attr:`version`, :attr:`meta`.

    Every record is checked: kind and flags known, lengths within the
    format's limits, CRC32 matching (``verify=False`` skips only the CRC).
    Bad input raises :class:`fastbook.DecodeError` naming the source, the
    byte offset in the (decompressed) capture stream and the record number.
    Reading a zstd capture needs the ``zstandard`` package (or Python 3.14's
    ``compression.zstd``); without it the ImportError says so.
    """

    def __init__(self, source: Any, *, verify: bool = True, chunk_size: int = 4 << 20) -> None:
        from fastbook.sources import open_source

        self.verify = verify
        self._src = open_source(source, chunk_size=chunk_size)
        self.name = self._src.name
        self.compression = self._src.compression
        self._chunks = iter(self._src)
        self._data = b""
        self._base = 0      # stream offset of self._data[0]
        self._used = False
        try:
            head = self._need(_HEADER.size, "the file header")
            magic, version, hflags, meta_len = _HEADER.unpack_from(head, 0)
            if magic != MAGIC:
                raise DecodeError(f"{self.name}: not a fastbook capture: bad magic at byte 0 "
                                  f"({bytes(magic)!r}; expected {MAGIC!r})")
            if version < 1 or version > VERSION:
                raise DecodeError(f"{self.name}: capture format version {version} at byte 8; "
                                  f"this fastbook reads versions 1 to {VERSION}")
            if hflags != 0:
                raise DecodeError(f"{self.name}: unknown header flags {hflags:#06x} at byte 10")
            if meta_len > MAX_META:
                raise DecodeError(f"{self.name}: header metadata length {meta_len:,} at byte "
                                  f"12 is over the {MAX_META:,}-byte limit: corrupt header")
            text = self._need(_HEADER.size + meta_len, "the header metadata")[
                _HEADER.size:_HEADER.size + meta_len]
            try:
                meta = json.loads(text) if meta_len else {}
            except (ValueError, RecursionError):
                meta = None
            if not isinstance(meta, dict):
                raise DecodeError(f"{self.name}: the header metadata at byte 16 is not a JSON "
                                  f"object")
            self.version: int = version
            self.meta: dict[str, Any] = meta
            self._data = self._data[_HEADER.size + meta_len:]
            self._base = _HEADER.size + meta_len
        except BaseException:
            self._src.close()
            raise

    def _need(self, n: int, what: str) -> bytes:
        while len(self._data) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise DecodeError(f"{self.name}: truncated capture: {what} needs {n} bytes, "
                                  f"the stream has {len(self._data)}")
            self._data += bytes(chunk)
        return self._data

    def __iter__(self) -> Iterator[Record]:
        for recv_ns, kind, conn, url, payload, number, flags in self.raw():
            yield Record(kind, recv_ns, url, payload, number, conn, flags)

    def raw(self) -> Iterator[tuple[int, str, int, str, bytes, int, int]]:
        """Yield ``(recv_ns, kind, conn, url, payload, number, flags)`` per record.

        Can be iterated once; the source is closed at the end (or on error).
        """
        if self._used:
            raise ValueError(f"{self.name}: a CaptureReader can be iterated only once")
        self._used = True
        unpack = _REC.unpack_from
        crc32 = zlib.crc32
        verify = self.verify
        by_code = _BY_CODE
        data = self._data
        base = self._base
        view = memoryview(data)
        pos = 0
        n = len(data)
        number = 0
        try:
            while True:
                need = _REC_SIZE
                while n - pos >= _REC_SIZE:
                    crc, conn, recv_ns, code, flags, ulen, plen = unpack(data, pos)
                    if not 1 <= code <= _N_KINDS or flags & ~_FLAGS_KNOWN or plen > MAX_PAYLOAD \
                            or recv_ns < 0:
                        self._bad(base + pos, number + 1, code, flags, plen, recv_ns)
                    start = pos + _REC_SIZE
                    end = start + ulen + plen
                    if end > n:
                        need = end - pos
                        break
                    number += 1
                    if verify and crc32(view[pos + 4:end]) != crc:
                        raise DecodeError(
                            f"{self.name}: record {number} at byte {base + pos}: CRC32 "
                            f"mismatch (the record is corrupt)")
                    if ulen:
                        mid = start + ulen
                        try:
                            url = data[start:mid].decode()
                        except UnicodeDecodeError:
                            raise DecodeError(f"{self.name}: record {number} at byte "
                                              f"{base + pos}: the URL is not UTF-8") from None
                        yield recv_ns, by_code[code], conn, url, data[mid:end], number, flags
                    else:
                        yield recv_ns, by_code[code], conn, "", data[start:end], number, flags
                    pos = end
                # the next record straddles the chunk boundary: gather enough chunks
                parts = [data[pos:]]
                have = n - pos
                while have < need:
                    chunk = next(self._chunks, None)
                    if chunk is None:
                        break
                    parts.append(bytes(chunk))
                    have += len(parts[-1])
                if have == n - pos:     # nothing more
                    if have:
                        self._truncated(base + pos, number + 1, have, need)
                    return
                view.release()
                base += pos
                data = b"".join(parts)
                view = memoryview(data)
                pos = 0
                n = len(data)
        finally:
            view.release()
            self._src.close()

    def _bad(self, offset: int, number: int, code: int, flags: int, plen: int,
             recv_ns: int) -> None:
        where = f"{self.name}: record {number} at byte {offset}"
        if not 1 <= code <= _N_KINDS:
            raise DecodeError(f"{where}: unknown record kind {code} (corrupt capture, or a "
                              f"newer format)")
        if flags & ~_FLAGS_KNOWN:
            raise DecodeError(f"{where}: unknown record flags {flags:#04x}")
        if plen > MAX_PAYLOAD:
            raise DecodeError(f"{where}: payload length {plen:,} is over the "
                              f"{MAX_PAYLOAD:,}-byte limit (corrupt capture)")
        raise DecodeError(f"{where}: negative receive time {recv_ns}")

    def _truncated(self, offset: int, number: int, have: int, need: int) -> None:
        raise DecodeError(f"{self.name}: truncated capture: record {number} at byte {offset} "
                          f"needs {need:,} bytes, the stream ends after {have:,}")

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# cryptofeed's recorder format
# ---------------------------------------------------------------------------


def _seconds_to_ns(text: bytes, where: str) -> int:
    from fastbook import parse_decimal

    try:
        whole, _, frac = text.strip().partition(b".")
        frac = frac[:9]     # the recorder prints up to 7 decimals; nothing below 1 ns is kept
        return parse_decimal(whole + b"." + frac if frac else whole, 9)
    except ValueError as exc:
        raise DecodeError(f"{where}: bad receive time {text[:40]!r}") from exc


def _fast_seconds_to_ns(text: bytes, where: str) -> int:
    """``_seconds_to_ns`` for the plain ``digits[.digits]`` the recorder writes."""
    whole, _, frac = text.partition(b".")
    if whole.isdigit() and (frac.isdigit() or not frac) and len(whole) <= 19:
        ns = int(whole) * 1_000_000_000 + (int(frac[:9].ljust(9, b"0")) if frac else 0)
        if ns <= _INT64_MAX:
            return ns
    return _seconds_to_ns(text, where)


_ARROWS = ((b" <-> ", OPEN), (b" <- ", SENT), (b" -> ", REST))


def _url_text(url: bytes, where: str) -> str:
    """A record's URL as text; a DecodeError naming the line when it is not UTF-8."""
    try:
        return url.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{where}: the URL is not UTF-8 (byte {exc.start}: "
                          f"{url[exc.start:exc.start + 4]!r}): {url[:60]!r}") from None


def _cryptofeed_raw(source: Any) -> Iterator[tuple[int, str, int, str, bytes, int, int]]:
    """:func:`read_cryptofeed` as ``(recv_ns, kind, conn, url, payload, line, 0)`` tuples."""
    from fastbook.sources import open_source

    with open_source(source, chunk_size=1 << 20) as src:
        name = src.name
        conn = 0
        opened = 0
        lineno = 0
        carry = b""
        chunks = iter(src)
        while True:
            chunk = next(chunks, None)
            if chunk is None:
                if not carry:
                    return
                lines = [carry]
                carry = b""
            else:
                lines = (carry + bytes(chunk)).split(b"\n")
                carry = lines.pop()
            for raw in lines:
                lineno += 1
                line = raw.rstrip(b"\r")
                if line[:1].isdigit():
                    head, sep, body = line.partition(b": ")
                    if not sep:
                        raise DecodeError(f"{name}:{lineno}: expected '<time>: <message>', "
                                          f"got {line[:60]!r}")
                    yield (_fast_seconds_to_ns(head, f"{name}:{lineno}"), RECEIVED, conn, "",
                           body, lineno, 0)
                    continue
                if not line.strip() or line.startswith(b"configuration: "):
                    continue
                where = f"{name}:{lineno}"
                kind = ""
                for arrow, arrow_kind in _ARROWS:
                    url, sep, rest = line.partition(arrow)
                    if sep:
                        kind = arrow_kind
                        break
                if not kind:
                    raise DecodeError(f"{where}: not a cryptofeed record: {line[:60]!r}")
                if kind == OPEN:
                    opened += 1
                    conn = opened
                    yield (_fast_seconds_to_ns(rest, where), OPEN, conn,
                           _url_text(url, where), b"", lineno, 0)
                    continue
                head, sep, body = rest.partition(b": ")
                if not sep:
                    raise DecodeError(f"{where}: expected '<time>: <message>', got "
                                      f"{line[:60]!r}")
                yield (_fast_seconds_to_ns(head, where), kind, conn if kind == SENT else 0,
                       _url_text(url, where), body, lineno, 0)
            if chunk is None:
                return


def read_cryptofeed(source: Any) -> Iterator[Record]:
    """Yield the records of a cryptofeed raw-data file (path, ``.gz`` path, bytes or binary file).

    Each ``<->`` (connection opened) line starts a new connection id (1, 2,
    ...) carried by the records after it; REST responses have ``conn`` 0.
    Malformed lines raise :class:`fastbook.DecodeError` naming the file and line.
    """
    for recv_ns, kind, conn, url, payload, line, _ in _cryptofeed_raw(source):
        yield Record(kind, recv_ns, url, payload, line, conn)


# ---------------------------------------------------------------------------
# either format; merging, converting, summarizing
# ---------------------------------------------------------------------------

_CRYPTOFEED_LINE = re.compile(
    rb"^(?:\d+(?:\.\d+)?: |configuration: |\S+ (?:<->|<-|->) \d+(?:\.\d+)?(?::|\s*$))")


def sniff(source: Any) -> str | None:
    """``"fastbook"``, ``"cryptofeed"`` or None: which capture format ``source`` holds.

    Reads (and decompresses) only the first bytes. ``source`` is a path, a
    bytes-like object or a :class:`fastbook.sources.Peekable` stream (stdin
    as ``fastbook.sources.peekable("-")``), whose head is peeked, not
    consumed; other file objects are not sniffed (they cannot be rewound).
    """
    from fastbook.sources import Peekable, open_source

    if isinstance(source, Peekable):
        raw = source.peek(_SNIFF_PEEK)
        head = b""
        try:
            with open_source(raw, chunk_size=4096, threads=False) as src:
                for chunk in src:
                    head += bytes(chunk)
                    if len(head) >= 4096:
                        break
        except DecodeError:
            # the peeked part of a compressed stream ends inside a frame: judge what it gave
            if not head:
                return None
        return _sniff_head(head)
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return None
    with open_source(source, chunk_size=1 << 16, threads=False, mmap=False) as src:
        head = b""
        for chunk in src:
            head += bytes(chunk)
            if len(head) >= 4096:
                break
    return _sniff_head(head)


#: Raw bytes :func:`sniff` peeks from a stream (enough compressed input for 4 KiB of text).
_SNIFF_PEEK = 64 << 10


def _sniff_head(head: bytes) -> str | None:
    if head.startswith(MAGIC):
        return "fastbook"
    for line in head.split(b"\n"):
        if line.strip():
            return "cryptofeed" if _CRYPTOFEED_LINE.match(line) else None
    return None


def _raw_records(source: Any, verify: bool = True) -> Iterator[tuple[Any, ...]]:
    """Raw tuples of either format; a file object is read as a fastbook capture."""
    if sniff(source) == "cryptofeed":
        return _cryptofeed_raw(source)
    return CaptureReader(source, verify=verify).raw()


def read_capture(source: Any, *, verify: bool = True) -> Iterator[Record]:
    """Yield the :class:`Record` objects of a fastbook or cryptofeed capture.

    The format is detected from the content (a binary file object is read as
    a fastbook capture). ``verify=False`` skips the fastbook format's CRC check.
    """
    for recv_ns, kind, conn, url, payload, line, flags in _raw_records(source, verify):
        yield Record(kind, recv_ns, url, payload, line, conn, flags)


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", "<bytes>") if not isinstance(
        source, (bytes, bytearray, memoryview)) else "<bytes>"


def _tagged(records: Iterator[tuple[Any, ...]], index: int) -> Iterator[tuple[Any, ...]]:
    for rec in records:
        yield (*rec, index)


def merge_raw(sources: Iterable[Any], *, verify: bool = True
              ) -> Iterator[tuple[int, str, int, str, bytes, int, int, int]]:
    """Raw records of several captures in receive-time order, with the source index.

    Yields ``(recv_ns, kind, conn, url, payload, number, flags, source)``.
    Records of one source keep their order; ties between sources go to the
    earlier source. Connection ids are renumbered so that connections of
    different sources stay apart (1, 2, ... in order of first appearance;
    0 stays 0).
    """
    iters = [_tagged(_raw_records(source, verify), i) for i, source in enumerate(sources)]
    if len(iters) == 1:
        stream: Iterator[Any] = iters[0]
    else:
        stream = heapq.merge(*iters, key=itemgetter(0))
    ids: dict[tuple[int, int], int] = {}
    single = len(iters) == 1
    for rec in stream:
        conn = rec[2]
        if conn and not single:
            new = ids.get((rec[7], conn))
            if new is None:
                new = ids[(rec[7], conn)] = len(ids) + 1
            if new != conn:
                rec = (rec[0], rec[1], new, *rec[3:])
        yield rec


def merge(sources: Iterable[Any], *, verify: bool = True) -> Iterator[Record]:
    """The :class:`Record` objects of several captures, merged in receive-time order.

    See :func:`merge_raw` for the ordering and connection ids. ``line`` is the
    record's line or number in its own source.
    """
    for recv_ns, kind, conn, url, payload, line, flags, _ in merge_raw(sources, verify=verify):
        yield Record(kind, recv_ns, url, payload, line, conn, flags)


def convert(sources: Any, output: Any, *, compression: str = "auto",
            level: int = DEFAULT_LEVEL, meta: dict[str, Any] | None = None) -> int:
    """Write one or more captures (cryptofeed or fastbook) as one fastbook capture.

    Several sources are merged in receive-time order (:func:`merge_raw`). The
    source names go into the header metadata (``converted_from``). Returns the
    number of records written.
    """
    if isinstance(sources, (str, os.PathLike, bytes, bytearray, memoryview)):
        sources = [sources]
    sources = list(sources)
    info = {"converted_from": [os.path.basename(_source_name(s)) for s in sources]}
    info.update(meta or {})
    with CaptureWriter(output, compression=compression, level=level, meta=info,
                       flush_interval=None, buffer_size=4 << 20) as writer:
        for recv_ns, kind, conn, url, payload, _, flags, _ in merge_raw(sources):
            writer.write(kind, payload, recv_ns, conn=conn, url=url, binary=bool(flags & BINARY))
        return writer.records


def summarize(sources: Any, *, verify: bool = True, progress: bool | None = None) -> dict[str, Any]:
    """What captures hold: records by kind, time range, per-connection counts, REST URLs.

    ``sources`` is one capture or a list (merged as :func:`merge_raw` does).
    Returns a dict with ``records``, ``bytes`` (payload bytes), ``kinds``
    (records by kind), ``first_ns`` / ``last_ns`` (receive times; None when
    empty), ``connections`` (a dict by connection id of ``url``, ``records``,
    ``bytes``, ``first_ns``, ``last_ns``, and the kinds), ``rest`` (REST
    responses by URL path), ``formats`` (the format of each source) and
    ``meta`` (the header metadata of each fastbook source, else None).
    ``progress``: draw a progress line (records read) on stderr; default: when
    it is a terminal.
    """
    from fastbook.sources import Progress

    if isinstance(sources, (str, os.PathLike, bytes, bytearray, memoryview)):
        sources = [sources]
    sources = list(sources)
    formats = [sniff(s) for s in sources]
    metas: list[Any] = []
    for s, fmt in zip(sources, formats, strict=True):
        if fmt == "fastbook":
            with CaptureReader(s) as r:
                metas.append(r.meta)
        else:
            metas.append(None)
    kinds = dict.fromkeys(KINDS, 0)
    conns: dict[int, dict[str, Any]] = {}
    rest: dict[str, int] = {}
    records = nbytes = 0
    bar = Progress(None, unit_name="records", enabled=progress)
    try:
        for record in merge_raw(sources, verify=verify):
            records += 1
            nbytes += len(record[4])
            if not records & 0x3FF:
                bar.update(nbytes, records)
            _count(record, kinds, conns, rest)
    finally:
        bar.close()
    first = min((c["first_ns"] for c in conns.values()), default=None)
    last = max((c["last_ns"] for c in conns.values()), default=None)
    return {"records": records, "bytes": nbytes, "kinds": kinds, "first_ns": first,
            "last_ns": last, "connections": dict(sorted(conns.items())), "rest": rest,
            "formats": formats, "meta": metas}


def _count(record: Any, kinds: dict[str, int], conns: dict[int, dict[str, Any]],
           rest: dict[str, int]) -> None:
    # one record into summarize's counts
    recv_ns, kind, conn, url, payload = record[:5]
    kinds[kind] += 1
    c = conns.get(conn)
    if c is None:
        c = conns[conn] = {"url": "", "records": 0, "bytes": 0, "first_ns": recv_ns,
                           "last_ns": recv_ns, **dict.fromkeys(KINDS, 0)}
    c["records"] += 1
    c["bytes"] += len(payload)
    c[kind] += 1
    c["first_ns"] = min(c["first_ns"], recv_ns)
    c["last_ns"] = max(c["last_ns"], recv_ns)
    if kind == OPEN and not c["url"]:
        c["url"] = url
    if kind == REST:
        path = url.split("?", 1)[0]
        rest[path] = rest.get(path, 0) + 1


# URL paths (last segment) of REST order-book snapshots, with the symbol as a query parameter
_DEPTH_PATHS = ("depth", "full_orderbook", "orderbook")


def rest_symbol(url: str) -> str | None:
    """The symbol of a REST order-book snapshot request, or None if ``url`` is not one.

    >>> rest_symbol("https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000")
    'NKNUSDT'
    >>> rest_symbol("https://api.binance.com/api/v3/exchangeInfo") is None
    True
    """
    parts = urlsplit(url)
    if parts.path.rstrip("/").rsplit("/", 1)[-1] not in _DEPTH_PATHS:
        return None
    values = parse_qs(parts.query).get("symbol")
    return values[0] if values else None


def source_names(sources: list[Any]) -> list[str]:
    """A name for each capture source, for messages: its path, ``<bytes>`` or its ``name``."""
    out = []
    for s in sources:
        if isinstance(s, (str, os.PathLike)):
            out.append(os.fspath(s))
        elif isinstance(s, (bytes, bytearray, memoryview)):
            out.append("<bytes>")
        else:
            out.append(str(getattr(s, "name", "<stream>")))
    return out


def as_sources(source: Any) -> list[Any]:
    """One capture (path, bytes, file object) or an iterable of them, as a list."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) \
            or hasattr(source, "read"):
        return [source]
    if isinstance(source, Iterable):
        out = list(source)
        if not out:
            raise ValueError("no capture given: source is an empty list")
        return out
    raise TypeError(f"source must be a capture path, bytes, a binary file object or a list "
                    f"of them, got {type(source).__name__}")
