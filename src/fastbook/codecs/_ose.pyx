# cython: language_level=3
"""Compiled Osaka Exchange (J-GATE, Genium INET) ITCH decode kernel: framed bytes to events.

``decode_chunk`` reads BinaryFILE or MoldUDP64 framed OSE ITCH from any buffer,
in place, and writes ``fastbook.events.EVENT_DTYPE`` records straight into a
caller's array in one ``nogil`` loop: no Python object per message. The
behaviour is fixed by the contract written out in the pure-Python twin
``fastbook.codecs._pyose.decode_chunk``; the two are compared output for output
(``tests/ose/test_ose_diff.py``).

Unlike NASDAQ ITCH 5.0 there is no common header: times are a ``T`` seconds
message plus 4-byte nanoseconds in every other message (state carried in the
caller's ``state`` array between calls), and the instrument is a 4-byte order
book id at a per-type offset, mapped to an instrument id through an
open-addressing hash table (``book_map``) with a one-entry cache for runs of
messages of the same book. MoldUDP64 packets are decoded block by block, so a
call can stop right after an ``R`` (or any other message it reports) inside a
packet and the caller can map the new book before the next block is read.
"""

cimport numpy as cnp
from cpython.buffer cimport PyBuffer_Release
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset

from fastbook._events cimport (
    FB_ADD, FB_DELETE, FB_EXECUTE, FB_FLAG_CROSS, FB_FLAG_HALTED, FB_FLAG_KEEP_PRIORITY,
    FB_FLAG_NON_PRINTABLE, FB_FLAG_QUOTING, FB_REPLACE, FB_STATUS, FB_TRADE, fb_event,
)
from fastbook.codecs._wire cimport (
    FRAMING_BINARYFILE, FRAMING_MOLDUDP64, MOLD_ANY, MOLD_HEADER_BYTES, MOLD_KNOWN, MOLD_NEVER,
    NOGIL_MIN_BYTES, STATUS_DIRECTORY_FULL, STATUS_EVENTS_FULL, STATUS_INCOMPLETE, STATUS_OK,
    STATUS_TRUNCATED, STATUS_WRONG_LENGTH, check_counts_length, fill_tables, frame_at, get_buffer,
    mold_expect_after, mold_packet_at, be32 as _be32, be64 as _be64,
)

import numpy as np

from fastbook.errors import ArrayError
from fastbook.events import EVENT_DTYPE

cnp.import_array()

COMPILED = True

# Statuses only this kernel returns (beside those of _wire.pxd), and one internal.
cdef enum:
    _STATUS_REPORTED = 4    # internal: a message was consumed and reported: stop (status 2)
    _STATUS_NO_SECONDS = -6     # a nanosecond message before any T (seconds) message
    _STATUS_UNKNOWN_BOOK = -7   # an order book id that no R (directory) message named
    _STATUS_NO_PRICE = -8       # INT32_MIN ("no price") where a price is required

# What a type needs (_KINDS): nothing but counting, the seconds, a directory slot, an event.
cdef enum:
    _K_UNKNOWN = 0          # not an OSE type: skipped by length, counted
    _K_T = 1                # seconds
    _K_PLAIN = 2            # S: a time, no book
    _K_DIRECTORY = 3        # M, L: reported, no book lookup
    _K_R = 4                # reported (the call stops after every reported message)
    _K_Z = 5                # a book lookup, the equilibrium table
    _K_EVENT = 6            # A F E C U D P O: a book lookup and one event (O also reported)

cdef int32_t _NO_PRICE = -2147483648
cdef uint64_t _GOLDEN = <uint64_t>0x9E3779B97F4A7C15ULL
cdef uint64_t _LOW32 = <uint64_t>0xFFFFFFFFULL
cdef int64_t _NS = 1000000000

cdef object _UINT64 = np.dtype(np.uint64)
cdef object _INT64 = np.dtype(np.int64)
cdef object _UINT32 = np.dtype(np.uint32)

cdef uint8_t _LENGTHS[256]
cdef uint8_t _KINDS[256]
cdef uint8_t _OBID_OFF[256]
cdef uint8_t _SIDES[256]


cdef void _init_tables() noexcept nogil:
    cdef const char *types = b"TSRMLOAFECUDPZ"
    cdef uint8_t *lengths = [5, 6, 129, 18, 25, 29, 37, 44, 52, 58, 36, 18, 50, 53]
    cdef int i
    fill_tables(_LENGTHS, _SIDES, types, lengths, 14)
    memset(_KINDS, 0, sizeof(_KINDS))
    memset(_OBID_OFF, 0, sizeof(_OBID_OFF))
    _KINDS[<uint8_t>b'T'] = _K_T
    _KINDS[<uint8_t>b'S'] = _K_PLAIN
    _KINDS[<uint8_t>b'M'] = _K_DIRECTORY
    _KINDS[<uint8_t>b'L'] = _K_DIRECTORY
    _KINDS[<uint8_t>b'R'] = _K_R
    _KINDS[<uint8_t>b'Z'] = _K_Z
    for i in range(8):
        _KINDS[<uint8_t>b"AFECUDPO"[i]] = _K_EVENT
        _OBID_OFF[<uint8_t>b"AFECUDPO"[i]] = 13
    _OBID_OFF[<uint8_t>b'P'] = 26
    _OBID_OFF[<uint8_t>b'O'] = 5
    _OBID_OFF[<uint8_t>b'Z'] = 5


_init_tables()


ctypedef struct _state:
    const uint8_t *buf
    Py_ssize_t n
    Py_ssize_t pos
    int framing
    bint final
    fb_event *events
    Py_ssize_t event_capacity
    Py_ssize_t n_events
    uint32_t *positions             # NULL: not kept
    const uint64_t *book_map        # NULL: instrument = order book id
    uint64_t map_mask
    int map_shift                   # 64 - log2(len); 64 when the map has one slot
    int64_t *directory              # NULL: nothing reported, no stop after R
    Py_ssize_t directory_capacity
    Py_ssize_t n_directory
    int64_t *equilibrium            # NULL: Z only counted
    Py_ssize_t equilibrium_rows
    bint skip                       # invalid messages counted, not fatal
    uint64_t invalid[3]
    uint64_t seq
    Py_ssize_t n_messages
    int64_t seconds                 # -1: no T yet
    int mold_mode
    uint64_t mold_next
    Py_ssize_t mold_left
    uint64_t *counts                # 256 local counters
    uint32_t last_obid              # one-entry cache of the map
    int64_t last_instrument
    bint have_last


cdef inline bint _lookup(_state *st, uint32_t obid, int64_t *instrument) noexcept nogil:
    """The instrument of ``obid`` (-1 dropped) into ``instrument``; False when not mapped."""
    cdef uint64_t h, entry
    if st.book_map == NULL:
        instrument[0] = obid
        return True
    if st.have_last and obid == st.last_obid:
        instrument[0] = st.last_instrument
        return True
    h = 0 if st.map_shift == 64 else (<uint64_t>obid * _GOLDEN) >> st.map_shift
    while True:
        entry = st.book_map[h]
        if entry == 0:
            return False
        if (entry >> 32) == obid:
            st.last_obid = obid
            st.last_instrument = <int64_t>(entry & _LOW32) - 2
            st.have_last = True
            instrument[0] = st.last_instrument
            return True
        h = (h + 1) & st.map_mask


cdef inline bint _contains(const uint8_t *name, Py_ssize_t n, const char *word,
                           Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(n - k + 1):
        j = 0
        while j < k and name[i + j] == <uint8_t>word[j]:
            j += 1
        if j == k:
            return True
    return False


cdef uint16_t _state_flags(const uint8_t *name) noexcept nogil:
    # the rules of _pyose.state_flags, in the same order (first match wins)
    if _contains(name, 20, b"ZARABA", 6):
        return 0
    if (_contains(name, 20, b"PRE_OPEN", 8) or _contains(name, 20, b"PRE_CLOSE", 9)
            or _contains(name, 20, b"DCB", 3) or _contains(name, 20, b"SCB", 3)
            or _contains(name, 20, b"ITAYOSE", 7)):
        return FB_FLAG_QUOTING
    if (_contains(name, 20, b"HALT", 4) or _contains(name, 20, b"SUSP", 4)
            or _contains(name, 20, b"STOP", 4) or _contains(name, 20, b"CLOSE", 5)):
        return FB_FLAG_HALTED
    return 0


cdef inline int32_t _required_price(const uint8_t *msg, uint8_t t) noexcept nogil:
    # the price an event type must carry (A F U: order price, C P: trade price); else 0
    if t == b'A' or t == b'F' or t == b'U':
        return <int32_t>_be32(msg + 30)
    if t == b'C':
        return <int32_t>_be32(msg + 52)
    if t == b'P':
        return <int32_t>_be32(msg + 30)
    return 0


cdef inline uint16_t _trade_flags(uint8_t cross, uint8_t printable) noexcept nogil:
    # C and P: from an auction ('Y' cross), and printed later ('N' printable)
    return ((FB_FLAG_CROSS if cross == b'Y' else 0)
            | (FB_FLAG_NON_PRINTABLE if printable == b'N' else 0))


cdef inline void _set(fb_event *e, int action, uint16_t flags, int64_t price, int64_t qty,
                      uint64_t order_id) noexcept nogil:
    e.action = <uint8_t>action
    e.flags = flags
    e.price = price
    e.qty = qty
    e.order_id = order_id


cdef inline void _resting_order(fb_event *e, int action, uint16_t flags, const uint8_t *msg,
                                uint32_t *position) noexcept nogil:
    # A, F and U: the order's price, quantity, id and place in its queue
    _set(e, action, flags, <int32_t>_be32(msg + 30), <int64_t>_be64(msg + 22), _be64(msg + 5))
    position[0] = _be32(msg + 18)


cdef inline void _emit(fb_event *e, const uint8_t *msg, uint8_t t, int64_t ts,
                       int64_t instrument, uint64_t sequence, uint32_t *position) noexcept nogil:
    e.ts_exchange = ts
    e.ts_receive = 0
    e.instrument = <uint32_t>instrument
    e.side = <int8_t>_SIDES[msg[17]]
    e.new_order_id = 0
    e.sequence = sequence
    position[0] = 0
    if t == b'A' or t == b'F':
        _resting_order(e, FB_ADD, 0, msg, position)
    elif t == b'D':
        _set(e, FB_DELETE, 0, 0, 0, _be64(msg + 5))
    elif t == b'U':
        _resting_order(e, FB_REPLACE, FB_FLAG_KEEP_PRIORITY, msg, position)
        e.new_order_id = e.order_id
    elif t == b'E':
        _set(e, FB_EXECUTE, 0, 0, <int64_t>_be64(msg + 18), _be64(msg + 5))
    elif t == b'C':
        _set(e, FB_EXECUTE, _trade_flags(msg[56], msg[57]), <int32_t>_be32(msg + 52),
             <int64_t>_be64(msg + 18), _be64(msg + 5))
    elif t == b'P':
        _set(e, FB_TRADE, _trade_flags(msg[49], msg[48]), <int32_t>_be32(msg + 30),
             <int64_t>_be64(msg + 18), 0)
    else:   # O
        e.side = 0
        _set(e, FB_STATUS, _state_flags(msg + 9), 0, 0, 0)


cdef inline void _equilibrium(_state *st, const uint8_t *msg, int64_t ts,
                              int64_t instrument) noexcept nogil:
    cdef int64_t *row
    if st.equilibrium == NULL or instrument < 0 or instrument >= st.equilibrium_rows:
        return
    row = st.equilibrium + instrument * 8
    row[0] = ts
    row[1] = <int32_t>_be32(msg + 25)
    row[2] = <int64_t>_be64(msg + 9)
    row[3] = <int64_t>_be64(msg + 17)
    row[4] = <int32_t>_be32(msg + 29)
    row[5] = <int32_t>_be32(msg + 33)
    row[6] = <int64_t>_be64(msg + 37)
    row[7] = <int64_t>_be64(msg + 45)


cdef int _message(_state *st, const uint8_t *msg) noexcept nogil:
    """Check and consume one message (its length already checked); STATUS_OK or a status."""
    cdef uint8_t t = msg[0]
    cdef uint8_t kind = _KINDS[t]
    cdef int skip_kind = -1
    cdef int64_t instrument = -1, ts = 0
    cdef bint emits = False, reports = False, dropped = False
    cdef uint64_t number
    cdef uint32_t position

    if kind >= _K_PLAIN:
        if st.seconds < 0:
            if not st.skip:
                return _STATUS_NO_SECONDS
            skip_kind = 0
        if skip_kind < 0 and kind >= _K_Z:
            if not _lookup(st, _be32(msg + _OBID_OFF[t]), &instrument):
                if not st.skip:
                    return _STATUS_UNKNOWN_BOOK
                skip_kind = 1
            else:
                dropped = instrument < 0
        if skip_kind < 0 and not dropped:
            if kind == _K_EVENT:
                if _required_price(msg, t) == _NO_PRICE:
                    if not st.skip:
                        return _STATUS_NO_PRICE
                    skip_kind = 2
                else:
                    emits = True
        if skip_kind < 0 and st.directory != NULL:
            reports = kind == _K_R or kind == _K_DIRECTORY or (t == b'O' and not dropped)
    if emits and st.n_events == st.event_capacity:
        return STATUS_EVENTS_FULL
    if reports and st.n_directory == st.directory_capacity:
        return STATUS_DIRECTORY_FULL

    number = st.seq + <uint64_t>st.n_messages
    st.counts[t] += 1
    st.n_messages += 1
    if skip_kind >= 0:
        st.invalid[skip_kind] += 1
        return STATUS_OK
    if kind == _K_T:
        st.seconds = <int64_t>_be32(msg + 1)
        return STATUS_OK
    if kind == _K_UNKNOWN:
        return STATUS_OK
    ts = st.seconds * _NS + <int64_t>_be32(msg + 1)
    if emits:
        _emit(&st.events[st.n_events], msg, t, ts, instrument, number, &position)
        if st.positions != NULL:
            st.positions[st.n_events] = position
        st.n_events += 1
    elif kind == _K_Z and not dropped:
        _equilibrium(st, msg, ts, instrument)
    if reports:
        st.directory[st.n_directory] = <int64_t>(msg - st.buf)
        st.n_directory += 1
        return _STATUS_REPORTED
    return STATUS_OK


cdef int _decode(_state *st) noexcept nogil:
    cdef _state local = st[0]
    cdef uint64_t counts[256]
    cdef const uint8_t *buf = local.buf
    cdef Py_ssize_t n = local.n, p = local.pos, length
    cdef uint64_t sequence
    cdef Py_ssize_t count
    cdef uint8_t expected
    cdef int rc = STATUS_OK
    memset(counts, 0, sizeof(counts))
    local.counts = counts
    while True:
        if p >= n:
            if local.final and local.framing == FRAMING_MOLDUDP64 and local.mold_left:
                rc = STATUS_TRUNCATED
            break
        if local.framing == FRAMING_MOLDUDP64 and local.mold_left == 0:
            rc = mold_packet_at(buf, n, p, local.mold_mode, local.mold_next, &sequence, &count)
            if rc != STATUS_OK:
                break
            local.mold_left = mold_expect_after(sequence, count, &local.mold_mode,
                                                &local.mold_next)
            p += MOLD_HEADER_BYTES
            continue
        rc = frame_at(buf, n, p, &length)
        if rc != STATUS_OK:
            break
        expected = _LENGTHS[buf[p + 2]]
        if expected != 0 and length != expected:
            rc = STATUS_WRONG_LENGTH
            break
        rc = _message(&local, buf + p + 2)
        if rc != STATUS_OK and rc != _STATUS_REPORTED:
            break               # nothing consumed
        p += 2 + length
        if local.framing == FRAMING_MOLDUDP64:
            local.mold_left -= 1
        if rc == _STATUS_REPORTED:
            rc = STATUS_DIRECTORY_FULL
            break               # just reported: the caller maps a new book before going on
    if rc == STATUS_INCOMPLETE:
        rc = STATUS_TRUNCATED if local.final else STATUS_OK
    local.pos = p
    local.counts = st.counts
    for count in range(256):
        if counts[count]:
            st.counts[count] += counts[count]
    st[0] = local
    return rc


# ===========================================================================
# The Python edge
# ===========================================================================

cdef object _as_int(object value, str what):
    if isinstance(value, (bool, float, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return value.__index__()


cdef cnp.ndarray _array(object value, str what, object dtype, str hint, bint writeable,
                        int ndim=1):
    if not cnp.PyArray_Check(value):
        raise ArrayError(f"{what} must be a numpy array of {hint}, got {type(value).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>value
    if a.dtype != dtype:
        raise ArrayError(f"{what} must have dtype {hint}, got {a.dtype}")
    if cnp.PyArray_NDIM(a) != ndim:
        raise ArrayError(f"{what} must be {ndim}-dimensional, got shape {value.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a):
        raise ArrayError(f"{what} must be C-contiguous and aligned; "
                         f"use np.ascontiguousarray({what})")
    if writeable and not cnp.PyArray_ISWRITEABLE(a):
        raise ArrayError(f"{what} must be writeable (it receives output)")
    return a


def decode_chunk(buf, pos, framing, events, counts, /, *, state=None, book_map=None,
                 directory=None, positions=None, equilibrium=None, invalid=None, seq=0,
                 final=False):
    """Decode framed OSE ITCH messages from ``buf[pos:]`` into ``events``.

    Implements the contract of ``fastbook.codecs._pyose.decode_chunk`` (the
    readable twin, whose docstring gives every rule) exactly. Returns
    ``(pos_after, n_events, n_messages, n_directory, status)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbook.events import empty_events
    >>> t = b"\\x00\\x05T" + (1_700_000_000).to_bytes(4, "big")
    >>> d = b"\\x00\\x12D" + (5).to_bytes(4, "big") + (9).to_bytes(8, "big") \\
    ...     + (42).to_bytes(4, "big") + b"S"
    >>> ev, counts = empty_events(2), np.zeros(256, np.uint64)
    >>> decode_chunk(t + d, 0, 0, ev, counts)
    (27, 1, 2, 0, 0)
    >>> int(ev[0]["ts_exchange"]), int(ev[0]["side"]), int(ev[0]["instrument"])
    (1700000000000000005, 2, 42)
    """
    cdef _state st
    cdef Py_buffer view
    cdef cnp.ndarray ev_arr, counts_arr, state_arr, map_arr = None, dir_arr = None
    cdef cnp.ndarray pos_arr = None, eq_arr = None, inv_arr = None
    cdef uint64_t counts_seen[256]
    cdef uint64_t *counts_out
    cdef uint64_t *inv_out
    cdef int64_t *state_out
    cdef Py_ssize_t size, bits, i
    cdef int rc

    frm = _as_int(framing, "framing")
    if frm not in (FRAMING_BINARYFILE, FRAMING_MOLDUDP64):
        raise ValueError(f"framing must be 0 (BinaryFILE) or 1 (MoldUDP64), got {frm!r}")
    pos_obj = _as_int(pos, "pos")
    ev_arr = _array(events, "events", EVENT_DTYPE, "fastbook.events.EVENT_DTYPE", True)
    counts_arr = _array(counts, "counts", _UINT64, "uint64", True)
    check_counts_length(cnp.PyArray_DIMS(counts_arr)[0])
    if state is None:
        state = np.array([-1, 0, 0, 0], np.int64)
    state_arr = _array(state, "state", _INT64, "int64", True)
    if cnp.PyArray_DIMS(state_arr)[0] != 4:
        raise ArrayError(f"state must have length 4, got {cnp.PyArray_DIMS(state_arr)[0]}")
    state_out = <int64_t *>cnp.PyArray_DATA(state_arr)
    if state_out[1] not in (MOLD_ANY, MOLD_KNOWN, MOLD_NEVER) or not 0 <= state_out[3] <= 0xFFFF:
        raise ValueError(f"state is not a decode_chunk state: {state.tolist()}")
    if book_map is not None:
        map_arr = _array(book_map, "book_map", _UINT64, "uint64", False)
        size = cnp.PyArray_DIMS(map_arr)[0]
        if size < 1 or size & (size - 1):
            raise ArrayError(f"book_map length must be a power of two, got {size}")
    if directory is not None:
        dir_arr = _array(directory, "directory", _INT64, "int64", True)
    if positions is not None:
        pos_arr = _array(positions, "positions", _UINT32, "uint32", True)
        if cnp.PyArray_DIMS(pos_arr)[0] < cnp.PyArray_DIMS(ev_arr)[0]:
            raise ArrayError(f"positions must be at least as long as events "
                             f"({cnp.PyArray_DIMS(ev_arr)[0]}), "
                             f"got {cnp.PyArray_DIMS(pos_arr)[0]}")
    if equilibrium is not None:
        eq_arr = _array(equilibrium, "equilibrium", _INT64, "int64", True, 2)
        if cnp.PyArray_DIMS(eq_arr)[1] != 8:
            raise ArrayError(f"equilibrium must have 8 columns, got shape {equilibrium.shape}")
    if invalid is not None:
        inv_arr = _array(invalid, "invalid", _UINT64, "uint64", True)
        if cnp.PyArray_DIMS(inv_arr)[0] != 3:
            raise ArrayError(f"invalid must have length 3, got {cnp.PyArray_DIMS(inv_arr)[0]}")
    seq_obj = _as_int(seq, "seq")
    if not 0 <= seq_obj <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"seq must be between 0 and 2**64 - 1, got {seq_obj}")
    get_buffer(buf, &view, "buffer (bytes, bytearray, memoryview, mmap, numpy uint8 array)")
    try:
        if not 0 <= pos_obj <= view.len:
            raise ValueError(f"pos must be between 0 and len(buf) = {view.len}, got {pos_obj}")
        memset(&st, 0, sizeof(st))
        st.buf = <const uint8_t *>view.buf
        st.n = view.len
        st.pos = pos_obj
        st.framing = frm
        st.final = bool(final)
        st.events = <fb_event *>cnp.PyArray_DATA(ev_arr)
        st.event_capacity = cnp.PyArray_DIMS(ev_arr)[0]
        if pos_arr is not None:
            st.positions = <uint32_t *>cnp.PyArray_DATA(pos_arr)
        if map_arr is not None:
            size = cnp.PyArray_DIMS(map_arr)[0]
            bits = 0
            while (<Py_ssize_t>1 << bits) < size:
                bits += 1
            st.book_map = <const uint64_t *>cnp.PyArray_DATA(map_arr)
            st.map_mask = <uint64_t>(size - 1)
            st.map_shift = 64 - bits
        if dir_arr is not None:
            st.directory = <int64_t *>cnp.PyArray_DATA(dir_arr)
            st.directory_capacity = cnp.PyArray_DIMS(dir_arr)[0]
        if eq_arr is not None:
            st.equilibrium = <int64_t *>cnp.PyArray_DATA(eq_arr)
            st.equilibrium_rows = cnp.PyArray_DIMS(eq_arr)[0]
        st.skip = inv_arr is not None
        st.seq = <uint64_t>seq_obj
        st.seconds = state_out[0] if state_out[0] >= 0 else -1
        st.mold_mode = <int>state_out[1]
        st.mold_next = <uint64_t>state_out[2]
        st.mold_left = <Py_ssize_t>state_out[3]
        memset(counts_seen, 0, sizeof(counts_seen))
        st.counts = counts_seen
        if st.n - st.pos >= NOGIL_MIN_BYTES:
            with nogil:
                rc = _decode(&st)
        else:
            rc = _decode(&st)
    finally:
        PyBuffer_Release(&view)

    counts_out = <uint64_t *>cnp.PyArray_DATA(counts_arr)
    for i in range(256):
        counts_out[i] += counts_seen[i]
    if inv_arr is not None:
        inv_out = <uint64_t *>cnp.PyArray_DATA(inv_arr)
        for i in range(3):
            inv_out[i] += st.invalid[i]
    state_out[0] = st.seconds
    state_out[1] = st.mold_mode
    state_out[2] = <int64_t>st.mold_next
    state_out[3] = st.mold_left
    return st.pos, st.n_events, st.n_messages, st.n_directory, rc
