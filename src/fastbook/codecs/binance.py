"""Binance spot, Binance.US, USD-M and COIN-M futures diff-depth streams: exact book sync.

One feed class per market, each a :class:`~fastbook.codecs._l2feed.L2Feed`:

============== ================= ============================ ========================
class          venue             REST snapshot                 continuity
============== ================= ============================ ========================
BinanceSpot    ``binance-spot``  ``GET /api/v3/depth``, 5000   ``U == prev u + 1``
BinanceUS      ``binance-us``    ``GET /api/v3/depth``, 5000   ``U == prev u + 1``
BinanceUSDM    ``binance-usdm``  ``GET /fapi/v1/depth``, 1000  ``pu == prev u``
BinanceCOINM   ``binance-coinm`` ``GET /dapi/v1/depth``, 1000  ``pu == prev u``
============== ================= ============================ ========================

The feed takes the websocket payloads of ``<symbol>@depth`` / ``@depth@100ms``
streams, raw (``{"e":"depthUpdate",...}``) or wrapped by a combined stream
(``{"stream":...,"data":{...}}``), and REST depth snapshots through
``snapshot(symbol, body)``. ``aggTrade`` and ``trade`` events are recorded as
TRADE events (time ``T``, trade id ``a`` / ``t``; ``m`` true, the buyer is the
maker, means the seller was the aggressor). Other events on the same connection
(bookTicker, kline, ...) and subscription acks are counted as ``"ignored"``.

Sync, per symbol (the exact rules; ``docs/l2-feeds.md`` explains them):

1. The first update of a symbol is buffered and a ``request_snapshot`` notice
   names the REST call. Updates keep being buffered (at most ``max_buffer``;
   beyond that the buffer is dropped and a new snapshot requested). A buffered
   update that does not continue the previous one starts the buffer anew (the
   older part can never be bridged).
2. When the snapshot (``lastUpdateId`` L) arrives: buffered updates the snapshot
   already contains are dropped (spot ``u <= L``; futures ``u < L``). If the
   first update left does not bridge the snapshot (spot ``U <= L + 1 <= u``;
   futures ``U <= L <= u``, or ``pu == L``), the snapshot is older than the
   buffered updates: it is not applied, and a ``resync`` notice with reason
   ``"snapshot_too_old"`` plus a new ``request_snapshot`` are returned (the
   buffer is kept). Otherwise the book becomes the snapshot and the buffered
   updates are applied: the symbol is synced. When no buffered update is left,
   the book holds the snapshot but the symbol stays ``BUFFERING`` until the
   next update bridges it (then ``synced``); one that does not bridge it means
   the snapshot was too old (``resync``, reason ``"snapshot_too_old"``).
3. Synced: spot updates must satisfy ``U == prev u + 1``, futures ``pu == prev
   u`` (update ids are global on futures, so ``U`` jumps). An update entirely
   older than the book (``u <= prev u``) is a duplicate or out of order: it is
   refused (``FeedError`` / counted) and the book kept. Anything else is a gap:
   the book is discarded and a new snapshot requested. The first update after a
   snapshot may overlap it (step 2's bridging rule); updates the snapshot
   contains are then dropped without complaint.
4. A book found crossed or locked after any message is discarded (``"crossed"``).

Binance's current spot documentation says the first applied event has
``lastUpdateId`` within ``[U; u]``; on the real captures it is ``U ==
lastUpdateId + 1`` (lastUpdateId is *not* inside), so the older rule ``U <= L +
1 <= u`` is the one implemented (``docs/l2-feeds.md``). Futures apply the
futures rules: the spot rules never synchronise 3 of the 4 USD-M captures.

Exchange time is the event time ``E`` (ms) in ns; a futures snapshot has its own
``E``, a spot snapshot none (it takes the latest buffered event's). COIN-M
quantities are contracts: without instrument metadata the instrument is marked
``contract_unit="USD"`` with ``contract_size=""`` (unknown: load the exchange
info, ``contractSize``, to convert).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from fastbook.codecs._l2feed import (
    FeedError,
    Instrument,
    Notice,
    SymbolSync,
    SyncState,
    check_recv,
)
from fastbook.codecs._l2schema import IGNORED, OK, UNKNOWN, Field, Schema
from fastbook.codecs._trades import BadTrade, ms_ns, price_qty, trade_id
from fastbook.codecs._venues import (
    MAX_MS,
    ScannedFeed,
    json_message,
    record_snapshot,
    record_update,
    scanner_module,
)

__all__ = ["FEEDS", "BinanceCOINM", "BinanceSpot", "BinanceUS", "BinanceUSDM", "scanner_module"]

_SYNCED = SyncState.SYNCED
_WAITING = SyncState.WAITING_SNAPSHOT
_BUFFERING = SyncState.BUFFERING

#: Counters of each symbol beyond ``COUNT_KEYS``: refused duplicate or out-of-order updates,
#: snapshots older than the buffered updates, buffers dropped for lack of a snapshot.
EXTRA_COUNTS = ("out_of_order", "snapshot_too_old", "buffer_overflows")

#: Event types of Binance trade streams: recorded as TRADE events.
TRADE_EVENTS = frozenset({"aggTrade", "trade"})

#: Event types of Binance market streams that are neither book data nor trades (counted
#: as "ignored").
NON_BOOK_EVENTS = frozenset({
    "kline", "continuous_kline", "indexPriceKline", "markPriceKline",
    "24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker", "bookTicker",
    "avgPrice", "markPriceUpdate", "indexPriceUpdate", "forceOrder", "compositeIndex",
    "contractInfo", "assetIndexUpdate", "serverShutdown",
})


def _ws_schema(futures: bool) -> Schema:
    ints = [Field("E", "int", required=True, lo=0, hi=MAX_MS),
            Field("U", "int", required=True, lo=0), Field("u", "int", required=True, lo=0)]
    if futures:
        ints.append(Field("pu", "int", required=True, lo=-1))
    return Schema(
        containers=("data",),           # combined streams: {"stream": ..., "data": {...}}
        discriminator=("e", "body"), accept=("depthUpdate",),
        symbol=("s", "body"),
        fields=[*ints, Field("b", "bids", required=True), Field("a", "asks", required=True)],
    )


_REST_SCHEMA = Schema(
    fields=[Field("lastUpdateId", "int", "top", required=True, lo=0),
            Field("E", "int", "top", lo=0, hi=MAX_MS),
            Field("symbol", "str", "top"),
            Field("bids", "bids", "top", required=True), Field("asks", "asks", "top",
                                                               required=True)],
)

# A buffered update: (U, u, pu, ts_exchange ns, recv ns, sides, prices, qtys).
_Update = tuple


class _Binance(ScannedFeed):
    """What the four Binance markets share; the subclasses set the rules and endpoints."""

    venue: ClassVar[str] = ""
    default_decimals: ClassVar[tuple[int, int]] = (8, 8)
    futures: ClassVar[bool] = False
    EXTRA_COUNTS: ClassVar[tuple[str, ...]] = EXTRA_COUNTS
    ERROR_SEQUENCE: ClassVar[int | None] = 2        # "u"
    #: REST host and path of the depth snapshot, and the depth to ask for.
    rest_base: ClassVar[str] = ""
    rest_path: ClassVar[str] = ""
    snapshot_depth: ClassVar[int] = 5000

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 *, depth: int | None = None, on_error: str = "raise", record: bool = False,
                 book_capacity: int = 1024, symbols: Iterable[str] | None = None,
                 max_buffer: int = 10_000, snapshot_depth: int | None = None,
                 kernel: str = "auto") -> None:
        super().__init__(instruments, depth=depth, on_error=on_error, record=record,
                         book_capacity=book_capacity, symbols=symbols)
        if not isinstance(max_buffer, int) or max_buffer < 1:
            raise ValueError(f"max_buffer must be a positive int, got {max_buffer!r}")
        self.max_buffer = max_buffer
        if snapshot_depth is not None:
            self.snapshot_depth = snapshot_depth
        self._use_scanners(kernel, _ws_schema(self.futures), _REST_SCHEMA)
        self._rest = self._scanners[1]
        self.counts_total["server_shutdown"] = 0    # serverShutdown events (also "ignored")

    # --- instruments and registration ------------------------------------------------

    def snapshot_url(self, native: str) -> str:
        """The full REST URL of ``native``'s depth snapshot."""
        return f"{self.rest_base}{self.rest_path}?symbol={native}&limit={self.snapshot_depth}"

    def _request(self, s: SymbolSync, reason: str = "") -> Notice:
        return Notice("request_snapshot", self.venue, s.native, reason,
                      detail=f"GET {self.rest_path}?symbol={s.native}&limit={self.snapshot_depth}")

    def _recover(self, s: SymbolSync) -> list[Notice]:
        return [self._request(s)]

    # --- websocket messages -------------------------------------------------------

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        """Decode one websocket message (raw or combined-stream payload) and act on it."""
        # the subclasses' feed is this with the market's rule written inline (speed)
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        r = self._scan.read(message)
        if r is None:
            return self._miss(message, recv_ns)
        s, _, E, U, u, *rest = r
        return self._slow(s, U, u, rest[0] if rest else 0, E, recv_ns)

    def _fast_done(self, s: SymbolSync, u: int, recv_ns: int, crossed: bool) -> list[Notice]:
        """Book-keeping of an update the hot path applied (recording, crossed book)."""
        if self.events is not None:
            record_update(self.events, s.id, *self._scan.level_lists(), s.ts, recv_ns, u)
        if crossed:
            s.counts["crossed"] += 1
            return self._resync(s, "crossed", u, "best bid >= best ask after this update")
        return []

    def _other_message(self, kind: str | None, message: Any,
                       recv_ns: int = 0) -> list[Notice]:
        if kind is None:
            return self._untyped(message)
        if kind in TRADE_EVENTS:
            return self._trade(kind, message, recv_ns)
        if kind in NON_BOOK_EVENTS:
            self.counts_total["ignored"] += 1
            if kind == "serverShutdown":
                self.counts_total["server_shutdown"] += 1
            return []
        self._fail(FeedError(f"unknown event type {kind!r}", venue=self.venue))
        return []

    def _trade(self, kind: str, message: Any, recv_ns: int) -> list[Notice]:
        """An ``aggTrade`` or ``trade`` event: one TRADE event (``m``, the buyer is the
        maker, means the seller was the aggressor)."""
        try:
            obj = json_message(message)
        except ValueError as exc:  # pragma: no cover - the scanner read it
            return self._trade_refused(f"not valid JSON: {exc}")
        body = obj.get("data", obj) if type(obj) is dict else None
        if type(body) is not dict:
            return self._trade_refused(f"{kind}: the event must be a JSON object")
        native = body.get("s")
        if type(native) is not str or not native:
            return self._trade_refused(f"{kind}: the symbol 's' must be a non-empty string")
        if not self._trade_wanted(native):
            self.counts_total["ignored"] += 1
            return []
        pd, qd = self._trade_scales(native) or self.default_decimals
        try:
            price, qty = price_qty(body.get("p"), body.get("q"), pd, qd, kind, native)
            ts = ms_ns(body.get("T"), kind, native)
            maker = body.get("m")
            if type(maker) is not bool:
                raise BadTrade(f"{kind}: 'm' (the buyer is the maker) must be true or false, "
                               f"got {maker!r}"[:120], native)
        except BadTrade as exc:
            return self._trade_refused(exc.text, native)
        tid = trade_id(body.get("a" if kind == "aggTrade" else "t"))
        return self._trades_done([(native, price, qty, ts, tid, not maker)], 0, recv_ns)

    def _untyped(self, message: Any) -> list[Notice]:
        """A message without an event type: an ack, a spot bookTicker, or something wrong."""
        import json

        try:
            obj = json.loads(bytes(message) if isinstance(message, memoryview) else message)
        except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - scanned
            self._fail(FeedError(f"not valid JSON: {exc}", venue=self.venue))
            return []
        body = obj.get("data", obj) if isinstance(obj, dict) else obj
        if isinstance(obj, dict) and "id" in obj and ("result" in obj or "error" in obj):
            if obj.get("error") is not None:
                self._fail(FeedError(f"request {obj.get('id')!r} failed: {obj['error']!r}",
                                     venue=self.venue))
                return []
            self.counts_total["ignored"] += 1       # a subscription (or other request) ack
            return []
        if isinstance(body, dict) and {"u", "s", "b", "B", "a", "A"} <= body.keys():
            self.counts_total["ignored"] += 1       # spot bookTicker: no "e" field
            return []
        if isinstance(body, dict) and "lastUpdateId" in body:
            self._fail(FeedError(
                "a partial book depth stream (<symbol>@depth<N>) sends top-N snapshots that "
                "cannot be synchronised with; subscribe <symbol>@depth or @depth@100ms",
                venue=self.venue))
            return []
        self._fail(FeedError(f"not a Binance market stream message: {bytes(message)[:80]!r}"
                             if isinstance(message, (bytes, bytearray, memoryview)) else
                             f"not a Binance market stream message: {str(message)[:80]!r}",
                             venue=self.venue))
        return []

    # --- the sync state machine (everything but the common case) --------------------

    def _slow(self, s: SymbolSync, U: int, u: int, pu: int, E: int,
              recv_ns: int) -> list[Notice]:
        c = s.counts
        c["messages"] += 1
        bad = ""
        if U > u:
            bad = f"first update id U={U} is above the last u={u}"
        elif self.futures and pu >= U:
            bad = f"previous update id pu={pu} is not below the first U={U}"
        if bad:
            self._fail(FeedError(bad, venue=self.venue, symbol=s.native, sequence=u), s)
            return []
        update = (U, u, pu, E * 1_000_000, recv_ns, *self._scan.levels())
        if s.state is _SYNCED:
            return self._step(s, update)
        if s.vars.get("pending"):
            return self._bridge(s, update)
        return self._buffer(s, update)

    def _resync(self, s: SymbolSync, reason: str, sequence: int | None = None,
                detail: str = "") -> list[Notice]:
        s.vars.pop("pending", None)
        return super()._resync(s, reason, sequence, detail)

    def _bridge(self, s: SymbolSync, update: _Update) -> list[Notice]:
        """The first live update after a snapshot no buffered update followed."""
        last = s.last_seq
        assert last is not None
        c = s.counts
        if self._stale(update, last):
            c["dropped"] += 1              # the snapshot already has it
            return []
        if self._bridges(update, last):
            del s.vars["pending"]
            s.state = _SYNCED
            notices = self._apply(s, update)
            if s.state is _SYNCED:
                notices.append(self._synced(s, s.last_seq))
            return notices
        c["snapshot_too_old"] += 1
        notices = self._resync(s, "snapshot_too_old", last,
                               f"lastUpdateId {last} is older than the first update after it "
                               f"(U={update[0]} u={update[1]})")
        self._buffer(s, update)
        return notices

    def _continues(self, prev: _Update, update: _Update) -> bool:
        return update[2] == prev[1] if self.futures else update[0] == prev[1] + 1

    def _buffer(self, s: SymbolSync, update: _Update) -> list[Notice]:
        notices: list[Notice] = []
        c = s.counts
        buf = s.buffer
        if buf and not self._continues(buf[-1], update):
            if update[1] <= buf[-1][1]:
                c["dropped"] += 1
                c["out_of_order"] += 1
                self._fail(FeedError(
                    f"duplicate or out-of-order update U={update[0]} u={update[1]} while "
                    f"buffering (last buffered u={buf[-1][1]})", venue=self.venue,
                    symbol=s.native, sequence=update[1], duplicate=True), s)
                return []
            # a gap inside the buffer: nothing before it can ever be bridged
            c["gaps"] += 1
            c["dropped"] += len(buf)
            buf.clear()
        if s.state is _WAITING:
            s.state = _BUFFERING
            notices.append(self._request(s))
        buf.append(update)
        c["buffered"] += 1
        if len(buf) > self.max_buffer:
            c["buffer_overflows"] += 1
            c["dropped"] += len(buf) - 1
            notices += self._resync(s, "buffer_overflow", update[1],
                                    f"more than {self.max_buffer} updates buffered without a "
                                    f"usable snapshot")
            s.buffer.append(update)
        return notices

    def _stale(self, update: _Update, last: int) -> bool:
        """Already contained in a snapshot whose lastUpdateId is ``last``."""
        return update[1] < last if self.futures else update[1] <= last

    def _bridges(self, update: _Update, last: int) -> bool:
        """May be the first update applied on a snapshot whose lastUpdateId is ``last``."""
        U, u, pu = update[0], update[1], update[2]
        if self.futures:
            return U <= last <= u or pu == last
        return U <= last + 1 <= u

    def _step(self, s: SymbolSync, update: _Update) -> list[Notice]:
        """One update on a synced book: apply, drop, refuse or resync."""
        U, u, pu = update[0], update[1], update[2]
        last = s.last_seq
        assert last is not None
        bridge = s.vars.get("bridge") == last
        if (pu == last if self.futures else U == last + 1) or \
                (bridge and self._bridges(update, last)):
            return self._apply(s, update)
        c = s.counts
        if bridge and self._stale(update, last):
            c["dropped"] += 1              # the snapshot already has it
            return []
        if u <= last:
            c["dropped"] += 1
            c["out_of_order"] += 1
            self._fail(FeedError(f"duplicate or out-of-order update U={U} u={u}: the book is "
                                 f"at u={last}", venue=self.venue, symbol=s.native,
                                 sequence=u, duplicate=True), s)
            return []
        c["gaps"] += 1
        what = f"pu={pu} != last u={last}" if self.futures else f"U={U} != last u+1={last + 1}"
        notices = self._resync(s, "gap", u, what)
        self._buffer(s, update)             # the first update after the gap: keep it
        return notices

    def _apply(self, s: SymbolSync, update: _Update) -> list[Notice]:
        _, u, _, ts, recv, sides, prices, qtys = update
        book = s.book
        book.apply(sides, prices, qtys)
        s.last_seq = u
        s.ts = ts
        c = s.counts
        c["applied"] += 1
        c["levels"] += len(sides)
        if self.events is not None:
            record_update(self.events, s.id, sides, prices, qtys, ts, recv, u)
        if book.is_crossed():
            c["crossed"] += 1
            return self._resync(s, "crossed", u, "best bid >= best ask after this update")
        return []

    # --- REST snapshots -------------------------------------------------------------

    def snapshot(self, native: str, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        """Hand over the body of ``GET .../depth?symbol=<native>`` for ``native``."""
        if type(native) is not str:
            raise TypeError(f"{self.venue}: the symbol of a snapshot is a str, got "
                            f"{type(native).__name__}")
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        rs = self._rest
        st = rs.scan(message, native)
        if st == UNKNOWN:
            self._register(native)
            st = rs.scan(message, native)
        if st == IGNORED:
            self.counts_total["ignored"] += 1
            return []
        s = rs.target if isinstance(rs.target, SymbolSync) else self._symbols.get(native)
        if st != OK:
            if s is not None:
                s.counts["messages"] += 1
            self._fail(FeedError(f"snapshot: {rs.error}", venue=self.venue, symbol=native,
                                 sequence=rs.ints[0] if rs.ints else None), s)
            return []
        assert s is not None
        L, E, sym = rs.ints[0], rs.ints[1], rs.strs[0]
        c = s.counts
        c["messages"] += 1
        if sym is not None and sym != native:
            self._fail(FeedError(f"snapshot: the body is for {sym!r}, not {native!r}",
                                 venue=self.venue, symbol=native, sequence=L), s)
            return []
        if s.state is _SYNCED or s.vars.get("pending"):
            assert s.last_seq is not None
            if L < s.last_seq:
                c["dropped"] += 1          # older than the book: nothing to learn from it
                return []
            buffered: list[_Update] = []   # a refresh: the book restarts from it
        else:
            buffered = [x for x in s.buffer if not self._stale(x, L)]
            if buffered and not self._bridges(buffered[0], L):
                c["snapshot_too_old"] += 1
                first = buffered[0]
                s.buffer[:] = buffered
                return [Notice("resync", self.venue, native, "snapshot_too_old", L,
                               f"lastUpdateId {L} is older than the first buffered update "
                               f"(U={first[0]} u={first[1]})"),
                        self._request(s, "snapshot_too_old")]
            c["dropped"] += len(s.buffer) - len(buffered)
        if E is not None:
            ts = E * 1_000_000
        elif s.buffer:
            ts = s.buffer[-1][3]
        else:
            ts = s.ts
        s.buffer = []
        # the book becomes the snapshot
        book = s.book
        book.clear()
        rs.apply()
        s.last_seq = L
        s.vars["bridge"] = L
        s.ts = ts
        c["snapshots"] += 1
        c["levels"] += rs.n
        if self.events is not None:
            record_snapshot(self.events, s.id, *rs.level_lists(), ts, recv_ns, L)
        if book.is_crossed():
            c["crossed"] += 1
            return self._resync(s, "crossed", L, "the snapshot itself is crossed")
        if not buffered:
            # valid as of L, but synced only once an update is seen to follow it
            s.state = _BUFFERING
            s.vars["pending"] = True
            return []
        s.vars.pop("pending", None)
        s.state = _SYNCED
        notices: list[Notice] = []
        for i, update in enumerate(buffered):
            notices += self._step(s, update)
            if s.state is not _SYNCED:
                for later in buffered[i + 1:]:
                    notices += self._buffer(s, later)
                return notices
        notices.append(self._synced(s, s.last_seq))
        return notices


class BinanceSpot(_Binance):
    """Binance spot ``<symbol>@depth[@100ms]`` with REST snapshots (``GET /api/v3/depth``).

    Options beyond :class:`~fastbook.codecs._l2feed.L2Feed`'s: ``max_buffer``
    (updates held per symbol while waiting for a snapshot, default 10,000),
    ``snapshot_depth`` (the ``limit`` named in ``request_snapshot`` notices,
    default 5000, Binance's maximum), ``kernel`` (``"auto"``, ``"compiled"``,
    ``"python"``: which JSON scanner reads messages).
    """

    venue = "binance-spot"
    rest_base = "https://api.binance.com"
    rest_path = "/api/v3/depth"
    snapshot_depth = 5000

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        """Decode one websocket message (raw or combined-stream payload) and act on it."""
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        sc = self._scan
        r = sc.read(message)
        if r is None:
            return self._miss(message, recv_ns)
        s, _, E, U, u = r
        if s.state is not _SYNCED or U != s.last_seq + 1 or U > u:
            return self._slow(s, U, u, 0, E, recv_ns)
        # the common case: a synced book and the next update in sequence
        crossed = sc.apply()               # counts the message and its levels, too
        s.last_seq = u
        s.ts = E * 1_000_000
        if crossed or self.events is not None:
            return self._fast_done(s, u, recv_ns, crossed)
        return []


class BinanceUS(BinanceSpot):
    """Binance.US: the spot rules and message shapes, on ``api.binance.us``."""

    venue = "binance-us"
    rest_base = "https://api.binance.us"


class BinanceUSDM(_Binance):
    """Binance USD-M futures ``<symbol>@depth[@100ms|@500ms]``: ``pu`` chains the updates."""

    venue = "binance-usdm"
    futures = True
    rest_base = "https://fapi.binance.com"
    rest_path = "/fapi/v1/depth"
    snapshot_depth = 1000

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        """Decode one websocket message (raw or combined-stream payload) and act on it."""
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        sc = self._scan
        r = sc.read(message)
        if r is None:
            return self._miss(message, recv_ns)
        s, _, E, U, u, pu = r
        if s.state is not _SYNCED or pu != s.last_seq or not pu < U <= u:
            return self._slow(s, U, u, pu, E, recv_ns)
        # the common case: a synced book and the next update in sequence
        crossed = sc.apply()               # counts the message and its levels, too
        s.last_seq = u
        s.ts = E * 1_000_000
        if crossed or self.events is not None:
            return self._fast_done(s, u, recv_ns, crossed)
        return []

    def _default_instrument(self, native: str) -> Instrument:
        pd, qd = self.default_decimals
        kind = "future" if "_" in native else "perpetual"
        return Instrument(self.venue, native, native, pd, qd, kind=kind)


class BinanceCOINM(BinanceUSDM):
    """Binance COIN-M futures: the USD-M rules; quantities are contracts (of USD)."""

    venue = "binance-coinm"
    rest_base = "https://dapi.binance.com"
    rest_path = "/dapi/v1/depth"
    snapshot_depth = 1000

    def _default_instrument(self, native: str) -> Instrument:
        pd, qd = self.default_decimals
        pair, _, suffix = native.partition("_")
        kind = "perpetual" if suffix == "PERP" else "future"
        symbol = native
        if pair.endswith("USD") and len(pair) > 3:
            base = pair[:-3]
            symbol = f"{base}/USD:{base}" + ("" if kind == "perpetual" else f"-{suffix}")
        # contracts of a USD value the stream does not say: unknown until metadata is loaded
        return Instrument(self.venue, native, symbol, pd, qd, kind=kind, contract_size="",
                          contract_unit="USD", extra={"quantity": "contracts"})


#: Feed classes by venue name.
FEEDS: dict[str, type[_Binance]] = {
    "binance-spot": BinanceSpot,
    "binance-us": BinanceUS,
    "binance-usdm": BinanceUSDM,
    "binance-coinm": BinanceCOINM,
}
