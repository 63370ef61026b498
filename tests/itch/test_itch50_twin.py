"""The pure-Python ITCH 5.0 twin: message parsing, framing, decode_chunk, and real sample files.

Messages are built here from the layout table of ``specs/itch.md`` section 1.2 with
``int.to_bytes`` and explicit offsets, independently of the struct formats of the code under
test. ``decode_chunk`` follows the shared contract ``itch_decode_chunk.md``; the readings this
twin chose where the contract leaves room are listed in its docstring and tested below.
"""

from __future__ import annotations

import collections
import doctest
import gzip
import mmap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbook.codecs import _pyitch50 as itch
from fastbook.errors import ArrayError, DecodeError
from fastbook.events import EVENT_DTYPE
from fastbook.l3 import ERROR_KINDS, BookSet
from tests.helpers import DATA as TESTDATA
from tests.helpers.itch import (
    LETTER_LENGTHS,
    a,
    add,
    binfile,
    cancel,
    cross,
    delete,
    directory_msg,
    execute,
    execute_c,
    mold,
    msg,
    replace,
    soup,
    soup_s,
    system,
    trade,
    trading_action,
    u,
)

DATA = TESTDATA / "itch"
RITCH = DATA / "ex20101224.TEST_ITCH_50.gz"
RITCH_FIXED = DATA / "ex20101224.TEST_ITCH_50.lenfixed.gz"
MEATPY = DATA / "sample.itch50"

# Actions and flags, spelled out rather than imported, so a renumbering would be caught.
ADD, REDUCE, EXECUTE, DELETE, REPLACE, TRADE, STATUS = 1, 2, 3, 4, 5, 8, 11
HIDDEN, CROSS, HALTED, QUOTING, NON_PRINTABLE = 0x4, 0x8, 0x10, 0x20, 0x100

SPEC_LENGTHS = LETTER_LENGTHS


# Every message type with every field set to a value that would show a wrong offset, width,
# signedness or padding rule. (message bytes, expected fields after the common header)
TS_MAX = 2**48 - 1
ALL_TYPES = {
    "S": (msg("S", b"Q", 0, 7, 34_200_000_000_123), {"event_code": "Q"}),
    "R": (msg("R", a("ZVZZT", 8) + b"Q" + b"D" + u(100, 4) + b"Y" + b"C" + b"Z " + b"P" + b"N"
              + b" " + b"1" + b"Y" + u(3, 4) + b"Y", 65535, 1, TS_MAX),
          {"stock": "ZVZZT", "market_category": "Q", "financial_status": "D",
           "round_lot_size": 100, "round_lots_only": "Y", "issue_classification": "C",
           "issue_sub_type": "Z", "authenticity": "P", "short_sale_threshold": "N",
           "ipo_flag": "", "luld_reference_price_tier": "1", "etp_flag": "Y",
           "etp_leverage_factor": 3, "inverse_indicator": "Y"}),
    "H": (msg("H", a("AAPL", 8) + b"H" + b" " + a("LUDP", 4), 2, 3, 4),
          {"stock": "AAPL", "trading_state": "H", "reserved": "", "reason": "LUDP"}),
    "Y": (msg("Y", a("AAPL", 8) + b"1", 2, 0, 9), {"stock": "AAPL", "action": "1"}),
    "L": (msg("L", a("NSDQ", 4) + a("AAPL", 8) + b"Y" + b"N" + b"A", 2, 0, 9),
          {"mpid": "NSDQ", "stock": "AAPL", "primary_mm": "Y", "mm_mode": "N",
           "participant_state": "A"}),
    "V": (msg("V", u(2**64 - 1, 8) + u(123_456_789_012, 8) + u(1, 8), 0, 0, 9),
          {"level_1": 2**64 - 1, "level_2": 123_456_789_012, "level_3": 1}),
    "W": (msg("W", b"2", 0, 0, 9), {"breached_level": "2"}),
    "K": (msg("K", a("IPO", 8) + u(34_200, 4) + b"A" + u(0xFFFFFFFF, 4), 9, 0, 9),
          {"stock": "IPO", "release_time": 34_200, "qualifier": "A", "ipo_price": 0xFFFFFFFF}),
    "J": (msg("J", a("AAPL", 8) + u(1_000_000, 4) + u(1_100_000, 4) + u(900_000, 4) + u(2, 4),
              2, 0, 9),
          {"stock": "AAPL", "reference_price": 1_000_000, "upper_collar": 1_100_000,
           "lower_collar": 900_000, "extension_count": 2}),
    "h": (msg("h", a("AAPL", 8) + b"Q" + b"H", 2, 0, 9),
          {"stock": "AAPL", "market_code": "Q", "action": "H"}),
    "A": (msg("A", u(2**64 - 1, 8) + b"S" + u(0xFFFFFFFF, 4) + a("AAPL", 8) + u(2_000_000_000, 4),
              2, 0xBEEF, TS_MAX),
          {"order_ref": 2**64 - 1, "side": "S", "shares": 0xFFFFFFFF, "stock": "AAPL",
           "price": 2_000_000_000}),
    "F": (msg("F", u(12, 8) + b"B" + u(300, 4) + a("AAPL", 8) + u(1_234_567, 4) + a("GSCO", 4),
              2, 0, 9),
          {"order_ref": 12, "side": "B", "shares": 300, "stock": "AAPL", "price": 1_234_567,
           "attribution": "GSCO"}),
    "E": (msg("E", u(12, 8) + u(50, 4) + u(2**63 + 1, 8), 2, 0, 9),
          {"order_ref": 12, "executed_shares": 50, "match_number": 2**63 + 1}),
    "C": (msg("C", u(12, 8) + u(50, 4) + u(77, 8) + b"N" + u(1_234_500, 4), 2, 0, 9),
          {"order_ref": 12, "executed_shares": 50, "match_number": 77, "printable": "N",
           "execution_price": 1_234_500}),
    "X": (msg("X", u(12, 8) + u(25, 4), 2, 0, 9), {"order_ref": 12, "canceled_shares": 25}),
    "D": (msg("D", u(12, 8), 2, 0, 9), {"order_ref": 12}),
    "U": (msg("U", u(12, 8) + u(13, 8) + u(400, 4) + u(1_234_600, 4), 2, 0, 9),
          {"original_ref": 12, "new_ref": 13, "shares": 400, "price": 1_234_600}),
    "P": (msg("P", u(0, 8) + b"B" + u(100, 4) + a("AAPL", 8) + u(1_234_550, 4) + u(78, 8),
              2, 0, 9),
          {"order_ref": 0, "side": "B", "shares": 100, "stock": "AAPL", "price": 1_234_550,
           "match_number": 78}),
    "Q": (msg("Q", u(2**40 + 5, 8) + a("AAPL", 8) + u(1_234_500, 4) + u(79, 8) + b"C", 2, 0, 9),
          {"shares": 2**40 + 5, "stock": "AAPL", "cross_price": 1_234_500, "match_number": 79,
           "cross_type": "C"}),
    "B": (msg("B", u(79, 8), 2, 0, 9), {"match_number": 79}),
    "I": (msg("I", u(2**33, 8) + u(2**34 + 1, 8) + b"S" + a("AAPL", 8) + u(1, 4) + u(2, 4)
              + u(3, 4) + b"O" + b"L", 2, 0, 9),
          {"paired_shares": 2**33, "imbalance_shares": 2**34 + 1, "imbalance_direction": "S",
           "stock": "AAPL", "far_price": 1, "near_price": 2, "current_reference_price": 3,
           "cross_type": "O", "price_variation_indicator": "L"}),
    "N": (msg("N", a("AAPL", 8) + b"A", 2, 0, 9), {"stock": "AAPL", "interest_flag": "A"}),
    "O": (msg("O", a("DLST", 8) + b"Y" + u(100_000, 4) + u(200_000, 4) + u(150_000, 4)
              + u(2**40 + 3, 8) + u(90_000, 4) + u(210_000, 4), 9, 0, 9),
          {"stock": "DLST", "open_eligibility": "Y", "minimum_allowable_price": 100_000,
           "maximum_allowable_price": 200_000, "near_execution_price": 150_000,
           "near_execution_time": 2**40 + 3, "lower_collar": 90_000, "upper_collar": 210_000}),
}
CLASS_NAMES = {
    "S": "SystemEvent", "R": "StockDirectory", "H": "StockTradingAction",
    "Y": "RegShoRestriction", "L": "MarketParticipantPosition", "V": "MwcbDeclineLevel",
    "W": "MwcbStatus", "K": "IpoQuotingPeriodUpdate", "J": "LuldAuctionCollar",
    "h": "OperationalHalt", "A": "AddOrder", "F": "AddOrderMpid", "E": "OrderExecuted",
    "C": "OrderExecutedWithPrice", "X": "OrderCancel", "D": "OrderDelete", "U": "OrderReplace",
    "P": "Trade", "Q": "CrossTrade", "B": "BrokenTrade", "I": "Noii",
    "N": "RetailPriceImprovement", "O": "DirectListingCapitalRaise",
}


def header_of(raw: bytes) -> dict:
    return {"type": chr(raw[0]), "locate": int.from_bytes(raw[1:3], "big"),
            "tracking": int.from_bytes(raw[3:5], "big"),
            "timestamp": int.from_bytes(raw[5:11], "big")}


# -- the message table and parse_message ------------------------------------------------------

def test_message_lengths_are_the_specification_table():
    assert itch.MESSAGE_LENGTHS == SPEC_LENGTHS
    assert set(ALL_TYPES) == set(SPEC_LENGTHS) == set(CLASS_NAMES)


@pytest.mark.parametrize("type_", sorted(ALL_TYPES))
def test_parse_every_type_every_field(type_):
    raw, body = ALL_TYPES[type_]
    parsed = itch.parse_message(raw)
    assert type(parsed).__name__ == CLASS_NAMES[type_]
    assert parsed._asdict() == {**header_of(raw), **body}
    assert parsed._fields[:4] == ("type", "locate", "tracking", "timestamp")
    # any buffer works, and the result does not depend on it
    assert itch.parse_message(memoryview(raw)) == parsed
    assert itch.parse_message(bytearray(raw)) == parsed


def test_parse_header_extremes():
    raw, _ = ALL_TYPES["A"]
    parsed = itch.parse_message(raw)
    assert (parsed.locate, parsed.tracking, parsed.timestamp) == (2, 0xBEEF, TS_MAX)


@pytest.mark.parametrize("type_", sorted(ALL_TYPES))
def test_parse_wrong_length_names_type_and_length(type_):
    raw, _ = ALL_TYPES[type_]
    for bad in (raw[:-1], raw + b"x"):
        with pytest.raises(DecodeError, match=rf"type '{type_}' has length {len(bad)}\b"):
            itch.parse_message(bad)


def test_parse_unknown_and_empty():
    raw = b"z" + bytes(15)
    with pytest.raises(DecodeError, match=r"unknown ITCH 5.0 message type 'z'.*length 16"):
        itch.parse_message(raw)
    unknown = itch.parse_message(raw, allow_unknown=True)
    assert unknown == itch.UnknownMessage("z", raw)
    with pytest.raises(DecodeError, match="empty"):
        itch.parse_message(b"")
    bad_stock = msg("A", u(1, 8) + b"B" + u(1, 4) + b"AB\xe9     " + u(1, 4))
    with pytest.raises(DecodeError, match="field stock is not ASCII"):
        itch.parse_message(bad_stock)


def test_docstring_examples():
    result = doctest.testmod(itch, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10
    assert result.failed == 0


def test_parse_is_a_decode_error_and_value_error():
    message = r"^ITCH message type 'A' has length 1, but the specification says 36$"
    with pytest.raises(ValueError, match=message):
        itch.parse_message(b"A")


def test_stock_directory():
    raw, _ = ALL_TYPES["R"]
    expected = {
        "locate": 65535, "symbol": "ZVZZT", "round_lot": 100, "market_category": "Q",
        "financial_status": "D", "round_lots_only": True, "issue_classification": "C",
        "issue_sub_type": "Z", "authenticity": "P", "short_sale_threshold": "N",
        "ipo_flag": "", "luld_reference_price_tier": "1", "etp_flag": "Y",
        "etp_leverage_factor": 3, "inverse": True, "timestamp": TS_MAX,
    }
    assert itch.stock_directory(raw) == expected
    assert itch.stock_directory(itch.parse_message(raw)) == expected
    with pytest.raises(DecodeError, match="'R'"):
        itch.stock_directory(ALL_TYPES["A"][0])
    with pytest.raises(DecodeError, match="'R'"):
        itch.stock_directory(itch.parse_message(ALL_TYPES["A"][0]))


# -- iter_messages --------------------------------------------------------------------------

ALL_RAW = [ALL_TYPES[t][0] for t in sorted(ALL_TYPES)]


def test_iter_messages_binaryfile_offsets_and_numbers():
    unknown = b"z" + bytes(4)
    data = binfile(*ALL_RAW, unknown)
    out = list(itch.iter_messages(data))
    assert [n for _, n, _ in out] == list(range(len(ALL_RAW) + 1))
    offset = 0
    for (off, _, parsed), raw in zip(out, [*ALL_RAW, unknown], strict=True):
        assert off == offset + 2
        assert data[off:off + len(raw)] == raw
        assert parsed == itch.parse_message(raw, allow_unknown=True)
        offset += 2 + len(raw)
    # start= skips frames; numbering restarts at 0
    first = 2 + len(ALL_RAW[0])
    assert [n for _, n, _ in itch.iter_messages(data, start=first)] == list(range(len(ALL_RAW)))


def test_iter_messages_mold_and_soup():
    m1, m2, m3 = add(1), delete(1), system("C")
    data = mold(5, m1, m2) + mold(7, count=0) + mold(9, m3) + mold(10, count=0xFFFF)
    out = list(itch.iter_messages(data, 1))
    assert [(off, n, p.type) for off, n, p in out] == [(22, 0, "A"), (60, 1, "D"),
                                                       (22 + 36 + 2 + 19 + 20 + 20 + 2, 2, "S")]
    data = soup(b"A", b"x" * 30) + soup_s(m1) + soup(b"H") + soup(b"+", b"dbg") + soup_s(m2)
    out = list(itch.iter_messages(data, 2))
    assert [(off, n, p.type) for off, n, p in out] == [(33 + 3, 0, "A"), (33 + 39 + 3 + 6 + 3, 1,
                                                                           "D")]


def test_iter_messages_errors_name_offset_and_number():
    good = binfile(add(1), delete(1))
    with pytest.raises(DecodeError, match=r"zero length at byte offset 59 \(message 2\)"):
        list(itch.iter_messages(good + b"\x00\x00" + add(2)))
    with pytest.raises(DecodeError, match=r"byte offset 59 \(message 2\) has type 'D' and "
                                          r"length 20, but that type's length is 19"):
        list(itch.iter_messages(good + binfile(delete(1) + b"x")))
    with pytest.raises(DecodeError, match=r"truncated.*byte offset 59 \(message 2\)"):
        list(itch.iter_messages(good + binfile(delete(1))[:-1]))
    with pytest.raises(DecodeError, match=r"truncated.*byte offset 59"):
        list(itch.iter_messages(good + b"\x00"))
    with pytest.raises(ValueError, match="framing"):
        list(itch.iter_messages(good, 3))
    with pytest.raises(ValueError, match="start"):
        list(itch.iter_messages(good, start=len(good) + 1))


# -- decode_chunk: helpers -------------------------------------------------------------------

def fresh(n_events=64, n_dir=None):
    events = np.zeros(n_events, EVENT_DTYPE)
    counts = np.zeros(256, np.uint64)
    directory = None if n_dir is None else np.full(n_dir, -7, np.int64)
    return events, counts, directory


def decode(data, framing=0, n_events=64, **kw):
    events, counts, _ = fresh(n_events)
    result = itch.decode_chunk(data, 0, framing, events, counts, **kw)
    return result, events[:result[1]], counts


def row(ts=5, instrument=1, action=0, side=0, flags=0, price=0, qty=0, order_id=0,
        new_order_id=0, sequence=0):
    return (ts, 0, instrument, action, side, flags, price, qty, order_id, new_order_id, sequence)


def counted(counts) -> dict[str, int]:
    return {chr(t): int(c) for t, c in enumerate(counts) if c}


# -- decode_chunk: one row per mapping of the contract ---------------------------------------

MAPPING = [
    (add(7, "B", 300, price=1_234_500, locate=3, ts=99),
     row(99, 3, ADD, 1, 0, 1_234_500, 300, 7)),
    (add(8, "S", 200, price=1_234_600, type_="F"), row(5, 1, ADD, 2, 0, 1_234_600, 200, 8)),
    (add(9, "x", 10, price=1), row(5, 1, ADD, 0, 0, 1, 10, 9)),
    (execute(7, 100), row(action=EXECUTE, qty=100, order_id=7)),
    (execute_c(7, 50, 1_234_400), row(action=EXECUTE, price=1_234_400, qty=50, order_id=7)),
    (execute_c(7, 50, 1_234_400, "N"),
     row(action=EXECUTE, flags=NON_PRINTABLE, price=1_234_400, qty=50, order_id=7)),
    (cancel(7, 25), row(action=REDUCE, qty=25, order_id=7)),
    (delete(7), row(action=DELETE, order_id=7)),
    (replace(8, 10, 500, 1_234_700), row(action=REPLACE, price=1_234_700, qty=500, order_id=8,
                                         new_order_id=10)),
    (trade(100, 1_234_550), row(action=TRADE, side=1, flags=HIDDEN, price=1_234_550, qty=100)),
    (trade(100, 1_234_550, side="S", ref=44),
     row(action=TRADE, side=2, flags=HIDDEN, price=1_234_550, qty=100, order_id=44)),
    (trade(0xFFFFFFFF, 1, side=" "), row(action=TRADE, flags=HIDDEN, price=1, qty=0xFFFFFFFF)),
    (cross(2**40, 1_234_500), row(action=TRADE, flags=CROSS, price=1_234_500, qty=2**40)),
    (cross(2**64 - 1, 7), row(action=TRADE, flags=CROSS, price=7, qty=-1)),
    (cross(2**63, 7), row(action=TRADE, flags=CROSS, price=7, qty=-(2**63))),
    (trading_action("H"), row(action=STATUS, flags=HALTED)),
    (trading_action("P"), row(action=STATUS, flags=HALTED)),
    (trading_action("Q"), row(action=STATUS, flags=QUOTING)),
    (trading_action("T"), row(action=STATUS)),
    (trading_action("Z"), row(action=STATUS)),
    (trading_action("T", locate=0), row(instrument=0, action=STATUS)),
]


@pytest.mark.parametrize(("raw", "expected"), MAPPING,
                         ids=[f"{chr(m[0])}{i}" for i, (m, _) in enumerate(MAPPING)])
def test_event_mapping_row(raw, expected):
    (pos_after, n_events, n_messages, n_dir, status), events, counts = decode(binfile(raw))
    assert (pos_after, n_events, n_messages, n_dir, status) == (len(raw) + 2, 1, 1, 0, 0)
    assert events.tolist() == [expected]
    assert counted(counts) == {chr(raw[0]): 1}


@pytest.mark.parametrize("type_", sorted(set("SRYLVWKJhBINO")))
def test_types_without_events_are_counted_only(type_):
    raw = ALL_TYPES[type_][0]
    (pos_after, n_events, n_messages, n_dir, status), _, counts = decode(binfile(raw, raw))
    assert (pos_after, n_events, n_messages, n_dir, status) == (2 * (len(raw) + 2), 0, 2, 0, 0)
    assert counted(counts) == {type_: 2}


def test_all_mapping_rows_in_one_stream_with_sequence_numbers():
    data = binfile(*(m for m, _ in MAPPING))
    events, counts, _ = fresh()
    counts[ord("A")] = 10   # counts are incremented, never reset
    result = itch.decode_chunk(data, 0, 0, events, counts, seq=1000)
    assert result == (len(data), len(MAPPING), len(MAPPING), 0, 0)
    expected = [(*e[:-1], 1000 + i) for i, (_, e) in enumerate(MAPPING)]
    assert events[:len(MAPPING)].tolist() == expected
    assert counts[ord("A")] == 12 and counts[ord("F")] == 1 and counts[ord("H")] == 6
    # rows past n_events are untouched
    assert events[len(MAPPING):].tolist() == [row(0, 0)] * (64 - len(MAPPING))


def test_rows_are_fully_overwritten():
    events, counts, _ = fresh(2)
    events["price"] = 99
    events["flags"] = 0xFFFF
    events["ts_receive"] = 123
    itch.decode_chunk(binfile(delete(3)), 0, 0, events, counts)
    assert events[0].tolist() == row(action=DELETE, order_id=3)
    assert events[1]["price"] == 99


def test_unknown_types_are_skipped_by_length_and_counted():
    data = binfile(b"z" + bytes(40), delete(1), b"\x01", b"y\x00")
    (pos_after, n_events, n_messages, _, status), events, counts = decode(data, seq=5)
    assert (pos_after, n_events, n_messages, status) == (len(data), 1, 4, 0)
    assert events.tolist() == [row(action=DELETE, order_id=1, sequence=6)]
    assert counted(counts) == {"z": 1, "D": 1, "\x01": 1, "y": 1}


# -- decode_chunk: locate_map and directory ------------------------------------------------

def decode_all(data, framing, events, counts, directory, **kwargs):
    """decode_chunk resumed after every status 2 (a unit holding an R), outputs gathered.

    ``events`` and ``directory`` receive everything in order; returns the summed
    ``(pos_after, n_events, n_messages, n_directory, last status)``.
    """
    pos = n_ev = n_msg = n_dir = 0
    while True:
        ev_part = np.zeros(len(events) - n_ev, events.dtype)
        dir_part = np.zeros(len(directory) - n_dir, np.int64)
        pos, e, m, d, status = itch.decode_chunk(data, pos, framing, ev_part, counts,
                                                 directory=dir_part, seq=n_msg, **kwargs)
        events[n_ev:n_ev + e] = ev_part[:e]
        directory[n_dir:n_dir + d] = dir_part[:d]
        n_ev, n_msg, n_dir = n_ev + e, n_msg + m, n_dir + d
        if status != 2 or d == 0:
            return pos, n_ev, n_msg, n_dir, status

def test_locate_map_maps_and_drops():
    lm = np.full(65536, -1, np.int32)
    lm[1] = 40
    lm[2] = 0
    lm[65535] = 2**31 - 1
    data = binfile(delete(1, locate=1), delete(2, locate=2), delete(3, locate=3),
                   delete(4, locate=65535), directory_msg(3, "DROP"))
    events, counts, directory = fresh(8, 4)
    result = itch.decode_chunk(data, 0, 0, events, counts, locate_map=lm, directory=directory)
    assert result == (len(data), 3, 5, 1, 2)     # status 2: stopped after the R
    assert events[:3][["instrument", "order_id", "sequence"]].tolist() == [
        (40, 1, 0), (0, 2, 1), (2**31 - 1, 4, 3)]
    assert counted(counts) == {"D": 4, "R": 1}
    assert directory.tolist() == [4 * 21 + 2, -7, -7, -7]   # the dropped locate still reported


def test_dropped_messages_need_no_event_capacity():
    lm = np.full(65536, -1, np.int32)
    lm[1] = 0
    data = binfile(delete(1), delete(2, locate=2), delete(3, locate=2), delete(4))
    events, counts, _ = fresh(1)
    result = itch.decode_chunk(data, 0, 0, events, counts, locate_map=lm)
    # the first D fills the array, the two dropped ones are consumed, the fourth does not fit
    assert result == (3 * 21, 1, 3, 0, 1)
    assert counted(counts) == {"D": 3}


def test_directory_offsets_all_framings():
    r1, r2 = directory_msg(1, "AAA"), directory_msg(2, "BBB")
    cases = {
        0: (binfile(system("O"), r1, add(1), r2), [14 + 2, 14 + 41 + 38 + 2]),
        1: (mold(1, system("O"), r1) + mold(3, add(1), r2),
            [20 + 14 + 2, 20 + 14 + 41 + 20 + 38 + 2]),
        2: (soup(b"H") + soup_s(system("O"), r1) + soup(b"H") + soup_s(add(1), r2),
            [3 + 15 + 3, 3 + 15 + 42 + 3 + 39 + 3]),
    }
    for framing, (data, offsets) in cases.items():
        events, counts, directory = fresh(8, 3)
        result = decode_all(data, framing, events, counts, directory)
        assert result == (len(data), 1, 4, 2, 0), framing
        assert directory[:2].tolist() == offsets
        assert all(data[o:o + 1] == b"R" for o in offsets)
        # without a directory, R messages are consumed and counted, not reported
        events, counts, _ = fresh(8)
        assert itch.decode_chunk(data, 0, framing, events, counts) == (len(data), 1, 4, 0, 0)
        assert counts[ord("R")] == 2


# -- decode_chunk: statuses and pos_after --------------------------------------------------

STREAM = [system("O"), add(1), directory_msg(1, "ABC"), add(2), delete(1), system("C")]
OFFSETS = np.cumsum([0] + [len(m) + 2 for m in STREAM]).tolist()
DATA = binfile(*STREAM)


def test_status_0_all_consumed_and_empty_tail():
    events, counts, _ = fresh()
    assert itch.decode_chunk(DATA, 0, 0, events, counts) == (len(DATA), 3, 6, 0, 0)
    assert itch.decode_chunk(DATA, len(DATA), 0, events, counts, final=True) == (len(DATA), 0,
                                                                               0, 0, 0)
    assert itch.decode_chunk(b"", 0, 0, events, counts, final=True) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("cut", range(1, len(DATA)))
def test_status_0_and_minus_3_on_every_cut(cut):
    data = DATA[:cut]
    whole = max(i for i, o in enumerate(OFFSETS) if o <= cut)   # frames entirely inside
    frame_start = OFFSETS[whole]
    n_events = sum(1 for m in STREAM[:whole] if m[:1] in (b"A", b"D"))
    for final, status in ((False, 0), (True, -3)):
        events, counts, _ = fresh()
        got = itch.decode_chunk(data, 0, 0, events, counts, final=final)
        if frame_start == cut:
            status = 0
        assert got == (frame_start, n_events, whole, 0, status)


def test_status_1_events_full_stops_before_the_frame():
    events, counts, _ = fresh(1)
    # S is consumed (no event), A fills the array, R is consumed, the next A does not fit
    assert itch.decode_chunk(DATA, 0, 0, events, counts) == (OFFSETS[3], 1, 3, 0, 1)
    assert counted(counts) == {"S": 1, "A": 1, "R": 1}
    events0, counts0, _ = fresh(0)
    assert itch.decode_chunk(DATA, 0, 0, events0, counts0) == (OFFSETS[1], 0, 1, 0, 1)
    # resume where it stopped, with the message number carried on
    events2, counts2, _ = fresh(8)
    assert itch.decode_chunk(DATA, OFFSETS[3], 0, events2, counts2, seq=3) == (len(DATA), 2, 3,
                                                                              0, 0)
    assert events2[:2]["sequence"].tolist() == [3, 4]


def test_status_2_directory_full_stops_before_the_r():
    events, counts, directory = fresh(8, 0)
    assert itch.decode_chunk(DATA, 0, 0, events, counts, directory=directory) == (
        OFFSETS[2], 1, 2, 0, 2)


def test_status_2_right_after_every_r_so_its_locate_can_be_mapped_first():
    events, counts, directory = fresh(8, 4)
    data = DATA + binfile(directory_msg(2, "XYZ"))
    assert itch.decode_chunk(data, 0, 0, events, counts, directory=directory) == (
        OFFSETS[3], 1, 3, 1, 2)
    assert directory[:1].tolist() == [OFFSETS[2] + 2]
    assert itch.decode_chunk(data, OFFSETS[3], 0, events, counts, directory=directory,
                             seq=3) == (len(data), 2, 4, 1, 2)
    assert directory[:1].tolist() == [len(DATA) + 2]
    # without a directory nothing stops at an R
    events, counts, _ = fresh(8)
    assert itch.decode_chunk(data, 0, 0, events, counts) == (len(data), 3, 7, 0, 0)


def test_status_minus_1_wrong_length():
    bad = delete(9) + b"\x00"
    data = DATA + binfile(bad, add(3))
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, 0, 0, events, counts) == (len(DATA), 3, 6, 0, -1)
    assert counts[ord("D")] == 1   # nothing of the failing frame was consumed
    # a short known message too
    data = binfile(add(1)[:-3])
    assert itch.decode_chunk(data, 0, 0, *fresh()[:2]) == (0, 0, 0, 0, -1)
    # an incomplete frame is "need more data", even if its type and length disagree
    data = u(20, 2) + delete(1)
    assert itch.decode_chunk(data, 0, 0, *fresh()[:2]) == (0, 0, 0, 0, 0)


def test_status_minus_2_zero_prefix():
    data = DATA[:OFFSETS[2]] + b"\x00\x00" + DATA[OFFSETS[2]:]
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, 0, 0, events, counts) == (OFFSETS[2], 1, 2, 0, -2)
    assert itch.decode_chunk(b"\x00\x00", 0, 0, events, counts, final=False) == (0, 0, 0, 0, -2)


def test_starting_mid_buffer():
    events, counts, _ = fresh()
    assert itch.decode_chunk(DATA, OFFSETS[4], 0, events, counts, seq=4) == (len(DATA), 1, 2, 0,
                                                                            0)
    assert events[0].tolist() == row(action=DELETE, order_id=1, sequence=4)


# -- decode_chunk: MoldUDP64 ---------------------------------------------------------------

def test_mold_packets_heartbeats_end_of_session():
    p1 = mold(10, add(1), add(2), delete(1))
    hb = mold(13, count=0)
    p2 = mold(13, system("C"))
    eos = mold(14, count=0xFFFF)
    data = p1 + hb + p2 + eos
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, 0, 1, events, counts, mold_next=10) == (len(data), 3, 4, 0, 0)
    assert events[:3][["action", "order_id", "sequence"]].tolist() == [
        (ADD, 1, 0), (ADD, 2, 1), (DELETE, 1, 2)]
    assert counted(counts) == {"A": 2, "D": 1, "S": 1}   # heartbeats are not ITCH messages
    # -1 accepts any first sequence number
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, 0, 1, events, counts) == (len(data), 3, 4, 0, 0)


def test_mold_gap_is_status_minus_5_at_the_packet():
    p1 = mold(10, add(1), add(2))
    p2 = mold(13, delete(1))          # expected 12
    data = p1 + p2
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, 0, 1, events, counts, mold_next=9) == (0, 0, 0, 0, -5)
    assert itch.decode_chunk(data, 0, 1, events, counts, mold_next=10) == (len(p1), 2, 2, 0, -5)
    # the expectation is tracked inside a call even when it started from -1
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, 0, 1, events, counts) == (len(p1), 2, 2, 0, -5)
    # restart at the gap with -1 to tolerate it
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, len(p1), 1, events, counts, seq=2) == (len(data), 1, 1, 0, 0)
    assert events[0]["sequence"] == 2
    # heartbeats carry the next expected number and are checked too
    data = p1 + mold(11, count=0)
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, 0, 1, events, counts) == (len(p1), 2, 2, 0, -5)
    data = p1 + mold(12, count=0) + mold(12, count=0xFFFF) + mold(12, delete(2))
    assert itch.decode_chunk(data, 0, 1, *fresh()[:2]) == (len(data), 3, 3, 0, 0)
    # the sequence is checked once the header is there, before the blocks are complete
    data = p1 + mold(99, delete(1))[:-5]
    assert itch.decode_chunk(data, 0, 1, *fresh()[:2]) == (len(p1), 2, 2, 0, -5)


def test_mold_sequence_extremes():
    top = 2**64 - 1
    data = mold(top, add(1)) + mold(0, count=0)   # top + 1 overflows: no packet can follow
    events, counts, _ = fresh()
    assert itch.decode_chunk(data, 0, 1, events, counts, mold_next=top) == (58, 1, 1, 0, -5)
    assert itch.decode_chunk(data, 58, 1, events, counts, mold_next=0) == (len(data), 0, 0, 0,
                                                                          0)
    with pytest.raises(ValueError, match="mold_next"):
        itch.decode_chunk(data, 0, 1, events, counts, mold_next=2**64)


def test_sequence_numbers_wrap_at_2_64():
    events, counts, _ = fresh()
    assert itch.decode_chunk(binfile(delete(1), delete(2)), 0, 0, events, counts,
                             seq=2**64 - 1) == (42, 2, 2, 0, 0)
    assert events[:2]["sequence"].tolist() == [2**64 - 1, 0]
    with pytest.raises(ValueError, match="seq"):
        itch.decode_chunk(b"", 0, 0, events, counts, seq=2**64)


def test_mold_packet_is_consumed_whole_or_not_at_all():
    p1 = mold(1, add(1))
    p2 = mold(2, add(2), delete(1), delete(2))
    data = p1 + p2
    for cut in range(len(p1) + 1, len(data)):
        for final, status in ((False, 0), (True, -3)):
            events, counts, _ = fresh()
            got = itch.decode_chunk(data[:cut], 0, 1, events, counts, final=final)
            assert got == (len(p1), 1, 1, 0, status), (cut, final)
            assert counted(counts) == {"A": 1}
    # capacity for the whole packet, or stop before it
    events, counts, _ = fresh(3)
    assert itch.decode_chunk(data, 0, 1, events, counts) == (len(p1), 1, 1, 0, 1)
    events, counts, _ = fresh(4)
    assert itch.decode_chunk(data, 0, 1, events, counts) == (len(data), 4, 4, 0, 0)
    # directory capacity likewise
    p3 = mold(5, directory_msg(1, "A"), directory_msg(2, "B"))
    events, counts, directory = fresh(8, 1)
    assert itch.decode_chunk(data + p3, 0, 1, events, counts, directory=directory) == (
        len(data), 4, 4, 0, 2)
    # both short: events are checked first
    p4 = mold(1, directory_msg(1, "A"), add(1))
    events, counts, directory = fresh(0, 0)
    assert itch.decode_chunk(p4, 0, 1, events, counts, directory=directory) == (0, 0, 0, 0, 1)


def test_mold_block_errors_point_at_the_packet():
    p1 = mold(1, add(1))
    for bad_packet, status in ((mold(2, add(2), b"") , -2),
                               (mold(2, add(2), delete(1) + b"x", delete(2)), -1),
                               (mold(2, add(2), delete(1) + b"x"), -1)):
        data = p1 + bad_packet
        events, counts, _ = fresh()
        assert itch.decode_chunk(data, 0, 1, events, counts, final=True) == (len(p1), 1, 1, 0,
                                                                             status)
    # a block error comes before an incomplete later block (blocks are checked in order)
    data = p1 + mold(2, delete(1) + b"x", add(3))[:-4]
    assert itch.decode_chunk(data, 0, 1, *fresh()[:2]) == (len(p1), 1, 1, 0, -1)
    # an incomplete header, and a packet whose first block prefix is missing
    assert itch.decode_chunk(p1 + b"SESSION", 0, 1, *fresh()[:2]) == (len(p1), 1, 1, 0, 0)
    assert itch.decode_chunk(p1 + mold(2, count=1), 0, 1, *fresh()[:2], final=True) == (
        len(p1), 1, 1, 0, -3)


def test_mold_unknown_type_blocks_are_counted():
    data = mold(1, b"z\x00\x07", add(1))
    (pos_after, n_events, n_messages, _, status), events, counts = decode(data, 1)
    assert (pos_after, n_events, n_messages, status) == (len(data), 1, 2, 0)
    assert events[0]["instrument"] == 1 and events[0]["sequence"] == 1
    assert counted(counts) == {"z": 1, "A": 1}


# -- decode_chunk: SoupBinTCP --------------------------------------------------------------

def test_soup_skips_other_packets_uncounted():
    data = (soup(b"A", b"SESSION001" + b" " * 19 + b"1") + soup_s(add(1)) + soup(b"H")
            + soup(b"+", b"debug") + soup(b"J", b"A") + soup_s(delete(1)) + soup(b"L", bytes(46))
            + soup(b"U", b"x") + soup(b"R") + soup(b"O") + soup(b"?", b"??") + soup(b"Z"))
    (pos_after, n_events, n_messages, _, status), events, counts = decode(data, 2)
    assert (pos_after, n_events, n_messages, status) == (len(data), 2, 2, 0)
    assert events[["action", "order_id", "sequence"]].tolist() == [(ADD, 1, 0), (DELETE, 1, 1)]
    assert counted(counts) == {"A": 1, "D": 1}


def test_soup_errors_and_truncation():
    good = soup_s(add(1))
    cases = [
        (good + b"\x00\x00" + soup_s(add(2)), False, (len(good), 1, 1, 0, -2)),
        (good + soup(b"S"), False, (len(good), 1, 1, 0, -2)),   # S with no ITCH message
        (good + soup(b"S", delete(1) + b"x"), False, (len(good), 1, 1, 0, -1)),
        (good + soup_s(delete(1))[:-1], False, (len(good), 1, 1, 0, 0)),
        (good + soup_s(delete(1))[:-1], True, (len(good), 1, 1, 0, -3)),
        (good + b"\x00", True, (len(good), 1, 1, 0, -3)),
        (good + soup(b"H")[:2], True, (len(good), 1, 1, 0, -3)),
    ]
    for data, final, expected in cases:
        events, counts, _ = fresh()
        assert itch.decode_chunk(data, 0, 2, events, counts, final=final) == expected, data
    events, counts, _ = fresh(0)
    assert itch.decode_chunk(soup(b"H") + good, 0, 2, events, counts) == (3, 0, 0, 0, 1)


# -- decode_chunk: buffers and arguments ---------------------------------------------------

def test_any_buffer_type(tmp_path):
    expected = decode(DATA)
    path = tmp_path / "d.itch"
    path.write_bytes(DATA)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buffers = [bytearray(DATA), memoryview(DATA), np.frombuffer(DATA, np.uint8), mm]
        for buf in buffers:
            got = decode(buf)
            assert got[0] == expected[0]
            assert got[1].tolist() == expected[1].tolist()
        del buffers, buf


def test_argument_errors_before_anything_is_decoded():
    events, counts, _ = fresh(4)
    good = {"locate_map": None, "directory": None, "seq": 0}
    bad_calls = [
        ((DATA, 0, 3, events, counts), {}, ValueError, "framing"),
        ((DATA, 0, -1, events, counts), {}, ValueError, "framing"),
        ((DATA, 0, 1.0, events, counts), {}, TypeError, "framing"),
        ((DATA, -1, 0, events, counts), {}, ValueError, "pos"),
        ((DATA, len(DATA) + 1, 0, events, counts), {}, ValueError, "pos"),
        ((DATA, 0, 0, np.zeros(4, np.float64), counts), {}, ArrayError, "events"),
        ((DATA, 0, 0, np.zeros((2, 2), EVENT_DTYPE), counts), {}, ArrayError, "events"),
        ((DATA, 0, 0, np.zeros(8, EVENT_DTYPE)[::2], counts), {}, ArrayError, "events"),
        ((DATA, 0, 0, list(events), counts), {}, ArrayError, "events"),
        ((DATA, 0, 0, events, np.zeros(255, np.uint64)), {}, ArrayError, "counts"),
        ((DATA, 0, 0, events, np.zeros(256, np.int64)), {}, ArrayError, "counts"),
        ((DATA, 0, 0, events, np.zeros((256, 1), np.uint64)), {}, ArrayError, "counts"),
        ((DATA, 0, 0, events, counts), {"locate_map": np.zeros(65536, np.int64)}, ArrayError,
         "locate_map"),
        ((DATA, 0, 0, events, counts), {"locate_map": np.zeros(65535, np.int32)}, ArrayError,
         "locate_map"),
        ((DATA, 0, 0, events, counts), {"directory": np.zeros(4, np.int32)}, ArrayError,
         "directory"),
        ((DATA, 0, 0, events, counts), {"directory": np.zeros((2, 2), np.int64)}, ArrayError,
         "directory"),
        ((DATA, 0, 0, events, counts), {"seq": -1}, ValueError, "seq"),
        ((DATA, 0, 0, events, counts), {"mold_next": -2}, ValueError, "mold_next"),
        ((DATA, True, 0, events, counts), {}, TypeError, "pos"),
        ((DATA, 0, 0, np.zeros(4, EVENT_DTYPE)[::-1], counts), {}, ArrayError, "events"),
        ((np.zeros(8, np.uint8)[::2], 0, 0, events, counts), {}, ValueError, "buf"),
        ((12345, 0, 0, events, counts), {}, TypeError, "buf"),
    ]
    for args, kwargs, exc, what in bad_calls:
        with pytest.raises(exc, match=what):
            itch.decode_chunk(*args, **{**good, **kwargs})
    # nothing was written by any failed call
    assert not counts.any()
    assert events.tolist() == fresh(4)[0].tolist()
    assert issubclass(ArrayError, TypeError) and issubclass(ArrayError, ValueError)


def test_strided_counts_locate_map_and_directory_are_fine():
    # the contract asks events to be C-contiguous; the other arrays only 1-D
    counts = np.zeros(512, np.uint64)[::2]
    directory = np.full(8, -1, np.int64)[::2]
    locate_map = np.full(2 * 65536, -1, np.int32)[::2]
    locate_map[1] = 5
    events = np.zeros(8, EVENT_DTYPE)
    result = decode_all(DATA, 0, events, counts, directory, locate_map=locate_map)
    assert result == (len(DATA), 3, 6, 1, 0)
    assert counted(counts) == {"S": 2, "A": 2, "R": 1, "D": 1}
    assert directory.tolist() == [OFFSETS[2] + 2, -1, -1, -1]
    assert events[:3]["instrument"].tolist() == [5, 5, 5]
    unaligned = np.frombuffer(memoryview(bytearray(2 * 64 + 1))[1:], EVENT_DTYPE)
    with pytest.raises(ArrayError, match="events"):
        itch.decode_chunk(DATA, 0, 0, unaligned, counts)
    read_only = np.zeros(256, np.uint64)
    read_only.flags.writeable = False
    with pytest.raises(ArrayError, match="counts must be writ"):
        itch.decode_chunk(DATA, 0, 0, events, read_only)


# -- decode_chunk: resumption and fuzzing --------------------------------------------------

def decode_in_pieces(data, framing, cuts, capacity):
    """Feed ``data`` in pieces cut at ``cuts``, resuming with the returned position and seq."""
    out_events, out_dirs, counts = [], [], np.zeros(256, np.uint64)
    buf, seq, base = b"", 0, 0
    edges = [*sorted(set(cuts)), len(data)]
    start = 0
    for i, edge in enumerate(edges):
        buf += data[start:edge]
        start = edge
        final = i == len(edges) - 1
        while True:
            events = np.zeros(capacity, EVENT_DTYPE)
            directory = np.zeros(capacity, np.int64)
            pos_after, n_ev, n_msg, n_dir, status = itch.decode_chunk(
                buf, 0, framing, events, counts, directory=directory, seq=seq, final=final)
            out_events.extend(events[:n_ev].tolist())
            out_dirs.extend((directory[:n_dir] + base).tolist())
            seq += n_msg
            buf = buf[pos_after:]
            base += pos_after
            if status in (1, 2):
                continue
            assert status == 0
            break
    assert buf == b""
    return out_events, out_dirs, counts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(framing=st.sampled_from([0, 1, 2]),
       cuts=st.lists(st.integers(0, 3000), max_size=8),
       capacity=st.integers(1, 6))
def test_pieces_and_small_capacities_give_the_same_result(framing, cuts, capacity):
    messages = [*ALL_RAW, *(m for m, _ in MAPPING)]
    if framing == 0:
        data = binfile(*messages)
    elif framing == 1:
        # packets of at most 3 messages, so every packet fits a capacity of 3... and a smaller
        # capacity must still make progress: use one message per packet when capacity < 3
        per = 3 if capacity >= 3 else 1
        data = b"".join(mold(1 + i, *messages[i:i + per]) for i in range(0, len(messages), per))
    else:
        data = b"".join(soup_s(m) + soup(b"H") for m in messages)
    cuts = [c for c in cuts if c < len(data)]
    whole = decode_in_pieces(data, framing, [], 64)
    pieces = decode_in_pieces(data, framing, cuts, capacity)
    assert pieces[0] == whole[0]
    assert pieces[1] == whole[1]
    assert pieces[2].tolist() == whole[2].tolist()
    assert len(whole[0]) == len(MAPPING) + 10   # + A C D E F H P Q U X of ALL_RAW


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), framing=st.sampled_from([0, 1, 2]),
       final=st.booleans(), capacity=st.integers(0, 4))
def test_fuzzed_bytes_give_a_status_never_a_crash(data, framing, final, capacity):
    events, counts, directory = fresh(capacity, capacity)
    pos_after, n_ev, n_msg, n_dir, status = itch.decode_chunk(
        data, 0, framing, events, counts, directory=directory, final=final)
    assert status in (0, 1, 2, -1, -2, -3, -5)
    assert 0 <= pos_after <= len(data)
    assert n_ev <= capacity and n_dir <= capacity and int(counts.sum()) == n_msg
    if status == 0:
        assert pos_after == len(data) or not final
    try:
        list(itch.iter_messages(data, framing))
    except DecodeError:
        pass


# -- real data --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ritch_fixed() -> bytes:
    with gzip.open(RITCH_FIXED) as f:
        return f.read()


@pytest.fixture(scope="module")
def ritch_events(ritch_fixed):
    events, counts, directory = fresh(13_000, 8)
    result = decode_all(ritch_fixed, 0, events, counts, directory, final=True)
    return result, events[:result[1]], counts, directory[:result[3]]


RITCH_COUNTS = {"S": 6, "R": 3, "H": 3, "A": 4997, "F": 3, "E": 198, "X": 45, "D": 1745,
                "U": 12, "P": 5000}


def test_ritch_lenfixed_counts_symbols_timestamps(ritch_fixed, ritch_events):
    (pos_after, n_events, n_messages, n_dir, status), _, counts, directory = ritch_events
    assert sum(RITCH_COUNTS.values()) == 12_012
    assert (pos_after, n_messages, n_dir, status) == (len(ritch_fixed), 12_012, 3, 0)
    assert n_events == 12_012 - 6 - 3   # all but S and R
    assert counted(counts) == RITCH_COUNTS
    walked = list(itch.iter_messages(ritch_fixed))
    assert collections.Counter(m.type for _, _, m in walked) == RITCH_COUNTS
    symbols = {m.locate: m.stock for _, _, m in walked if m.type == "R"}
    assert symbols == {1: "ALC", 2: "BOB", 3: "CHAR"}
    assert [itch.stock_directory(ritch_fixed[o:o + 39])["symbol"] for o in directory] == [
        "ALC", "BOB", "CHAR"]
    stamps = [m.timestamp for _, _, m in walked]
    assert stamps[0] == 11_202_475_298_710 and stamps[-1] == 68_698_845_099_321
    assert stamps == sorted(stamps)


def expected_event(message, number):
    """The contract's mapping table, applied to a parsed message (independent of the twin)."""
    t = message.type
    sides = {"B": 1, "S": 2}
    base = {"ts": message.timestamp, "instrument": message.locate, "sequence": number}
    if t in "AF":
        return row(**base, action=ADD, side=sides.get(message.side, 0), price=message.price,
                   qty=message.shares, order_id=message.order_ref)
    if t == "E":
        return row(**base, action=EXECUTE, qty=message.executed_shares,
                   order_id=message.order_ref)
    if t == "C":
        return row(**base, action=EXECUTE, qty=message.executed_shares,
                   order_id=message.order_ref, price=message.execution_price,
                   flags=NON_PRINTABLE if message.printable == "N" else 0)
    if t == "X":
        return row(**base, action=REDUCE, qty=message.canceled_shares, order_id=message.order_ref)
    if t == "D":
        return row(**base, action=DELETE, order_id=message.order_ref)
    if t == "U":
        return row(**base, action=REPLACE, order_id=message.original_ref,
                   new_order_id=message.new_ref, qty=message.shares, price=message.price)
    if t == "P":
        return row(**base, action=TRADE, side=sides.get(message.side, 0), flags=HIDDEN,
                   qty=message.shares, price=message.price, order_id=message.order_ref)
    if t == "Q":
        qty = message.shares - 2**64 if message.shares >= 2**63 else message.shares
        return row(**base, action=TRADE, flags=CROSS, qty=qty, price=message.cross_price)
    if t == "H":
        flags = {"H": HALTED, "P": HALTED, "Q": QUOTING}.get(message.trading_state, 0)
        return row(**base, action=STATUS, flags=flags)
    return None


def test_ritch_events_match_the_mapping_table(ritch_fixed, ritch_events):
    _, events, _, _ = ritch_events
    expected = [e for off, n, m in itch.iter_messages(ritch_fixed)
                if (e := expected_event(m, n)) is not None]
    assert events.tolist() == expected


def test_ritch_original_zero_prefixes():
    with gzip.open(RITCH) as f:
        data = f.read()
    assert data[:3] == b"\x00\x00S"
    events, counts, _ = fresh(16)
    assert itch.decode_chunk(data, 0, 0, events, counts, seq=0) == (0, 0, 0, 0, -2)
    assert not counts.any()
    with pytest.raises(DecodeError, match=r"zero length at byte offset 0 \(message 0\)"):
        next(itch.iter_messages(data))


def test_ritch_dangling_references_in_a_bookset(ritch_events):
    _, events, _, _ = ritch_events
    bs = BookSet(on_error="skip")
    for symbol in ("SPARE", "ALC", "BOB", "CHAR"):   # instrument = locate: id 0 is unused
        bs.add_instrument(symbol, price_decimals=4)
    applied = bs.apply(events)
    errors = bs.errors
    assert errors == {**dict.fromkeys(errors, 0), "unknown_order": 117}
    assert set(ERROR_KINDS) <= set(errors)
    assert applied == len(events) - 117
    # which messages refer to unknown orders: one event at a time, from scratch
    bs = BookSet(on_error="skip")
    for symbol in ("SPARE", "ALC", "BOB", "CHAR"):
        bs.add_instrument(symbol, price_decimals=4)
    by_action = collections.Counter()
    for i in range(len(events)):
        if bs.apply(events[i:i + 1]) == 0:
            by_action[int(events[i]["action"])] += 1
    assert by_action == {DELETE: 94, EXECUTE: 18, REDUCE: 3, REPLACE: 2}
    assert bs.errors["unknown_order"] == 117


def test_meatpy_sample_and_its_book():
    data = MEATPY.read_bytes()
    walked = list(itch.iter_messages(data))
    assert len(walked) == 20
    assert collections.Counter(m.type for _, _, m in walked) == {
        "S": 6, "R": 2, "A": 7, "E": 2, "X": 1, "D": 1, "P": 1}
    assert [itch.stock_directory(m)["symbol"] for _, _, m in walked if m.type == "R"] == [
        "MEAT", "PYTH"]
    assert [m.event_code for _, _, m in walked if m.type == "S"] == list("OSQMEC")

    lm = np.full(65536, -1, np.int32)
    lm[1], lm[2] = 0, 1
    events, counts, _ = fresh(32)
    pos_after, n_events, n_messages, _, status = itch.decode_chunk(
        data, 0, 0, events, counts, locate_map=lm, final=True)
    assert (pos_after, n_events, n_messages, status) == (len(data), 12, 20, 0)
    bs = BookSet()
    assert bs.add_instrument("MEAT", price_decimals=4) == 0
    assert bs.add_instrument("PYTH", price_decimals=4) == 1
    assert bs.apply(events[:n_events]) == 12
    meat, pyth = bs[0], bs[1]
    assert meat.best_bid() == (999500, 50)
    assert meat.best_ask() == (1000500, 100)
    assert meat.order_count == 3 and pyth.order_count == 1
    assert pyth.best_bid() == (425000, 50) and pyth.best_ask() is None
