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
  the GIL (``_busy``), or a ``BookSet.apply`` of a set holding it does
  (``_guard``), but it cannot see what other modules do.
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
    FB_ABI_VERSION = 4
    # Buffer size fb_format_decimal needs: its longest output is 21 characters
    # ("-9.223372036854775808") plus NUL; 48 leaves room for future formats.
    FB_FORMAT_BUFSIZE = 48


cdef enum:
    # fb_ladder.wmode
    FB_LADDER_SORTED = 0        # every level is in the sorted store
    FB_LADDER_WINDOW = 1        # the top levels are in the window (then wcount >= 1)


ctypedef struct fb_ladder:
    # One side of an L2 book. Levels are stored by key (the price for bids, minus the
    # price for asks, so the best level has the largest key and one code path serves
    # both sides) in two parts:
    #
    # * the window: ``wsize`` dense slots, slot ``i`` holding the level whose key is
    #   ``wlo + i * quantum`` (quantity 0 and bit clear where there is none). It covers
    #   the top of the side, so a set near the top is an index computation: no search,
    #   no shifting.
    # * the sorted store: the levels below the window (key < wlo), ascending, best last.
    #
    # In window mode no level lies above the window and every key is congruent to ``wlo``
    # modulo ``quantum``, the price grid the book learns from its own prices. The side
    # falls back to sorted mode (everything in the sorted store: a plain sorted ladder)
    # when its prices are too sparse or too extreme for a window, and rebuilds the window
    # when the top moves out of it. ``capacity`` is kept >= the levels of the whole side,
    # so moving levels between the two parts never allocates.
    int64_t *keys               # sorted store: ascending keys, best at [count - 1]
    int64_t *qtys
    Py_ssize_t count            # levels in the sorted store
    Py_ssize_t capacity         # slots allocated in keys and qtys (>= levels of the side)
    int64_t *wqtys              # window slots: wcap allocated, 0 where there is no level
    uint64_t *wbits             # one bit per window slot, set where there is a level
    Py_ssize_t wsize            # window slots in use (a power of two >= 64; 0 when sorted)
    Py_ssize_t wcap             # window slots allocated
    Py_ssize_t wcount           # levels in the window
    Py_ssize_t wbest            # slot of the best level (when wcount >= 1)
    int64_t wlo                 # key of slot 0
    int64_t quantum             # key step between slots (the learned grid); 0 while unknown
    uint64_t qinv               # exact division by quantum = odd << qshift: odd's inverse
    uint64_t qmask              # (1 << qshift) - 1
    uint64_t qlim               # (2**64 - 1) // odd: a larger product means "not a multiple"
    int qshift
    int wmode                   # FB_LADDER_SORTED or FB_LADDER_WINDOW
    Py_ssize_t retry            # sorted-store inserts left before the window is (re)built


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
# fb_book_copy: deep copy of ``src`` into ``dst`` (whose old contents are ignored, not
#   freed). FB_OK, or FB_ENOMEM with ``dst`` empty and valid (free it as usual).
cdef int fb_book_copy(fb_book *dst, const fb_book *src) noexcept nogil

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
#   the batch first (as Book.apply does) when it must be all-or-nothing. A valid
#   batch that gives each side strictly worse prices (a snapshot, best first)
#   into an empty book is applied last first: the same book in linear time;
#   should that fail (FB_ENOMEM), the book is empty again and ``applied`` is 0.
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

# fb_book_worst: the worst (deepest) level of ``side``; False when the side is empty.
cdef bint fb_book_worst(const fb_book *book, int side, int64_t *price,
                        int64_t *qty) noexcept nogil

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
    return book.ladders[side - 1].count + book.ladders[side - 1].wcount


cdef inline bint fb_book_best(const fb_book *book, int side,
                              int64_t *price, int64_t *qty) noexcept nogil:
    """Write the best level of ``side``; return False when that side is empty."""
    cdef const fb_ladder *lad
    cdef int64_t key
    if side != FB_BID and side != FB_ASK:
        return False
    lad = &book.ladders[side - 1]
    if lad.wcount:
        key = lad.wlo + lad.wbest * lad.quantum
        qty[0] = lad.wqtys[lad.wbest]
    elif lad.count:
        key = lad.keys[lad.count - 1]
        qty[0] = lad.qtys[lad.count - 1]
    else:
        return False
    price[0] = key if side == FB_BID else -key
    return True


cdef class _Guard:
    # What the books of a group of BookSets may be asked now. A BookSet and its
    # books share one guard, and so do sets that share a book (their groups merge
    # when the book joins the second set), so starting or ending an apply flips
    # one flag, whatever the number of books. Books in no set share solo_guard().
    cdef int sets_busy          # BookSet.apply calls running without the GIL
    cdef int books_busy         # Book.apply calls running without the GIL on its books
    cdef int read_only          # BookSet.apply callbacks running: updates are refused
    cdef list sets              # weak references to the group's sets (to merge groups)


cdef _Guard solo_guard()


cdef class Book:
    # The L2 book's Python face. Cython callers may use ``&book._book`` with the
    # functions above; the Book owns and frees it.
    cdef fb_book _book
    cdef bint _busy             # True while Book.apply runs without the GIL
    cdef _Guard _guard          # its BookSets' (busy, read-only), or solo_guard()
    cdef object __weakref__


# What every Book method checks first, and so must other compiled code that takes
# ``&book._book`` from Python: reading is refused while an apply writes the book
# without the GIL (its own, or a BookSet's), updating also while a BookSet.apply
# callback runs.
cdef int book_readable(Book book) except -1
cdef int book_writable(Book book) except -1
