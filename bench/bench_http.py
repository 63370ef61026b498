"""REST snapshot clients on loopback, and the live recorder's cost per record.

``python bench/bench_http.py`` prints the figures (``--fetches N``, ``--gzip``);
``python -m pytest bench/bench_http.py`` runs a small smoke pass that checks
every client got the exact body. Nothing asserts a timing.

A server in a **separate process** (so it does not share the GIL) serves a
Binance spot depth snapshot of real size: 5,000 levels per side, about 250 KB
of JSON, with ``Content-Length`` and keep-alive (``--gzip``: gzip-encoded, as
``api.binance.com`` answers with ``Accept-Encoding: gzip``). On the client's
event loop a *reader* task stands in for a websocket reader: it asks to wake
every millisecond and records how late it woke. Three clients fetch the
snapshot back to back while it runs:

* ``fastbook`` — :class:`fastbook.live._http.HttpClient` (asyncio streams);
* ``aiohttp`` — one ``aiohttp.ClientSession``;
* ``thread`` — ``http.client`` keep-alive connection in ``asyncio.to_thread``.

Figures per client: GET latency p50/p99, CPU per GET (process time, the
reader's share included, the server's not), and the reader's p99 and max
lateness; the baseline is the reader's lateness with no fetch running,
measured in the same run, and each client's ratio to aiohttp is shown.

The recorder pass times ``Recorder.received()`` per 800-byte depth message:
in the caller (zstd and none) and threaded (zstd), with the worst single call.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import json
import multiprocessing
import random
import statistics
import tempfile
import time
from typing import Any


def snapshot_body(levels: int = 5000, seed: int = 7) -> bytes:
    """A Binance ``/api/v3/depth?limit=5000`` answer: 8-decimal strings, sorted, not crossed."""
    rnd = random.Random(seed)
    mid = 65000.0
    bids = [[f"{mid - 0.01 * (i + 1):.8f}", f"{rnd.uniform(0.0001, 5):.8f}"] for i in range(levels)]
    asks = [[f"{mid + 0.01 * (i + 1):.8f}", f"{rnd.uniform(0.0001, 5):.8f}"] for i in range(levels)]
    return json.dumps({"lastUpdateId": 73958403128, "bids": bids, "asks": asks},
                      separators=(",", ":")).encode()


def _serve(port_q: Any, body: bytes, gz: bool) -> None:
    payload = gzip.compress(body, 6) if gz else body
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            f"{len(payload)}\r\nX-MBX-USED-WEIGHT-1M: 250\r\n"
            + ("Content-Encoding: gzip\r\n" if gz else "") + "\r\n").encode()

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(head + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await asyncio.sleep(3600)

    asyncio.run(main())


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _reader(stop: asyncio.Event, late: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + 0.001
        await asyncio.sleep(0.001)
        late.append(max(0.0, loop.time() - due))


async def _with_reader(work: Any) -> tuple[list[float], Any]:
    stop = asyncio.Event()
    late: list[float] = []
    task = asyncio.create_task(_reader(stop, late))
    await asyncio.sleep(0.01)
    late.clear()
    try:
        result = await work()
    finally:
        stop.set()
        await task
    return late, result


async def _fastbook(url: str, n: int, body: bytes) -> list[float]:
    from fastbook.live._http import HttpClient

    out = []
    async with HttpClient(timeout=30) as client:
        for _ in range(n):
            r = await client.get(url)
            assert r.status == 200 and r.body == body
            out.append(r.elapsed_ns / 1e6)
    return out


async def _aiohttp(url: str, n: int, body: bytes) -> list[float]:
    import aiohttp

    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            t = time.perf_counter()
            async with session.get(url) as r:
                data = await r.read()
            assert r.status == 200 and data == body
            out.append((time.perf_counter() - t) * 1e3)
    return out


async def _thread(url: str, n: int, body: bytes) -> list[float]:
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def one() -> bytes:
        conn.request("GET", "/api/v3/depth?symbol=BTCUSDT&limit=5000",
                     headers={"Accept-Encoding": "gzip"})
        r = conn.getresponse()
        data = r.read()
        if r.getheader("content-encoding") == "gzip":
            data = gzip.decompress(data)
        return data

    out = []
    for _ in range(n):
        t = time.perf_counter()
        data = await asyncio.to_thread(one)
        assert data == body
        out.append((time.perf_counter() - t) * 1e3)
    conn.close()
    return out


CLIENTS = {"fastbook": _fastbook, "aiohttp": _aiohttp, "thread": _thread}
try:
    import aiohttp  # noqa: F401
except ImportError:                 # the comparison needs it; fastbook does not
    del CLIENTS["aiohttp"]


def run_http(fetches: int, gz: bool, levels: int = 5000) -> dict[str, dict[str, float]]:
    """Figures per client (and the idle reader), all measured in this call."""
    body = snapshot_body(levels)
    ctx = multiprocessing.get_context("spawn")
    port_q = ctx.Queue()
    server = ctx.Process(target=_serve, args=(port_q, body, gz), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{port_q.get(timeout=30)}/api/v3/depth?symbol=BTCUSDT&limit=5000"
        out: dict[str, dict[str, float]] = {}

        async def idle() -> None:
            await asyncio.sleep(0.001 * fetches * 3)

        late, _ = asyncio.run(_with_reader(idle))
        out["idle"] = {"late_p99_ms": _pct(late, 0.99) * 1e3, "late_max_ms": max(late) * 1e3}
        for name, fn in CLIENTS.items():
            async def work(fn: Any = fn) -> tuple[float, list[float], list[float]]:
                await fn(url, 2, body)      # warm-up, unmeasured: imports, first connect
                cpu = time.process_time()
                late, ms = await _with_reader(lambda: fn(url, fetches, body))
                return time.process_time() - cpu, late, ms

            cpu, late, ms = asyncio.run(work())
            out[name] = {"p50_ms": statistics.median(ms), "p99_ms": _pct(ms, 0.99),
                         "cpu_ms_per_get": cpu * 1e3 / fetches,
                         "late_p99_ms": _pct(late, 0.99) * 1e3, "late_max_ms": max(late) * 1e3,
                         "reader_wakes": float(len(late))}
        out["body"] = {"bytes": float(len(body))}
        return out
    finally:
        server.kill()
        server.join(5)


def run_recorder(records: int = 50_000) -> dict[str, dict[str, float]]:
    """ns per ``Recorder.received()`` call, mean and worst, three ways."""
    from fastbook.live._recorder import Recorder, read_recording

    msg = (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
           b'"U":1,"u":2,"b":[' + b",".join([b'["65000.01000000","0.12345678"]'] * 10)
           + b'],"a":[' + b",".join([b'["65000.02000000","0.12345678"]'] * 10) + b"]}}")
    out = {}
    for name, kw in {"sync zstd": {"compression": "zstd", "threaded": False},
                     "sync none": {"compression": "none", "threaded": False},
                     "thread zstd": {"compression": "zstd", "threaded": True}}.items():
        with tempfile.TemporaryDirectory() as d:
            rec = Recorder(d, max_bytes=8 << 20, **kw)  # type: ignore[arg-type]
            worst = 0
            t0 = time.perf_counter_ns()
            for i in range(records):
                t = time.perf_counter_ns()
                rec.received(1, msg, recv_ns=i + 1)
                worst = max(worst, time.perf_counter_ns() - t)
            total = time.perf_counter_ns() - t0
            rec.close()
            st = rec.stats()
            assert st["dropped"] == 0 and sum(1 for _ in read_recording(d)) == records
            out[name] = {"ns_per_call": total / records, "worst_call_us": worst / 1e3,
                         "parts": st["parts"]}
    return out


def report(http_figs: dict[str, dict[str, float]], rec_figs: dict[str, dict[str, float]],
           gz: bool) -> str:
    lines = [f"snapshot body {http_figs['body']['bytes'] / 1e3:.0f} KB "
             f"({'gzip' if gz else 'identity'})",
             f"idle reader: lateness p99 {http_figs['idle']['late_p99_ms']:.2f} ms, "
             f"max {http_figs['idle']['late_max_ms']:.2f} ms (baseline)",
             "client    GET p50 ms  p99 ms  CPU ms/GET  reader late p99 ms  max ms  "
             "max vs aiohttp"]
    base = http_figs.get("aiohttp", http_figs["thread"])["late_max_ms"]
    for name in CLIENTS:
        f = http_figs[name]
        lines.append(f"{name:9} {f['p50_ms']:10.2f} {f['p99_ms']:7.2f} "
                     f"{f['cpu_ms_per_get']:11.2f} {f['late_p99_ms']:19.2f} "
                     f"{f['late_max_ms']:7.2f} {f['late_max_ms'] / base:8.2f}x")
    lines.append("(reader wakes: " + ", ".join(
        f"{n} {http_figs[n]['reader_wakes']:.0f}" for n in CLIENTS) + ")")
    lines.append("recorder    ns/received()  worst call us  parts")
    for name, f in rec_figs.items():
        lines.append(f"{name:11} {f['ns_per_call']:14.0f} {f['worst_call_us']:14.0f} "
                     f"{f['parts']:6.0f}")
    return "\n".join(lines)


def test_smoke() -> None:
    """Every client gets the exact body; the recorder keeps every record."""
    figs = run_http(3, gz=True, levels=200)
    assert set(figs) == {"idle", "body", *CLIENTS}
    print(report(figs, run_recorder(2000), gz=True))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fetches", type=int, default=1000)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--records", type=int, default=50_000)
    args = ap.parse_args()
    print(report(run_http(args.fetches, args.gzip), run_recorder(args.records), args.gzip))
