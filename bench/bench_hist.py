"""Latency recording cost: fastbook's LatencyHistogram against its baselines, one run.

Rows (ns per value, best of ``FASTBOOK_BENCH_HIST_REPEATS`` rounds, all in this process):

* ``hist_record nogil``: the compiled ``record_many`` loop, which is the inline
  ``hist_record`` of ``_hist.pxd`` called per value without the GIL: what the
  driver's Cython hot path pays per latency (goal: well under 5 ns).
* ``twin record_many``: the pure-Python twin's vectorized numpy equivalent.
* ``compiled record()`` / ``twin record()``: one Python-level call per value.
* ``prometheus observe()``: ``prometheus_client.Histogram.observe`` per value,
  the usual alternative (skipped without prometheus-client).
* ``RateMeter.add``: the per-message rate bookkeeping (goal: under ~200 ns).

Each row's ratio is against ``prometheus observe()`` measured in the same run
(or against ``twin record()`` without prometheus-client). No figure is asserted.
``python bench/bench_hist.py`` prints the table; the pytest run prints it too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from fastbook import _hist, _pyhist
from fastbook.metrics import RateMeter

VALUES = int(os.environ.get("FASTBOOK_BENCH_HIST_VALUES", "2000000"))
CALLS = int(os.environ.get("FASTBOOK_BENCH_HIST_CALLS", "200000"))
REPEATS = int(os.environ.get("FASTBOOK_BENCH_HIST_REPEATS", "5"))


def _best(fn: Callable[[], None], n: int) -> float:
    """Best ns per item over REPEATS rounds of ``fn`` (which handles ``n`` items)."""
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - t) / n)
    return best


def measure() -> dict[str, float]:
    """ns per value of each row."""
    rng = np.random.default_rng(7)
    values = rng.lognormal(11, 1.5, VALUES).astype(np.int64)  # ~60 us median
    calls = values[:CALLS].tolist()
    rows: dict[str, float] = {}
    h = _hist.LatencyHistogram()
    rows["hist_record nogil"] = _best(lambda: h.record_many(values), VALUES)
    t = _pyhist.LatencyHistogram()
    rows["twin record_many"] = _best(lambda: t.record_many(values), VALUES)

    def per_call(record: Callable[[int], object]) -> Callable[[], None]:
        def run() -> None:
            for v in calls:
                record(v)
        return run

    rows["compiled record()"] = _best(per_call(h.record), CALLS)
    rows["twin record()"] = _best(per_call(t.record), CALLS)
    try:
        import prometheus_client
    except ImportError:
        pass
    else:
        registry = prometheus_client.CollectorRegistry()
        ph = prometheus_client.Histogram("bench_latency_seconds", "bench", registry=registry,
                                         buckets=[b / 1e9 for b in (1e3, 1e4, 1e5, 1e6, 1e7)])
        secs = [v / 1e9 for v in calls]

        def observe() -> None:
            for s in secs:
                ph.observe(s)
        rows["prometheus observe()"] = _best(observe, CALLS)
    meter = RateMeter(10)
    stamps = (np.arange(CALLS, dtype=np.int64) * 1000 + 10**12).tolist()

    def add() -> None:
        for s in stamps:
            meter.add(200, s)
    rows["RateMeter.add"] = _best(add, CALLS)
    return rows


def table(rows: dict[str, float]) -> str:
    base = "prometheus observe()" if "prometheus observe()" in rows else "twin record()"
    lines = [f"{'row':<22}{'ns/value':>10}{'ratio':>10}   (ratio: ns / {base})"]
    for name, ns in rows.items():
        lines.append(f"{name:<22}{ns:>10.2f}{ns / rows[base]:>10.4f}")
    return "\n".join(lines)


def test_hist_recording_cost(capsys) -> None:  # type: ignore[no-untyped-def]
    rows = measure()
    with capsys.disabled():
        print("\n" + table(rows))
    assert all(ns > 0 for ns in rows.values())


if __name__ == "__main__":
    print(table(measure()))
