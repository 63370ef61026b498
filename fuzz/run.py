#!/usr/bin/env python
"""Run fastbook's fuzz suite: hostile inputs for every codec, crashes caught in a subprocess.

    python fuzz/run.py --codec kraken-v2 --inputs 1000000
    python fuzz/run.py --all --inputs 100000 --seed 7
    python fuzz/run.py --list

Each target (``--list``) runs in a worker subprocess. Before every input the worker
copies it into a memory-mapped file (``<out>/.current-<codec>``), so when the process
dies (a segfault in a compiled kernel, an abort, the OOM killer) this parent saves that
input as ``<out>/crash-<codec>-<seed>-<index>.bin`` and starts a new worker after it.
Findings (a builtin exception, compiled and twin disagreeing, a refused input that
changed a book) are saved beside it as ``<kind>-<codec>-<seed>-<index>.bin`` with a
``.txt`` saying what. Memory is sampled in the worker (peak RSS after the first 1,000
inputs and at the end); growth beyond ``--max-growth-mb`` is a finding.

Input ``i`` of a seed is always the same mutation (``random.Random(f"{seed}:{i}")``);
the state a feed was in when it got it depends on the inputs before it.

Exit status: 0 when nothing was found, 1 otherwise. Run it from a source tree (it puts
the tree's ``src`` and the repository root, for ``tests.fuzz``, on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import mmap
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP_SIZE = 1 << 24     # the largest input kept for a crash (16 MiB)


def _paths() -> None:
    for p in (ROOT / "src", ROOT):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


# -- the worker ---------------------------------------------------------------------------------

def _encode(value: object) -> tuple[bytes, bytes]:
    """(tag, bytes) of an input: bytes as they are, str as UTF-8 with surrogates, else repr."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"B", bytes(value)
    if isinstance(value, str):
        return b"S", value.encode("utf-8", "surrogatepass")
    return b"R", repr(value).encode("utf-8", "backslashreplace")


def _save(out: Path, name: str, tag: bytes, data: bytes, detail: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ext = {b"B": ".bin", b"S": ".txt-utf8", b"R": ".repr"}.get(tag, ".bin")
    (out / (name + ext)).write_bytes(data)
    (out / (name + ".txt")).write_text(detail + "\n", encoding="utf-8", errors="backslashreplace")


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> int:
    import faulthandler

    faulthandler.enable()
    _paths()
    from tests.fuzz import harness

    keep_path = Path(args.keep)
    with open(keep_path, "r+b") as fh:
        mm = mmap.mmap(fh.fileno(), 16 + KEEP_SIZE)

    def keep(value: object, index: int) -> None:
        tag, data = _encode(value)
        data = data[:KEEP_SIZE - 1]
        mm[16:17] = tag
        mm[17:17 + len(data)] = data
        mm[0:16] = index.to_bytes(8, "little") + len(data).to_bytes(8, "little")

    target = harness.make(args.codec)
    first_rss: list[float] = []

    def progress(stats: harness.Stats) -> None:
        if not first_rss:
            first_rss.append(_rss_mb())
        print(json.dumps({"inputs": stats.inputs, "refused": stats.refused,
                          "findings": len(stats.findings), "rss_mb": round(_rss_mb(), 1)}),
              flush=True)

    stats = harness.run(args.codec, args.inputs, args.seed, keep=keep, progress=progress,
                        start=args.start, target=target)
    out = Path(args.out)
    for f in stats.findings:
        tag, data = _encode(f.input)
        _save(out, f"{f.kind}-{args.codec}-{args.seed}-{f.index}", tag, data, f.short())
    end_rss = _rss_mb()
    growth = end_rss - (first_rss[0] if first_rss else end_rss)
    print(json.dumps({"done": True, "inputs": stats.inputs, "refused": stats.refused,
                      "accepted": stats.accepted, "counts": stats.counts(),
                      "findings": [f.short() for f in stats.findings],
                      "rss_first_mb": round(first_rss[0], 1) if first_rss else None,
                      "rss_end_mb": round(end_rss, 1), "rss_growth_mb": round(growth, 1)}),
          flush=True)
    return 0


# -- the parent ---------------------------------------------------------------------------------

def _bar(codec: str, done: int, total: int, refused: int, found: int, rate: float,
         rss: float) -> str:
    pct = 100 * done / total if total else 100
    return (f"{codec:18} {done:>10,}/{total:,} ({pct:5.1f}%)  refused {refused:,}  "
            f"findings {found}  {rate:,.0f}/s  rss {rss:.0f} MB")


def run_codec(codec: str, inputs: int, seed: int, out: Path, max_growth: float,
              tty: bool, first: int = 0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    keep = out / f".current-{codec}"
    with open(keep, "wb") as fh:
        fh.truncate(16 + KEEP_SIZE)
    totals = {"codec": codec, "seed": seed, "start": first, "inputs": 0, "refused": 0,
              "accepted": 0, "counts": {}, "findings": [], "crashes": 0,
              "rss_growth_mb": 0.0, "rss_end_mb": 0.0}
    start = first
    t0 = time.time()
    last_print = 0.0
    restarts = 0
    while totals["inputs"] < inputs:
        remaining = inputs - totals["inputs"]
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--codec", codec,
               "--inputs", str(remaining), "--seed", str(seed), "--start", str(start),
               "--keep", str(keep), "--out", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        assert proc.stdout is not None
        done = None
        seen = 0
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("done"):
                done = msg
                continue
            seen = msg["inputs"]
            now = time.time()
            if tty or now - last_print > 30:
                last_print = now
                n = totals["inputs"] + seen
                bar = _bar(codec, n, inputs, totals["refused"] + msg["refused"],
                           len(totals["findings"]) + msg["findings"], n / max(now - t0, 1e-9),
                           msg["rss_mb"])
                print(("\r" + bar) if tty else bar, end="" if tty else "\n", file=sys.stderr,
                      flush=True)
        rc = proc.wait()
        if done is not None and rc == 0:
            for k in ("inputs", "refused", "accepted"):
                totals[k] += done[k]
            for k, v in done["counts"].items():
                totals["counts"][k] = totals["counts"].get(k, 0) + v
            totals["findings"] += done["findings"]
            totals["rss_growth_mb"] = max(totals["rss_growth_mb"], done["rss_growth_mb"])
            totals["rss_end_mb"] = max(totals["rss_end_mb"], done["rss_end_mb"])
            break
        # the worker died: keep the input it was running, go on after it
        with open(keep, "rb") as fh:
            head = fh.read(17)
            index = int.from_bytes(head[:8], "little")
            size = int.from_bytes(head[8:16], "little")
            data = fh.read(size)
        tag = head[16:17]
        detail = f"{codec} #{index} crash: the worker exited with status {rc}"
        _save(out, f"crash-{codec}-{seed}-{index}", tag, data, detail)
        totals["crashes"] += 1
        totals["counts"]["crash"] = totals["counts"].get("crash", 0) + 1
        totals["findings"].append(detail)
        totals["inputs"] += index - start + 1     # the inputs this worker ran, the crash included
        start = index + 1
        restarts += 1
        if restarts > 100:
            totals["findings"].append(f"{codec}: over 100 crashes, stopped")
            break
    if totals["rss_growth_mb"] > max_growth:
        totals["counts"]["memory"] = totals["counts"].get("memory", 0) + 1
        totals["findings"].append(f"{codec}: peak RSS grew {totals['rss_growth_mb']} MB "
                                  f"after the first 1,000 inputs (limit {max_growth})")
    totals["seconds"] = round(time.time() - t0, 1)
    keep.unlink(missing_ok=True)
    if tty:
        print(file=sys.stderr)
    return totals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", action="append", help="a target (repeatable); see --list")
    ap.add_argument("--all", action="store_true", help="every target")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    ap.add_argument("--inputs", type=int, default=10_000, help="fuzz inputs per target")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "fuzz" / "findings"),
                    help="where crashing and failing inputs are saved")
    ap.add_argument("--max-growth-mb", type=float, default=256.0,
                    help="peak RSS growth after the first 1,000 inputs that is a finding")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0,
                    help="the first input's number (continues a long run that stopped: "
                         "with the same seed, inputs START to START+INPUTS-1)")
    ap.add_argument("--keep", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.codec = args.codec[0]
        return worker(args)
    _paths()
    from tests.fuzz import harness

    if args.list:
        print("\n".join(harness.TARGETS))
        return 0
    codecs = list(harness.TARGETS) if args.all else (args.codec or [])
    if not codecs:
        ap.error("give --codec NAME (see --list) or --all")
    for c in codecs:
        if c not in harness.TARGETS and c not in harness.SELFTESTS:
            ap.error(f"unknown target {c!r}; one of {', '.join(harness.TARGETS)}")
    tty = sys.stderr.isatty()
    results = []
    for c in codecs:
        r = run_codec(c, args.inputs, args.seed, Path(args.out), args.max_growth_mb, tty,
                      args.start)
        results.append(r)
        counts = {k: r["counts"].get(k, 0) for k in harness.KINDS}
        print(f"{c}: {r['inputs']:,} inputs in {r['seconds']} s, refused {r['refused']:,}, "
              f"crashes {counts['crash']}, builtin exceptions {counts['builtin']}, "
              f"disagreements {counts['disagree']}, books changed {counts['changed']}, "
              f"memory {counts['memory']} (peak RSS {r['rss_end_mb']} MB, growth "
              f"{r['rss_growth_mb']} MB)", flush=True)
        for f in r["findings"][:20]:
            print(f"    {f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 1 if any(r["findings"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
