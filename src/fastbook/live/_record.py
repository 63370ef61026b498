"""Recording a live run, and replaying a recording through the same session.

:class:`LiveRecorder` writes every frame, sent message, REST snapshot body and
connection event of a live run, with its receive time and connection id, to
fastbook's capture format (``docs/captures.md``). An ``open`` record's payload
is a small JSON object naming what the connection carried (``{"venue",
"symbols", "standby"}``), and a REST record carries the id of the connection
whose codec asked for it, so :func:`replay_recording` can hand every record to
a fresh :class:`~fastbook.live._session.Session` in the order the live one had
them: the books, states and counts come out the same (a test says so).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from fastbook.capture import CLOSE, OPEN, RECEIVED, REST, SENT, CaptureWriter

__all__ = ["LiveRecorder", "replay_recording"]


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

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _records(source: Any) -> Iterable[Any]:
    if os.path.isdir(source):
        from fastbook.live._recorder import read_recording

        return read_recording(source)   # type: ignore[no-any-return]
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
    recording's metadata when :func:`fastbook.live.live` wrote it).
    """
    from fastbook.live import parse_specs
    from fastbook.live._session import Session

    records = iter(_records(source))
    pending = []
    specs: list[tuple[str, str, str]] = []
    # the books are those of the open records; collect them before the first frame
    for rec in records:
        pending.append(rec)
        if rec.kind == OPEN:
            info = json.loads(rec.payload or b"{}")
            for native in info.get("symbols", []):
                spec = (info["venue"], native, native)
                if spec not in specs:
                    specs.append(spec)
        elif rec.kind == RECEIVED:
            break
    if session is None:
        session = Session(parse_specs([f"{v}:{n}" for v, n, _ in specs]) if specs else [],
                          depth=depth, stale_after_s=stale_after_s, latency=False, **options)

    def run(rec: Any) -> None:
        if until_ns is not None and rec.recv_ns > until_ns:
            return
        kind = rec.kind
        if kind == RECEIVED:
            payload = rec.payload if rec.flags & 1 else rec.payload.decode("utf-8", "replace")
            session.received(rec.conn, payload, rec.recv_ns)
        elif kind == OPEN:
            info = json.loads(rec.payload or b"{}")
            session.open(rec.conn, info["venue"], info["symbols"], rec.url, rec.recv_ns,
                         standby=bool(info.get("standby")))
        elif kind == REST:
            from fastbook.capture import rest_symbol

            native = rest_symbol(rec.url)
            if native is not None:
                session.rest(rec.conn, native, rec.payload, rec.recv_ns)
        elif kind == CLOSE:
            session.closed(rec.conn, rec.payload.decode("utf-8", "replace"), rec.recv_ns)
        elif kind == SENT:
            pass
        session.actions.clear()

    for rec in pending:
        run(rec)
    for rec in records:
        run(rec)
    return session
