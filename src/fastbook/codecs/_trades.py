"""Reading the venues' trade prints: the checks every venue codec's trade parser shares.

A venue's trade message (Binance ``aggTrade``, Coinbase ``match``, OKX ``trades``...)
is read in the Python feed layer, not by the JSON scanners: trades are a small share
of a feed's messages and each venue words them differently. A parser turns a whole
message into a list of :data:`Print` tuples, or raises :class:`BadTrade` naming what is
wrong and where, before anything is recorded; the feed then records the prints with
:meth:`fastbook.codecs._l2feed.L2Feed._emit_trades` (one ``Action.TRADE`` event each).

Every value is read exactly: prices and quantities from their decimal text at the
symbol's fixed-point scales (never through float), times as integer ns.
"""

from __future__ import annotations

from typing import Any

from fastbook import parse_decimal
from fastbook._vocab import INT64_MAX, INT64_MIN
from fastbook.errors import DecodeError

__all__ = ["MAX_MS", "BadTrade", "Print", "aggressor", "iso_ns", "ms_ns", "price_qty",
           "trade_id"]

#: One trade print: (native symbol, price, qty, ts_exchange ns, trade id or 0,
#: True when the buyer was the aggressor).
Print = tuple[str, int, int, int, int, bool]

#: Largest exchange time in ms whose ns value fits int64 (2262-04-11).
MAX_MS = INT64_MAX // 1_000_000


class BadTrade(Exception):
    """A trade message that cannot be used: ``text`` says what, ``symbol`` whose (or "")."""

    def __init__(self, text: str, symbol: str = "") -> None:
        super().__init__(text)
        self.text = text
        self.symbol = symbol


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def price_qty(price: Any, qty: Any, pd: int, qd: int, where: str, symbol: str = "",
              parse: Any = None) -> tuple[int, int]:
    """The exact fixed-point price and quantity of a print (both must be positive).

    ``price`` and ``qty`` are decimal strings (``parse`` may read other forms: Kraken
    v2's JSON numbers); more decimals than the scale, or int64 overflow, is refused.
    """
    out = []
    for name, text, decimals in (("price", price, pd), ("quantity", qty, qd)):
        if parse is None:
            if type(text) is not str:
                raise BadTrade(f"{where}: the {name} must be a decimal string, got "
                               f"{_short(text)}", symbol)
            try:
                value = parse_decimal(text, decimals)
            except DecodeError as exc:
                raise BadTrade(f"{where}: {name}: {exc}", symbol) from None
        else:
            try:
                value = parse(text, decimals)
            except (DecodeError, ValueError, TypeError) as exc:
                raise BadTrade(f"{where}: {name}: {exc}"[:200], symbol) from None
        if value <= 0:
            raise BadTrade(f"{where}: the {name} {_short(text)} must be positive", symbol)
        out.append(value)
    return out[0], out[1]


def ms_ns(value: Any, where: str, symbol: str = "", strings: bool = False) -> int:
    """A time in ms since the epoch (a JSON integer, or with ``strings`` a string of
    digits: OKX) as ns."""
    if strings and type(value) is str and value.isascii() and value.isdigit() \
            and len(value) <= 16:
        value = int(value)
    if type(value) is not int or not 0 <= value <= MAX_MS:
        raise BadTrade(f"{where}: the time {_short(value)} is not a time in ms", symbol)
    return value * 1_000_000


def iso_ns(value: Any, where: str, symbol: str = "") -> int:
    """A UTC ISO 8601 time (``2021-04-17T16:43:30.244075Z``) as exact ns."""
    from fastbook.codecs._l2schema import iso_to_ns

    try:
        ns = iso_to_ns(value)
    except ValueError as exc:
        raise BadTrade(f"{where}: time: {exc}", symbol) from None
    if not INT64_MIN <= ns <= INT64_MAX:
        raise BadTrade(f"{where}: the time {_short(value)} is outside int64 ns", symbol)
    return ns


def trade_id(value: Any) -> int:
    """The venue's trade id as the event's ``sequence`` when it is a number (a JSON
    integer or a string of digits) in ``[0, INT64_MAX]``; 0 otherwise (Bybit's UUIDs)."""
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if type(value) is int and 0 <= value <= INT64_MAX:
        return value
    return 0


def aggressor(word: Any, buy: str, sell: str, where: str, symbol: str = "",
              key: str = "side") -> bool:
    """True when ``word`` says the buyer was the aggressor (``word == buy``), False for
    ``sell``; anything else is refused."""
    if word == buy and type(word) is str:
        return True
    if word == sell and type(word) is str:
        return False
    raise BadTrade(f"{where}: {key} {_short(word)} is not {buy!r} or {sell!r}", symbol)
