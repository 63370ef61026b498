"""The pure-Python twin of ``fastbook._core``: small, obviously correct, and slow.

It is the oracle of the differential tests and the implementation used when
``FASTBOOK_NO_EXTENSIONS=1`` is set (or the compiled core is missing). Every
public behaviour here, errors included, is what the compiled core must match.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from fastbook._checks import MAX_DECIMALS as MAX_DECIMALS  # the public name of _core
from fastbook._checks import check_1d_contiguous, check_decimals
from fastbook._vocab import ASK, BID
from fastbook.errors import ArrayError, DecodeError, UpdateError

BYTES_PER_LEVEL = 16
COMPILED = False

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MIN_CAPACITY = 16

_DECIMAL_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")

_EMPTY = "empty text"
_SYNTAX = "not a decimal number"
_PRECISION = "more decimal places than the scale allows"
_OVERFLOW = "out of int64 range at this scale"


def _integer(value: Any, what: str, lo: int, hi: int, range_name: str) -> int:
    """An integer argument as the cores take it: floats refused, range enforced."""
    if isinstance(value, float) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    v = value.__index__()
    if not lo <= v <= hi:
        raise OverflowError(f"{what} {v} is outside the {range_name} range")
    return v


def _int64(value: Any, what: str) -> int:
    return _integer(value, what, _INT64_MIN, _INT64_MAX, "int64")


def _clamped_exponent(text: str) -> int:
    """An exponent's value clamped to +-100000, as the core does, for any number of digits."""
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > 6:
        return -100000 if text[0] == "-" else 100000
    value = int(digits or "0")
    return max(-100000, min(100000, -value if text[0] == "-" else value))


def _decode_reason(text: str, decimals: int) -> tuple[int | None, str]:
    """(value, "") on success, (None, reason) on failure; same rules as fb_parse_decimal.

    Excess precision is reported before range, as in the core.
    """
    if not text:
        return None, _EMPTY
    m = _DECIMAL_RE.fullmatch(text)
    if m is None:
        return None, _SYNTAX
    sign, int_part, frac_part, exp_part = m.groups()
    frac_part = frac_part or ""
    digits = int_part + frac_part
    if not digits:
        return None, _SYNTAX
    # the core stops growing the exponent at 100000; no nonzero value survives that
    exp = _clamped_exponent(exp_part) if exp_part else 0
    allowed = decimals + exp          # fraction digits that fit the scale
    kept = max(0, allowed)
    if frac_part[kept:].strip("0"):
        return None, _PRECISION
    value_digits = (int_part + frac_part[:kept]).lstrip("0")
    significant = value_digits.rstrip("0")
    if not significant:
        return 0, ""
    if len(significant) > 19:       # above int64 whatever the sign (and never int() of 5000 digits)
        return None, _OVERFLOW
    mantissa = int(significant)
    neg = sign == "-"
    limit = _INT64_MAX + (1 if neg else 0)
    if mantissa > limit:
        return None, _OVERFLOW
    trailing_zeros = len(value_digits) - len(value_digits.rstrip("0"))
    shift = allowed - len(frac_part[:kept]) + trailing_zeros
    if shift < 0:
        return None, _PRECISION
    if shift > 19:
        return None, _OVERFLOW
    value = mantissa * 10**shift
    if value > limit:
        return None, _OVERFLOW
    return (-value if neg else value), ""


def _parse_text(text: Any, decimals: int, what: str) -> int:
    if isinstance(text, str):
        s = text
    else:
        try:
            raw = bytes(memoryview(text).cast("B"))
        except TypeError:
            raise TypeError(
                f"{what} must be str, bytes or a bytes-like buffer, got {type(text).__name__}"
            ) from None
        try:
            s = raw.decode("ascii")
        except UnicodeDecodeError:
            s = "\x00"  # any non-ASCII byte is a syntax error
    value, reason = _decode_reason(s, decimals)
    if value is None:
        raise DecodeError(f"cannot parse {what} {text!r} at {decimals} decimals: {reason}")
    return value


def parse_decimal(text: Any, decimals: int, /) -> int:
    """Parse decimal text into an exact fixed-point integer (see ``fastbook.parse_decimal``)."""
    decimals = _int64(decimals, "decimals")
    check_decimals(decimals, "decimals")
    return _parse_text(text, decimals, "text")


def format_decimal(value: int, decimals: int, /, *, strip: bool = False) -> str:
    """Format a fixed-point integer as exact decimal text (see ``fastbook.format_decimal``)."""
    value = _int64(value, "value")
    decimals = _int64(decimals, "decimals")
    check_decimals(decimals, "decimals")
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    if decimals == 0:
        return f"{sign}{whole}"
    frac_text = str(frac).rjust(decimals, "0")
    if strip:
        frac_text = frac_text.rstrip("0")
        if not frac_text:
            return f"{sign}{whole}"
    return f"{sign}{whole}.{frac_text}"


def _side_error(side: Any) -> UpdateError:
    return UpdateError(f"side must be fastbook.BID ({BID}) or fastbook.ASK ({ASK}), got {side!r}")


def _raise_read_only(book: Any) -> None:
    """A book's mutator, called while a BookSet.apply callback runs (books are read-only)."""
    raise RuntimeError(f"{type(book).__name__} is read-only while BookSet.apply runs its "
                       f"callback (the callback may read the books, not change them)")


def _check_array(arr: Any, dtype: type, name: str, dtype_name: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise ArrayError(
            f"{name} must be a numpy array of {dtype_name}, got {type(arr).__name__}; "
            f"use np.ascontiguousarray({name}, dtype=np.{dtype_name})"
        )
    if arr.dtype != np.dtype(dtype) or not arr.dtype.isnative:
        raise ArrayError(
            f"{name} must have dtype {dtype_name} in native byte order, got {arr.dtype}; "
            f"use np.ascontiguousarray({name}, dtype=np.{dtype_name})"
        )
    return check_1d_contiguous(arr, name)


class _Ladder:
    """One side: price -> qty, plus the sorted keys (bids: price, asks: -price; best last)."""

    def __init__(self, capacity: int) -> None:
        self.qty: dict[int, int] = {}
        self.keys: list[int] = []
        self.capacity = 0
        self.reserve(capacity)

    def reserve(self, need: int) -> None:
        # the same growth rule as the compiled core, so capacity() and nbytes agree
        if need <= self.capacity:
            return
        cap = self.capacity * 2 if self.capacity >= _MIN_CAPACITY else _MIN_CAPACITY
        self.capacity = max(cap, need)


class _LevelReads:
    """The L2 read API of both twins: :class:`Book` here and ``_pyl3.OrderBook``.

    The compiled ``Book`` and ``OrderBook`` carry the same read methods over two
    different stores; the twins write them once, over four things a class gives:

    - ``_best(side)``: ``(price, qty)`` of the best level, or None;
    - ``_side_levels(side)``: every ``(price, qty)`` of a side, best first;
    - ``_read_side(side)``: the side argument of a read, checked as that class checks it;
    - ``_sizes()``: the counts its ``repr`` shows (``"bids=2 asks=1"``);

    plus ``_NAME`` and ``_version`` (bumped by every change). It holds the two
    scales, checked first by both constructors.
    """

    _NAME = ""
    _version: int

    def __init__(self, price_decimals: int, qty_decimals: int) -> None:
        check_decimals(price_decimals, "price_decimals")
        check_decimals(qty_decimals, "qty_decimals")
        self._price_decimals = price_decimals
        self._qty_decimals = qty_decimals

    def _best(self, side: int) -> tuple[int, int] | None:
        raise NotImplementedError

    def _side_levels(self, side: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def _read_side(self, side: Any) -> int:
        raise NotImplementedError

    def _sizes(self) -> str:
        raise NotImplementedError

    @property
    def price_decimals(self) -> int:
        return self._price_decimals

    @property
    def qty_decimals(self) -> int:
        return self._qty_decimals

    def best_bid(self) -> tuple[int, int] | None:
        return self._best(BID)

    def best_ask(self) -> tuple[int, int] | None:
        return self._best(ASK)

    def bbo(self) -> tuple[int | None, int | None, int | None, int | None]:
        b = self._best(BID) or (None, None)
        a = self._best(ASK) or (None, None)
        return (b[0], b[1], a[0], a[1])

    def spread(self) -> int | None:
        b, a = self._best(BID), self._best(ASK)
        return None if b is None or a is None else a[0] - b[0]

    def mid(self) -> int | None:
        b, a = self._best(BID), self._best(ASK)
        return None if b is None or a is None else (a[0] + b[0]) // 2

    def is_crossed(self) -> bool:
        b, a = self._best(BID), self._best(ASK)
        return b is not None and a is not None and b[0] >= a[0]

    def depth(self, side: int, /) -> int:
        return len(self._side_levels(self._read_side(side)))

    def top(self, n: int, out: Any = None) -> np.ndarray:
        n = _int64(n, "n")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if out is None:
            a = np.empty((4, n), dtype=np.int64)
        else:
            if not isinstance(out, np.ndarray):
                raise ArrayError(f"out must be a numpy int64 array of shape (4, {n}), "
                                 f"got {type(out).__name__}")
            if out.dtype != np.int64 or not out.dtype.isnative or out.shape != (4, n) \
                    or not out.flags.c_contiguous or not out.flags.writeable:
                raise ArrayError(
                    f"out must be a writeable C-contiguous int64 array of shape (4, {n}), "
                    f"got dtype {out.dtype}, shape {out.shape}; use np.empty((4, {n}), np.int64)"
                )
            a = out
        a[...] = 0
        for row, side in ((0, BID), (2, ASK)):
            for i, (price, qty) in enumerate(self._side_levels(side)[:n]):
                a[row, i] = price
                a[row + 1, i] = qty
        return a

    def to_arrays(self, side: int, /) -> tuple[np.ndarray, np.ndarray]:
        levels = self._side_levels(self._read_side(side))
        return (np.array([p for p, _ in levels], dtype=np.int64),
                np.array([q for _, q in levels], dtype=np.int64))

    def levels(self, side: int, /) -> Iterator[tuple[int, int]]:
        return self._iter_side(self._read_side(side), self._version)

    def _iter_side(self, side: int, version: int) -> Iterator[tuple[int, int]]:
        i = 0
        levels = None
        while True:
            if self._version != version:
                raise RuntimeError(
                    f"fastbook.{self._NAME} changed size or contents during iteration")
            if levels is None:      # the version check above keeps this list current
                levels = self._side_levels(side)
            if i >= len(levels):
                return
            yield levels[i]
            i += 1

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for price, qty in self.levels(BID):
            yield (BID, price, qty)
        for price, qty in self.levels(ASK):
            yield (ASK, price, qty)

    def format_price(self, price: int, /, *, strip: bool = False) -> str:
        return format_decimal(price, self._price_decimals, strip=strip)

    def format_qty(self, qty: int, /, *, strip: bool = False) -> str:
        return format_decimal(qty, self._qty_decimals, strip=strip)

    def __repr__(self) -> str:
        bid = ask = "None"
        b, a = self._best(BID), self._best(ASK)
        if b is not None:
            bid = f"{self.format_price(b[0])} x {self.format_qty(b[1], strip=True)}"
        if a is not None:
            ask = f"{self.format_price(a[0])} x {self.format_qty(a[1], strip=True)}"
        return (f"<fastbook.{self._NAME} price_decimals={self._price_decimals} "
                f"qty_decimals={self._qty_decimals} {self._sizes()} "
                f"best_bid={bid} best_ask={ask}>")


class Book(_LevelReads):
    """Pure-Python twin of :class:`fastbook.Book` (see its documentation)."""

    _NAME = "Book"
    #: set on the instance by BookSet.apply while its callback runs
    _read_only = False

    def __init__(self, *, price_decimals: int, qty_decimals: int, capacity: int = 1024) -> None:
        super().__init__(price_decimals, qty_decimals)
        if not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be a non-negative int, got {capacity!r}")
        self._ladders = {BID: _Ladder(capacity), ASK: _Ladder(capacity)}
        self._version = 0
        self._missing_deletes = 0

    # -- properties --------------------------------------------------------------
    @property
    def missing_deletes(self) -> int:
        return self._missing_deletes

    @property
    def nbytes(self) -> int:
        return BYTES_PER_LEVEL * (self._ladders[BID].capacity + self._ladders[ASK].capacity)

    def _ladder(self, side: Any) -> _Ladder:
        if side != BID and side != ASK:
            raise _side_error(side)
        return self._ladders[side]

    def capacity(self, side: int, /) -> int:
        return self._ladder(side).capacity

    def reserve(self, side: int, capacity: int, /) -> None:
        lad = self._ladder(side)
        capacity = _int64(capacity, "capacity")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        lad.reserve(capacity)

    # -- updates -----------------------------------------------------------------
    @staticmethod
    def _check_update(side: int, price: int, qty: int, shown: tuple[Any, Any, Any]) -> None:
        if side != BID and side != ASK:
            raise _side_error(shown[0])
        if qty < 0:
            raise UpdateError(f"quantity must be >= 0, got {shown[2]!r} (at price {shown[1]!r})")
        if price == _INT64_MIN:
            raise UpdateError(
                f"price {shown[1]!r} is INT64_MIN, which fastbook reserves for 'no price'"
            )

    def _set(self, side: int, price: int, qty: int) -> bool:
        lad = self._ladders[side]
        key = price if side == BID else -price
        old = lad.qty.get(price)
        if old is None:
            if qty == 0:
                self._missing_deletes += 1
                return False
            lad.reserve(len(lad.keys) + 1)
            pos = bisect.bisect_left(lad.keys, key)
            lad.keys.insert(pos, key)
            lad.qty[price] = qty
            self._version += 1
            return pos == len(lad.keys) - 1
        is_top = lad.keys[-1] == key
        if qty == 0:
            lad.keys.pop(bisect.bisect_left(lad.keys, key))
            del lad.qty[price]
            self._version += 1
            return is_top
        if old == qty:
            return False
        lad.qty[price] = qty
        self._version += 1
        return is_top

    def set(self, side: int, price: int, qty: int, /) -> bool:
        if self._read_only:
            _raise_read_only(self)
        s = _int64(side, "side")
        p = _int64(price, "price")
        q = _int64(qty, "qty")
        self._check_update(s, p, q, (s, p, q))
        return self._set(s, p, q)

    def set_str(self, side: int, price_text: Any, qty_text: Any, /) -> bool:
        if self._read_only:
            _raise_read_only(self)
        s = _int64(side, "side")
        p = _parse_text(price_text, self._price_decimals, "price")
        q = _parse_text(qty_text, self._qty_decimals, "quantity")
        self._check_update(s, p, q, (s, price_text, qty_text))
        return self._set(s, p, q)

    def apply(self, sides: Any, prices: Any, qtys: Any, /) -> int:
        if self._read_only:
            _raise_read_only(self)
        a_s = _check_array(sides, np.int8, "sides", "int8")
        a_p = _check_array(prices, np.int64, "prices", "int64")
        a_q = _check_array(qtys, np.int64, "qtys", "int64")
        n = a_s.shape[0]
        if a_p.shape[0] != n or a_q.shape[0] != n:
            raise ArrayError(
                f"sides, prices and qtys must have equal lengths, got "
                f"{n}, {a_p.shape[0]} and {a_q.shape[0]}"
            )
        rows = list(zip(a_s.tolist(), a_p.tolist(), a_q.tolist(), strict=True))
        for i, (s, p, q) in enumerate(rows):
            try:
                self._check_update(s, p, q, (s, p, q))
            except UpdateError as exc:
                raise UpdateError(f"update {i}: {exc}", i) from None
        for s, p, q in rows:
            self._set(s, p, q)
        return n

    def clear(self) -> None:
        if self._read_only:
            _raise_read_only(self)
        for lad in self._ladders.values():
            lad.qty.clear()
            lad.keys.clear()
        self._version += 1

    # -- reads (the rest are _LevelReads') ----------------------------------------
    def _best(self, side: int) -> tuple[int, int] | None:
        lad = self._ladders[side]
        if not lad.keys:
            return None
        price = lad.keys[-1] if side == BID else -lad.keys[-1]
        return (price, lad.qty[price])

    def _side_levels(self, side: int) -> list[tuple[int, int]]:
        lad = self._ladders[side]
        sign = 1 if side == BID else -1
        return [(sign * k, lad.qty[sign * k]) for k in reversed(lad.keys)]

    def _read_side(self, side: Any) -> int:
        s = _int64(side, "side")
        self._ladder(s)
        return s

    def _sizes(self) -> str:
        return f"bids={len(self._ladders[BID].keys)} asks={len(self._ladders[ASK].keys)}"

    def qty_at(self, side: int, price: int, /) -> int:
        s = _int64(side, "side")
        p = _int64(price, "price")
        return self._ladder(s).qty.get(p, 0)

    def __len__(self) -> int:
        return len(self._ladders[BID].keys) + len(self._ladders[ASK].keys)

    # -- text helpers --------------------------------------------------------------
    def parse_price(self, text: Any, /) -> int:
        return _parse_text(text, self._price_decimals, "price")

    def parse_qty(self, text: Any, /) -> int:
        return _parse_text(text, self._qty_decimals, "quantity")

    # -- copying -------------------------------------------------------------------
    def copy(self) -> Book:
        other = Book(price_decimals=self._price_decimals, qty_decimals=self._qty_decimals,
                     capacity=0)
        for side in (BID, ASK):
            src, dst = self._ladders[side], other._ladders[side]
            dst.qty = dict(src.qty)
            dst.keys = list(src.keys)
            dst.reserve(len(src.keys))
        other._missing_deletes = self._missing_deletes
        return other

    def __copy__(self) -> Book:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> Book:
        return self.copy()
