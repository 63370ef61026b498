"""SnapshotScheduler and TokenBucket on an injected clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from fastbook.live._ratelimit import SnapshotScheduler, TokenBucket


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s
        await asyncio.sleep(0)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def sched(t: FakeTime, **kw) -> SnapshotScheduler:
    kw.setdefault("weight_limit", 1000)
    return SnapshotScheduler(window_s=60.0, safety=0.8, clock=t.clock, sleep=t.sleep,
                             jitter=lambda: 0.0, **kw)


def test_never_exceeds_budget_per_window():
    t = FakeTime()
    s = sched(t)
    grants: list[float] = []

    async def main():
        for i in range(10):
            async with s.slot(key=f"S{i}", weight=250):
                grants.append(t.now)

    run(main())
    # budget 800: three 250s per window; the fourth waits for the first to leave
    assert grants[:3] == [1000.0] * 3
    assert grants[3] == pytest.approx(1060.0)
    for g in grants:
        inside = [h for h in grants if g - 60 < h <= g]
        assert 250 * len(inside) <= 800
    assert s.stats()["requests"] == 10 and s.stats()["waits"] == 3


def test_server_used_weight_overrides_own_count():
    t = FakeTime()
    s = sched(t)

    async def main():
        async with s.slot(key="A", weight=250):
            s.observe(200, {"X-MBX-USED-WEIGHT-1M": "700"})
        assert s.weight_used() == 700
        async with s.slot(key="B", weight=250):
            pass

    run(main())
    assert t.now == pytest.approx(1060.0)      # waited out the reported weight's window


def test_a_slow_request_counts_until_a_window_after_it_ends():
    """The server counts a request when it arrives, anywhere between the grant and the
    answer: three requests answered 30 s after their grant arrive at 1029 say, so a fourth
    granted before 1089 would make four in the server's window of 1029-1089."""
    t = FakeTime()
    s = sched(t)
    grants: list[float] = []

    async def main():
        async with s.slot(key="A", weight=250), s.slot(key="B", weight=250), \
                s.slot(key="C", weight=250):
            await t.sleep(30)                   # all three in flight until 1030
        async with s.slot(key="D", weight=250):
            grants.append(t.now)

    run(main())
    assert grants == [pytest.approx(1090.0)]    # not 1060, 60 s after the grants


def test_weight_granted_after_a_report_adds_to_it():
    """A used-weight header counts what the server had seen; requests granted after it
    are not in it. 500 reported, then 250 granted: another 250 would make 1,000 > 800."""
    t = FakeTime()
    s = sched(t)
    grants: list[float] = []

    async def main():
        async with s.slot(key="A", weight=250):
            s.observe(200, {"X-MBX-USED-WEIGHT-1M": "500"})
        async with s.slot(key="B", weight=250):
            grants.append(t.now)
        assert s.weight_used() == 750
        async with s.slot(key="C", weight=250):
            grants.append(t.now)

    run(main())
    assert grants[0] == 1000.0 and grants[1] == pytest.approx(1060.0)


def test_retry_after_blocks_every_key():
    t = FakeTime()
    s = sched(t)
    grants = {}

    async def main():
        async with s.slot(key="A", weight=1):
            s.observe(429, {"Retry-After": "7"})
        async with s.slot(key="B", weight=1):
            grants["B"] = t.now
        async with s.slot(key="A", weight=1):
            s.observe(418, {"retry-after": "30"})
        async with s.slot(key="C", weight=1):
            grants["C"] = t.now

    run(main())
    assert grants == {"B": pytest.approx(1007.0), "C": pytest.approx(1037.0)}
    st = s.stats()
    assert (st["429s"], st["418s"]) == (1, 1)


def test_backoff_without_header_is_exponential_and_capped():
    t = FakeTime()
    s = sched(t, max_backoff_s=5.0)
    for _ in range(6):
        s.observe(429, {})
    assert s.stats()["backoff_until"] == pytest.approx(1000.0 + 5.0)
    s2 = sched(t)
    s2.observe(429, {})
    first = s2.stats()["backoff_until"] - t.now
    s2.observe(429, {})
    second = s2.stats()["backoff_until"] - t.now
    assert (first, second) == (pytest.approx(1.0), pytest.approx(2.0))
    s2.observe(200, {})
    s2.observe(429, {"Retry-After": "garbage"})     # unreadable header: backoff, no crash
    assert s2.n429 == 3


def test_one_in_flight_per_key():
    t = FakeTime()
    s = sched(t)
    order: list[str] = []

    async def user(name: str, key: str, gate: asyncio.Event | None):
        async with s.slot(key=key, weight=1):
            order.append(f"{name}+")
            if gate is not None:
                await gate.wait()
            order.append(f"{name}-")

    async def main():
        gate = asyncio.Event()
        a = asyncio.create_task(user("a", "K", gate))
        await asyncio.sleep(0)
        assert s.in_flight("K") and not s.in_flight("L")
        b = asyncio.create_task(user("b", "K", None))
        c = asyncio.create_task(user("c", "L", None))
        for _ in range(5):
            await asyncio.sleep(0)
        assert "b+" not in order and "c-" in order
        gate.set()
        await asyncio.gather(a, b, c)

    run(main())
    assert order.index("a-") < order.index("b+")
    assert not s.in_flight("K")


def test_bad_arguments():
    t = FakeTime()
    with pytest.raises(ValueError, match="safety"):
        SnapshotScheduler(safety=0)
    with pytest.raises(ValueError, match="weight_limit"):
        SnapshotScheduler(weight_limit=-1)
    s = sched(t)

    async def main():
        async with s.slot(key="A", weight=900):
            pass

    with pytest.raises(ValueError, match="never fits"):
        run(main())


def test_token_bucket():
    t = FakeTime()
    b = TokenBucket(5, burst=5, clock=t.clock, sleep=t.sleep)
    assert [b.try_take() for _ in range(6)] == [True] * 5 + [False]

    async def main():
        for _ in range(10):
            await b.wait()

    run(main())
    assert t.now == pytest.approx(1002.0)       # 10 more at 5/s
    assert b.taken == 15
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)


def test_real_http_429_with_retry_after_backs_off_all_symbols():
    """A loopback server answers 429 + Retry-After once; the next request of any symbol waits."""
    from fastbook.live._http import HttpClient

    served: list[str] = []

    async def on_conn(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                served.append(head.split(b" ")[1].decode())
                if len(served) == 1:
                    writer.write(b"HTTP/1.1 429 Too Many\r\nRetry-After: 0.05\r\n"
                                 b"X-MBX-USED-WEIGHT-1M: 6100\r\nContent-Length: 0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nX-MBX-USED-WEIGHT-1M: 10\r\n"
                                 b"Content-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        import time

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        s = SnapshotScheduler(weight_limit=6000, window_s=60.0)
        async with server, HttpClient(timeout=5) as client:
            async with s.slot(key="BTCUSDT", weight=250):
                r = await client.get(f"{base}/api/v3/depth?symbol=BTCUSDT")
                s.observe(r.status, r.headers)
            assert r.status == 429
            t0 = time.monotonic()
            async with s.slot(key="ETHUSDT", weight=250):
                r = await client.get(f"{base}/api/v3/depth?symbol=ETHUSDT")
                s.observe(r.status, r.headers)
            assert time.monotonic() - t0 >= 0.04     # waited (a lower bound, not a timing limit)
            assert r.status == 200
        st = s.stats()
        assert (st["429s"], st["requests"], st["weight_used"]) == (1, 2, 500)

    run(main())
