"""The venue health monitor: each alert kind raises once and clears once, rates over the
sliding window, bad input is a ValueError naming the field; and the real driver against
the loopback exchange simulator raises ``stale``, ``down`` and ``errors`` alerts."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import numpy as np
import pytest

from fastbook.live._health import (
    ALERT_KINDS,
    HEALTH_DTYPE,
    STATE_CODES,
    Alert,
    HealthMonitor,
    HealthThresholds,
)
from fastbook.metrics import LatencyHistogram

S = 1_000_000_000
T0 = 1_700_000_000 * S


def obs(mon: HealthMonitor, t_s: float, venue: str = "okx", **kw: object) -> list[Alert]:
    """An observation at T0 + t_s of a healthy venue, overridden by ``kw``."""
    now = T0 + int(t_s * S)
    args: dict[str, object] = {"state": "live", "messages": int(t_s * 100), "errors": 0,
                               "resyncs": 0, "last_update_ns": now - 1_000_000,
                               "connections": 1}
    args.update(kw)
    return mon.observe(venue, now, **args)  # type: ignore[arg-type]


def kinds(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(a.kind, a.level) for a in alerts]


# --- one kind at a time: raised once, cleared once ------------------------------------


def test_down_from_state_raises_once_and_clears_once():
    got: list[Alert] = []
    mon = HealthMonitor(on_alert=got.append)
    assert obs(mon, 0) == []
    assert kinds(obs(mon, 1, state="down")) == [("down", "critical")]
    assert obs(mon, 2, state="down") == []                 # edge-triggered: no repeat
    assert kinds(obs(mon, 3)) == [("down", "cleared")]
    assert kinds(got) == [("down", "critical"), ("down", "cleared")]
    assert mon.alerts() == [] and mon.raised == 1 and mon.cleared == 1


def test_down_after_down_s_without_a_connection():
    mon = HealthMonitor(HealthThresholds(down_s=2.0, stale_s=100.0))
    assert obs(mon, 0, connections=0) == []
    assert obs(mon, 1.5, connections=0) == []
    a = obs(mon, 2.5, connections=0)
    assert kinds(a) == [("down", "critical")] and a[0].value == pytest.approx(2.5)
    assert kinds(obs(mon, 3, connections=1)) == [("down", "cleared")]


def test_stale_raises_once_and_clears_once():
    mon = HealthMonitor(HealthThresholds(stale_s=2.0))
    assert obs(mon, 0) == []
    a = obs(mon, 5, last_update_ns=T0 + 2 * S)             # 3 s since the last update
    assert kinds(a) == [("stale", "warning")]
    assert a[0].value == pytest.approx(3.0) and a[0].limit == 2.0
    assert obs(mon, 6, last_update_ns=T0 + 2 * S) == []
    assert kinds(obs(mon, 7)) == [("stale", "cleared")]


def test_stale_counts_from_the_first_observation_when_nothing_was_applied():
    mon = HealthMonitor(HealthThresholds(stale_s=1.0))
    assert obs(mon, 0, state="syncing", last_update_ns=None) == []
    assert kinds(obs(mon, 1.5, state="syncing", last_update_ns=0)) == [("stale", "warning")]


def test_stale_is_not_raised_while_the_venue_is_down():
    mon = HealthMonitor(HealthThresholds(stale_s=1.0))
    obs(mon, 0)
    assert kinds(obs(mon, 0.5, state="down", last_update_ns=T0)) == [("down", "critical")]
    assert obs(mon, 5, state="down", last_update_ns=T0) == []


@pytest.mark.parametrize("arg", ["exch_to_recv_p99_ns", "recv_to_applied_p99_ns"])
def test_latency_raises_once_and_clears_once(arg):
    mon = HealthMonitor(HealthThresholds(exch_to_recv_p99_ns=1000, recv_to_applied_p99_ns=1000))
    assert obs(mon, 0, **{arg: 999}) == []
    a = obs(mon, 1, **{arg: 5000})
    assert kinds(a) == [("latency", "warning")] and (a[0].value, a[0].limit) == (5000, 1000)
    assert obs(mon, 2, **{arg: 6000}) == []
    assert kinds(obs(mon, 3, **{arg: 1000})) == [("latency", "cleared")]


@pytest.mark.parametrize("field,kind", [("errors", "errors"), ("resyncs", "resyncs")])
def test_burst_raises_once_and_clears_when_the_window_moves_past(field, kind):
    mon = HealthMonitor(HealthThresholds(error_burst=3, resync_burst=3, window_s=10.0))
    assert obs(mon, 0, **{field: 0}) == []
    assert obs(mon, 1, **{field: 2}) == []
    a = obs(mon, 2, **{field: 3})
    assert kinds(a) == [(kind, "warning")] and a[0].value == 3
    assert obs(mon, 5, **{field: 4}) == []
    assert obs(mon, 10.5, **{field: 4}) == []               # 0 s .. 10.5 s: 4 in the window
    assert kinds(obs(mon, 11, **{field: 4})) == [(kind, "cleared")]   # 1 s .. 11 s: 2
    assert obs(mon, 13, **{field: 4}) == []


def test_rate_only_over_a_full_window():
    mon = HealthMonitor(HealthThresholds(min_msgs_per_s=50.0, window_s=4.0))
    assert obs(mon, 0, messages=0) == []
    assert obs(mon, 2, messages=10) == []                   # 5/s, but half a window
    a = obs(mon, 4, messages=20)
    assert kinds(a) == [("rate", "warning")] and a[0].value == pytest.approx(5.0)
    assert kinds(obs(mon, 8, messages=420)) == [("rate", "cleared")]    # 100/s


def test_every_kind_has_a_bit_and_the_rows_say_so():
    mon = HealthMonitor(HealthThresholds(stale_s=1.0, recv_to_applied_p99_ns=10))
    obs(mon, 0)
    obs(mon, 0, venue="kraken-v2", state="syncing", connections=None, last_update_ns=None)
    obs(mon, 3, last_update_ns=T0, recv_to_applied_p99_ns=50, errors=1)
    rows = mon.take_rows()
    assert rows.dtype == HEALTH_DTYPE and len(rows) == 3
    assert all(rows.dtype[n] == np.int64 for n in rows.dtype.names)
    assert rows["venue"].tolist() == [0, 1, 0]
    assert rows["state"].tolist() == [STATE_CODES.index("live"), STATE_CODES.index("syncing"),
                                      STATE_CODES.index("live")]
    assert rows["age_ns"].tolist() == [1_000_000, -1, 3 * S]
    assert rows["connections"].tolist() == [1, -1, 1]
    assert rows["recv_to_applied_p99_ns"].tolist() == [-1, -1, 50]
    bits = 1 << ALERT_KINDS.index("stale") | 1 << ALERT_KINDS.index("latency")
    assert rows["alerts"].tolist() == [0, 0, bits]
    assert rows["errors"].tolist() == [0, 0, 1] and rows["ts_ns"][2] == T0 + 3 * S
    assert len(mon.take_rows()) == 0                        # since the last call only
    meta = mon.metadata()
    assert meta["venues"] == ["okx", "kraken-v2"] and meta["alert_kinds"] == list(ALERT_KINDS)
    assert meta["state_codes"][rows["state"][1]] == "syncing"
    assert meta["thresholds"]["stale_s"] == 1.0
    assert json.loads(json.dumps(meta)) == meta


# --- rates, summary ---------------------------------------------------------------------


def test_rates_are_deltas_over_the_sliding_window():
    mon = HealthMonitor(HealthThresholds(window_s=10.0, error_burst=100, resync_burst=100))
    for t, m, e, r in [(0, 0, 0, 0), (5, 1000, 2, 1), (10, 3000, 4, 1), (15, 3500, 6, 1)]:
        obs(mon, t, messages=m, errors=e, resyncs=r)
    v = mon.summary()["venues"]["okx"]
    # the window is 5 s .. 15 s: 2500 messages, 4 errors, 0 resyncs in 10 s
    assert v["msgs_per_s"] == 250.0
    assert v["errors_per_min"] == 24.0 and v["resyncs_per_min"] == 0.0
    assert v["age_ms"] == 1.0 and v["state"] == "live" and v["alerts"] == []


def test_summary_lists_active_alerts_and_counts():
    mon = HealthMonitor(HealthThresholds(stale_s=1.0))
    obs(mon, 0)
    obs(mon, 2, last_update_ns=T0, state="stale", exch_to_recv_p99_ns=123)
    s = mon.summary()
    assert s["venues"]["okx"]["alerts"] == ["stale"]
    assert s["venues"]["okx"]["exchange_to_receive_p99_ns"] == 123
    assert [a["kind"] for a in s["active"]] == ["stale"] and s["raised"] == 1
    assert [a.kind for a in mon.alerts()] == ["stale"]


# --- bad input, callbacks, logs -------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("stale_s", 0), ("stale_s", -1.0), ("stale_s", float("nan")), ("window_s", 0),
    ("exch_to_recv_p99_ns", 0), ("recv_to_applied_p99_ns", -5), ("error_burst", 0),
    ("resync_burst", 1.5), ("error_burst", True), ("min_msgs_per_s", -1.0),
    ("min_msgs_per_s", "fast"), ("down_s", 0.0), ("stale_s", "5"),
])
def test_bad_thresholds_name_the_field(field, value):
    with pytest.raises(ValueError, match=re.escape(f"HealthThresholds.{field} ")):
        HealthThresholds(**{field: value})


def test_options_from_dict_true_and_thresholds():
    assert HealthThresholds.from_options(True) == HealthThresholds()
    assert HealthThresholds.from_options({"stale_s": 2.0}).stale_s == 2.0
    th = HealthThresholds(error_burst=9)
    assert HealthThresholds.from_options(th) is th
    with pytest.raises(ValueError, match="unknown threshold 'stale'"):
        HealthThresholds.from_options({"stale": 2.0})
    with pytest.raises(ValueError, match="health must be"):
        HealthThresholds.from_options(3)


@pytest.mark.parametrize("kw,match", [
    ({"state": "asleep"}, "okx: state 'asleep'"), ({"messages": -1}, "okx: messages"),
    ({"errors": 1.5}, "okx: errors"), ({"last_update_ns": -3}, "okx: last_update_ns"),
    ({"connections": "one"}, "okx: connections"),
])
def test_bad_observations_name_venue_and_field(kw, match):
    with pytest.raises(ValueError, match=match):
        obs(HealthMonitor(), 0, **kw)


def test_clock_backwards_and_counter_resets_are_counted_not_believed():
    mon = HealthMonitor(HealthThresholds(error_burst=2))
    obs(mon, 10, errors=5)
    assert obs(mon, 9, errors=100) == [] and mon.clock_backwards == 1
    assert obs(mon, 11, errors=0) == [] and mon.counter_resets == 1   # a restart, no burst
    assert mon.summary()["clock_backwards"] == 1


def test_a_raising_callback_is_counted_and_the_others_still_run(caplog):
    got: list[Alert] = []

    def bad(a: Alert) -> None:
        raise RuntimeError("callback bug")

    mon = HealthMonitor(on_alert=[bad, got.append])
    with caplog.at_level(logging.INFO, logger="fastbook.live.health"):
        obs(mon, 0, state="down")
        obs(mon, 1)
    assert mon.callback_errors == 2 and kinds(got) == [("down", "critical"), ("down", "cleared")]
    levels = [(r.levelno, r.name) for r in caplog.records]
    assert levels == [(logging.WARNING, "fastbook.live.health"),
                      (logging.INFO, "fastbook.live.health")]
    assert "okx down" in caplog.records[0].getMessage()


def test_deliver_false_leaves_the_callbacks_to_deliver():
    got: list[Alert] = []
    mon = HealthMonitor(on_alert=got.append)
    a = mon.observe("okx", T0, state="down", messages=0, errors=0, resyncs=0,
                    last_update_ns=None, deliver=False)
    assert got == [] and len(a) == 1
    mon.deliver(a)
    assert got == a


# --- the stats adapter -----------------------------------------------------------------


def _stats(t_ns, *, conns=1, state="live", errors=0, hists=None, last=None, buckets=False):
    books = {}
    for i, h in enumerate(hists or [LatencyHistogram(), LatencyHistogram()]):
        books[("okx", f"S{i}")] = {
            "state": state, "last_applied_ns": (last or [t_ns, t_ns])[i],
            "latency": {"exchange_to_receive": h.to_dict(buckets=buckets),
                        "receive_to_applied": LatencyHistogram().to_dict(buckets=buckets)}}
    return {"venues": {"okx": {"state": state, "connections": conns, "messages": 10,
                               "errors": errors, "resyncs": 0}}, "books": books}


def test_observe_live_takes_the_worst_book_and_the_newest_update():
    h1, h2 = LatencyHistogram(), LatencyHistogram()
    h1.record_many(np.full(100, 1000))
    h2.record_many(np.full(100, 50_000))
    mon = HealthMonitor()
    mon.observe_live(_stats(T0, hists=[h1, h2], last=[T0 - 3 * S, T0 - S]), T0)
    v = mon.summary()["venues"]["okx"]
    assert v["exchange_to_receive_p99_ns"] == h2.percentile(99)
    assert v["receive_to_applied_p99_ns"] is None           # no samples: not judged
    assert v["age_ms"] == 1000.0 and v["connections"] == 1


def test_observe_live_with_buckets_judges_the_window_only():
    """Hours of fast samples hide a spike in the cumulative p99; the windowed one shows it."""
    h = LatencyHistogram()
    h.record_many(np.full(100_000, 1000))
    th = HealthThresholds(exch_to_recv_p99_ns=1_000_000, window_s=5.0)
    mon = HealthMonitor(th)
    idle = LatencyHistogram()
    assert mon.observe_live(_stats(T0, hists=[h, idle], buckets=True), T0) == []
    h.record_many(np.full(500, 20_000_000))                  # a 20 ms spike
    assert h.percentile(99) < 1_000_000                      # cumulative: hidden
    a = mon.observe_live(_stats(T0 + S, hists=[h, idle], buckets=True), T0 + S)
    assert kinds(a) == [("latency", "warning")]
    assert a[0].value == pytest.approx(20_000_000, rel=0.01)
    # nothing new for a whole window: no samples to judge, the alert clears
    mon.observe_live(_stats(T0 + 4 * S, hists=[h, idle], buckets=True), T0 + 4 * S)
    a = mon.observe_live(_stats(T0 + 7 * S, hists=[h, idle], buckets=True), T0 + 7 * S)
    assert kinds(a) == [("latency", "cleared")]


def test_observe_live_sees_a_venue_without_connections_go_down():
    mon = HealthMonitor(HealthThresholds(down_s=1.0, stale_s=100.0))
    mon.observe_live(_stats(T0, conns=0, state="connecting"), T0)
    a = mon.observe_live(_stats(T0 + 2 * S, conns=0, state="connecting", last=[T0, T0]),
                         T0 + 2 * S)
    assert kinds(a) == [("down", "critical")]


# --- the real driver against the loopback simulator ------------------------------------

def run(coro, timeout=30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_for_alert(got, kind, level, timeout=8.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if any(a.kind == kind and a.level == level for a in got):
            return True
        await asyncio.sleep(0.02)
    return False


QUIET = {"stale_s": 1.0, "error_burst": 3, "resync_burst": 2, "window_s": 2.0, "down_s": 0.5,
         "exch_to_recv_p99_ns": None, "recv_to_applied_p99_ns": None}


def test_live_paused_venue_goes_stale_then_clears_on_resume():
    pytest.importorskip("websockets")
    import fastbook as fb
    from fastbook.testing import ExchangeSimulator

    async def main():
        got: list[Alert] = []
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=50, seed=3) as sim:
            async with fb.live(["okx:BTC-USDT"], endpoints=sim.endpoints, health=QUIET,
                               on_alert=got.append, health_every_s=0.1) as feed:
                assert await feed.wait_live(10)
                await asyncio.sleep(0.3)
                assert got == [], got
                sim.pause("okx")
                assert await wait_for_alert(got, "stale", "warning"), feed.stats()["health"]
                assert feed.stats()["health"]["venues"]["okx"]["alerts"] == ["stale"]
                sim.resume("okx")
                assert await wait_for_alert(got, "stale", "cleared"), feed.stats()["health"]
                assert [a.kind for a in got] == ["stale", "stale"]
                assert feed.health.alerts() == []
                assert feed.stats()["health"]["venues"]["okx"]["msgs_per_s"] > 0

    run(main())


def test_live_venue_whose_server_goes_away_is_down():
    pytest.importorskip("websockets")
    import fastbook as fb
    from fastbook.testing import ExchangeSimulator

    async def main():
        got: list[Alert] = []
        sim = ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=50, seed=3)
        await sim.__aenter__()
        try:
            async with fb.live(["okx:BTC-USDT"], endpoints=sim.endpoints, health=QUIET,
                               on_alert=got.append, health_every_s=0.1, backoff_s=0.05,
                               backoff_cap_s=0.2) as feed:
                assert await feed.wait_live(10)
                await sim.__aexit__(None, None, None)
                sim = None
                assert await wait_for_alert(got, "down", "critical"), feed.stats()["health"]
                h = feed.stats()["health"]["venues"]["okx"]
                assert "down" in h["alerts"] and h["connections"] == 0
        finally:
            if sim is not None:
                await sim.__aexit__(None, None, None)

    run(main())


def test_live_feed_thread_malformed_messages_are_an_error_burst():
    pytest.importorskip("websockets")
    import threading
    import time

    import fastbook as fb
    from fastbook.testing import ExchangeSimulator

    got: list[Alert] = []
    seen = threading.Event()
    read: list[dict] = []
    feed: fb.LiveFeed

    def on_alert(a: Alert) -> None:
        got.append(a)
        read.append(feed.stats())        # takes the driver's lock: not held while called
        if a.kind == "errors":
            seen.set()

    sim = ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=50, seed=3)
    sim.start()
    try:
        with fb.LiveFeed(["okx:BTC-USDT"], endpoints=sim.endpoints, health=QUIET,
                         on_alert=on_alert, health_every_s=0.1) as feed:
            assert feed.wait_live(10)
            time.sleep(0.3)
            sim.inject("okx", "malformed", count=3)
            assert seen.wait(10), feed.health.summary()   # no lock: it fails, never hangs
            a = next(a for a in got if a.kind == "errors")
            assert a.level == "warning" and a.value >= 3 and a.limit == 3
            assert "errors" in feed.stats()["health"]["venues"]["okx"]["alerts"]
            assert feed.health.summary()["venues"]["okx"]["errors_per_min"] > 0
            assert len(read) == len(got) and feed.health.callback_errors == 0
    finally:
        sim.stop()


def test_live_dropped_messages_are_a_resync_burst():
    pytest.importorskip("websockets")
    import fastbook as fb
    from fastbook.live import BookState
    from fastbook.testing import ExchangeSimulator
    from tests.live.servers import until

    async def main():
        got: list[Alert] = []
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=50, seed=3) as sim:
            async with fb.live(["okx:BTC-USDT"], endpoints=sim.endpoints, health=QUIET,
                               on_alert=got.append, health_every_s=0.1) as feed:
                assert await feed.wait_live(10)
                for n in (1, 2):
                    sim.inject("okx", "drop")
                    assert await until(lambda n=n: feed.stats()["venues"]["okx"]["resyncs"]
                                       >= n, 8)
                    assert await until(lambda: feed.state("okx", "BTC-USDT")
                                       is BookState.LIVE, 8)
                assert await wait_for_alert(got, "resyncs", "warning"), feed.stats()["health"]
                # two in the window of 2 s; once they age out of it the alert clears
                assert await wait_for_alert(got, "resyncs", "cleared"), feed.stats()["health"]
                assert [(a.kind, a.level) for a in got] == [("resyncs", "warning"),
                                                            ("resyncs", "cleared")]

    run(main())


def test_live_options_are_checked():
    pytest.importorskip("websockets")
    import fastbook as fb

    with pytest.raises(ValueError, match="unknown threshold 'stale'"):
        fb.live(["okx:BTC-USDT"], health={"stale": 1})
    with pytest.raises(ValueError, match=r"HealthThresholds\.stale_s"):
        fb.live(["okx:BTC-USDT"], health={"stale_s": -1})
    with pytest.raises(ValueError, match="health_every_s"):
        fb.live(["okx:BTC-USDT"], health=True, health_every_s=0)
    assert fb.live(["okx:BTC-USDT"]).health is None
    assert "health" not in fb.live(["okx:BTC-USDT"]).stats()
    assert fb.live(["okx:BTC-USDT"], health=True).stats()["health"]["venues"] == {}
    th = HealthThresholds(stale_s=3.0)
    assert fb.live(["okx:BTC-USDT"], health=th).health.thresholds is th
    got: list[Alert] = []
    feed = fb.live(["okx:BTC-USDT"], on_alert=got.append)       # on_alert alone: defaults
    assert feed.health.thresholds == HealthThresholds() and feed.health.callbacks == [got.append]


def test_rows_are_bounded_and_a_down_reason_reaches_the_message():
    mon = HealthMonitor(max_rows=3)
    for t in range(5):
        obs(mon, t)
    assert mon.take_rows()["ts_ns"].tolist() == [T0 + t * S for t in (2, 3, 4)]
    assert mon.rows_dropped == 2 and mon.summary()["rows_dropped"] == 2
    st = _stats(T0 + 5 * S, state="down")
    st["venues"]["okx"]["down_reason"] = "5 connection attempts failed; last: refused"
    a = mon.observe_live(st, T0 + 5 * S)
    assert kinds(a) == [("down", "critical")]
    assert a[0].message == "okx: down: 5 connection attempts failed; last: refused"
    with pytest.raises(ValueError, match="max_rows"):
        HealthMonitor(max_rows=0)


def test_windowed_p99_is_the_nearest_rank_bucket_of_the_new_samples_only():
    from fastbook import _select

    hist = _select.load("_hist", "_pyhist", "latency histogram")
    rng = np.random.default_rng(5)
    h, idle = LatencyHistogram(), LatencyHistogram()
    mon = HealthMonitor(HealthThresholds(exch_to_recv_p99_ns=1, window_s=100.0))
    h.record_many(rng.integers(1, 10**9, 5000))
    mon.observe_live(_stats(T0, hists=[h, idle], buckets=True), T0)
    seen = np.zeros(0, dtype=np.int64)
    for step in range(1, 4):
        new = np.sort(rng.integers(1, 10**7 * step, 777))
        h.record_many(new)
        t = T0 + step * S
        mon.observe_live(_stats(t, hists=[h, idle], buckets=True), t)
        # the window covers every sample since T0's observation
        seen = np.sort(np.concatenate([seen, new]))
        i = hist.bucket_index(int(seen[int(np.ceil(0.99 * len(seen))) - 1]))
        lo, hi = hist.bucket_low(i), hist.bucket_high(i)
        got = mon.summary()["venues"]["okx"]["exchange_to_receive_p99_ns"]
        assert got == lo + ((hi - lo + 1) >> 1), step
