"""After an injected gap, how soon is the book live again: against one round trip plus one message.

``python bench/live_gapheal.py [--faults N] [--rate R] [--quick] [--json [PATH]]``

The loopback simulator runs in a subprocess (``python -m fastbook.testing --control``)
with one symbol per venue family at ``--rate`` messages/s; the real driver holds all
of them. Every round, one fault per venue is injected (``drop``: a sequence gap on
Binance, OKX, Bybit and Coinbase Advanced, a checksum mismatch on Kraken; ``corrupt``
on Coinbase Exchange, which has no sequence numbers), and the driver's own state
notices give the time from the gap's detection (the book goes ``resyncing`` at the
receive time of the message that revealed it) to ``live`` again.

The baselines, measured in the same run:

* the round trip the heal needs: for Binance, the REST depth request (the driver's
  own snapshot requests, timed by its HTTP client); for the venues that resubscribe,
  an unsubscribe + subscribe on a side connection to the same simulator, timed to
  the snapshot that answers it;
* the inter-message interval of each book (median gap between its update notices).

The target is heal <= round trip + one interval, so the ratio
``heal / (round trip + interval)`` should be at most about 1. Medians and p90s.
Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_simproc import SimProcess, report

#: venue -> (symbol, the fault that makes a gap there, how the driver heals it)
FAMILIES = {
    "binance-spot": ("BTCUSDT", "drop", "resnapshot"),
    "binance-usdm": ("BTCUSDT", "drop", "resnapshot"),
    "okx": ("BTC-USDT", "drop", "resubscribe"),
    "bybit": ("BTCUSDT", "drop", "resubscribe"),
    "kraken-v2": ("BTC/USD", "drop", "resubscribe"),
    "coinbase-advanced": ("BTC-USD", "drop", "resubscribe"),
    "coinbase-exchange": ("BTC-USD", "corrupt", "resubscribe"),
}
DEPTH = {"kraken-v2": 10, "okx": None, "bybit": 50}


def pct(xs: Sequence[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms(x: float | None) -> float | None:
    return None if x is None else round(x / 1e6, 3)


class Watch:
    """Every state change and update time of every book, from the driver's notices."""

    def __init__(self) -> None:
        self.states: dict[str, list[tuple[str, int]]] = {}
        self.updates: dict[str, list[int]] = {}

    def __call__(self, n: Any) -> None:
        if n.kind == "state":
            self.states.setdefault(n.venue, []).append((n.state.value, n.recv_ns))
        else:
            self.updates.setdefault(n.venue, []).append(n.recv_ns)

    def heals_since(self, venue: str, start: int) -> list[tuple[int, int]]:
        """(detected, live again) pairs of ``venue`` after list index ``start``."""
        out, t_detect = [], None
        for state, t in self.states.get(venue, [])[start:]:
            if state != "live" and t_detect is None:
                t_detect = t
            elif state == "live" and t_detect is not None:
                out.append((t_detect, t))
                t_detect = None
        return out


async def resubscribe_rtt(url: str, venue: str, symbol: str, samples: int,
                          transport: str) -> list[int]:
    """Unsubscribe + subscribe on a side connection, timed to the answering snapshot (ns)."""
    from fastbook.live._rules import rules_for
    from fastbook.live._transport import connect

    rules = rules_for(venue)
    depth = DEPTH.get(venue)
    got: asyncio.Queue[int] = asyncio.Queue()

    def on_frame(payload: Any, recv_ns: int) -> None:
        text = payload if isinstance(payload, str) else payload.decode(errors="replace")
        if '"type":"snapshot"' in text or '"action":"snapshot"' in text:
            got.put_nowait(time.perf_counter_ns())

    tr = await connect(url, on_frame, lambda r: None, backend=transport)
    try:
        for m in rules.subscribe([symbol], depth):
            tr.send(m)
        await asyncio.wait_for(got.get(), 10)
        out = []
        for _ in range(samples):
            msgs = rules.unsubscribe([symbol], depth) + rules.subscribe([symbol], depth)
            msgs = [m for m in msgs if '"instrument"' not in m]
            await asyncio.sleep(0.05)
            while not got.empty():
                got.get_nowait()
            t0 = time.perf_counter_ns()
            for m in msgs:
                tr.send(m)
            out.append(await asyncio.wait_for(got.get(), 10) - t0)
        return out
    finally:
        await tr.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from fastbook.live import live

    families = {v: FAMILIES[v] for v in args.venues}
    async with SimProcess({v: [s] for v, (s, _, _) in families.items()}, rate=args.rate,
                          seed=args.seed) as sim:
        feed = live([f"{v}:{s}" for v, (s, _, _) in families.items()],
                    endpoints={v: sim.endpoints[v] for v in families},
                    depth=None, transport=args.transport, latency=False)
        watch = Watch()
        feed.on_notice(watch)
        http = await feed.driver._http_client()
        rest_ns: dict[str, list[int]] = {}
        get = http.get

        async def timed_get(url: str, headers: Any = None) -> Any:
            resp = await get(url, headers)
            venue = next(v for v in families if sim.endpoints[v].get("rest", "\0") in url)
            rest_ns.setdefault(venue, []).append(resp.elapsed_ns)
            return resp

        http.get = timed_get
        ws_rtt: dict[str, list[int]] = {}
        heals: dict[str, list[tuple[int, int]]] = {v: [] for v in families}
        unhealed: dict[str, int] = {v: 0 for v in families}
        async with feed:
            if not await feed.wait_live(30):
                raise SystemExit(f"not all live: {feed.stats()['books']}")
            await asyncio.sleep(1.0)
            for _ in range(args.faults):
                marks = {v: len(watch.states.get(v, [])) for v in families}
                for v, (s, kind, _) in families.items():
                    await sim.cmd("inject", venue=v, kind=kind, symbol=s)
                ok = await feed.wait_live(10)
                await asyncio.sleep(args.spacing)
                for v in families:
                    got = watch.heals_since(v, marks[v])
                    heals[v] += got
                    if not got:
                        unhealed[v] += 1
                if not ok:
                    await feed.wait_live(20)
            for v, (s, _, how) in families.items():
                if how == "resubscribe":
                    ws_rtt[v] = await resubscribe_rtt(sim.endpoints[v]["ws"], v, s,
                                                      args.rtt_samples, args.transport)
            stats = feed.stats()
        sim_faults = (await sim.cmd("faults"))["count"]
    out: dict[str, Any] = {"rate_per_symbol": args.rate, "faults_per_venue": args.faults,
                           "transport": args.transport, "faults_logged_by_simulator": sim_faults,
                           "venues": {}}
    for v, (s, kind, how) in families.items():
        h = [b - a for a, b in heals[v]]
        ups = watch.updates.get(v, [])
        gaps = [b - a for a, b in itertools.pairwise(ups) if b > a]
        interval = statistics.median(gaps) if gaps else None
        rtt = rest_ns.get(v, []) if how == "resnapshot" else ws_rtt.get(v, [])
        rtt_med = statistics.median(rtt) if rtt else None
        heal_med = statistics.median(h) if h else None
        target = (rtt_med or 0) + (interval or 0)
        b = stats["books"][(v, s)]
        out["venues"][v] = {
            "symbol": s, "fault": kind, "heal": how, "heals": len(h),
            "faults_without_heal": unhealed[v],
            "heal_ms": {"p50": ms(heal_med), "p90": ms(pct(h, 0.9)),
                        "max": ms(max(h) if h else None)},
            "round_trip_ms": {"p50": ms(rtt_med), "p90": ms(pct(rtt, 0.9)), "n": len(rtt),
                              "what": "REST depth request" if how == "resnapshot"
                              else "unsubscribe+subscribe -> snapshot (side connection)"},
            "interval_ms": ms(interval),
            "heal_vs_rtt_plus_interval": round(heal_med / target, 3) if heal_med and target
            else None,
            "final_state": b["state"], "resyncs": b["resyncs"], "gaps": b["gaps"],
        }
    return out


def summary(o: dict[str, Any]) -> str:
    lines = [f"gap -> live at {o['rate_per_symbol']:g} msg/s per book, "
             f"{o['faults_per_venue']} faults per venue ({o['transport']})",
             f"{'venue':18} {'heal':11} {'n':>3} {'heal p50':>9} {'p90':>8} {'rtt p50':>8} "
             f"{'interval':>8} {'ratio':>6}"]
    for v, r in o["venues"].items():
        lines.append(f"{v:18} {r['heal']:11} {r['heals']:>3} {r['heal_ms']['p50']!s:>9} "
                     f"{r['heal_ms']['p90']!s:>8} {r['round_trip_ms']['p50']!s:>8} "
                     f"{r['interval_ms']!s:>8} {r['heal_vs_rtt_plus_interval']!s:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--faults", type=int, default=20, help="faults per venue")
    ap.add_argument("--rate", type=float, default=50.0, help="messages/s per book")
    ap.add_argument("--spacing", type=float, default=0.5, help="seconds between rounds")
    ap.add_argument("--rtt-samples", type=int, default=20)
    ap.add_argument("--venues", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--transport", default="websockets", choices=("websockets", "picows"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="5 faults, 5 round trips per venue")
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                    help="print the figures as JSON (or write them to PATH)")
    args = ap.parse_args(argv)
    if args.quick:
        args.faults, args.rtt_samples = 5, 5
    out = asyncio.run(main_async(args))
    report(out, args.json, summary)
    return out


if __name__ == "__main__":
    main()
