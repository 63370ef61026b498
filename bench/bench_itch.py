"""NASDAQ TotalView-ITCH 5.0 streamed from disk: decode, decode + apply, baselines, memory.

``python -m pytest bench/bench_itch.py`` runs it (``--benchmark-disable`` for a
smoke run, which still checks every result). The input is a seeded synthetic
ITCH day (``fastbook.synth.write_itch_day``, BinaryFILE framing), written once
into a cache directory together with a gzip copy (zlib level 6), a first-quarter
prefix and a reference final state; later sessions reuse them. Settings
(environment variables):

* ``FASTBOOK_BENCH_ITCH_MESSAGES``    messages in the day (default 20,000,000; about 0.6 GB)
* ``FASTBOOK_BENCH_ITCH_SYMBOLS``     symbols in the day (default 500, as in specs/itch.md 5)
* ``FASTBOOK_BENCH_ITCH_SEED``        seed of the day (default 20240607)
* ``FASTBOOK_BENCH_ITCH_PY_MESSAGES`` prefix given to the pure-Python baseline (200,000)
* ``FASTBOOK_BENCH_ITCH_ROUNDS``      rounds of each whole-day pass (default 3)
* ``FASTBOOK_BENCH_CACHE``            cache directory (default ``~/.cache/fastbook-bench``,
  or ``$XDG_CACHE_HOME/fastbook-bench``)

Every pass checks its result: message counts by type, and every book's order
count, best bid and ask (price and quantity) and depth against a reference
computed once by a plain-dict L3 book. Nothing asserts a timing: the summary
printed at the end shows messages/s, GB/s and the ratios to the baselines
measured in the same run (gzip decompression alone, the pure-Python decoder with
a dict book, replay without a sampler), with targets shown but never asserted.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbook
from fastbook import l3, sources, synth
from fastbook.codecs import _pyitch50, itch50
from fastbook.codecs._pyitch50 import MESSAGE_LENGTHS, stock_directory
from fastbook.errors import DecodeError
from fastbook.events import EVENT_DTYPE, Action

try:
    from isal import isal_zlib
except ImportError:  # the optional gzip extra is not installed: zlib only
    isal_zlib = None


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


MESSAGES = _env_int("FASTBOOK_BENCH_ITCH_MESSAGES", 20_000_000)
SYMBOLS = _env_int("FASTBOOK_BENCH_ITCH_SYMBOLS", 500)
SEED = _env_int("FASTBOOK_BENCH_ITCH_SEED", 20240607)
PY_MESSAGES = min(_env_int("FASTBOOK_BENCH_ITCH_PY_MESSAGES", 200_000), MESSAGES)
ROUNDS = _env_int("FASTBOOK_BENCH_ITCH_ROUNDS", 3)
#: Rounds of the short passes (decode only, the slice passes).
SHORT_ROUNDS = max(ROUNDS, 7)
#: Events per decode_chunk call in the decode-only pass (the Decoder's batch).
BATCH = itch50.BATCH_EVENTS
#: Chunk size of the peak-memory runs.
MEMORY_CHUNK = 1 << 20
#: The memory goal: chunk + book state + at most this much.
MEMORY_ALLOWANCE = 100 << 20
#: The gzip replay's target, as a multiple of decompressing alone.
GZIP_TARGET = 1.15
GZIP_LEVEL = 6

BID, ASK = 1, 2
_ADD, _DELETE, _REPLACE = int(Action.ADD), int(Action.DELETE), int(Action.REPLACE)
_EXECUTE, _REDUCE = int(Action.EXECUTE), int(Action.REDUCE)
_R_LENGTH = MESSAGE_LENGTHS["R"]

GZIP_BACKENDS = ["isal", "zlib"] if isal_zlib is not None else ["zlib"]

pytestmark = pytest.mark.benchmark(disable_gc=True, group="itch50")

# What the summary prints: timed passes by name, peak-memory runs, the day.
_ROWS: dict[str, Row] = {}
_MEMORY: dict[str, dict[str, Any]] = {}
_DAY: list[ItchDay] = []


# -- the reference: a plain-dict L3 book over every instrument ------------------------------

class DictBooks:
    """Pure-Python L3 books for every instrument: one order dict, a price -> qty dict per side.

    The book semantics of ``docs/events.md`` for the events an ITCH feed makes: ADD
    rests an order, EXECUTE / REDUCE take shares (the order goes at 0), DELETE removes
    it, REPLACE removes it and rests the new reference on the same side; TRADE and
    STATUS change nothing. The synthetic day is book-consistent, so an unknown
    reference is a bug (KeyError).
    """

    def __init__(self) -> None:
        self.orders: dict[int, list[int]] = {}          # ref -> [instrument, side, price, qty]
        self.levels: dict[tuple[int, int], dict[int, int]] = {}
        self.symbols: dict[int, str] = {}               # instrument (= stock locate) -> symbol

    def apply(self, ev: np.ndarray) -> None:
        orders, levels = self.orders, self.levels
        for a, inst, side, price, qty, ref, new in zip(
                ev["action"].tolist(), ev["instrument"].tolist(), ev["side"].tolist(),
                ev["price"].tolist(), ev["qty"].tolist(), ev["order_id"].tolist(),
                ev["new_order_id"].tolist(), strict=True):
            if a == _ADD:
                orders[ref] = [inst, side, price, qty]
                lv = levels.get((inst, side))
                if lv is None:
                    lv = levels[(inst, side)] = {}
                lv[price] = lv.get(price, 0) + qty
            elif a == _DELETE or a == _REPLACE:
                o = orders.pop(ref)
                lv = levels[(o[0], o[1])]
                left = lv[o[2]] - o[3]
                if left:
                    lv[o[2]] = left
                else:
                    del lv[o[2]]
                if a == _REPLACE:
                    orders[new] = [o[0], o[1], price, qty]
                    lv[price] = lv.get(price, 0) + qty
            elif a == _EXECUTE or a == _REDUCE:
                o = orders[ref]
                if not 0 < qty <= o[3]:
                    raise ValueError(f"order {ref}: takes {qty} of {o[3]}")
                lv = levels[(o[0], o[1])]
                left = lv[o[2]] - qty
                if left:
                    lv[o[2]] = left
                else:
                    del lv[o[2]]
                if o[3] == qty:
                    del orders[ref]
                else:
                    o[3] -= qty

    def state(self) -> dict[str, list[Any]]:
        """symbol -> [orders, [bid px, qty] or None, [ask px, qty] or None, bid and ask depth]."""
        count = dict.fromkeys(self.symbols, 0)
        for o in self.orders.values():
            count[o[0]] += 1
        out = {}
        for inst, symbol in self.symbols.items():
            bids = self.levels.get((inst, BID), {})
            asks = self.levels.get((inst, ASK), {})
            bb = max(bids) if bids else None
            ba = min(asks) if asks else None
            out[symbol] = [count[inst], None if bb is None else [bb, bids[bb]],
                           None if ba is None else [ba, asks[ba]], len(bids), len(asks)]
        return out


def dict_replay(buf: Any, kernel: Any) -> tuple[int, dict[str, int], DictBooks]:
    """``kernel.decode_chunk`` over ``buf`` into a :class:`DictBooks`: (messages, counts, books).

    With ``kernel=_pyitch50`` this is the pure-Python baseline; with the compiled
    kernel, the reference the passes are checked against.
    """
    events = np.zeros(BATCH, EVENT_DTYPE)
    counts = np.zeros(256, np.uint64)
    directory = np.zeros(2048, np.int64)
    books = DictBooks()
    view = memoryview(buf)
    pos = messages = 0
    while True:
        pos_after, n_events, n_messages, n_directory, status = kernel.decode_chunk(
            buf, pos, 0, events, counts, directory=directory, seq=messages, final=True)
        for k in range(n_directory):
            off = int(directory[k])
            entry = stock_directory(bytes(view[off:off + _R_LENGTH]))
            books.symbols[entry["locate"]] = entry["symbol"]
        if n_events:
            books.apply(events[:n_events])
        messages += n_messages
        pos = pos_after
        if status < 0:
            raise DecodeError(f"byte {pos}, message {messages}: status {status}")
        if status == 0:
            break
    view.release()
    return messages, _counts(counts), books


def _counts(counts: np.ndarray) -> dict[str, int]:
    return {chr(t): int(n) for t, n in enumerate(counts.tolist()) if n}


def bookset_state(bs: Any) -> dict[str, list[Any]]:
    """The same shape as :meth:`DictBooks.state`, read from a BookSet."""
    out = {}
    for i in range(len(bs)):
        book = bs[i]
        bb, ba = book.best_bid(), book.best_ask()
        out[bs.instrument(i)["symbol"]] = [
            book.order_count, None if bb is None else list(bb),
            None if ba is None else list(ba), book.depth(BID), book.depth(ASK)]
    return out


def _frame_end(buf: Any, messages: int) -> int:
    """Byte offset just after the first ``messages`` BinaryFILE frames."""
    pos = 0
    for _ in range(messages):
        pos += 2 + ((buf[pos] << 8) | buf[pos + 1])
    return pos


# -- the day: generated once, cached on disk --------------------------------------------------

@dataclass
class ItchDay:
    """The cached day: files, sizes, reference counts and states, and how it was prepared."""

    directory: Path
    meta: dict[str, Any]
    data: bytes                    # the plain day in memory (read once per session)
    load_s: float
    generated: bool

    @property
    def plain(self) -> Path:
        return self.directory / "day.itch"

    @property
    def gz(self) -> Path:
        return self.directory / "day.itch.gz"

    @property
    def quarter(self) -> Path:
        return self.directory / "quarter.itch"

    @property
    def messages(self) -> int:
        return self.meta["messages"]

    @property
    def nbytes(self) -> int:
        return self.meta["bytes"]


def _cache_root() -> Path:
    if os.environ.get("FASTBOOK_BENCH_CACHE"):
        return Path(os.environ["FASTBOOK_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fastbook-bench"


def _cache_key() -> str:
    # the generator's source is part of the key: a change to it makes a new day
    digest = hashlib.sha256(Path(synth.__file__).read_bytes()).hexdigest()[:10]
    return f"itch50-{MESSAGES}m-{SYMBOLS}sym-seed{SEED}-synth{digest}"


class _Tee:
    """A binary sink writing the plain file, and its gzip copy compressed in a second thread.

    zlib releases the GIL while it compresses, so the copy costs little wall time
    next to the generator (which is pure Python). At most a few blocks wait.
    """

    def __init__(self, plain: Any, gz: Any) -> None:
        self.plain, self.gz = plain, gz
        self.z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-gzip")
        self.pending: deque[Future[bytes]] = deque()

    def write(self, data: Any) -> int:
        self.plain.write(data)
        # ``data`` is a view of a buffer the generator reuses: compress a copy
        self.pending.append(self.pool.submit(self.z.compress, bytes(data)))
        while len(self.pending) > 4:
            self.gz.write(self.pending.popleft().result())
        return len(data)

    def finish(self) -> None:
        while self.pending:
            self.gz.write(self.pending.popleft().result())
        self.gz.write(self.z.flush())
        self.pool.shutdown()


def _generate(directory: Path) -> dict[str, Any]:
    """Write day.itch, day.itch.gz, quarter.itch and meta.json (last) into ``directory``."""
    t0 = time.perf_counter()
    with open(directory / "day.itch", "wb") as plain, open(directory / "day.itch.gz", "wb") as gz:
        tee = _Tee(plain, gz)
        nbytes = synth.write_itch_day(tee, MESSAGES, n_symbols=SYMBOLS, seed=SEED)
        tee.finish()
    gen_s = time.perf_counter() - t0
    data = (directory / "day.itch").read_bytes()
    assert len(data) == nbytes
    quarter_messages = MESSAGES // 4
    quarter_end = _frame_end(data, quarter_messages)
    (directory / "quarter.itch").write_bytes(data[:quarter_end])
    t0 = time.perf_counter()
    messages, counts, books = dict_replay(data, itch50._kernel)
    ref_s = time.perf_counter() - t0
    assert messages == MESSAGES
    meta = {
        "messages": MESSAGES, "symbols": SYMBOLS, "seed": SEED, "bytes": nbytes,
        "gz_bytes": (directory / "day.itch.gz").stat().st_size, "gzip_level": GZIP_LEVEL,
        "quarter_messages": quarter_messages, "quarter_bytes": quarter_end,
        "counts": counts, "state": books.state(),
        "gen_s": round(gen_s, 2), "reference_s": round(ref_s, 2),
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    return meta


def _load(directory: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((directory / "meta.json").read_text())
        sizes = {"day.itch": meta["bytes"], "day.itch.gz": meta["gz_bytes"],
                 "quarter.itch": meta["quarter_bytes"]}
        if all((directory / name).stat().st_size == size for name, size in sizes.items()):
            return meta
    except (OSError, ValueError, KeyError):
        pass
    return None


@pytest.fixture(scope="session")
def day() -> ItchDay:
    """The day, from the cache or generated into it (a new directory renamed into place)."""
    root = _cache_root()
    final = root / _cache_key()
    t0 = time.perf_counter()
    meta = _load(final)
    generated = meta is None
    if meta is None:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)       # an incomplete earlier attempt
        work = Path(tempfile.mkdtemp(dir=root, prefix=final.name + ".tmp-"))
        try:
            meta = _generate(work)
            try:
                work.rename(final)
            except OSError:                              # another session was faster
                meta = _load(final)
                if meta is None:
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)     # gone already after the rename
    data = (final / "day.itch").read_bytes()
    day = ItchDay(final, meta, data, time.perf_counter() - t0, generated)
    _DAY[:] = [day]
    return day


# -- results and the summary -------------------------------------------------------------------

@dataclass
class Row:
    name: str
    messages: int
    nbytes: int                    # ITCH bytes (uncompressed) the pass went through
    seconds: float
    baseline: str | None
    target: float | None           # the largest ratio to the baseline that meets the goal
    info: dict[str, Any]

    @property
    def ns_per_message(self) -> float:
        return self.seconds / self.messages * 1e9


def _record(benchmark: Any, name: str, messages: int, nbytes: int, *,
            baseline: str | None = None, target: float | None = None, **extra: Any) -> None:
    """Messages, rates and the ratio to ``baseline`` (ns/message over ns/message)."""
    info = benchmark.extra_info
    info.update(messages=messages, itch_bytes=nbytes, **extra)
    if benchmark.disabled or benchmark.stats is None:
        return
    seconds = benchmark.stats.stats.median
    row = Row(name, messages, nbytes, seconds, baseline, target, info)
    info.update(ns_per_message=round(row.ns_per_message, 2),
                messages_per_s=round(messages / seconds),
                gb_per_s=round(nbytes / seconds / 1e9, 3))
    base = _ROWS.get(baseline) if baseline else None
    if base is not None:
        info["vs_baseline"] = baseline
        info["ratio"] = round(row.ns_per_message / base.ns_per_message, 3)
    _ROWS[name] = row


@pytest.fixture(scope="session", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Any:
    request.config.pluginmanager.register(_Summary(), "fastbook-itch-summary")
    yield


def _rate(per_s: float) -> str:
    return f"{per_s / 1e6:.2f}M" if per_s >= 1e6 else f"{per_s / 1e3:.0f}k"


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f}"


class _Summary:
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        tr.write_sep("=", "fastbook ITCH 5.0 benchmark summary")
        kernel = "compiled" if getattr(itch50._kernel, "COMPILED", False) else "PURE-PYTHON TWIN"
        tr.write_line(f"ITCH kernel: {kernel}; L3 core: "
                      f"{'compiled' if l3.COMPILED else 'PURE-PYTHON TWIN'}; gzip backend of "
                      f"replay: {sources._gzip_backend()[0]}")
        if _DAY:
            d = _DAY[0]
            m = d.meta
            prep = (f"generated with its gzip copy in {m['gen_s']:.1f} s, reference state in "
                    f"{m['reference_s']:.1f} s" if d.generated else
                    f"loaded from the cache in {d.load_s:.1f} s")
            tr.write_line(
                f"day: write_itch_day({m['messages']:,}, n_symbols={m['symbols']}, "
                f"seed={m['seed']}): {_mb(m['bytes'])} MiB plain "
                f"({m['bytes'] / m['messages']:.1f} B/msg), {_mb(m['gz_bytes'])} MiB gzip "
                f"(level {m['gzip_level']}); {prep}; cache {d.directory}")
        if _ROWS:
            self._passes(tr)
        else:
            tr.write_line("benchmarks disabled: every pass ran once as a smoke test, no timings.")
        if _MEMORY:
            self._memory(tr)
        tr.write_line("")
        tr.write_line("Shared 2-core machine: absolute figures move 30-50% between runs; "
                      "compare the ratios measured within one run.")

    def _passes(self, tr: Any) -> None:
        tr.write_line("")
        tr.write_line("passes (median of rounds; GB/s of uncompressed ITCH bytes; ratio = "
                      "ns/msg over the baseline's ns/msg in this run)")
        head = (f"{'pass':<46} {'messages':>11} {'median s':>9} {'ns/msg':>8} {'msgs/s':>8} "
                f"{'GB/s':>6}  vs baseline")
        tr.write_line(head)
        tr.write_line("-" * (len(head) + 40))
        for r in _ROWS.values():
            vs = ""
            base = _ROWS.get(r.baseline) if r.baseline else None
            if base is not None:
                ratio = r.ns_per_message / base.ns_per_message
                vs = f"{ratio:.2f}x {base.name}"
                if r.target is not None:
                    vs += f" (target <= {r.target:.2f}x: " \
                          f"{'met' if ratio <= r.target else 'NOT MET'})"
            tr.write_line(f"{r.name:<46} {r.messages:>11,} {r.seconds:>9.3f} "
                          f"{r.ns_per_message:>8.1f} {_rate(r.messages / r.seconds):>8} "
                          f"{r.nbytes / r.seconds / 1e9:>6.2f}  {vs}")
        lines = []
        base = _ROWS.get("replay memory (raise)")
        for name in ("replay memory + sampler every='bbo'", "replay memory + sampler every='1s'"):
            r = _ROWS.get(name)
            if r is not None and base is not None:
                extra = r.ns_per_message - base.ns_per_message
                lines.append(f"  {name.split('+ ')[1]:<28} +{extra:.1f} ns/msg "
                             f"({(r.seconds / base.seconds - 1) * 100:+.0f}%), "
                             f"{r.info.get('sample_rows', 0):,} rows, "
                             f"{_mb(r.info.get('sample_bytes', 0))} MiB of samples")
        if lines:
            tr.write_line("")
            tr.write_line("sampling cost (depth 10, over replay memory (raise) in this run)")
            for line in lines:
                tr.write_line(line)
        py, same = _ROWS.get("pure Python: _pyitch50 + dict book"), \
            _ROWS.get("replay memory, same prefix")
        if py is not None and same is not None:
            tr.write_line("")
            tr.write_line(f"pure-Python baseline ({py.messages:,}-message prefix): "
                          f"{py.ns_per_message:,.0f} ns/msg; compiled replay of the same prefix "
                          f"{same.ns_per_message:.1f} ns/msg, so fastbook is "
                          f"{py.ns_per_message / same.ns_per_message:.0f}x faster"
                          + (f" (whole day: {py.ns_per_message / base.ns_per_message:.0f}x)"
                             if base is not None else ""))

    def _memory(self, tr: Any) -> None:
        tr.write_line("")
        tr.write_line(f"peak memory of replay(path, chunk_size={MEMORY_CHUNK >> 20} MiB) in a "
                      f"child process (MiB; budget = chunk + book state + "
                      f"{MEMORY_ALLOWANCE >> 20} MiB)")
        head = (f"{'file':<22} {'file':>9} {'ITCH':>9} {'books':>7} {'after import':>12} "
                f"{'peak RSS':>9} {'growth':>7} {'budget':>7}  target")
        tr.write_line(head)
        tr.write_line("-" * (len(head) + 10))
        for name, m in _MEMORY.items():
            budget = MEMORY_CHUNK + m["book_nbytes"] + MEMORY_ALLOWANCE
            tr.write_line(
                f"{name:<22} {_mb(m['file_bytes']):>9} {_mb(m['itch_bytes']):>9} "
                f"{_mb(m['book_nbytes']):>7} "
                f"{_mb(m['rss_after_import']):>12} {_mb(m['peak_rss']):>9} "
                f"{_mb(m['peak_rss'] - m['rss_after_import']):>7} {_mb(budget):>7}  "
                f"peak <= budget: {'met' if m['peak_rss'] <= budget else 'NOT MET'}")


# -- decode only ----------------------------------------------------------------------------------

def decode_all(buf: Any, events: np.ndarray, counts: np.ndarray) -> tuple[int, int]:
    """The compiled kernel over a whole buffer into one reused event array: (messages, events)."""
    decode = itch50._kernel.decode_chunk
    counts[:] = 0
    pos = messages = n = 0
    while True:
        pos, n_events, n_messages, _, status = decode(buf, pos, 0, events, counts,
                                                      seq=messages, final=True)
        messages += n_messages
        n += n_events
        if status == 0:
            return messages, n
        if status != 1:
            raise DecodeError(f"byte {pos}, message {messages}: status {status}")


def test_decode_only(benchmark: Any, day: ItchDay) -> None:
    """decode_chunk over the in-memory day, 64K events per call, no books."""
    events = np.zeros(BATCH, EVENT_DTYPE)
    counts = np.zeros(256, np.uint64)
    messages, n = benchmark.pedantic(decode_all, args=(day.data, events, counts),
                                     rounds=SHORT_ROUNDS, iterations=1, warmup_rounds=1)
    assert messages == day.messages
    assert _counts(counts) == day.meta["counts"]
    _record(benchmark, "decode only (kernel, memory)", messages, day.nbytes, events=n)


# -- baselines: decompression alone, pure Python -----------------------------------------------

def decompress_only(path: Path, module: Any) -> int:
    """Decompress a gzip file in 1 MiB reads, discarding the output; returns its size."""
    d = module.decompressobj(wbits=31)
    block = bytearray(1 << 20)
    view = memoryview(block)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            got = f.readinto(block)
            if not got:
                break
            total += len(d.decompress(view[:got]))
    total += len(d.flush())
    assert d.eof
    return total


@pytest.mark.parametrize("backend", GZIP_BACKENDS)
def test_gunzip_only(benchmark: Any, day: ItchDay, backend: str) -> None:
    """Baseline: decompressing the gzip day, and nothing else (what a gzip replay cannot beat)."""
    module = isal_zlib if backend == "isal" else zlib
    total = benchmark.pedantic(decompress_only, args=(day.gz, module), rounds=ROUNDS,
                               iterations=1)
    assert total == day.nbytes
    info = {}
    if benchmark.stats is not None:
        info["compressed_mb_per_s"] = round(day.meta["gz_bytes"] / benchmark.stats.stats.median
                                            / 1e6, 1)
    _record(benchmark, f"gunzip only ({backend})", day.messages, day.nbytes, **info)


@pytest.fixture(scope="session")
def prefix(day: ItchDay) -> bytes:
    """The first PY_MESSAGES messages of the day."""
    return day.data[:_frame_end(day.data, PY_MESSAGES)]


def test_replay_prefix(benchmark: Any, prefix: bytes) -> None:
    """fastbook.replay of the pure-Python baseline's prefix: the ratio's other side."""
    result = benchmark.pedantic(fastbook.replay, args=(prefix, "itch50"), rounds=SHORT_ROUNDS,
                                iterations=1, warmup_rounds=1)
    assert result.messages == PY_MESSAGES and result.skipped == 0
    _, _, books = dict_replay(prefix, itch50._kernel)
    assert bookset_state(result.books) == books.state()
    _record(benchmark, "replay memory, same prefix", result.messages, len(prefix))


def test_pure_python(benchmark: Any, prefix: bytes) -> None:
    """Baseline: the pure-Python decoder (_pyitch50.decode_chunk) and a dict book, on a prefix."""
    messages, counts, books = benchmark.pedantic(dict_replay, args=(prefix, _pyitch50),
                                                 rounds=ROUNDS, iterations=1)
    assert messages == PY_MESSAGES
    reference = fastbook.replay(prefix, "itch50")
    assert counts == reference.counts
    assert books.state() == bookset_state(reference.books)
    _record(benchmark, "pure Python: _pyitch50 + dict book", messages, len(prefix),
            baseline="replay memory, same prefix")


# -- decode + apply: memory, plain file, gzip ----------------------------------------------------

def _check(result: Any, day: ItchDay) -> None:
    assert result.messages == day.messages
    assert result.bytes == day.nbytes
    assert result.counts == day.meta["counts"]
    assert result.skipped == 0 and result.unknown_types == 0
    assert len(result.books) == day.meta["symbols"]
    assert bookset_state(result.books) == day.meta["state"]


def _gc() -> None:
    gc.collect()


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_replay_memory(benchmark: Any, day: ItchDay, on_error: str) -> None:
    """fastbook.replay(buffer): decode + apply, all symbols, full L3 books, from memory."""
    result = benchmark.pedantic(fastbook.replay, args=(day.data, "itch50"),
                                kwargs={"on_error": on_error}, setup=_gc, rounds=ROUNDS,
                                iterations=1)
    _check(result, day)
    _record(benchmark, f"replay memory ({on_error})", result.messages, day.nbytes,
            baseline=None if on_error == "raise" else "replay memory (raise)")


def test_replay_file(benchmark: Any, day: ItchDay) -> None:
    """fastbook.replay(path) of the plain file: memory-mapped, 4 MiB chunks."""
    with sources.open_source(day.plain) as src:
        assert src.mmapped
    result = benchmark.pedantic(fastbook.replay, args=(day.plain, "itch50"), setup=_gc,
                                rounds=ROUNDS, iterations=1)
    _check(result, day)
    _record(benchmark, "replay plain file (mmap)", result.messages, day.nbytes,
            baseline="replay memory (raise)")


@pytest.mark.parametrize("backend", GZIP_BACKENDS)
def test_replay_gzip(benchmark: Any, day: ItchDay, backend: str,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """fastbook.replay(path) of the gzip file: decompressed in a reader thread, 4 MiB chunks.

    The zlib row, when isal is installed, hides isal from fastbook.sources: it is
    what a user without the ``gzip`` extra gets.
    """
    if backend == "zlib":
        monkeypatch.setattr(sources, "_import_isal", lambda: None)
    with sources.open_source(day.gz) as src:
        assert (src.compression, src.backend) == ("gzip", backend)
    result = benchmark.pedantic(fastbook.replay, args=(day.gz, "itch50"), setup=_gc,
                                rounds=ROUNDS, iterations=1)
    _check(result, day)
    _record(benchmark, f"replay gzip file ({backend})", result.messages, day.nbytes,
            baseline=f"gunzip only ({backend})", target=GZIP_TARGET,
            compressed_bytes=day.meta["gz_bytes"])


# -- sampling -------------------------------------------------------------------------------------

@pytest.mark.parametrize("every", ["bbo", "1s"])
def test_replay_sampler(benchmark: Any, day: ItchDay, every: str) -> None:
    """fastbook.replay(buffer, every=..., depth=10): what taking samples costs."""
    kept: list[tuple[int, int]] = []

    def run() -> Any:
        result = fastbook.replay(day.data, "itch50", every=every, depth=10)
        kept[:] = [(len(result.samples["ts"]),
                    sum(a.nbytes for a in result.samples.values()))]
        result.samples.clear()           # one round's samples at a time (they take GBs)
        return result

    result = benchmark.pedantic(run, setup=_gc, rounds=ROUNDS, iterations=1)
    _check(result, day)
    rows, nbytes = kept[0]
    assert rows > 0
    _record(benchmark, f"replay memory + sampler every={every!r}", result.messages, day.nbytes,
            baseline="replay memory (raise)", sample_rows=rows, sample_bytes=nbytes)


# -- peak memory while streaming --------------------------------------------------------------

_MEMORY_CHILD = r"""
import json, resource, sys, time
import fastbook

def peak():
    # VmHWM, the peak RSS of this process image. Not ru_maxrss: on Linux that keeps
    # the high-water mark of the forking parent (pytest, holding the day in memory)
    # across fork + exec.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss     # KiB; bytes on macOS
    return rss if sys.platform == "darwin" else rss * 1024

path, chunk = sys.argv[1], int(sys.argv[2])
after_import = peak()
t0 = time.perf_counter()
result = fastbook.replay(path, "itch50", chunk_size=chunk)
seconds = time.perf_counter() - t0
json.dump({"peak_rss": peak(), "rss_after_import": after_import, "seconds": seconds,
           "messages": result.messages, "skipped": result.skipped,
           "book_nbytes": sum(book.nbytes for book in result.books.books),
           "orders": sum(book.order_count for book in result.books.books)}, sys.stdout)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs the resource module")
@pytest.mark.parametrize("which", ["plain", "gzip", "plain, first quarter"])
def test_peak_memory(benchmark: Any, day: ItchDay, which: str) -> None:
    """Peak RSS of a child process replaying a file many times the chunk size.

    The target (reported, not asserted): chunk + book state + at most 100 MiB,
    whatever the file length; the first-quarter file shows the length does not
    matter. The timed part is the whole child process, start-up included.
    """
    path = {"plain": day.plain, "gzip": day.gz, "plain, first quarter": day.quarter}[which]
    messages = day.meta["quarter_messages"] if "quarter" in which else day.messages
    out: list[dict[str, Any]] = []

    def child() -> None:
        proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(path),
                               str(MEMORY_CHUNK)], check=True, capture_output=True, text=True,
                              timeout=1800)
        out[:] = [json.loads(proc.stdout)]

    benchmark.pedantic(child, rounds=1, iterations=1)
    m = out[0]
    assert m["messages"] == messages and m["skipped"] == 0
    file_bytes = path.stat().st_size
    itch_bytes = day.meta["quarter_bytes"] if "quarter" in which else day.nbytes
    # a generous sanity bound only (4x the allowance): reading the whole file into
    # memory would break it at the default size
    growth = m["peak_rss"] - m["rss_after_import"]
    assert growth < MEMORY_CHUNK + m["book_nbytes"] + 4 * MEMORY_ALLOWANCE, m
    _MEMORY[which] = dict(m, file_bytes=file_bytes, itch_bytes=itch_bytes)
    benchmark.extra_info.update(
        file_bytes=file_bytes, itch_bytes=itch_bytes, chunk_size=MEMORY_CHUNK,
        chunks=round(itch_bytes / MEMORY_CHUNK, 1),
        book_nbytes=m["book_nbytes"], orders=m["orders"], peak_rss=m["peak_rss"],
        rss_after_import=m["rss_after_import"], peak_rss_growth=growth,
        budget=MEMORY_CHUNK + m["book_nbytes"] + MEMORY_ALLOWANCE,
        child_replay_s=round(m["seconds"], 3))
