"""Bad input and bad clients: clear close codes and status codes, no crash, bounded memory.

Real servers on 127.0.0.1, fed by the test's own publishes (the server's
``source=None`` mode), so the test decides how fast the books change.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

import fastbook as fb
from tests.server.conftest import run

NAMES = ["sim:A", "sim:B", "sim:C"]


def _book() -> Any:
    book = fb.Book(price_decimals=2, qty_decimals=3)
    for i in range(12):
        book.set(fb.BID, 10_000 - i, 1_000 + i)
        book.set(fb.ASK, 10_001 + i, 2_000 + i)
    return book


async def _publish(srv: Any, book: Any, n: int, every: int = 8) -> None:
    """``n`` versions spread over the three instruments, yielding to the loop now and then."""
    for i in range(n):
        book.set(fb.BID, 10_000, 1 + i)          # the best bid's size encodes the step
        srv.publish(i % 3, book, "live", ts_ns=i)
        if i % every == 0:
            await asyncio.sleep(0)


async def _publish_until(srv: Any, book: Any, done: asyncio.Event) -> None:
    """Versions over the three instruments, one a millisecond, until ``done`` is set."""
    i = 0
    while not done.is_set():
        book.set(fb.BID, 10_000, 1 + i)
        srv.publish(i % 3, book, "live", ts_ns=i)
        i += 1
        await asyncio.sleep(0.001)


# --- WebSocket ------------------------------------------------------------------------

WS_BAD = [
    (b"\x00\x01", 1003, "binary frames"),
    ("{not json", 1007, "not JSON"),
    ("[1, 2]", 1008, "JSON object"),
    ('{"op": "buy"}', 1008, "op 'buy'"),
    ('{"op": "subscribe", "instruments": []}', 1008, "non-empty list"),
    ('{"op": "subscribe", "instruments": "sim:A"}', 1008, "non-empty list"),
    ('{"op": "snapshot", "instrument": 5}', 1008, "a string"),
    ('{"op": "snapshot", "instrument": "sim:A", "decimals": "yes"}', 1008, "true or false"),
    ('{"op": "subscribe", "instruments": ["sim:A", "nope:X"]}', 4404,
     "unknown instrument 'nope:X'"),
    ('{"op": "snapshot", "instrument": "' + "x" * 300 + '"}', 4404, "unknown instrument"),
    ("[" * (70 << 10), 1009, ""),
]


@pytest.mark.parametrize(("request_", "code", "words"), WS_BAD,
                         ids=[f"{c}-{i}" for i, (_, c, _w) in enumerate(WS_BAD)])
def test_ws_bad_requests_close_with_a_code_and_reason(request_: Any, code: int,
                                                      words: str) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from fastbook.server import Server

    async def main() -> None:
        async with Server(None, NAMES, ws_port=0) as srv:
            srv.publish("sim:A", _book())
            async with connect(f"ws://127.0.0.1:{srv.ws_port}") as ws:
                await ws.send(request_)
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), 10)
                rcvd = info.value.rcvd
                assert rcvd is not None and rcvd.code == code
                assert words in rcvd.reason and len(rcvd.reason.encode()) <= 123
            # the server goes on: a good client is served
            async with connect(f"ws://127.0.0.1:{srv.ws_port}") as ws:
                await ws.send(json.dumps({"op": "snapshot", "instrument": "sim:A"}))
                q = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert q["bids"][0] == [10_000, 1_000]
            assert srv.ws.stats()["refused"] == {code: 1}
            assert not srv.hub.subscribers

    run(main())


@pytest.mark.parametrize("prebuilt", [True, False], ids=["frames", "send"])
def test_ws_client_that_never_reads_is_conflated_and_bounded(prebuilt: bool) -> None:
    """A stalled client keeps one version per instrument; the writer and others go on."""
    from websockets.asyncio.client import connect

    from fastbook.server import Server
    from fastbook.server.client import WsClient

    async def main() -> None:
        async with Server(None, NAMES, ws_port=0,
                          ws_options={"prebuilt_frames": prebuilt}) as srv:
            book = _book()
            srv.publish("sim:A", book)
            # max_queue=1: the client library stops reading the socket after one frame;
            # a small receive buffer keeps the kernel from holding megabytes for it
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", srv.ws_port))
            stuck = await connect(f"ws://127.0.0.1:{srv.ws_port}", max_queue=1, sock=sock)
            await stuck.send(json.dumps({"op": "subscribe", "instruments": NAMES}))
            async with WsClient(f"127.0.0.1:{srv.ws_port}") as good:
                seen: dict[str, int] = {}

                async def read() -> None:
                    async for q in good.subscribe(NAMES):
                        seen[q.instrument] = q.seq

                reader = asyncio.get_running_loop().create_task(read())
                await asyncio.sleep(0.2)
                n = 10_000
                await _publish(srv, book, n)
                for _ in range(4000):
                    if all(seen.get(name) == srv.hub.latest[i].seq
                           for i, name in enumerate(NAMES)):
                        break
                    await asyncio.sleep(0.005)
                reader.cancel()
                assert all(seen.get(name) == srv.hub.latest[i].seq
                           for i, name in enumerate(NAMES)), "the good client fell behind"
                subs = {s.name: s for s in srv.hub.subscribers}
                stalled = min(subs.values(), key=lambda s: s.delivered)
                assert len(stalled.pending) <= len(NAMES)
                assert stalled.conflated > n // 2
                # what waits for it on the server is bounded by the transport's write limit
                (conn,) = [c for c in srv.ws._server.connections
                           if c.transport.get_write_buffer_size() > 0] or [None]
                if conn is not None:
                    assert conn.transport.get_write_buffer_size() <= srv.ws.write_limit + 4096
            stuck.transport.abort()

    run(main(), timeout=60)


def test_ws_clients_that_vanish_mid_stream_leave_nothing_behind() -> None:
    from fastbook.server import Server
    from fastbook.server.client import WsClient

    async def main() -> None:
        async with Server(None, NAMES, ws_port=0) as srv:
            book = _book()
            srv.publish("sim:A", book)
            for _ in range(5):
                c = WsClient(f"127.0.0.1:{srv.ws_port}")
                await c.__aenter__()
                k = 0
                stream = c.subscribe(NAMES)
                done = asyncio.Event()              # (see _publish_until)
                pub = asyncio.get_running_loop().create_task(_publish_until(srv, book, done))
                async for _q in stream:
                    k += 1
                    if k == 5:
                        break
                c._ws.transport.abort()             # gone, no close frame
                done.set()
                await pub
            for _ in range(400):
                if not srv.hub.subscribers and srv.ws.open == 0:
                    break
                await asyncio.sleep(0.01)
            assert not srv.hub.subscribers and srv.ws.open == 0
            assert srv.hub.stats()["closed_clients"]["count"] == 5
            async with WsClient(f"127.0.0.1:{srv.ws_port}") as c:
                q = await c.snapshot("sim:A")
                assert q.seq == srv.hub.latest[0].seq

    run(main())


# --- gRPC -------------------------------------------------------------------------------

def _grpc() -> Any:
    pytest.importorskip("google.protobuf")
    return pytest.importorskip("grpc")


async def _raw_call(port: int, method: str, payload: bytes, streaming: bool) -> Any:
    """Call ``method`` with raw request bytes; the status code of the failure, or None."""
    grpc = _grpc()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        path = f"/fastbook.server.v1.Quotes/{method}"
        try:
            if streaming:
                call = ch.unary_stream(path)(payload, timeout=10)
                async for _ in call:
                    break
                call.cancel()
            else:
                await ch.unary_unary(path)(payload, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, exc.details()
    return None


def _msg(name: str, **fields: Any) -> bytes:
    from fastbook.server._proto import messages

    return bytes(messages()[name](**fields).SerializeToString())


GRPC_BAD = [
    ("Subscribe", b"\xff\xff\xff\xff", True, "INVALID_ARGUMENT", "malformed request"),
    ("Snapshot", b"\x0a\x05ab", False, "INVALID_ARGUMENT", "malformed request"),
    ("Subscribe", None, True, "INVALID_ARGUMENT", "at least one instrument"),
    ("Snapshot", None, False, "INVALID_ARGUMENT", "needs an instrument"),
    ("Subscribe", ("SubscribeRequest", {"instruments": ["sim:A", "nope:X"]}), True,
     "NOT_FOUND", "unknown instrument 'nope:X'"),
    ("Snapshot", ("SnapshotRequest", {"instrument": "nope:Y"}), False, "NOT_FOUND",
     "unknown instrument 'nope:Y'"),
]


@pytest.mark.parametrize(("method", "payload", "streaming", "code", "words"), GRPC_BAD,
                         ids=[f"{m}-{c}-{i}" for i, (m, _p, _s, c, _w) in enumerate(GRPC_BAD)])
def test_grpc_bad_requests_get_status_codes(method: str, payload: Any, streaming: bool,
                                            code: str, words: str) -> None:
    _grpc()
    from fastbook.server import Server
    from fastbook.server.client import GrpcClient

    if isinstance(payload, tuple):
        payload = _msg(payload[0], **payload[1])
    elif payload is None:
        payload = b""

    async def main() -> None:
        async with Server(None, NAMES, ws_port=None, grpc_port=0) as srv:
            srv.publish("sim:A", _book())
            got = await _raw_call(srv.grpc_port, method, payload, streaming)
            assert got is not None and got[0] == code and words in got[1]
            assert srv.grpc.stats()["refused"] == {code: 1}
            async with GrpcClient(f"127.0.0.1:{srv.grpc_port}") as c:
                assert (await c.snapshot("sim:A")).bids[0] == (10_000, 1_000)
            assert not srv.hub.subscribers

    run(main())


def test_grpc_stream_that_is_never_read_is_conflated_and_others_go_on() -> None:
    grpc = _grpc()
    from fastbook.server import Server
    from fastbook.server.client import GrpcClient

    async def main() -> None:
        async with Server(None, NAMES, ws_port=None, grpc_port=0) as srv:
            book = _book()
            srv.publish("sim:A", book)
            ch = grpc.aio.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
            stuck = ch.unary_stream("/fastbook.server.v1.Quotes/Subscribe")(
                _msg("SubscribeRequest", instruments=NAMES))
            await stuck.initial_metadata()          # the stream is open; never read
            async with GrpcClient(f"127.0.0.1:{srv.grpc_port}") as good:
                seen: dict[str, int] = {}

                async def read() -> None:
                    async for q in good.subscribe(NAMES):
                        seen[q.instrument] = q.seq

                reader = asyncio.get_running_loop().create_task(read())
                for _ in range(400):
                    if len(srv.hub.subscribers) == 2:
                        break
                    await asyncio.sleep(0.01)
                n = 20_000
                await _publish(srv, book, n, every=4)
                for _ in range(4000):
                    if all(seen.get(name) == srv.hub.latest[i].seq
                           for i, name in enumerate(NAMES)):
                        break
                    await asyncio.sleep(0.005)
                reader.cancel()
                assert all(seen.get(name) == srv.hub.latest[i].seq
                           for i, name in enumerate(NAMES)), "the good stream fell behind"
                stalled = min(srv.hub.subscribers, key=lambda s: s.delivered)
                assert len(stalled.pending) <= len(NAMES)
                assert stalled.conflated > n // 2
            stuck.cancel()
            await ch.close()
            for _ in range(400):
                if not srv.hub.subscribers:
                    break
                await asyncio.sleep(0.01)
            assert not srv.hub.subscribers and srv.grpc.open == 0

    run(main(), timeout=60)


def test_grpc_streams_cancelled_mid_stream_leave_nothing_behind() -> None:
    _grpc()
    from fastbook.server import Server
    from fastbook.server.client import GrpcClient

    async def main() -> None:
        async with Server(None, NAMES, ws_port=None, grpc_port=0) as srv:
            book = _book()
            srv.publish("sim:A", book)
            for _ in range(5):
                async with GrpcClient(f"127.0.0.1:{srv.grpc_port}") as c:
                    # publish until the client has read its five: a fixed number of
                    # publishes can all land before the stream is open (then it waits)
                    done = asyncio.Event()
                    pub = asyncio.get_running_loop().create_task(
                        _publish_until(srv, book, done))
                    k = 0
                    async for _q in c.subscribe(NAMES):
                        k += 1
                        if k == 5:
                            break
                    done.set()
                    await pub
            for _ in range(400):
                if not srv.hub.subscribers and srv.grpc.open == 0:
                    break
                await asyncio.sleep(0.01)
            assert not srv.hub.subscribers and srv.grpc.open == 0
            assert srv.hub.stats()["closed_clients"]["count"] == 5

    run(main())


def test_abandoned_clients_leave_no_memory_behind() -> None:
    """Hundreds of clients that subscribe and vanish: the server's heap comes back."""
    import gc
    import tracemalloc

    from websockets.asyncio.client import connect

    from fastbook.server import Server

    async def churn(srv: Any, book: Any, n: int) -> None:
        for _ in range(n):
            ws = await connect(f"ws://127.0.0.1:{srv.ws_port}", max_queue=1)
            await ws.send(json.dumps({"op": "subscribe", "instruments": NAMES}))
            await _publish(srv, book, 30)
            ws.transport.abort()
        for _ in range(500):
            if not srv.hub.subscribers and srv.ws.open == 0:
                return
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with Server(None, NAMES, ws_port=0) as srv:
            book = _book()
            srv.publish("sim:A", book)
            await churn(srv, book, 20)              # warm up caches and pools
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                await churn(srv, book, 200)
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            assert not srv.hub.subscribers and srv.ws.open == 0
            assert srv.hub.stats()["closed_clients"]["count"] == 220
            # a leak of one subscriber, connection or task per client would be > 2 KB each
            assert grown < 200 * 2048, grown

    run(main(), timeout=120)
