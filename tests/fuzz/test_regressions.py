"""Hostile input found by hand and by the fuzz suite: each case ends as fastbook's error.

One test per finding (issue 25 and what ``fuzz/run.py`` found since): the input that
made a builtin exception escape a public call before, and the fastbook error (naming
where) it gives now. Venue feeds run with the compiled scanner and with the twin.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

import fastbook
from fastbook import _pycore
from fastbook.capture import read_capture
from fastbook.codecs import jpx_csv, lobster
from fastbook.codecs._l2feed import FeedError
from fastbook.codecs.binance import BinanceSpot, BinanceUSDM
from fastbook.codecs.coinbase import CoinbaseAdvanced
from fastbook.codecs.kraken import KrakenV1, KrakenV2
from fastbook.codecs.okx import Okx
from fastbook.errors import DecodeError
from tests.helpers.impls import CORES, KERNELS
from tests.helpers.l2 import depth

DEEP = "[" * 200_000 + "]" * 200_000


# -- parse_decimal: the core and its twin ------------------------------------------------------

@pytest.mark.parametrize("impl", sorted(CORES), ids=lambda n: f"impl={n}")
@pytest.mark.parametrize("text", ["1.5\ud800", "\ud800", "9" * 5000,
                                  "0" * 5000 + "1.5e" + "0" * 5000,
                                  "1e" + "9" * 5000, "1e-" + "0" * 5000 + "3"],
                         ids=["surrogate", "lone-surrogate", "5000-digits", "5000-zeros",
                              "huge-exponent", "long-exponent"])
def test_parse_decimal_hostile_text(impl: str, text: str) -> None:
    # before: the compiled core raised UnicodeEncodeError for a lone surrogate, the
    # twin ValueError ("Exceeds the limit (4300 digits)") for 5000 digits
    parse = CORES[impl].parse_decimal
    try:
        value = parse(text, 2)
    except DecodeError as exc:
        twin = _pycore.parse_decimal
        with pytest.raises(DecodeError) as other:
            twin(text, 2)
        assert str(exc).rsplit(": ", 1)[-1] == str(other.value).rsplit(": ", 1)[-1]
    else:
        assert value == _pycore.parse_decimal(text, 2)


def test_parse_decimal_long_zero_padding_keeps_its_value() -> None:
    for impl in CORES.values():
        assert impl.parse_decimal("0" * 5000 + "12.50", 2) == 1250
        assert impl.parse_decimal("1e" + "0" * 5000 + "2", 0) == 100


# -- the capture reader ------------------------------------------------------------------------

@pytest.mark.parametrize("data, line", [
    (b"wss://x\xff/ws <-> 1.5\n1.6: {}\n", 1),
    (b"wss://x/ws <-> 1.5\nhttps://api/\xc3 -> 1.6: {}\n", 2),
    (b"wss://x/ws <-> 1.5\nwss://x\xed\xa0\x80 <- 1.6: {}\n", 2),
])
def test_cryptofeed_url_not_utf8(data: bytes, line: int) -> None:
    # before: UnicodeDecodeError from url.decode() in _cryptofeed_raw
    with pytest.raises(DecodeError, match=rf"<buffer>:{line}: the URL is not UTF-8"):
        list(read_capture(data))


def test_fastbook_capture_metadata_nested_too_deep() -> None:
    import struct

    from fastbook.capture import MAGIC

    meta = ("[" * 100_000 + "]" * 100_000).encode()
    data = MAGIC + struct.pack("<HHI", 1, 0, len(meta)) + meta
    # before: RecursionError from json.loads of the header metadata
    with pytest.raises(DecodeError, match="metadata at byte 16 is not a JSON object"):
        list(read_capture(data))


# -- venue feeds --------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [KrakenV1, KrakenV2, Okx])
@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_stdlib_json_nesting_is_bounded(cls: type, mode: str) -> None:
    feed = cls(on_error=mode)
    # before: RecursionError from the stdlib JSON decoder
    for msg in (DEEP, DEEP.encode(), '{"a":' * 100_000 + "1" + "}" * 100_000):
        if mode == "raise":
            with pytest.raises(FeedError, match=r"message \d+: not JSON: JSON nested too deeply"):
                feed.feed(msg)
        else:
            assert feed.feed(msg) == []
    if mode == "skip":
        assert feed.counts()["malformed"] == 3
        assert feed.errors[-1].venue == feed.venue


@pytest.mark.parametrize("channel", [[], {}, ["l2_data"], 1.5])
def test_coinbase_advanced_channel_not_a_string(channel: object) -> None:
    import json

    feed = CoinbaseAdvanced()
    msg = json.dumps({"channel": channel, "sequence_num": 0, "events": []})
    # before: TypeError: unhashable type: 'list' (channel in ADVANCED_NON_BOOK)
    with pytest.raises(FeedError, match=r"coinbase-advanced seq 0: not a Coinbase Advanced Trade "
                                        r"market-data message \(channel "):
        feed.feed(msg)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cls", [BinanceSpot, BinanceUSDM])
def test_binance_str_with_lone_surrogates(kernel: str, cls: type) -> None:
    feed = cls(kernel=kernel)
    pu = {"pu": 0} if cls is BinanceUSDM else {}
    feed.feed(depth("BTCUSDT", 1, 2, [("1.0", "1")], **pu).decode())
    bad = depth("BTCUSDT", 3, 4, [("1.0\ud800", "1")], **pu).decode()
    bad = bad.replace("\\ud800", "\ud800")      # json.dumps escaped it: put the raw one back
    assert "\ud800" in bad
    # before: UnicodeEncodeError from parse_decimal (compiled core) via the scanner
    with pytest.raises(FeedError, match=r"binance-\w+ BTCUSDT.*not a decimal number"):
        feed.feed(bad)
    skip = cls(kernel=kernel, on_error="skip")
    skip.feed(depth("BTCUSDT", 1, 2, [("1.0", "1")], **pu).decode())
    assert skip.feed(bad) == []
    assert skip.counts("BTCUSDT")["malformed"] == 1


# -- LOBSTER --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell, what", [
    ("\u00b2", "order id must be an integer"), ("\u0661", "order id must be an integer"),
    ("1_0", "order id must be an integer"),
    ("9" * 5000, "order id .9+.... has more than 20 digits"),
])
def test_lobster_strict_ascii_digits(cell: str, what: str) -> None:
    text = f"34200.004241176,1,{cell},100,5853300,1\n"
    # before: ValueError: invalid literal for int() ('²' passes str.isdigit), or the
    # 4300-digit limit of int()
    with pytest.raises(DecodeError, match=rf"<text stream>:1: {what}"):
        lobster.read_messages(io.StringIO(text))


@pytest.mark.parametrize("row", ["5853300,\u00b2,5853301,100\n", "5853300,1,5853301,1\u0662\n",
                                 "9" * 5000 + ",1,5853301,100\n"])
def test_lobster_orderbook_strict_digits(row: str) -> None:
    with pytest.raises(DecodeError, match=r"<text stream>:1: column \d"):
        lobster.read_orderbook(io.StringIO(row), 1)


def test_lobster_time_strict_digits() -> None:
    for t in ("3420\u00b2.5", "34200.\u0665", "9" * 5000):
        with pytest.raises(DecodeError, match=r"<text stream>:1: time"):
            lobster.read_messages(io.StringIO(f"{t},1,1,100,5853300,1\n"))


# -- JPX CSV --------------------------------------------------------------------------------------

T = "2021-03-01T00:00:00.000000005(1614556800000000005)"
R = f"R,{T},77,F_X,F_X,JP1,3,JPY,0,0,0,1,0,0,0,0,0,0,0,0"


def _jpx(text: str) -> fastbook.ReplayResult:
    return fastbook.replay(text.encode(), "jpx_csv")


@pytest.mark.parametrize("line, what", [
    (f"A,{T},1,F_X(77),B,1,5,{'9' * 30},0,2", "price '9+'... is out of range"),
    (f"A,{T},1,F_X(77),B,1,{'-' + '9' * 30},100,0,2", "quantity '-9+'... is out of range"),
    (f"A,{T},{'9' * 21},F_X(77),B,1,5,100,0,2", "order id '9+'... is out of range"),
    (f"A,{T},1,F_X(77),B,{2**32},5,100,0,2", "order book position 4294967296 is out of range"),
    (f"A,{T},1,F_X(77),B,1,5,1\u0661,0,2", "price must be an integer"),
    (f"A,{T},1,F_X(77),B,1, 5,100,0,2", "quantity must be an integer"),
    (f"A,{T},1_0,F_X(77),B,1,5,100,0,2", "order id must be an integer"),
    (f"T,{'9' * 30}", "seconds '9+'... is out of range"),
    (f"S,2021-03-01T00:00:00.0({'9' * 30}),O", "time '9+'... is out of range"),
    ("S,2021-03-01T00:00:0\u0661.5,O", "time must be an integer"),
    ("S,99999-03-01T00:00:00.5,O", "bad time"),
    ("S,0001-03-01T00:00:00.5,O", "time .* is outside int64 ns"),
    ("S,9999-03-01T00:00:00.5,O", "time .* is outside int64 ns"),
    (f"A,{T},1,F_X({'9' * 12}),B,1,5,100,0,2", "order book id 9+ is out of range"),
])
def test_jpx_csv_bounded_strict_integers(line: str, what: str) -> None:
    # before: OverflowError (Python int too large to convert to C long) from the event
    # array, or int() accepting ' 5', '1_0' and an Arabic-Indic digit
    with pytest.raises(DecodeError, match=rf"<buffer>: line 2 \(byte 98\): {what}"):
        _jpx(f"{R}\n{line}\n")


def test_jpx_csv_directory_bounds() -> None:
    huge_lot = R.split(",")
    huge_lot[11] = "9" * 30         # round_lot_size
    with pytest.raises(DecodeError, match=r"line 1 \(byte 0\): round_lot_size '9+'"):
        _jpx(",".join(huge_lot) + "\n")
    jpx_csv.parse_time(T)   # the good form still reads


# -- found by the fuzz suite (fuzz/run.py) -------------------------------------------------------

def test_kraken_v1_update_with_a_null_key() -> None:
    from tests.fuzz.harness import _cryptofeed_steps

    feed = KrakenV1()
    steps = _cryptofeed_steps("KRAKEN.ws.50.0.gz")
    for _, _, payload, recv in steps[:60]:
        feed.feed(payload, recv)
    pair = next(p for p in feed.symbols if feed.is_synced(p))
    msg = f'[1, {{"a": [["1.5", "0.00000000", "1618678134.489803"]], "c": null}}, ' \
          f'"book-1000", "{pair}"]'
    # before: IndexError (the key check looked for an unknown key that was not there)
    with pytest.raises(FeedError, match=rf"kraken-v1 {pair}: message \d+: 'c' is null"):
        feed.feed(msg)


@pytest.mark.parametrize("channel", ["book-" + "1" * 5000, "book-\u00b9\u2070"])
def test_kraken_v1_channel_depth_digits(channel: str) -> None:
    # before: ValueError from int() (5000 digits; '¹⁰' passes str.isdigit)
    with pytest.raises(FeedError, match="bad channel name"):
        KrakenV1().feed(f'[1, {{"as": [], "bs": []}}, "{channel}", "XBT/USD"]')


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("depth", ["5" + "0" * 5000, "\u00b2"])
def test_bybit_topic_depth_digits(kernel: str, depth: str) -> None:
    from fastbook.codecs.bybit import Bybit
    from tests.helpers.l2 import bybit_msg

    msg = bybit_msg("snapshot", 1, [("1.5", "1")], [("2.5", "1")]).decode()
    msg = msg.replace("orderbook.50.", f"orderbook.{depth}.")
    # before: ValueError from int() of the topic's depth
    with pytest.raises(FeedError, match=r"bybit BTCUSDT.* is not orderbook.<depth>.BTCUSDT"):
        Bybit(kernel=kernel).feed(msg)


@pytest.mark.parametrize("kernel", KERNELS)
def test_scanner_twin_reads_integers_longer_than_int_allows(kernel: str) -> None:
    # the compiled scanner skips a 5000-digit integer in a field it does not read; the twin
    # failed json.loads on it ("Exceeds the limit (4300 digits)") and refused the message
    feed = BinanceUSDM(kernel=kernel, on_error="skip")
    feed.feed(depth("BTCUSDT", 1, 2, [("1.0", "1")], pu=0))
    feed.snapshot("BTCUSDT", b'{"lastUpdateId": 1, "bids": [["1.0", "1"]], "asks": []}')
    assert feed.is_synced("BTCUSDT")
    msg = depth("BTCUSDT", 3, 4, [("1.0", "2")], pu=2).decode()
    msg = msg.replace('"e": "depthUpdate"', '"e": "depthUpdate", "T": ' + "9" * 5000)
    assert feed.feed(msg) == [] and feed.counts("BTCUSDT")["malformed"] == 0
    assert list(feed.book("BTCUSDT").levels(1)) == [(100_000_000, 200_000_000)]
    bad = msg.replace('"u": 4', '"u": ' + "9" * 5000)
    feed.feed(bad)
    assert feed.counts("BTCUSDT")["malformed"] == 1
    assert "is outside [0, 9223372036854775807]" in str(feed.errors[-1])


def test_checksum_kernel_lone_surrogate_names_the_level() -> None:
    from fastbook.codecs import _pychecksum
    from tests.helpers.impls import built

    kernels = [_pychecksum] + [m for m in [built("fastbook.codecs._checksum")] if m is not None]
    texts = []
    for k in kernels:
        with pytest.raises(ValueError) as exc:
            k.parse_levels([["1.5", "2\udfff"]], 2, 2, [], [], "a")
        texts.append(str(exc.value))
    # before: the compiled kernel raised UnicodeEncodeError ("surrogates not allowed")
    assert all(t == texts[0] for t in texts) and "a[0]: cannot parse" in texts[0]


@pytest.mark.parametrize("byte", [0x00, 0x20])
def test_ose_twin_side_nul_or_blank(byte: int) -> None:
    from fastbook.codecs import ose_itch
    from fastbook.synth import ose_day

    day = bytearray(ose_day(300, seed=1))
    pos = 0
    while True:                 # the first A message (binaryfile: 2-byte length, message)
        n = int.from_bytes(day[pos:pos + 2], "big")
        if day[pos + 2:pos + 3] == b"A":
            break
        pos += 2 + n
    day[pos + 2 + 17] = byte    # its side
    out = []
    for kernel in (False, True):
        try:
            events, _ = ose_itch.decode_events(bytes(day), kernel=kernel)
            out.append(events.tobytes())
        except DecodeError as exc:
            out.append(type(exc).__name__)
    # before: the twin raised TypeError (ord() of an empty string) where the kernel read
    # side 0 (NO_SIDE)
    assert out[0] == out[-1] and isinstance(out[0], bytes)


# -- arguments of the feeds' public calls ----------------------------------------------------------

@pytest.mark.parametrize("recv", ["x", 1.5, None, 2**64, -(2**63) - 1])
@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm", "coinbase-exchange",
                                   "coinbase-advanced", "kraken-v1", "kraken-v2", "okx", "bybit"])
def test_recording_feed_refuses_a_bad_recv_ns_before_reading(venue: str, recv: object) -> None:
    import numpy as np

    from tests.fuzz import harness

    target = harness.make(venue)
    feed = target._feeds[0]
    rec = type(feed)(**({"instruments": harness._v2_instruments()} if venue == "kraken-v2"
                        else {}), record=True)
    steps = target._steps[:40]
    for kind, sym, payload, t in steps:
        rec.snapshot(sym, payload, t) if kind == "rest" else rec.feed(payload, t)
    before = harness._book_state(rec), rec.counts()
    kind, sym, payload, _ = steps[-1]
    # before: the value went into the event buffer, and take_events() failed later
    # (ValueError / OverflowError from numpy), having emptied some columns only
    with pytest.raises(TypeError if not isinstance(recv, int) else ValueError, match="recv_ns"):
        rec.snapshot(sym, payload, recv) if kind == "rest" else rec.feed(payload, recv)
    assert (harness._book_state(rec), rec.counts()) == before
    assert isinstance(rec.take_events(), np.ndarray)


def test_binance_snapshot_symbol_must_be_a_str() -> None:
    feed = BinanceSpot()
    for sym in (["BTCUSDT"], None, b"BTCUSDT"):
        # before: TypeError (unhashable type: 'list') or a FeedError about the scanner
        with pytest.raises(TypeError, match="binance-spot: the symbol of a snapshot is a str"):
            feed.snapshot(sym, b'{"lastUpdateId": 1, "bids": [], "asks": []}')
    assert feed.symbols == []


def test_coinbase_advanced_connection_must_be_hashable() -> None:
    feed = CoinbaseAdvanced()
    # before: TypeError: unhashable type: 'list', from deep inside the sequence check
    with pytest.raises(TypeError, match="connection names a websocket and must be hashable"):
        feed.feed(b'{"channel": "l2_data", "sequence_num": 0, "events": []}', 0,
                  connection=[1])
    assert feed.counts().get("ignored", 0) == 0 and feed._last_seq == {}


# -- values past int64 that reached the recorded events (found with record=True) ----------------

def _okx_msg(action: str, **entry: object) -> str:
    import json

    base = {"asks": [["101.5", "2", "0", "1"]], "bids": [["100.5", "1", "0", "1"]], "ts": "1"}
    base.update(entry)
    return json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action,
                       "data": [base]})


@pytest.mark.parametrize("entry, what", [
    ({"ts": "999999999999999"}, "ts '999999999999999' is not a time in ms"),
    ({"seqId": 2**64, "prevSeqId": 1}, "seqId/prevSeqId outside the int64 range"),
])
def test_okx_time_and_sequence_bounds(entry: dict, what: str) -> None:
    feed = Okx(record=True, verify_checksum=False, on_error="skip")
    feed.feed(_okx_msg("snapshot", seqId=1, prevSeqId=-1))
    feed.take_events()
    # before: accepted; take_events() then raised OverflowError (the event columns are int64)
    notices = feed.feed(_okx_msg("snapshot", **entry))
    assert [(n.kind, n.reason) for n in notices] == [("resync", "malformed"), ("resubscribe", "")]
    assert what in str(feed.errors[-1])
    from fastbook.events import Action

    assert feed.take_events()["action"].tolist() == [int(Action.CLEAR)]   # the discard


def test_coinbase_advanced_sequence_and_time_bounds() -> None:
    from tests.helpers.l2 import adv, adv_event

    feed = CoinbaseAdvanced(record=True, on_error="skip")
    snap = adv_event("snapshot", "BTC-USD", ("bid", "100", "1"), ("offer", "101", "1"))
    assert feed.feed(adv(2**64, [snap])) == []
    assert "sequence_num: expected a non-negative int64" in str(feed.errors[-1])
    for seq, ts in ((1, "9999-12-31T23:59:59Z"), (2, "0001-01-01T00:00:00Z")):
        assert feed.feed(adv(seq, [snap], ts=ts)) == []
        assert "is outside int64 ns" in str(feed.errors[-1])
    # before: both were applied and take_events() raised OverflowError
    assert len(feed.take_events()) == 0 and feed.symbols == []


def test_kraken_v2_timestamp_after_int64() -> None:
    import json

    from fastbook.codecs.kraken import rfc3339_ns

    for text in ("9999-12-31T23:59:59.5Z", "0023-07-30T15:30:01.606342Z"):
        # before: accepted; the recorded events then raised OverflowError (the fuzz suite's
        # long run found the year 0023 after the year 9999 had been fixed)
        with pytest.raises(ValueError, match="outside int64 ns"):
            rfc3339_ns(text)
    feed = KrakenV2(record=True, verify_checksum=False, on_error="skip")
    feed.feed(json.dumps({"channel": "book", "type": "snapshot", "data": [
        {"symbol": "BTC/USD", "bids": [], "asks": [], "timestamp": "9999-12-31T23:59:59Z"}]}))
    assert feed.counts()["malformed"] == 1 and len(feed.take_events()) == 0


def test_cryptofeed_time_of_5000_digits() -> None:
    # before: ValueError (int() of 5000 digits) from the fast path of the time parser
    with pytest.raises(DecodeError, match=r"<buffer>:1: bad receive time"):
        list(read_capture(b"9" * 5000 + b": {}\n"))


# -- memory: hostile messages naming ever new symbols --------------------------------------------

def _junk(venue: str, i: int) -> str:
    import json

    sym = f"S{i}"
    return json.dumps({
        "binance": {"e": "depthUpdate", "E": 1, "s": sym, "U": 1, "u": 2, "b": [["x", "1"]],
                    "a": []},
        "bybit": {"topic": f"orderbook.50.{sym}", "type": "snapshot", "ts": 1,
                  "data": {"s": sym, "b": [["x", "1"]], "a": [], "u": 1, "seq": 1}},
        "coinbase-exchange": {"type": "snapshot", "product_id": sym, "bids": [["x", "1"]],
                              "asks": []},
        "coinbase-advanced": {"channel": "l2_data", "events": [
            {"type": "snapshot", "product_id": sym,
             "updates": [{"side": "bid", "price_level": "x", "new_quantity": "1"}]}]},
        "kraken-v1": [1, {"as": [["x", "1", "1.5"]], "bs": []}, "book-10", f"{sym}/USD"],
        "kraken-v2": {"channel": "book", "type": "snapshot", "data": [
            {"symbol": sym, "bids": [{"price": "x", "qty": 1}], "asks": []}]},
        "okx": {"arg": {"channel": "books", "instId": sym}, "action": "snapshot",
                "data": [{"asks": [["x", "1", "0", "1"]], "bids": []}]},
    }[venue])


def _feed_of(venue: str, kernel: str, mode: str) -> object:
    from fastbook.codecs.bybit import Bybit
    from fastbook.codecs.coinbase import CoinbaseExchange

    return {
        "binance": lambda: BinanceSpot(kernel=kernel, on_error=mode),
        "bybit": lambda: Bybit(kernel=kernel, on_error=mode),
        "coinbase-exchange": lambda: CoinbaseExchange(kernel=kernel, on_error=mode),
        "coinbase-advanced": lambda: CoinbaseAdvanced(on_error=mode),
        "kraken-v1": lambda: KrakenV1(on_error=mode),
        "kraken-v2": lambda: KrakenV2(on_error=mode, verify_checksum=False),
        "okx": lambda: Okx(on_error=mode),
    }[venue]()


@pytest.mark.parametrize("mode", ["skip", "raise"])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("venue", ["binance", "bybit", "coinbase-exchange", "coinbase-advanced",
                                   "kraken-v1", "kraken-v2", "okx"])
def test_refused_messages_of_new_symbols_leave_no_book(venue: str, kernel: str,
                                                        mode: str) -> None:
    feed = _feed_of(venue, kernel, mode)
    for i in range(300):
        if mode == "skip":
            assert feed.feed(_junk(venue, i)) == []
        else:
            with pytest.raises(FeedError, match=f"S{i}"):
                feed.feed(_junk(venue, i))
    # before: a SymbolSync with a 1,024-level book (and an Instrument) per refused message:
    # 20,000 of them took 354 MB
    assert feed.symbols == [] and feed.instruments == {}
    if mode == "skip":
        assert feed.counts()["malformed"] == 300 and len(feed.errors) == 100


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_forgotten_symbol_slot_serves_the_next_symbol(kernel: str) -> None:
    feed = BinanceSpot(kernel=kernel, on_error="skip")
    feed.feed(_junk("binance", 1))
    feed.feed(depth("BTCUSDT", 1, 2, [("1.0", "1")]))          # reuses the scanner slot
    feed.snapshot("BTCUSDT", b'{"lastUpdateId": 1, "bids": [["1.0", "1"]], "asks": []}')
    assert feed.symbols == ["BTCUSDT"] and feed.is_synced("BTCUSDT")
    feed.feed(depth("BTCUSDT", 3, 3, [("1.0", "4")]))
    feed.feed(_junk("binance", 1).replace('"U": 1, "u": 2', '"U": 4, "u": 4'))
    assert list(feed.book("BTCUSDT").levels(1)) == [(100_000_000, 400_000_000)]
    assert feed.counts("BTCUSDT")["applied"] == 2 and feed.counts()["malformed"] == 2
    assert feed.symbols == ["BTCUSDT"]


def test_coinbase_advanced_refused_message_leaves_a_gap_not_a_stale_book() -> None:
    from tests.helpers.l2 import adv, adv_event

    feed = CoinbaseAdvanced(on_error="skip")
    feed.feed(adv(0, [adv_event("snapshot", "BTC-USD", ("bid", "100", "1"),
                                ("offer", "101", "1"))]))
    assert feed.is_synced("BTC-USD")
    bad = adv(1, [adv_event("update", "BTC-USD", ("bid", "100", "x"))])
    assert feed.feed(bad) == [] and feed.is_synced("BTC-USD")      # changed nothing
    notices = feed.feed(adv(2, [adv_event("update", "BTC-USD", ("bid", "99", "1"))]))
    # before: the refused message took sequence_num 1, so message 2 followed it and the
    # book, which had missed message 1's change, stayed synced (silently stale)
    assert [(n.kind, n.reason) for n in notices] == [("resync", "gap"), ("resubscribe", "")]
    assert not feed.is_synced("BTC-USD")


def test_coinbase_advanced_unknown_channel_takes_no_sequence() -> None:
    import json

    from tests.helpers.l2 import adv, adv_event

    feed = CoinbaseAdvanced(on_error="skip")
    feed.feed(adv(0, [adv_event("snapshot", "BTC-USD", ("bid", "100", "1"),
                                ("offer", "101", "1"))]))
    odd = json.dumps({"channel": "l2147483648_data", "sequence_num": 14294967296, "events": []})
    # before: its sequence_num was taken first (a gap: the books were discarded), then the
    # message was refused
    assert feed.feed(odd) == [] and feed.is_synced("BTC-USD")
    assert "channel 'l2147483648_data'" in str(feed.errors[-1])
    assert feed.feed(adv(1, [adv_event("update", "BTC-USD", ("bid", "99", "1"))])) == []
    assert list(feed.book("BTC-USD").levels(1)) == [(10_000_000_000, 100_000_000),
                                                    (9_900_000_000, 100_000_000)]


@pytest.mark.parametrize("impl", ["compiled", "twin"])
def test_consolidated_depth_of_a_huge_n_allocates_only_the_levels_held(impl: str) -> None:
    from fastbook import _pyconsol
    from fastbook.codecs._l2feed import Instrument

    cls = fastbook.Consolidated if impl == "compiled" else _pyconsol.Consolidated
    book = fastbook.Book(price_decimals=2, qty_decimals=3)
    book.set(1, 100, 1)
    view = cls("BTC/USD", [("a", book, Instrument("a", "BTC-USD", "BTC/USD", 2, 3), 10**9,
                            "0")])
    view.update(0, 1)
    # before: depth(2**31) asked numpy for a (4, 2**31) int64 array (MemoryError, 64 GiB)
    d = view.depth(2**31)
    assert d.bid_prices.tolist() == [100] and d.ask_prices.tolist() == []


def test_consolidated_depth_refuses_a_bool_in_the_twin_too() -> None:
    from fastbook import _pyconsol
    from fastbook.codecs._l2feed import Instrument

    view = _pyconsol.Consolidated("BTC/USD", [
        ("a", fastbook.Book(price_decimals=2, qty_decimals=3),
         Instrument("a", "BTC-USD", "BTC/USD", 2, 3), 10**9, "0")])
    # before: the twin took True as 1 where the compiled view refuses it
    with pytest.raises(ValueError, match="non-negative int, got True"):
        view.depth(True)


# -- the top-N board: record_len ------------------------------------------------------------------

@pytest.mark.parametrize("depth", [0, -1, 257, 1.5, "3", True, None, np.int64(2**62)],
                         ids=["zero", "negative", "past-max", "float", "str", "bool", "none",
                              "int64-overflow"])
def test_board_record_len_checks_depth(depth: object) -> None:
    # before: record_len(1.5) gave 11.0, record_len(-1) gave 1, and an np.int64 depth near
    # 2**62 overflowed with a RuntimeWarning into a wrong length; now a depth a Board
    # would refuse is refused here too (ValueError naming it), for both implementations
    from fastbook import _board, _pyboard

    for module in (_board, _pyboard):
        with pytest.raises(ValueError, match="depth"):
            module.record_len(depth)
    assert _board.record_len(10) == _pyboard.record_len(np.int64(10)) == 45


# -- the quote server's WebSocket requests ----------------------------------------------------

def test_ws_request_nested_too_deeply_is_refused() -> None:
    # before: json.loads raised RecursionError out of WsEndpoint._handle, and websockets
    # closed the connection with 1011 (internal error) and logged a traceback; now it is
    # a refused request (1008) like any other, and the server goes on
    from fastbook.server import _ws
    from fastbook.server._hub import Hub

    endpoint = _ws.WsEndpoint(Hub(["sim:A"]))
    for text in ('{"op": "subscribe", "instruments": ' + "[" * 60_000 + "]" * 60_000 + "}",
                 "[" * 60_000, '{"a":' * 30_000 + "1" + "}" * 30_000):
        with pytest.raises(_ws._Refused) as info:
            endpoint._parse(text)
        assert info.value.code in (1007, 1008) and info.value.code in _ws.CLOSE_CODES


def test_ws_request_nested_too_deeply_over_a_real_socket() -> None:
    pytest.importorskip("websockets")
    import asyncio
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from fastbook.server import Server
    from tests.server.conftest import run

    deep = "[" * 60_000          # within the 64 KiB frame limit, past the decoder's recursion

    async def main() -> None:
        async with Server(None, ["sim:A"], ws_port=0) as srv:
            book = fastbook.Book(price_decimals=2, qty_decimals=0)
            book.set(fastbook.BID, 100, 1)
            srv.publish("sim:A", book)
            async with connect(f"ws://127.0.0.1:{srv.ws_port}") as ws:
                await ws.send(deep)
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), 10)
                rcvd = info.value.rcvd
                assert rcvd is not None and rcvd.code == 1008
                assert "nested too deeply" in rcvd.reason
            async with connect(f"ws://127.0.0.1:{srv.ws_port}") as ws:
                await ws.send(json.dumps({"op": "snapshot", "instrument": "sim:A"}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["bids"][0] == [100, 1]
            assert srv.ws.stats()["refused"] == {1008: 1}

    run(main())


@pytest.mark.parametrize("row", ["1,\U00100000\n", "5857400,40,5857300,\U0010000045,5,6\n",
                                 "1,2,3,4\n1,\udcab2,3,4\n"])
def test_lobster_orderbook_refuses_non_ascii_text_before_numpy(row: str) -> None:
    # fuzz (lobster, seed 7, #82502): numpy's loadtxt took the process down (SIGSEGV) on
    # a str row holding a character beyond the BMP; a str source is now checked as the
    # bytes path decodes, and the error names the line and column
    with pytest.raises(DecodeError, match=r"<text stream>:\d: column \d is not an integer in "
                                          r"ASCII digits"):
        lobster.read_orderbook(io.StringIO(row), 1)
