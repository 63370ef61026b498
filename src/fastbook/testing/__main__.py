"""``python -m fastbook.testing --venues binance-spot:BTCUSDT,ETHUSDT okx:BTC-USDT --rate 1000``.

Runs the exchange simulator in this process until interrupted (or ``--seconds``) and
prints its endpoints as one JSON line on stdout, then its stats as a second line on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from fastbook.testing._sim import ExchangeSimulator


def _venues(items: list[str]) -> dict[str, list[str]]:
    venues: dict[str, list[str]] = {}
    for item in items:
        venue, sep, symbols = item.partition(":")
        if not sep or not symbols:
            raise SystemExit(f"--venues: {item!r} is not VENUE:SYMBOL[,SYMBOL...]")
        venues.setdefault(venue, []).extend(s for s in symbols.split(",") if s)
    return venues


async def _run(sim: ExchangeSimulator, seconds: float | None) -> None:
    async with sim:
        print(json.dumps(sim.endpoints), flush=True)
        try:
            if seconds is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(seconds)
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
    p.add_argument("--uvloop", action="store_true", help="run on uvloop (the [fast] extra)")
    a = p.parse_args(argv)
    try:
        sim = ExchangeSimulator(_venues(a.venues), rate=a.rate or None, seed=a.seed,
                                levels_per_message=tuple(a.levels))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runner = asyncio.run
    if a.uvloop:
        import uvloop
        runner = uvloop.run
    try:
        runner(_run(sim, a.seconds))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
