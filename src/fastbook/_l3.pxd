# cython: language_level=3
"""Public C API of the fastbook L3 (order-by-order) book.

Other Cython projects use it with ``from fastbook._l3 cimport ...`` and call
these functions without the GIL. Conventions follow ``_core.pxd``: sides are
``FB_BID`` (1) / ``FB_ASK`` (2), prices and quantities are ``int64_t``
fixed-point, ``INT64_MIN`` is never a price, and functions that can fail
return a negative ``FB_E*`` status with the book unchanged.

Memory layout
-------------
* Orders live in a pool of 32-byte ``fb_order`` records (id, remaining
  quantity, FIFO links, level record, side), recycled through a free list and
  linked FIFO per level by ``int32_t`` pool indices (``FB_NIL`` = none).
  An order's price is its level's: the record names the level, so deleting,
  executing or reducing an order never searches for its price.
* ``order_id -> pool index`` is an open-addressing hash table (linear probing,
  Fibonacci hashing, backward-shift deletion) of ``int32_t`` slots. A book
  with ``side_keys`` set (right after ``fb_l3_init``, while empty) keys its
  orders by ``(side, order_id)`` instead, for venues whose ids are unique only
  per side (J-GATE ITCH: per order book and side). The table is a power of
  two with at least twice as many slots as the pool has records, so its load
  factor never exceeds 1/2.
* That makes ``FB_L3_BYTES_PER_ORDER`` = 32 bytes per pool record plus 8 to
  16 bytes of hash slots. The pool is exactly ``order_capacity`` records when
  that is given up front, and grows by half when full; records are handed out
  in pool order, so an unused tail is never touched and costs no resident
  memory.
* Each side has ``capacity`` level records (``fb_l3level``, 32 bytes: key,
  aggregate quantity, order count, head and tail of the FIFO queue) that stay
  where they are while their level lives, and a price index over them: the
  keys (price for bids, -price for asks) sorted ascending in a compact
  ``int64_t`` array, best at ``[count - 1]``, with the record of each key in
  ``ids``. ``ids`` is a permutation of ``0 .. capacity - 1``: its entries from
  ``count`` on are the free records. Adding a level takes ``ids[count]``;
  only the index shifts, never a record. ``best`` caches ``ids[count - 1]``
  (``FB_NIL`` when the side is empty). ``FB_L3_BYTES_PER_LEVEL`` = 32 + 8 + 4.
"""

from libc.stdint cimport (
    int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)

from fastbook._core cimport (
    FB_ASK, FB_BID, FB_EDECIMALS, FB_ENOMEM, FB_EPRICE, FB_EQTY, FB_ESIDE, FB_OK, FB_TOP_CHANGED,
    _Guard,
)
# The event record and its action and flag codes (fastbook.events), defined in
# _events.pxd and part of this API: ``from fastbook._l3 cimport fb_event, FB_ADD`` works.
from fastbook._events cimport (
    FB_ADD, FB_CLEAR, FB_DELETE, FB_EXECUTE, FB_FLAG_AGGRESSOR_BUY, FB_FLAG_AGGRESSOR_SELL,
    FB_FLAG_CROSS, FB_FLAG_HALTED, FB_FLAG_HIDDEN, FB_FLAG_KEEP_PRIORITY,
    FB_FLAG_LAST_IN_PACKET, FB_FLAG_NON_PRINTABLE, FB_FLAG_QUOTING, FB_FLAG_SNAPSHOT,
    FB_REDUCE, FB_REPLACE, FB_SET_LEVEL, FB_SNAPSHOT_BEGIN, FB_SNAPSHOT_END, FB_STATUS,
    FB_TRADE, fb_event,
)


# Status codes added by the L3 book (the FB_E* codes of _core keep their meaning;
# FB_EQTY also covers a quantity that must be >= 1 and is not).
cdef enum:
    FB_EUNKNOWN_ORDER = -20     # the order id is not live
    FB_EDUPLICATE_ORDER = -21   # add (or replace's new id) names an order that is live
    FB_EOVER_EXECUTE = -22      # execute/reduce more than the order's remaining quantity
    FB_EOVERFLOW = -23          # a level's aggregate quantity would overflow int64
    FB_EACTION = -24            # event action is 0, unknown, or not supported by the book
    FB_EINSTRUMENT = -25        # event instrument is not in the BookSet

# Error kinds, the indices of fb_l3book.errors (counted in skip mode).
cdef enum:
    FB_ERR_BAD_SIDE = 0
    FB_ERR_BAD_QUANTITY = 1
    FB_ERR_BAD_PRICE = 2
    FB_ERR_UNKNOWN_ORDER = 3
    FB_ERR_DUPLICATE_ORDER = 4
    FB_ERR_OVER_EXECUTE = 5
    FB_ERR_OVERFLOW = 6
    FB_ERR_BAD_ACTION = 7
    FB_ERR_KINDS = 8

cdef enum:
    FB_NIL = -1                         # "no order" link / empty hash slot / no level
    FB_L3_BYTES_PER_ORDER = 32          # sizeof(fb_order) (hash slots: 4 << slot_bits)
    FB_L3_BYTES_PER_LEVEL = 44          # sizeof(fb_l3level) + a key and an id in the index
    # Bumped whenever a struct layout or an inline function in this file changes.
    FB_L3_ABI_VERSION = 3


ctypedef struct fb_order:
    uint64_t order_id
    int64_t qty                 # remaining quantity, always >= 1 while live
    int32_t prev                # older order at the same level, or FB_NIL
    int32_t next                # newer order at the same level (free list link when free)
    int32_t level               # its level record on its side (while live)
    int8_t side                 # FB_BID / FB_ASK
    int8_t reserved0
    int16_t reserved1


ctypedef struct fb_l3level:
    int64_t key                 # price for bids, -price for asks
    int64_t qty                 # sum of the remaining quantities of its orders
    int32_t count               # live orders at this level (>= 1)
    int32_t head                # oldest order (front of the queue)
    int32_t tail                # newest order (back of the queue)
    int32_t reserved


ctypedef struct fb_l3side:
    int64_t *keys               # keys of the live levels, ascending: best at [count - 1]
    int32_t *ids                # level record of each key; [count, capacity): free records
    fb_l3level *levels          # level records, each where it is while its level lives
    Py_ssize_t count            # live levels
    Py_ssize_t capacity         # entries allocated in keys, ids and levels
    int32_t best                # ids[count - 1], or FB_NIL when the side is empty


ctypedef struct fb_l3book:
    fb_l3side sides[2]          # [0] bids, [1] asks
    fb_order *orders            # the pool: order_capacity records
    int32_t *slots              # hash table: pool index or FB_NIL; 2 * order_capacity slots
    Py_ssize_t order_capacity   # records in the pool
    Py_ssize_t order_count      # live orders
    Py_ssize_t pool_top         # records [0, pool_top) have been handed out at least once
    int32_t free_head           # first recycled record, or FB_NIL
    int slot_bits               # log2 of the number of hash slots
    int price_decimals
    int qty_decimals
    int side_keys               # 0: orders keyed by id; 1: by (side, id) (set while empty)
    uint64_t version            # bumped by every mutation (iterators check it)
    uint64_t errors[FB_ERR_KINDS]   # failures counted by fb_l3_count_error (skip mode)


# --- lifecycle -------------------------------------------------------------
cdef int fb_l3_init(fb_l3book *book, int price_decimals, int qty_decimals,
                    Py_ssize_t level_capacity, Py_ssize_t order_capacity) noexcept nogil
cdef void fb_l3_free(fb_l3book *book) noexcept nogil
cdef void fb_l3_clear(fb_l3book *book) noexcept nogil
cdef int fb_l3_reserve_orders(fb_l3book *book, Py_ssize_t capacity) noexcept nogil
cdef int fb_l3_reserve_levels(fb_l3book *book, int side, Py_ssize_t capacity) noexcept nogil
cdef Py_ssize_t fb_l3_nbytes(const fb_l3book *book) noexcept nogil

# --- updates: FB_TOP_CHANGED when the best level of the order's side changed,
# FB_OK when it did not, or a negative status with the book unchanged ------
# An existing order is named by (order_id, side). ``side`` is ignored unless the
# book is side-keyed (``side_keys``), where it must be FB_BID or FB_ASK (else FB_ESIDE).
cdef int fb_l3_add(fb_l3book *book, uint64_t order_id, int side, int64_t price,
                   int64_t qty) noexcept nogil
cdef int fb_l3_execute(fb_l3book *book, uint64_t order_id, int side, int64_t qty) noexcept nogil
cdef int fb_l3_reduce(fb_l3book *book, uint64_t order_id, int side, int64_t qty) noexcept nogil
cdef int fb_l3_delete(fb_l3book *book, uint64_t order_id, int side) noexcept nogil
cdef int fb_l3_replace(fb_l3book *book, uint64_t order_id, int side, uint64_t new_order_id,
                       int64_t qty, int64_t price) noexcept nogil
# In-place modify (same id): keeps the queue place when the price is unchanged and
# qty <= remaining, else goes to the back of its new level (as fb_l3_replace).
cdef int fb_l3_modify(fb_l3book *book, uint64_t order_id, int side, int64_t qty,
                      int64_t price) noexcept nogil
cdef void fb_l3_count_error(fb_l3book *book, int status) noexcept nogil

# --- reads -----------------------------------------------------------------
cdef int32_t fb_l3_find(const fb_l3book *book, uint64_t order_id, int side) noexcept nogil
cdef int fb_l3_queue_position(const fb_l3book *book, uint64_t order_id, int side,
                              int64_t *orders_ahead, int64_t *qty_ahead) noexcept nogil
# 1-based rank of the order among all orders of its side in price-time priority.
cdef int fb_l3_rank(const fb_l3book *book, uint64_t order_id, int side,
                    int64_t *rank) noexcept nogil
cdef int64_t fb_l3_qty_at(const fb_l3book *book, int side, int64_t price) noexcept nogil
cdef Py_ssize_t fb_l3_top(const fb_l3book *book, Py_ssize_t n,
                          int64_t *bid_prices, int64_t *bid_qtys,
                          int64_t *ask_prices, int64_t *ask_qtys) noexcept nogil


cdef inline Py_ssize_t fb_l3_depth(const fb_l3book *book, int side) noexcept nogil:
    """Number of levels on ``side`` (0 for an invalid side)."""
    if side != FB_BID and side != FB_ASK:
        return 0
    return book.sides[side - 1].count


cdef inline bint fb_l3_best(const fb_l3book *book, int side,
                            int64_t *price, int64_t *qty) noexcept nogil:
    """Write the best level of ``side``; return False when that side is empty."""
    cdef const fb_l3side *s
    if side != FB_BID and side != FB_ASK:
        return False
    s = &book.sides[side - 1]
    if s.best == FB_NIL:
        return False
    price[0] = s.levels[s.best].key if side == FB_BID else -s.levels[s.best].key
    qty[0] = s.levels[s.best].qty
    return True


# --- events and books sets ---------------------------------------------------

cdef enum:
    # kinds of book in a BookSet
    FB_KIND_L3 = 1              # books[i] is an fb_l3book *
    FB_KIND_L2 = 2              # books[i] is an fastbook._core fb_book *


ctypedef struct fb_bookset:
    # Books indexed by dense instrument id; the BookSet object owns the books.
    Py_ssize_t count
    uint8_t *kinds              # FB_KIND_L3 / FB_KIND_L2 per instrument
    void **books                # fb_l3book * or fb_book * per instrument
    uint64_t *errors            # skip mode: count * FB_ERR_KINDS failures, by instrument
    uint64_t bad_instrument     # skip mode: events naming no instrument of the set
    void *undo                  # raise mode's undo journal, kept between batches
    Py_ssize_t undo_capacity    # 8-byte words allocated in undo


# Apply events[0:n] in order, routing each by instrument. skip: failed events are
# counted (bs.errors) and skipped. Otherwise all-or-nothing: on the first failure
# everything is rolled back and its status returned, with done = its index.
# FB_ENOMEM stops either way (rolled back unless skip). done = n on success;
# skipped receives the number of events skipped; on failure detail receives
# what an error message needs (over-execution: the quantity that was there).
cdef int fb_bookset_apply(fb_bookset *bs, const fb_event *events, Py_ssize_t n, bint skip,
                          Py_ssize_t *done, Py_ssize_t *skipped,
                          int64_t *detail) noexcept nogil
cdef void fb_bookset_free(fb_bookset *bs) noexcept nogil


cdef class OrderBook:
    # The L3 book's Python face; owns and frees ``_book``.
    cdef fb_l3book _book
    cdef bint _skip
    cdef _Guard _guard          # its BookSets' (busy, read-only), or solo_guard()
    cdef object __weakref__
    cdef int _key_side(self, object side) except? -1


# What every OrderBook method checks first, and so must other compiled code that
# takes ``&book._book`` from Python (as _core's book_readable / book_writable):
# reading is refused while a BookSet.apply writes the book without the GIL,
# updating also while a BookSet.apply callback runs.
cdef int orderbook_readable(OrderBook book) except -1
cdef int orderbook_writable(OrderBook book) except -1
