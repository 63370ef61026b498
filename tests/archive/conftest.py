"""Shared inputs of the archive tests: small days of each kind, and the truth they are
compared with (the run's events applied by a fresh book up to each time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastbook as fb
from fastbook import codecs, synth
from fastbook.driver import Instruments, L2Run, StreamRun, drive

CF = Path(__file__).resolve().parent.parent / "data" / "l2" / "cryptofeed"


@dataclass
class Day:
    """A source, its codec, and every event its run yielded (in stream order)."""

    source: Any
    codec: str
    events: np.ndarray
    books: Any
    make_run: Any

    def write_archive(self, path: Any, **writer_options: Any) -> Any:
        """Run the day again through an ``ArchiveWriter(path, **writer_options)`` (the
        driver's loop, as ``fb.replay(archive=)``); returns the books."""
        from fastbook.archive import ArchiveWriter

        books = fb.BookSet(on_error="stop")
        writer = ArchiveWriter(path, **writer_options)
        try:
            drive(writer.wrap(self.make_run(books), books), books)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        return books

    def instrument(self, symbol: str) -> int:
        return next(i for i in range(len(self.books))
                    if self.books.instrument(i)["symbol"] == symbol)

    @property
    def symbols(self) -> list[str]:
        return [self.books.instrument(i)["symbol"] for i in range(len(self.books))]

    def truth(self, symbol: str, t: int) -> Any:
        """The book of ``symbol`` as of ``t``: its events before its first one with
        ts_exchange > t, applied by a fresh book of the same kind and scales."""
        i = self.instrument(symbol)
        meta = self.books.instrument(i)
        mine = self.events[self.events["instrument"] == i].copy()
        mine["instrument"] = 0
        over = np.flatnonzero(mine["ts_exchange"] > t)
        k = int(over[0]) if len(over) else len(mine)
        bs = fb.BookSet(on_error="skip")
        extra = {} if meta["kind"] == "l2" else {"side_keys": self.books[i].side_keys}
        bs.add_instrument(symbol, kind=meta["kind"], venue=meta["venue"],
                          price_decimals=meta["price_decimals"],
                          qty_decimals=meta["qty_decimals"], **extra)
        if k:
            bs.apply(mine[:k])
        return bs[0]


def collect(run: Any, books: Any) -> np.ndarray:
    """Every event ``run`` yields, applied to ``books`` as a replay does."""
    kept: list[np.ndarray] = []
    drive(run, books, consumers=[lambda events, _: kept.append(events.copy())])
    return np.concatenate(kept)


def stream_day(source: Any, codec: str) -> Day:
    def make_run(books: Any) -> Any:
        return StreamRun(codecs.load(codec), source, Instruments(books), codec=codec,
                         symbols=None, chunk_size=1 << 14, compression="auto", progress=False,
                         options={})

    books = fb.BookSet(on_error="stop")
    return Day(source, codec, collect(make_run(books), books), books, make_run)


def l2_day(source: Any, codec: str, **options: Any) -> Day:
    def make_run(books: Any) -> Any:
        return L2Run(codecs.load(codec), source, Instruments(books), codec=codec,
                     progress=False, **options)

    books = fb.BookSet(on_error="stop")
    return Day(source, codec, collect(make_run(books), books), books, make_run)


@pytest.fixture(scope="session")
def itch_day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    path = tmp_path_factory.mktemp("itch") / "day.itch"
    path.write_bytes(synth.itch_day(60_000, n_symbols=12, seed=3))
    return stream_day(path, "itch50")


@pytest.fixture(scope="session")
def ose_day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    path = tmp_path_factory.mktemp("ose") / "day.ose"
    path.write_bytes(synth.ose_day(20_000, seed=21))
    return stream_day(path, "ose_itch")


@pytest.fixture(scope="session")
def l2_kraken() -> Day:
    return l2_day(CF / "KRAKEN.ws.50.0.gz", "kraken-v1", book_depth=1000)
