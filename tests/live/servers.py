"""Small real websocket servers on 127.0.0.1 for the live driver's own tests.

``CaptureServer`` plays the received frames of a real capture to every
connection that subscribes, then keeps the connection open (or closes it,
or stops speaking, on command). The loopback exchange simulator
(``fastbook.testing``) is the full venue model; these servers pin down the
driver against real recorded bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastbook.capture import read_capture


async def until(pred: Any, timeout: float = 15.0) -> bool:
    """Poll ``pred()`` every 10 ms until it is true (True) or ``timeout`` s pass (False)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return False


def capture_frames(path: str) -> list[str]:
    return [r.payload.decode() for r in read_capture(path) if r.kind == "recv"]


class CaptureServer:
    """Serves ``frames`` to each connection after its first (subscribe) message."""

    def __init__(self, frames: list[str], *, hold: float = 30.0, silent: bool = False,
                 close_after: int | None = None) -> None:
        self.frames = frames
        self.hold = hold
        self.silent = silent
        self.close_after = close_after
        self.connections = 0
        self.received: list[str] = []
        self.sockets: list[Any] = []
        self.sent = 0

    async def handler(self, ws: Any) -> None:
        self.connections += 1
        self.sockets.append(ws)
        try:
            first = await ws.recv()
            self.received.append(first)
            if self.silent:
                await self._hold(ws)
                return
            for i, f in enumerate(self.frames):
                if self.close_after is not None and i == self.close_after and \
                        self.connections == 1:
                    await ws.close(1011, "test: closed mid-stream")
                    return
                await ws.send(f)
                self.sent += 1
            await self._hold(ws)
        except Exception:
            pass

    async def _hold(self, ws: Any) -> None:
        try:
            await asyncio.wait_for(ws.wait_closed(), self.hold)
        except asyncio.TimeoutError:
            pass

    async def __aenter__(self) -> CaptureServer:
        from websockets.asyncio.server import serve

        self._server = await serve(self.handler, "127.0.0.1", 0).__aenter__()
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 10)
