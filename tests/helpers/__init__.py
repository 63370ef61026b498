"""What the tests share: paths, the compiled/twin choice, message and event builders.

``tests`` and its subfolders are packages (each has an ``__init__.py``), so with pytest's
default ``prepend`` import mode the repository root goes on ``sys.path`` and a test
module imports these as ``tests.helpers`` (``from tests.helpers.itch import add``).
"""

from __future__ import annotations

from pathlib import Path

#: ``tests/data``: the recorded market data the tests read (each folder has its licence
#: and a README saying what the files are).
DATA = Path(__file__).resolve().parent.parent / "data"
