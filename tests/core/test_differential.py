"""Differential test: hypothesis drives the compiled Book and its twin with the same steps.

After every step every read must agree: best levels, BBO, spread, mid, depths,
top-n, full ladders, quantities at probed prices, crossed flag, missing-delete
count, the set/apply return values and the exception (type and message).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fastbook import _pycore

try:
    from fastbook import _core
except ImportError:  # pragma: no cover
    _core = None

pytestmark = pytest.mark.skipif(_core is None, reason="compiled core not built")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# A narrow price band makes hits on existing levels, deletes and crossings common;
# a few extreme values check ordering at the edges of int64.
prices = st.integers(-20, 20) | st.sampled_from([INT64_MIN, INT64_MIN + 1, INT64_MAX, 0])
qtys = st.integers(0, 5) | st.sampled_from([-1, INT64_MAX])
sides = st.sampled_from([1, 2]) | st.sampled_from([0, 3, -1])


def outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # compare failures too
        return ("error", type(exc).__name__, str(exc), getattr(exc, "index", None))


class BookComparison(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fast = _core.Book(price_decimals=2, qty_decimals=3, capacity=2)
        self.ref = _pycore.Book(price_decimals=2, qty_decimals=3, capacity=2)

    def both(self, method, *args, **kwargs):
        got = outcome(getattr(self.fast, method), *args, **kwargs)
        want = outcome(getattr(self.ref, method), *args, **kwargs)
        assert got == want, (method, args)
        return got

    @rule(side=sides, price=prices, qty=qtys)
    def set(self, side, price, qty):
        self.both("set", side, price, qty)

    @rule(side=sides, price=st.integers(-2000, 2000), qty=st.integers(0, 3000))
    def set_str(self, side, price, qty):
        # text goes through the parser at the book's scales
        self.both("set_str", side, f"{price / 100:.2f}", str(qty / 1000))

    @rule(text=st.sampled_from(["1.001", "abc", "", "-0.5", "1e2", "0.10"]))
    def set_str_odd_text(self, text):
        self.both("set_str", 1, text, text)

    @rule(rows=st.lists(st.tuples(sides, prices, qtys), max_size=40))
    def apply(self, rows):
        s = np.array([r[0] for r in rows], dtype=np.int8)
        p = np.array([r[1] for r in rows], dtype=np.int64)
        q = np.array([r[2] for r in rows], dtype=np.int64)
        self.both("apply", s, p, q)

    @rule(n=st.integers(300, 600), seed=st.integers(0, 2**32 - 1))
    def apply_long_valid_batch(self, n, seed):
        # past the no-GIL threshold
        rng = np.random.default_rng(seed)
        s = rng.integers(1, 3, n).astype(np.int8)
        p = rng.integers(-30, 30, n).astype(np.int64)
        q = rng.integers(0, 3, n).astype(np.int64)
        self.both("apply", s, p, q)

    @precondition(lambda self: len(self.ref) > 0)
    @rule(data=st.data())
    def iterate_then_mutate(self, data):
        side = data.draw(st.sampled_from([1, 2]))
        it_fast, it_ref = self.fast.levels(side), self.ref.levels(side)
        assert outcome(next, it_fast, None) == outcome(next, it_ref, None)
        price, qty = data.draw(prices), data.draw(qtys)
        self.both("set", side, price, qty)
        assert outcome(list, it_fast) == outcome(list, it_ref)

    @rule()
    def clear(self):
        self.both("clear")

    @rule(n=st.integers(0, 12))
    def top(self, n):
        assert self.fast.top(n).tolist() == self.ref.top(n).tolist()
        out_fast = np.full((4, n), 99, dtype=np.int64)
        out_ref = np.full((4, n), 99, dtype=np.int64)
        self.fast.top(n, out=out_fast)
        self.ref.top(n, out=out_ref)
        assert out_fast.tolist() == out_ref.tolist()

    @rule(side=sides, price=prices)
    def qty_at(self, side, price):
        self.both("qty_at", side, price)

    @rule()
    def copy_round_trip(self):
        fast_copy = self.fast.copy()
        assert [a.tolist() for a in fast_copy.to_arrays(1)] == \
            [a.tolist() for a in self.ref.to_arrays(1)]
        assert fast_copy.missing_deletes == self.ref.missing_deletes

    @invariant()
    def reads_agree(self):
        for name in ("best_bid", "best_ask", "bbo", "spread", "mid", "is_crossed", "__len__",
                     "__repr__"):
            self.both(name)
        for side in (1, 2):
            self.both("depth", side)
            self.both("capacity", side)
            fast = [a.tolist() for a in self.fast.to_arrays(side)]
            ref = [a.tolist() for a in self.ref.to_arrays(side)]
            assert fast == ref
        assert list(self.fast) == list(self.ref)
        assert self.fast.missing_deletes == self.ref.missing_deletes
        windows = sum(self.fast._layout(side)["window_nbytes"] for side in (1, 2))
        assert self.fast.nbytes == self.ref.nbytes + windows


BookComparison.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBookComparison = BookComparison.TestCase
