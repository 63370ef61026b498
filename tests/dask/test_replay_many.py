"""fastbook.dask.replay_many on real LocalClusters: the dataset equals the serial replays.

Two clusters, made once for the module and closed after it: in-process
(``processes=False``, the worker a thread pool of this process) and two worker
processes on 127.0.0.1. Every check compares with ``fb.replay`` run serially on the
same file: the rows of each (date, symbol) partition, the per-file counts.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import threading
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ds = pytest.importorskip("pyarrow.dataset")

import fastbook as fb  # noqa: E402
from fastbook import synth  # noqa: E402
from fastbook.dask import MANIFEST, replay_many, submit_many  # noqa: E402

L2 = Path(__file__).resolve().parents[1] / "data" / "l2" / "cryptofeed"
TIMEOUT = 120


@pytest.fixture(scope="module")
def inproc() -> Any:
    from distributed.comm import inproc as inproc_comm

    # the in-process transport names its addresses after this host's IP, which it
    # would otherwise find by routing a UDP socket towards 8.8.8.8: stay on loopback
    inproc_comm.global_manager._ip = "127.0.0.1"
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster, timeout="30s") as client:
        yield client


@pytest.fixture(scope="module")
def processes() -> Any:
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster, timeout="30s") as client:
        yield client


def itch_files(tmp: Path, n: int, messages: int = 12_000) -> list[str]:
    paths = []
    for i in range(n):
        path = tmp / f"2024060{3 + i}.itch"
        path.write_bytes(synth.itch_day(messages, n_symbols=7, seed=100 + i))
        paths.append(str(path))
    return paths


def partitions(out: Path) -> dict[tuple[str, str], Any]:
    """Every (date, symbol) partition's rows: its part files read in name order."""
    found: dict[tuple[str, str], Any] = {}
    for part_dir in sorted(glob.glob(str(out / "date=*" / "symbol=*"))):
        date = os.path.basename(os.path.dirname(part_dir)).split("=", 1)[1]
        symbol = os.path.basename(part_dir).split("=", 1)[1]
        tables = [pq.read_table(p) for p in sorted(glob.glob(os.path.join(part_dir, "*")))]
        found[(date, symbol)] = pa.concat_tables(tables).replace_schema_metadata(None)
    return found


def serial_partitions(path: str, codec: str, date: str, **options: Any
                      ) -> tuple[dict[tuple[str, str], Any], Any]:
    """The serial replay's rows per (date, symbol), without the columns parts omit."""
    result = fb.replay(path, codec, **options)
    table = result.to_arrow()
    symbols = table.column("symbol").to_pylist()
    rest = table.drop_columns(["instrument", "symbol"]).replace_schema_metadata(None)
    out = {}
    for symbol in sorted(set(symbols)):
        mask = pa.array([s == symbol for s in symbols])
        out[(date, symbol)] = rest.filter(mask)
    return out, result


def same(a: Any, b: Any) -> bool:
    """Tables equal column by column, value by value (NaN features equal NaN)."""
    import numpy as np

    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    for name in a.column_names:
        x = a.column(name).to_numpy(zero_copy_only=False)
        y = b.column(name).to_numpy(zero_copy_only=False)
        floats = x.dtype.kind == "f"
        if not np.array_equal(x, y, equal_nan=floats):
            return False
    return True


def check_equal(out: Path, files: list[str], codec: str, dates: list[str],
                many: Any, **options: Any) -> None:
    expected: dict[tuple[str, str], Any] = {}
    for path, date, got in zip(files, dates, many.files, strict=True):
        rows, serial = serial_partitions(path, codec, date, **options)
        expected.update(rows)
        assert got.complete, got.error
        assert (got.messages, got.bytes, got.events, got.rows) == \
            (serial.messages, serial.bytes, serial.events, serial.rows or len(serial.samples["ts"]))
        assert got.errors == serial.errors
        if serial.kind == "stream":
            assert got.counts == serial.counts
    written = partitions(out)
    assert sorted(written) == sorted(expected)
    for key, table in expected.items():
        assert same(written[key], table), key
    assert many.rows == sum(t.num_rows for t in expected.values())


def test_itch_in_process_equals_serial(tmp_path: Path, inproc: Any) -> None:
    files = itch_files(tmp_path, 2)
    out = tmp_path / "out"
    options = {"every": "1s", "depth": 5, "features": ["mid", "imbalance_5"]}
    many = replay_many(files, "itch50", out=out, shards=3, client=inproc, timeout=TIMEOUT,
                       **options)
    assert many.ok and len(many.complete) == 2
    check_equal(out, files, "itch50", ["2024-06-03", "2024-06-04"], many, **options)
    # the dataset reads back as one table with the partition keys as columns
    table = many.dataset().to_table()
    assert table.num_rows == many.rows and {"date", "symbol"} <= set(table.column_names)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is True and manifest["shards"] == 3
    assert [f["status"] for f in manifest["files"]] == ["complete", "complete"]
    assert not [p for p in os.listdir(out) if p.startswith("_staging")]


def test_itch_two_worker_processes_equal_serial(tmp_path: Path, processes: Any) -> None:
    files = itch_files(tmp_path, 3)
    out = tmp_path / "out"
    many = replay_many(files, "itch50", out=out, shards=2, client=processes, every="bbo",
                       depth=3, timeout=TIMEOUT)
    assert many.workers == 2
    check_equal(out, files, "itch50", ["2024-06-03", "2024-06-04", "2024-06-05"], many,
                every="bbo", depth=3)


def test_ose_equals_serial(tmp_path: Path, inproc: Any) -> None:
    path = tmp_path / "20240603.ose"
    path.write_bytes(synth.ose_day(15_000, n_options=6, seed=3))
    out = tmp_path / "out"
    many = replay_many([path], "ose_itch", out=out, shards=3, client=inproc, every="1s",
                       timeout=TIMEOUT)
    check_equal(out, [str(path)], "ose_itch", ["2024-06-03"], many, every="1s")
    assert len(partitions(out)) >= 5      # the futures, the spread and options


def test_l2_capture_equals_serial(tmp_path: Path, inproc: Any) -> None:
    capture = str(L2 / "COINBASE.ws.28.0.gz")
    out = tmp_path / "out"
    many = replay_many([capture], "coinbase-exchange", out=out, shards=3, client=inproc,
                       every="bbo", depth=4, dates="2022-05-01", timeout=TIMEOUT)
    check_equal(out, [capture], "coinbase-exchange", ["2022-05-01"], many, every="bbo",
                depth=4)
    serial = fb.replay(capture, "coinbase-exchange", every="bbo", depth=4)
    got = many.files[0].counts
    assert got["records"] == serial.counts["records"]        # the capture's, once
    assert got["applied"] == serial.counts["applied"]        # per symbol, summed
    assert "ignored" not in got


def test_corrupt_file_fails_alone(tmp_path: Path, inproc: Any) -> None:
    files = itch_files(tmp_path, 3)
    whole = Path(files[1]).read_bytes()
    Path(files[1]).write_bytes(whole[: len(whole) * 2 // 3 + 1])     # ends inside a message
    out = tmp_path / "out"
    many = replay_many(files, "itch50", out=out, shards=2, client=inproc, every="1s",
                       timeout=TIMEOUT)
    assert not many.ok
    assert [f.status for f in many.files] == ["complete", "failed", "complete"]
    error = many.failed[0].error or ""
    assert "20240604.itch" in error and "byte " in error and "message " in error
    assert "truncated" in error
    # the good files' rows are all there, the bad file's are not
    written = partitions(out)
    assert {d for d, _ in written} == {"2024-06-03", "2024-06-05"}
    for i in (0, 2):
        rows, _ = serial_partitions(files[i], "itch50", many.files[i].date or "", every="1s")
        for key, table in rows.items():
            assert same(written[key], table)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is False
    assert [f["status"] for f in manifest["files"]] == ["complete", "failed", "complete"]
    assert manifest["files"][1]["error"] == error and manifest["files"][1]["parts"] == []
    assert not [p for p in os.listdir(out) if p.startswith("_staging")]
    with pytest.raises(Exception, match="1 file"):
        many.check()


def dataset_files(out: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]


def test_cancel_leaves_no_dataset(tmp_path: Path, inproc: Any) -> None:
    files = itch_files(tmp_path, 4, messages=60_000)
    out = tmp_path / "out"
    job = submit_many(files, "itch50", out=out, shards=2, client=inproc, every="1s")
    job.cancel()
    with pytest.raises(CancelledError):
        job.result(timeout=TIMEOUT)
    assert dataset_files(out) == []
    assert all(f.cancelled() or f.done() for f in job.futures)


def test_ctrl_c_leaves_no_dataset(tmp_path: Path, inproc: Any) -> None:
    import _thread

    files = itch_files(tmp_path, 6, messages=80_000)
    out = tmp_path / "out"
    job = submit_many(files, "itch50", out=out, shards=2, client=inproc, every="1s")
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            job.result(timeout=TIMEOUT)
    finally:
        timer.cancel()
    assert not (out / MANIFEST).exists() and not os.path.exists(job.staging)
    assert not [p for p in dataset_files(out) if p.endswith(".parquet")]
    assert all(f.cancelled() or f.done() for f in job.futures)


def test_a_file_without_a_date(tmp_path: Path) -> None:
    path = tmp_path / "capture.itch"
    path.write_bytes(synth.itch_day(2_000, n_symbols=2))
    with pytest.raises(ValueError, match=r"no date is known for .*capture\.itch.*dates="):
        replay_many([path], out=tmp_path / "out", every="1s")
    assert not (tmp_path / "out").exists()


def test_partition_by_symbol_only_keeps_the_date_out(tmp_path: Path, inproc: Any) -> None:
    path = tmp_path / "capture.itch"
    path.write_bytes(synth.itch_day(5_000, n_symbols=3, seed=9))
    out = tmp_path / "out"
    many = replay_many([path], out=out, shards=2, client=inproc, every="1s",
                       partition=("symbol",), timeout=TIMEOUT)
    assert many.ok and many.files[0].date is None
    serial = fb.replay(path, every="1s")
    symbols = set(serial.to_arrow().column("symbol").to_pylist())
    assert sorted(os.listdir(out)) == [MANIFEST, *sorted(f"symbol={s}" for s in symbols)]


@pytest.mark.parametrize("bad, match", [
    ({"every": None}, "every="),
    ({"shards": 0}, "shards"),
    ({"partition": ("venue",)}, "partition"),
    ({"output": "x.parquet"}, "output="),
])
def test_bad_arguments_fail_before_any_work(tmp_path: Path, bad: dict[str, Any],
                                            match: str) -> None:
    files = itch_files(tmp_path, 1, messages=2_000)
    options: dict[str, Any] = {"every": "1s", **bad}
    with pytest.raises(ValueError, match=match):
        replay_many(files, out=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_out_must_be_new_or_empty(tmp_path: Path) -> None:
    files = itch_files(tmp_path, 1, messages=2_000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.parquet").write_bytes(b"")
    with pytest.raises(FileExistsError, match="not empty"):
        replay_many(files, out=tmp_path / "out", every="1s")


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fastbook.cli import main

    files = itch_files(tmp_path, 2, messages=5_000)
    Path(files[1]).write_bytes(b"\x00\x05garbage")
    code = main(["replay-many", *files, "--out", str(tmp_path / "out"), "--every", "1s",
                 "--shards", "2", "--workers", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "1/2 file(s) complete" in captured.out and "20240604.itch" in captured.out
    shutil.rmtree(tmp_path / "out")
    code = main(["replay-many", files[0], "--out", str(tmp_path / "out"), "--every", "1s",
                 "--dates", "2024-06-03,2024-06-04"])
    assert code == 2 and "dates= has 2 entries" in capsys.readouterr().err


def test_symbols_with_slashes_read_back_through_hive_partitioning(tmp_path: Path,
                                                                 inproc: Any) -> None:
    capture = str(L2 / "KRAKEN.ws.50.0.gz")
    out = tmp_path / "out"
    many = replay_many([capture], "kraken-v1", out=out, shards=2, client=inproc,
                       every="bbo", depth=3, dates={"KRAKEN.ws.50.0.gz": "2022-05-01"},
                       timeout=TIMEOUT)
    assert many.ok
    assert (out / "date=2022-05-01" / "symbol=XBT%2FCHF").is_dir()
    expected, _ = serial_partitions(capture, "kraken-v1", "2022-05-01", every="bbo", depth=3)
    table = many.dataset().to_table()
    got = {str(s) for s in table.column("symbol").to_pylist()}
    assert got == {s for _, s in expected} and "XBT/CHF" in got
    assert table.num_rows == sum(t.num_rows for t in expected.values())


def test_no_partition_keeps_symbols_in_one_part_a_task(tmp_path: Path, inproc: Any) -> None:
    path = tmp_path / "20240603.itch"
    path.write_bytes(synth.itch_day(5_000, n_symbols=4, seed=11))
    out = tmp_path / "out"
    many = replay_many([path], out=out, shards=2, client=inproc, every="1s", partition=(),
                       timeout=TIMEOUT)
    parts = sorted(p for p in os.listdir(out) if p.endswith(".parquet"))
    assert parts == ["part-00000-000.parquet", "part-00000-001.parquet"]
    expected, _ = serial_partitions(str(path), "itch50", "2024-06-03", every="1s")
    table = pa.concat_tables([pq.read_table(out / p) for p in parts])
    symbols = table.column("symbol").to_pylist()
    for (_, symbol), rows in expected.items():
        mask = pa.array([s == symbol for s in symbols])
        assert same(table.filter(mask).drop_columns(["symbol"]).replace_schema_metadata(None),
                    rows)
    assert many.rows == table.num_rows


def test_a_part_carries_its_instrument_only(tmp_path: Path, inproc: Any) -> None:
    files = itch_files(tmp_path, 1, messages=5_000)
    out = tmp_path / "out"
    replay_many(files, out=out, shards=2, client=inproc, every="1s", timeout=TIMEOUT)
    part = glob.glob(str(out / "date=2024-06-03" / "symbol=SYM0002" / "*.parquet"))[0]
    meta = pq.read_schema(part).metadata
    listed = json.loads(meta[b"fastbook.instruments"])
    assert [i["symbol"] for i in listed] == ["SYM0002"]
    assert meta[b"fastbook.date"] == b"2024-06-03" and b"fastbook.rows" not in meta


def test_a_small_split_budget_writes_many_row_groups_and_the_same_rows(
        tmp_path: Path, inproc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import fastbook.dask as fd

    # the in-process worker shares this module: its tasks see the small budget
    monkeypatch.setattr(fd, "_BUFFER_BYTES", 20_000)
    files = itch_files(tmp_path, 1, messages=20_000)
    out = tmp_path / "out"
    many = replay_many(files, out=out, shards=2, client=inproc, every="bbo", depth=2,
                       row_group_size=1024, chunk_size=1 << 14,   # many batches
                       timeout=TIMEOUT)
    check_equal(out, files, "itch50", ["2024-06-03"], many, every="bbo", depth=2)
    groups = [pq.ParquetFile(p).num_row_groups
              for p in glob.glob(str(out / "date=*" / "symbol=*" / "*.parquet"))]
    assert max(groups) > 1


def test_progress_line_on_request(tmp_path: Path, inproc: Any,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    files = itch_files(tmp_path, 2, messages=4_000)
    replay_many(files, out=tmp_path / "out", shards=2, client=inproc, every="1s",
                progress=True, timeout=TIMEOUT)
    err = capsys.readouterr().err
    assert "files 2/2 tasks 4/4 100.0%" in err and "msgs/s" in err
    replay_many(files, out=tmp_path / "quiet", client=inproc, every="1s", timeout=TIMEOUT)
    assert capsys.readouterr().err == ""       # not a terminal: silent by default


def test_command_line_on_a_scheduler_address(tmp_path: Path, processes: Any,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from fastbook.cli import main

    address = processes.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    files = itch_files(tmp_path, 2, messages=5_000)
    code = main(["replay-many", *files, "--out", str(tmp_path / "out"), "--every", "1s",
                 "--shards", "2", "--scheduler", address, "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "2/2 file(s) complete" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["complete"] is True


def test_a_book_error_names_the_file_message_and_byte(tmp_path: Path, inproc: Any) -> None:
    import re

    files = itch_files(tmp_path, 2, messages=20_000)
    data = bytearray(Path(files[0]).read_bytes())
    # the first delete past the middle names an order that was never added
    pos = 0
    while True:
        size = int.from_bytes(data[pos:pos + 2], "big")
        if pos > len(data) // 2 and data[pos + 2:pos + 3] == b"D":
            break
        pos += 2 + size
    data[pos + 2 + 11:pos + 2 + 19] = (2**63 - 5).to_bytes(8, "big")
    Path(files[0]).write_bytes(bytes(data))
    out = tmp_path / "out"
    many = replay_many(files, out=out, client=inproc, every="1s", timeout=TIMEOUT)
    assert [f.status for f in many.files] == ["failed", "complete"]
    error = many.files[0].error or ""
    found = re.search(r"20240603\.itch: message (\d+): .*\(byte ([\d,]+) of the stream\)$",
                      error)
    assert found, error
    assert int(found.group(2).replace(",", "")) == pos
