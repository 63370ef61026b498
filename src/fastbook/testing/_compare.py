"""Compare a fastbook ``Book`` with the simulator's truth, exactly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastbook._vocab import ASK, BID

__all__ = ["book_equals_truth", "levels_of"]


def levels_of(book: Any, side: str, price_decimals: int | None = None,
              qty_decimals: int | None = None) -> list[tuple[Decimal, Decimal]]:
    """``book``'s levels of ``side`` (``"bids"``/``"asks"``) best first, as exact Decimals."""
    code = {"bids": BID, "bid": BID, "asks": ASK, "ask": ASK}.get(side)
    if code is None:
        raise ValueError(f"levels_of: side must be 'bids' or 'asks', got {side!r}")
    pd = book.price_decimals if price_decimals is None else price_decimals
    qd = book.qty_decimals if qty_decimals is None else qty_decimals
    return [(Decimal(p).scaleb(-pd), Decimal(q).scaleb(-qd)) for p, q in book.levels(code)]


def book_equals_truth(book: Any, truth: dict[str, Any], price_decimals: int | None = None,
                      qty_decimals: int | None = None) -> bool:
    """True when ``book`` holds exactly ``truth``'s levels (values compared, not text)."""
    return all(levels_of(book, s, price_decimals, qty_decimals) == list(truth[s])
               for s in ("bids", "asks"))
