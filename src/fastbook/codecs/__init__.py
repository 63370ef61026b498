"""Format codecs: each turns one wire or file format into book updates.

A codec is a pure-Python module that is complete and readable on its own (the
reference twin); where per-message Python work would cap throughput it hands
whole buffers to a compiled kernel beside it. Codecs own format knowledge
(message layouts, instrument directories, price scales, sequencing and checksum
rules); sources own bytes; the core owns book state.

Codecs arrive with later releases (NASDAQ ITCH 5.0, Osaka J-GATE ITCH, LOBSTER,
and the Binance, Coinbase, Kraken, OKX and Bybit L2 feeds). ``available()``
lists the ones installed in this version.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["available", "load"]


def available() -> list[str]:
    """Names of the codec modules shipped in this version, sorted."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    )


def load(name: str):  # type: ignore[no-untyped-def]
    """Import the codec module ``name``; raise ValueError listing the choices if unknown."""
    if name not in available():
        raise ValueError(f"unknown codec {name!r}; available: {', '.join(available()) or 'none'}")
    return importlib.import_module(f"{__name__}.{name}")
