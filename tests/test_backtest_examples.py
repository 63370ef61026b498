"""docs/examples/backtest_*.py: the backtest guide's examples run, on a small day, and do
what the guide says they do."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbook as fb

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
SMALL = ["--messages", "60000"]


def load(name: str) -> dict[str, Any]:
    return runpy.run_path(str(EXAMPLES / name))


def positions(result: Any, instrument: int) -> np.ndarray:
    """The position after each fill of ``instrument`` (the engine's, not the strategy's)."""
    f = result.fills
    mine = f["instrument"] == instrument
    signed = np.where(f["side"][mine] == fb.BID, f["qty"][mine], -f["qty"][mine])
    return np.cumsum(signed)


def test_the_market_maker_quotes_both_sides_within_its_position_limit(
        capsys: pytest.CaptureFixture[str]) -> None:
    result, mm = load("backtest_market_maker.py")["main"]([*SMALL, "--symbols", "2"])
    assert "market maker on 2 symbols" in capsys.readouterr().out
    s = result.summary()
    assert s["fills"] > 20 and s["maker_fills"] > 0 and s["stopped"] is None
    assert s["strategy_errors"] == 0 and s["rejected"] == 0
    f = result.fills
    for inst in (0, 1):
        path = positions(result, inst)
        assert len(path) and np.abs(path).max() <= mm.limit
        assert path[-1] == result.position(inst)
        mine = f["instrument"] == inst
        assert set(f["side"][mine].tolist()) == {fb.BID, fb.ASK}     # it trades both ways
    assert set(f["instrument"].tolist()) <= {0, 1}
    # every fill is at a price the strategy quoted: on the cent grid
    assert (f["price"] % 100 == 0).all()
    assert math_close(s["pnl"], s["realized"] + s["unrealized"] - s["fees"])


def math_close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


@pytest.mark.parametrize("script", ["backtest_twap.py", "backtest_vwap.py"])
def test_the_executors_buy_exactly_their_target_in_the_window(
        script: str, capsys: pytest.CaptureFixture[str]) -> None:
    result, ex = load(script)["main"]([*SMALL, "--target", "5000"])
    out = capsys.readouterr().out
    assert "filled" in out and "5,000" in out
    f = result.fills
    # only buys, never more than the target, and all of it unless the executor says why
    assert (f["side"] == fb.BID).all()
    assert int(f["qty"].sum()) == ex.filled == result.position(ex.inst)
    assert ex.filled <= ex.target
    assert ex.filled == ex.target, ex.unfilled
    assert ex.unfilled == ""
    # every order is a whole number of lots, and the fills come after the window opens
    assert (result.orders["qty"] % 100 == 0).all()
    assert (f["ts"] >= ex.start).all() and (f["ts"] <= ex.end + ex.grace).all()
    # it both waited at the bid (maker) and crossed when behind (taker)
    assert (~f["taker"]).any() and f["taker"].any()


def test_an_impossible_target_is_reported_not_overfilled() -> None:
    """A window at the very end of the day: the data ends before the target is bought."""
    result, ex = load("backtest_twap.py")["main"](
        [*SMALL, "--target", "50000000", "--start", "19.9", "--end", "19.99"])
    assert 0 < ex.filled < ex.target
    assert "not bought" in ex.unfilled
    assert int(result.fills["qty"].sum()) == ex.filled


def test_the_vwap_schedule_follows_the_volume_seen() -> None:
    ns = load("backtest_vwap.py")
    events, _ = ns["twap"].load_day(60_000, 4, 5)
    hour = ns["twap"].HOUR
    start, end = 10 * hour, 15 * hour
    total = ns["window_volume"](events, 0, start, end)
    assert total > 0
    v = ns["VWAP"](0, 10_000, start, end, expected_volume=total * 2)
    assert v.schedule(None, start) == 0
    v.seen = total
    assert v.schedule(None, start + 1) == 5_000
    v.seen = 3 * total
    assert v.schedule(None, start + 1) == 10_000
    assert v.schedule(None, end) == 10_000


def test_an_example_runs_as_a_script() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "backtest_twap.py"), *SMALL,
                           "--target", "1000"], capture_output=True, text=True, check=True)
    assert "TWAP: buy 1,000" in proc.stdout and "unfilled         -" in proc.stdout
