"""The pure-Python twin of the feature kernels (``_l3_features.pxi``): the oracle.

Written from the definitions in ``docs/features.md`` with Python ints wherever
the compiled kernel uses exact integer arithmetic (``__int128`` there), and the
same float operations in the same order wherever it computes a float, so the
two agree bit for bit (the differential tests compare them exactly).

The per-instrument state lives in numpy arrays the :class:`~fastbook.sampling.Sampler`
owns (both cores read and write the same arrays): see :class:`FeatureState`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastbook import features as F
from fastbook._vocab import Action, Flags

_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
_NAN = float("nan")
_BPS = 10_000
_SNAPSHOTISH = (int(Action.SNAPSHOT_BEGIN), int(Action.SNAPSHOT_END), int(Action.CLEAR))
_SNAPSHOT = int(Flags.SNAPSHOT)
_EXECUTE, _TRADE = int(Action.EXECUTE), int(Action.TRADE)
_ADD, _SET_LEVEL, _REPLACE = int(Action.ADD), int(Action.SET_LEVEL), int(Action.REPLACE)
_STATUS = int(Action.STATUS)
_NON_PRINTABLE, _CROSS = int(Flags.NON_PRINTABLE), int(Flags.CROSS)
_AGG_BUY, _AGG_SELL = int(Flags.AGGRESSOR_BUY), int(Flags.AGGRESSOR_SELL)

#: ``ofi_sides``: both sides of the book may have changed
BOTH = 3
#: trade aggressor codes (``aggressor`` column of the trades table)
UNKNOWN, BUY, SELL = 0, 1, 2
#: how a trade's aggressor was found (``rule`` column): none (a cross, or nothing to go
#: on), the venue's flag, the resting order's side, the quote rule, the tick rule
RULE_NONE, RULE_VENUE, RULE_RESTING, RULE_QUOTE, RULE_TICK = 0, 1, 2, 3, 4
RULES = ("none", "venue", "resting", "quote", "tick")

# columns of FeatureState.trade_acc / trade_last / vpin
_T_COUNT, _T_QTY, _T_BUY, _T_SELL = range(4)
_L_HAS, _L_PRICE, _L_DIR = range(3)
_V_BUY, _V_SELL, _V_FILLED, _V_POS, _V_SUM = range(5)


def clamp(x: int) -> int:
    """``x`` saturated to int64 (the kernel's saturating sums)."""
    return _INT64_MAX if x > _INT64_MAX else _INT64_MIN if x < _INT64_MIN else x


def _levels(book: Any, side: int, n: int) -> list[tuple[int, int]]:
    """The best ``n`` levels of ``side`` (1 bid, 2 ask) as (price, qty), best first."""
    n = min(n, book.depth(side))
    if n <= 0:
        return []
    top = book.top(n)
    px, qty = (top[0], top[1]) if side == 1 else (top[2], top[3])
    return [(int(px[i]), int(qty[i])) for i in range(n) if qty[i] > 0]


def _all_levels(book: Any, side: int) -> list[tuple[int, int]]:
    return _levels(book, side, book.depth(side))


def _best(book: Any) -> tuple[int, int, int, int]:
    top = book.top(1)
    return int(top[0, 0]), int(top[1, 0]), int(top[2, 0]), int(top[3, 0])


def row_values(fs: F.FeatureSet, book: Any, meta: dict[str, Any], fixed: np.ndarray,
               state: FeatureState, inst: int) -> list[Any]:
    """The feature columns of one row of ``inst`` (resets its flow accumulators)."""
    scale = float(10 ** int(meta["price_decimals"]))
    qscale = float(10 ** int(meta["qty_decimals"]))
    tick = float(int(meta["tick_size"]))
    b, qb, a, qa = _best(book)
    both = qb > 0 and qa > 0
    m2 = a + b
    out: list[Any] = []
    for j, f in enumerate(fs.features):
        k = f.kind
        if k == F.MID:
            out.append(float(m2) / 2.0 / scale if both else _NAN)
        elif k == F.SPREAD:
            if both:
                d = a - b
                out += [float(d) / scale, float(d) / tick,
                        float(d) / (float(m2) / 2.0) * 10000.0 if m2 > 0 else _NAN]
            else:
                out += [_NAN, _NAN, _NAN]
        elif k == F.MICROPRICE:
            out.append(float(b * qa + a * qb) / float(qa + qb) / scale if both else _NAN)
        elif k == F.STOIKOV:
            out.append(_stoikov(f.table, b, qb, a, qa, int(meta["tick_size"]), scale)
                       if both else _NAN)
        elif k == F.IMBALANCE:
            sb = sum(q for _, q in _levels(book, 1, f.k))
            sa = sum(q for _, q in _levels(book, 2, f.k))
            out.append(float(sb - sa) / float(sb + sa) if sb + sa else _NAN)
        elif k == F.DEPTH_BPS:
            num, den = f.bps_ratio()
            out += _depth_bps(book, both and m2 > 0, m2, num, den)
        elif k == F.SLOPE:
            for side in (1, 2):
                out.append(_slope(_levels(book, side, f.k), m2, scale, qscale) if both
                           else _NAN)
        elif k == F.WALK:
            q = int(fixed[j])
            for side in (2, 1):           # a buy walks the asks, a sell the bids
                out += _walk(book, side, q, both and m2 > 0, m2, scale)
        elif k == F.OFI:
            acc = state.ofi_acc[inst]
            out += [int(v) for v in acc[: f.k]]
        elif k == F.TRADE_FLOW:
            out += [int(v) for v in state.trade_acc[inst]]
        elif k == F.VPIN:
            v = state.vpin[inst]
            n, size = f.k, int(fixed[j])
            out.append(float(int(v[_V_SUM])) / (float(n) * float(size))
                       if int(v[_V_FILLED]) >= n else _NAN)
    state.reset_row(inst)
    return out


def _stoikov(table: Any, b: int, qb: int, a: int, qa: int, tick: int, scale: float) -> float:
    rows, nb = table.shape
    imb = float(qb) / float(qb + qa)
    bucket = min(int(imb * nb), nb - 1)
    ticks = (a - b) // tick
    r = min(max(ticks, 1), rows) - 1
    g = float(table[r, bucket])
    return (float(a + b) / 2.0 + float(a - b) * g) / scale


def _depth_bps(book: Any, ok: bool, m2: int, num: int, den: int) -> list[int]:
    if not ok:
        return [0, 0]
    lhs = 2 * _BPS * den
    out = []
    for side in (1, 2):
        bound = (_BPS * den - num) * m2 if side == 1 else (_BPS * den + num) * m2
        total = 0
        for p, q in _all_levels(book, side):
            inside = lhs * p >= bound if side == 1 else lhs * p <= bound
            if not inside:
                break
            total = clamp(total + q)
        out.append(total)
    return out


def _slope(levels: list[tuple[int, int]], m2: int, scale: float, qscale: float) -> float:
    # raw units (x = twice the distance from mid, y = cumulative quantity), scaled once
    n = len(levels)
    if n < 2:
        return _NAN
    xs, ys = [], []
    cum = 0
    for p, q in levels:
        cum = clamp(cum + q)
        xs.append(float(abs(2 * p - m2)))
        ys.append(float(cum))
    mx = 0.0
    my = 0.0
    for i in range(n):
        mx += xs[i]
        my += ys[i]
    mx /= n
    my /= n
    sxx = 0.0
    sxy = 0.0
    for i in range(n):
        dx = xs[i] - mx
        sxx += dx * dx
        sxy += dx * (ys[i] - my)
    return sxy / sxx * (2.0 * scale) / qscale if sxx > 0.0 else _NAN


def _walk(book: Any, side: int, q: int, has_mid: bool, m2: int,
          scale: float) -> list[Any]:
    remaining = q
    notional = 0
    for p, lq in _all_levels(book, side):
        f = min(remaining, lq)
        notional += p * f
        remaining -= f
        if remaining == 0:
            break
    filled = q - remaining
    thin = 1 if remaining > 0 else 0
    if filled == 0:
        return [_NAN, _NAN, thin]
    px_raw = float(notional) / float(filled)
    bps = _NAN
    if has_mid:
        mid_raw = float(m2) / 2.0
        bps = (px_raw - mid_raw) / mid_raw * 10000.0 if side == 2 else \
            (mid_raw - px_raw) / mid_raw * 10000.0
    return [px_raw / scale, bps, thin]


class FeatureState:
    """Per-instrument feature state (numpy arrays shared by both cores), grown by ``grow``."""

    def __init__(self, fs: F.FeatureSet) -> None:
        self.fs = fs
        self.k = fs.ofi_levels
        self.nb = fs.vpin.k if fs.vpin is not None else 0
        self.vpin_j = fs.features.index(fs.vpin) if fs.vpin is not None else -1
        self.ofi_prev = np.zeros((0, 4 * max(self.k, 1)), np.int64)
        self.ofi_acc = np.zeros((0, max(self.k, 1)), np.int64)
        self.trade_acc = np.zeros((0, 4), np.int64)
        self.trade_last = np.zeros((0, 3), np.int64)
        self.vpin = np.zeros((0, 5), np.int64)
        self.vpin_ring = np.zeros((0, max(self.nb, 1)), np.int64)
        self.fixed = np.zeros((0, max(len(fs), 1)), np.int64)
        self.scale = np.zeros(0, np.float64)        # 10 ** price_decimals
        self.qscale = np.zeros(0, np.float64)       # 10 ** qty_decimals
        self.tick = np.zeros(0, np.int64)

    NAMES = ("ofi_prev", "ofi_acc", "trade_acc", "trade_last", "vpin", "vpin_ring")

    def grow(self, bookset: Any, n: int) -> None:
        """Size the state to ``n`` instruments of ``bookset`` (new ones start from their book)."""
        old = len(self.scale)
        if n <= old:
            return
        metas = [bookset.instrument(i) for i in range(old, n)]
        fixed = self.fs.fixed(metas) if len(self.fs) else np.zeros((n - old, 1), np.int64)

        def extend(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return np.concatenate([arr, rows.astype(arr.dtype).reshape(-1, *arr.shape[1:])])

        self.fixed = extend(self.fixed, fixed)
        self.scale = extend(self.scale, np.array([10.0 ** int(m["price_decimals"])
                                                  for m in metas]))
        self.qscale = extend(self.qscale, np.array([10.0 ** int(m["qty_decimals"])
                                                    for m in metas]))
        self.tick = extend(self.tick, np.array([int(m["tick_size"]) for m in metas]))
        prev = np.zeros((n - old, self.ofi_prev.shape[1]), np.int64)
        if self.k:
            for i in range(old, n):
                prev[i - old] = ofi_levels(bookset[i], self.k)
        self.ofi_prev = extend(self.ofi_prev, prev)
        for name in ("ofi_acc", "trade_acc", "trade_last", "vpin", "vpin_ring"):
            arr = getattr(self, name)
            setattr(self, name, extend(arr, np.zeros((n - old, arr.shape[1]), np.int64)))

    def save(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, name).copy() for name in self.NAMES)

    def restore(self, saved: tuple[np.ndarray, ...]) -> None:
        for name, arr in zip(self.NAMES, saved, strict=True):
            getattr(self, name)[: len(arr)] = arr

    def reset_row(self, inst: int) -> None:
        self.ofi_acc[inst] = 0
        self.trade_acc[inst] = 0

    # -- after an event (or packet): order flow imbalance ----------------------------
    def ofi_update(self, book: Any, inst: int, action: int, flags: int,
                   sides: int = BOTH) -> None:
        """OFI after an event or packet; ``sides`` (:meth:`ofi_sides`) are those it could
        change: the other side is taken as it was (the kernel reads only those)."""
        if not self.k:
            return
        now = ofi_levels(book, self.k)
        prev = self.ofi_prev[inst]
        k = self.k
        if sides == 1:
            now[2 * k:] = prev[2 * k:]
        elif sides == 2:
            now[: 2 * k] = prev[: 2 * k]
        if action in _SNAPSHOTISH or flags & _SNAPSHOT:
            prev[:] = now
            return
        k = self.k
        acc = self.ofi_acc[inst]
        for m in range(k):
            pb, qb = int(now[m]), int(now[k + m])
            pa, qa = int(now[2 * k + m]), int(now[3 * k + m])
            ob, oqb = int(prev[m]), int(prev[k + m])
            oa, oqa = int(prev[2 * k + m]), int(prev[3 * k + m])
            if qb == 0:
                pb = _INT64_MIN
            if oqb == 0:
                ob = _INT64_MIN
            if qa == 0:
                pa = _INT64_MAX
            if oqa == 0:
                oa = _INT64_MAX
            e = (qb if pb >= ob else 0) - (oqb if pb <= ob else 0) \
                - (qa if pa <= oa else 0) + (oqa if pa >= oa else 0)
            acc[m] = clamp(int(acc[m]) + e)
        prev[:] = now

    def _deep(self, inst: int, side: int, price: int) -> bool:
        k = self.k
        prev = self.ofi_prev[inst]
        if side == 1:
            return int(prev[2 * k - 1]) > 0 and price < int(prev[k - 1])
        if side == 2:
            return int(prev[4 * k - 1]) > 0 and price > int(prev[3 * k - 1])
        return False

    def ofi_sides(self, book: Any, kind: str, row: tuple[Any, ...]) -> int:
        """Before an event (per-event sampling): the sides of the top k levels it can
        change (the kernel's ``_ofi_sides``, the same rule): 0 none (its order is behind
        the k-th level of a side that has k, or it changes no book), 1 or 2 that side
        alone (an L3 event touches its order's side only), :data:`BOTH`."""
        _, _, inst, action, side, flags, price, _, order_id, _, _ = row
        if action in (_TRADE, _STATUS):
            return 0
        if flags & _SNAPSHOT or action in _SNAPSHOTISH:
            return BOTH
        if kind != "l3":
            return 0 if _ADD <= action <= _SET_LEVEL and self._deep(inst, side, price) \
                else BOTH
        if action == _ADD:
            if self._deep(inst, side, price):
                return 0
            return side if side in (1, 2) else BOTH
        if book.side_keys and side not in (1, 2):
            return 0
        try:
            found = book.order(order_id, side=side) if book.side_keys else book.order(order_id)
        except (ValueError, TypeError):
            return 0
        if found is None:
            return 0
        if self._deep(inst, found[0], found[1]) and \
                (action != _REPLACE or self._deep(inst, found[0], price)):
            return 0
        return int(found[0])

    # -- before an event: which trade it prints, if any --------------------------------
    def trade_of(self, book: Any, kind: str, row: tuple[Any, ...]) -> tuple[int, ...] | None:
        """``(price, qty, aggressor, rule)`` of the print an event would make, or None."""
        _, _, inst, action, side, flags, price, qty, order_id, _, _ = row
        if (action != _EXECUTE and action != _TRADE) or flags & _NON_PRINTABLE or qty < 1:
            return None
        if action == _EXECUTE and kind == "l3":
            try:
                found = book.order(order_id, side=side) if book.side_keys \
                    else book.order(order_id)
            except (ValueError, TypeError):
                return None
            if found is None:
                return None
            side, price = found[0], found[1]
        if flags & _AGG_BUY and not flags & _AGG_SELL:
            return price, qty, BUY, RULE_VENUE
        if flags & _AGG_SELL and not flags & _AGG_BUY:
            return price, qty, SELL, RULE_VENUE
        if flags & _CROSS:
            return price, qty, UNKNOWN, RULE_NONE
        if side == 1:
            return price, qty, SELL, RULE_RESTING
        if side == 2:
            return price, qty, BUY, RULE_RESTING
        b, qb, a, qa = _best(book)
        if qb > 0 and qa > 0:
            if 2 * price > a + b:
                return price, qty, BUY, RULE_QUOTE
            if 2 * price < a + b:
                return price, qty, SELL, RULE_QUOTE
        last = self.trade_last[inst]
        if int(last[_L_HAS]):
            lp = int(last[_L_PRICE])
            if price > lp:
                return price, qty, BUY, RULE_TICK
            if price < lp:
                return price, qty, SELL, RULE_TICK
            if int(last[_L_DIR]):
                return price, qty, int(last[_L_DIR]), RULE_TICK
        return price, qty, UNKNOWN, RULE_NONE

    def trade_commit(self, inst: int, trade: tuple[int, ...]) -> None:
        price, qty, aggressor, _ = trade
        acc = self.trade_acc[inst]
        acc[_T_COUNT] = clamp(int(acc[_T_COUNT]) + 1)
        acc[_T_QTY] = clamp(int(acc[_T_QTY]) + qty)
        if aggressor == BUY:
            acc[_T_BUY] = clamp(int(acc[_T_BUY]) + qty)
        elif aggressor == SELL:
            acc[_T_SELL] = clamp(int(acc[_T_SELL]) + qty)
        last = self.trade_last[inst]
        if int(last[_L_HAS]):
            if price > int(last[_L_PRICE]):
                last[_L_DIR] = BUY
            elif price < int(last[_L_PRICE]):
                last[_L_DIR] = SELL
        last[_L_HAS] = 1
        last[_L_PRICE] = price
        if self.nb and aggressor != UNKNOWN:
            size = int(self.fixed[inst, self.vpin_j])
            if size:
                self._vpin_add(inst, qty, aggressor, size)

    def _vpin_add(self, inst: int, qty: int, aggressor: int, size: int) -> None:
        v = self.vpin[inst]
        ring = self.vpin_ring[inst]
        nb = self.nb
        cur = _V_BUY if aggressor == BUY else _V_SELL

        def close() -> None:
            pos = int(v[_V_POS])
            imb = abs(int(v[_V_BUY]) - int(v[_V_SELL]))
            total = int(v[_V_SUM])
            if int(v[_V_FILLED]) >= nb:
                total -= int(ring[pos])
            else:
                v[_V_FILLED] = int(v[_V_FILLED]) + 1
            ring[pos] = imb
            v[_V_SUM] = total + imb
            v[_V_POS] = (pos + 1) % nb
            v[_V_BUY] = 0
            v[_V_SELL] = 0

        room = size - int(v[_V_BUY]) - int(v[_V_SELL])
        f = min(room, qty)
        v[cur] = int(v[cur]) + f
        qty -= f
        if f == room:
            close()
        whole, rest = divmod(qty, size)
        for _ in range(min(whole, nb)):
            v[cur] = size
            close()
        if whole > nb:
            v[_V_POS] = (int(v[_V_POS]) + (whole - nb)) % nb
        v[cur] = int(v[cur]) + rest


def ofi_levels(book: Any, k: int) -> np.ndarray:
    """The top ``k`` levels as one row: bid prices, bid qtys, ask prices, ask qtys."""
    top = book.top(k)
    return np.concatenate([top[0], top[1], top[2], top[3]]).astype(np.int64)
