# cython: language_level=3
"""Compiled core of fastbook: fixed-point text and the L2 price-level book.

State lives in C structs (see ``_core.pxd``) and is changed by free ``nogil``
functions that report failure with negative status codes; the ``Book`` class
owns the struct, validates at the Python edge and turns codes into exceptions.
The pure-Python twin in ``fastbook._pycore`` defines the behaviour this module
must match exactly (``tests/core/test_differential.py``).
"""

cimport cython
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport INT64_MAX, INT64_MIN, int8_t, int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memmove, memset

from fastbook._edge cimport (
    MAX_SCALE, as_capacity, as_i64, as_side, check_decimals, raise_read_only, side_message,
    top_array, valid_side,
)
from fastbook._mem cimport grow_to
from fastbook._reads cimport (
    bbo_tuple, best_text, crossed, fb_bbo, level_or_none, mid_of, spread_of, top_rows,
)
from fastbook._search cimport lower_bound

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
        try:
            ptr = PyUnicode_AsUTF8AndSize(text, &n)
        except UnicodeError:        # a lone surrogate: no UTF-8, and never a digit
            raise DecodeError(f"cannot parse {what} {text!r} at {decimals} decimals: "
                              f"{_PARSE_REASONS[FB_EPARSE_SYNTAX]}") from None
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


def parse_decimal(text, decimals, /):
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


def format_decimal(value, decimals, /, *, bint strip=False):
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

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #include <intrin.h>
    static __inline int fb_clz64(unsigned __int64 x) {
        unsigned long i; _BitScanReverse64(&i, x); return 63 - (int)i;
    }
    static __inline int fb_ctz64(unsigned __int64 x) {
        unsigned long i; _BitScanForward64(&i, x); return (int)i;
    }
    #else
    #define fb_clz64(x) __builtin_clzll(x)
    #define fb_ctz64(x) __builtin_ctzll(x)
    #endif
    """
    # both undefined for 0
    int fb_clz64(uint64_t x) noexcept nogil
    int fb_ctz64(uint64_t x) noexcept nogil


# Window sizing (see fb_ladder in _core.pxd). A window spans twice the key range of the
# top _W_LEVELS levels, at least _W_MIN and at most _W_MAX slots, and at most
# _W_PER_LEVEL slots per level of the side, so a sparse side does not get a window of
# mostly empty slots. The best level is placed a quarter of the window below its top, so
# the price can rise that far before the window has to move.
cdef enum:
    _W_MIN = 64
    _W_MAX = 1 << 16
    _W_LEVELS = 512
    _W_PER_LEVEL = 16
    # a window must hold at least this many levels (or all of them), else sorted mode
    _W_MIN_LEVELS = 4
    # sorted mode retries a window after max(_RETRY_MIN, levels) more inserts
    _RETRY_MIN = 8
cdef enum:
    # what _build_window may assume about the keys' grid
    _GRID_UNKNOWN = 0
    _GRID_KNOWN = 1
    _GRID_BUT_FRESH = 2
# Window keys stay within +-2**62 (no overflow in wlo + slot * quantum): the best key must
# be within +-_KEY_LIMIT and the quantum at most _Q_LIMIT (_Q_LIMIT * _W_MAX <= 2**61).
cdef int64_t _KEY_LIMIT = (<int64_t>1) << 61
cdef uint64_t _Q_LIMIT = (<uint64_t>1) << 45


cdef int _ladder_reserve(fb_ladder *lad, Py_ssize_t need) noexcept nogil:
    """Make room for ``need`` levels in the sorted store, growing geometrically; FB_ENOMEM."""
    cdef Py_ssize_t cap
    if need <= lad.capacity:
        return FB_OK
    cap = lad.capacity * 2 if lad.capacity >= _MIN_CAPACITY else _MIN_CAPACITY
    if cap < need:
        cap = need
    if cap > _MAX_CAPACITY or need > _MAX_CAPACITY:
        return FB_ENOMEM
    if not (grow_to(<void **>&lad.keys, cap, sizeof(int64_t))
            and grow_to(<void **>&lad.qtys, cap, sizeof(int64_t))):
        return FB_ENOMEM    # capacity stays at the old, valid value
    lad.capacity = cap
    return FB_OK


# --- the learned price grid: exact division by the quantum -------------------------------
#
# quantum = odd << qshift. For odd ``o`` with inverse ``inv`` modulo 2**64, ``x`` is a
# multiple of ``o`` exactly when ``x * inv mod 2**64 <= (2**64 - 1) // o``, and the product
# is then ``x // o`` (Granlund and Montgomery). So an index is a mask test, a shift and a
# multiply, with no division on the hot path.

cdef inline uint64_t _odd_inverse(uint64_t odd) noexcept nogil:
    # Newton's iteration doubles the correct low bits: 3 (odd * odd == 1 mod 8), 6, ..., 96
    cdef uint64_t x = odd
    cdef int _
    for _ in range(5):
        x *= <uint64_t>2 - odd * x
    return x


cdef inline uint64_t _quotient(uint64_t d, uint64_t q, uint64_t *out) noexcept nogil:
    """``d // q`` into ``out`` when ``q`` divides ``d`` (returns 1), else 0. Slow path only."""
    cdef int shift = fb_ctz64(q)
    cdef uint64_t odd = q >> shift, m
    if d & ((<uint64_t>1 << shift) - 1):
        return 0
    m = (d >> shift) * _odd_inverse(odd)
    if m > <uint64_t>-1 // odd:
        return 0
    out[0] = m
    return 1


cdef uint64_t _gcd(uint64_t a, uint64_t b) noexcept nogil:
    """Binary gcd of two nonzero numbers."""
    cdef int shift = fb_ctz64(a | b)
    cdef uint64_t t
    a >>= fb_ctz64(a)
    while b:
        b >>= fb_ctz64(b)
        if a > b:
            t = a
            a = b
            b = t
        b -= a
    return a << shift


cdef inline void _set_quantum(fb_ladder *lad, uint64_t q) noexcept nogil:
    lad.quantum = <int64_t>q
    lad.qshift = fb_ctz64(q)
    lad.qmask = (<uint64_t>1 << lad.qshift) - 1
    lad.qinv = _odd_inverse(q >> lad.qshift)
    lad.qlim = <uint64_t>-1 // (q >> lad.qshift)


cdef inline Py_ssize_t _next_pow2(uint64_t x) noexcept nogil:
    cdef Py_ssize_t p = 1
    while <uint64_t>p < x:
        p <<= 1
    return p


# --- window bits -------------------------------------------------------------------------

@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline Py_ssize_t _scan_down(const uint64_t *bits, Py_ssize_t i) noexcept nogil:
    """Highest set bit at or below ``i``, or -1."""
    cdef Py_ssize_t w
    cdef uint64_t word
    if i < 0:
        return -1
    w = i >> 6
    word = bits[w] & (<uint64_t>-1 >> (63 - (i & 63)))
    while True:
        if word:
            return (w << 6) + 63 - fb_clz64(word)
        w -= 1
        if w < 0:
            return -1
        word = bits[w]


cdef void _dump_window(fb_ladder *lad) noexcept nogil:
    """Move every window level to the top of the sorted store (sorted mode, window zeroed).

    The window's keys are all above the sorted store's, so appending them in ascending
    order keeps the store sorted; ``capacity`` covers the whole side, so this never
    allocates.
    """
    cdef Py_ssize_t w, slot, n = lad.count
    cdef uint64_t word
    for w in range(lad.wsize >> 6):
        word = lad.wbits[w]
        if word == 0:
            continue
        lad.wbits[w] = 0
        while word:
            slot = (w << 6) + fb_ctz64(word)
            word &= word - 1
            lad.keys[n] = lad.wlo + slot * lad.quantum
            lad.qtys[n] = lad.wqtys[slot]
            lad.wqtys[slot] = 0
            n += 1
    lad.count = n
    lad.wcount = 0
    lad.wsize = 0
    lad.wmode = FB_LADDER_SORTED


cdef int _window_alloc(fb_ladder *lad, Py_ssize_t size) noexcept nogil:
    """Make ``size`` zeroed window slots available (FB_ENOMEM leaves the old ones)."""
    cdef int64_t *q
    cdef uint64_t *b
    if size <= lad.wcap:
        return FB_OK
    q = <int64_t *>calloc(<size_t>size, sizeof(int64_t))
    b = <uint64_t *>calloc(<size_t>(size >> 6), sizeof(uint64_t))
    if q == NULL or b == NULL:
        free(q)
        free(b)
        return FB_ENOMEM
    # the window is empty whenever it is resized, so nothing is copied
    free(lad.wqtys)
    free(lad.wbits)
    lad.wqtys = q
    lad.wbits = b
    lad.wcap = size
    return FB_OK


cdef void _sorted_mode(fb_ladder *lad) noexcept nogil:
    cdef Py_ssize_t n = lad.count
    lad.wmode = FB_LADDER_SORTED
    lad.wsize = 0
    lad.retry = n if n > _RETRY_MIN else _RETRY_MIN


cdef inline uint64_t _refine(uint64_t q, uint64_t d) noexcept nogil:
    """The grid after a key gap ``d`` (> 0): ``q`` if it divides ``d``, else their gcd."""
    cdef uint64_t unused
    if q == 0:
        return d
    if _quotient(d, q, &unused):
        return q
    return _gcd(q, d)


cdef void _build_window(fb_ladder *lad, int grid, int64_t fresh) noexcept nogil:
    """Move the top of the sorted store into a new window, or stay in sorted mode.

    Precondition: the window is empty and zeroed (sorted mode, or just dumped). It learns
    the grid, sizes the window for the top levels, and gives up (sorted mode, retried
    later) when the prices are too sparse, too extreme, or memory is short.

    ``grid`` says what is known of the keys: _GRID_UNKNOWN, every gap to the best key is
    checked (the gcd of the gaps refines any quantum known before; O(levels)); _GRID_KNOWN,
    every key is on ``lad.quantum``'s grid (they came from a window); _GRID_BUT_FRESH, every
    key but ``fresh`` is, so only its gap to one other key is checked. The last two cost
    O(window slots) only, so a top that keeps moving up never pays for the whole side.
    """
    cdef Py_ssize_t n = lad.count, i, k, size, cap, lo_index, slot
    cdef int64_t best, wlo
    cdef uint64_t q = <uint64_t>lad.quantum if lad.quantum > 0 else 0
    cdef uint64_t d, span = 0
    cdef int shift = 0
    cdef uint64_t odd = 0, inv = 0, lim = 0
    cdef int64_t other
    if n == 0:
        _sorted_mode(lad)
        lad.retry = 0
        return
    best = lad.keys[n - 1]
    if best > _KEY_LIMIT or best < -_KEY_LIMIT:
        _sorted_mode(lad)
        return
    if grid == _GRID_UNKNOWN or q == 0:
        if q:
            shift = fb_ctz64(q)
            odd = q >> shift
            inv = _odd_inverse(odd)
            lim = <uint64_t>-1 // odd
        # every gap to the best key must be a multiple of q
        for i in range(n - 1):
            d = <uint64_t>best - <uint64_t>lad.keys[i]
            if q and not (d & ((<uint64_t>1 << shift) - 1)) and ((d >> shift) * inv) <= lim:
                continue
            q = _gcd(q, d) if q else d
            shift = fb_ctz64(q)
            odd = q >> shift
            inv = _odd_inverse(odd)
            lim = <uint64_t>-1 // odd
    elif grid == _GRID_BUT_FRESH and n >= 2:
        other = lad.keys[n - 1] if lad.keys[n - 1] != fresh else lad.keys[n - 2]
        d = <uint64_t>fresh - <uint64_t>other if fresh > other \
            else <uint64_t>other - <uint64_t>fresh
        q = _refine(q, d)
    if q == 0 or q > _Q_LIMIT:
        _sorted_mode(lad)
        return
    _set_quantum(lad, q)        # learned even if the side turns out too sparse below
    # size: twice the span of the top _W_LEVELS levels, within the limits
    k = n if n < _W_LEVELS else _W_LEVELS
    _quotient(<uint64_t>best - <uint64_t>lad.keys[n - k], q, &span)
    span += 1
    size = _next_pow2(2 * span) if span < _W_MAX else _W_MAX
    if size < _W_MIN:
        size = _W_MIN
    cap = _next_pow2(<uint64_t>n * _W_PER_LEVEL)
    if cap < _W_MIN:
        cap = _W_MIN
    if size > cap:
        size = cap
    if size > _W_MAX:
        size = _W_MAX
    wlo = best - <int64_t>(size - 1 - size // 4) * <int64_t>q
    lo_index = lower_bound(lad.keys, n, wlo)
    if n - lo_index < (n if n < _W_MIN_LEVELS else _W_MIN_LEVELS):
        _sorted_mode(lad)
        return
    if _window_alloc(lad, size) < 0:
        _sorted_mode(lad)
        return
    lad.wlo = wlo
    lad.wsize = size
    for i in range(lo_index, n):
        # every gap is a multiple of q (learned above): the exact quotient, no check
        slot = <Py_ssize_t>(((<uint64_t>lad.keys[i] - <uint64_t>wlo) >> lad.qshift) * lad.qinv)
        lad.wqtys[slot] = lad.qtys[i]
        lad.wbits[slot >> 6] |= <uint64_t>1 << (slot & 63)
    lad.wbest = size - 1 - size // 4
    lad.wcount = n - lo_index
    lad.count = lo_index
    lad.wmode = FB_LADDER_WINDOW
    # inserts below the window before it is rebuilt (and perhaps resized)
    lad.retry = n if n > size else size


cdef inline int _room_for_one(fb_ladder *lad) noexcept nogil:
    """Capacity for one more level of the side (the twin's growth rule); FB_ENOMEM."""
    if lad.count + lad.wcount == lad.capacity:
        return _ladder_reserve(lad, lad.count + lad.wcount + 1)
    return FB_OK


cdef inline bint _sorted_insert_at(fb_ladder *lad, Py_ssize_t pos, int64_t key,
                                   int64_t qty) noexcept nogil:
    """Insert a new level at ``pos`` of the sorted store (capacity available); True at the top."""
    cdef Py_ssize_t tail = lad.count - pos
    if tail:
        memmove(&lad.keys[pos + 1], &lad.keys[pos], <size_t>tail * sizeof(int64_t))
        memmove(&lad.qtys[pos + 1], &lad.qtys[pos], <size_t>tail * sizeof(int64_t))
    lad.keys[pos] = key
    lad.qtys[pos] = qty
    lad.count += 1
    return tail == 0


cdef int _insert_rebuild(fb_book *book, fb_ladder *lad, int64_t key, int64_t qty) noexcept nogil:
    """Window mode: a new level the window cannot take (above it, or off its grid)."""
    cdef int64_t best = lad.wlo + lad.wbest * lad.quantum
    cdef int rc = _room_for_one(lad)
    if rc < 0:
        return rc
    _dump_window(lad)
    _sorted_insert_at(lad, lower_bound(lad.keys, lad.count, key), key, qty)
    book.version += 1
    _build_window(lad, _GRID_BUT_FRESH, key)
    return FB_TOP_CHANGED if key > best else FB_OK


cdef int _sorted_set(fb_book *book, fb_ladder *lad, int64_t key, int64_t qty) noexcept nogil:
    """A level in the sorted store: sorted mode, or below the window."""
    cdef Py_ssize_t n = lad.count, pos, tail
    cdef bint windowed = lad.wmode == FB_LADDER_WINDOW, top
    cdef uint64_t m
    cdef int rc
    pos = lower_bound(lad.keys, n, key)
    if pos < n and lad.keys[pos] == key:
        if qty == 0:
            tail = n - pos - 1
            if tail:
                memmove(&lad.keys[pos], &lad.keys[pos + 1], <size_t>tail * sizeof(int64_t))
                memmove(&lad.qtys[pos], &lad.qtys[pos + 1], <size_t>tail * sizeof(int64_t))
            lad.count = n - 1
            book.version += 1
            return FB_TOP_CHANGED if tail == 0 and not windowed else FB_OK
        if lad.qtys[pos] == qty:
            return FB_OK
        lad.qtys[pos] = qty
        book.version += 1
        return FB_TOP_CHANGED if pos == n - 1 and not windowed else FB_OK
    if qty == 0:
        book.missing_deletes += 1
        return FB_OK
    if windowed:
        # below the window: it must be on the window's grid
        m = <uint64_t>lad.wlo - <uint64_t>key
        if (m & lad.qmask) or ((m >> lad.qshift) * lad.qinv) > lad.qlim:
            return _insert_rebuild(book, lad, key, qty)
    rc = _room_for_one(lad)
    if rc < 0:
        return rc
    top = _sorted_insert_at(lad, pos, key, qty)
    book.version += 1
    lad.retry -= 1
    if windowed:
        # levels piling up below the window: rebuild it, sized for the deeper top
        if lad.retry <= 0:
            _dump_window(lad)
            _build_window(lad, _GRID_KNOWN, 0)
        return FB_OK
    if lad.retry <= 0:
        _build_window(lad, _GRID_UNKNOWN, 0)
    return FB_TOP_CHANGED if top else FB_OK


cdef enum:
    # _slot_of's answers other than a slot
    _BELOW = -1                 # sorted mode, or below the window: the sorted store
    _NOWHERE = -2               # above the window or off its grid: no level can be there


cdef inline Py_ssize_t _slot_of(const fb_ladder *lad, int64_t key) noexcept nogil:
    """The window slot of ``key``, or _BELOW / _NOWHERE."""
    cdef uint64_t d
    if lad.wmode != FB_LADDER_WINDOW or key < lad.wlo:
        return _BELOW
    d = <uint64_t>key - <uint64_t>lad.wlo
    if d & lad.qmask:
        return _NOWHERE
    # a quotient below wsize also proves divisibility: a non-multiple gives a product
    # above (2**64 - 1) // odd >= 2**19 > wsize
    d = (d >> lad.qshift) * lad.qinv
    return <Py_ssize_t>d if d < <uint64_t>lad.wsize else _NOWHERE


cdef inline int _window_set(fb_book *book, fb_ladder *lad, Py_ssize_t slot,
                            int64_t qty) noexcept nogil:
    cdef int64_t old = lad.wqtys[slot]
    cdef uint64_t bit = <uint64_t>1 << (slot & 63)
    cdef int rc
    if qty == 0:
        if old == 0:
            book.missing_deletes += 1
            return FB_OK
        lad.wqtys[slot] = 0
        lad.wbits[slot >> 6] &= ~bit
        lad.wcount -= 1
        book.version += 1
        if slot != lad.wbest:
            return FB_OK
        if lad.wcount:
            lad.wbest = _scan_down(lad.wbits, slot - 1)
            # the top fell into the window's bottom quarter: recentre while levels wait below
            if lad.wbest < (lad.wsize >> 2) and lad.count:
                _dump_window(lad)
                _build_window(lad, _GRID_KNOWN, 0)
        elif lad.count:
            _dump_window(lad)
            _build_window(lad, _GRID_KNOWN, 0)
        else:
            _sorted_mode(lad)
            lad.retry = 0
        return FB_TOP_CHANGED
    if old == 0:
        rc = _room_for_one(lad)
        if rc < 0:
            return rc
        lad.wqtys[slot] = qty
        lad.wbits[slot >> 6] |= bit
        lad.wcount += 1
        book.version += 1
        if slot > lad.wbest:
            lad.wbest = slot
            return FB_TOP_CHANGED
        return FB_OK
    if old == qty:
        return FB_OK
    lad.wqtys[slot] = qty
    book.version += 1
    return FB_TOP_CHANGED if slot == lad.wbest else FB_OK


cdef inline int _book_check(int side, int64_t price, int64_t qty) noexcept nogil:
    if side != FB_BID and side != FB_ASK:
        return FB_ESIDE
    if qty < 0:
        return FB_EQTY
    if price == INT64_MIN:
        return FB_EPRICE
    return FB_OK


cdef inline int _book_set(fb_book *book, int side, int64_t price,
                          int64_t qty) noexcept nogil:
    cdef fb_ladder *lad
    cdef int64_t key
    cdef Py_ssize_t slot
    cdef int rc = _book_check(side, price, qty)
    if rc < 0:
        return rc
    lad = &book.ladders[side - 1]
    key = price if side == FB_BID else -price
    slot = _slot_of(lad, key)
    if slot >= 0:
        return _window_set(book, lad, slot, qty)
    if slot == _NOWHERE:
        if qty == 0:
            book.missing_deletes += 1
            return FB_OK
        return _insert_rebuild(book, lad, key, qty)
    return _sorted_set(book, lad, key, qty)


cdef int fb_book_init(fb_book *book, int price_decimals, int qty_decimals,
                      Py_ssize_t capacity) noexcept nogil:
    """Set up ``book`` (old contents ignored) with ``capacity`` level slots per side."""
    cdef int rc
    cdef int s
    if price_decimals < 0 or price_decimals > 18 or qty_decimals < 0 or qty_decimals > 18:
        return FB_EDECIMALS
    memset(book, 0, sizeof(fb_book))
    book.price_decimals = price_decimals
    book.qty_decimals = qty_decimals
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
        free(book.ladders[s].wqtys)
        free(book.ladders[s].wbits)
        memset(&book.ladders[s], 0, sizeof(fb_ladder))


cdef int fb_book_reserve(fb_book *book, int side, Py_ssize_t capacity) noexcept nogil:
    """Ensure ``side`` can hold ``capacity`` levels without reallocating."""
    if side != FB_BID and side != FB_ASK:
        return FB_ESIDE
    return _ladder_reserve(&book.ladders[side - 1], capacity)


cdef void fb_book_clear(fb_book *book) noexcept nogil:
    """Remove every level and forget the learned grid; allocations are kept."""
    cdef fb_ladder *lad
    cdef int s
    for s in range(2):
        lad = &book.ladders[s]
        if lad.wsize:
            memset(lad.wqtys, 0, <size_t>lad.wsize * sizeof(int64_t))
            memset(lad.wbits, 0, <size_t>(lad.wsize >> 6) * sizeof(uint64_t))
        lad.count = 0
        lad.wcount = 0
        lad.quantum = 0
        _sorted_mode(lad)
        lad.retry = 0
    book.version += 1


cdef int fb_book_copy(fb_book *dst, const fb_book *src) noexcept nogil:
    """Deep copy of ``src`` into ``dst`` (old contents ignored); FB_ENOMEM leaves it empty."""
    cdef int s
    cdef fb_ladder *d
    cdef const fb_ladder *o
    dst[0] = src[0]
    for s in range(2):
        d = &dst.ladders[s]
        o = &src.ladders[s]
        d.keys = NULL
        d.qtys = NULL
        d.wqtys = NULL
        d.wbits = NULL
        d.capacity = 0
        d.wcap = 0
    for s in range(2):
        d = &dst.ladders[s]
        o = &src.ladders[s]
        if o.capacity:
            d.keys = <int64_t *>malloc(<size_t>o.capacity * sizeof(int64_t))
            d.qtys = <int64_t *>malloc(<size_t>o.capacity * sizeof(int64_t))
            if d.keys == NULL or d.qtys == NULL:
                fb_book_free(dst)
                return FB_ENOMEM
            d.capacity = o.capacity
            memcpy(d.keys, o.keys, <size_t>o.count * sizeof(int64_t))
            memcpy(d.qtys, o.qtys, <size_t>o.count * sizeof(int64_t))
        if o.wcap:
            d.wqtys = <int64_t *>malloc(<size_t>o.wcap * sizeof(int64_t))
            d.wbits = <uint64_t *>malloc(<size_t>(o.wcap >> 6) * sizeof(uint64_t))
            if d.wqtys == NULL or d.wbits == NULL:
                fb_book_free(dst)
                return FB_ENOMEM
            d.wcap = o.wcap
            memcpy(d.wqtys, o.wqtys, <size_t>o.wcap * sizeof(int64_t))
            memcpy(d.wbits, o.wbits, <size_t>(o.wcap >> 6) * sizeof(uint64_t))
    return FB_OK


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
    if n >= _BULK_MIN and _best_first_load(book, sides, prices, qtys, n):
        return _apply_reversed(book, sides, prices, qtys, n, applied)
    for i in range(n):
        rc = _book_set(book, sides[i], prices[i], qtys[i])
        if rc < 0:
            applied[0] = i
            return rc
    applied[0] = n
    return FB_OK


# A snapshot loaded best first into an empty book (the order venues send) would put
# every level after the first below the window and insert it at the front of the
# sorted store: quadratic (20,000 levels a side took 136 ms, 50,000 took 0.9 s).
# Applied worst first instead, each level goes on top, in O(1) amortized time.
cdef enum:
    _BULK_MIN = 64      # batches below this are cheap either way


cdef bint _best_first_load(const fb_book *book, const int8_t *sides, const int64_t *prices,
                           const int64_t *qtys, Py_ssize_t n) noexcept nogil:
    """True when ``book`` is empty and the (valid) batch gives each side strictly
    worse prices in order: the reversed batch then leaves the same book (its prices
    per side are distinct, so its updates commute) and counts the same missing deletes."""
    cdef Py_ssize_t i
    cdef int64_t key
    cdef int64_t last[2]
    cdef bint seen[2]
    cdef int s
    if fb_book_depth(book, FB_BID) or fb_book_depth(book, FB_ASK):
        return False
    seen[0] = seen[1] = False
    last[0] = last[1] = 0
    for i in range(n):
        s = sides[i]
        if _book_check(s, prices[i], qtys[i]) < 0:
            return False
        key = prices[i] if s == FB_BID else -prices[i]
        if seen[s - 1] and key >= last[s - 1]:
            return False
        seen[s - 1] = True
        last[s - 1] = key
    return True


cdef int _apply_reversed(fb_book *book, const int8_t *sides, const int64_t *prices,
                         const int64_t *qtys, Py_ssize_t n, Py_ssize_t *applied) noexcept nogil:
    """fb_book_apply of a best-first load (see _best_first_load), applied last first.

    The book was empty, so a failure (only FB_ENOMEM can happen) empties it again and
    reports 0 updates applied: still a prefix of the batch, as fb_book_apply promises.
    """
    cdef Py_ssize_t i
    cdef uint64_t missing = book.missing_deletes
    cdef int rc
    for i in range(n - 1, -1, -1):
        rc = _book_set(book, sides[i], prices[i], qtys[i])
        if rc < 0:
            fb_book_clear(book)
            book.missing_deletes = missing
            applied[0] = 0
            return rc
    applied[0] = n
    return FB_OK


cdef int64_t fb_book_qty_at(const fb_book *book, int side, int64_t price) noexcept nogil:
    """Quantity resting at ``price`` on ``side``; 0 when there is no such level."""
    cdef const fb_ladder *lad
    cdef int64_t key
    cdef Py_ssize_t pos, slot
    if (side != FB_BID and side != FB_ASK) or price == INT64_MIN:
        return 0
    lad = &book.ladders[side - 1]
    key = price if side == FB_BID else -price
    slot = _slot_of(lad, key)
    if slot >= 0:
        return lad.wqtys[slot]
    if slot == _NOWHERE:
        return 0
    pos = lower_bound(lad.keys, lad.count, key)
    if pos < lad.count and lad.keys[pos] == key:
        return lad.qtys[pos]
    return 0


cdef bint fb_book_worst(const fb_book *book, int side, int64_t *price,
                        int64_t *qty) noexcept nogil:
    """The worst (deepest) level of ``side``; False when the side is empty."""
    cdef const fb_ladder *lad
    cdef int64_t key
    cdef Py_ssize_t w, slot
    if side != FB_BID and side != FB_ASK:
        return False
    lad = &book.ladders[side - 1]
    if lad.count:
        key = lad.keys[0]
        qty[0] = lad.qtys[0]
    elif lad.wcount:
        w = 0
        while lad.wbits[w] == 0:
            w += 1
        slot = (w << 6) + fb_ctz64(lad.wbits[w])
        key = lad.wlo + slot * lad.quantum
        qty[0] = lad.wqtys[slot]
    else:
        return False
    price[0] = key if side == FB_BID else -key
    return True


# --- walking a side best first -----------------------------------------------------------

ctypedef struct _walk:
    Py_ssize_t slot             # next window slot to look at (downwards), -1 when done
    Py_ssize_t idx              # next sorted-store index (downwards), -1 when done


cdef inline void _walk_start(const fb_ladder *lad, _walk *w) noexcept nogil:
    w.slot = lad.wbest if lad.wcount else -1
    w.idx = lad.count - 1


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline bint _walk_next(const fb_ladder *lad, _walk *w, int64_t *key,
                            int64_t *qty) noexcept nogil:
    """The next level (key and quantity), best first; False after the last."""
    cdef Py_ssize_t s
    if w.slot >= 0:
        s = _scan_down(lad.wbits, w.slot)
        if s >= 0:
            key[0] = lad.wlo + s * lad.quantum
            qty[0] = lad.wqtys[s]
            w.slot = s - 1
            return True
        w.slot = -1
    if w.idx >= 0:
        key[0] = lad.keys[w.idx]
        qty[0] = lad.qtys[w.idx]
        w.idx -= 1
        return True
    return False


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _side_top(const fb_ladder *lad, Py_ssize_t n, int64_t sign,
                          int64_t *prices, int64_t *qtys) noexcept nogil:
    """Best ``n`` levels of one side (prices = sign * key), zero-padded; returns the count."""
    cdef _walk w
    cdef Py_ssize_t i = 0, j
    cdef int64_t key, qty
    _walk_start(lad, &w)
    while i < n and _walk_next(lad, &w, &key, &qty):
        prices[i] = sign * key
        qtys[i] = qty
        i += 1
    for j in range(i, n):
        prices[j] = 0
        qtys[j] = 0
    return i


cdef Py_ssize_t fb_book_top(const fb_book *book, Py_ssize_t n,
                            int64_t *bid_prices, int64_t *bid_qtys,
                            int64_t *ask_prices, int64_t *ask_qtys) noexcept nogil:
    """Copy the best ``n`` levels of each side, best first; pad with zeros.

    Returns the larger of the two sides' filled counts.
    """
    cdef Py_ssize_t nb = _side_top(&book.ladders[0], n, 1, bid_prices, bid_qtys)
    cdef Py_ssize_t na = _side_top(&book.ladders[1], n, -1, ask_prices, ask_qtys)
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


@cython.final
cdef class _Guard:
    """See _core.pxd: the busy and read-only state shared by a group of BookSets."""

    def __cinit__(self):
        self.sets = []


# the guard of every book in no BookSet: no set ever changes its flags
cdef _Guard _SOLO = _Guard()


cdef _Guard solo_guard():
    return _SOLO


cdef int _raise_busy() except -1:
    raise RuntimeError(
        "fastbook.Book is being modified by Book.apply (or BookSet.apply) in another "
        "thread; a book has one writer at a time (read it from the writer's thread, or "
        "copy it there)"
    )


cdef inline int _readable(Book book) except -1:
    # what every Book method checks first (see book_readable in _core.pxd)
    if book._busy or book._guard.sets_busy:
        _raise_busy()
    return 0


cdef inline int _writable(Book book) except -1:
    # ... and every update (the raising stays out of line, so this one inlines)
    if book._busy or book._guard.sets_busy or book._guard.read_only:
        _refuse_update(book)
    return 0


cdef int _refuse_update(Book book) except -1:
    _readable(book)
    raise_read_only(book)


cdef int book_readable(Book book) except -1:
    return _readable(book)


cdef int book_writable(Book book) except -1:
    return _writable(book)


cdef object _best_level(Book book, int side):
    cdef int64_t p = 0, q = 0
    cdef bint has
    _readable(book)
    has = fb_book_best(&book._book, side, &p, &q)
    return level_or_none(has, p, q)


cdef inline fb_bbo _bbo(const fb_book *book, bint both=False) noexcept nogil:
    # the best levels, for the builders of fastbook._reads (``both``: the ask only
    # matters when there is a bid, as for spread, mid and is_crossed)
    cdef fb_bbo t
    t.bid_price = t.bid_qty = t.ask_price = t.ask_qty = 0    # (read only where has_*)
    t.has_bid = fb_book_best(book, FB_BID, &t.bid_price, &t.bid_qty)
    t.has_ask = (t.has_bid or not both) and fb_book_best(book, FB_ASK, &t.ask_price, &t.ask_qty)
    return t


@cython.final
cdef class _LevelIterator:
    """Best-first iterator over one side; fails if the book changes under it."""
    cdef Book _owner
    cdef int _side
    cdef _walk _w
    cdef uint64_t _version
    cdef bint _done

    def __iter__(self):
        return self

    def __next__(self):
        cdef const fb_ladder *lad = &self._owner._book.ladders[self._side - 1]
        cdef int64_t key, qty
        if self._done:
            # exhausted iterators stay exhausted, as dict iterators do
            raise StopIteration
        _readable(self._owner)
        if self._owner._book.version != self._version:
            raise RuntimeError("fastbook.Book changed size or contents during iteration")
        if not _walk_next(lad, &self._w, &key, &qty):
            self._done = True
            raise StopIteration
        return (key if self._side == FB_BID else -key, qty)


cdef class Book:
    """An L2 (price-level) order book with fixed-point integer prices and quantities.

    Each side keeps its top levels in a window of slots indexed by price (the
    book learns the price grid from the prices it sees), so an update near the
    top is an index computation, and the levels below the window in a sorted
    ``int64`` array. The best price is read in O(1), and nothing is allocated
    once ``capacity`` is reached (it then grows geometrically) and the window
    has reached its size. See ``docs/architecture.md`` for the layout.

    Parameters
    ----------
    price_decimals, qty_decimals : int
        Fixed-point scales (0 to 18): price ``27431.50`` at 2 decimals is
        ``2743150``. Used by the ``*_str`` methods and ``repr``; the integer API
        never rescales.
    capacity : int, default 1024
        Levels to preallocate room for per side (the sorted array, which can
        always hold the whole side). The window is sized by the book itself.

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
        self._guard = _SOLO
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
        _readable(self)
        return self._book.missing_deletes

    @property
    def nbytes(self):
        """Bytes of level storage allocated (both sides), excluding the object header."""
        _readable(self)
        cdef Py_ssize_t total = 0
        cdef int s
        for s in range(2):
            total += BYTES_PER_LEVEL * self._book.ladders[s].capacity \
                + _window_nbytes(self._book.ladders[s].wcap)
        return total

    def capacity(self, side, /):
        """Levels ``side`` can hold before its arrays grow."""
        _readable(self)
        return self._book.ladders[valid_side(side) - 1].capacity

    def reserve(self, side, capacity, /):
        """Preallocate room for ``capacity`` levels on ``side``."""
        _readable(self)
        cdef int s = valid_side(side)
        cdef Py_ssize_t cap = as_capacity(capacity)
        if cap > _MAX_CAPACITY or fb_book_reserve(&self._book, s, cap) < 0:
            raise MemoryError(f"fastbook: cannot allocate {capacity} levels")

    # -- updates -------------------------------------------------------------
    # The per-call methods a Python loop calls millions of times are plain methods
    # (binding=False): CPython's call specialisation calls them directly, where a
    # binding (Cython function) method goes through two more calls; about 100
    # instructions less per call. The clinic signature keeps inspect.signature working.
    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def set(self, side, price, qty, /):
        """Set the absolute quantity at ``price`` on ``side``.

        A quantity of 0 deletes the level; deleting an absent level is a no-op
        (counted in ``missing_deletes``). Returns True when the best level of
        that side changed. Raises ``UpdateError`` (book unchanged) for a bad
        side, a negative quantity or ``INT64_MIN`` as price.
        """
        _writable(self)
        cdef int rc = _book_set(&self._book, as_side(side), as_i64(price, "price"),
                                as_i64(qty, "qty"))
        if rc < 0:
            _raise_status(rc, side, price, qty)
        return rc == FB_TOP_CHANGED

    def set_str(self, side, price_text, qty_text, /):
        """Like ``set`` with decimal text (str or bytes) parsed exactly at the book's scales."""
        _writable(self)
        cdef int64_t price = _parse_text(price_text, self._book.price_decimals, "price")
        cdef int64_t qty = _parse_text(qty_text, self._book.qty_decimals, "quantity")
        cdef int rc = _book_set(&self._book, as_side(side), price, qty)
        if rc < 0:
            _raise_status(rc, side, price_text, qty_text)
        return rc == FB_TOP_CHANGED

    def apply(self, sides, prices, qtys, /):
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
        cdef _Guard guard
        if cnp.PyArray_DIMS(a_p)[0] != n or cnp.PyArray_DIMS(a_q)[0] != n:
            raise ArrayError(
                f"sides, prices and qtys must have equal lengths, got "
                f"{n}, {cnp.PyArray_DIMS(a_p)[0]} and {cnp.PyArray_DIMS(a_q)[0]}"
            )
        _writable(self)
        if n >= _NOGIL_MIN_BATCH:
            # other threads may run while the GIL is released; every method
            # checks _busy, so they get an error instead of a torn book, and the
            # sets holding it see books_busy (the guard may not change meanwhile:
            # BookSet.add_book refuses a busy book)
            guard = self._guard
            self._busy = True
            guard.books_busy += 1
            try:
                with nogil:
                    rc = _validate_and_apply(&self._book, ps, pp, pq, n, &applied, &bad)
            finally:
                guard.books_busy -= 1
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
        _writable(self)
        fb_book_clear(&self._book)

    # -- reads ---------------------------------------------------------------
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
        """``(bid_price, bid_qty, ask_price, ask_qty)``; an empty side gives None, None."""
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
        """Mid price ``(bid + ask) // 2`` as an int (floor), or None when a side is empty.

        The exact mid is ``(bid + ask) / 2``; when ``spread()`` is odd it lies
        half a unit above this value.
        """
        _readable(self)
        return mid_of(_bbo(&self._book, True))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def qty_at(self, side, price, /):
        """Quantity resting at ``price`` on ``side`` (0 when there is no level)."""
        _readable(self)
        return fb_book_qty_at(&self._book, valid_side(side), as_i64(price, "price"))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def depth(self, side, /):
        """Number of price levels on ``side``."""
        _readable(self)
        return fb_book_depth(&self._book, valid_side(side))

    def __len__(self):
        _readable(self)
        return fb_book_depth(&self._book, FB_BID) + fb_book_depth(&self._book, FB_ASK)

    def is_crossed(self):
        """True when best bid >= best ask (crossed or locked): never valid for one venue."""
        _readable(self)
        return crossed(_bbo(&self._book, True))

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
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
        _readable(self)
        cdef Py_ssize_t count
        cdef cnp.ndarray a = top_array(n, out)
        cdef int64_t *base = top_rows(a, &count)
        fb_book_top(&self._book, count, base, base + count, base + 2 * count, base + 3 * count)
        return a

    def to_arrays(self, side, /):
        """Every level of ``side``, best first, as ``(prices, qtys)`` int64 arrays (copies)."""
        _readable(self)
        cdef cnp.ndarray prices, qtys
        cdef int s = valid_side(side)
        cdef Py_ssize_t n = fb_book_depth(&self._book, s)
        prices = np.empty(n, dtype=np.int64)
        qtys = np.empty(n, dtype=np.int64)
        _side_top(&self._book.ladders[s - 1], n, 1 if s == FB_BID else -1,
                  <int64_t *>cnp.PyArray_DATA(prices), <int64_t *>cnp.PyArray_DATA(qtys))
        return prices, qtys

    def _layout(self, side):
        """How ``side`` is stored (for tests and benchmarks; the keys may change).

        ``mode`` is "window" or "sorted"; ``quantum`` the learned price grid (0 while
        unknown); ``window_slots`` / ``window_levels`` / ``window_capacity`` the window's
        slots in use, levels and allocated slots; ``sorted_levels`` the levels below it.
        """
        _readable(self)
        cdef const fb_ladder *lad = &self._book.ladders[valid_side(side) - 1]
        return {
            "mode": "window" if lad.wmode == FB_LADDER_WINDOW else "sorted",
            "quantum": lad.quantum,
            "window_slots": lad.wsize,
            "window_levels": lad.wcount,
            "window_capacity": lad.wcap,
            "window_nbytes": _window_nbytes(lad.wcap),
            "sorted_levels": lad.count,
            "capacity": lad.capacity,
        }

    def levels(self, side, /):
        """Iterate ``(price, qty)`` of ``side``, best first.

        Raises RuntimeError if the book is modified during iteration.
        """
        _readable(self)
        cdef _LevelIterator it
        cdef int s = valid_side(side)
        it = _LevelIterator.__new__(_LevelIterator)
        it._owner = self
        it._side = s
        _walk_start(&self._book.ladders[s - 1], &it._w)
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
    def parse_price(self, text, /):
        """Parse price text at this book's ``price_decimals``."""
        return _parse_text(text, self._book.price_decimals, "price")

    def parse_qty(self, text, /):
        """Parse quantity text at this book's ``qty_decimals``."""
        return _parse_text(text, self._book.qty_decimals, "quantity")

    def format_price(self, price, /, *, bint strip=False):
        """Format a fixed-point price as text at this book's scale."""
        return format_decimal(price, self._book.price_decimals, strip=strip)

    def format_qty(self, qty, /, *, bint strip=False):
        """Format a fixed-point quantity as text at this book's scale."""
        return format_decimal(qty, self._book.qty_decimals, strip=strip)

    # -- copying and pickling --------------------------------------------------
    def copy(self):
        """An independent copy of this book."""
        _readable(self)
        cdef Book other = Book(price_decimals=self._book.price_decimals,
                               qty_decimals=self._book.qty_decimals, capacity=0)
        cdef int s
        for s in range(2):
            other._load_ladder(s + 1, *self.to_arrays(s + 1))
        other._book.missing_deletes = self._book.missing_deletes
        return other

    def _load_ladder(self, int side, cnp.ndarray prices, cnp.ndarray qtys):
        _readable(self)
        # best-first arrays from to_arrays(); used by copy() and unpickling
        cdef Py_ssize_t n = prices.shape[0], i
        cdef fb_ladder *lad = &self._book.ladders[side - 1]
        cdef const int64_t[::1] vp = prices
        cdef const int64_t[::1] vq = qtys
        if _ladder_reserve(lad, n) < 0:
            raise MemoryError(f"fastbook: cannot allocate {n} levels")
        if lad.wsize:
            memset(lad.wqtys, 0, <size_t>lad.wsize * sizeof(int64_t))
            memset(lad.wbits, 0, <size_t>(lad.wsize >> 6) * sizeof(uint64_t))
        lad.wcount = 0
        for i in range(n):
            lad.keys[n - 1 - i] = vp[i] if side == FB_BID else -vp[i]
            lad.qtys[n - 1 - i] = vq[i]
        lad.count = n
        _build_window(lad, _GRID_UNKNOWN, 0)
        self._book.version += 1

    def __reduce__(self):
        _readable(self)
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
        _readable(self)
        cdef fb_bbo t = _bbo(&self._book)
        return (f"<fastbook.Book price_decimals={self._book.price_decimals} "
                f"qty_decimals={self._book.qty_decimals} "
                f"bids={fb_book_depth(&self._book, FB_BID)} "
                f"asks={fb_book_depth(&self._book, FB_ASK)} "
                f"best_bid={best_text(self, t.has_bid, t.bid_price, t.bid_qty)} "
                f"best_ask={best_text(self, t.has_ask, t.ask_price, t.ask_qty)}>")


cdef inline Py_ssize_t _window_nbytes(Py_ssize_t slots) noexcept nogil:
    return slots * <Py_ssize_t>sizeof(int64_t) + (slots >> 6) * <Py_ssize_t>sizeof(uint64_t)


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
