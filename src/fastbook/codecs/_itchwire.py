"""Wire definitions the two ITCH-family twins share (NASDAQ ITCH 5.0 and OSE ITCH).

Both kernels take the same framing codes, stop with the same statuses, read
the same MoldUDP64 header and the same side bytes, and refuse a bad message
with the same checks; the codes and rules are written once here and imported
by ``_pyitch50`` and ``_pyose`` (which re-export the public codes) and by the
streaming decoders that turn a status into an error message.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from fastbook._checks import check_int
from fastbook._vocab import ASK, BID
from fastbook.errors import DecodeError

#: Framing codes accepted by ``decode_chunk`` and ``iter_messages``.
FRAMING_BINARYFILE = 0
FRAMING_MOLDUDP64 = 1
FRAMING_SOUPBINTCP = 2      # NASDAQ ITCH only

#: Statuses returned by ``decode_chunk`` (a kernel may add its own, below -5).
STATUS_OK = 0                 # all consumed, or an incomplete trailing frame: feed more bytes
STATUS_EVENTS_FULL = 1        # the events array is full
STATUS_DIRECTORY_FULL = 2     # the directory array is full (OSE: or a message was just reported)
STATUS_WRONG_LENGTH = -1      # a known type whose length is not the specification's
STATUS_ZERO_LENGTH = -2       # a length prefix of 0
STATUS_TRUNCATED = -3         # final=True and the buffer ends inside a frame or packet
STATUS_GAP = -5               # MoldUDP64 sequence number is not the expected one

U16 = struct.Struct(">H")                   # a length prefix
MOLD_HEADER = struct.Struct(">10sQH")       # session, sequence number, message count
MOLD_HEARTBEAT = 0                          # message counts that carry no messages
MOLD_END_OF_SESSION = 0xFFFF

#: The event side of an ITCH side byte ('B' buy, 'S' sell).
SIDES = {ord("B"): BID, ord("S"): ASK}

_INT64_MAX = (1 << 63) - 1
UINT64 = 1 << 64                            # sequence numbers are below this


def signed64(value: int) -> int:
    """The int64 whose bit pattern is the uint64 ``value``."""
    return value - UINT64 if value > _INT64_MAX else value


def length_by_byte(lengths: Mapping[str, int]) -> list[int]:
    """A codec's ``MESSAGE_LENGTHS`` indexed by the type byte (0 = unknown type)."""
    table = [0] * 256
    for type_char, length in lengths.items():
        table[ord(type_char)] = length
    return table


def check_framing(framing: Any, names: Mapping[int, str]) -> int:
    """``framing`` as one of a kernel's framing codes (``names``: code -> name, in order)."""
    framing = check_int(framing, "framing")
    if framing not in names:
        choices = [f"{code} ({name})" for code, name in names.items()]
        raise ValueError(f"framing must be {', '.join(choices[:-1])} or {choices[-1]}, "
                         f"got {framing}")
    return framing


def message_type(raw: bytes, lengths: Mapping[str, int], table: list[int], *,
                 protocol: str, version: str, authority: str, allow_unknown: bool) -> str | None:
    """The type character of one message, after checking it is a whole message of a known type.

    ``None`` for an unknown type when ``allow_unknown``. ``protocol`` and
    ``version`` name the protocol in the errors ("ITCH" / "ITCH 5.0"), and
    ``authority`` what fixes a type's length ("the specification", "its layout").
    """
    if not raw:
        raise DecodeError(f"empty {protocol} message (length 0): there is no type byte")
    type_char = chr(raw[0])
    expected = table[raw[0]]
    if expected == 0:
        if allow_unknown:
            return None
        raise DecodeError(f"unknown {version} message type {type_char!r} (byte 0x{raw[0]:02x}), "
                          f"length {len(raw)}; known types are {''.join(lengths)}")
    if len(raw) != expected:
        raise DecodeError(f"{protocol} message type {type_char!r} has length {len(raw)}, "
                          f"but {authority} says {expected}")
    return type_char
