"""``fb.live(..., trades=True)`` against the loopback simulator: every venue's rules
subscribe the trade channel too, the codecs read every print the simulator sent (counted
per book, the books still equal the truth), and the frames that crossed the socket,
recorded, decode to exactly the simulator's prints with the right aggressor side."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("websockets")

import fastbook as fb
from fastbook.capture import CaptureReader
from fastbook.codecs import load as load_codec
from fastbook.events import Action, Flags
from fastbook.live import BookState
from fastbook.live._record import LiveRecorder
from fastbook.live._recorder import recording_files
from fastbook.live._rules import RULES, rules_for
from fastbook.testing import ExchangeSimulator, book_equals_truth
from tests.live.servers import until

SYMBOL = {"binance-spot": "BTCUSDT", "binance-usdm": "BTCUSDT", "binance-coinm": "BTCUSD_PERP",
          "bybit": "BTCUSDT", "okx": "BTC-USDT", "kraken-v2": "BTC/USD",
          "coinbase-advanced": "BTC-USD", "coinbase-exchange": "BTC-USD"}
KEYS = list(SYMBOL.items())


def test_the_trade_channel_is_subscribed_only_when_asked() -> None:
    for venue, rules in RULES.items():
        native = SYMBOL[venue]
        plain = rules.url("ws://x", [native], 10) + "".join(rules.subscribe([native], 10))
        both = rules.with_trades()
        text = both.url("ws://x", [native], 10) + "".join(both.subscribe([native], 10))
        word = {"binance": "@aggTrade", "bybit": "publicTrade.", "okx": '"trades"',
                "kraken-v2": '"trade"', "coinbase-exchange": '"matches"',
                "coinbase-advanced": '"market_trades"'}[venue.split("-")[0]
                                                       if venue.startswith("binance")
                                                       else venue]
        assert word not in plain and word in text, venue
        # unsubscribed with the book, so that a resubscribe leaves one of each
        assert word in both.url("ws://x", [native], 10) + "".join(both.unsubscribe([native], 10))
    assert not rules_for("okx").trades and rules_for("okx").with_trades().trades


async def _run(directory: str) -> tuple[dict[str, list[tuple[str, int, int, bool, int]]],
                                        dict[str, str], dict[tuple[str, str], int]]:
    venues = {v: [s] for v, s in SYMBOL.items()}
    async with ExchangeSimulator(venues, rate=200, seed=3, trade_every=3) as sim:
        recorder = LiveRecorder(directory, compression="none")
        specs = [f"{v}:{s}" for v, s in KEYS]
        async with fb.live(specs, endpoints=sim.endpoints, trades=True, record=recorder,
                           latency=False, backoff_s=0.05) as feed:
            assert await feed.wait_live(30), feed.stats()["books"]

            def kept(v: str) -> int | None:
                return feed.session.venue_depth(v) if v == "kraken-v2" else None

            def books_equal_truth() -> bool:
                return all(feed.state(v, s) is BookState.LIVE and book_equals_truth(
                    feed.book(v, s), sim.truth(v, s, depth=kept(v))) for v, s in KEYS)

            async def settle() -> None:
                """Stop the streams and let the driver read everything sent."""
                for venue in SYMBOL:
                    sim.pause(venue)
                await sim.wait_idle()
                assert await until(books_equal_truth, 15), [
                    v for v, s in KEYS if not book_equals_truth(
                        feed.book(v, s), sim.truth(v, s, depth=kept(v)))]

            # frames that arrive before the driver registers a new connection are not
            # decoded (counted late), trades too: count from a settled point after that
            await settle()
            start = {v: len(sim.trades(v)) for v in SYMBOL}
            before = {(v, s): feed.session.counts(v, s).get("trades", 0) for v, s in KEYS}
            for venue in SYMBOL:
                sim.resume(venue)
            assert await until(lambda: all(len(sim.trades(v)) >= start[v] + 4 for v in SYMBOL),
                               20)
            await settle()
            sent = {v: sim.trades(v) for v in SYMBOL}

            def read_all() -> bool:
                return all(feed.session.counts(v, s).get("trades", 0) - before[(v, s)]
                           == len(sent[v]) - start[v] for v, s in KEYS)
            assert await until(read_all, 15), {
                (v, s): (feed.session.counts(v, s).get("trades"), before[(v, s)],
                         len(sent[v]), start[v]) for v, s in KEYS}
            counts = {}
            for v, s in KEYS:
                c = feed.session.counts(v, s)
                counts[(v, s)] = c["trades"] - before[(v, s)]
                assert c["malformed"] == 0 and c["resyncs"] == 0, (v, c)
                assert len(sent[v]) - start[v] == counts[(v, s)] >= 4
            totals = {(v, s): feed.session.counts(v, s)["trades"] for v, s in KEYS}
        return sent, {v: e["ws"] for v, e in sim.endpoints.items()}, counts, totals


def test_live_trades_against_the_simulator(tmp_path) -> None:
    directory = str(tmp_path / "rec")
    sent, bases, counts, totals = asyncio.run(asyncio.wait_for(_run(directory), 120))
    assert all(counts[(v, s)] >= 4 for v, s in KEYS)
    # fb.replay of the recording gives every print the live books counted, on its book
    replayed = fb.replay(directory, trades=True)
    ids = replayed.trades["instrument"]
    assert {(v, s): int((ids == replayed.books.find(s, v)).sum()) for v, s in KEYS} == totals
    # the recorded frames, decoded again, are exactly the simulator's prints
    # (a connection's first frames may be recorded before its "open" record)
    venue_of: dict[int, str] = {}
    by_conn: list[tuple[int, bytes]] = []
    for part in recording_files(directory):
        for r in CaptureReader(part):
            if r.kind == "open":
                venue_of[r.conn] = next(v for v, b in bases.items() if r.url.startswith(b))
            elif r.kind == "recv":
                by_conn.append((r.conn, r.payload))
    frames: dict[str, list[bytes]] = {v: [] for v in SYMBOL}
    for conn, payload in by_conn:
        frames[venue_of[conn]].append(payload)
    for venue, native in KEYS:
        codec = load_codec(venue)(record=True, on_error="skip", verify_checksum=False) \
            if venue == "kraken-v2" else load_codec(venue)(record=True, on_error="skip")
        for i, payload in enumerate(frames[venue]):
            if venue == "coinbase-advanced":
                codec.feed(payload, i, connection=0)
            elif payload != b"pong":
                codec.feed(payload, i)
        ev = codec.take_events()
        t = ev[ev["action"] == int(Action.TRADE)]
        got = [(codec.symbols[int(e["instrument"])], int(e["price"]), int(e["qty"]),
                bool(e["flags"] & int(Flags.AGGRESSOR_BUY)), int(e["sequence"]),
                int(e["side"])) for e in t]
        # the simulator's books have 2 price and 3 quantity decimals; the codec's, its own
        book = codec.book(native)
        fp, fq = 10 ** (book.price_decimals - 2), 10 ** (book.qty_decimals - 3)
        want = [(s, p * fp, q * fq, buyer, tid, 2 if buyer else 1)
                for s, p, q, buyer, tid in sent[venue]]
        assert len(got) >= 4 and got == want, venue
