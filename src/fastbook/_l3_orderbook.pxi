# Part of fastbook._l3, included by _l3.pyx (one extension, so the batch loop inlines
# the book updates): OrderBook, the Python face of one fb_l3book.

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


cdef int orderbook_readable(OrderBook book) except -1:
    return _readable(book)


cdef int orderbook_writable(OrderBook book) except -1:
    return _writable(book)


cdef object _best_level(OrderBook book, int side):
    cdef int64_t p = 0, q = 0
    cdef bint has
    _readable(book)
    has = fb_l3_best(&book._book, side, &p, &q)
    return level_or_none(has, p, q)


cdef inline fb_bbo _bbo(const fb_l3book *book, bint both=False) noexcept nogil:
    # the best levels, for the builders of fastbook._reads (``both``: the ask only
    # matters when there is a bid, as for spread, mid and is_crossed)
    cdef fb_bbo t
    t.bid_price = t.bid_qty = t.ask_price = t.ask_qty = 0    # (read only where has_*)
    t.has_bid = fb_l3_best(book, FB_BID, &t.bid_price, &t.bid_qty)
    t.has_ask = (t.has_bid or not both) and fb_l3_best(book, FB_ASK, &t.ask_price, &t.ask_qty)
    return t


cdef inline object _take_call(OrderBook self, object order_id, object qty, object side,
                              bint execute):
    # OrderBook.execute (execute) and OrderBook.reduce (not execute)
    _writable(self)
    cdef uint64_t oid = as_u64(order_id, "order_id")
    cdef int64_t q = as_i64(qty, "qty")
    cdef int sd = as_side(side)
    cdef int rc = (fb_l3_execute(&self._book, oid, sd, q) if execute
                   else fb_l3_reduce(&self._book, oid, sd, q))
    if rc < 0:
        _fail(self, rc, "execute" if execute else "reduce", oid, side, 0, q, 0)
    return rc == FB_TOP_CHANGED


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


# ---------------------------------------------------------------------------
# Book state as data: OrderBook.orders(), _load_orders() and pickling
# ---------------------------------------------------------------------------

#: The record of ``OrderBook.orders()``: one resting order (side is BID 1 / ASK 2).
#: Aligned (32 bytes: 7 zero padding bytes after ``side``), as the C struct below.
ORDER_DTYPE = np.dtype([("order_id", np.uint64), ("side", np.uint8), ("price", np.int64),
                        ("qty", np.int64)], align=True)

_ORDER_COLUMNS = (("order_id", np.uint64), ("side", np.uint8), ("price", np.int64),
                  ("qty", np.int64))


ctypedef struct _order_row:
    # one ORDER_DTYPE record (the compiler pads side to 8 bytes, as numpy's align=True)
    uint64_t order_id
    uint8_t side
    int64_t price
    int64_t qty


assert ORDER_DTYPE.itemsize == sizeof(_order_row)


cdef Py_ssize_t _fill_orders(const fb_l3book *book, _order_row *out) noexcept nogil:
    """Write every live order in book order (bids best first, then asks best first, each
    level's queue oldest first) to ``out`` (order_count rows); returns the rows written."""
    cdef Py_ssize_t n = 0, i
    cdef int sd
    cdef const fb_l3side *s
    cdef int32_t idx
    cdef int64_t price
    for sd in range(2):
        s = &book.sides[sd]
        for i in range(s.count - 1, -1, -1):
            price = s.keys[i] if sd == 0 else -s.keys[i]
            idx = s.levels[s.ids[i]].head
            while idx != FB_NIL:
                out[n].order_id = book.orders[idx].order_id
                out[n].side = <uint8_t>(sd + 1)
                out[n].price = price
                out[n].qty = book.orders[idx].qty
                n += 1
                idx = book.orders[idx].next
    return n


def _order_columns(orders):
    """The four columns of an ``orders()``-like structured array, contiguous, as the C
    loader reads them (TypeError when it is not one)."""
    a = np.asarray(orders)
    names = a.dtype.names or ()
    if a.ndim != 1 or any(name not in names for name, _ in _ORDER_COLUMNS):
        raise TypeError("orders must be a 1-d structured array with fields order_id, side, "
                        f"price and qty (as OrderBook.orders() returns), got dtype {a.dtype} "
                        f"and shape {a.shape}")
    return tuple(np.ascontiguousarray(a[name], dtype=kind) for name, kind in _ORDER_COLUMNS)


cdef Py_ssize_t _misordered_row(const uint8_t *sides, const int64_t *prices,
                                Py_ssize_t n, bint *bad_side) noexcept nogil:
    """The first row that is not in book order (``bad_side``: its side is not BID or ASK),
    or -1: bids before asks, bid prices non-increasing, ask prices non-decreasing (so
    each level's orders are together)."""
    cdef Py_ssize_t i
    cdef int sd
    for i in range(n):
        sd = sides[i]
        if sd != FB_BID and sd != FB_ASK:
            bad_side[0] = True
            return i
        if i and (sd < sides[i - 1] or (
                sd == sides[i - 1] and (prices[i] > prices[i - 1] if sd == FB_BID
                                        else prices[i] < prices[i - 1]))):
            return i
    return -1


cdef int _load_rows(fb_l3book *book, const uint64_t *ids, const uint8_t *sides,
                    const int64_t *prices, const int64_t *qtys, Py_ssize_t n,
                    Py_ssize_t *bad) noexcept nogil:
    """Add rows in book order to an empty book, each side's levels worst first (so every new
    level goes to the top of the price index: no shifting) and each level's orders in queue
    order. Returns FB_OK, or the first failing add's status with ``bad`` its row."""
    cdef Py_ssize_t split = 0, lo, hi, start, end, i
    cdef int rc, part
    while split < n and sides[split] == FB_BID:
        split += 1
    for part in range(2):
        lo = 0 if part == 0 else split
        hi = split if part == 0 else n
        end = hi
        while end > lo:
            start = end - 1
            while start > lo and prices[start - 1] == prices[end - 1]:
                start -= 1
            for i in range(start, end):
                rc = fb_l3_add(book, ids[i], sides[i], prices[i], qtys[i])
                if rc < 0:
                    bad[0] = i
                    return rc
            end = start
    return FB_OK


def _rebuild_orderbook(price_decimals, qty_decimals, bid_capacity, ask_capacity,
                       order_capacity, side_keys, on_error, errors, orders):
    """Unpickle an OrderBook: its settings and capacities, its orders (one C pass), its
    error counters (in ERROR_KINDS order)."""
    cdef OrderBook book = OrderBook(price_decimals=price_decimals, qty_decimals=qty_decimals,
                                    capacity=0, order_capacity=order_capacity,
                                    on_error=on_error, side_keys=side_keys)
    cdef int k
    counts = tuple(errors)
    if len(counts) != FB_ERR_KINDS:
        raise ValueError(f"errors must have {FB_ERR_KINDS} counters "
                         f"(fastbook.l3.ERROR_KINDS), got {len(counts)}")
    if bid_capacity:
        book.reserve(FB_BID, bid_capacity)
    if ask_capacity:
        book.reserve(FB_ASK, ask_capacity)
    book._load_orders(orders)
    for k in range(FB_ERR_KINDS):
        book._book.errors[k] = as_u64(counts[k], "errors")
    return book


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
    def add(self, order_id, side, price, qty, /):
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
    def execute(self, order_id, qty, /, *, side=0):
        """The resting order traded ``qty`` (1 to its remaining quantity; all of it removes it).

        ``side`` names the order in a side-keyed book and is ignored otherwise
        (as in every method below that names an existing order).
        """
        return _take_call(self, order_id, qty, side, True)

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def reduce(self, order_id, qty, /, *, side=0):
        """Cancel ``qty`` of the order, keeping its place (all of it removes the order)."""
        return _take_call(self, order_id, qty, side, False)

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def delete(self, order_id, /, *, side=0):
        """Remove the order, whatever its remaining quantity."""
        _writable(self)
        cdef uint64_t oid = as_u64(order_id, "order_id")
        cdef int rc = fb_l3_delete(&self._book, oid, as_side(side))
        if rc < 0:
            _fail(self, rc, "delete", oid, side, 0, 0, 0)
        return rc == FB_TOP_CHANGED

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def replace(self, order_id, new_order_id, qty, price, /, *, side=0):
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
    def modify(self, order_id, qty, price, /, *, side=0):
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
    def order(self, order_id, /, *, side=0):
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
    def queue_position(self, order_id, /, *, side=0):
        """``(orders_ahead, qty_ahead)`` of a live order in its level's FIFO queue, or None.

        Exact: counts every older order at the same price and side. O(position).
        """
        _readable(self)
        cdef int64_t n = 0, q = 0
        cdef int s = self._key_side(side)
        if fb_l3_queue_position(&self._book, as_u64(order_id, "order_id"), s, &n, &q) < 0:
            return None
        return (n, q)

    def rank(self, order_id, /, *, side=0):
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

    def orders_at(self, side, price, /):
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

    def count_at(self, side, price, /):
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

    def orders(self):
        """Every resting order, in book order, as a structured array of ``ORDER_DTYPE``.

        Fields ``order_id`` (uint64), ``side`` (uint8: BID 1 / ASK 2), ``price`` and
        ``qty`` (int64, the remaining quantity). Rows are the bids best first, then the
        asks best first, each level's orders in queue (FIFO) order: the book's whole
        state, which ``_load_orders`` (and unpickling) rebuilds exactly.
        """
        _readable(self)
        cdef cnp.ndarray out = np.zeros(self._book.order_count, dtype=ORDER_DTYPE)
        cdef _order_row *rows = <_order_row *>cnp.PyArray_DATA(out)
        with nogil:
            _fill_orders(&self._book, rows)
        return out

    def _load_orders(self, orders, /):
        """Add ``orders`` (as ``orders()`` returns them) to this empty book, in one C pass.

        The rows must be in book order (bids best first, then asks best first, each
        level's orders together, oldest first); the book then reads exactly as the
        one they came from (its capacities grow as that many adds would grow them).
        A bad row raises ValueError naming it, and leaves the book empty.
        """
        _writable(self)
        cdef Py_ssize_t n, row, bad = -1
        cdef bint bad_side = False
        cdef int rc
        if self._book.order_count:
            raise ValueError(f"_load_orders needs an empty book; this one has "
                             f"{self._book.order_count} orders")
        cols = _order_columns(orders)
        cdef const uint64_t[::1] ids = cols[0]
        cdef const uint8_t[::1] sides = cols[1]
        cdef const int64_t[::1] prices = cols[2]
        cdef const int64_t[::1] qtys = cols[3]
        n = ids.shape[0]
        if n == 0:
            return
        with nogil:
            row = _misordered_row(&sides[0], &prices[0], n, &bad_side)
        if row >= 0:
            if bad_side:
                raise ValueError(f"orders[{row}]: side must be fastbook.BID ({FB_BID}) or "
                                 f"fastbook.ASK ({FB_ASK}), got {sides[row]}")
            raise ValueError(f"orders[{row}]: not in book order (bids best first, then "
                             f"asks best first, each level's orders together)")
        with nogil:
            rc = _load_rows(&self._book, &ids[0], &sides[0], &prices[0], &qtys[0], n, &bad)
        if rc < 0:
            fb_l3_clear(&self._book)
            if rc == FB_ENOMEM:
                raise MemoryError("fastbook: cannot grow the order pool or the level arrays")
            raise ValueError(f"orders[{bad}]: " + _l3_message(
                rc, "add", ids[bad], sides[bad], prices[bad], qtys[bad], 0, 0))

    # -- copying and pickling --------------------------------------------------
    def copy(self):
        """An independent copy: settings, capacities, orders in queue order, error counters."""
        return _rebuild_orderbook(*self.__reduce__()[1])

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        _readable(self)
        cdef int k
        cdef list errors = []
        for k in range(FB_ERR_KINDS):
            errors.append(self._book.errors[k])
        return (_rebuild_orderbook, (self._book.price_decimals, self._book.qty_decimals,
                                     self._book.sides[0].capacity, self._book.sides[1].capacity,
                                     self._book.order_capacity, self.side_keys, self.on_error,
                                     tuple(errors), self.orders()))

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

    def capacity(self, side, /):
        """Level slots allocated on ``side``."""
        _readable(self)
        return self._book.sides[valid_side(side) - 1].capacity

    def reserve(self, side, capacity, /):
        """Preallocate room for ``capacity`` levels on ``side``."""
        _readable(self)
        cdef int sd = valid_side(side)
        cdef Py_ssize_t cap = as_capacity(capacity)
        if cap > _MAX_LEVELS or fb_l3_reserve_levels(&self._book, sd, cap) < 0:
            raise MemoryError(f"fastbook: cannot allocate {capacity} levels")

    def reserve_orders(self, capacity, /):
        """Preallocate room for ``capacity`` live orders (exactly; the table to match)."""
        _readable(self)
        if fb_l3_reserve_orders(&self._book, as_capacity(capacity)) < 0:
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
        return bbo_tuple(_bbo(&self._book))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def spread(self):
        """Best ask minus best bid (an int), or None when a side is empty."""
        _readable(self)
        return spread_of(_bbo(&self._book, True))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def mid(self):
        """Mid price ``(bid + ask) // 2`` as an int (floor), or None when a side is empty."""
        _readable(self)
        return mid_of(_bbo(&self._book, True))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def qty_at(self, side, price, /):
        """Quantity resting at ``price`` on ``side`` (0 when there is no level)."""
        _readable(self)
        cdef int sd = valid_side(side)
        return fb_l3_qty_at(&self._book, sd, as_i64(price, "price"))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def depth(self, side, /):
        """Number of price levels on ``side``."""
        _readable(self)
        return fb_l3_depth(&self._book, valid_side(side))

    def is_crossed(self):
        """True when best bid >= best ask (crossed or locked)."""
        _readable(self)
        return crossed(_bbo(&self._book, True))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def top(self, n, out=None):
        """The best ``n`` levels as an ``int64`` array of shape ``(4, n)``, exactly as ``Book.top``.

        Rows are ``[bid_prices, bid_qtys, ask_prices, ask_qtys]``, best first;
        missing levels are 0. ``out`` (a writeable C-contiguous int64 ``(4, n)``
        array) is filled and returned without allocating.
        """
        _readable(self)
        cdef Py_ssize_t count
        cdef cnp.ndarray a = top_array(n, out)
        cdef int64_t *base = top_rows(a, &count)
        fb_l3_top(&self._book, count, base, base + count, base + 2 * count, base + 3 * count)
        return a

    def to_arrays(self, side, /):
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

    def levels(self, side, /):
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

    def format_price(self, price, /, *, strip=False):
        """Format a fixed-point price as text at this book's scale."""
        return format_decimal(price, self._book.price_decimals, strip=strip)

    def format_qty(self, qty, /, *, strip=False):
        """Format a fixed-point quantity as text at this book's scale."""
        return format_decimal(qty, self._book.qty_decimals, strip=strip)

    def __repr__(self):
        _readable(self)
        cdef fb_bbo t = _bbo(&self._book)
        return (f"<fastbook.OrderBook price_decimals={self._book.price_decimals} "
                f"qty_decimals={self._book.qty_decimals} orders={self._book.order_count} "
                f"bids={self._book.sides[0].count} asks={self._book.sides[1].count} "
                f"best_bid={best_text(self, t.has_bid, t.bid_price, t.bid_qty)} "
                f"best_ask={best_text(self, t.has_ask, t.ask_price, t.ask_qty)}>")
