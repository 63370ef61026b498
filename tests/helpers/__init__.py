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


def names_bad_argument(kwargs: dict[str, object]) -> str:
    """A ``match=`` pattern for the ValueError a constructor raises on ``kwargs``, all
    of them good (ints from 0 to 18) but one: the message must start with that
    argument's name and end with the value given (``"qty_decimals must be an int
    between 0 and 18, got 2.0"``)."""
    import re

    bad = [k for k, v in kwargs.items()
           if not (type(v) is int and 0 <= v <= 18)]
    assert len(bad) == 1, kwargs
    return rf"^{bad[0]} must be .*, got {re.escape(repr(kwargs[bad[0]]))}$"
