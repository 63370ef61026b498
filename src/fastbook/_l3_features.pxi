# Part of fastbook._l3, included by _l3.pyx after _l3_sampling.pxi: the feature
# kernels a Sampler(features=...) runs inside the batch loop. docs/features.md defines
# every feature; fastbook._pyfeatures is the twin, written to give the same values bit
# for bit (exact integers here are __int128, floats the same operations in the same
# order; the extension is built with -ffp-contract=off so no multiply-add is fused).

cdef extern from *:
    ctypedef long long i128 "__int128"

cdef enum:
    _F_MID = 1
    _F_SPREAD = 2
    _F_MICROPRICE = 3
    _F_STOIKOV = 4
    _F_IMBALANCE = 5
    _F_DEPTH_BPS = 6
    _F_SLOPE = 7
    _F_WALK = 8
    _F_OFI = 10
    _F_TRADE_FLOW = 11
    _F_VPIN = 12
    _F_SPEC = 5                 # int64 fields per feature in the spec table
    _BPS = 10000
    _AGG_UNKNOWN = 0
    _AGG_BUY = 1
    _AGG_SELL = 2
    _RULE_NONE = 0
    _RULE_VENUE = 1
    _RULE_RESTING = 2
    _RULE_QUOTE = 3
    _RULE_TICK = 4
    _SCRATCH_MIN = 16           # levels read first past the row's; then 2x as needed
    _OFI_BOTH = 3               # _ofi_sides: both sides may have changed


ctypedef struct _features:
    # the FeatureSet and FeatureState of a Sampler, as raw pointers (_features_bind)
    Py_ssize_t nfeat
    const int64_t *spec         # nfeat x _F_SPEC: kind, k, first column, num, den
    void **cols                 # each feature column's data (row-indexed)
    const int64_t *fixed        # per instrument x fixed_stride: Q / V in qty units
    Py_ssize_t fixed_stride
    const double *scale         # per instrument: 10 ** price_decimals
    const double *qscale        # per instrument: 10 ** qty_decimals
    const int64_t *tick         # per instrument: tick size (fixed point)
    Py_ssize_t ofi_k            # levels of the OFI feature, 0 without one
    int64_t *ofi_prev           # per instrument x 4k: bid px, bid qty, ask px, ask qty
    int64_t *ofi_acc            # per instrument x k (stride ofi_stride)
    Py_ssize_t ofi_stride
    int64_t *ofi_now            # 4k scratch
    bint trades                 # a feature counts trades (trade_flow, vpin)
    int64_t *trade_acc          # per instrument x 4: count, qty, buy qty, sell qty
    int64_t *trade_last         # per instrument x 3: has a last trade, its price, last tick
    Py_ssize_t vpin_j           # the vpin feature's index, -1 without one
    Py_ssize_t vpin_n           # its buckets
    int64_t *vpin               # per instrument x 5: buy, sell, filled buckets, pos, sum
    int64_t *vpin_ring          # per instrument x vpin_n
    const double *stoikov       # the Stoikov table (rows x cols), or NULL
    Py_ssize_t st_rows
    Py_ssize_t st_cols
    # the trades table (Sampler(trades=True))
    bint record
    Py_ssize_t tcount
    Py_ssize_t tcap
    int64_t *t_ts
    uint32_t *t_inst
    uint64_t *t_seq
    int64_t *t_px
    int64_t *t_qty
    int8_t *t_aggr
    uint8_t *t_rule
    uint16_t *t_flags
    # levels read for the current row: bids then asks, scr_cap each (malloc'd, kept
    # across rebinds, freed by _features_free)
    int64_t *scr
    Py_ssize_t scr_cap
    Py_ssize_t scr_n


ctypedef struct _trade:
    int64_t price
    int64_t qty
    int8_t aggressor
    uint8_t rule


cdef inline void *_ptr(object arr):
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef int _features_bind(_features *f, object sampler) except -1:
    """Point ``f`` at ``sampler``'s feature state and columns (the scratch is kept)."""
    fs = sampler.features
    st = sampler._fstate
    f.nfeat = len(fs)
    f.trades = fs.trades
    f.ofi_k = st.k
    f.record = sampler.record_trades
    f.vpin_j = st.vpin_j
    f.vpin_n = st.nb
    f.stoikov = NULL
    f.st_rows = f.st_cols = 0
    if fs.stoikov is not None:
        f.stoikov = <const double *>_ptr(fs.stoikov.table)
        f.st_rows, f.st_cols = fs.stoikov.table.shape
    if f.nfeat:
        sampler._fspec = fs.spec()
        sampler._fptrs = np.array([sampler._cols[c.name].ctypes.data for c in fs.columns],
                                  dtype=np.uintp)
        f.spec = <const int64_t *>_ptr(sampler._fspec)
        f.cols = <void **>_ptr(sampler._fptrs)
    else:
        f.spec = NULL
        f.cols = NULL
    f.fixed = <const int64_t *>_ptr(st.fixed)
    f.fixed_stride = st.fixed.shape[1]
    f.scale = <const double *>_ptr(st.scale)
    f.qscale = <const double *>_ptr(st.qscale)
    f.tick = <const int64_t *>_ptr(st.tick)
    f.ofi_prev = <int64_t *>_ptr(st.ofi_prev)
    f.ofi_acc = <int64_t *>_ptr(st.ofi_acc)
    f.ofi_stride = st.ofi_acc.shape[1]
    if f.ofi_k:
        sampler._ofi_now = np.zeros(4 * f.ofi_k, np.int64)
        f.ofi_now = <int64_t *>_ptr(sampler._ofi_now)
    else:
        f.ofi_now = NULL
    f.trade_acc = <int64_t *>_ptr(st.trade_acc)
    f.trade_last = <int64_t *>_ptr(st.trade_last)
    f.vpin = <int64_t *>_ptr(st.vpin)
    f.vpin_ring = <int64_t *>_ptr(st.vpin_ring)
    _trades_bind(f, sampler)
    return 0


cdef int _trades_bind(_features *f, object sampler) except -1:
    tc = sampler._tcols
    f.tcount = sampler._tcount
    f.tcap = sampler.trade_capacity
    f.t_ts = <int64_t *>_ptr(tc["ts"])
    f.t_inst = <uint32_t *>_ptr(tc["instrument"])
    f.t_seq = <uint64_t *>_ptr(tc["sequence"])
    f.t_px = <int64_t *>_ptr(tc["price"])
    f.t_qty = <int64_t *>_ptr(tc["qty"])
    f.t_aggr = <int8_t *>_ptr(tc["aggressor"])
    f.t_rule = <uint8_t *>_ptr(tc["rule"])
    f.t_flags = <uint16_t *>_ptr(tc["flags"])
    return 0


cdef int _trades_grow(_features *f, PyObject *owner) noexcept with gil:
    # rare (the trades table doubles): take the GIL, let numpy allocate, rebind
    sampler = <object>owner
    try:
        sampler._tcount = f.tcount
        sampler._grow_trades(f.tcount + 1)
        _trades_bind(f, sampler)
    except BaseException:
        return -1
    return 0


cdef inline void _features_free(_features *f) noexcept nogil:
    free(f.scr)
    f.scr = NULL
    f.scr_cap = 0


# --- saturating int64 arithmetic (the twin's clamp) ----------------------------------
cdef inline int64_t _sat(i128 x) noexcept nogil:
    if x > <i128>INT64_MAX:
        return INT64_MAX
    if x < <i128>INT64_MIN:
        return INT64_MIN
    return <int64_t>x


cdef inline i128 _abs128(i128 x) noexcept nogil:
    return -x if x < 0 else x


cdef inline double _f(i128 x) noexcept nogil:
    # an exact integer to the nearest double (as Python's float(int)): through int64 when
    # it fits, which is a machine instruction; the 128-bit conversion is a libgcc call
    if x >= <i128>INT64_MIN and x <= <i128>INT64_MAX:
        return <double><int64_t>x
    return <double>x


# --- reading levels ----------------------------------------------------------------
cdef inline Py_ssize_t _side_depth(const fb_bookset *bs, uint32_t inst, int side) noexcept nogil:
    if bs.kinds[inst] == FB_KIND_L3:
        return fb_l3_depth(<const fb_l3book *>bs.books[inst], side)
    return fb_book_depth(<const fb_book *>bs.books[inst], side)


cdef inline void _read_top(const fb_bookset *bs, uint32_t inst, Py_ssize_t n, int64_t *bp,
                           int64_t *bq, int64_t *ap, int64_t *aq) noexcept nogil:
    if bs.kinds[inst] == FB_KIND_L3:
        fb_l3_top(<const fb_l3book *>bs.books[inst], n, bp, bq, ap, aq)
    else:
        fb_book_top(<const fb_book *>bs.books[inst], n, bp, bq, ap, aq)


cdef int _scratch_read(_features *f, const fb_bookset *bs, uint32_t inst,
                       Py_ssize_t n) noexcept nogil:
    """Have at least min(n, the deeper side's depth) levels of each side in the scratch."""
    cdef Py_ssize_t most = _side_depth(bs, inst, FB_BID)
    cdef Py_ssize_t other = _side_depth(bs, inst, FB_ASK)
    cdef int64_t *grown
    if other > most:
        most = other
    if n > most:
        n = most
    if n <= f.scr_n:
        return FB_OK
    if n > f.scr_cap:
        grown = <int64_t *>realloc(f.scr, <size_t>(4 * n) * sizeof(int64_t))
        if grown == NULL:
            return FB_ENOMEM
        f.scr = grown
        f.scr_cap = n
    _read_top(bs, inst, n, f.scr, f.scr + f.scr_cap, f.scr + 2 * f.scr_cap,
              f.scr + 3 * f.scr_cap)
    f.scr_n = n
    return FB_OK


cdef inline int64_t _lvl_px(const _features *f, int side, Py_ssize_t i) noexcept nogil:
    return f.scr[(0 if side == FB_BID else 2 * f.scr_cap) + i]


cdef inline int64_t _lvl_qty(const _features *f, int side, Py_ssize_t i) noexcept nogil:
    return f.scr[(f.scr_cap if side == FB_BID else 3 * f.scr_cap) + i]


cdef inline int _level(_features *f, const fb_bookset *bs, uint32_t inst, int side,
                       Py_ssize_t i, int64_t *px, int64_t *qty) noexcept nogil:
    """Level ``i`` of ``side`` (reading deeper as needed): 1, 0 past the side's end, or
    FB_ENOMEM."""
    cdef Py_ssize_t want
    if i >= f.scr_n:
        if i >= _side_depth(bs, inst, side):
            return 0
        want = f.scr_n * 2 if f.scr_n * 2 > _SCRATCH_MIN else _SCRATCH_MIN
        if want <= i:
            want = i + 1
        if _scratch_read(f, bs, inst, want) < 0:
            return FB_ENOMEM
    if i >= f.scr_n:
        return 0
    qty[0] = _lvl_qty(f, side, i)
    if qty[0] <= 0:
        return 0
    px[0] = _lvl_px(f, side, i)
    return 1


# --- the row -----------------------------------------------------------------------
cdef inline double _nan() noexcept nogil:
    return <double>NAN


cdef int _feat_row(_features *f, const fb_bookset *bs, uint32_t inst, Py_ssize_t r,
                   const int64_t *bp, const int64_t *bq, const int64_t *ap, const int64_t *aq,
                   Py_ssize_t depth) noexcept nogil:
    """Write row ``r``'s feature columns for ``inst``; reset its flow sums.

    ``bp`` .. ``aq``: the row's own ``depth`` levels, the scratch's first levels (the
    features read deeper only when they need to)."""
    cdef Py_ssize_t j, col, m, n, i
    cdef const int64_t *sp
    cdef int64_t b = 0, qb = 0, a = 0, qa = 0, px, qty, k
    cdef bint both
    cdef i128 m2, sb, sa, d
    cdef double scale = f.scale[inst], qscale = f.qscale[inst], tick
    cdef double *out
    cdef int64_t *grown
    cdef int rc
    f.scr_n = 0
    if f.scr_cap < depth:
        grown = <int64_t *>realloc(f.scr, <size_t>(4 * depth) * sizeof(int64_t))
        if grown == NULL:
            return FB_ENOMEM
        f.scr = grown
        f.scr_cap = depth
    memcpy(f.scr, bp, <size_t>depth * sizeof(int64_t))
    memcpy(f.scr + f.scr_cap, bq, <size_t>depth * sizeof(int64_t))
    memcpy(f.scr + 2 * f.scr_cap, ap, <size_t>depth * sizeof(int64_t))
    memcpy(f.scr + 3 * f.scr_cap, aq, <size_t>depth * sizeof(int64_t))
    f.scr_n = depth
    b = bp[0]
    qb = bq[0]
    a = ap[0]
    qa = aq[0]
    both = qb > 0 and qa > 0
    m2 = <i128>a + b
    for j in range(f.nfeat):
        sp = &f.spec[j * _F_SPEC]
        col = sp[2]
        k = sp[1]
        if sp[0] == _F_MID:
            (<double *>f.cols[col])[r] = _f(m2) / 2.0 / scale if both else _nan()
        elif sp[0] == _F_SPREAD:
            if both:
                d = <i128>a - b
                tick = <double>f.tick[inst]
                (<double *>f.cols[col])[r] = _f(d) / scale
                (<double *>f.cols[col + 1])[r] = _f(d) / tick
                (<double *>f.cols[col + 2])[r] = \
                    _f(d) / (_f(m2) / 2.0) * 10000.0 if m2 > 0 else _nan()
            else:
                (<double *>f.cols[col])[r] = _nan()
                (<double *>f.cols[col + 1])[r] = _nan()
                (<double *>f.cols[col + 2])[r] = _nan()
        elif sp[0] == _F_MICROPRICE:
            (<double *>f.cols[col])[r] = \
                _f(<i128>b * qa + <i128>a * qb) / _f(<i128>qa + qb) / scale \
                if both else _nan()
        elif sp[0] == _F_STOIKOV:
            (<double *>f.cols[col])[r] = _stoikov(f, b, qb, a, qa, f.tick[inst], scale) \
                if both else _nan()
        elif sp[0] == _F_IMBALANCE:
            if _scratch_read(f, bs, inst, k) < 0:
                return FB_ENOMEM
            sb = 0
            sa = 0
            n = k if k < f.scr_n else f.scr_n
            for i in range(n):
                sb += _lvl_qty(f, FB_BID, i)
                sa += _lvl_qty(f, FB_ASK, i)
            (<double *>f.cols[col])[r] = _f(sb - sa) / _f(sb + sa) \
                if sb + sa != 0 else _nan()
        elif sp[0] == _F_DEPTH_BPS:
            rc = _depth_bps(f, bs, inst, both and m2 > 0, m2, sp[3], sp[4],
                            <int64_t *>f.cols[col] + r, <int64_t *>f.cols[col + 1] + r)
            if rc < 0:
                return rc
        elif sp[0] == _F_SLOPE:
            if _scratch_read(f, bs, inst, k) < 0:
                return FB_ENOMEM
            (<double *>f.cols[col])[r] = _slope(f, FB_BID, k, m2, scale, qscale) \
                if both else _nan()
            (<double *>f.cols[col + 1])[r] = _slope(f, FB_ASK, k, m2, scale, qscale) \
                if both else _nan()
        elif sp[0] == _F_WALK:
            qty = f.fixed[inst * f.fixed_stride + j]
            for m in range(2):
                rc = _walk(f, bs, inst, FB_ASK if m == 0 else FB_BID, qty, both and m2 > 0,
                           m2, scale, <double *>f.cols[col + 3 * m] + r,
                           <double *>f.cols[col + 3 * m + 1] + r,
                           <uint8_t *>f.cols[col + 3 * m + 2] + r)
                if rc < 0:
                    return rc
        elif sp[0] == _F_OFI:
            for m in range(k):
                (<int64_t *>f.cols[col + m])[r] = f.ofi_acc[inst * f.ofi_stride + m]
        elif sp[0] == _F_TRADE_FLOW:
            for m in range(4):
                (<int64_t *>f.cols[col + m])[r] = f.trade_acc[4 * <Py_ssize_t>inst + m]
        elif sp[0] == _F_VPIN:
            out = <double *>f.cols[col] + r
            if f.vpin[5 * <Py_ssize_t>inst + 2] >= f.vpin_n:
                out[0] = <double>f.vpin[5 * <Py_ssize_t>inst + 4] / \
                    (<double>f.vpin_n * <double>f.fixed[inst * f.fixed_stride + j])
            else:
                out[0] = _nan()
    if f.ofi_k:
        memset(&f.ofi_acc[inst * f.ofi_stride], 0, <size_t>f.ofi_stride * sizeof(int64_t))
    memset(&f.trade_acc[4 * <Py_ssize_t>inst], 0, 4 * sizeof(int64_t))
    return FB_OK


cdef inline double _stoikov(const _features *f, int64_t b, int64_t qb, int64_t a, int64_t qa,
                            int64_t tick, double scale) noexcept nogil:
    cdef double imb = <double>qb / _f(<i128>qb + qa)
    cdef Py_ssize_t bucket = <Py_ssize_t>(imb * <double>f.st_cols)
    cdef i128 ticks = (<i128>a - b)
    cdef Py_ssize_t row
    if bucket > f.st_cols - 1:
        bucket = f.st_cols - 1
    # floor division, as Python's //
    if ticks >= 0:
        ticks = ticks / tick
    else:
        ticks = -((-ticks + tick - 1) / tick)
    if ticks < 1:
        ticks = 1
    row = <Py_ssize_t>(ticks if ticks < f.st_rows else f.st_rows) - 1
    return (_f(<i128>a + b) / 2.0 + _f(<i128>a - b) *
            f.stoikov[row * f.st_cols + bucket]) / scale


cdef int _depth_bps(_features *f, const fb_bookset *bs, uint32_t inst, bint ok, i128 m2,
                    int64_t num, int64_t den, int64_t *bid_out,
                    int64_t *ask_out) noexcept nogil:
    cdef i128 lhs = <i128>2 * _BPS * den, bound, total
    cdef int64_t px = 0, qty = 0
    cdef Py_ssize_t i
    cdef int side, got
    bid_out[0] = 0
    ask_out[0] = 0
    if not ok:
        return FB_OK
    for side in range(FB_BID, FB_ASK + 1):
        bound = (<i128>_BPS * den - num) * m2 if side == FB_BID else \
            (<i128>_BPS * den + num) * m2
        total = 0
        i = 0
        while True:
            got = _level(f, bs, inst, side, i, &px, &qty)
            if got < 0:
                return got
            if got == 0:
                break
            if side == FB_BID and not lhs * px >= bound:
                break
            if side == FB_ASK and not lhs * px <= bound:
                break
            total = _sat(total + qty)
            i += 1
        if side == FB_BID:
            bid_out[0] = <int64_t>total
        else:
            ask_out[0] = <int64_t>total
    return FB_OK


cdef double _slope(const _features *f, int side, Py_ssize_t k, i128 m2, double scale,
                   double qscale) noexcept nogil:
    # in raw units (x = twice the distance from mid, y = cumulative quantity), scaled to
    # real units once at the end
    cdef Py_ssize_t n = 0, i
    cdef i128 cum = 0
    cdef double mx = 0.0, my = 0.0, sxx = 0.0, sxy = 0.0, dx
    while n < k and n < f.scr_n and _lvl_qty(f, side, n) > 0:
        n += 1
    if n < 2:
        return _nan()
    for i in range(n):
        cum = _sat(cum + _lvl_qty(f, side, i))
        mx += _f(_abs128(<i128>2 * _lvl_px(f, side, i) - m2))
        my += _f(cum)
    mx /= <double>n
    my /= <double>n
    cum = 0
    for i in range(n):
        cum = _sat(cum + _lvl_qty(f, side, i))
        dx = _f(_abs128(<i128>2 * _lvl_px(f, side, i) - m2)) - mx
        sxx += dx * dx
        sxy += dx * (_f(cum) - my)
    return sxy / sxx * (2.0 * scale) / qscale if sxx > 0.0 else _nan()


cdef int _walk(_features *f, const fb_bookset *bs, uint32_t inst, int side, int64_t q,
               bint has_mid, i128 m2, double scale, double *px_out, double *bps_out,
               uint8_t *thin_out) noexcept nogil:
    cdef int64_t remaining = q, fill, px = 0, qty = 0, filled
    cdef i128 notional = 0
    cdef Py_ssize_t i = 0
    cdef int got
    cdef double px_raw, mid_raw
    while remaining > 0:
        got = _level(f, bs, inst, side, i, &px, &qty)
        if got < 0:
            return got
        if got == 0:
            break
        fill = remaining if remaining < qty else qty
        notional += <i128>px * fill
        remaining -= fill
        i += 1
    filled = q - remaining
    thin_out[0] = 1 if remaining > 0 else 0
    if filled == 0:
        px_out[0] = _nan()
        bps_out[0] = _nan()
        return FB_OK
    px_raw = _f(notional) / <double>filled
    bps_out[0] = _nan()
    if has_mid:
        mid_raw = _f(m2) / 2.0
        if side == FB_ASK:
            bps_out[0] = (px_raw - mid_raw) / mid_raw * 10000.0
        else:
            bps_out[0] = (mid_raw - px_raw) / mid_raw * 10000.0
    px_out[0] = px_raw / scale
    return FB_OK


# --- between rows: order flow imbalance ---------------------------------------------
cdef inline bint _deep(const _features *f, uint32_t inst, int side, int64_t price) noexcept nogil:
    # price is strictly behind the k-th level of a side that has k levels (ofi_prev)
    cdef Py_ssize_t k = f.ofi_k
    cdef const int64_t *prev = &f.ofi_prev[4 * k * <Py_ssize_t>inst]
    if side == FB_BID:
        return prev[2 * k - 1] > 0 and price < prev[k - 1]
    if side == FB_ASK:
        return prev[4 * k - 1] > 0 and price > prev[3 * k - 1]
    return False


cdef int _ofi_sides(const _features *f, const fb_bookset *bs, const fb_event *e,
                    uint32_t inst) noexcept nogil:
    """Before event ``e``: which sides of the top k levels it can change. 0 (none: its
    order is behind the k-th level of a side that has k, or it changes no book), FB_BID
    or FB_ASK (only that side: an L3 event touches its order's side alone), _OFI_BOTH."""
    cdef uint8_t a = e.action
    cdef const fb_l3book *b3
    cdef int32_t idx
    cdef int side
    if a == FB_TRADE or a == FB_STATUS:
        return 0
    if (e.flags & FB_FLAG_SNAPSHOT) or a == FB_SNAPSHOT_BEGIN or a == FB_SNAPSHOT_END \
            or a == FB_CLEAR:
        return _OFI_BOTH
    if bs.kinds[inst] != FB_KIND_L3:
        return 0 if a >= FB_ADD and a <= FB_SET_LEVEL and _deep(f, inst, e.side, e.price) \
            else _OFI_BOTH
    if a == FB_ADD:
        if _deep(f, inst, e.side, e.price):
            return 0
        return e.side if e.side == FB_BID or e.side == FB_ASK else _OFI_BOTH
    b3 = <const fb_l3book *>bs.books[inst]
    if b3.side_keys and e.side != FB_BID and e.side != FB_ASK:
        return 0                # refused: changes nothing
    idx = fb_l3_find(b3, e.order_id, e.side)
    if idx == FB_NIL:
        return 0                # refused: changes nothing
    side = b3.orders[idx].side
    if _deep(f, inst, side, _price_of(b3, idx)) and \
            (a != FB_REPLACE or _deep(f, inst, side, e.price)):
        return 0
    return side


cdef inline void _l3_side_top(const fb_l3book *b3, int side, Py_ssize_t n, int64_t *px,
                              int64_t *qty) noexcept nogil:
    # one side of fb_l3_top: the best n levels, best first, zero-padded
    cdef const fb_l3side *s3 = &b3.sides[side - 1]
    cdef Py_ssize_t i, m = s3.count if s3.count < n else n, top = s3.count - 1
    for i in range(m):
        px[i] = s3.keys[top - i] if side == FB_BID else -s3.keys[top - i]
        qty[i] = s3.levels[s3.ids[top - i]].qty
    for i in range(m, n):
        px[i] = 0
        qty[i] = 0


cdef void _feat_ofi(_features *f, const fb_bookset *bs, const fb_event *e,
                    uint32_t inst, int sides) noexcept nogil:
    """After event ``e`` (the instrument's last of its packet in packet mode), on the
    ``sides`` it could change (_ofi_sides; the other side's terms are 0: unchanged)."""
    cdef Py_ssize_t k = f.ofi_k, m
    cdef int64_t *now = f.ofi_now
    cdef int64_t *prev = &f.ofi_prev[4 * k * <Py_ssize_t>inst]
    cdef int64_t *acc = &f.ofi_acc[inst * f.ofi_stride]
    cdef int64_t pb, qb, pa, qa, ob, oqb, oa, oqa
    cdef i128 ev
    if sides == _OFI_BOTH or bs.kinds[inst] != FB_KIND_L3:
        _read_top(bs, inst, k, now, now + k, now + 2 * k, now + 3 * k)
    elif sides == FB_BID:
        _l3_side_top(<const fb_l3book *>bs.books[inst], FB_BID, k, now, now + k)
        memcpy(now + 2 * k, prev + 2 * k, <size_t>(2 * k) * sizeof(int64_t))
    else:
        _l3_side_top(<const fb_l3book *>bs.books[inst], FB_ASK, k, now + 2 * k, now + 3 * k)
        memcpy(now, prev, <size_t>(2 * k) * sizeof(int64_t))
    if not (e.action == FB_SNAPSHOT_BEGIN or e.action == FB_SNAPSHOT_END
            or e.action == FB_CLEAR or (e.flags & FB_FLAG_SNAPSHOT)):
        for m in range(k):
            pb = now[m]
            qb = now[k + m]
            pa = now[2 * k + m]
            qa = now[3 * k + m]
            ob = prev[m]
            oqb = prev[k + m]
            oa = prev[2 * k + m]
            oqa = prev[3 * k + m]
            if pb == ob and qb == oqb and pa == oa and qa == oqa:
                continue        # an unchanged level: its terms cancel exactly (e = 0)
            if qb == 0:
                pb = INT64_MIN
            if oqb == 0:
                ob = INT64_MIN
            if qa == 0:
                pa = INT64_MAX
            if oqa == 0:
                oa = INT64_MAX
            ev = 0
            if pb >= ob:
                ev += qb
            if pb <= ob:
                ev -= oqb
            if pa <= oa:
                ev -= qa
            if pa >= oa:
                ev += oqa
            acc[m] = _sat(<i128>acc[m] + ev)
    memcpy(prev, now, <size_t>(4 * k) * sizeof(int64_t))


# --- trades -------------------------------------------------------------------------
cdef bint _feat_trade_of(_features *f, const fb_bookset *bs, const fb_event *e,
                         uint32_t inst, _trade *t) noexcept nogil:
    """Before event ``e``: the trade print it would make (False: none)."""
    cdef int side = e.side
    cdef int64_t price = e.price
    cdef const fb_l3book *b3
    cdef int32_t idx
    cdef int64_t bbo[4]
    cdef int64_t *last
    cdef uint16_t fl = e.flags
    if (e.action != FB_EXECUTE and e.action != FB_TRADE) or (fl & FB_FLAG_NON_PRINTABLE) \
            or e.qty < 1:
        return False
    if e.action == FB_EXECUTE and bs.kinds[inst] == FB_KIND_L3:
        b3 = <const fb_l3book *>bs.books[inst]
        if b3.side_keys and side != FB_BID and side != FB_ASK:
            return False
        idx = fb_l3_find(b3, e.order_id, side)
        if idx == FB_NIL:
            return False
        side = b3.orders[idx].side
        price = _price_of(b3, idx)
    t.price = price
    t.qty = e.qty
    if (fl & FB_FLAG_AGGRESSOR_BUY) and not (fl & FB_FLAG_AGGRESSOR_SELL):
        t.aggressor = _AGG_BUY
        t.rule = _RULE_VENUE
    elif (fl & FB_FLAG_AGGRESSOR_SELL) and not (fl & FB_FLAG_AGGRESSOR_BUY):
        t.aggressor = _AGG_SELL
        t.rule = _RULE_VENUE
    elif fl & FB_FLAG_CROSS:
        t.aggressor = _AGG_UNKNOWN
        t.rule = _RULE_NONE
    elif side == FB_BID:
        t.aggressor = _AGG_SELL
        t.rule = _RULE_RESTING
    elif side == FB_ASK:
        t.aggressor = _AGG_BUY
        t.rule = _RULE_RESTING
    else:
        _read_top(bs, inst, 1, &bbo[0], &bbo[1], &bbo[2], &bbo[3])
        t.aggressor = _AGG_UNKNOWN
        t.rule = _RULE_NONE
        if bbo[1] > 0 and bbo[3] > 0 and <i128>2 * price != <i128>bbo[0] + bbo[2]:
            t.aggressor = _AGG_BUY if <i128>2 * price > <i128>bbo[0] + bbo[2] else _AGG_SELL
            t.rule = _RULE_QUOTE
        else:
            last = &f.trade_last[3 * <Py_ssize_t>inst]
            if last[0]:
                if price > last[1]:
                    t.aggressor = _AGG_BUY
                    t.rule = _RULE_TICK
                elif price < last[1]:
                    t.aggressor = _AGG_SELL
                    t.rule = _RULE_TICK
                elif last[2]:
                    t.aggressor = <int8_t>last[2]
                    t.rule = _RULE_TICK
    return True


cdef int _feat_trade_commit(_features *f, PyObject *owner, const fb_event *e,
                            uint32_t inst, const _trade *t) noexcept nogil:
    """After event ``e`` was applied: count its print; record it (trades=True)."""
    cdef int64_t *acc = &f.trade_acc[4 * <Py_ssize_t>inst]
    cdef int64_t *last = &f.trade_last[3 * <Py_ssize_t>inst]
    cdef Py_ssize_t r
    acc[0] = _sat(<i128>acc[0] + 1)
    acc[1] = _sat(<i128>acc[1] + t.qty)
    if t.aggressor == _AGG_BUY:
        acc[2] = _sat(<i128>acc[2] + t.qty)
    elif t.aggressor == _AGG_SELL:
        acc[3] = _sat(<i128>acc[3] + t.qty)
    if last[0]:
        if t.price > last[1]:
            last[2] = _AGG_BUY
        elif t.price < last[1]:
            last[2] = _AGG_SELL
    last[0] = 1
    last[1] = t.price
    if f.vpin_j >= 0 and t.aggressor != _AGG_UNKNOWN:
        _vpin_add(f, inst, t.qty, t.aggressor, f.fixed[inst * f.fixed_stride + f.vpin_j])
    if f.record:
        if f.tcount == f.tcap and _trades_grow(f, owner) < 0:
            return FB_ENOMEM
        r = f.tcount
        f.t_ts[r] = e.ts_exchange
        f.t_inst[r] = inst
        f.t_seq[r] = e.sequence
        f.t_px[r] = t.price
        f.t_qty[r] = t.qty
        f.t_aggr[r] = t.aggressor
        f.t_rule[r] = t.rule
        f.t_flags[r] = e.flags
        f.tcount = r + 1
    return FB_OK


cdef inline void _vpin_close(_features *f, int64_t *v, int64_t *ring) noexcept nogil:
    cdef int64_t pos = v[3]
    cdef int64_t imb = v[0] - v[1]
    if imb < 0:
        imb = -imb
    if v[2] >= f.vpin_n:
        v[4] -= ring[pos]
    else:
        v[2] += 1
    ring[pos] = imb
    v[4] += imb
    v[3] = (pos + 1) % f.vpin_n
    v[0] = 0
    v[1] = 0


cdef void _vpin_add(_features *f, uint32_t inst, int64_t qty, int aggressor,
                    int64_t size) noexcept nogil:
    # exact integer buckets of ``size``; a print larger than the room left fills the
    # bucket and spills into the next ones (the twin's FeatureState._vpin_add)
    cdef int64_t *v = &f.vpin[5 * <Py_ssize_t>inst]
    cdef int64_t *ring = &f.vpin_ring[<Py_ssize_t>inst * f.vpin_n]
    cdef int cur = 0 if aggressor == _AGG_BUY else 1
    cdef int64_t room = size - v[0] - v[1]
    cdef int64_t fill = room if room < qty else qty
    cdef int64_t whole, rest, i, n
    if size <= 0:
        return      # V is not a whole number of this instrument's quantity steps
    v[cur] += fill
    qty -= fill
    if fill == room:
        _vpin_close(f, v, ring)
    whole = qty / size
    rest = qty % size
    n = whole if whole < f.vpin_n else f.vpin_n
    for i in range(n):
        v[cur] = size
        _vpin_close(f, v, ring)
    if whole > f.vpin_n:
        v[3] = (v[3] + (whole - f.vpin_n) % f.vpin_n) % f.vpin_n
    v[cur] += rest
