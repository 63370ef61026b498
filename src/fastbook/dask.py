"""Many feed files on a Dask cluster: N files x M instrument shards, one Parquet dataset.

:func:`replay_many` turns every (file, shard) pair into one ``dask.distributed`` task
that runs :func:`fastbook.replay` on the file with ``symbols=Shard(k, M)``: the task
decodes the whole file but keeps only the books of its shard's symbols, so the M
tasks of a file are exact and their union is the serial replay (see
:mod:`fastbook._shard`). The samples land in ONE hive-partitioned Parquet dataset::

    out/date=2024-06-03/symbol=AAPL/part-00000-000.parquet
    out/_fastbook.json                       # the manifest, written last

Nothing half-written is presented as a finished dataset: tasks write under a
staging directory (``out/_staging-*``, which Parquet readers skip, as they skip
``_fastbook.json``); a file's parts move into place only when all its shards
finished, after every task has ended; the manifest, listing each file as
``complete`` or ``failed`` with its error, is written last (to a temporary name,
then renamed). A corrupt file fails alone: its error names the file, the byte
offset and message number where known; the other files' results stand. A
cancelled run (``job.cancel()``, Ctrl-C) removes its staging directory and writes
no manifest and no parts.

``out`` and every input path must name the same files on the client and on every
worker (one machine, or a shared filesystem); ``docs/dask.md`` says how to point
this at a real cluster.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from fastbook._extras import require
from fastbook.sources import Progress

__all__ = ["MANIFEST", "FileResult", "ManyJob", "ManyResult", "replay_many", "submit_many"]

#: The manifest's name at the dataset's root.
MANIFEST = "_fastbook.json"
#: The manifest's format tag (bumped when its layout changes).
FORMAT = "fastbook.dask/1"
#: Columns a part never holds: ``instrument`` is an index into one task's own book set
#: (it differs between a shard's run and the serial run), the partition keys are paths.
_DROPPED = ("instrument",)
_PARTITIONS = ("date", "symbol")
#: Seconds between two looks at the futures (a ``cancel()`` is seen within this).
_POLL = 0.1


# -- what the tasks run (on the workers) -------------------------------------------------

def _date_option(codec: str, date: str | None) -> dict[str, Any]:
    """``date=`` for replay when the codec times messages from midnight (ITCH 5.0)."""
    if date is None:
        return {}
    from fastbook import codecs

    if codecs.kind(codec) == "stream" and getattr(codecs.load(codec), "TS_ORIGIN", "") \
            == "midnight":
        return {"date": date}
    return {}


class _Metadata:
    """Parts' schema metadata: the task file's, with only the part's symbol's instrument."""

    def __init__(self, meta: dict[bytes, bytes] | None,
                 instruments: list[dict[str, Any]] | None = None) -> None:
        self.base = {k.decode(): v.decode() for k, v in (meta or {}).items()
                     if k not in (b"PANDAS_ATTRS", b"fastbook.rows")}
        # an Arrow IPC file's metadata lists the instruments known when it opened; the
        # replay's own list has the ones first seen later (a listing mid-day) too
        listed = instruments if instruments is not None else \
            json.loads(self.base.get("fastbook.instruments", "null"))
        self.instruments: dict[str, list[Any]] = {}
        for entry in listed or []:
            self.instruments.setdefault(str(entry.get("symbol")), []).append(entry)

    def of(self, symbol: str | None) -> dict[str, str]:
        from fastbook.writers import _with_pandas_attrs

        out = dict(self.base)
        if symbol is not None and "fastbook.instruments" in out:
            out["fastbook.instruments"] = json.dumps(self.instruments.get(symbol, []))
        return _with_pandas_attrs(out) if out else out


def _partition_dir(values: Mapping[str, str], partition: Sequence[str]) -> str:
    """``date=2024-06-03/symbol=AAPL`` (values URI-escaped, as pyarrow's hive reader expects)."""
    return "/".join(f"{key}={urllib.parse.quote(values[key], safe='')}" for key in partition)


#: Sample bytes a split holds before writing them out: every flush writes a row group
#: to each symbol's part (about 2 ms each with pyarrow, however small), so the buffer
#: is large and a day's samples usually take one flush.
_BUFFER_BYTES = 256 << 20


class _Parts:
    """The per-partition part files of one task, written in few, large row groups.

    ``add`` buffers a symbol's rows; when the buffers pass ``_BUFFER_BYTES`` the
    largest are written out (a row group each) until half the budget is left, so
    memory stays bounded and the many small symbols' parts are written once, at
    :meth:`close` (pyarrow spends about 2 ms on a row group however small).
    """

    def __init__(self, staging: str, stem: str, fixed: Mapping[str, str],
                 partition: Sequence[str], meta: _Metadata) -> None:
        self.staging, self.stem, self.fixed, self.partition = staging, stem, fixed, partition
        self.meta = meta
        self.by_symbol = "symbol" in partition
        self.buffers: dict[str, list[Any]] = {}
        self.sizes: dict[str, int] = {}
        self.buffered = 0
        self.writers: dict[str, Any] = {}
        self.rows: dict[str, int] = {}
        self.parts: list[str] = []

    def add(self, symbol: str, piece: Any, size: int) -> None:
        """Buffer ``piece`` (``size`` bytes), rows of ``symbol``; write out when due."""
        key = symbol if self.by_symbol else ""
        self.buffers.setdefault(key, []).append(piece)
        self.sizes[key] = self.sizes.get(key, 0) + size
        self.rows[symbol] = self.rows.get(symbol, 0) + piece.num_rows
        self.buffered += size
        if self.buffered >= _BUFFER_BYTES:
            for big in sorted(self.sizes, key=self.sizes.__getitem__, reverse=True):
                self._write(big)
                if self.buffered < _BUFFER_BYTES // 2:
                    break

    def _write(self, key: str) -> None:
        """Write ``key``'s buffered rows as one row group of its part."""
        import pyarrow as pa

        table = pa.concat_tables(self.buffers.pop(key))
        self.buffered -= self.sizes.pop(key)
        writer = self.writers.get(key) or self._open(key, table.schema)
        writer.write_table(table.replace_schema_metadata(writer.schema.metadata))

    def flush(self) -> None:
        """Write every buffer out."""
        for key in list(self.buffers):
            self._write(key)

    def _open(self, key: str, schema: Any) -> Any:
        import pyarrow.parquet as pq

        rel = os.path.join(_partition_dir({**self.fixed, "symbol": key}, self.partition),
                           f"part-{self.stem}.parquet")
        _mkdirs_below(self.staging, os.path.dirname(rel))
        writer = pq.ParquetWriter(os.path.join(self.staging, rel), schema.with_metadata(
            self.meta.of(key if self.by_symbol else None)))
        self.writers[key] = writer
        self.parts.append(rel)
        return writer

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for writer in self.writers.values():
                writer.close()


def _mkdirs_below(root: str, rel: str) -> None:
    """Make the directories of ``rel`` under ``root``, never ``root`` itself.

    A cancelled run renames its staging directory away, then removes it: a task
    still running finds ``root`` gone (FileNotFoundError) instead of making it anew.
    """
    path = root
    for name in [n for n in rel.split("/") if n]:
        path = os.path.join(path, name)
        try:
            os.mkdir(path)
        except FileExistsError:
            pass


def _split(table_path: str, staging: str, stem: str, fixed: Mapping[str, str],
           partition: Sequence[str], instruments: list[dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    """Split one task's samples file into per-partition parts under ``staging``.

    Reads ``table_path`` (the task's replay output, Arrow IPC: cheap to write and to
    map back) a record batch at a time (memory stays bounded), sorts each by
    symbol (stably: rows keep their order within a symbol) and returns ``{"parts":
    [relative paths], "rows": {symbol: rows}}``.
    """
    import pyarrow as pa

    with pa.memory_map(table_path) as mapped:
        reader = pa.ipc.open_file(mapped)
        parts = _Parts(staging, stem, fixed, partition,
                       _Metadata(reader.schema.metadata, instruments))
        try:
            for group in range(reader.num_record_batches):
                _split_batch(parts, pa.Table.from_batches([reader.get_batch(group)]))
        finally:
            parts.close()
    return {"parts": parts.parts, "rows": parts.rows}


def _split_batch(parts: _Parts, table: Any) -> None:
    """Sort one batch of samples by symbol (stably) and hand each symbol's rows to ``parts``."""
    import numpy as np
    import pyarrow as pa

    symbols = table.column("symbol").combine_chunks()
    encoded = symbols if isinstance(symbols.type, pa.DictionaryType) \
        else symbols.dictionary_encode()
    names = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    keep = [c for c in table.column_names if c not in _DROPPED
            and not (c == "symbol" and parts.by_symbol)]
    table = table.select(keep)
    if not parts.by_symbol:
        table = table.set_column(table.column_names.index("symbol"), "symbol",
                                 symbols.cast(pa.string()))
    order = np.argsort(codes, kind="stable")
    table = table.take(pa.array(order))
    sorted_codes = codes[order]
    row_bytes = table.nbytes / max(table.num_rows, 1)
    starts = np.flatnonzero(np.diff(sorted_codes)) + 1
    edges = [0, *starts.tolist(), len(order)]
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            parts.add(names[int(sorted_codes[lo])], table.slice(lo, hi - lo),
                      int((hi - lo) * row_bytes))


def _where(exc: BaseException, path: str) -> str:
    """The error's text, naming the file when the message does not already."""
    text = str(exc)
    name = os.path.basename(path)
    head = f"{type(exc).__name__}: "
    return head + (text if name in text else f"{path}: {text}")


def _replay_shard(path: str, codec: str, index: int, count: int, staging: str, stem: str,
                  fixed: dict[str, str], partition: tuple[str, ...],
                  options: dict[str, Any]) -> dict[str, Any]:
    """One task: replay shard ``index`` of ``count`` of one file into staged parts.

    The replay's samples go to a temporary Arrow IPC file in the worker's local
    directory, then into per-partition parts under ``staging`` (on ``out``'s
    filesystem). Returns the replay's counts and the parts written; an exception from the replay
    (a corrupt file) is returned as ``{"error": ...}`` with its text, so it crosses
    the cluster as plain data; the task's own partial files are removed.
    """
    import fastbook
    from fastbook._shard import Shard
    from fastbook.driver import ReplayResult

    handle, tmp = tempfile.mkstemp(prefix=f"fastbook-task-{stem}-", suffix=".arrow",
                                   dir=_local_directory())
    os.close(handle)
    t0 = time.perf_counter()
    done: dict[str, Any] = {"parts": [], "rows": {}}
    try:
        result = cast(ReplayResult, fastbook.replay(
            path, codec, symbols=Shard(index, count), output=tmp,
            **_date_option(codec, fixed.get("date")), **options))
        t_split = time.perf_counter()
        done = _split(tmp, staging, stem, fixed, partition, _json_instruments(result))
    except Exception as exc:
        for rel in done["parts"]:
            _remove(os.path.join(staging, rel))
        return {"error": _where(exc, path) + _book_error_offset(exc, path, codec, options),
                "seconds": time.perf_counter() - t0}
    finally:
        _remove(tmp)
    return {"kind": result.kind, "messages": int(result.messages), "events": int(result.events),
            "bytes": int(result.bytes), "unknown_types": int(result.unknown_types),
            "counts": {k: int(v) for k, v in result.counts.items()},
            "errors": {k: int(v) for k, v in result.errors.items()},
            "rows": int(result.rows), "rows_by_symbol": done["rows"], "parts": done["parts"],
            "warnings": list(result.warnings), "seconds": time.perf_counter() - t0,
            "split_seconds": time.perf_counter() - t_split}


def _book_error_offset(exc: BaseException, path: str, codec: str,
                       options: Mapping[str, Any]) -> str:
    """`` (byte N of the stream)`` for a book error in a BinaryFILE ITCH 5.0 file, else "".

    A book error (an unknown order reference) names its message by number (from 0);
    framing errors already name their byte offset. In BinaryFILE framing (a 2-byte
    length before each message) the offset is found by walking the frames up to
    that message, once, on this failure path only.
    """
    from fastbook.errors import UpdateError

    number = getattr(exc, "index", None)
    if not isinstance(exc, UpdateError) or not isinstance(number, int) or codec != "itch50" \
            or options.get("framing", "binaryfile") != "binaryfile":
        return ""
    try:
        offset = _frame_offset(path, number)
    except Exception:
        return ""
    return "" if offset is None else f" (byte {offset:,} of the stream)"


def _frame_offset(path: str, number: int) -> int | None:
    """The byte offset of message ``number`` (from 0) of a BinaryFILE stream, or None."""
    from fastbook.sources import open_source

    seen = base = 0
    rest = b""
    with open_source(path) as source:
        for chunk in source:
            buf = rest + bytes(chunk)
            pos = 0
            while pos + 2 <= len(buf):
                size = int.from_bytes(buf[pos:pos + 2], "big")
                if pos + 2 + size > len(buf):
                    break
                if seen == number:
                    return base + pos
                seen += 1
                pos += 2 + size
            base += pos
            rest = buf[pos:]
    return None


def _json_instruments(result: Any) -> list[dict[str, Any]]:
    """The replay's instruments as the samples files' metadata lists them (JSON values)."""
    return [{k: v for k, v in i.items() if _jsonable(v)} for i in result.instruments]


def _local_directory() -> str:
    """The worker's own scratch directory (local disk, not the shared ``out``)."""
    try:
        from distributed import get_worker

        return str(get_worker().local_directory)
    except Exception:          # not inside a dask worker
        return tempfile.gettempdir()


def _warm_up(codec: str) -> None:
    """Import what a task needs on a worker (counted as start-up, not as the first task)."""
    import pyarrow.parquet  # noqa: F401

    from fastbook import codecs

    codecs.load(codec)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# -- results -----------------------------------------------------------------------------

@dataclass
class FileResult:
    """One input file's outcome: ``status`` is ``"complete"`` or ``"failed"`` (with ``error``).

    ``messages``, ``bytes``, ``counts`` and ``unknown_types`` are the file's own (every
    shard decodes every message: counted once); ``events``, ``errors`` and ``rows``
    are summed over the shards (each applies and samples only its own symbols).
    ``seconds`` is the longest shard task's wall time, ``split_seconds`` the part of it
    spent writing the per-partition parts. For
    L2 feeds ``counts`` takes the capture's record counts once and sums the per-symbol
    feed counters, without ``ignored`` and ``rest_other`` (see :func:`_merge_counts`).
    """

    path: str
    date: str | None
    status: str = "failed"
    error: str | None = None
    messages: int = 0
    events: int = 0
    bytes: int = 0
    unknown_types: int = 0
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    rows_by_symbol: dict[str, int] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    split_seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def as_dict(self) -> dict[str, Any]:
        """The manifest's entry for this file."""
        keys = ("path", "date", "status", "error", "messages", "events", "bytes",
                "unknown_types", "rows", "counts", "errors", "rows_by_symbol", "parts",
                "warnings", "seconds", "split_seconds")
        return {k: getattr(self, k) for k in keys}


@dataclass
class ManyResult:
    """What :func:`replay_many` returns: per-file results, totals and the dataset's place.

    ``files`` in input order; ``complete`` / ``failed`` split them; ``messages``,
    ``events``, ``bytes``, ``rows`` and ``errors`` total the complete files;
    ``seconds`` is the wall time from submitting the tasks to the manifest,
    ``startup_seconds`` the time before: starting a cluster of our own (for a given
    client, none) and importing fastbook, the codec and pyarrow on every worker.
    """

    out: str
    files: list[FileResult]
    shards: int
    seconds: float
    startup_seconds: float
    workers: int

    @property
    def complete(self) -> list[FileResult]:
        return [f for f in self.files if f.complete]

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if not f.complete]

    @property
    def ok(self) -> bool:
        """True when every file is complete."""
        return not self.failed

    @property
    def manifest(self) -> str:
        return os.path.join(self.out, MANIFEST)

    def _total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.complete)

    @property
    def messages(self) -> int:
        return self._total("messages")

    @property
    def events(self) -> int:
        return self._total("events")

    @property
    def bytes(self) -> int:
        return self._total("bytes")

    @property
    def rows(self) -> int:
        return self._total("rows")

    @property
    def errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for f in self.complete:
            for kind, n in f.errors.items():
                total[kind] = total.get(kind, 0) + n
        return total

    def dataset(self) -> Any:
        """The written samples as a ``pyarrow.dataset.Dataset`` (hive partitioning)."""
        import pyarrow.dataset as ds

        return ds.dataset(self.out, format="parquet", partitioning="hive")

    def check(self) -> ManyResult:
        """Raise :class:`ReplayManyError` listing the failed files, if any; else self."""
        if self.failed:
            raise ReplayManyError(self.failed)
        return self

    def summary(self) -> str:
        rate = self.messages / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{len(self.complete)}/{len(self.files)} file(s) complete in {self.seconds:.2f} s "
                 f"({self.workers} worker(s), {self.shards} shard(s) a file, start-up "
                 f"{self.startup_seconds:.2f} s): {self.messages:,} messages "
                 f"({rate / 1e6:.2f} M/s), {self.rows:,} sample rows in {self.out}"]
        lines += [f"  failed: {f.error}" for f in self.failed]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ManyResult {len(self.complete)}/{len(self.files)} complete, {self.out!r}>"


class ReplayManyError(Exception):
    """Some files of a :func:`replay_many` run failed; ``failed`` lists their results."""

    def __init__(self, failed: list[FileResult]) -> None:
        self.failed = failed
        super().__init__(f"{len(failed)} file(s) failed: "
                         + "; ".join(str(f.error) for f in failed))


class _ManyProgress(Progress):
    """The progress line with files and tasks done in front: ``files 3/8 tasks 12/32 ...``."""

    def __init__(self, n_files: int, n_tasks: int, total: int, **kwargs: Any) -> None:
        super().__init__(total, **kwargs)
        self.n_files, self.n_tasks = n_files, n_tasks
        self.files_done = self.tasks_done = 0

    def line(self, now: float | None = None) -> str:
        return (f"files {self.files_done}/{self.n_files} tasks {self.tasks_done}/"
                f"{self.n_tasks} " + super().line(now))


# -- the client side ---------------------------------------------------------------------

def _distributed() -> Any:
    return require("distributed", "dask", "fastbook.dask (many files on a cluster)")


def _dates_for(files: list[str], dates: Any, need: bool) -> list[str | None]:
    """Each file's date as ``YYYY-MM-DD``: ``dates=`` first, else the file name's."""
    from fastbook.writers import _as_date, date_from_name

    if dates is None:
        given: list[Any] = [None] * len(files)
    elif isinstance(dates, Mapping):
        given = [dates.get(f, dates.get(os.path.basename(f))) for f in files]
    elif isinstance(dates, (str, _dt.date)):
        given = [dates] * len(files)
    else:
        given = list(dates)
        if len(given) != len(files):
            raise ValueError(f"dates= has {len(given)} entries for {len(files)} file(s)")
    out: list[str | None] = []
    for path, value in zip(files, given, strict=True):
        day = _as_date(value) if value is not None else date_from_name(path)
        out.append(None if day is None else day.isoformat())
    nameless = [f for f, d in zip(files, out, strict=True) if d is None]
    if need and nameless:
        raise ValueError(f"the dataset is partitioned by date, and no date is known for "
                         f"{', '.join(map(repr, nameless[:5]))}"
                         f"{' ...' if len(nameless) > 5 else ''}: the file name holds no "
                         f"YYYYMMDD or MMDDYYYY date; pass dates= (one date, a list in file "
                         f"order or a mapping of paths to dates), or partition=('symbol',)")
    return out


def _check_out(out: str) -> None:
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise FileExistsError(f"out={out!r} is a file; replay_many writes a directory")
        if os.listdir(out):
            raise FileExistsError(f"out={out!r} is not empty: give a new or empty directory")


def _start_cluster(workers: int | None, n_tasks: int) -> tuple[Any, int]:
    """A LocalCluster of our own: one single-threaded worker process per core."""
    distributed = _distributed()
    n = max(1, min(n_tasks, workers or os.cpu_count() or 1))
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
    return distributed.Client(cluster), n


class ManyJob:
    """A running :func:`submit_many`: ``result()`` waits for it, ``cancel()`` stops it.

    ``cancel()`` may be called from another thread; the waiting ``result()`` then
    cancels the futures, removes the staging directory and raises
    ``concurrent.futures.CancelledError``. Ctrl-C in ``result()`` does the same and
    raises ``KeyboardInterrupt``.
    """

    def __init__(self, files: list[str], codec: str, out: str, shards: int, client: Any,
                 workers: int | None, dates: list[str | None], partition: tuple[str, ...],
                 options: dict[str, Any], progress: bool | None) -> None:
        self.files, self.codec, self.out, self.shards = files, codec, out, shards
        self.dates, self.partition, self.options = dates, partition, options
        self._cancel = threading.Event()
        self._result: ManyResult | None = None
        self._own = client is None
        sizes = [os.path.getsize(f) for f in files]
        self._sizes = sizes
        os.makedirs(out, exist_ok=True)
        self.staging = os.path.join(out, f"_staging-{uuid.uuid4().hex[:12]}")
        os.makedirs(self.staging)
        t0 = time.perf_counter()
        try:
            if client is None:
                client, self.workers = _start_cluster(workers, len(files) * shards)
            else:
                self.workers = len(client.nthreads())
            client.run(_warm_up, codec)
        except BaseException:
            if self._own and client is not None:
                self.client = client
                self._close()
            _discard(self.staging)
            raise
        self.client = client
        self.startup_seconds = time.perf_counter() - t0
        self._t0 = time.perf_counter()
        self._progress = _ManyProgress(len(files), len(files) * shards, sum(sizes),
                                       enabled=progress)
        self.futures: dict[Any, tuple[int, int]] = {}
        try:
            self._submit()
        except BaseException:      # Ctrl-C while submitting: nothing is left running
            self._abort()
            raise

    def _submit(self) -> None:
        """One task per (file, shard), keyed by file name for the dashboard."""
        token = uuid.uuid4().hex[:8]
        files, shards, partition, dates = self.files, self.shards, self.partition, self.dates
        for i, path in enumerate(files):
            fixed = {"date": dates[i]} if dates[i] is not None and "date" in partition else {}
            for k in range(shards):
                stem = f"{i:05d}-{k:03d}"
                future = self.client.submit(
                    _replay_shard, path, self.codec, k, shards, self.staging, stem, fixed,
                    partition, self.options, key=f"fastbook-replay-{os.path.basename(path)}-"
                    f"{k}of{shards}-{token}", pure=False)
                self.futures[future] = (i, k)

    def cancel(self) -> None:
        """Stop the run: the waiting :meth:`result` cancels the futures and cleans up."""
        self._cancel.set()

    def done(self) -> bool:
        return self._result is not None or all(f.done() for f in self.futures)

    def result(self, timeout: float | None = None) -> ManyResult:
        """Wait for every task, commit the complete files, write the manifest, return."""
        if self._result is not None:
            return self._result
        deadline = None if timeout is None else time.monotonic() + timeout
        outcomes: dict[tuple[int, int], dict[str, Any]] = {}
        pending = set(self.futures)
        try:
            while pending:
                if self._cancel.is_set():
                    raise _Cancelled()
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"replay_many: {len(pending)} task(s) still running "
                                       f"after {timeout} s")
                finished, pending = _wait(pending)
                for future in finished:
                    outcomes[self.futures[future]] = self._outcome(future)
                    self._tick(self.futures[future], outcomes)
        except (KeyboardInterrupt, _Cancelled) as exc:
            self._abort()
            if isinstance(exc, _Cancelled):
                from concurrent.futures import CancelledError

                raise CancelledError(f"replay_many into {self.out!r} cancelled") from None
            raise
        except BaseException:
            self._abort()
            raise
        self._progress.close()
        self._result = self._finish(outcomes)
        return self._result

    def _outcome(self, future: Any) -> dict[str, Any]:
        """A finished future's dict; a task that raised (a worker died) as an error."""
        if future.status == "finished":
            out: dict[str, Any] = future.result()
            return out
        path = self.files[self.futures[future][0]]
        try:
            exc = future.exception()
        except BaseException as inner:   # cancelled elsewhere, or the scheduler went away
            exc = inner
        return {"error": _where(exc, path) if exc is not None else f"{path}: task {future.status}"}

    def _tick(self, key: tuple[int, int], outcomes: dict[tuple[int, int], dict[str, Any]]
              ) -> None:
        i = key[0]
        p = self._progress
        p.tasks_done += 1
        if all((i, k) in outcomes for k in range(self.shards)):
            p.files_done += 1
        messages = outcomes[key].get("messages", 0) // self.shards
        p.update(p.raw_bytes + self._sizes[i] // self.shards, p.messages + messages)

    def _abort(self) -> None:
        """Cancel the futures, remove the staging directory; write nothing else."""
        try:
            self.client.cancel(list(self.futures), force=True)
        except Exception:
            pass
        self._progress.close()
        _discard(self.staging)
        self._close()

    def _close(self) -> None:
        if self._own:
            cluster = getattr(self.client, "cluster", None)
            self.client.close()
            if cluster is not None:
                cluster.close()

    def _finish(self, outcomes: dict[tuple[int, int], dict[str, Any]]) -> ManyResult:
        try:
            results = [self._file_result(i, [outcomes[(i, k)] for k in range(self.shards)])
                       for i in range(len(self.files))]
            for r in results:
                if r.complete:
                    self._commit(r)
            _discard(self.staging)
            result = ManyResult(self.out, results, self.shards,
                                time.perf_counter() - self._t0, self.startup_seconds,
                                self.workers)
            self._write_manifest(result)
        finally:
            _discard(self.staging)
            self._close()
        return result

    def _file_result(self, i: int, shards: list[dict[str, Any]]) -> FileResult:
        r = FileResult(self.files[i], self.dates[i])
        r.seconds = max((s.get("seconds", 0.0) for s in shards), default=0.0)
        r.split_seconds = max((s.get("split_seconds", 0.0) for s in shards), default=0.0)
        errors = [s["error"] for s in shards if "error" in s]
        if errors:
            r.error = errors[0]
            return r
        first = shards[0]
        for name in ("messages", "bytes", "unknown_types"):
            if any(s[name] != first[name] for s in shards):
                r.error = (f"{self.files[i]}: the shards decoded different {name} "
                           f"({[s[name] for s in shards]}): the file changed during the run?")
                return r
        r.messages, r.bytes, r.unknown_types = first["messages"], first["bytes"], \
            first["unknown_types"]
        try:
            r.counts = _merge_counts(first["kind"], [s["counts"] for s in shards])
        except ValueError as exc:
            r.error = f"{self.files[i]}: {exc}"
            return r
        for s in shards:
            r.events += s["events"]
            r.rows += s["rows"]
            for kind, n in s["errors"].items():
                r.errors[kind] = r.errors.get(kind, 0) + n
            r.rows_by_symbol.update(s["rows_by_symbol"])
            r.parts += s["parts"]
            r.warnings += [w for w in s["warnings"] if w not in r.warnings]
        r.status = "complete"
        return r

    def _commit(self, r: FileResult) -> None:
        """Move a complete file's parts from staging into the dataset."""
        for rel in r.parts:
            target = os.path.join(self.out, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(self.staging, rel), target)

    def _write_manifest(self, result: ManyResult) -> None:
        doc = {"format": FORMAT, "codec": self.codec, "shards": self.shards,
               "partition": list(self.partition), "complete": result.ok,
               "options": {k: v for k, v in self.options.items() if _jsonable(v)},
               "seconds": result.seconds, "files": [f.as_dict() for f in result.files]}
        tmp = os.path.join(self.out, f".{MANIFEST}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, os.path.join(self.out, MANIFEST))


#: L2 feeds' counters of the capture itself (the same in every shard): counted once.
_PER_FILE = ("records", "records_recv", "records_sent", "records_open", "records_rest",
             "records_close", "trades_before_subscribe")
#: L2 feeds' counters a shard inflates with the other shards' symbols (their messages
#: and REST snapshots are "ignored" / "rest_other" there): not exact as a sum, left out.
_NOT_SUMMABLE = ("ignored", "rest_other")


def _merge_counts(kind: str, counts: list[dict[str, int]]) -> dict[str, int]:
    """One file's counts from its shards' counts, every message counted once.

    Stream codecs (ITCH 5.0, OSE) count messages by type, which every shard decodes
    alike: they must agree, and are taken once. L2 feeds count the capture's records
    (once) and per-symbol feed counters (summed: each symbol is in one shard).
    """
    first = counts[0]
    if kind == "stream" or len(counts) == 1:
        if any(c != first for c in counts):
            raise ValueError("the shards decoded different message counts: the file "
                             "changed during the run?")
        return dict(first)
    out: dict[str, int] = {}
    for key in first:
        if key in _NOT_SUMMABLE:
            continue
        values = [c.get(key, 0) for c in counts]
        if key in _PER_FILE:
            if any(v != values[0] for v in values):
                raise ValueError(f"the shards read different {key} ({values})")
            out[key] = values[0]
        else:
            out[key] = sum(values)
    return out


class _Cancelled(Exception):
    pass


def _wait(pending: set[Any]) -> tuple[set[Any], set[Any]]:
    """The futures of ``pending`` done now (after a short sleep when none is), and the rest."""
    done = {f for f in pending if f.done()}
    if not done:
        time.sleep(_POLL)
        done = {f for f in pending if f.done()}
    return done, pending - done


def _discard(staging: str) -> None:
    """Remove a staging directory that tasks may still write to: rename it, then remove.

    After the rename no task can add to it (their paths name the old directory, which
    :func:`_mkdirs_below` will not make again), so the removal is complete.
    """
    trash = f"{staging}.discarded"
    try:
        os.rename(staging, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _files(files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[str]:
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [os.fspath(f) for f in files]
    if not paths:
        raise ValueError("replay_many: no files given")
    missing_ = [p for p in paths if not os.path.isfile(p)]
    if missing_:
        raise FileNotFoundError(f"replay_many: not a file: {', '.join(map(repr, missing_[:5]))}")
    if len(set(paths)) != len(paths):
        raise ValueError("replay_many: a file is named twice")
    return paths


def submit_many(files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
                codec: str = "itch50", *, out: str | os.PathLike[str], shards: int = 1,
                client: Any = None, workers: int | None = None, every: Any = None,
                depth: int = 10, features: Iterable[Any] | str | None = None,
                on_error: str = "raise", progress: bool | None = None,
                partition: Sequence[str] = _PARTITIONS, dates: Any = None,
                **replay_options: Any) -> ManyJob:
    """Start :func:`replay_many` and return its :class:`ManyJob` at once (same arguments)."""
    paths = _files(files)
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise ValueError(f"shards must be a positive int, got {shards!r}")
    part = tuple(partition)
    if any(p not in _PARTITIONS for p in part) or len(set(part)) != len(part):
        raise ValueError(f"partition must be keys from {_PARTITIONS}, got {partition!r}")
    if every is None:
        raise ValueError("replay_many writes the samples: give a sampling rule (every=)")
    for name in ("output", "symbols", "bookset", "lobster", "consolidate", "trades"):
        if name in replay_options:
            raise ValueError(f"{name}= is not an option of replay_many (each task sets its "
                             f"own output and shard)")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    from fastbook import codecs
    from fastbook.driver import codec_name, parse_every

    parse_every(every)            # a bad rule or codec fails here, not in every task
    codecs.kind(str(codec_name(codec)))
    day = _dates_for(paths, dates, "date" in part)
    out_dir = os.fspath(out)
    _check_out(out_dir)
    _distributed()
    options = {"every": every, "depth": depth, "on_error": on_error, "progress": False,
               **({"features": list(features) if not isinstance(features, str) else features}
                  if features is not None else {}), **replay_options}
    return ManyJob(paths, str(codec_name(codec)), out_dir, shards, client, workers, day, part,
                   options, progress)


def replay_many(files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
                codec: str = "itch50", *, out: str | os.PathLike[str], shards: int = 1,
                client: Any = None, workers: int | None = None, every: Any = None,
                depth: int = 10, features: Iterable[Any] | str | None = None,
                on_error: str = "raise", progress: bool | None = None,
                partition: Sequence[str] = _PARTITIONS, dates: Any = None,
                timeout: float | None = None, **replay_options: Any) -> ManyResult:
    """Replay many feed files on a Dask cluster into one hive-partitioned Parquet dataset.

    Parameters
    ----------
    files : paths
        The feed files (visible at the same paths to the client and every worker).
    codec : str, default "itch50"
        A replay codec (:func:`fastbook.codecs.available`), the same for every file.
    out : directory path
        The dataset's root: new or empty. Gets ``date=YYYY-MM-DD/symbol=SYM/part-*.parquet``
        (per ``partition``) and the manifest ``_fastbook.json``, written last.
    shards : int, default 1
        Instrument shards per file: N files make N * ``shards`` tasks, each a replay
        of one whole file keeping only its shard's books (exact; see
        :class:`fastbook._shard.Shard`).
    client : distributed.Client, optional
        Where the tasks run (``Client("tcp://scheduler:8786")`` for a cluster).
        Default: a ``LocalCluster`` of ``workers`` single-threaded worker processes
        on 127.0.0.1 (default one per core, at most one per task), closed at the end.
    every, depth, features, on_error, **replay_options
        As for :func:`fastbook.replay` (``every=`` is required; ``prices=``,
        ``timestamps=``... pass through).
    progress : bool, optional
        A progress line (files and tasks done, bytes, messages/s, ETA) on stderr,
        updated as tasks finish; by default only when stderr is a terminal.
    partition : sequence of "date", "symbol"
        The hive partition keys, in order. Without ``"symbol"`` the parts keep a
        ``symbol`` column.
    dates : date, list or mapping, optional
        Each file's trading date (one for all, one per file in order, or a mapping
        of path or base name to date). Default: the date in the file name
        (:func:`fastbook.writers.date_from_name`). Partitioned by date, a file with
        neither is a ValueError before any task starts. For ITCH 5.0 the date is also
        the replay's ``date=``.
    timeout : float, optional
        Seconds to wait for the tasks; past it, the run is cancelled (TimeoutError).

    Returns
    -------
    ManyResult
        Per-file results (``files``, ``complete``, ``failed`` with each ``error``)
        and totals. A failing file does not raise: check ``result.ok`` or call
        ``result.check()``.

    The parts hold the serial replay's sample columns, row for row per (date, symbol),
    except ``instrument`` (an index into one task's book set, meaningless across
    tasks) and the partition keys (in the paths).
    """
    job = submit_many(files, codec, out=out, shards=shards, client=client, workers=workers,
                      every=every, depth=depth, features=features, on_error=on_error,
                      progress=progress, partition=partition, dates=dates, **replay_options)
    return job.result(timeout)
