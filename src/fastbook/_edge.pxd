# cython: language_level=3
"""Argument checks at the Python edge, shared by every compiled fastbook module.

Private: not part of the public C API. Modules that cimport it must call
``cnp.import_array()`` (both compiled modules do). The functions are inline so each module
that cimports them keeps its fast path without a cross-module call.

Cython's typed integer arguments accept floats and truncate them (1.5 -> 1),
which would silently move a price or hit another order, so every integer
argument goes through ``as_i64`` / ``as_u64``: exact ints take a fast path,
other integer types go through ``__index__``, floats and anything else are
refused.
"""

cimport numpy as cnp
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.number cimport PyNumber_Index
from libc.stdint cimport int64_t, uint64_t

# Side codes; the same values as FB_BID / FB_ASK in _core.pxd (kept literal here
# because _core itself cimports this file).
cdef enum:
    _EDGE_BID = 1
    _EDGE_ASK = 2
    MAX_SCALE = 18          # 10**18 is the largest power of ten in int64


cdef inline int raise_read_only(object book) except -1:
    """A book's mutator, called while a BookSet.apply callback runs (books are read-only)."""
    raise RuntimeError(f"{type(book).__name__} is read-only while BookSet.apply runs its "
                       f"callback (the callback may read the books, not change them)")


cdef inline object _as_index(object value, str what):
    if isinstance(value, float) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    return PyNumber_Index(value)


cdef extern from *:
    """
    /* The value of an exact int that fits one internal digit (|v| < 2**30), read in
       place: no call. Returns 0 for any other int (the caller takes the general path).
       CPython 3.12 changed the layout and added the PyUnstable_Long_* accessors. */
    static inline int fb_compact_long(PyObject *o, long long *v) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (PyUnstable_Long_IsCompact((PyLongObject *)o)) {
            *v = (long long)PyUnstable_Long_CompactValue((PyLongObject *)o);
            return 1;
        }
        return 0;
    #else
        Py_ssize_t size = Py_SIZE(o);
        if (size == 0) { *v = 0; return 1; }
        if (size == 1) { *v = (long long)((PyLongObject *)o)->ob_digit[0]; return 1; }
        if (size == -1) { *v = -(long long)((PyLongObject *)o)->ob_digit[0]; return 1; }
        return 0;
    #endif
    }
    """
    bint fb_compact_long(object o, long long *v)


cdef inline int64_t as_i64(object value, str what) except? -1:
    """An int64 argument; TypeError for non-integers, OverflowError out of range."""
    # The fast path is a few instructions and inlined at every call; the rest stays out
    # of line so that the compiler keeps it that way.
    cdef long long result
    if PyLong_CheckExact(value) and fb_compact_long(value, &result):
        return result
    return _as_i64_slow(value, what)


cdef inline uint64_t as_u64(object value, str what) except? 0xFFFFFFFFFFFFFFFF:
    """A uint64 argument (order ids); TypeError for non-integers, OverflowError out of range."""
    cdef long long result
    if PyLong_CheckExact(value) and fb_compact_long(value, &result) and result >= 0:
        return <uint64_t>result
    return _as_u64_slow(value, what)


cdef inline int64_t _as_i64_slow(object value, str what) except? -1:
    cdef int overflow = 0
    cdef long long result
    if PyLong_CheckExact(value):
        result = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow == 0:
            return result
    value = _as_index(value, what)
    if not -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
        raise OverflowError(f"{what} {value} is outside the int64 range")
    return <int64_t>value


cdef inline uint64_t _as_u64_slow(object value, str what) except? 0xFFFFFFFFFFFFFFFF:
    cdef int overflow = 0
    cdef long long result
    if PyLong_CheckExact(value):
        result = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow == 0 and result >= 0:
            return <uint64_t>result
    value = _as_index(value, what)
    if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        raise OverflowError(f"{what} {value} is outside the uint64 range")
    return <uint64_t>value


cdef inline str side_message(object side):
    return (f"side must be fastbook.BID ({_EDGE_BID}) or fastbook.ASK ({_EDGE_ASK}), "
            f"got {side!r}")


cdef inline int as_side(object side) except? -1:
    """Side as a C int for the C layer to check; values other than BID/ASK map to 0."""
    cdef long long s
    if PyLong_CheckExact(side) and fb_compact_long(side, &s):
        return <int>s if s == _EDGE_BID or s == _EDGE_ASK else 0
    s = _as_i64_slow(side, "side")
    return <int>s if s == _EDGE_BID or s == _EDGE_ASK else 0


cdef inline int valid_side(object side) except -1:
    """Side for reads: BID or ASK, else UpdateError."""
    cdef int s = as_side(side)
    if s == 0:
        from fastbook.errors import UpdateError
        raise UpdateError(side_message(side))
    return s


cdef inline int check_decimals(object decimals, str name) except -1:
    if not isinstance(decimals, int) or isinstance(decimals, bool) \
            or not 0 <= decimals <= MAX_SCALE:
        raise ValueError(f"{name} must be an int between 0 and {MAX_SCALE}, got {decimals!r}")
    return 0


cdef inline Py_ssize_t as_capacity(object capacity) except -1:
    """The argument of a book's ``reserve`` / ``reserve_orders``: ValueError below 0."""
    cdef int64_t cap = as_i64(capacity, "capacity")
    if cap < 0:
        raise ValueError(f"capacity must be >= 0, got {capacity}")
    return <Py_ssize_t>cap


cdef inline cnp.ndarray top_array(object n, object out):
    """The ``(4, n)`` int64 array a book's ``top(n, out=None)`` fills.

    Converts ``n``; returns a new array when ``out`` is None, else checks that
    ``out`` is a writeable, C-contiguous, native int64 array of that shape and
    returns it (nothing allocated). Raises ValueError or ArrayError otherwise.
    """
    cdef int64_t count = as_i64(n, "n")
    cdef cnp.ndarray a
    cdef cnp.npy_intp shape[2]
    if count < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if out is None:
        shape[0] = 4
        shape[1] = <cnp.npy_intp>count
        return cnp.PyArray_EMPTY(2, shape, cnp.NPY_INT64, 0)
    if not cnp.PyArray_Check(out):
        from fastbook.errors import ArrayError
        raise ArrayError(f"out must be a numpy int64 array of shape (4, {n}), "
                         f"got {type(out).__name__}")
    a = <cnp.ndarray>out
    if not cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(a), cnp.NPY_INT64) \
            or not cnp.PyArray_ISNOTSWAPPED(a) or cnp.PyArray_NDIM(a) != 2 \
            or cnp.PyArray_DIMS(a)[0] != 4 or cnp.PyArray_DIMS(a)[1] != count \
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISWRITEABLE(a):
        from fastbook.errors import ArrayError
        raise ArrayError(
            f"out must be a writeable C-contiguous int64 array of shape (4, {n}), "
            f"got dtype {out.dtype}, shape {out.shape}; use np.empty((4, {n}), np.int64)"
        )
    return a
