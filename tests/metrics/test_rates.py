"""RateMeter: sliding-window messages and bytes per second, and which histogram is chosen."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fastbook import _pyhist, metrics

S = 1_000_000_000
T0 = 5_000 * S + 123  # an arbitrary monotonic clock origin


def test_rates_over_the_window():
    m = metrics.RateMeter(window=4)
    assert m.rates(T0) == (0.0, 0.0)
    for k in range(10):  # 10 messages of 100 bytes per second for 10 s
        for j in range(10):
            m.add(100, T0 + k * S + j * (S // 10))
    mps, bps = m.rates(T0 + 9 * S + 95 * S // 100)
    # the window holds the last 4 whole-second slots: 40 messages
    assert mps == pytest.approx(10.0) and bps == pytest.approx(1000.0)
    assert m.to_dict(T0 + 9 * S + 95 * S // 100)["messages"] == 100
    assert m.to_dict(T0 + 9 * S + 95 * S // 100)["bytes"] == 10_000


def test_a_young_meter_divides_by_its_age_and_quiet_seconds_expire():
    m = metrics.RateMeter(window=10)
    for _ in range(30):
        m.add(10, T0)
    assert m.rates(T0 + S // 2) == (30.0, 300.0)  # younger than a second: per 1 s
    assert m.rates(T0 + 3 * S)[0] == pytest.approx(10.0)
    assert m.rates(T0 + 100 * S) == (0.0, 0.0)
    assert m.messages_total == 30 and m.bytes_total == 300


def test_time_going_backwards_counts_in_the_current_second():
    m = metrics.RateMeter(window=2)
    m.add(1, T0 + 5 * S)
    m.add(1, T0)  # a clock step back: no crash, still counted
    assert m.to_dict(T0 + 5 * S)["messages"] == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3"])
def test_bad_window_is_refused(bad):
    with pytest.raises(ValueError, match="window"):
        metrics.RateMeter(window=bad)


def test_no_extensions_picks_the_twin():
    code = ("import fastbook.metrics as m, fastbook._select as s; "
            "print(m.LatencyHistogram.__module__, s.compiled('_hist'))")
    env = {**os.environ, "FASTBOOK_NO_EXTENSIONS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == [_pyhist.__name__, "False"]
