# Part of fastbook._l3, included by _l3.pyx (one extension, so the batch loop inlines
# the book updates): event batches over many books: the undo journal,
# L3 and L2 event application, the fused loop kinds and the batch loop (fb_bookset_apply).

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
    cdef Py_ssize_t pos = lower_bound(s.keys, s.count, key)
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


# The event loop (_run_events) and the event functions it calls are compiled five
# times: a lean version for each mode (skip, raise, stop) of a batch without sampler or
# callback, where those are constants and every test of them goes away, the general
# one, and the general one with a packet-mode sampler (Sampler(packets=True): the rules
# run at the events _sampler_mark_packets marked, so the general one tests nothing
# more). The ``kind`` argument only selects the version; each version is called from
# one place and inlined there.
ctypedef struct _lean_skip:
    char unused
ctypedef struct _lean_raise:
    char unused
ctypedef struct _lean_stop:
    char unused
ctypedef struct _general:
    char unused
ctypedef struct _packets:
    char unused
ctypedef fused _loop_kind:
    _lean_skip
    _lean_raise
    _lean_stop
    _general
    _packets


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
    cdef _packets packets = _packets(0)
    cdef int rc
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
    if samp != NULL and samp.packets:
        # packet mode: the rules run at each instrument's first / last event of a packet
        if _sampler_mark_packets(samp, bs, events, n) < 0:
            done[0] = 0
            skipped[0] = 0
            detail[0] = 0
            return FB_ENOMEM
        rc = _run_events(bs, events, n, mode, done, skipped, detail, samp, cb, packets)
        _sampler_unmark_packets(samp)
        return rc
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
    cdef const uint8_t *marks = NULL
    cdef _trade trade
    cdef bint traded = False
    cdef int ofi_sides = _OFI_BOTH
    if _loop_kind is _lean_skip:
        mode = _MODE_SKIP
    elif _loop_kind is _lean_raise:
        mode = _MODE_RAISE
    elif _loop_kind is _lean_stop:
        mode = _MODE_STOP
    if _loop_kind is _packets:
        marks = samp.marks
    elif _loop_kind is not _general:
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
            if _loop_kind is _packets:
                if (marks[i] & _MARK_FIRST) and _sample_before(samp, bs, e, inst) < 0:
                    rc = FB_ENOMEM
                    break
            elif samp != NULL and _sample_before(samp, bs, e, inst) < 0:
                rc = FB_ENOMEM
                break
            if _loop_kind is _packets or _loop_kind is _general:
                traded = samp != NULL and samp.flows and samp.selected[inst] \
                    and _feat_trade_of(&samp.feat, bs, e, inst, &trade)
            if _loop_kind is _general:
                # per event, OFI looks only at events that can change the top k levels
                # (packet mode looks at each packet's end, whatever its events)
                ofi_sides = _ofi_sides(&samp.feat, bs, e, inst) \
                    if samp != NULL and samp.feat.ofi_k and samp.selected[inst] else _OFI_BOTH
            if j != NULL and _journal_reserve(j) < 0:
                rc = FB_ENOMEM
                break
            if bs.kinds[inst] == FB_KIND_L3:
                rc = _l3_event(<fb_l3book *>bs.books[inst], e, j, inst, kind)
            else:
                rc = _l2_event(<fb_book *>bs.books[inst], e, j, inst, kind)
        if rc >= 0:
            # a failure after event i was applied: skip mode keeps it (done = i + 1)
            if _loop_kind is _packets or _loop_kind is _general:
                if samp != NULL and samp.flows and samp.selected[inst]:
                    if traded and _feat_trade_commit(&samp.feat, samp.owner, e, inst,
                                                     &trade) < 0:
                        rc = FB_ENOMEM
                        stop = i + (mode != _MODE_RAISE)
                        break
                    if samp.feat.ofi_k and _loop_kind is _general and ofi_sides:
                        _feat_ofi(&samp.feat, bs, e, inst, ofi_sides)
                    elif samp.feat.ofi_k and _loop_kind is _packets and (marks[i] & _MARK_LAST):
                        _feat_ofi(&samp.feat, bs, e, inst, _OFI_BOTH)
            if _loop_kind is _packets:
                if (marks[i] & _MARK_LAST) and _sample_after(samp, bs, e, inst) < 0:
                    rc = FB_ENOMEM
                    stop = i + (mode != _MODE_RAISE)
                    break
            elif samp != NULL and _sample_after(samp, bs, e, inst) < 0:
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
