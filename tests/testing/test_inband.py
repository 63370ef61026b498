"""The simulator's in-band snapshot venues (OKX, Coinbase Exchange and Advanced), checked
with a plain websockets client and fastbook's codecs: synced books equal the truth and
each fault shows as the venue's rules say it should."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("websockets")

from websockets.asyncio.client import connect

from fastbook.codecs.coinbase import CoinbaseAdvanced, CoinbaseExchange
from fastbook.codecs.okx import Okx
from fastbook.testing import ExchangeSimulator, book_equals_truth
from fastbook.testing._sim import okx_checksum

TIMEOUT = 20


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def subscribe(venue: str, syms: list[str]) -> list[Any]:
    if venue == "okx":
        return [{"op": "subscribe", "args": [{"channel": "books", "instId": s} for s in syms]}]
    if venue == "coinbase-exchange":
        return [{"type": "subscribe", "product_ids": syms,
                 "channels": ["level2_batch", "heartbeat"]}]
    return [{"type": "subscribe", "product_ids": syms, "channel": "level2"},
            {"type": "subscribe", "product_ids": syms, "channel": "heartbeats"}]


async def client(sim: ExchangeSimulator, venue: str, feed: Any, syms: list[str],
                 messages: int, during: Any = None,
                 raw: list[str | bytes] | None = None) -> list[Any]:
    """Subscribe, feed ``messages`` frames (calling ``during`` after the 10th), pause, drain."""
    notices: list[Any] = []
    async with connect(sim.endpoints[venue]["ws"]) as ws:
        for m in subscribe(venue, syms):
            await ws.send(json.dumps(m))
        if venue == "okx":
            await ws.send("ping")
        for n in range(messages):
            msg = await asyncio.wait_for(ws.recv(), 5)
            if raw is not None:
                raw.append(msg)
            if msg != "pong":
                notices += feed.feed(msg)
            if n == 10 and during:
                during()
        sim.pause(venue)
        await sim.wait_idle()
        while True:
            try:
                msg = await asyncio.wait_for(ws.recv(), 0.3)
            except TimeoutError:
                break
            if raw is not None:
                raw.append(msg)
            if msg != "pong":
                notices += feed.feed(msg)
    return notices


FEEDS = {"okx": Okx, "coinbase-exchange": CoinbaseExchange,
         "coinbase-advanced": CoinbaseAdvanced}
SYMS = {"okx": ["BTC-USDT", "ETH-USDT"], "coinbase-exchange": ["BTC-USD", "ETH-USD"],
        "coinbase-advanced": ["BTC-USD", "ETH-USD"]}


@pytest.mark.parametrize("venue", list(FEEDS))
def test_inband_syncs_to_truth(venue: str) -> None:
    async def go() -> None:
        async with ExchangeSimulator({venue: SYMS[venue]}, rate=200, seed=4) as sim:
            feed = FEEDS[venue](on_error="skip")
            raw: list[str | bytes] = []
            await client(sim, venue, feed, SYMS[venue], 150, raw=raw)
            for sym in SYMS[venue]:
                assert feed.is_synced(sym)
                assert book_equals_truth(feed.book(sym), sim.truth(venue, sym))
            c = feed.counts()
            assert c["malformed"] == 0 and c["resyncs"] == 0 and c["applied"] > 100
            if venue == "okx":
                assert c["checksum_ok"] > 100 and c["checksum_failed"] == 0
                assert "pong" in raw
            assert feed.counts_total["ignored"] >= 1       # acks
    run(go())


def test_okx_checksum_matches_the_documented_example() -> None:
    # OKX's documentation example: bids 3366.1:7, 3366:6 / asks 3366.8:9, 3368:8
    text = "3366.1:7:3366.8:9:3366:6:3368:8"
    import zlib
    want = zlib.crc32(text.encode())
    want = want - (1 << 32) if want >= 1 << 31 else want
    assert okx_checksum([["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"], ["3368", "8"]]) == want
    assert want == -1881014294


@pytest.mark.parametrize("kind,reason", [("bad_checksum", "checksum"), ("drop", "gap")])
def test_okx_faults(kind: str, reason: str) -> None:
    async def go() -> None:
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=300) as sim:
            feed = Okx(on_error="skip")
            notices = await client(sim, "okx", feed, ["BTC-USDT"], 60,
                                   lambda: sim.inject("okx", kind, symbol="BTC-USDT"))
            assert [n.reason for n in notices if n.kind == "resync"] == [reason]
            assert any(n.kind == "resubscribe" for n in notices)
    run(go())


def test_okx_malformed_refused_in_skip_mode() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=300) as sim:
            feed = Okx(on_error="skip")
            await client(sim, "okx", feed, ["BTC-USDT"], 60,
                         lambda: sim.inject("okx", "malformed", symbol="BTC-USDT"))
            assert feed.counts()["malformed"] + feed.counts_total.get("malformed", 0) >= 1
    run(go())


def test_coinbase_advanced_drop_is_a_gap_and_duplicate_refused() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"coinbase-advanced": ["BTC-USD"]}, rate=300) as sim:
            feed = CoinbaseAdvanced(on_error="skip")
            notices = await client(sim, "coinbase-advanced", feed, ["BTC-USD"], 60,
                                   lambda: sim.inject("coinbase-advanced", "drop"))
            assert [n.reason for n in notices if n.kind == "resync"] == ["gap"]
            sim.resume("coinbase-advanced")
            feed = CoinbaseAdvanced(on_error="skip")
            await client(sim, "coinbase-advanced", feed, ["BTC-USD"], 60,
                         lambda: sim.inject("coinbase-advanced", "duplicate"))
            assert feed.counts_total["out_of_order"] == 1
            assert feed.is_synced("BTC-USD")
            assert book_equals_truth(feed.book("BTC-USD"), sim.truth("coinbase-advanced",
                                                                     "BTC-USD"))
    run(go())


def test_coinbase_heartbeats_keep_coming_while_paused() -> None:
    async def go() -> None:
        async with ExchangeSimulator({"coinbase-exchange": ["BTC-USD"]}, rate=50) as sim:
            sim.pause("coinbase-exchange")
            async with connect(sim.endpoints["coinbase-exchange"]["ws"]) as ws:
                for m in subscribe("coinbase-exchange", ["BTC-USD"]):
                    await ws.send(json.dumps(m))
                types = [json.loads(await asyncio.wait_for(ws.recv(), 5))["type"]
                         for _ in range(3)]
                assert types == ["subscriptions", "snapshot", "heartbeat"]
    run(go())
