"""The Python vocabulary (``fastbook._vocab``, the codecs' wire definitions) equals the compiled.

Sides, actions, flags and status codes are written once in Python and once in C
(the ``FB_*`` enums of ``_core.pxd`` / ``_l3.pxd`` and the kernels' own enums).
These tests pin every compiled value to its Python name, by value where the
compiled module exports it and by its observable effect where it does not, so
the two can never drift apart.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import fastbook
from fastbook import _pycore, _pyl3, _vocab, events
from fastbook._vocab import ASK, BID, NO_SIDE, Action, Flags
from fastbook.codecs import (
    _itchwire,
    _l2schema,
    _osewire,
    _pychecksum,
    _pyitch50,
    _pyl2json,
    _pyose,
)
from fastbook.errors import UpdateError

_core = pytest.importorskip("fastbook._core", reason="compiled core not built")
_l3 = pytest.importorskip("fastbook._l3", reason="compiled L3 core not built")
_itch50 = pytest.importorskip("fastbook.codecs._itch50", reason="compiled ITCH kernel not built")
_ose = pytest.importorskip("fastbook.codecs._ose", reason="compiled OSE kernel not built")
_l2json = pytest.importorskip("fastbook.codecs._l2json", reason="compiled scanner not built")
_checksum = pytest.importorskip("fastbook.codecs._checksum", reason="compiled checksum not built")

L3_MODULES = pytest.mark.parametrize("l3mod", [_l3, _pyl3], ids=["compiled", "twin"])
ITCH_KERNELS = pytest.mark.parametrize("kernel", [_itch50, _pyitch50], ids=["compiled", "twin"])
OSE_KERNELS = pytest.mark.parametrize("kernel", [_ose, _pyose], ids=["compiled", "twin"])


# -- one Python home ---------------------------------------------------------------------------

def test_events_reexports_the_one_definition() -> None:
    assert events.Action is Action and events.Flags is Flags
    assert Action.__module__ == Flags.__module__ == "fastbook.events"
    assert (BID, ASK, NO_SIDE) == (1, 2, 0)


def test_twins_and_codecs_take_the_shared_names() -> None:
    for mod in (_pycore, _pyl3, _pyl2json, _l2schema, _pychecksum, _itchwire):
        assert (mod.BID, mod.ASK) == (BID, ASK), mod.__name__
    for name in ("FRAMING_BINARYFILE", "FRAMING_MOLDUDP64", "STATUS_OK", "STATUS_EVENTS_FULL",
                 "STATUS_DIRECTORY_FULL", "STATUS_WRONG_LENGTH", "STATUS_ZERO_LENGTH",
                 "STATUS_TRUNCATED", "STATUS_GAP"):
        assert getattr(_pyitch50, name) is getattr(_itchwire, name), name
    assert (_pyose.FRAMING_BINARYFILE, _pyose.FRAMING_MOLDUDP64) == (0, 1)
    for name in ("STATUS_NO_SECONDS", "STATUS_UNKNOWN_BOOK", "STATUS_NO_PRICE", "NO_PRICE",
                 "INVALID_KINDS", "EQUILIBRIUM_FIELDS", "STATE_FIELDS", "state_flags"):
        assert getattr(_pyose, name) is getattr(_osewire, name), name
    for name in ("OK", "OTHER", "UNKNOWN", "IGNORED", "ERROR", "Schema", "Field", "iso_to_ns"):
        assert getattr(_pyl2json, name) is getattr(_l2schema, name), name


# -- sides ---------------------------------------------------------------------------------------

def test_compiled_sides() -> None:
    for mod in (_core, _l3, fastbook):
        assert (mod.BID, mod.ASK) == (BID, ASK), mod.__name__


def test_compiled_limits_and_error_kinds() -> None:
    assert _core.MAX_DECIMALS == _pycore.MAX_DECIMALS == 18
    assert _l3.ERROR_KINDS == _pyl3.ERROR_KINDS
    assert _l3.BOOKSET_ERROR_KINDS == _pyl3.BOOKSET_ERROR_KINDS


# -- actions and flags of the compiled L3 core -------------------------------------------------

def test_compiled_action_names() -> None:
    """The table the compiled BookSet names actions with in its errors."""
    assert _l3._ACTION_NAMES == {int(a): a.name for a in Action}
    assert _pyl3._ACTION_NAMES == _l3._ACTION_NAMES


def _seeded(l3mod):
    bs = l3mod.BookSet()
    bs.add_instrument("L3", venue="V", price_decimals=0)
    bs.add_instrument("L2", kind="l2", venue="V", price_decimals=0)
    bs.apply(events.events_from_records([
        {"action": Action.ADD, "side": BID, "price": 100, "qty": 5, "order_id": 1},
        {"action": Action.ADD, "side": BID, "price": 100, "qty": 3, "order_id": 2},
        {"action": Action.ADD, "side": ASK, "price": 110, "qty": 4, "order_id": 3},
        {"action": Action.SET_LEVEL, "instrument": 1, "side": ASK, "price": 50, "qty": 9},
    ]))
    return bs


def _orders(book) -> dict[int, tuple[int, int, int] | None]:
    return {oid: book.order(oid) for oid in (1, 2, 3, 9, 10)}


_EFFECTS = [
    # (event, L3 orders after it, L2 levels after it); 1 = BID 100x5, 2 = BID 100x3, 3 = ASK 110x4
    ({"action": Action.ADD, "side": BID, "price": 99, "qty": 2, "order_id": 9},
     {9: (BID, 99, 2)}, None),
    ({"action": Action.REDUCE, "qty": 2, "order_id": 1}, {1: (BID, 100, 3)}, None),
    ({"action": Action.EXECUTE, "qty": 5, "order_id": 1}, {1: None}, None),
    ({"action": Action.DELETE, "order_id": 3}, {3: None}, None),
    ({"action": Action.REPLACE, "price": 101, "qty": 7, "order_id": 1, "new_order_id": 10},
     {1: None, 10: (BID, 101, 7)}, None),
    ({"action": Action.CLEAR}, {1: None, 2: None, 3: None}, None),
    ({"action": Action.TRADE, "side": BID, "price": 100, "qty": 1}, {}, None),
    ({"action": Action.SNAPSHOT_BEGIN}, {1: None, 2: None, 3: None}, None),
    ({"action": Action.SNAPSHOT_END}, {}, None),
    ({"action": Action.STATUS, "flags": Flags.HALTED}, {}, None),
    ({"action": Action.SET_LEVEL, "instrument": 1, "side": BID, "price": 40, "qty": 6},
     {}, [(BID, 40, 6), (ASK, 50, 9)]),
]


@L3_MODULES
@pytest.mark.parametrize("event, changed, l2", _EFFECTS,
                         ids=[e[0]["action"].name for e in _EFFECTS])
def test_each_action_code_has_its_effect(l3mod, event, changed, l2) -> None:
    """Each Action value does, in the compiled set as in the twin, what docs/events.md says."""
    bs = _seeded(l3mod)
    before = _orders(bs[0])
    bs.apply(events.events_from_records([event]))
    assert _orders(bs[0]) == {**before, **changed}
    assert list(bs[1]) == (l2 if l2 is not None else [(ASK, 50, 9)])


@L3_MODULES
@pytest.mark.parametrize("action", [0, max(Action) + 1])
def test_codes_outside_action_are_refused(l3mod, action) -> None:
    bs = _seeded(l3mod)
    ev = events.empty_events(1)
    ev["action"] = action
    ev["order_id"] = 5
    with pytest.raises(UpdateError, match=f"action {action} is not a fastbook.events.Action"):
        bs.apply(ev)


@L3_MODULES
@pytest.mark.parametrize("flags, rank", [(Flags.KEEP_PRIORITY, 0), (Flags.NONE, 1)])
def test_keep_priority_flag(l3mod, flags, rank) -> None:
    """REPLACE of order 1 by itself: Flags.KEEP_PRIORITY keeps its place, without it the back."""
    bs = _seeded(l3mod)
    bs.apply(events.events_from_records([{"action": Action.REPLACE, "price": 100, "qty": 4,
                                          "order_id": 1, "new_order_id": 1, "flags": flags}]))
    assert bs[0].order(1) == (BID, 100, 4)
    assert bs[0].queue_position(1)[0] == rank


# -- ITCH / OSE kernels: statuses and flags --------------------------------------------------

def _itch_header(kind: bytes, locate: int = 1) -> bytes:
    return kind + struct.pack(">HHHI", locate, 0, 0, 5)


def _framed(*messages: bytes) -> bytes:
    return b"".join(struct.pack(">H", len(m)) + m for m in messages)


def _decode(kernel, buf: bytes, n: int = 8, **options):
    out = np.zeros(n, events.EVENT_DTYPE)
    framing = options.pop("framing", _itchwire.FRAMING_BINARYFILE)
    result = kernel.decode_chunk(buf, 0, framing, out, np.zeros(256, np.uint64), **options)
    return result, out[:result[1]]


_ADD = _itch_header(b"A") + struct.pack(">QcI8sI", 7, b"B", 100, b"AAPL    ", 1000)


@ITCH_KERNELS
def test_itch_statuses(kernel) -> None:
    s = _itchwire
    assert _decode(kernel, b"\x00\x00")[0][4] == s.STATUS_ZERO_LENGTH
    assert _decode(kernel, b"\x00\x0cS", final=True)[0][4] == s.STATUS_TRUNCATED
    assert _decode(kernel, b"\x00\x05S" + bytes(4))[0][4] == s.STATUS_WRONG_LENGTH
    assert _decode(kernel, _framed(_ADD), n=0)[0][4] == s.STATUS_EVENTS_FULL
    assert _decode(kernel, _framed(_ADD))[0][4] == s.STATUS_OK
    gap = b"S" * 10 + struct.pack(">QH", 5, 0)
    assert _decode(kernel, gap, framing=s.FRAMING_MOLDUDP64, mold_next=1)[0][4] == s.STATUS_GAP


@ITCH_KERNELS
def test_itch_actions_sides_and_flags(kernel) -> None:
    stock = b"AAPL    "
    messages = [
        _ADD,
        _itch_header(b"P") + struct.pack(">QcI8sIQ", 0, b"S", 10, stock, 100, 1),
        _itch_header(b"Q") + struct.pack(">Q8sIQc", 10, stock, 100, 2, b"O"),
        _itch_header(b"H") + stock + b"H" + b" " + b"    ",
        _itch_header(b"C") + struct.pack(">QIQcI", 7, 1, 3, b"N", 100),
    ]
    _, out = _decode(kernel, _framed(*messages))
    assert out["action"].tolist() == [Action.ADD, Action.TRADE, Action.TRADE, Action.STATUS,
                                      Action.EXECUTE]
    assert out["side"].tolist() == [BID, ASK, NO_SIDE, NO_SIDE, NO_SIDE]
    assert out["flags"].tolist() == [Flags.NONE, Flags.HIDDEN, Flags.CROSS, Flags.HALTED,
                                     Flags.NON_PRINTABLE]


def _ose_add(price: int = 100, kind: bytes = b"A") -> bytes:
    return struct.pack(">cIQIcIQiHB", kind, 5, 7, 42, b"B", 1, 10, price, 0, 1)


_T = struct.pack(">cI", b"T", 1614557640)


@OSE_KERNELS
def test_ose_statuses(kernel) -> None:
    def status(buf: bytes, **options) -> int:
        return _decode(kernel, buf, state=_pyose.new_state(), **options)[0][4]

    assert status(_framed(_ose_add())) == _osewire.STATUS_NO_SECONDS
    assert status(_framed(_T, _ose_add()), book_map=_pyose.book_map_new()) \
        == _osewire.STATUS_UNKNOWN_BOOK
    assert status(_framed(_T, _ose_add(_osewire.NO_PRICE))) == _osewire.STATUS_NO_PRICE
    assert status(b"\x00\x00") == _itchwire.STATUS_ZERO_LENGTH
    assert status(_framed(_T, _ose_add())) == _itchwire.STATUS_OK


@OSE_KERNELS
def test_ose_actions_sides_and_flags(kernel) -> None:
    replace = struct.pack(">cIQIcIQiH", b"U", 6, 7, 42, b"B", 1, 12, 101, 0)
    state = struct.pack(">cII20s", b"O", 7, 42, b"ZARABA_HALT".ljust(20))
    _, out = _decode(kernel, _framed(_T, _ose_add(), replace, state), state=_pyose.new_state())
    assert out["action"].tolist() == [Action.ADD, Action.REPLACE, Action.STATUS]
    assert out["side"].tolist() == [BID, BID, NO_SIDE]
    assert out["flags"].tolist() == [Flags.NONE, Flags.KEEP_PRIORITY,
                                     _osewire.state_flags(b"ZARABA_HALT")]


# -- the L2 JSON scanner and the checksum kernel ----------------------------------------------

def test_scanner_statuses() -> None:
    schema = _l2schema.Schema(discriminator=("e", "top"), accept=("book",), symbol=("s", "top"),
                              fields=[_l2schema.Field("b", "bids", "top")])
    messages = {
        _l2schema.OK: {"e": "book", "s": "X", "b": [["1.5", "2"]]},
        _l2schema.OTHER: {"e": "trade", "s": "X"},
        _l2schema.UNKNOWN: {"e": "book", "s": "Y", "b": []},
        _l2schema.IGNORED: {"e": "book", "s": "Z", "b": []},
        _l2schema.ERROR: {"e": "book", "s": "X", "b": "not a list"},
    }
    for mod, core in ((_l2json, _core), (_pyl2json, _pycore)):
        scanner = mod.Scanner(schema)
        scanner.register("X", core.Book(price_decimals=1, qty_decimals=0), 0)
        scanner.register("Z", None, 1)
        for status, msg in messages.items():
            assert scanner.scan(json.dumps(msg).encode()) == status, (mod.__name__, msg)
    assert _l2json.OK == _l2schema.OK and _l2json.Schema is _l2schema.Schema


def test_checksum_limits() -> None:
    assert _checksum.MAX_LEVELS == _pychecksum.MAX_LEVELS
    assert _vocab.BID == _pychecksum.BID
