"""Helpers for the quote-server tests: a bounded asyncio runner, the capture, an oracle."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import numpy as np
import pytest

from tests.helpers import DATA

pytest.importorskip("websockets")

COINBASE = DATA / "l2" / "cryptofeed" / "COINBASE.ws.28.0.gz"
SYMBOLS = ["SKL-USD", "BAND-BTC", "DASH-BTC"]
NAMES = [f"coinbase-exchange:{s}" for s in SYMBOLS]


def run(coro: Any, timeout: float = 30.0) -> Any:
    """Run ``coro`` on a new loop, failing (not hanging) after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@functools.cache
def oracle(symbol: str, depth: int = 10) -> list[tuple[str, list[list[int]], list[list[int]]]]:
    """What the server must publish for ``symbol`` of the Coinbase capture, in order.

    Computed straight from the codec's book, without the server: ``syncing``
    with no levels, then ``(state, bids, asks)`` each time the state or the
    top ``depth`` levels change after a message. Cached: tests must not change it.
    """
    from fastbook import capture, codecs
    from fastbook.codecs._l2feed import SyncState

    feed = codecs.load("coinbase-exchange")(on_error="skip", symbols=[symbol])
    out: list[tuple[str, list[list[int]], list[list[int]]]] = [("syncing", [], [])]
    for _t, kind, _c, _u, payload, *_ in capture.merge_raw([COINBASE]):
        if kind != capture.RECEIVED:
            continue
        feed.feed(payload, 0)
        if symbol not in feed.symbols:
            continue
        s = feed.symbol_state(symbol)
        if s.state != SyncState.SYNCED:
            state = "resyncing" if s.state == SyncState.RESYNC else "syncing"
            entry: tuple[str, list[list[int]], list[list[int]]] = (state, [], [])
        else:
            top = s.book.top(depth)
            nb, na = int(np.count_nonzero(top[1])), int(np.count_nonzero(top[3]))
            entry = ("live", top[0:2, :nb].T.tolist(), top[2:4, :na].T.tolist())
        if entry != out[-1]:
            out.append(entry)
    return out
