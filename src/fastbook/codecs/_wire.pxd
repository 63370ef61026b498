# cython: language_level=3
"""What the two ITCH-family kernels share (NASDAQ ITCH 5.0, J-GATE ITCH): codes and loads.

The framing codes, ``decode_chunk`` statuses and MoldUDP64 constants are those of
``fastbook.codecs._pyitch50`` (the twins define the same values), written once
here for both kernels. Big-endian loads are byte shifts: portable (gcc, clang,
MSVC), and gcc/clang turn them into one load + bswap (movbe).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyObject_CheckBuffer, PyObject_GetBuffer
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memset

from fastbook._core cimport FB_ASK, FB_BID


# Framings (decode_chunk's ``framing`` argument).
cdef enum:
    FRAMING_BINARYFILE = 0
    FRAMING_MOLDUDP64 = 1
    FRAMING_SOUPBINTCP = 2      # NASDAQ ITCH only

# Statuses returned by decode_chunk (a kernel adds its own below -5), and one internal
# to the loops.
cdef enum:
    STATUS_OK = 0               # all consumed, or stopped at an incomplete frame (final=False)
    STATUS_EVENTS_FULL = 1
    STATUS_DIRECTORY_FULL = 2
    STATUS_INCOMPLETE = 3       # internal: becomes STATUS_OK, or STATUS_TRUNCATED when final
    STATUS_WRONG_LENGTH = -1    # a known type whose length is not its specified length
    STATUS_ZERO_LENGTH = -2     # a zero length prefix
    STATUS_TRUNCATED = -3       # final=True and an incomplete trailing frame
    STATUS_GAP = -5             # MoldUDP64 sequence number is not the expected one

# MoldUDP64: the packet header, the message counts that carry no messages, and gap
# tracking (see _itch50.decode_chunk's notes).
cdef enum:
    MOLD_HEADER_BYTES = 20      # session(10) + sequence(8) + count(2)
    MOLD_HEARTBEAT = 0
    MOLD_END_OF_SESSION = 0xFFFF
    MOLD_ANY = 0                # no expectation yet: accept any sequence number
    MOLD_KNOWN = 1              # the next packet must carry the expected number
    MOLD_NEVER = 2              # the expectation overflowed uint64: every packet is a gap

cdef enum:
    # Buffers at least this long are decoded without the GIL.
    NOGIL_MIN_BYTES = 4096


cdef inline uint32_t be16(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t be32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t be64(const uint8_t *p) noexcept nogil:
    return ((<uint64_t>p[0] << 56) | (<uint64_t>p[1] << 48) | (<uint64_t>p[2] << 40)
            | (<uint64_t>p[3] << 32) | (<uint64_t>p[4] << 24) | (<uint64_t>p[5] << 16)
            | (<uint64_t>p[6] << 8) | <uint64_t>p[7])


# --- framing: the steps both kernels take at every frame and MoldUDP64 packet ----

cdef inline int frame_at(const uint8_t *buf, Py_ssize_t n, Py_ssize_t p,
                         Py_ssize_t *length) noexcept nogil:
    """The frame at ``buf[p:n]``: a 2-byte big-endian length, then that many bytes.

    STATUS_OK with ``length`` set; STATUS_ZERO_LENGTH for a zero prefix; else
    STATUS_INCOMPLETE (the prefix or the frame does not end in ``buf``).
    """
    if n - p < 2:
        return STATUS_INCOMPLETE
    length[0] = be16(buf + p)
    if length[0] == 0:
        return STATUS_ZERO_LENGTH
    if n - p - 2 < length[0]:
        return STATUS_INCOMPLETE
    return STATUS_OK


cdef inline int mold_packet_at(const uint8_t *buf, Py_ssize_t n, Py_ssize_t p, int state,
                               uint64_t expected, uint64_t *sequence,
                               Py_ssize_t *count) noexcept nogil:
    """The MoldUDP64 header at ``buf[p:n]``: its sequence number and message count.

    STATUS_OK; STATUS_INCOMPLETE when the header does not end in ``buf``; STATUS_GAP
    when ``state`` / ``expected`` (the gap tracking) refuse its sequence number.
    """
    if n - p < MOLD_HEADER_BYTES:
        return STATUS_INCOMPLETE
    sequence[0] = be64(buf + p + 10)
    count[0] = be16(buf + p + 18)
    if state == MOLD_NEVER or (state == MOLD_KNOWN and sequence[0] != expected):
        return STATUS_GAP
    return STATUS_OK


cdef inline Py_ssize_t mold_expect_after(uint64_t sequence, Py_ssize_t count, int *state,
                                         uint64_t *expected) noexcept nogil:
    """Move the gap tracking past the packet numbered ``sequence`` with message count
    ``count``; return the number of messages it carries.

    Heartbeats and end-of-session packets carry none, and the number of the next
    message; a number beyond 2**64 - 1 makes every later packet a gap (MOLD_NEVER).
    """
    cdef uint64_t after
    if count == MOLD_HEARTBEAT or count == MOLD_END_OF_SESSION:
        state[0] = MOLD_KNOWN
        expected[0] = sequence
        return 0
    after = sequence + <uint64_t>count
    state[0] = MOLD_KNOWN if after >= sequence else MOLD_NEVER
    expected[0] = after
    return count


# --- tables, filled once at import -------------------------------------------------

cdef inline void fill_tables(uint8_t *lengths, uint8_t *sides, const char *types,
                             const uint8_t *type_lengths, Py_ssize_t ntypes) noexcept nogil:
    """``lengths[t]``: the length of type ``t`` (0 = unknown type); ``sides``: the event
    side of a side byte ('B' buy, 'S' sell, else 0). Both tables have 256 entries."""
    cdef Py_ssize_t i
    memset(lengths, 0, 256)
    memset(sides, 0, 256)
    for i in range(ntypes):
        lengths[<uint8_t>types[i]] = type_lengths[i]
    sides[<uint8_t>b'B'] = FB_BID
    sides[<uint8_t>b'S'] = FB_ASK


# --- the Python edge -----------------------------------------------------------------

cdef inline int check_counts_length(Py_ssize_t length) except -1:
    if length != 256:
        from fastbook.errors import ArrayError
        raise ArrayError(f"counts must have length 256 (one per type byte), got {length}")
    return 0


cdef inline int get_buffer(object buf, Py_buffer *view, str kinds) except -1:
    """Take a simple (C-contiguous, read-only) buffer of ``buf`` into ``view``.

    ``kinds`` names what the kernel accepts, for the TypeError of a non-buffer.
    """
    if not PyObject_CheckBuffer(buf):
        raise TypeError(f"buf must be a bytes-like {kinds}, got {type(buf).__name__}")
    try:
        PyObject_GetBuffer(buf, view, PyBUF_SIMPLE)
    except (BufferError, ValueError) as exc:
        raise ValueError(f"buf must be a C-contiguous buffer: {exc}") from None
    return 0
