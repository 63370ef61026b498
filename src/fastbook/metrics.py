"""Measuring the live driver: latency histograms, rates, and Prometheus export.

* :class:`LatencyHistogram`: int64 nanosecond latencies in log-linear buckets,
  percentiles within 1% (the compiled ``fastbook._hist``, or its twin
  ``fastbook._pyhist`` under ``FASTBOOK_NO_EXTENSIONS=1``).
* :class:`RateMeter`: messages and bytes per second over the last N seconds.
* :func:`serve_prometheus`: an HTTP endpoint (``fastbook-lob[metrics]``) that reads the
  driver's stats on each scrape. The stats shape is documented in ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fastbook import _select
from fastbook._extras import missing

_mod = _select.load("_hist", "_pyhist", "latency histogram")
if TYPE_CHECKING:
    from fastbook._hist import LatencyHistogram
else:
    LatencyHistogram = _mod.LatencyHistogram

__all__ = ["BOOK_STATES", "PROMETHEUS_BUCKETS_NS", "LatencyHistogram", "PrometheusServer",
           "RateMeter", "StatsCollector", "cumulative_buckets", "serve_prometheus"]

#: The book states the driver reports; the state gauge is one-hot over these
#: (a state not listed here is exported too, as its own label value).
BOOK_STATES = ("connecting", "syncing", "live", "resyncing", "stale", "down")

#: Upper bounds (ns) of the Prometheus histogram buckets: 1-2-5 from 1 us to 10 s.
PROMETHEUS_BUCKETS_NS = (*(m * 10**e for e in range(3, 10) for m in (1, 2, 5)), 10**10)

_NS = 1_000_000_000


class RateMeter:
    """Messages and bytes per second over a sliding window of the last ``window`` seconds.

    ``add(n_bytes, now_ns)`` is called per message with ``time.monotonic_ns()``;
    counts go into one slot per whole second (a ring of ``window`` slots), so a
    rate is the window's total over the time it covers: ``window`` seconds, or
    less (at least one second) while the meter is younger than that. Times that
    go backwards are counted in the current second.
    """

    __slots__ = ("_bytes", "_msgs", "_next_ns", "_sec", "_slot_bytes", "_slot_msgs",
                 "_start_ns", "bytes_total", "messages_total", "window")

    def __init__(self, window: int = 10) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"RateMeter: window must be a whole number of seconds >= 1, "
                             f"got {window!r}")
        self.window = window
        self._slot_msgs = [0] * window
        self._slot_bytes = [0] * window
        self._msgs = 0       # the current second's counts, folded into a slot on rollover
        self._bytes = 0
        self._sec = -1
        self._next_ns = -(1 << 63)  # the first add() starts the clock
        self._start_ns = 0
        self.messages_total = 0
        self.bytes_total = 0

    def add(self, n_bytes: int, now_ns: int) -> None:
        """Count one message of ``n_bytes`` at ``now_ns`` (monotonic nanoseconds)."""
        if now_ns >= self._next_ns:
            self._roll(now_ns)
        self._msgs += 1
        self._bytes += n_bytes

    def _roll(self, now_ns: int) -> None:
        """Move to the second of ``now_ns``: store the finished one, clear skipped slots."""
        sec = now_ns // _NS
        if self._sec < 0:
            self._start_ns = now_ns
        else:
            self._fold()
            for s in range(self._sec + 1, min(sec, self._sec + self.window) + 1):
                self._slot_msgs[s % self.window] = 0
                self._slot_bytes[s % self.window] = 0
        self._sec = sec
        self._next_ns = (sec + 1) * _NS

    def _fold(self) -> None:
        i = self._sec % self.window
        self._slot_msgs[i] += self._msgs
        self._slot_bytes[i] += self._bytes
        self.messages_total += self._msgs
        self.bytes_total += self._bytes
        self._msgs = self._bytes = 0

    def _sums(self, now_ns: int) -> tuple[int, int, float]:
        if self._sec < 0:
            return 0, 0, 1.0
        if now_ns >= self._next_ns:
            self._roll(now_ns)
        msgs = sum(self._slot_msgs) + self._msgs
        byts = sum(self._slot_bytes) + self._bytes
        span = min(float(self.window), max(1.0, (now_ns - self._start_ns) / _NS))
        return msgs, byts, span

    def rates(self, now_ns: int) -> tuple[float, float]:
        """(messages per second, bytes per second) over the window ending at ``now_ns``."""
        msgs, byts, span = self._sums(now_ns)
        return msgs / span, byts / span

    def to_dict(self, now_ns: int) -> dict[str, float]:
        """Plain data: messages_per_s, bytes_per_s, messages (total), bytes (total)."""
        mps, bps = self.rates(now_ns)
        return {"messages_per_s": mps, "bytes_per_s": bps,
                "messages": self.messages_total + self._msgs,
                "bytes": self.bytes_total + self._bytes}


def cumulative_buckets(latency: Any, bounds_ns: tuple[int, ...] = PROMETHEUS_BUCKETS_NS
                       ) -> list[tuple[float, int]] | None:
    """Prometheus ``le`` buckets (seconds, cumulative count) from a histogram's buckets.

    ``latency`` is a :class:`LatencyHistogram` or its ``to_dict(buckets=True)``
    (``"buckets"``: ``{index: count}``); None when it carries no buckets. A
    fastbook bucket counts under the first bound at or above its upper edge, so a
    bound can undercount values within 1% below it (the bucket width). The last
    entry is ``+Inf`` with the total count.
    """
    if isinstance(latency, Mapping):
        sparse = latency.get("buckets")
        if not isinstance(sparse, Mapping):
            return None
        items = sorted((int(i), int(c)) for i, c in sparse.items())
    elif hasattr(latency, "buckets"):
        counts = latency.buckets
        items = [(int(i), int(counts[i])) for i in counts.nonzero()[0]]
    else:
        return None
    out: list[tuple[float, int]] = []
    total, k = 0, 0
    for bound in bounds_ns:
        while k < len(items) and _mod.bucket_high(items[k][0]) <= bound:
            total += items[k][1]
            k += 1
        out.append((bound / _NS, total))
    out.append((math.inf, total + sum(c for _, c in items[k:])))
    return out


def _num(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not bool), else None (skipped)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, np.generic)
                                           and value.dtype.kind in "iuf"):
        return float(value)
    return None


_BOOK_COUNTERS = ("messages", "applied", "gaps", "resyncs", "errors", "conflated", "bytes")
_VENUE_COUNTERS = ("messages", "bytes", "errors", "reconnects", "gaps", "resyncs", "conflated")
_QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"), ("p999", "0.999"))


class StatsCollector:
    """A prometheus_client collector that calls ``stats()`` on each scrape.

    Unknown keys and values that are not numbers are ignored; when ``stats()``
    raises, the scrape still answers and ``fastbook_stats_errors_total`` counts it.
    """

    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._stats = stats
        self._pc = _prometheus()
        self.stats_errors = 0

    def describe(self) -> list[Any]:
        """Nothing up front: the series depend on the stats (no collect() at register)."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families of one ``stats()`` call."""
        core = self._pc.core
        try:
            stats = self._stats()
            if not isinstance(stats, Mapping):
                raise TypeError(f"stats() returned {type(stats).__name__}, not a mapping")
            families = list(self._families(core, stats))
        except Exception:
            self.stats_errors += 1
            families = []
        err = core.CounterMetricFamily("fastbook_stats_errors",
                                       "Scrapes where reading the driver's stats failed")
        err.add_metric([], self.stats_errors)
        yield from families
        yield err

    def _families(self, core: Any, stats: Mapping[str, Any]) -> Iterator[Any]:
        venues = stats.get("venues")
        yield from self._venues(core, venues if isinstance(venues, Mapping) else {})
        books = stats.get("books")
        yield from self._books(core, books if isinstance(books, Mapping) else {})
        consumers = stats.get("consumers")
        yield from self._consumers(core, consumers if isinstance(consumers, list) else [])

    def _venues(self, core: Any, venues: Mapping[Any, Any]) -> Iterator[Any]:
        labels = ["venue"]
        counters = {k: core.CounterMetricFamily(f"fastbook_venue_{k}", f"Venue {k}",
                                                labels=labels) for k in _VENUE_COUNTERS}
        conns = core.GaugeMetricFamily("fastbook_venue_connections", "Open connections",
                                       labels=labels)
        state = core.GaugeMetricFamily("fastbook_venue_state", "Venue state (one-hot)",
                                       labels=["venue", "state"])
        for venue, v in venues.items():
            if not isinstance(v, Mapping):
                continue
            lv = [str(venue)]
            for k, fam in counters.items():
                if (x := _num(v.get(k))) is not None:
                    fam.add_metric(lv, x)
            if (x := _num(v.get("connections"))) is not None:
                conns.add_metric(lv, x)
            _one_hot(state, lv, v.get("state"))
        yield from counters.values()
        yield conns
        yield state

    def _books(self, core: Any, books: Mapping[Any, Any]) -> Iterator[Any]:
        labels = ["venue", "symbol"]
        counters = {k: core.CounterMetricFamily(f"fastbook_book_{k}", f"Book {k}",
                                                labels=labels) for k in _BOOK_COUNTERS}
        age = core.GaugeMetricFamily("fastbook_book_age_seconds",
                                     "Time since the book's last update", labels=labels)
        state = core.GaugeMetricFamily("fastbook_book_state", "Book state (one-hot)",
                                       labels=[*labels, "state"])
        lat = ["venue", "symbol", "kind"]
        quant = core.GaugeMetricFamily("fastbook_latency_quantile_seconds",
                                       "Latency percentile (within 1%)",
                                       labels=[*lat, "quantile"])
        lmax = core.GaugeMetricFamily("fastbook_latency_max_seconds", "Largest latency",
                                      labels=lat)
        neg = core.CounterMetricFamily("fastbook_latency_negative",
                                       "Negative latencies (clock steps), not bucketed",
                                       labels=lat)
        hist = core.HistogramMetricFamily("fastbook_latency_seconds", "Latency",
                                          labels=lat)
        for key, b in books.items():
            if not isinstance(b, Mapping):
                continue
            lb = _book_labels(key)
            for k, fam in counters.items():
                if (x := _num(b.get(k))) is not None:
                    fam.add_metric(lb, x)
            if (x := _num(b.get("age_ms"))) is not None:
                age.add_metric(lb, x / 1e3)
            _one_hot(state, lb, b.get("state"))
            latency = b.get("latency")
            for kind, d in (latency.items() if isinstance(latency, Mapping) else ()):
                ll = [*lb, str(kind)]
                plain = d.to_dict() if hasattr(d, "to_dict") else d
                if not isinstance(plain, Mapping):
                    continue
                for key_q, q in _QUANTILES:
                    if (x := _num(plain.get(key_q))) is not None:
                        quant.add_metric([*ll, q], x / _NS)
                if (x := _num(plain.get("max"))) is not None:
                    lmax.add_metric(ll, x / _NS)
                if (x := _num(plain.get("negative"))) is not None:
                    neg.add_metric(ll, x)
                buckets = cumulative_buckets(d)
                if buckets is not None:
                    total = _num(plain.get("sum")) or 0.0
                    hist.add_metric(ll, [(_le(le), c) for le, c in buckets], total / _NS)
        yield from counters.values()
        yield from (age, state, quant, lmax, neg, hist)

    def _consumers(self, core: Any, consumers: list[Any]) -> Iterator[Any]:
        labels = ["consumer"]
        queue = core.GaugeMetricFamily("fastbook_consumer_queue", "Items waiting",
                                       labels=labels)
        cap = core.GaugeMetricFamily("fastbook_consumer_capacity", "Queue capacity",
                                     labels=labels)
        conf = core.CounterMetricFamily("fastbook_consumer_conflated",
                                        "Updates conflated for a slow consumer",
                                        labels=labels)
        for i, c in enumerate(consumers):
            if not isinstance(c, Mapping):
                continue
            lc = [str(c.get("name", i))]
            for fam, k in ((queue, "queue"), (cap, "capacity"), (conf, "conflated")):
                if (x := _num(c.get(k))) is not None:
                    fam.add_metric(lc, x)
        yield from (queue, cap, conf)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _book_labels(key: Any) -> list[str]:
    """(venue, symbol) from a ``("binance-spot", "BTCUSDT")`` key (or ``"venue/symbol"``)."""
    if isinstance(key, tuple) and len(key) == 2:
        return [str(key[0]), str(key[1])]
    venue, _, symbol = str(key).partition("/")
    return [venue, symbol]


def _one_hot(family: Any, labels: list[str], state: Any) -> None:
    if not isinstance(state, str):
        return
    for s in (*BOOK_STATES, *(() if state in BOOK_STATES else (state,))):
        family.add_metric([*labels, s], 1.0 if s == state else 0.0)


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError:
        raise missing("metrics", "Prometheus export") from None
    return prometheus_client


class PrometheusServer:
    """A running ``/metrics`` endpoint: ``.port``, ``.url``, ``.close()``; a context manager."""

    def __init__(self, server: Any, thread: Any, host: str, registry: Any,
                 collector: StatsCollector) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port: int = server.server_address[1]
        self.registry = registry
        self.collector = collector

    @property
    def url(self) -> str:
        """The address to scrape, ``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_prometheus(stats: Callable[[], Mapping[str, Any]], port: int = 0,
                     host: str = "127.0.0.1", *, registry: Any = None,
                     process_metrics: bool = False) -> PrometheusServer:
    """Serve ``stats()`` as Prometheus metrics on ``http://host:port/metrics``.

    ``stats`` is called on each scrape (from the server's thread) and returns the
    driver's stats as plain data (``docs/metrics.md``). ``port=0`` picks a free
    port. A private registry is used unless ``registry`` is given;
    ``process_metrics=True`` adds prometheus_client's process and platform
    collectors to it. Needs ``fastbook-lob[metrics]``.
    """
    pc = _prometheus()
    if registry is None:
        registry = pc.CollectorRegistry(auto_describe=False)
        if process_metrics:
            pc.ProcessCollector(registry=registry)
            pc.PlatformCollector(registry=registry)
    collector = StatsCollector(stats)
    registry.register(collector)
    try:
        server, thread = pc.start_http_server(port, addr=host, registry=registry)
    except Exception:
        registry.unregister(collector)
        raise
    return PrometheusServer(server, thread, host, registry, collector)
