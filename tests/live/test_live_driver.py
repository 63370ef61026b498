"""The live driver over real loopback websockets: books, states, faults, consumers, recording."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

pytest.importorskip("websockets")

import fastbook as fb
from fastbook.live import BookState, LiveFeed, NotLiveError, parse_specs
from fastbook.live._record import replay_recording
from tests.live.servers import CaptureServer, capture_frames, until

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "l2", "cryptofeed")
OKX = os.path.join(DATA, "OKX.ws.1.0.gz")
OKX_INSTS = ["BTC-USD-220527", "BTC-USDT", "UNI-USD-SWAP"]
TRANSPORTS = ["websockets"] + (["picows"] if __import__("importlib").util.find_spec("picows")
                               else [])


def run(coro, timeout=30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def levels(book):
    return list(book.levels(fb.BID)), list(book.levels(fb.ASK))


@pytest.fixture(scope="module")
def okx_truth():
    """The capture's final books, rebuilt by the replay (no driver, no sockets)."""
    result = fb.replay(OKX, "okx")
    return {n: levels(result.book(n)) for n in OKX_INSTS}


def okx_live(url, **options):
    return fb.live([f"okx:{i}" for i in OKX_INSTS], endpoints={"okx": {"ws": url}},
                   latency=False, **options)


def test_a_venue_state_is_its_least_healthy_book_state():
    feed = fb.live(["okx:BTC-USDT", "okx:ETH-USDT", "okx:SOL-USDT"])
    tracks = [feed.session.track("okx", s) for s in ("BTC-USDT", "ETH-USDT", "SOL-USDT")]
    for states, venue in [(("live",) * 3, "live"),
                          (("live", "syncing", "live"), "syncing"),
                          (("connecting", "syncing", "live"), "syncing"),
                          (("live", "stale", "resyncing"), "stale"),
                          (("resyncing", "syncing", "connecting"), "resyncing")]:
        for t, state in zip(tracks, states, strict=True):
            t.state = BookState(state)
        assert feed.stats()["venues"]["okx"]["state"] == venue, states


def test_specs_accept_native_and_normalized_symbols():
    assert parse_specs(["binance:BTC/USDT", "binance-usdm:BTC/USDT:USDT", "okx:BTC/USDT",
                        "kraken:BTC/USD", "coinbase:BTC-USD", "bybit:BTCUSDT",
                        "binance-coinm:BTC/USD:BTC"]) == [
        ("binance-spot", "BTCUSDT", "BTC/USDT"), ("binance-usdm", "BTCUSDT", "BTC/USDT:USDT"),
        ("okx", "BTC-USDT", "BTC/USDT"), ("kraken-v2", "BTC/USD", "BTC/USD"),
        ("coinbase-advanced", "BTC-USD", "BTC-USD"), ("bybit", "BTCUSDT", "BTCUSDT"),
        ("binance-coinm", "BTCUSD_PERP", "BTC/USD:BTC")]
    with pytest.raises(ValueError, match="VENUE:SYMBOL"):
        parse_specs(["BTCUSDT"])
    with pytest.raises(ValueError, match="no live rules for venue 'nasdaq'"):
        parse_specs(["nasdaq:AAPL"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_okx_capture_live_books_equal_the_replay(okx_truth, transport):
    frames = capture_frames(OKX)

    async def main():
        async with CaptureServer(frames) as srv, okx_live(srv.url, transport=transport) as feed:
            q = feed.notices(100_000)
            assert await until(lambda: feed.stats()["venues"]["okx"]["messages"]
                                     == len(frames))
            notices = []
            while (n := q.get_nowait()) is not None:
                notices.append(n)
            assert '"op": "subscribe"' in srv.received[0]
            for inst in OKX_INSTS:
                assert feed.state("okx", inst) is BookState.LIVE
                assert levels(feed.book("okx", inst)) == okx_truth[inst]
            updates = [n for n in notices if n.kind == "update"]
            assert {n.symbol for n in updates} == set(OKX_INSTS)
            assert all(n.recv_ns <= n.applied_ns for n in updates)
            assert any(n.bbo_changed for n in updates)
            st = feed.stats()
            assert st["transport"] == transport
            # one update notice per applied message or snapshot of a live book
            assert len(updates) == sum(b["applied"] + b["snapshots"]
                                       for b in st["books"].values())
            assert st["venues"]["okx"]["reconnects"] == 0
            return sum(b["applied"] for b in st["books"].values())

    applied = run(main())
    assert applied > 250


def test_disconnect_resyncs_and_the_book_heals(okx_truth):
    frames = capture_frames(OKX)

    async def main():
        async with CaptureServer(frames, close_after=150) as srv, \
                okx_live(srv.url, backoff_s=0.01) as feed:
            states = []
            feed.on_notice(lambda n: states.append((n.symbol, n.state)) if n.kind == "state"
                           else None)
            assert await until(lambda: srv.connections == 2 and
                                     srv.sent == 150 + len(frames), 15)
            # the venue's count keeps the closed connection's frames
            assert await until(lambda: feed.stats()["venues"]["okx"]["messages"]
                                     == 150 + len(frames), 10)
            st = feed.stats()
            assert st["venues"]["okx"]["reconnects"] == 1
            assert st["venues"]["okx"]["disconnects"] == 1
            # every book that was live went through a not-live state and back
            for inst in OKX_INSTS:
                seen = [s for sym, s in states if sym == inst]
                assert BookState.LIVE in seen
                assert feed.state("okx", inst) is BookState.LIVE
                assert levels(feed.book("okx", inst)) == okx_truth[inst]
            flagged = [s for sym, s in states if s in (BookState.RESYNCING,
                                                       BookState.CONNECTING)]
            assert flagged, states
    run(main())


def test_not_live_reads_raise_or_return():
    async def main():
        async with CaptureServer([], silent=True) as srv:
            async with okx_live(srv.url) as feed:
                assert await until(lambda: srv.connections == 1)
                with pytest.raises(NotLiveError, match="okx:BTC-USDT is syncing"):
                    feed.book("okx", "BTC-USDT")
            async with okx_live(srv.url, on_not_live="return") as feed:
                await until(lambda: srv.connections == 2)
                assert feed.state("okx", "BTC-USDT") is BookState.SYNCING
                b = feed.book("okx", "BTC-USDT")
                assert b is None or len(b) == 0
    run(main())


def test_a_server_that_never_speaks_is_a_stall_and_is_reconnected():
    async def main():
        async with CaptureServer([], silent=True) as srv, \
                okx_live(srv.url, stall_s={"okx": 0.3}, backoff_s=0.01) as feed:
            assert await until(lambda: srv.connections >= 3, 10)
            st = feed.stats()["venues"]["okx"]
            assert st["stalls"] >= 2
            assert feed.state("okx", "BTC-USDT") is not BookState.LIVE
    run(main())


def test_a_venue_that_cannot_connect_goes_down_while_others_live(okx_truth):
    frames = capture_frames(OKX)

    async def main():
        async with CaptureServer(frames) as srv:
            feed = fb.live([f"okx:{i}" for i in OKX_INSTS] + ["bybit:BTCUSDT"],
                           endpoints={"okx": {"ws": srv.url},
                                      "bybit": {"ws": "ws://127.0.0.1:9"}},
                           latency=False, max_attempts=3, backoff_s=0.01, backoff_cap_s=0.05)
            async with feed:
                assert await until(lambda: feed.state("bybit", "BTCUSDT")
                                         is BookState.DOWN, 10)
                assert await until(lambda: all(
                    feed.state("okx", i) is BookState.LIVE for i in OKX_INSTS), 10)
                st = feed.stats()
                assert st["venues"]["bybit"]["state"] == "down"
                assert "connection attempts failed" in st["venues"]["bybit"]["down_reason"]
                assert st["books"][("bybit", "BTCUSDT")]["state"] == "down"
    run(main())


def test_a_consumer_that_does_not_read_is_conflated_and_counted(okx_truth):
    frames = capture_frames(OKX)

    async def main():
        async with CaptureServer(frames) as srv, okx_live(srv.url, queue=4) as feed:
            it = feed.__aiter__()           # a consumer that reads nothing for now
            assert await until(lambda: feed.stats()["venues"]["okx"]["messages"]
                                     == len(frames), 10)
            for inst in OKX_INSTS:
                assert levels(feed.book("okx", inst)) == okx_truth[inst]   # books exact
            q = feed.stats()["consumers"][0]
            assert q["capacity"] == 4 and q["conflated"] > 100
            assert q["queue"] <= 4 + len(OKX_INSTS)
            got = []
            while len(got) < q["queue"]:
                got.append(await it.__anext__())
            # the conflated notices say how many they replaced; the last is the newest
            assert sum(n.conflated for n in got) == q["conflated"]
    run(main())


def test_thread_api_reads_consistent_copies(okx_truth):
    frames = capture_frames(OKX)
    ready = threading.Event()
    box = {}

    def serve():
        async def main():
            async with CaptureServer(frames, hold=5) as srv:
                box["url"] = srv.url
                ready.set()
                await asyncio.sleep(5)
        asyncio.run(main())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(5)
    seen = []
    with LiveFeed([f"okx:{i}" for i in OKX_INSTS], endpoints={"okx": {"ws": box["url"]}},
                  latency=False, callback=lambda n: seen.append(n)) as feed:
        assert feed.wait_live(10)
        deadline = __import__("time").monotonic() + 10
        while feed.stats()["venues"]["okx"]["messages"] < len(frames):
            assert __import__("time").monotonic() < deadline
            __import__("time").sleep(0.01)
        book = feed.book("okx", "BTC-USDT")
        assert levels(book) == okx_truth["BTC-USDT"]
        assert book is not feed.books.session.book("okx", "BTC-USDT")   # a copy
    assert seen and not feed._thread.is_alive()
    t.join(10)


def test_a_recording_replays_to_the_same_books_states_and_counts(tmp_path, okx_truth):
    frames = capture_frames(OKX)
    path = str(tmp_path / "okx.fbcap")

    async def main():
        async with CaptureServer(frames, close_after=200) as srv, \
                okx_live(srv.url, record=path, backoff_s=0.01) as feed:
            assert await until(lambda: srv.connections == 2 and
                                     feed.stats()["venues"]["okx"]["messages"]
                                     == 200 + len(frames), 15)
            box["t"] = __import__("time").time_ns()
            return {i: (levels(feed.book("okx", i)), feed.state("okx", i),
                        feed.session.counts("okx", i)) for i in OKX_INSTS}

    box = {}
    live_end = run(main())
    session = replay_recording(path, until_ns=box["t"])
    for inst, (lv, state, counts) in live_end.items():
        assert lv == okx_truth[inst]
        assert levels(session.book("okx", inst)) == lv
        assert session.track("okx", inst).state is state
        assert session.counts("okx", inst) == counts
