# Part of fastbook._l3, included by _l3.pyx (one extension, so the batch loop inlines
# the book updates): samplers and per-event callbacks, called by the
# batch loop in _l3_events.pxi.

# ---------------------------------------------------------------------------
# Samplers and per-event callbacks (fastbook.sampling documents the rules)
# ---------------------------------------------------------------------------

cdef enum:
    _ECALLBACK = -100           # the per-event Python callback raised (see _callback.error)
    _REASON_EVERY = 1
    _REASON_INTERVAL = 2
    _REASON_BBO = 4
    _MARK_FIRST = 1             # packet mode: the instrument's first event in its packet
    _MARK_LAST = 2              # ... and its last


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
    bint packets                # rules per packet (_sampler_mark_packets) instead of per event
    uint8_t *marks              # packet mode: _MARK_FIRST | _MARK_LAST per event of the batch
    bint flows                  # events are looked at between rows (trades, OFI)
    _features feat              # feature columns and state (_l3_features.pxi)


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
    s.packets = sampler.packets
    s.marks = NULL
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
    s.flows = sampler._flows
    _features_bind(&s.feat, sampler)
    return 0


cdef int _sampler_grow(_sampler *s) noexcept with gil:
    # rare (the columns double): take the GIL, let numpy allocate, rebind
    cdef uint8_t *marks = s.marks
    sampler = <object>s.owner
    try:
        sampler._count = s.count
        sampler._tcount = s.feat.tcount
        sampler._grow(s.count + 1)
        _sampler_bind(s, sampler)
    except BaseException:
        return -1
    finally:
        s.marks = marks
    return 0


cdef inline void _sampler_unmark_packets(_sampler *s) noexcept nogil:
    free(s.marks)
    s.marks = NULL


cdef inline bint _ends_packet(const fb_event *events, Py_ssize_t i,
                              Py_ssize_t n) noexcept nogil:
    # the packet rules of fastbook.sampling (Sampler(packets=True))
    cdef uint8_t a = events[i].action
    if (events[i].flags & FB_FLAG_LAST_IN_PACKET) or a == FB_SNAPSHOT_END or a == FB_CLEAR \
            or i == n - 1:
        return True
    a = events[i + 1].action
    return a == FB_SNAPSHOT_BEGIN or a == FB_CLEAR


cdef int _sampler_mark_packets(_sampler *s, const fb_bookset *bs, const fb_event *events,
                               Py_ssize_t n) noexcept nogil:
    """Packet mode: mark each event that is its instrument's first or last in its packet.

    Two passes with a packet number per instrument (the last packet it was seen in),
    so a packet of any length and any number of instruments costs O(n).
    """
    cdef Py_ssize_t i
    cdef int64_t packet
    cdef uint32_t inst
    cdef size_t count = bs.count
    cdef int64_t *seen
    s.marks = <uint8_t *>malloc(<size_t>n if n > 0 else 1)
    seen = <int64_t *>malloc((count if count > 0 else 1) * sizeof(int64_t))
    if s.marks == NULL or seen == NULL:
        free(seen)
        _sampler_unmark_packets(s)
        return FB_ENOMEM
    memset(s.marks, 0, <size_t>n)
    memset(seen, 0, count * sizeof(int64_t))
    packet = 1
    for i in range(n):
        inst = events[i].instrument
        if inst < count and seen[inst] != packet:
            seen[inst] = packet
            s.marks[i] |= _MARK_FIRST
        if _ends_packet(events, i, n):
            packet += 1
    memset(seen, 0, count * sizeof(int64_t))
    packet = 0
    for i in range(n - 1, -1, -1):
        if _ends_packet(events, i, n):
            packet += 1
        inst = events[i].instrument
        if inst < count and seen[inst] != packet:
            seen[inst] = packet
            s.marks[i] |= _MARK_LAST
    free(seen)
    return FB_OK


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
    if s.feat.nfeat and _feat_row(&s.feat, bs, inst, r, s.bid_px + off, s.bid_qty + off,
                                  s.ask_px + off, s.ask_qty + off, s.depth) < 0:
        return FB_ENOMEM
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
