"""ITCH 5.0 messages and framings, built from the specification (specs/itch.md) and
written out here independently of fastbook's code, so the tests check the code against
the spec: the message lengths of table 1.2, field encoders, a builder per message type
and the three framings (BinaryFILE, MoldUDP64, SoupBinTCP).

The builders take every field, with defaults; a test module that wants other defaults
(its own stock, timestamps, match numbers) wraps them, so each layout is written once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

#: Type byte -> message length, type byte included, length prefix excluded.
LENGTHS = {
    b"S": 12, b"R": 39, b"H": 25, b"Y": 20, b"L": 26, b"V": 35, b"W": 12, b"K": 28,
    b"J": 35, b"h": 21, b"A": 36, b"F": 40, b"E": 31, b"C": 36, b"X": 23, b"D": 19,
    b"U": 35, b"P": 44, b"Q": 40, b"B": 19, b"I": 50, b"N": 20, b"O": 48,
}
#: The same table keyed by the type letter (``"A"``).
LETTER_LENGTHS = {t.decode(): n for t, n in LENGTHS.items()}

#: The framing codes ``decode_chunk`` takes.
FILE, MOLD, SOUP = 0, 1, 2
FRAMINGS = (FILE, MOLD, SOUP)


# -- fields and the common header ----------------------------------------------------------

def u(value: int, size: int) -> bytes:
    """An unsigned big-endian integer field of ``size`` bytes."""
    return value.to_bytes(size, "big")


def a(text: str | bytes, size: int) -> bytes:
    """An alpha field: ASCII, left-justified, padded with spaces."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def header(t: bytes, locate: int, ts: int, tracking: int = 0) -> bytes:
    """The 11-byte header: type 1, stock locate 2, tracking number 2, timestamp 6."""
    return struct.pack(">cHHHI", t, locate, tracking, ts >> 32, ts & 0xFFFFFFFF)


def msg(type_: str, body: bytes, locate: int = 0, tracking: int = 0, ts: int = 0) -> bytes:
    """Header followed by the body at offset 11; the length must be the table's."""
    out = header(type_.encode(), locate, ts, tracking) + body
    assert len(out) == LETTER_LENGTHS.get(type_, len(out)), (type_, len(out))
    return out


# -- one builder per message type (section 1.3 of the spec) ----------------------------------

def add(ref, side="B", shares=100, stock="ABC", price=1000, locate=1, ts=5, type_="A",
        mpid="GSCO"):
    """``A`` (add order), or ``F`` (with ``mpid`` attributed) for ``type_="F"``."""
    body = u(ref, 8) + a(side, 1) + u(shares, 4) + a(stock, 8) + u(price, 4)
    if type_ == "F":
        body += a(mpid, 4)
    return msg(type_, body, locate=locate, ts=ts)


def execute(ref, shares, match=1, locate=1, ts=5):
    """``E``: order executed."""
    return msg("E", u(ref, 8) + u(shares, 4) + u(match, 8), locate=locate, ts=ts)


def execute_c(ref, shares, price, printable="Y", match=1, locate=1, ts=5):
    """``C``: order executed with price."""
    return msg("C", u(ref, 8) + u(shares, 4) + u(match, 8) + a(printable, 1) + u(price, 4),
               locate=locate, ts=ts)


def cancel(ref, shares, locate=1, ts=5):
    """``X``: order cancel (a partial one)."""
    return msg("X", u(ref, 8) + u(shares, 4), locate=locate, ts=ts)


def delete(ref, locate=1, ts=5):
    """``D``: order delete."""
    return msg("D", u(ref, 8), locate=locate, ts=ts)


def replace(ref, new_ref, shares, price, locate=1, ts=5):
    """``U``: order replace."""
    return msg("U", u(ref, 8) + u(new_ref, 8) + u(shares, 4) + u(price, 4), locate=locate, ts=ts)


def trade(shares, price, side="B", ref=0, stock="ABC", match=1, locate=1, ts=5):
    """``P``: trade (non-cross), against a hidden order."""
    return msg("P", u(ref, 8) + a(side, 1) + u(shares, 4) + a(stock, 8) + u(price, 4)
               + u(match, 8), locate=locate, ts=ts)


def cross(shares, price, cross_type="O", stock="ABC", match=1, locate=1, ts=5):
    """``Q``: cross trade (``shares`` is a u64)."""
    return msg("Q", u(shares, 8) + a(stock, 8) + u(price, 4) + u(match, 8) + a(cross_type, 1),
               locate=locate, ts=ts)


def trading_action(state, stock="ABC", locate=1, ts=5, reason=""):
    """``H``: stock trading action (``state`` H, P, Q or T; ``reason`` 4 bytes)."""
    return msg("H", a(stock, 8) + a(state, 1) + a(" ", 1) + a(reason, 4), locate=locate, ts=ts)


def system(code, ts=5):
    """``S``: system event (``code`` O, S, Q, M, E or C)."""
    return msg("S", a(code, 1), ts=ts)


def directory_msg(locate, stock, ts=5):
    """``R``: stock directory, a Nasdaq common stock in round lots of 100."""
    return msg("R", a(stock, 8) + b"QN" + u(100, 4) + b"NCZ PNN1N" + u(0, 4) + b"N",
               locate=locate, ts=ts)


#: Body layouts after the 11-byte header, for every type that emits no event.
QUIET_BODIES = {
    b"S": (">c", (b"O",)),
    b"R": (
        ">8sccIcc2scccccIc",
        (b"MEAT    ", b"Q", b"N", 100, b"N", b"C", b"Z ", b"P", b"N", b" ", b"1", b"N", 0, b"N"),
    ),
    b"Y": (">8sc", (b"MEAT    ", b"0")),
    b"L": (">4s8sccc", (b"MPID", b"MEAT    ", b"Y", b"N", b"A")),
    b"V": (">QQQ", (1, 2, 3)),
    b"W": (">c", (b"1",)),
    b"K": (">8sIcI", (b"MEAT    ", 34_200, b"A", 100_0000)),
    b"J": (">8sIIII", (b"MEAT    ", 1, 2, 3, 4)),
    b"h": (">8scc", (b"MEAT    ", b"Q", b"H")),
    b"B": (">Q", (99,)),
    b"I": (">QQc8sIIIcc", (1, 2, b"B", b"MEAT    ", 3, 4, 5, b"O", b"L")),
    b"N": (">8sc", (b"MEAT    ", b"B")),
    b"O": (">8scIIIQII", (b"MEAT    ", b"Y", 1, 2, 3, 4, 5, 6)),
}


def quiet(t: bytes, locate=1, ts=1) -> bytes:
    """A message of a type that emits no event (``QUIET_BODIES``)."""
    fmt, values = QUIET_BODIES[t]
    return header(t, locate, ts) + struct.pack(fmt, *values)


def unknown(t: bytes, length: int, locate=1) -> bytes:
    """``length`` bytes of a type the spec does not define."""
    return (t + struct.pack(">H", locate) + bytes(i % 251 for i in range(length)))[:length]


# -- framings --------------------------------------------------------------------------------

def file_frames(msgs: Iterable[bytes]) -> bytes:
    """BinaryFILE: each message after its 2-byte big-endian length."""
    return b"".join(struct.pack(">H", len(m)) + m for m in msgs)


def binfile(*messages: bytes) -> bytes:
    return file_frames(messages)


def mold_packet(seq: int, msgs, count: int | None = None, session: bytes = b"SESSION001"
                ) -> bytes:
    """A MoldUDP64 packet: session 10, sequence 8, message count 2, then length-prefixed
    messages (``count`` may differ from ``len(msgs)``: a heartbeat or a lie)."""
    n = len(msgs) if count is None else count
    return session + struct.pack(">QH", seq, n) + file_frames(msgs)


def mold(sequence: int, *messages: bytes, session: bytes = b"SESSION001", count=None) -> bytes:
    return mold_packet(sequence, messages, count, session)


def soup_packet(kind: bytes, payload: bytes = b"") -> bytes:
    """A SoupBinTCP packet: 2-byte length (type byte included), type, payload."""
    return struct.pack(">H", 1 + len(payload)) + kind + payload


soup = soup_packet


def soup_frames(msgs: Iterable[bytes]) -> bytes:
    """SoupBinTCP: each message in a sequenced-data (``S``) packet."""
    return b"".join(soup_packet(b"S", m) for m in msgs)


def soup_s(*messages: bytes) -> bytes:
    return soup_frames(messages)


def framed(framing: int, msgs, first_seq: int = 1) -> bytes:
    """``msgs`` in ``framing``: one message per frame (MoldUDP64: one per packet)."""
    if framing == FILE:
        return file_frames(msgs)
    if framing == SOUP:
        return soup_frames(msgs)
    return b"".join(mold_packet(first_seq + i, [m]) for i, m in enumerate(msgs))


def overhead(framing: int) -> int:
    """Bytes before a message's type byte in a one-message frame of ``framing``."""
    return {FILE: 2, MOLD: 22, SOUP: 3}[framing]
