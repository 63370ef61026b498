"""The live tests' shared fixture: a leak is blamed on the test that made it.

Each test ends with a full garbage collection, so a socket or transport a test left
unclosed raises its ResourceWarning (an error under ``filterwarnings=error``) in that
test's teardown, not in whichever later test the collector happens to run in.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _collect_after() -> Iterator[None]:
    yield
    gc.collect()
