"""JPX "ITCH Historical CSV" (Osaka Exchange full order information): a streaming reader.

JPX sells the Osaka Exchange's order-by-order feed in two forms, "ITCH Binary
Data" (read by :mod:`fastbook.codecs.ose_itch`) and "ITCH Historical CSV Data",
read here into the **same events and books**. Each line is ``TAG,time,...``
with the fields of the binary message of that tag, in the same order
(``docs/ose-itch.md`` lists every tag's columns as far as public sources show):

* times are UTC ISO 8601 with nanoseconds and the epoch ns in parentheses,
  ``2021-02-28T21:07:50.931282000(1614546470931282000)``; the parenthesised
  value is used (exact), the ISO text only when it is missing;
* instruments are written ``SYMBOL(order_book_id)``
  (``PUT_NK225_210312_19250(126484980)``); a bare id is accepted too;
* ``T,seconds`` lines carry the second, as in the binary feed;
* participant ids are blank;
* a modification is written as a ``D`` followed by a new ``A`` of the same
  (order book, side, order id). This reader merges such a pair into one
  REPLACE with ``Flags.KEEP_PRIORITY`` (the binary ``U``), so the CSV and
  binary forms of a day give identical books, queue order included.

The reader is tolerant of extra trailing columns (later file versions may add
some) and of unknown tags (counted in :meth:`Decoder.counts`, skipped); a line
with too few columns or a field that is not a number is a
:class:`fastbook.DecodeError` naming the stream, line and byte offset.

>>> from fastbook.synth import ose_day
>>> import fastbook as fb
>>> binary = fb.replay(ose_day(3000, seed=2), "ose_itch")
>>> text = fb.replay(ose_day(3000, seed=2, form="csv"), "jpx_csv")
>>> all(binary.books[i].top(5).tolist() == text.books[i].top(5).tolist()
...     for i in range(len(binary.books)))
True
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from fastbook._checks import is_int
from fastbook._shard import symbol_filter
from fastbook._vocab import ASK, BID, INT64_MAX, INT64_MIN, NO_SIDE
from fastbook.codecs._osewire import EQUILIBRIUM_FIELDS, INVALID_KINDS, NO_PRICE, state_flags
from fastbook.codecs.ose_itch import register_book
from fastbook.errors import DecodeError
from fastbook.events import EVENT_DTYPE, Action, Flags

__all__ = ["BATCH_EVENTS", "COLUMNS", "TS_ORIGIN", "VENUE", "Decoder", "parse_time"]

#: Event times are ns since the UNIX epoch (UTC).
TS_ORIGIN = "epoch"
#: The venue recorded for the instruments.
VENUE = "XOSE"
#: Events per batch handed out by :class:`Decoder`.
BATCH_EVENTS = 1 << 16

#: The columns of each tag after ``TAG`` (all tags but ``T`` start with the time).
COLUMNS: dict[str, tuple[str, ...]] = {
    "T": ("seconds",),
    "S": ("time", "event_code"),
    "R": ("time", "order_book_id", "symbol", "long_name", "isin", "financial_product",
          "currency", "decimals_in_price", "decimals_in_nominal_value", "odd_lot_size",
          "round_lot_size", "block_lot_size", "nominal_value", "number_of_legs",
          "underlying_order_book_id", "strike_price", "expiration_date",
          "decimals_in_strike_price", "put_or_call"),
    "M": ("time", "combination_order_book_id", "leg_order_book_id", "leg_side", "leg_ratio"),
    "L": ("time", "order_book", "tick_size", "price_from", "price_to"),
    "O": ("time", "order_book", "state_name"),
    "A": ("time", "order_id", "order_book", "side", "order_book_position", "quantity", "price",
          "order_attributes", "lot_type"),
    "F": ("time", "order_id", "order_book", "side", "order_book_position", "quantity", "price",
          "order_attributes", "lot_type", "participant_id"),
    "E": ("time", "order_id", "order_book", "side", "executed_quantity", "match_id",
          "combo_group_id", "owner_participant_id", "counterparty_participant_id"),
    "C": ("time", "order_id", "order_book", "side", "executed_quantity", "match_id",
          "combo_group_id", "owner_participant_id", "counterparty_participant_id",
          "trade_price", "occurred_at_cross", "printable"),
    "U": ("time", "order_id", "order_book", "side", "new_order_book_position", "quantity",
          "price", "order_attributes"),
    "D": ("time", "order_id", "order_book", "side"),
    "P": ("time", "match_id", "combo_group_id", "side", "quantity", "order_book",
          "trade_price", "owner_participant_id", "counterparty_participant_id", "printable",
          "occurred_at_cross"),
    "Z": ("time", "order_book", "bid_quantity", "ask_quantity", "equilibrium_price",
          "best_bid_price", "best_ask_price", "best_bid_quantity", "best_ask_quantity"),
}
# the columns each tag needs at least (trailing blank participant ids may be cut off)
_NEED = {t: len(c) for t, c in COLUMNS.items()}
_NEED.update({"A": 7, "F": 7, "E": 6, "C": 12, "U": 7, "P": 7})

_SIDES = {"B": BID, "S": ASK}
_ADD, _EXECUTE, _DELETE = int(Action.ADD), int(Action.EXECUTE), int(Action.DELETE)
_REPLACE, _TRADE, _STATUS = int(Action.REPLACE), int(Action.TRADE), int(Action.STATUS)
_CROSS, _NON_PRINTABLE = int(Flags.CROSS), int(Flags.NON_PRINTABLE)
_KEEP_PRIORITY = int(Flags.KEEP_PRIORITY)
_NS = 1_000_000_000

# Explicit bounds for every integer before it reaches C (numpy's event columns, the
# books): the binary message's field widths, or the event column it lands in.
_U32 = (0, (1 << 32) - 1)
_I32 = (-(1 << 31), (1 << 31) - 1)
_I64 = (INT64_MIN, INT64_MAX)
_U64 = (0, (1 << 64) - 1)


def _int(text: str, what: str, bounds: tuple[int, int] = _I64) -> int:
    """A decimal integer of strict ASCII digits (optional ``-``) within ``bounds``.

    ``int()`` alone would take ``' 7'``, ``'1_000'`` and ``'\u0661'`` and any size;
    ValueError (made a DecodeError naming the line by the reader) otherwise.
    """
    body = text[1:] if text[:1] == "-" else text
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"{what} must be an integer, got {text[:40]!r}")
    if len(body) > 20 and body.lstrip("0")[20:]:
        raise ValueError(f"{what} {text[:40]!r}... is out of range")
    value = int(text)
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} is out of range ({lo} to {hi})")
    return value


def parse_time(text: str) -> int:
    """ns since the epoch from ``2021-02-28T21:07:50.931282000(1614546470931282000)``.

    The value in parentheses is used when present; otherwise the ISO text (UTC,
    up to 9 fraction digits, an optional ``Z``) is converted exactly.

    >>> parse_time("2021-02-28T21:07:50.931282000(1614546470931282000)")
    1614546470931282000
    >>> parse_time("2021-02-28T21:07:50.931282Z")
    1614546470931282000
    """
    open_at = text.find("(")
    if open_at >= 0:
        if not text.endswith(")"):
            raise ValueError(f"bad time {text!r}: no closing parenthesis")
        return _int(text[open_at + 1:-1], "time")
    iso = text[:-1] if text.endswith("Z") else text
    date, _, clock = iso.partition("T")
    whole, _, frac = clock.partition(".")
    if len(frac) > 9 or (frac and not frac.isdigit()):
        raise ValueError(f"bad time {text!r}")
    parts = date.split("-") + whole.split(":")
    if len(parts) != 6 or not all(0 < len(v) <= 4 for v in parts):
        raise ValueError(f"bad time {text!r}")
    y, mo, d, h, mi, s = (_int(v, "time") for v in parts)
    seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    value = seconds * _NS + _int(frac.ljust(9, "0") or "0", "time")
    if not _I64[0] <= value <= _I64[1]:
        raise ValueError(f"time {text!r} is outside int64 ns (1677-09-21 to 2262-04-11)")
    return value


def _book_id(text: str) -> tuple[int, str]:
    """(order book id, symbol) of ``SYMBOL(id)`` or a bare id."""
    if text.endswith(")"):
        open_at = text.rfind("(")
        if open_at < 0:
            raise ValueError(f"bad instrument {text!r}")
        return _int(text[open_at + 1:-1], "order book id", _U32), text[:open_at]
    return _int(text, "order book id", _U32), ""


class Decoder:
    """Streaming reader of JPX historical CSV into event batches for a :class:`fastbook.BookSet`.

    The same interface and options as :class:`fastbook.codecs.ose_itch.Decoder`
    (``symbols``, ``venue``, ``name``, ``batch``, ``on_invalid``,
    ``keep_positions``; the tables ``directory``, ``instruments``, ``legs``,
    ``tick_sizes``, ``states`` and :meth:`equilibrium`), so
    ``fastbook.replay(path, codec="jpx_csv")`` works. ``framing`` is accepted for
    the command line's sake and must be ``None``, ``"csv"`` or the CLI default
    ``"binaryfile"`` (ignored). ``merge_modifications=False`` keeps each
    ``D``/``A`` pair as a DELETE and an ADD (the order loses its place).
    """

    def __init__(self, bookset: Any, *, symbols: Iterable[str] | None = None,
                 framing: str | None = None, venue: str = VENUE, name: str = "<stream>",
                 batch: int = BATCH_EVENTS, on_invalid: str = "raise",
                 keep_positions: bool = False, merge_modifications: bool = True) -> None:
        if framing not in (None, "csv", "binaryfile"):
            raise ValueError(f"the JPX CSV codec reads text lines; framing must be 'csv', "
                             f"got {framing!r}")
        if not is_int(batch, 1):
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        if on_invalid not in ("raise", "skip"):
            raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
        from fastbook.driver import registry

        #: where instruments are announced (the driver's books); None: scanning
        self.registry = registry(bookset)
        self.symbols = symbol_filter(symbols)
        self.venue = venue
        self.name = name
        self.batch = batch
        self.on_invalid = on_invalid
        self.keep_positions = keep_positions
        self.merge_modifications = merge_modifications
        self.messages = 0       #: lines read (messages), blank lines excluded
        self.events = 0         #: events handed out
        self.directory: list[dict[str, Any]] = []
        self.instruments: dict[int, int] = {}
        self.legs: dict[int, list[dict[str, Any]]] = {}
        self.tick_sizes: dict[int, list[tuple[int, int, int]]] = {}
        self.states: dict[int, list[tuple[int, str]]] = {}
        self.batch_positions: np.ndarray | None = None
        self._equilibrium: dict[int, dict[str, Any]] = {}
        self._map: dict[int, int] = {}          # order book id -> instrument (-1 dropped)
        self._obids: dict[int, int] = {}
        self._counts: dict[str, int] = {}
        self._invalid = dict.fromkeys(INVALID_KINDS, 0)
        self._rows: list[tuple[int, ...]] = []
        self._positions: list[int] = []
        self._pending: tuple[tuple[int, ...], int, tuple[int, int, int]] | None = None
        self._tail = b""
        self._base = 0
        self._lineno = 0        # physical lines read (1-based in messages)
        self.seconds: int | None = None
        self._closed = False

    @property
    def bytes(self) -> int:
        """Bytes consumed so far (whole lines)."""
        return self._base

    @property
    def invalid(self) -> dict[str, int]:
        """Invalid lines skipped by kind (``on_invalid="skip"``)."""
        return dict(self._invalid)

    def counts(self) -> dict[str, int]:
        """Lines read so far by tag (unknown tags included)."""
        return dict(self._counts)

    def unknown_types(self) -> int:
        """Lines whose tag this reader does not know (skipped)."""
        return sum(n for t, n in self._counts.items() if t not in COLUMNS)

    def equilibrium(self) -> dict[int, dict[str, Any]]:
        """The last ``Z`` of every chosen book, as :meth:`ose_itch.Decoder.equilibrium`."""
        return {obid: dict(v) for obid, v in self._equilibrium.items()}

    # -- streaming ---------------------------------------------------------------------------
    def feed(self, chunk: Any, /) -> Iterator[np.ndarray]:
        """Read the whole lines of ``chunk`` (bytes-like), yielding event batches in order."""
        if self._closed:
            raise ValueError("this Decoder is closed")
        data = self._tail + bytes(chunk)
        end = data.rfind(b"\n") + 1
        self._tail = data[end:]
        yield from self._lines(data, end)

    def close(self) -> Iterator[np.ndarray]:
        """End of stream: the last line (without a newline) and a held-back delete."""
        if self._closed:
            return
        self._closed = True
        data, self._tail = self._tail, b""
        yield from self._lines(data, len(data))
        self._flush_pending()
        yield from self._batches()

    def _lines(self, data: bytes, end: int) -> Iterator[np.ndarray]:
        start = 0
        while start < end:
            stop = data.find(b"\n", start, end)
            if stop < 0:
                stop = end
            line = data[start:stop]
            offset = self._base
            self._base += stop - start + (1 if stop < len(data) else 0)
            start = stop + 1
            self._lineno += 1
            text = line.decode("utf-8", "replace").rstrip("\r")
            if not text.strip():
                continue
            try:
                self._line(text)
            except DecodeError:
                raise
            except (ValueError, IndexError) as exc:
                raise DecodeError(f"{self.name}: line {self._lineno} (byte {offset}): "
                                  f"{exc}: {text[:120]!r}") from None
            if len(self._rows) >= self.batch:
                yield from self._batches()
        yield from self._batches()

    def _batches(self) -> Iterator[np.ndarray]:
        while self._rows:
            rows, self._rows = self._rows[:self.batch], self._rows[self.batch:]
            positions, self._positions = self._positions[:self.batch], \
                self._positions[self.batch:]
            events = np.array(rows, dtype=EVENT_DTYPE)
            if self.keep_positions:
                self.batch_positions = np.array(positions, dtype=np.uint32)
            self.events += len(events)
            yield events

    # -- one line ------------------------------------------------------------------------------
    def _invalid_line(self, kind: str, message: str) -> None:
        if self.on_invalid == "skip":
            self._invalid[kind] += 1
            return
        raise DecodeError(f"{self.name}: line {self._lineno}: {message}")

    def _instrument(self, cell: str, tag: str) -> int | None:
        obid, _ = _book_id(cell)
        inst = self._map.get(obid)
        if inst is None:
            if self.registry is None:
                return obid
            self._invalid_line("unknown_book", f"{tag!r} line of order book {obid}, which no R "
                                               f"line named; use on_invalid='skip' to count "
                                               f"and skip such lines")
            return None
        return inst if inst >= 0 else None

    def _emit(self, row: tuple[int, ...], position: int) -> None:
        self._flush_pending()
        self._rows.append(row)
        self._positions.append(position)

    def _flush_pending(self) -> None:
        if self._pending is not None:
            row, _, _ = self._pending
            self._pending = None
            self._rows.append(row)
            self._positions.append(0)

    def _line(self, text: str) -> None:
        cells = text.split(",")
        tag = cells[0]
        number = self.messages
        self.messages += 1
        self._counts[tag] = self._counts.get(tag, 0) + 1
        need = _NEED.get(tag)
        if need is None:
            return
        if len(cells) - 1 < need:
            raise ValueError(f"{tag!r} needs {need} columns after the tag, got {len(cells) - 1}")
        if tag == "T":
            self.seconds = _int(cells[1], "seconds", _U32)
            return
        ts = parse_time(cells[1])
        if tag in ("A", "F", "E", "C", "U", "D"):
            inst = self._instrument(cells[3], tag)
            if inst is None:
                return
            oid = _int(cells[2], "order id", _U64)
            side = _SIDES.get(cells[4], NO_SIDE)
            key = (inst, side, oid)
            if tag in ("A", "F", "U"):
                position = _int(cells[5], "order book position", _U32)
                qty, price = _int(cells[6], "quantity"), _int(cells[7], "price")
                if price == NO_PRICE:
                    self._invalid_line("no_price", f"{tag!r} line of order {oid} has no price")
                    return
                pending = self._pending
                if tag != "U" and pending is not None and pending[2] == key:
                    # D then A of the same order: one modification (the binary U)
                    self._pending = None
                    self._emit((ts, 0, inst, _REPLACE, side, _KEEP_PRIORITY, price, qty, oid,
                                oid, number), position)
                elif tag == "U":
                    self._emit((ts, 0, inst, _REPLACE, side, _KEEP_PRIORITY, price, qty, oid,
                                oid, number), position)
                else:
                    self._emit((ts, 0, inst, _ADD, side, 0, price, qty, oid, 0, number),
                               position)
            elif tag == "D":
                row = (ts, 0, inst, _DELETE, side, 0, 0, 0, oid, 0, number)
                self._flush_pending()
                if self.merge_modifications:
                    self._pending = (row, number, key)
                else:
                    self._emit(row, 0)
            else:
                qty = _int(cells[5], "executed quantity")
                if tag == "E":
                    self._emit((ts, 0, inst, _EXECUTE, side, 0, 0, qty, oid, 0, number), 0)
                else:
                    price = _int(cells[10], "trade price")
                    if price == NO_PRICE:
                        self._invalid_line("no_price", f"'C' line of order {oid} has no price")
                        return
                    flags = (_CROSS if cells[11] == "Y" else 0) | \
                        (_NON_PRINTABLE if cells[12] == "N" else 0)
                    self._emit((ts, 0, inst, _EXECUTE, side, flags, price, qty, oid, 0, number),
                               0)
        elif tag == "P":
            inst = self._instrument(cells[6], tag)
            if inst is None:
                return
            price = _int(cells[7], "trade price")
            if price == NO_PRICE:
                self._invalid_line("no_price", "'P' line has no trade price")
                return
            flags = 0
            if len(cells) > 11:
                flags = (_NON_PRINTABLE if cells[10] == "N" else 0) | \
                    (_CROSS if cells[11] == "Y" else 0)
            self._emit((ts, 0, inst, _TRADE, _SIDES.get(cells[4], NO_SIDE), flags, price,
                        _int(cells[5], "quantity"), 0, 0, number), 0)
        elif tag == "O":
            obid, _ = _book_id(cells[2])
            inst = self._instrument(cells[2], tag)
            if inst is None:
                return
            name = cells[3].strip()
            self.states.setdefault(obid, []).append((ts, name))
            self._emit((ts, 0, inst, _STATUS, 0, state_flags(name), 0, 0, 0, 0, number), 0)
        elif tag == "Z":
            obid, _ = _book_id(cells[2])
            inst = self._instrument(cells[2], tag)
            if inst is None or self.registry is None:
                return
            values = [_int(v, COLUMNS["Z"][k + 2]) for k, v in enumerate(cells[3:10])]
            entry = dict(zip(EQUILIBRIUM_FIELDS, [ts, values[2], values[0], values[1],
                                                  *values[3:]], strict=True))
            for k in ("price", "best_bid", "best_ask"):
                if entry[k] == NO_PRICE:
                    entry[k] = None
            self._equilibrium[obid] = entry
        elif tag == "R":
            self._register(cells, ts)
        elif tag == "M":
            self.legs.setdefault(_book_id(cells[2])[0], []).append(
                {"leg": _book_id(cells[3])[0], "side": cells[4],
                 "ratio": _int(cells[5], "leg ratio", _U32)})
        elif tag == "L":
            self.tick_sizes.setdefault(_book_id(cells[2])[0], []).append(
                (_int(cells[3], "tick_size"), _int(cells[4], "price_from"),
                 _int(cells[5], "price_to")))

    def _register(self, cells: list[str], ts: int) -> None:
        c = cells[2:]
        names = COLUMNS["R"][1:]

        def num(k: int, bounds: tuple[int, int] = _U32) -> int:
            return _int(c[k], names[k], bounds)

        strike = num(14, _I32)
        entry = {
            "order_book_id": num(0), "symbol": c[1], "long_name": c[2], "isin": c[3],
            "financial_product": num(4), "currency": c[5], "price_decimals": num(6),
            "nominal_decimals": num(7), "odd_lot": num(8), "round_lot": num(9),
            "block_lot": num(10), "nominal_value": num(11, _U64), "legs": num(12),
            "underlying": num(13), "strike": None if strike == NO_PRICE else strike,
            "strike_decimals": num(16), "expiration": num(15), "put_or_call": num(17),
            "ns": ts % _NS,
        }
        self.directory.append(entry)
        if self.registry is None:
            return
        inst = register_book(self.registry, entry, symbols=self.symbols, venue=self.venue,
                             where=f"{self.name}: line {self._lineno}")
        obid = entry["order_book_id"]
        self._map[obid] = inst
        if inst >= 0:
            self.instruments[obid] = inst
            self._obids[inst] = obid
