"""Quotes streamed by real servers on 127.0.0.1 equal the books they were published from.

The servers replay a real Coinbase Exchange capture (tests/data/l2); the oracle
is the codec's own book after each message, computed without the server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastbook import format_decimal
from tests.server.conftest import COINBASE, NAMES, SYMBOLS, oracle, run

# "ws-send": the WebSocket endpoint through websockets' own send() instead of prebuilt frames
PROTOCOLS = ["ws", "ws-send", "grpc"]


def _needs(protocol: str) -> None:
    if protocol == "grpc":
        pytest.importorskip("grpc")
        pytest.importorskip("google.protobuf")


def _entry(q: Any) -> tuple[str, list[list[int]], list[list[int]]]:
    return (q.state, [list(x) for x in q.bids], [list(x) for x in q.asks])


def _is_subsequence(items: list[Any], of: list[Any]) -> bool:
    it = iter(of)
    return all(any(x == y for y in it) for x in items)


async def _serve_and_collect(protocol: str, speed: float) -> tuple[Any, dict[str, list[Any]]]:
    from fastbook.server import Replay, Server
    from fastbook.server.client import connect

    srv = Server(Replay(COINBASE, speed=speed), NAMES, ws_port=0,
                 grpc_port=0 if protocol == "grpc" else None,
                 ws_options={"prebuilt_frames": protocol != "ws-send"})
    got: dict[str, list[Any]] = {n: [] for n in NAMES}
    async with srv:
        port = srv.grpc_port if protocol == "grpc" else srv.ws_port
        async with connect(f"127.0.0.1:{port}", grpc=protocol == "grpc") as client:
            async def read() -> None:
                async for q in client.subscribe(NAMES, decimals=True):
                    got[q.instrument].append(q)

            reader = asyncio.get_running_loop().create_task(read())
            await srv.wait(20)
            # every client ends on the last version of each book
            for _ in range(2000):
                if all(got[n] and got[n][-1].seq == srv.hub.latest[i].seq
                       for i, n in enumerate(NAMES)):
                    break
                await asyncio.sleep(0.005)
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
        return srv, got


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_streamed_top10_equals_the_book_at_each_version(protocol: str) -> None:
    _needs(protocol)
    srv, got = run(_serve_and_collect(protocol, speed=0))
    expected = {s: oracle(s) for s in SYMBOLS}
    # one publish per change of state or top 10, no more, no fewer
    assert srv.hub.publishes == sum(len(e) for e in expected.values())
    for symbol, name in zip(SYMBOLS, NAMES, strict=True):
        quotes = got[name]
        assert len(quotes) > 10, name
        seqs = [q.seq for q in quotes]
        assert seqs == sorted(set(seqs)), f"{name}: seq not strictly increasing"
        entries = [_entry(q) for q in quotes]
        assert _is_subsequence(entries, expected[symbol]), name
        assert entries[-1] == expected[symbol][-1]
        last = quotes[-1]
        assert (last.price_scale, last.qty_scale) == (8, 8)
        assert last.spread == last.asks[0][0] - last.bids[0][0]
        assert last.bids_text == [(format_decimal(p, 8), format_decimal(q, 8))
                                  for p, q in last.bids]
        assert last.spread_text == format_decimal(last.spread, 8)
    st = srv.stats()
    assert st["delivered"] == sum(len(v) for v in got.values())
    assert st["source"]["done"] and "error" not in st


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_snapshot_is_the_latest_version(protocol: str) -> None:
    _needs(protocol)
    from fastbook.server import Replay, Server
    from fastbook.server.client import connect

    async def main() -> None:
        srv = Server(Replay(COINBASE, speed=0), NAMES, ws_port=0,
                     grpc_port=0 if protocol == "grpc" else None)
        async with srv:
            await srv.wait(20)
            port = srv.grpc_port if protocol == "grpc" else srv.ws_port
            async with connect(f"127.0.0.1:{port}", grpc=protocol == "grpc") as c:
                assert await c.instruments() == NAMES
                for i, (symbol, name) in enumerate(zip(SYMBOLS, NAMES, strict=True)):
                    q = await c.snapshot(name, decimals=True)
                    assert q.seq == srv.hub.latest[i].seq == srv.hub.board.version(i)
                    snap = await asyncio.to_thread(srv.read, name)     # another thread
                    assert (snap.version, snap.bids.tolist(), snap.asks.tolist()) == \
                        (q.seq, [list(x) for x in q.bids], [list(x) for x in q.asks])
                    assert _entry(q) == oracle(symbol)[-1]
                    assert q.state == "live" and q.asks_text[0][0] == format_decimal(
                        q.asks[0][0], 8)

    run(main())


def test_non_live_books_are_published_without_levels() -> None:
    import fastbook as fb
    from fastbook.server import Hub

    hub = Hub(["x:A"])
    book = fb.Book(price_decimals=2, qty_decimals=0)
    book.set(fb.BID, 100, 5)
    book.set(fb.ASK, 101, 7)
    live = hub.publish(0, book, "live", ts_ns=11)
    assert (live.state, live.bids, live.asks, live.spread) == (1, [[100, 5]], [[101, 7]], 1)
    gone = hub.publish(0, book, "resyncing")
    assert (gone.bids, gone.asks, gone.spread, gone.seq > live.seq) == ([], [], None, True)
    assert b'"state":"resyncing"' in gone.json() and b'"bids":[]' in gone.json()
    with pytest.raises(ValueError, match="published with its levels"):
        hub.publish_state(0, "live")
    with pytest.raises(ValueError, match="state 'bogus'"):
        hub.publish(0, book, "bogus")


def test_reader_threads_see_only_published_versions_while_the_server_streams() -> None:
    """Threads reading the board during a replay see whole versions, in order, never a mix."""
    import threading
    import time

    from fastbook.server import Replay, Server

    expected = {name: oracle(s) for s, name in zip(SYMBOLS, NAMES, strict=True)}
    seen: dict[str, dict[int, Any]] = {n: {} for n in NAMES}
    stop = threading.Event()

    def reader(srv: Any) -> None:
        while not stop.is_set():
            time.sleep(0.0002)          # leave the GIL to the writer now and then (twins)
            for name in NAMES:
                snap = srv.read(name)
                seen[name].setdefault(snap.version, ("live" if snap.state == 1 else "syncing",
                                                     snap.bids.tolist(), snap.asks.tolist()))

    async def main() -> None:
        srv = Server(Replay(COINBASE, speed=0), NAMES, ws_port=0)
        async with srv:
            threads = [threading.Thread(target=reader, args=(srv,)) for _ in range(2)]
            for t in threads:
                t.start()
            try:
                await srv.wait(60)
            finally:
                stop.set()
                for t in threads:
                    t.join(10)

    run(main(), timeout=90)
    for name in NAMES:
        versions = sorted(v for v in seen[name] if v)
        assert len(versions) > 1, name
        entries = [seen[name][v] for v in versions]
        assert _is_subsequence(entries, expected[name]), name
