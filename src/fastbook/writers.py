"""Where replay samples and books go: Arrow/Parquet/CSV sample files and LOBSTER files.

The replay driver (:mod:`fastbook.driver`) hands each writer the sample columns
(``fastbook.sampling`` layout) or the event batches it applied, batch by batch, so
a long run writes in bounded memory:

* :class:`SampleWriter` streams sample rows to a ``.parquet``, ``.arrow`` /
  ``.feather`` or ``.csv`` file (:func:`samples_table` gives the columns and the
  schema metadata);
* :class:`LobsterFiles` writes LOBSTER message and orderbook files per instrument
  through :func:`fastbook.codecs.lobster.write` (the format's encoder).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from fastbook.sampling import LEVEL_COLUMNS, SCALAR_COLUMNS

__all__ = ["LobsterFiles", "SampleWriter", "empty_columns", "instruments_of", "output_format",
           "samples_table"]

_OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow",
                   ".feather": "arrow", ".ipc": "arrow", ".csv": "csv"}


def output_format(path: str | os.PathLike[str]) -> str:
    """``"parquet"``, ``"arrow"`` or ``"csv"`` from the file name's suffix (ValueError if none)."""
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


def instruments_of(bookset: Any) -> list[dict[str, Any]]:
    """Every instrument's metadata (``BookSet.instrument``) with its ``id``, in id order."""
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


def empty_columns() -> dict[str, np.ndarray]:
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


class SampleWriter:
    """Streams sample batches to a Parquet, Arrow IPC or CSV file as they are taken."""

    def __init__(self, path: str | os.PathLike[str], row_group_size: int, codec: str,
                 ts_origin: str) -> None:
        self.path = os.fspath(path)
        self.format = output_format(path)
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
            self._open(samples_table(empty_columns(), instruments, codec=self.codec,
                                     ts_origin=self.ts_origin).schema)
        if self.format == "parquet":
            self._writer.add_key_value_metadata(
                {"fastbook.instruments": json.dumps(instruments),
                 "fastbook.rows": str(self.rows)})
        self._writer.close()



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
        self._made: list[str] = []
        d = os.path.abspath(self.directory)
        while not os.path.exists(d):
            self._made.append(d)
            d = os.path.dirname(d)
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
        for d in self._made:
            try:
                os.rmdir(d)
            except OSError:     # not empty: something else was put there meanwhile
                break
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
