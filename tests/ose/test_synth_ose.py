"""synth.ose_day: deterministic, one day in three forms, book-consistent, exact positions."""

from __future__ import annotations

import io

import numpy as np
import pytest

import fastbook as fb
from fastbook import synth
from fastbook.codecs import ose_itch
from fastbook.events import Action, Flags


@pytest.fixture(scope="module")
def day() -> bytes:
    return synth.ose_day(30_000, seed=12)


def test_deterministic_and_streamed_alike(tmp_path, day):
    assert synth.ose_day(30_000, seed=12) == day
    assert synth.ose_day(30_000, seed=13) != day
    f = io.BytesIO()
    assert synth.write_ose_day(f, 30_000, seed=12) == len(day) and f.getvalue() == day
    path = tmp_path / "day.itch"
    synth.write_ose_day(path, 30_000, seed=12)
    assert path.read_bytes() == day


def test_the_three_forms_hold_the_same_day(day):
    mold = synth.ose_day(30_000, seed=12, form="moldudp64")
    a, dec_a = ose_itch.decode_events(day)
    b, dec_b = ose_itch.decode_events(mold, framing="moldudp64")
    assert a.tobytes() == b.tobytes() and dec_a.counts() == dec_b.counts()
    # packets of 32 messages, sequence numbers from 1, no gaps (the decoder checks them)
    assert mold[:10] == b"OSEJGATE01" and int.from_bytes(mold[10:18], "big") == 1
    csv = synth.ose_day(30_000, seed=12, form="csv").decode().splitlines()
    tags: dict[str, int] = {}
    for line in csv:
        tags[line[0]] = tags.get(line[0], 0) + 1
    counts = dec_a.counts()
    # U is written as D + A, F as A; everything else one line per message
    assert tags["D"] == counts["D"] + counts["U"]
    assert tags["A"] == counts["A"] + counts["F"] + counts["U"]
    for t in "TSRMLOECPZ":
        assert tags[t] == counts[t], t


def test_composition(day):
    events, dec = ose_itch.decode_events(day)
    counts = dec.counts()
    assert set(counts) == set("TSRMLOAFECUDPZ")
    decimals = {d["symbol"]: d["price_decimals"] for d in dec.directory}
    assert set(decimals.values()) == {0, 1, 4} and len(decimals) == 17
    products = {d["financial_product"] for d in dec.directory}
    assert products == {1, 3, 11}
    legs = next(iter(dec.legs.values()))
    assert len(dec.legs) == 1 and [leg["ratio"] for leg in legs] == [1, 1]
    # auctions: crosses and equilibrium prices
    cross = events[(events["action"] == Action.EXECUTE) & (events["flags"] & Flags.CROSS != 0)]
    assert len(cross) > 20 and np.all(cross["price"] != 0)
    assert len(dec.equilibrium()) == 17          # every book's last Z: after the close,
    assert all(v["price"] is None for v in dec.equilibrium().values())   # uncrossed
    eps = [m.equilibrium_price for _, _, _, m in ose_itch.iter_messages(day) if m.type == "Z"]
    assert sum(ep != ose_itch.NO_PRICE for ep in eps) > 20
    # combination trades print on the legs
    trades = events[events["action"] == Action.TRADE]
    leg_instruments = {dec.instruments[leg["leg"]] for leg in next(iter(dec.legs.values()))}
    assert len(trades) > 0 and set(trades["instrument"].tolist()) == leg_instruments
    # negative prices in the spread's book
    spread = dec.instruments[next(iter(dec.legs))]
    adds = events[(events["action"] == Action.ADD) & (events["instrument"] == spread)]
    assert (adds["price"] < 0).any()
    # times never go back
    assert np.all(np.diff(events["ts_exchange"]) >= 0)
    assert [s for _, s in dec.states[next(iter(dec.states))]] == \
        ["M_PRE_OPEN", "ZARABA", "M_PRE_CLOSE", "CLOSE"]


def test_book_consistent_with_exact_positions(day):
    result = fb.replay(day, "ose_itch")          # raise mode: any book error would raise
    assert result.skipped == 0
    for i in range(len(result.books)):
        assert not result.books[i].is_crossed()
    report = ose_itch.check_queues(day)
    assert report.ok and report.checked > 10_000 and report.mismatched == 0


def test_ids_shared_across_sides_and_modifies_that_keep_their_place(day):
    events, _ = ose_itch.decode_events(day)
    adds = events[events["action"] == Action.ADD]
    keys = {(i, s, o) for i, s, o in zip(adds["instrument"].tolist(), adds["side"].tolist(),
                                         adds["order_id"].tolist(), strict=True)}
    both = {(i, o) for i, s, o in keys if s == 1} & {(i, o) for i, s, o in keys if s == 2}
    assert len(both) > 10
    replaces = events[events["action"] == Action.REPLACE]
    assert np.all(replaces["flags"] == Flags.KEEP_PRIORITY)
    assert np.all(replaces["order_id"] == replaces["new_order_id"]) and len(replaces) > 1000


def test_arguments():
    with pytest.raises(ValueError, match="form must be one of"):
        synth.ose_day(10, form="soupbintcp")
    with pytest.raises(ValueError, match="n_messages"):
        synth.ose_day(-1)
    with pytest.raises(TypeError, match="file must be"):
        synth.write_ose_day(12, 10)
    assert synth.ose_day(0).endswith(b"C")       # reference data, states and the end only
