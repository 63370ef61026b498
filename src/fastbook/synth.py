"""Seeded synthetic market data for tests and benchmarks.

Every generator here is deterministic: the same arguments give the same arrays,
bit for bit, on every platform. Randomness comes only from
``numpy.random.Generator(numpy.random.PCG64(seed))``, and only through
``Generator.random()`` (doubles built from the top 53 bits of each 64-bit draw,
with no libm call in between), so no platform-dependent floating-point
function ever touches the stream. Streams are meant to be *valid* input for
every book implementation: no generator emits an update whose meaning depends on
an implementation's choice (a crossed book, a delete of an absent level), so
different books fed the same stream must end in the same state.

Generators
----------
l2_workload
    A price-level (L2) snapshot plus a stream of absolute-size updates, shaped
    like a liquid instrument's depth feed; the workload of ``bench/``.
itch_day, write_itch_day
    A book-consistent NASDAQ TotalView-ITCH 5.0 day in BinaryFILE framing (system
    events, stock directory, a NASDAQ-like mix of adds, deletes, replaces, executions
    and cancels, crosses at the open and close), as bytes or streamed to a file.
ose_day, write_ose_day
    A book-consistent Osaka Exchange (J-GATE) ITCH day (futures, options, a
    combination, auctions with equilibrium updates) in BinaryFILE, MoldUDP64 or
    JPX historical CSV form, every order carrying its exact queue position.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastbook._checks import is_int
from fastbook._vocab import ASK, BID
from fastbook.codecs._itch50wire import BODIES as ITCH_BODIES
from fastbook.codecs._osewire import LAYOUTS as OSE_LAYOUTS
from fastbook.codecs._osewire import NO_PRICE as OSE_NO_PRICE

__all__ = ["L2Workload", "itch_day", "l2_workload", "ose_day", "write_itch_day", "write_ose_day"]

# 50,000.00 at 2 decimals. Bids sit at or below _MID0 - 1, asks at or above _MID0.
_MID0 = 5_000_000
_PRICE_DECIMALS = 2
_QTY_DECIMALS = 3
#: Probability per update that the mid walks one tick (up or down, equally).
_P_MOVE = 0.02
#: Probability that an update landing on an existing level deletes it.
_P_DELETE = 0.25
#: Share of updates aimed at tick slots [0, 10), [10, 200) and [200, slots).
_BAND_EDGES = (0, 10, 200)
_BAND_SHARES = (0.6, 0.3, 0.1)
#: Largest quantity in lots (50.000 units at 3 decimals).
_MAX_LOTS = 50_000
# Random doubles drawn per update, one row per update (see l2_workload).
_COLUMNS = 6
_CHUNK = 1 << 16


@dataclass(frozen=True)
class L2Workload:
    """An L2 snapshot and the updates that follow it, as numpy arrays.

    Apply the snapshot (``snapshot_*``) to an empty book, then the updates
    (``sides``, ``prices``, ``qtys``) in order. Quantities are absolute sizes;
    0 deletes the level.

    Attributes
    ----------
    price_decimals : int
        Fixed-point scale of the prices: 2, a 0.01 tick, so one tick is one unit.
    qty_decimals : int
        Fixed-point scale of the quantities: 3, a 0.001 lot.
    snapshot_sides : numpy.ndarray of int8
        ``BID`` (1) or ``ASK`` (2) per snapshot level (bids first, each side best first).
    snapshot_prices : numpy.ndarray of int64
    snapshot_qtys : numpy.ndarray of int64
        All > 0.
    sides : numpy.ndarray of int8
        Side of each update.
    prices : numpy.ndarray of int64
    qtys : numpy.ndarray of int64
        0 means delete the level; deletes only ever name levels that exist.
    structural : numpy.ndarray of bool
        True where the update inserted or deleted a level (the depth of its side
        changed); False for a size change.
    """

    price_decimals: int
    qty_decimals: int
    snapshot_sides: np.ndarray
    snapshot_prices: np.ndarray
    snapshot_qtys: np.ndarray
    sides: np.ndarray
    prices: np.ndarray
    qtys: np.ndarray
    structural: np.ndarray

    def __len__(self) -> int:
        """Number of updates (the snapshot not counted)."""
        return int(self.sides.shape[0])


def _lots(u: np.ndarray) -> np.ndarray:
    # u**3 skews sizes towards small ones; products and a floor are exact IEEE
    # operations, so the integers are the same on every platform.
    return (u * u * u * (_MAX_LOTS - 1)).astype(np.int64) + 1


def l2_workload(n_updates: int = 1_000_000, *, levels: int = 2000,
                seed: int = 20240607) -> L2Workload:
    """Generate a seeded L2 snapshot and ``n_updates`` absolute-size updates.

    The model is a book on a 0.01 tick grid whose mid starts at 50,000.00.
    Prices are counted in tick *slots* from the touch: slot 0 of the bids is
    the highest price a bid may have, slot 0 of the asks the lowest price an
    ask may have, and the two are one tick apart, so the book can never be
    crossed or locked. Each side has ``slots = round(levels / 1.6)`` slots.

    * **Snapshot**: slot 0 of each side, and every other slot with
      probability 0.8, holds a level, about ``levels`` levels in total (the
      long-run occupancy of the update process below, so the depth stays
      steady). Sizes are between 0.001 and 50.000, skewed towards small ones.
    * **Mid walk**: before each update the mid moves one tick with probability
      0.02 (up or down equally). The move first deletes the level that would
      otherwise cross: moving up turns the best ask slot into a bid slot, so
      an ask level there is deleted; moving down does the same for a bid. That
      delete *is* the update at this position; when there is no such level the
      position gets an ordinary update. Levels left more than ``slots`` ticks
      behind by the walk stay in the book untouched, as far levels do.
    * **Ordinary update**: a side (equal odds), then a slot: with probability
      0.6 one of slots 0-9, 0.3 one of slots 10-199, 0.1 a deeper one (each
      uniform within its band). An empty slot gets a new level; an existing
      level is deleted with probability 0.25, otherwise its size changes to a
      different size. So about 20% of updates are deletes, 20% inserts and
      60% size changes, and about 40% are structural. Because the book is
      about 80% full near the top, the bands by *rank* (level 1 = best) come
      out close to the slot bands: about 60% in levels 1-10, 30% in 11-200.

    Parameters
    ----------
    n_updates : int, default 1_000_000
        Number of updates after the snapshot.
    levels : int, default 2000
        Approximate number of snapshot levels, both sides together (>= 2).
    seed : int, default 20240607
        Seed of ``numpy.random.Generator(numpy.random.PCG64(seed))``.

    Returns
    -------
    L2Workload
        Snapshot and update arrays, ``price_decimals=2``, ``qty_decimals=3``.

    Notes
    -----
    The output is the same for the same arguments on every platform. The
    updates are drawn after the snapshot, one row of random numbers per update,
    so for a given ``levels`` and ``seed`` a shorter stream is a prefix of a
    longer one: ``l2_workload(1000)`` equals the first 1000 updates of
    ``l2_workload(10_000)``. Generating 1,000,000 updates takes about half a
    second on a quiet development machine (numpy draws the random numbers in
    bulk; one Python loop tracks the book).

    Examples
    --------
    >>> import fastbook as fb
    >>> from fastbook.synth import l2_workload
    >>> w = l2_workload(10_000, seed=1)
    >>> len(w)
    10000
    >>> book = fb.Book(price_decimals=w.price_decimals, qty_decimals=w.qty_decimals)
    >>> book.apply(w.snapshot_sides, w.snapshot_prices, w.snapshot_qtys)
    2001
    >>> book.apply(w.sides, w.prices, w.qtys)
    10000
    >>> book.is_crossed(), book.missing_deletes
    (False, 0)
    >>> round(float((w.qtys == 0).mean()), 2), round(float(w.structural.mean()), 2)
    (0.2, 0.41)
    """
    if not is_int(n_updates, 0, numpy=True):
        raise ValueError(f"n_updates must be an int >= 0, got {n_updates!r}")
    if not is_int(levels, 2, numpy=True):
        raise ValueError(f"levels must be an int >= 2, got {levels!r}")
    n_updates = int(n_updates)
    fill = 1.0 / (1.0 + _P_DELETE)
    slots = max(1, round(levels / (2.0 * fill)))
    rng = np.random.Generator(np.random.PCG64(seed))

    # -- snapshot: per side, slot 0 always, other slots with the steady occupancy
    u_fill = rng.random((2, slots))
    u_qty = rng.random((2, slots))
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    snap_sides = []
    snap_prices = []
    snap_qtys = []
    for row, side, book, sign, base in ((0, BID, bids, -1, _MID0 - 1), (1, ASK, asks, 1, _MID0)):
        present = u_fill[row] < fill
        present[0] = True
        d = np.flatnonzero(present)
        p = base + sign * d
        q = _lots(u_qty[row, d])
        book.update(zip(p.tolist(), q.tolist(), strict=True))
        snap_sides.append(np.full(d.shape[0], side, dtype=np.int8))
        snap_prices.append(p.astype(np.int64))
        snap_qtys.append(q)

    # -- updates: precompute everything that does not depend on the book state
    lo = [min(e, slots) for e in _BAND_EDGES]
    hi = [min(e, slots) for e in (*_BAND_EDGES[1:], slots)]
    out_s = array("b")
    out_p = array("q")
    out_q = array("q")
    out_x = array("b")
    b = _MID0 - 1  # highest bid slot; the lowest ask slot is b + 1
    start = 0
    while start < n_updates:
        m = min(_CHUNK, n_updates - start)
        u = rng.random((m, _COLUMNS))
        u_move, u_side, u_band, u_slot, u_act, u_size = u.T
        move = np.where(u_move < _P_MOVE / 2, 1, np.where(u_move < _P_MOVE, -1, 0))
        band = (u_band >= _BAND_SHARES[0]).astype(np.int64) \
            + (u_band >= _BAND_SHARES[0] + _BAND_SHARES[1])
        band_lo = np.take(lo, band)
        width = np.take(hi, band) - band_lo
        empty = width <= 0  # tiny books: a band with no slots falls back to all slots
        band_lo[empty] = 0
        width[empty] = slots
        slot = band_lo + (u_slot * width).astype(np.int64)
        rows = zip(move.tolist(), (u_side < 0.5).tolist(), slot.tolist(),
                   (u_act < _P_DELETE).tolist(), _lots(u_size).tolist(), strict=True)
        for mv, is_bid, d, is_del, q in rows:
            if mv:
                if mv > 0:
                    b += 1
                    if b in asks:  # the best ask slot becomes a bid slot
                        del asks[b]
                        out_s.append(ASK)
                        out_p.append(b)
                        out_q.append(0)
                        out_x.append(1)
                        continue
                else:
                    b -= 1
                    if b + 1 in bids:  # the best bid slot becomes an ask slot
                        del bids[b + 1]
                        out_s.append(BID)
                        out_p.append(b + 1)
                        out_q.append(0)
                        out_x.append(1)
                        continue
            if is_bid:
                book = bids
                p = b - d
                out_s.append(BID)
            else:
                book = asks
                p = b + 1 + d
                out_s.append(ASK)
            out_p.append(p)
            old = book.get(p)
            if old is None:
                book[p] = q
                out_q.append(q)
                out_x.append(1)
            elif is_del:
                del book[p]
                out_q.append(0)
                out_x.append(1)
            else:
                if q == old:
                    q = q + 1 if q < _MAX_LOTS else q - 1
                book[p] = q
                out_q.append(q)
                out_x.append(0)
        start += m

    return L2Workload(
        price_decimals=_PRICE_DECIMALS,
        qty_decimals=_QTY_DECIMALS,
        snapshot_sides=np.concatenate(snap_sides),
        snapshot_prices=np.concatenate(snap_prices),
        snapshot_qtys=np.concatenate(snap_qtys),
        sides=np.frombuffer(out_s, dtype=np.int8).copy(),
        prices=np.frombuffer(out_p, dtype=np.int64).copy(),
        qtys=np.frombuffer(out_q, dtype=np.int64).copy(),
        structural=np.frombuffer(out_x, dtype=np.int8).astype(bool),
    )


# -- a synthetic NASDAQ TotalView-ITCH 5.0 day ------------------------------------------------

_NS_PER_S = 1_000_000_000
_T_START = 4 * 3600 * _NS_PER_S          # 04:00 start of system hours
_T_OPEN = 9 * 3600 * _NS_PER_S + 30 * 60 * _NS_PER_S  # 09:30 opening cross
_T_CLOSE = 16 * 3600 * _NS_PER_S          # 16:00 closing cross
_T_END = 20 * 3600 * _NS_PER_S            # 20:00 end of system hours
#: Share of the book messages before the open and after the close (the rest is 09:30-16:00).
_PRE_SHARE = 0.05
_POST_SHARE = 0.10
#: Book messages per block of random numbers (the output does not depend on it being a
#: multiple of anything: it is fixed, so chunk_messages never changes the bytes).
_ITCH_BLOCK = 1 << 14
#: Book actions and their probabilities, in the order of _MIX_CUM (NASDAQ-like mix).
_A, _D, _U, _E, _C, _X, _P, _I = range(8)
_MIX = (0.440, 0.431, 0.080, 0.020, 0.005, 0.010, 0.010, 0.004)
#: Share of adds sent as F (with an MPID).
_P_MPID = 0.02
#: Per-symbol floor of live orders: below it, removals become adds (the books stay deep).
_MIN_LIVE = 60
#: Probability per book message that the acting symbol's mid moves one tick (either way).
_P_MID_MOVE = 0.02
#: Largest distance in ticks of an add behind the reference price of its side.
_MAX_DIST = 16
_ROUND_LOT = 100
_TICK = 100  # one cent at 4 implied decimals
_FRAME_MAX = 52  # largest frame written: I (50) + its 2-byte prefix
_MPIDS = (b"NSDQ", b"GSCO", b"MSCO", b"UBSS")

# Frames: 2-byte BinaryFILE prefix, then the message. Tracking number (2 bytes, always 0
# here) and the 6-byte timestamp are packed together as one big-endian uint64 "Q": with a
# zero tracking number its value is just the timestamp, which saves a split per message.
# The bodies are the parser's layouts (codecs/_itch50wire.py), so writer and reader agree.
_S_S, _S_R, _S_H, _S_A, _S_F, _S_E, _S_C, _S_X, _S_D, _S_U, _S_P, _S_Q, _S_I = (
    struct.Struct(">HcHQ" + ITCH_BODIES[t]) for t in "SRHAFECXDUPQI")


def _flow_blocks(rng: np.random.Generator, count: int, t0: int, t1: int, mix_cum: np.ndarray,
                 target_cum: np.ndarray, max_dist: int,
                 p_move: float) -> Iterator[tuple[np.ndarray, ...]]:
    """The draws both day generators make for ``count`` book messages over [t0, t1), in blocks.

    Each block of ``m`` messages draws one ``(m, 8)`` array of uniforms ``u``
    and yields ``(u, act, target, dist, move, ts)``: the message kind (column
    0 against ``mix_cum``), the symbol or book (column 1 against
    ``target_cum``), the distance from the reference in ticks (column 3,
    skewed towards 0, up to ``max_dist``), the reference move (column 6, with
    probability ``p_move``) and the timestamp (column 7 jitters it). Columns 2,
    4 and 5 are the caller's.
    """
    step = (t1 - t0) / max(count, 1)
    n_targets = len(target_cum)
    done = 0
    while done < count:
        m = min(_ITCH_BLOCK, count - done)
        u = rng.random((m, 8))
        act = np.searchsorted(mix_cum, u[:, 0], side="right")
        target = np.searchsorted(target_cum, u[:, 1], side="right")
        np.minimum(target, n_targets - 1, out=target)
        u3 = u[:, 3]
        dist = (u3 * u3 * u3 * (max_dist + 1)).astype(np.int64)
        u6 = u[:, 6]
        move = np.where(u6 < p_move / 2, -1, np.where(u6 < p_move, 1, 0))
        ts = t0 + ((np.arange(done, done + m, dtype=np.float64) + u[:, 7]) * step)
        ts = np.minimum(ts.astype(np.int64), t1 - 1)
        yield u, act, target, dist, move, ts
        done += m


def _check_count(value: Any, name: str, low: int) -> int:
    if not is_int(value, low, numpy=True):
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


class _Collector:
    """A binary sink that keeps what is written (``write`` receives a reused buffer)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)


class _Writer:
    """Frames packed into a preallocated bytearray, flushed every ``chunk`` messages."""

    def __init__(self, sink: Any, chunk: int) -> None:
        self.sink = sink
        self.chunk = chunk
        self.buf = bytearray(chunk * _FRAME_MAX)
        self.view = memoryview(self.buf)
        self.off = 0
        self.n = 0
        self.total = 0

    def flush(self) -> None:
        if self.off:
            self.sink(self.view[:self.off])
            self.total += self.off
            self.off = 0
            self.n = 0

    def put(self, st: struct.Struct, *fields: Any) -> None:
        st.pack_into(self.buf, self.off, st.size - 2, *fields)
        self.off += st.size
        self.n += 1
        if self.n == self.chunk:
            self.flush()


class _Side:
    """One side of one symbol's book: FIFO queues per price and the best price.

    A queue is a dict used as an insertion-ordered set of order refs: O(1) removal from
    anywhere, and its first key is the front of the queue.
    """

    __slots__ = ("best", "is_bid", "levels")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, dict[int, None]] = {}
        self.best: int | None = None


class _ItchDay:
    """The state of the generated day: books, live orders, counters, the output writer."""

    def __init__(self, n_symbols: int, rng: np.random.Generator, out: _Writer) -> None:
        self.rng = rng
        self.out = out
        self.n_symbols = n_symbols
        self.stocks = [f"SYM{i + 1:04d}".encode().ljust(8) for i in range(n_symbols)]
        # $10.00 to $500.00, in ticks (cents)
        self.mid = [1000 + int(u * 49_000) for u in rng.random(n_symbols).tolist()]
        self.bids = [_Side(True) for _ in range(n_symbols)]
        self.asks = [_Side(False) for _ in range(n_symbols)]
        self.live: list[list[int]] = [[] for _ in range(n_symbols)]
        # ref -> [symbol, side, price (4 decimals), remaining shares, index in live[symbol]]
        self.orders: dict[int, list[Any]] = {}
        self.next_ref = 1
        self.next_match = 1
        # symbol activity ~ 1/rank (Zipf): cumulative weights for searchsorted
        # (cumsum is a sequential accumulate, so these doubles are the same everywhere)
        weights = 1.0 / np.arange(1, n_symbols + 1, dtype=np.float64)
        self.symbol_cum = np.cumsum(weights)
        self.symbol_cum /= self.symbol_cum[-1]
        self.mix_cum = np.cumsum(_MIX)
        self.mix_cum[-1] = 1.0

    # -- book bookkeeping ---------------------------------------------------------------
    def _add(self, s: int, side: _Side, ref: int, price: int, shares: int) -> None:
        live = self.live[s]
        self.orders[ref] = [s, side, price, shares, len(live)]
        live.append(ref)
        queue = side.levels.get(price)
        if queue is None:
            queue = side.levels[price] = {}
            best = side.best
            if best is None or (price > best if side.is_bid else price < best):
                side.best = price
        queue[ref] = None

    def _remove(self, ref: int) -> list[Any]:
        order = self.orders.pop(ref)
        s, side, price, _, index = order
        live = self.live[s]
        last = live.pop()
        if last != ref:
            live[index] = last
            self.orders[last][4] = index
        queue = side.levels[price]
        del queue[ref]
        if not queue:
            del side.levels[price]
            if price == side.best:
                levels = side.levels
                side.best = (max(levels) if side.is_bid else min(levels)) if levels else None
        return order

    def _price(self, s: int, is_bid: bool, dist: int) -> int:
        """A price ``dist`` ticks behind the side's reference, never through the other side."""
        mid = self.mid[s]
        if is_bid:
            price = (mid - dist) * _TICK
            other = self.asks[s].best
            if other is not None and price >= other:
                price = other - _TICK
        else:
            price = (mid + 1 + dist) * _TICK
            other = self.bids[s].best
            if other is not None and price <= other:
                price = other + _TICK
        return price

    # -- message groups ---------------------------------------------------------------
    def preamble(self) -> None:
        put = self.out.put
        put(_S_S, b"S", 0, _T_START, b"O")
        put(_S_S, b"S", 0, _T_START + 1000, b"S")
        t = _T_START + 2000
        for i, stock in enumerate(self.stocks):
            put(_S_R, b"R", i + 1, t + i, stock, b"Q", b"N", _ROUND_LOT, b"N", b"C", b"Z ",
                b"P", b"N", b"N", b"1", b"N", 0, b"N")
        t += self.n_symbols
        for i, stock in enumerate(self.stocks):
            put(_S_H, b"H", i + 1, t + i, stock, b"T", b" ", b"    ")

    def cross(self, t: int, event_code: bytes, cross_type: bytes) -> None:
        """The system event at ``t`` (market open or close) and one cross print per symbol."""
        put = self.out.put
        put(_S_S, b"S", 0, t, event_code)
        u = self.rng.random(self.n_symbols).tolist()
        for i, stock in enumerate(self.stocks):
            shares = _ROUND_LOT * (10 + int(u[i] * 5000))
            put(_S_Q, b"Q", i + 1, t + 1000 * (i + 1), shares, stock, self.mid[i] * _TICK,
                self.next_match, cross_type)
            self.next_match += 1

    def end(self) -> None:
        put = self.out.put
        put(_S_S, b"S", 0, _T_END, b"E")
        put(_S_S, b"S", 0, _T_END + 1000, b"C")

    def book_phase(self, count: int, t0: int, t1: int, noii_cross: bytes) -> None:
        """``count`` book messages with timestamps spread over [t0, t1)."""
        for u, act, sym, dist, move, ts in _flow_blocks(self.rng, count, t0, t1, self.mix_cum,
                                                        self.symbol_cum, _MAX_DIST, _P_MID_MOVE):
            # shares: 10% odd lots (1-99), else 1-20 round lots skewed towards 1
            u4 = u[:, 4]
            frac = (u4 - 0.1) / 0.9
            lots = 1 + (frac * frac * frac * 20).astype(np.int64)
            shares = np.where(u4 < 0.1, 1 + (u4 * 990).astype(np.int64), lots * _ROUND_LOT)
            self._book_block(zip(act.tolist(), sym.tolist(), (u[:, 2] < 0.5).tolist(),
                                 dist.tolist(), shares.tolist(), u[:, 5].tolist(),
                                 move.tolist(), ts.tolist(), strict=True), noii_cross)

    def _book_block(self, rows: Any, noii_cross: bytes) -> None:
        # The hot loop: locals for everything it touches often.
        put = self.out.put
        orders = self.orders
        live_lists = self.live
        bids, asks = self.bids, self.asks
        mids = self.mid
        stocks = self.stocks
        add, remove, price_for = self._add, self._remove, self._price
        for act, s, is_bid, dist, shares, u5, mv, t in rows:
            if mv:
                mid = mids[s] + mv
                mids[s] = mid if mid >= 100 else 101   # stay above $1.00
            locate = s + 1
            live = live_lists[s]
            if act <= _X and act != _A and len(live) < _MIN_LIVE:
                act = _A   # keep the book deep: removals on a thin book become adds
            if act == _A:
                side = bids[s] if is_bid else asks[s]
                price = price_for(s, is_bid, dist)
                ref = self.next_ref
                self.next_ref = ref + 1
                add(s, side, ref, price, shares)
                if u5 < _P_MPID:
                    put(_S_F, b"F", locate, t, ref, b"B" if is_bid else b"S", shares,
                        stocks[s], price, _MPIDS[int(u5 * 1000) % 4])
                else:
                    put(_S_A, b"A", locate, t, ref, b"B" if is_bid else b"S", shares,
                        stocks[s], price)
            elif act == _D:
                ref = live[int(u5 * len(live))]
                remove(ref)
                put(_S_D, b"D", locate, t, ref)
            elif act == _U:
                ref = live[int(u5 * len(live))]
                _, side, _, _, _ = remove(ref)
                price = price_for(s, side.is_bid, dist)
                new_ref = self.next_ref
                self.next_ref = new_ref + 1
                add(s, side, new_ref, price, shares)
                put(_S_U, b"U", locate, t, ref, new_ref, shares, price)
            elif act == _E or act == _C:
                # the front order of the best level: strict price-time priority
                side = bids[s] if is_bid else asks[s]
                if side.best is None:
                    side = asks[s] if is_bid else bids[s]
                price = side.best
                ref = next(iter(side.levels[price]))
                order = orders[ref]
                remaining = order[3]
                qty = remaining if u5 < 0.5 else 1 + int((u5 - 0.5) * 2 * remaining)
                if qty >= remaining:
                    qty = remaining
                    remove(ref)
                else:
                    order[3] = remaining - qty
                match = self.next_match
                self.next_match = match + 1
                if act == _E:
                    put(_S_E, b"E", locate, t, ref, qty, match)
                else:
                    put(_S_C, b"C", locate, t, ref, qty, match,
                        b"N" if shares < 10 else b"Y", price)
            elif act == _X:
                ref = live[int(u5 * len(live))]
                order = orders[ref]
                remaining = order[3]
                if remaining < 2:   # a cancel of everything is a delete
                    remove(ref)
                    put(_S_D, b"D", locate, t, ref)
                else:
                    qty = 1 + int(dist / (_MAX_DIST + 1) * (remaining - 1))
                    order[3] = remaining - qty
                    put(_S_X, b"X", locate, t, ref, qty)
            elif act == _P:
                match = self.next_match
                self.next_match = match + 1
                put(_S_P, b"P", locate, t, 0, b"B", shares, stocks[s], mids[s] * _TICK, match)
            else:
                mid = mids[s] * _TICK
                put(_S_I, b"I", locate, t, shares * 10, shares, b"B" if is_bid else b"S",
                    stocks[s], mid + _TICK, mid - _TICK, mid, noii_cross, b" ")


def _itch_day_parts(n_messages: int, n_symbols: int) -> tuple[int, int, int]:
    fixed = 6 + 4 * n_symbols   # S x6, R and H per symbol, an open and a close cross each
    n_book = n_messages - fixed
    n_pre = int(n_book * _PRE_SHARE)
    n_post = int(n_book * _POST_SHARE)
    return n_pre, n_book - n_pre - n_post, n_post


def write_itch_day(file: Any, n_messages: int = 1_000_000, *, n_symbols: int = 50,
                   seed: int = 20240607, chunk_messages: int = 1 << 16) -> int:
    """Write a synthetic, book-consistent NASDAQ TotalView-ITCH 5.0 day (BinaryFILE framing).

    See :func:`itch_day` for what the day contains. Memory stays bounded: frames are
    packed into one reused buffer of ``chunk_messages`` frames, written out when full,
    and the generator keeps only the live orders.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        A path (created or truncated, then closed) or an object with ``write(bytes)``
        (left open).
    n_messages : int, default 1_000_000
        Exact number of ITCH messages, at least ``6 + 4 * n_symbols``.
    n_symbols : int, default 50
        Number of stocks, from 1 to 9999 (locates 1..n, symbols ``SYM0001``...).
    seed : int, default 20240607
        Seed of ``numpy.random.Generator(numpy.random.PCG64(seed))``.
    chunk_messages : int, default 65536
        Frames per write. It does not change the bytes written.

    Returns
    -------
    int
        Number of bytes written.

    Examples
    --------
    >>> import io
    >>> f = io.BytesIO()
    >>> n = write_itch_day(f, 1000, n_symbols=5)
    >>> n == len(f.getvalue()) and f.getvalue() == itch_day(1000, n_symbols=5)
    True
    """
    n_messages = _check_count(n_messages, "n_messages", 0)
    n_symbols = _check_count(n_symbols, "n_symbols", 1)
    chunk_messages = _check_count(chunk_messages, "chunk_messages", 1)
    if n_symbols > 9999:
        raise ValueError(f"n_symbols must be at most 9999 (symbols SYM0001..SYM9999), "
                         f"got {n_symbols}")
    if n_messages < 6 + 4 * n_symbols:
        raise ValueError(f"n_messages must be at least 6 + 4 * n_symbols = {6 + 4 * n_symbols} "
                         f"(system events, a directory, a trading action and two crosses per "
                         f"symbol), got {n_messages}")
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as f:
            return write_itch_day(f, n_messages, n_symbols=n_symbols, seed=seed,
                                  chunk_messages=chunk_messages)
    if not hasattr(file, "write"):
        raise TypeError(f"file must be a path or a binary file object, got {type(file).__name__}")

    n_pre, n_regular, n_post = _itch_day_parts(n_messages, n_symbols)
    out = _Writer(file.write, chunk_messages)
    day = _ItchDay(n_symbols, np.random.Generator(np.random.PCG64(seed)), out)
    day.preamble()
    day.book_phase(n_pre, _T_START + _NS_PER_S // 1000, _T_OPEN, b"O")
    day.cross(_T_OPEN, b"Q", b"O")
    day.book_phase(n_regular, _T_OPEN + _NS_PER_S // 1000, _T_CLOSE, b"C")
    day.cross(_T_CLOSE, b"M", b"C")
    day.book_phase(n_post, _T_CLOSE + _NS_PER_S // 1000, _T_END, b"C")
    day.end()
    out.flush()
    return out.total


def itch_day(n_messages: int = 1_000_000, *, n_symbols: int = 50,
             seed: int = 20240607) -> bytes:
    """A synthetic, book-consistent NASDAQ TotalView-ITCH 5.0 day, BinaryFILE-framed.

    Each message is preceded by its 2-byte big-endian length, as in NASDAQ's historical
    files. The day, in order:

    * ``S`` system events ``O`` (start of messages) and ``S`` (start of system hours) at
      04:00; an ``R`` stock directory message per symbol (locates 1..n, symbols
      ``SYM0001``..., round lot 100, market category Q) and an ``H`` trading action
      ``T`` (trading) per symbol;
    * 5% of the book messages from 04:00 to 09:30; then ``S`` ``Q`` (start of market
      hours) and an opening cross ``Q`` (type ``O``) per symbol at 09:30;
    * 85% from 09:30 to 16:00; then ``S`` ``M`` (end of market hours) and a closing cross
      (type ``C``) per symbol at 16:00;
    * 10% from 16:00 to 20:00; then ``S`` ``E`` and ``C`` (end of system hours, end of
      messages) at 20:00.

    The book messages follow a NASDAQ-like mix: about 44% adds (``A``, 2% of them ``F``),
    43% deletes ``D``, 8% replaces ``U``, 2.5% executions (``E``, and ``C`` at the
    display price, a few not printable), 1% partial cancels ``X``, 1% hidden trades
    ``P`` and 0.4% imbalance messages ``I``. Symbol activity falls off as 1/rank. Each
    symbol starts at a price from $10 to $500 on a one-cent grid, and its mid walks one
    tick with probability 0.02 per message of that symbol.

    The stream is **book-consistent**, so any L3 book builder, including strict FIFO ones
    like meatpy's, replays it without an error:

    * every ``E``/``C``/``X``/``D``/``U`` names a live order of its own locate;
    * ``E`` and ``C`` always execute the **front** order of the **best** level of a side;
    * ``X`` cancels fewer shares than remain (a full cancel is sent as ``D``);
    * adds and replaces go on their own side, at most 16 ticks behind the side's
      reference price and never at or through the opposite best, so the book is never
      crossed or locked;
    * order references are unique and increasing over the day (``U`` takes a new one),
      match numbers too; timestamps never decrease.

    While a symbol has fewer than 60 live orders, deletes, replaces, cancels and
    executions on it are sent as adds instead, so books stay some levels deep; the
    opening of the day therefore has more adds than the mix says.

    Parameters
    ----------
    n_messages : int, default 1_000_000
        Exact number of ITCH messages, at least ``6 + 4 * n_symbols``.
    n_symbols : int, default 50
        Number of stocks (1 to 9999).
    seed : int, default 20240607
        Seed of ``numpy.random.Generator(numpy.random.PCG64(seed))``.

    Returns
    -------
    bytes
        The whole file, about 30 bytes per message (1,000,000 messages: about 30 MB).

    Notes
    -----
    Deterministic: the same arguments give the same bytes on every platform (only
    ``Generator.random()`` and exact IEEE operations feed the integers). The pure-Python
    generator writes roughly half a million messages per second on a quiet development
    machine; :func:`write_itch_day` streams to a file in bounded memory.

    Examples
    --------
    >>> data = itch_day(1000, n_symbols=5, seed=1)
    >>> data[:3]
    b'\\x00\\x0cS'
    >>> data == itch_day(1000, n_symbols=5, seed=1)
    True
    """
    out = _Collector()
    write_itch_day(out, n_messages, n_symbols=n_symbols, seed=seed)
    return b"".join(out.parts)


# -- a synthetic Osaka Exchange (J-GATE) ITCH day -------------------------------------------------
# Layouts: docs/ose-itch.md. Frames are packed with the 2-byte length prefix in front, which
# is also a MoldUDP64 message block. Times are epoch ns; the day is a JST trading day.

# The parser's layouts (codecs/_osewire.py) behind the 2-byte prefix.
_OSE_FRAMES: dict[str, struct.Struct] = {t: struct.Struct(">H" + fmt[1:])
                                         for t, fmt in OSE_LAYOUTS.items()}
_OSE_TYPES = {t: t.encode() for t in _OSE_FRAMES}
_OSE_FORMS = ("binaryfile", "moldudp64", "csv")
#: 2024-06-03 (a Monday) 08:00 JST = 2024-06-02 23:00 UTC, in seconds since the epoch.
_OSE_DAY0 = 1717369200
_OSE_T_PRE_OPEN = _OSE_DAY0 * _NS_PER_S                  # 08:00 JST: pre-open
_OSE_T_OPEN = _OSE_T_PRE_OPEN + 45 * 60 * _NS_PER_S      # 08:45: opening auction
_OSE_T_PRE_CLOSE = _OSE_T_OPEN + (6 * 3600 + 55 * 60) * _NS_PER_S   # 15:40: pre-close
_OSE_T_CLOSE = _OSE_T_PRE_CLOSE + 5 * 60 * _NS_PER_S      # 15:45: closing auction
_OSE_T_END = _OSE_T_CLOSE + 5 * 60 * _NS_PER_S            # 15:50: end of messages
_OSE_PRE_SHARE = 0.05
_OSE_PRE_CLOSE_SHARE = 0.04
#: Order actions of the continuous session and their probabilities.
_O_ADD, _O_DEL, _O_MOD, _O_EXE, _O_EXP, _O_COMBO = range(6)
_OSE_MIX = (0.44, 0.41, 0.10, 0.035, 0.01, 0.005)
_OSE_MIN_LIVE = 40
_OSE_MAX_DIST = 16
_OSE_P_MID_MOVE = 0.02
_OSE_P_REUSE = 0.02          # share of ask adds reusing a live bid's order id in the same book
_OSE_P_PARTICIPANT = 0.03    # share of adds sent as F
_OSE_P_Z = 0.5               # share of auction-period messages followed by a Z of their book
_OSE_ID0 = 7_396_717_914_678_600_000


class _OseSide:
    __slots__ = ("best", "is_bid", "levels")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, dict[int, None]] = {}
        self.best: int | None = None

    def rank(self, price: int, index: int) -> int:
        """1-based rank of the order at ``index`` in the queue at ``price`` (price-time)."""
        if self.is_bid:
            ahead = sum(len(q) for p, q in self.levels.items() if p > price)
        else:
            ahead = sum(len(q) for p, q in self.levels.items() if p < price)
        return ahead + index + 1

    def reset_best(self) -> None:
        levels = self.levels
        self.best = (max(levels) if self.is_bid else min(levels)) if levels else None


class _OseBook:
    """One order book of the generated day: its directory data, orders and price reference."""

    __slots__ = ("decimals", "kind", "legs", "live", "next_id", "obid", "orders", "ref",
                 "sides", "symbol", "tick", "ticks")

    def __init__(self, obid: int, symbol: str, kind: str, decimals: int, tick: int,
                 ref: int, ticks: list[tuple[int, int, int]]) -> None:
        self.obid = obid
        self.symbol = symbol
        self.kind = kind            # "future", "option" or "combo"
        self.decimals = decimals
        self.tick = tick
        self.ref = ref              # bids rest at or below ref, asks above (continuous session)
        self.ticks = ticks          # the L rows: (tick size, price from, price to)
        self.legs: list[tuple[int, bytes, int]] = []
        self.sides = (None, _OseSide(True), _OseSide(False))   # indexed by BID, ASK
        # (side, order id) -> [price, qty, index in live]
        self.orders: dict[tuple[int, int], list[int]] = {}
        self.live: list[tuple[int, int]] = []
        self.next_id = _OSE_ID0


class _OseOut:
    """Writes messages in one form: BinaryFILE frames, MoldUDP64 packets or JPX CSV lines.

    ``put(type, ts, *fields)`` takes the wire fields after the nanoseconds; a ``T``
    is written first whenever the second changes.
    """

    def __init__(self, sink: Any, form: str, packet_messages: int, names: dict[int, str]) -> None:
        self.sink = sink
        self.form = form
        self.names = names                  # order book id -> "SYMBOL(id)" (CSV)
        self.second = -1
        self.csv_second = ""
        self.parts: list[Any] = []
        self.size = 0
        self.total = 0
        self.messages = 0
        self.packet: list[bytes] = []
        self.packet_messages = packet_messages
        self.sequence = 1

    # -- bytes out
    def _emit(self, data: Any) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self.form == "moldudp64" and self.packet:
            self._close_packet()
        if self.parts:
            data = b"".join(self.parts)
            self.sink(data)
            self.total += len(data)
            self.parts = []
            self.size = 0

    def _close_packet(self) -> None:
        header = struct.pack(">10sQH", b"OSEJGATE01", self.sequence, len(self.packet))
        self.sequence += len(self.packet)
        self.parts.append(header)
        self.parts.extend(self.packet)
        self.size += 20 + sum(len(m) for m in self.packet)
        self.packet = []

    def _frame(self, t: str, *fields: Any) -> None:
        st = _OSE_FRAMES[t]
        data = st.pack(st.size - 2, _OSE_TYPES[t], *fields)
        self.messages += 1
        if self.form == "binaryfile":
            self._emit(data)
        else:
            self.packet.append(data)
            if len(self.packet) >= self.packet_messages:
                self._close_packet()
                if self.size >= 1 << 20:
                    self.flush()

    def _line(self, text: str) -> None:
        self.messages += 1
        self._emit(text.encode("ascii"))

    def _time(self, ts: int) -> int:
        second, ns = divmod(ts, _NS_PER_S)
        if second != self.second:
            self.second = second
            if self.form == "csv":
                import datetime as _dt

                when = _dt.datetime.fromtimestamp(second, _dt.timezone.utc)
                self.csv_second = when.strftime("%Y-%m-%dT%H:%M:%S")
                self._line(f"T,{second}\n")
            else:
                self._frame("T", second)
        return ns

    def put(self, t: str, ts: int, *fields: Any) -> None:
        ns = self._time(ts)
        if self.form != "csv":
            self._frame(t, ns, *fields)
            return
        when = f"{self.csv_second}.{ns:09d}({ts})"
        name = self.names
        if t in ("A", "F"):
            oid, obid, side, pos, qty, price, attrs, lot = fields[:8]
            self._line(f"A,{when},{oid},{name[obid]},{side.decode()},{pos},{qty},{price},"
                       f"{attrs},{lot}\n")
        elif t == "D":
            oid, obid, side = fields
            self._line(f"D,{when},{oid},{name[obid]},{side.decode()}\n")
        elif t == "U":
            # the historical CSV writes a modification as a delete and a new add
            oid, obid, side, pos, qty, price, attrs = fields
            self._line(f"D,{when},{oid},{name[obid]},{side.decode()}\n")
            self._line(f"A,{when},{oid},{name[obid]},{side.decode()},{pos},{qty},{price},"
                       f"{attrs},0\n")
        elif t == "E":
            oid, obid, side, qty, match, combo = fields[:6]
            self._line(f"E,{when},{oid},{name[obid]},{side.decode()},{qty},{match},{combo},,\n")
        elif t == "C":
            oid, obid, side, qty, match, combo, _, _, price, cross, printable = fields
            self._line(f"C,{when},{oid},{name[obid]},{side.decode()},{qty},{match},{combo},,,"
                       f"{price},{cross.decode()},{printable.decode()}\n")
        elif t == "P":
            match, combo, side, qty, obid, price, _, _, printable, cross = fields
            self._line(f"P,{when},{match},{combo},{side.decode()},{qty},{name[obid]},{price},,,"
                       f"{printable.decode()},{cross.decode()}\n")
        elif t == "Z":
            obid, rest = fields[0], fields[1:]
            self._line(f"Z,{when},{name[obid]},{','.join(str(v) for v in rest)}\n")
        elif t == "O":
            obid, state = fields
            self._line(f"O,{when},{name[obid]},{state.decode().rstrip()}\n")
        elif t == "L":
            obid, tick, lo, hi = fields
            self._line(f"L,{when},{name[obid]},{tick},{lo},{hi}\n")
        elif t == "M":
            combo, leg, side, ratio = fields
            self._line(f"M,{when},{combo},{leg},{side.decode()},{ratio}\n")
        elif t == "S":
            self._line(f"S,{when},{fields[0].decode()}\n")
        else:   # R
            cells = [v.decode().rstrip() if isinstance(v, bytes) else str(v) for v in fields]
            self._line(f"R,{when},{','.join(cells)}\n")


class _OseDay:
    """The generated day's state: books, counters, the random stream and the writer."""

    def __init__(self, n_options: int, rng: np.random.Generator, form: str,
                 packet_messages: int, sink: Any) -> None:
        self.rng = rng
        self.books: list[_OseBook] = []
        self._instruments(n_options)
        names = {b.obid: f"{b.symbol}({b.obid})" for b in self.books}
        self.out = _OseOut(sink, form, packet_messages, names)
        self.next_match = 1
        self.next_combo_group = 1
        # activity: futures busiest, then the combination, then options by closeness to the money
        weights = np.array([{"future": 8.0, "combo": 1.0}.get(b.kind, 1.0 / (1 + i % 7))
                            for i, b in enumerate(self.books)], dtype=np.float64)
        self.book_cum = np.cumsum(weights)
        self.book_cum /= self.book_cum[-1]
        self.mix_cum = np.cumsum(_OSE_MIX)
        self.mix_cum[-1] = 1.0

    # -- the instruments ----------------------------------------------------------------------
    def _instruments(self, n_options: int) -> None:
        def obid(k: int) -> int:
            return 100_000_000 + (k * 2_654_435_761) % 900_000_000

        fut_ticks = [(10, 10, 999_990)]
        self.books.append(_OseBook(obid(1), "NK225_F_2406", "future", 0, 10, 38_500, fut_ticks))
        self.books.append(_OseBook(obid(2), "NK225M_F_2406", "future", 0, 5, 38_500,
                                   [(5, 5, 999_995)]))
        self.books.append(_OseBook(obid(3), "NK225_F_2409", "future", 0, 10, 38_560, fut_ticks))
        self.books.append(_OseBook(obid(4), "TOPIX_F_2406", "future", 1, 5, 27_500,
                                   [(5, 5, 9_999_995)]))
        combo = _OseBook(obid(5), "NK225_CS_2406_2409", "combo", 0, 5, -60, [(5, -99_995, 99_995)])
        combo.legs = [(self.books[0].obid, b"B", 1), (self.books[2].obid, b"C", 1)]
        self.books.append(combo)
        self.combo = combo
        # options at 4 decimals, priced 100-999 yen (tick 5 yen), strikes around 38,500
        opt_ticks = [(10_000, 10_000, 999_999), (50_000, 1_000_000, 9_999_999),
                     (100_000, 10_000_000, 999_900_000)]
        for k in range(n_options):
            strike = 38_500 + 250 * ((k // 2) - n_options // 4)
            put = k % 2 == 1
            premium = 500 + 250 * ((k // 2) % 3) - 100 * (k % 5)
            symbol = f"{'PUT' if put else 'CAL'}_NK225_240614_{strike}"
            self.books.append(_OseBook(obid(10 + k), symbol, "option", 4, 50_000,
                                       premium * 10_000, opt_ticks))

    def _band(self, book: _OseBook) -> tuple[int, int]:
        if book.kind == "option":
            return 1_000_000, 9_950_000         # 100 to 995 yen: one tick size
        if book.kind == "combo":
            return -2_000, 2_000
        return book.tick * 100, book.tick * 9_000_000

    def preamble(self, t: int) -> None:
        put = self.out.put
        put("S", t, b"O")
        for i, b in enumerate(self.books):
            strike = 0
            expiry = 20240614
            product, put_call, underlying = 3, 0, 0
            if b.kind == "option":
                strike = int(b.symbol.rsplit("_", 1)[1])
                product, put_call = 1, 2 if b.symbol.startswith("PUT") else 1
                underlying = 500
            elif b.kind == "combo":
                product, expiry = 11, 20240913
            elif b.symbol.endswith("2409"):
                expiry = 20240913
            put("R", t + 10 + i, b.obid, b.symbol.encode(), b.symbol.encode(),
                f"JP{b.obid:010d}".encode(), product, b"JPY", b.decimals, 0, 0, 1, 0, 0,
                len(b.legs), underlying, strike, expiry, 0, put_call)
        t += 1000
        for b in self.books:
            for leg, side, ratio in b.legs:
                put("M", t, b.obid, leg, side, ratio)
            for tick, lo, hi in b.ticks:
                put("L", t, b.obid, tick, lo, hi)

    def states(self, t: int, name: bytes) -> None:
        for b in self.books:
            self.out.put("O", t, b.obid, name.ljust(20))

    # -- book bookkeeping -------------------------------------------------------------------------
    def _add(self, b: _OseBook, side: int, oid: int, price: int, qty: int) -> int:
        """Rest a new order at the back of its level; returns its rank."""
        s = b.sides[side]
        b.orders[(side, oid)] = [price, qty, len(b.live)]
        b.live.append((side, oid))
        queue = s.levels.get(price)
        if queue is None:
            queue = s.levels[price] = {}
            if s.best is None or (price > s.best if s.is_bid else price < s.best):
                s.best = price
        queue[oid] = None
        return s.rank(price, len(queue) - 1)

    def _remove(self, b: _OseBook, side: int, oid: int) -> list[int]:
        order = b.orders.pop((side, oid))
        last = b.live.pop()
        if last != (side, oid):
            b.live[order[2]] = last
            b.orders[last][2] = order[2]
        s = b.sides[side]
        queue = s.levels[order[0]]
        del queue[oid]
        if not queue:
            del s.levels[order[0]]
            if order[0] == s.best:
                s.reset_best()
        return order

    def _take(self, b: _OseBook, side: int, oid: int, qty: int) -> None:
        order = b.orders[(side, oid)]
        if qty >= order[1]:
            self._remove(b, side, oid)
        else:
            order[1] -= qty

    def _price(self, b: _OseBook, is_bid: bool, dist: int, auction: bool) -> int:
        """A price ``dist`` ticks behind the side's reference; through the other side only
        in an auction period (where crossing orders wait for the cross)."""
        tick = b.tick
        lo, hi = self._band(b)
        if is_bid:
            price = b.ref - dist * tick
            if auction and dist < 3:
                price = b.ref + (3 - dist) * tick       # some bids above the reference
            other = b.sides[ASK].best
            if not auction and other is not None and price >= other:
                price = other - tick
        else:
            price = b.ref + tick + dist * tick
            if auction and dist < 3:
                price = b.ref - (2 - dist) * tick
            other = b.sides[BID].best
            if not auction and other is not None and price <= other:
                price = other + tick
        return min(max(price, lo), hi)

    def _front(self, b: _OseBook, is_bid: bool) -> tuple[int, int, int]:
        """(side, price, order id) of the front order of the best level of the chosen side,
        or of the other side when it is empty: strict price-time priority."""
        s = b.sides[BID if is_bid else ASK]
        if s.best is None:
            s = b.sides[ASK if is_bid else BID]
        assert s is not None
        price = s.best
        return (BID if s.is_bid else ASK), price, next(iter(s.levels[price]))

    def _new_id(self, b: _OseBook, side: int, u: float) -> int:
        if side == ASK and u < _OSE_P_REUSE and b.live:
            # the same id as a live bid of this book: J-GATE ids are unique per side only
            cand_side, cand = b.live[int(u / _OSE_P_REUSE * len(b.live))]
            if cand_side == BID and (ASK, cand) not in b.orders:
                return cand
        b.next_id += 1 + int(u * 7)
        return b.next_id

    # -- auctions --------------------------------------------------------------------------
    def _equilibrium(self, b: _OseBook) -> tuple[int, int, int, int, int]:
        """(matched volume, last matched bid price, last ask price, EP, 1) of crossing now.

        The EP lies on the tick grid between the last matched ask and bid prices.
        """
        bids = sorted(b.sides[BID].levels.items(), reverse=True)
        asks = sorted(b.sides[ASK].levels.items())
        i = j = matched = 0
        last_b = last_a = 0
        bq = sum(b.orders[(BID, o)][1] for o in bids[0][1]) if bids else 0
        aq = sum(b.orders[(ASK, o)][1] for o in asks[0][1]) if asks else 0
        while i < len(bids) and j < len(asks) and bids[i][0] >= asks[j][0]:
            q = min(bq, aq)
            matched += q
            last_b, last_a = bids[i][0], asks[j][0]
            bq -= q
            aq -= q
            if bq == 0:
                i += 1
                bq = sum(b.orders[(BID, o)][1] for o in bids[i][1]) if i < len(bids) else 0
            if aq == 0:
                j += 1
                aq = sum(b.orders[(ASK, o)][1] for o in asks[j][1]) if j < len(asks) else 0
        if not matched:
            return 0, 0, 0, OSE_NO_PRICE, 0
        ep = last_a + (last_b - last_a) // (2 * b.tick) * b.tick
        return matched, last_b, last_a, ep, 1

    def _z(self, b: _OseBook, t: int) -> None:
        matched, _, _, ep, _ = self._equilibrium(b)
        bid_qty = ask_qty = 0
        if matched:
            bid_qty = sum(b.orders[(BID, o)][1] for p, q in b.sides[BID].levels.items() if p >= ep
                          for o in q)
            ask_qty = sum(b.orders[(ASK, o)][1] for p, q in b.sides[ASK].levels.items() if p <= ep
                          for o in q)
        bb, ba = b.sides[BID].best, b.sides[ASK].best
        bbq = sum(b.orders[(BID, o)][1] for o in b.sides[BID].levels[bb]) if bb is not None else 0
        baq = sum(b.orders[(ASK, o)][1] for o in b.sides[ASK].levels[ba]) if ba is not None else 0
        self.out.put("Z", t, b.obid, bid_qty, ask_qty, ep,
                     OSE_NO_PRICE if bb is None else bb, OSE_NO_PRICE if ba is None else ba,
                     bbq, baq)

    def cross(self, t: int) -> None:
        """Every book's auction: crossing orders execute in priority at one price (C, cross Y)."""
        put = self.out.put
        blank = b"       "
        for b in self.books:
            matched, _, _, ep, _ = self._equilibrium(b)
            if matched:
                bids, asks = b.sides[BID], b.sides[ASK]
                while bids.best is not None and asks.best is not None \
                        and bids.best >= asks.best:
                    bo = next(iter(bids.levels[bids.best]))
                    ao = next(iter(asks.levels[asks.best]))
                    q = min(b.orders[(BID, bo)][1], b.orders[(ASK, ao)][1])
                    match = self.next_match
                    self.next_match += 1
                    put("C", t, bo, b.obid, b"B", q, match, 0, blank, blank, ep, b"Y", b"Y")
                    put("C", t, ao, b.obid, b"S", q, match, 0, blank, blank, ep, b"Y", b"N")
                    self._take(b, 1, bo, q)
                    self._take(b, 2, ao, q)
                self._z(b, t)
            # continuous trading goes on around the auction price, or the old reference
            bb = b.sides[BID].best
            if bb is not None:
                b.ref = bb
            t += 1000

    # -- the order flow --------------------------------------------------------------------
    def phase(self, count: int, t0: int, t1: int, auction: bool) -> None:
        for u, act, bk, dist, move, ts in _flow_blocks(self.rng, count, t0, t1, self.mix_cum,
                                                       self.book_cum, _OSE_MAX_DIST,
                                                       _OSE_P_MID_MOVE):
            u4 = u[:, 4]
            qty = 1 + (u4 * u4 * u4 * 30).astype(np.int64)
            self._block(zip(act.tolist(), bk.tolist(), (u[:, 2] < 0.5).tolist(), dist.tolist(),
                            qty.tolist(), u[:, 5].tolist(), move.tolist(), ts.tolist(),
                            strict=True), auction)

    def _block(self, rows: Any, auction: bool) -> None:
        put = self.out.put
        books = self.books
        blank = b"       "
        for act, k, is_bid, dist, qty, u5, mv, t in rows:
            b = books[k]
            if mv and not auction:
                lo, hi = self._band(b)
                ref = b.ref + mv * b.tick
                if lo <= ref <= hi - b.tick:
                    b.ref = ref
            if auction and act >= _O_EXE:
                act = _O_ADD            # no executions before the cross
            if act == _O_COMBO:
                b = self.combo          # combination trades happen in the spread's book
            if act != _O_ADD and len(b.live) < _OSE_MIN_LIVE:
                act = _O_ADD
            if act == _O_ADD:
                side = BID if is_bid else ASK
                price = self._price(b, is_bid, dist, auction)
                oid = self._new_id(b, side, u5)
                rank = self._add(b, side, oid, price, qty)
                sb = b"B" if is_bid else b"S"
                if u5 > 1 - _OSE_P_PARTICIPANT:
                    put("F", t, oid, b.obid, sb, rank, qty, price, 0, 0, b"PART001")
                else:
                    put("A", t, oid, b.obid, sb, rank, qty, price, 0, 0)
            elif act == _O_DEL:
                side, oid = b.live[int(u5 * len(b.live))]
                self._remove(b, side, oid)
                put("D", t, oid, b.obid, b"B" if side == BID else b"S")
            elif act == _O_MOD:
                side, oid = b.live[int(u5 * len(b.live))]
                price, left, _ = b.orders[(side, oid)]
                choice = int(u5 * 1000) % 3
                if choice == 0 and left > 1:
                    # a quantity decrease at the same price keeps the queue place (JPX rule)
                    new_qty = 1 + int(dist / (_OSE_MAX_DIST + 1) * (left - 1))
                    b.orders[(side, oid)][1] = new_qty
                    queue = list(b.sides[side].levels[price])
                    rank = b.sides[side].rank(price, queue.index(oid))
                else:
                    # a price change or a quantity increase goes to the back of its level
                    new_price, new_qty = price, left + qty
                    if choice == 1 or left <= 1:
                        new_price = self._price(b, side == BID, dist, auction)
                        new_qty = left if new_price != price else left + qty
                    self._remove(b, side, oid)
                    rank = self._add(b, side, oid, new_price, new_qty)
                    price = new_price
                put("U", t, oid, b.obid, b"B" if side == BID else b"S", rank, new_qty, price, 0)
            elif act == _O_EXE or act == _O_EXP:
                side, price, oid = self._front(b, is_bid)
                left = b.orders[(side, oid)][1]
                q = left if u5 < 0.5 else 1 + int((u5 - 0.5) * 2 * left)
                q = min(q, left)
                self._take(b, side, oid, q)
                match = self.next_match
                self.next_match += 1
                sb = b"B" if side == BID else b"S"
                if act == _O_EXE:
                    put("E", t, oid, b.obid, sb, q, match, 0, blank, blank)
                else:
                    put("C", t, oid, b.obid, sb, q, match, 0, blank, blank, price, b"N", b"Y")
            else:
                # a combination trade: the combo order executes (C), each leg prints (P)
                side, price, oid = self._front(b, is_bid)
                q = b.orders[(side, oid)][1]
                self._take(b, side, oid, q)
                match = self.next_match
                self.next_match += 1
                group = self.next_combo_group
                self.next_combo_group += 1
                sb = b"B" if side == BID else b"S"
                put("C", t, oid, b.obid, sb, q, match, group, blank, blank, price, b"N", b"Y")
                near = books[0].ref
                for (leg, leg_side, ratio), leg_price in zip(b.legs, (near, near - price),
                                                             strict=True):
                    put("P", t, match, group, b"B" if leg_side == b"B" else b"S", q * ratio,
                        leg, leg_price, blank, blank, b"Y", b"N")
            if auction and u5 < _OSE_P_Z:
                self._z(b, t)


def _check_form(form: Any) -> str:
    if form not in _OSE_FORMS:
        raise ValueError(f"form must be one of {', '.join(_OSE_FORMS)}, got {form!r}")
    return form


def write_ose_day(file: Any, n_messages: int = 1_000_000, *, form: str = "binaryfile",
                  n_options: int = 12, seed: int = 20240607, packet_messages: int = 32) -> int:
    """Write a synthetic, book-consistent Osaka Exchange ITCH day. See :func:`ose_day`.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        A path (created or truncated, then closed) or an object with ``write(bytes)``.
    n_messages, form, n_options, seed
        As for :func:`ose_day`.
    packet_messages : int, default 32
        Messages per MoldUDP64 packet (``form="moldudp64"``); the last packet may be
        shorter. The messages do not depend on it.

    Returns
    -------
    int
        Number of bytes written.
    """
    n_messages = _check_count(n_messages, "n_messages", 0)
    n_options = _check_count(n_options, "n_options", 0)
    packet_messages = _check_count(packet_messages, "packet_messages", 1)
    form = _check_form(form)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as f:
            return write_ose_day(f, n_messages, form=form, n_options=n_options, seed=seed,
                                 packet_messages=packet_messages)
    if not hasattr(file, "write"):
        raise TypeError(f"file must be a path or a binary file object, got {type(file).__name__}")
    day = _OseDay(n_options, np.random.Generator(np.random.PCG64(seed)), form,
                  min(packet_messages, 0xFFFE), file.write)
    n_pre = int(n_messages * _OSE_PRE_SHARE)
    n_pre_close = int(n_messages * _OSE_PRE_CLOSE_SHARE)
    n_regular = n_messages - n_pre - n_pre_close
    ms = _NS_PER_S // 1000
    day.preamble(_OSE_T_PRE_OPEN)
    day.states(_OSE_T_PRE_OPEN + 2 * ms, b"M_PRE_OPEN")
    day.phase(n_pre, _OSE_T_PRE_OPEN + 3 * ms, _OSE_T_OPEN, True)
    day.cross(_OSE_T_OPEN)
    day.states(_OSE_T_OPEN + 500 * ms, b"ZARABA")
    day.phase(n_regular, _OSE_T_OPEN + 501 * ms, _OSE_T_PRE_CLOSE, False)
    day.states(_OSE_T_PRE_CLOSE, b"M_PRE_CLOSE")
    day.phase(n_pre_close, _OSE_T_PRE_CLOSE + ms, _OSE_T_CLOSE, True)
    day.cross(_OSE_T_CLOSE)
    day.states(_OSE_T_CLOSE + 500 * ms, b"CLOSE")
    day.out.put("S", _OSE_T_END, b"C")
    day.out.flush()
    return day.out.total


def ose_day(n_messages: int = 1_000_000, *, form: str = "binaryfile", n_options: int = 12,
            seed: int = 20240607) -> bytes:
    """A synthetic, book-consistent Osaka Exchange (J-GATE) ITCH day, as bytes.

    ``form`` picks one of three encodings of the **same** day (same seed, same
    messages): ``"binaryfile"`` (2-byte length before each message),
    ``"moldudp64"`` (packets of 32 messages, session ``OSEJGATE01``, sequence
    numbers from 1) or ``"csv"`` (JPX's historical CSV: ``TAG,time,...`` lines,
    ``SYMBOL(order_book_id)`` instruments, times as UTC ISO with the epoch ns in
    parentheses, each ``U`` written as a ``D`` line then an ``A`` line, ``F``
    written as ``A``).

    The day (2024-06-03, Japan time), in order:

    * ``S`` ``O``; an ``R`` per order book: four futures (``NK225_F_2406`` and
      ``NK225_F_2409`` at 0 decimals, tick 10; ``NK225M_F_2406``, tick 5;
      ``TOPIX_F_2406`` at 1 decimal, tick 0.5), the calendar spread
      ``NK225_CS_2406_2409`` (a combination: two ``M`` legs, prices that can be
      negative) and ``n_options`` Nikkei 225 options at 4 decimals (tick 5 yen);
      their ``M`` legs and ``L`` tick size tables;
    * 08:00 ``O`` ``M_PRE_OPEN`` for every book, then 5% of the order messages:
      adds (some crossing the other side), deletes and modifies, each followed
      half of the time by a ``Z`` (equilibrium price update) of its book;
    * 08:45 the opening auction: in every book, crossing orders execute in
      price-time priority at one price (a ``C`` per order and match, occurred
      at cross ``Y``, the sell side not printable), then a ``Z``; ``O``
      ``ZARABA``;
    * 91% of the order messages in continuous trading: about 44% adds (3% as
      ``F``), 41% deletes, 10% modifies ``U`` (a third decrease the quantity
      at the same price and keep their place, the others change the price or
      increase the quantity and go to the back), 3.5% executions ``E`` and 1%
      ``C`` of the front order of a best level, and combination trades (a
      ``C`` on the spread's resting order and a ``P`` per leg);
    * 15:40 ``O`` ``M_PRE_CLOSE``, 4% of the order messages as in pre-open,
      the closing auction at 15:45, ``O`` ``CLOSE``, and ``S`` ``C``.

    A ``T`` precedes every message whose second differs from the last one.

    The stream is **book-consistent** and its positions are exact: every
    ``E``/``C``/``D``/``U`` names a live order of its book and side; every
    ``A``/``F``/``U`` carries the order's true 1-based rank on its side
    (price-time priority, the JPX modify rule); continuous-session orders
    never cross the other side; about 2% of ask adds reuse the id of a live bid
    of the same book (J-GATE order ids are unique per book and side only).

    Parameters
    ----------
    n_messages : int, default 1_000_000
        Order messages (adds, deletes, modifies, executions, combination trades)
        of the three order-entry periods. The file also holds the ``T``,
        directory, state, ``Z`` and auction messages, so it has somewhat more.
    form : {"binaryfile", "moldudp64", "csv"}
    n_options : int, default 12
        Option order books.
    seed : int, default 20240607
        Seed of ``numpy.random.Generator(numpy.random.PCG64(seed))``.

    Examples
    --------
    >>> data = ose_day(2000, seed=1)
    >>> data[:3]
    b'\\x00\\x05T'
    >>> ose_day(2000, seed=1, form="csv").splitlines()[0]
    b'T,1717369200'
    """
    out = _Collector()
    write_ose_day(out, n_messages, form=form, n_options=n_options, seed=seed)
    return b"".join(out.parts)
