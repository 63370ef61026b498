"""The LOBSTER writer (``fastbook.codecs.lobster.write``).

The writer is checked three ways: a round trip of LOBSTER's real AAPL sample
(message file field by field, orderbook file row by row), hand-built events
for every mapping, and a small, obviously correct reference writer (one
f-string per row over the pure-Python L3 twin) on seeded random streams.
"""

from __future__ import annotations

import io
import random
from collections import Counter, defaultdict, deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastbook import _pyl3
from fastbook.codecs import lobster
from fastbook.errors import ArrayError, UpdateError
from fastbook.events import EVENT_DTYPE, Action, Flags, events_from_records
from fastbook.l3 import OrderBook
from tests.helpers import DATA as TESTDATA

DATA = TESTDATA / "lobster"
MESSAGES = DATA / "AAPL_2012-06-21_34200000_57600000_message_10_first998.csv"
ORDERBOOK = DATA / "AAPL_2012-06-21_34200000_57600000_orderbook_10_first998.csv"
LEVELS = 10
BID, ASK = 1, 2
T0 = 34_200_000_000_000  # 09:30:00 in ns after midnight


def write_text(events, **kw) -> tuple[str, str]:
    m, o = io.StringIO(), io.StringIO()
    lobster.write(events, m, o, **kw)
    return m.getvalue(), o.getvalue()


def fields(line: str) -> tuple[str, int, int, int, int, int]:
    """A message row as (time text, type, order id, size, price, direction)."""
    time_text, *rest = line.split(",")
    return (time_text, *map(int, rest))  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# the real AAPL sample
# ---------------------------------------------------------------------------


def test_sample_message_file_round_trip(tmp_path):
    events = lobster.read_messages(MESSAGES)
    m, o = tmp_path / "m.csv", tmp_path / "o.csv"
    # nine messages name orders placed before 09:30 (out of the file): write them as they are
    assert lobster.write(events, m, o, on_unknown="event") == len(events) == 999
    original = MESSAGES.read_text().splitlines()
    written = m.read_text().splitlines()
    assert [fields(x) for x in written] == [fields(x) for x in original]
    # LOBSTER drops trailing zeros (34200.00426064): so does the writer, so the text is equal
    assert Counter(len(x.split(",")[0].split(".")[1]) for x in written) == {9: 889, 8: 103, 7: 7}
    assert m.read_bytes() == MESSAGES.read_bytes() + b"\n"  # only the final newline differs
    # read back, it is the same event stream
    again = lobster.read_messages(m)
    assert np.array_equal(again, events)
    # without the depth before 09:30 the book differs from LOBSTER's, but hidden executions
    # (type 5) still repeat the previous row
    rows = lobster.read_orderbook(o, LEVELS)
    assert rows.shape == (999, 40)
    hidden = np.flatnonzero(events["action"] == Action.TRADE)
    assert len(hidden) == 61
    assert (rows[hidden] == rows[hidden - 1]).all()


class UnseenDepth:
    """The depth LOBSTER's files do not show, rebuilt from the orderbook file.

    The same reconciliation as ``test_lobster_golden.py`` (see the data README),
    done *before* each message is written: levels that were beyond the 10 visible
    ones in the previous row are set to what the row after the message shows,
    less the message's own effect, with synthetic orders (ids >= 2**63).
    """

    def __init__(self, book, tops) -> None:
        self.book = book
        self.tops = tops
        self.unseen: dict[tuple[int, int], deque[int]] = defaultdict(deque)
        self.next_id = 2**63
        self.stats: Counter[str] = Counter()

    def take_unseen(self, side: int, price: int, qty: int) -> None:
        queue = self.unseen[(side, price)]
        while qty:
            oid = queue[0]
            remaining = self.book.order(oid)[2]
            n = min(remaining, qty)
            self.book.reduce(oid, n)
            if n == remaining:
                queue.popleft()
            qty -= n

    def before(self, k: int, ev, previous) -> None:
        """Prepare the book for message ``k`` (``previous``: the last visible row, or None)."""
        book = self.book
        action, side, price, qty, oid = (
            int(ev[f]) for f in ("action", "side", "price", "qty", "order_id")
        )
        delta: dict[tuple[int, int], int] = {}
        if action == Action.ADD:
            delta[(side, price)] = qty
        elif oid in book:
            o_side, o_price, o_qty = book.order(oid)
            delta[(o_side, o_price)] = -(o_qty if action == Action.DELETE else qty)
        else:  # an order from before 09:30: the writer leaves the book alone (on_unknown)
            self.stats["unknown_ids"] += 1
            self.take_unseen(side, price, qty)
        row = self.tops[k]
        for side, r in ((BID, 0), (ASK, 2)):

            def better(a, b, side=side):
                return a > b if side == BID else a < b

            if previous is None:
                boundary = None
            elif previous[r + 1, LEVELS - 1] == 0:
                continue
            else:
                boundary = int(previous[r, LEVELS - 1])
            limit = int(row[r, LEVELS - 1]) if row[r + 1, LEVELS - 1] > 0 else None
            shown = {int(p): int(q) for p, q in zip(row[r], row[r + 1], strict=True) if q > 0}
            for price in sorted(set(shown) | set(book.to_arrays(side)[0].tolist())):
                if boundary is not None and not better(boundary, price):
                    continue
                if limit is not None and better(limit, price):
                    continue
                want = shown.get(price, 0) - delta.get((side, price), 0)
                have = book.qty_at(side, price)
                if want > have:
                    book.add(self.next_id, side, price, want - have)
                    self.unseen[(side, price)].append(self.next_id)
                    self.next_id += 1
                    self.stats["revealed"] += 1
                elif want < have:
                    extra = have - want
                    unseen = sum(book.order(i)[2] for i in self.unseen[(side, price)])
                    n = min(unseen, extra)
                    if n:
                        self.take_unseen(side, price, n)
                    extra -= n
                    while extra:
                        oid, q = book.orders_at(side, price)[-1]
                        n = min(q, extra)
                        book.reduce(oid, n)
                        extra -= n
                        self.stats["tracked_vanished"] += 1


def test_sample_orderbook_file_round_trip():
    """Every row of LOBSTER's orderbook file, written by replaying its messages.

    The messages cannot say what rested before 09:30 or beyond the 10th level, so
    the test supplies that depth through ``book=`` between messages (UnseenDepth);
    what the writer computes from the messages themselves (every visible level
    the messages explain, the dummy levels, the repeated rows of hidden
    executions) must then equal LOBSTER's file exactly.
    """
    events = lobster.read_messages(MESSAGES)
    original = lobster.read_orderbook(ORDERBOOK, LEVELS)
    tops = lobster.orderbook_top(original, LEVELS)
    book = OrderBook(price_decimals=4)
    depth = UnseenDepth(book, tops)
    messages, orderbook = io.StringIO(), io.BytesIO()
    previous = None
    for k in range(len(events)):
        visible = events[k]["action"] != Action.TRADE
        if visible:
            depth.before(k, events[k], previous)
            previous = tops[k]
        assert (
            lobster.write(events[k : k + 1], messages, orderbook, book=book, on_unknown="event")
            == 1
        )
    written = lobster.read_orderbook(io.BytesIO(orderbook.getvalue()), LEVELS)
    assert written.shape == original.shape == (999, 40)
    mismatched = np.flatnonzero((written != original).any(axis=1))
    assert mismatched.tolist() == []
    assert orderbook.getvalue().decode() == ORDERBOOK.read_text() + "\n"
    assert messages.getvalue() == MESSAGES.read_text() + "\n"
    # the same reconciliation counts as the golden replay
    assert depth.stats == {"revealed": 30, "unknown_ids": 9, "tracked_vanished": 2}


# ---------------------------------------------------------------------------
# every mapping, on hand-built events
# ---------------------------------------------------------------------------


def ev(**kw):
    return {"ts_exchange": T0, **kw}


def test_add_reduce_execute_delete():
    events = events_from_records(
        [
            ev(action="add", side=BID, price=1000100, qty=50, order_id=1),
            ev(action="add", side=ASK, price=1000300, qty=20, order_id=2, ts_exchange=T0 + 1),
            ev(action="add", side=BID, price=1000100, qty=5, order_id=3, ts_exchange=T0 + 10),
            # REDUCE / EXECUTE / DELETE need only the id: price, side and size come from the book
            ev(action="reduce", qty=10, order_id=1, ts_exchange=T0 + 100),
            ev(action="execute", qty=20, order_id=2, ts_exchange=T0 + 1000),
            ev(action="delete", order_id=1, ts_exchange=T0 + 10**8),
        ]
    )
    m, o = write_text(events, levels=2)
    assert m.splitlines() == [
        "34200.0,1,1,50,1000100,1",
        "34200.000000001,1,2,20,1000300,-1",
        "34200.00000001,1,3,5,1000100,1",
        "34200.0000001,2,1,10,1000100,1",
        "34200.000001,4,2,20,1000300,-1",
        "34200.1,3,1,40,1000100,1",
    ]
    dummy = "9999999999,0,-9999999999,0"
    assert o.splitlines() == [
        f"9999999999,0,1000100,50,{dummy}",
        f"1000300,20,1000100,50,{dummy}",
        f"1000300,20,1000100,55,{dummy}",
        f"1000300,20,1000100,45,{dummy}",
        f"9999999999,0,1000100,45,{dummy}",
        f"9999999999,0,1000100,5,{dummy}",
    ]


def test_replace_is_a_deletion_then_a_submission():
    events = events_from_records(
        [
            ev(action="add", side=ASK, price=1000300, qty=20, order_id=7),
            ev(action="add", side=ASK, price=1000400, qty=30, order_id=8),
            ev(action="execute", qty=5, order_id=7),
            # new id 9 at a new price and size, same side; then a replace keeping the id
            ev(
                action="replace",
                order_id=7,
                new_order_id=9,
                price=1000500,
                qty=40,
                ts_exchange=T0 + 5,
            ),
            ev(
                action="replace",
                order_id=8,
                new_order_id=8,
                price=1000400,
                qty=10,
                ts_exchange=T0 + 6,
            ),
        ]
    )
    m, o = write_text(events, levels=3)
    assert m.splitlines()[3:] == [
        "34200.000000005,3,7,15,1000300,-1",  # the old order's remaining size, price and side
        "34200.000000005,1,9,40,1000500,-1",
        "34200.000000006,3,8,30,1000400,-1",
        "34200.000000006,1,8,10,1000400,-1",
    ]
    rows = [line.split(",") for line in o.splitlines()]
    asks = [[(r[4 * j], r[4 * j + 1]) for j in range(3)] for r in rows]
    dummy = ("9999999999", "0")
    assert asks[3] == [("1000400", "30"), dummy, dummy]  # after the deletion only
    assert asks[4] == [("1000400", "30"), ("1000500", "40"), dummy]
    assert asks[5] == [("1000500", "40"), dummy, dummy]
    assert asks[6] == [("1000400", "10"), ("1000500", "40"), dummy]


def test_trades_and_status_repeat_the_book():
    events = events_from_records(
        [
            ev(action="status", flags=Flags.QUOTING),
            ev(action="add", side=BID, price=1000100, qty=50, order_id=1),
            ev(action="trade", side=ASK, price=1000200, qty=7, flags=Flags.HIDDEN),
            ev(action="trade", side=0, price=1000150, qty=300, flags=Flags.CROSS),
            ev(action="trade", side=BID, price=1000150, qty=9, order_id=77, flags=Flags.CROSS),
            ev(action="trade", side=BID, price=1000100, qty=1, flags=Flags.AGGRESSOR_SELL),
            ev(action="status", flags=Flags.HALTED),
            ev(action="status", flags=Flags.NONE),
        ]
    )
    m, o = write_text(events, levels=1)
    assert m.splitlines() == [
        "34200.0,7,0,0,0,-1",
        "34200.0,1,1,50,1000100,1",
        "34200.0,5,0,7,1000200,-1",
        "34200.0,6,-1,300,1000150,-1",
        "34200.0,6,77,9,1000150,1",
        "34200.0,5,0,1,1000100,1",
        "34200.0,7,0,0,-1,-1",
        "34200.0,7,0,0,1,-1",
    ]
    book = "9999999999,0,1000100,50"
    assert o.splitlines() == ["9999999999,0,-9999999999,0"] + [book] * 7
    # and the reader maps them back
    back = lobster.read_messages(io.StringIO(m))
    assert (
        back["action"].tolist()
        == [Action.STATUS, Action.ADD] + [Action.TRADE] * 4 + [Action.STATUS] * 2
    )
    assert back["flags"].tolist() == [
        Flags.QUOTING,
        0,
        Flags.HIDDEN,
        Flags.CROSS,
        Flags.CROSS,
        Flags.HIDDEN,
        Flags.HALTED,
        0,
    ]


def test_times_are_exact():
    stamps = [
        0,
        1,
        34_200_004_241_176,
        34_200_004_260_640,
        34_200_500_000_000,
        57_599_999_999_999,
        86_400 * 10**9 + 7,
    ]
    events = events_from_records(
        [ev(action="status", ts_exchange=t) for t in stamps],
    )
    m, _ = write_text(events)
    assert [x.split(",")[0] for x in m.splitlines()] == [
        "0.0",
        "0.000000001",
        "34200.004241176",
        "34200.00426064",
        "34200.5",
        "57599.999999999",
        "86400.000000007",
    ]
    m, _ = write_text(events, time_format="fixed")
    assert [x.split(",")[0] for x in m.splitlines()][:5] == [
        "0.000000000",
        "0.000000001",
        "34200.004241176",
        "34200.004260640",
        "34200.500000000",
    ]


@pytest.mark.parametrize(
    ("decimals", "price"), [(0, 585), (2, 58533), (4, 5853300), (6, 585330000), (9, 585330000000)]
)
def test_prices_are_rescaled_exactly(decimals, price):
    events = events_from_records(
        [
            ev(action="add", side=ASK, price=price, qty=1, order_id=1),
            ev(action="trade", side=ASK, price=price, qty=1, flags=Flags.HIDDEN),
        ]
    )
    m, o = write_text(events, price_decimals=decimals, levels=1)
    want = {0: 5850000, 2: 5853300}.get(decimals, 5853300)
    assert [fields(x)[4] for x in m.splitlines()] == [want, want]
    assert o.splitlines()[0] == f"{want},1,-9999999999,0"


def test_unrepresentable_prices():
    events = events_from_records([ev(action="add", side=ASK, price=585330001, qty=1, order_id=1)])
    with pytest.raises(UpdateError, match=r"event 0: price 585330001 .* more than 4 decimals"):
        write_text(events, price_decimals=6)
    events = events_from_records([ev(action="add", side=BID, price=2**62, qty=1, order_id=1)])
    with pytest.raises(UpdateError, match="overflows int64"):
        write_text(events, price_decimals=2)
    # a book given as book= may hold prices too precise for LOBSTER: its levels are checked too
    book = OrderBook(price_decimals=6)
    book.add(5, BID, 1_000_001, 3)
    events = events_from_records([ev(action="add", side=ASK, price=2_000_000, qty=1, order_id=1)])
    with pytest.raises(UpdateError, match=r"event 0: a bid level at price 1000001"):
        write_text(events, price_decimals=6, book=book)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (ev(action="set_level", side=BID, price=1, qty=1), "SET_LEVEL cannot be written"),
        (ev(action="clear"), "CLEAR cannot be written"),
        (ev(action="snapshot_begin"), "SNAPSHOT_BEGIN cannot be written.*book="),
        (ev(action="snapshot_end"), "SNAPSHOT_END cannot be written"),
        (
            ev(action="delete", order_id=99),
            r"DELETE of order 99, which is not in the book; "
            r"pass the book before the stream as book=",
        ),
        (ev(action="replace", order_id=99, new_order_id=5, price=1, qty=1), "REPLACE of order 99"),
        (ev(action="replace", order_id=1, new_order_id=2, price=1, qty=1), "already in the book"),
        (ev(action="replace", order_id=1, new_order_id=3, price=1, qty=0), "qty must be >= 1"),
        (ev(action="add", side=BID, price=1, qty=1, order_id=1), "EXECUTE|ADD of order 1"),
        (ev(action="add", side=0, price=1, qty=1, order_id=9), "ADD of order 9"),
        (ev(action="execute", order_id=1, qty=11), "EXECUTE of order 1"),
        (ev(action="trade", side=0, price=1, qty=1, flags=Flags.HIDDEN), "TRADE needs side"),
        (ev(action="status", ts_exchange=-1), "not ns after midnight"),
        (ev(action="status", ts_exchange=1_700_000_000 * 10**9), "epoch"),
    ],
)
def test_errors_name_the_event(record, match, tmp_path):
    setup = [
        ev(action="add", side=BID, price=100, qty=10, order_id=1),
        ev(action="add", side=ASK, price=200, qty=10, order_id=2),
    ]
    events = events_from_records([*setup, record])
    with pytest.raises(UpdateError, match=match) as info:
        write_text(events)
    assert str(info.value).startswith("event 2: ")
    assert info.value.index == 2
    # a path being written is removed again
    m, o = tmp_path / "m.csv", tmp_path / "o.csv"
    with pytest.raises(UpdateError, match=r"^event 2: "):
        lobster.write(events, m, o)
    assert not m.exists() and not o.exists()


def test_unknown_orders_from_the_event():
    events = events_from_records(
        [
            ev(action="execute", side=ASK, price=1000300, qty=5, order_id=42),
            ev(action="delete", side=BID, price=1000100, qty=7, order_id=43),
        ]
    )
    with pytest.raises(UpdateError, match="EXECUTE of order 42"):
        write_text(events)
    m, o = write_text(events, on_unknown="event", levels=1)
    assert m.splitlines() == ["34200.0,4,42,5,1000300,-1", "34200.0,3,43,7,1000100,1"]
    assert o.splitlines() == ["9999999999,0,-9999999999,0"] * 2
    bad = events_from_records([ev(action="delete", side=0, order_id=43)])
    with pytest.raises(UpdateError, match="has side 0"):
        write_text(bad, on_unknown="event")


def test_instruments():
    events = events_from_records(
        [
            ev(action="add", side=BID, price=100, qty=1, order_id=1, instrument=3),
            ev(action="add", side=BID, price=100, qty=1, order_id=1, instrument=4),
            ev(action="clear", instrument=4),
            ev(action="delete", order_id=1, instrument=3),
            ev(action="delete", order_id=2, instrument=3),
        ]
    )
    with pytest.raises(ArrayError, match=r"2 instruments \(3, 4\).*instrument="):
        write_text(events)
    with pytest.raises(UpdateError, match=r"^event 4: DELETE of order 2") as info:
        write_text(events, instrument=3)  # the index is the position in the caller's array
    assert info.value.index == 4
    m, _ = write_text(events[:4], instrument=3)
    assert [fields(x)[1:3] for x in m.splitlines()] == [(1, 1), (3, 1)]
    assert write_text(events, instrument=5) == ("", "")  # nothing for that instrument


def test_argument_errors():
    good = events_from_records([ev(action="status")])
    with pytest.raises(ArrayError,
                       match=r"^events must have dtype fastbook\.events\.EVENT_DTYPE, got "):
        write_text(good.astype([(n, "i8") for n in EVENT_DTYPE.names]))
    with pytest.raises(ArrayError, match="events"):
        write_text([1, 2, 3])
    with pytest.raises(UpdateError, match="action 0"):
        write_text(np.zeros(1, EVENT_DTYPE))
    for bad in (
        {"levels": 0},
        {"price_decimals": 19},
        {"on_unknown": "skip"},
        {"time_format": "float"},
        {"instrument": -1},
    ):
        with pytest.raises(ValueError, match=rf"^{next(iter(bad))} must be "):
            write_text(good, **bad)
    with pytest.raises(ValueError, match="price_decimals=2"):
        write_text(good, book=OrderBook(price_decimals=2))
    with pytest.raises(ValueError, match="on_error='raise'"):
        write_text(good, book=OrderBook(price_decimals=4, on_error="skip"))
    with pytest.raises(TypeError, match="OrderBook"):
        write_text(good, book=object())
    with pytest.raises(TypeError, match="message_file"):
        lobster.write(good, 42, io.StringIO())


def test_destinations(tmp_path):
    events = random_events(500, seed=3)
    m, o = write_text(events)
    for message_file, orderbook_file in (
        (tmp_path / "m1.csv", tmp_path / "o1.csv"),
        (str(tmp_path / "m2.csv"), str(tmp_path / "o2.csv")),
    ):
        lobster.write(events, message_file, orderbook_file)
        assert Path(message_file).read_text() == m and Path(orderbook_file).read_text() == o
    binary_m, binary_o = io.BytesIO(), io.BytesIO()
    lobster.write(events, binary_m, binary_o)
    assert binary_m.getvalue().decode() == m and binary_o.getvalue().decode() == o
    assert not binary_m.closed  # the caller's file objects are left open
    with open(tmp_path / "m3.csv", "w") as fm, open(tmp_path / "o3.csv", "wb") as fo:
        lobster.write(events, fm, fo)
    assert (tmp_path / "m3.csv").read_text() == m
    assert write_text(events[:0]) == ("", "")


def test_consecutive_calls_continue_the_book():
    events = random_events(3000, seed=11)
    whole = write_text(events)
    book = OrderBook(price_decimals=4)
    m, o = io.StringIO(), io.StringIO()
    rows = 0
    for a, b in ((0, 1), (1, 777), (777, 778), (778, 2500), (2500, 3000)):
        rows += lobster.write(events[a:b], m, o, book=book)
    assert (m.getvalue(), o.getvalue()) == whole
    assert rows == len(whole[0].splitlines())
    assert book.order_count > 0  # the book after the last event


# ---------------------------------------------------------------------------
# the reference writer, on seeded random streams
# ---------------------------------------------------------------------------


def random_events(n: int, seed: int, *, decimals: int = 4) -> np.ndarray:
    """A book-consistent stream of every writable action (prices in whole cents)."""
    rnd = random.Random(seed)
    live: dict[int, list[int]] = {}
    ids: list[int] = []
    next_id = 1
    mid = 1_000_000  # dollars x 10**4
    recs = []
    ts = T0
    for _ in range(n):
        ts += rnd.choice((0, 1, 10, 999, 12_345, 10**8))
        r = rnd.random()
        if r < 0.45 or len(ids) < 5:
            side = rnd.choice((BID, ASK))
            off = rnd.randint(1, 30) * 100
            price = mid - off if side == BID else mid + off
            qty = rnd.randint(1, 500)
            recs.append(dict(action=Action.ADD, side=side, price=price, qty=qty, order_id=next_id))
            live[next_id] = [side, price, qty]
            ids.append(next_id)
            next_id += rnd.choice((1, 1, 1, 10**15))
        elif r < 0.9:
            k = rnd.randrange(len(ids))
            oid = ids[k]
            side, price, qty = live[oid]
            if r < 0.65:
                recs.append(dict(action=Action.DELETE, order_id=oid))
                ids[k] = ids[-1]
                ids.pop()
                del live[oid]
            elif r < 0.85:
                x = rnd.randint(1, qty)
                recs.append(
                    dict(action=rnd.choice((Action.EXECUTE, Action.REDUCE)), order_id=oid, qty=x)
                )
                if x == qty:
                    ids[k] = ids[-1]
                    ids.pop()
                    del live[oid]
                else:
                    live[oid][2] -= x
            else:
                new_price = price + rnd.choice((-100, 0, 100))
                new_qty = rnd.randint(1, 500)
                keep = rnd.random() < 0.3
                new_id = oid if keep else next_id
                recs.append(
                    dict(
                        action=Action.REPLACE,
                        order_id=oid,
                        new_order_id=new_id,
                        price=new_price,
                        qty=new_qty,
                    )
                )
                del live[oid]
                live[new_id] = [side, new_price, new_qty]
                ids[k] = new_id
                if not keep:
                    next_id += 1
        elif r < 0.97:
            flags = rnd.choice((Flags.HIDDEN, Flags.CROSS, Flags.NONE))
            side = 0 if flags == Flags.CROSS and rnd.random() < 0.5 else rnd.choice((BID, ASK))
            recs.append(
                dict(
                    action=Action.TRADE,
                    side=side,
                    price=mid,
                    qty=rnd.randint(0, 900),
                    flags=flags,
                    order_id=rnd.choice((0, 5)),
                )
            )
        else:
            recs.append(
                dict(
                    action=Action.STATUS,
                    flags=rnd.choice((Flags.HALTED, Flags.QUOTING, Flags.NONE)),
                )
            )
        recs[-1]["ts_exchange"] = ts
    events = events_from_records(recs, instrument=2)
    if decimals != 4:
        scale = 10 ** abs(decimals - 4)
        priced = events["action"] != Action.STATUS
        if decimals > 4:
            events["price"][priced] *= scale
        else:
            events["price"][priced] //= scale
    return events


def reference_write(events, *, levels=10, price_decimals=4, time_format="trim"):
    """One f-string per row over the pure-Python L3 twin: slow and obviously right."""
    book = _pyl3.OrderBook(price_decimals=price_decimals)

    def px(p):
        shift = price_decimals - 4
        if shift >= 0:
            assert p % 10**shift == 0
            return p // 10**shift
        return p * 10**-shift

    def when(ts):
        seconds, ns = divmod(ts, 10**9)
        frac = f"{ns:09d}"
        return (
            f"{seconds}.{frac.rstrip('0') or '0'}" if time_format == "trim" else f"{seconds}.{frac}"
        )

    def direction(side):
        return 1 if side == BID else -1

    def book_row():
        bid_p, bid_q, ask_p, ask_q = book.top(levels).tolist()
        cells = []
        for j in range(levels):
            cells += [
                px(ask_p[j]) if ask_q[j] else 9999999999,
                ask_q[j],
                px(bid_p[j]) if bid_q[j] else -9999999999,
                bid_q[j],
            ]
        return ",".join(map(str, cells))

    messages, rows = [], []

    def emit(ts, kind, oid, size, price, side_dir):
        messages.append(f"{when(ts)},{kind},{oid},{size},{price},{side_dir}")
        rows.append(book_row())

    for e in events:
        a, ts = int(e["action"]), int(e["ts_exchange"])
        side, price, qty = int(e["side"]), int(e["price"]), int(e["qty"])
        oid, flags = int(e["order_id"]), int(e["flags"])
        if a == Action.ADD:
            book.add(oid, side, price, qty)
            emit(ts, 1, oid, qty, px(price), direction(side))
        elif a in (Action.REDUCE, Action.EXECUTE, Action.DELETE):
            o_side, o_price, o_qty = book.order(oid)
            if a == Action.DELETE:
                book.delete(oid)
                emit(ts, 3, oid, o_qty, px(o_price), direction(o_side))
            else:
                (book.reduce if a == Action.REDUCE else book.execute)(oid, qty)
                emit(ts, 2 if a == Action.REDUCE else 4, oid, qty, px(o_price), direction(o_side))
        elif a == Action.REPLACE:
            o_side, o_price, o_qty = book.order(oid)
            book.delete(oid)
            emit(ts, 3, oid, o_qty, px(o_price), direction(o_side))
            book.add(int(e["new_order_id"]), o_side, price, qty)
            emit(ts, 1, int(e["new_order_id"]), qty, px(price), direction(o_side))
        elif a == Action.TRADE:
            if flags & Flags.CROSS:
                emit(ts, 6, oid or -1, qty, px(price), direction(side) if side else -1)
            else:
                emit(ts, 5, oid, qty, px(price), direction(side))
        else:
            status = -1 if flags & Flags.HALTED else 0 if flags & Flags.QUOTING else 1
            emit(ts, 7, 0, 0, status, -1)
    return "".join(m + "\n" for m in messages), "".join(r + "\n" for r in rows)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("levels", "decimals", "time_format"),
    [(10, 4, "trim"), (1, 2, "fixed"), (3, 6, "trim"), (25, 8, "trim")],
)
def test_matches_the_reference(seed, levels, decimals, time_format, monkeypatch):
    monkeypatch.setattr(lobster, "_BLOCK", 700)  # several blocks, REPLACE rows across edges
    events = random_events(2500, seed, decimals=decimals)
    assert set(events["action"].tolist()) == {
        Action.ADD,
        Action.REDUCE,
        Action.EXECUTE,
        Action.DELETE,
        Action.REPLACE,
        Action.TRADE,
        Action.STATUS,
    }
    got = write_text(events, levels=levels, price_decimals=decimals, time_format=time_format)
    assert got == reference_write(
        events, levels=levels, price_decimals=decimals, time_format=time_format
    )


# ---------------------------------------------------------------------------
# the bulk integer formatting, against str()
# ---------------------------------------------------------------------------

INT64 = st.integers(-(2**63), 2**63 - 1)


@given(st.lists(INT64, min_size=1, max_size=40))
def test_int_cells_match_str(values):
    a = np.array(values, dtype=np.int64)
    text = lobster._csv(lobster._int_cells(a, ","))
    assert text.decode() == "".join(f"{v}," for v in values)


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40), st.data())
def test_uint64_cells_match_str(values, data):
    neg = np.array(data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values))))
    text = lobster._csv(lobster._cells(np.array(values, dtype=np.uint64), neg, "\n"))
    want = "".join(f"{'-' if n else ''}{v}\n" for v, n in zip(values, neg.tolist(), strict=True))
    assert text.decode() == want


@given(st.lists(st.integers(0, 2 * 86_400 * 10**9 - 1), min_size=1, max_size=40))
def test_time_cells_match_the_reference(stamps):
    ts = np.array(stamps, dtype=np.int64)
    for fmt in ("trim", "fixed"):
        text = lobster._csv(lobster._time_cells(ts, fmt)).decode()
        want = []
        for t in stamps:
            s, ns = divmod(t, 10**9)
            frac = f"{ns:09d}"
            want.append(f"{s}.{(frac.rstrip('0') or '0') if fmt == 'trim' else frac},")
        assert text == "".join(want)
