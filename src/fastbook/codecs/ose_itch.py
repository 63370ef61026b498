"""Osaka Exchange (JPX J-GATE, Nasdaq Genium INET) ITCH: messages, framings, a streaming decoder.

The Osaka Exchange's derivatives (Nikkei 225 and TOPIX futures and options,
combinations) are published in the Genium INET dialect of ITCH, a different
format from NASDAQ's ITCH 5.0 (``docs/ose-itch.md`` gives the layouts and the
differences). Three levels, as for :mod:`fastbook.codecs.itch50`:

* :func:`iter_messages` yields one ``NamedTuple`` per message for looking at a
  file (slow by design);
* :func:`decode_events` turns a whole buffer into normalized events plus the
  decoder's reference tables;
* :class:`Decoder` streams chunks of any size into event batches for a
  :class:`fastbook.BookSet`, registering an L3 instrument per order book
  directory (``R``) message, and is what ``fastbook.replay(path,
  codec="ose_itch")`` drives. Its inner loop is the compiled kernel
  ``fastbook.codecs._ose`` (GIL released, no Python object per message); the
  pure-Python twin ``fastbook.codecs._pyose`` is the reference the tests compare
  it with, and is used when ``FASTBOOK_NO_EXTENSIONS=1``.

Orders are keyed by (order book id, side, order id): each order book is its own
instrument, and its book is an ``OrderBook(side_keys=True)``, so the same id
may rest on both sides. Prices are signed, at each book's own "decimals in
price" (the instrument's ``price_decimals``); quantities are integers
(``qty_decimals=0``). Event times are ns since the UNIX epoch (``TS_ORIGIN``):
the last ``T`` seconds * 10**9 + the message's nanoseconds.

Event mapping (``docs/events.md`` gives each action's effect): ``A``/``F`` ADD;
``E`` EXECUTE (with side; no price on the wire); ``C`` EXECUTE at the trade
price, flagged CROSS when it occurred at a cross and NON_PRINTABLE when not
printable; ``U`` REPLACE of the order by itself with ``Flags.KEEP_PRIORITY``
(the JPX rule: a quantity decrease at the same price keeps the queue place,
anything else goes to the back); ``D`` DELETE; ``P`` TRADE; ``O`` STATUS
(flags from the state name, :func:`state_flags`). ``T``, ``S``, ``R``, ``M``,
``L`` and ``Z`` make no event; ``R``, ``M``, ``L``, ``O`` and ``Z`` fill the
decoder's tables (:attr:`Decoder.directory`, ``legs``, ``tick_sizes``,
``states``, :meth:`Decoder.equilibrium`).

Bad input never passes silently: a known type with a wrong length, a message
before any ``T``, a message of an order book no ``R`` named, and ``INT32_MIN``
("no price") where a price is required raise :class:`fastbook.DecodeError`
naming the stream, byte offset, message number and order book id, or with
``on_invalid="skip"`` are counted by kind (:attr:`Decoder.invalid`) and
skipped. :func:`check_queues` compares every order's exchange-given position
with fastbook's own queue rank.

>>> from fastbook.synth import ose_day
>>> from fastbook.codecs import ose_itch
>>> events, dec = ose_itch.decode_events(ose_day(3000, seed=1))
>>> [d["symbol"] for d in dec.directory][:2]
['NK225_F_2406', 'NK225M_F_2406']
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastbook import _select
from fastbook._vocab import BID
from fastbook.codecs import _pyose
from fastbook.codecs._framed import FramedDecoder
from fastbook.codecs._itchwire import (
    FRAMING_BINARYFILE,
    FRAMING_MOLDUDP64,
    STATUS_GAP,
    STATUS_TRUNCATED,
    STATUS_WRONG_LENGTH,
    STATUS_ZERO_LENGTH,
)
from fastbook.codecs._osewire import (
    EQUILIBRIUM_FIELDS,
    INVALID_KINDS,
    MESSAGE_LENGTHS,
    NO_PRICE,
    STATUS_NO_PRICE,
    STATUS_NO_SECONDS,
    STATUS_UNKNOWN_BOOK,
    state_flags,
)
from fastbook.codecs._pyose import (
    book_map_new,
    book_map_set,
    iter_messages,
    new_state,
    order_book_directory,
    parse_message,
)
from fastbook.errors import DecodeError
from fastbook.events import EVENT_DTYPE, Action

__all__ = [
    "BATCH_EVENTS",
    "FRAMINGS",
    "INVALID_KINDS",
    "MESSAGE_LENGTHS",
    "NO_PRICE",
    "TS_ORIGIN",
    "UTC_OFFSET_NS",
    "VENUE",
    "Decoder",
    "QueueDisagreement",
    "QueueReport",
    "check_queues",
    "decode_events",
    "iter_messages",
    "order_book_directory",
    "parse_message",
    "register_book",
    "state_flags",
]

_kernel = _select.load("codecs._ose", "codecs._pyose", "OSE ITCH kernel")

#: Framing names accepted by :class:`Decoder` and their kernel codes.
FRAMINGS: dict[str, int] = {"binaryfile": FRAMING_BINARYFILE, "moldudp64": FRAMING_MOLDUDP64}
#: Event times are ns since the UNIX epoch (UTC), as the ``T`` messages give them.
TS_ORIGIN = "epoch"
#: Japan Standard Time is UTC+9 all year (no daylight saving): local time = epoch + this.
UTC_OFFSET_NS = 9 * 3600 * 1_000_000_000
#: The venue recorded for the instruments (ISO 10383 MIC of the Osaka Exchange).
VENUE = "XOSE"
#: Events per batch a :class:`Decoder` hands out (64 bytes each: 4 MiB).
BATCH_EVENTS = 1 << 16
_DIRECTORY_SLOTS = 64

_STATUS_TEXT = {
    STATUS_WRONG_LENGTH: "the length prefix does not match the message type's length",
    STATUS_ZERO_LENGTH: "a length prefix of 0 (not valid framing)",
    STATUS_TRUNCATED: "the stream ends inside a message or packet (truncated)",
    STATUS_GAP: "a MoldUDP64 sequence gap",
    STATUS_NO_SECONDS: "a message before any T (seconds) message, so its time is unknown",
    STATUS_UNKNOWN_BOOK: "an order book id that no R (order book directory) message named",
    STATUS_NO_PRICE: "INT32_MIN ('no price') where the message needs a price",
}


def _kernel_module(kernel: Any) -> Any:
    if kernel is None or kernel is True:
        return _kernel
    if kernel is False:
        return _pyose
    if not hasattr(kernel, "decode_chunk"):
        raise TypeError(f"kernel must be True (compiled when available), False (the pure-Python "
                        f"twin) or a module with decode_chunk, got {kernel!r}")
    return kernel


_OBID_OFFSET = {"A": 13, "F": 13, "E": 13, "C": 13, "U": 13, "D": 13, "P": 26, "Z": 5, "O": 5}
_U32 = struct.Struct(">I")


class Decoder(FramedDecoder):
    """Streaming OSE ITCH decoder feeding a :class:`fastbook.BookSet`.

    Parameters
    ----------
    bookset : fastbook.driver.Instruments, fastbook.BookSet or None
        Where the decoder announces one L3 instrument (``side_keys=True``, ``price_decimals`` =
        the book's decimals in price, ``qty_decimals=0``, ``lot_size`` = round
        lot) per order book directory message of a chosen symbol; an instrument
        already in the set under the same (symbol, venue) is reused. ``None``:
        no books; every event's ``instrument`` is its order book id (scanning).
    symbols : iterable of str, optional
        Only these symbols (the ``R`` message's symbol, e.g.
        ``"NK225_F_2406"``) get books; other books' messages are decoded,
        counted and dropped in the kernel. All when omitted.
    framing : {"binaryfile", "moldudp64"}
        2-byte length before each message, or MoldUDP64 packets.
    venue, name : str
        Recorded in instrument metadata; names the stream in error messages.
    batch : int
        Events per batch handed out by :meth:`feed`.
    kernel : bool or module
        True: the compiled kernel (when built); False: the pure-Python twin.
    on_invalid : {"raise", "skip"}
        What to do with a message before any ``T``, of an unknown order book,
        or with ``INT32_MIN`` as a required price (see :attr:`invalid`).
    keep_positions : bool
        Keep each event's exchange order book position (``A``/``F``/``U``;
        0 otherwise) in :attr:`batch_positions`, parallel to the last batch.

    Use :meth:`feed` for each chunk and apply each batch before asking for the
    next (a batch is a view of a reused buffer), then :meth:`close`.
    """

    _MESSAGE_LENGTHS = MESSAGE_LENGTHS

    def __init__(self, bookset: Any, *, symbols: Iterable[str] | None = None,
                 framing: str = "binaryfile", venue: str = VENUE, name: str = "<stream>",
                 batch: int = BATCH_EVENTS, kernel: Any = True, on_invalid: str = "raise",
                 keep_positions: bool = False) -> None:
        super().__init__(bookset, symbols=symbols, framing=framing, framings=FRAMINGS,
                         venue=venue, name=name, batch=batch)
        if on_invalid not in ("raise", "skip"):
            raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
        self.on_invalid = on_invalid
        self._kernel = _kernel_module(kernel)
        self._positions = np.zeros(batch, np.uint32) if keep_positions else None
        self._state = new_state()
        self._directory = np.zeros(_DIRECTORY_SLOTS, np.int64)
        self._invalid = np.zeros(len(INVALID_KINDS), np.uint64) if on_invalid == "skip" \
            else None
        self._book_map = book_map_new(64) if bookset is not None else None
        self._equilibrium = self._new_equilibrium(64) if bookset is not None else None
        # (FramedDecoder's ``directory`` holds ``order_book_directory`` dicts, and its
        # ``instruments`` is keyed by order book id)
        #: combination order book id -> its legs: dicts of leg (order book id), side, ratio
        self.legs: dict[int, list[dict[str, Any]]] = {}
        #: order book id -> tick size table: (tick_size, price_from, price_to) rows
        self.tick_sizes: dict[int, list[tuple[int, int, int]]] = {}
        #: order book id -> its state changes: (ts, state name) in order
        self.states: dict[int, list[tuple[int, str]]] = {}
        #: positions of the events of the last batch (``keep_positions=True``)
        self.batch_positions: np.ndarray | None = None
        self._obids: dict[int, int] = {}   # instrument -> order book id

    @staticmethod
    def _new_equilibrium(rows: int) -> np.ndarray:
        table = np.zeros((rows, len(EQUILIBRIUM_FIELDS)), np.int64)
        table[:, 0] = -1        # no Z yet
        return table


    @property
    def seconds(self) -> int | None:
        """The last ``T`` seconds seen (None before the first)."""
        s = int(self._state[0])
        return None if s < 0 else s

    @property
    def invalid(self) -> dict[str, int]:
        """Invalid messages skipped so far by kind (``on_invalid="skip"``; all 0 otherwise)."""
        values = self._invalid.tolist() if self._invalid is not None else [0] * 3
        return dict(zip(INVALID_KINDS, (int(v) for v in values), strict=True))

    def equilibrium(self) -> dict[int, dict[str, Any]]:
        """The last equilibrium price update (``Z``) of every chosen book that had one.

        Keyed by order book id; each value has ``ts``, ``price``, ``bid_qty``,
        ``ask_qty``, ``best_bid``, ``best_ask``, ``best_bid_qty`` and
        ``best_ask_qty`` (prices at the book's decimals; ``None`` for no price).
        """
        out: dict[int, dict[str, Any]] = {}
        if self._equilibrium is None:
            return out
        for inst, obid in self._obids.items():
            row = self._equilibrium[inst].tolist()
            if row[0] < 0:
                continue
            entry = dict(zip(EQUILIBRIUM_FIELDS, row, strict=True))
            for key in ("price", "best_bid", "best_ask"):
                if entry[key] == NO_PRICE:
                    entry[key] = None
            out[obid] = entry
        return out

    def _decode(self, buf: Any, pos: int, final: bool) -> tuple[int, int, int, int, int]:
        return self._kernel.decode_chunk(
            buf, pos, self._framing, self._events, self._counts, state=self._state,
            book_map=self._book_map, directory=self._directory, positions=self._positions,
            equilibrium=self._equilibrium, invalid=self._invalid, seq=self.messages,
            final=final)

    def _batch(self, n_events: int) -> np.ndarray:
        if self._positions is not None:
            self.batch_positions = self._positions[:n_events]
        return self._events[:n_events]

    def _error(self, buf: Any, pos: int, status: int) -> str:
        where = f"{self.name}: byte {self._base}, message {self.messages} ({self.framing})"
        text = _STATUS_TEXT.get(status, f"status {status}")
        view = memoryview(buf)
        off = pos + 2
        if status in (STATUS_NO_SECONDS, STATUS_UNKNOWN_BOOK, STATUS_NO_PRICE) and off < len(view):
            t = chr(view[off])
            text = f"{t!r} message: {text}"
            if status in (STATUS_UNKNOWN_BOOK, STATUS_NO_PRICE) and t in _OBID_OFFSET:
                (obid,) = _U32.unpack_from(view, off + _OBID_OFFSET[t])
                text += f" (order book id {obid}"
                if t in "AFECUD":
                    text += f", order id {int.from_bytes(view[off + 5:off + 13], 'big')}"
                text += ")"
            if status == STATUS_UNKNOWN_BOOK:
                text += "; use on_invalid='skip' to count and skip such messages"
        elif status == STATUS_WRONG_LENGTH and off < len(view):
            t = chr(view[off])
            length = (view[pos] << 8) | view[pos + 1]
            text += f": type {t!r} has length {length}, its layout says {MESSAGE_LENGTHS[t]}"
        return f"{where}: {text}"

    def _directory_message(self, buf: Any, offset: int) -> None:
        """An R, M, L or O message just reported by the kernel: tables and instruments."""
        view = memoryview(buf)
        t = chr(view[offset])
        msg = parse_message(view[offset:offset + MESSAGE_LENGTHS[t]], strict=False)
        if t == "R":
            self._register(order_book_directory(msg))
            return
        ts = int(self._state[0]) * 1_000_000_000 + msg.ns
        if t == "M":
            self.legs.setdefault(msg.combination_order_book_id, []).append(
                {"leg": msg.leg_order_book_id, "side": msg.leg_side, "ratio": msg.leg_ratio})
        elif t == "L":
            self.tick_sizes.setdefault(msg.order_book_id, []).append(
                (msg.tick_size, msg.price_from, msg.price_to))
        else:
            self.states.setdefault(msg.order_book_id, []).append((ts, msg.state_name))

    def _register(self, entry: dict[str, Any]) -> None:
        self.directory.append(entry)
        if self.registry is None or self._book_map is None:
            return
        inst = register_book(self.registry, entry, symbols=self.symbols, venue=self.venue,
                             where=f"{self.name}: message {self.messages}")
        obid = entry["order_book_id"]
        self._book_map = book_map_set(self._book_map, obid, inst)
        if inst < 0:
            return
        self.instruments[obid] = inst
        self._obids[inst] = obid
        assert self._equilibrium is not None
        rows = len(self._equilibrium)
        if inst >= rows:
            bigger = self._new_equilibrium(max(2 * rows, inst + 1))
            bigger[:rows] = self._equilibrium
            self._equilibrium = bigger


def register_book(registry: Any, entry: dict[str, Any], *, symbols: frozenset[str] | None,
                  venue: str, where: str) -> int:
    """The instrument of an order book directory entry, announced to ``registry``.

    ``registry`` is the driver's :class:`fastbook.driver.Instruments` (it finds
    the instrument or makes its book). Returns -1 when ``symbols`` does not
    choose the book. The instrument is an L3 book with ``side_keys=True``, the
    entry's decimals in price and ``qty_decimals=0``; an existing one must have
    the same price decimals.
    """
    obid, symbol = entry["order_book_id"], entry["symbol"]
    if symbols is not None and symbol not in symbols:
        return -1
    decimals = entry["price_decimals"]
    try:
        inst = registry.announce(
            symbol, venue=venue, price_decimals=decimals, qty_decimals=0,
            lot_size=max(int(entry["round_lot"]), 1), capacity=16, order_capacity=64,
            side_keys=True)
    except ValueError as exc:
        raise DecodeError(f"{where}: order book {obid} ({symbol!r}) cannot get a book: "
                          f"{exc}") from None
    have = registry.instrument(inst)["price_decimals"]
    if have != decimals:
        raise DecodeError(f"{where}: order book {obid} ({symbol!r}) has {decimals} decimals "
                          f"in price, but the BookSet's instrument {inst} has {have}")
    return int(inst)


def decode_events(buf: Any, /, *, framing: str = "binaryfile", symbols: Iterable[str] | None = None,
                  kernel: Any = True, on_invalid: str = "raise") -> tuple[np.ndarray, Decoder]:
    """Decode a whole OSE ITCH buffer into ``(events, decoder)``.

    ``events`` is one array, ``instrument`` = the order in which the directory
    named the (chosen) books, 0, 1, ...; the finished :class:`Decoder` holds
    the tables (``directory``, ``legs``, ``tick_sizes``, ``states``,
    ``equilibrium()``, ``counts()``, ``instruments``).
    """
    from fastbook.l3 import BookSet

    dec = Decoder(BookSet(), symbols=symbols, framing=framing, kernel=kernel,
                  on_invalid=on_invalid)
    parts = [batch.copy() for batch in dec.feed(buf)]
    parts += [batch.copy() for batch in dec.close()]
    events = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
    return events, dec


# -- the queue-position check -------------------------------------------------------------------

@dataclass(frozen=True)
class QueueDisagreement:
    """One order whose exchange position is not fastbook's rank (see :func:`check_queues`)."""

    message: int            #: message number (0-based) in the stream
    ts: int                 #: exchange time, ns since the epoch
    order_book_id: int
    symbol: str
    order_id: int
    side: int               #: 1 bid, 2 ask
    action: str             #: "ADD" or "REPLACE"
    position: int           #: the exchange's order book position (1-based)
    rank: int               #: fastbook's rank of the order after the event
    kind: str               #: "mismatch", or "beyond queue" (position > orders on that side)


@dataclass
class QueueReport:
    """What :func:`check_queues` found."""

    messages: int = 0                       #: messages decoded
    checked: int = 0                        #: A / F / U positions compared
    mismatched: int = 0                     #: disagreements, all kinds
    beyond_queue: int = 0                   #: disagreements whose position was past the queue
    disagreements: list[QueueDisagreement] = field(default_factory=list)  #: the first ``limit``

    @property
    def ok(self) -> bool:
        """True when every position agreed."""
        return self.mismatched == 0

    def __str__(self) -> str:
        head = (f"{self.checked:,} order book positions checked over {self.messages:,} "
                f"messages: {self.mismatched:,} disagreements ({self.beyond_queue:,} beyond "
                f"the queue)")
        rows = [f"  message {d.message}: {d.symbol} (book {d.order_book_id}) order "
                f"{d.order_id} {'bid' if d.side == BID else 'ask'} {d.action}: exchange position "
                f"{d.position}, fastbook rank {d.rank} ({d.kind})"
                for d in self.disagreements[:20]]
        more = len(self.disagreements) - len(rows)
        if more > 0:
            rows.append(f"  ... {more} more listed in .disagreements")
        return "\n".join([head, *rows])


def _side_orders(book: Any, side: int) -> int:
    return sum(book.count_at(side, price) for price, _ in book.levels(side))


def check_queues(source: Any, *, codec: str = "ose_itch", framing: str | None = None,
                 symbols: Iterable[str] | str | None = None, limit: int | None = 1000,
                 chunk_size: int = 4 << 20, compression: str = "auto",
                 **codec_options: Any) -> QueueReport:
    """Replay ``source`` and compare every exchange order book position with fastbook's queues.

    OSE ``A``/``F`` (add) and ``U`` (replace) messages carry the order's
    **order book position**: its 1-based rank among all live orders on its
    side of its order book in price-time priority (1 = the best-priced, oldest
    order), just after the message. fastbook's books keep FIFO queues by
    arrival with the JPX modify rule (``Flags.KEEP_PRIORITY``), so after each
    such event the order's ``OrderBook.rank`` must equal that position; every
    disagreement is reported. A position greater than the number of orders on
    that side is kind ``"beyond queue"``, any other difference ``"mismatch"``.

    Parameters
    ----------
    source : path, bytes-like or file object
        As for :func:`fastbook.replay` (gzip and zstd detected).
    codec : {"ose_itch", "jpx_csv"}
        The binary feed, or JPX's historical CSV form.
    framing : str, optional
        The codec's framing (``"binaryfile"`` / ``"moldudp64"``).
    symbols : iterable of str or comma-separated str, optional
        Check only these books.
    limit : int or None
        Keep at most this many disagreements in the report (the counts stay
        exact); None keeps all.
    **codec_options
        Passed to the codec's ``Decoder`` (``on_invalid``, ``venue``).

    Returns
    -------
    QueueReport
        ``checked``, ``mismatched``, ``beyond_queue`` and the disagreements.

    Raises
    ------
    fastbook.DecodeError, fastbook.UpdateError
        The stream is malformed, or a book event fails (nothing is skipped:
        a queue check of a book that went wrong would mean nothing).
    """
    from fastbook import codecs
    from fastbook.l3 import BookSet
    from fastbook.sources import open_source

    module = codecs.load(codec)
    if isinstance(symbols, str):
        symbols = [s.strip() for s in symbols.split(",") if s.strip()]
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    if framing is not None:
        codec_options["framing"] = framing
    books = BookSet()
    report = QueueReport()
    add, replace = int(Action.ADD), int(Action.REPLACE)
    with open_source(source, chunk_size=chunk_size, compression=compression) as src:
        dec = module.Decoder(books, symbols=symbols, name=src.name, keep_positions=True,
                             **codec_options)

        def run(batches: Iterator[np.ndarray]) -> None:
            for events in batches:
                positions = dec.batch_positions
                assert positions is not None
                todo = np.flatnonzero((positions != 0) & ((events["action"] == add)
                                                          | (events["action"] == replace)))
                if len(todo) == 0:
                    books.apply(events)
                    continue
                report.checked += len(todo)
                wanted = dict.fromkeys(todo.tolist())
                rows = events[todo].tolist()
                pos_list = positions[todo].tolist()
                info = {i: (row, p) for i, row, p in zip(todo.tolist(), rows, pos_list,
                                                         strict=True)}

                def check(i: int, inst: int, wanted: dict[int, None] = wanted,
                          info: dict[int, Any] = info) -> None:
                    if i not in wanted:
                        return
                    row, position = info[i]
                    ts, _, _, action, side, _, _, _, order_id, _, sequence = row
                    book = books[inst]
                    rank = book.rank(order_id, side=side)
                    if rank == position:
                        return
                    beyond = position > _side_orders(book, side)
                    report.mismatched += 1
                    report.beyond_queue += beyond
                    if limit is None or len(report.disagreements) < limit:
                        obid = getattr(dec, "_obids", {}).get(inst, -1)
                        report.disagreements.append(QueueDisagreement(
                            message=sequence, ts=ts, order_book_id=obid,
                            symbol=books.instrument(inst)["symbol"], order_id=order_id,
                            side=side, action=Action(action).name, position=position,
                            rank=-1 if rank is None else rank,
                            kind="beyond queue" if beyond else "mismatch"))

                books.apply(events, callback=check)

        for chunk in src:
            run(dec.feed(chunk))
        run(dec.close())
    report.messages = dec.messages
    return report
