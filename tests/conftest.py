"""Shared fixtures: most tests run against both the compiled core and its twin."""

from __future__ import annotations

import os

import pytest

from fastbook import _pycore

IMPLS = {"py": _pycore}
try:
    from fastbook import _core
except ImportError:  # pragma: no cover - a build without the extension
    _core = None
else:
    IMPLS["c"] = _core

# FASTBOOK_NO_EXTENSIONS=1 runs the suite on the twin alone.
if os.environ.get("FASTBOOK_NO_EXTENSIONS", "") not in ("", "0"):
    IMPLS.pop("c", None)


@pytest.fixture(scope="session", params=sorted(IMPLS), ids=lambda name: f"impl={name}")
def impl(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The module under test: ``fastbook._core`` (compiled) or ``fastbook._pycore`` (twin)."""
    return IMPLS[request.param]


@pytest.fixture(scope="session")
def compiled():  # type: ignore[no-untyped-def]
    """The compiled core; tests that compare it with the twin need it."""
    if "c" not in IMPLS:
        pytest.skip("compiled core disabled by FASTBOOK_NO_EXTENSIONS")
    return IMPLS["c"]
