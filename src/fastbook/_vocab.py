"""The one Python definition of fastbook's shared vocabulary: sides, event actions and flags.

Every Python module takes these names from here (the public homes re-export
them: ``fastbook.BID``/``fastbook.ASK`` and ``fastbook.events.Action``/``Flags``).
The compiled cores define the same values in C (``FB_BID``/``FB_ASK`` in
``_core.pxd``, the ``FB_*`` action and flag codes in ``_l3.pxd``);
``tests/package/test_vocabulary.py`` checks that the two agree.

This is a leaf module (nothing but :mod:`enum`) so that the twins, the codecs
and :mod:`fastbook.events` can all import it without import cycles and without
pulling the event dtype into modules that only need a side code.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["ASK", "BID", "INT64_MAX", "INT64_MIN", "NO_SIDE", "Action", "Flags"]

#: ``side`` of a bid (buy) level or order.
BID: Final = 1
#: ``side`` of an ask (sell) level or order.
ASK: Final = 2
#: ``side`` of an event with no side (CLEAR, STATUS, ...).
NO_SIDE: Final = 0

#: The range of an event's int64 fields (prices, quantities, times in ns, sequences):
#: what a codec accepts from text must fit here before it reaches the compiled core.
INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1


class Action(enum.IntEnum):
    """What an event does to a book (``docs/events.md`` gives the exact effect of each).

    0 is deliberately not an action, so a zero-filled array is refused instead
    of being read as a batch of adds.
    """

    ADD = 1             #: a new resting order (L3) / quantity added at a price (L2)
    REDUCE = 2          #: partial cancel: the order loses ``qty``
    EXECUTE = 3         #: the resting order traded ``qty`` (visible execution)
    DELETE = 4          #: the order leaves the book entirely
    REPLACE = 5         #: cancel ``order_id``, add ``new_order_id`` at the back of its level
    SET_LEVEL = 6       #: L2: the absolute quantity at ``price`` (0 removes the level)
    CLEAR = 7           #: empty the whole book
    TRADE = 8           #: a trade print with no book effect (hidden order, cross, ...)
    SNAPSHOT_BEGIN = 9  #: empty the book; a full snapshot follows
    SNAPSHOT_END = 10   #: the snapshot is complete (no book effect)
    STATUS = 11         #: trading status change (halt, quoting, resume); no book effect


class Flags(enum.IntFlag):
    """Bits of the ``flags`` field. Unlisted bits are reserved and must be 0."""

    NONE = 0
    #: Last event of an exchange packet or message batch: the book is consistent after it.
    LAST_IN_PACKET = 0x0001
    #: The event belongs to a snapshot (between SNAPSHOT_BEGIN and SNAPSHOT_END).
    SNAPSHOT = 0x0002
    #: TRADE against a hidden / non-displayed order (LOBSTER type 5, ITCH non-displayable).
    HIDDEN = 0x0004
    #: TRADE from an auction or cross (opening/closing cross; LOBSTER type 6, ITCH 'Q').
    CROSS = 0x0008
    #: STATUS: trading is halted.
    HALTED = 0x0010
    #: STATUS: quotation only (orders accepted, no trading).
    QUOTING = 0x0020
    #: The aggressor was the buyer (TRADE / EXECUTE, when the venue says so).
    AGGRESSOR_BUY = 0x0040
    #: The aggressor was the seller (TRADE / EXECUTE, when the venue says so).
    AGGRESSOR_SELL = 0x0080
    #: EXECUTE / TRADE whose shares are printed later in a bulk print (ITCH 'C' printable = N).
    NON_PRINTABLE = 0x0100
    #: REPLACE whose ``new_order_id`` equals ``order_id`` (an in-place modify): the order keeps
    #: its queue place when the price is unchanged and the quantity does not grow; otherwise it
    #: goes to the back of its level, as any REPLACE (J-GATE ITCH 'U', the JPX priority rule).
    KEEP_PRIORITY = 0x0200


# Their public home is fastbook.events (docs, help() and pickles name it).
Action.__module__ = Flags.__module__ = "fastbook.events"
