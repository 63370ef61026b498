"""The replay driver: `fastbook.replay` turns a recorded feed into books, samples and counts.

One call streams a file (plain, gzip, zstd, memory-mapped, stdin, a buffer or a
file object) through a codec's decoder into a :class:`fastbook.BookSet`, taking
top-N samples by a rule while it goes, in memory bounded by the chunk size plus
the books (plus the samples, unless they stream to ``output``):

>>> import fastbook as fb
>>> from fastbook.synth import itch_day
>>> result = fb.replay(itch_day(20_000, n_symbols=3), "itch50", every="bbo", depth=5)
>>> result.messages
20000
>>> sorted(result.counts)[:3]
['A', 'C', 'D']

Sampling rules (``every=``): ``"bbo"`` (whenever the best bid or ask changes),
a time interval of exchange time (``"1s"``, ``"100ms"``, ``"250us"``,
``"5000ns"``), or a number of events per instrument (``"5000msgs"`` or an int);
several rules can be joined with commas (``"1s,bbo"``).
``fastbook.sampling`` documents exactly which rows each rule takes.

Prices and quantities stay fixed-point integers everywhere; Arrow and Parquet
output records each instrument's scales in the schema metadata
(``fastbook.instruments``) and times as integer nanoseconds.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from fastbook.errors import FastbookError
from fastbook.sampling import LEVEL_COLUMNS, SCALAR_COLUMNS

__all__ = ["ReplayResult", "parse_every", "replay"]

_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "min": 60_000_000_000, "h": 3_600_000_000_000}
_RULE = re.compile(r"^\s*(\d+)\s*(ns|us|ms|s|min|m|h|msgs?|events?)\s*$")
_OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow",
                   ".feather": "arrow", ".ipc": "arrow", ".csv": "csv"}


def parse_every(every: Any) -> dict[str, Any]:
    """A sampling rule as :class:`fastbook.Sampler` keyword arguments.

    >>> parse_every("100ms")
    {'interval': 100000000}
    >>> parse_every("5000msgs,bbo")
    {'every': 5000, 'on_bbo': True}
    """
    if isinstance(every, (int, np.integer)) and not isinstance(every, bool):
        if every < 1:
            raise ValueError(f"every must be positive, got {every!r}")
        return {"every": int(every)}
    if not isinstance(every, str):
        raise TypeError(f"every must be a str such as '1s', '5000msgs' or 'bbo', or an int; "
                        f"got {every!r}")
    out: dict[str, Any] = {}
    for part in every.split(","):
        if part.strip().lower() == "bbo":
            out["on_bbo"] = True
            continue
        m = _RULE.match(part.lower())
        if m is None or int(m.group(1)) < 1:
            raise ValueError(f"cannot read the sampling rule {part.strip()!r}: use a time "
                             f"such as '1s', '100ms', '250us', a count such as '5000msgs', "
                             f"or 'bbo'")
        n, unit = int(m.group(1)), m.group(2)
        key = "every" if unit.startswith(("msg", "event")) else "interval"
        if key in out:
            raise ValueError(f"the sampling rule {every!r} gives two {key} rules")
        out[key] = n if key == "every" else n * _UNITS_NS[unit]
    return out


def _output_format(path: str | os.PathLike[str]) -> str:
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    try:
        return _OUTPUT_FORMATS[suffix]
    except KeyError:
        raise ValueError(f"cannot tell the output format of {os.fspath(path)!r}: use a "
                         f"{', '.join(sorted(_OUTPUT_FORMATS))} file name") from None


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
    except ImportError:
        raise ImportError("Arrow, Parquet and CSV output need pyarrow: "
                          "pip install 'fastbook[arrow]'") from None
    return pa


def _instruments(bookset: Any) -> list[dict[str, Any]]:
    return [dict(bookset.instrument(i), id=i) for i in range(len(bookset))]


def samples_table(columns: dict[str, np.ndarray], instruments: list[dict[str, Any]],
                  *, codec: str = "", ts_origin: str = "") -> Any:
    """Sample columns as a ``pyarrow.Table``: one row per sample, one column per level field.

    Columns: ``ts`` (int64 ns), ``instrument`` (uint32), ``symbol`` (dictionary
    of the instruments' symbols, sharing ``instrument``'s values as indices),
    ``sequence``, ``reason``, then ``bid_px_1, bid_qty_1, ask_px_1, ask_qty_1``
    and so on for each level (int64 fixed-point; 0 / 0 for an empty level).
    The schema metadata holds ``fastbook.instruments`` (JSON: id, symbol, venue,
    decimals, tick and lot size), ``fastbook.price_decimals`` /
    ``fastbook.qty_decimals`` when every instrument shares them, and the time
    unit and origin.
    """
    pa = _pyarrow()
    n = len(columns["ts"])
    depth = columns["bid_px"].shape[1]
    symbols = pa.array([i["symbol"] for i in instruments], pa.string())
    arrays = {
        "ts": pa.array(columns["ts"]),
        "instrument": pa.array(columns["instrument"]),
        "symbol": pa.DictionaryArray.from_arrays(pa.array(columns["instrument"]), symbols),
        "sequence": pa.array(columns["sequence"]),
        "reason": pa.array(columns["reason"]),
    }
    for k in range(depth):
        for name in LEVEL_COLUMNS:
            arrays[f"{name}_{k + 1}"] = pa.array(np.ascontiguousarray(columns[name][:, k]))
    meta = {
        "fastbook.instruments": json.dumps(instruments),
        "fastbook.ts_unit": "ns",
        "fastbook.ts_origin": ts_origin,
        "fastbook.codec": codec,
        "fastbook.depth": str(depth),
        "fastbook.rows": str(n),
    }
    for key in ("price_decimals", "qty_decimals"):
        values = {i[key] for i in instruments}
        if len(values) == 1:
            meta[f"fastbook.{key}"] = str(values.pop())
    table = pa.table(arrays)
    return table.replace_schema_metadata(meta)


def _empty_columns() -> dict[str, np.ndarray]:
    """Sample columns with no rows (and no levels), as ``Sampler.columns`` lays them out."""
    return {name: np.zeros(0, t) for name, t in SCALAR_COLUMNS} | {
        name: np.zeros((0, 0), np.int64) for name in LEVEL_COLUMNS}


def _plain_symbols_schema(schema: Any) -> Any:
    import pyarrow as pa

    i = schema.get_field_index("symbol")
    return schema.set(i, pa.field("symbol", pa.string()))


def _plain_symbols(table: Any) -> Any:
    i = table.schema.get_field_index("symbol")
    return table.set_column(i, "symbol", table.column("symbol").cast("string"))


class _Writer:
    """Streams sample batches to a Parquet, Arrow IPC or CSV file as they are taken."""

    def __init__(self, path: str | os.PathLike[str], row_group_size: int, codec: str,
                 ts_origin: str) -> None:
        self.path = os.fspath(path)
        self.format = _output_format(path)
        self.row_group_size = row_group_size
        self.codec, self.ts_origin = codec, ts_origin
        self.rows = 0
        self._writer: Any = None
        _pyarrow()

    def write(self, columns: dict[str, np.ndarray], instruments: list[dict[str, Any]]) -> None:
        if len(columns["ts"]) == 0:
            return
        table = samples_table(columns, instruments, codec=self.codec, ts_origin=self.ts_origin)
        if self._writer is None:
            self._open(table.schema)
        elif not table.schema.equals(self._schema):
            # instruments were added since the file was opened: keep the first schema's
            # metadata (the final list is written at close for Parquet and IPC alike)
            table = table.replace_schema_metadata(self._schema.metadata)
            table = table.cast(self._schema)
        if self.format == "parquet":
            self._writer.write_table(table, row_group_size=self.row_group_size)
        else:
            # an IPC file cannot replace a dictionary between batches, and CSV has none
            self._writer.write_table(_plain_symbols(table))
        self.rows += table.num_rows

    def _open(self, schema: Any) -> None:
        import pyarrow as pa

        self._schema = schema
        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self.path, schema)
        elif self.format == "arrow":
            self._writer = pa.ipc.new_file(self.path, _plain_symbols_schema(schema))
        else:
            import pyarrow.csv as pacsv

            self._writer = pacsv.CSVWriter(self.path, _plain_symbols_schema(schema))

    def close(self, instruments: list[dict[str, Any]]) -> None:
        if self._writer is None:
            # no rows: still write a valid, empty file with the right columns
            self._open(samples_table(_empty_columns(), instruments, codec=self.codec,
                                     ts_origin=self.ts_origin).schema)
        if self.format == "parquet":
            self._writer.add_key_value_metadata(
                {"fastbook.instruments": json.dumps(instruments),
                 "fastbook.rows": str(self.rows)})
        self._writer.close()


class ReplayResult:
    """What :func:`replay` returns: books, samples, counts and timing.

    Attributes
    ----------
    books : fastbook.BookSet
        The final books, one per instrument (``book(symbol)`` finds one).
    samples : dict of numpy arrays
        The sampled columns (``fastbook.sampling`` layout: ``bid_px`` etc. of
        shape ``(rows, depth)``); empty when there was no rule or the rows
        were streamed to ``output``.
    counts : dict
        Messages by type (the codec's type names).
    messages, events, bytes : int
        Messages decoded, events applied (including skipped ones), bytes of
        the decoded stream.
    errors : dict
        Events skipped by kind (``on_error="skip"``; all 0 in raise mode).
    unknown_types : int
        Messages of unknown types, skipped by length.
    seconds : float
        Wall time of the replay.
    output : str or None
        The file the samples were streamed to, and ``rows`` written.
    kind : str
        ``"stream"`` (ITCH) or ``"l2"`` (an exchange L2 feed replayed from captures).
    notices : list of fastbook.codecs.l2replay.ReplayNotice
        L2 feeds: the feed's notices (synced, resync with its reason, snapshot
        requests...) with the record that caused each; ``str()`` of one reads
        as a log line. ``notice_counts`` counts them by kind and reason.
    feed : L2Feed or None
        L2 feeds: the venue feed itself (its own books, states, per-symbol
        ``counts(symbol)`` and ``errors``).

    For L2 feeds, ``counts`` holds the feed's counters over all symbols
    (``applied``, ``snapshots``, ``buffered``, ``dropped``, ``gaps``,
    ``resyncs``, ``checksum_ok``, ``checksum_failed``, ``crossed``,
    ``malformed``, ``ignored``...) and the records by kind (``records``,
    ``records_recv``, ``records_sent``, ``records_open``, ``records_rest``,
    ``records_close``; ``rest_snapshots`` of the REST responses went to the
    feed, ``rest_other`` did not: not order-book snapshots, or for symbols
    outside ``symbols=``); ``messages`` counts the records handed
    to the feed.
    """

    def __init__(self, *, books: Any, samples: dict[str, np.ndarray], counts: dict[str, int],
                 messages: int, events: int, bytes_: int, unknown_types: int, seconds: float,
                 codec: str, ts_origin: str, output: str | None, rows: int,
                 kind: str = "stream", notices: list[Any] | None = None,
                 notice_counts: dict[str, int] | None = None, feed: Any = None) -> None:
        self.books = books
        self.samples = samples
        self.counts = counts
        self.messages = messages
        self.events = events
        self.bytes = bytes_
        self.unknown_types = unknown_types
        self.seconds = seconds
        self.codec = codec
        self.kind = kind
        self.ts_origin = ts_origin
        self.output = output
        self.rows = rows
        self.errors = books.errors
        self.notices = notices if notices is not None else []
        self.notice_counts = notice_counts if notice_counts is not None else {}
        self.feed = feed

    @property
    def skipped(self) -> int:
        """Events skipped in skip mode, all kinds together."""
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        """Messages per second of wall time."""
        return self.messages / self.seconds if self.seconds > 0 else float("inf")

    @property
    def instruments(self) -> list[dict[str, Any]]:
        """Metadata of every instrument (id, symbol, venue, decimals, tick, lot)."""
        return _instruments(self.books)

    def book(self, symbol: str, venue: str | None = None) -> Any:
        """The final book of ``symbol`` (on ``venue``, or the only venue that has it)."""
        if venue is not None:
            return self.books[self.books.find(symbol, venue)]
        found = [i for i in self.instruments if i["symbol"] == symbol]
        if len(found) != 1:
            raise KeyError(f"{'no' if not found else 'several'} instrument {symbol!r} in this "
                           f"replay{'' if not found else '; name the venue'}")
        return self.books[found[0]["id"]]

    def to_arrow(self) -> Any:
        """The samples as a ``pyarrow.Table`` (see :func:`samples_table` for the columns)."""
        return samples_table(self._samples_or_empty(), self.instruments, codec=self.codec,
                             ts_origin=self.ts_origin)

    def to_pandas(self) -> Any:
        """The samples as a ``pandas.DataFrame`` (needs pandas and pyarrow)."""
        return self.to_arrow().to_pandas()

    def to_parquet(self, path: str | os.PathLike[str], *, row_group_size: int = 1 << 20) -> None:
        """Write the samples to a Parquet file, in row groups of ``row_group_size`` rows."""
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), os.fspath(path), row_group_size=row_group_size)

    def _samples_or_empty(self) -> dict[str, np.ndarray]:
        if self.samples:
            return self.samples
        if self.output is not None:
            raise FastbookError(f"the samples were streamed to {self.output!r}; read them "
                                f"from there")
        return _empty_columns()

    def summary(self) -> str:
        """A few lines for people: messages, rate, books, skipped, samples."""
        if self.kind == "l2":
            lines = self._l2_summary()
        else:
            lines = [
                f"{self.messages:,} messages ({self.bytes / 1e6:,.1f} MB) in {self.seconds:.2f} s: "
                f"{self.rate / 1e6:.2f} M msgs/s",
                f"{len(self.books):,} books, {self.events:,} book events, "
                f"{self.skipped:,} skipped, {self.unknown_types:,} unknown message types",
            ]
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{k} {v:,}" for k, v in self.errors.items()
                                                   if v))
        if self.output is not None:
            lines.append(f"{self.rows:,} sample rows written to {self.output}")
        elif self.samples:
            lines.append(f"{len(self.samples['ts']):,} sample rows")
        return "\n".join(lines)

    def _l2_summary(self) -> list[str]:
        c = self.counts
        other = c.get("records", 0) - self.messages
        lines = [
            f"{c.get('records', 0):,} records ({self.bytes / 1e6:,.1f} MB): "
            f"{c.get('records_recv', 0):,} received, {c.get('rest_snapshots', 0):,} REST "
            f"snapshots, {other:,} other; {self.seconds:.2f} s, "
            f"{self.rate / 1e3:,.0f} k msgs/s",
        ]
        synced = sum(1 for s in self.feed.symbols if self.feed.is_synced(s)) \
            if self.feed is not None else 0
        lines.append(f"{len(self.books):,} books ({synced:,} synced at the end), "
                     f"{self.events:,} book events")
        shown = ("applied", "snapshots", "buffered", "dropped", "gaps", "resyncs",
                 "checksum_ok", "checksum_failed", "crossed", "malformed", "ignored")
        lines.append("feed: " + ", ".join(f"{k} {c.get(k, 0):,}" for k in shown
                                          if c.get(k, 0) or k in ("applied", "gaps")))
        if self.notice_counts:
            lines.append("notices: " + ", ".join(f"{k} {v:,}" for k, v in
                                                 sorted(self.notice_counts.items())))
        return lines

    def __repr__(self) -> str:
        return (f"<fastbook.ReplayResult codec={self.codec!r} messages={self.messages} "
                f"books={len(self.books)} skipped={self.skipped}>")


class _StreamRun:
    """A byte-stream codec's replay: source chunks → ``module.Decoder`` → event batches."""

    kind = "stream"

    def __init__(self, module: Any, source: Any, books: Any, *, codec: str,
                 symbols: Any, chunk_size: int, compression: str, progress: bool | None,
                 options: dict[str, Any]) -> None:
        self.module = module
        self.source = source
        self.books = books
        self.codec = codec
        self.symbols = symbols
        self.chunk_size = chunk_size
        self.compression = compression
        self.progress = progress
        self.options = options
        self.ts_origin = getattr(module, "TS_ORIGIN", "")
        self.name = "<source>"

    def __enter__(self) -> _StreamRun:
        from fastbook.sources import open_source

        self._src = open_source(self.source, chunk_size=self.chunk_size,
                                compression=self.compression)
        try:
            self.name = self._src.name
            self.decoder = self.module.Decoder(self.books, symbols=self.symbols,
                                               name=self._src.name, **self.options)
        except BaseException:
            self._src.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._src.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        from fastbook.sources import Progress

        src, decoder = self._src, self.decoder
        bar = Progress(total=src.size, enabled=self.progress)
        try:
            for chunk in src:
                yield from decoder.feed(chunk)
                bar.update(src.raw_bytes_read, decoder.messages)
            yield from decoder.close()
        finally:
            bar.close()

    def make_sampler(self, depth: int, rules: dict[str, Any]) -> Any:
        from fastbook.sampling import Sampler

        return Sampler(depth, capacity=1 << 16, **rules)

    def apply(self, events: np.ndarray, sampler: Any) -> None:
        _apply(self.books, events, sampler, self.name)

    def result_fields(self) -> dict[str, Any]:
        d = self.decoder
        return {"counts": d.counts(), "messages": d.messages, "events": d.events,
                "bytes_": d.bytes, "unknown_types": d.unknown_types(),
                "ts_origin": self.ts_origin}


def replay(source: Any, codec: Any = "itch50", *, symbols: Iterable[str] | str | None = None,
           depth: int = 10, every: Any = None, on_error: str = "raise",
           output: str | os.PathLike[str] | None = None, row_group_size: int = 1 << 20,
           chunk_size: int = 4 << 20, compression: str = "auto", progress: bool | None = None,
           bookset: Any = None, lobster: str | os.PathLike[str] | None = None,
           instruments: Any = None, book_depth: int | None = None, verify: bool = True,
           **codec_options: Any) -> ReplayResult:
    """Replay a recorded feed into books, taking top-of-book samples on the way.

    Parameters
    ----------
    source : path, ``"-"`` (stdin), bytes-like or binary file object; or a list of captures
        For a stream codec (ITCH), the feed file; compression (gzip, zstd) is
        detected from the content. For an L2 feed codec, a capture (fastbook
        or cryptofeed format, see :mod:`fastbook.codecs.capture`) or a list of
        captures merged in receive-time order (a Binance websocket capture and
        its REST snapshots).
    codec : str
        A replay codec (:func:`fastbook.codecs.available`): ``"itch50"``, or
        an L2 feed such as ``"binance-spot"``, ``"coinbase-exchange"``,
        ``"kraken-v1"``, ``"okx"``; or an ``L2Feed`` subclass.
    symbols : iterable of str or comma-separated str, optional
        Only these symbols get books (others are decoded and dropped). L2
        feeds: the venue's native symbols (``"BTCUSDT"``, ``"XBT/USD"``).
    depth : int
        Levels per side in each sample row.
    every : str or int, optional
        The sampling rule (see :func:`parse_every`); no samples when omitted.
        L2 feeds apply it per venue message, never inside one (see
        :class:`fastbook.codecs.l2replay.PacketSampler`).
    on_error : {"raise", "skip"}
        Book errors (unknown order references, over-executions) and, for L2
        feeds, bad messages: raise (:class:`fastbook.UpdateError`,
        :class:`fastbook.DecodeError` naming the capture and record) or count
        and skip them (``result.errors``, ``result.counts["malformed"]``).
        On a raise, the books (``bookset=``) stand as of the message before
        the failing one: the new set is made with ``on_error="stop"``.
        Framing errors always raise ``DecodeError`` with the byte offset and
        message (record) number.
    output : path, optional
        Stream the samples to this ``.parquet``, ``.arrow``/``.feather`` or
        ``.csv`` file as they are taken, in row groups of ``row_group_size``
        rows (fewer for deep samples: a group holds at most about 64 MiB), so
        memory stays bounded on long runs.
    chunk_size, compression : passed to :func:`fastbook.sources.open_source` (stream codecs).
    progress : bool, optional
        Draw a progress line on stderr; by default only when it is a terminal.
    bookset : fastbook.BookSet, optional
        Books to continue (default: a new, empty set). Its own ``on_error``
        decides what a failing event leaves behind; ``"stop"`` leaves the
        books as of the message before it.
    lobster : directory path, optional
        Also write LOBSTER message and orderbook files (``depth`` levels) for
        every instrument, as ``SYMBOL_message_DEPTH.csv`` and
        ``SYMBOL_orderbook_DEPTH.csv``, streamed batch by batch. Two files
        stay open per instrument, so at most 256 instruments: choose
        ``symbols`` for a full day. Order-by-order (stream) codecs only.
    instruments : iterable of fastbook.codecs._l2feed.Instrument, or a path, optional
        L2 feeds: the symbols' scales, tick and lot sizes (see
        :mod:`fastbook.codecs.instruments`); others use the feed's defaults. A
        path is read by :func:`fastbook.codecs.l2replay.load_instruments` (the
        venue's metadata document, or a capture of its REST response).
    book_depth : int, optional
        L2 feeds: the subscribed book depth, for venues that truncate to it
        (Kraken); passed to the feed as ``depth=``.
    verify : bool
        L2 feeds: check each fastbook capture record's CRC32.
    **codec_options
        Passed to the codec's ``Decoder`` (for ITCH: ``framing``, ``venue``)
        or to the L2 feed's constructor.
    """
    from fastbook import codecs
    from fastbook.codecs._l2feed import L2Feed
    from fastbook.l3 import BookSet

    if isinstance(codec, type) and issubclass(codec, L2Feed):
        # an L2Feed subclass of one's own (a venue fastbook has no codec for)
        kind, module, codec = "l2", codec, codec.venue or codec.__name__
    else:
        kind = codecs.kind(codec)
        module = codecs.load(codec)
    if isinstance(symbols, str):
        symbols = [s.strip() for s in symbols.split(",") if s.strip()]
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    # raise: stop at the first failing event with the events before it applied. A batch
    # here is only a buffer's worth of the stream, so undoing one (BookSet's raise mode,
    # with its undo journal) would leave the books at an arbitrary earlier point.
    books = BookSet(on_error="stop" if on_error == "raise" else on_error) \
        if bookset is None else bookset
    rules = parse_every(every) if every is not None else None
    run: Any
    if kind == "l2":
        from fastbook.codecs.l2replay import L2Run

        if lobster is not None:
            raise ValueError(f"LOBSTER output needs an order-by-order codec such as itch50; "
                             f"{codec!r} is an L2 feed")
        run = L2Run(module, source, books, codec=codec, symbols=symbols, on_error=on_error,
                    instruments=instruments, book_depth=book_depth, verify=verify,
                    progress=progress, **codec_options)
    else:
        for name, value in (("instruments", instruments), ("book_depth", book_depth)):
            if value is not None:
                raise ValueError(f"{name}= is for L2 feed codecs; {codec!r} is not one")
        run = _StreamRun(module, source, books, codec=codec, symbols=symbols,
                         chunk_size=chunk_size, compression=compression, progress=progress,
                         options=codec_options)
    ts_origin = getattr(module, "TS_ORIGIN", "") if kind == "stream" else "epoch"
    sampler = run.make_sampler(depth, rules) if rules else None
    # a row group holds row_group_size rows, but at most about _GROUP_BYTES of samples, so
    # deep samples (depth 50: 1.6 KB a row) keep memory bounded too
    group_rows = max(1024, min(row_group_size, _GROUP_BYTES // _row_bytes(depth)))
    writer = None
    if output is not None:
        if sampler is None:
            raise ValueError("output= needs a sampling rule (every=)")
        writer = _Writer(output, group_rows, codec, ts_origin)
    samples: dict[str, np.ndarray] = {}
    lob = _LobsterFiles(lobster, depth, ts_origin=ts_origin,
                        utc_offset_ns=getattr(module, "UTC_OFFSET_NS", 0)) \
        if lobster is not None else None

    def flush(force: bool = False) -> None:
        # row groups bound the memory of a run that writes its samples out; a run that
        # keeps them lets the sampler grow (in place) and takes them once, at the end
        if sampler is None or (not force and (writer is None or len(sampler) < group_rows)):
            return
        cols = sampler.take()
        if writer is not None:
            writer.write(cols, _instruments(books))
        elif len(cols["ts"]):
            samples.update(cols)    # once: without a writer only the final flush takes

    t0 = time.perf_counter()
    try:
        with run:
            for batch in run:
                run.apply(batch, sampler)
                if lob is not None:
                    lob.write(batch, books)
                flush()
            flush(force=True)
    finally:
        if lob is not None:
            lob.close()
    if writer is not None:
        writer.close(_instruments(books))
    seconds = time.perf_counter() - t0
    return ReplayResult(
        books=books, samples=samples, seconds=seconds, codec=codec, kind=kind,
        output=None if writer is None else writer.path, rows=0 if writer is None else writer.rows,
        **run.result_fields())


#: Most sample bytes a replay holds before writing them out as a row group.
_GROUP_BYTES = 64 << 20


def _row_bytes(depth: int) -> int:
    """Bytes of one sample row: ts, instrument, sequence, reason and 4 * depth levels."""
    return 8 + 4 + 8 + 1 + 4 * 8 * depth


def _apply(books: Any, events: np.ndarray, sampler: Any, name: str) -> None:
    """BookSet.apply, with a failure named by the stream and its message number."""
    from fastbook.errors import UpdateError

    try:
        books.apply(events, sampler=sampler)
    except UpdateError as exc:
        number = int(events["sequence"][exc.index])
        detail = str(exc).split(": ", 1)[-1]
        raise UpdateError(f"{name}: message {number}: {detail}", number) from None


class _LobsterFiles:
    """LOBSTER message and orderbook files per instrument, written batch by batch.

    Each instrument keeps its own scale and order keying (from the BookSet). LOBSTER
    times are seconds after midnight: a codec with epoch times (``ts_origin ==
    "epoch"``) has them measured from the local midnight (``utc_offset_ns``) of the
    instrument's first event, so a night session runs on past 24 h.
    """

    MAX_INSTRUMENTS = 256
    _DAY = 86_400 * 1_000_000_000

    def __init__(self, directory: str | os.PathLike[str], depth: int, *, ts_origin: str = "",
                 utc_offset_ns: int = 0) -> None:
        self.directory = os.fspath(directory)
        self.depth = depth
        self.epoch = ts_origin == "epoch"
        self.utc_offset_ns = utc_offset_ns
        # instrument: message file, orderbook file, book, price decimals, midnight (epoch ns)
        self._open: dict[int, tuple[Any, Any, Any, int, int]] = {}
        os.makedirs(self.directory, exist_ok=True)

    def write(self, events: np.ndarray, books: Any) -> None:
        from fastbook.codecs import lobster
        from fastbook.l3 import OrderBook

        instruments = events["instrument"]
        for i in np.unique(instruments).tolist():
            mine = events[instruments == i]
            if i not in self._open:
                if len(self._open) == self.MAX_INSTRUMENTS:
                    raise ValueError(f"LOBSTER output is limited to {self.MAX_INSTRUMENTS} "
                                     f"instruments (two open files each); choose symbols")
                meta = books.instrument(i)
                base = os.path.join(self.directory, meta["symbol"])
                midnight = 0
                if self.epoch:
                    local = int(mine["ts_exchange"][0]) + self.utc_offset_ns
                    midnight = local - local % self._DAY - self.utc_offset_ns
                self._open[i] = (
                    open(f"{base}_message_{self.depth}.csv", "w", newline=""),
                    open(f"{base}_orderbook_{self.depth}.csv", "w", newline=""),
                    OrderBook(price_decimals=meta["price_decimals"],
                              qty_decimals=meta["qty_decimals"],
                              side_keys=getattr(books[i], "side_keys", False)),
                    meta["price_decimals"],
                    midnight,
                )
            messages, orderbook, book, price_decimals, midnight = self._open[i]
            if midnight:
                mine["ts_exchange"] -= midnight
            lobster.write(mine, messages, orderbook, levels=self.depth,
                          price_decimals=price_decimals, book=book)

    def close(self) -> None:
        for messages, orderbook, *_ in self._open.values():
            messages.close()
            orderbook.close()


def scan(source: Any, codec: str = "itch50", *, chunk_size: int = 4 << 20,
         compression: str = "auto", **codec_options: Any) -> dict[str, Any]:
    """Decode a feed without building books: counts by type, directory, time range.

    Returns a dict with ``messages``, ``bytes``, ``counts`` (by type),
    ``directory`` (the codec's instrument directory entries), ``events``, and
    ``first_ts`` / ``last_ts`` (the smallest and largest exchange time of a
    book event; None when there is none). For an L2 feed codec, ``source``
    is one or more captures and the dict is :func:`fastbook.codecs.capture.summarize`'s.
    """
    from fastbook import codecs
    from fastbook.sources import open_source

    if codecs.kind(codec) == "l2":
        # an L2 capture: what it holds (``fastbook.codecs.capture.summarize``)
        from fastbook.codecs import capture
        from fastbook.codecs.l2replay import as_sources

        return capture.summarize(as_sources(source))
    module = codecs.load(codec)
    span: list[int] = []

    def see(events: np.ndarray) -> None:
        ts = events["ts_exchange"]
        lo, hi = int(ts.min()), int(ts.max())
        span[:] = [min(span[0], lo), max(span[1], hi)] if span else [lo, hi]

    with open_source(source, chunk_size=chunk_size, compression=compression) as src:
        decoder = module.Decoder(None, name=src.name, **codec_options)
        for chunk in src:
            for events in decoder.feed(chunk):
                see(events)
        for events in decoder.close():
            see(events)
    return {"messages": decoder.messages, "bytes": decoder.bytes, "counts": decoder.counts(),
            "directory": decoder.directory, "events": decoder.events,
            "first_ts": span[0] if span else None, "last_ts": span[1] if span else None}
