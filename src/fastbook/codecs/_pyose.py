"""Osaka Exchange (JPX J-GATE, Genium INET) ITCH: the readable pure-Python twin of the kernel.

This module is the reference the compiled kernel ``fastbook.codecs._ose`` is
checked against, and the fallback when ``FASTBOOK_NO_EXTENSIONS=1``. It is
written to be read next to the message layouts (``docs/ose-itch.md``), not to be
fast: one ``struct`` call per message, plain loops.

* **Exploration.** :func:`parse_message` turns one message into a
  :class:`typing.NamedTuple` (``AddOrder``, ``OrderReplace``, ...);
  :func:`iter_messages` walks a whole buffer in either framing;
  :func:`order_book_directory` turns an ``R`` message into a plain dict.
* **The oracle.** :func:`decode_chunk` writes normalized book events
  (``fastbook.events.EVENT_DTYPE``) into a caller's array exactly as the
  compiled kernel does; the differential tests compare the two.

Messages have no common header. Every message but ``T`` (seconds) begins with
the type byte and a 4-byte ``nanoseconds`` within the second last given by a
``T``, so every message tuple but :class:`Seconds` begins with ``type, ns``.
All integers are big-endian; prices are **signed** 32-bit at the order book's
own "decimals in price" (from its ``R``), ``-2**31`` meaning "no price";
quantities are unsigned 64-bit. Alpha fields are ASCII ``str`` with the
padding spaces on the right removed.

>>> from fastbook.codecs._pyose import parse_message
>>> msg = (b"D" + (250).to_bytes(4, "big") + (77).to_bytes(8, "big")
...        + (126484980).to_bytes(4, "big") + b"S")
>>> parse_message(msg)
OrderDelete(type='D', ns=250, order_id=77, order_book_id=126484980, side='S')
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from fastbook._checks import bytes_at, check_int, check_kernel_array
from fastbook._vocab import NO_SIDE, Action, Flags
from fastbook.codecs import _itchwire as wire
from fastbook.codecs._itchwire import FRAMING_BINARYFILE, FRAMING_MOLDUDP64, MOLD_HEADER, SIDES, U16
from fastbook.codecs._osewire import (
    EQUILIBRIUM_FIELDS,
    INVALID_KINDS,
    LAYOUTS,
    MESSAGE_LENGTHS,
    NO_PRICE,
    STATE_FIELDS,
    STATUS_NO_PRICE,
    STATUS_NO_SECONDS,
    STATUS_UNKNOWN_BOOK,
    state_flags,
)
from fastbook.errors import ArrayError, DecodeError
from fastbook.events import EVENT_DTYPE

__all__ = [
    "COMPILED",
    "EQUILIBRIUM_FIELDS",
    "FRAMING_BINARYFILE",
    "FRAMING_MOLDUDP64",
    "INVALID_KINDS",
    "MESSAGE_LENGTHS",
    "NO_PRICE",
    "STATE_FIELDS",
    "AddOrder",
    "AddOrderParticipant",
    "CombinationLeg",
    "EquilibriumPrice",
    "OrderBookDirectory",
    "OrderBookState",
    "OrderDelete",
    "OrderExecuted",
    "OrderExecutedWithPrice",
    "OrderReplace",
    "Seconds",
    "SystemEvent",
    "TickSize",
    "Trade",
    "UnknownMessage",
    "book_map_get",
    "book_map_new",
    "book_map_set",
    "decode_chunk",
    "iter_messages",
    "new_state",
    "order_book_directory",
    "parse_message",
    "state_flags",
]

#: False: this is the pure-Python twin (the compiled kernel says True).
COMPILED = False

# The framing codes and the statuses down to STATUS_GAP (FRAMING_*, STATUS_*) are the ones
# both ITCH-family kernels share: codecs/_itchwire.py defines them. What only OSE has (three
# more statuses, NO_PRICE, the invalid kinds, the state rules) is in codecs/_osewire.py.
_FRAMING_NAMES = {FRAMING_BINARYFILE: "BinaryFILE", FRAMING_MOLDUDP64: "MoldUDP64"}

_LENGTH_BY_BYTE = wire.length_by_byte(MESSAGE_LENGTHS)

_MOLD_ANY, _MOLD_KNOWN, _MOLD_NEVER = 0, 1, 2


# -- message tuples -------------------------------------------------------------------------

class Seconds(NamedTuple):
    """``T`` Seconds: the UNIX time in whole seconds of the messages that follow."""

    type: str
    seconds: int


class SystemEvent(NamedTuple):
    """``S`` System Event. ``event_code``: ``O`` start of messages, ``C`` end of messages."""

    type: str
    ns: int
    event_code: str


class OrderBookDirectory(NamedTuple):
    """``R`` Order Book Directory: one tradable order book (future, option, combination)."""

    type: str
    ns: int
    order_book_id: int
    symbol: str
    long_name: str
    isin: str
    financial_product: int
    trading_currency: str
    decimals_in_price: int
    decimals_in_nominal_value: int
    odd_lot_size: int
    round_lot_size: int
    block_lot_size: int
    nominal_value: int
    number_of_legs: int
    underlying_order_book_id: int
    strike_price: int
    expiration_date: int
    decimals_in_strike_price: int
    put_or_call: int


class CombinationLeg(NamedTuple):
    """``M`` Combination Order Book Leg: one leg of a combination order book."""

    type: str
    ns: int
    combination_order_book_id: int
    leg_order_book_id: int
    leg_side: str
    leg_ratio: int


class TickSize(NamedTuple):
    """``L`` Tick Size Table Entry: ``tick_size`` applies to prices in [price_from, price_to]."""

    type: str
    ns: int
    order_book_id: int
    tick_size: int
    price_from: int
    price_to: int


class OrderBookState(NamedTuple):
    """``O`` Order Book State, e.g. ``M_PRE_OPEN``, ``ZARABA`` (continuous trading)."""

    type: str
    ns: int
    order_book_id: int
    state_name: str


class AddOrder(NamedTuple):
    """``A`` Add Order. ``order_book_position``: the order's 1-based rank on its side."""

    type: str
    ns: int
    order_id: int
    order_book_id: int
    side: str
    order_book_position: int
    quantity: int
    price: int
    order_attributes: int
    lot_type: int


class AddOrderParticipant(NamedTuple):
    """``F`` Add Order with participant id."""

    type: str
    ns: int
    order_id: int
    order_book_id: int
    side: str
    order_book_position: int
    quantity: int
    price: int
    order_attributes: int
    lot_type: int
    participant_id: str


class OrderExecuted(NamedTuple):
    """``E`` Order Executed, at the resting order's price."""

    type: str
    ns: int
    order_id: int
    order_book_id: int
    side: str
    executed_quantity: int
    match_id: int
    combo_group_id: int
    owner_participant_id: str
    counterparty_participant_id: str


class OrderExecutedWithPrice(NamedTuple):
    """``C`` Order Executed With Price (every order executed in an auction, among others)."""

    type: str
    ns: int
    order_id: int
    order_book_id: int
    side: str
    executed_quantity: int
    match_id: int
    combo_group_id: int
    owner_participant_id: str
    counterparty_participant_id: str
    trade_price: int
    occurred_at_cross: str
    printable: str


class OrderReplace(NamedTuple):
    """``U`` Order Replace: same order id, new quantity, price and position."""

    type: str
    ns: int
    order_id: int
    order_book_id: int
    side: str
    new_order_book_position: int
    quantity: int
    price: int
    order_attributes: int


class OrderDelete(NamedTuple):
    """``D`` Order Delete."""

    type: str
    ns: int
    order_id: int
    order_book_id: int
    side: str


class Trade(NamedTuple):
    """``P`` Trade: a print with no displayed resting order (combination legs, implied)."""

    type: str
    ns: int
    match_id: int
    combo_group_id: int
    side: str
    quantity: int
    order_book_id: int
    trade_price: int
    owner_participant_id: str
    counterparty_participant_id: str
    printable: str
    occurred_at_cross: str


class EquilibriumPrice(NamedTuple):
    """``Z`` Equilibrium Price Update (auctions); prices may be ``NO_PRICE``."""

    type: str
    ns: int
    order_book_id: int
    bid_quantity: int
    ask_quantity: int
    equilibrium_price: int
    best_bid_price: int
    best_ask_price: int
    best_bid_quantity: int
    best_ask_quantity: int


class UnknownMessage(NamedTuple):
    """A message whose type byte this codec does not know; ``raw`` is the whole message."""

    type: str
    raw: bytes


# The layout of each type (codecs/_osewire.py) and the tuple class it is read into.
_CLASSES: dict[str, type] = {
    "T": Seconds, "S": SystemEvent, "R": OrderBookDirectory, "M": CombinationLeg, "L": TickSize,
    "O": OrderBookState, "A": AddOrder, "F": AddOrderParticipant, "E": OrderExecuted,
    "C": OrderExecutedWithPrice, "U": OrderReplace, "D": OrderDelete, "P": Trade,
    "Z": EquilibriumPrice,
}
_LAYOUTS: dict[str, tuple[type, str]] = {t: (cls, LAYOUTS[t]) for t, cls in _CLASSES.items()}
_STRUCTS = {t: struct.Struct(fmt) for t, (_, fmt) in _LAYOUTS.items()}
for _t, _s in _STRUCTS.items():
    assert _s.size == MESSAGE_LENGTHS[_t], (_t, _s.size)
del _t, _s


def _alpha(raw: bytes, field: str, type_char: str, strict: bool = True) -> str:
    if not strict:
        return raw.decode("latin-1").rstrip(" \x00")
    try:
        return raw.decode("ascii").rstrip(" \x00")
    except UnicodeDecodeError:
        raise DecodeError(f"OSE ITCH {type_char!r} message: field {field} is not ASCII: "
                          f"{raw!r}") from None


def parse_message(msg: bytes | bytearray | memoryview, /, *, allow_unknown: bool = False,
                  strict: bool = True) -> Any:
    """Parse one OSE ITCH message (type byte first, no length prefix) into its NamedTuple.

    Raises
    ------
    DecodeError
        An empty message, a known type whose length is not its layout's, an
        unknown type (unless ``allow_unknown``: then :class:`UnknownMessage`),
        or a non-ASCII alpha field.

    Examples
    --------
    >>> parse_message(b"T" + (1614557640).to_bytes(4, "big"))
    Seconds(type='T', seconds=1614557640)
    """
    raw = bytes(msg)
    type_char = wire.message_type(raw, MESSAGE_LENGTHS, _LENGTH_BY_BYTE, protocol="OSE ITCH",
                             version="OSE ITCH", authority="its layout",
                             allow_unknown=allow_unknown)
    if type_char is None:
        return UnknownMessage(chr(raw[0]), raw)
    # strict=False (decode_chunk): alpha fields are read as latin-1, never refused
    cls, _ = _LAYOUTS[type_char]
    values = _STRUCTS[type_char].unpack(raw)
    fields: list[Any] = [type_char]
    for name, value in zip(cls._fields[1:], values[1:], strict=True):
        fields.append(_alpha(value, name, type_char, strict) if isinstance(value, bytes)
                      else value)
    return cls(*fields)


def order_book_directory(msg: Any, /) -> dict[str, Any]:
    """The attributes of an ``R`` (order book directory) message as a plain dict.

    Keys: ``order_book_id``, ``symbol``, ``long_name``, ``isin``,
    ``financial_product``, ``currency``, ``price_decimals``,
    ``nominal_decimals``, ``odd_lot``, ``round_lot``, ``block_lot``,
    ``nominal_value``, ``legs``, ``underlying``, ``strike`` (``None`` when
    ``NO_PRICE``), ``strike_decimals``, ``expiration`` (YYYYMMDD int, 0 = none),
    ``put_or_call`` (1 call, 2 put, 0 neither) and ``ns``.
    """
    if not isinstance(msg, OrderBookDirectory):
        if isinstance(msg, tuple):
            raise DecodeError(f"order_book_directory needs an 'R' message, "
                              f"got {type(msg).__name__}")
        msg = parse_message(msg, allow_unknown=True)
        if not isinstance(msg, OrderBookDirectory):
            raise DecodeError(f"order_book_directory needs an 'R' message, "
                              f"got type {msg.type!r}")
    return {
        "order_book_id": msg.order_book_id,
        "symbol": msg.symbol,
        "long_name": msg.long_name,
        "isin": msg.isin,
        "financial_product": msg.financial_product,
        "currency": msg.trading_currency,
        "price_decimals": msg.decimals_in_price,
        "nominal_decimals": msg.decimals_in_nominal_value,
        "odd_lot": msg.odd_lot_size,
        "round_lot": msg.round_lot_size,
        "block_lot": msg.block_lot_size,
        "nominal_value": msg.nominal_value,
        "legs": msg.number_of_legs,
        "underlying": msg.underlying_order_book_id,
        "strike": None if msg.strike_price == NO_PRICE else msg.strike_price,
        "strike_decimals": msg.decimals_in_strike_price,
        "expiration": msg.expiration_date,
        "put_or_call": msg.put_or_call,
        "ns": msg.ns,
    }


# -- the order book id map ----------------------------------------------------------------------
# A uint64 numpy array, a power of two long, used as an open-addressing hash table (linear
# probing): a slot holds (order_book_id << 32) | (instrument + 2), 0 is an empty slot, and
# instrument -1 means "known, not chosen: drop its messages". Both kernels read it.

_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def _slot(obid: int, size: int) -> int:
    bits = size.bit_length() - 1
    return ((obid * _GOLDEN) & _MASK64) >> (64 - bits) if bits else 0


def book_map_new(capacity: int = 64) -> np.ndarray:
    """An empty order book id map with room for ``capacity`` books at load 1/2."""
    size = 4
    while size < 2 * capacity:
        size *= 2
    return np.zeros(size, np.uint64)


def book_map_get(book_map: np.ndarray, obid: int) -> int | None:
    """The instrument mapped to ``obid`` (-1 = dropped), or None when it is not in the map."""
    size = len(book_map)
    i = _slot(obid, size)
    while True:
        entry = int(book_map[i])
        if entry == 0:
            return None
        if entry >> 32 == obid:
            return (entry & 0xFFFFFFFF) - 2
        i = (i + 1) & (size - 1)


def book_map_set(book_map: np.ndarray, obid: int, instrument: int) -> np.ndarray:
    """Map ``obid`` to ``instrument`` (-1: drop); returns the map, a new bigger one when full."""
    if not 0 <= obid <= 0xFFFFFFFF:
        raise ValueError(f"order book id must be a uint32, got {obid}")
    if not -1 <= instrument <= 0xFFFFFFFF - 2:
        raise ValueError(f"instrument must be -1 or a uint32 id, got {instrument}")
    size = len(book_map)
    used = int(np.count_nonzero(book_map))
    if book_map_get(book_map, obid) is None and 2 * (used + 1) > size:
        bigger = np.zeros(2 * size, np.uint64)
        for entry in book_map[book_map != 0].tolist():
            _put(bigger, entry >> 32, entry)
        book_map = bigger
    _put(book_map, obid, (obid << 32) | (instrument + 2))
    return book_map


def _put(book_map: np.ndarray, obid: int, entry: int) -> None:
    size = len(book_map)
    i = _slot(obid, size)
    while int(book_map[i]) != 0 and int(book_map[i]) >> 32 != obid:
        i = (i + 1) & (size - 1)
    book_map[i] = entry


def new_state() -> np.ndarray:
    """A fresh ``state`` array for :func:`decode_chunk`: no seconds yet, any MoldUDP64 sequence."""
    state = np.zeros(len(STATE_FIELDS), np.int64)
    state[0] = -1
    return state


# -- framing ------------------------------------------------------------------------------------

def iter_messages(buf: Any, /, framing: int = FRAMING_BINARYFILE, *,
                  start: int = 0) -> Iterator[tuple[int, int, int, Any]]:
    """Walk every message of a buffer, for exploration and debugging.

    Yields ``(offset, message_number, ts, message)``: the byte offset of the
    type byte, the number of the message from 0 at ``start``, its time in ns
    since the UNIX epoch (the last ``T`` seconds * 10**9 + its ns; -1 before the
    first ``T``, and the seconds themselves * 10**9 for a ``T``) and the parsed
    NamedTuple (:class:`UnknownMessage` for unknown types). MoldUDP64
    heartbeats and end-of-session packets are skipped; sequence numbers are not
    checked.

    Raises
    ------
    DecodeError
        A zero length prefix, a length that does not match the type, or a
        stream that ends inside a frame or packet (naming the byte offset and
        message number).
    """
    framing = wire.check_framing(framing, _FRAMING_NAMES)
    view, p = bytes_at(buf, start, "start")
    n = len(view)
    name = _FRAMING_NAMES[framing]
    number = 0
    seconds = -1
    left = 0
    while p < n:
        if framing == FRAMING_MOLDUDP64 and left == 0:
            if p + MOLD_HEADER.size > n:
                raise DecodeError(f"{name} stream truncated: the packet header at byte offset "
                                  f"{p} (message {number}) runs past the end of the buffer")
            _, _, count = MOLD_HEADER.unpack_from(view, p)
            p += MOLD_HEADER.size
            if count not in (wire.MOLD_HEARTBEAT, wire.MOLD_END_OF_SESSION):
                left = count
            continue
        if p + 2 > n or p + 2 + U16.unpack_from(view, p)[0] > n:
            raise DecodeError(f"{name} stream truncated: the frame at byte offset {p} "
                              f"(message {number}) runs past the end of the buffer ({n} bytes)")
        (length,) = U16.unpack_from(view, p)
        if length == 0:
            raise DecodeError(f"{name}: zero length at byte offset {p} (message {number})")
        off = p + 2
        expected = _LENGTH_BY_BYTE[view[off]]
        if expected and expected != length:
            raise DecodeError(f"{name}: the message at byte offset {p} (message {number}) has "
                              f"type {chr(view[off])!r} and length {length}, but that type's "
                              f"length is {expected}")
        msg = parse_message(view[off:off + length], allow_unknown=True)
        if isinstance(msg, Seconds):
            seconds = msg.seconds
            ts = seconds * 1_000_000_000
        elif isinstance(msg, UnknownMessage):
            ts = -1
        else:
            ts = -1 if seconds < 0 else seconds * 1_000_000_000 + msg.ns
        yield off, number, ts, msg
        number += 1
        p = off + length
        if framing == FRAMING_MOLDUDP64:
            left -= 1
    if left:
        raise DecodeError(f"{name} stream truncated: the last packet lacks {left} message(s)")


# -- decode_chunk: the oracle -------------------------------------------------------------------

_KEEP_PRIORITY = int(Flags.KEEP_PRIORITY)
_CROSS = int(Flags.CROSS)
_NON_PRINTABLE = int(Flags.NON_PRINTABLE)
_NS = 1_000_000_000
# byte offset of the order book id in each type that carries one
_OBID_OFFSET = {ord("A"): 13, ord("F"): 13, ord("E"): 13, ord("C"): 13, ord("U"): 13,
                ord("D"): 13, ord("P"): 26, ord("Z"): 5, ord("O"): 5}
_DIRECTORY_TYPES = frozenset(ord(t) for t in "RMLO")
_EVENT_TYPES = frozenset(ord(t) for t in "AFECUDPO")
_R, _T, _Z = ord("R"), ord("T"), ord("Z")


def _side(text: str) -> int:
    """BID/ASK of a side field, NO_SIDE for anything else (a NUL or blank byte reads as "")."""
    return SIDES.get(ord(text), NO_SIDE) if len(text) == 1 else NO_SIDE


def _event_fields(msg: Any) -> tuple[int, int, int, int, int, int, int, int | None]:
    """(action, side, flags, price, qty, order_id, new_order_id, required price) of a message."""
    t = msg.type
    if t in ("A", "F"):
        return (Action.ADD, _side(msg.side), 0, msg.price, msg.quantity,
                msg.order_id, 0, msg.price)
    if t == "E":
        return (Action.EXECUTE, _side(msg.side), 0, 0, msg.executed_quantity,
                msg.order_id, 0, None)
    if t == "C":
        flags = (_CROSS if msg.occurred_at_cross == "Y" else 0) | \
                (_NON_PRINTABLE if msg.printable == "N" else 0)
        return (Action.EXECUTE, _side(msg.side), flags, msg.trade_price,
                msg.executed_quantity, msg.order_id, 0, msg.trade_price)
    if t == "U":
        return (Action.REPLACE, _side(msg.side), _KEEP_PRIORITY, msg.price,
                msg.quantity, msg.order_id, msg.order_id, msg.price)
    if t == "D":
        return Action.DELETE, _side(msg.side), 0, 0, 0, msg.order_id, 0, None
    if t == "P":
        flags = (_CROSS if msg.occurred_at_cross == "Y" else 0) | \
                (_NON_PRINTABLE if msg.printable == "N" else 0)
        return (Action.TRADE, _side(msg.side), flags, msg.trade_price,
                msg.quantity, 0, 0, msg.trade_price)
    assert t == "O"
    return Action.STATUS, 0, state_flags(msg.state_name), 0, 0, 0, 0, None


def decode_chunk(buf: Any, pos: int, framing: int, events: Any, counts: Any, /, *,
                 state: Any = None, book_map: Any = None, directory: Any = None,
                 positions: Any = None, equilibrium: Any = None, invalid: Any = None,
                 seq: int = 0, final: bool = False) -> tuple[int, int, int, int, int]:
    """Decode OSE ITCH messages from ``buf[pos:]`` into normalized events (the reference).

    One message at a time, in order: a message is consumed whole (counted,
    its event written) or not at all, and decoding stops at the first one
    that is incomplete, malformed, invalid or does not fit.

    Parameters
    ----------
    buf : bytes-like
        Read in place.
    pos : int
        Byte offset of the next frame (MoldUDP64: of a packet header, or of the
        next block inside a packet when ``state`` says one is open).
    framing : int
        0 BinaryFILE (2-byte length + message), 1 MoldUDP64 (packets of
        session(10) + sequence(8) + count(2), then 2-byte length + message blocks).
    events : numpy.ndarray of EVENT_DTYPE
        Output rows from index 0; its length is this call's capacity.
    counts : numpy.ndarray of uint64, length 256
        ``counts[type byte]`` += 1 for every message consumed.
    state : numpy.ndarray of int64, length 4, optional
        Carried from call to call (see :data:`STATE_FIELDS`): the last ``T``
        seconds (-1: none yet), the MoldUDP64 expectation (mode 0 any, 1 the
        next packet must carry ``mold_next``, 2 none can) and the blocks left
        in the open packet. Updated in place. A fresh one when omitted.
    book_map : numpy.ndarray of uint64, optional
        Order book id -> instrument (see :func:`book_map_set`). Messages of a
        book mapped to -1 are consumed and counted but make no event; a book
        not in the map is status -7 (or counted, see ``invalid``). Without a
        map every event's ``instrument`` is its order book id.
    directory : numpy.ndarray of int64, optional
        Receives the byte offset of every ``R``, ``M``, ``L`` and ``O`` message
        consumed (an ``O`` only when its book is not dropped); the call stops
        (status 2) right after each one, so the caller can map a new book
        before its orders arrive and knows the seconds of the message.
    positions : numpy.ndarray of uint32, optional
        ``positions[k]`` = the order book position of event ``k`` (``A``,
        ``F``: the order's position; ``U``: the new position; 0 otherwise).
        At least as long as ``events``.
    equilibrium : numpy.ndarray of int64, shape (rows, 8), optional
        Row ``instrument`` receives each ``Z`` of that instrument
        (:data:`EQUILIBRIUM_FIELDS`; prices as on the wire, ``NO_PRICE``
        included). Instruments beyond the rows are not recorded.
    invalid : numpy.ndarray of uint64, length 3, optional
        Skip mode: a nanosecond message before any ``T``, a message of an
        unknown order book and a required price of ``NO_PRICE`` (in ``A``,
        ``F``, ``U``, ``C``, ``P``) are consumed and counted here by kind
        (:data:`INVALID_KINDS`) instead of stopping with -6 / -7 / -8.
    seq : int
        Message number of the first message consumed (events' ``sequence``).
    final : bool
        No bytes follow ``buf``: an incomplete trailing frame or packet is -3.

    Returns
    -------
    (pos_after, n_events, n_messages, n_directory, status)
        ``status``: 0 done or more bytes needed; 1 events full; 2 directory
        full or a message just reported; -1 a known type with a wrong length;
        -2 a zero length; -3 truncated (``final``); -5 MoldUDP64 sequence gap;
        -6 no ``T`` yet; -7 unknown order book; -8 ``NO_PRICE`` where a price
        is required. ``pos_after`` is the start of the first frame (or packet
        header) not consumed; an error points at the offending frame.

    Notes
    -----
    Event mapping: ``A``/``F`` ADD; ``E`` EXECUTE (side, no price); ``C``
    EXECUTE with the trade price, flags CROSS (occurred at cross ``Y``) and
    NON_PRINTABLE (printable ``N``); ``U`` REPLACE with ``new_order_id`` =
    ``order_id`` and ``Flags.KEEP_PRIORITY``; ``D`` DELETE with side; ``P``
    TRADE (flags as ``C``); ``O`` STATUS (flags by :func:`state_flags`).
    ``T``, ``S``, ``R``, ``M``, ``L``, ``Z`` make no event. Times are the last
    ``T`` * 10**9 + the message's ns. Order of checks for a message: frame
    (prefix, zero length, complete, length of a known type), seconds (-6),
    order book (-7; a dropped book stops checking here), price (-8), then
    capacity (events first, then directory).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbook.events import EVENT_DTYPE
    >>> t = b"\\x00\\x05T" + (1_700_000_000).to_bytes(4, "big")
    >>> d = b"\\x00\\x12D" + (5).to_bytes(4, "big") + (9).to_bytes(8, "big") \\
    ...     + (42).to_bytes(4, "big") + b"B"
    >>> ev, counts = np.zeros(4, EVENT_DTYPE), np.zeros(256, np.uint64)
    >>> decode_chunk(t + d, 0, 0, ev, counts)
    (27, 1, 2, 0, 0)
    >>> ev[0][["ts_exchange", "instrument", "action", "side", "order_id"]].tolist()
    (1700000000000000005, 42, 4, 1, 9)
    """
    # -- arguments, checked before anything is decoded
    framing = wire.check_framing(framing, _FRAMING_NAMES)
    view, pos = bytes_at(buf, pos, "pos")
    n = len(view)
    check_kernel_array(events, "events", EVENT_DTYPE, writeable=True)
    check_kernel_array(counts, "counts", np.uint64, 256, writeable=True)
    if state is None:
        state = new_state()
    check_kernel_array(state, "state", np.int64, len(STATE_FIELDS), writeable=True)
    if book_map is not None:
        check_kernel_array(book_map, "book_map", np.uint64)
        size = book_map.shape[0]
        if size < 1 or size & (size - 1):
            raise ArrayError(f"book_map length must be a power of two, got {size}")
    if directory is not None:
        check_kernel_array(directory, "directory", np.int64, writeable=True)
    if positions is not None:
        check_kernel_array(positions, "positions", np.uint32, writeable=True)
        if positions.shape[0] < events.shape[0]:
            raise ArrayError(f"positions must be at least as long as events "
                             f"({events.shape[0]}), got {positions.shape[0]}")
    if equilibrium is not None:
        check_kernel_array(equilibrium, "equilibrium", np.int64, ndim=2, writeable=True)
        if equilibrium.shape[1] != len(EQUILIBRIUM_FIELDS):
            raise ArrayError(f"equilibrium must have {len(EQUILIBRIUM_FIELDS)} columns, "
                             f"got shape {equilibrium.shape}")
    if invalid is not None:
        check_kernel_array(invalid, "invalid", np.uint64, len(INVALID_KINDS), writeable=True)
    seq = check_int(seq, "seq")
    if not 0 <= seq < wire.UINT64:
        raise ValueError(f"seq must be between 0 and 2**64 - 1, got {seq}")
    if int(state[1]) not in (_MOLD_ANY, _MOLD_KNOWN, _MOLD_NEVER) or int(state[3]) < 0 \
            or int(state[3]) > 0xFFFF:
        raise ValueError(f"state is not a decode_chunk state: {state.tolist()}")
    final = bool(final)

    seconds = int(state[0]) if state[0] >= 0 else -1
    mold_mode = int(state[1])
    mold_next, mold_left = int(state[2]) % wire.UINT64, int(state[3])
    event_capacity = events.shape[0]
    directory_capacity = directory.shape[0] if directory is not None else 0
    n_events = n_messages = n_directory = 0
    p = pos
    status = wire.STATUS_OK

    while True:
        if p >= n:
            if final and framing == FRAMING_MOLDUDP64 and mold_left:
                status = wire.STATUS_TRUNCATED
            break
        if framing == FRAMING_MOLDUDP64 and mold_left == 0:
            # a packet header: sequence check, then its blocks one by one
            if p + MOLD_HEADER.size > n:
                status = wire.STATUS_TRUNCATED if final else wire.STATUS_OK
                break
            _, sequence, count = MOLD_HEADER.unpack_from(view, p)
            if mold_mode == _MOLD_NEVER or (mold_mode == _MOLD_KNOWN and sequence != mold_next):
                status = wire.STATUS_GAP
                break
            if count in (wire.MOLD_HEARTBEAT, wire.MOLD_END_OF_SESSION):
                mold_mode, mold_next = _MOLD_KNOWN, sequence
            else:
                after = sequence + count
                mold_mode = _MOLD_KNOWN if after < wire.UINT64 else _MOLD_NEVER
                mold_next = after % wire.UINT64
                mold_left = count
            p += MOLD_HEADER.size
            continue

        # one frame: 2-byte length, then the message
        if p + 2 > n:
            status = wire.STATUS_TRUNCATED if final else wire.STATUS_OK
            break
        (length,) = U16.unpack_from(view, p)
        if length == 0:
            status = wire.STATUS_ZERO_LENGTH
            break
        if p + 2 + length > n:
            status = wire.STATUS_TRUNCATED if final else wire.STATUS_OK
            break
        off = p + 2
        type_byte = view[off]
        expected = _LENGTH_BY_BYTE[type_byte]
        if expected and expected != length:
            status = wire.STATUS_WRONG_LENGTH
            break

        # what the message needs, checked before anything is written
        skip_kind = -1          # an INVALID_KINDS index when skipped as invalid
        instrument = -1
        emits = directs = False
        msg = parse_message(view[off:off + length], strict=False) if expected else None
        if msg is not None and type_byte != _T:
            if seconds < 0:
                if invalid is None:
                    status = STATUS_NO_SECONDS
                    break
                skip_kind = 0
            if skip_kind < 0 and type_byte in _OBID_OFFSET:
                obid = msg.order_book_id
                if book_map is None:
                    instrument = obid
                else:
                    found = book_map_get(book_map, obid)
                    if found is None:
                        if invalid is None:
                            status = STATUS_UNKNOWN_BOOK
                            break
                        skip_kind = 1
                    else:
                        instrument = found
            dropped = type_byte in _OBID_OFFSET and instrument < 0
            if skip_kind < 0 and not dropped:
                if type_byte in _EVENT_TYPES:
                    fields = _event_fields(msg)
                    if fields[7] is not None and fields[7] == NO_PRICE:
                        if invalid is None:
                            status = STATUS_NO_PRICE
                            break
                        skip_kind = 2
                    else:
                        emits = True
            if skip_kind < 0 and (type_byte == _R or (type_byte in _DIRECTORY_TYPES
                                                      and not dropped)):
                directs = directory is not None
        if emits and n_events == event_capacity:
            status = wire.STATUS_EVENTS_FULL
            break
        if directs and n_directory == directory_capacity:
            status = wire.STATUS_DIRECTORY_FULL
            break

        # consume
        number = (seq + n_messages) % wire.UINT64
        counts[type_byte] += np.uint64(1)
        n_messages += 1
        p = off + length
        if framing == FRAMING_MOLDUDP64:
            mold_left -= 1
        if skip_kind >= 0:
            invalid[skip_kind] += np.uint64(1)
            continue
        if type_byte == _T:
            seconds = msg.seconds
            continue
        if msg is None:
            continue
        ts = seconds * _NS + msg.ns
        if emits:
            action, side, flags, price, qty, order_id, new_order_id, _ = _event_fields(msg)
            events[n_events] = (ts, 0, instrument, int(action), side, flags, price,
                                wire.signed64(qty), order_id, new_order_id, number)
            if positions is not None:
                positions[n_events] = getattr(msg, "order_book_position",
                                              getattr(msg, "new_order_book_position", 0))
            n_events += 1
        if type_byte == _Z and equilibrium is not None and 0 <= instrument < equilibrium.shape[0]:
            equilibrium[instrument] = (ts, msg.equilibrium_price, wire.signed64(msg.bid_quantity),
                                       wire.signed64(msg.ask_quantity), msg.best_bid_price,
                                       msg.best_ask_price, wire.signed64(msg.best_bid_quantity),
                                       wire.signed64(msg.best_ask_quantity))
        if directs:
            # stop after every reported message: the caller maps a new book (R), and
            # reads the seconds of an M, L or O exactly, before anything later is decoded
            directory[n_directory] = off
            n_directory += 1
            status = wire.STATUS_DIRECTORY_FULL
            break

    state[0] = seconds
    state[1] = mold_mode
    state[2] = wire.signed64(mold_next)
    state[3] = mold_left
    return p, n_events, n_messages, n_directory, status
