"""fastbook: exact, fast limit order books for Python.

Prices and quantities are ``int64`` fixed-point integers (value = integer /
10**decimals). The compiled Cython core is used by default; set
``FASTBOOK_NO_EXTENSIONS=1`` to use the pure-Python twin instead (slow, for
debugging and as the reference the tests compare against).

>>> import fastbook as fb
>>> book = fb.Book(price_decimals=2, qty_decimals=8)
>>> book.set_str(fb.BID, "27431.50", "0.25")
True
>>> book.best_bid()
(2743150, 25000000)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastbook import _select
from fastbook.errors import ArrayError, DecodeError, FastbookError, UpdateError

__version__ = "0.1.0.dev0"

if TYPE_CHECKING:
    # Type checkers (mypy and pyright alike) take this branch and never the other, so
    # they see the compiled core's stubs (_core.pyi) rather than a module chosen at run
    # time. The twin has the same API: tests compare the two classes' signatures.
    from fastbook._consol import Consolidated
    from fastbook._core import (
        ASK,
        BID,
        BYTES_PER_LEVEL,
        MAX_DECIMALS,
        Book,
        format_decimal,
        parse_decimal,
    )
else:
    _select.export(globals(), "_core", "_pycore", "core", (
        "ASK", "BID", "BYTES_PER_LEVEL", "MAX_DECIMALS", "Book", "format_decimal",
        "parse_decimal"))
    if _select.compiled("_core"):
        _select.export(globals(), "_consol", "_pyconsol", "consolidated view", ("Consolidated",))
    else:  # the compiled view cimports the compiled core: with the twin core, the twin view
        from fastbook._pyconsol import Consolidated

#: True when the compiled Cython core is in use (what ``fastbook._select`` chose).
COMPILED: bool = _select.compiled("_core")

from fastbook._consolrun import ConsolidatedResult  # noqa: E402
from fastbook.driver import ReplayResult, replay  # noqa: E402
from fastbook.l3 import BookSet, OrderBook  # noqa: E402  (after the core: it cimports it)
from fastbook.sampling import Sampler  # noqa: E402

__all__ = [
    "ASK",
    "BID",
    "BYTES_PER_LEVEL",
    "COMPILED",
    "MAX_DECIMALS",
    "ArrayError",
    "Book",
    "BookSet",
    "Consolidated",
    "ConsolidatedResult",
    "DecodeError",
    "FastbookError",
    "OrderBook",
    "ReplayResult",
    "Sampler",
    "UpdateError",
    "__version__",
    "format_decimal",
    "parse_decimal",
    "replay",
]

# The live driver is imported on first use: ``import fastbook`` stays free of asyncio
# and of the network extras.
_LAZY = {"LiveFeed": "fastbook.live", "QueueTracker": "fastbook.queue"}


def __getattr__(name: str) -> object:
    if name == "live":       # the package, which is callable: fb.live([...]) opens live books
        import importlib

        return importlib.import_module("fastbook.live")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastbook' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from fastbook.live import LiveFeed, live  # noqa: F401
    from fastbook.queue import QueueTracker  # noqa: F401
