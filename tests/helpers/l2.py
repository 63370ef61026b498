"""L2 venue messages as the venues document them, and the books their events rebuild.

One builder per message shape the venue tests hand-build (Binance depth and REST
snapshot, Bybit orderbook, Coinbase Exchange and Advanced Trade, OKX books), with the
defaults those tests use; and :func:`feed_bookset`, the check every venue test makes
that the events a feed recorded rebuild its books in a BookSet.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

import fastbook

BID, ASK = 1, 2


# -- Binance ---------------------------------------------------------------------------------

def depth(symbol: str, U: int, u: int, bids: Any = (), asks: Any = (), pu: int | None = None,
          E: int = 1_700_000_000_000, combined: bool = True) -> bytes:
    """A diff-depth ``depthUpdate`` (futures ones carry ``pu``), in a combined stream."""
    d: dict[str, Any] = {"e": "depthUpdate", "E": E, "s": symbol, "U": U, "u": u}
    if pu is not None:
        d["pu"] = pu
    d["b"] = [list(x) for x in bids]
    d["a"] = [list(x) for x in asks]
    msg = {"stream": symbol.lower() + "@depth@100ms", "data": d} if combined else d
    return json.dumps(msg).encode()


def rest(last: int, bids: Any, asks: Any, **extra: Any) -> bytes:
    """A REST depth snapshot (``lastUpdateId``)."""
    return json.dumps({"lastUpdateId": last, **extra, "bids": [list(x) for x in bids],
                       "asks": [list(x) for x in asks]}).encode()


# -- Bybit -----------------------------------------------------------------------------------

BYBIT_TS = 1672304484978


def bybit_msg(kind: str, u: int, bids: Any = (), asks: Any = (), symbol: str = "BTCUSDT",
              depth: int = 50, ts: int = BYBIT_TS, cts: int | None = BYBIT_TS - 2,
              seq: int = 7961638724, topic_symbol: str | None = None) -> bytes:
    """An ``orderbook.<depth>.<symbol>`` push: ``kind`` snapshot or delta."""
    d: dict[str, Any] = {"topic": f"orderbook.{depth}.{topic_symbol or symbol}", "type": kind,
                         "ts": ts,
                         "data": {"s": symbol, "b": [list(b) for b in bids],
                                  "a": [list(a) for a in asks], "u": u, "seq": seq}}
    if cts is not None:
        d["cts"] = cts
    return json.dumps(d).encode()


# -- Coinbase --------------------------------------------------------------------------------

def snap(product: str = "BTC-USD", bids: Any = (("100.00", "1"),),
         asks: Any = (("100.50", "2"),)) -> bytes:
    """Coinbase Exchange ``level2`` snapshot."""
    return json.dumps({"type": "snapshot", "product_id": product, "bids": [list(b) for b in bids],
                       "asks": [list(a) for a in asks]}).encode()


def l2u(changes: Any, product: str = "BTC-USD",
        time: str | None = "2021-04-17T16:43:37.075687Z") -> bytes:
    """Coinbase Exchange ``l2update`` of ``changes`` (side, price, size)."""
    d: dict[str, Any] = {"type": "l2update", "product_id": product,
                         "changes": [list(c) for c in changes]}
    if time is not None:
        d["time"] = time
    return json.dumps(d).encode()


def adv(seq: int, events: Any, ts: str = "2023-02-09T20:32:50.714964855Z",
        channel: str = "l2_data") -> bytes:
    """A Coinbase Advanced Trade message of ``events`` (see :func:`adv_event`)."""
    return json.dumps({"channel": channel, "client_id": "", "timestamp": ts,
                       "sequence_num": seq, "events": events}).encode()


def adv_event(kind: str, product: str, *ups: tuple[str, str, str]) -> dict[str, Any]:
    """One ``l2_data`` event: ``kind`` snapshot or update, ``ups`` (side, price, qty)."""
    t = "1970-01-01T00:00:00Z" if kind == "snapshot" else "2023-02-09T20:32:50.01Z"
    return {"type": kind, "product_id": product,
            "updates": [{"side": s, "event_time": t, "price_level": p, "new_quantity": q}
                        for s, p, q in ups]}


def heartbeat(seq: int) -> bytes:
    """A Coinbase Advanced Trade ``heartbeats`` message."""
    return json.dumps({"channel": "heartbeats", "client_id": "", "sequence_num": seq,
                       "timestamp": "2023-02-09T20:32:51Z",
                       "events": [{"current_time": "x", "heartbeat_counter": seq}]}).encode()


# -- OKX -------------------------------------------------------------------------------------

def push(action: str, seq: int | None, prev: int | None, bids: list[list[str]] = (),
         asks: list[list[str]] = (), checksum: int | None = None, inst: str = "BTC-USDT",
         ts: str = "1700000000000") -> str:
    """A ``books`` channel push: ``action`` snapshot or update, with seqId/prevSeqId."""
    d: dict[str, Any] = {"asks": [list(x) for x in asks], "bids": [list(x) for x in bids],
                         "ts": ts}
    if seq is not None:
        d["seqId"], d["prevSeqId"] = seq, prev
    if checksum is not None:
        d["checksum"] = checksum
    return json.dumps({"arg": {"channel": "books", "instId": inst}, "action": action,
                       "data": [d]})


# -- the books a feed's events rebuild -----------------------------------------------------

def book_levels(book: Any, side: int) -> list[tuple[int, int]]:
    """``(price, qty)`` of every level on ``side``, best first."""
    prices, qtys = book.to_arrays(side)
    return list(zip(prices.tolist(), qtys.tolist(), strict=True))


def feed_bookset(feed: Any, events: np.ndarray) -> Any:
    """A BookSet with an L2 book per symbol of ``feed`` (at its instruments' scales),
    ``events`` applied."""
    bs = fastbook.BookSet()
    for native in feed.symbols:
        inst = feed.symbol_state(native).instrument
        bs.add_instrument(native, kind="l2", venue=feed.venue,
                          price_decimals=inst.price_decimals, qty_decimals=inst.qty_decimals)
    bs.apply(events)
    return bs


def assert_replay_equals_feed(feed: Any, events: np.ndarray) -> None:
    """Replaying the recorded events through a BookSet of L2 books gives the feed's books."""
    books = feed_bookset(feed, events)
    for i, native in enumerate(feed.symbols):
        for side in (BID, ASK):
            assert book_levels(books[i], side) == book_levels(feed.book(native), side), native
