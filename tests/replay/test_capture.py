"""fastbook's capture format (writer, reader, errors), the cryptofeed reader, merge and convert."""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import zlib

import pytest

from fastbook import capture
from fastbook.capture import (
    CLOSE,
    DRIVER,
    MAGIC,
    OPEN,
    RECEIVED,
    REST,
    SENT,
    CaptureReader,
    CaptureWriter,
    Record,
)
from fastbook.errors import DecodeError
from tests.helpers import DATA

CF = DATA / "l2" / "cryptofeed"
HEADER = 16


def sample_records() -> list[Record]:
    return [
        Record(OPEN, 1_000, "wss://ws.example/ws", b"", 1, 1),
        Record(SENT, 1_500, "", b'{"op":"subscribe"}', 2, 1),
        Record(RECEIVED, 2_000, "", b'{"x":1}', 3, 1),
        Record(RECEIVED, 2_000, "", bytes(range(256)), 4, 2, capture.BINARY),
        Record(REST, 3_000, "https://api.example/depth?symbol=AB", b'{"bids":[]}', 5, 0),
        Record(CLOSE, 4_000, "", b"1006 abnormal", 6, 1),
        Record(RECEIVED, (1 << 63) - 1, "", b"", 7, (1 << 32) - 1),
    ]


def write(records, compression="none", **kw) -> bytes:
    out = io.BytesIO()
    with CaptureWriter(out, compression=compression, **kw) as w:
        for r in records:
            w.write_record(r)
    return out.getvalue()


def plain(rec: Record) -> tuple:
    return (rec.kind, rec.recv_ns, rec.url, rec.payload, rec.conn, rec.flags)


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_round_trip_keeps_every_field(compression, tmp_path):
    if compression == "zstd":
        pytest.importorskip("zstandard")
    path = tmp_path / "c.fbcap"
    recs = sample_records()
    with CaptureWriter(path, compression=compression, meta={"codec": "okx"}) as w:
        for r in recs:
            w.write_record(r)
        assert w.compression == compression
    reader = CaptureReader(path)
    assert reader.version == 1 and reader.meta["codec"] == "okx"
    assert reader.compression == compression
    back = list(reader)
    assert [plain(r) for r in back] == [plain(r) for r in recs]
    assert [r.line for r in back] == list(range(1, len(recs) + 1))     # record numbers
    assert capture.sniff(path) == "fastbook"


def test_byte_layout_is_the_documented_one():
    data = write([Record(RECEIVED, 123456789, "", b"hi", 1, 7)])
    magic, version, flags, meta_len = struct.unpack_from("<8sHHI", data, 0)
    assert (magic, version, flags) == (MAGIC, 1, 0)
    assert json.loads(data[HEADER:HEADER + meta_len])["writer"].startswith("fastbook")
    pos = HEADER + meta_len
    crc, conn, recv_ns, kind, rflags, ulen, plen = struct.unpack_from("<IIqBBHI", data, pos)
    assert (conn, recv_ns, kind, rflags, ulen, plen) == (7, 123456789, 1, 0, 0, 2)
    assert data[pos + 24:] == b"hi"
    assert crc == zlib.crc32(data[pos + 4:])


def test_helpers_and_str_payloads():
    out = io.BytesIO()
    with CaptureWriter(out, compression="none") as w:
        w.opened(3, "wss://a", 10)
        w.sent(3, '{"sub":1}', 11)
        w.received(3, "é", 12)
        w.rest("https://b/depth?symbol=X", b"{}", 13)
        w.disconnected(3, "bye", 14)
        w.driver({"down": "okx", "reason": "é"}, 15)
        assert w.records == 6
    got = [plain(r) for r in capture.read_capture(out.getvalue())]
    assert got == [(OPEN, 10, "wss://a", b"", 3, 0), (SENT, 11, "", b'{"sub":1}', 3, 0),
                   (RECEIVED, 12, "", "é".encode(), 3, 0),
                   (REST, 13, "https://b/depth?symbol=X", b"{}", 0, 0),
                   (CLOSE, 14, "", b"bye", 3, 0),
                   (DRIVER, 15, "", b'{"down":"okx","reason":"\\u00e9"}', 0, 0)]


def test_writer_memory_is_bounded_and_flushes_write_frames(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    path = tmp_path / "c.zst"
    payload = b'{"e":"depthUpdate","b":[["1.0","2"]]}' * 4
    w = CaptureWriter(path, compression="zstd", buffer_size=10_000, flush_interval=None)
    for i in range(2_000):
        w.received(1, payload, i)
        assert len(w._buf) < 10_000          # written out whenever it reaches the bound
    frames = w.frames
    assert frames >= 2_000 * (len(payload) + 24) // (10_000 + len(payload) + 24)
    # what was written out so far reads back without close(): a crash keeps it
    on_disk = path.read_bytes()
    partial = list(CaptureReader(on_disk))
    assert 0 < len(partial) <= 2_000 and partial[-1].recv_ns == len(partial) - 1
    w.flush()
    assert w.frames == frames + 1 and len(list(CaptureReader(path))) == 2_000
    w.close()
    # every write-out is a complete zstd frame with a checksum
    dec = zstandard.ZstdDecompressor()
    first = path.read_bytes()
    params = zstandard.get_frame_parameters(first)
    assert params.has_checksum
    assert dec.decompressobj().decompress(first).startswith(MAGIC)


def test_flush_interval_writes_out_on_the_next_write(tmp_path):
    path = tmp_path / "c"
    w = CaptureWriter(path, compression="none", flush_interval=0.0)
    w.received(1, b"a", 1)
    assert len(list(CaptureReader(path))) == 1
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.received(1, b"a", 1)


def test_writer_refuses_bad_arguments():
    w = CaptureWriter(io.BytesIO(), compression="none")
    with pytest.raises(ValueError, match="kind must be one of"):
        w.write("nope", b"")
    with pytest.raises(ValueError, match="recv_ns"):
        w.write(RECEIVED, b"", -1)
    with pytest.raises(ValueError, match="conn"):
        w.write(RECEIVED, b"", 1, conn=1 << 32)
    with pytest.raises(ValueError, match="URL"):
        w.write(REST, b"", 1, url="x" * 70_000)
    with pytest.raises(ValueError, match="compression"):
        CaptureWriter(io.BytesIO(), compression="lz4")
    with pytest.raises(ValueError, match="JSON"):
        CaptureWriter(io.BytesIO(), meta={"x": object()})


def test_zstd_without_the_package_says_what_to_install(tmp_path, monkeypatch):
    pytest.importorskip("zstandard")
    path = tmp_path / "c.zst"
    path.write_bytes(write(sample_records(), compression="zstd"))
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "compression", None)
    with pytest.raises(ImportError, match="zstandard"):
        list(capture.read_capture(path))
    with pytest.raises(ImportError, match="zstandard"):
        CaptureWriter(tmp_path / "x", compression="zstd")
    w = CaptureWriter(tmp_path / "y", compression="auto")     # plain when it is missing
    assert w.compression == "none"
    w.close()


def test_gzip_of_a_capture_reads_too():
    data = write(sample_records())
    assert [plain(r) for r in capture.read_capture(gzip.compress(data))] == \
        [plain(r) for r in sample_records()]


def test_records_straddling_every_chunk_boundary():
    recs = [Record(RECEIVED, i, "", bytes([i % 251]) * (i * 7 % 300), i + 1, i % 3)
            for i in range(300)]
    recs.append(Record(REST, 999, "https://x/depth?symbol=Q", b"z" * 100_000, 301, 0))
    data = write(recs)
    for chunk_size in (1, 7, 24, 25, 4096):
        back = list(CaptureReader(data, chunk_size=chunk_size))
        assert [plain(r) for r in back] == [plain(r) for r in recs]


# ---------------------------------------------------------------------------
# bad input: DecodeError with byte offset and record number
# ---------------------------------------------------------------------------

def first_record_at(data: bytes) -> int:
    return HEADER + struct.unpack_from("<I", data, 12)[0]


def test_bad_magic_and_version():
    data = write(sample_records())
    with pytest.raises(DecodeError, match=r"not a fastbook capture: bad magic at byte 0"):
        CaptureReader(b"X" + data[1:])
    newer = data[:8] + struct.pack("<H", 2) + data[10:]
    with pytest.raises(DecodeError, match="version 2 at byte 8"):
        CaptureReader(newer)
    with pytest.raises(DecodeError, match="truncated capture: the file header"):
        CaptureReader(data[:10])
    huge_meta = data[:12] + struct.pack("<I", 1 << 30) + data[16:]
    with pytest.raises(DecodeError, match="metadata length"):
        CaptureReader(huge_meta)


def test_truncated_record_names_offset_and_number():
    data = write(sample_records())
    pos = first_record_at(data)
    second = pos + 24          # record 1 is the OPEN: 24 + len(url) bytes
    second += len("wss://ws.example/ws")
    for cut in (second + 5, second + 24 + 3):
        with pytest.raises(DecodeError, match=rf"truncated capture: record 2 at byte {second}"):
            list(CaptureReader(data[:cut]))
    assert len(list(CaptureReader(data[:second]))) == 1       # a clean cut between records


def test_absurd_length_is_refused_at_once():
    data = bytearray(write(sample_records()))
    pos = first_record_at(bytes(data))
    struct.pack_into("<I", data, pos + 20, 1 << 30)       # payload length
    with pytest.raises(DecodeError, match=rf"record 1 at byte {pos}: payload length "
                                          r"1,073,741,824 is over"):
        list(CaptureReader(bytes(data)))


def test_unknown_kind_flags_and_crc():
    clean = write(sample_records())
    pos = first_record_at(clean)
    for offset, value, message in ((16, 9, "unknown record kind 9"),
                                   (17, 0x80, "unknown record flags"),
                                   (30, ord("X"), "CRC32 mismatch")):
        data = bytearray(clean)
        data[pos + offset] = value
        with pytest.raises(DecodeError, match=rf"record 1 at byte {pos}: {message}"):
            list(CaptureReader(bytes(data)))
    # without verification, a flipped payload byte goes through (documented)
    data = bytearray(clean)
    data[pos + 30] = ord("X")
    assert len(list(CaptureReader(bytes(data), verify=False))) == len(sample_records())


# ---------------------------------------------------------------------------
# cryptofeed
# ---------------------------------------------------------------------------

def test_cryptofeed_reader_connections_and_times():
    recs = list(capture.read_cryptofeed(CF / "KRAKEN.ws.50.0.gz"))
    assert len(recs) == 4323 and recs[0].kind == OPEN and recs[0].url == "wss://ws.kraken.com"
    assert recs[0].recv_ns == 1618678132385815100            # "1618678132.3858151" exactly
    assert {r.conn for r in recs} == {1}
    assert [r.kind for r in recs].count(RECEIVED) == 4321
    rest = list(capture.read_cryptofeed(CF / "BINANCE.http.0.0.gz"))
    assert [r.conn for r in rest] == [0, 0, 0, 0]
    assert rest[0].url == "https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000"
    assert json.loads(rest[0].payload)["lastUpdateId"] == 499869752
    assert rest[1].line == 2


def test_cryptofeed_lines_and_errors():
    text = (b"wss://a <-> 1.5\n"
            b"wss://a <- 2: {\"s\":1}\n"
            b"3.000000001: {}\r\n"
            b"\n"
            b"configuration: {}\n"
            b"wss://b <-> 4\n"
            b"5: x\n"
            b"https://r -> 6.25: []")
    got = [(r.kind, r.recv_ns, r.url, r.payload, r.line, r.conn)
           for r in capture.read_cryptofeed(text)]
    assert got == [(OPEN, 1_500_000_000, "wss://a", b"", 1, 1),
                   (SENT, 2_000_000_000, "wss://a", b'{"s":1}', 2, 1),
                   (RECEIVED, 3_000_000_001, "", b"{}", 3, 1),
                   (OPEN, 4_000_000_000, "wss://b", b"", 6, 2),
                   (RECEIVED, 5_000_000_000, "", b"x", 7, 2),
                   (REST, 6_250_000_000, "https://r", b"[]", 8, 0)]
    with pytest.raises(DecodeError, match=r"<buffer>:2: bad receive time"):
        list(capture.read_cryptofeed(b"1: {}\n1x2: {}\n"))
    with pytest.raises(DecodeError, match=r":1: not a cryptofeed record"):
        list(capture.read_cryptofeed(b"hello\n"))


def test_sniff():
    assert capture.sniff(CF / "OKX.ws.1.0.gz") == "cryptofeed"
    assert capture.sniff(CF / "BINANCE.http.0.0.gz") == "cryptofeed"
    assert capture.sniff(write(sample_records())) == "fastbook"
    assert capture.sniff(b"\x00\x00\x00\x0cSomething binary") is None


# ---------------------------------------------------------------------------
# merge, convert, summarize
# ---------------------------------------------------------------------------

def test_merge_interleaves_by_receive_time_and_keeps_connections_apart():
    a = write([Record(OPEN, 1, "wss://a", b"", 1, 1), Record(RECEIVED, 5, "", b"a5", 2, 1),
               Record(RECEIVED, 9, "", b"a9", 3, 1)])
    b = write([Record(OPEN, 2, "wss://b", b"", 1, 1), Record(RECEIVED, 5, "", b"b5", 2, 1),
               Record(REST, 6, "https://r", b"r6", 3, 0)])
    got = [(r.recv_ns, r.conn, r.payload or r.url.encode()) for r in capture.merge([a, b])]
    assert got == [(1, 1, b"wss://a"), (2, 2, b"wss://b"), (5, 1, b"a5"), (5, 2, b"b5"),
                   (6, 0, b"r6"), (9, 1, b"a9")]


def test_convert_binance_ws_and_rest_into_one_capture(tmp_path):
    out = tmp_path / "binance.fbcap"
    n = capture.convert([CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"], out,
                        meta={"codec": "binance-spot"})
    assert n == 270
    merged = list(capture.merge([CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"]))
    back = list(capture.read_capture(out))
    assert [plain(r) for r in back] == [plain(r) for r in merged]
    times = [r.recv_ns for r in back]
    assert times == sorted(times)
    # the first REST snapshot lands after the open and the first NKNUSDT update
    first_rest = next(i for i, r in enumerate(back) if r.kind == REST)
    assert back[first_rest].recv_ns == 1633998512320639000 and first_rest == 2
    with CaptureReader(out) as r:
        assert r.meta["codec"] == "binance-spot"
        assert r.meta["converted_from"] == ["BINANCE.ws.1.0.gz", "BINANCE.http.0.0.gz"]


def test_summarize_counts_kinds_connections_and_rest():
    info = capture.summarize([CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"])
    assert info["records"] == 270
    assert info["kinds"] == {RECEIVED: 265, SENT: 0, OPEN: 1, REST: 4, CLOSE: 0, DRIVER: 0}
    assert info["connections"][0]["rest"] == 4 and info["connections"][1]["recv"] == 265
    assert info["connections"][1]["url"].startswith("wss://stream.binance.com:9443/stream?")
    assert info["rest"] == {"https://api.binance.com/api/v3/depth": 4}
    assert info["first_ns"] == 1633998511159679000
    assert info["formats"] == ["cryptofeed", "cryptofeed"]
