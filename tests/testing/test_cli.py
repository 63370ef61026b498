"""``python -m fastbook.testing``: endpoints as one JSON line, stats on exit, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("websockets")

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "fastbook.testing", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_prints_endpoints_then_stats() -> None:
    r = run("--venues", "binance-spot:BTCUSDT,ETHUSDT", "okx:BTC-USDT", "--rate", "50",
            "--seconds", "0.5")
    assert r.returncode == 0, r.stderr
    endpoints, stats = (json.loads(line) for line in r.stdout.splitlines())
    assert endpoints["binance-spot"]["rest"].startswith("http://127.0.0.1:")
    assert endpoints["okx"]["ws"].startswith("ws://127.0.0.1:")
    assert set(stats) == {"binance-spot", "okx"}


def test_cli_bad_venue_is_a_clear_error() -> None:
    r = run("--venues", "nasdaq:AAPL", "--seconds", "0.1")
    assert r.returncode == 2 and "unknown venue" in r.stderr
    r = run("--venues", "okx", "--seconds", "0.1")
    assert r.returncode != 0 and "VENUE:SYMBOL" in r.stderr
