"""Kraken WebSocket v1 and v2 ``book`` codecs and the checksum kernel, on real captures.

Every expected checksum result is recomputed here by an independent reference
(a dict book of the wire strings, ``decimal.Decimal`` ordering, ``zlib.crc32``
over the strings as Kraken's guide describes them), and the codec must agree
message by message: 4,269 of 4,269 in the v1 depth-1000 capture, 979 of 979 in
the v1 depth-10 capture, 510 of 510 in the v2 capture, plus Kraken's documented
example. The kernel (``_checksum``) is compared with its pure-Python twin by
hypothesis on random books.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import zlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbook
import fastbook.codecs._venues as _venues
from fastbook import _pycore
from fastbook.capture import RECEIVED, read_cryptofeed
from fastbook.codecs import _pychecksum, kraken
from fastbook.codecs._l2feed import FeedError, SyncState
from fastbook.codecs.instruments import kraken_instruments
from fastbook.codecs.kraken import KrakenV1, KrakenV2, rfc3339_ns
from fastbook.events import Action, Flags
from tests.helpers import DATA as TESTDATA
from tests.helpers.impls import compiled, requires_compiled
from tests.helpers.l2 import assert_replay_equals_feed as replay_equals_feed
from tests.helpers.l2 import book_levels

DATA = TESTDATA / "l2"
WS50 = DATA / "cryptofeed" / "KRAKEN.ws.50.0.gz"
ASSET_PAIRS = DATA / "cryptofeed" / "KRAKEN.0.gz"
SDK_V1 = DATA / "python-kraken-sdk" / "orderbook-v1.json.gz"
SDK_V2 = DATA / "python-kraken-sdk" / "orderbook-v2.json.gz"
DOC_EXAMPLE = DATA / "kraken-docs-example" / "ws_book_snapshot.json"

BID, ASK = fastbook.BID, fastbook.ASK


# -- the data ----------------------------------------------------------------------------------

def ws50_messages() -> list[tuple[bytes, int]]:
    return [(r.payload, r.recv_ns) for r in read_cryptofeed(WS50) if r.kind == RECEIVED]


def sdk_v1_messages() -> list[str]:
    d = json.load(gzip.open(SDK_V1))
    return [json.dumps(m) for m in d["init"] + d["updates"]]


def sdk_v2_messages() -> list[str]:
    raw = gzip.open(SDK_V2).read().decode()
    d = json.loads(raw)
    # The file was written by Python's json (indent=2): re-serialising each message
    # gives back exactly the number text of the file.
    assert json.dumps(d, indent=2) + "\n" == raw
    return [json.dumps(m) for m in [d["init"], *d["updates"]]]


def asset_pairs() -> bytes:
    (rec,) = list(read_cryptofeed(ASSET_PAIRS))
    return rec.payload


@pytest.fixture(scope="module")
def v2_instruments() -> list[Any]:
    return kraken_instruments(asset_pairs(), "kraken-v2")


# -- an independent reference: wire strings in dicts ----------------------------------------------

def _strip(text: str) -> str:
    return text.replace(".", "").lstrip("0")


class RefBook:
    """A Kraken book of wire strings, truncated like Kraken's guide says (or not)."""

    def __init__(self, depth: int, truncate: bool = True) -> None:
        self.depth = depth
        self.truncate = truncate
        self.sides: dict[str, dict[Decimal, tuple[str, str]]] = {"a": {}, "b": {}}

    def set(self, side: str, price: str, qty: str) -> None:
        book = self.sides[side]
        if Decimal(qty) == 0:
            book.pop(Decimal(price), None)
        else:
            book[Decimal(price)] = (price, qty)

    def best(self, side: str, n: int | None = None) -> list[tuple[str, str]]:
        book = self.sides[side]
        keys = sorted(book, reverse=side == "b")[:n]
        return [book[k] for k in keys]

    def finish(self) -> None:
        if self.truncate:
            for side in "ab":
                keep = set(self.best(side, self.depth))
                book = self.sides[side]
                for k in [k for k, v in book.items() if v not in keep]:
                    del book[k]

    def checksum(self, fmt: Any = None) -> int:
        fmt = fmt or (lambda price, qty: _strip(price) + _strip(qty))
        text = "".join(fmt(p, q) for side in "ab" for p, q in self.best(side, 10))
        return zlib.crc32(text.encode())


def ref_v1(messages: list[Any], truncate: bool = True) -> tuple[dict[str, RefBook], list[bool]]:
    """Replay v1 messages on RefBooks; the list says, per checksummed update, whether it matched."""
    books: dict[str, RefBook] = {}
    results = []
    for raw in messages:
        m = json.loads(raw)
        if not isinstance(m, list):
            continue
        pair, depth = m[-1], int(m[-2].split("-")[1])
        if "as" in m[1]:
            books[pair] = RefBook(depth, truncate)
            for side in "ab":
                for lv in m[1][side + "s"]:
                    books[pair].set(side, lv[0], lv[1])
            continue
        book = books[pair]
        crc = None
        for body in m[1:-2]:
            for side in "ab":
                for lv in body.get(side, ()):
                    book.set(side, lv[0], lv[1])
            crc = body.get("c", crc)
        book.finish()
        results.append(book.checksum() == int(crc))
    return books, results


def as_ints(ref: RefBook, side: str, pd: int, qd: int) -> list[tuple[int, int]]:
    return [(fastbook.parse_decimal(p, pd), fastbook.parse_decimal(q, qd))
            for p, q in ref.best(side)]


# -- v1, depth 1000: 4,269 of 4,269 ---------------------------------------------------------------

def test_v1_depth1000_every_checksum_verifies() -> None:
    messages = ws50_messages()
    raws = [m for m, _ in messages]
    ref_books, ref_results = ref_v1(raws)
    assert len(ref_results) == 4269 and all(ref_results)    # the data's own claim

    feed = KrakenV1(record=True)
    notices = []
    for raw, recv in messages:
        notices.extend(feed.feed(raw, recv))
    c = feed.counts()
    assert c["checksum_ok"] == 4269
    assert c["checksum_failed"] == c["resyncs"] == c["crossed"] == c["malformed"] == 0
    assert c["snapshots"] == 10 and c["applied"] == 4269 and c["messages"] == 4279
    # 31 heartbeats, 10 subscriptionStatus, 1 systemStatus
    assert c["ignored"] == 42
    assert [n.kind for n in notices] == ["synced"] * 10
    assert sorted(feed.symbols) == sorted(ref_books)
    # Each pair is kept at its wire decimals (read from the capture's strings).
    scales = {p: (feed.book(p).price_decimals, feed.book(p).qty_decimals) for p in feed.symbols}
    assert scales == {
        "WAVES/EUR": (6, 8), "XMR/USD": (8, 8), "KSM/XBT": (8, 8), "GRT/ETH": (9, 8),
        "SC/EUR": (6, 8), "ETH/CHF": (5, 8), "OCEAN/XBT": (9, 8), "OMG/USD": (6, 8),
        "XBT/CHF": (5, 8), "ADA/XBT": (9, 8)}
    assert feed.symbol_state("XBT/CHF").instrument.symbol == "BTC/CHF"
    for pair, ref in ref_books.items():
        book = feed.book(pair)
        assert feed.is_synced(pair)
        assert not book.is_crossed()
        pd, qd = scales[pair]
        assert book_levels(book, ASK) == as_ints(ref, "a", pd, qd)
        assert book_levels(book, BID) == as_ints(ref, "b", pd, qd)
    replay_equals_feed(feed, feed.take_events())


def test_v1_two_dict_update_uses_the_last_dicts_checksum() -> None:
    messages = ws50_messages()
    idx = [i for i, (m, _) in enumerate(messages) if m.startswith(b"[") and
           len(json.loads(m)) == 5]
    assert len(idx) == 1
    m = json.loads(messages[idx[0]][0])
    assert set(m[1]) == {"a"} and set(m[2]) == {"b", "c"}
    feed = KrakenV1()
    for raw, recv in messages[:idx[0]]:
        feed.feed(raw, recv)
    before = feed.counts(m[-1])["checksum_ok"]
    assert feed.feed(messages[idx[0]][0]) == []
    assert feed.counts(m[-1])["checksum_ok"] == before + 1
    # The same update with the checksum moved to the first dict is refused.
    bad = [m[0], {**m[1], "c": m[2]["c"]}, {"b": m[2]["b"]}, m[3], m[4]]
    with pytest.raises(FeedError, match="last object"):
        feed.feed(json.dumps(bad))


# -- v1, depth 10: 979 of 979, and 64 of 979 without truncation --------------------------------

def test_v1_depth10_every_checksum_verifies() -> None:
    messages = sdk_v1_messages()
    _, ref_results = ref_v1(messages)
    assert len(ref_results) == 979 and all(ref_results)
    feed = KrakenV1(record=True)
    kinds = []
    for raw in messages:
        kinds.extend(n.kind for n in feed.feed(raw))
    c = feed.counts("XBT/USD")
    assert (c["checksum_ok"], c["checksum_failed"], c["resyncs"]) == (979, 0, 0)
    assert kinds == ["synced"]
    assert c["truncated"] > 0
    assert feed.book("XBT/USD").depth(BID) <= 10 and feed.book("XBT/USD").depth(ASK) <= 10
    n_other = sum(1 for m in messages if not m.startswith("["))
    assert feed.counts()["ignored"] == n_other
    replay_equals_feed(feed, feed.take_events())


def test_v1_without_truncation_the_checksum_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    messages = sdk_v1_messages()
    _, untruncated = ref_v1(messages, truncate=False)
    assert (sum(untruncated), len(untruncated)) == (64, 979)
    first_bad = untruncated.index(False)

    real = _venues.checksum_kernel    # what the in-band feeds truncate and verify with

    class NoTruncation:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @staticmethod
        def truncate(book: Any, side: int, depth: int) -> list[int]:
            return []

    monkeypatch.setattr(_venues, "checksum_kernel", NoTruncation())
    feed = KrakenV1()
    updates = 0
    for raw in messages:
        notices = feed.feed(raw)
        if raw.startswith("[") and '"c"' in raw:
            updates += 1
            if updates - 1 == first_bad:
                assert [(n.kind, n.reason) for n in notices] == [
                    ("resync", "checksum"), ("resubscribe", "")]
                break
            assert notices == []
    c = feed.counts("XBT/USD")
    assert (c["checksum_ok"], c["checksum_failed"]) == (first_bad, 1)
    assert feed.state("XBT/USD") == SyncState.RESYNC


# -- corruption: detected, book discarded, never valid until the next snapshot -------------------

def test_v1_corrupted_level_resyncs_until_next_snapshot() -> None:
    messages = sdk_v1_messages()
    snapshot = next(m for m in messages if m.startswith("[") and '"as"' in m)
    updates = [i for i, m in enumerate(messages) if m.startswith("[") and '"c"' in m]
    k = updates[100]
    m = json.loads(messages[k])
    side = "a" if "a" in m[1] else "b"
    lv = m[1][side][0]
    lv[1] = "1.00000001" if lv[1] != "1.00000001" else "1.00000002"   # a wrong volume
    corrupted = json.dumps(m)

    feed = KrakenV1(record=True)
    for raw in messages[:k]:
        feed.feed(raw)
    assert feed.is_synced("XBT/USD")
    notices = feed.feed(corrupted)
    assert [(n.kind, n.reason, n.symbol) for n in notices] == [
        ("resync", "checksum", "XBT/USD"), ("resubscribe", "", "XBT/USD")]
    assert "Kraken sent" in notices[0].detail
    assert len(feed.book("XBT/USD")) == 0
    later = [raw for raw in messages[k + 1:] if raw.startswith("[")]
    for raw in later:
        assert feed.feed(raw) == []
        assert not feed.is_synced("XBT/USD")
    c = feed.counts("XBT/USD")
    assert c["dropped"] == len(later) and c["checksum_failed"] == 1 and c["resyncs"] == 1
    # The next snapshot makes it valid again.
    assert [n.kind for n in feed.feed(snapshot)] == ["synced"]
    assert feed.is_synced("XBT/USD")
    events = feed.take_events()
    assert (events["action"] == int(Action.CLEAR)).sum() == 1
    replay_equals_feed(feed, events)


# -- bad input ----------------------------------------------------------------------------------

def _synced_v1(on_error: str = "raise") -> tuple[KrakenV1, list[str]]:
    messages = sdk_v1_messages()
    feed = KrakenV1(on_error=on_error)
    n = next(i for i, m in enumerate(messages) if m.startswith("[") and '"as"' in m)
    for raw in messages[:n + 1]:
        feed.feed(raw)
    assert feed.is_synced("XBT/USD")
    return feed, messages[n + 1:]


def _update(levels: list[list[str]], side: str = "b", c: str = "1") -> str:
    return json.dumps([336, {side: levels, "c": c}, "book-10", "XBT/USD"])


BAD_V1 = [
    ('[336, {"b": [["27119.90000", "13.5"', "not JSON"),
    (_update([["abc", "1.00000000", "1693415330.621700"]]), "cannot parse"),
    (_update([["27119.900001", "1.00000000", "1693415330.621700"]]), "more decimal places"),
    (_update([["27119.90000", "-1.00000000", "1693415330.621700"]]), "not negative"),
    (_update([["0.00000", "1.00000000", "1693415330.621700"]]), "positive"),
    (_update([["27119.90000", "1.00000000"]]), "must be"),
    (_update([["27119.90000", "1.00000000", "1693415330.621700", "x"]]), "marker"),
    (_update([[27119.9, "1.00000000", "1693415330.621700"]]), "b\\[0\\]"),
    (_update([["9" * 30, "1.00000000", "1693415330.621700"]]), "b\\[0\\]"),
    (_update([["27119.90000", "1.00000000", "1693415330.621700"]], c="-5"), "32-bit"),
    (json.dumps([336, {"b": "nope", "c": "1"}, "book-10", "XBT/USD"]), "must be a list"),
    (json.dumps([336, {"z": [], "c": "1"}, "book-10", "XBT/USD"]), "unknown key"),
    (json.dumps([336, {"b": []}, "book-99", "XBT/USD"]), "channel name"),
    (json.dumps({"no": "event"}), "event object"),
    (json.dumps([336, "x", "book-10", "XBT/USD"]), "level objects"),
]


@pytest.mark.parametrize(("raw", "match"), BAD_V1)
def test_v1_bad_input_raises_naming_venue_symbol_message(raw: str, match: str) -> None:
    feed, _ = _synced_v1()
    before = (book_levels(feed.book("XBT/USD"), BID), book_levels(feed.book("XBT/USD"), ASK))
    with pytest.raises(FeedError, match=match) as info:
        feed.feed(raw)
    err = info.value
    assert err.venue == "kraken-v1"
    assert str(err).startswith("kraken-v1")
    assert f"message {feed.message_number}:" in str(err)
    book = feed.book("XBT/USD")
    if err.symbol:
        assert err.symbol == "XBT/USD"
        # A refused book message of a valid book: the book is discarded, never stale-valid.
        assert not feed.is_synced("XBT/USD") and len(book) == 0
    else:
        # Not attributable (not JSON, not a book message): the book is untouched.
        assert feed.is_synced("XBT/USD")
        assert (book_levels(book, BID), book_levels(book, ASK)) == before


def test_v1_bad_input_skip_mode_counts_and_reports() -> None:
    feed, rest = _synced_v1("skip")
    notices = feed.feed(BAD_V1[1][0])
    assert [(n.kind, n.reason) for n in notices] == [("resync", "malformed"), ("resubscribe", "")]
    assert feed.feed(BAD_V1[0][0]) == []
    c = feed.counts()
    assert c["malformed"] == 2
    assert feed.counts("XBT/USD")["malformed"] == 1
    assert [e.symbol for e in feed.errors] == ["XBT/USD", ""]
    assert all(e.venue == "kraken-v1" for e in feed.errors)
    assert not feed.is_synced("XBT/USD")
    for raw in rest:
        feed.feed(raw)
    assert not feed.is_synced("XBT/USD")


def test_v1_update_before_snapshot_and_symbol_filter() -> None:
    messages = ws50_messages()
    feed = KrakenV1()
    # An update for a pair never snapshotted: dropped and counted, no state created.
    upd = next(m for m, _ in messages if m.startswith(b"[") and b'"c"' in m)
    assert feed.feed(upd) == []
    assert feed.symbols == [] and feed.counts()["dropped"] == 1
    only = KrakenV1(symbols=["XBT/CHF"])
    for raw, recv in messages:
        only.feed(raw, recv)
    assert only.symbols == ["XBT/CHF"]
    c = only.counts()
    assert c["checksum_ok"] == c["applied"] > 0 and c["checksum_failed"] == 0
    full = KrakenV1()
    for raw, recv in messages:
        full.feed(raw, recv)
    assert full.counts("XBT/CHF")["checksum_ok"] == c["checksum_ok"]


def test_v1_depth_option_must_match_the_channel() -> None:
    messages = sdk_v1_messages()
    feed = KrakenV1(depth=25)
    with pytest.raises(FeedError, match="depth=25"):
        for raw in messages:
            feed.feed(raw)
    with pytest.raises(ValueError, match="depth"):
        KrakenV1(depth=7)


def test_v1_exchange_and_receive_times() -> None:
    messages = sdk_v1_messages()
    feed = KrakenV1(record=True)
    for i, raw in enumerate(messages[:6]):
        feed.feed(raw, 1000 + i)
    ev = feed.take_events()
    snap = json.loads(messages[3])
    newest = max(Decimal(lv[2]) for lv in snap[1]["as"] + snap[1]["bs"])
    assert ev["ts_exchange"][0] == int(newest * 10**9)
    assert ev["action"][0] == int(Action.SNAPSHOT_BEGIN)
    assert ev["action"][21] == int(Action.SNAPSHOT_END)
    assert (ev["flags"][1:21] == int(Flags.SNAPSHOT)).all()
    assert ev["flags"][21] == int(Flags.SNAPSHOT | Flags.LAST_IN_PACKET)
    upd = json.loads(messages[4])
    assert ev["ts_exchange"][22] == int(Decimal(upd[1]["b"][0][2]) * 10**9)
    assert ev["ts_receive"][22] == 1004
    assert ev["flags"][-1] == int(Flags.LAST_IN_PACKET)


# -- v2 -----------------------------------------------------------------------------------------

def _v2_ref_results(messages: list[str], fmt: Any) -> list[bool]:
    book = RefBook(10)
    out = []
    for raw in messages:
        m = json.loads(raw, parse_float=Decimal)
        d = m["data"][0]
        if m["type"] == "snapshot":
            book = RefBook(10)
        for side, key in (("b", "bids"), ("a", "asks")):
            for lv in d[key]:
                book.set(side, str(lv["price"]), str(lv["qty"]))
        book.finish()
        out.append(book.checksum(fmt) == d["checksum"])
    return out


def _precision(price: str, qty: str) -> str:
    return _strip(f"{Decimal(price):.1f}") + _strip(f"{Decimal(qty):.8f}")


def test_v2_every_checksum_verifies(v2_instruments: list[Any]) -> None:
    messages = sdk_v2_messages()
    assert all(_v2_ref_results(messages, _precision))
    as_float = _v2_ref_results(messages, lambda p, q: _strip(str(float(p))) + _strip(
        str(float(q))))
    assert not as_float[0] and sum(as_float) < 510    # str(float) loses the trailing zeros

    btc = next(i for i in v2_instruments if i.native == "BTC/USD")
    assert (btc.extra["price_precision"], btc.extra["qty_precision"]) == (1, 8)
    feed = KrakenV2(v2_instruments, record=True)
    kinds = []
    for raw in messages:
        kinds.extend(n.kind for n in feed.feed(raw))
    c = feed.counts("BTC/USD")
    assert (c["checksum_ok"], c["checksum_failed"], c["snapshots"], c["applied"]) == \
        (510, 0, 1, 509)
    assert kinds == ["synced"]
    last = json.loads(messages[-1])["data"][0]["timestamp"]
    assert feed.symbol_state("BTC/USD").ts == rfc3339_ns(last)
    replay_equals_feed(feed, feed.take_events())


def test_v2_documented_example(v2_instruments: list[Any]) -> None:
    text = DOC_EXAMPLE.read_text()
    assert json.loads(text)["data"][0]["checksum"] == 3310070434
    feed = KrakenV2(v2_instruments)
    assert [n.kind for n in feed.feed(text)] == ["synced"]
    assert feed.counts("BTC/USD")["checksum_ok"] == 1
    book = feed.book("BTC/USD")
    assert book.best_bid() == (452835, 10000000) and book.best_ask() == (452852, 100000)
    assert kraken.checksum_kernel.kraken_checksum(book) == 3310070434


def test_v2_wrong_precision_fails_the_snapshot_checksum(v2_instruments: list[Any]) -> None:
    import dataclasses

    btc = next(i for i in v2_instruments if i.native == "BTC/USD")
    wrong = dataclasses.replace(btc, extra={**btc.extra, "qty_precision": 7})
    feed = KrakenV2([wrong])
    notices = feed.feed(DOC_EXAMPLE.read_text())
    assert [(n.kind, n.reason) for n in notices] == [("resync", "checksum"), ("resubscribe", "")]
    assert not feed.is_synced("BTC/USD")


def test_v2_needs_precisions_or_reads_the_instrument_channel() -> None:
    text = DOC_EXAMPLE.read_text()
    with pytest.raises(FeedError, match="price_precision") as info:
        KrakenV2().feed(text)
    assert info.value.symbol == "BTC/USD"
    # The documented shape of the v2 instrument channel (docs.kraken.com, "Instrument").
    channel = {"channel": "instrument", "type": "snapshot", "data": {
        "assets": [{"id": "BTC", "status": "enabled", "precision": 10}],
        "pairs": [{"symbol": "BTC/USD", "base": "BTC", "quote": "USD", "status": "online",
                   "qty_precision": 8, "qty_increment": 0.00000001, "price_precision": 1,
                   "cost_precision": 5, "marginable": True, "has_index": True,
                   "cost_min": 0.5, "tick_size": 0.1, "price_increment": 0.1,
                   "qty_min": 0.0001}]}}
    feed = KrakenV2()
    assert feed.feed(json.dumps(channel)) == []
    assert [n.kind for n in feed.feed(text)] == ["synced"]
    inst = feed.symbol_state("BTC/USD").instrument
    assert (inst.price_decimals, inst.qty_decimals, inst.tick, inst.lot) == (1, 8, 1, 1)
    # Without verification the feed runs on default scales.
    loose = KrakenV2(verify_checksum=False)
    assert [n.kind for n in loose.feed(text)] == ["synced"]
    assert loose.counts("BTC/USD")["checksum_ok"] == 0


def _v2_update(bids: list[tuple[str, str]], asks: list[tuple[str, str]], book: RefBook) -> str:
    for p, q in bids:
        book.set("b", p, q)
    for p, q in asks:
        book.set("a", p, q)
    book.finish()
    crc = book.checksum(_precision)
    body = ", ".join([
        '"symbol": "BTC/USD"',
        '"bids": [' + ", ".join(f'{{"price": {p}, "qty": {q}}}' for p, q in bids) + "]",
        '"asks": [' + ", ".join(f'{{"price": {p}, "qty": {q}}}' for p, q in asks) + "]",
        f'"checksum": {crc}', '"timestamp": "2023-10-06T17:35:56.000001Z"'])
    return '{"channel": "book", "type": "update", "data": [{' + body + "}]}"


@pytest.mark.parametrize("acked", [None, 10, 25])
def test_v2_depth_from_the_subscription_ack(v2_instruments: list[Any], acked: int | None) -> None:
    text = DOC_EXAMPLE.read_text()
    feed = KrakenV2(v2_instruments)
    if acked is not None:
        ack = {"method": "subscribe", "result": {"channel": "book", "depth": acked,
                                                 "snapshot": True, "symbol": "BTC/USD"},
               "success": True, "time_in": "2023-10-06T17:35:55.000000Z",
               "time_out": "2023-10-06T17:35:55.000100Z"}
        assert feed.feed(json.dumps(ack)) == []
    feed.feed(text)
    ref = RefBook(acked or 10)
    snap = json.loads(text, parse_float=Decimal)["data"][0]
    for side, key in (("b", "bids"), ("a", "asks")):
        for lv in snap[key]:
            ref.set(side, str(lv["price"]), f"{lv['qty']:.8f}")
    # A new best bid pushes the 10th bid out of a depth-10 book.
    upd = _v2_update([("45283.6", "0.5")], [], ref)
    assert feed.feed(upd) == []
    assert feed.counts("BTC/USD")["checksum_ok"] == 2
    assert feed.book("BTC/USD").depth(BID) == (10 if (acked or 10) == 10 else 11)
    # exponent and integer JSON numbers are parsed exactly
    upd = _v2_update([("45283.6", "1e-05")], [("45290", "2")], ref)
    assert feed.feed(upd) == []
    book = feed.book("BTC/USD")
    assert book.qty_at(BID, 452836) == 1000 and book.qty_at(ASK, 452900) == 200000000
    assert feed.counts("BTC/USD")["checksum_ok"] == 3


BAD_V2 = [
    ('{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [{"price": '
     '45283.55, "qty": 1.0}], "asks": [], "checksum": 1}]}', "more decimal places"),
    ('{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [{"price": '
     '"45283.5", "qty": 1.0}], "asks": [], "checksum": 1}]}', "JSON number"),
    ('{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [{"qty": '
     '1.0}], "asks": [], "checksum": 1}]}', "lacks 'price'"),
    ('{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [{"price": '
     'true, "qty": 1.0}], "asks": [], "checksum": 1}]}', "JSON number"),
    ('{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [], '
     '"asks": [], "checksum": -1}]}', "32-bit"),
    ('{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [], '
     '"asks": [], "checksum": 1, "timestamp": "yesterday"}]}', "RFC 3339"),
    ('{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [{"price": '
     '45283.5, "qty": -1.0}], "asks": [], "checksum": 1}]}', "not negative"),
    ('{"channel": "book", "type": "nope", "data": []}', "snapshot/update"),
    ('{"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD", "bids": [], '
     '"asks": [], "checksum": 1', "not JSON"),
]


@pytest.mark.parametrize(("raw", "match"), BAD_V2)
def test_v2_bad_input(v2_instruments: list[Any], raw: str, match: str) -> None:
    feed = KrakenV2(v2_instruments)
    feed.feed(DOC_EXAMPLE.read_text())
    with pytest.raises(FeedError, match=match) as info:
        feed.feed(raw)
    assert info.value.venue == "kraken-v2"
    if info.value.symbol:
        assert info.value.symbol == "BTC/USD"
        assert not feed.is_synced("BTC/USD") and len(feed.book("BTC/USD")) == 0
    skip = KrakenV2(v2_instruments, on_error="skip")
    skip.feed(DOC_EXAMPLE.read_text())
    skip.feed(raw)
    assert skip.counts()["malformed"] == 1 and len(skip.errors) == 1


def test_v2_ignores_other_channels(v2_instruments: list[Any]) -> None:
    feed = KrakenV2(v2_instruments)
    for msg in ({"channel": "heartbeat"},
                {"channel": "status", "type": "update", "data": [{"system": "online"}]},
                {"channel": "ticker", "type": "update", "data": [{"symbol": "BTC/USD"}]},
                {"method": "pong", "req_id": 1}):
        assert feed.feed(json.dumps(msg)) == []
    assert feed.counts()["ignored"] == 4 and feed.symbols == []


def test_rfc3339_ns() -> None:
    t = "2023-10-06T17:35:55.440295Z"
    want = dt.datetime(2023, 10, 6, 17, 35, 55, tzinfo=dt.timezone.utc)
    assert rfc3339_ns(t) == int(want.timestamp()) * 10**9 + 440_295_000
    assert rfc3339_ns("1970-01-01T00:00:00Z") == 0
    assert rfc3339_ns("1970-01-01T00:00:01.123456789Z") == 1_123_456_789
    for bad in ("2023-10-06 17:35:55Z", "2023-10-06T17:35:55", "2023-13-06T17:35:55Z",
                "2023-10-06T17:35:55.1234567890Z", "2023-10-06T25:35:55Z", "x" * 25):
        with pytest.raises(ValueError,
                           match=rf"^not an RFC 3339 UTC time: {re.escape(repr(bad))}$"):
            rfc3339_ns(bad)


# -- the kernel and its twin ---------------------------------------------------------------------

kernel = compiled("fastbook.codecs._checksum")
needs_kernel = requires_compiled(kernel,
                                 reason="compiled kernel disabled by FASTBOOK_NO_EXTENSIONS")

VALUES = st.integers(min_value=-(10**18), max_value=10**18)
QTYS = st.integers(min_value=1, max_value=10**18)
DECIMALS = st.integers(min_value=0, max_value=18)
DIGITS = st.one_of(st.none(), DECIMALS)


@st.composite
def books(draw: Any) -> tuple[Any, Any]:
    pd, qd = draw(DECIMALS), draw(DECIMALS)
    compiled = fastbook.Book(price_decimals=pd, qty_decimals=qd)
    twin = _pycore.Book(price_decimals=pd, qty_decimals=qd)
    for side, price, qty in draw(st.lists(st.tuples(st.sampled_from([BID, ASK]), VALUES, QTYS),
                                          max_size=40)):
        compiled.set(side, price, qty)
        twin.set(side, price, qty)
    return compiled, twin


def _outcome(f: Any, *args: Any) -> Any:
    try:
        return f(*args)
    except ValueError as exc:
        return ("ValueError", str(exc))


@needs_kernel
@settings(max_examples=400, deadline=None)
@given(books(), DIGITS, DIGITS, st.integers(min_value=1, max_value=64))
def test_kernel_kraken_matches_twin(bk: tuple[Any, Any], pdig: Any, qdig: Any,
                                    levels: int) -> None:
    compiled, twin = bk
    want = _outcome(_pychecksum.kraken_text, twin, pdig, qdig, levels)
    assert _outcome(kernel.kraken_text, compiled, pdig, qdig, levels) == want
    want = _outcome(_pychecksum.kraken_checksum, twin, pdig, qdig, levels)
    assert _outcome(kernel.kraken_checksum, compiled, pdig, qdig, levels) == want


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(books(), st.integers(min_value=0, max_value=45))
def test_kernel_truncate_matches_twin(bk: tuple[Any, Any], depth: int) -> None:
    compiled, twin = bk
    for side in (BID, ASK):
        assert kernel.truncate(compiled, side, depth) == _pychecksum.truncate(twin, side, depth)
        assert book_levels(compiled, side) == book_levels(twin, side)
        assert compiled.depth(side) == min(depth, compiled.depth(side))


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_kernel_crc32_is_zlibs(data: bytes) -> None:
    assert kernel.crc32(data) == zlib.crc32(data) == _pychecksum.crc32(data)


def test_twin_kraken_text_literal() -> None:
    book = _pycore.Book(price_decimals=5, qty_decimals=8)
    book.set_str(ASK, "0.05000", "0.00100000")
    book.set_str(BID, "0.04000", "12.50000000")
    assert _pychecksum.kraken_text(book) == b"5000100000" + b"40001250000000"
    assert _pychecksum.kraken_text(book, 2, 3) == b"51" + b"412500"
    with pytest.raises(ValueError, match="more than 1 decimals"):
        _pychecksum.kraken_text(book, 1, 8)
    neg = _pycore.Book(price_decimals=2, qty_decimals=0)
    neg.set(BID, -5, 3)
    assert _pychecksum.kraken_text(neg) == b"-0053"
    for bad in (0, 65, True, "10"):
        with pytest.raises(ValueError, match="levels"):
            _pychecksum.kraken_text(book, levels=bad)


@needs_kernel
def test_kernel_refuses_bad_arguments_like_the_twin() -> None:
    book = fastbook.Book(price_decimals=2, qty_decimals=2)
    for args in ((19, None, 10), (None, -1, 10), (None, None, 0), (True, None, 10)):
        with pytest.raises(ValueError, match=r"^(levels|price_digits|qty_digits) must be "):
            kernel.kraken_checksum(book, *args)
    with pytest.raises(ValueError, match="side"):
        kernel.truncate(book, 3, 1)
    with pytest.raises(ValueError, match="depth"):
        kernel.truncate(book, BID, -1)
    # A pure-Python book goes to the twin.
    twin = _pycore.Book(price_decimals=1, qty_decimals=8)
    twin.set(BID, 452835, 10000000)
    assert kernel.kraken_checksum(twin) == _pychecksum.kraken_checksum(twin)
    assert kernel.COMPILED is True and _pychecksum.COMPILED is False


GOOD_TEXT = st.from_regex(r"[1-9][0-9]{0,8}(\.[0-9]{1,4})?", fullmatch=True)
TEXTS = st.one_of(
    GOOD_TEXT,
    st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{0,12})?", fullmatch=True),
    st.sampled_from(["", "r", "abc", "1e5", "0", "0.0", " 1", "1.5e-3", "1" * 25]),
)
ITEMS = st.one_of(TEXTS, st.integers(-5, 5), st.none(), st.floats(allow_nan=False))
GOOD_LEVEL = st.one_of(st.lists(GOOD_TEXT, min_size=3, max_size=3),
                       st.builds(lambda a, b, c: [a, b, c, "r"], GOOD_TEXT, GOOD_TEXT, GOOD_TEXT))
BAD_LEVEL = st.one_of(st.lists(TEXTS, min_size=3, max_size=4), st.lists(ITEMS, max_size=5),
                      st.tuples(TEXTS, TEXTS, TEXTS))


@st.composite
def level_lists(draw: Any) -> Any:
    """Mostly well-formed level lists, sometimes with one bad level somewhere."""
    levels = draw(st.lists(GOOD_LEVEL, max_size=8))
    if draw(st.booleans()):
        levels.insert(draw(st.integers(0, len(levels))), draw(BAD_LEVEL))
    return levels


@needs_kernel
@settings(max_examples=500, deadline=None)
@given(st.one_of(level_lists(), st.none(), st.text(max_size=3)),
       st.one_of(st.integers(4, 18), DECIMALS), st.one_of(st.integers(4, 18), DECIMALS),
       st.booleans())
def test_kernel_parse_levels_matches_twin(levels: Any, pd: int, qd: int, v1: bool) -> None:
    def run(f: Any) -> Any:
        prices: list[int] = []
        qtys: list[int] = []
        try:
            return f(levels, pd, qd, prices, qtys, "b", v1), prices, qtys
        except ValueError as exc:
            return str(exc)

    assert run(kernel.parse_levels) == run(_pychecksum.parse_levels)


SET_VALUES = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**64), 2**64),
                       st.sampled_from([0, 1, -1, True, -(2**63)]))


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(books(), st.sampled_from([BID, ASK, 0, 3]),
       st.lists(st.tuples(SET_VALUES, SET_VALUES), max_size=12))
def test_kernel_set_levels_matches_twin(bk: tuple[Any, Any], side: int,
                                        pairs: list[tuple[int, int]]) -> None:
    compiled, _ = bk
    twin = compiled.copy()      # the same core under both: only set_levels differs
    prices = [p for p, _ in pairs]
    qtys = [q for _, q in pairs]

    def run(f: Any, book: Any) -> Any:
        try:
            f(book, side, list(prices), list(qtys))
        except (ValueError, TypeError, OverflowError) as exc:
            return type(exc).__name__, str(exc)
        return None

    assert run(kernel.set_levels, compiled) == run(_pychecksum.set_levels, twin)
    for s in (BID, ASK):
        assert book_levels(compiled, s) == book_levels(twin, s)
    assert compiled.missing_deletes == twin.missing_deletes


def test_v1_with_instruments_keeps_metadata_at_the_wire_scale() -> None:
    instruments = kraken_instruments(asset_pairs(), "kraken-v1")
    feed = KrakenV1(instruments)
    for raw, recv in ws50_messages():
        feed.feed(raw, recv)
    assert feed.counts()["checksum_ok"] == 4269
    inst = feed.symbol_state("XBT/CHF").instrument
    # AssetPairs: pair_decimals 1, lot_decimals 8; the wire: 5 and 8 decimals.
    assert (inst.price_decimals, inst.qty_decimals, inst.tick, inst.lot) == (5, 8, 10000, 1)
    assert (inst.symbol, inst.extra["rest"], inst.extra["price_precision"]) == \
        ("BTC/CHF", "XBTCHF", 1)


def test_v1_snapshot_with_other_wire_decimals_is_refused() -> None:
    messages = sdk_v1_messages()
    feed = KrakenV1()
    for raw in messages[:4]:
        feed.feed(raw)
    assert feed.is_synced("XBT/USD") and feed.book("XBT/USD").price_decimals == 5
    snap = json.loads(messages[3])
    for lv in snap[1]["as"] + snap[1]["bs"]:
        lv[0] = lv[0] + "0"          # 6 price decimals now
    with pytest.raises(FeedError, match="make a new feed"):
        feed.feed(json.dumps(snap))
    assert not feed.is_synced("XBT/USD")
