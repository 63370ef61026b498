"""ose_itch.Decoder: streaming over the kernel, chunk edges, tables, instruments, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastbook as fb
from fastbook import synth
from fastbook.codecs import _pyose, ose_itch
from fastbook.errors import DecodeError
from fastbook.events import Action, Flags
from fastbook.l3 import BookSet
from tests.helpers.ose import NO_PRICE, A, C, D, E, L, M, O, R, S, T, U, Z, binaryfile, mold

SEC = 1_717_369_200
NS = 1_000_000_000
FUT, OPT, CMB = 954_435_761, 126_484_980, 40_632_820


def day_messages() -> list[bytes]:
    return [
        T(SEC), S(0), R(1, FUT, "NK225_F_2406", round_lot=1),
        R(2, OPT, "PUT_NK225_240614_38000", decimals=4, product=1, strike=38000, put_call=2),
        R(3, CMB, "NK225_CS", legs=2, product=11), M(4, CMB, FUT, b"B", 1),
        M(4, CMB, 777, b"C", 1), L(5, OPT, 10_000, 10_000, 999_999),
        L(5, OPT, 50_000, 1_000_000, 9_999_999), O(6, FUT, "M_PRE_OPEN"),
        A(7, 1, FUT, b"B", 1, 5, 38_000), A(8, 1, FUT, b"S", 1, 3, 38_010),
        Z(9, FUT, 0, 0, NO_PRICE, 38_000, 38_010, 5, 3), T(SEC + 1),
        A(10, 2, FUT, b"B", 2, 4, 38_000), A(11, 1, OPT, b"S", 1, 2, 1_250_000),
        U(12, 1, FUT, b"B", 1, 2, 38_000), O(13, FUT, "ZARABA"),
        E(14, 1, FUT, b"S", 1), C(15, 2, FUT, b"B", 4, 38_000), D(16, 1, OPT, b"S"),
        A(17, 9, CMB, b"B", 1, 1, -50), S(18, b"C"),
    ]


def decode(data: bytes, chunks: list[int] | None = None, **kw):  # type: ignore[no-untyped-def]
    books = BookSet()
    dec = ose_itch.Decoder(books, **kw)
    batches = []
    cuts = [0, *(chunks or []), len(data)]
    for a, b in itertools.pairwise(cuts):
        for ev in dec.feed(data[a:b]):
            books.apply(ev)
            batches.append(ev.copy())
    for ev in dec.close():
        books.apply(ev)
        batches.append(ev.copy())
    events = np.concatenate(batches) if batches else np.zeros(0)
    return books, dec, events


@pytest.mark.parametrize("framing", ["binaryfile", "moldudp64"])
@pytest.mark.parametrize("kernel", [True, False])
def test_every_chunk_edge_gives_the_same_result(framing, kernel):
    msgs = day_messages()
    data = binaryfile(*msgs) if framing == "binaryfile" else \
        mold(1, *msgs[:5]) + mold(6, count=0) + mold(6, *msgs[5:14]) + mold(15, *msgs[14:])
    ref_books, ref_dec, ref_events = decode(data, framing=framing)
    assert ref_dec.messages == len(msgs) and ref_dec.bytes == len(data)
    for cut in range(1, len(data)):
        books, dec, events = decode(data, [cut], framing=framing, kernel=kernel, batch=3)
        assert events.tobytes() == ref_events.tobytes(), cut
        assert dec.counts() == ref_dec.counts() and dec.bytes == len(data)
        assert [books[i].top(3).tolist() for i in range(3)] == \
            [ref_books[i].top(3).tolist() for i in range(3)]


def test_instruments_tables_and_books():
    books, dec, events = decode(binaryfile(*day_messages()))
    assert len(books) == 3 and dec.instruments == {FUT: 0, OPT: 1, CMB: 2}
    meta = [books.instrument(i) for i in range(3)]
    assert [(m["symbol"], m["venue"], m["price_decimals"], m["qty_decimals"]) for m in meta] == [
        ("NK225_F_2406", "XOSE", 0, 0), ("PUT_NK225_240614_38000", "XOSE", 4, 0),
        ("NK225_CS", "XOSE", 0, 0)]
    assert all(books[i].side_keys for i in range(3))
    # order 1 rests on both sides of the future: the bid was modified (kept its place, qty 2),
    # then the ask was executed by 1; order 2 (bid) fully executed
    fut = books[0]
    assert fut.order(1, side=1) == (1, 38_000, 2) and fut.order(1, side=2) == (2, 38_010, 2)
    assert fut.order(2, side=1) is None
    assert books[1].order_count == 0 and books[2].best_bid() == (-50, 1)
    assert dec.legs == {CMB: [{"leg": FUT, "side": "B", "ratio": 1},
                              {"leg": 777, "side": "C", "ratio": 1}]}
    assert dec.tick_sizes == {OPT: [(10_000, 10_000, 999_999), (50_000, 1_000_000, 9_999_999)]}
    assert dec.states == {FUT: [(SEC * NS + 6, "M_PRE_OPEN"), ((SEC + 1) * NS + 13, "ZARABA")]}
    assert dec.equilibrium() == {FUT: {
        "ts": SEC * NS + 9, "price": None, "bid_qty": 0, "ask_qty": 0, "best_bid": 38_000,
        "best_ask": 38_010, "best_bid_qty": 5, "best_ask_qty": 3}}
    status = events[events["action"] == Action.STATUS]
    assert status["flags"].tolist() == [Flags.QUOTING, 0]
    assert dec.seconds == SEC + 1
    assert [d["symbol"] for d in dec.directory] == ["NK225_F_2406", "PUT_NK225_240614_38000",
                                                    "NK225_CS"]


def test_symbols_filter_drops_other_books_in_the_kernel():
    books, dec, events = decode(binaryfile(*day_messages()), symbols=["NK225_CS"])
    assert len(books) == 1 and dec.instruments == {CMB: 0}
    assert events["action"].tolist() == [Action.ADD]
    assert dec.counts()["A"] == 5 and len(dec.directory) == 3


def test_existing_instrument_is_reused_and_decimals_must_agree():
    books = BookSet()
    books.add_instrument("NK225_F_2406", venue="XOSE", price_decimals=0, side_keys=True)
    dec = ose_itch.Decoder(books)
    list(dec.feed(binaryfile(T(SEC), R(1, FUT, "NK225_F_2406"))))
    assert dec.instruments == {FUT: 0} and len(books) == 1
    books = BookSet()
    books.add_instrument("NK225_F_2406", venue="XOSE", price_decimals=2, side_keys=True)
    with pytest.raises(DecodeError, match="has 0 decimals in price, but the BookSet's "
                                          "instrument 0 has 2"):
        list(ose_itch.Decoder(books).feed(binaryfile(T(SEC), R(1, FUT, "NK225_F_2406"))))


def test_scan_without_books_uses_order_book_ids():
    dec = ose_itch.Decoder(None)
    events = np.concatenate([*(e.copy() for e in dec.feed(binaryfile(*day_messages()))),
                             *(e.copy() for e in dec.close())])
    assert set(events["instrument"].tolist()) == {FUT, OPT, CMB}
    assert dec.equilibrium() == {} and len(dec.directory) == 3


def test_errors_name_the_byte_message_and_book():
    head = binaryfile(T(SEC), R(1, FUT, "F"))
    with pytest.raises(DecodeError, match=r"day.itch: byte 138, message 2 \(binaryfile\): 'A' "
                                          r"message: an order book id that no R .* \(order "
                                          r"book id 5, order id 9\)"):
        decode(head + binaryfile(A(1, 9, 5, b"B", 1, 1, 1)), name="day.itch")
    with pytest.raises(DecodeError, match=r"byte 0, message 0 .*'D' message: a message before "
                                          r"any T"):
        decode(binaryfile(D(1, 1, FUT, b"B")))
    with pytest.raises(DecodeError, match=r"message 2 .*'U' message: INT32_MIN .*order book id "
                                          rf"{FUT}, order id 4"):
        decode(head + binaryfile(U(1, 4, FUT, b"B", 1, 1, NO_PRICE)))
    with pytest.raises(DecodeError, match="type 'D' has length 19, its layout says 18"):
        decode(head + b"\x00\x13" + D(1, 1, FUT, b"B") + b"\x00")
    with pytest.raises(DecodeError, match="truncated"):
        decode(head[:-3])
    with pytest.raises(DecodeError, match="sequence gap"):
        decode(mold(1, T(SEC)) + mold(5, T(SEC)), framing="moldudp64")
    with pytest.raises(ValueError, match="framing must be one of binaryfile, moldudp64"):
        ose_itch.Decoder(None, framing="soupbintcp")
    with pytest.raises(ValueError, match="on_invalid"):
        ose_itch.Decoder(None, on_invalid="ignore")


def test_skip_mode_counts_invalid_messages():
    data = binaryfile(A(1, 1, FUT, b"B", 1, 1, 1), T(SEC), R(1, FUT, "F"),
                      A(2, 1, 5, b"B", 1, 1, 1), A(3, 2, FUT, b"B", 1, 1, NO_PRICE),
                      A(4, 3, FUT, b"B", 1, 1, 7))
    books, dec, events = decode(data, on_invalid="skip")
    assert dec.invalid == {"no_seconds": 1, "unknown_book": 1, "no_price": 1}
    assert events["order_id"].tolist() == [3] and books[0].best_bid() == (7, 1)


def test_positions_follow_the_batches():
    dec = ose_itch.Decoder(BookSet(), keep_positions=True, batch=2)
    seen = []
    for ev in dec.feed(binaryfile(*day_messages())):
        assert dec.batch_positions is not None and len(dec.batch_positions) == len(ev)
        seen += dec.batch_positions.tolist()
    assert seen == [0, 1, 1, 2, 1, 1, 0, 0, 0, 0, 1]     # O A A A A U O E C D A


def test_decode_events_and_a_synthetic_day_agree_with_the_twin():
    data = synth.ose_day(4000, seed=8, form="moldudp64")
    fast, dec_fast = ose_itch.decode_events(data, framing="moldudp64")
    slow, dec_slow = ose_itch.decode_events(data, framing="moldudp64", kernel=False)
    assert fast.tobytes() == slow.tobytes()
    assert dec_fast.counts() == dec_slow.counts() and dec_fast.legs == dec_slow.legs
    assert dec_fast.equilibrium() == dec_slow.equilibrium() != {}
    assert dec_fast.states == dec_slow.states and dec_fast.tick_sizes == dec_slow.tick_sizes


def test_iter_messages_reexport_and_kernel_choice():
    assert ose_itch.iter_messages is _pyose.iter_messages
    assert ose_itch._kernel_module(False) is _pyose
    with pytest.raises(TypeError, match="kernel must be"):
        ose_itch.Decoder(None, kernel="fast")
    assert fb.codecs.load("ose_itch") is ose_itch
