# cython: language_level=3
"""Compiled core of fastbook: fixed-point text and the L2 price-level book.

State lives in C structs (see ``_core.pxd``) and is changed by free ``nogil``
functions that report failure with negative status codes; the ``Book`` class
owns the struct, validates at the Python edge and turns codes into exceptions.
The pure-Python twin in ``fastbook._pycore`` defines the behaviour this module
must match exactly (``tests/test_differential.py``).
"""

cimport cython
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport INT64_MAX, INT64_MIN, int8_t, int64_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memmove

from fastbook._edge cimport (
    MAX_SCALE, as_i64, as_side, check_decimals, side_message, top_array, valid_side,
)

import numpy as np

from fastbook.errors import ArrayError, DecodeError, UpdateError

cnp.import_array()

BID = FB_BID
ASK = FB_ASK
#: Bytes of level storage per allocated slot (int64 key + int64 quantity).
BYTES_PER_LEVEL = 2 * sizeof(int64_t)
#: Largest supported ``price_decimals`` / ``qty_decimals`` (10**18 fits int64).
MAX_DECIMALS = MAX_SCALE
COMPILED = True
#: Layout version of the C API in ``_core.pxd`` (``FB_ABI_VERSION``).
ABI_VERSION = FB_ABI_VERSION

# Batches shorter than this keep the GIL: releasing it costs more than the work.
cdef Py_ssize_t _NOGIL_MIN_BATCH = 256
# Levels nearest the top that are searched without branches before binary search.
cdef enum:
    _TOP_WINDOW = 8
cdef Py_ssize_t _MIN_CAPACITY = 16
cdef Py_ssize_t _MAX_CAPACITY = (<Py_ssize_t>(<size_t>-1 >> 1)) // sizeof(int64_t)


# ===========================================================================
# Fixed-point text
# ===========================================================================

cdef int fb_parse_decimal(const char *text, Py_ssize_t length, int decimals,
                          int64_t *out) noexcept nogil:
    """Parse ``[+-]digits[.digits][(e|E)[+-]digits]`` exactly into ``value * 10**decimals``.

    Three steps: find the mantissa and read the exponent; refuse any nonzero
    digit beyond the scale (so excess precision is reported before range);
    then accumulate with overflow checks. Zeros are held back as a pending
    power of ten rather than multiplied in, so long zero runs never overflow.
    """
    cdef Py_ssize_t i = 0, start, mant_end, k
    cdef bint neg = False, in_frac = False, exp_neg = False
    cdef uint64_t limit, m = 0
    cdef int64_t pending = 0, frac_len = 0, exp = 0, allowed, shift
    cdef int digits = 0, exp_digits = 0, d
    cdef char c

    if decimals < 0 or decimals > 18:
        return FB_EDECIMALS
    if length <= 0:
        return FB_EPARSE_EMPTY
    if text[0] == c'+' or text[0] == c'-':
        neg = text[0] == c'-'
        i = 1
    start = i
    while i < length:
        c = text[i]
        if c'0' <= c <= c'9':
            digits += 1
        elif c == c'.' and not in_frac:
            in_frac = True
        else:
            break
        i += 1
    if digits == 0:
        return FB_EPARSE_SYNTAX
    mant_end = i
    if i < length:
        if text[i] != c'e' and text[i] != c'E':
            return FB_EPARSE_SYNTAX
        i += 1
        if i < length and (text[i] == c'+' or text[i] == c'-'):
            exp_neg = text[i] == c'-'
            i += 1
        while i < length and c'0' <= text[i] <= c'9':
            if exp < 100000:    # beyond this any nonzero value fails anyway
                exp = exp * 10 + (text[i] - c'0')
            exp_digits += 1
            i += 1
        if exp_digits == 0 or i != length:
            return FB_EPARSE_SYNTAX
        if exp_neg:
            exp = -exp

    # fraction digits that fit the scale; nonzero digits past them lose precision
    allowed = decimals + exp
    in_frac = False
    for k in range(start, mant_end):
        if text[k] == c'.':
            in_frac = True
        elif in_frac:
            frac_len += 1
            if frac_len > allowed and text[k] != c'0':
                return FB_EPARSE_PRECISION

    limit = (<uint64_t>INT64_MAX) + (1 if neg else 0)
    frac_len = 0
    in_frac = False
    for k in range(start, mant_end):
        c = text[k]
        if c == c'.':
            in_frac = True
            continue
        if in_frac:
            frac_len += 1
            if frac_len > allowed:
                break           # only zeros remain (checked above)
        if c == c'0':
            pending += 1
        else:
            d = c - c'0'
            while pending > 0:
                if m > limit // 10:
                    return FB_EPARSE_OVERFLOW
                m *= 10
                pending -= 1
            if m > (limit - <uint64_t>d) // 10:
                return FB_EPARSE_OVERFLOW
            m = m * 10 + <uint64_t>d
    if m == 0:
        out[0] = 0
        return FB_OK
    if frac_len > allowed:
        frac_len = allowed if allowed > 0 else 0
    shift = allowed - frac_len + pending
    if shift < 0:
        # m ends in a nonzero digit, so a negative shift would drop it
        return FB_EPARSE_PRECISION
    while shift > 0:
        if m > limit // 10:
            return FB_EPARSE_OVERFLOW
        m *= 10
        shift -= 1
    if neg:
        out[0] = -(<int64_t>(m - 1)) - 1
    else:
        out[0] = <int64_t>m
    return FB_OK


cdef Py_ssize_t fb_format_decimal(int64_t value, int decimals, bint strip,
                                  char *buf) noexcept nogil:
    """Write ``value / 10**decimals`` as plain decimal text into ``buf``.

    ``buf`` must hold ``FB_FORMAT_BUFSIZE`` bytes. With ``strip`` the fraction
    loses trailing zeros and a bare point (``"100.50" -> "100.5"``, ``"7.00" ->
    "7"``). Returns the length written (a NUL follows), or ``FB_EDECIMALS``.
    """
    cdef char tmp[24]
    cdef int nd = 0, k
    cdef Py_ssize_t pos = 0
    cdef uint64_t u
    if decimals < 0 or decimals > 18:
        return FB_EDECIMALS
    u = <uint64_t>value
    if value < 0:
        u = (<uint64_t>0) - u
    while True:
        tmp[nd] = <char>(c'0' + <int>(u % 10))
        nd += 1
        u //= 10
        if u == 0:
            break
    while nd < decimals + 1:
        tmp[nd] = c'0'
        nd += 1
    if value < 0:
        buf[pos] = c'-'
        pos += 1
    k = nd - 1
    while k >= decimals:
        buf[pos] = tmp[k]
        pos += 1
        k -= 1
    if decimals > 0:
        buf[pos] = c'.'
        pos += 1
        while k >= 0:
            buf[pos] = tmp[k]
            pos += 1
            k -= 1
        if strip:
            while buf[pos - 1] == c'0':
                pos -= 1
            if buf[pos - 1] == c'.':
                pos -= 1
    buf[pos] = 0
    return pos


cdef dict _PARSE_REASONS = {
    FB_EPARSE_EMPTY: "empty text",
    FB_EPARSE_SYNTAX: "not a decimal number",
    FB_EPARSE_PRECISION: "more decimal places than the scale allows",
    FB_EPARSE_OVERFLOW: "out of int64 range at this scale",
    FB_EDECIMALS: "decimals must be between 0 and 18",
}


cdef int64_t _parse_text(object text, int decimals, str what) except? -1:
    """Parse str/bytes/buffer text at ``decimals``; raise DecodeError naming it."""
    cdef const char *ptr
    cdef Py_ssize_t n
    cdef const unsigned char[::1] view
    cdef int64_t value = 0
    cdef int rc
    if type(text) is bytes:
        ptr = PyBytes_AS_STRING(text)
        n = PyBytes_GET_SIZE(text)
    elif type(text) is str:
        ptr = PyUnicode_AsUTF8AndSize(text, &n)
    elif isinstance(text, (bytes, str)):
        return _parse_text(bytes(text) if isinstance(text, bytes) else str(text), decimals, what)
    else:
        try:
            view = memoryview(text).cast("B")
        except TypeError:
            raise TypeError(
                f"{what} must be str, bytes or a bytes-like buffer, got {type(text).__name__}"
            ) from None
        n = view.shape[0]
        if n == 0:
            return _parse_text(b"", decimals, what)
        ptr = <const char *>&view[0]
    rc = fb_parse_decimal(ptr, n, decimals, &value)
    if rc < 0:
        raise DecodeError(
            f"cannot parse {what} {text!r} at {decimals} decimals: {_PARSE_REASONS[rc]}"
        )
    return value


def parse_decimal(text, decimals):
    """Parse decimal text into an exact fixed-point integer.

    Parameters
    ----------
    text : str, bytes or bytes-like
        ``[+-]digits[.digits][e[+-]digits]``; no spaces, no thousands separators.
    decimals : int
        The scale (0 to 18): the result is ``value * 10**decimals``.

    Returns
    -------
    int
        The exact integer; never computed through float.

    Raises
    ------
    DecodeError
        Empty or malformed text, more decimal places than ``decimals`` (beyond
        trailing zeros), or a result outside int64.

    Examples
    --------
    >>> parse_decimal(b"27431.50", 2)
    2743150
    >>> parse_decimal("0.00012000", 5)
    12
    """
    check_decimals(decimals, "decimals")
    return _parse_text(text, <int>decimals, "text")


def format_decimal(value, decimals, *, bint strip=False):
    """Format a fixed-point integer as exact decimal text.

    ``strip=True`` removes trailing fractional zeros and a bare point, the form
    several exchange checksums use.

    Examples
    --------
    >>> format_decimal(2743150, 2)
    '27431.50'
    >>> format_decimal(2743150, 2, strip=True)
    '27431.5'
    """
    cdef char buf[FB_FORMAT_BUFSIZE]
    cdef Py_ssize_t n
    cdef int64_t v = as_i64(value, "value")
    check_decimals(decimals, "decimals")
    n = fb_format_decimal(v, <int>decimals, strip, buf)
    return buf[:n].decode("ascii")


# ===========================================================================
# The L2 ladder
# ===========================================================================

cdef int _ladder_reserve(fb_ladder *lad, Py_ssize_t need) noexcept nogil:
    """Make room for ``need`` levels, growing geometrically; FB_ENOMEM on failure."""
    cdef Py_ssize_t cap
    cdef int64_t *p
    if need <= lad.capacity:
        return FB_OK
    cap = lad.capacity * 2 if lad.capacity >= _MIN_CAPACITY else _MIN_CAPACITY
    if cap < need:
        cap = need
    if cap > _MAX_CAPACITY or need > _MAX_CAPACITY:
        return FB_ENOMEM
    p = <int64_t *>realloc(lad.keys, <size_t>cap * sizeof(int64_t))
    if p == NULL:
        return FB_ENOMEM
    lad.keys = p
    p = <int64_t *>realloc(lad.qtys, <size_t>cap * sizeof(int64_t))
    if p == NULL:
        # keys grew but qtys did not: capacity stays at the old, valid value
        return FB_ENOMEM
    lad.qtys = p
    lad.capacity = cap
    return FB_OK


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline Py_ssize_t _lower_bound(const int64_t *keys, Py_ssize_t n,
                                    int64_t key) noexcept nogil:
    """First index whose key is >= ``key`` (the number of keys below it).

    Most updates land within a few levels of the top, so the top
    ``_TOP_WINDOW`` keys are counted first without branches; only keys below
    that window pay for a (branch-free, cmov) binary search. Mispredicted
    branches, not memory, dominate a search over a few thousand levels.
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


cdef inline int _book_set(fb_book *book, int side, int64_t price,
                          int64_t qty) noexcept nogil:
    cdef fb_ladder *lad
    cdef int64_t key
    cdef Py_ssize_t n, pos, tail
    cdef int rc
    if side != FB_BID and side != FB_ASK:
        return FB_ESIDE
    if qty < 0:
        return FB_EQTY
    if price == INT64_MIN:
        return FB_EPRICE
    lad = &book.ladders[side - 1]
    key = price if side == FB_BID else -price
    n = lad.count
    pos = _lower_bound(lad.keys, n, key)
    if pos < n and lad.keys[pos] == key:
        if qty == 0:
            tail = n - pos - 1
            if tail:
                memmove(&lad.keys[pos], &lad.keys[pos + 1], <size_t>tail * sizeof(int64_t))
                memmove(&lad.qtys[pos], &lad.qtys[pos + 1], <size_t>tail * sizeof(int64_t))
            lad.count = n - 1
            book.version += 1
            return FB_TOP_CHANGED if tail == 0 else FB_OK
        if lad.qtys[pos] == qty:
            return FB_OK
        lad.qtys[pos] = qty
        book.version += 1
        return FB_TOP_CHANGED if pos == n - 1 else FB_OK
    if qty == 0:
        book.missing_deletes += 1
        return FB_OK
    if n == lad.capacity:
        rc = _ladder_reserve(lad, n + 1)
        if rc < 0:
            return rc
    tail = n - pos
    if tail:
        memmove(&lad.keys[pos + 1], &lad.keys[pos], <size_t>tail * sizeof(int64_t))
        memmove(&lad.qtys[pos + 1], &lad.qtys[pos], <size_t>tail * sizeof(int64_t))
    lad.keys[pos] = key
    lad.qtys[pos] = qty
    lad.count = n + 1
    book.version += 1
    return FB_TOP_CHANGED if tail == 0 else FB_OK


cdef int fb_book_init(fb_book *book, int price_decimals, int qty_decimals,
                      Py_ssize_t capacity) noexcept nogil:
    """Set up ``book`` (old contents ignored) with ``capacity`` level slots per side."""
    cdef int rc
    cdef int s
    if price_decimals < 0 or price_decimals > 18 or qty_decimals < 0 or qty_decimals > 18:
        return FB_EDECIMALS
    for s in range(2):
        book.ladders[s].keys = NULL
        book.ladders[s].qtys = NULL
        book.ladders[s].count = 0
        book.ladders[s].capacity = 0
    book.price_decimals = price_decimals
    book.qty_decimals = qty_decimals
    book.version = 0
    book.missing_deletes = 0
    if capacity > 0:
        for s in range(2):
            rc = _ladder_reserve(&book.ladders[s], capacity)
            if rc < 0:
                fb_book_free(book)
                return rc
    return FB_OK


cdef void fb_book_free(fb_book *book) noexcept nogil:
    cdef int s
    for s in range(2):
        free(book.ladders[s].keys)
        free(book.ladders[s].qtys)
        book.ladders[s].keys = NULL
        book.ladders[s].qtys = NULL
        book.ladders[s].count = 0
        book.ladders[s].capacity = 0


cdef int fb_book_reserve(fb_book *book, int side, Py_ssize_t capacity) noexcept nogil:
    """Ensure ``side`` can hold ``capacity`` levels without reallocating."""
    if side != FB_BID and side != FB_ASK:
        return FB_ESIDE
    return _ladder_reserve(&book.ladders[side - 1], capacity)


cdef void fb_book_clear(fb_book *book) noexcept nogil:
    """Remove every level; capacity is kept."""
    book.ladders[0].count = 0
    book.ladders[1].count = 0
    book.version += 1


cdef int fb_book_set(fb_book *book, int side, int64_t price, int64_t qty) noexcept nogil:
    """Set the absolute quantity at ``price``; 0 deletes (absent level: no-op, counted).

    Returns FB_TOP_CHANGED when the best level of ``side`` changed, FB_OK when
    it did not, or a negative status with the book unchanged.
    """
    return _book_set(book, side, price, qty)


cdef int fb_book_apply(fb_book *book, const int8_t *sides, const int64_t *prices,
                       const int64_t *qtys, Py_ssize_t n,
                       Py_ssize_t *applied) noexcept nogil:
    """Apply ``n`` updates in order; stop at the first failure.

    ``applied`` receives the number applied. Validate first (as ``Book.apply``
    does) if a batch must be all-or-nothing.
    """
    cdef Py_ssize_t i
    cdef int rc
    for i in range(n):
        rc = _book_set(book, sides[i], prices[i], qtys[i])
        if rc < 0:
            applied[0] = i
            return rc
    applied[0] = n
    return FB_OK


cdef int64_t fb_book_qty_at(const fb_book *book, int side, int64_t price) noexcept nogil:
    """Quantity resting at ``price`` on ``side``; 0 when there is no such level."""
    cdef const fb_ladder *lad
    cdef int64_t key
    cdef Py_ssize_t pos
    if (side != FB_BID and side != FB_ASK) or price == INT64_MIN:
        return 0
    lad = &book.ladders[side - 1]
    key = price if side == FB_BID else -price
    pos = _lower_bound(lad.keys, lad.count, key)
    if pos < lad.count and lad.keys[pos] == key:
        return lad.qtys[pos]
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t fb_book_top(const fb_book *book, Py_ssize_t n,
                            int64_t *bid_prices, int64_t *bid_qtys,
                            int64_t *ask_prices, int64_t *ask_qtys) noexcept nogil:
    """Copy the best ``n`` levels of each side, best first; pad with zeros.

    Returns the larger of the two sides' filled counts.
    """
    cdef const fb_ladder *bids = &book.ladders[0]
    cdef const fb_ladder *asks = &book.ladders[1]
    cdef Py_ssize_t i, nb = bids.count if bids.count < n else n
    cdef Py_ssize_t na = asks.count if asks.count < n else n
    cdef Py_ssize_t top_b = bids.count - 1, top_a = asks.count - 1
    for i in range(nb):
        bid_prices[i] = bids.keys[top_b - i]
        bid_qtys[i] = bids.qtys[top_b - i]
    for i in range(nb, n):
        bid_prices[i] = 0
        bid_qtys[i] = 0
    for i in range(na):
        ask_prices[i] = -asks.keys[top_a - i]
        ask_qtys[i] = asks.qtys[top_a - i]
    for i in range(na, n):
        ask_prices[i] = 0
        ask_qtys[i] = 0
    return nb if nb > na else na


# ===========================================================================
# Python face
# ===========================================================================

cdef int _raise_status(int rc, object side, object price, object qty) except -1:
    if rc == FB_ESIDE:
        raise UpdateError(side_message(side))
    if rc == FB_EQTY:
        raise UpdateError(f"quantity must be >= 0, got {qty!r} (at price {price!r})")
    if rc == FB_EPRICE:
        raise UpdateError(f"price {price!r} is INT64_MIN, which fastbook reserves for 'no price'")
    if rc == FB_ENOMEM:
        raise MemoryError("fastbook: cannot grow the level arrays")
    raise SystemError(f"fastbook: unexpected status {rc}")


cdef cnp.ndarray _check_array(object arr, int typenum, str name, str dtype_name):
    cdef cnp.ndarray a
    if not cnp.PyArray_Check(arr):
        raise ArrayError(
            f"{name} must be a numpy array of {dtype_name}, got {type(arr).__name__}; "
            f"use np.ascontiguousarray({name}, dtype=np.{dtype_name})"
        )
    a = <cnp.ndarray>arr
    if not cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(a), typenum) \
            or not cnp.PyArray_ISNOTSWAPPED(a):
        raise ArrayError(
            f"{name} must have dtype {dtype_name} in native byte order, got {a.dtype}; "
            f"use np.ascontiguousarray({name}, dtype=np.{dtype_name})"
        )
    if cnp.PyArray_NDIM(a) != 1:
        raise ArrayError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ArrayError(
            f"{name} must be C-contiguous; use np.ascontiguousarray({name})"
        )
    return a


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _first_invalid(const int8_t *sides, const int64_t *prices,
                               const int64_t *qtys, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if (sides[i] != FB_BID and sides[i] != FB_ASK) or qtys[i] < 0 \
                or prices[i] == INT64_MIN:
            return i
    return -1


cdef int _validate_and_apply(fb_book *book, const int8_t *sides, const int64_t *prices,
                             const int64_t *qtys, Py_ssize_t n, Py_ssize_t *applied,
                             Py_ssize_t *bad) noexcept nogil:
    # all-or-nothing: a batch with any invalid update changes nothing
    bad[0] = _first_invalid(sides, prices, qtys, n)
    if bad[0] >= 0:
        applied[0] = 0
        return FB_OK
    return fb_book_apply(book, sides, prices, qtys, n, applied)


cdef int _raise_busy() except -1:
    raise RuntimeError(
        "fastbook.Book is being modified by Book.apply in another thread; a book has one "
        "writer at a time (read it from the writer's thread, or copy it there)"
    )


cdef object _best_level(Book book, int side):
    cdef int64_t p, q
    if book._busy:
        _raise_busy()
    if fb_book_best(&book._book, side, &p, &q):
        return (p, q)
    return None


@cython.final
cdef class _LevelIterator:
    """Best-first iterator over one side; fails if the book changes under it."""
    cdef Book _owner
    cdef int _side
    cdef Py_ssize_t _i
    cdef uint64_t _version
    cdef bint _done

    def __iter__(self):
        return self

    def __next__(self):
        cdef const fb_ladder *lad = &self._owner._book.ladders[self._side - 1]
        cdef Py_ssize_t idx
        if self._done:
            # exhausted iterators stay exhausted, as dict iterators do
            raise StopIteration
        if self._owner._busy:
            _raise_busy()
        if self._owner._book.version != self._version:
            raise RuntimeError("fastbook.Book changed size or contents during iteration")
        if self._i >= lad.count:
            self._done = True
            raise StopIteration
        idx = lad.count - 1 - self._i
        self._i += 1
        return (lad.keys[idx] if self._side == FB_BID else -lad.keys[idx], lad.qtys[idx])


cdef class Book:
    """An L2 (price-level) order book with fixed-point integer prices and quantities.

    Each side is a pair of preallocated ``int64`` arrays kept sorted with the
    best level at the end, so the best price is read in O(1), updates near the
    top cost O(1) amortised, and nothing is allocated once ``capacity`` is
    reached (it then grows geometrically).

    Parameters
    ----------
    price_decimals, qty_decimals : int
        Fixed-point scales (0 to 18): price ``27431.50`` at 2 decimals is
        ``2743150``. Used by the ``*_str`` methods and ``repr``; the integer API
        never rescales.
    capacity : int, default 1024
        Level slots to preallocate per side.

    Examples
    --------
    >>> import fastbook as fb
    >>> book = fb.Book(price_decimals=2, qty_decimals=8)
    >>> book.set(fb.BID, 2743150, 25_000_000)
    True
    >>> book.set_str(fb.ASK, "27431.75", "0.1")
    True
    >>> book.bbo()
    (2743150, 25000000, 2743175, 10000000)
    >>> book.spread()
    25
    """

    def __cinit__(self, *, price_decimals, qty_decimals, capacity=1024):
        check_decimals(price_decimals, "price_decimals")
        check_decimals(qty_decimals, "qty_decimals")
        if not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be a non-negative int, got {capacity!r}")
        if capacity > _MAX_CAPACITY:
            raise MemoryError(f"capacity {capacity} is too large")
        if fb_book_init(&self._book, price_decimals, qty_decimals, capacity) < 0:
            raise MemoryError(f"fastbook: cannot allocate {capacity} levels per side")

    def __dealloc__(self):
        fb_book_free(&self._book)

    # -- properties ----------------------------------------------------------
    @property
    def price_decimals(self):
        """Decimal places of prices (the fixed-point scale)."""
        return self._book.price_decimals

    @property
    def qty_decimals(self):
        """Decimal places of quantities (the fixed-point scale)."""
        return self._book.qty_decimals

    @property
    def missing_deletes(self):
        """How many quantity-0 updates named a level that did not exist (each a no-op)."""
        if self._busy:
            _raise_busy()
        return self._book.missing_deletes

    @property
    def nbytes(self):
        """Bytes of level storage allocated (both sides), excluding the object header."""
        if self._busy:
            _raise_busy()
        return BYTES_PER_LEVEL * (self._book.ladders[0].capacity + self._book.ladders[1].capacity)

    def capacity(self, side):
        """Level slots allocated on ``side``."""
        if self._busy:
            _raise_busy()
        return self._book.ladders[valid_side(side) - 1].capacity

    def reserve(self, side, capacity):
        """Preallocate room for ``capacity`` levels on ``side``."""
        if self._busy:
            _raise_busy()
        cdef int s = valid_side(side)
        cdef int64_t cap = as_i64(capacity, "capacity")
        if cap < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if cap > _MAX_CAPACITY or fb_book_reserve(&self._book, s, <Py_ssize_t>cap) < 0:
            raise MemoryError(f"fastbook: cannot allocate {capacity} levels")

    # -- updates -------------------------------------------------------------
    def set(self, side, price, qty):
        """Set the absolute quantity at ``price`` on ``side``.

        A quantity of 0 deletes the level; deleting an absent level is a no-op
        (counted in ``missing_deletes``). Returns True when the best level of
        that side changed. Raises ``UpdateError`` (book unchanged) for a bad
        side, a negative quantity or ``INT64_MIN`` as price.
        """
        if self._busy:
            _raise_busy()
        cdef int rc = _book_set(&self._book, as_side(side), as_i64(price, "price"),
                                as_i64(qty, "qty"))
        if rc < 0:
            _raise_status(rc, side, price, qty)
        return rc == FB_TOP_CHANGED

    def set_str(self, side, price_text, qty_text):
        """Like ``set`` with decimal text (str or bytes) parsed exactly at the book's scales."""
        if self._busy:
            _raise_busy()
        cdef int64_t price = _parse_text(price_text, self._book.price_decimals, "price")
        cdef int64_t qty = _parse_text(qty_text, self._book.qty_decimals, "quantity")
        cdef int rc = _book_set(&self._book, as_side(side), price, qty)
        if rc < 0:
            _raise_status(rc, side, price_text, qty_text)
        return rc == FB_TOP_CHANGED

    def apply(self, sides, prices, qtys):
        """Apply a batch of updates from numpy arrays, in order, with the GIL released.

        Parameters
        ----------
        sides : numpy.ndarray of int8
            ``fastbook.BID`` or ``fastbook.ASK`` per update.
        prices, qtys : numpy.ndarray of int64
            Fixed-point price and absolute quantity (0 deletes).

        All three must be 1-dimensional, C-contiguous, native byte order and of
        equal length. The whole batch is validated before anything changes, so
        an ``UpdateError`` (naming the first bad index) leaves the book as it was.

        Returns
        -------
        int
            The number of updates applied.
        """
        cdef cnp.ndarray a_s = _check_array(sides, cnp.NPY_INT8, "sides", "int8")
        cdef cnp.ndarray a_p = _check_array(prices, cnp.NPY_INT64, "prices", "int64")
        cdef cnp.ndarray a_q = _check_array(qtys, cnp.NPY_INT64, "qtys", "int64")
        cdef Py_ssize_t n = cnp.PyArray_DIMS(a_s)[0], bad, applied = 0
        cdef const int8_t *ps = <const int8_t *>cnp.PyArray_DATA(a_s)
        cdef const int64_t *pp = <const int64_t *>cnp.PyArray_DATA(a_p)
        cdef const int64_t *pq = <const int64_t *>cnp.PyArray_DATA(a_q)
        cdef int rc = FB_OK
        if cnp.PyArray_DIMS(a_p)[0] != n or cnp.PyArray_DIMS(a_q)[0] != n:
            raise ArrayError(
                f"sides, prices and qtys must have equal lengths, got "
                f"{n}, {cnp.PyArray_DIMS(a_p)[0]} and {cnp.PyArray_DIMS(a_q)[0]}"
            )
        if self._busy:
            _raise_busy()
        if n >= _NOGIL_MIN_BATCH:
            # other threads may run while the GIL is released; every method
            # checks _busy, so they get an error instead of a torn book
            self._busy = True
            try:
                with nogil:
                    rc = _validate_and_apply(&self._book, ps, pp, pq, n, &applied, &bad)
            finally:
                self._busy = False
        else:
            rc = _validate_and_apply(&self._book, ps, pp, pq, n, &applied, &bad)
        if bad >= 0:
            try:
                _raise_status(_book_check(ps[bad], pp[bad], pq[bad]),
                              ps[bad], pp[bad], pq[bad])
            except UpdateError as exc:
                raise UpdateError(f"update {bad}: {exc}", bad) from None
        if rc < 0:
            raise MemoryError(
                f"fastbook: cannot grow the level arrays; the first {applied} of {n} "
                f"updates were applied"
            )
        return n

    def clear(self):
        """Remove every level (capacity is kept)."""
        if self._busy:
            _raise_busy()
        fb_book_clear(&self._book)

    # -- reads ---------------------------------------------------------------
    def best_bid(self):
        """``(price, qty)`` of the best bid, or None when there are no bids."""
        return _best_level(self, FB_BID)

    def best_ask(self):
        """``(price, qty)`` of the best ask, or None when there are no asks."""
        return _best_level(self, FB_ASK)

    def bbo(self):
        """``(bid_price, bid_qty, ask_price, ask_qty)``; an empty side gives None, None."""
        if self._busy:
            _raise_busy()
        cdef int64_t bp = 0, bq = 0, ap = 0, aq = 0
        cdef bint hb = fb_book_best(&self._book, FB_BID, &bp, &bq)
        cdef bint ha = fb_book_best(&self._book, FB_ASK, &ap, &aq)
        if hb and ha:
            return (bp, bq, ap, aq)
        return (bp if hb else None, bq if hb else None,
                ap if ha else None, aq if ha else None)

    def spread(self):
        """Best ask minus best bid (an int), or None when a side is empty."""
        if self._busy:
            _raise_busy()
        cdef int64_t bp, bq, ap, aq
        if fb_book_best(&self._book, FB_BID, &bp, &bq) and \
                fb_book_best(&self._book, FB_ASK, &ap, &aq):
            return <object>ap - <object>bp
        return None

    def mid(self):
        """Mid price ``(bid + ask) // 2`` as an int (floor), or None when a side is empty.

        The exact mid is ``(bid + ask) / 2``; when ``spread()`` is odd it lies
        half a unit above this value.
        """
        if self._busy:
            _raise_busy()
        cdef int64_t bp, bq, ap, aq
        if fb_book_best(&self._book, FB_BID, &bp, &bq) and \
                fb_book_best(&self._book, FB_ASK, &ap, &aq):
            return (<object>ap + <object>bp) // 2
        return None

    def qty_at(self, side, price):
        """Quantity resting at ``price`` on ``side`` (0 when there is no level)."""
        if self._busy:
            _raise_busy()
        return fb_book_qty_at(&self._book, valid_side(side), as_i64(price, "price"))

    def depth(self, side):
        """Number of price levels on ``side``."""
        if self._busy:
            _raise_busy()
        return fb_book_depth(&self._book, valid_side(side))

    def __len__(self):
        if self._busy:
            _raise_busy()
        return self._book.ladders[0].count + self._book.ladders[1].count

    def is_crossed(self):
        """True when best bid >= best ask (crossed or locked): never valid for one venue."""
        if self._busy:
            _raise_busy()
        cdef int64_t bp, bq, ap, aq
        return bool(fb_book_best(&self._book, FB_BID, &bp, &bq)
                    and fb_book_best(&self._book, FB_ASK, &ap, &aq) and bp >= ap)

    def top(self, n, out=None):
        """The best ``n`` levels of both sides as one ``int64`` array of shape ``(4, n)``.

        Rows are ``[bid_prices, bid_qtys, ask_prices, ask_qtys]``; column ``i``
        is the ``i``-th best level (0 = best). Missing levels are 0 in both
        price and quantity (a real level never has quantity 0).

        Parameters
        ----------
        n : int
            Levels per side (>= 0).
        out : numpy.ndarray, optional
            A C-contiguous, writeable ``int64`` array of shape ``(4, n)``. When
            given it is filled and returned, and nothing is allocated.
        """
        if self._busy:
            _raise_busy()
        cdef cnp.ndarray a = top_array(n, out)
        cdef int64_t *base
        cdef Py_ssize_t count = cnp.PyArray_DIMS(a)[1]
        base = <int64_t *>cnp.PyArray_DATA(a)
        fb_book_top(&self._book, count, base, base + count, base + 2 * count, base + 3 * count)
        return a

    def to_arrays(self, side):
        """Every level of ``side``, best first, as ``(prices, qtys)`` int64 arrays (copies)."""
        if self._busy:
            _raise_busy()
        cdef const fb_ladder *lad
        cdef cnp.ndarray prices, qtys
        cdef int64_t *pp
        cdef int64_t *pq
        cdef Py_ssize_t i, n, top
        cdef int s = valid_side(side)
        lad = &self._book.ladders[s - 1]
        n = lad.count
        prices = np.empty(n, dtype=np.int64)
        qtys = np.empty(n, dtype=np.int64)
        pp = <int64_t *>cnp.PyArray_DATA(prices)
        pq = <int64_t *>cnp.PyArray_DATA(qtys)
        top = n - 1
        for i in range(n):
            pp[i] = lad.keys[top - i] if s == FB_BID else -lad.keys[top - i]
            pq[i] = lad.qtys[top - i]
        return prices, qtys

    def levels(self, side):
        """Iterate ``(price, qty)`` of ``side``, best first.

        Raises RuntimeError if the book is modified during iteration.
        """
        if self._busy:
            _raise_busy()
        cdef _LevelIterator it
        cdef int s = valid_side(side)
        it = _LevelIterator.__new__(_LevelIterator)
        it._owner = self
        it._side = s
        it._i = 0
        it._done = False
        it._version = self._book.version
        return it

    def __iter__(self):
        """Iterate ``(side, price, qty)``: all bids best first, then all asks best first."""
        for price, qty in self.levels(FB_BID):
            yield (BID, price, qty)
        for price, qty in self.levels(FB_ASK):
            yield (ASK, price, qty)

    # -- text helpers ----------------------------------------------------------
    def parse_price(self, text):
        """Parse price text at this book's ``price_decimals``."""
        return _parse_text(text, self._book.price_decimals, "price")

    def parse_qty(self, text):
        """Parse quantity text at this book's ``qty_decimals``."""
        return _parse_text(text, self._book.qty_decimals, "quantity")

    def format_price(self, price, *, bint strip=False):
        """Format a fixed-point price as text at this book's scale."""
        return format_decimal(price, self._book.price_decimals, strip=strip)

    def format_qty(self, qty, *, bint strip=False):
        """Format a fixed-point quantity as text at this book's scale."""
        return format_decimal(qty, self._book.qty_decimals, strip=strip)

    # -- copying and pickling --------------------------------------------------
    def copy(self):
        """An independent copy of this book."""
        if self._busy:
            _raise_busy()
        cdef Book other = Book(price_decimals=self._book.price_decimals,
                               qty_decimals=self._book.qty_decimals, capacity=0)
        cdef int s
        for s in range(2):
            other._load_ladder(s + 1, *self.to_arrays(s + 1))
        other._book.missing_deletes = self._book.missing_deletes
        return other

    def _load_ladder(self, int side, cnp.ndarray prices, cnp.ndarray qtys):
        if self._busy:
            _raise_busy()
        # best-first arrays from to_arrays(); used by copy() and unpickling
        cdef Py_ssize_t n = prices.shape[0], i
        cdef fb_ladder *lad = &self._book.ladders[side - 1]
        cdef const int64_t[::1] vp = prices
        cdef const int64_t[::1] vq = qtys
        if _ladder_reserve(lad, n) < 0:
            raise MemoryError(f"fastbook: cannot allocate {n} levels")
        for i in range(n):
            lad.keys[n - 1 - i] = vp[i] if side == FB_BID else -vp[i]
            lad.qtys[n - 1 - i] = vq[i]
        lad.count = n
        self._book.version += 1

    def __reduce__(self):
        if self._busy:
            _raise_busy()
        bids = self.to_arrays(FB_BID)
        asks = self.to_arrays(FB_ASK)
        return (_rebuild_book, (self._book.price_decimals, self._book.qty_decimals,
                                bids[0], bids[1], asks[0], asks[1],
                                self._book.missing_deletes))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __repr__(self):
        if self._busy:
            _raise_busy()
        cdef int64_t bp, bq, ap, aq
        bid = ask = "None"
        if fb_book_best(&self._book, FB_BID, &bp, &bq):
            bid = f"{self.format_price(bp)} x {self.format_qty(bq, strip=True)}"
        if fb_book_best(&self._book, FB_ASK, &ap, &aq):
            ask = f"{self.format_price(ap)} x {self.format_qty(aq, strip=True)}"
        return (f"<fastbook.Book price_decimals={self._book.price_decimals} "
                f"qty_decimals={self._book.qty_decimals} "
                f"bids={self._book.ladders[0].count} asks={self._book.ladders[1].count} "
                f"best_bid={bid} best_ask={ask}>")


cdef inline int _book_check(int side, int64_t price, int64_t qty) noexcept nogil:
    if side != FB_BID and side != FB_ASK:
        return FB_ESIDE
    if qty < 0:
        return FB_EQTY
    if price == INT64_MIN:
        return FB_EPRICE
    return FB_OK


def _rebuild_book(int price_decimals, int qty_decimals, bid_prices, bid_qtys,
                  ask_prices, ask_qtys, missing_deletes=0):
    cdef Book book = Book(price_decimals=price_decimals, qty_decimals=qty_decimals,
                          capacity=0)
    book._load_ladder(FB_BID, np.ascontiguousarray(bid_prices, dtype=np.int64),
                      np.ascontiguousarray(bid_qtys, dtype=np.int64))
    book._load_ladder(FB_ASK, np.ascontiguousarray(ask_prices, dtype=np.int64),
                      np.ascontiguousarray(ask_qtys, dtype=np.int64))
    book._book.missing_deletes = missing_deletes
    return book
