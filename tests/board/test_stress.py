"""Readers on other threads never see a torn snapshot while a writer publishes.

The writer publishes synthetic records whose every field is a function of the version
(``encode``; the compiled ``_stress_publish`` writes the same ones in a loop without
the GIL), so each record read can be checked on its own. The same setup with a reader
that skips the sequence check (``_read_unchecked``) does see torn records: the check
is what the consistency rests on, and these tests can fail.

No free-threaded CPython (3.13t/3.14t) is installed here, so these run with the GIL:
the compiled writer and the compiled reads hold no GIL while they copy, so they do
run at the same time on two cores; Python-level reader code interleaves between them.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import pytest

from fastbook import _pyboard
from tests.helpers.impls import NO_EXTENSIONS, pair

try:
    CBOARD: ModuleType | None = importlib.import_module("fastbook._board")
except ImportError:  # pragma: no cover - without the build
    CBOARD = None
BOARDS = pair(_pyboard, CBOARD)
needs_compiled = pytest.mark.skipif(CBOARD is None or NO_EXTENSIONS,
                                    reason="the compiled board is not under test")

DEPTH = 10
DEADLINE_S = 3.0        # every thread stops by itself after this, whatever happens


def encode(v: int, d: int = DEPTH) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                            int, int]:
    """The levels, state and ts_ns of version ``v`` (as ``_stress_publish`` writes them)."""
    nb, na = 1 + (v * 3) % d, 1 + (v * 7 + 1) % d
    i_b, i_a = np.arange(nb, dtype=np.int64), np.arange(na, dtype=np.int64)
    return v * 1024 + i_b, v * 3 + i_b, -(v * 1024 + i_a), v * 3 + i_a, v & 7, v


def consistent(snap: _pyboard.Snapshot) -> bool:
    """True when every field of ``snap`` is that of its version."""
    v = snap.version
    if v == 0:
        return (snap.state, snap.ts_ns, snap.n_bids, snap.n_asks) == (0, 0, 0, 0)
    bp, bq, ap, aq, state, ts = encode(v)
    return (snap.state == state and snap.ts_ns == ts and snap.n_bids == len(bp)
            and snap.n_asks == len(ap) and np.array_equal(snap.bids[:, 0], bp)
            and np.array_equal(snap.bids[:, 1], bq) and np.array_equal(snap.asks[:, 0], ap)
            and np.array_equal(snap.asks[:, 1], aq))


#: CPUs the process may use (read before any thread pins itself: threads inherit it).
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pin(index: int) -> None:
    """Pin the calling thread (pid 0, Linux) to one CPU, the writer to another than the
    readers': else the scheduler tends to wake them on one core, where they take turns."""
    if len(CPUS) >= 2:
        os.sched_setaffinity(0, {CPUS[index % len(CPUS)]})


def run_threads(writer: Callable[[threading.Event], None],
                readers: list[Callable[[threading.Event], None]]) -> None:
    """Run ``writer`` until every reader returns (or the deadline), re-raising errors.
    The threads pin themselves: the writer to the second CPU, the readers to the first."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def guard(fn: Callable[[threading.Event], None], cpu: int) -> Callable[[], None]:
        def run() -> None:
            try:
                pin(cpu)
                fn(stop)
            except BaseException as exc:  # re-raised in the main thread
                errors.append(exc)
                stop.set()
        return run

    w = threading.Thread(target=guard(writer, 1), daemon=True)
    rs = [threading.Thread(target=guard(r, 0), daemon=True) for r in readers]
    w.start()
    for r in rs:
        r.start()
    for r in rs:
        r.join(DEADLINE_S + 5)
    stop.set()
    w.join(DEADLINE_S + 5)
    assert not w.is_alive() and not any(r.is_alive() for r in rs), "a thread did not stop"
    if errors:
        raise errors[0]


class Tally:
    """What reader threads saw: reads, inconsistent reads, versions seen (a lock-guarded
    tally: the readers' own counts are merged once, at their end)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reads = self.torn = 0
        self.versions: set[int] = set()

    def add(self, reads: int, torn: int, versions: set[int]) -> None:
        with self.lock:
            self.reads += reads
            self.torn += torn
            self.versions |= versions


def python_reader(board: object, tally: Tally, n: int, *, use_read: bool,
                  unchecked: Callable[..., int] | None = None) -> Callable[[threading.Event], None]:
    """A reader thread: ``n`` reads through ``read`` or ``read_into`` (or, for the
    negative control, ``unchecked``), each checked with :func:`consistent`."""
    def run(stop: threading.Event) -> None:
        out = np.empty(board.record_len, dtype=np.int64)  # type: ignore[attr-defined]
        torn, reads, seen = 0, 0, set()
        end = time.monotonic() + DEADLINE_S
        for reads in range(1, n + 1):  # noqa: B007 - the count is the result
            if stop.is_set() or time.monotonic() > end:
                break
            if use_read:
                snap = board.read(0)  # type: ignore[attr-defined]
            else:
                if unchecked is None:
                    board.read_into(0, out)  # type: ignore[attr-defined]
                else:
                    unchecked(board, 0, out)
                snap = _pyboard.unpack(out)
            torn += not consistent(snap)
            seen.add(snap.version)
            if torn and unchecked is not None:
                break               # the negative control has shown what it shows
        tally.add(reads, torn, seen)
    return run


def nogil_writer(board: object, gap: int = 10) -> Callable[[threading.Event], None]:
    """Publish without the GIL until stopped, ``gap`` pause instructions between
    publishes (10: a few million publishes a second here, far above the 1M/s target;
    with none, a tight loop's bursts of 20k publishes rarely overlap a reader)."""
    assert CBOARD is not None

    def run(stop: threading.Event) -> None:
        end = time.monotonic() + DEADLINE_S
        while not stop.is_set() and time.monotonic() < end:
            CBOARD._stress_publish(board, 0, 20_000, gap)
    return run


def python_writer(board: object) -> Callable[[threading.Event], None]:
    def run(stop: threading.Event) -> None:
        end = time.monotonic() + DEADLINE_S
        v = 0
        while not stop.is_set() and time.monotonic() < end:
            v += 1
            bp, bq, ap, aq, state, ts = encode(v)
            assert board.publish_levels(0, bp, bq, ap, aq, state=state, ts_ns=ts) == v  # type: ignore[attr-defined]
    return run


@pytest.fixture
def short_switches() -> Iterator[None]:
    """Switch threads every 10 us rather than 5 ms, so Python-level writer and readers
    interleave often (restored afterwards)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_python_writer_python_readers(name: str, short_switches: None) -> None:
    board = BOARDS[name].Board(1, depth=DEPTH)  # type: ignore[attr-defined]
    tally = Tally()
    run_threads(python_writer(board), [
        python_reader(board, tally, 3000, use_read=True),
        python_reader(board, tally, 3000, use_read=False),
    ])
    assert tally.torn == 0
    assert len(tally.versions) > 1          # the readers did read while it wrote


@needs_compiled
def test_nogil_writer_python_readers(short_switches: None) -> None:
    assert CBOARD is not None
    board = CBOARD.Board(1, depth=DEPTH)
    tally = Tally()
    run_threads(nogil_writer(board), [
        python_reader(board, tally, 4000, use_read=True),
        python_reader(board, tally, 4000, use_read=False),
        python_reader(board, tally, 4000, use_read=False),
    ])
    assert tally.torn == 0, f"{tally.torn} torn snapshots out of {tally.reads}"
    assert len(tally.versions) > 10


def nogil_reads(board: object, *, checked: bool, enough: Callable[[int, int], bool]
                ) -> tuple[int, int, int]:
    """Run ``_stress_read`` in chunks beside a nogil writer until ``enough(torn,
    distinct)`` or the deadline; return the summed ``(reads, torn, distinct)``.

    The machine is shared: the writer and the reader may spend long stretches not
    running at the same time, so the reader keeps going until it has seen enough."""
    assert CBOARD is not None
    totals = [0, 0, 0]

    def reader(stop: threading.Event) -> None:
        end = time.monotonic() + DEADLINE_S
        while not stop.is_set() and time.monotonic() < end \
                and not enough(totals[1], totals[2]):
            for i, x in enumerate(CBOARD._stress_read(board, 0, 50_000, checked)):
                totals[i] += x

    run_threads(nogil_writer(board), [reader])
    return totals[0], totals[1], totals[2]


@needs_compiled
def test_nogil_writer_nogil_reader_never_torn() -> None:
    # both loops run without the GIL: on two cores they truly overlap
    assert CBOARD is not None
    board = CBOARD.Board(1, depth=DEPTH)
    reads, torn, distinct = nogil_reads(board, checked=True,
                                        enough=lambda torn, distinct: distinct >= 20_000)
    assert torn == 0, f"{torn} torn records out of {reads}"
    if distinct < 10:  # pragma: no cover - depends on the scheduler
        pytest.skip(f"the reader saw only {distinct} versions in {reads} reads: the writer "
                    "hardly ran beside it (busy machine)")


@needs_compiled
def test_unchecked_reads_do_tear() -> None:
    """The negative control: the same writer, a reader without the sequence check."""
    assert CBOARD is not None
    board = CBOARD.Board(1, depth=DEPTH)
    reads, torn, distinct = nogil_reads(board, checked=False,
                                        enough=lambda torn, distinct: torn > 0)
    if torn == 0:  # pragma: no cover - depends on the scheduler
        pytest.skip(f"no torn record in {reads} unchecked reads ({distinct} versions): the "
                    "writer and the reader never overlapped mid-write on this machine")
    assert torn > 0


@needs_compiled
def test_unchecked_python_reads_do_tear(short_switches: None) -> None:
    """The negative control through Python-level reads (``_read_unchecked``)."""
    assert CBOARD is not None
    board = CBOARD.Board(1, depth=DEPTH)
    tally = Tally()
    run_threads(nogil_writer(board), [
        python_reader(board, tally, 500_000, use_read=False, unchecked=CBOARD._read_unchecked)])
    if tally.torn == 0:  # pragma: no cover - depends on the scheduler
        pytest.skip(f"no torn record in {tally.reads} unchecked reads: the writer and the "
                    "reader never overlapped mid-write on this machine")
    assert tally.torn > 0


def test_read_unchecked_agrees_when_idle() -> None:
    """Without a writer running, the unchecked copy equals the checked one."""
    if CBOARD is None or NO_EXTENSIONS:
        pytest.skip("the compiled board is not under test")
    board = CBOARD.Board(2, depth=DEPTH)
    assert CBOARD._stress_publish(board, 1, 5) == 5
    a, b = np.empty(board.record_len, np.int64), np.empty(board.record_len, np.int64)
    assert CBOARD._read_unchecked(board, 1, a) == board.read_into(1, b) == 5
    assert a.tolist() == b.tolist()
    assert CBOARD._consistent_record(board, a) and consistent(_pyboard.unpack(a))
    a[7] += 1
    assert not CBOARD._consistent_record(board, a) and not consistent(_pyboard.unpack(a))


@needs_compiled
def test_a_second_writer_is_refused() -> None:
    """Two writers on one slot: whichever finds the other mid-write gets RuntimeError (it
    does not wait), and the slot stays readable and consistent."""
    assert CBOARD is not None
    board = CBOARD.Board(1, depth=DEPTH)
    refused: list[str] = []         # publish_levels refused
    stressed: list[str] = []        # _stress_publish found a foreign version or was refused

    def writer(stop: threading.Event) -> None:
        end = time.monotonic() + DEADLINE_S
        while not stop.is_set() and not refused and time.monotonic() < end:
            try:
                CBOARD._stress_publish(board, 0, 20_000, 0)
            except RuntimeError as exc:
                stressed.append(str(exc))

    def other(stop: threading.Event) -> None:
        end = time.monotonic() + DEADLINE_S
        one = np.array([1], dtype=np.int64)
        while not refused and time.monotonic() < end:
            try:
                board.publish_levels(0, one, one, one, one)
            except RuntimeError as exc:
                refused.append(str(exc))

    run_threads(writer, [other])
    if not refused:  # pragma: no cover - depends on the scheduler
        pytest.skip(f"publish_levels never found the other writer mid-write on this machine "
                    f"({len(stressed)} times the other way round)")
    assert refused[0] == "slot 0 is being published by another thread: one writer per slot"
    assert all("had another writer" in m for m in stressed)
    out = np.empty(board.record_len, dtype=np.int64)
    v = board.read_into(0, out)
    assert v == board.version(0) and v > 0 and out[0] == v
