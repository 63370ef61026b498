"""Many files on Dask: ``fastbook.dask.replay_many`` over 8 ITCH days on a 2-worker
LocalCluster against the same 8 replays run one after the other in this process.

``python bench/bench_dask.py`` prints the table; ``python -m pytest bench/bench_dask.py``
runs a small version (the smoke run). Settings:

* ``FASTBOOK_BENCH_DASK_DAY``       an ITCH 5.0 BinaryFILE used as every one of the files
  (default: the 1M-message benchmark day ``bench/bench_itch.py`` caches, if there, else a
  synthetic day of ``FASTBOOK_BENCH_DASK_MESSAGES`` messages, default 1,000,000, 500 symbols)
* ``FASTBOOK_BENCH_DASK_FILES``     how many files (default 8): links to the day, named by
  date (``2024060N.itch``), so the dataset has a date partition per file
* ``FASTBOOK_BENCH_DASK_WORKERS``   worker processes (default 2)
* ``FASTBOOK_BENCH_DASK_SHARDS``    instrument shards a file (default 1; 2 also runs)

Both sides do the same work: replay each file with top-10 samples every second of
exchange time to Parquet (the serial side one file per day, replay_many the
partitioned dataset). The start-up (workers spawned, fastbook imported on them) is
timed apart from the run ("tasks": submitting to the manifest written) and from the
cluster's shutdown ("close"). A second baseline does replay_many's own work (replay,
then split into per-symbol parts) on one in-process worker thread, and the last row
partitions by date only (one part a task, no per-symbol files): together they show
what the per-symbol parts cost and what the parallel engine gains. The issue's
target: at least 1.6x the serial time.
Nothing is asserted; every run checks its rows against the serial run's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import fastbook as fb
from _days import cached_day  # bench/_days.py (bench/ is on sys.path)
from fastbook.dask import replay_many

FILES = int(os.environ.get("FASTBOOK_BENCH_DASK_FILES", "8"))
WORKERS = int(os.environ.get("FASTBOOK_BENCH_DASK_WORKERS", "2"))
SHARDS = int(os.environ.get("FASTBOOK_BENCH_DASK_SHARDS", "1"))
OPTIONS: dict[str, Any] = {"every": "1s", "depth": 10}


def _day(work: Path) -> Path:
    path = cached_day("FASTBOOK_BENCH_DASK_DAY", 1_000_000)
    if path:
        return Path(path)
    from fastbook.synth import write_itch_day

    n = int(os.environ.get("FASTBOOK_BENCH_DASK_MESSAGES", "1000000"))
    out = work / "day.itch"
    write_itch_day(out, n, n_symbols=500)
    return out


def make_files(work: Path, day: Path, n: int) -> list[str]:
    """``n`` dated names for the one day (symlinks: no copy, the page cache shared)."""
    files = []
    for i in range(n):
        link = work / f"202406{i + 1:02d}.itch"
        os.symlink(os.path.abspath(day), link)
        files.append(str(link))
    return files


def serial(files: list[str], work: Path) -> dict[str, Any]:
    out = work / "serial"
    out.mkdir()
    t0 = time.perf_counter()
    rows = messages = 0
    for path in files:
        r = fb.replay(path, "itch50", output=out / (Path(path).stem + ".parquet"), **OPTIONS)
        rows += r.rows
        messages += r.messages
    return {"seconds": time.perf_counter() - t0, "rows": rows, "messages": messages}


def same_work_serially(files: list[str], work: Path) -> dict[str, Any]:
    """replay_many's own work on one core: an in-process cluster of one worker thread."""
    import distributed
    from distributed.comm import inproc

    inproc.global_manager._ip = "127.0.0.1"     # do not route a socket towards 8.8.8.8
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        return on_dask(files, work, 1, 1, client=client, name="serial-dataset")


def on_dask(files: list[str], work: Path, shards: int, workers: int, client: Any = None,
            name: str = "", partition: tuple[str, ...] = ("date", "symbol")
            ) -> dict[str, Any]:
    out = work / (name or f"dask-{shards}-{len(partition)}")
    t0 = time.perf_counter()
    result = replay_many(files, "itch50", out=out, shards=shards, workers=workers,
                         client=client, progress=False, timeout=3600, partition=partition,
                         **OPTIONS)
    total = time.perf_counter() - t0
    if not result.ok:
        raise RuntimeError(result.summary())
    return {"seconds": total, "startup": result.startup_seconds, "run": result.seconds,
            "rows": result.rows, "messages": result.messages, "workers": result.workers}


def report(base: dict[str, Any], same: dict[str, Any], runs: dict[str, dict[str, Any]],
           n_files: int, size: int) -> str:
    lines = [f"{n_files} files of {size / 1e6:.1f} MB ({base['messages'] // n_files:,} "
             f"messages each), top-10 samples every 1 s to Parquet; {os.cpu_count()} CPUs "
             f"(shared)",
             f"{'run':34s} {'total s':>8s} {'start-up':>9s} {'tasks s':>8s} {'close':>6s} "
             f"{'vs serial':>10s} {'tasks vs serial':>16s}",
             f"{'serial (one process)':34s} {base['seconds']:8.2f} {'':>9s} "
             f"{base['seconds']:8.2f} {'':>6s} {1.0:9.2f}x {1.0:15.2f}x",
             f"{'the same dataset, 1 thread':34s} {same['run']:8.2f} {'':>9s} "
             f"{same['run']:8.2f} {'':>6s} {base['seconds'] / same['run']:9.2f}x "
             f"{base['seconds'] / same['run']:15.2f}x"]
    for name, r in runs.items():
        differ = "" if r["rows"] == base["rows"] else "  ROWS DIFFER"
        close = r["seconds"] - r["startup"] - r["run"]
        lines.append(f"{name:34s} {r['seconds']:8.2f} {r['startup']:9.2f} {r['run']:8.2f} "
                     f"{close:6.2f} {base['seconds'] / r['seconds']:9.2f}x "
                     f"{base['seconds'] / r['run']:15.2f}x{differ}")
    lines.append("target: replay_many at least 1.6x the serial time (8 files, 2 workers)")
    best = min(r["run"] for name, r in runs.items() if "date only" not in name)
    lines.append(f"the parallel engine alone: the same dataset's tasks take {best:.2f} s on "
                 f"the cluster, {same['run']:.2f} s on one thread ({same['run'] / best:.2f}x)")
    return "\n".join(lines)


def run(day: Path | None, n_files: int, shard_counts: list[int], workers: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="fastbook-bench-dask-"))
    try:
        files = make_files(work, day or _day(work), n_files)
        base = serial(files, work)
        same = same_work_serially(files, work)
        runs = {f"replay_many {workers} workers, {k} shard(s)": on_dask(files, work, k, workers)
                for k in shard_counts}
        runs[f"{workers} workers, 1 shard, by date only"] = on_dask(
            files, work, 1, workers, partition=("date",))
        return report(base, same, runs, n_files, os.path.getsize(files[0]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_dask_smoke(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pytest

    pytest.importorskip("distributed")
    from fastbook.synth import write_itch_day

    day = tmp_path / "day.itch"
    write_itch_day(day, 50_000, n_symbols=20)
    text = run(day, 3, [1, 2], 2)
    assert "ROWS DIFFER" not in text
    with capsys.disabled():
        print("\n" + text)


if __name__ == "__main__":
    print(run(None, FILES, sorted({SHARDS, 2}), WORKERS))
