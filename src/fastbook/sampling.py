"""Top-of-book samples taken while a :class:`~fastbook.l3.BookSet` applies events.

A :class:`Sampler` is handed to ``BookSet.apply(events, sampler=...)``. While
the events are applied (in C, without the GIL, for the compiled core) it
writes a row into preallocated numpy columns whenever one of its rules fires
for a selected instrument:

``every=K``
    after every K-th event applied to the instrument (counted per
    instrument; events skipped in ``on_error="skip"`` mode do not count);
``interval=T``
    on a grid of exchange time: row ``ts = g`` holds the book *as of* grid
    point ``g`` (a multiple of T ns), i.e. after every event of the
    instrument with ``ts_exchange <= g``. The row is written when the
    instrument's first event after ``g`` arrives, before that event is
    applied. A quiet stretch spanning several grid points gives one row, at
    the first of them; the book did not change until the next row, so a
    forward fill (``pandas.merge_asof``, ``numpy.searchsorted``) recovers the
    regular grid exactly;
``on_bbo=True``
    after every event that changed the best bid or ask price or quantity.

A row has the columns ``ts`` (int64 ns: the event's exchange time, or the grid
point), ``instrument`` (uint32), ``sequence`` (uint64: the event's sequence
field; for an interval row, that of the first event after the grid point),
``reason`` (uint8 bits: :attr:`Sampler.EVERY` = 1, :attr:`Sampler.INTERVAL` = 2,
:attr:`Sampler.BBO` = 4, several when several rules fired for the row;
:func:`reason_names` reads them, and the outputs' ``reason="names"`` option
writes them as text such as ``"every|bbo"``), and ``bid_px``, ``bid_qty``, ``ask_px``, ``ask_qty``
(int64, shape ``(rows, depth)``, best level first, padded with 0 / 0 exactly
as ``Book.top``). One event gives at most one interval row (before it) and
one row for the other rules (after it).

``packets=True`` evaluates the same rules per *packet* (one venue message)
instead of per event, so that no row shows a message half-applied (a message
that moves twenty levels is one change of the book; a row taken inside it may
show a book that never existed, often a crossed one). A packet ends at an
event flagged ``Flags.LAST_IN_PACKET``, a ``SNAPSHOT_END``, a ``CLEAR``, the
event before a ``SNAPSHOT_BEGIN`` or ``CLEAR``, and the last event of each
``BookSet.apply`` call. Within a packet each instrument's events count as that
instrument's part of the packet: ``every`` counts packets, and ``every`` and
``on_bbo`` are evaluated after the instrument's last event of the packet (the
row has that event's ``ts`` and ``sequence``); ``interval`` is evaluated
before the instrument's first event of the packet, with that event's time. A
rule evaluated after an event that was skipped (``on_error="skip"``) does not
run for that packet.

``features=[...]`` adds feature columns to every row (microprice, imbalance,
OFI, trade flow, VPIN...: :mod:`fastbook.features`, ``docs/features.md``),
computed in the same loop; ``trades=True`` also keeps every trade print with
its aggressor side (:meth:`Sampler.trades`).

Columns are numpy arrays; :meth:`Sampler.columns` returns views of the rows
taken so far, and :meth:`Sampler.to_arrow` wraps them without copying (unless
asked for floats, nulls or names); :meth:`Sampler.to_pandas` gives a DataFrame
with one column per level (``fastbook.writers`` documents the output options).
:meth:`Sampler.take` hands the rows over and starts fresh buffers, so a long
replay can stream them to disk in bounded memory.

The slow but flexible path is ``BookSet.apply(events, callback=f)``, which
calls ``f(index, instrument)`` from Python after every applied event. ``f``
may read the books; while it runs they refuse updates (RuntimeError), and the
set refuses new instruments, ``clear`` and ``apply``.

>>> from fastbook.l3 import BookSet
>>> from fastbook.events import events_from_records
>>> from fastbook.sampling import Sampler
>>> bs = BookSet()
>>> bs.add_instrument("AAPL", price_decimals=4)
0
>>> s = Sampler(depth=2, on_bbo=True)
>>> bs.apply(events_from_records([
...     {"action": "add", "side": 1, "price": 1000, "qty": 5, "order_id": 1},
...     {"action": "add", "side": 1, "price": 900, "qty": 5, "order_id": 2},
...     {"action": "add", "side": 2, "price": 1100, "qty": 7, "order_id": 3},
... ]), sampler=s)
3
>>> s.columns()["bid_px"].tolist()
[[1000, 0], [1000, 900]]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fastbook.events import EVENT_DTYPE, Action, Flags
from fastbook.features import FeatureSet, parse_features

__all__ = ["REASONS", "TRADE_COLUMNS", "Sampler", "reason_labels", "reason_names"]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_LAST_IN_PACKET = int(Flags.LAST_IN_PACKET)
_CLEAR = int(Action.CLEAR)
_SNAPSHOT_BEGIN = int(Action.SNAPSHOT_BEGIN)
_SNAPSHOT_END = int(Action.SNAPSHOT_END)
# positions of the fields packet_marks reads in an event row (EVENT_DTYPE as a tuple)
_INSTRUMENT, _ACTION, _FLAGS = (EVENT_DTYPE.names.index(f) for f in ("instrument", "action",
                                                                        "flags"))
#: ``packet_marks`` bits: the instrument's first / last event in its packet.
MARK_FIRST, MARK_LAST = 1, 2
#: The largest depth a sampler takes.
MAX_DEPTH = 1000

#: The per-row columns and their dtypes, then the per-level columns (int64, rows x depth).
SCALAR_COLUMNS = (("ts", np.int64), ("instrument", np.uint32), ("sequence", np.uint64),
                  ("reason", np.uint8))
LEVEL_COLUMNS = ("bid_px", "bid_qty", "ask_px", "ask_qty")
#: The trades table (``Sampler(trades=True)``): one row per trade print, in apply order.
#: ``aggressor``: 1 buy, 2 sell, 0 unknown; ``rule``: how it was found (index into
#: ``fastbook._pyfeatures.RULES``: none, venue, resting, quote, tick; docs/features.md).
TRADE_COLUMNS = (("ts", np.int64), ("instrument", np.uint32), ("sequence", np.uint64),
                 ("price", np.int64), ("qty", np.int64), ("aggressor", np.int8),
                 ("rule", np.uint8), ("flags", np.uint16))

#: The ``reason`` bits and their names, lowest bit first (``Sampler.EVERY`` etc.).
REASONS = ((1, "every"), (2, "interval"), (4, "bbo"))
_REASON_BITS = 7


def reason_names(reason: int) -> tuple[str, ...]:
    """The rules a sample row's ``reason`` bits name, lowest bit first.

    >>> reason_names(5)
    ('every', 'bbo')
    >>> reason_names(Sampler.INTERVAL)
    ('interval',)
    """
    reason = int(reason)
    if not 0 <= reason <= _REASON_BITS:
        raise ValueError(f"a sample reason is a combination of the bits 1 (every), "
                         f"2 (interval) and 4 (bbo); got {reason}")
    return tuple(name for bit, name in REASONS if reason & bit)


#: ``"|"``-joined names for every value of the ``reason`` bits (index = bits).
REASON_LABELS = tuple("|".join(reason_names(r)) for r in range(_REASON_BITS + 1))


def reason_labels(reasons: np.ndarray) -> tuple[list[str], np.ndarray]:
    """A ``reason`` column as categories: (``REASON_LABELS``, int8 codes into them).

    >>> labels, codes = reason_labels(np.array([4, 5], np.uint8))
    >>> [labels[c] for c in codes]
    ['bbo', 'every|bbo']
    """
    reasons = np.asarray(reasons)
    if len(reasons) and int(reasons.max()) > _REASON_BITS:
        bad = int(reasons[reasons > _REASON_BITS][0])
        raise ValueError(f"a sample reason is a combination of the bits 1, 2 and 4; got {bad}")
    return list(REASON_LABELS), reasons.astype(np.int8)


def _positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) \
            or not 1 <= value <= _INT64_MAX:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


#: Columns at least this large grow into fresh arrays rather than in place (numpy backs
#: fresh arrays of 4 MiB or more with transparent huge pages where the kernel allows).
_FRESH_BYTES = 4 << 20


def _moved(old: np.ndarray, shape: tuple[int, ...], count: int) -> np.ndarray:
    """A new array of ``shape`` holding the first ``count`` rows of ``old`` (rows past them
    are never read: the sampler writes a row before it counts it)."""
    new = np.empty(shape, old.dtype)
    keep = min(count, shape[0])
    new[:keep] = old[:keep]
    return new


class Sampler:
    """Rules and preallocated columns for top-of-book samples (see the module docstring).

    Parameters
    ----------
    depth : int
        Levels per side in each row (1 to 1000).
    every : int, optional
        Take a row after every ``every``-th event of an instrument.
    interval : int, optional
        Take a row per grid point of ``interval`` ns of exchange time.
    on_bbo : bool
        Take a row after every event that changed the best bid or ask.
    instruments : iterable of int, optional
        Instrument ids to sample; all (including ones added later) when omitted.
    capacity : int
        Rows allocated up front; the buffers double when full.
    packets : bool
        Evaluate the rules per packet (venue message) instead of per event
        (see the module docstring).
    features : iterable of str, or str, optional
        Feature columns computed at each row (:mod:`fastbook.features`,
        ``docs/features.md``): ``["mid", "spread", "ofi_5", "trade_flow"]`` or
        ``"mid,spread"``.
    trades : bool
        Also keep every trade print of the sampled instruments, with its
        aggressor side, in a table of its own (:meth:`trades`).
    """

    #: ``reason`` bit: the ``every`` rule fired.
    EVERY = 1
    #: ``reason`` bit: the row is an ``interval`` grid point.
    INTERVAL = 2
    #: ``reason`` bit: the best bid or ask changed.
    BBO = 4

    def __init__(self, depth: int = 10, *, every: int | None = None,
                 interval: int | None = None, on_bbo: bool = False,
                 instruments: Iterable[int] | None = None, capacity: int = 4096,
                 packets: bool = False, features: Iterable[Any] | str | None = None,
                 trades: bool = False) -> None:
        if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) \
                or not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be an integer from 1 to {MAX_DEPTH}, got {depth!r}")
        self.depth = int(depth)
        self.every = _positive("every", every)
        self.interval = _positive("interval", interval)
        if not isinstance(on_bbo, bool):
            raise TypeError(f"on_bbo must be a bool, got {on_bbo!r}")
        self.on_bbo = on_bbo
        if not isinstance(packets, bool):
            raise TypeError(f"packets must be a bool, got {packets!r}")
        self.packets = packets
        if not isinstance(trades, bool):
            raise TypeError(f"trades must be a bool, got {trades!r}")
        if self.every is None and self.interval is None and not on_bbo and not trades:
            raise ValueError("a Sampler needs at least one rule: every=, interval= or on_bbo=True"
                             " (or trades=True alone, for the trades table)")
        self.features: FeatureSet = parse_features(features)
        self.record_trades = trades
        from fastbook._pyfeatures import FeatureState

        self._fstate = FeatureState(self.features)
        self._tcount = 0
        self._tcols: dict[str, np.ndarray] = {
            name: np.zeros(capacity if trades else 0, t) for name, t in TRADE_COLUMNS}
        if instruments is None:
            self._chosen: frozenset[int] | None = None
        else:
            chosen = []
            for i in instruments:
                if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or i < 0:
                    raise ValueError(f"instruments must be instrument ids (ints >= 0), "
                                     f"got {i!r}")
                chosen.append(int(i))
            self._chosen = frozenset(chosen)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self._capacity0 = capacity
        self._count = 0
        self._allocate(capacity)
        # per-instrument state, grown by _prepare to the BookSet's size
        self._owner: Any = None
        self._selected = np.zeros(0, np.uint8)
        self._since = np.zeros(0, np.int64)
        self._next_t = np.zeros(0, np.int64)
        self._bbo = np.zeros((0, 4), np.int64)
        self._metas: list[dict[str, Any]] = []      # BookSet.instrument(i), by id
        self._kinds: list[str] = []
        self._busy = False

    # -- storage ------------------------------------------------------------
    def _allocate(self, capacity: int) -> None:
        self._cols: dict[str, np.ndarray] = {name: np.zeros(capacity, t)
                                             for name, t in SCALAR_COLUMNS}
        for name in LEVEL_COLUMNS:
            self._cols[name] = np.zeros((capacity, self.depth), np.int64)
        for col in self.features.columns:
            self._cols[col.name] = np.zeros(capacity, col.dtype)

    @property
    def capacity(self) -> int:
        """Rows the current buffers hold before they grow."""
        # the shortest column: a growth that ran out of memory halfway (columns grow one
        # by one) must not let the C loop write past the end of one it did not reach
        return min(len(col) for col in self._cols.values())

    @property
    def trade_capacity(self) -> int:
        """Trade rows the current buffers hold before they grow."""
        return min(len(col) for col in self._tcols.values())

    def _grow_trades(self, need: int) -> None:
        """Make room for at least ``need`` trade rows (called with the GIL)."""
        cap = max(self.trade_capacity, 1)
        if need <= self.trade_capacity:
            return
        while cap < need:
            cap *= 2
        for name in list(self._tcols):
            self._tcols[name] = _moved(self._tcols[name], (cap,), self._tcount)

    def _grow(self, need: int) -> None:
        """Make room for at least ``need`` rows in total (called with the GIL)."""
        cap = self.capacity
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        self._resize(cap)

    def _resize(self, rows: int, *, copy: bool = True) -> None:
        """Give every column ``rows`` rows, keeping the first ``self._count``.

        A column growing to ``_FRESH_BYTES`` or more moves to a fresh array
        (huge pages, and its spare rows stay untouched until written). Smaller
        ones, and any that shrink, change in place (``ndarray.resize``, a realloc)
        when nothing else refers to them; otherwise, as when views from
        :meth:`columns` are out, they move to a new array (or, with
        ``copy=False``, stay as they are), so those views stay valid and
        unchanged.
        """
        for name in list(self._cols):
            shape = (rows, *self._cols[name].shape[1:])
            nbytes = int(np.prod(shape)) * self._cols[name].itemsize
            if copy and nbytes >= _FRESH_BYTES and rows > self._cols[name].shape[0]:
                # numpy asks the kernel to back a fresh array this large with huge pages
                # (a realloc'd one never gets them) and leaves its new rows untouched,
                # where resize would zero them all at once: a sampled replay of 20M
                # messages (1.9 GiB of rows) ran in 4 s instead of 5-6 and peaked at
                # 2.0 GiB resident instead of 3.3
                self._cols[name] = _moved(self._cols[name], shape, self._count)
                continue
            try:
                # no local name for the column: numpy refuses when anything else holds it
                self._cols[name].resize(shape)
            except ValueError:
                if not copy:
                    continue
                self._cols[name] = _moved(self._cols[name], shape, self._count)

    # -- binding to a BookSet (called by BookSet.apply) ---------------------
    def _prepare(self, bookset: Any) -> None:
        """Bind to ``bookset`` and size the per-instrument state to its instruments."""
        if self._busy:
            raise RuntimeError("this Sampler is in use by BookSet.apply in another thread")
        if self._owner is None:
            self._owner = bookset
        elif self._owner is not bookset:
            raise ValueError("this Sampler already samples another BookSet; use one Sampler "
                             "per BookSet")
        n = len(bookset)
        old = len(self._since)
        if n <= old:
            return
        selected = np.zeros(n, np.uint8)
        since = np.zeros(n, np.int64)
        next_t = np.full(n, _INT64_MIN, np.int64)
        bbo = np.zeros((n, 4), np.int64)
        selected[:old] = self._selected
        since[:old] = self._since
        next_t[:old] = self._next_t
        bbo[:old] = self._bbo
        for i in range(old, n):
            selected[i] = self._chosen is None or i in self._chosen
            top = bookset[i].top(1)
            bbo[i] = top[:, 0]
        self._fstate.grow(bookset, n)      # the features' state and per-instrument scales
        self._metas += [bookset.instrument(i) for i in range(old, n)]
        self._kinds += [m["kind"] for m in self._metas[old:]]
        self._selected, self._since, self._next_t, self._bbo = selected, since, next_t, bbo

    def _save(self) -> tuple[Any, ...]:
        return (self._count, self._since.copy(), self._next_t.copy(), self._bbo.copy(),
                self._tcount, self._fstate.save())

    def _restore(self, saved: tuple[Any, ...]) -> None:
        self._count, since, next_t, bbo, self._tcount, fstate = saved
        self._since[: len(since)] = since
        self._next_t[: len(next_t)] = next_t
        self._bbo[: len(bbo)] = bbo
        self._fstate.restore(fstate)

    @property
    def _flows(self) -> bool:
        """Whether events must be looked at between rows (trades or OFI)."""
        return self.record_trades or self.features.trades or self._fstate.k > 0

    # -- the rules, in Python (the pure-Python BookSet's path) ---------------
    def _row(self, book: Any, inst: int, ts: int, sequence: int, reason: int) -> None:
        if self._count == self.capacity:
            self._grow(self._count + 1)
        r = self._count
        cols = self._cols
        cols["ts"][r] = ts
        cols["instrument"][r] = inst
        cols["sequence"][r] = sequence
        cols["reason"][r] = reason
        top = book.top(self.depth)
        cols["bid_px"][r] = top[0]
        cols["bid_qty"][r] = top[1]
        cols["ask_px"][r] = top[2]
        cols["ask_qty"][r] = top[3]
        if len(self.features):
            from fastbook._pyfeatures import row_values

            values = row_values(self.features, book, self._metas[inst],
                                self._fstate.fixed[inst], self._fstate, inst)
            for col, value in zip(self.features.columns, values, strict=True):
                cols[col.name][r] = value
        self._count = r + 1

    def _trade_before(self, book: Any, inst: int, row: tuple[Any, ...]) -> Any:
        """The trade print the event ``row`` would make (None: none, or not sampled)."""
        if not self._selected[inst] or not (self.record_trades or self.features.trades):
            return None
        return self._fstate.trade_of(book, self._kinds[inst], row)

    def _ofi_sides(self, book: Any, inst: int, row: tuple[Any, ...]) -> int:
        """Per-event sampling: the sides of the top levels event ``row`` can change
        (before it is applied; 0: OFI skips it); packet mode: both, at a packet's end."""
        if self.packets or not self._fstate.k or not self._selected[inst]:
            return 3
        return self._fstate.ofi_sides(book, self._kinds[inst], row)

    def _event_after(self, book: Any, inst: int, row: tuple[Any, ...], trade: Any,
                     last: bool, sides: int = 3) -> None:
        """After event ``row`` was applied: its trade counted, OFI at a packet's end (on
        ``sides``, :meth:`_ofi_sides`)."""
        if not self._selected[inst]:
            return
        if trade is not None:
            self._fstate.trade_commit(inst, trade)
            if self.record_trades:
                if self._tcount == self.trade_capacity:
                    self._grow_trades(self._tcount + 1)
                t = self._tcount
                tc = self._tcols
                tc["ts"][t] = row[0]
                tc["instrument"][t] = inst
                tc["sequence"][t] = row[10]
                tc["price"][t], tc["qty"][t], tc["aggressor"][t], tc["rule"][t] = trade
                tc["flags"][t] = row[5]
                self._tcount = t + 1
        if last and sides and self._fstate.k:
            self._fstate.ofi_update(book, inst, row[3], row[5], sides)

    def _before(self, book: Any, inst: int, ts: int, sequence: int) -> None:
        """The interval rule, before an event of ``inst`` at exchange time ``ts``."""
        if self.interval is None or not self._selected[inst]:
            return
        t = self.interval
        due = int(self._next_t[inst])
        if due != _INT64_MIN and ts > due:
            self._row(book, inst, due, sequence, self.INTERVAL)
        if due == _INT64_MIN or ts > due:
            self._next_t[inst] = _ceil_grid(ts, t)

    def _after(self, book: Any, inst: int, ts: int, sequence: int) -> None:
        """The every and on_bbo rules, after an event of ``inst`` was applied."""
        if not self._selected[inst]:
            return
        reason = 0
        if self.every is not None:
            self._since[inst] += 1
            if self._since[inst] >= self.every:
                self._since[inst] = 0
                reason |= self.EVERY
        if self.on_bbo:
            now = book.top(1)[:, 0]
            if not np.array_equal(now, self._bbo[inst]):
                self._bbo[inst] = now
                reason |= self.BBO
        if reason:
            self._row(book, inst, ts, sequence, reason)

    # -- results ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def columns(self) -> dict[str, np.ndarray]:
        """Views of the rows taken so far, by column name (no copy).

        The views stay valid and unchanged whatever happens to the sampler later
        (:meth:`clear` and :meth:`take` start new buffers rather than reuse them).
        """
        n = self._count
        return {name: col[:n] for name, col in self._cols.items()}

    def trades(self) -> dict[str, np.ndarray]:
        """Views of the trade prints kept so far (``trades=True``), by column.

        One row per EXECUTE or TRADE event of a sampled instrument that was
        applied (non-printable executions excluded: their shares print later,
        in a cross), with the columns of :data:`TRADE_COLUMNS`.
        """
        n = self._tcount
        return {name: col[:n] for name, col in self._tcols.items()}

    def take_trades(self) -> dict[str, np.ndarray]:
        """The trade prints so far (as :meth:`trades`); the trades table then starts empty."""
        if self._busy:
            raise RuntimeError("this Sampler is in use by BookSet.apply in another thread")
        out = {name: col[: self._tcount].copy() for name, col in self._tcols.items()}
        self._tcount = 0
        return out

    def take(self) -> dict[str, np.ndarray]:
        """The rows taken so far (as :meth:`columns`); the sampler then starts empty.

        Per-instrument rule state (event counters, next grid point, last BBO)
        carries on, so sampling continues seamlessly over successive batches.
        Columns of which no views are out are cut to the rows in place, giving
        back the spare capacity of their last growth.
        """
        if self._busy:
            raise RuntimeError("this Sampler is in use by BookSet.apply in another thread")
        if self._count < self.capacity:
            self._resize(self._count, copy=False)
        out = self.columns()
        self.clear()
        return out

    def clear(self) -> None:
        """Drop the rows (into fresh buffers); rule state carries on, as in :meth:`take`."""
        if self._busy:
            raise RuntimeError("this Sampler is in use by BookSet.apply in another thread")
        self._count = 0
        self._allocate(self._capacity0)

    def to_arrow(self, *, prices: str = "int", quantities: str = "int",
                 timestamps: str = "int", date: Any = None, missing: str = "zero",
                 reason: str = "bits", ts_origin: str = "") -> Any:
        """The rows as a ``pyarrow.Table``; by default without copying the data.

        Columns as :meth:`columns`, the level columns as
        ``fixed_size_list<depth>``. The options are those of
        :mod:`fastbook.writers`: ``prices="float"`` / ``quantities="float"``
        divide by each row's instrument's scale (the BookSet the sampler
        sampled), ``missing="nan"`` makes missing levels null,
        ``reason="names"`` writes the rules' names, ``timestamps="datetime"``
        needs ``ts_origin`` (``"epoch"``, or ``"midnight"`` with ``date=``).
        Needs pyarrow (``pip install 'fastbook-lob[arrow]'``).
        """
        from fastbook._extras import require
        from fastbook.writers import OutputOptions

        pa = require("pyarrow", "arrow", "Sampler.to_arrow")
        options = OutputOptions(prices=prices, quantities=quantities, timestamps=timestamps,
                                date=date, missing=missing, reason=reason)
        if options == OutputOptions():
            cols = self.columns()
            arrays = {name: pa.array(cols[name]) for name, _ in SCALAR_COLUMNS}
            for name in LEVEL_COLUMNS:
                flat = pa.array(cols[name].reshape(-1))
                arrays[name] = pa.FixedSizeListArray.from_arrays(flat, self.depth)
            for col in self.features.columns:
                arrays[col.name] = pa.array(cols[col.name])
            return pa.table(arrays)
        from fastbook.writers import arrow_array, output_columns

        cols = {c.name: c for c in output_columns(self.columns(), self._instruments(),
                                                     options, ts_origin)}
        arrays = {name: arrow_array(pa, cols[name]) for name, _ in SCALAR_COLUMNS}
        for name in LEVEL_COLUMNS:
            levels = [cols[f"{name}_{k + 1}"] for k in range(self.depth)]
            values = np.column_stack([c.values for c in levels]).reshape(-1)
            mask = None if levels[0].mask is None else \
                np.column_stack([c.mask for c in levels]).reshape(-1)
            arrays[name] = pa.FixedSizeListArray.from_arrays(pa.array(values, mask=mask),
                                                             self.depth)
        for col in self.features.columns:
            arrays[col.name] = arrow_array(pa, cols[col.name])
        return pa.table(arrays)

    def to_pandas(self, *, prices: str = "int", quantities: str = "int",
                  timestamps: str = "int", date: Any = None, missing: str = "zero",
                  reason: str = "bits", ts_origin: str = "") -> Any:
        """The rows as a ``pandas.DataFrame``, one column per level field.

        The columns of ``ReplayResult.to_pandas`` (``ts``, ``instrument``,
        ``symbol``, ``sequence``, ``reason``, ``bid_px_1``, ``bid_qty_1``...), with
        the options of :meth:`to_arrow`. Needs pandas
        (``pip install 'fastbook-lob[pandas]'``).
        """
        from fastbook.writers import OutputOptions, samples_frame

        options = OutputOptions(prices=prices, quantities=quantities, timestamps=timestamps,
                                date=date, missing=missing, reason=reason)
        return samples_frame(self.columns(), self._instruments(), options=options,
                             ts_origin=ts_origin)

    def _instruments(self) -> list[dict[str, Any]]:
        from fastbook.writers import instruments_of

        return [] if self._owner is None else instruments_of(self._owner)

    def __repr__(self) -> str:
        rules = []
        if self.every is not None:
            rules.append(f"every={self.every}")
        if self.interval is not None:
            rules.append(f"interval={self.interval}")
        if self.on_bbo:
            rules.append("on_bbo=True")
        if self.packets:
            rules.append("packets=True")
        if len(self.features):
            rules.append(f"features={','.join(self.features.names)}")
        return f"<fastbook.Sampler depth={self.depth} {' '.join(rules)} rows={self._count}>"


def check_sampler(sampler: Any, callback: Any) -> Any:
    """The argument checks ``BookSet.apply`` makes on ``sampler`` and ``callback``."""
    if sampler is not None and not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a fastbook.sampling.Sampler, "
                        f"got {type(sampler).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    return sampler


def packet_marks(rows: list[tuple[Any, ...]]) -> list[int]:
    """Per event (``EVENT_DTYPE`` rows as tuples): :data:`MARK_FIRST` if it is its
    instrument's first event in its packet, :data:`MARK_LAST` if it is its instrument's
    last (``Sampler(packets=True)``)."""
    n = len(rows)
    ends = []
    for i, row in enumerate(rows):
        action = row[_ACTION]
        ends.append(bool(row[_FLAGS] & _LAST_IN_PACKET) or action in (_SNAPSHOT_END, _CLEAR)
                    or i == n - 1 or rows[i + 1][_ACTION] in (_SNAPSHOT_BEGIN, _CLEAR))
    marks = [0] * n
    start = 0
    for i in range(n):
        if not ends[i]:
            continue
        seen: set[int] = set()
        for j in range(start, i + 1):           # first of each instrument
            if rows[j][_INSTRUMENT] not in seen:
                seen.add(rows[j][_INSTRUMENT])
                marks[j] |= MARK_FIRST
        seen.clear()
        for j in range(i, start - 1, -1):       # last of each instrument
            if rows[j][_INSTRUMENT] not in seen:
                seen.add(rows[j][_INSTRUMENT])
                marks[j] |= MARK_LAST
        start = i + 1
    return marks


def _ceil_grid(ts: int, t: int) -> int:
    """The smallest multiple of ``t`` that is >= ``ts``, at most INT64_MAX."""
    return min(-((-ts) // t) * t, _INT64_MAX)
