"""fastbook.Consolidated: compiled vs twin, and both against a plain Decimal reference
(issue 19 items 1-3): BBO, depth, staleness and live exclusions, change detection, the
arbitrage walk, and bad input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fastbook as fb
from fastbook import _pyconsol, _pycore
from fastbook._consolspec import CBBO_DTYPE, FEE_ONE
from tests.consolidated.helpers import (
    CONSOL,
    V,
    as_decimal,
    included,
    ref_bbo,
    ref_depth,
    ref_walk,
    specs,
    venue,
)
from tests.helpers.impls import compiled, requires_compiled

_CONSOL_C = compiled("fastbook._consol")


@pytest.fixture(scope="module", params=sorted(CONSOL))
def mod(request: pytest.FixtureRequest) -> Any:
    return CONSOL[request.param]


# -- random venues and books ---------------------------------------------------------------

FEES = ["0", "0.0001", "0.0005", "0.001", "0.0026"]
SIZES = [None, None, "1", "0.01", "0.001"]


@st.composite
def venues(draw: Any, lo: int = 2, hi: int = 8) -> list[V]:
    n = draw(st.integers(lo, hi))
    out = []
    for i in range(n):
        pd = draw(st.integers(1, 4))
        cs = draw(st.sampled_from(SIZES))
        qd = draw(st.integers(0, 6))
        out.append(venue(f"v{i}", pd, qd, contract_size=cs, fee=draw(st.sampled_from(FEES)),
                         stale_ns=draw(st.sampled_from([10**6, 10**9]))))
    return out


def level_price(draw: Any, v: V, lo: int, hi: int) -> int:
    """A price in units of the venue's scale: usually on a 0.1 grid shared by all venues."""
    k = draw(st.integers(lo, hi)) * 10 ** (v.inst.price_decimals - 1)
    if draw(st.integers(0, 4)) == 0:
        k += draw(st.integers(0, 10 ** (v.inst.price_decimals - 1) - 1))
    return k


@st.composite
def book_op(draw: Any, vs: list[V], offsets: list[int]) -> tuple[Any, ...]:
    i = draw(st.integers(0, len(vs) - 1))
    v = vs[i]
    side = draw(st.sampled_from([fb.BID, fb.ASK]))
    # each venue quotes around its own mid (1000.0 + offset): venues cross each other, and
    # now and then themselves
    lo, hi = (990, 1001) if side == fb.BID else (999, 1010)
    price = level_price(draw, v, lo + offsets[i], hi + offsets[i])
    qty = draw(st.sampled_from([0, 1, 2, 5, 10**v.inst.qty_decimals, 3 * 10**v.inst.qty_decimals]))
    dt = draw(st.sampled_from([0, 1, 1000, 10**5, 2 * 10**6]))
    return ("set", i, side, price, qty, dt, draw(st.sampled_from([True] * 7 + [False])))


@st.composite
def scenario(draw: Any) -> tuple[list[V], list[tuple[Any, ...]]]:
    vs = draw(venues())
    offsets = draw(st.lists(st.integers(-10, 10), min_size=len(vs), max_size=len(vs)))
    ops = draw(st.lists(st.one_of(book_op(vs, offsets), st.tuples(st.just("refresh"),
                                                         st.integers(0, 2 * 10**6))),
                        min_size=1, max_size=60))
    return vs, ops


def run(views: list[Any], vs: list[V], ops: list[tuple[Any, ...]], check: Any) -> None:
    """Apply ``ops`` to the books and every view, calling ``check(now, results)``."""
    now = 0
    for op in ops:
        if op[0] == "set":
            _, i, side, price, qty, dt, live = op
            vs[i].book.set(side, price, qty)
            now += dt
            vs[i].live, vs[i].last = live, now
            results = [view.update(i, now, live) for view in views]
        else:
            now += op[1]
            results = [view.refresh(now) for view in views]
        check(now, results)


# -- the consolidated BBO against the Decimal reference --------------------------------

@settings(max_examples=60, deadline=None)
@given(sc=scenario())
def test_bbo_depth_and_changes_match_the_decimal_reference(mod: Any, sc: Any) -> None:
    vs, ops = sc
    view = mod.Consolidated("BTC/USDT", specs(vs))
    assert view.price_decimals == max(v.inst.price_decimals for v in vs)
    prev: list[Any] = [(None, None, (), None, None, ())]

    def check(now: int, results: list[bool]) -> None:
        want = ref_bbo(vs, now)
        got = as_decimal(view, view.bbo())
        assert got == want
        assert results[0] == (want != prev[0])        # a change exactly when the BBO changed
        prev[0] = want
        ins = included(vs, now)
        assert [n for n, r in view.venues_in().items() if r == "in"] == [vs[i].name for i in ins]
        bids, asks = ref_depth(vs, now, 5)
        d = view.depth(5)
        for levels, prices, qtys, per in ((bids, d.bid_prices, d.bid_qtys, d.bid_venue_qtys),
                                          (asks, d.ask_prices, d.ask_qtys, d.ask_venue_qtys)):
            assert [Decimal(int(x)).scaleb(-view.price_decimals) for x in prices] == \
                [lv[0] for lv in levels]
            assert [Decimal(int(x)).scaleb(-view.qty_decimals) for x in qtys] == \
                [lv[1] for lv in levels]
            assert [[Decimal(int(x)).scaleb(-view.qty_decimals) for x in row] for row in
                    per.tolist()] == [lv[2] for lv in levels]

    run([view], vs, ops, check)
    ev = view.take_events()
    assert ev.dtype == CBBO_DTYPE and len(ev) == view.stats()["changes"]
    assert len(view.take_events()) == 0


@requires_compiled(_CONSOL_C)
@settings(max_examples=80, deadline=None)
@given(sc=scenario(), fixed=st.sampled_from(["0", "0.0001", "0.5"]),
       bps=st.sampled_from([0, 1, 5]), max_age=st.sampled_from([None, 10**5, 10**6]))
def test_compiled_matches_the_twin(sc: Any, fixed: str, bps: int, max_age: int | None) -> None:
    vs, ops = sc
    kw = {"fixed_cost": fixed, "min_profit_bps": bps, "max_age_ns": max_age}
    views = [_CONSOL_C.Consolidated("BTC/USDT", specs(vs), **kw),
             _pyconsol.Consolidated("BTC/USDT", specs(vs), **kw)]

    def check(now: int, results: list[bool]) -> None:
        assert results[0] == results[1]
        c, t = views
        assert c.bbo() == t.bbo() and c.bbo_masks() == t.bbo_masks()
        assert c.venues_in() == t.venues_in()
        assert c.last_change() == t.last_change()
        opps = c.arbitrage(now)
        assert opps == t.arbitrage(now)
        event(f"opportunities: {min(len(opps), 2)}")

    run(views, vs, ops, check)
    c, t = views
    assert c.stats() == t.stats()
    ec, et = c.take_events(), t.take_events()
    assert ec.tobytes() == et.tobytes()


def test_compiled_reads_other_book_readers_through_python(mod: Any) -> None:
    """A twin Book (any reader with bbo() and top()) works in either view."""
    a = venue("a", 2, 4, book_class=_pycore.Book)
    b = venue("b", 2, 4)
    a.book.set(fb.BID, 10000, 5)
    a.book.set(fb.ASK, 10010, 5)
    b.book.set(fb.BID, 10000, 7)
    b.book.set(fb.ASK, 10020, 7)
    view = mod.Consolidated("BTC/USDT", specs([a, b]))
    view.update(0, 1)
    view.update(1, 2)
    assert view.bbo() == (10000, 12, ("a", "b"), 10010, 5, ("a",))


# -- arbitrage against the Decimal walk ------------------------------------------------------

@st.composite
def crossing(draw: Any) -> tuple[V, V, list[tuple[int, int, int, int]]]:
    """Two venues whose books cross each other (each one uncrossed), several levels deep."""
    sell = venue("sell", draw(st.integers(1, 4)), draw(st.integers(0, 4)),
                 contract_size=draw(st.sampled_from(SIZES)), fee=draw(st.sampled_from(FEES)))
    buy = venue("buy", draw(st.integers(1, 4)), draw(st.integers(0, 4)),
                contract_size=draw(st.sampled_from(SIZES)), fee=draw(st.sampled_from(FEES)))
    levels = []
    for v, side, lo, hi in ((sell, fb.BID, 995, 1010), (buy, fb.ASK, 990, 1005)):
        for _ in range(draw(st.integers(1, 40))):
            levels.append((0 if v is sell else 1, side, level_price(draw, v, lo, hi),
                           draw(st.integers(1, 5 * 10**v.inst.qty_decimals))))
    return sell, buy, levels


@settings(max_examples=80, deadline=None)
@given(c=crossing(), fixed=st.sampled_from(["0", "0.01"]))
def test_arbitrage_walk_matches_the_decimal_walk(mod: Any, c: Any, fixed: str) -> None:
    sell, buy, levels = c
    vs = [sell, buy]
    for i, side, price, qty in levels:
        vs[i].book.set(side, price, qty)
    # the far sides far away: neither venue crosses itself
    sell.book.set(fb.ASK, 2000 * 10**sell.inst.price_decimals, 1)
    buy.book.set(fb.BID, 1 * 10**buy.inst.price_decimals, 1)
    view = mod.Consolidated("BTC/USDT", specs(vs), fixed_cost=fixed)
    view.update(0, 100)
    view.update(1, 130)
    qty, profit = ref_walk(sell, buy, Decimal(fixed))
    opps = view.arbitrage(150)
    event("profitable" if qty and profit > 0 else "not profitable")
    if qty == 0 or profit <= 0:
        assert opps == ()
        return
    (o,) = opps
    assert (o.sell_venue, o.buy_venue) == ("sell", "buy")
    assert Decimal(o.qty).scaleb(-view.qty_decimals) == qty
    assert o.profit_decimal() == profit
    assert (o.sell_age_ns, o.buy_age_ns) == (50, 20)
    assert o.profit_decimals == view.price_decimals + view.qty_decimals + 8
    assert o.profit_bps == pytest.approx(float(profit / (Decimal(o.buy_notional).scaleb(
        -view.price_decimals - view.qty_decimals))) * 1e4)


def test_arbitrage_walk_runs_past_the_first_fetch(mod: Any) -> None:
    """200 levels each way, all profitable: the walk fetches more levels as it goes."""
    sell, buy = venue("s", 2, 0, fee="0"), venue("b", 2, 0, fee="0")
    for k in range(200):
        sell.book.set(fb.BID, 200000 - k, 1)
        buy.book.set(fb.ASK, 100000 + k, 1)
    view = mod.Consolidated("BTC/USDT", specs([sell, buy]))
    view.update(0, 1)
    view.update(1, 1)
    (o,) = view.arbitrage(1)
    assert o.qty == 200 and o.levels == (200, 200)
    assert o.sell_limit == 200000 - 199 and o.buy_limit == 100000 + 199
    assert o.profit == sum((200000 - k) - (100000 + k) for k in range(200)) * FEE_ONE


def three_way(mod: Any, **kw: Any) -> Any:
    a, b, c = venue("a", 2, 0, fee="0"), venue("b", 2, 0, fee="0.001"), venue("c", 2, 0, fee="0")
    a.book.set(fb.BID, 10100, 10)
    a.book.set(fb.ASK, 10200, 10)
    b.book.set(fb.BID, 9900, 10)
    b.book.set(fb.ASK, 10000, 10)
    c.book.set(fb.BID, 9800, 10)
    c.book.set(fb.ASK, 10050, 10)
    view = mod.Consolidated("BTC/USDT", specs([a, b, c]), **kw)
    view.update(0, 0)
    view.update(1, 500)
    view.update(2, 1000)
    return view


def test_arbitrage_ranks_filters_and_states_ages(mod: Any) -> None:
    view = three_way(mod)
    opps = view.arbitrage(1000)
    assert [(o.sell_venue, o.buy_venue) for o in opps] == [("a", "b"), ("a", "c")]
    ab, ac = opps
    # a->b: 10 x (101.00 - 100.00 * 1.001) = 10 x 0.9 = 9.0 USDT; a->c: 10 x 0.5 = 5.0
    assert ab.profit_decimal() == Decimal("9") and ac.profit_decimal() == Decimal("5")
    assert (ab.sell_age_ns, ab.buy_age_ns) == (1000, 500)
    assert ab.profit_bps == pytest.approx(90.0)
    assert [o.buy_venue for o in three_way(mod, min_profit_bps=60).arbitrage(1000)] == ["b"]
    assert [o.buy_venue for o in three_way(mod, max_age_ns=999).arbitrage(1000)] == []
    assert three_way(mod, fixed_cost="6").arbitrage(1000)[0].profit_decimal() == Decimal(3)
    assert len(three_way(mod, fixed_cost="6").arbitrage(1000)) == 1


def test_no_crossing_means_no_opportunity_and_fees_can_eat_a_cross(mod: Any) -> None:
    a, b = venue("a", 2, 0, fee="0.001"), venue("b", 2, 0, fee="0.001")
    a.book.set(fb.BID, 10010, 1)
    a.book.set(fb.ASK, 10030, 1)
    b.book.set(fb.BID, 9990, 1)
    b.book.set(fb.ASK, 10000, 1)
    view = mod.Consolidated("BTC/USDT", specs([a, b]))
    view.update(0, 0)
    view.update(1, 0)
    assert view.bbo()[0] > view.bbo()[3]         # crossed across venues by 0.10
    assert view.arbitrage(0) == ()                 # but 0.2% of fees is 0.20
    b.book.set(fb.ASK, 10000, 0)
    b.book.set(fb.ASK, 10005, 1)
    view.update(1, 1)
    a.book.set(fb.BID, 10010, 0)
    a.book.set(fb.BID, 9995, 1)
    view.update(0, 2)
    assert view.arbitrage(2) == ()


# -- staleness, live, crossed, no data, clocks ------------------------------------------------

def two(mod: Any, **kw: Any) -> tuple[Any, V, V]:
    a, b = venue("a", 2, 2, stale_ns=100), venue("b", 3, 1, stale_ns=1000)
    a.book.set(fb.BID, 10000, 100)
    a.book.set(fb.ASK, 10100, 100)
    b.book.set(fb.BID, 100000, 10)
    b.book.set(fb.ASK, 100500, 10)
    return mod.Consolidated("BTC/USDT", specs([a, b]), **kw), a, b


def test_exclusions_are_named_and_counted(mod: Any) -> None:
    view, a, _b = two(mod)
    assert view.venues_in() == {"a": "no data", "b": "no data"}
    assert view.bbo() == (None, None, (), None, None, ())
    assert view.update(0, 1000)
    assert view.bbo() == (100000, 100, ("a",), 101000, 100, ("a",))
    assert view.update(1, 1050)
    assert view.bbo() == (100000, 200, ("a", "b"), 100500, 100, ("b",))
    assert view.last_change()[9:11] == (50, 0)     # ages: the bid's oldest quote is a's
    assert view.refresh(1101)                      # a is 101 ns old: stale
    assert view.venues_in() == {"a": "stale", "b": "in"}
    assert not view.refresh(1200)
    assert view.update(1, 1300, False)             # b not live: nothing left
    assert view.venues_in() == {"a": "stale", "b": "not live"}
    assert view.bbo() == (None, None, (), None, None, ())
    a.book.set(fb.BID, 10200, 1)                   # a crosses itself
    assert not view.update(0, 1400)
    assert view.venues_in()["a"] == "crossed"
    a.book.clear()
    view.update(0, 1500)
    assert view.venues_in()["a"] == "no data"
    s = view.stats()
    assert s["venues"]["a"]["crossed"] == 1 and s["venues"]["a"]["updates"] == 3
    assert s["venues"]["b"]["state"] == "not live"


def test_clock_going_backwards_is_counted_and_never_ages_quotes_negatively(mod: Any) -> None:
    view, _a, _b = two(mod)
    view.update(0, 5000)
    view.update(1, 4000)                           # behind: taken as 5000
    assert view.stats()["clock_backwards"] == 1
    assert view.last_change()[0] == 5000
    assert view.venues_in() == {"a": "in", "b": "in"}
    assert view.refresh(5101) and view.venues_in()["a"] == "stale"
    assert view.stats()["venues"]["b"]["age_ns"] == 101


def test_changes_only_on_real_changes(mod: Any) -> None:
    view, a, b = two(mod)
    assert view.update(0, 10)
    assert not view.update(0, 20)                  # nothing changed
    a.book.set(fb.BID, 9900, 5)                    # below the best: no change
    assert not view.update(0, 30)
    a.book.set(fb.BID, 10000, 101)                 # size at the best
    assert view.update(0, 40)
    b.book.set(fb.BID, 100000, 0)
    b.book.set(fb.BID, 100010, 10)                 # b's best bid 100.010: new best
    assert view.update(1, 50)
    b.book.set(fb.BID, 100010, 0)
    b.book.set(fb.BID, 100000, 10)                 # b joins a at 100.00: venue set changes
    assert view.update(1, 60)
    assert view.bbo()[2] == ("a", "b")
    assert not view.update(1, 70)
    assert len(view.take_events()) == 4


def test_record_events_off_keeps_the_last_change(mod: Any) -> None:
    view, _a, _b = two(mod, record_events=False)
    assert view.update(0, 10)
    assert len(view.take_events()) == 0 and view.last_change() is not None


def test_event_buffer_grows(mod: Any) -> None:
    view, a, _b = two(mod)
    for k in range(300):
        a.book.set(fb.BID, 10000, 100 + k)
        assert view.update(0, k)
    ev = view.take_events()
    assert len(ev) == 300 and ev["bid_qty"].tolist() == [100 + k for k in range(300)]
    assert np.all(ev["venue"] == 0) and np.all(ev["flags"] == 3)


# -- common scale and bad input -----------------------------------------------------------------

def test_contract_sizes_convert_exactly(mod: Any) -> None:
    spot = venue("spot", 2, 5)                                  # base units, 5 decimals
    perp = venue("perp", 1, 0, contract_size="0.001", venue_id="okx",
                 symbol="BTC/USDT:USDT")                        # 1 contract = 0.001 BTC
    spot.book.set(fb.BID, 10000, 150000)                        # 1.5 BTC at 100.00
    perp.book.set(fb.BID, 1000, 2500)                           # 2500 contracts = 2.5 BTC
    view = mod.Consolidated("BTC/USDT", specs([spot, perp]))
    assert (view.price_decimals, view.qty_decimals) == (2, 5)
    view.update(0, 0)
    view.update(1, 0)
    assert view.bbo()[:3] == (10000, 400000, ("spot", "perp"))


@pytest.mark.parametrize("bad, match", [
    ({"symbol": "ETH/USDT"}, r"venue 'b': instrument 'ETH/USDT' is ETH/USDT, not BTC/USDT"),
    ({"symbol": "BTC/USD"}, r"venue 'b': .* is BTC/USD, not BTC/USDT"),
    ({"contract_size": ""}, r"venue 'b': contract size of 'BTC/USDT' is unknown"),
])
def test_mismatched_or_unknown_instruments_name_the_venue(mod: Any, bad: dict[str, str],
                                                         match: str) -> None:
    a, b = venue("a", 2, 2), venue("b", 2, 2, **bad)
    with pytest.raises(ValueError, match=match):
        mod.Consolidated("BTC/USDT", specs([a, b]))


def test_inverse_and_unconvertible_inputs_are_refused(mod: Any) -> None:
    from fastbook.codecs._l2feed import Instrument

    a = venue("a", 2, 2)
    inv = Instrument("binance-coinm", "BTCUSD_PERP", "BTC/USD:BTC", 1, 0, kind="perpetual",
                     contract_size="100", contract_unit="USD")
    with pytest.raises(ValueError, match=r"venue 'inv': .*inverse contract"):
        mod.Consolidated("BTC/USD", [("inv", fb.Book(price_decimals=1, qty_decimals=0), inv)])
    fine = venue("fine", 2, 17, contract_size="0.01")
    with pytest.raises(ValueError, match="common quantity scale would need 19 decimals"):
        mod.Consolidated("BTC/USDT", specs([a, fine]))
    with pytest.raises(ValueError, match="appears more than once"):
        mod.Consolidated("BTC/USDT", specs([a, a]))
    odd = venue("odd", 2, 2, venue_id="somewhere")
    with pytest.raises(ValueError, match="venue 'odd': no default taker fee"):
        mod.Consolidated("BTC/USDT", [("odd", odd.book, odd.inst)])
    with pytest.raises(ValueError, match="taker_fee"):
        mod.Consolidated("BTC/USDT", [("a", a.book, a.inst, 10, "0.000000001")])
    with pytest.raises(TypeError, match="venue 'x': the book has no bbo"):
        mod.Consolidated("BTC/USDT", [("x", object(), a.inst)])
    with pytest.raises(ValueError, match="1 to 64 venues"):
        mod.Consolidated("BTC/USDT", [])


def test_default_fees_come_from_the_table(mod: Any) -> None:
    a = venue("a", 2, 2)
    view = mod.Consolidated("BTC/USDT", [("a", a.book, a.inst)])
    assert view.plan.venues[0].fee == 100000          # binance-spot 0.1% in 1e-8 units
    m = view.metadata()
    assert m["venues"][0]["taker_fee"] == "0.00100000" and m["price_decimals"] == 2
    assert [n for n, _ in m["events_dtype"]] == list(CBBO_DTYPE.names)


def test_bad_calls(mod: Any) -> None:
    view, _a, _b = two(mod)
    with pytest.raises(IndexError, match="venue index 2 out of range"):
        view.update(2, 0)
    with pytest.raises(IndexError):
        view.update(True, 0)
    with pytest.raises(TypeError, match="now_ns must be an int"):
        view.update(0, np.float64(1))
    assert view.update(np.int64(1), np.int64(5))       # numpy integers are ints
    assert view.stats()["venues"]["b"]["updates"] == 1
    with pytest.raises(TypeError, match="now_ns must be an int"):
        view.update(0, 1.5)
    with pytest.raises(ValueError, match="non-negative"):
        view.update(0, -1)
    with pytest.raises(ValueError, match="non-negative"):
        view.refresh(2**63)
    with pytest.raises(ValueError, match="depth"):
        view.depth(-1)
    assert view.index("b") == 1
    with pytest.raises(KeyError):
        view.index("zz")


def test_levels_beyond_int64_at_the_common_scale_are_excluded_and_counted(mod: Any) -> None:
    a, b = venue("a", 0, 0), venue("b", 18, 0)
    a.book.set(fb.BID, 10**2, 1)                   # 100 at 0 decimals: 100e18 at 18
    view = mod.Consolidated("BTC/USDT", specs([a, b]))
    view.update(0, 0)
    assert view.venues_in()["a"] == "overflow"
    assert view.stats()["venues"]["a"]["overflow"] == 1
    a.book.set(fb.BID, 10**2, 0)
    a.book.set(fb.BID, 5, 1)
    view.update(0, 1)
    assert view.bbo()[:3] == (5 * 10**18, 1, ("a",))


def test_the_package_exports_the_chosen_implementation() -> None:
    assert fb.Consolidated.__module__ in ("fastbook._consol", "fastbook._pyconsol")
    assert (fb.Consolidated.__module__ == "fastbook._consol") == fb.COMPILED


def random_run(seed: int) -> tuple[list[V], list[tuple[Any, ...]]]:
    """A long seeded run on 2-8 venues around their own mids (many cross-venue crossings)."""
    import random

    r = random.Random(seed)
    vs = [venue(f"v{i}", r.randint(1, 4), r.randint(0, 6), contract_size=r.choice(SIZES),
                fee=r.choice(FEES), stale_ns=r.choice([10**6, 10**9]))
          for i in range(r.randint(2, 8))]
    mids = [r.randint(-10, 10) for _ in vs]
    ops: list[tuple[Any, ...]] = []
    for _ in range(400):
        if r.random() < 0.05:
            ops.append(("refresh", r.choice([0, 10**5, 2 * 10**6])))
            continue
        i = r.randrange(len(vs))
        v, side = vs[i], r.choice([fb.BID, fb.ASK])
        lo, hi = (990, 1001) if side == fb.BID else (999, 1010)
        step = 10 ** (v.inst.price_decimals - 1)
        price = r.randint(lo + mids[i], hi + mids[i]) * step + (r.randrange(step) if
                                                                r.random() < 0.2 else 0)
        qty = r.choice([0, 0, 1, 7, 10**v.inst.qty_decimals, 3 * 10**v.inst.qty_decimals])
        ops.append(("set", i, side, price, qty, r.choice([0, 1, 1000, 10**5]),
                    r.random() < 0.95))
    return vs, ops


@requires_compiled(_CONSOL_C)
def test_compiled_matches_the_twin_on_long_random_runs() -> None:
    seen = 0
    for seed in range(12):
        vs, ops = random_run(seed)
        kw: dict[str, Any] = {"fixed_cost": "0.0001", "max_age_ns": 10**6 if seed % 2 else None}
        views = [_CONSOL_C.Consolidated("BTC/USDT", specs(vs), **kw),
                 _pyconsol.Consolidated("BTC/USDT", specs(vs), **kw)]

        def check(now: int, results: list[bool], views: list[Any] = views,
                  vs: list[V] = vs) -> None:
            nonlocal seen
            c, t = views
            assert results[0] == results[1] and c.bbo() == t.bbo()
            assert c.venues_in() == t.venues_in()
            assert as_decimal(t, t.bbo()) == ref_bbo(vs, now)
            opps = c.arbitrage(now)
            assert opps == t.arbitrage(now)
            seen += len(opps)
            by_name = {v.name: v for v in vs}
            for o in opps:
                qty, profit = ref_walk(by_name[o.sell_venue], by_name[o.buy_venue],
                                       Decimal("0.0001"))
                assert (Decimal(o.qty).scaleb(-c.qty_decimals), o.profit_decimal()) == \
                    (qty, profit)

        run(views, vs, ops, check)
        assert views[0].stats() == views[1].stats()
        assert views[0].take_events().tobytes() == views[1].take_events().tobytes()
    assert seen > 50        # the runs exercise the walk, not only the no-crossing exit


def test_an_l3_order_book_is_a_venue_too(mod: Any) -> None:
    """Any reader with bbo() and top(n): an L3 OrderBook next to an L2 Book."""
    l2 = venue("l2", 2, 3)
    l2.book.set(fb.BID, 10000, 1000)
    l2.book.set(fb.ASK, 10100, 1000)
    l3 = fb.OrderBook(price_decimals=2, qty_decimals=3)
    l3.add(1, fb.BID, 10000, 500)
    l3.add(2, fb.BID, 10000, 250)
    l3.add(3, fb.ASK, 10050, 100)
    view = mod.Consolidated("BTC/USDT", [*specs([l2]), ("l3", l3, l2.inst)])
    view.update(0, 1)
    view.update(1, 1)
    assert view.bbo() == (10000, 1750, ("l2", "l3"), 10050, 100, ("l3",))
    d = view.depth(2)
    assert d.ask_prices.tolist() == [10050, 10100]
    assert d.ask_venue_qtys.tolist() == [[0, 100], [1000, 0]]
