"""Streaming byte sources (``fastbook.sources``): every kind of input, chunking, errors, threads."""

from __future__ import annotations

import gc
import gzip
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from fastbook import sources
from fastbook.errors import DecodeError
from fastbook.sources import Progress, Source, open_source

try:
    import zstandard
except ImportError:  # pragma: no cover - an optional dependency
    zstandard = None

try:
    import isal  # noqa: F401
except ImportError:  # pragma: no cover - an optional dependency
    HAVE_ISAL = False
else:
    HAVE_ISAL = True

needs_zstd = pytest.mark.skipif(zstandard is None, reason="zstandard is not installed")


def market_bytes(n_records: int, seed: int = 1) -> bytes:
    """ITCH-like frames: repeated structs with incrementing and random fields (compressible)."""
    rng = np.random.default_rng(seed)
    rec = np.dtype(
        [
            ("len", ">u2"),
            ("type", "S1"),
            ("locate", ">u2"),
            ("ts", ">u8"),
            ("ref", ">u8"),
            ("side", "S1"),
            ("shares", ">u4"),
            ("price", ">u4"),
        ]
    )
    a = np.zeros(n_records, rec)
    a["len"] = rec.itemsize - 2
    a["type"] = np.where(rng.random(n_records) < 0.7, b"A", b"D")
    a["locate"] = rng.integers(1, 50, n_records)
    a["ts"] = 34_200_000_000_000 + np.cumsum(rng.integers(0, 5000, n_records))
    a["ref"] = np.arange(n_records) + 1000
    a["side"] = np.where(rng.random(n_records) < 0.5, b"B", b"S")
    a["shares"] = rng.integers(1, 20, n_records) * 100
    a["price"] = 1_000_000 + rng.integers(-500, 500, n_records)
    return a.tobytes()


DATA = market_bytes(12_000)  # about 360 KB
SMALL = market_bytes(150, seed=2)  # about 4.5 KB, for 1-byte chunks


def gzip_members(data: bytes, parts: int = 3) -> bytes:
    """A multi-member gzip file (one member written with a file name in its header)."""
    cut = [len(data) * k // parts for k in range(parts + 1)]
    out = io.BytesIO()
    for k in range(parts):
        piece = data[cut[k] : cut[k + 1]]
        if k == 1:
            with gzip.GzipFile(filename="part.itch", mode="wb", fileobj=out, mtime=0) as g:
                g.write(piece)
        else:
            out.write(gzip.compress(piece, compresslevel=1 + 4 * k))
    return out.getvalue()


def zstd_frames(data: bytes, parts: int = 3) -> bytes:
    cut = [len(data) * k // parts for k in range(parts + 1)]
    return b"".join(
        zstandard.ZstdCompressor(level=3).compress(data[cut[k] : cut[k + 1]]) for k in range(parts)
    )


def encode(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip_members(data)
    if compression == "zstd":
        if zstandard is None:
            pytest.skip("zstandard is not installed")
        return zstd_frames(data)
    return data


def use_gzip_backend(backend: str, monkeypatch) -> None:
    if backend == "isal":
        if not HAVE_ISAL:
            pytest.skip("isal is not installed")
    else:
        monkeypatch.setattr(sources, "_import_isal", lambda: None)


@pytest.fixture(params=["isal", "zlib"])
def gzip_backend(request, monkeypatch):
    """Run a test with isal (when installed) and with the standard library's zlib."""
    use_gzip_backend(request.param, monkeypatch)
    return request.param


#: What the round-trip tests cover: each compression, and gzip through both backends.
CODECS = ["none", "gzip-isal", "gzip-zlib", "zstd"]


def use_codec(codec: str, monkeypatch) -> tuple[str, str | None]:
    """(compression, gzip backend) for a CODECS entry, with that backend selected."""
    compression, _, backend = codec.partition("-")
    if backend:
        use_gzip_backend(backend, monkeypatch)
    return compression, backend or None


def source_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fastbook-source")]


def wait_for_no_source_threads(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while source_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not source_threads()


def read_all(src: Source) -> tuple[bytes, list[int]]:
    sizes, parts = [], []
    for chunk in src:
        sizes.append(len(chunk))
        parts.append(bytes(chunk))  # a chunk may be a reused buffer: copy it now
    return b"".join(parts), sizes


def check_chunking(sizes: list[int], total: int, chunk_size: int) -> None:
    assert sum(sizes) == total
    assert all(s == chunk_size for s in sizes[:-1])
    assert not sizes or 0 < sizes[-1] <= chunk_size


# ---------------------------------------------------------------------------
# every kind of source gives back exactly the original bytes
# ---------------------------------------------------------------------------

KINDS = [
    "path",
    "pathlike",
    "open_file",
    "bytesio",
    "read_only",
    "bytes",
    "bytearray",
    "memoryview",
    "numpy",
]


class ReadOnly:
    """A stream with only read() (no readinto), returning short reads."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(min(n, 1000) if n > 0 else n)


def make_source(kind: str, payload: bytes, tmp_path: Path):
    if kind in ("path", "pathlike", "open_file"):
        path = tmp_path / "input.bin"
        path.write_bytes(payload)
        if kind == "path":
            return str(path)
        if kind == "pathlike":
            return path
        return open(path, "rb")
    return {
        "bytesio": lambda: io.BytesIO(payload),
        "read_only": lambda: ReadOnly(payload),
        "bytes": lambda: payload,
        "bytearray": lambda: bytearray(payload),
        "memoryview": lambda: memoryview(payload),
        "numpy": lambda: np.frombuffer(payload, dtype=np.uint8),
    }[kind]()


@pytest.mark.parametrize("threads", [True, False], ids=["threads", "inline"])
@pytest.mark.parametrize("chunk_size", [4096, 100_003, 1 << 20])
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind, codec, chunk_size, threads, tmp_path, monkeypatch):
    compression, backend = use_codec(codec, monkeypatch)
    payload = encode(DATA, compression)
    src_obj = make_source(kind, payload, tmp_path)
    with open_source(src_obj, chunk_size=chunk_size, threads=threads) as src:
        assert src.compression == compression
        out, sizes = read_all(src)
        assert out == DATA
        assert src.bytes_out == len(DATA)
        assert src.raw_bytes_read == len(payload)
        if kind in ("bytes", "bytearray", "memoryview", "numpy") and compression == "none":
            assert sizes == [len(DATA)]  # one zero-copy chunk
        else:
            check_chunking(sizes, len(DATA), chunk_size)
        if kind in ("path", "pathlike", "open_file", "bytes", "bytearray", "memoryview", "numpy"):
            assert src.size == len(payload)
        if backend is not None:
            assert src.backend == backend
    if kind == "open_file":
        assert not src_obj.closed  # the caller's file is left open
        src_obj.close()
    wait_for_no_source_threads()


@pytest.mark.parametrize("threads", [True, False], ids=["threads", "inline"])
@pytest.mark.parametrize("chunk_size", [1, 7])
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", ["path", "bytesio", "read_only", "bytes"])
def test_tiny_chunks(kind, codec, chunk_size, threads, tmp_path, monkeypatch):
    compression, _ = use_codec(codec, monkeypatch)
    payload = encode(SMALL, compression)
    with open_source(
        make_source(kind, payload, tmp_path), chunk_size=chunk_size, threads=threads
    ) as src:
        out, sizes = read_all(src)
    assert out == SMALL
    if not (kind == "bytes" and compression == "none"):
        check_chunking(sizes, len(SMALL), chunk_size)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_explicit_compression(compression, tmp_path):
    payload = encode(DATA, compression)
    path = tmp_path / "x"
    path.write_bytes(payload)
    with open_source(path, compression=compression, chunk_size=65536) as src:
        assert read_all(src)[0] == DATA
    with open_source(path, compression="none") as src:  # no decompression: the raw bytes
        assert read_all(src)[0] == payload
        assert src.backend is None


def test_plain_file_is_memory_mapped_zero_copy(tmp_path):
    path = tmp_path / "plain.bin"
    path.write_bytes(DATA)
    with open_source(path, chunk_size=65536) as src:
        assert src.mmapped and not src.threaded
        chunks = list(src)
        assert all(isinstance(c, memoryview) and c.readonly for c in chunks)
        assert b"".join(chunks) == DATA
        # the chunks are views of one map, not copies
        assert len({id(c.obj) for c in chunks}) == 1
    # closing while chunks are still referenced does not raise; they stay readable
    assert bytes(chunks[-1]) == DATA[-len(chunks[-1]) :]
    del chunks
    with open_source(path, mmap=False, chunk_size=65536) as src:
        assert not src.mmapped
        assert read_all(src)[0] == DATA


def test_buffer_is_one_zero_copy_chunk():
    for obj in (DATA, bytearray(DATA), np.frombuffer(DATA, np.uint8)):
        with open_source(obj) as src:
            (chunk,) = list(src)
            assert chunk.obj is obj
    wide = np.frombuffer(DATA[:800], dtype="<u8")
    with open_source(wide) as src:
        assert bytes(next(src)) == DATA[:800]
    with pytest.raises(ValueError, match="C-contiguous"):
        open_source(np.frombuffer(DATA, np.uint8)[::2])


def test_reused_buffers_alternate(tmp_path):
    """Chunks of a stream are reused buffers; each is intact until the next is requested."""
    stream = io.BytesIO(DATA)
    with open_source(stream, chunk_size=1000, compression="none") as src:
        seen = []
        for k, chunk in enumerate(src):
            assert bytes(chunk) == DATA[k * 1000 : (k + 1) * 1000]
            seen.append(chunk.obj)
        assert len({id(o) for o in seen}) == 2


def test_empty_inputs(tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    for obj in (empty, b"", io.BytesIO(b""), gzip.compress(b"")):
        with open_source(obj) as src:
            assert list(src) == []
            assert src.bytes_out == 0
    with open_source(empty) as src:
        assert src.compression == "none" and src.size == 0 and not src.mmapped


def test_multi_member_gzip_with_padding(gzip_backend):
    # gzip allows NUL padding after members; concatenated members are one stream
    payload = (
        gzip.compress(DATA[:1000])
        + b"\0" * 10
        + gzip.compress(b"")
        + gzip.compress(DATA[1000:])
        + b"\0" * 3
    )
    with open_source(payload, chunk_size=4096) as src:
        assert read_all(src)[0] == DATA


@needs_zstd
def test_zstd_skippable_frame_is_detected():
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"meta"
    payload = skippable + zstd_frames(DATA)
    with open_source(payload, chunk_size=65536) as src:
        assert src.compression == "zstd"
        assert read_all(src)[0] == DATA


def test_peeked_bytes_are_replayed_for_unseekable_streams(gzip_backend):
    class Pipe(io.RawIOBase):
        """Unseekable, and returns at most 3 bytes per read."""

        def __init__(self, data: bytes) -> None:
            self._f = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            n = min(len(b), 3)
            data = self._f.read(n)
            b[: len(data)] = data
            return len(data)

    for payload in (DATA[:5000], gzip.compress(DATA[:5000])):
        with open_source(Pipe(payload), chunk_size=777) as src:
            out, sizes = read_all(src)
        assert out == DATA[:5000]
        check_chunking(sizes, 5000, 777)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_named_pipe_path(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    payload = gzip_members(DATA)

    def writer() -> None:
        with open(fifo, "wb") as f:
            f.write(payload)

    t = threading.Thread(target=writer)
    t.start()
    try:
        with open_source(fifo, chunk_size=50_000) as src:
            assert src.compression == "gzip" and src.size is None and not src.mmapped
            assert read_all(src)[0] == DATA
    finally:
        t.join()


def test_stdin_in_a_subprocess(tmp_path):
    script = textwrap.dedent("""
        import hashlib, sys
        from fastbook.sources import open_source
        h = hashlib.sha256()
        with open_source("-", chunk_size=10_000) as src:
            for chunk in src:
                h.update(chunk)
        print(src.name, src.compression, src.bytes_out, h.hexdigest())
    """)
    import hashlib

    want = hashlib.sha256(DATA).hexdigest()
    for compression in ("none", "gzip"):
        payload = encode(DATA, compression)
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=payload,
            capture_output=True,
            timeout=120,
            check=True,
        )
        assert done.stdout.decode().split() == ["<stdin>", compression, str(len(DATA)), want]
        # and redirected from a file, as the shell does with `< file`
        path = tmp_path / f"in.{compression}"
        path.write_bytes(payload)
        with open(path, "rb") as f:
            done = subprocess.run(
                [sys.executable, "-c", script],
                stdin=f,
                capture_output=True,
                timeout=120,
                check=True,
            )
        assert done.stdout.decode().split() == ["<stdin>", compression, str(len(DATA)), want]


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [True, False], ids=["threads", "inline"])
def test_corrupt_gzip_names_the_file_and_offset(tmp_path, gzip_backend, threads):
    good = gzip.compress(DATA)
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    corrupt[len(corrupt) // 2 + 1] ^= 0x55
    path = tmp_path / "broken.itch.gz"
    path.write_bytes(bytes(corrupt))
    with pytest.raises(
        DecodeError,
        match=r"broken\.itch\.gz: corrupt gzip data in member 1, "
        r"which starts at compressed byte 0",
    ) as info:
        with open_source(path, chunk_size=4096, threads=threads) as src:
            read_all(src)
    assert isinstance(info.value, ValueError)
    wait_for_no_source_threads()


@pytest.mark.parametrize("threads", [True, False], ids=["threads", "inline"])
def test_truncated_gzip(tmp_path, gzip_backend, threads):
    payload = gzip_members(DATA)
    path = tmp_path / "cut.gz"
    path.write_bytes(payload[:-100])
    with pytest.raises(
        DecodeError,
        match=rf"cut\.gz: truncated gzip data: the input ends at "
        rf"compressed byte {len(payload) - 100}, inside "
        rf"member 3",
    ):
        with open_source(path, threads=threads) as src:
            read_all(src)
    # the data before the cut was delivered
    with open_source(path, chunk_size=1000, threads=threads) as src:
        got = []
        with pytest.raises(DecodeError, match="truncated"):
            for chunk in src:
                got.append(bytes(chunk))
    assert b"".join(got) == DATA[: len(b"".join(got))] and len(got) > 10
    wait_for_no_source_threads()


def test_gzip_garbage_and_not_gzip(gzip_backend):
    with pytest.raises(
        DecodeError,
        match=r"<buffer>: corrupt gzip data in member 2.*"
        r"is what follows member 1 gzip data",
    ):
        list(open_source(gzip.compress(DATA) + b"trailing garbage", threads=False))
    with pytest.raises(DecodeError, match="corrupt gzip data in member 1"):
        list(open_source(b"plain text, not gzip", compression="gzip"))


@needs_zstd
def test_truncated_and_corrupt_zstd(tmp_path):
    payload = zstd_frames(DATA)
    path = tmp_path / "cut.zst"
    path.write_bytes(payload[:-50])
    with pytest.raises(DecodeError, match=r"cut\.zst: truncated zstd data.*inside frame 3"):
        list(open_source(path))
    with pytest.raises(DecodeError, match="corrupt zstd data in frame 1"):
        list(open_source(b"not zstd at all", compression="zstd"))
    wait_for_no_source_threads()


def test_zstd_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "compression", None)
    with pytest.raises(ImportError, match=r"pip install 'fastbook-lob\[zstd\]'"):
        open_source(b"\x28\xb5\x2f\xfd" + b"\0" * 20)
    # uncompressed and gzip input need nothing optional
    assert bytes(next(open_source(b"abc"))) == b"abc"


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="chunk_size"):
        open_source(b"x", chunk_size=0)
    with pytest.raises(ValueError, match="compression"):
        open_source(b"x", compression="bz2")
    with pytest.raises(TypeError, match="text stream"):
        open_source(io.StringIO("text"))
    with pytest.raises(TypeError, match="bytes-like"):
        open_source(42)
    with pytest.raises(FileNotFoundError, match=r"missing\.itch"):
        open_source(tmp_path / "missing.itch")
    src = open_source(b"abc")
    src.close()
    src.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        next(src)


# ---------------------------------------------------------------------------
# the decompression thread never outlives its use
# ---------------------------------------------------------------------------

BIG_GZ = gzip.compress(DATA * 8, compresslevel=1)  # about 2.9 MB out: many small chunks


def test_early_close_stops_the_thread(gzip_backend):
    baseline = threading.active_count()
    src = open_source(BIG_GZ, chunk_size=4096)
    assert src.threaded
    next(src)
    time.sleep(0.05)  # let the thread fill the queue and block
    assert source_threads()
    src.close()
    assert not source_threads()
    assert threading.active_count() == baseline


def test_exception_in_the_consumer_stops_the_thread(gzip_backend):
    baseline = threading.active_count()
    with pytest.raises(RuntimeError, match="decoder failed"):
        with open_source(BIG_GZ, chunk_size=4096) as src:
            for k, _ in enumerate(src):
                if k == 3:
                    raise RuntimeError("decoder failed")
    assert threading.active_count() == baseline


def test_dropped_source_stops_the_thread(gzip_backend):
    baseline = threading.active_count()
    src = open_source(BIG_GZ, chunk_size=4096)
    next(src)
    del src
    gc.collect()
    wait_for_no_source_threads()
    assert threading.active_count() == baseline


def test_an_abandoned_source_does_not_hang_the_interpreter():
    script = textwrap.dedent("""
        import gzip
        from fastbook.sources import open_source
        src = open_source(gzip.compress(bytes(range(256)) * 100_000), chunk_size=1000)
        next(src)
        print("exiting")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "exiting"


def test_progress_counters_are_monotonic(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(BIG_GZ)
    with open_source(path, chunk_size=65536) as src:
        raw = []
        for _ in src:
            raw.append(src.raw_bytes_read)
        assert raw == sorted(raw) and raw[-1] == src.size == len(BIG_GZ)
        assert src.bytes_out == len(DATA) * 8


# ---------------------------------------------------------------------------
# bounded memory (a memory bound, not a timing assertion)
# ---------------------------------------------------------------------------

RSS_SCRIPT = textwrap.dedent("""
    import resource, sys, zlib
    from fastbook.sources import open_source

    def peak():
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss if sys.platform == "darwin" else rss * 1024   # Linux: KiB

    before = peak()
    crc = 0
    with open_source(sys.argv[1]) as src:
        for chunk in src:
            crc = zlib.crc32(chunk, crc)          # touches every byte
        out = src.bytes_out
    print(out, crc, peak() - before)
""")


def big_gzip(path: Path) -> tuple[int, int]:
    """~200 MB of gzip (~300 MB of data): a 256 MiB one-member run of zeros, then
    many members of hardly compressible market-like bytes. Returns (size, crc) of the data."""
    rng = np.random.default_rng(5)
    block = bytearray(market_bytes(60_000, seed=9))
    noise = rng.integers(0, 256, len(block) * 3 // 5, dtype=np.uint8).tobytes()
    block[: len(noise)] = noise  # ~60% random: compresses about 1.4x
    block = bytes(block)
    member = gzip.compress(block, compresslevel=1)
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    bomb = b"".join([z.compress(zeros) for _ in range(256)]) + z.flush()
    copies = max(1, (200 << 20) // len(member))
    with open(path, "wb") as f:
        f.write(bomb)
        for _ in range(copies):
            f.write(member)
    crc = zlib.crc32(block * copies, zlib.crc32(bytes(256 << 20)))
    return (256 << 20) + copies * len(block), crc


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="resource.getrusage is POSIX-only")
@pytest.mark.parametrize("kind", ["gzip", "plain"])
def test_resident_memory_stays_bounded(kind, tmp_path):
    path = tmp_path / f"big.{kind}"
    if kind == "gzip":
        size, crc = big_gzip(path)
        assert path.stat().st_size > 150 << 20  # far more than the bound, compressed
    else:
        block = market_bytes(100_000, seed=3)
        copies = (300 << 20) // len(block)
        with open(path, "wb") as f:
            for _ in range(copies):
                f.write(block)
        size, crc = copies * len(block), zlib.crc32(block * copies)
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(path)], capture_output=True, timeout=600, check=True
    )
    out, got_crc, growth = map(int, done.stdout.split())
    assert (out, got_crc) == (size, crc)
    assert growth < 100 << 20, f"peak RSS grew by {growth / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_when_not_a_tty():
    stream = io.StringIO()
    p = Progress(1000, stream=stream, min_interval=0)
    assert not p.enabled
    for k in range(100):
        p.update(k * 10, k)
    p.close()
    assert stream.getvalue() == ""


def test_progress_draws_on_a_tty():
    stream = FakeTTY()
    p = Progress(1_135_000_000, stream=stream, min_interval=0)
    assert p.enabled
    p._start -= 10.0  # as if started 10 s ago
    p.update(512_000_000, 123_000_000)
    assert stream.getvalue() == "\r45.1% 512.0 MB 12.3 M msgs/s ETA 0:12"
    p.update(1_135_000_000, 200_000_000)
    p.close()
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\r") == 3
    assert "100.0% 1.1 GB" in text and "ETA 0:00" in text
    p.close()  # idempotent
    assert stream.getvalue() == text


def test_progress_line_formats():
    p = Progress(stream=io.StringIO(), unit_name="events")
    p._start -= 2.0
    p.update(1500, 3000)
    line = p.line(p._start + 2.0)
    assert line == "1.5 kB 1.5 k events/s"  # no total: no percentage, no ETA
    assert sources._clock(31) == "0:31" and sources._clock(3723) == "1:02:03"
    assert sources._bytes(999) == "999 B" and sources._bytes(2.5e12) == "2.5 TB"


def test_progress_rate_limits_itself():
    stream = FakeTTY()
    p = Progress(100, stream=stream, min_interval=3600)
    for k in range(10_000):
        p.update(k, k)
    assert stream.getvalue() == ""  # not due yet
    p.close()  # the final state is always drawn
    assert stream.getvalue().count("\r") == 1


def test_progress_never_raises_on_odd_streams():
    closed = FakeTTY()
    p = Progress(10, stream=closed, min_interval=0)
    closed.close()
    p.update(5, 5)
    p.close()
    assert not p.enabled

    class Odd:
        def isatty(self):
            raise OSError("no terminal here")

        def write(self, text):
            raise OSError("gone")

    p = Progress(10, stream=Odd(), min_interval=0)
    assert not p.enabled
    p = Progress(10, stream=Odd(), min_interval=0, enabled=True)
    p.update(1, 1)
    p.close()
    assert not p.enabled
    with Progress(stream=object(), min_interval=0) as p:  # no isatty at all
        p.update(1, 1)
