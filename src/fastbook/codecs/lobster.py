"""LOBSTER message and orderbook files (lobsterdata.com): NASDAQ books rebuilt from ITCH.

A LOBSTER *message file* has one CSV row per book event, six columns::

    time, type, order id, size, price, direction

* time: seconds after midnight with up to 9 decimals (ns resolution);
* type: 1 submission, 2 partial cancellation, 3 deletion, 4 visible execution,
  5 hidden execution, 6 cross trade, 7 trading halt;
* price: dollars x 10000 (an integer); direction: 1 buy, -1 sell. An
  execution of a sell order is a buyer-initiated trade.

The matching *orderbook file* has ``4 * levels`` columns per row, repeating
``ask price, ask size, bid price, bid size`` for levels 1..L; row k is the book
after message k. Empty levels show the dummy prices ``9999999999`` (ask) and
``-9999999999`` (bid) with size 0.

:func:`read_messages` turns a message file into normalized events
(``fastbook.events.EVENT_DTYPE``; the mapping is in ``docs/events.md``),
:func:`read_orderbook` reads an orderbook file as integers, and
:func:`orderbook_top` converts its rows to fastbook's ``(4, n)`` top-of-book
layout, so a replayed ``OrderBook.top(n)`` can be compared with it directly.

>>> import io
>>> from fastbook.codecs import lobster
>>> ev = lobster.read_messages(io.StringIO("34200.004241176,1,16113575,18,5853300,1\\n"))
>>> ev[["ts_exchange", "action", "side", "price", "qty", "order_id"]].tolist()
[(34200004241176, 1, 1, 5853300, 18, 16113575)]
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from fastbook.errors import DecodeError
from fastbook.events import EVENT_DTYPE, Action, Flags

__all__ = ["DUMMY_ASK_PRICE", "DUMMY_BID_PRICE", "orderbook_top", "read_messages",
           "read_orderbook"]

#: Price LOBSTER writes for an empty ask level.
DUMMY_ASK_PRICE = 9_999_999_999
#: Price LOBSTER writes for an empty bid level.
DUMMY_BID_PRICE = -9_999_999_999
#: LOBSTER prices are dollars x 10**4.
LOBSTER_PRICE_DECIMALS = 4

_BID, _ASK = 1, 2
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_NS_PER_S = 1_000_000_000

# type -> (action, flags)
_TYPES = {
    1: (Action.ADD, Flags.NONE),
    2: (Action.REDUCE, Flags.NONE),
    3: (Action.DELETE, Flags.NONE),
    4: (Action.EXECUTE, Flags.NONE),
    5: (Action.TRADE, Flags.HIDDEN),
    6: (Action.TRADE, Flags.CROSS),
    7: (Action.STATUS, Flags.NONE),
}
# type 7: price -1 halts trading, 0 starts quoting, 1 resumes trading
_HALT_FLAGS = {-1: Flags.HALTED, 0: Flags.QUOTING, 1: Flags.NONE}


class _Source:
    """Text lines of a path (opened and closed here) or of a caller's file object (left open)."""

    def __init__(self, source: Any) -> None:
        self._file: Any = None
        self._wrapper: io.TextIOWrapper | None = None
        if isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            self._file = open(source, encoding="ascii", newline="")
            self.lines: Iterator[str] = iter(self._file)
        elif isinstance(source, io.TextIOBase):
            self.name = getattr(source, "name", "<text stream>")
            self.lines = iter(source)
        elif hasattr(source, "read"):
            self.name = getattr(source, "name", "<stream>")
            self._wrapper = io.TextIOWrapper(source, encoding="ascii", newline="")
            self.lines = iter(self._wrapper)
        else:
            raise TypeError(
                f"source must be a path or a file object, got {type(source).__name__}"
            )

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
        if self._wrapper is not None:
            self._wrapper.detach()    # leave the caller's binary file open


def _int(text: str, what: str, where: str) -> int:
    t = text.strip()
    if not t or not (t.isdigit() or (t[0] in "+-" and t[1:].isdigit())):
        raise DecodeError(f"{where}: {what} must be an integer, got {text!r}")
    return int(t)


def _time_ns(text: str, where: str) -> int:
    """Seconds after midnight with up to 9 decimals, exactly, as integer nanoseconds."""
    t = text.strip()
    whole, dot, frac = t.partition(".")
    if not whole.isdigit() or (dot and not frac.isdigit()):
        raise DecodeError(f"{where}: time must be seconds after midnight such as "
                          f"'34200.004241176', got {text!r}")
    if len(frac) > 9 and frac[9:].strip("0"):
        raise DecodeError(f"{where}: time {text!r} has more than 9 decimals (ns resolution)")
    ns = int(whole) * _NS_PER_S + (int(frac[:9].ljust(9, "0")) if frac else 0)
    if ns > _INT64_MAX:
        raise DecodeError(f"{where}: time {text!r} is out of range")
    return ns


def _scale_price(price: int, price_decimals: int, where: str) -> int:
    shift = price_decimals - LOBSTER_PRICE_DECIMALS
    if shift >= 0:
        scaled = price * 10**shift
    else:
        scaled, rest = divmod(price, 10**-shift)
        if rest:
            raise DecodeError(f"{where}: price {price} (x 10^-4) has more decimals than "
                              f"price_decimals={price_decimals} allows")
    if not _INT64_MIN < scaled <= _INT64_MAX:
        raise DecodeError(f"{where}: price {price} is out of the int64 range at "
                          f"price_decimals={price_decimals}")
    return scaled


def _check_price_decimals(price_decimals: Any) -> None:
    if not isinstance(price_decimals, int) or isinstance(price_decimals, bool) \
            or not 0 <= price_decimals <= 18:
        raise ValueError(f"price_decimals must be an int between 0 and 18, got {price_decimals!r}")


def read_messages(source: Any, /, *, price_decimals: int = 4, instrument: int = 0) -> np.ndarray:
    """Read a LOBSTER message file into an array of normalized events.

    Parameters
    ----------
    source : str, os.PathLike or file object
        The message CSV (text or binary file objects are accepted).
    price_decimals : int, default 4
        Fixed-point scale of the output prices. LOBSTER prices are dollars x
        10**4, so 4 keeps them as they are; other scales are exact or refused.
    instrument : int, default 0
        Value of the ``instrument`` field of every event.

    Returns
    -------
    numpy.ndarray of ``fastbook.events.EVENT_DTYPE``
        One event per message: ``ts_exchange`` is ns after midnight (parsed
        exactly, never through float), ``sequence`` the 1-based line number,
        ``side`` 1 (buy) or 2 (sell). Types map as in ``docs/events.md``:
        1 ADD, 2 REDUCE, 3 DELETE (``qty`` = the deleted size), 4 EXECUTE,
        5 TRADE + HIDDEN, 6 TRADE + CROSS, 7 STATUS (side 0, flags HALTED /
        QUOTING / none from price -1 / 0 / 1). A negative order id is accepted
        only for types 6 and 7 and becomes 0.

    Raises
    ------
    fastbook.DecodeError
        A malformed row; the message names the file and line number.
    """
    _check_price_decimals(price_decimals)
    if not isinstance(instrument, int) or not 0 <= instrument <= 2**32 - 1:
        raise ValueError(f"instrument must be an int in the uint32 range, got {instrument!r}")
    rows: list[tuple[int, ...]] = []
    with _Source(source) as src:
        try:
            for lineno, line in enumerate(src.lines, start=1):
                if not line.strip():
                    continue
                rows.append(_message(line, f"{src.name}:{lineno}", lineno, price_decimals,
                                     instrument))
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{src.name}: not an ASCII LOBSTER message file ({exc})") from None
    return np.array(rows, dtype=EVENT_DTYPE) if rows else np.zeros(0, dtype=EVENT_DTYPE)


def _message(line: str, where: str, lineno: int, price_decimals: int,
             instrument: int) -> tuple[int, ...]:
    cols = line.rstrip("\r\n").split(",")
    if len(cols) != 6:
        raise DecodeError(f"{where}: expected 6 columns (time, type, order id, size, price, "
                          f"direction), got {len(cols)}")
    ts = _time_ns(cols[0], where)
    kind = _int(cols[1], "type", where)
    if kind not in _TYPES:
        raise DecodeError(f"{where}: unknown event type {kind} (LOBSTER types are 1 to 7)")
    action, flags = _TYPES[kind]
    order_id = _int(cols[2], "order id", where)
    if order_id < 0 and kind in (6, 7):
        order_id = 0
    if not 0 <= order_id <= _UINT64_MAX:
        raise DecodeError(f"{where}: order id {order_id} is not in the uint64 range")
    size = _int(cols[3], "size", where)
    if not 0 <= size <= _INT64_MAX:
        raise DecodeError(f"{where}: size {size} must be a non-negative int64")
    raw_price = _int(cols[4], "price", where)
    direction = _int(cols[5], "direction", where)
    if direction not in (1, -1):
        raise DecodeError(f"{where}: direction must be 1 (buy) or -1 (sell), got {direction}")
    side = _BID if direction == 1 else _ASK
    if kind == 7:
        if raw_price not in _HALT_FLAGS:
            raise DecodeError(f"{where}: a trading halt (type 7) needs price -1, 0 or 1, "
                              f"got {raw_price}")
        flags = _HALT_FLAGS[raw_price]
        side, price = 0, 0
    else:
        price = _scale_price(raw_price, price_decimals, where)
    return (ts, 0, instrument, int(action), side, int(flags), price, size, order_id, 0, lineno)


def _orderbook_line(line: str, where: str, ncols: int) -> None:
    # re-parse one row to explain why numpy refused the file
    cols = line.rstrip("\r\n").split(",")
    if len(cols) != ncols:
        raise DecodeError(f"{where}: expected {ncols} columns ({ncols // 4} levels x ask price, "
                          f"ask size, bid price, bid size), got {len(cols)}")
    for i, col in enumerate(cols):
        v = _int(col, f"column {i + 1}", where)
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise DecodeError(f"{where}: column {i + 1} value {v} is out of the int64 range")


def read_orderbook(source: Any, /, levels: int) -> np.ndarray:
    """Read a LOBSTER orderbook file as an ``int64`` array of shape ``(rows, 4 * levels)``.

    Values are as in the file (prices in dollars x 10**4, dummy prices for
    empty levels kept); use :func:`orderbook_top` for fastbook's layout.

    Raises
    ------
    fastbook.DecodeError
        A row with the wrong number of columns or a non-integer value; the
        message names the file and line number.
    """
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
        raise ValueError(f"levels must be a positive int, got {levels!r}")
    ncols = 4 * levels
    with _Source(source) as src:
        name = src.name
        try:
            text = list(src.lines)
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{name}: not an ASCII LOBSTER orderbook file ({exc})") from None
    body = [line for line in text if line.strip()]
    if not body:
        return np.zeros((0, ncols), dtype=np.int64)
    try:
        arr = np.loadtxt(body, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OverflowError):
        arr = None
    if arr is None or arr.shape[1] != ncols:
        lineno = 0
        for lineno, line in enumerate(text, start=1):
            if line.strip():
                _orderbook_line(line, f"{name}:{lineno}", ncols)
        raise DecodeError(f"{name}: cannot read the orderbook file")  # pragma: no cover
    return arr


def orderbook_top(rows: Any, /, levels: int, *, price_decimals: int = 4) -> np.ndarray:
    """Convert orderbook rows to fastbook's top-of-book layout, shape ``(len(rows), 4, levels)``.

    Each ``[k]`` is laid out as ``OrderBook.top(levels)`` / ``Book.top(levels)``:
    rows ``[bid_prices, bid_qtys, ask_prices, ask_qtys]``, best level first,
    with price 0 and quantity 0 where a side has no level (LOBSTER's dummy
    prices ``+-9999999999``). Prices are rescaled to ``price_decimals``.
    """
    _check_price_decimals(price_decimals)
    a = np.asarray(rows, dtype=np.int64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] < 4 * levels:
        raise ValueError(f"rows must have shape (n, >= {4 * levels}), got {a.shape}")
    a = a[:, :4 * levels].reshape(len(a), levels, 4)
    ask_p, ask_q, bid_p, bid_q = (a[:, :, j] for j in range(4))
    empty_ask = (ask_p == DUMMY_ASK_PRICE) | (ask_q == 0)
    empty_bid = (bid_p == DUMMY_BID_PRICE) | (bid_q == 0)
    out = np.empty((len(a), 4, levels), dtype=np.int64)
    out[:, 0] = np.where(empty_bid, 0, bid_p)
    out[:, 1] = np.where(empty_bid, 0, bid_q)
    out[:, 2] = np.where(empty_ask, 0, ask_p)
    out[:, 3] = np.where(empty_ask, 0, ask_q)
    prices = out[:, 0::2]
    shift = price_decimals - LOBSTER_PRICE_DECIMALS
    if shift > 0:
        largest = int(np.abs(prices).max()) if prices.size else 0
        if largest * 10**shift > _INT64_MAX:
            raise ValueError(f"prices overflow int64 at price_decimals={price_decimals}")
        prices *= np.int64(10**shift)
    elif shift < 0:
        div = 10**-shift
        if (prices % div).any():
            raise ValueError(f"prices have more decimals than price_decimals={price_decimals}")
        prices //= div
    return out

