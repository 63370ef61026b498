"""The top-N board: one writer thread publishes books' best levels, reader threads take
consistent snapshots without locking it (``docs/board.md``).

>>> import fastbook as fb
>>> from fastbook.board import Board
>>> book = fb.Book(price_decimals=2, qty_decimals=0)
>>> _ = book.set(fb.BID, 10000, 5); _ = book.set(fb.ASK, 10010, 7)
>>> board = Board(slots=4, depth=10)
>>> board.publish(0, book, state=1, ts_ns=123)
1
>>> snap = board.read(0)
>>> snap.version, snap.state, snap.bids.tolist(), snap.asks.tolist(), snap.spread
(1, 1, [[10000, 5]], [[10010, 7]], 10)

``Board`` is the compiled ``fastbook._board`` (a sequence lock in C) unless
``FASTBOOK_NO_EXTENSIONS=1`` selects the pure-Python twin ``fastbook._pyboard``;
``COMPILED`` says which is in use. ``Snapshot``, ``unpack`` and the record layout of
``read_into`` are the same for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastbook import _select
from fastbook._pyboard import HEADER, MAX_DEPTH, Snapshot, record_len, unpack

if TYPE_CHECKING:  # type checkers read the compiled module's stubs (_board.pyi)
    from fastbook._board import Board
else:
    _select.export(globals(), "_board", "_pyboard", "top-N board", ("Board",))

#: True when the compiled board (``fastbook._board``) is in use.
COMPILED: bool = _select.compiled("_board")

__all__ = ["COMPILED", "HEADER", "MAX_DEPTH", "Board", "Snapshot", "record_len", "unpack"]
