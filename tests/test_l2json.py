"""The L2 JSON kernel (``_l2json``) against its twin (``_pyl2json``): same results on any input.

The compiled scanner must give, for every message, exactly what the reference
gives: status, discriminator, symbol, target, int and string fields, level
fields found, the levels themselves (so the same book after ``apply``) and the
same error text. Hypothesis generates well-formed venue messages, mangles them
(wrong types, bad decimals, escapes, non-ASCII, duplicate keys, reordered and
extra fields, whitespace, truncation, byte flips) and compares the two.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbook
from fastbook.codecs import _pyl2json
from fastbook.codecs._pyl2json import ERROR, IGNORED, OK, OTHER, UNKNOWN, Field, Schema

try:
    from fastbook.codecs import _l2json
except ImportError:  # pragma: no cover - a build without the kernel
    _l2json = None

needs_kernel = pytest.mark.skipif(_l2json is None or not fastbook.COMPILED,
                                  reason="the compiled kernel is not built")

# -- schemas of every shape the venues use ---------------------------------------------

BINANCE = Schema(
    containers=("data",), discriminator=("e", "body"), accept=("depthUpdate",),
    symbol=("s", "body"),
    fields=[Field("E", "int", required=True, lo=0, hi=(2**63 - 1) // 10**6),
            Field("U", "int", required=True, lo=0), Field("u", "int", required=True, lo=0),
            Field("pu", "int"),
            Field("b", "bids", required=True), Field("a", "asks", required=True)])
REST = Schema(fields=[Field("lastUpdateId", "int", "top", required=True),
                      Field("symbol", "str", "top"),
                      Field("bids", "bids", "top", required=True),
                      Field("asks", "asks", "top", required=True)])
COINBASE = Schema(
    discriminator=("type", "top"), accept=("snapshot", "l2update"),
    symbol=("product_id", "top"), sides={"buy": 1, "sell": 2},
    fields=[Field("time", "isotime", "top"), Field("bids", "bids", "top"),
            Field("asks", "asks", "top"), Field("changes", "sided", "top")])
BYBIT = Schema(
    containers=("data",), discriminator=("topic", "top"), accept=("orderbook.",), prefix=True,
    symbol=("s", "data"),
    fields=[Field("type", "str", "top", required=True), Field("ts", "int", "top"),
            Field("cts", "int", "top"), Field("u", "int", "data", required=True),
            Field("seq", "int", "data"),
            Field("b", "bids", "data", required=True), Field("a", "asks", "data",
                                                           required=True)])
OKX = Schema(
    containers=(("data", True), "arg"), symbol=("instId", "arg"),
    discriminator=("action", "top"), accept=("snapshot", "update"),
    fields=[Field("seqId", "int", "data"), Field("prevSeqId", "int", "data"),
            Field("checksum", "int", "data"), Field("ts", "str", "data"),
            Field("asks", "asks", "data"), Field("bids", "bids", "data")],
    level_len=(2, 4), positive_prices=False)
SCHEMAS = {"binance": BINANCE, "rest": REST, "coinbase": COINBASE, "bybit": BYBIT, "okx": OKX}

SYMBOLS = ["BTCUSDT", "ETH-USD", "XBT/EUR", "ignored", "unknown"]
SCALES = {"BTCUSDT": (8, 8), "ETH-USD": (2, 4), "XBT/EUR": (0, 0)}


def make_pair(schema: Schema) -> tuple[Any, Any, dict[str, tuple[Any, Any]]]:
    """A compiled and a reference scanner with the same registrations, and their books."""
    c = _l2json.Scanner(schema)
    p = _pyl2json.Scanner(schema)
    books = {}
    for sym, (pd, qd) in SCALES.items():
        bc = fastbook.Book(price_decimals=pd, qty_decimals=qd)
        bp = fastbook.Book(price_decimals=pd, qty_decimals=qd)
        c.register(sym, bc, ("T", sym))
        p.register(sym, bp, ("T", sym))
        books[sym] = (bc, bp)
    c.register("ignored", None, "ign")
    p.register("ignored", None, "ign")
    return c, p, books


def result(sc: Any) -> tuple[Any, ...]:
    sides, prices, qtys = sc.levels()
    return (sc.status, sc.kind, sc.tag, sc.other, sc.symbol, sc.target, sc.ints, sc.strs, sc.found,
            sc.n, sc.error, sides.tolist(), prices.tolist(), qtys.tolist())


def compare(c: Any, p: Any, books: dict[str, Any], message: Any, symbol: Any = None) -> int:
    st_c = c.scan(message, symbol)
    st_p = p.scan(message, symbol)
    assert result(c) == result(p), message
    assert st_c == st_p == c.status
    if st_c == OK:
        crossed = (c.apply(), p.apply())
        assert crossed[0] == crossed[1]
        bc, bp = books[c.symbol]
        assert list(bc) == list(bp)
        if c.ints:
            assert c.read(message, symbol) == p.read(message, symbol)
    else:
        assert c.read(message, symbol) is None and p.read(message, symbol) is None
        with pytest.raises(RuntimeError):
            c.apply()
        with pytest.raises(RuntimeError):
            p.apply()
    return st_c


# -- message generators ---------------------------------------------------------------------

DIGITS = st.text("0123456789", min_size=0, max_size=22)


@st.composite
def decimal_text(draw: Any) -> str:
    """Decimal strings: mostly venue-like, some at every edge of the grammar."""
    kind = draw(st.integers(0, 9))
    if kind <= 4:
        whole = draw(st.integers(0, 10**draw(st.integers(0, 12))))
        frac = draw(st.text("0123456789", max_size=10))
        return f"{whole}.{frac}" if frac or draw(st.booleans()) else str(whole)
    if kind == 5:
        return draw(st.sampled_from(["0", "0.0", "-0", "+1", "-1.5", ".5", "5.", ".", "",
                                     "1e3", "1E-2", "1.5e+1", "01.20", "00000000000000000001",
                                     "9223372036854775807", "9223372036854775808",
                                     "0.000000000000000000001", "1.0000000000000000000000",
                                     "1 ", " 1", "1,5", "0x1F", "NaN", "1..2", "\u0661",
                                     "99999999999.99999999", "12345678901234567890"]))
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    exp = draw(st.sampled_from(["", "", "e5", "E-3", "e+0", "e", "e99"]))
    frac = draw(DIGITS)
    return sign + draw(DIGITS) + ("." + frac if draw(st.booleans()) else "") + exp


def level(draw: Any, sided: bool, size: int) -> Any:
    r = draw(st.integers(0, 19))
    if r == 0:
        return draw(st.sampled_from([None, 1, "x", {"p": "1"}, [], 1.5, True]))
    items: list[Any] = []
    if sided:
        items.append(draw(st.sampled_from(["buy", "sell", "buy", "sell", "bid", "", 1])))
    n = draw(st.sampled_from([size, size, size, size, 1, 3, 4, 5]))
    for k in range(n):
        if k < 2 and r != 1:
            items.append(draw(decimal_text()))
        else:
            items.append(draw(st.sampled_from(["0", "7", 1, None, [1, "2"], {"x": 1}, 2.5])))
    return items


def levels(draw: Any, sided: bool = False, size: int = 2) -> Any:
    if draw(st.integers(0, 15)) == 0:
        return draw(st.sampled_from([None, "[]", {}, 5, [[]]]))
    return [level(draw, sided, size) for _ in range(draw(st.integers(0, 6)))]


def intval(draw: Any) -> Any:
    r = draw(st.integers(0, 12))
    if r == 0:
        return draw(st.sampled_from(["5", 1.5, 1e3, True, None, [1], -1, 2**63, -(2**63) - 1,
                                     2**63 - 1, -(2**63), 0]))
    return draw(st.integers(0, 2**50))


def symval(draw: Any) -> Any:
    if draw(st.integers(0, 15)) == 0:
        return draw(st.sampled_from([5, None, ["BTCUSDT"], "BTC\u00e9USD", "B\nT"]))
    return draw(st.sampled_from(SYMBOLS))


def extras(draw: Any) -> dict[str, Any]:
    out = {}
    for _ in range(draw(st.integers(0, 2))):
        out[draw(st.sampled_from(["x", "stream", "E", "b", "data", "type", "Z", ""]))] = \
            draw(st.sampled_from([1, "s", None, [1, [2, {"a": "b"}]], {"k": [True, False]},
                                  -0.5e-3, "\u20ac"]))
    return out


def shuffled(draw: Any, d: dict[str, Any]) -> dict[str, Any]:
    keys = list(d)
    perm = draw(st.permutations(keys)) if draw(st.integers(0, 3)) == 0 else keys
    return {k: d[k] for k in perm}


@st.composite
def iso_text(draw: Any) -> Any:
    """ISO 8601 times: valid ones of every fraction length, and broken ones."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([5, None, "", "2021-04-17", "2021-04-17T16:43:37",
                                     "2021-04-17T16:43:37.Z", "2021-04-17T16:43:37.1234567890Z",
                                     "2021-04-17T16:43:37+00:00", "2021-04-17T16:43:37-0000",
                                     "2021-04-17T16:43:37+01:00", "2021-02-29T00:00:00Z",
                                     "2020-02-29T23:59:59Z", "2000-02-29T00:00:00Z",
                                     "1900-02-29T00:00:00Z", "2021-04-31T00:00:00Z",
                                     "2021-13-01T00:00:00Z", "2021-04-17T24:00:00Z",
                                     "2021-04-17T23:60:00Z", "2021-04-17T23:59:60Z",
                                     "1969-12-31T23:59:59.999999999Z", "2262-04-11T23:47:16Z",
                                     "2261-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00Z",
                                     "9999-12-31T23:59:59Z", "2021-04-17t16:43:37Z",
                                     "2021-04-17T16:43:37z", "2021-04-17T16:43:3\u0037Z",
                                     "\u0662021-04-17T16:43:37Z"]))
    y = draw(st.integers(1970, 2261))
    mo = draw(st.integers(1, 12))
    d = draw(st.integers(1, 31))
    frac = draw(st.sampled_from(["", ".", *(("." + "123456789"[:k]) for k in range(1, 10))]))
    return (f"{y:04d}-{mo:02d}-{d:02d}T{draw(st.integers(0, 23)):02d}:"
            f"{draw(st.integers(0, 59)):02d}:{draw(st.integers(0, 59)):02d}{frac}Z")


@needs_kernel
@settings(max_examples=500, deadline=None)
@given(text=iso_text())
def test_isotime_equals_twin(text: Any) -> None:
    schema = Schema(symbol=("s", "top"), fields=[Field("t", "isotime", "top")])
    c = _l2json.Scanner(schema)
    p = _pyl2json.Scanner(schema)
    for sc in (c, p):
        sc.register("X", fastbook.Book(price_decimals=2, qty_decimals=2), None)
    msg = json.dumps({"s": "X", "t": text})
    c.scan(msg)
    p.scan(msg)
    assert result(c) == result(p)
    if c.status == OK:
        assert c.ints[0] == _pyl2json.iso_to_ns(text)
        if text.endswith("Z") and "1970" <= text[:4] <= "2261" and "\\" not in msg:
            assert (c.fast, c.slow) == (1, 0)           # read by the kernel itself


@st.composite
def binance_msg(draw: Any) -> Any:
    d: dict[str, Any] = {}
    if draw(st.integers(0, 12)):
        d["e"] = draw(st.sampled_from(["depthUpdate"] * 6 + ["kline", "bookTicker", "", 7]))
    for k in ("E", "s", "U", "u", "pu", "b", "a"):
        if draw(st.integers(0, 15)) == 0 and k != "pu":
            continue
        if k == "s":
            d[k] = symval(draw)
        elif k in ("b", "a"):
            d[k] = levels(draw)
        elif k != "pu" or draw(st.booleans()):
            d[k] = intval(draw)
    d.update(extras(draw))
    d = shuffled(draw, d)
    if draw(st.booleans()):
        top: dict[str, Any] = {"stream": "x@depth", "data": d}
        if draw(st.integers(0, 10)) == 0:
            top["u"] = 5                 # a body field beside the container
        return top
    return d


@st.composite
def rest_msg(draw: Any) -> Any:
    d: dict[str, Any] = {"lastUpdateId": intval(draw), "bids": levels(draw),
                         "asks": levels(draw)}
    if draw(st.booleans()):
        d["symbol"] = symval(draw)
    for k in list(d):
        if draw(st.integers(0, 15)) == 0:
            del d[k]
    d.update(extras(draw))
    return shuffled(draw, d)


@st.composite
def coinbase_msg(draw: Any) -> Any:
    t = draw(st.sampled_from(["snapshot", "l2update", "l2update", "heartbeat", "ticker"]))
    d: dict[str, Any] = {"type": t, "product_id": symval(draw)}
    if t == "snapshot" or draw(st.integers(0, 8)) == 0:
        d["bids"] = levels(draw)
        d["asks"] = levels(draw)
    if t != "snapshot" or draw(st.integers(0, 8)) == 0:
        d["changes"] = levels(draw, sided=True)
        d["time"] = draw(iso_text())
    d.update(extras(draw))
    return shuffled(draw, d)


@st.composite
def bybit_msg(draw: Any) -> Any:
    data: dict[str, Any] = {"s": symval(draw), "b": levels(draw), "a": levels(draw),
                            "u": intval(draw), "seq": intval(draw)}
    for k in list(data):
        if draw(st.integers(0, 15)) == 0:
            del data[k]
    data = shuffled(draw, data)
    topic = draw(st.sampled_from(["orderbook.50.BTCUSDT", "orderbook.1.X", "tickers.BTCUSDT",
                                  "orderbook", "publicTrade.BTCUSDT"]))
    d: dict[str, Any] = {"topic": topic, "type": draw(st.sampled_from(["snapshot", "delta"])),
                         "ts": intval(draw), "data": data, "cts": intval(draw)}
    if draw(st.integers(0, 10)) == 0:
        d["data"] = draw(st.sampled_from([None, [data], "x", [data, data]]))
    if draw(st.integers(0, 10)) == 0:
        d = {"success": True, "ret_msg": "", "op": "subscribe"}
    d.update(extras(draw))
    return shuffled(draw, d)


@st.composite
def okx_msg(draw: Any) -> Any:
    item: dict[str, Any] = {"asks": levels(draw, size=4), "bids": levels(draw, size=4),
                            "ts": "1652429563112", "checksum": intval(draw)}
    if draw(st.booleans()):
        item["seqId"] = intval(draw)
        item["prevSeqId"] = intval(draw)
    d: dict[str, Any] = {"arg": {"channel": "books", "instId": symval(draw)},
                         "action": draw(st.sampled_from(["snapshot", "update", "other"])),
                         "data": draw(st.sampled_from([[item], [item], item, [], [item, item]]))}
    d.update(extras(draw))
    return shuffled(draw, d)


GENERATORS = {"binance": binance_msg, "rest": rest_msg, "coinbase": coinbase_msg,
              "bybit": bybit_msg, "okx": okx_msg}


def serialise(draw: Any, obj: Any) -> Any:
    seps = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : "), (",\n", ":\t")]))
    text = json.dumps(obj, separators=seps, ensure_ascii=draw(st.booleans()),
                      indent=draw(st.sampled_from([None, None, None, 1])))
    if draw(st.integers(0, 3)) == 0:
        text = draw(st.sampled_from(["", " ", "\n", "\r\n\t"])) + text + \
            draw(st.sampled_from(["", " ", "\n", " x", "{}", "\x00"]))
    raw = text.encode("utf-8")
    r = draw(st.integers(0, 9))
    if r == 0 and raw:                                     # truncate
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif r == 1 and raw:                                   # flip one byte
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    elif r == 2 and raw:                                   # insert a byte
        i = draw(st.integers(0, len(raw)))
        raw = raw[:i] + bytes([draw(st.sampled_from(b' ,"[]{}:\\0e.-\x80'))]) + raw[i:]
    elif r == 3:                                           # escape a character
        raw = raw.replace(b"USDT", b"US\\u0044T", 1).replace(b'"u"', b'"\\u0075"', 1)
    elif r == 4:                                           # duplicate a key
        for key in (b'"u":', b'"s":', b'"b":', b'"e":', b'"data":', b'"type":', b'"bids":'):
            if key in raw:
                raw = raw.replace(key, key + b'1,' + key, 1)
                break
    form = draw(st.integers(0, 4))
    if form == 0:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    if form == 1:
        return bytearray(raw)
    if form == 2:
        return memoryview(raw)
    return raw


@needs_kernel
@pytest.mark.parametrize("name", list(SCHEMAS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_equals_twin(name: str, data: Any) -> None:
    c, p, books = make_pair(SCHEMAS[name])
    for _ in range(3):
        obj = data.draw(GENERATORS[name]())
        msg = serialise(data.draw, obj)
        symbol = data.draw(st.sampled_from([*SYMBOLS, None])) if name == "rest" else None
        compare(c, p, books, msg, symbol)


@needs_kernel
@settings(max_examples=600, deadline=None)
@given(text=decimal_text(), scale=st.integers(0, 18), side=st.sampled_from(["b", "a"]),
       pad=st.sampled_from(["", "x" * 20]))
def test_decimals_equal_parse_decimal(text: str, scale: int, side: str, pad: str) -> None:
    """Each decimal string read by the kernel is exactly ``parse_decimal``'s value or error.

    With ``pad``, at least 17 bytes follow every string, so the kernel's 8-bytes-at-a-time
    path reads them; without, the last one goes through its byte loop.
    """
    schema = Schema(symbol=("s", "top"), fields=[Field("b", "bids", "top"),
                                                 Field("a", "asks", "top")],
                    positive_prices=False)
    c = _l2json.Scanner(schema)
    p = _pyl2json.Scanner(schema)
    for sc in (c, p):
        sc.register("X", fastbook.Book(price_decimals=scale, qty_decimals=scale), None)
    msg = json.dumps({"s": "X", side: [[text, text]], "pad": pad})
    c.scan(msg)
    p.scan(msg)
    assert result(c) == result(p)
    try:
        value = fastbook.parse_decimal(text, scale)
    except fastbook.DecodeError:
        assert c.status == ERROR
        return
    if value == -(2**63) or value < 0:
        assert c.status == ERROR
    else:
        assert c.status == OK
        assert c.levels()[1].tolist() == [value] and c.levels()[2].tolist() == [value]


@needs_kernel
def test_decimals_every_shape_of_the_fast_path() -> None:
    """Whole parts of 0-8 digits, fractions of 0-10 digits, trailing zeros, every scale."""
    rng = random.Random(11)
    schema = Schema(symbol=("s", "top"), fields=[Field("b", "bids", "top")],
                    positive_prices=False)
    texts = []
    for nw in range(0, 9):
        for nf in range(0, 11):
            for _ in range(3):
                whole = "".join(rng.choice("0123456789") for _ in range(nw))
                frac = "".join(rng.choice("0123456789") for _ in range(nf))
                if rng.random() < 0.5 and nf:
                    frac = frac[: rng.randint(0, nf)].ljust(nf, "0")
                texts.append(whole + ("." + frac if nf or rng.random() < 0.3 else ""))
    checked = 0
    for scale in range(0, 19):
        c = _l2json.Scanner(schema)
        c.register("X", fastbook.Book(price_decimals=scale, qty_decimals=scale), None)
        for text in texts:
            c.scan(json.dumps({"s": "X", "b": [[text, "1", ]], "pad": "y" * 24}))
            try:
                value = fastbook.parse_decimal(text, scale)
            except fastbook.DecodeError:
                assert c.status == ERROR, (text, scale)
                continue
            assert c.status == OK and c.levels()[1].tolist() == [value], (text, scale)
            checked += 1
    assert checked > 2000
    assert c.fast > 0


# -- deterministic cases ---------------------------------------------------------------------

GOOD = (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512568,'
        b'"s":"BTCUSDT","U":499869753,"u":499869754,"b":[["0.35170000","4265.00000000"]],'
        b'"a":[["0.35290000","10968.00000000"],["0.36","0"]]}}')


@pytest.mark.parametrize("impl", ["compiled", "python"])
def test_scan_binance(impl: str) -> None:
    if impl == "compiled" and (_l2json is None or not fastbook.COMPILED):
        pytest.skip("the compiled kernel is not built")
    mod = _l2json if impl == "compiled" else _pyl2json
    sc = mod.Scanner(BINANCE)
    book = fastbook.Book(price_decimals=8, qty_decimals=8)
    assert sc.scan(GOOD) == UNKNOWN and sc.symbol == "BTCUSDT" and sc.target is None
    sc.register("BTCUSDT", book, "target")
    assert sc.registered("BTCUSDT") and not sc.registered("ETHUSDT")
    assert sc.scan(GOOD) == OK
    assert (sc.kind, sc.symbol, sc.target, sc.n, sc.found) == (0, "BTCUSDT", "target", 3, 3)
    assert sc.ints == (1633998512568, 499869753, 499869754, None)
    assert [a.tolist() for a in sc.levels()] == [
        [1, 2, 2], [35170000, 35290000, 36000000], [426500000000, 1096800000000, 0]]
    assert sc.read(GOOD) == ("target", 3, 1633998512568, 499869753, 499869754, None)
    assert sc.apply() is False
    assert book.bbo() == (35170000, 426500000000, 35290000, 1096800000000)
    # the raw payload (no combined-stream wrapper) and a str give the same
    raw = json.dumps(json.loads(GOOD)["data"])
    assert sc.scan(raw) == OK and sc.ints[1] == 499869753
    assert sc.scan(b'{"e":"kline","s":"BTCUSDT","k":{}}') == OTHER and sc.other == "kline"
    assert sc.scan(GOOD) == OK and sc.other is None and sc.tag == "depthUpdate"   # no leftovers
    assert sc.scan(b'{"u":1,"s":"BTCUSDT","b":"1","a":"2"}') == OTHER and sc.other is None
    assert sc.scan(b'{"e":"depthUpdate"') == ERROR and "not valid JSON" in sc.error
    sc.register("BTCUSDT", None)
    assert sc.scan(GOOD) == IGNORED and sc.symbol == "BTCUSDT" and sc.n == 0


@needs_kernel
def test_fast_path_is_taken() -> None:
    c = _l2json.Scanner(BINANCE)
    c.register("BTCUSDT", fastbook.Book(price_decimals=8, qty_decimals=8))
    variants = [GOOD, GOOD.decode(), bytearray(GOOD), memoryview(GOOD),
                json.dumps(json.loads(GOOD), indent=2),
                b'{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":1,"x":false,"q":"1.5"}}',
                b'{"stream":"a","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"m":true}}']
    for v in variants:
        c.scan(v)
    assert (c.fast, c.slow) == (len(variants), 0)
    # what the fast path hands to the twin
    slow = [GOOD.replace(b'"BTCUSDT"', b'"BTC\\u0055SDT"'),         # an escape
            GOOD.replace(b'"U":', b'"U":1,"U":'),                     # a duplicate key
            GOOD.replace(b'"b":[["0.35170000"', b'"b":[["-0.35170000"'),  # a bad level
            GOOD.replace(b'"s":"BTCUSDT",', b'') + b' ',              # no symbol
            GOOD.replace(b'"data":{"e":"depthUpdate",', b'"data":{') ,  # no event type?
            b'{"data":{},"e":"depthUpdate"}']
    for v in slow:
        c.scan(v)
    # the missing "e" is a fast OTHER; every other one went to the twin
    assert (c.fast, c.slow) == (len(variants) + 1, len(slow) - 1)


@needs_kernel
def test_errors_are_the_twins() -> None:
    c, p, books = make_pair(BINANCE)
    cases = {
        b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":1,"b":[["1","-2"]],"a":[]}':
            "b[0]: negative quantity '-2'",
        b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":1,"b":[],"a":[["1.123456789","1"]]}':
            "a[0]: bad price: cannot parse text '1.123456789' at 8 decimals: more decimal "
            "places than the scale allows",
        b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":1,"b":[],"a":[["1","1","x"]]}':
            "a[0]: expected 2 elements, got 3",
        b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"b":[],"a":[]}': "missing field 'u'",
        b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":true,"u":1,"b":[],"a":[]}':
            "U: expected an integer, got a boolean True",
        b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":-1,"b":[],"a":[]}':
            "u: -1 is outside [0, 9223372036854775807]",
        b'{"data":[1],"stream":"x"}': "data: expected an object, got a list",
        b'"depthUpdate"': "expected a JSON object, got a string",
        b'{"e":"depthUpdate","s":7}': "s: expected a string, got an integer",
        b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":1,"b":[],"a":[["NaN","1"]]}':
            "a[0]: bad price: cannot parse text 'NaN' at 8 decimals: not a decimal number",
    }
    for msg, text in cases.items():
        assert compare(c, p, books, msg) == ERROR
        assert c.error == text


@needs_kernel
def test_sided_and_list_container_shapes() -> None:
    c, p, books = make_pair(COINBASE)
    msg = (b'{"type":"l2update","product_id":"ETH-USD","changes":[["buy","2412.50","1.2"],'
           b'["sell","2413","0.5000"],["buy","2412.5","0"]],"time":"2021-04-17T16:43:37Z"}')
    assert compare(c, p, books, msg) == OK
    assert c.ints == (1618677817000000000,)
    assert [a.tolist() for a in c.levels()] == [[1, 2, 1], [241250, 241300, 241250],
                                                 [12000, 5000, 0]]
    assert c.slow == 0
    c, p, books = make_pair(OKX)
    msg = (b'{"arg":{"channel":"books","instId":"ETH-USD"},"action":"update","data":[{"asks":'
           b'[["2413.1","2","0","1"]],"bids":[["2412.9","3","0","2"]],"ts":"1652429563112",'
           b'"checksum":-1193462853,"prevSeqId":123,"seqId":124}]}')
    assert compare(c, p, books, msg) == OK
    assert c.ints == (124, 123, -1193462853) and c.strs == ("1652429563112",)
    assert c.found == 3 and c.n == 2 and c.slow == 0
    c, p, books = make_pair(BYBIT)
    msg = (b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,"data":{"s":'
           b'"BTCUSDT","b":[["30247.20","30.028"]],"a":[],"u":177400507,"seq":66544703342},'
           b'"cts":1687940967464}')
    assert compare(c, p, books, msg) == OK
    assert c.strs == ("delta",) and c.ints == (1687940967466, 1687940967464, 177400507,
                                               66544703342)
    assert compare(c, p, books, b'{"topic":"tickers.BTCUSDT","type":"snapshot","data":{}}') \
        == OTHER
    assert c.other == "tickers.BTCUSDT"


@needs_kernel
def test_rest_schema_takes_the_symbol() -> None:
    c, p, books = make_pair(REST)
    body = b'{"lastUpdateId":7,"bids":[["1.5","2"]],"asks":[["1.6","3"]]}'
    assert compare(c, p, books, body, "ETH-USD") == OK
    assert compare(c, p, books, body, "unknown") == UNKNOWN
    assert compare(c, p, books, body, "ignored") == IGNORED
    assert compare(c, p, books, body) == ERROR
    assert c.error == "this schema needs the symbol as an argument to scan()"


@needs_kernel
def test_many_symbols_and_a_big_snapshot() -> None:
    c, p, _ = make_pair(BINANCE)
    rng = random.Random(7)
    for i in range(300):                       # more symbols than the lookup cache
        sym = f"S{i}"
        for sc in (c, p):
            sc.register(sym, fastbook.Book(price_decimals=2, qty_decimals=2), i)
    for _ in range(2000):
        i = rng.randrange(300)
        msg = json.dumps({"e": "depthUpdate", "E": 1, "s": f"S{i}", "U": 1, "u": 2,
                          "b": [[f"{rng.randrange(1, 10**6) / 100:.2f}", "1"]], "a": []})
        c.scan(msg)
        assert c.status == OK and c.target == i
    # registering again replaces book and target; the cached lookups follow
    for i in range(300):
        c.register(f"S{i}", fastbook.Book(price_decimals=2, qty_decimals=2), -i)
    junk = [f"S{i}".encode() * 3 for i in range(3000)]      # reuse freed memory
    for _ in range(2000):
        i = rng.randrange(300)
        c.scan(json.dumps({"e": "depthUpdate", "E": 1, "s": f"S{i}", "U": 1, "u": 2,
                           "b": [], "a": []}))
        assert c.status == OK and c.target == -i
    assert c.slow == 0 and len(junk) == 3000
    c.register("BIG", fastbook.Book(price_decimals=4, qty_decimals=4))
    p.register("BIG", fastbook.Book(price_decimals=4, qty_decimals=4))
    big = json.dumps({"e": "depthUpdate", "E": 1, "s": "BIG", "U": 1, "u": 2,
                      "b": [[f"{k + 1}.0001", "1"] for k in range(5000)],
                      "a": [[f"{k + 10000}.5", "2.5"] for k in range(5000)]})
    assert c.scan(big) == OK and c.n == 10000
    p.scan(big)
    assert result(c) == result(p)


def test_schema_validation() -> None:
    with pytest.raises(ValueError, match="scope"):
        Schema(fields=[Field("x", "int", "nowhere")])
    with pytest.raises(ValueError, match="kind"):
        Schema(fields=[Field("x", "float")])
    with pytest.raises(ValueError, match="side words"):
        Schema(fields=[Field("x", "sided")])
    with pytest.raises(ValueError, match="appears twice"):
        Schema(fields=[Field("x", "int"), Field("x", "str")])
    with pytest.raises(ValueError, match="accepted values"):
        Schema(discriminator=("e", "top"))
    with pytest.raises(ValueError, match="at most two containers"):
        Schema(containers=("a", "b", "c"))
    with pytest.raises(ValueError, match="level_len"):
        Schema(level_len=(1, 2))
    with pytest.raises(ValueError, match="same scope"):
        Schema(containers=("d",), fields=[Field("b", "bids", "top"), Field("a", "asks", "d")])
    with pytest.raises(TypeError, match="Schema"):
        _pyl2json.Scanner("x")  # type: ignore[arg-type]
    sc = _pyl2json.Scanner(BINANCE)
    with pytest.raises(TypeError, match="symbol"):
        sc.register(5, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Book"):
        sc.register("X", object())


@pytest.mark.parametrize("impl", ["compiled", "python"])
def test_odd_symbols_and_inputs(impl: str) -> None:
    if impl == "compiled" and (_l2json is None or not fastbook.COMPILED):
        pytest.skip("the compiled kernel is not built")
    mod = _l2json if impl == "compiled" else _pyl2json
    sc = mod.Scanner(BINANCE)
    msg = '{"e":"depthUpdate","E":1,"s":"BTC\ud800","U":1,"u":1,"b":[],"a":[]}'
    assert sc.scan(msg) == UNKNOWN and sc.symbol == "BTC\ud800"
    sc.register("BTC\ud800", fastbook.Book(price_decimals=2, qty_decimals=2), 1)
    assert sc.scan(msg) == OK and sc.target == 1
    assert sc.scan(12345) == ERROR and "bytes or str" in sc.error          # type: ignore
    assert sc.scan(b"") == ERROR and "not valid JSON" in sc.error
    assert sc.scan(b"[" * 100_000) == ERROR and "not valid JSON" in sc.error


@needs_kernel
def test_compiled_register_needs_compiled_books() -> None:
    from fastbook import _pycore

    c = _l2json.Scanner(BINANCE)
    with pytest.raises(TypeError, match=r"compiled fastbook\.Book"):
        c.register("X", _pycore.Book(price_decimals=2, qty_decimals=2))
    assert isinstance(c.levels()[0], np.ndarray)
