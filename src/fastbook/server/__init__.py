"""The quote server: top-10 levels and the spread of every instrument over WebSocket and gRPC.

::

    from fastbook.server import Replay, Server

    server = Server(Replay("COINBASE.ws.28.0.gz", speed=10), ["coinbase-exchange:BTC-USD"],
                    ws_port=8765, grpc_port=50051)
    async with server:                  # binds, starts the source
        await server.wait()             # the replay's end (a live source runs until stopped)

One writer (the source, on the server's event loop) publishes each change of
a book into a :class:`fastbook.board.Board`, reads that version back once,
and hands the same object to every subscriber; each wire format is encoded
once per version and the same bytes go to every client. Each client keeps one
latest-value slot per instrument, so a slow client is conflated (counted) and
never slows the writer or the other clients. ``docs/server.md`` has the
protocols, the guarantees and the measurements.

Sources: :class:`Replay` (captures at a chosen speed), :class:`Live` (the live
driver, or a feed already open), or ``None`` (call :meth:`Server.publish`
yourself, on the server's loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from fastbook.server._hub import STATE_NAMES, Hub, Subscriber, Version, state_code
from fastbook.server._sources import Live, Replay, split_instrument

__all__ = ["STATE_NAMES", "Hub", "Live", "Replay", "Server", "Subscriber", "Version",
           "split_instrument", "state_code"]


class Server:
    """Serve ``instruments`` from ``source`` on WebSocket ``ws_port`` and gRPC ``grpc_port``.

    Parameters
    ----------
    source : Replay, Live, fastbook.live.LiveBooks or None
        What writes the books (a ``LiveBooks`` already open is wrapped in
        ``Live(feed=...)``); None: the caller publishes with :meth:`publish`.
    instruments : iterable of str
        ``"VENUE:SYMBOL"`` names; for a live source, specs as :func:`fastbook.live`
        takes them (the server lists them with the venue's full name).
    ws_port, grpc_port : int or None
        Ports to listen on (0: an ephemeral one, read back from the attributes
        after :meth:`start`; None: no such endpoint). gRPC needs the ``[grpc]`` extra.
    host : str
        The address both listen on (loopback by default).
    depth : int
        Levels per side served (the board's depth).
    ws_options : dict, optional
        Passed to the WebSocket endpoint: ``write_limit`` (bytes buffered per
        client before its sender waits, 64 KiB), ``ping_interval`` (20 s),
        ``prebuilt_frames`` (True: write the frames built once per version
        straight to each transport; False: ``websockets``' own ``send``),
        ``send_buffer`` (the kernel send buffer per client, 64 KiB, so a slow
        client is conflated rather than queued; None: the OS default).
    """

    def __init__(self, source: Any, instruments: Iterable[str], *, ws_port: int | None = 0,
                 grpc_port: int | None = None, host: str = "127.0.0.1",
                 depth: int = 10, ws_options: dict[str, Any] | None = None) -> None:
        if source is not None and not isinstance(source, (Replay, Live)):
            if not hasattr(source, "on_notice"):
                raise TypeError(f"source must be Replay(...), Live(...), a LiveBooks feed or "
                                f"None, not {type(source).__name__}")
            source = Live(feed=source)
        if ws_port is None and grpc_port is None:
            raise ValueError("the server needs ws_port or grpc_port (or both)")
        for name, port in (("ws_port", ws_port), ("grpc_port", grpc_port)):
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} {port} is not a port number (0 to 65535; 0: any)")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, not {depth}")
        names = list(instruments) if not isinstance(instruments, str) else [instruments]
        self.source = source
        self.specs = names
        if isinstance(source, Live):
            names = Live.names(names)
        elif source is not None:
            source.check(names)
        self.hub = Hub(names, depth)
        self.host = host
        self.ws_options = dict(ws_options or {})
        self._ws_port, self._grpc_port = ws_port, grpc_port
        self.ws: Any = None
        self.grpc: Any = None
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    @property
    def instruments(self) -> list[str]:
        return self.hub.instruments

    @property
    def ws_port(self) -> int | None:
        return self.ws.port if self.ws is not None else self._ws_port

    @property
    def grpc_port(self) -> int | None:
        return self.grpc.port if self.grpc is not None else self._grpc_port

    async def start(self) -> Server:
        """Bind the endpoints, then start the source (on the running loop)."""
        try:
            if self._ws_port is not None:
                from fastbook.server._ws import WsEndpoint

                self.ws = WsEndpoint(self.hub, self.host, self._ws_port, **self.ws_options)
                await self.ws.start()
            if self._grpc_port is not None:
                from fastbook.server._grpc import GrpcEndpoint

                self.grpc = GrpcEndpoint(self.hub, self.host, self._grpc_port)
                await self.grpc.start()
        except BaseException:
            await self.stop()
            raise
        if self.source is not None:
            self._task = asyncio.get_running_loop().create_task(self._run_source())
        return self

    async def _run_source(self) -> None:
        try:
            await self.source.run(self.hub, self.specs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:            # kept for wait() and stats(); clients stay served
            self.error = exc

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the source to finish (a replay's end); re-raise its error if it failed."""
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        if self.error is not None:
            raise self.error

    async def stop(self) -> None:
        """Stop the source, close every client and the endpoints."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for sub in list(self.hub.subscribers):
            sub.close()
        if self.grpc is not None:
            await self.grpc.stop()
        if self.ws is not None:
            await self.ws.stop()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def slot(self, instrument: str) -> int:
        """The slot of ``instrument`` (KeyError naming the known ones)."""
        slot = self.hub.slot_of.get(instrument)
        if slot is None:
            raise KeyError(f"unknown instrument {instrument!r}: this server has "
                           f"{', '.join(self.hub.instruments[:5])}"
                           f"{', ...' if len(self.hub.instruments) > 5 else ''}")
        return slot

    def publish(self, instrument: str | int, book: Any, state: Any = "live",
                ts_ns: int = 0) -> Version:
        """Publish ``book`` as ``instrument``'s next version (call on the server's loop)."""
        slot = instrument if isinstance(instrument, int) else self.slot(instrument)
        return self.hub.publish(slot, book, state, ts_ns)

    def read(self, instrument: str | int) -> Any:
        """A consistent :class:`fastbook.board.Snapshot` of ``instrument``, from any thread.

        Reads the board, not the hub, so it takes no lock and never waits for the
        writer; ``version`` is the ``seq`` clients see for it.
        """
        slot = instrument if isinstance(instrument, int) else self.slot(instrument)
        return self.hub.board.read(slot)

    def stats(self) -> dict[str, Any]:
        """The hub's counts, each endpoint's, and the source's."""
        out: dict[str, Any] = self.hub.stats()
        if self.ws is not None:
            out["ws"] = self.ws.stats()
        if self.grpc is not None:
            out["grpc"] = self.grpc.stats()
        if self.source is not None:
            out["source"] = self.source.stats()
        if self.error is not None:
            out["error"] = f"{type(self.error).__name__}: {self.error}"
        return out
