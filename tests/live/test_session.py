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
