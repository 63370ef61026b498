"""Microstructure features computed by the sampler, inside the apply loop.

``Sampler(..., features=[...])`` (and ``fb.replay(..., features=[...])``,
``fastbook replay --features``) adds feature columns to each sample row. They
are computed in compiled code while the events are applied (the pure-Python
core computes them with the twin in :mod:`fastbook._pyfeatures`, which the
differential tests hold to the same values bit for bit). ``docs/features.md``
defines each one exactly: formula, units, edge cases.

A feature is named by a short text:

===================  ==========================================================
``mid``              ``mid``: (best bid + best ask) / 2, in price units
``spread``           ``spread`` (price units), ``spread_ticks``, ``spread_bps``
``microprice``       ``microprice``: the size-weighted mid
``imbalance_K``      ``imbalance_K``: (bid qty - ask qty) / (bid + ask) over the top K levels
``depth_bps_X``      ``bid_depth_bps_X``, ``ask_depth_bps_X``: quantity within X bps of mid
``slope_K``          ``bid_slope_K``, ``ask_slope_K``: OLS slope of cumulative quantity on
                     distance from mid over the top K levels
``walk_cost_Q``      ``walk_buy_px_Q``, ``walk_buy_bps_Q``, ``walk_buy_thin_Q`` and the sell
                     three: a market order of size Q walking the visible book
``ofi`` / ``ofi_K``  ``ofi_l1`` .. ``ofi_lK``: order flow imbalance per level since the
                     previous row (Cont, Kukanov and Stoikov 2014; multi-level form)
``trade_flow``       ``trade_count``, ``trade_qty``, ``trade_buy_qty``, ``trade_sell_qty``
                     since the previous row, by aggressor side
``vpin_V_N``         ``vpin``: VPIN over the last N volume buckets of V (quantity units)
===================  ==========================================================

``X`` and ``Q`` and ``V`` are decimal numbers in the instrument's real units
(``walk_cost_0.5`` is half a unit of quantity); ``Q`` and ``V`` must be whole
multiples of the instrument's quantity step (``10 ** -qty_decimals``).
:class:`Stoikov` is the Stoikov (2018) micro-price with a chosen adjustment
table, given as an object (it has parameters no short name can hold).

Price-valued features are float64 in real price units (``100.25``), quantity
features that are sums of quantities (depth, OFI, trade flow) are exact int64
in the instrument's fixed-point quantity units (as ``bid_qty``), the rest are
float64. A feature that cannot be computed for a row (an empty side, no trades
yet) is NaN (float columns) or 0 (integer columns), as ``docs/features.md``
states per feature; a replay never stops because a book lacks what a feature
needs.

>>> [c.name for c in parse_features(["mid", "imbalance_5", "ofi_2"]).columns]
['mid', 'imbalance_5', 'ofi_l1', 'ofi_l2']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

__all__ = ["Column", "Feature", "FeatureSet", "Stoikov", "parse_features",
           "stoikov_adjustment"]

# kind codes shared with the compiled kernel (_l3_features.pxi)
MID, SPREAD, MICROPRICE, STOIKOV, IMBALANCE, DEPTH_BPS, SLOPE, WALK = 1, 2, 3, 4, 5, 6, 7, 8
OFI, TRADE_FLOW, VPIN = 10, 11, 12
#: kinds computed from the events between rows (the others read the book at the row)
FLOW_KINDS = frozenset({OFI, TRADE_FLOW, VPIN})

#: the largest K of imbalance_K, slope_K and ofi_K
MAX_LEVELS = 1000
#: the most buckets vpin_V_N keeps
MAX_BUCKETS = 1_000_000
_BPS_DEN = 10_000


@dataclass(frozen=True)
class Column:
    """One feature column: name, numpy dtype and unit (``docs/features.md``)."""

    name: str
    dtype: str            # "f8", "i8" or "u1"
    unit: str             # "price", "qty", "ticks", "bps", "ratio", "qty/price", "count", "flag"


@dataclass(frozen=True)
class Feature:
    """A parsed feature: its kind, parameters and columns (see :func:`parse_features`)."""

    name: str
    kind: int
    k: int = 0                          # levels (imbalance, slope, ofi) or buckets (vpin)
    amount: Decimal | None = None       # X bps, Q or V quantity (real units)
    columns: tuple[Column, ...] = ()
    table: np.ndarray | None = field(default=None, compare=False)

    @property
    def flow(self) -> bool:
        """Computed from the events since the previous row (not only from the book)."""
        return self.kind in FLOW_KINDS

    def fixed(self, qty_decimals: int) -> int:
        """``amount`` in fixed-point quantity units of an instrument (walk_cost, vpin).

        0 when it is not a whole number of the instrument's quantity steps, or too
        large (``vpin``: ``N * V`` must stay below 2**62 units): the feature is then
        NaN for that instrument (``docs/features.md``), never computed for a rounded
        amount, and never an error in the middle of a replay.
        """
        assert self.amount is not None
        scaled = self.amount.scaleb(qty_decimals)
        if scaled != scaled.to_integral_value() or scaled < 1:
            return 0
        value = int(scaled)
        if value * max(self.k, 1) >= 1 << 62:
            return 0
        return value

    def bps_ratio(self) -> tuple[int, int]:
        """``depth_bps_X``: X as an exact fraction ``num / den`` of a basis point."""
        assert self.amount is not None
        _sign, digits, exp = self.amount.as_tuple()
        num = int("".join(map(str, digits)) or "0")
        assert isinstance(exp, int)
        den = 1
        if exp < 0:
            den = 10 ** -exp
        else:
            num *= 10 ** exp
        return num, den


class Stoikov:
    """The Stoikov (2018) micro-price with a chosen adjustment: ``mid + spread * g``.

    ``g`` is looked up in ``table`` by the level-1 imbalance
    ``I = bid_qty / (bid_qty + ask_qty)`` in ``len(table[0])`` equal buckets of
    [0, 1] and, for a two-dimensional table, by the spread in ticks (row
    ``min(spread_ticks, rows) - 1``; a one-dimensional table serves every
    spread). The paper estimates ``g`` from the data
    (:func:`stoikov_adjustment` computes the first-order estimate); the
    size-weighted micro-price is the table ``g(I) = I - 1/2``.
    Column ``microprice_stoikov`` (price units).
    """

    def __init__(self, table: Sequence[float] | Sequence[Sequence[float]] | np.ndarray):
        arr = np.array(table, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1 \
                or arr.shape[0] > 10_000 or arr.shape[1] > 10_000:
            raise ValueError(f"a Stoikov table is 1-d (imbalance buckets) or 2-d (spread in "
                             f"ticks x imbalance buckets) with 1 to 10,000 entries per axis, "
                             f"got shape {np.shape(table)}")
        if not np.isfinite(arr).all():
            raise ValueError("a Stoikov table holds finite numbers only")
        self.table = np.ascontiguousarray(arr)

    def __repr__(self) -> str:
        return f"Stoikov(table of shape {self.table.shape})"


class FeatureSet:
    """The features a sampler computes, in order, with their columns."""

    def __init__(self, features: Sequence[Feature]):
        self.features = tuple(features)
        self.columns = tuple(c for f in self.features for c in f.columns)
        for kind, what in ((OFI, "ofi"), (TRADE_FLOW, "trade_flow"), (VPIN, "vpin"),
                           (STOIKOV, "Stoikov")):
            if sum(f.kind == kind for f in self.features) > 1:
                raise ValueError(f"at most one {what} feature per sampler")
        names = [c.name for c in self.columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"features give the same column twice: {', '.join(dup)}")
        self.ofi_levels = max((f.k for f in self.features if f.kind == OFI), default=0)
        self.trades = any(f.kind in (TRADE_FLOW, VPIN) for f in self.features)
        self.vpin = next((f for f in self.features if f.kind == VPIN), None)
        self.stoikov = next((f for f in self.features if f.kind == STOIKOV), None)
        self._spec = self._make_spec()

    def __len__(self) -> int:
        return len(self.features)

    def __iter__(self) -> Any:
        return iter(self.features)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def spec(self) -> np.ndarray:
        """The compiled kernel's table: per feature kind, k, first column, X as num/den
        (made once: every ``BookSet.apply`` binds it)."""
        return self._spec

    def _make_spec(self) -> np.ndarray:
        out = np.zeros((len(self.features), 5), np.int64)
        col = 0
        for i, f in enumerate(self.features):
            num, den = f.bps_ratio() if f.kind == DEPTH_BPS else (0, 1)
            out[i] = (f.kind, f.k, col, num, den)
            col += len(f.columns)
        return out

    def fixed(self, instruments: Sequence[dict[str, Any]]) -> np.ndarray:
        """Per instrument and feature, Q or V in fixed-point quantity units (else 0)."""
        out = np.zeros((len(instruments), max(len(self.features), 1)), np.int64)
        for j, f in enumerate(self.features):
            if f.kind in (WALK, VPIN):
                for i, meta in enumerate(instruments):
                    out[i, j] = f.fixed(int(meta["qty_decimals"]))
        return out


def _number(text: str, spec: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"feature {spec!r}: {text!r} is not a number") from None
    if not value.is_finite() or value <= 0 or not text.replace(".", "", 1).isascii() \
            or not text.replace(".", "", 1).isdigit():
        raise ValueError(f"feature {spec!r}: {text!r} must be a positive decimal number "
                         f"written with ASCII digits")
    return value


def _levels(text: str, spec: str, low: int = 1) -> int:
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= MAX_LEVELS:
        raise ValueError(f"feature {spec!r}: the level count must be an integer from {low} "
                         f"to {MAX_LEVELS}, got {text!r}")
    return int(text)


def _parse_one(spec: Any) -> Feature:
    if isinstance(spec, Feature):
        return spec
    if isinstance(spec, Stoikov):
        return Feature("microprice_stoikov", STOIKOV,
                       columns=(Column("microprice_stoikov", "f8", "price"),), table=spec.table)
    if not isinstance(spec, str):
        raise TypeError(f"a feature is a name such as 'mid' or 'ofi_5' or a "
                        f"fastbook.features.Stoikov, got {type(spec).__name__}")
    s = spec.strip()
    if s == "mid":
        return Feature(s, MID, columns=(Column("mid", "f8", "price"),))
    if s == "spread":
        return Feature(s, SPREAD, columns=(Column("spread", "f8", "price"),
                                           Column("spread_ticks", "f8", "ticks"),
                                           Column("spread_bps", "f8", "bps")))
    if s == "microprice":
        return Feature(s, MICROPRICE, columns=(Column("microprice", "f8", "price"),))
    if s == "trade_flow":
        return Feature(s, TRADE_FLOW, columns=tuple(
            Column(n, "i8", u) for n, u in (("trade_count", "count"), ("trade_qty", "qty"),
                                            ("trade_buy_qty", "qty"),
                                            ("trade_sell_qty", "qty"))))
    if s == "ofi":
        s = "ofi_1"
    head, _, tail = s.rpartition("_")
    if head == "imbalance":
        k = _levels(tail, spec)
        return Feature(s, IMBALANCE, k, columns=(Column(s, "f8", "ratio"),))
    if head == "slope":
        k = _levels(tail, spec, 2)
        return Feature(s, SLOPE, k, columns=(Column(f"bid_{s}", "f8", "qty/price"),
                                             Column(f"ask_{s}", "f8", "qty/price")))
    if head == "ofi":
        k = _levels(tail, spec)
        return Feature(s, OFI, k, columns=tuple(Column(f"ofi_l{m}", "i8", "qty")
                                                for m in range(1, k + 1)))
    if head == "depth_bps":
        x = _number(tail, spec)
        if x > _BPS_DEN:
            raise ValueError(f"feature {spec!r}: at most {_BPS_DEN} bps (the whole mid)")
        if x.as_tuple().exponent < -6:  # type: ignore[operator]
            raise ValueError(f"feature {spec!r}: at most 6 decimals of a basis point")
        return Feature(s, DEPTH_BPS, amount=x, columns=(Column(f"bid_{s}", "i8", "qty"),
                                                        Column(f"ask_{s}", "i8", "qty")))
    if head == "walk_cost":
        q = _number(tail, spec)
        cols = []
        for side in ("buy", "sell"):
            cols += [Column(f"walk_{side}_px_{tail}", "f8", "price"),
                     Column(f"walk_{side}_bps_{tail}", "f8", "bps"),
                     Column(f"walk_{side}_thin_{tail}", "u1", "flag")]
        return Feature(s, WALK, amount=q, columns=tuple(cols))
    head2, _, v_text = head.rpartition("_")
    if head2 == "vpin":
        return _vpin(spec, v_text, tail)
    if s.startswith("vpin"):
        raise ValueError(f"feature {spec!r}: VPIN is named vpin_V_N (V the bucket volume in "
                         f"quantity units, N the number of buckets), e.g. vpin_1000_50")
    raise ValueError(f"unknown feature {spec!r}; features are mid, spread, microprice, "
                     f"imbalance_K, depth_bps_X, slope_K, walk_cost_Q, ofi, ofi_K, "
                     f"trade_flow, vpin_V_N (and fastbook.features.Stoikov)")


def _vpin(spec: str, v_text: str, n_text: str) -> Feature:
    v = _number(v_text, spec)
    if not n_text.isascii() or not n_text.isdigit() or not 1 <= int(n_text) <= MAX_BUCKETS:
        raise ValueError(f"feature {spec!r}: the bucket count must be an integer from 1 to "
                         f"{MAX_BUCKETS}, got {n_text!r}")
    return Feature(f"vpin_{v_text}_{n_text}", VPIN, int(n_text), amount=v,
                   columns=(Column("vpin", "f8", "ratio"),))


def parse_features(specs: Iterable[Any] | str | None) -> FeatureSet:
    """Parse feature names (a list, or one comma-separated text) into a :class:`FeatureSet`.

    Raises ValueError naming the feature for an unknown name or a bad parameter.

    >>> parse_features("spread,walk_cost_2").names
    ['spread', 'walk_cost_2']
    """
    if specs is None:
        return FeatureSet(())
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    return FeatureSet([_parse_one(s) for s in specs])


def stoikov_adjustment(samples: dict[str, np.ndarray], *, buckets: int = 10,
                       spreads: int = 1, horizon: int = 1) -> np.ndarray:
    """A first-order estimate of Stoikov's adjustment table from sample rows.

    ``samples`` are a sampler's columns (``bid_px``, ``bid_qty``, ``ask_px``,
    ``ask_qty`` at least one level deep, ``instrument``). For each row with both
    sides, the imbalance bucket and the spread in ticks (of the raw price grid:
    1 raw unit = 1 tick unless the caller rescaled) give a cell; the table holds
    the mean of ``(mid[t + horizon] - mid[t]) / spread[t]`` over the cell's
    rows, the next row of the same instrument ``horizon`` rows later (0 for an
    empty cell). This is the paper's ``G1`` term, the first of its series; it
    is what :class:`Stoikov` then adds to the mid, times the spread.
    """
    if not (isinstance(buckets, int) and 1 <= buckets <= 10_000
            and isinstance(spreads, int) and 1 <= spreads <= 10_000
            and isinstance(horizon, int) and horizon >= 1):
        raise ValueError("buckets and spreads must be integers from 1 to 10,000 and horizon "
                         "a positive integer")
    total = np.zeros((spreads, buckets))
    count = np.zeros((spreads, buckets))
    inst = np.asarray(samples["instrument"])
    for i in np.unique(inst):
        rows = np.flatnonzero(inst == i)
        b = samples["bid_px"][rows, 0].astype(np.float64)
        a = samples["ask_px"][rows, 0].astype(np.float64)
        qb = samples["bid_qty"][rows, 0].astype(np.float64)
        qa = samples["ask_qty"][rows, 0].astype(np.float64)
        ok = (qb > 0) & (qa > 0) & (a > b)
        mid = (a + b) / 2
        spread = a - b
        if len(rows) <= horizon:
            continue
        now = np.arange(len(rows) - horizon)
        later = now + horizon
        keep = ok[now] & ok[later]
        now, later = now[keep], later[keep]
        imb = qb[now] / (qb[now] + qa[now])
        bucket = np.minimum((imb * buckets).astype(np.int64), buckets - 1)
        srow = np.minimum(spread[now].astype(np.int64), spreads) - 1
        np.add.at(total, (srow, bucket), (mid[later] - mid[now]) / spread[now])
        np.add.at(count, (srow, bucket), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return out[0] if spreads == 1 else out



def column_unit(name: str) -> str | None:
    """The unit of a feature column named ``name`` (None: not a feature column).

    >>> column_unit("ofi_l3"), column_unit("walk_buy_px_0.5"), column_unit("bid_px")
    ('qty', 'price', None)
    """
    fixed = {"mid": "price", "microprice": "price", "microprice_stoikov": "price",
             "spread": "price", "spread_ticks": "ticks", "spread_bps": "bps",
             "trade_count": "count", "trade_qty": "qty", "trade_buy_qty": "qty",
             "trade_sell_qty": "qty", "vpin": "ratio"}
    if name in fixed:
        return fixed[name]
    if name.startswith("imbalance_"):
        return "ratio"
    if name.startswith(("bid_depth_bps_", "ask_depth_bps_")) or \
            (name.startswith("ofi_l") and name[5:].isdigit()):
        return "qty"
    if name.startswith(("bid_slope_", "ask_slope_")):
        return "qty/price"
    for side in ("buy", "sell"):
        for part, unit in (("px", "price"), ("bps", "bps"), ("thin", "flag")):
            if name.startswith(f"walk_{side}_{part}_"):
                return unit
    return None
