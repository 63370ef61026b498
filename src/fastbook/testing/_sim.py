"""ExchangeSimulator: loopback websocket + REST servers speaking each venue's L2 protocol.

Each venue runs its own websocket server (and, for Binance, an HTTP server for REST depth
snapshots) on 127.0.0.1. A stream task per venue moves every symbol's :class:`TruthBook`
by one synthetic message at a time and sends the venue-formatted frame to every
connection subscribed to that symbol, after the faults queued with :meth:`inject`.
A connection that subscribed a symbol's trade channel also gets a trade print every
``trade_every`` book messages of it, at the truth book's best ask (a buyer aggressor) or
best bid (a seller), alternately; :meth:`ExchangeSimulator.trades` lists what was sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastbook._extras import require
from fastbook.testing._capture import CAPTURE_DECIMALS, CAPTURES, Replay, fixed_levels, load_binance
from fastbook.testing._http import Response, serve_http
from fastbook.testing._truth import SyntheticWalk, TruthBook, fmt

__all__ = ["BINANCE_VENUES", "VENUES", "ExchangeSimulator", "Fault"]

BINANCE_VENUES = ("binance-spot", "binance-usdm", "binance-coinm")
#: Venues the simulator serves.
VENUES = (*BINANCE_VENUES, "bybit", "okx", "kraken-v2", "coinbase-exchange", "coinbase-advanced")
#: Stream faults :meth:`ExchangeSimulator.inject` takes.
STREAM_FAULTS = ("drop", "duplicate", "reorder", "corrupt", "malformed", "disconnect",
                 "restart", "stall", "server_shutdown", "oversized", "bad_checksum")
#: REST faults :meth:`ExchangeSimulator.rest_fault` takes.
REST_FAULTS = ("slow", "500", "garbage", "429", "418")
_REST_PATH = {"binance-spot": "/api/v3/depth", "binance-usdm": "/fapi/v1/depth",
              "binance-coinm": "/dapi/v1/depth"}
_DECIMALS = (2, 3)          # price, quantity decimals of the synthetic books
#: the captures in a source checkout (tests/data/l2/cryptofeed)
_CAPTURE_ROOT = Path(__file__).resolve().parents[3] / "tests" / "data" / "l2" / "cryptofeed"


def _spot_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _futures_weight(limit: int) -> int:
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


@dataclass
class Fault:
    """One injected fault, as logged in ``sim.faults``."""
    time: float
    venue: str
    symbol: str | None
    kind: str
    detail: str = ""


@dataclass
class _Pending:
    kind: str
    symbol: str | None
    count: int
    args: dict[str, Any] = field(default_factory=dict)


_SEQ = "@SEQ@"            # Coinbase Advanced: the connection's sequence_num, filled on write
_SEQ_JSON = f'"{_SEQ}"'   # as it appears in the JSON text
_SKIP = b"\x00SKIP"       # Coinbase Advanced drop: the sequence_num is used, nothing sent
_DUP = b"\x00DUP"         # Coinbase Advanced duplicate: the last frame again, same number


def _iso(t: float) -> str:
    """``t`` (epoch seconds) as Coinbase's RFC 3339 UTC text with microseconds."""
    us = int(t * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1_000_000)) + \
        f".{us % 1_000_000:06d}Z"


def _strip(text: str) -> str:
    """OKX's number text: no trailing fractional zeros (``"30000.50" -> "30000.5"``)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def okx_checksum(bids: list[list[str]], asks: list[list[str]], levels: int = 25) -> int:
    """OKX's legacy checksum: CRC32 of ``bid1p:bid1q:ask1p:ask1q:...`` as a signed int32."""
    parts: list[str] = []
    for i in range(levels):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class _Conn:
    """One websocket connection: its subscriptions and its outgoing frames."""

    ids = itertools.count(1)

    def __init__(self, ws: Any, venue: _Venue) -> None:
        self.ws = ws
        self.venue = venue
        self.id = next(self.ids)
        self.opened = time.monotonic()
        self.symbols: set[str] = set()
        self.out: deque[str | bytes] = deque()
        self.wake = asyncio.Event()
        self.busy = False
        self.closed = False
        self.seq = 0                    # Coinbase Advanced sequence_num
        self.last = ""
        self.heartbeats = False
        self.trades: set[str] = set()   # symbols whose trade channel it subscribed
        # Kraken: the client's view of each symbol (depth, bids, asks) and held frames
        self.views: dict[str, tuple[int, dict[int, int], dict[int, int]]] = {}
        self.held: dict[str, str] = {}

    def push(self, frame: str | bytes) -> None:
        if not self.closed:
            self.out.append(frame)
            self.wake.set()


class _Venue:
    """Shared state of one venue: books, connections, counters, pending faults."""

    def __init__(self, name: str, symbols: Sequence[str], seed: int,
                 changes: tuple[int, int] = (10, 20)) -> None:
        self.name = name
        self.symbols = list(symbols)
        self.books: dict[str, TruthBook] = {}
        self.walks: dict[str, SyntheticWalk] = {}
        for i, s in enumerate(self.symbols):
            book = TruthBook(*_DECIMALS)
            self.books[s] = book
            # crc32, not hash(): str hashes change per process, the walk must not
            self.walks[s] = SyntheticWalk(book, seed * 1000 + i + zlib.crc32(name.encode()),
                                          width=45 if name == "bybit" else 150, changes=changes)
        self.conns: set[_Conn] = set()
        self.pending: list[_Pending] = []
        self.held: dict[str, str] = {}          # reorder: frame held until the next one
        self.paused = False
        self.stalled = False
        self.frames = 0
        self.subscriptions = 0
        self.connections = 0
        self.rest_status: dict[int, int] = {}
        self.rest_requests = 0
        self.weight: tuple[int, int] = (0, 0)   # (minute, weight used in it)
        self.banned_until = 0.0
        self.limited_until = 0.0
        self.rest_pending: list[_Pending] = []
        self.restarts = 0
        self.fresh: set[str] = set()            # Bybit: restarted, next snapshot has u=1
        self.replay: dict[str, deque[Replay]] | None = None
        self.steps: dict[str, int] = dict.fromkeys(self.symbols, 0)
        #: trade prints sent: (symbol, price, qty, buyer aggressor, trade id), fixed point
        self.trades_sent: list[tuple[str, int, int, bool, int]] = []

    def load_capture(self, loaded: dict[str, tuple[dict[str, Any], list[Replay]]]) -> None:
        """Start each symbol's truth from the capture's snapshot; stream its updates."""
        self.replay = {}
        for sym, (snap, updates) in loaded.items():
            book = TruthBook(*CAPTURE_DECIMALS)
            book.apply(fixed_levels(snap["bids"]), fixed_levels(snap["asks"]))
            book.sequence = snap["lastUpdateId"]
            self.books[sym] = book
            self.replay[sym] = deque(updates)


class ExchangeSimulator:
    """Loopback exchange: real websocket and HTTP servers on 127.0.0.1 (see docs/simulator.md)."""

    def __init__(self, venues: Mapping[str, Sequence[str]], *, rate: float | None = 1000,
                 source: str = "synthetic", seed: int = 7,
                 max_connection_age: float | None = None, ping_interval: float | None = None,
                 rest_weight_limit: int = 6000, capture_root: str | Path | None = None,
                 levels_per_message: tuple[int, int] = (10, 20), trade_every: int = 5) -> None:
        unknown = [v for v in venues if v not in VENUES]
        if unknown:
            raise ValueError(f"ExchangeSimulator: unknown venue(s) {unknown}: one of {VENUES}")
        if source not in ("synthetic", "capture"):
            raise ValueError(f"ExchangeSimulator: source={source!r}: 'synthetic' or 'capture'")
        if source == "capture" and any(v not in CAPTURES for v in venues):
            raise ValueError(f"ExchangeSimulator: source='capture' replays {sorted(CAPTURES)} "
                             f"only (the other venues' captures cannot serve them cleanly)")
        if rate is not None and rate <= 0:
            raise ValueError(f"ExchangeSimulator: rate must be > 0 or None, got {rate!r}")
        if type(trade_every) is not int or trade_every < 1:
            raise ValueError(f"ExchangeSimulator: trade_every must be a positive int, got "
                             f"{trade_every!r}")
        self.rate = rate
        self.trade_every = trade_every
        self.seed = seed
        self.max_connection_age = max_connection_age
        self.ping_interval = ping_interval
        self.rest_weight_limit = rest_weight_limit
        lo, hi = levels_per_message
        if not 1 <= lo <= hi:
            raise ValueError(f"ExchangeSimulator: levels_per_message {levels_per_message!r} "
                             f"is not (min, max) with 1 <= min <= max")
        self._venues = {v: _Venue(v, syms, seed, (lo, hi)) for v, syms in venues.items()}
        if source == "capture":
            root = capture_root if capture_root is not None else _CAPTURE_ROOT
            for name, venue in self._venues.items():
                venue.load_capture(load_binance(name, venue.symbols, Path(root)))
        self.faults: list[Fault] = []
        self.endpoints: dict[str, dict[str, str]] = {}
        self._servers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(10**9)
        self._closing: set[asyncio.Task[None]] = set()

    # ----- lifecycle -------------------------------------------------------------
    async def __aenter__(self) -> ExchangeSimulator:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _start(self) -> None:
        ws_server = require("websockets.asyncio.server", "live", "the exchange simulator")
        self._loop = asyncio.get_running_loop()
        for name, venue in self._venues.items():
            server = await ws_server.serve(
                lambda ws, v=venue: self._session(v, ws), "127.0.0.1", 0,
                ping_interval=self.ping_interval, compression=None, max_size=2**20)
            self._servers.append(server)
            port = server.sockets[0].getsockname()[1]
            self.endpoints[name] = {"ws": f"ws://127.0.0.1:{port}"}
            if name in BINANCE_VENUES:
                http = await serve_http(self._rest_handler(venue))
                self._servers.append(http)
                self.endpoints[name]["rest"] = f"http://127.0.0.1:{http.sockets[0].getsockname()[1]}"
            self._tasks.append(asyncio.create_task(self._stream(venue)))
            self._tasks.append(asyncio.create_task(self._housekeeping(venue)))

    async def _stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for server in self._servers:
            server.close()
        for venue in self._venues.values():
            for c in list(venue.conns):
                c.ws.transport.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def start(self) -> None:
        """Run in a thread with its own event loop (returns once the servers listen)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._start())
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fastbook-simulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]

    def stop(self) -> None:
        """Stop the thread started by :meth:`start`."""
        if self._thread and self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._thread = None

    def _call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on the simulator's loop (thread-safe when started with :meth:`start`)."""
        if self._thread is None or threading.current_thread() is self._thread or not self._loop:
            return fn(*args)

        async def run() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    # ----- public control -------------------------------------------------------
    def _venue(self, venue: str) -> _Venue:
        try:
            return self._venues[venue]
        except KeyError:
            raise ValueError(f"ExchangeSimulator: venue {venue!r} is not simulated "
                             f"(simulated: {sorted(self._venues)})") from None

    def inject(self, venue: str, kind: str, *, symbol: str | None = None, count: int = 1,
               **args: Any) -> None:
        """Queue a stream fault: the next ``count`` book messages (of ``symbol``) get it."""
        v = self._venue(venue)
        if kind not in STREAM_FAULTS:
            raise ValueError(f"inject: unknown fault {kind!r}: one of {STREAM_FAULTS}")
        if symbol is not None and symbol not in v.books:
            raise ValueError(f"inject: {venue} has no symbol {symbol!r}")
        if kind in ("server_shutdown",) and venue not in BINANCE_VENUES:
            raise ValueError(f"inject: {kind} is a Binance event, not {venue}'s")
        self._call(self._inject, v, _Pending(kind, symbol, count, args))

    def _inject(self, v: _Venue, p: _Pending) -> None:
        if p.kind in ("restart", "server_shutdown", "stall"):
            self._now_fault(v, p)
        else:
            v.pending.append(p)

    def rest_fault(self, venue: str, kind: str, *, count: int = 1, retry_after: float = 1.0,
                   delay: float = 1.0) -> None:
        """Queue a REST fault for the next ``count`` snapshot requests."""
        v = self._venue(venue)
        if venue not in BINANCE_VENUES:
            raise ValueError(f"rest_fault: {venue} has no REST snapshots")
        if kind not in REST_FAULTS:
            raise ValueError(f"rest_fault: unknown fault {kind!r}: one of {REST_FAULTS}")
        self._call(v.rest_pending.append,
                   _Pending(kind, None, count, {"retry_after": retry_after, "delay": delay}))

    def pause(self, venue: str) -> None:
        """Stop moving the books of ``venue`` (non-book traffic keeps going)."""
        self._call(setattr, self._venue(venue), "paused", True)

    def resume(self, venue: str) -> None:
        """Restart the book stream of ``venue`` (and end a stall)."""
        v = self._venue(venue)

        def go() -> None:
            v.paused = False
            v.stalled = False
        self._call(go)

    def truth(self, venue: str, symbol: str, depth: int | None = None) -> dict[str, Any]:
        """The venue's book now: ``{"bids": [(Decimal, Decimal)...], "asks": ..., "sequence"}``.

        ``depth`` keeps the best ``depth`` levels per side (what a Kraken client
        subscribed at that depth holds).
        """
        v = self._venue(venue)
        if symbol not in v.books:
            raise ValueError(f"truth: {venue} has no symbol {symbol!r}")
        snap: dict[str, Any] = self._call(v.books[symbol].snapshot)
        if depth is not None:
            snap["bids"] = snap["bids"][:depth]
            snap["asks"] = snap["asks"][:depth]
        return snap

    def trades(self, venue: str) -> list[tuple[str, int, int, bool, int]]:
        """The trade prints sent so far on ``venue``: ``(symbol, price, qty, buyer
        aggressor, trade id)``, price and qty at the synthetic books' scales (2 and 3
        decimals), in order."""
        return list(self._call(lambda: list(self._venue(venue).trades_sent)))

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per venue: connections (open, total), subscriptions, frames, REST answers, weight."""
        def collect() -> dict[str, dict[str, Any]]:
            return {name: {"connections": len(v.conns), "connections_total": v.connections,
                           "subscriptions": v.subscriptions, "frames": v.frames,
                           "rest_requests": v.rest_requests, "rest_status": dict(v.rest_status),
                           "weight": v.weight[1], "restarts": v.restarts}
                    for name, v in self._venues.items()}
        return self._call(collect)  # type: ignore[no-any-return]

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued frame was written to every socket."""
        deadline = time.monotonic() + timeout
        while any(c.out or c.busy for v in self._venues.values() if not v.stalled
                  for c in v.conns if not c.closed):
            if time.monotonic() > deadline:
                raise TimeoutError(f"wait_idle: frames still queued after {timeout} s")
            await asyncio.sleep(0.005)

    def _log(self, v: _Venue, symbol: str | None, kind: str, detail: str = "") -> None:
        self.faults.append(Fault(time.time(), v.name, symbol, kind, detail))

    # ----- websocket sessions -----------------------------------------------------
    async def _session(self, v: _Venue, ws: Any) -> None:
        conn = _Conn(ws, v)
        v.conns.add(conn)
        v.connections += 1
        writer = asyncio.create_task(self._writer(conn))
        try:
            if v.name in BINANCE_VENUES:
                self._binance_open(v, conn, ws.request.path)
            async for message in ws:
                self._on_message(v, conn, message)
        except Exception:
            pass
        finally:
            conn.closed = True
            v.conns.discard(conn)
            writer.cancel()

    async def _writer(self, conn: _Conn) -> None:
        ws = conn.ws
        try:
            while True:
                while not conn.out or conn.venue.stalled:
                    if conn.venue.stalled:          # silent, socket open (acks held too)
                        await asyncio.sleep(0.01)
                        continue
                    conn.wake.clear()
                    await conn.wake.wait()
                frame = conn.out.popleft()
                conn.busy = True
                if isinstance(frame, bytes) and frame.startswith(b"\x00"):
                    if frame.startswith(b"\x00ABORT"):
                        self._abort_mid_frame(conn, frame[6:])
                        return
                    if frame == _SKIP:
                        conn.seq += 1
                        conn.busy = False
                        continue
                    if frame == _DUP:
                        frame = conn.last
                elif isinstance(frame, str) and _SEQ_JSON in frame:
                    conn.last = frame = frame.replace(_SEQ_JSON, str(conn.seq), 1)
                    conn.seq += 1
                await ws.send(frame)
                conn.busy = False
        except Exception:
            conn.closed = True
            conn.busy = False
            conn.out.clear()

    def _abort_mid_frame(self, conn: _Conn, payload: bytes) -> None:
        """Write a text frame's header and half its payload, then abort the TCP transport."""
        n = len(payload)
        head = bytes([0x81]) + (bytes([n]) if n < 126 else bytes([126]) + struct.pack("!H", n)
                                if n < 65536 else bytes([127]) + struct.pack("!Q", n))
        transport = conn.ws.transport
        transport.write(head + payload[: n // 2])
        transport.abort()
        conn.closed = True
        conn.busy = False
        conn.out.clear()

    def _on_message(self, v: _Venue, conn: _Conn, message: str | bytes) -> None:
        if v.name == "okx" and message == "ping":
            conn.push("pong")
            return
        try:
            msg = json.loads(message)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        if v.name == "bybit":
            self._bybit_message(v, conn, msg)
        elif v.name == "okx":
            self._okx_message(v, conn, msg)
        elif v.name == "kraken-v2":
            self._kraken_message(v, conn, msg)
        elif v.name.startswith("coinbase"):
            self._coinbase_message(v, conn, msg)
        elif "method" in msg:        # Binance live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS
            conn.push(json.dumps({"result": None, "id": msg.get("id")}))

    # ----- Binance ----------------------------------------------------------------
    def _binance_open(self, v: _Venue, conn: _Conn, path: str) -> None:
        if "streams=" not in path:
            return
        by_lower = {s.lower(): s for s in v.symbols}
        for stream in path.split("streams=", 1)[1].split("&")[0].split("/"):
            sym = by_lower.get(stream.split("@")[0])
            if sym and "@depth" in stream:
                conn.symbols.add(sym)
                v.subscriptions += 1
            elif sym and stream.endswith("@aggTrade"):
                conn.trades.add(sym)

    def _binance_frame(self, v: _Venue, sym: str, bids: list[tuple[int, int]],
                       asks: list[tuple[int, int]], corrupt: bool = False,
                       ids: tuple[int, int, int] | None = None) -> str:
        book = v.books[sym]
        qd = book.qd
        pt = book.price_text
        b = [[pt(p), fmt(q, qd)] for p, q in bids]
        a = [[pt(p), fmt(q, qd)] for p, q in asks]
        if corrupt:
            (b if b else a)[0][0] = "12x.5"
        last = book.sequence
        futures = v.name != "binance-spot"
        if futures:                   # global ids: each symbol's next update jumps
            U = last + 1 + (next(self._ids) % 7) * 3
        else:
            U = last + 1
        u = U + len(b) + len(a) - 1 if (b or a) else U
        if ids is not None:
            U, u, last = ids
        book.sequence = u
        now = int(time.time() * 1000)
        # written by hand (the hot path): the same text json.dumps gives with tight separators
        bt = ",".join(f'["{p}","{q}"]' for p, q in b)
        at = ",".join(f'["{p}","{q}"]' for p, q in a)
        if corrupt:
            bt = json.dumps(b, separators=(",", ":"))[1:-1]
            at = json.dumps(a, separators=(",", ":"))[1:-1]
        times = f'"E":{now},"T":{now}' if futures else f'"E":{now}'
        ids_text = f'"U":{U},"u":{u},"pu":{last}' if futures else f'"U":{U},"u":{u}'
        return (f'{{"stream":"{sym.lower()}@depth@100ms","data":{{"e":"depthUpdate",{times},'
                f'"s":"{sym}",{ids_text},"b":[{bt}],"a":[{at}]}}}}')

    def _rest_handler(self, v: _Venue) -> Any:
        async def handler(method: str, path: str, query: dict[str, str]) -> Response:
            return await self._rest(v, method, path, query)
        return handler

    async def _rest(self, v: _Venue, method: str, path: str, q: dict[str, str]) -> Response:
        v.rest_requests += 1
        status, headers, body = await self._rest_answer(v, method, path, q)
        v.rest_status[status] = v.rest_status.get(status, 0) + 1
        return status, headers, body

    async def _rest_answer(self, v: _Venue, method: str, path: str,
                           q: dict[str, str]) -> Response:
        now = time.time()
        if now < v.banned_until:
            return 418, {"Retry-After": str(int(v.banned_until - now) + 1)}, \
                b'{"code":-1003,"msg":"Way too many requests; IP banned."}'
        if now < v.limited_until:          # kept going after a 429: banned
            v.banned_until = now + 120
            self._log(v, None, "rest_418", "request during a 429 Retry-After")
            return 418, {"Retry-After": "120"}, b'{"code":-1003,"msg":"IP banned."}'
        fault = v.rest_pending[0] if v.rest_pending else None
        if fault:
            fault.count -= 1
            if fault.count <= 0:
                v.rest_pending.pop(0)
            self._log(v, q.get("symbol"), f"rest_{fault.kind}")
            if fault.kind == "slow":
                await asyncio.sleep(fault.args["delay"])
            elif fault.kind == "500":
                return 500, {}, b"<html>Internal Server Error</html>"
            elif fault.kind == "garbage":
                return 200, {}, b'{"lastUpdateId":12,"bids":[["1.0",'
            elif fault.kind in ("429", "418"):
                ra = fault.args["retry_after"]
                if fault.kind == "429":
                    v.limited_until = now + ra
                else:
                    v.banned_until = now + ra
                return int(fault.kind), {"Retry-After": str(max(int(ra + 0.999), 1))}, \
                    b'{"code":-1003,"msg":"Too many requests."}'
        if method != "GET" or path != _REST_PATH[v.name]:
            return 404, {}, b'{"code":-1,"msg":"not found"}'
        sym = q.get("symbol", "")
        if sym not in v.books:
            return 400, {}, b'{"code":-1121,"msg":"Invalid symbol."}'
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            return 400, {}, b'{"code":-1100,"msg":"Illegal characters found in parameter limit"}'
        spot = v.name == "binance-spot"
        cost = _spot_weight(limit) if spot else _futures_weight(limit)
        minute = int(now // 60)
        used = (v.weight[1] if v.weight[0] == minute else 0) + cost
        v.weight = (minute, used)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if used > self.rest_weight_limit:
            ra = 60 - int(now % 60)
            v.limited_until = now + ra
            self._log(v, sym, "rest_429", f"weight {used} > {self.rest_weight_limit}")
            return 429, {**headers, "Retry-After": str(ra)}, \
                b'{"code":-1003,"msg":"Too much request weight used."}'
        book = v.books[sym]
        snap: dict[str, Any] = {"lastUpdateId": book.sequence}
        if not spot:
            ms = int(now * 1000)
            snap["E"] = ms
            snap["T"] = ms
        snap["bids"] = book.as_text(True, limit)
        snap["asks"] = book.as_text(False, limit)
        return 200, headers, json.dumps(snap, separators=(",", ":")).encode()

    # ----- Bybit ------------------------------------------------------------------
    def _bybit_message(self, v: _Venue, conn: _Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        req_id = msg.get("req_id", "")
        if op == "ping":
            conn.push(json.dumps({"success": True, "ret_msg": "pong", "conn_id": str(conn.id),
                                  "req_id": req_id, "op": "ping"}))
            return
        if op not in ("subscribe", "unsubscribe"):
            return
        args = msg.get("args")
        ok = isinstance(args, list) and 0 < len(args) <= 10
        topics = []
        bad: Any = args
        if ok and isinstance(args, list):
            for a in args:
                parts = str(a).split(".")
                if len(parts) == 2 and parts[0] == "publicTrade" and parts[1] in v.books:
                    topics.append((a, parts[1]))
                    continue
                if len(parts) != 3 or parts[0] != "orderbook" or parts[2] not in v.books:
                    ok = False
                    bad = a                 # the topic refused; the request fails whole
                    break
                topics.append((a, parts[2]))
        conn.push(json.dumps({"success": ok, "ret_msg": "" if ok else f"error:handler not found,"
                              f"topic:{bad}", "conn_id": str(conn.id), "req_id": req_id,
                              "op": op}))
        if not ok:
            return
        for topic, sym in topics:
            if topic.startswith("publicTrade."):
                (conn.trades.add if op == "subscribe" else conn.trades.discard)(sym)
                continue
            if op == "subscribe":
                if sym in v.fresh:
                    v.fresh.discard(sym)
                    v.books[sym].sequence = 1
                conn.symbols.add(sym)
                v.subscriptions += 1
                conn.push(self._bybit_frame(v, sym, "snapshot", topic=topic))
            else:
                conn.symbols.discard(sym)

    def _bybit_frame(self, v: _Venue, sym: str, kind: str, bids: Any = None, asks: Any = None,
                     topic: str | None = None, corrupt: bool = False) -> str:
        book = v.books[sym]
        if kind == "snapshot":
            b = book.as_text(True)
            a = book.as_text(False)
        else:
            b = [[fmt(p, book.pd), fmt(q, book.qd)] for p, q in bids]
            a = [[fmt(p, book.pd), fmt(q, book.qd)] for p, q in asks]
            if corrupt:
                (b if b else a)[0][0] = "12x.5"
        now = int(time.time() * 1000)
        return json.dumps({"topic": topic or f"orderbook.50.{sym}", "type": kind, "ts": now,
                           "data": {"s": sym, "b": b, "a": a, "u": book.sequence,
                                    "seq": book.sequence * 3 + 1000},
                           "cts": now - 1}, separators=(",", ":"))

    # ----- OKX --------------------------------------------------------------------
    def _okx_message(self, v: _Venue, conn: _Conn, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        args = msg.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            conn.push(json.dumps({"event": "error", "code": "60012",
                                  "msg": f"Illegal request: {json.dumps(msg)}", "connId": "1"}))
            return
        for arg in args:
            sym = arg.get("instId") if isinstance(arg, dict) else None
            if isinstance(arg, dict) and arg.get("channel") == "trades" and sym in v.books:
                conn.push(json.dumps({"event": op, "arg": {"channel": "trades", "instId": sym},
                                      "connId": str(conn.id)}))
                (conn.trades.add if op == "subscribe" else conn.trades.discard)(sym)
                continue
            if not isinstance(arg, dict) or arg.get("channel") != "books" or sym not in v.books:
                conn.push(json.dumps({"event": "error", "code": "60018",
                                      "msg": f"Wrong URL or channel:{arg}", "connId": "1"}))
                continue
            conn.push(json.dumps({"event": op, "arg": {"channel": "books", "instId": sym},
                                  "connId": str(conn.id)}))
            if op == "subscribe":
                conn.symbols.add(sym)
                v.subscriptions += 1
                conn.push(self._okx_frame(v, sym, None, None))
            else:
                conn.symbols.discard(sym)

    def _okx_frame(self, v: _Venue, sym: str, bids: Any, asks: Any, corrupt: bool = False,
                   bad_checksum: bool = False) -> str:
        """An OKX ``books`` snapshot (``bids is None``) or update; checksum of the truth."""
        book = v.books[sym]

        def text(levels: list[tuple[int, int]]) -> list[list[str]]:
            return [[_strip(fmt(p, book.pd)), _strip(fmt(q, book.qd)), "0",
                     str(1 + p % 5 if q else 0)] for p, q in levels]
        top_b = text(book.sorted_side(True, 25))
        top_a = text(book.sorted_side(False, 25))
        crc = okx_checksum(top_b, top_a)
        if bad_checksum:
            crc = crc + 1 if crc < (1 << 31) - 1 else crc - 1
        if bids is None:
            action, prev = "snapshot", -1
            b, a = text(book.sorted_side(True)), text(book.sorted_side(False))
        else:
            action, prev = "update", book.sequence
            book.sequence += 1 + book.sequence % 3
            b, a = text(bids), text(asks)
            if corrupt:
                (b if b else a)[0][0] = "12x.5"
        return json.dumps({"arg": {"channel": "books", "instId": sym}, "action": action,
                           "data": [{"asks": a, "bids": b, "ts": str(int(time.time() * 1000)),
                                     "checksum": crc, "prevSeqId": prev,
                                     "seqId": book.sequence}]}, separators=(",", ":"))

    # ----- Kraken v2 -------------------------------------------------------------
    def _kraken_message(self, v: _Venue, conn: _Conn, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        req_id = msg.get("req_id")
        now = _iso(time.time())
        if method == "ping":
            conn.push(json.dumps({"method": "pong", "req_id": req_id, "time_in": now,
                                  "time_out": now}))
            return
        params = msg.get("params")
        if method not in ("subscribe", "unsubscribe") or not isinstance(params, dict):
            conn.push(json.dumps({"error": "Method not found", "method": method,
                                  "success": False, "req_id": req_id,
                                  "time_in": now, "time_out": now}))
            return
        channel = params.get("channel")
        if channel == "instrument":
            conn.push(json.dumps({"method": method, "result": {"channel": "instrument",
                                  "snapshot": True}, "success": True, "req_id": req_id,
                                  "time_in": now, "time_out": now}))
            if method == "subscribe":
                conn.heartbeats = True
                conn.push(self._kraken_instruments(v))
            return
        syms = params.get("symbol")
        if channel == "trade" and isinstance(syms, list):
            for sym in syms:
                ok = sym in v.books
                conn.push(json.dumps({"method": method, "result": {"channel": "trade",
                                      "snapshot": False, "symbol": sym}, "success": ok,
                                      **({} if ok else {"error": "Currency pair not supported",
                                                        "symbol": sym}),
                                      "req_id": req_id, "time_in": now, "time_out": now}))
                if ok:
                    (conn.trades.add if method == "subscribe" else conn.trades.discard)(sym)
            return
        depth = params.get("depth", 10)
        if channel != "book" or not isinstance(syms, list) or depth not in (10, 25, 100, 500,
                                                                              1000):
            conn.push(json.dumps({"error": f"bad params {json.dumps(params)[:80]}",
                                  "method": method, "success": False, "req_id": req_id,
                                  "time_in": now, "time_out": now}))
            return
        for sym in syms:
            if sym not in v.books:
                conn.push(json.dumps({"error": "Currency pair not supported", "method": method,
                                      "success": False, "symbol": sym, "req_id": req_id,
                                      "time_in": now, "time_out": now}))
                continue
            result = {"channel": "book", "depth": depth, "snapshot": True, "symbol": sym}
            conn.push(json.dumps({"method": method, "result": result, "success": True,
                                  "req_id": req_id, "time_in": now, "time_out": now}))
            if method == "subscribe":
                conn.heartbeats = True
                conn.symbols.add(sym)
                v.subscriptions += 1
                book = v.books[sym]
                view = (depth, dict(book.sorted_side(True, depth)),
                        dict(book.sorted_side(False, depth)))
                conn.views[sym] = view
                conn.push(self._kraken_frame(v, sym, "snapshot", view,
                                             book.sorted_side(True, depth),
                                             book.sorted_side(False, depth)))
            else:
                conn.symbols.discard(sym)
                conn.views.pop(sym, None)

    def _kraken_instruments(self, v: _Venue) -> str:
        pd, qd = _DECIMALS
        pairs = [{"symbol": s, "base": s.split("/")[0], "quote": s.split("/")[-1],
                  "status": "online", "qty_precision": qd, "qty_increment": fmt(1, qd),
                  "price_precision": pd, "price_increment": fmt(1, pd),
                  "cost_precision": 5, "qty_min": fmt(1, qd), "marginable": False,
                  "has_index": True} for s in v.symbols]
        return json.dumps({"channel": "instrument", "type": "snapshot",
                           "data": {"assets": [], "pairs": pairs}})

    @staticmethod
    def kraken_checksum(bids: dict[int, int], asks: dict[int, int], pd: int, qd: int) -> int:
        """Kraken's CRC32 (unsigned): best 10 asks ascending then best 10 bids descending,
        each price then qty at the pair's precisions without the point or leading zeros."""
        parts: list[str] = []
        for levels in (sorted(asks.items())[:10], sorted(bids.items(), reverse=True)[:10]):
            for p, q in levels:
                parts.append(fmt(p, pd).replace(".", "").lstrip("0"))
                parts.append(fmt(q, qd).replace(".", "").lstrip("0"))
        return zlib.crc32("".join(parts).encode())

    def _kraken_frame(self, v: _Venue, sym: str, kind: str,
                      view: tuple[int, dict[int, int], dict[int, int]],
                      bids: list[tuple[int, int]], asks: list[tuple[int, int]],
                      corrupt: bool = False, bad_checksum: bool = False) -> str:
        book = v.books[sym]
        pd, qd = book.pd, book.qd
        crc = self.kraken_checksum(view[1], view[2], pd, qd)
        if bad_checksum:
            crc ^= 1
        bt = [f'{{"price":{fmt(p, pd)},"qty":{fmt(q, qd)}}}' for p, q in bids]
        at = [f'{{"price":{fmt(p, pd)},"qty":{fmt(q, qd)}}}' for p, q in asks]
        if corrupt:
            (bt if bt else at)[0] = '{"price":"12x.5","qty":1.0}'
        ts = "" if kind == "snapshot" else f',"timestamp":"{_iso(time.time())}"'
        return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{sym}",'
                f'"bids":[{",".join(bt)}],"asks":[{",".join(at)}],"checksum":{crc}{ts}}}]}}')

    @staticmethod
    def _kraken_diff(side: dict[int, int], view: dict[int, int], depth: int, bid: bool,
                     changed: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """What Kraken sends one client for one side: deletes of levels gone from the book,
        then levels new or changed in the top ``depth`` (none for levels pushed out)."""
        top = dict(sorted(side.items(), reverse=bid)[:depth])
        out = [(p, 0) for p in view if p not in side]
        out += [(p, q) for p, q in sorted(top.items(), reverse=bid) if view.get(p) != q]
        view.clear()
        view.update(top)
        return out

    def _kraken_fanout(self, v: _Venue, sym: str, bids: list[tuple[int, int]],
                       asks: list[tuple[int, int]], kind: str) -> None:
        book = v.books[sym]
        book.sequence += 1
        for conn in v.conns:
            view = conn.views.get(sym)
            if view is None:
                continue
            depth = view[0]
            b = self._kraken_diff(book.bids, view[1], depth, True, bids)
            a = self._kraken_diff(book.asks, view[2], depth, False, asks)
            if not b and not a:
                continue
            frame = self._kraken_frame(v, sym, "update", view, b, a, kind == "corrupt",
                                       kind == "bad_checksum")
            if kind == "drop":
                continue
            frames: list[str | bytes] = [frame]
            if kind == "malformed":
                frames = [frame[: len(frame) // 2]]
            elif kind == "duplicate":
                frames = [frame, frame]
            elif kind == "reorder":
                conn.held[sym] = frame
                continue
            elif kind == "oversized":
                frames = [frame, json.dumps({"channel": "padding", "data": "x" * (2**20 + 10)})]
            elif kind == "disconnect":
                frames = [b"\x00ABORT" + frame.encode()]
            held = conn.held.pop(sym, None)
            if held is not None:
                frames.append(held)
            for f in frames:
                conn.push(f)
            v.frames += len(frames)

    # ----- Coinbase -----------------------------------------------------------------
    def _coinbase_message(self, v: _Venue, conn: _Conn, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        products = msg.get("product_ids")
        if kind not in ("subscribe", "unsubscribe") or not isinstance(products, list):
            self._coinbase_push(v, conn, {"type": "error", "message": "Failed to subscribe",
                                          "reason": f"bad request {json.dumps(msg)[:80]}"})
            return
        advanced = v.name == "coinbase-advanced"
        channels = [msg.get("channel")] if advanced else list(msg.get("channels") or [])
        bad = [p for p in products if p not in v.books]
        if bad:
            self._coinbase_push(v, conn, {"type": "error", "message": "Failed to subscribe",
                                          "reason": f"{bad} are not valid product ids"})
            return
        book_channel = "level2" if advanced else "level2_batch"
        trade_channel = "market_trades" if advanced else "matches"
        for ch in channels:
            if ch in ("heartbeats", "heartbeat"):
                conn.heartbeats = kind == "subscribe"
            elif ch == trade_channel:
                for p in products:
                    (conn.trades.add if kind == "subscribe" else conn.trades.discard)(p)
            elif ch in (book_channel, "level2"):
                for p in products:
                    if kind == "subscribe":
                        conn.symbols.add(p)
                        v.subscriptions += 1
                    else:
                        conn.symbols.discard(p)
        subs = sorted(conn.symbols)
        if advanced:
            ack = {"channel": "subscriptions", "client_id": "", "timestamp": _iso(time.time()),
                   "sequence_num": _SEQ,
                   "events": [{"subscriptions": {"level2": subs} if subs else {}}]}
            conn.push(json.dumps(ack))
        else:
            listed = [{"name": book_channel, "product_ids": subs}]
            if conn.heartbeats:
                listed.append({"name": "heartbeat", "product_ids": list(v.symbols)})
            conn.push(json.dumps({"type": "subscriptions", "channels": listed}))
        if kind == "subscribe" and any(c in (book_channel, "level2") for c in channels):
            for p in products:
                conn.push(self._coinbase_frame(v, p, None, None))

    def _coinbase_push(self, v: _Venue, conn: _Conn, body: dict[str, Any]) -> None:
        if v.name == "coinbase-advanced":
            body = {"channel": "error", "sequence_num": _SEQ, **body}
            conn.push(json.dumps(body))
        else:
            conn.push(json.dumps(body))

    def _coinbase_frame(self, v: _Venue, sym: str, bids: Any, asks: Any,
                        corrupt: bool = False) -> str:
        """A snapshot (``bids is None``) or update of Coinbase Exchange or Advanced."""
        book = v.books[sym]
        now = _iso(time.time())
        snap = bids is None
        if snap:
            bids, asks = book.sorted_side(True), book.sorted_side(False)
        else:
            book.sequence += 1
        bt = [[fmt(p, book.pd), fmt(q, book.qd)] for p, q in bids]
        at = [[fmt(p, book.pd), fmt(q, book.qd)] for p, q in asks]
        if corrupt:
            (bt if bt else at)[0][0] = "12x.5"
        if v.name == "coinbase-exchange":
            if snap:
                body: dict[str, Any] = {"type": "snapshot", "product_id": sym,
                                        "bids": bt, "asks": at}
            else:
                body = {"type": "l2update", "product_id": sym,
                        "changes": [["buy", p, q] for p, q in bt] + [["sell", p, q]
                                                                      for p, q in at],
                        "time": now}
            return json.dumps(body, separators=(",", ":"))
        et = "1970-01-01T00:00:00Z" if snap else now
        updates = [{"side": "bid", "event_time": et, "price_level": p, "new_quantity": q}
                   for p, q in bt] + [{"side": "offer", "event_time": et, "price_level": p,
                                       "new_quantity": q} for p, q in at]
        body = {"channel": "l2_data", "client_id": "", "timestamp": now, "sequence_num": _SEQ,
                "events": [{"type": "snapshot" if snap else "update", "product_id": sym,
                            "updates": updates}]}
        return json.dumps(body, separators=(",", ":"))

    def _heartbeat(self, v: _Venue, counter: int) -> None:
        """One second's heartbeats (Coinbase) to the connections that asked for them."""
        now = _iso(time.time())
        for conn in v.conns:
            if not conn.heartbeats:
                continue
            if v.name == "coinbase-advanced":
                body = {"channel": "heartbeats", "client_id": "", "timestamp": now,
                        "sequence_num": _SEQ,
                        "events": [{"current_time": now, "heartbeat_counter": counter}]}
                conn.push(json.dumps(body))
            elif v.name == "kraken-v2":
                conn.push('{"channel":"heartbeat"}')
            else:
                for sym in v.symbols:
                    conn.push(json.dumps({"type": "heartbeat", "last_trade_id": counter,
                                          "product_id": sym, "sequence": counter, "time": now}))

    # ----- the stream -------------------------------------------------------------
    async def _stream(self, v: _Venue) -> None:
        interval = 1 / self.rate if self.rate else 0.0
        start = time.monotonic()
        sent = 0
        for book in v.books.values():
            if v.replay is not None:
                break
            if v.name == "bybit":
                book.sequence = 1
            else:
                book.sequence = 1000 + self.seed
        while True:
            if v.paused or v.stalled or not v.symbols:
                await asyncio.sleep(0.002)
                start = time.monotonic()
                sent = 0
                continue
            if interval:
                due = int((time.monotonic() - start) / interval) - sent
                due = min(due, 1000)
                if due <= 0:
                    await asyncio.sleep(min(interval, 0.002))
                    continue
            else:
                due = 50
                if any(len(c.out) > 2000 for c in v.conns):
                    await asyncio.sleep(0.001)
                    continue
            for _ in range(due):
                for sym in v.symbols:
                    self._one(v, sym)
            sent += due
            await asyncio.sleep(0)

    def _take_fault(self, v: _Venue, sym: str) -> _Pending | None:
        for p in v.pending:
            if p.symbol is None or p.symbol == sym:
                p.count -= 1
                if p.count <= 0:
                    v.pending.remove(p)
                self._log(v, sym, p.kind)
                return p
        return None

    def _one(self, v: _Venue, sym: str) -> None:
        """Move ``sym``'s book by one message and send it, with the next fault applied."""
        if sym in v.fresh:
            return                      # Bybit after a restart: waits for a subscription
        ids = None
        if v.replay is not None:
            if not v.replay[sym]:
                return                      # the capture is exhausted
            U, u, pu, bids, asks = v.replay[sym].popleft()
            v.books[sym].apply(bids, asks)
            ids = (U, u, pu)
        else:
            bids, asks = v.walks[sym].step()
        fault = self._take_fault(v, sym) if v.pending else None
        kind = fault.kind if fault else ""
        v.steps[sym] += 1
        if not v.steps[sym] % self.trade_every:
            self._trade(v, sym)
        if v.name == "kraken-v2":
            self._kraken_fanout(v, sym, bids, asks, kind)
            return
        corrupt = kind == "corrupt"
        if v.name == "bybit":
            v.books[sym].sequence += 1
            frame = self._bybit_frame(v, sym, "delta", bids, asks, corrupt=corrupt)
        elif v.name == "okx":
            frame = self._okx_frame(v, sym, bids, asks, corrupt, kind == "bad_checksum")
        elif v.name.startswith("coinbase"):
            frame = self._coinbase_frame(v, sym, bids, asks, corrupt)
        else:
            frame = self._binance_frame(v, sym, bids, asks, corrupt=kind == "corrupt", ids=ids)
        advanced = v.name == "coinbase-advanced"
        if kind == "drop":
            if advanced:
                for conn in v.conns:
                    if sym in conn.symbols:
                        conn.push(_SKIP)
            return
        if kind == "malformed":
            frame = frame[: len(frame) // 2]
        frames: list[str | bytes] = [frame]
        if kind == "duplicate":
            frames = [frame, _DUP if advanced else frame]
        elif kind == "reorder":
            v.held[sym] = frame
            return
        elif kind == "oversized":
            frames = [frame, json.dumps({"topic": "padding", "data": "x" * (2**20 + 10)})]
        elif kind == "disconnect":
            frames = [b"\x00ABORT" + frame.encode()]
        held = v.held.pop(sym, None)
        if held is not None:
            frames.append(held)
        for conn in v.conns:
            if sym in conn.symbols:
                for f in frames:
                    conn.push(f)
                v.frames += len(frames)

    def _trade(self, v: _Venue, sym: str) -> None:
        """One trade print of ``sym`` to the connections subscribed to its trades, at the
        best ask (a buyer aggressor) or best bid (a seller), alternately."""
        conns = [c for c in v.conns if sym in c.trades and not c.closed]
        if not conns:
            return
        tid = len(v.trades_sent) + 1
        buyer = bool(tid % 2)
        book = v.books[sym]
        best = book.sorted_side(not buyer, 1)
        if not best:
            return
        price, qty = best[0][0], min(best[0][1], 1 + tid % 3)
        v.trades_sent.append((sym, price, qty, buyer, tid))
        frame = self._trade_frame(v, sym, fmt(price, book.pd), fmt(qty, book.qd), buyer, tid)
        for c in conns:
            c.push(frame)
        v.frames += len(conns)

    def _trade_frame(self, v: _Venue, sym: str, px: str, qty: str, buyer: bool,
                     tid: int) -> str:
        """The venue's trade message of one print (``docs/l2-feeds.md``, "Trades")."""
        ms = int(time.time() * 1000)
        iso = _iso(time.time())
        body: dict[str, Any]
        if v.name in BINANCE_VENUES:
            body = {"stream": f"{sym.lower()}@aggTrade",
                    "data": {"e": "aggTrade", "E": ms, "s": sym, "a": tid, "p": px, "q": qty,
                             "f": tid, "l": tid, "T": ms, "m": not buyer}}
        elif v.name == "bybit":
            body = {"topic": f"publicTrade.{sym}", "type": "snapshot", "ts": ms,
                    "data": [{"T": ms, "s": sym, "S": "Buy" if buyer else "Sell", "v": qty,
                              "p": px, "L": "ZeroPlusTick", "i": str(tid), "BT": False}]}
        elif v.name == "okx":
            body = {"arg": {"channel": "trades", "instId": sym},
                    "data": [{"instId": sym, "tradeId": str(tid), "px": _strip(px),
                              "sz": _strip(qty), "side": "buy" if buyer else "sell",
                              "ts": str(ms)}]}
        elif v.name == "kraken-v2":
            return (f'{{"channel":"trade","type":"update","data":[{{"symbol":"{sym}",'
                    f'"side":"{"buy" if buyer else "sell"}","price":{px},"qty":{qty},'
                    f'"ord_type":"market","trade_id":{tid},"timestamp":"{iso}"}}]}}')
        elif v.name == "coinbase-exchange":
            body = {"type": "match", "trade_id": tid, "maker_order_id": f"m{tid}",
                    "taker_order_id": f"t{tid}", "side": "sell" if buyer else "buy",
                    "size": qty, "price": px, "product_id": sym, "sequence": tid, "time": iso}
        else:
            body = {"channel": "market_trades", "client_id": "", "timestamp": iso,
                    "sequence_num": _SEQ,
                    "events": [{"type": "update", "trades": [
                        {"trade_id": str(tid), "product_id": sym, "price": px, "size": qty,
                         "side": "BUY" if buyer else "SELL", "time": iso}]}]}
        return json.dumps(body, separators=(",", ":"))

    def _now_fault(self, v: _Venue, p: _Pending) -> None:
        """Faults that act at once on the venue: restart, serverShutdown, stall."""
        self._log(v, p.symbol, p.kind)
        if p.kind == "stall":
            v.stalled = True
        elif p.kind == "server_shutdown":
            frame = json.dumps({"e": "serverShutdown", "E": int(time.time() * 1000)})
            for conn in v.conns:
                conn.push(frame)
        elif p.kind == "restart":
            v.restarts += 1
            for conn in list(v.conns):
                conn.closed = True
                conn.out.clear()
                conn.ws.transport.abort()
            for book in v.books.values():
                book.sequence = {"bybit": 0, "okx": 7}.get(v.name, book.sequence + 10**6)
            if v.name == "bybit":
                v.fresh.update(v.books)

    async def _housekeeping(self, v: _Venue) -> None:
        """Close connections older than ``max_connection_age``; heartbeats once a second."""
        beat = time.monotonic()
        counter = 0
        while True:
            await asyncio.sleep(0.05)
            if time.monotonic() - beat >= 1.0 and not v.stalled:
                beat = time.monotonic()
                counter += 1
                self._heartbeat(v, counter)
            age = self.max_connection_age
            if age:
                now = time.monotonic()
                for conn in list(v.conns):
                    if now - conn.opened > age and not conn.closed:
                        self._log(v, None, "max_connection_age", f"conn {conn.id}")
                        conn.closed = True
                        conn.out.clear()
                        task = asyncio.create_task(conn.ws.close(1000, "connection age limit"))
                        self._closing.add(task)
                        task.add_done_callback(self._closing.discard)
