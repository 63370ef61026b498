"""Websocket transports: websockets (``[live]``) and picows (``[fast]``), one small interface.

A transport connects to a URL and calls ``on_frame(payload, recv_ns)`` for each
complete message as soon as it is read (``recv_ns`` from :func:`time.time_ns`,
taken before anything else happens to the frame), and ``on_close(reason)``
once when the connection ends for any reason. ``send(text)`` writes a text
frame; ``close()`` ends the connection. Protocol pings are answered by the
library (Binance's server pings must be echoed); application pings are the
driver's.

``backend="auto"`` takes picows when it is installed, else websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from fastbook._extras import missing

__all__ = ["BACKENDS", "Transport", "backend_name", "connect"]

BACKENDS = ("websockets", "picows")

OnFrame = Callable[[Any, int], None]
OnClose = Callable[[str], None]

#: Largest message accepted (a Binance 5000-level REST body is ~250 KB; frames are smaller)
MAX_MESSAGE = 16 << 20


def backend_name(backend: str = "auto") -> str:
    """The transport ``backend`` resolves to (``auto``: picows if installed, else websockets)."""
    if backend == "auto":
        try:
            import picows  # noqa: F401
            return "picows"
        except ImportError:
            return "websockets"
    if backend not in BACKENDS:
        raise ValueError(f"transport must be 'auto' or one of {', '.join(BACKENDS)}, "
                         f"not {backend!r}")
    return backend


class Transport:
    """A connected websocket (see the module docstring)."""

    backend = ""

    def __init__(self, url: str, on_frame: OnFrame, on_close: OnClose) -> None:
        self.url = url
        self.on_frame = on_frame
        self.on_close = on_close
        self.closed = False
        self.close_reason = ""

    def _closed(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self.on_close(reason)

    def send(self, text: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _Websockets(Transport):
    backend = "websockets"

    async def start(self, open_timeout: float) -> None:
        try:
            from websockets.asyncio.client import connect as ws_connect
        except ImportError:
            raise missing("live", "the live driver's websocket transport",
                          module="websockets") from None
        self._ws = await ws_connect(self.url, open_timeout=open_timeout, max_size=MAX_MESSAGE,
                                    compression=None, ping_interval=20, ping_timeout=20,
                                    max_queue=None, close_timeout=2)
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        ws = self._ws
        on_frame = self.on_frame
        now = time.time_ns
        reason = "closed"
        try:
            while True:
                msg = await ws.recv()
                on_frame(msg, now())
        except asyncio.CancelledError:
            reason = "closed by the driver"
            raise
        except Exception as exc:          # ConnectionClosed and its kin
            rcvd = getattr(exc, "rcvd", None)
            reason = f"{type(exc).__name__}: {exc}" if rcvd is None else \
                f"close {rcvd.code} {rcvd.reason}".strip()
        finally:
            self._closed(reason)

    def send(self, text: str) -> None:
        if self.closed:
            return
        asyncio.get_running_loop().create_task(self._send(text))

    async def _send(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except Exception:                 # the reader sees the close and reports it
            pass

    async def close(self) -> None:
        task = self._task
        try:
            await asyncio.wait_for(self._ws.close(), 3)
        except Exception:
            pass
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._closed("closed by the driver")


class _Picows(Transport):
    backend = "picows"

    async def start(self, open_timeout: float) -> None:
        try:
            import picows
        except ImportError:
            raise missing("fast", "the picows transport", module="picows") from None
        outer = self
        text = picows.WSMsgType.TEXT
        binary = picows.WSMsgType.BINARY
        cont = picows.WSMsgType.CONTINUATION
        close = picows.WSMsgType.CLOSE
        now = time.time_ns

        class Listener(picows.WSListener):
            parts: list[bytes] | None = None
            part_text = False

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                t = now()
                kind = frame.msg_type
                if kind == text and frame.fin:
                    outer.on_frame(frame.get_payload_as_utf8_text(), t)
                elif kind == binary and frame.fin:
                    outer.on_frame(frame.get_payload_as_bytes(), t)
                elif kind in (text, binary):       # the first part of a fragmented message
                    self.parts = [frame.get_payload_as_bytes()]
                    self.part_text = kind == text
                elif kind == cont and self.parts is not None:
                    self.parts.append(frame.get_payload_as_bytes())
                    if frame.fin:
                        body = b"".join(self.parts)
                        self.parts = None
                        outer.on_frame(body.decode("utf-8", "replace") if self.part_text
                                       else body, t)
                elif kind == close:
                    outer._close_reason = f"close {frame.get_close_code()} " \
                        f"{frame.get_close_message() or b''!r}"
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()

            def on_ws_disconnected(self, transport: Any) -> None:
                outer._closed(outer._close_reason or "disconnected")

        self._close_reason = ""
        self._text = text
        # picows's ws_connect, cancelled during its handshake (a feed stopped while it
        # connects), leaves the socket it opened unclosed: connect in a task of its own,
        # and on a cancel let it finish briefly and close what it opened
        opening = asyncio.ensure_future(picows.ws_connect(
            Listener, self.url, websocket_handshake_timeout=open_timeout,
            enable_auto_ping=True, auto_ping_idle_timeout=20, auto_ping_reply_timeout=20,
            max_frame_size=MAX_MESSAGE))
        try:
            self._tr, self._listener = await asyncio.shield(opening)
        except asyncio.CancelledError:
            try:
                tr, _ = await asyncio.wait_for(opening, 2)
            except BaseException:
                pass    # it failed (or did not finish in time): nothing more to close
            else:
                tr.disconnect()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(tr.wait_disconnected(), 1)
            raise

    def send(self, text: str) -> None:
        if not self.closed:
            self._tr.send(self._text, text.encode())

    async def close(self) -> None:
        if not self.closed:
            self._close_reason = "closed by the driver"
            try:
                self._tr.send_close()
            except Exception:
                pass
            self._tr.disconnect()
            try:
                await asyncio.wait_for(self._tr.wait_disconnected(), 3)
            except Exception:
                pass
        self._closed("closed by the driver")


async def connect(url: str, on_frame: OnFrame, on_close: OnClose, *, backend: str = "auto",
                  open_timeout: float = 10.0) -> Transport:
    """Open a websocket to ``url`` with ``backend``; raises on failure to connect."""
    cls = _Picows if backend_name(backend) == "picows" else _Websockets
    t = cls(url, on_frame, on_close)
    await t.start(open_timeout)
    return t
