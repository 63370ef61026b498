"""OSE J-GATE ITCH messages built byte by byte from the documented layouts
(specs/itch.md section 2.1, docs/ose-itch.md), independently of fastbook's code,
so the tests check the codec against the layouts rather than against itself."""

from __future__ import annotations

#: Type -> message length, type byte included, length prefix excluded.
LENGTHS = {
    b"T": 5, b"S": 6, b"R": 129, b"M": 18, b"L": 25, b"O": 29, b"A": 37, b"F": 44,
    b"E": 52, b"C": 58, b"U": 36, b"D": 18, b"P": 50, b"Z": 53,
}
NO_PRICE = -(1 << 31)


def u(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def i32(value: int) -> bytes:
    return value.to_bytes(4, "big", signed=True)


def alpha(text: str | bytes, size: int) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return raw.ljust(size, b" ")[:size]


def T(seconds: int) -> bytes:
    return b"T" + u(seconds, 4)


def S(ns: int, code: bytes = b"O") -> bytes:
    return b"S" + u(ns, 4) + code


def R(ns: int, obid: int, symbol: str, *, decimals: int = 0, product: int = 3,
      round_lot: int = 1, legs: int = 0, underlying: int = 0, strike: int = 0,
      expiry: int = 20240614, strike_decimals: int = 0, put_call: int = 0,
      long_name: str = "", isin: str = "JP0000000000", currency: str = "JPY") -> bytes:
    msg = (b"R" + u(ns, 4) + u(obid, 4) + alpha(symbol, 32) + alpha(long_name or symbol, 32)
           + alpha(isin, 12) + u(product, 1) + alpha(currency, 3) + u(decimals, 2) + u(0, 2)
           + u(0, 4) + u(round_lot, 4) + u(0, 4) + u(0, 8) + u(legs, 1) + u(underlying, 4)
           + i32(strike) + u(expiry, 4) + u(strike_decimals, 2) + u(put_call, 1))
    assert len(msg) == 129
    return msg


def M(ns: int, combo: int, leg: int, side: bytes = b"B", ratio: int = 1) -> bytes:
    return b"M" + u(ns, 4) + u(combo, 4) + u(leg, 4) + side + u(ratio, 4)


def L(ns: int, obid: int, tick: int, lo: int, hi: int) -> bytes:
    return b"L" + u(ns, 4) + u(obid, 4) + u(tick, 8) + i32(lo) + i32(hi)


def O(ns: int, obid: int, state: str) -> bytes:  # noqa: E743 - the message's name
    return b"O" + u(ns, 4) + u(obid, 4) + alpha(state, 20)


def A(ns: int, oid: int, obid: int, side: bytes, pos: int, qty: int, price: int,
      attrs: int = 0, lot: int = 0) -> bytes:
    return (b"A" + u(ns, 4) + u(oid, 8) + u(obid, 4) + side + u(pos, 4) + u(qty, 8)
            + i32(price) + u(attrs, 2) + u(lot, 1))


def F(ns: int, oid: int, obid: int, side: bytes, pos: int, qty: int, price: int,
      participant: str = "PART001") -> bytes:
    return b"F" + A(ns, oid, obid, side, pos, qty, price)[1:] + alpha(participant, 7)


def E(ns: int, oid: int, obid: int, side: bytes, qty: int, match: int = 1,
      combo: int = 0) -> bytes:
    return (b"E" + u(ns, 4) + u(oid, 8) + u(obid, 4) + side + u(qty, 8) + u(match, 8)
            + u(combo, 4) + alpha("", 7) + alpha("", 7))


def C(ns: int, oid: int, obid: int, side: bytes, qty: int, price: int, *, match: int = 1,
      combo: int = 0, cross: bytes = b"N", printable: bytes = b"Y") -> bytes:
    return b"C" + E(ns, oid, obid, side, qty, match, combo)[1:] + i32(price) + cross + printable


def U(ns: int, oid: int, obid: int, side: bytes, pos: int, qty: int, price: int,
      attrs: int = 0) -> bytes:
    return (b"U" + u(ns, 4) + u(oid, 8) + u(obid, 4) + side + u(pos, 4) + u(qty, 8)
            + i32(price) + u(attrs, 2))


def D(ns: int, oid: int, obid: int, side: bytes) -> bytes:
    return b"D" + u(ns, 4) + u(oid, 8) + u(obid, 4) + side


def P(ns: int, obid: int, side: bytes, qty: int, price: int, *, match: int = 1,
      combo: int = 0, printable: bytes = b"Y", cross: bytes = b"N") -> bytes:
    return (b"P" + u(ns, 4) + u(match, 8) + u(combo, 4) + side + u(qty, 8) + u(obid, 4)
            + i32(price) + alpha("", 7) + alpha("", 7) + printable + cross)


def Z(ns: int, obid: int, bid_qty: int, ask_qty: int, ep: int, best_bid: int, best_ask: int,
      best_bid_qty: int, best_ask_qty: int) -> bytes:
    return (b"Z" + u(ns, 4) + u(obid, 4) + u(bid_qty, 8) + u(ask_qty, 8) + i32(ep)
            + i32(best_bid) + i32(best_ask) + u(best_bid_qty, 8) + u(best_ask_qty, 8))


def frame(msg: bytes) -> bytes:
    """BinaryFILE: 2-byte big-endian length, then the message (also a MoldUDP64 block)."""
    return u(len(msg), 2) + msg


def binaryfile(*msgs: bytes) -> bytes:
    return b"".join(frame(m) for m in msgs)


def mold(sequence: int, *msgs: bytes, session: bytes = b"SESSION001",
         count: int | None = None) -> bytes:
    """One MoldUDP64 packet: session(10), sequence(8), count(2), then the blocks."""
    n = len(msgs) if count is None else count
    return alpha(session, 10) + u(sequence, 8) + u(n, 2) + b"".join(frame(m) for m in msgs)
