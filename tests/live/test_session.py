"""The sans-IO session on its own: frames in, book states out (no sockets)."""

from __future__ import annotations

import json

from fastbook.codecs._l2feed import KEEP_ERRORS
from fastbook.live import BookState, parse_specs
from fastbook.live._session import Session


def _snapshot(bid: str = "100.00") -> str:
    return json.dumps({"type": "snapshot", "product_id": "BTC-USD",
                       "bids": [[bid, "1.5"]], "asks": [["101.00", "2"]]})


def test_a_refused_frame_is_seen_after_the_kept_errors_are_full():
    """The codec keeps only its last KEEP_ERRORS errors: the session must still notice
    every new refusal (an unreadable Coinbase Exchange frame rebuilds the books)."""
    s = Session(parse_specs(["coinbase-exchange:BTC-USD"]))
    c = s.open(1, "coinbase-exchange", ["BTC-USD"], "ws://127.0.0.1:1", 0)
    t = s.track("coinbase-exchange", "BTC-USD")
    for i in range(KEEP_ERRORS + 5):
        s.received(1, "{not json", 10 + i)
    assert len(c.feed.errors) == KEEP_ERRORS
    s.received(1, _snapshot(), 1_000)
    assert t.state is BookState.LIVE
    resyncs = s.counts("coinbase-exchange", "BTC-USD")["resyncs"]
    s.received(1, "{not json either", 2_000)
    assert t.state is BookState.RESYNCING
    assert s.counts("coinbase-exchange", "BTC-USD")["resyncs"] == resyncs + 1
    assert len(s.book("coinbase-exchange", "BTC-USD")) == 0


def test_each_venue_gets_the_depth_it_offers_and_its_codec_keeps_it():
    specs = parse_specs(["kraken-v2:BTC/USD", "bybit:BTCUSDT", "okx:BTC-USDT",
                         "binance-spot:BTCUSDT"])
    for depth, want in [(None, {"kraken-v2": 10, "bybit": 50}),
                        (10, {"kraken-v2": 10, "bybit": 50}),
                        (26, {"kraken-v2": 100, "bybit": 50}),
                        (1, {"kraken-v2": 10, "bybit": 1}),
                        (5000, {"kraken-v2": 1000, "bybit": 1000})]:
        s = Session(specs, depth=depth)
        got = {v: s.venue_depth(v) for v in ("kraken-v2", "bybit", "okx", "binance-spot")}
        # OKX and Binance keep the full book: cutting an OKX book below what the channel
        # sends could lose a level that a delete brings back into the checksummed top 25
        assert got == {**want, "okx": None, "binance-spot": None}, depth
        for i, venue in enumerate(got, 1):
            c = s.open(i, venue, [s.tracks[k].native for k in s.tracks if k[0] == venue])
            assert c.feed.depth == got[venue]


def test_frames_and_bodies_for_a_closed_connection_are_counted():
    s = Session(parse_specs(["okx:BTC-USDT"]))
    s.open(1, "okx", ["BTC-USDT"])
    s.closed(1, "bye")
    s.received(1, "{}", 5)
    s.rest(1, "BTC-USDT", "{}", 6)
    s.received(7, "{}", 7)
    assert dict(s.late) == {"frames_after_close": 2, "snapshots_after_close": 1}
