# cython: language_level=3
"""A downstream consumer of fastbook's C API, built by tests/test_capi.py.

It is what another Cython project would write: ``cimport fastbook`` for the L2 core
(``__init__.pxd``), ``from fastbook._l3 cimport ...`` for the L3 book and the BookSet
loop, built against the installed package's .pxd files. Keep it free of Python
objects inside ``with nogil:``: Cython refuses to compile GIL-requiring code there,
which is half of what the test proves. The other half is ``PyGILState_Check()``,
which each nogil block records.
"""

cimport fastbook
from fastbook._l3 cimport (
    FB_EINSTRUMENT, FB_ERR_KINDS, FB_EUNKNOWN_ORDER, FB_KIND_L2, FB_KIND_L3,
    FB_L3_ABI_VERSION, OrderBook, fb_bookset, fb_bookset_apply, fb_bookset_free, fb_event,
    fb_l3_add, fb_l3_best, fb_l3_clear, fb_l3_depth, fb_l3_execute, fb_l3_free, fb_l3_init,
    fb_l3_queue_position, fb_l3book, orderbook_readable, orderbook_writable,
)
from libc.stdint cimport INT64_MIN, int8_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free


cdef extern from "Python.h":
    int PyGILState_Check() nogil


# the ABI versions compiled into this module, to compare with the running package's
ABI_VERSION = fastbook.FB_ABI_VERSION
L3_ABI_VERSION = FB_L3_ABI_VERSION
BID = fastbook.FB_BID
ASK = fastbook.FB_ASK
BOOK_TYPE = fastbook.Book
FORMAT_BUFSIZE = fastbook.FB_FORMAT_BUFSIZE
STATUS = {
    "FB_OK": fastbook.FB_OK,
    "FB_TOP_CHANGED": fastbook.FB_TOP_CHANGED,
    "FB_ENOMEM": fastbook.FB_ENOMEM,
    "FB_ESIDE": fastbook.FB_ESIDE,
    "FB_EQTY": fastbook.FB_EQTY,
    "FB_EPRICE": fastbook.FB_EPRICE,
    "FB_EPARSE_EMPTY": fastbook.FB_EPARSE_EMPTY,
    "FB_EPARSE_SYNTAX": fastbook.FB_EPARSE_SYNTAX,
    "FB_EPARSE_PRECISION": fastbook.FB_EPARSE_PRECISION,
    "FB_EPARSE_OVERFLOW": fastbook.FB_EPARSE_OVERFLOW,
    "FB_EDECIMALS": fastbook.FB_EDECIMALS,
}


cdef object _best(bint has, int64_t price, int64_t qty):
    return (price, qty) if has else None


cdef fastbook.fb_book *_core_of(object book, bint write=True) except NULL:
    # Checked cast with the GIL held; the caller's reference keeps the Book (and
    # so the struct) alive while nogil code uses the pointer. Then the checks
    # _core.pxd asks of every compiled caller: no apply is writing the book without
    # the GIL, and (to write) no BookSet.apply callback is running on it.
    if not isinstance(book, fastbook.Book):
        raise TypeError(f"expected fastbook.Book, got {type(book).__name__}")
    if write:
        fastbook.book_writable(<fastbook.Book>book)
    else:
        fastbook.book_readable(<fastbook.Book>book)
    return &(<fastbook.Book>book)._book


def snapshot(book):
    """Read a Book from nogil code: (best bid, best ask, bid depth, ask depth, qty at 10000)."""
    cdef fastbook.fb_book *p = _core_of(book, False)
    cdef int64_t bp = 0, bq = 0, ap = 0, aq = 0, q10000 = -1
    cdef bint hb, ha
    cdef Py_ssize_t nb, na
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        hb = fastbook.fb_book_best(p, fastbook.FB_BID, &bp, &bq)
        ha = fastbook.fb_book_best(p, fastbook.FB_ASK, &ap, &aq)
        nb = fastbook.fb_book_depth(p, fastbook.FB_BID)
        na = fastbook.fb_book_depth(p, fastbook.FB_ASK)
        q10000 = fastbook.fb_book_qty_at(p, fastbook.FB_BID, 10000)
    return {
        "gil": gil,
        "best_bid": _best(hb, bp, bq),
        "best_ask": _best(ha, ap, aq),
        "depth": (nb, na),
        "qty_at_bid_10000": q10000,
    }


def mutate(book):
    """Drive a Python-owned Book through fb_book_set with the GIL released."""
    cdef fastbook.fb_book *p = _core_of(book)
    cdef int rc[8]
    cdef int64_t bp = 0, bq = 0, ap = 0, aq = 0
    cdef bint hb = False, ha = False
    cdef Py_ssize_t nb = -1, na = -1, bad_side_depth = -1
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        rc[0] = fastbook.fb_book_set(p, fastbook.FB_BID, 10000, 5)   # first bid
        rc[1] = fastbook.fb_book_set(p, fastbook.FB_BID, 10050, 7)   # new best bid
        rc[2] = fastbook.fb_book_set(p, fastbook.FB_BID, 9950, 3)    # behind the best
        rc[3] = fastbook.fb_book_set(p, fastbook.FB_ASK, 10100, 2)   # first ask
        rc[4] = fastbook.fb_book_set(p, fastbook.FB_ASK, 10075, 4)   # new best ask
        rc[5] = fastbook.fb_book_set(p, fastbook.FB_BID, 10000, 0)   # delete a middle level
        rc[6] = fastbook.fb_book_set(p, fastbook.FB_ASK, 10100, 6)   # resize a non-best level
        rc[7] = fastbook.fb_book_set(p, fastbook.FB_BID, 1, 0)       # delete an absent level
        hb = fastbook.fb_book_best(p, fastbook.FB_BID, &bp, &bq)
        ha = fastbook.fb_book_best(p, fastbook.FB_ASK, &ap, &aq)
        nb = fastbook.fb_book_depth(p, fastbook.FB_BID)
        na = fastbook.fb_book_depth(p, fastbook.FB_ASK)
        bad_side_depth = fastbook.fb_book_depth(p, 0)
    return {
        "gil": gil,
        "rcs": [rc[i] for i in range(8)],
        "best_bid": _best(hb, bp, bq),
        "best_ask": _best(ha, ap, aq),
        "depth": (nb, na),
        "bad_side_depth": bad_side_depth,
    }


def refuse_bad_updates(book):
    """Invalid updates through the C API: their statuses and the book version around them."""
    cdef fastbook.fb_book *p = _core_of(book)
    cdef uint64_t version_before, version_after
    cdef int rc[5]
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        version_before = p.version
        rc[0] = fastbook.fb_book_set(p, 0, 10000, 1)                 # zero-filled side
        rc[1] = fastbook.fb_book_set(p, 3, 10000, 1)
        rc[2] = fastbook.fb_book_set(p, -1, 10050, 0)
        rc[3] = fastbook.fb_book_set(p, fastbook.FB_BID, 10000, -1)  # negative quantity
        rc[4] = fastbook.fb_book_set(p, fastbook.FB_ASK, INT64_MIN, 1)
        version_after = p.version
    return {
        "gil": gil,
        "rcs": [rc[i] for i in range(5)],
        "version": (version_before, version_after),
    }


cdef int _standalone(int64_t *out, Py_ssize_t *counts, int *codes) noexcept nogil:
    """Own an fb_book from init to free without the GIL; fill ``out`` with its top 3."""
    cdef fastbook.fb_book book
    cdef int8_t sides[8]
    cdef int64_t prices[8]
    cdef int64_t qtys[8]
    cdef int8_t bad_sides[3]
    cdef int64_t bad_prices[3]
    cdef int64_t bad_qtys[3]
    cdef Py_ssize_t applied = -1
    cdef int rc
    codes[0] = PyGILState_Check()
    # capacity 2 per side: the batch below must grow the ladders from nogil code
    rc = fastbook.fb_book_init(&book, 2, 8, 2)
    codes[1] = rc
    if rc < 0:
        return rc
    sides[:] = [fastbook.FB_BID, fastbook.FB_BID, fastbook.FB_ASK, fastbook.FB_ASK,
                fastbook.FB_BID, fastbook.FB_BID, fastbook.FB_ASK, fastbook.FB_BID]
    prices[:] = [2743100, 2743150, 2743200, 2743175, 2743000, 2742900, 2743300, 2743100]
    qtys[:] = [100, 250, 300, 10, 50, 70, 80, 0]
    rc = fastbook.fb_book_apply(&book, sides, prices, qtys, 8, &applied)
    codes[2] = rc
    counts[0] = applied
    counts[1] = fastbook.fb_book_top(&book, 3, out, out + 3, out + 6, out + 9)
    counts[2] = fastbook.fb_book_depth(&book, fastbook.FB_BID)
    counts[3] = fastbook.fb_book_depth(&book, fastbook.FB_ASK)
    # a batch with a bad side in the middle stops there; the first update stays applied
    bad_sides[:] = [fastbook.FB_ASK, 0, fastbook.FB_ASK]
    bad_prices[:] = [2743400, 2743500, 2743600]
    bad_qtys[:] = [1, 1, 1]
    applied = -1
    codes[3] = fastbook.fb_book_apply(&book, bad_sides, bad_prices, bad_qtys, 3, &applied)
    counts[4] = applied
    counts[5] = fastbook.fb_book_depth(&book, fastbook.FB_ASK)
    counts[6] = book.ladders[0].capacity
    fastbook.fb_book_free(&book)
    counts[7] = book.ladders[0].capacity + book.ladders[1].capacity
    return fastbook.FB_OK


def standalone():
    cdef int64_t out[12]
    cdef Py_ssize_t counts[8]
    cdef int codes[4]
    cdef int rc
    cdef Py_ssize_t i
    for i in range(12):
        out[i] = -1
    for i in range(8):
        counts[i] = -1
    for i in range(4):
        codes[i] = -99
    with nogil:
        rc = _standalone(out, counts, codes)
    return {
        "rc": rc,
        "gil": codes[0],
        "init": codes[1],
        "apply": codes[2],
        "applied": counts[0],
        "top_filled": counts[1],
        "depth": (counts[2], counts[3]),
        "top": [[out[r * 3 + c] for c in range(3)] for r in range(4)],
        "bad_apply": codes[3],
        "bad_applied": counts[4],
        "ask_depth_after_bad": counts[5],
        "bid_capacity": counts[6],
        "capacity_after_free": counts[7],
    }


def parse_and_format(bytes text, int decimals, bint strip):
    """fb_parse_decimal then fb_format_decimal, both without the GIL."""
    cdef const char *ptr = text
    cdef Py_ssize_t n = len(text)
    cdef int64_t value = 0
    cdef char buf[fastbook.FB_FORMAT_BUFSIZE]
    cdef Py_ssize_t written = -1
    cdef int rc
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        rc = fastbook.fb_parse_decimal(ptr, n, decimals, &value)
        if rc == fastbook.FB_OK:
            written = fastbook.fb_format_decimal(value, decimals, strip, buf)
    return {
        "gil": gil,
        "rc": rc,
        "value": value if rc == fastbook.FB_OK else None,
        "text": buf[:written].decode("ascii") if written >= 0 else None,
    }


def format_value(int64_t value, int decimals, bint strip):
    """fb_format_decimal alone: (length or status, text)."""
    cdef char buf[fastbook.FB_FORMAT_BUFSIZE]
    cdef Py_ssize_t written
    with nogil:
        written = fastbook.fb_format_decimal(value, decimals, strip, buf)
    return written, (buf[:written].decode("ascii") if written >= 0 else None)


# ---------------------------------------------------------------------------
# L3: the order book and the BookSet loop (fastbook._l3)
# ---------------------------------------------------------------------------

EVENT_BYTES = sizeof(fb_event)
L3_STATUS = {
    "FB_EUNKNOWN_ORDER": FB_EUNKNOWN_ORDER,
    "FB_EINSTRUMENT": FB_EINSTRUMENT,
}


cdef fb_l3book *_l3_of(object book, bint write=True) except NULL:
    # as _core_of: a checked cast, the caller's reference keeping the book alive,
    # then the checks _l3.pxd asks of every compiled caller
    if not isinstance(book, OrderBook):
        raise TypeError(f"expected fastbook.OrderBook, got {type(book).__name__}")
    if write:
        orderbook_writable(<OrderBook>book)
    else:
        orderbook_readable(<OrderBook>book)
    return &(<OrderBook>book)._book


def l3_best_bid(book):
    """Read an OrderBook's best bid from nogil code."""
    cdef fb_l3book *p = _l3_of(book, False)
    cdef int64_t bp = 0, bq = 0
    cdef bint hb
    with nogil:
        hb = fb_l3_best(p, fastbook.FB_BID, &bp, &bq)
    return _best(hb, bp, bq)


def l3_orders(book):
    """Add and execute orders of a Python-owned OrderBook, and read it, without the GIL."""
    cdef fb_l3book *p = _l3_of(book)
    cdef int rc[5]
    cdef int64_t bp = 0, bq = 0, ahead = -1, qty_ahead = -1
    cdef bint hb = False
    cdef Py_ssize_t nb = -1
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        rc[0] = fb_l3_add(p, 1, fastbook.FB_BID, 10000, 5)   # first bid
        rc[1] = fb_l3_add(p, 2, fastbook.FB_BID, 10000, 7)   # queued behind it
        rc[2] = fb_l3_execute(p, 1, 0, 2)                    # 3 of order 1 left
        rc[3] = fb_l3_execute(p, 99, 0, 1)                   # not in the book
        rc[4] = fb_l3_queue_position(p, 2, 0, &ahead, &qty_ahead)
        hb = fb_l3_best(p, fastbook.FB_BID, &bp, &bq)
        nb = fb_l3_depth(p, fastbook.FB_BID)
    return {
        "gil": gil,
        "rcs": [rc[i] for i in range(5)],
        "best_bid": _best(hb, bp, bq),
        "depth": nb,
        "ahead": (ahead, qty_ahead),
    }


def standalone_l3():
    """Own an fb_l3book from init to free without the GIL: (status, best bid, depth after clear)."""
    cdef fb_l3book book
    cdef int rc = -99, init = -99
    cdef int64_t bp = 0, bq = 0
    cdef bint hb = False
    cdef Py_ssize_t cleared = -1
    with nogil:
        init = fb_l3_init(&book, 2, 0, 2, 2)     # 2 levels, 2 orders: adding more grows
        if init == fastbook.FB_OK:
            rc = fb_l3_add(&book, 10, fastbook.FB_ASK, 10100, 1)
            rc = fb_l3_add(&book, 11, fastbook.FB_ASK, 10200, 2)
            rc = fb_l3_add(&book, 12, fastbook.FB_ASK, 10050, 3)
            hb = fb_l3_best(&book, fastbook.FB_ASK, &bp, &bq)
            fb_l3_clear(&book)
            cleared = fb_l3_depth(&book, fastbook.FB_ASK)
            fb_l3_free(&book)
    return {"init": init, "rc": rc, "best_ask": _best(hb, bp, bq), "cleared": cleared}


def bookset_apply(l3book, l2book, const uint8_t[::1] raw, bint skip):
    """Run fb_bookset_apply over an L3 book (instrument 0) and an L2 book (instrument 1).

    ``raw`` is an EVENT_DTYPE array viewed as bytes. The set is the consumer's own
    struct; its arrays are the consumer's, the undo journal the library's.
    """
    cdef fb_l3book *l3 = _l3_of(l3book)
    cdef fastbook.fb_book *l2 = _core_of(l2book)
    cdef fb_bookset bs
    cdef Py_ssize_t n = raw.shape[0] // sizeof(fb_event)
    cdef const fb_event *events
    cdef Py_ssize_t done = -1, skipped = -1, i
    cdef int64_t detail = 0
    cdef int rc = -99, gil = -1
    if raw.shape[0] % sizeof(fb_event):
        raise ValueError(f"{raw.shape[0]} bytes is not a whole number of events")
    events = <const fb_event *>&raw[0] if n else NULL
    bs.count = 2
    bs.kinds = <uint8_t *>calloc(2, sizeof(uint8_t))
    bs.books = <void **>calloc(2, sizeof(void *))
    bs.errors = <uint64_t *>calloc(2 * FB_ERR_KINDS, sizeof(uint64_t))
    bs.bad_instrument = 0
    bs.undo = NULL
    bs.undo_capacity = 0
    if bs.kinds == NULL or bs.books == NULL or bs.errors == NULL:
        free(bs.kinds)
        free(bs.books)
        free(bs.errors)
        raise MemoryError()
    bs.kinds[0] = FB_KIND_L3
    bs.books[0] = l3
    bs.kinds[1] = FB_KIND_L2
    bs.books[1] = l2
    with nogil:
        gil = PyGILState_Check()
        rc = fb_bookset_apply(&bs, events, n, skip, &done, &skipped, &detail)
    errors = [[bs.errors[i * FB_ERR_KINDS + k] for k in range(FB_ERR_KINDS)] for i in range(2)]
    bad_instrument = bs.bad_instrument
    free(bs.kinds)
    free(bs.books)
    free(bs.errors)
    bs.kinds = NULL
    bs.books = NULL
    bs.errors = NULL
    fb_bookset_free(&bs)            # what the library allocated: the undo journal
    return {
        "gil": gil,
        "rc": rc,
        "done": done,
        "skipped": skipped,
        "errors": errors,
        "bad_instrument": bad_instrument,
    }
