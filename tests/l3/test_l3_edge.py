"""The per-call methods' integer arguments: compiled against the pure-Python twin.

OrderBook.add / execute / reduce / delete / replace / modify take ints, other integer
types (``__index__``, numpy integers) and refuse floats, strings and out-of-range
values. For every argument, in every position, the compiled book must give exactly
the twin's result, or the same exception type and message (this found add passing
its unconverted quantity to the error path).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbook import _pyl3
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import requires_compiled

pytestmark = requires_compiled(_l3, reason="compiled L3 book disabled or not built")

BID, ASK = 1, 2


class Index:
    """Not an int, but an integer (``__index__``)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Index({self.value})"


# 2**30 bounds CPython's one-digit ints, which the compiled edge reads in place
EDGES = [0, 1, 2, 3, 2**30 - 1, 2**30, 2**30 + 1, 2**31, 2**60, 2**62, 2**63 - 1, 2**63,
         2**64 - 1, 2**64, 2**70, -1, -2, -(2**30) + 1, -(2**30), -(2**30) - 1, -(2**62),
         -(2**63), -(2**63) - 1, -(2**64)]
ints = st.one_of(st.sampled_from(EDGES), st.integers(-(2**66), 2**66), st.integers(0, 50))
arguments = st.one_of(
    ints, ints, ints,
    ints.map(Index),
    st.sampled_from([True, False, 1.0, 2.5, float("nan"), "1", None, b"\x01"]),
    st.sampled_from([np.int64(7), np.uint64(2**64 - 1), np.int32(-3), np.uint8(2),
                     np.float64(1.0), np.bool_(True)]),
)


def call(book, method, args, side):
    kwargs = {} if side is None else {"side": side}
    try:
        return "ok", getattr(book, method)(*args, **kwargs), book.order_count
    except Exception as exc:  # the type and message are what is compared
        return type(exc).__name__, str(exc)


def fresh(mod):
    book = mod.OrderBook(price_decimals=2, on_error="raise")
    book.add(5, BID, 100, 10)
    book.add(6, ASK, 101, 10)
    return book


SIGNATURES = {
    "add": 4,           # order_id, side, price, qty
    "execute": 2,       # order_id, qty
    "reduce": 2,
    "delete": 1,        # order_id
    "replace": 4,       # order_id, new_order_id, qty, price
    "modify": 3,        # order_id, qty, price
}


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(sorted(SIGNATURES)), data=st.data(),
       side=st.one_of(st.none(), arguments))
def test_arguments_match_the_twin(method, data, side):
    args = data.draw(st.lists(st.one_of(arguments, st.sampled_from([5, 6, 1, 2, 100])),
                              min_size=SIGNATURES[method], max_size=SIGNATURES[method]))
    if method == "add":
        side = None
    assert call(fresh(_l3), method, args, side) == call(fresh(_pyl3), method, args, side)


@pytest.mark.parametrize("value", EDGES)
def test_every_edge_value_in_every_position(value):
    for method, arity in SIGNATURES.items():
        for k in range(arity):
            args = [5, BID, 100, 1][:arity] if method == "add" else [5, 1, 100, 1][:arity]
            args[k] = value
            assert call(fresh(_l3), method, args, None) == call(fresh(_pyl3), method, args,
                                                                 None), (method, k)
        if method != "add":
            args = [5, 1, 100, 1][:arity]
            assert call(fresh(_l3), method, args, value) == call(fresh(_pyl3), method, args,
                                                                 value), (method, "side")
