"""The run protocol (``fastbook.driver``): codecs announce instruments; the driver owns books."""

from __future__ import annotations

import numpy as np
import pytest

import fastbook as fb
from fastbook import codecs
from fastbook.codecs import itch50
from fastbook.driver import Instruments, StreamRun, drive, registry
from fastbook.errors import UpdateError
from fastbook.events import EVENT_DTYPE, Action, Flags, events_from_records
from fastbook.synth import itch_day


class Recording(Instruments):
    """The driver's registry, noting every announcement."""

    def __init__(self, books):
        super().__init__(books)
        self.calls = []

    def announce(self, symbol, **kw):
        self.calls.append((symbol, kw["venue"], kw["price_decimals"]))
        return super().announce(symbol, **kw)


def test_a_stream_codec_announces_and_never_adds_books_itself():
    books = fb.BookSet()
    reg = Recording(books)
    dec = itch50.Decoder(reg)
    assert dec.registry is reg
    for _ in dec.feed(itch_day(5_000, n_symbols=3)):
        pass
    list(dec.close())
    assert [c[0] for c in reg.calls] == [books.instrument(i)["symbol"] for i in range(len(books))]
    assert {(c[1], c[2]) for c in reg.calls} == {(itch50.VENUE, itch50.PRICE_DECIMALS)}
    # a BookSet given directly is wrapped in the driver's registry; None means scanning
    assert isinstance(registry(books), Instruments) and registry(None) is None


def test_announce_reuses_an_instrument_unless_told_not_to():
    books = fb.BookSet()
    reg = Instruments(books)
    assert reg.announce("AAA", venue="X", price_decimals=2) == 0
    assert reg.announce("AAA", venue="X", price_decimals=2) == 0
    assert reg.announce("BBB", venue="X", kind="l2", price_decimals=1, qty_decimals=3) == 1
    assert books.instrument(1)["kind"] == "l2" and len(reg) == 2
    with pytest.raises(ValueError, match="already in the set"):
        reg.announce("AAA", venue="X", price_decimals=2, reuse=False)


class ToyRun:
    """A minimal codec run: two messages of one L2 instrument, the first half-applied
    would be crossed (the run protocol as a new codec would implement it)."""

    kind = "toy"
    name = "<toy>"
    ts_origin = "epoch"
    packets = True

    def __init__(self, instruments):
        self.instruments = instruments
        self.notices = []
        self.entered = self.exited = False

    def __enter__(self):
        self.entered = True
        return self

    def __exit__(self, *exc):
        self.exited = True

    def __iter__(self):
        i = self.instruments.announce("T", venue="toy", kind="l2", price_decimals=0)
        last = int(Flags.LAST_IN_PACKET)
        yield events_from_records([
            {"instrument": i, "action": int(Action.SET_LEVEL), "side": fb.BID, "price": 10,
             "qty": 1, "ts_exchange": 1},
            {"instrument": i, "action": int(Action.SET_LEVEL), "side": fb.ASK, "price": 12,
             "qty": 1, "ts_exchange": 1, "flags": last},
            # one message: the bid moves up past the old ask, then the ask moves
            {"instrument": i, "action": int(Action.SET_LEVEL), "side": fb.BID, "price": 13,
             "qty": 1, "ts_exchange": 2},
            {"instrument": i, "action": int(Action.SET_LEVEL), "side": fb.BID, "price": 10,
             "qty": 0, "ts_exchange": 2},
            {"instrument": i, "action": int(Action.SET_LEVEL), "side": fb.ASK, "price": 12,
             "qty": 0, "ts_exchange": 2},
            {"instrument": i, "action": int(Action.SET_LEVEL), "side": fb.ASK, "price": 14,
             "qty": 1, "ts_exchange": 2, "flags": last},
        ])
        yield events_from_records([{"instrument": i, "action": int(Action.REDUCE),
                                    "side": fb.BID, "price": 13, "qty": 5, "sequence": 7}])

    def failed(self, exc, events):
        return UpdateError(f"{self.name}: {exc}", exc.index)

    def result_fields(self):
        return {}


def test_drive_runs_any_codec_through_one_loop():
    books = fb.BookSet(on_error="stop")
    run = ToyRun(Instruments(books))
    sampler = fb.Sampler(1, on_bbo=True, packets=run.packets)
    seen = []
    with pytest.raises(UpdateError, match="<toy>: event 0: cannot reduce 5 at price 13"):
        drive(run, books, sampler=sampler, consumers=[lambda ev, bs: seen.append(len(ev))])
    assert run.entered and run.exited and seen == [6]
    c = sampler.columns()
    # one row per message, never the crossed book inside the second one
    assert c["bid_px"][:, 0].tolist() == [10, 13] and c["ask_px"][:, 0].tolist() == [12, 14]
    assert books[0].best_bid() == (13, 1)


def test_the_registry_names_codecs_only():
    names = codecs.available()
    assert set(names) <= set(codecs.STREAM_CODECS) | set(codecs.L2_FEEDS)
    assert set(codecs.STREAM_CODECS) <= set(names)
    for name in ("capture", "writers", "driver", "lobster", "instruments", "_framed"):
        with pytest.raises(ValueError, match="unknown codec"):
            codecs.load(name)


def test_stream_run_names_a_failure_by_message():
    run = StreamRun(itch50, b"", Instruments(fb.BookSet()), codec="itch50", symbols=None,
                    chunk_size=1 << 20, compression="auto", progress=False, options={})
    run.name = "day.itch"
    events = np.zeros(3, EVENT_DTYPE)
    events["sequence"] = [4, 5, 6]
    err = run.failed(UpdateError("event 1: unknown order 9", 1), events)
    assert isinstance(err, UpdateError) and str(err) == "day.itch: message 5: unknown order 9"
