"""``python -m fastbook.testing --venues binance-spot:BTCUSDT,ETHUSDT okx:BTC-USDT --rate 1000``.

Runs the exchange simulator in this process until interrupted (or ``--seconds``) and
prints its endpoints as one JSON line on stdout, then its stats as a second line on exit.

With ``--control`` it also reads one JSON command per line on stdin and answers each
with one JSON line on stdout (``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``),
so a benchmark in another process can inject faults and read the truth books; the
simulator stops when stdin closes (its parent went away). See ``docs/simulator.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from typing import Any

from fastbook.testing._sim import ExchangeSimulator


def _venues(items: list[str]) -> dict[str, list[str]]:
    venues: dict[str, list[str]] = {}
    for item in items:
        venue, sep, symbols = item.partition(":")
        if not sep or not symbols:
            raise SystemExit(f"--venues: {item!r} is not VENUE:SYMBOL[,SYMBOL...]")
        venues.setdefault(venue, []).extend(s for s in symbols.split(",") if s)
    return venues


def _plain(truth: dict[str, Any]) -> dict[str, Any]:
    """A truth book as JSON-able data: Decimals as their exact text."""
    return {"bids": [[str(p), str(q)] for p, q in truth["bids"]],
            "asks": [[str(p), str(q)] for p, q in truth["asks"]],
            "sequence": truth["sequence"]}


async def command(sim: ExchangeSimulator, line: str) -> dict[str, Any]:
    """Carry out one control command (a JSON object with ``"cmd"``) and say how it went.

    Commands: ``inject`` (venue, kind, symbol?, count?), ``rest_fault`` (venue, kind,
    count?, retry_after?, delay?), ``pause`` / ``resume`` (venue), ``wait_idle``
    (timeout?), ``truth`` (venue, symbol, depth?), ``stats``, ``faults`` (since?: the
    index of the first fault to list), ``ping``.
    """
    try:
        msg = json.loads(line)
    except ValueError as e:
        return {"ok": False, "error": f"control: not JSON ({e}): {line[:80]!r}"}
    if not isinstance(msg, dict) or not isinstance(msg.get("cmd"), str):
        return {"ok": False, "error": f"control: not an object with a 'cmd': {line[:80]!r}"}
    cmd = msg.pop("cmd")
    try:
        return {"ok": True, **await _dispatch(sim, cmd, msg)}
    except (ValueError, TypeError, KeyError, TimeoutError) as e:
        return {"ok": False, "error": f"control {cmd}: {type(e).__name__}: {e}"}


async def _dispatch(sim: ExchangeSimulator, cmd: str, a: dict[str, Any]) -> dict[str, Any]:
    if cmd == "ping":
        return {}
    if cmd == "inject":
        sim.inject(a["venue"], a["kind"], symbol=a.get("symbol"), count=int(a.get("count", 1)))
        return {}
    if cmd == "rest_fault":
        sim.rest_fault(a["venue"], a["kind"], count=int(a.get("count", 1)),
                       retry_after=float(a.get("retry_after", 1.0)),
                       delay=float(a.get("delay", 1.0)))
        return {}
    if cmd == "pause":
        sim.pause(a["venue"])
        return {}
    if cmd == "resume":
        sim.resume(a["venue"])
        return {}
    if cmd == "wait_idle":
        await sim.wait_idle(float(a.get("timeout", 10.0)))
        return {}
    if cmd == "truth":
        depth = a.get("depth")
        return {"truth": _plain(sim.truth(a["venue"], a["symbol"],
                                          None if depth is None else int(depth)))}
    if cmd == "stats":
        return {"stats": sim.stats()}
    if cmd == "faults":
        since = int(a.get("since", 0))
        return {"count": len(sim.faults),
                "faults": [[f.time, f.venue, f.symbol, f.kind, f.detail]
                           for f in sim.faults[since:]]}
    raise ValueError(f"unknown command {cmd!r}: one of ping, inject, rest_fault, pause, "
                     "resume, wait_idle, truth, stats, faults")


def _read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """The reader thread: every stdin line onto the loop's queue, None at end of file."""
    try:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)
    except RuntimeError:              # the loop closed first: nobody is listening
        pass


async def _control(sim: ExchangeSimulator) -> None:
    """Answer stdin commands in order until stdin closes."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_stdin, args=(asyncio.get_running_loop(), lines),
                     name="fastbook-sim-control", daemon=True).start()
    while (line := await lines.get()) is not None:
        if line.strip():
            print(json.dumps(await command(sim, line)), flush=True)


async def _run(sim: ExchangeSimulator, seconds: float | None, control: bool) -> None:
    async with sim:
        print(json.dumps(sim.endpoints), flush=True)
        try:
            waits = [asyncio.ensure_future(asyncio.Event().wait() if seconds is None
                                           else asyncio.sleep(seconds))]
            if control:
                waits.append(asyncio.ensure_future(_control(sim)))
            _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
        finally:
            print(json.dumps(sim.stats()), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastbook.testing",
                                description="loopback exchange simulator (127.0.0.1 only)")
    p.add_argument("--venues", nargs="+", required=True, metavar="VENUE:SYM,SYM")
    p.add_argument("--rate", type=float, default=1000.0,
                   help="messages/s per symbol; 0: as fast as the sockets take them")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--levels", type=int, nargs=2, default=(10, 20), metavar=("MIN", "MAX"),
                   help="levels changed per synthetic message (default 10 20)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--rest-weight-limit", type=int, default=6000,
                   help="Binance REST weight per minute (default 6000)")
    p.add_argument("--control", action="store_true",
                   help="read JSON commands on stdin, one answer line each; stop at EOF")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop (the [fast] extra)")
    a = p.parse_args(argv)
    try:
        sim = ExchangeSimulator(_venues(a.venues), rate=a.rate or None, seed=a.seed,
                                levels_per_message=tuple(a.levels),
                                rest_weight_limit=a.rest_weight_limit)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runner = asyncio.run
    if a.uvloop:
        import uvloop
        runner = uvloop.run
    try:
        runner(_run(sim, a.seconds, a.control))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
