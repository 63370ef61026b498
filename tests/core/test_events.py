"""The normalized event schema: layout, enums, helpers and the (lazy) Arrow schema."""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest

import fastbook
from fastbook.events import (
    EVENT_DTYPE,
    EVENT_FIELDS,
    Action,
    Flags,
    arrow_schema,
    check_events,
    empty_events,
    events_from_records,
)

EXPECTED_LAYOUT = [
    ("ts_exchange", np.int64, 0),
    ("ts_receive", np.int64, 8),
    ("instrument", np.uint32, 16),
    ("action", np.uint8, 20),
    ("side", np.int8, 21),
    ("flags", np.uint16, 22),
    ("price", np.int64, 24),
    ("qty", np.int64, 32),
    ("order_id", np.uint64, 40),
    ("new_order_id", np.uint64, 48),
    ("sequence", np.uint64, 56),
]


def test_layout_is_stable_and_packed():
    assert EVENT_DTYPE.itemsize == 64
    assert EVENT_DTYPE.alignment == 8
    assert EVENT_DTYPE.isalignedstruct
    assert EVENT_DTYPE.isnative
    assert list(EVENT_DTYPE.names) == [name for name, _, _ in EXPECTED_LAYOUT]
    for name, typ, offset in EXPECTED_LAYOUT:
        ftype, foffset = EVENT_DTYPE.fields[name][:2]
        assert ftype == np.dtype(typ), name
        assert ftype.isnative, name
        assert foffset == offset, name
    assert [(n, o) for n, _, o in EVENT_FIELDS] == [(n, o) for n, _, o in EXPECTED_LAYOUT]
    # every field is naturally aligned, so C can read it in place
    for name, _, offset in EXPECTED_LAYOUT:
        assert offset % EVENT_DTYPE.fields[name][0].itemsize == 0


def test_action_values():
    assert [(a.name, int(a)) for a in Action] == [
        ("ADD", 1), ("REDUCE", 2), ("EXECUTE", 3), ("DELETE", 4), ("REPLACE", 5),
        ("SET_LEVEL", 6), ("CLEAR", 7), ("TRADE", 8), ("SNAPSHOT_BEGIN", 9),
        ("SNAPSHOT_END", 10), ("STATUS", 11),
    ]
    with pytest.raises(ValueError, match=r"^0 is not a valid Action$"):
        Action(0)
    assert max(Action) <= np.iinfo(np.uint8).max


def test_flags_are_distinct_bits_that_fit_uint16():
    bits = [f for f in Flags if f != Flags.NONE]
    values = [int(f) for f in bits]
    assert all(v & (v - 1) == 0 for v in values)
    assert len(set(values)) == len(values)
    assert max(values) <= np.iinfo(np.uint16).max
    assert {"LAST_IN_PACKET", "SNAPSHOT", "HIDDEN", "CROSS", "HALTED"} <= {f.name for f in bits}
    combo = Flags.HIDDEN | Flags.LAST_IN_PACKET
    assert int(combo) == 0x5


def test_sides_match_the_core():
    assert fastbook.BID == 1 and fastbook.ASK == 2


def test_empty_events_are_zero_and_invalid():
    ev = empty_events(3)
    assert ev.dtype == EVENT_DTYPE and ev.shape == (3,)
    assert not ev.view(np.uint8).any()
    assert (ev["action"] == 0).all()
    assert empty_events(0).shape == (0,)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError,
                           match=rf"^n must be a non-negative int, got {re.escape(repr(bad))}$"):
            empty_events(bad)


def test_events_from_records_values_and_defaults():
    ev = events_from_records(
        [
            {"action": Action.ADD, "side": 1, "price": -5, "qty": 7, "order_id": 2**64 - 1},
            {"action": "replace", "order_id": 9, "new_order_id": 10, "price": 3, "qty": 1},
            {"action": 4, "order_id": 9, "instrument": 2},
        ],
        instrument=5,
        flags=int(Flags.LAST_IN_PACKET),
    )
    assert ev.dtype == EVENT_DTYPE
    assert ev["action"].tolist() == [Action.ADD, Action.REPLACE, Action.DELETE]
    assert ev["instrument"].tolist() == [5, 5, 2]
    assert ev["flags"].tolist() == [1, 1, 1]
    assert ev["order_id"].tolist() == [2**64 - 1, 9, 9]
    assert ev["new_order_id"].tolist() == [0, 10, 0]
    assert ev["price"].tolist() == [-5, 3, 0]
    assert ev["qty"].tolist() == [7, 1, 0]
    assert ev["side"].tolist() == [1, 0, 0]
    assert ev["ts_exchange"].tolist() == [0, 0, 0]
    assert events_from_records([]).shape == (0,)


@pytest.mark.parametrize(
    ("records", "defaults", "match"),
    [
        ([{"side": 1}], {}, "'action' is required"),
        ([{"action": 0}], {}, "not a fastbook.events.Action"),
        ([{"action": 12}], {}, "not a fastbook.events.Action"),
        ([{"action": "fill"}], {}, "unknown action 'fill'"),
        ([{"action": 1, "colour": 1}], {}, "unknown event field 'colour'"),
        ([{"action": 1}], {"colour": 1}, "unknown event field 'colour'"),
        ([{"action": 1, "side": 200}], {}, "side=200 does not fit int8"),
        ([{"action": 1, "order_id": -1}], {}, "order_id=-1 does not fit uint64"),
        ([{"action": 1, "order_id": 2**64}], {}, "does not fit uint64"),
        ([{"action": 1, "price": 2**63}], {}, "does not fit int64"),
        ([{"action": 1, "price": 1.5}], {}, "price must be an integer"),
        ([{"action": 1}, {"action": 1, "qty": "5"}], {}, "record 1: qty must be an integer"),
    ],
)
def test_events_from_records_errors(records, defaults, match):
    with pytest.raises(ValueError, match=match):
        events_from_records(records, **defaults)


def test_check_events():
    ev = empty_events(4)
    assert check_events(ev) is ev
    with pytest.raises(fastbook.ArrayError, match="numpy array"):
        check_events([1, 2])
    with pytest.raises(fastbook.ArrayError, match="dtype"):
        check_events(np.zeros(4, dtype=np.int64))
    with pytest.raises(fastbook.ArrayError, match="1-dimensional"):
        check_events(np.zeros((2, 2), dtype=EVENT_DTYPE))
    with pytest.raises(fastbook.ArrayError, match="C-contiguous"):
        check_events(empty_events(6)[::2])
    padded = np.dtype({"names": list(EVENT_DTYPE.names),
                       "formats": [EVENT_DTYPE.fields[n][0] for n in EVENT_DTYPE.names],
                       "offsets": [EVENT_DTYPE.fields[n][1] for n in EVENT_DTYPE.names],
                       "itemsize": 72})
    with pytest.raises(fastbook.ArrayError, match="dtype"):
        check_events(np.zeros(2, dtype=padded))
    swapped = EVENT_DTYPE.newbyteorder()
    with pytest.raises(fastbook.ArrayError, match="dtype"):
        check_events(np.zeros(2, dtype=swapped))


def test_arrow_schema_without_pyarrow_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(ImportError, match=r"pip install 'fastbook-lob\[arrow\]'"):
        arrow_schema()


def _fake_pyarrow() -> types.ModuleType:
    """A stand-in recording what arrow_schema() builds (pyarrow is optional)."""
    pa = types.ModuleType("pyarrow")
    for name in ("int64", "uint64", "uint32", "uint16", "uint8", "int8"):
        setattr(pa, name, (lambda n: lambda: n)(name))
    pa.field = lambda name, typ, nullable=True: (name, typ, nullable)
    pa.schema = lambda fields, metadata=None: list(fields)
    return pa


def test_arrow_schema_matches_the_dtype(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", _fake_pyarrow())
    schema = arrow_schema()
    names = {np.dtype(np.int64): "int64", np.dtype(np.uint64): "uint64",
             np.dtype(np.uint32): "uint32", np.dtype(np.uint16): "uint16",
             np.dtype(np.uint8): "uint8", np.dtype(np.int8): "int8"}
    assert schema == [(name, names[EVENT_DTYPE.fields[name][0]], False)
                      for name in EVENT_DTYPE.names]


def test_arrow_schema_with_real_pyarrow():
    pa = pytest.importorskip("pyarrow")
    schema = arrow_schema()
    assert schema.names == list(EVENT_DTYPE.names)
    table = pa.Table.from_arrays(
        [pa.array(empty_events(2)[n]) for n in EVENT_DTYPE.names], schema=schema)
    assert table.num_rows == 2
