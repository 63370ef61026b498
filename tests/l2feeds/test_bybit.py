"""Bybit v5 orderbook on hand-built messages of the documented shapes (no real capture exists)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from fastbook.codecs import bybit
from fastbook.codecs._l2feed import FeedError, SyncState
from fastbook.events import Action
from tests.helpers.impls import KERNELS
from tests.helpers.l2 import BYBIT_TS
from tests.helpers.l2 import bybit_msg as msg

TS = BYBIT_TS


SNAP = msg("snapshot", 100, [("16493.50", "0.006"), ("16493.00", "0.100")],
           [("16611.00", "0.029"), ("16612.00", "0.213")])


def synced(**kw: Any) -> Any:
    feed = bybit.Bybit(**kw)
    n = feed.feed(SNAP, 11)
    assert [(x.kind, x.sequence) for x in n] == [("synced", 100)]
    return feed


@pytest.mark.parametrize("kernel", KERNELS)
def test_snapshot_and_deltas(kernel: str) -> None:
    feed = synced(kernel=kernel)
    book = feed.book("BTCUSDT")
    assert book.bbo() == (1649350000000, 600000, 1661100000000, 2900000)
    assert feed.feed(msg("delta", 101, [("16493.50", "0")], [("16600.00", "1.5")])) == []
    assert book.bbo() == (1649300000000, 10000000, 1660000000000, 150000000)
    s = feed.symbol_state("BTCUSDT")
    assert (s.last_seq, s.ts, s.vars["seq"], s.vars["depth"]) == \
        (101, (TS - 2) * 1_000_000, 7961638724, 50)
    feed.feed(msg("delta", 102, cts=None))              # no cts: ts is the time
    assert s.ts == TS * 1_000_000
    c = feed.counts("BTCUSDT")
    assert (c["snapshots"], c["applied"], c["levels"]) == (1, 2, 6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_gap_duplicate_and_restart(kernel: str) -> None:
    feed = synced(kernel=kernel, on_error="skip")
    feed.feed(msg("delta", 101, [("16494.00", "1")]))
    before = list(feed.book("BTCUSDT"))
    assert feed.feed(msg("delta", 101, [("16494.00", "9")])) == []       # duplicate
    assert feed.feed(msg("delta", 99, [("16494.00", "9")])) == []        # out of order
    assert list(feed.book("BTCUSDT")) == before
    c = feed.counts("BTCUSDT")
    assert (c["out_of_order"], c["malformed"], c["dropped"]) == (2, 2, 2)
    assert [e.sequence for e in feed.errors] == [101, 99]
    assert all(e.duplicate for e in feed.errors)
    assert all(e.symbol == "BTCUSDT" and e.venue == "bybit" for e in feed.errors)
    n = feed.feed(msg("delta", 103, [("16494.00", "9")]))                # 102 lost
    assert [(x.kind, x.reason, x.sequence) for x in n] == [("resync", "gap", 103),
                                                          ("resubscribe", "", None)]
    assert feed.state("BTCUSDT") is SyncState.RESYNC and len(feed.book("BTCUSDT")) == 0
    assert feed.feed(msg("delta", 104)) == [] and feed.counts("BTCUSDT")["dropped"] == 3
    assert [x.kind for x in feed.feed(SNAP)] == ["synced"]
    # u == 1: the service restarted; the snapshot overwrites the book
    n = feed.feed(msg("snapshot", 1, [("1.0", "1")], [("2.0", "1")]))
    assert [(x.kind, x.reason) for x in n] == [("resync", "sequence_reset"), ("synced", "")]
    assert feed.book("BTCUSDT").bbo() == (100000000, 100000000, 200000000, 100000000)
    assert feed.counts("BTCUSDT")["restarts"] == 1
    assert feed.feed(msg("delta", 2, [("1.5", "1")])) == []
    # a delta with u == 1 cannot be trusted on the old book
    n = feed.feed(msg("delta", 1, [("1.5", "2")]))
    assert [(x.kind, x.reason) for x in n] == [("resync", "sequence_reset"), ("resubscribe", "")]


@pytest.mark.parametrize("kernel", KERNELS)
def test_later_snapshots_reset(kernel: str) -> None:
    feed = synced(kernel=kernel, record=True)
    feed.feed(msg("delta", 101, [("16000", "1")]))
    n = feed.feed(msg("snapshot", 500, [("16490.00", "2")], [("16600.00", "3")]))
    assert [(x.kind, x.reason, x.sequence) for x in n] == [("resync", "new_snapshot", 500),
                                                          ("synced", "", 500)]
    assert list(feed.book("BTCUSDT")) == [(1, 1649000000000, 200000000),
                                          (2, 1660000000000, 300000000)]
    assert feed.counts("BTCUSDT")["new_snapshots"] == 1
    # the same snapshot again (same u): a silent reset
    assert feed.feed(msg("snapshot", 500, [("16490.00", "2")], [("16600.00", "3")])) == []
    ev = feed.take_events()
    assert (ev["action"] == int(Action.SNAPSHOT_BEGIN)).sum() == 3


@pytest.mark.parametrize("kernel", KERNELS)
def test_depth_one_is_snapshots_only(kernel: str) -> None:
    feed = bybit.Bybit(kernel=kernel, category="spot", depth=1)
    out = []
    for u, (b, a) in enumerate([("10", "11"), ("10.5", "11"), ("10.5", "11"), ("10", "10.5")]):
        out += feed.feed(msg("snapshot", 1000 + u, [(b, "1")], [(a, "1")], depth=1))
        out += feed.feed(msg("snapshot", 1000 + u, [(b, "1")], [(a, "1")], depth=1))  # resend
    assert [x.kind for x in out] == ["synced"]
    assert feed.book("BTCUSDT").bbo() == (1000000000, 100000000, 1050000000, 100000000)
    assert feed.counts("BTCUSDT")["snapshots"] == 8
    with pytest.raises(FeedError, match="depth 50 is not 1"):
        feed.feed(msg("snapshot", 2000, depth=50))


@pytest.mark.parametrize("kernel", KERNELS)
def test_bad_input(kernel: str) -> None:
    feed = synced(kernel=kernel, on_error="skip")
    before = list(feed.book("BTCUSDT"))
    bad = [
        (msg("delta", 101, [("16493.5x", "1")]), "bad price"),
        (msg("delta", 101, [("16493.5", "-1")]), "negative quantity"),
        (msg("delta", 101, [("16493.123456789", "1")]), "more decimal places"),
        (msg("delta", 101, [("16493.5", 1)]), "quantity must be a string"),
        (msg("update", 101), "type must be 'snapshot' or 'delta'"),
        (msg("delta", 101, topic_symbol="ETHUSDT"), "is not orderbook.<depth>.BTCUSDT"),
        (msg("delta", 101, ts=-1), "ts: -1 is outside"),
        (msg("delta", 0), "u: 0 is outside"),
        (b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT",'
         b'"b":[],"a":[]}}', "missing field 'u'"),
        (b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":[]}',
         "data: expected an object"),
        (b'{"topic":"orderbook.50.BTCUSDT","type":"delta"', "not valid JSON"),
        (b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"b":[]}}',
         "missing field 's'"),
        (b'{"hello":"world"}', "no 'topic' or 'op'"),
        (b'{"success":false,"ret_msg":"error:handler not found","op":"subscribe"}',
         "request 'subscribe' failed: error:handler not found"),
    ]
    for m, _ in bad:
        assert feed.feed(m) == []
    assert list(feed.book("BTCUSDT")) == before and feed.is_synced("BTCUSDT")
    assert feed.counts()["malformed"] == len(bad)
    for err, (_, text) in zip(feed.errors, bad, strict=True):
        assert text in str(err), (str(err), text)
        assert str(err).startswith("bybit")
    assert feed.errors[0].symbol == "BTCUSDT" and feed.errors[0].sequence == 101
    assert feed.feed(msg("delta", 101, [("16493.50", "5")])) == []    # still in sequence
    with pytest.raises(FeedError, match="bybit BTCUSDT seq 102: b\\[0\\]: bad price"):
        bybit.Bybit(kernel=kernel).feed(msg("delta", 102, [("x", "1")]))


@pytest.mark.parametrize("kernel", KERNELS)
def test_other_messages(kernel: str) -> None:
    feed = bybit.Bybit(kernel=kernel, symbols=["BTCUSDT"])
    for m in (b'{"success":true,"ret_msg":"","conn_id":"x","req_id":"","op":"subscribe"}',
              b'{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}',
              b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[]}',
              b'{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"X"}}',
              msg("snapshot", 5, symbol="ETHUSDT")):
        assert feed.feed(m) == []
    assert feed.counts_total["ignored"] == 5 and feed.symbols == []


@pytest.mark.parametrize("kernel", KERNELS)
def test_crossed_book(kernel: str) -> None:
    feed = synced(kernel=kernel)
    n = feed.feed(msg("delta", 101, [("16611.00", "1")]))
    assert [(x.kind, x.reason) for x in n] == [("resync", "crossed"), ("resubscribe", "")]
    assert feed.counts("BTCUSDT")["crossed"] == 1
    n = feed.feed(msg("snapshot", 200, [("2", "1")], [("1", "1")]))
    assert [(x.kind, x.reason) for x in n] == [("resync", "crossed"), ("resubscribe", "")]


def test_categories_and_options() -> None:
    inv = bybit.Bybit(category="inverse")
    inv.feed(msg("snapshot", 1, [("16000.5", "100")], [("16001", "20")], symbol="BTCUSD"))
    inst = inv.symbol_state("BTCUSD").instrument
    assert (inst.kind, inst.contract_size, inst.contract_unit) == ("perpetual", "1", "USD")
    lin = bybit.Bybit()
    lin.feed(msg("snapshot", 1, symbol="BTCUSDT"))
    assert lin.symbol_state("BTCUSDT").instrument.contract_size is None
    with pytest.raises(ValueError, match="category"):
        bybit.Bybit(category="margin")
    with pytest.raises(ValueError, match="depth"):
        bybit.Bybit(category="spot", depth=25)


def random_session(seed: int) -> list[bytes]:
    """Snapshots, deltas (some lost, duplicated, restarted) over three symbols."""
    rng = random.Random(seed)
    out = []
    u = dict.fromkeys(["BTCUSDT", "ETHUSDT", "SOLUSDT"], 0)
    for _ in range(400):
        sym = rng.choice(list(u))
        r = rng.random()
        if u[sym] == 0 or r < 0.03:
            u[sym] = 1 if r < 0.01 else u[sym] + 1
            kind = "snapshot"
            bids = [(f"{100 - k * 0.5:.2f}", f"{rng.randint(1, 9)}.5") for k in range(5)]
            asks = [(f"{101 + k * 0.5:.2f}", f"{rng.randint(1, 9)}") for k in range(5)]
        else:
            kind = "delta"
            u[sym] += 1 if r > 0.05 else rng.choice([2, 0, -1])
            bids = [(f"{100 - rng.randint(0, 8) * 0.5:.2f}", str(rng.randint(0, 3)))]
            asks = [(f"{101 + rng.randint(0, 8) * 0.5:.2f}", str(rng.randint(0, 3)))]
        out.append(msg(kind, max(u[sym], 1), bids, asks, symbol=sym))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kernels_agree_and_events_replay(seed: int) -> None:
    results = []
    for kernel in KERNELS:
        feed = bybit.Bybit(kernel=kernel, record=True, on_error="skip")
        notices = []
        for m in random_session(seed):
            notices += feed.feed(m)
        ev = feed.take_events()
        results.append((notices, feed.counts(), ev.tobytes(), [str(e) for e in feed.errors],
                        [list(feed.book(s)) for s in feed.symbols]))
        from fastbook.l3 import BookSet

        bs = BookSet()
        for s in feed.symbols:
            bs.add_instrument(s, kind="l2", venue="bybit", price_decimals=8, qty_decimals=8)
        bs.apply(ev)
        for i, s in enumerate(feed.symbols):
            assert list(bs[i]) == list(feed.book(s))
        c = feed.counts()
        assert c["gaps"] > 0 and c["out_of_order"] > 0 and c["snapshots"] > 3
        assert isinstance(ev, np.ndarray)
    assert all(r == results[0] for r in results)
