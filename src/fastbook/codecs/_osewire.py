"""Definitions of the OSE ITCH (J-GATE) protocol that the kernels and the decoder share.

The twin ``_pyose`` parses with the layouts and re-exports the rest;
``ose_itch`` and ``jpx_csv`` (which reads the same day from JPX's CSV files)
import them from here, so neither depends on the twin, and ``fastbook.synth``
writes with the same layouts. The wire codes OSE shares with NASDAQ ITCH are in
``_itchwire``.
"""

from __future__ import annotations

from fastbook._vocab import Flags

#: Message length in bytes, type byte included, length prefix excluded.
MESSAGE_LENGTHS: dict[str, int] = {
    "T": 5, "S": 6, "R": 129, "M": 18, "L": 25, "O": 29, "A": 37, "F": 44, "E": 52,
    "C": 58, "U": 36, "D": 18, "P": 50, "Z": 53,
}
#: Each type's layout in struct notation, type byte first (``docs/ose-itch.md``).
LAYOUTS: dict[str, str] = {
    "T": ">cI", "S": ">cIc", "R": ">cII32s32s12sB3sHHIIIQBIiIHB", "M": ">cIIIcI", "L": ">cIIQii",
    "O": ">cII20s", "A": ">cIQIcIQiHB", "F": ">cIQIcIQiHB7s", "E": ">cIQIcQQI7s7s",
    "C": ">cIQIcQQI7s7sicc", "U": ">cIQIcIQiH", "D": ">cIQIc", "P": ">cIQIcQIi7s7scc",
    "Z": ">cIIQQiiiQQ",
}

#: Statuses only the OSE kernel returns (beside those of ``_itchwire``).
STATUS_NO_SECONDS = -6        # a nanosecond message before any T (seconds) message
STATUS_UNKNOWN_BOOK = -7      # an order book id that no R (directory) message named
STATUS_NO_PRICE = -8          # INT32_MIN ("no price") where a price is required

#: Kinds of invalid message counted (not raised) when ``decode_chunk`` is given
#: ``invalid``, in index order.
INVALID_KINDS = ("no_seconds", "unknown_book", "no_price")

#: The wire's "no price": the smallest int32.
NO_PRICE = -(1 << 31)

#: Columns of the ``equilibrium`` table ``decode_chunk`` fills (one row per instrument).
EQUILIBRIUM_FIELDS = ("ts", "price", "bid_qty", "ask_qty", "best_bid", "best_ask",
                      "best_bid_qty", "best_ask_qty")
#: Slots of the ``state`` array carried between ``decode_chunk`` calls.
STATE_FIELDS = ("seconds", "mold_mode", "mold_next", "mold_left")

#: How an ``O`` state name becomes STATUS flags: the first rule whose word the name contains.
_STATE_RULES: tuple[tuple[bytes, int], ...] = (
    (b"ZARABA", 0),                          # continuous trading
    (b"PRE_OPEN", int(Flags.QUOTING)),       # orders accepted, no matching (itayose ahead)
    (b"PRE_CLOSE", int(Flags.QUOTING)),
    (b"DCB", int(Flags.QUOTING)),            # dynamic circuit breaker: an auction follows
    (b"SCB", int(Flags.QUOTING)),
    (b"ITAYOSE", int(Flags.QUOTING)),
    (b"HALT", int(Flags.HALTED)),
    (b"SUSP", int(Flags.HALTED)),
    (b"STOP", int(Flags.HALTED)),
    (b"CLOSE", int(Flags.HALTED)),
)


def state_flags(name: str | bytes) -> int:
    """STATUS flags for an order book state name (``docs/ose-itch.md``): QUOTING, HALTED or 0.

    >>> [state_flags(n) for n in ("ZARABA", "M_PRE_OPEN_NO_J-NET", "M_CLOSE", "OTHER")]
    [0, 32, 16, 0]
    """
    raw = name.encode("ascii", "replace") if isinstance(name, str) else bytes(name)
    for word, flags in _STATE_RULES:
        if word in raw:
            return flags
    return 0
