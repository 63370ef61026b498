"""Which implementations the tests run: the compiled extensions and their twins.

The one place the tests read ``FASTBOOK_NO_EXTENSIONS``: set to anything but ``""`` or
``"0"``, the suite runs on the pure-Python twins alone, and every test that needs a
compiled module is skipped (as a test that compares the two is). Without the variable a
compiled module that is not built is skipped the same way.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

NO_EXTENSIONS: bool = os.environ.get("FASTBOOK_NO_EXTENSIONS", "") not in ("", "0")
DISABLED = "compiled core disabled by FASTBOOK_NO_EXTENSIONS"


def built(name: str) -> ModuleType | None:
    """The compiled extension ``name`` (``"fastbook._l3"``) if it is built, else ``None``;
    whether or not ``FASTBOOK_NO_EXTENSIONS`` is set (see :func:`compiled`)."""
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - a build without the extension
        return None


def compiled(name: str) -> ModuleType | None:
    """The compiled extension ``name`` when it is under test: built, and not disabled by
    ``FASTBOOK_NO_EXTENSIONS``; else ``None``."""
    return None if NO_EXTENSIONS else built(name)


def require(name: str) -> ModuleType:
    """The compiled extension ``name``, or skip the calling test module (for modules
    that test nothing else)."""
    if NO_EXTENSIONS:
        pytest.skip(DISABLED, allow_module_level=True)
    return pytest.importorskip(name)


def requires_compiled(*modules: ModuleType | None, reason: str = DISABLED) -> pytest.MarkDecorator:
    """A ``skipif`` marker: skip unless every one of ``modules`` (results of
    :func:`compiled`) is under test; with no arguments, unless the compiled cores are."""
    if not modules:
        modules = (CORE, L3)
    return pytest.mark.skipif(NO_EXTENSIONS or any(m is None for m in modules), reason=reason)


def pair(twin: object, compiled_one: object | None, *, names: tuple[str, str] = ("twin", "compiled")
         ) -> dict[str, object]:
    """``{names[0]: twin, names[1]: compiled_one}``, without the compiled entry when it
    is ``None`` (not built or disabled): what a ``params=sorted(...)`` fixture runs over."""
    out = {names[0]: twin}
    if compiled_one is not None and not NO_EXTENSIONS:
        out[names[1]] = compiled_one
    return out


#: The compiled cores under test, or None.
CORE = compiled("fastbook._core")
L3 = compiled("fastbook._l3")
#: True when the compiled cores are under test (what ``fastbook.COMPILED`` says too).
COMPILED: bool = CORE is not None and L3 is not None
#: The implementations the compiled/twin tests run over, by the short names their
#: test ids use.
CORES = pair(importlib.import_module("fastbook._pycore"), CORE, names=("py", "c"))
L3_PAIRS = pair(
    (importlib.import_module("fastbook._pyl3"), importlib.import_module("fastbook._pycore")),
    (L3, CORE) if COMPILED else None,
)
#: Kernel names for the L2 venue tests (compiled kernel first, as their ids read).
KERNELS: list[str] = ["compiled", "python"] if COMPILED else ["python"]
