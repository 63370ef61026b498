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
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

__all__ = ["L2Workload", "l2_workload"]

_BID = 1
_ASK = 2

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
    if not isinstance(n_updates, (int, np.integer)) or isinstance(n_updates, bool) \
            or n_updates < 0:
        raise ValueError(f"n_updates must be an int >= 0, got {n_updates!r}")
    if not isinstance(levels, (int, np.integer)) or isinstance(levels, bool) or levels < 2:
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
    for row, side, book, sign, base in ((0, _BID, bids, -1, _MID0 - 1), (1, _ASK, asks, 1, _MID0)):
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
                        out_s.append(_ASK)
                        out_p.append(b)
                        out_q.append(0)
                        out_x.append(1)
                        continue
                else:
                    b -= 1
                    if b + 1 in bids:  # the best bid slot becomes an ask slot
                        del bids[b + 1]
                        out_s.append(_BID)
                        out_p.append(b + 1)
                        out_q.append(0)
                        out_x.append(1)
                        continue
            if is_bid:
                book = bids
                p = b - d
                out_s.append(_BID)
            else:
                book = asks
                p = b + 1 + d
                out_s.append(_ASK)
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
