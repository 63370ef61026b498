"""After a gap, the book is live again once the answer to its repair arrives, plus at most
one stream message: for Binance the REST snapshot (the next update bridges it), for the
venues that resubscribe the in-band snapshot itself. Checked on the order of events the
session saw (frames, REST bodies, state notices), not on timings; the timings are in
``bench/live_gapheal.py``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("websockets")

import fastbook as fb
from fastbook.live import BookState
from fastbook.testing import ExchangeSimulator

# venue -> (symbol, the fault that makes a gap, marker of a book update, of a snapshot)
CASES = {
    "binance-spot": ("BTCUSDT", "drop", '"depthUpdate"', None),
    "binance-usdm": ("BTCUSDT", "drop", '"depthUpdate"', None),
    "okx": ("BTC-USDT", "drop", '"action":"update"', '"action":"snapshot"'),
    "bybit": ("BTCUSDT", "drop", '"type":"delta"', '"type":"snapshot"'),
    "kraken-v2": ("BTC/USD", "drop", '"channel":"book","type":"update"',
                  '"channel":"book","type":"snapshot"'),
    "coinbase-advanced": ("BTC-USD", "drop", '"type":"update"', '"type":"snapshot"'),
    "coinbase-exchange": ("BTC-USD", "corrupt", '"type":"l2update"', '"type":"snapshot"'),
}
ROUNDS = 3


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def instrument(feed: Any, log: list[tuple[str, Any]]) -> None:
    """Log, in the order the session sees them, every frame, REST body and state notice."""
    session = feed.session
    received, rest = session.received, session.rest

    def logged_received(conn_id: int, payload: Any, recv_ns: int) -> None:
        text = payload if isinstance(payload, str) else bytes(payload).decode(errors="replace")
        log.append(("frame", text))
        received(conn_id, payload, recv_ns)

    def logged_rest(conn_id: int, native: str, body: Any, recv_ns: int) -> None:
        log.append(("rest", native))
        rest(conn_id, native, body, recv_ns)

    session.received = logged_received
    session.rest = logged_rest
    feed.on_notice(lambda n: log.append(("state", n.state)) if n.kind == "state" else None)


def messages_after_repair(log: list[tuple[str, Any]], update: str, snapshot: str | None
                          ) -> list[int]:
    """For each heal in ``log``: the book updates received after the repair's answer (the
    REST body, or the in-band snapshot) and before the book was live again."""
    out: list[int] = []
    healing = answered = False
    count = 0
    for kind, what in log:
        if kind == "state":
            if what is BookState.LIVE and healing:
                assert answered, "live again before the repair was answered"
                out.append(count)
                healing = answered = False
            elif what is not BookState.LIVE:
                healing, answered, count = True, False, 0
        elif not healing:
            continue
        elif kind == "rest" and snapshot is None:
            answered, count = True, 0
        elif kind == "frame" and snapshot is not None and snapshot in what:
            answered, count = True, 0
        elif kind == "frame" and answered and update in what:
            count += 1
    return out


@pytest.mark.parametrize("venue", list(CASES))
def test_live_again_within_one_message_of_the_repair(venue):
    symbol, fault, update, snapshot = CASES[venue]

    async def main():
        log: list[tuple[str, Any]] = []
        async with ExchangeSimulator({venue: [symbol]}, rate=100, seed=5) as sim:
            feed = fb.live([f"{venue}:{symbol}"], endpoints={venue: sim.endpoints[venue]},
                           latency=False)
            instrument(feed, log)
            async with feed:
                assert await feed.wait_live(15)
                start = len(log)
                for _ in range(ROUNDS):
                    resyncs = feed.stats()["books"][(venue, symbol)]["resyncs"]
                    sim.inject(venue, fault, symbol=symbol)
                    for _ in range(500):
                        b = feed.stats()["books"][(venue, symbol)]
                        if b["resyncs"] > resyncs and b["state"] == "live":
                            break
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.1)
                stats = feed.stats()["books"][(venue, symbol)]
        return log[start:], stats

    log, stats = run(main())
    assert stats["state"] == "live", stats
    counts = messages_after_repair(log, update, snapshot)
    assert len(counts) == ROUNDS, (counts, stats)
    assert all(c <= 1 for c in counts), counts
