"""Recorded raw feed messages: readers (and, later in this module, fastbook's own format).

A capture is the sequence of raw messages a client exchanged with a venue, each
with its local receive time, so that a replay feeds the venue codec exactly what
the live driver fed it.

:func:`read_cryptofeed` reads the recorder format of cryptofeed's
``sample_data`` files (the real captures in ``tests/data/l2/cryptofeed``):

* ``URL <-> <epoch_s>``: a connection opened (first line of a ``.ws.*`` file);
* ``URL <- <epoch_s>: <json>``: a message the client **sent**;
* ``<epoch_s>: <json>``: a message **received**;
* ``URL -> <epoch_s>: <json>``: a REST response (``*.http.*`` and ``*.0`` files);
* ``configuration: <json>``: the recorder's own settings; blank lines.

Receive times are decimal seconds, converted to integer nanoseconds exactly.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from fastbook.errors import DecodeError

__all__ = ["OPEN", "RECEIVED", "REST", "SENT", "Record", "read_cryptofeed"]

#: Record kinds.
RECEIVED = "recv"       # a message from the venue
SENT = "sent"           # a message the client sent (subscribe, ping)
OPEN = "open"           # a connection opened; ``url`` says where
REST = "rest"           # a REST response body; ``url`` is the request


@dataclass(frozen=True)
class Record:
    """One recorded message."""

    kind: str           # RECEIVED, SENT, OPEN or REST
    recv_ns: int        # local time in ns since the epoch
    url: str            # connection or request URL ("" for RECEIVED)
    payload: bytes      # the raw message (b"" for OPEN)
    line: int           # 1-based line number in the file, for error messages


def _seconds_to_ns(text: bytes, where: str) -> int:
    from fastbook import parse_decimal

    try:
        whole, _, frac = text.strip().partition(b".")
        frac = frac[:9]     # the recorder prints up to 7 decimals; nothing below 1 ns is kept
        return parse_decimal(whole + b"." + frac if frac else whole, 9)
    except ValueError as exc:
        raise DecodeError(f"{where}: bad receive time {text[:40]!r}") from exc


def _open(source: Any) -> tuple[IO[bytes], str, bool]:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        f: IO[bytes] = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
        return f, path, True
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), "<bytes>", True
    return source, getattr(source, "name", "<stream>"), False


def read_cryptofeed(source: Any) -> Iterator[Record]:
    """Yield the records of a cryptofeed raw-data file (path, ``.gz`` path, bytes or binary file).

    Malformed lines raise :class:`fastbook.DecodeError` naming the file and line.
    """
    f, name, owned = _open(source)
    try:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip() or line.startswith(b"configuration: "):
                continue
            where = f"{name}:{lineno}"
            if line[:1].isdigit():
                head, sep, body = line.partition(b": ")
                if not sep:
                    raise DecodeError(f"{where}: expected '<time>: <message>', got {line[:60]!r}")
                yield Record(RECEIVED, _seconds_to_ns(head, where), "", body, lineno)
                continue
            kind = ""
            for arrow, arrow_kind in ((b" <-> ", OPEN), (b" <- ", SENT), (b" -> ", REST)):
                url, sep, rest = line.partition(arrow)
                if sep:
                    kind = arrow_kind
                    break
            if not kind:
                raise DecodeError(f"{where}: not a cryptofeed record: {line[:60]!r}")
            if kind == OPEN:
                yield Record(OPEN, _seconds_to_ns(rest, where), url.decode(), b"", lineno)
                continue
            head, sep, body = rest.partition(b": ")
            if not sep:
                raise DecodeError(f"{where}: expected '<time>: <message>', got {line[:60]!r}")
            yield Record(kind, _seconds_to_ns(head, where), url.decode(), body, lineno)
    finally:
        if owned:
            f.close()
