"""Coinbase Advanced Trade ``level2`` and Coinbase Exchange ``level2`` / ``level2_batch`` feeds.

Both send their snapshot in the stream (no REST step): after a resync the
driver resubscribes (``resubscribe`` notices).

**Coinbase Advanced Trade** (:class:`CoinbaseAdvanced`, venue ``"coinbase-advanced"``),
channel ``l2_data``::

    {"channel":"l2_data","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,
     "events":[{"type":"snapshot"|"update","product_id":"BTC-USD",
                "updates":[{"side":"bid"|"offer","event_time":"...",
                            "price_level":"21921.73","new_quantity":"0.06317902"}]}]}

* ``new_quantity`` is absolute, ``"0"`` removes the level; ``side`` is ``bid``
  or ``offer`` (``ask`` is accepted too).
* ``sequence_num`` grows by exactly 1 per message **per connection**, whatever
  the channel (heartbeats included). A jump means messages were lost: every
  symbol on that connection is resynced (``resync`` reason ``"gap"`` plus a
  ``resubscribe`` notice each); a number at or below the last one is a
  duplicate or out of order and is refused. ``0`` after a higher number is a
  new connection the feed was not told about (reason ``"sequence_reset"``).
  ``feed(message, recv_ns, connection=...)`` names the connection (default 0);
  ``connection_closed(connection)`` resyncs its symbols.
* The exchange time is the envelope ``timestamp`` (ns, exact). The per-level
  ``event_time`` is not used: snapshots carry ``1970-01-01T00:00:00Z`` there.
* A message is validated completely (every event, every level) before any
  book changes. An ``update`` for a symbol without a snapshot is dropped.
* No real capture exists yet; the shapes follow Coinbase's documentation.

**Coinbase Exchange** (:class:`CoinbaseExchange`, venue ``"coinbase-exchange"``)::

    {"type":"snapshot","product_id":"BTC-USD","bids":[["10101.10","0.45054140"]],"asks":[...]}
    {"type":"l2update","product_id":"BTC-USD","changes":[["buy","10101.80","0.162567"]],
     "time":"2019-08-14T20:42:27.265Z"}

* ``changes`` are ``[side, price, size]`` with side ``buy`` (bid) or ``sell``
  (ask); the size is absolute, ``"0"`` removes the level. ``time`` is the
  exchange time (ns, exact).
* **There are no sequence numbers on level2 messages: a dropped message cannot
  be detected.** The only integrity check is the book itself: a crossed or
  locked book after a message is resynced (``"crossed"``). Use the
  ``heartbeat`` channel for liveness; a reconnect must resubscribe (each
  product then gets a fresh snapshot).
* The hot path reads messages with the compiled L2 JSON kernel (the same one
  as Binance).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from fastbook._vocab import ASK, BID, INT64_MAX, INT64_MIN
from fastbook.codecs._l2feed import (
    FeedError,
    Instrument,
    L2Feed,
    Notice,
    SymbolSync,
    SyncState,
    check_recv,
)
from fastbook.codecs._l2schema import Field, Schema, iso_to_ns, short_repr
from fastbook.codecs._trades import BadTrade, aggressor, iso_ns, price_qty, trade_id
from fastbook.codecs._venues import ScannedFeed, json_message, record_snapshot, record_update

__all__ = ["FEEDS", "CoinbaseAdvanced", "CoinbaseExchange", "iso_to_ns"]

_SYNCED = SyncState.SYNCED

class _Coinbase(L2Feed):
    """What both Coinbase feeds share: in-band snapshots, resubscribe to recover."""

    default_decimals: ClassVar[tuple[int, int]] = (8, 8)


# --- Coinbase Exchange ------------------------------------------------------------------

_EXCHANGE_SCHEMA = Schema(
    discriminator=("type", "top"), accept=("snapshot", "l2update"),
    symbol=("product_id", "top"), sides={"buy": BID, "sell": ASK},
    fields=[Field("time", "isotime", "top"), Field("bids", "bids", "top"),
            Field("asks", "asks", "top"), Field("changes", "sided", "top")],
)
_BIDS_ASKS, _CHANGES = 0b011, 0b100

#: Coinbase Exchange message types that carry neither level2 data nor a trade print
#: (counted as "ignored"; ``last_match`` is a print from before the subscription: see
#: :meth:`CoinbaseExchange._match`).
EXCHANGE_NON_BOOK = frozenset({
    "subscriptions", "heartbeat", "ticker", "last_match", "received", "open", "done",
    "change", "activate", "status", "auction", "rfq_match", "full_snapshot",
})


class CoinbaseExchange(_Coinbase, ScannedFeed):
    """Coinbase Exchange ``level2`` / ``level2_batch``: snapshots and ``l2update`` changes.

    ``kernel`` (``"auto"``, ``"compiled"``, ``"python"``) chooses the JSON scanner.
    """

    venue = "coinbase-exchange"

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 *, depth: int | None = None, on_error: str = "raise", record: bool = False,
                 book_capacity: int = 1024, symbols: Iterable[str] | None = None,
                 kernel: str = "auto") -> None:
        super().__init__(instruments, depth=depth, on_error=on_error, record=record,
                         book_capacity=book_capacity, symbols=symbols)
        self._use_scanners(kernel, _EXCHANGE_SCHEMA)

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        """Decode one websocket message and act on it."""
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        sc = self._scan
        r = sc.read(message)
        if r is None:
            return self._miss(message, recv_ns)
        s, n, time = r
        c = s.counts
        if sc.kind == 1:                                 # l2update
            if sc.found != _CHANGES or s.state is not _SYNCED:
                c["messages"] += 1
                if sc.found != _CHANGES:
                    return self._bad(s, "an l2update needs 'changes' (and no 'bids'/'asks')")
                c["dropped"] += 1
                return []
            ts = s.ts if time is None else time
            crossed = sc.apply()         # counts the message and its levels, too
            s.ts = ts
            if self.events is not None:
                record_update(self.events, s.id, *sc.level_lists(), ts, recv_ns, 0)
            if crossed:
                c["crossed"] += 1
                return self._resync(s, "crossed", None, "best bid >= best ask after this update")
            return []
        # snapshot
        c["messages"] += 1
        if sc.found != _BIDS_ASKS:
            return self._bad(s, "a snapshot needs 'bids' and 'asks' (and no 'changes')")
        ts = s.ts if time is None else time
        crossed = self._load_scanned(s)
        s.ts = ts
        s.last_seq = None
        c["snapshots"] += 1
        c["levels"] += n
        if self.events is not None:
            record_snapshot(self.events, s.id, *sc.level_lists(), ts, recv_ns, 0)
        if crossed:
            c["crossed"] += 1
            return self._resync(s, "crossed", None, "the snapshot itself is crossed")
        return [self._synced(s)]

    def _match(self, message: Any, recv_ns: int) -> list[Notice]:
        """A ``match`` (channel ``matches``): one TRADE event. Its ``side`` is the *maker's*:
        ``"buy"`` means a resting bid was hit, so the seller was the aggressor.

        ``last_match`` is not recorded (counted ``"trades_before_subscribe"`` and
        ``"ignored"``): it is the product's last trade before the subscription, re-sent on
        every (re)subscribe, so recording it would count a trade twice after a resubscribe
        and put a trade of minutes ago into the first interval of a capture.
        """
        try:
            obj = json_message(message)
        except ValueError as exc:  # pragma: no cover - the scanner read it
            return self._trade_refused(f"not valid JSON: {exc}")
        native = obj.get("product_id") if type(obj) is dict else None
        if type(native) is not str or not native:
            return self._trade_refused("match: product_id must be a non-empty string")
        if not self._trade_wanted(native):
            self.counts_total["ignored"] += 1
            return []
        pd, qd = self._trade_scales(native) or self.default_decimals
        try:
            price, qty = price_qty(obj.get("price"), obj.get("size"), pd, qd, "match", native)
            ts = iso_ns(obj.get("time"), "match", native)
            buyer = not aggressor(obj.get("side"), "buy", "sell", "match", native)
        except BadTrade as exc:
            return self._trade_refused(exc.text, native)
        return self._trades_done([(native, price, qty, ts, trade_id(obj.get("trade_id")),
                                   buyer)], 0, recv_ns)

    def _bad(self, s: SymbolSync, text: str) -> list[Notice]:
        self._fail(FeedError(text, venue=self.venue, symbol=s.native), s)
        return []

    def _other_message(self, kind: str | None, message: Any,
                       recv_ns: int = 0) -> list[Notice]:
        if kind == "match":
            return self._match(message, recv_ns)
        if kind in EXCHANGE_NON_BOOK:
            if kind == "last_match":
                self.counts_total["trades_before_subscribe"] += 1
            self.counts_total["ignored"] += 1
            return []
        if kind == "error":
            try:
                obj = json.loads(bytes(message) if isinstance(message, memoryview) else message)
                why = f"{obj.get('message', '')}: {obj.get('reason', '')}"
            except (ValueError, TypeError, AttributeError,
                    RecursionError):  # pragma: no cover - scanned
                why = "?"
            self._fail(FeedError(f"the venue sent an error: {why}", venue=self.venue))
            return []
        what = "no 'type'" if kind is None else f"unknown type {kind!r}"
        self._fail(FeedError(f"not a Coinbase Exchange message ({what})", venue=self.venue))
        return []


# --- Coinbase Advanced Trade ----------------------------------------------------------------

#: Advanced Trade channels that carry no level2 data (counted as "ignored").
ADVANCED_NON_BOOK = frozenset({
    "heartbeats", "subscriptions", "ticker", "ticker_batch", "status",
    "candles", "user", "futures_balance_summary",
})
_ADV_SIDES = {"bid": BID, "offer": ASK, "ask": ASK}


class CoinbaseAdvanced(_Coinbase):
    """Coinbase Advanced Trade ``level2`` (channel ``l2_data``), with per-connection sequencing.

    ``feed(message, recv_ns=0, /, *, connection=0)``: ``connection`` names the websocket
    the message came on (``sequence_num`` counts per connection).
    """

    venue = "coinbase-advanced"
    _scan_names_book = False

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 *, depth: int | None = None, on_error: str = "raise", record: bool = False,
                 book_capacity: int = 1024, symbols: Iterable[str] | None = None) -> None:
        super().__init__(instruments, depth=depth, on_error=on_error, record=record,
                         book_capacity=book_capacity, symbols=symbols)
        self._last_seq: dict[Any, int] = {}             # connection -> last sequence_num
        self._on_conn: dict[Any, dict[str, None]] = {}  # connection -> its symbols (ordered)

    def connection_closed(self, connection: Any = 0) -> list[Notice]:
        """The connection is gone: its books are stale. Returns their resync notices."""
        self._last_seq.pop(connection, None)
        notices: list[Notice] = []
        for native in self._on_conn.pop(connection, {}):
            s = self._symbols[native]
            if s.state is not SyncState.RESYNC:
                notices += self._resync(s, "disconnected")
        return notices

    def _conn_resync(self, connection: Any, reason: str, seq: int, detail: str) -> list[Notice]:
        notices: list[Notice] = []
        for native in self._on_conn.get(connection, {}):
            s = self._symbols[native]
            if s.state is not SyncState.RESYNC:
                notices += self._resync(s, reason, seq, detail)
        return notices

    def _error(self, text: str, symbol: str = "", seq: int | None = None,
               duplicate: bool = False) -> list[Notice]:
        s = self._symbols.get(symbol) if symbol else None
        self._fail(FeedError(text, venue=self.venue, symbol=symbol, sequence=seq,
                             duplicate=duplicate), s)
        return []

    def feed(self, message: bytes | str, recv_ns: int = 0, /, *,
             connection: Any = 0) -> list[Notice]:
        """Decode one websocket message and act on it."""
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        try:
            hash(connection)
        except TypeError:
            raise TypeError(f"{self.venue}: connection names a websocket and must be hashable, "
                            f"got {type(connection).__name__}") from None
        try:
            obj = json.loads(bytes(message) if isinstance(message, memoryview) else message)
        except (ValueError, TypeError, RecursionError) as exc:
            return self._error(f"not valid JSON: {exc}")
        if type(obj) is not dict:
            return self._error("expected a JSON object")
        if obj.get("type") == "error":
            return self._error(f"the venue sent an error: {obj.get('message', '')!s}")
        notices: list[Notice] = []
        seq = obj.get("sequence_num")
        if seq is not None and (type(seq) is not int or not 0 <= seq <= INT64_MAX):
            return self._error(f"sequence_num: expected a non-negative int64, got "
                               f"{seq!r}"[:120])
        channel = obj.get("channel")
        plan: tuple[Any, ...] | None = None
        trades: tuple[list[Any], int] | None = None
        if channel == "market_trades":
            try:
                trades = self._parse_trades(obj)
            except BadTrade as exc:
                # a trade changes no book: its sequence_num is taken when it continues the
                # connection's, so that refusing it is not a gap that rebuilds every book
                last = self._last_seq.get(connection)
                if seq is not None and (last is None or seq == last + 1):
                    self._last_seq[connection] = seq
                return self._trade_refused(exc.text, exc.symbol)
        elif channel != "l2_data" and not (type(channel) is str
                                            and channel in ADVANCED_NON_BOOK):
            # refused before its sequence_num is taken, as a bad l2_data message is
            return self._error(f"not a Coinbase Advanced Trade market-data message (channel "
                               f"{short_repr(channel)})", seq=seq)
        if channel == "l2_data":
            # validated before its sequence_num is taken: a refused message changes nothing,
            # so the next one shows the gap it leaves and the books are rebuilt
            parsed = self._parse_l2(obj, seq)
            if isinstance(parsed, list):
                return parsed       # refused: the error's notices
            plan = parsed
        if seq is not None:
            last = self._last_seq.get(connection)
            if last is not None and seq != last + 1:
                if seq == 0:
                    self.counts_total["sequence_resets"] += 1
                    notices += self._conn_resync(connection, "sequence_reset", seq,
                                                 f"sequence_num restarted at 0 after {last}")
                elif seq <= last:
                    self.counts_total["out_of_order"] += 1
                    self.counts_total["dropped"] += 1
                    return self._error(f"duplicate or out-of-order message: sequence_num {seq} "
                                       f"after {last}", seq=seq, duplicate=True)
                else:
                    self.counts_total["gaps"] += 1
                    notices += self._conn_resync(connection, "gap", seq,
                                                 f"sequence_num {seq} after {last}: "
                                                 f"{seq - last - 1} message(s) lost")
            self._last_seq[connection] = seq
        if plan is not None:
            return notices + self._apply_l2(plan, recv_ns, connection, seq)
        if trades is not None:
            prints, before = trades
            if before:
                self.counts_total["trades_before_subscribe"] += before
            return notices + self._trades_done(prints, 0, recv_ns)
        self.counts_total["ignored"] += 1       # heartbeats, subscriptions, tickers...
        return notices

    def _parse_trades(self, obj: dict[str, Any]) -> tuple[list[Any], int]:
        """Validate a ``market_trades`` message completely, changing nothing: ``(prints,
        prints before the subscription)``, or :class:`BadTrade`.

        Each event's ``trades`` are prints; ``side`` is the *taker's* (``"BUY"``: the
        buyer was the aggressor; Coinbase's Advanced Trade documentation, unlike the
        Exchange's ``match``), ``time`` the time, ``trade_id`` the sequence. A
        ``snapshot`` event (the last trades before the subscription, re-sent on every
        subscribe) is not recorded: counted ``"trades_before_subscribe"`` per print.
        """
        events = obj.get("events")
        if type(events) is not list:
            raise BadTrade("market_trades: events must be a list")
        prints = []
        before = 0
        for i, ev in enumerate(events):
            at = f"market_trades events[{i}]"
            if type(ev) is not dict or ev.get("type") not in ("snapshot", "update") \
                    or type(ev.get("trades")) is not list:
                raise BadTrade(f"{at}: expected an object of type snapshot/update with a "
                               f"trades list")
            if ev["type"] == "snapshot":
                before += len(ev["trades"])
                continue
            for k, t in enumerate(ev["trades"]):
                where = f"{at}.trades[{k}]"
                native = t.get("product_id") if type(t) is dict else None
                if type(native) is not str or not native:
                    raise BadTrade(f"{where}: expected an object with a product_id")
                if not self._trade_wanted(native):
                    continue
                pd, qd = self._trade_scales(native) or self.default_decimals
                price, qty = price_qty(t.get("price"), t.get("size"), pd, qd, where, native)
                ts = iso_ns(t.get("time"), where, native)
                buyer = aggressor(t.get("side"), "BUY", "SELL", where, native)
                prints.append((native, price, qty, ts, trade_id(t.get("trade_id")), buyer))
        return prints, before

    def _parse_l2(self, obj: dict[str, Any], seq: int | None) -> tuple[Any, ...] | list[Notice]:
        """Validate an ``l2_data`` message completely, changing nothing: ``(ts, events,
        ignored)`` to apply, or the (empty) notices of its refusal, reported."""
        from fastbook import parse_decimal
        from fastbook.errors import DecodeError

        stamp = obj.get("timestamp")
        try:
            ts = iso_to_ns(stamp) if stamp is not None else None
        except ValueError as exc:
            return self._error(f"timestamp: {exc}", seq=seq)
        if ts is not None and not INT64_MIN <= ts <= INT64_MAX:
            return self._error(f"timestamp {stamp!r} is outside int64 ns (1677-09-21 to "
                               f"2262-04-11)", seq=seq)
        events = obj.get("events")
        if type(events) is not list:
            return self._error("events: expected a list", seq=seq)
        # validate everything before any book changes (and before any symbol is made)
        parsed: list[tuple[str, bool, list[int], list[int], list[int]]] = []
        for i, ev in enumerate(events):
            if type(ev) is not dict:
                return self._error(f"events[{i}]: expected an object", seq=seq)
            kind, native, ups = ev.get("type"), ev.get("product_id"), ev.get("updates")
            if type(native) is not str:
                return self._error(f"events[{i}]: product_id must be a string", seq=seq)
            if kind not in ("snapshot", "update"):
                return self._error(f"events[{i}]: type must be 'snapshot' or 'update', got "
                                   f"{kind!r}", native, seq)
            if type(ups) is not list:
                return self._error(f"events[{i}]: updates must be a list", native, seq)
            if self.wanted is not None and native not in self.wanted:
                continue
            known = self._symbols.get(native)
            if known is not None:
                pd, qd = known.book.price_decimals, known.book.qty_decimals
            else:
                inst = self.instruments.get(native) or self._default_instrument(native)
                pd, qd = inst.price_decimals, inst.qty_decimals
            sides: list[int] = []
            prices: list[int] = []
            qtys: list[int] = []
            for k, up in enumerate(ups):
                where = f"events[{i}].updates[{k}]"
                if type(up) is not dict:
                    return self._error(f"{where}: expected an object", native, seq)
                side = _ADV_SIDES.get(up.get("side")) if isinstance(up.get("side"), str) \
                    else None
                if side is None:
                    return self._error(f"{where}: side {up.get('side')!r} is not bid/offer",
                                       native, seq)
                ptext, qtext = up.get("price_level"), up.get("new_quantity")
                if type(ptext) is not str or type(qtext) is not str:
                    return self._error(f"{where}: price_level and new_quantity must be "
                                       f"strings", native, seq)
                try:
                    price = parse_decimal(ptext, pd)
                    qty = parse_decimal(qtext, qd)
                except DecodeError as exc:
                    return self._error(f"{where}: {exc}", native, seq)
                if price <= 0 or qty < 0:
                    return self._error(f"{where}: price {ptext!r} must be positive and "
                                       f"quantity {qtext!r} not negative", native, seq)
                sides.append(side)
                prices.append(price)
                qtys.append(qty)
            parsed.append((native, kind == "snapshot", sides, prices, qtys))
        return ts, parsed, len(events) - len(parsed)

    def _apply_l2(self, plan: tuple[Any, ...], recv_ns: int, connection: Any,
                  seq: int | None) -> list[Notice]:
        """Carry out a validated ``l2_data`` message (see :meth:`_parse_l2`)."""
        ts, parsed, ignored = plan
        if ignored:
            self.counts_total["ignored"] += ignored
        notices: list[Notice] = []
        for native, snap, sides, prices, qtys in parsed:
            s = self._sym(native)
            self._on_conn.setdefault(connection, {})[s.native] = None
            notices += self._apply(s, snap, sides, prices, qtys,
                                   s.ts if ts is None else ts, recv_ns, seq)
        return notices

    def _apply(self, s: SymbolSync, snap: bool, sides: list[int], prices: list[int],
               qtys: list[int], ts: int, recv: int, seq: int | None) -> list[Notice]:
        import numpy as np

        c = s.counts
        c["messages"] += 1
        if not snap and s.state is not _SYNCED:
            c["dropped"] += 1
            return []
        a_s = np.array(sides, dtype=np.int8)
        a_p = np.array(prices, dtype=np.int64)
        a_q = np.array(qtys, dtype=np.int64)
        book = s.book
        if snap:
            book.clear()
        book.apply(a_s, a_p, a_q)
        s.ts = ts
        s.last_seq = seq
        c["levels"] += len(sides)
        c["snapshots" if snap else "applied"] += 1
        if self.events is not None:
            rec = record_snapshot if snap else record_update
            rec(self.events, s.id, sides, prices, qtys, ts, recv, seq or 0)
        if book.is_crossed():
            c["crossed"] += 1
            return self._resync(s, "crossed", seq, "best bid >= best ask after this message")
        if snap:
            return [self._synced(s, seq)]
        return []


#: Feed classes by venue name.
FEEDS: dict[str, type[L2Feed]] = {
    "coinbase-advanced": CoinbaseAdvanced,
    "coinbase-exchange": CoinbaseExchange,
}
