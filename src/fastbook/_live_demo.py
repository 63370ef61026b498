"""``fastbook demo --live``: the live table against the built-in loopback exchange simulator.

Starts :class:`fastbook.testing.ExchangeSimulator` in-process on 127.0.0.1 (a
few venues, synthetic books), points the live driver at it with endpoint
overrides, and shows the same table as ``fastbook live``. A few seconds in it
injects faults (a checksum that does not match on OKX, a lost message on
Binance), so the table shows those books leave ``live``, resync and come
back. The last line says what was shown: the books live at the end, and each
fault with when it was detected and healed. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEMO_FAULTS", "DEMO_VENUES", "demo_command", "run_demo"]

#: The simulated venues and their symbols.
DEMO_VENUES = {"binance-spot": ["BTCUSDT", "ETHUSDT"], "okx": ["BTC-USDT"],
               "kraken-v2": ["BTC/USD"], "coinbase-advanced": ["BTC-USD"]}
#: (venue, fault, symbol) injected a few seconds in.
DEMO_FAULTS = (("okx", "bad_checksum", "BTC-USDT"), ("binance-spot", "drop", "BTCUSDT"))


@dataclass
class _Watch:
    """One injected fault and what became of its book."""

    venue: str
    kind: str
    symbol: str
    injected: float = 0.0
    detected: float | None = None
    healed: float | None = None
    reason: str = ""
    marks: list[str] = field(default_factory=list)

    def line(self) -> str:
        what = f"{self.venue} {self.symbol} {self.kind}"
        if self.detected is None:
            return f"{what}: not detected"
        found = f"detected after {(self.detected - self.injected) * 1e3:.0f} ms"
        if self.reason:
            found += f" ({self.reason.split(':')[0]})"
        if self.healed is None:
            return f"{what}: {found}, not healed yet"
        return f"{what}: {found}, healed in {(self.healed - self.detected) * 1e3:.0f} ms"


def _feeds(sim: Any) -> list[Any]:
    """The demo's live books (one LiveBooks; each venue at the depth it offers)."""
    from fastbook.live import live

    specs = [f"{venue}:{s}" for venue, symbols in DEMO_VENUES.items() for s in symbols]
    return [live(specs, endpoints=sim.endpoints, on_not_live="return", backoff_s=0.1)]


def _watch(feeds: list[Any], watches: list[_Watch]) -> None:
    """Note, for each fault, when its book first left live after it and when it came back."""
    for feed in feeds:
        def seen(n: Any, feed: Any = feed) -> None:
            if n.kind != "state":
                return
            for w in watches:
                if not w.injected or (w.venue, w.symbol) != (n.venue, n.symbol):
                    continue
                now = time.monotonic()
                if n.state.value != "live" and w.detected is None:
                    w.detected = now
                    w.reason = feed.session.track(n.venue, n.symbol).reason
                elif n.state.value == "live" and w.detected is not None and w.healed is None:
                    w.healed = now
        feed.on_notice(seen)


def _rows(feeds: list[Any], prev: dict[Any, int], dt: float) -> list[str]:
    from fastbook._live_cli import table

    rows: list[str] = []
    for feed in feeds:
        part = table(feed, prev, dt)
        rows += part if not rows else part[1:]
    return rows


def _all_live(feeds: list[Any]) -> bool:
    return all(t.state.value == "live" for f in feeds for t in f.session.tracks.values())


async def run_demo(duration: float = 10.0, out: Any = None, refresh: float = 1.0,
                   fault_at: float | None = None) -> int:
    """Run the demo for ``duration`` seconds (plus up to 10 s for books still healing).

    Returns 0 when every book is live at the end and every fault was detected
    and healed, else 1.
    """
    from fastbook.testing import ExchangeSimulator

    out = sys.stdout if out is None else out
    tty = out.isatty()
    fault_at = min(3.0, duration / 3) if fault_at is None else fault_at
    watches = [_Watch(v, k, s) for v, k, s in DEMO_FAULTS]
    n_books = sum(len(s) for s in DEMO_VENUES.values())
    print(f"fastbook demo --live: {n_books} books on {len(DEMO_VENUES)} simulated venues "
          f"(loopback, synthetic); faults at {fault_at:.1f} s: "
          + ", ".join(f"{v} {k}" for v, k, _ in DEMO_FAULTS), file=out, flush=True)
    async with ExchangeSimulator(DEMO_VENUES, rate=50, seed=7) as sim:
        feeds = _feeds(sim)
        _watch(feeds, watches)
        for f in feeds:
            await f.start()
        try:
            await _show(feeds, sim, watches, duration, fault_at, refresh, out, tty)
            end = time.monotonic() + 10.0
            while time.monotonic() < end and not (_all_live(feeds) and all(
                    w.healed is not None for w in watches)):
                await asyncio.sleep(0.05)
            live = sum(t.state.value == "live" for f in feeds for t in f.session.tracks.values())
        finally:
            for f in feeds:
                await f.stop()
    healed = sum(w.healed is not None for w in watches)
    for w in watches:
        print(f"  {w.line()}", file=out)
    ok = live == n_books and healed == len(watches)
    print(f"fastbook demo --live: {live} of {n_books} books live at the end; "
          f"{len(watches)} faults injected, "
          f"{sum(w.detected is not None for w in watches)} detected, {healed} healed"
          + ("" if ok else " (not all: see above)"), file=out, flush=True)
    return 0 if ok else 1


def _inject(sim: Any, watches: list[_Watch]) -> None:
    for w in watches:
        w.injected = time.monotonic()
        sim.inject(w.venue, w.kind, symbol=w.symbol)


async def _show(feeds: list[Any], sim: Any, watches: list[_Watch], duration: float,
                fault_at: float, refresh: float, out: Any, tty: bool) -> None:
    """The table every ``refresh`` s for ``duration`` s; the faults once every book is live
    and ``fault_at`` s have passed (at the end at the latest)."""
    prev: dict[Any, int] = {}
    drawn = 0
    start = last = time.monotonic()
    injected = False
    while (now := time.monotonic()) - start < duration:
        if not injected and now - start >= fault_at and _all_live(feeds):
            _inject(sim, watches)
            injected = True
        await asyncio.sleep(min(0.1, max(0.0, duration - (now - start))))
        if time.monotonic() - last < refresh:
            continue
        rows = _rows(feeds, prev, time.monotonic() - last)
        last = time.monotonic()
        if tty and drawn:
            out.write(f"\x1b[{drawn}F\x1b[J")           # back to the table's top
        out.write("\n".join(rows) + "\n")
        out.flush()
        drawn = len(rows)
    if not injected:                    # the books were slow to come up: inject now
        _inject(sim, watches)


def demo_command(args: Any) -> int:
    """``fastbook demo --live``: needs the ``[live]`` extra (websockets)."""
    from fastbook._extras import missing

    try:
        import websockets  # noqa: F401
    except ImportError:
        print(f"fastbook demo --live: {missing('live', 'the live demo')}", file=sys.stderr)
        return 2
    duration = getattr(args, "duration", None)
    duration = 10.0 if duration is None else duration
    if not duration > 0:
        print("fastbook demo --live: --duration must be > 0 seconds", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_demo(duration))
    except KeyboardInterrupt:
        return 130
