# cython: language_level=3
"""Builders of the L2 reads' Python values, for ``Book`` and ``OrderBook``.

Private: not part of the public C API. The read methods (best_bid, bbo, spread,
mid, is_crossed, top) are written once, on ``fastbook._core._L2Reads``, the base
of both classes, over five calls each class implements for its own C book; these
inline builders turn the C results into Python values there and in each class's
repr.
"""

cimport numpy as cnp
from libc.stdint cimport int64_t

from fastbook._core cimport fb_bbo  # both best levels (no-cython-lint)


cdef inline object level_or_none(bint has, int64_t price, int64_t qty):
    """``best_bid()`` / ``best_ask()``: ``(price, qty)``, or None for an empty side."""
    if has:
        return (price, qty)
    return None


cdef inline object bbo_tuple(fb_bbo t):
    """``bbo()``: ``(bid_price, bid_qty, ask_price, ask_qty)``, None for an empty side's pair."""
    if t.has_bid and t.has_ask:
        return (t.bid_price, t.bid_qty, t.ask_price, t.ask_qty)
    return (t.bid_price if t.has_bid else None, t.bid_qty if t.has_bid else None,
            t.ask_price if t.has_ask else None, t.ask_qty if t.has_ask else None)


cdef inline object spread_of(fb_bbo t):
    """``spread()``: best ask minus best bid as an int (no overflow), None when a side is empty."""
    if t.has_bid and t.has_ask:
        return <object>t.ask_price - <object>t.bid_price
    return None


cdef inline object mid_of(fb_bbo t):
    """``mid()``: ``(bid + ask) // 2`` as an int (no overflow), None when a side is empty."""
    if t.has_bid and t.has_ask:
        return (<object>t.ask_price + <object>t.bid_price) // 2
    return None


cdef inline bint crossed(fb_bbo t) noexcept nogil:
    """``is_crossed()``: both sides present and best bid >= best ask."""
    return t.has_bid and t.has_ask and t.bid_price >= t.ask_price


cdef inline int64_t *top_rows(cnp.ndarray a, Py_ssize_t *count) noexcept:
    """The first of the four rows of ``a``, a checked ``top_array``; ``count`` its width."""
    count[0] = cnp.PyArray_DIMS(a)[1]
    return <int64_t *>cnp.PyArray_DATA(a)


cdef inline str best_text(object book, bint has, int64_t price, int64_t qty):
    """One best level as the repr shows it: ``price x qty`` at the book's scale, or None."""
    if not has:
        return "None"
    return f"{book.format_price(price)} x {book.format_qty(qty, strip=True)}"
