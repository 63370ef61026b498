"""The L2 JSON schema: what both scanners (compiled ``_l2json`` and twin ``_pyl2json``) read.

A venue codec describes the JSON shape of its book messages with a
:class:`Schema` of :class:`Field` objects and reads the ``scan`` statuses
defined here. Both scanners, and the venue codecs, import these definitions
from this module, so the twin is only the reference scanner. The contract
itself (what ``scan`` checks, in order) is the module docstring of
``_pyl2json``.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastbook._vocab import ASK, BID, INT64_MAX, INT64_MIN

__all__ = [
    "ASK",
    "BID",
    "ERROR",
    "FIELD_KINDS",
    "IGNORED",
    "INT64_MAX",
    "INT64_MIN",
    "LEVEL_KINDS",
    "OK",
    "OTHER",
    "STATUS_NAMES",
    "UNKNOWN",
    "Field",
    "Schema",
    "iso_to_ns",
    "short_repr",
]

#: ``scan`` results.
OK = 0          # a book message of the schema: fields and levels are set
OTHER = 1       # the discriminator is missing or not accepted: not a book message
UNKNOWN = 2     # the symbol is not registered: register it and scan again
IGNORED = 3     # the symbol is registered without a book (filtered out)
ERROR = 4       # unusable input: ``error`` says why

STATUS_NAMES = ("OK", "OTHER", "UNKNOWN", "IGNORED", "ERROR")


#: Field kinds.
FIELD_KINDS = ("int", "isotime", "str", "bids", "asks", "sided")
#: The kinds that hold levels.
LEVEL_KINDS = ("bids", "asks", "sided")


@dataclass(frozen=True)
class Field:
    """One field of a message: its key, what it holds, where it is and whether it must be there.

    ``kind`` is ``"int"`` (a JSON integer), ``"isotime"`` (a string
    ``YYYY-MM-DDTHH:MM:SS[.fraction]Z``, UTC, read as exact integer ns since the
    epoch and reported with the int fields), ``"str"`` (a JSON string),
    ``"bids"`` / ``"asks"`` (a list of ``[price, qty, ...]`` levels of that
    side) or ``"sided"`` (a list of ``[side, price, qty, ...]``, the side word
    mapped by ``Schema.sides``). ``scope`` is ``"top"``, ``"body"`` or the
    name of a container. An int field's value must lie in ``[lo, hi]``.
    """

    name: str
    kind: str
    scope: str = "body"
    required: bool = False
    #: Int and isotime fields: the smallest and largest accepted values (outside: an error).
    lo: int = INT64_MIN
    hi: int = INT64_MAX


class Schema:
    """The JSON shape of one kind of book message (see the module docstring for the rules).

    Parameters
    ----------
    fields : iterable of Field
        Integer, string and level fields. :attr:`Scanner.ints` and
        :attr:`Scanner.strs` hold the values of the int and str fields in this
        order; bit ``i`` of :attr:`Scanner.found` is set when the ``i``-th
        level field is present.
    containers : iterable of str or (str, bool)
        Up to two top-level keys whose value is an object holding fields
        (``"data"``); ``(name, True)`` also accepts a list of exactly one object
        (OKX's ``"data": [{...}]``). ``"body"`` means the first container when
        present, else the top level.
    discriminator : (key, scope) or None
        A string field naming the message type.
    accept : iterable of str
        Accepted discriminator values (``prefix=True``: accepted prefixes);
        :attr:`Scanner.kind` is the index of the match.
    symbol : (key, scope) or None
        The string field naming the instrument; ``None`` when the caller passes
        the symbol to ``scan`` (REST snapshots).
    sides : mapping of str to 1 (bid) or 2 (ask)
        Side words of ``"sided"`` levels (Coinbase ``{"buy": 1, "sell": 2}``).
    level_len : (int, int)
        Allowed elements per level after the side word: price, quantity and up
        to ``max - 2`` extra values of any JSON type (ignored).
    positive_prices : bool
        Refuse prices <= 0 (every crypto venue here); otherwise only the
        reserved ``INT64_MIN`` is refused.
    """

    def __init__(self, *, fields: Iterable[Field] = (), containers: Iterable[Any] = (),
                 discriminator: tuple[str, str] | None = None, accept: Iterable[str] = (),
                 prefix: bool = False, symbol: tuple[str, str] | None = None,
                 sides: Mapping[str, int] | None = None, level_len: tuple[int, int] = (2, 2),
                 positive_prices: bool = True) -> None:
        conts: list[tuple[str, bool]] = []
        for c in containers:
            conts.append((c, False) if isinstance(c, str) else (str(c[0]), bool(c[1])))
        if len(conts) > 2:
            raise ValueError("a schema has at most two containers")
        self.containers: tuple[tuple[str, bool], ...] = tuple(conts)
        self.fields: tuple[Field, ...] = tuple(fields)
        self.discriminator = discriminator
        self.accept: tuple[str, ...] = tuple(accept)
        self.prefix = bool(prefix)
        self.symbol = symbol
        self.sides: dict[str, int] = dict(sides or {})
        lo, hi = level_len
        if not 2 <= lo <= hi <= 16:
            raise ValueError(f"level_len must satisfy 2 <= min <= max <= 16, got {level_len}")
        self.level_len = (int(lo), int(hi))
        self.positive_prices = bool(positive_prices)
        names = {c for c, _ in self.containers}
        scopes = {"top", "body", *names}
        seen: set[tuple[str, str]] = set()
        specials = [x for x in (discriminator, symbol) if x is not None]
        for name, scope in [(f.name, f.scope) for f in self.fields] + [tuple(x) for x in specials]:
            if scope not in scopes:
                raise ValueError(f"field {name!r}: scope must be one of {sorted(scopes)}, "
                                 f"got {scope!r}")
            if (name, scope) in seen:
                raise ValueError(f"field {name!r} appears twice in scope {scope!r}")
            if name in names and scope in ("top", "body"):
                raise ValueError(f"field {name!r} has the name of a container")
            seen.add((name, scope))
        for f in self.fields:
            if not INT64_MIN <= f.lo <= f.hi <= INT64_MAX:
                raise ValueError(f"field {f.name!r}: need INT64_MIN <= lo <= hi <= INT64_MAX")
            if f.kind not in FIELD_KINDS:
                raise ValueError(f"field {f.name!r}: kind must be one of {FIELD_KINDS}")
            if f.kind == "sided" and not self.sides:
                raise ValueError("a 'sided' field needs the side words (sides=)")
        if discriminator is not None and not self.accept:
            raise ValueError("a discriminator needs the accepted values (accept=)")
        for word, side in self.sides.items():
            if side not in (BID, ASK) or not word.isascii():
                raise ValueError(f"side word {word!r} must be ASCII and map to 1 or 2")
        level_scopes = {f.scope for f in self.fields if f.kind in LEVEL_KINDS}
        if len(level_scopes) > 1:
            raise ValueError("every level field must be in the same scope")
        if len([f for f in self.fields if f.kind in LEVEL_KINDS]) > 32:
            raise ValueError("at most 32 level fields")
        self.int_fields = tuple(f for f in self.fields if f.kind in ("int", "isotime"))
        self.str_fields = tuple(f for f in self.fields if f.kind == "str")
        self.level_fields = tuple(f for f in self.fields if f.kind in LEVEL_KINDS)

    def __repr__(self) -> str:
        return (f"Schema(fields={[f.name for f in self.fields]}, containers={self.containers}, "
                f"discriminator={self.discriminator}, accept={self.accept}, "
                f"symbol={self.symbol})")


def short_repr(value: Any) -> str:
    """``repr(value)``, cut to 40 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                  r"(?:\.([0-9]{1,9}))?(Z|[+-]00:?00)")
_EPOCH_DAY = _dt.date(1970, 1, 1).toordinal()


def iso_to_ns(text: str) -> int:
    """``2021-04-17T16:43:37.075687Z`` (UTC, up to 9 decimals) to exact ns since the epoch.

    ``+00:00`` / ``-00:00`` / ``+0000`` are accepted for ``Z``. Raises ValueError for
    anything else (other offsets, impossible dates, leap seconds).
    """
    m = _ISO.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not a UTC ISO 8601 time: {short_repr(text)}")
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"not a UTC ISO 8601 time: {short_repr(text)}")
    try:
        day = _dt.date(y, mo, d).toordinal() - _EPOCH_DAY
    except ValueError:
        raise ValueError(f"not a UTC ISO 8601 time: {short_repr(text)}") from None
    frac = m.group(7) or ""
    secs = ((day * 24 + h) * 60 + mi) * 60 + s
    return secs * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
