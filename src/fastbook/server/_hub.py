"""The quote server's writer side: publish into the board, serialize once, fan out.

One :class:`Hub` per server. Its writer (whatever feeds the books: a replay, the
live driver's notice callback, or the user's own code calling
:meth:`Hub.publish`) runs on the server's event loop. Each publish copies the
book's top levels into a :class:`fastbook.board.Board` slot (readers on other
threads may take consistent snapshots of it at any time), reads that version
back as one :class:`Version`, and offers the same object to every subscriber
of the instrument. A :class:`Version` serializes itself at most once per wire
format (JSON, JSON with decimal strings, protobuf, protobuf with decimal
strings), the first time a client needs it, and every client is sent those
same bytes.

Each subscriber holds one latest-value slot per instrument: a version offered
while the previous one is still unsent replaces it (counted in ``conflated``).
So a slow or stalled client costs the writer one dict store per publish, never
blocks it, and never holds more than one version per instrument; what waits in
its socket is bounded by the transport's write limit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from fastbook import Book, format_decimal
from fastbook.server._proto import STATES

__all__ = ["STATE_NAMES", "Hub", "Subscriber", "Version", "state_code"]

#: state code -> name used on the wire (JSON) and in the API
STATE_NAMES = {code: name.lower() for name, code in STATES.items()}
STATE_NAMES[0] = "unknown"
_CODES = {name: code for code, name in STATE_NAMES.items()}
_LIVE = STATES["LIVE"]
_STALE = STATES["STALE"]


def state_code(state: Any) -> int:
    """The code of ``state``: a name (``"live"``, a live ``BookState``) or a code."""
    if isinstance(state, int):
        if state not in STATE_NAMES:
            raise ValueError(f"state code {state} is not one of {sorted(STATE_NAMES)}")
        return state
    code = _CODES.get(str(getattr(state, "value", state)).lower())
    if code is None:
        raise ValueError(f"state {state!r} is not one of {', '.join(_CODES)}")
    return code


class Version:
    """One published version of one instrument's top levels, serialized lazily, once per format.

    ``bids`` and ``asks`` are lists of ``[price, qty]`` fixed-point integers,
    best first, exactly what the board holds at version ``seq``.
    """

    __slots__ = ("_wire", "asks", "bids", "instrument", "price_scale", "publish_ns",
                 "qty_scale", "seq", "slot", "state", "ts_ns")

    def __init__(self, slot: int, instrument: str, seq: int, state: int, ts_ns: int,
                 publish_ns: int, price_scale: int, qty_scale: int,
                 bids: list[list[int]], asks: list[list[int]]) -> None:
        self.slot = slot
        self.instrument = instrument
        self.seq = seq
        self.state = state
        self.ts_ns = ts_ns
        self.publish_ns = publish_ns
        self.price_scale = price_scale
        self.qty_scale = qty_scale
        self.bids = bids
        self.asks = asks
        self._wire: dict[tuple[str, bool], bytes] = {}

    @property
    def spread(self) -> int | None:
        """Best ask minus best bid, or None when a side is empty."""
        if self.bids and self.asks:
            return self.asks[0][0] - self.bids[0][0]
        return None

    def json(self, decimals: bool = False) -> bytes:
        """The JSON text of this version (cached: every client gets the same bytes)."""
        key = ("json", decimals)
        out = self._wire.get(key)
        if out is None:
            out = self._wire[key] = self._encode_json(decimals)
        return out

    def ws_frame(self, decimals: bool = False) -> bytes:
        """The JSON as one complete, unmasked WebSocket text frame (what a server sends).

        The frame is the same for every client (servers do not mask, and the
        endpoint runs without compression), so it is built once too and written
        to each client's transport as it is.
        """
        key = ("frame", decimals)
        out = self._wire.get(key)
        if out is None:
            payload = self.json(decimals)
            n = len(payload)
            head = bytes((0x81, n)) if n < 126 else \
                bytes((0x81, 126)) + n.to_bytes(2, "big") if n < 65536 else \
                bytes((0x81, 127)) + n.to_bytes(8, "big")
            out = self._wire[key] = head + payload
        return out

    def protobuf(self, decimals: bool = False) -> bytes:
        """The serialized ``Quote`` message of ``fastbook.proto`` (cached)."""
        key = ("pb", decimals)
        out = self._wire.get(key)
        if out is None:
            out = self._wire[key] = self._encode_protobuf(decimals)
        return out

    def _encode_json(self, decimals: bool) -> bytes:
        spread = self.spread
        parts = [
            '{"type":"quote","instrument":', _json_str(self.instrument),
            f',"seq":{self.seq},"state":"{STATE_NAMES[self.state]}","ts_ns":{self.ts_ns},'
            f'"publish_ns":{self.publish_ns},"price_scale":{self.price_scale},'
            f'"qty_scale":{self.qty_scale},"bids":{_json_levels(self.bids)},'
            f'"asks":{_json_levels(self.asks)},"spread":{"null" if spread is None else spread}',
        ]
        if decimals:
            ps, qs = self.price_scale, self.qty_scale
            parts.append(f',"bids_text":{_json_text(self.bids, ps, qs)},'
                         f'"asks_text":{_json_text(self.asks, ps, qs)},"spread_text":'
                         + ("null" if spread is None else f'"{format_decimal(spread, ps)}"'))
        parts.append("}")
        return "".join(parts).encode()

    def _encode_protobuf(self, decimals: bool) -> bytes:
        from fastbook.server._proto import messages

        q = messages()["Quote"](
            instrument=self.instrument, seq=self.seq, state=self.state, ts_ns=self.ts_ns,
            publish_ns=self.publish_ns, price_scale=self.price_scale, qty_scale=self.qty_scale,
            bid_prices=[p for p, _ in self.bids], bid_qtys=[q for _, q in self.bids],
            ask_prices=[p for p, _ in self.asks], ask_qtys=[q for _, q in self.asks])
        spread = self.spread
        if spread is not None:
            q.has_spread = True
            q.spread = spread
        if decimals:
            ps, qs = self.price_scale, self.qty_scale
            q.bid_prices_text.extend(format_decimal(p, ps) for p, _ in self.bids)
            q.bid_qtys_text.extend(format_decimal(x, qs) for _, x in self.bids)
            q.ask_prices_text.extend(format_decimal(p, ps) for p, _ in self.asks)
            q.ask_qtys_text.extend(format_decimal(x, qs) for _, x in self.asks)
            if spread is not None:
                q.spread_text = format_decimal(spread, ps)
        return bytes(q.SerializeToString())


def _json_str(text: str) -> str:
    return json.dumps(text)


def _json_levels(levels: list[list[int]]) -> str:
    return "[" + ",".join(f"[{p},{q}]" for p, q in levels) + "]"


def _json_text(levels: list[list[int]], ps: int, qs: int) -> str:
    return "[" + ",".join(f'["{format_decimal(p, ps)}","{format_decimal(q, qs)}"]'
                          for p, q in levels) + "]"


class Subscriber:
    """One client's subscription: a latest-value slot per instrument, and counts.

    The writer calls :meth:`offer`; the client's sender awaits :meth:`take`,
    which returns every pending version (oldest instrument first) and empties
    the slots. ``conflated`` counts versions replaced before they were sent,
    ``delivered`` those handed to the transport.
    """

    __slots__ = ("_event", "_hub", "closed", "conflated", "decimals", "delivered", "name",
                 "pending", "slots")

    def __init__(self, hub: Hub, name: str, decimals: bool) -> None:
        self._hub = hub
        self.name = name
        self.decimals = decimals
        self.slots: set[int] = set()
        self.pending: dict[int, Version] = {}
        self.conflated = 0
        self.delivered = 0
        self.closed = False
        self._event = asyncio.Event()

    def offer(self, version: Version) -> None:
        """Keep ``version`` as the instrument's next message (replacing an unsent one)."""
        pending = self.pending
        if version.slot in pending:
            self.conflated += 1
        pending[version.slot] = version
        self._event.set()

    async def take(self) -> list[Version]:
        """Wait for pending versions and take them all (an empty list once closed)."""
        while not self.pending:
            if self.closed:
                return []
            await self._event.wait()
            self._event.clear()
        out = list(self.pending.values())
        self.pending.clear()
        return out

    def add(self, slots: Iterable[int]) -> None:
        """Subscribe to more instruments (their latest versions become pending)."""
        self._hub.attach(self, slots)

    def remove(self, slots: Iterable[int]) -> None:
        """Stop streaming these instruments (a pending version of them is dropped)."""
        self._hub.detach(self, slots)

    def close(self) -> None:
        """Leave the hub (idempotent); a waiting :meth:`take` returns ``[]``."""
        if not self.closed:
            self.closed = True
            self._hub.detach(self, list(self.slots))
            self._hub.forget(self)
            self._event.set()

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "instruments": len(self.slots), "delivered": self.delivered,
                "conflated": self.conflated, "pending": len(self.pending)}


class Hub:
    """The board of ``instruments``, the latest version of each, and the subscribers.

    ``instruments`` are the names clients ask for (``"venue:symbol"``); slot
    ``i`` is ``instruments[i]``.
    """

    def __init__(self, instruments: Iterable[str], depth: int = 10) -> None:
        from fastbook.board import Board

        self.instruments = [str(n) for n in instruments]
        if not self.instruments:
            raise ValueError("the quote server needs at least one instrument")
        self.slot_of = {name: i for i, name in enumerate(self.instruments)}
        if len(self.slot_of) != len(self.instruments):
            dup = sorted({n for n in self.instruments if self.instruments.count(n) > 1})
            raise ValueError(f"instruments named twice: {', '.join(dup)}")
        self.depth = depth
        self.board = Board(len(self.instruments), depth)
        self.latest: list[Version | None] = [None] * len(self.instruments)
        self.scales: list[tuple[int, int]] = [(0, 0)] * len(self.instruments)
        self._subs: list[dict[Subscriber, None]] = [{} for _ in self.instruments]
        self.subscribers: dict[Subscriber, None] = {}
        self._empty: dict[tuple[int, int], Book] = {}
        self.publishes = 0
        self.offered = 0
        self.closed_clients = {"delivered": 0, "conflated": 0, "count": 0}

    # --- writer -------------------------------------------------------------------

    def publish(self, slot: int, book: Any, state: Any = "live", ts_ns: int = 0) -> Version:
        """Publish ``book``'s top levels as ``slot``'s next version and offer it to subscribers.

        A book whose state is not live or stale is published without levels: a
        book known to be wrong is never shown (its state says why there is none).
        """
        code = state_code(state)
        scales = (int(book.price_decimals), int(book.qty_decimals))
        self.scales[slot] = scales
        if code != _LIVE and code != _STALE:
            book = self._empty_book(scales)
        publish_ns = time.time_ns()
        self.board.publish(slot, book, code, publish_ns)
        return self._fan_out(slot, ts_ns)

    def publish_state(self, slot: int, state: Any, ts_ns: int = 0) -> Version:
        """Publish a state change with no levels (before any book exists, or a book gone)."""
        code = state_code(state)
        if code == _LIVE or code == _STALE:
            raise ValueError(f"a {STATE_NAMES[code]} book is published with its levels: "
                             f"use publish(slot, book, ...)")
        self.board.publish(slot, self._empty_book(self.scales[slot]), code, time.time_ns())
        return self._fan_out(slot, ts_ns)

    def _empty_book(self, scales: tuple[int, int]) -> Book:
        book = self._empty.get(scales)
        if book is None:
            book = self._empty[scales] = Book(price_decimals=scales[0], qty_decimals=scales[1],
                                              capacity=1)
        return book

    def _fan_out(self, slot: int, ts_ns: int) -> Version:
        v = self.read(slot, ts_ns)
        self.latest[slot] = v
        self.publishes += 1
        subs = self._subs[slot]
        self.offered += len(subs)
        for sub in subs:
            sub.offer(v)
        return v

    def read(self, slot: int, ts_ns: int = 0) -> Version:
        """The board's current version of ``slot`` as a :class:`Version` (a consistent copy)."""
        snap = self.board.read(slot)
        ps, qs = self.scales[slot]
        return Version(slot, self.instruments[slot], int(snap.version), int(snap.state), ts_ns,
                       int(snap.ts_ns), ps, qs, snap.bids[:snap.n_bids].tolist(),
                       snap.asks[:snap.n_asks].tolist())

    def current(self, slot: int) -> Version:
        """The latest published version of ``slot`` (version 0, no levels, before any)."""
        v = self.latest[slot]
        return self.read(slot) if v is None else v

    # --- subscribers ----------------------------------------------------------------

    def subscribe(self, slots: Iterable[int], *, decimals: bool = False,
                  name: str = "") -> Subscriber:
        """A new :class:`Subscriber` of ``slots``; their latest versions are pending at once."""
        sub = Subscriber(self, name, decimals)
        self.subscribers[sub] = None
        self.attach(sub, slots)
        return sub

    def attach(self, sub: Subscriber, slots: Iterable[int]) -> None:
        for slot in slots:
            if slot in sub.slots:
                continue
            sub.slots.add(slot)
            self._subs[slot][sub] = None
            v = self.latest[slot]
            if v is not None:
                sub.offer(v)

    def detach(self, sub: Subscriber, slots: Iterable[int]) -> None:
        for slot in slots:
            sub.slots.discard(slot)
            self._subs[slot].pop(sub, None)
            sub.pending.pop(slot, None)

    def forget(self, sub: Subscriber) -> None:
        if self.subscribers.pop(sub, 0) is None:
            c = self.closed_clients
            c["delivered"] += sub.delivered
            c["conflated"] += sub.conflated
            c["count"] += 1

    def stats(self) -> dict[str, Any]:
        """Publishes, offers and per-client counts (open clients, and closed ones summed)."""
        clients = [s.stats() for s in self.subscribers]
        return {"instruments": len(self.instruments), "publishes": self.publishes,
                "offered": self.offered, "clients": clients,
                "delivered": sum(c["delivered"] for c in clients)
                + self.closed_clients["delivered"],
                "conflated": sum(c["conflated"] for c in clients)
                + self.closed_clients["conflated"],
                "closed_clients": dict(self.closed_clients)}
