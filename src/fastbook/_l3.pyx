# cython: language_level=3
"""Compiled L3 (order-by-order) book, and BookSet: many books updated by event arrays.

State lives in the C structs of ``_l3.pxd`` and is changed by free ``nogil``
functions that report failure with negative status codes and leave the book
unchanged; ``OrderBook`` owns the struct, validates at the Python edge and
turns codes into ``UpdateError`` (or counts them, with ``on_error="skip"``).
``BookSet.apply`` routes a whole ``fastbook.events`` array to its books in one
``nogil`` loop (``fb_bookset_apply``); in raise mode an undo journal makes each
batch all-or-nothing. The pure-Python twin in ``fastbook._pyl3`` defines the
behaviour this module must match exactly (``tests/l3/test_l3_differential.py``,
``tests/l3/test_bookset.py``).
"""

# The names below are used by the included files (cython-lint reads this file alone,
# hence its pragmas).
cimport cython  # no-cython-lint
cimport numpy as cnp
from libc.stdint cimport (  # no-cython-lint
    INT64_MAX, INT64_MIN, int8_t, int32_t, int64_t,  # no-cython-lint
    uint8_t, uint16_t, uint32_t, uint64_t,  # no-cython-lint
)
from libc.stdlib cimport free, malloc, realloc  # no-cython-lint
from libc.string cimport memcpy, memset  # no-cython-lint
from libc.math cimport NAN  # no-cython-lint
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject  # no-cython-lint

from fastbook._edge cimport (  # no-cython-lint
    as_capacity, as_i64, as_side, as_u64, check_decimals, raise_read_only,  # no-cython-lint
    side_message, top_array, valid_side,  # no-cython-lint
)
from fastbook._mem cimport grow_to  # no-cython-lint
from fastbook._reads cimport (  # no-cython-lint
    bbo_tuple, best_text, crossed, fb_bbo, level_or_none, mid_of, spread_of,  # no-cython-lint
    top_rows,  # no-cython-lint
)
from fastbook._search cimport TOP_WINDOW, lower_bound  # no-cython-lint
from fastbook._core cimport (  # no-cython-lint
    Book, _Guard, fb_book, fb_book_best, fb_book_clear,  # no-cython-lint
    fb_book_copy, fb_book_free, fb_book_qty_at, fb_book_set,  # no-cython-lint
    fb_book_depth, fb_book_top, solo_guard,  # no-cython-lint
)

import weakref  # no-cython-lint

import numpy as np  # no-cython-lint

from fastbook._checks import new_book  # no-cython-lint
from fastbook._core import format_decimal  # no-cython-lint
from fastbook._instruments import instrument_meta  # no-cython-lint
from fastbook.errors import UpdateError  # no-cython-lint

cnp.import_array()

BID = FB_BID
ASK = FB_ASK
#: Bytes per order record (id, quantity, queue links, level, side); hash slots are extra.
BYTES_PER_ORDER = FB_L3_BYTES_PER_ORDER
#: Bytes per allocated level slot: the 32-byte record plus its key and id in the price index.
BYTES_PER_LEVEL = FB_L3_BYTES_PER_LEVEL
#: Layout version of the C API in ``_l3.pxd`` (``FB_L3_ABI_VERSION``).
ABI_VERSION = FB_L3_ABI_VERSION
#: Names of the error kinds counted with ``on_error="skip"``, in counter order.
ERROR_KINDS = ("bad_side", "bad_quantity", "bad_price", "unknown_order",
               "duplicate_order", "over_execute", "overflow", "bad_action")
COMPILED = True

# Undo-journal entries reserved up front by BookSet.apply in raise mode (virtual
# memory), and the most a BookSet keeps for its next batch (at most
# _JOURNAL_ENTRY_MAX words of 8 bytes each).
cdef Py_ssize_t _JOURNAL_RESERVE = 1 << 22
cdef Py_ssize_t _JOURNAL_KEEP = 1 << 21
cdef enum:
    _JOURNAL_ENTRY_MAX = 6
cdef Py_ssize_t _MIN_LEVELS = 16
cdef Py_ssize_t _MIN_ORDERS = 16
# Pool indices are int32 and the table has 2 slots per record: 2**30 orders at most.
cdef Py_ssize_t _MAX_ORDERS = 1 << 30
# Level records are named by int32 ids.
cdef Py_ssize_t _MAX_LEVELS = 1 << 30


# The module is one extension (so the batch loop inlines the per-book updates) written
# in included files, one per concept, in dependency order:
include "_l3_store.pxi"         # the order store: hash table, levels, updates, reads
include "_l3_features.pxi"      # the feature kernels samplers run (docs/features.md)
include "_l3_sampling.pxi"      # samplers and per-event callbacks
include "_l3_prefetch.pxi"      # the prefetch pipeline of the batch loop
include "_l3_events.pxi"        # undo journal, event application, the batch loop
include "_l3_orderbook.pxi"     # OrderBook
include "_l3_bookset.pxi"       # BookSet
