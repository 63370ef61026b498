# cython: language_level=3
"""C interface of ``fastbook._hist``: a log-linear latency histogram over int64 ns.

Other Cython code (the live driver's hot path) records into a histogram without
the GIL and without a Python call: ``hist_record(&(<LatencyHistogram>h)._h, ns)``.

Layout (HDR-style): values ``0 .. HIST_SUB - 1`` have one bucket each; above that,
every power of two ``[2^e, 2^(e+1))`` is split into ``HIST_SUB`` (128) equal
sub-buckets, so a bucket's width is at most 1/128 of its lower edge. A value is
reported as its bucket's midpoint, at most 1/256 (0.4%) from the recorded value;
the contract is 1%. Values at or above ``HIST_LIMIT`` (2^44 ns, about 4.9 h) go
to the top bucket and count in ``overflow``; negative values (a clock step) count
in ``negative`` and nowhere else. One writer per histogram: nothing here locks.

Cost: ``record_many``'s loop is ``hist_record`` on a local copy of the struct
(``cdef hist_t h = hist._h``, loop, ``hist._h = h``): 1.4 ns per value here
(bench/bench_hist.py). Through ``&hist._h`` directly the compiler must assume a
bucket increment may alias the scalars and reloads them: about 5 ns per value in
a tight loop, which only matters for loops; a single call per message is fine.
"""

from libc.stdint cimport int64_t

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #include <intrin.h>
    static inline int fb_hist_log2(unsigned long long v) {
        unsigned long i; _BitScanReverse64(&i, v); return (int)i;
    }
    #else
    static inline int fb_hist_log2(unsigned long long v) { return 63 - __builtin_clzll(v); }
    #endif
    """
    int fb_hist_log2(unsigned long long v) noexcept nogil

cdef enum:
    HIST_SUB_BITS = 7
    HIST_SUB = 128
    HIST_TOP_EXP = 44
    # HIST_SUB exact buckets, then HIST_SUB per power of two from 2^7 to 2^43
    HIST_NBUCKETS = 4864

cdef extern from *:
    """
    #define FB_HIST_LIMIT (((long long)1) << 44)
    """
    int64_t HIST_LIMIT "FB_HIST_LIMIT"

ctypedef struct hist_t:
    int64_t* counts      # HIST_NBUCKETS counters (owned by the LatencyHistogram)
    int64_t count        # bucketed values (overflow included, negative not)
    int64_t negative     # values < 0, not bucketed
    int64_t overflow     # values >= HIST_LIMIT, in the top bucket
    int64_t min          # INT64_MAX while count == 0
    int64_t max          # 0 while count == 0
    double total         # sum of bucketed values, added in recording order


cdef inline Py_ssize_t hist_index(int64_t v) noexcept nogil:
    """The bucket of ``0 <= v < HIST_LIMIT``."""
    cdef int e
    if v < HIST_SUB:
        return <Py_ssize_t>v
    e = fb_hist_log2(<unsigned long long>v)
    return (<Py_ssize_t>(e - HIST_SUB_BITS + 1) << HIST_SUB_BITS) + \
        <Py_ssize_t>((v >> (e - HIST_SUB_BITS)) - HIST_SUB)


cdef inline void hist_record(hist_t* h, int64_t v) noexcept nogil:
    """Count ``v`` nanoseconds in ``h``: no GIL, no allocation, never fails."""
    cdef Py_ssize_t i
    if v < 0:
        h.negative += 1
        return
    if v >= HIST_LIMIT:
        i = HIST_NBUCKETS - 1
        h.overflow += 1
    else:
        i = hist_index(v)
    h.counts[i] += 1
    h.count += 1
    h.total += <double>v
    if v < h.min:
        h.min = v
    if v > h.max:
        h.max = v


cdef class LatencyHistogram:
    cdef hist_t _h
    cdef object _array   # the numpy array that owns _h.counts
    cdef void _reset_scalars(self) noexcept
    cdef int64_t _percentile(self, double q) noexcept
