"""fastbook.live._http.HttpClient against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Awaitable, Callable

import pytest

from fastbook.errors import FastbookError
from fastbook.live._http import HttpClient, HttpError

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]


async def serve(handler: Handler):
    """A loopback server; ``handler(request_line, writer)`` answers, True keeps the socket."""
    state = {"connections": 0, "requests": []}

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        state["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0]
                state["requests"].append(head)
                if not await handler(line, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", state


def answer(status: int, body: bytes, **headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_get_keep_alive_and_headers():
    async def handler(line, w):
        w.write(answer(200, b"hello " + line.split()[1], X_MBX_USED_WEIGHT_1M="250"))
        return True

    async def main():
        server, base, state = await serve(handler)
        async with server, HttpClient(timeout=5) as client:
            r1 = await client.get(f"{base}/api/v3/depth?symbol=BTCUSDT", {"X-Test": "1"})
            r2 = await client.get(f"{base}/b")
        assert (r1.status, r1.body) == (200, b"hello /api/v3/depth?symbol=BTCUSDT")
        assert r1.headers["x-mbx-used-weight-1m"] == "250" and r1.elapsed_ns > 0
        assert r2.body == b"hello /b"
        assert state["connections"] == 1 and client.connects == 1    # kept alive
        assert b"X-Test: 1" in state["requests"][0]

    run(main())


def test_chunked_gzip_and_non_2xx_returned():
    payload = b'{"lastUpdateId":1,"bids":[["1.0","2.0"]],"asks":[]}' * 500

    async def handler(line, w):
        if b"/chunked" in line:
            z = gzip.compress(payload)
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Encoding: gzip\r\n\r\n")
            for i in range(0, len(z), 1000):
                part = z[i:i + 1000]
                w.write(b"%x\r\n" % len(part) + part + b"\r\n")
            w.write(b"0\r\n\r\n")
        else:
            w.write(answer(429, b"slow down", Retry_After="3"))
        return True

    async def main():
        server, base, _ = await serve(handler)
        async with server, HttpClient() as client:
            r = await client.get(f"{base}/chunked")
            assert r.body == payload
            r = await client.get(f"{base}/limited")
            assert (r.status, r.headers["retry-after"], r.body) == (429, "3", b"slow down")
            assert client.connects == 1

    run(main())


def test_server_closing_a_kept_connection_is_retried():
    async def handler(line, w):
        w.write(answer(200, b"ok"))
        return False                      # close after every answer, without saying so

    async def main():
        server, base, state = await serve(handler)
        async with server, HttpClient() as client:
            for _ in range(3):
                assert (await client.get(f"{base}/x")).body == b"ok"
                await asyncio.sleep(0.01)
        assert state["connections"] == 3

    run(main())


@pytest.mark.parametrize("reply, message", [
    (b"SPAM\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "truncated body: 5 of 100"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", "body too large"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "truncated body"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", "bad gzip"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nConte", "truncated headers"),
])
def test_bad_answers_raise_naming_the_url(reply, message):
    async def handler(line, w):
        w.write(reply)
        return False

    async def main():
        server, base, _ = await serve(handler)
        async with server, HttpClient() as client:
            with pytest.raises(HttpError, match=message) as info:
                await client.get(f"{base}/depth")
        assert info.value.url == f"{base}/depth" and base in str(info.value)
        assert isinstance(info.value, FastbookError)

    run(main())


def test_gzip_bomb_capped():
    bomb = gzip.compress(b"\0" * (3 << 20))

    async def handler(line, w):
        w.write(answer(200, bomb, Content_Encoding="gzip"))
        return True

    async def main():
        server, base, _ = await serve(handler)
        async with server, HttpClient(max_body=1 << 20) as client:
            with pytest.raises(HttpError, match="body too large"):
                await client.get(f"{base}/")

    run(main())


def test_timeout_and_refused():
    async def handler(line, w):
        return True                       # never answers

    async def main():
        server, base, _ = await serve(handler)
        async with server, HttpClient(timeout=0.2) as client:
            with pytest.raises(HttpError, match=r"no complete answer within 0\.2 s"):
                await client.get(f"{base}/")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        async with HttpClient(timeout=2) as client:
            with pytest.raises(HttpError, match="connection failed"):
                await client.get(f"http://127.0.0.1:{port}/")
            with pytest.raises(HttpError, match="not an http"):
                await client.get("ftp://127.0.0.1/")
        with pytest.raises(HttpError, match="closed"):
            await client.get(f"{base}/")

    run(main())


def test_https_with_a_local_ca_and_the_default_context_refusing_it(tmp_path):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def on_conn(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer(200, b"secure"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/v3/depth"
        async with server:
            async with HttpClient(timeout=5, ssl_context=client_ctx) as client:
                assert (await client.get(url)).body == b"secure"
                assert (await client.get(url)).body == b"secure"
                assert client.connects == 1
            async with HttpClient(timeout=5) as client:
                with pytest.raises(HttpError, match="connection failed") as info:
                    await client.get(url)
                assert "certificate" in str(info.value).lower()

    run(main())
