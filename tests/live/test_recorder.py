"""Recorder: rotation loses and duplicates nothing; metadata; full queue counted."""

from __future__ import annotations

import os
import threading

import pytest

from fastbook.capture import CLOSE, OPEN, RECEIVED, REST, SENT, CaptureReader
from fastbook.live._recorder import Recorder, read_recording, recording_files


def write_many(rec: Recorder, n: int) -> list[tuple]:
    expected = []
    rec.opened(1, "wss://example.invalid/stream", recv_ns=1)
    expected.append((OPEN, 1, 1, "wss://example.invalid/stream", b""))
    for i in range(n):
        body = (b'{"u":%d,"b":[["1.0","%d"]]}' % (i, i)) * (1 + i % 7)
        if i % 50 == 49:
            rec.rest("https://api.example.invalid/depth?symbol=X", body, recv_ns=10 + i)
            expected.append((REST, 10 + i, 0, "https://api.example.invalid/depth?symbol=X",
                             body))
        else:
            rec.received(1, body, recv_ns=10 + i)
            expected.append((RECEIVED, 10 + i, 1, "", body))
    rec.sent(1, '{"op":"ping"}', recv_ns=10 + n)
    rec.disconnected(1, b"1000 bye", recv_ns=11 + n)
    expected += [(SENT, 10 + n, 1, "", b'{"op":"ping"}'), (CLOSE, 11 + n, 1, "", b"1000 bye")]
    return expected


@pytest.mark.parametrize("compression", ["none", "zstd"])
@pytest.mark.parametrize("threaded", [True, False])
def test_rotation_keeps_every_record_once(tmp_path, compression, threaded):
    limit = 20_000 if compression == "none" else 4_000    # zstd shrinks these ~10x
    rec = Recorder(tmp_path, max_bytes=limit, compression=compression, threaded=threaded,
                   meta={"venue": "binance-spot"})
    expected = write_many(rec, 3000)
    rec.close()
    assert len(rec.files) >= 5 and recording_files(tmp_path) == rec.files
    assert all(sum(1 for _ in CaptureReader(p)) for p in rec.files)     # no empty part
    got = [(r.kind, r.recv_ns, r.conn, r.url, r.payload) for r in read_recording(tmp_path)]
    assert got == expected
    assert rec.stats()["records"] == len(expected) and rec.stats()["dropped"] == 0
    for n, path in enumerate(rec.files, 1):
        name = os.path.basename(path)
        assert name.startswith("fastbook-") and name.endswith(
            ".fbcap.zst" if compression == "zstd" else ".fbcap")
        meta = CaptureReader(path).meta
        assert (meta["recorder"], meta["part"], meta["venue"]) == ("fastbook.live", n,
                                                                   "binance-spot")
        assert meta["open_connections"] == ({} if n == 1 else
                                            {"1": "wss://example.invalid/stream"})
        if compression == "none" and path != rec.files[-1]:
            # over max_bytes only by the record that crossed it
            assert limit < os.path.getsize(path) < limit + 2_000


@pytest.mark.parametrize("compression", ["none", "zstd"])
@pytest.mark.parametrize("threaded", [True, False])
def test_flush_makes_every_record_readable_while_recording(tmp_path, compression, threaded):
    rec = Recorder(tmp_path, compression=compression, threaded=threaded)
    expected = write_many(rec, 200)
    rec.flush()
    # the part is still open; a reader sees everything written before the flush
    got = [(r.kind, r.recv_ns, r.conn, r.url, r.payload) for r in CaptureReader(rec.files[-1])]
    assert got == expected
    rec.received(1, b"after", recv_ns=10_000)
    rec.close()
    assert [r.payload for r in read_recording(tmp_path)][-1] == b"after"
    rec.flush()                                    # after close: nothing to do, no error


def test_rotation_by_age_and_numbering_continues(tmp_path):
    rec = Recorder(tmp_path, max_seconds=1e-9, compression="none", threaded=False)
    rec.received(1, b"a", recv_ns=1)
    rec.received(1, b"b", recv_ns=2)
    rec.close()
    again = Recorder(tmp_path, compression="none")
    again.received(2, b"c", recv_ns=3)
    again.close()
    assert [int(p.rsplit("-", 1)[1].split(".")[0]) for p in recording_files(tmp_path)] == \
        [1, 2, 3, 4]
    assert [r.payload for r in read_recording(tmp_path)] == [b"a", b"b", b"c"]


def test_full_queue_drops_with_count(tmp_path):
    rec = Recorder(tmp_path, compression="none", threaded=True, queue_size=2, block_s=0.001)
    gate = threading.Event()
    real = rec._write

    def slow(item):
        gate.wait(5)
        real(item)

    rec._write = slow                       # the disk stalls
    for i in range(20):
        rec.received(1, b"x", recv_ns=i + 1)
    gate.set()
    rec.close()
    st = rec.stats()
    assert st["dropped"] > 0 and st["records"] + st["dropped"] == 20
    assert len(list(read_recording(tmp_path))) == st["records"]


def test_bad_input(tmp_path):
    rec = Recorder(tmp_path, compression="none")
    with pytest.raises(ValueError, match="conn"):
        rec.received(-1, b"x")
    with pytest.raises(ValueError, match="recv_ns"):
        rec.received(1, b"x", recv_ns=-5)
    rec.received(1, b"ok")
    rec.close()
    with pytest.raises(ValueError, match="closed"):
        rec.received(1, b"x")
    assert [r.payload for r in read_recording(tmp_path)] == [b"ok"]
    with pytest.raises(ValueError, match="max_bytes"):
        Recorder(tmp_path, max_bytes=0)
    with pytest.raises(ValueError, match="compression"):
        Recorder(tmp_path / "x", compression="lz4")
    assert not (tmp_path / "x").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no recording parts"):
        list(read_recording(tmp_path / "empty"))
