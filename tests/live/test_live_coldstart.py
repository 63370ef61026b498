"""Cold start under a binding REST weight budget: every book live, zero 429 and 418.

Binance counts REST weight per minute, so a budget only binds across minutes. To keep
the test to seconds, both sides run on one compressed clock (``SCALE`` simulated
seconds per real second): the simulator's weight minute (its REST answers read a
scaled ``time.time()``) and the driver's snapshot scheduler (its clock and sleeps
are scaled the same way). The sockets, the HTTP server, the codecs and the driver
are the real ones. The bench version at the real scale is ``bench/live_coldstart.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytest.importorskip("websockets")

import fastbook as fb
import fastbook.testing._sim as sim_module
from fastbook.live._http import HttpClient
from fastbook.live._ratelimit import SnapshotScheduler
from fastbook.testing import ExchangeSimulator, book_equals_truth

SCALE = 30.0                 # simulated seconds per real second: a weight minute is 2 s
VENUE = "binance-usdm"       # snapshot weight 20 (limit=1000)
LIMIT = 300                  # the simulator's weight per minute: 15 snapshots
SYMBOLS = [f"S{i:02d}USDT" for i in range(30)]


class _ScaledTime:
    """The ``time`` module, with ``time()`` running ``SCALE`` times faster from ``t0``."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def time(self) -> float:
        return self.t0 + (time.time() - self.t0) * SCALE

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class FastMinuteSimulator(ExchangeSimulator):
    """The simulator, whose REST weight minutes (and Retry-After) run on the scaled clock."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.scaled = _ScaledTime(time.time())

    async def _rest_answer(self, v: Any, method: str, path: str, q: dict[str, str]) -> Any:
        # no fault that sleeps is queued, so the answer is made without suspending and
        # nothing else on the loop sees the scaled clock
        real = sim_module.time
        sim_module.time = self.scaled        # type: ignore[assignment]
        try:
            return await super()._rest_answer(v, method, path, q)
        finally:
            sim_module.time = real


def scaled_scheduler(limit: int) -> SnapshotScheduler:
    """The driver's scheduler for a venue whose limit is ``limit``, on the scaled clock."""
    t0 = time.monotonic()
    return SnapshotScheduler(weight_limit=limit,
                             clock=lambda: t0 + (time.monotonic() - t0) * SCALE,
                             sleep=lambda s: asyncio.sleep(s / SCALE))


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_naive_schedule_trips_the_limit():
    """The control: every snapshot at once is answered 429 (then 418) past the limit, so
    the zero below is the driver's doing, not a simulator that never says no."""

    async def main():
        async with FastMinuteSimulator({VENUE: SYMBOLS}, rate=20, rest_weight_limit=LIMIT) as sim:
            base = sim.endpoints[VENUE]["rest"]
            async with HttpClient(timeout=20) as http:
                answers = await asyncio.gather(*(http.get(
                    f"{base}/fapi/v1/depth?symbol={s}&limit=1000") for s in SYMBOLS))
            return [a.status for a in answers]

    statuses = run(main())
    assert statuses.count(200) == LIMIT // 20
    assert statuses.count(429) >= 1
    assert statuses.count(429) + statuses.count(418) == len(SYMBOLS) - LIMIT // 20


def test_cold_start_under_a_binding_budget_trips_nothing():
    async def main():
        async with FastMinuteSimulator({VENUE: SYMBOLS}, rate=20, rest_weight_limit=LIMIT) as sim:
            feed = fb.live([f"{VENUE}:{s}" for s in SYMBOLS],
                           endpoints={VENUE: sim.endpoints[VENUE]}, latency=False)
            sched = feed.driver._sched[VENUE] = scaled_scheduler(LIMIT)
            seen: list[tuple[int, float]] = []
            observe = sched.observe

            def watching(status, headers):
                seen.append((status, float(headers.get("X-MBX-USED-WEIGHT-1M", -1))))
                observe(status, headers)

            sched.observe = watching
            async with feed:
                live = await feed.wait_live(40.0)
                stats = feed.stats()
                sim.pause(VENUE)
                await sim.wait_idle()
                await asyncio.sleep(0.3)
                wrong = [s for s in SYMBOLS if not book_equals_truth(
                    feed.book(VENUE, s), sim.truth(VENUE, s))]
            return live, stats, sim.stats()[VENUE], sched, seen, wrong

    live, stats, sim_stats, sched, seen, wrong = run(main())
    books = stats["books"]
    assert live, {k: b["state"] for k, b in books.items() if b["state"] != "live"}
    assert not wrong, wrong
    # the budget bound: 30 snapshots of weight 20 need three of the venue's minutes
    assert sched.waits >= 1
    assert len(SYMBOLS) * 20 > LIMIT * 0.8 * 2
    # and the venue never said no
    assert sched.n429 == 0 and sched.n418 == 0, sim_stats["rest_status"]
    assert set(sim_stats["rest_status"]) == {200}, sim_stats["rest_status"]
    assert all(status == 200 for status, _ in seen)
    assert max(w for _, w in seen) <= LIMIT
    assert sim_stats["rest_requests"] == len(SYMBOLS) == sched.requests
    assert stats["venues"][VENUE]["connections"] == 1      # 30 <= max_symbols (200)
