"""Binance spot, Binance.US, USD-M and COIN-M depth sync on the real cryptofeed captures.

Expected values come from ``tests/data/l2/README.md`` / the shared spec: all 22
symbols synchronise with no gap and never cross; spot's first applied update has
``U == lastUpdateId + 1``; on USD-M, AKRO/KEEP/CTK's first applied update ends
exactly at ``lastUpdateId``; final best bid/ask NKNUSDT 0.35270000/0.35310000 and
SUSHIUSDT 7.6120/7.6160. Every other final book is compared with an independent
replay written here (dicts of ``Decimal``, the rules restated from the spec).
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

import fastbook
from fastbook.capture import read_cryptofeed
from fastbook.codecs import binance
from fastbook.codecs._l2feed import FeedError, Instrument, SyncState
from fastbook.events import Action, Flags
from tests.helpers import DATA as TESTDATA
from tests.helpers.impls import KERNELS
from tests.helpers.l2 import depth, rest
from tests.helpers.l2 import feed_bookset as replay_events

DATA = TESTDATA / "l2" / "cryptofeed"

MARKETS = {
    "BINANCE": binance.BinanceSpot,
    "BINANCE_US": binance.BinanceUS,
    "BINANCE_FUTURES": binance.BinanceUSDM,
    "BINANCE_DELIVERY": binance.BinanceCOINM,
}
SYMBOLS = {
    "BINANCE": ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"],
    "BINANCE_US": ["COMPUSDT", "OMGBUSD", "CRVUSDT", "ZRXUSDT"],
    "BINANCE_FUTURES": ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"],
    "BINANCE_DELIVERY": ["BCHUSD_PERP", "LINKUSD_PERP", "BCHUSD_210924", "ETCUSD_PERP",
                         "ETHUSD_210924", "XRPUSD_PERP", "BTCUSD_211231", "TRXUSD_PERP",
                         "LINKUSD_211231", "EOSUSD_PERP"],
}
#: lastUpdateId of the REST snapshots (README: spot values; the rest read from the files).
SPOT_SNAPSHOT_IDS = {"NKNUSDT": 499869752, "BLZETH": 281916627, "LRCBTC": 259345543,
                     "RUNEEUR": 15602511}



# -- the captures ----------------------------------------------------------------------------

def _records(name: str) -> list[tuple[str, int, str, bytes]]:
    """(kind, recv_ns, symbol or "", payload) of the websocket and REST files, in receive order."""
    out = []
    for r in read_cryptofeed(DATA / f"{name}.ws.1.0.gz"):
        if r.kind == "recv":
            out.append(("ws", r.recv_ns, "", r.payload))
    for r in read_cryptofeed(DATA / f"{name}.http.0.0.gz"):
        assert r.kind == "rest"
        symbol = parse_qs(urlparse(r.url).query)["symbol"][0]
        out.append(("rest", r.recv_ns, symbol, r.payload))
    out.sort(key=lambda x: x[1])     # stable: a websocket message first on a tie
    return out


_CACHE: dict[str, list[tuple[str, int, str, bytes]]] = {}


def records(name: str) -> list[tuple[str, int, str, bytes]]:
    if name not in _CACHE:
        _CACHE[name] = _records(name)
    return _CACHE[name]


def run(feed: Any, recs: list[tuple[str, int, str, bytes]], check: bool = True) -> list[Any]:
    """Feed ``recs``; after every message, no synced book may be crossed."""
    notices = []
    for kind, recv, symbol, payload in recs:
        if kind == "rest":
            notices += feed.snapshot(symbol, payload, recv)
        else:
            notices += feed.feed(payload, recv)
        if check:
            for s in feed.symbols:
                if feed.is_synced(s):
                    assert not feed.book(s).is_crossed(), s
    return notices


def depth_updates(name: str) -> list[dict[str, Any]]:
    out = []
    for kind, _, _, payload in records(name):
        if kind == "ws":
            d = json.loads(payload)["data"]
            if d.get("e") == "depthUpdate":
                out.append(d)
    return out


# -- an independent reference replay: dicts of Decimal ------------------------------------

def reference(name: str) -> dict[str, dict[str, Any]]:
    """Replay ``name`` with the spec's rules, written out plainly; the result per symbol."""
    futures = name in ("BINANCE_FUTURES", "BINANCE_DELIVERY")
    books: dict[str, dict[str, Any]] = {}
    for kind, _, symbol, payload in records(name):
        msg = json.loads(payload)
        if kind == "rest":
            st = books.setdefault(symbol, {"buffer": []})
            L = msg["lastUpdateId"]
            st["bids"] = {Decimal(p): Decimal(q) for p, q in msg["bids"]}
            st["asks"] = {Decimal(p): Decimal(q) for p, q in msg["asks"]}
            st["L"], st["last"], st["first"] = L, L, None
            pending, st["buffer"] = st["buffer"], []
            for ev in pending:
                _ref_update(st, ev, futures)
            continue
        d = msg["data"]
        if d.get("e") != "depthUpdate":
            continue
        st = books.setdefault(d["s"], {"buffer": []})
        if "L" not in st:
            st["buffer"].append(d)
        else:
            _ref_update(st, d, futures)
    return books


def _ref_update(st: dict[str, Any], d: dict[str, Any], futures: bool) -> None:
    U, u, L, last = d["U"], d["u"], st["L"], st["last"]
    if st["first"] is None:
        if (u < L) if futures else (u <= L):
            return                                      # in the snapshot already
        ok = (U <= L <= u) if futures else (U <= L + 1 <= u)
        assert ok, f"{d['s']}: the first update after the snapshot does not bridge it"
        st["first"] = (U, u)
    else:
        ok = (d["pu"] == last) if futures else (U == last + 1)
        assert ok, f"{d['s']}: gap after u={last}"
    for side, key in (("bids", "b"), ("asks", "a")):
        for p, q in d[key]:
            if Decimal(q) == 0:
                st[side].pop(Decimal(p), None)
            else:
                st[side][Decimal(p)] = Decimal(q)
    st["last"] = u


def _levels(book: Any, side: int) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(book.format_price(p)), Decimal(book.format_qty(q)))
            for p, q in book.levels(side)]


# -- the real captures -------------------------------------------------------------------

@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", list(MARKETS))
def test_capture_syncs_without_gaps(name: str, kernel: str) -> None:
    feed = MARKETS[name](kernel=kernel)
    notices = run(feed, records(name))
    assert feed.symbols == SYMBOLS[name]
    kinds = Counter((n.kind, n.reason) for n in notices)
    n = len(SYMBOLS[name])
    assert kinds == {("request_snapshot", ""): n, ("synced", ""): n}
    total = feed.counts()
    for key in ("gaps", "resyncs", "crossed", "malformed", "out_of_order", "snapshot_too_old"):
        assert total[key] == 0, key
    assert total["snapshots"] == n
    for s in feed.symbols:
        assert feed.state(s) is SyncState.SYNCED
        c = feed.counts(s)
        # every depth update of the symbol is accounted for
        assert c["messages"] == c["applied"] + c["dropped"] + 1   # + the snapshot
        assert c["buffered"] >= 1
    updates = depth_updates(name)
    assert total["applied"] + total["dropped"] == len(updates)
    assert total["messages"] == len(updates) + n


def test_capture_counts_exact() -> None:
    """The message counts of each capture, as read from the files."""
    counts = {}
    for name in MARKETS:
        feed = MARKETS[name]()
        run(feed, records(name), check=False)
        c = feed.counts()
        counts[name] = (c["applied"], c["dropped"], c["ignored"], c["snapshots"], c["trades"])
    # the aggTrade events (2, 11, 91 and 51 lines of the captures, grep '"e":"aggTrade"')
    # are trades: they were counted under "ignored" before trades became TRADE events
    assert counts == {
        "BINANCE": (172, 5, 88 - 2, 4, 2),
        "BINANCE_US": (332, 4, 144 - 11, 4, 11),
        "BINANCE_FUTURES": (752, 12, 771 - 91, 4, 91),
        "BINANCE_DELIVERY": (1788, 259, 2324 - 51, 10, 51),
    }


@pytest.mark.parametrize("name", list(MARKETS))
def test_capture_books_equal_reference(name: str) -> None:
    feed = MARKETS[name]()
    run(feed, records(name), check=False)
    ref = reference(name)
    assert sorted(ref) == sorted(feed.symbols)
    for s in feed.symbols:
        book = feed.book(s)
        want_b = sorted(ref[s]["bids"].items(), reverse=True)
        want_a = sorted(ref[s]["asks"].items())
        assert _levels(book, fastbook.BID) == want_b, s
        assert _levels(book, fastbook.ASK) == want_a, s
        assert feed.symbol_state(s).last_seq == ref[s]["last"]


def test_documented_final_bbo() -> None:
    spot = binance.BinanceSpot()
    run(spot, records("BINANCE"), check=False)
    b = spot.book("NKNUSDT")
    assert b.format_price(b.best_bid()[0]) == "0.35270000"
    assert b.format_price(b.best_ask()[0]) == "0.35310000"
    usdm = binance.BinanceUSDM(
        [Instrument("binance-usdm", "SUSHIUSDT", "SUSHI/USDT:USDT", 4, 0, kind="perpetual")])
    run(usdm, records("BINANCE_FUTURES"), check=False)
    b = usdm.book("SUSHIUSDT")
    assert (b.format_price(b.best_bid()[0]), b.format_price(b.best_ask()[0])) == \
        ("7.6120", "7.6160")


@pytest.mark.parametrize("name", list(MARKETS))
def test_first_applied_update(name: str) -> None:
    """The first update applied after each snapshot, from the recorded events."""
    feed = MARKETS[name](record=True)
    run(feed, records(name), check=False)
    ev = feed.take_events()
    by_u = {d["u"]: d for d in depth_updates(name)}
    firsts = {}
    snapshot_ids = {}
    for i in range(len(feed.symbols)):
        mine = ev[ev["instrument"] == i]
        acts = mine["action"].tolist()
        end = acts.index(int(Action.SNAPSHOT_END))
        snapshot_ids[feed.symbols[i]] = int(mine["sequence"][end])
        after = mine[end + 1:]
        after = after[after["action"] == int(Action.SET_LEVEL)]    # not the TRADE events
        if len(after):
            firsts[feed.symbols[i]] = int(after["sequence"][0])
    ref = reference(name)
    for s, u in firsts.items():
        L = snapshot_ids[s]
        d = by_u[u]
        assert (d["U"], d["u"]) == ref[s]["first"]
        if name in ("BINANCE", "BINANCE_US"):
            assert d["U"] == L + 1          # lastUpdateId is NOT inside [U; u]
        else:
            assert d["U"] <= L <= d["u"]
    if name == "BINANCE":
        assert snapshot_ids == SPOT_SNAPSHOT_IDS
        assert (by_u[firsts["NKNUSDT"]]["U"], firsts["NKNUSDT"]) == (499869753, 499869754)
    if name == "BINANCE_FUTURES":
        for s in ("AKROUSDT", "KEEPUSDT", "CTKUSDT"):
            assert firsts[s] == snapshot_ids[s]     # u == lastUpdateId exactly
        assert firsts["SUSHIUSDT"] != snapshot_ids["SUSHIUSDT"]


def test_kernels_agree_on_captures() -> None:
    if "compiled" not in KERNELS:
        pytest.skip("compiled kernel not built")
    for name in MARKETS:
        out = []
        for kernel in KERNELS:
            feed = MARKETS[name](kernel=kernel, record=True)
            notices = run(feed, records(name), check=False)
            out.append((notices, feed.counts(), feed.take_events().tobytes(),
                        [list(feed.book(s)) for s in feed.symbols]))
        assert out[0] == out[1], name


def test_fast_path_reads_every_depth_update() -> None:
    """The compiled scanner reads every typed message itself; only untyped ones go to json."""
    if "compiled" not in KERNELS:
        pytest.skip("compiled kernel not built")
    feed = binance.BinanceUSDM(kernel="compiled")
    run(feed, records("BINANCE_FUTURES"), check=False)
    sc = feed._scan
    n_ws = sum(1 for r in records("BINANCE_FUTURES") if r[0] == "ws")
    # one slow scan per symbol: the first sight, when the symbol is not registered yet
    assert (sc.fast, sc.slow) == (n_ws, 4)


def test_spot_rules_never_sync_three_usdm_symbols() -> None:
    """Futures ids are global: fed through the spot rules, AKRO/KEEP/CTK never sync."""
    feed = binance.BinanceSpot()
    notices = run(feed, records("BINANCE_FUTURES"), check=False)
    synced = Counter(n.symbol for n in notices if n.kind == "synced")
    assert synced["AKROUSDT"] == synced["KEEPUSDT"] == synced["CTKUSDT"] == 0
    for s in ("AKROUSDT", "KEEPUSDT", "CTKUSDT"):
        assert not feed.is_synced(s)
        assert feed.counts(s)["snapshot_too_old"] == 1
        assert feed.counts(s)["applied"] == 0
    # SUSHI's snapshot happens to bridge, but the very next update is a "gap"
    assert feed.counts("SUSHIUSDT")["gaps"] >= 1
    assert not feed.is_synced("SUSHIUSDT")
    # and the futures rules on the same data: all four
    good = binance.BinanceUSDM()
    run(good, records("BINANCE_FUTURES"))
    assert all(good.is_synced(s) for s in SYMBOLS["BINANCE_FUTURES"])


def test_missing_event_is_a_gap_and_requests_a_snapshot() -> None:
    recs = records("BINANCE")
    # drop the 30th NKNUSDT depth update after sync
    seen = 0
    cut = None
    for i, (kind, _, _, payload) in enumerate(recs):
        if kind == "ws" and b'"nknusdt@depth' in payload:
            seen += 1
            if seen == 30:
                cut = i
                break
    assert cut is not None
    removed = json.loads(recs[cut][3])["data"]
    feed = binance.BinanceSpot()
    notices = run(feed, recs[:cut] + recs[cut + 1:])
    gap = [n for n in notices if n.symbol == "NKNUSDT" and n.kind == "resync"]
    assert len(gap) == 1 and gap[0].reason == "gap"
    assert gap[0].sequence is not None and gap[0].sequence > removed["u"]
    i = notices.index(gap[0])
    assert notices[i + 1].kind == "request_snapshot"
    assert notices[i + 1].symbol == "NKNUSDT"
    assert notices[i + 1].detail == "GET /api/v3/depth?symbol=NKNUSDT&limit=5000"
    assert feed.counts("NKNUSDT")["gaps"] == 1
    assert feed.state("NKNUSDT") is SyncState.RESYNC
    assert len(feed.book("NKNUSDT")) == 0            # the wrong book is gone
    assert len(feed.symbol_state("NKNUSDT").buffer) > 0   # updates wait for a snapshot
    for s in ("BLZETH", "LRCBTC", "RUNEEUR"):        # the others are not affected
        assert feed.is_synced(s)


def test_futures_missing_event_is_a_gap() -> None:
    recs = records("BINANCE_FUTURES")
    idx = [i for i, r in enumerate(recs) if r[0] == "ws" and b'"sushiusdt@depth' in r[3]]
    cut = idx[40]
    feed = binance.BinanceUSDM()
    notices = run(feed, recs[:cut] + recs[cut + 1:])
    assert [(n.kind, n.reason) for n in notices if n.symbol == "SUSHIUSDT"][-2:] == \
        [("resync", "gap"), ("request_snapshot", "")]
    assert feed.counts("SUSHIUSDT")["gaps"] == 1


# -- hand-built messages ---------------------------------------------------------------

SNAP = rest(100, [("10.00", "1"), ("9.99", "2")], [("10.01", "3"), ("10.02", "4")])


def synced_spot(**kw: Any) -> Any:
    feed = binance.BinanceSpot(**kw)
    assert [n.kind for n in feed.feed(depth("BTCUSDT", 99, 101, [("10.00", "1.5")]))] == \
        ["request_snapshot"]
    assert [n.kind for n in feed.snapshot("BTCUSDT", SNAP)] == ["synced"]
    return feed


def state(feed: Any, symbol: str = "BTCUSDT") -> Any:
    s = feed.symbol_state(symbol)
    return (list(feed.book(symbol)), s.last_seq, s.state)


@pytest.mark.parametrize("kernel", KERNELS)
def test_spot_sync_rules(kernel: str) -> None:
    feed = synced_spot(kernel=kernel)
    s = feed.symbol_state("BTCUSDT")
    assert s.last_seq == 101 and feed.book("BTCUSDT").best_bid() == (1000000000, 150000000)
    assert feed.feed(depth("BTCUSDT", 102, 103, asks=[("10.01", "0")])) == []
    assert feed.book("BTCUSDT").best_ask() == (1002000000, 400000000)
    # raw (not combined) payloads work the same
    assert feed.feed(depth("BTCUSDT", 104, 104, [("9.98", "1")], combined=False)) == []
    assert s.last_seq == 104 and s.ts == 1_700_000_000_000 * 1_000_000
    assert feed.counts("BTCUSDT")["applied"] == 3


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_book_the_caller_knows_wrong_is_discarded(kernel: str) -> None:
    feed = synced_spot(kernel=kernel)
    resyncs = feed.counts("BTCUSDT")["resyncs"]
    notices = feed.discard("BTCUSDT", "malformed", "a frame was refused")
    assert [(n.kind, n.reason, n.detail) for n in notices][:1] == [
        ("resync", "malformed", "a frame was refused")]
    assert [n.kind for n in notices] == ["resync", "request_snapshot"]  # Binance: a snapshot
    assert not feed.is_synced("BTCUSDT") and len(feed.book("BTCUSDT")) == 0
    assert feed.counts("BTCUSDT")["resyncs"] == resyncs + 1
    with pytest.raises(KeyError):
        feed.discard("ETHUSDT")


@pytest.mark.parametrize("kernel", KERNELS)
def test_duplicate_and_out_of_order_are_refused(kernel: str) -> None:
    feed = synced_spot(kernel=kernel)
    feed.feed(depth("BTCUSDT", 102, 103, [("10.00", "7")]))
    before = state(feed)
    with pytest.raises(FeedError) as exc:
        feed.feed(depth("BTCUSDT", 102, 103, [("10.00", "9")]))      # duplicate
    assert (exc.value.venue, exc.value.symbol, exc.value.sequence) == \
        ("binance-spot", "BTCUSDT", 103)
    assert "out-of-order" in str(exc.value) and exc.value.duplicate
    assert state(feed) == before
    skip = synced_spot(kernel=kernel, on_error="skip")
    skip.feed(depth("BTCUSDT", 102, 103, [("10.00", "7")]))
    assert skip.feed(depth("BTCUSDT", 100, 101, [("10.00", "9")])) == []   # out of order
    assert skip.feed(depth("BTCUSDT", 102, 103, [("10.00", "9")])) == []   # duplicate
    assert state(skip) == before
    c = skip.counts("BTCUSDT")
    assert (c["out_of_order"], c["malformed"], c["dropped"]) == (2, 2, 2)
    assert [e.sequence for e in skip.errors] == [101, 103]
    assert all(e.duplicate for e in skip.errors)       # refusing them lost nothing
    assert skip.is_synced("BTCUSDT")
    # an overlap is not a continuation: resync
    notices = skip.feed(depth("BTCUSDT", 103, 105, [("10.00", "9")]))
    assert [(n.kind, n.reason) for n in notices] == [("resync", "gap"),
                                                    ("request_snapshot", "")]


@pytest.mark.parametrize("kernel", KERNELS)
def test_snapshot_older_than_buffer(kernel: str) -> None:
    feed = binance.BinanceSpot(kernel=kernel)
    feed.feed(depth("BTCUSDT", 200, 205, [("10.00", "1")]))
    feed.feed(depth("BTCUSDT", 206, 206, [("10.00", "2")]))
    notices = feed.snapshot("BTCUSDT", SNAP)          # lastUpdateId 100 < 200 - 1
    assert [(n.kind, n.reason, n.sequence) for n in notices] == [
        ("resync", "snapshot_too_old", 100), ("request_snapshot", "snapshot_too_old", None)]
    assert "U=200" in notices[0].detail
    assert not feed.is_synced("BTCUSDT") and len(feed.book("BTCUSDT")) == 0
    assert feed.counts("BTCUSDT")["snapshot_too_old"] == 1
    assert len(feed.symbol_state("BTCUSDT").buffer) == 2      # kept for the next snapshot
    # the exact boundary: lastUpdateId + 1 == first U is usable
    notices = feed.snapshot("BTCUSDT", rest(199, [("9.00", "1")], [("11.00", "1")]))
    assert [n.kind for n in notices] == ["synced"]
    assert feed.book("BTCUSDT").best_bid() == (1000000000, 200000000)
    assert feed.symbol_state("BTCUSDT").last_seq == 206


@pytest.mark.parametrize("kernel", KERNELS)
def test_bridging_update_may_overlap_the_snapshot(kernel: str) -> None:
    feed = binance.BinanceSpot(kernel=kernel)
    assert feed.snapshot("BTCUSDT", SNAP) == []        # before any update
    # the book is the snapshot, but synced only once an update is seen to follow it
    assert feed.state("BTCUSDT") is SyncState.BUFFERING
    assert feed.book("BTCUSDT").best_bid() == (1000000000, 100000000)
    assert feed.feed(depth("BTCUSDT", 90, 100, [("10.00", "5")])) == []   # contained: dropped
    assert not feed.is_synced("BTCUSDT")
    notices = feed.feed(depth("BTCUSDT", 95, 102, [("10.00", "6")]))      # bridges 101
    assert [(n.kind, n.sequence) for n in notices] == [("synced", 102)]
    assert feed.book("BTCUSDT").best_bid() == (1000000000, 600000000)
    assert feed.counts("BTCUSDT")["dropped"] == 1 and feed.counts("BTCUSDT")["malformed"] == 0
    # after the bridge, an overlap is a gap
    assert feed.feed(depth("BTCUSDT", 102, 104))[0].reason == "gap"
    # a snapshot no update follows is too old: discarded, asked for again
    feed = binance.BinanceSpot(kernel=kernel)
    feed.snapshot("BTCUSDT", SNAP)
    notices = feed.feed(depth("BTCUSDT", 150, 151, [("10.00", "6")]))
    assert [(n.kind, n.reason) for n in notices] == [("resync", "snapshot_too_old"),
                                                    ("request_snapshot", "")]
    assert len(feed.book("BTCUSDT")) == 0
    assert [x[0] for x in feed.symbol_state("BTCUSDT").buffer] == [150]


@pytest.mark.parametrize("kernel", KERNELS)
def test_futures_rules(kernel: str) -> None:
    feed = binance.BinanceUSDM(kernel=kernel)
    feed.feed(depth("BTCUSDT", 50, 90, [("10.00", "9")], pu=40))
    feed.feed(depth("BTCUSDT", 95, 120, [("10.00", "8")], pu=90))
    feed.feed(depth("BTCUSDT", 130, 140, [("10.00", "7")], pu=120))
    notices = feed.snapshot("BTCUSDT", rest(100, [("10.00", "1")], [("10.01", "1")],
                                            E=1_700_000_000_123, T=1_700_000_000_120))
    assert [n.kind for n in notices] == ["synced"]
    s = feed.symbol_state("BTCUSDT")
    assert s.last_seq == 140 and feed.book("BTCUSDT").best_bid() == (1000000000, 700000000)
    assert feed.counts("BTCUSDT")["dropped"] == 1      # u=90 < 100
    assert feed.feed(depth("BTCUSDT", 150, 160, [("10.00", "6")], pu=140)) == []
    n = feed.feed(depth("BTCUSDT", 170, 180, [("10.00", "5")], pu=165))
    assert [(x.kind, x.reason) for x in n] == [("resync", "gap"), ("request_snapshot", "")]
    assert n[1].detail == "GET /fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    # a snapshot whose lastUpdateId is the pu of the first buffered update also bridges
    notices = feed.snapshot("BTCUSDT", rest(165, [("10.00", "1")], [("10.01", "1")]))
    assert [x.kind for x in notices] == ["synced"]
    assert feed.book("BTCUSDT").best_bid() == (1000000000, 500000000)


@pytest.mark.parametrize("kernel", KERNELS)
def test_crossed_book_resyncs(kernel: str) -> None:
    feed = synced_spot(kernel=kernel, record=True)
    notices = feed.feed(depth("BTCUSDT", 102, 102, [("10.01", "1")]))    # bid at the ask
    assert [(n.kind, n.reason) for n in notices] == [("resync", "crossed"),
                                                    ("request_snapshot", "")]
    assert feed.counts("BTCUSDT")["crossed"] == 1
    assert len(feed.book("BTCUSDT")) == 0
    ev = feed.take_events()
    assert ev["action"][-1] == Action.CLEAR


@pytest.mark.parametrize("kernel", KERNELS)
def test_buffer_overflow(kernel: str) -> None:
    feed = binance.BinanceSpot(kernel=kernel, max_buffer=3)
    out = []
    for k in range(4):
        out += feed.feed(depth("BTCUSDT", 10 + k, 10 + k, [("10.00", str(k + 1))]))
    assert [(n.kind, n.reason) for n in out] == [
        ("request_snapshot", ""), ("resync", "buffer_overflow"), ("request_snapshot", "")]
    s = feed.symbol_state("BTCUSDT")
    assert len(s.buffer) == 1 and s.buffer[0][1] == 13
    assert feed.counts("BTCUSDT")["buffer_overflows"] == 1
    feed.feed(depth("BTCUSDT", 14, 14, [("10.00", "5")]))
    assert [n.kind for n in feed.snapshot("BTCUSDT", rest(12, [], [("10.01", "1")]))] == ["synced"]
    assert feed.book("BTCUSDT").best_bid() == (1000000000, 500000000)


def test_gap_inside_the_buffer_restarts_it() -> None:
    feed = binance.BinanceSpot()
    feed.feed(depth("BTCUSDT", 10, 11, [("10.00", "1")]))
    feed.feed(depth("BTCUSDT", 15, 16, [("10.00", "2")]))      # 12..14 missing
    s = feed.symbol_state("BTCUSDT")
    assert [x[0] for x in s.buffer] == [15]
    assert feed.counts("BTCUSDT")["gaps"] == 1


BAD_MESSAGES = [
    (b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":102,"u":10',
     "not valid JSON", None),
    (depth("BTCUSDT", 102, 102, [("10.0x", "1")]), "bad price", 102),
    (depth("BTCUSDT", 102, 102, [("abc", "1")]), "bad price", 102),
    (depth("BTCUSDT", 102, 102, [("10.000000001", "1")]), "more decimal places", 102),
    (depth("BTCUSDT", 102, 102, asks=[("10.05", "-1")]), "negative quantity", 102),
    (depth("BTCUSDT", 102, 102, asks=[("0", "1")]), "not positive", 102),
    (depth("BTCUSDT", 102, 102, asks=[("99999999999999", "1")]), "out of int64 range", 102),
    (depth("BTCUSDT", 102, 102, asks=[[10.05, "1"]]), "price must be a string", 102),
    (depth("BTCUSDT", 102, 102, asks=[["10.05"]]), "expected 2 elements", 102),
    (json.dumps({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 102, "b": [], "a": []}),
     "missing field 'u'", None),
    (json.dumps({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 102, "u": "102", "b": [],
                 "a": []}), "u: expected an integer", None),
    (json.dumps({"e": "depthUpdate", "E": 1, "U": 102, "u": 102, "b": [], "a": []}),
     "missing field 's'", None),
    (json.dumps({"e": "depthUpdate", "E": -5, "s": "BTCUSDT", "U": 102, "u": 102, "b": [],
                 "a": []}), "E: -5 is outside", None),
    (json.dumps({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 102, "u": 102, "b": {},
                 "a": []}), "b: expected a list of levels", 102),
    (depth("BTCUSDT", 105, 102), "U=105 is above the last u=102", 102),
    (b"[1, 2]", "expected a JSON object", None),
    (b'{"e": 5}', "e: expected a string", None),
    (b'{"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1e3}', "U: expected an integer",
     None),
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("message", "text", "seq"), BAD_MESSAGES)
def test_bad_input_is_reported_and_the_book_kept(kernel: str, message: Any, text: str,
                                                 seq: int | None) -> None:
    feed = synced_spot(kernel=kernel)
    before = state(feed)
    with pytest.raises(FeedError) as exc:
        feed.feed(message)
    assert text in str(exc.value)
    assert exc.value.venue == "binance-spot"
    assert exc.value.sequence == seq
    assert str(exc.value).startswith("binance-spot")
    assert state(feed) == before
    # skip mode: counted, kept, and the next good update still applies
    feed = synced_spot(kernel=kernel, on_error="skip")
    assert feed.feed(message) == []
    assert state(feed) == before
    assert feed.counts()["malformed"] == 1
    assert text in str(feed.errors[-1])
    assert feed.feed(depth("BTCUSDT", 102, 102, [("10.00", "3")])) == []
    assert feed.book("BTCUSDT").best_bid() == (1000000000, 300000000)


@pytest.mark.parametrize("kernel", KERNELS)
def test_bad_snapshots(kernel: str) -> None:
    feed = binance.BinanceSpot(kernel=kernel, on_error="skip")
    feed.feed(depth("BTCUSDT", 99, 101, [("10.00", "1.5")]))
    for body in (b'{"lastUpdateId": 100, "bids": [["10", "1"]]', b'{"bids": [], "asks": []}',
                 rest(100, [("10.00", "-1")], []), rest(-3, [], []),
                 rest(100, [("10.00", "1")], [], symbol="ETHUSDT")):
        assert feed.snapshot("BTCUSDT", body) == []
    assert feed.counts("BTCUSDT")["malformed"] == 5
    assert not feed.is_synced("BTCUSDT") and len(feed.book("BTCUSDT")) == 0
    assert [e.symbol for e in feed.errors] == ["BTCUSDT"] * 5
    assert "snapshot" in str(feed.errors[0])
    # a crossed snapshot is refused as a crossed book
    notices = feed.snapshot("BTCUSDT", rest(100, [("10.02", "1")], [("10.01", "1")]))
    assert [(n.kind, n.reason) for n in notices] == [("resync", "crossed"),
                                                    ("request_snapshot", "")]
    # that dropped the buffer too: a good snapshot waits for the next update, which syncs
    assert feed.snapshot("BTCUSDT", SNAP) == []
    assert [n.kind for n in feed.feed(depth("BTCUSDT", 101, 102))] == ["synced"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_other_messages(kernel: str) -> None:
    feed = binance.BinanceSpot(kernel=kernel)
    for msg in (b'{"result":null,"id":1}',
                b'{"stream":"x@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1.0","B":"2",'
                b'"a":"1.1","A":"3"}}',
                b'{"stream":"x@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,'
                b'"p":"1.5","q":"2","f":1,"l":1,"T":2,"m":true}}',
                b'{"e":"serverShutdown","E":1}'):
        assert feed.feed(msg) == []
    assert feed.counts_total["ignored"] == 3 and feed.counts()["trades"] == 1
    assert feed.counts_total["server_shutdown"] == 1
    with pytest.raises(FeedError, match="unknown event type 'mystery'"):
        feed.feed(b'{"e":"mystery","E":1}')
    with pytest.raises(FeedError, match="partial book depth stream"):
        feed.feed(b'{"lastUpdateId":5,"bids":[],"asks":[]}')
    with pytest.raises(FeedError, match="failed"):
        feed.feed(b'{"error":{"code":2,"msg":"Invalid request"},"id":3}')
    with pytest.raises(FeedError, match="not a Binance market stream message"):
        feed.feed(b'{"hello":1}')


def test_symbols_filter() -> None:
    feed = binance.BinanceSpot(symbols=["NKNUSDT"])
    run(feed, records("BINANCE"))
    assert feed.symbols == ["NKNUSDT"]
    assert feed.is_synced("NKNUSDT")
    # 3 other symbols' depth updates, trades and snapshots, plus the 86 ignored non-book
    # messages (88 less the 2 aggTrade events, one of which is NKNUSDT's: recorded)
    others = sum(1 for k, _, s, p in records("BINANCE")
                 if (k == "rest" and s != "NKNUSDT")
                 or (k == "ws" and (b"depthUpdate" in p or b"aggTrade" in p)
                     and b'"NKNUSDT"' not in p))
    assert feed.counts_total["ignored"] == 86 + others
    assert feed.counts()["trades"] == 1


def test_instruments_and_coinm_defaults() -> None:
    inst = Instrument("binance-spot", "NKNUSDT", "NKN/USDT", 5, 1, tick=10, lot=10)
    feed = binance.BinanceSpot([inst])
    run(feed, records("BINANCE"), check=False)
    b = feed.book("NKNUSDT")
    assert (b.price_decimals, b.qty_decimals) == (5, 1)
    assert b.format_price(b.best_bid()[0]) == "0.35270"
    assert feed.symbol_state("NKNUSDT").instrument is inst
    coinm = binance.BinanceCOINM()
    run(coinm, records("BINANCE_DELIVERY"), check=False)
    perp = coinm.symbol_state("BTCUSD_211231").instrument
    assert (perp.symbol, perp.kind, perp.contract_size, perp.contract_unit) == \
        ("BTC/USD:BTC-211231", "future", "", "USD")
    assert coinm.symbol_state("EOSUSD_PERP").instrument.symbol == "EOS/USD:EOS"
    assert coinm.snapshot_url("EOSUSD_PERP") == \
        "https://dapi.binance.com/dapi/v1/depth?symbol=EOSUSD_PERP&limit=1000"
    assert binance.BinanceUS().snapshot_url("ZRXUSDT") == \
        "https://api.binance.us/api/v3/depth?symbol=ZRXUSDT&limit=5000"


def test_off_tick_level_in_a_real_snapshot() -> None:
    """NKNUSDT's tick is 0.0001 and its lot 1 (exchangeInfo), yet its REST snapshot rests a
    bid at 0.25974 and another of 11979.3 (orders older than the filters, presumably).

    Scales taken from the tick and lot alone cannot hold them: the snapshot is refused,
    exactly and loudly (never rounded), naming the level; the symbol never syncs on it.
    """
    inst = Instrument("binance-spot", "NKNUSDT", "NKN/USDT", 4, 8)
    feed = binance.BinanceSpot([inst], on_error="skip")
    run(feed, records("BINANCE"), check=False)
    assert not feed.is_synced("NKNUSDT")
    err = [e for e in feed.errors if e.symbol == "NKNUSDT"]
    assert len(err) == 1 and err[0].sequence == 499869752
    assert "bids[388]" in str(err[0]) and "'0.25974000' at 4 decimals" in str(err[0])
    assert all(feed.is_synced(s) for s in ("BLZETH", "LRCBTC", "RUNEEUR"))


@pytest.mark.parametrize("name", list(MARKETS))
def test_recorded_events_rebuild_the_books(name: str) -> None:
    feed = MARKETS[name](record=True)
    recs = records(name)
    # include a gap (and so a CLEAR and a rebuild) on the first symbol
    idx = [i for i, r in enumerate(recs) if r[0] == "ws" and b"depthUpdate" in r[3]
           and SYMBOLS[name][0].encode() in r[3]]
    cut = idx[len(idx) // 2]
    run(feed, recs[:cut] + recs[cut + 1:], check=False)
    ev = feed.take_events()
    assert len(feed.take_events()) == 0
    bs = replay_events(feed, ev)
    for i, s in enumerate(feed.symbols):
        assert list(bs[i]) == list(feed.book(s)), s
    # message by message, the same events; each message's end with its one event
    # flagged LAST_IN_PACKET (the book is consistent there, and only there), but the
    # gap's, which is the CLEAR alone (the book is rebuilt by the later messages)
    again, batches = MARKETS[name](record=True), []
    for kind, recv, symbol, payload in recs[:cut] + recs[cut + 1:]:
        if kind == "rest":
            again.snapshot(symbol, payload, recv)
        else:
            again.feed(payload, recv)
        batch = again.take_events()
        if len(batch):
            batches.append(batch)
    assert np.concatenate(batches).tobytes() == ev.tobytes()
    for batch in batches:
        last = (batch["flags"] & int(Flags.LAST_IN_PACKET)) != 0
        if batch["action"][0] == int(Action.CLEAR):
            assert len(batch) == 1
        else:
            assert last[-1] and last.sum() == 1
    assert (ev["ts_exchange"] > 1_600_000_000 * 10**9).all()
    clear = ev["action"] == int(Action.CLEAR)
    assert clear.sum() == 1                              # the gap
    assert (ev["ts_receive"][~clear] > 1_600_000_000 * 10**9).all()
    snap = ev[ev["action"] == int(Action.SNAPSHOT_BEGIN)]
    assert len(snap) >= len(SYMBOLS[name])


def test_take_events_needs_record() -> None:
    with pytest.raises(ValueError, match="record=True"):
        binance.BinanceSpot().take_events()


def test_kernel_option() -> None:
    assert binance.BinanceSpot(kernel="python").kernel == "python"
    with pytest.raises(ValueError, match="kernel"):
        binance.BinanceSpot(kernel="fast")
    with pytest.raises(ValueError, match="max_buffer"):
        binance.BinanceSpot(max_buffer=0)
    if fastbook.COMPILED:
        assert binance.BinanceSpot().kernel == "compiled"
