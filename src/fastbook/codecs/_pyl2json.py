"""Exchange L2 JSON messages into exact fixed-point levels: the schema and the readable twin.

Venue codecs (``binance``, ``coinbase``, ``bybit``, ...) describe the JSON shape
of their book messages with a :class:`Schema` and read them through a
``Scanner``. Two scanners implement one contract:

* ``fastbook.codecs._l2json.Scanner`` (Cython) reads the raw bytes in one pass,
  parsing decimal strings straight into ``int64`` fixed point (never through
  float) and later applies them to a ``fastbook.Book`` through the core's C API;
* :class:`Scanner` here is the reference: ``json.loads``, then the schema's
  fields looked up in the resulting dicts and ``fastbook.parse_decimal`` on
  each price and quantity. It is the definition of the contract.

The compiled scanner handles the common case itself and hands anything else
(escapes, non-ASCII, duplicate keys, fields in an order it does not expect,
every kind of bad input) to this twin, so for *any* input both give the same
status, fields, levels and error text; ``tests/l2feeds/test_l2json.py`` checks that.

The contract of ``scan(message, /, symbol=None)``, in the order the checks are made:

1. ``message`` (bytes, bytearray, memoryview or str) must be valid JSON whose
   top level is an object; else ``ERROR``.
2. Containers (``Schema.containers``, e.g. ``"data"``) found at the top level
   must be objects (or, when allowed, a list of exactly one object); else
   ``ERROR``. A field whose scope is ``"body"`` is read from the first
   container when the message has it, else from the top level (so one schema
   reads both Binance's raw and combined-stream payloads).
3. The discriminator (e.g. Binance ``"e"``), when the schema has one: missing
   gives ``OTHER`` with :attr:`other` ``None``; a string that is not accepted
   gives ``OTHER`` with that string; any other type is an ``ERROR``. A
   discriminator at the top level is read before step 2, so messages of other
   types may hold anything in the containers (Bybit's trade topics hold lists).
4. The symbol: the schema's symbol field (a string) or, for REST snapshots,
   the ``symbol`` argument. Missing or not a string: ``ERROR``; not registered:
   ``UNKNOWN``; registered with ``book=None``: ``IGNORED``.
5. Integer fields (JSON integers; ``true``/``false``/floats are not
   integers; ``"isotime"`` fields are UTC ISO 8601 strings read as ns), then
   string fields, then level fields, each in schema order: a required field
   that is missing, a value of the wrong type or outside the field's
   ``[lo, hi]``, is an ``ERROR``.
6. Levels, in the order their keys appear in the message: each a JSON array
   ``[price, qty, extras...]`` (``[side, price, qty, ...]`` for a sided field)
   of strings parsed exactly at the book's scales; a price that is not
   positive (unless allowed), a negative quantity, or text that does not parse
   (syntax, more decimals than the scale, int64 overflow) is an ``ERROR``
   naming the field and the level's index.

Only an ``OK`` scan may be applied (``apply()``): the levels in message order,
each an absolute quantity (0 removes the level), all of them validated before
the first is applied. ``apply()`` also counts, per symbol, the calls and the
levels they applied (``applied(symbol)``), so a venue's hot path keeps no
Python counters. ``read(message)`` is ``scan`` returning ``(target, n,
*ints)`` for an ``OK`` scan and ``None`` otherwise: one call per message.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

# The schema, the scan statuses and iso_to_ns are the definitions both scanners read; they
# live in _l2schema and are re-exported here, where the contract is written down.
from fastbook.codecs._l2schema import (
    ASK,
    BID,
    ERROR,
    FIELD_KINDS,
    IGNORED,
    INT64_MIN,
    OK,
    OTHER,
    STATUS_NAMES,
    UNKNOWN,
    Field,
    Schema,
    iso_to_ns,
    short_repr,
)

__all__ = ["ERROR", "FIELD_KINDS", "IGNORED", "OK", "OTHER", "STATUS_NAMES", "UNKNOWN", "Field",
           "Scanner", "Schema", "iso_to_ns"]


class _HugeInt:
    """A JSON integer too long for ``int()`` (more than :data:`_MAX_INT_DIGITS` digits):
    out of every field's range, as the compiled scanner, which reads any length, finds it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


#: Longer integers are kept as text (``int()`` refuses more than 4300 digits).
_MAX_INT_DIGITS = 1000


def _json_int(text: str) -> int | _HugeInt:
    return int(text) if len(text) <= _MAX_INT_DIGITS else _HugeInt(text)


_decode = json.JSONDecoder(parse_int=_json_int).decode


def _tname(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object", _HugeInt: "an integer"}.get(
                type(value), type(value).__name__)


_MISSING = object()


class _Error(Exception):
    """Internal: stops a scan with a message."""


def _field_value(get: Any, f: Any) -> Any:
    """The value of field ``f`` (``get(name, scope)`` looks it up), or ``_MISSING``.

    A required field that is missing stops the scan.
    """
    there, value = get(f.name, f.scope)
    if there:
        return value
    if f.required:
        raise _Error(f"missing field {f.name!r}")
    return _MISSING


def _int_value(f: Any, value: Any) -> int:
    """The value of an ``int`` or ``isotime`` field, checked against its kind and range."""
    if f.kind == "isotime":
        if type(value) is not str:
            raise _Error(f"{f.name}: expected an ISO 8601 time, got {_tname(value)}")
        try:
            value = iso_to_ns(value)
        except ValueError as exc:
            raise _Error(f"{f.name}: {exc}") from None
    elif type(value) is _HugeInt:
        raise _Error(f"{f.name}: {value} is outside [{f.lo}, {f.hi}]")
    elif type(value) is not int:
        raise _Error(f"{f.name}: expected an integer, got {_tname(value)} {short_repr(value)}")
    if not f.lo <= value <= f.hi:
        raise _Error(f"{f.name}: {value} is outside [{f.lo}, {f.hi}]")
    return value


class Scanner:
    """The reference scanner: ``json.loads`` plus ``parse_decimal`` (see the module docstring).

    ``register(symbol, book, target)`` names the book (whose scales parse that
    symbol's levels) and an object returned as :attr:`target` (a venue keeps
    its per-symbol state there); ``book=None`` makes the symbol ``IGNORED``.
    After ``scan`` the attributes describe the message: :attr:`status`,
    :attr:`kind` (index of the accepted discriminator value), :attr:`tag` (the
    discriminator's value once read), :attr:`other` (the unaccepted value, for
    ``OTHER``), :attr:`symbol`, :attr:`target`, :attr:`ints`, :attr:`strs`,
    :attr:`found`, :attr:`n` (levels) and :attr:`error`.
    """

    COMPILED = False

    def __init__(self, schema: Schema) -> None:
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be a Schema, got {type(schema).__name__}")
        self.schema = schema
        self._registry: dict[str, tuple[Any, Any]] = {}
        self._applied: dict[str, list[int]] = {}      # symbol -> [apply() calls, levels]
        self._clear()
        self.fast = 0           # scans the compiled kernel finished itself (always 0 here)
        self.slow = 0           # scans done by this reference

    # -- registration -----------------------------------------------------------

    def register(self, symbol: str, book: Any, /, target: Any = None) -> None:
        """Parse ``symbol``'s levels at ``book``'s scales and return ``target`` with them."""
        if not isinstance(symbol, str):
            raise TypeError(f"symbol must be a str, got {type(symbol).__name__}")
        if book is not None and not (hasattr(book, "price_decimals") and hasattr(book, "set")):
            raise TypeError(f"book must be a fastbook.Book or None, got {type(book).__name__}")
        self._registry[symbol] = (book, target)
        self._applied.setdefault(symbol, [0, 0])

    def unregister(self, symbol: str, /) -> None:
        """Forget ``symbol``: the next message naming it scans ``UNKNOWN`` again."""
        self._registry.pop(symbol, None)
        self._applied.pop(symbol, None)

    def registered(self, symbol: str, /) -> bool:
        return symbol in self._registry

    # -- results ------------------------------------------------------------------

    def _clear(self) -> None:
        s = self.schema
        self.status = OK
        self.kind = 0
        self.tag: str | None = None
        self.other: str | None = None
        self.symbol: str | None = None
        self.target: Any = None
        self.ints: tuple[int | None, ...] = (None,) * len(s.int_fields)
        self.strs: tuple[str | None, ...] = (None,) * len(s.str_fields)
        self.found = 0
        self.n = 0
        self.error = ""
        self._book: Any = None
        self._sides: list[int] = []
        self._prices: list[int] = []
        self._qtys: list[int] = []

    def level_lists(self) -> tuple[list[int], list[int], list[int]]:
        """The parsed levels as new ``(sides, prices, qtys)`` lists of ints."""
        return list(self._sides), list(self._prices), list(self._qtys)

    def levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The parsed levels as new ``(sides int8, prices int64, qtys int64)`` arrays."""
        return (np.array(self._sides, dtype=np.int8), np.array(self._prices, dtype=np.int64),
                np.array(self._qtys, dtype=np.int64))

    def apply(self) -> bool:
        """Apply the levels of an ``OK`` scan to the symbol's book; True if it is then crossed."""
        if self.status != OK or self._book is None:
            raise RuntimeError("apply() needs a scan that returned OK")
        book = self._book
        set_ = book.set
        for s, p, q in zip(self._sides, self._prices, self._qtys, strict=True):
            set_(s, p, q)
        counts = self._applied[self.symbol]   # type: ignore[index]
        counts[0] += 1
        counts[1] += self.n
        return bool(book.is_crossed())

    def applied(self, symbol: str | None = None) -> tuple[int, int]:
        """``(apply() calls, levels they applied)`` for ``symbol``, or summed over all."""
        if symbol is not None:
            m, n = self._applied[symbol]
            return m, n
        return (sum(v[0] for v in self._applied.values()),
                sum(v[1] for v in self._applied.values()))

    # -- the scan -----------------------------------------------------------------

    def scan(self, message: Any, /, symbol: str | None = None) -> int:
        """Read one message; return (and set :attr:`status`) OK/OTHER/UNKNOWN/IGNORED/ERROR."""
        self._clear()
        self.slow += 1
        try:
            self.status = self._scan(message, symbol)
        except _Error as exc:
            self.error = str(exc)
            self.status = ERROR
        if self.status == ERROR:
            self._sides, self._prices, self._qtys, self.n = [], [], [], 0
        return self.status

    def read(self, message: Any, /, symbol: str | None = None) -> tuple[Any, ...] | None:
        """``scan``, and for an ``OK`` one the tuple ``(target, n, *ints)``; else None."""
        if self.scan(message, symbol) != OK:
            return None
        return (self.target, self.n, *self.ints)

    def _scan(self, message: Any, symbol: str | None) -> int:
        s = self.schema
        if isinstance(message, memoryview):
            message = message.tobytes()
        if not isinstance(message, (bytes, bytearray, str)):
            raise _Error(f"a message must be bytes or str, got {type(message).__name__}")
        try:
            if not isinstance(message, str):
                raw = bytes(message)        # decoded as json.loads decodes bytes
                message = raw.decode(json.detect_encoding(raw), "surrogatepass")
            obj = _decode(message)
        except (ValueError, RecursionError) as exc:
            raise _Error(f"not valid JSON: {exc}") from None
        if type(obj) is not dict:
            raise _Error(f"expected a JSON object, got {_tname(obj)}")
        if s.discriminator is not None and s.discriminator[1] == "top":
            # a top-level type says what the message is before anything else is looked at
            if self._discriminate(obj.get(s.discriminator[0], _MISSING)) == OTHER:
                return OTHER
        scopes: dict[str, dict[str, Any] | None] = {"top": obj}
        for name, list_ok in s.containers:
            value = obj.get(name)
            if name in obj:
                if list_ok and type(value) is list and len(value) == 1:
                    value = value[0]
                if type(value) is not dict:
                    raise _Error(f"{name}: expected an object, got {_tname(value)}")
            scopes[name] = value
        first = s.containers[0][0] if s.containers else None
        scopes["body"] = scopes[first] if first is not None and scopes[first] is not None else obj

        def get(key: str, scope: str) -> tuple[bool, Any]:
            d = scopes[scope]
            if d is None or key not in d:
                return False, None
            return True, d[key]

        if s.discriminator is not None and s.discriminator[1] != "top":
            there, value = get(*s.discriminator)
            if self._discriminate(value if there else _MISSING) == OTHER:
                return OTHER

        if s.symbol is not None:
            there, value = get(*s.symbol)
            if not there:
                raise _Error(f"missing field {s.symbol[0]!r} (the symbol)")
            if type(value) is not str:
                raise _Error(f"{s.symbol[0]}: expected a string, got {_tname(value)}")
            symbol = value
        elif not isinstance(symbol, str):
            raise _Error("this schema needs the symbol as an argument to scan()")
        self.symbol = symbol
        reg = self._registry.get(symbol)
        if reg is None:
            return UNKNOWN
        book, self.target = reg
        if book is None:
            return IGNORED

        ints: list[int | None] = []
        for f in s.int_fields:
            value = _field_value(get, f)
            ints.append(None if value is _MISSING else _int_value(f, value))
            # kept as they come, so that an error further on can still name the sequence
            self.ints = (*ints, *([None] * (len(s.int_fields) - len(ints))))
        strs: list[str | None] = []
        for f in s.str_fields:
            value = _field_value(get, f)
            if value is _MISSING:
                value = None
            elif type(value) is not str:
                raise _Error(f"{f.name}: expected a string, got {_tname(value)}")
            strs.append(value)
        self.strs = tuple(strs)
        found = 0
        for i, f in enumerate(s.level_fields):
            value = _field_value(get, f)
            if value is _MISSING:
                continue
            found |= 1 << i
            if type(value) is not list:
                raise _Error(f"{f.name}: expected a list of levels, got {_tname(value)}")
        self.found = found
        if s.level_fields:
            self._parse_levels(scopes[s.level_fields[0].scope] or {}, book)
        self._book = book
        return OK

    def _discriminate(self, value: Any) -> int:
        """OK when ``value`` is an accepted discriminator value (``kind`` set), else OTHER."""
        s = self.schema
        assert s.discriminator is not None
        if value is _MISSING:
            return OTHER
        if type(value) is not str:
            raise _Error(f"{s.discriminator[0]}: expected a string, got {_tname(value)}")
        self.tag = value
        for i, acc in enumerate(s.accept):
            if value == acc or (s.prefix and value.startswith(acc)):
                self.kind = i
                return OK
        self.other = value
        return OTHER

    def _parse_levels(self, body: dict[str, Any], book: Any) -> None:
        from fastbook import parse_decimal
        from fastbook.errors import DecodeError

        s = self.schema
        pd, qd = book.price_decimals, book.qty_decimals
        by_name = {f.name: f for f in s.level_fields}
        lo, hi = s.level_len
        sides, prices, qtys = self._sides, self._prices, self._qtys
        for key, value in body.items():        # message order
            f = by_name.get(key)
            if f is None:
                continue
            sided = f.kind == "sided"
            fixed_side = BID if f.kind == "bids" else ASK
            lo_n, hi_n = lo + sided, hi + sided
            for i, lv in enumerate(value):
                where = f"{key}[{i}]"
                if type(lv) is not list:
                    raise _Error(f"{where}: expected a list, got {_tname(lv)}")
                if not lo_n <= len(lv) <= hi_n:
                    want = str(lo_n) if lo_n == hi_n else f"{lo_n} to {hi_n}"
                    raise _Error(f"{where}: expected {want} elements, got {len(lv)}")
                if sided:
                    word = lv[0]
                    if type(word) is not str or word not in s.sides:
                        raise _Error(f"{where}: side {short_repr(word)} is not one of "
                                     f"{', '.join(s.sides)}")
                    side, ptext, qtext = s.sides[word], lv[1], lv[2]
                else:
                    side, ptext, qtext = fixed_side, lv[0], lv[1]
                if type(ptext) is not str:
                    raise _Error(f"{where}: price must be a string, got {_tname(ptext)} "
                                 f"{short_repr(ptext)}")
                if type(qtext) is not str:
                    raise _Error(f"{where}: quantity must be a string, got {_tname(qtext)} "
                                 f"{short_repr(qtext)}")
                try:
                    price = parse_decimal(ptext, pd)
                except DecodeError as exc:
                    raise _Error(f"{where}: bad price: {exc}") from None
                try:
                    qty = parse_decimal(qtext, qd)
                except DecodeError as exc:
                    raise _Error(f"{where}: bad quantity: {exc}") from None
                if s.positive_prices and price <= 0:
                    raise _Error(f"{where}: price {short_repr(ptext)} is not positive")
                if price == INT64_MIN:
                    raise _Error(f"{where}: price {short_repr(ptext)} is the reserved INT64_MIN")
                if qty < 0:
                    raise _Error(f"{where}: negative quantity {short_repr(qtext)}")
                sides.append(side)
                prices.append(price)
                qtys.append(qty)
        self.n = len(sides)
