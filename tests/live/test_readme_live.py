"""The README's live example runs as written, against the loopback simulator.

The block is executed unchanged inside a coroutine; only ``fb.live`` is wrapped to add
the simulator's endpoints (nothing leaves 127.0.0.1) and ``print`` to stop the endless
``async for`` after enough BBO changes of every book.
"""

from __future__ import annotations

import asyncio
import textwrap

import pytest

import fastbook as fb
from fastbook.testing import ExchangeSimulator
from tests.package.test_readme import readme_block

pytest.importorskip("websockets")

VENUES = {"binance-spot": ["BTCUSDT"], "coinbase-advanced": ["BTC-USD"],
          "kraken-v2": ["BTC/USD"], "okx": ["BTC-USDT"], "bybit": ["BTCUSDT"]}


class Enough(Exception):
    pass


def test_the_readme_live_example_shows_every_book(monkeypatch):
    code = readme_block("<!-- readme-live:")
    lines: list[tuple] = []

    def collect(*args):
        lines.append(args)
        if {a[:2] for a in lines} >= want and len(lines) >= 20:
            raise Enough

    # notices name the venue in full and the symbol as the spec wrote it
    want = {("binance-spot", "BTC/USDT"), ("coinbase-advanced", "BTC-USD"),
            ("kraken-v2", "BTC/USD"), ("okx", "BTC-USDT"), ("bybit", "BTCUSDT")}

    async def main():
        async with ExchangeSimulator(VENUES, rate=100, seed=21) as sim:
            real = fb.live

            def live(specs, **options):
                return real(specs, endpoints=sim.endpoints, **options)

            monkeypatch.setattr(fb, "live", live)
            scope = {"print": collect}
            src = "async def example():\n" + textwrap.indent(code, "    ")
            exec(compile(src, "README.md", "exec"), scope)
            with pytest.raises(Enough):
                await asyncio.wait_for(scope["example"](), 30)

    asyncio.run(main())
    for venue, symbol, bbo in lines:
        assert (venue, symbol) in want
        bid, _, ask, _ = bbo
        assert bid is not None and ask is not None and bid < ask
