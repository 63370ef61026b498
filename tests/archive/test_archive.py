"""The archive against the replay: ``book_at`` at many random times equals the run's
events applied by a fresh book up to that time (ITCH 5.0, OSE, an L2 capture); a replay
that writes an archive gives the same samples and books as one that does not;
``samples`` and ``events`` of a window equal the replay's."""

from __future__ import annotations

import random

import numpy as np
import pytest

import fastbook as fb
import fastbook.archive as fa
from fastbook.events import EVENT_DTYPE


def same_book(got, want):
    assert type(got).__name__ == type(want).__name__
    assert got.bbo() == want.bbo()
    for side in (fb.BID, fb.ASK):
        gp, gq = got.to_arrays(side)
        wp, wq = want.to_arrays(side)
        assert np.array_equal(gp, wp) and np.array_equal(gq, wq)
    if hasattr(want, "orders"):
        assert got.orders().tobytes() == want.orders().tobytes()
        assert got.order_count == want.order_count


def times(day, symbol, rng, n):
    """``n`` times: event times (and one ns either side), random ones, the ends."""
    ts = day.events["ts_exchange"][day.events["instrument"] == day.instrument(symbol)]
    out = [int(ts.min()) - 1, int(ts.min()), int(ts.max()), int(ts.max()) + 10**9]
    for _ in range(n):
        t = int(rng.choice(ts.tolist()))
        out += [t + rng.choice([-1, 0, 1])]
        out.append(rng.randint(int(ts.min()), int(ts.max())))
    return out


def archive_of(day, tmp_path, **kw):
    path = tmp_path / f"{day.codec}.fba"
    options = {"book_depth": 1000} if day.codec == "kraken-v1" else {}
    result = fb.replay(day.source, day.codec, archive=path, **kw, **options)
    return result, fa.open(path)


@pytest.mark.parametrize("name, checkpoint", [
    ("itch_day", "1s"), ("itch_day", 500), ("itch_day", "10ms"),
    ("ose_day", "1s"), ("ose_day", 200),
    ("l2_kraken", "1s"), ("l2_kraken", 50)])
def test_book_at_is_the_book_as_of_t(request, tmp_path, name, checkpoint):
    day = request.getfixturevalue(name)
    result, archive = archive_of(day, tmp_path, checkpoint=checkpoint)
    assert archive.symbols == day.symbols
    assert archive.ts_origin == ("midnight" if day.codec == "itch50" else "epoch")
    assert len(archive) == len(day.events)
    rng = random.Random(f"{name}{checkpoint}")
    for symbol in day.symbols:
        # the end of the day: the replay's own book
        same_book(archive.book_at(symbol, 2**62), result.book(symbol))
        for t in times(day, symbol, rng, 6):
            same_book(archive.book_at(symbol, t), day.truth(symbol, t))


@pytest.mark.parametrize("name", ["itch_day", "ose_day", "l2_kraken"])
@pytest.mark.parametrize("checkpoint, min_events, max_events", [
    ("10ms", 20, 400), ("1s", 5, 100), ("100us", 1, 50), (300, 1, 1)])
def test_blocks_follow_the_checkpoint_rule(request, tmp_path, name, checkpoint, min_events,
                                           max_events):
    day = request.getfixturevalue(name)
    path = tmp_path / "x.fba"
    books = day.write_archive(path, checkpoint=checkpoint, min_events=min_events,
                              max_events=max_events)
    archive = fa.open(path)
    rule = archive.checkpoint
    step = rule["step"]
    for blocks in archive._blocks.values():
        assert blocks["first"][0] == 0
        assert np.array_equal(blocks["first"][1:],
                              np.cumsum(blocks["n_events"].astype(np.int64))[:-1])
        assert (np.diff(blocks["ts_max"]) >= 0).all()
        n = blocks["n_events"][:-1]
        packets = archive.meta["packets"]   # a packet run cuts at packet ends only
        assert packets == (day.codec == "kraken-v1")
        if rule["mode"] == "events":
            assert (n >= step).all() if packets else (n == step).all()
        elif not packets:
            # a block ends at the first new bucket of exchange time once it holds
            # min_events, or at max_events
            assert (n >= min_events).all() and (n <= max_events).all()
            later = np.diff(blocks["ts_first"] // step) > 0
            assert (later | (n == max_events)).all()
    rng = random.Random(name + str(checkpoint))
    for symbol in day.symbols:
        i = day.instrument(symbol)
        same_book(archive.book_at(symbol, 2**62), books[i])
        for t in times(day, symbol, rng, 4):
            same_book(archive.book_at(symbol, t), day.truth(symbol, t))


@pytest.mark.parametrize("name, every", [("itch_day", "100ms,bbo"), ("ose_day", "1s,bbo"),
                                         ("l2_kraken", "1s,bbo")])
def test_archiving_changes_no_sample_and_no_book(request, tmp_path, name, every):
    day = request.getfixturevalue(name)
    options = {"book_depth": 1000} if day.codec == "kraken-v1" else {}
    plain = fb.replay(day.source, day.codec, every=every, depth=5, **options)
    archived = fb.replay(day.source, day.codec, every=every, depth=5,
                         archive=tmp_path / "x.fba", checkpoint=50, **options)
    assert plain.samples.keys() == archived.samples.keys()
    for key, col in plain.samples.items():
        assert np.array_equal(col, archived.samples[key]), key
    for symbol in day.symbols:
        same_book(archived.book(symbol), plain.book(symbol))


@pytest.mark.parametrize("name, every", [("itch_day", "100ms"), ("itch_day", "250ms,bbo"),
                                         ("itch_day", "37msgs"), ("itch_day", "200msgs,1s"),
                                         ("ose_day", "1s"), ("ose_day", "50msgs,bbo"),
                                         ("l2_kraken", "1s,bbo")])
def test_samples_of_a_window_are_the_replays(request, tmp_path, name, every):
    day = request.getfixturevalue(name)
    _, archive = archive_of(day, tmp_path, checkpoint=200)
    options = {"book_depth": 1000} if day.codec == "kraken-v1" else {}
    rng = random.Random(name + every)
    for symbol in day.symbols[:4]:
        full = fb.replay(day.source, day.codec, every=every, depth=4, symbols=[symbol],
                         **options).samples
        ts = day.events["ts_exchange"][day.events["instrument"] == day.instrument(symbol)]
        for _ in range(3):
            t0, t1 = sorted(rng.randint(int(ts.min()), int(ts.max())) for _ in range(2))
            got = archive.samples(symbol, t0, t1, every=every, depth=4)
            keep = (full["ts"] >= t0) & (full["ts"] < t1)
            assert got.keys() == full.keys()
            for key in full:
                if key == "instrument":
                    continue
                assert np.array_equal(got[key], full[key][keep]), (symbol, key, t0, t1)


def test_events_of_a_window(itch_day, tmp_path):
    _, archive = archive_of(itch_day, tmp_path, checkpoint=400)
    rng = random.Random(5)
    for symbol in itch_day.symbols[:5]:
        i = itch_day.instrument(symbol)
        mine = itch_day.events[itch_day.events["instrument"] == i]
        assert archive.events(symbol).tobytes() == mine.tobytes()
        ts = mine["ts_exchange"]
        for _ in range(5):
            t0, t1 = sorted(rng.randint(int(ts.min()), int(ts.max())) for _ in range(2))
            want = mine[(ts >= t0) & (ts < t1)]
            got = archive.events(symbol, t0, t1)
            assert got.dtype == EVENT_DTYPE and got.tobytes() == want.tobytes()


def test_samples_refuses_a_count_rule_it_cannot_phase(itch_day, l2_kraken, tmp_path):
    (tmp_path / "a").mkdir()
    _, kraken = archive_of(l2_kraken, tmp_path / "a", checkpoint=50)
    with pytest.raises(ValueError, match="count rule"):
        kraken.samples(l2_kraken.symbols[0], 0, 2**62, every="10msgs")
    fb.replay(itch_day.source, "itch50", archive=tmp_path / "skip.fba", on_error="skip")
    with pytest.raises(ValueError, match="count rule"):
        fa.open(tmp_path / "skip.fba").samples(itch_day.symbols[0], 0, 2**62, every="10msgs")
