"""Periodic top-of-book samples of live books, in the replay's sample layout.

A :class:`LiveSampler` takes rows of every book of a :class:`fastbook.live.LiveBooks`
with the columns, dtypes and fixed-point scales ``fb.replay(..., every=...,
depth=...)`` gives for an L2 feed (``ts``, ``instrument``, ``symbol``,
``sequence``, ``reason``, then ``bid_px_1, bid_qty_1, ask_px_1, ask_qty_1``...),
and streams them through the replay's own :class:`fastbook.writers.SampleWriter`
to a ``.parquet``, ``.arrow`` or ``.csv`` file in row groups while it runs
(bounded memory), or keeps them for :meth:`LiveSampler.take`.

Rules (:func:`fastbook.driver.parse_every`): a time (``"100ms"``) samples every
book on a grid of the *local wall clock* (``ts`` is the grid point; a replay's
grid is exchange time, which a receiver cannot wait on); ``"5000msgs"`` after
every 5000th applied message of a book and ``"bbo"`` after each message that
changed its best bid or ask, with ``ts`` the venue's time of that message (as
a replay has it; the receive time when the venue gives none). Rows are always
taken between messages, never inside one.

``features=`` adds the replay's feature columns (:mod:`fastbook.features`,
``docs/features.md``) to each row, computed from the live book at the row and,
for ``ofi_K``, from every applied venue message since the book's previous row
(a resync or a new connection's book starts a fresh reference, as a replay's
snapshot does). Live rows are few (a book a grid point), so they are computed by
the features' pure-Python twin, which gives the compiled kernel's values exactly.
Trade features (``trade_flow``, ``vpin``) count the venues' trade prints
(``fb.live(..., trades=True)``; without it their columns stay 0 / NaN), with the
venue's aggressor side.

A book that is not live (connecting, syncing, resyncing, stale or down) is
**skipped**, never written: :attr:`LiveSampler.skipped` counts the rows left
out by state. ``sequence`` is the venue's last applied update id (0 when the
venue has none). Instrument ids are given in the order books are first
sampled; the file's ``fastbook.instruments`` metadata lists each with its
venue, scales, tick and lot size, as a replay's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from typing import Any

import numpy as np

from fastbook._pyfeatures import RULE_VENUE, FeatureState, row_values
from fastbook.driver import parse_every
from fastbook.features import parse_features
from fastbook.sampling import LEVEL_COLUMNS, Sampler
from fastbook.writers import OutputOptions, SampleWriter, empty_columns, samples_table

__all__ = ["LiveSampler"]

_ROW_GROUP_BYTES = 64 << 20          # as the replay: a row group holds at most ~64 MiB
_SNAPSHOT_END = 10                   # fastbook.events.Action.SNAPSHOT_END: a new reference


class _Books:
    """What FeatureState.grow reads of a book set, for a LiveSampler's instruments."""

    def __init__(self, sampler: LiveSampler, book: Any) -> None:
        self._sampler, self._book = sampler, book

    def instrument(self, i: int) -> dict[str, Any]:
        return self._sampler._instruments[i]

    def __getitem__(self, i: int) -> Any:
        return self._book


def _row_bytes(depth: int) -> int:
    return 8 + 4 + 8 + 1 + 4 * 8 * depth


class LiveSampler:
    """Top-``depth`` samples of every book of ``feed`` (see the module docstring).

    ``every``: a :func:`fastbook.driver.parse_every` rule (``"100ms"``,
    ``"1s,bbo"``, ``"500msgs"``). ``output``: a ``.parquet`` / ``.arrow`` /
    ``.csv`` path, written in row groups of at most ``row_group_size`` rows, and
    at least every ``flush_s`` seconds when rows are waiting. A row group is
    written on the event loop: 16,384 rows of depth 10 take about 20-30 ms to
    encode as Parquet on the 2-core test machine (about 1.3-1.6 us a row), so
    the default keeps that pause short; a row costs about 3-4 us to take. Without it rows
    stay in memory until :meth:`take`. ``options``: the replay's output options
    (``prices="float"``, ``missing="nan"``...; :class:`fastbook.writers.OutputOptions`).

    Use ``async with feed.sampler(...) as s:`` (or :meth:`start` / :meth:`stop`,
    which closes the file) on the feed's event loop.
    """

    def __init__(self, feed: Any, every: Any, *, depth: int = 10,
                 output: str | os.PathLike[str] | None = None, row_group_size: int = 1 << 14,
                 flush_s: float = 10.0, features: Any = None, **options: Any) -> None:
        rules = parse_every(every)
        Sampler(depth, **rules)                     # the replay's checks of depth and rules
        self.features = parse_features(features)
        self._fstate = FeatureState(self.features)
        self._fbook: dict[int, int] = {}            # instrument -> id() of its book
        self.feed = feed
        self.depth = int(depth)
        self.interval: int | None = rules.get("interval")
        self.every: int | None = rules.get("every")
        self.on_bbo: bool = bool(rules.get("on_bbo"))
        self.flush_s = float(flush_s)
        self.group_rows = max(1, min(int(row_group_size), _ROW_GROUP_BYTES // _row_bytes(depth)))
        self.options = OutputOptions(**options)
        venues = sorted({t.venue for t in feed.session.tracks.values()})
        self.codec = ",".join(venues)
        self.writer: SampleWriter | None = None
        if output is not None:
            self.writer = SampleWriter(output, self.group_rows, self.codec, "epoch",
                                       self.options)
        #: rows left out because the book was not live, by state
        self.skipped: Counter[str] = Counter()
        #: grid points passed while the loop was busy (one row is taken for the latest)
        self.late = 0
        #: rows taken in all (written or waiting)
        self.rows = 0
        self._ids: dict[tuple[str, str], int] = {}
        self._instruments: list[dict[str, Any]] = []
        self._since: Counter[tuple[str, str]] = Counter()
        self._n = 0                         # rows waiting in the buffers below
        self._alloc()
        self._kept: list[dict[str, np.ndarray]] = []
        self._last_flush = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> LiveSampler:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> LiveSampler:
        """Start sampling (on the running loop: the feed's)."""
        if self._task is not None or self._closed:
            raise RuntimeError("this LiveSampler was started already")
        if self.every is not None or self.on_bbo or self._fstate.k:
            self.feed.on_notice(self._notice)
        if self.features.trades:
            self.feed.on_trade(self._trade)
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                           name="fastbook-live-sampler")
        return self

    async def stop(self) -> None:
        """Stop sampling; write the rows still waiting and close the file."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError):
            self.feed.driver.callbacks.remove(self._notice)
        with contextlib.suppress(ValueError):
            self.feed.driver.trade_callbacks.remove(self._trade)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.flush()
        if self.writer is not None:
            self.writer.close(self._instruments)

    async def _run(self) -> None:
        while True:
            if self.interval is None:
                await asyncio.sleep(min(1.0, self.flush_s))
            else:
                t = self.interval
                now = time.time_ns()
                due = (now // t + 1) * t
                while now < due:            # the loop's clock is not the wall clock
                    await asyncio.sleep((due - now) / 1e9)
                    now = time.time_ns()
                grid = now // t * t
                self.late += max(0, (grid - due) // t)
                self.sample(grid, Sampler.INTERVAL)
            if self.writer is not None and self._n and \
                    time.monotonic() - self._last_flush >= self.flush_s:
                self.flush()

    # --- rows ------------------------------------------------------------------------

    def sample(self, ts: int, reason: int = Sampler.INTERVAL) -> int:
        """One row per live book now, with time ``ts``; the rows taken (others skipped)."""
        taken = 0
        for key, t in self.feed.session.tracks.items():
            taken += self._take(key, t, ts, reason)
        return taken

    def _take(self, key: tuple[str, str], t: Any, ts: int, reason: int) -> int:
        state = t.state.value
        c = t.primary
        if state != "live" or c is None or not c.open or not c.feed.is_synced(t.native):
            self.skipped[state if state != "live" else "not_synced"] += 1
            return 0
        s = c.feed.symbol_state(t.native)
        book = s.book
        inst = self._id(key, t, s)
        if inst < 0:
            self.skipped["rescaled"] += 1
            return 0
        r = self._n
        self._ts[r], self._inst[r], self._seq[r], self._reason[r] = \
            ts, inst, s.last_seq or 0, reason
        book.top(self.depth, out=self._levels[r])           # written in place
        if len(self.features):
            self._feature_row(book, inst, r)
        self._n = r + 1
        self.rows += 1
        if self._n >= self.group_rows:
            self.flush()
        return 1

    def _alloc(self) -> None:
        """Fresh buffers for one row group (the previous ones belong to the rows taken)."""
        rows = self.group_rows
        self._ts = np.zeros(rows, np.int64)
        self._inst = np.zeros(rows, np.uint32)
        self._seq = np.zeros(rows, np.uint64)
        self._reason = np.zeros(rows, np.uint8)
        self._levels = np.zeros((rows, 4, self.depth), np.int64)
        self._fcols = {c.name: np.zeros(rows, c.dtype) for c in self.features.columns}

    # --- features --------------------------------------------------------------------

    def _flow_state(self, inst: int, book: Any) -> None:
        """Size the feature state to ``inst``; a book it has not seen starts afresh."""
        if inst >= len(self._fstate.scale):
            self._fstate.grow(_Books(self, book), inst + 1)
            self._fbook[inst] = id(book)
        elif self._fbook.get(inst) != id(book):
            self._fbook[inst] = id(book)
            self._fstate.ofi_update(book, inst, _SNAPSHOT_END, 0)

    def _feature_row(self, book: Any, inst: int, r: int) -> None:
        self._flow_state(inst, book)
        values = row_values(self.features, book, self._instruments[inst],
                            self._fstate.fixed[inst], self._fstate, inst)
        for col, value in zip(self.features.columns, values, strict=True):
            self._fcols[col.name][r] = value

    def _trade(self, p: Any) -> None:
        """A trade print of a book: counted in its trade flow and VPIN buckets."""
        t = self.feed.session.track(p.venue, p.symbol)
        c = t.primary
        if c is None:
            return
        s = c.feed.symbol_state(t.native)
        inst = self._id((t.venue, t.native), t, s)
        if inst < 0:
            return
        self._flow_state(inst, s.book)
        self._fstate.trade_commit(inst, (p.price, p.qty, p.aggressor, RULE_VENUE))

    def _ofi(self, key: tuple[str, str], t: Any, kind: str) -> None:
        """After a venue message (``kind`` "update") or a state change of a book."""
        c = t.primary
        if c is None or not c.feed.is_synced(t.native):
            return
        s = c.feed.symbol_state(t.native)
        inst = self._id(key, t, s)
        if inst < 0:
            return
        self._flow_state(inst, s.book)
        # a state change (resync, a new connection) is a new reference, not order flow
        self._fstate.ofi_update(s.book, inst, 0 if kind == "update" else _SNAPSHOT_END, 0)

    def _id(self, key: tuple[str, str], t: Any, s: Any) -> int:
        book = s.book
        i = self._ids.get(key)
        if i is None:
            inst = s.instrument
            i = len(self._instruments)
            self._ids[key] = i
            self._instruments.append({
                "symbol": t.native, "venue": t.venue, "kind": "l2",
                "price_decimals": int(book.price_decimals),
                "qty_decimals": int(book.qty_decimals),
                "tick_size": max(1, int(getattr(inst, "tick", 1) or 1)),
                "lot_size": max(1, int(getattr(inst, "lot", 1) or 1)), "id": i})
            return i
        meta = self._instruments[i]
        if (meta["price_decimals"], meta["qty_decimals"]) != (book.price_decimals,
                                                                book.qty_decimals):
            return -1           # a new connection's book at other scales: never mixed in
        return i

    def _notice(self, n: Any) -> None:
        t = self.feed.session.track(n.venue, n.symbol)
        key = (t.venue, t.native)
        if self._fstate.k:
            self._ofi(key, t, n.kind)
        if n.kind != "update":
            return
        reason = 0
        if self.every is not None:
            self._since[key] += 1
            if self._since[key] >= self.every:
                self._since[key] = 0
                reason |= Sampler.EVERY
        if self.on_bbo and n.bbo_changed:
            reason |= Sampler.BBO
        if reason:
            self._take(key, t, n.exchange_ns or n.recv_ns, reason)

    def columns(self) -> dict[str, np.ndarray]:
        """The rows waiting (not yet written) as the replay's sample columns."""
        n = self._n
        if not n:
            return {**empty_columns(), **{c: np.zeros((0, self.depth), np.int64)
                                          for c in LEVEL_COLUMNS},
                    **{c.name: np.zeros(0, c.dtype) for c in self.features.columns}}
        out: dict[str, np.ndarray] = {"ts": self._ts[:n], "instrument": self._inst[:n],
                                      "sequence": self._seq[:n], "reason": self._reason[:n]}
        for k, name in enumerate(LEVEL_COLUMNS):
            out[name] = self._levels[:n, k, :]
        for name, col in self._fcols.items():
            out[name] = col[:n]
        return out

    def flush(self) -> None:
        """Write the waiting rows as a row group (or, without a file, keep them for take)."""
        self._last_flush = time.monotonic()
        if not self._n:
            return
        cols = self.columns()
        self._n = 0
        self._alloc()
        if self.writer is not None:
            self.writer.write(cols, self._instruments)
        else:
            self._kept.append(cols)

    def take(self) -> dict[str, np.ndarray]:
        """Every row not written to a file, as sample columns; they are then dropped."""
        self.flush()
        kept, self._kept = self._kept, []
        if not kept:
            return self.columns()
        return {name: np.concatenate([c[name] for c in kept]) for name in kept[0]}

    def instruments(self) -> list[dict[str, Any]]:
        """The sampled books' metadata, by instrument id (``fastbook.instruments``)."""
        return [dict(i) for i in self._instruments]

    def to_arrow(self) -> Any:
        """:meth:`take` as a ``pyarrow.Table`` with the replay's schema and metadata."""
        return samples_table(self.take(), self._instruments, codec=self.codec,
                             ts_origin="epoch", options=self.options)

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "written": 0 if self.writer is None else self.writer.rows,
                "skipped": dict(self.skipped), "late": self.late,
                "instruments": len(self._instruments)}
