"""NASDAQ TotalView-ITCH 5.0: the readable pure-Python twin of the compiled decoder.

This module is the reference the compiled kernel ``fastbook.codecs._itch50`` is
checked against, and the fallback when ``FASTBOOK_NO_EXTENSIONS=1``. It is
written to be read next to the specification (``specs/itch.md`` section 1 and
the ``decode_chunk`` contract), not to be fast: one ``struct`` call per field
group, plain loops, no cleverness.

It offers two levels:

* **Exploration.** :func:`parse_message` turns one message into a
  :class:`typing.NamedTuple` with the specification's field names in
  snake_case; :func:`iter_messages` walks a whole buffer in any of the three
  framings (BinaryFILE, MoldUDP64, SoupBinTCP); :func:`stock_directory` turns
  an ``R`` message into a plain dict.
* **The oracle.** :func:`decode_chunk` writes normalized book events
  (``fastbook.events.EVENT_DTYPE``) into a caller's array, exactly as the
  compiled kernel does; differential tests compare the two element by
  element. Its docstring lists how this twin reads the places where the
  shared contract leaves room; the kernel must read them the same way.

Every message begins with the same 11-byte header (type, stock locate,
tracking number, 6-byte timestamp in ns since midnight), so every message
tuple begins with ``type, locate, tracking, timestamp``. Alpha fields are
ASCII ``str`` with the padding spaces on the right removed; prices are ``int``
at 4 implied decimals (8 for the ``V`` message); share counts are ``int``.

>>> from fastbook.codecs._pyitch50 import parse_message
>>> def be(value, size):
...     return value.to_bytes(size, "big")
>>> msg = (b"A" + be(1, 2) + be(0, 2) + be(34_200_000_000_000, 6)   # header
...        + be(7, 8) + b"B" + be(100, 4) + b"MEAT    " + be(999_500, 4))
>>> m = parse_message(msg)
>>> (m.type, m.locate, m.timestamp, m.order_ref, m.side, m.shares, m.stock, m.price)
('A', 1, 34200000000000, 7, 'B', 100, 'MEAT', 999500)
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from fastbook._checks import bytes_at, check_int, check_kernel_array
from fastbook._vocab import NO_SIDE, Action, Flags
from fastbook.codecs._itch50wire import BODIES, HEADER, MESSAGE_LENGTHS
from fastbook.codecs._itchwire import (
    FRAMING_BINARYFILE,
    FRAMING_MOLDUDP64,
    FRAMING_SOUPBINTCP,
    MOLD_END_OF_SESSION,
    MOLD_HEADER,
    MOLD_HEARTBEAT,
    SIDES,
    STATUS_DIRECTORY_FULL,
    STATUS_EVENTS_FULL,
    STATUS_GAP,
    STATUS_OK,
    STATUS_TRUNCATED,
    STATUS_WRONG_LENGTH,
    STATUS_ZERO_LENGTH,
    U16,
    UINT64,
    check_framing,
    length_by_byte,
    message_type,
    signed64,
)
from fastbook.errors import ArrayError, DecodeError
from fastbook.events import EVENT_DTYPE

__all__ = [
    "COMPILED",
    "FRAMING_BINARYFILE",
    "FRAMING_MOLDUDP64",
    "FRAMING_SOUPBINTCP",
    "MESSAGE_LENGTHS",
    "STATUS_DIRECTORY_FULL",
    "STATUS_EVENTS_FULL",
    "STATUS_GAP",
    "STATUS_OK",
    "STATUS_TRUNCATED",
    "STATUS_WRONG_LENGTH",
    "STATUS_ZERO_LENGTH",
    "AddOrder",
    "AddOrderMpid",
    "BrokenTrade",
    "CrossTrade",
    "DirectListingCapitalRaise",
    "IpoQuotingPeriodUpdate",
    "LuldAuctionCollar",
    "MarketParticipantPosition",
    "MwcbDeclineLevel",
    "MwcbStatus",
    "Noii",
    "OperationalHalt",
    "OrderCancel",
    "OrderDelete",
    "OrderExecuted",
    "OrderExecutedWithPrice",
    "OrderReplace",
    "RegShoRestriction",
    "RetailPriceImprovement",
    "StockDirectory",
    "StockTradingAction",
    "SystemEvent",
    "Trade",
    "UnknownMessage",
    "decode_chunk",
    "iter_messages",
    "parse_message",
    "stock_directory",
]

#: False: this is the pure-Python twin (the compiled kernel says True).
COMPILED = False

# The framing codes and the statuses of decode_chunk (FRAMING_*, STATUS_*) are the ones
# both ITCH-family kernels share: codecs/_itchwire.py defines them.
_FRAMING_NAMES = {FRAMING_BINARYFILE: "BinaryFILE", FRAMING_MOLDUDP64: "MoldUDP64",
                  FRAMING_SOUPBINTCP: "SoupBinTCP"}

# The same table indexed by the type byte (0 = unknown type).
_LENGTH_BY_BYTE = length_by_byte(MESSAGE_LENGTHS)


# -- message tuples -------------------------------------------------------------------------
# One class per type. Field order is the wire order; names are the specification's.

class SystemEvent(NamedTuple):
    """``S`` System Event (locate 0). ``event_code``: O S Q M E C."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    event_code: str


class StockDirectory(NamedTuple):
    """``R`` Stock Directory: the locate-to-symbol mapping and the stock's attributes."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    market_category: str
    financial_status: str
    round_lot_size: int
    round_lots_only: str
    issue_classification: str
    issue_sub_type: str
    authenticity: str
    short_sale_threshold: str
    ipo_flag: str
    luld_reference_price_tier: str
    etp_flag: str
    etp_leverage_factor: int
    inverse_indicator: str


class StockTradingAction(NamedTuple):
    """``H`` Stock Trading Action. ``trading_state``: H halted, P paused, Q quoting, T trading."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    trading_state: str
    reserved: str
    reason: str


class RegShoRestriction(NamedTuple):
    """``Y`` Reg SHO short sale price test restriction. ``action``: 0, 1 or 2."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    action: str


class MarketParticipantPosition(NamedTuple):
    """``L`` Market Participant Position."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    mpid: str
    stock: str
    primary_mm: str
    mm_mode: str
    participant_state: str


class MwcbDeclineLevel(NamedTuple):
    """``V`` MWCB Decline Level. The three levels are Price(8): 8 implied decimals."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    level_1: int
    level_2: int
    level_3: int


class MwcbStatus(NamedTuple):
    """``W`` MWCB Status. ``breached_level``: 1, 2 or 3."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    breached_level: str


class IpoQuotingPeriodUpdate(NamedTuple):
    """``K`` IPO Quoting Period Update. ``release_time`` is in seconds since midnight."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    release_time: int
    qualifier: str
    ipo_price: int


class LuldAuctionCollar(NamedTuple):
    """``J`` LULD Auction Collar."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    reference_price: int
    upper_collar: int
    lower_collar: int
    extension_count: int


class OperationalHalt(NamedTuple):
    """``h`` Operational Halt. ``market_code``: Q B X; ``action``: H halted, T resumed."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    market_code: str
    action: str


class AddOrder(NamedTuple):
    """``A`` Add Order (no MPID attribution). ``side``: B or S."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    order_ref: int
    side: str
    shares: int
    stock: str
    price: int


class AddOrderMpid(NamedTuple):
    """``F`` Add Order with MPID attribution."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    order_ref: int
    side: str
    shares: int
    stock: str
    price: int
    attribution: str


class OrderExecuted(NamedTuple):
    """``E`` Order Executed, at the resting order's display price."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    order_ref: int
    executed_shares: int
    match_number: int


class OrderExecutedWithPrice(NamedTuple):
    """``C`` Order Executed With Price. ``printable``: Y, or N when printed later in a cross."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    order_ref: int
    executed_shares: int
    match_number: int
    printable: str
    execution_price: int


class OrderCancel(NamedTuple):
    """``X`` Order Cancel: a partial cancel, the order keeps its priority."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    order_ref: int
    canceled_shares: int


class OrderDelete(NamedTuple):
    """``D`` Order Delete: the whole remaining order leaves the book."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    order_ref: int


class OrderReplace(NamedTuple):
    """``U`` Order Replace: ``original_ref`` leaves, ``new_ref`` joins the back of its level."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    original_ref: int
    new_ref: int
    shares: int
    price: int


class Trade(NamedTuple):
    """``P`` Trade (non-cross) against a non-displayed order; no book effect."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    order_ref: int
    side: str
    shares: int
    stock: str
    price: int
    match_number: int


class CrossTrade(NamedTuple):
    """``Q`` Cross Trade. ``shares`` is 64-bit; ``cross_type``: O C H I."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    shares: int
    stock: str
    cross_price: int
    match_number: int
    cross_type: str


class BrokenTrade(NamedTuple):
    """``B`` Broken Trade."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    match_number: int


class Noii(NamedTuple):
    """``I`` Net Order Imbalance Indicator. Both share counts are 64-bit."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    paired_shares: int
    imbalance_shares: int
    imbalance_direction: str
    stock: str
    far_price: int
    near_price: int
    current_reference_price: int
    cross_type: str
    price_variation_indicator: str


class RetailPriceImprovement(NamedTuple):
    """``N`` Retail Price Improvement Indicator. ``interest_flag``: B S A N."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    interest_flag: str


class DirectListingCapitalRaise(NamedTuple):
    """``O`` Direct Listing with Capital Raise price discovery."""

    type: str
    locate: int
    tracking: int
    timestamp: int
    stock: str
    open_eligibility: str
    minimum_allowable_price: int
    maximum_allowable_price: int
    near_execution_price: int
    near_execution_time: int
    lower_collar: int
    upper_collar: int


class UnknownMessage(NamedTuple):
    """A message whose type byte is not an ITCH 5.0 type; ``raw`` is the whole message."""

    type: str
    raw: bytes


# The body layout of each type (codecs/_itch50wire.py, from specs/itch.md table 1.2) and the
# tuple class it is read into.
_CLASSES: dict[str, type] = {
    "S": SystemEvent, "R": StockDirectory, "H": StockTradingAction, "Y": RegShoRestriction,
    "L": MarketParticipantPosition, "V": MwcbDeclineLevel, "W": MwcbStatus,
    "K": IpoQuotingPeriodUpdate, "J": LuldAuctionCollar, "h": OperationalHalt, "A": AddOrder,
    "F": AddOrderMpid, "E": OrderExecuted, "C": OrderExecutedWithPrice, "X": OrderCancel,
    "D": OrderDelete, "U": OrderReplace, "P": Trade, "Q": CrossTrade, "B": BrokenTrade, "I": Noii,
    "N": RetailPriceImprovement, "O": DirectListingCapitalRaise,
}
_LAYOUTS: dict[str, tuple[type, str]] = {t: (cls, BODIES[t]) for t, cls in _CLASSES.items()}
_STRUCTS: dict[str, struct.Struct] = {t: struct.Struct(HEADER + body)
                                      for t, (_, body) in _LAYOUTS.items()}
# Self-check: every layout has exactly the table's length.
for _t, _s in _STRUCTS.items():
    assert _s.size == MESSAGE_LENGTHS[_t], (_t, _s.size)
del _t, _s
# Where the alpha fields ("s"/"c") sit among each type's unpacked values (after the
# header's five), so parse_message decodes just those. A count prefixes only "s" codes
# (one value each), so each code is one value: checked against the struct.
_ALPHA_AT: dict[str, tuple[int, ...]] = {}
for _t, (_, _body) in _LAYOUTS.items():
    _codes = re.findall(r"\d*([a-zA-Z])", _body)
    assert len(_codes) + 5 == len(_STRUCTS[_t].unpack(bytes(_STRUCTS[_t].size))), _t
    _ALPHA_AT[_t] = tuple(5 + i for i, code in enumerate(_codes) if code in "sc")
del _t, _body, _codes


def _alpha(raw: bytes, field: str, type_char: str) -> str:
    try:
        return raw.decode("ascii").rstrip(" ")
    except UnicodeDecodeError:
        raise DecodeError(f"ITCH {type_char!r} message: field {field} is not ASCII: {raw!r}") \
            from None


def parse_message(msg: bytes | bytearray | memoryview, /, *, allow_unknown: bool = False) -> Any:
    """Parse one ITCH 5.0 message (type byte first, no length prefix) into its NamedTuple.

    Parameters
    ----------
    msg : bytes-like
        Exactly one message.
    allow_unknown : bool, default False
        Return an :class:`UnknownMessage` for a type byte that is not an ITCH 5.0 type
        instead of raising (``iter_messages`` does this, since unknown types are skipped
        by their length).

    Returns
    -------
    NamedTuple
        The class of the type (``AddOrder`` for ``A``, ...), fields in wire order.

    Raises
    ------
    DecodeError
        An empty message, a known type whose length is not the specification's (the
        message names the type and both lengths), an unknown type (unless
        ``allow_unknown``), or a non-ASCII alpha field.

    Examples
    --------
    >>> parse_message(b"S\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x2aO")
    SystemEvent(type='S', locate=0, tracking=0, timestamp=42, event_code='O')
    """
    raw = bytes(msg)
    type_char = message_type(raw, MESSAGE_LENGTHS, _LENGTH_BY_BYTE, protocol="ITCH",
                             version="ITCH 5.0", authority="the specification",
                             allow_unknown=allow_unknown)
    if type_char is None:
        return UnknownMessage(chr(raw[0]), raw)
    cls, _ = _LAYOUTS[type_char]
    values = list(_STRUCTS[type_char].unpack(raw))
    for k in _ALPHA_AT[type_char]:
        values[k] = _alpha(values[k], cls._fields[k - 1], type_char)   # value 5 is field 4
    return cls(type_char, values[1], values[2], (values[3] << 32) | values[4], *values[5:])


def stock_directory(msg: Any, /) -> dict[str, Any]:
    """The instrument attributes of an ``R`` (stock directory) message, as a plain dict.

    Parameters
    ----------
    msg : StockDirectory or bytes-like
        A parsed ``R`` message or its raw bytes.

    Returns
    -------
    dict
        ``locate``, ``symbol``, ``round_lot``, ``market_category``, ``financial_status``,
        ``round_lots_only`` (bool), ``issue_classification``, ``issue_sub_type``,
        ``authenticity``, ``short_sale_threshold``, ``ipo_flag``,
        ``luld_reference_price_tier``, ``etp_flag``, ``etp_leverage_factor``,
        ``inverse`` (bool) and ``timestamp``.

    Raises
    ------
    DecodeError
        When ``msg`` is not an ``R`` message.
    """
    if not isinstance(msg, StockDirectory):
        if isinstance(msg, tuple):
            raise DecodeError(f"stock_directory needs an 'R' message, got {type(msg).__name__}")
        msg = parse_message(msg, allow_unknown=True)
        if not isinstance(msg, StockDirectory):
            raise DecodeError(f"stock_directory needs an 'R' message, got type {msg.type!r}")
    return {
        "locate": msg.locate,
        "symbol": msg.stock,
        "round_lot": msg.round_lot_size,
        "market_category": msg.market_category,
        "financial_status": msg.financial_status,
        "round_lots_only": msg.round_lots_only == "Y",
        "issue_classification": msg.issue_classification,
        "issue_sub_type": msg.issue_sub_type,
        "authenticity": msg.authenticity,
        "short_sale_threshold": msg.short_sale_threshold,
        "ipo_flag": msg.ipo_flag,
        "luld_reference_price_tier": msg.luld_reference_price_tier,
        "etp_flag": msg.etp_flag,
        "etp_leverage_factor": msg.etp_leverage_factor,
        "inverse": msg.inverse_indicator == "Y",
        "timestamp": msg.timestamp,
    }


# -- framing ---------------------------------------------------------------------------------
# _next_unit reads one framing unit: a BinaryFILE frame, a SoupBinTCP packet or a whole
# MoldUDP64 packet, which is consumed whole or not at all. It does not consume anything; it
# says what is there, in the order the contract checks things.

_INCOMPLETE = 1  # internal: the unit does not fit in the buffer yet


class _Unit(NamedTuple):
    status: int                     # 0 complete, _INCOMPLETE, or a negative status
    end: int                        # offset just past the unit (when complete)
    messages: list[tuple[int, int]]  # (offset of the type byte, length) per ITCH message
    mold_sequence: int              # MoldUDP64 packet sequence number, else -1
    mold_count: int                 # MoldUDP64 message count field, else 0
    error_at: int                   # offset of the offending length prefix (errors only)


def _check_message(buf: memoryview, offset: int, length: int) -> int:
    """0, or STATUS_ZERO_LENGTH / STATUS_WRONG_LENGTH for the message at ``offset``."""
    if length == 0:
        return STATUS_ZERO_LENGTH
    expected = _LENGTH_BY_BYTE[buf[offset]]
    if expected != 0 and expected != length:
        return STATUS_WRONG_LENGTH
    return 0


def _next_unit(buf: memoryview, p: int, framing: int, expected_sequence: int) -> _Unit:
    n = len(buf)
    if framing == FRAMING_BINARYFILE:
        if p + 2 > n:
            return _Unit(_INCOMPLETE, p, [], -1, 0, p)
        (length,) = U16.unpack_from(buf, p)
        if length == 0:
            return _Unit(STATUS_ZERO_LENGTH, p, [], -1, 0, p)
        if p + 2 + length > n:
            return _Unit(_INCOMPLETE, p, [], -1, 0, p)
        status = _check_message(buf, p + 2, length)
        return _Unit(status, p + 2 + length, [(p + 2, length)], -1, 0, p)

    if framing == FRAMING_SOUPBINTCP:
        if p + 2 > n:
            return _Unit(_INCOMPLETE, p, [], -1, 0, p)
        (length,) = U16.unpack_from(buf, p)   # counts the packet type byte and the payload
        if length == 0:
            return _Unit(STATUS_ZERO_LENGTH, p, [], -1, 0, p)
        if p + 2 + length > n:
            return _Unit(_INCOMPLETE, p, [], -1, 0, p)
        if buf[p + 2] != ord("S"):   # not sequenced data: skipped whole, not an ITCH message
            return _Unit(0, p + 2 + length, [], -1, 0, p)
        status = _check_message(buf, p + 3, length - 1)
        return _Unit(status, p + 2 + length, [(p + 3, length - 1)], -1, 0, p)

    # MoldUDP64
    if p + MOLD_HEADER.size > n:
        return _Unit(_INCOMPLETE, p, [], -1, 0, p)
    _, sequence, count = MOLD_HEADER.unpack_from(buf, p)
    if expected_sequence >= 0 and sequence != expected_sequence:
        return _Unit(STATUS_GAP, p, [], sequence, count, p)
    q = p + MOLD_HEADER.size
    messages: list[tuple[int, int]] = []
    if count != MOLD_HEARTBEAT and count != MOLD_END_OF_SESSION:
        for _ in range(count):
            if q + 2 > n:
                return _Unit(_INCOMPLETE, p, [], sequence, count, p)
            (length,) = U16.unpack_from(buf, q)
            if length == 0:
                return _Unit(STATUS_ZERO_LENGTH, p, [], sequence, count, q)
            if q + 2 + length > n:
                return _Unit(_INCOMPLETE, p, [], sequence, count, p)
            status = _check_message(buf, q + 2, length)
            if status:
                return _Unit(status, p, [], sequence, count, q)
            messages.append((q + 2, length))
            q += 2 + length
    return _Unit(0, q, messages, sequence, count, p)


def _next_expected(unit: _Unit) -> int:
    """The sequence number the MoldUDP64 packet after ``unit`` must carry."""
    if unit.mold_count in (MOLD_HEARTBEAT, MOLD_END_OF_SESSION):
        return unit.mold_sequence   # these carry the next expected number and no messages
    return unit.mold_sequence + unit.mold_count


def iter_messages(buf: Any, /, framing: int = FRAMING_BINARYFILE, *,
                  start: int = 0) -> Iterator[tuple[int, int, Any]]:
    """Walk every ITCH message of a buffer, for exploration and debugging.

    Parameters
    ----------
    buf : bytes-like
        The whole stream (bytes, bytearray, memoryview, mmap, numpy uint8 array).
    framing : int, default 0
        0 BinaryFILE (2-byte length + message), 1 MoldUDP64, 2 SoupBinTCP. MoldUDP64
        heartbeats and end-of-session packets and SoupBinTCP packets other than ``S`` carry
        no ITCH message and are skipped. MoldUDP64 sequence numbers are not checked.
    start : int, default 0
        Byte offset of the first frame.

    Yields
    ------
    (offset, message_number, message)
        ``offset`` is the byte offset of the message's type byte in ``buf`` (so
        ``buf[offset:offset + MESSAGE_LENGTHS[message.type]]`` is the message);
        ``message_number`` counts ITCH messages from 0 at ``start``; ``message`` is the
        parsed NamedTuple (:class:`UnknownMessage` for unknown types).

    Raises
    ------
    DecodeError
        A zero length prefix, a length that does not match the type, or a stream that ends
        inside a frame. The message names the byte offset of the frame (for MoldUDP64, of
        the packet) and the number of the message.

    Examples
    --------
    >>> frame = b"\\x00\\x0c" + b"S" + bytes(10) + b"O"
    >>> [(off, i, m.event_code) for off, i, m in iter_messages(frame + frame)]
    [(2, 0, 'O'), (16, 1, 'O')]
    """
    framing = check_framing(framing, _FRAMING_NAMES)
    view, p = bytes_at(buf, start, "start")
    number = 0
    name = _FRAMING_NAMES[framing]
    while p < len(view):
        unit = _next_unit(view, p, framing, -1)
        if unit.status == _INCOMPLETE:
            raise DecodeError(f"{name} stream truncated: the frame at byte offset {p} "
                              f"(message {number}) runs past the end of the buffer "
                              f"({len(view)} bytes)")
        if unit.status < 0:
            raise DecodeError(_describe_error(view, unit, framing, p, number))
        for off, length in unit.messages:
            yield off, number, parse_message(view[off:off + length], allow_unknown=True)
            number += 1
        p = unit.end


def _describe_error(view: memoryview, unit: _Unit, framing: int, p: int, number: int) -> str:
    """The DecodeError message for a unit with a negative status, starting at offset ``p``."""
    name = _FRAMING_NAMES[framing]
    where = f"byte offset {p} (message {number})"
    if framing == FRAMING_MOLDUDP64 and unit.error_at != p:
        where = f"byte offset {p} (the packet; its bad block is at {unit.error_at}), " \
                f"message {number}"
    if unit.status == STATUS_ZERO_LENGTH:
        return (f"{name}: zero length at {where}; the stream is not {name}-framed or is "
                f"corrupt (RITCH's sample files, for one, have all-zero length prefixes)")
    if unit.status == STATUS_WRONG_LENGTH:
        (length,) = U16.unpack_from(view, unit.error_at)
        type_offset = unit.error_at + 2
        if framing == FRAMING_SOUPBINTCP:
            length -= 1
            type_offset += 1
        type_byte = view[type_offset]
        return (f"{name}: the message at {where} has type {chr(type_byte)!r} and length "
                f"{length}, but that type's length is {_LENGTH_BY_BYTE[type_byte]}; the "
                f"stream is corrupt or not ITCH 5.0")
    return f"{name}: status {unit.status} at {where}"  # pragma: no cover - no other statuses


# -- decode_chunk: the oracle ----------------------------------------------------------------

_HALTED = int(Flags.HALTED)
_QUOTING = int(Flags.QUOTING)
_TRADING_STATE_FLAGS = {ord("H"): _HALTED, ord("P"): _HALTED, ord("Q"): _QUOTING}
# Types that emit one event each (when their locate is not dropped).
_EVENT_TYPES = frozenset(ord(t) for t in "AFECXDUPQH")
_R = ord("R")
_HEADER_STRUCT = struct.Struct(">xHHHI")   # locate, tracking, timestamp high, low


def _event_for(buf: memoryview, off: int, type_byte: int) -> tuple[int, int, int, int, int,
                                                                     int, int] | None:
    """(action, side, flags, price, qty, order_id, new_order_id) of a message, or None."""
    t = chr(type_byte)
    if t == "A" or t == "F":
        ref, side, shares, _, price = struct.unpack_from(">QcI8sI", buf, off + 11)
        return Action.ADD, SIDES.get(side[0], NO_SIDE), 0, price, shares, ref, 0
    if t == "E":
        ref, shares, _ = struct.unpack_from(">QIQ", buf, off + 11)
        return Action.EXECUTE, 0, 0, 0, shares, ref, 0
    if t == "C":
        ref, shares, _, printable, price = struct.unpack_from(">QIQcI", buf, off + 11)
        flags = int(Flags.NON_PRINTABLE) if printable == b"N" else 0
        return Action.EXECUTE, 0, flags, price, shares, ref, 0
    if t == "X":
        ref, shares = struct.unpack_from(">QI", buf, off + 11)
        return Action.REDUCE, 0, 0, 0, shares, ref, 0
    if t == "D":
        (ref,) = struct.unpack_from(">Q", buf, off + 11)
        return Action.DELETE, 0, 0, 0, 0, ref, 0
    if t == "U":
        ref, new_ref, shares, price = struct.unpack_from(">QQII", buf, off + 11)
        return Action.REPLACE, 0, 0, price, shares, ref, new_ref
    if t == "P":
        ref, side, shares, _, price, _ = struct.unpack_from(">QcI8sIQ", buf, off + 11)
        return Action.TRADE, SIDES.get(side[0], NO_SIDE), int(Flags.HIDDEN), price, shares, ref, 0
    if t == "Q":
        shares, _, price, _, _ = struct.unpack_from(">Q8sIQc", buf, off + 11)
        return Action.TRADE, 0, int(Flags.CROSS), price, signed64(shares), 0, 0
    if t == "H":
        (state,) = struct.unpack_from(">8sc", buf, off + 11)[1:]
        return Action.STATUS, 0, _TRADING_STATE_FLAGS.get(state[0], 0), 0, 0, 0, 0
    return None


def decode_chunk(buf: Any, pos: int, framing: int, events: Any, counts: Any, /, *,
                 locate_map: Any = None, directory: Any = None, seq: int = 0,
                 final: bool = False, mold_next: int = -1) -> tuple[int, int, int, int, int]:
    """Decode ITCH 5.0 messages from ``buf[pos:]`` into normalized events (the reference).

    The behaviour is the shared contract ``itch_decode_chunk.md``, which the compiled
    ``fastbook.codecs._itch50.decode_chunk`` follows too; a differential test compares
    the two output element by output element.

    Readings of the contract where it leaves room (the compiled kernel must match):

    1. SoupBinTCP packets other than ``S`` are not ITCH messages: they are skipped whole
       and NOT counted in ``counts`` (the "counts" section wins over the half sentence in
       the framing section that mentions ``counts[0]``).
    2. A SoupBinTCP ``S`` packet with no payload (length 1) is a zero-length ITCH
       message: status -2, like a zero BinaryFILE prefix.
    3. MoldUDP64 sequence numbers: ``mold_next`` (or, when it is -1, the first packet's
       own number) sets the expectation, and every packet consumed moves it to
       ``sequence + count`` (``sequence`` for heartbeats and end-of-session packets, which
       announce the next number), so a gap anywhere in the call is status -5, heartbeats
       included. The check is made as soon as the 20-byte packet header is in ``buf``,
       before the blocks are looked at.
    4. MoldUDP64 packet checks run in this order: header complete, sequence (-5), then
       each block in order (its prefix present, zero length -2, block complete, length
       matches its type -1), then capacity: events first (status 1), then directory
       (status 2), over the whole packet. Errors inside a packet report ``pos_after`` =
       the packet start.
    4a. When ``directory`` is given, the call also stops (status 2) right after consuming a
       framing unit that contained an ``R``, so the caller can put the new locate into
       ``locate_map`` before any later message of it is decoded.
    5. "Would emit an event" takes ``locate_map`` into account: a message whose locate is
       dropped needs no event capacity, so it is consumed even when ``events`` is full.
       Every negative ``locate_map`` value drops (not only -1).
    6. ``n_directory`` is the number of offsets written to ``directory``: 0 when
       ``directory`` is None.
    7. Argument checks, to the letter of the contract: ``buf`` must be C-contiguous;
       ``events`` 1-D, C-contiguous (and aligned); ``counts``, ``locate_map`` and
       ``directory`` 1-D, of any stride; the outputs (``events``, ``counts``,
       ``directory``) writable; ``pos`` and ``seq`` must be ints (bools are
       refused), ``seq`` below 2**64; ``mold_next`` must be an int from -1 to 2**64 - 1
       (ValueError otherwise). The array errors are :class:`fastbook.ArrayError` (both a
       TypeError and a ValueError).
    8. ``sequence`` of an event is ``(seq + n) mod 2**64`` (the field is uint64). A
       MoldUDP64 expectation past 2**64 - 1 (``sequence + count`` overflowing) matches no
       packet: the next packet is a gap.

    Parameters
    ----------
    buf : bytes-like
        Read only, never copied.
    pos : int
        Byte offset of the first frame, ``0 <= pos <= len(buf)``.
    framing : int
        0 BinaryFILE, 1 MoldUDP64, 2 SoupBinTCP.
    events : numpy.ndarray of EVENT_DTYPE
        Output rows, written from index 0; its length is the capacity of this call.
    counts : numpy.ndarray of uint64, length 256
        ``counts[type byte]`` is incremented for every ITCH message consumed.
    locate_map : numpy.ndarray of int32, length 65536, optional
        Instrument id per stock locate; negative drops the locate's events.
    directory : numpy.ndarray of int64, optional
        Receives the byte offset of the type byte of every ``R`` message consumed.
    seq : int, default 0
        Message number of the first message consumed.
    final : bool, default False
        No bytes follow ``buf``: an incomplete trailing frame is status -3, not 0.
    mold_next : int, default -1
        MoldUDP64: the sequence number the first packet must carry (-1: any).

    Returns
    -------
    (pos_after, n_events, n_messages, n_directory, status)
        ``status`` 0: all consumed or more bytes needed; 1 events full; 2 directory full;
        -1 length does not match the type; -2 zero length; -3 truncated (``final``); -5
        MoldUDP64 gap. ``pos_after`` is the start of the first frame (packet) not consumed.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbook.events import EVENT_DTYPE
    >>> frame = b"\\x00\\x13D\\x00\\x01\\x00\\x00" + (5).to_bytes(6, "big") + (9).to_bytes(8, "big")
    >>> ev = np.zeros(4, EVENT_DTYPE)
    >>> counts = np.zeros(256, np.uint64)
    >>> decode_chunk(frame, 0, 0, ev, counts)
    (21, 1, 1, 0, 0)
    >>> ev[0][["ts_exchange", "instrument", "action", "order_id"]].tolist()
    (5, 1, 4, 9)
    """
    # -- arguments, checked before anything is decoded
    framing = check_framing(framing, _FRAMING_NAMES)
    view, pos = bytes_at(buf, pos, "pos")
    n = len(view)
    check_kernel_array(events, "events", EVENT_DTYPE, name_structured=True)
    check_kernel_array(counts, "counts", np.uint64, 256, contiguous=False,
                       name_structured=True)
    if locate_map is not None:
        check_kernel_array(locate_map, "locate_map", np.int32, 65536, contiguous=False,
                           name_structured=True)
    if directory is not None:
        check_kernel_array(directory, "directory", np.int64, contiguous=False,
                           name_structured=True)
    for name, array in (("events", events), ("counts", counts), ("directory", directory)):
        if array is not None and not array.flags.writeable:
            raise ArrayError(f"{name} must be writable")
    seq = check_int(seq, "seq")
    if not 0 <= seq < UINT64:
        raise ValueError(f"seq must be between 0 and 2**64 - 1, got {seq}")
    mold_next = check_int(mold_next, "mold_next")
    if not -1 <= mold_next < UINT64:
        raise ValueError(f"mold_next must be -1 (any) or a sequence number from 0 to 2**64 - 1, "
                         f"got {mold_next}")
    final = bool(final)

    event_capacity = events.shape[0]
    directory_capacity = directory.shape[0] if directory is not None else 0
    n_events = n_messages = n_directory = 0
    expected = mold_next
    p = pos

    # -- one framing unit (frame or packet) per iteration, consumed whole or not at all
    while p < n:
        unit = _next_unit(view, p, framing, expected)
        if unit.status == _INCOMPLETE:
            return p, n_events, n_messages, n_directory, STATUS_TRUNCATED if final else STATUS_OK
        if unit.status < 0:
            return p, n_events, n_messages, n_directory, unit.status

        # what consuming the unit would need, then whether it fits
        need_events = need_directory = 0
        for off, _length in unit.messages:
            type_byte = view[off]
            if type_byte in _EVENT_TYPES and _instrument(view, off, locate_map) >= 0:
                need_events += 1
            elif type_byte == _R and directory is not None:
                need_directory += 1
        if n_events + need_events > event_capacity:
            return p, n_events, n_messages, n_directory, STATUS_EVENTS_FULL
        if n_directory + need_directory > directory_capacity:
            return p, n_events, n_messages, n_directory, STATUS_DIRECTORY_FULL

        # consume
        for off, _length in unit.messages:
            type_byte = view[off]
            counts[type_byte] += np.uint64(1)
            number = (seq + n_messages) % UINT64
            n_messages += 1
            if type_byte == _R and directory is not None:
                directory[n_directory] = off
                n_directory += 1
            if type_byte not in _EVENT_TYPES:
                continue
            instrument = _instrument(view, off, locate_map)
            if instrument < 0:
                continue
            event = _event_for(view, off, type_byte)
            assert event is not None
            action, side, flags, price, qty, order_id, new_order_id = event
            _, _, ts_high, ts_low = _HEADER_STRUCT.unpack_from(view, off)
            events[n_events] = ((ts_high << 32) | ts_low, 0, instrument, int(action), side,
                                flags, price, qty, order_id, new_order_id, number)
            n_events += 1
        if framing == FRAMING_MOLDUDP64:
            expected = _next_expected(unit)
        p = unit.end
        if need_directory:
            # stop after a unit with an R, so the caller can map the new locate before any
            # later message of it is decoded
            return p, n_events, n_messages, n_directory, STATUS_DIRECTORY_FULL
    return p, n_events, n_messages, n_directory, STATUS_OK


def _instrument(view: memoryview, off: int, locate_map: np.ndarray | None) -> int:
    """The instrument id of the message at ``off``: its locate, mapped; negative = dropped."""
    (locate,) = U16.unpack_from(view, off + 1)
    if locate_map is None:
        return locate
    return int(locate_map[locate])
