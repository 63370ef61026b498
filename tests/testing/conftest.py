"""Shared helpers of the simulator tests: a websocket client and an HTTP GET on loopback."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

pytest.importorskip("websockets")


async def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` in a thread (urllib); non-2xx answers are returned, not raised."""
    def get() -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()
    return await asyncio.to_thread(get)


async def recv_json(ws: Any, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))
