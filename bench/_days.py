"""The ITCH benchmark days the benchmarks share: named by a setting, or cached by bench_itch.py.

``bench_itch.py`` writes its synthetic days under ``FASTBOOK_BENCH_CACHE`` (default
``~/.cache/fastbook-bench``), one directory per size; the other benchmarks replay the
same day when it is there, so their figures are comparable.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path


def cached_day(setting: str, messages: int = 20_000_000) -> str:
    """The file the environment variable ``setting`` names, else the cached day of
    ``messages`` messages and 500 symbols; "" when neither is there."""
    path = os.environ.get(setting, "")
    if path:
        return path
    cache = Path(os.environ.get("FASTBOOK_BENCH_CACHE",
                                Path.home() / ".cache" / "fastbook-bench"))
    found = sorted(glob.glob(str(cache / f"itch50-{messages}m-500sym-*" / "day.itch")))
    return found[0] if found else ""
