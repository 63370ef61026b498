"""Choose a compiled module or its pure-Python twin, the same way for every pair.

This is the one place the choice is made and recorded: ``load`` picks a module,
``compiled`` answers "is the compiled one in use" from what ``load`` picked
(``fastbook.COMPILED`` is ``compiled("_core")``). A module's own ``COMPILED``
constant only says what that module is (True in an extension, False in a twin).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterable, MutableMapping
from types import ModuleType

#: What ``load`` chose, by compiled module name: True for the compiled module.
_CHOSEN: dict[str, bool] = {}


def no_extensions() -> bool:
    """True when ``FASTBOOK_NO_EXTENSIONS`` asks for the twins (set, and not ``""``/``"0"``)."""
    return os.environ.get("FASTBOOK_NO_EXTENSIONS", "") not in ("", "0")


def load(compiled: str, twin: str, what: str, *, stacklevel: int = 3) -> ModuleType:
    """Import ``fastbook.<compiled>``, or ``fastbook.<twin>`` instead.

    The twin is used when ``FASTBOOK_NO_EXTENSIONS`` is set to anything but
    ``""``/``"0"``, or, with a RuntimeWarning, when the compiled module cannot be
    imported (a build without a C compiler). The choice is recorded for ``compiled``.
    """
    if no_extensions():
        module = importlib.import_module(f"fastbook.{twin}")
        _CHOSEN[compiled] = False
        return module
    try:
        module = importlib.import_module(f"fastbook.{compiled}")
    except ImportError as exc:  # pragma: no cover - only without a compiled build
        warnings.warn(
            f"fastbook: the compiled {what} could not be imported ({exc}); using the slow "
            "pure-Python twin. Reinstall with a C compiler available to get the fast core.",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
        module = importlib.import_module(f"fastbook.{twin}")
        _CHOSEN[compiled] = False
        return module
    _CHOSEN[compiled] = True
    return module


def export(namespace: MutableMapping[str, object], compiled: str, twin: str, what: str,
           names: Iterable[str]) -> ModuleType:
    """``load``, then bind each of ``names`` in ``namespace`` to the chosen module's.

    The run-time half of a public module's re-export (``fastbook``, ``fastbook.l3``):
    its ``TYPE_CHECKING`` half imports the same names from the compiled module, so
    type checkers read that module's stubs.
    """
    module = load(compiled, twin, what, stacklevel=4)
    for name in names:
        namespace[name] = getattr(module, name)
    return module


def compiled(name: str = "_core") -> bool:
    """True when ``load`` chose the compiled ``fastbook.<name>`` over its twin.

    ``name`` is the compiled module's name as given to ``load`` (``"_core"``,
    ``"_l3"``, ``"codecs._l2json"`` ...); asking about one never loaded is a KeyError.
    """
    try:
        return _CHOSEN[name]
    except KeyError:
        raise KeyError(f"fastbook._select.load has not chosen fastbook.{name} (or its twin) "
                       f"yet; loaded: {sorted(_CHOSEN)}") from None
