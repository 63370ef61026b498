"""Consolidated views driven by a stream of book changes: one path for live and replay.

A :class:`ConsolidatedTap` sits behind whatever applies venue messages to books (the live
driver's session, or a replay of several venues' captures merged by receive time) and
is told, after each applied message, *which* book changed, when, and whether that book is
live. It groups the books by product into :class:`fastbook.Consolidated` views, calls
``update``, runs the arbitrage check when the consolidated BBO changed or is crossed, and
collects three tables: consolidated-BBO changes (:data:`CBBO_ROW_DTYPE`), arbitrage
opportunities (:data:`ARB_DTYPE`) and, when a health monitor is attached, venue health
rows. ``docs/consolidated.md`` ("Live feeds and replays") documents the grouping rules,
the tables and the Parquet files.

Books appear while the stream runs (a replay meets a symbol at its first message; a live
connection makes a new book object when it reconnects), so views are built lazily: a
book joining a view rebuilds the view with the new venue appended (indices and mask bits of
the venues already there do not change), replaying each old venue's last update in time
order, so the change events before and after are exactly those of a view that had held the
venue from the start. A new book object for a venue already in a view is swapped in with
``Consolidated.rebind``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from fastbook._consolspec import CBBO_DTYPE, DEFAULT_STALE_NS
from fastbook.codecs.instruments import format_symbol, parse_symbol, to_symbol

__all__ = ["ARB_DTYPE", "CBBO_ROW_DTYPE", "ConsolidatedTap", "group_key"]

#: A consolidated-BBO change row: the view's index, then ``CBBO_DTYPE``'s fields.
CBBO_ROW_DTYPE = np.dtype([("view", "<i8"), *[(n, CBBO_DTYPE[n].str)
                                               for n in CBBO_DTYPE.names or ()]])

#: An arbitrage row. ``qty`` at the view's common quantity scale, limits at its price
#: scale; ``profit`` exact decimal text in quote currency (it does not fit int64 at the
#: common scales); ``rank`` 0 is the best of the opportunities at that moment. A row with
#: ``qty`` 0 says the pair's opportunity ended.
ARB_DTYPE = np.dtype([
    ("ts", "<i8"), ("view", "<i8"), ("sell_venue", "<i8"), ("buy_venue", "<i8"),
    ("qty", "<i8"), ("profit", "O"), ("profit_bps", "<f8"), ("sell_limit", "<i8"),
    ("buy_limit", "<i8"), ("sell_levels", "<i8"), ("buy_levels", "<i8"),
    ("sell_age", "<i8"), ("buy_age", "<i8"), ("rank", "<i8"),
])

_INT64_MIN = -(1 << 63)


def _parts(venue: str, native: str, instrument: Any) -> Any:
    """The instrument's normalized symbol parts, or those read from the native text
    (Coinbase, Kraken, OKX); None when neither is one (Binance, Bybit without metadata)."""
    symbol = getattr(instrument, "symbol", None)
    if isinstance(symbol, str):
        try:
            return parse_symbol(symbol)
        except ValueError:
            pass
    try:
        return parse_symbol(to_symbol(venue, native))
    except ValueError:
        return None


def group_key(venue: str, native: str, instrument: Any,
              quote_aliases: Mapping[str, str] | None = None) -> str | None:
    """The normalized symbol a book is consolidated under, or None when it has none.

    The instrument's symbol when it is a normalized one, else the symbol read from the
    native text (Coinbase, Kraken, OKX); Binance and Bybit symbols need instrument
    metadata. ``quote_aliases`` (``{"BUSD": "USD"}``) maps quote and settlement
    currencies the caller declares equivalent.
    """
    parts = _parts(venue, native, instrument)
    if parts is None:
        return None
    aliases = quote_aliases or {}
    quote = aliases.get(parts.quote, parts.quote)
    settle = aliases.get(parts.settle, parts.settle) if parts.settle else ""
    return format_symbol(parts.base, quote, settle, parts.expiry, parts.strike, parts.right)


class _View:
    """One consolidated view and what the tap knows about its venues."""

    def __init__(self, vid: int, symbol: str) -> None:
        self.vid = vid
        self.symbol = symbol
        self.view: Any = None
        self.keys: list[tuple[str, str]] = []          # (venue, native) per venue index
        self.names: list[str] = []
        self.entries: list[Any] = []                   # Venue specs, in index order
        self.last: list[tuple[int, bool] | None] = []  # last (time, live) per venue
        self.refreshed = _INT64_MIN
        self.crossed = False
        self.open: dict[tuple[str, str], tuple[Any, ...]] = {}   # pair -> last row key
        self.base_stats: dict[str, Any] = {}           # counters of the views it replaced
        self.replayed: dict[str, Any] = {}             # counters of the rebuild's replays
        self.clock = _INT64_MIN                        # the view's clock (never backwards)

    def tick(self, now_ns: int) -> int:
        """The view's clock after a call at ``now_ns``: a time that steps back is taken
        as the latest seen, as the view itself does (and counts)."""
        if now_ns > self.clock:
            self.clock = now_ns
        return self.clock


class ConsolidatedTap:
    """Consolidated views over books that change one message at a time.

    ``select``: True (every product, one view per normalized symbol, a symbol on one
    venue giving that venue's BBO), a list of normalized symbols (only those), or a
    mapping ``{symbol: ["venue:native", ...]}`` of explicit groups (the caller declares
    the books the same product; a native symbol that cannot be normalized is taken as
    the group's). ``quote_aliases``: currencies declared equivalent (``{"BUSD": "USD"}``).
    ``stale_ns``: an int for every venue or ``{venue: ns}``; ``fees``: ``{venue: rate}``
    (decimal text, over the defaults of :data:`fastbook.DEFAULT_TAKER_FEES`).
    ``fixed_cost``, ``min_profit_bps``, ``max_age_ns``: as :class:`fastbook.Consolidated`.
    """

    def __init__(self, select: Any = True, *, quote_aliases: Mapping[str, str] | None = None,
                 stale_ns: int | Mapping[str, int] | None = None,
                 fees: Mapping[str, Any] | None = None, fixed_cost: Any = "0",
                 min_profit_bps: Any = 0, max_age_ns: int | None = None,
                 consolidated: Callable[..., Any] | None = None,
                 max_rows: int | None = None) -> None:
        if consolidated is None:
            from fastbook import Consolidated

            consolidated = Consolidated
        self._make: Callable[..., Any] = consolidated
        self.quote_aliases = dict(quote_aliases or {})
        for k, v in self.quote_aliases.items():
            if not isinstance(k, str) or not isinstance(v, str) or not k or not v:
                raise ValueError(f"quote_aliases: {k!r} -> {v!r} is not currency -> currency")
        self._explicit: dict[tuple[str, str], str] = {}
        self._only: set[str] | None = None
        self._grouped = isinstance(select, Mapping)     # explicit groups (maybe none)
        if isinstance(select, Mapping):
            for symbol, members in select.items():
                parse_symbol(symbol)
                if isinstance(members, str):
                    raise ValueError(f"consolidate[{symbol!r}]: a list of 'venue:native' "
                                     f"books, not one string")
                for m in members:
                    venue, sep, native = str(m).partition(":")
                    if not sep or not venue or not native:
                        raise ValueError(f"consolidate[{symbol!r}]: {m!r} is not "
                                         f"'venue:native'")
                    if (venue, native) in self._explicit:
                        raise ValueError(f"{m!r} is in two consolidated groups")
                    self._explicit[(venue, native)] = symbol
        elif select is True:
            pass
        elif isinstance(select, Iterable) and not isinstance(select, (str, bytes)):
            self._only = set()
            for symbol in select:
                parse_symbol(symbol)
                self._only.add(symbol)
        else:
            raise ValueError(f"consolidate must be True, a list of normalized symbols or a "
                             f"{{symbol: ['venue:native', ...]}} mapping, got {select!r}")
        if stale_ns is None:
            stale_ns = DEFAULT_STALE_NS
        self._stale = stale_ns
        self._fees = dict(fees or {})
        self._options = {"fixed_cost": fixed_cost, "min_profit_bps": min_profit_bps,
                         "max_age_ns": max_age_ns}
        self.views: list[_View] = []
        self._by_symbol: dict[str, _View] = {}
        self._member: dict[tuple[str, str], tuple[_View, int]] = {}
        self.unmapped: dict[tuple[str, str], str] = {}        # books left out, and why
        self._cbbo: list[np.ndarray] = []
        self._arb: deque[tuple[Any, ...]] = deque(maxlen=max_rows)
        self.changes = 0
        self.opportunities = 0
        # a live tap holds at most max_rows of each table until take_*() drains them;
        # older rows are dropped and counted (a replay keeps them all)
        self.max_rows = max_rows
        self._cbbo_rows = 0
        self.dropped_cbbo = 0
        self.dropped_arbitrage = 0

    # -- the stream ----------------------------------------------------------------------

    def applied(self, venue: str, native: str, book: Any, instrument: Any, now_ns: int,
                live: bool = True) -> bool:
        """Book ``(venue, native)`` changed at ``now_ns``; True when a consolidated BBO
        changed. ``book`` is the object to read (it may be a new one for the same venue)."""
        key = (venue, native)
        m = self._member.get(key)
        if m is None:
            if key in self.unmapped:
                return False
            m = self._join(key, book, instrument)
            if m is None:
                return False
        v, i = m
        view = v.view
        if v.entries[i].book is not book:
            view.rebind(i, book)
            v.entries[i] = dataclasses.replace(v.entries[i], book=book)
        changed = view.update(i, now_ns, live)
        v.last[i] = (v.tick(now_ns), bool(live))
        if changed or v.crossed:
            self._after(v, now_ns, changed)
        return bool(changed)

    def down(self, venue: str, native: str, now_ns: int) -> bool:
        """Book ``(venue, native)`` is no longer live (resyncing, stale, down)."""
        m = self._member.get((venue, native))
        if m is None:
            return False
        v, i = m
        changed = v.view.update(i, now_ns, False)
        v.last[i] = (v.tick(now_ns), False)
        if changed or v.crossed:
            self._after(v, now_ns, changed)
        return bool(changed)

    def refresh(self, now_ns: int) -> int:
        """Re-check every view's staleness at ``now_ns``; the number of views that changed."""
        n = 0
        for v in self.views:
            v.refreshed = v.tick(now_ns)
            if v.view.refresh(now_ns):
                n += 1
                self._after(v, now_ns, True)
            elif v.crossed:
                self._after(v, now_ns, False)
        return n

    def next_stale_ns(self) -> int | None:
        """The earliest time a venue now in a view would be stale (None: none is in)."""
        due = None
        for v in self.views:
            states = v.view.venues_in()
            for i, name in enumerate(v.names):
                t = v.last[i]
                if t is not None and states.get(name) == "in":
                    d = t[0] + v.entries[i].stale_ns + 1
                    due = d if due is None or d < due else due
        return due

    def _after(self, v: _View, now_ns: int, changed: bool) -> None:
        if changed:
            self.changes += 1
            self._drain(v)
        bbo = v.view.bbo()
        v.crossed = bbo[0] is not None and bbo[3] is not None and bbo[0] > bbo[3]
        opps = v.view.arbitrage(now_ns) if v.crossed else ()
        if not opps and not v.open:
            return
        seen = {}
        for rank, o in enumerate(opps):
            pair = (o.sell_venue, o.buy_venue)
            seen[pair] = o
            row_key = (o.qty, o.profit, o.sell_limit, o.buy_limit)
            if v.open.get(pair) == row_key:
                continue
            v.open[pair] = row_key
            self.opportunities += 1
            self._keep_arb((now_ns, v.vid, v.names.index(o.sell_venue),
                              v.names.index(o.buy_venue), o.qty, _text(o.profit_decimal()),
                              o.profit_bps, o.sell_limit, o.buy_limit, o.levels[0],
                              o.levels[1], o.sell_age_ns, o.buy_age_ns, rank))
        for pair in [p for p in v.open if p not in seen]:
            del v.open[pair]
            self._keep_arb((now_ns, v.vid, v.names.index(pair[0]), v.names.index(pair[1]),
                              0, "0", 0.0, 0, 0, 0, 0, 0, 0, -1))

    def _keep_arb(self, row: tuple[Any, ...]) -> None:
        if len(self._arb) == self._arb.maxlen:
            self.dropped_arbitrage += 1
        self._arb.append(row)

    def _drain(self, v: _View) -> None:
        ev = v.view.take_events()
        if len(ev):
            rows = np.empty(len(ev), dtype=CBBO_ROW_DTYPE)
            rows["view"] = v.vid
            for name in CBBO_DTYPE.names or ():
                rows[name] = ev[name]
            self._cbbo.append(rows)
            self._cbbo_rows += len(rows)
            if self.max_rows is not None:
                while self._cbbo_rows > self.max_rows and len(self._cbbo) > 1:
                    gone = self._cbbo.pop(0)
                    self._cbbo_rows -= len(gone)
                    self.dropped_cbbo += len(gone)

    # -- building views ------------------------------------------------------------------

    def _symbol_for(self, key: tuple[str, str], instrument: Any) -> str | None:
        venue, native = key
        if self._grouped:
            return self._explicit.get(key)
        symbol = group_key(venue, native, instrument, self.quote_aliases)
        if symbol is None:
            self.unmapped[key] = ("no normalized symbol (give the venue's instrument "
                                  "metadata, or group it explicitly)")
            return None
        if self._only is not None and symbol not in self._only:
            self.unmapped[key] = f"{symbol} was not asked for"
            return None
        return symbol

    def _join(self, key: tuple[str, str], book: Any, instrument: Any) -> tuple[_View, int] | None:
        from fastbook._consolspec import Venue

        symbol = self._symbol_for(key, instrument)
        if symbol is None:
            if key not in self.unmapped:
                self.unmapped[key] = "not in a consolidated group"
            return None
        venue, native = key
        v = self._by_symbol.get(symbol)
        new_view = v is None
        if v is None:
            v = _View(len(self.views), symbol)
        name = venue if venue not in v.names else f"{venue}:{native}"
        stale = self._stale.get(venue, DEFAULT_STALE_NS) if isinstance(self._stale, Mapping) \
            else self._stale
        fee = self._fees.get(name, self._fees.get(venue))
        inst = dataclasses.replace(instrument,
                                   symbol=self._view_symbol(key, symbol, instrument))
        entry = Venue(name, book, inst, stale, None if fee is None else str(fee))
        try:
            self._rebuild(v, [*v.entries, entry])
        except (ValueError, TypeError) as exc:
            # another product, an inverse contract, no fee: the book stays out (and is not
            # tried again at each of its messages); the view, if any, is as it was
            self.unmapped[key] = f"refused by the {symbol} view: {exc}"
            raise
        if new_view:
            self.views.append(v)
            self._by_symbol[symbol] = v
        v.keys.append(key)
        v.names.append(name)
        v.last.append(None)
        i = len(v.keys) - 1
        self._member[key] = (v, i)
        return v, i

    def _view_symbol(self, key: tuple[str, str], symbol: str, instrument: Any) -> str:
        """The book's own normalized symbol with the declared aliases applied (the view
        refuses it when it is another product), or the group's symbol when the book has
        none (an explicit group's assertion)."""
        own = group_key(key[0], key[1], instrument, self.quote_aliases)
        return symbol if own is None else own

    def _rebuild(self, v: _View, entries: list[Any]) -> None:
        old = v.view
        view = self._make(v.symbol, entries, **self._options)
        if old is not None:
            self._drain(v)
            v.base_stats = _add_stats(v.base_stats, _minus(old.stats(), v.replayed))
            done = sorted((t[0], i) for i, t in enumerate(v.last) if t is not None)
            for t, i in done:
                view.update(i, t, v.last[i][1])      # type: ignore[index]
            if v.refreshed > _INT64_MIN:
                view.refresh(v.refreshed)
            view.take_events()                       # the old view emitted these already
            v.replayed = view.stats()
        v.view = view
        v.entries = entries

    # -- results -------------------------------------------------------------------------

    def take_cbbo(self) -> np.ndarray:
        """The consolidated-BBO change rows since the last call (``CBBO_ROW_DTYPE``)."""
        for v in self.views:
            self._drain(v)
        rows = np.concatenate(self._cbbo) if self._cbbo else np.empty(0, CBBO_ROW_DTYPE)
        self._cbbo = []
        self._cbbo_rows = 0
        return rows

    def take_arbitrage(self) -> np.ndarray:
        """The arbitrage rows since the last call (:data:`ARB_DTYPE`)."""
        out = np.empty(len(self._arb), dtype=ARB_DTYPE)
        for j, row in enumerate(self._arb):
            out[j] = row
        self._arb.clear()
        return out

    def view(self, symbol: str) -> Any:
        """The :class:`fastbook.Consolidated` of ``symbol``."""
        v = self._by_symbol.get(symbol)
        if v is None:
            raise KeyError(f"no consolidated view of {symbol!r} (views: "
                           f"{', '.join(self._by_symbol) or 'none yet'})")
        return v.view

    def view_of(self, venue: str, native: str) -> tuple[str, Any] | None:
        """(symbol, view) of the view book ``(venue, native)`` is in, or None."""
        m = self._member.get((venue, native))
        return None if m is None else (m[0].symbol, m[0].view)

    def symbols(self) -> list[str]:
        return [v.symbol for v in self.views]

    def metadata(self) -> dict[str, Any]:
        """Per view (in view-id order): the view's metadata (scales, venues, fees,
        thresholds) and which book each venue index is."""
        return {"views": [{**v.view.metadata(), "view": v.vid,
                           "books": [f"{a}:{b}" for a, b in v.keys]} for v in self.views],
                "quote_aliases": self.quote_aliases,
                "unmapped": {f"{a}:{b}": why for (a, b), why in self.unmapped.items()}}

    def stats(self) -> dict[str, Any]:
        """Per view: its counters (updates, changes, clock steps back, per venue counts
        and state, across rebuilds), and the tap's totals."""
        views = {}
        for v in self.views:
            s = _add_stats(v.base_stats, _minus(v.view.stats(), v.replayed))
            s["venues_in"] = v.view.venues_in()
            views[v.symbol] = s
        return {"views": views, "changes": self.changes, "opportunities": self.opportunities,
                "unmapped": len(self.unmapped), "dropped_cbbo": self.dropped_cbbo,
                "dropped_arbitrage": self.dropped_arbitrage}

    def multi_venue(self) -> list[str]:
        """The symbols whose view holds more than one venue."""
        return [v.symbol for v in self.views if len(v.keys) > 1]


def _text(d: Any) -> str:
    """Exact decimal text without trailing zeros or an exponent (``0.1596``)."""
    return format(d.normalize(), "f") if d else "0"


def _minus(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a - b`` on the int counters of two ``Consolidated.stats()`` (states kept from a)."""
    return _combine(a, b, -1)


def _add_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return _combine(b, a, 1)


def _combine(a: dict[str, Any], b: dict[str, Any], sign: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, x in a.items():
        y = b.get(k)
        if isinstance(x, bool) or not isinstance(x, (int, dict)):
            out[k] = x
        elif isinstance(x, dict):
            out[k] = _combine(x, y if isinstance(y, dict) else {}, sign)
        else:
            out[k] = x + sign * (y if isinstance(y, int) and not isinstance(y, bool) else 0)
    return out


def write_tables(path: str | os.PathLike[str], tap_meta: dict[str, Any],
                 tables: Sequence[tuple[str, np.ndarray]]) -> list[str]:
    """Write each (name, rows) table: the first to ``path``, the others beside it as
    ``<stem>.<name>.parquet`` (or ``.arrow``); the ``fastbook.consolidated`` schema
    metadata (JSON) holds :meth:`ConsolidatedTap.metadata`. Returns the paths written."""
    from fastbook.writers import _pyarrow, output_format

    path = os.fspath(path)
    fmt = output_format(path)
    if fmt not in ("parquet", "arrow"):
        raise ValueError(f"{path!r}: consolidated output is Parquet (.parquet) or Arrow "
                         f"(.arrow/.feather)")
    pa = _pyarrow()
    stem, ext = os.path.splitext(path)
    written = []
    for j, (name, rows) in enumerate(tables):
        target = path if j == 0 else f"{stem}.{name}{ext}"
        cols = {n: (rows[n].astype(str) if rows.dtype[n].kind == "O" else rows[n])
                for n in rows.dtype.names or ()}
        table = pa.table(cols).replace_schema_metadata({
            "fastbook.consolidated": json.dumps(tap_meta, sort_keys=True),
            "fastbook.table": name})
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, target)
        else:
            import pyarrow.feather as feather

            feather.write_feather(table, target)
        written.append(target)
    return written


# -- live sessions (fb.live, and replays of its recordings) ------------------------------


class NoticeTap:
    """Feeds a :class:`ConsolidatedTap` from a live :class:`fastbook.live.Session`'s
    notices: an applied message of a live book updates its view (reading the book the
    session shows now, rebound after a reconnect); a book's state change away from live
    takes it out. Used by ``fb.live(..., consolidate=...)`` and by the consolidated replay
    of a live recording, so both see the same views."""

    def __init__(self, tap: ConsolidatedTap, session: Any) -> None:
        from fastbook.live._session import BookState

        self.tap = tap
        self.session = session
        self._live = BookState.LIVE
        self._tracks: dict[tuple[str, str], Any] = {}
        self.feeds: dict[str, Any] = {}         # venue -> the feed that applied its last

    def __call__(self, n: Any) -> None:
        key = (n.venue, n.symbol)
        t = self._tracks.get(key)
        if t is None:
            t = self._tracks[key] = self.session.track(n.venue, n.symbol)
        if n.state is not self._live:
            self.tap.down(t.venue, t.native, n.recv_ns)
            return
        c = t.primary
        book = self.session.book(t.venue, t.native)
        if c is None or book is None:
            return
        self.feeds[t.venue] = c.feed
        inst = c.feed.symbol_state(t.native).instrument
        self.tap.applied(t.venue, t.native, book, inst, n.recv_ns, True)


def _replay_recording(source: Any, tap: ConsolidatedTap, name: str, *, book_depth: Any,
                      refresh_ns: int, on_error: str, **unused: Any) -> tuple[dict[str, Any],
                                                                              int, int]:
    """A live recording through the live session, its notices to ``tap``."""
    import fastbook.live._record as rec

    given = sorted(k for k, v in unused.items() if v is not None)
    if given:
        raise ValueError(f"{', '.join(given)}: not options of a live recording's consolidated "
                         f"replay (its codecs are set up as the live run's)")
    meta = rec.recording_meta(source) or {}
    depth = book_depth if book_depth is not None else meta.get("depth")
    state: dict[str, Any] = {"nxt": None, "notices": 0}

    def on_notice(n: Any) -> None:
        state["notices"] += 1
        now = n.recv_ns
        if state["nxt"] is None:
            state["nxt"] = (now // refresh_ns + 1) * refresh_ns
        elif now >= state["nxt"]:
            state["nxt"] = _refresh_until(tap, state["nxt"], now, refresh_ns)
        handler(n)

    from fastbook.live._session import Session

    session = Session(rec.recording_books(source), depth=depth if isinstance(depth, int)
                      else None, stale_after_s=None, latency=False, on_notice=on_notice)
    handler = NoticeTap(tap, session)
    rec.replay_recording(source, session=session)
    frames = sum(c.get("frames_closed", 0) for c in session.venue_counts.values()) + \
        sum(c.frames for c in session.conns.values())
    return handler.feeds, state["notices"], frames


# -- replaying several venues' captures, consolidated ------------------------------------


def source_codec(source: Any, name: str, *, verify: bool = True, look: int = 64) -> str:
    """The L2 codec of a capture, from the first URL among its first ``look`` records."""
    from fastbook import capture
    from fastbook.driver import url_codec

    for n, rec in enumerate(capture.merge_raw([source], verify=verify)):
        url = rec[3]
        if url:
            codec = url_codec(url)
            if codec is not None:
                return codec
            raise ValueError(f"{name}: cannot tell the venue of {url!r}; give codec= "
                             f"(one per capture)")
        if n >= look:
            break
    raise ValueError(f"{name}: no connection or request URL in its first {look} records to "
                     f"tell its venue; give codec= (one per capture)")


def _per_source(codec: Any, n: int) -> list[str | None]:
    if codec is None:
        return [None] * n
    parts: list[str | None]
    if isinstance(codec, str):
        parts = [c.strip() for c in codec.split(",")]
    else:
        parts = list(codec)
    if len(parts) == 1:
        return parts * n
    if len(parts) != n:
        raise ValueError(f"codec names {len(parts)} codecs for {n} captures: give one codec, "
                         f"or one per capture in order")
    return parts


def _by_codec(value: Any, codec: str, what: str) -> Any:
    """``value`` for one codec: the same for all, or a ``{codec: value}`` mapping."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if not isinstance(k, str)]
        if unknown:
            raise ValueError(f"{what}: keys are codec names, got {unknown[0]!r}")
        return value.get(codec)
    return value


class ConsolidatedResult:
    """What :func:`replay_consolidated` returns: the tables, the tap and the feeds.

    ``cbbo`` (:data:`CBBO_ROW_DTYPE`), ``arbitrage`` (:data:`ARB_DTYPE`) and ``health``
    (None without a health monitor) are numpy structured arrays; ``metadata`` has every
    view's symbol, scales, venues and fees; ``feeds`` maps a codec to its feed (its books,
    counts and errors).
    """

    def __init__(self, *, tap: ConsolidatedTap, feeds: dict[str, Any], cbbo: np.ndarray,
                 arbitrage: np.ndarray, health: np.ndarray | None, messages: int,
                 records: int, seconds: float, warnings: list[str], sources: list[str]) -> None:
        self.tap = tap
        self.feeds = feeds
        self.cbbo = cbbo
        self.arbitrage = arbitrage
        self.health = health
        self.messages = messages
        self.records = records
        self.seconds = seconds
        self.warnings = warnings
        self.sources = sources
        self.metadata = tap.metadata()
        #: the health monitor's alerts, raised and cleared, in order (replay with health=)
        self.alerts: list[Any] = []

    def view(self, symbol: str) -> Any:
        return self.tap.view(symbol)

    def book(self, venue: str, native: str) -> Any:
        return self.feeds[venue].book(native)

    def stats(self) -> dict[str, Any]:
        return self.tap.stats()

    def tables(self) -> list[tuple[str, np.ndarray]]:
        out = [("cbbo", self.cbbo), ("arbitrage", self.arbitrage)]
        if self.health is not None:
            out.append(("health", self.health))
        return out

    def to_parquet(self, path: str | os.PathLike[str]) -> list[str]:
        """The consolidated BBO changes to ``path``, the arbitrage (and health) rows
        beside it (``<stem>.arbitrage.parquet``); see ``docs/consolidated.md``."""
        return write_tables(path, self.metadata, self.tables())

    def summary(self) -> str:
        lines = [f"consolidated replay of {len(self.sources)} capture(s), "
                 f"{', '.join(self.feeds)}: {self.messages:,} messages in "
                 f"{self.seconds:.2f} s"]
        for v in self.tap.views:
            n = int((self.cbbo["view"] == v.vid).sum())
            a = int(((self.arbitrage["view"] == v.vid) & (self.arbitrage["qty"] > 0)).sum())
            lines.append(f"  {v.symbol}: {len(v.keys)} venue(s) ({', '.join(v.names)}), "
                         f"{n:,} BBO changes, {a:,} arbitrage rows")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<ConsolidatedResult views={len(self.tap.views)} cbbo={len(self.cbbo)} "
                f"arbitrage={len(self.arbitrage)}>")


def replay_consolidated(sources: Any, codec: Any = None, *, consolidate: Any = True,
                        quote_aliases: Mapping[str, str] | None = None,
                        stale_ns: int | Mapping[str, int] | None = None,
                        fees: Mapping[str, Any] | None = None, fixed_cost: Any = "0",
                        min_profit_bps: Any = 0, max_age_ns: int | None = None,
                        symbols: Any = None, on_error: str = "raise",
                        instruments: Any = None, book_depth: Any = None,
                        verify: bool = True, progress: bool | None = None,
                        output: str | os.PathLike[str] | None = None,
                        refresh_ns: int = 100_000_000, health: Any = None,
                        on_step: Callable[..., None] | None = None,
                        consolidated: Callable[..., Any] | None = None
                        ) -> ConsolidatedResult:
    """Replay several venues' captures merged by receive time into consolidated views.

    Each capture's codec is ``codec`` (one for all, or one per capture) or read from the
    capture's URLs; captures of one codec share one feed (a Binance websocket capture and
    its REST snapshots). After each message applied to a book the views are updated at the
    message's receive time; every ``refresh_ns`` of capture time they are refreshed, so
    quotes go stale as they would live. ``on_step(tap, feeds, venue, native, recv_ns)``
    (tests) is called after each such update; ``consolidated`` is the view class (the
    twin, for tests). The other options are :class:`ConsolidatedTap`'s and
    :func:`fastbook.replay`'s (``symbols``: native symbols, for every codec or per codec
    as ``{codec: [...]}``; ``instruments``, ``book_depth``: one for all or per codec).
    """
    import time

    from fastbook import capture, codecs
    from fastbook.driver import _locate, check_output
    from fastbook.errors import DecodeError
    from fastbook.sources import Progress

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not isinstance(refresh_ns, int) or isinstance(refresh_ns, bool) or refresh_ns <= 0:
        raise ValueError(f"refresh_ns must be a positive int (ns), got {refresh_ns!r}")
    if output is not None:
        check_output(output, "output")
    srcs = capture.as_sources(sources)
    names = capture.source_names(srcs)
    from fastbook.live._record import recording_meta

    tap = ConsolidatedTap(consolidate, quote_aliases=quote_aliases, stale_ns=stale_ns,
                          fees=fees, fixed_cost=fixed_cost, min_profit_bps=min_profit_bps,
                          max_age_ns=max_age_ns, consolidated=consolidated)
    if len(srcs) == 1 and recording_meta(srcs[0]) is not None:
        t0 = time.perf_counter()
        session_feeds, notices, frames = _replay_recording(
            srcs[0], tap, names[0], book_depth=book_depth, refresh_ns=refresh_ns,
            on_error=on_error, codec=codec, symbols=symbols, instruments=instruments,
            health=health, on_step=on_step)
        return _result(tap, session_feeds, None, notices, frames, time.perf_counter() - t0,
                       names, output)
    for s, name in zip(srcs, names, strict=True):
        if not isinstance(s, (str, os.PathLike, bytes, bytearray, memoryview)):
            raise ValueError(f"{name}: a consolidated replay reads each capture twice (its "
                             f"venue, then its records): give paths or bytes, not streams")
    given = _per_source(codec, len(srcs))
    per = [c if c is not None else source_codec(s, name, verify=verify)
           for c, s, name in zip(given, srcs, names, strict=True)]
    feeds: dict[str, Any] = {}
    for c in per:
        if c in feeds:
            continue
        if codecs.kind(c) != "l2":
            raise ValueError(f"{c!r} is not an L2 feed codec: a consolidated replay takes "
                             f"venue captures (binance-spot, coinbase-exchange, kraken-v1, ...)")
        meta = _by_codec(instruments, c, "instruments")
        if isinstance(meta, (str, os.PathLike)):
            from fastbook.driver import load_instruments

            meta = load_instruments(codecs.load(c).venue, meta)
        wanted = _by_codec(symbols, c, "symbols")
        if isinstance(wanted, str):
            wanted = [x.strip() for x in wanted.split(",") if x.strip()]
        feeds[c] = codecs.load(c)(meta, depth=_by_codec(book_depth, c, "book_depth"),
                                  on_error=on_error, record=False,
                                  symbols=None if wanted is None else list(wanted))
    src_feed = [feeds[c] for c in per]
    src_venue = [f.venue for f in src_feed]
    units = ["line" if capture.sniff(x) == "cryptofeed" else "record" for x in srcs]
    rest_of = [getattr(f, "rest_symbol", None) or capture.rest_symbol for f in src_feed]
    monitor = _health_monitor(health)
    bar = Progress(None, unit_name="records", enabled=progress)
    t0 = time.perf_counter()
    messages = records = 0
    nxt: int | None = None
    last_health: int | None = None
    last_update: dict[str, int] = {}
    end_ns = 0
    try:
        for recv_ns, kind, _conn, url, payload, number, _flags, src in capture.merge_raw(
                srcs, verify=verify):
            records += 1
            end_ns = recv_ns
            if nxt is None:
                nxt = (recv_ns // refresh_ns + 1) * refresh_ns
            elif recv_ns >= nxt:
                nxt = _refresh_until(tap, nxt, recv_ns, refresh_ns)
            feed = src_feed[src]
            try:
                if kind == capture.RECEIVED:
                    notices = feed.feed(payload, recv_ns)
                    s = feed.touched()
                elif kind == capture.REST:
                    symbol = rest_of[src](url)
                    if symbol is None or (feed.wanted is not None and symbol not in feed.wanted):
                        continue
                    notices = feed.snapshot(symbol, payload, recv_ns)
                    s = feed.symbol_state(symbol) if symbol in feed.symbols else None
                else:
                    continue
            except DecodeError as exc:
                raise _locate(exc, f"{names[src]}: {units[src]} {number}") from None
            messages += 1
            venue = src_venue[src]
            for n in notices or ():
                # a book that stopped being synced (a gap, a refused message) leaves its views
                if n.symbol and (s is None or n.symbol != s.native) and \
                        n.symbol in feed.symbols and not feed.is_synced(n.symbol):
                    tap.down(venue, n.symbol, recv_ns)
            if s is not None:
                last_update[venue] = recv_ns
                tap.applied(venue, s.native, s.book, s.instrument, recv_ns,
                            feed.is_synced(s.native))
                if on_step is not None:
                    on_step(tap, feeds, venue, s.native, recv_ns)
            if monitor is not None and (last_health is None or
                                        recv_ns - last_health >= 1_000_000_000):
                last_health = recv_ns
                _observe(monitor, feeds, recv_ns, last_update)
            if not records & 0x3FFF:
                bar.update(0, records)
    finally:
        bar.close()
    if monitor is not None and last_health is not None:
        if end_ns > last_health:
            _observe(monitor, feeds, end_ns, last_update)
    return _result(tap, feeds, monitor, messages, records, time.perf_counter() - t0, names,
                   output)


def _result(tap: ConsolidatedTap, feeds: dict[str, Any], monitor: Any, messages: int,
            records: int, seconds: float, names: list[str],
            output: str | os.PathLike[str] | None) -> ConsolidatedResult:
    """The result of a consolidated replay (written to ``output`` when given)."""
    result = ConsolidatedResult(
        tap=tap, feeds=feeds, cbbo=tap.take_cbbo(), arbitrage=tap.take_arbitrage(),
        health=None if monitor is None else monitor.take_rows(), messages=messages,
        records=records, seconds=seconds, warnings=_warnings(tap, feeds), sources=names)
    if monitor is not None:
        result.metadata["health"] = {**monitor.metadata(), "summary": monitor.summary()}
        result.alerts = list(monitor.history)
    if output is not None:
        result.to_parquet(output)
    return result


def _refresh_until(tap: ConsolidatedTap, nxt: int, now: int, tick: int) -> int:
    """Refresh at each timer tick up to ``now`` where a quote can go stale (ticks where
    nothing can change are skipped); the next tick."""
    while nxt <= now:
        tap.refresh(nxt)
        due = tap.next_stale_ns()
        if due is None:
            return (now // tick + 1) * tick
        nxt = max(nxt + tick, -(-due // tick) * tick)
    return nxt


def _warnings(tap: ConsolidatedTap, feeds: dict[str, Any]) -> list[str]:
    out = []
    if tap.views and not tap.multi_venue():
        have = {c: ", ".join(f.symbols[:6]) + (" ..." if len(f.symbols) > 6 else "")
                for c, f in feeds.items()}
        out.append("no product is on more than one venue, so each view holds one venue ("
                   + "; ".join(f"{c}: {s}" for c, s in have.items()) + "); group books "
                   "explicitly (consolidate={symbol: ['venue:native', ...]}) or declare "
                   "equivalent quotes (quote_aliases)")
    unnamed = {k: why for k, why in tap.unmapped.items() if why.startswith("no normalized")}
    if unnamed:
        keys = [f"{a}:{b}" for a, b in unnamed]
        out.append(f"{len(keys)} book(s) not consolidated ({', '.join(keys[:5])}"
                   f"{' ...' if len(keys) > 5 else ''}): {next(iter(unnamed.values()))}")
    return out


def _health_monitor(health: Any) -> Any:
    """A :class:`fastbook.live._health.HealthMonitor` for ``health=`` (True, thresholds as
    a dict or ``HealthThresholds``, or a monitor), or None."""
    if health is None or health is False:
        return None
    if hasattr(health, "observe") and hasattr(health, "take_rows"):
        return health
    from fastbook.live._health import make_monitor

    return make_monitor(health)


def _observe(monitor: Any, feeds: dict[str, Any], now_ns: int,
             last: dict[str, int]) -> None:
    """One health observation per venue of a replay, at capture time ``now_ns``: its
    books' state (live when every book is synced; resyncing after a resync; syncing
    before the first), its feed's message, error and resync counts, its last update."""
    for feed in feeds.values():
        c = feed.counts()
        synced = [feed.is_synced(n) for n in feed.symbols]
        state = "live" if synced and all(synced) else \
            ("resyncing" if c.get("resyncs", 0) else "syncing")
        monitor.observe(feed.venue, now_ns, state=state, messages=c.get("messages", 0),
                        errors=c.get("malformed", 0), resyncs=c.get("resyncs", 0),
                        last_update_ns=last.get(feed.venue))
