"""``fastbook live`` and ``fastbook record`` against a real loopback websocket server."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest

pytest.importorskip("websockets")

from fastbook.cli import main
from fastbook.live._record import replay_recording
from tests.live.servers import CaptureServer, capture_frames

OKX = os.path.join(os.path.dirname(__file__), "..", "data", "l2", "cryptofeed", "OKX.ws.1.0.gz")


@pytest.fixture()
def okx_server():
    frames = capture_frames(OKX)
    ready = threading.Event()
    stop = {}
    box = {}

    def serve():
        async def run():
            async with CaptureServer(frames, hold=20) as srv:
                box["srv"] = srv
                stop["event"] = asyncio.Event()
                stop["loop"] = asyncio.get_running_loop()
                ready.set()
                await asyncio.wait_for(stop["event"].wait(), 30)
        asyncio.run(run())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(5)
    yield box["srv"]
    stop["loop"].call_soon_threadsafe(stop["event"].set)
    t.join(15)


def test_live_json_summary(okx_server, capsys):
    status = main(["live", "okx:BTC-USDT", "okx:BTC/USDT:USDT", "--endpoint",
                   f"okx={okx_server.url}", "--duration", "1.5", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    b = out["books"]["okx:BTC-USDT"]
    assert b["state"] == "live" and b["applied"] > 50 and b["bbo"][0] == "3023610000000"
    # BTC/USDT:USDT is BTC-USDT-SWAP, which the capture does not have: never live, and said
    assert out["books"]["okx:BTC-USDT-SWAP"]["state"] == "syncing"
    assert out["venues"]["okx"]["connections"] == 1


def test_live_table_is_printed(okx_server, capsys):
    status = main(["live", "okx:BTC-USDT", "--endpoint", f"okx={okx_server.url}",
                   "--duration", "1.2", "--refresh", "0.5"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "venue" in out and "BTC-USDT" in out and "live" in out and "30236.1" in out


def test_record_then_replay_the_recording(okx_server, tmp_path, capsys):
    status = main(["record", "okx:BTC-USDT", "--endpoint", f"okx={okx_server.url}",
                   "--duration", "1.5", "--json", "-o", str(tmp_path / "rec")])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert os.listdir(tmp_path / "rec")
    session = replay_recording(str(tmp_path / "rec"))
    counts = session.counts("okx", "BTC-USDT")
    assert counts["applied"] == out["books"]["okx:BTC-USDT"]["applied"]


def test_bad_endpoint_is_a_usage_error(capsys):
    assert main(["live", "okx:BTC-USDT", "--endpoint", "okx", "--duration", "0.1"]) == 2
    assert "VENUE=WS_URL" in capsys.readouterr().err
