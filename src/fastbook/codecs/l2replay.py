"""Replay of exchange L2 captures: records → venue feed → events → BookSet, sampled per message.

``fastbook.replay(paths, codec="binance-spot", ...)`` uses this module for the
L2 feed codecs (``fastbook.codecs.available()``). :class:`L2Run` reads one or
more captures (fastbook or cryptofeed format, merged in receive-time order),
hands received websocket messages to ``feed.feed(payload, recv_ns)`` and REST
depth responses to ``feed.snapshot(symbol, body, recv_ns)`` (the symbol is the
request URL's ``symbol`` parameter), counts every other record, and yields the
events the feed recorded (``record=True``) in batches for
``BookSet.apply``. Each symbol the feed creates becomes an L2 instrument of the
replay's BookSet, in the feed's order, with the feed's scales.

Sampling is per *message*, not per event: a venue message that changes twenty
levels is one atomic change of the book, and a row taken half-way through it
would show a book that never existed (often a crossed one).
:class:`PacketSampler` takes rows with exactly the rules of
:class:`fastbook.Sampler` (``every``, ``interval``, ``on_bbo``; same columns),
evaluated at message boundaries: the last event of each message (the feed
flags it ``LAST_IN_PACKET``), a ``SNAPSHOT_END``, a ``CLEAR``, and the end of
each record's events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from fastbook.codecs import capture
from fastbook.errors import DecodeError, FastbookError

__all__ = ["MAX_NOTICES", "L2Run", "PacketSampler", "ReplayNotice", "as_sources",
           "load_instruments", "rest_symbol"]

#: Notices a replay keeps (the first ones; later ones are only counted).
MAX_NOTICES = 100_000
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_LAST_IN_PACKET = 0x0001
_CLEAR = 7
_SNAPSHOT_BEGIN = 9
_SNAPSHOT_END = 10
# URL paths (last segment) of REST order-book snapshots, with the symbol as a query parameter
_DEPTH_PATHS = ("depth", "full_orderbook", "orderbook")


def rest_symbol(url: str) -> str | None:
    """The symbol of a REST order-book snapshot request, or None if ``url`` is not one.

    >>> rest_symbol("https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000")
    'NKNUSDT'
    >>> rest_symbol("https://api.binance.com/api/v3/exchangeInfo") is None
    True
    """
    parts = urlsplit(url)
    if parts.path.rstrip("/").rsplit("/", 1)[-1] not in _DEPTH_PATHS:
        return None
    values = parse_qs(parts.query).get("symbol")
    return values[0] if values else None


def load_instruments(venue: str, source: Any) -> list[Any]:
    """Instruments of ``venue`` from a metadata document or a capture of REST responses.

    ``source`` is a path or bytes: a JSON document (exchangeInfo, products,
    AssetPairs, instruments; plain, gzip or zstd), or a capture (fastbook or
    cryptofeed) whose REST responses are such documents. Uses
    :func:`fastbook.codecs.instruments.load_instruments`.
    """
    from fastbook.codecs import instruments as meta
    from fastbook.sources import open_source

    if capture.sniff(source) is not None:
        out: list[Any] = []
        for rec in capture.read_capture(source):
            if rec.kind == capture.REST:
                out.extend(meta.load_instruments(venue, rec.payload))
        if not out:
            raise ValueError(f"{_names([source])[0]}: no REST response with {venue} "
                             f"instruments in this capture")
        return out
    with open_source(source) as src:
        data = b"".join(bytes(chunk) for chunk in src)
    return meta.load_instruments(venue, data)


def _clock(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


@dataclass(frozen=True)
class ReplayNotice:
    """A feed notice seen during a replay, with where it came from."""

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


def _locate(exc: DecodeError, where: str) -> DecodeError:
    """The same error (type and attributes) with ``where`` in front of its message."""
    new = Exception.__new__(type(exc))
    new.args = (f"{where}: {exc}",)
    new.__dict__.update(exc.__dict__)
    return new


def _names(sources: list[Any]) -> list[str]:
    out = []
    for s in sources:
        if isinstance(s, (str, os.PathLike)):
            out.append(os.fspath(s))
        elif isinstance(s, (bytes, bytearray, memoryview)):
            out.append("<bytes>")
        else:
            out.append(str(getattr(s, "name", "<stream>")))
    return out


def as_sources(source: Any) -> list[Any]:
    """One capture (path, bytes, file object) or an iterable of them, as a list."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) \
            or hasattr(source, "read"):
        return [source]
    if isinstance(source, Iterable):
        out = list(source)
        if not out:
            raise ValueError("no capture given: source is an empty list")
        return out
    raise TypeError(f"source must be a capture path, bytes, a binary file object or a list "
                    f"of them, got {type(source).__name__}")


class L2Run:
    """One L2 replay: captures → ``feed_class(record=True)`` → event batches.

    Iterating yields ``(events, ends)``: an ``EVENT_DTYPE`` array whose
    instrument ids are the BookSet's, and the indices one past the last event
    of each record that produced events. Instruments are added to ``books``
    before the batch that first uses them is yielded.
    """

    kind = "l2"

    def __init__(self, feed_class: Any, source: Any, books: Any, *, codec: str,
                 symbols: Iterable[str] | None = None, on_error: str = "raise",
                 instruments: Any = None, book_depth: int | None = None, verify: bool = True,
                 progress: bool | None = None, batch_events: int = 1 << 16,
                 **options: Any) -> None:
        self.sources = as_sources(source)
        self.source_names = _names(self.sources)
        self.name = ", ".join(self.source_names)
        self.codec = codec
        self.books = books
        self.verify = verify
        self.progress = progress
        self.batch_events = batch_events
        if isinstance(instruments, (str, os.PathLike)):
            instruments = load_instruments(feed_class.venue, instruments)
        self.feed = feed_class(instruments, depth=book_depth, on_error=on_error, record=True,
                               symbols=None if symbols is None else list(symbols), **options)
        self.venue = self.feed.venue
        self._base = len(books)
        self._registered = 0
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

    # -- the driver's interface ---------------------------------------------
    def __enter__(self) -> L2Run:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from fastbook.sources import Progress

        feed = self.feed
        buffer = feed.events
        records = self.records
        rest_symbol_of = getattr(feed, "rest_symbol", None) or rest_symbol
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
                        if symbol is None or (wanted is not None and symbol not in wanted):
                            self.rest_other += 1
                            continue
                        self.rest_snapshots += 1
                        notices = feed.snapshot(symbol, payload, recv_ns)
                    else:
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

    def _batch(self, ends: list[int]) -> tuple[np.ndarray, np.ndarray]:
        self.register()
        events = self.feed.take_events()
        if self._base:
            events["instrument"] += np.uint32(self._base)
        self.events += len(events)
        return events, np.asarray(ends, dtype=np.int64)

    def register(self) -> None:
        """Add an L2 instrument to the BookSet for each symbol the feed has created since."""
        symbols = self.feed.symbols
        for native in symbols[:self._registered]:
            # a feed may settle a symbol's scales late (Kraken v1 learns them from the wire):
            # events at other scales than the BookSet's book would be silently wrong
            book = self.feed.book(native)
            meta = self.books.instrument(self._base + self.feed.symbol_state(native).id)
            if (meta["price_decimals"], meta["qty_decimals"]) != (book.price_decimals,
                                                                    book.qty_decimals):
                raise FastbookError(
                    f"{self.venue} {native}: the feed changed the book's scales from "
                    f"{meta['price_decimals']}/{meta['qty_decimals']} to "
                    f"{book.price_decimals}/{book.qty_decimals} decimals after the replay "
                    f"registered the instrument")
        for native in symbols[self._registered:]:
            s = self.feed.symbol_state(native)
            inst = s.instrument
            i = self.books.add_instrument(
                native, kind="l2", venue=self.venue, price_decimals=s.book.price_decimals,
                qty_decimals=s.book.qty_decimals, tick_size=max(1, int(inst.tick)),
                lot_size=max(1, int(inst.lot)))
            if i != self._base + s.id:
                raise FastbookError(f"{self.venue}: instrument {native!r} got BookSet id {i}, "
                                    f"expected {self._base + s.id} (the feed's id + "
                                    f"{self._base})")
            self._registered += 1

    def _keep(self, notices: list[Any], recv_ns: int, source: str, number: int) -> None:
        counts = self.notice_counts
        for n in notices:
            key = f"{n.kind} ({n.reason})" if n.reason else str(n.kind)
            counts[key] = counts.get(key, 0) + 1
            if len(self.notices) < MAX_NOTICES:
                self.notices.append(ReplayNotice(recv_ns, source, number, n))

    def make_sampler(self, depth: int, rules: dict[str, Any]) -> PacketSampler:
        return PacketSampler(depth, **rules)

    def apply(self, batch: tuple[np.ndarray, np.ndarray], sampler: Any) -> None:
        events, ends = batch
        if sampler is None:
            _apply(self.books, events, self.name)
        else:
            sampler.apply(self.books, events, ends, name=self.name)

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
                "ts_origin": "epoch"}


def _apply(books: Any, events: np.ndarray, name: str, sampler: Any = None) -> None:
    from fastbook.errors import UpdateError

    try:
        books.apply(events, sampler=sampler)
    except UpdateError as exc:
        raise UpdateError(f"{name}: the feed's events do not apply (a codec bug?): {exc}",
                          exc.index) from None


def _ceil_grid(ts: int, t: int) -> int:
    return min(-((-ts) // t) * t, _INT64_MAX)


class PacketSampler:
    """:class:`fastbook.Sampler`'s rules, evaluated per message (packet) instead of per event.

    ``every=K``: a row after every K-th packet of an instrument. ``on_bbo``: a
    row after a packet that left the instrument's best bid or ask (price or
    quantity) different from after its previous packet. ``interval=T``: row
    ``ts = g`` holds the book as of grid point ``g``, taken before the
    instrument's first packet whose first event has ``ts_exchange > g``. Rows
    have the :class:`fastbook.Sampler` columns; a row's ``ts`` and ``sequence``
    are those of the packet's last event (interval rows: the grid point, and
    the sequence of the packet after it).

    It applies the events itself (:meth:`apply`), through ``BookSet.apply``
    with a one-row-per-event :class:`fastbook.Sampler`, and keeps the rows at
    packet ends; ``max_rows`` bounds the per-event rows held at once.
    """

    EVERY = 1
    INTERVAL = 2
    BBO = 4

    def __init__(self, depth: int = 10, *, every: int | None = None,
                 interval: int | None = None, on_bbo: bool = False,
                 max_rows: int = 1 << 16) -> None:
        from fastbook.sampling import Sampler

        # the same argument checks as Sampler (it raises the same errors)
        Sampler(depth, every=every, interval=interval, on_bbo=on_bbo, capacity=1)
        self.depth = int(depth)
        self.every = None if every is None else int(every)
        self.interval = None if interval is None else int(interval)
        self.on_bbo = on_bbo
        self._max = max(256, min(int(max_rows), (64 << 20) // (32 * self.depth)))
        self._dense = Sampler(self.depth, every=1, capacity=min(self._max, 4096))
        self._owner: Any = None
        self._out: list[dict[str, np.ndarray]] = []
        self._count = 0
        # per-instrument state
        self._bbo = np.zeros((0, 4), np.int64)          # BBO after the last packet
        self._since = np.zeros(0, np.int64)             # packets since the last every-row
        self._due = np.zeros(0, np.int64)               # next interval grid point
        self._state = np.zeros((0, 4, self.depth), np.int64)   # top levels after last event

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        rules = [f"every={self.every}" if self.every else "",
                 f"interval={self.interval}" if self.interval else "",
                 "on_bbo=True" if self.on_bbo else ""]
        return (f"<fastbook PacketSampler depth={self.depth} {' '.join(r for r in rules if r)} "
                f"rows={self._count}>")

    def _prepare(self, books: Any) -> None:
        if self._owner is None:
            self._owner = books
        elif self._owner is not books:
            raise ValueError("this PacketSampler already samples another BookSet")
        n, old = len(books), len(self._since)
        if n <= old:
            return
        self._bbo = np.concatenate([self._bbo, np.zeros((n - old, 4), np.int64)])
        self._since = np.concatenate([self._since, np.zeros(n - old, np.int64)])
        self._due = np.concatenate([self._due, np.full(n - old, _INT64_MIN, np.int64)])
        state = np.zeros((n - old, 4, self.depth), np.int64)
        for k, i in enumerate(range(old, n)):
            state[k] = books[i].top(self.depth)
        self._state = np.concatenate([self._state, state])
        self._bbo[old:] = self._state[old:, :, 0]

    def apply(self, books: Any, events: np.ndarray, ends: Any = (), *, name: str = "") -> None:
        """Apply ``events`` to ``books`` and take this sampler's rows.

        ``ends``: indices one past the last event of each message or record
        (packet boundaries besides the ``LAST_IN_PACKET`` flags).
        """
        n = len(events)
        if n == 0:
            return
        self._prepare(books)
        boundary = (events["flags"] & _LAST_IN_PACKET).astype(bool)
        action = events["action"]
        boundary |= (action == _SNAPSHOT_END) | (action == _CLEAR)
        starts_new = (action == _SNAPSHOT_BEGIN) | (action == _CLEAR)
        boundary[:-1] |= starts_new[1:]
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends):
            boundary[ends - 1] = True
        boundary[-1] = True
        inst = events["instrument"].astype(np.int64)
        first = np.empty(n, bool)
        first[0] = True
        first[1:] = boundary[:-1]
        last = boundary.copy()
        pid = np.cumsum(first) - 1
        same_packet = pid[1:] == pid[:-1]
        if np.any(same_packet & (inst[1:] != inst[:-1])):
            first, last = _multi_instrument_bounds(pid, inst)
        for lo in range(0, n, self._max):
            hi = min(n, lo + self._max)
            self._run(books, events[lo:hi], inst[lo:hi], first[lo:hi], last[lo:hi], name)

    def _run(self, books: Any, events: np.ndarray, inst: np.ndarray, first: np.ndarray,
             last: np.ndarray, name: str) -> None:
        n = len(events)
        _apply(books, events, name, self._dense)
        rows = self._dense.take()
        if len(rows["ts"]) != n:
            raise FastbookError(f"{name}: {n - len(rows['ts'])} of {n} events were skipped by "
                                f"the BookSet; per-message sampling needs every event applied")
        levels = np.stack([rows["bid_px"], rows["bid_qty"], rows["ask_px"], rows["ask_qty"]],
                          axis=1)                                    # (n, 4, depth)
        ts = events["ts_exchange"]
        seq = events["sequence"]
        keys: list[np.ndarray] = []
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        # rows after packets: every / on_bbo
        if self.every is not None or self.on_bbo:
            idx = np.flatnonzero(last)
            if len(idx):
                reason = self._after_rules(idx, inst[idx], levels[idx, :, 0])
                take = reason != 0
                if take.any():
                    j = idx[take]
                    keys.append(2 * j + 1)
                    parts.append((ts[j], inst[j], seq[j], reason[take], levels[j]))
        # rows before packets: interval; and the carried per-instrument state
        if self.interval is not None:
            self._interval_rows(events, inst, first, last, levels, keys, parts)
        if not keys:
            return
        key = np.concatenate(keys)
        order = np.argsort(key, kind="stable")
        out = {
            "ts": np.concatenate([p[0] for p in parts]).astype(np.int64)[order],
            "instrument": np.concatenate([p[1] for p in parts]).astype(np.uint32)[order],
            "sequence": np.concatenate([p[2] for p in parts]).astype(np.uint64)[order],
            "reason": np.concatenate([p[3] for p in parts]).astype(np.uint8)[order],
        }
        lv = np.concatenate([p[4] for p in parts])[order]
        out["bid_px"] = np.ascontiguousarray(lv[:, 0])
        out["bid_qty"] = np.ascontiguousarray(lv[:, 1])
        out["ask_px"] = np.ascontiguousarray(lv[:, 2])
        out["ask_qty"] = np.ascontiguousarray(lv[:, 3])
        self._out.append(out)
        self._count += len(order)

    def _after_rules(self, idx: np.ndarray, inst: np.ndarray, bbo: np.ndarray) -> np.ndarray:
        """Reason bits for the packet ends ``idx`` (instruments ``inst``, BBOs ``bbo``)."""
        k = len(idx)
        reason = np.zeros(k, np.uint8)
        order = np.argsort(inst, kind="stable")          # grouped by instrument, in order
        g = inst[order]
        head = np.ones(k, bool)
        head[1:] = g[1:] != g[:-1]
        group_start = np.maximum.accumulate(np.where(head, np.arange(k), 0))
        rank = np.arange(k) - group_start                # 0, 1, ... within each instrument
        tail = np.ones(k, bool)
        tail[:-1] = head[1:]
        if self.every is not None:
            count = self._since[g] + rank + 1
            fire = count % self.every == 0
            reason[order[fire]] |= self.EVERY
            self._since[g[tail]] = count[tail] % self.every
        if self.on_bbo:
            b = bbo[order]
            prev = np.empty_like(b)
            prev[1:] = b[:-1]
            prev[head] = self._bbo[g[head]]
            changed = np.any(b != prev, axis=1)
            reason[order[changed]] |= self.BBO
            self._bbo[g[tail]] = b[tail]
        return reason

    def _interval_rows(self, events: np.ndarray, inst: np.ndarray, first: np.ndarray,
                       last: np.ndarray, levels: np.ndarray, keys: list[np.ndarray],
                       parts: list[Any]) -> None:
        t = self.interval
        assert t is not None
        due = self._due
        state = self._state
        ts = events["ts_exchange"]
        seq = events["sequence"]
        where: list[int] = []
        row_ts: list[int] = []
        row_inst: list[int] = []
        row_seq: list[int] = []
        row_lv: list[np.ndarray] = []
        last_end: dict[int, int] = {}
        marks = np.flatnonzero(first | last).tolist()
        firsts = first.tolist()
        lasts = last.tolist()
        inst_l = inst.tolist()
        ts_l = ts.tolist()
        for j in marks:
            i = inst_l[j]
            if firsts[j]:
                t_j = ts_l[j]
                d = int(due[i])
                if d != _INT64_MIN and t_j > d:
                    e = last_end.get(i)
                    where.append(2 * j)
                    row_ts.append(d)
                    row_inst.append(i)
                    row_seq.append(int(seq[j]))
                    row_lv.append(levels[e] if e is not None else state[i].copy())
                if d == _INT64_MIN or t_j > d:
                    due[i] = _ceil_grid(t_j, t)
            if lasts[j]:
                last_end[i] = j
        for i, e in last_end.items():
            state[i] = levels[e]
        if where:
            keys.append(np.asarray(where, np.int64))
            parts.append((np.asarray(row_ts, np.int64), np.asarray(row_inst, np.int64),
                          np.asarray(row_seq, np.uint64),
                          np.full(len(where), self.INTERVAL, np.uint8), np.stack(row_lv)))

    # -- the Sampler interface the driver uses -------------------------------------
    def columns(self) -> dict[str, np.ndarray]:
        """The rows taken so far (a copy), in :class:`fastbook.Sampler`'s layout."""
        from fastbook.sampling import LEVEL_COLUMNS, SCALAR_COLUMNS

        if not self._out:
            out = {name: np.zeros(0, t) for name, t in SCALAR_COLUMNS}
            for name in LEVEL_COLUMNS:
                out[name] = np.zeros((0, self.depth), np.int64)
            return out
        if len(self._out) > 1:
            self._out = [{k: np.concatenate([o[k] for o in self._out]) for k in self._out[0]}]
        return dict(self._out[0])

    def take(self) -> dict[str, np.ndarray]:
        """The rows taken so far; the sampler then starts empty (rule state carries on)."""
        out = self.columns()
        self._out = []
        self._count = 0
        return out


def _multi_instrument_bounds(pid: np.ndarray, inst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last event of each (packet, instrument) group, for packets of several."""
    n = len(pid)
    order = np.lexsort((np.arange(n), inst, pid))
    p, i = pid[order], inst[order]
    change = np.ones(n, bool)
    change[1:] = (p[1:] != p[:-1]) | (i[1:] != i[:-1])
    first = np.zeros(n, bool)
    last = np.zeros(n, bool)
    first[order[change]] = True
    tail = np.ones(n, bool)
    tail[:-1] = change[1:]
    last[order[tail]] = True
    return first, last
