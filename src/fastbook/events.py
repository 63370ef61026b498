"""The normalized book event: one numpy structured dtype every codec emits and the core applies.

An event array is a plain numpy array of :data:`EVENT_DTYPE` records, 64 bytes
each (one cache line), in a fixed, documented layout that C code reads
directly. The exact effect of every :class:`Action` on an L2 and an L3 book is
specified in ``docs/events.md``.

>>> from fastbook.events import Action, events_from_records
>>> ev = events_from_records([
...     {"action": Action.ADD, "side": 1, "price": 1000125, "qty": 5, "order_id": 7},
...     {"action": "delete", "order_id": 7},
... ])
>>> ev["action"].tolist()
[1, 4]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from fastbook._checks import check_1d_contiguous, is_int
from fastbook._vocab import Action, Flags
from fastbook.errors import ArrayError

__all__ = [
    "EVENT_DTYPE",
    "EVENT_FIELDS",
    "Action",
    "Flags",
    "arrow_schema",
    "check_events",
    "empty_events",
    "events_from_records",
]


#: Field name, numpy type code and byte offset, in layout order. This layout is
#: stable: C code (``fastbook._l3``) reads it directly, and replay files store it.
EVENT_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("ts_exchange", "i8", 0),     # exchange timestamp, ns since the Unix epoch (or midnight)
    ("ts_receive", "i8", 8),      # local receive timestamp, ns (0 when unknown)
    ("instrument", "u4", 16),     # dense instrument id (index into a BookSet)
    ("action", "u1", 20),         # Action; 0 is invalid
    ("side", "i1", 21),           # 1 = BID, 2 = ASK, 0 = none / not applicable
    ("flags", "u2", 22),          # Flags bits
    ("price", "i8", 24),          # fixed-point price (value * 10**price_decimals)
    ("qty", "i8", 32),            # fixed-point quantity (value * 10**qty_decimals)
    ("order_id", "u8", 40),       # exchange order id (L3), 0 when not applicable
    ("new_order_id", "u8", 48),   # REPLACE: the id of the new order
    ("sequence", "u8", 56),       # venue or codec sequence number
)

#: The normalized event record: 64 bytes, 8-byte aligned, native byte order.
EVENT_DTYPE: np.dtype = np.dtype(
    {
        "names": [f[0] for f in EVENT_FIELDS],
        "formats": [f[1] for f in EVENT_FIELDS],
        "offsets": [f[2] for f in EVENT_FIELDS],
        "itemsize": 64,
    },
    align=True,
)

_ARROW_TYPES = {
    "i8": "int64", "u8": "uint64", "u4": "uint32", "u2": "uint16", "u1": "uint8", "i1": "int8",
}


def empty_events(n: int) -> np.ndarray:
    """A zero-filled array of ``n`` events.

    Zero is not a valid :class:`Action`, so rows left unfilled are refused when
    applied instead of silently meaning something.
    """
    if not is_int(n, 0):
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return np.zeros(n, dtype=EVENT_DTYPE)


def _action_value(value: Any, row: int) -> int:
    if isinstance(value, str):
        try:
            return int(Action[value.upper()])
        except KeyError:
            raise ValueError(
                f"record {row}: unknown action {value!r}; "
                f"expected one of {', '.join(a.name.lower() for a in Action)}"
            ) from None
    try:
        return int(Action(value))
    except ValueError:
        raise ValueError(f"record {row}: {value!r} is not a fastbook.events.Action") from None


def events_from_records(records: Iterable[Mapping[str, Any]], **defaults: Any) -> np.ndarray:
    """Build an event array from mappings of field name to value (a helper for tests and tools).

    Parameters
    ----------
    records : iterable of mappings
        Each maps field names of :data:`EVENT_DTYPE` to values. ``action`` is
        required and may be an :class:`Action`, its int value or its name
        (``"add"``); other missing fields take ``defaults`` or 0.
    **defaults
        Values for fields a record leaves out (``instrument=3``).

    Returns
    -------
    numpy.ndarray
        A new array of ``EVENT_DTYPE``.

    Raises
    ------
    ValueError
        Unknown field names, a missing or unknown action, or a value that does
        not fit its field (the message names the record).
    """
    names = EVENT_DTYPE.names
    assert names is not None
    for key in defaults:
        if key not in names:
            raise ValueError(f"unknown event field {key!r}; fields are {', '.join(names)}")
    rows = list(records)
    out = empty_events(len(rows))
    for i, rec in enumerate(rows):
        merged = {**defaults, **rec}
        for key in merged:
            if key not in names:
                raise ValueError(
                    f"record {i}: unknown event field {key!r}; fields are {', '.join(names)}"
                )
        if "action" not in merged:
            raise ValueError(f"record {i}: 'action' is required")
        merged["action"] = _action_value(merged["action"], i)
        for key, value in merged.items():
            ftype = EVENT_DTYPE.fields[key][0]  # type: ignore[index]
            info = np.iinfo(ftype)
            if isinstance(value, float) or not hasattr(value, "__index__"):
                raise ValueError(f"record {i}: {key} must be an integer, got {value!r}")
            v = int(value)
            if not info.min <= v <= info.max:
                raise ValueError(f"record {i}: {key}={v} does not fit {ftype}")
            out[key][i] = v
    return out


def check_events(events: Any, name: str = "events") -> np.ndarray:
    """Return ``events`` if it is a 1-d C-contiguous array of exactly :data:`EVENT_DTYPE`.

    Raises :class:`fastbook.ArrayError` (with a conversion hint) otherwise.
    Nothing is copied: core code reads the records in place.
    """
    if not isinstance(events, np.ndarray):
        raise ArrayError(
            f"{name} must be a numpy array of fastbook.events.EVENT_DTYPE, "
            f"got {type(events).__name__}; build one with events_from_records() or empty_events()"
        )
    if events.dtype != EVENT_DTYPE:
        raise ArrayError(
            f"{name} must have dtype fastbook.events.EVENT_DTYPE, got {events.dtype}; "
            f"use events.astype(EVENT_DTYPE) if the field names match"
        )
    return check_1d_contiguous(events, name)


def arrow_schema() -> Any:
    """The Arrow schema matching :data:`EVENT_DTYPE` (same field names, order and integer types).

    pyarrow is optional and imported only here.

    Raises
    ------
    ImportError
        When pyarrow is not installed (``pip install 'fastbook-lob[arrow]'``).
    """
    try:
        import pyarrow as pa
    except ImportError:
        from fastbook._extras import missing

        raise missing("arrow", "fastbook.events.arrow_schema()") from None
    fields = [pa.field(name, getattr(pa, _ARROW_TYPES[code])(), nullable=False)
              for name, code, _ in EVENT_FIELDS]
    return pa.schema(fields, metadata={b"fastbook.event_dtype_itemsize": b"64"})
