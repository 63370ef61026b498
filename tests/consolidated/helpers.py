"""Random venue books and a plain Decimal reference for the consolidated view's tests.

The reference merges every level of every book in ``Decimal`` (no fixed point, no
shortcuts): what the consolidated BBO, depth and arbitrage walk must equal exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import fastbook as fb
from fastbook.codecs._l2feed import Instrument
from tests.helpers.impls import compiled, pair

CONSOL = pair(__import__("fastbook._pyconsol", fromlist=["x"]), compiled("fastbook._consol"))


@dataclass
class V:
    """One venue of a test: its book, instrument and what the reference needs."""

    name: str
    book: Any
    inst: Instrument
    fee: Decimal
    stale_ns: int = 10**9
    live: bool = True
    last: int | None = None
    cs: Decimal = field(default=Decimal(1))

    def levels(self, side: int) -> list[tuple[Decimal, Decimal]]:
        """Every level of ``side``, best first, as exact (price, base qty) Decimals."""
        prices, qtys = self.book.to_arrays(side)
        pd, qd = self.inst.price_decimals, self.inst.qty_decimals
        return [(Decimal(int(p)).scaleb(-pd), Decimal(int(q)).scaleb(-qd) * self.cs)
                for p, q in zip(prices.tolist(), qtys.tolist(), strict=True)]


def venue(name: str, pd: int, qd: int, *, venue_id: str = "binance-spot",
          symbol: str = "BTC/USDT", contract_size: str | None = None, fee: str = "0.001",
          stale_ns: int = 10**9, book_class: Any = None) -> V:
    book = (book_class or fb.Book)(price_decimals=pd, qty_decimals=qd)
    inst = Instrument(venue_id, name.upper(), symbol, pd, qd, contract_size=contract_size,
                      contract_unit="BTC" if contract_size else "")
    cs = Decimal(contract_size) if contract_size else Decimal(1)
    return V(name, book, inst, Decimal(fee), stale_ns, cs=cs)


def specs(vs: list[V]) -> list[tuple[Any, ...]]:
    return [(v.name, v.book, v.inst, v.stale_ns, str(v.fee)) for v in vs]


def included(vs: list[V], now: int) -> list[int]:
    """Indices of the venues the reference puts in the view at ``now``."""
    out = []
    for i, v in enumerate(vs):
        if v.last is None or not v.live:
            continue
        b, a = v.levels(fb.BID), v.levels(fb.ASK)
        if not b and not a:
            continue
        if b and a and b[0][0] >= a[0][0]:
            continue
        if now - v.last > v.stale_ns:
            continue
        out.append(i)
    return out


def ref_bbo(vs: list[V], now: int) -> tuple[Any, ...]:
    """(bid, bid qty, bid venues, ask, ask qty, ask venues) in Decimal (None, None, () for
    an empty side)."""
    out: list[Any] = []
    for side, better in ((fb.BID, max), (fb.ASK, min)):
        tops = [(vs[i].levels(side)[0], vs[i].name) for i in included(vs, now)
                if vs[i].levels(side)]
        if not tops:
            out += [None, None, ()]
            continue
        best = better(t[0][0] for t in tops)
        out += [best, sum((t[0][1] for t in tops if t[0][0] == best), Decimal(0)),
                tuple(t[1] for t in tops if t[0][0] == best)]
    return tuple(out)


def as_decimal(view: Any, bbo: tuple[Any, ...]) -> tuple[Any, ...]:
    """A view's ``bbo()`` with prices and quantities as Decimals."""
    p, q = view.price_decimals, view.qty_decimals
    b, bq, bv, a, aq, av = bbo
    return (None if b is None else Decimal(b).scaleb(-p),
            None if bq is None else Decimal(bq).scaleb(-q), bv,
            None if a is None else Decimal(a).scaleb(-p),
            None if aq is None else Decimal(aq).scaleb(-q), av)


def ref_depth(vs: list[V], now: int, n: int) -> tuple[list[Any], list[Any]]:
    """Merged (price, total qty, per-venue qtys) per side, best first, top ``n``."""
    ins = included(vs, now)
    sides = []
    for side in (fb.BID, fb.ASK):
        merged: dict[Decimal, list[Decimal]] = {}
        for i in ins:
            for price, qty in vs[i].levels(side)[:n]:
                merged.setdefault(price, [Decimal(0)] * len(vs))[i] += qty
        prices = sorted(merged, reverse=(side == fb.BID))[:n]
        sides.append([(x, sum(merged[x]), merged[x]) for x in prices])
    return sides[0], sides[1]


def ref_walk(sell: V, buy: V, fixed: Decimal = Decimal(0)) -> tuple[Decimal, Decimal]:
    """(qty, profit) of selling into ``sell``'s bids and buying ``buy``'s asks while each
    unit gains after both taker fees; profit net of ``fixed``."""
    bids = [[p, q] for p, q in sell.levels(fb.BID)]
    asks = [[p, q] for p, q in buy.levels(fb.ASK)]
    qty = profit = Decimal(0)
    i = j = 0
    while i < len(bids) and j < len(asks):
        gain = bids[i][0] * (1 - sell.fee) - asks[j][0] * (1 + buy.fee)
        if gain <= 0:
            break
        q = min(bids[i][1], asks[j][1])
        qty += q
        profit += q * gain
        bids[i][1] -= q
        asks[j][1] -= q
        if bids[i][1] == 0:
            i += 1
        if asks[j][1] == 0:
            j += 1
    return qty, profit - fixed
