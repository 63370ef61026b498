"""Parallel replay (``replay(workers=N)``): the same result as one process, or its error.

Every test runs real worker processes (spawned once, kept in the pool between
tests) and compares against the single-process replay of the same input.
"""

from __future__ import annotations

import glob
import gzip
import os
import pickle
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

import fastbook as fb
from fastbook import parallel
from fastbook._shard import Shard, balance
from fastbook.errors import ReplayError, UpdateError
from fastbook.synth import itch_day, ose_day

DATA = Path(__file__).resolve().parents[1] / "data"
REAL_ITCH = DATA / "itch" / "ex20101224.TEST_ITCH_50.lenfixed.gz"
FEATURES = ["mid", "spread", "imbalance_3", "ofi_5", "trade_flow", "vpin_500_10"]


@pytest.fixture(scope="module")
def day() -> bytes:
    return itch_day(60_000, n_symbols=25, seed=11)


def assert_same(one: fb.driver.ReplayResult, many: fb.driver.ReplayResult) -> None:
    """Every part of two replays' results is equal (the test of this module)."""
    assert (many.messages, many.events, many.bytes, many.unknown_types) == \
        (one.messages, one.events, one.bytes, one.unknown_types)
    assert many.counts == one.counts
    assert many.errors == one.errors
    assert many.warnings == one.warnings
    assert many.crossed == one.crossed
    assert many.instruments == one.instruments
    assert len(many.books) == len(one.books)
    for i in range(len(one.books)):
        a, b = one.books[i], many.books[i]
        assert np.array_equal(a.orders(), b.orders()), one.books.instrument(i)["symbol"]
        assert one.books.instrument_errors(i) == many.books.instrument_errors(i)
        for side in (1, 2):
            for x, y in zip(a.to_arrays(side), b.to_arrays(side), strict=True):
                assert np.array_equal(x, y)
    for table, other in ((one.samples, many.samples), (one.trades, many.trades)):
        assert list(table) == list(other)
        for name, column in table.items():
            assert column.dtype == other[name].dtype, name
            assert np.array_equal(column, other[name], equal_nan=column.dtype.kind == "f"), name


def drop_messages(data: bytes, kind: bytes, every: int) -> bytes:
    """``data`` (BinaryFILE ITCH) without every ``every``-th message of type ``kind``."""
    out, pos, seen = bytearray(), 0, 0
    while pos < len(data):
        (n,) = struct.unpack_from(">H", data, pos)
        frame = data[pos:pos + 2 + n]
        pos += 2 + n
        if frame[2:3] == kind:
            seen += 1
            if seen % every == 0:
                continue
        out += frame
    return bytes(out)


# --- the same result -------------------------------------------------------

@pytest.mark.parametrize("workers", [2, 3])
def test_buffer_with_samples_features_and_trades(day: bytes, workers: int) -> None:
    kw = {"every": "100ms,bbo", "depth": 5, "features": FEATURES, "trades": True}
    one = fb.replay(day, "itch50", **kw)
    many = fb.replay(day, "itch50", workers=workers, **kw)
    assert_same(one, many)
    assert many.workers == workers and len(many.shards) == workers
    assert sum(s["events"] for s in many.shards) == one.events
    assert sum(s["rows"] for s in many.shards) == len(one.samples["ts"]) > 1000
    assert len({s["pid"] for s in many.shards}) == workers
    assert len(one.trades["ts"]) > 100


def test_plain_file_is_mapped_by_the_workers(day: bytes, tmp_path: Path) -> None:
    path = tmp_path / "day.itch"
    path.write_bytes(day)
    one = fb.replay(path, "itch50", every="1000msgs")
    assert_same(one, fb.replay(path, "itch50", every="1000msgs", workers=2))


def test_gzip_is_decompressed_once_and_fanned_out(day: bytes, tmp_path: Path) -> None:
    path = tmp_path / "day.itch.gz"
    path.write_bytes(gzip.compress(day, 1))
    one = fb.replay(path, "itch50", every="bbo")
    # small chunks: the ring's slots are reused many times over
    assert_same(one, fb.replay(path, "itch50", every="bbo", workers=2, chunk_size=1 << 16))


def test_real_nasdaq_sample(tmp_path: Path) -> None:
    # sampled from a real BX day, not book-consistent: its orphans are skipped and counted
    kw = {"every": "bbo", "trades": True, "on_error": "skip"}
    one = fb.replay(REAL_ITCH, "itch50", **kw)
    assert_same(one, fb.replay(REAL_ITCH, "itch50", workers=2, **kw))
    assert len(one.books) > 1 and sum(one.errors.values()) > 0


def test_symbols_within_the_shards(day: bytes) -> None:
    chosen = ["SYM0001", "SYM0004", "SYM0017", "SYM0025"]
    one = fb.replay(day, "itch50", symbols=chosen, every="bbo")
    many = fb.replay(day, "itch50", symbols=chosen, every="bbo", workers=2)
    assert_same(one, many)
    assert [d["symbol"] for d in many.instruments] == [d["symbol"] for d in one.instruments]


def test_symbols_not_found_warn_as_in_one_process(day: bytes) -> None:
    one = fb.replay(day, "itch50", symbols=["SYM0001", "SYM9999"])
    many = fb.replay(day, "itch50", symbols=["SYM0001", "SYM9999"], workers=2)
    assert many.warnings == one.warnings and "SYM9999" in one.warnings[0]


@pytest.mark.parametrize("form", ["binaryfile", "csv"])
def test_ose_and_jpx_csv(form: str) -> None:
    data = ose_day(30_000, form=form, n_options=10)
    codec = "jpx_csv" if form == "csv" else "ose_itch"
    kw = {"every": "bbo", "trades": True}
    one = fb.replay(data, codec, **kw)
    assert_same(one, fb.replay(data, codec, workers=2, **kw))
    assert len(one.books) >= 10


def test_skip_mode_counts_the_same_errors(day: bytes) -> None:
    broken = drop_messages(day, b"A", 97)       # deletes and executions of missing orders
    one = fb.replay(broken, "itch50", on_error="skip", every="bbo")
    assert sum(one.errors.values()) > 10
    assert_same(one, fb.replay(broken, "itch50", on_error="skip", every="bbo", workers=2))


def test_output_file_holds_the_same_table(day: bytes, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    kw = {"every": "50ms", "features": ["microprice", "ofi_3"], "row_group_size": 1024}
    fb.replay(day, "itch50", output=tmp_path / "one.parquet", **kw)
    many = fb.replay(day, "itch50", output=tmp_path / "many.parquet", workers=2, **kw)
    a = pq.read_table(tmp_path / "one.parquet")
    b = pq.read_table(tmp_path / "many.parquet")
    assert many.rows == a.num_rows > 1000 and many.samples == {}
    assert a.schema.equals(b.schema, check_metadata=True)
    for name in a.column_names:     # (Table.equals holds NaN unequal to itself)
        x, y = a.column(name).combine_chunks(), b.column(name).combine_chunks()
        if name == "symbol":
            x, y = x.cast("string"), y.cast("string")
        assert x.to_pylist() == y.to_pylist() or \
            np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=True), name


def test_trades_file(day: bytes, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    fb.replay(day, "itch50", trades=tmp_path / "one.parquet")
    fb.replay(day, "itch50", trades=tmp_path / "many.parquet", workers=2)
    assert pq.read_table(tmp_path / "one.parquet").equals(pq.read_table(tmp_path / "many.parquet"))


def test_lobster_files_are_written_by_the_workers(day: bytes, tmp_path: Path) -> None:
    chosen = ["SYM0001", "SYM0002", "SYM0003"]
    fb.replay(day, "itch50", symbols=chosen, lobster=tmp_path / "one", depth=3)
    fb.replay(day, "itch50", symbols=chosen, lobster=tmp_path / "many", depth=3, workers=2)
    names = sorted(os.listdir(tmp_path / "one"))
    assert names == sorted(os.listdir(tmp_path / "many")) and len(names) == 6
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()


# --- analysis in the workers -----------------------------------------------

def best_bids(result: fb.driver.ReplayResult) -> dict[str, object]:
    """A map_books function: each book's best bid and the worker that saw it."""
    books = result.books
    return {books.instrument(i)["symbol"]: (books[i].best_bid(), os.getpid())
            for i in range(len(books))}


def test_map_books_runs_in_every_worker(day: bytes) -> None:
    one = fb.replay(day, "itch50", map_books=best_bids)
    many = fb.replay(day, "itch50", map_books=best_bids, workers=2)
    assert one.mapped is not None and many.mapped is not None
    assert list(many.mapped) == [d["symbol"] for d in one.instruments]
    assert {s: v[0] for s, v in many.mapped.items()} == {s: v[0] for s, v in one.mapped.items()}
    assert {v[1] for v in many.mapped.values()} == {s["pid"] for s in many.shards}
    assert {v[1] for v in one.mapped.values()} == {os.getpid()}


def test_map_books_must_be_importable(day: bytes) -> None:
    with pytest.raises(TypeError, match="module level"):
        fb.replay(day, "itch50", workers=2, map_books=lambda r: {})


def not_a_mapping(result: fb.driver.ReplayResult) -> object:
    return [1, 2]


def test_map_books_must_return_a_mapping(day: bytes) -> None:
    with pytest.raises(TypeError, match="mapping"):
        fb.replay(day, "itch50", map_books=not_a_mapping)
    with pytest.raises(TypeError, match="mapping"):
        fb.replay(day, "itch50", workers=2, map_books=not_a_mapping)


# --- failures ----------------------------------------------------------------

def test_raise_mode_raises_what_one_process_raises(day: bytes) -> None:
    broken = drop_messages(day, b"A", 97)
    with pytest.raises(UpdateError) as single:
        fb.replay(broken, "itch50")
    with pytest.raises(UpdateError) as sharded:
        fb.replay(broken, "itch50", workers=2)
    assert str(sharded.value) == str(single.value)
    assert sharded.value.index == single.value.index
    assert any("shard" in note for note in getattr(sharded.value, "__notes__", []))


def test_a_worker_failing_early_frees_its_ring_slots(day: bytes, tmp_path: Path) -> None:
    # the error comes in the first messages of one shard; the other shard reads on through
    # many more chunks than the ring has slots, so the failed worker's slots must be freed
    broken = drop_messages(day, b"A", 9)
    path = tmp_path / "broken.itch.gz"
    path.write_bytes(gzip.compress(broken, 1))
    with pytest.raises(UpdateError) as single:
        fb.replay(path, "itch50")
    for _ in range(2):      # and the pool is in order afterwards
        with pytest.raises(UpdateError) as sharded:
            fb.replay(path, "itch50", workers=2, chunk_size=1 << 12)
        assert str(sharded.value) == str(single.value)
    assert_same(fb.replay(day, "itch50"), fb.replay(day, "itch50", workers=2,
                                                     chunk_size=1 << 12))


def test_a_decode_error_names_the_byte(day: bytes) -> None:
    pos = 0
    while pos < 20_000:        # a frame boundary past the directory
        pos += 2 + struct.unpack_from(">H", day, pos)[0]
    bad = day[:pos] + b"\x00\x00" + day[pos:]       # a length prefix of 0
    with pytest.raises(fb.DecodeError) as single:
        fb.replay(bad, "itch50")
    with pytest.raises(fb.DecodeError) as sharded:
        fb.replay(bad, "itch50", workers=2)
    assert str(sharded.value) == str(single.value)


def die(result: fb.driver.ReplayResult) -> None:
    """A map_books that kills its worker (a stand-in for a crash in user code)."""
    if any(s["symbol"] == "SYM0001" for s in result.instruments):
        os._exit(7)


def test_a_dead_worker_is_reported_and_the_pool_recovers(day: bytes) -> None:
    with pytest.raises(ReplayError, match="died with exit code 7"):
        fb.replay(day, "itch50", workers=2, map_books=die)
    one = fb.replay(day, "itch50", every="bbo")
    assert_same(one, fb.replay(day, "itch50", every="bbo", workers=2))


def _leftovers() -> set[str]:
    roots = [r for r in ("/dev/shm", os.environ.get("TMPDIR", "/tmp")) if r and os.path.isdir(r)]
    return {p for r in roots for p in glob.glob(os.path.join(r, "fastbook-parallel-*"))}


def test_cancel_before_and_during(day: bytes, tmp_path: Path) -> None:
    before = _leftovers()
    stop = threading.Event()
    stop.set()
    with pytest.raises(parallel.Cancelled):
        fb.replay(day, "itch50", workers=2, cancel=stop)
    with pytest.raises(parallel.Cancelled):
        fb.replay(day, "itch50", cancel=stop, chunk_size=1 << 16, every="bbo",
                  output=tmp_path / "one.parquet")
    assert os.listdir(tmp_path) == []       # neither the file nor its partial one
    # during: a day long enough that the workers are still at it
    path = tmp_path / "big.itch.gz"
    path.write_bytes(gzip.compress(itch_day(600_000, n_symbols=50), 1))
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    try:
        with pytest.raises(parallel.Cancelled):
            fb.replay(path, "itch50", workers=2, cancel=stop, every="bbo",
                      output=tmp_path / "out.parquet", chunk_size=1 << 16)
    finally:
        timer.cancel()
    assert sorted(os.listdir(tmp_path)) == ["big.itch.gz"]
    assert _leftovers() <= before
    assert_same(fb.replay(day, "itch50"), fb.replay(day, "itch50", workers=2))


def test_bad_arguments(day: bytes) -> None:
    with pytest.raises(ValueError, match="workers must be"):
        fb.replay(day, "itch50", workers=0)
    with pytest.raises(ValueError, match="bookset"):
        fb.replay(day, "itch50", workers=2, bookset=fb.BookSet())
    capture = next(iter(sorted((DATA / "l2").glob("*binance*"))), None)
    if capture is not None:
        with pytest.raises(ValueError, match="one process"):
            fb.replay(capture, "binance-spot", workers=2)
    with pytest.raises(ValueError, match="not options of a consolidated replay"):
        fb.replay([day], "itch50", consolidate=True, workers=2)
    assert parallel.worker_count("auto") >= 1
    # one worker is the plain replay
    assert fb.replay(day, "itch50", workers=1).workers == 1


# --- shards ----------------------------------------------------------------

def test_shards_split_every_symbol_once() -> None:
    symbols = [f"S{i}" for i in range(200)] + ["ÄÖ", "\udcff"]
    assign = balance({s: i % 7 + 1 for s, i in zip(symbols, range(50), strict=False)}, 3)
    for table in (None, assign):
        shards = [Shard(k, 3, table) for k in range(3)]
        for s in symbols:
            assert sum(s in shard for shard in shards) == 1
        assert 5 not in shards[0] and None not in shards[1]
    shard = Shard(1, 3, assign, within=["S1", "S2"])
    assert pickle.loads(pickle.dumps(shard)) == shard
    assert {s for s in symbols if s in shard} <= {"S1", "S2"}
    with pytest.raises(ValueError):
        Shard(3, 3)
    with pytest.raises(ValueError):
        Shard(0, 2, {"A": 2})


def test_balance_is_even_and_deterministic() -> None:
    weights = {f"S{i}": 1000 // (i + 1) for i in range(100)}
    a = balance(weights, 2)
    assert a == balance(dict(reversed(list(weights.items()))), 2)
    loads = [sum(w for s, w in weights.items() if a[s] == k) for k in range(2)]
    assert abs(loads[0] - loads[1]) <= max(weights.values()) // 10 + 1


def test_progress_is_drawn_by_one_worker(day: bytes, capfd: pytest.CaptureFixture[str]) -> None:
    fb.replay(day, "itch50", workers=2, progress=True)
    err = capfd.readouterr().err
    assert err.count("100.0%") == 1 and "msgs/s" in err
    fb.replay(day, "itch50", workers=2, progress=False)
    assert capfd.readouterr().err == ""


def test_a_failed_run_leaves_no_lobster_files(day: bytes, tmp_path: Path) -> None:
    broken = drop_messages(day, b"A", 97)
    for workers in (1, 2):
        out = tmp_path / f"lob{workers}" / "deeper"
        with pytest.raises(UpdateError):
            fb.replay(broken, "itch50", lobster=out, workers=workers)
        assert not (tmp_path / f"lob{workers}").exists()
