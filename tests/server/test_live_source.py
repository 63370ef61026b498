"""The server fed by the live driver against the loopback exchange simulator."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from tests.server.conftest import run


def _ints(levels: list[tuple[Decimal, Decimal]], ps: int, qs: int) -> list[tuple[int, int]]:
    return [(int(p.scaleb(ps)), int(q.scaleb(qs))) for p, q in levels]


async def _until(cond: Any, timeout: float = 15.0) -> bool:
    for _ in range(int(timeout / 0.01)):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.parametrize("mode", ["own", "feed"])
def test_live_quotes_follow_the_venue_through_a_resync(mode: str) -> None:
    """``own``: the server opens the feed; ``feed``: it serves one the caller opened."""
    pytest.importorskip("websockets")
    import contextlib

    import fastbook as fb
    from fastbook.server import Live, Server
    from fastbook.server.client import connect
    from fastbook.testing import ExchangeSimulator

    name = "okx:BTC-USDT"

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            sim = await stack.enter_async_context(
                ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=200, seed=11))
            if mode == "own":
                srv = Server(Live(endpoints=sim.endpoints), [name], ws_port=0)
            else:   # the caller's feed, refusing reads of books that are not live
                feed = await stack.enter_async_context(fb.live([name],
                                                               endpoints=sim.endpoints))
                srv = Server(feed, [name], ws_port=0)
            assert srv.instruments == [name]
            await stack.enter_async_context(srv)
            async with connect(f"127.0.0.1:{srv.ws_port}") as c:
                got: list[Any] = []

                async def read() -> None:
                    async for q in c.subscribe([name]):
                        got.append(q)

                reader = asyncio.get_running_loop().create_task(read())
                assert await _until(lambda: any(q.state == "live" for q in got))
                sim.inject("okx", "drop", symbol="BTC-USDT", count=1)
                assert await _until(lambda: any(q.state == "resyncing" for q in got))
                n = len(got)
                assert await _until(lambda: any(q.state == "live" for q in got[n:]))
                sim.pause("okx")
                await sim.wait_idle()
                await asyncio.sleep(0.5)
                truth = sim.truth("okx", "BTC-USDT", depth=10)
                last = got[-1]
                assert last.state == "live"
                assert last.bids == _ints(truth["bids"], last.price_scale, last.qty_scale)
                assert last.asks == _ints(truth["asks"], last.price_scale, last.qty_scale)
                reader.cancel()
                seqs = [q.seq for q in got]
                assert seqs == sorted(set(seqs))
                states = [q.state for q in got]
                assert states[0] in ("connecting", "syncing", "live")
                assert all(not q.bids and not q.asks for q in got if q.state != "live")
                assert srv.stats()["source"]["published"] >= 3     # live, resyncing, live
    run(main(), timeout=60)


def _merged(truths: list[dict[str, Any]], side: str, n: int) -> list[tuple[Decimal, Decimal]]:
    """The top ``n`` levels of ``side`` of several truth books merged by price (summed)."""
    levels: dict[Decimal, Decimal] = {}
    for t in truths:
        for p, q in t[side]:
            levels[p] = levels.get(p, Decimal(0)) + q
    prices = sorted(levels, reverse=side == "bids")[:n]
    return [(p, levels[p]) for p in prices]


def test_a_consolidated_instrument_serves_the_merged_top_of_its_venues() -> None:
    pytest.importorskip("websockets")
    from fastbook.server import Live, Server
    from fastbook.server.client import connect
    from fastbook.testing import ExchangeSimulator

    books = {"okx": ["BTC-USDT"], "binance-spot": ["BTCUSDT"]}
    names = ["okx:BTC-USDT", "binance-spot:BTCUSDT", "consolidated:BTC/USDT"]
    group = {"BTC/USDT": ["okx:BTC-USDT", "binance-spot:BTCUSDT"]}

    async def main() -> None:
        async with ExchangeSimulator(books, rate=200, seed=21) as sim:
            srv = Server(Live(endpoints=sim.endpoints, consolidate=group), names, ws_port=0)
            assert srv.instruments == names
            async with srv, connect(f"127.0.0.1:{srv.ws_port}") as c:
                got: list[Any] = []

                async def read() -> None:
                    async for q in c.subscribe(["consolidated:BTC/USDT"]):
                        got.append(q)

                reader = asyncio.get_running_loop().create_task(read())
                assert await _until(lambda: any(q.state == "live" for q in got))
                await asyncio.sleep(0.5)
                for venue in books:
                    sim.pause(venue)
                await sim.wait_idle()
                await asyncio.sleep(0.5)
                truths = [sim.truth(v, s[0]) for v, s in books.items()]
                last = got[-1]
                reader.cancel()
                assert last.state == "live" and len(last.bids) == 10
                ps, qs = last.price_scale, last.qty_scale
                assert last.bids == _ints(_merged(truths, "bids", 10), ps, qs)
                assert last.asks == _ints(_merged(truths, "asks", 10), ps, qs)
                seqs = [q.seq for q in got]
                assert seqs == sorted(set(seqs))
    run(main(), timeout=60)


def test_consolidated_instruments_need_their_venue_books() -> None:
    from fastbook.server import Live, Server

    with pytest.raises(ValueError, match="need the venue books"):
        Server(Live(), ["consolidated:BTC/USDT"], ws_port=0)
    with pytest.raises(ValueError, match="not a normalized symbol"):
        Server(Live(), ["okx:BTC-USDT", "consolidated:BTCUSDT"], ws_port=0)
