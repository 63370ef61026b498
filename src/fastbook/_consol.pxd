# cython: language_level=3
"""C interface of ``fastbook._consol``: the consolidated cross-venue view.

Private to fastbook for now (not in ``fastbook/__init__.pxd``): the layout may change.
Each venue's best levels are kept at the common scale in a ``cv_venue``; a change of
the consolidated BBO is a ``cv_event``, whose layout is ``CBBO_DTYPE`` (twelve 8-byte
fields, no padding) so the event buffer is handed to numpy with one copy.
"""

from libc.stdint cimport int64_t, uint64_t

from fastbook._core cimport fb_book

cdef extern from *:
    """
    /* a * x as hi * 2^32 + lo (0 <= lo < 2^32), exactly, for any int64 a and
       0 <= x < 2^31: ah * x and al * x both fit in 64 bits. No __int128 (MSVC). */
    static inline void fb_cv_mul(int64_t a, int64_t x, int64_t *hi, uint64_t *lo) {
        int64_t ah = a >> 32;
        uint64_t l = ((uint64_t)a & 0xffffffffu) * (uint64_t)x;
        *hi = ah * x + (int64_t)(l >> 32);
        *lo = l & 0xffffffffu;
    }
    /* sign of a * x - b * y, exactly (0 <= x, y < 2^31) */
    static inline int fb_cv_mulcmp(int64_t a, int64_t x, int64_t b, int64_t y) {
        int64_t h1, h2; uint64_t l1, l2;
        fb_cv_mul(a, x, &h1, &l1);
        fb_cv_mul(b, y, &h2, &l2);
        if (h1 != h2) return h1 < h2 ? -1 : 1;
        if (l1 != l2) return l1 < l2 ? -1 : 1;
        return 0;
    }
    """
    int fb_cv_mulcmp(int64_t a, int64_t x, int64_t b, int64_t y) noexcept nogil


ctypedef struct cv_venue:
    const fb_book *book         # the compiled Book's C book, or NULL: read through bbo()/top()
    int64_t pmult               # common price = venue price * pmult
    int64_t qmult               # common qty = venue qty * qmult
    int64_t plim                # |venue price| above this does not fit
    int64_t qlim                # venue qty above this exceeds QTY_LIMIT at the common scale
    int64_t fee                 # taker fee rate, units of 10**-8
    int64_t stale_ns
    int64_t last_ns             # clock at its last update (valid once updated)
    int64_t bid, bq, ask, aq    # best levels at the common scale (valid per ``has``)
    int has                     # HAS_BID | HAS_ASK
    int base                    # reason found at its last update
    int reason                  # reason at the last recompute (staleness included)
    int64_t updates, crossed, overflow


ctypedef struct cv_event:
    int64_t ts
    int64_t venue               # the venue whose update caused it; -1 for refresh()
    int64_t flags               # HAS_BID | HAS_ASK
    int64_t bid
    int64_t bid_qty
    uint64_t bid_mask
    int64_t ask
    int64_t ask_qty
    uint64_t ask_mask
    int64_t bid_age             # age of the oldest quote at the best bid; -1 when none
    int64_t ask_age
    uint64_t in_mask            # venues in the view


cdef class Consolidated:
    cdef cv_venue *_v
    cdef Py_ssize_t _n
    cdef object _plan
    cdef list _books
    cdef cv_event _cur          # the consolidated state (the last event's fields)
    cdef uint64_t _in_mask      # venues in the view now (_cur.in_mask: at the last change)
    cdef bint _changed_once
    cdef int64_t _now
    cdef int64_t _backwards
    cdef int64_t _changes
    cdef bint _record
    cdef cv_event *_ev
    cdef Py_ssize_t _nev
    cdef Py_ssize_t _cap
    cdef int64_t *_wbuf         # walk buffers: 8 * _wk int64 (two books' top rows)
    cdef Py_ssize_t _wk
    cdef int64_t *_chunks       # walk chunks: 3 * 2 * _wk int64
    cdef int64_t _max_age
    cdef object __weakref__

    cdef int64_t _clock(self, object now_ns) except? -1
    cdef int _grow(self, Py_ssize_t k) except -1
    cdef object _walk(self, Py_ssize_t a, Py_ssize_t b, int64_t sa, int64_t ba)
    cdef int _read(self, Py_ssize_t i, bint live) except -1
    cdef bint _recompute(self, int64_t now, int64_t venue) noexcept
    cdef int _push(self) except -1
    cdef Py_ssize_t _fetch(self, Py_ssize_t i, Py_ssize_t k, int64_t *out) except -1
