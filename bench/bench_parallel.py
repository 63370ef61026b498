"""Parallel replay by instrument: N worker processes against one, on the ITCH benchmark day.

``python bench/bench_parallel.py`` prints one table; ``python -m pytest
bench/bench_parallel.py`` runs a small version (the smoke run). Settings:

* ``FASTBOOK_BENCH_PARALLEL_DAY``       an ITCH 5.0 BinaryFILE (default: the benchmark day
  that ``bench/bench_itch.py`` caches, with its ``.gz``, if there; else a synthetic day of
  ``FASTBOOK_BENCH_PARALLEL_MESSAGES`` messages, default 2,000,000, 500 symbols, written
  to a temporary directory)
* ``FASTBOOK_BENCH_PARALLEL_ROUNDS``    rounds per case, best and median kept (default 5)
* ``FASTBOOK_BENCH_PARALLEL_WORKERS``   the worker count (default 2, the cores here)

Cases, each from the file on disk (in the page cache after the first round), every one
checked against the single-process result (events, rows, final books):

1. plain replay (final books only): 1 process, then N workers with the pool cold (the
   first call of a process starts them) and warm (later calls reuse them);
2. the same from the ``.gz`` (one decompressor in the main process feeding the ring);
3. top-10 samples every 100 ms with three features (rows merged by message number).

The issue's target: N workers at least 0.8 x N of one process (1.6x on two cores).
Nothing is asserted on time.
"""

from __future__ import annotations

import gzip
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import fastbook as fb
from _days import cached_day  # bench/_days.py (bench/ is on sys.path)
from fastbook import parallel

ROUNDS = int(os.environ.get("FASTBOOK_BENCH_PARALLEL_ROUNDS", "5"))
WORKERS = int(os.environ.get("FASTBOOK_BENCH_PARALLEL_WORKERS", "2"))


def _day(directory: str) -> tuple[str, str]:
    """The plain day and its gzip (found in the bench cache, or written to ``directory``)."""
    path = cached_day("FASTBOOK_BENCH_PARALLEL_DAY")
    if not path:
        from fastbook.synth import itch_day

        n = int(os.environ.get("FASTBOOK_BENCH_PARALLEL_MESSAGES", "2000000"))
        path = os.path.join(directory, "day.itch")
        Path(path).write_bytes(itch_day(n, n_symbols=500))
    gz = path + ".gz"
    if not os.path.exists(gz):
        gz = os.path.join(directory, "day.itch.gz")
        Path(gz).write_bytes(gzip.compress(Path(path).read_bytes(), 1))
    return path, gz


def _same(one: Any, many: Any) -> None:
    """The parallel result is the single-process one (the parts a bench can afford)."""
    assert (many.messages, many.events, many.counts) == (one.messages, one.events, one.counts)
    assert len(many.books) == len(one.books)
    for i in range(len(one.books)):
        assert np.array_equal(one.books[i].orders(), many.books[i].orders())
    for name, column in one.samples.items():
        assert np.array_equal(column, many.samples[name], equal_nan=column.dtype.kind == "f")


def _time(fn: Any, rounds: int) -> tuple[float, float, Any]:
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), out


def run(path: str, gz: str, rounds: int, workers: int) -> list[dict[str, Any]]:
    """Every case: best and median seconds of one process and of the workers."""
    parallel.shutdown()                     # the first parallel call below starts cold
    rows: list[dict[str, Any]] = []
    cold_t0 = time.perf_counter()
    cold = fb.replay(path, "itch50", workers=workers)
    cold_s = time.perf_counter() - cold_t0
    sampled = {"every": "100ms", "features": ["mid", "imbalance_5", "ofi_5"]}
    for label, source, kw in (("plain file", path, {}), ("gzip file", gz, {}),
                              ("100 ms samples + 3 features", path, sampled)):
        b1, m1, one = _time(lambda s=source, k=kw: fb.replay(s, "itch50", **k), rounds)
        bn, mn, many = _time(
            lambda s=source, k=kw: fb.replay(s, "itch50", workers=workers, **k), rounds)
        _same(one, many)
        rows.append({"case": label, "one": b1, "one_median": m1, "many": bn,
                     "many_median": mn, "events": one.events,
                     "rows": len(one.samples.get("ts", ())),
                     "shards": [s["events"] for s in many.shards]})
    _same(fb.replay(path, "itch50"), cold)
    rows.insert(1, {"case": "plain file, pool cold", "one": rows[0]["one"],
                    "one_median": rows[0]["one_median"], "many": cold_s,
                    "many_median": cold_s, "events": cold.events, "rows": 0,
                    "shards": [s["events"] for s in cold.shards]})
    return rows


def report(rows: list[dict[str, Any]], workers: int, size: int) -> str:
    lines = [f"Parallel replay, {workers} workers vs 1 process ({size / 1e6:,.0f} MB day, "
             f"{os.cpu_count()} cores; best / median of the rounds):",
             f"{'case':<30} {'1 process':>17} {f'{workers} workers':>17} {'speed-up':>16}  "
             f"events per worker"]
    for r in rows:
        lines.append(
            f"{r['case']:<30} {r['one']:>7.3f} / {r['one_median']:.3f} s "
            f"{r['many']:>7.3f} / {r['many_median']:.3f} s "
            f"{r['one'] / r['many']:>6.2f}x / {r['one_median'] / r['many_median']:.2f}x  "
            + " / ".join(f"{e:,}" for e in r["shards"]))
    lines.append(f"target: at least {0.8 * workers:.1f}x")
    return "\n".join(lines)


def test_parallel_replay(capsys) -> None:  # type: ignore[no-untyped-def]
    from fastbook.synth import itch_day

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "day.itch")
        Path(path).write_bytes(itch_day(100_000, n_symbols=20))
        gz = path + ".gz"
        Path(gz).write_bytes(gzip.compress(Path(path).read_bytes(), 1))
        text = report(run(path, gz, 1, 2), 2, os.path.getsize(path))
    with capsys.disabled():
        print("\n" + text)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        day, day_gz = _day(tmp)
        print(report(run(day, day_gz, ROUNDS, WORKERS), WORKERS, os.path.getsize(day)),
              flush=True)
