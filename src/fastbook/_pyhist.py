"""Pure-Python twin of ``fastbook._hist`` (used under ``FASTBOOK_NO_EXTENSIONS=1``).

Same buckets, counts, percentiles and mean as the compiled histogram for the same
values; see ``fastbook/_hist.pxd`` for the layout and the error bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

COMPILED = False
SUB_BITS = 7
_SUB = 1 << SUB_BITS
_TOP_EXP = 44
NBUCKETS = _SUB + (_TOP_EXP - SUB_BITS) * _SUB
LIMIT = 1 << _TOP_EXP
DEFAULT_QUANTILES = (50.0, 95.0, 99.0, 99.9)
_INT64_MAX = (1 << 63) - 1


def _index(v: int) -> int:
    if v < _SUB:
        return v
    e = v.bit_length() - 1
    return ((e - SUB_BITS + 1) << SUB_BITS) + ((v >> (e - SUB_BITS)) - _SUB)


def _low(i: int) -> int:
    return i if i < _SUB else (_SUB + (i & (_SUB - 1))) << ((i >> SUB_BITS) - 1)


def _width(i: int) -> int:
    return 1 if i < _SUB else 1 << ((i >> SUB_BITS) - 1)


def _check_index(i: int) -> None:
    if not 0 <= i < NBUCKETS:
        raise IndexError(f"bucket {i} out of range 0..{NBUCKETS - 1}")


def bucket_low(i: int) -> int:
    """The smallest value bucket ``i`` holds."""
    _check_index(i)
    return _low(i)


def bucket_high(i: int) -> int:
    """The largest value bucket ``i`` holds (the top bucket also holds every overflow)."""
    _check_index(i)
    return _low(i) + _width(i) - 1


def bucket_index(ns: int) -> int:
    """The bucket ``ns`` is counted in (ValueError for a negative value)."""
    if ns < 0:
        raise ValueError(f"bucket_index: {ns} is negative; negative values are not bucketed")
    return NBUCKETS - 1 if ns >= LIMIT else _index(ns)


def _indices(v: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Bucket indices of non-negative int64 values (vectorized ``bucket_index``)."""
    clipped = np.minimum(v, LIMIT - 1)
    e = np.zeros(v.shape, dtype=np.int64)
    big = clipped >= _SUB
    # exact floor(log2) for int64: frexp on float64 may round up near a power of two
    e[big] = np.frexp(clipped[big].astype(np.float64))[1] - 1
    over = big & ((np.int64(1) << e) > clipped)
    e[over] -= 1
    out: npt.NDArray[np.int64] = clipped.copy()
    shift = e[big] - SUB_BITS
    out[big] = ((e[big] - SUB_BITS + 1) << SUB_BITS) + ((clipped[big] >> shift) - _SUB)
    return out


class LatencyHistogram:
    """Counts of int64 nanosecond latencies in log-linear buckets (relative error <= 1%).

    The twin of ``fastbook._hist.LatencyHistogram``; see that class.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self._counts = np.zeros(NBUCKETS, dtype=np.int64)
        self._reset_scalars()

    def _reset_scalars(self) -> None:
        self._count = 0
        self._negative = 0
        self._overflow = 0
        self._min = _INT64_MAX
        self._max = 0
        self._total = 0.0

    def record(self, ns: int) -> None:
        """Count one value (negative: counted in ``negative`` only)."""
        ns = int(ns)
        if not -(1 << 63) <= ns <= _INT64_MAX:
            raise OverflowError(f"record: {ns} does not fit in int64")
        if ns < 0:
            self._negative += 1
            return
        if ns >= LIMIT:
            i = NBUCKETS - 1
            self._overflow += 1
        else:
            i = _index(ns)
        self._counts[i] += 1
        self._count += 1
        self._total += float(ns)
        self._min = min(self._min, ns)
        self._max = max(self._max, ns)

    def record_many(self, values: Any) -> None:
        """Count every value of a 1-D int64 array, in order."""
        v = _int64_array(values)
        neg = v < 0
        self._negative += int(np.count_nonzero(neg))
        v = v[~neg]
        if not v.size:
            return
        self._overflow += int(np.count_nonzero(v >= LIMIT))
        self._counts += np.bincount(_indices(v), minlength=NBUCKETS).astype(np.int64)
        self._count += int(v.size)
        # accumulate adds in order, as the compiled loop does (sum() would pair them)
        acc = np.add.accumulate(np.concatenate(([self._total], v.astype(np.float64))))
        self._total = float(acc[-1])
        self._min = min(self._min, int(v.min()))
        self._max = max(self._max, int(v.max()))

    @property
    def count(self) -> int:
        """Values bucketed (overflow included, negative not)."""
        return self._count

    @property
    def negative(self) -> int:
        """Negative values seen (not bucketed)."""
        return self._negative

    @property
    def overflow(self) -> int:
        """Values at or above ``LIMIT`` (in the top bucket)."""
        return self._overflow

    @property
    def min(self) -> int:
        """The smallest bucketed value (exact; 0 when empty)."""
        return self._min if self._count else 0

    @property
    def max(self) -> int:
        """The largest bucketed value (exact, overflow included; 0 when empty)."""
        return self._max

    @property
    def total(self) -> float:
        """The sum of bucketed values (float, added in recording order)."""
        return self._total

    @property
    def mean(self) -> float:
        """The mean of bucketed values (0.0 when empty)."""
        return self._total / self._count if self._count else 0.0

    @property
    def buckets(self) -> npt.NDArray[np.int64]:
        """The bucket counts: a read-only int64 numpy view (``NBUCKETS`` long)."""
        view: npt.NDArray[np.int64] = self._counts.view()
        view.flags.writeable = False
        return view

    def percentile(self, q: float) -> int:
        """The ``q``-th percentile (0 <= q <= 100), nearest rank, within 1%."""
        q = float(q)
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile: q={q} is outside 0..100")
        return self._percentile(q)

    def _percentile(self, q: float) -> int:
        if self._count == 0:
            return 0
        rank = min(max(math.ceil(q * float(self._count) / 100.0), 1), self._count)
        i = int(np.searchsorted(np.cumsum(self._counts), rank))
        if i == NBUCKETS - 1 and self._overflow:
            return self._max
        value = _low(i) + (_width(i) >> 1)
        return min(max(value, self._min), self._max)

    def percentiles(self, qs: Iterable[float] = DEFAULT_QUANTILES) -> dict[float, int]:
        """``{q: percentile(q)}`` for each of ``qs``."""
        return {q: self.percentile(q) for q in qs}

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts to this histogram (``other`` is unchanged)."""
        if not isinstance(other, LatencyHistogram):
            raise TypeError(f"merge: expected a LatencyHistogram, got {type(other).__name__}")
        self._counts += other._counts
        if other._count:
            self._min = min(self._min, other._min)
            self._max = max(self._max, other._max)
        self._count += other._count
        self._negative += other._negative
        self._overflow += other._overflow
        self._total += other._total

    def reset(self) -> None:
        """Forget every value."""
        self._counts[:] = 0
        self._reset_scalars()

    def copy(self) -> LatencyHistogram:
        """An independent histogram with the same counts."""
        out = LatencyHistogram()
        out.__setstate__(self.__getstate__())
        return out

    def to_dict(self, *, buckets: bool = False) -> dict[str, Any]:
        """Plain data: count, min, max, mean, p50, p95, p99, p999, negative, overflow, sum."""
        out: dict[str, Any] = {
            "count": self.count, "min": self.min, "max": self.max, "mean": self.mean,
            "p50": self._percentile(50.0), "p95": self._percentile(95.0),
            "p99": self._percentile(99.0), "p999": self._percentile(99.9),
            "negative": self.negative, "overflow": self.overflow, "sum": self.total}
        if buckets:
            nz = np.flatnonzero(self._counts)
            out["buckets"] = dict(zip(nz.tolist(), self._counts[nz].tolist(), strict=True))
        return out

    def __getstate__(self) -> tuple[bytes, int, int, int, int, int, float]:
        return (self._counts.tobytes(), self._count, self._negative, self._overflow,
                self._min, self._max, self._total)

    def __setstate__(self, state: tuple[bytes, int, int, int, int, int, float]) -> None:
        counts, count, negative, overflow, lo, hi, total = state
        arr = np.frombuffer(counts, dtype=np.int64)
        if arr.shape[0] != NBUCKETS:
            raise ValueError(f"LatencyHistogram state has {arr.shape[0]} buckets, "
                             f"expected {NBUCKETS}")
        self._counts = arr.copy()
        self._count, self._negative, self._overflow = count, negative, overflow
        self._min, self._max, self._total = lo, hi, total

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.__getstate__() == other.__getstate__()

    def __repr__(self) -> str:
        return (f"LatencyHistogram(count={self.count}, min={self.min}, max={self.max}, "
                f"p50={self._percentile(50.0)}, p99={self._percentile(99.0)}, "
                f"negative={self.negative}, overflow={self.overflow})")


def _int64_array(values: Any) -> npt.NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"record_many: expected a 1-D array, got {arr.ndim}-D")
    if arr.dtype != np.int64:
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"record_many: expected int64 nanoseconds, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    return np.ascontiguousarray(arr)
