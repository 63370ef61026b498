# cython: language_level=3
"""Compiled top-N board: ``slots`` books' best levels under per-slot sequence locks.

See ``_board.pxd`` for the C interface and ``docs/board.md`` for what is guaranteed.
The pure-Python twin is ``fastbook._pyboard``; both share :class:`Snapshot`,
:func:`unpack` and the ``read_into`` record layout (tests/board compare them).

Memory ordering (a seqlock as in Boehm, "Can seqlocks get along with programming
language memory models?", 2012). Word 0 of a slot is its sequence ``seq``:

* writer: claim ``seq`` from even ``s`` to odd ``s + 1`` (compare-and-swap, acquire;
  failing means a second writer, refused), **release fence**, store every payload word
  with a *relaxed atomic* store, then store ``s + 2`` with **release**.
* reader: load ``seq`` with **acquire** (retry if odd), load the payload words with
  *relaxed atomic* loads into private memory, **acquire fence**, load ``seq`` again
  (relaxed); the copy is kept only if both loads saw the same even value.

If the reader saw any payload word of a later write, the writer's release fence (before
that word) synchronizes with the reader's acquire fence (after it), so the second load
of ``seq`` sees that write's odd value or later and the copy is retried. If both loads
saw ``s``, every word read was written before the release store of ``s``, by the same
publish. The payload accesses are relaxed atomics rather than a plain ``memcpy``
because a plain read racing with a write is a data race (undefined behaviour) in C11;
on x86-64 and ARM64 a relaxed 64-bit load or store is an ordinary ``mov``/``ldr``, so
this costs nothing but vectorization. GCC and Clang use their ``__atomic`` builtins;
MSVC uses volatile accesses and barriers (not built or tested here).
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint64_t, uintptr_t
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp

from fastbook._core cimport Book, book_readable, fb_book_depth, fb_book_top, FB_BID, FB_ASK

from fastbook._pyboard import HEADER, MAX_DEPTH, Snapshot, record_len, unpack

cnp.import_array()

COMPILED = True

__all__ = ["COMPILED", "HEADER", "MAX_DEPTH", "Board", "Snapshot", "record_len", "unpack"]

assert HEADER == FB_BOARD_HEADER and MAX_DEPTH == FB_BOARD_MAX_DEPTH


cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__GNUC__) || defined(__clang__)
    static inline uint64_t fb_seq_load_acquire(const uint64_t *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline uint64_t fb_seq_load_relaxed(const uint64_t *p) {
        return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void fb_seq_store_release(uint64_t *p, uint64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline int fb_seq_claim(uint64_t *p, uint64_t even) {
        return __atomic_compare_exchange_n(p, &even, even + 1, 0,
                                           __ATOMIC_ACQUIRE, __ATOMIC_RELAXED); }
    static inline int64_t fb_word_load(const int64_t *p) {
        return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void fb_word_store(int64_t *p, int64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    static inline void fb_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
    static inline void fb_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
    #  if defined(__x86_64__) || defined(__i386__)
    static inline void fb_cpu_relax(void) { __builtin_ia32_pause(); }
    #  elif defined(__aarch64__)
    static inline void fb_cpu_relax(void) { __asm__ __volatile__("yield"); }
    #  else
    static inline void fb_cpu_relax(void) { }
    #  endif
    #elif defined(_MSC_VER)
    #  include <intrin.h>
    /* x86/x64 are TSO: plain (volatile) loads are acquire and stores release once the
       compiler is kept from reordering; ARM64 needs real barriers. */
    #  if defined(_M_ARM64)
    #    define FB_HW_FENCE() __dmb(_ARM64_BARRIER_ISH)
    #  else
    #    define FB_HW_FENCE() _ReadWriteBarrier()
    #  endif
    static __forceinline uint64_t fb_seq_load_relaxed(const uint64_t *p) {
        return (uint64_t)__iso_volatile_load64((const volatile __int64 *)p); }
    static __forceinline uint64_t fb_seq_load_acquire(const uint64_t *p) {
        uint64_t v = fb_seq_load_relaxed(p); FB_HW_FENCE(); return v; }
    static __forceinline void fb_seq_store_release(uint64_t *p, uint64_t v) {
        FB_HW_FENCE(); __iso_volatile_store64((volatile __int64 *)p, (__int64)v); }
    static __forceinline int fb_seq_claim(uint64_t *p, uint64_t even) {
        int ok = (uint64_t)_InterlockedCompareExchange64((volatile __int64 *)p,
                    (__int64)(even + 1), (__int64)even) == even;
        FB_HW_FENCE(); return ok; }
    static __forceinline int64_t fb_word_load(const int64_t *p) {
        return __iso_volatile_load64((const volatile __int64 *)p); }
    static __forceinline void fb_word_store(int64_t *p, int64_t v) {
        __iso_volatile_store64((volatile __int64 *)p, v); }
    static __forceinline void fb_fence_acquire(void) { FB_HW_FENCE(); }
    static __forceinline void fb_fence_release(void) { FB_HW_FENCE(); }
    #  if defined(_M_ARM64)
    static __forceinline void fb_cpu_relax(void) { __yield(); }
    #  else
    static __forceinline void fb_cpu_relax(void) { _mm_pause(); }
    #  endif
    #else
    #  error "fastbook._board needs GCC/Clang __atomic builtins or MSVC intrinsics"
    #endif
    """
    uint64_t fb_seq_load_acquire(const uint64_t *p) noexcept nogil
    uint64_t fb_seq_load_relaxed(const uint64_t *p) noexcept nogil
    void fb_seq_store_release(uint64_t *p, uint64_t v) noexcept nogil
    bint fb_seq_claim(uint64_t *p, uint64_t even) noexcept nogil
    int64_t fb_word_load(const int64_t *p) noexcept nogil
    void fb_word_store(int64_t *p, int64_t v) noexcept nogil
    void fb_fence_acquire() noexcept nogil
    void fb_fence_release() noexcept nogil
    void fb_cpu_relax() noexcept nogil


cdef enum:
    # a reader that sees the same slot mid-write this many times in a row yields
    # its core: on a busy machine the writer may have been preempted mid-write
    SPINS_BEFORE_YIELD = 64

cdef extern from *:
    """
    #if defined(_WIN32)
    #  ifndef WIN32_LEAN_AND_MEAN
    #    define WIN32_LEAN_AND_MEAN
    #  endif
    #  include <windows.h>
    static void fb_board_yield(void) { SwitchToThread(); }
    #else
    #  include <sched.h>
    static void fb_board_yield(void) { sched_yield(); }
    #endif
    """
    void fb_board_yield() noexcept nogil


# --- the C functions (see _board.pxd) ---------------------------------------

cdef inline uint64_t *_seq(const fb_board *b, Py_ssize_t slot) noexcept nogil:
    return <uint64_t *>(b.mem + slot * b.stride)


cdef inline void _store_side(int64_t *dst, const int64_t *prices, const int64_t *qtys,
                             Py_ssize_t n, Py_ssize_t depth) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        fb_word_store(dst + 2 * i, prices[i])
        fb_word_store(dst + 2 * i + 1, qtys[i])
    for i in range(2 * n, 2 * depth):
        fb_word_store(dst + i, 0)


cdef int fb_board_publish(fb_board *b, Py_ssize_t slot, const int64_t *bid_prices,
                          const int64_t *bid_qtys, Py_ssize_t nb, const int64_t *ask_prices,
                          const int64_t *ask_qtys, Py_ssize_t na, int64_t state,
                          int64_t ts_ns, uint64_t *version) noexcept nogil:
    cdef uint64_t *seq = _seq(b, slot)
    cdef int64_t *rec = <int64_t *>seq
    cdef uint64_t s = fb_seq_load_relaxed(seq)
    # readers size their copies by these counts: keep them in 0..depth whatever a C
    # caller passes
    nb = 0 if nb < 0 else (b.depth if nb > b.depth else nb)
    na = 0 if na < 0 else (b.depth if na > b.depth else na)
    if s & 1 or not fb_seq_claim(seq, s):
        return FB_BOARD_EBUSY
    fb_fence_release()          # the odd seq is ordered before every payload store
    fb_word_store(rec + 1, state)
    fb_word_store(rec + 2, ts_ns)
    fb_word_store(rec + 3, nb)
    fb_word_store(rec + 4, na)
    _store_side(rec + FB_BOARD_HEADER, bid_prices, bid_qtys, nb, b.depth)
    _store_side(rec + FB_BOARD_HEADER + 2 * b.depth, ask_prices, ask_qtys, na, b.depth)
    fb_seq_store_release(seq, s + 2)
    version[0] = (s + 2) >> 1
    return 0


cdef inline bint _try_read(const fb_board *b, Py_ssize_t slot, int64_t *out) noexcept nogil:
    """One attempt: True when ``out`` now holds one publish's record."""
    cdef const uint64_t *seq = _seq(b, slot)
    cdef const int64_t *rec = <const int64_t *>seq
    cdef Py_ssize_t i, n = FB_BOARD_HEADER + 4 * b.depth
    cdef uint64_t s1 = fb_seq_load_acquire(seq)
    if s1 & 1:
        return False
    for i in range(1, n):
        out[i] = fb_word_load(rec + i)
    fb_fence_acquire()          # the payload loads are ordered before the second seq load
    if fb_seq_load_relaxed(seq) != s1:
        return False
    out[0] = <int64_t>(s1 >> 1)
    return True


cdef uint64_t fb_board_read(const fb_board *b, Py_ssize_t slot, int64_t *out) noexcept nogil:
    cdef int spins = 0
    while not _try_read(b, slot, out):
        spins += 1
        if spins < SPINS_BEFORE_YIELD:
            fb_cpu_relax()
        else:
            spins = 0
            fb_board_yield()
    return <uint64_t>out[0]


cdef uint64_t fb_board_version(const fb_board *b, Py_ssize_t slot) noexcept nogil:
    return fb_seq_load_acquire(_seq(b, slot)) >> 1


# --- argument checks (with the GIL) -----------------------------------------

cdef str _describe(object a):
    if isinstance(a, cnp.ndarray):
        return f"dtype {a.dtype}, shape {a.shape}"
    return type(a).__name__


cdef int64_t _i64(object value, str name) except? -1:
    if type(value) is not int and (isinstance(value, bool)
                                   or not isinstance(value, (int, np.integer))):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    try:
        return value
    except OverflowError:
        raise ValueError(f"{name} must be in {INT64_MIN}..{INT64_MAX}, got {value}") from None


cdef bint _is_i64_array(object a):
    return (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_INT64
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a))


cdef cnp.ndarray _levels(object a, str name, Py_ssize_t depth):
    """``a`` as a C-contiguous 1-D int64 array (a copy only when it is strided)."""
    if not _is_i64_array(a) or cnp.PyArray_NDIM(<cnp.ndarray>a) != 1:
        raise ValueError(f"{name} must be a 1-D numpy int64 array, got {_describe(a)}")
    if cnp.PyArray_DIMS(<cnp.ndarray>a)[0] > depth:
        raise ValueError(f"{name} has {len(a)} levels, more than the board's depth {depth}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        a = np.ascontiguousarray(a)
    return <cnp.ndarray>a


cdef inline const int64_t *_data(cnp.ndarray a) noexcept:
    return <const int64_t *>cnp.PyArray_DATA(a)


cdef class Board:
    """``slots`` books' best ``depth`` levels of both sides, one writer, many readers.

    Each slot is a sequence-locked record in fixed memory (allocated once; 64-byte
    aligned slots). The writer calls :meth:`publish` (a book) or :meth:`publish_levels`
    (arrays) for a slot; readers on any thread call :meth:`read`, :meth:`read_into` or
    :meth:`version` and always get every field of one publish: a reader copies without
    the GIL and retries while a write is in progress or the slot changed during its
    copy. The writer never waits for readers. One thread publishes into a slot at a
    time: a second one is refused with RuntimeError. Memory ordering: module docstring.
    """

    def __cinit__(self, *args, **kwargs):
        self._b.raw = NULL
        self._b.mem = NULL
        self._b.slots = 0
        self._b.depth = 0

    def __init__(self, slots, depth=10):
        if self._b.raw != NULL:
            raise RuntimeError("Board.__init__ called twice")
        if type(slots) is not int and (isinstance(slots, bool)
                                       or not isinstance(slots, (int, np.integer))):
            raise ValueError(f"slots must be an int, got {type(slots).__name__}")
        if type(depth) is not int and (isinstance(depth, bool)
                                       or not isinstance(depth, (int, np.integer))):
            raise ValueError(f"depth must be an int, got {type(depth).__name__}")
        if not 1 <= slots <= 2**31 - 1:
            raise ValueError(f"slots must be in 1..{2**31 - 1}, got {slots}")
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be in 1..{MAX_DEPTH}, got {depth}")
        cdef Py_ssize_t words = FB_BOARD_HEADER + 4 * <Py_ssize_t>depth
        self._b.slots = slots
        self._b.depth = depth
        self._b.stride = (words + 7) & ~<Py_ssize_t>7
        cdef size_t nbytes = <size_t>self._b.slots * <size_t>self._b.stride * sizeof(int64_t)
        self._b.raw = PyMem_Malloc(nbytes + 64)
        if self._b.raw == NULL:
            raise MemoryError(f"fastbook: cannot allocate a Board of {slots} slots x depth "
                              f"{depth} ({nbytes} bytes)")
        self._b.mem = <int64_t *>((<uintptr_t>self._b.raw + 63) & ~<uintptr_t>63)
        cdef Py_ssize_t i
        for i in range(self._b.slots * self._b.stride):
            self._b.mem[i] = 0

    def __dealloc__(self):
        PyMem_Free(self._b.raw)

    @property
    def slots(self):
        """Number of slots."""
        return self._b.slots

    @property
    def depth(self):
        """Levels kept per side."""
        return self._b.depth

    @property
    def record_len(self):
        """Length of the ``int64`` buffer :meth:`read_into` fills."""
        return FB_BOARD_HEADER + 4 * self._b.depth

    def __repr__(self):
        return f"<fastbook Board slots={self._b.slots} depth={self._b.depth}>"

    cdef Py_ssize_t _slot(self, object slot) except -1:
        if type(slot) is not int and (isinstance(slot, bool)
                                      or not isinstance(slot, (int, np.integer))):
            raise IndexError(f"slot must be an int, got {type(slot).__name__}")
        if not 0 <= slot < self._b.slots:
            raise IndexError(f"slot {slot} out of range for a Board of {self._b.slots} slots")
        return slot

    cdef object _publish(self, Py_ssize_t s, const int64_t *bp, const int64_t *bq,
                         Py_ssize_t nb, const int64_t *ap, const int64_t *aq, Py_ssize_t na,
                         int64_t state, int64_t ts_ns):
        cdef uint64_t version
        if fb_board_publish(&self._b, s, bp, bq, nb, ap, aq, na, state, ts_ns, &version) < 0:
            raise RuntimeError(f"slot {s} is being published by another thread: one writer "
                               "per slot")
        return version

    # -- writer ------------------------------------------------------------
    def publish(self, slot, book, state=0, ts_ns=0):
        """Copy ``book``'s best ``depth`` levels of both sides, ``state`` and ``ts_ns``
        into ``slot``; return the slot's new version.

        A compiled ``fastbook.Book`` is read through the C API (no Python call); any
        other object must have ``top(n)`` returning an ``int64`` array of shape
        ``(4, n)`` (rows bid prices, bid qtys, ask prices, ask qtys, zero-padded).
        """
        cdef Py_ssize_t s = self._slot(slot)
        cdef int64_t st = _i64(state, "state"), ts = _i64(ts_ns, "ts_ns")
        cdef Py_ssize_t d = self._b.depth, nb, na
        cdef int64_t buf[4 * FB_BOARD_MAX_DEPTH]
        cdef Book b
        cdef cnp.ndarray t
        cdef const int64_t *p
        if isinstance(book, Book):
            b = <Book>book
            book_readable(b)
            fb_book_top(&b._book, d, buf, buf + d, buf + 2 * d, buf + 3 * d)
            nb = min(d, fb_book_depth(&b._book, FB_BID))
            na = min(d, fb_book_depth(&b._book, FB_ASK))
            return self._publish(s, buf, buf + d, nb, buf + 2 * d, buf + 3 * d, na, st, ts)
        top = getattr(book, "top", None)
        if top is None:
            raise ValueError(f"book must be a fastbook.Book or have top(n), got "
                             f"{type(book).__name__}")
        r = top(d)
        if not _is_i64_array(r) or r.shape != (4, d):
            raise ValueError(f"book.top({d}) must return an int64 array of shape (4, {d}), "
                             f"got {_describe(r)}")
        t = np.ascontiguousarray(r)
        p = _data(t)
        nb = np.count_nonzero(r[1])
        na = np.count_nonzero(r[3])
        return self._publish(s, p, p + d, nb, p + 2 * d, p + 3 * d, na, st, ts)

    def publish_levels(self, slot, bid_prices, bid_qtys, ask_prices, ask_qtys, state=0,
                       ts_ns=0):
        """Copy levels given as 1-D ``int64`` arrays (best first, at most ``depth`` per
        side; prices and quantities of a side have the same length) into ``slot``;
        return the slot's new version. The levels are copied as given, not checked
        for order or for zero quantities."""
        cdef Py_ssize_t s = self._slot(slot)
        cdef Py_ssize_t d = self._b.depth
        cdef cnp.ndarray bp = _levels(bid_prices, "bid_prices", d)
        cdef cnp.ndarray bq = _levels(bid_qtys, "bid_qtys", d)
        cdef cnp.ndarray ap = _levels(ask_prices, "ask_prices", d)
        cdef cnp.ndarray aq = _levels(ask_qtys, "ask_qtys", d)
        cdef Py_ssize_t nb = cnp.PyArray_DIMS(bp)[0], na = cnp.PyArray_DIMS(ap)[0]
        if cnp.PyArray_DIMS(bq)[0] != nb:
            raise ValueError(f"bid_prices has {nb} levels but bid_qtys {len(bq)}")
        if cnp.PyArray_DIMS(aq)[0] != na:
            raise ValueError(f"ask_prices has {na} levels but ask_qtys {len(aq)}")
        cdef int64_t st = _i64(state, "state"), ts = _i64(ts_ns, "ts_ns")
        return self._publish(s, _data(bp), _data(bq), nb, _data(ap), _data(aq), na, st, ts)

    # -- readers -----------------------------------------------------------
    def version(self, slot):
        """The slot's version: how many publishes it has had (one acquire load; to skip
        unchanged slots)."""
        return fb_board_version(&self._b, self._slot(slot))

    def versions(self, out=None):
        """Every slot's version as an ``int64`` array (``out``, of ``slots`` elements,
        when given)."""
        cdef Py_ssize_t i
        if out is None:
            out = np.empty(self._b.slots, dtype=np.int64)
        elif not _is_i64_array(out) or out.shape != (self._b.slots,) \
                or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
            raise ValueError(f"out must be a writeable int64 array of shape ({self._b.slots},), "
                             f"got {_describe(out)}")
        cdef int64_t[:] v = out
        for i in range(self._b.slots):
            v[i] = <int64_t>fb_board_version(&self._b, i)
        return out

    def read(self, slot):
        """A consistent copy of ``slot`` (all fields from one publish), as a Snapshot
        whose arrays are new (the copy itself runs without the GIL)."""
        cdef Py_ssize_t s = self._slot(slot), d = self._b.depth
        cdef int64_t buf[FB_BOARD_HEADER + 4 * FB_BOARD_MAX_DEPTH]
        with nogil:
            fb_board_read(&self._b, s, buf)
        cdef Py_ssize_t nb = buf[3], na = buf[4]
        return tuple.__new__(Snapshot, (<uint64_t>buf[0], buf[1], buf[2], nb, na,
                                        _pairs(buf + FB_BOARD_HEADER, nb),
                                        _pairs(buf + FB_BOARD_HEADER + 2 * d, na)))

    def read_into(self, slot, out):
        """Copy ``slot`` into ``out`` (a writeable, C-contiguous 1-D ``int64`` array of
        ``record_len`` elements; layout in ``fastbook._pyboard``, :func:`unpack` reads
        it) without allocating; return the version copied. The copy runs without the
        GIL and retries until it holds one publish."""
        cdef Py_ssize_t s = self._slot(slot)
        cdef int64_t *p = _out(out, FB_BOARD_HEADER + 4 * self._b.depth)
        cdef uint64_t v
        with nogil:
            v = fb_board_read(&self._b, s, p)
        return v


cdef object _pairs(const int64_t *src, Py_ssize_t n):
    """A new (n, 2) int64 array of the n (price, qty) pairs at ``src``."""
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = 2
    cdef cnp.ndarray a = cnp.PyArray_EMPTY(2, dims, cnp.NPY_INT64, 0)
    memcpy(cnp.PyArray_DATA(a), src, <size_t>(2 * n) * sizeof(int64_t))
    return a


cdef int64_t *_out(object out, Py_ssize_t n) except NULL:
    if not _is_i64_array(out) or cnp.PyArray_NDIM(<cnp.ndarray>out) != 1 \
            or cnp.PyArray_DIMS(<cnp.ndarray>out)[0] != n \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>out) \
            or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
        raise ValueError(f"out must be a writeable C-contiguous int64 array of shape ({n},) "
                         f"(Board.record_len), got {_describe(out)}")
    return <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>out)


# --- test and benchmark helpers (not API) -----------------------------------
# The stress publish writes synthetic levels whose every field is a function of the
# version, so a reader can tell a consistent record from a torn one on its own.

cdef inline int64_t _enc_n(uint64_t v, Py_ssize_t depth, int side) noexcept nogil:
    return <int64_t>(1 + (v * (3 if side == 0 else 7) + side) % <uint64_t>depth)


cdef inline int64_t _enc_price(uint64_t v, Py_ssize_t i, int side) noexcept nogil:
    return <int64_t>(v * 1024 + <uint64_t>i) * (1 if side == 0 else -1)


cdef inline int64_t _enc_qty(uint64_t v, Py_ssize_t i) noexcept nogil:
    return <int64_t>v * 3 + i


cdef bint _consistent(const int64_t *rec, Py_ssize_t depth) noexcept nogil:
    """True when every field of ``rec`` encodes its version (see _stress_publish)."""
    cdef uint64_t v = <uint64_t>rec[0]
    cdef Py_ssize_t i, n
    cdef int side
    cdef const int64_t *lv
    if v == 0:
        for i in range(1, FB_BOARD_HEADER + 4 * depth):
            if rec[i] != 0:
                return False
        return True
    if rec[1] != <int64_t>(v & 7) or rec[2] != <int64_t>v:
        return False
    for side in range(2):
        n = _enc_n(v, depth, side)
        if rec[3 + side] != n:
            return False
        lv = rec + FB_BOARD_HEADER + side * 2 * depth
        for i in range(depth):
            if i < n:
                if lv[2 * i] != _enc_price(v, i, side) or lv[2 * i + 1] != _enc_qty(v, i):
                    return False
            elif lv[2 * i] != 0 or lv[2 * i + 1] != 0:
                return False
    return True


def _stress_publish(Board board, slot, Py_ssize_t n, Py_ssize_t gap=0):
    """Publish ``n`` synthetic records into ``slot`` in a loop without the GIL (each
    field a function of the version; ``_consistent`` checks them), spinning ``gap``
    CPU pause instructions between publishes (to pace the writer); return the last
    version. Test and benchmark helper."""
    cdef Py_ssize_t s = board._slot(slot), d = board._b.depth, _k, i, _j
    cdef int64_t buf[4 * FB_BOARD_MAX_DEPTH]
    cdef uint64_t v = fb_board_version(&board._b, s), got = v
    cdef int side, rc = 0
    with nogil:
        for _k in range(n):
            v += 1
            for side in range(2):
                for i in range(d):
                    buf[2 * side * d + i] = _enc_price(v, i, side)
                    buf[(2 * side + 1) * d + i] = _enc_qty(v, i)
            rc = fb_board_publish(&board._b, s, buf, buf + d, _enc_n(v, d, 0), buf + 2 * d,
                                  buf + 3 * d, _enc_n(v, d, 1), <int64_t>(v & 7),
                                  <int64_t>v, &got)
            if rc < 0 or got != v:
                break
            for _j in range(gap):
                fb_cpu_relax()
    if rc < 0 or got != v:
        raise RuntimeError(f"slot {s} had another writer during _stress_publish")
    return got


def _consistent_record(Board board, out):
    """True when a ``read_into`` record of a ``_stress_publish`` slot is consistent."""
    return _consistent(_out(out, FB_BOARD_HEADER + 4 * board._b.depth), board._b.depth)


def _read_unchecked(Board board, slot, out):
    """``read_into`` WITHOUT the sequence check (relaxed loads, no retry): may copy a torn
    record. Test-only: shows the check is what makes reads consistent."""
    cdef Py_ssize_t s = board._slot(slot), i
    cdef int64_t *p = _out(out, FB_BOARD_HEADER + 4 * board._b.depth)
    cdef const int64_t *rec = board._b.mem + s * board._b.stride
    with nogil:
        p[0] = <int64_t>(fb_seq_load_relaxed(<const uint64_t *>rec) >> 1)
        for i in range(1, FB_BOARD_HEADER + 4 * board._b.depth):
            p[i] = fb_word_load(rec + i)
    return p[0]


def _stress_read(Board board, slot, Py_ssize_t n, bint checked=True):
    """Read ``slot`` ``n`` times without the GIL (``checked=False``: without the sequence
    check) and check every record with ``_consistent``; return ``(reads, torn,
    distinct)``: torn records and how many times the version read changed. Test and
    benchmark helper."""
    cdef Py_ssize_t s = board._slot(slot), d = board._b.depth, _k, i
    cdef Py_ssize_t torn = 0, distinct = 0
    cdef int64_t last = -1
    cdef int64_t *out = <int64_t *>PyMem_Malloc((FB_BOARD_HEADER + 4 * d) * sizeof(int64_t))
    cdef const int64_t *rec = board._b.mem + s * board._b.stride
    if out == NULL:
        raise MemoryError()
    with nogil:
        for _k in range(n):
            if checked:
                fb_board_read(&board._b, s, out)
            else:
                out[0] = <int64_t>(fb_seq_load_relaxed(<const uint64_t *>rec) >> 1)
                for i in range(1, FB_BOARD_HEADER + 4 * d):
                    out[i] = fb_word_load(rec + i)
            if not _consistent(out, d):
                torn += 1
            if out[0] != last:
                distinct += 1
                last = out[0]
    PyMem_Free(out)
    return n, torn, distinct
