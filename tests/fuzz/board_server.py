"""Fuzz targets for the top-N board (``fastbook.board``) and the quote server's requests.

``board``: the compiled ``fastbook._board.Board`` against the twin ``_pyboard.Board``,
side by side, with one hostile argument per call (wrong types, huge and negative ints,
slots and depths out of range, floats and NaN, arrays of the wrong dtype, shape,
order, strides or writeability, books whose ``top`` returns such arrays). Both must
give the same result or errors of the same class, only the errors ``docs/board.md``
names (``IndexError`` for a slot, ``ValueError`` for the rest, ``TypeError`` for a
wrong call), and a refused call must leave every slot's record as it was.

``server``: the WebSocket JSON face's request parsing (``WsEndpoint._parse`` and
``_slots``, as ``_handle`` calls them for each text frame), given mutated valid
requests, deep nesting, odd Unicode and non-text frames. A request may only be refused
with one of the endpoint's close codes (``CLOSE_CODES``) and a close reason that fits
a close frame; anything else escaping would drop the connection with an internal error.
"""

from __future__ import annotations

import functools
import json
import random
from typing import Any

import numpy as np

from fastbook.errors import FastbookError
from tests.fuzz import mutators as mut
from tests.fuzz.harness import Context, _plain_result, outcome

BID, ASK = 1, 2

#: Odd scalars for an int argument (slot, state, ts_ns).
_ODD_INTS: tuple[Any, ...] = (
    -1, -(2**31), 2**31, 2**31 - 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 10**40,
    1.0, 1.5, float("nan"), float("inf"), True, False, None, "1", b"1", "", [], (1,),
    np.int64(1), np.uint64(2**64 - 1), np.int8(-1), np.int32(2), np.float64(2.0),
    np.bool_(True), complex(1, 0), object(),
)

_SLOTS, _DEPTH = 3, 4


def _odd_levels(rng: random.Random, n: int) -> Any:
    """An array (or not) of ``n``-ish levels that is wrong in one way, or sometimes right."""
    vals = [rng.choice((0, 1, 5, 100, -1, 2**62, -(2**63), 2**63 - 1)) for _ in range(n)]
    r = rng.randrange(12)
    if r == 0:
        return np.array(vals, dtype=np.int64).astype(np.int32)
    if r == 1:
        return np.array(vals, dtype=np.float64)
    if r == 2:
        return np.array(vals, dtype=">i8")
    if r == 3:
        return np.array(vals + vals, dtype=np.int64)[::2]            # strided, 1-D int64
    if r == 4:
        return np.array(vals, dtype=np.int64).reshape(1, -1)
    if r == 5:
        a = np.array(vals, dtype=np.int64)
        a.flags.writeable = False                                    # readonly is fine to read
        return a
    if r == 6:
        return np.zeros(rng.choice((_DEPTH + 1, 1000, 2**16)), dtype=np.int64)
    if r == 7:
        return list(vals)
    if r == 8:
        return np.array(vals, dtype=object)
    if r == 9:
        return np.array(vals, dtype=np.uint64) if all(v >= 0 for v in vals) else None
    if r == 10:
        return np.int64(5)
    return np.array(vals, dtype=np.int64)


class _FakeBook:
    """Not a fastbook Book: ``top(n)`` returns whatever it was given."""

    def __init__(self, top: Any) -> None:
        self._top = top

    def top(self, n: int) -> Any:
        return self._top

    def __repr__(self) -> str:
        t = self._top
        what = f"{t.dtype} {t.shape} C={t.flags.c_contiguous}" if isinstance(t, np.ndarray) \
            else type(t).__name__
        return f"_FakeBook({what})"


def _odd_top(rng: random.Random) -> Any:
    d = _DEPTH
    base = np.zeros((4, d), dtype=np.int64)
    base[0, :2], base[1, :2] = (105, 104), (3, 4)
    base[2, :2], base[3, :2] = (106, 107), (1, 2)
    r = rng.randrange(9)
    if r == 0:
        return base                                                  # right
    if r == 1:
        return np.asfortranarray(base)                               # F order
    if r == 2:
        return np.zeros((4, 2 * d), dtype=np.int64)[:, ::2]          # strided
    if r == 3:
        return base.astype(np.int32)
    if r == 4:
        return base[:, :d - 1]
    if r == 5:
        return base.T
    if r == 6:
        ro = base.copy()
        ro.flags.writeable = False
        return ro
    if r == 7:
        return base.tolist()
    return np.zeros((5, d), dtype=np.int64)


def _valid_book(rng: random.Random) -> Any:
    import fastbook
    from fastbook import _pycore

    cls = rng.choice((fastbook.Book, _pycore.Book))
    b = cls(price_decimals=2, qty_decimals=0)
    for k in range(rng.randrange(0, 2 * _DEPTH)):        # sometimes more levels than depth
        b.set(BID, 1000 - k, 1 + k)
        b.set(ASK, 1001 + k, 2 + k)
    return b


class BoardTarget:
    """``fastbook._board.Board`` against ``fastbook._pyboard.Board`` with hostile arguments."""

    name = "board"
    #: What docs/board.md names for bad arguments (TypeError: a call of the wrong shape).
    ALLOWED = (FastbookError, TypeError, ValueError, IndexError)

    #: Seeds of a coverage-guided corpus (``fuzz/atheris_run.py`` seeds the calls' rng).
    _base = tuple(b"board-%d" % i for i in range(16))

    def setup(self) -> None:
        from fastbook import _board, _pyboard

        self._modules = (_board, _pyboard)
        self._fresh()

    def _fresh(self) -> None:
        self._boards = [m.Board(_SLOTS, _DEPTH) for m in self._modules]

    def _slot(self, rng: random.Random) -> Any:
        return rng.randrange(_SLOTS)

    def _valid(self, rng: random.Random, m: str) -> list[Any]:
        """Arguments a caller would give ``m``: right types, in range."""
        if m == "publish":
            return [self._slot(rng), _valid_book(rng), rng.randrange(-3, 4),
                    rng.randrange(0, 10**12)]
        if m == "publish_levels":
            nb, na = rng.randrange(0, _DEPTH + 1), rng.randrange(0, _DEPTH + 1)
            return [self._slot(rng),
                    np.arange(1000, 1000 - nb, -1, dtype=np.int64), np.ones(nb, np.int64),
                    np.arange(1001, 1001 + na, dtype=np.int64), np.full(na, 2, np.int64),
                    rng.randrange(-3, 4), rng.randrange(0, 10**12)]
        if m in ("read", "version"):
            return [self._slot(rng)]
        if m == "read_into":
            return [self._slot(rng), np.zeros(5 + 4 * _DEPTH, np.int64)]
        if m == "versions":
            return [np.zeros(_SLOTS, np.int64)] if rng.random() < 0.5 else []
        if m == "new":
            return [rng.randrange(1, 5), rng.randrange(1, 9)]
        if m == "unpack":
            return [np.zeros(5 + 4 * rng.randrange(1, 4), np.int64)]
        return [rng.randrange(1, 257)]          # record_len

    @staticmethod
    def _odd(rng: random.Random, m: str, k: int) -> Any:
        """A hostile value for argument ``k`` of ``m``."""
        if m == "publish" and k == 1 and rng.random() < 0.7:
            return _FakeBook(_odd_top(rng))
        if m == "publish_levels" and 1 <= k <= 4:
            return _odd_levels(rng, rng.choice((0, 1, 2, _DEPTH)))
        if (m == "read_into" and k == 1) or m == "versions":
            return _odd_levels(rng, 5 + 4 * _DEPTH if m == "read_into" else _SLOTS)
        if m == "unpack":
            return _odd_levels(rng, rng.choice((0, 4, 6, 9, 13)))
        if m == "new":
            # no valid huge sizes: 2**31 - 1 slots is a legitimate MemoryError (compiled)
            # or minutes of allocation (twin)
            return rng.choice((*(v for v in _ODD_INTS if v != 2**31 - 1), 0, 256, 257))
        if m == "record_len":
            return rng.choice((*_ODD_INTS, 0, 257))
        return rng.choice(_ODD_INTS)

    def _call(self, rng: random.Random) -> tuple[str, tuple[Any, ...]]:
        """A call with exactly one hostile argument (or none), as the book target does."""
        m = rng.choice(("publish", "publish", "publish_levels", "publish_levels", "read",
                        "read_into", "version", "versions", "new", "unpack", "record_len"))
        args = self._valid(rng, m)
        if m == "versions" and not args and rng.random() < 0.8:
            args = [self._odd(rng, m, 0)]
        elif args and rng.random() < 0.8:
            k = rng.randrange(len(args))
            args[k] = self._odd(rng, m, k)
        return m, tuple(args)

    @staticmethod
    def _records(board: Any) -> bytes:
        out = np.zeros(board.record_len, np.int64)
        parts = []
        for s in range(board.slots):
            board.read_into(s, out)
            parts.append(out.tobytes())
        return b"".join(parts)

    def _invoke(self, module: Any, board: Any, m: str, args: tuple[Any, ...]) -> Any:
        if m == "new":
            b = module.Board(*args)
            return ("board", b.slots, b.depth, b.record_len, self._records(b))
        if m == "unpack":
            return module.unpack(*args)
        if m == "record_len":
            return module.record_len(*args)
        if m == "read_into":
            # each board gets its own copy of the buffer, so both can be compared after
            out = args[1].copy() if isinstance(args[1], np.ndarray) else args[1]
            if isinstance(args[1], np.ndarray) and not args[1].flags.writeable:
                out.flags.writeable = False
            if isinstance(args[1], np.ndarray) and not args[1].flags.c_contiguous:
                out = np.zeros(2 * len(args[1]), np.int64)[::2]
            v = board.read_into(args[0], out)
            return v, _plain_result(out)
        if m == "versions" and args and isinstance(args[0], np.ndarray):
            out = args[0].copy()
            return _plain_result(board.versions(out)), _plain_result(out)
        return getattr(board, m)(*args)

    def one(self, ctx: Context, rng: random.Random) -> None:
        m, args = self._call(rng)
        ctx.keep(repr((m, args)).encode("utf-8", "backslashreplace"))
        ctx.stats.inputs += 1
        res = []
        for module, board in zip(self._modules, self._boards, strict=True):
            before = self._records(board)
            r = outcome(functools.partial(self._invoke, module, board, m, args), ctx, (m, args),
                        self.ALLOWED)
            after = self._records(board)
            if r[0] == "error" and before != after:
                ctx.find("changed", f"{module.__name__}.Board.{m}{args!r:.200} raised "
                                    f"{type(r[1]).__name__} and changed a slot", (m, args))
            res.append((r[0], _plain_result(r[1]) if r[0] == "ok" else type(r[1]).__name__,
                        after))
        if res[0] != res[1]:
            ctx.find("disagree", f"Board.{m}{args!r:.200}: compiled {res[0][:2]!r:.300}, twin "
                                 f"{res[1][:2]!r:.300}", (m, args))
            self._fresh()
            return
        if rng.random() < 0.01:
            self._fresh()
        ctx.stats.refused += res[0][0] == "error"
        ctx.stats.accepted += res[0][0] == "ok"


#: Requests a client sends, as the server documents them.
_VALID_REQUESTS: tuple[dict[str, Any], ...] = (
    {"op": "list"},
    {"op": "snapshot", "instrument": "binance-spot:BTCUSDT"},
    {"op": "snapshot", "instrument": "kraken-v2:XBT/USD", "decimals": True},
    {"op": "subscribe", "instruments": ["binance-spot:BTCUSDT", "okx:BTC-USDT"]},
    {"op": "subscribe", "instruments": ["okx:BTC-USDT"], "decimals": False},
    {"op": "unsubscribe", "instruments": ["binance-spot:BTCUSDT"]},
    {"op": "subscribe", "instruments": ["x:\u00e9\u20ac"], "decimals": True},
)
_INSTRUMENTS = ("binance-spot:BTCUSDT", "kraken-v2:XBT/USD", "okx:BTC-USDT", "x:\u00e9\u20ac")


def _deep_request(rng: random.Random) -> str:
    """A request whose field nests ``n`` levels (arrays or objects), up to the frame limit."""
    n = rng.choice((50, 900, 1000, 5000, 30_000, 60_000))
    opener, closer = ("[", "]") if rng.random() < 0.6 else ('{"a":', "}")
    body = opener * n + ("1" if rng.random() < 0.8 else "") + closer * rng.choice((n, n - 1, 0))
    key = rng.choice(("instruments", "instrument", "decimals", "op", "x"))
    return f'{{"op": "subscribe", "{key}": {body}}}' if rng.random() < 0.7 else body


class ServerTarget:
    """The quote server's request parsing: mutated requests through ``WsEndpoint._parse``
    and ``_slots``; only a ``_Refused`` with a documented close code may come out."""

    name = "server"

    def setup(self) -> None:
        from fastbook.server import _ws
        from fastbook.server._hub import Hub

        self._ws = _ws
        self._endpoint = _ws.WsEndpoint(Hub(_INSTRUMENTS, depth=4))

    def _input(self, rng: random.Random) -> Any:
        r = rng.random()
        if r < 0.08:
            return _deep_request(rng)
        valid = json.dumps(rng.choice(_VALID_REQUESTS), ensure_ascii=rng.random() < 0.5)
        if r < 0.12:
            return valid
        if r < 0.2:
            req = dict(rng.choice(_VALID_REQUESTS))
            key = rng.choice(("op", "instrument", "instruments", "decimals"))
            req[key] = rng.choice((*mut.ODD_TEXT, *mut.ODD_NUMBERS, None, [], {}, [[]],
                                   [rng.choice(mut.ODD_TEXT)], {"op": "list"}))
            try:
                return json.dumps(req, ensure_ascii=rng.random() < 0.5)
            except ValueError:
                return valid
        out = mut.message_mutation(rng, valid)
        if rng.random() < 0.3 and isinstance(out, str):
            out = mut.message_mutation(rng, out)        # two edits: deeper into the checks
        return out

    def _handle(self, raw: Any) -> tuple[str, Any]:
        """What ``WsEndpoint._handle`` does with one frame before it sends anything."""
        ep = self._endpoint
        req = ep._parse(raw)
        op = req["op"]
        if op == "snapshot":
            return op, (ep._slots(req, "instrument")[0], self._ws._flag(req))
        if op in ("subscribe", "unsubscribe"):
            return op, (ep._slots(req, "instruments"), self._ws._flag(req))
        return op, None

    #: The documented requests, a coverage-guided fuzzer's seed corpus.
    _base = tuple(json.dumps(r).encode() for r in _VALID_REQUESTS)

    def one(self, ctx: Context, rng: random.Random) -> None:
        self._run(ctx, self._input(rng))

    def check(self, ctx: Context, data: bytes) -> None:
        """One frame from a coverage-guided fuzzer's bytes: a text frame (UTF-8, invalid
        bytes as lone surrogates), or a binary one when they start with NUL."""
        self._run(ctx, data[1:] if data[:1] == b"\x00"
                  else data.decode("utf-8", "surrogateescape"))

    def _run(self, ctx: Context, raw: Any) -> None:
        ctx.keep(raw)
        ctx.stats.inputs += 1
        refused = self._ws._Refused
        kind, value = outcome(lambda: self._handle(raw), ctx, raw, (refused,))
        if kind == "ok":
            ctx.stats.accepted += 1
            return
        if not isinstance(value, refused):
            return                                  # a builtin exception: already a finding
        ctx.stats.refused += 1
        if value.code not in self._ws.CLOSE_CODES:
            ctx.find("builtin", f"refused with undocumented close code {value.code}", raw)
        kind, reason = outcome(lambda: self._ws.close_reason(value.reason), ctx, raw,
                               (FastbookError,))
        if kind == "ok":
            try:
                size = len(reason.encode("utf-8"))
            except UnicodeEncodeError:
                ctx.find("builtin", f"close reason is not UTF-8: {reason!r:.200}", raw)
                return
            if size > 123:
                ctx.find("builtin", f"close reason of {size} bytes (a close frame carries "
                                    f"123)", raw)
