"""A small HTTP/1.1 server on ``asyncio.start_server`` (REST snapshots; no dependency)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

__all__ = ["Handler", "Response", "serve_http"]

#: (status, headers, body)
Response = tuple[int, dict[str, str], bytes]
#: handler(method, path, query) -> Response
Handler = Callable[[str, str, dict[str, str]], Awaitable[Response]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 418: "I'm a teapot",
            429: "Too Many Requests", 500: "Internal Server Error"}


async def _serve_one(handler: Handler, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
    """Answer requests on one connection (keep-alive) until the client closes it."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass                        # headers: none matter here (GET only)
            parts = line.decode("latin-1").split()
            if len(parts) != 3:
                status, headers = 400, dict[str, str]()
                body = b'{"code":-1,"msg":"bad request line"}'
            else:
                url = urlsplit(parts[1])
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, headers, body = await handler(parts[0], url.path, query)
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                    f"Content-Length: {len(body)}", "Content-Type: application/json;charset=UTF-8"]
            head += [f"{k}: {v}" for k, v in headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def serve_http(handler: Handler) -> asyncio.Server:
    """Serve ``handler`` on 127.0.0.1, an ephemeral port."""
    return await asyncio.start_server(lambda r, w: _serve_one(handler, r, w), "127.0.0.1", 0)
