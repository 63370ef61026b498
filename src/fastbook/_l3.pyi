"""Type stubs for the compiled L3 book and BookSet (the twin ``fastbook._pyl3`` has the same API).

Data arguments are positional-only and options keyword-only, exactly as in the
compiled signatures (``tests/package/test_package.py`` compares them with the twin's).
"""

from collections.abc import Callable
from typing import Any, Final, Literal, SupportsIndex

import numpy as np
import numpy.typing as npt
from typing_extensions import Self, disjoint_base

from fastbook._core import ASK as ASK
from fastbook._core import BID as BID
from fastbook._core import Book, _L2Reads
from fastbook.sampling import Sampler

#: Bytes per order slot (record, side byte and hash slots); see ``OrderBook.nbytes``.
BYTES_PER_ORDER: Final[int]
#: Bytes per allocated level slot of an L3 book.
BYTES_PER_LEVEL: Final[int]
#: Layout version of the C API in ``_l3.pxd`` (``FB_L3_ABI_VERSION``).
ABI_VERSION: Final[int]
#: Names of the error kinds counted by ``OrderBook(on_error="skip")``.
ERROR_KINDS: Final[tuple[str, ...]]
#: The books' error kinds and "bad_instrument", counted by ``BookSet(on_error="skip")``.
BOOKSET_ERROR_KINDS: Final[tuple[str, ...]]
#: The record of ``OrderBook.orders()``: order_id u8, side u1 (BID 1 / ASK 2), price i8, qty
#: i8, aligned (32 bytes).
ORDER_DTYPE: Final[np.dtype[np.void]]
#: True: this is the compiled module (``fastbook.l3.COMPILED`` says which one is in use).
COMPILED: Final[bool]

@disjoint_base
class OrderBook(_L2Reads):
    # the L2 reads (best_bid ... format_qty, capacity, reserve) are Book's: see _L2Reads
    # The class initialises in __cinit__ (tp_new), so the constructor is __new__.
    def __new__(
        cls,
        *,
        price_decimals: SupportsIndex,
        qty_decimals: SupportsIndex = 0,
        capacity: SupportsIndex = 256,
        order_capacity: SupportsIndex = 1024,
        on_error: Literal["raise", "skip"] = "raise",
        side_keys: bool = False,
    ) -> Self: ...
    @property
    def on_error(self) -> Literal["raise", "skip"]: ...
    @property
    def errors(self) -> dict[str, int]: ...
    def reset_errors(self) -> None: ...
    # -- updates: True when the best level of the order's side changed
    def add(
        self, order_id: SupportsIndex, side: SupportsIndex, price: SupportsIndex,
        qty: SupportsIndex, /,
    ) -> bool: ...
    def execute(
        self, order_id: SupportsIndex, qty: SupportsIndex, /, *, side: SupportsIndex = 0
    ) -> bool: ...
    def reduce(
        self, order_id: SupportsIndex, qty: SupportsIndex, /, *, side: SupportsIndex = 0
    ) -> bool: ...
    def delete(self, order_id: SupportsIndex, /, *, side: SupportsIndex = 0) -> bool: ...
    def replace(
        self, order_id: SupportsIndex, new_order_id: SupportsIndex, qty: SupportsIndex,
        price: SupportsIndex, /, *, side: SupportsIndex = 0,
    ) -> bool: ...
    def modify(
        self, order_id: SupportsIndex, qty: SupportsIndex, price: SupportsIndex, /, *,
        side: SupportsIndex = 0,
    ) -> bool: ...
    @property
    def side_keys(self) -> bool: ...
    # -- orders
    def order(
        self, order_id: SupportsIndex, /, *, side: SupportsIndex = 0
    ) -> tuple[int, int, int] | None: ...
    def queue_position(
        self, order_id: SupportsIndex, /, *, side: SupportsIndex = 0
    ) -> tuple[int, int] | None: ...
    def rank(self, order_id: SupportsIndex, /, *, side: SupportsIndex = 0) -> int | None: ...
    def __contains__(self, order_id: object, /) -> bool: ...
    @property
    def order_count(self) -> int: ...
    def orders_at(self, side: SupportsIndex, price: SupportsIndex, /) -> list[tuple[int, int]]: ...
    def count_at(self, side: SupportsIndex, price: SupportsIndex, /) -> int: ...
    # -- state as data (book order: bids best first, asks best first, FIFO per level)
    def orders(self) -> npt.NDArray[np.void]: ...
    def _load_orders(self, orders: npt.NDArray[np.void], /) -> None: ...
    def copy(self) -> OrderBook: ...
    def __copy__(self) -> OrderBook: ...
    def __deepcopy__(self, memo: object, /) -> OrderBook: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    # -- memory
    @property
    def order_capacity(self) -> int: ...
    @property
    def hash_slots(self) -> int: ...
    def reserve_orders(self, capacity: SupportsIndex, /) -> None: ...

@disjoint_base
class BookSet:
    def __new__(cls, *, on_error: Literal["raise", "skip", "stop"] = "raise") -> Self: ...
    def add_book(
        self,
        book: OrderBook | Book,
        /,
        *,
        symbol: str,
        venue: str = "",
        tick_size: SupportsIndex = 1,
        lot_size: SupportsIndex = 1,
    ) -> int: ...
    def add_instrument(
        self,
        symbol: str,
        /,
        *,
        kind: Literal["l3", "l2"] = "l3",
        venue: str = "",
        price_decimals: SupportsIndex,
        qty_decimals: SupportsIndex = 0,
        tick_size: SupportsIndex = 1,
        lot_size: SupportsIndex = 1,
        capacity: SupportsIndex = 256,
        order_capacity: SupportsIndex = 1024,
        side_keys: bool = False,
    ) -> int: ...
    def __len__(self) -> int: ...
    def __getitem__(self, instrument: int, /) -> OrderBook | Book: ...
    def instrument(self, instrument: int, /) -> dict[str, Any]: ...
    def find(self, symbol: str, /, venue: str = "") -> int: ...
    @property
    def on_error(self) -> Literal["raise", "skip", "stop"]: ...
    @property
    def errors(self) -> dict[str, int]: ...
    def instrument_errors(self, instrument: int, /) -> dict[str, int]: ...
    def _restore_errors(self, instrument: int, counts: dict[str, int], /,
                        bad_instrument: int = 0) -> None: ...
    def reset_errors(self) -> None: ...
    def apply(
        self,
        events: npt.NDArray[np.void],
        /,
        *,
        sampler: Sampler | None = None,
        callback: Callable[[int, int], object] | None = None,
    ) -> int: ...
    # fastbook.backtest's compiled loop between callbacks (see its docstring)
    def _advance(
        self, events: npt.NDArray[np.void], start: int, end: int,
        watch: npt.ArrayLike, levels: npt.ArrayLike, wake: int,
    ) -> tuple[int, int, int, int, int]: ...
    def clear(self) -> None: ...
    @property
    def books(self) -> list[OrderBook | Book]: ...
