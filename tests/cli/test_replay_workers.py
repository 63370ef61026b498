"""``fastbook replay --workers N``: the one-process summary, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import glob
import gzip
import os
import signal
import subprocess
import time
from pathlib import Path

from fastbook.synth import itch_day
from tests.cli.test_cli import FASTBOOK


def _lines(out: str) -> list[str]:
    # the timing line differs, and the workers line is the parallel run's own
    return [ln for ln in out.splitlines() if " in " not in ln and "workers" not in ln]


def test_workers_print_the_single_process_summary(tmp_path: Path) -> None:
    day = tmp_path / "day.itch"
    day.write_bytes(itch_day(40_000, n_symbols=12))
    args = [*FASTBOOK, "replay", str(day), "--every", "bbo", "--no-progress"]
    one = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
    many = subprocess.run([*args, "--workers", "2"], capture_output=True, text=True,
                          check=True, timeout=120)
    assert _lines(many.stdout) == _lines(one.stdout)
    assert "2 workers, book events per worker" in many.stdout


def test_ctrl_c_stops_the_workers_and_leaves_nothing(tmp_path: Path) -> None:
    day = tmp_path / "day.itch.gz"
    day.write_bytes(gzip.compress(itch_day(2_000_000, n_symbols=40), 1))
    out = tmp_path / "samples.parquet"
    env = dict(os.environ, TMPDIR=str(tmp_path))
    before = set(glob.glob("/dev/shm/fastbook-parallel-*"))
    proc = subprocess.Popen([*FASTBOOK, "replay", str(day), "--workers", "2", "--every", "bbo",
                             "-o", str(out), "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the run's temporary directory appears once the workers have their tasks
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            now = set(glob.glob("/dev/shm/fastbook-parallel-*")) | \
                set(glob.glob(str(tmp_path / "fastbook-parallel-*")))
            if now - before:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day.itch.gz"]
    assert set(glob.glob("/dev/shm/fastbook-parallel-*")) <= before
