"""Osaka Exchange (J-GATE) ITCH: decode + apply from an uncompressed file, beside ITCH 5.0.

``python -m pytest bench/bench_ose.py`` runs it (``--benchmark-disable`` for a
smoke run, which still checks every result). The inputs are a seeded synthetic
OSE day (``fastbook.synth.write_ose_day``, BinaryFILE framing; 17 order books:
futures, options, a combination), its JPX CSV form (a smaller day), and a
synthetic ITCH 5.0 day with about as many messages (the baseline measured in the
same run), written once into a cache directory and reused. Settings:

* ``FASTBOOK_BENCH_OSE_MESSAGES``      order messages of the OSE day (default 3,000,000;
  the file holds about 15% more messages: seconds, auctions, equilibrium updates)
* ``FASTBOOK_BENCH_OSE_CSV_MESSAGES``  order messages of the CSV day (default 200,000)
* ``FASTBOOK_BENCH_OSE_PY_MESSAGES``   prefix given to the pure-Python twin (100,000)
* ``FASTBOOK_BENCH_OSE_SEED``          seed (default 20240607)
* ``FASTBOOK_BENCH_OSE_ROUNDS``        rounds of each pass (default 3)
* ``FASTBOOK_BENCH_CACHE``             cache directory (as ``bench_itch.py``)

Every pass checks its result against a reference computed once by plain dicts
(order count, best bid and ask per book). Nothing asserts a timing: the summary
shows messages/s and the ratio to the ITCH 5.0 replay of the same run, with the
goal (10 M msgs/s decode + apply from an uncompressed file) shown,
never asserted.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbook
from fastbook import l3, synth
from fastbook.codecs import _pyose, ose_itch
from fastbook.events import EVENT_DTYPE, Action

MESSAGES = int(os.environ.get("FASTBOOK_BENCH_OSE_MESSAGES", 3_000_000))
CSV_MESSAGES = int(os.environ.get("FASTBOOK_BENCH_OSE_CSV_MESSAGES", 200_000))
PY_MESSAGES = int(os.environ.get("FASTBOOK_BENCH_OSE_PY_MESSAGES", 100_000))
SEED = int(os.environ.get("FASTBOOK_BENCH_OSE_SEED", 20240607))
ROUNDS = int(os.environ.get("FASTBOOK_BENCH_OSE_ROUNDS", 3))
TARGET = 10e6       # msgs/s, decode + apply from an uncompressed file (the goal)

pytestmark = pytest.mark.benchmark(disable_gc=True, group="ose")

_ADD, _DELETE, _REPLACE = int(Action.ADD), int(Action.DELETE), int(Action.REPLACE)
_EXECUTE = int(Action.EXECUTE)
_ROWS: dict[str, dict[str, Any]] = {}
_FILES: list[dict[str, Any]] = []


# -- the reference: plain dicts, side-keyed --------------------------------------------------

def reference_state(data: Any, codec: str) -> dict[str, list[Any]]:
    """symbol -> [orders, [bid px, qty] or None, [ask px, qty] or None] by plain dicts.

    The aggregate effect of the OSE events: ADD rests (instrument, side, id), EXECUTE takes
    quantity, DELETE removes, REPLACE moves the order to its new price and quantity (queue
    order does not change the levels' totals, so KEEP_PRIORITY needs nothing here).
    """
    books = l3.BookSet()
    module = fastbook.codecs.load(codec)
    dec = module.Decoder(books)
    orders: dict[tuple[int, int, int], list[int]] = {}
    levels: dict[tuple[int, int], dict[int, int]] = {}

    def level_add(inst: int, side: int, price: int, qty: int) -> None:
        lv = levels.setdefault((inst, side), {})
        left = lv.get(price, 0) + qty
        if left:
            lv[price] = left
        else:
            del lv[price]

    for ev in itertools.chain(dec.feed(data), dec.close()):     # one batch at a time: reused
        for a, inst, side, price, qty, oid in zip(
                ev["action"].tolist(), ev["instrument"].tolist(), ev["side"].tolist(),
                ev["price"].tolist(), ev["qty"].tolist(), ev["order_id"].tolist(),
                strict=True):
            key = (inst, side, oid)
            if a == _ADD:
                orders[key] = [price, qty]
                level_add(inst, side, price, qty)
            elif a == _DELETE or a == _REPLACE:
                o = orders.pop(key)
                level_add(inst, side, o[0], -o[1])
                if a == _REPLACE:
                    orders[key] = [price, qty]
                    level_add(inst, side, price, qty)
            elif a == _EXECUTE:
                o = orders[key]
                level_add(inst, side, o[0], -qty)
                o[1] -= qty
                if o[1] == 0:
                    del orders[key]
    count: dict[int, int] = {}
    for inst, _, _ in orders:
        count[inst] = count.get(inst, 0) + 1
    out = {}
    for i in range(len(books)):
        bids, asks = levels.get((i, 1), {}), levels.get((i, 2), {})
        bb = max(bids) if bids else None
        ba = min(asks) if asks else None
        out[books.instrument(i)["symbol"]] = [
            count.get(i, 0), None if bb is None else [bb, bids[bb]],
            None if ba is None else [ba, asks[ba]]]
    return out


def bookset_state(bs: Any) -> dict[str, list[Any]]:
    out = {}
    for i in range(len(bs)):
        book = bs[i]
        bb, ba = book.best_bid(), book.best_ask()
        out[bs.instrument(i)["symbol"]] = [book.order_count, None if bb is None else list(bb),
                                           None if ba is None else list(ba)]
    return out


# -- the files, cached ---------------------------------------------------------------------------

@dataclass
class Inputs:
    directory: Path
    meta: dict[str, Any]
    ose: bytes
    generated: bool

    def path(self, name: str) -> Path:
        return self.directory / name


def _cache_root() -> Path:
    if os.environ.get("FASTBOOK_BENCH_CACHE"):
        return Path(os.environ["FASTBOOK_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fastbook-bench"


def _generate(directory: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    synth.write_ose_day(directory / "day.ose", MESSAGES, seed=SEED)
    synth.write_ose_day(directory / "day.csv", CSV_MESSAGES, seed=SEED, form="csv")
    gen_s = time.perf_counter() - t0
    ose = (directory / "day.ose").read_bytes()
    info = fastbook.replay(ose, "ose_itch")
    # the ITCH 5.0 baseline: as many messages, 500 symbols (as bench_itch)
    synth.write_itch_day(directory / "day.itch", info.messages, n_symbols=500, seed=SEED)
    itch = fastbook.replay(directory / "day.itch", "itch50")
    csv_info = fastbook.replay(directory / "day.csv", "jpx_csv")
    prefix = _prefix_end(ose, PY_MESSAGES)
    (directory / "prefix.ose").write_bytes(ose[:prefix])
    t0 = time.perf_counter()
    meta = {
        "messages": info.messages, "bytes": len(ose), "counts": info.counts,
        "state": reference_state(ose, "ose_itch"), "itch_messages": itch.messages,
        "itch_bytes": (directory / "day.itch").stat().st_size,
        "csv_messages": csv_info.messages, "csv_bytes": (directory / "day.csv").stat().st_size,
        "csv_state": reference_state((directory / "day.csv").read_bytes(), "jpx_csv"),
        "prefix_messages": PY_MESSAGES, "prefix_bytes": prefix,
        "prefix_state": reference_state(ose[:prefix], "ose_itch"), "gen_s": round(gen_s, 1),
    }
    meta["reference_s"] = round(time.perf_counter() - t0, 1)
    (directory / "meta.json").write_text(json.dumps(meta))
    return meta


def _prefix_end(buf: bytes, messages: int) -> int:
    pos = 0
    for _ in range(messages):
        if pos >= len(buf):
            break
        pos += 2 + ((buf[pos] << 8) | buf[pos + 1])
    return pos


@pytest.fixture(scope="session")
def inputs() -> Inputs:
    digest = hashlib.sha256(Path(synth.__file__).read_bytes()).hexdigest()[:10]
    root = _cache_root()
    final = root / f"ose-{MESSAGES}m-{CSV_MESSAGES}csv-{PY_MESSAGES}py-seed{SEED}-synth{digest}"
    meta = None
    try:
        meta = json.loads((final / "meta.json").read_text())
    except (OSError, ValueError):
        pass
    generated = meta is None
    if meta is None:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        work = Path(tempfile.mkdtemp(dir=root, prefix=final.name + ".tmp-"))
        try:
            meta = _generate(work)
            try:
                work.rename(final)
            except OSError:
                meta = json.loads((final / "meta.json").read_text())
        finally:
            shutil.rmtree(work, ignore_errors=True)
    inp = Inputs(final, meta, (final / "day.ose").read_bytes(), generated)
    _FILES[:] = [{"dir": str(final), "generated": generated, **{k: v for k, v in meta.items()
                                                                 if "state" not in k}}]
    return inp


def _record(benchmark: Any, name: str, messages: int, nbytes: int, **extra: Any) -> None:
    benchmark.extra_info.update(messages=messages, bytes=nbytes, **extra)
    if benchmark.disabled or benchmark.stats is None:
        return
    seconds = benchmark.stats.stats.median
    _ROWS[name] = {"messages": messages, "bytes": nbytes, "seconds": seconds}
    benchmark.extra_info.update(messages_per_s=round(messages / seconds),
                                ns_per_message=round(seconds / messages * 1e9, 2))


def _gc() -> None:
    gc.collect()


# -- passes ----------------------------------------------------------------------------------------

def decode_all(buf: Any) -> int:
    """The compiled kernel over a whole buffer, 64K events per call, no books: messages."""
    kernel = ose_itch._kernel
    events = np.zeros(ose_itch.BATCH_EVENTS, EVENT_DTYPE)
    counts = np.zeros(256, np.uint64)
    state = _pyose.new_state()
    pos = messages = 0
    while True:
        pos, _, n, _, status = kernel.decode_chunk(buf, pos, 0, events, counts, state=state,
                                                   seq=messages, final=True)
        messages += n
        if status == 0:
            return messages
        assert status == 1, status


def test_ose_decode_only(benchmark: Any, inputs: Inputs) -> None:
    """decode_chunk over the in-memory OSE day, no books (instrument = order book id)."""
    messages = benchmark.pedantic(decode_all, args=(inputs.ose,), rounds=ROUNDS + 2,
                                  iterations=1, warmup_rounds=1)
    assert messages == inputs.meta["messages"]
    _record(benchmark, "OSE decode only (kernel, memory)", messages, inputs.meta["bytes"])


def test_itch_replay_file(benchmark: Any, inputs: Inputs) -> None:
    """Baseline: fastbook.replay of the ITCH 5.0 day from its plain file (mmap)."""
    result = benchmark.pedantic(fastbook.replay, args=(inputs.path("day.itch"), "itch50"),
                                setup=_gc, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert result.messages == inputs.meta["itch_messages"] and result.skipped == 0
    _record(benchmark, "ITCH 5.0 replay plain file (mmap)", result.messages,
            inputs.meta["itch_bytes"])


def test_ose_replay_file(benchmark: Any, inputs: Inputs) -> None:
    """fastbook.replay of the OSE day from its plain file (mmap): decode + apply, every book."""
    result = benchmark.pedantic(fastbook.replay, args=(inputs.path("day.ose"), "ose_itch"),
                                setup=_gc, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert result.messages == inputs.meta["messages"] and result.skipped == 0
    assert result.counts == inputs.meta["counts"]
    assert bookset_state(result.books) == inputs.meta["state"]
    _record(benchmark, "OSE replay plain file (mmap)", result.messages, inputs.meta["bytes"])


def test_ose_replay_memory(benchmark: Any, inputs: Inputs) -> None:
    """fastbook.replay of the OSE day from memory."""
    result = benchmark.pedantic(fastbook.replay, args=(inputs.ose, "ose_itch"), setup=_gc,
                                rounds=ROUNDS, iterations=1)
    assert bookset_state(result.books) == inputs.meta["state"]
    _record(benchmark, "OSE replay memory", result.messages, inputs.meta["bytes"])


def test_jpx_csv_replay(benchmark: Any, inputs: Inputs) -> None:
    """fastbook.replay of the (smaller) JPX CSV day: the text form, parsed in Python."""
    result = benchmark.pedantic(fastbook.replay, args=(inputs.path("day.csv"), "jpx_csv"),
                                setup=_gc, rounds=ROUNDS, iterations=1)
    assert result.messages == inputs.meta["csv_messages"]
    assert bookset_state(result.books) == inputs.meta["csv_state"]
    _record(benchmark, "JPX CSV replay (smaller day)", result.messages, inputs.meta["csv_bytes"])


def test_pure_python(benchmark: Any, inputs: Inputs) -> None:
    """Baseline: the pure-Python twins (_pyose kernel and _pyl3 books) on a prefix."""
    from fastbook import _pyl3

    data = inputs.path("prefix.ose").read_bytes()

    def run() -> Any:
        books = _pyl3.BookSet()
        dec = ose_itch.Decoder(books, kernel=False)
        for ev in dec.feed(data):
            books.apply(ev)
        for ev in dec.close():
            books.apply(ev)
        return books, dec

    books, dec = benchmark.pedantic(run, rounds=1, iterations=1)
    assert bookset_state(books) == inputs.meta["prefix_state"]
    _record(benchmark, "pure Python twins (prefix)", dec.messages, len(data))


# -- summary ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Any:
    request.config.pluginmanager.register(_Summary(), "fastbook-ose-summary")
    yield


class _Summary:
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        tr.write_sep("=", "fastbook OSE ITCH benchmark summary")
        tr.write_line(f"OSE kernel: {'compiled' if ose_itch._kernel.COMPILED else 'TWIN'}; "
                      f"L3 core: {'compiled' if l3.COMPILED else 'TWIN'}")
        for f in _FILES:
            tr.write_line(f"OSE day: {f['messages']:,} messages, {f['bytes'] / 2**20:,.1f} MiB "
                          f"({f['bytes'] / f['messages']:.1f} B/msg); ITCH 5.0 day: "
                          f"{f['itch_messages']:,} messages; CSV day {f['csv_messages']:,} "
                          f"lines; {'generated' if f['generated'] else 'cached'} in {f['dir']}")
        if not _ROWS:
            tr.write_line("benchmarks disabled: every pass ran once as a smoke test.")
            return
        base = _ROWS.get("ITCH 5.0 replay plain file (mmap)")
        tr.write_line(f"{'pass':<38} {'messages':>11} {'median s':>9} {'ns/msg':>8} "
                      f"{'M msgs/s':>9}  vs ITCH 5.0 replay")
        for name, r in _ROWS.items():
            rate = r["messages"] / r["seconds"]
            vs = ""
            if base is not None:
                vs = f"{rate / (base['messages'] / base['seconds']):.2f}x"
            if name == "OSE replay plain file (mmap)":
                vs += f"  (target >= {TARGET / 1e6:.0f}M msgs/s: " \
                      f"{'met' if rate >= TARGET else 'NOT MET'})"
            tr.write_line(f"{name:<38} {r['messages']:>11,} {r['seconds']:>9.3f} "
                          f"{r['seconds'] / r['messages'] * 1e9:>8.1f} {rate / 1e6:>9.2f}  {vs}")
        tr.write_line("Shared 2-core machine: absolute figures move 30-50% between runs; "
                      "compare the ratios measured within one run.")
