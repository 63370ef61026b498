# cython: language_level=3
"""The search over a sorted key array that the L2 and L3 books share (private).

Both books keep a side's levels as ``int64`` keys sorted ascending, best (largest)
at the end: the L2 ladder's sorted store (``_core``) and the L3 price index
(``_l3``). Inline, so each module compiles its own copy into its update loop.
"""

cimport cython
from libc.stdint cimport int64_t


cdef enum:
    # Keys nearest the top that lower_bound counts without branches before bisecting.
    TOP_WINDOW = 8


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline Py_ssize_t lower_bound(const int64_t *keys, Py_ssize_t n, int64_t key) noexcept nogil:
    """First index whose key is >= ``key`` (the number of keys below it).

    Most updates land within a few levels of the top (on a synthetic ITCH day about
    70% of adds land in the top 8), so the top ``TOP_WINDOW`` keys (one or two cache
    lines) are counted first without branches, as independent loads; only keys below
    that window pay for a (branch-free, cmov) binary search. Mispredicted branches,
    not memory, dominate a search over a few thousand levels.
    """
    cdef Py_ssize_t i, above = 0, base = 0, size, half
    if n <= TOP_WINDOW:
        for i in range(n):
            above += keys[i] >= key
        return n - above
    for i in range(n - TOP_WINDOW, n):
        above += keys[i] >= key
    if above < TOP_WINDOW:
        return n - above
    # every key in the window is >= key: the answer is in [0, n - TOP_WINDOW]
    size = n - TOP_WINDOW
    while size > 1:
        half = size >> 1
        base = base + half if keys[base + half] < key else base
        size -= half
    return base + (keys[base] < key)
