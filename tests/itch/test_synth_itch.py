"""The synthetic ITCH 5.0 day (fastbook.synth.itch_day): deterministic, well framed, realistic
in its mix, and book-consistent for any strict FIFO book builder.

The checks here read the bytes with their own offsets from ``specs/itch.md`` section 1.2,
independently of the generator and of the ITCH codec.
"""

from __future__ import annotations

import collections
import hashlib
import io

import numpy as np
import pytest

from fastbook.codecs import _pyitch50
from fastbook.events import EVENT_DTYPE
from fastbook.l3 import BookSet
from fastbook.synth import itch_day, write_itch_day
from tests.helpers.itch import LETTER_LENGTHS

LENGTHS = LETTER_LENGTHS
H4, H930, H16, H20 = (h * 3_600_000_000_000 for h in (4, 9.5, 16, 20))
N_SYMBOLS = 50


def be(m: bytes, offset: int, size: int) -> int:
    return int.from_bytes(m[offset:offset + size], "big")


def frames(data: bytes):
    """Every message of a BinaryFILE stream, checking each length against the table."""
    p = 0
    while p < len(data):
        length = be(data, p, 2)
        m = data[p + 2:p + 2 + length]
        assert len(m) == length == LENGTHS[chr(m[0])], (p, m[:1], length)
        yield m
        p += 2 + length
    assert p == len(data)


@pytest.fixture(scope="module")
def day() -> bytes:
    return itch_day(200_000)


@pytest.fixture(scope="module")
def messages(day) -> list[bytes]:
    return list(frames(day))


# -- determinism and the file writer -----------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes():
    a = itch_day(20_000, n_symbols=8, seed=3)
    assert a == itch_day(20_000, n_symbols=8, seed=3)
    assert a != itch_day(20_000, n_symbols=8, seed=4)
    assert a != itch_day(20_000, n_symbols=9, seed=3)


def test_golden_digest():
    # The exact bytes are part of the contract (benchmarks compare runs); update this digest
    # only on purpose, when the generator's model changes.
    digest = hashlib.sha256(itch_day(5000, n_symbols=7, seed=11)).hexdigest()
    assert digest == "ee85e4de33a87844504989d3e0d88a767860ed7e42f10b60a8c8d0bd0183fc8e"


def test_default_seed():
    assert itch_day(2000, n_symbols=3) == itch_day(2000, n_symbols=3, seed=20240607)


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_write_itch_day_equals_itch_day(tmp_path, chunk):
    expected = itch_day(30_000, n_symbols=12, seed=5)
    path = tmp_path / "day.itch"
    assert write_itch_day(path, 30_000, n_symbols=12, seed=5, chunk_messages=chunk) == len(
        expected)
    assert path.read_bytes() == expected
    f = io.BytesIO()
    assert write_itch_day(f, 30_000, n_symbols=12, seed=5, chunk_messages=chunk) == len(expected)
    assert not f.closed
    assert f.getvalue() == expected
    write_itch_day(str(path), 30_000, n_symbols=12, seed=5)   # str paths too
    assert path.read_bytes() == expected


def test_argument_errors():
    assert len(list(frames(itch_day(6 + 4 * 3, n_symbols=3)))) == 18   # the minimum day
    with pytest.raises(ValueError, match="at least 6 \\+ 4 \\* n_symbols = 18"):
        itch_day(17, n_symbols=3)
    for bad in (0, -1, 10_000, True, 2.0):
        with pytest.raises(ValueError, match="n_symbols"):
            itch_day(100_000, n_symbols=bad)
    with pytest.raises(ValueError, match="n_messages"):
        itch_day(-5)
    with pytest.raises(ValueError, match="chunk_messages"):
        write_itch_day(io.BytesIO(), 1000, n_symbols=2, chunk_messages=0)
    with pytest.raises(TypeError, match="file"):
        write_itch_day(12, 1000, n_symbols=2)


# -- framing and the shape of the day --------------------------------------------------------

def test_framing_count_and_day_structure(messages):
    assert len(messages) == 200_000
    types = [chr(m[0]) for m in messages]
    system = [(i, chr(m[11])) for i, m in enumerate(messages) if m[:1] == b"S"]
    assert [code for _, code in system] == list("OSQMEC")
    assert system[0][0] == 0 and system[1][0] == 1
    assert [i for i, _ in system[-2:]] == [len(messages) - 2, len(messages) - 1]
    # directory and trading actions right after O and S, one per symbol, locates 1..n
    directory = messages[2:2 + N_SYMBOLS]
    assert [be(m, 1, 2) for m in directory] == list(range(1, N_SYMBOLS + 1))
    assert [m[11:19] for m in directory] == [f"SYM{i:04d} ".encode()
                                             for i in range(1, N_SYMBOLS + 1)]
    assert {be(m, 21, 4) for m in directory} == {100}
    actions = messages[2 + N_SYMBOLS:2 + 2 * N_SYMBOLS]
    assert [(m[:1], be(m, 1, 2), m[19:20]) for m in actions] == [
        (b"H", i, b"T") for i in range(1, N_SYMBOLS + 1)]
    assert types.count("R") == types.count("H") == N_SYMBOLS
    # a cross per symbol right after the open (S Q) and the close (S M)
    for (i, code), cross_type in ((system[2], b"O"), (system[3], b"C")):
        assert code in "QM"
        crosses = messages[i + 1:i + 1 + N_SYMBOLS]
        assert [(m[:1], be(m, 1, 2), m[39:40]) for m in crosses] == [
            (b"Q", j, cross_type) for j in range(1, N_SYMBOLS + 1)]
    assert types.count("Q") == 2 * N_SYMBOLS


def test_timestamps(messages):
    stamps = [be(m, 5, 6) for m in messages]
    assert stamps == sorted(stamps)
    assert H4 <= stamps[0] < H4 + 1_000_000
    assert H20 <= stamps[-1] < H20 + 1_000_000
    opening = next(i for i, m in enumerate(messages) if m[:1] == b"S" and m[11:12] == b"Q")
    closing = next(i for i, m in enumerate(messages) if m[:1] == b"S" and m[11:12] == b"M")
    assert stamps[opening] == H930 and stamps[closing] == H16
    # most of the book traffic is in market hours
    assert 0.8 < (closing - opening) / len(messages) < 0.9


def test_message_mix(messages):
    counts = collections.Counter(chr(m[0]) for m in messages)
    n = len(messages)
    share = {t: counts[t] / n for t in counts}
    assert set(counts) == set("SRHAFEDUXCPIQ")
    assert 0.43 <= share["A"] + share["F"] <= 0.47
    assert 0.01 <= counts["F"] / (counts["A"] + counts["F"]) <= 0.03
    assert 0.40 <= share["D"] <= 0.44
    assert 0.07 <= share["U"] <= 0.09
    assert 0.02 <= share["E"] + share["C"] <= 0.03
    assert 0.007 <= share["X"] <= 0.013
    assert 0.007 <= share["P"] <= 0.013
    assert 0.002 <= share["I"] <= 0.006
    assert counts["S"] == 6


# -- book consistency --------------------------------------------------------------------

def replay_fifo(messages):
    """A plain dict-and-list FIFO book per locate that asserts every rule of a strict builder.

    Returns the final books: locate -> (bids, asks), each price -> [refs in queue order],
    and the orders: ref -> [locate, is_bid, price, remaining].
    """
    books = collections.defaultdict(lambda: ({}, {}))
    orders: dict[int, list] = {}
    last_ref = last_match = 0

    def not_crossed(locate):
        bids, asks = books[locate]
        if bids and asks:
            assert max(bids) < min(asks), locate

    def add(locate, ref, is_bid, shares, price):
        nonlocal last_ref
        assert ref > last_ref, "order refs must be unique and increasing"
        last_ref = ref
        assert shares >= 1 and price > 0 and price % 100 == 0   # one-cent ticks
        assert 10_000 <= price <= 10_000_000                       # $1 to $1000
        bids, asks = books[locate]
        (bids if is_bid else asks).setdefault(price, []).append(ref)
        orders[ref] = [locate, is_bid, price, shares]
        not_crossed(locate)

    def take(ref, locate):
        order = orders.pop(ref)
        assert order[0] == locate, "the message's locate is the order's"
        bids, asks = books[locate]
        side = bids if order[1] else asks
        side[order[2]].remove(ref)
        if not side[order[2]]:
            del side[order[2]]
        return order

    for m in messages:
        t, locate = chr(m[0]), be(m, 1, 2)
        if t in "AF":
            add(locate, be(m, 11, 8), m[19:20] == b"B", be(m, 20, 4), be(m, 32, 4))
            assert m[24:32] == f"SYM{locate:04d} ".encode()
        elif t in "EC":
            ref, qty, match = be(m, 11, 8), be(m, 19, 4), be(m, 23, 8)
            assert match > last_match
            last_match = match
            locate_, is_bid, price, remaining = orders[ref]
            assert locate_ == locate
            bids, asks = books[locate]
            side = bids if is_bid else asks
            assert price == (max(side) if is_bid else min(side)), "execution at the best price"
            assert side[price][0] == ref, "execution of the front order of the queue"
            assert 1 <= qty <= remaining
            if t == "C":
                assert be(m, 32, 4) == price and m[31:32] in (b"Y", b"N")
            if qty == remaining:
                take(ref, locate)
            else:
                orders[ref][3] -= qty
        elif t == "X":
            ref, qty = be(m, 11, 8), be(m, 19, 4)
            assert orders[ref][0] == locate
            assert 1 <= qty < orders[ref][3], "a cancel leaves something (else it is a D)"
            orders[ref][3] -= qty
        elif t == "D":
            take(be(m, 11, 8), locate)
        elif t == "U":
            old = take(be(m, 11, 8), locate)
            add(locate, be(m, 19, 8), old[1], be(m, 27, 4), be(m, 31, 4))
        elif t in "PQ":
            match = be(m, 36, 8) if t == "P" else be(m, 31, 8)
            assert match > last_match
            last_match = match
    return books, orders


def test_fifo_replay_accepts_the_day(messages):
    books, orders = replay_fifo(messages)
    assert 1000 < len(orders) < 50_000
    assert len(books) == N_SYMBOLS
    for bids, asks in books.values():
        assert bids and asks


def test_bookset_replays_the_day_in_raise_mode(day, messages):
    events = np.zeros(len(messages), EVENT_DTYPE)
    counts = np.zeros(256, np.uint64)
    locate_map = np.full(65536, -1, np.int32)
    locate_map[1:N_SYMBOLS + 1] = np.arange(N_SYMBOLS)
    pos_after, n_events, n_messages, _, status = _pyitch50.decode_chunk(
        day, 0, 0, events, counts, locate_map=locate_map, final=True)
    assert (pos_after, n_messages, status) == (len(day), len(messages), 0)
    bs = BookSet(on_error="raise")
    for i in range(N_SYMBOLS):
        assert bs.add_instrument(f"SYM{i + 1:04d}", price_decimals=4) == i
    assert bs.apply(events[:n_events]) == n_events
    assert sum(bs.errors.values()) == 0
    # the compiled (or twin) book agrees with the independent replay, book by book
    books, orders = replay_fifo(messages)
    for i in range(N_SYMBOLS):
        book = bs[i]
        bids, asks = books[i + 1]
        assert not book.is_crossed()
        assert book.best_bid()[0] == max(bids) and book.best_ask()[0] == min(asks)
        assert book.order_count == sum(len(q) for q in (*bids.values(), *asks.values()))
    assert sum(bs[i].order_count for i in range(N_SYMBOLS)) == len(orders)
