"""NASDAQ TotalView-ITCH 5.0: messages, framings, and a streaming decoder into books.

Three levels, from exploration to full speed:

* :func:`iter_messages` yields one ``NamedTuple`` per message (``AddOrder``,
  ``OrderReplace``, ...; field names follow the specification) for looking at a
  file. Slow by design: a Python object per message.
* :func:`decode_events` turns a whole buffer into normalized events
  (``fastbook.events.EVENT_DTYPE``) plus the stock directory.
* :class:`Decoder` streams chunks of any size into event batches for a
  :class:`fastbook.BookSet`, registering an instrument per stock directory
  (``R``) message, and is what :func:`fastbook.replay` drives. Its inner loop is
  the compiled kernel ``fastbook.codecs._itch50`` (no Python object per
  message, GIL released); the pure-Python twin ``fastbook.codecs._pyitch50`` is
  the readable reference that the tests compare it with, and is used when
  ``FASTBOOK_NO_EXTENSIONS=1``.

Framings: ``"binaryfile"`` (NASDAQ's historical files: a 2-byte big-endian
length before each message), ``"moldudp64"`` (packets: session, sequence
number, count, then length-prefixed messages) and ``"soupbintcp"``
(2-byte length, packet type; ``S`` packets carry one message each).

Book rules (``docs/events.md`` gives each event's exact effect): ``A``/``F`` add
at the back of the queue; ``E``/``C`` execute and ``X`` cancels part of an order,
all keeping its priority; ``D`` deletes; ``U`` replaces (the old reference is
removed, the new one joins the back of its level, same side); ``P``/``Q`` are
trade prints (``TRADE``, no book effect); ``H`` trading actions become
``STATUS`` events (halts do not clear books); ``B``, ``I``, ``N``, ``S`` and the
other reference messages do not touch books. Prices are Price(4): fixed-point
with 4 decimals, so ``price_decimals=4``. Times are ns since midnight.

Every known message type's length is checked against its prefix; unknown types
are skipped by length and counted. Framing errors raise
:class:`fastbook.DecodeError` naming the byte offset and message number.

>>> from fastbook.synth import itch_day
>>> from fastbook.codecs import itch50
>>> events, directory, counts = itch50.decode_events(itch_day(2000, n_symbols=2))
>>> sorted(d["symbol"] for d in directory)
['SYM0001', 'SYM0002']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fastbook import _select
from fastbook.codecs._framed import FramedDecoder
from fastbook.codecs._itch50wire import MESSAGE_LENGTHS
from fastbook.codecs._itchwire import (
    FRAMING_BINARYFILE,
    FRAMING_MOLDUDP64,
    FRAMING_SOUPBINTCP,
    STATUS_GAP,
    STATUS_TRUNCATED,
    STATUS_WRONG_LENGTH,
    STATUS_ZERO_LENGTH,
)
from fastbook.codecs._pyitch50 import iter_messages, parse_message, stock_directory
from fastbook.events import EVENT_DTYPE

__all__ = [
    "FRAMINGS",
    "MESSAGE_LENGTHS",
    "PRICE_DECIMALS",
    "TS_ORIGIN",
    "VENUE",
    "Decoder",
    "decode_events",
    "iter_messages",
    "parse_message",
    "stock_directory",
]

_kernel = _select.load("codecs._itch50", "codecs._pyitch50", "ITCH 5.0 kernel")

#: Framing names accepted by :class:`Decoder` and their kernel codes.
FRAMINGS: dict[str, int] = {"binaryfile": FRAMING_BINARYFILE, "moldudp64": FRAMING_MOLDUDP64,
                            "soupbintcp": FRAMING_SOUPBINTCP}
#: ITCH prices are Price(4): integers with 4 implied decimals.
PRICE_DECIMALS = 4
#: Event times are ns since midnight (exchange local time, US/Eastern), as on the wire.
TS_ORIGIN = "midnight"
#: The venue recorded for instruments of a NASDAQ ITCH feed (``Decoder(venue=...)`` for BX, PSX).
VENUE = "XNAS"

#: Events per batch a :class:`Decoder` hands out (64 bytes each: 4 MiB).
BATCH_EVENTS = 1 << 16

_STATUS_TEXT = {
    STATUS_WRONG_LENGTH: "the length prefix does not match the message type's length",
    STATUS_ZERO_LENGTH: "a length prefix of 0 (not valid ITCH framing; RITCH's writer leaves "
                        "such prefixes)",
    STATUS_TRUNCATED: "the stream ends inside a message (truncated)",
    STATUS_GAP: "a MoldUDP64 sequence gap",
}


class Decoder(FramedDecoder):
    """Streaming ITCH 5.0 decoder feeding a :class:`fastbook.BookSet`.

    Parameters
    ----------
    bookset : fastbook.driver.Instruments, fastbook.BookSet or None
        Where the decoder announces one L3 instrument per stock directory
        message of a chosen symbol (``price_decimals=4``, ``lot_size`` = round
        lot, ``venue``); a BookSet is wrapped in the driver's
        :class:`~fastbook.driver.Instruments`, which makes the books. An
        instrument already in the set under the same (symbol, venue) is reused.
        ``None``: no books; every event's ``instrument`` is its stock locate
        (for scanning a file).
    symbols : iterable of str, optional
        Only these symbols get books; messages of the others are decoded,
        counted and dropped inside the kernel. All symbols when omitted.
    framing : {"binaryfile", "moldudp64", "soupbintcp"}
    venue : str
        Recorded in the instrument metadata.
    name : str
        Names the stream in error messages.
    batch : int
        Events per batch handed out by :meth:`feed`.

    Use :meth:`feed` for each chunk of bytes (any size, frames may straddle
    chunks) and apply each batch it yields before asking for the next (a batch
    is a view of a buffer the decoder reuses), then :meth:`close`.
    """

    _MESSAGE_LENGTHS = MESSAGE_LENGTHS

    def __init__(self, bookset: Any, *, symbols: Iterable[str] | None = None,
                 framing: str = "binaryfile", venue: str = VENUE, name: str = "<stream>",
                 batch: int = BATCH_EVENTS, kernel: Any = None) -> None:
        super().__init__(bookset, symbols=symbols, framing=framing, framings=FRAMINGS,
                         venue=venue, name=name, batch=batch)
        self._kernel = _kernel if kernel is None else kernel
        # the kernel stops after each frame or packet holding an R (at most ~1600 in a
        # 64 KiB packet), so the new locate is mapped before its next message
        self._directory = np.zeros(2048, np.int64)
        self._locate_map = np.full(65536, -1, np.int32) if bookset is not None else None
        # (FramedDecoder's ``directory`` holds ``stock_directory`` dicts, and its
        # ``instruments`` is keyed by stock locate)

    def _decode(self, buf: Any, pos: int, final: bool) -> tuple[int, int, int, int, int]:
        return self._kernel.decode_chunk(
            buf, pos, self._framing, self._events, self._counts, locate_map=self._locate_map,
            directory=self._directory, seq=self.messages, final=final)

    def _error(self, buf: Any, pos: int, status: int) -> str:
        return (f"{self.name}: byte {self._base}, message {self.messages} ({self.framing}): "
                f"{_STATUS_TEXT.get(status, status)}")

    def _directory_message(self, buf: Any, offset: int) -> None:
        self._register(buf, offset)

    def _register(self, buf: Any, offset: int) -> None:
        msg = bytes(memoryview(buf)[offset:offset + MESSAGE_LENGTHS["R"]])
        entry = stock_directory(msg)
        self.directory.append(entry)
        symbol, locate = entry["symbol"], entry["locate"]
        if self._locate_map is None:
            return
        if self.symbols is not None and symbol not in self.symbols:
            self._locate_map[locate] = -1
            return
        assert self.registry is not None
        inst = self.registry.announce(
            symbol, venue=self.venue, price_decimals=PRICE_DECIMALS, qty_decimals=0,
            lot_size=max(int(entry["round_lot"]), 1), capacity=16, order_capacity=64)
        self._locate_map[locate] = inst
        self.instruments[locate] = inst


def decode_events(buf: Any, /, *, framing: str = "binaryfile", symbols: Iterable[str] | None = None,
                  kernel: Any = None) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, int]]:
    """Decode a whole ITCH buffer into ``(events, directory, counts)``.

    ``events`` is one array with ``instrument`` = the order in which the
    directory named the (chosen) symbols, 0, 1, ...; ``directory`` lists every
    stock directory entry; ``counts`` gives messages by type.
    """
    from fastbook.l3 import BookSet

    dec = Decoder(BookSet(), symbols=symbols, framing=framing, kernel=kernel)
    parts = [batch.copy() for batch in dec.feed(buf)]
    parts += [batch.copy() for batch in dec.close()]
    events = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
    return events, dec.directory, dec.counts()
