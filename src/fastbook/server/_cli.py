"""``fastbook serve`` (the quote server) and ``fastbook quotes`` (print a server's stream).

``fastbook serve SPEC... [--replay FILE... --speed X] --ws-port P --grpc-port Q``
prints one JSON line with the bound ports on stdout when it listens, and one
with the server's stats when it stops (``--duration``, the replay's end
without ``--keep``, Ctrl-C or SIGTERM). ``fastbook quotes HOST:PORT INSTRUMENT...
[--grpc]`` prints one line per quote (``--json``: the quote as JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

__all__ = ["add_parsers", "quotes_command", "serve_command"]


def add_parsers(sub: Any, fmt: Any) -> None:
    """Add the ``serve`` and ``quotes`` subcommands to ``sub``."""
    p = sub.add_parser("serve", formatter_class=fmt,
                       help="serve top-10 quotes of live books (or a replay) over WebSocket "
                            "and gRPC")
    p.add_argument("specs", nargs="+", metavar="SPEC",
                   help="VENUE:SYMBOL to serve, e.g. binance-spot:BTCUSDT (with --replay: "
                        "the capture's venue codec and native symbol)")
    p.add_argument("--replay", nargs="+", metavar="FILE", default=None,
                   help="serve a replay of these captures instead of live feeds")
    p.add_argument("--speed", type=float, default=1.0,
                   help="replay pace: 1 real time, 10 ten times faster, 0 as fast as possible")
    p.add_argument("--repeat", type=int, default=1,
                   help="play the replay this many times (0: until stopped)")
    p.add_argument("--keep", action="store_true",
                   help="keep serving the last quotes after the replay ends")
    p.add_argument("--ws-port", type=int, default=None,
                   help="WebSocket JSON port (0: any free one; default 8765 unless only "
                        "--grpc-port is given)")
    p.add_argument("--grpc-port", type=int, default=None,
                   help="gRPC port (needs the [grpc] extra; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    p.add_argument("--depth", type=int, default=10, help="levels per side served")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds")
    p.add_argument("--endpoint", action="append", metavar="VENUE=WS_URL[,REST_URL]",
                   help="live: override a venue's websocket (and REST) base URL; repeatable")
    p.add_argument("--book-depth", type=int, default=None,
                   help="live: subscribed depth where the venue has one (Kraken, OKX, Bybit)")
    p.add_argument("--transport", choices=("auto", "websockets", "picows"), default="auto",
                   help="live: websocket library of the feeds")

    q = sub.add_parser("quotes", formatter_class=fmt,
                       help="print the quote stream of a fastbook quote server")
    q.add_argument("address", metavar="HOST:PORT", help="the server, e.g. 127.0.0.1:8765")
    q.add_argument("instruments", nargs="+", metavar="INSTRUMENT",
                   help="instruments as the server names them (VENUE:SYMBOL)")
    q.add_argument("--grpc", action="store_true", help="the gRPC endpoint (default WebSocket)")
    q.add_argument("--count", type=int, default=None, help="stop after this many quotes")
    q.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds")
    q.add_argument("--snapshot", action="store_true",
                   help="print the latest quote of each instrument and stop")
    q.add_argument("--decimals", action="store_true",
                   help="ask for decimal strings too (--json shows them)")
    q.add_argument("--json", action="store_true", help="one JSON object per quote")


def _source(args: argparse.Namespace) -> Any:
    from fastbook.server import Live, Replay

    if args.replay:
        return Replay(args.replay, speed=args.speed, repeat=args.repeat)
    from fastbook._live_cli import parse_endpoints

    options: dict[str, Any] = {"endpoints": parse_endpoints(args.endpoint),
                               "transport": args.transport}
    if args.book_depth is not None:
        options["depth"] = args.book_depth
    return Live(**options)


async def run_server(args: argparse.Namespace, out: Any = None) -> dict[str, Any]:
    """Serve until ``--duration``, the replay's end (unless ``--keep``) or cancellation."""
    from fastbook.server import Server

    out = sys.stdout if out is None else out
    ws_port = args.ws_port if args.ws_port is not None or args.grpc_port is not None else 8765
    server = Server(_source(args), args.specs, ws_port=ws_port, grpc_port=args.grpc_port,
                    host=args.host, depth=args.depth)
    async with server:
        ports = {"ws": server.ws_port, "grpc": server.grpc_port, "host": args.host,
                 "instruments": server.instruments}
        print(json.dumps(ports), file=out, flush=True)
        stop = _stop_on_signals()
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if args.replay and not args.keep:
            waits.append(asyncio.ensure_future(server.wait()))
        try:
            done, _ = await asyncio.wait(waits, timeout=args.duration,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        for w in done:
            exc = None if w.cancelled() else w.exception()
            if exc is not None:
                raise exc
        return server.stats()


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so the server stops cleanly and prints its stats."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):   # Windows, not main thread
            pass
    return stop


def serve_command(args: argparse.Namespace) -> int:
    try:
        stats = asyncio.run(run_server(args))
    except (ValueError, ImportError, OSError) as exc:
        print(f"fastbook serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(json.dumps(stats, default=str))
    return 3 if "error" in stats else 0


def format_quote(q: Any) -> str:
    """``instrument seq state  bid qty @ price | ask price x qty  spread``, exact decimals."""
    from fastbook import format_decimal

    def px(v: int) -> str:
        return format_decimal(v, q.price_scale, strip=True)

    def qty(v: int) -> str:
        return format_decimal(v, q.qty_scale, strip=True)

    bid = f"{qty(q.bids[0][1])} @ {px(q.bids[0][0])}" if q.bids else "-"
    ask = f"{px(q.asks[0][0])} x {qty(q.asks[0][1])}" if q.asks else "-"
    spread = px(q.spread) if q.spread is not None else "-"
    return f"{q.instrument} seq {q.seq} {q.state}  bid {bid} | ask {ask}  spread {spread}"


async def print_quotes(args: argparse.Namespace, out: Any = None) -> int:
    """Print the stream (or the snapshots) of ``args.instruments``; the count printed."""
    from fastbook.server.client import connect

    out = sys.stdout if out is None else out
    n = 0

    def show(q: Any) -> None:
        text = json.dumps(q.to_dict()) if args.json else format_quote(q)
        print(text, file=out, flush=True)

    async with connect(args.address, grpc=args.grpc) as client:
        if args.snapshot:
            for name in args.instruments:
                show(await client.snapshot(name, decimals=args.decimals))
                n += 1
            return n
        deadline = None if args.duration is None else time.monotonic() + args.duration

        async def stream() -> None:
            nonlocal n
            async for q in client.subscribe(args.instruments, decimals=args.decimals):
                show(q)
                n += 1
                if args.count is not None and n >= args.count:
                    return
        try:
            await asyncio.wait_for(stream(), None if deadline is None
                                   else max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass
    return n


def quotes_command(args: argparse.Namespace) -> int:
    from fastbook.server.client import QuoteServerError

    if args.count is not None and args.count < 1:
        print("fastbook quotes: --count must be >= 1", file=sys.stderr)
        return 2
    try:
        asyncio.run(print_quotes(args))
    except QuoteServerError as exc:
        if exc.code in ("UNAVAILABLE", 1006):
            print(f"fastbook quotes: cannot reach {args.address}: {exc.reason}", file=sys.stderr)
            return 1
        print(f"fastbook quotes: {exc}", file=sys.stderr)
        return 2
    except (ValueError, ImportError) as exc:
        print(f"fastbook quotes: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"fastbook quotes: cannot reach {args.address}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
