"""The quote server's gRPC endpoint (``grpc.aio``; the ``[grpc]`` extra).

The service is ``fastbook.server.v1.Quotes`` of ``fastbook.proto``. Handlers
are registered with no response serializer: they return the bytes each
:class:`fastbook.server._hub.Version` serialized once, so a hundred streams of
one instrument cost one protobuf encoding per version. Requests are parsed in
the handler, so bytes that are not a request message get ``INVALID_ARGUMENT``
(grpcio's own deserializer failure would be ``INTERNAL``).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

from fastbook._extras import missing
from fastbook.server._hub import Hub
from fastbook.server._proto import SERVICE, messages

__all__ = ["GrpcEndpoint"]


def _grpc() -> Any:
    try:
        import grpc  # type: ignore[import-untyped,unused-ignore]
        import grpc.aio  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise missing("grpc", "the gRPC quote server", module="grpcio") from None
    return grpc


class GrpcEndpoint:
    """Serves ``hub`` over gRPC on ``host:port`` (0: an ephemeral port, see ``port``)."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = 0) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self.refused: dict[str, int] = {}
        self.streams = 0
        self.open = 0
        self._server: Any = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        grpc = _grpc()
        m = messages()
        self._msgs = m
        handlers = {
            "Snapshot": grpc.unary_unary_rpc_method_handler(self._snapshot),
            "Subscribe": grpc.unary_stream_rpc_method_handler(self._subscribe),
            "List": grpc.unary_unary_rpc_method_handler(self._list),
        }
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE,
                                                                             handlers),))
        port = server.add_insecure_port(f"{self.host}:{self.port}")
        if port == 0:
            raise OSError(f"gRPC quote server: cannot listen on {self.host}:{self.port}")
        self.port = port
        await server.start()
        self._server = server

    async def stop(self, grace: float = 0.5) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _refuse(self, context: Any, code: str, text: str) -> None:
        grpc = _grpc()
        self.refused[code] = self.refused.get(code, 0) + 1
        await context.abort(getattr(grpc.StatusCode, code), text)

    async def _parse(self, name: str, raw: bytes, context: Any) -> Any:
        from google.protobuf.message import DecodeError  # type: ignore[import-untyped,unused-ignore]

        try:
            return self._msgs[name].FromString(raw)
        except DecodeError as exc:
            await self._refuse(context, "INVALID_ARGUMENT",
                               f"malformed request: not a {name} message ({exc})")

    async def _slot(self, name: str, context: Any) -> int:
        slot = self.hub.slot_of.get(name)
        if slot is None:
            await self._refuse(context, "NOT_FOUND",
                               f"unknown instrument {name!r}; List names the "
                               f"{len(self.hub.slot_of)} this server has")
        return slot                             # type: ignore[return-value]

    async def _snapshot(self, raw: bytes, context: Any) -> bytes:
        req = await self._parse("SnapshotRequest", raw, context)
        if not req.instrument:
            await self._refuse(context, "INVALID_ARGUMENT",
                               "Snapshot needs an instrument (List names them)")
        slot = await self._slot(req.instrument, context)
        return self.hub.current(slot).protobuf(req.decimals)

    async def _list(self, raw: bytes, context: Any) -> bytes:
        await self._parse("ListRequest", raw, context)
        return bytes(self._msgs["InstrumentList"](
            instruments=self.hub.instruments).SerializeToString())

    async def _subscribe(self, raw: bytes, context: Any) -> AsyncIterator[bytes]:
        req = await self._parse("SubscribeRequest", raw, context)
        if not req.instruments:
            await self._refuse(context, "INVALID_ARGUMENT",
                               "Subscribe needs at least one instrument (List names them)")
        slots = [await self._slot(n, context) for n in req.instruments]
        decimals = req.decimals
        sub = self.hub.subscribe(slots, decimals=decimals, name=f"grpc-{next(self._ids)}")
        self.streams += 1
        self.open += 1
        try:
            while True:
                batch = await sub.take()
                if not batch:
                    return
                for v in batch:
                    yield v.protobuf(decimals)
                    sub.delivered += 1
        finally:
            self.open -= 1
            sub.close()

    def stats(self) -> dict[str, Any]:
        return {"port": self.port, "streams": self.streams, "open": self.open,
                "refused": dict(self.refused)}
