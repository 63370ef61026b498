"""The simulator's Binance and Bybit protocols, checked with a plain websockets client
and fastbook's own codecs: a client that syncs holds the truth; each fault is visible."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("websockets")

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fastbook.codecs.binance import BinanceCOINM, BinanceSpot, BinanceUSDM
from fastbook.codecs.bybit import Bybit
from fastbook.testing import ExchangeSimulator, book_equals_truth
from tests.testing.conftest import http_get

FEEDS = {"binance-spot": BinanceSpot, "binance-usdm": BinanceUSDM, "binance-coinm": BinanceCOINM}
TIMEOUT = 20


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


async def binance_client(sim: ExchangeSimulator, venue: str, symbols: list[str],
                         messages: int, feed: Any = None) -> Any:
    """Connect, sync every symbol through REST snapshots, read ``messages`` more frames."""
    feed = feed or FEEDS[venue](on_error="skip")
    streams = "/".join(f"{s.lower()}@depth@100ms" for s in symbols)
    url = f"{sim.endpoints[venue]['ws']}/stream?streams={streams}"
    async with connect(url) as ws:
        n = 0
        while n < messages or not all(feed.is_synced(s) for s in symbols):
            msg = await asyncio.wait_for(ws.recv(), 5)
            n += 1
            for notice in feed.feed(msg):
                if notice.kind == "request_snapshot":
                    rest = sim.endpoints[venue]["rest"]
                    status, _, body = await http_get(rest + notice.detail.split(" ", 1)[1])
                    assert status == 200
                    feed.snapshot(notice.symbol, body)
        sim.pause(venue)
        await sim.wait_idle()
        while True:
            try:
                msg = await asyncio.wait_for(ws.recv(), 0.3)
            except TimeoutError:
                break
            feed.feed(msg)
    return feed


@pytest.mark.parametrize("venue", list(FEEDS))
def test_binance_syncs_to_truth(venue: str) -> None:
    async def go() -> None:
        async with ExchangeSimulator({venue: ["BTCUSDT", "ETHUSDT"]}, rate=300, seed=3) as sim:
            feed = await binance_client(sim, venue, ["BTCUSDT", "ETHUSDT"], 200)
            for sym in ("BTCUSDT", "ETHUSDT"):
                assert feed.is_synced(sym)
                truth = sim.truth(venue, sym)
                assert len(truth["bids"]) > 50 and truth["bids"][0][0] < truth["asks"][0][0]
                assert book_equals_truth(feed.book(sym), truth)
            c = feed.counts()
            assert c["gaps"] == 0 and c["malformed"] == 0 and c["applied"] > 100
            st = sim.stats()[venue]
            assert st["rest_status"] == {200: 2}
            assert st["weight"] == (500 if venue == "binance-spot" else 40)
    run(go())


def test_binance_drop_gives_gap_and_resync_to_truth() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"binance-spot": ["BTCUSDT"]}, rate=500, seed=1) as sim:
            feed = BinanceSpot(on_error="skip")
            sim.inject("binance-spot", "drop", symbol="BTCUSDT", count=1)
            sim.inject("binance-spot", "drop", symbol="BTCUSDT", count=1)
            await asyncio.sleep(0)
            # the first two messages are dropped before we connect: inject after syncing
            feed = await binance_client(sim, "binance-spot", ["BTCUSDT"], 50, feed)
            sim.resume("binance-spot")
            sim.inject("binance-spot", "drop", symbol="BTCUSDT", count=1)
            feed = await binance_client(sim, "binance-spot", ["BTCUSDT"], 50, feed)
            assert feed.counts()["gaps"] >= 1 and feed.is_synced("BTCUSDT")
            assert book_equals_truth(feed.book("BTCUSDT"), sim.truth("binance-spot", "BTCUSDT"))
            assert [f.kind for f in sim.faults].count("drop") == 3
    run(go())


@pytest.mark.parametrize("kind,counter", [("corrupt", "malformed"), ("malformed", "malformed"),
                                          ("duplicate", "out_of_order"), ("reorder", "gaps")])
def test_binance_faults_seen_by_codec(kind: str, counter: str) -> None:
    async def go() -> None:
        async with ExchangeSimulator({"binance-usdm": ["BTCUSDT"]}, rate=500, seed=2) as sim:
            feed = BinanceUSDM(on_error="skip")
            feed = await binance_client(sim, "binance-usdm", ["BTCUSDT"], 20, feed)
            sim.resume("binance-usdm")
            sim.inject("binance-usdm", kind, symbol="BTCUSDT")
            feed = await binance_client(sim, "binance-usdm", ["BTCUSDT"], 40, feed)
            assert feed.counts()[counter] >= 1
            assert sim.faults[-1].kind == kind
    run(go())


def test_binance_rest_faults_and_weight_limit() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"binance-spot": ["BTCUSDT"]}, rate=50,
                                     rest_weight_limit=600) as sim:
            url = sim.endpoints["binance-spot"]["rest"] + "/api/v3/depth?symbol=BTCUSDT&limit=5000"
            s, h, body = await http_get(url)
            assert s == 200 and h["X-MBX-USED-WEIGHT-1M"] == "250"
            assert json.loads(body)["lastUpdateId"] > 0
            sim.rest_fault("binance-spot", "500")
            assert (await http_get(url))[0] == 500
            sim.rest_fault("binance-spot", "garbage")
            s, _, body = await http_get(url)
            assert s == 200
            with pytest.raises(ValueError):
                json.loads(body)
            assert (await http_get(url))[0] == 200           # 500 weight used
            s, h, _ = await http_get(url)                     # 750 > 600
            assert s == 429 and int(h["Retry-After"]) > 0
            s, h, _ = await http_get(url)                     # kept going: banned
            assert s == 418 and int(h["Retry-After"]) > 0
            assert sim.stats()["binance-spot"]["rest_status"] == {200: 3, 500: 1, 429: 1, 418: 1}
            kinds = [f.kind for f in sim.faults]
            assert kinds == ["rest_500", "rest_garbage", "rest_429", "rest_418"]
    run(go())


def test_binance_rest_429_fault_with_retry_after() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"binance-coinm": ["BTCUSD_PERP"]}, rate=50) as sim:
            url = (sim.endpoints["binance-coinm"]["rest"]
                   + "/dapi/v1/depth?symbol=BTCUSD_PERP&limit=1000")
            sim.rest_fault("binance-coinm", "429", retry_after=0.2)
            s, h, _ = await http_get(url)
            assert s == 429 and h["Retry-After"] == "1"
            await asyncio.sleep(0.3)
            assert (await http_get(url))[0] == 200
    run(go())


def test_disconnect_mid_message_and_shutdown_and_stall() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"binance-spot": ["BTCUSDT"]}, rate=200) as sim:
            url = sim.endpoints["binance-spot"]["ws"] + "/stream?streams=btcusdt@depth@100ms"
            async with connect(url) as ws:
                await ws.recv()
                sim.inject("binance-spot", "server_shutdown")
                for _ in range(50):
                    if json.loads(await ws.recv()).get("e") == "serverShutdown":
                        break
                else:
                    raise AssertionError("no serverShutdown event")
                sim.inject("binance-spot", "disconnect")
                with pytest.raises(ConnectionClosed) as err:
                    for _ in range(100):
                        await asyncio.wait_for(ws.recv(), 5)
                assert err.value.rcvd is None           # no close frame: aborted
            async with connect(url) as ws:
                await ws.recv()
                sim.inject("binance-spot", "stall")
                await sim.wait_idle()
                while True:
                    try:
                        await asyncio.wait_for(ws.recv(), 0.3)
                    except TimeoutError:
                        break
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.5)    # silence, socket open
                sim.resume("binance-spot")
                await asyncio.wait_for(ws.recv(), 5)
            assert [f.kind for f in sim.faults] == ["server_shutdown", "disconnect", "stall"]
    run(go())


def test_oversized_and_max_connection_age() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"binance-spot": ["BTCUSDT"]}, rate=200,
                                     max_connection_age=0.5) as sim:
            url = sim.endpoints["binance-spot"]["ws"] + "/stream?streams=btcusdt@depth@100ms"
            async with connect(url) as ws:
                sim.inject("binance-spot", "oversized")
                with pytest.raises(ConnectionClosed) as err:
                    for _ in range(1000):
                        await asyncio.wait_for(ws.recv(), 5)
                assert err.value.sent is not None and err.value.sent.code == 1009
            async with connect(url) as ws:
                with pytest.raises(ConnectionClosed) as err:
                    for _ in range(100000):
                        await asyncio.wait_for(ws.recv(), 5)
                assert err.value.rcvd is not None and err.value.rcvd.code == 1000
            assert "max_connection_age" in [f.kind for f in sim.faults]
    run(go())


async def bybit_client(sim: ExchangeSimulator, feed: Bybit, syms: list[str], messages: int,
                       before: Any = None) -> list[Any]:
    notices: list[Any] = []
    async with connect(sim.endpoints["bybit"]["ws"]) as ws:
        await ws.send(json.dumps({"op": "subscribe", "args": [f"orderbook.50.{s}" for s in syms],
                                  "req_id": "1"}))
        await ws.send(json.dumps({"op": "ping", "req_id": "p"}))
        n = 0
        while n < messages:
            msg = await asyncio.wait_for(ws.recv(), 5)
            n += 1
            notices += feed.feed(msg)
            if n == 5 and before:
                before()
        sim.pause("bybit")
        await sim.wait_idle()
        while True:
            try:
                notices += feed.feed(await asyncio.wait_for(ws.recv(), 0.3))
            except TimeoutError:
                break
    return notices


def test_bybit_syncs_to_truth_and_gaps_on_drop() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"bybit": ["BTCUSDT", "ETHUSDT"]}, rate=300, seed=5) as sim:
            feed = Bybit(on_error="skip")
            notices = await bybit_client(
                sim, feed, ["BTCUSDT", "ETHUSDT"], 300,
                lambda: sim.inject("bybit", "drop", symbol="ETHUSDT"))
            assert feed.is_synced("BTCUSDT")
            assert book_equals_truth(feed.book("BTCUSDT"), sim.truth("bybit", "BTCUSDT"))
            assert [n.reason for n in notices if n.kind == "resync"] == ["gap"]
            assert not feed.is_synced("ETHUSDT")
            assert feed.counts_total["ignored"] >= 2          # subscribe ack + pong
            sim.resume("bybit")
            notices = await bybit_client(sim, feed, ["ETHUSDT"], 50)
            assert feed.is_synced("ETHUSDT")
            assert book_equals_truth(feed.book("ETHUSDT"), sim.truth("bybit", "ETHUSDT"))
    run(go())


def test_bybit_restart_resets_sequence() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"bybit": ["BTCUSDT"]}, rate=300) as sim:
            feed = Bybit(on_error="skip")
            await bybit_client(sim, feed, ["BTCUSDT"], 30)
            assert sim.truth("bybit", "BTCUSDT")["sequence"] > 20
            sim.resume("bybit")
            sim.inject("bybit", "restart")
            feed.disconnected() if hasattr(feed, "disconnected") else None
            notices = await bybit_client(sim, feed, ["BTCUSDT"], 30)
            assert feed.is_synced("BTCUSDT")
            assert book_equals_truth(feed.book("BTCUSDT"), sim.truth("bybit", "BTCUSDT"))
            assert feed.counts("BTCUSDT")["restarts"] == 1, notices
    run(go())


def test_threaded_mode() -> None:
    sim = ExchangeSimulator({"binance-spot": ["BTCUSDT"]}, rate=100)
    sim.start()
    try:
        ep = sim.endpoints["binance-spot"]
        assert ep["ws"].startswith("ws://127.0.0.1:") and ep["rest"].startswith("http://127.0.0.1:")
        sim.pause("binance-spot")
        t = sim.truth("binance-spot", "BTCUSDT")
        assert t["bids"][0][0] < t["asks"][0][0]
        assert sim.stats()["binance-spot"]["connections"] == 0
    finally:
        sim.stop()


def test_stalled_server_accepts_and_never_speaks() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"bybit": ["BTCUSDT"]}, rate=100) as sim:
            sim.inject("bybit", "stall")
            async with connect(sim.endpoints["bybit"]["ws"]) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"],
                                          "req_id": "1"}))
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.5)       # not even the ack
                await sim.wait_idle()                            # a stall is not "busy"
                sim.resume("bybit")
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["op"] == "subscribe"
    run(go())


def test_binance_slow_snapshot_and_418_fault() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"binance-usdm": ["BTCUSDT"]}, rate=100) as sim:
            url = sim.endpoints["binance-usdm"]["rest"] + "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
            sim.rest_fault("binance-usdm", "slow", delay=0.3)
            task = asyncio.create_task(http_get(url))
            await asyncio.sleep(0.1)
            assert not task.done()                     # still being delayed
            s, h, body = await task
            assert s == 200 and h["X-MBX-USED-WEIGHT-1M"] == "20"
            assert json.loads(body)["lastUpdateId"] > 0
            sim.rest_fault("binance-usdm", "418", retry_after=5)
            s, h, _ = await http_get(url)
            assert s == 418 and h["Retry-After"] == "5"
            assert (await http_get(url))[0] == 418         # still banned
            assert (await http_get(url + "x"))[0] == 418
            s, _, _ = await http_get(sim.endpoints["binance-usdm"]["rest"] + "/nope")
            assert s == 418
    run(go())


def test_threaded_mode_serves_a_client_and_takes_faults_from_another_thread() -> None:
    sim = ExchangeSimulator({"bybit": ["BTCUSDT"]}, rate=200)
    sim.start()
    try:
        async def go() -> None:
            feed = Bybit(on_error="skip")
            notices = await bybit_client(sim, feed, ["BTCUSDT"], 60,
                                         lambda: sim.inject("bybit", "drop"))
            assert [n.reason for n in notices if n.kind == "resync"] == ["gap"]
        run(go())
        assert sim.stats()["bybit"]["connections_total"] == 1
        assert [f.kind for f in sim.faults] == ["drop"]
    finally:
        sim.stop()
