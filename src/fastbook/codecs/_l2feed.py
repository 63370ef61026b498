"""What every exchange L2 feed codec shares: sync states, notices, errors, counts.

A venue codec (``binance``, ``coinbase``, ``kraken``, ``okx``, ``bybit``) is a
subclass of :class:`L2Feed`. It is plain logic with no network: the caller hands
it raw messages (``feed``) and, where the venue needs one, REST snapshots
(``snapshot``); it keeps one exact :class:`fastbook.Book` per symbol and returns
:class:`Notice` records telling a driver what to do (request a snapshot,
resubscribe, or that a book just became valid).

Invariants every venue keeps:

* A book is only ever *valid* in :attr:`SyncState.SYNCED`. Any rule violation
  (gap, checksum mismatch, crossed book, sequence reset) clears the book, moves
  the symbol to :attr:`SyncState.RESYNC` and returns a ``resync`` notice with
  the reason. No update is applied to a book known to be wrong.
* Every message is counted: applied, buffered, dropped (and why), ignored
  (heartbeats, acks, other channels), malformed.
* Bad input raises :class:`FeedError` naming the venue, symbol and sequence, or,
  with ``on_error="skip"``, is counted under ``"malformed"`` and kept in
  :attr:`L2Feed.errors` (the last :data:`KEEP_ERRORS`); the book is untouched.
  A message is validated completely (every entry of it) before any level of it
  touches a book; what a feed accepts fits the event columns (int64 times and
  sequences). A bad argument (a ``recv_ns`` that is not an int64 when the feed
  records, a snapshot symbol that is not a str) is a TypeError or ValueError,
  raised before the message is read.
* A venue's trade prints (its trade channel) are recorded as ``Action.TRADE``
  events, one per print, with the aggressor in the flags (:meth:`L2Feed._emit_trades`).
  A trade never touches a book, and never counts as a gap or a reason to resync.
"""

from __future__ import annotations

import enum
import operator
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fastbook._shard import symbol_filter
from fastbook._vocab import INT64_MAX, INT64_MIN, Action, Flags
from fastbook.errors import DecodeError

__all__ = [
    "COUNT_KEYS",
    "KEEP_ERRORS",
    "EventBuffer",
    "FeedError",
    "Instrument",
    "L2Feed",
    "Notice",
    "SymbolSync",
    "SyncState",
    "check_recv",
]

_TRADE = int(Action.TRADE)
_AGG_BUY, _AGG_SELL = int(Flags.AGGRESSOR_BUY), int(Flags.AGGRESSOR_SELL)
_LAST = int(Flags.LAST_IN_PACKET)

#: How many recent errors a feed keeps in skip mode.
KEEP_ERRORS = 100

#: The counters every feed keeps, per symbol and in total (venues may add more).
COUNT_KEYS = (
    "messages",         # book messages for this symbol (snapshots and updates)
    "applied",          # messages applied to a synced book
    "snapshots",        # snapshots applied (REST or in-band)
    "levels",           # level sets applied
    "buffered",         # updates held while waiting for a snapshot
    "dropped",          # updates discarded: stale (already in the snapshot) or while not synced
    "gaps",             # sequence gaps detected
    "resyncs",          # times the book was discarded and a rebuild requested
    "checksum_ok",      # checksums verified
    "checksum_failed",  # checksums that did not match
    "crossed",          # books found crossed after an update
    "malformed",        # messages refused as bad input (skip mode)
    "trades",           # trade prints recorded as TRADE events (never applied to a book)
)


def check_recv(recv_ns: Any, venue: str) -> int:
    """``recv_ns`` as an int64 receive time (what a recording feed stores in its events).

    TypeError for a value that is not an integer, ValueError outside int64: raised
    before the message is read, so the feed is untouched.
    """
    try:
        value = operator.index(recv_ns)
    except TypeError:
        raise TypeError(f"{venue}: recv_ns must be an int (ns since the epoch), got "
                        f"{type(recv_ns).__name__}") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{venue}: recv_ns {value} is outside the int64 range")
    return value


class SyncState(enum.IntEnum):
    """Where a symbol's book stands."""

    WAITING_SNAPSHOT = 0    # nothing known yet: updates are buffered or dropped
    BUFFERING = 1           # snapshot requested; updates are buffered until it arrives
    SYNCED = 2              # the book equals the venue's: valid
    RESYNC = 3              # the book was discarded; waiting for a new snapshot


@dataclass(frozen=True)
class Notice:
    """Something the driver must act on, or may want to log.

    ``kind`` is one of:

    * ``"request_snapshot"``: fetch a REST snapshot for ``symbol`` (``detail``
      names the endpoint and depth, e.g. ``"GET /api/v3/depth limit=5000"``);
    * ``"resubscribe"``: the venue's snapshot is in-band; unsubscribe and
      subscribe ``symbol`` again (or reconnect) to get a fresh one;
    * ``"synced"``: ``symbol``'s book just became valid;
    * ``"resync"``: the book was discarded; ``reason`` says why (``"gap"``,
      ``"checksum"``, ``"crossed"``, ``"sequence_reset"``, ``"snapshot_too_old"``,
      ``"new_snapshot"``, ``"buffer_overflow"``, ``"malformed"``: a bad message for a
      synced symbol means an update was missed). A ``request_snapshot`` or
      ``resubscribe`` notice follows it in the same list.
    """

    kind: str
    venue: str
    symbol: str
    reason: str = ""
    sequence: int | None = None
    detail: str = ""


class FeedError(DecodeError):
    """A feed message that cannot be used, naming where it came from.

    ``venue``, ``symbol`` (native form, or ``""`` when unknown) and ``sequence``
    (the venue's update id when known, else ``None``) are attributes; the message
    starts with them. ``duplicate`` is true when the message's own sequence number
    proves it old (at or below the book's): refusing it loses nothing, so a driver
    need not rebuild the book for it.
    """

    def __init__(self, message: str, *, venue: str, symbol: str = "",
                 sequence: int | None = None, duplicate: bool = False) -> None:
        where = venue + (f" {symbol}" if symbol else "")
        if sequence is not None:
            where += f" seq {sequence}"
        super().__init__(f"{where}: {message}")
        self.venue = venue
        self.symbol = symbol
        self.sequence = sequence
        self.duplicate = duplicate


@dataclass(frozen=True)
class Instrument:
    """One tradable instrument of a venue and the fixed-point scales used for it.

    ``tick`` and ``lot`` are in the instrument's fixed-point units (a tick of
    0.01 at ``price_decimals=2`` is 1). ``contract_size`` is the decimal text of
    one contract's size in base units (or in quote units for inverse
    contracts, see ``contract_unit``) when quantities are *contracts* rather
    than base units (Binance COIN-M, OKX derivatives); ``None`` means
    quantities are already base units.
    """

    venue: str                      # e.g. "binance-spot", "kraken", "okx"
    native: str                     # the venue's own symbol, e.g. "BTCUSDT", "XBT/USD"
    symbol: str                     # normalized: "BTC/USDT", "BTC/USD:BTC", "BTC/USD:BTC-220527"
    price_decimals: int
    qty_decimals: int
    tick: int = 1
    lot: int = 1
    kind: str = "spot"              # "spot", "perpetual", "future", "option"
    contract_size: str | None = None
    contract_unit: str = ""         # currency contract_size is counted in ("BTC", "USD"), or ""
    extra: Mapping[str, Any] = field(default_factory=dict)   # venue-specific (precisions...)


def _per_level(value: Any, k: int) -> list[int]:
    """One value per level: an array or list as it is, a scalar repeated ``k`` times."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return [int(value)] * k


class EventBuffer:
    """Events the feeds append as they apply changes, as an ``EVENT_DTYPE`` array on demand.

    Appends go to plain Python column lists (cheap for the few levels of a feed
    message); :meth:`take` builds the array once per batch.
    """

    _COLUMNS = ("ts_exchange", "ts_receive", "instrument", "action", "side", "flags", "price",
                "qty", "sequence")

    def __init__(self) -> None:
        self._cols: tuple[list[int], ...] = tuple([] for _ in self._COLUMNS)

    def __len__(self) -> int:
        return len(self._cols[0])

    def append(self, instrument: int, action: int, *, side: int = 0, price: int = 0,
               qty: int = 0, ts: int = 0, recv: int = 0, sequence: int = 0,
               flags: int = 0) -> None:
        """Append one event."""
        c = self._cols
        c[0].append(ts)
        c[1].append(recv)
        c[2].append(instrument)
        c[3].append(action)
        c[4].append(side)
        c[5].append(flags)
        c[6].append(price)
        c[7].append(qty)
        c[8].append(sequence)

    def append_levels(self, instrument: int, side: Any, prices: Any, qtys: Any, *,
                      ts: int = 0, recv: int = 0, sequence: int = 0, flags: Any = 0) -> None:
        """Append one SET_LEVEL event per (side, price, qty).

        ``side`` and ``flags`` may be scalars or one value per level; to flag only
        the message's last event, :meth:`mark_last` is the cheap way.
        """
        from fastbook.events import Action

        prices = prices.tolist() if isinstance(prices, np.ndarray) else list(prices)
        k = len(prices)
        if k == 0:
            return
        qtys = qtys.tolist() if isinstance(qtys, np.ndarray) else list(qtys)
        sides = _per_level(side, k)
        flag_list = _per_level(flags, k)
        if len(qtys) != k or len(sides) != k or len(flag_list) != k:
            raise ValueError("append_levels: prices, qtys, sides and flags differ in length")
        c = self._cols
        c[0].extend([ts] * k)
        c[1].extend([recv] * k)
        c[2].extend([instrument] * k)
        c[3].extend([int(Action.SET_LEVEL)] * k)
        c[4].extend(sides)
        c[5].extend(flag_list)
        c[6].extend(prices)
        c[7].extend(qtys)
        c[8].extend([sequence] * k)

    def mark_last(self, flags: int) -> None:
        """OR ``flags`` into the last event appended (e.g. ``LAST_IN_PACKET``)."""
        if self._cols[5]:
            self._cols[5][-1] |= flags

    def take(self) -> np.ndarray:
        """Return the events appended so far as a new ``EVENT_DTYPE`` array and empty the buffer."""
        from fastbook.events import EVENT_DTYPE

        n = len(self)
        out = np.zeros(n, dtype=EVENT_DTYPE)
        if n:
            for name, col in zip(self._COLUMNS, self._cols, strict=True):
                out[name] = col
                col.clear()
        return out


class SymbolSync:
    """Per-symbol state a feed keeps: the book, the sync state, counters, venue fields."""

    __slots__ = ("book", "buffer", "counts", "id", "instrument", "last_seq", "native",
                 "state", "ts", "vars")

    def __init__(self, native: str, instrument: Instrument, ident: int, book: Any) -> None:
        self.native = native
        self.instrument = instrument
        self.id = ident                 # dense instrument id (order of first appearance)
        self.book = book                # fastbook.Book at the instrument's scales
        self.state = SyncState.WAITING_SNAPSHOT
        self.last_seq: int | None = None    # the venue's last applied update id
        self.buffer: list[Any] = []     # updates held while not synced (venue-specific items)
        self.counts: Counter[str] = Counter()
        self.ts = 0                     # exchange time (ns) of the last applied message
        self.vars: dict[str, Any] = {}  # anything else a venue needs


class L2Feed:
    """Base of the venue codecs: per-symbol books, states, counts, notices, errors.

    Subclasses set :attr:`venue` and :attr:`default_decimals` and implement
    :meth:`feed` (and :meth:`snapshot` when the venue's snapshot comes from
    REST). ``instruments`` gives each native symbol its scales; a symbol
    without one gets :meth:`_default_instrument` (``default_decimals``), which
    is then kept in ``instruments``, and a value with more decimals than the
    scale is a :class:`FeedError`. ``depth`` is the subscribed depth where
    the venue needs it (Kraken truncation). ``record=True`` also appends every
    change applied to a book to an :class:`EventBuffer` (SNAPSHOT_BEGIN,
    SET_LEVEL..., SNAPSHOT_END for a snapshot; SET_LEVEL for an update; CLEAR
    when a book is discarded), which :meth:`take_events` returns: that is how
    ``fastbook.replay`` samples L2 feeds. ``symbols`` (native forms) restricts
    the feed to those symbols: messages for others are counted as ``"ignored"``
    (venue-wide) without being decoded further.
    """

    venue: ClassVar[str] = ""
    default_decimals: ClassVar[tuple[int, int]] = (8, 8)
    #: True when a symbol's scales come from its first snapshot's wire strings (Kraken),
    #: so they are unknown until then
    scales_from_wire: ClassVar[bool] = False
    #: per-symbol counters a venue adds to ``COUNT_KEYS`` (0 from a symbol's first sight)
    EXTRA_COUNTS: ClassVar[tuple[str, ...]] = ()
    #: a venue's JSON scanner (``codecs._l2json.Scanner``) when its hot path applies
    #: updates itself; :meth:`counts` adds what it applied
    _scan: Any = None
    #: the symbol of the last book message read through :meth:`_sym` (the live driver's
    #: way to know which book a message of an in-band venue touched)
    last: SymbolSync | None = None
    #: whether the scanner's target names the book a message touched (Coinbase Advanced
    #: Trade's does not: one of its messages can touch several books)
    _scan_names_book: ClassVar[bool] = True

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 *, depth: int | None = None, on_error: str = "raise", record: bool = False,
                 book_capacity: int = 1024, symbols: Iterable[str] | None = None) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        if isinstance(instruments, Mapping):
            instruments = instruments.values()
        self.instruments: dict[str, Instrument] = {i.native: i for i in instruments or ()}
        self.depth = depth
        self.on_error = on_error
        self.book_capacity = book_capacity
        self.errors: list[FeedError] = []
        #: every error skip mode counted and kept, ever (``errors`` keeps the last
        #: KEEP_ERRORS): a driver compares it before and after a call to see a refusal
        self.errors_total = 0
        self.counts_total: Counter[str] = Counter()   # venue-wide: "ignored", "malformed", ...
        self._symbols: dict[str, SymbolSync] = {}
        self.events: EventBuffer | None = EventBuffer() if record else None
        #: when a list, every trade print is also appended to it, as
        #: ``(native, price, qty, ts, trade_id, buyer_aggressor)`` (the live session drains it)
        self.prints: list[tuple[str, int, int, int, int, bool]] | None = None
        self.wanted: Any = symbol_filter(symbols)
        self._auto: set[str] = set()    # natives whose Instrument this feed made up

    # --- per-symbol state --------------------------------------------------

    def _sym(self, native: str) -> SymbolSync:
        """The state of ``native``, created (with an empty book) on first sight."""
        s = self._symbols.get(native)
        if s is None:
            inst = self.instruments.get(native)
            if inst is None:
                inst = self.instruments[native] = self._default_instrument(native)
                self._auto.add(native)
            from fastbook import Book

            book = Book(price_decimals=inst.price_decimals, qty_decimals=inst.qty_decimals,
                        capacity=self.book_capacity)
            s = SymbolSync(native, inst, len(self._symbols), book)
            for key in self.EXTRA_COUNTS:
                s.counts[key] = 0
            self._symbols[native] = s
        self.last = s
        return s

    def touched(self) -> SymbolSync | None:
        """The symbol whose book the last :meth:`feed` call applied a message to (None:
        no book message, or a refused one), for drivers that act per book change: the
        live session and the consolidated replay. Reading it clears it."""
        sc = self._scan
        if sc is not None and self._scan_names_book:
            return sc.target if sc.status == 0 else None
        s = self.last
        self.last = None
        return s

    def _default_instrument(self, native: str) -> Instrument:
        """The instrument of a symbol ``instruments`` does not name."""
        pd, qd = self.default_decimals
        return Instrument(self.venue, native, native, pd, qd)

    @property
    def symbols(self) -> list[str]:
        """Native symbols seen so far, in order of first appearance (= instrument ids)."""
        return list(self._symbols)

    def symbol_state(self, native: str) -> SymbolSync:
        """The :class:`SymbolSync` of ``native`` (KeyError if never seen)."""
        return self._symbols[native]

    def book(self, native: str) -> Any:
        """The :class:`fastbook.Book` of ``native``; only valid when :meth:`is_synced`."""
        return self._symbols[native].book

    def state(self, native: str) -> SyncState:
        s = self._symbols.get(native)
        return SyncState.WAITING_SNAPSHOT if s is None else s.state

    def is_synced(self, native: str) -> bool:
        return self.state(native) == SyncState.SYNCED

    def counts(self, native: str | None = None) -> dict[str, int]:
        """Counters of one symbol, or summed over all symbols plus venue-wide ones."""
        if native is not None:
            c = self._symbols[native].counts
            out = {k: c.get(k, 0) for k in sorted(set(COUNT_KEYS) | set(c))}
        else:
            total: Counter[str] = Counter(self.counts_total)
            for s in self._symbols.values():
                total.update(s.counts)
            out = {k: total.get(k, 0) for k in sorted(set(COUNT_KEYS) | set(total))}
        if self._scan is not None:
            # the updates the scanner's apply() took on the hot path count here
            messages, levels = self._scan.applied(native)
            out["messages"] += messages
            out["applied"] += messages
            out["levels"] += levels
        return out

    # --- the subclass API --------------------------------------------------

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        """Decode one raw websocket message and act on it; return the notices."""
        raise NotImplementedError

    def snapshot(self, native: str, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        """Hand over a REST snapshot body for ``native`` (venues with REST snapshots)."""
        raise FeedError("this venue's snapshots arrive in the stream; there is no REST step",
                        venue=self.venue, symbol=native)

    # --- helpers for subclasses -------------------------------------------

    def _wanted(self, native: str) -> bool:
        """False (and counted as ``"ignored"``) when ``symbols=`` excludes ``native``."""
        if self.wanted is None or native in self.wanted:
            return True
        self.counts_total["ignored"] += 1
        return False

    def _fail(self, err: FeedError, s: SymbolSync | None = None) -> None:
        """Raise ``err`` (raise mode) or count and keep it (skip mode).

        A symbol that only ever had refused messages (seen first in one, nothing
        applied, buffered or dropped since) is forgotten again, its counts moved to
        the venue-wide ones: hostile messages naming ever new symbols must not make
        a book each (memory stays bounded).
        """
        if self.on_error == "raise":
            if s is not None:
                self._forget_unused(s)
            raise err
        (s.counts if s is not None else self.counts_total)["malformed"] += 1
        self.errors.append(err)
        self.errors_total += 1
        if len(self.errors) > KEEP_ERRORS:
            del self.errors[0]
        if s is not None:
            self._forget_unused(s)

    _UNUSED_COUNTS = frozenset({"messages", "malformed"})

    def _forget_unused(self, s: SymbolSync) -> None:
        """Forget ``s`` if nothing but refused messages ever reached it (see :meth:`_fail`);
        only the newest symbol, so that instrument ids stay dense."""
        if s.state is not SyncState.WAITING_SNAPSHOT or s.buffer or s.last_seq is not None \
                or s.id != len(self._symbols) - 1 or self._symbols.get(s.native) is not s \
                or any(v for k, v in s.counts.items() if k not in self._UNUSED_COUNTS) \
                or s.book.depth(1) or s.book.depth(2):
            return
        if self._scan is not None and self._scan.applied(s.native) != (0, 0):
            return
        del self._symbols[s.native]
        self.counts_total.update(s.counts)
        if s.native in self._auto:
            self._auto.discard(s.native)
            self.instruments.pop(s.native, None)
        self._forgotten(s.native)

    def _forgotten(self, native: str) -> None:
        """A venue's own clean-up of a forgotten symbol (its scanners' registrations)."""

    def discard(self, native: str, reason: str = "discarded", detail: str = "") -> list[Notice]:
        """Discard ``native``'s book because the caller knows it is wrong, and start over.

        For a driver that refused a message the feed never saw (an unreadable frame
        that may have carried this symbol's changes): the book is cleared, counted as
        a resync, and the notices say how to recover (a REST snapshot or a
        resubscribe), exactly as after a gap the feed found itself.
        """
        return self._resync(self.symbol_state(native), reason, None, detail)

    def _resync(self, s: SymbolSync, reason: str, sequence: int | None = None,
                detail: str = "") -> list[Notice]:
        """Discard ``s``'s book and buffer; return the resync notice plus the recovery one."""
        s.book.clear()
        s.buffer.clear()
        s.state = SyncState.RESYNC
        s.last_seq = None
        s.counts["resyncs"] += 1
        if self.events is not None:
            from fastbook.events import Action

            self.events.append(s.id, int(Action.CLEAR), ts=s.ts, sequence=sequence or 0)
        return [Notice("resync", self.venue, s.native, reason, sequence, detail),
                *self._recover(s)]

    def _recover(self, s: SymbolSync) -> list[Notice]:
        """What to ask for after a resync: a REST snapshot or a resubscribe (override)."""
        return [Notice("resubscribe", self.venue, s.native)]

    def _synced(self, s: SymbolSync, sequence: int | None = None) -> Notice:
        s.state = SyncState.SYNCED
        return Notice("synced", self.venue, s.native, sequence=sequence)

    # --- trade prints ----------------------------------------------------------

    def _trade_scales(self, native: str) -> tuple[int, int] | None:
        """The (price, qty) decimals a trade of ``native`` is read at: its book's, or for a
        symbol not seen yet its instrument's. None when the venue fixes a book's scales
        from its first book message (Kraken): a trade before it is dropped, counted."""
        s = self._symbols.get(native)
        if s is not None:
            return s.book.price_decimals, s.book.qty_decimals
        inst = self.instruments.get(native) or self._default_instrument(native)
        return inst.price_decimals, inst.qty_decimals

    def _trade_symbol(self, native: str) -> SymbolSync:
        """The state of a symbol first seen in a trade, made as a book message would make it."""
        return self._sym(native)

    def _emit_trades(self, prints: Iterable[tuple[str, int, int, int, int, bool]],
                     recv_ns: int) -> None:
        """Record validated trade prints, ``(native, price, qty, ts, trade_id, buyer
        aggressor)``, as TRADE events in order, the last flagged LAST_IN_PACKET.

        ``side`` is the resting (maker) order's: ASK when the buyer was the aggressor.
        Counted per symbol (``"trades"``). No book changes, and :meth:`touched` still
        says no book was touched.
        """
        touched = self.last
        events = self.events
        kept = self.prints
        n = 0
        for native, price, qty, ts, trade_id, buyer in prints:
            s = self._symbols.get(native) or self._trade_symbol(native)
            s.counts["trades"] += 1
            n += 1
            if kept is not None:
                kept.append((native, price, qty, ts, trade_id, buyer))
            if events is not None:
                events.append(s.id, _TRADE, side=2 if buyer else 1, price=price, qty=qty,
                              ts=ts, recv=recv_ns, sequence=trade_id,
                              flags=_AGG_BUY if buyer else _AGG_SELL)
        if n and events is not None:
            events.mark_last(_LAST)
        self.last = touched

    def _trades_done(self, prints: list[tuple[str, int, int, int, int, bool]], dropped: int,
                     recv_ns: int) -> list[Notice]:
        """Finish a validated trade message: record its ``prints``; ``dropped`` prints had
        no scales yet (:meth:`_trade_scales`), counted ``"trades_dropped"``. A message with
        neither (every print of symbols ``symbols=`` leaves out) is counted "ignored"."""
        if dropped:
            self.counts_total["trades_dropped"] += dropped
        elif not prints:
            self.counts_total["ignored"] += 1
        self._emit_trades(prints, recv_ns)
        return []

    def _trade_refused(self, text: str, native: str = "") -> list[Notice]:
        """Refuse a malformed trade message (raise, or count and keep): nothing of it was
        recorded, and no book is discarded (a trade changes no book)."""
        s = self._symbols.get(native) if native else None
        self._fail(FeedError(f"trade: {text}", venue=self.venue, symbol=native), s)
        return []

    def _trade_wanted(self, native: str) -> bool:
        """Whether trades of ``native`` are kept (``symbols=``)."""
        return self.wanted is None or native in self.wanted

    def take_events(self) -> np.ndarray:
        """The events recorded since the last call (``record=True`` only)."""
        if self.events is None:
            raise ValueError("this feed was created without record=True")
        return self.events.take()
