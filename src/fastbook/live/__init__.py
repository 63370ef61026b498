"""Live books from venues' websockets, kept exact through network faults.

``fastbook.live`` drives the venue codecs of :mod:`fastbook.codecs` (the same
sync code that replays captures) over real connections::

    import fastbook as fb

    async with fb.live(["binance-spot:BTC/USDT", "okx:BTC-USDT"], depth=10) as feed:
        async for n in feed:                        # one LiveNotice per applied message
            if n.bbo_changed:
                print(n.venue, n.symbol, feed.book(n.venue, n.symbol).bbo())

For engines that are not asyncio, :class:`LiveFeed` runs the same loop in a
background thread (``start()``, consistent ``book()`` copies, ``stop()``),
with an optional callback per notice.

Specs are ``VENUE:SYMBOL``: the venue's own symbol (``BTCUSDT``, ``BTC-USD``)
or the normalized form (``BTC/USDT``, ``BTC/USDT:USDT``). ``endpoints``
overrides a venue's websocket and REST base URLs (tests, testnets, proxies):
``{"binance-spot": {"ws": "ws://127.0.0.1:9001", "rest": "http://127.0.0.1:9002"}}``.
See ``docs/live.md``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from fastbook.live._driver import Consumer, Driver
from fastbook.live._health import Alert, HealthMonitor, HealthThresholds, make_monitor
from fastbook.live._rules import ALIASES, native_symbol, rules_for
from fastbook.live._session import BookState, LiveNotice, NotLiveError, Session

__all__ = ["Alert", "BookState", "HealthMonitor", "HealthThresholds", "LiveBooks", "LiveFeed",
           "LiveNotice", "NotLiveError", "Session", "live", "parse_specs"]


def parse_specs(specs: Iterable[str], mappers: dict[str, Any] | None = None
                ) -> list[tuple[str, str, str]]:
    """``["binance-spot:BTC/USDT", ...]`` -> ``[(venue, native, symbol as given), ...]``."""
    out = []
    if isinstance(specs, str):
        specs = [specs]
    for spec in specs:
        venue, sep, symbol = str(spec).partition(":")
        if not sep or not symbol:
            raise ValueError(f"live spec {spec!r} is not VENUE:SYMBOL "
                             "(e.g. binance-spot:BTCUSDT or okx:BTC/USDT)")
        venue = rules_for(venue).venue
        mapper = (mappers or {}).get(venue)
        native = native_symbol(venue, symbol, mapper)
        out.append((venue, native, symbol))
    if not out:
        raise ValueError("no live specs given")
    return out


class LiveBooks:
    """Live books of several venues (what :func:`live` opens); see the module docstring.

    ``on_not_live``: what :meth:`book` does with a book that is not live:
    ``"raise"`` (:class:`NotLiveError`, the default) or ``"return"`` it (check
    :meth:`state`). ``queue``: the capacity of the ``async for`` consumer
    queue before it conflates per book.

    ``consolidate``: cross-venue views of the books (True: one per product; a list of
    normalized symbols; or ``{symbol: ["venue:native", ...]}`` groups), kept up to date
    from every notice and refreshed every ``refresh_s`` (0.1 s): ``feed.consolidated`` is
    the :class:`fastbook._consolrun.ConsolidatedTap` (``view(symbol)``, ``take_cbbo()``,
    ``take_arbitrage()``), ``stats()["consolidated"]`` its counts.
    ``consolidate_options``: ``quote_aliases``, ``fees``, ``stale_ns``, ``fixed_cost``,
    ``min_profit_bps``, ``max_age_ns``, ``max_rows`` (rows kept until taken, 1,000,000),
    ``refresh_s``; see ``docs/consolidated.md``.

    ``trades=True`` also subscribes each book's trade channel (default off); the codecs
    read the prints (``docs/l2-feeds.md``, "Trades"), counted per book in
    ``session.counts(venue, symbol)["trades"]``; a recording (``record=``) keeps their
    frames. (Live samples do not carry trades yet.)
    """

    def __init__(self, specs: Iterable[str], *, depth: int | None = None,
                 endpoints: dict[str, dict[str, str]] | None = None, transport: str = "auto",
                 queue: int = 10_000, on_not_live: str = "raise",
                 stale_after_s: float | None = 5.0, quiet_symbol_s: float | None = 15.0,
                 max_attempts: int = 5,
                 backoff_s: float = 0.5, backoff_cap_s: float = 30.0,
                 instruments: dict[str, Any] | None = None, record: Any = None,
                 max_age_s: dict[str, float] | None = None, latency: bool = True,
                 lock: Any = None, health: Any = None, on_alert: Any = None,
                 health_every_s: float = 1.0, consolidate: Any = None,
                 consolidate_options: dict[str, Any] | None = None, trades: bool = False,
                 **driver_options: Any) -> None:
        if on_not_live not in ("raise", "return"):
            raise ValueError(f"on_not_live must be 'raise' or 'return', not {on_not_live!r}")
        books = parse_specs(specs)
        for venue in (endpoints or {}):
            rules_for(venue)
        endpoints = {ALIASES.get(v, v): e for v, e in (endpoints or {}).items()}
        self.on_not_live = on_not_live
        self.session = Session(books, depth=depth, instruments=instruments,
                               stale_after_s=stale_after_s, quiet_symbol_s=quiet_symbol_s,
                               latency=latency, trades=trades)
        recorder = None
        if record is not None:
            recorder = _make_recorder(record, books, depth, endpoints)
        self.driver = Driver(self.session, endpoints=endpoints, transport=transport,
                             max_attempts=max_attempts, backoff_s=backoff_s,
                             backoff_cap_s=backoff_cap_s, recorder=recorder,
                             max_age_s=max_age_s, lock=lock, **driver_options)
        self._queue_capacity = queue
        self._consumer: Consumer | None = None
        self.started_ns = 0
        self.health, self._health_every_s = _health_options(health, on_alert, health_every_s)
        self.consolidated: Any = None
        self._consolidate_task: asyncio.Task[None] | None = None
        if consolidate is not None and consolidate is not False:
            self._consolidate(consolidate, consolidate_options or {})

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> LiveBooks:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.started_ns = time.time_ns()
        await self.driver.start()
        if self.health is not None:
            self.driver._spawn(_health_loop(self))
        if self.consolidated is not None:
            self._consolidate_task = asyncio.create_task(self._refresh_views())

    async def stop(self) -> None:
        task, self._consolidate_task = self._consolidate_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.driver.stop()

    # --- the consolidated view (consolidate=...) -----------------------------------------

    def _consolidate(self, select: Any, options: dict[str, Any]) -> None:
        """Consolidated views over the live books, fed by every notice (docs/consolidated.md)."""
        from fastbook._consolrun import ConsolidatedTap, NoticeTap

        options = dict(options)
        self._refresh_s = float(options.pop("refresh_s", 0.1))
        if not self._refresh_s > 0:
            raise ValueError(f"consolidate_options refresh_s must be > 0, got {self._refresh_s}")
        options.setdefault("max_rows", 1_000_000)
        self.consolidated = ConsolidatedTap(select, **options)
        self.consolidated_error = ""
        self._notice_tap = NoticeTap(self.consolidated, self.session)
        self.driver.callbacks.append(self._to_views)

    def _to_views(self, n: LiveNotice) -> None:
        try:
            self._notice_tap(n)
        except Exception as exc:        # counted in callback_errors by the driver
            self.consolidated_error = f"{n.venue}:{n.symbol}: {exc!r}"
            raise

    def write_consolidated(self, path: Any) -> list[str]:
        """Drain the consolidated tables (BBO changes, arbitrage, and health rows when the
        health monitor is on) into ``path`` (``.parquet`` or ``.arrow``), the others beside
        it; the paths written. See
        ``docs/consolidated.md`` ("The tables")."""
        from fastbook._consolrun import write_tables

        tap = self.consolidated
        if tap is None:
            raise ValueError("write_consolidated needs fb.live(..., consolidate=...)")
        meta = tap.metadata()
        tables = [("cbbo", tap.take_cbbo()), ("arbitrage", tap.take_arbitrage())]
        if self.health is not None:
            meta["health"] = {**self.health.metadata(), "summary": self.health.summary()}
            tables.append(("health", self.health.take_rows()))
        return write_tables(path, meta, tables)

    async def _refresh_views(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            lock = self.driver.lock
            if lock is None:
                self.consolidated.refresh(time.time_ns())
            else:
                with lock:
                    self.consolidated.refresh(time.time_ns())

    def __aiter__(self) -> AsyncIterator[LiveNotice]:
        if self._consumer is None:
            self._consumer = self.driver.consumer(self._queue_capacity, "async for")
        return self._iterate(self._consumer)

    async def _iterate(self, q: Consumer) -> AsyncIterator[LiveNotice]:
        while True:
            n = await q.get()
            if n is None:
                return
            self.driver.delivered(n)
            yield n

    def notices(self, capacity: int = 10_000, name: str = "consumer") -> Consumer:
        """Another bounded consumer queue (``await q.get()``)."""
        return self.driver.consumer(capacity, name)

    def on_notice(self, callback: Callable[[LiveNotice], None]) -> None:
        """Call ``callback(notice)`` on the loop for every notice (keep it quick)."""
        self.driver.callbacks.append(callback)

    def on_trade(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(trade)`` on the loop for every trade print of a book
        (:class:`fastbook.live._session.LiveTrade`: venue, symbol, exchange_ns, recv_ns,
        price, qty at the book's scales, aggressor 1 buy / 2 sell). Needs
        ``fb.live(..., trades=True)``; trades never enter the notice queues."""
        self.driver.trade_callbacks.append(callback)

    async def wait_live(self, timeout: float = 30.0, books: Iterable[tuple[str, str]] | None = None
                        ) -> bool:
        """Wait until every book (or ``books``) is live; False on timeout."""
        deadline = time.monotonic() + timeout
        keys = list(books) if books is not None else None
        while time.monotonic() < deadline:
            tracks = self.session.tracks.values() if keys is None else \
                [self.session.track(v, s) for v, s in keys]
            if all(t.state is BookState.LIVE for t in tracks):
                return True
            await asyncio.sleep(0.01)
        return False

    # --- reads -------------------------------------------------------------------------

    def state(self, venue: str, symbol: str) -> BookState:
        """The state of one book (see :class:`BookState`)."""
        return self.session.track(venue, symbol).state

    def book(self, venue: str, symbol: str) -> Any:
        """The live :class:`fastbook.Book` of ``symbol`` on ``venue``.

        A book that is not live raises :class:`NotLiveError` naming its state and
        why (or is returned as it is with ``on_not_live="return"``; None when no
        connection holds it). The object is the connection's own: after a
        reconnect a new one takes its place, so call ``book()`` again rather than
        keeping it.
        """
        t = self.session.track(venue, symbol)
        if t.state is not BookState.LIVE and self.on_not_live == "raise":
            why = f" ({t.reason})" if t.reason else ""
            raise NotLiveError(f"{t.venue}:{t.symbol} is {t.state.value}{why}")
        return self.session.book(t.venue, t.native)

    def stats(self) -> dict[str, Any]:
        """Plain data: per venue, per book (states, counts, latency percentiles), consumers."""
        return _stats(self)

    def sampler(self, every: Any, *, depth: int = 10, output: Any = None,
                **options: Any) -> Any:
        """Top-``depth`` samples of every live book (``async with feed.sampler("100ms")``),
        in the replay's sample layout, optionally streamed to ``output``; see
        :class:`fastbook.live._sample.LiveSampler` (books not live are skipped, counted)."""
        from fastbook.live._sample import LiveSampler

        return LiveSampler(self, every, depth=depth, output=output, **options)

    def serve_metrics(self, port: int = 0, host: str = "127.0.0.1") -> Any:
        """Serve :meth:`stats` for Prometheus on ``http://host:port/metrics`` (``[metrics]``
        extra; call on the running loop; each scrape reads the stats on it). Returns the
        :class:`fastbook.metrics.PrometheusServer` (``.port``, ``.url``, ``.close()``)."""
        from fastbook._live_cli import serve_metrics

        return serve_metrics(self, port, host)


def live(specs: Iterable[str], **options: Any) -> LiveBooks:
    """Live books for ``specs`` (``async with fb.live([...]) as feed``); see :class:`LiveBooks`."""
    return LiveBooks(specs, **options)


class LiveFeed:
    """The live driver in a background thread, for engines that are not asyncio.

    ``LiveFeed(specs, **options).start()`` returns once the loop runs;
    ``book(venue, symbol)`` returns a *copy* taken under the driver's lock (a
    consistent book, never half a message); ``state``/``stats`` as in
    :class:`LiveBooks`; ``callback=`` (and ``on_alert=``) are called on the
    driver's thread; ``stop()`` closes every connection and joins the thread.
    """

    def __init__(self, specs: Iterable[str], *, callback: Callable[[LiveNotice], None] | None
                 = None, uvloop: bool = False, **options: Any) -> None:
        self._lock = threading.Lock()
        self.books = LiveBooks(specs, lock=self._lock, **options)
        if callback is not None:
            self.books.on_notice(callback)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._uvloop = uvloop

    def start(self, timeout: float = 10.0) -> LiveFeed:
        if self._thread is not None:
            raise RuntimeError("this LiveFeed was started already")
        self._thread = threading.Thread(target=self._run, name="fastbook-live", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the live driver's thread did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = _new_loop(self._uvloop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:     # reported by start() or stop()
            self._error = exc
            self._started.set()
        finally:
            try:
                _finish(loop)
            finally:
                loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        try:
            await self.books.start()
        finally:
            self._started.set()
        await self._stopped.wait()
        await self.books.stop()

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stopped is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("the live driver's thread did not stop")

    def __enter__(self) -> LiveFeed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self, venue: str, symbol: str) -> BookState:
        return self.books.state(venue, symbol)

    def book(self, venue: str, symbol: str) -> Any:
        """A consistent copy of the live book (see :meth:`LiveBooks.book`)."""
        with self._lock:
            b = self.books.book(venue, symbol)
            return None if b is None else b.copy()

    def wait_live(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(t.state is BookState.LIVE for t in self.books.session.tracks.values()):
                return True
            time.sleep(0.01)
        return False

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self.books.stats()

    @property
    def health(self) -> HealthMonitor | None:
        """The :class:`HealthMonitor` (None without ``health=`` or ``on_alert=``)."""
        return self.books.health

    def consolidated_bbo(self, symbol: str) -> tuple[Any, ...]:
        """The consolidated BBO of ``symbol`` (``Consolidated.bbo()``: prices and sizes at
        the view's common scales, and the venues at each side), read under the driver's
        lock, so never half an update (needs ``consolidate=``)."""
        with self._lock:
            return self._tap().view(symbol).bbo()

    def take_consolidated(self) -> tuple[Any, Any]:
        """The consolidated-BBO change rows and the arbitrage rows since the last call,
        taken under the driver's lock (``docs/consolidated.md``, "The tables")."""
        with self._lock:
            tap = self._tap()
            return tap.take_cbbo(), tap.take_arbitrage()

    def _tap(self) -> Any:
        tap = self.books.consolidated
        if tap is None:
            raise ValueError("this LiveFeed was not opened with consolidate=...")
        return tap


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does before closing its loop: cancel and await the tasks left
    (a connection attempt or REST fetch caught by ``stop()``), let the callbacks they
    leave run (a transport's connection-lost, which closes its socket), and close the
    async generators, so no socket or transport outlives the loop unclosed."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
    loop.run_until_complete(loop.shutdown_asyncgens())


def _new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


def _make_recorder(target: Any, books: list[tuple[str, str, str]], depth: int | None,
              endpoints: dict[str, Any]) -> Any:
    if hasattr(target, "received"):
        return target
    from fastbook.live._record import LiveRecorder

    return LiveRecorder(target, meta={"specs": [f"{v}:{s}" for v, _, s in books],
                                      "depth": depth, "endpoints": endpoints})


#: A venue's summary state is its least healthy book's, in this order (worst first).
_WORST_FIRST = ("down", "stale", "resyncing", "syncing", "connecting", "live")


def _health_options(health: Any, on_alert: Any, every_s: float
                    ) -> tuple[HealthMonitor | None, float]:
    """``fb.live(health=True | dict | HealthThresholds, on_alert=callable)``: the monitor
    (None when off) and the period of its check (docs/live.md, "Health and alerts")."""
    if not isinstance(every_s, int | float) or isinstance(every_s, bool) or not every_s > 0:
        raise ValueError(f"health_every_s must be a number > 0, not {every_s!r}")
    return make_monitor(health, on_alert), float(every_s)


async def _health_loop(feed: LiveBooks) -> None:
    """Every ``health_every_s``: the stats (histogram buckets included, for windowed
    p99s) observed by ``feed.health`` under the driver's lock; the alert callbacks run
    after it is released (so they may call ``feed.book()``). A failed check is counted.
    The first check runs at once, before any connection counted anything, so the
    windows start from zero."""
    monitor = feed.health
    assert monitor is not None                      # started only with a monitor
    while feed.driver.running:
        try:
            with feed.driver._locked():
                st = _stats(feed, buckets=True, health=False)
                alerts = monitor.observe_live(st, time.time_ns(), deliver=False)
        except Exception:
            monitor.check_errors += 1
            alerts = []
        monitor.deliver(alerts)
        await asyncio.sleep(feed._health_every_s)


def _stats(feed: LiveBooks, *, buckets: bool = False, health: bool = True) -> dict[str, Any]:
    s = feed.session
    d = feed.driver
    now = time.time_ns()
    venue_rates, book_rates = d.rates()
    venues: dict[str, Any] = {}
    for venue in s.rules:
        conns = [c for c in s.conns.values() if c.venue == venue]
        states = [t.state.value for t in s.tracks.values() if t.venue == venue]
        vc = s.venue_counts[venue]
        venues[venue] = {
            "state": "down" if venue in s.down else
                     (min(states, key=_WORST_FIRST.index) if states else "connecting"),
            "down_reason": s.down.get(venue, ""),
            "connections": len(conns),
            "messages": sum(c.frames for c in conns) + vc.get("frames_closed", 0),
            "bytes": sum(c.bytes for c in conns) + vc.get("bytes_closed", 0),
            "msgs_per_s": round(venue_rates.get(venue, (0.0, 0.0))[0], 1),
            "bytes_per_s": round(venue_rates.get(venue, (0.0, 0.0))[1], 1),
            "errors": vc.get("errors", 0), "resyncs": vc.get("resyncs", 0),
            "disconnects": vc.get("disconnects", 0),
            **d.venue_stats.get(venue, {}),
        }
    books: dict[Any, Any] = {}
    for (venue, native), t in s.tracks.items():
        counts = s.counts(venue, native)
        c = t.primary
        books[(venue, native)] = {
            "symbol": t.symbol, "state": t.state.value, "reason": t.reason,
            "messages": counts.get("messages", 0), "applied": counts.get("applied", 0),
            "snapshots": counts.get("snapshots", 0), "gaps": counts.get("gaps", 0),
            "resyncs": counts.get("resyncs", 0), "errors": counts.get("malformed", 0),
            "checksum_failed": counts.get("checksum_failed", 0),
            "notices": t.notices, "state_changes": t.state_changes,
            "applied_per_s": round(book_rates.get((venue, native), 0.0), 1),
            "age_ms": None if not t.last_applied_ns else (now - t.last_applied_ns) / 1e6,
            "silent_ms": None if c is None else (now - c.last_frame_ns) / 1e6,
            "last_applied_ns": t.last_applied_ns,
            "latency": {k: h.to_dict(buckets=buckets) for k, h in t.hist.items()},
            "counts": counts,
        }
    out = {"venues": venues, "books": books,
           "consumers": [q.stats() for q in d.consumers],
           "callback_errors": d.callback_errors, "transport": d.transport,
           "late": dict(s.late)}
    if health and feed.health is not None:
        out["health"] = feed.health.summary()
    if feed.consolidated is not None:
        out["consolidated"] = {**feed.consolidated.stats(), "error": feed.consolidated_error}
    return out


class _CallableModule(type(__import__("sys"))):      # type: ignore[misc]
    """``fastbook.live`` is both this package and the function :func:`live`.

    Importing the package makes ``fastbook.live`` the module, so the module
    itself is callable: ``fb.live([...])`` is ``fastbook.live.live([...])``.
    """

    def __call__(self, specs: Iterable[str], **options: Any) -> LiveBooks:
        return live(specs, **options)


__import__("sys").modules[__name__].__class__ = _CallableModule
