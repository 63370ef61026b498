"""Queue position of your own resting orders on an L2 (price-level) book.

An L2 feed shows the total quantity at each price, not the orders in it, so where
your order sits in its level's FIFO queue has to be estimated from what the feed
does show: the level's size after each change and the trades at its price.
:class:`QueueTracker` keeps that estimate for any number of own orders of one
instrument, under one of the models documented in ``docs/queue.md``:

``"pessimistic"``
    Only trades at your price move you forward; every other decrease of the level
    is a cancel behind you. Exact integers.
``"proportional"``
    A decrease not explained by trades is split between the quantity ahead and the
    quantity behind in proportion to their sizes; trades move you forward fully.
``"power"`` (parameter ``p``, default 2) and ``"log"``
    The probabilistic form of hftbacktest's ``ProbQueueModel``: the share of an
    unexplained decrease taken from ahead is ``f(ahead) / (f(ahead) + f(behind))``
    with ``f(x) = x**p`` or ``f(x) = log(1 + x)``. ``p = 1`` is ``"proportional"``.

Trades consume the queue from the front: when the volume traded at your price
exceeds the quantity ahead of you, the excess fills you (partially or fully), and
the fill is reported by :meth:`QueueTracker.on_trade` as it happens.

:func:`compare_with_l3` replays an L3 event stream and measures every model's
error against the exact FIFO positions of ``OrderBook.queue_position``
(``bench/queue_models.py`` prints the table).

>>> import fastbook as fb
>>> from fastbook.queue import QueueTracker
>>> qt = QueueTracker("pessimistic")
>>> qt.place("me", fb.BID, 10000, 5, level_qty=30)   # 30 shares were there before us
>>> qt.on_level(fb.BID, 10000, 35)                    # the feed shows our 5 too
>>> qt.on_level(fb.BID, 10000, 45)                    # +10: orders behind us
>>> qt.on_level(fb.BID, 10000, 41)                    # -4: a cancel, behind us (pessimistic)
>>> qt.position("me")
30
>>> qt.on_trade(10000, 32, aggressor_side=fb.ASK)     # a sell of 32 hits the bids
[('me', 2)]
>>> qt.position("me"), qt.order("me").remaining
(0, 3)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastbook._checks import is_int
from fastbook._vocab import ASK, BID, Action, Flags

__all__ = ["MODELS", "QueueOrder", "QueueTracker", "compare_with_l3", "track_events"]

#: The model names :class:`QueueTracker` accepts.
MODELS: tuple[str, ...] = ("pessimistic", "proportional", "power", "log")

# An estimate within this much of an integer counts as that integer when fills are
# computed (float models accumulate rounding of order 1e-12 over long lives).
_EPS = 1e-9

Number = int | float


# -- the models: how an unexplained decrease (a cancel) is split -------------------------

def _pessimistic(ahead: Number, behind: Number, cancel: int) -> Number:
    """Every cancel is behind us: the quantity ahead is unchanged."""
    return ahead


def _proportional(ahead: Number, behind: Number, cancel: int) -> Number:
    """The cancel is split in proportion: ``ahead * cancel / (ahead + behind)`` from ahead."""
    total = ahead + behind
    if total <= 0:
        return 0
    return ahead - cancel * ahead / total


def _probabilistic(share: Callable[[float, float], float]
                   ) -> Callable[[Number, Number, int], Number]:
    """The hftbacktest form: the share from ahead is ``share(a, b) = f(a) / (f(a) + f(b))``.

    What the behind part cannot absorb (more than ``behind``) comes from ahead too,
    and ahead never goes below zero.
    """
    def split(ahead: Number, behind: Number, cancel: int) -> Number:
        from_ahead = cancel * share(float(ahead), float(behind))
        from_behind = cancel - from_ahead
        if from_behind > behind:
            from_ahead += from_behind - behind
        return max(ahead - from_ahead, 0.0)
    return split


def _power_share(p: float) -> Callable[[float, float], float]:
    """``a**p / (a**p + b**p)``, computed as ``1 / (1 + (b/a)**p)`` in logs: no overflow."""
    def share(a: float, b: float) -> float:
        if a <= 0 or b <= 0:
            return 0.0 if a <= 0 < b else 1.0
        d = p * (math.log(b) - math.log(a))
        return 1.0 / (1.0 + math.exp(d)) if d < 700.0 else 0.0
    return share


def _log_share(a: float, b: float) -> float:
    """``log(1 + a) / (log(1 + a) + log(1 + b))`` (1 when both are 0)."""
    fa, fb = math.log1p(a), math.log1p(b)
    return 1.0 if fa + fb <= 0 else fa / (fa + fb)


def _model(name: str, p: float) -> Callable[[Number, Number, int], Number]:
    if name == "pessimistic":
        return _pessimistic
    if name == "proportional":
        return _proportional
    if name == "power":
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) \
                or p <= 0:
            raise ValueError(f"QueueTracker: p must be a finite number > 0, got {p!r}")
        return _probabilistic(_power_share(float(p)))
    if name == "log":
        return _probabilistic(_log_share)
    raise ValueError(f"QueueTracker: unknown model {name!r}; expected one of {', '.join(MODELS)}")


# -- state ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueOrder:
    """A snapshot of one own order as the tracker sees it (:meth:`QueueTracker.order`).

    ``ahead`` is the estimated quantity ahead (others' estimate plus your own
    earlier orders at the price); ``status`` is ``"resting"``, ``"filled"``,
    ``"cancelled"`` or ``"forgotten"``; ``inconsistent`` counts the level updates that showed less
    quantity than your own resting orders there (the feed contradicted the order).
    """

    key: Hashable
    side: int
    price: int
    qty: int
    remaining: int
    filled: int
    ahead: Number
    status: str
    inconsistent: int


class _Order:
    __slots__ = ("ahead", "filled", "inconsistent", "key", "price", "qty", "remaining", "side",
                 "status")

    def __init__(self, key: Hashable, side: int, price: int, qty: int, ahead: Number) -> None:
        self.key = key
        self.side = side
        self.price = price
        self.qty = qty
        self.remaining = qty
        self.filled = 0
        self.ahead = ahead          # others' quantity ahead (the model's estimate)
        self.status = "resting"
        self.inconsistent = 0


class _Level:
    """One price of one side holding own orders: the last size seen and pending credits."""

    __slots__ = ("orders", "pending", "qty")

    def __init__(self, qty: int) -> None:
        self.qty = qty              # the level size as last seen (or as expected after place)
        self.pending = 0            # traded / own-removed quantity not yet seen as a decrease
        self.orders: list[_Order] = []   # own orders in queue (placement) order


def _check_side(side: Any, what: str) -> int:
    if side not in (BID, ASK) or isinstance(side, bool):
        raise ValueError(f"QueueTracker.{what}: side must be BID (1) or ASK (2), got {side!r}")
    return int(side)


def _check_qty(value: Any, what: str, name: str, low: int = 0) -> int:
    if not is_int(value, low):
        raise ValueError(f"QueueTracker.{what}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


class QueueTracker:
    """Estimated queue positions of your own resting orders on one instrument's L2 book.

    Parameters
    ----------
    model : {"pessimistic", "proportional", "power", "log"}, default "proportional"
        How a decrease of the level that trades do not explain is split between the
        quantity ahead of an order and behind it (``docs/queue.md`` gives each formula).
    p : float, default 2.0
        The exponent of the ``"power"`` model.
    own_in_level : bool, default True
        Whether the level sizes given to :meth:`on_level` include your own orders, as
        a live feed's do (your order is in the book). ``False`` for a backtest, where
        the orders are virtual and the recorded levels never contain them.
    trade_through : bool, default True
        A trade at a price worse than an own order's (a sale below your bid, a
        purchase above your ask) fills that order completely: the whole level must
        have traded for the print to happen there.

    Feed it, in stream order: :meth:`on_trade` for each trade print, **before** the
    level update that shows its effect, and :meth:`on_level` for each new level size
    (levels without own orders are ignored cheaply). Traded (and own cancelled)
    quantity is credited against the next decrease of its level; what the next level
    update does not use is dropped.
    """

    def __init__(self, model: str = "proportional", *, p: float = 2.0, own_in_level: bool = True,
                 trade_through: bool = True) -> None:
        self._split = _model(model, p)
        self.model = model
        self.p = p
        self.own_in_level = bool(own_in_level)
        self.trade_through = bool(trade_through)
        self._orders: dict[Hashable, _Order] = {}
        self._levels: dict[tuple[int, int], _Level] = {}
        #: Traded quantity a level update never used (prints larger than the decrease).
        self.unmatched_trade_qty = 0

    def __repr__(self) -> str:
        resting = sum(len(lv.orders) for lv in self._levels.values())
        return (f"QueueTracker(model={self.model!r}, resting={resting}, "
                f"own_in_level={self.own_in_level})")

    # -- own orders ----------------------------------------------------------------------

    def place(self, key: Hashable, side: int, price: int, qty: int, level_qty: int) -> None:
        """Start tracking an own order that has just joined the back of its level.

        ``level_qty`` is the level's size as the feed shows it at that moment, without
        this order (it includes your earlier own orders there when ``own_in_level``):
        everything at the level is ahead of the new order.
        """
        side = _check_side(side, "place")
        if not is_int(price):
            raise ValueError(f"QueueTracker.place: price must be an int, got {price!r}")
        qty = _check_qty(qty, "place", "qty", 1)
        level_qty = _check_qty(level_qty, "place", "level_qty")
        if key in self._orders:
            raise ValueError(f"QueueTracker.place: order {key!r} is already tracked")
        lv = self._levels.get((side, int(price)))
        if lv is None:
            lv = self._levels[(side, int(price))] = _Level(level_qty)
        else:
            lv.qty = level_qty
        own = self._own_total(lv) if self.own_in_level else 0
        order = _Order(key, side, int(price), qty, max(level_qty - own, 0))
        lv.orders.append(order)
        if self.own_in_level:
            lv.qty = level_qty + qty    # the feed will show the order in the level
        self._orders[key] = order

    def reduce(self, key: Hashable, qty: int) -> None:
        """Your own partial cancel of ``qty`` (the order keeps its place, as on ITCH 'X')."""
        order = self._resting(key, "reduce")
        qty = _check_qty(qty, "reduce", "qty", 1)
        if qty > order.remaining:
            raise ValueError(f"QueueTracker.reduce: order {key!r} has {order.remaining} left, "
                             f"cannot reduce by {qty}")
        order.remaining -= qty
        lv = self._levels[(order.side, order.price)]
        if self.own_in_level:
            lv.pending += qty
        if order.remaining == 0:
            self._finish(order, lv, "cancelled")

    def cancel(self, key: Hashable) -> None:
        """Your own order left the book (cancelled); it is no longer tracked as resting."""
        order = self._resting(key, "cancel")
        lv = self._levels[(order.side, order.price)]
        if self.own_in_level:
            lv.pending += order.remaining
        self._finish(order, lv, "cancelled")

    def forget(self, key: Hashable) -> None:
        """Stop tracking ``key`` with no effect on its level (status ``"forgotten"``).

        For an order you learn has left by other means (an execution report, the end
        of a validation): unlike :meth:`cancel`, no decrease of the level is expected.
        """
        order = self._resting(key, "forget")
        self._finish(order, self._levels[(order.side, order.price)], "forgotten")

    def _resting(self, key: Hashable, what: str) -> _Order:
        order = self._orders.get(key)
        if order is None:
            raise KeyError(f"QueueTracker.{what}: unknown order {key!r}")
        if order.status != "resting":
            raise ValueError(f"QueueTracker.{what}: order {key!r} is {order.status}")
        return order

    def _finish(self, order: _Order, lv: _Level, status: str) -> None:
        order.status = status
        order.ahead = 0
        lv.orders.remove(order)
        if not lv.orders:
            del self._levels[(order.side, order.price)]

    @staticmethod
    def _own_total(lv: _Level) -> int:
        return sum(o.remaining for o in lv.orders)

    # -- reads -----------------------------------------------------------------------------

    def position(self, key: Hashable) -> Number | None:
        """The estimated quantity ahead of ``key`` (None once it is filled or cancelled).

        Others' estimated quantity ahead plus the remaining quantity of your own
        earlier orders at the same price. An int for ``"pessimistic"``; a float for
        the other models once a cancel has been split.
        """
        order = self._orders.get(key)
        if order is None:
            raise KeyError(f"QueueTracker.position: unknown order {key!r}")
        if order.status != "resting":
            return None
        lv = self._levels[(order.side, order.price)]
        own_ahead = 0
        for o in lv.orders:
            if o is order:
                break
            own_ahead += o.remaining
        return order.ahead + own_ahead

    def filled(self, key: Hashable) -> int:
        """The quantity of ``key`` filled so far (partial fills included)."""
        order = self._orders.get(key)
        if order is None:
            raise KeyError(f"QueueTracker.filled: unknown order {key!r}")
        return order.filled

    def order(self, key: Hashable) -> QueueOrder:
        """A snapshot of ``key``: remaining, filled, ahead, status."""
        o = self._orders.get(key)
        if o is None:
            raise KeyError(f"QueueTracker.order: unknown order {key!r}")
        ahead = self.position(key)
        return QueueOrder(o.key, o.side, o.price, o.qty, o.remaining, o.filled,
                          0 if ahead is None else ahead, o.status, o.inconsistent)

    def resting(self) -> list[Hashable]:
        """The keys of the orders still resting, by side, price and queue order."""
        return [o.key for _, lv in sorted(self._levels.items()) for o in lv.orders]

    # -- the feed ----------------------------------------------------------------------------

    def on_trade(self, price: int, qty: int, aggressor_side: int = 0) -> list[tuple[Hashable, int]]:
        """A trade of ``qty`` at ``price``; returns the own fills it caused, ``[(key, qty)]``.

        ``aggressor_side`` is the side that took liquidity (BID: a buy, which trades
        against asks), or 0 when unknown: the resting side is then the side holding
        own orders at ``price``. The volume consumes the level from the front: the
        quantity ahead of each own order first, then the order itself (fills are whole
        units: ``floor(volume - ahead)``).
        """
        if not is_int(price):
            raise ValueError(f"QueueTracker.on_trade: price must be an int, got {price!r}")
        qty = _check_qty(qty, "on_trade", "qty")
        price = int(price)
        fills: list[tuple[Hashable, int]] = []
        if aggressor_side == BID:
            sides: tuple[int, ...] = (ASK,)
        elif aggressor_side == ASK:
            sides = (BID,)
        elif aggressor_side == 0:
            sides = tuple(s for s in (BID, ASK) if (s, price) in self._levels)
            if len(sides) > 1:
                raise ValueError(f"QueueTracker.on_trade: own bids and asks both rest at {price}; "
                                 f"give aggressor_side")
        else:
            raise ValueError(f"QueueTracker.on_trade: aggressor_side must be 0, BID or ASK, got "
                             f"{aggressor_side!r}")
        for side in sides:
            lv = self._levels.get((side, price))
            if lv is not None:
                self._trade_at(lv, qty, fills)
        if self.trade_through and qty > 0:
            self._trade_through(price, fills)
        return fills

    def _trade_at(self, lv: _Level, qty: int, fills: list[tuple[Hashable, int]]) -> None:
        lv.pending += qty
        reaching = qty                   # volume that gets past the own orders before this one
        for order in list(lv.orders):
            ahead = order.ahead
            if reaching <= ahead:        # the volume ends among the others ahead of it
                order.ahead = ahead - reaching
                continue
            fill = min(order.remaining, math.floor(reaching - ahead + _EPS))
            order.ahead = 0
            if fill > 0:
                self._fill(order, lv, fill, fills)
            reaching -= fill

    def _trade_through(self, price: int, fills: list[tuple[Hashable, int]]) -> None:
        through = [lv for (side, p), lv in self._levels.items()
                   if (side == BID and p > price) or (side == ASK and p < price)]
        for lv in through:
            for order in list(lv.orders):
                self._fill(order, lv, order.remaining, fills)

    def _fill(self, order: _Order, lv: _Level, qty: int, fills: list[tuple[Hashable, int]]) -> None:
        order.remaining -= qty
        order.filled += qty
        fills.append((order.key, qty))
        if order.remaining == 0:
            self._finish(order, lv, "filled")

    def on_level(self, side: int, price: int, qty: int) -> None:
        """The level ``(side, price)`` now holds ``qty`` in total (0: the level is gone).

        A decrease is explained first by your own cancels and fills and by the trades
        given since the last update of this level; the rest is a cancel by others,
        split by the model. Increases are orders joining behind everyone.
        """
        lv = self._levels.get((side, price))
        if lv is None:
            return
        qty = _check_qty(qty, "on_level", "qty")
        decrease = lv.qty - qty
        explained = min(max(decrease, 0), lv.pending)
        if lv.pending > explained:
            self.unmatched_trade_qty += lv.pending - explained
        lv.pending = 0
        lv.qty = qty
        own = self._own_total(lv) if self.own_in_level else 0
        others = qty - own
        if others < 0:
            for order in lv.orders:
                order.inconsistent += 1
            others = 0
        cancel = max(decrease - explained, 0)
        before = others + cancel
        for order in lv.orders:
            ahead = order.ahead
            if cancel:
                ahead = self._split(ahead, max(before - ahead, 0), cancel)
            order.ahead = min(max(ahead, 0), others)     # float rounding never goes below 0

    # -- fastbook event streams -----------------------------------------------------------------

    def apply(self, events: np.ndarray, /, *, instrument: int | None = None
              ) -> list[tuple[int, Hashable, int]]:
        """Run the tracker over an L2 event array; returns the fills ``[(row, key, qty)]``.

        See :func:`track_events`.
        """
        return track_events(self, events, instrument=instrument)


_HIDDEN_OR_CROSS = int(Flags.HIDDEN | Flags.CROSS)


def track_events(tracker: QueueTracker, events: np.ndarray, /, *,
                 instrument: int | None = None) -> list[tuple[int, Hashable, int]]:
    """Feed one instrument's events of a fastbook event array to ``tracker``, in order.

    ``SET_LEVEL`` rows are level updates; ``TRADE`` rows, and ``EXECUTE`` rows that
    carry a side and a price (L2 streams; an L3 ``EXECUTE`` naming only an order id
    needs the L3 book, see :func:`compare_with_l3`), are trades. Hidden and cross
    trades (``Flags.HIDDEN``, ``Flags.CROSS``) never consumed the visible queue and are
    skipped. The aggressor is taken from ``Flags.AGGRESSOR_BUY``/``AGGRESSOR_SELL``;
    an ``EXECUTE``'s side is the resting order's. ``CLEAR`` empties every level (a
    size of 0); after ``SNAPSHOT_BEGIN``, the snapshot's ``SET_LEVEL`` rows give the
    new sizes and a level the snapshot leaves out is 0 at ``SNAPSHOT_END``.
    ``instrument`` selects rows (all rows when None).

    Returns the own fills as ``(row index in events, key, qty)``.
    """
    rows = np.flatnonzero(events["instrument"] == instrument) if instrument is not None \
        else np.arange(len(events))
    actions, sides = events["action"], events["side"]
    prices, qtys, flags = events["price"], events["qty"], events["flags"]
    fills: list[tuple[int, Hashable, int]] = []
    unseen: set[tuple[int, int]] | None = None     # own levels a snapshot has not shown yet
    for i in rows.tolist():
        action = int(actions[i])
        if action == Action.SET_LEVEL:
            level = (int(sides[i]), int(prices[i]))
            if unseen is not None:
                unseen.discard(level)
            tracker.on_level(*level, int(qtys[i]))
        elif action == Action.TRADE or (action == Action.EXECUTE and sides[i] and prices[i]):
            f = int(flags[i])
            if f & _HIDDEN_OR_CROSS:
                continue
            if action == Action.EXECUTE:
                aggressor = ASK if int(sides[i]) == BID else BID
            else:
                aggressor = (BID if f & Flags.AGGRESSOR_BUY
                             else ASK if f & Flags.AGGRESSOR_SELL else 0)
            fills += [(i, k, q) for k, q in tracker.on_trade(int(prices[i]), int(qtys[i]),
                                                             aggressor)]
        elif action == Action.CLEAR:
            for side, price in list(tracker._levels):
                tracker.on_level(side, price, 0)
        elif action == Action.SNAPSHOT_BEGIN:
            unseen = set(tracker._levels)
        elif action == Action.SNAPSHOT_END and unseen is not None:
            for side, price in unseen:
                tracker.on_level(side, price, 0)
            unseen = None
    return fills


# -- validation against exact L3 positions -----------------------------------------------

@dataclass
class _Virtual:
    """A real order of the day followed as if it were ours."""

    instrument: int
    side: int
    price: int
    placed: int                     # event row of its ADD
    index: int                      # its number among the virtual orders
    clean: bool = True              # no cancel by others at its level since it (or an earlier
                                    # virtual order still at the level) was placed
    first_exec: int = -1            # event row of its first real execution
    end: int = -1                   # event row where it left the book (-1: still there)


def compare_with_l3(events: np.ndarray, /, *, every: int = 40,
                    models: Iterable[tuple[str, dict[str, Any]]] = (
                        ("pessimistic", {}), ("proportional", {}), ("power", {"p": 2.0}),
                        ("log", {})),
                    price_decimals: int = 4) -> dict[str, Any]:
    """Replay an L3 stream and compare each model's estimate with the exact FIFO position.

    Every ``every``-th ADD of the stream becomes a virtual own order. Each model sees
    only what an L2 user would: the level size at the order's price after each event
    (read from the L3 book), the executions at that price (an ``EXECUTE``'s side and
    price are those of the order it executes) and the order's own partial cancels.
    After every event touching the level of a live virtual order, the estimate is
    compared with ``OrderBook.queue_position(order_id)[1]``, until the order leaves.

    Returns a dict: ``"models"`` (the names), ``"orders"`` (virtual orders),
    ``"level"``, ``"exact"``, ``"clean"``, ``"order"`` (one row per observation, in
    stream order: the level size, the exact quantity ahead, whether no cancel by
    others had touched the level since the order was placed, the virtual order's
    number), ``"estimate"`` (observations x models; 0 once a model
    considers the order filled) and ``"fills"`` (per model: arrays ``real`` and
    ``model``, the first-execution row of each virtual order, -1 for none, and
    ``ts`` the events' exchange times to convert rows into time).
    """
    from fastbook.l3 import OrderBook

    if not is_int(every, 1):
        raise ValueError(f"compare_with_l3: every must be an int >= 1, got {every!r}")
    specs = list(models)
    names = [name if name != "power" else f"power(p={kw.get('p', 2.0):g})" for name, kw in specs]
    books: dict[int, Any] = {}
    trackers: dict[int, list[QueueTracker]] = {}
    virtual: dict[int, _Virtual] = {}
    at_level: dict[tuple[int, int, int], list[int]] = {}
    model_fill: list[dict[Hashable, int]] = [{} for _ in specs]
    obs_level: list[int] = []
    obs_exact: list[int] = []
    obs_clean: list[bool] = []
    obs_est: list[list[float]] = []
    obs_order: list[int] = []
    adds = 0

    def tracker_set(inst: int) -> list[QueueTracker]:
        ts = trackers.get(inst)
        if ts is None:
            ts = trackers[inst] = [QueueTracker(name, **kw) for name, kw in specs]
        return ts

    def leave(oid: int, row: int) -> None:
        v = virtual[oid]
        v.end = row
        at_level[(v.instrument, v.side, v.price)].remove(oid)

    act_col, inst_col, side_col = events["action"], events["instrument"], events["side"]
    price_col, qty_col, oid_col = events["price"], events["qty"], events["order_id"]
    new_col = events["new_order_id"]
    for row in range(len(events)):
        action = int(act_col[row])
        if action not in (Action.ADD, Action.DELETE, Action.EXECUTE, Action.REDUCE,
                          Action.REPLACE):
            continue
        inst = int(inst_col[row])
        ob = books.get(inst)
        if ob is None:
            ob = books[inst] = OrderBook(price_decimals=price_decimals)
        oid = int(oid_col[row])
        qty = int(qty_col[row])
        touched: list[tuple[int, int]]
        if action == Action.ADD:
            side, price = int(side_col[row]), int(price_col[row])
            ob.add(oid, side, price, qty)
            touched = [(side, price)]
            adds += 1
            if adds % every == 0:
                level = ob.qty_at(side, price)
                for t in tracker_set(inst):
                    t.place(oid, side, price, qty, level - qty)
                here = at_level.setdefault((inst, side, price), [])
                # an order placed behind a virtual order the models already got wrong
                # depends on that error: it is not clean either
                virtual[oid] = _Virtual(inst, side, price, row, len(virtual),
                                        clean=all(virtual[o].clean for o in here))
                here.append(oid)
            _observe_after(row, inst, ob, touched, at_level, virtual, trackers, obs_level,
                           obs_exact, obs_clean, obs_est, obs_order, skip=oid)
            continue
        rec = ob.order(oid)
        if rec is None:
            raise ValueError(f"compare_with_l3: event row {row} ({Action(action).name}) names "
                             f"order {oid}, which is not in instrument {inst}'s book")
        side, price, _ = rec
        touched = [(side, price)]
        mine = oid in virtual and virtual[oid].end < 0
        if not mine and action != Action.EXECUTE:
            for v_oid in at_level.get((inst, side, price), ()):
                virtual[v_oid].clean = False
        if action == Action.EXECUTE:
            for m, t in enumerate(tracker_set(inst)):
                for key, _q in t.on_trade(price, qty, ASK if side == BID else BID):
                    model_fill[m].setdefault(key, row)
            if mine:
                v = virtual[oid]
                if v.first_exec < 0:
                    v.first_exec = row
            ob.execute(oid, qty)
            if mine and oid not in ob:      # fully executed: the models' view of it ends
                for t in tracker_set(inst):
                    if t.order(oid).status == "resting":
                        t.forget(oid)
                leave(oid, row)
        elif action == Action.REDUCE:
            ob.reduce(oid, qty)
            if mine:
                for t in tracker_set(inst):
                    if t.order(oid).status == "resting":
                        t.reduce(oid, min(qty, t.order(oid).remaining))
        elif action == Action.DELETE:
            ob.delete(oid)
            if mine:
                _own_gone(tracker_set(inst), oid)
                leave(oid, row)
        else:   # REPLACE: the old order leaves; the new one joins the back of its level
            new_price = int(price_col[row])
            ob.replace(oid, int(new_col[row]), qty, new_price)
            if new_price != price:
                touched.append((side, new_price))
            if mine:
                _own_gone(tracker_set(inst), oid)
                leave(oid, row)
        _observe_after(row, inst, ob, touched, at_level, virtual, trackers, obs_level, obs_exact,
                       obs_clean, obs_est, obs_order)
    keys = list(virtual)
    return {
        "models": names,
        "orders": len(keys),
        "level": np.array(obs_level, dtype=np.int64),
        "exact": np.array(obs_exact, dtype=np.int64),
        "clean": np.array(obs_clean, dtype=bool),
        "order": np.array(obs_order, dtype=np.int64),
        "estimate": np.array(obs_est, dtype=np.float64).reshape(len(obs_level), len(specs)),
        "fills": {
            "real": np.array([virtual[k].first_exec for k in keys], dtype=np.int64),
            "model": [np.array([mf.get(k, -1) for k in keys], dtype=np.int64)
                      for mf in model_fill],
            "end": np.array([virtual[k].end for k in keys], dtype=np.int64),
            "ts": events["ts_exchange"],
        },
    }


def _own_gone(trackers: list[QueueTracker], oid: int) -> None:
    for t in trackers:
        if t.order(oid).status == "resting":
            t.cancel(oid)


def _observe_after(row: int, inst: int, ob: Any, touched: list[tuple[int, int]],
                   at_level: dict[tuple[int, int, int], list[int]], virtual: dict[int, _Virtual],
                   trackers: dict[int, list[QueueTracker]], obs_level: list[int],
                   obs_exact: list[int], obs_clean: list[bool], obs_est: list[list[float]],
                   obs_order: list[int], skip: int = -1) -> None:
    """Give the touched levels' new sizes to the trackers and record one observation per
    live virtual order there (``skip``: the order placed by this very event)."""
    for side, price in touched:
        oids = at_level.get((inst, side, price))
        if not oids:
            continue
        level = ob.qty_at(side, price)
        ts = trackers[inst]
        for t in ts:
            t.on_level(side, price, level)
        for oid in oids:
            if oid == skip:
                continue
            obs_level.append(level)
            obs_exact.append(ob.queue_position(oid)[1])
            obs_clean.append(virtual[oid].clean)
            obs_order.append(virtual[oid].index)
            obs_est.append([_estimate(t, oid) for t in ts])


def _estimate(tracker: QueueTracker, oid: int) -> float:
    ahead = tracker.position(oid)
    return 0.0 if ahead is None else float(ahead)
