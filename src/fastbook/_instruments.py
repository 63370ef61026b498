"""Instrument metadata of a BookSet: the one set of checks both BookSets make."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from fastbook._checks import is_int

_INT64_MAX = (1 << 63) - 1


def instrument_meta(book: Any, kind: str, *, symbol: Any, venue: Any, tick_size: Any,
                    lot_size: Any, index: dict[tuple[str, str], int],
                    members: Container[int]) -> dict[str, Any]:
    """Check a new instrument against the set's ``index`` and ``members``; return its metadata.

    ``kind`` is ``"l3"`` or ``"l2"`` (the caller has checked the book's type).
    ``members`` holds the ``id`` of every book of the set (the set keeps them
    alive, so the ids are theirs): a set test, where scanning the books made
    adding n instruments O(n**2).
    """
    if not isinstance(symbol, str) or not isinstance(venue, str):
        raise TypeError("symbol and venue must be str")
    for name, value in (("tick_size", tick_size), ("lot_size", lot_size)):
        if not is_int(value, 1, _INT64_MAX):
            raise ValueError(f"{name} must be a positive int64, got {value!r}")
    if (symbol, venue) in index:
        raise ValueError(f"instrument {symbol!r} on venue {venue!r} is already in the set "
                         f"(id {index[(symbol, venue)]})")
    if id(book) in members:
        raise ValueError("this book is already in the set")
    return {
        "symbol": symbol, "venue": venue, "kind": kind,
        "price_decimals": book.price_decimals, "qty_decimals": book.qty_decimals,
        "tick_size": tick_size, "lot_size": lot_size,
    }
