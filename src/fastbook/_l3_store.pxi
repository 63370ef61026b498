# Part of fastbook._l3, included by _l3.pyx (one extension, so the batch loop inlines
# the book updates): the order store: the hash table, levels, lifecycle, updates
# and reads of one fb_l3book.

cdef extern from *:
    # Fibonacci hashing's multiplier, as a C constant (a module global would be
    # loaded from memory on every probe)
    const uint64_t _FIB "0x9E3779B97F4A7C15ULL"


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


cdef inline int32_t _probe(const fb_l3book *book, uint64_t order_id, int side,
                           Py_ssize_t *slot) noexcept nogil:
    """Pool index of the live order ``(order_id, side)`` or FB_NIL, and in ``slot`` the
    slot of the match (or the empty slot ending the probe)."""
    cdef Py_ssize_t mask = (<Py_ssize_t>1 << book.slot_bits) - 1
    cdef Py_ssize_t i = _home(book, order_id, side)
    cdef int32_t s
    while True:
        s = book.slots[i]
        if s == FB_NIL or _is(book, s, order_id, side):
            slot[0] = i
            return s
        i = (i + 1) & mask


cdef int32_t fb_l3_find(const fb_l3book *book, uint64_t order_id, int side) noexcept nogil:
    """Pool index of the live order ``(order_id, side)``, or FB_NIL."""
    cdef Py_ssize_t slot
    return _probe(book, order_id, side, &slot)


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


cdef inline int32_t _level_at(const fb_l3side *s, Py_ssize_t pos, int64_t key) noexcept nogil:
    # the level record holding ``key`` if index position ``pos`` (its lower_bound) has
    # it, else FB_NIL (``key`` would be inserted at ``pos``)
    return s.ids[pos] if pos < s.count and s.keys[pos] == key else FB_NIL


cdef inline int32_t _find_level(const fb_l3side *s, int64_t key) noexcept nogil:
    # the level record holding ``key``, or FB_NIL
    return _level_at(s, lower_bound(s.keys, s.count, key), key)


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
    cdef Py_ssize_t pos = lower_bound(s.keys, s.count, s.levels[lid].key), k
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

cdef inline void _side_reset(fb_l3side *side) noexcept nogil:
    # an empty side that owns no arrays (none yet, or they were just freed)
    side.keys = NULL
    side.ids = NULL
    side.levels = NULL
    side.count = 0
    side.capacity = 0
    side.best = FB_NIL


cdef inline void _pool_reset(fb_l3book *book) noexcept nogil:
    # no order pool and no hash table (none yet, or they were just freed)
    book.orders = NULL
    book.slots = NULL
    book.order_capacity = 0
    book.order_count = 0
    book.pool_top = 0
    book.free_head = FB_NIL


cdef int fb_l3_init(fb_l3book *book, int price_decimals, int qty_decimals,
                    Py_ssize_t level_capacity, Py_ssize_t order_capacity) noexcept nogil:
    """Initialise ``book`` (its contents are overwritten); free it with fb_l3_free."""
    cdef int rc, s, k
    if price_decimals < 0 or price_decimals > 18 or qty_decimals < 0 or qty_decimals > 18:
        return FB_EDECIMALS
    for s in range(2):
        _side_reset(&book.sides[s])
    _pool_reset(book)
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
        _side_reset(&book.sides[s])
    free(book.orders)
    free(book.slots)
    _pool_reset(book)


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
    pos = lower_bound(s.keys, s.count, key)
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
    pos = lower_bound(s.keys, s.count, key)
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
    # The failures of _core (FB_ESIDE, FB_EQTY, FB_EPRICE: -2 to -4) and of the L3 book
    # (FB_EUNKNOWN_ORDER to FB_EACTION: -20 to -24) are two runs of consecutive codes,
    # counted by consecutive kinds in the same order (checked below, at import).
    if FB_EPRICE <= status <= FB_ESIDE:
        return FB_ERR_BAD_SIDE + (FB_ESIDE - status)
    if FB_EACTION <= status <= FB_EUNKNOWN_ORDER:
        return FB_ERR_UNKNOWN_ORDER + (FB_EUNKNOWN_ORDER - status)
    return -1


assert [_error_kind(rc) for rc in (
    FB_ESIDE, FB_EQTY, FB_EPRICE, FB_EUNKNOWN_ORDER, FB_EDUPLICATE_ORDER, FB_EOVER_EXECUTE,
    FB_EOVERFLOW, FB_EACTION, FB_OK, FB_ENOMEM, FB_EINSTRUMENT)] == [
    FB_ERR_BAD_SIDE, FB_ERR_BAD_QUANTITY, FB_ERR_BAD_PRICE, FB_ERR_UNKNOWN_ORDER,
    FB_ERR_DUPLICATE_ORDER, FB_ERR_OVER_EXECUTE, FB_ERR_OVERFLOW, FB_ERR_BAD_ACTION, -1, -1, -1]


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
    pos = lower_bound(s.keys, s.count, s.levels[book.orders[idx].level].key)
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
