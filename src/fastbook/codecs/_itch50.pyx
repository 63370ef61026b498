# cython: language_level=3
"""Compiled NASDAQ TotalView-ITCH 5.0 decode kernel: framed bytes to fastbook events.

``decode_chunk`` reads BinaryFILE, MoldUDP64 or SoupBinTCP framed ITCH 5.0 from
any buffer, in place, and writes ``fastbook.events.EVENT_DTYPE`` records
straight into a caller's array in one ``nogil`` loop: no Python object per
message. The behaviour is fixed by the decode_chunk contract (message layouts:
``specs/itch.md`` section 1); the pure-Python twin
``fastbook.codecs._pyitch50.decode_chunk`` implements the same contract and
the two are compared output for output (``tests/itch/test_itch50_diff.py``).

Dispatch is by table, not by branch: each type byte indexes a length table
(0 = unknown type) and an emit spec saying where its fields are. Every event
is built by the same branch-free loads and masks, so a random mix of adds,
deletes and replaces costs no mispredicted jumps. The loads may read up to
``_READ_SPAN`` bytes from the type byte, past a short message (masked out);
near the end of the buffer the message is first copied into a padded scratch
block so nothing is read beyond ``buf``.
"""

cimport numpy as cnp
from cpython.buffer cimport PyBuffer_Release
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from fastbook._events cimport (
    FB_ADD, FB_DELETE, FB_EXECUTE, FB_FLAG_CROSS, FB_FLAG_HALTED, FB_FLAG_HIDDEN,
    FB_FLAG_NON_PRINTABLE, FB_FLAG_QUOTING, FB_REDUCE, FB_REPLACE, FB_STATUS, FB_TRADE, fb_event,
)
from fastbook.codecs._wire cimport (
    FRAMING_BINARYFILE, FRAMING_MOLDUDP64, FRAMING_SOUPBINTCP, MOLD_ANY, MOLD_END_OF_SESSION,
    MOLD_HEADER_BYTES, MOLD_HEARTBEAT, MOLD_KNOWN, NOGIL_MIN_BYTES, STATUS_DIRECTORY_FULL,
    STATUS_EVENTS_FULL, STATUS_INCOMPLETE, STATUS_OK, STATUS_TRUNCATED, STATUS_WRONG_LENGTH,
    STATUS_ZERO_LENGTH, check_counts_length, fill_tables, frame_at, get_buffer, mold_expect_after,
    mold_packet_at, be16 as _be16, be32 as _be32, be64 as _be64,
)

import numpy as np

from fastbook.errors import ArrayError
from fastbook.events import EVENT_DTYPE

cnp.import_array()

COMPILED = True

cdef enum:
    # Bytes an emit spec may read from the type byte on: U's price ends at 35,
    # A/F/C/P's at 36. Messages closer than this to the end of buf are copied.
    _READ_SPAN = 36
    _SCRATCH = 64           # > _READ_SPAN and > the longest emitting type (P, 44)

# The flag maps of _emit_spec.flag_map.
cdef enum:
    _MAP_NONE = 0
    _MAP_PRINTABLE = 1      # C: printable 'N' -> NON_PRINTABLE
    _MAP_TRADING = 2        # H: trading state 'H'/'P' -> HALTED, 'Q' -> QUOTING

cdef object _UINT64 = np.dtype(np.uint64)
cdef object _INT64 = np.dtype(np.int64)
cdef object _INT32 = np.dtype(np.int32)
cdef uint64_t _ALL = 0xFFFFFFFFFFFFFFFF
cdef uint64_t _TS_MASK = 0xFFFFFFFFFFFF


ctypedef struct _emit_spec:
    # How a type's event is read from its message (offsets from the type byte).
    # Fields a type does not have are masked to 0; their loads stay within _READ_SPAN.
    uint64_t ref_mask       # order_id = be64(msg + 11) & ref_mask
    uint64_t new_mask       # new_order_id = be64(msg + 19) & new_mask
    uint64_t qty_mask       # qty = (be64(msg + qty_off) >> qty_shift) & qty_mask
    uint32_t price_mask     # price = be32(msg + price_off) & price_mask
    uint16_t base_flags     # flags = base_flags | _FLAG_MAPS[flag_map][msg[flag_off]]
    uint8_t action          # fastbook.events.Action; 0 = the type emits no event
    uint8_t qty_off
    uint8_t qty_shift       # 32 for a u32 share count, 0 for Q's u64
    uint8_t price_off
    uint8_t side_off        # side = _SIDES[msg[side_off]] & side_mask
    uint8_t side_mask
    uint8_t flag_off
    uint8_t flag_map


ctypedef struct _state:
    const uint8_t *buf
    Py_ssize_t n            # len(buf) in bytes
    Py_ssize_t pos          # start of the next frame; pos_after when the loop ends
    fb_event *events
    Py_ssize_t event_capacity
    Py_ssize_t n_events
    const int32_t *locate_map       # NULL: instrument = locate
    char *directory                 # NULL: R messages are not reported
    Py_ssize_t directory_stride     # in bytes
    Py_ssize_t directory_capacity
    Py_ssize_t n_directory
    uint64_t seq                    # message number of the first message of this call
    Py_ssize_t n_messages
    bint final
    int mold_state
    uint64_t mold_next
    uint64_t *counts                # 256 counters, added to the caller's counts at the end
    uint8_t *scratch                # _SCRATCH bytes: padded copy of a message near the end


# Tables, filled once by _init_tables at import.
cdef uint8_t _LENGTHS[256]          # ITCH 5.0 length with the type byte; 0 = unknown type
cdef _emit_spec _SPECS[256]
cdef uint8_t _SIDES[256]            # 'B' -> 1, 'S' -> 2, anything else 0
cdef uint16_t _FLAG_MAPS[3][256]


cdef void _spec(uint8_t t, uint8_t action, uint64_t ref_mask, uint64_t new_mask,
                int qty_off, int qty_bits, int price_off, int side_off,
                uint16_t base_flags, int flag_off, int flag_map) noexcept nogil:
    # qty_bits / price_off / side_off / flag_off of 0 mean "the type has no such field"
    cdef _emit_spec *s = &_SPECS[t]
    s.action = action
    s.ref_mask = ref_mask
    s.new_mask = new_mask
    s.qty_off = qty_off if qty_bits else 11
    s.qty_shift = 64 - qty_bits if qty_bits else 0
    s.qty_mask = _ALL if qty_bits else 0
    s.price_off = price_off if price_off else 11
    s.price_mask = 0xFFFFFFFF if price_off else 0
    s.side_off = side_off
    s.side_mask = 0xFF if side_off else 0
    s.base_flags = base_flags
    s.flag_off = flag_off
    s.flag_map = flag_map


cdef void _init_tables() noexcept nogil:
    cdef const char *types = b"SRHYLVWKJhAFECXDUPQBINO"
    cdef uint8_t *lengths = [12, 39, 25, 20, 26, 35, 12, 28, 35, 21, 36, 40, 31, 36, 23, 19,
                             35, 44, 40, 19, 50, 20, 48]
    fill_tables(_LENGTHS, _SIDES, types, lengths, 23)
    memset(_SPECS, 0, sizeof(_SPECS))
    memset(_FLAG_MAPS, 0, sizeof(_FLAG_MAPS))
    _FLAG_MAPS[_MAP_PRINTABLE][<uint8_t>b'N'] = FB_FLAG_NON_PRINTABLE
    _FLAG_MAPS[_MAP_TRADING][<uint8_t>b'H'] = FB_FLAG_HALTED
    _FLAG_MAPS[_MAP_TRADING][<uint8_t>b'P'] = FB_FLAG_HALTED
    _FLAG_MAPS[_MAP_TRADING][<uint8_t>b'Q'] = FB_FLAG_QUOTING
    #     type      action      ref   new   qty off/bits price side flags  flag off/map
    _spec(b'A', FB_ADD, _ALL, 0, 20, 32, 32, 19, 0, 0, _MAP_NONE)
    _spec(b'F', FB_ADD, _ALL, 0, 20, 32, 32, 19, 0, 0, _MAP_NONE)
    _spec(b'E', FB_EXECUTE, _ALL, 0, 19, 32, 0, 0, 0, 0, _MAP_NONE)
    _spec(b'C', FB_EXECUTE, _ALL, 0, 19, 32, 32, 0, 0, 31, _MAP_PRINTABLE)
    _spec(b'X', FB_REDUCE, _ALL, 0, 19, 32, 0, 0, 0, 0, _MAP_NONE)
    _spec(b'D', FB_DELETE, _ALL, 0, 0, 0, 0, 0, 0, 0, _MAP_NONE)
    _spec(b'U', FB_REPLACE, _ALL, _ALL, 27, 32, 31, 0, 0, 0, _MAP_NONE)
    _spec(b'P', FB_TRADE, _ALL, 0, 20, 32, 32, 19, FB_FLAG_HIDDEN, 0, _MAP_NONE)
    _spec(b'Q', FB_TRADE, 0, 0, 11, 64, 27, 0, FB_FLAG_CROSS, 0, _MAP_NONE)
    _spec(b'H', FB_STATUS, 0, 0, 0, 0, 0, 0, 0, 19, _MAP_TRADING)


_init_tables()


# ===========================================================================
# One message
# ===========================================================================

cdef inline void _emit(fb_event *e, const uint8_t *msg, const _emit_spec *s,
                       uint32_t instrument, uint64_t sequence) noexcept nogil:
    # the 6-byte timestamp at 5..10 is the low 48 bits of the 8 bytes at 3..10
    e.ts_exchange = <int64_t>(_be64(msg + 3) & _TS_MASK)
    e.ts_receive = 0
    e.instrument = instrument
    e.action = s.action
    e.side = <int8_t>(_SIDES[msg[s.side_off]] & s.side_mask)
    e.flags = s.base_flags | _FLAG_MAPS[s.flag_map][msg[s.flag_off]]
    e.price = <int64_t>(_be32(msg + s.price_off) & s.price_mask)
    # Q's u64 shares keep their bit pattern (values >= 2**63 read as negative)
    e.qty = <int64_t>((_be64(msg + s.qty_off) >> s.qty_shift) & s.qty_mask)
    e.order_id = _be64(msg + 11) & s.ref_mask
    e.new_order_id = _be64(msg + 19) & s.new_mask
    e.sequence = sequence


cdef inline int _kind(const _state *st, const uint8_t *msg, Py_ssize_t length) noexcept nogil:
    """What the message needs: 1 an event, 2 a directory slot, 0 nothing; or STATUS_WRONG_LENGTH."""
    cdef uint8_t t = msg[0]
    cdef int32_t instrument
    if _LENGTHS[t] != 0 and length != _LENGTHS[t]:
        return STATUS_WRONG_LENGTH
    if _SPECS[t].action != 0:
        if st.locate_map == NULL:
            return 1
        instrument = st.locate_map[_be16(msg + 1)]
        return 1 if instrument >= 0 else 0
    if t == b'R' and st.directory != NULL:
        return 2
    return 0


cdef inline int _take(_state *st, Py_ssize_t off, Py_ssize_t length) noexcept nogil:
    """Check and consume the message of ``length`` bytes whose type byte is at ``off``.

    Returns STATUS_OK, or STATUS_WRONG_LENGTH / STATUS_EVENTS_FULL / STATUS_DIRECTORY_FULL
    with nothing consumed.
    """
    cdef const uint8_t *msg = st.buf + off
    cdef uint8_t t = msg[0]
    cdef uint32_t locate
    cdef int32_t instrument
    if _LENGTHS[t] != 0 and length != _LENGTHS[t]:
        return STATUS_WRONG_LENGTH
    if _SPECS[t].action != 0:
        locate = _be16(msg + 1)
        instrument = <int32_t>locate
        if st.locate_map != NULL:
            instrument = st.locate_map[locate]
        if instrument >= 0:
            if st.n_events == st.event_capacity:
                return STATUS_EVENTS_FULL
            if st.n - off < _READ_SPAN:
                memcpy(st.scratch, msg, <size_t>length)
                msg = st.scratch
            _emit(&st.events[st.n_events], msg, &_SPECS[t], <uint32_t>instrument,
                  st.seq + <uint64_t>st.n_messages)
            st.n_events += 1
    elif t == b'R' and st.directory != NULL:
        if st.n_directory == st.directory_capacity:
            return STATUS_DIRECTORY_FULL
        # memcpy: a strided directory array need not be 8-byte aligned
        memcpy(st.directory + st.n_directory * st.directory_stride, &off, sizeof(int64_t))
        st.n_directory += 1
    st.counts[t] += 1
    st.n_messages += 1
    return STATUS_OK


# ===========================================================================
# The framings. Each leaves st.pos at the first frame not consumed and
# returns a status (STATUS_INCOMPLETE included).
# ===========================================================================

cdef inline int _decode_binaryfile(_state *st) noexcept nogil:
    cdef const uint8_t *buf = st.buf
    cdef Py_ssize_t n = st.n, p = st.pos, length
    cdef int rc = STATUS_OK
    while p < n:
        rc = frame_at(buf, n, p, &length)
        if rc != STATUS_OK:
            break
        rc = _take(st, p + 2, length)
        if rc != STATUS_OK:
            break
        p += 2 + length
        if buf[p - length] == b'R' and st.directory != NULL:
            rc = STATUS_DIRECTORY_FULL    # stop after an R: the caller maps its locate first
            break
    st.pos = p
    return rc


cdef inline int _decode_soupbintcp(_state *st) noexcept nogil:
    cdef const uint8_t *buf = st.buf
    cdef Py_ssize_t n = st.n, p = st.pos, length
    cdef int rc = STATUS_OK
    while p < n:
        rc = frame_at(buf, n, p, &length)   # length counts the packet type byte
        if rc != STATUS_OK:
            break
        if buf[p + 2] == b'S':
            if length == 1:         # sequenced data with an empty message
                rc = STATUS_ZERO_LENGTH
                break
            rc = _take(st, p + 3, length - 1)
            if rc != STATUS_OK:
                break
            if buf[p + 3] == b'R' and st.directory != NULL:
                p += 2 + length
                rc = STATUS_DIRECTORY_FULL    # stop after an R: the caller maps its locate first
                break
        p += 2 + length
    st.pos = p
    return rc


cdef inline int _check_mold_packet(const _state *st, Py_ssize_t p, Py_ssize_t count,
                                   Py_ssize_t *end, Py_ssize_t *directories) noexcept nogil:
    """Check every block of the data packet at ``p`` without consuming any.

    Returns STATUS_OK (``end`` = the byte after the packet), STATUS_INCOMPLETE,
    STATUS_ZERO_LENGTH, STATUS_WRONG_LENGTH, or STATUS_EVENTS_FULL / STATUS_DIRECTORY_FULL
    when the whole packet does not fit in what is left of events / directory (events
    checked first).
    """
    cdef const uint8_t *buf = st.buf
    cdef Py_ssize_t n = st.n, q = p + MOLD_HEADER_BYTES, length, _block
    cdef Py_ssize_t need_events = 0, need_directory = 0
    cdef int kind, rc
    for _block in range(count):
        rc = frame_at(buf, n, q, &length)
        if rc != STATUS_OK:
            return rc
        kind = _kind(st, buf + q + 2, length)
        if kind == STATUS_WRONG_LENGTH:
            return STATUS_WRONG_LENGTH
        need_events += kind == 1
        need_directory += kind == 2
        q += 2 + length
    if need_events > st.event_capacity - st.n_events:
        return STATUS_EVENTS_FULL
    if need_directory > st.directory_capacity - st.n_directory:
        return STATUS_DIRECTORY_FULL
    end[0] = q
    directories[0] = need_directory
    return STATUS_OK


cdef inline int _decode_moldudp64(_state *st) noexcept nogil:
    cdef const uint8_t *buf = st.buf
    cdef Py_ssize_t n = st.n, p = st.pos, q, end = 0, count, _block, directories = 0
    cdef uint64_t sequence
    cdef int rc = STATUS_OK
    while p < n:
        rc = mold_packet_at(buf, n, p, st.mold_state, st.mold_next, &sequence, &count)
        if rc != STATUS_OK:
            break
        if count == MOLD_HEARTBEAT or count == MOLD_END_OF_SESSION:
            mold_expect_after(sequence, count, &st.mold_state, &st.mold_next)
            p += MOLD_HEADER_BYTES
            continue
        rc = _check_mold_packet(st, p, count, &end, &directories)
        if rc != STATUS_OK:
            break
        q = p + MOLD_HEADER_BYTES
        for _block in range(count):
            _take(st, q + 2, _be16(buf + q))   # cannot fail: checked above
            q += 2 + _be16(buf + q)
        mold_expect_after(sequence, count, &st.mold_state, &st.mold_next)
        p = end
        if directories:
            rc = STATUS_DIRECTORY_FULL        # stop after an R: the caller maps its locate first
            break
    st.pos = p
    return rc


cdef int _decode(_state *st, int framing) noexcept nogil:
    # The loops run on a local copy: its address never leaves this function (everything
    # below is inlined), so the compiler knows event stores cannot alias its fields and
    # can keep them in registers.
    cdef _state local = st[0]
    cdef uint8_t scratch[_SCRATCH]
    cdef int rc
    memset(scratch, 0, sizeof(scratch))
    local.scratch = scratch
    if framing == FRAMING_BINARYFILE:
        rc = _decode_binaryfile(&local)
    elif framing == FRAMING_MOLDUDP64:
        rc = _decode_moldudp64(&local)
    else:
        rc = _decode_soupbintcp(&local)
    if rc == STATUS_INCOMPLETE:
        rc = STATUS_TRUNCATED if local.final else STATUS_OK
    local.scratch = NULL
    st[0] = local
    return rc


# ===========================================================================
# The Python edge
# ===========================================================================

cdef object _as_int(object value, str what):
    # ints and numpy integers; bools and floats are refused rather than read as numbers
    if isinstance(value, (bool, float, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    return value.__index__()


cdef cnp.ndarray _array(object value, str what, object dtype, str hint, bint writeable):
    """``value`` as a 1-d numpy array of exactly ``dtype`` (native order), else ArrayError."""
    if not cnp.PyArray_Check(value):
        raise ArrayError(f"{what} must be a numpy array of {hint}, got {type(value).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>value
    if a.dtype != dtype:
        raise ArrayError(f"{what} must have dtype {hint}, got {a.dtype}")
    if cnp.PyArray_NDIM(a) != 1:
        raise ArrayError(f"{what} must be 1-dimensional, got shape {value.shape}")
    if writeable and not cnp.PyArray_ISWRITEABLE(a):
        raise ArrayError(f"{what} must be writeable (it receives output)")
    return a


def decode_chunk(buf, pos, framing, events, counts, /, *, locate_map=None, directory=None,
                 seq=0, final=False, mold_next=-1):
    """Decode framed ITCH 5.0 messages from ``buf[pos:]`` into ``events``.

    Implements the decode_chunk contract exactly; see the module docstring of
    ``fastbook.codecs._pyitch50`` (the readable twin) for the rules in prose.
    Decoding stops at the first frame that is incomplete, does not fit in
    ``events`` / ``directory``, or is malformed, and, when ``directory`` is
    given, right after a frame (MoldUDP64: packet) holding an ``R``, so the
    caller can map the new locate in ``locate_map`` before its orders arrive.
    The caller resumes from ``pos_after`` with ``seq + n_messages``.

    Parameters
    ----------
    buf : bytes-like
        Any C-contiguous buffer (bytes, bytearray, memoryview, mmap, numpy
        uint8), read in place; read-only buffers are fine.
    pos : int
        Byte offset of the first frame, ``0 <= pos <= len(buf)``.
    framing : int
        0 BinaryFILE, 1 MoldUDP64, 2 SoupBinTCP.
    events : numpy.ndarray of fastbook.events.EVENT_DTYPE
        1-d, C-contiguous, writeable; rows are written from 0. Its length is
        this call's event capacity.
    counts : numpy.ndarray of uint64, length 256
        ``counts[t]`` is incremented for every consumed ITCH message of type ``t``.
    locate_map : numpy.ndarray of int32, length 65536, optional
        Instrument id per stock locate; a negative entry drops that locate's
        events (its messages are still consumed and counted).
    directory : numpy.ndarray of int64, optional
        Receives the byte offset of the type byte of every consumed ``R``.
    seq : int
        Message number of the first message consumed (``sequence`` of events).
    final : bool
        No more bytes follow ``buf``: an incomplete trailing frame is status -3.
    mold_next : int
        MoldUDP64: the sequence number the first packet must carry; -1 = any.

    Returns
    -------
    tuple of int
        ``(pos_after, n_events, n_messages, n_directory, status)``; status 0
        (done, or need more bytes), 1 events full, 2 directory full or an
        ``R`` was just reported, -1 length does not match the type, -2 zero
        length, -3 truncated (``final``), -5 MoldUDP64 sequence gap. On every
        status the frames before ``pos_after`` were consumed and fully written
        out; nothing after it.

    Raises
    ------
    TypeError, ValueError
        A bad argument (``fastbook.ArrayError`` for arrays); nothing decoded.

    Notes
    -----
    Readings of the contract where it leaves room (``_pyitch50.decode_chunk``
    reads it the same way):

    1. SoupBinTCP packets other than ``S`` are not ITCH messages: skipped whole and
       not counted in ``counts`` (the "counts" section wins over the framing
       section's half sentence about ``counts[0]``).
    2. A SoupBinTCP ``S`` packet with no payload (length 1) is a zero-length
       message: status -2.
    3. MoldUDP64: ``mold_next`` (or, when -1, the first packet's own number) sets
       the expected number; every packet consumed moves it to ``sequence + count``
       (to ``sequence`` for heartbeats and end-of-session packets, which announce
       the next number), so a gap anywhere in the call is -5, heartbeats included.
       It is checked as soon as the 20-byte header is in ``buf``, before the
       blocks. An expectation beyond 2**64 - 1 makes every later packet a gap.
    4. Order of checks. A frame: prefix present, zero length (-2), frame complete,
       length of a known type (-1), capacity (1, 2). So a torn frame is
       "incomplete" (0, or -3 when ``final``) even if its prefix would not match
       its type. A MoldUDP64 packet: header present, sequence (-5), each block in
       order as a frame without capacity, then capacity over the whole packet:
       events first (1), then directory (2); errors point at the packet start.
       After a frame or packet holding an ``R`` (``directory`` given) the call
       stops with status 2 (the lead's amendment), even when that was the end
       of ``buf``.
    5. "Would emit an event" takes ``locate_map`` into account: a dropped message
       needs no event slot. Every negative ``locate_map`` value drops, not only -1.
    6. ``n_directory`` is 0 when ``directory`` is None; ``sequence`` of an event
       is ``(seq + n) mod 2**64``.
    7. Arguments, beyond the contract's list: integers are ints or numpy integers
       (bools and floats are refused); ``events`` must also be aligned and
       writeable, ``counts`` and ``directory`` writeable; ``counts``,
       ``locate_map`` and ``directory`` may be strided (the contract asks for 1-D
       arrays, not contiguous ones); ``mold_next`` may be up to 2**64 - 1, the
       largest MoldUDP64 sequence number.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbook.events import empty_events
    >>> msg = (b"D" + (7).to_bytes(2, "big") + bytes(2) + (5).to_bytes(6, "big")
    ...        + (42).to_bytes(8, "big"))
    >>> buf = len(msg).to_bytes(2, "big") + msg
    >>> ev, counts = empty_events(4), np.zeros(256, np.uint64)
    >>> decode_chunk(buf, 0, 0, ev, counts)
    (21, 1, 1, 0, 0)
    >>> int(ev[0]["order_id"]), int(ev[0]["instrument"]), int(counts[ord("D")])
    (42, 7, 1)
    """
    cdef _state st
    cdef Py_buffer view
    cdef cnp.ndarray ev_arr, counts_arr, map_arr = None, dir_arr = None
    cdef Py_ssize_t i, counts_stride
    cdef uint64_t counts_seen[256]
    cdef char *counts_base
    cdef uint64_t total
    cdef int rc, frm

    frm_obj = _as_int(framing, "framing")
    if frm_obj not in (FRAMING_BINARYFILE, FRAMING_MOLDUDP64, FRAMING_SOUPBINTCP):
        raise ValueError(f"framing must be 0 (BinaryFILE), 1 (MoldUDP64) or 2 (SoupBinTCP), "
                         f"got {frm_obj!r}")
    frm = frm_obj
    pos_obj = _as_int(pos, "pos")
    ev_arr = _array(events, "events", EVENT_DTYPE, "fastbook.events.EVENT_DTYPE", True)
    if not cnp.PyArray_IS_C_CONTIGUOUS(ev_arr) or not cnp.PyArray_ISALIGNED(ev_arr):
        raise ArrayError("events must be C-contiguous and aligned; "
                         "use fastbook.events.empty_events(n)")
    counts_arr = _array(counts, "counts", _UINT64, "uint64", True)
    check_counts_length(cnp.PyArray_DIMS(counts_arr)[0])
    if locate_map is not None:
        map_arr = _array(locate_map, "locate_map", _INT32, "int32", False)
        if cnp.PyArray_DIMS(map_arr)[0] != 65536:
            raise ArrayError(f"locate_map must have length 65536 (one per stock locate), "
                             f"got {cnp.PyArray_DIMS(map_arr)[0]}")
        if not cnp.PyArray_IS_C_CONTIGUOUS(map_arr) or not cnp.PyArray_ISALIGNED(map_arr):
            map_arr = np.ascontiguousarray(map_arr).copy()  # read only: a copy is equivalent
    if directory is not None:
        dir_arr = _array(directory, "directory", _INT64, "int64", True)
    seq_obj = _as_int(seq, "seq")
    if not 0 <= seq_obj <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"seq must be a message number in [0, 2**64), got {seq_obj}")
    mold_obj = _as_int(mold_next, "mold_next")
    if not -1 <= mold_obj <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"mold_next must be -1 (any) or a sequence number in [0, 2**64), "
                         f"got {mold_obj}")
    get_buffer(buf, &view, "object (bytes, bytearray, memoryview, mmap, numpy uint8)")
    try:
        if not 0 <= pos_obj <= view.len:
            raise ValueError(f"pos must be in [0, len(buf)] = [0, {view.len}], got {pos_obj}")
        st.buf = <const uint8_t *>view.buf
        st.n = view.len
        st.pos = pos_obj
        st.events = <fb_event *>cnp.PyArray_DATA(ev_arr)
        st.event_capacity = cnp.PyArray_DIMS(ev_arr)[0]
        st.n_events = 0
        st.locate_map = NULL
        if map_arr is not None:
            st.locate_map = <const int32_t *>cnp.PyArray_DATA(map_arr)
        st.directory = NULL
        st.directory_stride = 0
        st.directory_capacity = 0
        if dir_arr is not None:
            st.directory = <char *>cnp.PyArray_DATA(dir_arr)
            st.directory_stride = cnp.PyArray_STRIDES(dir_arr)[0]
            st.directory_capacity = cnp.PyArray_DIMS(dir_arr)[0]
        st.n_directory = 0
        st.seq = <uint64_t>seq_obj
        st.n_messages = 0
        st.final = bool(final)
        st.mold_state = MOLD_ANY if mold_obj == -1 else MOLD_KNOWN
        st.mold_next = 0 if mold_obj == -1 else <uint64_t>mold_obj
        memset(counts_seen, 0, sizeof(counts_seen))
        st.counts = counts_seen
        st.scratch = NULL               # _decode provides it
        if st.n - st.pos >= NOGIL_MIN_BYTES:
            with nogil:
                rc = _decode(&st, frm)
        else:
            rc = _decode(&st, frm)
    finally:
        PyBuffer_Release(&view)

    # counts may be strided (and, through a view, unaligned): byte pointer + memcpy
    counts_base = <char *>cnp.PyArray_DATA(counts_arr)
    counts_stride = cnp.PyArray_STRIDES(counts_arr)[0]
    for i in range(256):
        if counts_seen[i] != 0:
            memcpy(&total, counts_base + i * counts_stride, sizeof(uint64_t))
            total += counts_seen[i]
            memcpy(counts_base + i * counts_stride, &total, sizeof(uint64_t))
    return st.pos, st.n_events, st.n_messages, st.n_directory, rc
