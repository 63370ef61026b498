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

from typing import TYPE_CHECKING

from fastbook import _select

if TYPE_CHECKING:
    # What type checkers see (see fastbook/__init__.py): the compiled module's stubs.
    from fastbook._l3 import (
        BOOKSET_ERROR_KINDS,
        BYTES_PER_LEVEL,
        BYTES_PER_ORDER,
        ERROR_KINDS,
        BookSet,
        OrderBook,
    )
else:
    # (the constants are described in _l3.pyi: BYTES_PER_ORDER and BYTES_PER_LEVEL per
    # order slot and level slot, ERROR_KINDS and BOOKSET_ERROR_KINDS the skip counters)
    _select.export(globals(), "_l3", "_pyl3", "L3 book", (
        "BOOKSET_ERROR_KINDS", "BYTES_PER_LEVEL", "BYTES_PER_ORDER", "ERROR_KINDS", "BookSet",
        "OrderBook"))

#: True when the compiled L3 book is in use (what ``fastbook._select`` chose).
COMPILED: bool = _select.compiled("_l3")

__all__ = [
    "BOOKSET_ERROR_KINDS",
    "BYTES_PER_LEVEL",
    "BYTES_PER_ORDER",
    "COMPILED",
    "ERROR_KINDS",
    "BookSet",
    "OrderBook",
]
