# cython: language_level=3
"""Compiled L2 JSON kernel: exchange book messages straight from bytes into a ``fastbook.Book``.

``Scanner`` has the API and the contract of the reference twin
``fastbook.codecs._pyl2json.Scanner`` (its module docstring states the
contract). It reads the raw message in one pass: it validates the JSON
grammar, picks the schema's fields by key and scope, looks the symbol up in a
small cache, and parses every price and quantity string exactly into ``int64``
fixed point at the symbol's scales: plain ``digits[.digits]`` eight bytes at a
time (SWAR: a digit-run mask and three multiplies, no division), anything else
with the core's ``fb_parse_decimal``. ISO 8601 times are read to ns the same
way. No float, no JSON library, no Python object per level. ``apply`` then
writes the levels into the book with the core's ``fb_book_apply``.

Anything the fast path does not handle in exactly the twin's way (escapes,
non-ASCII bytes, ``NaN``, duplicate keys, a level field before the symbol, an
unregistered symbol, and every kind of bad input) makes it hand the message to
the twin, whose result it copies. So for any input the two scanners give the
same status, fields, levels and error text; errors are always the twin's.
``fast`` and ``slow`` count the scans each path finished.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeASCII
from libc.stdint cimport INT64_MIN, int8_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free
from libc.string cimport memcmp, memcpy

from fastbook._core cimport (
    FB_ASK, FB_BID, Book, book_writable, fb_book, fb_book_apply, fb_book_best, fb_parse_decimal,
)
from fastbook._mem cimport grow_to

import numpy as np

from fastbook.codecs import _pyl2json
from fastbook.codecs._l2schema import ERROR, IGNORED, OK, OTHER, UNKNOWN, Schema

__all__ = ["COMPILED", "ERROR", "IGNORED", "OK", "OTHER", "UNKNOWN", "Scanner", "Schema"]

COMPILED = True

cdef object _SPAN = object()        # "the tag is the discriminator's span in the message"

cdef enum:
    _OK = 0
    _OTHER = 1
    _UNKNOWN = 2
    _IGNORED = 3
    _ERROR = 4

# roles of a key
cdef enum:
    R_DISC = 1
    R_SYM = 2
    R_INT = 3
    R_STR = 4
    R_LEV = 5
    R_SIDED = 6

# scopes / locations: the top object, "body" (first container, else top), the containers
cdef enum:
    S_TOP = 0
    S_BODY = 1
    S_C0 = 2
    S_C1 = 3

cdef enum:
    MAX_KEYS = 64
    MAX_SLOTS = 16
    MAX_ACCEPT = 16
    MAX_SIDES = 8
    MAX_DEPTH = 48      # deeper JSON goes to the twin (json's own limit is far higher)
    CACHE = 64          # direct-mapped symbol cache slots (a power of two)


cdef struct _key:
    const char *name
    Py_ssize_t len
    int scope
    int role
    int idx             # int / str slot, or level-field bit
    int side            # R_LEV: FB_BID or FB_ASK


# Byte classes: JSON whitespace; bytes the fast path refuses inside strings.
cdef uint8_t _WS[256]
cdef uint8_t _BADSTR[256]


cdef void _init_tables() noexcept nogil:
    cdef int c
    for c in range(256):
        _WS[c] = c == 32 or c == 9 or c == 10 or c == 13
        # '\\' (escapes), control characters (invalid JSON) and non-ASCII (UTF-8 checks)
        _BADSTR[c] = c == 92 or c < 32 or c >= 128


_init_tables()


# ---------------------------------------------------------------------------
# JSON grammar: each returns the position after what it read, or NULL ("hand
# it to the twin"). ``e`` is one past the end; nothing reads at or beyond it.
# ---------------------------------------------------------------------------

cdef inline const uint8_t *_ws(const uint8_t *p, const uint8_t *e) noexcept nogil:
    while p < e and _WS[p[0]]:
        p += 1
    return p


cdef inline const uint8_t *_string(const uint8_t *p, const uint8_t *e) noexcept nogil:
    """``p`` at an opening quote: the position after the closing one (no escapes, ASCII)."""
    p += 1
    while p < e:
        if p[0] == 34:
            return p + 1
        if _BADSTR[p[0]]:
            return NULL
        p += 1
    return NULL


cdef inline bint _digit(uint8_t c) noexcept nogil:
    return 48 <= c <= 57


cdef const uint8_t *_number(const uint8_t *p, const uint8_t *e) noexcept nogil:
    """``-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?``, exactly json's grammar."""
    if p < e and p[0] == 45:
        p += 1
    if p >= e:
        return NULL
    if p[0] == 48:
        p += 1
    elif _digit(p[0]):
        while p < e and _digit(p[0]):
            p += 1
    else:
        return NULL
    if p < e and p[0] == 46:
        p += 1
        if p >= e or not _digit(p[0]):
            return NULL
        while p < e and _digit(p[0]):
            p += 1
    if p < e and (p[0] == 101 or p[0] == 69):
        p += 1
        if p < e and (p[0] == 43 or p[0] == 45):
            p += 1
        if p >= e or not _digit(p[0]):
            return NULL
        while p < e and _digit(p[0]):
            p += 1
    return p


cdef inline const uint8_t *_string_at(const uint8_t *p, const uint8_t *e,
                                      const uint8_t **start) noexcept nogil:
    """As ``_string``, with ``p`` at anything (NULL unless a quote is there); ``start``
    receives where the string's characters begin."""
    if p >= e or p[0] != 34:
        return NULL
    start[0] = p + 1
    return _string(p, e)


cdef inline const uint8_t *_past(const uint8_t *p, const uint8_t *e, uint8_t c) noexcept nogil:
    """``p`` before optional whitespace and the byte ``c`` (``,`` or ``:``): just after
    them and the whitespace that follows; NULL when ``c`` is not next."""
    p = _ws(p, e)
    if p >= e or p[0] != c:
        return NULL
    return _ws(p + 1, e)


cdef inline const uint8_t *_next_item(const uint8_t *p, const uint8_t *e, uint8_t close,
                                      bint *closed) noexcept nogil:
    """``p`` after an item of an array or object ending in ``close``: at the next item
    (after ``,`` and whitespace), or just after ``close`` with ``closed`` set; NULL when
    neither follows."""
    closed[0] = False
    p = _ws(p, e)
    if p >= e:
        return NULL
    if p[0] == 44:
        return _ws(p + 1, e)
    if p[0] == close:
        closed[0] = True
        return p + 1
    return NULL


cdef const uint8_t *_value(const uint8_t *p, const uint8_t *e, int depth) noexcept nogil:
    """Skip one JSON value, checking its grammar."""
    cdef uint8_t c
    cdef bint closed
    if p >= e:
        return NULL
    c = p[0]
    if c == 34:
        return _string(p, e)
    if c == 123 or c == 91:
        if depth >= MAX_DEPTH:
            return NULL
        p = _ws(p + 1, e)
        if p >= e:
            return NULL
        if p[0] == c + 2:             # '}' is '{' + 2 and ']' is '[' + 2
            return p + 1
        while True:
            if c == 123:
                if p >= e or p[0] != 34:
                    return NULL
                p = _string(p, e)
                if p == NULL:
                    return NULL
                p = _past(p, e, 58)
                if p == NULL:
                    return NULL
            p = _value(p, e, depth + 1)
            if p == NULL:
                return NULL
            p = _next_item(p, e, c + 2, &closed)
            if p == NULL or closed:
                return p
    if c == 116:
        return p + 4 if e - p >= 4 and memcmp(p, b"true", 4) == 0 else NULL
    if c == 102:
        return p + 5 if e - p >= 5 and memcmp(p, b"false", 5) == 0 else NULL
    if c == 110:
        return p + 4 if e - p >= 4 and memcmp(p, b"null", 4) == 0 else NULL
    if c == 45 or _digit(c):
        return _number(p, e)
    return NULL


cdef const uint8_t *_int(const uint8_t *p, const uint8_t *e, int64_t *out) noexcept nogil:
    """A JSON integer in int64 (a number with a fraction or exponent is not one)."""
    cdef bint neg = False
    cdef uint64_t v = 0, limit
    cdef uint64_t d
    if p < e and p[0] == 45:
        neg = True
        p += 1
    if p >= e:
        return NULL
    limit = (<uint64_t>1 << 63) if neg else ((<uint64_t>1 << 63) - 1)
    if p[0] == 48:
        p += 1
    elif _digit(p[0]):
        while p < e and _digit(p[0]):
            d = p[0] - 48
            if v > (limit - d) // 10:
                return NULL
            v = v * 10 + d
            p += 1
    else:
        return NULL
    if p < e and (p[0] == 46 or p[0] == 101 or p[0] == 69):
        return NULL
    if neg:
        out[0] = -(<int64_t>(v - 1)) - 1 if v else 0
    else:
        out[0] = <int64_t>v
    return p


cdef extern from *:
    """
    #if defined(_MSC_VER)
    #include <intrin.h>
    static __inline int fb_ctz64(unsigned long long x) {
        unsigned long i; _BitScanForward64(&i, x); return (int)i;
    }
    #else
    static inline int fb_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    #endif
    #define FB_B30 0x3030303030303030ULL
    #define FB_B76 0x7676767676767676ULL
    #define FB_B80 0x8080808080808080ULL
    #define FB_B0F 0x0F0F0F0F0F0F0F0FULL
    #define FB_W00FF 0x00FF00FF00FF00FFULL
    #define FB_W0000FFFF 0x0000FFFF0000FFFFULL
    """
    int fb_ctz64(unsigned long long x) nogil
    const uint64_t FB_B30, FB_B76, FB_B80, FB_B0F, FB_W00FF, FB_W0000FFFF


cdef uint64_t _POW10[19]
cdef bint _LITTLE                   # little-endian: the 8-byte digit tricks apply


cdef bint _little_endian() noexcept nogil:
    cdef uint64_t one = 1
    return (<uint8_t *>&one)[0] == 1


_LITTLE = _little_endian()


cdef void _init_pow10() noexcept nogil:
    cdef int i
    _POW10[0] = 1
    for i in range(1, 19):
        _POW10[i] = _POW10[i - 1] * 10


_init_pow10()


cdef const uint8_t *_quoted_slow(const uint8_t *p, const uint8_t *e, int decimals,
                                 int64_t *out) noexcept nogil:
    """The general case of :func:`_quoted`: find the string, then ``fb_parse_decimal``."""
    cdef const uint8_t *q = _string(p, e)
    if q == NULL or fb_parse_decimal(<const char *>(p + 1), q - p - 2, decimals, out) != 0:
        return NULL
    return q


cdef inline const uint8_t *_quoted_loop(const uint8_t *p, const uint8_t *e, int decimals,
                                        int64_t *out) noexcept nogil:
    """:func:`_quoted` one byte at a time (short buffers, big-endian machines)."""
    cdef const uint8_t *q = p + 1
    cdef uint64_t m = 0
    cdef Py_ssize_t whole, digits
    cdef int frac = 0
    cdef uint8_t d
    while q < e:
        d = q[0] - 48
        if d > 9:
            break
        m = m * 10 + d              # may wrap for > 19 digits; then unused (next test)
        q += 1
    whole = q - p - 1
    if whole + decimals > 18:
        return _quoted_slow(p, e, decimals, out)
    digits = whole
    if q < e and q[0] == 46:
        q += 1
        while q < e:
            d = q[0] - 48
            if d > 9:
                break
            if frac < decimals:
                m = m * 10 + d
                frac += 1
            elif d != 0:
                return NULL         # more places than the scale
            digits += 1
            q += 1
    if q < e and q[0] == 34 and digits > 0:
        out[0] = <int64_t>(m * _POW10[decimals - frac])
        return q + 1
    return _quoted_slow(p, e, decimals, out)


cdef inline uint64_t _load8(const uint8_t *p) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, p, 8)
    return w


cdef inline int _digit_run(uint64_t w) noexcept nogil:
    """How many of the 8 bytes of ``w`` (little-endian: memory order) lead as ASCII digits.

    ``a`` is 0..9 on a digit byte; ``a + 0x76`` or ``a`` has its top bit set on any
    other byte. A carry out of a non-digit byte can only spoil bytes after it, so the
    first flagged byte is always the first non-digit.
    """
    cdef uint64_t a = w ^ FB_B30
    cdef uint64_t flags = ((a + FB_B76) | a) & FB_B80
    return 8 if flags == 0 else fb_ctz64(flags) >> 3


cdef inline uint64_t _digits_value(uint64_t w, int n) noexcept nogil:
    """The value of the first ``n`` (0..8) digit bytes of ``w`` (SWAR, no division)."""
    if n == 0:
        return 0
    if n < 8:
        # move them to the end, with "0" bytes in front
        w = (w << (8 * (8 - n))) | (FB_B30 >> (8 * n))
    w = ((w & FB_B0F) * 2561) >> 8
    w = ((w & FB_W00FF) * 6553601) >> 16
    return ((w & FB_W0000FFFF) * <uint64_t>42949672960001) >> 32


cdef inline const uint8_t *_quoted(const uint8_t *p, const uint8_t *e, int decimals,
                                   int64_t *out) noexcept nogil:
    """``p`` at a quote: the decimal string there in fixed point; after the string, or NULL.

    Plain ``digits[.digits]`` (whole part up to 7 digits, fraction up to 8, and a
    whole part that fits 18 places with the scale: every price and size a venue
    sends) is read eight bytes at a time, with no division. Other shapes go to
    the byte loop, and a sign, an exponent or a longer number to the core's
    ``fb_parse_decimal``. The value is the core's by construction: the whole
    part and the first ``decimals`` fraction digits, scaled to ``decimals``
    places; a nonzero digit past the scale is refused, as the core refuses it.
    NULL never says why: the caller hands the message to the twin, which names
    the error.
    """
    cdef const uint8_t *q = p + 1
    cdef uint64_t w, whole, frac = 0, zeros
    cdef int nw, nf = 0, used = 0
    if not _LITTLE or e - q < 17:
        return _quoted_loop(p, e, decimals, out)
    w = _load8(q)
    nw = _digit_run(w)
    if nw == 8 or nw + decimals > 18:
        return _quoted_loop(p, e, decimals, out)
    whole = _digits_value(w, nw)
    q += nw
    if q[0] == 46:
        q += 1
        w = _load8(q)
        nf = _digit_run(w)
        if nf == 8 and <uint8_t>(q[8] - 48) <= 9:
            return _quoted_loop(p, e, decimals, out)      # more than 8 fraction digits
        used = nf
        if nf > decimals:
            # the digits past the scale must all be "0"
            zeros = (~(<uint64_t>0) if nf - decimals == 8
                     else ((<uint64_t>1 << (8 * (nf - decimals))) - 1)) << (8 * decimals)
            if (w & zeros) != (FB_B30 & zeros):
                return NULL                                 # more places than the scale
            used = decimals
        frac = _digits_value(w, used)
        q += nf
    if q[0] != 34 or nw + nf == 0:
        return _quoted_loop(p, e, decimals, out)
    out[0] = <int64_t>((whole * _POW10[used] + frac) * _POW10[decimals - used])
    return q + 1


cdef inline const uint8_t *_decimal_at(const uint8_t *p, const uint8_t *e, int decimals,
                                       int64_t *out) noexcept nogil:
    """As ``_quoted``, with ``p`` at anything: NULL unless a quote is there."""
    if p >= e or p[0] != 34:
        return NULL
    return _quoted(p, e, decimals, out)


cdef inline int _two(const uint8_t *p) noexcept nogil:
    """Two ASCII digits, or -1."""
    cdef uint8_t a = p[0] - 48, b = p[1] - 48
    return a * 10 + b if a <= 9 and b <= 9 else -1


cdef const uint8_t *_isotime(const uint8_t *p, const uint8_t *e, int64_t *out) noexcept nogil:
    """``"YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z"`` (UTC, years 1970-2261) in exact ns since the epoch.

    Anything else (other offsets, other years, a bad date) goes to the twin. The
    day count is the proleptic Gregorian one (``days_from_civil``), as Python's
    ``datetime`` computes it.
    """
    cdef const uint8_t *q = p + 1
    cdef int y1, y2, mo, d, h, mi, s, n = 0, mdays, yy, era, yoe, doy, doe
    cdef int64_t days, frac = 0
    cdef uint8_t c
    if p >= e or p[0] != 34 or e - q < 21:
        return NULL
    y1 = _two(q)
    y2 = _two(q + 2)
    mo = _two(q + 5)
    d = _two(q + 8)
    h = _two(q + 11)
    mi = _two(q + 14)
    s = _two(q + 17)
    if (y1 | y2 | mo | d | h | mi | s) < 0 or q[4] != 45 or q[7] != 45 or q[10] != 84 \
            or q[13] != 58 or q[16] != 58:
        return NULL
    yy = y1 * 100 + y2
    if yy < 1970 or yy > 2261 or mo < 1 or mo > 12 or h > 23 or mi > 59 or s > 59:
        return NULL
    if mo == 2:
        mdays = 29 if (yy % 4 == 0 and (yy % 100 != 0 or yy % 400 == 0)) else 28
    else:
        mdays = 30 if mo == 4 or mo == 6 or mo == 9 or mo == 11 else 31
    if d < 1 or d > mdays:
        return NULL
    q += 19
    if q < e and q[0] == 46:
        q += 1
        while q < e and n < 10:
            c = q[0] - 48
            if c > 9:
                break
            frac = frac * 10 + c
            n += 1
            q += 1
        if n == 0 or n > 9:
            return NULL
        frac *= <int64_t>_POW10[9 - n]
    if e - q < 2 or q[0] != 90 or q[1] != 34:
        return NULL
    # days_from_civil (H. Hinnant), for years >= 1970 (no negative eras)
    yy -= mo <= 2
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = <int64_t>era * 146097 + doe - 719468
    out[0] = ((days * 24 + h) * 60 + mi) * <int64_t>60000000000 + s * <int64_t>1000000000 + frac
    return q + 2


cdef inline uint32_t _hash(const uint8_t *s, Py_ssize_t n) noexcept nogil:
    cdef uint32_t h = 2166136261
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ s[i]) * 16777619
    return h


@cython.final
cdef class Scanner:
    """Compiled scanner of one :class:`~fastbook.codecs._pyl2json.Schema` (see the module doc)."""

    # --- the schema, compiled ------------------------------------------------
    cdef readonly object schema
    cdef object _twin
    cdef list _keep                 # bytes objects the name pointers point into
    cdef _key _keys[MAX_KEYS]
    cdef int _nkeys
    cdef const char *_cname[2]
    cdef Py_ssize_t _clen[2]
    cdef bint _clist[2]
    cdef int _ncont
    cdef const char *_acc[MAX_ACCEPT]
    cdef Py_ssize_t _acclen[MAX_ACCEPT]
    cdef int _nacc
    cdef bint _prefix
    cdef const char *_sword[MAX_SIDES]
    cdef Py_ssize_t _swlen[MAX_SIDES]
    cdef int8_t _swside[MAX_SIDES]
    cdef int _nsides
    cdef int _lo, _hi
    cdef bint _positive
    cdef bint _has_disc, _has_sym, _disc_top
    cdef uint64_t _body_mask
    cdef uint32_t _int_req, _str_req, _lev_req
    cdef int _nints, _nstrs

    # --- registered symbols --------------------------------------------------
    cdef dict _index                # symbol bytes -> slot
    cdef list _free                 # slots of forgotten symbols, for reuse
    cdef dict _by_name              # symbol str -> slot
    cdef list _names, _bkeys, _books, _targets
    cdef fb_book **_bookp
    cdef int64_t *_napplied          # apply() calls per slot
    cdef int64_t *_nlevels           # levels those calls applied
    cdef int _slot                   # the slot of the current OK scan (apply's counters)
    cdef const char **_kp
    cdef Py_ssize_t *_kl
    cdef int _nreg, _capreg
    cdef int _cache[CACHE]

    # --- the current scan ----------------------------------------------------
    cdef uint64_t _seen[4]
    cdef bint _cseen[2]
    cdef bint _disc_seen, _disc_bad, _passive, _ignored
    cdef const uint8_t *_disc_p
    cdef Py_ssize_t _disc_n
    cdef readonly int kind
    cdef int _sym
    cdef fb_book *_cur
    cdef int _pd, _qd
    cdef int64_t _ints[MAX_SLOTS]
    cdef bint _int_iso[MAX_SLOTS]   # an "isotime" field: ISO 8601 text to ns
    cdef int64_t _int_lo[MAX_SLOTS]
    cdef int64_t _int_hi[MAX_SLOTS]
    cdef uint32_t _int_have
    cdef const uint8_t *_strp[MAX_SLOTS]
    cdef Py_ssize_t _strn[MAX_SLOTS]
    cdef uint32_t _str_have
    cdef readonly uint32_t found
    cdef int8_t *_sides
    cdef int64_t *_prices
    cdef int64_t *_qtys
    cdef readonly Py_ssize_t n
    cdef Py_ssize_t _cap

    # --- results -------------------------------------------------------------
    cdef readonly int status
    cdef readonly object other, symbol, target, error
    cdef object _bobj
    cdef object _ints_t, _strs_t    # tuples, when the twin produced the result
    cdef object _tag_t              # the twin's tag, or _SPAN: read it from the message
    cdef object _msg                # keeps the scanned bytes alive for lazy strs
    cdef readonly Py_ssize_t fast, slow

    def __cinit__(self):
        self._bookp = NULL
        self._napplied = NULL
        self._nlevels = NULL
        self._kp = NULL
        self._kl = NULL
        self._sides = NULL
        self._prices = NULL
        self._qtys = NULL

    def __dealloc__(self):
        free(self._bookp)
        free(self._napplied)
        free(self._nlevels)
        free(self._kp)
        free(self._kl)
        free(self._sides)
        free(self._prices)
        free(self._qtys)

    def __init__(self, schema):
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be a Schema, got {type(schema).__name__}")
        self.schema = schema
        self._twin = _pyl2json.Scanner(schema)
        self._keep = []
        self._index = {}
        self._free = []
        self._by_name = {}
        self._names = []
        self._bkeys = []
        self._books = []
        self._targets = []
        self._nreg = self._capreg = 0
        for i in range(CACHE):
            self._cache[i] = -1
        self._compile(schema)
        if not self._grow(256):
            raise MemoryError()
        self.status = _OK
        self.other = self.symbol = self.target = self._bobj = None
        self.error = ""
        self._ints_t = self._strs_t = None
        self._tag_t = None
        self.fast = self.slow = 0

    cdef const char *_name(self, str text, Py_ssize_t *n) except NULL:
        cdef bytes b = text.encode("utf-8")
        self._keep.append(b)
        n[0] = PyBytes_GET_SIZE(b)
        return PyBytes_AS_STRING(b)

    cdef int _scope(self, str scope) except -1:
        if scope == "top":
            return S_TOP
        if scope == "body":
            return S_BODY
        for i in range(self._ncont):
            if scope == self.schema.containers[i][0]:
                return S_C0 + i
        raise ValueError(f"unknown scope {scope!r}")

    cdef int _add_key(self, str name, str scope, int role, int idx, int side) except -1:
        cdef _key *k
        if self._nkeys >= MAX_KEYS:
            raise ValueError(f"a schema has at most {MAX_KEYS} fields")
        k = &self._keys[self._nkeys]
        k.name = self._name(name, &k.len)
        k.scope = self._scope(scope)
        k.role = role
        k.idx = idx
        k.side = side
        if k.scope == S_BODY:
            self._body_mask |= (<uint64_t>1) << self._nkeys
        self._nkeys += 1
        return 0

    cdef int _compile(self, schema) except -1:
        cdef int i
        self._nkeys = 0
        self._body_mask = 0
        self._ncont = len(schema.containers)
        for i, (name, list_ok) in enumerate(schema.containers):
            self._cname[i] = self._name(name, &self._clen[i])
            self._clist[i] = list_ok
        self._has_disc = schema.discriminator is not None
        self._disc_top = self._has_disc and schema.discriminator[1] == "top"
        if self._has_disc:
            self._add_key(schema.discriminator[0], schema.discriminator[1], R_DISC, 0, 0)
            if len(schema.accept) > MAX_ACCEPT:
                raise ValueError(f"at most {MAX_ACCEPT} accepted discriminator values")
            self._nacc = len(schema.accept)
            for i, text in enumerate(schema.accept):
                self._acc[i] = self._name(text, &self._acclen[i])
        self._prefix = schema.prefix
        self._has_sym = schema.symbol is not None
        if self._has_sym:
            self._add_key(schema.symbol[0], schema.symbol[1], R_SYM, 0, 0)
        if len(schema.int_fields) > MAX_SLOTS or len(schema.str_fields) > MAX_SLOTS:
            raise ValueError(f"at most {MAX_SLOTS} int and {MAX_SLOTS} str fields")
        self._nints = len(schema.int_fields)
        self._nstrs = len(schema.str_fields)
        self._int_req = self._str_req = self._lev_req = 0
        for i, f in enumerate(schema.int_fields):
            self._add_key(f.name, f.scope, R_INT, i, 0)
            self._int_iso[i] = f.kind == "isotime"
            self._int_lo[i] = f.lo
            self._int_hi[i] = f.hi
            if f.required:
                self._int_req |= 1u << i
        for i, f in enumerate(schema.str_fields):
            self._add_key(f.name, f.scope, R_STR, i, 0)
            if f.required:
                self._str_req |= 1u << i
        for i, f in enumerate(schema.level_fields):
            if f.kind == "sided":
                self._add_key(f.name, f.scope, R_SIDED, i, 0)
            else:
                self._add_key(f.name, f.scope, R_LEV, i, FB_BID if f.kind == "bids" else FB_ASK)
            if f.required:
                self._lev_req |= 1u << i
        if len(schema.sides) > MAX_SIDES:
            raise ValueError(f"at most {MAX_SIDES} side words")
        self._nsides = len(schema.sides)
        for i, (word, side) in enumerate(schema.sides.items()):
            self._sword[i] = self._name(word, &self._swlen[i])
            self._swside[i] = side
        self._lo, self._hi = schema.level_len
        self._positive = schema.positive_prices
        return 0

    # --- registration --------------------------------------------------------

    def register(self, symbol, book, /, target=None):
        """Parse ``symbol``'s levels at ``book``'s scales and return ``target`` with them.

        ``book`` must be a compiled ``fastbook.Book`` (or None: the symbol is then
        ``IGNORED``). Registering a symbol again replaces its book and target.
        """
        cdef int idx
        cdef bytes key
        if not isinstance(symbol, str):
            raise TypeError(f"symbol must be a str, got {type(symbol).__name__}")
        if book is not None and not isinstance(book, Book):
            raise TypeError("book must be a compiled fastbook.Book (fastbook._core.Book) or "
                            f"None, got {type(book).__module__}.{type(book).__name__}")
        self._twin.register(symbol, book, target)
        # (a lone surrogate can come from a str message: such symbols only ever meet the twin)
        key = symbol.encode("utf-8", "surrogatepass")
        found = self._index.get(key)
        if found is None and self._free:
            idx = self._free.pop()          # the slot of a forgotten symbol
            self._napplied[idx] = 0
            self._nlevels[idx] = 0
            self._names[idx] = symbol
            self._bkeys[idx] = key
            self._books[idx] = book
            self._targets[idx] = target
            self._index[key] = idx
            self._by_name[symbol] = idx
        elif found is None:
            if self._nreg == self._capreg and not self._grow_reg(2 * self._capreg + 16):
                raise MemoryError()
            idx = self._nreg
            self._nreg += 1
            self._napplied[idx] = 0
            self._nlevels[idx] = 0
            self._names.append(symbol)
            self._bkeys.append(key)
            self._books.append(book)
            self._targets.append(target)
            self._index[key] = idx
            self._by_name[symbol] = idx
        else:
            idx = found
            self._bkeys[idx] = key
            self._books[idx] = book
            self._targets[idx] = target
        # the pointer is into the bytes object _bkeys keeps alive
        self._kp[idx] = PyBytes_AS_STRING(key)
        self._kl[idx] = PyBytes_GET_SIZE(key)
        self._bookp[idx] = &(<Book>book)._book if book is not None else NULL

    def unregister(self, symbol, /):
        """Forget ``symbol``: the next message naming it scans ``UNKNOWN`` again.

        Its slot is kept for the next symbol registered (no memory per forgotten one).
        """
        cdef int i, idx
        self._twin.unregister(symbol)
        found = self._by_name.pop(symbol, None)
        if found is None:
            return
        idx = found
        del self._index[self._bkeys[idx]]
        for i in range(CACHE):
            if self._cache[i] == idx:
                self._cache[i] = -1
        self._books[idx] = None
        self._targets[idx] = None
        self._bookp[idx] = NULL
        self._kl[idx] = -1          # never equal to a length: the cache cannot match it
        self._napplied[idx] = 0
        self._nlevels[idx] = 0
        self._free.append(idx)

    def registered(self, symbol, /):
        return symbol in self._by_name

    cdef bint _grow_reg(self, int cap) noexcept:
        if not (grow_to(<void **>&self._bookp, cap, sizeof(fb_book *))
                and grow_to(<void **>&self._kp, cap, sizeof(char *))
                and grow_to(<void **>&self._kl, cap, sizeof(Py_ssize_t))
                and grow_to(<void **>&self._napplied, cap, sizeof(int64_t))
                and grow_to(<void **>&self._nlevels, cap, sizeof(int64_t))):
            return False
        self._capreg = cap
        return True

    cdef bint _grow(self, Py_ssize_t need) noexcept nogil:
        cdef Py_ssize_t cap
        if need <= self._cap:
            return True
        cap = self._cap * 2 if self._cap else 256
        if cap < need:
            cap = need
        if not (grow_to(<void **>&self._sides, cap, sizeof(int8_t))
                and grow_to(<void **>&self._prices, cap, sizeof(int64_t))
                and grow_to(<void **>&self._qtys, cap, sizeof(int64_t))):
            return False
        self._cap = cap
        return True

    cdef int _lookup(self, const uint8_t *s, Py_ssize_t n) noexcept:
        """The registered slot of the symbol ``s[:n]``, or -1."""
        cdef uint32_t h = _hash(s, n) & (CACHE - 1)
        cdef int idx = self._cache[h]
        if idx >= 0 and self._kl[idx] == n and memcmp(self._kp[idx], s, n) == 0:
            return idx
        try:
            found = self._index.get(PyBytes_FromStringAndSize(<const char *>s, n))
        except BaseException:
            return -1
        if found is None:
            return -1
        idx = found
        self._cache[h] = idx
        return idx

    cdef void _use(self, int idx) noexcept:
        self._sym = idx
        self._cur = self._bookp[idx]
        if self._cur == NULL:
            self._ignored = True
            self._passive = True
        else:
            self._pd = self._cur.price_decimals
            self._qd = self._cur.qty_decimals

    # --- the fast path ---------------------------------------------------------

    cdef int _find(self, const uint8_t *s, Py_ssize_t n, int loc) noexcept nogil:
        cdef int i
        cdef const _key *k
        for i in range(self._nkeys):
            k = &self._keys[i]
            if k.len == n and k.name[0] == s[0] and memcmp(k.name, s, n) == 0 and (
                    k.scope == loc or (k.scope == S_BODY and (loc == S_TOP or loc == S_C0))):
                return i
        return -1

    cdef const uint8_t *_levels(self, const uint8_t *p, const uint8_t *e, int side,
                                bint sided) noexcept nogil:
        """A list of levels at ``p``, appended to the level arrays (at the symbol's scales)."""
        cdef const uint8_t *s
        cdef int64_t price, qty
        cdef int count, i
        cdef Py_ssize_t n = self.n
        cdef int pd = self._pd, qd = self._qd, lo = self._lo, hi = self._hi
        cdef bint positive = self._positive
        if p >= e or p[0] != 91:
            return NULL
        p = _ws(p + 1, e)
        if p < e and p[0] == 93:
            return p + 1
        while True:
            if p >= e or p[0] != 91:
                return NULL
            p = _ws(p + 1, e)
            if sided:
                p = _string_at(p, e, &s)
                if p == NULL:
                    return NULL
                side = 0
                for i in range(self._nsides):
                    if self._swlen[i] == p - s - 1 and memcmp(self._sword[i], s, p - s - 1) == 0:
                        side = self._swside[i]
                        break
                if side == 0:
                    return NULL
                p = _past(p, e, 44)
                if p == NULL:
                    return NULL
            p = _decimal_at(p, e, pd, &price)
            if p != NULL:
                p = _past(p, e, 44)
            if p != NULL:
                p = _decimal_at(p, e, qd, &qty)
            if p == NULL:
                return NULL
            count = 2
            p = _ws(p, e)
            while p < e and p[0] == 44:
                p = _value(_ws(p + 1, e), e, 4)
                if p == NULL:
                    return NULL
                count += 1
                p = _ws(p, e)
            if p >= e or p[0] != 93 or count < lo or count > hi:
                return NULL
            if (positive and price <= 0) or price == INT64_MIN or qty < 0:
                return NULL
            if n == self._cap and not self._grow(n + 1):
                return NULL
            self._sides[n] = <int8_t>side
            self._prices[n] = price
            self._qtys[n] = qty
            n += 1
            self.n = n
            p = _ws(p + 1, e)
            if p < e and p[0] == 44:
                p = _ws(p + 1, e)
                continue
            if p < e and p[0] == 93:
                return p + 1
            return NULL

    cdef const uint8_t *_member(self, int k, const uint8_t *p, const uint8_t *e,
                                int depth) noexcept:
        cdef const _key *key = &self._keys[k]
        cdef const uint8_t *s
        cdef const uint8_t *q
        cdef Py_ssize_t n
        cdef int i, idx
        cdef int role = key.role
        if role == R_DISC:
            if p >= e or p[0] != 34:
                return NULL
            q = _string(p, e)
            if q == NULL:
                return NULL
            s = p + 1
            n = q - s - 1
            self._disc_seen = True
            self._disc_p = s
            self._disc_n = n
            for i in range(self._nacc):
                if (self._acclen[i] == n or (self._prefix and self._acclen[i] <= n)) and \
                        memcmp(self._acc[i], s, self._acclen[i]) == 0:
                    self.kind = i
                    return q
            self._disc_bad = True
            self._passive = True
            return q
        if self._passive:
            return _value(p, e, depth)
        if role == R_SYM:
            if p >= e or p[0] != 34:
                return NULL
            q = _string(p, e)
            if q == NULL:
                return NULL
            idx = self._lookup(p + 1, q - p - 2)
            if idx < 0:
                return NULL
            self._use(idx)
            return q
        if role == R_INT:
            if self._int_iso[key.idx]:
                q = _isotime(p, e, &self._ints[key.idx])
            else:
                q = _int(p, e, &self._ints[key.idx])
            if q == NULL or not (self._int_lo[key.idx] <= self._ints[key.idx]
                                 <= self._int_hi[key.idx]):
                return NULL
            self._int_have |= 1u << key.idx
            return q
        if role == R_STR:
            if p >= e or p[0] != 34:
                return NULL
            q = _string(p, e)
            if q != NULL:
                self._strp[key.idx] = p + 1
                self._strn[key.idx] = q - p - 2
                self._str_have |= 1u << key.idx
            return q
        # a level field: the symbol (so the scales) must be known already
        if self._cur == NULL:
            return NULL
        self.found |= 1u << key.idx
        return self._levels(p, e, key.side, role == R_SIDED)

    cdef const uint8_t *_object(self, const uint8_t *p, const uint8_t *e, int loc) noexcept:
        """``p`` just after ``{``: the members of an object at ``loc``."""
        cdef const uint8_t *s
        cdef Py_ssize_t n
        cdef int k, ci
        cdef uint64_t bit
        cdef int depth = 1 if loc == S_TOP else 2
        cdef bint closed
        p = _ws(p, e)
        if p < e and p[0] == 125:
            return p + 1
        while True:
            p = _string_at(p, e, &s)
            if p == NULL:
                return NULL
            n = p - s - 1
            p = _past(p, e, 58)
            if p == NULL:
                return NULL
            if p >= e:
                return NULL
            ci = -1
            if loc == S_TOP:
                for k in range(self._ncont):
                    if self._clen[k] == n and memcmp(self._cname[k], s, n) == 0:
                        ci = k
                        break
            if ci >= 0 and self._disc_bad and self._disc_top:
                p = _value(p, e, depth)     # another message type: its containers hold anything
            elif ci >= 0:
                if self._cseen[ci]:
                    return NULL
                self._cseen[ci] = True
                if p[0] == 123:
                    p = self._object(p + 1, e, S_C0 + ci)
                elif p[0] == 91 and self._clist[ci]:
                    p = _ws(p + 1, e)
                    if p >= e or p[0] != 123:
                        return NULL
                    p = self._object(p + 1, e, S_C0 + ci)
                    if p == NULL:
                        return NULL
                    p = _ws(p, e)
                    if p >= e or p[0] != 93:
                        return NULL
                    p += 1
                else:
                    return NULL
            else:
                k = self._find(s, n, loc) if n else -1
                if k < 0:
                    p = _value(p, e, depth)
                else:
                    bit = (<uint64_t>1) << k
                    if self._seen[loc] & bit:
                        return NULL
                    self._seen[loc] |= bit
                    p = self._member(k, p, e, depth)
            if p == NULL:
                return NULL
            p = _next_item(p, e, 125, &closed)
            if p == NULL or closed:
                return p

    cdef int _fast(self, const uint8_t *p, Py_ssize_t length, object symbol) noexcept:
        """Scan ``p[:length]``; the status, or -1 to hand the message to the twin."""
        cdef const uint8_t *e = p + length
        self._seen[0] = self._seen[1] = self._seen[2] = self._seen[3] = 0
        self._cseen[0] = self._cseen[1] = False
        self._disc_seen = self._disc_bad = self._passive = self._ignored = False
        self.kind = 0
        self._sym = -1
        self._cur = NULL
        self._int_have = self._str_have = self.found = 0
        self.n = 0
        if not self._has_sym:
            if type(symbol) is not str:
                return -1
            found = self._by_name.get(symbol)
            if found is None:
                return -1
            self._use(<int>found)
        p = _ws(p, e)
        if p >= e or p[0] != 123:
            return -1
        p = self._object(p + 1, e, S_TOP)
        if p == NULL or _ws(p, e) != e:
            return -1
        if self._cseen[0] and (self._seen[S_TOP] & self._body_mask):
            return -1       # a body field beside the container: the twin reads the container
        if self._has_disc and (not self._disc_seen or self._disc_bad):
            return _OTHER
        if self._sym < 0:
            return -1       # no symbol: the twin names the error
        if self._ignored:
            return _IGNORED
        if (self._int_req & ~self._int_have) or (self._str_req & ~self._str_have) or \
                (self._lev_req & ~self.found):
            return -1       # a required field is missing: the twin names it
        return _OK

    # --- the API ---------------------------------------------------------------
    # scan/read/apply run once or twice per message: plain methods, called directly
    # (as the books' per-call methods; see _core.pyx)

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def scan(self, message, /, symbol=None):
        """Read one message; return (and set ``status``) OK/OTHER/UNKNOWN/IGNORED/ERROR."""
        return self._scan(message, symbol)

    cdef int _scan(self, message, symbol) except -1:
        cdef const uint8_t *p
        cdef Py_ssize_t n
        cdef int st
        if type(message) is bytes:
            p = <const uint8_t *>PyBytes_AS_STRING(message)
            n = PyBytes_GET_SIZE(message)
        elif type(message) is str:
            try:
                p = <const uint8_t *>PyUnicode_AsUTF8AndSize(message, &n)
            except UnicodeError:
                return self._slow(message, symbol)
        else:
            try:
                message = memoryview(message).tobytes()
            except TypeError:
                return self._slow(message, symbol)
            p = <const uint8_t *>PyBytes_AS_STRING(message)
            n = PyBytes_GET_SIZE(message)
        st = self._fast(p, n, symbol)
        if st < 0:
            return self._slow(message, symbol)
        self.fast += 1
        self.status = st
        self._ints_t = self._strs_t = None
        self._tag_t = _SPAN if self._disc_seen else None
        self.error = ""
        self._msg = message
        if st == _OK:
            self.other = None
            self._slot = self._sym
            self.symbol = self._names[self._sym]
            self.target = self._targets[self._sym]
            self._bobj = self._books[self._sym]
            return st
        self._bobj = None
        self.n = 0
        self._int_have = self._str_have = self.found = 0
        if st == _OTHER:
            self.kind = 0
            self.symbol = self.target = None
            self.other = PyUnicode_DecodeASCII(<char *>self._disc_p, self._disc_n, NULL) \
                if self._disc_bad else None
        else:   # IGNORED
            self.other = None
            self.symbol = self._names[self._sym]
            self.target = self._targets[self._sym]
        return st

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def read(self, message, /, symbol=None):
        """``scan``, and for an ``OK`` one the tuple ``(target, n, *ints)``; else None.

        The venue codecs' hot path: one call instead of ``scan`` plus attribute reads.
        """
        cdef int i
        if self._scan(message, symbol) != _OK:
            return None
        if self._ints_t is not None:
            return (self.target, self.n, *self._ints_t)
        if self._nints == 3 and self._int_have == 7:
            return (self.target, self.n, self._ints[0], self._ints[1], self._ints[2])
        if self._nints == 4 and self._int_have == 15:
            return (self.target, self.n, self._ints[0], self._ints[1], self._ints[2],
                    self._ints[3])
        return (self.target, self.n, *[self._ints[i] if self._int_have & (1u << i) else None
                                       for i in range(self._nints)])

    cdef int _slow(self, message, symbol) except -1:
        """Hand the message to the twin and take its result."""
        cdef Py_ssize_t i, n
        tw = self._twin
        st = tw.scan(message, symbol)
        self.slow += 1
        self.status = st
        self.kind = tw.kind
        self.other = tw.other
        self.symbol = tw.symbol
        self.target = tw.target
        self._ints_t = tw.ints
        self._strs_t = tw.strs
        self._tag_t = tw.tag
        self.found = tw.found
        self.error = tw.error
        self._msg = None
        self._bobj = tw._book if st == _OK else None
        self._slot = self._by_name[tw.symbol] if st == _OK else -1
        n = tw.n
        if not self._grow(n):
            raise MemoryError()
        for i, (s, pr, q) in enumerate(zip(tw._sides, tw._prices, tw._qtys)):
            self._sides[i] = s
            self._prices[i] = pr
            self._qtys[i] = q
        self.n = n
        return st

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def apply(self):
        """Apply the levels of an ``OK`` scan to the symbol's book; True if it is then crossed.

        Every level was validated by ``scan``, so nothing can fail halfway except
        running out of memory (``MemoryError``, the book then partly updated).
        """
        cdef Book book
        cdef fb_book *b
        cdef Py_ssize_t i
        cdef int64_t bp, bq, ap, aq
        if self.status != _OK or self._bobj is None:
            raise RuntimeError("apply() needs a scan that returned OK")
        book = <Book>self._bobj
        book_writable(book)
        b = &book._book
        if fb_book_apply(b, self._sides, self._prices, self._qtys, self.n, &i) < 0:
            raise MemoryError("fastbook: no memory to grow the book")
        self._napplied[self._slot] += 1
        self._nlevels[self._slot] += self.n
        return fb_book_best(b, FB_BID, &bp, &bq) and fb_book_best(b, FB_ASK, &ap, &aq) \
            and bp >= ap

    @cython.binding(False)
    @cython.embedsignature.format("clinic")
    def applied(self, symbol=None):
        """``(apply() calls, levels they applied)`` for ``symbol``, or summed over all."""
        cdef int i
        if symbol is not None:
            i = self._by_name[symbol]
            return (self._napplied[i], self._nlevels[i])
        return (sum([self._napplied[i] for i in range(self._nreg)]),
                sum([self._nlevels[i] for i in range(self._nreg)]))

    def level_lists(self):
        """The parsed levels as new ``(sides, prices, qtys)`` lists of ints."""
        cdef Py_ssize_t i, n = self.n
        return ([self._sides[i] for i in range(n)], [self._prices[i] for i in range(n)],
                [self._qtys[i] for i in range(n)])

    def levels(self):
        """The parsed levels as new ``(sides int8, prices int64, qtys int64)`` arrays."""
        cdef Py_ssize_t n = self.n
        sides = np.empty(n, dtype=np.int8)
        prices = np.empty(n, dtype=np.int64)
        qtys = np.empty(n, dtype=np.int64)
        cdef int8_t[::1] vs = sides
        cdef int64_t[::1] vp = prices
        cdef int64_t[::1] vq = qtys
        if n:
            memcpy(&vs[0], self._sides, <size_t>n * sizeof(int8_t))
            memcpy(&vp[0], self._prices, <size_t>n * sizeof(int64_t))
            memcpy(&vq[0], self._qtys, <size_t>n * sizeof(int64_t))
        return sides, prices, qtys

    # --- results -----------------------------------------------------------------

    @property
    def tag(self):
        if self._tag_t is _SPAN:
            return PyUnicode_DecodeASCII(<char *>self._disc_p, self._disc_n, NULL)
        return self._tag_t

    @property
    def ints(self):
        cdef int i
        if self._ints_t is not None:
            return self._ints_t
        return tuple([self._ints[i] if self._int_have & (1u << i) else None
                      for i in range(self._nints)])

    @property
    def strs(self):
        cdef int i
        if self._strs_t is not None:
            return self._strs_t
        return tuple([PyUnicode_DecodeASCII(<char *>self._strp[i], self._strn[i], NULL)
                      if self._str_have & (1u << i) else None for i in range(self._nstrs)])
