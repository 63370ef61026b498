"""Format codecs: each turns one wire or file format into book updates.

A codec is a pure-Python module that is complete and readable on its own (the
reference twin); where per-message Python work would cap throughput it hands
whole buffers to a compiled kernel beside it. Codecs own format knowledge
(message layouts, instrument directories, price scales, sequencing and checksum
rules); sources own bytes; the core owns book state.

Replay codecs come in two kinds, both usable as ``fastbook.replay(..., codec=)``:

* **stream** codecs read a byte stream (NASDAQ ITCH 5.0: ``"itch50"``): a
  module with a streaming ``Decoder``;
* **L2 feed** codecs read captures of raw exchange messages (see
  :mod:`fastbook.capture`): an :class:`~fastbook.codecs._l2feed.L2Feed`
  subclass per venue, named by its ``venue`` (``"binance-spot"``,
  ``"kraken-v1"``, ``"okx"``...), in the module of its exchange.

Both kinds are named in a registry here (:data:`STREAM_CODECS`, :data:`L2_FEEDS`);
``available()`` lists the replay codecs installed in this version; ``load(name)``
returns a stream codec's module or an L2 feed's class; ``kind(name)`` says which.
The other modules are formats without a replay (``lobster``, read and written
from events; ``instruments``, venues' instrument metadata) and the venue
machinery the feeds share.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__all__ = ["L2_FEEDS", "STREAM_CODECS", "available", "kind", "load"]

#: Byte-stream codec names and the module of ``fastbook.codecs`` that defines each (a
#: module with a streaming ``Decoder``, see :class:`fastbook.driver.StreamRun`).
STREAM_CODECS: dict[str, str] = {
    "itch50": "itch50",
    "ose_itch": "ose_itch",
    "jpx_csv": "jpx_csv",
}

#: L2 feed codec names and the module of ``fastbook.codecs`` that defines each.
L2_FEEDS: dict[str, str] = {
    "binance-spot": "binance",
    "binance-us": "binance",
    "binance-usdm": "binance",
    "binance-coinm": "binance",
    "coinbase-advanced": "coinbase",
    "coinbase-exchange": "coinbase",
    "kraken-v1": "kraken",
    "kraken-v2": "kraken",
    "okx": "okx",
    "bybit": "bybit",
}


def _exists(module: str) -> bool:
    return importlib.util.find_spec(f"{__name__}.{module}") is not None


def _feed_class(name: str, module: Any) -> Any:
    """The L2Feed subclass of ``module`` whose ``venue`` is ``name``, or None."""
    from fastbook.codecs._l2feed import L2Feed

    explicit = getattr(module, "FEEDS", None)
    if isinstance(explicit, dict) and name in explicit:
        return explicit[name]
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, L2Feed) and obj is not L2Feed
             and getattr(obj, "venue", None) == name]
    # a subclass that only specialises another keeps its venue: take the most derived one
    found = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    if len(found) > 1:
        raise ValueError(f"codec {name!r}: {module.__name__} defines several feed classes "
                         f"for it ({', '.join(c.__name__ for c in found)}); give it a FEEDS "
                         f"dict")
    return found[0] if found else None


def _resolve(name: str) -> Any:
    """The installed codec ``name`` (an L2 feed's class, a stream codec's module), or None.

    An ImportError of the codec's module propagates (``available`` passes over it).
    """
    if name in L2_FEEDS:
        module = L2_FEEDS[name]
    elif name in STREAM_CODECS:
        module = STREAM_CODECS[name]
    else:
        return None
    if not _exists(module):
        return None
    found = importlib.import_module(f"{__name__}.{module}")
    if name in L2_FEEDS:
        return _feed_class(name, found)
    return found if hasattr(found, "Decoder") else None


def available() -> list[str]:
    """Names of the replay codecs installed in this version, sorted."""
    names = []
    for name in (*L2_FEEDS, *STREAM_CODECS):
        try:
            if _resolve(name) is not None:
                names.append(name)
        except ImportError:
            pass
    return sorted(names)


def kind(name: str) -> str:
    """``"l2"`` for an L2 feed codec, ``"stream"`` for a byte-stream codec.

    Raises ValueError listing the choices if ``name`` is not a replay codec.
    """
    load(name)
    return "l2" if name in L2_FEEDS else "stream"


def load(name: str):  # type: ignore[no-untyped-def]
    """A stream codec's module, or an L2 feed codec's class.

    Raises ValueError listing the choices if ``name`` is not an installed replay codec.
    """
    if not isinstance(name, str):
        raise TypeError(f"codec must be a str, got {type(name).__name__}")
    found = _resolve(name)
    if found is None:
        raise ValueError(f"unknown codec {name!r}; available: "
                         f"{', '.join(available()) or 'none'}")
    return found
