"""Parallel replay on one machine: instruments sharded across worker processes, exactly.

``fb.replay(source, codec, workers=N)`` (``fastbook replay --workers N``) splits a
day by instrument. Every order message names its instrument, so a shard is exact:
each of the N worker processes decodes the whole stream, keeps the books of its
own symbols (a :class:`fastbook._shard.Shard` as ``symbols=``) and drops the other
instruments' messages inside the kernel, a few nanoseconds each. The main process
merges what the workers return into the result a single process would give: the
same books under the same instrument ids, the same sample and trade rows in the
same order (rows are ordered by message number, which every worker counts over
the whole stream), the same counts, errors and warnings.

How the input is read once:

* an uncompressed file is memory-mapped by every worker: the operating system
  holds its pages once, in its page cache, for all of them;
* anything else (gzip or zstd, a buffer, a pipe, stdin) is read and decompressed
  once by the main process, which fans the chunks out to the workers through a
  ring of shared-memory slots; a slot is reused when every worker is done with it,
  so memory stays bounded by the ring.

The shards are balanced on the messages per symbol of the stream's first part
(:func:`fastbook._shard.balance`); symbols it does not name go by CRC-32. A worker
that fails is reported with its shard and the error a single process would have
raised (the earliest message that fails, with the books as of the message before
it in raise mode); a worker that dies is reported with its exit code; never is a
partial result presented as whole. Ctrl-C, or ``cancel=`` (a
``threading.Event`` set from another thread), stops the workers and removes every
temporary file.

The workers stay up for the next replay of the same process (``shutdown()``
stops them; they stop at exit anyway): starting a Python process that imports
numpy and fastbook takes about 0.2 s, as long as replaying 5 million messages.
They are started with ``spawn``, like every ``multiprocessing`` program that may
run threads, so a script that calls ``replay(..., workers=N)`` needs the usual
``if __name__ == "__main__":`` guard, and ``map_books=`` must be a function
defined at module level (it is pickled to the workers).

``map_books=f`` runs ``f(result)`` inside each worker on its shard's
:class:`fastbook.driver.ReplayResult` (its books and samples), so analysis that
would block the single loop runs on every core; each call returns a mapping
``{symbol: value}`` and ``result.mapped`` holds them all in instrument order.
"""

from __future__ import annotations

import atexit
import contextlib
import mmap
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from fastbook._shard import Shard, balance
from fastbook.errors import DecodeError, FastbookError, ReplayError, UpdateError
from fastbook.writers import make_dirs, remove_empty_dirs

__all__ = ["Cancelled", "replay_parallel", "shutdown", "worker_count"]

#: Slots of the shared-memory ring per worker run (each ``chunk_size`` bytes).
RING_SLOTS = 8
#: Bytes of the stream's start scanned to balance the shards (at most).
BALANCE_BYTES = 32 << 20
#: Seconds between checks of ``cancel=`` while waiting for the workers.
_POLL_S = 0.05


class Cancelled(FastbookError):
    """A replay stopped by its ``cancel=`` event (or Ctrl-C, which raises KeyboardInterrupt)."""


def worker_count(workers: Any) -> int:
    """``workers=`` as a number of processes: an int >= 1, or ``"auto"`` (every core)."""
    if workers == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int or 'auto', got {workers!r}")
    return workers


# ---------------------------------------------------------------------------
# The worker pool: N spawned processes, each with a pipe, kept for the next replay
# ---------------------------------------------------------------------------

class _Pool:
    """N worker processes started with ``spawn``; each talks over one duplex pipe."""

    def __init__(self, n: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        # each worker is started with SIGINT blocked (the mask is kept through fork and
        # exec) and ignores it once it runs: Ctrl-C reaches the whole process group, and
        # only the main process decides what it means, even while a worker is still
        # starting. Here it stays pending while they start, and is raised after.
        masked = hasattr(signal, "pthread_sigmask")
        if masked:
            # started first: starting it unblocks SIGINT (multiprocessing.resource_tracker)
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            try:
                for k in range(n):
                    mine, theirs = ctx.Pipe(duplex=True)
                    proc = ctx.Process(target=_worker_main, args=(theirs,), daemon=True,
                                       name=f"fastbook-replay-{k}")
                    proc.start()
                    theirs.close()
                    self.procs.append(proc)
                    self.conns.append(mine)
            finally:
                if masked:      # a Ctrl-C kept pending since is raised here
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
        except BaseException:
            self.close(kill=True)
            raise

    def __len__(self) -> int:
        return len(self.procs)

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.procs)

    def close(self, *, kill: bool = False) -> None:
        """Stop the workers: asked to exit, or terminated (``kill``, or when they do not)."""
        for conn in self.conns:
            with contextlib.suppress(OSError, ValueError):
                if not kill:
                    conn.send(None)
        for proc in self.procs:
            if not kill:
                proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2)
            if proc.is_alive():     # pragma: no cover - a worker stuck in C
                proc.kill()
                proc.join(timeout=2)
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()
        self.procs, self.conns = [], []


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _pool(n: int) -> _Pool:
    """The pool of ``n`` workers, started (or restarted) when needed."""
    global _POOL
    if _POOL is not None and (len(_POOL) != n or not _POOL.alive()):
        _POOL.close(kill=not _POOL.alive())
        _POOL = None
    if _POOL is None:
        _POOL = _Pool(n)
    return _POOL


def shutdown() -> None:
    """Stop the worker processes kept for the next parallel replay (also done at exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.close()
            _POOL = None


atexit.register(shutdown)


def _discard_pool() -> None:
    """Kill the pool (after a failure or a cancel: its workers may be mid-task)."""
    global _POOL
    if _POOL is not None:
        _POOL.close(kill=True)
        _POOL = None


# ---------------------------------------------------------------------------
# Inside a worker
# ---------------------------------------------------------------------------

def _worker_main(conn: Any) -> None:
    """A worker's life: replay the tasks the main process sends until it sends None."""
    # Ctrl-C reaches the whole process group: the main process decides, workers ignore it
    # (it was blocked from the start, see _Pool; a Ctrl-C pending since is dropped here)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        if not isinstance(task, dict):
            continue    # a ring note sent before this worker's last task failed: stale
        try:
            out = _run_shard(task, conn)
        except BaseException as exc:   # reported, with the shard, by the main process
            try:
                conn.send(("failed", _portable(exc), traceback.format_exc()))
            except (OSError, ValueError):
                return
        else:
            conn.send(("done", out))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles, else a FastbookError with its type and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return FastbookError(f"{type(exc).__name__}: {exc}")


class _PipeProgress:
    """A worker's progress, sent to the main process (which draws the line) a few times a
    second: the worker's own stderr may not be the caller's (a pool outlives a test, a
    notebook cell)."""

    def __init__(self, conn: Any, min_interval: float = 0.2) -> None:
        self._conn = conn
        self._next = 0.0
        self._min = min_interval
        self._last: tuple[int, int] = (0, 0)

    def update(self, raw_bytes: int, messages: int) -> None:
        self._last = (raw_bytes, messages)
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._min
            self._send()

    def _send(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("progress", *self._last))

    def close(self) -> None:
        self._send()


class _RingSource:
    """The chunks the main process puts in the shared ring, as a ``fastbook.sources.Source``."""

    def __init__(self, conn: Any, path: str, slot_size: int, name: str,
                 size: int | None) -> None:
        from fastbook.sources import Source

        self._conn = conn
        self._file = open(path, "r+b")     # closed by Source.close (_close)
        self._map = mmap.mmap(self._file.fileno(), 0)
        self._slot_size = slot_size
        self.source = Source(name=name, compression="none", size=size, chunk_size=slot_size,
                             chunks=self._chunks(), on_close=self._close, threaded=False)

    def _chunks(self) -> Iterator[tuple[Any, int]]:
        held: int | None = None
        view = memoryview(self._map)
        try:
            while True:
                if held is not None:
                    self._conn.send(("ack", held))
                    held = None
                note = self._conn.recv()
                if note[0] == "eof":
                    return
                _, slot, n, raw = note
                held = slot
                start = slot * self._slot_size
                yield view[start:start + n], raw
        finally:
            if held is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._conn.send(("ack", held))
            view.release()

    def _close(self) -> None:
        with contextlib.suppress(BufferError):
            self._map.close()
        self._file.close()


def _run_shard(task: dict[str, Any], conn: Any) -> dict[str, Any]:
    """Replay one shard as ``task`` says; its books, counts and row files for the merge."""
    from fastbook.driver import replay

    kind = task["source"][0]
    ring = None
    if kind == "path":
        source: Any = task["source"][1]
    else:
        _, path, slot_size, name, size = task["source"]
        ring = _RingSource(conn, path, slot_size, name, size)
        source = ring.source
    options = dict(task["options"])
    if options.pop("progress", False):
        options["progress"] = _PipeProgress(conn)
    else:
        options["progress"] = False
    t0 = time.perf_counter()
    result = replay(source, task["codec"], symbols=task["shard"], **options)
    seconds = time.perf_counter() - t0
    k = task["index"]
    out_dir = task["dir"]
    files = {"samples": _save(result.samples, out_dir, f"s{k}"),
             "trades": _save(result.trades, out_dir, f"t{k}")}
    run = result._run
    first: dict[Any, int] = {}
    for position, entry in enumerate(getattr(run.decoder, "directory", [])):
        if isinstance(entry, dict):
            first.setdefault(entry.get("symbol"), position)
    books = result.books
    instruments = []
    for i in range(len(books)):
        meta = books.instrument(i)
        instruments.append((first.get(meta["symbol"], -1), meta, pickle.dumps(books[i], 5),
                            books.instrument_errors(i)))
    mapped = None
    if task["map_books"] is not None:
        mapped = task["map_books"](result)
        if mapped is not None and not isinstance(mapped, Mapping):
            raise TypeError(f"map_books must return a mapping {{symbol: value}} or None, "
                            f"got {type(mapped).__name__}")
        mapped = None if mapped is None else dict(mapped)
    return {"instruments": instruments, "files": files, "fields": run.result_fields(),
            "warnings": run.warnings(), "name": run.name,
            "bad_instrument": books.errors["bad_instrument"], "mapped": mapped,
            "lobster_skipped": getattr(result, "_lobster_skipped", 0),
            "lobster_paths": getattr(result, "_lobster_paths", []),
            "shard": {"events": int(result.events), "instruments": len(books),
                      "seconds": seconds, "rows": len(result.samples.get("ts", ())),
                      "pid": os.getpid()},
            "known": [e.get("symbol", "") for e in getattr(run.decoder, "directory", [])
                      if isinstance(e, dict)]}


def _save(columns: dict[str, np.ndarray], directory: str, prefix: str) -> dict[str, str]:
    """Each column as an ``.npy`` file in ``directory`` (the main process maps them)."""
    out = {}
    for name, column in columns.items():
        path = os.path.join(directory, f"{prefix}-{name}.npy")
        np.save(path, np.ascontiguousarray(column), allow_pickle=False)
        out[name] = path
    return out


# ---------------------------------------------------------------------------
# The main process
# ---------------------------------------------------------------------------

def _temp_root() -> str | None:
    """Where the ring and the row files go: ``/dev/shm`` when there is one, else the default."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


def _weights(module: Any, head: Any) -> dict[str, int]:
    """Events per symbol in ``head`` (the stream's first bytes), decoded without books."""
    counts: dict[int, int] = {}
    decoder = module.Decoder(None, name="<head>")
    try:
        for events in decoder.feed(head):
            keys, n = np.unique(events["instrument"], return_counts=True)
            for key, c in zip(keys.tolist(), n.tolist(), strict=True):
                counts[key] = counts.get(key, 0) + c
    except DecodeError:
        return {}     # the whole run will say what is wrong; balance on what there is
    out: dict[str, int] = {}
    for entry in decoder.directory:
        if not isinstance(entry, dict):
            continue
        key = entry.get("locate", entry.get("order_book_id"))
        symbol = entry.get("symbol")
        if isinstance(symbol, str) and key in counts:
            out[symbol] = out.get(symbol, 0) + counts[key]
    return out


class _Run:
    """One parallel replay's state in the main process: pool, temp files, results."""

    def __init__(self, n: int, cancel: Any) -> None:
        self.n = n
        self.cancel = cancel
        self.dir = tempfile.mkdtemp(prefix="fastbook-parallel-", dir=_temp_root())
        self.results: list[dict[str, Any] | None] = [None] * n
        self.failures: dict[int, tuple[BaseException, str]] = {}
        self.pending: set[int] = set()
        #: called with a worker's index when it stops reading (failed or died)
        self.on_gone: Any = None
        #: the progress line (``fastbook.sources.Progress``), fed by worker 0's reports
        self.bar: Any = None

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the replay was cancelled (cancel= was set)")

    def handle(self, k: int, msg: Any, on_ack: Any = None) -> None:
        """One message from worker ``k``: an ack of a ring slot, its result, its failure."""
        what = msg[0]
        if what == "progress":
            if self.bar is not None:
                self.bar.update(msg[1], msg[2])
        elif what == "ack":
            if on_ack is not None:
                on_ack(k, msg[1])
        elif what == "done":
            self.results[k] = msg[1]
            self.pending.discard(k)
        elif what == "failed":
            self.failures[k] = (msg[1], msg[2])
            self.pending.discard(k)
            if self.on_gone is not None:
                self.on_gone(k)

    def died(self, k: int, pool: _Pool) -> None:
        proc = pool.procs[k]
        proc.join(timeout=1)
        code = proc.exitcode
        self.failures[k] = (ReplayError(
            f"worker {k} of {self.n} (shard {k}, pid {proc.pid}) died with exit code "
            f"{code} before it returned its books"
            + (" (a script that calls replay(..., workers=N) needs the `if __name__ == "
               "\"__main__\":` guard, or each worker runs it again: docs/parallel.md)"
               if code == 1 else "")), "")
        self.pending.discard(k)
        if self.on_gone is not None:
            self.on_gone(k)

    def wait(self, pool: _Pool, on_ack: Any = None, *, until: Any = None) -> None:
        """Read the workers' messages until ``until()`` holds (default: every result in)."""
        from multiprocessing.connection import wait

        done = until or (lambda: not self.pending)
        while not done():
            self.check_cancel()
            live = [pool.conns[k] for k in sorted(self.pending)]
            if not live:
                return
            for conn in wait(live, timeout=_POLL_S):
                k = pool.conns.index(conn)
                try:
                    msg = pool.conns[k].recv()
                except (EOFError, OSError):
                    self.died(k, pool)
                    continue
                self.handle(k, msg, on_ack)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        shutil.rmtree(self.dir, ignore_errors=True)


def replay_parallel(source: Any, codec: str, module: Any, *, workers: int,
                    symbols: list[str] | None, options: dict[str, Any],
                    chunk_size: int, compression: str, progress: bool | None,
                    map_books: Any, cancel: Any) -> dict[str, Any]:
    """Replay ``source`` in ``workers`` processes; what ``fb.replay`` needs to build its result.

    ``options`` are the replay keywords every worker gets (depth, every, features,
    on_error, lobster, date, the codec's options...). Returns the merged books, the
    memory-mapped row files, counts and warnings (see :func:`merge`).
    """
    from fastbook.sources import Source, open_source

    if map_books is not None:
        try:
            pickle.dumps(map_books)
        except Exception as exc:
            raise TypeError(f"map_books must be a function the worker processes can import "
                            f"(defined at module level, not a lambda or a closure): {exc}") \
                from None
    show = (sys.stderr is not None and sys.stderr.isatty()) if progress is None else progress
    with _POOL_LOCK:
        try:
            pool = _pool(workers)
        except BaseException:
            _discard_pool()
            raise
    run = _Run(workers, cancel)
    # made here, before any worker starts: a worker that fails removes only its own
    # files, never a directory another worker is creating its files in
    made = make_dirs(options["lobster"]) if options.get("lobster") is not None else []
    ok = False
    try:
        with _POOL_LOCK:
            pool = _pool(workers)      # (the same one, unless another thread changed it)
            src: Source | None = None
            path_source = isinstance(source, (str, os.PathLike)) and os.fspath(source) != "-"
            if path_source:
                # an uncompressed regular file: every worker maps it itself
                probe = open_source(source, chunk_size=chunk_size, compression=compression)
                if probe.compression == "none" and probe.mmapped:
                    head = b""
                    for chunk in probe:
                        head = bytes(memoryview(chunk)[:BALANCE_BYTES])
                        break
                    probe.close()
                else:
                    probe.close()
                    path_source = False
            if not path_source:
                src = open_source(source, chunk_size=chunk_size, compression=compression)
            from fastbook.sources import Progress

            run.bar = Progress(total=os.path.getsize(source) if src is None else src.size,
                               enabled=show)
            try:
                if src is not None:
                    _fan_out(run, pool, src, codec, module, symbols, options, show, map_books)
                else:
                    weights = _weights(module, head)
                    _start(run, pool, ("path", os.fspath(source)), codec, symbols, options,
                           show, map_books, weights, "none")
                    run.wait(pool)
            finally:
                if src is not None:
                    src.close()
        run.check_cancel()
        if run.failures:
            # as one process does: a failed run leaves no LOBSTER files (a failing worker
            # removed its own; these are the ones of the workers that finished)
            _remove(run)
            raise _failure(run)
        run.bar.close()
        run.bar = None
        merged = merge([r for r in run.results if r is not None], on_error=options["on_error"])
        merged["dir"] = run.dir
        ok = True
        return merged
    except BaseException:
        if run.pending:     # workers still at it (cancelled, interrupted): stop them
            _discard_pool()
        raise
    finally:
        if not ok:
            run.close()
            remove_empty_dirs(made)     # the directories made above, where still empty


def _remove(run: _Run) -> None:
    """Remove the LOBSTER files the finished workers wrote (the directories go later)."""
    for r in run.results:
        for path in (r or {}).get("lobster_paths", []):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _start(run: _Run, pool: _Pool, source: tuple[Any, ...], codec: str,
           symbols: list[str] | None, options: dict[str, Any], show: bool, map_books: Any,
           weights: dict[str, int], compression: str) -> None:
    """Send each worker its task: the source, its shard, the replay options."""
    if symbols is not None:
        asked = set(symbols)
        weights = {s: w for s, w in weights.items() if s in asked}
    assign = balance(weights, run.n) if weights else None
    for k in range(run.n):
        shard = Shard(k, run.n, assign, within=symbols)
        opts = dict(options, progress=show and k == 0, compression=compression)
        pool.conns[k].send({"index": k, "source": source, "codec": codec, "shard": shard,
                            "options": opts, "dir": run.dir, "map_books": map_books})
        run.pending.add(k)


def _fan_out(run: _Run, pool: _Pool, src: Any, codec: str, module: Any,
             symbols: list[str] | None, options: dict[str, Any], show: bool,
             map_books: Any) -> None:
    """Read (and decompress) ``src`` once, handing its chunks to every worker via the ring."""
    size = src.chunk_size
    fd, ring_path = tempfile.mkstemp(prefix="ring-", dir=run.dir)
    try:
        os.ftruncate(fd, RING_SLOTS * size)
        ring = mmap.mmap(fd, RING_SLOTS * size)
    finally:
        os.close(fd)
    refs = [0] * RING_SLOTS
    free = list(range(RING_SLOTS - 1, -1, -1))
    held: list[set[int]] = [set() for _ in range(run.n)]     # slots each worker holds
    first: list[tuple[int, int, int]] = []

    def pieces() -> Iterator[Any]:
        # slot-sized pieces of the source's chunks (a chunk can be longer than asked)
        for chunk in src:
            view = memoryview(chunk).cast("B")
            for start in range(0, len(view), size):
                yield view[start:start + size]
            view.release()

    chunks = pieces()

    def release(slot: int) -> None:
        refs[slot] -= 1
        if refs[slot] == 0:
            free.append(slot)

    def on_ack(k: int, slot: int) -> None:
        if slot in held[k]:
            held[k].discard(slot)
            release(slot)

    def on_gone(k: int) -> None:
        # a worker that stopped reading gives its slots back (it will never ack them)
        for slot in sorted(held[k]):
            release(slot)
        held[k].clear()

    run.on_gone = on_gone

    def put(chunk: Any) -> tuple[int, int, int]:
        slot = free.pop()
        n = len(chunk)
        ring[slot * size:slot * size + n] = chunk
        return slot, n, src.raw_bytes_read

    try:
        # the first slots are filled before the shards are drawn: they are what balances them
        head = bytearray()
        for chunk in chunks:
            note = put(chunk)
            first.append(note)
            if len(head) < BALANCE_BYTES:
                head += ring[note[0] * size:note[0] * size + min(note[1], BALANCE_BYTES)]
            if not free or len(head) >= BALANCE_BYTES:
                break
        _start(run, pool, ("ring", ring_path, size, src.name, src.size), codec, symbols,
               options, show, map_books, _weights(module, bytes(head[:BALANCE_BYTES])),
               "none")
        readers = set(run.pending)

        def send(note: tuple[int, int, int]) -> None:
            slot = note[0]
            refs[slot] = 0
            for k in sorted(readers & run.pending):
                try:
                    pool.conns[k].send(("chunk", *note))
                    refs[slot] += 1
                    held[k].add(slot)
                except OSError:
                    run.died(k, pool)
            if refs[slot] == 0:
                free.append(slot)

        for note in first:
            send(note)
        for chunk in chunks:
            # a slot frees when every worker still reading has acked it
            run.wait(pool, on_ack, until=lambda: bool(free) or not run.pending)
            if not run.pending:
                break
            send(put(chunk))
        if not src.bytes_out:
            raise DecodeError(f"{src.name}: the input is empty (0 bytes"
                              f"{'' if src.compression == 'none' else ' decompressed'}): "
                              f"there is nothing to replay")
        for k in sorted(readers & run.pending):
            with contextlib.suppress(OSError):
                pool.conns[k].send(("eof",))
        run.wait(pool, on_ack)
    finally:
        with contextlib.suppress(BufferError):
            ring.close()


def _failure(run: _Run) -> BaseException:
    """The error a single process would have raised, with the shard that met it."""
    failures = run.failures
    updates = {k: f for k, f in failures.items() if isinstance(f[0], UpdateError)}
    if len(updates) == len(failures):
        # the earliest failing message is the one a single process stops at
        k = min(updates, key=lambda i: (getattr(updates[i][0], "index", 0), i))
    else:
        k = min(k for k in failures if k not in updates)
    exc, text = failures[k]
    note = getattr(exc, "add_note", None)      # Python 3.11+
    if note is not None:
        note(f"(in worker {k} of {run.n}, which replayed shard {k} of the instruments)"
             + (f"\nworker traceback:\n{text}" if text and
                not isinstance(exc, FastbookError) else ""))
    return exc


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------

def merge(results: list[dict[str, Any]], *, on_error: str) -> dict[str, Any]:
    """The workers' results as one run's: books in the single-process order, row files.

    Instruments are ordered by their first directory entry in the stream (the order
    a single process registers them in); ``remap[w]`` maps worker ``w``'s instrument
    ids to the merged ones.
    """
    from fastbook.l3 import BookSet

    books = BookSet(on_error="stop" if on_error == "raise" else "skip")
    entries = []
    for w, r in enumerate(results):
        for local, (first, meta, blob, errors) in enumerate(r["instruments"]):
            entries.append((first, w, local, meta, blob, errors))
    if any(e[0] < 0 for e in entries):
        raise ReplayError("a parallel worker built a book its stream's directory does not "
                          "name: this codec cannot be replayed with workers=")
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    remap = [np.zeros(len(r["instruments"]), np.uint32) for r in results]
    for first, w, local, meta, blob, errors in entries:
        del first
        book = pickle.loads(blob)
        gid = books.add_book(book, symbol=meta["symbol"], venue=meta["venue"],
                             tick_size=meta["tick_size"], lot_size=meta["lot_size"])
        books._restore_errors(gid, errors)
        remap[w][local] = gid
    bad = sum(int(r["bad_instrument"]) for r in results)
    if bad and len(books):
        books._restore_errors(0, {}, bad)
    fields = dict(results[0]["fields"])
    fields["events"] = sum(int(r["fields"]["events"]) for r in results)
    mapped: dict[str, Any] | None = None
    if any(r["mapped"] is not None for r in results):
        found: dict[str, Any] = {}
        for r in results:
            found.update(r["mapped"] or {})
        order = [books.instrument(i)["symbol"] for i in range(len(books))]
        mapped = {s: found.pop(s) for s in order if s in found}
        mapped.update(sorted(found.items()))
    return {"books": books, "remap": remap, "fields": fields,
            "samples": [r["files"]["samples"] for r in results],
            "trades": [r["files"]["trades"] for r in results],
            "warnings": results[0]["warnings"], "name": results[0]["name"],
            "known": results[0]["known"], "mapped": mapped,
            "lobster_skipped": sum(int(r["lobster_skipped"]) for r in results),
            "shards": [r["shard"] for r in results]}


class Rows:
    """The sample (or trade) rows of every worker, read in the single-process order.

    Each worker's rows are in its own order; merged by ``sequence`` (the message
    number, counted by every worker over the whole stream) with a stable sort,
    they are the rows one process takes, in the order it takes them. Read in
    slices (``chunks``), so a long day's rows are written out in bounded memory.
    """

    def __init__(self, files: list[dict[str, str]], remap: list[np.ndarray]) -> None:
        self.columns: list[dict[str, np.ndarray]] = [
            # plain views of the maps: numpy's memmap subclass makes a masked copy 10x slower
            {name: np.asarray(np.load(path, mmap_mode="r")) for name, path in f.items()}
            for f in files]
        self.remap = remap
        self.names: list[str] = next((list(c) for c in self.columns if c), [])
        sizes = [len(c["sequence"]) if c else 0 for c in self.columns]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.total = int(self.offsets[-1])
        if self.total:
            keys = np.concatenate([np.asarray(c["sequence"]) for c in self.columns if c])
            order = np.argsort(keys, kind="stable")
            del keys
        else:
            order = np.zeros(0, np.int64)
        #: the worker of each merged row
        self.owner = (np.searchsorted(self.offsets[1:], order, side="right")
                      .astype(np.int32))
        del order
        #: per worker, how many of its rows come before each merged row
        self.before = [np.concatenate([[0], np.cumsum(self.owner == w)])[:-1]
                       if self.total else np.zeros(0, np.int64)
                       for w in range(len(self.columns))]

    def __len__(self) -> int:
        return self.total

    def take(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of the merged order, as new arrays.

        A worker's rows keep their order in the merge (the sort is stable), so rows
        ``start:stop`` hold a contiguous run of each worker's rows: each column is
        filled by one sequential copy per worker, not a gather.
        """
        stop = self.total if stop is None else min(stop, self.total)
        owner = self.owner[start:stop]
        out: dict[str, np.ndarray] = {}
        runs = []
        for w, cols in enumerate(self.columns):
            if not cols:
                continue
            first = int(self.before[w][start]) if start < self.total else 0
            mine = owner == w
            runs.append((w, cols, mine, first, first + int(np.count_nonzero(mine))))
        for name in self.names:
            sample = next(c[name] for c in self.columns if c)
            col = np.empty((stop - start, *sample.shape[1:]), sample.dtype)
            for w, cols, mine, lo, hi in runs:
                if hi == lo:
                    continue
                values = cols[name][lo:hi]
                if name == "instrument":
                    values = self.remap[w][values]
                if hi - lo == len(col):
                    col[...] = values
                else:
                    col[mine] = values
            out[name] = col
        return out

    def chunks(self, rows: int) -> Iterator[dict[str, np.ndarray]]:
        """The merged rows in slices of at most ``rows``."""
        for start in range(0, self.total, rows):
            yield self.take(start, start + rows)

    def close(self) -> None:
        self.columns = []
