"""``fastbook live --every ... --output``, ``--metrics-port`` and ``fastbook demo --live``,
run as the command line runs them, against the loopback exchange simulator."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import urllib.request
from decimal import Decimal

import numpy as np
import pytest

pytest.importorskip("websockets")
pytest.importorskip("pyarrow")

import pyarrow.parquet as pq

import fastbook as fb
from fastbook._live_cli import open_feed, run_live
from fastbook.cli import build_parser, main
from fastbook.testing import ExchangeSimulator

OKX_CAPTURE = os.path.join(os.path.dirname(__file__), "..", "data", "l2", "cryptofeed",
                           "OKX.ws.1.0.gz")
BOOKS = {"okx": ["BTC-USDT"], "binance-spot": ["BTCUSDT"]}
SPECS = ["okx:BTC-USDT", "binance-spot:BTCUSDT"]


@pytest.fixture()
def sim():
    s = ExchangeSimulator(BOOKS, rate=100, seed=3)
    s.start()
    yield s
    s.stop()


def endpoint_args(sim):
    out = []
    for venue, e in sim.endpoints.items():
        out += ["--endpoint", f"{venue}={e['ws']}" + (f",{e['rest']}" if "rest" in e else "")]
    return out


def run(coro, timeout=60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def fixed(value: Decimal, decimals: int) -> int:
    scaled = value.scaleb(decimals)
    assert scaled == scaled.to_integral_value()
    return int(scaled)


def truth_top(sim, venue, symbol, depth, meta):
    """The simulator's truth as one sample row's level values (fixed-point, 0 / 0 padded)."""
    t = sim.truth(venue, symbol)
    pd, qd = meta["price_decimals"], meta["qty_decimals"]
    row = {}
    for side, name in (("bids", "bid"), ("asks", "ask")):
        levels = list(t[side])[:depth]
        levels += [(Decimal(0), Decimal(0))] * (depth - len(levels))
        for k, (p, q) in enumerate(levels):
            row[f"{name}_px_{k + 1}"] = fixed(p, pd)
            row[f"{name}_qty_{k + 1}"] = fixed(q, qd)
    return row


@pytest.fixture(scope="module")
def replay_schema(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "okx.parquet"
    fb.replay(OKX_CAPTURE, "okx", every="100ms", depth=4, output=str(path))
    return pq.read_schema(path)


def test_cli_samples_have_the_replay_schema(sim, tmp_path, capsys, replay_schema):
    out = tmp_path / "live.parquet"
    status = main(["live", *SPECS, "okx:ETH-USDT", *endpoint_args(sim), "--every", "100ms",
                   "--depth", "4", "--output", str(out), "--duration", "2.5", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert status == 0
    schema = pq.read_schema(out)
    assert schema.remove_metadata().equals(replay_schema.remove_metadata())
    assert set(schema.metadata) == set(replay_schema.metadata)
    for key in (b"fastbook.ts_unit", b"fastbook.ts_origin", b"fastbook.depth",
                b"fastbook.prices", b"fastbook.reason"):
        assert schema.metadata[key] == replay_schema.metadata[key], key
    table = pq.read_table(out)
    meta = json.loads(schema.metadata[b"fastbook.instruments"])
    assert {(m["venue"], m["symbol"]) for m in meta} == {("okx", "BTC-USDT"),
                                                          ("binance-spot", "BTCUSDT")}
    assert int(schema.metadata[b"fastbook.rows"]) == table.num_rows > 0
    assert summary["samples"]["written"] == table.num_rows
    # ETH-USDT is not on the simulator: refused (down), so never a row, and counted as skipped
    assert summary["books"]["okx:ETH-USDT"]["state"] == "down"
    assert "ETH-USDT" not in table.column("symbol").to_pylist()
    assert summary["samples"]["skipped"].get("down", 0) > 0
    ts = table.column("ts").to_pylist()
    assert all(t % 100_000_000 == 0 for t in ts)               # on the 100 ms grid
    assert set(table.column("reason").to_pylist()) == {2}      # interval rows


def test_samples_of_a_paused_simulator_equal_its_truth(sim, tmp_path):
    out = tmp_path / "paused.parquet"
    args = build_parser().parse_args(["live", *SPECS, *endpoint_args(sim), "--every", "50ms",
                                      "--depth", "5", "--output", str(out),
                                      "--duration", "4", "--json"])
    feed = open_feed(args)
    state = {}

    async def pause_when_live():
        assert await feed.wait_live(15), feed.stats()["books"]
        for venue in BOOKS:
            sim.pause(venue)
        await sim.wait_idle()
        await asyncio.sleep(0.3)                 # the driver reads what was sent
        state["paused_ns"] = __import__("time").time_ns()

    async def both():
        pauser = asyncio.ensure_future(pause_when_live())
        result = await run_live(args, out=io.StringIO(), feed=feed)
        await pauser
        return result

    result = run(both())
    assert all(b["state"] == "live" for b in result["books"].values())
    table = pq.read_table(out).to_pylist()
    meta = {m["id"]: m for m in json.loads(pq.read_schema(out).metadata[b"fastbook.instruments"])}
    after = [r for r in table if r["ts"] > state["paused_ns"]]
    assert {r["instrument"] for r in after} == set(meta)
    for r in after:
        m = meta[r["instrument"]]
        want = truth_top(sim, m["venue"], m["symbol"], 5, m)
        assert {k: r[k] for k in want} == want, (m["venue"], r["ts"])


def test_python_sampler_writes_row_groups_while_running(tmp_path):
    out = tmp_path / "groups.parquet"

    async def main_():
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=100, seed=4) as s:
            feed = fb.live(["okx:BTC-USDT"], endpoints=s.endpoints)
            async with feed:
                assert await feed.wait_live(15)
                async with feed.sampler("20ms,bbo", depth=2, output=out,
                                        row_group_size=8) as sampler:
                    for _ in range(500):
                        if sampler.stats()["written"] >= 24:
                            break
                        await asyncio.sleep(0.01)
                    # rows reach the file while running; few wait in memory
                    assert sampler.stats()["written"] >= 24
                    assert sampler._n < 8
                return sampler.stats()

    stats = run(main_())
    f = pq.ParquetFile(out)
    assert f.metadata.num_row_groups >= 3
    assert f.metadata.num_rows == stats["rows"] == stats["written"]
    reasons = set(pq.read_table(out).column("reason").to_pylist())
    assert reasons <= {2, 4} and 4 in reasons                  # interval and bbo rows


def test_python_sampler_in_memory_matches_to_arrow(tmp_path):
    async def main_():
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=100, seed=4) as s:
            feed = fb.live(["okx:BTC-USDT"], endpoints=s.endpoints)
            async with feed:
                assert await feed.wait_live(15)
                async with feed.sampler("10msgs", depth=3) as sampler:
                    for _ in range(500):
                        if sampler.rows >= 5:
                            break
                        await asyncio.sleep(0.01)
                return sampler

    sampler = run(main_())
    t = sampler.to_arrow()
    assert t.num_rows == sampler.rows >= 5
    assert set(t.column("reason").to_pylist()) == {1}
    assert t.schema.metadata[b"fastbook.depth"] == b"3"


def test_sampling_usage_errors(capsys, tmp_path):
    assert main(["live", "okx:BTC-USDT", "--every", "100ms", "--duration", "0.1"]) == 2
    assert "--every needs --output" in capsys.readouterr().err
    assert main(["live", "okx:BTC-USDT", "-o", str(tmp_path / "x.parquet"),
                 "--duration", "0.1"]) == 2
    assert "sampling rule" in capsys.readouterr().err
    assert main(["live", "okx:BTC-USDT", "--every", "100ms", "-o", str(tmp_path / "x.txt"),
                 "--duration", "0.1"]) == 2
    assert "output format" in capsys.readouterr().err
    assert main(["live", "okx:BTC-USDT", "--every", "fortnightly", "-o",
                 str(tmp_path / "x.csv"), "--duration", "0.1"]) == 2
    assert "sampling rule" in capsys.readouterr().err
    assert main(["live", "okx:BTC-USDT", "--metrics-port", "70000", "--duration", "0.1"]) == 2
    assert "not a port" in capsys.readouterr().err


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:      # 127.0.0.1 only
        return r.read().decode()


def series(text, name, **labels):
    """The value of one sample line ``name{labels}`` (labels in any order), or None."""
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)\{(.*)\} (\S+)$", line)
        if m is None or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if got == labels:
            return float(m.group(3))
    return None


def test_metrics_port_serves_the_live_stats(sim):
    pytest.importorskip("prometheus_client")
    args = build_parser().parse_args(["live", *SPECS, *endpoint_args(sim), "--metrics-port",
                                      "0", "--duration", "3", "--json"])
    feed = open_feed(args)
    err = io.StringIO()
    got = {}

    async def scrape_when_paused():
        while "metrics on" not in err.getvalue():
            await asyncio.sleep(0.01)
        url = err.getvalue().split("metrics on ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert await feed.wait_live(15)
        for venue in BOOKS:
            sim.pause(venue)
        await sim.wait_idle()
        await asyncio.sleep(0.3)
        got["text"] = await asyncio.to_thread(scrape, url)
        got["stats"] = feed.stats()

    async def both():
        task = asyncio.ensure_future(scrape_when_paused())
        result = await run_live(args, out=io.StringIO(), feed=feed, err=err)
        await task
        return result

    result = run(both())
    text, st = got["text"], got["stats"]
    for venue, symbol in (("okx", "BTC-USDT"), ("binance-spot", "BTCUSDT")):
        b = st["books"][(venue, symbol)]
        assert series(text, "fastbook_book_state", venue=venue, symbol=symbol,
                      state="live") == 1.0
        assert series(text, "fastbook_book_state", venue=venue, symbol=symbol,
                      state="syncing") == 0.0
        assert series(text, "fastbook_book_applied_total", venue=venue,
                      symbol=symbol) == b["applied"] > 0
        assert series(text, "fastbook_venue_connections", venue=venue) == 1.0
        count = b["latency"]["receive_to_applied"]["count"]
        assert series(text, "fastbook_latency_seconds_count", venue=venue, symbol=symbol,
                      kind="receive_to_applied") == count > 0
        assert series(text, "fastbook_latency_seconds_bucket", venue=venue, symbol=symbol,
                      kind="receive_to_applied", le="+Inf") == count
    assert "\nfastbook_stats_errors_total 0.0\n" in text      # every scrape read the stats
    assert result["metrics"].startswith("http://127.0.0.1:")


def test_demo_live_runs_to_completion(capsys):
    status = main(["demo", "--live", "--duration", "3"])
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert status == 0, out
    assert re.search(r"(\d+) of \1 books live at the end; 2 faults injected, 2 detected, "
                     r"2 healed$", last), last
    assert "okx" in out and "kraken-v2" in out and "live" in out


def test_csv_samples_have_the_replay_header(tmp_path):
    """CSV comes with the replay's writer for free (no pyarrow): the same header."""
    live_csv, replay_csv = tmp_path / "live.csv", tmp_path / "replay.csv"
    fb.replay(OKX_CAPTURE, "okx", every="100ms", depth=2, output=str(replay_csv))

    async def main_():
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=100, seed=4) as s:
            feed = fb.live(["okx:BTC-USDT"], endpoints=s.endpoints)
            async with feed:
                assert await feed.wait_live(15)
                async with feed.sampler("20ms", depth=2, output=live_csv) as sampler:
                    while sampler.rows < 3:
                        await asyncio.sleep(0.01)
                return sampler.stats()

    stats = run(main_())
    lines = live_csv.read_text().splitlines()
    assert lines[0] == replay_csv.read_text().splitlines()[0]
    assert len(lines) == 1 + stats["written"] and stats["written"] >= 3
    assert all(line.split(",")[2] == '"BTC-USDT"' for line in lines[1:])


def test_python_serve_metrics_on_the_loop():
    pytest.importorskip("prometheus_client")

    async def main_():
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=100, seed=4) as s:
            feed = fb.live(["okx:BTC-USDT"], endpoints=s.endpoints)
            async with feed:
                assert await feed.wait_live(15)
                with feed.serve_metrics(0) as server:
                    text = await asyncio.to_thread(scrape, server.url)
                return text

    text = run(main_())
    assert series(text, "fastbook_book_state", venue="okx", symbol="BTC-USDT",
                  state="live") == 1.0


def test_missing_extras_are_named(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert main(["live", "okx:BTC-USDT", "--every", "1s", "-o", str(tmp_path / "x.parquet"),
                 "--duration", "0.1"]) == 2
    assert "pip install 'fastbook-lob[arrow]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)
    assert main(["live", "okx:BTC-USDT", "--endpoint", "okx=ws://127.0.0.1:9",
                 "--metrics-port", "0", "--duration", "0.1"]) == 2
    assert "pip install 'fastbook-lob[metrics]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "websockets", None)
    assert main(["demo", "--live", "--duration", "1"]) == 2
    assert "pip install 'fastbook-lob[live]'" in capsys.readouterr().err


def test_record_takes_samples_too(sim, tmp_path, capsys):
    out = tmp_path / "rec.parquet"
    status = main(["record", "okx:BTC-USDT", *endpoint_args(sim), "--every", "100ms",
                   "--depth", "3", "--samples", str(out), "-o", str(tmp_path / "caps"),
                   "--duration", "1.5", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert status == 0
    assert os.listdir(tmp_path / "caps")
    assert pq.read_metadata(out).num_rows == summary["samples"]["written"] > 0
    assert pq.read_schema(out).metadata[b"fastbook.depth"] == b"3"


def test_live_rows_carry_the_replays_features(tmp_path):
    """Feature columns on live rows: the book features from the row's own levels, OFI
    summed over every venue message between two rows (a reference computed here)."""
    seen = []

    async def main_():
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=200, seed=5) as s:
            feed = fb.live(["okx:BTC-USDT"], endpoints=s.endpoints)
            async with feed:
                assert await feed.wait_live(15)
                async with feed.sampler("10msgs", depth=3, features=[
                        "mid", "microprice", "imbalance_3", "ofi_2", "trade_flow"]) as sampler:
                    book = feed.book("okx", "BTC-USDT")

                    def record(n):           # after the sampler's own callback
                        if n.kind == "update":
                            seen.append(book.top(2).copy())
                        else:
                            seen.append(None)
                    feed.on_notice(record)
                    for _ in range(1000):
                        if sampler.rows >= 8:
                            break
                        await asyncio.sleep(0.01)
                return sampler, book.price_decimals

    sampler, pd_ = run(main_())
    c = sampler.take()
    assert len(c["ts"]) >= 8
    scale = 10.0 ** pd_
    b, a = c["bid_px"][:, 0], c["ask_px"][:, 0]
    qb, qa = c["bid_qty"][:, 0], c["ask_qty"][:, 0]
    assert np.array_equal(c["mid"], (a + b) / 2 / scale)
    # exact integers first (BTC at 8 decimals: b * qa overflows int64), as the kernel does
    assert c["microprice"].tolist() == [
        float(int(x) * int(y) + int(z) * int(w)) / float(int(y) + int(w)) / scale
        for x, y, z, w in zip(b, qa, a, qb, strict=True)]
    sb, sa = c["bid_qty"].sum(axis=1), c["ask_qty"].sum(axis=1)
    assert np.array_equal(c["imbalance_3"], (sb - sa) / (sb + sa))
    assert (c["trade_count"] == 0).all()
    # OFI between rows, from the states after each message (the first row's sum starts
    # before our callback was registered: check the rows after it)
    if any(x is None for x in seen):         # state changes as the feed closes
        seen = seen[:[x is None for x in seen].index(True)]
    assert len(seen) >= 60
    ofi = np.zeros((len(seen), 2), np.int64)
    for i in range(1, len(seen)):
        for m in range(2):
            now, prev = seen[i][:, m], seen[i - 1][:, m]
            pb, qbn, pa, qan = (int(x) for x in now)
            ob, qbo, oa, qao = (int(x) for x in prev)
            pb, ob = (pb if qbn else -(1 << 63)), (ob if qbo else -(1 << 63))
            pa, oa = (pa if qan else (1 << 63)), (oa if qao else (1 << 63))
            ofi[i, m] = (qbn if pb >= ob else 0) - (qbo if pb <= ob else 0) \
                - (qan if pa <= oa else 0) + (qao if pa >= oa else 0)
    rows_at = [i for i in range(len(seen)) if (i + 1) % 10 == 0]
    checked = 0
    for r in range(1, min(len(rows_at), len(c["ts"]) - 1)):
        lo, hi = rows_at[r - 1] + 1, rows_at[r]
        want = ofi[lo:hi + 1].sum(axis=0)
        assert [c["ofi_l1"][r], c["ofi_l2"][r]] == want.tolist(), r
        checked += 1
    assert checked >= 4


def test_live_trade_flow_counts_the_venues_prints():
    """fb.live(..., trades=True): trade_flow on live rows sums exactly the prints that
    arrived between two rows of the book, by the venue's aggressor side."""
    log = []

    async def main_():
        async with ExchangeSimulator({"okx": ["BTC-USDT"]}, rate=200, seed=6,
                                     trade_every=2) as s:
            feed = fb.live(["okx:BTC-USDT"], endpoints=s.endpoints, trades=True)
            async with feed:
                assert await feed.wait_live(15)
                async with feed.sampler("10msgs", depth=1, features=[
                        "trade_flow", "vpin_0.0001_3"]) as sampler:
                    feed.on_notice(lambda n: log.append(("u", n.kind)))
                    feed.on_trade(lambda t: log.append(("t", t.qty, t.aggressor)))
                    for _ in range(1000):
                        if sampler.rows >= 10:
                            break
                        await asyncio.sleep(0.01)
                return sampler

    sampler = run(main_())
    c = sampler.take()
    updates = [i for i, e in enumerate(log) if e == ("u", "update")]
    rows_at = [updates[k] for k in range(9, len(updates), 10)]   # every 10th message
    checked = 0
    for r in range(1, min(len(rows_at), len(c["ts"]))):
        between = [e for e in log[rows_at[r - 1] + 1:rows_at[r]] if e[0] == "t"]
        buy = sum(e[1] for e in between if e[2] == 1)
        sell = sum(e[1] for e in between if e[2] == 2)
        got = (int(c["trade_count"][r]), int(c["trade_buy_qty"][r]),
               int(c["trade_sell_qty"][r]), int(c["trade_qty"][r]))
        assert got == (len(between), buy, sell, buy + sell), r
        checked += bool(between)
    assert checked >= 3
    vpin = c["vpin"][np.isfinite(c["vpin"])]
    assert len(vpin) and ((vpin >= 0) & (vpin <= 1)).all()


def test_cli_live_features_match_a_replays_columns(sim, tmp_path, capsys):
    """fastbook live --features writes the replay's feature columns, same names and types
    (a replay of the OKX capture with the same features gives the reference schema)."""
    out = tmp_path / "live.parquet"
    feats = "mid,spread,microprice,imbalance_3,ofi_2,trade_flow"
    status = main(["live", *SPECS, *endpoint_args(sim), "--every", "100ms", "--depth", "3",
                   "--features", feats, "--output", str(out), "--duration", "2", "--json"])
    capsys.readouterr()
    assert status == 0
    ref = tmp_path / "replay.parquet"
    fb.replay(OKX_CAPTURE, "okx", every="100ms", depth=3, features=feats, output=str(ref))
    assert pq.read_schema(out).remove_metadata().equals(pq.read_schema(ref).remove_metadata())
    table = pq.read_table(out).to_pandas()
    assert len(table) > 0 and table["mid"].notna().all()
    # book features from the row's own levels (okx, binance: real units of each book)
    assert ((table["spread"] > 0) & (table["imbalance_3"].abs() <= 1)).all()
    assert main(["live", *SPECS, *endpoint_args(sim), "--every", "100ms", "--features",
                 "midd", "-o", str(tmp_path / "x.parquet"), "--duration", "1"]) != 0
    assert "--features: unknown feature 'midd'" in capsys.readouterr().err
