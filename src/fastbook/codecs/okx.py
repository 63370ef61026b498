"""OKX v5 public order books (``books`` and the tick-by-tick ``books-l2-tbt`` /
``books50-l2-tbt``): in-band snapshot, ``seqId`` continuity and the legacy checksum.

Messages: ``{"arg": {"channel": "books", "instId": "BTC-USDT"}, "action":
"snapshot" | "update", "data": [{"asks": [[px, sz, "0", numOrders], ...], "bids":
[...], "ts": "<ms>", "checksum": <int32>, "prevSeqId": <int>, "seqId": <int>}]}``.
Sizes are absolute (``"0"`` deletes the level); derivative sizes are contracts
(the instrument's ``contract_size`` of ``contract_unit``, from
:func:`fastbook.codecs.instruments.okx_instruments`).

Sequencing, per instrument, when the messages carry ``seqId`` (data since
2022 does; the real 2022 capture does not, and is checked by checksum only):

* a snapshot (``prevSeqId`` -1) sets the book and the last ``seqId``;
* an update applies when its ``prevSeqId`` equals the last ``seqId``. That
  includes the empty keep-alive OKX sends on an idle book (``seqId ==
  prevSeqId``, counted ``"keepalive"``) and the reset after maintenance, where
  ``seqId`` is *smaller* than ``prevSeqId`` (counted ``"seq_resets"``);
* an update already covered (``seqId`` at or below the last one, with
  ``prevSeqId < seqId``) is a duplicate or stale message: dropped, counted;
* anything else is a gap: the book is discarded (``resync``, reason
  ``"gap"``) and a ``resubscribe`` notice asks for a fresh snapshot.

Checksum (legacy): the best 25 bids and asks interleaved ``bid1:ask1:bid2:...``
as ``"price:size"`` wire text, CRC32 compared as a **signed** int32, verified
on snapshots and updates after applying. OKX sends ``checksum: 0`` for these
channels since 2026-06-23 (deprecated in favour of ``seqId``); 0 means absent
(counted ``"unverified"``). A mismatch or a crossed book discards the book.

Trades (channels ``trades`` and ``trades-all``): one TRADE event per print, ``side``
the taker's, ``ts`` (ms) the time, ``tradeId`` the sequence; derivative sizes are
contracts, as in the book.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from fastbook._vocab import ASK, BID, INT64_MAX, INT64_MIN
from fastbook.codecs._l2feed import Instrument, Notice, SymbolSync, SyncState, check_recv
from fastbook.codecs._trades import BadTrade, aggressor, ms_ns, price_qty, trade_id
from fastbook.codecs._venues import MAX_MS, InBandFeed, Refused, checksum_kernel, json_message

__all__ = ["BOOK_CHANNELS", "CHECKSUM_LEVELS", "TRADE_CHANNELS", "Okx"]

#: Channels with a snapshot followed by incremental updates (all share one format).
BOOK_CHANNELS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
#: Channels of trade prints (recorded as TRADE events).
TRADE_CHANNELS = frozenset({"trades", "trades-all"})
#: Levels per side in OKX's checksum.
CHECKSUM_LEVELS = 25

_INT32 = 1 << 31


def _int(value: Any) -> bool:
    return type(value) is int


class Okx(InBandFeed):
    """OKX ``books`` feed; native symbols are instIds (``BTC-USDT``, ``BTC-USDT-SWAP``,
    ``BTC-USD-220527``).

    ``depth=`` truncates each side after every message (``books`` keeps 400
    levels itself, so the default is no truncation). ``verify_checksum=False``
    ignores the checksum field. Instruments without metadata get the normalized
    symbol from the instId and scales of 8 decimals; pass
    ``instruments=okx_instruments(doc)`` for the tick/lot scales and contract sizes.
    """

    venue: ClassVar[str] = "okx"
    default_decimals: ClassVar[tuple[int, int]] = (8, 8)

    def __init__(self, instruments: Iterable[Instrument] | Mapping[str, Instrument] | None = None,
                 *, depth: int | None = None, on_error: str = "raise", record: bool = False,
                 book_capacity: int = 1024, symbols: Iterable[str] | None = None,
                 verify_checksum: bool = True) -> None:
        if depth is not None and (type(depth) is not int or depth < 1):
            raise ValueError(f"depth must be None or a positive int, got {depth!r}")
        super().__init__(instruments, depth=depth, on_error=on_error, record=record,
                         book_capacity=book_capacity, symbols=symbols,
                         verify_checksum=verify_checksum)

    def _sym_okx(self, inst_id: str) -> SymbolSync:
        if inst_id not in self._symbols and inst_id not in self.instruments:
            from fastbook.codecs.instruments import to_symbol

            try:
                symbol = to_symbol("okx", inst_id)
            except ValueError:
                symbol = inst_id
            kind = "spot" if ":" not in symbol else \
                ("perpetual" if inst_id.endswith("-SWAP") else
                 "option" if inst_id.count("-") == 4 else "future")
            pd, qd = self.default_decimals
            self.instruments[inst_id] = Instrument(self.venue, inst_id, symbol, pd, qd,
                                                   kind=kind)
            self._auto.add(inst_id)
        return self._sym(inst_id)

    def feed(self, message: bytes | str, recv_ns: int = 0, /) -> list[Notice]:
        if self.events is not None:
            recv_ns = check_recv(recv_ns, self.venue)
        self.message_number += 1
        if message == b"pong" or message == "pong":
            return self._ignored()
        try:
            msg = json_message(message)
        except ValueError as exc:
            return self._error(f"not JSON: {exc}")
        if not isinstance(msg, dict):
            return self._error(f"expected a JSON object, got {str(msg)[:80]}")
        if "event" in msg:
            if msg.get("event") == "error":
                self.counts_total["venue_errors"] += 1
            return self._ignored()          # subscribe / unsubscribe acks, errors, notices
        arg = msg.get("arg")
        if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str):
            return self._error(f"a push without arg.channel: {str(msg)[:80]}")
        if arg["channel"] in TRADE_CHANNELS:
            return self._trades(msg, recv_ns)
        if arg["channel"] not in BOOK_CHANNELS:
            return self._ignored()          # tickers, books5, bbo-tbt, ...
        inst_id = arg.get("instId")
        if not isinstance(inst_id, str) or not inst_id:
            return self._error(f"a book push without arg.instId: {str(msg)[:80]}")
        if not self._wanted(inst_id):
            return []
        action, data = msg.get("action"), msg.get("data")
        if action not in ("snapshot", "update") or not isinstance(data, list):
            return self._error(f"a book push needs action snapshot/update and a data list: "
                               f"{str(msg)[:80]}", inst_id)
        # validate every entry before any touches the book: a refused message applies
        # nothing (the bad entry is reported, the ones before it are not applied)
        snapshot = action == "snapshot"
        return self._validate_then_apply(
            data, lambda entry: self._parse_entry(inst_id, entry, snapshot), snapshot, recv_ns)

    def _trade_symbol(self, native: str) -> SymbolSync:
        return self._sym_okx(native)

    def _trades(self, msg: dict[str, Any], recv_ns: int) -> list[Notice]:
        """A ``trades`` / ``trades-all`` push: one TRADE event per entry of ``data``, in
        order. ``side`` is the taker's (``"buy"``: the buyer was the aggressor); the time
        is ``ts`` (ms), the sequence ``tradeId``."""
        inst_id = msg["arg"].get("instId")
        if not isinstance(inst_id, str) or not inst_id:
            return self._trade_refused(f"a trades push without arg.instId: {str(msg)[:80]}")
        if not self._trade_wanted(inst_id):
            return self._ignored()
        data = msg.get("data")
        if not isinstance(data, list):
            return self._trade_refused("a trades push needs a data list", inst_id)
        pd, qd = self._trade_scales(inst_id) or self.default_decimals
        prints = []
        try:
            for i, t in enumerate(data):
                where = f"data[{i}]"
                if type(t) is not dict:
                    raise BadTrade(f"{where} must be an object", inst_id)
                if t.get("instId", inst_id) != inst_id:
                    raise BadTrade(f"{where}: instId {t.get('instId')!r} is not the push's "
                                   f"{inst_id!r}"[:160], inst_id)
                price, qty = price_qty(t.get("px"), t.get("sz"), pd, qd, where, inst_id)
                ts = ms_ns(t.get("ts"), where, inst_id, strings=True)
                buyer = aggressor(t.get("side"), "buy", "sell", where, inst_id)
                prints.append((inst_id, price, qty, ts, trade_id(t.get("tradeId")), buyer))
        except BadTrade as exc:
            return self._trade_refused(exc.text, inst_id)
        return self._trades_done(prints, 0, recv_ns)

    @staticmethod
    def _levels(key: str, raw: Any, pd: int, qd: int,
                prices: list[int], qtys: list[int]) -> str | None:
        try:
            checksum_kernel.parse_levels(raw, pd, qd, prices, qtys, key)
        except ValueError as exc:
            return str(exc)
        return None

    def _parse_entry(self, inst_id: str, entry: Any,
                     snapshot: bool) -> tuple[Any, ...] | Refused | None:
        """Validate one data entry completely, changing no book: the plan
        :meth:`_apply_entry` carries out, None (an update of a symbol never
        snapshotted: dropped, counted) or the :class:`Refused` notices of bad input."""
        if not isinstance(entry, dict):
            return Refused(self._error(f"a data entry must be an object, got "
                                        f"{str(entry)[:60]}", inst_id))
        s = self._symbols.get(inst_id)
        if s is None:
            if not snapshot:
                self._unknown_symbol(inst_id)
                return None
            s = self._sym_okx(inst_id)

        def bad(text: str, seq: Any = None) -> Refused:
            return Refused(self._error(text[:200], inst_id, seq if _int(seq) else None, s))

        seq, prev = entry.get("seqId"), entry.get("prevSeqId")
        if (seq is not None and not _int(seq)) or (prev is not None and not _int(prev)):
            return bad(f"seqId/prevSeqId must be integers: {seq!r}, {prev!r}")
        if seq is not None and prev is not None \
                and not (INT64_MIN <= seq <= INT64_MAX and INT64_MIN <= prev <= INT64_MAX):
            return bad(f"seqId/prevSeqId outside the int64 range: {seq}, {prev}")
        if (seq is None) != (prev is None):
            return bad("seqId and prevSeqId come together", seq)
        crc = entry.get("checksum")
        if crc is not None and (not _int(crc) or not -_INT32 <= crc < _INT32):
            return bad(f"checksum {crc!r} is not a signed 32-bit int", seq)
        ts_text = entry.get("ts")
        if ts_text is None:
            ts = 0
        elif isinstance(ts_text, str) and ts_text.isdigit() and ts_text.isascii() \
                and len(ts_text) <= 15 and int(ts_text) <= MAX_MS:
            ts = int(ts_text) * 1_000_000
        else:
            return bad(f"ts {ts_text!r} is not a time in ms", seq)
        pd, qd = s.book.price_decimals, s.book.qty_decimals
        bids: tuple[list[int], list[int]] = ([], [])
        asks: tuple[list[int], list[int]] = ([], [])
        for key, out in (("asks", asks), ("bids", bids)):
            raw = entry.get(key)
            if raw is None:
                return bad(f"no {key!r}", seq)
            err = self._levels(key, raw, pd, qd, *out)
            if err:
                return bad(err, seq)
        return s, seq, prev, crc, ts, bids, asks

    def _apply_entry(self, plan: tuple[Any, ...], snapshot: bool,
                     recv_ns: int) -> list[Notice]:
        """Carry out a validated entry (see :meth:`_parse_entry`)."""
        s, seq, prev, crc, ts, bids, asks = plan
        s.counts["messages"] += 1
        sequence = seq if seq is not None and seq >= 0 else 0
        if snapshot:
            s.ts = ts
            s.vars["recv"] = recv_ns
            self._load_snapshot(s, bids, asks, self.depth, sequence)
            s.last_seq = seq
            notices = self._after(s, crc, seq)
            return notices or [self._synced(s, seq)]
        if s.state != SyncState.SYNCED:
            s.counts["dropped"] += 1
            return []
        if seq is not None and s.last_seq is not None:
            last = s.last_seq
            if prev != last:
                if seq <= last and prev < seq:
                    s.counts["dropped"] += 1
                    s.counts["duplicates"] += 1
                    return []
                s.counts["gaps"] += 1
                return self._resync(s, "gap", seq,
                                    f"prevSeqId {prev} does not follow the last seqId {last}")
            if seq == prev:
                s.counts["keepalive"] += 1
            elif seq < prev:
                s.counts["seq_resets"] += 1
        if seq is not None:
            s.last_seq = seq
        if ts:
            s.ts = ts
        s.vars["recv"] = recv_ns
        self._apply_update(s, [(ASK, *asks), (BID, *bids)], self.depth, sequence)
        return self._after(s, crc, seq)

    def _after(self, s: SymbolSync, crc: int | None, seq: int | None) -> list[Notice]:
        if crc and self.verify_checksum:
            got = checksum_kernel.okx_checksum(s.book, CHECKSUM_LEVELS)
            if got != crc:
                s.counts["checksum_failed"] += 1
                return self._resync(s, "checksum", seq,
                                    f"OKX sent {crc}, the book gives {got}")
            s.counts["checksum_ok"] += 1
        else:
            s.counts["unverified"] += 1
        return self._check_crossed(s, seq)
