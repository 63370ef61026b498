"""Coinbase Exchange level2 on the real capture; Coinbase Advanced Trade on documented shapes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

import fastbook
from fastbook.capture import read_cryptofeed
from fastbook.codecs import coinbase
from fastbook.codecs._l2feed import FeedError, SyncState
from fastbook.events import Action
from tests.helpers import DATA
from tests.helpers.impls import KERNELS
from tests.helpers.l2 import adv, heartbeat, l2u, snap
from tests.helpers.l2 import adv_event as ev
from tests.helpers.l2 import feed_bookset as replay_events

CAPTURE = DATA / "l2" / "cryptofeed" / "COINBASE.ws.28.0.gz"
PRODUCTS = ["BAND-GBP", "SKL-GBP", "NU-GBP", "YFI-BTC", "SKL-BTC", "CRV-EUR", "BAND-BTC",
            "DASH-BTC", "NMR-EUR", "SKL-USD"]

_RECORDS: list[tuple[int, bytes]] = []


def records() -> list[tuple[int, bytes]]:
    if not _RECORDS:
        _RECORDS.extend((r.recv_ns, r.payload) for r in read_cryptofeed(CAPTURE)
                        if r.kind == "recv")
    return _RECORDS


# -- Coinbase Exchange: the real capture ------------------------------------------------------

def reference() -> dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal], int]]:
    """Plain dicts of Decimal: snapshot, then every l2update change in order."""
    books: dict[str, Any] = {}
    for _, payload in records():
        m = json.loads(payload)
        if m["type"] == "snapshot":
            books[m["product_id"]] = (
                {Decimal(p): Decimal(q) for p, q in m["bids"]},
                {Decimal(p): Decimal(q) for p, q in m["asks"]}, 0)
        elif m["type"] == "l2update":
            bids, asks, n = books[m["product_id"]]
            for side, p, q in m["changes"]:
                d = bids if side == "buy" else asks
                if Decimal(q) == 0:
                    d.pop(Decimal(p), None)
                else:
                    d[Decimal(p)] = Decimal(q)
            books[m["product_id"]] = (bids, asks, n + 1)
    return books


@pytest.mark.parametrize("kernel", KERNELS)
def test_exchange_capture(kernel: str) -> None:
    feed = coinbase.CoinbaseExchange(kernel=kernel)
    notices = []
    for recv, payload in records():
        notices += feed.feed(payload, recv)
        for s in feed.symbols:                       # never crossed, after every message
            assert not feed.book(s).is_crossed()
    assert sorted(feed.symbols) == sorted(PRODUCTS)
    assert [(n.kind, n.reason) for n in notices] == [("synced", "")] * 10
    c = feed.counts()
    assert (c["snapshots"], c["applied"], c["dropped"], c["crossed"], c["malformed"]) == \
        (10, 9719, 0, 0, 0)
    # subscriptions, ticker, last_match...: the 97 "match" messages, counted here before
    # trades became TRADE events, are the trades
    assert (c["ignored"], c["trades"]) == (217 - 97, 97)
    ref = reference()
    assert sum(n for _, _, n in ref.values()) == 9719
    for s in feed.symbols:
        book = feed.book(s)
        bids, asks, n = ref[s]
        assert feed.counts(s)["applied"] == n
        got_b = [(Decimal(book.format_price(p)), Decimal(book.format_qty(q)))
                 for p, q in book.levels(fastbook.BID)]
        got_a = [(Decimal(book.format_price(p)), Decimal(book.format_qty(q)))
                 for p, q in book.levels(fastbook.ASK)]
        assert got_b == sorted(bids.items(), reverse=True)
        assert got_a == sorted(asks.items())
        assert feed.is_synced(s)
    if kernel == "compiled":
        # every message on the fast path, but the first sight of each product
        assert (feed._scan.fast, feed._scan.slow) == (len(records()), 10)


def test_exchange_time_and_record() -> None:
    feed = coinbase.CoinbaseExchange(record=True)
    for recv, payload in records():
        feed.feed(payload, recv)
    ev = feed.take_events()
    bs = replay_events(feed, ev)
    for i, s in enumerate(feed.symbols):
        assert list(bs[i]) == list(feed.book(s))
    # exchange time: exact ns of the l2update "time"
    last = json.loads([p for _, p in records() if b'"l2update"' in p][-1])
    s = feed.symbol_state(last["product_id"])
    assert s.ts == coinbase.iso_to_ns(last["time"])
    assert coinbase.iso_to_ns("2021-04-17T16:43:37.075687Z") == 1618677817075687000
    updates = ev[ev["action"] == int(Action.SET_LEVEL)]
    assert (updates["ts_exchange"][updates["flags"] == 1] > 1618677000 * 10**9).all()
    book = ev[ev["action"] != int(Action.TRADE)]
    assert (book["sequence"] == 0).all()             # level2 has no sequence numbers


def test_iso_to_ns() -> None:
    assert coinbase.iso_to_ns("1970-01-01T00:00:00Z") == 0
    assert coinbase.iso_to_ns("2023-02-09T20:32:50.714964855Z") == 1675974770714964855
    assert coinbase.iso_to_ns("2019-08-14T20:42:27.265Z") == 1565815347265000000
    assert coinbase.iso_to_ns("2019-08-14T20:42:27+00:00") == 1565815347000000000
    for bad in ("2019-08-14 20:42:27Z", "2019-02-30T00:00:00Z", "2019-08-14T24:00:00Z",
                "2019-08-14T20:42:27.1234567890Z", "2019-08-14T20:42:27+01:00", ""):
        with pytest.raises(ValueError, match="ISO 8601"):
            coinbase.iso_to_ns(bad)


@pytest.mark.parametrize("kernel", KERNELS)
def test_exchange_rules(kernel: str) -> None:
    feed = coinbase.CoinbaseExchange(kernel=kernel, on_error="skip")
    assert feed.feed(l2u([("buy", "99", "1")])) == []      # before the snapshot: dropped
    assert feed.counts("BTC-USD")["dropped"] == 1
    assert [n.kind for n in feed.feed(snap())] == ["synced"]
    assert feed.feed(l2u([("buy", "100.10", "3"), ("sell", "100.50", "0")])) == []
    assert feed.book("BTC-USD").bbo() == (10010000000, 300000000, None, None)
    before = list(feed.book("BTC-USD"))
    bad = [l2u([("hold", "1", "1")]), l2u([("buy", "1.000000001", "1")]),
           l2u([("buy", "1", "-1")]), l2u([("buy", "1", "1")], time="yesterday"),
           json.dumps({"type": "l2update", "product_id": "BTC-USD"}).encode(),
           json.dumps({"type": "snapshot", "product_id": "BTC-USD", "bids": []}).encode(),
           b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy","1","1"]]',
           json.dumps({"type": "l2update", "product_id": 5, "changes": []}).encode()]
    for msg in bad:
        assert feed.feed(msg) == []
    assert list(feed.book("BTC-USD")) == before
    assert feed.counts()["malformed"] == len(bad)
    texts = [str(e) for e in feed.errors]
    assert "side 'hold' is not one of buy, sell" in texts[0]
    assert "more decimal places" in texts[1]
    assert "negative quantity" in texts[2]
    assert "time: not a UTC ISO 8601 time" in texts[3]
    assert "needs 'changes'" in texts[4]
    assert "needs 'bids' and 'asks'" in texts[5]
    assert "not valid JSON" in texts[6]
    assert all(t.startswith("coinbase-exchange") for t in texts)
    assert "BTC-USD" in texts[0]
    # crossed: resync and resubscribe
    notices = feed.feed(l2u([("sell", "100.10", "1")]))
    assert [(n.kind, n.reason) for n in notices] == [("resync", "crossed"), ("resubscribe", "")]
    assert feed.state("BTC-USD") is SyncState.RESYNC and len(feed.book("BTC-USD")) == 0
    assert [n.kind for n in feed.feed(snap())] == ["synced"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_exchange_other_messages(kernel: str) -> None:
    feed = coinbase.CoinbaseExchange(kernel=kernel, symbols=["BTC-USD"])
    for msg in (b'{"type":"heartbeat","sequence":1,"product_id":"BTC-USD"}',
                b'{"type":"subscriptions","channels":[]}', snap("ETH-USD"),
                l2u([("buy", "1", "1")], "ETH-USD")):
        assert feed.feed(msg) == []
    assert feed.counts_total["ignored"] == 4 and feed.symbols == []
    with pytest.raises(FeedError, match="the venue sent an error: Failed to subscribe"):
        feed.feed(b'{"type":"error","message":"Failed to subscribe","reason":"x"}')
    with pytest.raises(FeedError, match="unknown type 'mystery'"):
        feed.feed(b'{"type":"mystery"}')
    with pytest.raises(FeedError, match="no 'type'"):
        feed.feed(b'{"product_id":"BTC-USD"}')


# -- Coinbase Advanced Trade: documented shapes --------------------------------------------


def test_advanced_snapshot_and_updates() -> None:
    feed = coinbase.CoinbaseAdvanced(record=True)
    n = feed.feed(adv(0, [ev("snapshot", "BTC-USD", ("bid", "21921.73", "0.06317902"),
                             ("offer", "21921.74", "1.5"), ("ask", "21925", "2"))]), 7)
    assert [(x.kind, x.symbol, x.sequence) for x in n] == [("synced", "BTC-USD", 0)]
    book = feed.book("BTC-USD")
    assert book.bbo() == (2192173000000, 6317902, 2192174000000, 150000000)
    s = feed.symbol_state("BTC-USD")
    assert s.ts == 1675974770714964855                 # the envelope, not event_time 1970
    assert feed.feed(heartbeat(1)) == []
    assert feed.feed(adv(2, [ev("update", "BTC-USD", ("offer", "21921.74", "0"),
                                ("bid", "21921.70", "3"))])) == []
    assert book.best_ask() == (2192500000000, 200000000)
    assert s.last_seq == 2
    c = feed.counts()
    assert (c["snapshots"], c["applied"], c["ignored"], c["levels"]) == (1, 1, 1, 5)
    bs = replay_events(feed, feed.take_events())
    assert list(bs[0]) == list(book)


def test_advanced_gap_resyncs_the_connection() -> None:
    feed = coinbase.CoinbaseAdvanced()
    feed.feed(adv(0, [ev("snapshot", "BTC-USD", ("bid", "10", "1"), ("offer", "11", "1")),
                      ev("snapshot", "ETH-USD", ("bid", "1", "1"), ("offer", "2", "1"))]))
    feed.feed(adv(0, [ev("snapshot", "SOL-USD", ("bid", "5", "1"), ("offer", "6", "1"))]),
              connection=1)
    feed.feed(adv(1, [ev("update", "BTC-USD", ("bid", "10", "2"))]))
    n = feed.feed(adv(4, [ev("update", "ETH-USD", ("bid", "1", "9"))]))   # 2 and 3 lost
    assert [(x.kind, x.symbol, x.reason) for x in n] == [
        ("resync", "BTC-USD", "gap"), ("resubscribe", "BTC-USD", ""),
        ("resync", "ETH-USD", "gap"), ("resubscribe", "ETH-USD", "")]
    assert "2 message(s) lost" in n[0].detail and n[0].sequence == 4
    assert not feed.is_synced("BTC-USD") and not feed.is_synced("ETH-USD")
    assert feed.is_synced("SOL-USD")                      # another connection
    assert feed.counts()["gaps"] == 1
    assert feed.counts("ETH-USD")["dropped"] == 1         # the update after the gap
    # the resubscription's snapshot brings the symbol back
    n = feed.feed(adv(5, [ev("snapshot", "ETH-USD", ("bid", "1", "3"), ("offer", "2", "1"))]))
    assert [x.kind for x in n] == ["synced"]
    # duplicate / out of order: refused, nothing changes
    before = list(feed.book("ETH-USD"))
    with pytest.raises(FeedError, match="out-of-order message: sequence_num 5 after 5") as exc:
        feed.feed(adv(5, [ev("update", "ETH-USD", ("bid", "1", "7"))]))
    assert exc.value.sequence == 5
    assert list(feed.book("ETH-USD")) == before
    # a new connection the feed was not told about: sequence restarts at 0
    n = feed.feed(heartbeat(0))
    assert [(x.kind, x.reason) for x in n] == [("resync", "sequence_reset"),
                                              ("resubscribe", "")]
    n = feed.connection_closed(1)
    assert [(x.kind, x.symbol, x.reason) for x in n] == [("resync", "SOL-USD", "disconnected"),
                                                        ("resubscribe", "SOL-USD", "")]
    assert feed.feed(adv(0, [ev("snapshot", "SOL-USD", ("bid", "5", "1"))]), connection=1)


def test_advanced_message_is_all_or_nothing() -> None:
    feed = coinbase.CoinbaseAdvanced(on_error="skip")
    feed.feed(adv(0, [ev("snapshot", "BTC-USD", ("bid", "10", "1"), ("offer", "11", "1")),
                      ev("snapshot", "ETH-USD", ("bid", "1", "1"), ("offer", "2", "1"))]))
    before = (list(feed.book("BTC-USD")), list(feed.book("ETH-USD")))
    bad = [
        adv(1, [ev("update", "BTC-USD", ("bid", "10", "5")),
                ev("update", "ETH-USD", ("bid", "1.0.0", "1"))]),
        adv(2, [ev("update", "BTC-USD", ("bid", "10", "5")),
                ev("update", "ETH-USD", ("middle", "1", "1"))]),
        adv(3, [ev("update", "BTC-USD", ("bid", "10", "-5"))]),
        adv(4, [{"type": "update", "product_id": "BTC-USD", "updates": [{"side": "bid"}]}]),
        adv(5, [ev("refresh", "BTC-USD")]),
        adv(6, "x"),
        adv(7, [ev("update", "BTC-USD", ("bid", "10", "5"))], ts="nope"),
        b'{"channel":"l2_data","sequence_num":8,"events":[',
        json.dumps({"channel": "l2_data", "sequence_num": "9", "events": []}).encode(),
        json.dumps({"type": "error", "message": "bad jwt"}).encode(),
        json.dumps({"channel": "mystery", "sequence_num": 8}).encode(),
    ]
    for msg in bad:
        assert feed.feed(msg) == []
    assert (list(feed.book("BTC-USD")), list(feed.book("ETH-USD"))) == before
    assert feed.counts()["malformed"] == len(bad)
    assert all(str(e).startswith("coinbase-advanced") for e in feed.errors)
    assert "events[1].updates[0]" in str(feed.errors[0])
    assert "'middle' is not bid/offer" in str(feed.errors[1])
    assert "the venue sent an error: bad jwt" in str(feed.errors[9])
    assert "channel 'mystery'" in str(feed.errors[10])


def test_advanced_update_before_snapshot_and_crossed() -> None:
    feed = coinbase.CoinbaseAdvanced(symbols=["BTC-USD"])
    assert feed.feed(adv(0, [ev("update", "BTC-USD", ("bid", "10", "1"))])) == []
    assert feed.counts("BTC-USD")["dropped"] == 1 and not feed.is_synced("BTC-USD")
    feed.feed(adv(1, [ev("snapshot", "BTC-USD", ("bid", "10", "1"), ("offer", "11", "1")),
                      ev("snapshot", "ETH-USD", ("bid", "1", "1"))]))
    assert feed.symbols == ["BTC-USD"] and feed.counts_total["ignored"] == 1
    n = feed.feed(adv(2, [ev("update", "BTC-USD", ("offer", "10", "1"))]))
    assert [(x.kind, x.reason) for x in n] == [("resync", "crossed"), ("resubscribe", "")]
