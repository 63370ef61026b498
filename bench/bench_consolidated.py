"""Consolidated cross-venue view: BBO recompute and the arbitrage check, compiled vs twin.

Rows (ns per call, best of ``FASTBOOK_BENCH_CONSOL_REPEATS`` rounds, all in this process),
each on 8 venues of BTC/USDT with different price and quantity decimals (one in
contracts), 20 levels a side each, quoting around one mid:

* ``Book.set alone``: the change that precedes each update below (its cost is subtracted).
* ``update, BBO changed``: ``book.set`` at venue k's best bid (a new size) then
  ``view.update(k, now)``, k cycling over the venues, minus ``Book.set alone``: what one
  venue's BBO change costs the view (issue 19 target: <= 200 ns compiled). Every venue
  quotes the same best bid, so every one of these updates changes the consolidated BBO
  and records a change event (the worst case).
* ``update, no change``: ``view.update(k, now)`` on an unchanged book (a message below the top).
* ``arbitrage, no crossing``: ``view.arbitrage(now)`` when the consolidated book does not
  cross (target <= 100 ns compiled).
* ``arbitrage, 2+ crossing``: one venue's 5 best bids above the asks of several others
  (those whose fees leave a profit): one walk per profitable pair, then the exact totals.

Each compiled row's ratio is against the twin's same row measured in the same run. No figure
is asserted. ``python bench/bench_consolidated.py`` prints the table; the pytest run too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import fastbook as fb
from fastbook import _pyconsol, _pycore
from fastbook.codecs._l2feed import Instrument

try:
    from fastbook import _consol
except ImportError:  # pragma: no cover - a build without the extension
    _consol = None  # type: ignore[assignment]

CALLS = int(os.environ.get("FASTBOOK_BENCH_CONSOL_CALLS", "100000"))
REPEATS = int(os.environ.get("FASTBOOK_BENCH_CONSOL_REPEATS", "5"))
#: (venue id, price decimals, qty decimals, contract size)
VENUES = [("binance-spot", 2, 5, None), ("coinbase-exchange", 2, 8, None),
          ("kraken-v2", 1, 8, None), ("okx", 1, 8, None), ("bybit", 2, 6, None),
          ("okx", 1, 0, "0.01"),
          ("binance-usdm", 1, 3, None), ("bybit", 2, 3, None)]


def _best(fn: Callable[[], None], n: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - t) / n)
    return best


def _books(book_class: Any) -> list[tuple[Any, Instrument]]:
    out = []
    for k, (vid, pd, qd, cs) in enumerate(VENUES):
        book = book_class(price_decimals=pd, qty_decimals=qd)
        mid = 100_000 * 10**pd            # 100000.0 at the venue's scale
        tick = 10 ** max(pd - 1, 0)       # 0.1
        for i in range(20):
            book.set(fb.BID, mid - (1 + i) * tick, 10**qd + i)      # all at the best bid
            book.set(fb.ASK, mid + (1 + i + k % 3) * tick, 10**qd + i)
        kind = "spot" if cs is None else "perpetual"
        sym = "BTC/USDT" if cs is None else "BTC/USDT:USDT"
        out.append((book, Instrument(vid, f"V{k}", sym, pd, qd, kind=kind, contract_size=cs,
                                     contract_unit="BTC" if cs else "")))
    return out


def measure_one(mod: Any, book_class: Any) -> dict[str, float]:
    books = _books(book_class)
    view = mod.Consolidated("BTC/USDT", [(f"v{k}", b, inst, 10**12)
                                         for k, (b, inst) in enumerate(books)],
                            record_events=True)
    for k in range(len(books)):
        view.update(k, 1)
    n = len(books)
    bests = [b.best_bid() for b, _ in books]
    plan = [(k % n, books[k % n][0], bests[k % n][0], bests[k % n][1] + 1 + (k // n) % 2)
            for k in range(CALLS)]
    rows: dict[str, float] = {}

    def set_alone() -> None:
        for _, book, price, qty in plan:
            book.set(1, price, qty)

    def set_update() -> None:
        update = view.update
        for now, (k, book, price, qty) in enumerate(plan, 2):
            book.set(1, price, qty)
            update(k, now)

    def update_same() -> None:
        update = view.update
        for now, (k, _, _, _) in enumerate(plan, 2):
            update(k, now)

    def arb_none() -> None:
        arb = view.arbitrage
        for now in range(2, CALLS + 2):
            arb(now)

    rows["Book.set alone"] = _best(set_alone, CALLS)
    rows["update, BBO changed"] = _best(set_update, CALLS) - rows["Book.set alone"]
    changed = view.stats()["changes"]
    assert changed >= REPEATS * CALLS, changed  # every update above changed the BBO
    view.take_events()
    rows["update, no change"] = _best(update_same, CALLS)
    assert not view.arbitrage(0)
    rows["arbitrage, no crossing"] = _best(arb_none, CALLS)
    # venue 0 (binance-spot, 2 decimals) moves up 300.00: its 5 best bids cross the asks of
    # the venues whose fees leave a profit
    b0, _ = books[0]
    b0.clear()
    for i in range(5):
        b0.set(fb.BID, 100_300_00 - i * 10, 10**5)
        b0.set(fb.ASK, 100_400_00 + i * 10, 10**5)
    view.update(0, CALLS + 3)
    assert len(view.arbitrage(CALLS + 3)) >= 2
    calls = max(CALLS // 20, 1)

    def arb_cross() -> None:
        arb = view.arbitrage
        for now in range(calls):
            arb(CALLS + 3 + now)

    rows["arbitrage, 2+ crossing"] = _best(arb_cross, calls)
    return rows


def measure() -> dict[str, dict[str, float]]:
    out = {"twin": measure_one(_pyconsol, _pycore.Book)}
    if _consol is not None:
        out["compiled"] = measure_one(_consol, fb.Book if fb.COMPILED else _pycore.Book)
    return out


def table(res: dict[str, dict[str, float]]) -> str:
    lines = [f"{'row (8 venues)':<26}{'compiled ns':>12}{'twin ns':>12}{'ratio':>9}"
             "   (ratio: compiled / twin, same run)"]
    for name, t in res["twin"].items():
        c = res.get("compiled", {}).get(name, float("nan"))
        lines.append(f"{name:<26}{c:>12.1f}{t:>12.1f}{c / t:>9.4f}")
    return "\n".join(lines)


def test_consolidated_cost(capsys) -> None:  # type: ignore[no-untyped-def]
    res = measure()
    with capsys.disabled():
        print("\n" + table(res))
    assert all(ns > 0 for rows in res.values() for name, ns in rows.items()
               if name != "update, BBO changed")


if __name__ == "__main__":
    print(table(measure()))
