"""The simulator's own truth book and its seeded random walk.

Deliberately independent of :class:`fastbook.Book`: plain dicts of integer
prices and quantities at a fixed scale, so a bug in fastbook's book or codecs
shows up as a difference instead of being mirrored by the simulator.
"""

from __future__ import annotations

import random
from decimal import Decimal

__all__ = ["SyntheticWalk", "TruthBook", "fmt"]


def fmt(value: int, decimals: int) -> str:
    """``value`` at ``decimals`` as fixed decimal text (``12345, 2 -> "123.45"``)."""
    if decimals == 0:
        return str(value)
    whole, frac = divmod(value, 10 ** decimals)
    return f"{whole}.{frac:0{decimals}d}"


class TruthBook:
    """One symbol's book as the venue holds it: ``{price: qty}`` per side at fixed scales."""

    def __init__(self, price_decimals: int, qty_decimals: int) -> None:
        self.pd = price_decimals
        self.qd = qty_decimals
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.sequence = 0
        self._ptext: dict[int, str] = {}

    def price_text(self, price: int) -> str:
        """``fmt(price, pd)``, cached (prices repeat; this is the simulator's hot path)."""
        text = self._ptext.get(price)
        if text is None:
            if len(self._ptext) > 100_000:
                self._ptext.clear()
            text = self._ptext[price] = fmt(price, self.pd)
        return text

    def apply(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Set absolute sizes; a size of 0 removes the level."""
        for side, changes in ((self.bids, bids), (self.asks, asks)):
            for price, qty in changes:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)

    def sorted_side(self, bid: bool, depth: int | None = None) -> list[tuple[int, int]]:
        """Levels of one side, best first, at most ``depth``."""
        side = self.bids if bid else self.asks
        levels = sorted(side.items(), reverse=bid)
        return levels if depth is None else levels[:depth]

    def as_text(self, bid: bool, depth: int | None = None) -> list[list[str]]:
        """``[[price text, qty text], ...]`` best first (the venues' JSON level form)."""
        return [[fmt(p, self.pd), fmt(q, self.qd)] for p, q in self.sorted_side(bid, depth)]

    def snapshot(self) -> dict[str, object]:
        """``{"bids": [(Decimal, Decimal)...], "asks": [...], "sequence": n}`` best first."""
        def dec(levels: list[tuple[int, int]]) -> list[tuple[Decimal, Decimal]]:
            return [(Decimal(fmt(p, self.pd)), Decimal(fmt(q, self.qd))) for p, q in levels]
        return {"bids": dec(self.sorted_side(True)), "asks": dec(self.sorted_side(False)),
                "sequence": self.sequence}

    def is_crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


class SyntheticWalk:
    """A plausible random-walk book: a mid that drifts by ticks, ``width`` levels per side.

    Bids live strictly below the mid and asks strictly above it, so the book is never
    crossed; when the mid moves, the levels it passes are deleted in the same message.
    Deterministic for a seed.
    """

    def __init__(self, book: TruthBook, seed: int, *, width: int = 120, start: int = 3_000_000,
                 changes: tuple[int, int] = (10, 20)) -> None:
        self.book = book
        self.rng = random.Random(seed)
        self.width = width
        self.mid = start
        self.changes = changes
        rng = self.rng
        self._random = rng.random
        self._qscale: int = 10 ** max(book.qd - 3, 0)
        for i in range(1, width + 1):
            if rng.random() < 0.8 or i <= 2:
                book.bids[start - i] = self._qty()
            if rng.random() < 0.8 or i <= 2:
                book.asks[start + i] = self._qty()

    def _qty(self) -> int:
        return (int(self._random() * 50_000) + 1) * self._qscale

    def step(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Apply one message's worth of changes to the book and return them (bids, asks)."""
        rng = self.rng
        book = self.book
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        move = rng.choice((-1, 0, 0, 0, 0, 0, 0, 1))
        if move:
            self.mid += move
            mid = self.mid
            if move > 0 and mid in book.asks:
                asks[mid] = 0
            if move < 0 and mid in book.bids:
                bids[mid] = 0
            # levels only ever live within width ticks of the mid: a move of one tick
            # pushes at most the one level at the far edge out of the window
            if move > 0 and mid - self.width - 1 in book.bids:
                bids[mid - self.width - 1] = 0
            if move < 0 and mid + self.width + 1 in book.asks:
                asks[mid + self.width + 1] = 0
        mid = self.mid
        for _ in range(rng.randint(*self.changes)):
            off = int(rng.expovariate(1 / 12)) % self.width + 1
            delete = rng.random() < 0.25
            if rng.random() < 0.5:
                bids[mid - off] = 0 if delete else self._qty()
            else:
                asks[mid + off] = 0 if delete else self._qty()
        # keep the top of each side populated (a plausible, never empty book)
        for side, d, sign in ((book.bids, bids, -1), (book.asks, asks, 1)):
            if not any(q for p, q in d.items()) and len(side) < 3:
                d[mid + sign] = self._qty()
        b = [(p, q) for p, q in bids.items() if q or p in book.bids]
        a = [(p, q) for p, q in asks.items() if q or p in book.asks]
        book.apply(b, a)
        return b, a
