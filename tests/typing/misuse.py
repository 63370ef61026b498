"""Calls a type checker must refuse: ``tests/test_typing.py`` expects exactly the errors
marked ``# E: <code>`` (were the names ``Any``, mypy would report none of them)."""

from __future__ import annotations

import fastbook as fb
from fastbook.events import empty_events

book = fb.Book(price_decimals=2, qty_decimals=0)
book.set(side=fb.BID, price=10_000, qty=5)  # E: call-arg
book.set(fb.BID, "100.00", 5)  # E: arg-type
book.apply()  # E: call-arg
best: tuple[int, int] = book.best_bid()  # E: assignment
fb.Book(price_decimals=2)  # E: call-arg
fb.Book(2, 0)  # E: call-arg

ob = fb.OrderBook(price_decimals=4)
ob.add(1, fb.BID, 5_859_100)  # E: call-arg
ob.execute(1, 5, fb.BID)  # E: call-arg
ob.delete(order_id=1)  # E: call-arg
count: str = ob.order_count  # E: assignment

books = fb.BookSet(on_error="ignore")  # E: arg-type
books.add_instrument("AAPL", price_decimals=4, kind="l4")  # E: arg-type
books.apply(events=empty_events(1))  # E: call-arg
books.apply(empty_events(1), sampler=fb.Book)  # E: arg-type

fb.Sampler(2, every="1")  # E: arg-type
fb.replay(b"", "itch50", depth="2")  # E: call-overload
