"""Argument checks the pure-Python modules share, so each rule and its message exists once.

The twins must refuse exactly what the compiled cores refuse, with the same
error class and message, and several twins take the same kinds of argument (a
strict int, a decimals count, a byte buffer, a 1-d array). Each check lives
here and is imported by every module that needs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastbook.errors import ArrayError

__all__ = [
    "MAX_DECIMALS",
    "as_bytes_view",
    "bytes_at",
    "check_1d_contiguous",
    "check_decimals",
    "check_int",
    "check_kernel_array",
    "is_int",
    "new_book",
]

#: Largest ``price_decimals`` / ``qty_decimals`` (10**18 is the largest power of ten in int64).
MAX_DECIMALS = 18


def is_int(value: Any, low: int | None = None, high: int | None = None, *,
           numpy: bool = False) -> bool:
    """Whether ``value`` is an int (never a bool) with ``low <= value <= high`` (bounds optional).

    ``numpy=True`` also accepts numpy integer scalars.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer) if numpy else int):
        return False
    return bool((low is None or value >= low) and (high is None or value <= high))


def check_int(value: Any, name: str) -> int:
    """``value`` as an int (numpy integers accepted); TypeError for anything else, bools too."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def check_decimals(decimals: Any, name: str) -> int:
    """A ``price_decimals`` / ``qty_decimals`` argument: an int from 0 to :data:`MAX_DECIMALS`."""
    if not is_int(decimals, 0, MAX_DECIMALS):
        raise ValueError(f"{name} must be an int between 0 and {MAX_DECIMALS}, got {decimals!r}")
    return int(decimals)


def as_bytes_view(buf: Any) -> memoryview:
    """A flat unsigned-byte view of any C-contiguous buffer (bytes, mmap, numpy uint8, ...)."""
    try:
        view = memoryview(buf)
    except TypeError:
        raise TypeError(f"buf must be a bytes-like buffer (bytes, bytearray, memoryview, mmap, "
                        f"numpy uint8 array), got {type(buf).__name__}") from None
    if not view.c_contiguous:
        raise ValueError("buf must be a C-contiguous buffer; copy it with bytes(buf) first")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def bytes_at(buf: Any, pos: Any, name: str) -> tuple[memoryview, int]:
    """:func:`as_bytes_view` of ``buf`` and ``pos`` (argument ``name``) checked to lie in it."""
    view = as_bytes_view(buf)
    p = check_int(pos, name)
    if not 0 <= p <= len(view):
        raise ValueError(f"{name} must be between 0 and len(buf) = {len(view)}, got {p}")
    return view, p


def check_1d_contiguous(arr: np.ndarray, name: str) -> np.ndarray:
    """The shape and layout half of an array check (the caller has checked type and dtype)."""
    if arr.ndim != 1:
        raise ArrayError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ArrayError(f"{name} must be C-contiguous; use np.ascontiguousarray({name})")
    return arr


def check_kernel_array(value: Any, name: str, dtype: Any, length: int | None = None, *,
                       ndim: int = 1, contiguous: bool = True, writeable: bool = False,
                       name_structured: bool = False) -> np.ndarray:
    """An array argument of a decoder kernel (events, counts, maps, state), as the kernels check it.

    ``contiguous`` also requires aligned memory; ``writeable`` one that receives
    output; ``name_structured`` reports a wrong structured dtype as such
    instead of printing it.
    """
    from fastbook.events import EVENT_DTYPE  # not at the top: fastbook.events imports this module

    dtype_name = "fastbook.events.EVENT_DTYPE" if dtype is EVENT_DTYPE else np.dtype(dtype).name
    what = f"a {ndim}-D {'C-contiguous ' if contiguous else ''}numpy {dtype_name} array"
    if length is not None:
        what += f" of length {length}"
    if not isinstance(value, np.ndarray):
        raise ArrayError(f"{name} must be {what}, got {type(value).__name__}")
    if value.dtype != dtype:
        got = ("a different structured dtype" if name_structured and value.dtype.names
               else f"dtype {value.dtype}")
        raise ArrayError(f"{name} must be {what}, got {got}")
    if value.ndim != ndim:
        raise ArrayError(f"{name} must be {what}, got shape {value.shape}")
    if contiguous and not (value.flags.c_contiguous and value.flags.aligned):
        raise ArrayError(f"{name} must be {what} (and aligned); use np.ascontiguousarray({name})")
    if length is not None and value.shape[0] != length:
        raise ArrayError(f"{name} must be {what}, got length {value.shape[0]}")
    if writeable and not value.flags.writeable:
        raise ArrayError(f"{name} must be writeable (it receives output)")
    return value


def new_book(kind: Any, book_type: Any, order_book_type: Any, *, price_decimals: Any,
             qty_decimals: Any, capacity: Any, order_capacity: Any, side_keys: Any) -> Any:
    """The book ``BookSet.add_instrument`` makes (compiled and twin alike): an
    ``order_book_type`` for ``kind="l3"``, a ``book_type`` for ``"l2"``."""
    if kind == "l3":
        return order_book_type(price_decimals=price_decimals, qty_decimals=qty_decimals,
                               capacity=capacity, order_capacity=order_capacity,
                               side_keys=side_keys)
    if kind == "l2":
        return book_type(price_decimals=price_decimals, qty_decimals=qty_decimals,
                         capacity=capacity)
    raise ValueError(f"kind must be 'l3' or 'l2', got {kind!r}")
