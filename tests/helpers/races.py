"""Two threads on one book: the guard that refuses a book's use while another thread
applies to it without the GIL (compiled cores only)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

from fastbook.sampling import Sampler

#: Rounds of :func:`race_book_apply` before it gives up on seeing the window.
ROUNDS = 50


def race_book_apply(book, updates, calls: Sequence[Callable[[], object]], expect: str,
                    rounds: int = ROUNDS) -> int:
    """Apply ``updates`` to the compiled ``book`` in another thread (the GIL released)
    and make ``calls`` over and over meanwhile; returns how many calls were refused.

    Every RuntimeError a call raises must contain ``expect``, the apply itself must
    raise nothing, and at least one call must have been refused (else the window was
    never observed and the guard not exercised). ``Book.apply`` has no hook inside its
    GIL-free window, so whether this thread runs inside it is up to the scheduler: a
    round that misses it applies ``updates`` again (the same updates twice leave the
    same book as once), up to ``rounds`` times, so the refusal is seen on every run,
    however loaded the machine. (:func:`inside_bookset_apply` holds a BookSet's window
    open instead.)
    """
    def writer(started: threading.Event, errors: list[BaseException]) -> None:
        started.set()
        try:
            book.apply(*updates)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    refused = 0
    for _ in range(rounds):
        started = threading.Event()
        errors: list[BaseException] = []
        thread = threading.Thread(target=writer, args=(started, errors))
        thread.start()
        started.wait()
        while thread.is_alive():
            for call in calls:
                try:
                    call()
                except RuntimeError as exc:
                    assert expect in str(exc)
                    refused += 1
        thread.join()
        assert not errors
        if refused:
            return refused
    raise AssertionError(f"the apply window was never observed in {rounds} rounds; "
                         "the guard was not exercised")


class _HeldSampler(Sampler):
    """A sampler whose first growth, which ``BookSet.apply`` makes with the GIL taken
    back inside its GIL-free loop (the books still marked busy), stops until released."""

    def __init__(self, inside: threading.Event, release: threading.Event) -> None:
        super().__init__(1, every=1, capacity=1)
        self.inside, self.release, self.held = inside, release, False

    def _grow(self, need: int) -> None:
        if not self.held:
            self.held = True
            self.inside.set()
            self.release.wait()     # gives up the GIL: the other thread runs now
        super()._grow(need)


@contextlib.contextmanager
def inside_bookset_apply(bs, events) -> Iterator[None]:
    """Run ``bs.apply(events)`` (compiled, at least 2 events, 256 or more so the GIL is
    released) in another thread and hold it inside its GIL-free loop for the ``with``
    body: every book of ``bs`` is busy there, on every run, whatever the scheduler does.
    On leaving, the apply finishes; its error, if any, is raised."""
    inside, release = threading.Event(), threading.Event()
    sampler = _HeldSampler(inside, release)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            bs.apply(events, sampler=sampler)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            inside.set()            # so a failure before the window cannot hang the test

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        inside.wait()
        assert sampler.held and thread.is_alive(), errors or "the apply did not stop inside"
        yield
    finally:
        release.set()
        thread.join()
    if errors:
        raise errors[0]
