"""Soak: the live driver for minutes at a high message rate with a fault every few seconds.

``python bench/live_soak.py [--seconds 600] [--rate 20000] [--quick] [--json [PATH]]``

The loopback simulator runs in subprocesses (``python -m fastbook.testing --control``,
one per venue: one process alone does not reach 20k msg/s on this machine) with
Binance USD-M (4 books), Binance spot, Bybit and OKX (2 each) sending ``--rate``
messages/s in all (shares in ``SHARE``); the real driver (``fastbook.live``) holds
every book in this process, and one ``async for`` consumer drains its notices. Every
``--fault-every`` seconds the next fault of a fixed rotation is injected over the control channel
(gaps, duplicates, reordering, corrupt and cut messages, bad checksums, mid-frame
disconnects, venue restarts, ``serverShutdown``, oversized frames, REST 500 / garbage
/ slow answers followed by a gap). Every ``--check-every`` seconds, and at the end,
the simulator is paused and every book compared with its truth exactly.

Reported: messages/s reached (the driver's count), resident memory of this process
(``/proc/self/statm``) sampled every ``--sample`` seconds after ``--warmup`` seconds:
first, last, max, growth (target <= 5 MB); faults injected, logged by the simulator,
detected (the book left live or a counter of the book or venue moved) and healed
(every book live before the next fault); wrong books at the checks (target 0). The
baseline, same run: the RSS right after the warm-up (growth is against it), and the
message rate the simulator alone reports having written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_simproc import SimProcess, report, rss_bytes, truth_levels

VENUE_SYMBOLS = {"binance-usdm": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"],
                 "binance-spot": ["BTCUSDT", "ETHUSDT"],
                 "bybit": ["BTCUSDT", "ETHUSDT"], "okx": ["BTC-USDT", "ETH-USDT"]}
#: each venue's share of ``--rate``: a simulator process makes about 20k Binance, 12k
#: Bybit or 4k OKX messages/s on this machine, so the cheap formats carry the volume
SHARE = {"binance-usdm": 0.5, "binance-spot": 0.3, "bybit": 0.15, "okx": 0.05}

#: the rotation, one fault every ``--fault-every`` s: (venue, fault); "rest:KIND" is a
#: REST fault on the next snapshot request, followed by a gap that needs one. The
#: faults that end a connection come at most once per 30 s per venue (at 3 s), as the
#: driver counts a connection that lived less than 30 s as a failure and backs off
ROTATION = [
    ("binance-usdm", "drop"), ("bybit", "drop"), ("okx", "drop"),
    ("binance-usdm", "disconnect"), ("binance-spot", "drop"), ("okx", "bad_checksum"),
    ("bybit", "restart"), ("binance-usdm", "duplicate"), ("bybit", "corrupt"),
    ("okx", "restart"), ("binance-usdm", "reorder"), ("binance-spot", "corrupt"),
    ("binance-spot", "restart"), ("binance-usdm", "rest:500"), ("okx", "malformed"),
    ("binance-usdm", "server_shutdown"), ("bybit", "duplicate"),
    ("binance-usdm", "rest:garbage"), ("bybit", "oversized"), ("binance-usdm", "corrupt"),
    ("binance-spot", "rest:slow"), ("okx", "disconnect"), ("binance-usdm", "malformed"),
    ("bybit", "malformed"),
]
VENUE_WIDE = ("restart", "server_shutdown")


def pymalloc_stats() -> tuple[int, int, int]:
    """CPython's small-object allocator: arenas held now, their high-water mark, and the
    bytes of its blocks in use (``sys._debugmallocstats``, which writes to fd 2). Arenas
    held while their blocks are mostly free are fragmentation, not live objects."""
    import os
    import re
    import tempfile

    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode("ascii", "replace")

    def field(name: str) -> int:
        m = re.search(rf"{name}\s*=\s*([\d,]+)", text)
        return int(m.group(1).replace(",", "")) if m else -1

    return (field("# arenas allocated current"), field("# arenas highwater mark"),
            field("bytes in allocated blocks"))


def quiet_counts(book: dict[str, Any]) -> dict[str, int]:
    """A book's counters that a fault moves (everything but the message tallies)."""
    return {k: v for k, v in book["counts"].items() if k not in ("messages", "applied")}


class Soak:
    """One soak run: the simulator process, the driver, the fault loop and the samples."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.venues = dict(VENUE_SYMBOLS)
        self.rates = {v: args.rate * SHARE[v] / len(s) for v, s in self.venues.items()}
        self.reasons: list[tuple[float, str, str, str]] = []
        self.rss: list[tuple[float, int]] = []
        self.book_bytes: list[tuple[int, int]] = []     # (nbytes, levels) of every book
        self.pymalloc: list[tuple[int, int, int]] = []  # arenas, high-water, bytes in use
        self.faults: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.consumed = 0
        self.paused = 0.0
        self.lags: list[dict[str, int]] = []
        self.heap0: Any = None
        self.heap_growth: dict[str, Any] | None = None

    async def run(self) -> dict[str, Any]:
        from fastbook.live import live

        a = self.args
        async with contextlib.AsyncExitStack() as stack:
            # one simulator process per venue: one process alone tops out below 20k msg/s
            self.sims = {v: await stack.enter_async_context(SimProcess(
                {v: syms}, rate=self.rates[v], seed=a.seed, nice=a.sim_nice, uvloop=a.uvloop))
                for v, syms in self.venues.items()}
            endpoints = {v: sim.endpoints[v] for v, sim in self.sims.items()}
            feed = live([f"{v}:{s}" for v, syms in self.venues.items() for s in syms],
                        endpoints=endpoints, transport=a.transport, queue=10_000)
            self.feed = feed
            feed.on_notice(self.note)
            async with feed:
                consumer = asyncio.ensure_future(self.consume())
                if not await feed.wait_live(30):
                    raise SystemExit(f"not all live: {feed.stats()['books']}")
                t0 = time.monotonic()
                self.t0 = t0
                msgs0 = self.messages()
                sim0 = await self.sim_frames()
                cpu0 = time.process_time()
                await self.loop(t0)
                if a.tracemalloc and self.heap0 is not None:
                    self.heap_growth = _heap_growth(self.heap0, a.tracemalloc)
                elapsed = time.monotonic() - t0
                self.cpu = time.process_time() - cpu0
                msgs = self.messages() - msgs0
                sim_frames = await self.sim_frames() - sim0
                final = await self.check("final")
                stats = feed.stats()
                consumer.cancel()
            logged = sum([(await sim.cmd("faults"))["count"] for sim in self.sims.values()])
        return self.report(elapsed, msgs, sim_frames, final, stats, logged)

    async def consume(self) -> None:
        async for n in self.feed:
            if n.kind == "update":
                self.consumed += 1

    def note(self, n: Any) -> None:
        """Keep every state change with its reason (for the faults that did not heal)."""
        if n.kind == "state":
            t = self.feed.session.track(n.venue, n.symbol)
            self.reasons.append((time.monotonic(), f"{n.venue}:{n.symbol}", n.state.value,
                                 t.reason[:120]))

    async def backlog(self) -> dict[str, int]:
        """Per venue: book frames the simulator queued minus the ones the driver read so far
        (a backlog that grows means the simulator's writer, not the driver, is behind)."""
        books = self.feed.stats()["books"]
        out = {}
        for v, sim in self.sims.items():
            sent = (await sim.cmd("stats"))["stats"][v]["frames"]
            out[v] = sent - sum(b["messages"] for k, b in books.items() if k[0] == v)
        return out

    def seen(self, f: dict[str, Any]) -> bool:
        """Whether a book of fault ``f``'s venue changed state since it was injected."""
        prefix = f["venue"] + ":"
        return any(t >= f["at"] and b.startswith(prefix) for t, b, _, _ in reversed(self.reasons))

    def all_live(self) -> bool:
        from fastbook.live import BookState

        return all(t.state is BookState.LIVE for t in self.feed.session.tracks.values())

    def messages(self) -> int:
        # per book (closed connections' frames included), not the venues' "messages"
        return sum(b["messages"] for b in self.feed.stats()["books"].values())

    async def sim_frames(self) -> int:
        return sum([(await sim.cmd("stats"))["stats"][v]["frames"]
                    for v, sim in self.sims.items()])

    def books_nbytes(self) -> tuple[int, int]:
        """The memory and levels of every book every open connection holds."""
        nbytes = levels = 0
        for c in self.feed.session.conns.values():
            for native in c.feed.symbols:
                b = c.feed.book(native)
                nbytes += b.nbytes
                levels += len(b)
        return nbytes, levels

    async def loop(self, t0: float) -> None:
        a = self.args
        next_fault = t0 + a.fault_every
        next_sample = t0 + a.warmup
        next_check = t0 + a.check_every if a.check_every else float("inf")
        i = 0
        pending: dict[str, Any] | None = None
        while (now := time.monotonic()) < t0 + a.seconds:
            if now >= next_sample:
                if not self.rss and a.tracemalloc:
                    import tracemalloc

                    self.heap0 = tracemalloc.take_snapshot()
                self.rss.append((round(now - t0, 1), rss_bytes()))
                self.book_bytes.append(self.books_nbytes())
                self.pymalloc.append(pymalloc_stats())
                self.lags.append(await self.backlog())
                next_sample += a.sample
            if now >= next_fault:
                if pending is not None:
                    self.settle(pending)
                pending = await self.inject(ROTATION[i % len(ROTATION)], i)
                i += 1
                next_fault += a.fault_every
            if now >= next_check and now + 5 < t0 + a.seconds:
                if pending is not None:
                    self.settle(pending)
                    pending = None
                await self.check(f"t={now - t0:.0f}s")
                next_check += a.check_every
                next_fault = max(next_fault, time.monotonic() + 0.5)
            if pending is not None and "live_again_s" not in pending and self.seen(pending) \
                    and self.all_live():
                pending["live_again_s"] = round(now - pending["at"], 3)
            await asyncio.sleep(0.05)
        if pending is not None:
            await asyncio.sleep(2.0)
            self.settle(pending)

    async def inject(self, item: tuple[str, str], i: int) -> dict[str, Any]:
        venue, kind = item
        syms = self.venues[venue]
        symbol = syms[i % len(syms)]
        before = self.feed.stats()
        if kind.startswith("rest:"):
            await self.sims[venue].cmd("rest_fault", venue=venue, kind=kind[5:], delay=0.5)
            await self.sims[venue].cmd("inject", venue=venue, kind="drop", symbol=symbol)
        elif kind in VENUE_WIDE:
            await self.sims[venue].cmd("inject", venue=venue, kind=kind)
        else:
            await self.sims[venue].cmd("inject", venue=venue, kind=kind, symbol=symbol)
        return {"t": round(time.monotonic() - self.t0, 2), "at": time.monotonic(),
                "venue": venue, "kind": kind,
                "symbol": None if kind in VENUE_WIDE else symbol, "before": before}

    def settle(self, f: dict[str, Any]) -> None:
        """Was fault ``f`` detected (a counter moved), and is every book live again?"""
        before, after = f.pop("before"), self.feed.stats()
        venue = f["venue"]
        keys = [k for k in after["books"] if k[0] == venue and
                (f["symbol"] is None or k[1] == f["symbol"])]
        moved = any(quiet_counts(after["books"][k]) != quiet_counts(before["books"][k])
                    or after["books"][k]["state_changes"] != before["books"][k]["state_changes"]
                    for k in keys)
        bv, av = before["venues"][venue], after["venues"][venue]
        moved = moved or any(av[k] != bv[k] for k in ("reconnects", "errors", "disconnects"))
        f["detected"] = moved
        f["healed"] = all(b["state"] == "live" for b in after["books"].values())
        at = f.pop("at")
        if not f["healed"]:
            f["changes"] = [[round(t - at, 3), b, st, r] for t, b, st, r in self.reasons
                            if t >= at][:12]
            f["not_live"] = {f"{k[0]}:{k[1]}": f"{b['state']} ({b['reason']})"
                             for k, b in after["books"].items() if b["state"] != "live"}
        self.faults.append(f)

    async def check(self, label: str) -> dict[str, Any]:
        """Pause every venue, let the driver read everything, compare every book exactly."""
        from fastbook.live import BookState
        from fastbook.testing import book_equals_truth

        t_start = time.monotonic()
        # live first with the stream running (a Binance book in resync waits for the
        # update that bridges its snapshot), then stop the streams
        await self.feed.wait_live(self.args.check_timeout)
        for v, sim in self.sims.items():
            await sim.cmd("pause", venue=v)
        t_pause = time.monotonic()
        for sim in self.sims.values():
            await sim.cmd("wait_idle", timeout=20)
        wrong: list[str] = []
        deadline = time.monotonic() + self.args.check_timeout
        while True:
            await asyncio.sleep(0.2)
            wrong = []
            for v, syms in self.venues.items():
                for s in syms:
                    truth = truth_levels(
                        (await self.sims[v].cmd("truth", venue=v, symbol=s))["truth"])
                    ok = self.feed.state(v, s) is BookState.LIVE and \
                        book_equals_truth(self.feed.book(v, s), truth)
                    if not ok:
                        wrong.append(f"{v}:{s}:{self.feed.state(v, s).value}")
            if not wrong or time.monotonic() > deadline:
                break
        for v, sim in self.sims.items():
            await sim.cmd("resume", venue=v)
        self.paused += time.monotonic() - t_pause
        result = {"at": label, "books": sum(len(s) for s in self.venues.values()),
                  "wrong": wrong, "seconds": round(time.monotonic() - t_start, 2)}
        self.checks.append(result)
        return result

    def report(self, elapsed: float, msgs: int, sim_frames: int, final: dict[str, Any],
               stats: dict[str, Any], logged: int) -> dict[str, Any]:
        a = self.args
        rss = [r for _, r in self.rss]
        mb = 1 / (1 << 20)
        by_kind: dict[str, dict[str, int]] = {}
        for f in self.faults:
            k = by_kind.setdefault(f"{f['venue']}:{f['kind']}",
                                   {"injected": 0, "detected": 0, "healed": 0})
            k["injected"] += 1
            k["detected"] += f["detected"]
            k["healed"] += f["healed"]
        heal = sorted(f["live_again_s"] for f in self.faults if "live_again_s" in f)
        live_again = {"n": len(heal), "p50": heal[len(heal) // 2] if heal else None,
                      "p90": heal[int(len(heal) * 0.9)] if heal else None,
                      "max": heal[-1] if heal else None,
                      "note": "fault injected -> its venue's books left live -> every book "
                              "live again, polled every 50 ms"}
        totals = {"resyncs": 0, "gaps": 0, "errors": 0, "checksum_failed": 0}
        for b in stats["books"].values():
            for name in totals:
                totals[name] += b[name]
        return {
            "seconds": round(elapsed, 1), "target_rate": a.rate,
            "books": {v: s for v, s in self.venues.items()},
            "per_book_rate": {v: round(r, 1) for v, r in self.rates.items()},
            "transport": a.transport, "driver_msgs_per_s": round(msgs / elapsed),
            "paused_for_checks_s": round(self.paused, 1),
            "driver_msgs_per_s_streaming": round(msgs / max(elapsed - self.paused, 1e-9)),
            "simulator_frames_per_s": round(sim_frames / elapsed),
            "driver_cpu_fraction": round(self.cpu / elapsed, 3),
            "driver_cpu_us_per_msg": round(self.cpu / max(msgs, 1) * 1e6, 2),
            "consumed_updates": self.consumed,
            "backlog_msgs": {"note": "simulator queued - driver read, per venue, at each sample",
                             "max": {v: max((lag[v] for lag in self.lags), default=None)
                                     for v in self.venues},
                             "last": self.lags[-1] if self.lags else None},
            "rss_mb": {"after_warmup": round(rss[0] * mb, 2) if rss else None,
                       "last": round(rss[-1] * mb, 2) if rss else None,
                       "max": round(max(rss) * mb, 2) if rss else None,
                       "growth": round((rss[-1] - rss[0]) * mb, 2) if rss else None,
                       "max_growth": round((max(rss) - rss[0]) * mb, 2) if rss else None,
                       "samples": len(rss), "every_s": a.sample, "warmup_s": a.warmup},
            "rss_samples": [[t, round(r * mb, 2)] for t, r in self.rss],
            "books_mb": {"note": "Book.nbytes() and levels of every connection's books, "
                                 "at each RSS sample",
                         "samples": [[t, round(b * mb, 3), n] for (t, _), (b, n)
                                     in zip(self.rss, self.book_bytes)]},
            "pymalloc": {"note": "t, arenas held, arenas high-water, MB in allocated blocks "
                                 "(CPython's small-object allocator; 1 MiB arenas)",
                         "samples": [[t, a, hw, round(u * mb, 2)] for (t, _), (a, hw, u)
                                     in zip(self.rss, self.pymalloc)]},
            "faults": {"injected": len(self.faults), "logged_by_simulator": logged,
                       "detected": sum(f["detected"] for f in self.faults),
                       "healed": sum(f["healed"] for f in self.faults), "by_kind": by_kind,
                       "live_again_s": live_again, "not_healed": [
                           f for f in self.faults if not f["healed"]][:20]},
            "driver_counts": totals,
            "venues": {v: {k: s[k] for k in ("state", "reconnects", "resyncs", "errors",
                                             "snapshots", "snapshot_failures")}
                       for v, s in stats["venues"].items()},
            "checks": len(self.checks),
            "wrong_books": sum(len(c["wrong"]) for c in self.checks),
            "wrong_at": [c for c in self.checks if c["wrong"]],
            "final_check": final,
        }


def summary(o: dict[str, Any]) -> str:
    r, f = o["rss_mb"], o["faults"]
    return "\n".join([
        f"soak {o['seconds']} s, {sum(len(s) for s in o['books'].values())} books, target "
        f"{o['target_rate']:g} msg/s: driver read {o['driver_msgs_per_s']} msg/s "
        f"(simulator wrote {o['simulator_frames_per_s']}/s), {o['transport']}",
        f"RSS after {r['warmup_s']:g} s warm-up {r['after_warmup']} MB, last {r['last']} MB, "
        f"max {r['max']} MB: growth {r['growth']} MB (max {r['max_growth']} MB, "
        f"{r['samples']} samples)",
        f"faults: {f['injected']} injected ({f['logged_by_simulator']} logged by the "
        f"simulator), {f['detected']} detected, {f['healed']} healed before the next",
        f"book checks against the truth: {o['checks']}, wrong books {o['wrong_books']}",
    ])


def _heap_growth(before: Any, top: int) -> dict[str, Any]:
    """What the Python heap grew by since ``before`` (a tracemalloc snapshot), in total
    and at its ``top`` growing source lines: tells Python objects that accumulate from
    native memory (buffers, the allocator) when RSS grows."""
    import tracemalloc

    after = tracemalloc.take_snapshot()
    diff = after.compare_to(before, "lineno")
    total = sum(d.size_diff for d in diff)
    return {"traced_growth_mb": round(total / 2**20, 3),
            "top": [[str(d.traceback), round(d.size_diff / 1024, 1), d.count_diff]
                    for d in diff[:top]]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--rate", type=float, default=20_000.0, help="messages/s, all books")
    ap.add_argument("--fault-every", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--sample", type=float, default=5.0, help="RSS sampling period, s")
    ap.add_argument("--check-every", type=float, default=120.0,
                    help="pause and compare every book this often (0: only at the end)")
    ap.add_argument("--check-timeout", type=float, default=15.0)
    ap.add_argument("--transport", default="websockets", choices=("websockets", "picows"))
    ap.add_argument("--uvloop", action="store_true", help="the simulator on uvloop")
    ap.add_argument("--sim-nice", type=int, default=0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="60 s, 15 s warm-up, one mid check")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                    help="trace Python allocations (slower) and report the heap's growth "
                         "after the warm-up and its N most growing source lines")
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                    help="print the figures as JSON (or write them to PATH)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.check_every = 60.0, 15.0, 30.0
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(1)
    soak = Soak(args)
    out = asyncio.run(soak.run())
    if soak.heap_growth is not None:
        out["heap_growth"] = soak.heap_growth
    report(out, args.json, summary)
    return out


if __name__ == "__main__":
    main()
