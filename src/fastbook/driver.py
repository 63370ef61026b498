"""The replay driver: `fastbook.replay` turns a recorded feed into books, samples and counts.

One call streams a file (plain, gzip, zstd, memory-mapped, stdin, a buffer or a
file object) or one or more L2 captures through a codec into a
:class:`fastbook.BookSet`, taking top-N samples by a rule while it goes, in memory
bounded by the chunk size plus the books (plus the samples, unless they stream to
``output``):

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

Every codec plugs into one loop, :func:`drive` (the run protocol, written down
in ``docs/architecture.md``): a :class:`Run` adapts a codec to it (:class:`StreamRun`
for byte-stream decoders such as ITCH, :class:`L2Run` for exchange L2 feeds
replayed from captures); codecs announce their instruments to the driver's
:class:`Instruments`, which owns the books; the driver applies each batch of
events to the BookSet with the sampler and hands it to the writers
(:mod:`fastbook.writers`).

Prices and quantities stay fixed-point integers everywhere; Arrow and Parquet
output records each instrument's scales in the schema metadata
(``fastbook.instruments``) and times as integer nanoseconds. The output options
(``prices="float"``, ``timestamps="datetime"``, ``missing="nan"``,
``reason="names"``; :mod:`fastbook.writers`) present them as floats, datetimes
and NaN instead, for the streamed ``output`` file and as the defaults of the
result's ``to_pandas`` / ``to_arrow`` / ``to_parquet`` / ``to_csv``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, overload
from urllib.parse import parse_qs, urlsplit

import numpy as np

from fastbook._shard import Shard, symbol_filter
from fastbook.errors import DecodeError, FastbookError, UpdateError
from fastbook.events import Flags
from fastbook.writers import (
    LobsterFiles,
    OutputOptions,
    SampleWriter,
    date_from_name,
    empty_columns,
    instruments_of,
    output_format,
    samples_frame,
    samples_table,
    write_trades,
)

if TYPE_CHECKING:
    from fastbook._consolrun import ConsolidatedResult
    from fastbook._core import Book
    from fastbook._l3 import BookSet, OrderBook
    from fastbook.live._record import SessionRun

__all__ = ["MAX_NOTICES", "Instruments", "L2Run", "ReplayNotice", "ReplayResult", "Run",
           "StreamRun", "drive", "load_instruments", "parse_every", "replay", "scan"]

#: Notices an L2 replay keeps (the first ones; later ones are only counted).
MAX_NOTICES = 100_000
_LAST_IN_PACKET = int(Flags.LAST_IN_PACKET)
_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "min": 60_000_000_000, "h": 3_600_000_000_000}
_RULE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|ms|s|min|m|h|msgs?|events?)\s*$")


def parse_every(every: Any) -> dict[str, Any]:
    """A sampling rule as :class:`fastbook.Sampler` keyword arguments.

    Times may be fractional as long as they are a whole number of nanoseconds
    (``"1.5s"``, ``"0.25ms"``); counts are whole numbers.

    >>> parse_every("100ms")
    {'interval': 100000000}
    >>> parse_every("1.5s")
    {'interval': 1500000000}
    >>> parse_every("5000msgs,bbo")
    {'every': 5000, 'on_bbo': True}
    """
    from fractions import Fraction

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
        if m is None:
            raise ValueError(f"cannot read the sampling rule {part.strip()!r}: use a time "
                             f"such as '1s', '1.5s', '100ms', '250us', a count such as "
                             f"'5000msgs', or 'bbo'")
        number, unit = Fraction(m.group(1)), m.group(2)
        key = "every" if unit.startswith(("msg", "event")) else "interval"
        value = number if key == "every" else number * _UNITS_NS[unit]
        if value.denominator != 1 or value < 1:
            what = "a whole number of events" if key == "every" else \
                "a whole number of nanoseconds, at least 1ns"
            raise ValueError(f"the sampling rule {part.strip()!r} must be {what}")
        if key in out:
            raise ValueError(f"the sampling rule {every!r} gives two {key} rules")
        out[key] = int(value)
    return out


def codec_name(codec: Any) -> Any:
    """The registry name of ``codec``, which may be spelled with ``-`` or ``_`` (``ose-itch``).

    A name the registry does not know is returned unchanged (:func:`fastbook.codecs.load`
    then lists the choices).

    >>> codec_name("ose-itch"), codec_name("binance_spot"), codec_name("itch50")
    ('ose_itch', 'binance-spot', 'itch50')
    """
    from fastbook import codecs

    if not isinstance(codec, str):
        return codec
    known = (*codecs.STREAM_CODECS, *codecs.L2_FEEDS)
    if codec in known:
        return codec
    folded = codec.strip().lower().replace("_", "-")
    for name in known:
        if name.replace("_", "-") == folded:
            return name
    return codec


def display_name(codec: str) -> str:
    """``codec`` as the command line shows it: one style, dashes (``ose-itch``)."""
    return codec.replace("_", "-")


def check_output(path: str | os.PathLike[str], what: str = "output") -> str:
    """``path`` as a str, after checking a file can be written there (before any work).

    Raises ``IsADirectoryError`` when it is a directory, ``FileNotFoundError``
    when its directory does not exist, ``PermissionError`` when it cannot be
    written, each message naming ``what`` and the path.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path!r} is a directory; name a file in it")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{what} {path!r}: the directory {parent!r} does not exist")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{what} {path!r} exists and cannot be written")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path!r}: the directory {parent!r} is not writable")
    return path


def check_directory(path: str | os.PathLike[str], what: str = "lobster") -> str:
    """``path`` as a str, after checking it is (or can be made) a writable directory."""
    path = os.fspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise NotADirectoryError(f"{what} {path!r} is a file, not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{what} directory {path!r} is not writable")
        return path
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"{what} {path!r}: {parent!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path!r}: cannot create it, {parent!r} is not writable")
    return path


# ---------------------------------------------------------------------------
# The run protocol: what a codec provides, what the driver owns
# ---------------------------------------------------------------------------

class Instruments:
    """The driver's instrument registry: codecs announce instruments, the driver makes the books.

    A codec calls :meth:`announce` when its input names an instrument (an ITCH
    stock directory message, an OSE order book directory, an L2 feed's first
    message for a symbol) and uses the id it returns in the events it emits. The
    books themselves are the driver's: a codec never adds instruments to the
    :class:`fastbook.BookSet` itself. An instrument already in the set under the
    same (symbol, venue) is reused (a replay continuing a ``bookset=``).
    """

    def __init__(self, books: Any) -> None:
        self.books = books

    def announce(self, symbol: str, *, venue: str = "", kind: str = "l3",
                 price_decimals: int, qty_decimals: int = 0, tick_size: int = 1,
                 lot_size: int = 1, capacity: int = 256, order_capacity: int = 1024,
                 side_keys: bool = False, reuse: bool = True) -> int:
        """The id of ``symbol`` on ``venue``: found (``reuse``), or a new book with these
        properties (``BookSet.add_instrument``'s errors when it cannot be added)."""
        books = self.books
        if reuse:
            try:
                return int(books.find(symbol, venue))
            except KeyError:
                pass
        # an L2 book has no order store: only an L3 book takes its sizes
        l3 = {} if kind == "l2" else {"capacity": capacity, "order_capacity": order_capacity,
                                      "side_keys": side_keys}
        return int(books.add_instrument(
            symbol, kind=kind, venue=venue, price_decimals=price_decimals,
            qty_decimals=qty_decimals, tick_size=tick_size, lot_size=lot_size, **l3))

    def instrument(self, instrument: int) -> dict[str, Any]:
        """The metadata of an announced instrument (``BookSet.instrument``)."""
        return dict(self.books.instrument(instrument))

    def __len__(self) -> int:
        return len(self.books)


def registry(target: Any) -> Instruments | None:
    """``target`` as an :class:`Instruments`: a BookSet is wrapped; None stays None (scanning)."""
    if target is None or isinstance(target, Instruments):
        return target
    return Instruments(target)


class Run(Protocol):
    """One codec's side of a run (see ``docs/architecture.md``, "The run protocol").

    The driver calls, in this order: the constructor (no I/O; the codec is
    built with the driver's :class:`Instruments`), ``__enter__`` (sources
    open), iteration (each item an ``EVENT_DTYPE`` array whose ``instrument``
    ids are the BookSet's, every instrument announced before the batch that
    first uses it is yielded; the driver applies a batch before asking for the
    next, so a codec may reuse its buffer), :meth:`failed` when a batch does
    not apply, ``__exit__``, then :meth:`result_fields`. ``packets`` says the
    events mark message ends (``Flags.LAST_IN_PACKET``), so the driver samples
    per message (``Sampler(packets=True)``). ``notices`` collects what the
    codec asks a driver to act on (an L2 feed's :class:`ReplayNotice`\\ s).
    """

    kind: str
    name: str
    ts_origin: str
    packets: bool
    notices: list[Any]

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...

    def __iter__(self) -> Iterator[np.ndarray]: ...

    def failed(self, exc: UpdateError, events: np.ndarray) -> BaseException:
        """The error to raise for ``exc`` (``BookSet.apply`` failing on ``events``)."""
        ...

    def result_fields(self) -> dict[str, Any]:
        """Counts, messages, events, bytes... as :class:`ReplayResult` keyword arguments."""
        ...


def drive(run: Run, books: Any, *, sampler: Any = None,
          consumers: Iterable[Callable[[np.ndarray, Any], None]] = (),
          flush: Callable[[bool], None] | None = None, cancel: Any = None) -> None:
    """The loop every codec runs in: each batch of ``run`` → ``books.apply`` → consumers.

    ``sampler`` takes its rows inside ``BookSet.apply``; each consumer gets
    ``(events, books)`` after a batch is applied (the LOBSTER writer); ``flush``
    is called after every batch with False and once at the end with True (the
    sample writer's row groups). ``cancel`` (an object with ``is_set()``, such as a
    ``threading.Event``) is checked after every batch: when set, the loop stops with
    :class:`fastbook.parallel.Cancelled`.
    """
    apply = books.apply
    consumers = tuple(consumers)
    with run:
        for events in run:
            try:
                apply(events, sampler=sampler)
            except UpdateError as exc:
                raise run.failed(exc, events) from None
            for consume in consumers:
                consume(events, books)
            if flush is not None:
                flush(False)
            if cancel is not None and cancel.is_set():
                from fastbook.parallel import Cancelled

                raise Cancelled(f"{run.name}: the replay was cancelled (cancel= was set)")
        if flush is not None:
            flush(True)


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
        ``"stream"`` (ITCH), ``"l2"`` (an exchange L2 feed replayed from captures)
        or ``"live"`` (a live recording replayed through the live session).
    session, book_stats :
        Live recordings: the :class:`fastbook.live.Session` the records went
        through (``session.track(venue, symbol).state``, ``session.counts(...)``),
        and per ``(venue, native)`` book its final ``state``, ``reason`` and
        counts (``messages``, ``applied``, ``snapshots``, ``gaps``, ``resyncs``,
        ``errors``, ``checksum_failed``, ``state_changes``, all ``counts``): the
        live run's own at the end of the recording. None for other replays.
    notices : list of fastbook.driver.ReplayNotice
        L2 feeds: the feed's notices (synced, resync with its reason, snapshot
        requests...) with the record that caused each; ``str()`` of one reads
        as a log line. ``notice_counts`` counts them by kind and reason.
    feed : L2Feed or None
        L2 feeds: the venue feed itself (its own books, states, per-symbol
        ``counts(symbol)`` and ``errors``).
    options : fastbook.writers.OutputOptions
        The output options ``replay`` was given (floats, datetimes, NaN,
        reason names); the defaults of ``to_pandas`` and the other outputs.
    date : datetime.date or None
        The trading date (``date=``, or for ITCH the date in the file name),
        which ``timestamps="datetime"`` needs for times counted from midnight.
    warnings : list of str
        What the replay could not do as asked, for people (also in
        :meth:`summary`): symbols of ``symbols=`` not in the input (with the
        closest known ones), L2 books that never synced and why (a Binance
        stream without its REST snapshots, a futures stream under a spot
        codec), books crossed at the end, LOBSTER events skipped. A
        symbol named in ``symbols=`` whose book never became valid is also
        issued as a :class:`fastbook.errors.ReplayWarning`.
    trades : dict of numpy arrays
        ``replay(..., trades=...)``: every trade print with its aggressor side
        (``fastbook.sampling.TRADE_COLUMNS``; :meth:`write_trades`); else empty.
    mapped : dict or None
        ``replay(..., map_books=f)``: what ``f`` returned, ``{symbol: value}`` in
        instrument order (from every worker with ``workers=``); else None.
    workers : int
        The processes the replay ran in (``workers=``; 1 without).
    shards : list of dict
        ``workers=``: per worker, the ``events`` it applied, its ``instruments``,
        sample ``rows``, the ``seconds`` its replay took and its ``pid`` (how even
        the shards were); empty without workers.
    crossed : list of str
        Order-by-order codecs: the symbols whose book is crossed (best bid
        at or above best ask) at the end of the replay, a sign of missed
        messages (a day joined late, a gap).

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

    def __init__(self, *, books: BookSet, samples: dict[str, np.ndarray], counts: dict[str, int],
                 messages: int, events: int, bytes_: int, unknown_types: int, seconds: float,
                 codec: str, ts_origin: str, output: str | None, rows: int,
                 kind: str = "stream", notices: list[Any] | None = None,
                 notice_counts: dict[str, int] | None = None, feed: Any = None,
                 options: OutputOptions | None = None,
                 warnings: list[str] | None = None, crossed: list[str] | None = None) -> None:
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
        self.warnings = warnings if warnings is not None else []
        self.crossed = crossed if crossed is not None else []
        self.options = options if options is not None else OutputOptions()
        self.session: Any = None
        self.book_stats: dict[tuple[str, str], dict[str, Any]] | None = None
        self.trades: dict[str, np.ndarray] = {}
        self.mapped: dict[str, Any] | None = None
        self.workers = 1
        self.shards: list[dict[str, Any]] = []
        self._run: Any = None
        self._lobster_skipped = 0
        self._lobster_paths: list[str] = []

    @property
    def date(self) -> Any:
        """The trading date the outputs use for datetimes (None when unknown)."""
        return self.options.date

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
        return instruments_of(self.books)

    def book(self, symbol: str, venue: str | None = None) -> Book | OrderBook:
        """The final book of ``symbol`` (on ``venue``, or the only venue that has it)."""
        if venue is not None:
            return self.books[self.books.find(symbol, venue)]
        found = [i for i in self.instruments if i["symbol"] == symbol]
        if len(found) != 1:
            raise KeyError(f"{'no' if not found else 'several'} instrument {symbol!r} in this "
                           f"replay{'' if not found else '; name the venue'}")
        return self.books[found[0]["id"]]

    def _options(self, changes: dict[str, Any]) -> OutputOptions:
        options = self.options.replace(**changes)
        options.check(self.ts_origin, self.codec)
        return options

    def to_arrow(self, **options: Any) -> Any:
        """The samples as a ``pyarrow.Table`` (see :func:`fastbook.writers.samples_table`).

        Keyword arguments override the replay's output options: ``prices`` /
        ``quantities`` (``"int"`` or ``"float"``), ``timestamps`` (``"int"`` or
        ``"datetime"``), ``date``, ``missing`` (``"zero"`` or ``"nan"``),
        ``reason`` (``"bits"`` or ``"names"``); :mod:`fastbook.writers`.
        """
        return samples_table(self._samples_or_empty(), self.instruments, codec=self.codec,
                             ts_origin=self.ts_origin, options=self._options(options))

    def to_pandas(self, **options: Any) -> Any:
        """The samples as a ``pandas.DataFrame`` (needs pandas: ``fastbook-lob[pandas]``).

        The columns of :meth:`to_arrow` with the same options; ``symbol`` is
        categorical, and ``DataFrame.attrs`` holds the ``fastbook.*`` metadata
        (``fastbook.instruments`` with every instrument's scales).

        >>> import fastbook as fb
        >>> from fastbook.synth import itch_day
        >>> run = fb.replay(itch_day(5_000, n_symbols=2), every="bbo", date="2019-12-30")
        >>> df = run.to_pandas(prices="float", timestamps="datetime")
        >>> str(df["ts"].dtype), str(df["bid_px_1"].dtype)
        ('datetime64[ns]', 'float64')
        """
        return samples_frame(self._samples_or_empty(), self.instruments, codec=self.codec,
                             ts_origin=self.ts_origin, options=self._options(options))

    def to_parquet(self, path: str | os.PathLike[str], *, row_group_size: int = 1 << 20,
                   **options: Any) -> None:
        """Write the samples to a Parquet file, in row groups of ``row_group_size`` rows.

        Options as :meth:`to_arrow`; ``pandas.read_parquet`` restores the
        ``fastbook.*`` metadata into ``DataFrame.attrs``.
        """
        from fastbook._extras import require

        pq = require("pyarrow.parquet", "arrow", "Parquet output")
        pq.write_table(self.to_arrow(**options), os.fspath(path), row_group_size=row_group_size)

    def to_csv(self, path: str | os.PathLike[str], **options: Any) -> None:
        """Write the samples to a CSV file (no pyarrow needed); options as :meth:`to_arrow`.

        Each row carries its instrument's ``price_decimals`` and ``qty_decimals``.
        """
        if os.path.splitext(os.fspath(path))[1].lower() != ".csv":
            raise ValueError(f"to_csv writes a .csv file, not {os.fspath(path)!r}")
        writer = SampleWriter(path, 1 << 20, self.codec, self.ts_origin,
                              self._options(options))
        writer.write(self._samples_or_empty(), self.instruments)
        writer.close(self.instruments)

    def write_trades(self, path: str | os.PathLike[str], **options: Any) -> int:
        """Write the trade prints (``replay(..., trades=True)``) to ``.parquet`` or ``.csv``.

        Options as :meth:`to_arrow` (``prices``, ``quantities``; ``reason="names"``
        writes the aggressor as ``buy`` / ``sell``). Returns the rows written.
        """
        if not self.trades:
            raise FastbookError("this replay kept no trades: replay(..., trades=True)")
        return write_trades(path, self.trades, self.instruments, self._options(options),
                            codec=self.codec, ts_origin=self.ts_origin)

    def plot(self, out_png: str | os.PathLike[str] | None = None, **options: Any) -> Any:
        """A depth heatmap with the BBO over it, or ``kind="series"`` of chosen
        ``columns=`` (features too), as a matplotlib Figure, saved to ``out_png`` when
        given; :func:`fastbook.plot.plot_result` (needs ``fastbook-lob[plot]``)."""
        from fastbook.plot import plot_result

        return plot_result(self, out_png, **options)

    def _samples_or_empty(self) -> dict[str, np.ndarray]:
        if self.samples:
            return self.samples
        if self.output is not None:
            raise FastbookError(f"the samples were streamed to {self.output!r}; read them "
                                f"from there")
        return empty_columns()

    def summary(self) -> str:
        """A few lines for people: messages, rate, books, skipped, samples."""
        if self.kind == "l2":
            lines = self._l2_summary()
        elif self.kind == "live":
            from fastbook.live._record import summary_lines

            lines = summary_lines(self)
        else:
            lines = [
                f"{self.messages:,} messages ({self.bytes / 1e6:,.1f} MB) in {self.seconds:.2f} s: "
                f"{self.rate / 1e6:.2f} M msgs/s",
                f"{len(self.books):,} books, {self.events:,} book events, "
                f"{self.skipped:,} skipped, {self.unknown_types:,} unknown message types",
            ]
            if self.shards:
                events = [s["events"] for s in self.shards]
                lines.append(f"{self.workers} workers, book events per worker "
                             + " / ".join(f"{e:,}" for e in events))
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{k} {v:,}" for k, v in self.errors.items()
                                                   if v))
        if self.output is not None:
            lines.append(f"{self.rows:,} sample rows written to {self.output}")
        elif self.samples:
            lines.append(f"{len(self.samples['ts']):,} sample rows")
        lines.extend(f"warning: {w}" for w in self.warnings)
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


# ---------------------------------------------------------------------------
# Byte-stream codecs (ITCH 5.0, OSE ITCH, JPX CSV)
# ---------------------------------------------------------------------------

class StreamRun:
    """A byte-stream codec's run: source chunks → ``module.Decoder`` → event batches.

    The codec module provides ``Decoder(instruments, *, symbols, name, **options)``
    with ``feed(chunk)`` and ``close()`` (generators of event batches),
    ``messages``, ``events``, ``bytes``, ``counts()`` and ``unknown_types()``;
    and optionally ``TS_ORIGIN`` and ``UTC_OFFSET_NS``.
    """

    kind = "stream"
    packets = False

    def __init__(self, module: Any, source: Any, instruments: Instruments, *, codec: str,
                 symbols: Any, chunk_size: int, compression: str, progress: bool | None,
                 options: dict[str, Any]) -> None:
        self.module = module
        self.source = source
        self.instruments = instruments
        self.codec = codec
        self.symbols = symbols
        self.chunk_size = chunk_size
        self.compression = compression
        self.progress = progress
        self.options = options
        self.ts_origin = getattr(module, "TS_ORIGIN", "")
        self.name = "<source>"
        self.notices: list[Any] = []

    def __enter__(self) -> StreamRun:
        from fastbook.sources import open_source

        self._src = open_source(self.source, chunk_size=self.chunk_size,
                                compression=self.compression)
        try:
            self.name = self._src.name
            self.decoder = self.module.Decoder(self.instruments, symbols=self.symbols,
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
        # a parallel replay's worker passes its own reporter (to the main process's line)
        bar = self.progress if hasattr(self.progress, "update") else \
            Progress(total=src.size, enabled=self.progress)
        head = b""
        try:
            try:
                for chunk in src:
                    if len(head) < _HEAD:
                        head += bytes(chunk[:_HEAD - len(head)])
                    yield from decoder.feed(chunk)
                    bar.update(src.raw_bytes_read, decoder.messages)
                if not src.bytes_out:
                    raise DecodeError(f"{self.name}: the input is empty (0 bytes"
                                      f"{'' if src.compression == 'none' else ' decompressed'}"
                                      f"): there is nothing to replay")
                yield from decoder.close()
            except DecodeError as exc:
                guess = _guess_format(head, self.codec)
                if (guess is None and decoder.messages >= _EARLY) or not src.bytes_out:
                    raise
                raise _with_hint(exc, f"this does not look like {self.format_name()}"
                                      + (f" ({guess})" if guess else "")) from None
        finally:
            bar.close()
        self.head = head

    def format_name(self) -> str:
        """What the codec reads, for messages: ``NASDAQ ITCH 5.0 BinaryFILE``."""
        name = _FORMAT_NAMES.get(self.codec, self.codec)
        framing = getattr(self.decoder, "framing", None)
        if isinstance(framing, str):
            name += " " + _FRAMING_NAMES.get(framing, framing)
        return name

    def warnings(self) -> list[str]:
        """Signs the input is not what the codec reads (most messages of unknown types)."""
        d = self.decoder
        unknown = d.unknown_types()
        if d.messages and unknown * 2 > d.messages:
            guess = _guess_format(getattr(self, "head", b""), self.codec)
            return [f"{self.name}: {unknown:,} of {d.messages:,} messages are of unknown "
                    f"types: this does not look like {self.format_name()}"
                    + (f" ({guess})" if guess else "")]
        return []

    def failed(self, exc: UpdateError, events: np.ndarray) -> BaseException:
        """The failure named by the stream and its message number."""
        number = int(events["sequence"][exc.index])
        detail = str(exc).split(": ", 1)[-1]
        return UpdateError(f"{self.name}: message {number}: {detail}", number)

    def result_fields(self) -> dict[str, Any]:
        d = self.decoder
        return {"counts": d.counts(), "messages": d.messages, "events": d.events,
                "bytes_": d.bytes, "unknown_types": d.unknown_types(),
                "ts_origin": self.ts_origin}


#: Bytes of a stream's head kept to say what it looks like when it does not decode.
_HEAD = 4096
#: A decode error before this many messages gets a hint on what the input looks like.
_EARLY = 1000
_FORMAT_NAMES = {"itch50": "NASDAQ TotalView-ITCH 5.0", "ose_itch": "OSE ITCH (J-GATE)",
                 "jpx_csv": "JPX CSV"}
_FRAMING_NAMES = {"binaryfile": "BinaryFILE", "moldudp64": "MoldUDP64",
                  "soupbintcp": "SoupBinTCP"}
_TEXT_CODECS = ("jpx_csv",)


def _guess_format(head: bytes, codec: str) -> str | None:
    """What ``head`` looks like when it is plainly not ``codec``'s format, or None."""
    from fastbook import capture

    if not head:
        return None
    fmt = capture._sniff_head(head)
    if fmt is not None:
        return (f"it is a {fmt} capture of an L2 feed: replay it with that feed's codec, "
                f"e.g. --codec binance-spot (`fastbook codecs` lists them)")
    if codec in _TEXT_CODECS:
        return None
    text = head[:512]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in text)
    if printable == len(text):
        first = text.split(b"\n", 1)[0][:40].decode("ascii", "replace")
        if head.lstrip()[:1] in (b"{", b"["):
            return f"it is JSON text: {first!r}"
        if "," in first:
            return (f"it is CSV text: {first!r} (LOBSTER files are read by "
                    f"fastbook.codecs.lobster, JPX CSV by --codec jpx-csv)")
        return f"it is text: {first!r}"
    return None


# ---------------------------------------------------------------------------
# Exchange L2 feeds replayed from captures
# ---------------------------------------------------------------------------

def load_instruments(venue: str, source: Any) -> list[Any]:
    """Instruments of ``venue`` from a metadata document or a capture of REST responses.

    ``source`` is a path or bytes: a JSON document (exchangeInfo, products,
    AssetPairs, instruments; plain, gzip or zstd), or a capture (fastbook or
    cryptofeed) whose REST responses are such documents. Uses
    :func:`fastbook.codecs.instruments.load_instruments`.
    """
    from fastbook import capture
    from fastbook.codecs import instruments as meta
    from fastbook.sources import open_source

    if capture.sniff(source) is not None:
        out: list[Any] = []
        for rec in capture.read_capture(source):
            if rec.kind == capture.REST:
                out.extend(meta.load_instruments(venue, rec.payload))
        if not out:
            raise ValueError(f"{capture.source_names([source])[0]}: no REST response with "
                             f"{venue} instruments in this capture")
        return out
    with open_source(source) as src:
        data = b"".join(bytes(chunk) for chunk in src)
    return meta.load_instruments(venue, data)


def _clock(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class ReplayNotice(NamedTuple):
    """A feed notice seen during a replay, with where it came from.

    (A ``NamedTuple`` rather than a dataclass: importing fastbook then compiles no code.)
    """

    recv_ns: int            # receive time of the record that caused it
    source: str             # the capture it came from, and "line" or "record"
    record: int             # record number (fastbook capture) or line (cryptofeed file)
    notice: Any             # the feed's fastbook.codecs._l2feed.Notice

    @property
    def kind(self) -> str:
        return str(self.notice.kind)

    @property
    def symbol(self) -> str:
        return str(self.notice.symbol)

    @property
    def reason(self) -> str:
        return str(self.notice.reason)

    def __str__(self) -> str:
        n = self.notice
        text = f"{_clock(self.recv_ns)} {n.venue} {n.symbol} {n.kind}"
        if n.reason:
            text += f" ({n.reason})"
        if n.sequence is not None:
            text += f" seq {n.sequence}"
        if n.detail:
            text += f": {n.detail}"
        return text + f" [{self.source} {self.record}]"


#: Hosts of venues' websocket and REST endpoints, and the codec of each.
_HOST_CODECS = {
    "stream.binance.com": "binance-spot", "api.binance.com": "binance-spot",
    "data-stream.binance.vision": "binance-spot",
    "stream.binance.us": "binance-us", "api.binance.us": "binance-us",
    "fstream.binance.com": "binance-usdm", "fapi.binance.com": "binance-usdm",
    "dstream.binance.com": "binance-coinm", "dapi.binance.com": "binance-coinm",
    "ws-feed.pro.coinbase.com": "coinbase-exchange",
    "ws-feed.exchange.coinbase.com": "coinbase-exchange",
    "advanced-trade-ws.coinbase.com": "coinbase-advanced",
    "ws.kraken.com": "kraken-v1", "ws.okx.com": "okx", "wsaws.okx.com": "okx",
    "stream.bybit.com": "bybit",
}


def url_codec(url: str) -> str | None:
    """The L2 codec whose venue ``url`` (a websocket or REST URL in a capture) belongs to,
    or None for a host fastbook does not know."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "ws.kraken.com" and parts.path.startswith("/v2"):
        return "kraken-v2"
    return _HOST_CODECS.get(host)


def _some(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names) - n:,} more)" if len(names) > n else "")


def _check_symbols(asked: list[str], found: Iterable[str], known: Iterable[str],
                   where: str) -> list[str]:
    """Warnings for the ``symbols=`` not found; a ReplayError when none of them is."""
    import difflib

    found = set(found)
    missing = [s for s in asked if s not in found]
    if not missing:
        return []
    known = sorted(set(known))
    folded = {k.lower(): k for k in known}
    parts = []
    for s in missing:
        close = [folded[s.lower()]] if s.lower() in folded else \
            difflib.get_close_matches(s, known, n=3, cutoff=0.5)
        parts.append(f"{s!r}" + (f" (closest: {', '.join(close)})" if close else ""))
    text = f"{where} has no symbol {', '.join(parts)}"
    if not any("closest" in p for p in parts):
        text += (f"; it names {_some(known)}" if known else "; it names no symbols at all")
    if len(missing) == len(asked):
        from fastbook.errors import ReplayError

        raise ReplayError(f"{text}: no books were built (symbols= takes the feed's "
                          f"own spelling and case)")
    return [text]


def _reword(exc: DecodeError, message: str) -> DecodeError:
    """The same error (type and attributes) with another message."""
    new = Exception.__new__(type(exc))
    new.args = (message,)
    new.__dict__.update(exc.__dict__)
    return new


def _locate(exc: DecodeError, where: str) -> DecodeError:
    """The same error with ``where`` in front of its message."""
    return _reword(exc, f"{where}: {exc}")


def _with_hint(exc: DecodeError, hint: str) -> DecodeError:
    """The same error with ``hint`` after its message."""
    return _reword(exc, f"{exc}; {hint}")


class L2Run:
    """An L2 feed's run: captures → ``feed_class(record=True)`` → event batches.

    Received websocket messages go to ``feed.feed(payload, recv_ns)``, REST
    depth responses to ``feed.snapshot(symbol, body, recv_ns)`` (the symbol is
    the request URL's ``symbol`` parameter, :func:`fastbook.capture.rest_symbol`),
    every other record is counted. Each symbol the feed creates is announced to
    the driver's :class:`Instruments` as an L2 instrument, in the feed's order,
    with the feed's scales. A batch holds the events the feed recorded over
    whole records, with the last event of each record flagged
    ``LAST_IN_PACKET`` (a record is one message: the driver samples per
    message). The feed's notices are kept with the record that caused them.
    """

    kind = "l2"
    packets = True
    ts_origin = "epoch"

    def __init__(self, feed_class: Any, source: Any, instruments: Instruments, *, codec: str,
                 symbols: Iterable[str] | None = None, on_error: str = "raise",
                 instruments_meta: Any = None, book_depth: int | None = None,
                 verify: bool = True, progress: bool | None = None,
                 batch_events: int = 1 << 16, **options: Any) -> None:
        from fastbook import capture
        from fastbook.sources import peekable

        # stdin (and any stream) is peeked into, not read, when its format is sniffed
        self.sources = [peekable(s) for s in capture.as_sources(source)]
        self.source_names = capture.source_names(self.sources)
        self.name = ", ".join(self.source_names)
        self.codec = codec
        self.instruments = instruments
        self.verify = verify
        self.progress = progress
        self.batch_events = batch_events
        if isinstance(instruments_meta, (str, os.PathLike)):
            instruments_meta = load_instruments(feed_class.venue, instruments_meta)
        self.feed = feed_class(instruments_meta, depth=book_depth, on_error=on_error,
                               record=True, symbols=symbol_filter(symbols),
                               **options)
        self.venue = self.feed.venue
        self._base = len(instruments)
        self._announced = 0
        self.records = dict.fromkeys(capture.KINDS, 0)
        self.rest_snapshots = 0
        self.rest_other = 0
        self.messages = 0
        self.events = 0
        self.bytes = 0
        self.notices: list[ReplayNotice] = []
        self.notice_counts: dict[str, int] = {}
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.urls: list[str] = []                    # connections opened, REST requests
        self.rest_symbols: set[str] = set()          # symbols of REST snapshots, all of them
        self._requested: dict[str, str] = {}         # symbol -> the snapshot the feed asked for
        self._snapshot_for: set[str] = set()         # symbols a REST snapshot went to
        self._resyncs: dict[str, dict[str, int]] = {}

    def __enter__(self) -> L2Run:
        for source, name in zip(self.sources, self.source_names, strict=True):
            empty = (os.path.isfile(source) and os.path.getsize(source) == 0
                     if isinstance(source, (str, os.PathLike)) else
                     isinstance(source, (bytes, bytearray, memoryview)) and not len(source))
            if empty:
                raise DecodeError(f"{name}: the capture is empty (0 bytes): there is nothing "
                                  f"to replay")
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[np.ndarray]:
        from fastbook import capture
        from fastbook.sources import Progress

        feed = self.feed
        buffer = feed.events
        records = self.records
        rest_symbol_of = getattr(feed, "rest_symbol", None) or capture.rest_symbol
        names = self.source_names
        wanted = feed.wanted
        # cryptofeed files number lines, fastbook captures records
        units = ["line" if capture.sniff(x) == "cryptofeed" else "record" for x in self.sources]
        batch = self.batch_events
        ends: list[int] = []
        last = 0
        nbytes = 0
        first_ns = last_ns = None
        bar = Progress(None, unit_name="records", enabled=self.progress)
        n = 0
        try:
            for recv_ns, kind, _conn, url, payload, number, _flags, src in capture.merge_raw(
                    self.sources, verify=self.verify):
                n += 1
                nbytes += len(payload)
                if first_ns is None:
                    first_ns = recv_ns
                last_ns = recv_ns
                records[kind] += 1
                try:
                    if kind == capture.RECEIVED:
                        notices = feed.feed(payload, recv_ns)
                    elif kind == capture.REST:
                        symbol = rest_symbol_of(url)
                        if symbol is not None:
                            self.rest_symbols.add(symbol)
                        if len(self.urls) < 64:
                            self.urls.append(url)
                        if symbol is None or (wanted is not None and symbol not in wanted):
                            self.rest_other += 1
                            continue
                        self.rest_snapshots += 1
                        self._snapshot_for.add(symbol)
                        notices = feed.snapshot(symbol, payload, recv_ns)
                    else:
                        if kind == capture.OPEN and len(self.urls) < 64:
                            self.urls.append(url)
                        continue
                except DecodeError as exc:
                    raise _locate(exc, f"{names[src]}: {units[src]} {number}") from None
                self.messages += 1
                if notices:
                    self._keep(notices, recv_ns, f"{names[src]} {units[src]}", number)
                k = len(buffer)
                if k != last:
                    ends.append(k)
                    last = k
                    if k >= batch:
                        yield self._batch(ends)
                        ends = []
                        last = 0
                if not n & 0x3FFF:
                    bar.update(0, n)
            if last:
                yield self._batch(ends)
        finally:
            bar.close()
            self.bytes = nbytes
            self.first_ns, self.last_ns = first_ns, last_ns

    def _batch(self, ends: list[int]) -> np.ndarray:
        self._announce()
        events = self.feed.take_events()
        if self._base:
            events["instrument"] += np.uint32(self._base)
        # each record's events end a packet: rows are taken at message ends only
        events["flags"][np.asarray(ends, dtype=np.int64) - 1] |= np.uint16(_LAST_IN_PACKET)
        self.events += len(events)
        return events

    def _announce(self) -> None:
        """Announce an L2 instrument for each symbol the feed has created since."""
        symbols = self.feed.symbols
        for native in symbols[:self._announced]:
            # a feed may settle a symbol's scales late (Kraken v1 learns them from the wire):
            # events at other scales than the BookSet's book would be silently wrong
            book = self.feed.book(native)
            meta = self.instruments.instrument(self._base + self.feed.symbol_state(native).id)
            if (meta["price_decimals"], meta["qty_decimals"]) != (book.price_decimals,
                                                                    book.qty_decimals):
                raise FastbookError(
                    f"{self.venue} {native}: the feed changed the book's scales from "
                    f"{meta['price_decimals']}/{meta['qty_decimals']} to "
                    f"{book.price_decimals}/{book.qty_decimals} decimals after the replay "
                    f"registered the instrument")
        for native in symbols[self._announced:]:
            s = self.feed.symbol_state(native)
            inst = s.instrument
            i = self.instruments.announce(
                native, kind="l2", venue=self.venue, price_decimals=s.book.price_decimals,
                qty_decimals=s.book.qty_decimals, tick_size=max(1, int(inst.tick)),
                lot_size=max(1, int(inst.lot)), reuse=False)
            if i != self._base + s.id:
                raise FastbookError(f"{self.venue}: instrument {native!r} got BookSet id {i}, "
                                    f"expected {self._base + s.id} (the feed's id + "
                                    f"{self._base})")
            self._announced += 1

    def _keep(self, notices: list[Any], recv_ns: int, source: str, number: int) -> None:
        counts = self.notice_counts
        for n in notices:
            if n.kind == "request_snapshot":
                self._requested.setdefault(n.symbol, n.detail or "")
            elif n.kind == "resync":
                why = self._resyncs.setdefault(n.symbol, {})
                why[n.reason] = why.get(n.reason, 0) + 1
            key = f"{n.kind} ({n.reason})" if n.reason else str(n.kind)
            counts[key] = counts.get(key, 0) + 1
            if len(self.notices) < MAX_NOTICES:
                self.notices.append(ReplayNotice(recv_ns, source, number, n))

    def failed(self, exc: UpdateError, events: np.ndarray) -> BaseException:
        return UpdateError(f"{self.name}: the feed's events do not apply (a codec bug?): {exc}",
                           exc.index)

    def known_symbols(self) -> set[str]:
        """Symbols the captures name: the feed's, REST snapshots', streams' in the URLs."""
        out = set(self.feed.symbols) | set(self._requested) | self.rest_symbols
        out |= set(self.feed.instruments)
        for url in self.urls:
            for stream in parse_qs(urlsplit(url).query).get("streams", [""])[0].split("/"):
                name = stream.split("@", 1)[0]
                if name:
                    out.add(name.upper())
        return out

    def suggested_codec(self) -> tuple[str, str] | None:
        """(codec, url) when the captures' URLs are another codec's venue than this one's."""
        for url in self.urls:
            codec = url_codec(url)
            if codec is not None and codec != self.codec and codec != self.venue:
                return codec, url
        return None

    def warnings(self) -> list[str]:
        """Why books never synced, and what would fix it."""
        out: list[str] = []
        feed = self.feed
        hint = self.suggested_codec()
        if hint is not None:
            url = hint[1] if len(hint[1]) <= 60 else hint[1][:57] + "..."
            out.append(f"the captures were recorded from {url}, which is {hint[0]}'s, not "
                       f"{self.venue}'s: try --codec {hint[0]}")
        seen = [*feed.symbols, *(s for s in self._requested if s not in feed.symbols)]
        never = [s for s in seen if not feed.is_synced(s)]
        if not never:
            return out
        no_rest = [s for s in never if s in self._requested and s not in self._snapshot_for
                   and not self._resyncs.get(s)]
        shown = _some(no_rest)
        if no_rest:
            asked = self._requested[no_rest[0]]
            out.append(
                f"{len(no_rest):,} book(s) never synced ({shown}): no REST depth snapshot for "
                f"them in the captures (the feed asked for one{': ' + asked if asked else ''})"
                f"; add the `*.http.*` capture recorded with the websocket one (cryptofeed "
                f"writes REST responses there), or a capture holding the REST records")
        rest = [s for s in never if s not in no_rest]
        if rest:
            why: dict[str, int] = {}
            for s in rest:
                for k, v in self._resyncs.get(s, {}).items():
                    why[k] = why.get(k, 0) + v
            because = (", ".join(f"{k} {v:,}" for k, v in sorted(why.items())) if why else
                       "no snapshot arrived")
            fix = f"; try --codec {hint[0]}" if hint is not None else ""
            out.append(f"{len(rest):,} book(s) not synced at the end ({_some(rest)}): "
                       f"resyncs {because}{fix}" if why else
                       f"{len(rest):,} book(s) never synced ({_some(rest)}): {because} (does "
                       f"the capture start after the subscription?){fix}")
        return out

    def counts(self) -> dict[str, int]:
        """The feed's counters (all symbols) and the records by kind."""
        out = dict(self.feed.counts())
        out["records"] = sum(self.records.values())
        for k, v in self.records.items():
            out[f"records_{k}"] = v
        out["rest_snapshots"] = self.rest_snapshots
        out["rest_other"] = self.rest_other
        return out

    def result_fields(self) -> dict[str, Any]:
        return {"counts": self.counts(), "messages": self.messages, "events": self.events,
                "bytes_": self.bytes, "unknown_types": 0, "notices": self.notices,
                "notice_counts": dict(self.notice_counts), "feed": self.feed,
                "ts_origin": self.ts_origin}


#: the options of a consolidated replay that are not ``replay``'s own
_CONSOLIDATE_OPTIONS = ("quote_aliases", "stale_ns", "fees", "fixed_cost", "min_profit_bps",
                        "max_age_ns", "refresh_ns", "health")


def resolve_codec(source: Any, codec: Any) -> tuple[str, Any, Any]:
    """``(kind, module, name)`` of the codec that reads ``source`` (``replay``'s ``codec=``):
    a live recording, an ``L2Feed`` subclass, or a codec by name (default ``itch50``)."""
    from fastbook import codecs
    from fastbook.codecs._l2feed import L2Feed
    from fastbook.live._record import check_codec, recording_meta, recording_venues

    if recording_meta(source) is not None:
        # a live recording: every record goes through the live session (connection ids,
        # standby connections, per-connection sequence numbers), not through one codec
        venues = recording_venues(source)
        check_codec(codec, venues, os.fspath(source))
        kind, module, codec = "live", None, ",".join(venues)
    elif isinstance(codec, type) and issubclass(codec, L2Feed):
        # an L2Feed subclass of one's own (a venue fastbook has no codec for)
        kind, module, codec = "l2", codec, codec.venue or codec.__name__
    else:
        codec = codec_name("itch50" if codec is None else codec)
        kind = codecs.kind(codec)
        module = codecs.load(codec)
    return kind, module, codec


def open_run(kind: str, module: Any, codec: Any, source: Any, registered: Instruments, *,
             symbols: Any, on_error: str, instruments: Any, book_depth: int | None,
             verify: bool, progress: bool | None, chunk_size: int, compression: str,
             codec_options: dict[str, Any], lobster: Any = None) -> tuple[Any, Any]:
    """The codec's :class:`Run` over ``source`` (``resolve_codec``'s kind and module), and
    the live session's run when ``source`` is a live recording (else None)."""
    run: StreamRun | L2Run | SessionRun
    live_run: SessionRun | None = None
    if kind == "live":
        from fastbook.live._record import SessionRun

        if lobster is not None:
            raise ValueError(f"LOBSTER output needs an order-by-order codec such as itch50; "
                             f"{os.fspath(source)!r} is a live recording of L2 feeds")
        until_ns = codec_options.pop("until_ns", None)
        if codec_options or instruments is not None:
            given = sorted(codec_options) + (["instruments"] if instruments is not None else [])
            raise ValueError(f"{', '.join(given)}: not options of a live recording's replay "
                             f"(its codecs are set up as the live run's)")
        run = live_run = SessionRun(source, registered, symbols=symbols, on_error=on_error,
                                    book_depth=book_depth, verify=verify, until_ns=until_ns,
                                    progress=progress)
    elif kind == "l2":
        if lobster is not None:
            raise ValueError(f"LOBSTER output needs an order-by-order codec such as itch50; "
                             f"{codec!r} is an L2 feed")
        run = L2Run(module, source, registered, codec=codec, symbols=symbols,
                    on_error=on_error, instruments_meta=instruments, book_depth=book_depth,
                    verify=verify, progress=progress, **codec_options)
    else:
        for name, value in (("instruments", instruments), ("book_depth", book_depth)):
            if value is not None:
                raise ValueError(f"{name}= is for L2 feed codecs; {codec!r} is not one")
        run = StreamRun(module, source, registered, codec=codec, symbols=symbols,
                        chunk_size=chunk_size, compression=compression, progress=progress,
                        options=codec_options)
    return run, live_run


def _replay_consolidated(source: Any, codec: Any, consolidate: Any, *, every: Any,
                         bookset: Any, lobster: Any, options: dict[str, Any],
                         **common: Any) -> Any:
    from fastbook._consolrun import replay_consolidated

    for name, value in (("every", every), ("bookset", bookset), ("lobster", lobster)):
        if value is not None:
            raise ValueError(f"{name}= is not an option of a consolidated replay (its rows "
                             f"are the consolidated BBO changes)")
    unknown = sorted(set(options) - set(_CONSOLIDATE_OPTIONS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not options of a consolidated replay "
                         f"(it takes {', '.join(_CONSOLIDATE_OPTIONS)})")
    common.pop("depth", None)
    return replay_consolidated(source, codec, consolidate=consolidate, **common, **options)


@overload
def replay(source: Any, codec: Any = None, *, symbols: Iterable[str] | str | None = None,
           depth: int = 10, every: Any = None, on_error: str = "raise",
           output: str | os.PathLike[str] | None = None, row_group_size: int = 1 << 20,
           chunk_size: int = 4 << 20, compression: str = "auto", progress: bool | None = None,
           bookset: Any = None, lobster: str | os.PathLike[str] | None = None,
           instruments: Any = None, book_depth: int | None = None, verify: bool = True,
           prices: str = "int", quantities: str = "int", timestamps: str = "int",
           date: Any = None, missing: str = "zero", reason: str = "bits",
           features: Iterable[Any] | str | None = None,
           trades: bool | str | os.PathLike[str] = False, workers: int | str | None = None,
           map_books: Callable[[ReplayResult], Mapping[str, Any] | None] | None = None,
           cancel: Any = None,
           consolidate: Literal[False] | None = None,
           archive: Any = None, checkpoint: Any = "1s",
           **codec_options: Any) -> ReplayResult: ...


@overload
def replay(source: Any, codec: Any = None, *,
           consolidate: Literal[True] | Sequence[str] | Mapping[str, Sequence[str]],
           **options: Any) -> ConsolidatedResult: ...


def replay(source: Any, codec: Any = None, *, symbols: Iterable[str] | str | None = None,
           depth: int = 10, every: Any = None, on_error: str = "raise",
           output: str | os.PathLike[str] | None = None, row_group_size: int = 1 << 20,
           chunk_size: int = 4 << 20, compression: str = "auto", progress: bool | None = None,
           bookset: Any = None, lobster: str | os.PathLike[str] | None = None,
           instruments: Any = None, book_depth: int | None = None, verify: bool = True,
           prices: str = "int", quantities: str = "int", timestamps: str = "int",
           date: Any = None, missing: str = "zero", reason: str = "bits",
           features: Iterable[Any] | str | None = None,
           trades: bool | str | os.PathLike[str] = False, workers: int | str | None = None,
           map_books: Callable[[ReplayResult], Mapping[str, Any] | None] | None = None,
           cancel: Any = None,
           consolidate: Any = None, archive: Any = None, checkpoint: Any = "1s",
           **codec_options: Any) -> ReplayResult | ConsolidatedResult:
    """Replay a recorded feed into books, taking top-of-book samples on the way.

    Parameters
    ----------
    source : path, ``"-"`` (stdin), bytes-like or binary file object; or a list of captures
        For a stream codec (ITCH), the feed file; compression (gzip, zstd) is
        detected from the content. For an L2 feed codec, a capture (fastbook
        or cryptofeed format, see :mod:`fastbook.capture`) or a list of
        captures merged in receive-time order (a Binance websocket capture and
        its REST snapshots).
        A live recording (a capture file or a directory of rotated parts written
        by ``fb.live(..., record=...)``, its metadata saying ``recorder:
        fastbook.live``) replays through the live session: see "Live
        recordings" in ``docs/captures.md``.
    codec : str, optional
        A replay codec (:func:`fastbook.codecs.available`): ``"itch50"`` (the
        default), or an L2 feed such as ``"binance-spot"``, ``"coinbase-exchange"``,
        ``"kraken-v1"``, ``"okx"``; or an ``L2Feed`` subclass. Not needed for a
        live recording (its open records name the venues); one that names
        another venue than the recording's is a ValueError.
    symbols : iterable of str or comma-separated str, optional
        Only these symbols get books (others are decoded and dropped). L2
        feeds: the venue's native symbols (``"BTCUSDT"``, ``"XBT/USD"``).
    depth : int
        Levels per side in each sample row.
    every : str or int, optional
        The sampling rule (see :func:`parse_every`); no samples when omitted.
        L2 feeds apply it per venue message, never inside one (see
        ``Sampler(packets=True)``, :mod:`fastbook.sampling`).
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
        path is read by :func:`load_instruments` (the
        venue's metadata document, or a capture of its REST response).
    book_depth : int, optional
        L2 feeds: the subscribed book depth, for venues that truncate to it
        (Kraken); passed to the feed as ``depth=``.
    verify : bool
        L2 feeds: check each fastbook capture record's CRC32.
    prices, quantities : {"int", "float"}
        How ``output`` (and by default ``to_pandas()`` etc.) hold prices and
        quantities: exact fixed-point integers, or floats scaled by each
        instrument's decimals.
    timestamps : {"int", "datetime"}
        ``ts`` as int64 ns or as datetimes (UTC for feeds timed from the
        epoch; for ITCH, local times on ``date``).
    date : datetime.date or "YYYY-MM-DD", optional
        The trading date of a feed timed from midnight (ITCH 5.0); by default
        the date in the file name when it holds one (:func:`fastbook.writers.date_from_name`).
    missing : {"zero", "nan"}
        A missing level as 0 / 0 or as null (NaN in pandas, empty in CSV).
    reason : {"bits", "names"}
        The ``reason`` column as its bits or as the rules' names (``"every|bbo"``).
    features : list of str, or str, optional
        Feature columns added to every sample row, computed in the apply loop
        (:mod:`fastbook.features`, ``docs/features.md``): ``["mid", "spread",
        "microprice", "imbalance_5", "ofi_5", "trade_flow", "vpin_1000_50"]``.
        Needs ``every=``.
    trades : bool or path, optional
        Keep every trade print (ITCH executions and trade messages, the venues'
        trades in L2 captures) with its aggressor side: ``True`` in
        ``result.trades``, a ``.parquet`` / ``.csv`` path written there.
    workers : int or "auto", optional
        Replay in this many processes, instruments sharded across them
        (:mod:`fastbook.parallel`): the same result as one process, on every
        core. Order-by-order stream codecs (ITCH 5.0, OSE, JPX CSV); not with
        ``bookset=``. ``"auto"``: one per core.
    map_books : callable, optional
        ``map_books(result) -> {symbol: value}``, called once per worker on its
        shard's result (once on the whole result without ``workers``); the
        values are in ``result.mapped``, in instrument order. With workers it
        must be a module-level function (it is pickled to them).
    cancel : threading.Event, optional
        Set it (from another thread) to stop the replay between batches:
        :class:`fastbook.parallel.Cancelled` is raised and no output file is left
        looking finished.
    consolidate : True, list of symbols or {symbol: ["venue:native", ...]}, optional
        Several venues' captures (``source`` a list, each capture's codec read
        from its URLs or given as ``codec="a,b,c"``) replayed together, merged
        by receive time, into consolidated cross-venue views: returns a
        ``ConsolidatedResult`` (consolidated-BBO changes, arbitrage and health
        tables, ``to_parquet``) instead of a ``ReplayResult``. It also takes
        ``quote_aliases``, ``stale_ns``, ``fees``, ``fixed_cost``,
        ``min_profit_bps``, ``max_age_ns``, ``refresh_ns`` and ``health``; see
        ``docs/consolidated.md``, "Live feeds and replays".
    archive : path or fastbook.archive.Target, optional
        Also write an archive of the replay (:mod:`fastbook.archive`, ``docs/archive.md``):
        every event plus a checkpoint of each book every ``checkpoint`` (a time such
        as ``"1s"``, or a number of events), for ``fastbook.archive.open(path).book_at``.
        Written to ``path + ".partial"`` and renamed when the replay succeeds.
    **codec_options
        Passed to the codec's ``Decoder`` (for ITCH: ``framing``, ``venue``)
        or to the L2 feed's constructor. A live recording takes only
        ``until_ns`` (records received later are left out); its ``book_depth``
        is the recording's (metadata ``depth``) unless given.
    """
    from fastbook.l3 import BookSet
    from fastbook.sampling import Sampler

    if consolidate is not None and consolidate is not False:
        if archive is not None:
            raise ValueError("archive= archives one replay's books; it does not take "
                             "consolidate= (archive each venue's captures on their own)")
        given = [name for name, value in (("workers", workers not in (None, 1)),
                                          ("map_books", map_books is not None),
                                          ("cancel", cancel is not None)) if value]
        if given:
            raise ValueError(f"{', '.join(given)}: not options of a consolidated replay")
        return _replay_consolidated(source, codec, consolidate, symbols=symbols, every=every,
                                    depth=depth, on_error=on_error, output=output,
                                    progress=progress, instruments=instruments,
                                    book_depth=book_depth, verify=verify,
                                    bookset=bookset, lobster=lobster, options=codec_options)

    kind, module, codec = resolve_codec(source, codec)
    if isinstance(symbols, str):
        symbols = [s.strip() for s in symbols.split(",") if s.strip()]
    elif symbols is not None and not isinstance(symbols, Shard):
        symbols = list(symbols)
    if isinstance(symbols, list) and not symbols:
        raise ValueError("symbols= names no symbol: omit it for every symbol")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    # fail before the work: where the output goes is checked before a byte is decoded
    if output is not None:
        check_output(output, "output")
    if lobster is not None:
        check_directory(lobster, "lobster")
    # raise: stop at the first failing event with the events before it applied. A batch
    # here is only a buffer's worth of the stream, so undoing one (BookSet's raise mode,
    # with its undo journal) would leave the books at an arbitrary earlier point.
    books = BookSet(on_error="stop" if on_error == "raise" else on_error) \
        if bookset is None else bookset
    rules = parse_every(every) if every is not None else None
    if features is not None and features != [] and rules is None:
        raise ValueError("features= are columns of the samples: give a sampling rule (every=)")
    if not isinstance(trades, bool):
        check_output(trades, "trades")
        if output_format(trades) not in ("parquet", "csv"):
            raise ValueError(f"trades= is written to .parquet or .csv, not {os.fspath(trades)!r}")
    registered = Instruments(books)
    run, live_run = open_run(kind, module, codec, source, registered, symbols=symbols,
                             on_error=on_error, instruments=instruments,
                             book_depth=book_depth, verify=verify, progress=progress,
                             chunk_size=chunk_size, compression=compression,
                             codec_options=codec_options, lobster=lobster)
    ts_origin = run.ts_origin
    if date is None and ts_origin == "midnight" and isinstance(source, (str, os.PathLike)) \
            and os.fspath(source) != "-":
        date = date_from_name(source)
    # every output option is checked before the work starts
    options = OutputOptions(prices=prices, quantities=quantities, timestamps=timestamps,
                            date=date, missing=missing, reason=reason)
    options.check(ts_origin, str(codec))
    if workers is not None and workers != 1:
        from fastbook.parallel import worker_count

        n_workers = worker_count(workers)
        if n_workers > 1:
            if kind != "stream":
                raise ValueError(f"workers= shards order-by-order streams (itch50, ose_itch, "
                                 f"jpx_csv) by instrument; {codec!r} replays in one process")
            if bookset is not None:
                raise ValueError("workers= builds new books in the workers: it cannot "
                                 "continue a bookset=")
            if isinstance(symbols, Shard):
                raise ValueError("workers= makes the shards itself: give symbols= as names")
            if archive is not None:
                raise ValueError("archive= is written by one process: replay without "
                                 "workers= to archive a day")
            return _replay_workers(
                source, str(codec), module, workers=n_workers, symbols=symbols,
                depth=depth, rules=rules, every=every, on_error=on_error, output=output,
                row_group_size=row_group_size, chunk_size=chunk_size,
                compression=compression, progress=progress, lobster=lobster,
                features=features, trades=trades, options=options, ts_origin=ts_origin,
                map_books=map_books, cancel=cancel, codec_options=codec_options)
    # L2 feeds: one row per venue message at most, never from inside one
    sampler = Sampler(depth, capacity=1 << 16, packets=run.packets, features=features,
                      trades=trades is not False, **(rules or {})) \
        if rules or trades is not False else None
    # a row group holds row_group_size rows, but at most about _GROUP_BYTES of samples, so
    # deep samples (depth 50: 1.6 KB a row) keep memory bounded too
    group_rows = max(1024, min(row_group_size, _GROUP_BYTES // _row_bytes(depth)))
    writer = None
    if output is not None:
        if rules is None:
            raise ValueError("output= needs a sampling rule (every=)")
        writer = SampleWriter(output, group_rows, codec, ts_origin, options)
    samples: dict[str, np.ndarray] = {}
    lob = LobsterFiles(lobster, depth, ts_origin=ts_origin,
                       utc_offset_ns=getattr(module, "UTC_OFFSET_NS", 0), on_error=on_error) \
        if lobster is not None else None

    def flush(force: bool) -> None:
        # row groups bound the memory of a run that writes its samples out; a run that
        # keeps them lets the sampler grow (in place) and takes them once, at the end
        if sampler is None or rules is None or \
                (not force and (writer is None or len(sampler) < group_rows)):
            return
        cols = sampler.take()
        if writer is not None:
            writer.write(cols, instruments_of(books))
        elif len(cols["ts"]):
            samples.update(cols)    # once: without a writer only the final flush takes

    archiver = None
    if archive is not None:
        from fastbook.archive import ArchiveWriter

        archiver = ArchiveWriter.create(archive, checkpoint=checkpoint,
                                        meta={"codec": str(codec), "ts_origin": ts_origin})
    t0 = time.perf_counter()
    failed = True
    try:
        drive(run if archiver is None else archiver.wrap(run, books), books, sampler=sampler,
              consumers=() if lob is None else (lob.write,), flush=flush, cancel=cancel)
        failed = False
    finally:
        if lob is not None:
            lob.close(failed=failed)
        if failed and writer is not None:
            writer.abort()
        if archiver is not None:
            archiver.abort() if failed else archiver.close()
    if writer is not None:
        writer.close(instruments_of(books))
    trade_table: dict[str, np.ndarray] = {}
    if sampler is not None and trades is not False:
        trade_table = sampler.take_trades()
        if trades is not True:
            write_trades(trades, trade_table, instruments_of(books), options, codec=codec,
                         ts_origin=ts_origin)
    seconds = time.perf_counter() - t0
    fields = run.result_fields()
    warned, crossed = _after(run, books, symbols, lob)
    result = ReplayResult(
        books=books, samples=samples, seconds=seconds, codec=codec, kind=kind,
        output=None if writer is None else writer.path, rows=0 if writer is None else writer.rows,
        options=options, warnings=warned, crossed=crossed, **fields)
    result.trades = trade_table
    result._run = run
    result._lobster_skipped = 0 if lob is None else lob.skipped
    result._lobster_paths = [] if lob is None else list(lob._paths)
    if map_books is not None:
        result.mapped = _mapped(map_books, result, books)
    if live_run is not None:
        result.session = live_run.session
        result.book_stats = live_run.book_stats()
    return result


def _mapped(map_books: Any, result: ReplayResult, books: Any) -> dict[str, Any] | None:
    """``map_books(result)`` checked and ordered by instrument (``replay(map_books=)``)."""
    got = map_books(result)
    if got is None:
        return None
    if not isinstance(got, Mapping):
        raise TypeError(f"map_books must return a mapping {{symbol: value}} or None, "
                        f"got {type(got).__name__}")
    found = dict(got)
    order = [books.instrument(i)["symbol"] for i in range(len(books))]
    out = {sym: found.pop(sym) for sym in order if sym in found}
    out.update(sorted(found.items()))
    return out


def _replay_workers(source: Any, codec: str, module: Any, *, workers: int,
                    symbols: list[str] | None, depth: int, rules: dict[str, Any] | None,
                    every: Any, on_error: str, output: Any, row_group_size: int,
                    chunk_size: int, compression: str, progress: bool | None, lobster: Any,
                    features: Any, trades: Any, options: OutputOptions, ts_origin: str,
                    map_books: Any, cancel: Any,
                    codec_options: dict[str, Any]) -> ReplayResult:
    """:func:`replay` with ``workers`` > 1: the shards' results merged into one."""
    from fastbook import parallel

    t0 = time.perf_counter()
    shard_options = dict(codec_options, depth=depth, every=every, on_error=on_error,
                         features=features, trades=trades is not False,
                         lobster=lobster, chunk_size=chunk_size)
    merged = parallel.replay_parallel(
        source, codec, module, workers=workers, symbols=symbols, options=shard_options,
        chunk_size=chunk_size, compression=compression, progress=progress,
        map_books=map_books, cancel=cancel)
    books = merged["books"]
    samples: dict[str, np.ndarray] = {}
    trade_table: dict[str, np.ndarray] = {}
    writer = None
    try:
        rows = parallel.Rows(merged["samples"], merged["remap"])
        if output is not None and rules is not None:
            group_rows = max(1024, min(row_group_size, _GROUP_BYTES // _row_bytes(depth)))
            writer = SampleWriter(output, group_rows, codec, ts_origin, options)
            try:
                for cols in rows.chunks(group_rows):
                    writer.write(cols, instruments_of(books))
                writer.close(instruments_of(books))
            except BaseException:
                writer.abort()
                raise
        elif len(rows):
            samples = rows.take()
        rows.close()
        if trades is not False:
            trade_rows = parallel.Rows(merged["trades"], merged["remap"])
            trade_table = trade_rows.take()
            trade_rows.close()
            if trades is not True:
                write_trades(trades, trade_table, instruments_of(books), options, codec=codec,
                             ts_origin=ts_origin)
    finally:
        import shutil

        shutil.rmtree(merged["dir"], ignore_errors=True)
    warned, crossed = _stream_after(symbols, books, merged["known"], merged["name"],
                                    merged["warnings"], merged["lobster_skipped"])
    fields = dict(merged["fields"])
    result = ReplayResult(
        books=books, samples=samples, seconds=time.perf_counter() - t0, codec=codec,
        kind="stream", output=None if writer is None else writer.path,
        rows=0 if writer is None else writer.rows, options=options, warnings=warned,
        crossed=crossed, **fields)
    result.trades = trade_table
    result.mapped = merged["mapped"]
    result.workers = workers
    result.shards = merged["shards"]
    return result


def _stream_after(symbols: list[str] | None, books: Any, known: list[str], name: str,
                  run_warnings: list[str], lobster_skipped: int) -> tuple[list[str], list[str]]:
    """The warnings of an order-by-order replay: symbols not found, books crossed at the end,
    LOBSTER events skipped (``run_warnings``: the codec's own)."""
    built = [books.instrument(i)["symbol"] for i in range(len(books))]
    out: list[str] = []
    crossed: list[str] = []
    if symbols is not None:
        out += _check_symbols(symbols, built, known, name)
    out += run_warnings
    for i in range(len(books)):
        book = books[i]
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None and bid[0] >= ask[0]:
            crossed.append(built[i])
    if crossed:
        out.append(f"{len(crossed):,} book(s) crossed at the end (best bid at or above "
                   f"best ask: messages missed?): {_some(crossed)}")
    if lobster_skipped:
        out.append(f"LOBSTER: {lobster_skipped:,} event(s) the LOBSTER book refused were "
                   f"skipped (not written)")
    return out, crossed


def _after(run: Any, books: Any, symbols: list[str] | Shard | None,
           lob: Any) -> tuple[list[str], list[str]]:
    """What a finished replay must tell: missing symbols, unsynced and crossed books."""
    import warnings

    from fastbook.errors import ReplayWarning

    if isinstance(symbols, Shard):
        symbols = None      # a worker's shard: its symbols are not asked for by name
    if getattr(run, "kind", "") == "live":
        return run.warnings(), []
    if not isinstance(run, L2Run):
        directory = getattr(run.decoder, "directory", [])
        known = [d.get("symbol", "") for d in directory if isinstance(d, dict)]
        return _stream_after(symbols, books, known, run.name, run.warnings(),
                             0 if lob is None else lob.skipped)
    out: list[str] = []
    if symbols is not None:
        out += _check_symbols(symbols, [*run.feed.symbols, *run._requested],
                              run.known_symbols(), run.name)
    problems = run.warnings()
    out += problems
    if symbols is not None:
        never = [s for s in symbols if s in run.feed.symbols or s in run._requested]
        never = [s for s in never if not run.feed.is_synced(s)]
        if never:
            warnings.warn(f"{run.name}: the book(s) of {_some(never)} never became valid"
                          + (f": {problems[-1]}" if problems else ""), ReplayWarning,
                          stacklevel=3)
    if lob is not None and lob.skipped:
        out.append(f"LOBSTER: {lob.skipped:,} event(s) the LOBSTER book refused were skipped "
                   f"(not written)")
    return out, []


#: Most sample bytes a replay holds before writing them out as a row group.
_GROUP_BYTES = 64 << 20


def _row_bytes(depth: int) -> int:
    """Bytes of one sample row: ts, instrument, sequence, reason and 4 * depth levels."""
    return 8 + 4 + 8 + 1 + 4 * 8 * depth


def scan(source: Any, codec: str = "itch50", *, chunk_size: int = 4 << 20,
         compression: str = "auto", progress: bool | None = False,
         **codec_options: Any) -> dict[str, Any]:
    """Decode a feed without building books: counts by type, directory, time range.

    Returns a dict with ``messages``, ``bytes``, ``counts`` (by type),
    ``directory`` (the codec's instrument directory entries), ``events``, and
    ``first_ts`` / ``last_ts`` (the smallest and largest exchange time of a
    book event; None when there is none). For an L2 feed codec, ``source``
    is one or more captures and the dict is :func:`fastbook.capture.summarize`'s.
    ``progress`` draws a progress line on stderr as :func:`replay` does (None:
    when stderr is a terminal).
    """
    from fastbook import codecs
    from fastbook.sources import Progress, open_source

    codec = codec_name(codec)
    if codecs.kind(codec) == "l2":
        # an L2 capture: what it holds (``fastbook.capture.summarize``)
        from fastbook import capture

        return capture.summarize(capture.as_sources(source), progress=progress)
    module = codecs.load(codec)
    span: list[int] = []

    def see(events: np.ndarray) -> None:
        ts = events["ts_exchange"]
        lo, hi = int(ts.min()), int(ts.max())
        span[:] = [min(span[0], lo), max(span[1], hi)] if span else [lo, hi]

    with open_source(source, chunk_size=chunk_size, compression=compression) as src, \
            Progress(total=src.size, enabled=progress) as bar:
        decoder = module.Decoder(None, name=src.name, **codec_options)
        for chunk in src:
            for events in decoder.feed(chunk):
                see(events)
            bar.update(src.raw_bytes_read, decoder.messages)
        if not src.bytes_out:
            raise DecodeError(f"{src.name}: the input is empty (0 bytes): there is nothing "
                              f"to scan")
        for events in decoder.close():
            see(events)
    return {"messages": decoder.messages, "bytes": decoder.bytes, "counts": decoder.counts(),
            "directory": decoder.directory, "events": decoder.events,
            "first_ts": span[0] if span else None, "last_ts": span[1] if span else None}
