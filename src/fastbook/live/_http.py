"""A small asyncio HTTP/1.1 GET client for REST depth snapshots, with no dependencies.

The live driver fetches REST snapshots (Binance: up to 5000 levels a side, about
250 KB of JSON) on the same event loop as its websocket readers. This client
reads with ``asyncio`` streams, so the longest step a fetch holds the loop for
is the gzip decode of the whole body at the end (under 0.7 ms for a 320 KB
snapshot here; a 64 MiB body would take far longer, hence the cap);
``bench/bench_http.py`` measures it against aiohttp and ``http.client`` in a
worker thread (figures and the choice in ``bench/README.md``).

It speaks what the venues' REST endpoints need: GET, keep-alive connections per
(scheme, host, port), ``Content-Length`` and chunked bodies, gzip and deflate
``Content-Encoding``, and TLS through ``ssl.create_default_context()``.
Non-2xx answers are returned (the rate limiter reads them); transport failures
raise :class:`HttpError` naming the URL and what happened.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastbook.errors import FastbookError

__all__ = ["MAX_BODY", "HttpClient", "HttpError", "HttpResponse"]

#: Largest body (after decompression) a response may have.
MAX_BODY = 64 << 20
_MAX_HEADER_LINE = 64 << 10
_MAX_HEADERS = 200
_CHUNK = 256 << 10


class HttpError(FastbookError, OSError):
    """A request that got no usable answer; ``url`` names it and the message says why."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url


@dataclass(frozen=True)
class HttpResponse:
    """One answer: status, headers with lower-case names, the (decoded) body, time taken."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ns: int


_Key = tuple[str, str, int]
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Fail(Exception):
    """Internal: a protocol failure; ``retry`` when a reused connection was found dead."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class HttpClient:
    """GET over HTTP/1.1 with keep-alive connections per host.

    Parameters
    ----------
    timeout : float
        Seconds for a whole request (connect, send, read the body).
    max_body : int
        Largest decoded body accepted; a larger one raises :class:`HttpError`.
    user_agent : str
        The ``User-Agent`` sent.
    ssl_context : ssl.SSLContext, optional
        For https; default ``ssl.create_default_context()`` (system CAs, host
        names checked). A simulator's test CA goes here.
    """

    def __init__(self, timeout: float = 10.0, *, max_body: int = MAX_BODY,
                 user_agent: str = "fastbook.live",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.timeout = float(timeout)
        self.max_body = int(max_body)
        self.user_agent = user_agent
        self._idle: dict[_Key, list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = ssl_context
        self._closed = False
        self.requests = 0
        self.connects = 0

    async def get(self, url: str, headers: dict[str, str] | None = None) -> HttpResponse:
        """GET ``url``; return the answer whatever its status, raise :class:`HttpError` if none."""
        if self._closed:
            raise HttpError("the HTTP client is closed", url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError("not an http(s) URL", url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise HttpError("bad port", url) from None
        key = (parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {self.user_agent}",
                 "Accept-Encoding: gzip, deflate", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        start = time.perf_counter_ns()
        try:
            status, head, body, keep, conn = await asyncio.wait_for(
                self._fetch(key, url, request), self.timeout)
        except asyncio.TimeoutError:
            raise HttpError(f"no complete answer within {self.timeout:g} s", url) from None
        except OSError as exc:
            if isinstance(exc, HttpError):
                raise
            raise HttpError(f"connection failed: {exc.strerror or exc}", url) from None
        if keep and not self._closed:
            self._idle.setdefault(key, []).append(conn)
        else:
            conn[1].close()
        self.requests += 1
        try:
            body = self._decode(body, head.get("content-encoding", ""))
        except _Fail as exc:
            raise HttpError(str(exc), url) from None
        return HttpResponse(status, head, body, time.perf_counter_ns() - start)

    async def _fetch(self, key: _Key, url: str, request: bytes
                     ) -> tuple[int, dict[str, str], bytes, bool, _Conn]:
        """Send on a kept or new connection; one retry on a new one if a kept one was dead."""
        while True:
            reused, conn = await self._connection(key, url)
            try:
                status, head, body, keep = await self._exchange(conn, request, reused)
            except _Fail as exc:
                conn[1].close()
                if exc.retry:
                    continue            # a kept-alive connection the server had closed
                raise HttpError(str(exc), url) from None
            except BaseException:       # cancelled by the timeout, or a socket error
                conn[1].close()
                raise
            return status, head, body, keep, conn

    async def _connection(self, key: _Key, url: str) -> tuple[bool, _Conn]:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn[0].at_eof() and not conn[1].is_closing():
                return True, conn
            conn[1].close()
        scheme, hostname, port = key
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        reader, writer = await asyncio.open_connection(hostname, port, ssl=context,
                                                       limit=_MAX_HEADER_LINE)
        self.connects += 1
        return False, (reader, writer)

    async def _exchange(self, conn: _Conn, request: bytes, reused: bool
                        ) -> tuple[int, dict[str, str], bytes, bool]:
        reader, writer = conn
        try:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise _Fail(f"connection lost before the status line: {exc}", retry=reused) from None
        if not status_line:
            raise _Fail("the server closed the connection before answering", retry=reused)
        status, version = _status(status_line)
        head = await _headers(reader)
        body = await self._body(reader, head, status)
        conn_hdr = head.get("connection", "").lower()
        keep = (version == "HTTP/1.1" and conn_hdr != "close") or conn_hdr == "keep-alive"
        if "content-length" not in head and "chunked" not in head.get("transfer-encoding", ""):
            keep = False                        # the body ran to the end of the connection
        return status, head, body, keep

    async def _body(self, reader: asyncio.StreamReader, head: dict[str, str],
                    status: int) -> bytes:
        if status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in head.get("transfer-encoding", "").lower():
            return await self._chunked(reader)
        length = head.get("content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                raise _Fail(f"bad Content-Length {length!r}") from None
            if n < 0:
                raise _Fail(f"bad Content-Length {length!r}")
            if n > self.max_body:
                raise _Fail(f"body too large: Content-Length {n:,} > {self.max_body:,} bytes")
            return await _exactly(reader, n)
        out = bytearray()
        while chunk := await reader.read(_CHUNK):
            out += chunk
            if len(out) > self.max_body:
                raise _Fail(f"body too large: over {self.max_body:,} bytes")
        return bytes(out)

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                raise _Fail(f"truncated body: ended inside chunked encoding after "
                            f"{len(out):,} bytes")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Fail(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                await _headers(reader)          # trailers
                return bytes(out)
            if len(out) + size > self.max_body:
                raise _Fail(f"body too large: over {self.max_body:,} bytes")
            out += await _exactly(reader, size)
            if await reader.readline() not in (b"\r\n", b"\n"):
                raise _Fail("bad chunked encoding: no line end after a chunk")

    def _decode(self, body: bytes, encoding: str) -> bytes:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise _Fail(f"unsupported Content-Encoding {encoding!r}")
        wbits = 31 if encoding != "deflate" else 15
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(body, self.max_body + 1)
        except zlib.error as exc:
            raise _Fail(f"bad {encoding} body: {exc}") from None
        if len(out) > self.max_body or d.unconsumed_tail:
            raise _Fail(f"body too large: over {self.max_body:,} bytes after {encoding}")
        if not d.eof:
            raise _Fail(f"truncated {encoding} body")
        return out

    async def close(self) -> None:
        """Close every kept-alive connection; later calls to :meth:`get` raise."""
        self._closed = True
        conns = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        for _, writer in conns:
            writer.close()
        for _, writer in conns:
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, TimeoutError):
                pass

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _status(line: bytes) -> tuple[int, str]:
    parts = line.rstrip(b"\r\n").split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 \
            or not parts[1].isdigit():
        raise _Fail(f"bad status line {line[:60]!r}")
    return int(parts[1]), parts[0].decode("ascii", "replace")


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    head: dict[str, str] = {}
    for _ in range(_MAX_HEADERS):
        try:
            line = await reader.readline()
        except ValueError:
            raise _Fail(f"header line over {_MAX_HEADER_LINE:,} bytes") from None
        if line in (b"\r\n", b"\n"):
            return head
        if not line.endswith(b"\n"):
            raise _Fail("truncated headers: the connection closed inside them")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _Fail(f"bad header line {line[:60]!r}")
        key = name.strip().lower()
        value = value.strip()
        head[key] = f"{head[key]}, {value}" if key in head else value
    raise _Fail(f"more than {_MAX_HEADERS} header lines")


async def _exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError as exc:
        raise _Fail(f"truncated body: {len(exc.partial):,} of {n:,} bytes before the "
                    f"connection closed") from None
