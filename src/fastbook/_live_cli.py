"""``fastbook live`` and ``fastbook record``: live books in the terminal, and recordings.

``fastbook live SPEC...`` keeps the books and shows a table (per venue and
symbol: state, best bid and ask, spread, messages per second, p99 latency),
redrawn in place on a terminal and printed every few seconds otherwise;
``--json`` prints a machine-readable summary at the end. ``fastbook record
SPEC... -o DIR`` does the same with the recorder on (every frame and REST
body, rotated by size or time).

Both take ``--every 100ms --depth N --output FILE.parquet`` (``--samples FILE``
for ``record``, whose ``-o`` is the capture directory): top-N samples of every
live book with the replay's columns (:mod:`fastbook.live._sample`), and
``--metrics-port PORT`` to serve the stats for Prometheus (:func:`serve_metrics`).
``docs/live-cli.md`` shows them, and ``fastbook demo --live`` (:mod:`fastbook._live_demo`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["add_parsers", "check_args", "live_command", "open_feed", "parse_endpoints",
           "run_live", "serve_metrics", "show_table", "summary", "table"]


def parse_endpoints(values: list[str] | None) -> dict[str, dict[str, str]]:
    """``["okx=ws://127.0.0.1:9001", "binance-spot=ws://h:1,http://h:2"]`` -> endpoints."""
    out: dict[str, dict[str, str]] = {}
    for v in values or []:
        venue, sep, urls = v.partition("=")
        if not sep or not urls:
            raise ValueError(f"--endpoint {v!r} is not VENUE=WS_URL[,REST_URL]")
        ws, _, rest = urls.partition(",")
        out[venue] = {"ws": ws, **({"rest": rest} if rest else {})}
    return out


def add_parsers(sub: Any, fmt: Any) -> None:
    for name, text in (("live", "keep live books from venues' websockets and show them"),
                       ("record", "record live feeds (every frame and REST snapshot) to "
                                  "capture files, with the live table")):
        p = sub.add_parser(name, formatter_class=fmt, help=text)
        p.add_argument("specs", nargs="+", metavar="SPEC",
                       help="VENUE:SYMBOL, e.g. binance-spot:BTCUSDT okx:BTC/USDT "
                            "(venues: binance-spot, binance-usdm, binance-coinm, "
                            "coinbase-advanced, coinbase-exchange, kraken-v2, okx, bybit)")
        p.add_argument("--duration", type=float, default=None,
                       help="stop after this many seconds (default: until Ctrl-C)")
        p.add_argument("--book-depth", type=int, default=None,
                       help="subscribed depth where the venue has one (Kraken, OKX, Bybit)")
        p.add_argument("--every", default=None,
                       help="take top-of-book samples of every live book: 100ms, 1s, "
                            "5000msgs, bbo (or a comma-separated mix), as `fastbook replay`")
        p.add_argument("--depth", type=int, default=10, help="levels per side in samples")
        p.add_argument("--features", metavar="LIST", default=None,
                       help="feature columns in every sample row, as `fastbook replay "
                            "--features` (mid,spread,microprice,imbalance_5,ofi_5...)")
        p.add_argument("--samples" if name == "record" else "--output",
                       *(() if name == "record" else ("-o", "--samples")),
                       dest="samples", metavar="FILE",
                       help="write the samples to FILE.parquet, .arrow or .csv (the replay's "
                            "columns), in row groups as they are taken (needs --every)")
        p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                       help="serve the live stats for Prometheus on http://HOST:PORT/metrics "
                            "(0: a free port, printed on stderr)")
        p.add_argument("--metrics-host", default="127.0.0.1",
                       help="the address the metrics endpoint listens on")
        p.add_argument("--endpoint", action="append", metavar="VENUE=WS_URL[,REST_URL]",
                       help="override a venue's websocket (and REST) base URL; repeatable")
        p.add_argument("--transport", choices=("auto", "websockets", "picows"),
                       default="auto", help="websocket library (auto: picows if installed)")
        p.add_argument("--json", action="store_true",
                       help="print a JSON summary at the end instead of the table")
        p.add_argument("--refresh", type=float, default=1.0,
                       help="seconds between table updates")
        from fastbook.cli import _consolidate_args

        _consolidate_args(p, live=True)
        if name == "record":
            p.add_argument("-o", "--output", required=True,
                           help="directory for the capture files (rotated)")
            p.add_argument("--max-bytes", type=int, default=256 << 20,
                           help="rotate a capture file after this many bytes")
            p.add_argument("--max-seconds", type=float, default=3600.0,
                           help="rotate a capture file after this many seconds")


def _px(book: Any, value: int | None) -> str:
    return "-" if value is None else book.format_price(value, strip=True)


def table(feed: Any, prev: dict[Any, int], dt: float) -> list[str]:
    """The rows of the live table (state, BBO, spread, msgs/s, p99 receive->applied)."""
    st = feed.stats()
    rows = [f"{'venue':<18} {'symbol':<16} {'state':<10} {'bid':>14} {'ask':>14} "
            f"{'spread':>10} {'msg/s':>8} {'p99 us':>8}"]
    for key, b in st["books"].items():
        venue, native = key
        book = feed.session.book(venue, native)
        bid = ask = spread = "-"
        if book is not None and b["state"] in ("live", "stale"):
            bp, _, ap, _ = book.bbo()
            bid, ask = _px(book, bp), _px(book, ap)
            if bp is not None and ap is not None:
                spread = _px(book, ap - bp)
        msgs = b["messages"]
        rate = (msgs - prev.get(key, 0)) / dt if dt > 0 else 0.0
        prev[key] = msgs
        lat = b["latency"].get("receive_to_applied") or {}
        p99 = f"{lat['p99'] / 1e3:.1f}" if lat.get("count") else "-"
        state = b["state"] if not b["reason"] or b["state"] == "live" else \
            f"{b['state']}"
        rows.append(f"{venue:<18} {b['symbol']:<16} {state:<10} {bid:>14} {ask:>14} "
                    f"{spread:>10} {rate:>8.0f} {p99:>8}")
    down = [f"{v}: {s['down_reason']}" for v, s in st["venues"].items() if s["down_reason"]]
    rows += [f"down: {d}" for d in down]
    if getattr(feed, "consolidated", None) is not None:
        rows += consolidated_rows(feed)
    if getattr(feed, "health", None) is not None:
        rows += [f"alert: {a.venue} {a.kind}: {a.message}" for a in feed.health.alerts()]
    return rows


def summary(feed: Any) -> dict[str, Any]:
    st = feed.stats()
    books = {f"{v}:{n}": {k: b[k] for k in ("symbol", "state", "reason", "messages", "applied",
                                             "snapshots", "gaps", "resyncs", "errors",
                                             "latency")}
             for (v, n), b in st["books"].items()}
    for (v, n), b in st["books"].items():
        book = feed.session.book(v, n)
        if book is not None and b["state"] == "live":
            bp, bq, ap, aq = book.bbo()
            books[f"{v}:{n}"]["bbo"] = [None if x is None else str(x) for x in (bp, bq, ap, aq)]
    out = {"venues": st["venues"], "books": books, "consumers": st["consumers"],
           "transport": st["transport"]}
    for key in ("consolidated", "health"):
        if key in st:
            out[key] = st[key]
    return out


def check_args(args: argparse.Namespace) -> None:
    """Usage errors (ValueError) before anything connects: sampling needs both halves."""
    every, samples = getattr(args, "every", None), getattr(args, "samples", None)
    if every is not None and samples is None:
        flag = "--samples" if args.command == "record" else "--output"
        raise ValueError(f"--every needs {flag} FILE (.parquet, .arrow or .csv) to write "
                         f"the samples to")
    features = getattr(args, "features", None)
    if features is not None:
        if every is None:
            raise ValueError("--features are columns of the samples: add --every (100ms, 1s, "
                             "5000msgs, bbo...)")
        from fastbook.features import parse_features

        try:
            parse_features(features)
        except ValueError as exc:
            raise ValueError(f"--features: {exc}") from None
    if samples is not None and every is None:
        raise ValueError("writing samples needs a sampling rule: --every 100ms (or 1s, "
                         "5000msgs, bbo)")
    if samples is not None:
        from fastbook.driver import check_output
        from fastbook.writers import output_format

        output_format(samples)
        check_output(samples, "samples")
    cbbo = getattr(args, "cbbo", None)
    if cbbo is not None:
        if getattr(args, "consolidate", None) is None:
            raise ValueError("--cbbo needs --consolidate")
        from fastbook.driver import check_output
        from fastbook.writers import output_format

        if output_format(cbbo) == "csv":
            raise ValueError(f"--cbbo {cbbo}: Parquet (.parquet) or Arrow (.arrow), not CSV")
        check_output(cbbo, "cbbo")
    port = getattr(args, "metrics_port", None)
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"--metrics-port {port} is not a port number (0 to 65535; 0: any)")


def open_feed(args: argparse.Namespace, **extra: Any) -> Any:
    """The :class:`fastbook.live.LiveBooks` the arguments ask for (not started)."""
    from fastbook.live import live

    options: dict[str, Any] = dict(extra)
    if args.command == "record":
        from fastbook.live._record import LiveRecorder

        options["record"] = LiveRecorder(args.output, max_bytes=args.max_bytes,
                                         max_seconds=args.max_seconds,
                                         meta={"specs": args.specs, "depth": args.book_depth})
    endpoints = {**parse_endpoints(args.endpoint), **options.pop("endpoints", {})}
    if getattr(args, "health", False):
        options["health"] = True
    if getattr(args, "consolidate", None) is not None:
        from fastbook.cli import consolidate_options

        cons = consolidate_options(args)
        options["consolidate"] = cons.pop("consolidate")
        options["consolidate_options"] = cons
    feed = live(args.specs, depth=args.book_depth, endpoints=endpoints,
                   transport=args.transport, on_not_live="return", **options)
    return feed


def consolidated_rows(feed: Any) -> list[str]:
    """The consolidated table: per view the best bid and ask across venues (who holds
    them), the spread, who is in the view, and the open arbitrage opportunities."""
    tap = feed.consolidated
    rows = []
    for v in tap.views:
        view = v.view
        bid, bq, bven, ask, aq, aven = view.bbo()
        pd, qd = view.price_decimals, view.qty_decimals
        sides = ["-" if p is None else f"{_dec(p, pd)} x {_dec(q, qd)} ({', '.join(who)})"
                 for p, q, who in ((bid, bq, bven), (ask, aq, aven))]
        spread = "-" if bid is None or ask is None else _dec(ask - bid, pd)
        states = view.venues_in()
        n_in = sum(r == "in" for r in states.values())
        out = [f"{n}: {r}" for n, r in states.items() if r != "in"]
        opps = len(v.open)
        rows.append(f"consolidated {v.symbol}: best bid {sides[0]}  best ask {sides[1]}  "
                    f"spread {spread}  in {n_in}/{len(states)}"
                    f"{' (' + ', '.join(out) + ')' if out else ''}"
                    f"{f'  arbitrage: {opps} open' if opps else ''}")
    return rows


def _dec(value: int, decimals: int) -> str:
    from decimal import Decimal

    text = format(Decimal(value).scaleb(-decimals), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def serve_metrics(feed: Any, port: int = 0, host: str = "127.0.0.1") -> Any:
    """Serve ``feed``'s stats for Prometheus (:func:`fastbook.metrics.serve_prometheus`).

    Call on the feed's running loop. Each scrape (on the server's thread) reads
    the stats *on that loop*, so it never sees a book or a connection table
    half-changed; latency entries carry their buckets, so the classic
    ``fastbook_latency_seconds`` histograms are exported too.
    """
    import asyncio
    import concurrent.futures

    from fastbook.metrics import serve_prometheus

    loop = asyncio.get_running_loop()

    def on_loop() -> dict[str, Any]:
        st = feed.stats()
        for key, b in st["books"].items():
            t = feed.session.tracks.get(key)
            if t is not None and t.hist:
                b["latency"] = {k: h.to_dict(buckets=True) for k, h in t.hist.items()}
        return dict(st)

    def stats() -> dict[str, Any]:
        fut: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(on_loop())
            except BaseException as exc:        # handed to the scrape, which counts it
                fut.set_exception(exc)
        loop.call_soon_threadsafe(run)
        return fut.result(timeout=5.0)

    return serve_prometheus(stats, port, host)


async def run_live(args: argparse.Namespace, out: Any = None, feed: Any = None,
                   err: Any = None) -> dict[str, Any]:
    """Run the live table (and samples, metrics) for ``args``; the JSON summary at the end."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    check_args(args)
    feed = open_feed(args) if feed is None else feed
    sampler = None
    if getattr(args, "every", None) is not None:
        sampler = feed.sampler(args.every, depth=args.depth, output=args.samples,
                               features=getattr(args, "features", None))
    metrics = None
    async with feed:
        try:
            if getattr(args, "metrics_port", None) is not None:
                metrics = serve_metrics(feed, args.metrics_port, args.metrics_host)
                print(f"fastbook {args.command}: metrics on {metrics.url}", file=err, flush=True)
            if sampler is not None:
                sampler.start()
            await show_table(feed, args, out)
            result = summary(feed)
        finally:
            if sampler is not None:
                await sampler.stop()
            if metrics is not None:
                metrics.close()
    cbbo = getattr(args, "cbbo", None)
    if cbbo is not None:
        result["consolidated_files"] = feed.write_consolidated(cbbo)
    if sampler is not None:
        result["samples"] = {"file": args.samples, **sampler.stats()}
    if metrics is not None:
        result["metrics"] = metrics.url
    return result


async def show_table(feed: Any, args: argparse.Namespace, out: Any) -> None:
    """Redraw (terminal) or print the table every ``--refresh`` s until ``--duration``."""
    import asyncio

    tty = out.isatty() and not args.json
    prev: dict[Any, int] = {}
    drawn = 0
    start = last = time.monotonic()
    while args.duration is None or time.monotonic() - start < args.duration:
        wait = args.refresh if args.duration is None else \
            min(args.refresh, max(0.0, args.duration - (time.monotonic() - start)))
        await asyncio.sleep(wait)
        now = time.monotonic()
        if args.json:
            continue
        rows = table(feed, prev, now - last)
        last = now
        if tty and drawn:
            out.write(f"\x1b[{drawn}F\x1b[J")           # back to the table's top
        out.write("\n".join(rows) + "\n")
        out.flush()
        drawn = len(rows)


def live_command(args: argparse.Namespace) -> int:
    import asyncio

    try:
        result = asyncio.run(run_live(args))
    except (ValueError, ImportError, OSError) as exc:
        # usage errors, a missing extra (pyarrow, prometheus-client: the message says what
        # to install), an output that cannot be written, a metrics port already taken
        print(f"fastbook {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(result, default=str, indent=1))
    bad = [k for k, b in result["books"].items() if b["state"] != "live"]
    return 3 if bad and len(bad) == len(result["books"]) else 0
