# Part of fastbook._l3, included by _l3.pyx (one extension, so the batch loop inlines
# the book updates): BookSet, the Python face of fb_bookset.

# ===========================================================================
# BookSet
# ===========================================================================

_ACTION_NAMES = {FB_ADD: "ADD", FB_REDUCE: "REDUCE", FB_EXECUTE: "EXECUTE", FB_DELETE: "DELETE",
                 FB_REPLACE: "REPLACE", FB_SET_LEVEL: "SET_LEVEL", FB_CLEAR: "CLEAR",
                 FB_TRADE: "TRADE", FB_SNAPSHOT_BEGIN: "SNAPSHOT_BEGIN",
                 FB_SNAPSHOT_END: "SNAPSHOT_END", FB_STATUS: "STATUS"}
_VERBS = {FB_ADD: "add", FB_REDUCE: "reduce", FB_EXECUTE: "execute", FB_DELETE: "delete",
          FB_REPLACE: "replace"}


def _check_event_layout():
    # fb_event must be EVENT_DTYPE byte for byte: C reads the numpy records in place; and
    # the codes of _events.pxd must be those of fastbook.events (the kernels use them too)
    from fastbook.events import EVENT_DTYPE, Action, Flags
    flags = (FB_FLAG_LAST_IN_PACKET, FB_FLAG_SNAPSHOT, FB_FLAG_HIDDEN, FB_FLAG_CROSS,
             FB_FLAG_HALTED, FB_FLAG_QUOTING, FB_FLAG_AGGRESSOR_BUY, FB_FLAG_AGGRESSOR_SELL,
             FB_FLAG_NON_PRINTABLE, FB_FLAG_KEEP_PRIORITY)
    assert _ACTION_NAMES == {int(a): a.name for a in Action.__members__.values()}
    assert flags == tuple(int(f) for f in Flags.__members__.values() if f)
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


cdef inline bint _own_range_hit(const int64_t *lv, int side, int64_t price, bint trade,
                                bint adds) noexcept nogil:
    # BookSet._advance: can an event at (side, price) touch the own orders of ``lv``
    # (lowest and highest own bid, then ask)? At an own price's range of its side; a
    # trade worse than the best own order of its side; quantity added, or a trade, on the
    # other side at a price crossing an own order.
    if side == FB_BID:
        if lv[0] <= lv[1] and (lv[0] <= price <= lv[1] or (trade and price < lv[1])):
            return True
        return (adds or trade) and lv[2] <= lv[3] and price >= lv[2]
    if side == FB_ASK:
        if lv[2] <= lv[3] and (lv[2] <= price <= lv[3] or (trade and price > lv[2])):
            return True
        return (adds or trade) and lv[0] <= lv[1] and price <= lv[1]
    return False


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

    def add_book(self, book, /, *, symbol, venue="", tick_size=1, lot_size=1):
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

    def add_instrument(self, symbol, /, *, kind="l3", venue="", price_decimals, qty_decimals=0,
                       tick_size=1, lot_size=1, capacity=256, order_capacity=1024,
                       side_keys=False):
        """Create a book for a new instrument and add it; returns its instrument id.

        ``kind`` is ``"l3"`` (an :class:`OrderBook` with ``capacity`` level and
        ``order_capacity`` order slots, keyed by (side, id) when ``side_keys``)
        or ``"l2"`` (a :class:`fastbook.Book` with ``capacity`` level slots).
        """
        book = new_book(kind, Book, OrderBook, price_decimals=price_decimals,
                        qty_decimals=qty_decimals, capacity=capacity,
                        order_capacity=order_capacity, side_keys=side_keys)
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

    def instrument(self, instrument, /):
        """Metadata of ``instrument``: symbol, venue, kind, decimals, tick and lot size."""
        return dict(self._meta[self._check_id(instrument)])

    def find(self, symbol, /, venue=""):
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

    def instrument_errors(self, instrument, /):
        """Events of ``instrument`` skipped in skip mode, by kind (a new dict)."""
        cdef Py_ssize_t i = self._check_id(instrument)
        cdef int k
        return {ERROR_KINDS[k]: self._bs.errors[i * FB_ERR_KINDS + k]
                for k in range(FB_ERR_KINDS)}

    def _restore_errors(self, instrument, counts, /, bad_instrument=0):
        """Add ``counts`` (kind -> events, as ``instrument_errors`` gives them) to the
        skip-mode counters of ``instrument``, and ``bad_instrument`` to the set's: the
        counts of a book replayed elsewhere (a parallel replay's worker)."""
        cdef Py_ssize_t i = self._check_id(instrument)
        cdef int k
        for k in range(FB_ERR_KINDS):
            self._bs.errors[i * FB_ERR_KINDS + k] += <uint64_t>counts.get(ERROR_KINDS[k], 0)
        self._bs.bad_instrument += <uint64_t>bad_instrument

    def reset_errors(self):
        """Set every skip-mode counter back to 0."""
        if self._bs.count:
            memset(self._bs.errors, 0, <size_t>self._bs.count * FB_ERR_KINDS * sizeof(uint64_t))
        self._bs.bad_instrument = 0

    def apply(self, events, /, *, sampler=None, callback=None):
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
            memset(&samp, 0, sizeof(samp))
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
                sampler._tcount = samp.feat.tcount
                _features_free(&samp.feat)
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

    def _advance(self, events, Py_ssize_t start, Py_ssize_t end, watch, levels,
                 int64_t wake):
        """Apply ``events[start:end]`` until the backtester must look (``fastbook.backtest``).

        The compiled loop between a strategy's callbacks. ``watch`` (uint8, one
        entry per instrument, shorter means 0) has bits 1: stop *after* an event
        that changed the instrument's best bid or ask (price or quantity); 2: stop
        *before* an EXECUTE or TRADE; 4: stop after every event; 8: stop before
        an event that can touch the own orders whose price ranges ``levels``
        (int64, 4 per instrument: lowest and highest own bid, lowest and highest
        own ask; an empty side has lowest > highest) holds. An event touches them
        when it is at a price in a range of its side (an L3 REDUCE, EXECUTE,
        DELETE or REPLACE is placed at its order's side and price, read from the
        book), when it is an EXECUTE or TRADE at a price worse than the best own
        order of its side, or when it adds quantity (ADD, SET_LEVEL, REPLACE) or
        trades on the other side at a price that crosses an own order (an L2
        queue counts such a trade as one through the own order); with bit 8 every
        CLEAR, SNAPSHOT_BEGIN, SNAPSHOT_END and STATUS stops too. Stopping more
        often than needed is allowed; missing an event is not. The checks run in
        the order 2, 8, then 4 or 1. Before every event, an exchange time
        ``ts_exchange >= wake`` stops too.

        Returns ``(index, reason, ts, instrument, latest)``: reason 0, all applied
        (index = end, ts and instrument 0); 1, the wake time (events[index] not
        applied); 2, a watched event (not applied); 3, bit 4, or bit 1 and the best
        prices changed (events[index - 1] applied). ``ts`` and ``instrument`` are the
        event's (the applied one for reason 3); ``latest`` is the latest
        ``ts_exchange`` of the events this call applied (INT64_MIN: none), the
        engine's clock. Failures are counted and skipped in skip mode; otherwise the
        failing event raises ``UpdateError`` with its index, the events before it
        applied (as stop mode).
        """
        cdef cnp.ndarray arr
        cdef const fb_event *ev
        cdef const fb_event *e
        cdef const uint8_t *w = NULL
        cdef const int64_t *lv = NULL
        cdef Py_ssize_t nw = 0, n, i
        cdef uint32_t inst
        cdef int bits, a, side, rc
        cdef int64_t price, b0p = 0, b0q = 0, a0p = 0, a0q = 0, b1p = 0, b1q = 0, a1p = 0
        cdef int64_t a1q = 0, detail, tmax = INT64_MIN
        cdef bint hb0, ha0, hb1, ha1, adds, handled
        cdef int32_t idx
        cdef fb_l3book *l3
        cdef fb_book *l2
        cdef cnp.ndarray wa, la
        cdef _lean_stop kind = _lean_stop(0)
        self._check_idle("apply events")
        self._check_not_busy()
        if not cnp.PyArray_Check(events) or events.dtype != _EVENT_DTYPE \
                or cnp.PyArray_NDIM(<cnp.ndarray>events) != 1 \
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>events):
            from fastbook.events import check_events
            check_events(events)
        arr = <cnp.ndarray>events
        n = cnp.PyArray_DIMS(arr)[0]
        if start < 0 or end > n or start > end:
            raise IndexError(f"_advance: events[{start}:{end}] is not within {n} events")
        # the engine passes the same arrays on every call: take them as they are
        wa = watch if cnp.PyArray_Check(watch) and watch.dtype == np.uint8 \
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>watch) \
            else np.ascontiguousarray(watch, dtype=np.uint8)
        la = levels if cnp.PyArray_Check(levels) and levels.dtype == np.int64 \
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>levels) \
            else np.ascontiguousarray(levels, dtype=np.int64)
        nw = cnp.PyArray_SIZE(wa)
        if cnp.PyArray_SIZE(la) < 4 * nw:
            raise ValueError("_advance: levels needs 4 entries per watched instrument")
        w = <const uint8_t *>cnp.PyArray_DATA(wa)
        lv = <const int64_t *>cnp.PyArray_DATA(la)
        ev = <const fb_event *>cnp.PyArray_DATA(arr)
        self._applying = True
        try:
            for i in range(start, end):
                e = &ev[i]
                if e.ts_exchange >= wake:
                    return i, 1, e.ts_exchange, e.instrument, tmax
                inst = e.instrument
                bits = w[inst] if inst < nw else 0
                handled = False
                if inst >= self._bs.count:
                    rc = FB_EINSTRUMENT
                else:
                    if bits:
                        a = e.action
                        if (bits & 2) and (a == FB_EXECUTE or a == FB_TRADE):
                            return i, 2, e.ts_exchange, inst, tmax
                        if bits & 8:
                            side = e.side
                            price = e.price
                            if self._bs.kinds[inst] == FB_KIND_L3 and (
                                    a == FB_REDUCE or a == FB_EXECUTE or a == FB_DELETE
                                    or a == FB_REPLACE):
                                l3 = <fb_l3book *>self._bs.books[inst]
                                idx = fb_l3_find(l3, e.order_id, e.side)
                                if idx != FB_NIL:
                                    side = l3.orders[idx].side
                                    price = l3.sides[side - 1].levels[l3.orders[idx].level].key
                                    if side == FB_ASK:
                                        price = -price
                                    if a == FB_REPLACE and _own_range_hit(
                                            lv + 4 * inst, side, e.price, 0, 1):
                                        return i, 2, e.ts_exchange, inst, tmax
                            adds = a == FB_ADD or a == FB_SET_LEVEL or a == FB_REPLACE
                            if _own_range_hit(lv + 4 * inst, side, price,
                                              a == FB_EXECUTE or a == FB_TRADE, adds):
                                return i, 2, e.ts_exchange, inst, tmax
                            if a == FB_CLEAR or a == FB_SNAPSHOT_BEGIN \
                                    or a == FB_SNAPSHOT_END or a == FB_STATUS:
                                return i, 2, e.ts_exchange, inst, tmax
                        if bits & 4:
                            if self._bs.kinds[inst] == FB_KIND_L3:
                                rc = _l3_event(<fb_l3book *>self._bs.books[inst], e, NULL, inst,
                                               kind)
                            else:
                                rc = _l2_event(<fb_book *>self._bs.books[inst], e, NULL, inst,
                                               kind)
                            if rc >= 0:
                                if e.ts_exchange > tmax:
                                    tmax = e.ts_exchange
                                return i + 1, 3, e.ts_exchange, inst, tmax
                            handled = True
                        elif bits & 1:
                            if self._bs.kinds[inst] == FB_KIND_L3:
                                l3 = <fb_l3book *>self._bs.books[inst]
                                hb0 = fb_l3_best(l3, FB_BID, &b0p, &b0q)
                                ha0 = fb_l3_best(l3, FB_ASK, &a0p, &a0q)
                                rc = _l3_event(l3, e, NULL, inst, kind)
                                hb1 = fb_l3_best(l3, FB_BID, &b1p, &b1q)
                                ha1 = fb_l3_best(l3, FB_ASK, &a1p, &a1q)
                            else:
                                l2 = <fb_book *>self._bs.books[inst]
                                hb0 = fb_book_best(l2, FB_BID, &b0p, &b0q)
                                ha0 = fb_book_best(l2, FB_ASK, &a0p, &a0q)
                                rc = _l2_event(l2, e, NULL, inst, kind)
                                hb1 = fb_book_best(l2, FB_BID, &b1p, &b1q)
                                ha1 = fb_book_best(l2, FB_ASK, &a1p, &a1q)
                            if rc >= 0:
                                if e.ts_exchange > tmax:
                                    tmax = e.ts_exchange
                                if hb0 != hb1 or ha0 != ha1 or (hb0 and (
                                        b0p != b1p or b0q != b1q)) or (ha0 and (
                                        a0p != a1p or a0q != a1q)):
                                    return i + 1, 3, e.ts_exchange, inst, tmax
                                continue
                            handled = True      # failed: the book is unchanged
                    if not handled:
                        if self._bs.kinds[inst] == FB_KIND_L3:
                            rc = _l3_event(<fb_l3book *>self._bs.books[inst], e, NULL, inst,
                                           kind)
                        else:
                            rc = _l2_event(<fb_book *>self._bs.books[inst], e, NULL, inst,
                                           kind)
                if rc >= 0:
                    if e.ts_exchange > tmax:
                        tmax = e.ts_exchange
                    continue
                if rc == FB_ENOMEM:
                    raise MemoryError(f"fastbook: cannot grow a book at event {i}; the "
                                      f"events before it were applied")
                if self._skip:
                    if rc == FB_EINSTRUMENT:
                        self._bs.bad_instrument += 1
                    else:
                        _count(&self._bs, inst, rc)
                    continue
                detail = _failure_detail(&self._bs, e, rc)
                raise UpdateError(f"event {i}: {self._message(rc, e, detail)}", i)
        finally:
            self._applying = False
        return end, 0, 0, 0, tmax

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
