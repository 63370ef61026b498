"""The quote server's WebSocket JSON endpoint (the ``websockets`` library, ``[live]`` extra).

Requests are JSON text frames, one object each:

* ``{"op": "subscribe", "instruments": ["venue:SYM", ...], "decimals": false}``:
  the latest quote of each at once, then one per change (conflated per
  instrument for a client that reads slower than the books change);
* ``{"op": "unsubscribe", "instruments": [...]}``;
* ``{"op": "snapshot", "instrument": "venue:SYM", "decimals": false}``: one
  quote, the latest;
* ``{"op": "list"}``: ``{"type": "instruments", "instruments": [...]}``.

A request the server cannot take closes the connection with a code and a
reason saying what was wrong (:data:`CLOSE_CODES`); the server goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from fastbook._extras import missing
from fastbook.server._hub import Hub, Subscriber

__all__ = ["CLOSE_CODES", "WsEndpoint"]

#: close code -> what it means
CLOSE_CODES = {
    1003: "a binary frame: requests are JSON text",
    1007: "malformed request: not JSON",
    1008: "invalid request: not an object, unknown op, missing or wrong fields, nested "
          "too deeply",
    1009: "request too large",
    4404: "unknown instrument",
}
MAX_REQUEST = 64 << 10


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def close_reason(text: str) -> str:
    """``text`` cut to the 123 bytes of UTF-8 a close frame carries."""
    data = text.encode()
    if len(data) <= 123:
        return text
    return data[:120].decode(errors="ignore") + "..."


class WsEndpoint:
    """Serves ``hub`` over WebSocket on ``host:port`` (0: an ephemeral port, see ``port``)."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = 0, *,
                 write_limit: int = 64 << 10, ping_interval: float | None = 20.0,
                 prebuilt_frames: bool = True, send_buffer: int | None = 64 << 10) -> None:
        self.hub = hub
        self.prebuilt_frames = prebuilt_frames
        self.send_buffer = send_buffer
        self.host = host
        self.port = port
        self.write_limit = write_limit
        self.ping_interval = ping_interval
        self.refused: dict[int, int] = {}
        self.connections = 0
        self.open = 0
        self._server: Any = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        try:
            from websockets.asyncio.server import serve
        except ImportError:
            raise missing("live", "the WebSocket quote server", module="websockets") from None
        self._server = await serve(self._handle, self.host, self.port, compression=None,
                                   max_size=MAX_REQUEST, write_limit=self.write_limit,
                                   ping_interval=self.ping_interval, logger=_quiet())
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.connections += 1
        self.open += 1
        if self.send_buffer:
            _limit_send_buffer(ws, self.send_buffer)
        sub: Subscriber | None = None
        sender: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                req = self._parse(raw)
                op = req["op"]
                if op == "list":
                    await ws.send(json.dumps({"type": "instruments",
                                              "instruments": self.hub.instruments}))
                elif op == "snapshot":
                    slot = self._slots(req, "instrument")[0]
                    await ws.send(self.hub.current(slot).json(_flag(req)), text=True)
                elif op == "subscribe":
                    slots = self._slots(req, "instruments")
                    if sub is None:
                        sub = self.hub.subscribe(slots, decimals=_flag(req),
                                                 name=f"ws-{next(self._ids)}")
                        send = self._send_frames if self.prebuilt_frames else self._send
                        sender = asyncio.get_running_loop().create_task(send(ws, sub))
                    else:
                        sub.add(slots)
                elif op == "unsubscribe":
                    if sub is not None:
                        sub.remove(self._slots(req, "instruments"))
        except _Refused as exc:
            self.refused[exc.code] = self.refused.get(exc.code, 0) + 1
            await ws.close(exc.code, close_reason(exc.reason))
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:   # the client's request too big
                self.refused[1009] = self.refused.get(1009, 0) + 1
        finally:
            self.open -= 1
            if sub is not None:
                sub.close()
            if sender is not None:
                sender.cancel()
                try:
                    await sender
                except (asyncio.CancelledError, ConnectionClosed):
                    pass

    async def _send(self, ws: Any, sub: Subscriber) -> None:
        decimals = sub.decimals
        send = ws.send
        while True:
            batch = await sub.take()
            if not batch:
                return
            for v in batch:
                await send(v.json(decimals), text=True)
                sub.delivered += 1

    async def _send_frames(self, ws: Any, sub: Subscriber) -> None:
        """Write each pending version's prebuilt frame to the transport, all in one call.

        What ``ws.send`` does per message (state check, framing, write, drain)
        done once per batch: the frames were built once for every client
        (:meth:`Version.ws_frame`), and ``writelines`` hands the batch to the
        kernel in one system call. Flow control is the library's own
        (``drain`` waits while the transport is over its write limit), and
        nothing is written once the connection is no longer open.
        """
        from websockets.protocol import State

        decimals = sub.decimals
        transport, protocol = ws.transport, ws.protocol
        while True:
            batch = await sub.take()
            if not batch or protocol.state is not State.OPEN:
                return
            transport.writelines([v.ws_frame(decimals) for v in batch])
            sub.delivered += len(batch)
            await ws.drain()

    def _parse(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, str):
            raise _Refused(1003, "binary frames are not requests: send a JSON text frame "
                                 "such as {\"op\": \"list\"}")
        try:
            req = json.loads(raw)
        except ValueError as exc:
            raise _Refused(1007, f"malformed request: not JSON ({exc})") from None
        except RecursionError:
            # valid JSON nested deeper than the decoder's recursion limit (a 64 KiB frame
            # holds 65,000 levels): refused like any other unusable request, instead of
            # escaping the handler and closing the connection with an internal error
            raise _Refused(1008, "invalid request: nested too deeply") from None
        if not isinstance(req, dict):
            raise _Refused(1008, f"invalid request: a JSON object with \"op\" expected, "
                                 f"not {type(req).__name__}")
        op = req.get("op")
        if op not in ("subscribe", "unsubscribe", "snapshot", "list"):
            raise _Refused(1008, f"invalid request: op {op!r} is not subscribe, unsubscribe, "
                                 f"snapshot or list")
        decimals = req.get("decimals", False)
        if not isinstance(decimals, bool):
            raise _Refused(1008, f"invalid request: decimals must be true or false, "
                                 f"not {decimals!r}")
        return req

    def _slots(self, req: dict[str, Any], key: str) -> list[int]:
        value = req.get(key)
        names = [value] if key == "instrument" else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str)
                                                               for n in names):
            want = "a string" if key == "instrument" else "a non-empty list of strings"
            raise _Refused(1008, f"invalid request: {req['op']} needs {key!r}: {want}, "
                                 f"not {value!r}"[:200])
        out = []
        for name in names:
            slot = self.hub.slot_of.get(name)
            if slot is None:
                raise _Refused(4404, f"unknown instrument {name!r}; "
                                     f"{{\"op\": \"list\"}} names the {len(self.hub.slot_of)}")
            out.append(slot)
        return out

    def stats(self) -> dict[str, Any]:
        return {"port": self.port, "connections": self.connections, "open": self.open,
                "refused": dict(self.refused)}


def _limit_send_buffer(ws: Any, size: int) -> None:
    """Cap the kernel's send buffer of ``ws``'s socket at ``size`` bytes (Linux doubles it).

    Loopback and LAN sockets autotune their send buffers to megabytes, and
    quotes written into them are past conflation: a client that reads slower
    than the books change would receive a queue seconds old instead of the
    latest versions. With the buffer capped, the transport pauses soon, the
    sender waits, and the newest version replaces what the client has not
    taken (``conflated``).
    """
    import socket

    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:                     # not a TCP socket (or refused): keep the default
            pass


def _flag(req: dict[str, Any]) -> bool:
    return bool(req.get("decimals", False))


def _quiet() -> Any:
    """A logger for websockets that keeps refused handshakes and client errors off stderr."""
    import logging

    log = logging.getLogger("fastbook.server.ws")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log
