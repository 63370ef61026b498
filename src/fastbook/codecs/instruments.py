"""Instrument metadata from venue documents, and one normalized symbol form.

Each loader turns a venue's exchange-info / products document (the raw JSON
body as ``bytes``/``str``, or the already-decoded object) into
:class:`~fastbook.codecs._l2feed.Instrument` records whose fixed-point scales
come from the **tick and lot sizes** (the smallest price and quantity steps),
never from display precisions such as Binance's ``pricePrecision``:

==================== ================================== ==================================
loader               tick (price step)                  lot (quantity step)
==================== ================================== ==================================
binance_instruments  ``PRICE_FILTER.tickSize``          ``LOT_SIZE.stepSize``
coinbase_instruments ``quote_increment`` (Advanced:     ``base_increment``
                     ``price_increment``)
kraken_instruments   ``pair_decimals`` (``tick_size``   ``lot_decimals``; v2 channel:
                     when present); v2 ``instrument``   ``qty_precision`` /
                     channel: ``price_precision`` /     ``qty_increment``
                     ``price_increment``
okx_instruments      ``tickSz``                         ``lotSz`` (contracts for
                                                        derivatives, ``ctVal``/``ctValCcy``)
bybit_instruments    ``priceFilter.tickSize``           ``lotSizeFilter.qtyStep`` (spot:
                                                        ``basePrecision``)
==================== ================================== ==================================

A step such as ``"0.00100000"`` gives ``decimals = 3`` and ``tick = 1`` (in
units of ``10**-3``); ``"0.5"`` gives ``decimals = 1``, ``tick = 5``; ``"10"``
gives ``decimals = 0``, ``tick = 10``. Where the document also declares a
finer precision (Binance's asset precisions and ``pricePrecision`` /
``quantityPrecision``, Bybit's ``priceScale``) the scale is widened to it and
the step kept as ``tick`` / ``lot`` in the finer units: real Binance books hold
levels resting from before a tick-size change, finer than today's tick. Wire
values padded with more zeros than the scale still parse exactly:
:func:`fastbook.parse_decimal` accepts trailing zeros beyond the scale and
refuses only a nonzero digit there.

Normalized symbols (one form for every venue, as ccxt writes them):

* spot ``BASE/QUOTE`` (``BTC/USDT``);
* perpetual ``BASE/QUOTE:SETTLE`` (``BTC/USDT:USDT`` linear, ``BTC/USD:BTC`` inverse);
* dated future ``BASE/QUOTE:SETTLE-YYMMDD`` (``BTC/USD:BTC-220527``);
* option ``BASE/QUOTE:SETTLE-YYMMDD-STRIKE-C|P``.

Asset codes are upper case; Kraken's ``XBT`` is ``BTC`` and ``XDG`` is ``DOGE``,
and Kraken's legacy four-letter ``X``/``Z`` prefixes (``XXBT``, ``ZUSD``) are
stripped. :class:`SymbolMap` maps both ways between normalized and native
symbols for any loaded instruments; :func:`to_symbol` / :func:`to_native` do
it from the text alone for the venues whose native symbols say everything
(Coinbase, Kraken v1 and v2, OKX).

Quantities counted in contracts (Binance COIN-M, OKX derivatives, Bybit
inverse) carry ``contract_size`` (decimal text) and ``contract_unit`` (the
currency one contract is worth that much of): base quantity = contracts x
``contract_size`` when ``contract_unit`` is the base, quote notional when it
is the quote (inverse contracts).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from fastbook._checks import MAX_DECIMALS, is_int
from fastbook.codecs._l2feed import Instrument

__all__ = [
    "KRAKEN_ASSETS",
    "KRAKEN_PREFIXED",
    "VENUES",
    "SymbolMap",
    "SymbolParts",
    "binance_instruments",
    "bybit_instruments",
    "coinbase_instruments",
    "format_symbol",
    "kraken_asset",
    "kraken_instruments",
    "load_instruments",
    "okx_instruments",
    "parse_symbol",
    "step_scale",
    "to_native",
    "to_symbol",
]

#: Venue names of the L2 feeds (``L2Feed.venue``).
VENUES = ("binance-spot", "binance-us", "binance-usdm", "binance-coinm", "coinbase-advanced",
          "coinbase-exchange", "kraken-v1", "kraken-v2", "okx", "bybit")

#: Binance's "perpetual" delivery date (2100-12-25 08:00 UTC) and anything later.
_BINANCE_NO_DELIVERY_MS = 4_133_404_800_000

_EPOCH = _dt.datetime(1970, 1, 1)


# --- normalized symbols -------------------------------------------------------------------

@dataclass(frozen=True)
class SymbolParts:
    """The parts of a normalized symbol (empty strings where they do not apply)."""

    base: str
    quote: str
    settle: str = ""        # derivatives only: the currency margin and P&L are in
    expiry: str = ""        # dated futures and options: YYMMDD
    strike: str = ""        # options: the strike as decimal text
    right: str = ""         # options: "C" or "P"

    @property
    def kind(self) -> str:
        if not self.settle:
            return "spot"
        if self.strike:
            return "option"
        return "future" if self.expiry else "perpetual"


def _check_code(code: str, what: str) -> str:
    if not isinstance(code, str) or not code or any(c in code for c in "/:- ") \
            or code != code.upper():
        raise ValueError(f"{what} {code!r} is not an upper-case asset code without '/', ':', "
                         "'-' or spaces")
    return code


def format_symbol(base: str, quote: str, settle: str = "", expiry: str = "", strike: str = "",
                  right: str = "") -> str:
    """The normalized symbol: ``BASE/QUOTE[:SETTLE[-YYMMDD[-STRIKE-C|P]]]``."""
    text = f"{_check_code(base, 'base')}/{_check_code(quote, 'quote')}"
    if not settle:
        if expiry or strike or right:
            raise ValueError("a spot symbol has no expiry, strike or right; give settle")
        return text
    text += ":" + _check_code(settle, "settle")
    if expiry:
        if len(expiry) != 6 or not expiry.isdigit():
            raise ValueError(f"expiry must be YYMMDD, got {expiry!r}")
        text += "-" + expiry
    if strike or right:
        if not expiry or not strike or right not in ("C", "P"):
            raise ValueError(f"an option needs an expiry, a strike and right C or P, got "
                             f"{expiry!r}, {strike!r}, {right!r}")
        _decimal(strike, "strike")
        text += f"-{strike}-{right}"
    return text


def parse_symbol(symbol: str) -> SymbolParts:
    """Split a normalized symbol; ValueError when it is not one."""
    if not isinstance(symbol, str):
        raise ValueError(f"a symbol must be a str, got {type(symbol).__name__}")
    pair, _, deriv = symbol.partition(":")
    base, sep, quote = pair.partition("/")
    if not sep:
        raise ValueError(f"{symbol!r} is not a normalized symbol (BASE/QUOTE[:SETTLE...])")
    settle, expiry, strike, right = "", "", "", ""
    if deriv:
        fields = deriv.split("-")
        if len(fields) not in (1, 2, 4):
            raise ValueError(f"{symbol!r}: expected SETTLE, SETTLE-YYMMDD or "
                             "SETTLE-YYMMDD-STRIKE-C|P after ':'")
        settle = fields[0]
        if len(fields) >= 2:
            expiry = fields[1]
        if len(fields) == 4:
            strike, right = fields[2], fields[3]
    parts = SymbolParts(base, quote, settle, expiry, strike, right)
    if format_symbol(*_astuple(parts)) != symbol:
        raise ValueError(f"{symbol!r} is not a normalized symbol")
    return parts


def _astuple(p: SymbolParts) -> tuple[str, str, str, str, str, str]:
    return (p.base, p.quote, p.settle, p.expiry, p.strike, p.right)


# --- steps and scales ------------------------------------------------------------------------

def _decimal(value: Any, what: str) -> Decimal:
    """Exact decimal of a document value: text, an int, or a float (JSON number) by its repr."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a decimal number, got {value!r}")
    if isinstance(value, float):
        value = repr(value)     # the shortest text that round-trips: what the JSON said
    try:
        d = Decimal(value) if isinstance(value, (str, int, Decimal)) else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite():
        raise ValueError(f"{what} must be a decimal number, got {value!r}")
    return d


def step_scale(step: Any, what: str = "step") -> tuple[int, int]:
    """``(decimals, units)`` of a positive price or quantity step: ``step = units / 10**decimals``.

    ``"0.00100000"`` -> ``(3, 1)``, ``"0.5"`` -> ``(1, 5)``, ``"10"`` -> ``(0, 10)``.
    """
    d = _decimal(step, what)
    if d <= 0:
        raise ValueError(f"{what} must be positive, got {step!r}")
    exponent = d.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    decimals = max(0, -exponent)
    if decimals > 18:
        raise ValueError(f"{what} {step!r} has more than 18 decimals")
    units = int(d.scaleb(decimals))
    return decimals, units


def _decimals_arg(value: Any, what: str) -> int:
    if not is_int(value, 0, MAX_DECIMALS):
        raise ValueError(f"{what} must be an int from 0 to {MAX_DECIMALS}, got {value!r}")
    return value


def _widen(decimals: int, units: int, to: Any, what: str) -> tuple[int, int]:
    """``(decimals, units)`` at a larger scale ``to`` (None, or not larger: unchanged)."""
    if to is None:
        return decimals, units
    to = _decimals_arg(int(to) if isinstance(to, str) and to.isdigit() else to, what)
    if to <= decimals:
        return decimals, units
    return to, units * 10 ** (to - decimals)


def _text(d: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros (``"100"``, ``"0.01"``)."""
    s = format(d.normalize(), "f")
    return s


def _yymmdd_from_ms(ms: Any, what: str) -> str:
    try:
        t = _EPOCH + _dt.timedelta(milliseconds=int(ms))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be a time in ms, got {ms!r}") from None
    return t.strftime("%y%m%d")


def _load(doc: Any) -> Any:
    """A JSON document as objects; numbers with a fraction become exact Decimals."""
    if isinstance(doc, (bytes, bytearray, memoryview)):
        doc = bytes(doc).decode("utf-8")
    if isinstance(doc, str):
        return json.loads(doc, parse_float=Decimal)
    return doc


def _venue_error(venue: str, what: str, item: Any = None) -> ValueError:
    where = f" in {item!r}"[:120] if item is not None else ""
    return ValueError(f"{venue}: {what}{where}")


# --- asset codes -------------------------------------------------------------------------------

#: Kraken asset codes that differ from the common code (after the X/Z prefix is gone).
KRAKEN_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}
_KRAKEN_NATIVE = {v: k for k, v in KRAKEN_ASSETS.items()}

#: Kraken's legacy asset codes with an X (crypto) or Z (fiat) prefix. Kraken stopped
#: prefixing new assets long ago, and some newer four-letter codes start with X or Z
#: on their own, so only these are stripped.
KRAKEN_PREFIXED = frozenset({
    "XETC", "XETH", "XLTC", "XMLN", "XREP", "XXBT", "XXDG", "XXLM", "XXMR", "XXRP", "XZEC",
    "XICN", "XNMC", "XXVN", "XDAO", "ZAUD", "ZCAD", "ZEUR", "ZGBP", "ZJPY", "ZUSD", "ZKRW",
})


def kraken_asset(code: str) -> str:
    """Kraken's asset code in the common form: ``XXBT``/``XBT`` -> ``BTC``, ``ZUSD`` -> ``USD``,
    ``XXDG``/``XDG`` -> ``DOGE``; others unchanged (``XTZ``, ``ETH2.S``)."""
    if code in KRAKEN_PREFIXED:
        code = code[1:]
    return KRAKEN_ASSETS.get(code, code)


# --- loaders ---------------------------------------------------------------------------------

def _filters(sym: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {f.get("filterType"): f for f in sym.get("filters", ())}


def binance_instruments(doc: Any, venue: str | None = None) -> list[Instrument]:
    """Instruments of a Binance ``exchangeInfo`` document.

    ``venue``: ``"binance-spot"``, ``"binance-us"``, ``"binance-usdm"`` or
    ``"binance-coinm"``; by default it is read from the document (COIN-M symbols
    carry ``contractSize``, USD-M ones ``contractType``; anything else is spot;
    Binance.US has the spot shape, so name it). Spot and USD-M quantities are
    base units; COIN-M quantities are contracts of ``contractSize`` quote units
    (``contract_unit`` is the quote, e.g. 100 USD per BTCUSD contract).

    ``tick`` / ``lot`` are ``PRICE_FILTER.tickSize`` / ``LOT_SIZE.stepSize``
    (never ``pricePrecision``: SUSHIUSDT has pricePrecision 4 and tickSize
    0.001). The *scale* is the finer of the step and the precision Binance
    declares (spot: ``quoteAssetPrecision`` / ``baseAssetPrecision``, 8;
    futures: ``pricePrecision`` / ``quantityPrecision``), because orders that
    rest from before a tick or step change stay in the book at the old, finer
    grid (so SUSHIUSDT is kept at 4 decimals with a tick of 10 units).
    """
    data = _load(doc)
    symbols = data.get("symbols") if isinstance(data, Mapping) else None
    if not isinstance(symbols, list):
        raise ValueError("binance: an exchangeInfo document has a 'symbols' list")
    if venue is None:
        if any("contractSize" in s for s in symbols):
            venue = "binance-coinm"
        elif "futuresType" in data or any("contractType" in s for s in symbols):
            venue = "binance-usdm"
        else:
            venue = "binance-spot"
    if venue not in ("binance-spot", "binance-us", "binance-usdm", "binance-coinm"):
        raise ValueError(f"binance: unknown venue {venue!r}")
    out = []
    for sym in symbols:
        native = sym.get("symbol")
        filters = _filters(sym)
        try:
            pd, tick = step_scale(filters["PRICE_FILTER"]["tickSize"], "tickSize")
            qd, lot = step_scale(filters["LOT_SIZE"]["stepSize"], "stepSize")
            base, quote = sym["baseAsset"], sym["quoteAsset"]
        except (KeyError, TypeError) as exc:
            raise _venue_error(venue, f"symbol {native!r} lacks {exc}") from None
        extra: dict[str, Any] = {"status": sym.get("status", "")}
        for key in ("pricePrecision", "quantityPrecision", "baseAssetPrecision",
                    "quotePrecision", "quoteAssetPrecision"):
            if key in sym:
                extra[key] = sym[key]
        # The scale must also hold levels resting since before a tick/step change
        # (real data: NKNUSDT spot has 49 of 1,988 levels finer than its filters,
        # USD-M CTKUSDT 131 prices at 5 decimals with tickSize 0.001): widen it to
        # the precision Binance declares, keeping the current step as tick / lot.
        if venue in ("binance-usdm", "binance-coinm"):
            wide_p, wide_q = sym.get("pricePrecision"), sym.get("quantityPrecision")
        else:
            wide_p = sym.get("quoteAssetPrecision", sym.get("quotePrecision"))
            wide_q = sym.get("baseAssetPrecision")
        pd, tick = _widen(pd, tick, wide_p, f"{native} price precision")
        qd, lot = _widen(qd, lot, wide_q, f"{native} quantity precision")
        kind = "spot"
        settle = expiry = ""
        contract_size = None
        unit = ""
        if venue in ("binance-usdm", "binance-coinm"):
            ctype = sym.get("contractType", "")
            delivery = int(sym.get("deliveryDate", 0) or 0)
            extra["contractType"] = ctype
            settle = sym.get("marginAsset") or quote
            if ctype == "PERPETUAL" or (ctype == "" and delivery >= _BINANCE_NO_DELIVERY_MS):
                kind = "perpetual"
            else:
                kind = "future"
                _, sep, suffix = native.rpartition("_")
                expiry = suffix if sep and len(suffix) == 6 and suffix.isdigit() else \
                    _yymmdd_from_ms(delivery, f"{native} deliveryDate")
            if venue == "binance-coinm":
                contract_size = _text(_decimal(sym["contractSize"], "contractSize"))
                unit = quote
        symbol = format_symbol(base, quote, settle, expiry)
        out.append(Instrument(venue, native, symbol, pd, qd, tick, lot, kind, contract_size,
                              unit, extra))
    return out


def coinbase_instruments(doc: Any, venue: str | None = None) -> list[Instrument]:
    """Instruments of a Coinbase products document.

    Coinbase Exchange ``GET /products`` (a list with ``id``, ``quote_increment``,
    ``base_increment``) gives venue ``"coinbase-exchange"``; Advanced Trade
    ``GET /api/v3/brokerage/market/products`` (``{"products": [...]}`` with
    ``product_id``, ``price_increment``, ``base_increment``) gives
    ``"coinbase-advanced"`` (its SPOT products; futures are skipped).
    """
    data = _load(doc)
    if isinstance(data, Mapping) and isinstance(data.get("products"), list):
        products, default = data["products"], "coinbase-advanced"
    elif isinstance(data, list):
        products, default = data, "coinbase-exchange"
    else:
        raise ValueError("coinbase: expected a products list or {'products': [...]}")
    venue = venue or default
    if venue not in ("coinbase-exchange", "coinbase-advanced"):
        raise ValueError(f"coinbase: unknown venue {venue!r}")
    out = []
    for p in products:
        try:
            if "product_id" in p:
                if p.get("product_type", "SPOT") != "SPOT":
                    continue
                native = p["product_id"]
                base = p.get("base_currency_id") or native.split("-")[0]
                quote = p.get("quote_currency_id") or native.split("-")[1]
                tick_text = p.get("price_increment") or p["quote_increment"]
            else:
                native = p["id"]
                base, quote = p["base_currency"], p["quote_currency"]
                tick_text = p["quote_increment"]
            pd, tick = step_scale(tick_text, "quote_increment")
            qd, lot = step_scale(p["base_increment"], "base_increment")
        except (KeyError, TypeError, IndexError) as exc:
            raise _venue_error(venue, f"product lacks {exc}", p.get("id")) from None
        symbol = format_symbol(base, quote)
        out.append(Instrument(venue, native, symbol, pd, qd, tick, lot, "spot",
                              extra={"status": p.get("status", "")}))
    return out


def kraken_instruments(doc: Any, venue: str = "kraken-v1") -> list[Instrument]:
    """Instruments of Kraken ``GET /0/public/AssetPairs`` or of a WebSocket v2 ``instrument``
    channel message.

    ``venue`` ``"kraken-v1"`` keys them by the v1 ``wsname`` (``XBT/USD``),
    ``"kraken-v2"`` by the v2 symbol (``BTC/USD``). AssetPairs scales are
    ``pair_decimals`` / ``lot_decimals`` (a ``tick_size`` field, when present,
    gives the tick); the v2 channel's are ``price_precision`` /
    ``qty_precision`` with ``price_increment`` / ``qty_increment``. Both are kept
    in ``extra["price_precision"]`` / ``extra["qty_precision"]``: the v2
    checksum formats with them. Every instrument's ``extra["aliases"]`` holds
    its other native forms (REST name ``XXBTZUSD``, ``altname`` ``XBTUSD``, the
    other WebSocket version's symbol). Pairs without a ``wsname`` (the ``.d``
    dark-pool pairs) have no WebSocket book and are left out.

    Note: Kraken v1 *book* strings carry more decimals than ``pair_decimals``
    (XBT/CHF ``"56218.30000"`` vs 1); the v1 codec keeps each pair at its wire
    decimals, learnt from the first snapshot, whatever these scales say.
    """
    if venue not in ("kraken-v1", "kraken-v2"):
        raise ValueError(f"kraken: unknown venue {venue!r}")
    data = _load(doc)
    if isinstance(data, Mapping) and data.get("channel") == "instrument":
        return _kraken_v2_channel(data, venue)
    if not isinstance(data, Mapping) or not isinstance(data.get("result"), Mapping):
        raise ValueError("kraken: expected an AssetPairs document {'error': [], 'result': {...}}"
                         " or an 'instrument' channel message")
    if data.get("error"):
        raise ValueError(f"kraken: the document reports errors: {data['error']!r}")
    out = []
    for rest, p in data["result"].items():
        ws = p.get("wsname")
        if not ws:
            continue
        try:
            wbase, _, wquote = ws.partition("/")
            base, quote = kraken_asset(wbase), kraken_asset(wquote)
            price_precision = _decimals_arg(p["pair_decimals"], "pair_decimals")
            qty_precision = _decimals_arg(p["lot_decimals"], "lot_decimals")
        except (KeyError, TypeError) as exc:
            raise _venue_error(venue, f"pair {rest!r} lacks {exc}") from None
        pd, tick = price_precision, 1
        if p.get("tick_size") not in (None, ""):
            tdec, units = step_scale(p["tick_size"], "tick_size")
            pd = max(pd, tdec)
            tick = units * 10 ** (pd - tdec)
        qd, lot = qty_precision, 1
        symbol = format_symbol(base, quote)
        v2 = symbol
        native = ws if venue == "kraken-v1" else v2
        aliases = tuple(a for a in (rest, p.get("altname"), ws, v2) if a and a != native)
        extra = {"rest": rest, "altname": p.get("altname", ""), "wsname": ws,
                 "price_precision": price_precision, "qty_precision": qty_precision,
                 "aliases": tuple(dict.fromkeys(aliases))}
        if "ordermin" in p:
            extra["ordermin"] = p["ordermin"]
        out.append(Instrument(venue, native, symbol, pd, qd, tick, lot, "spot", extra=extra))
    return out


def _kraken_v2_channel(data: Mapping[str, Any], venue: str) -> list[Instrument]:
    body = data.get("data")
    pairs = body.get("pairs") if isinstance(body, Mapping) else None
    if not isinstance(pairs, list):
        raise ValueError("kraken: an 'instrument' message has data.pairs")
    out = []
    for p in pairs:
        try:
            v2 = p["symbol"]
            base, quote = kraken_asset(p["base"]), kraken_asset(p["quote"])
            price_precision = _decimals_arg(p["price_precision"], "price_precision")
            qty_precision = _decimals_arg(p["qty_precision"], "qty_precision")
        except (KeyError, TypeError) as exc:
            raise _venue_error(venue, f"pair lacks {exc}", p) from None
        symbol = format_symbol(base, quote)
        pd, tick = price_precision, 1
        inc = p.get("price_increment", p.get("tick_size"))
        if inc is not None:
            tdec, units = step_scale(inc, "price_increment")
            if tdec > pd:
                raise _venue_error(venue, f"price_increment {inc!r} is finer than "
                                          f"price_precision {price_precision}", v2)
            tick = units * 10 ** (pd - tdec)
        qd, lot = qty_precision, 1
        if p.get("qty_increment") is not None:
            qdec, units = step_scale(p["qty_increment"], "qty_increment")
            if qdec > qd:
                raise _venue_error(venue, f"qty_increment {p['qty_increment']!r} is finer "
                                          f"than qty_precision {qty_precision}", v2)
            lot = units * 10 ** (qd - qdec)
        v1 = "/".join(_KRAKEN_NATIVE.get(a, a) for a in (base, quote))
        native = v1 if venue == "kraken-v1" else v2
        aliases = tuple(a for a in dict.fromkeys((v1, v2)) if a != native)
        extra = {"price_precision": price_precision, "qty_precision": qty_precision,
                 "status": p.get("status", ""), "aliases": aliases}
        out.append(Instrument(venue, native, symbol, pd, qd, tick, lot, "spot", extra=extra))
    return out


def _okx_expiry(inst_id: str, fields: list[str]) -> tuple[str, str, str]:
    expiry = fields[2] if len(fields) >= 3 else ""
    if len(expiry) != 6 or not expiry.isdigit():
        raise ValueError(f"okx: {inst_id!r} has no YYMMDD expiry")
    if len(fields) == 5:
        return expiry, fields[3], fields[4]
    return expiry, "", ""


def okx_instruments(doc: Any) -> list[Instrument]:
    """Instruments of OKX ``GET /api/v5/public/instruments`` (any ``instType``).

    SPOT uses ``baseCcy``/``quoteCcy``; SWAP, FUTURES and OPTION take base and
    quote from ``uly`` / ``instFamily`` (``BTC-USD``), the settle currency from
    ``settleCcy``, and count quantities in contracts: ``contract_size`` =
    ``ctVal`` (x ``ctMult``) of ``contract_unit`` = ``ctValCcy``. MARGIN entries
    repeat SPOT books and are skipped.
    """
    data = _load(doc)
    rows = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        raise ValueError("okx: expected {'code': '0', 'data': [...]}")
    if str(data.get("code", "0")) != "0":
        raise ValueError(f"okx: the document reports code {data.get('code')!r}: "
                         f"{data.get('msg', '')!r}")
    out = []
    for r in rows:
        try:
            itype, inst_id = r["instType"], r["instId"]
            if itype == "MARGIN":
                continue
            pd, tick = step_scale(r["tickSz"], "tickSz")
            qd, lot = step_scale(r["lotSz"], "lotSz")
            extra: dict[str, Any] = {"instType": itype, "state": r.get("state", "")}
            if itype == "SPOT":
                symbol = format_symbol(r["baseCcy"], r["quoteCcy"])
                out.append(Instrument("okx", inst_id, symbol, pd, qd, tick, lot, "spot",
                                      extra=extra))
                continue
            family = r.get("instFamily") or r["uly"]
            base, quote = family.split("-")
            settle = r["settleCcy"]
            fields = inst_id.split("-")
            expiry = strike = right = ""
            if itype == "SWAP":
                kind = "perpetual"
            elif itype == "FUTURES":
                kind = "future"
                expiry, _, _ = _okx_expiry(inst_id, fields)
            elif itype == "OPTION":
                kind = "option"
                expiry, strike, right = _okx_expiry(inst_id, fields)
            else:
                raise ValueError(f"okx: unknown instType {itype!r}")
            size = _decimal(r["ctVal"], "ctVal") * _decimal(r.get("ctMult") or "1", "ctMult")
            extra["ctType"] = r.get("ctType", "")
            symbol = format_symbol(base, quote, settle, expiry, strike, right)
            out.append(Instrument("okx", inst_id, symbol, pd, qd, tick, lot, kind,
                                  _text(size), r["ctValCcy"], extra))
        except (KeyError, TypeError) as exc:
            raise _venue_error("okx", f"instrument lacks {exc}", r.get("instId")) from None
    return out


def bybit_instruments(doc: Any, category: str | None = None) -> list[Instrument]:
    """Instruments of Bybit v5 ``GET /v5/market/instruments-info`` (one category per document).

    ``category`` (``"spot"``, ``"linear"``, ``"inverse"``, ``"option"``) defaults
    to the document's ``result.category`` and is kept in
    ``extra["category"]``: Bybit's native symbol (``BTCUSDT``) is the same in
    spot and linear. Inverse quantities are contracts of 1 quote unit (USD).
    """
    data = _load(doc)
    result = data.get("result") if isinstance(data, Mapping) else None
    if not isinstance(result, Mapping) or not isinstance(result.get("list"), list):
        raise ValueError("bybit: expected {'retCode': 0, 'result': {'category': ..., 'list': "
                         "[...]}}")
    if data.get("retCode", 0) != 0:
        raise ValueError(f"bybit: the document reports retCode {data.get('retCode')!r}")
    category = category or result.get("category")
    if category not in ("spot", "linear", "inverse", "option"):
        raise ValueError(f"bybit: unknown category {category!r}")
    out = []
    for r in result["list"]:
        try:
            native = r["symbol"]
            base, quote = r["baseCoin"], r["quoteCoin"]
            pd, tick = step_scale(r["priceFilter"]["tickSize"], "tickSize")
            pd, tick = _widen(pd, tick, r.get("priceScale") or None, f"{native} priceScale")
            lsf = r["lotSizeFilter"]
            step = lsf["basePrecision"] if category == "spot" else lsf["qtyStep"]
            qd, lot = step_scale(step, "qtyStep")
            extra: dict[str, Any] = {"category": category, "status": r.get("status", "")}
            settle = expiry = strike = right = ""
            contract_size, unit = None, ""
            kind = "spot"
            if category in ("linear", "inverse"):
                settle = r.get("settleCoin") or (quote if category == "linear" else base)
                ctype = r.get("contractType", "")
                extra["contractType"] = ctype
                delivery = int(r.get("deliveryTime") or 0)
                if ctype.endswith("Futures") or (not ctype and delivery):
                    kind = "future"
                    expiry = _yymmdd_from_ms(delivery, f"{native} deliveryTime")
                else:
                    kind = "perpetual"
                if category == "inverse":
                    contract_size, unit = "1", quote
            elif category == "option":
                kind = "option"
                settle = r.get("settleCoin") or quote
                fields = native.split("-")
                if len(fields) == 5:        # newer symbols end with the settle coin
                    fields = fields[:4]
                if len(fields) != 4 or fields[3] not in ("C", "P"):
                    raise ValueError(f"bybit: option symbol {native!r} is not "
                                     "BASE-DDMMMYY-STRIKE-C|P")
                expiry = _yymmdd_from_ms(int(r["deliveryTime"]), f"{native} deliveryTime")
                strike, right = fields[2], fields[3]
            symbol = format_symbol(base, quote, settle, expiry, strike, right)
        except (KeyError, TypeError) as exc:
            raise _venue_error("bybit", f"instrument lacks {exc}", r.get("symbol")) from None
        out.append(Instrument("bybit", native, symbol, pd, qd, tick, lot, kind, contract_size,
                              unit, extra))
    return out


def load_instruments(venue: str, doc: Any, **options: Any) -> list[Instrument]:
    """The loader of ``venue`` (one of :data:`VENUES`) applied to ``doc``."""
    if venue.startswith("binance-"):
        return binance_instruments(doc, venue=venue)
    if venue.startswith("coinbase-"):
        return coinbase_instruments(doc, venue=venue)
    if venue.startswith("kraken-"):
        return kraken_instruments(doc, venue=venue)
    if venue == "okx":
        return okx_instruments(doc)
    if venue == "bybit":
        return bybit_instruments(doc, **options)
    raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}")


# --- symbol mapping ------------------------------------------------------------------------------

def to_symbol(venue: str, native: str) -> str:
    """The normalized symbol of ``native``, from the text alone.

    Works for Coinbase (``BTC-USD``), Kraken v1 (``XBT/USD``) and v2 (``BTC/USD``)
    and OKX (``BTC-USDT``, ``BTC-USDT-SWAP``, ``BTC-USD-220527``,
    ``BTC-USD-220527-30000-C``; a derivative quoted in USD settles in its base,
    others in the quote). Binance and Bybit symbols (``BTCUSDT``) cannot be
    split without metadata: use a :class:`SymbolMap`.
    """
    if venue in ("coinbase-exchange", "coinbase-advanced"):
        base, sep, quote = native.partition("-")
        if not sep or "-" in quote:
            raise ValueError(f"{venue}: {native!r} is not BASE-QUOTE")
        return format_symbol(base, quote)
    if venue in ("kraken-v1", "kraken-v2"):
        base, sep, quote = native.partition("/")
        if not sep:
            raise ValueError(f"{venue}: {native!r} is not BASE/QUOTE")
        if venue == "kraken-v1":
            base, quote = kraken_asset(base), kraken_asset(quote)
        return format_symbol(base, quote)
    if venue == "okx":
        fields = native.split("-")
        if len(fields) == 2:
            return format_symbol(*fields)
        if len(fields) in (3, 5):
            base, quote = fields[0], fields[1]
            settle = base if quote == "USD" else quote
            if len(fields) == 3 and fields[2] == "SWAP":
                return format_symbol(base, quote, settle)
            expiry, strike, right = _okx_expiry(native, fields)
            return format_symbol(base, quote, settle, expiry, strike, right)
        raise ValueError(f"okx: {native!r} is not an OKX instId")
    if venue in VENUES:
        raise ValueError(f"{venue}: native symbols such as {native!r} cannot be split without "
                         "instrument metadata; use SymbolMap(<venue>_instruments(doc))")
    raise ValueError(f"unknown venue {venue!r}")


def to_native(venue: str, symbol: str) -> str:
    """The native symbol of a normalized ``symbol`` (the inverse of :func:`to_symbol`)."""
    p = parse_symbol(symbol)
    if venue in ("coinbase-exchange", "coinbase-advanced", "kraken-v1", "kraken-v2"):
        if p.settle:
            raise ValueError(f"{venue} has spot books only, not {symbol!r}")
        if venue == "kraken-v1":
            return f"{_KRAKEN_NATIVE.get(p.base, p.base)}/{_KRAKEN_NATIVE.get(p.quote, p.quote)}"
        return f"{p.base}/{p.quote}" if venue == "kraken-v2" else f"{p.base}-{p.quote}"
    if venue == "okx":
        if not p.settle:
            return f"{p.base}-{p.quote}"
        if p.settle != (p.base if p.quote == "USD" else p.quote):
            raise ValueError(f"okx: {symbol!r} settles in {p.settle}, which an OKX instId "
                             "cannot say; use a SymbolMap")
        if p.kind == "perpetual":
            return f"{p.base}-{p.quote}-SWAP"
        tail = f"-{p.strike}-{p.right}" if p.strike else ""
        return f"{p.base}-{p.quote}-{p.expiry}{tail}"
    return to_symbol(venue, symbol)     # raises the "needs metadata" error for the others


class SymbolMap:
    """Both-way mapping between normalized and native symbols of loaded instruments.

    ``SymbolMap(binance_instruments(doc))``; ``to_symbol("BTCUSDT")`` ->
    ``"BTC/USDT"``, ``to_native("BTC/USDT")`` -> ``"BTCUSDT"``. With several
    venues (or Bybit categories) in one map, name the ``venue`` (and
    ``category``). Native aliases are accepted by :meth:`to_symbol` (Kraken REST
    ``XXBTZUSD`` and ``XBTUSD``, Binance lower-case stream names).
    """

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._native: dict[tuple[str, str, str], Instrument] = {}
        self._symbol: dict[tuple[str, str, str], Instrument] = {}
        self._alias: dict[tuple[str, str, str], Instrument] = {}
        self._venues: list[tuple[str, str]] = []
        for inst in instruments:
            cat = str(inst.extra.get("category", ""))
            key = (inst.venue, cat)
            if key not in self._venues:
                self._venues.append(key)
            for table, name, what in ((self._native, inst.native, "native symbol"),
                                      (self._symbol, inst.symbol, "symbol")):
                old = table.get((*key, name))
                if old is not None and old != inst:
                    raise ValueError(f"{inst.venue}: two instruments have the {what} {name!r}: "
                                     f"{old.native!r} and {inst.native!r}")
                table[(*key, name)] = inst
            for alias in inst.extra.get("aliases", ()):
                self._alias.setdefault((*key, alias), inst)

    def __len__(self) -> int:
        return len(self._native)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._native.values())

    def _key(self, venue: str | None, category: str) -> tuple[str, str]:
        if venue is None:
            if len(self._venues) != 1:
                raise ValueError(f"this map holds {len(self._venues)} venues/categories: name "
                                 "the venue (and the Bybit category)")
            return self._venues[0]
        if category == "" and (venue, "") not in self._venues:
            cats = [c for v, c in self._venues if v == venue]
            if len(cats) == 1:
                return venue, cats[0]
        return venue, category

    def instrument(self, native: str, venue: str | None = None,
                   category: str = "") -> Instrument:
        """The instrument of a native symbol (or alias); KeyError if unknown."""
        v, c = self._key(venue, category)
        inst = self._native.get((v, c, native)) or self._alias.get((v, c, native))
        if inst is None and v.startswith("binance-"):
            inst = self._native.get((v, c, native.upper()))
        if inst is None:
            raise KeyError(f"{v}: no instrument with native symbol {native!r}")
        return inst

    def by_symbol(self, symbol: str, venue: str | None = None, category: str = "") -> Instrument:
        """The instrument of a normalized symbol; KeyError if unknown."""
        v, c = self._key(venue, category)
        inst = self._symbol.get((v, c, symbol))
        if inst is None:
            raise KeyError(f"{v}: no instrument with symbol {symbol!r}")
        return inst

    def to_symbol(self, native: str, venue: str | None = None, category: str = "") -> str:
        return self.instrument(native, venue, category).symbol

    def to_native(self, symbol: str, venue: str | None = None, category: str = "") -> str:
        return self.by_symbol(symbol, venue, category).native
