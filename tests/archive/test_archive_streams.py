"""The writer on arbitrary streams: random events of a few books (times that sometimes
go back, errors skipped), cut into random batches, through the driver's loop; at random
times ``book_at`` is the events applied by a fresh book up to the first one later than t
(hypothesis)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbook as fb
import fastbook.archive as fa
from fastbook.driver import drive
from fastbook.events import EVENT_DTYPE

BOOKS = 3


class ListRun:
    """The run protocol over batches held in a list (what a codec yields)."""

    kind, name, ts_origin, packets = "stream", "<list>", "midnight", False

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = batches
        self.notices: list[Any] = []

    def __enter__(self) -> ListRun:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Any:
        for batch in self.batches:
            yield batch.copy()      # a codec may reuse its buffer: hand out copies

    def failed(self, exc: Any, events: np.ndarray) -> BaseException:
        return exc  # type: ignore[no-any-return]

    def result_fields(self) -> dict[str, Any]:
        return {}


def stream(draw: Any) -> np.ndarray:
    n = draw(st.integers(1, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["instrument"] = rng.integers(0, BOOKS, n)
    ev["action"] = rng.choice([1, 1, 1, 2, 3, 4, 5], n)   # add, reduce, execute, delete, replace
    ev["side"] = rng.choice([1, 2], n)
    ev["price"] = rng.integers(95, 106, n)
    ev["qty"] = rng.integers(1, 20, n)
    ev["order_id"] = rng.integers(0, 40, n)
    ev["new_order_id"] = rng.integers(0, 40, n)
    steps = rng.choice([0, 1, 1, 2, 1000, -3], n)       # times mostly forward, sometimes back
    ev["ts_exchange"] = 10_000 + np.cumsum(steps)
    ev["sequence"] = np.arange(n)
    return ev


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_book_at_on_random_streams_and_batches(tmp_path_factory, data):
    events = stream(data.draw)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=8)))
    batches = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    rule = data.draw(st.sampled_from([("5ns", 1, 3), ("1us", 4, 10), (7, 1, 1), (1, 1, 1)]))
    path = tmp_path_factory.mktemp("s") / "x.fba"
    books = fb.BookSet(on_error="skip")
    for k in range(BOOKS):
        books.add_instrument(f"S{k}", price_decimals=2)
    writer = fa.ArchiveWriter(path, checkpoint=rule[0], min_events=rule[1],
                              max_events=max(rule[1], rule[2]))
    drive(writer.wrap(ListRun(batches), books), books)
    writer.close()
    archive = fa.open(path)
    assert archive.symbols == [f"S{k}" for k in range(BOOKS)]
    times = data.draw(st.lists(st.integers(9_990, int(events["ts_exchange"].max()) + 5),
                               min_size=1, max_size=6))
    for k in range(BOOKS):
        mine = events[events["instrument"] == k].copy()
        mine["instrument"] = 0
        assert archive.events(f"S{k}").tobytes() == events[events["instrument"] == k].tobytes()
        for t in [*times, 2**62]:
            over = np.flatnonzero(mine["ts_exchange"] > t)
            upto = int(over[0]) if len(over) else len(mine)
            truth = fb.BookSet(on_error="skip")
            truth.add_instrument("T", price_decimals=2)
            truth.apply(mine[:upto])
            got = archive.book_at(f"S{k}", t)
            assert got.orders().tobytes() == truth[0].orders().tobytes(), (k, t)
        assert archive.book_at(f"S{k}", 2**62).orders().tobytes() == books[k].orders().tobytes()
    archive.close()
