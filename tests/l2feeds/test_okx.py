"""OKX ``books`` codec: the legacy checksum on the real 2022 capture, seqId continuity, bad input.

The capture's 290 checksums (3 snapshots, 287 updates) are recomputed here by
an independent reference (a dict book of the wire strings, ``zlib.crc32`` of
``bid1:ask1:...`` as OKX documents it, signed) and the codec must verify every
one, ending with the same books. seqId rules are exercised on hand-built
messages in OKX's documented shape.
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbook
from fastbook import _pycore
from fastbook.capture import RECEIVED, read_cryptofeed
from fastbook.codecs import _pychecksum
from fastbook.codecs._l2feed import FeedError, SyncState
from fastbook.codecs.instruments import okx_instruments
from fastbook.codecs.okx import Okx
from fastbook.events import Action
from tests.helpers import DATA as TESTDATA
from tests.helpers.impls import compiled, requires_compiled
from tests.helpers.l2 import assert_replay_equals_feed as replay_equals_feed
from tests.helpers.l2 import book_levels, push

DATA = TESTDATA / "l2"
CAPTURE = DATA / "cryptofeed" / "OKX.ws.1.0.gz"
_checksum = compiled("fastbook.codecs._checksum")
BID, ASK = fastbook.BID, fastbook.ASK


def capture() -> list[tuple[bytes, int]]:
    return [(r.payload, r.recv_ns) for r in read_cryptofeed(CAPTURE) if r.kind == RECEIVED]


class RefBook:
    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, tuple[str, str]]] = {"bids": {}, "asks": {}}

    def apply(self, d: dict) -> None:
        for key in ("bids", "asks"):
            for lv in d[key]:
                if Decimal(lv[1]) == 0:
                    self.sides[key].pop(Decimal(lv[0]), None)
                else:
                    self.sides[key][Decimal(lv[0])] = (lv[0], lv[1])

    def best(self, key: str, n: int | None = None) -> list[tuple[str, str]]:
        book = self.sides[key]
        return [book[k] for k in sorted(book, reverse=key == "bids")[:n]]

    def checksum(self) -> int:
        bids, asks = self.best("bids", 25), self.best("asks", 25)
        parts = []
        for i in range(25):
            for side in (bids, asks):
                if i < len(side):
                    parts.append(f"{side[i][0]}:{side[i][1]}")
        crc = zlib.crc32(":".join(parts).encode())
        return crc - (1 << 32) if crc >= 1 << 31 else crc


def test_every_checksum_of_the_capture_verifies() -> None:
    messages = capture()
    refs: dict[str, RefBook] = {}
    ok = 0
    for raw, _ in messages:
        if raw == b"pong":
            continue
        m = json.loads(raw)
        if m.get("arg", {}).get("channel") != "books" or "data" not in m:
            continue
        inst = m["arg"]["instId"]
        if m["action"] == "snapshot":
            refs[inst] = RefBook()
        refs[inst].apply(m["data"][0])
        ok += refs[inst].checksum() == m["data"][0]["checksum"]
    assert ok == 290    # the data's own claim, checked independently of fastbook

    feed = Okx(record=True)
    notices = []
    for raw, recv in messages:
        notices.extend(feed.feed(raw, recv))
    c = feed.counts()
    assert (c["checksum_ok"], c["checksum_failed"], c["resyncs"], c["crossed"]) == (290, 0, 0, 0)
    assert (c["snapshots"], c["applied"], c["messages"], c["malformed"]) == (3, 287, 290, 0)
    # acks and tickers; the 74 trades pushes (one print each), counted here before trades
    # became TRADE events, are the trades
    pushes = sum(1 for raw, _ in messages if b'"channel":"trades"' in raw and b'"data"' in raw)
    assert pushes == 74
    assert (c["ignored"], c["trades"]) == (len(messages) - 290 - 74, 74)
    assert [n.kind for n in notices] == ["synced"] * 3
    assert feed.symbols == ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"]
    for inst, ref in refs.items():
        book = feed.book(inst)
        for side, key in ((BID, "bids"), (ASK, "asks")):
            want = [(fastbook.parse_decimal(p, 8), fastbook.parse_decimal(q, 8))
                    for p, q in ref.best(key)]
            assert book_levels(book, side) == want
        assert not book.is_crossed()
    assert feed.book("BTC-USDT").depth(BID) == feed.book("BTC-USDT").depth(ASK) == 400
    names = {n: feed.symbol_state(n).instrument.symbol for n in feed.symbols}
    assert names == {"BTC-USD-220527": "BTC/USD:BTC-220527", "UNI-USD-SWAP": "UNI/USD:UNI",
                     "BTC-USDT": "BTC/USDT"}
    events = feed.take_events()
    last = json.loads(next(raw for raw, _ in reversed(messages) if b'"books"' in raw
                           and b'"data"' in raw))
    assert events["ts_exchange"][-1] == int(last["data"][0]["ts"]) * 1_000_000
    replay_equals_feed(feed, events)


def test_capture_with_instrument_scales() -> None:
    # The documented instruments shape, with the scales these three instruments had.
    doc = {"code": "0", "msg": "", "data": [
        {"instType": "FUTURES", "instId": "BTC-USD-220527", "uly": "BTC-USD",
         "instFamily": "BTC-USD", "settleCcy": "BTC", "ctVal": "100", "ctMult": "1",
         "ctValCcy": "USD", "ctType": "inverse", "tickSz": "0.1", "lotSz": "1", "minSz": "1",
         "baseCcy": "", "quoteCcy": "", "expTime": "1653638400000", "state": "live"},
        {"instType": "SWAP", "instId": "UNI-USD-SWAP", "uly": "UNI-USD", "instFamily": "UNI-USD",
         "settleCcy": "UNI", "ctVal": "10", "ctMult": "1", "ctValCcy": "USD",
         "ctType": "inverse", "tickSz": "0.001", "lotSz": "1", "minSz": "1", "baseCcy": "",
         "quoteCcy": "", "expTime": "", "state": "live"},
        {"instType": "SPOT", "instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT",
         "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "tickSz": "0.1",
         "lotSz": "0.00000001", "minSz": "0.00001", "state": "live"}]}
    instruments = okx_instruments(json.dumps(doc))
    feed = Okx(instruments)
    for raw, recv in capture():
        feed.feed(raw, recv)
    assert feed.counts()["checksum_ok"] == 290
    fut = feed.symbol_state("BTC-USD-220527").instrument
    assert (fut.price_decimals, fut.qty_decimals, fut.contract_size, fut.contract_unit) == \
        (1, 0, "100", "USD")
    assert feed.book("BTC-USD-220527").best_bid() == (302294, 2)


# -- seqId continuity ------------------------------------------------------------------------------

SNAP = push("snapshot", 10, -1, bids=[["100.5", "2", "0", "1"], ["100.4", "1", "0", "1"]],
            asks=[["100.7", "3", "0", "2"]])


def test_seq_chain_keepalive_reset_duplicate_and_gap() -> None:
    feed = Okx(record=True)
    assert [n.kind for n in feed.feed(SNAP)] == ["synced"]
    assert feed.feed(push("update", 11, 10, bids=[["100.6", "1", "0", "1"]])) == []
    assert feed.feed(push("update", 11, 10, bids=[["100.6", "9", "0", "1"]])) == []  # again
    assert feed.feed(push("update", 11, 11)) == []                  # keep-alive
    assert feed.feed(push("update", 3, 11, asks=[["100.8", "5", "0", "1"]])) == []  # reset
    c = feed.counts("BTC-USDT")
    assert (c["keepalive"], c["seq_resets"], c["duplicates"], c["dropped"]) == (1, 1, 1, 1)
    book = feed.book("BTC-USDT")
    assert book.qty_at(BID, 10060000000) == 100000000      # the repeated one was not applied
    assert book.qty_at(ASK, 10080000000) == 500000000
    assert feed.symbol_state("BTC-USDT").last_seq == 3
    notices = feed.feed(push("update", 9, 5, bids=[["100.1", "1", "0", "1"]]))
    assert [(n.kind, n.reason, n.sequence) for n in notices] == [
        ("resync", "gap", 9), ("resubscribe", "", None)]
    assert "prevSeqId 5" in notices[0].detail
    assert feed.state("BTC-USDT") == SyncState.RESYNC and len(feed.book("BTC-USDT")) == 0
    assert feed.feed(push("update", 10, 9)) == []
    assert feed.counts("BTC-USDT")["gaps"] == 1
    assert [n.kind for n in feed.feed(SNAP)] == ["synced"]
    events = feed.take_events()
    seqs = events["sequence"][events["action"] == int(Action.SET_LEVEL)].tolist()
    assert seqs[:5] == [10, 10, 10, 11, 3]
    replay_equals_feed(feed, events)


def test_checksum_zero_is_absent_and_a_wrong_one_resyncs() -> None:
    feed = Okx()
    feed.feed(SNAP)
    assert feed.feed(push("update", 11, 10, bids=[["100.6", "1", "0", "1"]], checksum=0)) == []
    c = feed.counts("BTC-USDT")
    assert (c["checksum_ok"], c["unverified"]) == (0, 2)
    book = feed.book("BTC-USDT")
    good = (_checksum or _pychecksum).okx_checksum(book)
    ref = RefBook()
    ref.apply({"bids": [["100.6", "1"], ["100.5", "2"], ["100.4", "1"]],
               "asks": [["100.7", "3"]]})
    assert good == ref.checksum() and good != 0
    assert feed.feed(push("update", 12, 11, checksum=ref.checksum())) == []
    assert feed.counts("BTC-USDT")["checksum_ok"] == 1
    notices = feed.feed(push("update", 13, 12, checksum=ref.checksum() ^ 1))
    assert [(n.kind, n.reason) for n in notices] == [("resync", "checksum"), ("resubscribe", "")]
    assert not feed.is_synced("BTC-USDT")


def test_crossed_book_resyncs() -> None:
    feed = Okx()
    feed.feed(SNAP)
    notices = feed.feed(push("update", 11, 10, bids=[["100.9", "1", "0", "1"]]))
    assert [(n.kind, n.reason) for n in notices] == [("resync", "crossed"), ("resubscribe", "")]
    assert feed.counts("BTC-USDT")["crossed"] == 1


BAD = [
    ('{"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update", "data": [{"asks"',
     "not JSON"),
    (push("update", 11, 10, bids=[["abc", "1", "0", "1"]]), "cannot parse"),
    (push("update", 11, 10, bids=[["100.123456789", "1", "0", "1"]]), "more decimal places"),
    (push("update", 11, 10, bids=[["100.6", "-1", "0", "1"]]), "not negative"),
    (push("update", 11, 10, bids=[["-100.6", "1", "0", "1"]]), "positive"),
    (push("update", 11, 10, bids=[["100.6"]]), "must be"),
    (push("update", 11, 10, checksum=1 << 40), "32-bit"),
    (push("update", 11, 10, ts="soon"), "ms"),
    (push("update", "11", 10), "integers"),
    (json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update",
                 "data": [{"bids": []}]}), "no 'asks'"),
    (json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "partial",
                 "data": []}), "snapshot/update"),
    (json.dumps({"arg": {"channel": "books"}, "action": "update", "data": []}), "instId"),
    (json.dumps({"data": []}), "arg.channel"),
    ("[1, 2]", "object"),
]


@pytest.mark.parametrize(("raw", "match"), BAD)
def test_bad_input(raw: str, match: str) -> None:
    feed = Okx()
    feed.feed(SNAP)
    before = (book_levels(feed.book("BTC-USDT"), BID), book_levels(feed.book("BTC-USDT"), ASK))
    with pytest.raises(FeedError, match=match) as info:
        feed.feed(raw)
    err = info.value
    assert err.venue == "okx" and f"message {feed.message_number}:" in str(err)
    if err.symbol:
        assert err.symbol == "BTC-USDT"
        assert not feed.is_synced("BTC-USDT") and len(feed.book("BTC-USDT")) == 0
    else:
        assert feed.is_synced("BTC-USDT")
        assert (book_levels(feed.book("BTC-USDT"), BID),
                book_levels(feed.book("BTC-USDT"), ASK)) == before
    skip = Okx(on_error="skip")
    skip.feed(SNAP)
    notices = skip.feed(raw)
    assert skip.counts()["malformed"] == 1 and skip.errors[-1].venue == "okx"
    if err.symbol:
        assert [(n.kind, n.reason) for n in notices] == [("resync", "malformed"),
                                                         ("resubscribe", "")]


def test_sequence_reported_in_errors() -> None:
    feed = Okx()
    feed.feed(SNAP)
    with pytest.raises(FeedError, match="seq 11") as info:
        feed.feed(push("update", 11, 10, bids=[["x", "1", "0", "1"]]))
    assert info.value.sequence == 11


def test_ignored_messages() -> None:
    feed = Okx()
    for raw in (b"pong", '{"event": "subscribe", "arg": {"channel": "books"}}',
                '{"event": "error", "code": "60012", "msg": "Invalid request"}',
                '{"arg": {"channel": "books5", "instId": "BTC-USDT"}, "data": []}',
                '{"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": []}'):
        assert feed.feed(raw) == []
    c = feed.counts()
    assert c["ignored"] == 5 and c["venue_errors"] == 1
    # An update before any snapshot: dropped and counted.
    assert feed.feed(push("update", 11, 10)) == []
    assert feed.counts()["dropped"] == 1 and feed.symbols == []


def test_depth_option_truncates() -> None:
    feed = Okx(depth=1, record=True)
    feed.feed(SNAP)
    assert feed.book("BTC-USDT").depth(BID) == 1
    feed.feed(push("update", 11, 10, bids=[["100.6", "1", "0", "1"]]))
    assert book_levels(feed.book("BTC-USDT"), BID) == [(10060000000, 100000000)]
    replay_equals_feed(feed, feed.take_events())
    with pytest.raises(ValueError, match=r"^depth must be None or a positive int, got 0$"):
        Okx(depth=0)


# -- the kernel's OKX text against its twin -------------------------------------------------------

VALUES = st.integers(min_value=-(10**18), max_value=10**18)
QTYS = st.integers(min_value=1, max_value=10**18)
DECIMALS = st.integers(min_value=0, max_value=18)


@requires_compiled(_checksum, reason="compiled kernel disabled by FASTBOOK_NO_EXTENSIONS")
@settings(max_examples=400, deadline=None)
@given(DECIMALS, DECIMALS, st.lists(st.tuples(st.sampled_from([BID, ASK]), VALUES, QTYS),
                                    max_size=60), st.integers(min_value=1, max_value=64))
def test_kernel_okx_matches_twin(pd: int, qd: int, levels: list[tuple[int, int, int]],
                                 n: int) -> None:
    from fastbook.codecs import _checksum

    compiled = fastbook.Book(price_decimals=pd, qty_decimals=qd)
    twin = _pycore.Book(price_decimals=pd, qty_decimals=qd)
    for side, price, qty in levels:
        compiled.set(side, price, qty)
        twin.set(side, price, qty)
    assert _checksum.okx_text(compiled, n) == _pychecksum.okx_text(twin, n)
    assert _checksum.okx_checksum(compiled, n) == _pychecksum.okx_checksum(twin, n)


def test_twin_okx_text_literal() -> None:
    book = _pycore.Book(price_decimals=2, qty_decimals=3)
    for side, price, qty in ((BID, "100.50", "2"), (BID, "100.4", "0.5"), (ASK, "100.7", "3.25")):
        book.set_str(side, price, qty)
    assert _pychecksum.okx_text(book) == b"100.5:2:100.7:3.25:100.4:0.5"
    crc = zlib.crc32(b"100.5:2:100.7:3.25:100.4:0.5")
    assert _pychecksum.okx_checksum(book) == (crc - (1 << 32) if crc >= 1 << 31 else crc)
