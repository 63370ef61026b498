"""The JPX historical CSV reader: line formats, merged modifications, the same books as binary."""

from __future__ import annotations

import numpy as np
import pytest

import fastbook as fb
from fastbook import synth
from fastbook.codecs import jpx_csv
from fastbook.errors import DecodeError
from fastbook.events import Action, Flags
from fastbook.l3 import BookSet

# The A row below is the one quoted in specs/itch.md section 2.2; the R row follows the
# column order of the binary R message (docs/ose-itch.md).
R_ROW = ("R,2021-02-28T21:07:50.931282000(1614546470931282000),126484980,PUT_NK225_210312_19250,"
         "PUT_NK225_210312_19250,JP0000000001,1,JPY,4,0,0,1,0,0,0,500,19250,20210312,0,2")
A_ROW = ("A,2021-02-28T21:07:50.931282000(1614546470931282000),7395532366336496435,"
         "PUT_NK225_210312_19250(126484980),B,15,15,10000,0,2")
TS = 1614546470931282000


def read(text: str, **kw):  # type: ignore[no-untyped-def]
    books = BookSet()
    dec = jpx_csv.Decoder(books, **kw)
    events = []
    for batch in [*dec.feed(text.encode()), *dec.close()]:
        books.apply(batch)
        events.append(batch.copy())
    ev = np.concatenate(events) if events else np.zeros(0)
    return books, dec, ev


def test_parse_time():
    assert jpx_csv.parse_time("2021-02-28T21:07:50.931282000(1614546470931282000)") == TS
    assert jpx_csv.parse_time("2021-02-28T21:07:50.931282000") == TS
    assert jpx_csv.parse_time("2021-02-28T21:07:50Z") == TS // 10**9 * 10**9
    with pytest.raises(ValueError, match=r"^bad time '2021-02-28T21:07:50\.9312820001'$"):
        jpx_csv.parse_time("2021-02-28T21:07:50.9312820001")


def test_the_documented_add_row():
    books, dec, ev = read(f"T,1614546470\n{R_ROW}\n{A_ROW}\n")
    assert dec.instruments == {126484980: 0}
    assert books.instrument(0)["price_decimals"] == 4 and books[0].side_keys
    row = ev[0]
    assert (int(row["ts_exchange"]), int(row["action"]), int(row["side"]), int(row["price"]),
            int(row["qty"]), int(row["order_id"])) == (TS, Action.ADD, 1, 10000, 15,
                                                       7395532366336496435)
    assert books[0].best_bid() == (10000, 15)
    assert dec.counts() == {"T": 1, "R": 1, "A": 1} and dec.seconds == 1614546470
    d = dec.directory[0]
    assert (d["strike"], d["put_or_call"], d["expiration"], d["underlying"]) == \
        (19250, 2, 20210312, 500)


def test_every_tag_and_extra_columns():
    t = "2021-03-01T00:00:00.000000005(1614556800000000005)"
    b = "F_X(77)"
    lines = [
        "T,1614556800", f"S,{t},O",
        f"R,{t},77,F_X,F_X,JP1,3,JPY,0,0,0,1,0,0,0,0,0,20210312,0,0,EXTRA,MORE",
        f"M,{t},88,77,B,1", f"L,{t},{b},10,10,99990", f"O,{t},{b},M_PRE_OPEN_NO_J-NET",
        f"A,{t},1,{b},B,1,5,28000,0,2,extra", f"A,{t},1,{b},S,1,2,28010,0,2",
        f"Z,{t},{b},0,0,-2147483648,28000,28010,5,2,future_column",
        f"E,{t},1,{b},B,2,73967175152436735,0,,", f"C,{t},1,{b},S,1,73967175152437406,0,,,"
        "28010,Y,N", f"P,{t},5,3,B,4,{b},28005,,,Y,N", f"D,{t},1,{b},B", "X,unknown,tag",
        f"O,{t},{b},ZARABA",
    ]
    books, dec, ev = read("\n".join(lines) + "\n")
    acts = [Action(a).name for a in ev["action"].tolist()]
    assert acts == ["STATUS", "ADD", "ADD", "EXECUTE", "EXECUTE", "TRADE", "DELETE", "STATUS"]
    assert ev["flags"].tolist() == [Flags.QUOTING, 0, 0, 0, Flags.CROSS | Flags.NON_PRINTABLE,
                                    0, 0, 0]
    assert dec.unknown_types() == 1 and dec.counts()["X"] == 1
    assert dec.legs == {88: [{"leg": 77, "side": "B", "ratio": 1}]}
    assert dec.tick_sizes == {77: [(10, 10, 99990)]}
    assert dec.equilibrium()[77]["price"] is None and dec.equilibrium()[77]["best_bid_qty"] == 5
    assert books[0].order_count == 1 and books[0].best_ask() == (28010, 1)


def test_a_modification_is_merged_into_one_replace():
    t = "2021-03-01T00:00:00.000000005(1614556800000000005)"
    b = "F_X(77)"
    head = [f"R,{t},77,F_X,F_X,JP1,3,JPY,0,0,0,1,0,0,0,0,0,0,0,0",
            f"A,{t},1,{b},B,1,5,100,0,2", f"A,{t},2,{b},B,2,5,100,0,2"]
    modify = [f"D,{t},1,{b},B", "T,1614556801", f"A,{t},1,{b},B,1,3,100,0,2"]
    books, _, ev = read("\n".join(head + modify) + "\n")
    assert ev["action"].tolist()[-1] == Action.REPLACE
    assert int(ev["flags"][-1]) == Flags.KEEP_PRIORITY and int(ev["new_order_id"][-1]) == 1
    assert books[0].orders_at(1, 100) == [(1, 3), (2, 5)]        # kept its place
    books, _, ev = read("\n".join(head + modify) + "\n", merge_modifications=False)
    assert [Action(a).name for a in ev["action"].tolist()[-2:]] == ["DELETE", "ADD"]
    assert books[0].orders_at(1, 100) == [(2, 5), (1, 3)]        # to the back
    # a delete followed by another order's add stays a delete
    other = [f"D,{t},1,{b},B", f"A,{t},1,{b},S,1,3,101,0,2"]
    books, _, ev = read("\n".join(head + other) + "\n")
    assert [Action(a).name for a in ev["action"].tolist()[-2:]] == ["DELETE", "ADD"]
    assert books[0].order(1, side=2) == (2, 101, 3)
    # a trailing delete is flushed at close
    books, _, ev = read("\n".join([*head, f"D,{t},2,{b},B"]))
    assert books[0].order_count == 1


def test_errors_and_skips():
    t = "2021-03-01T00:00:00.000000005(1614556800000000005)"
    r = f"R,{t},77,F_X,F_X,JP1,3,JPY,0,0,0,1,0,0,0,0,0,0,0,0"
    with pytest.raises(DecodeError, match=r"f.csv: line 2 \(byte 98\): 'A' needs 7 columns"):
        read(f"{r}\nA,{t},1,F_X(77),B\n", name="f.csv")
    with pytest.raises(DecodeError, match=r"line 2 .*order id must be an integer, got .one."):
        read(f"{r}\nA,{t},one,F_X(77),B,1,5,100,0,2\n")
    with pytest.raises(DecodeError, match="line 2: 'A' line of order book 78, which no R"):
        read(f"{r}\nA,{t},1,F_X(78),B,1,5,100,0,2\n")
    with pytest.raises(DecodeError, match="has no price"):
        read(f"{r}\nA,{t},1,F_X(77),B,1,5,-2147483648,0,2\n")
    _, dec, ev = read(f"{r}\nA,{t},1,F_X(78),B,1,5,100,0,2\n"
                          f"A,{t},1,F_X(77),B,1,5,-2147483648,0,2\n", on_invalid="skip")
    assert dec.invalid == {"no_seconds": 0, "unknown_book": 1, "no_price": 1} and len(ev) == 0
    with pytest.raises(ValueError, match="framing"):
        jpx_csv.Decoder(None, framing="moldudp64")


@pytest.mark.parametrize("form", ["binaryfile", "moldudp64"])
def test_csv_and_binary_days_give_identical_books(form):
    binary = fb.replay(synth.ose_day(20_000, seed=4, form=form), "ose_itch",
                       framing=form)
    text = fb.replay(synth.ose_day(20_000, seed=4, form="csv"), "jpx_csv", chunk_size=4096)
    assert len(binary.books) == len(text.books) == 17
    assert binary.events == text.events
    for i in range(len(binary.books)):
        a, b = binary.books[i], text.books[i]
        assert binary.books.instrument(i) == text.books.instrument(i)
        assert a.order_count == b.order_count > 0
        for side in (1, 2):
            levels = list(a.levels(side))
            assert levels == list(b.levels(side))
            for price, _ in levels:       # queues, order by order
                assert a.orders_at(side, price) == b.orders_at(side, price)


def test_chunks_of_any_size():
    data = synth.ose_day(2000, seed=6, form="csv")
    _, ref, ref_ev = read(data.decode())
    for size in (1, 7, 100, 4096):
        books = BookSet()
        dec = jpx_csv.Decoder(books)
        parts = []
        for k in range(0, len(data), size):
            parts += [e.copy() for e in dec.feed(data[k:k + size])]
        parts += [e.copy() for e in dec.close()]
        assert np.concatenate(parts).tobytes() == ref_ev.tobytes()
        assert dec.bytes == len(data) and dec.messages == ref.messages
