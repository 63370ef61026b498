"""The LOBSTER codec, and a real-data golden test of the L3 OrderBook.

The golden test replays LOBSTER's public AAPL sample (``tests/data/lobster``,
see its README for origin, licence and the reconciliation rule) through the
compiled ``OrderBook`` and its twin, and checks the top 10 levels against the
orderbook file after every visible event.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict, deque

import numpy as np
import pytest

from fastbook import _pyl3
from fastbook.codecs import lobster
from fastbook.errors import DecodeError
from fastbook.events import EVENT_DTYPE, Action, Flags
from tests.helpers import DATA as TESTDATA
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import pair

DATA = TESTDATA / "lobster"
MESSAGES = DATA / "AAPL_2012-06-21_34200000_57600000_message_10_first998.csv"
ORDERBOOK = DATA / "AAPL_2012-06-21_34200000_57600000_orderbook_10_first998.csv"
LEVELS = 10
BID, ASK = 1, 2

IMPLS = pair(_pyl3, _l3)


# ---------------------------------------------------------------------------
# the reader
# ---------------------------------------------------------------------------

def test_read_messages_sample():
    ev = lobster.read_messages(MESSAGES)
    assert ev.dtype == EVENT_DTYPE and len(ev) == 999
    assert Counter(ev["action"].tolist()) == {Action.ADD: 471, Action.DELETE: 369,
                                               Action.EXECUTE: 98, Action.TRADE: 61}
    assert (ev["flags"][ev["action"] == Action.TRADE] == Flags.HIDDEN).all()
    assert (ev["flags"][ev["action"] != Action.TRADE] == 0).all()
    assert ev["sequence"].tolist() == list(range(1, 1000))
    assert (np.diff(ev["ts_exchange"]) >= 0).all()
    assert set(ev["side"].tolist()) == {BID, ASK}
    first, last = ev[0], ev[-1]
    assert first["ts_exchange"] == 34200_004241176
    assert (first["action"], first["side"], first["price"], first["qty"], first["order_id"]) \
        == (Action.ADD, BID, 5853300, 18, 16113575)
    assert last["ts_exchange"] == 34249_086375027


def test_read_messages_exact_times():
    text = ("34200.004241176,1,1,1,100,1\n"
            "34200.00426064,1,2,1,100,1\n"     # 8 decimals
            "34200.1,1,3,1,100,1\n"
            "34200,1,4,1,100,1\n"
            "34200.0000000010,1,5,1,100,1\n")  # a 10th decimal that is 0 is fine
    ev = lobster.read_messages(io.StringIO(text))
    assert ev["ts_exchange"].tolist() == [34200004241176, 34200004260640, 34200100000000,
                                          34200000000000, 34200000000001]


def test_read_messages_mapping():
    text = ("1.0,1,11,5,5853300,1\n"
            "2.0,2,11,2,5853300,1\n"
            "3.0,3,12,7,5859100,-1\n"
            "4.0,4,13,1,5859100,-1\n"
            "5.0,5,0,9,5855000,1\n"
            "6.0,6,-1,300,5856000,-1\n"
            "\n"
            "7.0,7,0,0,-1,-1\n"
            "8.0,7,0,0,0,-1\n"
            "9.0,7,-1,0,1,-1\n")
    ev = lobster.read_messages(io.StringIO(text), instrument=7)
    assert ev["action"].tolist() == [Action.ADD, Action.REDUCE, Action.DELETE, Action.EXECUTE,
                                     Action.TRADE, Action.TRADE, Action.STATUS, Action.STATUS,
                                     Action.STATUS]
    assert ev["flags"].tolist() == [0, 0, 0, 0, Flags.HIDDEN, Flags.CROSS, Flags.HALTED,
                                    Flags.QUOTING, 0]
    assert ev["side"].tolist() == [BID, BID, ASK, ASK, BID, ASK, 0, 0, 0]
    assert ev["price"].tolist() == [5853300, 5853300, 5859100, 5859100, 5855000, 5856000,
                                    0, 0, 0]
    assert ev["order_id"].tolist() == [11, 11, 12, 13, 0, 0, 0, 0, 0]
    assert ev["qty"].tolist() == [5, 2, 7, 1, 9, 300, 0, 0, 0]
    assert ev["sequence"].tolist() == [1, 2, 3, 4, 5, 6, 8, 9, 10]   # line numbers
    assert (ev["instrument"] == 7).all() and (ev["ts_receive"] == 0).all()


def test_read_messages_price_scaling():
    text = "1.0,1,1,1,5853300,1\n"
    assert lobster.read_messages(io.StringIO(text), price_decimals=6)["price"][0] == 585330000
    assert lobster.read_messages(io.StringIO(text), price_decimals=2)["price"][0] == 58533
    with pytest.raises(DecodeError, match="more decimals"):
        lobster.read_messages(io.StringIO("1.0,1,1,1,5853350,1\n"), price_decimals=2)
    with pytest.raises(ValueError,
                       match=r"^price_decimals must be an int between 0 and 18, got 19$"):
        lobster.read_messages(io.StringIO(text), price_decimals=19)


def test_read_messages_sources(tmp_path):
    text = "34200.5,1,1,18,5853300,1\r\n34200.6,3,1,18,5853300,1"
    path = tmp_path / "m.csv"
    path.write_text(text, newline="")
    binary = io.BytesIO(text.encode())
    for source in (path, str(path), io.StringIO(text), binary):
        ev = lobster.read_messages(source)
        assert ev["order_id"].tolist() == [1, 1]
        assert ev["action"].tolist() == [Action.ADD, Action.DELETE]
    assert not binary.closed                  # the caller's file is left open
    with open(path, "rb") as f:
        assert len(lobster.read_messages(f)) == 2
        assert not f.closed
    with open(path, encoding="ascii", newline="") as f:
        assert len(lobster.read_messages(f)) == 2
    assert lobster.read_messages(io.StringIO("")).shape == (0,)
    with pytest.raises(TypeError, match=r"^source must be a path or a file object, got int$"):
        lobster.read_messages(42)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("34200.1,1,1,18,5853300", "expected 6 columns"),
        ("34200.1,1,1,18,5853300,1,0", "expected 6 columns"),
        ("3.42e4,1,1,18,5853300,1", "time must be seconds"),
        ("-1.5,1,1,18,5853300,1", "time must be seconds"),
        ("34200.1234567891,1,1,18,5853300,1", "more than 9 decimals"),
        ("34200.1,8,1,18,5853300,1", "unknown event type 8"),
        ("34200.1,x,1,18,5853300,1", "type must be an integer"),
        ("34200.1,1,-1,18,5853300,1", "order id -1"),
        ("34200.1,1,1,-18,5853300,1", "size -18"),
        ("34200.1,1,1,1.5,5853300,1", "size must be an integer"),
        ("34200.1,1,1,18,585.33,1", "price must be an integer"),
        ("34200.1,1,1,18,5853300,0", "direction must be 1"),
        ("34200.1,7,0,0,2,-1", "price -1, 0 or 1"),
        ("34200.1,1,1,18,99999999999999999999,1", "int64"),
    ],
)
def test_read_messages_errors_name_the_line(line, match):
    text = "34200.0,1,9,1,5853300,1\n" + line + "\n"
    with pytest.raises(DecodeError, match=match) as info:
        lobster.read_messages(io.StringIO(text))
    assert ":2:" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_read_messages_names_the_file(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("34200.0,1,9,1,5853300,1\n\n\n34200.0,9,9,1,5853300,1\n")
    with pytest.raises(DecodeError, match=r"broken\.csv:4: unknown event type 9"):
        lobster.read_messages(path)
    path.write_bytes(b"34200.0,1,9,1,5853300,1\n\xff\n")
    with pytest.raises(DecodeError, match="ASCII"):
        lobster.read_messages(path)


def test_read_orderbook_sample():
    rows = lobster.read_orderbook(ORDERBOOK, LEVELS)
    assert rows.dtype == np.int64 and rows.shape == (999, 40)
    assert rows[0, :4].tolist() == [5859400, 200, 5853300, 18]
    top = lobster.orderbook_top(rows, LEVELS)
    assert top.shape == (999, 4, LEVELS)
    assert top[0][:, 0].tolist() == [5853300, 18, 5859400, 200]
    assert lobster.orderbook_top(rows[0], 2).shape == (1, 4, 2)


def test_orderbook_top_dummy_levels_and_scaling():
    row = [5859400, 200, 5853300, 18,
           lobster.DUMMY_ASK_PRICE, 0, 5853200, 7,
           lobster.DUMMY_ASK_PRICE, 0, lobster.DUMMY_BID_PRICE, 0]
    top = lobster.orderbook_top([row], 3)[0]
    assert top.tolist() == [[5853300, 5853200, 0], [18, 7, 0], [5859400, 0, 0], [200, 0, 0]]
    assert lobster.orderbook_top([row], 3, price_decimals=2)[0][0].tolist() == [58533, 58532, 0]
    assert lobster.orderbook_top([row], 3, price_decimals=5)[0][2].tolist() == [58594000, 0, 0]
    with pytest.raises(ValueError, match="more decimals"):
        lobster.orderbook_top([row], 3, price_decimals=0)
    with pytest.raises(ValueError, match="shape"):
        lobster.orderbook_top([row], 4)


def test_read_orderbook_errors(tmp_path):
    good = ",".join(["5859400", "200", "5853300", "18"])
    path = tmp_path / "ob.csv"
    path.write_text(f"{good}\n{good},1\n")
    with pytest.raises(DecodeError, match=r"ob\.csv:2: expected 4 columns"):
        lobster.read_orderbook(path, 1)
    path.write_text(f"{good}\n{good}\n5859400,x,5853300,18\n")
    with pytest.raises(DecodeError, match=r"ob\.csv:3: column 2 must be an integer"):
        lobster.read_orderbook(path, 1)
    with pytest.raises(DecodeError, match=":1: expected 8 columns"):
        lobster.read_orderbook(io.StringIO(good), 2)
    with pytest.raises(ValueError, match=r"^levels must be a positive int, got 0$"):
        lobster.read_orderbook(io.StringIO(good), 0)
    assert lobster.read_orderbook(io.StringIO(""), 3).shape == (0, 12)
    assert lobster.read_orderbook(io.StringIO(good), 1).tolist() == [[5859400, 200, 5853300, 18]]


def test_lobster_is_a_helper_not_a_replay_codec():
    # LOBSTER files are read and written directly; replay codecs have a Decoder or a feed
    from fastbook import codecs

    assert "lobster" not in codecs.available() and "itch50" in codecs.available()
    with pytest.raises(ValueError, match="unknown codec 'lobster'"):
        codecs.load("lobster")


# ---------------------------------------------------------------------------
# the golden replay
# ---------------------------------------------------------------------------

UNSEEN_IDS = 2**63   # synthetic ids for orders the files cannot show


class Replay:
    """Replays LOBSTER messages through an OrderBook, reconciling only unobservable depth."""

    def __init__(self, impl) -> None:
        self.book = impl.OrderBook(price_decimals=4, qty_decimals=0)
        self.unseen: dict[tuple[int, int], deque[int]] = defaultdict(deque)
        self.next_unseen = UNSEEN_IDS
        self.stats: Counter[str] = Counter()

    def take_unseen(self, side: int, price: int, qty: int, verb: str) -> None:
        """Take ``qty`` from the unseen orders at a level, oldest first."""
        queue = self.unseen[(side, price)]
        while qty:
            assert queue, f"no unseen quantity left at {side}/{price}"
            oid = queue[0]
            remaining = self.book.order(oid)[2]
            n = min(remaining, qty)
            getattr(self.book, verb)(oid, n)
            if n == remaining:
                queue.popleft()
            qty -= n

    def apply(self, ev) -> None:
        book = self.book
        action, side, price, qty, oid = (int(ev["action"]), int(ev["side"]), int(ev["price"]),
                                         int(ev["qty"]), int(ev["order_id"]))
        if action == Action.ADD:
            ahead = (book.count_at(side, price), book.qty_at(side, price))
            book.add(oid, side, price, qty)
            assert book.queue_position(oid) == ahead       # joins the back of the queue
        elif oid in book:
            # a tracked order: LOBSTER repeats its side and price, and a deletion its size
            assert book.order(oid)[:2] == (side, price)
            if action == Action.DELETE:
                assert book.order(oid)[2] == qty
                book.delete(oid)
            elif action == Action.EXECUTE:
                book.execute(oid, qty)
            else:
                book.reduce(oid, qty)
        else:
            # an order the files never showed being added (placed before 09:30 or out of view)
            self.stats["unknown_ids"] += 1
            self.take_unseen(side, price, qty, "execute" if action == Action.EXECUTE else "reduce")

    def reconcile(self, previous, row) -> None:
        """Match prices that were beyond the previous row's 10 levels to ``row``."""
        book = self.book
        for side, r in ((BID, 0), (ASK, 2)):
            def better(a, b, side=side):
                return a > b if side == BID else a < b

            if previous is None:
                boundary = None                    # nothing seen yet: all of it is unseen
            elif previous[r + 1, LEVELS - 1] == 0:
                continue                           # the whole side was visible
            else:
                boundary = int(previous[r, LEVELS - 1])
            limit = int(row[r, LEVELS - 1]) if row[r + 1, LEVELS - 1] > 0 else None
            shown = {int(p): int(q) for p, q in zip(row[r], row[r + 1], strict=True) if q > 0}
            for price in sorted(set(shown) | set(book.to_arrays(side)[0].tolist())):
                if boundary is not None and not better(boundary, price):
                    continue                       # was visible: the messages must explain it
                if limit is not None and better(limit, price):
                    continue                       # still out of view
                want, have = shown.get(price, 0), book.qty_at(side, price)
                if want > have:
                    oid = self.next_unseen
                    self.next_unseen += 1
                    book.add(oid, side, price, want - have)
                    self.unseen[(side, price)].append(oid)
                    self.stats["revealed" if previous is not None else "initial"] += 1
                elif want < have:
                    extra = have - want
                    unseen = sum(book.order(i)[2] for i in self.unseen[(side, price)])
                    n = min(unseen, extra)
                    if n:
                        self.take_unseen(side, price, n, "reduce")
                        self.stats["unseen_qty_vanished"] += n
                    extra -= n
                    while extra:                   # tracked orders cancelled out of view
                        oid, q = book.orders_at(side, price)[-1]
                        n = min(q, extra)
                        book.reduce(oid, n)
                        extra -= n
                        self.stats["tracked_qty_vanished"] += n
                        self.stats["tracked_orders_vanished"] += n == q


@pytest.fixture(scope="module")
def sample():
    events = lobster.read_messages(MESSAGES)
    tops = lobster.orderbook_top(lobster.read_orderbook(ORDERBOOK, LEVELS), LEVELS)
    return events, tops


@pytest.mark.parametrize("impl", [IMPLS[k] for k in sorted(IMPLS)], ids=sorted(IMPLS))
def test_golden_replay(sample, impl):
    events, tops = sample
    replay = Replay(impl)
    book = replay.book
    previous = None
    checked = hidden = 0
    out = np.empty((4, LEVELS), dtype=np.int64)
    for k, ev in enumerate(events):
        if ev["action"] == Action.TRADE:
            assert ev["flags"] == Flags.HIDDEN
            assert np.array_equal(tops[k], tops[k - 1])    # hidden executions change nothing
            hidden += 1
            continue
        replay.apply(ev)
        replay.reconcile(previous, tops[k])
        book.top(LEVELS, out=out)
        assert np.array_equal(out, tops[k]), (
            f"message {k + 1} ({ev}): book\n{out}\nLOBSTER row\n{tops[k]}")
        assert not book.is_crossed()
        if previous is not None:
            checked += 1
        previous = tops[k]
    assert checked == 937
    assert hidden == 61
    assert checked + 1 + hidden == len(events) == 999
    assert replay.stats == {
        "initial": 19,               # the book at 09:30:00 (row 0, less message 1)
        "unknown_ids": 9,            # messages about orders added before 09:30 or out of view
        "revealed": 11,              # levels re-entering the window with unexplained quantity
        "unseen_qty_vanished": 1160,  # ... or with less: one unseen level of 1,160 shares
        "tracked_qty_vanished": 105,  # and two tracked orders cancelled out of view
        "tracked_orders_vanished": 2,
    }
    assert book.order_count == 58
    final = tops[-1]
    assert book.bbo() == (final[0, 0], final[1, 0], final[2, 0], final[3, 0])


@pytest.mark.skipif(len(IMPLS) < 2, reason="compiled L3 book disabled or not built")
def test_golden_replay_compiled_matches_twin_order_by_order(sample):
    events, tops = sample
    books = []
    for name in ("compiled", "twin"):
        replay = Replay(IMPLS[name])
        previous = None
        for k, ev in enumerate(events):
            if ev["action"] != Action.TRADE:
                replay.apply(ev)
                replay.reconcile(previous, tops[k])
                previous = tops[k]
        books.append(replay.book)
    compiled, twin = books
    for side in (BID, ASK):
        assert list(compiled.levels(side)) == list(twin.levels(side))
        for price, _ in twin.levels(side):
            assert compiled.orders_at(side, price) == twin.orders_at(side, price)
            for oid, _ in twin.orders_at(side, price):
                assert compiled.queue_position(oid) == twin.queue_position(oid)
