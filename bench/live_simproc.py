"""The exchange simulator in a subprocess, driven over its stdin control channel.

Shared by the ``bench/live_*.py`` scripts: the simulator runs in its own process
(``python -m fastbook.testing --control``) so that what a script measures in its
own process is the driver, not the simulator. Not a benchmark itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any


def report(out: dict[str, Any], json_arg: str | None, summary: Any) -> None:
    """The scripts' output: the summary; with ``--json``, the figures as JSON on stdout
    (``-``) or written to the path, then the summary."""
    if json_arg == "-":
        print(json.dumps(out, indent=1))
        return
    if json_arg is not None:
        from pathlib import Path

        Path(json_arg).write_text(json.dumps(out, indent=1) + "\n")
    print(summary(out))


def rss_bytes() -> int:
    """Resident memory of this process, from ``/proc/self/statm`` (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class SimProcess:
    """``python -m fastbook.testing --control`` as a child; ``await cmd("inject", ...)``."""

    def __init__(self, venues: dict[str, list[str]], *, rate: float = 1000.0, seed: int = 7,
                 rest_weight_limit: int = 6000, levels: tuple[int, int] = (10, 20),
                 uvloop: bool = False, nice: int = 0) -> None:
        self.args = ["-m", "fastbook.testing", "--control", "--rate", str(rate),
                     "--seed", str(seed), "--rest-weight-limit", str(rest_weight_limit),
                     "--levels", str(levels[0]), str(levels[1]), "--venues",
                     *[f"{v}:{','.join(s)}" for v, s in venues.items()]]
        if uvloop:
            self.args.append("--uvloop")
        self.nice = nice
        self.proc: asyncio.subprocess.Process | None = None
        self.endpoints: dict[str, dict[str, str]] = {}
        self.final_stats: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> SimProcess:
        prefix = ["nice", "-n", str(self.nice)] if self.nice else []
        self.proc = await asyncio.create_subprocess_exec(
            *prefix, sys.executable, *self.args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 26)
        line = await asyncio.wait_for(self._line(), 60)
        self.endpoints = json.loads(line)
        return self

    async def __aexit__(self, *exc: object) -> None:
        p = self.proc
        if p is None:
            return
        assert p.stdin is not None
        p.stdin.close()                     # the simulator stops at end of stdin
        try:
            rest = await asyncio.wait_for(p.communicate(), 15)
            for line in (rest[0] or b"").splitlines()[-1:]:
                self.final_stats = json.loads(line)
        except (asyncio.TimeoutError, ValueError):
            p.kill()
            await p.wait()

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator exited (code {await self.proc.wait()})")
        return line.decode()

    async def cmd(self, cmd: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """Send one command and return its answer; a refused command raises RuntimeError."""
        assert self.proc is not None and self.proc.stdin is not None
        async with self._lock:
            self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
            await self.proc.stdin.drain()
            answer: dict[str, Any] = json.loads(await asyncio.wait_for(self._line(), timeout))
        if not answer.pop("ok", False):
            raise RuntimeError(answer.get("error", "the simulator refused the command"))
        return answer


def truth_levels(truth: dict[str, Any]) -> dict[str, Any]:
    """A truth book from the control channel with Decimal levels (for ``book_equals_truth``)."""
    from decimal import Decimal

    return {s: [(Decimal(p), Decimal(q)) for p, q in truth[s]] for s in ("bids", "asks")}
