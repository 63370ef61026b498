"""Recording a live run, and replaying a recording through the same session.

:class:`LiveRecorder` writes every frame, sent message, REST snapshot body and
connection event of a live run, with its receive time and connection id, to
fastbook's capture format (``docs/captures.md``). An ``open`` record's payload
is a small JSON object naming what the connection carried (``{"venue",
"symbols", "standby"}``), and a REST record carries the id of the connection
whose codec asked for it; a ``driver`` record says what the driver decided
that no frame shows (a standby connection promoted in a make-before-break
handover, a venue given up on). So :func:`replay_recording` can hand every
record to a fresh :class:`~fastbook.live._session.Session` in the order the
live one had them: the books, states and counts come out the same (a test
says so).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from fastbook.capture import CLOSE, DRIVER, OPEN, RECEIVED, REST, SENT, CaptureWriter
from fastbook.events import Flags

__all__ = ["LiveRecorder", "SessionRun", "recording_books", "recording_meta",
           "recording_venues", "replay_recording"]

_LAST_IN_PACKET = int(Flags.LAST_IN_PACKET)


class LiveRecorder:
    """Writes a live run to a capture file, or to a directory of rotated parts.

    ``target``: a file path (one capture) or a directory (parts rotated by
    ``max_bytes`` / ``max_seconds``, see :mod:`fastbook.live._recorder`), or an
    object with the :class:`~fastbook.capture.CaptureWriter` ``write`` method.
    """

    def __init__(self, target: Any, *, meta: dict[str, Any] | None = None,
                 **rotation: Any) -> None:
        meta = {"recorder": "fastbook.live", **(meta or {})}
        if hasattr(target, "write"):
            self.writer = target
        elif os.path.isdir(target) or str(target).endswith(("/", os.sep)) or rotation:
            from fastbook.live._recorder import Recorder

            self.writer = Recorder(target, meta=meta, **rotation)
        else:
            self.writer = CaptureWriter(target, meta=meta)
        self.records = 0

    def _write(self, kind: str, payload: Any, recv_ns: int, conn: int, url: str = "") -> None:
        self.writer.write(kind, payload, recv_ns, conn=conn, url=url,
                          binary=isinstance(payload, (bytes, bytearray, memoryview)))
        self.records += 1

    def opened(self, conn: int, url: str, recv_ns: int, *, venue: str, symbols: list[str],
               standby: bool = False) -> None:
        info = json.dumps({"venue": venue, "symbols": symbols, "standby": standby})
        self.writer.write(OPEN, info, recv_ns, conn=conn, url=url)
        self.records += 1

    def received(self, conn: int, payload: Any, recv_ns: int) -> None:
        self._write(RECEIVED, payload, recv_ns, conn)

    def sent(self, conn: int, payload: Any, recv_ns: int) -> None:
        self._write(SENT, payload, recv_ns, conn)

    def rest(self, url: str, body: Any, recv_ns: int, *, conn: int) -> None:
        self.writer.write(REST, body, recv_ns, conn=conn, url=url)
        self.records += 1

    def disconnected(self, conn: int, reason: str, recv_ns: int) -> None:
        self.writer.write(CLOSE, reason, recv_ns, conn=conn)
        self.records += 1

    def promoted(self, conn: int, recv_ns: int) -> None:
        """Standby connection ``conn`` became the primary of its synced books."""
        self._driver({"promote": True}, recv_ns, conn)

    def venue_down(self, venue: str, reason: str, recv_ns: int) -> None:
        """The driver gave up on ``venue`` (its books are down until it connects again)."""
        self._driver({"down": venue, "reason": reason}, recv_ns, 0)

    def _driver(self, info: dict[str, Any], recv_ns: int, conn: int) -> None:
        self.writer.write(DRIVER, json.dumps(info, separators=(",", ":")), recv_ns, conn=conn)
        self.records += 1

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _records(source: Any) -> Iterable[Any]:
    if os.path.isdir(source):
        from fastbook.live._recorder import read_recording

        return read_recording(source)
    from fastbook.capture import read_capture

    return read_capture(source)


def replay_recording(source: Any, *, depth: int | None = None, stale_after_s: float | None
                     = None, session: Any = None, until_ns: int | None = None,
                     **options: Any) -> Any:
    """Replay a live recording through a new :class:`Session`; returns the session.

    ``session.book(venue, native)``, ``session.track(venue, native).state`` and
    ``session.counts(venue, native)`` then say what the live run's did at the
    end of the recording (or at ``until_ns``: records received later are left out,
    such as the closes of a run's own shutdown). The books come from the ``open`` records' JSON
    (venue and symbols); ``depth`` should be the live run's (it is in the
    recording's metadata when :func:`fastbook.live.live` wrote it). Frames read
    after their connection closed are not fed (the live session had nothing to
    feed them to). :func:`fastbook.replay` of a recording runs the same session
    and also gives BookSet books, samples and a summary (:class:`SessionRun`).
    """
    from fastbook.live._session import Session

    path = isinstance(source, (str, os.PathLike))
    if session is None:
        # the books of a later open record join when it comes
        session = Session(recording_books(source) if path else [], depth=depth,
                          stale_after_s=stale_after_s, latency=False, **options)
    name = os.fspath(source) if path else "the recording"

    def run(rec: Any) -> None:
        if until_ns is not None and rec.recv_ns > until_ns:
            return
        kind = rec.kind
        if kind in (RECEIVED, REST, CLOSE) and rec.conn not in session.conns:
            return      # a frame read after its connection closed: nothing to feed
        if kind == RECEIVED:
            payload = rec.payload if rec.flags & 1 else rec.payload.decode("utf-8", "replace")
            session.received(rec.conn, payload, rec.recv_ns)
        elif kind == OPEN:
            info = _open_info(rec.payload, name, rec.line)
            _ensure_books(session, info["venue"], info["symbols"], name, rec.line)
            session.open(rec.conn, info["venue"], info["symbols"], rec.url, rec.recv_ns,
                         standby=bool(info.get("standby")))
        elif kind == REST:
            from fastbook.capture import rest_symbol

            native = rest_symbol(rec.url)
            if native is not None:
                session.rest(rec.conn, native, rec.payload, rec.recv_ns)
        elif kind == CLOSE:
            session.closed(rec.conn, rec.payload.decode("utf-8", "replace"), rec.recv_ns)
        elif kind == DRIVER:
            _driver_record(session, rec.conn, rec.payload, rec.recv_ns, name, rec.line)
        session.actions.clear()

    for rec in _records(source):
        run(rec)
    return session


# ---------------------------------------------------------------------------
# fb.replay of a live recording: the session's books as a normal ReplayResult
# ---------------------------------------------------------------------------

#: The ``recorder`` a live recording's metadata names.
RECORDER = "fastbook.live"


def _parts_of(source: Any) -> list[str]:
    """The capture files of a recording: a directory's parts in order, or the one file."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        from fastbook.live._recorder import recording_files

        files = recording_files(source)
        if not files:
            raise FileNotFoundError(f"no recording parts (*-<UTC start>-<n>.fbcap[.zst]) in "
                                    f"{os.fspath(source)!r}")
        return files
    return [os.fspath(source)]


def recording_meta(source: Any) -> dict[str, Any] | None:
    """The metadata of a live recording (its first part's), or None when ``source`` is not one.

    A live recording is a fastbook capture file whose header metadata says
    ``recorder: fastbook.live`` (what :class:`LiveRecorder` writes), or a
    directory of rotated parts (``*-<UTC start>-<n>.fbcap[.zst]``, which only
    the live recorder writes). Anything else (a cryptofeed capture, an ITCH
    file, bytes, stdin) is not, and is left to the other replays.
    """
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = os.fspath(source)
    if os.path.isdir(path):
        from fastbook.live._recorder import recording_files

        try:
            files = recording_files(path)
        except (OSError, ValueError):
            return None
        if not files:
            return None
        return _header_meta(files[0]) or {"recorder": RECORDER}
    if not os.path.isfile(path):
        return None
    meta = _header_meta(path)
    return meta if meta is not None and meta.get("recorder") == RECORDER else None


def _header_meta(path: str) -> dict[str, Any] | None:
    """The header metadata of a fastbook capture file (also of one cut short), or None."""
    from fastbook.capture import CaptureReader
    from fastbook.errors import DecodeError

    try:
        try:
            with CaptureReader(path, verify=False, chunk_size=1 << 16) as reader:
                return reader.meta
        except DecodeError as exc:
            if "truncated zstd data" not in str(exc):
                raise
        # a zstd part cut short by a crash: the header is in its first bytes
        with CaptureReader(_zstd_head(path), verify=False) as reader:
            return reader.meta
    except (DecodeError, OSError, ValueError, ImportError):
        return None


def recording_venues(source: Any) -> list[str]:
    """The venues of a live recording: its specs' (metadata), then its first connections'."""
    return list(dict.fromkeys(v for v, _n, _s in recording_books(source)))


def recording_books(source: Any) -> list[tuple[str, str, str]]:
    """``(venue, native, symbol as asked)`` of a live recording's books, read cheaply.

    From the ``specs`` its metadata holds (``fb.live`` and ``fastbook record`` write
    them), then the ``open`` records before the first frame of its first part (the
    connections a run opens first). Books that only a later ``open`` record names are
    added when the replay meets it.
    """
    from fastbook.live import parse_specs

    files = _parts_of(source)
    meta = recording_meta(source) or {}
    books: list[tuple[str, str, str]] = []
    specs = meta.get("specs")
    if isinstance(specs, list) and specs:
        try:
            books = parse_specs([str(x) for x in specs])
        except ValueError as exc:
            raise ValueError(f"{files[0]}: the recording's specs: {exc}") from None
    known = {(v, n) for v, n, _s in books}
    for _ns, kind, _conn, _url, payload, number, _flags in _whole_records(files[0]):
        if kind == RECEIVED:
            break
        if kind == OPEN:
            info = _open_info(payload, files[0], number)
            for native in info["symbols"]:
                if (info["venue"], native) not in known:
                    known.add((info["venue"], native))
                    books.append((info["venue"], native, native))
    return books


def _whole_records(path: str) -> Iterator[tuple[Any, ...]]:
    """The raw records of ``path`` up to where it was cut short, if it was (no CRC check:
    the replay itself checks them)."""
    from fastbook.capture import CaptureReader
    from fastbook.errors import DecodeError

    done = 0
    try:
        with CaptureReader(path, verify=False) as reader:
            for rec in reader.raw():
                done += 1
                yield rec
        return
    except DecodeError as exc:
        if "truncated zstd data" not in str(exc):
            if "truncated capture" in str(exc):
                return
            raise
    yield from _frames_records(path, done, False)


def _frames_records(path: str, done: int, verify: bool) -> Iterator[tuple[Any, ...]]:
    """The records after the first ``done`` in the complete zstd frames of ``path``."""
    from fastbook.capture import CaptureReader
    from fastbook.errors import DecodeError

    try:
        stream = io.BufferedReader(_Chunks(_whole_frames(path)))
        with CaptureReader(stream, verify=verify) as reader:
            for number, rec in enumerate(reader.raw(), 1):
                if number > done:
                    yield (*rec[:5], number, rec[6])
    except DecodeError as exc:
        if "truncated capture" not in str(exc):
            raise DecodeError(f"{path}: {exc}") from None


def _ensure_books(session: Any, venue: str, natives: list[str], path: str, number: int
                  ) -> list[tuple[str, str]]:
    """Add the books of an ``open`` record that ``session`` does not have; the new keys."""
    from collections import Counter

    from fastbook.errors import DecodeError
    from fastbook.live._rules import rules_for
    from fastbook.live._session import Track

    if venue not in session.rules:
        try:
            rules = rules_for(venue)
        except ValueError as exc:
            raise DecodeError(f"{path}: record {number}: {exc}") from None
        if rules.venue != venue:
            raise DecodeError(f"{path}: record {number}: venue {venue!r} is spelled "
                              f"{rules.venue!r} in live recordings")
        session.rules[venue] = rules
        session.venue_counts[venue] = Counter()
    added = []
    for native in natives:
        if (venue, native) not in session.tracks:
            session.tracks[(venue, native)] = Track(venue, native, native)
            added.append((venue, native))
    return added


def _open_info(payload: bytes, path: str, number: int) -> dict[str, Any]:
    """The JSON of an ``open`` record: ``{"venue", "symbols", "standby"}``."""
    from fastbook.errors import DecodeError

    try:
        info = json.loads(payload or b"{}")
    except (ValueError, RecursionError):
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("venue"), str) or \
            not isinstance(info.get("symbols"), list) or \
            not all(isinstance(s, str) for s in info["symbols"]):
        raise DecodeError(f"{path}: record {number}: an open record of a live recording must "
                          f"be a JSON object with 'venue' and 'symbols'; got "
                          f"{bytes(payload[:80])!r}")
    return info


def _driver_record(session: Any, conn: int, payload: bytes, recv_ns: int, path: str,
                   number: int) -> None:
    """Apply a ``driver`` record: what the live driver decided that no frame shows."""
    from fastbook.errors import DecodeError

    try:
        info = json.loads(payload or b"{}")
    except (ValueError, RecursionError):
        info = None
    if isinstance(info, dict) and info.get("promote") is True and len(info) == 1:
        c = session.conns.get(conn)
        if c is not None:             # a standby that closed before: nothing to promote
            session.promote(c, recv_ns)
        return
    if isinstance(info, dict) and isinstance(info.get("down"), str) and \
            isinstance(info.get("reason", ""), str) and set(info) <= {"down", "reason"}:
        session.venue_down(info["down"], info.get("reason", ""), recv_ns)
        return
    raise DecodeError(f"{path}: record {number}: a driver record of a live recording must be "
                      f'{{"promote": true}} or {{"down": venue, "reason": text}} (a newer '
                      f"fastbook's recording?); got {bytes(payload[:80])!r}")


def check_codec(codec: Any, venues: list[str], name: str) -> None:
    """Raise ValueError when ``codec`` names a venue other than the recording's."""
    if codec is None:
        return
    from fastbook.live._rules import rules_for

    given = getattr(codec, "venue", None) or str(codec)
    try:
        given = rules_for(given.replace("_", "-")).venue
    except ValueError:
        pass
    if [given] != venues:
        raise ValueError(f"{name} is a live recording of {', '.join(venues) or 'no venue'}; "
                         f"codec {given!r} contradicts it (omit the codec: the recording "
                         f"names its venues)")


class SessionRun:
    """A live recording's run: records → a :class:`Session` (as live) → event batches.

    Every record goes to a fresh session exactly as :func:`replay_recording`
    hands it, so each book's state and counts are the live run's. Each
    connection's codec records the events it applies; after each record, the
    events of the connection that is the book's primary (the book readers saw)
    go to that book's instrument in the driver's BookSet, and when a book's
    primary changes (a reconnect, a make-before-break handover) its BookSet
    book is replaced by the new primary's whole book (a snapshot of events),
    so the BookSet book equals ``session.book(venue, symbol)`` after every
    record and samples are taken at message ends (``LAST_IN_PACKET`` on the
    last event of each record) as for other L2 replays.

    ``symbols``: native or as-asked symbols to give books to (the session
    still runs every book of the recording). ``until_ns``: records received
    later are left out. ``on_error="skip"`` replays a recording whose last
    part ends in a cut-short record (a crash mid-write) up to its last whole
    record (counted in ``truncated_records``); ``"raise"`` raises a
    :class:`fastbook.DecodeError` naming the file and record. Refused venue
    messages are always handled as the live session did (counted, resynced).
    The closes that end a recording, when they close every connection still
    open, are the run's own shutdown: counted in ``shutdown_closes``, not
    applied, so the books and states are those of the run just before it
    stopped.
    """

    kind = "live"
    packets = True
    ts_origin = "epoch"

    def __init__(self, source: Any, instruments: Any, *, symbols: Iterable[str] | None = None,
                 on_error: str = "raise", book_depth: int | None = None, verify: bool = True,
                 until_ns: int | None = None, progress: bool | None = None,
                 batch_events: int = 1 << 16) -> None:
        from fastbook.live._session import Session

        self.files = _parts_of(source)
        self.name = os.fspath(source)
        self.meta = recording_meta(source) or {}
        self.instruments = instruments
        self.verify = verify
        self.until_ns = until_ns
        self.on_error = on_error
        self.progress = progress
        self.batch_events = batch_events
        self.wanted = None if symbols is None else set(symbols)
        depth = book_depth if book_depth is not None else self.meta.get("depth")
        self.depth = depth if isinstance(depth, int) and not isinstance(depth, bool) else None
        self.session = Session(recording_books(source), depth=self.depth,
                               stale_after_s=None, latency=False)
        self.records = dict.fromkeys((RECEIVED, SENT, OPEN, REST, CLOSE, DRIVER), 0)
        self.notices: list[Any] = []    # the session acts on the feeds' notices itself
        self.messages = 0
        self.events = 0
        self.bytes = 0
        self.truncated = 0
        self.after_until = 0
        self.shutdown_closes = 0
        self.unknown_conn = 0
        self.after_close = 0
        self.rebuilds = 0
        self.warnings_: list[str] = []
        self._ids: dict[tuple[str, str], int] = {}           # track -> BookSet id
        self._primary: dict[tuple[str, str], Any] = {}       # track -> primary seen last
        self._venue_of: dict[int, str] = {}                  # conn id -> venue
        self._maps: dict[int, tuple[int, Any, bool]] = {}    # conn id -> feed ids' books
        self._by_venue: dict[str, list[tuple[str, str]]] = {}
        for key in self.session.tracks:
            self._by_venue.setdefault(key[0], []).append(key)

    def _ensure(self, venue: str, natives: list[str], path: str, number: int) -> None:
        """Books a later ``open`` record names join the session (as its first ones did)."""
        for key in _ensure_books(self.session, venue, natives, path, number):
            self._by_venue.setdefault(venue, []).append(key)

    def __enter__(self) -> SessionRun:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def selected(self, key: tuple[str, str]) -> bool:
        """True when the book ``key`` = (venue, native) gets a BookSet book."""
        if self.wanted is None:
            return True
        t = self.session.tracks[key]
        return t.native in self.wanted or t.symbol in self.wanted

    def __iter__(self) -> Iterator[Any]:
        from fastbook.sources import Progress

        chunks: list[Any] = []
        held: list[tuple[tuple[Any, ...], str]] = []
        pending = 0
        bar = Progress(None, unit_name="records", enabled=self.progress)
        n = 0
        try:
            for i, path in enumerate(self.files):
                for rec in self._part(path, i == len(self.files) - 1):
                    n += 1
                    if self.until_ns is not None and rec[0] > self.until_ns:
                        self.after_until += 1
                        continue
                    if rec[1] == CLOSE:
                        held.append((rec, path))     # the run's shutdown, if last
                        continue
                    for r, p in [*held, (rec, path)]:
                        events = self._record(r, p)
                        if events is not None and len(events):
                            chunks.append(events)
                            pending += len(events)
                    held.clear()
                    if pending >= self.batch_events:
                        yield self._join(chunks)
                        chunks, pending = [], 0
                    if not n & 0x3FFF:
                        bar.update(0, n)
            # closes that end the recording and close every open connection are the run's
            # own shutdown: counted, not applied (the books stand as when the run stopped)
            if held and {r[2] for r, _ in held} >= set(self.session.conns):
                self.shutdown_closes = len(held)
                self.records[CLOSE] += len(held)
                held = []
            for r, p in held:
                events = self._record(r, p)
                if events is not None and len(events):
                    chunks.append(events)
            if chunks:
                yield self._join(chunks)
        finally:
            bar.close()

    def _part(self, path: str, last: bool) -> Iterator[tuple[Any, ...]]:
        """The raw records of one part; a last part cut short is an error or (skip) ends
        at its last whole record (for zstd: the last complete frame, the last flush)."""
        from fastbook.capture import CaptureReader
        from fastbook.errors import DecodeError

        done = 0
        try:
            with CaptureReader(path, verify=self.verify) as reader:
                for rec in reader.raw():
                    done += 1
                    yield rec
            return
        except DecodeError as exc:
            text = str(exc)
            zstd = "truncated zstd data" in text
            if not (last and (zstd or "truncated capture" in text)):
                raise
            if self.on_error != "skip":
                raise DecodeError(f"{text} (the recording was cut short, a crash mid-write?; "
                                  f"on_error='skip' / --skip-errors replays it up to its last "
                                  f"whole record)") from None
            self.truncated += 1
            self.warnings_.append(f"{text}: replayed up to the last whole record")
            if not zstd:
                return
        # the records of the complete zstd frames that the reader had not handed out yet
        yield from _frames_records(path, done, self.verify)

    def _join(self, chunks: list[Any]) -> Any:
        import numpy as np

        events = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        self.events += len(events)
        return events

    def _record(self, rec: tuple[Any, ...], path: str) -> Any:
        """Hand one record to the session; the BookSet's events of it (or None)."""
        recv_ns, kind, conn, url, payload, number, flags = rec
        self.records[kind] += 1
        self.bytes += len(payload)
        session = self.session
        if kind == DRIVER and conn == 0:
            _driver_record(session, conn, payload, recv_ns, path, number)   # a venue down
            return None
        if kind != OPEN and kind != SENT and conn not in session.conns:
            if conn in self._venue_of:
                self.after_close += 1       # as the live session: nothing to feed
            else:
                # a connection opened in a part that is not here (deleted, or a part replayed
                # on its own): nothing is known of its books, so its records are only counted
                self.unknown_conn += 1
            return None
        try:
            if kind == RECEIVED:
                self.messages += 1
                session.received(conn, payload if flags & 1 else
                                 payload.decode("utf-8", "replace"), recv_ns)
            elif kind == OPEN:
                info = _open_info(payload, path, number)
                self._ensure(info["venue"], info["symbols"], path, number)
                c = session.open(conn, info["venue"], info["symbols"], url, recv_ns,
                                 standby=bool(info.get("standby")))
                from fastbook.codecs._l2feed import EventBuffer

                c.feed.events = EventBuffer()        # the codec records what it applies
                self._venue_of[conn] = c.venue
            elif kind == REST:
                from fastbook.capture import rest_symbol

                native = rest_symbol(url)
                if native is not None:
                    self.messages += 1
                    session.rest(conn, native, payload, recv_ns)
            elif kind == CLOSE:
                session.closed(conn, payload.decode("utf-8", "replace"), recv_ns)
            elif kind == DRIVER:
                _driver_record(session, conn, payload, recv_ns, path, number)
        except Exception as exc:
            from fastbook.errors import DecodeError

            if isinstance(exc, DecodeError) and str(exc).startswith(path):
                raise
            raise DecodeError(f"{path}: record {number} ({kind}, connection {conn}): "
                              f"{type(exc).__name__}: {exc}") from None
        session.actions.clear()
        return self._events(conn, recv_ns)

    def _events(self, conn: int, recv_ns: int) -> Any:
        """The BookSet events of the last record: the primary's own, or a rebuilt book."""
        import numpy as np

        from fastbook.codecs._l2feed import EventBuffer

        session = self.session
        c = session.conns.get(conn)
        raw = None
        if c is not None and getattr(c.feed, "events", None) is not None and \
                len(c.feed.events):
            raw = c.feed.events.take()
        # only the books of the record's venue can have changed primary
        switched = set()
        rebuilt = EventBuffer()
        for key in self._by_venue.get(self._venue_of.get(conn, ""), ()):
            t = session.tracks[key]
            p = t.primary if t.primary is not None and t.primary.open else None
            if self._primary.get(key) is p:
                continue
            self._primary[key] = p
            switched.add(key)
            self._maps.clear()
            if self.selected(key):
                self._rebuild(rebuilt, key, p, recv_ns)
        out: list[Any] = []
        if raw is not None and c is not None:
            keep = self._keep(c, raw, switched)
            if keep is not None and len(keep):
                out.append(keep)
        if len(rebuilt):
            out.append(rebuilt.take())
        if not out:
            return None
        events = out[0] if len(out) == 1 else np.concatenate(out)
        # one record is one message: rows are taken at its end only
        events["flags"][-1] |= np.uint16(_LAST_IN_PACKET)
        return events

    def _keep(self, c: Any, raw: Any, switched: set[tuple[str, str]]) -> Any:
        """The events of connection ``c`` for the books it is the primary of, renumbered
        (not those of ``switched`` books: their whole book follows)."""
        import numpy as np

        feed = c.feed
        cached = self._maps.get(c.id)
        if switched or cached is None or cached[0] != len(feed.symbols):
            # which BookSet book each of the feed's ids goes to (-1: none); kept until a
            # book changes primary or the feed meets a new symbol
            ids = np.full(max([feed.symbol_state(n).id for n in feed.symbols], default=0) + 1,
                          -1, dtype=np.int64)
            for native in feed.symbols:
                key = (c.venue, native)
                t = self.session.tracks.get(key)
                if t is None or t.primary is not c or key in switched or \
                        not self.selected(key):
                    continue
                s = feed.symbol_state(native)
                ids[s.id] = self._id(key, s.book, s.instrument)
            cached = (len(feed.symbols), ids, bool((ids >= 0).all()))
            if not switched:
                self._maps[c.id] = cached
        _n, ids, every = cached
        inst = raw["instrument"].astype(np.int64)
        if every and int(inst.max()) < len(ids):
            raw["instrument"] = ids[inst]
            return raw
        inst = np.where(inst < len(ids), ids[np.minimum(inst, len(ids) - 1)], -1)
        mask = inst >= 0
        if not mask.any():
            return None
        out = raw[mask]
        out["instrument"] = inst[mask].astype(out["instrument"].dtype)
        return out

    def _rebuild(self, buf: Any, key: tuple[str, str], primary: Any, recv_ns: int) -> None:
        """Events that make the BookSet book of ``key`` equal its new primary's book (timed
        by the book's last exchange time, or when there is none the record's receive time)."""
        import numpy as np

        from fastbook import ASK, BID
        from fastbook.codecs import load as load_codec
        from fastbook.codecs._venues import record_snapshot
        from fastbook.events import Action

        self.rebuilds += 1
        book = None
        inst = None
        ts = recv_ns
        if primary is not None and key[1] in primary.feed.symbols:
            s = primary.feed.symbol_state(key[1])
            book, inst = s.book, s.instrument
            ts = s.ts or recv_ns
        elif key not in self._ids and load_codec(key[0]).scales_from_wire:
            return          # no BookSet book yet, and its scales come with its first snapshot
        i = self._id(key, book, inst)
        if book is None or not len(book):
            buf.append(i, int(Action.CLEAR), ts=ts, recv=recv_ns)
            return
        sides, prices, qtys = [], [], []
        for side in (BID, ASK):
            p, q = book.to_arrays(side)
            sides.append(np.full(len(p), side, dtype=np.int64))
            prices.append(p)
            qtys.append(q)
        record_snapshot(buf, i, np.concatenate(sides), np.concatenate(prices),
                        np.concatenate(qtys), ts, recv_ns, 0)

    def _id(self, key: tuple[str, str], book: Any, inst: Any) -> int:
        """The BookSet id of book ``key``, announced at ``book``'s scales on first sight."""
        i = self._ids.get(key)
        if i is not None:
            if book is not None:
                meta = self.instruments.instrument(i)
                if (meta["price_decimals"], meta["qty_decimals"]) != (book.price_decimals,
                                                                        book.qty_decimals):
                    from fastbook.errors import FastbookError

                    raise FastbookError(
                        f"{key[0]} {key[1]}: a connection's book has scales "
                        f"{book.price_decimals}/{book.qty_decimals}, the replay registered "
                        f"{meta['price_decimals']}/{meta['qty_decimals']} decimals")
            return i
        if book is None:
            feed = self.session.rules[key[0]].new_feed([key[1]], self.depth, None, "skip")
            s = feed._sym(key[1])
            book, inst = s.book, s.instrument
        i = int(self.instruments.announce(
            key[1], kind="l2", venue=key[0], price_decimals=book.price_decimals,
            qty_decimals=book.qty_decimals, tick_size=max(1, int(getattr(inst, "tick", 1))),
            lot_size=max(1, int(getattr(inst, "lot", 1))), reuse=False))
        self._ids[key] = i
        return i

    # --- after the run ---------------------------------------------------------------

    def finish(self) -> None:
        """Give every selected book a BookSet book (those that never had one: empty)."""
        for key in self.session.tracks:
            if self.selected(key) and key not in self._ids:
                self._id(key, None, None)

    def book_stats(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Per (venue, native): state, reason and the session's counts, as ``stats()`` has."""
        out = {}
        for key, t in self.session.tracks.items():
            if not self.selected(key):
                continue
            counts = self.session.counts(*key)
            out[key] = {"symbol": t.symbol, "state": t.state.value, "reason": t.reason,
                        "messages": counts.get("messages", 0),
                        "applied": counts.get("applied", 0),
                        "snapshots": counts.get("snapshots", 0),
                        "gaps": counts.get("gaps", 0), "resyncs": counts.get("resyncs", 0),
                        "errors": counts.get("malformed", 0),
                        "checksum_failed": counts.get("checksum_failed", 0),
                        "state_changes": t.state_changes, "counts": counts}
        return out

    def failed(self, exc: Any, events: Any) -> BaseException:
        from fastbook.errors import UpdateError

        return UpdateError(f"{self.name}: the session's events do not apply (a codec bug?): "
                           f"{exc}", exc.index)

    def counts(self) -> dict[str, int]:
        """The books' counters summed, and the records by kind."""
        from collections import Counter

        total: Counter[str] = Counter()
        for b in self.book_stats().values():
            total.update(b["counts"])
        out = dict(total)
        out["records"] = sum(self.records.values())
        for k, v in self.records.items():
            out[f"records_{k}"] = v
        out["connections"] = self.records[OPEN]
        out["truncated_records"] = self.truncated
        out["records_after_until"] = self.after_until
        out["shutdown_closes"] = self.shutdown_closes
        out["records_unknown_connection"] = self.unknown_conn
        out["records_after_close"] = self.after_close
        return out

    def warnings(self) -> list[str]:
        """Cut-short parts, symbols asked for that the recording has not, unsynced books."""
        out = list(self.warnings_)
        if self.unknown_conn:
            out.append(f"{self.name}: {self.unknown_conn:,} record(s) of connections whose "
                       f"open record is not in the recording (an earlier part missing?) were "
                       f"left out")
        if self.wanted is not None:
            known = {t.native for t in self.session.tracks.values()} | \
                {t.symbol for t in self.session.tracks.values()}
            missing = sorted(self.wanted - known)
            if missing:
                out.append(f"{self.name}: no book {', '.join(missing)} in this recording "
                           f"(books: {', '.join(f'{v}:{n}' for v, n in self.session.tracks)})")
        not_live = [f"{v}:{n} {b['state']}" for (v, n), b in self.book_stats().items()
                    if b["state"] != "live"]
        if not_live:
            out.append(f"{len(not_live):,} book(s) not live at the end: {', '.join(not_live)}")
        return out

    def result_fields(self) -> dict[str, Any]:
        self.finish()
        return {"counts": self.counts(), "messages": self.messages, "events": self.events,
                "bytes_": self.bytes, "unknown_types": 0, "notices": [], "notice_counts": {},
                "feed": None, "ts_origin": self.ts_origin}


def _whole_frames(path: str) -> Iterator[bytes]:
    """The decompressed bytes of each complete zstd frame of ``path`` (an unfinished last
    frame, where a crash stopped the writer, is left out)."""
    from fastbook.sources import _zstd_backend

    _name, new, errors = _zstd_backend()
    with open(path, "rb") as f:
        d: Any = None
        out: list[bytes] = []
        data = b""
        while True:
            if not data:
                data = f.read(1 << 20)
                if not data:
                    return
            if d is None:
                d, out = new(), []
            try:
                out.append(d.decompress(data, 1 << 22))
                while not d.eof and not d.needs_input:
                    out.append(d.decompress(b"", 1 << 22))
            except errors as exc:
                from fastbook.errors import DecodeError

                raise DecodeError(f"{path}: corrupt zstd data: {exc}") from None
            data = b""
            if d.eof:
                yield b"".join(out)
                data, d = d.unused_data, None


def _zstd_head(path: str, limit: int = 1 << 20) -> bytes:
    """At most ``limit`` decompressed bytes from the start of a zstd file (frame complete
    or not): enough for a capture's header, whatever the file's length."""
    from fastbook.sources import _zstd_backend

    _name, new, errors = _zstd_backend()
    d = new()
    out: list[bytes] = []
    got = 0
    with open(path, "rb") as f:
        try:
            while got < limit and not d.eof:
                data = f.read(1 << 16)
                if not data:
                    break
                piece = d.decompress(data, limit - got)
                while True:
                    out.append(piece)
                    got += len(piece)
                    if got >= limit or d.eof or d.needs_input:
                        break
                    piece = d.decompress(b"", limit - got)
        except errors:
            pass
    return b"".join(out)


class _Chunks(io.RawIOBase):
    """A readable stream of the bytes an iterator of chunks gives."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._it = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not len(self._buf):
            nxt = next(self._it, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        k = min(len(b), len(self._buf))
        b[:k] = self._buf[:k]
        self._buf = self._buf[k:]
        return k


def summary_lines(result: Any) -> list[str]:
    """The summary of a live recording's replay: records, then one line per book."""
    c = result.counts
    lines = [f"{c.get('records', 0):,} records ({result.bytes / 1e6:,.1f} MB) of a live "
             f"recording: {c.get('records_recv', 0):,} received, "
             f"{c.get('records_rest', 0):,} REST, {c.get('connections', 0):,} connections, "
             f"{c.get('records_close', 0):,} closes"
             + (f" ({c['shutdown_closes']:,} of them the run's shutdown, not applied)"
                if c.get("shutdown_closes") else "") + f"; {result.seconds:.2f} s",
             f"{len(result.books):,} books, {result.events:,} book events"]
    for (venue, native), b in (result.book_stats or {}).items():
        why = f" ({b['reason']})" if b["reason"] else ""
        lines.append(f"  {venue}:{native} {b['state']}{why}: messages {b['messages']:,}, "
                     f"applied {b['applied']:,}, gaps {b['gaps']:,}, resyncs {b['resyncs']:,}, "
                     f"errors {b['errors']:,}")
    return lines


def top_lines(result: Any, n: int) -> list[str]:
    """The top of the ``n`` books with the most applied messages, one line each."""
    from fastbook import ASK, BID

    stats = result.book_stats or {}
    lines = []
    for (venue, native), b in sorted(stats.items(), key=lambda kv: -kv[1]["applied"])[:n]:
        book = result.book(native, venue=venue)
        text = [f"{book.format_qty(q)} @ {book.format_price(p)}" if lvl else "-"
                for lvl in (book.best_bid(), book.best_ask()) for p, q in [lvl or (0, 0)]]
        lines.append(f"  {venue + ':' + native:<24} {b['state']:<11} {book.depth(BID):>5,} / "
                     f"{book.depth(ASK):<5,} levels  bid {text[0]:<28} ask {text[1]}")
    return lines
