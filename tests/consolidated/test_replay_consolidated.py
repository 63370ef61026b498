"""Consolidated replays of several venues' captures (``fb.replay([...], consolidate=...)``).

The real captures of ``tests/data/l2`` (Binance, Coinbase, Kraken) replay together, and
at every book change the view that changed is checked against a plain ``Decimal``
reference computed from the venue books and states; a hand-made pair of captures that
cross gives the exact arbitrage row; the lazily grown views give the same events as a
view that held every venue from the start.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbook as fb
from fastbook import _pyconsol
from fastbook._consolrun import (
    ARB_DTYPE,
    CBBO_ROW_DTYPE,
    ConsolidatedTap,
    group_key,
    replay_consolidated,
)
from fastbook.codecs._l2feed import Instrument

D = Path(__file__).resolve().parents[1] / "data" / "l2" / "cryptofeed"
STALE = 5_000_000_000


def reference_bbo(result_feeds: dict[str, Any], keys: list[tuple[str, str]],
                  last: dict[tuple[str, str], int], live: dict[tuple[str, str], bool],
                  now: int, stale_ns: int = STALE) -> tuple[Any, ...]:
    """Best bid and ask across the venues that are in: live, not stale, not crossed,
    non-empty, in Decimal, with the set of venue indices at each."""
    bid = ask = None
    bq = aq = Decimal(0)
    bset: set[int] = set()
    aset: set[int] = set()
    for i, key in enumerate(keys):
        if key not in last or not live[key] or now - last[key] > stale_ns:
            continue
        book = result_feeds[key[0]].book(key[1])
        pd, qd = book.price_decimals, book.qty_decimals
        b, a = book.best_bid(), book.best_ask()
        if b is None and a is None:
            continue
        if b is not None and a is not None and b[0] >= a[0]:
            continue
        if b is not None:
            p, q = Decimal(b[0]).scaleb(-pd), Decimal(b[1]).scaleb(-qd)
            if bid is None or p > bid:
                bid, bq, bset = p, q, {i}
            elif p == bid:
                bq += q
                bset.add(i)
        if a is not None:
            p, q = Decimal(a[0]).scaleb(-pd), Decimal(a[1]).scaleb(-qd)
            if ask is None or p < ask:
                ask, aq, aset = p, q, {i}
            elif p == ask:
                aq += q
                aset.add(i)
    return bid, bq, bset, ask, aq, aset


def checked_replay(sources: list[Path], **options: Any) -> tuple[Any, int]:
    """Replay with a check of the changed view against the reference at every step."""
    last: dict[tuple[str, str], int] = {}
    live: dict[tuple[str, str], bool] = {}
    steps = 0

    def on_step(tap: ConsolidatedTap, feeds: dict[str, Any], venue: str, native: str,
                recv_ns: int) -> None:
        nonlocal steps
        key = (venue, native)
        last[key] = recv_ns
        live[key] = feeds[venue].is_synced(native)
        m = tap._member.get(key)
        if m is None:
            return
        v, _ = m
        for k in v.keys:                   # a book that went unsynced since its last step
            if k in last and not feeds[k[0]].is_synced(k[1]):
                live[k] = False
        view = v.view
        bid, bq, bset, ask, aq, aset = reference_bbo(feeds, v.keys, last, live, recv_ns)
        pd, qd = view.price_decimals, view.qty_decimals
        exp_bid = (None, None, ()) if bid is None else (
            int(bid.scaleb(pd)), int(bq.scaleb(qd)), tuple(v.names[i] for i in sorted(bset)))
        exp_ask = (None, None, ()) if ask is None else (
            int(ask.scaleb(pd)), int(aq.scaleb(qd)), tuple(v.names[i] for i in sorted(aset)))
        assert view.bbo() == exp_bid + exp_ask, (venue, native, recv_ns)
        steps += 1

    return replay_consolidated(sources, on_step=on_step, **options), steps


def test_binance_coinbase_kraken_captures_every_step_matches_the_reference() -> None:
    result, steps = checked_replay(
        [D / "BINANCE.ws.1.0.gz", D / "BINANCE.http.0.0.gz", D / "COINBASE.ws.28.0.gz",
         D / "KRAKEN.ws.50.0.gz"],
        instruments={"binance-spot": D / "BINANCE.0.gz"})
    assert set(result.feeds) == {"binance-spot", "coinbase-exchange", "kraken-v1"}
    symbols = set(result.tap.symbols())
    # every book of the three captures has a view (no product is on two of them)
    assert {"NKN/USDT", "BLZ/ETH", "SKL/USD", "DASH/BTC", "OMG/USD", "BTC/CHF"} <= symbols
    assert len(symbols) == 4 + 10 + 10
    assert steps > 10_000
    assert result.tap.multi_venue() == []
    assert any("no product is on more than one venue" in w for w in result.warnings)
    assert len(result.cbbo) == result.tap.changes > 0
    assert result.cbbo.dtype == CBBO_ROW_DTYPE and result.arbitrage.dtype == ARB_DTYPE
    assert not len(result.arbitrage)
    assert np.all(np.diff(result.cbbo["ts"]) >= 0)


def test_omg_usd_on_binance_us_and_kraken_grouped_explicitly() -> None:
    group = {"OMG/USD": ["binance-us:OMGBUSD", "kraken-v1:OMG/USD"]}
    result, steps = checked_replay(
        [D / "BINANCE_US.ws.1.0.gz", D / "BINANCE_US.http.0.0.gz", D / "KRAKEN.ws.50.0.gz"],
        consolidate=group)
    assert result.tap.multi_venue() == ["OMG/USD"]
    view = result.view("OMG/USD")
    assert view.venue_names == ("kraken-v1", "binance-us")
    # the captures are six months apart: Kraken's quotes are stale when Binance.US's come
    assert view.venues_in() == {"kraken-v1": "stale", "binance-us": "in"}
    stale_rows = result.cbbo[(result.cbbo["venue"] == -1)]
    assert len(stale_rows) >= 1 and stale_rows[0]["in_mask"] == 0
    assert steps == result.stats()["views"]["OMG/USD"]["updates"]
    # Kraken's OMG/USD carries 6 price decimals, Binance.US 8: one exact common scale
    assert view.price_decimals == 8
    assert result.metadata["views"][0]["books"] == ["kraken-v1:OMG/USD", "binance-us:OMGBUSD"]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def crossing_captures(tmp: Path) -> list[Path]:
    """Binance spot BTCUSD and Coinbase BTC-USD; Binance's bid crosses Coinbase's ask
    at t=1.0 s and uncrosses at t=1.5 s. The venues' URLs are recorded text, read only
    to tell each capture's venue: a replay connects to nothing."""
    ws = "wss://stream.binance.com:9443/stream?streams=btcusd@depth@100ms"

    def depth(t: float, u: int, bids: list[list[str]]) -> str:
        return (f'{t}: {{"stream":"btcusd@depth@100ms","data":{{"e":"depthUpdate",'
                f'"E":{int(t * 1000)},"s":"BTCUSD","U":{u},"u":{u},"b":'
                f'{str(bids).replace(chr(39), chr(34))},"a":[]}}}}')

    binance = _write(tmp / "b.ws", [f"{ws} <-> 1700000000.0",
                                    depth(1700000000.5, 11, [["99.50", "1.0"]]),
                                    depth(1700000001.0, 12, [["101.50", "0.4"]]),
                                    depth(1700000001.5, 13, [["101.50", "0"]])])
    rest = _write(tmp / "b.http", [
        "https://api.binance.com/api/v3/depth?symbol=BTCUSD&limit=1000 -> 1700000000.2: "
        '{"lastUpdateId":10,"bids":[["99.00","2.0"]],"asks":[["102.00","1.0"]]}'])
    coinbase = _write(tmp / "c.ws", [
        "wss://ws-feed.pro.coinbase.com <-> 1700000000.0",
        '1700000000.1: {"type":"snapshot","product_id":"BTC-USD","bids":[["100.00","1.5"]],'
        '"asks":[["101.00","2.0"]]}'])
    return [binance, rest, coinbase]


GROUP = {"BTC/USD": ["coinbase-exchange:BTC-USD", "binance-spot:BTCUSD"]}
FEES = {"binance-spot": "0", "coinbase-exchange": "0.001"}


def test_a_crossing_gives_the_exact_arbitrage_rows_and_its_end(tmp_path: Path) -> None:
    result, _ = checked_replay(crossing_captures(tmp_path), consolidate=GROUP, fees=FEES)
    arb = result.arbitrage
    assert len(arb) == 2
    start, end = arb
    names = result.view("BTC/USD").venue_names
    assert names[start["sell_venue"]] == "binance-spot"
    assert names[start["buy_venue"]] == "coinbase-exchange"
    assert start["ts"] == 1700000001_000000000
    assert start["qty"] == 40_000_000                          # 0.4 BTC at 8 decimals
    # sell 0.4 at 101.50 without fee, buy 0.4 at 101.00 plus 0.1%: 40.6 - 40.4404
    assert Decimal(start["profit"]) == Decimal("0.1596")
    assert start["sell_limit"] == 10_150_000_000 and start["buy_limit"] == 10_100_000_000
    assert start["rank"] == 0 and start["sell_age"] == 0
    assert start["buy_age"] == 1700000001_000000000 - 1700000000_100000000
    assert end["ts"] == 1700000001_500000000 and end["qty"] == 0 and end["rank"] == -1


def test_parquet_output_holds_the_tables_and_their_scales(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import json

    out = tmp_path / "cbbo.parquet"
    result = fb.replay(crossing_captures(tmp_path), consolidate=GROUP, fees=FEES,
                       output=out)
    cbbo = pq.read_table(out)
    arb = pq.read_table(tmp_path / "cbbo.arbitrage.parquet")
    assert cbbo.num_rows == len(result.cbbo) and arb.num_rows == 2
    assert cbbo.column("bid").to_pylist() == result.cbbo["bid"].tolist()
    assert arb.column("profit").to_pylist() == ["0.1596", "0"]
    meta = json.loads(cbbo.schema.metadata[b"fastbook.consolidated"])
    (view,) = meta["views"]
    assert view["symbol"] == "BTC/USD" and view["price_decimals"] == 8
    assert [v["taker_fee"] for v in view["venues"]] == ["0.00100000", "0.00000000"]
    assert cbbo.schema.metadata[b"fastbook.table"] == b"cbbo"


def test_compiled_and_twin_views_give_the_same_tables(tmp_path: Path) -> None:
    sources = [D / "BINANCE_US.ws.1.0.gz", D / "BINANCE_US.http.0.0.gz",
               D / "KRAKEN.ws.50.0.gz", *crossing_captures(tmp_path)]
    group = {"OMG/USD": ["binance-us:OMGBUSD", "kraken-v1:OMG/USD"], **GROUP}
    a = replay_consolidated(sources, consolidate=group, fees=FEES)
    b = replay_consolidated(sources, consolidate=group, fees=FEES,
                            consolidated=_pyconsol.Consolidated)
    assert len(a.cbbo) > 100
    assert a.cbbo.tobytes() == b.cbbo.tobytes()
    assert a.arbitrage.tolist() == b.arbitrage.tolist()


def _inst(venue: str, native: str, symbol: str, pd: int = 2, qd: int = 3) -> Instrument:
    return Instrument(venue, native, symbol, pd, qd)


@pytest.mark.parametrize("impl", ["compiled", "twin"])
def test_views_grown_venue_by_venue_equal_a_view_built_with_every_venue(impl: str) -> None:
    make = fb.Consolidated if impl == "compiled" else _pyconsol.Consolidated
    rng = np.random.default_rng(5)
    names = ["a", "b", "c", "d"]
    books = {n: fb.Book(price_decimals=2, qty_decimals=3) for n in names}
    insts = {n: _inst(n + "-x", "BTC-USD", "BTC/USD") for n in names}
    fees = {n + "-x": "0.0001" for n in names}
    tap = ConsolidatedTap(True, stale_ns=3_000, fees=fees, consolidated=make)
    full = make("BTC/USD", [(n + "-x", books[n], insts[n], 3_000, "0.0001") for n in names])
    t = 0
    expect = []
    for step in range(600):
        n = names[min(int(rng.integers(0, 4)), step // 40)]       # venues join one by one
        side = int(rng.integers(1, 3))
        price = int(rng.integers(9_990, 10_010)) if side == fb.BID else \
            int(rng.integers(10_000, 10_020))
        books[n].set(side, price, int(rng.integers(0, 4)) * 1000)
        t += int(rng.integers(0, 1_500))
        live = bool(rng.random() > 0.05)
        tap.applied(n + "-x", "BTC-USD", books[n], insts[n], t, live)
        full.update(names.index(n), t, live)
        if step % 7 == 0:
            tap.refresh(t + 10)
            full.refresh(t + 10)
            t += 10
    expect = full.take_events()
    got = tap.take_cbbo()
    # the tap's venue order is the order they joined: a, b, c, d as well
    assert tap.view("BTC/USD").venue_names == tuple(n + "-x" for n in names)
    assert got[list(expect.dtype.names or ())].tolist() == expect.tolist()
    s = tap.stats()["views"]["BTC/USD"]
    f = full.stats()
    assert s["updates"] == f["updates"] and s["changes"] == f["changes"]
    assert {k: v["updates"] for k, v in s["venues"].items()} == \
        {k: v["updates"] for k, v in f["venues"].items()}


def test_a_replaced_book_is_rebound_not_duplicated() -> None:
    tap = ConsolidatedTap(True, fees={"x": "0", "y": "0"})
    ix, iy = _inst("x", "BTC-USD", "BTC/USD"), _inst("y", "BTC-USD", "BTC/USD")
    bx, by = fb.Book(price_decimals=2, qty_decimals=3), fb.Book(price_decimals=2,
                                                                qty_decimals=3)
    bx.set(fb.BID, 100, 1)
    by.set(fb.ASK, 105, 1)
    tap.applied("x", "BTC-USD", bx, ix, 1)
    tap.applied("y", "BTC-USD", by, iy, 2)
    fresh = fb.Book(price_decimals=2, qty_decimals=3)       # a reconnect's new book
    fresh.set(fb.BID, 103, 2)
    assert tap.applied("x", "BTC-USD", fresh, ix, 3)
    view = tap.view("BTC/USD")
    assert len(view) == 2 and view.bbo()[:2] == (103, 2)
    wrong = fb.Book(price_decimals=1, qty_decimals=3)
    with pytest.raises(ValueError, match=r"'x'.*1/3 price/qty decimals.*2/3"):
        tap.applied("x", "BTC-USD", wrong, ix, 4)


def test_group_keys_and_quote_aliases() -> None:
    assert group_key("kraken-v1", "XBT/USD", None) == "BTC/USD"
    assert group_key("coinbase-exchange", "OMG-BUSD", None, {"BUSD": "USD"}) == "OMG/USD"
    assert group_key("binance-spot", "OMGBUSD", _inst("binance-spot", "OMGBUSD", "OMGBUSD")) \
        is None
    assert group_key("okx", "BTC-USDC-SWAP", None, {"USDC": "USD"}) == "BTC/USD:USD"
    tap = ConsolidatedTap(True, quote_aliases={"BUSD": "USD"}, fees={"a": "0", "b": "0"})
    b1, b2 = fb.Book(price_decimals=2, qty_decimals=3), fb.Book(price_decimals=2,
                                                                qty_decimals=3)
    b1.set(fb.BID, 100, 1)
    b2.set(fb.BID, 100, 2)
    tap.applied("a", "OMGBUSD", b1, _inst("a", "OMGBUSD", "OMG/BUSD"), 1)
    tap.applied("b", "OMG-USD", b2, _inst("b", "OMG-USD", "OMG/USD"), 2)
    assert tap.symbols() == ["OMG/USD"] and tap.view("OMG/USD").bbo()[:3] == (100, 3,
                                                                               ("a", "b"))


def test_bad_consolidated_input_is_a_clear_error(tmp_path: Path) -> None:
    caps = crossing_captures(tmp_path)
    with pytest.raises(ValueError, match="2 codecs for 3 captures"):
        fb.replay(caps, "binance-spot,coinbase-exchange", consolidate=True)
    with pytest.raises(ValueError, match="not 'venue:native'"):
        fb.replay(caps, consolidate={"BTC/USD": ["BTC-USD"]})
    with pytest.raises(ValueError, match="in two consolidated groups"):
        fb.replay(caps, consolidate={"BTC/USD": ["a:b"], "ETH/USD": ["a:b"]})
    with pytest.raises(ValueError, match="not a normalized symbol"):
        fb.replay(caps, consolidate=["BTCUSD"])
    with pytest.raises(ValueError, match="every= is not an option"):
        fb.replay(caps, consolidate=True, every="1s")
    with pytest.raises(ValueError, match="framing: not options of a consolidated"):
        fb.replay(caps, consolidate=True, framing="raw")
    odd = _write(tmp_path / "odd.ws", ["wss://example.invalid/ws <-> 1700000000.0"])
    with pytest.raises(ValueError, match=r"odd.ws: cannot tell the venue"):
        fb.replay([odd], consolidate=True)
    with pytest.raises(ValueError, match=r"itch50.* is not an L2 feed codec"):
        fb.replay(caps, "itch50", consolidate=True)
    # a book of another product in an explicit group: the view names the venue
    with pytest.raises(ValueError, match=r"venue 'coinbase-exchange'.*BTC/USD, not ETH/USD"):
        fb.replay(caps, consolidate={"ETH/USD": ["coinbase-exchange:BTC-USD"]})
    with open(caps[0], "rb") as f, pytest.raises(ValueError, match="streams"):
        fb.replay([f], consolidate=True)


def test_command_line_replay_consolidate(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("pyarrow")
    from fastbook.cli import main

    caps = [str(p) for p in crossing_captures(tmp_path)]
    out = tmp_path / "cb.parquet"
    rc = main(["replay", *caps, "--consolidate",
               "BTC/USD=coinbase-exchange:BTC-USD,binance-spot:BTCUSD",
               "--fee", "binance-spot=0", "--fee", "coinbase-exchange=0.001", "-o", str(out),
               "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "BTC/USD: 2 venue(s) (coinbase-exchange, binance-spot)" in text
    assert "1 arbitrage rows" in text
    assert out.exists() and (tmp_path / "cb.arbitrage.parquet").exists()
    rc = main(["replay", *caps, "--consolidate", "BTC/USD", "--consolidate", "X=a:b"])
    assert rc == 1 and "not both" in capsys.readouterr().err


def test_a_book_the_view_refuses_stays_out_and_the_view_stays_whole() -> None:
    tap = ConsolidatedTap({"BTC/USD": ["x:BTC-USD", "y:ETH-USD"]}, fees={"x": "0", "y": "0"})
    bx = fb.Book(price_decimals=2, qty_decimals=3)
    bx.set(fb.BID, 100, 1)
    tap.applied("x", "BTC-USD", bx, _inst("x", "BTC-USD", "BTC/USD"), 1)
    by = fb.Book(price_decimals=2, qty_decimals=3)
    with pytest.raises(ValueError, match=r"venue 'y'.*ETH/USD, not BTC/USD"):
        tap.applied("y", "ETH-USD", by, _inst("y", "ETH-USD", "ETH/USD"), 2)
    assert "refused by the BTC/USD view" in tap.unmapped[("y", "ETH-USD")]
    assert tap.applied("y", "ETH-USD", by, _inst("y", "ETH-USD", "ETH/USD"), 3) is False
    assert tap.view("BTC/USD").venue_names == ("x",)
    assert tap.refresh(4) == 0
    # a first book refused leaves no half-made view behind
    t2 = ConsolidatedTap({"BTC/USD": ["z:ETH-USD"]})
    with pytest.raises(ValueError):
        t2.applied("z", "ETH-USD", by, _inst("z", "ETH-USD", "ETH/USD"), 1)
    assert t2.symbols() == [] and t2.refresh(2) == 0


def test_health_rows_and_alerts_of_a_replay(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from fastbook.live._health import HEALTH_DTYPE, STATE_CODES

    out = tmp_path / "omg.parquet"
    result = fb.replay(
        [D / "BINANCE_US.ws.1.0.gz", D / "BINANCE_US.http.0.0.gz", D / "KRAKEN.ws.50.0.gz"],
        consolidate={"OMG/USD": ["binance-us:OMGBUSD", "kraken-v1:OMG/USD"]},
        health={"stale_s": 5.0}, output=out)
    rows = result.health
    assert rows is not None and rows.dtype == HEALTH_DTYPE and len(rows) > 20
    venues = result.metadata["health"]["venues"]
    assert set(venues) == {"kraken-v1", "binance-us"}
    kraken = rows[rows["venue"] == venues.index("kraken-v1")]
    assert (kraken["state"] == STATE_CODES.index("live")).any()
    assert np.all(np.diff(kraken["messages"]) >= 0)
    # Kraken's capture ends six months before Binance.US's starts: a stale alert
    stale = [a for a in result.alerts if a.venue == "kraken-v1" and a.kind == "stale"]
    assert stale and stale[0].level == "warning"
    assert stale[0].ts_ns > 1_630_000_000 * 10**9                 # in Binance.US's October
    table = pq.read_table(tmp_path / "omg.health.parquet")
    assert table.num_rows == len(rows)
    assert table.schema.metadata[b"fastbook.table"] == b"health"


def test_a_clock_step_back_before_a_join_rebuilds_the_same_view() -> None:
    names = ["a", "b"]
    books = {n: fb.Book(price_decimals=2, qty_decimals=3) for n in names}
    insts = {n: _inst(n, "BTC-USD", "BTC/USD") for n in names}
    tap = ConsolidatedTap(True, stale_ns=1_000, fees=dict.fromkeys(names, "0"))
    books["a"].set(fb.BID, 100, 1)
    tap.applied("a", "BTC-USD", books["a"], insts["a"], 5_000)
    tap.applied("a", "BTC-USD", books["a"], insts["a"], 4_000)     # steps back: 5,000 stands
    books["b"].set(fb.ASK, 105, 1)
    tap.applied("b", "BTC-USD", books["b"], insts["b"], 5_900)     # b joins: a rebuild
    view = tap.view("BTC/USD")
    # a's quote is 900 ns old (from 5,000, not 4,000): still in the view
    assert view.venues_in() == {"a": "in", "b": "in"}
    assert tap.stats()["views"]["BTC/USD"]["clock_backwards"] == 1
