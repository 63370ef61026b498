"""The simulator's Kraken v2: instrument channel, depth-truncated books without deletes for
levels pushed out of scope, and a CRC32 on every message, checked through KrakenV2."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import pytest

pytest.importorskip("websockets")

from websockets.asyncio.client import connect

from fastbook.codecs.kraken import KrakenV2
from fastbook.testing import ExchangeSimulator, book_equals_truth
from fastbook.testing._sim import ExchangeSimulator as Sim


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def kraken(sim: ExchangeSimulator, feed: KrakenV2, syms: list[str], depth: int,
                 messages: int, during: Any = None) -> list[Any]:
    notices: list[Any] = []
    async with connect(sim.endpoints["kraken-v2"]["ws"]) as ws:
        await ws.send(json.dumps({"method": "subscribe", "req_id": 1,
                                  "params": {"channel": "instrument", "snapshot": True}}))
        await ws.send(json.dumps({"method": "subscribe", "req_id": 2, "params": {
            "channel": "book", "symbol": syms, "depth": depth, "snapshot": True}}))
        await ws.send(json.dumps({"method": "ping", "req_id": 3}))
        for n in range(messages):
            notices += feed.feed(await asyncio.wait_for(ws.recv(), 5))
            if n == 10 and during:
                during()
        sim.pause("kraken-v2")
        await sim.wait_idle()
        while True:
            try:
                notices += feed.feed(await asyncio.wait_for(ws.recv(), 0.3))
            except TimeoutError:
                break
    return notices


@pytest.mark.parametrize("depth", [10, 25])
def test_kraken_syncs_to_truncated_truth_with_checksums(depth: int) -> None:
    async def go() -> None:
        async with ExchangeSimulator({"kraken-v2": ["BTC/USD", "ETH/USD"]}, rate=200) as sim:
            feed = KrakenV2(on_error="skip")
            notices = await kraken(sim, feed, ["BTC/USD", "ETH/USD"], depth, 200)
            assert not [n for n in notices if n.kind == "resync"]
            for sym in ("BTC/USD", "ETH/USD"):
                assert feed.is_synced(sym)
                assert book_equals_truth(feed.book(sym), sim.truth("kraken-v2", sym, depth))
            c = feed.counts()
            assert c["checksum_ok"] > 150 and c["checksum_failed"] == 0 and c["malformed"] == 0
    run(go())


@pytest.mark.parametrize("kind,reason", [("bad_checksum", "checksum"), ("drop", "checksum")])
def test_kraken_faults_fail_the_checksum(kind: str, reason: str) -> None:
    async def go() -> None:
        async with ExchangeSimulator({"kraken-v2": ["BTC/USD"]}, rate=300, seed=9) as sim:
            feed = KrakenV2(on_error="skip")
            notices = await kraken(sim, feed, ["BTC/USD"], 10, 80,
                                   lambda: sim.inject("kraken-v2", kind, count=3))
            assert [n.reason for n in notices if n.kind == "resync"] == [reason]
    run(go())


def test_kraken_checksum_text_rule() -> None:
    # asks first then bids; each value at the pair's precision without "." or leading
    # zeros: ask 45001.00 x 0.250 -> "4500100" "250", bid 45000.00 x 1.500 -> "4500000" "1500"
    crc = Sim.kraken_checksum({4500000: 1500}, {4500100: 250}, 2, 3)
    assert crc == zlib.crc32(b"4500100" b"250" b"4500000" b"1500")
