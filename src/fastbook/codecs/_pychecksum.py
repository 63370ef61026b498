"""Pure-Python twin of the checksum kernel ``fastbook.codecs._checksum``.

The readable reference the compiled kernel is tested against (and the code used
when ``FASTBOOK_NO_EXTENSIONS=1`` is set or the kernel is not built). Every
function works on any ``fastbook.Book`` (compiled or pure Python) through its
public API and formats with :func:`fastbook.format_decimal`, literally as the
venues describe their checksums:

* **Kraken** (WebSocket v1 and v2 ``book``): the best ``levels`` (10) asks,
  price ascending, then the best 10 bids, price descending; for each level the
  price then the quantity, each written with a given number of decimals, the
  ``"."`` removed and leading zeros stripped; all concatenated; CRC32 (zlib /
  IEEE) as an **unsigned** 32-bit int. v1 uses the wire strings verbatim, which
  fastbook reproduces by keeping each pair at its wire decimals (so the digits
  default to the book's own scales); v2 formats with the pair's
  ``price_precision`` / ``qty_precision``.
* **OKX** (legacy ``books`` checksum): the best 25 bids and 25 asks interleaved
  ``bid1, ask1, bid2, ask2, ...`` (a side that runs out is simply skipped), each
  level ``"price:size"`` with both written as the shortest exact decimal text
  (the wire form: no trailing zeros, no bare point), all joined with ``":"``;
  CRC32 as a **signed** 32-bit int.

:func:`truncate` removes the levels beyond a depth (Kraken sends no delete for
a level pushed out of the subscribed depth). :func:`parse_levels` turns a
decoded JSON list of ``[price, size, ...]`` string levels (Kraken v1, OKX) into
exact integers, validated, before any of them is applied.
"""

from __future__ import annotations

import zlib
from typing import Any

from fastbook import format_decimal, parse_decimal
from fastbook._checks import MAX_DECIMALS, is_int
from fastbook._vocab import ASK, BID

__all__ = [
    "COMPILED",
    "MAX_LEVELS",
    "crc32",
    "kraken_checksum",
    "kraken_text",
    "okx_checksum",
    "okx_text",
    "parse_levels",
    "set_levels",
    "truncate",
]

COMPILED = False

#: The most levels per side a checksum may cover (the kernel's text buffer is sized for it).
MAX_LEVELS = 64


def crc32(data: bytes | bytearray | memoryview) -> int:
    """CRC32 (zlib / IEEE 802.3) of ``data`` as an unsigned int."""
    return zlib.crc32(data) & 0xFFFFFFFF


def _check_levels(levels: Any) -> int:
    if not is_int(levels, 1, MAX_LEVELS):
        raise ValueError(f"levels must be an int from 1 to {MAX_LEVELS}, got {levels!r}")
    return levels


def _check_digits(digits: Any, default: int, name: str) -> int:
    if digits is None:
        return default
    if not is_int(digits, 0, MAX_DECIMALS):
        raise ValueError(f"{name} must be None or an int from 0 to {MAX_DECIMALS}, got {digits!r}")
    return digits


def _kraken_number(value: int, decimals: int, digits: int, what: str) -> str:
    """``value`` (fixed point at ``decimals``) written with ``digits`` decimals, no point,
    no leading zeros."""
    whole, _, frac = format_decimal(value, decimals).partition(".")
    if digits >= decimals:
        frac += "0" * (digits - decimals)
    else:
        if frac[digits:].strip("0"):
            raise ValueError(f"the {what} {format_decimal(value, decimals)} has more than "
                             f"{digits} decimals: it cannot be written at that precision")
        frac = frac[:digits]
    return (whole + frac).lstrip("0")


def _best(book: Any, side: int, levels: int) -> list[tuple[int, int]]:
    prices, qtys = book.to_arrays(side)
    return list(zip(prices[:levels].tolist(), qtys[:levels].tolist(), strict=True))


def kraken_text(book: Any, price_digits: int | None = None, qty_digits: int | None = None,
                levels: int = 10) -> bytes:
    """The text Kraken's CRC32 is computed over (asks ascending, then bids descending).

    ``price_digits`` / ``qty_digits`` are the decimals to write (``None``: the
    book's own scales). A value with nonzero digits beyond them is a ValueError.
    """
    levels = _check_levels(levels)
    pd, qd = book.price_decimals, book.qty_decimals
    pdig = _check_digits(price_digits, pd, "price_digits")
    qdig = _check_digits(qty_digits, qd, "qty_digits")
    parts = []
    for side in (ASK, BID):
        for price, qty in _best(book, side, levels):
            parts.append(_kraken_number(price, pd, pdig, "price"))
            parts.append(_kraken_number(qty, qd, qdig, "quantity"))
    return "".join(parts).encode("ascii")


def kraken_checksum(book: Any, price_digits: int | None = None, qty_digits: int | None = None,
                    levels: int = 10) -> int:
    """Kraken's book checksum (unsigned 32-bit) of ``book``; see :func:`kraken_text`."""
    return crc32(kraken_text(book, price_digits, qty_digits, levels))


def okx_text(book: Any, levels: int = 25) -> bytes:
    """The text OKX's legacy CRC32 is computed over (bids and asks interleaved)."""
    levels = _check_levels(levels)
    pd, qd = book.price_decimals, book.qty_decimals
    bids = _best(book, BID, levels)
    asks = _best(book, ASK, levels)
    parts = []
    for i in range(levels):
        for side in (bids, asks):
            if i < len(side):
                price, qty = side[i]
                parts.append(format_decimal(price, pd, strip=True) + ":"
                             + format_decimal(qty, qd, strip=True))
    return ":".join(parts).encode("ascii")


def okx_checksum(book: Any, levels: int = 25) -> int:
    """OKX's legacy book checksum (signed 32-bit) of ``book``; see :func:`okx_text`."""
    crc = crc32(okx_text(book, levels))
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def truncate(book: Any, side: int, depth: int) -> list[int]:
    """Delete the levels of ``side`` beyond the best ``depth``; return their prices, worst first."""
    if side != BID and side != ASK:
        raise ValueError(f"side must be fastbook.BID or fastbook.ASK, got {side!r}")
    if not is_int(depth, 0):
        raise ValueError(f"depth must be a non-negative int, got {depth!r}")
    if book.depth(side) <= depth:
        return []
    prices, _ = book.to_arrays(side)
    removed = prices[depth:].tolist()[::-1]
    for price in removed:
        book.set(side, price, 0)
    return removed


def parse_levels(levels: Any, price_decimals: int, qty_decimals: int, prices: list[int],
                 qtys: list[int], key: str = "levels", kraken_v1: bool = False) -> int:
    """Append the exact price and size of each ``[price, size, ...]`` level to ``prices`` /
    ``qtys``; return the newest timestamp (ns) for Kraken v1 levels, else 0.

    Every level is a JSON list of strings: ``[price, size, ...]`` (OKX: at least
    two items), or ``[price, volume, timestamp]`` with an optional ``"r"``
    (republish) fourth item (``kraken_v1=True``; the timestamp is decimal
    seconds). Prices must be positive and sizes not negative; text that does
    not parse exactly at the scale is refused. The first bad level raises
    ValueError naming ``key`` and its index; the lists may then hold the levels
    before it, so the caller drops them.
    """
    if type(levels) is not list:
        raise ValueError(f"{key!r} must be a list, got {type(levels).__name__}")
    newest = 0
    for i, lv in enumerate(levels):
        if kraken_v1:
            if type(lv) is not list or not 3 <= len(lv) <= 4:
                raise ValueError(f"{key}[{i}] must be [price, volume, timestamp(, 'r')], "
                                 f"got {lv!r}"[:160])
            if len(lv) == 4 and lv[3] != "r":
                raise ValueError(f"{key}[{i}]: unknown marker {lv[3]!r} (only 'r', republish)")
        elif type(lv) is not list or len(lv) < 2:
            raise ValueError(f"{key}[{i}] must be [price, size, ...], got {lv!r}"[:160])
        for j in range(3 if kraken_v1 else 2):
            if type(lv[j]) is not str:
                raise ValueError(f"{key}[{i}][{j}] must be a string, got {lv[j]!r}"[:160])
        try:
            price = parse_decimal(lv[0], price_decimals)
            qty = parse_decimal(lv[1], qty_decimals)
            ts = parse_decimal(lv[2], 9) if kraken_v1 else 0
        except ValueError as exc:
            raise ValueError(f"{key}[{i}]: {exc}") from None
        if price <= 0 or qty < 0:
            raise ValueError(f"{key}[{i}]: the price must be positive and the size not "
                             f"negative: {lv!r}"[:160])
        prices.append(price)
        qtys.append(qty)
        if ts > newest:
            newest = ts
    return newest


def set_levels(book: Any, side: int, prices: list[int], qtys: list[int]) -> None:
    """``book.set(side, price, qty)`` for each pair, in order (validate them first: a bad one
    raises after the ones before it were applied, exactly as a loop of ``set`` would)."""
    if len(prices) != len(qtys):
        raise ValueError(f"{len(prices)} prices but {len(qtys)} quantities")
    set_ = book.set
    for price, qty in zip(prices, qtys, strict=True):
        set_(side, price, qty)
