"""A refused venue message leaves every book exactly as it was (issue 25).

For every venue (Binance spot, USD-M, COIN-M, Coinbase Exchange and Advanced Trade,
Kraken v1 and v2, OKX, Bybit), the fuzz harness walks the real capture (or, for Bybit
and Coinbase Advanced Trade, messages in the venues' documented shape) and puts a
mutated copy of half the messages before the original. Around every message the
book state of every symbol (sync state, every level of both sides) is taken; after
every refused one (raised in raise mode, counted ``malformed`` in skip mode, for the
compiled scanner and the twin) it must be unchanged, but for the one documented
discard: a Kraken or OKX book that was synced and misses the refused update becomes
``RESYNC`` and empty, with a ``resync`` notice (reason ``"malformed"``).
"""

from __future__ import annotations

import json

import pytest

from fastbook.codecs._l2feed import FeedError, SyncState
from fastbook.codecs.kraken import KrakenV2
from fastbook.codecs.okx import Okx
from tests.fuzz import harness

VENUES = ["binance-spot", "binance-usdm", "binance-coinm", "coinbase-exchange",
          "coinbase-advanced", "kraken-v1", "kraken-v2", "okx", "bybit"]


@pytest.mark.parametrize("venue", VENUES)
def test_refused_messages_change_no_book(venue: str) -> None:
    stats = harness.run(venue, 400, seed=25)
    assert [f.short() for f in stats.findings] == []
    # the run is not vacuous: many mutations were refused, some were valid messages
    assert stats.refused >= 150 and stats.accepted >= 10, (stats.refused, stats.accepted)


def _v2_feed(mode: str) -> KrakenV2:
    feed = KrakenV2(on_error=mode, verify_checksum=False)
    snap = {"channel": "book", "type": "snapshot", "data": [
        {"symbol": sym, "bids": [{"price": 100.5, "qty": 1.0}], "asks": [{"price": 101.5,
                                                                          "qty": 2.0}]}
        for sym in ("BTC/USD", "ETH/USD")]}
    feed.feed(json.dumps(snap))
    assert feed.is_synced("BTC/USD") and feed.is_synced("ETH/USD")
    return feed


def _v2_update(second: dict) -> str:
    return json.dumps({"channel": "book", "type": "update", "data": [
        {"symbol": "BTC/USD", "bids": [{"price": 100.0, "qty": 5.0}], "asks": []}, second]})


@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_kraken_v2_message_refused_by_its_second_entry_applies_nothing(mode: str) -> None:
    feed = _v2_feed(mode)
    before = list(feed.book("BTC/USD").levels(1))
    bad = _v2_update({"symbol": "ETH/USD", "bids": [{"price": "x", "qty": 1.0}]})
    if mode == "raise":
        with pytest.raises(FeedError, match="kraken-v2 ETH/USD"):
            feed.feed(bad)
    else:
        notices = feed.feed(bad)
        assert [(n.kind, n.symbol, n.reason) for n in notices][:1] == \
            [("resync", "ETH/USD", "malformed")]
        assert feed.counts()["malformed"] == 1
    # before: BTC/USD's entry was applied (100.0 x 5 added) although the message was refused
    assert list(feed.book("BTC/USD").levels(1)) == before
    assert feed.state("BTC/USD") == SyncState.SYNCED
    assert feed.counts("BTC/USD")["applied"] == 0
    # the refused entry's own book misses an update: discarded, as documented
    assert feed.state("ETH/USD") == SyncState.RESYNC


def test_kraken_v2_message_refused_by_a_non_object_entry() -> None:
    feed = _v2_feed("skip")
    before = list(feed.book("BTC/USD").levels(1))
    assert feed.feed(_v2_update([1, 2])) == []      # type: ignore[arg-type]
    assert list(feed.book("BTC/USD").levels(1)) == before
    assert feed.counts()["malformed"] == 1


def test_kraken_v2_new_symbol_not_created_by_a_refused_snapshot() -> None:
    feed = KrakenV2(on_error="skip", verify_checksum=False)
    feed.feed(json.dumps({"channel": "book", "type": "snapshot", "data": [
        {"symbol": "BTC/USD", "bids": [], "asks": []},
        {"symbol": "ETH/USD", "bids": [{"price": -1, "qty": 1}], "asks": []}]}))
    assert feed.symbols == [] and feed.counts()["malformed"] == 1


@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_okx_message_refused_by_its_second_entry_applies_nothing(mode: str) -> None:
    feed = Okx(on_error=mode, verify_checksum=False)
    feed.feed(json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"},
                          "action": "snapshot", "data": [
                              {"asks": [["101.5", "2", "0", "1"]], "bids": [["100.5", "1", "0",
                                                                             "1"]],
                               "ts": "1", "seqId": 1, "prevSeqId": -1}]}))
    assert feed.is_synced("BTC-USDT")
    good = {"asks": [], "bids": [["100", "5", "0", "1"]], "ts": "2", "seqId": 2, "prevSeqId": 1}
    bad = {"asks": [], "bids": [["x", "5", "0", "1"]], "ts": "3", "seqId": 3, "prevSeqId": 2}
    msg = json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update",
                      "data": [good, bad]})
    if mode == "raise":
        with pytest.raises(FeedError, match="okx BTC-USDT seq 3"):
            feed.feed(msg)
    else:
        feed.feed(msg)
    # before: the first entry was applied (and seqId 2 taken) before the second was refused
    assert feed.counts("BTC-USDT")["applied"] == 0
    assert feed.state("BTC-USDT") == SyncState.RESYNC   # discarded: it misses an update
