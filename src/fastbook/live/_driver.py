"""The asyncio live driver: connections, subscriptions, REST snapshots, timers, consumers.

It owns the network side of a :class:`~fastbook.live._session.Session`:

* one task per connection shard (a venue's symbols split by its per-connection
  limit), which connects, subscribes, and reconnects with exponential backoff
  and jitter (capped, reset once a connection was stable for a while); after
  ``max_attempts`` failures in a row the venue's books go DOWN with the reason,
  while the task keeps trying at the cap and the other venues carry on;
* REST snapshots as separate tasks (never on a socket reader's path), one in
  flight per symbol, under the venue's weight budget and rate-limit answers;
* a timer that sends application pings, closes stalled connections, marks
  silent books stale, and replaces connections before the venue's age limit
  (make-before-break: the new one syncs its own books before the old one goes);
* bounded consumer queues that conflate per book when full (never blocking the
  readers, never silently: counted).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from fastbook.live._rules import VenueRules
from fastbook.live._session import Action, Conn, LiveNotice, Session

__all__ = ["Consumer", "Driver"]


class Consumer:
    """A bounded notice queue: full means conflation per book, counted, never waiting.

    Up to ``capacity`` notices wait in order; past that, each book keeps one
    pending notice, the newest (its ``conflated`` says how many it replaced), so
    memory stays bounded by ``capacity`` plus the number of books.
    """

    def __init__(self, capacity: int = 10_000, name: str = "consumer") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity!r}")
        self.capacity = capacity
        self.name = name
        self.queue: deque[LiveNotice] = deque()
        self.pending: OrderedDict[tuple[str, str], LiveNotice] = OrderedDict()
        self.conflated = 0
        self.delivered = 0
        self.max_depth = 0
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, n: LiveNotice) -> None:
        if len(self.queue) < self.capacity and not self.pending:
            self.queue.append(n)
            if len(self.queue) > self.max_depth:
                self.max_depth = len(self.queue)
        else:
            key = (n.venue, n.symbol)
            old = self.pending.pop(key, None)
            if old is not None:
                n.conflated = old.conflated + 1
                self.conflated += 1
            self.pending[key] = n
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def get_nowait(self) -> LiveNotice | None:
        if self.queue:
            n = self.queue.popleft()
        elif self.pending:
            n = self.pending.popitem(last=False)[1]
        else:
            return None
        self.delivered += 1
        return n

    async def get(self) -> LiveNotice | None:
        """The next notice; None once the feed closed and the queue is empty."""
        while True:
            n = self.get_nowait()
            if n is not None or self.closed:
                return n
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "queue": len(self.queue) + len(self.pending),
                "capacity": self.capacity, "conflated": self.conflated,
                "delivered": self.delivered, "max_queue": self.max_depth}


class Driver:
    """Runs a :class:`Session` over real connections (see the module docstring)."""

    def __init__(self, session: Session, *, endpoints: dict[str, dict[str, str]] | None = None,
                 transport: str = "auto", max_attempts: int = 5, backoff_s: float = 0.5,
                 backoff_cap_s: float = 30.0, stable_s: float = 30.0,
                 open_timeout_s: float = 10.0, handover_timeout_s: float = 30.0,
                 max_age_s: dict[str, float] | None = None, recorder: Any = None,
                 lock: Any = None, rest_timeout_s: float = 10.0,
                 stall_s: dict[str, float] | None = None, ping_s: dict[str, float] | None = None,
                 seed: int | None = None) -> None:
        from fastbook.live._transport import backend_name

        self.session = session
        self.endpoints = endpoints or {}
        self.transport = backend_name(transport)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.stable_s = stable_s
        self.open_timeout_s = open_timeout_s
        self.handover_timeout_s = handover_timeout_s
        self.max_age_s = max_age_s or {}
        self.stall_s = stall_s or {}
        self.ping_s = ping_s or {}
        self.recorder = recorder
        self.lock = lock
        self.rest_timeout_s = rest_timeout_s
        self.rng = random.Random(seed)
        self.consumers: list[Consumer] = []
        self.callbacks: list[Callable[[LiveNotice], None]] = []
        self.callback_errors = 0
        self._next_conn = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._transports: dict[int, Any] = {}
        self._closed_events: dict[int, asyncio.Event] = {}
        self._fetching: set[tuple[int, str]] = set()
        self._adopt: dict[int, Conn] = {}
        self._http: Any = None
        self._sched: dict[str, Any] = {}
        self.venue_stats: dict[str, dict[str, Any]] = {}
        self._by_symbol: dict[tuple[str, str], Any] = {}
        self._rate_samples: deque[tuple[int, dict[str, tuple[int, int]], dict[Any, int]]] = \
            deque(maxlen=11)
        self._running = False
        session.on_notice = self._notice
        session.on_trade = self._trade
        self.trade_callbacks: list[Callable[[Any], None]] = []

    # --- notices to consumers --------------------------------------------------------

    def _notice(self, n: LiveNotice) -> None:
        for q in self.consumers:
            q.put(n)
        for cb in self.callbacks:
            try:
                cb(n)
            except Exception:
                self.callback_errors += 1

    def _trade(self, t: Any) -> None:
        for cb in self.trade_callbacks:
            try:
                cb(t)
            except Exception:
                self.callback_errors += 1

    def consumer(self, capacity: int = 10_000, name: str = "consumer") -> Consumer:
        q = Consumer(capacity, name)
        self.consumers.append(q)
        return q

    def delivered(self, n: LiveNotice) -> None:
        """Record applied -> consumer latency for a notice a consumer just took."""
        if n.kind != "update":
            return
        t = self._by_symbol.get((n.venue, n.symbol))
        if t is None:                      # the session's tracks, by the notices' names
            self._by_symbol = {(t.venue, t.symbol): t for t in self.session.tracks.values()}
            t = self._by_symbol.get((n.venue, n.symbol))
        if t is not None and t.hist:
            t.hist["applied_to_consumer"].record(time.time_ns() - n.applied_ns)

    # --- lifecycle -----------------------------------------------------------------

    def endpoint(self, venue: str, kind: str) -> str:
        rules = self.session.rules[venue]
        return self.endpoints.get(venue, {}).get(kind) or (rules.ws if kind == "ws"
                                                           else rules.rest)

    @property
    def running(self) -> bool:
        """Between :meth:`start` and :meth:`stop` (a property: the tasks' loops re-read it)."""
        return self._running

    def stopped(self) -> bool:
        """After :meth:`stop` began (a call, so that checks after an ``await`` re-read it)."""
        return not self._running

    async def start(self) -> None:
        self._running = True
        by_venue: dict[str, list[str]] = {}
        for (venue, native) in self.session.tracks:
            by_venue.setdefault(venue, []).append(native)
        for venue, natives in by_venue.items():
            rules = self.session.rules[venue]
            self.venue_stats[venue] = {"reconnects": 0, "connect_failures": 0,
                                       "attempts": 0, "last_failure": "", "pings": 0,
                                       "stalls": 0, "handovers": 0, "snapshots": 0,
                                       "snapshot_failures": 0, "rate_limited": 0}
            for i in range(0, len(natives), rules.max_symbols):
                self._spawn(self._shard(venue, natives[i:i + rules.max_symbols]))
        self._spawn(self._timer())

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for _cid, tr in list(self._transports.items()):
            await tr.close()
        if self._http is not None:
            await self._http.close()
        for q in self.consumers:
            q.close()
        if self.recorder is not None:
            self.recorder.close()

    # --- connections -----------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        cap = min(self.backoff_cap_s, self.backoff_s * 2.0 ** max(attempt - 1, 0))
        return cap * (0.5 + 0.5 * self.rng.random())        # jitter in [cap/2, cap]

    async def _shard(self, venue: str, natives: list[str]) -> None:
        """Keep one connection for ``natives`` of ``venue`` open, for ever."""
        vs = self.venue_stats[venue]
        failures = 0
        while self.running:
            vs["attempts"] += 1
            started = time.monotonic()
            try:
                c = await self._connect(venue, natives)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                vs["connect_failures"] += 1
                vs["last_failure"] = f"{type(exc).__name__}: {exc}"
                if failures >= self.max_attempts:
                    self._venue_down(venue, f"{failures} connection attempts failed; "
                                     f"last: {vs['last_failure']}")
                await asyncio.sleep(self._backoff(failures))
                continue
            while True:
                await self._closed_events[c.id].wait()
                self._closed_events.pop(c.id, None)
                adopted = self._adopt.pop(c.id, None)
                if adopted is None:
                    break
                c = adopted                      # a standby replaced it (make-before-break)
            if self.stopped():
                return
            vs["reconnects"] += 1
            if time.monotonic() - started >= self.stable_s:
                failures = 0                     # it was stable: start the backoff again
            failures += 1
            vs["last_failure"] = self.session.venue_counts[venue].get("last_close", "") or \
                vs["last_failure"]
            if failures >= self.max_attempts:
                self._venue_down(venue, f"{failures} connections in a row failed; "
                                 f"last: {vs['last_failure']}")
            await asyncio.sleep(self._backoff(failures) if failures > 1 else 0.0)

    def _venue_down(self, venue: str, reason: str) -> None:
        now = time.time_ns()
        self.session.venue_down(venue, reason, now)
        if self.recorder is not None:
            self.recorder.venue_down(venue, reason, now)    # a replay has no attempts to see

    async def _connect(self, venue: str, natives: list[str], *, standby: bool = False) -> Conn:
        from fastbook.live._transport import connect

        rules = self.session.rules[venue]
        depth = self.session.venue_depth(venue)
        url = rules.url(self.endpoint(venue, "ws"), natives, depth)
        self._next_conn += 1
        cid = self._next_conn
        closed = asyncio.Event()
        self._closed_events[cid] = closed
        received = self._on_frame_for(cid)

        def on_close(reason: str) -> None:
            self._on_close(cid, reason)
            closed.set()

        try:
            tr = await connect(url, received, on_close, backend=self.transport,
                               open_timeout=self.open_timeout_s)
        except BaseException:
            self._closed_events.pop(cid, None)
            raise
        self._transports[cid] = tr
        now = time.time_ns()
        if self.recorder is not None:
            self.recorder.opened(cid, url, now, venue=venue, symbols=natives, standby=standby)
        with self._locked():
            c = self.session.open(cid, venue, natives, url, now, standby=standby)
        for msg in rules.subscribe(natives, depth):
            self._send(c, msg)
        if not closed.is_set() and self.session.actions:
            self._drain()
        return c

    def _locked(self) -> Any:
        return self.lock if self.lock is not None else _NOLOCK

    def _on_frame_for(self, cid: int) -> Callable[[Any, int], None]:
        session = self.session
        recorder = self.recorder
        lock = self.lock

        if recorder is None and lock is None:
            def received(payload: Any, recv_ns: int) -> None:
                session.received(cid, payload, recv_ns)
                if session.actions:
                    self._drain()
        else:
            def received(payload: Any, recv_ns: int) -> None:
                if recorder is not None:
                    recorder.received(cid, payload, recv_ns)
                if lock is not None:
                    with lock:
                        session.received(cid, payload, recv_ns)
                else:
                    session.received(cid, payload, recv_ns)
                if session.actions:
                    self._drain()
        return received

    def _on_close(self, cid: int, reason: str) -> None:
        self._transports.pop(cid, None)
        c = self.session.conns.get(cid)
        now = time.time_ns()
        if self.recorder is not None and c is not None:
            self.recorder.disconnected(cid, reason, now)
        if c is not None:
            self.session.venue_counts[c.venue]["last_close"] = reason  # type: ignore[assignment]
        with self._locked():
            self.session.closed(cid, reason, now)

    def _send(self, c: Conn, text: str) -> None:
        tr = self._transports.get(c.id)
        if tr is None:
            return
        if self.recorder is not None:
            self.recorder.sent(c.id, text, time.time_ns())
        tr.send(text)

    # --- actions ---------------------------------------------------------------------

    def _drain(self) -> None:
        actions = self.session.actions
        self.session.actions = []
        for a in actions:
            if not a.conn.open:
                continue
            if a.kind == "fetch":
                if (a.conn.id, a.native) in self._fetching:
                    continue                         # one snapshot in flight per symbol
                self._fetching.add((a.conn.id, a.native))
                self._spawn(self._fetch(a))
            elif a.kind == "resubscribe":
                self._resubscribe(a)

    def _resubscribe(self, a: Action) -> None:
        rules = self.session.rules[a.conn.venue]
        depth = self.session.venue_depth(a.conn.venue)
        msgs = rules.unsubscribe([a.native], depth) + rules.subscribe([a.native], depth)
        if not msgs:
            # a venue whose subscriptions live in the URL (Binance): reconnect instead
            tr = self._transports.get(a.conn.id)
            if tr is not None:
                self._spawn(tr.close())
            return
        if a.conn.venue == "kraken-v2":
            msgs = [m for m in msgs if '"instrument"' not in m]
        for m in msgs:
            self._send(a.conn, m)

    async def _http_client(self) -> Any:
        if self._http is None:
            from fastbook.live._http import HttpClient

            self._http = HttpClient(timeout=self.rest_timeout_s)
        return self._http

    def _scheduler(self, venue: str) -> Any:
        s = self._sched.get(venue)
        if s is None:
            from fastbook.live._ratelimit import SnapshotScheduler

            rules: VenueRules = self.session.rules[venue]
            s = self._sched[venue] = SnapshotScheduler(weight_limit=rules.weight_limit)
        return s

    async def _fetch(self, a: Action) -> None:
        """Fetch ``a.native``'s REST snapshot for its connection, retrying until it lands."""
        c = a.conn
        vs = self.venue_stats[c.venue]
        rules = self.session.rules[c.venue]
        url = self.session.snapshot_url(c, a.native, self.endpoint(c.venue, "rest"))
        try:
            http = await self._http_client()
            sched = self._scheduler(c.venue)
            attempt = 0
            while c.open and self.running:
                attempt += 1
                try:
                    async with sched.slot(key=a.native, weight=rules.snapshot_weight):
                        resp = await http.get(url)
                        sched.observe(resp.status, resp.headers)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    vs["snapshot_failures"] += 1
                    vs["last_failure"] = f"snapshot {a.native}: {exc}"
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                if resp.status in (418, 429):
                    vs["rate_limited"] += 1
                    continue                          # the scheduler holds everyone back
                if resp.status != 200:
                    vs["snapshot_failures"] += 1
                    vs["last_failure"] = f"snapshot {a.native}: HTTP {resp.status}"
                    if 400 <= resp.status < 500:
                        # the venue refuses the request itself (Binance -1121 "Invalid
                        # symbol."): asking again costs weight and cannot succeed
                        body = bytes(resp.body[:200]).decode("utf-8", "replace")
                        with self._locked():
                            self.session.refuse(c, a.native, f"REST snapshot refused: HTTP "
                                                             f"{resp.status} {body}")
                        return
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                if self.session.conns.get(c.id) is not c:     # closed while fetching
                    return
                now = time.time_ns()
                vs["snapshots"] += 1
                if self.recorder is not None:
                    self.recorder.rest(url, resp.body, now, conn=c.id)
                with self._locked():
                    self.session.rest(c.id, a.native, resp.body, now)
                self._fetching.discard((c.id, a.native))
                if self.session.actions:
                    self._drain()
                return
        finally:
            self._fetching.discard((c.id, a.native))

    # --- timers ----------------------------------------------------------------------

    def _sample_rates(self, now: int) -> None:
        """Once a second: the venues' frame and byte totals and the books' applied
        counts, kept for :meth:`rates` (nothing is counted per frame for it)."""
        s = self.session
        venues = {}
        for venue in s.rules:
            vc = s.venue_counts[venue]
            conns = [c for c in s.conns.values() if c.venue == venue]
            venues[venue] = (sum(c.frames for c in conns) + vc.get("frames_closed", 0),
                             sum(c.bytes for c in conns) + vc.get("bytes_closed", 0))
        books = {key: t.notices for key, t in s.tracks.items()}
        self._rate_samples.append((now, venues, books))

    def rates(self) -> tuple[dict[str, tuple[float, float]], dict[Any, float]]:
        """Messages and bytes per second per venue, and applied messages per second per
        book, over the last 10 s (less while younger; zeros before two samples)."""
        if len(self._rate_samples) < 2:
            return {}, {}
        (t0, v0, b0), (t1, v1, b1) = self._rate_samples[0], self._rate_samples[-1]
        dt = (t1 - t0) / 1e9
        venues = {v: ((m - v0.get(v, (0, 0))[0]) / dt, (n - v0.get(v, (0, 0))[1]) / dt)
                  for v, (m, n) in v1.items()}
        books = {k: (x - b0.get(k, 0)) / dt for k, x in b1.items()}
        return venues, books

    async def _timer(self, period: float = 0.1) -> None:
        session = self.session
        next_sample = 0
        while self.running:
            await asyncio.sleep(period)
            now = time.time_ns()
            with self._locked():
                session.tick(now)
                if session.actions:
                    self._drain()
                if now >= next_sample:
                    self._sample_rates(now)
                    next_sample = now + 1_000_000_000
            for c in list(session.conns.values()):
                if not c.open:
                    continue
                rules = session.rules[c.venue]
                idle = (now - c.last_frame_ns) / 1e9
                if idle > self.stall_s.get(c.venue, rules.stall_s):
                    self.venue_stats[c.venue]["stalls"] += 1
                    tr = self._transports.get(c.id)
                    if tr is not None:
                        self._spawn(tr.close())
                    continue
                ping = rules.ping()
                ping_s = self.ping_s.get(c.venue, rules.ping_s)
                if ping_s is not None and ping is not None and \
                        now - c.last_ping_ns > ping_s * 1e9 \
                        and idle > ping_s:
                    c.last_ping_ns = now
                    self.venue_stats[c.venue]["pings"] += 1
                    self._send(c, ping)
                max_age = self.max_age_s.get(c.venue, rules.max_age_s)
                if max_age is not None and not c.standby and \
                        not c.replacing and \
                        (now - c.opened_ns) / 1e9 > max_age * 0.9:
                    c.replacing = True
                    self._spawn(self._handover(c))

    async def _handover(self, old: Conn) -> None:
        """Make-before-break: a standby connection syncs its books, then replaces ``old``."""
        try:
            new = await self._connect(old.venue, old.natives, standby=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            old.replacing = False
            return
        deadline = time.monotonic() + self.handover_timeout_s
        while time.monotonic() < deadline and new.open and old.open:
            if self.session.handover_ready(new):
                break
            await asyncio.sleep(0.05)
        if not new.open:
            old.replacing = False
            return
        with self._locked():
            now = time.time_ns()
            self.session.promote(new, now)
            if self.recorder is not None:
                self.recorder.promoted(new.id, now)
        self.venue_stats[old.venue]["handovers"] += 1
        # the old connection's shard task sees it close and stops: the standby takes its
        # place as that shard's connection
        self._adopt[old.id] = new
        tr = self._transports.get(old.id)
        if tr is not None:
            await tr.close()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NOLOCK = _NoLock()
