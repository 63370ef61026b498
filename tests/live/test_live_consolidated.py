"""``fb.live(..., consolidate=...)`` and ``fastbook live --consolidate``: the live driver
keeps consolidated views over real loopback connections to the exchange simulator, and
they equal a Decimal merge of the simulator's truth books."""

from __future__ import annotations

import asyncio
import io
import time
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("websockets")

import fastbook as fb
from fastbook.testing import ExchangeSimulator

BOOKS = {"okx": ["BTC-USDT"], "binance-spot": ["BTCUSDT"]}
SPECS = ["okx:BTC-USDT", "binance-spot:BTCUSDT"]
GROUP = {"BTC/USDT": ["okx:BTC-USDT", "binance-spot:BTCUSDT"]}


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def merged_truth(sim: ExchangeSimulator, venues: list[str]) -> tuple[Any, ...]:
    """Best bid and ask (price, total size) across the venues' truth books."""
    bids = [sim.truth(v, BOOKS[v][0])["bids"][0] for v in venues]
    asks = [sim.truth(v, BOOKS[v][0])["asks"][0] for v in venues]
    bid = max(p for p, _ in bids)
    ask = min(p for p, _ in asks)
    return (bid, sum((q for p, q in bids if p == bid), Decimal(0)),
            ask, sum((q for p, q in asks if p == ask), Decimal(0)))


def as_decimal(view: Any) -> tuple[Any, ...]:
    bid, bq, _, ask, aq, _ = view.bbo()
    pd, qd = view.price_decimals, view.qty_decimals
    return (Decimal(bid).scaleb(-pd), Decimal(bq).scaleb(-qd),
            Decimal(ask).scaleb(-pd), Decimal(aq).scaleb(-qd))


def test_live_views_equal_the_simulators_truth_and_go_stale() -> None:
    async def main() -> dict[str, Any]:
        async with ExchangeSimulator(BOOKS, rate=200, seed=11) as sim:
            feed = fb.live(SPECS, endpoints=sim.endpoints, consolidate=GROUP,
                           consolidate_options={"stale_ns": 400_000_000, "refresh_s": 0.05})
            async with feed:
                assert await feed.wait_live(20), feed.stats()["books"]
                await asyncio.sleep(0.5)
                for venue in BOOKS:
                    sim.pause(venue)
                await sim.wait_idle()
                await asyncio.sleep(0.1)
                view = feed.consolidated.view("BTC/USDT")
                out: dict[str, Any] = {
                    "names": view.venue_names, "got": as_decimal(view),
                    "want": merged_truth(sim, list(BOOKS)), "in": view.venues_in()}
                await asyncio.sleep(0.8)             # quiet for longer than stale_ns
                out["later"] = view.venues_in()
                out["last"] = view.last_change()
                out["rows"] = feed.consolidated.take_cbbo()
                out["stats"] = feed.stats()["consolidated"]
        return out

    out = run(main())
    assert set(out["names"]) == {"okx", "binance-spot"}
    assert out["in"] == {"okx": "in", "binance-spot": "in"}
    assert out["got"] == out["want"]
    # no book messages for 0.8 s: the refresh timer takes both venues out of the view
    assert out["later"] == {"okx": "stale", "binance-spot": "stale"}
    assert out["last"][1] == -1 and out["last"][2] == 0      # a refresh, both sides empty
    rows = out["rows"]
    assert len(rows) > 10 and (rows["view"] == 0).all()
    assert (rows["ts"][1:] >= rows["ts"][:-1]).all()
    assert out["stats"]["changes"] == len(rows) and out["stats"]["error"] == ""
    assert out["stats"]["views"]["BTC/USDT"]["venues"]["okx"]["updates"] > 10


def test_a_venue_that_drops_leaves_the_view_then_returns() -> None:
    async def main() -> dict[str, Any]:
        async with ExchangeSimulator(BOOKS, rate=200, seed=12) as sim:
            feed = fb.live(SPECS, endpoints=sim.endpoints, consolidate=GROUP,
                           backoff_s=0.05)
            async with feed:
                assert await feed.wait_live(20)
                await asyncio.sleep(0.2)
                view = feed.consolidated.view("BTC/USDT")
                before = feed.consolidated.take_cbbo()
                sim.inject("okx", "disconnect")
                await asyncio.sleep(0.5)
                assert await feed.wait_live(20)
                await asyncio.sleep(0.3)
                return {"before": before, "after": feed.consolidated.take_cbbo(),
                        "okx": view.index("okx"), "end": view.venues_in(), "n": len(view),
                        "disconnects": feed.stats()["venues"]["okx"]["disconnects"]}

    out = run(main())
    bit = 1 << out["okx"]
    assert out["disconnects"] >= 1
    assert (out["before"]["in_mask"][-1] & bit) != 0
    masks = out["after"]["in_mask"].tolist()
    first_out = next(i for i, m in enumerate(masks) if not m & bit)     # OKX left the view
    assert any(m & bit for m in masks[first_out:])                      # and came back
    assert out["end"] == {"okx": "in", "binance-spot": "in"}
    assert out["n"] == 2                 # the reconnect's new book was rebound, not added


def test_cli_live_consolidate_shows_the_consolidated_table(tmp_path: Any) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out_file = tmp_path / "live-cbbo.parquet"
    from fastbook._live_cli import run_live
    from fastbook.cli import build_parser

    async def main() -> tuple[str, dict[str, Any]]:
        async with ExchangeSimulator(BOOKS, rate=100, seed=13) as sim:
            ends = [f"--endpoint={v}={e['ws']}" + (f",{e['rest']}" if "rest" in e else "")
                    for v, e in sim.endpoints.items()]
            args = build_parser().parse_args([
                "live", *SPECS, *ends, "--duration", "3", "--refresh", "0.5",
                "--consolidate", "BTC/USDT=okx:BTC-USDT,binance-spot:BTCUSDT",
                "--cbbo", str(out_file), "--health"])
            out = io.StringIO()
            result = await run_live(args, out=out)
            return out.getvalue(), result

    text, result = run(main())
    assert "consolidated BTC/USDT" in text
    assert "best bid" in text and "okx" in text
    assert result["consolidated"]["views"]["BTC/USDT"]["venues_in"] == \
        {"okx": "in", "binance-spot": "in"}
    table = pq.read_table(out_file)
    # the file is written after the run stops: its shutdown takes the books out too
    assert table.num_rows >= result["consolidated"]["changes"] > 0
    assert (tmp_path / "live-cbbo.arbitrage.parquet").exists()
    assert result["consolidated_files"][0] == str(out_file)
    health = pq.read_table(tmp_path / "live-cbbo.health.parquet")
    assert health.num_rows >= 2 and set(result["health"]["venues"]) == {"okx", "binance-spot"}


def test_a_recording_replays_to_the_live_runs_consolidated_rows(tmp_path: Any) -> None:
    rec = tmp_path / "rec"
    options = {"stale_ns": 60_000_000_000}

    async def main() -> Any:
        async with ExchangeSimulator(BOOKS, rate=200, seed=14) as sim:
            feed = fb.live(SPECS, endpoints=sim.endpoints, consolidate=GROUP,
                           consolidate_options=options, record=str(rec), backoff_s=0.05)
            async with feed:
                assert await feed.wait_live(20)
                await asyncio.sleep(0.3)
                sim.inject("okx", "disconnect")       # a reconnect: a new OKX book
                await asyncio.sleep(0.3)
                assert await feed.wait_live(20)
                await asyncio.sleep(0.3)
                for venue in BOOKS:
                    sim.pause(venue)
                await sim.wait_idle()
                await asyncio.sleep(0.2)
            # the shutdown's closes take the books out of the view, live and replayed
            rows = feed.consolidated.take_cbbo()
        return rows

    live_rows = run(main())
    replayed = fb.replay(str(rec), consolidate=GROUP, **options)
    assert len(live_rows) > 10
    assert replayed.cbbo.tobytes() == live_rows.tobytes()
    # the recording ends with the run's shutdown: both books closed, out of the view
    assert replayed.view("BTC/USDT").venues_in() == {"okx": "not live",
                                                     "binance-spot": "not live"}
    assert set(replayed.feeds) == {"okx", "binance-spot"}


def test_the_thread_api_reads_the_views_under_the_drivers_lock() -> None:
    sim = ExchangeSimulator(BOOKS, rate=200, seed=15)
    sim.start()
    try:
        with fb.LiveFeed(SPECS, endpoints=sim.endpoints, consolidate=GROUP) as feed:
            assert feed.wait_live(20)
            deadline = time.monotonic() + 10
            while feed.consolidated_bbo("BTC/USDT")[0] is None and time.monotonic() < deadline:
                time.sleep(0.05)
            bid, bq, bven, ask, aq, aven = feed.consolidated_bbo("BTC/USDT")
            # (two independent simulators may cross each other: no bid < ask here)
            assert bid is not None and ask is not None and bq > 0 and aq > 0 and bven and aven
            cbbo, arb = feed.take_consolidated()
            assert len(cbbo) > 0 and arb.dtype.names[0] == "ts"
            with pytest.raises(KeyError, match="no consolidated view of 'ETH/USDT'"):
                feed.consolidated_bbo("ETH/USDT")
        with fb.LiveFeed(SPECS, endpoints=sim.endpoints) as plain:
            with pytest.raises(ValueError, match="not opened with consolidate"):
                plain.take_consolidated()
    finally:
        sim.stop()


def test_feeds_stopped_while_they_connect_close_their_sockets() -> None:
    """picows's connect, cancelled during its handshake, left its socket open (an unclosed
    transport's ResourceWarning, which the suite turns into an error at collection)."""
    import gc

    sim = ExchangeSimulator(BOOKS, rate=200, seed=16)
    sim.start()
    try:
        for pause in (0.0, 0.001, 0.002, 0.004, 0.0, 0.002):
            with fb.LiveFeed(SPECS, endpoints=sim.endpoints):
                time.sleep(pause)
            gc.collect()
    finally:
        sim.stop()
