"""L2 book benchmarks over the seeded synthetic workload (``fastbook.synth.l2_workload``).

Every per-update pass runs on a fresh book loaded with the snapshot (loading is
the untimed ``setup``), over the same stream, and checks its final state against
a plain-dict replay, so a smoke run (``--benchmark-disable``) is also a
correctness run. Timed loops are plain ``for`` loops over pre-built Python lists
with the method bound to a local first: the shape a user's per-update loop has.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastbook
from fastbook import _pycore
from fastbook.synth import L2Workload

BID, ASK = fastbook.BID, fastbook.ASK
#: Rounds of the long (whole-stream) passes; each round is one full replay.
ROUNDS = 7
#: Updates given to the pure-Python twin (it is about 20x slower).
TWIN_UPDATES = 100_000
#: Calls per round of the warm-book microbenchmarks.
MICRO_CALLS = 200_000
#: Interleaved (base, base + read) pairs behind each derived per-read cost.
PAIRS = 5
#: Updates of the stream prefix behind the paired per-snapshot cost of top().
PAIRED_PREFIX = 200_000
#: Levels per side of the memory benchmark.
MEMORY_LEVELS = 1_000_000

pytestmark = pytest.mark.benchmark(disable_gc=True, group="l2")


# -- helpers -------------------------------------------------------------------------------

def _fresh(w: L2Workload, cls: Any = fastbook.Book) -> Any:
    book = cls(price_decimals=w.price_decimals, qty_decimals=w.qty_decimals)
    book.apply(w.snapshot_sides, w.snapshot_prices, w.snapshot_qtys)
    return book


def _setup_fresh(w: L2Workload, made: list[Any], cls: Any = fastbook.Book,
                 extra: tuple[Any, ...] = ()) -> Callable[[], tuple[tuple[Any, ...], dict]]:
    """A pedantic ``setup``: a fresh snapshot-loaded book per round, remembered in ``made``."""
    def setup() -> tuple[tuple[Any, ...], dict]:
        book = _fresh(w, cls)
        made.append(book)
        return (book, *extra), {}
    return setup


def _levels(book: Any, side: int) -> list[tuple[int, int]]:
    prices, qtys = book.to_arrays(side)
    return list(zip(prices.tolist(), qtys.tolist(), strict=True))


def _check_final(book: Any, final: dict[int, list[tuple[int, int]]]) -> None:
    assert _levels(book, BID) == final[BID]
    assert _levels(book, ASK) == final[ASK]
    assert book.missing_deletes == 0
    assert not book.is_crossed()


# -- the timed loops (kept identical in shape) -------------------------------------------------

def loop_dict(books: tuple[Any, dict[int, int], dict[int, int]], sides: list[int],
              prices: list[int], qtys: list[int]) -> None:
    for s, p, q in zip(sides, prices, qtys, strict=True):
        d = books[s]
        if q:
            d[p] = q
        else:
            d.pop(p, None)


def loop_set(book: Any, sides: list[int], prices: list[int], qtys: list[int]) -> None:
    set_ = book.set
    for s, p, q in zip(sides, prices, qtys, strict=True):
        set_(s, p, q)


def loop_set_bbo(book: Any, sides: list[int], prices: list[int], qtys: list[int]) -> Any:
    set_ = book.set
    bbo = book.bbo
    last = None
    for s, p, q in zip(sides, prices, qtys, strict=True):
        set_(s, p, q)
        last = bbo()
    return last


def loop_set_top(book: Any, chunks: list[tuple[list[int], list[int], list[int]]],
                 out: np.ndarray) -> np.ndarray:
    set_ = book.set
    top = book.top
    for cs, cp, cq in chunks:
        for s, p, q in zip(cs, cp, cq, strict=True):
            set_(s, p, q)
        top(10, out=out)
    return out


def loop_set_top_each(book: Any, sides: list[int], prices: list[int], qtys: list[int],
                      out: np.ndarray) -> np.ndarray:
    set_ = book.set
    top = book.top
    for s, p, q in zip(sides, prices, qtys, strict=True):
        set_(s, p, q)
        top(10, out=out)
    return out


def _paired_cost(benchmark: Any, w: L2Workload, base: Callable[..., Any],
                 with_op: Callable[..., Any], args: tuple[Any, ...],
                 pairs: int = PAIRS) -> float | None:
    """Median over interleaved rounds of ``time(with_op) - time(base)``, in seconds.

    Each round runs both loops on fresh snapshot-loaded books, alternating which
    goes first; the median of the per-round differences cancels most of the
    drift of a shared machine. None when benchmarking is disabled.
    """
    if benchmark.disabled:
        return None
    diffs = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(pairs):
            order = [(base, _fresh(w)), (with_op, _fresh(w))]
            if i % 2:
                order.reverse()
            took = {}
            for fn, book in order:
                t0 = time.perf_counter()
                fn(book, *args)
                took[fn] = time.perf_counter() - t0
            diffs.append(took[with_op] - took[base])
    finally:
        if gc_was_enabled:
            gc.enable()
    return float(np.median(diffs))


# -- per-update passes over the whole stream ---------------------------------------------------

def test_dict_floor(benchmark: Any, record: Any, l2: Any) -> None:
    """Plain dict per side: the floor of any per-update Python loop."""
    made: list[Any] = []
    snap = list(zip(l2.w.snapshot_sides.tolist(), l2.w.snapshot_prices.tolist(),
                    l2.w.snapshot_qtys.tolist(), strict=True))

    def setup() -> tuple[tuple[Any, ...], dict]:
        books: tuple[Any, dict[int, int], dict[int, int]] = (None, {}, {})
        for s, p, q in snap:
            books[s][p] = q
        made.append(books)
        return (books, l2.sides, l2.prices, l2.qtys), {}

    benchmark.pedantic(loop_dict, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    books = made[-1]
    assert sorted(books[BID].items(), reverse=True) == l2.final[BID]
    assert sorted(books[ASK].items()) == l2.final[ASK]
    record("dict floor", "stream", len(l2))


def test_fastbook_set(benchmark: Any, record: Any, l2: Any) -> None:
    made: list[Any] = []
    benchmark.pedantic(loop_set, setup=_setup_fresh(l2.w, made, extra=(l2.sides, l2.prices,
                                                                       l2.qtys)),
                       rounds=ROUNDS, warmup_rounds=1)
    _check_final(made[-1], l2.final)
    record("fastbook set", "stream", len(l2))


def test_fastbook_set_bbo(benchmark: Any, record: Any, l2: Any) -> None:
    made: list[Any] = []
    last = benchmark.pedantic(loop_set_bbo,
                              setup=_setup_fresh(l2.w, made, extra=(l2.sides, l2.prices,
                                                                    l2.qtys)),
                              rounds=ROUNDS, warmup_rounds=1)
    _check_final(made[-1], l2.final)
    assert last == (*l2.final[BID][0], *l2.final[ASK][0])
    extra = {}
    cost = _paired_cost(benchmark, l2.w, loop_set, loop_set_bbo, (l2.sides, l2.prices, l2.qtys))
    if cost is not None:
        extra["paired_ns_per_read"] = round(cost / len(l2) * 1e9, 2)
    record("fastbook set + bbo() every update", "stream", len(l2), **extra)


def test_fastbook_set_top10_every_100(benchmark: Any, record: Any, l2: Any) -> None:
    n = len(l2)
    chunks = [(l2.sides[i:i + 100], l2.prices[i:i + 100], l2.qtys[i:i + 100])
              for i in range(0, n, 100)]
    out = np.empty((4, 10), dtype=np.int64)
    made: list[Any] = []
    result = benchmark.pedantic(loop_set_top, setup=_setup_fresh(l2.w, made, extra=(chunks, out)),
                                rounds=ROUNDS, warmup_rounds=1)
    _check_final(made[-1], l2.final)
    assert result is out
    expect = np.zeros((4, 10), dtype=np.int64)
    for row, side in ((0, BID), (2, ASK)):
        for i, (p, q) in enumerate(l2.final[side][:10]):
            expect[row, i], expect[row + 1, i] = p, q
    np.testing.assert_array_equal(out, expect)
    # 10,000 snapshots cost well under the run-to-run noise of this pass, so the
    # per-snapshot cost is measured on its own: top after *every* update of a
    # prefix, paired with plain set over the same prefix.
    k = min(PAIRED_PREFIX, n)
    extra: dict[str, Any] = {"snapshots": len(chunks), "paired_updates": k}
    cost = _paired_cost(benchmark, l2.w,
                        lambda book, *a: loop_set(book, *a[:3]), loop_set_top_each,
                        (l2.sides[:k], l2.prices[:k], l2.qtys[:k], out))
    if cost is not None:
        extra["paired_ns_per_snapshot"] = round(cost / k * 1e9, 2)
    record("fastbook set + top(10, out) every 100", "stream", n, **extra)


def test_fastbook_apply_batch(benchmark: Any, record: Any, l2: Any) -> None:
    w = l2.w
    made: list[Any] = []
    applied = benchmark.pedantic(
        lambda book, s, p, q: book.apply(s, p, q),
        setup=_setup_fresh(w, made, extra=(w.sides, w.prices, w.qtys)),
        rounds=4 * ROUNDS, warmup_rounds=1,
    )
    assert applied == len(w)
    _check_final(made[-1], l2.final)
    record("fastbook apply (batch)", "stream", len(w))


SNAPSHOT_LEVELS = 20_000      # a side: a deep venue snapshot (Coinbase's level2 is this deep)


def _deep_snapshot(best_first: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bids then asks, ``SNAPSHOT_LEVELS`` each, best first as venues send them (or reversed)."""
    n = SNAPSHOT_LEVELS
    bids = 10_000_000 - np.arange(n, dtype=np.int64) * 5
    asks = 10_000_005 + np.arange(n, dtype=np.int64) * 5
    if not best_first:
        bids, asks = bids[::-1].copy(), asks[::-1].copy()
    sides = np.concatenate([np.full(n, BID, np.int8), np.full(n, ASK, np.int8)])
    return sides, np.concatenate([bids, asks]), np.full(2 * n, 7, np.int64)


@pytest.mark.parametrize("order", ["best first", "worst first"])
def test_deep_snapshot_load(benchmark: Any, record: Any, order: str) -> None:
    """``Book.apply`` of a 20,000-level-a-side snapshot into an empty book. Best first is
    the order venues send; applied in that order it used to be quadratic (each level went
    below the window, to the front of the sorted store). Worst first is the same run's
    baseline."""
    sides, prices, qtys = _deep_snapshot(order == "best first")
    made: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict]:
        book = fastbook.Book(price_decimals=2, qty_decimals=0)
        made.append(book)
        return (book,), {}

    applied = benchmark.pedantic(lambda book: book.apply(sides, prices, qtys), setup=setup,
                                 rounds=ROUNDS, warmup_rounds=1)
    assert applied == len(sides)
    book = made[-1]
    assert book.depth(BID) == book.depth(ASK) == SNAPSHOT_LEVELS
    assert book.bbo() == (10_000_000, 7, 10_000_005, 7)
    record(f"snapshot load, {order} ({SNAPSHOT_LEVELS // 1000}k/side)", "stream", len(sides))


def test_pure_python_twin_set(benchmark: Any, record: Any, l2: Any) -> None:
    """The pure-Python twin on a prefix: what the compiled core buys."""
    n = min(TWIN_UPDATES, len(l2))
    args = (l2.sides[:n], l2.prices[:n], l2.qtys[:n])
    made: list[Any] = []
    benchmark.pedantic(loop_set, setup=_setup_fresh(l2.w, made, cls=_pycore.Book, extra=args),
                       rounds=3, warmup_rounds=0)
    expect = _fresh(l2.w)
    expect.apply(l2.w.sides[:n], l2.w.prices[:n], l2.w.qtys[:n])
    for side in (BID, ASK):
        assert _levels(made[-1], side) == _levels(expect, side)
    record(f"pure-Python twin set ({n // 1000}k prefix)", "stream", n)


# -- BBO reads right after inserts and deletes ---------------------------------------------------

def test_bbo_after_structural_updates(benchmark: Any, record: Any, l2: Any) -> None:
    """Only the structural updates (a valid stream on its own), set alone vs set + bbo().

    Both loops run in every round on twin fresh books, in alternating order, and
    the per-read cost is the median of the per-round differences: pairing
    cancels most of the noise of a shared machine.
    """
    w = l2.w
    mask = w.structural
    sides, prices, qtys = (w.sides[mask].tolist(), w.prices[mask].tolist(),
                           w.qtys[mask].tolist())
    n = len(sides)
    pairs: list[tuple[float, float]] = []
    made: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict]:
        made.append((_fresh(w), _fresh(w)))
        return made[-1], {}

    def both(book_a: Any, book_b: Any) -> Any:
        clock = time.perf_counter
        if len(pairs) % 2:
            t0 = clock()
            last = loop_set_bbo(book_b, sides, prices, qtys)
            t1 = clock()
            loop_set(book_a, sides, prices, qtys)
            t2 = clock()
            pairs.append((t2 - t1, t1 - t0))
        else:
            t0 = clock()
            loop_set(book_a, sides, prices, qtys)
            t1 = clock()
            last = loop_set_bbo(book_b, sides, prices, qtys)
            t2 = clock()
            pairs.append((t1 - t0, t2 - t1))
        return last

    last = benchmark.pedantic(both, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    # Skipping the size changes leaves the same levels (with other sizes).
    for book in made[-1]:
        for side in (BID, ASK):
            assert book.to_arrays(side)[0].tolist() == [p for p, _ in l2.final[side]]
        assert book.missing_deletes == 0 and not book.is_crossed()
    assert _levels(made[-1][0], BID) == _levels(made[-1][1], BID)
    assert _levels(made[-1][0], ASK) == _levels(made[-1][1], ASK)
    assert last == made[-1][1].bbo()
    assert (last[0], last[2]) == (l2.final[BID][0][0], l2.final[ASK][0][0])
    set_s = float(np.median([a for a, _ in pairs]))
    bbo_s = float(np.median([b for _, b in pairs]))
    per_read = float(np.median([(b - a) / n * 1e9 for a, b in pairs]))
    extra = {"structural_updates": n, "paired_ns_per_read": round(per_read, 2)}
    record("structural only: set", "stream", n, seconds=set_s, info_prefix="set_", **extra)
    record("structural only: set + bbo()", "stream", n, seconds=bbo_s, info_prefix="set_bbo_",
           **extra)


# -- reads on a warm book -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def warm_book(l2: Any) -> Any:
    book = _fresh(l2.w)
    book.apply(l2.w.sides, l2.w.prices, l2.w.qtys)
    return book


def test_bbo_microbenchmark(benchmark: Any, record: Any, warm_book: Any, l2: Any) -> None:
    calls = range(MICRO_CALLS)

    def run() -> Any:
        bbo = warm_book.bbo
        last = None
        for _ in calls:
            last = bbo()
        return last

    last = benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    assert last == (*l2.final[BID][0], *l2.final[ASK][0])
    record("bbo() on a warm book", "op", MICRO_CALLS)


def test_top10_microbenchmark(benchmark: Any, record: Any, warm_book: Any, l2: Any) -> None:
    calls = range(MICRO_CALLS)
    out = np.empty((4, 10), dtype=np.int64)

    def run() -> np.ndarray:
        top = warm_book.top
        for _ in calls:
            top(10, out=out)
        return out

    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    np.testing.assert_array_equal(out, warm_book.top(10))
    assert out[0, 0] == l2.final[BID][0][0] and out[2, 0] == l2.final[ASK][0][0]
    record("top(10, out=) on a warm book", "op", MICRO_CALLS)


# -- memory ----------------------------------------------------------------------------------------

_MEMORY_CHILD = r"""
import json, os, sys
import numpy as np
import fastbook as fb

n = int(sys.argv[1])
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

# Bids rising and asks falling: every insert lands at the best end, so the
# build measures storage, not memmove.
sides = np.repeat(np.array([fb.BID, fb.ASK], dtype=np.int8), n)
prices = np.concatenate([np.arange(1_000_000, 1_000_000 + n, dtype=np.int64),
                         np.arange(4_000_000 + n, 4_000_000, -1, dtype=np.int64)])
qtys = np.ones(2 * n, dtype=np.int64)
# Reserved first: exactly n slots per side, so its RSS growth is the storage itself.
before = rss()
reserved = fb.Book(price_decimals=2, qty_decimals=3, capacity=n)
reserved.apply(sides, prices, qtys)
mid = rss()
book = fb.Book(price_decimals=2, qty_decimals=3)
book.apply(sides, prices, qtys)
after = rss()
def windows(b):
    # the compiled core's price windows (the pure-Python twin has none)
    if not hasattr(b, "_layout"):
        return 0
    return sum(b._layout(s)["window_nbytes"] for s in (fb.BID, fb.ASK))

assert reserved.nbytes == 16 * 2 * n + windows(reserved) and len(reserved) == 2 * n
json.dump({"levels": len(book), "nbytes": book.nbytes, "window_nbytes": windows(book),
           "capacity": book.capacity(fb.BID) + book.capacity(fb.ASK),
           "rss_growth": after - mid, "reserved_rss_growth": mid - before,
           "reserved_nbytes": reserved.nbytes, "crossed": book.is_crossed()}, sys.stdout)
"""


def _window_nbytes(book: Any) -> int:
    return sum(book._layout(s)["window_nbytes"] for s in (BID, ASK))


def test_memory_per_level(benchmark: Any, record: Any, l2: Any) -> None:
    """1,000,000 levels per side: 16 bytes per sorted slot plus the price windows.

    RSS is measured in a fresh child process, where earlier benchmarks' freed
    memory cannot hide the growth. The timed part is building the book. The
    workload's own final book (about 1,000 levels per side) is reported too.
    """
    n = MEMORY_LEVELS
    info = {}
    if sys.platform.startswith("linux"):
        proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(n)], check=True,
                              capture_output=True, text=True, timeout=300)
        child = json.loads(proc.stdout)
        assert child["levels"] == 2 * n and not child["crossed"]
        info["rss_growth_bytes_per_level"] = round(child["rss_growth"] / child["levels"], 2)
        info["reserved_nbytes_per_level"] = child["reserved_nbytes"] / (2 * n)
        info["reserved_rss_growth_bytes_per_level"] = round(
            child["reserved_rss_growth"] / (2 * n), 2)

    sides = np.repeat(np.array([BID, ASK], dtype=np.int8), n)
    prices = np.concatenate([np.arange(1_000_000, 1_000_000 + n, dtype=np.int64),
                             np.arange(4_000_000 + n, 4_000_000, -1, dtype=np.int64)])
    qtys = np.ones(2 * n, dtype=np.int64)
    made: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict]:
        made.append(fastbook.Book(price_decimals=2, qty_decimals=3))
        return (made[-1], sides, prices, qtys), {}

    benchmark.pedantic(lambda book, s, p, q: book.apply(s, p, q), setup=setup, rounds=3)
    if benchmark.stats is not None:
        info["build_ns_per_level"] = round(benchmark.stats.stats.median / (2 * n) * 1e9, 2)
    book = made[-1]
    capacity = book.capacity(BID) + book.capacity(ASK)
    assert len(book) == 2 * n
    window = _window_nbytes(book) if fastbook.COMPILED else 0
    assert (book.nbytes - window) / capacity == fastbook.BYTES_PER_LEVEL == 16
    # the workload's final book: a realistic depth
    w = l2.w
    real = fastbook.Book(price_decimals=w.price_decimals, qty_decimals=w.qty_decimals)
    real.apply(w.snapshot_sides, w.snapshot_prices, w.snapshot_qtys)
    real.apply(w.sides, w.prices, w.qtys)
    real_window = _window_nbytes(real) if fastbook.COMPILED else 0
    info = {
        "levels": len(book),
        "capacity_slots": capacity,
        "nbytes": book.nbytes,
        "window_nbytes": window,
        "sorted_nbytes_per_slot": (book.nbytes - window) / capacity,
        "nbytes_per_level": round(book.nbytes / len(book), 2),
        **info,
        "workload_book_levels": len(real),
        "workload_book_nbytes": real.nbytes,
        "workload_book_window_nbytes": real_window,
        "workload_book_nbytes_per_level": round(real.nbytes / len(real), 2),
    }
    record("memory", "memory", len(book),
           note=f"{n:,} levels per side, grown from the default capacity; "
                f"timed: building it with apply()", **info)
