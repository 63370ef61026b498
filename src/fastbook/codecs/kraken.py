"""Kraken WebSocket ``book`` feeds, v1 (``KrakenV1``) and v2 (``KrakenV2``), with CRC32 checks.

Kraken's snapshot comes in-band (no REST step) and there are no sequence
numbers: a top-10 CRC32 is the only integrity check, so both codecs verify it
on every message that carries one, computed from fastbook's fixed-point
integers by the checksum kernel (``fastbook.codecs._checksum``):

1. apply every level of the message, in order (qty 0 deletes the level);
2. **truncate** each side to the subscribed depth: Kraken sends no delete for
   a level pushed out of scope, so without this the book keeps stale levels
   (on the real v1 depth-10 capture only 64 of 979 checksums would match);
3. verify the checksum: the best 10 asks ascending then the best 10 bids
   descending, each price then quantity written without the point and without
   leading zeros, CRC32 compared **unsigned**. v1 checksums the wire strings
   verbatim, so a v1 book is kept at its pair's wire decimals (learnt from the
   first snapshot: ``XBT/CHF`` prices come as ``"56218.30000"``, 5 decimals,
   although AssetPairs says ``pair_decimals`` 1) and the integers reproduce
   the strings exactly; v2 sends JSON numbers and formats them with the pair's
   ``price_precision`` / ``qty_precision`` (from :func:`kraken_instruments` or
   the ``instrument`` channel), parsed here from the number's *text*, never
   through float;
4. a crossed book is discarded too.

A mismatch discards the book (:attr:`SyncState.RESYNC`), returns a ``resync``
notice (reason ``"checksum"`` or ``"crossed"``) and a ``resubscribe`` notice,
and every update is dropped (counted) until the next snapshot. v1 snapshots
carry no checksum; v2 snapshots do and are verified.

Depth: v1 reads it from each message's channel name (``book-1000``); v2 from
the subscription acknowledgement (``{"method": "subscribe", "result":
{"channel": "book", "depth": 25, "symbol": ...}}``), else the ``depth=``
option, else Kraken's default, 10.

Trades (v1 channel ``trade``, v2 channel ``trade``): one TRADE event per print, the
``side`` field being the taker's. A pair's prints before its book has scales (v1: its
first snapshot; v2: its instrument or first snapshot) are dropped, counted
``"trades_dropped"``; a v2 trade ``snapshot`` (trades from before the subscription)
is not recorded.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from fastbook import parse_decimal as _parse
from fastbook._vocab import ASK, BID, INT64_MAX, INT64_MIN
from fastbook.codecs._l2feed import Instrument, Notice, SymbolSync, SyncState, check_recv
from fastbook.codecs._trades import BadTrade, aggressor, price_qty, trade_id
from fastbook.codecs._venues import InBandFeed, Refused, checksum_kernel, json_message

__all__ = ["KRAKEN_DEPTHS", "KrakenV1", "KrakenV2", "rfc3339_ns"]

#: The depths Kraken's ``book`` channel accepts.
KRAKEN_DEPTHS = (10, 25, 100, 500, 1000)
#: Levels per side in Kraken's checksum.
CHECKSUM_LEVELS = 10


_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_SECONDS: dict[str, int] = {}      # "YYYY-MM-DDTHH:MM:SS" -> seconds since the epoch


def _seconds(prefix: str, text: str) -> int:
    if not (prefix[:4].isdigit() and prefix[4] == "-" and prefix[7] == "-"
            and prefix[10] in "Tt" and prefix[13] == ":" and prefix[16] == ":"):
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    hh, mm, ss = prefix[11:13], prefix[14:16], prefix[17:19]
    if not (hh.isdigit() and mm.isdigit() and ss.isdigit()) or int(hh) > 23 or int(mm) > 59 \
            or int(ss) > 60:
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    try:
        days = _dt.date.fromisoformat(prefix[:10]).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}") from None
    value = days * 86400 + int(hh) * 3600 + int(mm) * 60 + int(ss)
    if len(_SECONDS) >= 4096:
        _SECONDS.clear()
    _SECONDS[prefix] = value
    return value


def rfc3339_ns(text: str) -> int:
    """``"2023-10-06T17:35:55.440295Z"`` (UTC, up to 9 fraction digits) as ns since the epoch.

    Exact integer arithmetic; ValueError for anything else.
    """
    if type(text) is not str or len(text) < 20 or not text.isascii() or text[-1] not in "Zz":
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    prefix = text[:19]
    secs = _SECONDS.get(prefix)
    if secs is None:
        secs = _seconds(prefix, text)
    frac = text[19:-1]
    ns = 0
    if frac:
        digits = frac[1:]
        if frac[0] != "." or not digits.isdigit() or len(digits) > 9:
            raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
        ns = int(digits.ljust(9, "0"))
    value = secs * 1_000_000_000 + ns
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{text!r} is outside int64 ns (1677-09-21 to 2262-04-11)")
    return value


def _decimals_of(text: str) -> int:
    point = text.find(".")
    if point < 0:
        return 0
    end = len(text)
    for i in range(point + 1, end):
        if not text[i].isdigit():       # an exponent: not Kraken's fixed form
            end = i
            break
    return end - point - 1


class _KrakenFeed(InBandFeed):
    default_decimals: ClassVar[tuple[int, int]] = (8, 8)
    scales_from_wire: ClassVar[bool] = True

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 *, depth: int | None = None, on_error: str = "raise", record: bool = False,
                 book_capacity: int = 1024, symbols: Iterable[str] | None = None,
                 verify_checksum: bool = True) -> None:
        if depth is not None and depth not in KRAKEN_DEPTHS:
            raise ValueError(f"depth must be one of {KRAKEN_DEPTHS} (Kraken's book depths), "
                             f"got {depth!r}")
        super().__init__(instruments, depth=depth, on_error=on_error, record=record,
                         book_capacity=book_capacity, symbols=symbols,
                         verify_checksum=verify_checksum)

    def _verify_applied(self, s: SymbolSync, crc: int | None) -> list[Notice]:
        """After a message is applied: its checksum (a message without one is counted), then
        the crossed-book check; the notices of a failure."""
        if crc is not None and self.verify_checksum:
            out = self._verify(s, crc)
            if out:
                return out
        elif crc is None:
            s.counts["unverified"] += 1
        return self._check_crossed(s)

    def _verify(self, s: SymbolSync, expected: int) -> list[Notice]:
        """Compare Kraken's checksum with the book's; resync on a mismatch."""
        pdig, qdig = s.vars["digits"]
        try:
            got: int | str = checksum_kernel.kraken_checksum(s.book, pdig, qdig, CHECKSUM_LEVELS)
        except ValueError as exc:       # a level finer than the pair's precision
            got = f"nothing: {exc}"
        if got != expected:
            s.counts["checksum_failed"] += 1
            return self._resync(s, "checksum", None,
                                f"Kraken sent {expected}, the book gives {got}")
        s.counts["checksum_ok"] += 1
        return []


# --- v1 ------------------------------------------------------------------------------------------

class KrakenV1(_KrakenFeed):
    """Kraken WebSocket v1 ``book`` (``wss://ws.kraken.com``), native symbols ``XBT/USD``.

    Each pair's book is kept at the decimals of its wire strings, learnt from
    its first snapshot (the scales of ``instruments``, if given, are replaced;
    ``symbol_state(pair).instrument`` shows the ones in use), so the checksum
    reproduces Kraken's verbatim strings. A later snapshot with other wire
    decimals is a :class:`FeedError` (build a new feed). ``verify_checksum=False``
    skips the CRC (truncation still happens).
    """

    venue: ClassVar[str] = "kraken-v1"

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 **options: Any) -> None:
        super().__init__(instruments, **options)
        self._channels: dict[str, int] = {}     # "book-N" -> N

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        self.message_number += 1
        try:
            msg = json_message(message)
        except ValueError as exc:
            return self._error(f"not JSON: {exc}")
        if type(msg) is not list:
            if type(msg) is dict and isinstance(msg.get("event"), str):
                return self._ignored()      # heartbeat, systemStatus, subscriptionStatus, pong
            return self._error(f"expected [channelID, data..., channelName, pair] or an event "
                               f"object, got {str(msg)[:80]}")
        n = len(msg)
        if n < 4:
            return self._error(f"expected [channelID, data..., channelName, pair], got "
                               f"{str(msg)[:80]}")
        channel, pair = msg[-2], msg[-1]
        if type(pair) is not str:
            return self._error(f"the pair must be a string: {str(msg)[:80]}")
        depth = self._channels.get(channel) if type(channel) is str else None
        if depth is None:
            if type(channel) is not str:
                return self._error(f"the channel name must be a string: {str(msg)[:80]}")
            if channel == "trade":
                return self._trades_v1(pair, msg[1] if n == 4 else None, recv_ns)
            if not channel.startswith("book-"):
                return self._ignored()          # ticker, spread, ohlc
            text = channel[5:]
            if not text.isdigit() or not text.isascii() or len(text) > 4 \
                    or int(text) not in KRAKEN_DEPTHS:
                return self._error(f"bad channel name {channel!r}", pair)
            depth = self._channels[channel] = int(text)
        if self.wanted is not None and not self._wanted(pair):
            return []
        if self.depth is not None and depth != self.depth:
            return self._error(f"the stream is {channel!r} but the feed was made with "
                               f"depth={self.depth}", pair)
        body = msg[1]
        if n == 4 and type(body) is dict:
            if "as" in body or "bs" in body:
                return self._snapshot_v1(pair, body, depth, recv_ns)
            return self._update_v1(pair, (body,), depth, recv_ns)
        if n == 5 and type(body) is dict and type(msg[2]) is dict:
            return self._update_v1(pair, (body, msg[2]), depth, recv_ns)
        return self._error(f"expected one or two level objects: {str(msg)[:80]}", pair)

    # -- trades -------------------------------------------------------------

    def _trade_scales(self, native: str) -> tuple[int, int] | None:
        # a pair's scales are its first snapshot's wire decimals: none before it
        s = self._symbols.get(native)
        return None if s is None else (s.book.price_decimals, s.book.qty_decimals)

    def _trades_v1(self, pair: str, trades: Any, recv_ns: int) -> list[Notice]:
        """``[channelID, [[price, volume, time, side, orderType, misc], ...], "trade", pair]``:
        one TRADE event per print, in order. ``side`` (``"b"`` / ``"s"``) is the taker's;
        ``time`` is seconds with a fraction, read exactly; v1 prints carry no trade id
        (sequence 0). A pair whose book has had no snapshot yet has no scales: its prints
        are dropped (counted ``"trades_dropped"``)."""
        if not self._trade_wanted(pair):
            return self._ignored()
        if type(trades) is not list:
            return self._trade_refused(f"message {self.message_number}: a trade message "
                                       f"holds a list of prints", pair)
        scales = self._trade_scales(pair)
        if scales is None:
            return self._trades_done([], len(trades), recv_ns) if trades else self._ignored()
        prints = []
        try:
            for i, t in enumerate(trades):
                where = f"message {self.message_number}: trade[{i}]"
                if type(t) is not list or len(t) < 4:
                    raise BadTrade(f"{where} must be [price, volume, time, side, ...]", pair)
                price, qty = price_qty(t[0], t[1], *scales, where, pair)
                ts = _seconds_ns(t[2], where, pair)
                buyer = aggressor(t[3], "b", "s", where, pair)
                prints.append((pair, price, qty, ts, 0, buyer))
        except BadTrade as exc:
            return self._trade_refused(exc.text, pair)
        return self._trades_done(prints, 0, recv_ns)

    # -- parsing ------------------------------------------------------------

    @staticmethod
    def _levels(key: str, levels: Any, pd: int, qd: int, prices: list[int], qtys: list[int],
                ts_max: list[int]) -> str | None:
        """Parse ``[[price, volume, timestamp(, "r")], ...]`` into ``prices``/``qtys``;
        an error text or None."""
        try:
            ts = checksum_kernel.parse_levels(levels, pd, qd, prices, qtys, key, True)
        except ValueError as exc:
            return str(exc)
        if ts > ts_max[0]:
            ts_max[0] = ts
        return None

    def _scaled_symbol(self, pair: str, book: Mapping[str, Any]) -> SymbolSync | str:
        """The pair's state, created at the wire decimals of its first snapshot; or an error."""
        pd = qd = -1
        for key in ("as", "bs"):
            side = book.get(key)
            if isinstance(side, list):
                for lv in side:
                    if type(lv) is list and len(lv) >= 2 and isinstance(lv[0], str) \
                            and isinstance(lv[1], str):
                        pd = max(pd, _decimals_of(lv[0]))
                        qd = max(qd, _decimals_of(lv[1]))
        s = self._symbols.get(pair)
        if s is not None:
            if pd >= 0 and (pd, qd) != (s.book.price_decimals, s.book.qty_decimals):
                return (f"the wire now has {pd} price and {qd} volume decimals; this pair's "
                        f"book was built at {s.book.price_decimals} and "
                        f"{s.book.qty_decimals} (Kraken changed the pair's precision: make a "
                        "new feed)")
            return s
        if pd > 18 or qd > 18:
            return f"more than 18 decimals on the wire ({pd}, {qd})"
        inst = self.instruments.get(pair)
        if inst is None:
            base, _, quote = pair.partition("/")
            from fastbook.codecs.instruments import kraken_asset

            symbol = f"{kraken_asset(base)}/{kraken_asset(quote)}" if quote else pair
            dpd, dqd = self.default_decimals
            inst = Instrument(self.venue, pair, symbol, dpd, dqd)
            self._auto.add(pair)
        if pd >= 0:
            inst = dataclasses.replace(
                inst, price_decimals=pd, qty_decimals=qd,
                tick=_rescale(inst.tick, inst.price_decimals, pd),
                lot=_rescale(inst.lot, inst.qty_decimals, qd))
        self.instruments[pair] = inst
        s = self._sym(pair)
        s.vars["digits"] = (None, None)     # verbatim: the book's own scales
        return s

    # -- messages -------------------------------------------------------------

    def _snapshot_v1(self, pair: str, body: dict, depth: int, recv_ns: int) -> list[Notice]:
        if set(body) != {"as", "bs"}:
            return self._error(f"a snapshot has exactly 'as' and 'bs': keys {sorted(body)}", pair)
        s = self._scaled_symbol(pair, body)
        if isinstance(s, str):
            return self._error(s, pair)
        pd, qd = s.book.price_decimals, s.book.qty_decimals
        asks: tuple[list[int], list[int]] = ([], [])
        bids: tuple[list[int], list[int]] = ([], [])
        ts = [0]
        err = self._levels("as", body["as"], pd, qd, *asks, ts) or \
            self._levels("bs", body["bs"], pd, qd, *bids, ts)
        if err:
            return self._error(err, pair, s=s)
        s.counts["messages"] += 1
        s.ts = ts[0]
        s.vars["recv"] = recv_ns
        s.vars["depth"] = depth
        self._load_snapshot(s, bids, asks, depth)
        out = self._check_crossed(s)
        if out:
            return out
        return [self._synced(s)]

    def _update_v1(self, pair: str, bodies: tuple[dict, ...], depth: int,
                   recv_ns: int) -> list[Notice]:
        s = self._symbols.get(pair)
        if s is None:
            return self._unknown_symbol(pair)
        pd, qd = s.book.price_decimals, s.book.qty_decimals
        groups: list[tuple[int, list[int], list[int]]] = []
        ts = [0]
        crc = None
        last = len(bodies) - 1
        for k, body in enumerate(bodies):
            asks, bids, c = body.get("a"), body.get("b"), body.get("c")
            if len(body) != (asks is not None) + (bids is not None) + (c is not None):
                extra = sorted(set(body) - {"a", "b", "c"})
                if extra:
                    return self._error(f"unknown key {extra[0]!r} in an update", pair, s=s)
                null = next(k for k in ("a", "b", "c") if k in body and body[k] is None)
                return self._error(f"{null!r} is null in an update", pair, s=s)
            for key, levels, side in (("a", asks, ASK), ("b", bids, BID)):
                if levels is not None:
                    prices: list[int] = []
                    qtys: list[int] = []
                    err = self._levels(key, levels, pd, qd, prices, qtys, ts)
                    if err:
                        return self._error(err, pair, s=s)
                    groups.append((side, prices, qtys))
            if c is not None:
                if k != last:
                    return self._error("the checksum 'c' belongs in the last object only",
                                       pair, s=s)
                if type(c) is not str or not c.isdigit() or not c.isascii() \
                        or len(c) > 10 or int(c) >= 1 << 32:
                    return self._error(f"checksum {c!r} is not an unsigned 32-bit int",
                                       pair, s=s)
                crc = int(c)
        if not any(g[1] for g in groups) and crc is None:
            return self._error("an update with no levels and no checksum", pair, s=s)
        s.counts["messages"] += 1
        if s.state != SyncState.SYNCED:
            s.counts["dropped"] += 1
            return []
        if ts[0]:
            s.ts = ts[0]
        s.vars["recv"] = recv_ns
        self._apply_update(s, groups, depth)
        return self._verify_applied(s, crc)


def _seconds_ns(value: Any, where: str, pair: str) -> int:
    """Kraken v1's trade time, ``"1534614057.321597"`` (seconds since the epoch), as exact ns."""
    if type(value) is str and value[:1].isdigit():
        try:
            ns = _parse(value, 9)
        except ValueError:
            ns = -1
        if 0 <= ns <= INT64_MAX:
            return ns
    raise BadTrade(f"{where}: the time {value!r} is not seconds since the epoch"[:160], pair)


def _rescale(units: int, old: int, new: int) -> int:
    if new >= old:
        return units * 10 ** (new - old)
    q, r = divmod(units, 10 ** (old - new))
    return q if not r and q else 1


# --- v2 ------------------------------------------------------------------------------------------

class _NumberText(str):
    """The text of a JSON number with a fraction or exponent (``json.loads(parse_float=...)``),
    told apart from a JSON string."""

    __slots__ = ()


def _number(value: Any, decimals: int) -> int:
    """A v2 price/qty: a JSON number's text (:class:`_NumberText`) or a JSON integer."""
    if type(value) is _NumberText:
        return _parse(value, decimals)
    if type(value) is int:
        scaled = value * 10 ** decimals
        if not -INT64_MAX <= scaled <= INT64_MAX:
            raise ValueError(f"{value} overflows int64 at {decimals} decimals")
        return scaled
    raise TypeError(f"expected a JSON number, got {value!r}"[:80])


_loads_v2 = json.JSONDecoder(parse_float=_NumberText).decode


class KrakenV2(_KrakenFeed):
    """Kraken WebSocket v2 ``book`` (``wss://ws.kraken.com/v2``), native symbols ``BTC/USD``.

    The checksum formats with each pair's ``price_precision`` and
    ``qty_precision``: give ``instruments=kraken_instruments(doc, "kraken-v2")``
    (AssetPairs or an ``instrument`` channel message), or let the feed read the
    ``instrument`` channel in the stream before the book's snapshot. A snapshot
    for a pair without them is a :class:`FeedError` unless
    ``verify_checksum=False``. Prices and quantities are JSON numbers; the
    decoder hands their text to :func:`fastbook.parse_decimal` (never a float),
    so a value with more decimals than the pair's scale is refused.
    """

    venue: ClassVar[str] = "kraken-v2"

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 **options: Any) -> None:
        super().__init__(instruments, **options)
        self._acked_depth: dict[str, int] = {}

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        self.message_number += 1
        try:
            msg = json_message(message, _loads_v2)
        except ValueError as exc:
            return self._error(f"not JSON: {exc}")
        if not isinstance(msg, dict):
            return self._error(f"expected a JSON object, got {str(msg)[:80]}")
        channel = msg.get("channel")
        if channel == "book":
            kind = msg.get("type")
            data = msg.get("data")
            if kind not in ("snapshot", "update") or not isinstance(data, list):
                return self._error(f"a book message needs type snapshot/update and a data list: "
                                   f"{str(msg)[:80]}")
            # validate every entry before any touches a book: a refused message
            # applies nothing (its bad entry is reported; the others are not applied)
            snapshot = kind == "snapshot"
            return self._validate_then_apply(
                data, lambda entry: self._parse_entry(entry, snapshot), snapshot, recv_ns)
        if channel == "instrument":
            return self._instruments(msg)
        if channel == "trade":
            return self._trades_v2(msg, recv_ns)
        method = msg.get("method")
        if method == "subscribe" and msg.get("success") is True:
            result = msg.get("result")
            if isinstance(result, dict) and result.get("channel") == "book":
                sym, depth = result.get("symbol"), result.get("depth")
                if isinstance(sym, str) and type(depth) is int:
                    if depth not in KRAKEN_DEPTHS:
                        return self._error(f"subscription depth {depth!r} is not one of "
                                           f"{KRAKEN_DEPTHS}", sym)
                    self._acked_depth[sym] = depth
        if isinstance(channel, str) or isinstance(method, str):
            return self._ignored()      # heartbeat, status, ticker, acks, pong
        return self._error(f"an object without channel or method: {str(msg)[:80]}")

    def _trade_scales(self, native: str) -> tuple[int, int] | None:
        # the checksum needs the pair's precisions: a pair without an instrument gets its
        # scales from the book's first snapshot (or is refused there), so none before it
        s = self._symbols.get(native)
        if s is not None:
            return s.book.price_decimals, s.book.qty_decimals
        if native in self.instruments or not self.verify_checksum:
            return super()._trade_scales(native)
        return None

    def _trade_symbol(self, native: str) -> SymbolSync:
        s = self._sym(native)
        s.vars["digits"] = self._digits(s) or (None, None)
        return s

    def _trades_v2(self, msg: Mapping[str, Any], recv_ns: int) -> list[Notice]:
        """A ``trade`` channel message: one TRADE event per entry of an ``update``, in
        order; ``side`` is the taker's, ``timestamp`` the time, ``trade_id`` the sequence.
        A ``snapshot`` (the last trades before the subscription, re-sent on every
        subscribe) is not recorded: counted ``"trades_before_subscribe"`` per print and
        ``"ignored"``."""
        kind, data = msg.get("type"), msg.get("data")
        where = f"message {self.message_number}"
        if kind not in ("snapshot", "update") or not isinstance(data, list):
            return self._trade_refused(f"{where}: a trade message needs type snapshot/update "
                                       f"and a data list: {str(msg)[:80]}")
        if kind == "snapshot":
            self.counts_total["trades_before_subscribe"] += len(data)
            return self._ignored()
        prints = []
        dropped = 0
        try:
            for i, t in enumerate(data):
                at = f"{where}: data[{i}]"
                sym: Any = t.get("symbol") if type(t) is dict else None
                if type(sym) is not str or not sym:
                    raise BadTrade(f"{at} must be an object with a symbol")
                if not self._trade_wanted(sym):
                    continue
                scales = self._trade_scales(sym)
                if scales is None:
                    dropped += 1
                    continue
                price, qty = price_qty(t.get("price"), t.get("qty"), *scales, at, sym,
                                       parse=_number)
                try:
                    ts = rfc3339_ns(t.get("timestamp"))
                except ValueError as exc:
                    raise BadTrade(f"{at}: timestamp: {exc}"[:160], sym) from None
                buyer = aggressor(t.get("side"), "buy", "sell", at, sym)
                prints.append((sym, price, qty, ts, trade_id(t.get("trade_id")), buyer))
        except BadTrade as exc:
            return self._trade_refused(exc.text, exc.symbol)
        return self._trades_done(prints, dropped, recv_ns)

    def _depth(self, symbol: str) -> int:
        return self._acked_depth.get(symbol) or self.depth or 10

    def _instruments(self, msg: Mapping[str, Any]) -> list[Notice]:
        from fastbook.codecs.instruments import kraken_instruments

        try:
            found = kraken_instruments(msg, self.venue)
        except ValueError as exc:
            return self._error(f"instrument channel: {exc}")
        for inst in found:
            if inst.native not in self._symbols:
                self.instruments[inst.native] = inst
        self.counts_total["instrument_messages"] += 1
        return []

    def _digits(self, s: SymbolSync) -> tuple[int, int] | None:
        extra = s.instrument.extra
        pp, qp = extra.get("price_precision"), extra.get("qty_precision")
        if isinstance(pp, int) and isinstance(qp, int):
            return pp, qp
        return None

    def _parse_entry(self, entry: Any, snapshot: bool) -> tuple[Any, ...] | Refused | None:
        """Validate one data entry completely, changing no book: the plan
        :meth:`_apply_entry` carries out, None (nothing to apply: a symbol left out
        or never snapshotted, counted) or the :class:`Refused` notices of bad input."""
        if not isinstance(entry, dict):
            return Refused(self._error(f"a data entry must be an object, got "
                                        f"{str(entry)[:60]}"))
        sym = entry.get("symbol")
        if not isinstance(sym, str):
            return Refused(self._error(f"a data entry without a symbol: {str(entry)[:80]}"))
        if not self._wanted(sym):
            return None
        s = self._symbols.get(sym)
        if s is None:
            if not snapshot:
                self._unknown_symbol(sym)
                return None
            if sym not in self.instruments and self.verify_checksum:
                return Refused(self._error(
                    "no instrument: the v2 checksum needs the pair's price_precision and "
                    "qty_precision; pass instruments=kraken_instruments(doc, 'kraken-v2') "
                    "or feed the 'instrument' channel first", sym))
            inst = self.instruments.get(sym) or self._default_instrument(sym)
            pd, qd = inst.price_decimals, inst.qty_decimals
        else:
            pd, qd = s.book.price_decimals, s.book.qty_decimals
        body = self._parse_body(entry, sym, s, pd, qd, snapshot)
        if isinstance(body, Refused):
            return body
        return (sym, *body)

    def _parse_body(self, entry: dict[str, Any], sym: str, s: SymbolSync | None, pd: int, qd: int,
                    snapshot: bool) -> tuple[Any, ...] | Refused:
        """``(checksum, ts, levels)`` of a data entry, or the notices refusing it."""

        def bad(text: str) -> Refused:
            return Refused(self._error(text, sym, s=s))

        crc = entry.get("checksum")
        if crc is not None and (type(crc) is not int or not 0 <= crc < 1 << 32):
            return bad(f"checksum {crc!r} is not an unsigned 32-bit int"[:160])
        ts_text = entry.get("timestamp")
        ts = 0
        if ts_text is not None:
            try:
                ts = rfc3339_ns(ts_text)
            except ValueError as exc:
                return bad(str(exc)[:160])
        levels: dict[str, tuple[list[int], list[int]]] = {}
        for key in ("bids", "asks"):
            raw = entry.get(key)
            if raw is None and not snapshot:
                raw = []
            if not isinstance(raw, list):
                return bad(f"{key!r} must be a list, got {str(raw)[:40]}")
            prices: list[int] = []
            qtys: list[int] = []
            for i, lv in enumerate(raw):
                if type(lv) is not dict:
                    return bad(f"{key}[{i}] must be {{price, qty}}, got {lv!r}"[:160])
                try:
                    price = _number(lv["price"], pd)
                    qty = _number(lv["qty"], qd)
                except KeyError as exc:
                    return bad(f"{key}[{i}] lacks {exc}")
                except (ValueError, TypeError) as exc:
                    return bad(f"{key}[{i}]: {exc}"[:160])
                if price <= 0 or qty < 0:
                    return bad(f"{key}[{i}]: price must be positive and qty not negative: "
                               f"{lv!r}"[:160])
                prices.append(price)
                qtys.append(qty)
            levels[key] = (prices, qtys)
        return crc, ts, levels

    def _apply_entry(self, plan: tuple[Any, ...], snapshot: bool,
                     recv_ns: int) -> list[Notice]:
        """Carry out a validated entry (see :meth:`_parse_entry`)."""
        sym, crc, ts, levels = plan
        s = self._symbols.get(sym)
        if s is None:
            s = self._sym(sym)
            s.vars["digits"] = self._digits(s) or (None, None)
        s.counts["messages"] += 1
        depth = self._depth(sym)
        if snapshot:
            s.ts = ts
            s.vars["recv"] = recv_ns
            self._load_snapshot(s, levels["bids"], levels["asks"], depth)
        else:
            if s.state != SyncState.SYNCED:
                s.counts["dropped"] += 1
                return []
            if ts:
                s.ts = ts
            s.vars["recv"] = recv_ns
            # Kraken's v2 update lists bids then asks; each side in wire order.
            self._apply_update(s, [(BID, *levels["bids"]), (ASK, *levels["asks"])], depth)
        out = self._verify_applied(s, crc)
        if out:
            return out
        return [self._synced(s)] if snapshot else []
