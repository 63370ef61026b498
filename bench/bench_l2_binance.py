"""Binance, Coinbase Exchange and Bybit feeds: decode + exact parse + apply, against stdlib json.

``python -m pytest bench/bench_l2_binance.py`` runs it (``--benchmark-disable``
for a smoke run, which still checks every result). Inputs:

* **Binance** spot ``depthUpdate`` messages of real size: combined-stream
  wrapper, 10 bids and 10 asks of 8-decimal strings (about 800 bytes, the shape
  of ``tests/data/l2/cryptofeed/BINANCE.ws.1.0``), consecutive update ids, about
  15% deletes, on a 1,000-level-per-side snapshot (seeded; never crosses);
* **Coinbase Exchange**: the real ``l2update`` messages of ``COINBASE.ws.28.0``
  (10 products) that follow the last snapshot (the setup feeds what precedes it);
* **Bybit** ``orderbook.50`` deltas: 5 bids and 5 asks per message (seeded).

Each feed pass runs the full codec (``feed.feed(message)``: scan, sync state
machine, apply, crossed-book check) on a feed already synced (the untimed
setup). Beside it, in the same run, the **stdlib baseline**: ``json.loads`` +
``fastbook.parse_decimal`` + ``Book.set`` per level, with no sync logic at all.
Every pass checks its final book against the baseline's, so the smoke run is a
correctness run. Nothing asserts a timing; the summary prints msgs/s, ns/msg
and the ratio to the baseline measured in this run, with the goal
(Binance 20 levels: at least 400,000 msgs/s) shown, never asserted.

Settings (environment variables): ``FASTBOOK_BENCH_L2FEED_MESSAGES`` (Binance
and Bybit messages, default 20,000), ``FASTBOOK_BENCH_L2FEED_ROUNDS`` (default 7).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import fastbook
from fastbook.capture import RECEIVED, read_cryptofeed
from fastbook.codecs import binance, bybit, coinbase

MESSAGES = int(os.environ.get("FASTBOOK_BENCH_L2FEED_MESSAGES", 20_000))
ROUNDS = int(os.environ.get("FASTBOOK_BENCH_L2FEED_ROUNDS", 7))
#: Messages given to the slow passes (pure-Python twin, stdlib baseline).
SLOW_MESSAGES = min(MESSAGES, 5_000)
#: The goal for a 20-level Binance depth update, decode + exact parse + apply.
TARGET_MSGS_PER_S = 400_000
COINBASE = Path(__file__).resolve().parent.parent / "tests" / "data" / "l2" / "cryptofeed" / \
    "COINBASE.ws.28.0.gz"

pytestmark = pytest.mark.benchmark(disable_gc=True, group="l2-feeds")

_ROWS: dict[str, Row] = {}


@dataclass
class Row:
    name: str
    messages: int
    seconds: float
    baseline: str | None
    target: bool

    @property
    def ns_per_msg(self) -> float:
        return self.seconds / self.messages * 1e9


def _record(benchmark: Any, name: str, messages: int, *, baseline: str | None = None,
            target: bool = False) -> None:
    info = benchmark.extra_info
    info[name + ": messages"] = messages
    if benchmark.disabled or benchmark.stats is None:
        return
    row = Row(name, messages, benchmark.stats.stats.median, baseline, target)
    info[name + ": ns_per_msg"] = round(row.ns_per_msg, 1)
    info[name + ": msgs_per_s"] = round(messages / row.seconds)
    base = _ROWS.get(baseline) if baseline else None
    if base is not None:
        info[name + ": speedup_vs_baseline"] = round(base.ns_per_msg / row.ns_per_msg, 2)
    _ROWS[name] = row


@pytest.fixture(scope="session", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Any:
    request.config.pluginmanager.register(_Summary(), "fastbook-l2-feeds-summary")
    yield


def _rate(per_s: float) -> str:
    return f"{per_s / 1e6:.2f}M" if per_s >= 1e6 else f"{per_s / 1e3:.0f}k"


class _Summary:
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        tr.write_sep("=", "fastbook Binance / Coinbase / Bybit feed benchmark summary")
        compiled = getattr(binance.scanner_module("auto"), "COMPILED", False)
        tr.write_line(f"JSON kernel: {'compiled' if compiled else 'PURE-PYTHON TWIN'}; core: "
                      f"{'compiled' if fastbook.COMPILED else 'PURE-PYTHON TWIN'}")
        if not _ROWS:
            tr.write_line("benchmarks disabled: every pass ran once as a smoke test, no timings.")
            return
        tr.write_line("median of rounds; 'vs baseline' = baseline ns/msg over this pass's ns/msg "
                      "(how many times faster), both measured in this run")
        head = f"{'pass':<58} {'messages':>8} {'ns/msg':>9} {'msgs/s':>8}  vs baseline"
        tr.write_line(head)
        tr.write_line("-" * (len(head) + 30))
        for r in _ROWS.values():
            vs = ""
            base = _ROWS.get(r.baseline) if r.baseline else None
            if base is not None:
                vs = f"{base.ns_per_msg / r.ns_per_msg:.1f}x"
            if r.target:
                rate = r.messages / r.seconds
                vs += f"  (target >= {TARGET_MSGS_PER_S // 1000}k msgs/s: " \
                      f"{'met' if rate >= TARGET_MSGS_PER_S else 'NOT MET'})"
            tr.write_line(f"{r.name:<58} {r.messages:>8,} {r.ns_per_msg:>9.0f} "
                          f"{_rate(r.messages / r.seconds):>8}  {vs}")
        tr.write_line("")
        tr.write_line("Shared 2-core machine: absolute figures move 30-50% between runs; "
                      "compare the ratios measured within one run.")


# -- the baseline: what a straightforward client does -------------------------------------------

def baseline_binance(book: Any, messages: list[bytes]) -> None:
    """``json.loads`` + ``parse_decimal`` + ``Book.set`` per level; no sync logic."""
    parse, set_ = fastbook.parse_decimal, book.set
    pd, qd = book.price_decimals, book.qty_decimals
    for m in messages:
        d = json.loads(m)["data"]
        for p, q in d["b"]:
            set_(1, parse(p, pd), parse(q, qd))
        for p, q in d["a"]:
            set_(2, parse(p, pd), parse(q, qd))


def baseline_coinbase(books: dict[str, Any], messages: list[bytes]) -> None:
    parse = fastbook.parse_decimal
    for m in messages:
        d = json.loads(m)
        book = books[d["product_id"]]
        pd, qd = book.price_decimals, book.qty_decimals
        for side, p, q in d["changes"]:
            book.set(1 if side == "buy" else 2, parse(p, pd), parse(q, qd))


def baseline_bybit(book: Any, messages: list[bytes]) -> None:
    parse, set_ = fastbook.parse_decimal, book.set
    pd, qd = book.price_decimals, book.qty_decimals
    for m in messages:
        d = json.loads(m)["data"]
        for p, q in d["b"]:
            set_(1, parse(p, pd), parse(q, qd))
        for p, q in d["a"]:
            set_(2, parse(p, pd), parse(q, qd))


def run_feed(feed: Any, messages: list[bytes]) -> None:
    f = feed.feed
    for m in messages:
        f(m)


def scan_apply(feed: Any, messages: list[bytes]) -> None:
    """The kernel alone: read + apply, no state machine (what the codec's Python costs)."""
    sc = feed._scan
    read, apply = sc.read, sc.apply
    for m in messages:
        read(m)
        apply()


def _levels(book: Any) -> list[Any]:
    return list(book)


# -- Binance ------------------------------------------------------------------------------------

@dataclass
class BinanceWork:
    snapshot: bytes
    messages: list[bytes]
    first_id: int
    final: list[Any]            # the baseline's book after all messages
    final_slow: list[Any]       # ... after the first SLOW_MESSAGES


def _price(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}000000"


@pytest.fixture(scope="session")
def bwork() -> BinanceWork:
    rng = random.Random(20240607)
    mid = 6723456                                   # 67234.56 in ticks of 0.01
    snap = {"lastUpdateId": 1000,
            "bids": [[_price(mid - k), f"{rng.randint(1, 10**9) / 1e8:.8f}"]
                     for k in range(1, 1001)],
            "asks": [[_price(mid + k), f"{rng.randint(1, 10**9) / 1e8:.8f}"]
                     for k in range(1, 1001)]}
    msgs = []
    u = 1000
    for i in range(MESSAGES):
        def lv(sign: int) -> list[str]:
            q = "0.00000000" if rng.random() < 0.15 else f"{rng.randint(1, 10**9) / 1e8:.8f}"
            return [_price(mid + sign * rng.randint(1, 50)), q]
        U = u + 1
        u = U + rng.randint(0, 4)
        d = {"e": "depthUpdate", "E": 1672515782136 + i * 100, "s": "BTCUSDT", "U": U, "u": u,
             "b": [lv(-1) for _ in range(10)], "a": [lv(1) for _ in range(10)]}
        msgs.append(json.dumps({"stream": "btcusdt@depth@100ms", "data": d},
                               separators=(",", ":")).encode())
    body = json.dumps(snap, separators=(",", ":")).encode()
    ref = fastbook.Book(price_decimals=8, qty_decimals=8)
    for side, key in ((1, "bids"), (2, "asks")):
        for p, q in snap[key]:
            ref.set_str(side, p, q)
    baseline_binance(ref, msgs[:SLOW_MESSAGES])
    final_slow = _levels(ref)
    baseline_binance(ref, msgs[SLOW_MESSAGES:])
    return BinanceWork(body, msgs, 1001, _levels(ref), final_slow)


def _synced_binance(w: BinanceWork, kernel: str, made: list[Any]) -> Any:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        feed = binance.BinanceSpot(kernel=kernel)
        feed.snapshot("BTCUSDT", w.snapshot)
        made.append(feed)
        return (feed,), {}
    return setup


def _check_binance(feed: Any, n: int, final: list[Any]) -> None:
    assert feed.is_synced("BTCUSDT")
    c = feed.counts("BTCUSDT")
    assert (c["applied"], c["gaps"], c["resyncs"], c["malformed"]) == (n, 0, 0, 0)
    assert _levels(feed.book("BTCUSDT")) == final


def test_binance_feed(benchmark: Any, bwork: BinanceWork) -> None:
    """BinanceSpot.feed, compiled kernel: the 20-level target."""
    made: list[Any] = []
    benchmark.pedantic(lambda feed: run_feed(feed, bwork.messages),
                       setup=_synced_binance(bwork, "auto", made), rounds=ROUNDS,
                       warmup_rounds=1)
    _check_binance(made[-1], MESSAGES, bwork.final)
    _record(benchmark, "binance-spot feed, 20 levels (compiled kernel)", MESSAGES,
            baseline="binance: json.loads + parse_decimal + Book.set", target=True)


def test_binance_kernel_only(benchmark: Any, bwork: BinanceWork) -> None:
    """Scanner.read + apply alone: the part of the feed's cost that is the kernel."""
    made: list[Any] = []
    benchmark.pedantic(lambda feed: scan_apply(feed, bwork.messages),
                       setup=_synced_binance(bwork, "auto", made), rounds=ROUNDS,
                       warmup_rounds=1)
    assert _levels(made[-1].book("BTCUSDT")) == bwork.final
    _record(benchmark, "binance: kernel read + apply only (no sync logic)", MESSAGES,
            baseline="binance: json.loads + parse_decimal + Book.set")


def test_binance_twin(benchmark: Any, bwork: BinanceWork) -> None:
    """The same feed with the pure-Python twin scanner (json + parse_decimal)."""
    made: list[Any] = []
    msgs = bwork.messages[:SLOW_MESSAGES]
    benchmark.pedantic(lambda feed: run_feed(feed, msgs),
                       setup=_synced_binance(bwork, "python", made), rounds=3)
    _check_binance(made[-1], SLOW_MESSAGES, bwork.final_slow)
    _record(benchmark, "binance-spot feed (pure-Python twin scanner)", SLOW_MESSAGES,
            baseline="binance: json.loads + parse_decimal + Book.set")


def test_binance_baseline(benchmark: Any, bwork: BinanceWork) -> None:
    made: list[Any] = []
    msgs = bwork.messages[:SLOW_MESSAGES]

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        feed = binance.BinanceSpot(kernel="python")
        feed.snapshot("BTCUSDT", bwork.snapshot)
        made.append(feed.book("BTCUSDT"))
        return (made[-1],), {}

    benchmark.pedantic(lambda book: baseline_binance(book, msgs), setup=setup, rounds=3)
    assert _levels(made[-1]) == bwork.final_slow
    _record(benchmark, "binance: json.loads + parse_decimal + Book.set", SLOW_MESSAGES)


# -- Coinbase Exchange: the real capture --------------------------------------------------------

@dataclass
class CoinbaseWork:
    head: list[bytes]           # everything before the first l2update (subscriptions, snapshots)
    updates: list[bytes]        # the l2update messages, in order
    final: dict[str, list[Any]]


@pytest.fixture(scope="session")
def cwork() -> CoinbaseWork:
    msgs = [r.payload for r in read_cryptofeed(COINBASE) if r.kind == RECEIVED]
    last = max(i for i, m in enumerate(msgs) if b'"type":"snapshot"' in m)
    head = msgs[:last + 1]
    updates = [m for m in msgs[last + 1:] if b'"type":"l2update"' in m]
    feed = coinbase.CoinbaseExchange(kernel="python")
    for m in head:
        feed.feed(m)
    books = {s: feed.book(s) for s in feed.symbols}
    baseline_coinbase(books, updates)
    return CoinbaseWork(head, updates, {s: _levels(b) for s, b in books.items()})


def _synced_coinbase(w: CoinbaseWork, kernel: str, made: list[Any]) -> Any:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        feed = coinbase.CoinbaseExchange(kernel=kernel)
        for m in w.head:
            feed.feed(m)
        made.append(feed)
        return (feed,), {}
    return setup


def test_coinbase_feed(benchmark: Any, cwork: CoinbaseWork) -> None:
    made: list[Any] = []
    benchmark.pedantic(lambda feed: run_feed(feed, cwork.updates),
                       setup=_synced_coinbase(cwork, "auto", made), rounds=ROUNDS,
                       warmup_rounds=1)
    feed = made[-1]
    assert feed.counts()["applied"] == 9719             # the head's share and the timed ones
    assert feed.counts()["crossed"] == 0
    assert {s: _levels(feed.book(s)) for s in feed.symbols} == cwork.final
    _record(benchmark, "coinbase-exchange feed, real l2update (compiled kernel)",
            len(cwork.updates), baseline="coinbase: json.loads + parse_decimal + Book.set")


def test_coinbase_baseline(benchmark: Any, cwork: CoinbaseWork) -> None:
    made: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        feed = coinbase.CoinbaseExchange(kernel="python")
        for m in cwork.head:
            feed.feed(m)
        made.append({s: feed.book(s) for s in feed.symbols})
        return (made[-1],), {}

    benchmark.pedantic(lambda books: baseline_coinbase(books, cwork.updates), setup=setup,
                       rounds=3)
    assert {s: _levels(b) for s, b in made[-1].items()} == cwork.final
    _record(benchmark, "coinbase: json.loads + parse_decimal + Book.set", len(cwork.updates))


# -- Bybit --------------------------------------------------------------------------------------

@dataclass
class BybitWork:
    snapshot: bytes
    deltas: list[bytes]
    final: list[Any]


@pytest.fixture(scope="session")
def ywork() -> BybitWork:
    rng = random.Random(7)
    mid = 3024720                                    # 30247.20 in ticks of 0.01

    def px(t: int) -> str:
        return f"{t // 100}.{t % 100:02d}"

    def msg(kind: str, u: int, bids: Any, asks: Any) -> bytes:
        return json.dumps({"topic": "orderbook.50.BTCUSDT", "type": kind, "ts": 1687940967466 + u,
                           "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u,
                                    "seq": 66544703342 + 3 * u},
                           "cts": 1687940967464 + u}, separators=(",", ":")).encode()

    snap = msg("snapshot", 1000, [[px(mid - k), f"{rng.randint(1, 99999) / 1000:.3f}"]
                                  for k in range(1, 51)],
               [[px(mid + k), f"{rng.randint(1, 99999) / 1000:.3f}"] for k in range(1, 51)])
    deltas = []
    for i in range(MESSAGES):
        def lv(sign: int) -> list[str]:
            q = "0" if rng.random() < 0.2 else f"{rng.randint(1, 99999) / 1000:.3f}"
            return [px(mid + sign * rng.randint(1, 60)), q]
        deltas.append(msg("delta", 1001 + i, [lv(-1) for _ in range(5)],
                          [lv(1) for _ in range(5)]))
    feed = bybit.Bybit(kernel="python")
    feed.feed(snap)
    baseline_bybit(feed.book("BTCUSDT"), deltas)
    return BybitWork(snap, deltas, _levels(feed.book("BTCUSDT")))


def _synced_bybit(w: BybitWork, made: list[Any], book_only: bool = False) -> Any:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        feed = bybit.Bybit(kernel="auto" if not book_only else "python")
        feed.feed(w.snapshot)
        made.append(feed)
        return ((feed.book("BTCUSDT") if book_only else feed),), {}
    return setup


def test_bybit_feed(benchmark: Any, ywork: BybitWork) -> None:
    made: list[Any] = []
    benchmark.pedantic(lambda feed: run_feed(feed, ywork.deltas),
                       setup=_synced_bybit(ywork, made), rounds=ROUNDS, warmup_rounds=1)
    feed = made[-1]
    c = feed.counts("BTCUSDT")
    assert (c["applied"], c["gaps"], c["malformed"]) == (MESSAGES, 0, 0)
    assert _levels(feed.book("BTCUSDT")) == ywork.final
    _record(benchmark, "bybit feed, 10-level delta (compiled kernel)", MESSAGES,
            baseline="bybit: json.loads + parse_decimal + Book.set")


def test_bybit_baseline(benchmark: Any, ywork: BybitWork) -> None:
    made: list[Any] = []
    benchmark.pedantic(lambda book: baseline_bybit(book, ywork.deltas),
                       setup=_synced_bybit(ywork, made, book_only=True), rounds=3)
    assert _levels(made[-1].book("BTCUSDT")) == ywork.final
    _record(benchmark, "bybit: json.loads + parse_decimal + Book.set", MESSAGES)
