"""The compiled OSE kernel against its pure-Python twin, output for output.

Random streams (every type, bad lengths, unknown types, missing prices, books
mapped, dropped or unknown, both framings) are decoded by both in the same
calls (random capacities, split points, skip or raise mode), and every output
is compared: return values, events, positions, counts, state, directory,
equilibrium table and invalid counts. A synthetic OSE day is compared whole.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbook import synth
from fastbook.codecs import _pyose
from fastbook.events import EVENT_DTYPE
from tests.helpers.impls import require

_ose = require("fastbook.codecs._ose")

from tests.helpers.ose import (  # noqa: E402, I001
    NO_PRICE, A, C, D, E, F, L, M, O, P, R, S, T, U, Z, frame, mold,
)

BOOKS = [11, 22, 33, 2**32 - 1]      # order book ids drawn from


@st.composite
def messages(draw) -> bytes:  # type: ignore[no-untyped-def]
    ns = draw(st.integers(0, 2**32 - 1))
    obid = draw(st.sampled_from(BOOKS))
    oid = draw(st.sampled_from([1, 2, 2**64 - 1]))
    side = draw(st.sampled_from([b"B", b"S", b"?"]))
    qty = draw(st.sampled_from([1, 5, 2**63, 2**64 - 1]))
    price = draw(st.sampled_from([0, 1, -7, NO_PRICE, 2**31 - 1]))
    pos = draw(st.integers(0, 2**32 - 1))
    flag = draw(st.sampled_from([b"Y", b"N", b" "]))
    kind = draw(st.sampled_from("TSRMLOAFECUDPZ?!"))
    if kind == "T":
        return T(draw(st.integers(0, 2**32 - 1)))
    if kind == "S":
        return S(ns, flag)
    if kind == "R":
        return R(ns, obid, "SYM", decimals=draw(st.integers(0, 20)))
    if kind == "M":
        return M(ns, obid, obid, side, 2)
    if kind == "L":
        return L(ns, obid, qty, price, price)
    if kind == "O":
        return O(ns, obid, draw(st.sampled_from(["ZARABA", "M_PRE_OPEN", "CLOSE", "\xe9X"])))
    if kind == "A":
        return A(ns, oid, obid, side, pos, qty, price)
    if kind == "F":
        return F(ns, oid, obid, side, pos, qty, price)
    if kind == "E":
        return E(ns, oid, obid, side, qty)
    if kind == "C":
        return C(ns, oid, obid, side, qty, price, cross=flag, printable=flag)
    if kind == "U":
        return U(ns, oid, obid, side, pos, qty, price)
    if kind == "D":
        return D(ns, oid, obid, side)
    if kind == "P":
        return P(ns, obid, side, qty, price, cross=flag, printable=flag)
    if kind == "Z":
        return Z(ns, obid, qty, qty, price, price, price, qty, qty)
    if kind == "?":
        return b"Q" + draw(st.binary(min_size=0, max_size=40))      # an unknown type
    good = draw(st.sampled_from([T(1), D(1, 1, 11, b"B"), A(1, 1, 11, b"B", 1, 1, 1)]))
    return good + b"\x00" if draw(st.booleans()) else good[:-1]     # a wrong length


@st.composite
def streams(draw, framing: int) -> bytes:  # type: ignore[no-untyped-def]
    msgs = draw(st.lists(messages(), max_size=30))
    if draw(st.booleans()):
        msgs.insert(0, T(1_700_000_000))
    if framing == 0:
        return b"".join(frame(m) for m in msgs)
    out, seq, k = [], draw(st.sampled_from([1, 2**64 - 3])), 0
    while k < len(msgs):
        n = draw(st.integers(0, 4))
        if n == 0:
            out.append(mold(seq, count=draw(st.sampled_from([0, 0xFFFF]))))
        else:
            out.append(mold(seq, *msgs[k:k + n]))
            k += n
        seq = (seq + n + draw(st.sampled_from([0, 0, 0, 1]))) % 2**64
    return b"".join(out)


@st.composite
def book_maps(draw):  # type: ignore[no-untyped-def]
    if draw(st.booleans()):
        return None
    m = _pyose.book_map_new(draw(st.integers(1, 8)))
    for obid in BOOKS:
        inst = draw(st.sampled_from([None, -1, 0, 1, 2, 9]))
        if inst is not None:
            m = _pyose.book_map_set(m, obid, inst)
    return m


def drive(buf: bytes, framing: int, splits: list[int], capacity: int, dir_capacity: int | None,
          book_map, skip: bool, keep_positions: bool, eq_rows: int | None):  # type: ignore[no-untyped-def]
    """Both kernels over growing prefixes of ``buf`` with the same arguments; compare all."""
    outs = {}
    for name, kernel in (("twin", _pyose), ("compiled", _ose)):
        state = _pyose.new_state()
        counts = np.zeros(256, np.uint64)
        invalid = np.zeros(3, np.uint64) if skip else None
        equilibrium = np.full((eq_rows, 8), -5, np.int64) if eq_rows is not None else None
        trace = []
        pos = seq = 0
        for cut in [*sorted(splits), len(buf)]:
            final = cut == len(buf)
            view = buf[:cut]
            for _ in range(10_000):
                ev = np.zeros(capacity, EVENT_DTYPE)
                positions = np.full(capacity, 7, np.uint32) if keep_positions else None
                directory = np.full(dir_capacity, -9, np.int64) if dir_capacity is not None \
                    else None
                out = kernel.decode_chunk(view, pos, framing, ev, counts, state=state,
                                          book_map=book_map, directory=directory,
                                          positions=positions, equilibrium=equilibrium,
                                          invalid=invalid, seq=seq, final=final)
                trace.append((out, ev.tobytes(), None if positions is None
                              else positions.tobytes(), None if directory is None
                              else directory.tolist(), state.tolist()))
                pos, seq = out[0], seq + out[2]
                if out[4] not in (1, 2) or (out[4] == 1 and capacity == 0):
                    break
                if out[4] == 2 and dir_capacity == 0:
                    break
            if trace[-1][0][4] < 0:
                break
        outs[name] = (trace, counts.tolist(), None if invalid is None else invalid.tolist(),
                      None if equilibrium is None else equilibrium.tolist())
    assert outs["twin"] == outs["compiled"]
    return outs["twin"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), framing=st.sampled_from([0, 1]))
def test_kernel_matches_twin(data, framing):
    buf = data.draw(streams(framing))
    splits = data.draw(st.lists(st.integers(0, len(buf)), max_size=3))
    drive(buf, framing, splits, capacity=data.draw(st.sampled_from([0, 1, 3, 64])),
          dir_capacity=data.draw(st.sampled_from([None, 0, 1, 8])),
          book_map=data.draw(book_maps()), skip=data.draw(st.booleans()),
          keep_positions=data.draw(st.booleans()),
          eq_rows=data.draw(st.sampled_from([None, 0, 3, 16])))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), framing=st.sampled_from([0, 1]))
def test_kernel_matches_twin_on_random_bytes(data, framing):
    buf = data.draw(st.binary(max_size=300))
    drive(buf, framing, [], capacity=8, dir_capacity=4, book_map=None,
          skip=data.draw(st.booleans()), keep_positions=True, eq_rows=4)


@pytest.mark.parametrize("form", ["binaryfile", "moldudp64"])
def test_a_synthetic_day_decodes_identically(form):
    buf = synth.ose_day(6000, form=form, seed=11)
    trace, counts, _, _ = drive(
        buf, 0 if form == "binaryfile" else 1, [len(buf) // 3, len(buf) // 2], capacity=1000,
        dir_capacity=16, book_map=None, skip=False, keep_positions=True, eq_rows=None)
    assert trace[-1][0][4] == 0
    assert sum(out[0][2] for out in trace) == sum(counts)
    assert counts[ord("A")] > 1000 and counts[ord("Z")] > 50 and counts[ord("P")] > 0
