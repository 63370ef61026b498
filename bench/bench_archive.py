"""The archive of a replay (``fastbook.archive``, issue 22 item 4) on the ITCH benchmark day.

``python bench/bench_archive.py`` prints one table; ``python -m pytest
bench/bench_archive.py`` runs a small version (the smoke run). Settings:

* ``FASTBOOK_BENCH_ARCHIVE_DAY``      an ITCH 5.0 BinaryFILE (default: the 20M-message
  benchmark day ``bench/bench_itch.py`` caches, if there, else a synthetic day of
  ``FASTBOOK_BENCH_ARCHIVE_MESSAGES`` messages, default 2,000,000, 500 symbols)
* ``FASTBOOK_BENCH_ARCHIVE_CODEC``    ``zstd`` (default when zstandard is installed) or ``zlib``
* ``FASTBOOK_BENCH_ARCHIVE_LOOKUPS``  random ``book_at`` calls timed (default 1000)
* ``FASTBOOK_BENCH_ARCHIVE_DIR``      where the archive is written (default: a temporary dir)

Figures, each against a baseline measured in the same run:

1. writing: ``fb.replay(day, archive=..., checkpoint="1s")`` against the plain
   ``fb.replay(day)`` (ratio);
2. size: the archive against the raw file, and against per-tick top-10 snapshots,
   computed (not written) as one sample row after every event: ``events`` x 341 bytes
   (ts 8, instrument 4, sequence 8, reason 1, 40 levels x 8), the row of ``every=1``;
3. ``book_at``: median and p99 over random (symbol, t), symbols uniform, t uniform in
   the symbol's span of exchange time;
4. ``samples`` of a one-hour window (``every="1s"``) against replaying the day with
   ``symbols=[symbol], every="1s"`` (and checks the rows are the same);
5. what true one-second keyframes would weigh, estimated: the (book, second) pairs that
   see an event, times the mean compressed size of 300 random keyframes.

Nothing is asserted on time (targets: size at most 1.5x the raw file, ``book_at``
median at most 5 ms); every result is checked for exactness on a few lookups.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import fastbook as fb
import fastbook.archive as fa
from _days import cached_day  # bench/_days.py (bench/ is on sys.path)

LOOKUPS = int(os.environ.get("FASTBOOK_BENCH_ARCHIVE_LOOKUPS", "1000"))
#: Bytes of one top-10 sample row (ts, instrument, sequence, reason, 4 x 10 levels).
ROW_BYTES = 8 + 4 + 8 + 1 + 4 * 10 * 8
HOUR = 3_600 * 10**9


def _day() -> str:
    path = cached_day("FASTBOOK_BENCH_ARCHIVE_DAY")
    if path:
        return path
    from fastbook.synth import itch_day

    n = int(os.environ.get("FASTBOOK_BENCH_ARCHIVE_MESSAGES", "2000000"))
    out = Path(tempfile.mkdtemp()) / "day.itch"
    out.write_bytes(itch_day(n, n_symbols=500))
    return str(out)


def _codec() -> str:
    return os.environ.get("FASTBOOK_BENCH_ARCHIVE_CODEC", "auto")


def measure(day: str, workdir: str, lookups: int = LOOKUPS, codec: str = "auto",
            seed: int = 22) -> dict[str, Any]:
    """Every figure of the table, as a dict."""
    out: dict[str, Any] = {"day": day, "raw_bytes": os.path.getsize(day)}
    fb.replay(day)                      # warm the page cache for both runs
    t0 = time.perf_counter()
    plain = fb.replay(day)
    out["plain_s"] = time.perf_counter() - t0
    path = os.path.join(workdir, "day.fba")
    t0 = time.perf_counter()
    fb.replay(day, archive=fa.Target(path, codec=codec), checkpoint="1s")
    out["write_s"] = time.perf_counter() - t0
    out["archive_bytes"] = os.path.getsize(path)
    archive = fa.open(path)
    out["codec"] = archive.codec
    out["events"] = len(archive)
    out["blocks"] = int(archive.header["blocks"])
    out["tick_bytes"] = len(archive) * ROW_BYTES
    # book_at at random (symbol, t)
    rng = random.Random(seed)
    spans = {}
    for meta in archive.instruments:
        blocks = archive._blocks.get(meta["id"])
        if blocks is not None and len(blocks):
            spans[meta["symbol"]] = (int(blocks["ts_first"][0]), int(blocks["ts_max"][-1]))
    symbols = sorted(spans)
    calls = [(s, rng.randint(*spans[s])) for s in (rng.choice(symbols) for _ in range(lookups))]
    took = []
    for symbol, t in calls:
        t0 = time.perf_counter()
        archive.book_at(symbol, t)
        took.append(time.perf_counter() - t0)
    out["book_at_median_s"] = float(np.median(took))
    out["book_at_p99_s"] = float(np.percentile(took, 99))
    # exactness: the end of the day is the replay's book, for every symbol
    for symbol in symbols:
        assert archive.book_at(symbol, 2**62).orders().tobytes() == \
            plain.book(symbol).orders().tobytes(), symbol
    # samples of one hour against re-replaying the day for that symbol
    symbol = max(symbols, key=lambda s: spans[s][1] - spans[s][0])
    lo, hi = spans[symbol]
    t_start = lo + max(0, (hi - lo - HOUR) // 2)
    t0 = time.perf_counter()
    window = archive.samples(symbol, t_start, t_start + HOUR, every="1s", depth=10)
    out["samples_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = fb.replay(day, every="1s", depth=10, symbols=[symbol]).samples
    out["resample_s"] = time.perf_counter() - t0
    keep = (full["ts"] >= t_start) & (full["ts"] < t_start + HOUR)
    for key in ("ts", "bid_px", "bid_qty", "ask_px", "ask_qty", "sequence"):
        assert np.array_equal(window[key], full[key][keep]), key
    out["samples_rows"] = int(keep.sum())
    out["samples_symbol"] = symbol
    out.update(every_second(archive, rng))
    archive.close()
    return out


def every_second(archive: fa.Archive, rng: random.Random, sampled: int = 300
                 ) -> dict[str, Any]:
    """What a keyframe per changed book per second would weigh, estimated: the (book,
    second) pairs that see an event, times the mean compressed size of ``sampled``
    random keyframes of this archive (encoded and compressed as the writer does)."""
    from fastbook.archive import _compressor, _shuffle

    pairs = 0
    for symbol in archive.symbols:
        ts = archive.events(symbol)["ts_exchange"]
        pairs += len(np.unique(ts // 10**9))
    compress = _compressor(archive.codec, None)
    size = 0
    for _ in range(sampled):
        meta = archive.instruments[rng.randrange(len(archive.instruments))]
        blocks = archive._blocks[meta["id"]]
        b = rng.randrange(len(blocks))
        (orders,), _ = archive._read(meta, blocks[b], b)
        size += len(compress(_shuffle(orders["order_id"]) + orders["side"].tobytes()
                             + _shuffle(orders["price"]) + _shuffle(orders["qty"])))
    return {"book_seconds": pairs, "keyframe_bytes": size / sampled,
            "every_second_bytes": pairs * size / sampled}


def report(m: dict[str, Any]) -> str:
    mb = 1 << 20
    return "\n".join([
        f"archive of {m['day']} ({m['events']:,} events, {m['blocks']:,} blocks, "
        f"codec {m['codec']}, checkpoint 1s)",
        f"write:   {m['write_s']:.2f} s against a plain replay's {m['plain_s']:.2f} s: "
        f"{m['write_s'] / m['plain_s']:.1f}x",
        f"size:    {m['archive_bytes'] / mb:,.1f} MiB = {m['archive_bytes'] / m['raw_bytes']:.2f}x "
        f"the raw file ({m['raw_bytes'] / mb:,.1f} MiB; target <= 1.5x); per-tick top-10 "
        f"snapshots would be {m['tick_bytes'] / mb:,.0f} MiB "
        f"({m['tick_bytes'] / m['archive_bytes']:.1f}x the archive)",
        f"1 s:     {m['book_seconds']:,} (book, second) pairs see a change; a keyframe "
        f"compresses to {m['keyframe_bytes']:,.0f} bytes on average: a keyframe per changed "
        f"book per second would add {m['every_second_bytes'] / mb:,.0f} MiB "
        f"({m['every_second_bytes'] / m['raw_bytes']:.1f}x the raw file; estimated)",
        f"book_at: median {m['book_at_median_s'] * 1e3:.3f} ms, p99 "
        f"{m['book_at_p99_s'] * 1e3:.3f} ms over random (symbol, t) (target median <= 5 ms)",
        f"samples: one hour of {m['samples_symbol']} at 1 s ({m['samples_rows']:,} rows) in "
        f"{m['samples_s'] * 1e3:.1f} ms against {m['resample_s']:.2f} s re-replaying the day: "
        f"{m['resample_s'] / m['samples_s']:,.0f}x",
    ])


def test_archive_figures(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from fastbook.synth import itch_day

    day = tmp_path / "day.itch"
    day.write_bytes(itch_day(100_000, n_symbols=20))
    text = report(measure(str(day), str(tmp_path), lookups=50))
    with capsys.disabled():
        print("\n" + text)


if __name__ == "__main__":
    workdir = os.environ.get("FASTBOOK_BENCH_ARCHIVE_DIR") or tempfile.mkdtemp()
    print(report(measure(_day(), workdir, codec=_codec())))
