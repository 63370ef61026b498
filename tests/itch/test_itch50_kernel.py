"""The compiled ITCH 5.0 decode kernel, ``fastbook.codecs._itch50.decode_chunk``.

Every stream here is built with ``struct`` from the message layouts of
``specs/itch.md`` section 1, independently of the kernel and of its twin, and
every output of the decode_chunk contract is asserted: the returned
``(pos_after, n_events, n_messages, n_directory, status)``, every field of every
event, ``counts`` and ``directory``.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbook.events import EVENT_DTYPE, Action, Flags
from tests.helpers import DATA
from tests.helpers.impls import require

_itch50 = require("fastbook.codecs._itch50")
decode_chunk = _itch50.decode_chunk

from tests.helpers import itch  # noqa: E402
from tests.helpers.itch import (  # noqa: E402
    FILE,
    FRAMINGS,
    LENGTHS,
    MOLD,
    QUIET_BODIES,
    SOUP,
    file_frames,
    framed,
    mold_packet,
    overhead,
    quiet,
    soup_frames,
    soup_packet,
    unknown,
)

STATUSES = {0, 1, 2, -1, -2, -3, -5}
U64 = 2**64

# -- message builders: the layouts of tests/helpers/itch.py with this file's values --------
#    (stock MEAT, timestamp 1, match numbers 555 to 558)

STOCK = "MEAT"


def add(ref, side=b"B", shares=100, price=1_000_000, locate=1, ts=1, mpid=None):
    if mpid is None:
        return itch.add(ref, side, shares, STOCK, price, locate, ts)
    return itch.add(ref, side, shares, STOCK, price, locate, ts, type_="F", mpid=mpid)


def executed(ref, shares, locate=1, ts=1):
    return itch.execute(ref, shares, 555, locate, ts)


def executed_price(ref, shares, price, printable=b"Y", locate=1, ts=1):
    return itch.execute_c(ref, shares, price, printable, 556, locate, ts)


def cancel(ref, shares, locate=1, ts=1):
    return itch.cancel(ref, shares, locate, ts)


def delete(ref, locate=1, ts=1):
    return itch.delete(ref, locate, ts)


def replace(ref, new_ref, shares, price, locate=1, ts=1):
    return itch.replace(ref, new_ref, shares, price, locate, ts)


def trade(ref, side, shares, price, locate=1, ts=1):
    return itch.trade(shares, price, side, ref, STOCK, 557, locate, ts)


def cross(shares, price, locate=1, ts=1):
    return itch.cross(shares, price, "O", STOCK, 558, locate, ts)


def halt(state, locate=1, ts=1):
    return itch.trading_action(state, STOCK, locate, ts, reason="LUDP")


def directory_msg(locate=1, ts=1) -> bytes:
    return quiet(b"R", locate, ts)


# -- decoding ---------------------------------------------------------------------------------


def ev(
    ts=1,
    instrument=1,
    action=0,
    side=0,
    flags=0,
    price=0,
    qty=0,
    order_id=0,
    new_order_id=0,
    sequence=0,
):
    """An expected event as the tuple ``events[i].tolist()`` gives."""
    return (
        ts,
        0,
        instrument,
        int(action),
        side,
        int(flags),
        price,
        qty,
        order_id,
        new_order_id,
        sequence,
    )


class Out:
    """The outputs of one call."""

    def __init__(self, result, events, counts, directory):
        self.result = result
        self.pos, self.n_events, self.n_messages, self.n_directory, self.status = result
        self.events = [tuple(e.tolist()) for e in events[: self.n_events]]
        self.all_events = events
        self.counts = counts
        self.directory = None if directory is None else directory[: self.n_directory].tolist()


def decode(buf, framing=FILE, capacity=64, directory=None, counts=None, pos=0, **kw) -> Out:
    events = np.zeros(capacity, EVENT_DTYPE)
    counts = np.zeros(256, np.uint64) if counts is None else counts
    if isinstance(directory, int):
        directory = np.full(directory, -7, np.int64)
    result = decode_chunk(buf, pos, framing, events, counts, directory=directory, **kw)
    return Out(result, events, counts, directory)


class Accumulated:
    """Outputs of a run of calls, in whole-stream coordinates."""

    def __init__(self, counts=None):
        self.events: list[tuple] = []
        self.directory: list[int] = []
        self.counts = np.zeros(256, np.uint64) if counts is None else counts
        self.n_messages = 0
        self.calls: list[tuple] = []  # the result tuple of every call
        self.result: tuple = ()  # (pos_after, n_events, n_messages, n_directory, status)

    def add(self, out: Out, base: int = 0) -> None:
        self.events += out.events
        self.directory += [d + base for d in (out.directory or [])]
        self.n_messages += out.n_messages
        self.calls.append(out.result)

    def key(self):
        return self.events, self.directory, self.counts.tolist(), self.n_messages


def decode_all(
    buf, framing=FILE, capacity=64, directory=None, pos=0, seq=0, mold_next=-1, counts=None, **kw
) -> Accumulated:
    """Call again after every stop that follows an ``R`` (status 2 with an offset reported).

    ``result`` totals the calls: the last ``pos_after`` and status, summed counts. A
    MoldUDP64 continuation expects ``first packet sequence + messages seen``.
    """
    run = Accumulated(counts)
    first = mold_next
    while True:
        out = decode(
            buf,
            framing,
            capacity,
            directory,
            counts=run.counts,
            pos=pos,
            seq=seq + run.n_messages,
            mold_next=mold_next,
            **kw,
        )
        run.add(out)
        if framing == MOLD and out.pos > pos:
            if first == -1:
                first = struct.unpack_from(">Q", buf, pos + 10)[0]
            mold_next = first + run.n_messages
        pos = out.pos
        if not (out.status == 2 and out.n_directory > 0):
            run.result = (pos, len(run.events), run.n_messages, len(run.directory), out.status)
            return run


def count_of(out) -> dict[bytes, int]:
    return {bytes([t]): int(c) for t, c in enumerate(out.counts) if c}


# ============================================================================================
# Events: every field of every emitting type
# ============================================================================================

TS = 0x4E94_914E_FFFF  # 86_399_999_999_999: the last ns of the day, all 6 bytes in use
REF = 0x0102_0304_0506_0708
BIG_REF = 0xFEDC_BA98_7654_3210


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (
            add(REF, b"B", 4_000_000_000, 0xFFFF_FFFF, locate=0xFFFF, ts=TS),
            ev(TS, 0xFFFF, Action.ADD, 1, 0, 0xFFFF_FFFF, 4_000_000_000, REF),
        ),
        (
            add(BIG_REF, b"S", 1, 2_000_000_000, locate=258),
            ev(1, 258, Action.ADD, 2, 0, 2_000_000_000, 1, BIG_REF),
        ),
        (add(7, b"X", 5, 6), ev(1, 1, Action.ADD, 0, 0, 6, 5, 7)),
        (
            add(REF, b"S", 300, 1_234_500, mpid=b"GSCO", ts=TS),
            ev(TS, 1, Action.ADD, 2, 0, 1_234_500, 300, REF),
        ),
        (
            executed(BIG_REF, 0xFFFF_FFFF, ts=TS),
            ev(TS, 1, Action.EXECUTE, 0, 0, 0, 0xFFFF_FFFF, BIG_REF),
        ),
        (
            executed_price(REF, 77, 0x7735_9400, b"Y"),
            ev(1, 1, Action.EXECUTE, 0, 0, 0x7735_9400, 77, REF),
        ),
        (
            executed_price(REF, 77, 1_000, b"N"),
            ev(1, 1, Action.EXECUTE, 0, Flags.NON_PRINTABLE, 1_000, 77, REF),
        ),
        (executed_price(REF, 77, 1_000, b"y"), ev(1, 1, Action.EXECUTE, 0, 0, 1_000, 77, REF)),
        (cancel(REF, 12_345), ev(1, 1, Action.REDUCE, 0, 0, 0, 12_345, REF)),
        (delete(BIG_REF, locate=9, ts=TS), ev(TS, 9, Action.DELETE, 0, 0, 0, 0, BIG_REF)),
        (
            replace(REF, BIG_REF, 250, 99_999),
            ev(1, 1, Action.REPLACE, 0, 0, 99_999, 250, REF, BIG_REF),
        ),
        (trade(0, b"B", 400, 1_500_000), ev(1, 1, Action.TRADE, 1, Flags.HIDDEN, 1_500_000, 400)),
        (trade(REF, b"S", 1, 2), ev(1, 1, Action.TRADE, 2, Flags.HIDDEN, 2, 1, REF)),
        (trade(REF, b" ", 1, 2), ev(1, 1, Action.TRADE, 0, Flags.HIDDEN, 2, 1, REF)),
        (cross(2**40 + 3, 1_999_999), ev(1, 1, Action.TRADE, 0, Flags.CROSS, 1_999_999, 2**40 + 3)),
        (cross(0, 0), ev(1, 1, Action.TRADE, 0, Flags.CROSS, 0, 0)),
        # Q's u64 shares keep their bit pattern in the int64 qty
        (cross(2**63, 5), ev(1, 1, Action.TRADE, 0, Flags.CROSS, 5, -(2**63))),
        (cross(U64 - 1, 5), ev(1, 1, Action.TRADE, 0, Flags.CROSS, 5, -1)),
        (halt(b"H", locate=3, ts=TS), ev(TS, 3, Action.STATUS, 0, Flags.HALTED)),
        (halt(b"P"), ev(1, 1, Action.STATUS, 0, Flags.HALTED)),
        (halt(b"Q"), ev(1, 1, Action.STATUS, 0, Flags.QUOTING)),
        (halt(b"T"), ev(1, 1, Action.STATUS, 0, 0)),
        (halt(b"Z"), ev(1, 1, Action.STATUS, 0, 0)),
        (halt(b"H", locate=0), ev(1, 0, Action.STATUS, 0, Flags.HALTED)),
    ],
    ids=lambda v: repr(v[:1]) if isinstance(v, bytes) else None,
)
@pytest.mark.parametrize("framing", FRAMINGS)
def test_every_event_field(framing, msg, expected):
    buf = framed(framing, [msg])
    out = decode(buf, framing, seq=41, directory=4, final=True)
    assert out.result == (len(buf), 1, 1, 0, 0)
    assert out.events == [(*expected[:-1], 41)]
    assert count_of(out) == {msg[:1]: 1}
    # rows after the last event are not touched
    assert out.all_events[1:].tobytes() == bytes(63 * 64)


@pytest.mark.parametrize("t", sorted(QUIET_BODIES))
@pytest.mark.parametrize("framing", FRAMINGS)
def test_types_without_events_are_counted(framing, t):
    msg = quiet(t)
    assert len(msg) == LENGTHS[t]
    buf = framed(framing, [msg, delete(5)])
    out = decode(buf, framing, seq=10)
    assert out.result == (len(buf), 1, 2, 0, 0)
    assert out.events == [ev(1, 1, Action.DELETE, order_id=5, sequence=11)]
    assert count_of(out) == ({t: 1, b"D": 1} if t != b"D" else {b"D": 2})


@pytest.mark.parametrize(
    ("t", "length"),
    [
        (b"Z", 1),
        (b"Z", 3),
        (b"\x00", 12),
        (b"\xff", 255),
        (b"a", 36),
        (b"T", 19),
        (b"M", 1000),
    ],
)
@pytest.mark.parametrize("framing", FRAMINGS)
def test_unknown_types_are_skipped_by_length_and_counted(framing, t, length):
    msg = unknown(t, length)
    buf = framed(framing, [add(1), msg, msg, delete(1)])
    out = decode(buf, framing, seq=100, final=True)
    assert out.result == (len(buf), 2, 4, 0, 0)
    assert out.events == [
        ev(1, 1, Action.ADD, 1, 0, 1_000_000, 100, 1, sequence=100),
        ev(1, 1, Action.DELETE, order_id=1, sequence=103),
    ]
    assert count_of(out) == {b"A": 1, t: 2, b"D": 1}


def test_counts_are_incremented_not_reset():
    counts = np.arange(256, dtype=np.uint64) * np.uint64(1000)
    buf = file_frames([add(1), add(2), delete(1), quiet(b"S")])
    out = decode(buf, counts=counts)
    assert out.status == 0
    want = np.arange(256, dtype=np.uint64) * np.uint64(1000)
    want[ord("A")] += 2
    want[ord("D")] += 1
    want[ord("S")] += 1
    assert counts.tolist() == want.tolist()


def test_sequence_numbers_count_every_message():
    msgs = [quiet(b"S"), add(1), unknown(b"Z", 4), directory_msg(), cancel(1, 5), delete(1)]
    run = decode_all(file_frames(msgs), seq=7, directory=8)
    assert [e[-1] for e in run.events] == [8, 11, 12]
    assert run.result[1:] == (3, 6, 1, 0)
    # the first call stopped right after the R (message 10), the second went on at 11
    assert run.calls == [(14 + 38 + 6 + 41, 1, 4, 1, 2), (run.result[0], 2, 2, 0, 0)]


def test_sequence_wraps_at_2_64():
    out = decode(file_frames([delete(1), delete(2)]), seq=U64 - 1)
    assert [e[-1] for e in out.events] == [U64 - 1, 0]


# ============================================================================================
# BinaryFILE
# ============================================================================================


def test_binaryfile_empty_and_start_positions():
    assert decode(b"").result == (0, 0, 0, 0, 0)
    assert decode(b"", final=True).result == (0, 0, 0, 0, 0)
    buf = file_frames([delete(1), delete(2), delete(3)])
    assert decode(buf, pos=len(buf), final=True).result == (len(buf), 0, 0, 0, 0)
    out = decode(buf, pos=21, seq=1)
    assert out.result == (63, 2, 2, 0, 0)
    assert [e[8] for e in out.events] == [2, 3]


def test_binaryfile_zero_length_prefix():
    buf = file_frames([delete(1), delete(2)]) + b"\x00\x00" + file_frames([delete(3)])
    out = decode(buf, final=True)
    assert out.result == (42, 2, 2, 0, -2)
    assert [e[8] for e in out.events] == [1, 2]
    # a zero prefix that is the last thing in the buffer is still -2, final or not
    assert decode(buf[:44]).result == (42, 2, 2, 0, -2)
    assert decode(b"\x00\x00", pos=0).result == (0, 0, 0, 0, -2)


@pytest.mark.parametrize(
    "bad",
    [
        struct.pack(">H", 35) + add(1)[:35],  # A one byte short
        struct.pack(">H", 37) + add(1) + b"!",  # A one byte long
        struct.pack(">H", 36) + b"D" + add(1)[1:],  # 36 bytes typed D
        struct.pack(">H", 1) + b"S",  # a known type, nothing else
    ],
)
def test_binaryfile_length_not_matching_the_type(bad):
    buf = file_frames([delete(1)]) + bad + file_frames([delete(2)])
    out = decode(buf, final=True)
    assert out.result == (21, 1, 1, 0, -1)
    assert count_of(out) == {b"D": 1}


def test_binaryfile_incomplete_frames():
    buf = file_frames([delete(1), add(2)])
    for cut in range(22, len(buf)):  # inside the second frame
        assert decode(buf[:cut]).result == (21, 1, 1, 0, 0), cut
        assert decode(buf[:cut], final=True).result == (21, 1, 1, 0, -3), cut
    assert decode(buf[:21], final=True).result == (21, 1, 1, 0, 0)
    assert decode(buf[:1]).result == (0, 0, 0, 0, 0)
    assert decode(buf[:1], final=True).result == (0, 0, 0, 0, -3)
    # incomplete wins over a length that would not match the type: the frame is not there yet
    torn = file_frames([delete(1)]) + struct.pack(">H", 500) + add(2)
    assert decode(torn, final=True).result == (21, 1, 1, 0, -3)


# ============================================================================================
# MoldUDP64
# ============================================================================================


def mold_stream():
    """Packets 10 (3 messages), heartbeat 13, 13 (2 messages), end of session 15."""
    p1 = mold_packet(10, [add(1, locate=2), directory_msg(locate=5), delete(1, locate=2)])
    hb = mold_packet(13, [])
    p2 = mold_packet(13, [quiet(b"S"), replace(1, 2, 3, 4)])
    end = mold_packet(15, [], count=0xFFFF)
    return p1, hb, p2, end


def test_mold_packets_heartbeats_and_end_of_session():
    p1, hb, p2, end = mold_stream()
    buf = p1 + hb + p2 + end
    out = decode(buf, MOLD, directory=4, mold_next=10, seq=0, final=True)
    # the packet holding the R is consumed whole, then the call stops
    assert out.result == (len(p1), 2, 3, 1, 2)
    assert out.directory == [20 + 2 + 36 + 2]
    rest = decode(
        buf, MOLD, directory=4, pos=len(p1), mold_next=13, seq=3, final=True, counts=out.counts
    )
    assert rest.result == (len(buf), 1, 2, 0, 0)
    assert out.events + rest.events == [
        ev(1, 2, Action.ADD, 1, 0, 1_000_000, 100, 1, sequence=0),
        ev(1, 2, Action.DELETE, order_id=1, sequence=2),
        ev(1, 1, Action.REPLACE, 0, 0, 4, 3, 1, 2, sequence=4),
    ]
    assert count_of(out) == {b"A": 1, b"R": 1, b"D": 1, b"S": 1, b"U": 1}
    # without a directory the R is counted only, and nothing stops the call
    assert decode(buf, MOLD, mold_next=10, final=True).result == (len(buf), 3, 5, 0, 0)
    # heartbeats and end-of-session packets alone: consumed, nothing counted
    out = decode(hb + hb + mold_packet(13, [], 0xFFFF), MOLD, mold_next=13, final=True)
    assert out.result == (60, 0, 0, 0, 0)
    assert not count_of(out)


def test_mold_gap_against_mold_next():
    p1, hb, p2, end = mold_stream()
    buf = p1 + hb + p2 + end
    assert decode(buf, MOLD, mold_next=9).result == (0, 0, 0, 0, -5)
    assert decode(buf, MOLD, mold_next=11).result == (0, 0, 0, 0, -5)
    # -1 accepts the first packet; later packets must follow on
    assert decode(buf, MOLD, mold_next=-1).result == (len(buf), 3, 5, 0, 0)
    # restarting at a packet with its own number (or -1) tolerates a gap
    assert decode(buf, MOLD, pos=len(p1 + hb), mold_next=13).status == 0
    assert decode(buf, MOLD, pos=len(p1 + hb), mold_next=-1).status == 0
    assert decode(buf, MOLD, pos=len(p1 + hb), mold_next=14).result == (len(p1 + hb), 0, 0, 0, -5)


@pytest.mark.parametrize(
    ("packets", "stop"),
    [
        ([mold_packet(1, [delete(1)]), mold_packet(3, [delete(2)])], 1),  # one too far
        ([mold_packet(1, [delete(1)]), mold_packet(1, [delete(2)])], 1),  # repeated
        ([mold_packet(1, [delete(1)]), mold_packet(1, [])], 1),  # heartbeat behind
        ([mold_packet(1, [delete(1)]), mold_packet(5, [], 0xFFFF)], 1),  # end of session ahead
        ([mold_packet(1, []), mold_packet(2, [delete(1)])], 1),  # heartbeat said 1
        ([mold_packet(1, [delete(1), delete(2)]), mold_packet(2, [delete(3)])], 1),
    ],
)
def test_mold_gap_inside_a_call(packets, stop):
    buf = b"".join(packets)
    start = sum(len(p) for p in packets[:stop])
    first = decode(b"".join(packets[:stop]), MOLD)
    out = decode(buf, MOLD)
    assert out.result == (start, first.n_events, first.n_messages, 0, -5)


def test_mold_expected_number_overflowing_uint64_is_a_gap():
    p = mold_packet(U64 - 2, [delete(1), delete(2)])
    out = decode(p + mold_packet(0, [delete(3)]), MOLD, mold_next=U64 - 2)
    assert out.result == (len(p), 2, 2, 0, -5)
    assert decode(p + mold_packet(U64 - 1, [], 0), MOLD).result == (len(p), 2, 2, 0, -5)
    assert decode(mold_packet(U64 - 1, []), MOLD, mold_next=U64 - 1).status == 0


def test_mold_packet_is_consumed_whole_or_not_at_all():
    p1, hb, p2, end = mold_stream()
    buf = p1 + hb + p2 + end
    # incomplete: the packet header, then any block of the packet
    for cut in range(len(p1 + hb) + 1, len(p1 + hb + p2)):
        assert decode(buf[:cut], MOLD).result == (len(p1 + hb), 2, 3, 0, 0), cut
        assert decode(buf[:cut], MOLD, final=True).result == (len(p1 + hb), 2, 3, 0, -3), cut
    for cut in range(1, len(p1)):
        assert decode(buf[:cut], MOLD).result == (0, 0, 0, 0, 0)
        assert decode(buf[:cut], MOLD, final=True).result == (0, 0, 0, 0, -3)


def test_mold_packet_not_fitting_capacity():
    p1, hb, p2, end = mold_stream()
    buf = p1 + hb + p2 + end
    # p1 needs 2 events: with 1 free slot nothing of it is consumed
    out = decode(buf, MOLD, capacity=1)
    assert out.result == (0, 0, 0, 0, 1)
    assert out.all_events.tobytes() == bytes(64)
    # 2 slots take p1 and the heartbeat, then stop before p2
    assert decode(buf, MOLD, capacity=2).result == (len(p1 + hb), 2, 3, 0, 1)
    # the directory slot is per packet too; after the packet with the R the call stops
    assert decode(buf, MOLD, directory=0).result == (0, 0, 0, 0, 2)
    assert decode(buf, MOLD, directory=1).result == (len(p1), 2, 3, 1, 2)
    two = mold_packet(1, [directory_msg(1), directory_msg(2)])
    assert decode(two, MOLD, directory=1).result == (0, 0, 0, 0, 2)
    assert decode(two, MOLD, directory=2).result == (len(two), 0, 2, 2, 2)
    # both short: events first
    assert decode(buf, MOLD, capacity=1, directory=0).result == (0, 0, 0, 0, 1)


@pytest.mark.parametrize(
    ("block", "status"),
    [
        (b"\x00\x00", -2),
        (struct.pack(">H", 18) + delete(3)[:18], -1),
        (struct.pack(">H", 20) + delete(3) + b"?", -1),
    ],
)
def test_mold_bad_block_points_at_the_packet(block, status):
    good = mold_packet(1, [delete(1)])
    bad = (
        b"SESSION001"
        + struct.pack(">QH", 2, 3)
        + file_frames([delete(2)])
        + block
        + file_frames([delete(4)])
    )
    out = decode(good + bad, MOLD, final=True)
    assert out.result == (len(good), 1, 1, 0, status)
    assert count_of(out) == {b"D": 1}


def test_mold_bad_block_before_an_incomplete_one():
    # blocks are checked in order: the bad second block is reported though the third is cut
    bad = (
        b"SESSION001"
        + struct.pack(">QH", 2, 3)
        + file_frames([delete(2)])
        + b"\x00\x00"
        + file_frames([delete(4)])[:5]
    )
    assert decode(bad, MOLD).result == (0, 0, 0, 0, -2)
    # and a gap is reported as soon as the header is there
    assert decode(mold_packet(7, [delete(1)])[:21], MOLD, mold_next=6).result == (0, 0, 0, 0, -5)


# ============================================================================================
# SoupBinTCP
# ============================================================================================


def test_soup_non_sequenced_packets_are_skipped_and_not_counted():
    others = b"".join(
        soup_packet(k, p)
        for k, p in [
            (b"A", b"SESSION001" + b"0" * 20),
            (b"H", b""),
            (b"+", b"debug text"),
            (b"Z", b""),
            (b"J", b"A"),
            (b"L", b"user" * 10),
            (b"U", b""),
            (b"R", b""),
            (b"O", b""),
            (b"\x00", add(1)),
            (b"s", delete(1)),
        ]
    )
    buf = others + soup_frames([delete(9)]) + others
    out = decode(buf, SOUP, seq=3, final=True)
    assert out.result == (len(buf), 1, 1, 0, 0)
    assert out.events == [ev(1, 1, Action.DELETE, order_id=9, sequence=3)]
    assert count_of(out) == {b"D": 1}


def test_soup_statuses():
    head = soup_frames([delete(1)])
    assert decode(head + b"\x00\x00", SOUP).result == (22, 1, 1, 0, -2)
    assert decode(head + soup_packet(b"S"), SOUP).result == (22, 1, 1, 0, -2)  # empty payload
    assert decode(head + soup_packet(b"S", delete(2)[:18]), SOUP).result == (22, 1, 1, 0, -1)
    assert decode(head + soup_packet(b"S", add(2) + b"x"), SOUP).result == (22, 1, 1, 0, -1)
    for cut in range(len(head) + 1, 2 * len(head)):
        assert decode((head + head)[:cut], SOUP).result == (22, 1, 1, 0, 0)
        assert decode((head + head)[:cut], SOUP, final=True).result == (22, 1, 1, 0, -3)
    # a non-S packet is also a frame that must be complete
    assert decode(head + soup_packet(b"H", b"xyz")[:4], SOUP, final=True).status == -3


# ============================================================================================
# Capacity statuses, locate_map, directory
# ============================================================================================


@pytest.mark.parametrize("framing", FRAMINGS)
def test_events_full(framing):
    msgs = [add(1), quiet(b"S"), add(2), delete(1)]
    buf = framed(framing, msgs)
    lengths = [overhead(framing) + len(m) for m in msgs]
    out = decode(buf, framing, capacity=1)
    # the S after the first add needs no event slot, so it is consumed too
    assert out.result == (sum(lengths[:2]), 1, 2, 0, 1)
    assert decode(buf, framing, capacity=0).result == (0, 0, 0, 0, 1)
    assert decode(framed(framing, [quiet(b"S")]), framing, capacity=0).status == 0
    out = decode(buf, framing, capacity=3)
    assert out.result == (len(buf), 3, 4, 0, 0)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_directory_offsets_and_stops(framing):
    msgs = [directory_msg(1), add(1), directory_msg(2), directory_msg(3)]
    buf = framed(framing, msgs)
    starts = np.cumsum([0] + [overhead(framing) + len(m) for m in msgs]).tolist()
    at = [s + overhead(framing) for s in starts]  # offsets of the type bytes
    # every frame (packet) holding an R ends the call with status 2, right after it
    out = decode(buf, framing, directory=2)
    assert out.result == (starts[1], 0, 1, 1, 2)
    assert out.directory == [at[0]]
    out = decode(buf, framing, directory=2, pos=starts[1], mold_next=2)
    assert out.result == (starts[3], 1, 2, 1, 2)
    assert out.directory == [at[2]]
    out = decode(buf, framing, directory=2, pos=starts[3], mold_next=4, final=True)
    assert out.result == (len(buf), 0, 1, 1, 2)  # even when it was the last frame
    assert out.directory == [at[3]]
    assert decode(buf, framing, pos=len(buf), directory=2, final=True).status == 0
    run = decode_all(buf, framing, directory=2, final=True)
    assert run.result == (len(buf), 1, 4, 3, 0)
    assert [c[-1] for c in run.calls] == [2, 2, 2, 0]
    assert [buf[o : o + 1] for o in run.directory] == [b"R"] * 3
    # full: stop before the R
    assert decode(buf, framing, directory=0).result == (0, 0, 0, 0, 2)
    assert decode(buf, framing, directory=0, pos=starts[1], mold_next=2).result == (
        starts[2],
        1,
        1,
        0,
        2,
    )
    # None: R is consumed and counted, not reported, and does not stop the call
    out = decode(buf, framing)
    assert out.result == (len(buf), 1, 4, 0, 0)
    assert count_of(out) == {b"R": 3, b"A": 1}
    # a strided directory array receives the offsets in place
    d = np.full(6, -1, np.int64)
    out = decode(buf, framing, directory=d[::2], pos=starts[1], mold_next=2)
    assert d.tolist() == [at[2], -1, -1, -1, -1, -1]


def test_stop_after_a_directory_lets_the_caller_map_the_locate():
    # the new stock's orders follow its R in the same chunk: they are routed by the map
    # as the caller updated it after the stop
    locate_map = np.full(65536, -1, np.int32)
    buf = file_frames([directory_msg(7), add(1, locate=7), delete(1, locate=7)])
    out = decode(buf, directory=4, locate_map=locate_map)
    assert out.result == (41, 0, 1, 1, 2)
    locate_map[7] = 42
    out = decode(buf, pos=out.pos, seq=1, directory=4, locate_map=locate_map, final=True)
    assert out.result == (len(buf), 2, 2, 0, 0)
    assert [(e[2], e[3], e[10]) for e in out.events] == [(42, 1, 1), (42, 4, 2)]


def test_locate_map_routes_and_drops():
    locate_map = np.full(65536, -1, np.int32)
    locate_map[5] = 1000
    locate_map[6] = 0
    locate_map[65535] = 2**31 - 1
    locate_map[8] = -7  # any negative value drops
    msgs = [
        add(1, locate=5),
        add(2, locate=6),
        add(3, locate=7),
        directory_msg(7),
        halt(b"H", locate=8),
        delete(4, locate=65535),
        add(5, locate=8),
    ]
    out = decode(file_frames(msgs), locate_map=locate_map)
    assert out.result[1:] == (3, 7, 0, 0)
    assert [(e[2], e[8], e[10]) for e in out.events] == [(1000, 1, 0), (0, 2, 1), (2**31 - 1, 4, 5)]
    assert count_of(out) == {b"A": 4, b"R": 1, b"H": 1, b"D": 1}
    # dropped messages need no event slot: with none free they are still consumed
    out = decode(
        file_frames([add(3, locate=7), add(9, locate=5)]), capacity=0, locate_map=locate_map
    )
    assert out.result == (38, 0, 1, 0, 1)
    # a read-only, non-contiguous map works the same
    wide = np.zeros((65536, 2), np.int32)
    wide[:, 0] = locate_map
    wide.flags.writeable = False
    out2 = decode(file_frames(msgs), locate_map=wide[:, 0])
    assert [(e[2], e[8]) for e in out2.events] == [(1000, 1), (0, 2), (2**31 - 1, 4)]


# ============================================================================================
# Buffers
# ============================================================================================

STREAM = file_frames([add(1), directory_msg(), replace(1, 2, 3, 4), quiet(b"I"), delete(2)])


def want_stream(buf) -> None:
    run = decode_all(buf, directory=2, final=True)
    assert run.calls == [(79, 1, 2, 1, 2), (len(STREAM), 2, 3, 0, 0)]
    assert [e[3] for e in run.events] == [1, 5, 4]
    assert run.directory == [40]


def test_read_only_buffers(tmp_path):
    ro = np.frombuffer(STREAM, np.uint8)
    assert not ro.flags.writeable
    for buf in (STREAM, bytearray(STREAM), memoryview(STREAM), ro, memoryview(b"xx" + STREAM)[2:]):
        want_stream(buf)
    path = tmp_path / "stream.itch"
    path.write_bytes(STREAM)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        want_stream(mm)
        want_stream(memoryview(mm))
    # any C-contiguous buffer is read as bytes
    assert len(STREAM) == 27 * 7
    want_stream(np.frombuffer(STREAM, np.int8).reshape(27, 7))


def test_buffers_above_the_nogil_threshold():
    msgs = [add(i, locate=i % 7) for i in range(300)] + [delete(i) for i in range(300)]
    buf = file_frames(msgs)
    assert len(buf) > 4096
    out = decode(buf, capacity=600)
    assert out.result == (len(buf), 600, 600, 0, 0)
    assert [e[8] for e in out.events] == list(range(300)) * 2
    assert [e[2] for e in out.events[:300]] == [i % 7 for i in range(300)]


def _guarded(data: bytes):
    """``data`` ending exactly where an unreadable page starts (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None, None
    page = mmap.PAGESIZE
    size = -(-len(data) // page) * page
    mm = mmap.mmap(-1, size + page)
    libc = ctypes.CDLL(None, use_errno=True)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if libc.mprotect(ctypes.c_void_p(base + size), page, 0) != 0:
        return None, None
    mm[size - len(data) : size] = data
    return mm, memoryview(mm)[size - len(data) : size]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_no_read_past_the_end_of_buf(framing):
    # every emitting type as the very last bytes before a PROT_NONE page
    for msg in [
        add(1),
        add(1, mpid=b"ABCD"),
        executed(1, 2),
        executed_price(1, 2, 3, b"N"),
        cancel(1, 2),
        delete(1),
        replace(1, 2, 3, 4),
        trade(1, b"S", 2, 3),
        cross(5, 6),
        halt(b"Q"),
    ]:
        data = framed(framing, [delete(7), msg])
        mm, view = _guarded(data)
        if mm is None:
            pytest.skip("needs mmap + mprotect")
        counts = np.zeros(256, np.uint64)
        events = np.zeros(4, EVENT_DTYPE)
        try:
            assert decode_chunk(view, 0, framing, events, counts)[1:] == (2, 2, 0, 0)
            assert events[1]["action"] != 0
            for cut in range(1, len(data)):  # and every truncation of it
                decode_chunk(view[cut:], 0, framing, events, counts, final=True)
        finally:
            view.release()
            del view
            mm.close()


# ============================================================================================
# Argument checks
# ============================================================================================


def _args():
    return {
        "buf": STREAM,
        "pos": 0,
        "framing": 0,
        "events": np.zeros(8, EVENT_DTYPE),
        "counts": np.zeros(256, np.uint64),
    }


BAD_ARGS = [
    ({"framing": 3}, ValueError, "framing must be 0"),
    ({"framing": -1}, ValueError, "framing must be 0"),
    ({"framing": "0"}, TypeError, "framing must be an integer"),
    ({"framing": 1.0}, TypeError, "framing must be an integer"),
    ({"pos": -1}, ValueError, "pos must be in"),
    ({"pos": len(STREAM) + 1}, ValueError, "pos must be in"),
    ({"pos": 2**70}, ValueError, "pos must be in"),
    ({"pos": 1.0}, TypeError, "pos must be an integer"),
    ({"pos": True}, TypeError, "pos must be an integer"),
    ({"buf": "text"}, TypeError, "buf must be a bytes-like"),
    ({"buf": [1, 2]}, TypeError, "buf must be a bytes-like"),
    ({"buf": np.zeros((4, 4), np.uint8)[:, 1]}, ValueError, "buf must be a C-contiguous"),
    ({"events": np.zeros(8, np.int64)}, TypeError, "events must have dtype"),
    ({"events": [0] * 8}, TypeError, "events must be a numpy array"),
    ({"events": np.zeros((2, 4), EVENT_DTYPE)}, ValueError, "events must be 1-dimensional"),
    ({"events": np.zeros(8, EVENT_DTYPE)[::2]}, ValueError, "events must be C-contiguous"),
    ({"counts": np.zeros(255, np.uint64)}, ValueError, "counts must have length 256"),
    ({"counts": np.zeros(256, np.int64)}, TypeError, "counts must have dtype uint64"),
    ({"counts": np.zeros(256, ">u8")}, TypeError, "counts must have dtype uint64"),
    ({"counts": np.zeros((256, 1), np.uint64)}, ValueError, "counts must be 1-dimensional"),
    ({"counts": None}, TypeError, "counts must be a numpy array"),
    ({"locate_map": np.zeros(65535, np.int32)}, ValueError, "locate_map must have length"),
    ({"locate_map": np.zeros(65536, np.int64)}, TypeError, "locate_map must have dtype int32"),
    ({"locate_map": np.zeros(65536, np.uint32)}, TypeError, "locate_map must have dtype"),
    ({"directory": np.zeros(4, np.int32)}, TypeError, "directory must have dtype int64"),
    ({"directory": np.zeros((2, 2), np.int64)}, ValueError, "directory must be 1-dimensional"),
    ({"directory": [0, 0]}, TypeError, "directory must be a numpy array"),
    ({"seq": -1}, ValueError, "seq must be"),
    ({"seq": U64}, ValueError, "seq must be"),
    ({"seq": 1.5}, TypeError, "seq must be an integer"),
    ({"mold_next": -2}, ValueError, "mold_next must be"),
    ({"mold_next": U64}, ValueError, "mold_next must be"),
    ({"mold_next": None}, TypeError, "mold_next must be an integer"),
]


@pytest.mark.parametrize(
    ("change", "exc", "match"),
    BAD_ARGS,
    ids=[f"{k}-{i}" for i, (c, _, _) in enumerate(BAD_ARGS) for k in c],
)
def test_bad_arguments_are_refused_before_decoding(change, exc, match):
    change = dict(change)
    args = _args()
    kwargs = {
        k: change.pop(k) for k in ("locate_map", "directory", "seq", "mold_next") if k in change
    }
    args.update(change)
    with pytest.raises(exc, match=match):
        decode_chunk(*args.values(), **kwargs)
    if isinstance(args["events"], np.ndarray) and args["events"].dtype == EVENT_DTYPE:
        assert not args["events"].tobytes().strip(b"\x00")
    if isinstance(args["counts"], np.ndarray):
        assert not args["counts"].any()


@pytest.mark.parametrize("name", ["events", "counts", "directory"])
def test_read_only_outputs_are_refused(name):
    args = _args()
    kwargs = {"directory": np.zeros(4, np.int64)}
    target = kwargs if name == "directory" else args
    target[name].flags.writeable = False
    with pytest.raises(ValueError, match=f"{name} must be writeable"):
        decode_chunk(*args.values(), **kwargs)


def test_argument_error_types_are_fastbook_errors():
    from fastbook.errors import ArrayError

    with pytest.raises(ArrayError,
                       match=r"^events must have dtype fastbook\.events\.EVENT_DTYPE, got int64$"):
        decode_chunk(STREAM, 0, 0, np.zeros(8, np.int64), np.zeros(256, np.uint64))


def test_numpy_integers_are_accepted():
    out = decode_chunk(
        STREAM,
        np.int64(0),
        np.uint8(0),
        np.zeros(8, EVENT_DTYPE),
        np.zeros(256, np.uint64),
        seq=np.uint64(5),
        mold_next=np.int32(-1),
    )
    assert out == (len(STREAM), 3, 5, 0, 0)


# ============================================================================================
# Chunk boundaries and capacity restarts
# ============================================================================================


def mixed_messages():
    return [
        quiet(b"S"),
        directory_msg(3),
        add(1, locate=3),
        add(2, b"S", locate=4),
        unknown(b"Z", 5),
        executed(1, 10, locate=3),
        executed_price(2, 5, 77, b"N", 4),
        cancel(1, 1, locate=3),
        quiet(b"I"),
        replace(2, 3, 9, 99, locate=4),
        trade(0, b"B", 1, 2),
        cross(3, 4),
        halt(b"H", locate=4),
        directory_msg(4),
        delete(1, locate=3),
        delete(3, locate=4),
    ]


def mixed_stream(framing: int) -> bytes:
    msgs = mixed_messages()
    if framing == FILE:
        return file_frames(msgs)
    if framing == SOUP:
        extra = soup_packet(b"H")
        return extra + b"".join(soup_packet(b"S", m) + extra for m in msgs)
    # packets of 1 to 3 messages, with heartbeats between
    out, seq, i = [], 100, 0
    for size in (3, 1, 2, 3, 1, 2, 3, 1):
        out.append(mold_packet(seq, msgs[i : i + size]))
        seq += size
        i += size
        out.append(mold_packet(seq, []))
    out.append(mold_packet(seq, [], 0xFFFF))
    return b"".join(out)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("tail", [b"", bytes(24)], ids=["clean", "zeros-after"])
def test_every_split_point_gives_the_same_result(framing, tail):
    buf = mixed_stream(framing) + tail
    whole = decode_all(buf, framing, directory=16, final=True, mold_next=100)
    assert whole.n_messages == 16
    assert whole.result[-1] == (0 if not tail else -5 if framing == MOLD else -2)
    assert [c[-1] for c in whole.calls].count(2) == 2  # a stop after each of the two Rs
    for k in range(len(buf) + 1):
        run = decode_all(buf[:k], framing, directory=16, mold_next=100)
        pos1, status1 = run.result[0], run.result[-1]
        assert status1 in (0, -2, -5)
        if status1 != 0:  # an error already in part 1 is the whole stream's error
            assert (pos1, status1) == (whole.result[0], whole.result[-1])
            assert run.key() == whole.key()
            continue
        # the caller's next expected MoldUDP64 number: first packet + messages seen
        mold_next = 100 + run.n_messages if pos1 else 100
        rest = decode_all(
            buf[pos1:],
            framing,
            directory=16,
            counts=run.counts,
            seq=run.n_messages,
            final=True,
            mold_next=mold_next,
        )
        assert (pos1 + rest.result[0], rest.result[-1]) == (whole.result[0], whole.result[-1])
        joined = (
            run.events + rest.events,
            run.directory + [d + pos1 for d in rest.directory],
            run.counts.tolist(),
            run.n_messages + rest.n_messages,
        )
        assert joined == whole.key(), k


@pytest.mark.parametrize("framing", FRAMINGS)
def test_restarting_with_small_capacities_gives_the_same_events(framing):
    buf = mixed_stream(framing)
    whole = decode_all(buf, framing, directory=16, final=True)
    assert whole.result[-1] == 0 and len(whole.events) == 11
    smallest = 2 if framing == MOLD else 1  # a Mold packet here needs up to 2 events
    for capacity in range(smallest, 14):
        for dir_capacity in (1, 2, 16):
            run = Accumulated()
            pos = calls = 0
            while True:
                out = decode(
                    buf,
                    framing,
                    capacity=capacity,
                    directory=dir_capacity,
                    pos=pos,
                    seq=run.n_messages,
                    counts=run.counts,
                    final=True,
                )
                run.add(out)
                calls += 1
                assert out.status in (0, 1, 2)
                assert out.n_events <= capacity and out.n_directory <= dir_capacity
                if out.status == 0:
                    break
                assert out.pos > pos
                if out.status == 2:
                    # a stop right after the frame (packet) with the R: one R per unit here
                    assert out.n_directory == 1
                    assert buf[out.directory[0]] == ord("R")
                elif framing != MOLD:
                    # stopping for capacity means the next frame really needed it
                    assert out.n_events == capacity
                pos = out.pos
            assert run.key() == whole.key()
            assert calls >= max(-(-11 // capacity), 3)


# ============================================================================================
# Fuzz: random bytes and corrupted streams
# ============================================================================================

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_checked(buf, framing, capacity, dir_capacity, final, mold_next=-1):
    """Decode and check what holds for any input at all (``dir_capacity`` None: no directory)."""
    out = decode(
        buf, framing, capacity=capacity, directory=dir_capacity, final=final, mold_next=mold_next
    )
    assert out.status in STATUSES
    assert 0 <= out.pos <= len(buf)
    assert 0 <= out.n_events <= capacity
    assert out.n_directory == 0 if dir_capacity is None else out.n_directory <= dir_capacity
    assert out.n_events <= out.n_messages and int(out.counts.sum()) == out.n_messages
    assert out.all_events[out.n_events :].tobytes() == bytes(64 * (capacity - out.n_events))
    if out.status == 0 and final:
        assert out.pos == len(buf)
    if out.status == -3:
        assert final and out.pos < len(buf)
    if framing != MOLD:
        assert out.status != -5
    for off in out.directory or []:
        assert buf[off] == ord("R") and off < out.pos
    # a call stops right after the frame (packet) holding its first R
    stopped_after_r = out.status == 2 and out.n_directory > 0
    # what was consumed decodes the same on its own, as a complete stream
    again = decode(
        buf[: out.pos],
        framing,
        capacity=capacity,
        directory=dir_capacity,
        final=True,
        mold_next=mold_next,
    )
    status = 2 if stopped_after_r else 0
    assert again.result == (out.pos, out.n_events, out.n_messages, out.n_directory, status)
    assert again.events == out.events and again.directory == out.directory
    assert again.counts.tolist() == out.counts.tolist()
    return out


@FUZZ
@given(
    buf=st.binary(max_size=400),
    framing=st.sampled_from(FRAMINGS),
    final=st.booleans(),
    capacity=st.integers(0, 20),
    dir_capacity=st.integers(0, 3),
)
def test_fuzz_random_bytes(buf, framing, final, capacity, dir_capacity):
    run_checked(buf, framing, capacity, dir_capacity, final)


@FUZZ
@given(
    framing=st.sampled_from(FRAMINGS),
    final=st.booleans(),
    data=st.data(),
    capacity=st.integers(0, 20),
)
def test_fuzz_random_frames(framing, final, data, capacity):
    # random messages with valid prefixes reach deeper than random bytes
    bodies = data.draw(
        st.lists(
            st.one_of(
                st.sampled_from(mixed_messages()),
                st.binary(min_size=1, max_size=60),
                st.sampled_from(list(LENGTHS)).flatmap(
                    lambda t: st.binary(min_size=LENGTHS[t] - 1, max_size=LENGTHS[t] - 1).map(
                        lambda body, t=t: t + body
                    )
                ),
            ),
            max_size=12,
        )
    )
    buf = framed(framing, bodies, first_seq=data.draw(st.integers(0, 3)))
    run_checked(buf, framing, capacity, 4, final, mold_next=data.draw(st.sampled_from([-1, 1])))


@pytest.fixture(scope="module")
def valid():
    """Per framing: the stream, its whole decoding, and per frame (packet) start the
    (n_events, n_messages, n_directory) consumed before it."""
    result = {}
    for framing in FRAMINGS:
        buf = mixed_stream(framing)
        whole = decode(buf, framing, final=True)
        assert whole.status == 0
        bounds = {}
        pos = 0
        while pos < len(buf):
            part = decode(buf[:pos], framing, final=True)
            assert part.result[0::4] == (pos, 0)
            bounds[pos] = (part.n_events, part.n_messages, part.n_directory)
            pos += _first_frame_length(buf, pos, framing)
        bounds[len(buf)] = (whole.n_events, whole.n_messages, whole.n_directory)
        result[framing] = (buf, whole, bounds)
    return result


def _first_frame_length(buf: bytes, pos: int, framing: int) -> int:
    if framing != MOLD:
        return 2 + struct.unpack_from(">H", buf, pos)[0]
    (count,) = struct.unpack_from(">H", buf, pos + 18)
    q = pos + 20
    for _ in range(0 if count in (0, 0xFFFF) else count):
        q += 2 + struct.unpack_from(">H", buf, q)[0]
    return q - pos


def _message_offsets(buf: bytes, framing: int) -> list[int]:
    """Offsets of the type bytes of the ITCH messages of a valid stream."""
    offsets, pos = [], 0
    while pos < len(buf):
        if framing == FILE:
            offsets.append(pos + 2)
        elif framing == SOUP:
            if buf[pos + 2] == ord("S"):
                offsets.append(pos + 3)
        else:
            (count,) = struct.unpack_from(">H", buf, pos + 18)
            q = pos + 20
            for _ in range(0 if count in (0, 0xFFFF) else count):
                offsets.append(q + 2)
                q += 2 + struct.unpack_from(">H", buf, q)[0]
        pos += _first_frame_length(buf, pos, framing)
    return offsets


def _assert_prefix_of_valid(out: Out, valid_entry, at_least: int):
    _, whole, bounds = valid_entry
    starts = sorted(bounds)
    intact = max(s for s in starts if s <= at_least)
    # frames wholly before the damage are decoded exactly as in the valid stream
    assert out.pos >= intact
    n_ev = bounds[intact][0]
    assert out.events[:n_ev] == whole.events[:n_ev]
    return intact


@FUZZ
@given(framing=st.sampled_from(FRAMINGS), final=st.booleans(), data=st.data())
def test_fuzz_truncations(valid, framing, final, data):
    buf, whole, bounds = valid[framing]
    cut = data.draw(st.integers(0, len(buf)))
    out = run_checked(buf[:cut], framing, 64, None, final)
    # exactly the frames that are complete are consumed
    start = max(s for s in bounds if s <= cut)
    n_ev, n_msg, _ = bounds[start]
    status = 0 if start == cut or not final else -3
    assert out.result == (start, n_ev, n_msg, 0, status)
    assert out.events == whole.events[:n_ev]
    # with a directory: the same, in calls that stop after each R
    run = decode_all(buf[:cut], framing, directory=4, final=final)
    r_offsets = [o for o in _message_offsets(buf, framing) if buf[o] == ord("R") and o < start]
    assert run.result == (start, n_ev, n_msg, len(r_offsets), status)
    assert run.events == whole.events[:n_ev] and run.directory == r_offsets
    run_checked(buf[:cut], framing, 64, 4, final)


@FUZZ
@given(framing=st.sampled_from(FRAMINGS), data=st.data())
def test_fuzz_zeroed_length_prefixes(valid, framing, data):
    buf, whole, bounds = valid[framing]
    starts = sorted(bounds)[:-1]
    frame = data.draw(st.sampled_from(starts))
    damaged = bytearray(buf)
    if framing == MOLD:
        (count,) = struct.unpack_from(">H", buf, frame + 18)
        if count in (0, 0xFFFF):  # no block: zero the count's neighbour, the sequence
            return
        block = data.draw(st.integers(0, count - 1))
        q = frame + 20
        for _ in range(block):
            q += 2 + struct.unpack_from(">H", buf, q)[0]
        damaged[q : q + 2] = b"\x00\x00"
    else:
        damaged[frame : frame + 2] = b"\x00\x00"
    out = run_checked(bytes(damaged), framing, 64, None, data.draw(st.booleans()))
    n_ev, n_msg, _ = bounds[frame]
    assert out.result == (frame, n_ev, n_msg, 0, -2)
    assert out.events == whole.events[:n_ev]


@FUZZ
@given(framing=st.sampled_from(FRAMINGS), final=st.booleans(), data=st.data())
def test_fuzz_flipped_bytes(valid, framing, final, data):
    buf = valid[framing][0]
    damaged = bytearray(buf)
    where = sorted(
        data.draw(st.lists(st.integers(0, len(buf) - 1), min_size=1, max_size=4, unique=True))
    )
    for i in where:
        damaged[i] ^= data.draw(st.integers(1, 255))
    out = run_checked(bytes(damaged), framing, 64, None, final, mold_next=100)
    _assert_prefix_of_valid(out, valid[framing], where[0])
    run_checked(bytes(damaged), framing, 64, 2, final, mold_next=100)


# ============================================================================================
# Recorded sample files (tests/data/itch/README.md)
# ============================================================================================

ITCH_DATA = DATA / "itch"


def _sample(name: str) -> bytes:
    import gzip

    path = os.path.join(ITCH_DATA, name)
    if not os.path.exists(path):
        pytest.skip(f"{name} is not in tests/data/itch")
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if name.endswith(".gz") else raw


def test_ritch_sample_counts_and_timestamps():
    buf = _sample("ex20101224.TEST_ITCH_50.lenfixed.gz")
    out = decode_all(buf, capacity=12_012, directory=8, final=True)
    want = {
        b"S": 6,
        b"R": 3,
        b"H": 3,
        b"A": 4997,
        b"F": 3,
        b"E": 198,
        b"X": 45,
        b"D": 1745,
        b"U": 12,
        b"P": 5000,
    }
    assert out.result == (len(buf), sum(want.values()) - 6 - 3, 12_012, 3, 0)
    assert count_of(out) == want
    assert len(out.calls) == 4  # a stop after each of the three R messages
    ts = np.array([e[0] for e in out.events])
    assert ts[0] >= 11_202_475_298_710 and ts[-1] <= 68_698_845_099_321
    assert (np.diff(ts) >= 0).all()
    assert sorted({e[2] for e in out.events}) == [1, 2, 3]
    assert [e[-1] for e in out.events] == sorted(e[-1] for e in out.events)
    assert [buf[o + 11 : o + 19].rstrip() for o in out.directory] == [b"ALC", b"BOB", b"CHAR"]


def test_ritch_sample_with_zero_prefixes_is_refused_at_once():
    buf = _sample("ex20101224.TEST_ITCH_50.gz")
    assert decode(buf, final=True).result == (0, 0, 0, 0, -2)


def test_meatpy_sample():
    buf = _sample("sample.itch50")
    out = decode_all(buf, directory=4, final=True)
    assert out.result == (590, 12, 20, 2, 0)
    assert count_of(out) == {b"S": 6, b"R": 2, b"A": 7, b"E": 2, b"X": 1, b"D": 1, b"P": 1}
    assert [buf[o + 11 : o + 19].rstrip() for o in out.directory] == [b"MEAT", b"PYTH"]
