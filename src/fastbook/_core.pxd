# cython: language_level=3
"""Public C API of the fastbook core.

Other Cython projects use it with ``cimport fastbook`` (or ``from fastbook._core
cimport ...``) and call these functions without the GIL. This file is an ABI:
add to it, but do not reorder or reshape the structs.

Conventions
-----------
* Sides are ``FB_BID`` (1) and ``FB_ASK`` (2); 0 is never a valid side, so a
  zero-filled array is caught instead of silently meaning "bid".
* Prices and quantities are ``int64_t`` fixed-point integers; the book stores
  ``price_decimals`` / ``qty_decimals`` only to format them.
* ``INT64_MIN`` is reserved as "no price" and is refused as a level price.
* Functions that can fail return a negative ``FB_E*`` status and leave the
  book unchanged; they never need the GIL to report it, so a C engine thread
  can call them directly. ``fastbook`` turns the codes into exceptions at the
  Python edge.
"""

from libc.stdint cimport int8_t, int64_t, uint64_t, INT64_MIN


cdef enum:
    FB_BID = 1
    FB_ASK = 2

# Status codes (0 and 1 mean success).
cdef enum:
    FB_OK = 0
    FB_TOP_CHANGED = 1          # fb_book_set: the best level of that side changed
    FB_ENOMEM = -1
    FB_ESIDE = -2               # side is not FB_BID or FB_ASK
    FB_EQTY = -3                # negative quantity
    FB_EPRICE = -4              # price is INT64_MIN (reserved)
    FB_EPARSE_EMPTY = -10
    FB_EPARSE_SYNTAX = -11
    FB_EPARSE_PRECISION = -12   # more decimals than the scale allows
    FB_EPARSE_OVERFLOW = -13
    FB_EDECIMALS = -14          # decimals outside 0..18

# Longest text fb_format_decimal can write (sign, 19 digits, point, 18 zeros), plus NUL.
cdef enum:
    FB_FORMAT_BUFSIZE = 48


ctypedef struct fb_ladder:
    # One side of an L2 book: parallel arrays sorted ascending by key, best at [count - 1].
    # key = price for bids and -price for asks, so one code path serves both sides.
    int64_t *keys
    int64_t *qtys
    Py_ssize_t count            # live levels
    Py_ssize_t capacity         # allocated slots in keys and qtys


ctypedef struct fb_book:
    fb_ladder ladders[2]        # [0] bids, [1] asks
    int price_decimals
    int qty_decimals
    uint64_t version            # bumped by every mutation (iterators check it)
    uint64_t missing_deletes    # qty-0 updates for levels that did not exist


# --- lifecycle -------------------------------------------------------------
cdef int fb_book_init(fb_book *book, int price_decimals, int qty_decimals,
                      Py_ssize_t capacity) noexcept nogil
cdef void fb_book_free(fb_book *book) noexcept nogil
cdef int fb_book_reserve(fb_book *book, int side, Py_ssize_t capacity) noexcept nogil
cdef void fb_book_clear(fb_book *book) noexcept nogil

# --- updates ---------------------------------------------------------------
cdef int fb_book_set(fb_book *book, int side, int64_t price, int64_t qty) noexcept nogil
cdef int fb_book_apply(fb_book *book, const int8_t *sides, const int64_t *prices,
                       const int64_t *qtys, Py_ssize_t n,
                       Py_ssize_t *applied) noexcept nogil

# --- reads -----------------------------------------------------------------
cdef int64_t fb_book_qty_at(const fb_book *book, int side, int64_t price) noexcept nogil
cdef Py_ssize_t fb_book_top(const fb_book *book, Py_ssize_t n,
                            int64_t *bid_prices, int64_t *bid_qtys,
                            int64_t *ask_prices, int64_t *ask_qtys) noexcept nogil

# --- fixed-point text ------------------------------------------------------
cdef int fb_parse_decimal(const char *text, Py_ssize_t length, int decimals,
                          int64_t *out) noexcept nogil
cdef Py_ssize_t fb_format_decimal(int64_t value, int decimals, bint strip,
                                  char *buf) noexcept nogil


# --- O(1) inline reads, compiled into the caller ---------------------------
cdef inline Py_ssize_t fb_book_depth(const fb_book *book, int side) noexcept nogil:
    """Number of levels on ``side`` (0 for an invalid side)."""
    if side != FB_BID and side != FB_ASK:
        return 0
    return book.ladders[side - 1].count


cdef inline bint fb_book_best(const fb_book *book, int side,
                              int64_t *price, int64_t *qty) noexcept nogil:
    """Write the best level of ``side``; return False when that side is empty."""
    cdef const fb_ladder *lad
    if side != FB_BID and side != FB_ASK:
        return False
    lad = &book.ladders[side - 1]
    if lad.count == 0:
        return False
    price[0] = lad.keys[lad.count - 1] if side == FB_BID else -lad.keys[lad.count - 1]
    qty[0] = lad.qtys[lad.count - 1]
    return True


cdef class Book:
    # The L2 book's Python face. Cython callers may use ``&book._book`` with the
    # functions above; the Book owns and frees it.
    cdef fb_book _book
    cdef object __weakref__
