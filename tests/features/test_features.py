"""Feature columns of the sampler (fastbook.features): hand-computed cases, from each
paper's definition, on both cores; then the compiled kernel against its twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbook import _pyl3
from fastbook.errors import UpdateError
from fastbook.events import Flags, events_from_records
from fastbook.features import Stoikov, column_unit, parse_features, stoikov_adjustment
from fastbook.sampling import Sampler
from tests.helpers.events import apply_both, as_events, event_records, make_set
from tests.helpers.impls import L3 as _l3
from tests.helpers.impls import L3_PAIRS as IMPLS
from tests.helpers.impls import requires_compiled

needs_compiled = requires_compiled(_l3, reason="compiled L3 book disabled or not built")

BID, ASK = 1, 2
AGG_BUY, AGG_SELL = int(Flags.AGGRESSOR_BUY), int(Flags.AGGRESSOR_SELL)
CROSS, NON_PRINTABLE, SNAPSHOT = int(Flags.CROSS), int(Flags.NON_PRINTABLE), int(Flags.SNAPSHOT)
LAST = int(Flags.LAST_IN_PACKET)
NAN = float("nan")


@pytest.fixture(params=sorted(IMPLS))
def l3mod(request):
    return IMPLS[request.param][0]


def add(oid, side, price, qty, inst=0, **kw):
    return {"action": "add", "order_id": oid, "side": side, "price": price, "qty": qty,
            "instrument": inst, **kw}


def setl(side, price, qty, **kw):
    return {"action": "set_level", "side": side, "price": price, "qty": qty, "instrument": 2,
            **kw}


def run(l3mod, records, features, *, on_error="raise", trades=False, **rules):
    bs = make_set(l3mod, on_error)
    s = Sampler(depth=3, features=features, trades=trades, **(rules or {"every": 1}))
    bs.apply(events_from_records(records), sampler=s)
    return bs, s


def last_row(s):
    return {k: (v[-1].tolist() if v.ndim == 2 else v[-1].item()) for k, v in s.columns().items()}


def same(a, b):
    """Equal, NaN equal to NaN (exactly: the twin promises the kernel's floats)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------

def test_parse_names_and_columns():
    fs = parse_features("mid, spread,ofi_3,walk_cost_0.5")
    assert fs.names == ["mid", "spread", "ofi_3", "walk_cost_0.5"]
    assert [c.name for c in fs.columns][:4] == ["mid", "spread", "spread_ticks", "spread_bps"]
    assert parse_features(["ofi"]).names == ["ofi_1"]
    assert column_unit("trade_buy_qty") == "qty" and column_unit("bid_slope_5") == "qty/price"
    assert column_unit("walk_sell_thin_2") == "flag" and column_unit("ask_qty") is None


@pytest.mark.parametrize("spec, match", [
    ("micro", "unknown feature"), ("imbalance_0", "level count"), ("imbalance_x", "level"),
    ("slope_1", "from 2"), ("ofi_²", "level count"), ("depth_bps_-1", "positive"),
    ("depth_bps_20000", "at most 10000"), ("walk_cost_0", "positive"), ("vpin_10", "vpin_V_N"),
    ("vpin_10_0", "bucket count"), ("walk_cost_nan", "number"), ("depth_bps_1e3", "ASCII"),
])
def test_parse_refuses_bad_names(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_features([spec])


def test_parse_refuses_duplicates_and_wrong_types():
    with pytest.raises(ValueError, match="same column twice"):
        parse_features(["mid", "mid"])
    with pytest.raises(ValueError, match="at most one ofi"):
        parse_features(["ofi_1", "ofi_2"])
    with pytest.raises(TypeError, match="a feature is a name"):
        parse_features([3])
    with pytest.raises(ValueError, match="Stoikov table"):
        Stoikov([[]])


def test_amounts_that_are_not_whole_steps_give_nan_not_a_rounded_walk(l3mod):
    # instrument 0 has qty_decimals=0 (0.5 share is no quantity), 2 has 8
    bs = make_set(l3mod)
    s = Sampler(every=1, features=["walk_cost_0.5", "vpin_0.5_2"])
    bs.apply(events_from_records([add(1, ASK, 100, 5), add(2, ASK, 100, 5),
                                  {"action": "execute", "order_id": 1, "qty": 5},
                                  setl(ASK, 10000, 10 ** 8)]), sampler=s)
    c = s.columns()
    assert np.isnan(c["walk_buy_px_0.5"][:3]).all() and c["walk_buy_thin_0.5"][0] == 0
    assert np.isnan(c["vpin"]).all()
    assert c["walk_buy_px_0.5"][3] == 100.0 and c["walk_buy_thin_0.5"][3] == 0


# ---------------------------------------------------------------------------
# book features, by hand
# ---------------------------------------------------------------------------

BOOK = [add(1, BID, 10000, 300), add(2, BID, 9900, 200), add(3, BID, 9800, 500),
        add(4, ASK, 10200, 100), add(5, ASK, 10300, 400)]


def test_mid_spread_microprice_imbalance(l3mod):
    _, s = run(l3mod, BOOK, ["mid", "spread", "microprice", "imbalance_1", "imbalance_3"])
    r = last_row(s)
    # instrument 0: price_decimals 4, tick 100
    assert r["mid"] == 1.01
    assert r["spread"] == 200 / 1e4 and r["spread_ticks"] == 2.0
    assert r["spread_bps"] == 200 / 10100 * 1e4
    # size-weighted: (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)
    assert r["microprice"] == (10000 * 100 + 10200 * 300) / 400 / 1e4
    assert r["imbalance_1"] == (300 - 100) / 400
    assert r["imbalance_3"] == (1000 - 500) / 1500


def test_depth_within_bps_counts_levels_inside_exactly(l3mod):
    # mid 10100: 100 bps is 101 either side; 9999 <= bid; ask <= 10201
    _, s = run(l3mod, BOOK, ["depth_bps_100", "depth_bps_198.0198"])
    r = last_row(s)
    assert (r["bid_depth_bps_100"], r["ask_depth_bps_100"]) == (300, 100)
    # 198.0198 bps of 10100 is 199.99999...: 9900 is just outside, 10300 too
    assert (r["bid_depth_bps_198.0198"], r["ask_depth_bps_198.0198"]) == (300, 100)
    _, s = run(l3mod, BOOK, ["depth_bps_198.0199"])
    r = last_row(s)
    assert (r["bid_depth_bps_198.0199"], r["ask_depth_bps_198.0199"]) == (500, 500)


def test_slope_is_the_least_squares_slope_of_cumulative_depth(l3mod):
    _, s = run(l3mod, BOOK, ["slope_3"])
    r = last_row(s)
    x = np.array([100, 200, 300]) / 1e4           # distance from mid 10100, price units
    y = np.array([300, 500, 1000.0])
    assert r["bid_slope_3"] == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-12)
    xa = np.array([100, 200]) / 1e4
    assert r["ask_slope_3"] == pytest.approx(np.polyfit(xa, [100, 500.0], 1)[0], rel=1e-12)


def test_walk_cost_and_the_thin_flag(l3mod):
    _, s = run(l3mod, BOOK, ["walk_cost_300", "walk_cost_1000"])
    r = last_row(s)
    buy = (10200 * 100 + 10300 * 200) / 300
    assert r["walk_buy_px_300"] == buy / 1e4
    assert r["walk_buy_bps_300"] == (buy - 10100) / 10100 * 1e4
    assert r["walk_buy_thin_300"] == 0
    assert r["walk_sell_px_300"] == 1.0 and r["walk_sell_thin_300"] == 0
    # 1000 is more than the 500 asks: the average of what is there, flagged thin
    assert r["walk_buy_px_1000"] == (10200 * 100 + 10300 * 400) / 500 / 1e4
    assert r["walk_buy_thin_1000"] == 1 and r["walk_sell_thin_1000"] == 0


def test_empty_sides_give_the_documented_values(l3mod):
    names = ["mid", "spread", "microprice", "imbalance_2", "depth_bps_10", "slope_2",
             "walk_cost_1", "ofi_1", "trade_flow", "vpin_10_2", Stoikov([0.0])]
    _, s = run(l3mod, [add(1, BID, 10000, 5)], names)
    r = last_row(s)
    for key in ("mid", "spread", "spread_ticks", "spread_bps", "microprice",
                "microprice_stoikov", "bid_slope_2", "ask_slope_2", "walk_buy_px_1",
                "walk_buy_bps_1", "walk_sell_bps_1", "vpin"):
        assert math.isnan(r[key]), key
    assert r["imbalance_2"] == 1.0                      # all bids
    assert r["walk_sell_px_1"] == 1.0                   # a sell needs only bids
    assert (r["walk_buy_thin_1"], r["walk_sell_thin_1"]) == (1, 0)
    assert (r["bid_depth_bps_10"], r["ask_depth_bps_10"]) == (0, 0)
    assert r["ofi_l1"] == 5 and r["trade_count"] == 0


def test_stoikov_adjusts_the_mid_by_its_table(l3mod):
    # 2 rows (spread 1 tick, 2+ ticks) x 4 imbalance buckets
    table = [[-0.3, -0.1, 0.1, 0.3], [-0.2, 0.0, 0.0, 0.2]]
    _, s = run(l3mod, BOOK, [Stoikov(table), "mid"])
    r = last_row(s)
    # imbalance 300 / 400 = 0.75: bucket 3; spread 200 = 2 ticks of 100: row 1
    assert r["microprice_stoikov"] == (20200 / 2 + 200 * 0.2) / 1e4
    # the size-weighted micro-price is the table I - 1/2 at fine buckets
    fine = Stoikov(np.arange(10000) / 10000 - 0.5 + 0.5 / 10000)
    _, s = run(l3mod, BOOK, [fine, "microprice"])
    r = last_row(s)
    assert r["microprice_stoikov"] == pytest.approx(r["microprice"], abs=2e-6)


def test_stoikov_adjustment_estimates_the_mean_move_per_bucket():
    # mid moves +1 after high imbalance rows, -1 after low ones
    bid = np.array([[100], [101], [100], [101]])
    cols = {"instrument": np.zeros(4, np.uint32), "bid_px": bid, "ask_px": bid + 2,
            "bid_qty": np.array([[9], [1], [9], [1]]), "ask_qty": np.array([[1], [9], [1], [9]])}
    g = stoikov_adjustment(cols, buckets=2, horizon=1)
    assert g.tolist() == [-0.5, 0.5]


# ---------------------------------------------------------------------------
# order flow imbalance (Cont, Kukanov and Stoikov 2014)
# ---------------------------------------------------------------------------

def test_ofi_follows_the_papers_indicators(l3mod):
    recs = [add(1, BID, 100, 5), add(2, ASK, 110, 4),
            add(3, BID, 100, 2),                    # same bid price, +2: e = q_n - q_n-1 = 2
            add(4, BID, 101, 1),                    # bid up: e = +1 (the new queue)
            {"action": "delete", "order_id": 4},    # bid down: e = -1 (the old queue left)
            add(5, ASK, 110, 3),                    # ask same price +3: e = -3
            add(6, ASK, 109, 2),                    # ask down: e = -2
            {"action": "execute", "order_id": 6, "qty": 2}]  # ask up: e = +2
    _, s = run(l3mod, recs, ["ofi_1"])
    assert s.columns()["ofi_l1"].tolist() == [5, -4, 2, 1, -1, -3, -2, 2]


def test_ofi_strict_inequalities_would_miss_same_price_changes(l3mod):
    # the paper's >= / <=: a same-price queue change counts once on its side
    recs = [add(1, BID, 100, 5), add(2, ASK, 110, 4), {"action": "reduce", "order_id": 1,
                                                          "qty": 3}]
    _, s = run(l3mod, recs, ["ofi_1"], every=3)
    assert s.columns()["ofi_l1"].tolist() == [5 - 4 - 3]


def test_multi_level_ofi_and_sums_between_rows(l3mod):
    recs = [add(1, BID, 100, 5), add(2, BID, 99, 3), add(3, ASK, 110, 4),
            add(4, BID, 98, 7),                       # level 3 appears: +7 at level 3
            add(5, BID, 101, 1)]                      # every bid level shifts down one
    _, s = run(l3mod, recs, ["ofi_3"], every=5)
    c = s.columns()
    # level 1: +5 (first), +1 (101 above 100); level 2: +3, then 100 x5 replaces 99 x3: +5
    # level 3: +7, then 99 x3 replaces 98 x7 (higher price: +3); the ask is level 1's -4
    assert [c["ofi_l1"][0], c["ofi_l2"][0], c["ofi_l3"][0]] == [5 + 1 - 4, 3 + 5, 7 + 3]


def test_ofi_ignores_a_snapshot_rebuild(l3mod):
    recs = [setl(BID, 100, 5), {"action": "snapshot_begin", "instrument": 2},
            setl(BID, 200, 9, flags=SNAPSHOT), setl(ASK, 210, 9, flags=SNAPSHOT),
            {"action": "snapshot_end", "instrument": 2}, setl(BID, 200, 10)]
    _, s = run(l3mod, recs, ["ofi_1"], every=6)
    # +5 before the snapshot, nothing for it, +1 after
    assert s.columns()["ofi_l1"].tolist() == [6]


# ---------------------------------------------------------------------------
# trades: aggressor side, trade flow, the trades table, VPIN
# ---------------------------------------------------------------------------

def test_aggressor_rules(l3mod):
    recs = [add(1, BID, 100, 5), add(2, ASK, 110, 5),
            {"action": "execute", "order_id": 2, "qty": 1},                # resting ask: buy
            {"action": "execute", "order_id": 1, "qty": 2, "flags": AGG_BUY},  # venue says
            {"action": "trade", "price": 101, "qty": 4},                   # below mid: sell
            {"action": "trade", "price": 108, "qty": 3},                   # above: buy
            {"action": "trade", "price": 105, "qty": 5},                   # at mid: downtick
            {"action": "trade", "price": 105, "qty": 6},                   # zero tick: sell
            {"action": "trade", "price": 103, "qty": 7, "side": BID},      # resting bid: sell
            {"action": "trade", "price": 105, "qty": 8, "flags": CROSS},   # a cross: unknown
            {"action": "execute", "order_id": 1, "qty": 1, "flags": NON_PRINTABLE}]
    _, s = run(l3mod, recs, ["trade_flow"], trades=True, every=11)
    t = s.trades()
    assert t["aggressor"].tolist() == [1, 1, 2, 1, 2, 2, 2, 0]
    assert t["rule"].tolist() == [2, 1, 3, 3, 4, 4, 2, 0]
    assert t["price"].tolist() == [110, 100, 101, 108, 105, 105, 103, 105]
    r = last_row(s)
    assert (r["trade_count"], r["trade_qty"]) == (8, 36)
    assert (r["trade_buy_qty"], r["trade_sell_qty"]) == (1 + 2 + 3, 4 + 5 + 6 + 7)


def test_trade_flow_resets_at_each_row_of_its_instrument(l3mod):
    recs = [add(1, BID, 100, 50), {"action": "execute", "order_id": 1, "qty": 1},
            add(2, ASK, 110, 5, inst=1), {"action": "execute", "order_id": 1, "qty": 2},
            {"action": "execute", "order_id": 1, "qty": 3}]
    _, s = run(l3mod, recs, ["trade_flow"], every=2)
    c = s.columns()
    assert c["instrument"].tolist() == [0, 0]
    assert c["trade_sell_qty"].tolist() == [1, 5]


def test_vpin_buckets_spill_over_and_stay_in_unit_range(l3mod):
    recs = [add(1, BID, 100, 10_000), add(2, ASK, 110, 10_000),
            {"action": "execute", "order_id": 2, "qty": 7},    # buy 7: bucket 1 (10) 7/0
            {"action": "execute", "order_id": 1, "qty": 5},    # sell 5: 3 fills it: |7-3|=4
            {"action": "execute", "order_id": 1, "qty": 8},    # sell 2 + 6 -> bucket 2 |0-10|
            {"action": "execute", "order_id": 2, "qty": 45}]   # buy 45: 4 whole buckets + 1
    _, s = run(l3mod, recs, ["vpin_10_2"], every=1)
    v = s.columns()["vpin"].tolist()
    assert math.isnan(v[3])                    # one bucket done: not yet 2
    assert v[4] == (4 + 10) / 20               # buckets 1 and 2
    # bucket 2 (sell 8 of 10) gets the buy's first 2: |2-8| = 6, then three of 10 buys
    assert v[5] == (10 + 10) / 20
    assert all(0 <= x <= 1 for x in v if not math.isnan(x))


def test_refused_events_change_no_feature_state(l3mod):
    recs = [add(1, BID, 100, 5), add(2, ASK, 110, 5),
            {"action": "execute", "order_id": 2, "qty": 9},    # over-execution: refused
            {"action": "execute", "order_id": 7, "qty": 1},    # unknown order: refused
            {"action": "execute", "order_id": 2, "qty": 1}]
    _, s = run(l3mod, recs, ["trade_flow", "ofi_1", "vpin_2_1"], on_error="skip",
               trades=True, every=3)
    r = last_row(s)
    assert (r["trade_count"], r["trade_buy_qty"]) == (1, 1)
    assert s.trades()["qty"].tolist() == [1]


def test_raise_mode_failure_takes_back_feature_state(l3mod):
    bs = make_set(l3mod)
    s = Sampler(every=2, features=["trade_flow", "ofi_2", "vpin_3_2"], trades=True)
    good = events_from_records([add(1, BID, 100, 5), add(2, ASK, 110, 5)])
    bs.apply(good, sampler=s)
    saved = (s._fstate.save(), len(s.trades()["ts"]), len(s))
    bad = events_from_records([{"action": "execute", "order_id": 2, "qty": 1},
                               {"action": "execute", "order_id": 2, "qty": 99}])
    with pytest.raises(UpdateError):
        bs.apply(bad, sampler=s)
    after = s._fstate.save()
    assert all(np.array_equal(a, b) for a, b in zip(saved[0], after, strict=True))
    assert (len(s.trades()["ts"]), len(s)) == saved[1:]


def test_trades_alone_need_no_sampling_rule(l3mod):
    bs = make_set(l3mod)
    s = Sampler(trades=True)
    bs.apply(events_from_records([add(1, BID, 100, 5),
                                  {"action": "execute", "order_id": 1, "qty": 2}]), sampler=s)
    assert len(s) == 0 and s.trades()["qty"].tolist() == [2]
    assert s.take_trades()["qty"].tolist() == [2] and len(s.trades()["ts"]) == 0


def test_trade_table_grows_from_capacity_one(l3mod):
    bs = make_set(l3mod)
    s = Sampler(trades=True, capacity=1)
    recs = [add(1, BID, 100, 1000)] + [{"action": "execute", "order_id": 1, "qty": 1}] * 40
    bs.apply(events_from_records(recs), sampler=s)
    assert s.trades()["qty"].tolist() == [1] * 40


# ---------------------------------------------------------------------------
# differential: the compiled kernel against the twin, bit for bit
# ---------------------------------------------------------------------------

ALL = ["mid", "spread", "microprice", Stoikov([[-0.2, 0.1], [0.3, 0.0]]), "imbalance_1",
       "imbalance_3", "depth_bps_300", "depth_bps_0.5", "slope_3", "walk_cost_4",
       "walk_cost_0.00000002", "ofi_3", "trade_flow", "vpin_6_3"]
_flag = st.sampled_from([0, 0, AGG_BUY, AGG_SELL, AGG_BUY | AGG_SELL, CROSS, NON_PRINTABLE])
trade_records = st.fixed_dictionaries({
    "instrument": st.sampled_from([0, 1, 2]),
    "action": st.sampled_from([3, 8, 8]),
    "side": st.sampled_from([0, BID, ASK]),
    "price": st.one_of(st.integers(95, 105), st.sampled_from([-(1 << 63), (1 << 63) - 1])),
    "qty": st.one_of(st.integers(1, 12), st.sampled_from([0, (1 << 63) - 1])),
    "order_id": st.integers(0, 20),
    "flags": _flag,
})
records = st.one_of(event_records, event_records, trade_records)


def _columns_equal(a, b):
    ca, cb = a.columns(), b.columns()
    assert list(ca) == list(cb)
    for name in ca:
        assert np.array_equal(ca[name], cb[name], equal_nan=ca[name].dtype.kind == "f"), name
    ta, tb = a.trades(), b.trades()
    for name in ta:
        assert np.array_equal(ta[name], tb[name]), name


def _apply_both(compiled, twin, samplers, events):
    apply_both(compiled, twin, samplers, events, _columns_equal)
    for x, y in zip(samplers[0]._fstate.save(), samplers[1]._fstate.save(), strict=True):
        assert np.array_equal(x, y)


rules = st.fixed_dictionaries({
    "every": st.one_of(st.none(), st.integers(1, 4)),
    "interval": st.one_of(st.none(), st.integers(1, 30)),
    "on_bbo": st.booleans(),
    "packets": st.booleans(),
    "instruments": st.one_of(st.none(), st.sets(st.integers(0, 2), max_size=2)),
}).filter(lambda k: k["every"] or k["interval"] or k["on_bbo"])


@needs_compiled
@pytest.mark.parametrize("on_error", ["raise", "skip", "stop"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kwargs=rules, batches=st.lists(st.lists(st.tuples(records, st.integers(-3, 40),
                                                         st.booleans()), max_size=30),
                                      min_size=1, max_size=5))
def test_differential_features(on_error, kwargs, batches):
    compiled, twin = make_set(_l3, on_error), make_set(_pyl3, on_error)
    samplers = tuple(Sampler(depth=2, capacity=cap, features=ALL, trades=True, **kwargs)
                     for cap in (1, 3))
    clock = 0
    for batch in batches:
        recs = []
        for rec, step, last in batch:
            clock += step
            flags = rec.get("flags", 0) | (LAST if last else 0)
            recs.append(dict(rec, ts_exchange=clock, sequence=len(recs), flags=flags))
        _apply_both(compiled, twin, samplers, as_events(recs))


@needs_compiled
def test_differential_on_a_synthetic_itch_day():
    from fastbook.codecs.itch50 import decode_events
    from fastbook.synth import itch_day

    events, directory, _ = decode_events(itch_day(20_000, n_symbols=4, seed=11))
    sets = []
    for mod in (_l3, _pyl3):
        bs = mod.BookSet()
        for entry in directory:
            bs.add_instrument(entry["symbol"], price_decimals=4)
        sets.append(bs)
    features = ["mid", "spread", "microprice", "imbalance_5", "depth_bps_25", "slope_5",
                "walk_cost_1000", "ofi_5", "trade_flow", "vpin_2000_20"]
    samplers = tuple(Sampler(depth=5, interval=50_000_000, on_bbo=True, features=features,
                             trades=True) for _ in range(2))
    for start in range(0, len(events), 7_000):
        _apply_both(sets[0], sets[1], samplers, events[start:start + 7_000])
    c = samplers[0].columns()
    assert len(c["ts"]) > 1000 and np.isfinite(c["microprice"]).mean() > 0.5
    t = samplers[0].trades()
    assert len(t["ts"]) > 100 and set(np.unique(t["aggressor"]).tolist()) <= {0, 1, 2}
    vpin = c["vpin"][np.isfinite(c["vpin"])]
    assert len(vpin) and vpin.min() >= 0 and vpin.max() <= 1


def test_feature_columns_plot_from_a_real_capture(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pyarrow")
    import fastbook as fb

    capture = "tests/data/l2/cryptofeed/KRAKEN.ws.50.0.gz"
    run = fb.replay(capture, "kraken-v1", every="1s", features=["microprice", "ofi_2"])
    out = tmp_path / "f.png"
    fig = run.plot(out, kind="series", instrument="XMR/USD", columns=["microprice", "ofi_l1"])
    assert out.stat().st_size > 5000
    rows = run.to_pandas(quantities="float")
    rows = rows[rows["symbol"] == "XMR/USD"]
    low, high = fig.axes[0].get_ylim()
    assert low <= rows["microprice"].min() and rows["microprice"].max() <= high
    low, high = fig.axes[1].get_ylim()            # OFI in real units, as quantities="float"
    assert low <= rows["ofi_l1"].min() and rows["ofi_l1"].max() <= high
    assert high - low < 10 * (rows["ofi_l1"].max() - rows["ofi_l1"].min() + 1)


CAPTURES = [("BINANCE_FUTURES.ws.1.0.gz", "BINANCE_FUTURES.http.0.0.gz", "binance-usdm"),
            ("COINBASE.ws.28.0.gz", None, "coinbase-exchange"),
            ("OKX.ws.1.0.gz", None, "okx"), ("KRAKEN.ws.50.0.gz", None, "kraken-v1")]
CAPTURE_FEATURES = ["mid", "spread", "microprice", "imbalance_5", "depth_bps_20", "slope_5",
                    "walk_cost_1", "ofi_5", "trade_flow", "vpin_10_5"]


@needs_compiled
@pytest.mark.parametrize("ws, rest, codec", CAPTURES, ids=[c[2] for c in CAPTURES])
def test_differential_on_real_captures(ws, rest, codec):
    """The real captures (their trade prints included) replayed with features into the
    compiled BookSet and into the twin's: the same rows, bit for bit, and the same trades."""
    import fastbook as fb

    d = "tests/data/l2/cryptofeed/"
    source = [d + ws] + ([d + rest] if rest else [])
    runs = [fb.replay(source, codec, every="1s,bbo", depth=3, features=CAPTURE_FEATURES,
                      trades=True, bookset=bs)
            for bs in (_l3.BookSet(on_error="stop"), _pyl3.BookSet(on_error="stop"))]
    a, b = runs[0].samples, runs[1].samples
    assert list(a) == list(b) and len(a["ts"]) > 20
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), name
    for name in runs[0].trades:
        assert np.array_equal(runs[0].trades[name], runs[1].trades[name]), name
    assert np.isfinite(a["microprice"]).any()


def test_streamed_outputs_carry_the_features_and_the_trades(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import fastbook as fb

    day = "tests/data/itch/ex20101224.TEST_ITCH_50.lenfixed.gz"
    feats = ["mid", "ofi_2", "trade_flow", "walk_cost_100"]
    kept = fb.replay(day, every="1s", on_error="skip", features=feats, trades=True)
    out, trades = tmp_path / "s.parquet", tmp_path / "t.csv"
    streamed = fb.replay(day, every="1s", on_error="skip", features=feats, output=out,
                         row_group_size=1024, trades=trades, quantities="float")
    table = pq.read_table(out)
    assert table.num_rows == len(kept.samples["ts"]) == streamed.rows
    assert np.array_equal(table.column("mid").to_numpy(), kept.samples["mid"],
                          equal_nan=True)
    # an integer quantity feature follows quantities="float" (ITCH: 0 decimals, so equal)
    assert table.column("ofi_l1").to_numpy().tolist() == kept.samples["ofi_l1"].tolist()
    lines = trades.read_text().splitlines()
    assert len(lines) == 1 + len(kept.trades["ts"]) > 100
    assert lines[0].split(",")[:3] == ['"ts"', '"instrument"', '"symbol"']
    with pytest.raises(ValueError, match="features= are columns of the samples"):
        fb.replay(day, features=["mid"])
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        fb.replay(day, every="1s", trades=tmp_path / "t.arrow")


@needs_compiled
def test_ofi_after_books_changed_outside_apply_agrees_with_the_twin():
    # the kernel reads only the side an L3 event can change; the twin applies the same
    # rule, so a book changed between batches (outside the sampler's view) still gives
    # the same sums in both
    sets = [make_set(mod) for mod in (_l3, _pyl3)]
    samplers = [Sampler(depth=2, every=1, features=["ofi_2"]) for _ in sets]
    first = events_from_records([add(1, BID, 100, 5), add(2, ASK, 110, 4)])
    then = events_from_records([add(3, BID, 100, 1), add(4, BID, 90, 1),
                                {"action": "execute", "order_id": 2, "qty": 1}])
    for bs, s in zip(sets, samplers, strict=True):
        bs.apply(first, sampler=s)
        bs[0].add(9, ASK, 109, 7)                # not through apply: OFI never saw it
        bs.apply(then, sampler=s)
    a, b = (s.columns() for s in samplers)
    assert a["ofi_l1"].tolist() == b["ofi_l1"].tolist()
    assert a["ofi_l2"].tolist() == b["ofi_l2"].tolist()
