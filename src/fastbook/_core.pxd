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
* Functions that can fail return a negative ``FB_E*`` status; they never
  need the GIL to report it, so Cython code running without the GIL calls
  them directly. ``fastbook`` turns the codes into exceptions at the Python
  edge. Single updates leave the book unchanged on failure; a batch stops at
  the first failure (see ``fb_book_apply``).
* One writer per book. Nothing here locks: code that holds ``&book._book``
  without the GIL must be the only code touching that book until it is done.
  ``Book`` itself refuses Python calls while its own ``apply`` runs without
  the GIL (``_busy``), but it cannot see what other modules do.
* ``fastbook.Book`` is the pure-Python twin when ``FASTBOOK_NO_EXTENSIONS=1``
  is set: check ``isinstance(obj, Book)`` (the cimported class) before taking
  ``&(<Book>obj)._book``.
* ``FB_ABI_VERSION`` changes whenever a struct layout or an inline function
  here changes; compare it with ``fastbook._core.ABI_VERSION`` at import time
  if you ship binaries built against one version.
"""

from libc.stdint cimport int8_t, int64_t, uint64_t


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

cdef enum:
    # Bumped whenever a struct layout or an inline function below changes.
    FB_ABI_VERSION = 1
    # Buffer size fb_format_decimal needs: its longest output is 21 characters
    # ("-9.223372036854775808") plus NUL; 48 leaves room for future formats.
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
# fb_book_init: set up ``book`` (its old contents are ignored, nothing is freed)
#   with ``capacity`` level slots per side. FB_OK, FB_EDECIMALS (a scale outside
#   0..18) or FB_ENOMEM (then nothing stays allocated). Pair with fb_book_free.
cdef int fb_book_init(fb_book *book, int price_decimals, int qty_decimals,
                      Py_ssize_t capacity) noexcept nogil
# fb_book_free: release the level arrays; the book is then empty with capacity 0.
cdef void fb_book_free(fb_book *book) noexcept nogil
# fb_book_reserve: make ``side`` hold ``capacity`` levels without reallocating.
#   FB_OK, FB_ESIDE or FB_ENOMEM (the book is unchanged).
cdef int fb_book_reserve(fb_book *book, int side, Py_ssize_t capacity) noexcept nogil
# fb_book_clear: remove every level, keeping capacity.
cdef void fb_book_clear(fb_book *book) noexcept nogil

# --- updates ---------------------------------------------------------------
# fb_book_set: absolute quantity at ``price``; qty 0 deletes the level (deleting
#   an absent level is a no-op counted in ``missing_deletes``). Returns
#   FB_TOP_CHANGED when the best level of ``side`` changed (price or quantity),
#   FB_OK when not, or FB_ESIDE / FB_EQTY / FB_EPRICE / FB_ENOMEM with the book
#   unchanged. Grows the ladder geometrically when it is full.
cdef int fb_book_set(fb_book *book, int side, int64_t price, int64_t qty) noexcept nogil
# fb_book_apply: fb_book_set for each of ``n`` updates, in order. On the first
#   failure it stops and returns that status: the updates before it stay
#   applied, and ``applied`` receives their count (``n`` on success). Validate
#   the batch first (as Book.apply does) when it must be all-or-nothing.
cdef int fb_book_apply(fb_book *book, const int8_t *sides, const int64_t *prices,
                       const int64_t *qtys, Py_ssize_t n,
                       Py_ssize_t *applied) noexcept nogil

# --- reads -----------------------------------------------------------------
# fb_book_qty_at: quantity at ``price`` on ``side``; 0 when there is no such
#   level, and 0 for an invalid side or INT64_MIN.
cdef int64_t fb_book_qty_at(const fb_book *book, int side, int64_t price) noexcept nogil
# fb_book_top: write the best ``n`` levels of each side into four arrays of at
#   least ``n`` elements, best first; levels a side does not have are written as
#   price 0, qty 0. Returns the larger of the two sides' filled counts.
cdef Py_ssize_t fb_book_top(const fb_book *book, Py_ssize_t n,
                            int64_t *bid_prices, int64_t *bid_qtys,
                            int64_t *ask_prices, int64_t *ask_qtys) noexcept nogil

# --- fixed-point text ------------------------------------------------------
# fb_parse_decimal: ``[+-]digits[.digits][(e|E)[+-]digits]`` (ASCII, no spaces)
#   to the exact integer ``value * 10**decimals``, never through float. FB_OK, or
#   FB_EPARSE_EMPTY / _SYNTAX / _PRECISION (a nonzero digit past the scale;
#   checked before range) / _OVERFLOW, or FB_EDECIMALS; ``out`` is written only
#   on success.
cdef int fb_parse_decimal(const char *text, Py_ssize_t length, int decimals,
                          int64_t *out) noexcept nogil
# fb_format_decimal: write ``value / 10**decimals`` as plain text into ``buf``
#   (FB_FORMAT_BUFSIZE bytes), NUL-terminated; ``strip`` drops trailing
#   fractional zeros and a bare point. Returns the length, or FB_EDECIMALS.
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
    cdef bint _busy             # True while Book.apply runs without the GIL
    cdef object __weakref__
