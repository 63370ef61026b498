"""Replaying three venues' captures consolidated vs replaying them separately.

The real captures of ``tests/data/l2`` (Binance spot with its REST snapshots, Coinbase
Exchange, Kraken v1; 14,751 messages) are replayed, each row best of
``FASTBOOK_BENCH_CONSREPLAY_REPEATS`` rounds, all in this process:

* ``separately``: ``fb.replay`` once per venue (the baseline: what a user does today);
* ``merged, no views``: one merged replay of the three (``consolidate={}``: no book is in a
  view), the cost of the merge and the per-message book tracking alone;
* ``consolidated, every product``: ``consolidate=True``, one view per product (24 views);
* ``consolidated, one group``: OMG/USD across Binance.US and Kraken v1 (two venues in one
  view), with Binance.US's captures instead of Binance's.

The issue 19 target: the consolidated replay costs at most 1.3x the separate ones. No
figure is asserted. ``python bench/bench_consolidated_replay.py`` prints the table; the
pytest run too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import fastbook as fb
from fastbook._consolrun import replay_consolidated

REPEATS = int(os.environ.get("FASTBOOK_BENCH_CONSREPLAY_REPEATS", "7"))
D = Path(__file__).resolve().parents[1] / "tests" / "data" / "l2" / "cryptofeed"
BINANCE = [D / "BINANCE.ws.1.0.gz", D / "BINANCE.http.0.0.gz"]
BINANCE_US = [D / "BINANCE_US.ws.1.0.gz", D / "BINANCE_US.http.0.0.gz"]
COINBASE = [D / "COINBASE.ws.28.0.gz"]
KRAKEN = [D / "KRAKEN.ws.50.0.gz"]
META = {"binance-spot": D / "BINANCE.0.gz"}


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure() -> dict[str, float]:
    def separately() -> None:
        fb.replay(BINANCE, "binance-spot", instruments=META["binance-spot"])
        fb.replay(COINBASE, "coinbase-exchange")
        fb.replay(KRAKEN, "kraken-v1")

    def separately_us() -> None:
        fb.replay(BINANCE_US, "binance-us")
        fb.replay(KRAKEN, "kraken-v1")

    every = [*BINANCE, *COINBASE, *KRAKEN]
    group = {"OMG/USD": ["binance-us:OMGBUSD", "kraken-v1:OMG/USD"]}
    return {
        "separately": _best(separately),
        "merged, no views": _best(lambda: replay_consolidated(every, consolidate={},
                                                              instruments=META)),
        "consolidated, every product": _best(lambda: replay_consolidated(
            every, consolidate=True, instruments=META)),
        "separately, Binance.US+Kraken": _best(separately_us),
        "consolidated, one group": _best(lambda: replay_consolidated(
            [*BINANCE_US, *KRAKEN], consolidate=group)),
    }


def table(res: dict[str, float]) -> str:
    base = {"merged, no views": "separately", "consolidated, every product": "separately",
            "consolidated, one group": "separately, Binance.US+Kraken"}
    lines = [f"{'row':<34} {'ms':>8} {'ratio':>40}"]
    for k, v in res.items():
        ratio = f"{v / res[base[k]]:.2f}x {base[k]}" if k in base else ""
        lines.append(f"{k:<34} {v * 1e3:>8.1f} {ratio:>40}")
    return "\n".join(lines)


def test_consolidated_replay_cost(capsys) -> None:  # type: ignore[no-untyped-def]
    res = measure()
    with capsys.disabled():
        print("\n" + table(res))


if __name__ == "__main__":
    print(table(measure()))
