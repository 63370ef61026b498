"""Shards of instruments: which worker of a parallel replay keeps which symbols' books.

Every order message names its instrument, so a replay split by instrument is exact: a
worker decodes the whole stream, keeps the books of its own symbols and drops the
other messages inside the kernel (a few nanoseconds each). A :class:`Shard` is what a
worker passes as ``symbols=``: a set-like object that answers "is this symbol mine?"
for symbols it has never seen (an IPO's directory message late in the day), so no
symbol can fall between two shards or land in both.

>>> s0, s1 = Shard(0, 2), Shard(1, 2)
>>> [("AAPL" in s0, "AAPL" in s1), ("MSFT" in s0, "MSFT" in s1)]
[(True, False), (False, True)]
>>> balanced = balance({"AAPL": 900, "MSFT": 500, "IBM": 300, "GE": 200}, 2)
>>> sorted(balanced.items())
[('AAPL', 0), ('GE', 1), ('IBM', 1), ('MSFT', 1)]
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Shard", "balance", "symbol_filter"]


def _hashed(symbol: str, count: int) -> int:
    """The shard of a symbol no assignment names: CRC-32 of its UTF-8 bytes, mod ``count``."""
    return zlib.crc32(symbol.encode("utf-8", "surrogatepass")) % count


class Shard:
    """Shard ``index`` of ``count``: the symbols ``assign`` gives it, and by CRC-32 the rest.

    ``assign`` maps symbols to shard indexes (``balance`` makes one from message
    counts, so the shards do equal work); a symbol it does not name goes to the
    shard its CRC-32 picks. ``symbol in shard`` is all a codec asks. Shards pickle,
    compare equal when they choose the same symbols, and are not iterable: they
    choose from symbols the stream has yet to name. ``within`` narrows the shard to
    those symbols (a replay's own ``symbols=``).
    """

    __slots__ = ("assign", "count", "index", "within")

    def __init__(self, index: int, count: int, assign: Mapping[str, int] | None = None, *,
                 within: Iterable[str] | None = None) -> None:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"a shard count must be a positive int, got {count!r}")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise ValueError(f"a shard index must be an int from 0 to {count - 1}, got {index!r}")
        table = dict(assign or {})
        for symbol, k in table.items():
            if not isinstance(symbol, str) or not isinstance(k, int) or not 0 <= k < count:
                raise ValueError(f"assign must map symbols to shards 0..{count - 1}; "
                                 f"got {symbol!r}: {k!r}")
        self.index = index
        self.count = count
        self.assign = table
        #: the symbols asked for (``symbols=`` of the whole replay); None: every symbol
        self.within = None if within is None else symbol_filter(within)

    def shard_of(self, symbol: str) -> int:
        """The shard that keeps ``symbol``."""
        k = self.assign.get(symbol)
        return _hashed(symbol, self.count) if k is None else k

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and (self.within is None or symbol in self.within) \
            and self.shard_of(symbol) == self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Shard) and self.__getstate__() == other.__getstate__()

    def __hash__(self) -> int:
        return hash((self.index, self.count, tuple(sorted(self.assign.items())), self.within))

    def __getstate__(self) -> tuple[int, int, dict[str, int], frozenset[str] | None]:
        return self.index, self.count, self.assign, self.within

    def __setstate__(self, state: tuple[int, int, dict[str, int], frozenset[str] | None]) -> None:
        self.index, self.count, self.assign, self.within = state

    def __repr__(self) -> str:
        named = f", {len(self.assign)} assigned" if self.assign else ""
        if self.within is not None:
            named += f", within {len(self.within)} symbols"
        return f"Shard({self.index} of {self.count}{named})"


def balance(weights: Mapping[str, int], count: int) -> dict[str, int]:
    """Symbols assigned to ``count`` shards so each gets about the same weight.

    Longest processing time first: the heaviest symbol goes to the lightest shard,
    ties broken by symbol and by shard index, so the same weights always give the
    same assignment. ``weights`` are message (or event) counts per symbol.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"a shard count must be a positive int, got {count!r}")
    load = [0] * count
    out: dict[str, int] = {}
    for symbol, weight in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])):
        k = min(range(count), key=lambda i: (load[i], i))
        out[symbol] = k
        load[k] += max(int(weight), 0)
    return out


def symbol_filter(symbols: Iterable[str] | Shard | None) -> Any:
    """What a codec keeps of ``symbols=``: None (every symbol), a Shard as it is, or a
    frozenset of str (TypeError for anything else in it)."""
    if symbols is None or isinstance(symbols, Shard):
        return symbols
    chosen = frozenset(symbols)
    if not all(isinstance(s, str) for s in chosen):
        raise TypeError("symbols must be strings")
    return chosen
