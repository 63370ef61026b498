"""Venue rate limits: REST snapshot scheduling by request weight, and a token bucket.

The live driver asks a :class:`SnapshotScheduler` before every REST depth
snapshot and tells it about every answer. Binance bans an IP (HTTP 418) that
keeps sending after a 429, and counts weight per IP across all of a
process's clients, so the scheduler keeps its own per-window accounting, trusts
the server's ``X-MBX-USED-WEIGHT-1M`` header when it reports more, and on a 429 or
418 stops *all* symbols until ``Retry-After`` has passed. :class:`TokenBucket`
paces per-connection control messages (Binance: 5 per second per connection).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["SnapshotScheduler", "TokenBucket"]

Sleep = Callable[[float], Awaitable[Any]]


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class SnapshotScheduler:
    """Budget REST snapshot requests by weight; back off all keys on 429/418.

    Parameters
    ----------
    weight_limit : int
        The venue's weight per window (Binance spot: 6000 per minute).
    window_s : float
        The window length in seconds.
    safety : float
        Fraction of ``weight_limit`` this scheduler lets itself use (0 < safety <= 1).
    max_backoff_s : float
        Cap of the exponential backoff used when a 429/418 carries no ``Retry-After``.
    clock, sleep :
        Injected for tests: a monotonic clock in seconds and an async sleep.

    Weight is charged when a slot is granted and counts until ``window_s``
    after the request *ends*: the server counts a request when it arrives,
    which may be anywhere between the grant and the answer (a loop busy
    elsewhere, a slow server), so a charge that expired ``window_s`` after the
    grant could let a later window hold more than the budget. A reported used
    weight higher than the own count replaces it for the rest of the current
    window (other clients on the same IP), plus the weight granted since that
    answer, which the report cannot have counted.
    """

    def __init__(self, weight_limit: int = 6000, window_s: float = 60.0, safety: float = 0.8,
                 max_backoff_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep, jitter: Callable[[], float] = random.random
                 ) -> None:
        self.weight_limit = _positive("weight_limit", weight_limit)
        self.window_s = _positive("window_s", window_s)
        if not 0 < safety <= 1:
            raise ValueError(f"safety must be in (0, 1], got {safety!r}")
        self.safety = float(safety)
        self.max_backoff_s = _positive("max_backoff_s", max_backoff_s)
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        # [time granted, or ended once it has, weight]: counted until window_s after it
        self._spent: deque[list[float]] = deque()
        self._reported = 0.0            # server's used weight ...
        self._reported_until = 0.0      # ... trusted until this time
        self._since_report = 0.0        # weight granted after the report
        self._backoff_until = 0.0
        self._strikes = 0               # consecutive 429/418 without Retry-After
        self._busy: set[str] = set()
        self._lock = asyncio.Lock()     # grants are made one at a time, in arrival order
        self._key_free: dict[str, asyncio.Event] = {}
        self.requests = 0
        self.waits = 0
        self.n429 = 0
        self.n418 = 0

    # -- accounting -------------------------------------------------------
    @property
    def budget(self) -> float:
        """Weight this scheduler may use per window (``safety * weight_limit``)."""
        return self.safety * self.weight_limit

    def _expire(self, now: float) -> None:
        old = now - self.window_s
        if any(t <= old for t, _ in self._spent):
            self._spent = deque(e for e in self._spent if e[0] > old)
        if now >= self._reported_until:
            self._reported = self._since_report = 0.0

    def _server_count(self) -> float:
        """The server's last report plus what was granted after it (0 without one)."""
        return self._reported + self._since_report

    def weight_used(self) -> float:
        """Weight counted against the current window (own count or the server's, the larger)."""
        now = self._clock()
        self._expire(now)
        return max(sum(w for _, w in self._spent), self._server_count())

    def _delay(self, weight: float) -> float:
        """Seconds to wait before ``weight`` fits (0: now)."""
        now = self._clock()
        self._expire(now)
        if now < self._backoff_until:
            return self._backoff_until - now
        own = sum(w for _, w in self._spent)
        server = self._server_count()
        if max(own, server) + weight <= self.budget:
            return 0.0
        if server > own and server + weight > self.budget:
            return max(self._reported_until - now, 1e-3)
        # wait until enough of the charges leave the window, the first to leave first
        need = own + weight - self.budget
        for t, w in sorted(self._spent):
            need -= w
            if need <= 0:
                return max(t + self.window_s - now, 1e-3)
        return 1e-3

    # -- the driver's calls -----------------------------------------------
    def in_flight(self, key: str) -> bool:
        """Whether a request for ``key`` holds a slot now."""
        return key in self._busy

    @asynccontextmanager
    async def slot(self, key: str, weight: float = 1) -> AsyncIterator[None]:
        """Wait for budget and for ``key`` to be free, then hold its slot for the block."""
        weight = _positive("weight", weight)
        if weight > self.budget:
            raise ValueError(f"a request of weight {weight:g} never fits the budget "
                             f"{self.budget:g} (safety {self.safety} x limit "
                             f"{self.weight_limit:g})")
        while key in self._busy:
            self.waits += 1
            await self._key_free.setdefault(key, asyncio.Event()).wait()
        self._busy.add(key)
        charge: list[float] | None = None
        try:
            async with self._lock:
                waited = False
                while (delay := self._delay(weight)) > 0:
                    if not waited:
                        self.waits += 1
                        waited = True
                    await self._sleep(delay)
                now = self._clock()
                charge = [now, weight]
                self._spent.append(charge)
                if now < self._reported_until:
                    self._since_report += weight
                self.requests += 1
            yield
        finally:
            if charge is not None:
                charge[0] = max(charge[0], self._clock())   # counted until window_s after now
            self._busy.discard(key)
            event = self._key_free.pop(key, None)
            if event is not None:
                event.set()

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Take in one answer: its used-weight header and, on 429/418, its ``Retry-After``."""
        now = self._clock()
        lower = {k.lower(): v for k, v in headers.items()}
        used = lower.get("x-mbx-used-weight-1m")
        if used is not None:
            try:
                value = float(used)
            except ValueError:
                value = -1.0
            if value >= 0:
                self._reported = value
                self._reported_until = now + self.window_s
                self._since_report = 0.0
        if status not in (429, 418):
            if 200 <= status < 300:
                self._strikes = 0
            return
        if status == 429:
            self.n429 += 1
        else:
            self.n418 += 1
        retry = _retry_after(lower.get("retry-after"))
        if retry is not None:
            # the server says when its window resets: its used weight stops counting then
            self._reported_until = min(self._reported_until, now + retry)
        else:
            self._strikes += 1
            base = min(self.max_backoff_s, 2.0 ** (self._strikes - 1))
            retry = min(self.max_backoff_s, base * (1.0 + 0.5 * self._jitter()))
        self._backoff_until = max(self._backoff_until, now + retry)

    def stats(self) -> dict[str, Any]:
        """Counters: requests, waits, 429s, 418s, weight_used, backoff_until, in_flight."""
        return {"requests": self.requests, "waits": self.waits, "429s": self.n429,
                "418s": self.n418, "weight_used": self.weight_used(),
                "backoff_until": self._backoff_until, "in_flight": sorted(self._busy)}


def _retry_after(text: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form), or None."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` held; one token per control message."""

    def __init__(self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.rate = _positive("rate", rate)
        self.burst = _positive("burst", burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._at = clock()
        self.taken = 0
        self.waits = 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_take(self) -> bool:
        """Take a token if one is there now."""
        self._refill()
        if self._tokens >= 1 - 1e-9:       # tolerance: float refills land just under 1
            self._tokens = max(0.0, self._tokens - 1)
            self.taken += 1
            return True
        return False

    async def wait(self) -> None:
        """Wait until a token is there and take it."""
        waited = False
        while not self.try_take():
            if not waited:
                self.waits += 1
                waited = True
            await self._sleep(max((1 - self._tokens) / self.rate, 1e-6))
