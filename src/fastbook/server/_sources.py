"""What feeds the quote server's books: a replay of captures, or the live driver.

A source's ``run(hub, instruments)`` coroutine runs on the server's loop and
is the hub's one writer: after each applied change it calls
:meth:`fastbook.server._hub.Hub.publish` for the instrument. ``instruments``
are ``"venue:symbol"`` names, slot ``i`` being ``instruments[i]``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from fastbook.server._hub import Hub

__all__ = ["CONSOLIDATED", "Live", "Replay", "ViewLevels", "split_instrument"]


def split_instrument(name: str) -> tuple[str, str]:
    """``"coinbase-exchange:BTC-USD"`` -> ``("coinbase-exchange", "BTC-USD")``."""
    venue, sep, symbol = name.partition(":")
    if not sep or not venue or not symbol:
        raise ValueError(f"instrument {name!r} is not VENUE:SYMBOL "
                         f"(e.g. coinbase-exchange:BTC-USD)")
    return venue, symbol


class Replay:
    """Replay L2 captures into the server's books at ``speed`` times the recorded pace.

    ``captures``: a capture path (fastbook or cryptofeed format) or a list of
    them merged in receive-time order (a Binance websocket capture and its REST
    snapshots). ``speed``: 1.0 is real time, 10.0 ten times faster, 0 as fast
    as the loop goes (it still yields to the clients after every message).
    ``repeat``: play the captures this many times (each time from empty books;
    0: until the server stops). The codec is the instruments' venue.
    """

    def __init__(self, captures: Any, *, speed: float = 1.0, repeat: int = 1,
                 verify: bool = True, **feed_options: Any) -> None:
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0 (0: as fast as possible), not {speed!r}")
        if repeat < 0:
            raise ValueError(f"repeat must be >= 0 (0: until stopped), not {repeat!r}")
        self.captures = captures if isinstance(captures, (list, tuple)) else [captures]
        for c in self.captures:
            if isinstance(c, (str, os.PathLike)) and not os.path.exists(c):
                raise FileNotFoundError(f"replay capture {os.fspath(c)!r} does not exist")
        self.speed = float(speed)
        self.repeat = int(repeat)
        self.verify = verify
        self.feed_options = feed_options
        self.messages = 0
        self.published = 0
        self.rounds = 0
        self.done = False

    def _codec(self, instruments: list[str]) -> tuple[str, list[str]]:
        from fastbook import codecs

        venues = {split_instrument(n)[0] for n in instruments}
        if len(venues) != 1:
            raise ValueError(f"a replay serves one venue's captures; the instruments name "
                             f"{', '.join(sorted(venues))}")
        (venue,) = venues
        if codecs.kind(venue) != "l2":
            raise ValueError(f"{venue!r} is not an L2 feed codec (fastbook codecs lists them)")
        return venue, [split_instrument(n)[1] for n in instruments]

    def check(self, instruments: list[str]) -> None:
        """Raise ValueError now (before the server binds) for instruments it cannot serve."""
        self._codec(instruments)

    async def run(self, hub: Hub, instruments: list[str]) -> None:
        venue, natives = self._codec(instruments)
        rounds = 0
        while self.repeat == 0 or rounds < self.repeat:
            await self._play(hub, venue, natives)
            rounds += 1
            self.rounds = rounds
        self.done = True

    async def _play(self, hub: Hub, venue: str, natives: list[str]) -> None:
        from fastbook import capture, codecs
        from fastbook.codecs._l2feed import SyncState

        feed = codecs.load(venue)(on_error="skip", symbols=natives, **self.feed_options)
        rest_symbol = getattr(feed, "rest_symbol", None) or capture.rest_symbol
        # (state, top) last published per slot: the initial "syncing" below
        shown: list[Any] = [("syncing", None)] * len(natives)
        for slot in range(len(natives)):
            hub.publish_state(slot, "syncing")
        start_wall = time.monotonic()
        first_ns: int | None = None
        depth = hub.depth
        for recv_ns, kind, _c, url, payload, _n, _f, _s in capture.merge_raw(
                self.captures, verify=self.verify):
            if kind == capture.RECEIVED:
                feed.feed(payload, recv_ns)
            elif kind == capture.REST:
                symbol = rest_symbol(url)
                if symbol is None or symbol not in natives:
                    continue
                feed.snapshot(symbol, payload, recv_ns)
            else:
                continue
            self.messages += 1
            if first_ns is None:
                first_ns = recv_ns
            await self._pace(start_wall, recv_ns - first_ns)
            for slot, native in enumerate(natives):
                try:
                    s = feed.symbol_state(native)
                except KeyError:
                    continue
                state = "live" if s.state == SyncState.SYNCED else \
                    "resyncing" if s.state == SyncState.RESYNC else "syncing"
                top = s.book.top(depth) if state == "live" else None
                prev = shown[slot]
                if prev[0] == state and (top is None or np.array_equal(prev[1], top)):
                    continue
                shown[slot] = (state, top)
                hub.publish(slot, s.book, state, s.ts or recv_ns)
                self.published += 1

    async def _pace(self, start_wall: float, offset_ns: int) -> None:
        if self.speed == 0:
            await asyncio.sleep(0)
            return
        delay = start_wall + offset_ns / 1e9 / self.speed - time.monotonic()
        await asyncio.sleep(max(0.0, delay))

    def stats(self) -> dict[str, Any]:
        return {"kind": "replay", "messages": self.messages, "published": self.published,
                "rounds": self.rounds, "done": self.done, "speed": self.speed}


#: The venue part of a consolidated instrument's name: ``"consolidated:BTC/USDT"``.
CONSOLIDATED = "consolidated"


class ViewLevels:
    """A consolidated view read as a book for the board: ``top(n)`` is the view's merged
    depth (the venues in the view, summed per price) in ``Book.top``'s layout, at the
    view's common scales."""

    def __init__(self, view: Any) -> None:
        self.view = view
        self.price_decimals = view.price_decimals
        self.qty_decimals = view.qty_decimals

    def top(self, n: int) -> np.ndarray:
        d = self.view.depth(n)
        out = np.zeros((4, n), dtype=np.int64)
        for row, values in enumerate((d.bid_prices, d.bid_qtys, d.ask_prices, d.ask_qtys)):
            out[row, :len(values)] = values
        return out


def _split_consolidated(instruments: Iterable[str]) -> tuple[list[str], list[str]]:
    """(venue specs, consolidated symbols) of the server's instrument names."""
    from fastbook.codecs.instruments import parse_symbol

    specs, symbols = [], []
    for name in instruments:
        venue, sep, symbol = str(name).partition(":")
        if venue == CONSOLIDATED and sep:
            parse_symbol(symbol)            # a normalized symbol, or ValueError
            symbols.append(symbol)
        else:
            specs.append(name)
    if symbols and not specs:
        raise ValueError("consolidated instruments need the venue books they combine among "
                         "the instruments (e.g. okx:BTC-USDT binance-spot:BTCUSDT "
                         "consolidated:BTC/USDT)")
    return specs, symbols


class Live:
    """Live books from venues' websockets (:func:`fastbook.live`), or a feed already open.

    ``Live(**options)`` opens ``fb.live(instruments, on_not_live="return",
    **options)`` on the server's loop (``endpoints=``, ``depth=``... as for
    :func:`fastbook.live`); ``Live(feed=feed)`` serves a running
    :class:`fastbook.live.LiveBooks` (the instruments must be its books).
    The server publishes from the driver's notice callback, so each version is
    the book exactly as of the message that changed it.

    ``"consolidated:SYMBOL"`` instruments serve the consolidated view of ``SYMBOL``
    (``docs/consolidated.md``) over the venue books among the instruments: its merged top
    levels at the view's common scales, republished after each notice of a book in the
    view (state ``live`` while a venue is in it, else ``stale`` with no levels); a view
    whose venues go stale without any notice is republished at the next notice. The feed is
    opened with ``consolidate=True`` unless ``consolidate=`` is among the options; a feed
    already open must have been opened with ``consolidate``.
    """

    def __init__(self, *, feed: Any = None, **options: Any) -> None:
        self.feed = feed
        self.options = options
        self.notices = 0
        self.published = 0
        self.ignored = 0
        self.done = False
        self._views: dict[str, int] = {}          # consolidated symbol -> slot
        self._adapters: dict[str, ViewLevels] = {}

    def check(self, instruments: list[str]) -> None:
        from fastbook.live import parse_specs

        parse_specs(_split_consolidated(instruments)[0])

    @staticmethod
    def names(instruments: Iterable[str]) -> list[str]:
        """The server's names of the specs: ``"VENUE:SYMBOL"`` with the venue's full name,
        then the ``"consolidated:SYMBOL"`` ones (slots in that order)."""
        from fastbook.live import parse_specs

        specs, symbols = _split_consolidated(instruments)
        return [f"{venue}:{symbol}" for venue, _native, symbol in parse_specs(specs)] + \
            [f"{CONSOLIDATED}:{s}" for s in symbols]

    async def run(self, hub: Hub, instruments: list[str]) -> None:
        from fastbook.live import live, parse_specs

        venue_specs, symbols = _split_consolidated(instruments)
        specs = parse_specs(venue_specs)
        slot_of = {(venue, symbol): i for i, (venue, _n, symbol) in enumerate(specs)}
        self._views = {s: len(specs) + k for k, s in enumerate(symbols)}
        for slot in range(len(specs) + len(symbols)):
            hub.publish_state(slot, "connecting")
        if symbols and self.feed is None:
            self.options.setdefault("consolidate", True)
        if symbols and self.feed is not None and self.feed.consolidated is None:
            raise ValueError("consolidated instruments need a feed opened with "
                             "fb.live(..., consolidate=...)")
        if self.feed is not None:
            feed = self.feed
            for (venue, symbol), slot in slot_of.items():     # where the open feed stands
                t = feed.session.track(venue, symbol)
                book = feed.session.book(t.venue, t.native)
                state = str(t.state)
                if book is not None and state in ("live", "stale"):
                    hub.publish(slot, book, state)
                else:
                    hub.publish_state(slot, "connecting" if state in ("live", "stale")
                                      else state)
            feed.on_notice(lambda n: self._on_notice(hub, feed, slot_of, n))
            await asyncio.Event().wait()        # until the server cancels it
            return
        feed = live([f"{v}:{s}" for v, _n, s in specs], on_not_live="return", **self.options)
        feed.on_notice(lambda n: self._on_notice(hub, feed, slot_of, n))
        self.feed = feed
        try:
            async with feed:
                await asyncio.Event().wait()
        finally:
            self.done = True

    def _on_notice(self, hub: Hub, feed: Any, slot_of: dict[tuple[str, str], int],
                   n: Any) -> None:
        self.notices += 1
        slot = slot_of.get((n.venue, n.symbol))
        if slot is None:
            self.ignored += 1
            return
        state = str(n.state)
        book = None
        if state in ("live", "stale"):
            # the session's book, not feed.book(): that one refuses a stale book when the
            # feed was opened with on_not_live="raise", and a stale book is served
            t = feed.session.track(n.venue, n.symbol)
            book = feed.session.book(t.venue, t.native)
        if book is None:
            hub.publish_state(slot, "connecting" if state in ("live", "stale") else state,
                              n.exchange_ns or n.applied_ns)
        else:
            hub.publish(slot, book, state, n.exchange_ns or n.applied_ns)
        self.published += 1
        if self._views:
            self._publish_views(hub, feed, n)

    def _publish_views(self, hub: Hub, feed: Any, n: Any) -> None:
        """Republish the consolidated view the notice's book is in (the tap has already
        taken the notice: its callback was registered when the feed was made)."""
        t = feed.session.track(n.venue, n.symbol)
        found = feed.consolidated.view_of(t.venue, t.native)
        if found is None or found[0] not in self._views:
            return
        symbol, view = found
        slot = self._views[symbol]
        adapter = self._adapters.get(symbol)
        if adapter is None or adapter.view is not view:        # a view rebuilt by a join
            adapter = self._adapters[symbol] = ViewLevels(view)
        if any(r == "in" for r in view.venues_in().values()):
            hub.publish(slot, adapter, "live", n.recv_ns)
        else:                                   # no venue in the view: nothing to quote
            hub.scales[slot] = (adapter.price_decimals, adapter.qty_decimals)
            hub.publish_state(slot, "stale", n.recv_ns)
        self.published += 1

    def stats(self) -> dict[str, Any]:
        return {"kind": "live", "notices": self.notices, "published": self.published,
                "ignored": self.ignored, "done": self.done}
