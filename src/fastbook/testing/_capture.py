"""Replay sources: the real Binance captures of ``tests/data/l2/cryptofeed``.

A replayed symbol's truth starts from the capture's REST snapshot and its stream is the
capture's depth updates after that snapshot, with their own ``U``/``u``/``pu`` ids.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

__all__ = ["CAPTURES", "CAPTURE_DECIMALS", "Replay", "fixed_levels", "load_binance", "parse_fixed"]

#: Binance texts carry 8 decimals for prices and quantities.
CAPTURE_DECIMALS = (8, 8)
#: venue -> capture file stem in tests/data/l2/cryptofeed
CAPTURES = {"binance-spot": "BINANCE", "binance-usdm": "BINANCE_FUTURES",
            "binance-coinm": "BINANCE_DELIVERY"}

#: (U, u, pu, bids, asks) with levels as (price, qty) integers at CAPTURE_DECIMALS
Replay = tuple[int, int, int, list[tuple[int, int]], list[tuple[int, int]]]


def parse_fixed(text: str, decimals: int) -> int:
    """Decimal text as an integer at ``decimals`` (ValueError for more digits or non-numbers)."""
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or frac[decimals:].strip("0"):
        raise ValueError(f"not a decimal with at most {decimals} places: {text!r}")
    scale: int = 10 ** decimals
    return int(whole) * scale + int(frac[:decimals].ljust(decimals, "0") or "0")


def fixed_levels(raw: Any) -> list[tuple[int, int]]:
    pd, qd = CAPTURE_DECIMALS
    return [(parse_fixed(p, pd), parse_fixed(q, qd)) for p, q in raw]


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def load_binance(venue: str, symbols: list[str], root: Path) -> dict[str, tuple[dict[str, Any],
                                                                                list[Replay]]]:
    """Per symbol: (the first REST snapshot, the depth updates after it) from the capture."""
    stem = CAPTURES[venue]
    snaps: dict[str, dict[str, Any]] = {}
    present: set[str] = set()
    for line in _lines(root / f"{stem}.http.0.0.gz"):
        url, _, rest = line.partition(" -> ")
        sym = url.split("symbol=")[-1].split("&")[0]
        present.add(sym)
        if sym in symbols and sym not in snaps and "depth" in url:
            snaps[sym] = json.loads(rest.split(": ", 1)[1])
    missing = [s for s in symbols if s not in snaps]
    if missing:
        raise ValueError(f"source='capture': {venue} capture {stem} has no snapshot of "
                         f"{missing} (it has {sorted(present)})")
    futures = venue != "binance-spot"
    updates: dict[str, list[Replay]] = {s: [] for s in symbols}
    for line in _lines(root / f"{stem}.ws.1.0.gz")[1:]:
        head, sep, body = line.partition(": ")
        if not sep or " <- " in head:
            continue
        msg = json.loads(body)
        data = msg.get("data", msg)
        if not isinstance(data, dict) or data.get("e") != "depthUpdate" or \
                data.get("s") not in updates:
            continue
        sym = data["s"]
        last = snaps[sym]["lastUpdateId"]
        if data["u"] < last or (not futures and data["u"] == last):
            continue                        # already in the snapshot
        updates[sym].append((data["U"], data["u"], data.get("pu", -1),
                             fixed_levels(data["b"]), fixed_levels(data["a"])))
    return {s: (snaps[s], updates[s]) for s in symbols}
