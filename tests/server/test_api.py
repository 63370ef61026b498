"""The server's constructor and hub refuse what they cannot serve, naming it."""

from __future__ import annotations

import pytest

import fastbook as fb
from fastbook.server import Hub, Replay, Server, Version
from tests.server.conftest import COINBASE


@pytest.mark.parametrize(("kwargs", "exc", "words"), [
    ({"source": object()}, TypeError, "source must be"),
    ({"ws_port": None}, ValueError, "ws_port or grpc_port"),
    ({"ws_port": -1}, ValueError, "not a port number"),
    ({"depth": 0}, ValueError, "depth must be >= 1"),
    ({"instruments": []}, ValueError, "at least one instrument"),
    ({"instruments": ["x:A", "x:A"]}, ValueError, "named twice: x:A"),
    ({"source": Replay(COINBASE), "instruments": ["okx:A", "kraken-v1:B"]}, ValueError,
     "one venue"),
    ({"source": Replay(COINBASE), "instruments": ["itch50:A"]}, ValueError,
     "not an L2 feed codec"),
])
def test_bad_server_arguments(kwargs, exc, words):
    args = {"source": None, "instruments": ["x:A"], **kwargs}
    source, instruments = args.pop("source"), args.pop("instruments")
    with pytest.raises(exc, match=words):
        Server(source, instruments, **args)


def test_bad_replay_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Replay(tmp_path / "nope.gz")
    with pytest.raises(ValueError, match="speed must be >= 0"):
        Replay(COINBASE, speed=-1)
    with pytest.raises(ValueError, match="repeat must be >= 0"):
        Replay(COINBASE, repeat=-1)


def test_each_format_is_encoded_once_per_version():
    hub = Hub(["x:A"])
    book = fb.Book(price_decimals=1, qty_decimals=2)
    book.set(fb.BID, 995, 150)
    book.set(fb.ASK, 1005, 250)
    v = hub.publish(0, book)
    assert isinstance(v, Version)
    assert v.json() is v.json() and v.protobuf() is v.protobuf()
    assert v.ws_frame() is v.ws_frame() and v.ws_frame()[4:] == v.json()
    assert v.ws_frame()[:4] == bytes((0x81, 126)) + len(v.json()).to_bytes(2, "big")
    assert b'"bids_text":[["99.5","1.50"]]' in v.json(decimals=True)
    assert b'"spread_text":"1.0"' in v.json(decimals=True)
    big = Version(0, "x" * 70_000, 1, 1, 0, 0, 0, 0, [], [])
    frame = big.ws_frame()
    assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == len(big.json())
    mid = Version(0, "x" * 300, 1, 1, 0, 0, 0, 0, [], [])
    assert mid.ws_frame()[1] == 126 and int.from_bytes(mid.ws_frame()[2:4], "big") \
        == len(mid.json())
