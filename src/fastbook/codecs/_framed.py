"""The streaming half the binary ITCH decoders share: frames that straddle chunks, counts.

A subclass (``itch50.Decoder``, ``ose_itch.Decoder``) calls
``FramedDecoder.__init__`` for the state every decoder has, sets
``_MESSAGE_LENGTHS`` (the types it knows) and ``_directory`` (the offsets
array its kernel fills), and implements ``_decode`` (one kernel call with its
own state), ``_directory_message`` (what a directory message found by the
kernel does) and ``_error`` (the text of a negative kernel status).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from fastbook._checks import is_int
from fastbook._shard import symbol_filter
from fastbook.codecs._itchwire import STATUS_OK
from fastbook.errors import DecodeError
from fastbook.events import EVENT_DTYPE

#: Longest frame a decoder joins across two chunks (a 64 KiB MoldUDP64 packet and its header).
MAX_FRAME = (1 << 16) + 64


def framing_code(framings: Mapping[str, int], framing: str) -> int:
    """The kernel code of ``framing`` in a codec's ``FRAMINGS``; ValueError naming the choices."""
    try:
        return framings[framing]
    except KeyError:
        raise ValueError(f"framing must be one of {', '.join(framings)}, got {framing!r}") \
            from None


class FramedDecoder:
    """``feed`` / ``close`` / ``counts`` for a decoder whose ``_run`` walks whole frames."""

    _MESSAGE_LENGTHS: ClassVar[Mapping[str, int]] = {}

    def __init__(self, bookset: Any, *, symbols: Iterable[str] | None, framing: str,
                 framings: Mapping[str, int], venue: str, name: str, batch: int) -> None:
        from fastbook.driver import registry

        #: where instruments are announced (the driver's books); None: scanning
        self.registry = registry(bookset)
        self.symbols = symbol_filter(symbols)
        self.framing = framing
        self._framing = framing_code(framings, framing)
        self.venue = venue
        self.name = name
        if not is_int(batch, 1):
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        self._events = np.zeros(batch, EVENT_DTYPE)
        self._counts = np.zeros(256, np.uint64)     # messages by type byte
        self._tail = b""        # bytes of a frame that straddles the last chunk
        self._base = 0          # absolute offset of the first byte not yet consumed
        self.messages = 0       #: messages decoded so far
        self.events = 0         #: events handed out so far
        #: directory entries seen, in order (dicts, one per directory message)
        self.directory: list[dict[str, Any]] = []
        #: instrument id per the feed's own book key, for the chosen symbols
        self.instruments: dict[int, int] = {}
        self._closed = False

    _directory: np.ndarray

    def _run(self, buf: Any, pos: int, *, final: bool,
             stop_at: int | None = None) -> Iterator[np.ndarray]:
        """Decode ``buf`` from ``pos``; returns where it stopped (generator return value)."""
        while True:
            new_pos, n_events, n_messages, n_directory, status = self._decode(buf, pos, final)
            self._base += new_pos - pos
            self.messages += n_messages
            for k in range(n_directory):
                self._directory_message(buf, int(self._directory[k]))
            if n_events:
                self.events += n_events
                yield self._batch(n_events)
            pos = new_pos
            if status < 0:
                raise DecodeError(self._error(buf, pos, status))
            if status == STATUS_OK or (stop_at is not None and pos >= stop_at):
                return pos

    def _decode(self, buf: Any, pos: int,
                final: bool) -> tuple[int, int, int, int, int]:  # pragma: no cover
        """The kernel's ``decode_chunk`` from ``pos`` with the decoder's arrays and state."""
        raise NotImplementedError

    def _directory_message(self, buf: Any, offset: int) -> None:  # pragma: no cover
        """The directory message at ``offset`` of ``buf``, which the kernel stopped after."""
        raise NotImplementedError

    def _error(self, buf: Any, pos: int, status: int) -> str:  # pragma: no cover
        """The DecodeError text of a negative kernel ``status`` at ``pos``."""
        raise NotImplementedError

    def _batch(self, n_events: int) -> np.ndarray:
        """The batch of the ``n_events`` events just decoded (a view of the reused buffer)."""
        return self._events[:n_events]

    @property
    def bytes(self) -> int:
        """Bytes consumed so far (whole frames)."""
        return self._base

    def counts(self) -> dict[str, int]:
        """Messages decoded so far by type character (unknown types included)."""
        return {chr(t): int(n) for t, n in enumerate(self._counts.tolist()) if n}

    def unknown_types(self) -> int:
        """Messages of types this codec does not know (skipped by length)."""
        return sum(n for t, n in self.counts().items() if t not in self._MESSAGE_LENGTHS)

    def feed(self, chunk: Any, /) -> Iterator[np.ndarray]:
        """Decode ``chunk`` (bytes-like), yielding event batches to apply in order.

        Bytes of an incomplete trailing frame are kept for the next call.
        """
        if self._closed:
            raise ValueError("this Decoder is closed")
        view = memoryview(chunk).cast("B")
        start = 0
        if self._tail:
            # finish the straddling frame on a small joined buffer, then go on in place
            head = len(self._tail)
            take = min(len(view), MAX_FRAME)
            joined = self._tail + bytes(view[:take])
            pos = yield from self._run(joined, 0, final=False, stop_at=head)
            if pos < head:
                if take < len(view):
                    raise DecodeError(f"{self.name}: byte {self._base}, message {self.messages}:"
                                      f" a frame longer than {MAX_FRAME} bytes")
                self._tail = joined[pos:]
                return
            start = pos - head
            self._tail = b""
        pos = yield from self._run(view, start, final=False)
        self._tail = bytes(view[pos:])

    def close(self) -> Iterator[np.ndarray]:
        """End of stream: decode what is left; a trailing partial frame is an error."""
        if self._closed:
            return
        self._closed = True
        yield from self._run(self._tail, 0, final=True)
        self._tail = b""
