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

__all__ = ["Live", "Replay", "split_instrument"]


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


class Live:
    """Live books from venues' websockets (:func:`fastbook.live`), or a feed already open.

    ``Live(**options)`` opens ``fb.live(instruments, on_not_live="return",
    **options)`` on the server's loop (``endpoints=``, ``depth=``... as for
    :func:`fastbook.live`); ``Live(feed=feed)`` serves a running
    :class:`fastbook.live.LiveBooks` (the instruments must be its books).
    The server publishes from the driver's notice callback, so each version is
    the book exactly as of the message that changed it.
    """

    def __init__(self, *, feed: Any = None, **options: Any) -> None:
        self.feed = feed
        self.options = options
        self.notices = 0
        self.published = 0
        self.ignored = 0
        self.done = False

    def check(self, instruments: list[str]) -> None:
        from fastbook.live import parse_specs

        parse_specs(instruments)

    @staticmethod
    def names(instruments: Iterable[str]) -> list[str]:
        """The server's names of the specs: ``"VENUE:SYMBOL"`` with the venue's full name."""
        from fastbook.live import parse_specs

        return [f"{venue}:{symbol}" for venue, _native, symbol in parse_specs(instruments)]

    async def run(self, hub: Hub, instruments: list[str]) -> None:
        from fastbook.live import live, parse_specs

        specs = parse_specs(instruments)
        slot_of = {(venue, symbol): i for i, (venue, _n, symbol) in enumerate(specs)}
        for slot in range(len(specs)):
            hub.publish_state(slot, "connecting")
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

    def stats(self) -> dict[str, Any]:
        return {"kind": "live", "notices": self.notices, "published": self.published,
                "ignored": self.ignored, "done": self.done}
