"""The venues' trade prints as TRADE events: real capture lines, hand-written documented
shapes, bad input, and the rule that a trade never changes a book.

Expected values are computed by hand (the comments show the arithmetic) or, for whole
captures, by an independent reference (``json`` + ``Decimal`` + numpy's datetime64).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from fastbook.capture import read_cryptofeed
from fastbook.codecs import binance, bybit, coinbase, kraken, okx
from fastbook.codecs._l2feed import FeedError, Instrument, L2Feed
from fastbook.events import Action, Flags
from tests.helpers import DATA
from tests.helpers.impls import KERNELS
from tests.helpers.l2 import adv, bybit_msg, depth, heartbeat, rest, snap

CF = DATA / "l2" / "cryptofeed"
TRADE = int(Action.TRADE)
BUY, SELL, LAST = int(Flags.AGGRESSOR_BUY), int(Flags.AGGRESSOR_SELL), int(Flags.LAST_IN_PACKET)
BID, ASK = 1, 2
COLS = ("ts_exchange", "ts_receive", "instrument", "action", "side", "flags", "price", "qty",
        "sequence")

_CACHE: dict[str, list[Any]] = {}


def lines(name: str) -> list[Any]:
    """The capture's records (received messages and REST snapshots), in order."""
    if name not in _CACHE:
        _CACHE[name] = [r for r in read_cryptofeed(CF / name) if r.kind in ("recv", "rest")]
    return _CACHE[name]


def trades_of(feed: L2Feed) -> list[tuple[Any, ...]]:
    """The TRADE events recorded so far, as (symbol, ts, recv, side, flags, price, qty, seq)."""
    ev = feed.take_events()
    t = ev[ev["action"] == TRADE]
    names = feed.symbols
    return [(names[int(e["instrument"])], int(e["ts_exchange"]), int(e["ts_receive"]),
             int(e["side"]), int(e["flags"]), int(e["price"]), int(e["qty"]), int(e["sequence"]))
            for e in t]


def one(feed: L2Feed, message: Any, recv: int = 7) -> list[tuple[Any, ...]]:
    assert feed.feed(message, recv) == []
    return trades_of(feed)


def iso(text: str) -> int:
    """An independent reading of a UTC ISO time: numpy's datetime64 in ns."""
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


def fixed(text: str, decimals: int = 8) -> int:
    value = Decimal(text) * 10**decimals
    assert value == value.to_integral_value()
    return int(value)


# -- one real line per venue, computed by hand --------------------------------------------------

def test_binance_spot_aggtrade_line_110() -> None:
    # BINANCE.ws.1.0.gz line 110: NKNUSDT p 0.35280000 q 58.00000000 T 1633998523963, a
    # 15683430, m false: the buyer was the taker, so the resting order was an ask
    [rec] = [r for r in lines("BINANCE.ws.1.0.gz") if b'"a":15683430' in r.payload]
    assert rec.recv_ns == 1633998523_957215000
    feed = binance.BinanceSpot(record=True)
    assert one(feed, rec.payload, rec.recv_ns) == [
        ("NKNUSDT", 1633998523963 * 10**6, 1633998523_957215000, ASK, BUY | LAST,
         35280000, 58 * 10**8, 15683430)]
    assert feed.counts("NKNUSDT")["trades"] == 1 and feed.counts()["messages"] == 0


def test_binance_coinm_aggtrade_seller_aggressor() -> None:
    # BINANCE_DELIVERY.ws.1.0.gz line 41: BCHUSD_PERP p 427.91 q 3 (contracts) T
    # 1626916403852 (not E), m true: the buyer was the maker, a resting bid was hit
    [rec] = [r for r in lines("BINANCE_DELIVERY.ws.1.0.gz") if b'"a":11285749' in r.payload]
    feed = binance.BinanceCOINM(record=True)
    assert one(feed, rec.payload, 1) == [
        ("BCHUSD_PERP", 1626916403852 * 10**6, 1, BID, SELL | LAST, 42791000000, 300000000,
         11285749)]


def test_binance_trade_stream() -> None:
    msg = (b'{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
           b'"b":88,"a":50,"T":1672515782134,"m":true,"M":true}')
    assert one(binance.BinanceSpot(record=True), msg) == [
        ("BNBBTC", 1672515782134 * 10**6, 7, BID, SELL | LAST, 100000, 100 * 10**8, 12345)]


def test_coinbase_exchange_match_line_56() -> None:
    # COINBASE.ws.28.0.gz line 56: SKL-BTC 985 @ 0.00001305, side "sell" is the MAKER's: a
    # resting ask was lifted by a buyer; time 2021-04-17T16:43:37.089723Z
    [rec] = [r for r in lines("COINBASE.ws.28.0.gz")
             if r.payload.startswith(b'{"type":"match","trade_id":280232,')]
    feed = coinbase.CoinbaseExchange(record=True)
    ts = (18734 * 86400 + 16 * 3600 + 43 * 60 + 37) * 10**9 + 89723000
    assert ts == iso("2021-04-17T16:43:37.089723Z")
    assert one(feed, rec.payload, 3) == [("SKL-BTC", ts, 3, ASK, BUY | LAST, 1305, 985 * 10**8,
                                          280232)]


def test_coinbase_exchange_last_match_is_not_recorded() -> None:
    feed = coinbase.CoinbaseExchange(record=True)
    last = [r for r in lines("COINBASE.ws.28.0.gz") if b'"last_match"' in r.payload]
    assert len(last) == 10
    for r in last:
        assert feed.feed(r.payload, r.recv_ns) == []
    assert trades_of(feed) == [] and feed.symbols == []
    c = feed.counts()
    assert (c["trades_before_subscribe"], c["ignored"], c["trades"]) == (10, 10, 0)


def test_okx_trades_line_26() -> None:
    # OKX.ws.1.0.gz line 26: BTC-USD-220527 tradeId "7849" px 30218.8 sz 1 (contract) side
    # buy (the taker's) ts "1652459199958"
    [rec] = [r for r in lines("OKX.ws.1.0.gz") if b'"tradeId":"7849"' in r.payload]
    feed = okx.Okx(record=True)
    assert one(feed, rec.payload, 5) == [
        ("BTC-USD-220527", 1652459199958 * 10**6, 5, ASK, BUY | LAST, 3021880000000, 10**8, 7849)]
    # the symbol is made as a book message would make it: its kind from the instId
    assert feed.symbol_state("BTC-USD-220527").instrument.kind == "future"


def test_okx_several_prints_flag_only_the_last() -> None:
    msg = json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [
        {"instId": "BTC-USDT", "tradeId": "130639474", "px": "42219.9", "sz": "0.12060306",
         "side": "buy", "ts": "1630048897897", "count": "3"},
        {"instId": "BTC-USDT", "tradeId": "130639475", "px": "42219.8", "sz": "0.5",
         "side": "sell", "ts": "1630048897898"}]})
    assert one(okx.Okx(record=True), msg) == [
        ("BTC-USDT", 1630048897897 * 10**6, 7, ASK, BUY, 4221990000000, 12060306, 130639474),
        ("BTC-USDT", 1630048897898 * 10**6, 7, BID, SELL | LAST, 4221980000000, 50000000,
         130639475)]


def _kraken_v1_synced() -> kraken.KrakenV1:
    feed = kraken.KrakenV1(record=True)
    book = [0, {"as": [["5541.30000", "2.50700000", "1534614248.123678"]],
                "bs": [["5541.20000", "1.52900000", "1534614248.765567"]]}, "book-10", "XBT/USD"]
    assert [n.kind for n in feed.feed(json.dumps(book), 1)] == ["synced"]
    feed.take_events()
    return feed


def test_kraken_v1_trade() -> None:
    # Kraken's v1 documentation example: two prints, "s" then "b" (the taker's side); the
    # time is seconds with 6 decimals, read exactly; the book's scales are its snapshot's
    feed = _kraken_v1_synced()
    msg = json.dumps([0, [["5541.20000", "0.15850568", "1534614057.321597", "s", "l", ""],
                          ["6060.00000", "0.02455000", "1534614057.324998", "b", "l", ""]],
                      "trade", "XBT/USD"])
    assert one(feed, msg) == [
        ("XBT/USD", 1534614057_321597000, 7, BID, SELL, 554120000, 15850568, 0),
        ("XBT/USD", 1534614057_324998000, 7, ASK, BUY | LAST, 606000000, 2455000, 0)]
    assert feed.is_synced("XBT/USD") and feed.counts("XBT/USD")["trades"] == 2


def test_kraken_v1_trades_before_the_first_snapshot_are_dropped() -> None:
    # a v1 book's scales are its first snapshot's wire decimals: none to read a trade at
    feed = kraken.KrakenV1(record=True)
    msg = json.dumps([0, [["5541.20000", "0.15850568", "1534614057.321597", "s", "l", ""]],
                      "trade", "XBT/USD"])
    assert one(feed, msg) == [] and feed.symbols == []
    assert feed.counts()["trades_dropped"] == 1


def test_kraken_v2_trade() -> None:
    # Kraken's v2 documentation example: JSON numbers, read from their text
    feed = kraken.KrakenV2(record=True, verify_checksum=False)
    msg = ('{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell",'
           '"price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,'
           '"timestamp":"2023-09-25T07:49:37.708706Z"}]}')
    assert one(feed, msg) == [("MATIC/USD", iso("2023-09-25T07:49:37.708706Z"), 7, BID,
                               SELL | LAST, 51170000, 40 * 10**8, 4665906)]
    # a snapshot (the trades before the subscription) is not recorded
    snap_msg = msg.replace('"update"', '"snapshot"')
    assert one(feed, snap_msg) == []
    assert (feed.counts()["trades_before_subscribe"], feed.counts()["trades"]) == (1, 1)


def test_kraken_v2_needs_the_instrument_to_read_a_trade() -> None:
    msg = ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
           '"price":30000.1,"qty":0.5,"ord_type":"limit","trade_id":1,'
           '"timestamp":"2023-09-25T07:49:37.708706Z"}]}')
    feed = kraken.KrakenV2(record=True)
    assert one(feed, msg) == [] and feed.counts()["trades_dropped"] == 1
    inst = Instrument("kraken-v2", "BTC/USD", "BTC/USD", 1, 8,
                             extra={"price_precision": 1, "qty_precision": 8})
    feed = kraken.KrakenV2([inst], record=True)
    assert one(feed, msg) == [("BTC/USD", iso("2023-09-25T07:49:37.708706Z"), 7, ASK,
                               BUY | LAST, 300001, 50000000, 1)]
    # the symbol a trade made still verifies its snapshot's checksum (its precisions kept)
    assert feed.symbol_state("BTC/USD").vars["digits"] == (1, 8)


@pytest.mark.parametrize("kernel", KERNELS)
def test_bybit_public_trade(kernel: str) -> None:
    # Bybit's v5 documentation example; "S" is the taker's side, the UUID id gives sequence 0
    msg = ('{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{'
           '"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick",'
           '"i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false},{"T":1672304486866,'
           '"s":"BTCUSDT","S":"Sell","v":"0.002","p":"16578.00","i":"2290000000061666327"}]}')
    feed = bybit.Bybit(record=True, kernel=kernel)
    assert one(feed, msg) == [
        ("BTCUSDT", 1672304486865 * 10**6, 7, ASK, BUY, 1657850000000, 100000, 0),
        ("BTCUSDT", 1672304486866 * 10**6, 7, BID, SELL | LAST, 1657800000000, 200000,
         2290000000061666327)]


def _market_trades(seq: int, kind: str, *trades: dict[str, Any]) -> bytes:
    return json.dumps({"channel": "market_trades", "client_id": "",
                       "timestamp": "2023-02-09T20:19:35.39625135Z", "sequence_num": seq,
                       "events": [{"type": kind, "trades": list(trades)}]}).encode()


def _adv_trade(tid: str, price: str, size: str, side: str,
               product: str = "ETH-USD") -> dict[str, Any]:
    return {"trade_id": tid, "product_id": product, "price": price, "size": size, "side": side,
            "time": "2019-08-14T20:42:27.265Z"}


def test_coinbase_advanced_market_trades() -> None:
    feed = coinbase.CoinbaseAdvanced(record=True)
    # the snapshot (trades before the subscription) is not recorded; the update is, "side"
    # being the taker's
    assert one(feed, _market_trades(0, "snapshot", _adv_trade("1", "1260.01", "0.3", "BUY"))) \
        == []
    ts = iso("2019-08-14T20:42:27.265Z")
    assert one(feed, _market_trades(1, "update", _adv_trade("000000123", "1260.01", "0.3", "BUY"),
                                    _adv_trade("124", "1260", "1", "SELL"))) == [
        ("ETH-USD", ts, 7, ASK, BUY, 126001000000, 30000000, 123),
        ("ETH-USD", ts, 7, BID, SELL | LAST, 126000000000, 100000000, 124)]
    c = feed.counts()
    assert (c["trades"], c["trades_before_subscribe"], c["ignored"], c["gaps"]) == (2, 1, 1, 0)


# -- bad input -----------------------------------------------------------------------------------

def _agg(**fields: Any) -> bytes:
    body = {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 5, "p": "1.5", "q": "2", "T": 2,
            "m": True}
    body.update(fields)
    return json.dumps({"stream": "btcusdt@aggTrade", "data": body}).encode()


def _match(**fields: Any) -> bytes:
    body = {"type": "match", "trade_id": 1, "side": "buy", "size": "1", "price": "10.5",
            "product_id": "BTC-USD", "time": "2021-04-17T16:43:37.089723Z"}
    body.update(fields)
    return json.dumps(body).encode()


def _okx(**fields: Any) -> bytes:
    t = {"instId": "BTC-USDT", "tradeId": "1", "px": "1.5", "sz": "2", "side": "buy",
         "ts": "1630048897897"}
    t.update(fields)
    return json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"},
                       "data": [{**t, "tradeId": "0"}, t]}).encode()


def _bybit(**fields: Any) -> bytes:
    t = {"T": 1, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "2", "i": "x"}
    t.update(fields)
    return json.dumps({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1,
                       "data": [{**t, "S": "Sell"}, t]}).encode()


def _k1(t: Any) -> str:
    return json.dumps([0, [["5541.20000", "1.00000000", "1534614057.1", "s", "l", ""], t],
                       "trade", "XBT/USD"])


def _k2(**fields: Any) -> str:
    t = {"symbol": "BTC/USD", "side": "buy", "price": 1.5, "qty": 2, "trade_id": 1,
         "timestamp": "2023-09-25T07:49:37.708706Z"}
    t.update(fields)
    return json.dumps({"channel": "trade", "type": "update", "data": [{**t, "side": "sell"}, t]})


BAD = [
    ("binance", _agg(p=None), "BTCUSDT", "price must be a decimal string"),
    ("binance", _agg(q="-1"), "BTCUSDT", "must be positive"),
    ("binance", _agg(q="0"), "BTCUSDT", "must be positive"),
    ("binance", _agg(p="1.123456789"), "BTCUSDT", "more decimal places"),
    ("binance", _agg(T="2"), "BTCUSDT", "not a time in ms"),
    ("binance", _agg(T=2**62), "BTCUSDT", "not a time in ms"),
    ("binance", _agg(m=1), "BTCUSDT", "buyer is the maker"),
    ("binance", _agg(s=5), "", "symbol 's'"),
    ("coinbase", _match(side="bid"), "BTC-USD", "side 'bid' is not 'buy' or 'sell'"),
    ("coinbase", _match(time="yesterday"), "BTC-USD", "time"),
    ("coinbase", _match(price=10.5), "BTC-USD", "decimal string"),
    ("coinbase", _match(product_id=None), "", "product_id"),
    ("okx", _okx(side="long"), "BTC-USDT", "side 'long'"),
    ("okx", _okx(ts="12:00"), "BTC-USDT", "not a time in ms"),
    ("okx", _okx(instId="ETH-USDT"), "BTC-USDT", "not the push's"),
    ("okx", _okx(sz="1e400"), "BTC-USDT", "quantity"),
    ("bybit", _bybit(S="buy"), "BTCUSDT", "S 'buy'"),
    ("bybit", _bybit(s="ETHUSDT"), "BTCUSDT", "not the topic's symbol"),
    ("bybit", _bybit(v="abc"), "BTCUSDT", "quantity"),
    ("kraken-v1", _k1(["5541.2", "1", "1534614057.1"]), "XBT/USD", r"\[price, volume, time"),
    ("kraken-v1", _k1(["5541.2", "1", "noon", "b"]), "XBT/USD", "not seconds"),
    ("kraken-v1", _k1(["5541.2", "1", "1534614057.1", "x"]), "XBT/USD", "side 'x'"),
    ("kraken-v1", _k1(["5541.2000001", "1", "1534614057.1", "b"]), "XBT/USD", "price"),
    ("kraken-v2", _k2(price="1.5"), "BTC/USD", "expected a JSON number"),
    ("kraken-v2", _k2(timestamp="2023"), "BTC/USD", "timestamp"),
    ("kraken-v2", _k2(side=None), "BTC/USD", "side None"),
]


def _fresh(venue: str, on_error: str = "raise", kernel: str = "python") -> L2Feed:
    """A recording feed of ``venue`` with a synced book for the bad messages' symbol."""
    f: L2Feed
    if venue == "binance":
        f = binance.BinanceSpot(record=True, on_error=on_error, kernel=kernel)
        f.feed(depth("BTCUSDT", 101, 101, [("1.0", "1")]))
        f.snapshot("BTCUSDT", rest(100, [("1.0", "1")], [("2.0", "1")]))
        f.feed(depth("BTCUSDT", 102, 102, [("1.1", "1")]))
        assert f.is_synced("BTCUSDT")
    elif venue == "coinbase":
        f = coinbase.CoinbaseExchange(record=True, on_error=on_error, kernel=kernel)
        f.feed(snap("BTC-USD"))
    elif venue == "okx":
        f = okx.Okx(record=True, on_error=on_error)
        f.feed(json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"},
                           "action": "snapshot", "data": [{"asks": [["2", "1", "0", "1"]],
                                                           "bids": [["1", "1", "0", "1"]],
                                                           "ts": "1"}]}))
    elif venue == "bybit":
        f = bybit.Bybit(record=True, on_error=on_error, kernel=kernel)
        f.feed(bybit_msg("snapshot", 1, [("1", "1")], [("2", "1")]))
    elif venue == "kraken-v1":
        f = _kraken_v1_synced()
        f.on_error = on_error
    else:
        f = kraken.KrakenV2(record=True, on_error=on_error, verify_checksum=False)
        f.feed(json.dumps({"channel": "book", "type": "snapshot", "data": [
            {"symbol": "BTC/USD", "bids": [{"price": 1, "qty": 1}],
             "asks": [{"price": 2, "qty": 1}], "checksum": 0}]}))
    f.take_events()
    return f


def _state(feed: L2Feed) -> Any:
    return ([(s, list(feed.book(s)), feed.state(s)) for s in feed.symbols],
            {k: v for k, v in feed.counts().items() if k != "malformed"})


@pytest.mark.parametrize(("venue", "message", "symbol", "match"), BAD,
                         ids=[f"{v}-{i}" for i, (v, *_) in enumerate(BAD)])
def test_bad_trades_raise_naming_venue_and_symbol(venue: str, message: Any, symbol: str,
                                                   match: str) -> None:
    feed = _fresh(venue)
    before = _state(feed)
    with pytest.raises(FeedError, match=match) as e:
        feed.feed(message, 1)
    assert e.value.venue == feed.venue and e.value.symbol == symbol
    assert "trade" in str(e.value)
    # refused whole: not even the good print before the bad one is recorded
    assert len(feed.take_events()) == 0 and _state(feed) == before


@pytest.mark.parametrize(("venue", "message", "symbol", "match"), BAD,
                         ids=[f"{v}-{i}" for i, (v, *_) in enumerate(BAD)])
def test_bad_trades_are_counted_in_skip_mode(venue: str, message: Any, symbol: str,
                                             match: str) -> None:
    feed = _fresh(venue, "skip")
    before = _state(feed)
    assert feed.feed(message, 1) == []          # no resync notice: a trade is no book change
    assert feed.counts()["malformed"] == 1 and len(feed.take_events()) == 0
    assert _state(feed) == before               # books and their states are untouched
    assert feed.errors[-1].symbol == symbol


def test_coinbase_advanced_refused_trades_leave_no_gap() -> None:
    feed = coinbase.CoinbaseAdvanced(record=True, on_error="skip")
    feed.feed(adv(0, [{"type": "snapshot", "product_id": "BTC-USD", "updates": [
        {"side": "bid", "event_time": "1970-01-01T00:00:00Z", "price_level": "100",
         "new_quantity": "1"}]}]))
    assert feed.is_synced("BTC-USD")
    bad = _market_trades(1, "update", _adv_trade("1", "1", "1", "buy", "BTC-USD"))
    assert feed.feed(bad) == [] and feed.counts()["malformed"] == 1
    # its sequence_num was taken: the next message continues the connection, no gap
    assert feed.feed(heartbeat(2)) == [] and feed.is_synced("BTC-USD")
    assert feed.counts()["gaps"] == 0
    with pytest.raises(FeedError, match=r"coinbase-advanced BTC-USD: trade: .*side 'buy'"):
        coinbase.CoinbaseAdvanced().feed(bad)
    with pytest.raises(FeedError, match="events must be a list"):
        coinbase.CoinbaseAdvanced().feed(json.dumps({"channel": "market_trades",
                                                     "sequence_num": 0, "events": {}}))


# -- symbols=, touched() --------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", KERNELS)
def test_trades_of_symbols_left_out_are_ignored(kernel: str) -> None:
    feed = binance.BinanceSpot(record=True, symbols=["ETHUSDT"], kernel=kernel)
    assert one(feed, _agg()) == [] and feed.symbols == []
    assert feed.counts()["ignored"] == 1
    adv_feed = coinbase.CoinbaseAdvanced(record=True, symbols=["BTC-USD"])
    msg = _market_trades(0, "update", _adv_trade("1", "1", "1", "BUY", "ETH-USD"),
                         _adv_trade("2", "3", "1", "SELL", "BTC-USD"))
    assert one(adv_feed, msg) == [("BTC-USD", iso("2019-08-14T20:42:27.265Z"), 7, BID,
                                   SELL | LAST, 300000000, 100000000, 2)]


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_trade_touches_no_book(kernel: str) -> None:
    feed = coinbase.CoinbaseExchange(kernel=kernel)
    feed.feed(snap("BTC-USD"))
    assert feed.touched() is not None
    feed.feed(_match())
    assert feed.touched() is None
    k = _kraken_v1_synced()
    k.touched()
    k.feed(_k1(["5541.2", "1", "1534614057.1", "b"]))
    assert k.touched() is None and k.counts()["trades"] == 2


# -- whole captures: an independent reference; the books do not see the trades ---------------

def ref_binance(payload: bytes) -> list[tuple[Any, ...]]:
    m = json.loads(payload)
    d = m.get("data", m)
    if d.get("e") != "aggTrade":
        return []
    return [(d["s"], d["T"] * 10**6, BID if d["m"] else ASK, SELL if d["m"] else BUY,
             fixed(d["p"]), fixed(d["q"]), d["a"])]


def ref_coinbase(payload: bytes) -> list[tuple[Any, ...]]:
    m = json.loads(payload)
    if m.get("type") != "match":
        return []
    maker_bid = m["side"] == "buy"
    return [(m["product_id"], iso(m["time"]), BID if maker_bid else ASK,
             SELL if maker_bid else BUY, fixed(m["price"]), fixed(m["size"]), m["trade_id"])]


def ref_okx(payload: bytes) -> list[tuple[Any, ...]]:
    if payload == b"pong":
        return []
    m = json.loads(payload)
    if m.get("arg", {}).get("channel") != "trades" or "data" not in m:
        return []
    return [(t["instId"], int(t["ts"]) * 10**6, ASK if t["side"] == "buy" else BID,
             BUY if t["side"] == "buy" else SELL, fixed(t["px"]), fixed(t["sz"]),
             int(t["tradeId"])) for t in m["data"]]


CAPTURES = [
    ("BINANCE.ws.1.0.gz", "BINANCE.http.0.0.gz", binance.BinanceSpot, ref_binance, 2),
    ("BINANCE_US.ws.1.0.gz", "BINANCE_US.http.0.0.gz", binance.BinanceUS, ref_binance, 11),
    ("BINANCE_FUTURES.ws.1.0.gz", "BINANCE_FUTURES.http.0.0.gz", binance.BinanceUSDM,
     ref_binance, 91),
    ("BINANCE_DELIVERY.ws.1.0.gz", "BINANCE_DELIVERY.http.0.0.gz", binance.BinanceCOINM,
     ref_binance, 51),
    ("COINBASE.ws.28.0.gz", None, coinbase.CoinbaseExchange, ref_coinbase, 97),
    ("OKX.ws.1.0.gz", None, okx.Okx, ref_okx, 74),
]


def _run(cls: Any, ws: str, http: str | None, drop_trades: Any = None,
         **kw: Any) -> tuple[L2Feed, np.ndarray]:
    feed = cls(record=True, **kw)
    recs = lines(ws) + (lines(http) if http else [])
    recs.sort(key=lambda r: r.recv_ns)          # as the replay merges them
    parts = []
    for r in recs:
        if r.kind == "rest":
            from fastbook import capture

            feed.snapshot(capture.rest_symbol(r.url), r.payload, r.recv_ns)
        elif drop_trades is None or not drop_trades(r.payload):
            feed.feed(r.payload, r.recv_ns)
        parts.append(feed.take_events())
    return feed, np.concatenate(parts)


@pytest.mark.parametrize(("ws", "http", "cls", "ref", "n"), CAPTURES,
                         ids=[c[0].split(".")[0] for c in CAPTURES])
def test_capture_trades_match_the_reference(ws: str, http: str | None, cls: Any, ref: Any,
                                            n: int) -> None:
    feed, ev = _run(cls, ws, http)
    want = [t for r in lines(ws) if r.kind == "recv" for t in ref(r.payload)]
    t = ev[ev["action"] == TRADE]
    got = [(feed.symbols[int(e["instrument"])], int(e["ts_exchange"]), int(e["side"]),
            int(e["flags"]) & ~LAST, int(e["price"]), int(e["qty"]), int(e["sequence"]))
           for e in t]
    assert len(got) == n and got == want
    assert (t["flags"] & LAST).all()            # one print per message in these captures
    assert feed.counts()["trades"] == n


@pytest.mark.parametrize(("ws", "http", "cls", "ref", "n"), CAPTURES,
                         ids=[c[0].split(".")[0] for c in CAPTURES])
def test_trades_never_change_a_book(ws: str, http: str | None, cls: Any, ref: Any,
                                    n: int) -> None:
    """The capture with its trade lines and without them: the same books, states, counts
    and book events, symbol by symbol."""
    full, ev = _run(cls, ws, http)
    bare, ev_bare = _run(cls, ws, http, drop_trades=lambda p: bool(ref(p)))
    assert set(bare.symbols) <= set(full.symbols)
    for s in bare.symbols:
        assert list(full.book(s)) == list(bare.book(s)) and full.state(s) == bare.state(s)
        c_full, c_bare = full.counts(s), bare.counts(s)
        assert c_full.pop("trades") == len(ref_trades_of(ws, ref, s))
        c_bare.pop("trades")
        assert c_full == c_bare
        mine = ev[ev["instrument"] == full.symbol_state(s).id]
        mine = mine[mine["action"] != TRADE]
        theirs = ev_bare[ev_bare["instrument"] == bare.symbol_state(s).id]
        for col in COLS:
            if col != "instrument":
                assert (mine[col] == theirs[col]).all(), (s, col)


def ref_trades_of(ws: str, ref: Any, symbol: str) -> list[Any]:
    return [t for r in lines(ws) if r.kind == "recv" for t in ref(r.payload) if t[0] == symbol]


@pytest.mark.skipif(KERNELS == ["python"], reason="needs the compiled scanner")
@pytest.mark.parametrize(("ws", "http", "cls"), [(c[0], c[1], c[2]) for c in CAPTURES[:5]],
                         ids=[c[0].split(".")[0] for c in CAPTURES[:5]])
def test_compiled_and_twin_scanners_record_the_same_events(ws: str, http: str | None,
                                                           cls: Any) -> None:
    a, ev_a = _run(cls, ws, http, kernel="compiled")
    b, ev_b = _run(cls, ws, http, kernel="python")
    assert ev_a.tobytes() == ev_b.tobytes() and a.counts() == b.counts()
    assert a.symbols == b.symbols


@pytest.mark.skipif(KERNELS == ["python"], reason="needs the compiled scanner")
def test_compiled_and_twin_agree_on_hand_written_trades() -> None:
    messages = {
        "binance": [_agg(), _agg(m=False, a=6), *(m for v, m, _, _ in BAD if v == "binance")],
        "coinbase": [_match(), _match(side="sell"),
                     *(m for v, m, _, _ in BAD if v == "coinbase")],
        "bybit": [_bybit(), *(m for v, m, _, _ in BAD if v == "bybit")],
    }
    for venue, msgs in messages.items():
        out = []
        for kernel in ("compiled", "python"):
            feed = _fresh(venue, "skip", kernel)
            for i, m in enumerate(msgs):
                feed.feed(m, i)
            out.append((feed.take_events().tobytes(), feed.counts(),
                        [str(e) for e in feed.errors]))
        assert out[0] == out[1], venue
        assert out[0][1]["malformed"] == len(msgs) - (2 if venue != "bybit" else 1)
