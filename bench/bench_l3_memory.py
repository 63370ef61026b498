"""Memory of live orders: one L3 book holding 10 million live orders.

The issue's target is at most 48 bytes per live order on top of level storage.
The figure is measured twice: from the book's own accounting (``nbytes`` minus
the allocated level slots) and from the process's resident memory (peak RSS
growth while the orders are added, in a fresh subprocess so nothing else is
counted). ``FASTBOOK_BENCH_LIVE_ORDERS`` changes the count (the CI smoke run
uses a small one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

LIVE_ORDERS = int(os.environ.get("FASTBOOK_BENCH_LIVE_ORDERS", "10000000"))

_CHILD = r"""
import json, resource, sys
import numpy as np
from fastbook import l3
from fastbook.events import EVENT_DTYPE

n = int(sys.argv[1])
bs = l3.BookSet(on_error="skip")
bs.add_instrument("X", price_decimals=4, capacity=16, order_capacity=16)
book = bs[0]
rng = np.random.Generator(np.random.PCG64(20240607))
batch = np.zeros(1 << 20, EVENT_DTYPE)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
done = 0
while done < n:
    k = min(len(batch), n - done)
    ev = batch[:k]
    ev["action"] = 1
    side = rng.integers(1, 3, k)
    ticks = rng.integers(1, 2001, k)
    ev["side"] = side
    ev["price"] = np.where(side == 1, 1_000_000 - ticks, 1_000_000 + ticks)
    ev["qty"] = rng.integers(1, 1000, k)
    ev["order_id"] = np.arange(done, done + k, dtype=np.uint64) * 3 + 17
    bs.apply(ev)
    done += k
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
scale = 1 if sys.platform == "darwin" else 1024
levels = book.capacity(1) + book.capacity(2)
print(json.dumps({
    "orders": book.order_count,
    "nbytes": book.nbytes,
    "level_bytes": levels * l3.BYTES_PER_LEVEL,
    "rss_growth": (peak - base) * scale,
    "bytes_per_order_slot": l3.BYTES_PER_ORDER,
    "order_capacity": book.order_capacity,
    "errors": sum(bs.errors.values()),
}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="resource.getrusage is POSIX only")
def test_live_order_memory(benchmark: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes per live order with LIVE_ORDERS orders resting in one book."""

    def run() -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(LIVE_ORDERS)],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["orders"] == LIVE_ORDERS and result["errors"] == 0
    per_order = (result["nbytes"] - result["level_bytes"]) / result["orders"]
    rss_per_order = result["rss_growth"] / result["orders"]
    benchmark.extra_info.update(live_orders=LIVE_ORDERS, bytes_per_order=round(per_order, 2),
                                rss_bytes_per_order=round(rss_per_order, 2),
                                order_capacity=result["order_capacity"])
    with capsys.disabled():
        print(f"\n{LIVE_ORDERS:,} live orders in one L3 book: {per_order:.1f} bytes/order by "
              f"the book's accounting (capacity {result['order_capacity']:,} slots of "
              f"{result['bytes_per_order_slot']} bytes), {rss_per_order:.1f} bytes/order of "
              f"peak RSS growth (target <= 48 on top of levels)")
