"""Shared fixtures: most tests run against both the compiled core and its twin.

The choice of implementations is made once, in :mod:`tests.helpers.impls` (the only
reader of ``FASTBOOK_NO_EXTENSIONS``); builders for messages and events are in the other
:mod:`tests.helpers` modules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import DATA
from tests.helpers.impls import CORES, DISABLED, L3_PAIRS

IMPLS = CORES


@pytest.fixture(scope="session", params=sorted(IMPLS), ids=lambda name: f"impl={name}")
def impl(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The module under test: ``fastbook._core`` (compiled) or ``fastbook._pycore`` (twin)."""
    return IMPLS[request.param]


@pytest.fixture(scope="session")
def compiled():  # type: ignore[no-untyped-def]
    """The compiled core; tests that compare it with the twin need it."""
    if "c" not in IMPLS:
        pytest.skip(DISABLED)
    return IMPLS["c"]


@pytest.fixture(params=sorted(L3_PAIRS))
def impls(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """(L3 module, L2 module): compiled (_l3, _core) or twin (_pyl3, _pycore)."""
    return L3_PAIRS[request.param]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``tests/data`` (modules that need it at import time use ``tests.helpers.DATA``)."""
    return DATA
