"""The simulator's stdin control channel (``python -m fastbook.testing --control``): one
JSON answer per command, refusals named, and the process ends when stdin closes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("websockets")


def test_control_channel_answers_each_command_and_stops_at_eof():
    commands = [
        {"cmd": "ping"},
        {"cmd": "inject", "venue": "okx", "kind": "drop", "symbol": "BTC-USDT"},
        {"cmd": "pause", "venue": "okx"},
        {"cmd": "wait_idle", "timeout": 5},
        {"cmd": "truth", "venue": "okx", "symbol": "BTC-USDT", "depth": 3},
        {"cmd": "faults"},
        {"cmd": "inject", "venue": "nope", "kind": "drop"},
        {"cmd": "launch"},
    ]
    text = "\n".join(json.dumps(c) for c in commands) + "\nnot json\n"
    p = subprocess.run([sys.executable, "-m", "fastbook.testing", "--control", "--rate", "50",
                        "--venues", "okx:BTC-USDT"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    endpoints, answers, stats = lines[0], lines[1:-1], lines[-1]
    assert endpoints["okx"]["ws"].startswith("ws://127.0.0.1:")
    assert len(answers) == len(commands) + 1
    assert [a["ok"] for a in answers] == [True] * 6 + [False] * 3
    truth = answers[4]["truth"]
    assert len(truth["bids"]) == 3 and len(truth["asks"]) == 3
    assert float(truth["bids"][0][0]) < float(truth["asks"][0][0])
    assert answers[5]["count"] == len(answers[5]["faults"]) <= 1   # the drop, once it acted
    assert "venue 'nope' is not simulated" in answers[6]["error"]
    assert "unknown command 'launch'" in answers[7]["error"]
    assert "not JSON" in answers[8]["error"]
    assert stats["okx"]["connections"] == 0
