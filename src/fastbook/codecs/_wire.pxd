# cython: language_level=3
"""What the two ITCH-family kernels share (NASDAQ ITCH 5.0, J-GATE ITCH): codes and loads.

The framing codes, ``decode_chunk`` statuses and MoldUDP64 constants are those of
``fastbook.codecs._pyitch50`` (the twins define the same values), written once
here for both kernels. Big-endian loads are byte shifts: portable (gcc, clang,
MSVC), and gcc/clang turn them into one load + bswap (movbe).
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t


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
