"""The pure-Python twin of ``fastbook._l3``: a small, obviously correct, slow L3 book.

A dict maps each live order id to ``[side, price, qty]`` and each price level
is a plain list of order ids in arrival order; every aggregate is recomputed
from those when read. It is the oracle of the differential tests and the
implementation used when ``FASTBOOK_NO_EXTENSIONS=1``. Every public behaviour
here, errors and capacity accounting included, is what the compiled
``OrderBook`` must match.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from fastbook._checks import is_int, new_book
from fastbook._instruments import instrument_meta
from fastbook._pycore import _int64, _integer, _LevelReads, _raise_read_only
from fastbook._vocab import ASK, BID, Action, Flags
from fastbook.errors import UpdateError

BYTES_PER_ORDER = 32
BYTES_PER_LEVEL = 44
ERROR_KINDS = ("bad_side", "bad_quantity", "bad_price", "unknown_order",
               "duplicate_order", "over_execute", "overflow", "bad_action")
COMPILED = False

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
_MIN_LEVELS = 16
_MIN_ORDERS = 16
_MAX_ORDERS = 1 << 30

#: The record of ``OrderBook.orders()`` (as the compiled module's: aligned, 32 bytes).
ORDER_DTYPE = np.dtype([("order_id", np.uint64), ("side", np.uint8), ("price", np.int64),
                        ("qty", np.int64)], align=True)
_ORDER_COLUMNS = (("order_id", np.uint64), ("side", np.uint8), ("price", np.int64),
                  ("qty", np.int64))


def _uint64(value: Any, what: str) -> int:
    return _integer(value, what, 0, _UINT64_MAX, "uint64")


def _as_side(side: Any) -> int:
    """Side for updates: BID or ASK, any other integer is 0 (invalid, reported by the update)."""
    s = _int64(side, "side")
    return s if s == BID or s == ASK else 0


def _side_message(side: Any) -> str:
    return f"side must be fastbook.BID ({BID}) or fastbook.ASK ({ASK}), got {side!r}"


def _valid_side(side: Any) -> int:
    """Side for reads: BID or ASK, else UpdateError."""
    s = _as_side(side)
    if s == 0:
        raise UpdateError(_side_message(side))
    return s


def _check_capacity(value: Any, name: str) -> None:
    if not is_int(value, 0):
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


class _Failure(Exception):
    """Internal: an update that cannot be applied (kind, message)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class OrderBook(_LevelReads):
    """Pure-Python twin of :class:`fastbook._l3.OrderBook` (see its documentation)."""

    _NAME = "OrderBook"
    #: set on the instance by BookSet.apply while its callback runs
    _read_only = False

    def __init__(self, *, price_decimals: int, qty_decimals: int = 0, capacity: int = 256,
                 order_capacity: int = 1024, on_error: str = "raise",
                 side_keys: bool = False) -> None:
        super().__init__(price_decimals, qty_decimals)
        _check_capacity(capacity, "capacity")
        _check_capacity(order_capacity, "order_capacity")
        if on_error != "raise" and on_error != "skip":
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if order_capacity > _MAX_ORDERS:
            raise MemoryError(f"capacity {capacity} / order_capacity {order_capacity} "
                              f"is too large (at most {_MAX_ORDERS} orders)")
        self._skip = on_error == "skip"
        self._side_keys = bool(side_keys)
        # key -> [side, price, qty]; the key is the id, or (side, id) when side-keyed
        self._orders: dict[Any, list[int]] = {}
        self._queues: dict[int, dict[int, list[int]]] = {BID: {}, ASK: {}}  # price -> ids
        self._level_capacity = {BID: 0, ASK: 0}
        if capacity > 0:
            for side in (BID, ASK):
                self._reserve_levels(side, capacity)
        self._order_capacity = 0
        self._grow_orders(max(order_capacity, _MIN_ORDERS))
        self._errors = dict.fromkeys(ERROR_KINDS, 0)
        self._version = 0

    # -- capacity accounting (the compiled core's growth rules) ------------------
    def _reserve_levels(self, side: int, need: int) -> None:
        cap = self._level_capacity[side]
        if need <= cap:
            return
        new = cap * 2 if cap >= _MIN_LEVELS else _MIN_LEVELS
        self._level_capacity[side] = max(new, need)

    def _grow_orders(self, need: int) -> None:
        if need <= self._order_capacity:
            return
        if need > _MAX_ORDERS:
            raise MemoryError(f"fastbook: cannot allocate {need} orders (at most {_MAX_ORDERS})")
        have = self._order_capacity
        if have == 0:
            cap = max(need, _MIN_ORDERS)
        else:
            cap = min(max(have + have // 2, need), _MAX_ORDERS)
        self._order_capacity = cap

    # -- helpers ---------------------------------------------------------------
    def _best_price(self, side: int) -> int | None:
        q = self._queues[side]
        if not q:
            return None
        return max(q) if side == BID else min(q)

    def _level_qty(self, side: int, price: int) -> int:
        return sum(self._orders[self._k(i, side)][2] for i in self._queues[side].get(price, ()))

    def _k(self, order_id: int, side: int) -> Any:
        """The key of order (order_id, side) in ``_orders``."""
        return (side, order_id) if self._side_keys else order_id

    def _need_side(self, verb: str, order_id: int, side: int, shown_side: Any) -> None:
        if self._side_keys and side != BID and side != ASK:
            raise _Failure("bad_side", f"cannot {verb} order {order_id}: this book keys orders "
                                       f"by (side, id), so the order's side is needed; "
                           + _side_message(shown_side))

    def _key_side(self, side: Any) -> int:
        s = _as_side(side)
        if self._side_keys and s == 0:
            raise UpdateError("this book keys orders by (side, id): pass side=fastbook.BID "
                              f"or fastbook.ASK, got {side!r}")
        return s

    def _fail(self, failure: _Failure) -> bool:
        if self._skip:
            self._errors[failure.kind] += 1
            return False
        raise UpdateError(str(failure))

    def _remove(self, key: Any) -> bool:
        """Take the order out of its level; True when that level was the best of its side."""
        side, price, _ = self._orders.pop(key)
        order_id = key[1] if self._side_keys else key
        top = price == self._best_price(side)
        queue = self._queues[side][price]
        queue.remove(order_id)
        if not queue:
            del self._queues[side][price]
        return top

    # -- errors ------------------------------------------------------------------
    @property
    def on_error(self) -> str:
        return "skip" if self._skip else "raise"

    @property
    def errors(self) -> dict[str, int]:
        return dict(self._errors)

    def reset_errors(self) -> None:
        self._errors = dict.fromkeys(ERROR_KINDS, 0)

    # -- updates -------------------------------------------------------------------
    # The _do_* methods take converted ints, raise _Failure (book unchanged) or
    # apply the update and return "top changed"; BookSet uses them too.
    @staticmethod
    def _check_new(order_id: int, price: int, qty: int) -> None:
        if qty <= 0:
            raise _Failure("bad_quantity", f"quantity must be >= 1, got {qty} (order {order_id})")
        if price == _INT64_MIN:
            raise _Failure("bad_price", f"price {price} is INT64_MIN, which fastbook reserves "
                                        f"for 'no price' (order {order_id})")

    def _do_add(self, order_id: int, side: int, price: int, qty: int, shown_side: Any) -> bool:
        if side != BID and side != ASK:
            raise _Failure("bad_side", _side_message(shown_side))
        self._check_new(order_id, price, qty)
        if self._k(order_id, side) in self._orders:
            raise _Failure("duplicate_order",
                           f"cannot add order {order_id}: it is already in the book")
        if price in self._queues[side]:
            if self._level_qty(side, price) > _INT64_MAX - qty:
                raise _Failure("overflow", f"cannot add order {order_id}: the quantity at "
                                           f"price {price} would overflow int64")
        else:
            self._reserve_levels(side, len(self._queues[side]) + 1)
        if len(self._orders) == self._order_capacity:
            self._grow_orders(self._order_capacity + 1)
        self._orders[self._k(order_id, side)] = [side, price, qty]
        self._queues[side].setdefault(price, []).append(order_id)
        self._version += 1
        return price == self._best_price(side)

    def _do_take(self, verb: str, order_id: int, qty: int, side: int = 0,
                 shown_side: Any = 0) -> bool:
        self._need_side(verb, order_id, side, shown_side)
        if qty <= 0:
            raise _Failure("bad_quantity", f"quantity must be >= 1, got {qty} (order {order_id})")
        key = self._k(order_id, side)
        if key not in self._orders:
            raise _Failure("unknown_order",
                           f"cannot {verb} order {order_id}: it is not in the book")
        remaining = self._orders[key][2]
        if qty > remaining:
            raise _Failure("over_execute", f"cannot {verb} {qty} from order {order_id}: "
                                           f"only {remaining} remaining")
        self._version += 1
        if qty == remaining:
            return self._remove(key)
        side, price, _ = self._orders[key]
        self._orders[key][2] -= qty
        return price == self._best_price(side)

    def _do_delete(self, order_id: int, side: int = 0, shown_side: Any = 0) -> bool:
        self._need_side("delete", order_id, side, shown_side)
        key = self._k(order_id, side)
        if key not in self._orders:
            raise _Failure("unknown_order",
                           f"cannot delete order {order_id}: it is not in the book")
        self._version += 1
        return self._remove(key)

    def _do_modify(self, order_id: int, qty: int, price: int, side: int = 0,
                   shown_side: Any = 0, verb: str = "modify") -> bool:
        """Keep the place at an unchanged price when qty does not grow, else replace."""
        self._need_side(verb, order_id, side, shown_side)
        self._check_new(order_id, price, qty)
        rec = self._orders.get(self._k(order_id, side))
        if rec is None or rec[1] != price or qty > rec[2]:
            return self._do_replace(order_id, order_id, qty, price, side, shown_side, verb)
        if qty == rec[2]:
            return False
        return self._do_take(verb, order_id, rec[2] - qty, side, shown_side)

    def _do_replace(self, order_id: int, new_order_id: int, qty: int, price: int,
                    side: int = 0, shown_side: Any = 0, verb: str = "replace") -> bool:
        self._need_side(verb, order_id, side, shown_side)
        self._check_new(order_id, price, qty)
        key = self._k(order_id, side)
        if key not in self._orders:
            raise _Failure("unknown_order",
                           f"cannot {verb} order {order_id}: it is not in the book")
        side, old_price, old_qty = self._orders[key]
        if new_order_id != order_id and self._k(new_order_id, side) in self._orders:
            raise _Failure("duplicate_order",
                           f"cannot replace order {order_id} by {new_order_id}: "
                           f"order {new_order_id} is already in the book")
        if price in self._queues[side]:
            rest = self._level_qty(side, price) - (old_qty if old_price == price else 0)
            if rest > _INT64_MAX - qty:
                raise _Failure("overflow", f"cannot replace order {order_id}: the quantity "
                                           f"at price {price} would overflow int64")
        else:
            self._reserve_levels(side, len(self._queues[side]) + 1)
        top = self._remove(key)
        self._orders[self._k(new_order_id, side)] = [side, price, qty]
        self._queues[side].setdefault(price, []).append(new_order_id)
        self._version += 1
        return top or price == self._best_price(side)

    # The public updates check the book is writable, convert their arguments (in
    # this order: the errors of a bad call are the compiled book's) and try.
    def _attempt(self, do: Callable[..., bool], *args: Any) -> bool:
        try:
            return do(*args)
        except _Failure as failure:
            return self._fail(failure)

    def add(self, order_id: int, side: int, price: int, qty: int, /) -> bool:
        if self._read_only:
            _raise_read_only(self)
        return self._attempt(self._do_add, _uint64(order_id, "order_id"), _as_side(side),
                             _int64(price, "price"), _int64(qty, "qty"), side)

    def _take(self, verb: str, order_id: Any, qty: Any, side: Any) -> bool:
        if self._read_only:
            _raise_read_only(self)
        return self._attempt(self._do_take, verb, _uint64(order_id, "order_id"),
                             _int64(qty, "qty"), _as_side(side), side)

    def execute(self, order_id: int, qty: int, /, *, side: int = 0) -> bool:
        return self._take("execute", order_id, qty, side)

    def reduce(self, order_id: int, qty: int, /, *, side: int = 0) -> bool:
        return self._take("reduce", order_id, qty, side)

    def delete(self, order_id: int, /, *, side: int = 0) -> bool:
        if self._read_only:
            _raise_read_only(self)
        return self._attempt(self._do_delete, _uint64(order_id, "order_id"), _as_side(side),
                             side)

    def replace(self, order_id: int, new_order_id: int, qty: int, price: int, /, *,
                side: int = 0) -> bool:
        if self._read_only:
            _raise_read_only(self)
        return self._attempt(self._do_replace, _uint64(order_id, "order_id"),
                             _uint64(new_order_id, "new_order_id"), _int64(qty, "qty"),
                             _int64(price, "price"), _as_side(side), side)

    def modify(self, order_id: int, qty: int, price: int, /, *, side: int = 0) -> bool:
        if self._read_only:
            _raise_read_only(self)
        return self._attempt(self._do_modify, _uint64(order_id, "order_id"),
                             _int64(qty, "qty"), _int64(price, "price"), _as_side(side), side)

    @property
    def side_keys(self) -> bool:
        return self._side_keys

    def clear(self) -> None:
        if self._read_only:
            _raise_read_only(self)
        self._orders.clear()
        for queues in self._queues.values():
            queues.clear()
        self._version += 1

    # -- orders ------------------------------------------------------------------
    def order(self, order_id: int, /, *, side: int = 0) -> tuple[int, int, int] | None:
        s = self._key_side(side)
        order_id = _uint64(order_id, "order_id")
        rec = self._orders.get(self._k(order_id, s))
        return None if rec is None else (rec[0], rec[1], rec[2])

    def queue_position(self, order_id: int, /, *, side: int = 0) -> tuple[int, int] | None:
        s = self._key_side(side)
        order_id = _uint64(order_id, "order_id")
        rec = self._orders.get(self._k(order_id, s))
        if rec is None:
            return None
        queue = self._queues[rec[0]][rec[1]]
        ahead = queue[:queue.index(order_id)]
        return (len(ahead), sum(self._orders[self._k(i, rec[0])][2] for i in ahead))

    def rank(self, order_id: int, /, *, side: int = 0) -> int | None:
        s = self._key_side(side)
        order_id = _uint64(order_id, "order_id")
        rec = self._orders.get(self._k(order_id, s))
        if rec is None:
            return None
        side, price = rec[0], rec[1]
        queues = self._queues[side]
        better = sum(len(q) for p, q in queues.items()
                     if (p > price if side == BID else p < price))
        return better + queues[price].index(order_id) + 1

    def __contains__(self, order_id: object) -> bool:
        side = 0
        if isinstance(order_id, tuple) and len(order_id) == 2:
            side, order_id = order_id
            if side != BID and side != ASK:
                return False
        if not isinstance(order_id, int):
            return False
        if self._side_keys:
            sides = (side,) if side else (BID, ASK)
            return any((s, order_id) in self._orders for s in sides)
        return order_id in self._orders

    @property
    def order_count(self) -> int:
        return len(self._orders)

    def orders_at(self, side: int, price: int, /) -> list[tuple[int, int]]:
        side = _valid_side(side)
        price = _int64(price, "price")
        return [(i, self._orders[self._k(i, side)][2]) for i in self._queues[side].get(price, ())]

    def count_at(self, side: int, price: int, /) -> int:
        side = _valid_side(side)
        price = _int64(price, "price")
        return len(self._queues[side].get(price, ()))

    def orders(self) -> Any:
        out = np.zeros(len(self._orders), dtype=ORDER_DTYPE)
        rows = [(i, side, price, self._orders[self._k(i, side)][2])
                for side in (BID, ASK)
                for price in sorted(self._queues[side], reverse=side == BID)
                for i in self._queues[side][price]]
        for k, name in enumerate(("order_id", "side", "price", "qty")):
            out[name] = [row[k] for row in rows]
        return out

    def _load_orders(self, orders: Any, /) -> None:
        if self._read_only:
            _raise_read_only(self)
        if self._orders:
            raise ValueError(f"_load_orders needs an empty book; this one has "
                             f"{len(self._orders)} orders")
        ids, sides, prices, qtys = (c.tolist() for c in _order_columns(orders))
        row, bad_side = _misordered_row(sides, prices)
        if row >= 0:
            if bad_side:
                raise ValueError(f"orders[{row}]: side must be fastbook.BID ({BID}) or "
                                 f"fastbook.ASK ({ASK}), got {sides[row]}")
            raise ValueError(f"orders[{row}]: not in book order (bids best first, then "
                             f"asks best first, each level's orders together)")
        for i in _load_order(sides, prices):
            try:
                self._do_add(ids[i], sides[i], prices[i], qtys[i], sides[i])
            except _Failure as failure:
                self.clear()
                raise ValueError(f"orders[{i}]: {failure}") from None

    # -- copying and pickling ------------------------------------------------------
    def copy(self) -> OrderBook:
        return _rebuild_orderbook(*self.__reduce__()[1])

    def __copy__(self) -> OrderBook:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> OrderBook:
        return self.copy()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_orderbook, (self.price_decimals, self.qty_decimals,
                                     self._level_capacity[BID], self._level_capacity[ASK],
                                     self._order_capacity, self._side_keys, self.on_error,
                                     tuple(self._errors[k] for k in ERROR_KINDS),
                                     self.orders()))

    # -- memory ------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        return (BYTES_PER_ORDER * self._order_capacity + 4 * self.hash_slots
                + BYTES_PER_LEVEL * (self._level_capacity[BID] + self._level_capacity[ASK]))

    @property
    def hash_slots(self) -> int:
        """The compiled book's table size: a power of two >= 2 * order_capacity."""
        return 1 << (2 * self._order_capacity - 1).bit_length()

    @property
    def order_capacity(self) -> int:
        return self._order_capacity

    def capacity(self, side: int, /) -> int:
        return self._level_capacity[_valid_side(side)]

    def reserve(self, side: int, capacity: int, /) -> None:
        side = _valid_side(side)
        capacity = _int64(capacity, "capacity")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._reserve_levels(side, capacity)

    def reserve_orders(self, capacity: int, /) -> None:
        capacity = _int64(capacity, "capacity")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if capacity > _MAX_ORDERS and capacity > self._order_capacity:
            raise MemoryError(f"fastbook: cannot allocate {capacity} orders "
                              f"(at most {_MAX_ORDERS})")
        self._grow_orders(capacity)

    # -- L2 reads (the rest are _LevelReads') -----------------------------------
    def _side_levels(self, side: int) -> list[tuple[int, int]]:
        prices = sorted(self._queues[side], reverse=side == BID)
        return [(p, self._level_qty(side, p)) for p in prices]

    def _best(self, side: int) -> tuple[int, int] | None:
        price = self._best_price(side)
        return None if price is None else (price, self._level_qty(side, price))

    def _read_side(self, side: Any) -> int:
        return _valid_side(side)

    def _sizes(self) -> str:
        return (f"orders={len(self._orders)} "
                f"bids={len(self._queues[BID])} asks={len(self._queues[ASK])}")

    def qty_at(self, side: int, price: int, /) -> int:
        side = _valid_side(side)
        price = _int64(price, "price")
        return self._level_qty(side, price)


def _order_columns(orders: Any) -> tuple[Any, ...]:
    """The four columns of an ``orders()``-like structured array (TypeError when it is not)."""
    a = np.asarray(orders)
    names = a.dtype.names or ()
    if a.ndim != 1 or any(name not in names for name, _ in _ORDER_COLUMNS):
        raise TypeError("orders must be a 1-d structured array with fields order_id, side, "
                        f"price and qty (as OrderBook.orders() returns), got dtype {a.dtype} "
                        f"and shape {a.shape}")
    return tuple(np.ascontiguousarray(a[name], dtype=kind) for name, kind in _ORDER_COLUMNS)


def _misordered_row(sides: list[int], prices: list[int]) -> tuple[int, bool]:
    """(first row not in book order, its side is bad) or (-1, False), as the compiled check."""
    for i, sd in enumerate(sides):
        if sd != BID and sd != ASK:
            return i, True
        if i and (sd < sides[i - 1] or (
                sd == sides[i - 1] and (prices[i] > prices[i - 1] if sd == BID
                                        else prices[i] < prices[i - 1]))):
            return i, False
    return -1, False


def _load_order(sides: list[int], prices: list[int]) -> Iterator[int]:
    """The rows in the compiled loader's order: each side's levels worst first, each
    level's orders oldest first."""
    split = 0
    while split < len(sides) and sides[split] == BID:
        split += 1
    for lo, hi in ((0, split), (split, len(sides))):
        end = hi
        while end > lo:
            start = end - 1
            while start > lo and prices[start - 1] == prices[end - 1]:
                start -= 1
            yield from range(start, end)
            end = start


def _rebuild_orderbook(price_decimals: int, qty_decimals: int, bid_capacity: int,
                       ask_capacity: int, order_capacity: int, side_keys: bool, on_error: str,
                       errors: Any, orders: Any) -> OrderBook:
    """Unpickle an OrderBook (as the compiled ``_rebuild_orderbook``)."""
    book = OrderBook(price_decimals=price_decimals, qty_decimals=qty_decimals, capacity=0,
                     order_capacity=order_capacity, on_error=on_error, side_keys=side_keys)
    counts = tuple(errors)
    if len(counts) != len(ERROR_KINDS):
        raise ValueError(f"errors must have {len(ERROR_KINDS)} counters "
                         f"(fastbook.l3.ERROR_KINDS), got {len(counts)}")
    if bid_capacity:
        book.reserve(BID, bid_capacity)
    if ask_capacity:
        book.reserve(ASK, ask_capacity)
    book._load_orders(orders)
    book._errors = {kind: _uint64(n, "errors") for kind, n in zip(ERROR_KINDS, counts,
                                                                   strict=True)}
    return book


# ---------------------------------------------------------------------------
# BookSet
# ---------------------------------------------------------------------------

BOOKSET_ERROR_KINDS = (*ERROR_KINDS, "bad_instrument")

_ACTION_NAMES = {int(a): a.name for a in Action}
_VERBS = {int(a): a.name.lower()
          for a in (Action.ADD, Action.REDUCE, Action.EXECUTE, Action.DELETE, Action.REPLACE)}
# plain ints for the per-event dispatch
_ADD, _REDUCE, _EXECUTE = int(Action.ADD), int(Action.REDUCE), int(Action.EXECUTE)
_DELETE, _REPLACE, _SET_LEVEL = int(Action.DELETE), int(Action.REPLACE), int(Action.SET_LEVEL)
_CLEAR, _TRADE, _STATUS = int(Action.CLEAR), int(Action.TRADE), int(Action.STATUS)
_SNAPSHOT_BEGIN, _SNAPSHOT_END = int(Action.SNAPSHOT_BEGIN), int(Action.SNAPSHOT_END)
_KEEP_PRIORITY = int(Flags.KEEP_PRIORITY)


class _Group:
    """Sets that share books, as the compiled sets' shared guard: a callback of one
    makes every book of all of them read-only."""

    def __init__(self) -> None:
        self.sets: weakref.WeakSet[BookSet] = weakref.WeakSet()
        self.read_only = 0

    def books(self) -> Iterator[Any]:
        for bs in list(self.sets):
            yield from bs._books

    def check_idle(self) -> None:
        if self.read_only:
            raise RuntimeError("a book of this BookSet is read-only while another "
                               "BookSet.apply runs its callback")


_ALL_SETS: weakref.WeakSet[BookSet] = weakref.WeakSet()


def _own_range_hit(lv: list[int], side: int, price: int, trade: bool, adds: bool) -> bool:
    # BookSet._advance: can an event at (side, price) touch the own orders of ``lv``?
    if side == BID:
        if lv[0] <= lv[1] and (lv[0] <= price <= lv[1] or (trade and price < lv[1])):
            return True
        return (adds or trade) and lv[2] <= lv[3] and price >= lv[2]
    if side == ASK:
        if lv[2] <= lv[3] and (lv[2] <= price <= lv[3] or (trade and price > lv[2])):
            return True
        return (adds or trade) and lv[0] <= lv[1] and price <= lv[1]
    return False


class BookSet:
    """Pure-Python twin of :class:`fastbook._l3.BookSet` (see its documentation).

    All-or-nothing in raise mode is done the obvious way: every book an event
    touches is deep-copied first and restored on failure (stop mode copies nothing).
    """

    def __init__(self, *, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip", "stop"):
            raise ValueError(f"on_error must be 'raise', 'skip' or 'stop', got {on_error!r}")
        self._skip = on_error == "skip"
        self._stop = on_error == "stop"
        self._books: list[Any] = []
        self._members: set[int] = set()       # id() of every book in _books
        self._meta: list[dict[str, Any]] = []
        self._index: dict[tuple[str, str], int] = {}
        self._errors: list[dict[str, int]] = []
        self._bad_instrument = 0
        self._applying = False
        self._group = _Group()
        self._group.sets.add(self)
        _ALL_SETS.add(self)

    def _check_idle(self, what: str) -> None:
        if self._applying:
            raise RuntimeError(f"BookSet.apply is running: its callback cannot {what}")

    def _set_read_only(self, read_only: bool) -> None:
        self._group.read_only += 1 if read_only else -1
        for book in self._group.books():
            if self._group.read_only:
                book._read_only = True
            else:
                book.__dict__.pop("_read_only", None)

    def add_book(self, book: Any, /, *, symbol: str, venue: str = "", tick_size: int = 1,
                 lot_size: int = 1) -> int:
        from fastbook._pycore import Book

        self._check_idle("add instruments")
        if isinstance(book, OrderBook):
            kind = "l3"
        elif isinstance(book, Book):
            kind = "l2"
        else:
            raise TypeError(f"book must be a fastbook.l3.OrderBook or a fastbook.Book, "
                            f"got {type(book).__name__}")
        theirs = {bs._group for bs in list(_ALL_SETS) if id(book) in bs._members}
        theirs.discard(self._group)
        for group in theirs:    # both groups must be idle to become one
            group.check_idle()
            self._group.check_idle()
        meta = instrument_meta(book, kind, symbol=symbol, venue=venue, tick_size=tick_size,
                               lot_size=lot_size, index=self._index, members=self._members)
        for group in theirs:    # the book is in another set: from now on one group
            for bs in list(group.sets):
                bs._group = self._group
                self._group.sets.add(bs)
        i = len(self._books)
        self._books.append(book)
        self._members.add(id(book))
        if self._group.read_only:
            book._read_only = True
        self._meta.append(meta)
        self._index[(symbol, venue)] = i
        self._errors.append(dict.fromkeys(ERROR_KINDS, 0))
        return i

    def add_instrument(self, symbol: str, /, *, kind: str = "l3", venue: str = "",
                       price_decimals: int, qty_decimals: int = 0, tick_size: int = 1,
                       lot_size: int = 1, capacity: int = 256, order_capacity: int = 1024,
                       side_keys: bool = False) -> int:
        from fastbook._pycore import Book

        book = new_book(kind, Book, OrderBook, price_decimals=price_decimals,
                        qty_decimals=qty_decimals, capacity=capacity,
                        order_capacity=order_capacity, side_keys=side_keys)
        return self.add_book(book, symbol=symbol, venue=venue, tick_size=tick_size,
                             lot_size=lot_size)

    def __len__(self) -> int:
        return len(self._books)

    def _check_id(self, instrument: Any) -> int:
        if not is_int(instrument, 0, len(self._books) - 1):
            raise IndexError(f"instrument must be an id from 0 to {len(self._books) - 1}, "
                             f"got {instrument!r}")
        return instrument

    def __getitem__(self, instrument: int) -> Any:
        return self._books[self._check_id(instrument)]

    def instrument(self, instrument: int, /) -> dict[str, Any]:
        return dict(self._meta[self._check_id(instrument)])

    def find(self, symbol: str, /, venue: str = "") -> int:
        try:
            return self._index[(symbol, venue)]
        except KeyError:
            raise KeyError(f"no instrument {symbol!r} on venue {venue!r} in this BookSet") \
                from None

    @property
    def on_error(self) -> str:
        return "skip" if self._skip else "stop" if self._stop else "raise"

    @property
    def errors(self) -> dict[str, int]:
        out = dict.fromkeys(BOOKSET_ERROR_KINDS, 0)
        for counts in self._errors:
            for kind, n in counts.items():
                out[kind] += n
        out["bad_instrument"] = self._bad_instrument
        return out

    def _restore_errors(self, instrument: int, counts: dict[str, int], /,
                        bad_instrument: int = 0) -> None:
        """Add ``counts`` to the skip-mode counters of ``instrument`` (see the compiled core)."""
        mine = self._errors[self._check_id(instrument)]
        for kind in ERROR_KINDS:
            mine[kind] += int(counts.get(kind, 0))
        self._bad_instrument += int(bad_instrument)

    def instrument_errors(self, instrument: int, /) -> dict[str, int]:
        return dict(self._errors[self._check_id(instrument)])

    def reset_errors(self) -> None:
        self._errors = [dict.fromkeys(ERROR_KINDS, 0) for _ in self._books]
        self._bad_instrument = 0

    def clear(self) -> None:
        self._check_idle("clear the books")
        for book in self._books:
            book.clear()

    @property
    def books(self) -> list[Any]:
        return list(self._books)

    def __repr__(self) -> str:
        return f"<fastbook.BookSet instruments={len(self._books)} on_error={self.on_error!r}>"

    # -- apply -------------------------------------------------------------------
    @staticmethod
    def _l3_event(book: OrderBook, action: int, side: int, price: int, qty: int,
                  order_id: int, new_order_id: int, flags: int) -> None:
        if action == _ADD:
            book._do_add(order_id, side, price, qty, side)
        elif action in (_REDUCE, _EXECUTE):
            book._do_take(_VERBS[action], order_id, qty, side, side)
        elif action == _DELETE:
            book._do_delete(order_id, side, side)
        elif action == _REPLACE:
            if flags & _KEEP_PRIORITY and new_order_id == order_id:
                book._do_modify(order_id, qty, price, side, side, "replace")
            else:
                book._do_replace(order_id, new_order_id, qty, price, side, side)
        elif action in (_CLEAR, _SNAPSHOT_BEGIN):
            book.clear()
        elif action not in (_TRADE, _SNAPSHOT_END, _STATUS):
            raise _Failure("bad_action", "")

    @staticmethod
    def _l2_event(book: Any, action: int, side: int, price: int, qty: int) -> None:
        if action in (_TRADE, _SNAPSHOT_END, _STATUS):
            return
        if action == _REPLACE or not _ADD <= action <= _STATUS:
            raise _Failure("bad_action", "")
        if action in (_CLEAR, _SNAPSHOT_BEGIN):
            book.clear()
            return
        if side != BID and side != ASK:
            raise _Failure("bad_side", _side_message(side))
        floor = 0 if action == _SET_LEVEL else 1
        if qty < floor:
            raise _Failure("bad_quantity",
                           f"quantity must be >= {floor}, got {qty} (at price {price})")
        if price == _INT64_MIN:
            raise _Failure("bad_price",
                           f"price {price} is INT64_MIN, which fastbook reserves for 'no price'")
        old = book.qty_at(side, price)
        if action == _SET_LEVEL:
            new = qty
        elif action == _ADD:
            if old > _INT64_MAX - qty:
                raise _Failure("overflow", f"cannot add {qty} at price {price}: the level "
                                           f"quantity would overflow int64")
            new = old + qty
        else:
            if qty > old:
                raise _Failure("over_execute", f"cannot {_VERBS[action]} {qty} at price "
                                               f"{price}: the level holds only {old}")
            new = old - qty
        book.set(side, price, new)

    def _event(self, book: Any, inst: int, action: int, side: int, price: int, qty: int,
               order_id: int, new_order_id: int, flags: int) -> None:
        # one event to its book, by the book's kind (raises _Failure)
        if self._meta[inst]["kind"] == "l3":
            self._l3_event(book, action, side, price, qty, order_id, new_order_id, flags)
        else:
            self._l2_event(book, action, side, price, qty)

    def _count_failure(self, failure: _Failure, inst: int) -> None:
        # skip mode: a failed event, counted by kind
        if failure.kind == "bad_instrument":
            self._bad_instrument += 1
        else:
            self._errors[inst][failure.kind] += 1

    def _no_instrument(self, inst: int) -> _Failure:
        return _Failure("bad_instrument", f"instrument {inst} is not in this BookSet "
                                          f"(it has {len(self._books)} instruments)")

    def apply(self, events: Any, /, *, sampler: Any = None, callback: Any = None) -> int:
        import copy

        from fastbook.events import check_events
        from fastbook.sampling import MARK_FIRST, MARK_LAST, check_sampler, packet_marks

        self._check_idle("apply events")
        self._group.check_idle()
        rows = check_events(events).tolist()
        sampler = check_sampler(sampler, callback)
        if sampler is not None:
            sampler._prepare(self)
        # packet mode: the rules run only at each instrument's first / last event of a packet
        marks = packet_marks(rows) if sampler is not None and sampler.packets else None
        saved: dict[int, dict[str, Any]] = {}
        # raise mode copies what a failure must restore; skip and stop modes restore nothing
        atomic = not self._skip and not self._stop
        saved_sampler = sampler._save() if sampler is not None and atomic else None

        def rollback() -> None:
            for j, state in saved.items():
                self._books[j].__dict__.clear()
                self._books[j].__dict__.update(state)
            if saved_sampler is not None:
                sampler._restore(saved_sampler)

        flows = sampler is not None and sampler._flows
        self._applying = True
        try:
            skipped = 0
            for i, row in enumerate(rows):
                ts, _, inst, action, side, flags, price, qty, order_id, new_order_id, sequence = row
                try:
                    if inst >= len(self._books):
                        raise self._no_instrument(inst)
                    book = self._books[inst]
                    if atomic and inst not in saved:
                        saved[inst] = copy.deepcopy(book.__dict__)
                    if sampler is not None and (marks is None or marks[i] & MARK_FIRST):
                        sampler._before(book, inst, ts, sequence)
                    trade = sampler._trade_before(book, inst, row) if flows else None
                    sides = sampler._ofi_sides(book, inst, row) if flows else 3
                    last = marks is None or bool(marks[i] & MARK_LAST)
                    self._event(book, inst, action, side, price, qty, order_id, new_order_id,
                                flags)
                except _Failure as failure:
                    if self._skip:
                        skipped += 1
                        self._count_failure(failure, inst)
                        continue
                    message = self._message(failure, inst, action)
                    rollback()
                    raise UpdateError(f"event {i}: {message}", i) from None
                if flows:
                    sampler._event_after(book, inst, row, trade, last, sides)
                if sampler is not None and (marks is None or marks[i] & MARK_LAST):
                    sampler._after(book, inst, ts, sequence)
                if callback is not None:
                    self._set_read_only(True)
                    try:
                        callback(i, inst)
                    except BaseException:
                        if not self._skip:
                            rollback()
                        raise
                    finally:
                        self._set_read_only(False)
            return len(rows) - skipped
        finally:
            self._applying = False

    def _advance(self, events: Any, start: int, end: int, watch: Any, levels: Any,
                 wake: int) -> tuple[int, int, int, int, int]:
        # the compiled BookSet._advance's twin: see its documentation
        from fastbook.events import check_events

        self._check_idle("apply events")
        self._group.check_idle()
        events = check_events(events)
        n = len(events)
        if start < 0 or end > n or start > end:
            raise IndexError(f"_advance: events[{start}:{end}] is not within {n} events")
        watch = np.ascontiguousarray(watch, dtype=np.uint8).tolist()
        lv = np.ascontiguousarray(levels, dtype=np.int64).tolist()
        if len(lv) < 4 * len(watch):
            raise ValueError("_advance: levels needs 4 entries per watched instrument")
        latest = _INT64_MIN
        self._applying = True
        try:
            for i in range(start, end):
                if (i - start) % 256 == 0:       # rows a window at a time: calls stop early
                    rows = events[i:min(i + 256, end)].tolist()
                row = rows[(i - start) % 256]
                ts, _, inst, action, side, flags, price, qty, order_id, new_order_id, _ = row
                if ts >= wake:
                    return i, 1, ts, inst, latest
                bits = watch[inst] if inst < len(watch) else 0
                book = self._books[inst] if inst < len(self._books) else None
                if book is not None and bits:
                    if bits & 2 and action in (_EXECUTE, _TRADE):
                        return i, 2, ts, inst, latest
                    if bits & 8:
                        own = lv[4 * inst:4 * inst + 4]
                        at_side, at_price = side, price
                        if self._meta[inst]["kind"] == "l3" and action in (
                                _REDUCE, _EXECUTE, _DELETE, _REPLACE):
                            try:
                                found = book.order(order_id, side=side) if book.side_keys \
                                    else book.order(order_id)
                            except (ValueError, TypeError, OverflowError):
                                found = None
                            if found is not None:
                                at_side, at_price = found[0], found[1]
                                if action == _REPLACE and _own_range_hit(own, at_side, price,
                                                                         False, True):
                                    return i, 2, ts, inst, latest
                        if _own_range_hit(own, at_side, at_price,
                                          action in (_EXECUTE, _TRADE),
                                          action in (_ADD, _SET_LEVEL, _REPLACE)):
                            return i, 2, ts, inst, latest
                        if action in (_CLEAR, _SNAPSHOT_BEGIN, _SNAPSHOT_END, _STATUS):
                            return i, 2, ts, inst, latest
                before = book.bbo() if book is not None and bits & 1 and not bits & 4 else None
                try:
                    if book is None:
                        raise self._no_instrument(inst)
                    self._event(book, inst, action, side, price, qty, order_id, new_order_id,
                                flags)
                except _Failure as failure:
                    if self._skip:
                        self._count_failure(failure, inst)
                        continue
                    raise UpdateError(f"event {i}: {self._message(failure, inst, action)}",
                                      i) from None
                latest = max(latest, ts)
                if bits & 4 or (before is not None and book.bbo() != before):
                    return i + 1, 3, ts, inst, latest
            return end, 0, 0, 0, latest
        finally:
            self._applying = False

    def _message(self, failure: _Failure, inst: int, action: int) -> str:
        if failure.kind == "bad_instrument":
            return str(failure)
        where = f" (instrument {inst}, {self._meta[inst]['symbol']!r})"
        if failure.kind == "bad_action":
            if action in _ACTION_NAMES:
                need = "an L3 book" if action == _REPLACE else "an L2 book"
                return f"{_ACTION_NAMES[action]} needs {need}{where}"
            return f"action {action} is not a fastbook.events.Action{where}"
        return f"{failure}{where}"
