#!/usr/bin/env python
"""Coverage-guided fuzzing of one target with atheris (libFuzzer for Python): optional.

    pip install atheris            # not a fastbook dependency; Linux, CPython 3.8-3.11
    python fuzz/atheris_run.py --codec kraken-v2 -- -runs=1000000 -max_len=65536 CORPUS_DIR

The bytes libFuzzer makes are the input: a venue message fed to the target's feeds
(compiled scanner and twin in skip mode, compiled in raise mode, with the checks of
:mod:`tests.fuzz.harness`), or a whole buffer for ITCH 5.0, OSE, JPX CSV, LOBSTER and
captures (compiled kernel against twin where there is one). The venue modules and the
twins are instrumented, so libFuzzer steers by their Python branch coverage; the
compiled kernels run under it uninstrumented (building them with clang and
``-fsanitize=fuzzer-no-link`` would add their C coverage). Any finding of the harness
(builtin exception, disagreement, book changed by a refused message) raises, so
libFuzzer stops and writes the input as ``crash-<sha1>``; a segfault is caught by
libFuzzer the same way. The corpus directory is seeded with the target's real
messages when it is empty.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


class Found(Exception):
    """A harness finding, raised so that libFuzzer keeps the input."""


def main() -> None:
    try:
        import atheris
    except ImportError:
        sys.exit("fuzz/atheris_run.py needs atheris (pip install atheris); fuzz/run.py "
                 "needs nothing beyond the test dependencies")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", required=True)
    ap.add_argument("--reset-every", type=int, default=2000,
                    help="rebuild a venue's feeds from its capture every N inputs")
    args, rest = ap.parse_known_args()
    if rest[:1] == ["--"]:
        rest = rest[1:]

    with atheris.instrument_imports(include=["fastbook", "tests"]):
        import importlib
        import pkgutil

        from tests.fuzz import harness

        import fastbook.codecs

        for mod in pkgutil.iter_modules(fastbook.codecs.__path__):
            importlib.import_module(f"fastbook.codecs.{mod.name}")
        importlib.import_module("fastbook.capture")
        target = harness.make(args.codec)
    stats = harness.Stats(args.codec)
    ctx = harness.Context(stats)
    l2 = isinstance(target, harness.L2Target)
    corpus = next((Path(a) for a in rest if not a.startswith("-")), None)
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            seeds = [s[2] for s in target._steps] if l2 else target._base
            for raw in seeds[:500]:
                data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8",
                                                                          "surrogatepass")
                (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    warm = list(target._steps[:200]) if l2 else []
    rng = random.Random(0)

    def one(data: bytes) -> None:
        ctx.index += 1
        found = len(stats.findings)
        if l2:
            if ctx.index % args.reset_every == 1:
                target._feeds = target._new_feeds()
                for step in warm:
                    target._run_step(ctx, step, False)
            message: object = data
            if data[:1] == b"\x01":     # a str message (may hold lone surrogates)
                message = data[1:].decode("utf-8", "surrogateescape")
            target._run_step(ctx, ("ws", "", message, 0), True)
        elif not hasattr(target, "check"):     # the API targets (book, board...): seeded
            rng.seed(data)
            target.one(ctx, rng)
        else:
            target.check(ctx, data)
        if len(stats.findings) > found:
            raise Found(stats.findings[-1].short())

    atheris.Setup([sys.argv[0], *rest], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
