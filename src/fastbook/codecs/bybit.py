"""Bybit v5 public ``orderbook.{depth}.{symbol}``: snapshot/delta books with exact sync.

:class:`Bybit` (venue ``"bybit"``) reads the v5 public websocket::

    {"topic":"orderbook.50.BTCUSDT","type":"snapshot"|"delta","ts":1672304484978,
     "data":{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],
             "u":18521288,"seq":7961638724},"cts":1672304484976}

Rules (Bybit's orderbook documentation; no real v5 capture exists yet):

* The first message of a subscription is a ``snapshot``: the book becomes it
  and the symbol is synced. **Any later snapshot replaces the book** (Bybit
  re-sends one when it has a problem; it is the latest state). On a synced
  book that is a ``resync`` notice with reason ``"new_snapshot"`` followed at
  once by ``synced``: nothing to do. Depth-1 streams send only snapshots (and
  re-send them unchanged, same ``u``, every 3 s), so there they are silent.
* ``u`` is the update id per symbol: each ``delta`` must have ``u == prev u +
  1``. Lower or equal is a duplicate or out of order (refused: ``FeedError`` /
  counted); higher is a gap: the book is discarded and a ``resubscribe`` notice
  returned.
* ``u == 1`` means the service restarted: a snapshot with ``u == 1`` replaces
  the book (``resync`` reason ``"sequence_reset"``, then ``synced``); a delta
  with ``u == 1`` cannot be trusted on the old book: resync and resubscribe.
* Sizes are absolute; ``"0"`` removes the level. A crossed or locked book after
  a message is discarded (``"crossed"``).
* ``seq`` (the cross sequence, monotonic but not contiguous) is kept in
  ``SymbolSync.vars["seq"]``; it is not used for sync.
* The exchange time is ``cts`` (the matching engine's, ms) when present, else
  ``ts``, in ns.

``category`` (``"spot"``, ``"linear"``, ``"inverse"``, ``"option"``) marks the
default instruments: inverse quantities are contracts of 1 USD. ``depth``, when
given, must be the depth of every topic (else the message is refused).

Trades (topic ``publicTrade.{symbol}``): one TRADE event per print; ``S`` is the
taker's side, ``T`` the time (ms), ``i`` the trade id (the sequence when numeric).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from fastbook.codecs._l2feed import (
    FeedError,
    Instrument,
    L2Feed,
    Notice,
    SymbolSync,
    SyncState,
    check_recv,
)
from fastbook.codecs._l2schema import Field, Schema, short_repr
from fastbook.codecs._trades import BadTrade, aggressor, ms_ns, price_qty, trade_id
from fastbook.codecs._venues import (
    MAX_MS,
    ScannedFeed,
    json_message,
    record_snapshot,
    record_update,
)

__all__ = ["CATEGORIES", "FEEDS", "Bybit"]

_SYNCED = SyncState.SYNCED

#: Market categories of Bybit v5.
CATEGORIES = ("spot", "linear", "inverse", "option")
#: Order book depths of the public topics, by category.
DEPTHS = {"spot": (1, 50, 200, 1000), "linear": (1, 50, 200, 1000),
          "inverse": (1, 50, 200, 1000), "option": (25, 100)}
#: Counters of each symbol beyond ``COUNT_KEYS``.
EXTRA_COUNTS = ("out_of_order", "new_snapshots", "restarts")

_SCHEMA = Schema(
    containers=("data",),
    discriminator=("topic", "top"), accept=("orderbook.",), prefix=True,
    symbol=("s", "data"),
    fields=[Field("type", "str", "top", required=True),
            Field("ts", "int", "top", required=True, lo=0, hi=MAX_MS),
            Field("cts", "int", "top", lo=0, hi=MAX_MS),
            Field("u", "int", "data", required=True, lo=1),
            Field("seq", "int", "data"),
            Field("b", "bids", "data", required=True), Field("a", "asks", "data", required=True)],
)


class Bybit(ScannedFeed):
    """Bybit v5 ``orderbook.{depth}.{symbol}`` (see the module docstring for the rules).

    Options beyond :class:`~fastbook.codecs._l2feed.L2Feed`'s: ``category``
    (default ``"linear"``) and ``kernel`` (``"auto"``, ``"compiled"``,
    ``"python"``: which JSON scanner reads messages).
    """

    venue: ClassVar[str] = "bybit"
    ERROR_SEQUENCE: ClassVar[int | None] = 2        # "u"
    EXTRA_COUNTS: ClassVar[tuple[str, ...]] = EXTRA_COUNTS
    default_decimals: ClassVar[tuple[int, int]] = (8, 8)

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 *, depth: int | None = None, on_error: str = "raise", record: bool = False,
                 book_capacity: int = 1024, symbols: Iterable[str] | None = None,
                 category: str = "linear", kernel: str = "auto") -> None:
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
        if depth is not None and depth not in DEPTHS[category]:
            raise ValueError(f"depth must be one of {DEPTHS[category]} for {category}, "
                             f"got {depth!r}")
        super().__init__(instruments, depth=depth, on_error=on_error, record=record,
                         book_capacity=book_capacity, symbols=symbols)
        self.category = category
        self._use_scanners(kernel, _SCHEMA)

    def _default_instrument(self, native: str) -> Instrument:
        pd, qd = self.default_decimals
        cat = self.category
        if cat == "spot":
            return Instrument(self.venue, native, native, pd, qd, kind="spot")
        if cat == "option":
            return Instrument(self.venue, native, native, pd, qd, kind="option")
        kind = "future" if native[-2:].isdigit() else "perpetual"
        if cat == "inverse":
            return Instrument(self.venue, native, native, pd, qd, kind=kind, contract_size="1",
                              contract_unit="USD", extra={"quantity": "contracts"})
        return Instrument(self.venue, native, native, pd, qd, kind=kind)

    def _error(self, text: str, s: SymbolSync | None = None, symbol: str = "",
               seq: int | None = None, duplicate: bool = False) -> list[Notice]:
        self._fail(FeedError(text, venue=self.venue, symbol=s.native if s else symbol,
                             sequence=seq, duplicate=duplicate), s)
        return []

    # --- messages ----------------------------------------------------------------------

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        """Decode one websocket message and act on it."""
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        sc = self._scan
        r = sc.read(message)
        if r is None:
            return self._miss(message, recv_ns)
        s, n, ts, cts, u, seq = r
        c = s.counts
        topic = sc.tag
        if topic != s.vars.get("topic") and not self._topic(s, topic, u):
            c["messages"] += 1
            return []
        kind = sc.strs[0]
        t = (ts if cts is None else cts) * 1_000_000
        if kind == "delta":
            last = s.last_seq
            if s.state is not _SYNCED or u != last + 1:
                c["messages"] += 1
                if s.state is not _SYNCED:
                    c["dropped"] += 1
                    return []
                assert last is not None
                return self._out_of_sequence(s, u, last)
            crossed = sc.apply()          # counts the message and its levels, too
            s.last_seq = u
            s.ts = t
            s.vars["seq"] = seq
            if self.events is not None:
                record_update(self.events, s.id, *sc.level_lists(), t, recv_ns, u)
            if crossed:
                c["crossed"] += 1
                return self._resync(s, "crossed", u, "best bid >= best ask after this update")
            return []
        c["messages"] += 1
        if kind != "snapshot":
            return self._error(f"type must be 'snapshot' or 'delta', got {kind!r}", s, seq=u)
        return self._snapshot(s, n, u, seq, t, recv_ns)

    def _trades(self, topic: str, message: Any, recv_ns: int) -> list[Notice]:
        """A ``publicTrade.{symbol}`` push: one TRADE event per entry of ``data``, in order.
        ``S`` is the taker's side (``"Buy"``: the buyer was the aggressor), ``T`` the time
        (ms), ``i`` the trade id (the sequence when it is a number; linear ids are UUIDs:
        0). Its ``type`` is always ``"snapshot"``: these are live prints."""
        native = topic[len("publicTrade."):]
        if not native:
            return self._trade_refused(f"topic {short_repr(topic)} names no symbol")
        if not self._trade_wanted(native):
            self.counts_total["ignored"] += 1
            return []
        try:
            obj = json_message(message)
        except ValueError as exc:  # pragma: no cover - the scanner read it
            return self._trade_refused(f"not valid JSON: {exc}", native)
        data = obj.get("data") if type(obj) is dict else None
        if type(data) is not list:
            return self._trade_refused(f"{topic}: data must be a list", native)
        pd, qd = self._trade_scales(native) or self.default_decimals
        prints = []
        try:
            for i, t in enumerate(data):
                where = f"{topic} data[{i}]"
                if type(t) is not dict:
                    raise BadTrade(f"{where} must be an object", native)
                if t.get("s") != native:
                    raise BadTrade(f"{where}: s {short_repr(t.get('s'))} is not the topic's "
                                   f"symbol", native)
                price, qty = price_qty(t.get("p"), t.get("v"), pd, qd, where, native)
                ts = ms_ns(t.get("T"), where, native)
                buyer = aggressor(t.get("S"), "Buy", "Sell", where, native, key="S")
                prints.append((native, price, qty, ts, trade_id(t.get("i")), buyer))
        except BadTrade as exc:
            return self._trade_refused(exc.text, native)
        return self._trades_done(prints, 0, recv_ns)

    def _topic(self, s: SymbolSync, topic: str, u: int) -> bool:
        """Check a topic the first time a symbol shows it (``orderbook.{depth}.{symbol}``)."""
        parts = topic.split(".")
        depth = int(parts[1]) if len(parts) == 3 and parts[1].isascii() \
            and parts[1].isdigit() and len(parts[1]) <= 6 else None
        if depth is None or parts[2] != s.native:
            self._error(f"topic {short_repr(topic)} is not orderbook.<depth>.{s.native}", s,
                        seq=u)
            return False
        if depth not in DEPTHS[self.category] or (self.depth is not None and depth != self.depth):
            want = self.depth if self.depth is not None else DEPTHS[self.category]
            self._error(f"topic {topic!r}: depth {depth} is not {want}", s, seq=u)
            return False
        if "depth" in s.vars and s.vars["depth"] != depth:
            self._error(f"topic {topic!r}: this feed already reads {s.native} at depth "
                        f"{s.vars['depth']}", s, seq=u)
            return False
        s.vars["topic"] = topic
        s.vars["depth"] = depth
        return True

    def _out_of_sequence(self, s: SymbolSync, u: int, last: int) -> list[Notice]:
        c = s.counts
        if u == 1:
            c["restarts"] += 1
            return self._resync(s, "sequence_reset", u, f"a delta with u=1 after u={last}: the "
                                "service restarted")
        if u <= last:
            c["dropped"] += 1
            c["out_of_order"] += 1
            return self._error(f"duplicate or out-of-order delta u={u}: the book is at u={last}",
                               s, seq=u, duplicate=True)
        c["gaps"] += 1
        return self._resync(s, "gap", u, f"u={u} after u={last}")

    def _snapshot(self, s: SymbolSync, n: int, u: int, seq: int | None, t: int,
                  recv_ns: int) -> list[Notice]:
        sc = self._scan
        c = s.counts
        was = s.state is _SYNCED
        last = s.last_seq
        crossed = self._load_scanned(s)
        s.state = _SYNCED
        s.last_seq = u
        s.ts = t
        s.vars["seq"] = seq
        c["snapshots"] += 1
        c["levels"] += n
        if self.events is not None:
            record_snapshot(self.events, s.id, *sc.level_lists(), t, recv_ns, u)
        if crossed:
            c["crossed"] += 1
            return self._resync(s, "crossed", u, "the snapshot itself is crossed")
        if not was:
            return [self._synced(s, u)]
        if u == 1 and last != 1:
            c["restarts"] += 1
            return [Notice("resync", self.venue, s.native, "sequence_reset", u,
                           f"snapshot with u=1 after u={last}: the service restarted"),
                    self._synced(s, u)]
        if u == last or s.vars.get("depth") == 1:
            return []                           # depth 1: snapshots only, same u re-sent
        c["new_snapshots"] += 1
        return [Notice("resync", self.venue, s.native, "new_snapshot", u,
                       f"the venue sent a new snapshot (u={u}, book was at u={last})"),
                self._synced(s, u)]

    def _other_message(self, kind: str | None, message: Any,
                       recv_ns: int = 0) -> list[Notice]:
        if kind is not None and kind.startswith("publicTrade."):
            return self._trades(kind, message, recv_ns)
        if kind is not None:
            self.counts_total["ignored"] += 1       # another topic: tickers, kline...
            return []
        try:
            obj = json.loads(bytes(message) if isinstance(message, memoryview) else message)
        except (ValueError, TypeError, RecursionError):  # pragma: no cover - scanned
            obj = None
        if isinstance(obj, dict) and "op" in obj:
            if obj.get("success") is False:
                return self._error(f"request {obj.get('op')!r} failed: "
                                   f"{obj.get('ret_msg', '')!s}")
            self.counts_total["ignored"] += 1       # subscribe ack, pong
            return []
        return self._error("not a Bybit public-topic message (no 'topic' or 'op')")


#: Feed classes by venue name.
FEEDS: dict[str, type[L2Feed]] = {"bybit": Bybit}
