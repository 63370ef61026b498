# cython: language_level=3
"""Compiled L3 (order-by-order) book, and BookSet: many books updated by event arrays.

State lives in the C structs of ``_l3.pxd`` and is changed by free ``nogil``
functions that report failure with negative status codes and leave the book
unchanged; ``OrderBook`` owns the struct, validates at the Python edge and
turns codes into ``UpdateError`` (or counts them, with ``on_error="skip"``).
``BookSet.apply`` routes a whole ``fastbook.events`` array to its books in one
``nogil`` loop (``fb_bookset_apply``); in raise mode an undo journal makes each
batch all-or-nothing. The pure-Python twin in ``fastbook._pyl3`` defines the
behaviour this module must match exactly (``tests/test_l3_differential.py``,
``tests/test_bookset.py``).
"""

cimport cython
cimport numpy as cnp
from libc.stdint cimport INT64_MAX, INT64_MIN, int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject

from fastbook._edge cimport (
    as_i64, as_side, as_u64, check_decimals, raise_read_only, side_message, top_array,
    valid_side,
)
from fastbook._mem cimport grow_to
from fastbook._core cimport (
    Book, _Guard, fb_book, fb_book_best, fb_book_clear, fb_book_copy, fb_book_free,
    fb_book_qty_at, fb_book_set, fb_book_top, solo_guard,
)

import weakref

import numpy as np

from fastbook._core import format_decimal
from fastbook._instruments import instrument_meta
from fastbook.errors import UpdateError

cnp.import_array()

BID = FB_BID
ASK = FB_ASK
#: Bytes per order record (id, quantity, queue links, level, side); hash slots are extra.
BYTES_PER_ORDER = FB_L3_BYTES_PER_ORDER
#: Bytes per allocated level slot: the 32-byte record plus its key and id in the price index.
BYTES_PER_LEVEL = FB_L3_BYTES_PER_LEVEL
#: Layout version of the C API in ``_l3.pxd`` (``FB_L3_ABI_VERSION``).
ABI_VERSION = FB_L3_ABI_VERSION
#: Names of the error kinds counted with ``on_error="skip"``, in counter order.
ERROR_KINDS = ("bad_side", "bad_quantity", "bad_price", "unknown_order",
               "duplicate_order", "over_execute", "overflow", "bad_action")
COMPILED = True

# Undo-journal entries reserved up front by BookSet.apply in raise mode (virtual
# memory), and the most a BookSet keeps for its next batch (at most
# _JOURNAL_ENTRY_MAX words of 8 bytes each).
cdef Py_ssize_t _JOURNAL_RESERVE = 1 << 22
cdef Py_ssize_t _JOURNAL_KEEP = 1 << 21
cdef enum:
    _JOURNAL_ENTRY_MAX = 6
    _TOP_WINDOW = 8             # levels _lower_bound counts from the top before bisecting
cdef Py_ssize_t _MIN_LEVELS = 16
cdef Py_ssize_t _MIN_ORDERS = 16
# Pool indices are int32 and the table has 2 slots per record: 2**30 orders at most.
cdef Py_ssize_t _MAX_ORDERS = 1 << 30
# Level records are named by int32 ids.
cdef Py_ssize_t _MAX_LEVELS = 1 << 30


cdef extern from *:
    # Fibonacci hashing's multiplier, as a C constant (a module global would be
    # loaded from memory on every probe)
    const uint64_t _FIB "0x9E3779B97F4A7C15ULL"


cdef extern from *:
    """
    /* A cache hint, never a load: it cannot fault and changes no result. The empty
       volatile asm keeps GCC from finding the pipeline's functions pure (they only
       read and prefetch) and deleting their calls as dead. */
    #if defined(__GNUC__) || defined(__clang__)
    #define FB_L3_PREFETCH(p) \
        do { __builtin_prefetch((const void *)(p), 1, 3); __asm__ __volatile__(""); } while (0)
    #elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    #include <xmmintrin.h>
    #define FB_L3_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
    #else
    #define FB_L3_PREFETCH(p) ((void)(p))
    #endif
    /* The hint for element i of the array at base, with the address formed in integer
       arithmetic: the pipeline asks for elements that may not exist (index FB_NIL, a
       stale index, below the start of a short array, or an array not yet allocated),
       and forming such a pointer, even one never loaded, is undefined behaviour in C. */
    #define FB_L3_PREFETCH_AT(base, i, size) FB_L3_PREFETCH( \
        (uintptr_t)(base) + (uintptr_t)(i) * (uintptr_t)(size))
    """
    void _prefetch "FB_L3_PREFETCH"(const void *p) noexcept nogil
    # element i (possibly negative or past the end) of size bytes each from base
    void _prefetch_at "FB_L3_PREFETCH_AT"(const void *base, Py_ssize_t i,
                                          size_t size) noexcept nogil

assert sizeof(fb_order) == FB_L3_BYTES_PER_ORDER == 32 and sizeof(fb_l3level) == 32
assert FB_L3_BYTES_PER_LEVEL == sizeof(fb_l3level) + sizeof(int64_t) + sizeof(int32_t)


# ===========================================================================
# The order hash table
# ===========================================================================

cdef inline Py_ssize_t _home(const fb_l3book *book, uint64_t order_id, int side) noexcept nogil:
    # Fibonacci hashing: sequential exchange ids spread evenly over the table. A
    # side-keyed book hashes an ask's id complemented, so (id, BID) and (id, ASK)
    # land apart; matching compares the side as well, so collisions only cost probes.
    if book.side_keys and side == FB_ASK:
        order_id = ~order_id
    return <Py_ssize_t>((order_id * _FIB) >> (64 - book.slot_bits))


cdef inline bint _is(const fb_l3book *book, int32_t s, uint64_t order_id, int side) noexcept nogil:
    # does record s hold the order (order_id, side)?
    return book.orders[s].order_id == order_id and (
        not book.side_keys or book.orders[s].side == side)


cdef inline bint _bad_key_side(const fb_l3book *book, int side) noexcept nogil:
    # a side-keyed book cannot find an order without its side
    return book.side_keys and side != FB_BID and side != FB_ASK


cdef int32_t fb_l3_find(const fb_l3book *book, uint64_t order_id, int side) noexcept nogil:
    """Pool index of the live order ``(order_id, side)``, or FB_NIL."""
    cdef Py_ssize_t mask = (<Py_ssize_t>1 << book.slot_bits) - 1
    cdef Py_ssize_t i = _home(book, order_id, side)
    cdef int32_t s
    while True:
        s = book.slots[i]
        if s == FB_NIL or _is(book, s, order_id, side):
            return s
        i = (i + 1) & mask


cdef inline int32_t _probe(const fb_l3book *book, uint64_t order_id, int side,
                           Py_ssize_t *slot) noexcept nogil:
    """Like fb_l3_find, also giving the slot of the match (or the empty slot ending the probe)."""
    cdef Py_ssize_t mask = (<Py_ssize_t>1 << book.slot_bits) - 1
    cdef Py_ssize_t i = _home(book, order_id, side)
    cdef int32_t s
    while True:
        s = book.slots[i]
        if s == FB_NIL or _is(book, s, order_id, side):
            slot[0] = i
            return s
        i = (i + 1) & mask


cdef inline void _slot_insert(fb_l3book *book, uint64_t order_id, int side,
                              int32_t idx) noexcept nogil:
    # the caller guarantees (order_id, side) is absent and the table has a free slot
    cdef Py_ssize_t mask = (<Py_ssize_t>1 << book.slot_bits) - 1
    cdef Py_ssize_t i = _home(book, order_id, side)
    while book.slots[i] != FB_NIL:
        i = (i + 1) & mask
    book.slots[i] = idx


cdef void _slot_remove_at(fb_l3book *book, Py_ssize_t i) noexcept nogil:
    """Empty slot ``i`` by backward shift, so no tombstones build up."""
    cdef Py_ssize_t mask = (<Py_ssize_t>1 << book.slot_bits) - 1
    cdef Py_ssize_t j, k
    cdef int32_t s
    j = i
    while True:
        j = (j + 1) & mask
        s = book.slots[j]
        if s == FB_NIL:
            break
        k = _home(book, book.orders[s].order_id, book.orders[s].side)
        # slots[j] may move back to the hole at i unless its home lies cyclically in (i, j]
        if (i <= j and (k <= i or k > j)) or (i > j and k <= i and k > j):
            book.slots[i] = s
            i = j
    book.slots[i] = FB_NIL


cdef inline Py_ssize_t _grown_capacity(Py_ssize_t have, Py_ssize_t need) noexcept nogil:
    """Pool records after growing ``have`` to hold ``need``: exactly ``need`` (at least
    16) for the first allocation or a reservation, else 1.5 times ``have``."""
    cdef Py_ssize_t cap
    if have == 0:
        return need if need > _MIN_ORDERS else _MIN_ORDERS
    cap = have + have // 2
    if cap < need:
        cap = need
    return cap if cap < _MAX_ORDERS else _MAX_ORDERS


cdef inline int _slot_bits_for(Py_ssize_t cap) noexcept nogil:
    """log2 of the hash slots for ``cap`` records: a power of two >= 2 * cap (load <= 1/2)."""
    cdef int bits = 0
    while (<Py_ssize_t>1 << bits) < 2 * cap:
        bits += 1
    return bits


cdef int _grow_orders(fb_l3book *book, Py_ssize_t need) noexcept nogil:
    """Make the pool hold ``need`` records; rebuild the table when it must grow too.

    The pool grows by half (records are handed out in order, so the unused tail
    is never touched and costs no resident memory); the table stays a power of
    two with at least two slots per record.
    """
    cdef Py_ssize_t cap, nslots, i
    cdef int bits
    cdef int32_t *slots = NULL
    cdef int32_t *old_slots = book.slots
    cdef Py_ssize_t old_nslots = (<Py_ssize_t>1 << book.slot_bits) if old_slots != NULL else 0
    cdef fb_order *orders
    if need <= book.order_capacity:
        return FB_OK
    if need > _MAX_ORDERS:
        return FB_ENOMEM
    cap = _grown_capacity(book.order_capacity, need)
    bits = _slot_bits_for(cap)
    nslots = <Py_ssize_t>1 << bits
    if old_slots == NULL or bits != book.slot_bits:
        slots = <int32_t *>malloc(<size_t>nslots * sizeof(int32_t))
        if slots == NULL:
            return FB_ENOMEM
    orders = <fb_order *>realloc(book.orders, <size_t>cap * sizeof(fb_order))
    if orders == NULL:
        free(slots)
        return FB_ENOMEM
    book.orders = orders  # larger block, same contents: the book is still valid
    book.order_capacity = cap
    if slots == NULL:
        return FB_OK    # the table already has room: pool indices are unchanged
    memset(slots, 0xFF, <size_t>nslots * sizeof(int32_t))  # all FB_NIL
    book.slots = slots
    book.slot_bits = bits
    for i in range(old_nslots):
        if old_slots[i] != FB_NIL:
            _slot_insert(book, book.orders[old_slots[i]].order_id,
                         book.orders[old_slots[i]].side, old_slots[i])
    free(old_slots)
    return FB_OK


# ===========================================================================
# Levels
# ===========================================================================

cdef int _levels_reserve(fb_l3side *s, Py_ssize_t need) noexcept nogil:
    """Room for ``need`` levels, growing geometrically (the rule of ``_core``).

    The keys, ids and records grow together; the new records join the free
    end of ``ids``. A failure leaves the side as it was (``grow_to``).
    """
    cdef Py_ssize_t cap, i
    if need <= s.capacity:
        return FB_OK
    cap = s.capacity * 2 if s.capacity >= _MIN_LEVELS else _MIN_LEVELS
    if cap < need:
        cap = need
    if cap > _MAX_LEVELS:
        cap = _MAX_LEVELS
    if need > cap:
        return FB_ENOMEM
    if not (grow_to(<void **>&s.keys, cap, sizeof(int64_t))
            and grow_to(<void **>&s.ids, cap, sizeof(int32_t))
            and grow_to(<void **>&s.levels, cap, sizeof(fb_l3level))):
        return FB_ENOMEM
    for i in range(s.capacity, cap):
        s.ids[i] = <int32_t>i
    s.capacity = cap
    return FB_OK


cdef inline Py_ssize_t _lower_bound(const int64_t *keys, Py_ssize_t n, int64_t key) noexcept nogil:
    """First index whose key is >= ``key``.

    As ``_core._lower_bound``: the top ``_TOP_WINDOW`` keys (one or two cache
    lines of the compact key array) are counted without branches (independent
    loads), and only keys below that window pay for a branch-free (cmov) binary
    search. On a synthetic ITCH day about 70% of adds land in the top 8 levels.
    """
    cdef Py_ssize_t i, above = 0, base = 0, size, half
    if n <= _TOP_WINDOW:
        for i in range(n):
            above += keys[i] >= key
        return n - above
    for i in range(n - _TOP_WINDOW, n):
        above += keys[i] >= key
    if above < _TOP_WINDOW:
        return n - above
    # every key in the window is >= key: the answer is in [0, n - _TOP_WINDOW]
    size = n - _TOP_WINDOW
    while size > 1:
        half = size >> 1
        base = base + half if keys[base + half] < key else base
        size -= half
    return base + (keys[base] < key)


cdef inline int32_t _level_at(const fb_l3side *s, Py_ssize_t pos, int64_t key) noexcept nogil:
    # the level record holding ``key`` if index position ``pos`` (its _lower_bound) has
    # it, else FB_NIL (``key`` would be inserted at ``pos``)
    return s.ids[pos] if pos < s.count and s.keys[pos] == key else FB_NIL


cdef inline int32_t _find_level(const fb_l3side *s, int64_t key) noexcept nogil:
    # the level record holding ``key``, or FB_NIL
    return _level_at(s, _lower_bound(s.keys, s.count, key), key)


cdef inline int64_t _price_of(const fb_l3book *book, int32_t idx) noexcept nogil:
    # the price of pool record idx: its level's key, signed back for asks
    cdef const fb_order *o = &book.orders[idx]
    cdef int64_t key = book.sides[o.side - 1].levels[o.level].key
    return key if o.side == FB_BID else -key


cdef inline void _link_tail(fb_l3book *book, int32_t lid, int32_t idx) noexcept nogil:
    # put record idx at the back of the queue of level record lid (of the record's side)
    cdef fb_order *o = &book.orders[idx]
    cdef fb_l3level *lev = &book.sides[o.side - 1].levels[lid]
    o.level = lid
    o.prev = lev.tail
    o.next = FB_NIL
    if lev.tail != FB_NIL:
        book.orders[lev.tail].next = idx
    else:
        lev.head = idx
    lev.tail = idx
    lev.qty += o.qty
    lev.count += 1


cdef inline void _set_best(fb_l3side *s) noexcept nogil:
    s.best = s.ids[s.count - 1] if s.count else FB_NIL


cdef void _remove_level(fb_l3side *s, int32_t lid) noexcept nogil:
    """Drop the (empty) level record ``lid`` from the index; it becomes the first free one."""
    cdef Py_ssize_t pos = _lower_bound(s.keys, s.count, s.levels[lid].key), k
    # a plain loop: the shifts are short (levels sit near the top), too short for a
    # call to memmove to pay
    for k in range(pos, s.count - 1):
        s.keys[k] = s.keys[k + 1]
        s.ids[k] = s.ids[k + 1]
    s.count -= 1
    s.ids[s.count] = lid
    _set_best(s)


cdef bint _unlink(fb_l3book *book, int32_t idx) noexcept nogil:
    """Take record ``idx`` out of its level (dropping the level when it empties).

    Returns True when that level was the best of its side.
    """
    cdef fb_order *o = &book.orders[idx]
    cdef fb_l3side *s = &book.sides[o.side - 1]
    cdef int32_t lid = o.level
    cdef fb_l3level *lev = &s.levels[lid]
    cdef bint top = lid == s.best
    if o.prev != FB_NIL:
        book.orders[o.prev].next = o.next
    else:
        lev.head = o.next
    if o.next != FB_NIL:
        book.orders[o.next].prev = o.prev
    else:
        lev.tail = o.prev
    lev.qty -= o.qty
    lev.count -= 1
    if lev.count == 0:
        _remove_level(s, lid)
    return top


cdef int32_t _insert_level(fb_l3side *s, Py_ssize_t pos, int64_t key) noexcept nogil:
    """A new, empty level for ``key`` at index position ``pos``; returns its record.

    Capacity was reserved by the caller (so ``ids[count]`` is a free record).
    """
    cdef Py_ssize_t k
    cdef int32_t lid = s.ids[s.count]
    cdef fb_l3level *lev = &s.levels[lid]
    for k in range(s.count, pos, -1):     # as _remove_level: a loop, not memmove
        s.keys[k] = s.keys[k - 1]
        s.ids[k] = s.ids[k - 1]
    s.keys[pos] = key
    s.ids[pos] = lid
    s.count += 1
    if pos == s.count - 1:
        s.best = lid
    lev.key = key
    lev.qty = 0
    lev.count = 0
    lev.head = FB_NIL
    lev.tail = FB_NIL
    lev.reserved = 0
    return lid


# ===========================================================================
# Lifecycle
# ===========================================================================

cdef int fb_l3_init(fb_l3book *book, int price_decimals, int qty_decimals,
                    Py_ssize_t level_capacity, Py_ssize_t order_capacity) noexcept nogil:
    """Initialise ``book`` (its contents are overwritten); free it with fb_l3_free."""
    cdef int rc, s, k
    if price_decimals < 0 or price_decimals > 18 or qty_decimals < 0 or qty_decimals > 18:
        return FB_EDECIMALS
    for s in range(2):
        book.sides[s].keys = NULL
        book.sides[s].ids = NULL
        book.sides[s].levels = NULL
        book.sides[s].count = 0
        book.sides[s].capacity = 0
        book.sides[s].best = FB_NIL
    book.orders = NULL
    book.slots = NULL
    book.order_capacity = 0
    book.order_count = 0
    book.pool_top = 0
    book.free_head = FB_NIL
    book.slot_bits = 0
    book.price_decimals = price_decimals
    book.qty_decimals = qty_decimals
    book.side_keys = 0
    book.version = 0
    for k in range(FB_ERR_KINDS):
        book.errors[k] = 0
    rc = _grow_orders(book, order_capacity if order_capacity > _MIN_ORDERS else _MIN_ORDERS)
    if rc == FB_OK and level_capacity > 0:
        for s in range(2):
            rc = _levels_reserve(&book.sides[s], level_capacity)
            if rc < 0:
                break
    if rc < 0:
        fb_l3_free(book)
    return rc


cdef void fb_l3_free(fb_l3book *book) noexcept nogil:
    cdef int s
    for s in range(2):
        free(book.sides[s].keys)
        free(book.sides[s].ids)
        free(book.sides[s].levels)
        book.sides[s].keys = NULL
        book.sides[s].ids = NULL
        book.sides[s].levels = NULL
        book.sides[s].count = 0
        book.sides[s].capacity = 0
        book.sides[s].best = FB_NIL
    free(book.orders)
    free(book.slots)
    book.orders = NULL
    book.slots = NULL
    book.order_capacity = 0
    book.order_count = 0
    book.pool_top = 0
    book.free_head = FB_NIL


cdef void fb_l3_clear(fb_l3book *book) noexcept nogil:
    """Remove every order and level; capacities (and error counters) are kept."""
    cdef int s
    for s in range(2):
        # ids stays a permutation of the records: all of them are free now
        book.sides[s].count = 0
        book.sides[s].best = FB_NIL
    if book.slots != NULL:
        memset(book.slots, 0xFF, sizeof(int32_t) << book.slot_bits)
    book.order_count = 0
    book.pool_top = 0
    book.free_head = FB_NIL
    book.version += 1


cdef int fb_l3_reserve_orders(fb_l3book *book, Py_ssize_t capacity) noexcept nogil:
    """Ensure room for ``capacity`` live orders without growing."""
    return _grow_orders(book, capacity)


cdef int fb_l3_reserve_levels(fb_l3book *book, int side, Py_ssize_t capacity) noexcept nogil:
    """Ensure ``side`` can hold ``capacity`` levels without reallocating."""
    if side != FB_BID and side != FB_ASK:
        return FB_ESIDE
    return _levels_reserve(&book.sides[side - 1], capacity)


cdef Py_ssize_t fb_l3_nbytes(const fb_l3book *book) noexcept nogil:
    """Bytes allocated: order pool and hash table plus level storage of both sides."""
    return (FB_L3_BYTES_PER_ORDER * book.order_capacity
            + (<Py_ssize_t>sizeof(int32_t) << book.slot_bits if book.slots != NULL else 0)
            + FB_L3_BYTES_PER_LEVEL * (book.sides[0].capacity + book.sides[1].capacity))


# ===========================================================================
# Updates
# ===========================================================================

cdef inline int32_t _new_record(fb_l3book *book, uint64_t order_id, int side,
                                int64_t qty) noexcept nogil:
    """A pool record for a new order (recycled first, else the next unused); the pool has room.

    Its level, links and hash slot are the caller's to set.
    """
    cdef int32_t idx
    if book.free_head != FB_NIL:
        idx = book.free_head
        book.free_head = book.orders[idx].next
    else:
        idx = <int32_t>book.pool_top
        book.pool_top += 1
    book.orders[idx].order_id = order_id
    book.orders[idx].qty = qty
    book.orders[idx].side = <int8_t>side
    return idx


cdef int fb_l3_add(fb_l3book *book, uint64_t order_id, int side, int64_t price,
                   int64_t qty) noexcept nogil:
    """Add a new order at the back of the queue at (side, price)."""
    cdef fb_l3side *s
    cdef int64_t key
    cdef Py_ssize_t pos
    cdef int32_t idx, lid
    cdef Py_ssize_t slot
    cdef int rc
    if side != FB_BID and side != FB_ASK:
        return FB_ESIDE
    if qty <= 0:
        return FB_EQTY
    if price == INT64_MIN:
        return FB_EPRICE
    if _probe(book, order_id, side, &slot) != FB_NIL:
        return FB_EDUPLICATE_ORDER
    s = &book.sides[side - 1]
    key = price if side == FB_BID else -price
    pos = _lower_bound(s.keys, s.count, key)
    lid = _level_at(s, pos, key)
    if lid != FB_NIL:
        if s.levels[lid].qty > INT64_MAX - qty:
            return FB_EOVERFLOW
    elif s.count == s.capacity:
        rc = _levels_reserve(s, s.count + 1)
        if rc < 0:
            return rc
    if book.free_head == FB_NIL and book.pool_top == book.order_capacity:
        rc = _grow_orders(book, book.order_capacity + 1)
        if rc < 0:
            return rc
        _probe(book, order_id, side, &slot)     # the table may have been rebuilt
    # --- nothing can fail from here on ---
    idx = _new_record(book, order_id, side, qty)
    if lid == FB_NIL:
        lid = _insert_level(s, pos, key)
    _link_tail(book, lid, idx)
    book.slots[slot] = idx
    book.order_count += 1
    book.version += 1
    return FB_TOP_CHANGED if lid == s.best else FB_OK


cdef inline void _release(fb_l3book *book, int32_t idx, Py_ssize_t slot) noexcept nogil:
    # slot: where the table holds idx
    _slot_remove_at(book, slot)
    book.orders[idx].next = book.free_head
    book.free_head = idx
    book.order_count -= 1


cdef inline int _take_at(fb_l3book *book, int32_t idx, Py_ssize_t slot,
                         int64_t qty) noexcept nogil:
    # execute/reduce of the live record idx (held by table slot ``slot``); qty >= 1
    cdef fb_order *o = &book.orders[idx]
    cdef fb_l3side *s
    cdef bint top
    if qty > o.qty:
        return FB_EOVER_EXECUTE
    if qty == o.qty:
        top = _unlink(book, idx)
        _release(book, idx, slot)
    else:
        s = &book.sides[o.side - 1]
        o.qty -= qty
        s.levels[o.level].qty -= qty
        top = o.level == s.best
    book.version += 1
    return FB_TOP_CHANGED if top else FB_OK


cdef inline int _delete_at(fb_l3book *book, int32_t idx, Py_ssize_t slot) noexcept nogil:
    cdef bint top = _unlink(book, idx)
    _release(book, idx, slot)
    book.version += 1
    return FB_TOP_CHANGED if top else FB_OK


cdef int _take(fb_l3book *book, uint64_t order_id, int side, int64_t qty) noexcept nogil:
    # execute and reduce have the same effect on the book
    cdef int32_t idx
    cdef Py_ssize_t slot
    if _bad_key_side(book, side):
        return FB_ESIDE
    if qty <= 0:
        return FB_EQTY
    idx = _probe(book, order_id, side, &slot)
    if idx == FB_NIL:
        return FB_EUNKNOWN_ORDER
    return _take_at(book, idx, slot, qty)


cdef int fb_l3_execute(fb_l3book *book, uint64_t order_id, int side, int64_t qty) noexcept nogil:
    """The order traded ``qty`` (1 <= qty <= remaining; all of it removes the order)."""
    return _take(book, order_id, side, qty)


cdef int fb_l3_reduce(fb_l3book *book, uint64_t order_id, int side, int64_t qty) noexcept nogil:
    """Partial cancel of ``qty`` (1 <= qty <= remaining; all of it removes the order)."""
    return _take(book, order_id, side, qty)


cdef int fb_l3_delete(fb_l3book *book, uint64_t order_id, int side) noexcept nogil:
    """Remove the order whatever its remaining quantity."""
    cdef Py_ssize_t slot
    cdef int32_t idx
    if _bad_key_side(book, side):
        return FB_ESIDE
    idx = _probe(book, order_id, side, &slot)
    if idx == FB_NIL:
        return FB_EUNKNOWN_ORDER
    return _delete_at(book, idx, slot)


cdef inline int _find_to_replace(const fb_l3book *book, uint64_t order_id, int side,
                                 int64_t qty, int64_t price, int32_t *idx,
                                 Py_ssize_t *slot) noexcept nogil:
    # the checks replace and modify make before anything changes; FB_OK: idx and slot found
    if _bad_key_side(book, side):
        return FB_ESIDE
    if qty <= 0:
        return FB_EQTY
    if price == INT64_MIN:
        return FB_EPRICE
    idx[0] = _probe(book, order_id, side, slot)
    return FB_EUNKNOWN_ORDER if idx[0] == FB_NIL else FB_OK


cdef int fb_l3_replace(fb_l3book *book, uint64_t order_id, int side, uint64_t new_order_id,
                       int64_t qty, int64_t price) noexcept nogil:
    """Cancel ``order_id`` and add ``new_order_id`` on its side at the back of ``price``."""
    cdef int32_t idx
    cdef Py_ssize_t slot
    cdef int rc = _find_to_replace(book, order_id, side, qty, price, &idx, &slot)
    if rc < 0:
        return rc
    return _replace_at(book, idx, slot, new_order_id, qty, price)


cdef inline bint _keeps_place(const fb_l3book *book, int32_t idx, int64_t qty,
                              int64_t price) noexcept nogil:
    # fb_l3_modify's rule: same price and no more quantity than remains
    return _price_of(book, idx) == price and qty <= book.orders[idx].qty


cdef int fb_l3_modify(fb_l3book *book, uint64_t order_id, int side, int64_t qty,
                      int64_t price) noexcept nogil:
    """Modify in place (same id): keep the queue place if the price is unchanged and qty
    does not grow, else go to the back of the new level (as fb_l3_replace)."""
    cdef int32_t idx
    cdef Py_ssize_t slot
    cdef int rc = _find_to_replace(book, order_id, side, qty, price, &idx, &slot)
    if rc < 0:
        return rc
    if _keeps_place(book, idx, qty, price):
        if qty == book.orders[idx].qty:
            return FB_OK
        return _take_at(book, idx, slot, book.orders[idx].qty - qty)
    return _replace_at(book, idx, slot, order_id, qty, price)


cdef int _replace_at(fb_l3book *book, int32_t idx, Py_ssize_t slot, uint64_t new_order_id,
                     int64_t qty, int64_t price) noexcept nogil:
    # fb_l3_replace once the old order (record idx, table slot ``slot``) was found
    cdef fb_order *o = &book.orders[idx]
    cdef int side = o.side
    cdef fb_l3side *s = &book.sides[side - 1]
    cdef int64_t key, rest
    cdef Py_ssize_t pos
    cdef int32_t lid
    cdef bint top
    cdef int rc
    if new_order_id != o.order_id and fb_l3_find(book, new_order_id, side) != FB_NIL:
        return FB_EDUPLICATE_ORDER
    key = price if side == FB_BID else -price
    lid = _find_level(s, key)
    if lid != FB_NIL:
        rest = s.levels[lid].qty
        if lid == o.level:
            rest -= o.qty
        if rest > INT64_MAX - qty:
            return FB_EOVERFLOW
    elif s.count == s.capacity:
        rc = _levels_reserve(s, s.count + 1)
        if rc < 0:
            return rc
    # --- nothing can fail from here on: reuse the record in place ---
    top = _unlink(book, idx)
    if new_order_id != o.order_id:
        _slot_remove_at(book, slot)
        o.order_id = new_order_id
        _slot_insert(book, new_order_id, side, idx)
    o.qty = qty
    pos = _lower_bound(s.keys, s.count, key)
    lid = _level_at(s, pos, key)
    if lid == FB_NIL:
        lid = _insert_level(s, pos, key)
    _link_tail(book, lid, idx)
    book.version += 1
    return FB_TOP_CHANGED if top or lid == s.best else FB_OK


cdef void fb_l3_count_error(fb_l3book *book, int status) noexcept nogil:
    """Count a failed update by kind (what ``on_error="skip"`` does)."""
    cdef int k = _error_kind(status)
    if k >= 0:
        book.errors[k] += 1


cdef inline int _error_kind(int status) noexcept nogil:
    if status == FB_ESIDE:
        return FB_ERR_BAD_SIDE
    if status == FB_EQTY:
        return FB_ERR_BAD_QUANTITY
    if status == FB_EPRICE:
        return FB_ERR_BAD_PRICE
    if status == FB_EUNKNOWN_ORDER:
        return FB_ERR_UNKNOWN_ORDER
    if status == FB_EDUPLICATE_ORDER:
        return FB_ERR_DUPLICATE_ORDER
    if status == FB_EOVER_EXECUTE:
        return FB_ERR_OVER_EXECUTE
    if status == FB_EOVERFLOW:
        return FB_ERR_OVERFLOW
    if status == FB_EACTION:
        return FB_ERR_BAD_ACTION
    return -1


# ===========================================================================
# Reads
# ===========================================================================

cdef int fb_l3_queue_position(const fb_l3book *book, uint64_t order_id, int side,
                              int64_t *orders_ahead, int64_t *qty_ahead) noexcept nogil:
    """Orders and quantity ahead of ``order_id`` in its level's FIFO queue (O(position))."""
    cdef int32_t idx
    cdef int64_t n = 0, q = 0
    if _bad_key_side(book, side):
        return FB_ESIDE
    idx = fb_l3_find(book, order_id, side)
    if idx == FB_NIL:
        return FB_EUNKNOWN_ORDER
    idx = book.orders[idx].prev
    while idx != FB_NIL:
        n += 1
        q += book.orders[idx].qty
        idx = book.orders[idx].prev
    orders_ahead[0] = n
    qty_ahead[0] = q
    return FB_OK


cdef int fb_l3_rank(const fb_l3book *book, uint64_t order_id, int side,
                    int64_t *rank) noexcept nogil:
    """1-based rank of the order among all orders of its side in price-time priority:
    orders at better prices, plus orders ahead in its queue, plus one."""
    cdef int32_t idx
    cdef int64_t n = 1
    cdef const fb_l3side *s
    cdef Py_ssize_t pos, i
    if _bad_key_side(book, side):
        return FB_ESIDE
    idx = fb_l3_find(book, order_id, side)
    if idx == FB_NIL:
        return FB_EUNKNOWN_ORDER
    s = &book.sides[book.orders[idx].side - 1]
    pos = _lower_bound(s.keys, s.count, s.levels[book.orders[idx].level].key)
    for i in range(pos + 1, s.count):       # better levels sit above pos
        n += s.levels[s.ids[i]].count
    idx = book.orders[idx].prev
    while idx != FB_NIL:
        n += 1
        idx = book.orders[idx].prev
    rank[0] = n
    return FB_OK


cdef int64_t fb_l3_qty_at(const fb_l3book *book, int side, int64_t price) noexcept nogil:
    """Aggregate quantity at ``price`` on ``side``; 0 when there is no such level."""
    cdef const fb_l3side *s
    cdef int32_t lid
    if (side != FB_BID and side != FB_ASK) or price == INT64_MIN:
        return 0
    s = &book.sides[side - 1]
    lid = _find_level(s, price if side == FB_BID else -price)
    return s.levels[lid].qty if lid != FB_NIL else 0


cdef Py_ssize_t fb_l3_top(const fb_l3book *book, Py_ssize_t n,
                          int64_t *bid_prices, int64_t *bid_qtys,
                          int64_t *ask_prices, int64_t *ask_qtys) noexcept nogil:
    """Copy the best ``n`` levels of each side, best first, zero-padded (as ``fb_book_top``)."""
    cdef const fb_l3side *bids = &book.sides[0]
    cdef const fb_l3side *asks = &book.sides[1]
    cdef Py_ssize_t i, nb = bids.count if bids.count < n else n
    cdef Py_ssize_t na = asks.count if asks.count < n else n
    cdef Py_ssize_t top_b = bids.count - 1, top_a = asks.count - 1
    for i in range(nb):
        bid_prices[i] = bids.keys[top_b - i]
        bid_qtys[i] = bids.levels[bids.ids[top_b - i]].qty
    for i in range(nb, n):
        bid_prices[i] = 0
        bid_qtys[i] = 0
    for i in range(na):
        ask_prices[i] = -asks.keys[top_a - i]
        ask_qtys[i] = asks.levels[asks.ids[top_a - i]].qty
    for i in range(na, n):
        ask_prices[i] = 0
        ask_qtys[i] = 0
    return nb if nb > na else na


# ===========================================================================
# Event batches over many books: BookSet's core
# ===========================================================================

cdef enum:
    # undo journal operations (raise mode: all-or-nothing)
    _U_L3_ADDED = 1
    _U_L3_TOOK = 2
    _U_L3_REMOVED = 3
    _U_L3_REPLACED = 4
    _U_L3_CLEARED = 5
    _U_L2_SET = 6
    _U_L2_CLEARED = 7


# The journal is a stack of variable-length entries of 8-byte words, each ending in
# a trailer word (op | side << 8 | flag << 16 | instrument << 32) so it can be
# walked newest first. Payload words before the trailer, oldest first:
#   L3_ADDED     order_id
#   L3_TOOK      order_id, qty
#   L3_REMOVED   order_id, price, qty[, successor id when flag]
#   L3_REPLACED  new_order_id, order_id, price, qty[, successor id when flag]
#   L3_CLEARED   snapshot pointer
#   L2_SET       price, qty as it was (flag: it was a delete of an absent level)
#   L2_CLEARED   snapshot pointer
# Small entries keep the journal's stream of writes from pushing the books out of cache.
ctypedef struct _journal:
    uint64_t *words
    Py_ssize_t count            # words used
    Py_ssize_t capacity         # words allocated
    Py_ssize_t snapshots        # CLEARED entries (their snapshots are freed when done)


cdef inline uint64_t _trailer(int op, int side, int flag, uint32_t instrument) noexcept nogil:
    return (<uint64_t>op | (<uint64_t><uint8_t>side << 8) | (<uint64_t><uint8_t>flag << 16)
            | (<uint64_t>instrument << 32))


cdef inline void _journal_snapshot(_journal *j, void *snap, int op,
                                   uint32_t instrument) noexcept nogil:
    # a CLEARED entry: the pointer to the book's copy, then the trailer
    cdef uint64_t *w = j.words + j.count
    w[0] = <uint64_t><size_t>snap
    w[1] = _trailer(op, 0, 0, instrument)
    j.count += 2
    j.snapshots += 1


cdef inline Py_ssize_t _entry_words(uint64_t trailer) noexcept nogil:
    """Words of the entry ending in ``trailer``, itself included."""
    cdef int op = trailer & 0xFF
    cdef int flag = (trailer >> 16) & 0xFF
    if op == _U_L3_REMOVED:
        return 4 + flag
    if op == _U_L3_REPLACED:
        return 5 + flag
    if op == _U_L3_TOOK or op == _U_L2_SET:
        return 3
    return 2


ctypedef struct _l2snap:
    fb_book book


cdef inline int _journal_reserve(_journal *j) noexcept nogil:
    # room for one more entry of any kind
    cdef Py_ssize_t cap
    cdef uint64_t *p
    if j.count + _JOURNAL_ENTRY_MAX <= j.capacity:
        return FB_OK
    cap = j.capacity * 2 if j.capacity >= 1024 * _JOURNAL_ENTRY_MAX else 1024 * _JOURNAL_ENTRY_MAX
    p = <uint64_t *>realloc(j.words, <size_t>cap * sizeof(uint64_t))
    if p == NULL:
        return FB_ENOMEM
    j.words = p
    j.capacity = cap
    return FB_OK


cdef void *_dup(const void *src, size_t n, bint *ok) noexcept nogil:
    cdef void *p
    if n == 0 or src == NULL:
        return NULL
    p = malloc(n)
    if p == NULL:
        ok[0] = False
        return NULL
    memcpy(p, src, n)
    return p


cdef void _l3_snapshot_free(fb_l3book *snap) noexcept nogil:
    if snap != NULL:
        fb_l3_free(snap)
        free(snap)


cdef fb_l3book *_l3_snapshot(const fb_l3book *b) noexcept nogil:
    """A deep copy of ``b`` (NULL when out of memory)."""
    cdef fb_l3book *snap = <fb_l3book *>malloc(sizeof(fb_l3book))
    cdef bint ok = True
    cdef int s
    if snap == NULL:
        return NULL
    snap[0] = b[0]
    snap.orders = <fb_order *>_dup(b.orders, <size_t>b.order_capacity * sizeof(fb_order), &ok)
    snap.slots = <int32_t *>_dup(b.slots, sizeof(int32_t) << b.slot_bits, &ok)
    for s in range(2):
        snap.sides[s].keys = <int64_t *>_dup(
            b.sides[s].keys, <size_t>b.sides[s].capacity * sizeof(int64_t), &ok)
        snap.sides[s].ids = <int32_t *>_dup(
            b.sides[s].ids, <size_t>b.sides[s].capacity * sizeof(int32_t), &ok)
        snap.sides[s].levels = <fb_l3level *>_dup(
            b.sides[s].levels, <size_t>b.sides[s].capacity * sizeof(fb_l3level), &ok)
    if not ok:
        _l3_snapshot_free(snap)
        return NULL
    return snap


cdef void _l3_restore(fb_l3book *b, fb_l3book *snap) noexcept nogil:
    """Put ``snap`` (consumed) back in place of ``b``'s state; error counters are kept."""
    cdef uint64_t errors[FB_ERR_KINDS]
    cdef uint64_t version = b.version
    memcpy(errors, b.errors, sizeof(errors))
    fb_l3_free(b)
    b[0] = snap[0]
    memcpy(b.errors, errors, sizeof(errors))
    b.version = version + 1
    free(snap)


cdef void _l2_snapshot_free(_l2snap *snap) noexcept nogil:
    if snap != NULL:
        fb_book_free(&snap.book)
        free(snap)


cdef _l2snap *_l2_snapshot(const fb_book *b) noexcept nogil:
    cdef _l2snap *snap = <_l2snap *>malloc(sizeof(_l2snap))
    if snap == NULL:
        return NULL
    if fb_book_copy(&snap.book, b) < 0:
        _l2_snapshot_free(snap)
        return NULL
    return snap


cdef void _l2_restore(fb_book *b, _l2snap *snap) noexcept nogil:
    """Put ``snap`` (consumed) back in place of ``b``'s state."""
    cdef uint64_t version = b.version
    fb_book_free(b)
    b[0] = snap.book
    b.version = version + 1
    free(snap)


cdef void _l3_reinsert(fb_l3book *b, uint64_t order_id, int side, int64_t price, int64_t qty,
                       bint has_successor, uint64_t successor) noexcept nogil:
    """Undo a removal: put the order back where it was (before ``successor``, else last).

    Runs in exact reverse order of the journal, so the record, the level slot
    and the successor are all available again.
    """
    cdef fb_l3side *s = &b.sides[side - 1]
    cdef int64_t key = price if side == FB_BID else -price
    cdef Py_ssize_t pos = _lower_bound(s.keys, s.count, key)
    cdef fb_l3level *lev
    cdef fb_order *o
    cdef int32_t idx, nxt
    cdef int32_t lid = _level_at(s, pos, key)
    if lid == FB_NIL:
        _levels_reserve(s, s.count + 1)
        lid = _insert_level(s, pos, key)
    lev = &s.levels[lid]
    if b.free_head == FB_NIL and b.pool_top == b.order_capacity:
        _grow_orders(b, b.order_capacity + 1)
    idx = _new_record(b, order_id, side, qty)
    o = &b.orders[idx]
    nxt = fb_l3_find(b, successor, side) if has_successor else FB_NIL
    if nxt == FB_NIL:
        _link_tail(b, lid, idx)
    else:
        o.level = lid
        o.prev = b.orders[nxt].prev
        o.next = nxt
        if o.prev != FB_NIL:
            b.orders[o.prev].next = idx
        else:
            lev.head = idx
        b.orders[nxt].prev = idx
        lev.qty += qty
        lev.count += 1
    _slot_insert(b, order_id, side, idx)
    b.order_count += 1
    b.version += 1


cdef inline Py_ssize_t _note_removal(const fb_l3book *b, int32_t idx, uint64_t *w,
                                     int op, uint32_t instrument) noexcept nogil:
    # write (not yet commit) at w what undoing the removal of record idx needs;
    # returns the entry's words after w[0] (which a replace fills with the new id)
    cdef const fb_order *o = &b.orders[idx]
    cdef int32_t nxt = o.next
    cdef Py_ssize_t k = 1 if op == _U_L3_REPLACED else 0
    w[k] = o.order_id
    w[k + 1] = <uint64_t>_price_of(b, idx)
    w[k + 2] = <uint64_t>o.qty
    if nxt != FB_NIL:
        w[k + 3] = b.orders[nxt].order_id
        w[k + 4] = _trailer(op, b.orders[idx].side, 1, instrument)
        return k + 5
    w[k + 3] = _trailer(op, b.orders[idx].side, 0, instrument)
    return k + 4


# The event loop (_run_events) and the event functions it calls are compiled four
# times: a lean version for each mode (skip, raise, stop) of a batch without sampler or
# callback, where those are constants and every test of them goes away, and the general
# one. The ``kind`` argument only selects the version; each version is called from one
# place and inlined there.
ctypedef struct _lean_skip:
    char unused
ctypedef struct _lean_raise:
    char unused
ctypedef struct _lean_stop:
    char unused
ctypedef struct _general:
    char unused
ctypedef fused _loop_kind:
    _lean_skip
    _lean_raise
    _lean_stop
    _general


cdef int _l3_event(fb_l3book *b, const fb_event *e, _journal *j, uint32_t instrument,
                   _loop_kind kind) noexcept nogil:
    cdef int a = e.action, rc
    cdef int32_t idx
    cdef int64_t less
    cdef Py_ssize_t slot, words
    cdef uint64_t *w
    cdef fb_l3book *snap
    if a == FB_ADD:
        rc = fb_l3_add(b, e.order_id, e.side, e.price, e.qty)
        if rc >= 0 and j != NULL:
            w = j.words + j.count
            w[0] = e.order_id
            w[1] = _trailer(_U_L3_ADDED, e.side, 0, instrument)
            j.count += 2
        return rc
    if a == FB_DELETE:
        if _bad_key_side(b, e.side):
            return FB_ESIDE
        idx = _probe(b, e.order_id, e.side, &slot)
        if idx == FB_NIL:
            return FB_EUNKNOWN_ORDER
        if j != NULL:
            j.count += _note_removal(b, idx, j.words + j.count, _U_L3_REMOVED, instrument)
        return _delete_at(b, idx, slot)
    if a == FB_REPLACE:
        rc = _find_to_replace(b, e.order_id, e.side, e.qty, e.price, &idx, &slot)
        if rc < 0:
            return rc
        if ((e.flags & FB_FLAG_KEEP_PRIORITY) and e.new_order_id == e.order_id
                and _keeps_place(b, idx, e.qty, e.price)):
            less = b.orders[idx].qty - e.qty    # < remaining, since qty >= 1
            if less == 0:
                return FB_OK
            if j != NULL:
                w = j.words + j.count
                w[0] = e.order_id
                w[1] = <uint64_t>less
                w[2] = _trailer(_U_L3_TOOK, b.orders[idx].side, 0, instrument)
                j.count += 3
            return _take_at(b, idx, slot, less)
        if j == NULL:
            return _replace_at(b, idx, slot, e.new_order_id, e.qty, e.price)
        w = j.words + j.count
        w[0] = e.new_order_id
        words = _note_removal(b, idx, w, _U_L3_REPLACED, instrument)
        rc = _replace_at(b, idx, slot, e.new_order_id, e.qty, e.price)
        if rc >= 0:
            j.count += words    # commit the entry written above
        return rc
    if a == FB_EXECUTE or a == FB_REDUCE:
        if _bad_key_side(b, e.side):
            return FB_ESIDE
        if e.qty <= 0:
            return FB_EQTY
        idx = _probe(b, e.order_id, e.side, &slot)
        if idx == FB_NIL:
            return FB_EUNKNOWN_ORDER
        if j != NULL and e.qty <= b.orders[idx].qty:
            if e.qty == b.orders[idx].qty:
                j.count += _note_removal(b, idx, j.words + j.count, _U_L3_REMOVED, instrument)
            else:
                w = j.words + j.count
                w[0] = e.order_id
                w[1] = <uint64_t>e.qty
                w[2] = _trailer(_U_L3_TOOK, b.orders[idx].side, 0, instrument)
                j.count += 3
        return _take_at(b, idx, slot, e.qty)
    if a == FB_CLEAR or a == FB_SNAPSHOT_BEGIN:
        if j != NULL:
            snap = _l3_snapshot(b)
            if snap == NULL:
                return FB_ENOMEM
            _journal_snapshot(j, snap, _U_L3_CLEARED, instrument)
        fb_l3_clear(b)
        return FB_OK
    if a == FB_TRADE or a == FB_SNAPSHOT_END or a == FB_STATUS:
        return FB_OK
    return FB_EACTION   # SET_LEVEL (no orders in it), 0 or unknown


cdef int _l2_event(fb_book *b, const fb_event *e, _journal *j, uint32_t instrument,
                   _loop_kind kind) noexcept nogil:
    cdef int a = e.action, side = e.side, rc
    cdef int64_t old, new
    cdef uint64_t *w
    cdef _l2snap *snap
    if a == FB_TRADE or a == FB_SNAPSHOT_END or a == FB_STATUS:
        return FB_OK
    if a == FB_REPLACE or a < FB_ADD or a > FB_STATUS:
        return FB_EACTION   # REPLACE does not carry the old price and quantity
    if a == FB_CLEAR or a == FB_SNAPSHOT_BEGIN:
        if j != NULL:
            snap = _l2_snapshot(b)
            if snap == NULL:
                return FB_ENOMEM
            _journal_snapshot(j, snap, _U_L2_CLEARED, instrument)
        fb_book_clear(b)
        return FB_OK
    if side != FB_BID and side != FB_ASK:
        return FB_ESIDE
    if a == FB_SET_LEVEL:
        if e.qty < 0:
            return FB_EQTY
        if e.price == INT64_MIN:
            return FB_EPRICE
        old = fb_book_qty_at(b, side, e.price)
        new = e.qty
    else:
        if e.qty < 1:
            return FB_EQTY
        if e.price == INT64_MIN:
            return FB_EPRICE
        old = fb_book_qty_at(b, side, e.price)
        if a == FB_ADD:
            if old > INT64_MAX - e.qty:
                return FB_EOVERFLOW
            new = old + e.qty
        else:
            if e.qty > old:
                return FB_EOVER_EXECUTE
            new = old - e.qty
    rc = fb_book_set(b, side, e.price, new)
    if rc >= 0 and j != NULL:
        w = j.words + j.count
        w[0] = <uint64_t>e.price
        w[1] = <uint64_t>old
        w[2] = _trailer(_U_L2_SET, side, new == 0 and old == 0, instrument)
        j.count += 3
    return rc


cdef void _rollback(fb_bookset *bs, _journal *j) noexcept nogil:
    """Undo every journaled change, newest first."""
    cdef Py_ssize_t k = j.count
    cdef uint64_t *w
    cdef uint64_t t
    cdef int op, side, flag
    cdef fb_l3book *b3
    cdef fb_book *b2
    cdef int32_t idx
    while k > 0:
        t = j.words[k - 1]
        k -= _entry_words(t)
        w = j.words + k
        op = t & 0xFF
        side = <int8_t>((t >> 8) & 0xFF)
        flag = (t >> 16) & 0xFF
        if op == _U_L2_SET or op == _U_L2_CLEARED:
            b2 = <fb_book *>bs.books[t >> 32]
            if op == _U_L2_SET:
                if flag:
                    b2.missing_deletes -= 1     # the set changed nothing else
                else:
                    fb_book_set(b2, side, <int64_t>w[0], <int64_t>w[1])
            else:
                _l2_restore(b2, <_l2snap *><size_t>w[0])
            continue
        b3 = <fb_l3book *>bs.books[t >> 32]
        if op == _U_L3_ADDED:
            fb_l3_delete(b3, w[0], side)
        elif op == _U_L3_TOOK:
            idx = fb_l3_find(b3, w[0], side)
            b3.orders[idx].qty += <int64_t>w[1]
            b3.sides[b3.orders[idx].side - 1].levels[b3.orders[idx].level].qty += <int64_t>w[1]
            b3.version += 1
        elif op == _U_L3_REMOVED:
            _l3_reinsert(b3, w[0], side, <int64_t>w[1], <int64_t>w[2], flag, w[3])
        elif op == _U_L3_REPLACED:
            fb_l3_delete(b3, w[0], side)
            _l3_reinsert(b3, w[1], side, <int64_t>w[2], <int64_t>w[3], flag, w[4])
        elif op == _U_L3_CLEARED:
            _l3_restore(b3, <fb_l3book *><size_t>w[0])
    j.count = 0
    j.snapshots = 0


cdef void _journal_done(fb_bookset *bs, _journal *j) noexcept nogil:
    """Free the snapshots a batch kept; keep the words for the next batch (if not huge)."""
    cdef Py_ssize_t k = j.count
    cdef uint64_t t
    while j.snapshots > 0 and k > 0:
        t = j.words[k - 1]
        k -= _entry_words(t)
        if (t & 0xFF) == _U_L3_CLEARED:
            _l3_snapshot_free(<fb_l3book *><size_t>j.words[k])
            j.snapshots -= 1
        elif (t & 0xFF) == _U_L2_CLEARED:
            _l2_snapshot_free(<_l2snap *><size_t>j.words[k])
            j.snapshots -= 1
    j.count = 0
    j.snapshots = 0
    if j.capacity > _JOURNAL_KEEP * _JOURNAL_ENTRY_MAX:
        free(j.words)
        j.words = NULL
        j.capacity = 0
    # reused by the next batch: its pages are already mapped
    bs.undo = j.words
    bs.undo_capacity = j.capacity


cdef void fb_bookset_free(fb_bookset *bs) noexcept nogil:
    """Free what ``bs`` allocated itself (its arrays and undo buffer), not the books."""
    free(bs.kinds)
    free(bs.books)
    free(bs.errors)
    free(bs.undo)
    bs.kinds = NULL
    bs.books = NULL
    bs.errors = NULL
    bs.undo = NULL
    bs.undo_capacity = 0
    bs.count = 0


cdef inline void _count(fb_bookset *bs, uint32_t instrument, int status) noexcept nogil:
    cdef int k = _error_kind(status)
    if k >= 0:
        bs.errors[<Py_ssize_t>instrument * FB_ERR_KINDS + k] += 1


cdef int64_t _failure_detail(fb_bookset *bs, const fb_event *e, int rc) noexcept nogil:
    # what an error message needs from the book at the moment of failure
    cdef fb_l3book *b3
    cdef int32_t idx
    if rc != FB_EOVER_EXECUTE:
        return 0
    if bs.kinds[e.instrument] == FB_KIND_L2:
        return fb_book_qty_at(<fb_book *>bs.books[e.instrument], e.side, e.price)
    b3 = <fb_l3book *>bs.books[e.instrument]
    idx = fb_l3_find(b3, e.order_id, e.side)
    return b3.orders[idx].qty if idx != FB_NIL else 0


# ---------------------------------------------------------------------------
# Samplers and per-event callbacks (fastbook.sampling documents the rules)
# ---------------------------------------------------------------------------

cdef enum:
    _ECALLBACK = -100           # the per-event Python callback raised (see _callback.error)
    _REASON_EVERY = 1
    _REASON_INTERVAL = 2
    _REASON_BBO = 4


ctypedef struct _sampler:
    # A fastbook.sampling.Sampler's rules, columns and per-instrument state, as
    # raw pointers into its numpy arrays (bound with the GIL by _sampler_bind).
    PyObject *owner             # the Sampler (borrowed: BookSet.apply holds it)
    Py_ssize_t depth
    Py_ssize_t count            # rows written
    Py_ssize_t capacity         # rows the columns hold
    int64_t every               # 0: rule off
    int64_t interval            # 0: rule off
    bint on_bbo
    int64_t *ts
    uint32_t *inst
    uint64_t *seq
    uint8_t *reason
    int64_t *bid_px             # capacity x depth, row-major
    int64_t *bid_qty
    int64_t *ask_px
    int64_t *ask_qty
    const uint8_t *selected     # per instrument
    int64_t *since              # events since the last EVERY row
    int64_t *next_t             # next grid point; INT64_MIN before the first event
    int64_t *bbo                # last best bid px, qty, best ask px, qty (4 per instrument)


ctypedef struct _callback:
    PyObject *fn                # called as fn(index, instrument) after each applied event
    PyObject *error             # a new reference to what fn raised, else NULL


cdef inline void *_data(object arr):
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef int _sampler_bind(_sampler *s, object sampler) except -1:
    """Point ``s`` at ``sampler``'s current arrays (it owns them; they must stay alive)."""
    cols = sampler._cols
    s.owner = <PyObject *>sampler
    s.depth = sampler.depth
    s.count = sampler._count
    s.capacity = sampler.capacity
    s.every = sampler.every or 0
    s.interval = sampler.interval or 0
    s.on_bbo = sampler.on_bbo
    s.ts = <int64_t *>_data(cols["ts"])
    s.inst = <uint32_t *>_data(cols["instrument"])
    s.seq = <uint64_t *>_data(cols["sequence"])
    s.reason = <uint8_t *>_data(cols["reason"])
    s.bid_px = <int64_t *>_data(cols["bid_px"])
    s.bid_qty = <int64_t *>_data(cols["bid_qty"])
    s.ask_px = <int64_t *>_data(cols["ask_px"])
    s.ask_qty = <int64_t *>_data(cols["ask_qty"])
    s.selected = <const uint8_t *>_data(sampler._selected)
    s.since = <int64_t *>_data(sampler._since)
    s.next_t = <int64_t *>_data(sampler._next_t)
    s.bbo = <int64_t *>_data(sampler._bbo)
    return 0


cdef int _sampler_grow(_sampler *s) noexcept with gil:
    # rare (the columns double): take the GIL, let numpy allocate, rebind
    sampler = <object>s.owner
    try:
        sampler._count = s.count
        sampler._grow(s.count + 1)
        _sampler_bind(s, sampler)
    except BaseException:
        return -1
    return 0


cdef int _invoke(_callback *cb, Py_ssize_t i, uint32_t inst) noexcept with gil:
    try:
        (<object>cb.fn)(i, inst)
    except BaseException as exc:
        Py_INCREF(exc)
        cb.error = <PyObject *>exc
        return -1
    return 0


cdef inline void _bbo_of(const fb_bookset *bs, uint32_t inst, int64_t *out) noexcept nogil:
    cdef const fb_l3side *s3
    cdef int k
    out[0] = 0
    out[1] = 0
    out[2] = 0
    out[3] = 0
    if bs.kinds[inst] == FB_KIND_L3:
        for k in range(2):
            s3 = &(<const fb_l3book *>bs.books[inst]).sides[k]
            if s3.best != FB_NIL:
                out[2 * k] = s3.levels[s3.best].key if k == 0 else -s3.levels[s3.best].key
                out[2 * k + 1] = s3.levels[s3.best].qty
    else:
        for k in range(2):
            fb_book_best(<const fb_book *>bs.books[inst], k + 1, &out[2 * k], &out[2 * k + 1])


cdef int _sample_row(_sampler *s, const fb_bookset *bs, uint32_t inst, int64_t ts,
                     uint64_t seq, uint8_t reason) noexcept nogil:
    cdef Py_ssize_t r, off
    if s.count == s.capacity and _sampler_grow(s) < 0:
        return FB_ENOMEM
    r = s.count
    off = r * s.depth
    s.ts[r] = ts
    s.inst[r] = inst
    s.seq[r] = seq
    s.reason[r] = reason
    if bs.kinds[inst] == FB_KIND_L3:
        fb_l3_top(<const fb_l3book *>bs.books[inst], s.depth, s.bid_px + off, s.bid_qty + off,
                  s.ask_px + off, s.ask_qty + off)
    else:
        fb_book_top(<const fb_book *>bs.books[inst], s.depth, s.bid_px + off, s.bid_qty + off,
                    s.ask_px + off, s.ask_qty + off)
    s.count = r + 1
    return FB_OK


cdef inline int64_t _ceil_grid(int64_t ts, int64_t t) noexcept nogil:
    # the smallest multiple of t >= ts, clamped to INT64_MAX (as sampling._ceil_grid)
    cdef int64_t q = ts / t     # C division truncates: the ceiling for ts < 0
    if ts > 0 and ts % t != 0:
        q += 1
    if q > INT64_MAX / t:
        return INT64_MAX
    return q * t


cdef inline int _sample_before(_sampler *s, const fb_bookset *bs, const fb_event *e,
                               uint32_t inst) noexcept nogil:
    cdef int64_t due
    if s.interval == 0 or not s.selected[inst]:
        return FB_OK
    due = s.next_t[inst]
    if due != INT64_MIN and e.ts_exchange > due:
        if _sample_row(s, bs, inst, due, e.sequence, _REASON_INTERVAL) < 0:
            return FB_ENOMEM
    if due == INT64_MIN or e.ts_exchange > due:
        s.next_t[inst] = _ceil_grid(e.ts_exchange, s.interval)
    return FB_OK


cdef inline int _sample_after(_sampler *s, const fb_bookset *bs, const fb_event *e,
                              uint32_t inst) noexcept nogil:
    cdef uint8_t reason = 0
    cdef int64_t now[4]
    cdef int64_t *last
    if not s.selected[inst]:
        return FB_OK
    if s.every:
        s.since[inst] += 1
        if s.since[inst] >= s.every:
            s.since[inst] = 0
            reason = _REASON_EVERY
    if s.on_bbo:
        _bbo_of(bs, inst, now)
        last = &s.bbo[4 * <Py_ssize_t>inst]
        if now[0] != last[0] or now[1] != last[1] or now[2] != last[2] or now[3] != last[3]:
            memcpy(last, now, sizeof(now))
            reason |= _REASON_BBO
    if reason:
        return _sample_row(s, bs, inst, e.ts_exchange, e.sequence, reason)
    return FB_OK


# ---------------------------------------------------------------------------
# The prefetch pipeline of _bookset_run
# ---------------------------------------------------------------------------
# Across hundreds of books, an event's book header, hash slot, order record, queue
# neighbours and level are mostly cache misses, each needing the one before it. While
# event i is applied, the pipeline asks for the memory of the events ahead, one step
# of that chain per stage, so each step finds the previous one in cache. Between
# stages it keeps only an event's book (a book lives as long as its set) and slot
# index; it reads the books' current arrays and only issues prefetches, which cannot
# fault: it changes no result, whatever the events are (errors, unknown instruments,
# L2 books, books grown, cleared or restored meanwhile, callbacks growing books).
# Measured with callgrind on the ITCH day's events, the pipeline is about a third of
# the instructions per event (about 120 of 340) and still pays for itself several
# times over; every stage runs behind one bounds test except near a batch's end.
# Where the books are few and small enough to stay in cache, it only costs those
# instructions, so a batch on such a set runs without it (_prefetch_pays).

cdef enum:
    _PF_EVENT = 32      # event i + 32: the event itself (the stages below read it)
    _PF_BOOK = 16       # event i + 16: its book's header
    _PF_SLOT = 10       # event i + 10: its hash slot, and the record an add would take
    _PF_RECORD = 5      # event i + 5: the record in its slot (in cache by now)
    _PF_LINKS = 2       # event i + 2: that record's queue neighbours
    _PF_RING = 16       # a power of two > _PF_BOOK - _PF_LINKS (an entry lives that long)


ctypedef struct _pf_entry:
    # what the earlier stages found for one event, for the later ones (from the book
    # stage on: the entry of event j is ring[j % _PF_RING])
    const fb_l3book *book       # NULL: not an L3 book of the set
    Py_ssize_t home             # its home slot (masked again when used)
    int32_t record              # the record in that slot at the record stage


# The stages take no branch on the event's action or on whether its order exists
# (both are as unpredictable as the stream): they prefetch what any action could
# need, and an address that only matters to another action (the free record, the
# record of an empty slot, FB_NIL) is only ever prefetched, never loaded. A slot
# index kept in the ring is masked with the book's current table size before it is
# read, and a record index is replaced by record 0 unless it is below pool_top (the
# events in between may have grown, cleared or restored the book). Measured on
# bench_l3's stream and a 20M-message ITCH day: prefetching the top levels as well,
# or other distances (24/14/7/3, 10/7/4/1), was slower.

cdef inline const fb_l3book *_pf_book(const fb_bookset *bs, const fb_event *e) noexcept nogil:
    # the L3 book the event names, or NULL
    cdef uint32_t inst = e.instrument
    if inst >= bs.count or bs.kinds[inst] != FB_KIND_L3:
        return NULL
    return <const fb_l3book *>bs.books[inst]


cdef inline void _pf_stage_book(const fb_bookset *bs, const fb_event *e,
                                _pf_entry *p) noexcept nogil:
    cdef const fb_l3book *b = _pf_book(bs, e)
    p.book = b
    if b != NULL:
        _prefetch(b)
        _prefetch(<const char *>b + 64)
        _prefetch(<const char *>b + 128)


cdef inline void _pf_stage_slot(const fb_event *e, _pf_entry *p) noexcept nogil:
    cdef const fb_l3book *b = p.book
    cdef const fb_l3side *s
    if b == NULL:
        return
    p.home = _home(b, e.order_id, e.side)
    _prefetch_at(b.slots, p.home, sizeof(int32_t))
    _prefetch_at(b.orders, b.free_head if b.free_head != FB_NIL else b.pool_top,
                 sizeof(fb_order))
    # the top of the price index an add (or a replace) searches first
    s = &b.sides[(e.side - 1) & 1]
    _prefetch_at(s.keys, s.count - 1, sizeof(int64_t))
    _prefetch_at(s.keys, s.count - _TOP_WINDOW, sizeof(int64_t))
    _prefetch_at(s.ids, s.count - 1, sizeof(int32_t))


cdef inline void _pf_stage_record(_pf_entry *p) noexcept nogil:
    cdef const fb_l3book *b = p.book
    cdef int32_t r
    if b == NULL:
        return
    r = b.slots[p.home & ((<Py_ssize_t>1 << b.slot_bits) - 1)]
    p.record = r
    _prefetch_at(b.orders, r, sizeof(fb_order))


cdef inline void _pf_stage_links(const _pf_entry *p) noexcept nogil:
    cdef const fb_l3book *b = p.book
    cdef const fb_order *o
    cdef int32_t r
    if b == NULL or b.pool_top == 0:
        return
    # a record handed out at least once (its links were set), in place of FB_NIL or
    # of an index the events in between made stale
    r = p.record if <uint32_t>p.record < <uint64_t>b.pool_top else 0
    o = &b.orders[r]
    _prefetch_at(b.orders, o.prev, sizeof(fb_order))
    _prefetch_at(b.orders, o.next, sizeof(fb_order))
    # its level record (a side byte of a handed-out record is FB_BID or FB_ASK)
    _prefetch_at(b.sides[(o.side - 1) & 1].levels, o.level, sizeof(fb_l3level))


cdef inline void _prefetch_ahead(const fb_bookset *bs, const fb_event *events, Py_ssize_t i,
                                 Py_ssize_t n, _pf_entry *ring) noexcept nogil:
    """Run every stage of the pipeline once, before event ``i`` is applied."""
    if i + _PF_EVENT < n:
        # all but the last events of a batch: every stage has its event (one test)
        _prefetch(&events[i + _PF_EVENT])
        _pf_stage_book(bs, &events[i + _PF_BOOK], &ring[(i + _PF_BOOK) & (_PF_RING - 1)])
        _pf_stage_slot(&events[i + _PF_SLOT], &ring[(i + _PF_SLOT) & (_PF_RING - 1)])
        _pf_stage_record(&ring[(i + _PF_RECORD) & (_PF_RING - 1)])
        _pf_stage_links(&ring[(i + _PF_LINKS) & (_PF_RING - 1)])
        return
    if i + _PF_BOOK < n:
        _pf_stage_book(bs, &events[i + _PF_BOOK], &ring[(i + _PF_BOOK) & (_PF_RING - 1)])
    if i + _PF_SLOT < n:
        _pf_stage_slot(&events[i + _PF_SLOT], &ring[(i + _PF_SLOT) & (_PF_RING - 1)])
    if i + _PF_RECORD < n:
        _pf_stage_record(&ring[(i + _PF_RECORD) & (_PF_RING - 1)])
    if i + _PF_LINKS < n:
        _pf_stage_links(&ring[(i + _PF_LINKS) & (_PF_RING - 1)])


cdef enum:
    # Below this many bytes of L3 books (allocated), the books stay in a core's L2 cache
    # and the pipeline is pure overhead: bench_l3's stream runs 10-12% faster without it
    # on 1 or 10 books (19 and 144 KiB), the same on 50 (557 KiB), 10% slower on 100
    # (1 MiB) and 30% slower on 500 (4 MiB). 256 KiB leaves room for smaller L2 caches.
    _PF_MIN_BYTES = 256 * 1024
    _PF_SCAN_BOOKS = 32     # sets with more books always prefetch (no per-call walk)


# 0: decide per batch (_prefetch_pays); 1 / -1: always / never (tests, comparisons).
cdef int _prefetch_mode = 0
_PREFETCH_MODES = ("never", "auto", "always")      # by _prefetch_mode + 1


def _set_prefetch(mode):
    """Private: run the prefetch pipeline "auto" (the default), "always" or "never".

    Tests use "always" to exercise the pipeline on small sets; results never depend
    on it. Returns the previous mode.
    """
    global _prefetch_mode
    if mode not in _PREFETCH_MODES:
        raise ValueError(f"mode must be 'auto', 'always' or 'never', got {mode!r}")
    previous = _PREFETCH_MODES[_prefetch_mode + 1]
    _prefetch_mode = _PREFETCH_MODES.index(mode) - 1
    return previous


cdef bint _prefetch_pays(const fb_bookset *bs) noexcept nogil:
    """Whether the pipeline should run for this batch: not for a few small books."""
    cdef Py_ssize_t k, total = 0
    if _prefetch_mode != 0:
        return _prefetch_mode > 0
    if bs.count > _PF_SCAN_BOOKS:
        return True
    for k in range(bs.count):
        if bs.kinds[k] == FB_KIND_L3:
            total += fb_l3_nbytes(<const fb_l3book *>bs.books[k])
    return total >= _PF_MIN_BYTES


cdef inline void _prefetch_start(const fb_bookset *bs, const fb_event *events, Py_ssize_t n,
                                 _pf_entry *ring) noexcept nogil:
    """Run the stages the first events would have had before event 0."""
    cdef Py_ssize_t k
    for k in range(_PF_BOOK if _PF_BOOK < n else n):
        _pf_stage_book(bs, &events[k], &ring[k & (_PF_RING - 1)])
    for k in range(_PF_LINKS, _PF_SLOT if _PF_SLOT < n else n):
        _pf_stage_slot(&events[k], &ring[k & (_PF_RING - 1)])
    for k in range(_PF_LINKS, _PF_RECORD if _PF_RECORD < n else n):
        _pf_stage_record(&ring[k & (_PF_RING - 1)])


cdef enum:
    # how _bookset_run treats a failing event (BookSet's on_error)
    _MODE_RAISE = 0     # stop; roll the batch back (undo journal)
    _MODE_SKIP = 1      # count it and go on
    _MODE_STOP = 2      # stop; the events before it stay applied


cdef int fb_bookset_apply(fb_bookset *bs, const fb_event *events, Py_ssize_t n, bint skip,
                          Py_ssize_t *done, Py_ssize_t *skipped,
                          int64_t *detail) noexcept nogil:
    """Apply ``events[0:n]`` to the books of ``bs`` (see ``_l3.pxd``)."""
    return _bookset_run(bs, events, n, _MODE_SKIP if skip else _MODE_RAISE, done, skipped,
                        detail, NULL, NULL)


cdef int _bookset_run(fb_bookset *bs, const fb_event *events, Py_ssize_t n, int mode,
                      Py_ssize_t *done, Py_ssize_t *skipped, int64_t *detail,
                      _sampler *samp, _callback *cb) noexcept nogil:
    """fb_bookset_apply, plus an optional sampler and per-event callback, in one of the
    BookSet's modes (_MODE_STOP: as raise mode, but nothing journaled or rolled back).

    A failure of the sampler (FB_ENOMEM) or of the callback (_ECALLBACK) after
    event i was applied stops with done = i in raise mode (everything rolled
    back) and done = i + 1 in skip and stop modes (event i stays applied).
    """
    # (initialised only so that no indeterminate value is ever copied)
    cdef _lean_skip lean_skip = _lean_skip(0)
    cdef _lean_raise lean_raise = _lean_raise(0)
    cdef _lean_stop lean_stop = _lean_stop(0)
    cdef _general general = _general(0)
    if samp == NULL and cb == NULL:
        if mode == _MODE_SKIP:
            return _run_events(bs, events, n, mode, done, skipped, detail, NULL, NULL,
                               lean_skip)
        if mode == _MODE_RAISE:
            return _run_events(bs, events, n, mode, done, skipped, detail, NULL, NULL,
                               lean_raise)
        if mode == _MODE_STOP:
            return _run_events(bs, events, n, mode, done, skipped, detail, NULL, NULL,
                               lean_stop)
    return _run_events(bs, events, n, mode, done, skipped, detail, samp, cb, general)


cdef int _run_events(fb_bookset *bs, const fb_event *events, Py_ssize_t n, int mode,
                     Py_ssize_t *done, Py_ssize_t *skipped, int64_t *detail,
                     _sampler *samp, _callback *cb, _loop_kind kind) noexcept nogil:
    # _bookset_run's loop (``kind`` only selects the compiled version)
    cdef bint skip
    cdef Py_ssize_t i, stop = 0, cap, nskip = 0
    cdef const fb_event *e
    cdef uint32_t inst
    cdef int rc = FB_OK
    cdef bint failed = True
    cdef _journal journal
    cdef _journal *j = NULL
    cdef _pf_entry ring[_PF_RING]
    cdef bint prefetch = _prefetch_pays(bs)
    if _loop_kind is _lean_skip:
        mode = _MODE_SKIP
    elif _loop_kind is _lean_raise:
        mode = _MODE_RAISE
    elif _loop_kind is _lean_stop:
        mode = _MODE_STOP
    if _loop_kind is not _general:
        samp = NULL
        cb = NULL
    skip = mode == _MODE_SKIP
    if mode == _MODE_RAISE:
        journal.words = <uint64_t *>bs.undo
        journal.count = 0
        journal.capacity = bs.undo_capacity
        journal.snapshots = 0
        j = &journal
        # at most one entry per event: reserve it up front (pages are touched only
        # as entries are written), else grow as needed
        cap = (n if n < _JOURNAL_RESERVE else _JOURNAL_RESERVE) * _JOURNAL_ENTRY_MAX
        if journal.capacity < cap:
            free(journal.words)
            journal.words = <uint64_t *>malloc(<size_t>cap * sizeof(uint64_t))
            journal.capacity = cap if journal.words != NULL else 0
            bs.undo = journal.words
            bs.undo_capacity = journal.capacity
    if prefetch:
        _prefetch_start(bs, events, n, ring)
    for i in range(n):
        if prefetch:
            _prefetch_ahead(bs, events, i, n, ring)
        e = &events[i]
        stop = i
        inst = e.instrument
        if inst >= bs.count:
            rc = FB_EINSTRUMENT
        else:
            if samp != NULL and _sample_before(samp, bs, e, inst) < 0:
                rc = FB_ENOMEM
                break
            if j != NULL and _journal_reserve(j) < 0:
                rc = FB_ENOMEM
                break
            if bs.kinds[inst] == FB_KIND_L3:
                rc = _l3_event(<fb_l3book *>bs.books[inst], e, j, inst, kind)
            else:
                rc = _l2_event(<fb_book *>bs.books[inst], e, j, inst, kind)
        if rc >= 0:
            # a failure after event i was applied: skip mode keeps it (done = i + 1)
            if samp != NULL and _sample_after(samp, bs, e, inst) < 0:
                rc = FB_ENOMEM
                stop = i + (mode != _MODE_RAISE)
                break
            if cb != NULL and _invoke(cb, i, inst) < 0:
                rc = _ECALLBACK
                stop = i + (mode != _MODE_RAISE)
                break
            continue
        if skip and rc != FB_ENOMEM:
            nskip += 1
            if rc == FB_EINSTRUMENT:
                bs.bad_instrument += 1
            else:
                _count(bs, inst, rc)
            continue
        break
    else:
        failed = False
    if failed:
        done[0] = stop
        skipped[0] = nskip
        detail[0] = _failure_detail(bs, &events[i], rc)
        if j != NULL:
            _rollback(bs, j)
            _journal_done(bs, j)
        return rc
    done[0] = n
    skipped[0] = nskip
    if j != NULL:
        _journal_done(bs, j)
    return FB_OK


# ===========================================================================
# Python face
# ===========================================================================

cdef int _check_capacity(object value, str name) except -1:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return 0


cdef str _l3_message(int rc, str verb, uint64_t order_id, object side, int64_t price,
                     int64_t qty, uint64_t new_order_id, int64_t remaining):
    """What went wrong, for status ``rc`` of an update (``remaining``: for over-execution)."""
    if rc == FB_ESIDE:
        if verb != "add":
            return (f"cannot {verb} order {order_id}: this book keys orders by (side, id), "
                    f"so the order's side is needed; " + side_message(side))
        return side_message(side)
    if rc == FB_EQTY:
        return f"quantity must be >= 1, got {qty} (order {order_id})"
    if rc == FB_EPRICE:
        return (f"price {price} is INT64_MIN, which fastbook reserves for "
                f"'no price' (order {order_id})")
    if rc == FB_EUNKNOWN_ORDER:
        return f"cannot {verb} order {order_id}: it is not in the book"
    if rc == FB_EDUPLICATE_ORDER:
        if verb == "replace":
            return (f"cannot replace order {order_id} by {new_order_id}: "
                    f"order {new_order_id} is already in the book")
        return f"cannot add order {order_id}: it is already in the book"
    if rc == FB_EOVER_EXECUTE:
        return f"cannot {verb} {qty} from order {order_id}: only {remaining} remaining"
    if rc == FB_EOVERFLOW:
        return f"cannot {verb} order {order_id}: the quantity at price {price} would overflow int64"
    return f"unexpected status {rc}"


cdef int _fail(OrderBook self, int rc, str verb, uint64_t order_id, object side, int64_t price,
               int64_t qty, uint64_t new_order_id) except -1:
    """Count (skip mode) or raise for status ``rc``; the book is unchanged."""
    cdef int32_t idx
    cdef int64_t remaining = 0
    if rc == FB_ENOMEM:
        raise MemoryError("fastbook: cannot grow the order pool or the level arrays")
    if self._skip:
        fb_l3_count_error(&self._book, rc)
        return 0
    if rc == FB_EOVER_EXECUTE:
        idx = fb_l3_find(&self._book, order_id, as_side(side) if side is not None else 0)
        remaining = self._book.orders[idx].qty
    raise UpdateError(_l3_message(rc, verb, order_id, side, price, qty, new_order_id,
                                  remaining))


cdef int _raise_busy() except -1:
    raise RuntimeError(
        "fastbook.OrderBook is being modified by BookSet.apply in another thread; a book has "
        "one writer at a time (read it from the writer's thread, or copy it there)"
    )


cdef inline int _readable(OrderBook book) except -1:
    # what every OrderBook method checks first (as _core.book_readable)
    if book._guard.sets_busy:
        _raise_busy()
    return 0


cdef inline int _writable(OrderBook book) except -1:
    # ... and every update (as _core.book_writable; the raising stays out of line)
    if book._guard.sets_busy or book._guard.read_only:
        _refuse_update(book)
    return 0


cdef int _refuse_update(OrderBook book) except -1:
    _readable(book)
    raise_read_only(book)


cdef object _best_level(OrderBook book, int side):
    cdef int64_t p, q
    _readable(book)
    if fb_l3_best(&book._book, side, &p, &q):
        return (p, q)
    return None


@cython.final
cdef class _LevelIterator:
    """Best-first iterator over one side; fails if the book changes under it."""
    cdef OrderBook _owner
    cdef int _side
    cdef Py_ssize_t _i
    cdef uint64_t _version

    def __iter__(self):
        return self

    def __next__(self):
        cdef const fb_l3side *s = &self._owner._book.sides[self._side - 1]
        cdef Py_ssize_t idx
        _readable(self._owner)
        if self._owner._book.version != self._version:
            raise RuntimeError("fastbook.OrderBook changed size or contents during iteration")
        if self._i >= s.count:
            raise StopIteration
        idx = s.count - 1 - self._i
        self._i += 1
        return (s.keys[idx] if self._side == FB_BID else -s.keys[idx],
                s.levels[s.ids[idx]].qty)


cdef class OrderBook:
    """An L3 (order-by-order) book: every resting order, FIFO per price level.

    Orders are found by id in O(1) (an open-addressing hash table over a pool
    of fixed-size records) and linked in arrival order at their level, so
    ``queue_position`` is exact. The L2 view (``best_bid``, ``top``, ``depth``
    ...) is the same as :class:`fastbook.Book`'s and is kept consistent with the
    orders after every call.

    Parameters
    ----------
    price_decimals, qty_decimals : int
        Fixed-point scales (0 to 18), as for ``Book``; used only for ``repr``.
    capacity : int, default 256
        Level slots to preallocate per side (grown geometrically).
    order_capacity : int, default 1024
        Order records to preallocate, exactly (grown by half when full). Each
        costs ``BYTES_PER_ORDER`` (32) bytes, plus the hash table's 4-byte
        slots, a power of two at least twice the capacity (8 to 16 bytes per
        record).
    on_error : {"raise", "skip"}
        What a failed update does. ``"raise"``: raise ``fastbook.UpdateError``.
        ``"skip"``: count it in ``errors`` by kind and return False. Either way
        the book is unchanged by a failed update.

    Every update returns True when the best level of the order's side changed
    (price or quantity), False otherwise (and when skipped).

    Examples
    --------
    >>> import fastbook as fb
    >>> from fastbook.l3 import OrderBook
    >>> ob = OrderBook(price_decimals=4, qty_decimals=0)
    >>> ob.add(1, fb.BID, 5853300, 18)
    True
    >>> ob.add(2, fb.BID, 5853300, 100)
    True
    >>> ob.queue_position(2)
    (1, 18)
    >>> ob.execute(1, 18)
    True
    >>> ob.best_bid(), ob.order(2)
    ((5853300, 100), (1, 5853300, 100))
    """

    def __cinit__(self, *, price_decimals, qty_decimals=0, capacity=256,
                  order_capacity=1024, on_error="raise", side_keys=False):
        self._guard = solo_guard()
        check_decimals(price_decimals, "price_decimals")
        check_decimals(qty_decimals, "qty_decimals")
        _check_capacity(capacity, "capacity")
        _check_capacity(order_capacity, "order_capacity")
        if on_error != "raise" and on_error != "skip":
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if capacity > _MAX_LEVELS or order_capacity > _MAX_ORDERS:
            raise MemoryError(f"capacity {capacity} / order_capacity {order_capacity} "
                              f"is too large (at most {_MAX_ORDERS} orders)")
        self._skip = on_error == "skip"
        if fb_l3_init(&self._book, price_decimals, qty_decimals, capacity,
                      order_capacity) < 0:
            raise MemoryError(f"fastbook: cannot allocate {order_capacity} orders and "
                              f"{capacity} levels per side")
        self._book.side_keys = 1 if side_keys else 0

    def __dealloc__(self):
        fb_l3_free(&self._book)

    # -- errors --------------------------------------------------------------
    @property
    def on_error(self):
        """``"raise"`` or ``"skip"``: what a failed update does."""
        return "skip" if self._skip else "raise"

    @property
    def errors(self):
        """Failed updates counted in skip mode, by kind (a new dict; every kind present)."""
        _readable(self)
        cdef int k
        cdef dict out = {}
        for k in range(FB_ERR_KINDS):
            out[ERROR_KINDS[k]] = self._book.errors[k]
        return out

    def reset_errors(self):
        """Set every error counter back to 0."""
        _readable(self)
        cdef int k
        for k in range(FB_ERR_KINDS):
            self._book.errors[k] = 0

    # -- updates -------------------------------------------------------------
    # The per-call methods a Python loop calls millions of times are plain methods
    # (binding=False): CPython's call specialisation calls them directly, where a
    # binding (Cython function) method goes through two more calls; about 100
    # instructions less per call. The clinic signature keeps inspect.signature working.
    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def add(self, order_id, side, price, qty):
        """Add order ``order_id`` at the back of the queue at ``price`` on ``side``.

        Fails (``UpdateError``, or counted in skip mode) for a bad side,
        ``qty < 1``, ``INT64_MIN`` as price, an id already live, or a level
        quantity that would overflow int64. Returns True when the best level of
        ``side`` changed.
        """
        _writable(self)
        cdef uint64_t oid = as_u64(order_id, "order_id")
        cdef int s = as_side(side)
        cdef int64_t p = as_i64(price, "price")
        cdef int64_t q = as_i64(qty, "qty")
        cdef int rc = fb_l3_add(&self._book, oid, s, p, q)
        if rc < 0:
            _fail(self, rc, "add", oid, side, p, q, 0)
        return rc == FB_TOP_CHANGED

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def execute(self, order_id, qty, *, side=0):
        """The resting order traded ``qty`` (1 to its remaining quantity; all of it removes it).

        ``side`` names the order in a side-keyed book and is ignored otherwise
        (as in every method below that names an existing order).
        """
        _writable(self)
        cdef uint64_t oid = as_u64(order_id, "order_id")
        cdef int64_t q = as_i64(qty, "qty")
        cdef int rc = fb_l3_execute(&self._book, oid, as_side(side), q)
        if rc < 0:
            _fail(self, rc, "execute", oid, side, 0, q, 0)
        return rc == FB_TOP_CHANGED

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def reduce(self, order_id, qty, *, side=0):
        """Cancel ``qty`` of the order, keeping its place (all of it removes the order)."""
        _writable(self)
        cdef uint64_t oid = as_u64(order_id, "order_id")
        cdef int64_t q = as_i64(qty, "qty")
        cdef int rc = fb_l3_reduce(&self._book, oid, as_side(side), q)
        if rc < 0:
            _fail(self, rc, "reduce", oid, side, 0, q, 0)
        return rc == FB_TOP_CHANGED

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def delete(self, order_id, *, side=0):
        """Remove the order, whatever its remaining quantity."""
        _writable(self)
        cdef uint64_t oid = as_u64(order_id, "order_id")
        cdef int rc = fb_l3_delete(&self._book, oid, as_side(side))
        if rc < 0:
            _fail(self, rc, "delete", oid, side, 0, 0, 0)
        return rc == FB_TOP_CHANGED

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def replace(self, order_id, new_order_id, qty, price, *, side=0):
        """Replace ``order_id`` by ``new_order_id`` with ``qty`` at ``price``, on the same side.

        The new order goes to the back of its level's queue, even at an
        unchanged price. ``new_order_id`` may equal ``order_id``.
        """
        _writable(self)
        cdef uint64_t oid = as_u64(order_id, "order_id")
        cdef uint64_t nid = as_u64(new_order_id, "new_order_id")
        cdef int64_t q = as_i64(qty, "qty")
        cdef int64_t p = as_i64(price, "price")
        cdef int rc = fb_l3_replace(&self._book, oid, as_side(side), nid, q, p)
        if rc < 0:
            _fail(self, rc, "replace", oid, side, p, q, nid)
        return rc == FB_TOP_CHANGED

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def modify(self, order_id, qty, price, *, side=0):
        """Modify the order in place, keeping its id (what ``Flags.KEEP_PRIORITY`` means).

        At an unchanged price with no more than the remaining quantity, the
        order keeps its queue place with quantity ``qty``; otherwise it goes to
        the back of its (new) level, exactly as ``replace(order_id, order_id,
        qty, price)``.
        """
        _writable(self)
        cdef uint64_t oid = as_u64(order_id, "order_id")
        cdef int64_t q = as_i64(qty, "qty")
        cdef int64_t p = as_i64(price, "price")
        cdef int rc = fb_l3_modify(&self._book, oid, as_side(side), q, p)
        if rc < 0:
            _fail(self, rc, "modify", oid, side, p, q, oid)
        return rc == FB_TOP_CHANGED

    @property
    def side_keys(self):
        """True when orders are keyed by (side, id): ids need only be unique per side."""
        return self._book.side_keys != 0

    def clear(self):
        """Remove every order and level (capacities and error counters are kept)."""
        _writable(self)
        fb_l3_clear(&self._book)

    # -- orders --------------------------------------------------------------
    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def order(self, order_id, *, side=0):
        """``(side, price, remaining_qty)`` of a live order, or None."""
        _readable(self)
        cdef int s = self._key_side(side)
        cdef int32_t idx = fb_l3_find(&self._book, as_u64(order_id, "order_id"), s)
        cdef fb_order *o
        if idx == FB_NIL:
            return None
        o = &self._book.orders[idx]
        return (<int>o.side, _price_of(&self._book, idx), o.qty)

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def queue_position(self, order_id, *, side=0):
        """``(orders_ahead, qty_ahead)`` of a live order in its level's FIFO queue, or None.

        Exact: counts every older order at the same price and side. O(position).
        """
        _readable(self)
        cdef int64_t n = 0, q = 0
        cdef int s = self._key_side(side)
        if fb_l3_queue_position(&self._book, as_u64(order_id, "order_id"), s, &n, &q) < 0:
            return None
        return (n, q)

    def rank(self, order_id, *, side=0):
        """1-based rank of a live order among all orders of its side, or None.

        Price-time priority: every order at a better price, plus the orders
        ahead of it in its queue, plus one. O(levels ahead + position).
        """
        _readable(self)
        cdef int64_t r = 0
        cdef int s = self._key_side(side)
        if fb_l3_rank(&self._book, as_u64(order_id, "order_id"), s, &r) < 0:
            return None
        return r

    cdef int _key_side(self, object side) except? -1:
        # reads naming an order: a side-keyed book needs its side
        cdef int s = as_side(side)
        if self._book.side_keys and s == 0:
            raise UpdateError("this book keys orders by (side, id): pass side=fastbook.BID "
                              f"or fastbook.ASK, got {side!r}")
        return s

    def __contains__(self, order_id):
        """``order_id in book``; a side-keyed book also takes ``(side, order_id)``."""
        _readable(self)
        cdef int side = 0
        if isinstance(order_id, tuple) and len(order_id) == 2:
            side, order_id = order_id
            if side != FB_BID and side != FB_ASK:
                return False
        if not isinstance(order_id, int) or not 0 <= order_id < 2 ** 64:
            return False
        if self._book.side_keys and side == 0:
            return (fb_l3_find(&self._book, <uint64_t>order_id, FB_BID) != FB_NIL
                    or fb_l3_find(&self._book, <uint64_t>order_id, FB_ASK) != FB_NIL)
        return fb_l3_find(&self._book, <uint64_t>order_id, side) != FB_NIL

    @property
    def order_count(self):
        """Number of live orders."""
        return self._book.order_count

    def orders_at(self, side, price):
        """The orders at ``price`` on ``side``: ``[(order_id, qty), ...]``, oldest first."""
        _readable(self)
        cdef const fb_l3side *s
        cdef int32_t idx, lid
        cdef list out = []
        cdef int sd = valid_side(side)
        cdef int64_t p = as_i64(price, "price")
        if p == INT64_MIN:
            return out
        s = &self._book.sides[sd - 1]
        lid = _find_level(s, p if sd == FB_BID else -p)
        if lid != FB_NIL:
            idx = s.levels[lid].head
            while idx != FB_NIL:
                out.append((self._book.orders[idx].order_id, self._book.orders[idx].qty))
                idx = self._book.orders[idx].next
        return out

    def count_at(self, side, price):
        """Number of orders at ``price`` on ``side`` (0 when there is no level)."""
        _readable(self)
        cdef const fb_l3side *s
        cdef int32_t lid
        cdef int sd = valid_side(side)
        cdef int64_t p = as_i64(price, "price")
        if p == INT64_MIN:
            return 0
        s = &self._book.sides[sd - 1]
        lid = _find_level(s, p if sd == FB_BID else -p)
        return s.levels[lid].count if lid != FB_NIL else 0

    # -- memory --------------------------------------------------------------
    @property
    def price_decimals(self):
        """Decimal places of prices (the fixed-point scale)."""
        return self._book.price_decimals

    @property
    def qty_decimals(self):
        """Decimal places of quantities (the fixed-point scale)."""
        return self._book.qty_decimals

    @property
    def nbytes(self):
        """Bytes allocated: ``BYTES_PER_ORDER * order_capacity + 4 * hash_slots +
        BYTES_PER_LEVEL * level slots``."""
        return fb_l3_nbytes(&self._book)

    @property
    def order_capacity(self):
        """Order records allocated (exactly what was reserved, else grown by half)."""
        return self._book.order_capacity

    @property
    def hash_slots(self):
        """Slots of the order hash table (4 bytes each; a power of two >= 2 * order_capacity)."""
        return (<Py_ssize_t>1 << self._book.slot_bits) if self._book.slots != NULL else 0

    def capacity(self, side):
        """Level slots allocated on ``side``."""
        _readable(self)
        return self._book.sides[valid_side(side) - 1].capacity

    def reserve(self, side, capacity):
        """Preallocate room for ``capacity`` levels on ``side``."""
        _readable(self)
        cdef int sd = valid_side(side)
        cdef int64_t cap = as_i64(capacity, "capacity")
        if cap < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if cap > _MAX_LEVELS or fb_l3_reserve_levels(&self._book, sd, <Py_ssize_t>cap) < 0:
            raise MemoryError(f"fastbook: cannot allocate {capacity} levels")

    def reserve_orders(self, capacity):
        """Preallocate room for ``capacity`` live orders (exactly; the table to match)."""
        _readable(self)
        cdef int64_t cap = as_i64(capacity, "capacity")
        if cap < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if fb_l3_reserve_orders(&self._book, <Py_ssize_t>cap) < 0:
            raise MemoryError(f"fastbook: cannot allocate {capacity} orders "
                              f"(at most {_MAX_ORDERS})")

    # -- L2 reads (as fastbook.Book) -------------------------------------------
    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def best_bid(self):
        """``(price, qty)`` of the best bid, or None when there are no bids."""
        return _best_level(self, FB_BID)

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def best_ask(self):
        """``(price, qty)`` of the best ask, or None when there are no asks."""
        return _best_level(self, FB_ASK)

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def bbo(self):
        """``(bid_price, bid_qty, ask_price, ask_qty)``; None for an empty side's pair."""
        _readable(self)
        cdef int64_t bp = 0, bq = 0, ap = 0, aq = 0
        cdef bint hb = fb_l3_best(&self._book, FB_BID, &bp, &bq)
        cdef bint ha = fb_l3_best(&self._book, FB_ASK, &ap, &aq)
        if hb and ha:
            return (bp, bq, ap, aq)
        return (bp if hb else None, bq if hb else None,
                ap if ha else None, aq if ha else None)

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def spread(self):
        """Best ask minus best bid (an int), or None when a side is empty."""
        _readable(self)
        cdef int64_t bp, bq, ap, aq
        if fb_l3_best(&self._book, FB_BID, &bp, &bq) and \
                fb_l3_best(&self._book, FB_ASK, &ap, &aq):
            return <object>ap - <object>bp
        return None

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def mid(self):
        """Mid price ``(bid + ask) // 2`` as an int (floor), or None when a side is empty."""
        _readable(self)
        cdef int64_t bp, bq, ap, aq
        if fb_l3_best(&self._book, FB_BID, &bp, &bq) and \
                fb_l3_best(&self._book, FB_ASK, &ap, &aq):
            return (<object>ap + <object>bp) // 2
        return None

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def qty_at(self, side, price):
        """Quantity resting at ``price`` on ``side`` (0 when there is no level)."""
        _readable(self)
        cdef int sd = valid_side(side)
        return fb_l3_qty_at(&self._book, sd, as_i64(price, "price"))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def depth(self, side):
        """Number of price levels on ``side``."""
        _readable(self)
        return fb_l3_depth(&self._book, valid_side(side))

    def is_crossed(self):
        """True when best bid >= best ask (crossed or locked)."""
        _readable(self)
        cdef int64_t bp, bq, ap, aq
        return bool(fb_l3_best(&self._book, FB_BID, &bp, &bq)
                    and fb_l3_best(&self._book, FB_ASK, &ap, &aq) and bp >= ap)

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def top(self, n, out=None):
        """The best ``n`` levels as an ``int64`` array of shape ``(4, n)``, exactly as ``Book.top``.

        Rows are ``[bid_prices, bid_qtys, ask_prices, ask_qtys]``, best first;
        missing levels are 0. ``out`` (a writeable C-contiguous int64 ``(4, n)``
        array) is filled and returned without allocating.
        """
        _readable(self)
        cdef cnp.ndarray a = top_array(n, out)
        cdef int64_t *base
        cdef Py_ssize_t count = cnp.PyArray_DIMS(a)[1]
        base = <int64_t *>cnp.PyArray_DATA(a)
        fb_l3_top(&self._book, count, base, base + count, base + 2 * count, base + 3 * count)
        return a

    def to_arrays(self, side):
        """Every level of ``side``, best first, as ``(prices, qtys)`` int64 arrays (copies)."""
        _readable(self)
        cdef const fb_l3side *s
        cdef cnp.ndarray prices, qtys
        cdef int64_t *pp
        cdef int64_t *pq
        cdef Py_ssize_t i, n, top
        cdef int sd = valid_side(side)
        s = &self._book.sides[sd - 1]
        n = s.count
        prices = np.empty(n, dtype=np.int64)
        qtys = np.empty(n, dtype=np.int64)
        pp = <int64_t *>cnp.PyArray_DATA(prices)
        pq = <int64_t *>cnp.PyArray_DATA(qtys)
        top = n - 1
        for i in range(n):
            pp[i] = s.keys[top - i] if sd == FB_BID else -s.keys[top - i]
            pq[i] = s.levels[s.ids[top - i]].qty
        return prices, qtys

    def levels(self, side):
        """Iterate ``(price, qty)`` of ``side``, best first (RuntimeError if the book changes)."""
        _readable(self)
        cdef int sd = valid_side(side)
        cdef _LevelIterator it = _LevelIterator.__new__(_LevelIterator)
        it._owner = self
        it._side = sd
        it._i = 0
        it._version = self._book.version
        return it

    def __iter__(self):
        """Iterate ``(side, price, qty)``: all bids best first, then all asks best first."""
        for price, qty in self.levels(FB_BID):
            yield (BID, price, qty)
        for price, qty in self.levels(FB_ASK):
            yield (ASK, price, qty)

    def format_price(self, price, *, strip=False):
        """Format a fixed-point price as text at this book's scale."""
        return format_decimal(price, self._book.price_decimals, strip=strip)

    def format_qty(self, qty, *, strip=False):
        """Format a fixed-point quantity as text at this book's scale."""
        return format_decimal(qty, self._book.qty_decimals, strip=strip)

    def __repr__(self):
        _readable(self)
        cdef int64_t bp, bq, ap, aq
        bid = ask = "None"
        if fb_l3_best(&self._book, FB_BID, &bp, &bq):
            bid = f"{self.format_price(bp)} x {self.format_qty(bq, strip=True)}"
        if fb_l3_best(&self._book, FB_ASK, &ap, &aq):
            ask = f"{self.format_price(ap)} x {self.format_qty(aq, strip=True)}"
        return (f"<fastbook.OrderBook price_decimals={self._book.price_decimals} "
                f"qty_decimals={self._book.qty_decimals} orders={self._book.order_count} "
                f"bids={self._book.sides[0].count} asks={self._book.sides[1].count} "
                f"best_bid={bid} best_ask={ask}>")


# ===========================================================================
# BookSet
# ===========================================================================

_ACTION_NAMES = {1: "ADD", 2: "REDUCE", 3: "EXECUTE", 4: "DELETE", 5: "REPLACE",
                 6: "SET_LEVEL", 7: "CLEAR", 8: "TRADE", 9: "SNAPSHOT_BEGIN",
                 10: "SNAPSHOT_END", 11: "STATUS"}
_VERBS = {1: "add", 2: "reduce", 3: "execute", 4: "delete", 5: "replace"}


def _check_event_layout():
    # fb_event must be EVENT_DTYPE byte for byte: C reads the numpy records in place
    from fastbook.events import EVENT_DTYPE
    cdef fb_event e
    cdef char *base = <char *>&e
    offsets = {
        "ts_exchange": <char *>&e.ts_exchange - base, "ts_receive": <char *>&e.ts_receive - base,
        "instrument": <char *>&e.instrument - base, "action": <char *>&e.action - base,
        "side": <char *>&e.side - base, "flags": <char *>&e.flags - base,
        "price": <char *>&e.price - base, "qty": <char *>&e.qty - base,
        "order_id": <char *>&e.order_id - base, "new_order_id": <char *>&e.new_order_id - base,
        "sequence": <char *>&e.sequence - base,
    }
    assert EVENT_DTYPE.itemsize == sizeof(fb_event)
    for name, offset in offsets.items():
        assert EVENT_DTYPE.fields[name][1] == offset, name
    return EVENT_DTYPE


_EVENT_DTYPE = _check_event_layout()
#: Names of the error kinds a BookSet counts with ``on_error="skip"`` (its own plus the books').
BOOKSET_ERROR_KINDS = ERROR_KINDS + ("bad_instrument",)


cdef str _l2_message(int rc, int action, int side, int64_t price, int64_t qty, int64_t have):
    if rc == FB_ESIDE:
        return side_message(side)
    if rc == FB_EQTY:
        floor = 0 if action == FB_SET_LEVEL else 1
        return f"quantity must be >= {floor}, got {qty} (at price {price})"
    if rc == FB_EPRICE:
        return f"price {price} is INT64_MIN, which fastbook reserves for 'no price'"
    if rc == FB_EOVER_EXECUTE:
        return (f"cannot {_VERBS[action]} {qty} at price {price}: the level holds only "
                f"{have}")
    if rc == FB_EOVERFLOW:
        return f"cannot add {qty} at price {price}: the level quantity would overflow int64"
    return f"unexpected status {rc}"


cdef int _busy_error(_Guard guard) except -1:
    if guard.sets_busy or guard.books_busy:
        raise RuntimeError("a book of this BookSet is being modified in another thread "
                           "(by Book.apply, or by BookSet.apply of a set holding it)")
    if guard.read_only:
        raise RuntimeError("a book of this BookSet is read-only while another "
                           "BookSet.apply runs its callback")
    return 0


cdef int _merge_guards(_Guard into, _Guard other) except -1:
    """Make ``other``'s sets and their books use ``into`` (both groups are idle)."""
    cdef BookSet bs
    for ref in other.sets:
        bs = ref()
        if bs is None:
            continue
        bs._guard = into
        for book in bs._books:
            bs._join(book)
        into.sets.append(ref)
    other.sets = []
    return 0


cdef class BookSet:
    """Many books, indexed by a dense instrument id, updated by whole event arrays.

    Each instrument has a book (an L3 :class:`OrderBook` or an L2
    :class:`fastbook.Book`) and metadata (symbol, venue, decimals, tick and lot
    size). :meth:`apply` routes every event of a
    :data:`fastbook.events.EVENT_DTYPE` array to its instrument's book in one
    C loop, without the GIL for large batches.

    Parameters
    ----------
    on_error : {"raise", "skip", "stop"}
        ``"raise"``: a batch is all-or-nothing; the first failing event raises
        ``fastbook.UpdateError`` (with its ``index``) and every book is left as
        it was before the batch. ``"skip"``: failing events are counted by
        instrument and kind (``errors``, ``instrument_errors``) and skipped.
        ``"stop"``: the first failing event raises ``UpdateError`` too, but the
        events before it stay applied (no undo journal, so it is the cheapest
        mode): the books stand exactly as of that event. ``fastbook.replay``
        uses it, since its batches are only a buffer size.

    Examples
    --------
    >>> from fastbook.l3 import BookSet
    >>> from fastbook.events import events_from_records
    >>> bs = BookSet()
    >>> bs.add_instrument("AAPL", venue="XNAS", price_decimals=4, tick_size=100)
    0
    >>> bs.apply(events_from_records([
    ...     {"action": "add", "side": 1, "price": 5853300, "qty": 18, "order_id": 7},
    ...     {"action": "execute", "order_id": 7, "qty": 5},
    ... ]))
    2
    >>> bs[0].best_bid()
    (5853300, 13)
    """

    cdef fb_bookset _bs
    cdef Py_ssize_t _capacity
    cdef list _books
    cdef set _members           # id() of every book in _books
    cdef list _meta
    cdef dict _index
    cdef bint _skip
    cdef bint _stop             # on_error="stop": no journal, no rollback
    cdef bint _busy             # apply runs without the GIL (another thread may call)
    cdef bint _applying         # apply runs (its callback may call): see _check_idle
    cdef _Guard _guard          # shared with its books (and sets sharing a book with it)
    cdef object __weakref__

    def __cinit__(self, *, on_error="raise"):
        if on_error != "raise" and on_error != "skip" and on_error != "stop":
            raise ValueError(f"on_error must be 'raise', 'skip' or 'stop', got {on_error!r}")
        self._skip = on_error == "skip"
        self._stop = on_error == "stop"
        self._guard = _Guard()
        self._guard.sets.append(weakref.ref(self))
        self._books = []
        self._members = set()
        self._meta = []
        self._index = {}
        self._bs.count = 0
        self._bs.kinds = NULL
        self._bs.books = NULL
        self._bs.errors = NULL
        self._bs.bad_instrument = 0
        self._bs.undo = NULL
        self._bs.undo_capacity = 0
        self._capacity = 0

    def __dealloc__(self):
        fb_bookset_free(&self._bs)

    cdef int _grow(self) except -1:
        cdef Py_ssize_t cap = self._capacity * 2 if self._capacity >= 16 else 16
        cdef uint8_t *kinds
        cdef void **books
        cdef uint64_t *errors
        if cap >= (<Py_ssize_t>1 << 32):
            raise OverflowError("a BookSet holds at most 2**32 instruments")
        kinds = <uint8_t *>realloc(self._bs.kinds, <size_t>cap)
        if kinds == NULL:
            raise MemoryError()
        self._bs.kinds = kinds
        books = <void **>realloc(self._bs.books, <size_t>cap * sizeof(void *))
        if books == NULL:
            raise MemoryError()
        self._bs.books = books
        errors = <uint64_t *>realloc(self._bs.errors,
                                     <size_t>cap * FB_ERR_KINDS * sizeof(uint64_t))
        if errors == NULL:
            raise MemoryError()
        self._bs.errors = errors
        self._capacity = cap
        return 0

    def add_book(self, book, *, symbol, venue="", tick_size=1, lot_size=1):
        """Add an existing book as the next instrument; returns its instrument id.

        ``book`` is a :class:`OrderBook` (L3) or a :class:`fastbook.Book` (L2)
        and is shared, not copied. ``(symbol, venue)`` must be new to the set.
        ``tick_size`` and ``lot_size`` are fixed-point integers at the book's
        scales (metadata for consumers; ``apply`` does not enforce them).
        """
        cdef Py_ssize_t i = self._bs.count
        cdef uint8_t kind
        cdef _Guard theirs
        cdef bint merge
        self._check_idle("add instruments")
        if isinstance(book, OrderBook):
            kind = FB_KIND_L3
            theirs = (<OrderBook>book)._guard
        elif isinstance(book, Book):
            kind = FB_KIND_L2
            theirs = (<Book>book)._guard
            if (<Book>book)._busy:
                raise RuntimeError(f"the book is being modified by Book.apply in another "
                                   f"thread ({book!r})")
        else:
            raise TypeError(f"book must be a fastbook.l3.OrderBook or a fastbook.Book, "
                            f"got {type(book).__name__}")
        # a book already in another set: from now on the two groups are one (both idle)
        merge = theirs is not self._guard and theirs is not solo_guard()
        if merge:
            _busy_error(theirs)
            self._check_not_busy()
        meta = instrument_meta(book, "l3" if kind == FB_KIND_L3 else "l2", symbol=symbol,
                               venue=venue, tick_size=tick_size, lot_size=lot_size,
                               index=self._index, members=self._members)
        if i == self._capacity:
            self._grow()
        self._bs.kinds[i] = kind
        if kind == FB_KIND_L3:
            self._bs.books[i] = <void *>&(<OrderBook>book)._book
        else:
            self._bs.books[i] = <void *>&(<Book>book)._book
        memset(&self._bs.errors[i * FB_ERR_KINDS], 0, FB_ERR_KINDS * sizeof(uint64_t))
        if merge:
            _merge_guards(self._guard, theirs)
        self._join(book)
        self._books.append(book)
        self._members.add(id(book))
        self._meta.append(meta)
        self._index[(symbol, venue)] = i
        self._bs.count = i + 1
        return i

    def add_instrument(self, symbol, *, kind="l3", venue="", price_decimals, qty_decimals=0,
                       tick_size=1, lot_size=1, capacity=256, order_capacity=1024,
                       side_keys=False):
        """Create a book for a new instrument and add it; returns its instrument id.

        ``kind`` is ``"l3"`` (an :class:`OrderBook` with ``capacity`` level and
        ``order_capacity`` order slots, keyed by (side, id) when ``side_keys``)
        or ``"l2"`` (a :class:`fastbook.Book` with ``capacity`` level slots).
        """
        if kind == "l3":
            book = OrderBook(price_decimals=price_decimals, qty_decimals=qty_decimals,
                             capacity=capacity, order_capacity=order_capacity,
                             side_keys=side_keys)
        elif kind == "l2":
            book = Book(price_decimals=price_decimals, qty_decimals=qty_decimals,
                        capacity=capacity)
        else:
            raise ValueError(f"kind must be 'l3' or 'l2', got {kind!r}")
        return self.add_book(book, symbol=symbol, venue=venue, tick_size=tick_size,
                             lot_size=lot_size)

    def __len__(self):
        return self._bs.count

    def __getitem__(self, instrument):
        """The book of ``instrument`` (an id from ``add_book`` / ``add_instrument``)."""
        return self._books[self._check_id(instrument)]

    cdef Py_ssize_t _check_id(self, object instrument) except -1:
        if not isinstance(instrument, int) or isinstance(instrument, bool) \
                or not 0 <= instrument < self._bs.count:
            raise IndexError(f"instrument must be an id from 0 to {self._bs.count - 1}, "
                             f"got {instrument!r}")
        return instrument

    def instrument(self, instrument):
        """Metadata of ``instrument``: symbol, venue, kind, decimals, tick and lot size."""
        return dict(self._meta[self._check_id(instrument)])

    def find(self, symbol, venue=""):
        """The id of ``(symbol, venue)``; KeyError when it is not in the set."""
        try:
            return self._index[(symbol, venue)]
        except KeyError:
            raise KeyError(f"no instrument {symbol!r} on venue {venue!r} in this BookSet") \
                from None

    @property
    def on_error(self):
        """``"raise"``, ``"skip"`` or ``"stop"``."""
        return "skip" if self._skip else "stop" if self._stop else "raise"

    @property
    def errors(self):
        """Events skipped in skip mode, by kind, summed over instruments (a new dict)."""
        cdef Py_ssize_t i
        cdef int k
        out = dict.fromkeys(BOOKSET_ERROR_KINDS, 0)
        for i in range(self._bs.count):
            for k in range(FB_ERR_KINDS):
                out[ERROR_KINDS[k]] += self._bs.errors[i * FB_ERR_KINDS + k]
        out["bad_instrument"] = self._bs.bad_instrument
        return out

    def instrument_errors(self, instrument):
        """Events of ``instrument`` skipped in skip mode, by kind (a new dict)."""
        cdef Py_ssize_t i = self._check_id(instrument)
        cdef int k
        return {ERROR_KINDS[k]: self._bs.errors[i * FB_ERR_KINDS + k]
                for k in range(FB_ERR_KINDS)}

    def reset_errors(self):
        """Set every skip-mode counter back to 0."""
        if self._bs.count:
            memset(self._bs.errors, 0, <size_t>self._bs.count * FB_ERR_KINDS * sizeof(uint64_t))
        self._bs.bad_instrument = 0

    def apply(self, events, *, sampler=None, callback=None):
        """Apply an event array in order, each event to its instrument's book.

        Parameters
        ----------
        events : numpy.ndarray of fastbook.events.EVENT_DTYPE
            1-dimensional and C-contiguous; read in place, never copied.
        sampler : fastbook.sampling.Sampler, optional
            Takes top-of-book rows by its rules while the events are applied,
            in the same C loop (no Python call per event). In raise mode a
            failed batch also takes back the rows it wrote (stop mode keeps the
            rows of the events it applied).
        callback : callable, optional
            The slow, flexible path: ``callback(index, instrument)`` is called
            from Python after every applied event (skipped events excluded),
            with the GIL held throughout. If it raises, apply stops and the
            exception propagates: in raise mode every book (and sampler) is
            back as before the call; in skip and stop modes the events up to and
            including ``index`` stay applied. The callback may read the books
            (and reserve room in them) but not change them: while it runs, every
            update of a book of the set raises RuntimeError, and so do adding
            instruments to the set, clearing it and applying to it (or to another
            set sharing one of its books). Sets linked by shared books count as
            one here: the books of all of them are read-only.

        Returns
        -------
        int
            The number of events applied (in skip mode, without the skipped ones).

        Raises
        ------
        fastbook.UpdateError
            Raise mode: the first event that cannot be applied (unknown order
            id, duplicate, over-execution, bad side/quantity/price, an action
            the book's kind does not support, an instrument not in the set).
            Its ``index`` is the event's position and every book is exactly as
            before the call (capacities may have grown). Stop mode: the same
            error, with every event before ``index`` applied.
        fastbook.ArrayError
            ``events`` is not a suitable array (nothing changed).
        MemoryError
            A book or the undo journal could not grow (raise mode: rolled back;
            skip and stop modes: the events before the one named were applied).
        """
        cdef cnp.ndarray arr
        cdef const fb_event *ev
        cdef Py_ssize_t n, done = 0, skipped = 0
        cdef int64_t detail = 0
        cdef int rc
        cdef bint release
        cdef int mode = _MODE_SKIP if self._skip else _MODE_STOP if self._stop else _MODE_RAISE
        cdef _sampler samp
        cdef _sampler *sp = NULL
        cdef _callback cb
        cdef _callback *cbp = NULL
        cdef _Guard guard
        self._check_idle("apply events")
        self._check_not_busy()
        if not cnp.PyArray_Check(events) or events.dtype != _EVENT_DTYPE \
                or cnp.PyArray_NDIM(<cnp.ndarray>events) != 1 \
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>events):
            from fastbook.events import check_events
            check_events(events)
        arr = <cnp.ndarray>events
        n = cnp.PyArray_DIMS(arr)[0]
        ev = <const fb_event *>cnp.PyArray_DATA(arr)
        saved = None
        if sampler is not None or callback is not None:
            from fastbook.sampling import check_sampler
            sampler = check_sampler(sampler, callback)
        if sampler is not None:
            sampler._prepare(self)
            _sampler_bind(&samp, sampler)
            sp = &samp
            if mode == _MODE_RAISE:
                saved = sampler._save()
        if callback is not None:
            cb.fn = <PyObject *>callback
            cb.error = NULL
            cbp = &cb
        release = n >= 256 and cbp == NULL
        if sampler is not None:
            sampler._busy = True
        # the callback runs Python code: it may read the books but not change them, nor
        # this set's instruments (a sampler's state is sized to them)
        # (one flag for all the books, whatever their number: the guard they share)
        guard = self._guard
        self._applying = True
        if cbp != NULL:
            guard.read_only += 1
        try:
            if release:
                self._busy = True
                guard.sets_busy += 1
                try:
                    with nogil:
                        rc = _bookset_run(&self._bs, ev, n, mode, &done, &skipped,
                                          &detail, sp, cbp)
                finally:
                    guard.sets_busy -= 1
                    self._busy = False
            else:
                rc = _bookset_run(&self._bs, ev, n, mode, &done, &skipped, &detail,
                                  sp, cbp)
        finally:
            self._applying = False
            if cbp != NULL:
                guard.read_only -= 1
            if sampler is not None:
                sampler._busy = False
                sampler._count = samp.count
        if rc < 0 and saved is not None:
            sampler._restore(saved)
        if rc == _ECALLBACK:
            error = <object>cb.error
            Py_DECREF(error)   # the reference _invoke took
            raise error
        if rc == FB_ENOMEM:
            if mode != _MODE_RAISE:
                raise MemoryError(f"fastbook: cannot grow a book at event {done}; the events "
                                  f"before it were applied")
            raise MemoryError(f"fastbook: cannot grow a book at event {done}; nothing was "
                              f"applied")
        if rc < 0:
            raise UpdateError(f"event {done}: {self._message(rc, &ev[done], detail)}", done)
        return n - skipped

    cdef str _message(self, int rc, const fb_event *e, int64_t detail):
        cdef int a = e.action
        cdef uint32_t inst = e.instrument
        cdef str where
        if rc == FB_EINSTRUMENT:
            return (f"instrument {inst} is not in this BookSet "
                    f"(it has {self._bs.count} instruments)")
        meta = self._meta[inst]
        where = f" (instrument {inst}, {meta['symbol']!r})"
        if rc == FB_EACTION:
            if a in _ACTION_NAMES:
                need = "an L3 book" if a == FB_REPLACE else "an L2 book"
                return f"{_ACTION_NAMES[a]} needs {need}{where}"
            return f"action {a} is not a fastbook.events.Action{where}"
        if self._bs.kinds[inst] == FB_KIND_L3:
            return _l3_message(rc, _VERBS[a], e.order_id, e.side, e.price, e.qty,
                               e.new_order_id, detail) + where
        return _l2_message(rc, a, e.side, e.price, e.qty, detail) + where

    cdef int _check_idle(self, str what) except -1:
        if self._busy:
            raise RuntimeError("BookSet.apply is running in another thread")
        if self._applying:
            raise RuntimeError(f"BookSet.apply is running: its callback cannot {what}")
        return 0

    cdef int _check_not_busy(self) except -1:
        # the books of this set (and of every set sharing one) are free to be applied
        return _busy_error(self._guard)

    cdef int _join(self, object book) except -1:
        if isinstance(book, OrderBook):
            (<OrderBook>book)._guard = self._guard
        else:
            (<Book>book)._guard = self._guard
        return 0

    def _would_prefetch(self):
        """Private: whether ``apply`` would run its prefetch pipeline now (tests)."""
        return _prefetch_pays(&self._bs)

    def clear(self):
        """Clear every book of the set (instruments, metadata and error counters are kept)."""
        cdef Py_ssize_t i
        self._check_idle("clear the books")
        self._check_not_busy()
        for i in range(self._bs.count):
            if self._bs.kinds[i] == FB_KIND_L3:
                fb_l3_clear(<fb_l3book *>self._bs.books[i])
            else:
                fb_book_clear(<fb_book *>self._bs.books[i])

    @property
    def books(self):
        """The books, in instrument order (a new list)."""
        return list(self._books)

    def __repr__(self):
        return f"<fastbook.BookSet instruments={self._bs.count} on_error={self.on_error!r}>"
