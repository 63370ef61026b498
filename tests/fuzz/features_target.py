"""Fuzz target for the sampler's feature kernels (``fastbook.features``, issue 21).

``features``: hostile event batches (every action, sides 0-3, prices and quantities at
the int64 limits, every flag combination, instruments out of range) applied to a compiled
``BookSet`` and the twin's, each with a ``Sampler`` computing every feature and keeping
the trades table, in one of the three error modes. Both must give the same outcome (the
same count, or an ``UpdateError`` with the same message), the same rows bit for bit, the
same trades and the same per-instrument feature state; a batch refused in raise mode
must leave the rows and the state as they were. Hostile feature names and parameters to
``Sampler(features=...)`` may only be refused with ``ValueError`` or ``TypeError``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from fastbook.errors import UpdateError
from tests.fuzz import mutators as mut
from tests.fuzz.harness import Context, outcome

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
FLAGS = (0, 0, 0, 0x01, 0x02, 0x04, 0x08, 0x40, 0x80, 0xC0, 0x100, 0x41, 0x81, 0x200)
FEATURES: list[Any] = ["mid", "spread", "microprice", "imbalance_1", "imbalance_3",
                       "depth_bps_300", "depth_bps_0.5", "slope_3", "walk_cost_4",
                       "walk_cost_0.00000002", "ofi_3", "trade_flow", "vpin_6_3"]
_ODD_SPECS: tuple[Any, ...] = (
    "", "ofi_0", "ofi_1001", "imbalance_-1", "slope_1", "walk_cost_", "walk_cost_1e9",
    "vpin_1_0", "vpin_0_1", "vpin_1_1_1", "depth_bps_10001", "depth_bps_0.0000001",
    "walk_cost_99999999999999999999999999", "mid,mid", None, 3, 1.5, b"mid", ["mid"],
    object(), "ofi_٣", "walk_cost_\uff11", "vpin_1e3_2", "walk_cost_nan", "walk_cost_inf",
)


def _records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        wild = rng.random() < 0.15
        rec = {
            "instrument": rng.choice((0, 0, 1, 2, 3) if wild else (0, 0, 1, 2)),
            "action": rng.randrange(0, 13) if wild else rng.choice((1, 1, 1, 2, 3, 3, 4, 5, 6,
                                                                    6, 8, 8, 9, 10, 7)),
            "side": rng.choice((0, 1, 2, 3)) if wild else rng.choice((0, 1, 2, 2, 1)),
            "price": rng.choice((INT64_MIN, INT64_MAX, -1, 0)) if wild
            else rng.randrange(95, 106),
            "qty": rng.choice((0, -1, INT64_MAX, 1 << 62)) if wild else rng.randrange(0, 9),
            "order_id": rng.randrange(0, 20),
            "new_order_id": rng.randrange(0, 20),
            "flags": rng.choice(FLAGS),
            "ts_exchange": 0,
            "sequence": rng.randrange(0, 1 << 64),
        }
        out.append(rec)
    return out


class FeaturesTarget:
    """The compiled feature kernel against the twin (see the module docstring)."""

    name = "features"

    def setup(self) -> None:
        self._mode = 0
        self._fresh(random.Random(0))

    def _fresh(self, rng: random.Random) -> None:
        from fastbook import _l3, _pyl3
        from fastbook.features import Stoikov
        from fastbook.sampling import Sampler

        on_error = ("raise", "skip", "stop")[self._mode % 3]
        self._mode += 1
        self._sets = []
        for mod in (_l3, _pyl3):
            bs = mod.BookSet(on_error=on_error)
            bs.add_instrument("A", price_decimals=4, tick_size=100, order_capacity=16,
                              capacity=0)
            bs.add_instrument("B", price_decimals=4, order_capacity=16, capacity=0)
            bs.add_instrument("C", kind="l2", price_decimals=2, qty_decimals=8, capacity=0)
            self._sets.append(bs)
        rules = rng.choice(({"every": 1}, {"every": 3}, {"interval": 7}, {"on_bbo": True},
                            {"interval": 5, "on_bbo": True, "every": 2}))
        packets = rng.random() < 0.5
        feats = [*FEATURES, Stoikov([[-0.2, 0.1], [0.3, 0.0]])]
        depth = rng.randrange(1, 4)
        self._samplers = [Sampler(depth=depth, capacity=1, packets=packets, features=feats,
                                  trades=True, **rules) for _ in range(2)]
        from fastbook.events import empty_events

        for bs, s in zip(self._sets, self._samplers, strict=True):
            bs.apply(empty_events(0), sampler=s)    # binds: the state is sized from here on
        self._clock = 0
        self._raise = on_error == "raise"

    def _state(self, s: Any) -> Any:
        cols = {k: v.copy() for k, v in s.columns().items()}
        trades = {k: v.copy() for k, v in s.trades().items()}
        return cols, trades, s._fstate.save()

    @staticmethod
    def _same(a: Any, b: Any) -> bool:
        ca, ta, fa = a
        cb, tb, fb = b
        if list(ca) != list(cb):
            return False
        for k in ca:
            if not np.array_equal(ca[k], cb[k], equal_nan=ca[k].dtype.kind == "f"):
                return False
        return all(np.array_equal(ta[k], tb[k]) for k in ta) and \
            len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))

    def _spec(self, ctx: Context, rng: random.Random) -> None:
        from fastbook.sampling import Sampler

        spec = rng.choice(_ODD_SPECS) if rng.random() < 0.7 else rng.choice(mut.ODD_TEXT)
        ctx.keep(repr(("Sampler(features=...)", spec)).encode("utf-8", "backslashreplace"))
        r = outcome(lambda: Sampler(every=1, features=[spec] if not isinstance(spec, list)
                                    else spec), ctx, spec, (ValueError, TypeError))
        ctx.stats.refused += r[0] == "error"
        ctx.stats.accepted += r[0] == "ok"

    def one(self, ctx: Context, rng: random.Random) -> None:
        from fastbook.events import empty_events

        ctx.stats.inputs += 1
        if rng.random() < 0.1:
            self._spec(ctx, rng)
            return
        recs = _records(rng, rng.randrange(1, 24))
        events = empty_events(len(recs))
        for i, rec in enumerate(recs):
            self._clock += rng.randrange(-3, 12)
            rec["ts_exchange"] = self._clock
            for k, v in rec.items():
                events[k][i] = v
        ctx.keep(events.tobytes())
        before = self._state(self._samplers[0])
        res = []
        for bs, s in zip(self._sets, self._samplers, strict=True):
            r = outcome(lambda bs=bs, s=s: bs.apply(events, sampler=s), ctx, recs,
                        (UpdateError,))
            res.append(r[1] if r[0] == "ok" else (type(r[1]).__name__, str(r[1])))
        states = [self._state(s) for s in self._samplers]
        if res[0] != res[1] or not self._same(*states):
            ctx.find("disagree", f"features: compiled {res[0]!r:.200}, twin {res[1]!r:.200}, "
                                 f"rows {len(states[0][0]['ts'])} / {len(states[1][0]['ts'])}",
                     recs)
            self._fresh(rng)
            return
        refused = not isinstance(res[0], int)
        if refused and self._raise and not self._same(before, states[0]):
            ctx.find("changed", "features: a batch refused in raise mode changed the rows or "
                                "the feature state", recs)
        ctx.stats.refused += refused
        ctx.stats.accepted += not refused
        if rng.random() < 0.01 or len(states[0][0]["ts"]) > 2000:
            self._fresh(rng)
