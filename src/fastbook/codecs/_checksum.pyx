# cython: language_level=3
"""Compiled checksum kernel: Kraken and OKX book checksums and depth truncation.

Reads (and, for :func:`truncate`, updates) a ``fastbook.Book`` through the C
API of ``fastbook._core`` without any Python call per level: the best levels
are read with ``fb_book_top``, written as text into a stack buffer with
integer arithmetic only (the same text the venue formats; see the twin,
``fastbook.codecs._pychecksum``, for the rules written out literally), and
CRC32 is computed over it with slicing-by-8 tables. A book that is not a
compiled ``fastbook.Book`` (the pure-Python twin) goes to the twin.
:func:`parse_levels` parses the decoded ``[price, size, ...]`` string levels of
Kraken v1 and OKX messages with ``fb_parse_decimal``; anything it does not
accept is handed to the twin, which raises the error.
"""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport INT64_MIN, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from fastbook._core cimport (
    FB_ASK, FB_BID, FB_OK, Book, book_readable, fb_book, fb_book_depth, fb_book_set,
    fb_book_top, fb_book_worst, fb_parse_decimal,
)

from fastbook.codecs import _pychecksum

COMPILED = True

#: The most levels per side a checksum may cover (the text buffer is sized for it).
MAX_LEVELS = 64

cdef enum:
    _MAX_LEVELS = 64
    # Longest text of one number: "-", 19 padding zeros, 20 digits, 18 appended zeros.
    _NUM = 64
    _BUFSIZE = _MAX_LEVELS * 2 * (2 * _NUM + 2) + 16

cdef uint32_t _T[8][256]
cdef uint64_t _POW10[20]


cdef void _init_tables() noexcept:
    cdef uint32_t c
    cdef int i, k, _
    for i in range(256):
        c = <uint32_t>i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320u if c & 1 else c >> 1
        _T[0][i] = c
    for k in range(1, 8):
        for i in range(256):
            _T[k][i] = (_T[k - 1][i] >> 8) ^ _T[0][_T[k - 1][i] & 0xFF]
    _POW10[0] = 1
    for i in range(1, 20):
        _POW10[i] = _POW10[i - 1] * 10


_init_tables()


cdef uint32_t _crc32(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """CRC32 (reflected 0xEDB88320, zlib / IEEE 802.3), slicing by 8."""
    cdef uint32_t c = 0xFFFFFFFFu
    cdef uint32_t one, two
    while n >= 8:
        one = (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
               | (<uint32_t>p[3] << 24)) ^ c
        two = (<uint32_t>p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16)
               | (<uint32_t>p[7] << 24))
        c = (_T[7][one & 0xFF] ^ _T[6][(one >> 8) & 0xFF] ^ _T[5][(one >> 16) & 0xFF]
             ^ _T[4][one >> 24] ^ _T[3][two & 0xFF] ^ _T[2][(two >> 8) & 0xFF]
             ^ _T[1][(two >> 16) & 0xFF] ^ _T[0][two >> 24])
        p += 8
        n -= 8
    while n > 0:
        c = _T[0][(c ^ p[0]) & 0xFF] ^ (c >> 8)
        p += 1
        n -= 1
    return c ^ 0xFFFFFFFFu


cdef const char *_PAIRS = (b"00010203040506070809101112131415161718192021222324"
                           b"25262728293031323334353637383940414243444546474849"
                           b"50515253545556575859606162636465666768697071727374"
                           b"75767778798081828384858687888990919293949596979899")


cdef inline Py_ssize_t _put_u64(char *out, uint64_t a) noexcept nogil:
    """Decimal digits of ``a`` (``"0"`` for 0), two at a time."""
    cdef char tmp[24]
    cdef Py_ssize_t i = 24
    cdef uint32_t r, b
    while a >= 100000000:           # 64-bit divisions only for the high digits
        r = <uint32_t>(a % 100)
        a //= 100
        i -= 2
        tmp[i] = _PAIRS[2 * r]
        tmp[i + 1] = _PAIRS[2 * r + 1]
    b = <uint32_t>a
    while b >= 100:
        r = b % 100
        b //= 100
        i -= 2
        tmp[i] = _PAIRS[2 * r]
        tmp[i + 1] = _PAIRS[2 * r + 1]
    if b >= 10:
        i -= 2
        tmp[i] = _PAIRS[2 * b]
        tmp[i + 1] = _PAIRS[2 * b + 1]
    else:
        i -= 1
        tmp[i] = <char>(48 + b)
    memcpy(out, tmp + i, 24 - i)
    return 24 - i


cdef inline Py_ssize_t _ndigits(uint64_t a) noexcept nogil:
    cdef Py_ssize_t n = 1
    while a >= 10:
        a //= 10
        n += 1
    return n


cdef Py_ssize_t _put_kraken(char *out, int64_t v, int decimals, int digits) noexcept nogil:
    """``v`` (fixed point at ``decimals``) written with ``digits`` decimals, the point
    removed and leading zeros stripped. -1 when nonzero digits would be cut."""
    cdef uint64_t a
    cdef Py_ssize_t n = 0, z = 0, pad, nd
    if v == 0:
        return 0                    # "0.000" -> "0000" -> ""
    if v > 0:
        a = <uint64_t>v
    else:
        a = (~(<uint64_t>v)) + 1
    if digits < decimals:
        if a % _POW10[decimals - digits]:
            return -1
        a //= _POW10[decimals - digits]
    else:
        z = digits - decimals
    if v < 0:
        # "-I.FFF": nothing to strip after the sign; at least digits + 1 digits.
        out[0] = 45                 # "-"
        n = 1
        nd = _ndigits(a) + z
        pad = digits + 1 - nd
        if pad > 0:
            memset(out + n, 48, pad)
            n += pad
    n += _put_u64(out + n, a)
    if z:
        memset(out + n, 48, z)
        n += z
    return n


cdef Py_ssize_t _put_stripped(char *out, int64_t v, int decimals) noexcept nogil:
    """``format_decimal(v, decimals, strip=True)``: no trailing zeros, no bare point."""
    cdef uint64_t a, whole, frac, p
    cdef Py_ssize_t n = 0, fd, i
    if v < 0:
        out[0] = 45
        n = 1
        a = (~(<uint64_t>v)) + 1
    else:
        a = <uint64_t>v
    if decimals == 0:
        return n + _put_u64(out + n, a)
    p = _POW10[decimals]
    whole = a // p
    frac = a % p
    n += _put_u64(out + n, whole)
    if frac:
        fd = decimals
        while frac % 10 == 0:
            frac //= 10
            fd -= 1
        out[n] = 46                 # "."
        n += 1
        for i in range(fd - 1, -1, -1):
            out[n + i] = <char>(48 + frac % 10)
            frac //= 10
        n += fd
    return n


ctypedef struct _top:
    # the best levels of both sides, best first, as fb_book_top writes them
    int64_t px[2][_MAX_LEVELS]
    int64_t qty[2][_MAX_LEVELS]
    Py_ssize_t count[2]


cdef inline void _take_top(const fb_book *b, Py_ssize_t levels, _top *t) noexcept nogil:
    cdef int s
    fb_book_top(b, levels, t.px[0], t.qty[0], t.px[1], t.qty[1])
    for s in range(2):
        t.count[s] = fb_book_depth(b, s + 1)
        if t.count[s] > levels:
            t.count[s] = levels


cdef Py_ssize_t _kraken_fill(const fb_book *b, int pdig, int qdig, Py_ssize_t levels,
                             char *buf) noexcept nogil:
    """Kraken's checksum text into ``buf``; its length, or -1 (a value past the digits)."""
    cdef Py_ssize_t n = 0, i, k
    cdef int s
    cdef _top t
    _take_top(b, levels, &t)
    for s in range(1, -1, -1):                      # asks, then bids
        for i in range(t.count[s]):
            k = _put_kraken(buf + n, t.px[s][i], b.price_decimals, pdig)
            if k < 0:
                return -1
            n += k
            k = _put_kraken(buf + n, t.qty[s][i], b.qty_decimals, qdig)
            if k < 0:
                return -1
            n += k
    return n


cdef Py_ssize_t _okx_fill(const fb_book *b, Py_ssize_t levels, char *buf) noexcept nogil:
    """OKX's checksum text into ``buf``; its length."""
    cdef Py_ssize_t n = 0, i
    cdef int s
    cdef _top t
    _take_top(b, levels, &t)
    for i in range(levels):
        for s in range(2):                          # bid i, then ask i
            if i < t.count[s]:
                if n:
                    buf[n] = 58             # ":"
                    n += 1
                n += _put_stripped(buf + n, t.px[s][i], b.price_decimals)
                buf[n] = 58
                n += 1
                n += _put_stripped(buf + n, t.qty[s][i], b.qty_decimals)
    return n


cdef inline int _digits_arg(object digits, int default, str name) except -2:
    if digits is None:
        return default
    if type(digits) is not int or not 0 <= digits <= 18:
        raise ValueError(f"{name} must be None or an int from 0 to 18, got {digits!r}")
    return digits


cdef inline Py_ssize_t _levels_arg(object levels) except -1:
    if type(levels) is not int or not 1 <= levels <= _MAX_LEVELS:
        raise ValueError(f"levels must be an int from 1 to {_MAX_LEVELS}, got {levels!r}")
    return levels


cdef inline fb_book *_book_of(object book):
    """The C book of a compiled Book, or NULL for anything else (the twin handles it)."""
    if not isinstance(book, Book):
        return NULL
    book_readable(<Book>book)
    return &(<Book>book)._book


cdef Py_ssize_t _kraken(object book, object price_digits, object qty_digits, object levels,
                        char *buf) except -2:
    cdef fb_book *b = _book_of(book)
    cdef Py_ssize_t n
    cdef int pdig = _digits_arg(price_digits, b.price_decimals, "price_digits")
    cdef int qdig = _digits_arg(qty_digits, b.qty_decimals, "qty_digits")
    n = _kraken_fill(b, pdig, qdig, _levels_arg(levels), buf)
    if n < 0:
        # Let the twin name the value (same ValueError).
        _pychecksum.kraken_text(book, price_digits, qty_digits, levels)
        raise AssertionError("unreachable: the twin accepted what the kernel refused")
    return n


def crc32(const unsigned char[::1] data not None):
    """CRC32 (zlib / IEEE 802.3) of ``data`` as an unsigned int."""
    if data.shape[0] == 0:
        return 0
    return _crc32(&data[0], data.shape[0])


def kraken_text(book, price_digits=None, qty_digits=None, levels=10):
    """The text Kraken's CRC32 is computed over (asks ascending, then bids descending)."""
    cdef char buf[_BUFSIZE]
    if not isinstance(book, Book):
        return _pychecksum.kraken_text(book, price_digits, qty_digits, levels)
    return buf[:_kraken(book, price_digits, qty_digits, levels, buf)]


def kraken_checksum(book, price_digits=None, qty_digits=None, levels=10):
    """Kraken's book checksum (unsigned 32-bit) of ``book``.

    ``price_digits`` / ``qty_digits``: the decimals Kraken writes (``None``: the
    book's own scales, which is what WebSocket v1's verbatim strings need when
    the book is at the pair's wire decimals). Nonzero digits beyond them are a
    ValueError.
    """
    cdef char buf[_BUFSIZE]
    cdef Py_ssize_t n
    if not isinstance(book, Book):
        return _pychecksum.kraken_checksum(book, price_digits, qty_digits, levels)
    n = _kraken(book, price_digits, qty_digits, levels, buf)
    return _crc32(<unsigned char *>buf, n)


def okx_text(book, levels=25):
    """The text OKX's legacy CRC32 is computed over (bids and asks interleaved)."""
    cdef char buf[_BUFSIZE]
    cdef fb_book *b
    cdef Py_ssize_t m
    if not isinstance(book, Book):
        return _pychecksum.okx_text(book, levels)
    m = _levels_arg(levels)
    b = _book_of(book)
    return buf[:_okx_fill(b, m, buf)]


def okx_checksum(book, levels=25):
    """OKX's legacy book checksum (signed 32-bit) of ``book``."""
    cdef char buf[_BUFSIZE]
    cdef fb_book *b
    cdef Py_ssize_t m, n
    cdef uint32_t crc
    if not isinstance(book, Book):
        return _pychecksum.okx_checksum(book, levels)
    m = _levels_arg(levels)
    b = _book_of(book)
    n = _okx_fill(b, m, buf)
    crc = _crc32(<unsigned char *>buf, n)
    return <int>crc if crc < 0x80000000u else <long long>crc - 0x100000000LL


def truncate(book, side, depth):
    """Delete the levels of ``side`` beyond the best ``depth``; return their prices, worst first.

    """
    cdef fb_book *b
    cdef int s
    cdef Py_ssize_t d
    cdef int64_t price, qty
    cdef list removed
    if not isinstance(book, Book):
        return _pychecksum.truncate(book, side, depth)
    if type(side) is not int or (side != FB_BID and side != FB_ASK):
        raise ValueError(f"side must be fastbook.BID or fastbook.ASK, got {side!r}")
    if type(depth) is not int or depth < 0:
        raise ValueError(f"depth must be a non-negative int, got {depth!r}")
    s = side
    b = _book_of(book)
    d = depth
    removed = []
    while fb_book_depth(b, s) > d:
        fb_book_worst(b, s, &price, &qty)
        fb_book_set(b, s, price, 0)
        removed.append(price)
    return removed


cdef inline bint _parse_item(object item, int decimals, int64_t *out):
    """Exact fixed point of a str item; False for anything else (the twin reports it)."""
    cdef const char *p
    cdef Py_ssize_t n
    if type(item) is not str:
        return False
    try:
        p = PyUnicode_AsUTF8AndSize(item, &n)
    except UnicodeError:        # a lone surrogate: not a number (the twin says so)
        return False
    return fb_parse_decimal(p, n, decimals, out) == FB_OK


def parse_levels(levels, int price_decimals, int qty_decimals, list prices not None,
                 list qtys not None, str key="levels", bint kraken_v1=False):
    """Append the exact price and size of each ``[price, size, ...]`` level; see the twin."""
    cdef Py_ssize_t i, n, m
    cdef object lv
    cdef int64_t price, qty, ts, newest = 0
    if type(levels) is not list:
        return _pychecksum.parse_levels(levels, price_decimals, qty_decimals, prices, qtys,
                                        key, kraken_v1)
    n = PyList_GET_SIZE(levels)
    for i in range(n):
        lv = <object>PyList_GET_ITEM(levels, i)
        if type(lv) is not list:
            break
        m = PyList_GET_SIZE(lv)
        if kraken_v1:
            if m < 3 or m > 4:
                break
            if m == 4 and <object>PyList_GET_ITEM(lv, 3) != "r":
                break
            if not _parse_item(<object>PyList_GET_ITEM(lv, 2), 9, &ts):
                break
        elif m < 2:
            break
        else:
            ts = 0
        if not _parse_item(<object>PyList_GET_ITEM(lv, 0), price_decimals, &price) \
                or not _parse_item(<object>PyList_GET_ITEM(lv, 1), qty_decimals, &qty) \
                or price <= 0 or qty < 0:
            break
        prices.append(price)
        qtys.append(qty)
        if ts > newest:
            newest = ts
    else:
        return newest
    # A level is not accepted: the twin names it and the problem (it raises ValueError).
    _pychecksum.parse_levels(levels, price_decimals, qty_decimals, [], [], key, kraken_v1)
    raise AssertionError("unreachable: the twin accepted a level the kernel refused")


def set_levels(book, side, list prices not None, list qtys not None):
    """``book.set(side, price, qty)`` for each pair, in order, through the C API; see the twin."""
    cdef fb_book *b
    cdef Py_ssize_t i, n = PyList_GET_SIZE(prices)
    cdef object p, q
    cdef int s
    if not isinstance(book, Book) or type(side) is not int or (side != FB_BID and side != FB_ASK) \
            or PyList_GET_SIZE(qtys) != n:
        return _pychecksum.set_levels(book, side, prices, qtys)
    for i in range(n):
        p = <object>PyList_GET_ITEM(prices, i)
        q = <object>PyList_GET_ITEM(qtys, i)
        if type(p) is not int or type(q) is not int or not INT64_MIN < p <= 0x7FFFFFFFFFFFFFFF \
                or not 0 <= q <= 0x7FFFFFFFFFFFFFFF:
            # Something Book.set refuses or converts: the twin does exactly what it does.
            return _pychecksum.set_levels(book, side, prices, qtys)
    b = _book_of(book)
    s = side
    for i in range(n):
        if fb_book_set(b, s, <int64_t>(<object>PyList_GET_ITEM(prices, i)),
                       <int64_t>(<object>PyList_GET_ITEM(qtys, i))) < 0:
            raise MemoryError("fastbook: no memory to grow the book")
