"""Pure-Python twin of ``fastbook._consol`` (used under ``FASTBOOK_NO_EXTENSIONS=1``).

The reference the differential tests hold the compiled view to: same plan (from
``fastbook._consolspec``), same inclusion rules, same change events, same arbitrage walk.
See ``docs/consolidated.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastbook import _consolspec as spec
from fastbook._consolspec import (
    CBBO_DTYPE,
    CROSSED,
    DEFAULT_TAKER_FEES,
    FEE_ONE,
    HAS_ASK,
    HAS_BID,
    IN,
    INT64_MAX,
    NO_DATA,
    NOT_LIVE,
    OVERFLOW,
    QTY_LIMIT,
    REASONS,
    STALE,
    Depth,
    Opportunity,
    Venue,
)

COMPILED = False
_INT64_MIN = -(2**63)
_FIRST_LEVELS = 16

__all__ = ["CBBO_DTYPE", "COMPILED", "DEFAULT_TAKER_FEES", "REASONS", "Consolidated", "Depth",
           "Opportunity", "Venue"]


class Consolidated:
    """One instrument's books on several venues as one view (BBO, depth, arbitrage).

    ``venues``: :class:`Venue` entries (or ``(name, book, instrument[, stale_ns[,
    taker_fee]])`` tuples). ``fixed_cost`` (quote currency, decimal text) is subtracted from
    every opportunity; ``min_profit_bps`` and ``max_age_ns`` filter them. Call
    :meth:`update` after venue ``i``'s book changed, :meth:`refresh` when time passes.
    """

    def __init__(self, symbol: str, venues: Sequence[Any], *, fixed_cost: Any = "0",
                 min_profit_bps: Any = 0, max_age_ns: int | None = None,
                 record_events: bool = True) -> None:
        p = spec.plan(symbol, venues, fixed_cost=fixed_cost, min_profit_bps=min_profit_bps,
                      max_age_ns=max_age_ns)
        self._plan = p
        n = len(p.venues)
        self._n = n
        self._pm = [v.price_mult for v in p.venues]
        self._qm = [v.qty_mult for v in p.venues]
        self._plim = [INT64_MAX // m for m in self._pm]
        self._qlim = [QTY_LIMIT // m for m in self._qm]
        self._fee = [v.fee for v in p.venues]
        self._stale = [v.stale_ns for v in p.venues]
        self._books = [v.book for v in p.venues]
        # per venue: best levels at the common scale, what update() found, when
        self._bid = [0] * n
        self._bq = [0] * n
        self._ask = [0] * n
        self._aq = [0] * n
        self._has = [0] * n              # HAS_BID | HAS_ASK
        self._base = [NO_DATA] * n       # reason found at the venue's last update
        self._reason = [NO_DATA] * n     # reason at the last recompute (staleness included)
        self._last = [_INT64_MIN] * n
        self._updates = [0] * n
        self._crossed = [0] * n
        self._overflow = [0] * n
        self._now = _INT64_MIN
        self._backwards = 0
        self._changes = 0
        # consolidated state: flags, bid, bid qty, bid mask, ask, ask qty, ask mask
        self._state: tuple[int, ...] = (0, 0, 0, 0, 0, 0, 0)
        self._in_mask = 0
        self._last_event: tuple[int, ...] | None = None
        self._record = bool(record_events)
        self._events: list[tuple[int, ...]] = []

    # -- properties ----------------------------------------------------------------------

    @property
    def symbol(self) -> str:
        return self._plan.symbol

    @property
    def price_decimals(self) -> int:
        return self._plan.price_decimals

    @property
    def qty_decimals(self) -> int:
        return self._plan.qty_decimals

    @property
    def profit_decimals(self) -> int:
        return self._plan.profit_decimals

    @property
    def venue_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self._plan.venues)

    @property
    def plan(self) -> spec.Plan:
        return self._plan

    def __len__(self) -> int:
        return self._n

    def metadata(self) -> dict[str, Any]:
        """Symbol, scales, venues, fees and thresholds: what to store beside the events."""
        return spec.metadata(self._plan)

    def index(self, name: str) -> int:
        """The index of venue ``name`` (what :meth:`update` takes)."""
        for i, v in enumerate(self._plan.venues):
            if v.name == name:
                return i
        raise KeyError(f"no venue named {name!r} in this view")

    # -- updates -------------------------------------------------------------------------

    def _clock(self, now_ns: int) -> int:
        now_ns = spec.as_int(now_ns, "now_ns", TypeError)
        if not 0 <= now_ns <= INT64_MAX:
            raise ValueError(f"now_ns must be a non-negative int64 nanosecond time, got {now_ns}")
        if now_ns < self._now:
            self._backwards += 1
            return self._now
        self._now = now_ns
        return now_ns

    def update(self, venue: int, now_ns: int, live: bool = True) -> bool:
        """Read venue ``venue``'s best levels after its book changed; True when the
        consolidated BBO changed (price, size or the venues holding it)."""
        venue = spec.as_int(venue, "venue", IndexError)
        if not 0 <= venue < self._n:
            raise IndexError(f"venue index {venue!r} out of range 0..{self._n - 1}")
        now = self._clock(now_ns)
        i = venue
        self._updates[i] += 1
        self._last[i] = now
        bp, bq, ap, aq = self._books[i].bbo()
        has = (HAS_BID if bp is not None else 0) | (HAS_ASK if ap is not None else 0)
        reason = IN
        if not live:
            reason = NOT_LIVE
        elif not has:
            reason = NO_DATA
        elif (bp is not None and (abs(bp) > self._plim[i] or bq > self._qlim[i])) or \
                (ap is not None and (abs(ap) > self._plim[i] or aq > self._qlim[i])):
            reason = OVERFLOW
            self._overflow[i] += 1
        elif has == HAS_BID | HAS_ASK and bp >= ap:
            reason = CROSSED
            self._crossed[i] += 1
        if reason == IN:
            self._has[i] = has
            self._bid[i] = bp * self._pm[i] if bp is not None else 0
            self._bq[i] = bq * self._qm[i] if bp is not None else 0
            self._ask[i] = ap * self._pm[i] if ap is not None else 0
            self._aq[i] = aq * self._qm[i] if ap is not None else 0
        else:
            self._has[i] = 0
        self._base[i] = reason
        return self._recompute(now, i)

    def rebind(self, venue: int, book: Any) -> None:
        """Read venue ``venue`` from ``book`` from now on (same scales as the old book).
        Its best levels are read again at its next :meth:`update`."""
        venue = spec.as_int(venue, "venue", IndexError)
        self._plan = spec.rebind(self._plan, venue, book)
        self._books[venue] = book

    def refresh(self, now_ns: int) -> bool:
        """Re-check staleness at ``now_ns`` without a venue update; True on a change."""
        return self._recompute(self._clock(now_ns), -1)

    def _recompute(self, now: int, venue: int) -> bool:
        in_mask = 0
        bid = ask = 0
        bq = aq = bmask = amask = 0
        for j in range(self._n):
            r = self._base[j]
            if r == IN and now - self._last[j] > self._stale[j]:
                r = STALE
            self._reason[j] = r
            if r != IN:
                continue
            in_mask |= 1 << j
            h = self._has[j]
            if h & HAS_BID:
                if not bmask or self._bid[j] > bid:
                    bid, bq, bmask = self._bid[j], self._bq[j], 1 << j
                elif self._bid[j] == bid:
                    bq += self._bq[j]
                    bmask |= 1 << j
            if h & HAS_ASK:
                if not amask or self._ask[j] < ask:
                    ask, aq, amask = self._ask[j], self._aq[j], 1 << j
                elif self._ask[j] == ask:
                    aq += self._aq[j]
                    amask |= 1 << j
        self._in_mask = in_mask
        flags = (HAS_BID if bmask else 0) | (HAS_ASK if amask else 0)
        state = (flags, bid, bq, bmask, ask, aq, amask)
        if state == self._state:
            return False
        self._state = state
        self._changes += 1
        ev = (now, venue, flags, bid, bq, bmask, ask, aq, amask, self._age(now, bmask),
              self._age(now, amask), in_mask)
        self._last_event = ev
        if self._record:
            self._events.append(ev)
        return True

    def _age(self, now: int, mask: int) -> int:
        """Age of the oldest quote among the venues of ``mask``; -1 for none."""
        if not mask:
            return -1
        return now - min(self._last[j] for j in range(self._n) if mask >> j & 1)

    # -- reads ---------------------------------------------------------------------------

    def bbo(self) -> tuple[Any, ...]:
        """``(bid, bid_qty, bid_venues, ask, ask_qty, ask_venues)`` at the common scale;
        ``None, None, ()`` for an empty side."""
        flags, bid, bq, bmask, ask, aq, amask = self._state
        p = self._plan
        b = (bid, bq, spec.names_of(p, bmask)) if flags & HAS_BID else (None, None, ())
        a = (ask, aq, spec.names_of(p, amask)) if flags & HAS_ASK else (None, None, ())
        return b + a

    def bbo_masks(self) -> tuple[int, int, int]:
        """(bid venue mask, ask venue mask, in-view mask): bit i is venue i."""
        return self._state[3], self._state[6], self._in_mask

    def venues_in(self) -> dict[str, str]:
        """Each venue's state at the last update/refresh: ``"in"`` or why it is out
        (``"not live"``, ``"no data"``, ``"crossed"``, ``"overflow"``, ``"stale"``)."""
        return {v.name: REASONS[self._reason[i]] for i, v in enumerate(self._plan.venues)}

    def depth(self, n: int) -> Depth:
        """The best ``n`` merged levels per side of the venues in the view, read from their
        books now, with the quantity per venue."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"depth: n must be a non-negative int, got {n!r}")
        ins = [i for i in range(self._n) if self._reason[i] == IN]
        return spec.merge_depth(self._plan, ins, n)

    def last_change(self) -> tuple[int, ...] | None:
        """The last change event (a ``CBBO_DTYPE`` row as a tuple), or None."""
        return self._last_event

    def take_events(self) -> np.ndarray:
        """The change events recorded since the last call (``CBBO_DTYPE``), and forget them."""
        out = np.array(self._events, dtype=CBBO_DTYPE)
        self._events = []
        return out

    def stats(self) -> dict[str, Any]:
        """Counts: updates, changes, clock steps backwards, and per venue updates, crossed and
        overflow counts, the current reason and the age of its last update."""
        venues = {}
        for i, v in enumerate(self._plan.venues):
            venues[v.name] = {
                "updates": self._updates[i], "crossed": self._crossed[i],
                "overflow": self._overflow[i], "state": REASONS[self._reason[i]],
                "age_ns": -1 if self._last[i] == _INT64_MIN else self._now - self._last[i],
            }
        return {"updates": sum(self._updates), "changes": self._changes,
                "clock_backwards": self._backwards, "venues": venues}

    # -- arbitrage -----------------------------------------------------------------------

    def arbitrage(self, now_ns: int) -> tuple[Opportunity, ...]:
        """Cross-venue opportunities after both taker fees and the fixed cost, best first
        (empty when the consolidated book does not cross). Each pair is computed on its own:
        pairs sharing a venue share its liquidity, so their sizes do not add up."""
        flags, bid, _, _, ask, _, _ = self._state
        if flags != HAS_BID | HAS_ASK or bid <= ask:
            return ()
        now = self._clock(now_ns)
        found = []
        max_age = self._plan.max_age_ns
        for a in range(self._n):
            if self._reason[a] != IN or not self._has[a] & HAS_BID:
                continue
            for b in range(self._n):
                if b == a or self._reason[b] != IN or not self._has[b] & HAS_ASK:
                    continue
                if self._bid[a] * (FEE_ONE - self._fee[a]) <= \
                        self._ask[b] * (FEE_ONE + self._fee[b]):
                    continue
                sa, ba = now - self._last[a], now - self._last[b]
                if max_age >= 0 and max(sa, ba) > max_age:
                    continue
                chunks, levels = self._walk(a, b)
                if chunks:
                    opp = spec.opportunity(self._plan, a, b, chunks, levels, sa, ba)
                    if opp is not None:
                        found.append(opp)
        return spec.rank(found)

    def _walk(self, a: int, b: int) -> tuple[list[tuple[int, int, int]], tuple[int, int]]:
        k = _FIRST_LEVELS
        while True:
            bids = self._books[a].top(k)
            asks = self._books[b].top(k)
            nb = int(np.count_nonzero(bids[1]))
            na = int(np.count_nonzero(asks[3]))
            chunks, i, j, out = self._greedy(a, b, bids[0][:nb].tolist(),
                                             bids[1][:nb].tolist(), asks[2][:na].tolist(),
                                             asks[3][:na].tolist())
            if (out == 1 and nb == k) or (out == 2 and na == k):
                k *= 4           # a side ran out of fetched levels: it may have more
                continue
            return chunks, (i, j)

    def _greedy(self, a: int, b: int, bp: list[int], bq: list[int], ap: list[int],
                aq: list[int]) -> tuple[list[tuple[int, int, int]], int, int, int]:
        """Match bids of ``a`` with asks of ``b`` while a unit is profitable after fees.

        Returns (chunks, bid levels touched, ask levels touched, 1 when the bids ran out,
        2 when the asks did, else 0). A level that does not fit the common scale ends the
        walk there, as the end of that side would.
        """
        ma, mb, qa, qb = self._pm[a], self._pm[b], self._qm[a], self._qm[b]
        ka, kb = FEE_ONE - self._fee[a], FEE_ONE + self._fee[b]
        chunks: list[tuple[int, int, int]] = []
        i = j = 0
        rem_b = rem_a = 0
        used_i = used_j = 0
        while True:
            if rem_b == 0:
                if i >= len(bp) or abs(bp[i]) > self._plim[a] or bq[i] > self._qlim[a]:
                    return chunks, used_i, used_j, 1 if i >= len(bp) else 0
                pb, rem_b = bp[i] * ma, bq[i] * qa
                i += 1
            if rem_a == 0:
                if j >= len(ap) or abs(ap[j]) > self._plim[b] or aq[j] > self._qlim[b]:
                    return chunks, used_i, used_j, 2 if j >= len(ap) else 0
                pa, rem_a = ap[j] * mb, aq[j] * qb
                j += 1
            if pb * ka <= pa * kb:
                return chunks, used_i, used_j, 0
            q = min(rem_a, rem_b)
            chunks.append((pb, pa, q))
            used_i, used_j = i, j
            rem_a -= q
            rem_b -= q
