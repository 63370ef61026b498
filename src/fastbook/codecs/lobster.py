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
:func:`write` goes the other way: it replays the events of one instrument
through an L3 ``OrderBook`` and writes both files (the mapping of every action
is in its docstring and in ``docs/events.md``).

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

from fastbook._checks import check_decimals, is_int
from fastbook._vocab import ASK, BID
from fastbook.errors import ArrayError, DecodeError, UpdateError
from fastbook.events import EVENT_DTYPE, Action, Flags, check_events

__all__ = ["DUMMY_ASK_PRICE", "DUMMY_BID_PRICE", "orderbook_top", "read_messages",
           "read_orderbook", "write"]

#: Price LOBSTER writes for an empty ask level.
DUMMY_ASK_PRICE = 9_999_999_999
#: Price LOBSTER writes for an empty bid level.
DUMMY_BID_PRICE = -9_999_999_999
#: LOBSTER prices are dollars x 10**4.
LOBSTER_PRICE_DECIMALS = 4

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


#: More digits than any int64 or uint64 has (20): refused before int() sees them.
_MAX_DIGITS = 20


def _digits(text: str) -> bool:
    """Strict ASCII digits: ``str.isdigit`` alone accepts ``'\u00b2'`` and ``'\u0661'``."""
    return text.isascii() and text.isdigit()


def _int(text: str, what: str, where: str) -> int:
    t = text.strip()
    body = t[1:] if t[:1] in ("+", "-") else t
    if not _digits(body):
        raise DecodeError(f"{where}: {what} must be an integer, got {text[:40]!r}")
    if len(body.lstrip("0")) > _MAX_DIGITS:
        raise DecodeError(f"{where}: {what} {text[:40]!r}... has more than {_MAX_DIGITS} digits "
                          f"(out of range)")
    return int(t)


def _time_ns(text: str, where: str) -> int:
    """Seconds after midnight with up to 9 decimals, exactly, as integer nanoseconds."""
    t = text.strip()
    whole, dot, frac = t.partition(".")
    if not _digits(whole) or (dot and not _digits(frac)):
        raise DecodeError(f"{where}: time must be seconds after midnight such as "
                          f"'34200.004241176', got {text[:40]!r}")
    if len(whole.lstrip("0")) > _MAX_DIGITS:
        raise DecodeError(f"{where}: time {text[:40]!r}... is out of range")
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
    check_decimals(price_decimals, "price_decimals")


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
    side = BID if direction == 1 else ASK
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
    if not is_int(levels, 1):
        raise ValueError(f"levels must be a positive int, got {levels!r}")
    ncols = 4 * levels
    with _Source(source) as src:
        name = src.name
        try:
            text = list(src.lines)
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{name}: not an ASCII LOBSTER orderbook file ({exc})") from None
    for lineno, line in enumerate(text, start=1):
        # a str source is not decoded here: refuse what the bytes path refuses, before
        # numpy's parser sees it (numpy 2.4's loadtxt crashes the process on a character
        # beyond the BMP, such as "1,\U00100000")
        if not line.isascii():
            at = next(i for i, ch in enumerate(line) if ord(ch) > 127)
            field = line.rstrip("\r\n").split(",")[line.count(",", 0, at)]
            raise DecodeError(f"{name}:{lineno}: column {line.count(',', 0, at) + 1} is not "
                              f"an integer in ASCII digits: {field!r:.40}")
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


# ---------------------------------------------------------------------------
# the writer
# ---------------------------------------------------------------------------

# Integers become CSV text in bulk, never one str() per value: each number is
# laid out as 4-character cells looked up in a table ("0042" inside a number,
# "  42" where it starts, blanks before that), and the blanks are deleted from
# the whole block in one bytes.translate pass.
_QUAD_ZERO = "".join(f"{i:04d}" for i in range(10_000))
_QUAD_LEAD = "    " + "".join(f"{i:>4d}" for i in range(1, 10_000))
_QUADS = np.frombuffer((_QUAD_ZERO + _QUAD_LEAD + "   0").encode("ascii"), dtype=np.uint32)
_LEAD = 10_000  # offset of the blank-padded cells in _QUADS
_CELL_ZERO = 20_000  # "   0": the number 0
_POW10 = np.array([10**k for k in range(1, 20)], dtype=np.uint64)
_NS_PER_DAY = 86_400 * _NS_PER_S
#: Events per block: bounds the writer's memory (about 3 KB per event at 10 levels).
_BLOCK = 1 << 14

# Actions that become LOBSTER messages; the others are not representable.
_ADD, _REDUCE, _EXECUTE, _DELETE = Action.ADD, Action.REDUCE, Action.EXECUTE, Action.DELETE
_REPLACE, _TRADE, _STATUS = Action.REPLACE, Action.TRADE, Action.STATUS
_WRITABLE = np.array([_ADD, _REDUCE, _EXECUTE, _DELETE, _REPLACE, _TRADE, _STATUS], dtype=np.uint8)
_NOT_REPRESENTABLE = {
    Action.SET_LEVEL: "a price-level (L2) update has no order to describe",
    Action.CLEAR: "LOBSTER has no message that empties the book",
    Action.SNAPSHOT_BEGIN: "LOBSTER has no snapshot messages",
    Action.SNAPSHOT_END: "LOBSTER has no snapshot messages",
}


def _cells(mag: np.ndarray, neg: np.ndarray | None, sep: str) -> np.ndarray:
    """``(n, k)`` uint32 cells whose bytes, blanks removed, are ``[-]mag`` then ``sep``.

    ``mag`` is a 1-d non-negative integer array; ``neg`` marks values to print
    with a minus sign (or is None).
    """
    mag = np.asarray(mag).astype(np.uint64, copy=False)
    n = len(mag)
    if neg is not None and not neg.any():
        neg = None
    digits = len(str(int(mag.max()))) if n else 1
    nq = (digits + (neg is not None) + 3) // 4
    out = np.empty((n, nq + 1), dtype=np.uint32)
    rest = mag
    for k in range(nq - 1, -1, -1):
        if k:
            rest, low = np.divmod(rest, np.uint64(10_000))
            idx = low.astype(np.intp)
            idx[rest == 0] += _LEAD  # nothing but zeros above: the leading cell
        else:
            idx = rest.astype(np.intp) + _LEAD
        if k == nq - 1:
            idx[mag == 0] = _CELL_ZERO
        out[:, k] = _QUADS[idx]
    if neg is not None:
        (i,) = np.nonzero(neg)
        ndig = np.searchsorted(_POW10, mag[i], side="right") + 1
        out.view(np.uint8).reshape(n, -1)[i, 4 * nq - 1 - ndig] = ord("-")
    out[:, nq] = np.frombuffer(sep.encode("ascii").ljust(4), dtype=np.uint32)[0]
    return out


def _int_cells(values: np.ndarray, sep: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)
    # abs(INT64_MIN) wraps to itself, and its uint64 view is the right magnitude
    return _cells(np.abs(v).view(np.uint64), v < 0, sep)


def _time_cells(ts: np.ndarray, time_format: str) -> np.ndarray:
    """``seconds.fraction,`` for ns after midnight, exactly (integers only, never float)."""
    sec, frac = np.divmod(ts, _NS_PER_S)
    n = len(ts)
    whole = _int_cells(sec, ".")
    digits = np.empty((n, 4), dtype=np.uint32)  # 3 blanks, 9 digits, then ","
    hi, rest = np.divmod(frac, 10**8)
    mid, low = np.divmod(rest, 10**4)
    digits[:, 1] = _QUADS[mid.astype(np.intp)]
    digits[:, 2] = _QUADS[low.astype(np.intp)]
    text = digits.view(np.uint8)
    text[:, :3] = ord(" ")
    text[:, 3] = hi + ord("0")
    if time_format == "trim":
        # LOBSTER drops trailing zeros (34200.00426064); one decimal always stays
        keep = np.full(n, 9, dtype=np.int64)
        for k in range(1, 9):
            keep[frac % 10**k == 0] = 9 - k
        text[:, :12][np.arange(12) >= (3 + keep)[:, None]] = ord(" ")
    text[:, 12:] = np.frombuffer(b",   ", dtype=np.uint8)
    return np.concatenate([whole, digits], axis=1)


def _csv(*columns: np.ndarray) -> bytes:
    """Rows of cell blocks (first axis = row) joined into CSV bytes."""
    n = len(columns[0])
    cells = np.concatenate([c.reshape(n, -1) for c in columns], axis=1)
    return cells.tobytes().translate(None, b" ")


def _lobster_prices(
    prices: np.ndarray, price_decimals: int, what: str, events: np.ndarray
) -> np.ndarray:
    """Prices at ``price_decimals`` as dollars x 10**4, exactly, else UpdateError.

    ``events`` gives, for each price, the index of the event it belongs to.
    """
    shift = price_decimals - LOBSTER_PRICE_DECIMALS
    if shift == 0:
        return prices
    if shift > 0:
        scaled, rest = np.divmod(prices, 10**shift)
        bad = np.flatnonzero(rest)
        why = f"has more than {LOBSTER_PRICE_DECIMALS} decimals"
    else:
        limit = _INT64_MAX // 10**-shift
        bad = np.flatnonzero((prices > limit) | (prices < -limit))
        scaled = prices * 10**-shift
        why = "overflows int64 as dollars x 10^4"
    if len(bad):
        k = int(bad[0])
        raise UpdateError(
            f"event {int(events[k])}: {what} {int(prices[k])} (at price_decimals="
            f"{price_decimals}) {why}, so LOBSTER cannot represent it exactly",
            int(events[k]),
        )
    return scaled


def _orderbook_cells(tops: np.ndarray, price_decimals: int, events: np.ndarray) -> np.ndarray:
    """``(n, 4, L)`` ``OrderBook.top`` arrays as LOBSTER orderbook cells."""
    n, _, levels = tops.shape
    bid_p, bid_q, ask_p, ask_q = (tops[:, j].ravel() for j in range(4))
    ask_p = np.where(ask_q > 0, ask_p, 0)
    bid_p = np.where(bid_q > 0, bid_p, 0)
    if price_decimals != LOBSTER_PRICE_DECIMALS:
        rows = np.repeat(events, levels)
        ask_p = _lobster_prices(ask_p, price_decimals, "an ask level at price", rows)
        bid_p = _lobster_prices(bid_p, price_decimals, "a bid level at price", rows)
    table = np.empty((n * levels, 4), dtype=np.int64)
    table[:, 0] = np.where(ask_q > 0, ask_p, DUMMY_ASK_PRICE)
    table[:, 1] = ask_q
    table[:, 2] = np.where(bid_q > 0, bid_p, DUMMY_BID_PRICE)
    table[:, 3] = bid_q
    flat = table.ravel()
    cells = _int_cells(flat, ",").reshape(n, 4 * levels, -1)
    cells[:, -1, -1] = np.frombuffer(b"\n   ", dtype=np.uint32)[0]
    return cells


class _Sink:
    """A path (created here, removed again if writing fails) or a caller's file object."""

    def __init__(self, target: Any, what: str) -> None:
        self._path: str | None = None
        self._file: Any = None
        if isinstance(target, (str, os.PathLike)):
            self._path = os.fspath(target)
            self._file = open(target, "wb")
            self._text = False
        elif hasattr(target, "write"):
            self._file = target
            self._text = not isinstance(target, (io.RawIOBase, io.BufferedIOBase))
        else:
            raise TypeError(f"{what} must be a path or a file object, got {type(target).__name__}")

    def write(self, data: bytes) -> None:
        self._file.write(data.decode("ascii") if self._text else data)

    def close(self, failed: bool) -> None:
        if self._path is not None:
            self._file.close()
            if failed:
                os.unlink(self._path)


def _check_book(book: Any, price_decimals: int) -> Any:
    from fastbook.l3 import OrderBook

    if book is None:
        return OrderBook(price_decimals=price_decimals)
    if not all(hasattr(book, a) for a in ("order", "add", "delete", "top", "price_decimals")):
        raise TypeError(f"book must be a fastbook.OrderBook, got {type(book).__name__}")
    if book.price_decimals != price_decimals:
        raise ValueError(
            f"book has price_decimals={book.price_decimals} but the events have "
            f"price_decimals={price_decimals}"
        )
    if getattr(book, "on_error", "raise") != "raise":
        raise ValueError(
            "book must be built with on_error='raise' (the writer stops at the "
            "first event the book refuses)"
        )
    return book


def write(
    events: Any,
    message_file: Any,
    orderbook_file: Any,
    /,
    *,
    levels: int = 10,
    price_decimals: int = 4,
    instrument: int | None = None,
    book: Any = None,
    on_unknown: str = "raise",
    time_format: str = "trim",
) -> int:
    """Write events of one instrument as a LOBSTER message file and orderbook file.

    The events are replayed through an L3 :class:`fastbook.OrderBook`, which
    supplies what LOBSTER rows carry but events may not (the size, price and
    side of a deleted or executed order) and the book after every row.

    Parameters
    ----------
    events : numpy.ndarray of ``fastbook.events.EVENT_DTYPE``
        The normalized events, in order; ``ts_exchange`` must be ns after
        midnight.
    message_file, orderbook_file : str, os.PathLike or file object
        Where to write. Paths are created (and removed again if writing
        fails); text or binary file objects are written to and left open.
    levels : int, default 10
        Levels per side in the orderbook file.
    price_decimals : int, default 4
        Fixed-point scale of the event prices; they are rescaled exactly to
        LOBSTER's dollars x 10**4 (a price that cannot be is an error).
    instrument : int, optional
        The instrument to write when ``events`` holds several (else an error).
    book : fastbook.OrderBook, optional
        The book before the first event (orders resting before the stream
        starts), updated in place: after the call it is the book after the
        last event, so a long stream can be written in consecutive calls to the
        same open files. A new empty book when omitted.
    on_unknown : {"raise", "event"}, default "raise"
        A REDUCE, EXECUTE or DELETE naming an order the book does not hold
        (placed before the stream started) is an error, or with ``"event"``
        is written from the event's own side, price and ``qty`` (as
        ``read_messages`` fills them) and leaves the book unchanged.
    time_format : {"trim", "fixed"}, default "trim"
        ``"trim"`` writes times as LOBSTER does, trailing zeros dropped
        (``34200.00426064``, ``34200.5``, at least one decimal); ``"fixed"``
        always writes 9 decimals.

    Returns
    -------
    int
        The number of rows written to each file.

    Notes
    -----
    Every event gives one row, except REPLACE which gives two:

    ========================  ====  =====================================================
    event                     type  order id, size, price, direction
    ========================  ====  =====================================================
    ADD                       1     the event's
    REDUCE                    2     ``qty`` cancelled; price and direction from the book
    DELETE                    3     size = the remaining size deleted, from the book
    EXECUTE                   4     ``qty`` executed; price and side of the resting order
    REPLACE                   3, 1  deletion of the old order (its remaining size), then
                                    submission of ``new_order_id`` at the event's price
                                    and ``qty`` on the same side (also an in-place
                                    modify flagged ``KEEP_PRIORITY``: LOBSTER has no
                                    such message; the levels are the same either way)
    TRADE + CROSS             6     order id -1 when 0; direction -1 when side is 0
    TRADE (HIDDEN or other)   5     the event's order id, ``qty``, price and side
    STATUS                    7     order id 0, size 0, direction -1, price -1 if
                                    HALTED, 0 if QUOTING, else 1 (trading resumed)
    ========================  ====  =====================================================

    A side-keyed ``book`` (J-GATE ITCH, ids unique per side) finds each order
    by the event's ``side``. Direction is 1 for a bid (buy) order and -1 for an ask. CLEAR,
    SET_LEVEL, SNAPSHOT_BEGIN and SNAPSHOT_END have no LOBSTER form and raise.
    Row k of the orderbook file is the book after message row k (after a
    REPLACE, the first of its rows shows the book after the deletion); rows of
    TRADE and STATUS repeat the book. Empty levels are written as price
    9999999999 (ask) or -9999999999 (bid) with size 0.

    Raises
    ------
    fastbook.UpdateError
        An event that cannot be written or that the book refuses (unknown
        order, over-execution, duplicate id, a price LOBSTER cannot represent);
        the message starts with ``event <index>:`` (the index in ``events``)
        and ``index`` is set. Rows of earlier blocks may already be written to
        file objects (paths are removed).
    fastbook.ArrayError
        ``events`` is not an event array, or holds several instruments and
        ``instrument`` is not given.

    Examples
    --------
    >>> import io
    >>> from fastbook.events import events_from_records
    >>> ev = events_from_records([
    ...     {"ts_exchange": 34200_004241176, "action": "add", "side": 1, "price": 5853300,
    ...      "qty": 18, "order_id": 16113575},
    ...     {"ts_exchange": 34200_5 * 10**8, "action": "delete", "order_id": 16113575}])
    >>> messages, orderbook = io.StringIO(), io.StringIO()
    >>> write(ev, messages, orderbook, levels=1)
    2
    >>> print(messages.getvalue(), end="")
    34200.004241176,1,16113575,18,5853300,1
    34200.5,3,16113575,18,5853300,1
    >>> print(orderbook.getvalue(), end="")
    9999999999,0,5853300,18
    9999999999,0,-9999999999,0
    """
    ev = check_events(events)
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
        raise ValueError(f"levels must be a positive int, got {levels!r}")
    _check_price_decimals(price_decimals)
    if on_unknown not in ("raise", "event"):
        raise ValueError(f"on_unknown must be 'raise' or 'event', got {on_unknown!r}")
    if time_format not in ("trim", "fixed"):
        raise ValueError(f"time_format must be 'trim' or 'fixed', got {time_format!r}")
    index: np.ndarray | None = None
    if instrument is None:
        inst = ev["instrument"]
        if len(inst) and (inst != inst[0]).any():
            found = np.unique(inst)
            shown = ", ".join(str(i) for i in found[:5]) + (", ..." if len(found) > 5 else "")
            raise ArrayError(
                f"events hold {len(found)} instruments ({shown}) but a LOBSTER "
                f"file describes one: pass instrument= to choose it"
            )
    else:
        if not isinstance(instrument, int) or not 0 <= instrument <= 2**32 - 1:
            raise ValueError(f"instrument must be an int in the uint32 range, got {instrument!r}")
        mine = ev["instrument"] == instrument
        if not mine.all():
            index = np.flatnonzero(mine)
            ev = ev[index]
    book = _check_book(book, price_decimals)
    sinks: list[_Sink] = []
    failed = True
    rows = 0
    try:
        sinks.append(_Sink(message_file, "message_file"))
        sinks.append(_Sink(orderbook_file, "orderbook_file"))
        for start in range(0, len(ev), _BLOCK):
            block = ev[start : start + _BLOCK]
            where = (
                index[start : start + _BLOCK]
                if index is not None
                else np.arange(start, start + len(block))
            )
            messages, orderbook, n = _write_block(
                block, where, book, levels, price_decimals, on_unknown, time_format
            )
            sinks[0].write(messages)
            sinks[1].write(orderbook)
            rows += n
        failed = False
    finally:
        for sink in sinks:
            sink.close(failed)
    return rows


def _event_error(where: np.ndarray, k: int, message: str) -> UpdateError:
    i = int(where[k])
    return UpdateError(f"event {i}: {message}", i)


def _write_block(
    ev: np.ndarray,
    where: np.ndarray,
    book: Any,
    levels: int,
    price_decimals: int,
    on_unknown: str,
    time_format: str,
) -> tuple[bytes, bytes, int]:
    """LOBSTER message and orderbook text for one block of events; ``where`` = their indices."""
    action = ev["action"]
    bad = np.flatnonzero(~np.isin(action, _WRITABLE))
    if len(bad):
        k = int(bad[0])
        a = int(action[k])
        why = _NOT_REPRESENTABLE.get(a)
        if why is None:
            raise _event_error(where, k, f"action {a} is not a fastbook.events.Action")
        hint = (
            " (give the book before the stream as book= instead)"
            if a == Action.SNAPSHOT_BEGIN
            else ""
        )
        raise _event_error(where, k, f"{Action(a).name} cannot be written as LOBSTER: {why}{hint}")
    ts = ev["ts_exchange"]
    bad = np.flatnonzero((ts < 0) | (ts >= 2 * _NS_PER_DAY))
    if len(bad):
        k = int(bad[0])
        raise _event_error(
            where,
            k,
            f"ts_exchange {int(ts[k])} is not ns after midnight "
            f"(LOBSTER times are seconds after midnight; subtract "
            f"the day's midnight from epoch timestamps)",
        )
    side, flags = ev["side"], ev["flags"]
    price, qty, order_id = ev["price"], ev["qty"], ev["order_id"]

    # one row per event, two per REPLACE
    replace = action == _REPLACE
    counts = 1 + replace.astype(np.intp)
    first = np.cumsum(counts) - counts  # each event's first row
    n = int(counts.sum())
    row_event = np.repeat(where, counts)
    kind = np.zeros(n, dtype=np.int64)
    oid = np.repeat(order_id, counts)
    size = np.repeat(qty, counts)
    px = np.repeat(price, counts)
    direction = np.repeat(np.where(side == 1, 1, -1), counts)
    for a, t in ((_ADD, 1), (_REDUCE, 2), (_DELETE, 3), (_EXECUTE, 4)):
        kind[first[action == a]] = t

    trades = np.flatnonzero(action == _TRADE)
    if len(trades):
        cross = (flags[trades] & Flags.CROSS) != 0
        sides = side[trades]
        bad = np.flatnonzero(
            ((sides != 1) & (sides != 2) & ~(cross & (sides == 0))) | (qty[trades] < 0)
        )
        if len(bad):
            k = int(trades[bad[0]])
            raise _event_error(
                where,
                k,
                f"a TRADE needs side 1 or 2 (0 only for a CROSS) and "
                f"qty >= 0, got side {int(side[k])}, qty {int(qty[k])}",
            )
        kind[first[trades]] = np.where(cross, 6, 5)
    status = np.flatnonzero(action == _STATUS)
    if len(status):
        rows = first[status]
        f = flags[status]
        kind[rows] = 7
        oid[rows] = 0
        size[rows] = 0
        px[rows] = np.where(f & Flags.HALTED, -1, np.where(f & Flags.QUOTING, 0, 1))
        direction[rows] = -1

    # replay the order actions through the book, filling in what only it knows
    tops = np.empty((n, 4, levels), dtype=np.int64)
    have_top = np.zeros(n, dtype=bool)
    before = book.top(levels)
    todo = np.flatnonzero((action != _TRADE) & (action != _STATUS))
    fill_rows: list[int] = []
    fill_size: list[int] = []
    fill_px: list[int] = []
    fill_dir: list[int] = []
    new_ids: list[tuple[int, int]] = []
    views = list(tops)
    b_add, b_delete, b_order = book.add, book.delete, book.order
    keyed = bool(getattr(book, "side_keys", False))
    b_reduce, b_execute, b_top = book.reduce, book.execute, book.top
    acts, sds, pxs, qtys, oids = (
        action[todo].tolist(),
        side[todo].tolist(),
        price[todo].tolist(),
        qty[todo].tolist(),
        order_id[todo].tolist(),
    )
    news = ev["new_order_id"][todo].tolist()
    rows0 = first[todo].tolist()
    j = 0
    try:
        for j in range(len(acts)):
            a, oid_j = acts[j], oids[j]
            if a == _ADD:
                b_add(oid_j, sds[j], pxs[j], qtys[j])
            else:
                # side names the order in a side-keyed book (J-GATE); others ignore it
                known = b_order(oid_j, side=sds[j]) if keyed else b_order(oid_j)
                r = rows0[j]
                if known is None:
                    if a == _REPLACE or on_unknown == "raise":
                        hint = (
                            ""
                            if a == _REPLACE
                            else (
                                "; pass the book before the stream as book=, or on_unknown='event' "
                                "to write such events from their own side, price and qty"
                            )
                        )
                        raise UpdateError(
                            f"{Action(a).name} of order {oid_j}, which is not in the book{hint}"
                        )
                    if sds[j] != 1 and sds[j] != 2:
                        raise UpdateError(
                            f"{Action(a).name} of order {oid_j}, which is not in "
                            f"the book, has side {sds[j]} (need 1 or 2)"
                        )
                elif a == _REPLACE:
                    o_side, o_price, o_qty = known
                    if news[j] != oid_j and (b_order(news[j], side=o_side) if keyed
                                             else b_order(news[j])) is not None:
                        raise UpdateError(
                            f"REPLACE of order {oid_j}: the new order id "
                            f"{news[j]} is already in the book"
                        )
                    if qtys[j] < 1:
                        raise UpdateError(
                            f"REPLACE of order {oid_j}: qty must be >= 1, got {qtys[j]}"
                        )
                    if keyed:
                        b_delete(oid_j, side=o_side)
                    else:
                        b_delete(oid_j)
                    b_top(levels, views[r])
                    fill_rows.append(r)
                    fill_size.append(o_qty)
                    fill_px.append(o_price)
                    fill_dir.append(1 if o_side == 1 else -1)
                    new_ids.append((r, news[j]))
                    b_add(news[j], o_side, pxs[j], qtys[j])
                    b_top(levels, views[r + 1])
                    fill_rows.append(r + 1)
                    fill_size.append(qtys[j])
                    fill_px.append(pxs[j])
                    fill_dir.append(1 if o_side == 1 else -1)
                    continue
                else:
                    o_side, o_price, o_qty = known
                    if a == _DELETE:
                        if keyed:
                            b_delete(oid_j, side=o_side)
                        else:
                            b_delete(oid_j)
                        fill_size.append(o_qty)
                    else:
                        take = b_execute if a == _EXECUTE else b_reduce
                        if keyed:
                            take(oid_j, qtys[j], side=o_side)
                        else:
                            take(oid_j, qtys[j])
                        fill_size.append(qtys[j])
                    fill_rows.append(r)
                    fill_px.append(o_price)
                    fill_dir.append(1 if o_side == 1 else -1)
            b_top(levels, views[rows0[j]])
    except UpdateError as exc:
        k = int(todo[j])
        what = f"{Action(int(action[k])).name} of order {int(order_id[k])}"
        msg = str(exc)
        raise _event_error(where, k, msg if msg.startswith(what) else f"{what}: {msg}") from None
    have_top[first[todo]] = True
    if fill_rows:
        at = np.array(fill_rows, dtype=np.intp)
        size[at] = fill_size
        px[at] = fill_px
        direction[at] = fill_dir
    if new_ids:
        r, new = np.array(new_ids, dtype=np.uint64).T
        r = r.astype(np.intp)
        have_top[r + 1] = True
        kind[r] = 3
        kind[r + 1] = 1
        oid[r + 1] = new
    # rows of TRADE and STATUS events repeat the book as it was
    if not have_top.all():
        last = np.maximum.accumulate(np.where(have_top, np.arange(n), -1))
        gap = np.flatnonzero(~have_top)
        src = last[gap]
        tops[gap[src >= 0]] = tops[src[src >= 0]]
        tops[gap[src < 0]] = before

    # the text
    not_status = kind != 7
    if price_decimals != LOBSTER_PRICE_DECIMALS:
        px[not_status] = _lobster_prices(
            px[not_status], price_decimals, "price", row_event[not_status]
        )
    cross_no_id = (kind == 6) & (oid == 0)
    messages = _csv(
        _time_cells(np.repeat(ts, counts), time_format),
        _int_cells(kind, ","),
        _cells(np.where(cross_no_id, np.uint64(1), oid), cross_no_id, ","),
        _int_cells(size, ","),
        _int_cells(px, ","),
        _int_cells(direction, "\n"),
    )
    orderbook = _csv(_orderbook_cells(tops, price_decimals, row_event))
    return messages, orderbook, n
