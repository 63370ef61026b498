"""Feature columns in the apply loop: their cost on the ITCH benchmark day, per trade, and
against the same features computed the way users do today (pandas over top-10 samples).

``python bench/bench_features.py`` prints three tables; ``python -m pytest
bench/bench_features.py`` runs a small version (the smoke run). Settings:

* ``FASTBOOK_BENCH_FEATURES_DAY``       an ITCH 5.0 BinaryFILE to replay (default: the
  benchmark day that ``bench/bench_itch.py`` caches, if there, else a synthetic day of
  ``FASTBOOK_BENCH_FEATURES_MESSAGES`` messages, default 2,000,000, 500 symbols)
* ``FASTBOOK_BENCH_FEATURES_ROUNDS``    rounds per replay, best kept (default 3)
* ``FASTBOOK_BENCH_FEATURES_PANDAS``    sample rows given to the pandas baseline (default 50,000)

1. The day replayed from memory by ``fb.replay``: plain (no samples), with top-10 samples
   at 100 ms of exchange time, and with every feature of issue 21 on those samples. The
   issue's target: all features add at most 20% to the plain replay.
2. Trade flow and VPIN per trade: a stream of trade prints applied with and without them
   (target: at most 20 ns a trade).
3. The pandas baseline: the same features from the top-10 samples in pandas (vectorized
   where users vectorize, ``DataFrame.apply`` per row for walk cost, depth within bps and
   slope, trade flow and VPIN from the trades table with a loop over the prints), per row,
   against fastbook's per-row cost of the features (target: at least 20x faster).

Nothing is asserted; every run checks its results (rows, finite values).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

import fastbook as fb
from _days import cached_day  # bench/_days.py (bench/ is on sys.path)
from fastbook.events import Action, Flags, empty_events
from fastbook.features import parse_features
from fastbook.l3 import BookSet
from fastbook.sampling import Sampler

ROUNDS = int(os.environ.get("FASTBOOK_BENCH_FEATURES_ROUNDS", "3"))
PANDAS_ROWS = int(os.environ.get("FASTBOOK_BENCH_FEATURES_PANDAS", "50000"))
ALL = ["mid", "spread", "microprice", "imbalance_1", "imbalance_10", "depth_bps_10",
       "slope_10", "walk_cost_1000", "ofi_10", "trade_flow", "vpin_10000_50"]


def _day() -> bytes:
    path = cached_day("FASTBOOK_BENCH_FEATURES_DAY")
    if path:
        return Path(path).read_bytes()
    from fastbook.synth import itch_day

    n = int(os.environ.get("FASTBOOK_BENCH_FEATURES_MESSAGES", "2000000"))
    return itch_day(n, n_symbols=500)


def _best(fn: Any) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(ROUNDS):
        out = None                  # the previous round's rows go before the next is made
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def replay_costs(day: bytes) -> dict[str, Any]:
    plain, r0 = _best(lambda: fb.replay(day, progress=False))
    messages = r0.messages
    del r0
    samples, r1 = _best(lambda: fb.replay(day, every="100ms", progress=False))
    rows = len(r1.samples["ts"])
    del r1                                   # a 20M-message day's rows are gigabytes
    feats, r2 = _best(lambda: fb.replay(day, every="100ms", features=ALL, trades=True,
                                        progress=False))
    assert rows == len(r2.samples["ts"]) and np.isfinite(r2.samples["mid"]).mean() > 0.5
    return {"messages": messages, "rows": rows, "trades": len(r2.trades["ts"]),
            "plain": plain, "samples": samples, "features": feats, "result": r2,
            "floor": _write_floor(r2.samples, rows)}


def _write_floor(samples: dict[str, np.ndarray], rows: int) -> float:
    """Seconds to write the feature columns' bytes alone into fresh arrays, as the
    sampler does (the output's own cost, whatever computes it)."""
    names = [c.name for c in parse_features(ALL).columns]
    t = time.perf_counter()
    kept = []                       # all alive at once, as the sampler's columns are
    for name in names:
        out = np.empty(rows, samples[name].dtype)
        out[:] = 1
        kept.append(out)
    seconds = time.perf_counter() - t
    del kept
    return seconds


def per_trade_cost(n: int = 2_000_000) -> dict[str, float]:
    """ns per trade print of trade_flow + vpin, against the same loop without them."""
    ev = empty_events(n)
    rng = np.random.default_rng(5)
    ev["action"] = int(Action.TRADE)
    ev["instrument"] = rng.integers(0, 50, n)
    ev["price"] = 10_000 + rng.integers(-50, 50, n)
    ev["qty"] = rng.integers(1, 500, n)
    ev["flags"] = np.where(rng.random(n) < 0.5, int(Flags.AGGRESSOR_BUY),
                           int(Flags.AGGRESSOR_SELL))

    def run(features: list[str]) -> float:
        bs = BookSet()
        for i in range(50):
            bs.add_instrument(f"S{i}", price_decimals=4)
        s = Sampler(depth=1, every=1 << 62, features=features)
        t = time.perf_counter()
        bs.apply(ev, sampler=s)
        return time.perf_counter() - t

    base = min(run([]) for _ in range(ROUNDS))
    flow = min(run(["trade_flow", "vpin_10000_50"]) for _ in range(ROUNDS))
    return {"base": base, "flow": flow, "prints": n, "ns_per_trade": (flow - base) / n * 1e9}


# -- the pandas baseline: what users write over top-10 samples ---------------------------

def pandas_features(df: Any, trades: Any, scale: float) -> Any:
    import pandas as pd

    out = pd.DataFrame(index=df.index)
    b, a = df["bid_px_1"] / scale, df["ask_px_1"] / scale
    qb, qa = df["bid_qty_1"], df["ask_qty_1"]
    both = (qb > 0) & (qa > 0)
    out["mid"] = ((a + b) / 2).where(both)
    out["spread"] = (a - b).where(both)
    out["spread_bps"] = (out["spread"] / out["mid"] * 1e4)
    out["microprice"] = ((b * qa + a * qb) / (qa + qb)).where(both)
    out["imbalance_1"] = (qb - qa) / (qb + qa)
    bq = df[[f"bid_qty_{k}" for k in range(1, 11)]].sum(axis=1)
    aq = df[[f"ask_qty_{k}" for k in range(1, 11)]].sum(axis=1)
    out["imbalance_10"] = (bq - aq) / (bq + aq)

    def per_row(row: Any) -> Any:
        mid = (row["bid_px_1"] + row["ask_px_1"]) / 2 / scale
        bids = [(row[f"bid_px_{k}"] / scale, row[f"bid_qty_{k}"]) for k in range(1, 11)
                if row[f"bid_qty_{k}"] > 0]
        asks = [(row[f"ask_px_{k}"] / scale, row[f"ask_qty_{k}"]) for k in range(1, 11)
                if row[f"ask_qty_{k}"] > 0]
        depth_b = sum(q for p, q in bids if p >= mid * (1 - 10 / 1e4))
        depth_a = sum(q for p, q in asks if p <= mid * (1 + 10 / 1e4))
        slopes = []
        for side in (bids, asks):
            if len(side) >= 2:
                x = [abs(p - mid) for p, _ in side]
                y = np.cumsum([q for _, q in side])
                slopes.append(np.polyfit(x, y, 1)[0] if len(set(x)) > 1 else np.nan)
            else:
                slopes.append(np.nan)
        walk = []
        for side in (asks, bids):
            left, cost = 1000, 0.0
            for p, q in side:
                take = min(left, q)
                cost += take * p
                left -= take
                if left == 0:
                    break
            walk.append(cost / (1000 - left) if left < 1000 else np.nan)
        return pd.Series({"depth_b": depth_b, "depth_a": depth_a, "slope_b": slopes[0],
                          "slope_a": slopes[1], "walk_buy": walk[0], "walk_sell": walk[1]})

    out = out.join(df.apply(per_row, axis=1))
    # OFI between consecutive samples of an instrument, levels 1 to 10
    g = df.groupby("instrument")
    for k in range(1, 11):
        pb, qbk = df[f"bid_px_{k}"], df[f"bid_qty_{k}"]
        pa, qak = df[f"ask_px_{k}"], df[f"ask_qty_{k}"]
        pb0, qb0 = g[f"bid_px_{k}"].shift(), g[f"bid_qty_{k}"].shift()
        pa0, qa0 = g[f"ask_px_{k}"].shift(), g[f"ask_qty_{k}"].shift()
        out[f"ofi_l{k}"] = (qbk.where(pb >= pb0, 0) - qb0.where(pb <= pb0, 0)
                            - qak.where(pa <= pa0, 0) + qa0.where(pa >= pa0, 0))
    # trade flow between samples and VPIN, from the trades table, per instrument
    flow = np.zeros((len(df), 2))
    vpin = np.full(len(df), np.nan)
    for inst, rows in df.groupby("instrument").indices.items():
        t = trades[trades["instrument"] == inst]
        ts = df["ts"].to_numpy()[rows]
        at = np.searchsorted(ts, t["ts"].to_numpy(), side="left")
        signed = np.where(t["aggressor"].to_numpy() == 1, 1, -1) * t["qty"].to_numpy()
        np.add.at(flow[:, 0], rows[np.minimum(at, len(rows) - 1)], t["qty"].to_numpy())
        np.add.at(flow[:, 1], rows[np.minimum(at, len(rows) - 1)], signed)
        buckets: list[float] = []
        fill = buy = 0.0
        for q, side, row_at in zip(t["qty"], t["aggressor"], at, strict=True):
            while q > 0:
                take = min(q, 10000 - fill)
                fill += take
                buy += take if side == 1 else 0
                q -= take
                if fill == 10000:
                    buckets.append(abs(2 * buy - 10000) / 10000)
                    fill = buy = 0.0
            if len(buckets) >= 50 and row_at < len(rows):
                vpin[rows[row_at]] = float(np.mean(buckets[-50:]))
    out["trade_qty"], out["trade_signed"], out["vpin"] = flow[:, 0], flow[:, 1], vpin
    return out


def pandas_cost(result: Any) -> dict[str, float]:
    import pandas as pd

    from fastbook.writers import samples_frame

    head = {k: v[:PANDAS_ROWS] for k, v in result.samples.items()}
    df = samples_frame(head, result.instruments, ts_origin=result.ts_origin)
    trades = pd.DataFrame({k: v for k, v in result.trades.items()})
    trades = trades[trades["ts"] <= df["ts"].max()]
    scale = 10.0 ** result.instruments[0]["price_decimals"]
    t = time.perf_counter()
    out = pandas_features(df, trades, scale)
    seconds = time.perf_counter() - t
    assert len(out) == len(df) and out["mid"].notna().any()
    return {"rows": len(df), "seconds": seconds, "per_row": seconds / len(df)}


def report(rc: dict[str, Any], pt: dict[str, float], pd_: dict[str, float]) -> str:
    p, s, f = rc["plain"], rc["samples"], rc["features"]
    rows = rc["rows"]
    per_row = (f - s) / rows
    lines = [
        f"day: {rc['messages']:,} messages, {rows:,} rows at 100 ms, {rc['trades']:,} prints",
        f"{'replay':<34} {'s':>8} {'vs plain':>10}",
        f"{'plain (no samples)':<34} {p:>8.3f} {1.0:>9.2f}x",
        f"{'top-10 samples at 100 ms':<34} {s:>8.3f} {s / p:>9.2f}x",
        f"{'samples + all features':<34} {f:>8.3f} {f / p:>9.2f}x",
        f"features alone: +{(f - s) / p * 100:.0f}% of the plain replay "
        f"(target 20%), {per_row * 1e9:,.0f} ns per row, "
        f"{(f - s) / rc['messages'] * 1e9:.0f} ns per message",
        f"writing the feature columns' bytes alone (fresh arrays, no computing): "
        f"{rc['floor']:.3f} s = {rc['floor'] / p * 100:.0f}% of the plain replay",
        f"trade flow + VPIN: {pt['ns_per_trade']:.1f} ns per print (target 20 ns; "
        f"{pt['base'] / pt['prints'] * 1e9:.1f} ns per print without them)",
        f"pandas over top-10 samples: {pd_['per_row'] * 1e6:,.1f} us per row "
        f"({pd_['rows']:,} rows, {pd_['seconds']:.1f} s): fastbook's features are "
        f"{pd_['per_row'] / per_row:,.0f}x faster per row (target 20x)",
    ]
    return "\n".join(lines)


def test_feature_costs(capsys) -> None:  # type: ignore[no-untyped-def]
    from fastbook.synth import itch_day

    global ROUNDS, PANDAS_ROWS
    ROUNDS, PANDAS_ROWS = 1, 2000
    rc = replay_costs(itch_day(100_000, n_symbols=20))
    text = report(rc, per_trade_cost(100_000), pandas_cost(rc["result"]))
    with capsys.disabled():
        print("\n" + text)


if __name__ == "__main__":
    day = _day()
    rc = replay_costs(day)
    pt = per_trade_cost()
    print(report(rc, pt, pandas_cost(rc["result"])))
