"""A user's script: what a type checker sees through ``import fastbook``.

``tests/test_typing.py`` type-checks it with ``mypy --strict`` (the configuration in
``pyproject.toml``) and then runs it. Every ``assert_type`` fails the check if the
name it looks at were ``Any`` (mypy wants the exact type), so a clean run proves the
stubs of the compiled core reach users: ``fb.Book``, ``fb.OrderBook``,
``fb.BookSet``, ``fb.Sampler`` and ``fb.replay`` (both of its results) have their real
types.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from typing_extensions import assert_type

import fastbook as fb
from fastbook import l3
from fastbook.events import Action, empty_events
from fastbook.synth import itch_day


def l2_book() -> None:
    book = fb.Book(price_decimals=2, qty_decimals=0, capacity=16)
    assert_type(book, fb.Book)
    assert_type(book.set(fb.BID, 10_000, 5), bool)
    assert_type(book.set_str(fb.ASK, "100.25", "3"), bool)
    assert_type(book.best_bid(), tuple[int, int] | None)
    assert_type(book.bbo(), tuple[int | None, int | None, int | None, int | None])
    assert_type(book.top(2), npt.NDArray[np.int64])
    assert_type(book.levels(fb.BID), Iterator[tuple[int, int]])
    assert_type(book.copy(), fb.Book)
    assert_type(fb.parse_decimal("27431.50", 2), int)
    assert_type(fb.format_decimal(2743150, 2, strip=True), str)
    assert_type(fb.COMPILED, bool)
    assert book.bbo() == (10_000, 5, 10_025, 3)


def l3_book() -> None:
    ob = fb.OrderBook(price_decimals=4, on_error="skip")
    assert_type(ob, fb.OrderBook)
    assert_type(ob.add(7, fb.ASK, 5_859_100, 18), bool)
    assert_type(ob.execute(7, 8), bool)
    assert_type(ob.order(7), tuple[int, int, int] | None)
    assert_type(ob.queue_position(7), tuple[int, int] | None)
    assert_type(ob.orders_at(fb.ASK, 5_859_100), list[tuple[int, int]])
    assert_type(ob.errors, dict[str, int])
    assert_type(l3.ERROR_KINDS, tuple[str, ...])
    assert ob.best_ask() == (5_859_100, 10)


def bookset() -> None:
    books = fb.BookSet()
    assert_type(books, fb.BookSet)
    aapl = books.add_instrument("AAPL", venue="XNAS", price_decimals=4)
    assert_type(aapl, int)
    assert_type(books[aapl], fb.OrderBook | fb.Book)
    assert_type(books.find("AAPL", "XNAS"), int)
    events = empty_events(2)
    events["instrument"] = aapl
    events["action"] = Action.ADD
    events["side"] = fb.BID
    events["price"] = [1_000_000, 1_000_100]
    events["qty"] = 100
    events["order_id"] = [1, 2]
    sampler = fb.Sampler(depth=2, every=1)
    assert_type(sampler, fb.Sampler)
    assert_type(books.apply(events, sampler=sampler), int)
    assert len(sampler) == 2
    book = books[aapl]
    assert isinstance(book, fb.OrderBook)
    assert book.best_bid() == (1_000_100, 100)


def replay() -> None:
    result = fb.replay(itch_day(2_000, n_symbols=2), "itch50", every="bbo", depth=2)
    assert_type(result, fb.ReplayResult)
    assert result.messages == 2_000
    assert_type(result.books, fb.BookSet)
    assert_type(result.book("SYM0001"), fb.Book | fb.OrderBook)
    assert_type(result.books.apply(empty_events(0)), int)
    featured = fb.replay(itch_day(2_000, n_symbols=2), every="bbo", trades=True,
                         features=["mid", "ofi_2", "trade_flow"])
    assert_type(featured, fb.ReplayResult)
    assert_type(featured.trades, dict[str, np.ndarray])
    assert len(featured.samples["ofi_l1"]) == len(featured.samples["ts"])


def consolidated_replay() -> None:
    from pathlib import Path

    capture = Path(__file__).resolve().parents[1] / "data/l2/cryptofeed/COINBASE.ws.28.0.gz"
    result = fb.replay([capture], consolidate=True)
    assert_type(result, fb.ConsolidatedResult)
    assert len(result.cbbo) > 0


if __name__ == "__main__":
    l2_book()
    l3_book()
    bookset()
    replay()
    consolidated_replay()
    print("ok")
