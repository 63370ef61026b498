# cython: language_level=3
"""Compiled consolidated cross-venue view (``Consolidated``); see ``_consol.pxd`` and
``docs/consolidated.md``.

The pure-Python twin is ``fastbook._pyconsol``; both take their plan (common scale, fees,
checks) from ``fastbook._consolspec`` and must give the same BBO, events, reasons and
opportunities (tests/consolidated compare them). The hot path, ``update``, reads a
compiled ``Book``'s best levels with the inline ``fb_book_best`` of ``_core.pxd``; other
readers go through their ``bbo()``.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint64_t
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp

from fastbook._core cimport Book, book_readable, fb_book_best, fb_book_top, FB_BID, FB_ASK

from fastbook import _consolspec as spec
from fastbook._consolspec import (
    CBBO_DTYPE, DEFAULT_TAKER_FEES, REASONS, Depth, Opportunity, Venue,
)

cnp.import_array()

COMPILED = True

cdef enum:
    R_IN = 0
    R_NO_DATA = 1
    R_NOT_LIVE = 2
    R_CROSSED = 3
    R_OVERFLOW = 4
    R_STALE = 5
    F_BID = 1
    F_ASK = 2
    FIRST_LEVELS = 16

cdef int64_t FEE_ONE = spec.FEE_ONE
cdef int64_t QTY_LIMIT = spec.QTY_LIMIT

assert CBBO_DTYPE.itemsize == sizeof(cv_event)
assert spec.REASONS[R_STALE] == "stale" and spec.REASONS[R_OVERFLOW] == "overflow"

__all__ = ["CBBO_DTYPE", "COMPILED", "DEFAULT_TAKER_FEES", "REASONS", "Consolidated", "Depth",
           "Opportunity", "Venue"]


cdef inline bint _fits(int64_t price, int64_t qty, const cv_venue *v) noexcept nogil:
    return -v.plim <= price <= v.plim and qty <= v.qlim


cdef class Consolidated:
    """One instrument's books on several venues as one view (BBO, depth, arbitrage).

    ``venues``: :class:`Venue` entries (or ``(name, book, instrument[, stale_ns[,
    taker_fee]])`` tuples). ``fixed_cost`` (quote currency, decimal text) is subtracted from
    every opportunity; ``min_profit_bps`` and ``max_age_ns`` filter them. Call
    :meth:`update` after venue ``i``'s book changed, :meth:`refresh` when time passes.
    """

    def __cinit__(self, *args, **kwargs):
        self._v = NULL
        self._ev = NULL
        self._wbuf = NULL
        self._chunks = NULL

    def __init__(self, str symbol, venues, *, fixed_cost="0", min_profit_bps=0,
                 max_age_ns=None, bint record_events=True):
        cdef Py_ssize_t i
        cdef cv_venue *v
        if self._v != NULL:
            raise RuntimeError("Consolidated.__init__ called twice")
        p = spec.plan(symbol, venues, fixed_cost=fixed_cost, min_profit_bps=min_profit_bps,
                      max_age_ns=max_age_ns)
        n = len(p.venues)
        self._v = <cv_venue *>PyMem_Malloc(n * sizeof(cv_venue))
        self._wk = FIRST_LEVELS
        self._wbuf = <int64_t *>PyMem_Malloc(8 * self._wk * sizeof(int64_t))
        self._chunks = <int64_t *>PyMem_Malloc(6 * self._wk * sizeof(int64_t))
        self._cap = 64
        self._ev = <cv_event *>PyMem_Malloc(self._cap * sizeof(cv_event))
        if self._v == NULL or self._wbuf == NULL or self._chunks == NULL or self._ev == NULL:
            raise MemoryError()
        self._plan = p
        self._n = n
        self._books = []
        for i in range(n):
            vp = p.venues[i]
            v = &self._v[i]
            v.book = NULL
            if isinstance(vp.book, Book):
                v.book = &(<Book>vp.book)._book
            self._books.append(vp.book)
            v.pmult = vp.price_mult
            v.qmult = vp.qty_mult
            v.plim = INT64_MAX // v.pmult
            v.qlim = QTY_LIMIT // v.qmult
            v.fee = vp.fee
            v.stale_ns = vp.stale_ns
            v.last_ns = INT64_MIN
            v.bid = v.bq = v.ask = v.aq = 0
            v.has = 0
            v.base = R_NO_DATA
            v.reason = R_NO_DATA
            v.updates = v.crossed = v.overflow = 0
        self._now = INT64_MIN
        self._backwards = 0
        self._changes = 0
        self._changed_once = False
        self._cur.flags = 0
        self._cur.bid = self._cur.bid_qty = self._cur.ask = self._cur.ask_qty = 0
        self._cur.bid_mask = self._cur.ask_mask = self._cur.in_mask = 0
        self._in_mask = 0
        self._record = record_events
        self._nev = 0
        self._max_age = p.max_age_ns

    def __dealloc__(self):
        PyMem_Free(self._v)
        PyMem_Free(self._ev)
        PyMem_Free(self._wbuf)
        PyMem_Free(self._chunks)

    # -- properties ----------------------------------------------------------------------

    @property
    def symbol(self):
        return self._plan.symbol

    @property
    def price_decimals(self):
        return self._plan.price_decimals

    @property
    def qty_decimals(self):
        return self._plan.qty_decimals

    @property
    def profit_decimals(self):
        return self._plan.profit_decimals

    @property
    def venue_names(self):
        return tuple(v.name for v in self._plan.venues)

    @property
    def plan(self):
        return self._plan

    def __len__(self):
        return self._n

    def metadata(self):
        """Symbol, scales, venues, fees and thresholds: what to store beside the events."""
        return spec.metadata(self._plan)

    def index(self, str name):
        """The index of venue ``name`` (what :meth:`update` takes)."""
        for i, v in enumerate(self._plan.venues):
            if v.name == name:
                return i
        raise KeyError(f"no venue named {name!r} in this view")

    # -- updates -------------------------------------------------------------------------

    cdef int64_t _clock(self, object now_ns) except? -1:
        cdef int64_t now
        if type(now_ns) is not int:
            now_ns = spec.as_int(now_ns, "now_ns", TypeError)
        try:
            now = now_ns
        except OverflowError:
            now = -1
        if now < 0:
            raise ValueError(f"now_ns must be a non-negative int64 nanosecond time, got {now_ns}")
        if now < self._now:
            self._backwards += 1
            return self._now
        self._now = now
        return now

    def update(self, venue, now_ns, live=True):
        """Read venue ``venue``'s best levels after its book changed; True when the
        consolidated BBO changed (price, size or the venues holding it)."""
        cdef Py_ssize_t i = -1
        cdef int64_t now
        if type(venue) is not int:
            venue = spec.as_int(venue, "venue", IndexError)
        try:
            i = venue
        except OverflowError:
            i = -1
        if not 0 <= i < self._n:
            raise IndexError(f"venue index {venue!r} out of range 0..{self._n - 1}")
        now = self._clock(now_ns)
        self._v[i].updates += 1
        self._v[i].last_ns = now
        self._read(i, live is True or (live is not False and bool(live)))
        return self._recompute(now, i)

    def rebind(self, venue, book):
        """Read venue ``venue`` from ``book`` from now on (same scales as the old book).
        Its best levels are read again at its next :meth:`update`."""
        j = spec.as_int(venue, "venue", IndexError)
        self._plan = spec.rebind(self._plan, j, book)      # checks the index and the scales
        cdef Py_ssize_t i = j
        self._books[i] = book
        self._v[i].book = &(<Book>book)._book if isinstance(book, Book) else NULL

    def refresh(self, now_ns):
        """Re-check staleness at ``now_ns`` without a venue update; True on a change."""
        return self._recompute(self._clock(now_ns), -1)

    cdef int _read(self, Py_ssize_t i, bint live) except -1:
        """Venue ``i``'s best levels, converted, and its base reason."""
        cdef cv_venue *v = &self._v[i]
        cdef int64_t bp = 0, bq = 0, ap = 0, aq = 0
        cdef int has = 0, reason = R_IN
        if v.book != NULL:
            book_readable(<Book>self._books[i])
            if fb_book_best(v.book, FB_BID, &bp, &bq):
                has = F_BID
            if fb_book_best(v.book, FB_ASK, &ap, &aq):
                has |= F_ASK
        else:
            t = self._books[i].bbo()
            if t[0] is not None:
                bp, bq = t[0], t[1]
                has = F_BID
            if t[2] is not None:
                ap, aq = t[2], t[3]
                has |= F_ASK
        if not live:
            reason = R_NOT_LIVE
        elif not has:
            reason = R_NO_DATA
        elif (has & F_BID and not _fits(bp, bq, v)) or (has & F_ASK and not _fits(ap, aq, v)):
            reason = R_OVERFLOW
            v.overflow += 1
        elif has == F_BID | F_ASK and bp >= ap:
            reason = R_CROSSED
            v.crossed += 1
        if reason == R_IN:
            v.has = has
            v.bid = bp * v.pmult if has & F_BID else 0
            v.bq = bq * v.qmult if has & F_BID else 0
            v.ask = ap * v.pmult if has & F_ASK else 0
            v.aq = aq * v.qmult if has & F_ASK else 0
        else:
            v.has = 0
        v.base = reason
        return 0

    cdef bint _recompute(self, int64_t now, int64_t venue) noexcept:
        cdef Py_ssize_t j
        cdef cv_venue *v
        cdef uint64_t in_mask = 0, bmask = 0, amask = 0, bit
        cdef int64_t bid = 0, ask = 0, bq = 0, aq = 0, bold = INT64_MAX, aold = INT64_MAX
        cdef int r
        cdef int64_t flags
        for j in range(self._n):
            v = &self._v[j]
            r = v.base
            if r == R_IN and now - v.last_ns > v.stale_ns:
                r = R_STALE
            v.reason = r
            if r != R_IN:
                continue
            bit = (<uint64_t>1) << j
            in_mask |= bit
            if v.has & F_BID:
                if bmask == 0 or v.bid > bid:
                    bid = v.bid
                    bq = v.bq
                    bmask = bit
                    bold = v.last_ns
                elif v.bid == bid:
                    bq += v.bq
                    bmask |= bit
                    if v.last_ns < bold:
                        bold = v.last_ns
            if v.has & F_ASK:
                if amask == 0 or v.ask < ask:
                    ask = v.ask
                    aq = v.aq
                    amask = bit
                    aold = v.last_ns
                elif v.ask == ask:
                    aq += v.aq
                    amask |= bit
                    if v.last_ns < aold:
                        aold = v.last_ns
        self._in_mask = in_mask
        flags = (F_BID if bmask else 0) | (F_ASK if amask else 0)
        if (flags == self._cur.flags and bid == self._cur.bid and bq == self._cur.bid_qty
                and bmask == self._cur.bid_mask and ask == self._cur.ask
                and aq == self._cur.ask_qty and amask == self._cur.ask_mask):
            return False
        self._cur.ts = now
        self._cur.venue = venue
        self._cur.flags = flags
        self._cur.bid = bid
        self._cur.bid_qty = bq
        self._cur.bid_mask = bmask
        self._cur.ask = ask
        self._cur.ask_qty = aq
        self._cur.ask_mask = amask
        self._cur.bid_age = now - bold if bmask else -1
        self._cur.ask_age = now - aold if amask else -1
        self._cur.in_mask = in_mask
        self._changes += 1
        self._changed_once = True
        if self._record:
            if self._nev == self._cap and self._push() < 0:
                return True      # out of memory: the event is lost, the state is right
            self._ev[self._nev] = self._cur
            self._nev += 1
        return True

    cdef int _push(self) except -1:
        """Double the event buffer (-1 when that fails: the caller drops the event)."""
        cdef cv_event *ev = <cv_event *>PyMem_Realloc(self._ev, 2 * self._cap * sizeof(cv_event))
        if ev == NULL:
            return -1
        self._ev = ev
        self._cap *= 2
        return 0

    # -- reads ---------------------------------------------------------------------------

    def bbo(self):
        """``(bid, bid_qty, bid_venues, ask, ask_qty, ask_venues)`` at the common scale;
        ``None, None, ()`` for an empty side."""
        p = self._plan
        if self._cur.flags & F_BID:
            b = (self._cur.bid, self._cur.bid_qty, spec.names_of(p, self._cur.bid_mask))
        else:
            b = (None, None, ())
        if self._cur.flags & F_ASK:
            a = (self._cur.ask, self._cur.ask_qty, spec.names_of(p, self._cur.ask_mask))
        else:
            a = (None, None, ())
        return b + a

    def bbo_masks(self):
        """(bid venue mask, ask venue mask, in-view mask): bit i is venue i."""
        return self._cur.bid_mask, self._cur.ask_mask, self._in_mask

    def venues_in(self):
        """Each venue's state at the last update/refresh: ``"in"`` or why it is out
        (``"not live"``, ``"no data"``, ``"crossed"``, ``"overflow"``, ``"stale"``)."""
        return {v.name: REASONS[self._v[i].reason] for i, v in enumerate(self._plan.venues)}

    def depth(self, n):
        """The best ``n`` merged levels per side of the venues in the view, read from their
        books now, with the quantity per venue."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"depth: n must be a non-negative int, got {n!r}")
        ins = [i for i in range(self._n) if self._v[i].reason == R_IN]
        return spec.merge_depth(self._plan, ins, n)

    def last_change(self):
        """The last change event (a ``CBBO_DTYPE`` row as a tuple), or None."""
        if not self._changed_once:
            return None
        c = self._cur
        return (c.ts, c.venue, c.flags, c.bid, c.bid_qty, c.bid_mask, c.ask, c.ask_qty,
                c.ask_mask, c.bid_age, c.ask_age, c.in_mask)

    def take_events(self):
        """The change events recorded since the last call (``CBBO_DTYPE``), and forget them."""
        cdef cnp.ndarray out = np.empty(self._nev, dtype=CBBO_DTYPE)
        if self._nev:
            memcpy(cnp.PyArray_DATA(out), self._ev, self._nev * sizeof(cv_event))
        self._nev = 0
        return out

    def stats(self):
        """Counts: updates, changes, clock steps backwards, and per venue updates, crossed and
        overflow counts, the current reason and the age of its last update."""
        cdef Py_ssize_t i
        venues = {}
        total = 0
        for i in range(self._n):
            v = &self._v[i]
            total += v.updates
            venues[self._plan.venues[i].name] = {
                "updates": v.updates, "crossed": v.crossed, "overflow": v.overflow,
                "state": REASONS[v.reason],
                "age_ns": -1 if v.last_ns == INT64_MIN else self._now - v.last_ns,
            }
        return {"updates": total, "changes": self._changes,
                "clock_backwards": self._backwards, "venues": venues}

    # -- arbitrage -----------------------------------------------------------------------

    def arbitrage(self, now_ns):
        """Cross-venue opportunities after both taker fees and the fixed cost, best first
        (empty when the consolidated book does not cross). Each pair is computed on its own:
        pairs sharing a venue share its liquidity, so their sizes do not add up."""
        cdef Py_ssize_t a, b
        cdef const cv_venue *va
        cdef const cv_venue *vb
        cdef int64_t now, sa, ba
        if self._cur.flags != F_BID | F_ASK or self._cur.bid <= self._cur.ask:
            return ()
        now = self._clock(now_ns)
        found = []
        for a in range(self._n):
            va = &self._v[a]
            if va.reason != R_IN or not va.has & F_BID:
                continue
            for b in range(self._n):
                vb = &self._v[b]
                if b == a or vb.reason != R_IN or not vb.has & F_ASK:
                    continue
                if fb_cv_mulcmp(va.bid, FEE_ONE - va.fee, vb.ask, FEE_ONE + vb.fee) <= 0:
                    continue
                sa = now - va.last_ns
                ba = now - vb.last_ns
                if self._max_age >= 0 and (sa > self._max_age or ba > self._max_age):
                    continue
                opp = self._walk(a, b, sa, ba)
                if opp is not None:
                    found.append(opp)
        return spec.rank(found)

    cdef Py_ssize_t _fetch(self, Py_ssize_t i, Py_ssize_t k, int64_t *out) except -1:
        """Venue ``i``'s best ``k`` levels per side into ``out`` (4 rows of ``k``)."""
        cdef const cv_venue *v = &self._v[i]
        cdef cnp.ndarray top
        if v.book != NULL:
            book_readable(<Book>self._books[i])
            return fb_book_top(v.book, k, out, out + k, out + 2 * k, out + 3 * k)
        top = np.ascontiguousarray(self._books[i].top(k), dtype=np.int64)
        if top.ndim != 2 or top.shape[0] != 4 or top.shape[1] != k:
            raise ValueError(f"venue {self._plan.venues[i].name!r}: top({k}) did not return "
                             f"a (4, {k}) array")
        memcpy(out, cnp.PyArray_DATA(top), 4 * k * sizeof(int64_t))
        return k

    cdef int _grow(self, Py_ssize_t k) except -1:
        cdef int64_t *w = <int64_t *>PyMem_Realloc(self._wbuf, 8 * k * sizeof(int64_t))
        if w == NULL:
            raise MemoryError()
        self._wbuf = w
        w = <int64_t *>PyMem_Realloc(self._chunks, 6 * k * sizeof(int64_t))
        if w == NULL:
            raise MemoryError()
        self._chunks = w
        self._wk = k
        return 0

    cdef object _walk(self, Py_ssize_t a, Py_ssize_t b, int64_t sa, int64_t ba):
        """Walk ``a``'s bids against ``b``'s asks; the opportunity or None."""
        cdef Py_ssize_t k = FIRST_LEVELS, nb, na, i, j, used_i, used_j, nc, c
        cdef int64_t *bp
        cdef int64_t *bq
        cdef int64_t *ap
        cdef int64_t *aq
        cdef const cv_venue *va = &self._v[a]
        cdef const cv_venue *vb = &self._v[b]
        cdef int64_t ka = FEE_ONE - va.fee, kb = FEE_ONE + vb.fee
        cdef int64_t pb = 0, pa = 0, rem_b, rem_a, q
        cdef int out
        while True:
            if k > self._wk:
                self._grow(k)
            self._fetch(a, k, self._wbuf)
            self._fetch(b, k, self._wbuf + 4 * k)
            bp = self._wbuf
            bq = self._wbuf + k
            ap = self._wbuf + 6 * k
            aq = self._wbuf + 7 * k
            nb = 0
            while nb < k and bq[nb] != 0:
                nb += 1
            na = 0
            while na < k and aq[na] != 0:
                na += 1
            i = j = used_i = used_j = nc = 0
            rem_b = rem_a = 0
            out = 0
            while True:
                if rem_b == 0:
                    if i >= nb or not _fits(bp[i], bq[i], va):
                        out = 1 if i >= nb else 0
                        break
                    pb = bp[i] * va.pmult
                    rem_b = bq[i] * va.qmult
                    i += 1
                if rem_a == 0:
                    if j >= na or not _fits(ap[j], aq[j], vb):
                        out = 2 if j >= na else 0
                        break
                    pa = ap[j] * vb.pmult
                    rem_a = aq[j] * vb.qmult
                    j += 1
                if fb_cv_mulcmp(pb, ka, pa, kb) <= 0:
                    break
                q = rem_a if rem_a < rem_b else rem_b
                self._chunks[3 * nc] = pb
                self._chunks[3 * nc + 1] = pa
                self._chunks[3 * nc + 2] = q
                nc += 1
                used_i = i
                used_j = j
                rem_a -= q
                rem_b -= q
            if (out == 1 and nb == k) or (out == 2 and na == k):
                k *= 4       # a side ran out of fetched levels: it may have more
                continue
            break
        if nc == 0:
            return None
        chunks = [(self._chunks[3 * c], self._chunks[3 * c + 1], self._chunks[3 * c + 2])
                  for c in range(nc)]
        return spec.opportunity(self._plan, a, b, chunks, (used_i, used_j), sa, ba)
