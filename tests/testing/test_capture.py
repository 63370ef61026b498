"""source="capture": the Binance captures replayed, synced by the codecs to the truth."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("websockets")

from fastbook.codecs.binance import BinanceSpot, BinanceUSDM
from fastbook.testing import ExchangeSimulator, book_equals_truth
from fastbook.testing._capture import parse_fixed
from tests.testing.test_binance_bybit import binance_client

# the captures of this checkout (an installed fastbook does not know where they are)
ROOT = __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "data", "l2",
                                  "cryptofeed")


def test_parse_fixed() -> None:
    assert parse_fixed("0.35210000", 8) == 35_210_000
    assert parse_fixed("12", 2) == 1200
    for bad in ("1.000000001", "x", "-1", "1e5"):
        with pytest.raises(ValueError):
            parse_fixed(bad, 8)


@pytest.mark.parametrize("venue,syms,feed", [("binance-spot", ["NKNUSDT"], BinanceSpot),
                                             ("binance-usdm", ["SUSHIUSDT"], BinanceUSDM)])
def test_capture_replay_syncs_to_truth(venue: str, syms: list[str], feed: type) -> None:
    async def go() -> None:
        async with ExchangeSimulator({venue: syms}, rate=500, source="capture",
                                     capture_root=ROOT) as sim:
            start = sim.truth(venue, syms[0])["sequence"]
            f = feed(on_error="skip")
            await binance_client(sim, venue, syms, 5, f)
            truth = sim.truth(venue, syms[0])
            assert truth["sequence"] > start
            assert f.is_synced(syms[0]) and f.counts()["gaps"] == 0
            assert book_equals_truth(f.book(syms[0]), truth)
    asyncio.run(asyncio.wait_for(go(), 20))


def test_capture_refuses_venues_and_symbols_it_cannot_serve() -> None:
    with pytest.raises(ValueError, match="replays"):
        ExchangeSimulator({"okx": ["BTC-USDT"]}, source="capture", capture_root=ROOT)
    with pytest.raises(ValueError, match="no snapshot of"):
        ExchangeSimulator({"binance-spot": ["NOPEUSDT"]}, source="capture", capture_root=ROOT)
