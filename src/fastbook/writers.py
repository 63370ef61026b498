"""Where replay samples and books go: Arrow/Parquet/CSV sample files, DataFrames, LOBSTER files.

The replay driver (:mod:`fastbook.driver`) hands each writer the sample columns
(``fastbook.sampling`` layout) or the event batches it applied, batch by batch, so
a long run writes in bounded memory:

* :class:`SampleWriter` streams sample rows to a ``.parquet``, ``.arrow`` /
  ``.feather`` or ``.csv`` file (:func:`samples_table` gives the Arrow columns and
  the schema metadata; CSV is written without pyarrow);
* :func:`samples_frame` gives the same columns as a ``pandas.DataFrame``;
* :class:`LobsterFiles` writes LOBSTER message and orderbook files per instrument
  through :func:`fastbook.codecs.lobster.write` (the format's encoder).

Output options
--------------
By default every output holds what the books hold: prices and quantities as
int64 fixed-point integers, times as int64 nanoseconds, 0 / 0 for a missing
level, ``reason`` as its bits. :class:`OutputOptions` (the keyword arguments of
``fastbook.replay``, ``ReplayResult.to_pandas`` / ``to_arrow`` / ``to_parquet``
/ ``to_csv`` and ``Sampler.to_pandas`` / ``to_arrow``) changes that:

``prices="float"``, ``quantities="float"``
    float64 columns: each integer divided by ``10**decimals`` of the row's
    instrument, which gives the float nearest to the exact decimal (so its
    ``repr``, as written to CSV, is that decimal).
``timestamps="datetime"``
    ``ts`` as a datetime (ns). Feeds timed from the UNIX epoch (OSE, JPX, the L2
    feeds) give UTC times; ITCH 5.0 times are ns since midnight (exchange local
    time, US Eastern for NASDAQ), so they need the trading date: ``date=`` or,
    by default, the date in the file name (``12302019.NASDAQ_ITCH50.gz``,
    ``20191230.BX_ITCH_50.gz``: see :func:`date_from_name`); they are naive
    local times on that date.
``missing="nan"``
    a missing level (quantity 0) is null in Arrow/Parquet, NaN in pandas and
    empty in CSV, instead of 0 / 0. In pandas (as ``pandas.read_parquet`` reads
    an integer column with nulls) the level columns are then float64, exact for
    integers below 2**53.
``reason="names"``
    ``reason`` as text: the rules that took the row, joined by ``|``
    (``"every"``, ``"interval"``, ``"bbo"``, ``"every|bbo"``...; see
    :func:`fastbook.sampling.reason_names`).

The scales travel with the data: Arrow and Parquet schema metadata hold
``fastbook.instruments`` (JSON: id, symbol, venue, price and quantity decimals,
tick and lot size), and the options used; ``to_pandas()`` puts the same keys in
``DataFrame.attrs``, and a Parquet file stores them for ``pandas.read_parquet``
to restore there (the ``PANDAS_ATTRS`` key pandas reads). CSV files carry
``price_decimals`` and ``qty_decimals`` columns.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as _dt
import json
import os
import re
from typing import Any, NamedTuple

import numpy as np

from fastbook._extras import require
from fastbook.sampling import LEVEL_COLUMNS, SCALAR_COLUMNS, reason_labels

__all__ = ["LobsterFiles", "OutputOptions", "SampleWriter", "date_from_name", "empty_columns",
           "instruments_of", "output_format", "samples_frame", "samples_table"]

_OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow",
                   ".feather": "arrow", ".ipc": "arrow", ".csv": "csv"}
_CHOICES = {"prices": ("int", "float"), "quantities": ("int", "float"),
            "timestamps": ("int", "datetime"), "missing": ("zero", "nan"),
            "reason": ("bits", "names")}
_EPOCH = _dt.date(1970, 1, 1)
_DAY_NS = 86_400 * 1_000_000_000
_INT64_MAX = (1 << 63) - 1


def output_format(path: str | os.PathLike[str]) -> str:
    """``"parquet"``, ``"arrow"`` or ``"csv"`` from the file name's suffix (ValueError if none)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    try:
        return _OUTPUT_FORMATS[suffix]
    except KeyError:
        raise ValueError(f"cannot tell the output format of {os.fspath(path)!r}: use a "
                         f"{', '.join(sorted(_OUTPUT_FORMATS))} file name") from None


def _pyarrow() -> Any:
    return require("pyarrow", "arrow", "Arrow and Parquet output")


def _as_date(value: Any) -> _dt.date | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        raise ValueError(f"date= is a trading date (a datetime.date or 'YYYY-MM-DD'), "
                         f"not a datetime: {value!r}")
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"date= must be a datetime.date or a 'YYYY-MM-DD' string, got {value!r}")


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """How sample columns are presented (see the module docstring); defaults are exact ints.

    >>> OutputOptions(prices="float", date="2019-12-30").date
    datetime.date(2019, 12, 30)
    """

    prices: str = "int"
    quantities: str = "int"
    timestamps: str = "int"
    date: Any = None
    missing: str = "zero"
    reason: str = "bits"

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, "
                                 f"got {value!r}")
        object.__setattr__(self, "date", _as_date(self.date))

    def replace(self, **changes: Any) -> OutputOptions:
        """These options with ``changes`` (None values keep the current one)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown output option(s) {', '.join(sorted(unknown))}; the "
                            f"options are {', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def check(self, ts_origin: str, codec: str = "") -> None:
        """Raise ValueError if these options cannot be met for times from ``ts_origin``."""
        what = f"codec {codec!r}" if codec else "these samples"
        if self.date is not None and ts_origin != "midnight":
            origin = "the UNIX epoch" if ts_origin == "epoch" else "an unknown origin"
            raise ValueError(f"date= is for feeds timed from midnight; {what}: times count "
                             f"from {origin}")
        if self.timestamps != "datetime":
            return
        if ts_origin == "midnight" and self.date is None:
            raise ValueError(f"timestamps='datetime': {what}: times are ns since midnight and "
                             f"the date is not known (not in the file name); pass "
                             f"date='YYYY-MM-DD'")
        if ts_origin not in ("midnight", "epoch"):
            raise ValueError(f"timestamps='datetime': {what}: what the times count from is not "
                             f"known (ts_origin {ts_origin!r}); use timestamps='int'")

    def metadata(self) -> dict[str, str]:
        return {"fastbook.prices": self.prices, "fastbook.quantities": self.quantities,
                "fastbook.timestamps": self.timestamps, "fastbook.missing": self.missing,
                "fastbook.reason": self.reason,
                "fastbook.date": "" if self.date is None else self.date.isoformat()}


#: File names that carry the trading date: NASDAQ's MMDDYYYY (``12302019.NASDAQ_ITCH50``)
#: and YYYYMMDD (``20191230.BX_ITCH_50``) forms, and 8-digit dates in other names.
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{8})(?!\d)")


def date_from_name(name: str | os.PathLike[str]) -> _dt.date | None:
    """The trading date in a feed file's name, or None when it holds none or is ambiguous.

    An 8-digit run in the base name is read as YYYYMMDD or MMDDYYYY (NASDAQ
    names its TotalView files ``MMDDYYYY.NASDAQ_ITCH50``, its BX and PSX files
    ``YYYYMMDD.BX_ITCH_50``); it counts only when exactly one reading is a date
    from 1990 to 2099, and only when the name has exactly one such run.

    >>> date_from_name("data/12302019.NASDAQ_ITCH50.gz")
    datetime.date(2019, 12, 30)
    >>> date_from_name("20191230.BX_ITCH_50.gz")
    datetime.date(2019, 12, 30)
    >>> date_from_name("capture.itch") is None
    True
    """
    found = _DATE_IN_NAME.findall(os.path.basename(os.fspath(name)))
    if len(found) != 1:
        return None
    digits = found[0]
    readings = set()
    for y, m, d in ((digits[:4], digits[4:6], digits[6:]), (digits[4:], digits[:2], digits[2:4])):
        try:
            day = _dt.date(int(y), int(m), int(d))
        except ValueError:
            continue
        if 1990 <= day.year <= 2099:
            readings.add(day)
    return readings.pop() if len(readings) == 1 else None


def instruments_of(bookset: Any) -> list[dict[str, Any]]:
    """Every instrument's metadata (``BookSet.instrument``) with its ``id``, in id order."""
    return [dict(bookset.instrument(i), id=i) for i in range(len(bookset))]


class _Column(NamedTuple):
    """One output column: values (or codes into ``categories``), nulls, datetime zone."""

    name: str
    values: np.ndarray
    mask: np.ndarray | None = None
    categories: list[str] | None = None
    datetime_tz: str | None = None      # "UTC", or "" for naive local times; None: not a time


def _scales(instruments: list[dict[str, Any]], key: str, ids: np.ndarray) -> np.ndarray:
    """``10.0 ** decimals`` per row (float64, exact for every decimals fastbook allows)."""
    per_id = np.array([10.0 ** int(i[key]) for i in instruments] or [1.0])
    return per_id[ids]


def output_columns(columns: dict[str, np.ndarray], instruments: list[dict[str, Any]],
                    options: OutputOptions, ts_origin: str) -> list[_Column]:
    """The columns every output format writes, in order, with the options applied."""
    options.check(ts_origin)
    ids = columns["instrument"]
    ts = columns["ts"]
    if options.timestamps == "datetime":
        base = 0
        if ts_origin == "midnight":
            base = (options.date - _EPOCH).days * _DAY_NS
        if len(ts) and (int(ts.max()) > _INT64_MAX - base or int(ts.min()) < -base):
            raise ValueError(f"a sample time is out of range for a datetime on "
                             f"{options.date}: {int(ts.min())}..{int(ts.max())} ns")
        ts_col = _Column("ts", ts + base, datetime_tz="UTC" if ts_origin == "epoch" else "")
    else:
        ts_col = _Column("ts", ts)
    symbols = [i["symbol"] for i in instruments]
    code_of = {s: k for k, s in enumerate(dict.fromkeys(symbols))}
    unique = list(code_of)
    code_of_id = np.array([code_of[s] for s in symbols] or [0], np.int32)
    out = [ts_col, _Column("instrument", ids),
           _Column("symbol", code_of_id[ids] if len(ids) else np.zeros(0, np.int32),
                   categories=unique),
           _Column("sequence", columns["sequence"])]
    if options.reason == "names":
        labels, codes = reason_labels(columns["reason"])
        out.append(_Column("reason", codes, categories=labels))
    else:
        out.append(_Column("reason", columns["reason"]))
    depth = columns["bid_px"].shape[1]
    price_scale = _scales(instruments, "price_decimals", ids) \
        if options.prices == "float" else None
    qty_scale = _scales(instruments, "qty_decimals", ids) \
        if options.quantities == "float" else None
    for k in range(depth):
        for name in LEVEL_COLUMNS:
            raw = np.ascontiguousarray(columns[name][:, k])
            scale = price_scale if name.endswith("_px") else qty_scale
            values = raw if scale is None else raw / scale
            mask = None
            if options.missing == "nan":
                mask = columns[name[:3] + "_qty"][:, k] == 0
            out.append(_Column(f"{name}_{k + 1}", values, mask))
    out += _feature_columns(columns, qty_scale)
    return out


def _feature_columns(columns: dict[str, np.ndarray],
                     qty_scale: np.ndarray | None) -> list[_Column]:
    """The feature columns (``Sampler(features=...)``), after the levels, in their order:
    integer quantities (depth, OFI, trade flow) divided by the scale for
    ``quantities="float"``; the rest (already in real units) as they are."""
    from fastbook.features import column_unit

    out = []
    for name, values in columns.items():
        if name in _SAMPLE_NAMES:
            continue
        if column_unit(name) == "qty" and qty_scale is not None:
            values = values / qty_scale
        out.append(_Column(name, values))
    return out


_SAMPLE_NAMES = frozenset([name for name, _ in SCALAR_COLUMNS] + list(LEVEL_COLUMNS))


def arrow_array(pa: Any, col: _Column) -> Any:
    """One output column as a pyarrow array (dictionary, timestamp or plain with nulls)."""
    if col.categories is not None:
        return pa.DictionaryArray.from_arrays(pa.array(col.values),
                                              pa.array(col.categories, pa.string()))
    if col.datetime_tz is not None:
        return pa.array(col.values, pa.timestamp("ns", tz=col.datetime_tz or None))
    return pa.array(col.values, mask=col.mask)


def samples_metadata(instruments: list[dict[str, Any]], depth: int, rows: int,
                     options: OutputOptions, *, codec: str = "",
                     ts_origin: str = "") -> dict[str, str]:
    """The ``fastbook.*`` keys of an output's schema metadata (and of ``DataFrame.attrs``)."""
    meta = {
        "fastbook.instruments": json.dumps(instruments),
        "fastbook.ts_unit": "ns",
        "fastbook.ts_origin": ts_origin,
        "fastbook.codec": codec,
        "fastbook.depth": str(depth),
        "fastbook.rows": str(rows),
    }
    for key in ("price_decimals", "qty_decimals"):
        values = {i[key] for i in instruments}
        if len(values) == 1:
            meta[f"fastbook.{key}"] = str(values.pop())
    meta.update(options.metadata())
    return meta


def _with_pandas_attrs(meta: dict[str, str]) -> dict[str, str]:
    # pandas.read_parquet restores DataFrame.attrs from this key (pandas >= 2.1)
    return {**meta, "PANDAS_ATTRS": json.dumps(meta)}


def samples_table(columns: dict[str, np.ndarray], instruments: list[dict[str, Any]],
                  *, codec: str = "", ts_origin: str = "",
                  options: OutputOptions | None = None) -> Any:
    """Sample columns as a ``pyarrow.Table``: one row per sample, one column per level field.

    Columns: ``ts`` (int64 ns), ``instrument`` (uint32), ``symbol`` (dictionary
    of the instruments' symbols), ``sequence``, ``reason``, then ``bid_px_1,
    bid_qty_1, ask_px_1, ask_qty_1`` and so on for each level (int64
    fixed-point; 0 / 0 for an empty level), as changed by ``options`` (see
    the module docstring). The schema metadata holds ``fastbook.instruments``
    (JSON: id, symbol, venue, decimals, tick and lot size),
    ``fastbook.price_decimals`` / ``fastbook.qty_decimals`` when every
    instrument shares them, the time unit and origin, ``fastbook.rows`` and
    the options (``fastbook.prices``, ``fastbook.date``...).
    """
    pa = _pyarrow()
    options = options or OutputOptions()
    arrays = {}
    for col in output_columns(columns, instruments, options, ts_origin):
        arrays[col.name] = arrow_array(pa, col)
    meta = samples_metadata(instruments, columns["bid_px"].shape[1], len(columns["ts"]),
                            options, codec=codec, ts_origin=ts_origin)
    return pa.table(arrays).replace_schema_metadata(_with_pandas_attrs(meta))


def samples_frame(columns: dict[str, np.ndarray], instruments: list[dict[str, Any]],
                  *, codec: str = "", ts_origin: str = "",
                  options: OutputOptions | None = None) -> Any:
    """Sample columns as a ``pandas.DataFrame`` (the columns of :func:`samples_table`).

    Built from the numpy columns (pyarrow is not needed). ``symbol`` (and
    ``reason`` with ``reason="names"``) is categorical; ``DataFrame.attrs``
    holds the ``fastbook.*`` metadata keys, scales included.
    """
    pd = require("pandas", "pandas", "to_pandas()")
    options = options or OutputOptions()
    data = {}
    for col in output_columns(columns, instruments, options, ts_origin):
        if col.categories is not None:
            data[col.name] = pd.Categorical.from_codes(col.values.astype(np.int32),
                                                       categories=col.categories)
        elif col.datetime_tz is not None:
            times = pd.Series(col.values.view("datetime64[ns]"), copy=False)
            data[col.name] = times.dt.tz_localize("UTC") if col.datetime_tz else times
        elif col.mask is not None:
            # as pyarrow and pandas.read_parquet convert a column with nulls: float64
            values = col.values.astype(np.float64)
            values[col.mask] = np.nan
            data[col.name] = values
        else:
            data[col.name] = col.values
    frame = pd.DataFrame(data)
    frame.attrs = samples_metadata(instruments, columns["bid_px"].shape[1],
                                   len(columns["ts"]), options, codec=codec,
                                   ts_origin=ts_origin)
    return frame


def empty_columns() -> dict[str, np.ndarray]:
    """Sample columns with no rows (and no levels), as ``Sampler.columns`` lays them out."""
    return {name: np.zeros(0, t) for name, t in SCALAR_COLUMNS} | {
        name: np.zeros((0, 0), np.int64) for name in LEVEL_COLUMNS}


def _plain_dictionaries_schema(schema: Any) -> Any:
    import pyarrow as pa

    for i, field in enumerate(schema):
        if pa.types.is_dictionary(field.type):
            schema = schema.set(i, pa.field(field.name, pa.string()))
    return schema


def _plain_dictionaries(table: Any) -> Any:
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast("string"))
    return table


def _csv_text(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class _CsvFile:
    """A sample CSV file written with the standard library (pyarrow is not needed).

    A header row of quoted names, then one line per row: numbers as written by
    ``repr`` (a float is the shortest text that reads back as the same float),
    text quoted, a null (``missing="nan"``) empty, datetimes in ISO 8601 (``Z``
    for UTC). ``price_decimals`` and ``qty_decimals`` follow ``symbol``, so each
    row carries its scales.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: Any = None

    def write(self, cols: list[_Column], instruments: list[dict[str, Any]]) -> None:
        ids = cols[1].values
        decimals = [
            _Column(key, np.array([int(i[key]) for i in instruments] or [0], np.int64)[ids]
                    if len(ids) else np.zeros(0, np.int64))
            for key in ("price_decimals", "qty_decimals")]
        cols = [*cols[:3], *decimals, *cols[3:]]
        if self._file is None:
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            self._file.write(",".join(_csv_text(c.name) for c in cols) + "\n")
        cells = [self._cells(c) for c in cols]
        if cells and cells[0]:
            self._file.write("".join(",".join(row) + "\n" for row in zip(*cells, strict=True)))

    @staticmethod
    def _cells(col: _Column) -> list[str]:
        if col.categories is not None:
            quoted = [_csv_text(c) for c in col.categories]
            return [quoted[c] for c in col.values.tolist()]
        if col.datetime_tz is not None:
            text = col.values.view("datetime64[ns]").astype(str).tolist()
            return [t + "Z" for t in text] if col.datetime_tz else text
        cells = list(map(repr, col.values.tolist()))
        if col.mask is not None:
            for i in np.flatnonzero(col.mask).tolist():
                cells[i] = ""
        return cells

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class SampleWriter:
    """Streams sample batches to a Parquet, Arrow IPC or CSV file as they are taken.

    A Parquet file's schema metadata describes the whole file when it is closed:
    ``fastbook.rows`` counts every row and ``fastbook.instruments`` lists every
    instrument, including ones first seen after the first row group. An Arrow
    IPC file's schema is written when the file opens, so its metadata lists the
    instruments known then (its batches hold every row's symbol all the same)
    and has no ``fastbook.rows``.
    """

    def __init__(self, path: str | os.PathLike[str], row_group_size: int, codec: str,
                 ts_origin: str, options: OutputOptions | None = None) -> None:
        self.path = os.fspath(path)
        self.format = output_format(path)
        # written under a temporary name beside it, renamed by close(): an interrupted or
        # failed run leaves no file that looks finished (abort() removes the partial one)
        head, tail = os.path.split(self.path)
        self._partial = os.path.join(head, f".{tail}.{os.getpid()}.partial")
        self.row_group_size = row_group_size
        self.codec, self.ts_origin = codec, ts_origin
        self.options = options or OutputOptions()
        self.options.check(ts_origin, codec)
        self.rows = 0
        self._writer: Any = None
        self._depth = 0
        if self.format != "csv":
            _pyarrow()

    def write(self, columns: dict[str, np.ndarray], instruments: list[dict[str, Any]]) -> None:
        if len(columns["ts"]) == 0:
            return
        self._depth = columns["bid_px"].shape[1]
        if self.format == "csv":
            if self._writer is None:
                self._writer = _CsvFile(self._partial)
            self._writer.write(output_columns(columns, instruments, self.options,
                                               self.ts_origin), instruments)
            self.rows += len(columns["ts"])
            return
        table = self._table(columns, instruments)
        if self._writer is None:
            self._open(table.schema)
        elif not table.schema.equals(self._schema):
            table = table.cast(self._schema)
        if self.format == "parquet":
            self._writer.write_table(table, row_group_size=self.row_group_size)
        else:
            # an IPC file cannot replace a dictionary between batches, and CSV has none
            self._writer.write_table(_plain_dictionaries(table))
        self.rows += table.num_rows

    def _table(self, columns: dict[str, np.ndarray], instruments: list[dict[str, Any]]) -> Any:
        return samples_table(columns, instruments, codec=self.codec, ts_origin=self.ts_origin,
                             options=self.options)

    def _open(self, schema: Any) -> None:
        import pyarrow as pa

        self._schema = schema
        if self.format == "parquet":
            import pyarrow.parquet as pq

            # no metadata yet: the footer's is written at close, and keys written now
            # could not be taken back there (a scale the instruments no longer share)
            self._writer = pq.ParquetWriter(self._partial, schema.remove_metadata())
        else:
            meta = {k: v for k, v in schema.metadata.items()
                    if k not in (b"fastbook.rows", b"PANDAS_ATTRS")}
            self._writer = pa.ipc.new_file(
                self._partial, _plain_dictionaries_schema(schema).with_metadata(meta))

    def close(self, instruments: list[dict[str, Any]]) -> None:
        if self._writer is None:
            # no rows: still write a valid, empty file with the right columns
            if self.format == "csv":
                self._writer = _CsvFile(self._partial)
                self._writer.write(output_columns(empty_columns(), instruments, self.options,
                                                   self.ts_origin), instruments)
            else:
                self._open(self._table(empty_columns(), instruments).schema)
        if self.format == "parquet":
            self._finish_parquet(instruments)
        self._writer.close()
        self._writer = None
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Close and remove the partial file (a run that failed or was cancelled)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._partial)

    def _finish_parquet(self, instruments: list[dict[str, Any]]) -> None:
        # The footer's key-value metadata is written at close, but pyarrow reads a
        # file's Arrow schema (with its metadata) from the footer's ARROW:schema
        # entry, which holds the schema the writer was opened with: replace both
        # with the whole file's instruments and row count.
        meta = _with_pandas_attrs(samples_metadata(
            instruments, self._depth, self.rows, self.options, codec=self.codec,
            ts_origin=self.ts_origin))
        final = self._schema.with_metadata(meta)
        arrow_schema = base64.b64encode(final.serialize().to_pybytes()).decode("ascii")
        self._writer.add_key_value_metadata({**meta, "ARROW:schema": arrow_schema})


def make_dirs(directory: str | os.PathLike[str]) -> list[str]:
    """Make ``directory`` and its missing parents; the ones made, deepest first."""
    made = []
    d = os.path.abspath(os.fspath(directory))
    while not os.path.exists(d):
        made.append(d)
        d = os.path.dirname(d)
    os.makedirs(directory, exist_ok=True)
    return made


def remove_empty_dirs(made: list[str]) -> None:
    """Remove the directories :func:`make_dirs` made, deepest first, while they are empty."""
    for d in made:
        try:
            os.rmdir(d)
        except OSError:     # not empty: something else was put there meanwhile
            break


class LobsterFiles:
    """LOBSTER message and orderbook files per instrument, written batch by batch.

    Each instrument keeps its own scale and order keying (from the BookSet). LOBSTER
    times are seconds after midnight: a codec with epoch times (``ts_origin ==
    "epoch"``) has them measured from the local midnight (``utc_offset_ns``) of the
    instrument's first event, so a night session runs on past 24 h.

    ``on_error="skip"`` (the replay's): an event the LOBSTER book refuses (an
    unknown order, an over-execution: the same ones the BookSet skips) is left
    out of the files and counted in :attr:`skipped`; ``"raise"`` raises
    :class:`fastbook.UpdateError`. :meth:`close` with ``failed=True`` (a replay
    that raised) removes the files this writer created, and the directory if
    it made it (and its parents) and they are left empty: no half-written files stay
    behind.
    """

    MAX_INSTRUMENTS = 256
    _DAY = 86_400 * 1_000_000_000

    def __init__(self, directory: str | os.PathLike[str], depth: int, *, ts_origin: str = "",
                 utc_offset_ns: int = 0, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.directory = os.fspath(directory)
        self.depth = depth
        self.epoch = ts_origin == "epoch"
        self.utc_offset_ns = utc_offset_ns
        self.on_error = on_error
        #: events left out of the files (``on_error="skip"``)
        self.skipped = 0
        # instrument: message file, orderbook file, book, price decimals, midnight (epoch ns),
        # the BookSet's error count for it after the last batch written
        self._open: dict[int, list[Any]] = {}
        self._paths: list[str] = []
        # the directories this writer makes, deepest first (removed again on a failure)
        self._made = make_dirs(self.directory)

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
                files = []
                for what in ("message", "orderbook"):
                    path = f"{base}_{what}_{self.depth}.csv"
                    files.append(open(path, "w", newline=""))
                    self._paths.append(path)
                self._open[i] = [
                    *files,
                    OrderBook(price_decimals=meta["price_decimals"],
                              qty_decimals=meta["qty_decimals"],
                              side_keys=getattr(books[i], "side_keys", False)),
                    meta["price_decimals"],
                    midnight,
                    0,
                ]
            entry = self._open[i]
            messages, orderbook, book, price_decimals, midnight, seen = entry
            if midnight:
                mine["ts_exchange"] -= midnight
            errors = sum(books.instrument_errors(i).values()) if self.on_error == "skip" else 0
            if errors == seen:
                # the BookSet applied every event of this instrument: so does the LOBSTER
                # book, which holds the same orders
                lobster.write(mine, messages, orderbook, levels=self.depth,
                              price_decimals=price_decimals, book=book)
            else:
                entry[2] = self._write_skipping(mine, messages, orderbook, book, price_decimals)
                entry[5] = errors

    def _write_skipping(self, events: np.ndarray, messages: Any, orderbook: Any, book: Any,
                        price_decimals: int) -> Any:
        """Write ``events``, leaving out each one the book refuses; the book after them.

        ``lobster.write`` stops at the first refused event with the book part-way
        through its block, so the batch is written to memory from a copy of the
        book; on a refusal the events before it are written again from the copy,
        the refused one is left out, and writing goes on after it.
        """
        import io

        from fastbook.codecs import lobster
        from fastbook.errors import UpdateError

        pos = 0
        while pos < len(events):
            saved = _copy_book(book)
            text = [io.StringIO(), io.StringIO()]
            try:
                lobster.write(events[pos:], text[0], text[1], levels=self.depth,
                              price_decimals=price_decimals, book=book)
            except UpdateError as exc:
                if exc.index is None:
                    raise
                k = int(exc.index)
                book = saved
                text = [io.StringIO(), io.StringIO()]
                if k:
                    lobster.write(events[pos:pos + k], text[0], text[1], levels=self.depth,
                                  price_decimals=price_decimals, book=book)
                self.skipped += 1
                pos += k + 1
            else:
                pos = len(events)
            messages.write(text[0].getvalue())
            orderbook.write(text[1].getvalue())
        return book

    def close(self, failed: bool = False) -> None:
        """Close every file; ``failed``: remove them (and a directory made for them)."""
        for messages, orderbook, *_ in self._open.values():
            messages.close()
            orderbook.close()
        self._open.clear()
        if not failed:
            return
        for path in self._paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._paths.clear()
        remove_empty_dirs(self._made)
        self._made.clear()


def _copy_book(book: Any) -> Any:
    """A new OrderBook holding the same orders, at the same price-time priority."""
    from fastbook.l3 import OrderBook

    copy = OrderBook(price_decimals=book.price_decimals, qty_decimals=book.qty_decimals,
                     side_keys=book.side_keys)
    for side in (1, 2):
        prices = book.to_arrays(side)[0].tolist()
        for price in prices:
            for order_id, qty in book.orders_at(side, price):
                copy.add(order_id, side, price, qty)
    return copy


def trade_columns(trades: dict[str, np.ndarray], instruments: list[dict[str, Any]],
                  options: OutputOptions) -> list[_Column]:
    """The trades table's output columns (``Sampler(trades=True)``, ``replay(trades=...)``):
    ``ts``, ``instrument``, ``symbol``, ``sequence``, ``price``, ``qty``, ``aggressor``
    (1 buy, 2 sell, 0 unknown; ``"buy"``/``"sell"``/``""`` with ``reason="names"``),
    ``rule`` (how the aggressor was found, as its name) and ``flags``, with the price
    and quantity options applied."""
    from fastbook._pyfeatures import RULES

    ids = trades["instrument"]
    symbols = [i["symbol"] for i in instruments]
    code_of = {s: k for k, s in enumerate(dict.fromkeys(symbols))}
    code_of_id = np.array([code_of[s] for s in symbols] or [0], np.int32)
    price, qty = trades["price"], trades["qty"]
    if options.prices == "float":
        price = price / _scales(instruments, "price_decimals", ids)
    if options.quantities == "float":
        qty = qty / _scales(instruments, "qty_decimals", ids)
    aggressor = _Column("aggressor", trades["aggressor"])
    if options.reason == "names":
        aggressor = _Column("aggressor", trades["aggressor"].astype(np.int8),
                            categories=["", "buy", "sell"])
    return [_Column("ts", trades["ts"]), _Column("instrument", ids),
            _Column("symbol", code_of_id[ids] if len(ids) else np.zeros(0, np.int32),
                    categories=list(code_of)),
            _Column("sequence", trades["sequence"]), _Column("price", price),
            _Column("qty", qty), aggressor,
            _Column("rule", trades["rule"].astype(np.int8), categories=list(RULES)),
            _Column("flags", trades["flags"])]


def write_trades(path: str | os.PathLike[str], trades: dict[str, np.ndarray],
                 instruments: list[dict[str, Any]], options: OutputOptions | None = None, *,
                 codec: str = "", ts_origin: str = "") -> int:
    """Write a trades table to ``.parquet`` or ``.csv``; returns the rows written.

    A Parquet file's schema metadata has ``fastbook.table = "trades"`` and the
    instruments with their scales, as the samples' files have.
    """
    options = options or OutputOptions()
    cols = trade_columns(trades, instruments, options)
    fmt = output_format(path)
    if fmt == "csv":
        out = _CsvFile(os.fspath(path))
        out.write(cols, instruments)
        out.close()
        return len(trades["ts"])
    if fmt != "parquet":
        raise ValueError(f"trades are written to .parquet or .csv, not {os.fspath(path)!r}")
    pa = _pyarrow()
    import pyarrow.parquet as pq

    table = pa.table({c.name: arrow_array(pa, c) for c in cols})
    meta = samples_metadata(instruments, 0, len(trades["ts"]), options, codec=codec,
                            ts_origin=ts_origin)
    meta.pop("fastbook.depth", None)
    meta["fastbook.table"] = "trades"
    pq.write_table(table.replace_schema_metadata(_with_pandas_attrs(meta)), os.fspath(path))
    return len(trades["ts"])
