"""The ``fastbook`` command line.

``fastbook demo`` replays a built-in synthetic L2 workload through the compiled
core and prints the book and the throughput. Later releases add ``replay``,
``info``, ``live`` and ``record``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence

import numpy as np

import fastbook as fb


def _rate(n: int, seconds: float) -> str:
    per_s = n / seconds if seconds > 0 else float("inf")
    return f"{n:>11,} updates in {seconds:7.3f} s = {per_s / 1e6:6.1f} M updates/s " \
           f"({seconds / n * 1e9:5.0f} ns/update)"


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn(*args)
        return result, time.perf_counter() - t0
    finally:
        if gc_was_enabled:
            gc.enable()


def _per_call(book, sides: list[int], prices: list[int], qtys: list[int]) -> None:  # type: ignore[no-untyped-def]
    set_level = book.set
    for s, p, q in zip(sides, prices, qtys, strict=True):
        set_level(s, p, q)


def _top_every_100(book, sides, prices, qtys, out):  # type: ignore[no-untyped-def]
    set_level, top = book.set, book.top
    for i, (s, p, q) in enumerate(zip(sides, prices, qtys, strict=True)):
        set_level(s, p, q)
        if i % 100 == 0:
            top(10, out)


def _load(book_type, w):  # type: ignore[no-untyped-def]
    book = book_type(price_decimals=w.price_decimals, qty_decimals=w.qty_decimals, capacity=4096)
    book.apply(w.snapshot_sides, w.snapshot_prices, w.snapshot_qtys)
    return book


def _same(a, b) -> bool:  # type: ignore[no-untyped-def]
    return all(
        np.array_equal(x, y)
        for side in (fb.BID, fb.ASK)
        for x, y in zip(a.to_arrays(side), b.to_arrays(side), strict=True)
    )


def demo(updates: int, seed: int, depth: int, verify: int) -> int:
    from fastbook import _pycore, synth

    print(f"fastbook {fb.__version__} demo: synthetic L2 workload, seed {seed}, "
          f"{'compiled core' if fb.COMPILED else 'pure-Python twin (FASTBOOK_NO_EXTENSIONS)'}")
    w, gen_s = _timed(lambda: synth.l2_workload(updates, seed=seed))
    print(f"  generated a {len(w.snapshot_prices):,}-level snapshot and {len(w):,} updates "
          f"in {gen_s:.2f} s")
    sides, prices, qtys = w.sides.tolist(), w.prices.tolist(), w.qtys.tolist()

    per_call = _load(fb.Book, w)
    _, t_call = _timed(_per_call, per_call, sides, prices, qtys)
    batch = _load(fb.Book, w)
    _, t_batch = _timed(batch.apply, w.sides, w.prices, w.qtys)
    topped = _load(fb.Book, w)
    out = np.empty((4, 10), dtype=np.int64)
    _, t_top = _timed(_top_every_100, topped, sides, prices, qtys, out)
    print()
    print(f"  per-call Book.set from Python  {_rate(len(w), t_call)}")
    print(f"  set + top(10, out=) every 100  {_rate(len(w), t_top)}")
    print(f"  batch Book.apply, GIL released {_rate(len(w), t_batch)}")
    print("  (one run on this machine; `python -m pytest bench` measures properly)")

    book = batch
    print()
    print(f"  book after replay: {book.depth(fb.BID):,} bid levels, "
          f"{book.depth(fb.ASK):,} ask levels, spread {book.format_price(book.spread() or 0)}, "
          f"crossed: {book.is_crossed()}")
    top = book.top(depth)
    print(f"  {'level':>5}  {'bid qty':>10}  {'best bid':>10}  {'best ask':>10}  {'ask qty':>10}")
    for i in range(depth):
        cells = [
            book.format_qty(int(top[1, i])) if top[1, i] else "",
            book.format_price(int(top[0, i])) if top[1, i] else "",
            book.format_price(int(top[2, i])) if top[3, i] else "",
            book.format_qty(int(top[3, i])) if top[3, i] else "",
        ]
        print(f"  {i + 1:>5}  {cells[0]:>10}  {cells[1]:>10}  {cells[2]:>10}  {cells[3]:>10}")
    print()

    ok = _same(per_call, batch) and _same(topped, batch)
    print(f"  per-call, sampled and batch books identical: {'OK' if ok else 'MISMATCH'}")
    n_ref = min(verify, len(w))
    ref = _load(_pycore.Book, w)
    fast = _load(fb.Book, w)
    ref.apply(w.sides[:n_ref], w.prices[:n_ref], w.qtys[:n_ref])
    fast.apply(w.sides[:n_ref], w.prices[:n_ref], w.qtys[:n_ref])
    ref_ok = _same(ref, fast)
    ok = ok and ref_ok
    print(f"  verified against the pure-Python reference: {'OK' if ref_ok else 'MISMATCH'} "
          f"(every level after the first {n_ref:,} updates)")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastbook", description="Exact, fast limit order books for Python."
    )
    parser.add_argument("--version", action="version", version=f"fastbook {fb.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo", help="replay a built-in synthetic L2 workload and print the book and throughput"
    )
    p_demo.add_argument("--updates", type=int, default=1_000_000,
                        help="number of L2 updates (default 1,000,000)")
    p_demo.add_argument("--seed", type=int, default=20240607, help="workload seed")
    p_demo.add_argument("--depth", type=int, default=5, help="levels to print per side")
    p_demo.add_argument("--verify", type=int, default=100_000,
                        help="updates to replay through the pure-Python reference too")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        if args.updates < 1 or args.depth < 1 or args.verify < 0:
            print("fastbook demo: --updates and --depth must be >= 1, --verify >= 0",
                  file=sys.stderr)
            return 2
        return demo(args.updates, args.seed, args.depth, args.verify)
    return 2  # pragma: no cover - argparse enforces a command
