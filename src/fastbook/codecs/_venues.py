"""Machinery several venue codecs share (each venue module imports it from here).

* the JSON scanner selection (``scanner_module``: compiled ``_l2json`` or the
  twin ``_pyl2json``, chosen by :mod:`fastbook._select` like every other pair),
  the event recorders and :class:`ScannedFeed`, the base of the venues whose
  messages a schema describes (Binance, Bybit, Coinbase Exchange);
* the checksum kernel, the JSON decoding and :class:`InBandFeed`, the base of
  the venues whose snapshot comes in the stream and whose integrity check is a
  checksum (Kraken, OKX).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from fastbook import _select
from fastbook._vocab import ASK, BID, Action, Flags
from fastbook.codecs import _pyl2json
from fastbook.codecs._l2feed import FeedError, Instrument, L2Feed, Notice, SymbolSync, SyncState
from fastbook.codecs._l2schema import IGNORED, OTHER, UNKNOWN, Schema

__all__ = [
    "MAX_MS",
    "InBandFeed",
    "Refused",
    "ScannedFeed",
    "checksum_kernel",
    "json_message",
    "record_snapshot",
    "record_update",
    "scanner_module",
]

#: Largest exchange time in ms whose ns value fits int64 (2262-04-11).
MAX_MS = (2**63 - 1) // 1_000_000

_SCANNER = _select.load("codecs._l2json", "codecs._pyl2json", "L2 JSON scanner")
#: The checksum kernel: compiled ``_checksum`` or the twin ``_pychecksum``.
checksum_kernel = _select.load("codecs._checksum", "codecs._pychecksum", "checksum kernel")

_BEGIN, _END = int(Action.SNAPSHOT_BEGIN), int(Action.SNAPSHOT_END)
_LAST, _SNAP = int(Flags.LAST_IN_PACKET), int(Flags.SNAPSHOT)


def scanner_module(kernel: str = "auto") -> Any:
    """The module whose ``Scanner`` reads messages: the compiled kernel or the twin.

    ``"auto"``: the one :func:`fastbook._select.load` chose (the compiled
    ``fastbook.codecs._l2json`` unless ``FASTBOOK_NO_EXTENSIONS`` is set; a
    missing build falls back to the twin with a RuntimeWarning);
    ``"compiled"`` / ``"python"`` force one (tests compare them).
    """
    if kernel == "python":
        return _pyl2json
    if kernel not in ("auto", "compiled"):
        raise ValueError(f"kernel must be 'auto', 'compiled' or 'python', got {kernel!r}")
    if kernel == "compiled" and not _select.compiled("codecs._l2json"):
        raise ValueError("kernel='compiled' needs the compiled core (FASTBOOK_NO_EXTENSIONS "
                         "is set or the build is missing)")
    return _SCANNER


def record_update(events: Any, instrument: int, sides: Any, prices: Any, qtys: Any, ts: int,
                  recv: int, seq: int) -> None:
    """Record an applied update: one SET_LEVEL per level, the last flagged LAST_IN_PACKET."""
    if len(sides):
        events.append_levels(instrument, sides, prices, qtys, ts=ts, recv=recv, sequence=seq)
        events.mark_last(_LAST)


def record_snapshot(events: Any, instrument: int, sides: Any, prices: Any, qtys: Any, ts: int,
                    recv: int, seq: int) -> None:
    """Record an applied snapshot: SNAPSHOT_BEGIN, SET_LEVEL (SNAPSHOT)..., SNAPSHOT_END."""
    events.append(instrument, _BEGIN, ts=ts, recv=recv, sequence=seq)
    events.append_levels(instrument, sides, prices, qtys, ts=ts, recv=recv, sequence=seq,
                         flags=_SNAP)
    events.append(instrument, _END, ts=ts, recv=recv, sequence=seq, flags=_LAST)


class ScannedFeed(L2Feed):
    """Shared by the venues whose messages a :class:`~fastbook.codecs._l2schema.Schema`
    describes: their scanners, the registration of new symbols, and what is done
    with a scan that gave no book update.

    A subclass calls :meth:`_use_scanners` once (the first scanner is
    ``self._scan``, the websocket one) and implements :meth:`_other_message`.
    Its hot path is its own ``feed``; everything here runs off that path.
    """

    #: Index in ``Scanner.ints`` of the sequence number an ERROR names (None: none).
    ERROR_SEQUENCE: ClassVar[int | None] = None

    _scan: Any
    _scanners: tuple[Any, ...] = ()

    def _use_scanners(self, kernel: str, *schemas: Schema) -> None:
        """One scanner per schema, from the module ``kernel`` names (see :func:`scanner_module`)."""
        mod = scanner_module(kernel)
        self.kernel = "compiled" if getattr(mod, "COMPILED", False) else "python"
        self._scanners = tuple(mod.Scanner(schema) for schema in schemas)
        self._scan = self._scanners[0]

    def _register(self, native: str | None) -> bool:
        """Make ``native`` known to every scanner; False when ``symbols=`` excludes it."""
        if native is None:
            return False
        if self.wanted is not None and native not in self.wanted:
            for sc in self._scanners:
                sc.register(native, None, None)
            return False
        s = self._sym(native)
        for sc in self._scanners:
            sc.register(native, s.book, s)
        return True

    def _trade_symbol(self, native: str) -> SymbolSync:
        """A symbol first seen in a trade is registered with the scanners, as a book
        message's would be."""
        self._register(native)
        return self._symbols[native]

    def _forgotten(self, native: str) -> None:
        for sc in self._scanners:
            sc.unregister(native)

    def _load_scanned(self, s: SymbolSync) -> bool:
        """Replace ``s``'s book with the levels of the snapshot just scanned; True if crossed."""
        book = s.book
        book.clear()
        book.apply(*self._scan.levels())
        return book.is_crossed()

    def _miss(self, message: Any, recv_ns: int) -> list[Notice]:
        """The websocket scan of ``message`` gave no book update (the hot path's one exit).

        A symbol seen for the first time is registered (with no book when
        ``symbols=`` leaves it out) and the message fed again, which then scans
        as a book message or as IGNORED; anything else goes to :meth:`_not_book`.
        """
        sc = self._scan
        if sc.status == UNKNOWN and sc.symbol is not None:
            self._register(sc.symbol)
            return self.feed(message, recv_ns)
        return self._not_book(message, recv_ns)

    def _not_book(self, message: Any, recv_ns: int = 0) -> list[Notice]:
        """The websocket scan gave no book update: ignore it, read it as a trade message
        (:meth:`_other_message`) or report it."""
        sc = self._scan
        st = sc.status
        if st == IGNORED:
            self.counts_total["ignored"] += 1
            return []
        if st == OTHER:
            return self._other_message(sc.other, message, recv_ns)
        # ERROR: counted against the symbol it names, if any
        s = sc.target if isinstance(sc.target, SymbolSync) else None
        if s is not None:
            s.counts["messages"] += 1
        seq = None
        if self.ERROR_SEQUENCE is not None and len(sc.ints) > self.ERROR_SEQUENCE:
            seq = sc.ints[self.ERROR_SEQUENCE]
        self._fail(FeedError(sc.error, venue=self.venue, symbol=sc.symbol or "", sequence=seq), s)
        return []

    def _other_message(self, kind: str | None, message: Any,
                       recv_ns: int = 0) -> list[Notice]:  # pragma: no cover
        """A message the schema does not accept (``kind``: its discriminator, None if absent;
        ``recv_ns`` its receive time, for the trade events of a trade message)."""
        raise NotImplementedError


_loads = json.JSONDecoder().decode


def json_message(message: bytes | bytearray | memoryview | str, loads: Any = _loads) -> Any:
    """Decode a message (bytes as UTF-8); ValueError when it is not JSON.

    The stdlib decoder recurses once per nesting level: JSON nested deeper than
    the interpreter allows is refused as a ValueError too, never a RecursionError.
    """
    if type(message) is not str:
        if not isinstance(message, (bytes, bytearray, memoryview)):
            raise ValueError(f"a message is bytes or str, not {type(message).__name__}")
        message = bytes(message).decode("utf-8")
    try:
        return loads(message)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


class Refused(list):  # type: ignore[type-arg]
    """The notices of a refused data entry (what :meth:`InBandFeed._error` returned in
    skip mode), so a parse can say "refused" apart from "nothing to apply"."""

    __slots__ = ()


class InBandFeed(L2Feed):
    """Shared by Kraken and OKX: books whose snapshot comes in the stream.

    Subclasses parse and validate a message completely, then call
    :meth:`_load_snapshot` / :meth:`_apply_update` with exact integers.
    """

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 *, depth: int | None = None, on_error: str = "raise", record: bool = False,
                 book_capacity: int = 1024, symbols: Iterable[str] | None = None,
                 verify_checksum: bool = True) -> None:
        super().__init__(instruments, depth=depth, on_error=on_error, record=record,
                         book_capacity=book_capacity, symbols=symbols)
        self.verify_checksum = bool(verify_checksum)
        self.message_number = 0         # messages fed, for error reports

    # --- errors ------------------------------------------------------------

    def _error(self, what: str, symbol: str = "", sequence: int | None = None,
               s: SymbolSync | None = None) -> list[Notice]:
        """Report bad input (raise, or count and keep); nothing of it is applied.

        A book message refused for a symbol whose book is valid means the book
        misses a change: the book is discarded first (``resync``, reason
        ``"malformed"``) so it is never reported valid while stale; in skip mode
        the resync and resubscribe notices are returned.
        """
        notices: list[Notice] = []
        if s is None and symbol:
            s = self._symbols.get(symbol)
        if s is not None and s.state == SyncState.SYNCED:
            notices = self._resync(s, "malformed", sequence, what)
            what += " (the book was discarded: resubscribe)"
        self._fail(FeedError(f"message {self.message_number}: {what}", venue=self.venue,
                             symbol=symbol, sequence=sequence), s)
        return notices

    def _validate_then_apply(self, entries: Iterable[Any], parse: Any, snapshot: bool,
                             recv_ns: int) -> list[Notice]:
        """Parse every entry of a message, then apply them: ``parse(entry)`` gives a plan
        for the venue's ``_apply_entry``, None (nothing to apply) or :class:`Refused`.

        One refused entry refuses the message: its notices are returned and no entry
        is applied, so a refused message never half-changes a book.
        """
        plans: list[Any] = []
        for entry in entries:
            plan = parse(entry)
            if isinstance(plan, Refused):
                return list(plan)
            if plan is not None:
                plans.append(plan)
        out: list[Notice] = []
        for plan in plans:
            out.extend(self._apply_entry(plan, snapshot, recv_ns))
        return out

    def _apply_entry(self, plan: Any, snapshot: bool, recv_ns: int) -> list[Notice]:
        """Apply one validated entry (each venue's own)."""
        raise NotImplementedError

    def _ignored(self) -> list[Notice]:
        self.counts_total["ignored"] += 1
        return []

    def _unknown_symbol(self, native: str) -> list[Notice]:
        """An update for a symbol never snapshotted: dropped (counted venue-wide)."""
        self.counts_total["dropped"] += 1
        self.counts_total["dropped_unknown_symbol"] += 1
        return []

    # --- book changes ------------------------------------------------------

    def _load_snapshot(self, s: SymbolSync, bids: tuple[list[int], list[int]],
                       asks: tuple[list[int], list[int]], depth: int | None,
                       sequence: int = 0) -> None:
        """Replace ``s``'s book with a snapshot (validated levels), truncated to ``depth``."""
        self.last = s
        book = s.book
        book.clear()
        n_b, n_a = len(bids[0]), len(asks[0])
        if n_b + n_a:
            sides = np.empty(n_b + n_a, dtype=np.int8)
            sides[:n_b] = BID
            sides[n_b:] = ASK
            book.apply(sides, np.array(bids[0] + asks[0], dtype=np.int64),
                       np.array(bids[1] + asks[1], dtype=np.int64))
        if depth is not None:
            checksum_kernel.truncate(book, BID, depth)
            checksum_kernel.truncate(book, ASK, depth)
        s.counts["snapshots"] += 1
        s.counts["levels"] += n_b + n_a
        ev = self.events
        if ev is not None:
            ts = s.ts
            recv = s.vars.get("recv", 0)
            ev.append(s.id, _BEGIN, ts=ts, recv=recv, sequence=sequence, flags=_SNAP)
            for side in (BID, ASK):
                prices, qtys = book.to_arrays(side)
                ev.append_levels(s.id, side, prices, qtys, ts=ts, recv=recv, sequence=sequence,
                                 flags=_SNAP)
            ev.append(s.id, _END, ts=ts, recv=recv, sequence=sequence, flags=_SNAP | _LAST)

    def _apply_update(self, s: SymbolSync, groups: list[tuple[int, list[int], list[int]]],
                      depth: int | None, sequence: int = 0) -> None:
        """Apply validated levels, ``(side, prices, qtys)`` groups in wire order, then
        truncate to ``depth``."""
        self.last = s
        book = s.book
        set_levels = checksum_kernel.set_levels
        n_levels = 0
        for side, prices, qtys in groups:
            if prices:
                set_levels(book, side, prices, qtys)
                n_levels += len(prices)
        counts = s.counts
        counts["applied"] += 1
        counts["levels"] += n_levels
        cut_b: list[int] = []
        cut_a: list[int] = []
        if depth is not None:
            truncate = checksum_kernel.truncate
            cut_b = truncate(book, BID, depth)
            cut_a = truncate(book, ASK, depth)
            if cut_b or cut_a:
                counts["truncated"] += len(cut_b) + len(cut_a)
        ev = self.events
        if ev is not None:
            ts, recv = s.ts, s.vars.get("recv", 0)
            last = False
            for side, prices, qtys in (*groups, (BID, cut_b, None), (ASK, cut_a, None)):
                if prices:
                    ev.append_levels(s.id, side, prices, qtys or [0] * len(prices), ts=ts,
                                     recv=recv, sequence=sequence)
                    last = True
            if last:
                ev.mark_last(_LAST)

    def _check_crossed(self, s: SymbolSync, sequence: int | None = None) -> list[Notice]:
        if s.book.is_crossed():
            s.counts["crossed"] += 1
            bb, ba = s.book.best_bid(), s.book.best_ask()
            return self._resync(s, "crossed", sequence,
                                f"best bid {bb[0] if bb else None} >= best ask "
                                f"{ba[0] if ba else None}")
        return []
