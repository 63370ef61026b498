"""Differential test: the compiled ITCH 5.0 kernel against its pure-Python twin.

hypothesis builds random streams in the three framings (every message type,
unknown types, wrong and zero lengths, MoldUDP64 heartbeats, end-of-session
packets and sequence gaps, SoupBinTCP control packets, truncation), and random
call parameters (event and directory capacities, locate maps, message numbers,
chunk splits). A caller loop drives ``fastbook.codecs._itch50.decode_chunk`` and
``fastbook.codecs._pyitch50.decode_chunk`` in lock step with identical
arguments and compares every output after every call: the returned tuple, the
whole events array (rows not written included), counts and the whole directory.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbook.events import EVENT_DTYPE
from tests.helpers import DATA
from tests.helpers.impls import require

_itch50 = require("fastbook.codecs._itch50")
_pyitch50 = pytest.importorskip("fastbook.codecs._pyitch50")

from tests.helpers.itch import (  # noqa: E402
    FILE,
    LENGTHS,
    MOLD,
    SOUP,
    file_frames,
    mold_packet,
    soup_frames,
    soup_packet,
)

U64 = 2**64
# Types that emit events come up more often, as in real feeds.
TYPES = list(LENGTHS) + [t for t in LENGTHS if t in b"AFECXDUPQH"] * 2 + [b"R"] * 5
# Bytes whose value changes an event (side, printable, trading state), with the values of note.
MEANINGFUL = {
    b"A": (19, b"BSX"),
    b"F": (19, b"BSX"),
    b"P": (19, b"BS "),
    b"C": (31, b"YNy"),
    b"H": (19, b"HPQTZ"),
}
LOCATES = [0, 1, 2, 3, 0x0102, 65535]

DIFF = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def messages(draw) -> bytes:
    """One ITCH message: mostly well formed, sometimes unknown, mis-sized or empty."""
    roll = draw(st.integers(0, 99))
    if roll < 3:
        return b""  # a zero length prefix
    if roll < 9:
        t = draw(st.sampled_from([b"Z", b"a", b"T", b"\x00", b"\xff", b" "]))
        return t + draw(st.binary(max_size=60))
    t = draw(st.sampled_from(TYPES))
    length = LENGTHS[t]
    if roll < 13:
        length = draw(st.integers(1, 60).filter(lambda n: n != LENGTHS[t]))
    msg = bytearray(t + draw(st.binary(min_size=length - 1, max_size=length - 1)))
    if length >= 3:
        msg[1:3] = struct.pack(">H", draw(st.sampled_from(LOCATES)))
    if t in MEANINGFUL and length == LENGTHS[t]:
        off, values = MEANINGFUL[t]
        msg[off] = draw(st.sampled_from(values))
    if t == b"Q" and length == LENGTHS[t] and draw(st.booleans()):
        msg[11:19] = struct.pack(">Q", draw(st.sampled_from([2**63, U64 - 1, 2**63 - 1])))
    return bytes(msg)


@st.composite
def streams(draw, framing: int):
    """(buf, MoldUDP64 next-expected number after each packet end offset, first sequence)."""
    after: dict[int, int] = {}
    parts: list[bytes] = []
    size = 0
    first = draw(st.sampled_from([0, 1, 1000, 2**62, U64 - 2]))
    seq = first
    for _ in range(draw(st.integers(0, 14))):
        if framing == FILE:
            part = file_frames([draw(messages())])
        elif framing == SOUP:
            roll = draw(st.integers(0, 9))
            if roll < 7:
                msg = draw(messages())
                part = soup_packet(b"S", msg)
            elif roll < 9:
                kind = draw(
                    st.sampled_from([b"A", b"H", b"Z", b"+", b"L", b"U", b"R", b"O", b"s", b"\x00"])
                )
                payload = draw(st.binary(max_size=20))
                part = soup_packet(kind, payload)
            else:
                part = b"\x00\x00"
        else:
            roll = draw(st.integers(0, 9))
            seq += draw(st.sampled_from([0] * 8 + [1, -1]))  # now and then a gap
            seq %= U64
            if roll < 7:
                msgs = draw(st.lists(messages(), min_size=1, max_size=4))
                count = len(msgs)
                if draw(st.integers(0, 19)) == 0:  # a count the blocks disagree with
                    count = draw(st.integers(1, 6))
                part = mold_packet(seq, msgs, count)
                seq_after = seq + count
            else:
                count = 0 if roll < 9 else 0xFFFF  # heartbeat / end of session
                part = mold_packet(seq, [], count)
                seq_after = seq
            after[size + len(part)] = seq_after
            seq = seq_after % U64
        parts.append(part)
        size += len(part)
    buf = b"".join(parts)
    if draw(st.integers(0, 4)) == 0:  # torn or trailing garbage
        buf = buf[: draw(st.integers(0, len(buf)))] + draw(st.binary(max_size=8))
    return buf, after, first


def as_buffer(buf: bytes, kind: str):
    if kind == "bytes":
        return buf
    if kind == "bytearray":
        return bytearray(buf)
    if kind == "memoryview":
        return memoryview(b"pad" + buf)[3:]
    return np.frombuffer(buf, np.uint8)  # read-only numpy


@st.composite
def locate_maps(draw):
    if draw(st.booleans()):
        return None
    m = np.full(65536, -1, np.int32)
    for locate in LOCATES:
        m[locate] = draw(st.sampled_from([-1, -5, 0, 7, locate, 2**31 - 1]))
    return m


def sentinel_events(n: int) -> np.ndarray:
    return np.frombuffer(b"\xa5" * (64 * n), EVENT_DTYPE).copy()


def call_both(buf, pos, framing, capacity, dir_capacity, counts, **kw):
    """One call on each side with identical arguments; every output compared."""
    outputs = []
    for impl in (_itch50, _pyitch50):
        events = sentinel_events(capacity)
        directory = None if dir_capacity is None else np.full(dir_capacity, -99, np.int64)
        c = counts[impl.__name__]
        result = impl.decode_chunk(buf, pos, framing, events, c, directory=directory, **kw)
        outputs.append((result, events, directory))
    (r1, e1, d1), (r2, e2, d2) = outputs
    context = {
        "pos": pos,
        "framing": framing,
        "capacity": capacity,
        "dir_capacity": dir_capacity,
        **{k: v for k, v in kw.items() if k != "locate_map"},
    }
    assert r1 == r2, (r1, r2, context)
    n = r1[1]
    assert e1.tobytes() == e2.tobytes(), (
        [tuple(x.tolist()) for x in e1[:n]],
        [tuple(x.tolist()) for x in e2[:n]],
        context,
    )
    assert counts[_itch50.__name__].tolist() == counts[_pyitch50.__name__].tolist(), context
    assert (d1 is None and d2 is None) or d1.tolist() == d2.tolist(), (d1, d2, context)
    return r1


def drive(buf, after, framing, splits, capacity, dir_capacity, locate_map, seq, mold_next):
    """The caller's loop, on both implementations in lock step; returns the statuses seen."""
    initial = np.arange(256, dtype=np.uint64) * np.uint64(3)
    counts = {_itch50.__name__: initial.copy(), _pyitch50.__name__: initial.copy()}
    ends = [*sorted({s for s in splits if s < len(buf)}), len(buf)]
    chunk = pos = 0
    seen = []
    for _ in range(10_000):
        final = chunk == len(ends) - 1
        pos, n_events, n_messages, n_directory, status = call_both(
            buf[: ends[chunk]],
            pos,
            framing,
            capacity,
            dir_capacity,
            counts,
            locate_map=locate_map,
            seq=seq,
            final=final,
            mold_next=mold_next,
        )
        seen.append(status)
        seq = (seq + n_messages) % U64
        if framing == MOLD and pos in after:
            mold_next = after[pos] if after[pos] < U64 else -1
        if status == 1:
            if n_events == 0:  # a MoldUDP64 packet larger than the whole array
                capacity = 2 * capacity + 1
        elif status == 2:
            if n_directory == 0:
                dir_capacity = 2 * dir_capacity + 1
        elif status == 0:
            if final:
                return seen
            chunk += 1
        elif status == -5:
            mold_next = -1  # tolerate the gap and go on, as a caller may
        else:
            return seen
    raise AssertionError("the caller loop did not finish")


@DIFF
@given(data=st.data(), framing=st.sampled_from([FILE, MOLD, SOUP]))
def test_kernel_matches_twin(data, framing):
    buf, after, first = data.draw(streams(framing))
    splits = data.draw(st.lists(st.integers(0, len(buf)), max_size=4))
    capacity = data.draw(st.integers(0, 6))
    dir_capacity = data.draw(st.one_of(st.none(), st.integers(0, 2)))
    locate_map = data.draw(locate_maps())
    seq = data.draw(st.sampled_from([0, 17, U64 - 3]))
    mold_next = data.draw(st.sampled_from([-1, first, first + 1]))
    kind = data.draw(st.sampled_from(["bytes", "bytearray", "memoryview", "numpy"]))
    drive(
        as_buffer(buf, kind),
        after,
        framing,
        splits,
        capacity,
        dir_capacity,
        locate_map,
        seq,
        mold_next,
    )


@DIFF
@given(data=st.data(), framing=st.sampled_from([FILE, MOLD, SOUP]))
def test_kernel_matches_twin_on_random_bytes(data, framing):
    buf = data.draw(st.binary(max_size=300))
    splits = data.draw(st.lists(st.integers(0, len(buf)), max_size=3))
    drive(
        buf,
        {},
        framing,
        splits,
        data.draw(st.integers(0, 6)),
        data.draw(st.one_of(st.none(), st.integers(0, 3))),
        None,
        0,
        data.draw(st.sampled_from([-1, 0])),
    )


def test_a_long_well_formed_stream():
    # one stream of every type in all three framings, capacity restarts included
    msgs = []
    for i, t in enumerate(LENGTHS):
        body = bytes((i * 7 + j) % 256 for j in range(LENGTHS[t] - 1))
        msgs.append(t + struct.pack(">H", i % 3 + 1) + body[2:])
    msgs *= 3
    for framing in (FILE, MOLD, SOUP):
        if framing == FILE:
            buf = file_frames(msgs)
        elif framing == SOUP:
            buf = soup_frames(msgs)
        else:
            buf = b"".join(mold_packet(5 + 2 * k, msgs[2 * k : 2 * k + 2])
                           for k in range(len(msgs) // 2))
        statuses = drive(buf, {}, framing, [len(buf) // 3, len(buf) // 2], 3, 0, None, 0, -1)
        assert statuses[-1] == 0 and 1 in statuses and 2 in statuses


# -- argument checks --------------------------------------------------------------------------


def _bad(**change):
    args = {
        "buf": b"\x00\x13D" + bytes(18),
        "pos": 0,
        "framing": 0,
        "events": np.zeros(2, EVENT_DTYPE),
        "counts": np.zeros(256, np.uint64),
    }
    kwargs = {k: change.pop(k) for k in list(change) if k not in args}
    args.update(change)
    return list(args.values()), kwargs


AGREED = [
    _bad(framing=3),
    _bad(framing="0"),
    _bad(pos=-1),
    _bad(pos=22),
    _bad(pos=1.0),
    _bad(buf="text"),
    _bad(events=np.zeros(2, np.int64)),
    _bad(events=np.zeros((1, 2), EVENT_DTYPE)),
    _bad(counts=np.zeros(255, np.uint64)),
    _bad(counts=np.zeros(256, np.int64)),
    _bad(locate_map=np.zeros(10, np.int32)),
    _bad(directory=np.zeros(2, np.int32)),
    _bad(seq=-1),
    _bad(seq=U64),
    _bad(mold_next=-2),
]


@pytest.mark.parametrize(("args", "kwargs"), AGREED)
def test_both_refuse_the_same_bad_arguments(args, kwargs):
    kinds, named = [], []
    for impl in (_itch50, _pyitch50):
        with pytest.raises((TypeError, ValueError), match=r"^\w+ must ") as info:
            impl.decode_chunk(*args, **kwargs)
        kinds.append((isinstance(info.value, TypeError), isinstance(info.value, ValueError)))
        named.append(str(info.value).split()[0])
    assert kinds[0] == kinds[1]
    assert named[0] == named[1]     # both name the argument at fault


def _outputs(impl, buf, framing, **kw):
    counts = np.zeros(512, np.uint64)[::2]
    events = sentinel_events(3)
    directory = np.full(8, -1, np.int64)
    result = impl.decode_chunk(buf, 0, framing, events, counts, directory=directory[::2], **kw)
    return result, events.tobytes(), counts.tolist(), directory.tolist()


def test_strided_arrays_and_the_largest_mold_numbers():
    # the contract asks for 1-D arrays, not contiguous ones; MoldUDP64 numbers are u64
    locate_map = np.zeros((65536, 2), np.int32)
    locate_map[:, 0] = np.arange(65536) % 5 - 1
    msgs = [b"R" + bytes(38), b"D\x00\x02" + bytes(16), b"D\x00\x01" + bytes(16)]
    file_buf = file_frames(msgs)
    mold_buf = mold_packet(U64 - 4, msgs) + mold_packet(U64 - 1, [])
    for framing, buf, kw, status in [
        (FILE, file_buf, {"locate_map": locate_map[:, 0]}, 2),  # stops after the R
        (MOLD, mold_buf, {"mold_next": U64 - 4}, 2),
        (MOLD, mold_buf, {"mold_next": 2**63}, -5),
        (MOLD, mold_buf[-20:], {"mold_next": U64 - 1}, 0),
    ]:
        got = _outputs(_itch50, buf, framing, **kw)
        assert got == _outputs(_pyitch50, buf, framing, **kw)
        assert got[0][-1] == status


@pytest.mark.parametrize("name", ["ex20101224.TEST_ITCH_50.lenfixed.gz", "sample.itch50"])
def test_recorded_samples(name):
    import gzip

    path = DATA / "itch" / name
    if not os.path.exists(path):
        pytest.skip(f"{name} is not in tests/data/itch")
    with open(path, "rb") as f:
        buf = gzip.decompress(f.read()) if name.endswith(".gz") else f.read()
    # the whole file in BinaryFILE, with uneven chunks and small arrays; then re-framed
    splits = [len(buf) // 7 * k + k for k in range(1, 7)]
    assert drive(buf, {}, FILE, splits, 500, 1, None, 0, -1)[-1] == 0
    msgs, p = [], 0
    while p < len(buf):
        (length,) = struct.unpack_from(">H", buf, p)
        msgs.append(buf[p + 2 : p + 2 + length])
        p += 2 + length
    soup = soup_frames(msgs)
    assert drive(soup, {}, SOUP, splits, 777, 2, None, 5, -1)[-1] == 0
    packets, after, size = [], {}, 0
    for k in range(0, len(msgs), 3):
        group = msgs[k : k + 3]
        packets.append(mold_packet(1 + k, group))
        size += 20 + sum(2 + len(m) for m in group)
        after[size] = 1 + k + len(group)
    statuses = drive(b"".join(packets), after, MOLD, splits, 64, 3, None, 0, 1)
    assert statuses[-1] == 0 and -5 not in statuses
