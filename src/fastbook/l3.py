"""The L3 (order-by-order) book ``OrderBook`` and the multi-instrument ``BookSet``.

The compiled ``fastbook._l3`` is used by default; with ``FASTBOOK_NO_EXTENSIONS=1``
(or when the compiled module is missing) the pure-Python twin ``fastbook._pyl3``
is used instead, exactly as ``fastbook`` chooses its L2 core.

>>> import fastbook as fb
>>> from fastbook.l3 import OrderBook
>>> ob = OrderBook(price_decimals=4)
>>> ob.add(7, fb.ASK, 5859100, 18)
True
>>> ob.best_ask()
(5859100, 18)
"""

from __future__ import annotations

import os as _os
import warnings as _warnings


def _load():  # type: ignore[no-untyped-def]
    if _os.environ.get("FASTBOOK_NO_EXTENSIONS", "") not in ("", "0"):
        from fastbook import _pyl3

        return _pyl3
    try:
        from fastbook import _l3
    except ImportError as exc:  # pragma: no cover - only without a compiled build
        _warnings.warn(
            f"fastbook: the compiled L3 book could not be imported ({exc}); using the slow "
            "pure-Python twin. Reinstall with a C compiler available to get the fast core.",
            RuntimeWarning,
            stacklevel=3,
        )
        from fastbook import _pyl3

        return _pyl3
    return _l3


_impl = _load()

OrderBook = _impl.OrderBook
BookSet = _impl.BookSet
#: Bytes per order slot (record, side byte and hash slots); see ``OrderBook.nbytes``.
BYTES_PER_ORDER: int = _impl.BYTES_PER_ORDER
#: Bytes per allocated level slot of an L3 book.
BYTES_PER_LEVEL: int = _impl.BYTES_PER_LEVEL
#: Names of the error kinds counted by ``OrderBook(on_error="skip")``.
ERROR_KINDS: tuple[str, ...] = _impl.ERROR_KINDS
#: Error kinds counted by ``BookSet(on_error="skip")``: the books' kinds and "bad_instrument".
BOOKSET_ERROR_KINDS: tuple[str, ...] = _impl.BOOKSET_ERROR_KINDS
#: True when the compiled L3 book is in use.
COMPILED: bool = _impl.COMPILED

__all__ = [
    "BOOKSET_ERROR_KINDS",
    "BYTES_PER_LEVEL",
    "BYTES_PER_ORDER",
    "COMPILED",
    "ERROR_KINDS",
    "BookSet",
    "OrderBook",
]
