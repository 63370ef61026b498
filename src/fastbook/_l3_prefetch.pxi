# Part of fastbook._l3, included by _l3.pyx (one extension, so the batch loop inlines
# the book updates): the prefetch pipeline of the batch loop in
# _l3_events.pxi.

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
    _prefetch_at(s.keys, s.count - TOP_WINDOW, sizeof(int64_t))
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
