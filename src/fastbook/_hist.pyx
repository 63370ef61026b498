# cython: language_level=3
"""Compiled latency histogram (``LatencyHistogram``); see ``_hist.pxd`` for the layout.

The pure-Python twin is ``fastbook._pyhist``; both give the same buckets, counts,
percentiles and mean for the same values (tests/metrics check it).
"""

from libc.math cimport ceil
from libc.stdint cimport INT64_MAX, int64_t

import numpy as np

cimport numpy as cnp

cnp.import_array()

COMPILED = True
SUB_BITS = HIST_SUB_BITS
NBUCKETS = HIST_NBUCKETS
LIMIT = HIST_LIMIT
#: What ``percentiles()`` and ``to_dict()`` report by default.
DEFAULT_QUANTILES = (50.0, 95.0, 99.0, 99.9)


cdef inline int64_t _low(Py_ssize_t i) noexcept nogil:
    if i < HIST_SUB:
        return i
    return (<int64_t>(HIST_SUB + (i & (HIST_SUB - 1)))) << ((i >> HIST_SUB_BITS) - 1)


cdef inline int64_t _width(Py_ssize_t i) noexcept nogil:
    if i < HIST_SUB:
        return 1
    return (<int64_t>1) << ((i >> HIST_SUB_BITS) - 1)


def bucket_low(Py_ssize_t i) -> int:
    """The smallest value bucket ``i`` holds."""
    _check_index(i)
    return _low(i)


def bucket_high(Py_ssize_t i) -> int:
    """The largest value bucket ``i`` holds (the top bucket also holds every overflow)."""
    _check_index(i)
    return _low(i) + _width(i) - 1


def bucket_index(int64_t ns) -> int:
    """The bucket ``ns`` is counted in (ValueError for a negative value)."""
    if ns < 0:
        raise ValueError(f"bucket_index: {ns} is negative; negative values are not bucketed")
    if ns >= HIST_LIMIT:
        return HIST_NBUCKETS - 1
    return hist_index(ns)


cdef _check_index(Py_ssize_t i):
    if not 0 <= i < HIST_NBUCKETS:
        raise IndexError(f"bucket {i} out of range 0..{HIST_NBUCKETS - 1}")


cdef class LatencyHistogram:
    """Counts of int64 nanosecond latencies in log-linear buckets (relative error <= 1%).

    ``record`` one value, ``record_many`` an int64 array (without the GIL);
    ``percentile(q)`` reports the nearest-rank value's bucket midpoint, clamped to
    ``[min, max]`` (``max`` itself when that bucket is the top one and holds
    overflow). ``min``/``max`` are exact. An empty histogram reports 0 everywhere.
    """

    def __cinit__(self):
        self._array = np.zeros(HIST_NBUCKETS, dtype=np.int64)
        self._h.counts = <int64_t*>cnp.PyArray_DATA(self._array)
        self._reset_scalars()

    cdef void _reset_scalars(self) noexcept:
        self._h.count = 0
        self._h.negative = 0
        self._h.overflow = 0
        self._h.min = INT64_MAX
        self._h.max = 0
        self._h.total = 0.0

    def record(self, int64_t ns) -> None:
        """Count one value (negative: counted in ``negative`` only)."""
        hist_record(&self._h, ns)

    def record_many(self, values) -> None:
        """Count every value of a 1-D int64 array, in order, without the GIL."""
        cdef const int64_t[::1] v = _int64_array(values)
        cdef Py_ssize_t i, n = v.shape[0]
        # a local copy: the counts pointer cannot alias it, so the compiler keeps the
        # scalars in registers instead of reloading them after every bucket increment
        cdef hist_t h = self._h
        with nogil:
            for i in range(n):
                hist_record(&h, v[i])
        self._h = h

    @property
    def count(self) -> int:
        """Values bucketed (overflow included, negative not)."""
        return self._h.count

    @property
    def negative(self) -> int:
        """Negative values seen (not bucketed)."""
        return self._h.negative

    @property
    def overflow(self) -> int:
        """Values at or above ``LIMIT`` (in the top bucket)."""
        return self._h.overflow

    @property
    def min(self) -> int:
        """The smallest bucketed value (exact; 0 when empty)."""
        return self._h.min if self._h.count else 0

    @property
    def max(self) -> int:
        """The largest bucketed value (exact, overflow included; 0 when empty)."""
        return self._h.max

    @property
    def total(self) -> float:
        """The sum of bucketed values (float, added in recording order)."""
        return self._h.total

    @property
    def mean(self) -> float:
        """The mean of bucketed values (exact up to float rounding; 0.0 when empty)."""
        return self._h.total / self._h.count if self._h.count else 0.0

    @property
    def buckets(self):
        """The bucket counts: a read-only int64 numpy view (``NBUCKETS`` long)."""
        view = self._array.view()
        view.flags.writeable = False
        return view

    def percentile(self, double q) -> int:
        """The ``q``-th percentile (0 <= q <= 100), nearest rank, within 1%."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile: q={q} is outside 0..100")
        return self._percentile(q)

    cdef int64_t _percentile(self, double q) noexcept:
        cdef int64_t rank, seen = 0, value
        cdef Py_ssize_t i
        if self._h.count == 0:
            return 0
        rank = <int64_t>ceil(q * <double>self._h.count / 100.0)
        if rank < 1:
            rank = 1
        if rank > self._h.count:
            rank = self._h.count
        for i in range(HIST_NBUCKETS):
            seen += self._h.counts[i]
            if seen >= rank:
                break
        if i == HIST_NBUCKETS - 1 and self._h.overflow:
            return self._h.max
        value = _low(i) + (_width(i) >> 1)
        if value < self._h.min:
            return self._h.min
        if value > self._h.max:
            return self._h.max
        return value

    def percentiles(self, qs=DEFAULT_QUANTILES) -> dict:
        """``{q: percentile(q)}`` for each of ``qs``."""
        return {q: self.percentile(q) for q in qs}

    def merge(self, LatencyHistogram other not None) -> None:
        """Add ``other``'s counts to this histogram (``other`` is unchanged)."""
        cdef Py_ssize_t i
        if other is self:
            other = other.copy()
        for i in range(HIST_NBUCKETS):
            self._h.counts[i] += other._h.counts[i]
        if other._h.count:
            if other._h.min < self._h.min:
                self._h.min = other._h.min
            if other._h.max > self._h.max:
                self._h.max = other._h.max
        self._h.count += other._h.count
        self._h.negative += other._h.negative
        self._h.overflow += other._h.overflow
        self._h.total += other._h.total

    def reset(self) -> None:
        """Forget every value."""
        self._array[:] = 0
        self._reset_scalars()

    def copy(self) -> LatencyHistogram:
        """An independent histogram with the same counts."""
        cdef LatencyHistogram out = LatencyHistogram.__new__(LatencyHistogram)
        out._array[:] = self._array
        out._h.count = self._h.count
        out._h.negative = self._h.negative
        out._h.overflow = self._h.overflow
        out._h.min = self._h.min
        out._h.max = self._h.max
        out._h.total = self._h.total
        return out

    def to_dict(self, *, buckets: bool = False) -> dict:
        """Plain data: count, min, max, mean, p50, p95, p99, p999, negative, overflow, sum.

        ``buckets=True`` adds ``"buckets"``: the sparse ``{index: count}`` of
        non-empty buckets (what the Prometheus exporter turns into histogram buckets).
        """
        out = {"count": self.count, "min": self.min, "max": self.max, "mean": self.mean,
               "p50": self._percentile(50.0), "p95": self._percentile(95.0),
               "p99": self._percentile(99.0), "p999": self._percentile(99.9),
               "negative": self.negative, "overflow": self.overflow, "sum": self.total}
        if buckets:
            nz = np.flatnonzero(self._array)
            out["buckets"] = dict(zip(nz.tolist(), self._array[nz].tolist(), strict=True))
        return out

    def __getstate__(self):
        return (self._array.tobytes(), self._h.count, self._h.negative, self._h.overflow,
                self._h.min, self._h.max, self._h.total)

    def __setstate__(self, state) -> None:
        counts, count, negative, overflow, lo, hi, total = state
        arr = np.frombuffer(counts, dtype=np.int64)
        if arr.shape[0] != HIST_NBUCKETS:
            raise ValueError(f"LatencyHistogram state has {arr.shape[0]} buckets, "
                             f"expected {HIST_NBUCKETS}")
        self._array[:] = arr
        self._h.count = count
        self._h.negative = negative
        self._h.overflow = overflow
        self._h.min = lo
        self._h.max = hi
        self._h.total = total

    def __reduce__(self):
        return (LatencyHistogram, (), self.__getstate__())

    def __eq__(self, other):
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return self.__getstate__() == (<LatencyHistogram>other).__getstate__()

    __hash__ = None

    def __repr__(self) -> str:
        return (f"LatencyHistogram(count={self.count}, min={self.min}, max={self.max}, "
                f"p50={self._percentile(50.0)}, p99={self._percentile(99.0)}, "
                f"negative={self.negative}, overflow={self.overflow})")


def _int64_array(values):
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"record_many: expected a 1-D array, got {arr.ndim}-D")
    if arr.dtype != np.int64:
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"record_many: expected int64 nanoseconds, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    return np.ascontiguousarray(arr)
