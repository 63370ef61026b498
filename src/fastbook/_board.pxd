# cython: language_level=3
"""C interface of ``fastbook._board``: the top-N board (one writer, many readers).

Private to fastbook for now (not in ``fastbook/__init__.pxd``): the layout may change.
Each slot is a sequence-locked record (``docs/board.md``): ``int64`` words, word 0 the
sequence counter (odd while a write is in progress; twice the slot's version when not),
then state, ts_ns, n_bids, n_asks and the levels as in a ``read_into`` record. Slots are
``stride`` words apart, 64-byte aligned, so two slots never share a cache line.

The functions below need no GIL. ``fb_board_publish`` must not run twice at once on one
slot (it refuses a second writer with ``FB_BOARD_EBUSY`` instead of waiting);
``fb_board_read`` and ``fb_board_version`` run on any number of threads at once.
"""

from libc.stdint cimport int64_t, uint64_t

cdef enum:
    FB_BOARD_HEADER = 5         # record words before the levels
    FB_BOARD_MAX_DEPTH = 256    # publish() copies a Book's top through a stack buffer
    FB_BOARD_EBUSY = -1         # another writer is publishing into the slot


ctypedef struct fb_board:
    int64_t *mem                # slot i's record starts at mem + i * stride
    void *raw                   # what was allocated (mem is raw aligned up to 64 bytes)
    Py_ssize_t slots
    Py_ssize_t depth
    Py_ssize_t stride           # words per slot: FB_BOARD_HEADER + 4 * depth, rounded up to 8


# fb_board_publish: write ``nb`` bid and ``na`` ask levels (contiguous price and qty
#   arrays, best first; counts outside 0..depth are clamped to it), state and ts_ns
#   into ``slot`` under its sequence lock; levels past nb / na become (0, 0). On
#   success returns 0 and writes the slot's new version to ``version``;
#   FB_BOARD_EBUSY when another writer holds it.
cdef int fb_board_publish(fb_board *b, Py_ssize_t slot, const int64_t *bid_prices,
                          const int64_t *bid_qtys, Py_ssize_t nb, const int64_t *ask_prices,
                          const int64_t *ask_qtys, Py_ssize_t na, int64_t state,
                          int64_t ts_ns, uint64_t *version) noexcept nogil
# fb_board_read: copy one consistent record of ``slot`` (FB_BOARD_HEADER + 4 * depth
#   words, word 0 the version) into ``out``, retrying while a write is in progress or
#   the sequence changed during the copy; returns the version copied.
cdef uint64_t fb_board_read(const fb_board *b, Py_ssize_t slot, int64_t *out) noexcept nogil
# fb_board_version: the slot's last completed version (acquire load; no retry).
cdef uint64_t fb_board_version(const fb_board *b, Py_ssize_t slot) noexcept nogil


cdef class Board:
    cdef fb_board _b
    cdef Py_ssize_t _slot(self, object slot) except -1
    cdef object _publish(self, Py_ssize_t s, const int64_t *bp, const int64_t *bq,
                         Py_ssize_t nb, const int64_t *ap, const int64_t *aq, Py_ssize_t na,
                         int64_t state, int64_t ts_ns)
