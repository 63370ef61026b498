"""Choose a compiled module or its pure-Python twin, the same way for every pair."""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType


def load(compiled: str, twin: str, what: str) -> ModuleType:
    """Import ``fastbook.<compiled>``, or ``fastbook.<twin>`` instead.

    The twin is used when ``FASTBOOK_NO_EXTENSIONS`` is set to anything but
    ``""``/``"0"``, or, with a RuntimeWarning, when the compiled module cannot be
    imported (a build without a C compiler).
    """
    if os.environ.get("FASTBOOK_NO_EXTENSIONS", "") not in ("", "0"):
        return importlib.import_module(f"fastbook.{twin}")
    try:
        return importlib.import_module(f"fastbook.{compiled}")
    except ImportError as exc:  # pragma: no cover - only without a compiled build
        warnings.warn(
            f"fastbook: the compiled {what} could not be imported ({exc}); using the slow "
            "pure-Python twin. Reinstall with a C compiler available to get the fast core.",
            RuntimeWarning,
            stacklevel=3,
        )
        return importlib.import_module(f"fastbook.{twin}")
