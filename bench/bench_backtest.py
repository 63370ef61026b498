"""The backtester (``fastbook.backtest``) on the ITCH benchmark day, against a plain replay.

``python -m pytest bench/bench_backtest.py`` runs it (``--benchmark-disable`` for a smoke
run, which still checks every result). The day is decoded up front by
``fastbook.codecs.itch50.decode_events`` (not timed); every round runs on fresh books
made in pytest-benchmark's untimed setup. Settings (environment variables):

* ``FASTBOOK_BENCH_BACKTEST_DAY``       an ITCH 5.0 BinaryFILE, decoded whole into memory
  (64 bytes per event). Default: the day ``bench_itch.py`` caches with as many messages,
  if there, else a synthetic day (``fastbook.synth.itch_day``, 500 symbols)
* ``FASTBOOK_BENCH_BACKTEST_MESSAGES``  messages of that day (default 2,000,000)
* ``FASTBOOK_BENCH_BACKTEST_SYMBOLS``   its symbols (default 500)
* ``FASTBOOK_BENCH_BACKTEST_RANKS``     the instruments the BBO strategy trades, by their
  rank in events (default ``10,20``: mid-activity symbols, the most active is rank 0)
* ``FASTBOOK_BENCH_BACKTEST_REFERENCE`` events of the slice given to the reference
  simulator (default 200,000)
* ``FASTBOOK_BENCH_BACKTEST_ROUNDS``    rounds of each pass (default 5)

The passes:

1. ``on_book="bbo"``: a strategy that keeps one bid and one ask of one round lot at the
   best prices of the instruments it trades, moving them (``modify``) when a best price
   moves, with 10 us of feed latency and 30 us each way for orders and answers. Its
   orders rest, queue and fill. Over the whole day, for the mid-activity instruments
   and for the most active one, against ``BookSet.apply`` of the same events with no
   strategy (the issue's target: 10M events/s).
2. ``on_book="event"``: a Python callback on every event of the most active instrument,
   over that instrument's events, against ``BookSet.apply(events, callback=f)`` with a
   trivial ``f`` over the same events (target: 1M callbacks/s). Two strategies: one
   that only counts (the engine's own cost per callback) and the quoting strategy.
3. ``reference=True`` on a prefix of the day, with the quoting strategy of pass 1 on the
   mid-activity instruments and the most active one: its fills and orders must equal
   the engine's, every column; its rate is reported beside the engine's on the slice.

Every pass checks its result: the recorded books end as a plain replay leaves them
(the strategy's orders are virtual), the strategy saw every change it asked for, and the
fills agree with the orders and the positions. Nothing asserts a timing.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbook
from _days import cached_day  # bench/_days.py (bench/ is on sys.path)
from fastbook import ASK, BID
from fastbook.backtest import BacktestResult, BookView, Context, Fill, Order, Strategy, backtest
from fastbook.codecs import itch50
from fastbook.l3 import BookSet

MESSAGES = int(os.environ.get("FASTBOOK_BENCH_BACKTEST_MESSAGES", 2_000_000))
SYMBOLS = int(os.environ.get("FASTBOOK_BENCH_BACKTEST_SYMBOLS", 500))
RANKS = [int(x) for x in os.environ.get("FASTBOOK_BENCH_BACKTEST_RANKS", "10,20").split(",")]
REFERENCE = int(os.environ.get("FASTBOOK_BENCH_BACKTEST_REFERENCE", 200_000))
ROUNDS = int(os.environ.get("FASTBOOK_BENCH_BACKTEST_ROUNDS", 5))

#: The quoting strategy's latencies (ns): feed, order entry, answers.
LATENCY = {"feed_latency": 10_000, "order_latency": 30_000, "response_latency": 30_000}
#: The equity curve's interval. The default (1 s) wakes the engine once a second of
#: exchange time while a position is open: 57,600 wake-ups over the synthetic day's
#: 16 hours, one every 35 events of a 2M-message day (a real day has 100x the events).
MARK = 60_000_000_000
#: Issue targets, shown and never asserted.
BBO_TARGET = 10e6
EVENT_TARGET = 1e6

pytestmark = pytest.mark.benchmark(disable_gc=True, group="backtest")


# -- the day ---------------------------------------------------------------------------------

@dataclass
class Day:
    events: np.ndarray
    metas: list[dict[str, Any]]          # add_instrument arguments, in instrument order
    counts: np.ndarray                   # events per instrument
    by_rank: list[int]                   # instruments, most events first
    source: str
    prep_s: float
    slices: dict[int, np.ndarray] = field(default_factory=dict)
    end: list[tuple[Any, ...]] | None = None     # every book's state after a plain replay

    def books(self) -> BookSet:
        bs = BookSet(on_error="stop")
        for m in self.metas:
            bs.add_instrument(m["symbol"], venue=m["venue"], price_decimals=m["price_decimals"],
                              lot_size=m["lot_size"], capacity=16, order_capacity=64)
        return bs

    def only(self, inst: int) -> np.ndarray:
        """The events of one instrument (a copy, made once)."""
        if inst not in self.slices:
            self.slices[inst] = self.events[self.events["instrument"] == inst].copy()
        return self.slices[inst]

    def rank(self, k: int) -> int:
        return self.by_rank[min(k, len(self.by_rank) - 1)]


@pytest.fixture(scope="session")
def day() -> Day:
    t0 = time.perf_counter()
    path = cached_day("FASTBOOK_BENCH_BACKTEST_DAY", MESSAGES)
    if path:
        buf: bytes = Path(path).read_bytes()
        source = path
    else:
        from fastbook.synth import itch_day

        buf = itch_day(MESSAGES, n_symbols=SYMBOLS)
        source = f"synthetic: itch_day({MESSAGES:,}, n_symbols={SYMBOLS})"
    events, directory, _ = itch50.decode_events(buf)
    del buf
    # decode_events numbers the instruments in directory order, with the books its
    # Decoder would make (price_decimals 4, lot = round lot)
    metas = [{"symbol": d["symbol"], "venue": itch50.VENUE,
              "price_decimals": itch50.PRICE_DECIMALS, "lot_size": max(int(d["round_lot"]), 1)}
             for d in directory]
    counts = np.bincount(events["instrument"], minlength=len(metas))
    by_rank = [int(i) for i in np.argsort(-counts, kind="stable")]
    return Day(events, metas, counts, by_rank, source, time.perf_counter() - t0)


# -- the strategies --------------------------------------------------------------------------

class QuoteAtTouch(Strategy):
    """One bid and one ask of one round lot at the best prices of each instrument,
    moved when a best price moves; a side stops quoting beyond ``limit`` lots."""

    def __init__(self, lots: dict[int, int], limit: int = 10) -> None:
        self.lots = lots
        self.limit = limit
        self.live: dict[tuple[int, int], list[int]] = {}     # (inst, side) -> [id, price]
        self.left: dict[int, int] = {}                        # id -> unfilled
        self.calls = 0

    def on_book(self, ctx: Context, view: BookView) -> None:
        self.calls += 1
        inst = view.instrument
        lot = self.lots[inst]
        pos = ctx.position(inst)
        for side, px, qty, room in ((BID, view.bid_px, view.bid_qty, pos < self.limit * lot),
                                    (ASK, view.ask_px, view.ask_qty, pos > -self.limit * lot)):
            if not qty[0]:
                continue
            best = int(px[0])
            q = self.live.get((inst, side))
            if q is None:
                if room:
                    oid = ctx.submit(inst, side, lot, best)
                    self.live[(inst, side)] = [oid, best]
                    self.left[oid] = lot
            elif q[1] != best:
                ctx.modify(q[0], price=best)
                q[1] = best

    def _gone(self, inst: int, side: int, oid: int) -> None:
        q = self.live.get((inst, side))
        if q is not None and q[0] == oid:
            del self.live[(inst, side)]

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.left[fill.order_id] -= fill.qty
        if self.left[fill.order_id] == 0:
            self._gone(fill.instrument, fill.side, fill.order_id)

    def on_order(self, ctx: Context, order: Order) -> None:
        if order.status in ("filled", "cancelled", "rejected"):
            self._gone(order.instrument, order.side, order.id)


class Count(Strategy):
    """Counts its views: the engine's own cost per callback."""

    def __init__(self) -> None:
        self.calls = 0

    def on_book(self, ctx: Context, view: BookView) -> None:
        self.calls += 1


# -- checks ----------------------------------------------------------------------------------

def bbo_changes(events: np.ndarray, books: BookSet, inst: int) -> int:
    """Events of ``inst`` after which its best bid or ask (price or size) changed."""
    mine = events[events["instrument"] == inst]
    book = books[inst]
    last = [book.bbo()]
    changed = [0]

    def cb(i: int, k: int) -> None:
        now = book.bbo()
        if now != last[0]:
            changed[0] += 1
            last[0] = now

    books.apply(mine, callback=cb)
    return changed[0]


def state(books: BookSet) -> list[tuple[Any, ...]]:
    return [(books[i].order_count, books[i].bbo()) for i in range(len(books))]


def check_fills(r: BacktestResult, insts: list[int]) -> None:
    """The fills agree with the orders' filled sizes and with the final positions."""
    f, o = r.fills, r.orders
    assert (f["qty"] > 0).all()
    per_order = dict.fromkeys(o["order_id"].tolist(), 0)
    for oid, q in zip(f["order_id"].tolist(), f["qty"].tolist(), strict=True):
        per_order[oid] += q
    assert [per_order[k] for k in o["order_id"].tolist()] == o["filled"].tolist()
    assert (o["filled"] <= o["qty"]).all()
    for inst in insts:
        mine = f["instrument"] == inst
        signed = np.where(f["side"][mine] == BID, f["qty"][mine], -f["qty"][mine])
        assert int(signed.sum()) == r.position(inst)
    assert r.strategy_errors == 0 and r.stopped is None and r.skipped == 0


# -- results and the summary -----------------------------------------------------------------

@dataclass
class Row:
    name: str
    ops: int                 # events (or callbacks) the rate counts
    seconds: float
    baseline: str
    target: float = 0.0
    note: str = ""


_ROWS: dict[str, Row] = {}
_INFO: dict[str, Any] = {}


def _record(benchmark: Any, name: str, ops: int, baseline: str = "", target: float = 0.0,
            note: str = "", **extra: Any) -> None:
    benchmark.extra_info.update(ops=ops, **extra)
    if benchmark.disabled or benchmark.stats is None:
        return
    seconds = benchmark.stats.stats.median
    benchmark.extra_info["per_s"] = round(ops / seconds)
    _ROWS[name] = Row(name, ops, seconds, baseline, target, note)


@pytest.fixture(scope="session", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Any:
    request.config.pluginmanager.register(_Summary(), "fastbook-backtest-summary")
    yield


class _Summary:
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        tr.write_sep("=", "fastbook backtest benchmark summary")
        if not fastbook.COMPILED:
            tr.write_line("WARNING: fastbook.COMPILED is False: the passes measured the "
                          "pure-Python twin")
        for line in _INFO.values():
            tr.write_line(line)
        if not _ROWS:
            tr.write_line("benchmarks disabled: every pass ran once as a smoke test, no timings.")
            return
        head = f"{'pass':<66} {'ops':>10} {'median ms':>10} {'ops/s':>9} {'vs base':>8}  " \
               f"target"
        tr.write_line("")
        tr.write_line("ops: events for the replays; callbacks for the on_book=\"event\" and "
                      "callback rows. vs base: time ratio to the row named in brackets")
        tr.write_line(head)
        tr.write_line("-" * (len(head) + 20))
        for r in _ROWS.values():
            base = _ROWS.get(r.baseline)
            ratio = f"{r.seconds / base.seconds:.2f}x" if base is not None else "-"
            rate = r.ops / r.seconds
            target = ""
            if r.target:
                met = "met" if rate >= r.target else "NOT MET"
                target = f">= {r.target / 1e6:g}M/s: {met}"
            tr.write_line(f"{r.name:<66} {r.ops:>10,} {r.seconds * 1e3:>10.1f} "
                          f"{rate / 1e6:>8.2f}M {ratio:>8}  {target}")
            if r.note:
                tr.write_line(f"    {r.note}")
        tr.write_line("Shared 2-core machine: compare the ratios of one run, not absolute "
                      "figures across runs.")


def _fresh(day: Day) -> BookSet:
    bs = day.books()
    gc.collect()
    return bs


# -- 1. on_book="bbo" over the whole day -------------------------------------------------------

APPLY = "[a] BookSet.apply, no strategy (stop mode)"


def test_apply_baseline(benchmark: Any, day: Day) -> None:
    """BookSet.apply of the whole day on fresh books: the floor of any backtest of it."""
    made: list[BookSet] = []

    def setup() -> tuple[tuple[Any, ...], dict]:
        made.append(_fresh(day))
        return (made[-1], day.events), {}

    n = benchmark.pedantic(lambda bs, ev: bs.apply(ev), setup=setup, rounds=ROUNDS,
                           iterations=1, warmup_rounds=1)
    assert n == len(day.events) and sum(made[-1].errors.values()) == 0
    day.end = state(made[-1])
    _INFO["day"] = (f"day: {day.source}: {len(day.events):,} events over {len(day.metas)} "
                    f"instruments; decoded in {day.prep_s:.1f} s with generation, not timed")
    _record(benchmark, APPLY, len(day.events))


def _end_state(day: Day) -> list[tuple[Any, ...]]:
    if day.end is None:
        bs = day.books()
        bs.apply(day.events)
        day.end = state(bs)
    return day.end


BBO_CASES = {
    "mid-quote": ("mid", "quote", MARK),
    "mid-watch": ("mid", "watch", MARK),
    "mid-quote-mark1s": ("mid", "quote", 1_000_000_000),
    "top-quote": ("top", "quote", MARK),
}


@pytest.mark.parametrize("case", list(BBO_CASES))
def test_bbo_strategy(benchmark: Any, day: Day, case: str) -> None:
    """A strategy on the BBO changes of a few instruments, over the whole day: the
    quoting one; one that only counts its views (no orders); the quoting one with the
    default equity-curve interval (1 s)."""
    which, kind, mark = BBO_CASES[case]
    insts = [day.rank(k) for k in RANKS] if which == "mid" else [day.rank(0)]
    lots = {i: day.metas[i]["lot_size"] for i in insts}
    runs: list[tuple[BookSet, Any]] = []

    def setup() -> tuple[tuple[Any, ...], dict]:
        runs.append((_fresh(day), QuoteAtTouch(lots) if kind == "quote" else Count()))
        return runs[-1], {}

    def run(bs: BookSet, s: Strategy) -> BacktestResult:
        return backtest(day.events, s, books=bs, instruments=insts, on_book="bbo", mark=mark,
                        **LATENCY)

    r = benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    bs, s = runs[-1]
    assert r.events == len(day.events)
    assert state(bs) == _end_state(day)          # the strategy's orders are virtual
    changes = sum(bbo_changes(day.events, day.books(), i) for i in insts)
    # every change is seen, but for views still in flight (feed latency) at the end
    assert 0 <= changes - s.calls <= 2 * len(insts), (changes, s.calls)
    check_fills(r, insts)
    if kind == "watch":
        assert len(r.orders["order_id"]) == 0
    elif len(day.events) >= 1_000_000:
        assert len(r.fills["qty"]) > 0 and (~r.fills["taker"]).any()
    share = sum(int(day.counts[i]) for i in insts) / len(day.events)
    names = ", ".join(f"{day.metas[i]['symbol']} (rank {day.by_rank.index(i)})" for i in insts)
    note = (f"{names}: {share:.1%} of the events; {s.calls:,} BBO views, {r.stops:,} stops of "
            f"the compiled loop, {len(r.orders['order_id']):,} orders, "
            f"{len(r.fills['qty']):,} fills")
    label = {"mid-quote": f"quoting, {len(insts)} mid-activity",
             "mid-watch": f"counts its views, {len(insts)} mid-activity",
             "mid-quote-mark1s": f"quoting, {len(insts)} mid-activity, mark=1 s",
             "top-quote": "quoting, the most active"}[case]
    _record(benchmark, f"backtest on_book=\"bbo\", {label} [vs a]", len(day.events), APPLY,
            BBO_TARGET if case == "mid-quote" else 0.0, note, views=s.calls, stops=r.stops,
            fills=len(r.fills["qty"]), instruments=insts)


# -- 2. on_book="event" on one busy instrument --------------------------------------------------

CALLBACK = "[b] BookSet.apply(callback=f), trivial f, most active only"


def test_callback_baseline(benchmark: Any, day: Day) -> None:
    """A trivial Python callback on every event of the most active instrument."""
    events = day.only(day.rank(0))
    made: list[BookSet] = []
    seen = [0]

    def f(i: int, inst: int) -> None:
        seen[0] += 1

    def setup() -> tuple[tuple[Any, ...], dict]:
        seen[0] = 0
        made.append(_fresh(day))
        return (made[-1], events), {}

    n = benchmark.pedantic(lambda bs, ev: bs.apply(ev, callback=f), setup=setup,
                           rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert n == len(events) == seen[0]
    _record(benchmark, CALLBACK, len(events))


@pytest.mark.parametrize("kind", ["count", "quote"])
def test_event_strategy(benchmark: Any, day: Day, kind: str) -> None:
    """on_book="event" on the most active instrument, over that instrument's events."""
    inst = day.rank(0)
    events = day.only(inst)
    runs: list[tuple[BookSet, Any]] = []

    def setup() -> tuple[tuple[Any, ...], dict]:
        s = Count() if kind == "count" else QuoteAtTouch({inst: day.metas[inst]["lot_size"]})
        runs.append((_fresh(day), s))
        return runs[-1], {}

    def run(bs: BookSet, s: Strategy) -> BacktestResult:
        return backtest(events, s, books=bs, instruments=[inst], on_book="event", mark=MARK)

    r = benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    s = runs[-1][1]
    assert r.events == len(events) and s.calls == len(events)    # no feed latency
    check_fills(r, [inst])
    if kind == "count":
        assert r.stops == len(events) and len(r.orders["order_id"]) == 0
    note = f"{r.stops:,} stops, {len(r.orders['order_id']):,} orders, " \
           f"{len(r.fills['qty']):,} fills"
    label = "counts its views" if kind == "count" else "quoting"
    _record(benchmark, f"backtest on_book=\"event\", {label} [vs b]", len(events), CALLBACK,
            EVENT_TARGET if kind == "count" else 0.0, note, stops=r.stops,
            fills=len(r.fills["qty"]))


# -- 3. the reference simulator ------------------------------------------------------------------

ENGINE_SLICE = "[c] backtest, quoting, mid-activity + most active, slice"
_REF: dict[bool, BacktestResult] = {}        # the last result of each, to compare


@pytest.mark.parametrize("reference", [False, True], ids=["engine", "reference"])
def test_reference(benchmark: Any, day: Day, reference: bool) -> None:
    """The quoting strategy of pass 1 on a prefix of the day, on the mid-activity
    instruments and the most active one; the reference's fills must equal the engine's."""
    events = day.events[:REFERENCE]
    insts = sorted({day.rank(k) for k in [*RANKS, 0]})
    lots = {i: day.metas[i]["lot_size"] for i in insts}
    runs: list[BookSet] = []

    def setup() -> tuple[tuple[Any, ...], dict]:
        runs.append(_fresh(day))
        return (runs[-1], QuoteAtTouch(lots)), {}

    def run(bs: BookSet, s: QuoteAtTouch) -> BacktestResult:
        return backtest(events, s, books=bs, instruments=insts, on_book="bbo", mark=MARK,
                        reference=reference, **LATENCY)

    r = benchmark.pedantic(run, setup=setup, rounds=ROUNDS if not reference else
                           max(1, ROUNDS // 2), iterations=1)
    assert r.events == len(events)
    check_fills(r, insts)
    _REF[reference] = r
    if True in _REF and False in _REF:
        a, b = _REF[False], _REF[True]
        for name, col in a.fills.items():
            assert np.array_equal(col, b.fills[name], equal_nan=col.dtype.kind == "f"), name
        for name, col in a.orders.items():
            assert np.array_equal(col, b.orders[name]), name
        _INFO["reference"] = (f"reference slice: the first {len(events):,} events; the "
                              f"reference's {len(b.fills['qty']):,} fills and "
                              f"{len(b.orders['order_id']):,} orders equal the engine's")
    if reference:
        _record(benchmark, "backtest reference=True, the same slice [vs c]", len(events),
                ENGINE_SLICE, fills=len(r.fills["qty"]))
    else:
        _record(benchmark, ENGINE_SLICE, len(events), fills=len(r.fills["qty"]))
