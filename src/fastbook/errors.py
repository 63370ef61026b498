"""The fastbook exception hierarchy.

Every error fastbook raises on purpose derives from :class:`FastbookError`. Each
leaf also subclasses the builtin it means, so ``except ValueError`` keeps working
for callers that do not know fastbook's types.
"""

from __future__ import annotations

__all__ = ["ArrayError", "DecodeError", "FastbookError", "ReplayError", "ReplayWarning",
           "UpdateError"]


class FastbookError(Exception):
    """Root of every error fastbook raises on purpose."""


class DecodeError(FastbookError, ValueError):
    """Text or bytes that cannot be decoded exactly (malformed, too precise, overflow).

    The message names the offending input and, where known, where it was found.
    """


class UpdateError(FastbookError, ValueError):
    """A book update that cannot be applied: bad side, negative quantity, reserved price.

    ``index`` is the position of the offending update in a batch, or ``None``
    for a single call. The book is unchanged when this is raised.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ArrayError(FastbookError, TypeError, ValueError):
    """An array argument of the wrong type, dtype, shape, layout or length.

    Raised before any state changes, with a hint on how to convert the input.
    """


class ReplayError(FastbookError, ValueError):
    """A replay asked for something its input does not hold (``symbols=`` naming none of them).

    The message names what was asked for and what the input has instead.
    """


class ReplayWarning(UserWarning):
    """A replay finished, but part of what was asked for is not valid (a book never synced)."""
