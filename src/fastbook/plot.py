"""Pictures of replay samples: a depth heatmap with the BBO over it, and time series.

Needs matplotlib (``pip install 'fastbook-lob[plot]'``), imported when a picture is
drawn. Figures are built on matplotlib's Agg canvas directly (``matplotlib.figure.Figure``,
not ``pyplot``): nothing opens a window, and the backend a notebook or an application
chose is left alone.

* :func:`depth_heatmap`: time on x, real prices on y, the resting quantity at each
  price as colour (log scale by default), the best bid and best ask drawn over it;
* :func:`series`: one panel per chosen column (``mid``, ``spread``, ``bid_px_1``,
  feature columns such as ``microprice`` or ``ofi_l1``: any numeric column);
* :func:`plot_file` draws either from a Parquet samples file to a PNG, reading only the
  columns and row groups it needs, in batches, so a file of tens of millions of rows
  plots in bounded memory; :func:`plot_result` draws a :class:`fastbook.ReplayResult`.

The samples come in either layout fastbook writes: the sampler's columns (``ts``,
``instrument``, and ``bid_px``, ``bid_qty``, ``ask_px``, ``ask_qty`` of shape
``(rows, depth)``), or the flat one of ``ReplayResult.to_parquet`` / ``to_arrow`` /
``to_pandas`` (``bid_px_1 .. bid_px_N``...). Prices and quantities are fixed-point
integers there; each instrument's ``price_decimals`` and ``qty_decimals`` (the
``fastbook.instruments`` metadata, or ``instruments=``) turn them into real numbers for
the axes. Files written with ``prices="float"`` are used as they are.

Long inputs are aggregated to a bounded grid: ``width`` time bins (the picture's pixel
columns) and ``height`` price bins. A sample is the book *from* its time until the next
sample, so a time bin without a sample repeats the one before it (the book did not
change), as a forward fill of the samples does; a bin with several samples shows their
mean quantity per price bin, and the BBO lines the last sample of the bin.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fastbook._extras import require
from fastbook.features import column_unit

__all__ = ["depth_heatmap", "plot_file", "plot_result", "series"]

_DAY_NS = 86_400 * 1_000_000_000
_BATCH = 1 << 18
_LEVEL = re.compile(r"^(bid|ask)_(px|qty)_(\d+)$")
_DERIVED = ("mid", "spread")
#: Rows past which a terminal gets a progress line.
_PROGRESS_ROWS = 2_000_000


def _mpl() -> Any:
    """matplotlib's Figure class, or the error naming the ``plot`` extra."""
    require("matplotlib", "plot", "fastbook.plot")
    from matplotlib.figure import Figure

    return Figure


# -- where samples come from ----------------------------------------------------------------

class _Source:
    """Samples in any layout, read as batches of flat numpy columns (``bid_px_1``...).

    ``batches(names, ids, lo, hi)`` yields dicts of 1-D arrays (``ts`` as int64 ns,
    levels as float64 with NaN for nulls, or int64) of the rows of instrument ``ids``
    with ``lo <= ts <= hi``.
    """

    def __init__(self, names: Sequence[str], instruments: list[dict[str, Any]],
                 meta: dict[str, str], where: str) -> None:
        self.names = list(names)
        self.instruments = instruments
        self.meta = meta
        self.where = where
        self.ts_origin = meta.get("fastbook.ts_origin", "")
        self.prices_float = meta.get("fastbook.prices") == "float"
        self.qty_float = meta.get("fastbook.quantities") == "float"
        self.rows = 0
        #: Columns that hold text or categories, not numbers (refused by series()).
        self.non_numeric: set[str] = set()
        found = [int(m.group(3)) for n in self.names if (m := _LEVEL.match(n))]
        self.depth = max(found) if found else 0
        missing = [n for n in ("ts", "instrument", "bid_px_1", "bid_qty_1", "ask_px_1",
                               "ask_qty_1") if n not in self.names]
        if missing:
            raise ValueError(f"{where} has no sample columns {', '.join(missing)}: not "
                             f"fastbook samples (fb.replay(...).to_parquet, Sampler.columns); "
                             f"its columns: {_listing(self.names)}")

    def batches(self, names: Sequence[str], ids: set[int], lo: int, hi: int,
                progress: Any = None) -> Iterator[dict[str, np.ndarray]]:
        raise NotImplementedError

    def ts_bounds(self) -> tuple[int, int] | None:
        """The first and last ``ts`` over all rows, when cheap to know (None if no rows)."""
        raise NotImplementedError


def _listing(names: Sequence[str], limit: int = 40) -> str:
    names = list(names)
    more = f" ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _select(cols: dict[str, np.ndarray], ids: set[int], lo: int, hi: int) -> np.ndarray | None:
    """The mask of rows of ``ids`` within ``lo..hi`` (None: every row)."""
    ts, inst = cols["ts"], cols["instrument"]
    mask = (ts >= lo) & (ts <= hi)
    if len(ids) == 1:
        mask &= inst == next(iter(ids))
    else:
        mask &= np.isin(inst, np.fromiter(ids, np.int64))
    return None if mask.all() else mask


class _ArraySource(_Source):
    """In-memory columns: the sampler's 2-D layout, or flat ones."""

    def __init__(self, columns: dict[str, Any], instruments: list[dict[str, Any]],
                 meta: dict[str, str], where: str) -> None:
        flat: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            arr = np.asarray(values)
            if arr.ndim == 2 and name in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
                for k in range(arr.shape[1]):
                    flat[f"{name}_{k + 1}"] = arr[:, k]
            elif arr.ndim == 1:
                flat[name] = arr
        if "ts" in flat and flat["ts"].dtype.kind == "M":
            flat["ts"] = flat["ts"].astype("datetime64[ns]").view(np.int64)
        super().__init__(list(flat), instruments, meta, where)
        self.non_numeric = {n for n, v in flat.items() if v.dtype.kind not in "iufb"}
        self._cols = flat
        self.rows = len(flat["ts"])

    def batches(self, names: Sequence[str], ids: set[int], lo: int, hi: int,
                progress: Any = None) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, self.rows, 4 * _BATCH):
            part = {n: self._cols[n][start:start + 4 * _BATCH] for n in {"ts", "instrument",
                                                                         *names}}
            mask = _select(part, ids, lo, hi)
            yield part if mask is None else {n: v[mask] for n, v in part.items()}

    def ts_bounds(self) -> tuple[int, int] | None:
        ts = self._cols["ts"]
        return (int(ts.min()), int(ts.max())) if len(ts) else None


def _arrow_numpy(pa: Any, column: Any) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    elif pa.types.is_dictionary(column.type):
        column = column.indices
    return np.asarray(column.to_numpy(zero_copy_only=False))


class _ParquetSource(_Source):
    """A Parquet samples file, read by row group and batch, only the columns asked for."""

    def __init__(self, path: str) -> None:
        pq = require("pyarrow.parquet", "arrow", "plotting a Parquet file")
        self._pa = require("pyarrow", "arrow", "plotting a Parquet file")
        try:
            # read column chunks through a small buffer rather than whole row groups at
            # once: what keeps a file of any size in bounded memory (about 250 MB for a
            # 20-million-row file of 1M-row groups, against 900 MB pre-buffered)
            self._file = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        except (OSError, self._pa.ArrowException) as exc:
            raise ValueError(f"{path}: not a Parquet file ({exc})") from None
        schema = self._file.schema_arrow
        meta = {k.decode(errors="replace"): v.decode(errors="replace")
                for k, v in (schema.metadata or {}).items()}
        super().__init__(schema.names, _instruments_meta(meta, path), meta, path)
        pa = self._pa
        self.non_numeric = {f.name for f in schema if not (
            pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type) or pa.types.is_timestamp(f.type))}
        self._md = self._file.metadata
        self.rows = self._md.num_rows

    def _stats(self, group: int, name: str) -> tuple[int, int] | None:
        col = self.names.index(name)
        st = self._md.row_group(group).column(col).statistics
        if st is None or not st.has_min_max or not isinstance(st.min, (int, np.integer)):
            return None
        return int(st.min), int(st.max)

    def _groups(self, ids: set[int], lo: int, hi: int) -> list[int]:
        """Row groups that may hold rows of ``ids`` in ``lo..hi`` (by their statistics)."""
        keep = []
        for g in range(self._md.num_row_groups):
            ts, inst = self._stats(g, "ts"), self._stats(g, "instrument")
            if ts is not None and (ts[1] < lo or ts[0] > hi):
                continue
            if inst is not None and not any(inst[0] <= i <= inst[1] for i in ids):
                continue
            keep.append(g)
        return keep

    def batches(self, names: Sequence[str], ids: set[int], lo: int, hi: int,
                progress: Any = None) -> Iterator[dict[str, np.ndarray]]:
        groups = self._groups(ids, lo, hi)
        if not groups:
            return
        wanted = list(dict.fromkeys(["ts", "instrument", *names]))
        total = sum(self._md.row_group(g).num_rows for g in groups)
        done = 0
        for batch in self._file.iter_batches(batch_size=_BATCH, row_groups=groups,
                                             columns=wanted, use_threads=False):
            part = {n: _arrow_numpy(self._pa, batch.column(i)) for i, n in enumerate(wanted)}
            done += batch.num_rows
            if progress is not None:
                progress(done, total)
            mask = _select(part, ids, lo, hi)
            yield part if mask is None else {n: v[mask] for n, v in part.items()}

    def ts_bounds(self) -> tuple[int, int] | None:
        bounds = [self._stats(g, "ts") for g in range(self._md.num_row_groups)
                  if self._md.row_group(g).num_rows]
        if not bounds:
            return None
        if any(b is None for b in bounds):
            lo, hi = None, None
            for part in self.batches(["ts"], {i["id"] for i in self.instruments},
                                     -(1 << 63), (1 << 63) - 1):
                if len(part["ts"]):
                    pmin, pmax = int(part["ts"].min()), int(part["ts"].max())
                    lo = pmin if lo is None else min(lo, pmin)
                    hi = pmax if hi is None else max(hi, pmax)
            return None if lo is None or hi is None else (lo, hi)
        return min(b[0] for b in bounds if b), max(b[1] for b in bounds if b)


def _instruments_meta(meta: dict[str, str], where: str) -> list[dict[str, Any]]:
    text = meta.get("fastbook.instruments")
    if not text:
        return []
    try:
        found = json.loads(text)
    except ValueError:
        raise ValueError(f"{where}: its fastbook.instruments metadata is not JSON") from None
    if not isinstance(found, list) or not all(isinstance(i, dict) and "id" in i and "symbol" in i
                                              for i in found):
        raise ValueError(f"{where}: its fastbook.instruments metadata is not a list of "
                         f"instruments (id, symbol, price_decimals, qty_decimals)")
    return found


def _source(samples: Any, instruments: Any = None, ts_origin: str = "") -> _Source:
    """A :class:`_Source` over what the caller has: a path, an Arrow table, a DataFrame,
    a dict of columns, or a ReplayResult."""
    if isinstance(samples, (str, os.PathLike)):
        src: _Source = _ParquetSource(os.fspath(samples))
        if instruments is not None:
            src.instruments = _instrument_list(instruments)
        return src
    meta: dict[str, str] = {}
    where = "these samples"
    if hasattr(samples, "samples") and hasattr(samples, "instruments") \
            and hasattr(samples, "ts_origin"):            # a ReplayResult
        return _result_source(samples)
    if hasattr(samples, "schema") and hasattr(samples, "column_names"):   # pyarrow.Table
        pa = require("pyarrow", "arrow", "plotting an Arrow table")
        meta = {k.decode(errors="replace"): v.decode(errors="replace")
                for k, v in (samples.schema.metadata or {}).items()}
        cols = {n: _arrow_numpy(pa, samples.column(n).combine_chunks())
                for n in samples.column_names if n != "symbol"}
    elif hasattr(samples, "attrs") and hasattr(samples, "columns") \
            and hasattr(samples, "to_numpy"):                             # pandas.DataFrame
        meta = {str(k): str(v) for k, v in getattr(samples, "attrs", {}).items()}
        cols = {str(n): samples[n].to_numpy() for n in samples.columns
                if str(n) != "symbol" and samples[n].dtype.kind in "iufM"}
    elif isinstance(samples, dict):
        cols = samples
    else:
        raise ValueError(f"samples must be a Parquet path, a ReplayResult, a dict of sample "
                         f"columns, a pyarrow.Table or a pandas.DataFrame, not "
                         f"{type(samples).__name__}")
    if ts_origin:
        meta["fastbook.ts_origin"] = ts_origin
    insts = _instrument_list(instruments) if instruments is not None \
        else _instruments_meta(meta, where)
    return _ArraySource(cols, insts, meta, where)


def _instrument_list(instruments: Any) -> list[dict[str, Any]]:
    out = []
    for k, inst in enumerate(instruments):
        if not isinstance(inst, dict) or "symbol" not in inst:
            raise ValueError(f"instruments[{k}] must be a dict with symbol, price_decimals "
                             f"and qty_decimals (ReplayResult.instruments), not {inst!r:.80}")
        out.append({"id": k, **inst})
    return out


def _result_source(result: Any) -> _Source:
    if result.samples and len(result.samples.get("ts", ())):
        meta = {"fastbook.ts_origin": result.ts_origin,
                "fastbook.date": "" if result.date is None else result.date.isoformat()}
        return _ArraySource(result.samples, result.instruments, meta, "this replay's samples")
    if getattr(result, "output", None) and str(result.output).lower().endswith(
            (".parquet", ".pq")):
        return _ParquetSource(str(result.output))
    if getattr(result, "output", None):
        raise ValueError(f"the samples were streamed to {result.output!r}; plot_file() draws "
                         f"Parquet files (write the replay with output='x.parquet')")
    raise ValueError("this replay took no samples: replay with every= (e.g. every='bbo' or "
                     "every='100ms') to plot it")


# -- what to draw -------------------------------------------------------------------------

def _instrument(src: _Source, instrument: Any) -> dict[str, Any]:
    """The metadata of the instrument asked for (symbol, ``venue:symbol`` or id)."""
    insts = src.instruments
    if not insts:
        raise ValueError(f"{src.where} carry no fastbook.instruments metadata (the scales of "
                         f"its prices): pass instruments=[{{'symbol': ..., 'price_decimals': "
                         f"..., 'qty_decimals': ...}}, ...] (ReplayResult.instruments)")
    known = ", ".join(f"{i.get('venue', '')}:{i['symbol']}" if i.get("venue") else
                      str(i["symbol"]) for i in insts)
    if instrument is None:
        if len(insts) == 1:
            return insts[0]
        raise ValueError(f"{src.where} hold {len(insts)} instruments; name one with "
                         f"instrument=: {_listing(known.split(', '))}")
    if isinstance(instrument, (int, np.integer)) and not isinstance(instrument, bool):
        found = [i for i in insts if int(i["id"]) == int(instrument)]
    elif isinstance(instrument, str):
        venue, _, sym = instrument.rpartition(":") if ":" in instrument else ("", "", instrument)
        found = [i for i in insts if i["symbol"] == instrument]
        if not found and venue:
            found = [i for i in insts if i["symbol"] == sym and i.get("venue") == venue]
        if not found and instrument.isdigit():          # an id, as the command line gives
            found = [i for i in insts if int(i["id"]) == int(instrument)]
    else:
        raise ValueError(f"instrument must be a symbol, 'venue:symbol' or an id, not "
                         f"{type(instrument).__name__}")
    if len(found) != 1:
        what = "several instruments" if found else "no instrument"
        raise ValueError(f"{what} {instrument!r} in {src.where}: "
                         f"{_listing(known.split(', '))}")
    return found[0]


def _parse_time(value: Any, base: int, what: str) -> int:
    """``start=`` / ``end=`` as ns on the samples' clock.

    An int is ns as the samples hold them; ``"HH:MM[:SS[.fff]]"`` a time of day on
    the day of the first sample; an ISO date-time (``"2020-06-01T10:00"``, UTC) ns since
    the epoch; a ``numpy.datetime64`` or ``datetime`` likewise.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?", text)
        if m:
            h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            frac = int((m.group(4) or "0").ljust(9, "0"))
            return base + ((h * 60 + mi) * 60 + s) * 1_000_000_000 + frac
        try:
            value = np.datetime64(text.replace("Z", ""), "ns")
        except ValueError:
            raise ValueError(f"{what}={value!r}: not a time (ns as an int, 'HH:MM:SS' on the "
                             f"samples' day, or an ISO date-time such as "
                             f"'2020-06-01T10:00:00')") from None
    try:
        return int(np.datetime64(value, "ns").astype(np.int64))
    except (ValueError, TypeError):
        raise ValueError(f"{what}={value!r}: not a time (ns, 'HH:MM:SS' or ISO date-time)") \
            from None


def _window(src: _Source, start: Any, end: Any) -> tuple[int, int]:
    bounds = src.ts_bounds()
    if bounds is None:
        raise ValueError(f"{src.where} hold no samples")
    base = bounds[0] - bounds[0] % _DAY_NS
    lo = bounds[0] if start is None else _parse_time(start, base, "start")
    hi = bounds[1] if end is None else _parse_time(end, base, "end")
    if lo > hi:
        raise ValueError(f"start is after end: {_fmt_ns(lo)} > {_fmt_ns(hi)}")
    return lo, hi


def _own_window(src: _Source, inst: dict[str, Any], lo: int, hi: int, start: Any,
                end: Any) -> tuple[int, int, int]:
    """(first, last, rows): the instrument's own samples in ``lo..hi`` (a cheap pass over
    ``ts`` and ``instrument`` only); an open end of the window shrinks to them."""
    first, last, rows = None, None, 0
    for part in src.batches([], {int(inst["id"])}, lo, hi):
        ts = part["ts"]
        if len(ts):
            rows += len(ts)
            pmin, pmax = int(ts.min()), int(ts.max())
            first = pmin if first is None else min(first, pmin)
            last = pmax if last is None else max(last, pmax)
    if first is None or last is None:
        raise _empty(src, inst, lo, hi)
    lo = first if start is None else lo
    hi = last if end is None else hi
    if hi == lo:
        hi = lo + 1
    return lo, hi, rows


def _fmt_ns(ns: int) -> str:
    s = (ns % _DAY_NS) / 1e9
    return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}:{s % 60:06.3f}"


def _empty(src: _Source, inst: dict[str, Any], lo: int, hi: int) -> ValueError:
    bounds = src.ts_bounds()
    span = "" if bounds is None else f" (the samples run {_fmt_ns(bounds[0])} to " \
                                     f"{_fmt_ns(bounds[1])})"
    return ValueError(f"no samples of {inst['symbol']!r} in {src.where} between "
                      f"{_fmt_ns(lo)} and {_fmt_ns(hi)}{span}")


class _Progress:
    """A progress line on a terminal for long reads (``progress=None``: only when long)."""

    def __init__(self, enabled: bool | None, rows: int, label: str) -> None:
        self.on = (rows > _PROGRESS_ROWS and sys.stderr.isatty()) if enabled is None \
            else bool(enabled)
        self.label = label
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.on or not total:
            return
        pct = 100 * done // total
        if pct != self._last:
            self._last = pct
            print(f"\r{self.label}: {pct:3d}% of {total:,} rows", end="", file=sys.stderr,
                  flush=True)

    def finish(self) -> None:
        if self.on and self._last >= 0:
            print(file=sys.stderr, flush=True)
            self._last = -1


class _Scaler:
    """Fixed-point ints to real numbers for one instrument's columns."""

    def __init__(self, src: _Source, inst: dict[str, Any]) -> None:
        self.px = 1.0 if src.prices_float else 10.0 ** int(inst.get("price_decimals", 0))
        self.qty = 1.0 if src.qty_float else 10.0 ** int(inst.get("qty_decimals", 0))

    def levels(self, part: dict[str, np.ndarray], side: str, k: int) -> tuple[np.ndarray,
                                                                              np.ndarray]:
        """Real prices and quantities of level ``k`` of ``side``; NaN where there is none."""
        px = part[f"{side}_px_{k}"].astype(np.float64) / self.px
        qty = part[f"{side}_qty_{k}"].astype(np.float64) / self.qty
        gone = ~(qty > 0)                      # 0 / 0 padding, or a null (NaN)
        px[gone] = np.nan
        qty[gone] = np.nan
        return px, qty

    def column(self, part: dict[str, np.ndarray], name: str) -> np.ndarray:
        if name in _DERIVED:
            bid, _ = self.levels(part, "bid", 1)
            ask, _ = self.levels(part, "ask", 1)
            derived: np.ndarray = (bid + ask) / 2 if name == "mid" else ask - bid
            return derived
        values = part[name].astype(np.float64)
        m = _LEVEL.match(name)
        if m:
            _, qty = self.levels(part, m.group(1), int(m.group(3)))
            values = values / (self.px if m.group(2) == "px" else self.qty)
            values[np.isnan(qty)] = np.nan
        elif column_unit(name) == "qty":
            values = values / self.qty      # depth, OFI, trade flow: fixed-point sums
        return values


def _xbins(ts: np.ndarray, lo: int, hi: int, width: int) -> np.ndarray:
    """The time bin (0..width-1) of each time in ``lo..hi``."""
    span = hi - lo + 1
    return np.minimum((ts - lo).astype(np.float64) * (width / span), width - 1).astype(np.int64)


def _last_per_bin(xi: np.ndarray, values: np.ndarray, out: np.ndarray) -> None:
    """``out[b]`` = the last value of bin ``b`` (NaN values skipped) for the bins present."""
    ok = ~np.isnan(values)
    xi, values = xi[ok], values[ok]
    if not len(xi):
        return
    bins, first_rev = np.unique(xi[::-1], return_index=True)
    out[bins] = values[::-1][first_rev]


def _ffill(a: np.ndarray) -> np.ndarray:
    """Forward fill NaN along the last axis (a bin without samples holds the book before)."""
    idx = np.where(~np.isnan(a), np.arange(a.shape[-1]), 0)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    filled: np.ndarray = np.take_along_axis(a, idx, axis=-1) if a.ndim > 1 else a[idx]
    return filled


#: Tick steps in seconds, from microseconds to hours.
_STEPS = (*(m * 10.0 ** e for e in range(-6, 1) for m in (1, 2, 5)),
          10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _time_axis(ax: Any, src: _Source, lo: int, hi: int) -> None:
    """x in seconds on the samples' clock, ticked at round times of day."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    span = max((hi - lo) / 1e9, 1e-6)
    step = next((s for s in _STEPS if span / s <= 8), _STEPS[-1])
    digits = 0 if step >= 1 else max(0, -math.floor(math.log10(step) + 1e-9))

    def fmt(x: float, _pos: Any) -> str:
        s = round(x % 86_400, digits)
        whole = f"{int(s // 3600) % 24:02d}:{int(s % 3600 // 60):02d}:{int(s % 60):02d}"
        return whole + (f"{s % 1:.{digits}f}"[1:] if digits else "")

    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(fmt))
    if src.ts_origin == "epoch":
        day = np.datetime64(lo - lo % _DAY_NS, "ns").astype("datetime64[D]")
        ax.set_xlabel(f"time (UTC, {day})")
    elif src.ts_origin == "midnight":
        date = src.meta.get("fastbook.date", "")
        ax.set_xlabel(f"time (exchange local{', ' + date if date else ''})")
    else:
        ax.set_xlabel("time")
    ax.set_xlim(lo / 1e9, hi / 1e9)


def _label(inst: dict[str, Any]) -> str:
    venue = inst.get("venue")
    return f"{inst['symbol']} ({venue})" if venue else str(inst["symbol"])


# -- the depth heatmap --------------------------------------------------------------------

#: Rows sampled (evenly, by position) to find where the levels rest.
_RANGE_SAMPLE = 200_000


def _price_range(src: _Source, inst: dict[str, Any], names: list[str], depth: int,
                 lo: int, hi: int, rows: int, scaler: _Scaler,
                 progress: _Progress) -> tuple[float, float]:
    """(low, high): where the levels rest, the outliers aside, the BBO always in.

    Every ``stride``-th row of the selection (by its position, so the same rows whatever
    the batches) gives the sample: the 1% and 99% quantiles of all its levels' prices,
    widened to the 0.5% and 99.5% quantiles of its best bids and of its best asks.
    """
    stride = max(1, rows // _RANGE_SAMPLE)
    at = 0
    best: dict[str, list[np.ndarray]] = {"bid": [], "ask": []}
    every: list[np.ndarray] = []
    for part in src.batches(names, {int(inst["id"])}, lo, hi, progress):
        n = len(part["ts"])
        take = np.flatnonzero((np.arange(at, at + n) % stride) == 0)
        at += n
        if not len(take):
            continue
        part = {k: v[take] for k, v in part.items()}
        for side in ("bid", "ask"):
            for k in range(1, depth + 1):
                p, _ = scaler.levels(part, side, k)
                every.append(p)
                if k == 1:
                    best[side].append(p)
    progress.finish()
    allp = np.concatenate(every) if every else np.zeros(0)
    allp = allp[~np.isnan(allp)]
    if not len(allp):
        return math.nan, math.nan
    lo_p, hi_p = float(np.quantile(allp, 0.01)), float(np.quantile(allp, 0.99))
    for side in ("bid", "ask"):
        b = np.concatenate(best[side])
        b = b[~np.isnan(b)]
        if len(b):
            lo_p = min(lo_p, float(np.quantile(b, 0.005)))
            hi_p = max(hi_p, float(np.quantile(b, 0.995)))
    pad = (hi_p - lo_p) * 0.03 or max(abs(hi_p) * 1e-3, 1.0 / scaler.px)
    return lo_p - pad, hi_p + pad


def _heat_grid(src: _Source, inst: dict[str, Any], names: list[str], depth: int, lo: int,
               hi: int, prices: tuple[float, float], width: int, height: int, scaler: _Scaler,
               progress: _Progress) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean quantity per (price bin, time bin), last best bid, last best ask per time bin)."""
    p0, p1 = prices
    total = np.zeros(height * width)
    count = np.zeros(width)
    best = {"bid": np.full(width, np.nan), "ask": np.full(width, np.nan)}
    for part in src.batches(names, {int(inst["id"])}, lo, hi, progress):
        if not len(part["ts"]):
            continue
        xi = _xbins(part["ts"], lo, hi, width)
        count += np.bincount(xi, minlength=width)
        for side in ("bid", "ask"):
            for k in range(1, depth + 1):
                px, qty = scaler.levels(part, side, k)
                if k == 1:
                    _last_per_bin(xi, px, best[side])
                yf = (px - p0) * (height / (p1 - p0))
                ok = (yf >= 0) & (yf < height)         # False for NaN (no level)
                flat = yf[ok].astype(np.int64) * width + xi[ok]
                total += np.bincount(flat, weights=qty[ok], minlength=height * width)
    progress.finish()
    grid = total.reshape(height, width)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(count > 0, grid / np.maximum(count, 1), np.nan)
    grid = _ffill(grid)
    # a bid or ask that was missing in a bin's last sample stays missing; a bin without a
    # sample holds the previous bin's
    seen = count > 0
    for side in best:
        line = best[side]
        line[seen & np.isnan(line)] = np.inf          # marks "no level" through the fill
        line = _ffill(line)
        line[np.isinf(line)] = np.nan
        best[side] = line
    return grid, best["bid"], best["ask"]


def depth_heatmap(samples: Any, instrument: Any = None, *, instruments: Any = None,
                  start: Any = None, end: Any = None, levels: int | None = None,
                  log: bool = True, width: int = 800, height: int = 300,
                  price_range: tuple[float, float] | None = None, cmap: str = "viridis",
                  figsize: tuple[float, float] = (12.0, 6.0), dpi: int = 100,
                  title: str | None = None, progress: bool | None = None,
                  ts_origin: str = "") -> Any:
    """A depth heatmap of one instrument's samples, with its best bid and ask over it.

    Parameters
    ----------
    samples : ReplayResult, path of a Parquet samples file, dict of sample columns,
        ``pyarrow.Table`` or ``pandas.DataFrame`` (the layouts in the module docstring).
    instrument : str or int, optional
        A symbol, ``"venue:symbol"`` or an instrument id; needed when the samples hold
        several instruments.
    instruments : list of dict, optional
        Each instrument's ``symbol``, ``price_decimals`` and ``qty_decimals`` (in id
        order, as ``ReplayResult.instruments``) for samples without the
        ``fastbook.instruments`` metadata (a plain dict of columns).
    start, end : optional
        The time window: ns as the samples hold them, ``"HH:MM:SS"`` on the samples'
        day, or an ISO date-time (UTC).
    levels : int, optional
        Levels per side to draw (default: all the samples hold).
    log : bool
        Colour on a log scale of quantity (default), else linear.
    width, height : int
        Time bins and price bins of the grid (the picture's resolution).
    price_range : (low, high), optional
        The y range in real prices (default: where the levels rest, 1% outliers aside,
        always including the best bid and ask).

    Returns the ``matplotlib.figure.Figure`` (``fig.savefig("x.png")``); its first axes
    hold the heatmap, with ``x`` in seconds on the samples' clock (labelled as time of
    day) and ``y`` in real prices. ValueError for samples without sample columns, an
    unknown instrument or an empty selection.
    """
    figure_cls = _mpl()
    src = _source(samples, instruments, ts_origin)
    inst = _instrument(src, instrument)
    depth = src.depth if levels is None else int(levels)
    if not 1 <= depth <= src.depth:
        raise ValueError(f"levels={levels} is outside 1..{src.depth} (the levels these "
                         f"samples hold)")
    if width < 2 or height < 2:
        raise ValueError(f"width and height must be at least 2, got {width} x {height}")
    lo, hi = _window(src, start, end)
    lo, hi, rows = _own_window(src, inst, lo, hi, start, end)
    names = [f"{s}_{f}_{k}" for s in ("bid", "ask") for f in ("px", "qty")
             for k in range(1, depth + 1)]
    scaler = _Scaler(src, inst)
    prog = _Progress(progress, src.rows, f"plot {inst['symbol']}: price range")
    p0, p1 = _price_range(src, inst, names, depth, lo, hi, rows, scaler, prog)
    if price_range is not None:
        p0, p1 = (float(v) for v in price_range)
        if not p0 < p1:
            raise ValueError(f"price_range must be (low, high) with low < high, got "
                             f"{price_range!r}")
    if math.isnan(p0):
        raise ValueError(f"every sample of {inst['symbol']!r} in the window has an empty "
                         f"book: nothing to draw")
    prog = _Progress(progress, src.rows, f"plot {inst['symbol']}: depth")
    grid, bid, ask = _heat_grid(src, inst, names, depth, lo, hi, (p0, p1), width, height,
                                scaler, prog)
    fig = figure_cls(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    _draw_heat(fig, ax, grid, bid, ask, (lo, hi), (p0, p1), log, cmap)
    _time_axis(ax, src, lo, hi)
    ax.set_ylim(p0, p1)
    ax.set_ylabel("price")
    ax.set_title(title if title is not None else
                 f"{_label(inst)}: depth, {depth} level{'s' if depth > 1 else ''} a side, "
                 f"{rows:,} samples")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def _draw_heat(fig: Any, ax: Any, grid: np.ndarray, bid: np.ndarray, ask: np.ndarray,
               times: tuple[int, int], prices: tuple[float, float], log: bool,
               cmap: str) -> None:
    from matplotlib.colors import LogNorm, Normalize

    lo, hi = times
    shown = np.where(grid > 0, grid, np.nan)
    finite = shown[np.isfinite(shown)]
    if len(finite):
        # the colour range leaves out the faintest 1% of cells (a level seen in one sample
        # of a thousand in its bin), which would otherwise stretch a log scale for decades
        vmin = float(np.percentile(finite, 1)) if log else float(finite.min())
        vmax = float(finite.max())
        norm = LogNorm(vmin, max(vmax, vmin * 1.0001)) if log \
            else Normalize(0.0, max(vmax, 1e-300))
    else:
        norm = Normalize(0.0, 1.0)
    ax.set_facecolor("#101018")
    image = ax.imshow(shown, origin="lower", aspect="auto", interpolation="nearest",
                      extent=(lo / 1e9, hi / 1e9, prices[0], prices[1]), cmap=cmap, norm=norm)
    fig.colorbar(image, ax=ax, label="resting quantity (mean per sample" +
                 (", log scale)" if log else ")"))
    x = (lo + (np.arange(len(bid) + 1)) * ((hi - lo + 1) / len(bid))) / 1e9
    ax.stairs(bid, x, color="#ff5050", linewidth=1.2, label="best bid", baseline=None)
    ax.stairs(ask, x, color="#50c8ff", linewidth=1.2, label="best ask", baseline=None)


# -- time series ----------------------------------------------------------------------------

def _series_columns(src: _Source, columns: Any) -> list[str]:
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    cols = list(columns or ())
    if not cols:
        raise ValueError("series() needs columns=[...]: e.g. ['mid', 'spread'] or feature "
                         "columns such as 'microprice'")
    available = [n for n in src.names if n not in ("ts", "instrument", "sequence",
                                                   "reason", "symbol")]
    missing = [c for c in cols if c not in src.names and c not in _DERIVED]
    if missing:
        raise ValueError(f"no column {', '.join(map(repr, missing))} in {src.where}; it has "
                         f"{_listing(list(_DERIVED) + available)}")
    text = [c for c in cols if c in src.non_numeric]
    if text:
        raise ValueError(f"column {', '.join(map(repr, text))} of {src.where} is not "
                         f"numeric: series() draws numbers")
    return cols


def _series_bins(src: _Source, inst: dict[str, Any], cols: list[str], lo: int, hi: int,
                 width: int, progress: _Progress) -> tuple[dict[str, np.ndarray], int, Any]:
    """Per column: min, max and last per time bin (or every sample when they are few)."""
    need = sorted({n for c in cols for n in ((["bid_px_1", "bid_qty_1", "ask_px_1",
                                               "ask_qty_1"] if c in _DERIVED else [c])
                                              + ([c.replace("_px_", "_qty_")]
                                                 if _LEVEL.match(c) else []))})
    scaler = _Scaler(src, inst)
    out = {c: np.stack([np.full(width, np.inf), np.full(width, -np.inf),
                        np.full(width, np.nan)]) for c in cols}
    rows = 0
    raw: dict[str, list[np.ndarray]] = {c: [] for c in ["ts", *cols]}
    for part in src.batches(need, {int(inst["id"])}, lo, hi, progress):
        n = len(part["ts"])
        if not n:
            continue
        rows += n
        xi = _xbins(part["ts"], lo, hi, width)
        if rows <= width * 4:
            raw["ts"].append(part["ts"])
        for c in cols:
            v = scaler.column(part, c)
            ok = ~np.isnan(v)
            np.minimum.at(out[c][0], xi[ok], v[ok])
            np.maximum.at(out[c][1], xi[ok], v[ok])
            _last_per_bin(xi, v, out[c][2])
            if rows <= width * 4:
                raw[c].append(v)
    progress.finish()
    exact = None
    if 0 < rows <= width * 4:
        exact = {c: np.concatenate(v) for c, v in raw.items()}
    return out, rows, exact


def series(samples: Any, columns: Any, instrument: Any = None, *, instruments: Any = None,
           start: Any = None, end: Any = None, width: int = 1000,
           figsize: tuple[float, float] | None = None, dpi: int = 100, title: str | None = None,
           progress: bool | None = None, ts_origin: str = "") -> Any:
    """Time series of chosen columns of one instrument's samples, one panel per column.

    ``columns``: names (a list, or one comma-separated string) of any numeric columns
    the samples hold (feature columns such as ``microprice``, ``ofi_l1``,
    ``imbalance_1``, ``vpin``; level columns such as ``bid_px_1``, drawn in real prices
    and quantities), or ``mid`` and ``spread`` (from the first level). A missing
    column is a ValueError naming it and listing those there are.

    Up to ``4 * width`` samples are drawn as they are; more are aggregated to
    ``width`` time bins, each drawn as its range (min to max, shaded) and its last
    value (the line). Other arguments as :func:`depth_heatmap`. Returns the Figure.
    """
    figure_cls = _mpl()
    src = _source(samples, instruments, ts_origin)
    cols = _series_columns(src, columns)
    inst = _instrument(src, instrument)
    if width < 2:
        raise ValueError(f"width must be at least 2, got {width}")
    lo, hi = _window(src, start, end)
    lo, hi, _ = _own_window(src, inst, lo, hi, start, end)
    prog = _Progress(progress, src.rows, f"plot {inst['symbol']}: series")
    binned, rows, exact = _series_bins(src, inst, cols, lo, hi, width, prog)
    if not rows:
        raise _empty(src, inst, lo, hi)
    fig = figure_cls(figsize=figsize or (12.0, 1.0 + 2.2 * len(cols)), dpi=dpi,
                     layout="constrained")
    axes = fig.subplots(len(cols), 1, sharex=True, squeeze=False)[:, 0]
    x = (lo + (np.arange(width) + 0.5) * ((hi - lo + 1) / width)) / 1e9
    for ax, c in zip(axes, cols, strict=True):
        if exact is not None:
            ax.step(exact["ts"] / 1e9, exact[c], where="post", linewidth=1.0, label=c)
        else:
            lo_v, hi_v, last = binned[c]
            has = np.isfinite(lo_v)
            lo_v = np.where(has, lo_v, np.nan)
            hi_v = np.where(has, hi_v, np.nan)
            ax.fill_between(x, lo_v, hi_v, step="mid", alpha=0.3, linewidth=0)
            ax.step(x, last, where="mid", linewidth=1.0, label=c)
        ax.set_ylabel(c)
        ax.grid(True, alpha=0.3)
    for ax in axes:
        _time_axis(ax, src, lo, hi)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    axes[0].set_title(title if title is not None else
                      f"{_label(inst)}: {', '.join(cols)}, {rows:,} samples")
    return fig


# -- files and results -----------------------------------------------------------------------

def plot_file(path: str | os.PathLike[str], out_png: str | os.PathLike[str] | None = None, *,
              kind: str = "heatmap", instrument: Any = None, columns: Any = None,
              start: Any = None, end: Any = None, **options: Any) -> Any:
    """Draw a Parquet samples file (``fb.replay(...).to_parquet`` or ``output=``) to a PNG.

    ``kind="heatmap"`` (:func:`depth_heatmap`) or ``"series"`` (:func:`series` of
    ``columns``); other keyword arguments go to them. ``out_png`` defaults to the file's
    name with ``.png``. Reads only the columns and row groups the picture needs, in
    batches. Returns the Figure.
    """
    path = os.fspath(path)
    if kind not in ("heatmap", "series"):
        raise ValueError(f"kind must be 'heatmap' or 'series', not {kind!r}")
    if kind == "series":
        fig = series(path, columns, instrument, start=start, end=end, **options)
    else:
        if columns:
            raise ValueError("columns= is for kind='series'")
        fig = depth_heatmap(path, instrument, start=start, end=end, **options)
    out = os.fspath(out_png) if out_png is not None else os.path.splitext(path)[0] + ".png"
    fig.savefig(out)
    return fig


def plot_result(result: Any, out_png: str | os.PathLike[str] | None = None, *,
                kind: str = "heatmap", instrument: Any = None, columns: Any = None,
                **options: Any) -> Any:
    """Draw a :class:`fastbook.ReplayResult`'s samples (or the Parquet file it streamed
    them to); ``kind`` and the options as :func:`plot_file`. Saves a PNG when
    ``out_png`` is given; returns the Figure."""
    if kind not in ("heatmap", "series"):
        raise ValueError(f"kind must be 'heatmap' or 'series', not {kind!r}")
    if kind == "series":
        fig = series(result, columns, instrument, **options)
    else:
        fig = depth_heatmap(result, instrument, **options)
    if out_png is not None:
        fig.savefig(os.fspath(out_png))
    return fig
