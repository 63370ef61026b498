"""Compare builds of the compiled books in one process: BookSet.apply, or per call (a dev tool).

On a shared, noisy machine two builds timed in separate processes differ by more than
most changes do: the same binary reads 30-50% apart from one minute to the next. This
script loads several builds of ``fastbook._l3`` side by side (each as ``_fbab_<name>._l3``,
next to the installed ``fastbook._core``), gives each two BookSets allocated in ABBA order
(placement in memory alone moves a figure by a few percent), and times them round after
round in alternating order. It prints each build's median and its median ratio to the
first build, paired round by round. Differences under about 3% are noise here.

Usage (each BUILD is NAME=DIR, DIR holding a built ``_l3`` extension, for example a
worktree's ``src/fastbook`` after ``python setup.py build_ext --inplace``)::

    python bench/ab_apply.py base=/tmp/wt-base/src/fastbook new=src/fastbook
    python bench/ab_apply.py --stream itch --symbols 8000 base=... new=...
    python bench/ab_apply.py --stream calls base=... new=...
    python bench/ab_apply.py --stream set base=... new=...

``--stream calls`` times bench_l3's per-call passes instead (``OrderBook.add`` of 200,000
orders from a Python loop, then ``delete`` of them in random order), each round on a new
book of every build. ``--stream set`` times bench_l2's per-call pass (``Book.set`` over the
seeded L2 workload's 1M updates) and loads each build's ``_core`` rather than its ``_l3``.

Every build must be compiled against the installed ``fastbook._core`` (same
``FB_ABI_VERSION``). Streams: ``l3`` is bench_l3's synthetic stream (1M events, 500
instruments); ``itch`` decodes the first ``--messages`` of bench_itch's cached day
(``FASTBOOK_BENCH_ITCH_*`` settings; run bench_itch.py once to create it) or, with
``--symbols``, of a day generated for it. Both apply in skip mode unless ``--on-error``
asks for ``raise`` (the undo journal) or ``stop`` (what ``replay`` uses).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import fastbook  # noqa: F401  (loads the installed _core first)

BATCH = 1 << 16


def _load(name: str, directory: str, root: Path, module: str = "_l3") -> Any:
    found = sorted(Path(directory).glob(f"{module}.*.so")) + sorted(
        Path(directory).glob(f"{module}.*.pyd"))
    if not found:
        raise SystemExit(f"{name}: no built {module} extension in {directory}")
    package = root / f"_fbab_{name}"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    shutil.copy(found[0], package / found[0].name)
    return importlib.import_module(f"_fbab_{name}.{module}")


def _l3_stream() -> tuple[np.ndarray, list[dict[str, Any]]]:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_l3 import EVENTS, INSTRUMENTS, SEED, l3_stream

    stream = l3_stream(EVENTS, INSTRUMENTS, SEED)
    return stream.events, [{"symbol": f"SYM{i:04d}", "lot": 1, "capacity": 64}
                           for i in range(stream.instruments)]


def _itch_stream(messages: int, symbols: int | None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    from fastbook import synth
    from fastbook.codecs import itch50

    if symbols is None:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_itch import _cache_key, _cache_root

        path = _cache_root() / _cache_key() / "day.itch"
        if not path.exists():
            raise SystemExit(f"no cached ITCH day at {path}: run bench/bench_itch.py once")
        buf = path.read_bytes()
    else:
        buf = synth.itch_day(messages, n_symbols=symbols)
    events, directory, _ = itch50.decode_events(memoryview(buf)[:_frames(buf, messages)])
    return events, [{"symbol": e["symbol"], "lot": max(int(e["round_lot"]), 1), "capacity": 16}
                    for e in directory]


def _frames(buf: Any, messages: int) -> int:
    # the byte length of the first ``messages`` BinaryFILE frames
    pos = 0
    view = memoryview(buf)
    for _ in range(messages):
        if pos + 2 > len(view):
            break
        pos += 2 + int.from_bytes(view[pos:pos + 2], "big")
    return min(pos, len(view))


def _calls(modules: list[Any], rounds: int) -> list[dict[str, list[float]]]:
    """ns per call of the add and delete passes, per build, round by round."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_l3 import CALLS, _orders, _victims, loop_add, loop_delete

    ids, sides, prices, qtys = _orders(CALLS)
    victims = _victims(ids)
    times: list[dict[str, list[float]]] = [{"add": [], "delete": []} for _ in modules]
    order = list(range(len(modules)))
    for r in range(rounds):
        for k in (order if r % 2 == 0 else order[::-1]):
            book = modules[k].OrderBook(price_decimals=4, order_capacity=CALLS)
            gc.collect()
            t = time.perf_counter()
            loop_add(book, ids, sides, prices, qtys)
            t1 = time.perf_counter()
            loop_delete(book, victims)
            t2 = time.perf_counter()
            times[k]["add"].append((t1 - t) / CALLS * 1e9)
            times[k]["delete"].append((t2 - t1) / CALLS * 1e9)
    return times


def _sets(modules: list[Any], rounds: int) -> list[list[float]]:
    """ns per call of bench_l2's per-call Book.set pass, per build, round by round."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_l2 import loop_set
    from fastbook.synth import l2_workload

    w = l2_workload()
    sides, prices, qtys = w.sides.tolist(), w.prices.tolist(), w.qtys.tolist()
    times: list[list[float]] = [[] for _ in modules]
    order = list(range(len(modules)))
    for r in range(rounds):
        for k in (order if r % 2 == 0 else order[::-1]):
            book = modules[k].Book(price_decimals=w.price_decimals, qty_decimals=w.qty_decimals)
            book.apply(w.snapshot_sides, w.snapshot_prices, w.snapshot_qtys)
            gc.collect()
            t = time.perf_counter()
            loop_set(book, sides, prices, qtys)
            times[k].append((time.perf_counter() - t) / len(sides) * 1e9)
    return times


def _report(names: list[str], times: list[list[float]], what: str) -> None:
    for name, t in zip(names, times, strict=True):
        ratio = statistics.median(x / b for x, b in zip(t, times[0], strict=True))
        print(f"{name:>12}: {what}median {statistics.median(t):7.1f}  min {min(t):7.1f}  "
              f"ratio {ratio:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", nargs="+", metavar="NAME=DIR")
    parser.add_argument("--stream", choices=["l3", "itch", "calls", "set"], default="l3")
    parser.add_argument("--messages", type=int, default=4_000_000)
    parser.add_argument("--symbols", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--on-error", choices=["skip", "raise", "stop"], default="skip",
                        help="the BookSets' mode (l3 and itch streams)")
    args = parser.parse_args(argv)
    builds = [b.split("=", 1) for b in args.builds]
    if any(len(b) != 2 for b in builds):
        parser.error("each build is NAME=DIR")
    names = [name for name, _ in builds]
    if args.stream == "calls":
        with tempfile.TemporaryDirectory() as tmp:
            sys.path.insert(0, tmp)
            modules = [_load(name, directory, Path(tmp)) for name, directory in builds]
            calls = _calls(modules, args.rounds)
        print(f"per call, {args.rounds} rounds (ns per call; ratio: paired by round, "
              f"against {names[0]})")
        for what in ("add", "delete"):
            _report(names, [c[what] for c in calls], f"{what:<7}")
        return
    if args.stream == "set":
        with tempfile.TemporaryDirectory() as tmp:
            sys.path.insert(0, tmp)
            modules = [_load(name, directory, Path(tmp), "_core") for name, directory in builds]
            sets = _sets(modules, args.rounds)
        print(f"Book.set per call, {args.rounds} rounds (ns per call; ratio: paired by round, "
              f"against {names[0]})")
        _report(names, sets, "")
        return
    if args.stream == "l3":
        events, instruments = _l3_stream()
    else:
        events, instruments = _itch_stream(args.messages, args.symbols)
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        modules = [_load(name, directory, Path(tmp)) for name, directory in builds]
        order = list(range(len(modules))) + list(range(len(modules)))[::-1]
        sets = []
        for k in order:
            bs = modules[k].BookSet(on_error=args.on_error)
            for inst in instruments:
                bs.add_instrument(inst["symbol"], price_decimals=4, lot_size=inst["lot"],
                                  capacity=inst["capacity"], order_capacity=64)
            sets.append((k, bs))
        gc.disable()
        for _, bs in sets:  # warm-up: grow every pool to its size
            for s in range(0, len(events), BATCH):
                bs.apply(events[s:s + BATCH])
        times: list[list[float]] = [[] for _ in modules]
        for r in range(args.rounds):
            row = [0.0] * len(modules)
            for k, bs in (sets if r % 2 == 0 else sets[::-1]):
                bs.clear()
                t = time.perf_counter()
                for s in range(0, len(events), BATCH):
                    bs.apply(events[s:s + BATCH])
                row[k] += (time.perf_counter() - t) / len(events) * 1e9 / 2
            for k in range(len(modules)):
                times[k].append(row[k])
        gc.enable()
    print(f"{len(events):,} events, {len(instruments):,} instruments, {args.on_error} mode, "
          f"{args.rounds} rounds "
          f"(ns per event; ratio: paired by round, against {builds[0][0]})")
    _report(names, times, "")


if __name__ == "__main__":
    main()
