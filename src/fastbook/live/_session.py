"""The sans-IO core of the live driver: connections, their feeds, book states, notices.

A :class:`Session` is told what happened on the wire (a connection opened, a
frame arrived, a REST snapshot body came back, a connection closed, time
passed) and decides what it means: it hands frames to the venue codec of their
connection, keeps each (venue, symbol)'s state (connecting, syncing, live,
resyncing, stale, down), chooses which connection's book is the one readers
see, and says what the network side must do next (fetch a snapshot, resend a
subscription) through :class:`Action` values. It never touches a socket, so
the same object replays a recording to the same books, states and counts
(:func:`fastbook.live.replay_recording`) as the live run had.

Each connection gets its own codec object (:mod:`fastbook.codecs`), so its books
are its own: a connection that drops takes exactly its books with it, and a
second connection opened before a scheduled disconnect (Binance's 24 hours)
syncs its own books, then takes over, with no stale moment (make-before-break).
"""

from __future__ import annotations

import enum
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastbook.codecs._l2feed import SyncState
from fastbook.errors import FastbookError
from fastbook.live._rules import VenueRules, rules_for

__all__ = ["Action", "BookState", "Conn", "LiveNotice", "NotLiveError", "Session", "Track"]

_SYNCED = SyncState.SYNCED


class BookState(str, enum.Enum):
    """What a reader may believe about a live book."""

    CONNECTING = "connecting"   # no connection carries it yet (or again)
    SYNCING = "syncing"         # subscribed, waiting for the first valid book
    LIVE = "live"               # the book equals the venue's
    RESYNCING = "resyncing"     # was live; discarded (gap, checksum, ...) and being rebuilt
    STALE = "stale"             # live, but its connection has been silent too long
    DOWN = "down"               # the venue could not be healed; the reason says why

    def __str__(self) -> str:
        return self.value


class NotLiveError(FastbookError, LookupError):
    """A book was read while it is not live (the driver was asked to refuse such reads)."""


@dataclass(slots=True)
class LiveNotice:
    """One applied venue message of a book (what ``async for n in feed`` yields).

    Times are ns since the epoch: ``exchange_ns`` the venue's own time of the
    update, ``recv_ns`` when the frame was read off the socket, ``applied_ns``
    when the book had it. ``bbo_changed``: the best bid or ask (price or size)
    differs from the previous notice of this book. ``conflated``: how many
    notices of this book the consumer's full queue replaced with this one.
    """

    venue: str
    symbol: str
    exchange_ns: int
    recv_ns: int
    applied_ns: int
    bbo_changed: bool
    state: BookState
    sequence: int | None = None
    conflated: int = 0
    kind: str = "update"        # "update", or a state change: "state"


@dataclass(slots=True)
class LiveTrade:
    """One trade print of a book's venue (``fb.live(..., trades=True)``; delivered to
    ``feed.on_trade`` callbacks, never into the notice queues). ``price`` and ``qty``
    are fixed point at the book's scales; ``aggressor`` 1 buy, 2 sell (the venue's)."""

    venue: str
    symbol: str
    exchange_ns: int
    recv_ns: int
    price: int
    qty: int
    aggressor: int
    trade_id: int = 0


@dataclass
class Action:
    """Something the network side must do for the session."""

    kind: str                   # "fetch" (REST snapshot) or "resubscribe"
    conn: Conn
    native: str
    url: str = ""
    reason: str = ""


@dataclass(eq=False)
class Conn:
    """One websocket connection and the codec object that reads it."""

    id: int
    venue: str
    natives: list[str]
    feed: Any
    url: str = ""
    opened_ns: int = 0
    last_frame_ns: int = 0
    frames: int = 0
    bytes: int = 0
    open: bool = True
    standby: bool = False       # opened to replace another (make-before-break)
    touched: Any = None         # which symbols a frame touched (set by Session.open)
    decode: Any = None          # feed.feed, with Coinbase Advanced's connection id bound
    keep: Any = None            # the venue's frame filter (None: every frame)
    tracks: dict[str, Any] = field(default_factory=dict)   # native -> Track
    check_refusals: bool = False    # its venue's rules can read a refusal (set by open)
    refused: set[str] = field(default_factory=set)      # natives the venue refused
    last_ping_ns: int = 0       # the driver's last application-level ping on it
    replacing: bool = False     # a make-before-break standby is being synced for it

    def all_live(self) -> bool:
        return all(t.state is BookState.LIVE for t in self.tracks.values())


@dataclass(eq=False)
class Track:
    """Everything known about one (venue, native symbol) across its connections."""

    venue: str
    native: str
    symbol: str                 # as the user asked for it
    primary: Conn | None = None
    state: BookState = BookState.CONNECTING
    was_live: bool = False
    reason: str = ""            # why it is not live (the last resync or disconnect)
    retired: Counter[str] = field(default_factory=Counter)  # counts of closed connections' feeds
    last_bbo: Any = None
    last_applied_ns: int = 0
    notices: int = 0
    state_changes: int = 0
    hist: dict[str, Any] = field(default_factory=dict)
    quiet_noted: bool = False   # told once that its symbol sent nothing (see Session.tick)


def _new_hists() -> dict[str, Any]:
    from fastbook.metrics import LatencyHistogram

    return {"exchange_to_receive": LatencyHistogram(), "receive_to_applied": LatencyHistogram(),
            "applied_to_consumer": LatencyHistogram()}


def _names(text: str, native: str) -> bool:
    """Whether ``text`` names ``native`` as a whole symbol (``BTC-USD`` is not named by
    ``BTC-USDT``)."""
    start = text.find(native)
    while start >= 0:
        end = start + len(native)
        if (start == 0 or not text[start - 1].isalnum()) and \
                (end == len(text) or not (text[end].isalnum() or text[end] in "-/_")):
            return True
        start = text.find(native, start + 1)
    return False


class Session:
    """Routes frames to per-connection codecs and keeps per-book states and counts.

    ``tracks`` maps ``(venue, native)`` to its :class:`Track`. ``on_notice`` is
    called with each :class:`LiveNotice` (applied messages of live books and
    every state change); ``on_error`` with each refused message's error.
    ``stale_after_s`` marks a live book stale when its connection sent nothing
    for that long (checked by :meth:`tick`); ``quiet_symbol_s`` gives a reason to a
    book whose symbol sent nothing that long after subscribing (and, with REST
    snapshots, asks for one: an unknown symbol is then refused and down). ``clock``
    gives ns since the epoch. ``trades``: subscribe each book's trade channel too (the
    codecs count the prints, ``counts(venue, symbol)["trades"]``).
    """

    def __init__(self, books: Iterable[tuple[str, str, str]], *, depth: int | None = None,
                 instruments: dict[str, Any] | None = None, on_error: str = "skip",
                 stale_after_s: float | None = 5.0, quiet_symbol_s: float | None = 15.0,
                 on_notice: Callable[[LiveNotice], None] | None = None,
                 clock: Callable[[], int] = time.time_ns, latency: bool = True,
                 trades: bool = False) -> None:
        self.depth = depth
        self.trades = trades
        self.instruments = instruments or {}
        self.on_error = on_error
        self.stale_after_ns = None if stale_after_s is None else int(stale_after_s * 1e9)
        self.quiet_symbol_ns = None if quiet_symbol_s is None else int(quiet_symbol_s * 1e9)
        self.on_notice = on_notice
        #: called with each LiveTrade of a book this connection carries (trades=True)
        self.on_trade: Callable[[LiveTrade], None] | None = None
        self.clock = clock
        self.latency = latency
        self.tracks: dict[tuple[str, str], Track] = {}
        self.rules: dict[str, VenueRules] = {}
        for venue, native, symbol in books:
            self.rules[venue] = rules_for(venue).with_trades(trades)
            if (venue, native) not in self.tracks:
                t = Track(venue, native, symbol)
                if latency:
                    t.hist = _new_hists()
                self.tracks[(venue, native)] = t
        self.conns: dict[int, Conn] = {}
        self.venue_counts: dict[str, Counter[str]] = {v: Counter() for v in self.rules}
        #: what arrived for a connection already closed (frames, REST bodies): counted
        self.late: Counter[str] = Counter()
        self.last_refusal = ""          # the venue's words, the last time it refused
        self.down: dict[str, str] = {}
        self.actions: list[Action] = []

    # --- connections ---------------------------------------------------------------

    def venue_depth(self, venue: str) -> int | None:
        """The depth ``venue`` is subscribed at and its books keep (None: full books), for
        the session's ``depth`` (:meth:`~fastbook.live._rules.VenueRules.depth_for`)."""
        return self.rules[venue].depth_for(self.depth)

    def open(self, conn_id: int, venue: str, natives: list[str], url: str = "",
             t_ns: int | None = None, *, standby: bool = False) -> Conn:
        """A connection carrying ``natives`` of ``venue`` is open (subscriptions follow)."""
        rules = self.rules[venue]
        feed = rules.new_feed(natives, self.venue_depth(venue), self.instruments.get(venue),
                              self.on_error)
        feed.last = None
        now = self.clock() if t_ns is None else t_ns
        c = Conn(conn_id, venue, list(natives), feed, url, now, now, standby=standby)
        c.touched = type(feed).touched
        if self.trades:
            feed.prints = []
        c.decode = functools.partial(feed.feed, connection=conn_id) \
            if venue == "coinbase-advanced" else feed.feed
        c.keep = None if type(rules).filter is VenueRules.filter else rules.filter
        c.tracks = {n: self.tracks[(venue, n)] for n in natives if (venue, n) in self.tracks}
        c.check_refusals = type(rules).refusal is not VenueRules.refusal
        self.conns[conn_id] = c
        self.venue_counts[venue]["connections_opened"] += 1
        self.down.pop(venue, None)
        for n in natives:
            t = self.tracks[(venue, n)]
            if t.primary is None or not t.primary.open:
                t.primary = c
                self._set(t, BookState.SYNCING if not t.was_live else BookState.RESYNCING,
                          now, t.reason)
        return c

    def closed(self, conn_id: int, reason: str = "", t_ns: int | None = None) -> None:
        """The connection is gone: its books go with it (another connection may take over)."""
        c = self.conns.pop(conn_id, None)
        if c is None or not c.open:
            return
        c.open = False
        now = self.clock() if t_ns is None else t_ns
        vc = self.venue_counts[c.venue]
        vc["disconnects"] += 1
        vc["frames_closed"] += c.frames          # the venue's totals outlive its connections
        vc["bytes_closed"] += c.bytes
        for n in c.natives:
            t = self.tracks[(c.venue, n)]
            t.retired.update(c.feed.counts(n) if n in c.feed.symbols else {})
            if t.primary is c:
                t.primary = None
                for other in self.conns.values():
                    if other.venue == c.venue and n in other.natives:
                        t.primary = other
                        if other.feed.is_synced(n):
                            break
                if t.primary is not None and t.primary.feed.is_synced(n):
                    self._set(t, BookState.LIVE, now)
                else:
                    self._set(t, BookState.CONNECTING if t.primary is None else
                              (BookState.RESYNCING if t.was_live else BookState.SYNCING),
                              now, f"disconnected: {reason}" if reason else "disconnected")
        c.feed = _Closed(c.feed)
        for key in ("malformed", "ignored"):
            self.venue_counts[c.venue][key] += c.feed.counts_total.get(key, 0)

    def venue_down(self, venue: str, reason: str, t_ns: int | None = None) -> None:
        """The driver gave up on ``venue``: its books are down until it connects again."""
        now = self.clock() if t_ns is None else t_ns
        self.down[venue] = reason
        for t in self.tracks.values():
            if t.venue == venue and (t.primary is None or not t.primary.open):
                self._set(t, BookState.DOWN, now, reason)

    # --- frames --------------------------------------------------------------------

    def received(self, conn_id: int, payload: bytes | str, recv_ns: int) -> None:
        """A frame read off connection ``conn_id`` at ``recv_ns``."""
        c = self.conns.get(conn_id)
        if c is None:
            self.late["frames_after_close"] += 1
            return
        c.last_frame_ns = recv_ns
        c.frames += 1
        try:
            c.bytes += len(payload)
        except TypeError:
            self.venue_counts[c.venue]["errors"] += 1
            self._error(c, TypeError(f"a frame must be text or bytes, not "
                                     f"{type(payload).__name__}"))
            return
        if c.keep is not None and not c.keep(payload):
            return
        feed = c.feed
        refused = feed.errors_total
        try:
            notices = c.decode(payload, recv_ns)
        except Exception as exc:                            # raise mode, or a codec bug
            self.venue_counts[c.venue]["errors"] += 1
            self._error(c, exc)
            return
        if feed.errors_total != refused:
            self.venue_counts[c.venue]["errors"] += 1
            err = feed.errors[-1]
            self._error(c, err)
            notices = list(notices) + self._refused(c, err)
        if notices:
            self._notices(c, notices, recv_ns)
        if feed.prints:
            self._prints(c, recv_ns)
        s = c.touched(feed)
        if s is None:
            if c.check_refusals and not c.all_live():
                self._refusal(c, payload, recv_ns)
            return
        t = c.tracks.get(s.native)
        if t is None or t.primary is not c or s.state is not _SYNCED:
            return
        self._applied(t, s, recv_ns)

    def _prints(self, c: Conn, recv_ns: int) -> None:
        """Hand the frame's trade prints to ``on_trade`` (those of books ``c`` is the
        primary connection of: a standby's copies are not prints twice)."""
        prints, c.feed.prints = c.feed.prints, []
        if self.on_trade is None:
            return
        for native, price, qty, ts, trade_id, buyer in prints:
            t = c.tracks.get(native)
            if t is None or t.primary is not c:
                continue
            self.on_trade(LiveTrade(t.venue, t.symbol, ts, recv_ns, price, qty,
                                    1 if buyer else 2, trade_id))

    def _applied(self, t: Track, s: Any, recv_ns: int) -> None:
        applied = self.clock()
        bbo = s.book.bbo()
        changed = bbo != t.last_bbo
        t.last_bbo = bbo
        t.last_applied_ns = applied
        if t.hist:
            if s.ts:
                t.hist["exchange_to_receive"].record(recv_ns - s.ts)
            t.hist["receive_to_applied"].record(applied - recv_ns)
        if t.state is not BookState.LIVE:
            self._set(t, BookState.LIVE, applied)
        t.notices += 1
        if self.on_notice is not None:
            self.on_notice(LiveNotice(t.venue, t.symbol, s.ts, recv_ns, applied, changed,
                                      t.state, s.last_seq))

    def _refusal(self, c: Conn, payload: bytes | str, recv_ns: int) -> None:
        """A frame that touched no book, while a book of ``c`` is not live: if the venue
        refused a subscription naming some of them, those books are down (with the
        venue's words), and where a refusal fails the whole request the others are
        subscribed again without them."""
        rules = self.rules[c.venue]
        why = rules.refusal(payload)
        if why is None:
            return
        self.venue_counts[c.venue]["refusals"] += 1
        self.last_refusal = f"{c.venue} conn {c.id}: {why}"
        named = [n for n, t in c.tracks.items()
                 if t.state is not BookState.LIVE and n not in c.refused and _names(why, n)]
        for n in named:
            self.refuse(c, n, f"refused by {c.venue}: {why}", recv_ns)
        if named and rules.refusal_fails_request:
            for n, t in c.tracks.items():
                if t.state is not BookState.LIVE and n not in c.refused and t.primary is c:
                    self.actions.append(Action("resubscribe", c, n,
                                               reason="its request failed with a refused symbol"))

    def refuse(self, c: Conn, native: str, why: str, t_ns: int | None = None) -> None:
        """The venue refused ``native`` on connection ``c`` (an unknown symbol, or a REST
        snapshot answered 4xx): its book is down with ``why``, nothing more is asked."""
        c.refused.add(native)
        t = c.tracks.get(native)
        if t is not None and t.primary is c:
            self.venue_counts[c.venue]["refused_symbols"] += 1
            self._set(t, BookState.DOWN, self.clock() if t_ns is None else t_ns, why)

    def _refused(self, c: Conn, err: Any) -> list[Any]:
        """A refused book message of a synced symbol may have carried real changes: the
        book is known to have missed them, so it is rebuilt (on venues with sequence
        numbers the gap check would say so one message later; Coinbase Exchange has none)."""
        native = getattr(err, "symbol", "")
        if not native and c.venue == "coinbase-exchange":
            # an unreadable frame may have been any product's update, and nothing would
            # ever tell: every book of the connection is rebuilt
            out: list[Any] = []
            for n in c.feed.symbols:
                if c.feed.is_synced(n):
                    out += c.feed.discard(n, "malformed",
                                          f"an unreadable message was refused: {err}")
            return out
        if not native or native not in c.feed.symbols or not c.feed.is_synced(native) \
                or getattr(err, "duplicate", False):   # its sequence says: nothing new
            return []
        self.venue_counts[c.venue]["refused_resyncs"] += 1
        notices: list[Any] = c.feed.discard(native, "malformed",
                                            f"a book message was refused: {err}")
        return notices

    def rest(self, conn_id: int, native: str, body: bytes | str, recv_ns: int) -> None:
        """A REST snapshot body for ``native``, fetched for connection ``conn_id``."""
        c = self.conns.get(conn_id)
        if c is None or not c.open:
            self.late["snapshots_after_close"] += 1
            return
        feed = c.feed
        refused = feed.errors_total
        try:
            notices = feed.snapshot(native, body, recv_ns)
        except Exception as exc:
            self.venue_counts[c.venue]["errors"] += 1
            self._error(c, exc)
            # a refused snapshot must be asked for again, or the book never syncs
            self.actions.append(Action("fetch", c, native, self.snapshot_url(c, native),
                                       "refused snapshot"))
            return
        if feed.errors_total != refused:
            self.venue_counts[c.venue]["errors"] += 1
            self._error(c, feed.errors[-1])
            self.actions.append(Action("fetch", c, native, self.snapshot_url(c, native),
                                       "refused snapshot"))
        if notices:
            self._notices(c, notices, recv_ns)
        t = self.tracks.get((c.venue, native))
        if t is not None and t.primary is c and feed.is_synced(native):
            self._applied(t, feed.symbol_state(native), recv_ns)

    def snapshot_url(self, c: Conn, native: str, base: str | None = None) -> str:
        rules = self.rules[c.venue]
        return rules.snapshot_url(rules.rest if base is None else base, native,
                                  c.feed if not isinstance(c.feed, _Closed) else c.feed.feed)

    def _error(self, c: Conn, exc: BaseException) -> None:
        self.venue_counts[c.venue]["last_error_ns"] = self.clock()
        self.last_error = f"{c.venue} conn {c.id}: {exc}"

    def _notices(self, c: Conn, notices: list[Any], recv_ns: int) -> None:
        for n in notices:
            t = self.tracks.get((c.venue, n.symbol))
            kind = n.kind
            if kind == "request_snapshot":
                self.actions.append(Action("fetch", c, n.symbol, self.snapshot_url(c, n.symbol),
                                           n.reason))
            elif kind == "resubscribe":
                self.actions.append(Action("resubscribe", c, n.symbol, reason=n.reason))
            elif t is None:
                continue
            elif kind == "synced":
                self._synced(c, t, recv_ns)
            elif kind == "resync":
                self.venue_counts[c.venue]["resyncs"] += 1
                if t.primary is c:
                    if n.reason == "new_snapshot":
                        continue                     # replaced in one message: still valid
                    self._set(t, BookState.RESYNCING, recv_ns, f"{n.reason}: {n.detail}"
                              if n.detail else n.reason)

    def _synced(self, c: Conn, t: Track, now: int) -> None:
        old = t.primary
        if old is not c:
            if old is not None and old.open and old.feed.is_synced(t.native) and not c.standby:
                return                               # keep the book readers already have
            t.primary = c
        self._set(t, BookState.LIVE, now)

    def handover_ready(self, c: Conn) -> bool:
        """True when every book of standby connection ``c`` is synced (the old one may go)."""
        return all(c.feed.is_synced(n) for n in c.natives)

    def promote(self, c: Conn, now: int | None = None) -> None:
        """Make standby ``c`` the primary of all its synced books."""
        now = self.clock() if now is None else now
        for n in c.natives:
            t = self.tracks[(c.venue, n)]
            if c.feed.is_synced(n):
                t.primary = c
                self._set(t, BookState.LIVE, now)
        c.standby = False

    def _set(self, t: Track, state: BookState, now: int, reason: str = "") -> None:
        if state is BookState.LIVE:
            t.was_live = True
            reason = ""
        if t.state is state and t.reason == reason:
            return
        t.state = state
        t.reason = reason
        t.state_changes += 1
        if self.on_notice is not None:
            self.on_notice(LiveNotice(t.venue, t.symbol, 0, now, now, False, state,
                                      kind="state"))

    # --- time ----------------------------------------------------------------------

    def _quiet_symbols(self, now: int) -> None:
        """A book whose connection has been open ``quiet_symbol_s`` without one message
        for its symbol gets a reason saying so (a misspelt or delisted symbol: Binance
        sends nothing for an unknown stream); on venues with REST snapshots one snapshot
        is asked for, whose refusal (Binance: HTTP 400 "Invalid symbol.") puts it down."""
        if self.quiet_symbol_ns is None:
            return
        for t in self.tracks.values():
            c = t.primary
            if c is None or not c.open or t.quiet_noted or t.state is not BookState.SYNCING \
                    or now - c.opened_ns < self.quiet_symbol_ns or t.native in c.feed.symbols:
                continue
            t.quiet_noted = True
            self._set(t, t.state, now, f"nothing received for {t.native} "
                      f"{(now - c.opened_ns) / 1e9:.0f} s after subscribing (is it listed?)")
            if self.rules[t.venue].rest:
                self.actions.append(Action("fetch", c, t.native, self.snapshot_url(c, t.native),
                                           "no message for the symbol"))

    def tick(self, now: int | None = None) -> None:
        """Mark live books of silent connections stale (and stale ones live again), and
        say why a book that never heard of its symbol is still not live."""
        now = self.clock() if now is None else now
        self._quiet_symbols(now)
        if self.stale_after_ns is None:
            return
        for t in self.tracks.values():
            c = t.primary
            if c is None or not c.open:
                continue
            silent = now - c.last_frame_ns > self.stale_after_ns
            if t.state is BookState.LIVE and silent:
                self._set(t, BookState.STALE, now, "no data for "
                          f"{(now - c.last_frame_ns) / 1e9:.1f} s")
            elif t.state is BookState.STALE and not silent and c.feed.is_synced(t.native):
                self._set(t, BookState.LIVE, now)

    # --- reads ---------------------------------------------------------------------

    def track(self, venue: str, symbol: str) -> Track:
        """The :class:`Track` of ``symbol`` (native or as asked) on ``venue``."""
        from fastbook.live._rules import ALIASES

        venue = ALIASES.get(venue, venue)
        t = self.tracks.get((venue, symbol))
        if t is None:
            for tr in self.tracks.values():
                if tr.venue == venue and tr.symbol == symbol:
                    return tr
            known = ", ".join(f"{v}:{n}" for v, n in self.tracks)
            raise KeyError(f"no live book {venue}:{symbol} (books: {known})")
        return t

    def book(self, venue: str, symbol: str) -> Any:
        """The book readers see for ``symbol`` (check :meth:`state` before trusting it)."""
        t = self.track(venue, symbol)
        c = t.primary
        if c is None or not c.open or t.native not in c.feed.symbols:
            return None
        return c.feed.book(t.native)

    def counts(self, venue: str, symbol: str) -> dict[str, int]:
        """The codec's counters of one book, summed over every connection that carried it."""
        t = self.track(venue, symbol)
        total = Counter(t.retired)
        for c in self.conns.values():
            if c.venue == t.venue and t.native in c.feed.symbols:
                total.update(c.feed.counts(t.native))
        return dict(total)


class _Closed:
    """The feed of a closed connection: counts stay readable, nothing else is fed."""

    def __init__(self, feed: Any) -> None:
        self.feed = feed
        self.counts_total = feed.counts_total
        self.symbols: list[str] = []
        self.errors = feed.errors
        self.errors_total = feed.errors_total

    def is_synced(self, native: str) -> bool:
        return False
