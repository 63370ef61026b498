# cython: language_level=3
"""The event record and its codes, for C code: ``fastbook.events`` in Cython.

The books (``_l3.pxd`` re-exports all of this as part of its public C API) and
the decode kernels that write events (``codecs/_itch50.pyx``, ``codecs/_ose.pyx``)
cimport it from here. Header only: there is no ``fastbook._events`` module.
The values are ``fastbook.events.Action`` and ``fastbook.events.Flags``; the
layout of ``fb_event`` is ``fastbook.events.EVENT_DTYPE`` (``_l3`` checks both at
import), and a change to either is a change of ``FB_L3_ABI_VERSION``.
"""

from libc.stdint cimport int8_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef enum:
    # fastbook.events.Action
    FB_ADD = 1
    FB_REDUCE = 2
    FB_EXECUTE = 3
    FB_DELETE = 4
    FB_REPLACE = 5
    FB_SET_LEVEL = 6
    FB_CLEAR = 7
    FB_TRADE = 8
    FB_SNAPSHOT_BEGIN = 9
    FB_SNAPSHOT_END = 10
    FB_STATUS = 11

cdef enum:
    # fastbook.events.Flags
    FB_FLAG_LAST_IN_PACKET = 0x0001
    FB_FLAG_SNAPSHOT = 0x0002
    FB_FLAG_HIDDEN = 0x0004
    FB_FLAG_CROSS = 0x0008
    FB_FLAG_HALTED = 0x0010
    FB_FLAG_QUOTING = 0x0020
    FB_FLAG_AGGRESSOR_BUY = 0x0040
    FB_FLAG_AGGRESSOR_SELL = 0x0080
    FB_FLAG_NON_PRINTABLE = 0x0100
    FB_FLAG_KEEP_PRIORITY = 0x0200  # REPLACE with new id == id: fb_l3_modify's rule


ctypedef struct fb_event:
    # One record of fastbook.events.EVENT_DTYPE (64 bytes, this exact layout).
    int64_t ts_exchange
    int64_t ts_receive
    uint32_t instrument
    uint8_t action
    int8_t side
    uint16_t flags
    int64_t price
    int64_t qty
    uint64_t order_id
    uint64_t new_order_id
    uint64_t sequence
