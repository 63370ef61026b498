"""OSE ITCH decoding, message by message, against bytes built from the documented layouts.

Every case runs on the pure-Python twin (``_pyose``) and, when built, on the
compiled kernel (``_ose``): both must give exactly these events and statuses.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastbook.codecs import _pyose
from fastbook.errors import DecodeError
from fastbook.events import EVENT_DTYPE, Action, Flags
from tests.helpers.impls import compiled, pair
from tests.helpers.ose import (
    LENGTHS,
    NO_PRICE,
    A,
    C,
    D,
    E,
    F,
    L,
    M,
    O,
    P,
    R,
    S,
    T,
    U,
    Z,
    binaryfile,
    frame,
    mold,
)

KERNELS = pair(_pyose, compiled("fastbook.codecs._ose"))

SEC = 1_717_369_200
NS = 1_000_000_000
FUT, OPT = 954_435_761, 126_484_980     # two order book ids


@pytest.fixture(params=sorted(KERNELS))
def kernel(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return KERNELS[request.param]


def run(kernel, buf: bytes, *, framing: int = 0, capacity: int = 64, book_map=None,
        directory=None, invalid=None, state=None, equilibrium=None, final: bool = True,
        seq: int = 0, positions: bool = True):  # type: ignore[no-untyped-def]
    events = np.zeros(capacity, EVENT_DTYPE)
    counts = np.zeros(256, np.uint64)
    pos = np.zeros(capacity, np.uint32) if positions else None
    state = _pyose.new_state() if state is None else state
    out = kernel.decode_chunk(buf, 0, framing, events, counts, state=state, book_map=book_map,
                              directory=directory, positions=pos, equilibrium=equilibrium,
                              invalid=invalid, seq=seq, final=final)
    return out, events[:out[1]], counts, pos, state


def mapped(*pairs: tuple[int, int]) -> np.ndarray:
    m = _pyose.book_map_new(4)
    for obid, inst in pairs:
        m = _pyose.book_map_set(m, obid, inst)
    return m


# -- parse_message: every type, every field ------------------------------------------------------

def test_every_layout_has_its_documented_length():
    assert {k.encode(): v for k, v in _pyose.MESSAGE_LENGTHS.items()} == LENGTHS
    for build, args in [(T, (1,)), (S, (1,)), (R, (1, 2, "X")), (M, (1, 2, 3)),
                        (L, (1, 2, 3, 4, 5)), (O, (1, 2, "ZARABA")),
                        (A, (1, 2, 3, b"B", 4, 5, 6)), (F, (1, 2, 3, b"B", 4, 5, 6)),
                        (E, (1, 2, 3, b"B", 4)), (C, (1, 2, 3, b"B", 4, 5)),
                        (U, (1, 2, 3, b"B", 4, 5, 6)), (D, (1, 2, 3, b"B")),
                        (P, (1, 2, b"B", 3, 4)), (Z, (1, 2, 3, 4, 5, 6, 7, 8, 9))]:
        msg = build(*args)
        assert len(msg) == LENGTHS[msg[:1]]


def test_parse_every_type():
    p = _pyose.parse_message
    assert p(T(SEC)) == _pyose.Seconds("T", SEC)
    assert p(S(7, b"C")) == _pyose.SystemEvent("S", 7, "C")
    r = p(R(9, OPT, "PUT_NK225_210312_19250", decimals=4, product=1, strike=19250,
            put_call=2, underlying=500, expiry=20210312))
    assert (r.order_book_id, r.symbol, r.decimals_in_price, r.financial_product, r.strike_price,
            r.put_or_call, r.underlying_order_book_id, r.expiration_date,
            r.trading_currency) == (OPT, "PUT_NK225_210312_19250", 4, 1, 19250, 2, 500,
                                    20210312, "JPY")
    assert p(M(1, 5, 6, b"C", 2)) == _pyose.CombinationLeg("M", 1, 5, 6, "C", 2)
    assert p(L(1, OPT, 50_000, 1_000_000, 9_999_999)) == \
        _pyose.TickSize("L", 1, OPT, 50_000, 1_000_000, 9_999_999)
    assert p(O(3, OPT, "M_PRE_OPEN_NO_J-NET")) == \
        _pyose.OrderBookState("O", 3, OPT, "M_PRE_OPEN_NO_J-NET")
    assert p(A(5, 7395532366336496435, OPT, b"B", 15, 15, 10_000)) == _pyose.AddOrder(
        "A", 5, 7395532366336496435, OPT, "B", 15, 15, 10_000, 0, 0)
    f = p(F(5, 1, FUT, b"S", 2, 3, -40))
    assert (f.price, f.participant_id, f.side) == (-40, "PART001", "S")
    e = p(E(6, 2**64 - 1, FUT, b"S", 2**40, match=99, combo=3))
    assert (e.order_id, e.executed_quantity, e.match_id, e.combo_group_id) == \
        (2**64 - 1, 2**40, 99, 3)
    c = p(C(6, 1, FUT, b"B", 3, 38_000, cross=b"Y", printable=b"N"))
    assert (c.trade_price, c.occurred_at_cross, c.printable) == (38_000, "Y", "N")
    assert p(U(8, 1, FUT, b"B", 4, 9, 37_990, 1)) == \
        _pyose.OrderReplace("U", 8, 1, FUT, "B", 4, 9, 37_990, 1)
    assert p(D(9, 1, FUT, b"S")) == _pyose.OrderDelete("D", 9, 1, FUT, "S")
    pt = p(P(9, FUT, b"B", 4, 38_010, match=5, combo=6, printable=b"Y", cross=b"Y"))
    assert (pt.order_book_id, pt.quantity, pt.trade_price, pt.match_id, pt.combo_group_id,
            pt.printable, pt.occurred_at_cross) == (FUT, 4, 38_010, 5, 6, "Y", "Y")
    z = p(Z(1, OPT, 0, 0, NO_PRICE, 3_850_000, 3_950_000, 3, 2))
    assert (z.equilibrium_price, z.best_bid_price, z.best_ask_price, z.best_bid_quantity,
            z.best_ask_quantity) == (NO_PRICE, 3_850_000, 3_950_000, 3, 2)


@pytest.mark.parametrize("msg", [T(1), D(1, 2, 3, b"B"), A(1, 2, 3, b"B", 4, 5, 6)])
def test_parse_refuses_wrong_lengths_and_unknown_types(msg: bytes):
    with pytest.raises(DecodeError, match="length"):
        _pyose.parse_message(msg + b"\x00")
    with pytest.raises(DecodeError, match="length"):
        _pyose.parse_message(msg[:-1])
    with pytest.raises(DecodeError, match="unknown OSE ITCH message type 'Q'"):
        _pyose.parse_message(b"Q" + msg[1:])
    assert _pyose.parse_message(b"Q" + msg[1:], allow_unknown=True).type == "Q"
    with pytest.raises(DecodeError, match="empty"):
        _pyose.parse_message(b"")


def test_order_book_directory_dict():
    d = _pyose.order_book_directory(R(3, OPT, "CAL_NK225_240614_38500", decimals=4, product=1,
                                      strike=NO_PRICE, put_call=1, round_lot=1))
    assert d["order_book_id"] == OPT and d["price_decimals"] == 4 and d["strike"] is None
    assert d["put_or_call"] == 1 and d["symbol"] == "CAL_NK225_240614_38500"
    with pytest.raises(DecodeError, match="needs an 'R'"):
        _pyose.order_book_directory(T(1))


def test_iter_messages_times_and_framings():
    msgs = [T(SEC), A(5, 1, FUT, b"B", 1, 2, 3), T(SEC + 1), D(7, 1, FUT, b"B")]
    for framing, buf in [(0, binaryfile(*msgs)), (1, mold(1, *msgs[:2]) + mold(3, *msgs[2:]))]:
        got = [(n, ts, m.type) for _, n, ts, m in _pyose.iter_messages(buf, framing)]
        assert got == [(0, SEC * NS, "T"), (1, SEC * NS + 5, "A"), (2, (SEC + 1) * NS, "T"),
                       (3, (SEC + 1) * NS + 7, "D")]
    with pytest.raises(DecodeError, match="truncated"):
        list(_pyose.iter_messages(binaryfile(*msgs)[:-1]))
    with pytest.raises(DecodeError, match="lacks 1 message"):
        list(_pyose.iter_messages(mold(1, *msgs, count=5), 1))


def test_state_flags_rules():
    f = _pyose.state_flags
    assert f("ZARABA") == 0
    assert f("M_PRE_OPEN") == f("M_PRE_OPEN_NO_J-NET") == f("M_PRE_CLOSE") == Flags.QUOTING
    assert f("DCB_PRE_OPEN") == Flags.QUOTING
    assert f("CLOSE") == f("HALT") == f("SUSPENDED") == Flags.HALTED
    assert f("SOMETHING_ELSE") == 0


def test_book_map_grows_and_keeps_entries():
    m = _pyose.book_map_new(1)
    ids = [7 * k + 3 for k in range(100)] + [0, 0xFFFFFFFF]
    for k, obid in enumerate(ids):
        m = _pyose.book_map_set(m, obid, k - 1)
    assert all(_pyose.book_map_get(m, obid) == k - 1 for k, obid in enumerate(ids))
    assert _pyose.book_map_get(m, 5) is None
    assert len(m) >= 2 * len(ids) and len(m) & (len(m) - 1) == 0
    with pytest.raises(ValueError, match=r"^order book id must be a uint32, got 4294967296$"):
        _pyose.book_map_set(m, 2**32, 1)


# -- decode_chunk: the event of every type -------------------------------------------------

def test_events_of_every_type(kernel):
    buf = binaryfile(
        T(SEC), S(1), R(2, FUT, "NK225_F_2406"), A(10, 11, FUT, b"B", 1, 5, 38_000, 3, 1),
        F(11, 12, FUT, b"S", 1, 6, 38_010), E(12, 11, FUT, b"B", 2, match=70),
        C(13, 12, FUT, b"S", 1, 38_010, cross=b"Y", printable=b"N"),
        U(14, 11, FUT, b"B", 1, 2, 37_990), D(15, 12, FUT, b"S"),
        P(16, FUT, b"S", 9, -35, cross=b"Y", printable=b"N"), O(17, FUT, "M_PRE_CLOSE"),
        Z(18, FUT, 1, 2, 38_000, 38_000, 38_010, 3, 4), M(19, 1, 2), L(20, FUT, 10, 10, 99_990),
        T(SEC + 1), A(21, 13, FUT, b"S", 2, 1, 38_020))
    (pos, n, nm, nd, status), ev, counts, positions, state = run(kernel, buf, seq=100)
    assert (pos, n, nm, nd, status) == (len(buf), 9, 16, 0, 0)
    rows = [tuple(r) for r in ev[["ts_exchange", "instrument", "action", "side", "flags",
                                  "price", "qty", "order_id", "new_order_id",
                                  "sequence"]].tolist()]
    t0 = SEC * NS
    assert rows == [
        (t0 + 10, FUT, Action.ADD, 1, 0, 38_000, 5, 11, 0, 103),
        (t0 + 11, FUT, Action.ADD, 2, 0, 38_010, 6, 12, 0, 104),
        (t0 + 12, FUT, Action.EXECUTE, 1, 0, 0, 2, 11, 0, 105),
        (t0 + 13, FUT, Action.EXECUTE, 2, Flags.CROSS | Flags.NON_PRINTABLE, 38_010, 1, 12, 0,
         106),
        (t0 + 14, FUT, Action.REPLACE, 1, Flags.KEEP_PRIORITY, 37_990, 2, 11, 11, 107),
        (t0 + 15, FUT, Action.DELETE, 2, 0, 0, 0, 12, 0, 108),
        (t0 + 16, FUT, Action.TRADE, 2, Flags.CROSS | Flags.NON_PRINTABLE, -35, 9, 0, 0, 109),
        (t0 + 17, FUT, Action.STATUS, 0, Flags.QUOTING, 0, 0, 0, 0, 110),
        (t0 + NS + 21, FUT, Action.ADD, 2, 0, 38_020, 1, 13, 0, 115),
    ]
    assert positions[:n].tolist() == [1, 1, 0, 0, 1, 0, 0, 0, 2]
    assert ev["ts_receive"].tolist() == [0] * n
    assert {chr(t): int(c) for t, c in enumerate(counts) if c} == {
        "T": 2, "S": 1, "R": 1, "A": 2, "F": 1, "E": 1, "C": 1, "U": 1, "D": 1, "P": 1, "O": 1,
        "Z": 1, "M": 1, "L": 1}
    assert state.tolist() == [SEC + 1, 0, 0, 0]


def test_printable_and_cross_flags(kernel):
    cases = [(b"N", b"Y", 0), (b"Y", b"Y", Flags.CROSS), (b"N", b"N", Flags.NON_PRINTABLE)]
    for cross, printable, flags in cases:
        buf = binaryfile(T(SEC), C(1, 1, FUT, b"B", 1, 5, cross=cross, printable=printable),
                         P(2, FUT, b"B", 1, 5, cross=cross, printable=printable))
        _, ev, *_ = run(kernel, buf)
        assert ev["flags"].tolist() == [flags, flags]


def test_u64_quantities_keep_their_bits_and_prices_are_signed(kernel):
    buf = binaryfile(T(SEC), A(1, 1, FUT, b"S", 1, 2**63 + 5, -2**31 + 1))
    _, ev, *_ = run(kernel, buf)
    assert int(ev["qty"][0]) == 2**63 + 5 - 2**64 and int(ev["price"][0]) == -2**31 + 1


def test_sides_other_than_b_and_s_are_side_0(kernel):
    _, ev, *_ = run(kernel, binaryfile(T(SEC), D(1, 1, FUT, b"X")))
    assert ev["side"].tolist() == [0]


def test_instruments_through_the_book_map(kernel):
    book_map = mapped((FUT, 3), (OPT, -1))
    buf = binaryfile(T(SEC), A(1, 1, FUT, b"B", 1, 1, 5), A(2, 1, OPT, b"B", 1, 1, NO_PRICE),
                     O(3, OPT, "ZARABA"), Z(4, OPT, 0, 0, 1, 1, 1, 1, 1))
    (_, n, nm, _, status), ev, counts, *_ = run(kernel, buf, book_map=book_map)
    assert (n, nm, status) == (1, 5, 0)          # the dropped book: counted, not checked
    assert ev["instrument"].tolist() == [3]
    assert int(counts[ord("A")]) == 2


# -- statuses ------------------------------------------------------------------------------------

@pytest.mark.parametrize("framing", [0, 1])
def test_wrong_length_zero_length_and_truncation(kernel, framing):
    good = A(1, 1, FUT, b"B", 1, 1, 5)
    wrap = (lambda *ms: binaryfile(*ms)) if framing == 0 else (lambda *ms: mold(1, *ms))
    head = wrap(T(SEC))
    # a known type one byte long
    bad = head + (frame(good + b"\x00") if framing == 0 else mold(2, good + b"\x00"))
    (pos, n, nm, _, status), *_ = run(kernel, bad, framing=framing)
    assert status == -1 and nm == 1 and n == 0
    assert pos == len(head) + (0 if framing == 0 else 20)
    zero = head + (b"\x00\x00" if framing == 0 else mold(2, b"")[:20] + b"\x00\x00")
    assert run(kernel, zero, framing=framing)[0][4] == -2
    full = wrap(T(SEC), good)
    for cut in range(1, len(good) + 2):
        (pos, n, nm, _, status), *_ = run(kernel, full[:-cut], framing=framing)
        assert status == -3 and n == 0 and nm == 1
        (pos2, _, _, _, status2), *_ = run(kernel, full[:-cut], framing=framing, final=False)
        assert status2 == 0 and pos2 == pos
    # an unknown type is skipped by its length and counted
    (_, n, nm, _, status), _, counts, *_ = run(kernel, wrap(T(SEC), b"Q123", good),
                                               framing=framing)
    assert (n, nm, status) == (1, 3, 0) and int(counts[ord("Q")]) == 1


def test_nanosecond_message_before_any_seconds(kernel):
    buf = binaryfile(A(1, 1, FUT, b"B", 1, 1, 5), T(SEC), D(2, 1, FUT, b"B"))
    (pos, n, nm, _, status), *_ = run(kernel, buf)
    assert (pos, n, nm, status) == (0, 0, 0, -6)
    invalid = np.zeros(3, np.uint64)
    (pos, n, nm, _, status), ev, counts, *_ = run(kernel, buf, invalid=invalid)
    assert (pos, n, nm, status) == (len(buf), 1, 3, 0)
    assert invalid.tolist() == [1, 0, 0] and int(counts[ord("A")]) == 1
    assert ev["action"].tolist() == [Action.DELETE]


def test_unknown_order_book(kernel):
    buf = binaryfile(T(SEC), A(1, 1, OPT, b"B", 1, 1, 5), A(2, 1, FUT, b"B", 1, 1, 5))
    (pos, n, nm, _, status), *_ = run(kernel, buf, book_map=mapped((FUT, 0)))
    assert (pos, n, nm, status) == (7, 0, 1, -7)
    invalid = np.zeros(3, np.uint64)
    (pos, n, nm, _, status), _, *_ = run(kernel, buf, book_map=mapped((FUT, 0)),
                                          invalid=invalid)
    assert (n, nm, status) == (1, 3, 0) and invalid.tolist() == [0, 1, 0]


@pytest.mark.parametrize("msg", [A(1, 1, FUT, b"B", 1, 1, NO_PRICE),
                                 F(1, 1, FUT, b"B", 1, 1, NO_PRICE),
                                 U(1, 1, FUT, b"B", 1, 1, NO_PRICE),
                                 C(1, 1, FUT, b"B", 1, NO_PRICE),
                                 P(1, FUT, b"B", 1, NO_PRICE)])
def test_no_price_where_one_is_required(kernel, msg):
    buf = binaryfile(T(SEC), msg)
    (pos, n, nm, _, status), *_ = run(kernel, buf)
    assert (pos, n, nm, status) == (7, 0, 1, -8)
    invalid = np.zeros(3, np.uint64)
    (pos, n, nm, _, status), *_ = run(kernel, buf, invalid=invalid)
    assert (pos, n, nm, status) == (len(buf), 0, 2, 0) and invalid.tolist() == [0, 0, 1]


def test_no_price_is_fine_in_z_and_l(kernel):
    buf = binaryfile(T(SEC), Z(1, FUT, 0, 0, NO_PRICE, NO_PRICE, NO_PRICE, 0, 0),
                     L(2, FUT, 1, NO_PRICE, 5))
    assert run(kernel, buf)[0] == (len(buf), 0, 3, 0, 0)


def test_events_full_consumes_nothing_more(kernel):
    buf = binaryfile(T(SEC), D(1, 1, FUT, b"B"), S(2), D(3, 2, FUT, b"B"))
    (pos, n, nm, _, status), _, *_ = run(kernel, buf, capacity=1)
    assert (n, nm, status) == (1, 3, 1) and pos == len(binaryfile(T(SEC), D(1, 1, FUT, b"B"),
                                                                    S(2)))


def test_directory_reports_and_stops(kernel):
    buf = binaryfile(T(SEC), R(1, FUT, "F"), A(2, 1, FUT, b"B", 1, 1, 5), M(3, 1, 2),
                     L(4, FUT, 1, 1, 9), O(5, FUT, "ZARABA"), S(6))
    directory = np.zeros(4, np.int64)
    offsets, pos, seq, types, events = [], 0, 0, [], 0
    state = _pyose.new_state()
    while True:
        ev = np.zeros(8, EVENT_DTYPE)
        pos, n, nm, nd, status = kernel.decode_chunk(
            buf, pos, 0, ev, np.zeros(256, np.uint64), state=state, directory=directory,
            seq=seq, final=True)
        seq += nm
        events += n
        offsets += directory[:nd].tolist()
        types += [chr(buf[o]) for o in directory[:nd].tolist()]
        if status != 2:
            break
        assert nd == 1        # one stop per reported message
    assert status == 0 and types == ["R", "M", "L", "O"] and events == 2
    full = np.zeros(0, np.int64)
    (pos, n, nm, nd, status), *_ = run(kernel, buf, directory=full)
    assert (nm, nd, status) == (1, 0, 2) and pos == 7      # directory full before the R


def test_positions_array_is_optional_and_checked(kernel):
    buf = binaryfile(T(SEC), A(1, 1, FUT, b"B", 7, 1, 5))
    out, *_ = run(kernel, buf, positions=False)
    assert out[1] == 1
    with pytest.raises((TypeError, ValueError),
                       match=r"^positions must be at least as long as events \(4\), got 2$"):
        kernel.decode_chunk(buf, 0, 0, np.zeros(4, EVENT_DTYPE), np.zeros(256, np.uint64),
                            positions=np.zeros(2, np.uint32))


def test_equilibrium_table(kernel):
    table = np.full((3, 8), -1, np.int64)
    buf = binaryfile(T(SEC), Z(5, FUT, 1, 2, 340_000, 340_000, 341_000, 3, 4),
                     Z(6, OPT, 9, 9, 9, 9, 9, 9, 9))
    run(kernel, buf, book_map=mapped((FUT, 2), (OPT, 7)), equilibrium=table)
    assert table[2].tolist() == [SEC * NS + 5, 340_000, 1, 2, 340_000, 341_000, 3, 4]
    assert table[:2].tolist() == [[-1] * 8] * 2          # instrument 7 is past the rows


# -- MoldUDP64 -------------------------------------------------------------------------------

def test_mold_packets_heartbeats_and_gaps(kernel):
    buf = (mold(1, T(SEC), D(1, 1, FUT, b"B")) + mold(3, count=0)
           + mold(3, D(2, 2, FUT, b"S")) + mold(4, count=0xFFFF))
    (pos, n, nm, _, status), _, _, _, state = run(kernel, buf, framing=1)
    assert (pos, n, nm, status) == (len(buf), 2, 3, 0)
    assert state.tolist() == [SEC, 1, 4, 0]
    gap = mold(1, T(SEC)) + mold(3, D(1, 1, FUT, b"B"))
    (pos, n, nm, _, status), *_ = run(kernel, gap, framing=1)
    assert (pos, nm, status) == (len(mold(1, T(SEC))), 1, -5)
    # a state expecting 10: the first packet is a gap
    st = _pyose.new_state()
    st[1], st[2] = 1, 10
    assert run(kernel, mold(9, T(SEC)), framing=1, state=st)[0][4] == -5
    # the largest sequence number: after it nothing can follow
    top = mold(2**64 - 1, T(SEC)) + mold(0, T(SEC))
    (pos, n, nm, _, status), _, _, _, state = run(kernel, top, framing=1)
    assert (nm, status) == (1, -5) and state[1] == 2


def test_mold_stops_inside_a_packet_after_an_r(kernel):
    buf = mold(1, T(SEC), R(1, FUT, "F"), A(2, 1, FUT, b"B", 1, 1, 5))
    directory = np.zeros(4, np.int64)
    book_map = _pyose.book_map_new(4)
    (pos, n, nm, nd, status), _, _, _, state = run(kernel, buf, framing=1, directory=directory,
                                                   book_map=book_map)
    assert (n, nm, nd, status) == (0, 2, 1, 2) and state[3] == 1      # one block left
    book_map = _pyose.book_map_set(book_map, FUT, 0)
    ev = np.zeros(4, EVENT_DTYPE)
    out = kernel.decode_chunk(buf, pos, 1, ev, np.zeros(256, np.uint64), state=state,
                              book_map=book_map, directory=directory, seq=2, final=True)
    assert out == (len(buf), 1, 1, 0, 0) and int(ev["sequence"][0]) == 2


def test_bad_state_and_arguments(kernel):
    ev, counts = np.zeros(2, EVENT_DTYPE), np.zeros(256, np.uint64)
    with pytest.raises(ValueError, match="state"):
        kernel.decode_chunk(b"", 0, 0, ev, counts, state=np.array([0, 7, 0, 0], np.int64))
    with pytest.raises(ValueError, match="framing"):
        kernel.decode_chunk(b"", 0, 2, ev, counts)
    with pytest.raises(ValueError, match="pos"):
        kernel.decode_chunk(b"", 1, 0, ev, counts)
    with pytest.raises(TypeError, match=r"^pos must be an int, got bool$"):
        kernel.decode_chunk(b"", True, 0, ev, counts)
    with pytest.raises((TypeError, ValueError),
                       match=r"^counts must .*length 256.*got (length )?255$"):
        kernel.decode_chunk(b"", 0, 0, ev, np.zeros(255, np.uint64))
    with pytest.raises((TypeError, ValueError),
                       match=r"^book_map length must be a power of two, got 3$"):
        kernel.decode_chunk(b"", 0, 0, ev, counts, book_map=np.zeros(3, np.uint64))
    with pytest.raises((TypeError, ValueError),
                       match=r"^equilibrium must have 8 columns, got shape \(2, 7\)$"):
        kernel.decode_chunk(b"", 0, 0, ev, counts, equilibrium=np.zeros((2, 7), np.int64))
    with pytest.raises((TypeError, ValueError),
                       match=r"^invalid must .*length 3, got (length )?2$"):
        kernel.decode_chunk(b"", 0, 0, ev, counts, invalid=np.zeros(2, np.uint64))
    with pytest.raises(TypeError, match=r"^buf must be a bytes-like buffer .*, got int$"):
        kernel.decode_chunk(12, 0, 0, ev, counts)
