"""Cold start of many Binance symbols under the REST weight limit: time to all live, zero 429/418.

``python bench/live_coldstart.py [--venue binance-usdm|binance-spot] [--symbols 200] [--quick]
[--json [PATH]]``

The loopback simulator runs in a subprocess (``python -m fastbook.testing --control``)
with N synthetic symbols at ``--rate`` messages/s each (10: Binance's ``@100ms``
cadence) and the venue's real REST weight limit per minute (usdm 2400, spot 6000),
answering 429 past it and 418 to a request during a 429's ``Retry-After``. The real
driver (``fastbook.live``) opens every book from cold: connections sharded by the
venue's ``max_symbols``, one REST depth snapshot per symbol (usdm ``limit=1000``,
weight 20; spot ``limit=5000``, weight 250) under its snapshot scheduler.

Reported: time from start to every book live (and the first book, the median
book), REST requests, the highest ``X-MBX-USED-WEIGHT-1M`` the driver was shown,
429 and 418 answers (the target is 0), websocket connections.

Baseline, same run: the naive schedule, every snapshot requested at once from a
fresh simulator with the same limit: its answers by status (how many 429/418 it
trips) and its time, next to the lower bound any schedule that trips nothing can
reach at 100 % of the limit, ``(ceil(N * weight / limit) - 1)`` minutes. Nothing
asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_simproc import SimProcess, report, rss_bytes

LIMITS = {"binance-usdm": 2400, "binance-spot": 6000, "binance-coinm": 2400}


def symbols(n: int, venue: str) -> list[str]:
    """``n`` synthetic symbol names (``S000USDT`` ...; COIN-M ``S000USD_PERP``)."""
    tail = "USD_PERP" if venue == "binance-coinm" else "USDT"
    return [f"S{i:03d}{tail}" for i in range(n)]


async def run_driver(endpoints: dict[str, Any], venue: str, syms: list[str], transport: str,
                     timeout: float) -> dict[str, Any]:
    """Start the driver on every symbol and time each book to live; REST answers seen."""
    from fastbook.live import BookState, live

    feed = live([f"{venue}:{s}" for s in syms], endpoints={venue: endpoints[venue]},
                   transport=transport, latency=False)
    sched = feed.driver._scheduler(venue)        # made before start: observe every answer
    seen: dict[str, Any] = {"max_weight": 0.0, "status": {}}
    observe = sched.observe

    def watching(status: int, headers: Any) -> None:
        used = {k.lower(): v for k, v in headers.items()}.get("x-mbx-used-weight-1m")
        if used is not None:
            seen["max_weight"] = max(seen["max_weight"], float(used))
        seen["status"][status] = seen["status"].get(status, 0) + 1
        observe(status, headers)

    sched.observe = watching
    live_at: dict[str, float] = {}

    def note(n: Any) -> None:
        if n.kind == "state" and n.state is BookState.LIVE and n.symbol not in live_at:
            live_at[n.symbol] = time.perf_counter()

    feed.on_notice(note)
    t0 = time.perf_counter()
    await feed.start()
    try:
        ok = await feed.wait_live(timeout)
        rss_mb = rss_bytes() / (1 << 20)
        buffered = sum(b["counts"].get("buffered", 0) for b in feed.stats()["books"].values())
        t_all = time.perf_counter() - t0
        st = feed.stats()
    finally:
        await feed.stop()
    times = sorted(t - t0 for t in live_at.values())
    vs = st["venues"][venue]
    return {"all_live": ok, "books_live": len(live_at), "time_to_all_live_s": round(t_all, 3),
            "first_live_s": round(times[0], 3) if times else None,
            "median_live_s": round(times[len(times) // 2], 3) if times else None,
            "rest_requests": sched.requests, "max_used_weight_seen": seen["max_weight"],
            "answers_by_status": {str(k): v for k, v in sorted(seen["status"].items())},
            "n429": sched.n429, "n418": sched.n418, "scheduler_waits": sched.waits,
            "connections": vs["connections"], "snapshots": vs["snapshots"],
            "snapshot_failures": vs["snapshot_failures"], "reconnects": vs["reconnects"],
            "stalls": vs["stalls"], "rate_limited": vs["rate_limited"],
            "last_failure": vs["last_failure"], "driver_rss_mb": round(rss_mb, 1),
            "messages_buffered_before_snapshots": buffered}


async def run_naive(endpoints: dict[str, Any], venue: str, syms: list[str]) -> dict[str, Any]:
    """Every snapshot at once (no budget): what the venue answers, and how long it takes."""
    from fastbook.live._http import HttpClient
    from fastbook.live._rules import rules_for

    rules = rules_for(venue)
    feed_cls = rules.new_feed(syms[:1], None, None, "skip")
    path, limit = feed_cls.rest_path, feed_cls.snapshot_depth
    base = endpoints[venue]["rest"]
    async with HttpClient(timeout=60) as http:
        t0 = time.perf_counter()
        answers = await asyncio.gather(*(http.get(f"{base}{path}?symbol={s}&limit={limit}")
                                         for s in syms))
        dt = time.perf_counter() - t0
    by: dict[str, int] = {}
    for a in answers:
        by[str(a.status)] = by.get(str(a.status), 0) + 1
    return {"time_s": round(dt, 3), "answers_by_status": by,
            "n429": by.get("429", 0), "n418": by.get("418", 0), "ok": by.get("200", 0)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from fastbook.live._rules import rules_for

    venue = args.venue
    rules = rules_for(venue)
    syms = symbols(args.symbols, venue)
    limit = args.rest_weight_limit or LIMITS[venue]
    weight = rules.snapshot_weight
    out: dict[str, Any] = {"venue": venue, "symbols": len(syms), "rate_per_symbol": args.rate,
                           "rest_weight_limit": limit, "snapshot_weight": weight,
                           "max_symbols_per_connection": rules.max_symbols,
                           "driver_budget_per_min": 0.8 * rules.weight_limit,
                           "transport": args.transport}
    venues = {venue: syms}
    async with SimProcess(venues, rate=args.rate, rest_weight_limit=limit) as sim:
        out["driver"] = await run_driver(sim.endpoints, venue, syms, args.transport,
                                         args.timeout)
        st = (await sim.cmd("stats"))["stats"][venue]
        out["simulator"] = {"rest_requests": st["rest_requests"],
                            "rest_status": st["rest_status"],
                            "connections_total": st["connections_total"]}
    async with SimProcess(venues, rate=args.rate, rest_weight_limit=limit) as sim:
        out["naive"] = await run_naive(sim.endpoints, venue, syms)
    total = len(syms) * weight
    bound = (math.ceil(total / limit) - 1) * 60.0
    out["lower_bound_s"] = bound
    out["naive_fits_in_one_minute"] = total <= limit
    t = out["driver"]["time_to_all_live_s"]
    out["driver_vs_lower_bound"] = round(t / bound, 3) if bound else None
    out["driver_vs_naive_time"] = round(t / out["naive"]["time_s"], 1)
    return out


def summary(o: dict[str, Any]) -> str:
    d, n = o["driver"], o["naive"]
    lines = [
        f"{o['venue']}: {o['symbols']} symbols at {o['rate_per_symbol']:g} msg/s each, "
        f"snapshot weight {o['snapshot_weight']} of {o['rest_weight_limit']}/min "
        f"(driver budget {o['driver_budget_per_min']:g})",
        f"driver: all live {d['all_live']} in {d['time_to_all_live_s']} s (first "
        f"{d['first_live_s']} s, median {d['median_live_s']} s); REST requests "
        f"{d['rest_requests']}, max used weight seen {d['max_used_weight_seen']:g}, "
        f"429s {d['n429']}, 418s {d['n418']}, connections {d['connections']}",
        f"naive (all at once, fresh simulator): {n['answers_by_status']} in {n['time_s']} s",
        f"lower bound with zero 429s at 100% of the limit: {o['lower_bound_s']:g} s; "
        f"driver / bound {o['driver_vs_lower_bound']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--venue", default="binance-usdm", choices=sorted(LIMITS))
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10.0, help="messages/s per symbol")
    ap.add_argument("--rest-weight-limit", type=int, default=0,
                    help="the simulator's limit (default: the venue's real one)")
    ap.add_argument("--transport", default="websockets", choices=("websockets", "picows"))
    ap.add_argument("--timeout", type=float, default=900.0, help="give up after this long")
    ap.add_argument("--quick", action="store_true", help="30 symbols")
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                    help="print the figures as JSON (or write them to PATH)")
    args = ap.parse_args(argv)
    if args.quick:
        args.symbols = 30
    out = asyncio.run(main_async(args))
    report(out, args.json, summary)
    return out


if __name__ == "__main__":
    main()
