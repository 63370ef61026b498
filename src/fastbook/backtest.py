"""Backtesting against the book: a strategy trades against recorded books, with latency.

:func:`backtest` replays an event stream through a :class:`~fastbook.l3.BookSet` and
lets a :class:`Strategy` place, modify and cancel limit and market orders on the
instruments it names. Its orders are virtual: they never change the recorded books
(no market impact), and the engine decides when the recorded flow would have filled
them (``docs/backtest.md`` states every rule):

* **resting orders** join the back of their level's queue when they *arrive* at the
  exchange. On order-by-order (L3) books the queue is exact: the order is behind
  the real orders resting there at its arrival, and an execution of a real order
  *behind* it (or at a worse price) would have reached it first, so it fills it, up
  to the executed quantity; partial fills are credited as they happen. On L2
  books the place is estimated by :class:`fastbook.queue.QueueTracker` (the
  ``pessimistic``, ``proportional``, ``power`` and ``log`` models of
  ``docs/queue.md``). An order that adds quantity on the other side at a price
  crossing a resting own order fills it too (the incoming order would have met it).
* **market orders and marketable limits** walk the displayed levels of the other
  side at arrival, level by level up to the limit price, as a taker. No taking fill
  is ever made from a crossed book, a book inside a snapshot (or after a clear
  until the next snapshot ends) or a halted instrument: the order is rejected.
* **latency**: the strategy sees each book change ``feed_latency`` late (a copy of
  the top levels as they were); its requests reach the exchange ``order_latency``
  after its decision and the answers (acknowledgements, fills, rejections) come
  back ``response_latency`` after the exchange acted. Each is a constant in ns, a
  :class:`Latency` drawn from a seeded distribution, or replayed from a recorded
  series. Requests and deliveries keep their order (a feed does not reorder).

The compiled core runs between the strategy's callbacks (``BookSet._advance``): it
applies events until one the engine must see (a change of a watched best price,
an event at the price of an own order, a trade when ``on_trade`` is asked for, the
next scheduled time), so a strategy acting on one instrument's BBO changes costs
little more than the replay itself.

>>> import fastbook as fb
>>> from fastbook.backtest import Strategy, backtest
>>> from fastbook.events import events_from_records
>>> books = fb.BookSet()
>>> books.add_instrument("X", price_decimals=2)
0
>>> class Join(Strategy):
...     def on_book(self, ctx, view):
...         if not ctx.orders() and view.bid_px[0]:
...             ctx.buy(view.instrument, 5, price=int(view.bid_px[0]))
>>> day = events_from_records([
...     {"ts_exchange": 1, "action": "add", "side": 1, "price": 1000, "qty": 10, "order_id": 1},
...     {"ts_exchange": 2, "action": "add", "side": 2, "price": 1010, "qty": 10, "order_id": 2},
...     {"ts_exchange": 3, "action": "add", "side": 1, "price": 1000, "qty": 7, "order_id": 3},
...     {"ts_exchange": 4, "action": "execute", "order_id": 1, "qty": 10},
...     {"ts_exchange": 5, "action": "execute", "order_id": 3, "qty": 4},
... ])
>>> r = backtest(day, Join(), books=books, instruments=[0])
>>> r.fills["qty"].tolist(), r.fills["price"].tolist(), r.position(0)
([4], [1000], 4)
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastbook._vocab import ASK, BID, Action, Flags
from fastbook.errors import FastbookError, UpdateError

__all__ = [
    "BacktestError", "BacktestResult", "BookView", "Context", "Fees", "Fill", "Latency",
    "Order", "OrderError", "Strategy", "Trade", "backtest",
]

_ADD, _REDUCE, _EXECUTE = int(Action.ADD), int(Action.REDUCE), int(Action.EXECUTE)
_DELETE, _REPLACE, _SET_LEVEL = int(Action.DELETE), int(Action.REPLACE), int(Action.SET_LEVEL)
_CLEAR, _TRADE = int(Action.CLEAR), int(Action.TRADE)
_SNAP_BEGIN, _SNAP_END, _STATUS = (int(Action.SNAPSHOT_BEGIN), int(Action.SNAPSHOT_END),
                                   int(Action.STATUS))
_KEEP = int(Flags.KEEP_PRIORITY)
_HIDDEN_OR_CROSS = int(Flags.HIDDEN) | int(Flags.CROSS)
_HALTED = int(Flags.HALTED)
_AGG_BUY, _AGG_SELL = int(Flags.AGGRESSOR_BUY), int(Flags.AGGRESSOR_SELL)

# BookSet._advance's watch bits and stop reasons
_W_BBO, _W_TRADE, _W_EVERY, _W_OWN = 1, 2, 4, 8
_R_END, _R_WAKE, _R_EVENT, _R_BBO = 0, 1, 2, 3
_NO_WAKE = (1 << 63) - 1
_EMPTY_RANGE = (1 << 62, -(1 << 62))

# scheduled items, by kind (the order among items at one time is their scheduling order)
_K_ARRIVE, _K_RESPONSE, _K_VIEW, _K_TIMER, _K_MARK, _K_MARKOUT, _K_TRADE = range(7)


class BacktestError(FastbookError):
    """The simulation stopped because a strategy callback raised (``on_error="raise"``).

    ``result`` holds everything accounted up to the stop (a :class:`BacktestResult`).
    (Events the books refuse raise ``fastbook.UpdateError`` with the event's index.)
    """

    def __init__(self, message: str, result: BacktestResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class OrderError(FastbookError, ValueError):
    """A request the engine refuses at once: an unknown instrument or order, a price
    off the tick grid, a size off the lot grid or not positive."""


# -- latency -------------------------------------------------------------------------------

class Latency:
    """A latency in ns: constant, drawn from a seeded distribution, or replayed.

    ``Latency.constant(ns)``; ``Latency.normal(mean, std)`` and
    ``Latency.lognormal(median, sigma)`` (clipped at 0); ``Latency.empirical(samples)``
    draws uniformly from recorded samples; ``Latency.series(times, values)`` replays a
    recorded series (the value in force at the time asked, a step function);
    ``Latency.histogram(edges, counts)`` draws from a histogram (the live driver's
    latency histograms: a bin in proportion to its count, uniform inside it).
    Draws come from the backtest's seeded generator, in the order the engine asks.
    """

    def __init__(self, kind: str, params: tuple[Any, ...]) -> None:
        self.kind = kind
        self.params = params

    @staticmethod
    def constant(ns: int) -> Latency:
        if not isinstance(ns, (int, np.integer)) or ns < 0:
            raise ValueError(f"Latency.constant: ns must be an int >= 0, got {ns!r}")
        return Latency("constant", (int(ns),))

    @staticmethod
    def normal(mean: float, std: float) -> Latency:
        if not (mean >= 0 and std >= 0):
            raise ValueError(f"Latency.normal: mean and std must be >= 0, got {mean!r}, {std!r}")
        return Latency("normal", (float(mean), float(std)))

    @staticmethod
    def lognormal(median: float, sigma: float) -> Latency:
        if not (median > 0 and sigma >= 0):
            raise ValueError(f"Latency.lognormal: median must be > 0 and sigma >= 0, got "
                             f"{median!r}, {sigma!r}")
        return Latency("lognormal", (math.log(median), float(sigma)))

    @staticmethod
    def empirical(samples: Any) -> Latency:
        arr = np.asarray(samples, dtype=np.int64)
        if arr.ndim != 1 or len(arr) == 0 or (arr < 0).any():
            raise ValueError("Latency.empirical: samples must be a non-empty 1-d array of ns >= 0")
        return Latency("empirical", (arr.copy(),))

    @staticmethod
    def series(times: Any, values: Any) -> Latency:
        t = np.asarray(times, dtype=np.int64)
        v = np.asarray(values, dtype=np.int64)
        if t.ndim != 1 or t.shape != v.shape or len(t) == 0 or (v < 0).any() \
                or (np.diff(t) < 0).any():
            raise ValueError("Latency.series: times (ascending) and values (ns >= 0) must be "
                             "non-empty 1-d arrays of one length")
        return Latency("series", (t.copy(), v.copy()))

    @staticmethod
    def histogram(edges: Any, counts: Any) -> Latency:
        e = np.asarray(edges, dtype=np.float64)
        c = np.asarray(counts, dtype=np.float64)
        if e.ndim != 1 or c.ndim != 1 or len(e) != len(c) + 1 or (c < 0).any() \
                or c.sum() <= 0 or (np.diff(e) < 0).any() or e[0] < 0:
            raise ValueError("Latency.histogram: edges (ascending, >= 0) must be one longer "
                             "than counts (>= 0, not all 0)")
        return Latency("histogram", (e.copy(), np.cumsum(c) / c.sum()))

    def draw(self, rng: np.random.Generator, t: int) -> int:
        """One latency in ns for a request or delivery at time ``t``."""
        k, p = self.kind, self.params
        if k == "constant":
            return int(p[0])
        if k == "normal":
            return max(0, round(float(rng.normal(p[0], p[1]))))
        if k == "lognormal":
            return max(0, round(math.exp(rng.normal(p[0], p[1]))))
        if k == "empirical":
            return int(p[0][int(rng.integers(len(p[0])))])
        if k == "series":
            j = int(np.searchsorted(p[0], t, side="right")) - 1
            return int(p[1][max(j, 0)])
        edges, cum = p
        j = min(int(np.searchsorted(cum, rng.random(), side="right")), len(cum) - 1)
        return int(edges[j] + rng.random() * (edges[j + 1] - edges[j]))

    def __repr__(self) -> str:
        return f"Latency.{self.kind}(...)" if self.kind != "constant" else \
            f"Latency.constant({self.params[0]})"


def _latency(value: Any, name: str) -> Latency:
    if isinstance(value, Latency):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return Latency.constant(int(value))
    raise ValueError(f"{name} must be ns (an int >= 0) or a fastbook.backtest.Latency, "
                     f"got {value!r}")


# -- costs ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fees:
    """Fees as fractions of the notional: ``maker`` (negative: a rebate) and ``taker``,
    plus ``per_unit`` currency per unit of quantity traded, whatever the side."""

    maker: float = 0.0
    taker: float = 0.0
    per_unit: float = 0.0

    def fee(self, notional: float, units: float, taker: bool) -> float:
        return (self.taker if taker else self.maker) * abs(notional) + self.per_unit * units


# -- what the strategy sees ----------------------------------------------------------------

@dataclass
class Order:
    """An own order as the engine holds it (``Context.order`` gives the strategy's copy)."""

    id: int
    instrument: int
    side: int
    qty: int
    price: int | None           # None: a market order
    tif: str                    # "gtc" or "ioc" (market orders are ioc)
    submitted: int              # decision time (ns)
    arrived: int | None = None  # when it reached the exchange
    status: str = "pending"     # pending, resting, filled, cancelled, rejected
    filled: int = 0
    reason: str = ""
    seq: int = 0                # queue order among own orders (set on arrival)

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    @property
    def px(self) -> int:
        """The limit price (a resting order always has one)."""
        if self.price is None:
            raise OrderError(f"order {self.id} is a market order: it has no price")
        return self.price

    def _copy(self) -> Order:
        return Order(self.id, self.instrument, self.side, self.qty, self.price, self.tif,
                     self.submitted, self.arrived, self.status, self.filled, self.reason,
                     self.seq)


@dataclass(frozen=True)
class Fill:
    """One fill of an own order: ``ts`` is the exchange time it happened."""

    ts: int
    instrument: int
    order_id: int
    side: int
    price: int
    qty: int
    taker: bool
    fee: float


@dataclass(frozen=True)
class Trade:
    """A trade print of the recorded flow (``on_trade``): ``side`` is the resting side."""

    ts: int
    instrument: int
    side: int
    price: int
    qty: int
    flags: int


class BookView:
    """The top levels of one book as they were at ``ts`` (exchange time), best first,
    padded with 0: ``bid_px``, ``bid_qty``, ``ask_px``, ``ask_qty`` (int64 arrays of the
    view's depth; ``top`` is them as one ``(4, depth)`` array, as ``Book.top`` gives).
    With a feed latency the strategy receives it later (``Context.now``)."""

    __slots__ = ("instrument", "top", "ts")

    def __init__(self, instrument: int, ts: int, top: np.ndarray) -> None:
        self.instrument = instrument
        self.ts = ts
        self.top = top

    @property
    def bid_px(self) -> np.ndarray:
        row: np.ndarray = self.top[0]
        return row

    @property
    def bid_qty(self) -> np.ndarray:
        row: np.ndarray = self.top[1]
        return row

    @property
    def ask_px(self) -> np.ndarray:
        row: np.ndarray = self.top[2]
        return row

    @property
    def ask_qty(self) -> np.ndarray:
        row: np.ndarray = self.top[3]
        return row

    def __repr__(self) -> str:
        return (f"BookView(instrument={self.instrument}, ts={self.ts}, "
                f"bid={self.best_bid}, ask={self.best_ask})")

    @property
    def best_bid(self) -> int | None:
        top = self.top
        return int(top[0, 0]) if top[1, 0] else None

    @property
    def best_ask(self) -> int | None:
        top = self.top
        return int(top[2, 0]) if top[3, 0] else None

    @property
    def mid(self) -> float | None:
        top = self.top
        if not (top[1, 0] and top[3, 0]):
            return None
        return (int(top[0, 0]) + int(top[2, 0])) / 2

    @property
    def microprice(self) -> float | None:
        """The size-weighted mid: ``(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)``."""
        top = self.top
        bq, aq = int(top[1, 0]), int(top[3, 0])
        if not (bq and aq):
            return None
        return (int(top[0, 0]) * aq + int(top[2, 0]) * bq) / (bq + aq)


class Strategy:
    """Subclass and override what you need; every method is optional.

    The engine calls ``on_start(ctx)`` first, then, in time order: ``on_book(ctx,
    view)`` for the changes asked for (``on_book="bbo"`` or ``"event"``),
    ``on_trade(ctx, trade)`` (``on_trade=True``), ``on_fill(ctx, fill)``,
    ``on_order(ctx, order)`` when an order is acknowledged, rejected or cancelled,
    ``on_timer(ctx, now)`` every ``timer`` ns, and ``on_end(ctx)``.
    """

    def on_start(self, ctx: Context) -> None:
        pass

    def on_book(self, ctx: Context, view: BookView) -> None:
        pass

    def on_trade(self, ctx: Context, trade: Trade) -> None:
        pass

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        pass

    def on_order(self, ctx: Context, order: Order) -> None:
        pass

    def on_timer(self, ctx: Context, now: int) -> None:
        pass

    def on_end(self, ctx: Context) -> None:
        pass


# -- the queue: where own resting orders stand ---------------------------------------------

def _better(side: int, a: int, b: int) -> bool:
    """Is price ``a`` better than ``b`` for a resting order of ``side``?"""
    return a > b if side == BID else a < b


def _crosses(own_side: int, own_price: int, price: int) -> bool:
    """Would quantity offered at ``price`` on the other side meet an own order?"""
    return price <= own_price if own_side == BID else price >= own_price


class _L3Queue:
    """Exact FIFO places on an order-by-order book: the ids (and remaining sizes) of
    the real orders ahead of each own order, kept from its arrival."""

    kind = "l3"

    def __init__(self) -> None:
        self.ahead: dict[int, dict[int, int]] = {}     # own id -> {real id: remaining}

    def place(self, o: Order, book: Any) -> None:
        self.ahead[o.id] = dict(book.orders_at(o.side, o.px))

    def remove(self, o: Order) -> None:
        self.ahead.pop(o.id, None)

    def reduce(self, o: Order, qty: int) -> None:
        pass

    def filled(self, o: Order, qty: int) -> None:
        pass

    def event(self, book: Any, row: tuple[Any, ...], found: tuple[int, int, int] | None,
              old: int, own: list[Order]) -> list[tuple[Order, int]]:
        """Own fills caused by the event ``row`` (just applied), with ``found`` the (side,
        price, remaining) its order had before it; updates the places."""
        action, side, price, qty = row[3], row[4], row[6], row[7]
        oid, new_id, flags = row[8], row[9], row[5]
        if action == _ADD:
            return _crossing(own, side, price, qty)
        if found is None or action not in (_EXECUTE, _REDUCE, _DELETE, _REPLACE):
            return []
        fside, fprice, fqty = found
        fills: list[tuple[Order, int]] = []
        if action == _EXECUTE:
            # every own order that ranks ahead of the executed one is reached first
            volume = qty
            for o in own:
                if volume <= 0:
                    break
                if o.side != fside:
                    continue
                if _better(fside, o.px, fprice) or (o.px == fprice
                                                       and oid not in self.ahead[o.id]):
                    take = min(o.remaining, volume)
                    fills.append((o, take))
                    volume -= take
        for o in own:
            if o.side != fside or o.px != fprice:
                continue
            ahead = self.ahead[o.id]
            if oid not in ahead:
                continue
            if action in (_EXECUTE, _REDUCE):
                left = ahead[oid] - qty
                if left > 0:
                    ahead[oid] = left
                else:
                    del ahead[oid]
            elif action == _DELETE:
                del ahead[oid]
            elif flags & _KEEP and new_id == oid and price == fprice and qty <= fqty:
                ahead[oid] = qty
            else:
                del ahead[oid]
        if action == _REPLACE:
            fills += _crossing(own, fside, price, qty)
        return fills

    def rebuild(self, book: Any, own: list[Order]) -> None:
        """After a snapshot or clear: every order now at an own price is ahead of it."""
        for o in own:
            self.ahead[o.id] = dict(book.orders_at(o.side, o.px))


def _crossing(own: list[Order], side: int, price: int, qty: int) -> list[tuple[Order, int]]:
    """Fills of own orders on the side other than ``side`` that ``qty`` offered at
    ``price`` would have met, best price first, then in arrival order."""
    fills: list[tuple[Order, int]] = []
    volume = qty
    for o in own:
        if volume <= 0:
            break
        if o.side != side and _crosses(o.side, o.px, price):
            take = min(o.remaining, volume)
            fills.append((o, take))
            volume -= take
    return fills


class _L2Queue:
    """Estimated places on an L2 book: a :class:`fastbook.queue.QueueTracker` whose
    level sizes never include the virtual own orders."""

    kind = "l2"

    def __init__(self, model: str, p: float) -> None:
        from fastbook.queue import QueueTracker

        self.model, self.p = model, p
        self.tracker = QueueTracker(model, p=p, own_in_level=False, trade_through=True)

    # The tracker's key of an own order is (id, seq): an order placed again (a new price,
    # a bigger size) is a new place in the queue, and the tracker keeps finished keys.
    def place(self, o: Order, book: Any) -> None:
        self.tracker.place((o.id, o.seq), o.side, o.px, o.remaining,
                           level_qty=book.qty_at(o.side, o.px))

    def remove(self, o: Order) -> None:
        tracked = self.tracker._orders.get((o.id, o.seq))
        if tracked is not None and tracked.status == "resting":
            self.tracker.cancel((o.id, o.seq))

    def reduce(self, o: Order, qty: int) -> None:
        self.tracker.reduce((o.id, o.seq), qty)

    def filled(self, o: Order, qty: int) -> None:
        # a crossing fill the tracker did not make itself
        tracked = self.tracker._orders.get((o.id, o.seq))
        if tracked is not None and tracked.status == "resting":
            if qty >= tracked.remaining:
                self.tracker.forget((o.id, o.seq))
            else:
                tracked.remaining -= qty
                tracked.filled += qty

    def event(self, book: Any, row: tuple[Any, ...], found: Any, old: int,
              own: list[Order]) -> list[tuple[Order, int]]:
        """Own fills caused by the event ``row`` (just applied; ``old`` is the size its
        level had before): trades first, then the level's new size."""
        action, flags, side, price, qty = row[3], row[5], row[4], row[6], row[7]
        if side not in (BID, ASK) or action == _STATUS:
            return []
        fills: list[tuple[Order, int]] = []
        by_id = {(o.id, o.seq): o for o in own}
        if action in (_EXECUTE, _TRADE) and qty > 0 and not flags & _HIDDEN_OR_CROSS:
            fills += [(by_id[k], q) for k, q in self.tracker.on_trade(
                price, qty, aggressor_side=ASK if side == BID else BID) if k in by_id]
        if action == _TRADE:
            return fills
        new = book.qty_at(side, price)
        self.tracker.on_level(side, price, new)
        if new > old:
            fills += _crossing([o for o in own if o.status == "resting"
                                and o.remaining > sum(q for x, q in fills if x is o)],
                               side, price, new - old)
        return fills

    def rebuild(self, book: Any, own: list[Order]) -> None:
        from fastbook.queue import QueueTracker

        self.tracker = QueueTracker(self.model, p=self.p, own_in_level=False,
                                    trade_through=True)
        for o in own:
            self.place(o, book)


# -- the engine ----------------------------------------------------------------------------

class _Inst:
    """The engine's state of one traded instrument."""

    def __init__(self, inst: int, book: Any, meta: Mapping[str, Any], queue: Any,
                 fees: Fees) -> None:
        self.inst = inst
        self.book = book
        self.meta = meta
        self.queue = queue
        self.fees = fees
        self.own: list[Order] = []      # resting own orders, in priority order
        self.stale = False              # inside a snapshot, or cleared
        self.halted = False
        self.view: BookView | None = None
        self.position = 0
        self.basis = 0.0                # cost of the open position (currency)
        self.realized = 0.0
        self.pscale = 10.0 ** -int(meta.get("price_decimals", 0))
        self.qscale = 10.0 ** -int(meta.get("qty_decimals", 0))
        self.tick = int(meta.get("tick_size", 1) or 1)
        self.lot = int(meta.get("lot_size", 1) or 1)

    def sort(self) -> None:
        self.own.sort(key=lambda o: (-(o.price or 0) if o.side == BID else (o.price or 0),
                                     o.seq))


class Context:
    """What a strategy calls: orders, positions, and the books as it last saw them."""

    def __init__(self, engine: _Engine) -> None:
        self._e = engine

    @property
    def now(self) -> int:
        """The strategy's time (ns, exchange clock): when this callback was delivered."""
        return self._e.now

    def instrument(self, symbol: str, venue: str = "") -> int:
        """The id of ``symbol`` (``BookSet.find``)."""
        return int(self._e.books.find(symbol, venue))

    def buy(self, instrument: int, qty: int, *, price: int | None = None,
            tif: str = "gtc") -> int:
        """A buy order (a limit at ``price``, or a market order): its id."""
        return self._e.submit(instrument, BID, qty, price, tif)

    def sell(self, instrument: int, qty: int, *, price: int | None = None,
             tif: str = "gtc") -> int:
        """A sell order (a limit at ``price``, or a market order): its id."""
        return self._e.submit(instrument, ASK, qty, price, tif)

    def submit(self, instrument: int, side: int, qty: int, price: int | None = None,
               tif: str = "gtc") -> int:
        """An order on ``side`` (BID or ASK); see :meth:`buy`."""
        return self._e.submit(instrument, side, qty, price, tif)

    def cancel(self, order_id: int) -> None:
        """Ask for the order to be cancelled (it may fill before the request arrives)."""
        self._e.request(order_id, "cancel")

    def modify(self, order_id: int, *, price: int | None = None, qty: int | None = None) -> None:
        """Ask for a new price and/or total size. A smaller size at the same price keeps
        the queue place; anything else goes to the back of the (new) level."""
        self._e.request(order_id, "modify", price, qty)

    def orders(self, instrument: int | None = None) -> list[Order]:
        """Own orders not known to be finished, as the strategy knows them: from the
        answers received so far (``pending`` until the first one), copies. With a response
        latency an order may already be filled at the exchange."""
        return [o._copy() for o in self._e.known.values()
                if o.status in ("pending", "resting")
                and (instrument is None or o.instrument == instrument)]

    def order(self, order_id: int) -> Order:
        """One own order as the strategy knows it (see :meth:`orders`)."""
        o = self._e.known.get(order_id) if isinstance(order_id, (int, np.integer)) else None
        if o is None:
            raise OrderError(f"t={self._e.now}: order {order_id!r} was never submitted")
        return o._copy()

    def position(self, instrument: int) -> int:
        """Net position in the instrument's quantity units (fills known to the strategy)."""
        return self._e.known_position.get(instrument, 0)

    @property
    def cash(self) -> float:
        return self._e.known_cash

    def book(self, instrument: int) -> BookView | None:
        """The last view of the book delivered to the strategy (None before the first)."""
        st = self._e.insts.get(instrument)
        return None if st is None else st.view


class _Engine:
    def __init__(self, books: Any, strategy: Strategy, instruments: list[int | str] | None, *,
                 on_book: str | None, on_trade: bool, depth: int, timer: int | None,
                 feed_latency: Latency, order_latency: Latency, response_latency: Latency,
                 fees: Any, queue_model: str, p: float, seed: int, mark: int,
                 markout: int, on_error: str, reference: bool) -> None:
        self.books = books
        self.strategy = strategy
        self.on_book = on_book
        self.on_trade = on_trade
        self.depth = depth
        self.timer = timer
        self.feed = feed_latency
        self.entry = order_latency
        self.response = response_latency
        self.rng = np.random.default_rng(seed)
        self.mark = mark
        self.markout = markout
        self.on_error = on_error
        self.reference = reference
        self.now = 0
        self.heap: list[tuple[int, int, int, Any]] = []
        self.hseq = 0
        self.next_id = 1
        self.arrival_seq = 0
        self.last_entry = 0             # requests reach the exchange in order
        self.last_feed = 0              # and views are delivered in order
        self.last_response = 0
        self.orders: dict[int, Order] = {}
        self.insts: dict[int, _Inst] = {}
        self.fills: list[Fill] = []
        self.fill_marks: list[float] = []   # mid at fill time + markout (nan: none)
        self.marks: list[tuple[int, float, float]] = []   # (ts, equity, fees)
        self.known_position: dict[int, int] = {}
        self.known: dict[int, Order] = {}   # the orders as the answers so far describe them
        self.peak: dict[int, int] = {}      # the largest size asked of each order
        self.known_cash = 0.0
        self.cash = 0.0
        self.fees_paid = 0.0
        self.rejected = 0
        self.strategy_errors = 0
        self.events = 0
        self.stops = 0
        self.submitted_qty = 0
        self.next_mark = 0
        self.mark_scheduled = False
        # every traded book's mid changes are seen: marks need no wake-up (catch_up)
        self.marks_from_bbo = on_book in ("bbo", "event")
        self.held = 0.0
        self.anchored = False
        self.queue_model, self.p, self.fees = queue_model, p, fees
        self.watch = np.zeros(0, np.uint8)
        self.levels = np.zeros(0, np.int64)
        self.wanted = instruments       # ids and symbols; None: every instrument
        self.ctx = Context(self)
        self.callbacks = {name: getattr(strategy, name) for name in (
            "on_start", "on_book", "on_trade", "on_fill", "on_order", "on_timer", "on_end")}
        self.on_book_cb = self.callbacks["on_book"]
        self.no_feed_latency = feed_latency.kind == "constant" and feed_latency.params[0] == 0
        self.sync_instruments()

    def sync_instruments(self) -> None:
        """Trade the instruments asked for that the books now have (a codec announces
        them as its stream names them)."""
        books = self.books
        n = len(books)
        if n > len(self.watch):
            grown = np.zeros(n, np.uint8)
            grown[:len(self.watch)] = self.watch
            levels = np.empty(4 * n, np.int64)
            levels[0::2] = _EMPTY_RANGE[0]
            levels[1::2] = _EMPTY_RANGE[1]
            levels[:len(self.levels)] = self.levels
            self.watch, self.levels = grown, levels
        ids: list[int] = []
        if self.wanted is None:
            ids = list(range(n))
        else:
            for x in self.wanted:
                if isinstance(x, str):
                    found = _find_symbol(books, x)
                    if found is not None:
                        ids.append(found)
                else:
                    ids.append(x)
        for inst in ids:
            if inst not in self.insts:
                self.add_instrument(inst)

    def add_instrument(self, inst: int) -> None:
        books, reference = self.books, self.reference
        on_book, on_trade = self.on_book, self.on_trade
        meta = books.instrument(inst)
        book = books[inst]
        if reference and meta["kind"] == "l3":
            from fastbook._pybacktest import ShadowQueue

            queue: Any = ShadowQueue(meta, book)
        elif meta["kind"] == "l3":
            queue = _L3Queue()
        else:
            queue = _L2Queue(self.queue_model, self.p)
        self.insts[inst] = _Inst(inst, book, meta, queue, _fees_of(self.fees, meta))
        bits = _W_OWN
        if on_book == "bbo":
            bits |= _W_BBO
        elif on_book == "event":
            bits |= _W_EVERY
        if on_trade:
            bits |= _W_TRADE
        self.watch[inst] = bits
        if reference:
            self.update_levels(self.insts[inst])

    # -- scheduling --------------------------------------------------------------------
    def push(self, t: int, kind: int, payload: Any) -> None:
        self.hseq += 1
        heapq.heappush(self.heap, (t, self.hseq, kind, payload))

    def call(self, name: str, *args: Any) -> None:
        try:
            self.callbacks[name](self.ctx, *args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            self.failed(name, exc)

    def failed(self, name: str, exc: Exception) -> None:
        """A strategy callback raised: count it (skip mode) or stop the run."""
        if self.on_error == "skip":
            self.strategy_errors += 1
            return
        raise _StrategyFailed(f"t={self.now}: the strategy's {name} raised "
                              f"{type(exc).__name__}: {exc}") from exc

    # -- requests (called by the strategy) ---------------------------------------------
    def submit(self, inst: Any, side: Any, qty: Any, price: Any, tif: str) -> int:
        where = f"t={self.now}: order on instrument {inst!r}"
        st = self.insts.get(int(inst)) if isinstance(inst, (int, np.integer)) else None
        if st is None:
            raise OrderError(f"{where}: not an instrument of this backtest "
                             f"(instruments= names {sorted(self.insts)})")
        if side not in (BID, ASK):
            raise OrderError(f"{where}: side must be BID (1) or ASK (2), got {side!r}")
        if not isinstance(qty, (int, np.integer)) or isinstance(qty, bool) or qty <= 0:
            raise OrderError(f"{where}: quantity must be a positive int, got {qty!r}")
        if qty % st.lot:
            raise OrderError(f"{where}: quantity {qty} is not a multiple of the lot size "
                             f"{st.lot}")
        if price is not None:
            if not isinstance(price, (int, np.integer)) or isinstance(price, bool):
                raise OrderError(f"{where}: price must be an int (fixed-point), got {price!r}")
            if price % st.tick:
                raise OrderError(f"{where}: price {price} is not on the tick grid "
                                 f"(tick size {st.tick})")
        if tif not in ("gtc", "ioc"):
            raise OrderError(f"{where}: tif must be 'gtc' or 'ioc', got {tif!r}")
        o = Order(self.next_id, int(inst), int(side), int(qty),
                  None if price is None else int(price), "ioc" if price is None else tif,
                  self.now)
        self.next_id += 1
        self.orders[o.id] = o
        self.known[o.id] = o._copy()
        self.peak[o.id] = o.qty
        self.submitted_qty += o.qty
        self.push(self._entry_time(), _K_ARRIVE, ("new", o.id))
        return o.id

    def request(self, order_id: Any, what: str, price: Any = None, qty: Any = None) -> None:
        o = self.orders.get(int(order_id)) if isinstance(order_id, (int, np.integer)) else None
        if o is None:
            raise OrderError(f"t={self.now}: {what} of order {order_id!r}: no such order "
                             f"was submitted")
        if what == "modify":
            st = self.insts[o.instrument]
            where = f"t={self.now}: modify of order {o.id} (instrument {o.instrument})"
            if o.price is None:
                raise OrderError(f"{where}: a market order cannot be modified")
            if price is None and qty is None:
                raise OrderError(f"{where}: give price= or qty=")
            if qty is not None and (not isinstance(qty, (int, np.integer)) or qty <= 0
                                    or qty % st.lot):
                raise OrderError(f"{where}: quantity must be a positive multiple of the lot "
                                 f"size {st.lot}, got {qty!r}")
            if price is not None and (not isinstance(price, (int, np.integer))
                                      or price % st.tick):
                raise OrderError(f"{where}: price must be an int on the tick grid "
                                 f"(tick size {st.tick}), got {price!r}")
        self.push(self._entry_time(), _K_ARRIVE,
                  (what, o.id, None if price is None else int(price),
                   None if qty is None else int(qty)))

    def _entry_time(self) -> int:
        t = max(self.now + self.entry.draw(self.rng, self.now), self.last_entry)
        self.last_entry = t
        return t

    def _respond(self, t: int, what: str, payload: Any) -> None:
        r = max(t + self.response.draw(self.rng, t), self.last_response)
        self.last_response = r
        self.push(r, _K_RESPONSE, (what, payload))

    # -- the exchange side ---------------------------------------------------------------
    def arrive(self, t: int, item: tuple[Any, ...]) -> None:
        what, oid = item[0], item[1]
        o = self.orders[oid]
        st = self.insts[o.instrument]
        if what == "new":
            o.arrived = t
            self.arrival_seq += 1
            o.seq = self.arrival_seq
            self.enter(t, st, o)
            return
        if o.status != "resting":
            self._respond(t, "cancel_rejected" if what == "cancel" else "modify_rejected",
                          (o.id, f"order {o.id} is {o.status}"))
            return
        if what == "cancel":
            self.leave(st, o, "cancelled")
            self._respond(t, "order", o._copy())
            return
        price = o.price if item[2] is None else item[2]
        qty = o.qty if item[3] is None else item[3]
        if qty > self.peak[o.id]:        # the fill ratio's denominator: the most ever asked
            self.submitted_qty += qty - self.peak[o.id]
            self.peak[o.id] = qty
        if qty <= o.filled:
            self.leave(st, o, "cancelled")
            self._respond(t, "order", o._copy())
            return
        if price == o.price and qty <= o.qty:
            less = o.qty - qty
            o.qty = qty
            if less:
                st.queue.reduce(o, less)
            self._respond(t, "order", o._copy())
            return
        # a new price or a bigger size: the back of the (new) level, as a new arrival; a new
        # price that would take from a book that is not sound refuses the modify instead
        # (the order stays as it was, as an exchange refusing a request leaves it)
        why = self.unsound(st)
        if why and price is not None and self.marketable(st, o.side, price):
            self._respond(t, "modify_rejected",
                          (o.id, f"no taking fill from a book that is not sound: {why}"))
            return
        st.own.remove(o)
        st.queue.remove(o)
        o.price, o.qty = price, qty
        self.arrival_seq += 1
        o.seq = self.arrival_seq
        o.status = "pending"
        self.enter(t, st, o)

    def enter(self, t: int, st: _Inst, o: Order) -> None:
        """Order ``o`` reaches the book: it takes what it can, then rests or ends."""
        book = st.book
        other = ASK if o.side == BID else BID
        marketable = self.marketable(st, o.side, o.price)
        if marketable or o.price is None:
            why = self.unsound(st)
            if why:
                self.reject(t, o, f"no taking fill from a book that is not sound: {why}")
                return
        if marketable:
            for px, q in book.levels(other):
                if o.remaining <= 0 or (o.price is not None and not _crosses(o.side, o.price, px)):
                    break
                self.fill(t, st, o, px, min(q, o.remaining), True)
        elif o.price is None:
            self.reject(t, o, "no liquidity on the other side")
            return
        if o.remaining <= 0:
            return
        if o.tif == "ioc":
            o.status = "cancelled"
            o.reason = "immediate-or-cancel: the rest was not filled"
            self._respond(t, "order", o._copy())
            return
        o.status = "resting"
        st.own.append(o)
        st.sort()
        st.queue.place(o, book)
        self.update_levels(st)
        self._respond(t, "order", o._copy())

    @staticmethod
    def marketable(st: _Inst, side: int, price: int | None) -> bool:
        """Would an order at ``price`` (None: a market order) take from the book now?"""
        best = st.book.best_ask() if side == BID else st.book.best_bid()
        return best is not None and (price is None or _crosses(side, price, best[0]))

    @staticmethod
    def unsound(st: _Inst) -> str:
        """Why no taking fill may come from the book now ("" when it may)."""
        if st.stale:
            return "the book was cleared or is inside a snapshot"
        if st.halted:
            return "the instrument is halted"
        bid, ask = st.book.best_bid(), st.book.best_ask()
        if bid is not None and ask is not None and bid[0] >= ask[0]:
            return "the book is crossed"
        return ""

    def reject(self, t: int, o: Order, reason: str) -> None:
        o.status, o.reason = "rejected", reason
        self.rejected += 1
        self._respond(t, "order", o._copy())

    def leave(self, st: _Inst, o: Order, status: str) -> None:
        st.own.remove(o)
        st.queue.remove(o)
        o.status = status
        self.update_levels(st)

    def fill(self, t: int, st: _Inst, o: Order, price: int, qty: int, taker: bool) -> None:
        self.catch_up(t)
        o.filled += qty
        sign = 1 if o.side == BID else -1
        notional = price * st.pscale * qty * st.qscale
        fee = st.fees.fee(notional, qty * st.qscale, taker)
        self.cash -= sign * notional + fee
        self.fees_paid += fee
        # average-cost accounting of the realized P&L
        pos, units = st.position, sign * qty
        if pos == 0 or (pos > 0) == (units > 0):
            st.basis += sign * notional
        else:
            closed = min(abs(pos), qty)
            avg = st.basis / (pos * st.qscale)
            st.realized += (price * st.pscale - avg) * closed * st.qscale * (1 if pos > 0 else -1)
            st.basis -= avg * (closed * st.qscale) * (1 if pos > 0 else -1)
            if qty > closed:
                st.basis = sign * (qty - closed) * st.qscale * price * st.pscale
        st.position = pos + units
        if st.position == 0:
            st.basis = 0.0
        self.schedule_marks()
        f = Fill(t, st.inst, o.id, o.side, price, qty, taker, fee)
        self.fills.append(f)
        self.fill_marks.append(math.nan)
        if self.markout:
            self.push(t + self.markout, _K_MARKOUT, (len(self.fills) - 1, st.inst))
        if o.remaining == 0:
            o.status = "filled"
            if o in st.own:
                st.own.remove(o)
                st.queue.remove(o)
                self.update_levels(st)
        self._respond(t, "fill", f)

    def update_levels(self, st: _Inst) -> None:
        lv = self.levels
        if self.reference:
            # the reference sees every event before it is applied: own ranges that hold
            # every price (the fast path's bit 8)
            lv[4 * st.inst:4 * st.inst + 4] = (-(1 << 63), (1 << 63) - 1, -(1 << 63),
                                               (1 << 63) - 1)
            return
        b = [o.px for o in st.own if o.side == BID]
        a = [o.px for o in st.own if o.side == ASK]
        k = 4 * st.inst
        lv[k], lv[k + 1] = (min(b), max(b)) if b else _EMPTY_RANGE
        lv[k + 2], lv[k + 3] = (min(a), max(a)) if a else _EMPTY_RANGE

    # -- deliveries to the strategy ------------------------------------------------------
    def book_changed(self, st: _Inst, ts: int) -> None:
        if self.marks_from_bbo and st.position:
            # the marks before this change, then the position at its new mid
            self.catch_up(ts)
            self.held = self.equity()
        top = st.book.top(self.depth)       # a new array each time: no copy needed
        v = BookView(st.inst, ts, top)
        lat = 0 if self.no_feed_latency else self.feed.draw(self.rng, ts)
        if lat == 0 and ts >= self.last_feed:
            self.last_feed = ts
            st.view = v
            try:
                self.on_book_cb(self.ctx, v)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                self.failed("on_book", exc)
            return
        t = max(ts + lat, self.last_feed)
        self.last_feed = t
        self.push(t, _K_VIEW, v)

    def trade_seen(self, tr: Trade) -> None:
        lat = self.feed.draw(self.rng, tr.ts)
        t = max(tr.ts + lat, self.last_feed)
        self.last_feed = t
        if t == tr.ts:
            self.now = max(self.now, t)
            self.call("on_trade", tr)
        else:
            self.push(t, _K_TRADE, tr)

    def run_item(self, t: int, kind: int, payload: Any) -> None:
        self.now = max(self.now, t)
        if kind == _K_ARRIVE:
            self.arrive(t, payload)
        elif kind == _K_RESPONSE:
            what, obj = payload
            if what == "fill":
                k = self.known[obj.order_id]
                k.filled += obj.qty
                if k.filled >= k.qty:
                    k.status = "filled"
                self.known_position[obj.instrument] = self.known_position.get(
                    obj.instrument, 0) + (obj.qty if obj.side == BID else -obj.qty)
                st = self.insts[obj.instrument]
                self.known_cash -= (1 if obj.side == BID else -1) * obj.price * st.pscale \
                    * obj.qty * st.qscale + obj.fee
                self.call("on_fill", obj)
            elif what == "order":
                self.known[obj.id] = obj._copy()
                self.call("on_order", obj)
            else:
                # a cancel or modify refused: the order as known, with the reason
                o = self.known[obj[0]]._copy()
                o.reason = obj[1]
                self.call("on_order", o)
        elif kind == _K_VIEW:
            self.insts[payload.instrument].view = payload
            self.call("on_book", payload)
        elif kind == _K_TRADE:
            self.call("on_trade", payload)
        elif kind == _K_TIMER:
            assert self.timer is not None
            self.push(t + self.timer, _K_TIMER, None)
            self.call("on_timer", t)
        elif kind == _K_MARK:
            self.marks.append((t, self.equity(), self.fees_paid))
            self.next_mark = t + self.mark
            if any(st.position for st in self.insts.values()):
                self.push(self.next_mark, _K_MARK, None)
            else:
                self.mark_scheduled = False
        elif kind == _K_MARKOUT:
            j, inst = payload
            self.fill_marks[j] = _mid(self.insts[inst].book)

    def equity(self) -> float:
        total = self.cash
        for st in self.insts.values():
            if st.position:
                mid = _mid(st.book)
                if not math.isnan(mid):
                    total += st.position * st.qscale * mid * st.pscale
                else:
                    total += st.basis     # no price: carried at cost
        return total

    def run_due(self, ts: int) -> None:
        heap = self.heap
        while heap and heap[0][0] <= ts:
            t, _, kind, payload = heapq.heappop(heap)
            self.run_item(t, kind, payload)

    # -- the market side -----------------------------------------------------------------
    def market_event(self, events: np.ndarray, i: int) -> None:
        """Event ``i`` stopped the compiled loop: apply it here and act on it."""
        row = events[i].tolist()
        inst = row[2]
        st = self.insts.get(inst)
        if st is None:
            self.apply_one(events, i)
            return
        action, side = row[3], row[4]
        book = st.book
        found = None
        if st.queue.kind == "l3" and action in (_REDUCE, _EXECUTE, _DELETE, _REPLACE):
            try:
                found = book.order(row[8], side=side) if book.side_keys else book.order(row[8])
            except (ValueError, TypeError, OverflowError):
                found = None
        bbo = book.bbo() if self.on_book == "bbo" else None
        old = book.qty_at(side, row[6]) if st.queue.kind == "l2" and side in (BID, ASK) else 0
        if not self.apply_one(events, i):
            return      # skipped (on_error="skip"): the books did not change
        ts = row[0]
        self.now = max(self.now, ts)
        fills: list[tuple[Order, int]] = []
        if action in (_CLEAR, _SNAP_BEGIN):
            # a CLEAR is a feed discarding a book it knows is wrong (a resync): nothing is
            # known of it until a snapshot ends, so nothing fills from it meanwhile
            st.stale = True
        elif action == _SNAP_END:
            if st.stale:
                st.stale = False
                st.queue.rebuild(book, st.own)
        elif action == _STATUS:
            st.halted = bool(row[5] & _HALTED)
        elif not st.stale:
            fills = st.queue.event(book, row, found, old, st.own)
        for o, q in fills:
            if o.status == "resting" and q > 0:
                q = min(q, o.remaining)
                st.queue.filled(o, q)
                self.fill(ts, st, o, o.px, q, False)
        if self.on_trade and action in (_EXECUTE, _TRADE):
            # the event's price when it has one (ITCH 'C': the execution price), else
            # the resting order's
            tside = found[0] if found is not None else side
            tprice = row[6] if row[6] != 0 or found is None else found[1]
            self.trade_seen(Trade(ts, inst, tside, tprice, row[7], row[5]))
        if self.on_book == "event" or (bbo is not None and book.bbo() != bbo):
            self.book_changed(st, ts)

    def apply_one(self, events: np.ndarray, i: int) -> bool:
        try:
            return bool(self.books.apply(events[i:i + 1]))
        except UpdateError as exc:
            message = str(exc)
            if message.startswith("event 0: "):
                message = message[len("event 0: "):]
            raise UpdateError(f"event {i}: {message}", i) from None

    def run_batch(self, events: np.ndarray) -> None:
        if len(self.books) != len(self.watch):
            self.sync_instruments()
        if not self.anchored:
            self.anchor(events)
        n = len(events)
        i = 0
        advance = self.books._advance
        while i < n:
            wake = self.heap[0][0] if self.heap else _NO_WAKE
            j, reason, ts, inst, latest = advance(events, i, n, self.watch, self.levels, wake)
            self.events += j - i
            i = j
            if latest > self.now:
                self.now = latest       # the clock: the latest exchange time applied
            if reason == _R_END:
                break
            self.stops += 1
            if reason == _R_WAKE:
                self.run_due(ts)
            elif reason == _R_EVENT:
                self.market_event(events, i)
                self.events += 1
                i += 1
            else:
                if ts > self.now:
                    self.now = ts
                self.book_changed(self.insts[inst], ts)
        if n:
            self.last_ts = int(events[n - 1]["ts_exchange"])

    def start(self, events: np.ndarray) -> None:
        self.anchor(events)
        self.call("on_start")

    def anchor(self, events: np.ndarray) -> None:
        """Start the clock, the timer and the marks at the first event with a time: events
        without one (a REST snapshot's rows: ``ts_exchange`` 0) come before it."""
        ts = events["ts_exchange"]
        timed = ts[ts > 0]
        if not len(timed):
            return
        t0 = int(timed[0])
        self.anchored = True
        self.now = max(self.now, t0)
        if self.timer:
            self.push(t0 + self.timer, _K_TIMER, None)
        self.next_mark = t0 + self.mark

    def catch_up(self, t: int) -> None:
        """Marks of the grid points up to ``t``, without waking the engine for them.

        The equity only moves with the cash (fills) and with the mids of the books
        holding a position. When every traded book is watched for BBO changes (or every
        event), the engine sees each of those moments: ``held`` is the equity as of the
        last one, and this runs before each of them. Otherwise it runs only while every
        position is flat (the equity is the cash); marks are scheduled meanwhile."""
        if not self.mark or not self.anchored:
            return
        if self.marks_from_bbo:
            equity = self.held
        elif self.mark_scheduled:
            return
        else:
            equity = self.cash
        fees, mark = self.fees_paid, self.mark
        g = self.next_mark
        while g <= t:
            self.marks.append((g, equity, fees))
            g += mark
        self.next_mark = g

    def schedule_marks(self) -> None:
        if self.marks_from_bbo:
            self.held = self.equity()
        elif self.mark and not self.mark_scheduled and self.anchored \
                and any(st.position for st in self.insts.values()):
            self.mark_scheduled = True
            self.push(self.next_mark, _K_MARK, None)


class _StrategyFailed(Exception):
    pass


def _find_symbol(books: Any, symbol: str) -> int | None:
    """The id of the book of ``symbol`` on whatever venue (None: none yet); a symbol on
    several venues must be given by id."""
    found = [i for i in range(len(books)) if books.instrument(i)["symbol"] == symbol]
    if len(found) > 1:
        raise ValueError(f"instruments: {symbol!r} has books on several venues "
                         f"(ids {found}): give the id")
    return found[0] if found else None


def _mid(book: Any) -> float:
    bid, ask = book.best_bid(), book.best_ask()
    if bid is None or ask is None:
        return math.nan
    return float(bid[0] + ask[0]) / 2


def _fees_of(fees: Any, meta: Mapping[str, Any]) -> Fees:
    if fees is None:
        return Fees()
    if isinstance(fees, Fees):
        return fees
    if isinstance(fees, Mapping):
        for key in (meta.get("symbol"), meta.get("venue")):
            if key in fees:
                value = fees[key]
                if not isinstance(value, Fees):
                    raise ValueError(f"fees[{key!r}] must be a fastbook.backtest.Fees")
                return value
        return Fees()
    raise ValueError(f"fees must be a Fees or a mapping of symbol or venue to Fees, "
                     f"got {fees!r}")


# -- results -------------------------------------------------------------------------------

_FILL_DTYPE = np.dtype([("ts", "i8"), ("instrument", "u4"), ("order_id", "u8"), ("side", "i1"),
                        ("price", "i8"), ("qty", "i8"), ("taker", "?"), ("fee", "f8"),
                        ("markout_mid", "f8")])


class BacktestResult:
    """What a backtest produced: fills and orders as numpy columns, the equity curve,
    positions, P&L and a summary. Floats are currency (prices and sizes scaled by
    their decimals); ``price`` and ``qty`` columns stay fixed-point integers."""

    def __init__(self, engine: _Engine, stopped: str | None) -> None:
        e = engine
        arr = np.zeros(len(e.fills), _FILL_DTYPE)
        for k, f in enumerate(e.fills):
            arr[k] = (f.ts, f.instrument, f.order_id, f.side, f.price, f.qty, f.taker, f.fee,
                      e.fill_marks[k])
        self.fills: dict[str, np.ndarray] = {name: arr[name] for name in _FILL_DTYPE.names or ()}
        orders = sorted(e.orders.values(), key=lambda o: o.id)
        self.orders: dict[str, np.ndarray] = {
            "order_id": np.array([o.id for o in orders], np.uint64),
            "instrument": np.array([o.instrument for o in orders], np.uint32),
            "side": np.array([o.side for o in orders], np.int8),
            "price": np.array([0 if o.price is None else o.price for o in orders], np.int64),
            "qty": np.array([o.qty for o in orders], np.int64),
            "filled": np.array([o.filled for o in orders], np.int64),
            "submitted": np.array([o.submitted for o in orders], np.int64),
            "arrived": np.array([-1 if o.arrived is None else o.arrived for o in orders],
                                np.int64),
            "status": np.array([o.status for o in orders], dtype="U9"),
        }
        self.equity: dict[str, np.ndarray] = {
            "ts": np.array([m[0] for m in e.marks], np.int64),
            "equity": np.array([m[1] for m in e.marks], np.float64),
            "fees": np.array([m[2] for m in e.marks], np.float64),
        }
        self._positions = {i: st.position for i, st in e.insts.items()}
        self._realized = {i: st.realized for i, st in e.insts.items()}
        self._scales = {i: (st.pscale, st.qscale) for i, st in e.insts.items()}
        self.cash = e.cash
        self.final_equity = e.equity()
        self.fees_paid = e.fees_paid
        self.events = e.events
        self.stops = e.stops
        self.rejected = e.rejected
        self.strategy_errors = e.strategy_errors
        self.submitted_qty = e.submitted_qty
        self.stopped = stopped
        self.skipped = int(sum(e.books.errors.values())) if hasattr(e.books, "errors") else 0

    def position(self, instrument: int) -> int:
        """The final position in ``instrument`` (quantity units)."""
        return self._positions.get(instrument, 0)

    def realized(self, instrument: int | None = None) -> float:
        if instrument is None:
            return float(sum(self._realized.values()))
        return self._realized.get(instrument, 0.0)

    def summary(self) -> dict[str, Any]:
        """P&L, costs, activity, Sharpe, drawdown, fill ratio and the fills' markout
        (``markout_bps``: quantity-weighted ``side * (mid after markout - price) / price``
        in basis points; negative is adverse selection)."""
        f = self.fills
        sides = np.where(f["side"] == BID, 1.0, -1.0)
        scale = np.array([self._scales[int(i)][0] for i in f["instrument"]], np.float64) \
            if len(f["qty"]) else np.zeros(0)
        qscale = np.array([self._scales[int(i)][1] for i in f["instrument"]], np.float64) \
            if len(f["qty"]) else np.zeros(0)
        notional = f["price"] * scale * f["qty"] * qscale
        eq = self.equity["equity"]
        steps = np.diff(np.concatenate(([0.0], eq))) if len(eq) else np.zeros(0)
        sharpe = float(steps.mean() / steps.std() * math.sqrt(len(steps))) \
            if len(steps) > 1 and steps.std() > 0 else math.nan
        peak = np.maximum.accumulate(np.concatenate(([0.0], eq))) if len(eq) else np.zeros(1)
        drawdown = float((peak - np.concatenate(([0.0], eq))).max()) if len(eq) else 0.0
        ok = ~np.isnan(f["markout_mid"])
        # quantity-weighted: positive when the mid moved the fills' way, negative is
        # adverse selection
        markout = float(np.average(sides[ok] * (f["markout_mid"][ok] - f["price"][ok])
                                   / f["price"][ok], weights=f["qty"][ok]) * 1e4) \
            if ok.any() and (f["price"][ok] != 0).all() else math.nan
        filled = int(f["qty"].sum())
        return {
            "pnl": self.final_equity,
            "realized": self.realized(),
            "unrealized": self.final_equity - self.realized() + self.fees_paid,
            "fees": self.fees_paid,
            "fills": len(f["qty"]),
            "maker_fills": int((~f["taker"]).sum()),
            "taker_fills": int(f["taker"].sum()),
            "volume": filled,
            "turnover": float(notional.sum()),
            "orders": len(self.orders["order_id"]),
            "rejected": self.rejected,
            "fill_ratio": filled / self.submitted_qty if self.submitted_qty else math.nan,
            "sharpe": sharpe,
            "max_drawdown": drawdown,
            "markout_bps": markout,
            "events": self.events,
            "strategy_errors": self.strategy_errors,
            "stopped": self.stopped,
        }

    def to_parquet(self, path: str | os.PathLike[str]) -> list[str]:
        """Write ``<path>.fills.parquet``, ``.orders.parquet`` and ``.equity.parquet``
        (needs pyarrow: ``pip install 'fastbook-lob[arrow]'``); returns the paths."""
        from fastbook._extras import require

        pa = require("pyarrow", "arrow", "BacktestResult.to_parquet")
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        base = os.fspath(path)
        if base.endswith(".parquet"):
            base = base[:-len(".parquet")]
        out = []
        for name, cols in (("fills", self.fills), ("orders", self.orders),
                           ("equity", self.equity)):
            target = f"{base}.{name}.parquet"
            pq.write_table(pa.table({k: pa.array(v) for k, v in cols.items()}), target)
            out.append(target)
        return out

    def plot(self, out_png: str | os.PathLike[str] | None = None) -> Any:
        """The equity curve and the fills (needs ``fastbook-lob[plot]``): a Figure, also
        written to ``out_png`` when given."""
        from fastbook.plot import _mpl

        Figure = _mpl()
        fig = Figure(figsize=(10, 6), layout="constrained")
        ax1, ax2 = fig.subplots(2, 1, sharex=True)
        eq, f = self.equity, self.fills
        t0 = int(eq["ts"][0]) if len(eq["ts"]) else int(f["ts"][0]) if len(f["ts"]) else 0
        ax1.plot((eq["ts"] - t0) / 3.6e12, eq["equity"], lw=1, label="equity")
        ax1.plot((eq["ts"] - t0) / 3.6e12, eq["fees"], lw=1,
                 label="fees paid (negative: rebates)")
        ax1.axhline(0, color="0.6", lw=0.5)
        ax1.set_ylabel("currency")
        ax1.legend(loc="best")
        ax1.set_title("backtest: equity (cash + positions at the mid) and fees")
        buys = f["side"] == BID
        ax2.scatter((f["ts"][buys] - t0) / 3.6e12, f["price"][buys], s=8, marker="^",
                    label="buys")
        ax2.scatter((f["ts"][~buys] - t0) / 3.6e12, f["price"][~buys], s=8, marker="v",
                    label="sells")
        ax2.set_xlabel("hours since the first mark (exchange clock)")
        ax2.set_ylabel("fill price (fixed-point)")
        ax2.legend(loc="best")
        if out_png is not None:
            fig.savefig(os.fspath(out_png), dpi=110)
        return fig

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<BacktestResult fills={s['fills']} pnl={s['pnl']:.6g} fees={s['fees']:.6g} "
                f"events={s['events']}>")


# -- the entry point -----------------------------------------------------------------------

def _is_source(events: Any) -> bool:
    """A recorded source (a path, bytes, a binary file, or a list of capture paths merged
    by receive time, as ``fastbook.replay`` takes them), not decoded event arrays."""
    if isinstance(events, (list, tuple)):
        return bool(events) and all(isinstance(x, (str, os.PathLike)) for x in events)
    return isinstance(events, (str, os.PathLike, bytes, bytearray, memoryview)) \
        or hasattr(events, "read")


def _source_batches(source: Any, codec: Any, books: Any, symbols: Any, progress: Any,
                    options: dict[str, Any]) -> Iterator[np.ndarray]:
    """A codec's event batches over ``source``, its instruments announced into ``books``."""
    from fastbook.driver import Instruments, open_run, resolve_codec

    kind, module, name = resolve_codec(source, codec)
    on_error = "skip" if books.on_error == "skip" else "raise"
    run, _ = open_run(kind, module, name, source, Instruments(books), symbols=symbols,
                      on_error=on_error, instruments=None, book_depth=None, verify=True,
                      progress=progress, chunk_size=4 << 20, compression="auto",
                      codec_options=dict(options))
    with run:
        yield from run


def _batches(events: Any) -> Iterator[np.ndarray]:
    from fastbook.events import EVENT_DTYPE

    if isinstance(events, np.ndarray):
        yield events
        return
    for batch in events:
        if not isinstance(batch, np.ndarray) or batch.dtype != EVENT_DTYPE:
            raise ValueError("events must be an EVENT_DTYPE array or an iterable of them")
        yield batch


def backtest(events: Any, strategy: Strategy, *, books: Any,
             instruments: Sequence[int | str] | None = None,
             on_book: str | None = "bbo", on_trade: bool = False, depth: int = 5,
             timer: int | None = None, feed_latency: Any = 0, order_latency: Any = 0,
             response_latency: Any = 0, fees: Any = None, queue_model: str = "pessimistic",
             p: float = 2.0, seed: int = 0, mark: int = 1_000_000_000,
             markout: int = 1_000_000_000, on_error: str = "raise",
             reference: bool = False, codec: Any = None, symbols: Any = None,
             progress: bool | None = None, **codec_options: Any) -> BacktestResult:
    """Run ``strategy`` against ``events`` applied to ``books``.

    Parameters
    ----------
    events : EVENT_DTYPE array, an iterable of them, or a recorded source
        The recorded stream, in time order. Arrays must name the instruments of
        ``books``. A source (a path, bytes or a binary file: an ITCH day, an L2
        capture, a live recording...) is decoded as ``fastbook.replay`` does, with
        ``codec`` (default ``itch50``), ``symbols`` (default: the symbols of
        ``instruments``), ``progress`` and ``**codec_options``; its instruments are
        added to ``books`` as the stream names them.
    strategy : Strategy
    books : BookSet
        The books the events build. A set made with ``on_error="skip"`` skips and
        counts bad events; otherwise the first bad event stops the run with
        ``UpdateError`` (index = its position in its batch).
    instruments : ids or symbols, optional
        The instruments the strategy trades and watches (default: every one).
    on_book : "bbo", "event" or None
        When ``on_book`` is called: after every change of the best bid or ask (price
        or size), after every event of the instrument, or never.
    on_trade : bool
        Call ``on_trade`` for every trade print (EXECUTE, TRADE) of the instruments.
    depth : int
        Levels per side in a :class:`BookView`.
    timer : ns, optional
        Call ``on_timer`` every ``timer`` ns of exchange time, from the first event.
    feed_latency, order_latency, response_latency : ns or Latency
        See the module documentation.
    fees : Fees, or {symbol or venue: Fees}
    queue_model : str
        L2 books: ``"pessimistic"`` (default), ``"proportional"``, ``"power"`` (``p``)
        or ``"log"`` (``docs/queue.md``). L3 books are exact.
    seed : int
        The seed of the latency draws: the same inputs and seed give identical results.
    mark : ns
        The equity curve's sampling interval (0: none), from the first event's time:
        a mark at ``g`` is the equity (cash, plus positions at the mid) before anything
        that happens at ``g``. With ``on_book`` set the engine sees every change of the
        traded books' mids, so marks are written then, without waking the engine; with
        ``on_book=None`` it wakes at each mark while a position is open.
    markout : ns
        The horizon of the adverse-selection markout after each fill (0: none).
    on_error : "raise" or "skip"
        A strategy callback that raises: stop with :class:`BacktestError` (its
        ``result`` holds everything so far), or count it and go on.
    reference : bool
        Run the plain reference instead: every event through Python, and exact L3
        queues kept in a shadow book with the own orders in it (for tests).
    """
    if not hasattr(books, "_advance"):
        raise ValueError(f"books must be a fastbook.BookSet, got {type(books).__name__}")
    if on_book not in ("bbo", "event", None):
        raise ValueError(f"on_book must be 'bbo', 'event' or None, got {on_book!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not isinstance(strategy, Strategy):
        raise ValueError("strategy must be a fastbook.backtest.Strategy (subclass it)")
    for name, value in (("depth", depth), ("mark", mark), ("markout", markout)):
        if not isinstance(value, int) or value < (1 if name == "depth" else 0):
            raise ValueError(f"{name} must be an int >= {1 if name == 'depth' else 0}, "
                             f"got {value!r}")
    if timer is not None and (not isinstance(timer, int) or timer <= 0):
        raise ValueError(f"timer must be ns > 0, got {timer!r}")
    source = _is_source(events)
    if not source and (codec is not None or symbols is not None or codec_options):
        given = sorted(codec_options) + [k for k, v in (("codec", codec), ("symbols", symbols))
                                         if v is not None]
        raise ValueError(f"{', '.join(given)}: options of a recorded source; events is "
                         f"already decoded")
    wanted: list[int | str] | None = None
    if instruments is not None:
        wanted = []
        for x in instruments:
            if isinstance(x, str):
                if not source and _find_symbol(books, x) is None:
                    raise ValueError(f"instruments: no book of books has the symbol {x!r}")
                wanted.append(x)
            elif isinstance(x, (int, np.integer)) and not isinstance(x, bool) \
                    and 0 <= x < len(books):
                wanted.append(int(x))
            else:
                raise ValueError(f"instruments: {x!r} is not a symbol or id of books "
                                 f"({len(books)} instruments)")
    if source:
        if symbols is None and wanted and all(isinstance(x, str) for x in wanted):
            symbols = list(wanted)
        events = _source_batches(events, codec, books, symbols, progress, codec_options)
    engine = _Engine(books, strategy, wanted, on_book=on_book, on_trade=on_trade, depth=depth,
                     timer=timer, feed_latency=_latency(feed_latency, "feed_latency"),
                     order_latency=_latency(order_latency, "order_latency"),
                     response_latency=_latency(response_latency, "response_latency"),
                     fees=fees, queue_model=queue_model, p=p, seed=seed, mark=mark,
                     markout=markout, on_error=on_error, reference=reference)
    started = False
    engine.last_ts = 0
    try:
        for batch in _batches(events):
            if not len(batch):
                continue
            if not started:
                engine.start(batch)
                started = True
            engine.run_batch(batch)
        if started:
            engine.run_due(engine.last_ts)
            engine.catch_up(engine.last_ts)
            engine.call("on_end")
    except _StrategyFailed as exc:
        result = BacktestResult(engine, str(exc))
        raise BacktestError(f"backtest stopped: {exc}", result) from exc.__cause__
    return BacktestResult(engine, None)
