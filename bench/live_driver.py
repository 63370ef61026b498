"""The live driver on loopback: throughput, CPU per message and latency, against raw sockets.

``python bench/live_driver.py [--messages N] [--rate R] [--transport websockets|picows]``

A push server in its own process sends one Bybit ``orderbook.50`` snapshot
and then N 20-level deltas (10 bids, 10 asks; consecutive ``u``; seeded,
never crossed), as fast as the socket takes them or paced at ``--rate``
messages/s for the latency run. For the throughput runs the server writes
pre-framed websocket frames (unmasked, as a server sends them) to the socket
in 256 KB chunks, so it is never what is measured (a Python server that frames
every message itself tops out near 200-280 k messages/s here, below what a
fast client takes). The client is ``fastbook.live`` with the chosen
transport. The baseline, in the same run and against the same server, is the
transport alone: a client of the same library that receives and counts the
frames and does nothing else. The driver's figures are reported beside it
(msgs/s, CPU µs per message, and the ratio).

Latency (paced run): receive -> applied and applied -> consumer, from the
driver's own histograms (``feed.stats()``), p50/p99/p999.
Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import time
from typing import Any


def frames(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    bids = {50_000.0 - i * 0.5: rng.randint(1, 5000) / 1000 for i in range(50)}
    asks = {50_000.5 + i * 0.5: rng.randint(1, 5000) / 1000 for i in range(50)}

    def lv(d: dict[float, float]) -> list[list[str]]:
        return [[f"{p:.2f}", f"{q:.3f}"] for p, q in d.items()]

    out = [json.dumps({"topic": "orderbook.50.BTCUSDT", "type": "snapshot", "ts": 1_700_000_000_000,
                       "data": {"s": "BTCUSDT", "b": lv(bids), "a": lv(asks), "u": 100,
                                "seq": 1}, "cts": 1_700_000_000_000})]
    bp, ap = sorted(bids), sorted(asks)
    for i in range(n):
        b = {p: rng.randint(0, 5000) / 1000 for p in rng.sample(bp, 10)}
        a = {p: rng.randint(0, 5000) / 1000 for p in rng.sample(ap, 10)}
        ts = 1_700_000_000_000 + i
        out.append(json.dumps({"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": ts,
                               "data": {"s": "BTCUSDT", "b": lv(b), "a": lv(a), "u": 101 + i,
                                        "seq": 2 + i}, "cts": ts}))
    return out


def _frame(payload: bytes) -> bytes:
    """One unmasked websocket text frame (server to client, RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def serve(port_q: Any, n: int, rate: float, seed: int) -> None:
    import picows

    msgs = [f.encode() for f in frames(n, seed)]

    class Listener(picows.WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT and not getattr(self, "go", False):
                self.go = True
                asyncio.get_running_loop().create_task(push(transport))

    async def push(transport: Any) -> None:
        text = picows.WSMsgType.TEXT
        if rate <= 0:
            raw = transport.underlying_transport
            blob = b"".join(_frame(m) for m in msgs)
            view = memoryview(blob)
            for i in range(0, len(blob), 1 << 18):
                raw.write(view[i:i + (1 << 18)])
                while raw.get_write_buffer_size() > 4 << 20:
                    await asyncio.sleep(0.0005)
        else:
            start = time.perf_counter()
            for i, m in enumerate(msgs):
                due = start + i / rate
                while time.perf_counter() < due:
                    await asyncio.sleep(0)
                transport.send(text, m)

    async def main() -> None:
        server = await picows.ws_create_server(lambda _r: Listener(), "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await asyncio.sleep(3600)

    asyncio.run(main())


async def raw_client(url: str, n: int, transport: str) -> tuple[float, float]:
    """The baseline: receive and count ``n + 1`` frames with the transport alone."""
    from fastbook.live._transport import connect

    done = asyncio.get_running_loop().create_future()
    count = [0]

    def on_frame(payload: Any, recv_ns: int) -> None:
        count[0] += 1
        if count[0] == n + 1 and not done.done():
            done.set_result(None)

    tr = await connect(url, on_frame, lambda r: None, backend=transport)
    t0, c0 = time.perf_counter(), time.process_time()
    tr.send('{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}')
    await asyncio.wait_for(done, 120)
    t1, c1 = time.perf_counter(), time.process_time()
    await tr.close()
    return t1 - t0, c1 - c0


async def driver_client(url: str, n: int, transport: str) -> tuple[float, float, dict[str, Any]]:
    import fastbook as fb

    feed = fb.live(["bybit:BTCUSDT"], endpoints={"bybit": {"ws": url}}, transport=transport,
                   depth=50, queue=1 << 20)
    got = 0
    t0 = c0 = 0.0
    async with feed:
        async for note in feed:
            if note.kind != "update":
                continue
            if got == 0:
                t0, c0 = time.perf_counter(), time.process_time()
            got += 1
            if got == n + 1:
                break
        t1, c1 = time.perf_counter(), time.process_time()
        stats = feed.stats()["books"][("bybit", "BTCUSDT")]
    return t1 - t0, c1 - c0, stats


async def books_only_client(url: str, n: int, transport: str) -> tuple[float, float]:
    """The driver keeping the book with no per-message consumer (readers poll the book)."""
    import fastbook as fb

    feed = fb.live(["bybit:BTCUSDT"], endpoints={"bybit": {"ws": url}}, transport=transport,
                   depth=50)
    session = feed.session
    track = session.track("bybit", "BTCUSDT")
    deadline = time.monotonic() + 120
    async with feed:
        while not track.notices and time.monotonic() < deadline:
            await asyncio.sleep(0.0002)
        t0, c0 = time.perf_counter(), time.process_time()
        while track.notices < n + 1 and time.monotonic() < deadline:   # snapshot + n deltas
            await asyncio.sleep(0.001)
        t1, c1 = time.perf_counter(), time.process_time()
        if track.notices < n + 1:
            raise RuntimeError(f"only {track.notices} of {n + 1} messages applied in 120 s")
    return t1 - t0, c1 - c0


def start_server(n: int, rate: float, seed: int) -> tuple[Any, str]:
    q: Any = mp.Queue()
    p = mp.Process(target=serve, args=(q, n, rate, seed), daemon=True)
    p.start()
    return p, f"ws://127.0.0.1:{q.get(timeout=60)}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rate", type=float, default=10_000.0, help="paced run, messages/s")
    ap.add_argument("--latency-messages", type=int, default=50_000)
    ap.add_argument("--transport", default="websockets", choices=("websockets", "picows"))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    n = args.messages
    out: dict[str, Any] = {"transport": args.transport, "messages": n}

    p, url = start_server(n, 0, args.seed)
    raw_s, raw_cpu = asyncio.run(raw_client(url, n, args.transport))
    p.terminate()
    p, url = start_server(n, 0, args.seed)
    drv_s, drv_cpu, _ = asyncio.run(driver_client(url, n, args.transport))
    p.terminate()
    p, url = start_server(n, 0, args.seed)
    bo_s, bo_cpu = asyncio.run(books_only_client(url, n, args.transport))
    p.terminate()
    out["books_only_msgs_per_s"] = round(n / bo_s)
    out["books_only_cpu_us_per_msg"] = round(bo_cpu / n * 1e6, 2)
    out["raw_msgs_per_s"] = round(n / raw_s)
    out["driver_msgs_per_s"] = round(n / drv_s)
    out["raw_cpu_us_per_msg"] = round(raw_cpu / n * 1e6, 2)
    out["driver_cpu_us_per_msg"] = round(drv_cpu / n * 1e6, 2)
    out["driver_vs_raw"] = round(raw_s / drv_s, 3)

    m = args.latency_messages
    p, url = start_server(m, args.rate, args.seed)
    _, _, stats = asyncio.run(driver_client(url, m, args.transport))
    p.terminate()
    lat = stats["latency"]
    out["paced_rate"] = args.rate
    for kind in ("receive_to_applied", "applied_to_consumer"):
        d = lat[kind]
        out[kind + "_us"] = {k: round(d[k] / 1e3, 2) for k in ("p50", "p99", "p999", "max")}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
