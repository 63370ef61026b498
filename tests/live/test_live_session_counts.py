"""Counters of the session across closed connections (found by the soak bench).

Both failed before the session fixes that came with them. Sans-IO: a
:class:`~fastbook.live.Session` fed by hand, no sockets.
"""

from __future__ import annotations

import pytest

import fastbook as fb
from fastbook.live import Session

BYBIT_PONG = '{"success":true,"ret_msg":"pong","conn_id":"1","req_id":"","op":"ping"}'


@pytest.mark.parametrize("call", ["received", "rest"])
def test_a_frame_or_snapshot_after_close_is_counted_not_raised(call):
    s = Session([("binance-usdm", "BTCUSDT", "BTCUSDT")])
    s.open(1, "binance-usdm", ["BTCUSDT"], t_ns=1)
    s.closed(1, "gone", t_ns=2)
    # a transport can deliver a frame already read off the socket after the close was
    # seen, and a REST answer can land after its connection closed: both are counted
    if call == "received":
        s.received(1, '{"stream":"btcusdt@depth@100ms","data":{}}', 3)
    else:
        s.rest(1, "BTCUSDT", b'{"lastUpdateId":1,"bids":[],"asks":[]}', 3)
    assert sum(s.late.values()) == 1, s.late


def test_venue_messages_keep_the_frames_of_closed_connections():
    feed = fb.live(["bybit:BTCUSDT"])
    s = feed.session
    s.open(1, "bybit", ["BTCUSDT"], t_ns=1)
    for i in range(5):
        s.received(1, BYBIT_PONG, 10 + i)
    assert feed.stats()["venues"]["bybit"]["messages"] == 5
    s.closed(1, "gone", t_ns=20)
    s.open(2, "bybit", ["BTCUSDT"], t_ns=21)
    s.received(2, BYBIT_PONG, 22)
    assert feed.stats()["venues"]["bybit"]["messages"] == 6
