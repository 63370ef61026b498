"""Per-venue connection rules: URLs, subscribe messages, pings, limits.

The venue codecs (:mod:`fastbook.codecs`) know what a venue's messages mean;
this module knows how to ask for them: which websocket URL, which subscribe
and unsubscribe messages, which application-level pings, how many symbols one
connection may carry, how long a silent connection may stay open, how long a
connection may live, and which REST URL (and weight) gives a snapshot. Each
rule is written as the venue documents it (``docs/l2-feeds.md``,
``docs/live.md``); nothing here touches the network.

With ``trades`` set (:meth:`VenueRules.with_trades`, what ``fb.live(...,
trades=True)`` uses), a connection also subscribes its symbols' trade channel
(Binance ``@aggTrade``, Coinbase ``matches`` / ``market_trades``, Kraken v2
``trade``, OKX ``trades``, Bybit ``publicTrade``), and unsubscribes it with the book
channel, so that a resubscribe leaves one subscription of each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from fastbook.codecs import load as load_codec

__all__ = ["ALIASES", "RULES", "VenueRules", "native_symbol", "rules_for"]

#: Short venue names the live specs accept.
ALIASES = {"binance": "binance-spot", "coinbase": "coinbase-advanced", "kraken": "kraken-v2"}


@dataclass(frozen=True)
class VenueRules:
    """How to connect to one venue market and keep its subscriptions."""

    venue: str
    ws: str                                  # default websocket base URL
    rest: str = ""                           # default REST base URL ("" = in-band snapshots)
    max_symbols: int = 50                    # symbols per connection
    stall_s: float = 30.0                    # no frame for this long: reconnect
    ping_s: float | None = None              # application ping after this much silence
    max_age_s: float | None = None           # the venue closes connections this old
    snapshot_weight: int = 0                 # REST weight of one snapshot request
    weight_limit: int = 6000                 # REST weight per minute (Binance)
    feed_options: dict[str, Any] = field(default_factory=dict)
    trades: bool = False                     # subscribe the trade channel too

    kind: ClassVar[str] = ""

    def with_trades(self, trades: bool = True) -> VenueRules:
        """These rules, subscribing (or not) the symbols' trade channel with their book."""
        return replace(self, trades=bool(trades))

    # --- what the driver sends ---------------------------------------------------

    def url(self, base: str, natives: list[str], depth: int | None) -> str:
        """The websocket URL of a connection carrying ``natives``."""
        return base

    def subscribe(self, natives: list[str], depth: int | None) -> list[str]:
        """The messages that subscribe ``natives`` on a fresh connection."""
        return []

    def unsubscribe(self, natives: list[str], depth: int | None) -> list[str]:
        """The messages that drop ``natives`` (before a resubscribe)."""
        return []

    def ping(self) -> str | None:
        """The application-level ping, when the venue wants one."""
        return None

    def snapshot_url(self, base: str, native: str, feed: Any) -> str:
        """The REST URL of ``native``'s depth snapshot (REST venues)."""
        return f"{base}{feed.rest_path}?symbol={native}&limit={feed.snapshot_depth}"

    def filter(self, payload: bytes | str) -> bool:
        """False for frames the codec must not see (a bare text ``pong``)."""
        return True

    #: a refused subscription request subscribes none of its symbols (Coinbase, Bybit)
    refusal_fails_request: ClassVar[bool] = False

    def refusal(self, payload: bytes | str) -> str | None:
        """The venue's words when ``payload`` refuses a subscription or reports an
        error (an unknown symbol, a bad request), else None. Only frames that touched
        no book are asked, and only while a book of the connection is not live."""
        return None

    def depth_for(self, depth: int | None) -> int | None:
        """The depth subscribed and kept for a user's ``depth=`` (None: the full book).

        Binance and Coinbase send full books (the user's depth only limits reads); the
        venues with depth-limited channels get the smallest depth they offer that covers
        the request (see the overrides), and the codec keeps exactly that many levels,
        as the venue's own book for the subscriber does.
        """
        return None

    def new_feed(self, natives: list[str], depth: int | None, instruments: Any,
                 on_error: str) -> Any:
        """The codec object of one connection (one per connection: its books are its own);
        ``depth`` is :meth:`depth_for`'s."""
        cls = load_codec(self.venue)
        opts = dict(self.feed_options)
        if depth is not None:
            opts["depth"] = depth
        return cls(instruments, on_error=on_error, symbols=natives, **opts)


class _Binance(VenueRules):
    def url(self, base: str, natives: list[str], depth: int | None) -> str:
        kinds = ("depth@100ms", "aggTrade") if self.trades else ("depth@100ms",)
        streams = "/".join(f"{n.lower()}@{k}" for n in natives for k in kinds)
        return f"{base.rstrip('/')}/stream?streams={streams}"


def _json_object(payload: bytes | str, marker: str) -> dict[str, Any] | None:
    """``payload`` as a JSON object when it contains ``marker`` (a cheap pre-check)."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, (bytes, bytearray)) \
        else str(payload)
    if marker not in text.replace(" ", ""):
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


class _Coinbase(VenueRules):
    refusal_fails_request = True

    def refusal(self, payload: bytes | str) -> str | None:
        obj = _json_object(payload, '"error"')
        if obj is None or "error" not in (obj.get("type"), obj.get("channel")):
            return None
        return f"{obj.get('message', '')}: {obj.get('reason', '')}"[:300]


class _CoinbaseAdvanced(_Coinbase):
    def _channels(self) -> tuple[str, ...]:
        return ("level2", "market_trades") if self.trades else ("level2",)

    def subscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"type": "subscribe", "product_ids": natives, "channel": ch})
                for ch in ("heartbeats", *self._channels())]

    def unsubscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"type": "unsubscribe", "product_ids": natives, "channel": ch})
                for ch in self._channels()]


class _CoinbaseExchange(_Coinbase):
    def _channels(self) -> list[str]:
        return ["level2_batch", "matches"] if self.trades else ["level2_batch"]

    def subscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"type": "subscribe", "product_ids": natives,
                            "channels": [*self._channels(), "heartbeat"]})]

    def unsubscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"type": "unsubscribe", "product_ids": natives,
                            "channels": self._channels()})]


def _covering(choices: tuple[int, ...], depth: int | None, default: int) -> int:
    """The smallest of ``choices`` at least ``depth`` (the largest when none is)."""
    if depth is None:
        return default
    return next((c for c in choices if c >= depth), choices[-1])


class _KrakenV2(VenueRules):
    # the book channel's depths; the codec must truncate to the subscribed one (Kraken sends
    # no delete for a level pushed out of scope), so both always get the same number
    def depth_for(self, depth: int | None) -> int | None:
        from fastbook.codecs.kraken import KRAKEN_DEPTHS

        return _covering(KRAKEN_DEPTHS, depth, 10)

    def subscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"method": "subscribe",
                            "params": {"channel": "instrument", "snapshot": True}, "req_id": 1}),
                json.dumps({"method": "subscribe",
                            "params": {"channel": "book", "symbol": natives,
                                       "depth": depth or 10, "snapshot": True}, "req_id": 2}),
                *self._trade_requests("subscribe", natives)]

    def unsubscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"method": "unsubscribe",
                            "params": {"channel": "book", "symbol": natives,
                                       "depth": depth or 10}, "req_id": 3}),
                *self._trade_requests("unsubscribe", natives)]

    def _trade_requests(self, method: str, natives: list[str]) -> list[str]:
        # snapshot false: the trades before the subscription are not wanted (not recorded)
        if not self.trades:
            return []
        params: dict[str, Any] = {"channel": "trade", "symbol": natives}
        if method == "subscribe":
            params["snapshot"] = False
        return [json.dumps({"method": method, "params": params, "req_id": 5})]

    def ping(self) -> str | None:
        return '{"method":"ping","req_id":4}'

    def refusal(self, payload: bytes | str) -> str | None:
        obj = _json_object(payload, '"success":false')
        if obj is None or obj.get("success") is not False:
            return None
        return f"{obj.get('method', '')} {obj.get('symbol', '')}: {obj.get('error', '')}"[:300]


class _Okx(VenueRules):
    # ``books`` sends 400 levels with deletes for all of them and a checksum of the top
    # 25: a book cut at any depth could miss a level that moves up after a delete, so
    # the codec keeps everything the channel sends (depth_for stays None)

    def _args(self, natives: list[str]) -> list[dict[str, str]]:
        channels = ("books", "trades") if self.trades else ("books",)
        return [{"channel": ch, "instId": n} for n in natives for ch in channels]

    def subscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"op": "subscribe", "args": self._args(natives)})]

    def unsubscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"op": "unsubscribe", "args": self._args(natives)})]

    def ping(self) -> str | None:
        return "ping"

    def filter(self, payload: bytes | str) -> bool:
        return payload != "pong" and payload != b"pong"

    def refusal(self, payload: bytes | str) -> str | None:
        obj = _json_object(payload, '"event":"error"')
        if obj is None or obj.get("event") != "error":
            return None
        return f"{obj.get('code', '')} {obj.get('msg', '')}"[:300]


class _Bybit(VenueRules):
    refusal_fails_request = True

    def refusal(self, payload: bytes | str) -> str | None:
        obj = _json_object(payload, '"success":false')
        if obj is None or obj.get("success") is not False:
            return None
        return f"{obj.get('op', '')}: {obj.get('ret_msg', '')}"[:300]

    def depth_for(self, depth: int | None) -> int | None:
        from fastbook.codecs.bybit import DEPTHS

        return _covering(DEPTHS["linear"], depth, 50)

    def _topics(self, natives: list[str], depth: int | None) -> list[list[str]]:
        topics = [f"orderbook.{depth or 50}.{n}" for n in natives]
        if self.trades:
            topics += [f"publicTrade.{n}" for n in natives]
        return [topics[i:i + 10] for i in range(0, len(topics), 10)]    # 10 args per message

    def subscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"op": "subscribe", "args": t}) for t in self._topics(natives, depth)]

    def unsubscribe(self, natives: list[str], depth: int | None) -> list[str]:
        return [json.dumps({"op": "unsubscribe", "args": t})
                for t in self._topics(natives, depth)]

    def ping(self) -> str | None:
        return '{"op":"ping"}'


#: The rules of every venue the live driver connects to.
RULES: dict[str, VenueRules] = {r.venue: r for r in (
    # Binance: 24 h connections, server pings every 20 s (answered by the websocket
    # library), 1024 streams per connection (200 kept as the safe cap), REST weights
    # 250 (spot limit=5000) and 20 (futures limit=1000) of 6000 (spot) / 2400 per minute
    _Binance("binance-spot", "wss://stream.binance.com:9443", "https://api.binance.com",
             max_symbols=200, stall_s=60.0, max_age_s=24 * 3600.0, snapshot_weight=250,
             weight_limit=6000),
    _Binance("binance-usdm", "wss://fstream.binance.com/public", "https://fapi.binance.com",
             max_symbols=200, stall_s=60.0, max_age_s=24 * 3600.0, snapshot_weight=20,
             weight_limit=2400),
    _Binance("binance-coinm", "wss://dstream.binance.com", "https://dapi.binance.com",
             max_symbols=200, stall_s=60.0, max_age_s=24 * 3600.0, snapshot_weight=20,
             weight_limit=2400),
    # Coinbase: heartbeats every second keep the connection (and the staleness check) alive
    _CoinbaseAdvanced("coinbase-advanced", "wss://advanced-trade-ws.coinbase.com",
                      max_symbols=100, stall_s=10.0),
    _CoinbaseExchange("coinbase-exchange", "wss://ws-feed.exchange.coinbase.com",
                      max_symbols=100, stall_s=10.0),
    # Kraken v2: heartbeat 1 Hz
    _KrakenV2("kraken-v2", "wss://ws.kraken.com/v2", max_symbols=50, stall_s=10.0,
              ping_s=15.0),
    # OKX: text ping when there was no data for 20 s, closed by OKX after 30 s of silence
    _Okx("okx", "wss://ws.okx.com:8443/ws/v5/public", max_symbols=100, stall_s=30.0,
         ping_s=20.0),
    # Bybit: {"op":"ping"} every 20 s
    _Bybit("bybit", "wss://stream.bybit.com/v5/public/linear", max_symbols=100, stall_s=30.0,
           ping_s=20.0),
)}


def rules_for(venue: str) -> VenueRules:
    """The rules of ``venue`` (or one of :data:`ALIASES`); a ValueError names the choices."""
    venue = ALIASES.get(venue, venue)
    try:
        return RULES[venue]
    except KeyError:
        raise ValueError(f"no live rules for venue {venue!r}: one of "
                         f"{', '.join(sorted(RULES))} (aliases: "
                         f"{', '.join(f'{a}={v}' for a, v in ALIASES.items())})") from None


def native_symbol(venue: str, symbol: str,
                  mapper: Callable[[str], str] | None = None) -> str:
    """The venue's own symbol for ``symbol``, which may be native already or normalized.

    Normalized forms (``BTC/USDT``, ``BTC/USDT:USDT``) map from the text for
    Coinbase, Kraken and OKX (:func:`fastbook.codecs.instruments.to_native`);
    for Binance and Bybit, whose symbols are base and quote run together,
    spot and linear ``BASE/QUOTE[:QUOTE]`` become ``BASEQUOTE`` and COIN-M
    perpetuals ``BASE/USD:BASE`` become ``BASEUSD_PERP``; anything else needs
    ``mapper`` (a :class:`~fastbook.codecs.instruments.SymbolMap`'s ``to_native``).
    """
    if "/" not in symbol:
        return symbol                      # already native (BTCUSDT, BTC-USD, BTC-USDT-SWAP)
    if venue.startswith("kraken") and ":" not in symbol:
        from fastbook.codecs.instruments import to_native

        return to_native(venue, symbol)
    if mapper is not None:
        return mapper(symbol)
    from fastbook.codecs.instruments import parse_symbol, to_native

    if venue.startswith("binance") or venue == "bybit":
        p = parse_symbol(symbol)
        if venue == "binance-coinm" and p.kind == "perpetual" and p.settle == p.base:
            return f"{p.base}{p.quote}_PERP"
        if p.kind in ("spot", "perpetual") and p.settle in ("", p.quote):
            return f"{p.base}{p.quote}"
        raise ValueError(f"{venue}: cannot name {symbol!r} without instrument metadata; "
                         "give the native symbol (e.g. BTCUSDT) or instruments=")
    return to_native(venue, symbol)
