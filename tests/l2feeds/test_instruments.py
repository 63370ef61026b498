"""Instrument loaders and symbol normalization, on the real exchange-info documents.

Binance spot and USD-M ``exchangeInfo``, Coinbase ``products`` and Kraken
``AssetPairs`` are real (``tests/data/l2/cryptofeed``); the expected values
below are read from those documents. OKX, Bybit, Binance COIN-M, Coinbase
Advanced Trade and Kraken's v2 ``instrument`` channel are hand-built in their
documented shapes.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest

import fastbook
from fastbook.capture import RECEIVED, read_cryptofeed
from fastbook.codecs.instruments import (
    SymbolMap,
    binance_instruments,
    bybit_instruments,
    coinbase_instruments,
    format_symbol,
    kraken_asset,
    kraken_instruments,
    load_instruments,
    okx_instruments,
    parse_symbol,
    step_scale,
    to_native,
    to_symbol,
)
from tests.helpers import DATA

CF = DATA / "l2" / "cryptofeed"


def rest(name: str) -> bytes:
    (rec,) = list(read_cryptofeed(CF / f"{name}.gz"))
    return rec.payload


def raw_doc(name: str) -> Any:
    return json.loads(rest(name))


def by_native(instruments: list[Any]) -> dict[str, Any]:
    return {i.native: i for i in instruments}


# -- scales --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("step", "want"), [
    ("0.00100000", (3, 1)), ("0.0010", (3, 1)), ("0.5", (1, 5)), ("10", (0, 10)),
    ("1.00000000", (0, 1)), ("0.00000001", (8, 1)), ("0.25", (2, 25)), (100, (0, 100)),
    (0.1, (1, 1)), (Decimal("0.05"), (2, 5)), ("1e-8", (8, 1)),
])
def test_step_scale(step: Any, want: tuple[int, int]) -> None:
    assert step_scale(step) == want


@pytest.mark.parametrize("step", ["0", "-0.1", "abc", "", None, True, "1e-19", "nan"])
def test_step_scale_refuses(step: Any) -> None:
    with pytest.raises(ValueError, match=r"^step\b"):
        step_scale(step)


def test_parse_decimal_accepts_trailing_zeros_beyond_the_scale() -> None:
    # Binance spot wire strings are 8-dp padded while ticks are coarser.
    assert fastbook.parse_decimal("0.35130000", 4) == 3513
    assert fastbook.parse_decimal(b"1.00000000", 0) == 1
    with pytest.raises(fastbook.DecodeError, match="more decimal places"):
        fastbook.parse_decimal("0.35131000", 4)


# -- Binance -------------------------------------------------------------------------------------

def test_binance_spot_from_exchange_info() -> None:
    doc = raw_doc("BINANCE.0")
    ins = binance_instruments(rest("BINANCE.0"))
    assert len(ins) == len(doc["symbols"]) == 1695
    assert {i.venue for i in ins} == {"binance-spot"}
    m = by_native(ins)
    # (tickSize, stepSize) of each, read in the document; the scale is the declared
    # asset precision (8), finer than the steps, which become tick and lot.
    for native, (tick, step, symbol) in {
            "NKNUSDT": ("0.00010000", "1.00000000", "NKN/USDT"),
            "BLZETH": ("0.00000001", "1.00000000", "BLZ/ETH"),
            "LRCBTC": ("0.00000001", "1.00000000", "LRC/BTC"),
            "RUNEEUR": ("0.00100000", "0.10000000", "RUNE/EUR"),
            "ETHBTC": ("0.00000100", "0.00010000", "ETH/BTC")}.items():
        i = m[native]
        assert (i.price_decimals, i.qty_decimals, i.symbol) == (8, 8, symbol)
        assert i.tick == fastbook.parse_decimal(tick, 8) and i.lot == fastbook.parse_decimal(
            step, 8)
        assert (i.kind, i.contract_size) == ("spot", None)
    # Every instrument's scales are exactly its filters' steps.
    for sym in doc["symbols"]:
        f = {x["filterType"]: x for x in sym["filters"]}
        i = m[sym["symbol"]]
        assert Decimal(i.tick).scaleb(-i.price_decimals) == Decimal(f["PRICE_FILTER"]["tickSize"])
        assert Decimal(i.lot).scaleb(-i.qty_decimals) == Decimal(f["LOT_SIZE"]["stepSize"])
    assert binance_instruments(rest("BINANCE.0"), venue="binance-us")[0].venue == "binance-us"


def binance_levels(exchange_info: str, ws: str, http: str) -> list[tuple[Any, list[str]]]:
    m = by_native(binance_instruments(rest(exchange_info)))
    levels: list[tuple[Any, list[str]]] = []
    for rec in read_cryptofeed(CF / f"{ws}.gz"):
        data = json.loads(rec.payload).get("data", {}) if rec.kind == RECEIVED else {}
        if data.get("e") == "depthUpdate":
            levels.extend((m[data["s"]], lv) for lv in data["b"] + data["a"])
    for rec in read_cryptofeed(CF / f"{http}.gz"):
        symbol = rec.url.split("symbol=")[1].split("&")[0]
        body = json.loads(rec.payload)
        levels.extend((m[symbol], lv) for lv in body["bids"] + body["asks"])
    return levels


def _off_grid(i: Any, price: int, qty: int) -> bool:
    return bool(price % i.tick or qty % i.lot)


def test_binance_real_levels_fit_the_scales() -> None:
    spot = binance_levels("BINANCE.0", "BINANCE.ws.1.0", "BINANCE.http.0.0")
    futures = binance_levels("BINANCE_FUTURES.0", "BINANCE_FUTURES.ws.1.0",
                             "BINANCE_FUTURES.http.0.0")
    assert len({i.native for i, _ in spot}) == len({i.native for i, _ in futures}) == 4
    off: dict[str, int] = {}
    for i, (p, q) in spot + futures:
        if i.venue == "binance-spot":      # 8-dp padded wire text
            assert len(p.partition(".")[2]) == len(q.partition(".")[2]) == 8
        price = fastbook.parse_decimal(p, i.price_decimals)
        qty = fastbook.parse_decimal(q, i.qty_decimals)
        assert Decimal(price).scaleb(-i.price_decimals) == Decimal(p)
        assert Decimal(qty).scaleb(-i.qty_decimals) == Decimal(q)
        if _off_grid(i, price, qty):
            off[i.native] = off.get(i.native, 0) + 1
    # Levels resting from before a tick/step change: a scale taken from today's
    # filters alone would refuse them (and the book would never sync).
    assert set(off) == {"NKNUSDT", "CTKUSDT"}
    assert off["NKNUSDT"] > 40 and off["CTKUSDT"] > 100


def test_binance_usdm_uses_tick_size_not_price_precision() -> None:
    ins = binance_instruments(rest("BINANCE_FUTURES.0"))
    assert len(ins) == 122 and {i.venue for i in ins} == {"binance-usdm"}
    m = by_native(ins)
    sushi = m["SUSHIUSDT"]
    # exchangeInfo: pricePrecision 4, PRICE_FILTER.tickSize "0.0010", LOT_SIZE.stepSize "1"
    assert sushi.extra["pricePrecision"] == 4
    # tick 0.001 at a scale of 4 (the declared precision) is 10 units
    assert (sushi.price_decimals, sushi.tick, sushi.qty_decimals, sushi.lot) == (4, 10, 0, 1)
    ctk = m["CTKUSDT"]      # pricePrecision 5, tickSize "0.00100"
    assert (ctk.price_decimals, ctk.tick) == (5, 100)
    assert (sushi.symbol, sushi.kind, sushi.contract_size) == ("SUSHI/USDT:USDT", "perpetual", None)
    fut = m["BTCUSDT_210924"]
    assert (fut.symbol, fut.kind) == ("BTC/USDT:USDT-210924", "future")
    assert m["ETHUSDT_210924"].symbol == "ETH/USDT:USDT-210924"
    # contractType "" with the far-future delivery date: not dated.
    assert (m["BTCSTUSDT"].kind, m["BTCSTUSDT"].symbol) == ("perpetual", "BTCST/USDT:USDT")
    assert m["BTCUSDT"].symbol == "BTC/USDT:USDT"


COINM = {"timezone": "UTC", "serverTime": 1626912000000, "symbols": [
    {"symbol": "BTCUSD_PERP", "pair": "BTCUSD", "contractType": "PERPETUAL",
     "deliveryDate": 4133404800000, "onboardDate": 1597042800000, "contractStatus": "TRADING",
     "contractSize": 100, "marginAsset": "BTC", "baseAsset": "BTC", "quoteAsset": "USD",
     "pricePrecision": 1, "quantityPrecision": 0, "filters": [
         {"filterType": "PRICE_FILTER", "minPrice": "1000", "maxPrice": "4520958",
          "tickSize": "0.1"},
         {"filterType": "LOT_SIZE", "stepSize": "1", "maxQty": "1000000", "minQty": "1"}]},
    {"symbol": "ETHUSD_210924", "pair": "ETHUSD", "contractType": "CURRENT_QUARTER",
     "deliveryDate": 1632470400000, "onboardDate": 1616745600000, "contractStatus": "TRADING",
     "contractSize": 10, "marginAsset": "ETH", "baseAsset": "ETH", "quoteAsset": "USD",
     "pricePrecision": 2, "quantityPrecision": 0, "filters": [
         {"filterType": "PRICE_FILTER", "minPrice": "50", "maxPrice": "306177",
          "tickSize": "0.01"},
         {"filterType": "LOT_SIZE", "stepSize": "1", "maxQty": "1000000", "minQty": "1"}]}]}


def test_binance_coinm_contracts() -> None:
    m = by_native(binance_instruments(json.dumps(COINM)))
    perp, fut = m["BTCUSD_PERP"], m["ETHUSD_210924"]
    assert (perp.venue, perp.symbol, perp.kind) == ("binance-coinm", "BTC/USD:BTC", "perpetual")
    assert (perp.contract_size, perp.contract_unit, perp.price_decimals, perp.qty_decimals) == \
        ("100", "USD", 1, 0)
    assert (fut.symbol, fut.kind, fut.contract_size) == ("ETH/USD:ETH-210924", "future", "10")


# -- Coinbase ------------------------------------------------------------------------------------

def test_coinbase_exchange_products() -> None:
    doc = raw_doc("COINBASE.0")
    ins = coinbase_instruments(rest("COINBASE.0"))
    assert len(ins) == len(doc) == 162 and {i.venue for i in ins} == {"coinbase-exchange"}
    m = by_native(ins)
    skl = m["SKL-EUR"]      # quote_increment "0.0001", base_increment "0.1"
    assert (skl.symbol, skl.price_decimals, skl.tick, skl.qty_decimals, skl.lot) == \
        ("SKL/EUR", 4, 1, 1, 1)
    for p in doc:
        i = m[p["id"]]
        assert Decimal(i.tick).scaleb(-i.price_decimals) == Decimal(p["quote_increment"])
        assert Decimal(i.lot).scaleb(-i.qty_decimals) == Decimal(p["base_increment"])
        assert i.symbol == f"{p['base_currency']}/{p['quote_currency']}"


def test_coinbase_advanced_products() -> None:
    doc = {"products": [
        {"product_id": "BTC-USD", "price": "27000.01", "base_increment": "0.00000001",
         "quote_increment": "0.01", "price_increment": "0.01", "base_currency_id": "BTC",
         "quote_currency_id": "USD", "product_type": "SPOT", "status": "online"},
        {"product_id": "ETH-USDC", "base_increment": "0.00000001", "quote_increment": "0.000001",
         "price_increment": "0.01", "base_currency_id": "ETH", "quote_currency_id": "USDC",
         "product_type": "SPOT", "status": "online"},
        {"product_id": "BIT-31JAN25-CDE", "product_type": "FUTURE", "base_increment": "1",
         "quote_increment": "5", "price_increment": "5"}], "num_products": 3}
    m = by_native(coinbase_instruments(doc))
    assert set(m) == {"BTC-USD", "ETH-USDC"}
    eth = m["ETH-USDC"]     # the price tick is price_increment, not quote_increment
    assert (eth.venue, eth.symbol, eth.price_decimals, eth.qty_decimals) == \
        ("coinbase-advanced", "ETH/USDC", 2, 8)


# -- Kraken --------------------------------------------------------------------------------------

def test_kraken_asset_pairs() -> None:
    doc = raw_doc("KRAKEN.0")["result"]
    v1 = by_native(kraken_instruments(rest("KRAKEN.0")))
    v2 = by_native(kraken_instruments(rest("KRAKEN.0"), "kraken-v2"))
    with_ws = [k for k, p in doc.items() if p.get("wsname")]
    assert len(v1) == len(v2) == len(with_ws) == 293       # the 11 ".d" pairs have no wsname
    btc = v1["XBT/USD"]
    assert (btc.symbol, btc.price_decimals, btc.qty_decimals) == ("BTC/USD", 1, 8)
    assert btc.extra["rest"] == "XXBTZUSD" and btc.extra["altname"] == "XBTUSD"
    assert v2["BTC/USD"].extra["aliases"] == ("XXBTZUSD", "XBTUSD", "XBT/USD")
    assert v1["XDG/USD"].symbol == "DOGE/USD" and "DOGE/USD" in v2
    assert v1["XBT/CHF"].price_decimals == doc["XBTCHF"]["pair_decimals"] == 1
    assert v1["ETH2.S/ETH"].symbol == "ETH2.S/ETH"
    for rest_name in with_ws:
        p = doc[rest_name]
        i = v1[p["wsname"]]
        assert (i.price_decimals, i.qty_decimals) == (p["pair_decimals"], p["lot_decimals"])
        assert (i.extra["price_precision"], i.extra["qty_precision"]) == \
            (p["pair_decimals"], p["lot_decimals"])
        assert i.symbol == f"{kraken_asset(p['base'])}/{kraken_asset(p['quote'])}"


def test_kraken_assets() -> None:
    assert [kraken_asset(a) for a in ("XXBT", "XBT", "ZUSD", "XXDG", "XDG", "XETH", "XTZ",
                                      "CHF", "ZEUS", "ETH2.S", "ZRX")] == \
        ["BTC", "BTC", "USD", "DOGE", "DOGE", "ETH", "XTZ", "CHF", "ZEUS", "ETH2.S", "ZRX"]


def test_kraken_v2_instrument_channel() -> None:
    msg = {"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": [
        {"symbol": "ALGO/USD", "base": "ALGO", "quote": "USD", "status": "online",
         "qty_precision": 8, "qty_increment": 0.00000001, "price_precision": 5,
         "cost_precision": 5, "marginable": False, "has_index": True, "cost_min": 0.5,
         "tick_size": 0.00001, "price_increment": 0.00001, "qty_min": 5.0},
        {"symbol": "DOGE/USD", "base": "DOGE", "quote": "USD", "status": "online",
         "qty_precision": 8, "qty_increment": 0.00000001, "price_precision": 7,
         "price_increment": 0.0000005, "qty_min": 50}]}}
    v2 = by_native(kraken_instruments(json.dumps(msg), "kraken-v2"))
    v1 = by_native(kraken_instruments(msg, "kraken-v1"))
    algo = v2["ALGO/USD"]
    assert (algo.price_decimals, algo.qty_decimals, algo.tick, algo.lot) == (5, 8, 1, 1)
    assert (algo.extra["price_precision"], algo.extra["qty_precision"]) == (5, 8)
    assert v2["DOGE/USD"].tick == 5 and v1["XDG/USD"].symbol == "DOGE/USD"


# -- OKX -----------------------------------------------------------------------------------------

OKX_DOC = {"code": "0", "msg": "", "data": [
    {"instType": "SPOT", "instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT",
     "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "ctType": "", "uly": "",
     "instFamily": "", "tickSz": "0.1", "lotSz": "0.00000001", "minSz": "0.00001",
     "expTime": "", "state": "live"},
    {"instType": "MARGIN", "instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT",
     "tickSz": "0.1", "lotSz": "0.00000001", "state": "live"},
    {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "uly": "BTC-USDT", "instFamily": "BTC-USDT",
     "settleCcy": "USDT", "ctVal": "0.01", "ctMult": "1", "ctValCcy": "BTC", "ctType": "linear",
     "baseCcy": "", "quoteCcy": "", "tickSz": "0.1", "lotSz": "0.01", "minSz": "0.01",
     "expTime": "", "state": "live"},
    {"instType": "SWAP", "instId": "BTC-USD-SWAP", "uly": "BTC-USD", "instFamily": "BTC-USD",
     "settleCcy": "BTC", "ctVal": "100", "ctMult": "1", "ctValCcy": "USD", "ctType": "inverse",
     "baseCcy": "", "quoteCcy": "", "tickSz": "0.1", "lotSz": "1", "minSz": "1",
     "expTime": "", "state": "live"},
    {"instType": "FUTURES", "instId": "BTC-USD-220527", "uly": "BTC-USD",
     "instFamily": "BTC-USD", "settleCcy": "BTC", "ctVal": "100", "ctMult": "1",
     "ctValCcy": "USD", "ctType": "inverse", "alias": "this_quarter", "tickSz": "0.1",
     "lotSz": "1", "minSz": "1", "expTime": "1653638400000", "state": "live"},
    {"instType": "OPTION", "instId": "BTC-USD-220527-30000-C", "uly": "BTC-USD",
     "instFamily": "BTC-USD", "settleCcy": "BTC", "ctVal": "0.01", "ctMult": "1",
     "ctValCcy": "BTC", "optType": "C", "stk": "30000", "tickSz": "0.0005", "lotSz": "1",
     "minSz": "1", "expTime": "1653638400000", "state": "live"}]}


def test_okx_instruments() -> None:
    ins = okx_instruments(json.dumps(OKX_DOC))
    m = by_native(ins)
    assert len(ins) == 5        # MARGIN repeats the spot book
    spot, lin, inv, fut, opt = (m[k] for k in ("BTC-USDT", "BTC-USDT-SWAP", "BTC-USD-SWAP",
                                               "BTC-USD-220527", "BTC-USD-220527-30000-C"))
    assert (spot.symbol, spot.price_decimals, spot.qty_decimals, spot.contract_size) == \
        ("BTC/USDT", 1, 8, None)
    assert (lin.symbol, lin.kind, lin.qty_decimals, lin.contract_size, lin.contract_unit) == \
        ("BTC/USDT:USDT", "perpetual", 2, "0.01", "BTC")
    assert (inv.symbol, inv.contract_size, inv.contract_unit) == ("BTC/USD:BTC", "100", "USD")
    assert (fut.symbol, fut.kind) == ("BTC/USD:BTC-220527", "future")
    assert (opt.symbol, opt.kind, opt.price_decimals, opt.tick) == \
        ("BTC/USD:BTC-220527-30000-C", "option", 4, 5)
    for i in ins:
        assert to_symbol("okx", i.native) == i.symbol
        assert to_native("okx", i.symbol) == i.native
    with pytest.raises(ValueError, match="code"):
        okx_instruments({"code": "51001", "msg": "Instrument ID does not exist", "data": []})


# -- Bybit ---------------------------------------------------------------------------------------

def bybit_doc(category: str, rows: list[dict]) -> dict:
    return {"retCode": 0, "retMsg": "OK", "result": {"category": category, "list": rows,
                                                     "nextPageCursor": ""}, "time": 1700000000000}


BYBIT_LINEAR = bybit_doc("linear", [
    {"symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading",
     "baseCoin": "BTC", "quoteCoin": "USDT", "settleCoin": "USDT", "launchTime": "1584230400000",
     "deliveryTime": "0", "priceScale": "2",
     "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
     "lotSizeFilter": {"maxOrderQty": "100.000", "minOrderQty": "0.001", "qtyStep": "0.001"}},
    {"symbol": "BTC-27DEC24", "contractType": "LinearFutures", "status": "Trading",
     "baseCoin": "BTC", "quoteCoin": "USDC", "settleCoin": "USDC", "deliveryTime": "1735286400000",
     "priceFilter": {"tickSize": "0.50"},
     "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001"}}])
BYBIT_INVERSE = bybit_doc("inverse", [
    {"symbol": "BTCUSD", "contractType": "InversePerpetual", "status": "Trading",
     "baseCoin": "BTC", "quoteCoin": "USD", "settleCoin": "BTC", "deliveryTime": "0",
     "priceFilter": {"tickSize": "0.50"}, "lotSizeFilter": {"qtyStep": "1"}}])
BYBIT_SPOT = bybit_doc("spot", [
    {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "innovation": "0",
     "status": "Trading", "marginTrading": "both",
     "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                       "minOrderQty": "0.000048", "maxOrderQty": "71.73956243"},
     "priceFilter": {"tickSize": "0.01"}}])
BYBIT_OPTION = bybit_doc("option", [
    {"symbol": "BTC-27DEC24-60000-C", "optionsType": "Call", "status": "Trading",
     "baseCoin": "BTC", "quoteCoin": "USD", "settleCoin": "USDC", "deliveryTime": "1735286400000",
     "priceFilter": {"tickSize": "5"}, "lotSizeFilter": {"qtyStep": "0.01"}}])


def test_bybit_instruments() -> None:
    lin = by_native(bybit_instruments(json.dumps(BYBIT_LINEAR)))
    assert (lin["BTCUSDT"].symbol, lin["BTCUSDT"].price_decimals, lin["BTCUSDT"].tick,
            lin["BTCUSDT"].qty_decimals) == ("BTC/USDT:USDT", 2, 10, 3)   # priceScale 2
    assert (lin["BTC-27DEC24"].symbol, lin["BTC-27DEC24"].kind, lin["BTC-27DEC24"].tick) == \
        ("BTC/USDC:USDC-241227", "future", 5)
    inv = bybit_instruments(BYBIT_INVERSE)[0]
    assert (inv.symbol, inv.contract_size, inv.contract_unit) == ("BTC/USD:BTC", "1", "USD")
    spot = bybit_instruments(BYBIT_SPOT)[0]
    assert (spot.symbol, spot.qty_decimals, spot.extra["category"]) == ("BTC/USDT", 6, "spot")
    opt = bybit_instruments(BYBIT_OPTION)[0]
    assert (opt.symbol, opt.kind, opt.tick) == ("BTC/USD:USDC-241227-60000-C", "option", 5)
    # BTCUSDT is one native symbol in two categories: a map tells them apart.
    both = SymbolMap(bybit_instruments(BYBIT_SPOT) + bybit_instruments(BYBIT_LINEAR))
    assert both.to_symbol("BTCUSDT", "bybit", "spot") == "BTC/USDT"
    assert both.to_symbol("BTCUSDT", "bybit", "linear") == "BTC/USDT:USDT"
    with pytest.raises(ValueError, match="name the venue"):
        both.to_symbol("BTCUSDT")


# -- round trips over every instrument of every document -------------------------------------------

def all_documents() -> list[tuple[str, list[Any]]]:
    return [
        ("binance-spot", binance_instruments(rest("BINANCE.0"))),
        ("binance-usdm", binance_instruments(rest("BINANCE_FUTURES.0"))),
        ("binance-coinm", binance_instruments(COINM)),
        ("coinbase-exchange", coinbase_instruments(rest("COINBASE.0"))),
        ("kraken-v1", kraken_instruments(rest("KRAKEN.0"), "kraken-v1")),
        ("kraken-v2", kraken_instruments(rest("KRAKEN.0"), "kraken-v2")),
        ("okx", okx_instruments(OKX_DOC)),
        ("bybit", bybit_instruments(BYBIT_LINEAR)),
        ("bybit", bybit_instruments(BYBIT_SPOT)),
        ("bybit", bybit_instruments(BYBIT_INVERSE)),
        ("bybit", bybit_instruments(BYBIT_OPTION)),
    ]


def test_round_trip_every_instrument() -> None:
    total = 0
    everything = []
    for venue, ins in all_documents():
        m = SymbolMap(ins)
        assert len(m) == len(ins)
        for i in ins:
            assert i.venue == venue
            assert m.to_symbol(i.native) == i.symbol
            assert m.to_native(i.symbol) == i.native
            assert parse_symbol(i.symbol).kind == i.kind
            assert format_symbol(*(getattr(parse_symbol(i.symbol), f) for f in (
                "base", "quote", "settle", "expiry", "strike", "right"))) == i.symbol
            for alias in i.extra.get("aliases", ()):
                assert m.to_symbol(alias) == i.symbol
            if venue in ("coinbase-exchange", "kraken-v1", "kraken-v2", "okx"):
                assert to_symbol(venue, i.native) == i.symbol
                assert to_native(venue, i.symbol) == i.native
            total += 1
        everything.extend(ins)
    assert total > 2200
    # One map over all venues: names are per venue.
    big = SymbolMap(everything)
    assert big.to_native("BTC/USD", "kraken-v1") == "XBT/USD"
    assert big.to_native("BTC/USD", "kraken-v2") == "BTC/USD"
    assert big.to_native("BTC/USD", "coinbase-exchange") == "BTC-USD"
    assert big.to_symbol("btcusdt", "binance-spot") == "BTC/USDT"
    assert big.to_symbol("XXBTZUSD", "kraken-v1") == "BTC/USD"
    assert big.to_native("BTC/USDT:USDT", "binance-usdm") == "BTCUSDT"
    with pytest.raises(KeyError, match=r"kraken-v1: no instrument with symbol 'NOPE/USD'"):
        big.to_native("NOPE/USD", "kraken-v1")


def test_syntactic_mapping() -> None:
    assert to_symbol("kraken-v1", "XBT/USD") == "BTC/USD"
    assert to_native("kraken-v1", "DOGE/USD") == "XDG/USD"
    assert to_symbol("okx", "BTC-USDT-SWAP") == "BTC/USDT:USDT"
    assert to_symbol("okx", "BTC-USD-220527") == "BTC/USD:BTC-220527"
    assert to_native("okx", "BTC/USD:BTC") == "BTC-USD-SWAP"
    assert to_symbol("coinbase-exchange", "BTC-USD") == "BTC/USD"
    for venue in ("binance-spot", "bybit"):
        with pytest.raises(ValueError, match="metadata"):
            to_symbol(venue, "BTCUSDT")
    with pytest.raises(ValueError, match=r"^kraken-v1 has spot books only, not 'BTC/USD:BTC'$"):
        to_native("kraken-v1", "BTC/USD:BTC")


@pytest.mark.parametrize("bad", ["BTC", "BTC/", "btc/usd", "BTC/USD:", "BTC/USD:BTC-2205",
                                 "BTC/USD:BTC-220527-30000", "BTC/USD:BTC-220527-30000-X",
                                 "BTC/USD/EUR"])
def test_parse_symbol_refuses(bad: str) -> None:
    # each message names the part that is wrong
    part = {"BTC": "'BTC' is not a normalized symbol", "BTC/": "quote '' is not",
            "btc/usd": "base 'btc' is not", "BTC/USD:": "'BTC/USD:' is not a normalized symbol",
            "BTC/USD:BTC-2205": "expiry must be YYMMDD, got '2205'",
            "BTC/USD:BTC-220527-30000": "'BTC/USD:BTC-220527-30000': expected SETTLE",
            "BTC/USD:BTC-220527-30000-X": "right C or P, got '220527', '30000', 'X'",
            "BTC/USD/EUR": "quote 'USD/EUR' is not"}[bad]
    with pytest.raises(ValueError, match=re.escape(part)):
        parse_symbol(bad)


def test_load_instruments_dispatch() -> None:
    assert load_instruments("okx", OKX_DOC)[0].venue == "okx"
    assert load_instruments("kraken-v2", rest("KRAKEN.0"))[0].venue == "kraken-v2"
    assert load_instruments("bybit", BYBIT_SPOT)[0].extra["category"] == "spot"
    with pytest.raises(ValueError, match="unknown venue"):
        load_instruments("ftx", {})


@pytest.mark.parametrize(("loader", "doc", "match"), [
    (binance_instruments, {"nope": 1}, "symbols"),
    (binance_instruments, {"symbols": [{"symbol": "X", "filters": []}]}, "lacks"),
    (coinbase_instruments, {"x": 1}, "products"),
    (kraken_instruments, {"error": ["EGeneral:x"], "result": {}}, "errors"),
    (okx_instruments, {"code": "0", "data": [{"instType": "SPOT", "instId": "A-B"}]}, "lacks"),
    (bybit_instruments, {"retCode": 10001, "result": {"list": []}}, "retCode"),
])
def test_loaders_report_bad_documents(loader: Any, doc: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        loader(doc)
