"""Optional dependencies: one place that names the distribution and its extras.

fastbook is published on PyPI as ``fastbook-lob`` (``fastbook`` there is another
project), while the import name stays ``fastbook``. Every message that tells a
user to install an optional feature comes from :func:`hint`, so it names this
distribution and an extra that exists (``tests/package/test_extras.py`` checks
both against ``pyproject.toml``).
"""

from __future__ import annotations

import importlib
from typing import Any

from fastbook.errors import FastbookError

__all__ = ["DISTRIBUTION", "EXTRAS", "MissingExtraError", "hint", "missing", "require"]

#: The name fastbook is published under (``pip install fastbook-lob``).
DISTRIBUTION = "fastbook-lob"

#: The optional features and what each installs (``[all]`` is every one of them).
EXTRAS = {
    "arrow": "pyarrow: Arrow and Parquet output",
    "pandas": "pandas: to_pandas()",
    "gzip": "isal: a faster gunzip",
    "zstd": "zstandard: zstd input and captures (Python < 3.14)",
    "live": "websockets: live feeds and the loopback exchange simulator",
    "fast": "picows: the live driver's fast websocket transport (with uvloop)",
    "metrics": "prometheus-client: Prometheus export of the live driver's stats",
    "grpc": "grpcio: the quote server's gRPC endpoint and client (with protobuf)",
    "plot": "matplotlib: depth heatmaps and time series (fastbook.plot)",
    "dask": "distributed: many files on a Dask cluster (fastbook.dask.replay_many)",
}


class MissingExtraError(FastbookError, ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra to install.

    A ``ModuleNotFoundError`` (so an ``ImportError``), with ``extra`` set to the
    extra's name and ``name`` to the missing module.
    """

    def __init__(self, message: str, *, extra: str, name: str | None = None) -> None:
        super().__init__(message, name=name)
        self.extra = extra


def hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'fastbook-lob[<extra>]'``."""
    if extra not in EXTRAS and extra != "all":
        raise ValueError(f"no extra {extra!r}: one of {', '.join(sorted(EXTRAS))} or 'all'")
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def missing(extra: str, purpose: str, *, module: str | None = None,
            alternative: str = "") -> MissingExtraError:
    """The error to raise when ``purpose`` needs ``extra`` and it is not installed.

    ``raise missing("arrow", "Parquet output") from None`` reads "Parquet output
    needs pyarrow, which is not installed: pip install 'fastbook-lob[arrow]'".
    ``alternative`` is appended in parentheses (another way to get it).
    """
    needs = module or EXTRAS[extra].split(":")[0]
    tail = f" ({alternative})" if alternative else ""
    return MissingExtraError(f"{purpose} needs {needs}, which is not installed: "
                             f"{hint(extra)}{tail}", extra=extra, name=needs)


def require(module: str, extra: str, purpose: str) -> Any:
    """Import and return ``module``, or raise :func:`missing` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing(extra, purpose, module=module.split(".")[0]) from None
