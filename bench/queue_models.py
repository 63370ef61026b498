"""How wrong are the L2 queue position models? Measured against exact L3 FIFO positions.

``python bench/queue_models.py`` replays a synthetic ITCH day (``fastbook.synth.itch_day``)
through L3 books, follows every N-th real ADD as a virtual own order, feeds each model of
``fastbook.queue`` only what an L2 user sees (the level size at the order's price after
each event, the executions at that price, the order's own partial cancels) and compares the
estimate with ``OrderBook.queue_position`` after every event touching the level, until the
order leaves (``fastbook.queue.compare_with_l3`` does the replay). It prints, per model:

* the error ``estimate - exact`` in shares and relative to the level's size (mean, median,
  p10, p90, p99, mean absolute), over all observations and at three ages (1-10, 11-100 and
  more than 100 events at the level since the order was placed);
* the exact-information check: observations where nobody but the tracked orders cancelled
  at the level must show an error of exactly 0 for every model (the script fails otherwise);
* fill timing against the order's first real execution: same event, early, late (with the
  median gap in exchange time), missed (executed, never filled by the model) and false fills
  (filled by the model, never executed);
* the replay's time with the trackers and without them (the same L3 replay, same run): the
  trackers' cost as a ratio; and the cost of one ``on_level`` / ``on_trade`` call against an
  empty Python method call measured in the same run.

Sizes (the default is small, a few seconds):

* ``FASTBOOK_BENCH_QUEUE_MESSAGES`` ITCH messages (default 300,000; the documented bigger run
  is 3,000,000, about a minute)
* ``FASTBOOK_BENCH_QUEUE_SYMBOLS``  symbols (default 10)
* ``FASTBOOK_BENCH_QUEUE_EVERY``    every N-th ADD is followed (default 40)
* ``FASTBOOK_BENCH_QUEUE_SEED``     the day's seed (default 20240607)
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from fastbook import ASK, BID
from fastbook.codecs.itch50 import decode_events
from fastbook.events import Action
from fastbook.l3 import OrderBook
from fastbook.queue import QueueTracker, compare_with_l3
from fastbook.synth import itch_day

MESSAGES = int(os.environ.get("FASTBOOK_BENCH_QUEUE_MESSAGES", 300_000))
SYMBOLS = int(os.environ.get("FASTBOOK_BENCH_QUEUE_SYMBOLS", 10))
EVERY = int(os.environ.get("FASTBOOK_BENCH_QUEUE_EVERY", 40))
SEED = int(os.environ.get("FASTBOOK_BENCH_QUEUE_SEED", 20240607))
AGES = ((1, 10), (11, 100), (101, None))


def plain_replay(events: np.ndarray) -> float:
    """The baseline: the same per-event L3 replay from Python, with no tracker; seconds."""
    t0 = time.perf_counter()
    books: dict[int, Any] = {}
    act, inst_col, side_col = events["action"], events["instrument"], events["side"]
    price_col, qty_col, oid_col, new_col = (events["price"], events["qty"], events["order_id"],
                                            events["new_order_id"])
    for row in range(len(events)):
        action = int(act[row])
        if action not in (1, 2, 3, 4, 5):
            continue
        inst = int(inst_col[row])
        ob = books.get(inst)
        if ob is None:
            ob = books[inst] = OrderBook(price_decimals=4)
        oid = int(oid_col[row])
        if action == Action.ADD:
            side, price = int(side_col[row]), int(price_col[row])
            ob.add(oid, side, price, int(qty_col[row]))
            ob.qty_at(side, price)
            continue
        rec = ob.order(oid)
        assert rec is not None, f"row {row}: order {oid} is not in the book"
        side, price, _ = rec
        if action == Action.EXECUTE:
            ob.execute(oid, int(qty_col[row]))
        elif action == Action.REDUCE:
            ob.reduce(oid, int(qty_col[row]))
        elif action == Action.DELETE:
            ob.delete(oid)
        else:
            ob.replace(oid, int(new_col[row]), int(qty_col[row]), int(price_col[row]))
        ob.qty_at(side, price)
    return time.perf_counter() - t0


class _Nothing:
    def on_level(self, side: int, price: int, qty: int) -> None:
        """The baseline: a Python method call that does nothing."""


def per_call_ns(n: int = 200_000) -> dict[str, float]:
    """ns per tracker call (one own order at the level; a level without own orders)
    and per empty Python method call, the baseline, all in this run."""
    out: dict[str, float] = {}
    sizes = [1000 + (i % 7) * 10 for i in range(n)]     # ups and downs: cancels to split
    for name in ("pessimistic", "proportional", "power"):
        t = QueueTracker(name, own_in_level=False)
        t.place("k", BID, 100, 10, 10**9)
        t0 = time.perf_counter()
        for q in sizes:
            t.on_level(BID, 100, q)
        out[f"on_level, {name}"] = (time.perf_counter() - t0) / n * 1e9
    t0 = time.perf_counter()
    for q in sizes:
        t.on_level(BID, 101, q)
    out["on_level, a level without own orders"] = (time.perf_counter() - t0) / n * 1e9
    t = QueueTracker("proportional", own_in_level=False)
    t.place("k", BID, 100, 10, 10**12)
    t0 = time.perf_counter()
    for _ in sizes:
        t.on_trade(100, 1, ASK)
    out["on_trade at the order's price"] = (time.perf_counter() - t0) / n * 1e9
    nothing = _Nothing()
    t0 = time.perf_counter()
    for q in sizes:
        nothing.on_level(BID, 100, q)
    out["baseline: an empty method call"] = (time.perf_counter() - t0) / n * 1e9
    return out


def ages(order: np.ndarray) -> np.ndarray:
    """The age of each observation: 1 for an order's first, 2 for its second, ..."""
    age = np.zeros(len(order), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, o in enumerate(order.tolist()):
        seen[o] = seen.get(o, 0) + 1
        age[i] = seen[o]
    return age


def stats(x: np.ndarray) -> str:
    if len(x) == 0:
        return "(none)"
    p10, p50, p90, p99 = np.percentile(x, [10, 50, 90, 99])
    return (f"mean {x.mean():9.3g}  median {p50:9.3g}  p10 {p10:9.3g}  p90 {p90:9.3g}  "
            f"p99 {p99:9.3g}  mean|e| {np.abs(x).mean():9.3g}")


def fill_timing(real: np.ndarray, model: np.ndarray, ts: np.ndarray) -> str:
    both = (real >= 0) & (model >= 0)
    same = both & (model == real)
    early, late = both & (model < real), both & (model > real)
    gaps = np.abs(ts[model[early | late]] - ts[real[early | late]]) / 1e6
    gap = f"{np.median(gaps):.3g} ms" if len(gaps) else "-"
    return (f"real fills {int((real >= 0).sum()):5d}: same event {int(same.sum()):5d}, early "
            f"{int(early.sum()):4d}, late {int(late.sum()):4d} (median gap {gap}), missed "
            f"{int(((real >= 0) & (model < 0)).sum()):4d}; false fills "
            f"{int(((real < 0) & (model >= 0)).sum()):4d}")


def main() -> int:
    print(f"queue position models vs exact L3 FIFO: ITCH day of {MESSAGES:,} messages, "
          f"{SYMBOLS} symbols, seed {SEED}, every {EVERY}th ADD followed")
    events, _, _ = decode_events(itch_day(MESSAGES, n_symbols=SYMBOLS, seed=SEED))
    base = plain_replay(events)
    t0 = time.perf_counter()
    r = compare_with_l3(events, every=EVERY)
    with_trackers = time.perf_counter() - t0
    err = r["estimate"] - r["exact"][:, None]
    level = r["level"].astype(np.float64)
    rel = np.divide(err, level[:, None], out=np.zeros_like(err), where=level[:, None] > 0)
    clean = r["clean"]
    age = ages(r["order"])
    print(f"{r['orders']:,} virtual orders, {len(err):,} observations "
          f"({int(clean.sum()):,} with no cancel by others at the level)\n")
    failed = False
    for m, name in enumerate(r["models"]):
        print(f"== {name}")
        print(f"  shares      {stats(err[:, m])}")
        print(f"  / level     {stats(rel[:, m])}")
        for lo, hi in AGES:
            sel = (age >= lo) & (age <= hi if hi else True)
            span = f"{lo}-{hi}" if hi else f">{lo - 1}"
            print(f"  age {span:>6}  {stats(err[sel, m])}  (n={int(sel.sum()):,})")
        worst = float(np.abs(err[clean, m]).max()) if clean.any() else 0.0
        failed |= worst != 0.0
        print(f"  exact-information check: max |error| {worst:g} over {int(clean.sum()):,} "
              f"observations ({'ok' if worst == 0 else 'FAILED'})")
        print(f"  {fill_timing(r['fills']['real'], r['fills']['model'][m], r['fills']['ts'])}\n")
    print(f"replay with {len(r['models'])} trackers {with_trackers:.2f} s, plain L3 replay "
          f"{base:.2f} s (same run): ratio {with_trackers / base:.2f}x; "
          f"{len(events) / with_trackers / 1e3:,.0f}k events/s")
    calls = per_call_ns()
    base_ns = calls["baseline: an empty method call"]
    print("\nper call (ns, and ratio to an empty Python method call measured in this run):")
    for what, ns in calls.items():
        print(f"  {what:40s} {ns:7.0f} ns  {ns / base_ns:5.1f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
