"""Memory of live orders: one L3 book holding 10 million live orders.

The goal is at most 48 bytes per live order on top of level storage.
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
reserved = sys.argv[2] == "reserved"
rng = np.random.Generator(np.random.PCG64(20240607))
batch = np.zeros(1 << 20, EVENT_DTYPE)
batch.fill(0)   # touch its pages now, so the baseline includes them
def rss_now():
    # resident set size now (Linux), in bytes; None elsewhere
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None

base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base_now = rss_now()
bs = l3.BookSet(on_error="skip")
bs.add_instrument("X", price_decimals=4, capacity=16, order_capacity=n if reserved else 16)
book = bs[0]
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
del ev, side, ticks     # the last batch's temporaries: only the book should remain
end_now = rss_now()
scale = 1 if sys.platform == "darwin" else 1024
levels = book.capacity(1) + book.capacity(2)
print(json.dumps({
    "orders": book.order_count,
    "nbytes": book.nbytes,
    "level_bytes": levels * l3.BYTES_PER_LEVEL,
    "rss_growth": (peak - base) * scale,
    "rss_held": None if base_now is None else end_now - base_now,
    "bytes_per_order_slot": l3.BYTES_PER_ORDER,
    "order_capacity": book.order_capacity,
    "hash_slots": book.hash_slots,
    "errors": sum(bs.errors.values()),
}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="resource.getrusage is POSIX only")
@pytest.mark.parametrize("pool", ["grown", "reserved"])
def test_live_order_memory(benchmark: Any, capsys: pytest.CaptureFixture[str], pool: str) -> None:
    """Bytes per live order with LIVE_ORDERS orders resting in one book.

    ``grown``: the book starts with 16 order records and grows by half as
    needed; ``reserved``: ``order_capacity`` is the final count up front.
    """

    def run() -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(LIVE_ORDERS), pool],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["orders"] == LIVE_ORDERS and result["errors"] == 0
    per_order = (result["nbytes"] - result["level_bytes"]) / result["orders"]
    rss_per_order = result["rss_growth"] / result["orders"]
    held = result["rss_held"]
    held_text = "" if held is None else f", {held / result['orders']:.1f} held at the end"
    benchmark.extra_info.update(live_orders=LIVE_ORDERS, bytes_per_order=round(per_order, 2),
                                rss_bytes_per_order=round(rss_per_order, 2),
                                order_capacity=result["order_capacity"], pool=pool)
    with capsys.disabled():
        print(f"\n{LIVE_ORDERS:,} live orders in one L3 book ({pool} pool): {per_order:.1f} "
              f"bytes/order allocated ({result['order_capacity']:,} records of "
              f"{result['bytes_per_order_slot']} bytes + {result['hash_slots']:,} 4-byte hash "
              f"slots); resident: {rss_per_order:.1f} bytes/order of peak growth (growth "
              f"copies included){held_text} (target <= 48 on top of levels)")
