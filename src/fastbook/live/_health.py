"""Health of the venues behind a cross-venue view: rates, staleness, latency, alerts.

A :class:`HealthMonitor` is fed one neutral *observation* per venue at a time
(:meth:`HealthMonitor.observe`: the venue's state, cumulative message, error and
resync counts, the time of its newest applied update, optional latency p99s and
connection count), so the same monitor runs from the live driver
(:meth:`HealthMonitor.observe_live` adapts ``feed.stats()``) and from a replay.
It does no I/O and keeps no clock of its own: every time is the caller's ``now_ns``.

Rates are deltas over a sliding window of the venue's observations. Alerts are
edge-triggered: an :class:`Alert` when a condition starts and one with level
``"cleared"`` when it ends, each passed to the ``on_alert`` callbacks and logged
on ``fastbook.live.health``. See ``docs/live.md``, "Health and alerts".

Example::

    mon = HealthMonitor(HealthThresholds(stale_s=2.0), on_alert=print)
    mon.observe("okx", now_ns, state="live", messages=10, errors=0, resyncs=0,
                last_update_ns=now_ns - 3_000_000_000)     # -> a "stale" Alert
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fastbook import _select

__all__ = ["ALERT_KINDS", "HEALTH_DTYPE", "STATE_CODES", "Alert", "HealthMonitor",
           "HealthThresholds", "make_monitor"]

log = logging.getLogger("fastbook.live.health")

_hist = _select.load("_hist", "_pyhist", "latency histogram")

#: Alert kinds, in the order of their bits in the ``alerts`` bitmask of :data:`HEALTH_DTYPE`.
ALERT_KINDS = ("down", "stale", "latency", "errors", "resyncs", "rate")

#: Venue states and their codes in :data:`HEALTH_DTYPE` (the index in this tuple).
STATE_CODES = ("live", "stale", "resyncing", "syncing", "connecting", "down")

#: One row per observation (:meth:`HealthMonitor.take_rows`), every field int64:
#:
#: * ``ts_ns``: the observation's time, ns since the epoch;
#: * ``venue``: index of the venue in :attr:`HealthMonitor.venues` (first-seen order);
#: * ``state``: index of the venue state in :data:`STATE_CODES`;
#: * ``messages``, ``errors``, ``resyncs``: the cumulative counts observed;
#: * ``age_ns``: time since the venue's last applied update (-1: none yet);
#: * ``exch_to_recv_p99_ns``, ``recv_to_applied_p99_ns``: the latency p99s observed
#:   (-1: not given);
#: * ``connections``: open connections (-1: not given);
#: * ``alerts``: the kinds active after the observation, bit ``i`` for ``ALERT_KINDS[i]``.
HEALTH_DTYPE = np.dtype([(name, np.int64) for name in (
    "ts_ns", "venue", "state", "messages", "errors", "resyncs", "age_ns",
    "exch_to_recv_p99_ns", "recv_to_applied_p99_ns", "connections", "alerts")])

_NS = 1_000_000_000
_LATENCY_KEYS = (("exchange_to_receive", "exch_to_recv_p99_ns"),
                 ("receive_to_applied", "recv_to_applied_p99_ns"))


@dataclass(frozen=True)
class HealthThresholds:
    """When a venue is unhealthy. Every limit is checked in ``__post_init__``
    (a ValueError names the field); ``None`` turns an optional check off.

    * ``stale_s`` (5.0): ``stale`` when no update was applied for that long (a venue
      that never had one counts from its first observation);
    * ``exch_to_recv_p99_ns`` (1 s; venue clocks differ from ours) and
      ``recv_to_applied_p99_ns`` (10 ms; the driver's own p99 is a few us):
      ``latency`` when a p99 is above its limit;
    * ``error_burst`` (5) / ``resync_burst`` (3): ``errors`` / ``resyncs`` when at
      least that many happened within the last ``window_s`` (60.0) seconds;
    * ``min_msgs_per_s`` (None): ``rate`` when fewer messages per second than this
      arrived over a full window;
    * ``down_s`` (10.0): ``down`` when the venue's state is down, or it had no open
      connection for that long (``None``: only the state counts).
    """

    stale_s: float = 5.0
    exch_to_recv_p99_ns: int | None = 1_000_000_000
    recv_to_applied_p99_ns: int | None = 10_000_000
    error_burst: int = 5
    resync_burst: int = 3
    window_s: float = 60.0
    min_msgs_per_s: float | None = None
    down_s: float | None = 10.0

    def __post_init__(self) -> None:
        for name in ("stale_s", "window_s"):
            _positive(name, getattr(self, name), optional=False)
        for name in ("exch_to_recv_p99_ns", "recv_to_applied_p99_ns", "down_s"):
            _positive(name, getattr(self, name), optional=True)
        for name in ("error_burst", "resync_burst"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"HealthThresholds.{name} must be an integer >= 1, not {v!r}")
        v = self.min_msgs_per_s
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                              or not math.isfinite(v) or v < 0):
            raise ValueError(f"HealthThresholds.min_msgs_per_s must be a number >= 0 or None, "
                             f"not {v!r}")

    @classmethod
    def from_options(cls, options: HealthThresholds | Mapping[str, Any] | bool | None
                     ) -> HealthThresholds:
        """Thresholds from ``fb.live(health=...)``: True/None (defaults), a dict of fields
        (an unknown key is a ValueError naming it), or thresholds as they are."""
        if isinstance(options, HealthThresholds):
            return options
        if options is None or options is True:
            return cls()
        if isinstance(options, Mapping):
            known = {f.name for f in dataclasses.fields(cls)}
            for key in options:
                if key not in known:
                    raise ValueError(f"health: unknown threshold {key!r} "
                                     f"(known: {', '.join(sorted(known))})")
            return cls(**options)
        raise ValueError(f"health must be True, a dict of thresholds or HealthThresholds, "
                         f"not {options!r}")


def _positive(name: str, v: Any, *, optional: bool) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        more = " or None" if optional else ""
        raise ValueError(f"HealthThresholds.{name} must be a number > 0{more}, not {v!r}")


@dataclass(frozen=True)
class Alert:
    """A health condition of ``venue`` that started (level ``"warning"``, or
    ``"critical"`` for ``down``) or ended (``"cleared"``) at ``ts_ns``.

    ``kind`` is one of :data:`ALERT_KINDS`; ``value`` is what was measured and
    ``limit`` the threshold it crossed (seconds for ``stale``/``down``, ns for
    ``latency``, counts in the window for ``errors``/``resyncs``, msgs/s for ``rate``).
    """

    ts_ns: int
    venue: str
    kind: str
    level: str
    message: str
    value: float
    limit: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Venue:
    """What the monitor remembers of one venue."""

    index: int
    first_ns: int
    window: deque[tuple[int, int, int, int]] = field(default_factory=deque)
    state: str = "connecting"
    last: dict[str, Any] = field(default_factory=dict)
    no_conn_since: int | None = None
    reason: str = ""
    active: dict[str, Alert] = field(default_factory=dict)
    lat_window: dict[tuple[Any, str], deque[tuple[int, Any, Any]]] = \
        field(default_factory=dict)


class HealthMonitor:
    """Per-venue health from observations; edge-triggered alerts (module docstring).

    ``on_alert``: a callable or callables given every :class:`Alert` (raised and
    cleared); one that raises is counted in ``callback_errors``, never propagated.
    ``max_rows``: how many rows :meth:`take_rows` holds between calls (the oldest
    beyond it are dropped and counted in ``rows_dropped``, so a monitor nobody
    reads rows from stays bounded).
    """

    def __init__(self, thresholds: HealthThresholds | None = None, *,
                 on_alert: Callable[[Alert], Any] | Iterable[Callable[[Alert], Any]] | None
                 = None, max_rows: int = 100_000) -> None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"HealthMonitor max_rows must be an integer >= 1, not {max_rows!r}")
        self.thresholds = thresholds if thresholds is not None else HealthThresholds()
        if on_alert is None:
            self.callbacks: list[Callable[[Alert], Any]] = []
        elif callable(on_alert):
            self.callbacks = [on_alert]
        else:
            self.callbacks = list(on_alert)
        self.venues: list[str] = []
        self._v: dict[str, _Venue] = {}
        self._rows: deque[tuple[int, ...]] = deque()
        self.max_rows = max_rows
        self.rows_dropped = 0
        self.callback_errors = 0
        self.raised = 0
        self.cleared = 0
        self.clock_backwards = 0
        self.counter_resets = 0
        self.check_errors = 0
        self.history: deque[Alert] = deque(maxlen=1000)

    # --- input ---------------------------------------------------------------------

    def observe(self, venue: str, now_ns: int, *, state: str, messages: int, errors: int,
                resyncs: int, last_update_ns: int | None,
                exch_to_recv_p99_ns: int | None = None,
                recv_to_applied_p99_ns: int | None = None,
                connections: int | None = None, reason: str = "",
                deliver: bool = True) -> list[Alert]:
        """One observation of ``venue`` at ``now_ns``; returns the alerts it raised or cleared.

        ``messages``/``errors``/``resyncs`` are cumulative counts (a count that goes
        down restarts the venue's window, counted in ``counter_resets``);
        ``last_update_ns`` is the newest applied update (None or 0: none yet);
        ``reason`` says why a venue is down (it goes into the alert's message). An
        observation older than the venue's previous one is ignored and counted in
        ``clock_backwards``. Bad values are a ValueError naming the venue and field.
        ``deliver=False`` leaves calling the callbacks to :meth:`deliver` (the driver
        observes under its lock and calls them after releasing it).
        """
        state = _check_observation(venue, now_ns, state, messages, errors, resyncs,
                                   last_update_ns, connections)
        v = self._venue(venue, now_ns)
        if v.window and now_ns < v.window[-1][0]:
            self.clock_backwards += 1
            return []
        self._slide(v, now_ns, messages, errors, resyncs)
        v.state = state
        v.reason = str(reason)
        if connections is not None and connections > 0:
            v.no_conn_since = None
        elif connections == 0 and v.no_conn_since is None:
            v.no_conn_since = now_ns
        age = None if not last_update_ns else now_ns - last_update_ns
        v.last = {"ts_ns": now_ns, "messages": messages, "errors": errors, "resyncs": resyncs,
                  "age_ns": age, "exch_to_recv_p99_ns": exch_to_recv_p99_ns,
                  "recv_to_applied_p99_ns": recv_to_applied_p99_ns, "connections": connections}
        out = self._evaluate(venue, v, now_ns)
        if len(self._rows) >= self.max_rows:
            self._rows.popleft()
            self.rows_dropped += 1
        self._rows.append(self._row(v, now_ns))
        if deliver:
            self.deliver(out)
        return out

    def observe_live(self, stats: Mapping[str, Any], now_ns: int, *, deliver: bool = True
                     ) -> list[Alert]:
        """Observe every venue of a ``fb.live(...).stats()`` result at ``now_ns``.

        A venue's state, connections and counts are its ``venues`` row; its last
        update is the newest ``last_applied_ns`` of its books (or ``now - age_ms``
        where a row has no such field); its latency p99s are the worst across its
        books. Where a latency dict carries ``buckets`` (``to_dict(buckets=True)``,
        as the driver's own health check passes them) the p99 is over the last
        ``window_s`` only, so a spike shows even after hours of good samples;
        otherwise it is the histogram's p99 since the start.
        """
        books_of: dict[str, list[tuple[Any, Mapping[str, Any]]]] = {}
        for key, row in stats.get("books", {}).items():
            books_of.setdefault(key[0], []).append((key, row))
        out: list[Alert] = []
        for venue, row in stats.get("venues", {}).items():
            books = books_of.get(venue, [])
            last = 0
            for _, b in books:
                t = b.get("last_applied_ns")
                if t is None and b.get("age_ms") is not None:
                    t = now_ns - int(b["age_ms"] * 1e6)
                last = max(last, t or 0)
            v = self._venue(venue, now_ns)
            if v.window and now_ns < v.window[-1][0]:
                self.clock_backwards += 1
                continue
            p99s = {arg: self._worst_p99(v, books, kind, now_ns) for kind, arg in _LATENCY_KEYS}
            out += self.observe(venue, now_ns, state=str(row.get("state", "connecting")),
                                messages=int(row.get("messages", 0)),
                                errors=int(row.get("errors", 0)),
                                resyncs=int(row.get("resyncs", 0)), last_update_ns=last,
                                connections=row.get("connections"), deliver=deliver,
                                reason=_down_reason(row, books), **p99s)
        return out

    # --- output --------------------------------------------------------------------

    def alerts(self) -> list[Alert]:
        """The alerts active now (raised and not yet cleared), by venue then kind."""
        return [a for venue in self.venues for k in ALERT_KINDS
                for a in [self._v[venue].active.get(k)] if a is not None]

    def summary(self) -> dict[str, Any]:
        """Plain data: ``venues`` (per venue: state, msgs_per_s, age_ms, errors_per_min,
        resyncs_per_min, the latency p99s in ns, connections, active alert kinds), the
        ``active`` alerts, and the monitor's counts."""
        venues = {}
        for venue in self.venues:
            v = self._v[venue]
            rate, err, res = self._rates(v)
            age = v.last.get("age_ns")
            venues[venue] = {
                "state": v.state, "msgs_per_s": round(rate, 1),
                "age_ms": None if age is None else age / 1e6,
                "errors_per_min": round(err, 2), "resyncs_per_min": round(res, 2),
                "exchange_to_receive_p99_ns": v.last.get("exch_to_recv_p99_ns"),
                "receive_to_applied_p99_ns": v.last.get("recv_to_applied_p99_ns"),
                "connections": v.last.get("connections"),
                "alerts": [k for k in ALERT_KINDS if k in v.active]}
        return {"venues": venues, "active": [a.to_dict() for a in self.alerts()],
                "raised": self.raised, "cleared": self.cleared,
                "callback_errors": self.callback_errors,
                "clock_backwards": self.clock_backwards, "counter_resets": self.counter_resets,
                "check_errors": self.check_errors, "rows_dropped": self.rows_dropped}

    def take_rows(self) -> npt.NDArray[Any]:
        """The observations since the last call as a :data:`HEALTH_DTYPE` array (for
        Parquet: ``pyarrow.Table.from_pandas`` or column by column)."""
        rows, self._rows = self._rows, deque()
        return np.array(list(rows), dtype=HEALTH_DTYPE)

    def metadata(self) -> dict[str, Any]:
        """What the codes in :meth:`take_rows` mean, as plain data (for the Parquet
        file's key-value metadata, JSON-encoded): the venue names by index, the state
        codes, the alert bits and the thresholds."""
        return {"venues": list(self.venues), "state_codes": list(STATE_CODES),
                "alert_kinds": list(ALERT_KINDS),
                "thresholds": dataclasses.asdict(self.thresholds)}

    # --- internals -----------------------------------------------------------------

    def _venue(self, venue: str, now_ns: int) -> _Venue:
        v = self._v.get(venue)
        if v is None:
            if not isinstance(venue, str) or not venue:
                raise ValueError(f"health: venue must be a non-empty string, not {venue!r}")
            v = self._v[venue] = _Venue(len(self.venues), now_ns)
            self.venues.append(venue)
        return v

    def _slide(self, v: _Venue, now_ns: int, messages: int, errors: int, resyncs: int) -> None:
        w = v.window
        if w and (messages < w[-1][1] or errors < w[-1][2] or resyncs < w[-1][3]):
            self.counter_resets += 1
            w.clear()
        w.append((now_ns, messages, errors, resyncs))
        start = now_ns - int(self.thresholds.window_s * _NS)
        # keep one observation at or before the window's start, so deltas span all of it
        while len(w) > 2 and w[1][0] <= start:
            w.popleft()

    def _rates(self, v: _Venue) -> tuple[float, float, float]:
        """Messages per second, errors and resyncs per minute over the venue's window."""
        w = v.window
        if len(w) < 2 or w[-1][0] == w[0][0]:
            return 0.0, 0.0, 0.0
        dt = (w[-1][0] - w[0][0]) / _NS
        return ((w[-1][1] - w[0][1]) / dt, (w[-1][2] - w[0][2]) * 60.0 / dt,
                (w[-1][3] - w[0][3]) * 60.0 / dt)

    def _conditions(self, v: _Venue, now_ns: int) -> dict[str, tuple[bool, float, float, str]]:
        """Per kind: (holds, value, limit, message)."""
        th = self.thresholds
        last = v.last
        out: dict[str, tuple[bool, float, float, str]] = {}
        down_for = 0.0 if v.no_conn_since is None else (now_ns - v.no_conn_since) / _NS
        if v.state == "down":
            out["down"] = (True, down_for, th.down_s or 0.0,
                           f"down: {v.reason}" if v.reason else "down")
        elif th.down_s is not None and v.no_conn_since is not None:
            out["down"] = (down_for >= th.down_s, down_for, th.down_s,
                           f"no open connection for {down_for:.1f} s")
        else:
            out["down"] = (False, down_for, th.down_s or 0.0, "")
        age_ns = last["age_ns"] if last["age_ns"] is not None else now_ns - v.first_ns
        age = age_ns / _NS
        out["stale"] = (age > th.stale_s, age, th.stale_s,
                        f"no update applied for {age:.1f} s" if last["age_ns"] is not None
                        else f"no update applied in {age:.1f} s of watching")
        out["latency"] = self._latency(last)
        w = v.window
        for kind, i, limit in (("errors", 2, th.error_burst), ("resyncs", 3, th.resync_burst)):
            n = w[-1][i] - w[0][i]
            out[kind] = (n >= limit, n, limit,
                         f"{n} {kind} in the last {th.window_s:g} s")
        rate, _, _ = self._rates(v)
        full = (w[-1][0] - w[0][0]) >= th.window_s * _NS
        if th.min_msgs_per_s is not None and full:
            out["rate"] = (rate < th.min_msgs_per_s, rate, th.min_msgs_per_s,
                           f"{rate:.1f} msgs/s over {th.window_s:g} s")
        else:
            out["rate"] = (False, rate, th.min_msgs_per_s or 0.0, "")
        return out

    def _latency(self, last: Mapping[str, Any]) -> tuple[bool, float, float, str]:
        th = self.thresholds
        worst: tuple[bool, float, float, str] = (False, 0.0, 0.0, "")
        for (kind, arg), limit in zip(_LATENCY_KEYS, (th.exch_to_recv_p99_ns,
                                                      th.recv_to_applied_p99_ns), strict=True):
            p99 = last.get(arg)
            if limit is None or p99 is None:
                continue
            if p99 > limit and (not worst[0] or p99 / limit > worst[1] / worst[2]):
                worst = (True, float(p99), float(limit),
                         f"{kind.replace('_', ' ')} p99 {p99 / 1e6:.3f} ms "
                         f"over {limit / 1e6:.3f} ms")
        return worst

    def _evaluate(self, venue: str, v: _Venue, now_ns: int) -> list[Alert]:
        out = []
        for kind, (holds, value, limit, message) in self._conditions(v, now_ns).items():
            active = v.active.get(kind)
            if holds and active is None:
                if kind in ("stale", "rate") and "down" in v.active:
                    continue                 # down says it already
                level = "critical" if kind == "down" else "warning"
                a = Alert(now_ns, venue, kind, level, f"{venue}: {message}", value, limit)
                v.active[kind] = a
                self.raised += 1
                log.warning("%s %s: %s (%g, limit %g)", venue, kind, message, value, limit)
                out.append(a)
            elif not holds and active is not None:
                del v.active[kind]
                a = Alert(now_ns, venue, kind, "cleared",
                          f"{venue}: {kind} cleared ({active.message})", value, limit)
                self.cleared += 1
                log.info("%s %s cleared after %.1f s", venue, kind,
                         (now_ns - active.ts_ns) / _NS)
                out.append(a)
        self.history.extend(out)
        return out

    def deliver(self, alerts: Iterable[Alert]) -> None:
        """Give each of ``alerts`` to every callback (one that raises is counted)."""
        for a in alerts:
            for cb in self.callbacks:
                try:
                    cb(a)
                except Exception:
                    self.callback_errors += 1

    def _row(self, v: _Venue, now_ns: int) -> tuple[int, ...]:
        last = v.last
        mask = 0
        for i, k in enumerate(ALERT_KINDS):
            if k in v.active:
                mask |= 1 << i
        code = STATE_CODES.index(v.state)

        def opt(x: Any) -> int:
            return -1 if x is None else int(x)

        return (now_ns, v.index, code, last["messages"], last["errors"], last["resyncs"],
                opt(last["age_ns"]), opt(last["exch_to_recv_p99_ns"]),
                opt(last["recv_to_applied_p99_ns"]), opt(last["connections"]), mask)

    def _worst_p99(self, v: _Venue, books: list[tuple[Any, Mapping[str, Any]]],
                   kind: str, now_ns: int) -> int | None:
        """The worst p99 of ``kind`` across ``books`` (windowed where buckets are given)."""
        worst: int | None = None
        for key, b in books:
            d = (b.get("latency") or {}).get(kind)
            if not d or not d.get("count"):
                continue
            buckets = d.get("buckets")
            p: int | None
            if buckets is None:
                p = int(d["p99"])
            else:
                p = self._windowed_p99(v, (key, kind), buckets, now_ns)
            if p is not None and (worst is None or p > worst):
                worst = p
        return worst

    def _windowed_p99(self, v: _Venue, key: tuple[Any, str], buckets: Mapping[int, int],
                      now_ns: int) -> int | None:
        """p99 of the samples a histogram gained over the last ``window_s`` (None: none)."""
        idx = np.fromiter(buckets.keys(), dtype=np.int64, count=len(buckets))
        cnt = np.fromiter(buckets.values(), dtype=np.int64, count=len(buckets))
        w = v.lat_window.setdefault(key, deque())
        w.append((now_ns, idx, cnt))
        start = now_ns - int(self.thresholds.window_s * _NS)
        while len(w) > 2 and w[1][0] <= start:
            w.popleft()
        delta = np.zeros(_hist.NBUCKETS, dtype=np.int64)
        delta[idx] = cnt
        if len(w) > 1:
            delta[w[0][1]] -= w[0][2]
        np.maximum(delta, 0, out=delta)       # a reset histogram: count what it has now
        cum = np.cumsum(delta)
        n = int(cum[-1])
        if n == 0:
            return None
        i = int(np.searchsorted(cum, max(math.ceil(0.99 * n), 1)))
        lo, hi = _hist.bucket_low(i), _hist.bucket_high(i)
        return int(lo + ((hi - lo + 1) >> 1))


def _down_reason(row: Mapping[str, Any], books: list[tuple[Any, Mapping[str, Any]]]) -> str:
    """Why a venue row says down: the venue's own reason, else its down books' reasons."""
    if row.get("state") != "down":
        return ""
    if row.get("down_reason"):
        return str(row["down_reason"])
    return "; ".join(f"{key[1]}: {b.get('reason') or 'down'}" for key, b in books
                     if b.get("state") == "down")


def _check_observation(venue: str, now_ns: int, state: Any, messages: int, errors: int,
                       resyncs: int, last_update_ns: int | None,
                       connections: int | None) -> str:
    """The state as text, once every argument is known good (else ValueError naming it)."""
    if not isinstance(venue, str) or not venue:
        raise ValueError(f"health: venue must be a non-empty string, not {venue!r}")
    state = getattr(state, "value", state)
    if state not in STATE_CODES:
        raise ValueError(f"health {venue}: state {state!r} is not one of {STATE_CODES}")
    for name, x in (("now_ns", now_ns), ("messages", messages), ("errors", errors),
                    ("resyncs", resyncs)):
        if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < 0:
            raise ValueError(f"health {venue}: {name} must be an integer >= 0, not {x!r}")
    for name, y in (("last_update_ns", last_update_ns), ("connections", connections)):
        if y is not None and (isinstance(y, bool) or not isinstance(y, int | np.integer)
                              or y < 0):
            raise ValueError(f"health {venue}: {name} must be an integer >= 0 or None, "
                             f"not {y!r}")
    return str(state)


def make_monitor(health: Any, on_alert: Any = None) -> HealthMonitor | None:
    """The monitor ``fb.live(health=..., on_alert=...)`` asks for (None when ``health`` is
    falsy and no ``on_alert`` is given)."""
    if not health and on_alert is None:
        return None
    return HealthMonitor(HealthThresholds.from_options(health or None), on_alert=on_alert)
