"""The plain reference of the backtester's exact L3 queue (``backtest(..., reference=True)``).

The engine keeps, for each own order, the ids of the real orders that were ahead of
it at its arrival (``backtest._L3Queue``). This reference does the obvious thing
instead: a shadow book (the pure-Python ``OrderBook`` twin) holds every real order
*and* the own orders, and an execution of a real order fills the own orders that
rank ahead of it in that book (``OrderBook.rank``: price-time priority). The two
share nothing but the event stream; ``tests/test_backtest.py`` checks that they give
the same fills, order for order.
"""

from __future__ import annotations

from typing import Any

from fastbook._pyl3 import OrderBook
from fastbook._vocab import ASK, BID, Action, Flags

_ADD, _REDUCE, _EXECUTE = int(Action.ADD), int(Action.REDUCE), int(Action.EXECUTE)
_DELETE, _REPLACE = int(Action.DELETE), int(Action.REPLACE)
_KEEP = int(Flags.KEEP_PRIORITY)
# own orders' ids in the shadow book (real ids of the codecs stay far below)
_OWN = 1 << 63


class ShadowQueue:
    """The reference queue: a shadow book holding one unit per order, real and own, so that
    its ranks are the price-time priority and no level can overflow."""

    kind = "l3"

    def __init__(self, meta: Any, book: Any) -> None:
        self.meta = meta
        self.shadow = self._copy(book)

    def _copy(self, book: Any) -> OrderBook:
        # side-keyed like the real book (J-GATE ids are unique per side only)
        shadow = OrderBook(price_decimals=self.meta["price_decimals"],
                           qty_decimals=self.meta["qty_decimals"], side_keys=book.side_keys)
        orders = book.orders()
        for rec in orders.tolist():
            r = dict(zip(orders.dtype.names or (), rec, strict=True))
            shadow.add(r["order_id"], r["side"], r["price"], 1)
        return shadow

    def place(self, o: Any, book: Any) -> None:
        self.shadow.add(_OWN + o.id, o.side, o.price, 1)

    def remove(self, o: Any) -> None:
        if self.shadow.order(_OWN + o.id, side=o.side) is not None:
            self.shadow.delete(_OWN + o.id, side=o.side)

    def reduce(self, o: Any, qty: int) -> None:
        pass        # the place is kept; sizes live in the orders

    def filled(self, o: Any, qty: int) -> None:
        pass        # the engine removes the order when it is filled

    def _ranked(self, side: int) -> list[tuple[int, int]]:
        return sorted((self.shadow.rank(oid, side=side) or 0, oid)
                      for oid in self._own_ids(side))

    def _own_ids(self, side: int) -> list[int]:
        return [int(r[0]) for r in self.shadow.orders()[["order_id", "side"]].tolist()
                if r[0] >= _OWN and r[1] == side]

    def event(self, book: Any, row: tuple[Any, ...], found: Any, old: int,
              own: list[Any]) -> list[tuple[Any, int]]:
        """The event ``row``, just applied to the real book; ``found`` is the (side,
        price, remaining) its order had there before it."""
        shadow = self.shadow
        by_id = {_OWN + o.id: o for o in own}
        action, side, price, qty, oid, new_id, flags = (row[3], row[4], row[6], row[7],
                                                       row[8], row[9], row[5])
        fills: list[tuple[Any, int]] = []

        def crossing(at_side: int, at_price: int, volume: int) -> None:
            other = ASK if at_side == BID else BID
            for _, key in self._ranked(other):
                o = by_id[key]
                meets = at_price <= o.price if other == BID else at_price >= o.price
                if volume <= 0 or not meets:
                    continue
                take = min(o.remaining, volume)
                fills.append((o, take))
                volume -= take

        if action == _ADD:
            crossing(side, price, qty)
            shadow.add(oid, side, price, 1)
            return fills
        if found is None or action not in (_EXECUTE, _REDUCE, _DELETE, _REPLACE):
            return fills
        fside, fprice, fqty = found
        if action == _EXECUTE:
            rank = shadow.rank(oid, side=fside)
            assert rank is not None, "the shadow book lost a real order"
            volume = qty
            for r, key in self._ranked(fside):
                if r < rank and volume > 0:
                    o = by_id[key]
                    take = min(o.remaining, volume)
                    fills.append((o, take))
                    volume -= take
        if action == _DELETE or (action in (_EXECUTE, _REDUCE) and qty >= fqty):
            shadow.delete(oid, side=fside)
        elif action == _REPLACE:
            if not (flags & _KEEP and new_id == oid and price == fprice and qty <= fqty):
                shadow.replace(oid, new_id, 1, price, side=fside)    # to the back
            crossing(fside, price, qty)
        return fills

    def rebuild(self, book: Any, own: list[Any]) -> None:
        """After a snapshot: the real book again, the own orders at the back."""
        self.shadow = self._copy(book)
        for o in sorted(own, key=lambda o: o.seq):
            self.shadow.add(_OWN + o.id, o.side, o.price, 1)
