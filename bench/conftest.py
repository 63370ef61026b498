"""pytest-benchmark suite of fastbook: shared workload, result store and summary table.

``python -m pytest bench`` runs it; ``--benchmark-disable`` runs every pass once
as a smoke test. See ``bench/README.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import fastbook
from fastbook.synth import L2Workload, l2_workload

_RESULTS = pytest.StashKey[dict[str, "Result"]]()
_PREP = pytest.StashKey[dict[str, Any]]()

#: The floor every per-update pass is compared with.
FLOOR = "dict floor"


# -- collection: bench_*.py files are benchmark modules -----------------------------------

def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # The project's python_files is the default (test_*.py); files named on the
    # command line are collected by pytest itself, so only add the others.
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") \
            and not parent.session.isinitpath(file_path):
        ihook = parent.session.gethookproxy(file_path)
        return ihook.pytest_pycollect_makemodule(module_path=file_path, parent=parent)
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastbook-bench")
    group.addoption("--l2-updates", type=int, default=1_000_000, metavar="N",
                    help="updates in the synthetic L2 workload (default 1,000,000)")
    group.addoption("--l2-seed", type=int, default=20240607, metavar="SEED",
                    help="seed of the synthetic L2 workload (default 20240607)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = {}
    config.stash[_PREP] = {}


# -- the workload ------------------------------------------------------------------------

@dataclass
class L2Inputs:
    """The workload plus the same updates pre-built as Python lists (the per-call passes' input)."""

    w: L2Workload
    sides: list[int]
    prices: list[int]
    qtys: list[int]
    prep_s: float
    #: Final state after snapshot + all updates, from a plain-dict replay:
    #: side -> list of (price, qty), best first.
    final: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.w)


@pytest.fixture(scope="session")
def l2(request: pytest.FixtureRequest) -> L2Inputs:
    """The default workload (1,000,000 updates), built once per session; its cost is prep."""
    n = request.config.getoption("--l2-updates")
    seed = request.config.getoption("--l2-seed")
    t0 = time.perf_counter()
    w = l2_workload(n, seed=seed)
    gen_s = time.perf_counter() - t0
    inputs = L2Inputs(w, w.sides.tolist(), w.prices.tolist(), w.qtys.tolist(),
                      prep_s=time.perf_counter() - t0)
    books: dict[int, dict[int, int]] = {1: {}, 2: {}}
    for s, p, q in zip(w.snapshot_sides.tolist(), w.snapshot_prices.tolist(),
                       w.snapshot_qtys.tolist(), strict=True):
        books[s][p] = q
    for s, p, q in zip(inputs.sides, inputs.prices, inputs.qtys, strict=True):
        if q:
            books[s][p] = q
        else:
            del books[s][p]  # KeyError here would mean the stream deletes an absent level
    inputs.final = {1: sorted(books[1].items(), reverse=True), 2: sorted(books[2].items())}
    request.config.stash[_PREP].update(
        updates=n, seed=seed, snapshot=int(w.snapshot_sides.shape[0]), gen_s=gen_s,
        prep_s=inputs.prep_s, structural=int(w.structural.sum()),
        final_levels=len(books[1]) + len(books[2]),
    )
    return inputs


# -- results -------------------------------------------------------------------------------

@dataclass
class Result:
    """One row of the summary: ``ops`` operations took ``seconds`` (median of rounds)."""

    name: str
    kind: str                      # "stream": per-update pass; "op": per-call cost; "memory"
    ops: int
    seconds: float
    order: int
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ns_per_op(self) -> float:
        return self.seconds / self.ops * 1e9 if self.ops else math.nan


@pytest.fixture
def record(request: pytest.FixtureRequest, benchmark: Any) -> Callable[..., Result | None]:
    """``record(name, kind, ops, seconds=None, note="", info_prefix="", **extra)`` -> Result.

    ``seconds`` defaults to the benchmark's median; pass it (and an
    ``info_prefix`` for the ``extra_info`` keys) for a time measured inside the
    benchmarked function. Per-op nanoseconds and rates go
    into ``benchmark.extra_info`` (so into ``--benchmark-json``). Nothing is stored
    when benchmarking is disabled (the smoke run has no timings).
    """
    results = request.config.stash[_RESULTS]

    def _record(name: str, kind: str, ops: int, seconds: float | None = None,
                note: str = "", info_prefix: str = "", **extra: Any) -> Result | None:
        info = benchmark.extra_info
        info.update(extra)
        if benchmark.disabled or benchmark.stats is None:
            return None
        if seconds is None:
            seconds = benchmark.stats.stats.median
        res = Result(name, kind, ops, seconds, len(results), note, dict(extra))
        info[info_prefix + "ops"] = ops
        if kind == "stream":
            info[info_prefix + "ns_per_update"] = round(res.ns_per_op, 2)
            info[info_prefix + "updates_per_s"] = round(ops / seconds)
        elif kind == "op":
            info[info_prefix + "ns_per_call"] = round(res.ns_per_op, 2)
        results[name] = res
        return res

    return _record


# -- the summary table ------------------------------------------------------------------------

def _rate(per_s: float) -> str:
    return f"{per_s / 1e6:.2f}M" if per_s >= 1e6 else f"{per_s / 1e3:.0f}k"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, {})
    prep = config.stash.get(_PREP, {})
    if not prep:
        return
    tr = terminalreporter
    tr.write_sep("=", "fastbook L2 benchmark summary")
    if not fastbook.COMPILED:
        tr.write_line("WARNING: fastbook.COMPILED is False: the 'fastbook' passes measured the "
                      "pure-Python twin (FASTBOOK_NO_EXTENSIONS is set or the build is missing)")
    tr.write_line(
        f"workload: l2_workload({prep['updates']:,}, seed={prep['seed']}): "
        f"{prep['snapshot']:,}-level snapshot, {prep['structural']:,} structural updates, "
        f"{prep['final_levels']:,} levels at the end; prep {prep['prep_s']:.2f} s "
        f"(generation {prep['gen_s']:.2f} s), not timed"
    )
    if not results:
        tr.write_line("benchmarks disabled: every pass ran once as a smoke test, no timings.")
        return
    floor = results.get(FLOOR)
    rows = sorted(results.values(), key=lambda r: r.order)

    tr.write_line("")
    tr.write_line("per-update passes (median of rounds; ratio = ns/update / dict floor's "
                  "ns/update, < 1 is faster than the floor)")
    head = f"{'pass':<38} {'updates':>9} {'median ms':>10} {'ns/update':>10} " \
           f"{'updates/s':>10} {'vs dict':>8}  target"
    tr.write_line(head)
    tr.write_line("-" * len(head) + "-" * 22)
    for r in rows:
        if r.kind != "stream":
            continue
        ratio = f"{r.ns_per_op / floor.ns_per_op:.2f}x" if floor else "-"
        tr.write_line(f"{r.name:<38} {r.ops:>9,} {r.seconds * 1e3:>10.1f} {r.ns_per_op:>10.1f} "
                      f"{_rate(r.ops / r.seconds):>10} {ratio:>8}  {_target(r, floor)}")

    tr.write_line("")
    tr.write_line("per-operation costs (absolute)")
    head = f"{'operation':<52} {'ns':>9}  {'target':<16} how"
    tr.write_line(head)
    tr.write_line("-" * (len(head) + 40))
    for name, ns, target, how in _derived(results):
        tr.write_line(f"{name:<52} {ns:>9.1f}  {target:<16} {how}")

    mem = [r for r in rows if r.kind == "memory"]
    for r in mem:
        tr.write_line("")
        tr.write_line(f"memory ({r.note})")
        for key, value in r.extra.items():
            tr.write_line(f"  {key:<44} {value}")
    tr.write_line("")
    tr.write_line("The machine may be shared: compare ratios from one run, not absolute figures "
                  "across runs.")


def _target(r: Result, floor: Result | None) -> str:
    if r.name == "fastbook set":
        ok = r.ns_per_op <= 120 and (floor is None or r.ns_per_op < floor.ns_per_op)
        return f"<= 120 ns and < dict: {_verdict(ok)}"
    if r.name == "fastbook apply (batch)":
        return f">= 50M/s: {_verdict(r.ops / r.seconds >= 50e6)}"
    return ""


def _derived(results: dict[str, Result]) -> list[tuple[str, float, str, str]]:
    """Per-read / per-snapshot costs: measured directly, or as differences of passes."""
    out: list[tuple[str, float, str, str]] = []
    s = results.get("structural only: set")
    if s is not None and "paired_ns_per_read" in s.extra:
        ns = s.extra["paired_ns_per_read"]
        out.append(("bbo() read after a structural update (both sides)", ns,
                    f"<= 100: {_verdict(ns <= 100)}",
                    f"median paired (set+bbo - set) over {s.ops:,} structural updates"))
    r = results.get("fastbook set + bbo() every update")
    if r is not None and "paired_ns_per_read" in r.extra:
        out.append(("bbo() read after every update (both sides)", r.extra["paired_ns_per_read"],
                    "", f"median paired (set+bbo - set) over all {r.ops:,} updates"))
    r = results.get("fastbook set + top(10, out) every 100")
    if r is not None and "paired_ns_per_snapshot" in r.extra:
        out.append(("top(10, out=) after an update, per snapshot",
                    r.extra["paired_ns_per_snapshot"], "<= 1 us: " + _verdict(
                        r.extra["paired_ns_per_snapshot"] <= 1000),
                    f"median paired (set+top - set), top after each of "
                    f"{r.extra['paired_updates']:,} updates"))
    for name, target in (("bbo() on a warm book", 100), ("top(10, out=) on a warm book", 1000)):
        r = results.get(name)
        if r is not None:
            label = "<= 100" if target == 100 else "<= 1 us"
            out.append((name + " (microbenchmark)", r.ns_per_op,
                        f"{label}: {_verdict(r.ns_per_op <= target)}",
                        f"median / {r.ops:,} calls, loop overhead included"))
    return out
