"""Python clients of the quote server, one per protocol, with the same API.

::

    from fastbook.server.client import connect

    async with connect("127.0.0.1:8765") as c:              # WebSocket JSON
        print(await c.instruments())
        q = await c.snapshot("coinbase-exchange:BTC-USD")
        async for q in c.subscribe(["coinbase-exchange:BTC-USD"]):
            print(q.seq, q.state, q.best_bid, q.best_ask, q.spread)

    async with connect("127.0.0.1:50051", grpc=True) as c:  # gRPC ([grpc] extra)
        ...

A request the server refuses raises :class:`QuoteServerError` with the
WebSocket close code or the gRPC status name, and the server's words.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastbook._extras import missing
from fastbook.errors import FastbookError

__all__ = ["GrpcClient", "Quote", "QuoteServerError", "WsClient", "connect"]


class QuoteServerError(FastbookError, ConnectionError):
    """The server refused a request or closed the stream: ``code`` (WebSocket close code,
    or the gRPC status name such as ``"NOT_FOUND"``) and ``reason`` say why."""

    def __init__(self, code: int | str, reason: str) -> None:
        super().__init__(f"quote server refused the request ({code}): {reason}")
        self.code = code
        self.reason = reason


@dataclass
class Quote:
    """One quote: the top levels of one instrument at board version ``seq``.

    Prices and quantities are fixed-point integers at ``price_scale`` /
    ``qty_scale`` decimals; ``*_text`` hold the exact decimal strings when the
    subscription asked for them. ``received_ns`` is the client's clock when it
    decoded the message (``received_ns - publish_ns`` is the publish-to-client
    latency on one machine).
    """

    instrument: str
    seq: int
    state: str
    ts_ns: int
    publish_ns: int
    price_scale: int
    qty_scale: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    spread: int | None
    received_ns: int = 0
    bids_text: list[tuple[str, str]] = field(default_factory=list)
    asks_text: list[tuple[str, str]] = field(default_factory=list)
    spread_text: str | None = None

    @property
    def best_bid(self) -> tuple[int, int] | None:
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> tuple[int, int] | None:
        return self.asks[0] if self.asks else None

    @classmethod
    def from_json(cls, data: str | bytes) -> Quote:
        """Decode the WebSocket endpoint's quote message."""
        d = json.loads(data)
        now = time.time_ns()
        if d.get("type") != "quote":
            raise ValueError(f"not a quote message: {str(d)[:80]}")
        return cls(d["instrument"], d["seq"], d["state"], d["ts_ns"], d["publish_ns"],
                   d["price_scale"], d["qty_scale"], [(p, q) for p, q in d["bids"]],
                   [(p, q) for p, q in d["asks"]], d["spread"], now,
                   [(p, q) for p, q in d.get("bids_text", ())],
                   [(p, q) for p, q in d.get("asks_text", ())], d.get("spread_text"))

    @classmethod
    def from_protobuf(cls, data: bytes) -> Quote:
        """Decode the gRPC endpoint's ``Quote`` message."""
        from fastbook.server._hub import STATE_NAMES
        from fastbook.server._proto import messages

        m = messages()["Quote"].FromString(data)
        now = time.time_ns()
        return cls(m.instrument, m.seq, STATE_NAMES.get(m.state, "unknown"), m.ts_ns,
                   m.publish_ns, m.price_scale, m.qty_scale,
                   list(zip(m.bid_prices, m.bid_qtys, strict=True)),
                   list(zip(m.ask_prices, m.ask_qtys, strict=True)),
                   m.spread if m.has_spread else None, now,
                   list(zip(m.bid_prices_text, m.bid_qtys_text, strict=True)),
                   list(zip(m.ask_prices_text, m.ask_qtys_text, strict=True)),
                   m.spread_text or None)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"server address {address!r} is not HOST:PORT (e.g. 127.0.0.1:8765)")
    return host, int(port)


class WsClient:
    """A client of the WebSocket JSON endpoint (``[live]`` extra: websockets).

    One connection; :meth:`subscribe` streams on it, so take snapshots on
    another client while a subscription runs.
    """

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        host, port = _host_port(address)
        self.url = f"ws://{host}:{port}"
        self.timeout = timeout
        self._ws: Any = None

    async def __aenter__(self) -> WsClient:
        try:
            from websockets.asyncio.client import connect as ws_connect
        except ImportError:
            raise missing("live", "the WebSocket quote client", module="websockets") from None
        self._ws = await ws_connect(self.url, compression=None, open_timeout=self.timeout,
                                    max_size=4 << 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def request(self, message: Any) -> None:
        """Send one request (a dict as JSON, or text/bytes as they are)."""
        if isinstance(message, dict):
            message = json.dumps(message)
        await self._ws.send(message)

    async def _recv(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self._ws.recv()        # type: ignore[no-any-return]
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise QuoteServerError(rcvd.code if rcvd is not None else 1006,
                                   rcvd.reason if rcvd is not None else
                                   "the connection closed without a close frame") from None

    async def instruments(self) -> list[str]:
        await self.request({"op": "list"})
        return list(json.loads(await self._recv())["instruments"])

    async def snapshot(self, instrument: str, *, decimals: bool = False) -> Quote:
        await self.request({"op": "snapshot", "instrument": instrument, "decimals": decimals})
        return Quote.from_json(await self._recv())

    async def subscribe(self, instruments: Iterable[str] | str, *,
                        decimals: bool = False) -> AsyncIterator[Quote]:
        """The latest quote of each instrument, then one per change (until closed)."""
        names = [instruments] if isinstance(instruments, str) else list(instruments)
        await self.request({"op": "subscribe", "instruments": names, "decimals": decimals})
        while True:
            yield Quote.from_json(await self._recv())


class GrpcClient:
    """A client of the gRPC endpoint (``[grpc]`` extra)."""

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        _host_port(address)
        self.address = address
        self.timeout = timeout
        self._channel: Any = None

    async def __aenter__(self) -> GrpcClient:
        try:
            import grpc.aio  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise missing("grpc", "the gRPC quote client", module="grpcio") from None
        from fastbook.server._proto import SERVICE, messages

        self._m = messages()
        ch = self._channel = grpc.aio.insecure_channel(self.address)
        ident = bytes
        self._snapshot = ch.unary_unary(f"/{SERVICE}/Snapshot",
                                        request_serializer=_serialize,
                                        response_deserializer=ident)
        self._list = ch.unary_unary(f"/{SERVICE}/List", request_serializer=_serialize,
                                    response_deserializer=self._m["InstrumentList"].FromString)
        self._subscribe = ch.unary_stream(f"/{SERVICE}/Subscribe",
                                          request_serializer=_serialize,
                                          response_deserializer=ident)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def instruments(self) -> list[str]:
        resp = await self._call(self._list(self._m["ListRequest"](), timeout=self.timeout))
        return list(resp.instruments)

    async def snapshot(self, instrument: str, *, decimals: bool = False) -> Quote:
        req = self._m["SnapshotRequest"](instrument=instrument, decimals=decimals)
        return Quote.from_protobuf(await self._call(self._snapshot(req, timeout=self.timeout)))

    async def subscribe(self, instruments: Iterable[str] | str, *,
                        decimals: bool = False) -> AsyncIterator[Quote]:
        """The latest quote of each instrument, then one per change (until cancelled)."""
        import grpc

        names = [instruments] if isinstance(instruments, str) else list(instruments)
        call = self._subscribe(self._m["SubscribeRequest"](instruments=names,
                                                           decimals=decimals))
        try:
            async for raw in call:
                yield Quote.from_protobuf(raw)
        except grpc.aio.AioRpcError as exc:
            raise QuoteServerError(exc.code().name, exc.details() or "") from None
        finally:
            call.cancel()

    async def _call(self, awaitable: Any) -> Any:
        import grpc

        try:
            return await awaitable
        except grpc.aio.AioRpcError as exc:
            raise QuoteServerError(exc.code().name, exc.details() or "") from None


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def connect(address: str, *, grpc: bool = False, timeout: float = 10.0) -> WsClient | GrpcClient:
    """A client of the server at ``HOST:PORT`` (``async with connect(...) as c``)."""
    return GrpcClient(address, timeout=timeout) if grpc else WsClient(address, timeout=timeout)
