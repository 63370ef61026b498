"""The quote server under load on loopback: N clients x M instruments, WebSocket and gRPC.

``python bench/server_load.py [--clients 100] [--instruments 10] [--rate 2000]
[--seconds 5] [--workers 1] [--protocols ws,grpc] [--json]``

The server (:class:`fastbook.server.Server`, no source: this script is its
writer) runs in this process on one event loop and publishes ``--rate`` book
changes per second spread over the instruments (each changes the best bid's
size of a 12-level book), every change stamped at publish (``publish_ns``).
The clients run in ``--workers`` other processes, each on one loop; every
client subscribes to every instrument and decodes each message (``json.loads``
for WebSocket, the protobuf ``Quote`` parse for gRPC), taking
``time.time_ns() - publish_ns`` as the update-to-client latency (one machine,
one clock).

For each protocol two phases run: the baseline, ONE client at the same rate,
then ``--clients`` clients; the report gives p50/p99/p999 latency, messages
delivered per second in total, messages offered (publishes x subscribers),
conflated (replaced in a client's latest-value slot before it was sent), and
the ratios of the loaded phase to the baseline. ``ws`` is the server's default
WebSocket path (frames built once, a batch per write); ``ws-send`` the same
server through websockets' own ``send()`` per message, its baseline; ``ws-picows`` the
``ws`` server with the clients on picows instead of websockets (the same decode and
timing: it tells the client library's share of the cost), and ``ws-stamps`` picows
clients that read only each message's publish stamp (what delivery costs without the
client's JSON decode). Bounded in time: each phase
runs ``--seconds`` and every wait has a timeout. Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

# --- client worker (a separate process) --------------------------------------------------


RCVBUF = int(os.environ.get("FB_BENCH_RCVBUF", "0"))


async def _ws_client(port: int, names: list[str], lat: list[int], counts: list[int]) -> None:
    import socket

    from websockets.asyncio.client import connect

    sock = None
    if RCVBUF:          # a latency-minded client: a small window, so the server conflates
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=1 << 22,
                       sock=sock, max_queue=4 if RCVBUF else 16) as ws:
        await ws.send(json.dumps({"op": "subscribe", "instruments": names}))
        loads, now, append = json.loads, time.time_ns, lat.append
        async for raw in ws:
            q = loads(raw)
            append(now() - q["publish_ns"])
            counts[0] += 1


async def _picows_client(port: int, names: list[str], lat: list[int],
                         counts: list[int], decode: bool = True) -> None:
    """The same WebSocket client on picows (Cython framing): only the library differs,
    every message is still ``json.loads``-decoded and timed."""
    import picows

    text = picows.WSMsgType.TEXT
    loads, now, append = json.loads, time.time_ns, lat.append
    key = b'"publish_ns":'

    class Listener(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is text and frame.fin:
                q = loads(frame.get_payload_as_bytes())
                append(now() - q["publish_ns"])
                counts[0] += 1

    class Stamps(picows.WSListener):
        """Reads only the publish stamp of each message: what delivery costs without the
        client's JSON decode."""

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is text and frame.fin:
                b = frame.get_payload_as_bytes()
                i = b.find(key) + len(key)
                append(now() - int(b[i:b.find(b",", i)]))
                counts[0] += 1

    async def small_window(_url: Any) -> Any:
        import socket

        sock = socket.socket()          # the receive window set before connecting, as above
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return sock

    tr, _ = await picows.ws_connect(Listener if decode else Stamps, f"ws://127.0.0.1:{port}",
                                    max_frame_size=1 << 22,
                                    socket_factory=small_window if RCVBUF else None)
    tr.send(text, json.dumps({"op": "subscribe", "instruments": names}).encode())
    try:
        await tr.wait_disconnected()
    finally:
        tr.disconnect()


async def _grpc_client(port: int, names: list[str], lat: list[int], counts: list[int]) -> None:
    import grpc.aio

    from fastbook.server._proto import SERVICE, messages

    m = messages()
    parse, now, append = m["Quote"].FromString, time.time_ns, lat.append
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_stream(f"/{SERVICE}/Subscribe",
                               request_serializer=lambda r: r.SerializeToString(),
                               response_deserializer=None)(
            m["SubscribeRequest"](instruments=names))
        async for raw in call:
            q = parse(raw)
            append(now() - q.publish_ns)
            counts[0] += 1


async def _worker(protocol: str, port: int, n: int, names: list[str], out: str) -> None:
    lat: list[int] = []
    counts = [0]
    client = {"ws": _ws_client, "ws-picows": _picows_client, "grpc": _grpc_client,
              "ws-stamps": functools.partial(_picows_client, decode=False)}[protocol]
    tasks = [asyncio.get_running_loop().create_task(client(port, names, lat, counts))
             for _ in range(n)]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    line = await asyncio.wait_for(reader.readline(), 120)       # "go": measure from here
    lat.clear()
    counts[0] = 0
    line = await asyncio.wait_for(reader.readline(), 600)       # "stop"
    del line
    arr = np.asarray(lat, dtype=np.int64)
    np.save(out, arr)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"received": int(counts[0]), "errors": sum(
        1 for t in tasks if t.done() and not t.cancelled() and t.exception() is not None)}),
        flush=True)


# --- server side --------------------------------------------------------------------------


def _books(n: int) -> list[Any]:
    import fastbook as fb

    books = []
    for k in range(n):
        b = fb.Book(price_decimals=2, qty_decimals=3)
        for i in range(12):
            b.set(fb.BID, 100_000 + 10 * k - i, 1_000 + i)
            b.set(fb.ASK, 100_001 + 10 * k + i, 2_000 + i)
        books.append(b)
    return books


async def _publisher(srv: Any, books: list[Any], rate: float, seconds: float) -> int:
    """Publish ``rate`` changes/s round-robin for ``seconds``; the number published."""
    import fastbook as fb

    n = len(books)
    done = 0
    start = time.monotonic()
    i = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            return done
        due = int(elapsed * rate) + 1
        while done < due:
            b = books[i % n]
            b.set(fb.BID, b.best_bid()[0], 1 + done)
            srv.publish(i % n, b, "live")
            i += 1
            done += 1
        await asyncio.sleep(0.0005)


async def _phase(protocol: str, clients: int, workers: int, names: list[str], rate: float,
                 seconds: float, tmp: str) -> dict[str, Any]:
    from fastbook.server import Server

    ws = protocol.startswith("ws")
    srv = Server(None, names, ws_port=0 if ws else None,
                 grpc_port=0 if protocol == "grpc" else None,
                 ws_options={"prebuilt_frames": protocol != "ws-send"})
    client = (protocol if protocol in ("ws-picows", "ws-stamps") else "ws") if ws else protocol
    books = _books(len(names))
    async with srv:
        for slot, b in enumerate(books):
            srv.publish(slot, b)
        port = srv.ws_port if ws else srv.grpc_port
        per = [clients // workers + (1 if w < clients % workers else 0) for w in range(workers)]
        procs = []
        for w, n in enumerate(p for p in per if p):
            out = os.path.join(tmp, f"{protocol}-{clients}-{w}.npy")
            procs.append((subprocess.Popen(
                [sys.executable, __file__, "--worker", client, str(port), str(n),
                 ",".join(names), out], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True), out))
        loop = asyncio.get_running_loop()
        for p, _ in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(loop.run_in_executor(None, p.stdout.readline), 120)
            if line.strip() != "ready":
                raise RuntimeError(f"client worker did not start: {line!r}")
        for _ in range(1000):                   # every client subscribed
            if len(srv.hub.subscribers) >= clients:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        before = srv.stats()
        for p, _ in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        published = await _publisher(srv, books, rate, seconds)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        await asyncio.sleep(0.2)                # let the last sends land
        after = srv.stats()
        for p, _ in procs:
            assert p.stdin is not None
            p.stdin.write("stop\n")
            p.stdin.flush()
        results = []
        for p, _out in procs:
            stdout, _ = await loop.run_in_executor(None, lambda p=p: p.communicate(timeout=120))
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        lat = np.concatenate([np.load(out) for _, out in procs]) if procs else np.zeros(0)
    received = sum(r["received"] for r in results)
    pct = (np.percentile(lat, [50, 99, 99.9]) / 1e3).round(1).tolist() if len(lat) else [0] * 3
    return {"protocol": protocol, "clients": clients, "instruments": len(names),
            "rate": rate, "seconds": round(wall, 2), "published": published,
            "published_per_s": round(published / wall),
            "offered": after["offered"] - before["offered"],
            "received": received, "received_per_s": round(received / wall),
            "conflated": after["conflated"] - before["conflated"],
            "p50_us": pct[0], "p99_us": pct[1], "p999_us": pct[2],
            "max_us": round(float(lat.max()) / 1e3, 1) if len(lat) else 0.0,
            "server_cpu_s": round(cpu, 2),
            "client_errors": sum(r["errors"] for r in results)}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


async def _main(args: argparse.Namespace) -> list[dict[str, Any]]:
    names = [f"bench:I{k}" for k in range(args.instruments)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in args.protocols.split(","):
            base = await _phase(protocol, 1, 1, names, args.rate, args.seconds, tmp)
            load = await _phase(protocol, args.clients, args.workers, names, args.rate,
                                args.seconds, tmp)
            load["vs_one_client"] = {
                "p99": _ratio(load["p99_us"], base["p99_us"]),
                "received_per_s": _ratio(load["received_per_s"], base["received_per_s"])}
            rows += [base, load]
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'proto':<7} {'clients':>7} {'instr':>5} {'pub/s':>7} {'offered':>9} "
            f"{'recv/s':>8} {'conflated':>9} {'p50 us':>8} {'p99 us':>9} {'p999 us':>9} "
            f"{'cpu s':>6}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['protocol']:<7} {r['clients']:>7} {r['instruments']:>5} "
                     f"{r['published_per_s']:>7} {r['offered']:>9} {r['received_per_s']:>8} "
                     f"{r['conflated']:>9} {r['p50_us']:>8} {r['p99_us']:>9} "
                     f"{r['p999_us']:>9} {r['server_cpu_s']:>6}")
        if "vs_one_client" in r:
            v = r["vs_one_client"]
            lines.append(f"      vs 1 client: p99 x{v['p99']}, delivered/s x{v['received_per_s']}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        protocol, port, n, names, out = sys.argv[2:7]
        asyncio.run(_worker(protocol, int(port), int(n), names.split(","), out))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--instruments", type=int, default=10)
    p.add_argument("--rate", type=float, default=2000.0,
                   help="book changes published per second, over all instruments")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=1, help="client processes")
    p.add_argument("--protocols", default="ws,ws-send,grpc",
                   help="ws (prebuilt frames), ws-send (websockets' send(), the baseline "
                        "of the frame path), ws-picows (the ws server, clients on picows: "
                        "fastbook-lob[fast]), ws-stamps (picows clients that read only each "
                        "message's publish stamp, no JSON decode), grpc")
    p.add_argument("--rcvbuf", type=int, default=0,
                   help="WebSocket clients' SO_RCVBUF in bytes (0: the OS default, which "
                        "autotunes to megabytes: a slow client then queues instead of being "
                        "conflated)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    os.environ["FB_BENCH_RCVBUF"] = str(args.rcvbuf)
    rows = asyncio.run(asyncio.wait_for(_main(args), 900))
    print(json.dumps(rows, indent=1) if args.json else _table(rows))


if __name__ == "__main__":
    main()
