"""Differential test: the compiled L3 OrderBook against its pure-Python twin.

A hypothesis state machine drives both with the same random adds, executions,
partial cancels, deletes, replaces and clears, valid and invalid alike (small
id and price spaces make duplicates, unknown ids and over-executions common),
and compares every read after every step.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from fastbook import _pyl3
from tests.helpers.events import assert_same_reads
from tests.helpers.impls import require

_l3 = require("fastbook._l3")

BID, ASK = 1, 2
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

order_ids = st.one_of(st.integers(0, 30), st.sampled_from([UINT64_MAX, 2**63, 2**32 + 1]))
sides = st.one_of(st.sampled_from([BID, ASK]), st.sampled_from([0, 3, -1]))
prices = st.one_of(st.integers(95, 106),
                   st.sampled_from([INT64_MIN, INT64_MIN + 1, INT64_MAX, -1, 0]))
quantities = st.one_of(st.integers(1, 30), st.sampled_from([0, -1, INT64_MAX, INT64_MAX - 3]))

SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def outcome(book, method, *args):
    """(result, None) or (None, (exception type, message)) of one call."""
    try:
        return getattr(book, method)(*args), None
    except Exception as exc:
        return None, (type(exc), str(exc))


class L3Machine(RuleBasedStateMachine):
    on_error = "raise"

    def __init__(self) -> None:
        super().__init__()
        kwargs = {"price_decimals": 2, "capacity": 0, "order_capacity": 16,
                  "on_error": self.on_error}
        self.compiled = _l3.OrderBook(**kwargs)
        self.twin = _pyl3.OrderBook(**kwargs)

    def both(self, method, *args):
        got = outcome(self.compiled, method, *args)
        want = outcome(self.twin, method, *args)
        assert got == want, (method, args, got, want)
        return want

    @rule(order_id=order_ids, side=sides, price=prices, qty=quantities)
    def add(self, order_id, side, price, qty):
        self.both("add", order_id, side, price, qty)

    @rule(order_id=order_ids, side=st.sampled_from([BID, ASK]), price=st.integers(95, 106),
          qty=st.integers(1, 30))
    def add_valid(self, order_id, side, price, qty):
        self.both("add", order_id, side, price, qty)

    @rule(order_id=order_ids, qty=quantities)
    def execute(self, order_id, qty):
        self.both("execute", order_id, qty)

    @rule(order_id=order_ids, qty=quantities)
    def reduce(self, order_id, qty):
        self.both("reduce", order_id, qty)

    @rule(order_id=order_ids, data=st.data())
    def take_exact(self, order_id, data):
        # execute or reduce exactly what remains, or one less, of a live order
        rec = self.twin.order(order_id)
        if rec is not None:
            qty = rec[2] - data.draw(st.sampled_from([0, 1]))
            self.both(data.draw(st.sampled_from(["execute", "reduce"])), order_id, qty)

    @rule(order_id=order_ids)
    def delete(self, order_id):
        self.both("delete", order_id)

    @rule(order_id=order_ids, new_order_id=order_ids, qty=quantities, price=prices)
    def replace(self, order_id, new_order_id, qty, price):
        self.both("replace", order_id, new_order_id, qty, price)

    @rule(order_id=order_ids, qty=st.integers(1, 30), price=st.integers(95, 106))
    def replace_same_id(self, order_id, qty, price):
        self.both("replace", order_id, order_id, qty, price)

    @rule(data=st.data())
    def clear(self, data):
        if data.draw(st.integers(0, 9)) == 0:     # rarely, so books grow
            self.both("clear")

    @invariant()
    def same_reads(self):
        assert_same_reads(self.compiled, self.twin)


class L3SkipMachine(L3Machine):
    on_error = "skip"


TestL3Raise = L3Machine.TestCase
TestL3Raise.settings = SETTINGS
TestL3Skip = L3SkipMachine.TestCase
TestL3Skip.settings = SETTINGS
