"""The fuzz harness: hostile inputs for every codec and the book API, and the checks.

A *target* turns a seeded ``random.Random`` and an input number into one hostile input
(mutated from real captures in ``tests/data`` or from synthetic days of
:mod:`fastbook.synth`), runs it through the public entry points and checks:

* **only fastbook's errors**: anything raised is a :class:`fastbook.errors.FastbookError`
  (``DecodeError``, ``UpdateError``, ``FeedError``, ``ArrayError``), or, for the book
  API's bad arguments, the ``TypeError``/``ValueError`` it documents;
* **compiled and twin agree**: the compiled kernel and its pure-Python twin give the
  same result, or errors of the same class;
* **refused input changes nothing**: after a refused venue message (raised, or counted
  ``malformed`` in skip mode) every book holds exactly the levels it held before, and
  every symbol its state. The one change a refusal may make is the explicit discard of
  an in-band venue's (Kraken, OKX) synced book, which then misses an update: state
  ``RESYNC``, empty book, and a ``resync`` notice with reason ``"malformed"``;
* no crash and bounded memory: :mod:`fuzz.run` runs a target in a subprocess, keeps the
  current input in a memory-mapped file and saves it when the process dies.

``run(name, inputs, seed)`` runs one target in-process and returns its :class:`Stats`;
the test suite's short run and ``fuzz/run.py`` both call it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastbook.errors import FastbookError
from tests.fuzz import mutators as mut

DATA = Path(__file__).resolve().parents[1] / "data"
L2 = DATA / "l2"
BID, ASK = 1, 2

#: What a finding is: a builtin exception escaped, compiled and twin disagree, a refused
#: input changed a book, the process crashed, memory grew without bound.
KINDS = ("builtin", "disagree", "changed", "crash", "memory")


@dataclass
class Finding:
    target: str
    kind: str
    index: int
    detail: str
    input: Any = None

    def short(self) -> str:
        return f"{self.target} #{self.index} {self.kind}: {self.detail[:300]}"


@dataclass
class Stats:
    target: str
    inputs: int = 0
    refused: int = 0            # inputs a codec refused (raised or counted malformed)
    accepted: int = 0
    findings: list[Finding] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(f.kind for f in self.findings)
        return {k: c.get(k, 0) for k in KINDS}


class Context:
    """What a target reports to: findings, refusals, and the input being run (``keep``)."""

    def __init__(self, stats: Stats, keep: Callable[[Any, int], None] | None = None,
                 max_findings: int = 50) -> None:
        self.stats = stats
        self.index = 0
        self._keep = keep
        self.max_findings = max_findings

    def keep(self, value: Any) -> None:
        """Called with each input before it runs (the runner copies it for a crash)."""
        if self._keep is not None:
            self._keep(value, self.index)

    def find(self, kind: str, detail: str, value: Any = None) -> None:
        if len(self.stats.findings) < self.max_findings:
            self.stats.findings.append(Finding(self.stats.target, kind, self.index, detail,
                                               value))


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 2)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}{where}: {str(exc)[:200]!r}"


def outcome(fn: Callable[[], Any], ctx: Context, value: Any,
            allowed: tuple[type[BaseException], ...] = (FastbookError,)) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", exception)``; a builtin exception is a finding."""
    try:
        return "ok", fn()
    except allowed as exc:
        # no traceback kept: it would tie the decoders and books of the failed call into a
        # reference cycle with this frame, freed only by a full collection (memory climbs)
        return "error", exc.with_traceback(None)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:   # anything else is what the fuzz suite looks for
        ctx.find("builtin", _describe(exc), value)
        return "error", exc.with_traceback(None)


# -- L2 venue feeds ---------------------------------------------------------------------------

Step = tuple[str, str, Any, int]        # (kind "ws"/"rest", symbol, payload, recv_ns)


def _cryptofeed_steps(*names: str) -> list[Step]:
    from fastbook.capture import merge, rest_symbol

    steps: list[Step] = []
    for r in merge([L2 / "cryptofeed" / n for n in names]):
        if r.kind == "recv":
            steps.append(("ws", "", r.payload, r.recv_ns))
        elif r.kind == "rest":
            sym = rest_symbol(r.url)
            if sym:
                steps.append(("rest", sym, r.payload, r.recv_ns))
    return steps


def _kraken_v2_steps() -> list[Step]:
    d = json.loads(gzip.open(L2 / "python-kraken-sdk" / "orderbook-v2.json.gz").read())
    return [("ws", "", json.dumps(m), 0) for m in [d["init"], *d["updates"]]]


def _kraken_v2_instruments() -> list[Any]:
    from fastbook.capture import read_cryptofeed
    from fastbook.codecs.instruments import kraken_instruments

    (rec,) = list(read_cryptofeed(L2 / "cryptofeed" / "KRAKEN.0.gz"))
    return kraken_instruments(rec.payload, "kraken-v2")


def _bybit_steps() -> list[Step]:
    from tests.l2feeds.test_bybit import random_session

    return [("ws", "", m, 0) for m in random_session(7)]


def _coinbase_advanced_steps() -> list[Step]:
    from tests.helpers.l2 import adv, adv_event

    rng = random.Random(3)
    out: list[Step] = []
    seq = 0
    for product in ("BTC-USD", "ETH-USD"):
        ups = [("bid", f"{100 - k}.5", "1.25") for k in range(5)] + \
              [("offer", f"{101 + k}.5", "2") for k in range(5)]
        out.append(("ws", "", adv(seq, [adv_event("snapshot", product, *ups)]), 0))
        seq += 1
    for _ in range(300):
        product = rng.choice(("BTC-USD", "ETH-USD"))
        side = rng.choice(("bid", "offer"))
        price = f"{(100 - rng.randrange(6)) if side == 'bid' else (101 + rng.randrange(6))}.5"
        out.append(("ws", "", adv(seq, [adv_event("update", product,
                                                  (side, price, str(rng.randrange(3))))]), 0))
        seq += 1
    return out


@contextlib.contextmanager
def twin_checksum() -> Iterator[None]:
    """Kraken and OKX feeds use the pure-Python checksum kernel inside the block."""
    from fastbook.codecs import _pychecksum, _venues, kraken, okx

    saved = (_venues.checksum_kernel, kraken.checksum_kernel, okx.checksum_kernel)
    _venues.checksum_kernel = kraken.checksum_kernel = okx.checksum_kernel = _pychecksum
    try:
        yield
    finally:
        _venues.checksum_kernel, kraken.checksum_kernel, okx.checksum_kernel = saved


def _book_state(feed: Any) -> dict[str, tuple[int, bytes, bytes]]:
    out = {}
    for sym in feed.symbols:
        s = feed.symbol_state(sym)
        b = s.book
        bp, bq = b.to_arrays(BID)
        ap, aq = b.to_arrays(ASK)
        out[sym] = (int(s.state), bp.tobytes() + bq.tobytes(), ap.tobytes() + aq.tobytes())
    return out


def _discarded(before: tuple[int, bytes, bytes], after: tuple[int, bytes, bytes]) -> bool:
    from fastbook.codecs._l2feed import SyncState

    return before[0] == SyncState.SYNCED and after == (int(SyncState.RESYNC), b"", b"")


class L2Target:
    """One venue feed: a compiled-kernel feed and a twin feed in skip mode, and a compiled
    feed in raise mode, walked over the real (or documented-shape) messages with one
    message in ``rate`` replaced by a mutation (the fuzz input) before the original."""

    def __init__(self, name: str, make: Callable[[str, str], Any], steps: Callable[[], list[Step]],
                 *, twin_checksum: bool = False, in_band: bool = False, rate: float = 0.5) -> None:
        self.name = name
        self._make = make
        self._steps_fn = steps
        self._steps: list[Step] | None = None
        self.twin_checksum = twin_checksum
        self.in_band = in_band
        self.rate = rate
        self._pos = 0
        self._feeds: tuple[Any, Any, Any] | None = None

    def _new_feeds(self) -> tuple[Any, Any, Any]:
        from fastbook import COMPILED

        compiled = "compiled" if COMPILED else "python"
        return (self._make(compiled, "skip"), self._make("python", "skip"),
                self._make(compiled, "raise"))

    def setup(self) -> None:
        self._steps = self._steps_fn()
        self._feeds = self._new_feeds()
        self._pos = 0

    def _call(self, feed: Any, kind: str, symbol: str, payload: Any, recv: int,
              twin: bool) -> Any:
        ctx = contextlib.nullcontext() if not (twin and self.twin_checksum) else twin_checksum()
        with ctx:
            if kind == "rest":
                notices = feed.snapshot(symbol, payload, recv)
            else:
                notices = feed.feed(payload, recv)
        # the events the feeds record (what fastbook.replay samples) must build, every time
        events = feed.take_events()
        return notices, events.tobytes()

    def _run_step(self, ctx: Context, step: Step, fuzzed: bool) -> None:
        kind, symbol, payload, recv = step
        assert self._feeds is not None
        results = []
        for k, feed in enumerate(self._feeds):
            before = _book_state(feed)
            malformed = feed.counts()["malformed"]
            status, value = outcome(lambda f=feed, t=(k == 1): self._call(f, kind, symbol, payload,
                                                                           recv, t), ctx, payload)
            refused = status == "error" or feed.counts()["malformed"] > malformed
            if refused:
                self._check_unchanged(ctx, feed, before, value[0] if status == "ok" else [],
                                      payload, status == "error")
            if k < 2:
                results.append((status, value if status == "ok" else type(value).__name__,
                                feed.counts(), _book_state(feed),
                                [str(e) for e in feed.errors[-1:]]))
            if k == 0 and fuzzed:
                if refused:
                    ctx.stats.refused += 1
                else:
                    ctx.stats.accepted += 1
        if results[0] != results[1]:
            a, b = results
            what = [n for n, x, y in zip(("status", "result", "counts", "books", "error"), a, b,
                                         strict=True) if x != y]
            detail = f"compiled and twin differ in {', '.join(what)}"
            if "result" in what or "error" in what:
                detail += f": {a[1]!r} / {b[1]!r}; {a[4]} / {b[4]}"
            ctx.find("disagree", detail[:600], payload)

    def _check_unchanged(self, ctx: Context, feed: Any, before: dict[str, Any], notices: Any,
                         payload: Any, raised: bool) -> None:
        after = _book_state(feed)
        from fastbook.codecs._l2feed import SyncState

        for sym, old in before.items():
            new = after.get(sym)
            if new == old:
                continue
            if self.in_band and new is not None and _discarded(old, new) and (
                    raised or any(n.kind == "resync" and n.reason == "malformed" and
                                  n.symbol == sym for n in notices)):
                continue
            ctx.find("changed", f"a refused message changed {sym!r} ({feed.on_error} mode): "
                                f"state {old[0]} -> {None if new is None else new[0]}", payload)
        for sym in after.keys() - before.keys():
            state, bids, asks = after[sym]
            if bids or asks or state != SyncState.WAITING_SNAPSHOT:
                ctx.find("changed", f"a refused message made a non-empty book for {sym!r}",
                         payload)

    def one(self, ctx: Context, rng: random.Random) -> None:
        assert self._steps is not None
        if self._pos >= len(self._steps):
            self._feeds = self._new_feeds()
            self._pos = 0
        step = self._steps[self._pos]
        self._pos += 1
        if rng.random() < self.rate:
            kind, symbol, payload, recv = step
            bad = mut.message_mutation(rng, payload)
            if kind == "rest" and rng.random() < 0.1:
                symbol = rng.choice(mut.ODD_TEXT)
            ctx.keep(bad)
            ctx.stats.inputs += 1
            self._run_step(ctx, (kind, symbol, bad, recv), True)
        self._run_step(ctx, step, False)


class LiveTarget:
    """The live session (:mod:`fastbook.live`) over one venue's messages, one in ``rate``
    preceded by a mutation, as a driver hands them over (issue 25 item 4, issue 18).

    What it checks, beyond "nothing escapes" (any exception out of the session is a
    finding: a driver must never die of a frame):

    * a book the session calls LIVE is never crossed;
    * after a refused frame a LIVE book is exactly what it was (or no longer LIVE);
    * while no mutation has been accepted since the last restart, a LIVE book equals a
      plain codec fed only the clean messages (the session routes and applies exactly).

    The walk restarts with a fresh session when no book is live any more (a capture holds
    one snapshot; the resubscribe or REST fetch a discard asks for cannot be answered).
    """

    def __init__(self, name: str, venue: str, steps: Callable[[], list[Step]],
                 *, rate: float = 0.3) -> None:
        self.name = name
        self.venue = venue
        self._steps_fn = steps
        self.rate = rate
        self._steps: list[Step] = []
        self._symbols: list[str] = []
        self._pos = 0
        self.tainted = False
        self.was_live = False

    def setup(self) -> None:
        from fastbook.live._rules import load_codec

        self._steps = self._steps_fn()
        probe = load_codec(self.venue)(on_error="skip")
        for kind, sym, payload, recv in self._steps:
            if kind == "rest":
                probe.snapshot(sym, payload, recv)
            else:
                probe.feed(payload, recv)
        self._symbols = sorted(probe.symbols)
        self._new()

    def _new(self) -> None:
        from fastbook.live import parse_specs
        from fastbook.live._session import Session

        self.session = Session(parse_specs([f"{self.venue}:{n}" for n in self._symbols]),
                               latency=False, stale_after_s=None)
        self.conn = self.session.open(1, self.venue, self._symbols, "ws://127.0.0.1:1", 0)
        self.ref = self.session.rules[self.venue].new_feed(self._symbols, None, None, "skip")
        self._pos = 0
        self.tainted = False
        self.was_live = False

    @staticmethod
    def _levels(book: Any) -> tuple[bytes, bytes]:
        bp, bq = book.to_arrays(BID)
        ap, aq = book.to_arrays(ASK)
        return bp.tobytes() + bq.tobytes(), ap.tobytes() + aq.tobytes()

    def _live(self) -> dict[str, tuple[bytes, bytes]]:
        from fastbook.live import BookState

        out = {}
        for (_venue, native), t in self.session.tracks.items():
            if t.state is BookState.LIVE:
                book = self.session.book(self.venue, native)
                out[native] = self._levels(book)
        return out

    def _run_step(self, ctx: Context, step: Step, fuzzed: bool) -> None:
        kind, sym, payload, recv = step
        session = self.session
        before = self._live()
        refusals = self.conn.feed.errors_total

        def call() -> None:
            if kind == "rest":
                session.rest(1, sym, payload, recv)
            else:
                session.received(1, payload, recv)
        outcome(call, ctx, payload, allowed=())
        session.actions.clear()
        refused = self.conn.feed.errors_total > refusals
        after = self._live()
        for native, levels in after.items():
            bid, _bq, ask, _aq = session.book(self.venue, native).bbo()
            if bid is not None and ask is not None and bid >= ask:
                ctx.find("changed", f"live {native!r} is crossed: {bid} >= {ask}", payload)
            if refused and native in before and before[native] != levels:
                ctx.find("changed", f"a refused frame changed live {native!r}", payload)
        if fuzzed:
            ctx.stats.refused += refused
            ctx.stats.accepted += not refused
            self.tainted |= not refused
        else:
            ref = self.ref
            outcome(lambda: ref.snapshot(sym, payload, recv) if kind == "rest"
                    else ref.feed(payload, recv), ctx, payload)
            if not self.tainted:
                for native, levels in after.items():
                    if ref.is_synced(native) and self._levels(ref.book(native)) != levels:
                        ctx.find("disagree", f"live {native!r} differs from the plain codec "
                                             "fed the same clean messages", payload)
        self.was_live |= bool(after)
        if self.was_live and not after:
            self._new()

    def one(self, ctx: Context, rng: random.Random) -> None:
        if self._pos >= len(self._steps):
            self._new()
        step = self._steps[self._pos]
        self._pos += 1
        if rng.random() < self.rate:
            kind, symbol, payload, recv = step
            bad = mut.message_mutation(rng, payload)
            ctx.keep(bad)
            ctx.stats.inputs += 1
            self._run_step(ctx, (kind, symbol, bad, recv), True)
            if self._pos == 0:          # the mutation ended the walk: start it afresh
                return
        self._run_step(ctx, step, False)


def _binance(cls_name: str) -> Callable[[str, str], Any]:
    def make(kernel: str, on_error: str) -> Any:
        from fastbook.codecs import binance

        return getattr(binance, cls_name)(kernel=kernel, on_error=on_error, record=True)
    return make


def _scanned(module: str, cls_name: str) -> Callable[[str, str], Any]:
    def make(kernel: str, on_error: str) -> Any:
        import importlib

        cls = getattr(importlib.import_module(f"fastbook.codecs.{module}"), cls_name)
        return cls(kernel=kernel, on_error=on_error, record=True)
    return make


def _plain(module: str, cls_name: str, **kw: Any) -> Callable[[str, str], Any]:
    def make(kernel: str, on_error: str) -> Any:
        import importlib

        cls = getattr(importlib.import_module(f"fastbook.codecs.{module}"), cls_name)
        extra = dict(kw)
        if "instruments" in extra:
            extra["instruments"] = extra["instruments"]()
        return cls(on_error=on_error, record=True, **extra)
    return make


_V2_INSTRUMENTS: list[Any] = []


def _v2_instruments() -> list[Any]:
    if not _V2_INSTRUMENTS:
        _V2_INSTRUMENTS.extend(_kraken_v2_instruments())
    return _V2_INSTRUMENTS


# -- whole-buffer codecs ---------------------------------------------------------------------

class BufferTarget:
    """A codec reading a whole buffer: ``base()`` gives the unmutated inputs, ``mutate`` one
    hostile variant, ``check`` runs it (compiled and twin where there is a twin)."""

    name = ""

    def __init__(self) -> None:
        self._base: list[bytes] = []

    def base(self) -> list[bytes]:
        raise NotImplementedError

    def setup(self) -> None:
        self._base = self.base()

    def mutate(self, rng: random.Random, data: bytes) -> Any:
        return mut.bytes_mutation(rng, data)

    def check(self, ctx: Context, value: Any) -> bool:
        """Run ``value``; True when the codec refused it (raised)."""
        raise NotImplementedError

    def one(self, ctx: Context, rng: random.Random) -> None:
        value = self.mutate(rng, rng.choice(self._base))
        ctx.keep(value)
        ctx.stats.inputs += 1
        found = len(ctx.stats.findings)
        if self.check(ctx, value) or len(ctx.stats.findings) > found:
            ctx.stats.refused += 1
        else:
            ctx.stats.accepted += 1

    @staticmethod
    def compare(ctx: Context, value: Any, a: tuple[str, Any], b: tuple[str, Any],
                key: Callable[[Any], Any]) -> bool:
        """Compiled and twin outcomes agree (results by ``key``, errors by class)."""
        ka = key(a[1]) if a[0] == "ok" else type(a[1]).__name__
        kb = key(b[1]) if b[0] == "ok" else type(b[1]).__name__
        if (a[0], ka) != (b[0], kb):
            da = ka if a[0] == "error" else "a result"
            db = kb if b[0] == "error" else "a result"
            extra = f" ({a[1]!s:.200} / {b[1]!s:.200})" if "error" in (a[0], b[0]) else ""
            ctx.find("disagree", f"compiled: {da}, twin: {db}{extra}", value)
            return False
        return True


    def kernels_then_replay(self, ctx: Context, value: Any, run: Any, compiled: Any,
                            twin: Any, codec: str) -> bool:
        """``run(compiled)`` and ``run(twin)`` agree on ``value``; when it decodes, the
        replay must refuse it too. True when refused."""
        import fastbook

        a = outcome(lambda: run(compiled), ctx, value)
        b = outcome(lambda: run(twin), ctx, value)
        self.compare(ctx, value, a, b, _events_key)
        if a[0] == "ok":
            return outcome(lambda: fastbook.replay(value, codec), ctx, value)[0] == "error"
        return True


def _events_key(r: Any) -> Any:
    events, *rest = r
    return events.tobytes(), repr(rest)


class ItchTarget(BufferTarget):
    name = "itch50"

    def base(self) -> list[bytes]:
        from fastbook.synth import itch_day

        return [itch_day(300, n_symbols=3, seed=s) for s in (1, 2)]

    def mutate(self, rng: random.Random, data: bytes) -> Any:
        # mostly small edits inside the day, so that what follows still decodes
        return mut.bytes_mutation(rng, data)

    def check(self, ctx: Context, value: Any) -> bool:
        from fastbook.codecs import _pyitch50, itch50

        def run(kernel: Any) -> Any:
            events, directory, counts = itch50.decode_events(value, kernel=kernel)
            return events, directory, counts

        return self.kernels_then_replay(ctx, value, run, None, _pyitch50, "itch50")


class OseTarget(BufferTarget):
    name = "ose"

    def base(self) -> list[bytes]:
        from fastbook.synth import ose_day

        return [ose_day(300, seed=s) for s in (1, 2)]

    def check(self, ctx: Context, value: Any) -> bool:
        from fastbook.codecs import ose_itch

        def run(kernel: bool) -> Any:
            events, dec = ose_itch.decode_events(value, kernel=kernel)
            return events, dec.directory, dec.counts()

        return self.kernels_then_replay(ctx, value, run, True, False, "ose_itch")


class JpxCsvTarget(BufferTarget):
    name = "jpx_csv"

    def base(self) -> list[bytes]:
        from fastbook.synth import ose_day

        return [ose_day(300, seed=s, form="csv") for s in (1, 2)]

    def mutate(self, rng: random.Random, data: bytes) -> Any:
        return mut.csv_mutation(rng, data) if rng.random() < 0.7 else mut.bytes_mutation(rng, data)

    def check(self, ctx: Context, value: Any) -> bool:
        import fastbook

        status, _ = outcome(lambda: fastbook.replay(value, "jpx_csv"), ctx, value)
        outcome(lambda: fastbook.replay(value, "jpx_csv", on_invalid="skip"), ctx, value)
        return status == "error"


class LobsterTarget(BufferTarget):
    name = "lobster"

    def base(self) -> list[bytes]:
        lob = DATA / "lobster"
        msg = next(lob.glob("*message*.csv")).read_bytes().split(b"\n")[:120]
        ob = next(lob.glob("*orderbook*.csv")).read_bytes().split(b"\n")[:120]
        return [b"M" + b"\n".join(msg), b"O" + b"\n".join(ob)]

    def mutate(self, rng: random.Random, data: bytes) -> Any:
        tag, body = data[:1], data[1:]
        body = mut.csv_mutation(rng, body) if rng.random() < 0.7 else \
            mut.bytes_mutation(rng, body)
        return tag + body

    def check(self, ctx: Context, value: Any) -> bool:
        from fastbook.codecs import lobster

        tag, body = value[:1], value[1:]
        text = body.decode("utf-8", "surrogateescape")
        if tag == b"M":
            status, _ = outcome(lambda: lobster.read_messages(io.BytesIO(body)), ctx, value)
            outcome(lambda: lobster.read_messages(io.StringIO(text)), ctx, value)
            return status == "error"
        status, rows = outcome(lambda: lobster.read_orderbook(io.BytesIO(body), 10), ctx, value)
        outcome(lambda: lobster.read_orderbook(io.StringIO(text), 10), ctx, value)
        if status == "ok":
            outcome(lambda: lobster.orderbook_top(rows, 10), ctx, value,
                    (FastbookError, ValueError))
        return status == "error"


class CaptureTarget(BufferTarget):
    name = "capture"

    def base(self) -> list[bytes]:
        from fastbook.capture import CaptureWriter, read_cryptofeed

        text = gzip.open(L2 / "cryptofeed" / "BINANCE.ws.1.0.gz").read().split(b"\n")[:40]
        rest = gzip.open(L2 / "cryptofeed" / "BINANCE.http.0.0.gz").read().split(b"\n")[:2]
        out = io.BytesIO()
        with CaptureWriter(out, compression="none") as w:
            for r in read_cryptofeed(L2 / "cryptofeed" / "KRAKEN.ws.50.0.gz"):
                w.write_record(r)
                if r.line > 30:
                    break
        return [b"\n".join(text), b"\n".join(t[:3000] for t in rest), out.getvalue()]

    def mutate(self, rng: random.Random, data: bytes) -> Any:
        if not data.startswith(b"\x89FBCAP") and rng.random() < 0.5:
            return mut.csv_mutation(rng, data, sep=b" ")
        return mut.bytes_mutation(rng, data)

    def check(self, ctx: Context, value: Any) -> bool:
        from fastbook.capture import CaptureReader, read_capture, summarize

        status, _ = outcome(lambda: list(read_capture(value)), ctx, value)
        outcome(lambda: list(read_capture(value, verify=False)), ctx, value)
        if value.startswith(b"\x89FBCAP"):
            # small chunks split records and their headers at every offset; 7-byte chunks
            # of a 370 KB capture cost 90% of the run, so larger files get odd sizes that
            # still split them at varying places
            chunk = 7 if len(value) <= 16384 else (509, 4093)[len(value) % 2]
            outcome(lambda: list(CaptureReader(io.BytesIO(value), verify=False,
                                               chunk_size=chunk)), ctx, value)
        else:
            outcome(lambda: summarize(value), ctx, value)
        return status == "error"


# -- the book API ------------------------------------------------------------------------------

_ODD_ARGS: tuple[Any, ...] = (
    0, 1, 2, 3, -1, 2**31, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 1.0, 1.5, float("nan"),
    True, None, "1", b"1", "", [], (1,), np.int64(5), np.uint64(2**64 - 1), np.int8(-1),
    np.float64(2.0), object(),
)


def _odd_array(rng: random.Random) -> Any:
    n = rng.choice((0, 1, 3, 5))
    dtype = rng.choice((np.int8, np.int64, np.int64, np.int64, np.int32, np.float64, np.uint64,
                        np.dtype(">i8"), object))
    try:
        arr = np.array([rng.choice((0, 1, 2, -1, 5, 100, 2**62, -(2**62), 2**63 - 1, -(2**63)))
                        for _ in range(n)]).astype(dtype)
    except (OverflowError, ValueError):
        arr = np.zeros(n, dtype=np.int64)
    r = rng.random()
    if r < 0.1 and n > 1:
        arr = arr[::2]
    elif r < 0.15:
        arr = arr.reshape(1, -1)
    elif r < 0.2:
        return list(arr)
    return arr


class BookApiTarget:
    """``Book`` (compiled) against ``_pycore.Book`` with adversarial arguments: the same
    result or the same error class, and a refused call leaves the book as it was."""

    name = "book"
    ALLOWED = (FastbookError, TypeError, ValueError, OverflowError, IndexError)

    def setup(self) -> None:
        import fastbook
        from fastbook import _pycore

        self._classes = (fastbook.Book, _pycore.Book)
        self._books = [self._fresh(c) for c in self._classes]

    def _fresh(self, cls: Any) -> Any:
        b = cls(price_decimals=2, qty_decimals=2, capacity=4)
        for side, p, q in ((BID, 100, 5), (BID, 99, 7), (ASK, 101, 3), (ASK, 103, 1)):
            b.set(side, p, q)
        return b

    def _valid(self, rng: random.Random, m: str) -> list[Any]:
        side = rng.choice((BID, ASK))
        if m == "set":
            return [side, rng.randrange(90, 112), rng.randrange(0, 10)]
        if m == "apply":
            n = rng.randrange(0, 5)
            return [np.array([rng.choice((BID, ASK)) for _ in range(n)], dtype=np.int8),
                    np.array([rng.randrange(90, 112) for _ in range(n)], dtype=np.int64),
                    np.array([rng.randrange(0, 10) for _ in range(n)], dtype=np.int64)]
        if m == "set_str":
            return [side, rng.choice(("100.5", "99", "101.25")), rng.choice(("1.25", "0", "3"))]
        if m in ("top", "reserve"):
            return [rng.randrange(0, 12)]
        if m == "qty_at":
            return [side, rng.randrange(90, 112)]
        if m == "parse_price":
            return [rng.choice(("100.25", "1", "-3.5"))]
        if m == "format_price":
            return [rng.randrange(-10**6, 10**6)]
        if m == "copy":
            return []
        return [side]       # levels, depth, to_arrays, best-of-side reads

    #: Odd values for a size argument (``top``, ``reserve``): no 2**31-level allocations,
    #: which would be a legitimate MemoryError.
    _ODD_SIZES: tuple[Any, ...] = (-1, -(2**63), 2**63, 2**64, 1.5, float("nan"), None, "3",
                                   b"3", True, np.int64(3), np.uint64(2**64 - 1), [], object())

    def _call(self, rng: random.Random) -> tuple[str, tuple[Any, ...]]:
        """A call with exactly one hostile argument (or none): with several bad arguments,
        compiled and twin may rightly name different ones first."""
        m = rng.choice(("set", "set", "apply", "apply", "top", "levels", "qty_at", "depth",
                        "to_arrays", "set_str", "parse_price", "format_price", "reserve", "copy"))
        args = self._valid(rng, m)
        if args and rng.random() < 0.85:
            k = rng.randrange(len(args))
            if m == "apply":
                args[k] = _odd_array(rng)
            elif m in ("top", "reserve"):
                args[k] = rng.choice(self._ODD_SIZES)
            elif m in ("set_str", "parse_price") and rng.random() < 0.6:
                args[k] = rng.choice(mut.ODD_TEXT)
            else:
                args[k] = rng.choice(_ODD_ARGS)
        return m, tuple(args)

    def one(self, ctx: Context, rng: random.Random) -> None:
        m, args = self._call(rng)
        ctx.keep(repr((m, args)).encode("utf-8", "backslashreplace"))
        ctx.stats.inputs += 1
        res = []
        for b in self._books:
            before = list(b.levels(BID)), list(b.levels(ASK))
            r = outcome(lambda b=b: getattr(b, m)(*args), ctx, (m, args), self.ALLOWED)
            after = list(b.levels(BID)), list(b.levels(ASK))
            if r[0] == "error" and before != after:
                ctx.find("changed", f"{type(b).__module__}.Book.{m}{args!r:.200} raised "
                                    f"{type(r[1]).__name__} and changed the book", (m, args))
            res.append((r[0], _plain_result(r[1]) if r[0] == "ok" else type(r[1]).__name__, after))
        if res[0] != res[1]:
            ctx.find("disagree", f"Book.{m}{args!r:.200}: compiled {res[0][:2]!r:.300}, twin "
                                 f"{res[1][:2]!r:.300}", (m, args))
            self._books = [self._fresh(c) for c in self._classes]
        elif rng.random() < 0.02:
            self._books = [self._fresh(c) for c in self._classes]
        else:
            ctx.stats.refused += res[0][0] == "error"
            ctx.stats.accepted += res[0][0] == "ok"


class ConsolidatedTarget:
    """``fastbook.Consolidated`` (compiled) against ``_pyconsol.Consolidated`` over the
    same books: valid and hostile calls (odd venue indices, times, live flags, depths,
    rebinds), random book changes between them. Both give the same result or errors of the
    same class, and a refused call leaves the view's BBO, venue states and counts as they
    were."""

    name = "consolidated"
    ALLOWED = (FastbookError, TypeError, ValueError, OverflowError, IndexError)
    _DECIMALS = ((2, 3), (1, 3), (2, 5), (3, 0))

    def setup(self) -> None:
        import fastbook
        from fastbook import _pyconsol

        self._classes = (fastbook.Consolidated, _pyconsol.Consolidated)
        self._fresh()

    def _fresh(self) -> None:
        import fastbook
        from fastbook.codecs._l2feed import Instrument

        self._books = [fastbook.Book(price_decimals=pd, qty_decimals=qd)
                       for pd, qd in self._DECIMALS]
        self._insts = [Instrument(f"v{i}", "BTC-USD", "BTC/USD", pd, qd)
                       for i, (pd, qd) in enumerate(self._DECIMALS)]
        venues = [(f"v{i}", b, inst, 5_000, "0.001")
                  for i, (b, inst) in enumerate(zip(self._books, self._insts, strict=True))]
        self._views = [c("BTC/USD", venues, min_profit_bps=0) for c in self._classes]
        self._now = 1_000

    def _change_a_book(self, rng: random.Random) -> None:
        i = rng.randrange(len(self._books))
        b = self._books[i]
        scale = 10 ** b.price_decimals
        side = rng.choice((BID, ASK))
        base = 100 * scale + (-rng.randrange(0, 5 * scale) if side == BID
                              else rng.randrange(0, 5 * scale))
        b.set(side, base, rng.randrange(0, 4) * 10 ** b.qty_decimals)

    def _call(self, rng: random.Random) -> tuple[str, tuple[Any, ...]]:
        m = rng.choice(("update", "update", "update", "refresh", "arbitrage", "depth",
                        "bbo", "venues_in", "rebind", "take_events", "last_change"))
        self._now += rng.randrange(0, 3_000)
        args: list[Any]
        if m == "update":
            args = [rng.randrange(len(self._books)), self._now, rng.random() > 0.1]
        elif m in ("refresh", "arbitrage"):
            args = [self._now]
        elif m == "depth":
            args = [rng.randrange(0, 6)]
        elif m == "rebind":
            i = rng.randrange(len(self._books))
            import fastbook

            pd, qd = self._DECIMALS[i] if rng.random() < 0.7 else (4, 4)
            args = [i, fastbook.Book(price_decimals=pd, qty_decimals=qd)]
        else:
            args = []
        if args and rng.random() < 0.7:
            k = rng.randrange(len(args))
            args[k] = rng.choice(_ODD_ARGS)
        return m, tuple(args)

    def _state(self, v: Any) -> Any:
        s = v.stats()
        return (v.bbo(), v.venues_in(), s["updates"], s["changes"], s["clock_backwards"])

    def one(self, ctx: Context, rng: random.Random) -> None:
        if rng.random() < 0.5:
            self._change_a_book(rng)
        m, args = self._call(rng)
        ctx.keep(repr((m, args)).encode("utf-8", "backslashreplace"))
        ctx.stats.inputs += 1
        res = []
        for v in self._views:
            before = self._state(v)
            r = outcome(lambda v=v: getattr(v, m)(*args), ctx, (m, args), self.ALLOWED)
            after = self._state(v)
            if r[0] == "error" and before != after:
                ctx.find("changed", f"{type(v).__module__}.Consolidated.{m}{args!r:.200} "
                                    f"raised {type(r[1]).__name__} and changed the view",
                         (m, args))
            res.append((r[0], _plain_result(r[1]) if r[0] == "ok" else type(r[1]).__name__,
                        after))
        if res[0] != res[1]:
            ctx.find("disagree", f"Consolidated.{m}{args!r:.200}: compiled {res[0]!r:.300}, "
                                 f"twin {res[1]!r:.300}", (m, args))
            self._fresh()
        elif rng.random() < 0.01:
            self._fresh()
        else:
            ctx.stats.refused += res[0][0] == "error"
            ctx.stats.accepted += res[0][0] == "ok"


def _plain_result(r: Any) -> Any:
    if isinstance(r, Iterator):
        return ("iterator", [_plain_result(x) for x in r])
    if isinstance(r, np.ndarray):
        return ("array", r.dtype.str, r.tobytes())
    if isinstance(r, tuple):
        return tuple(_plain_result(x) for x in r)
    if hasattr(r, "levels") and hasattr(r, "price_decimals"):
        return ("book", list(r.levels(BID)), list(r.levels(ASK)))
    return r


# -- self-tests of the harness and the runner ------------------------------------------------------

class SelfTestTarget:
    """Inputs that must be found: ``selftest-crash`` segfaults on input 5, ``selftest-builtin``
    lets a KeyError escape on every tenth input (the runner's and the checks' own tests)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def setup(self) -> None:
        pass

    def one(self, ctx: Context, rng: random.Random) -> None:
        value = b"selftest-%d-" % ctx.index + rng.randbytes(8)
        ctx.keep(value)
        ctx.stats.inputs += 1
        if self.name == "selftest-crash" and ctx.index == 5:
            import ctypes

            ctypes.string_at(0)         # SIGSEGV: what a crashing kernel does
        if self.name == "selftest-builtin" and ctx.index % 10 == 9:
            outcome(lambda: {}[value], ctx, value)


# -- the registry --------------------------------------------------------------------------------

def _targets() -> dict[str, Callable[[], Any]]:
    from tests.fuzz.backtest_target import BacktestTarget
    from tests.fuzz.board_server import BoardTarget, ServerTarget
    from tests.fuzz.features_target import FeaturesTarget

    return {
        "consolidated": ConsolidatedTarget,
        "binance-spot": lambda: L2Target("binance-spot", _binance("BinanceSpot"),
                                         lambda: _cryptofeed_steps("BINANCE.ws.1.0.gz",
                                                                   "BINANCE.http.0.0.gz")),
        "binance-usdm": lambda: L2Target(
            "binance-usdm", _binance("BinanceUSDM"),
            lambda: _cryptofeed_steps("BINANCE_FUTURES.ws.1.0.gz", "BINANCE_FUTURES.http.0.0.gz")),
        "binance-coinm": lambda: L2Target(
            "binance-coinm", _binance("BinanceCOINM"),
            lambda: _cryptofeed_steps("BINANCE_DELIVERY.ws.1.0.gz",
                                      "BINANCE_DELIVERY.http.0.0.gz")),
        "coinbase-exchange": lambda: L2Target(
            "coinbase-exchange", _scanned("coinbase", "CoinbaseExchange"),
            lambda: _cryptofeed_steps("COINBASE.ws.28.0.gz")),
        "coinbase-advanced": lambda: L2Target(
            "coinbase-advanced", _plain("coinbase", "CoinbaseAdvanced"), _coinbase_advanced_steps),
        "kraken-v1": lambda: L2Target("kraken-v1", _plain("kraken", "KrakenV1"),
                                      lambda: _cryptofeed_steps("KRAKEN.ws.50.0.gz"),
                                      twin_checksum=True, in_band=True),
        "kraken-v2": lambda: L2Target("kraken-v2",
                                      _plain("kraken", "KrakenV2", instruments=_v2_instruments),
                                      _kraken_v2_steps, twin_checksum=True, in_band=True),
        "okx": lambda: L2Target("okx", _plain("okx", "Okx"),
                                lambda: _cryptofeed_steps("OKX.ws.1.0.gz"),
                                twin_checksum=True, in_band=True),
        "bybit": lambda: L2Target("bybit", _scanned("bybit", "Bybit"), _bybit_steps),
        "live-binance-spot": lambda: LiveTarget(
            "live-binance-spot", "binance-spot",
            lambda: _cryptofeed_steps("BINANCE.ws.1.0.gz", "BINANCE.http.0.0.gz")),
        "live-coinbase-exchange": lambda: LiveTarget(
            "live-coinbase-exchange", "coinbase-exchange",
            lambda: _cryptofeed_steps("COINBASE.ws.28.0.gz")),
        "live-coinbase-advanced": lambda: LiveTarget(
            "live-coinbase-advanced", "coinbase-advanced", _coinbase_advanced_steps),
        "live-okx": lambda: LiveTarget("live-okx", "okx",
                                       lambda: _cryptofeed_steps("OKX.ws.1.0.gz")),
        "live-bybit": lambda: LiveTarget("live-bybit", "bybit", _bybit_steps),
        "itch50": ItchTarget,
        "ose": OseTarget,
        "jpx_csv": JpxCsvTarget,
        "lobster": LobsterTarget,
        "capture": CaptureTarget,
        "book": BookApiTarget,
        "board": BoardTarget,
        "server": ServerTarget,
        "features": FeaturesTarget,
        "backtest": BacktestTarget,
    }


TARGETS: tuple[str, ...] = tuple(_targets())
#: Targets that test the harness itself (not run by ``--all``).
SELFTESTS: tuple[str, ...] = ("selftest-crash", "selftest-builtin")


def make(name: str) -> Any:
    if name in SELFTESTS:
        target = SelfTestTarget(name)
        target.setup()
        return target
    try:
        factory = _targets()[name]
    except KeyError:
        raise ValueError(f"unknown fuzz target {name!r}; one of {', '.join(TARGETS)}") from None
    target = factory()
    target.setup()
    return target


def run(name: str, inputs: int, seed: int = 0, *, keep: Callable[[Any, int], None] | None = None,
        progress: Callable[[Stats], None] | None = None, start: int = 0,
        target: Any = None) -> Stats:
    """Run ``inputs`` fuzz inputs of target ``name``; input ``i`` uses ``Random((seed, i))``."""
    target = target or make(name)
    stats = Stats(name)
    ctx = Context(stats, keep)
    rng = random.Random()
    i = start
    while stats.inputs < inputs:
        ctx.index = i
        rng.seed(f"{seed}:{i}")
        target.one(ctx, rng)
        i += 1
        if progress is not None and i % 1000 == 0:
            progress(stats)
    return stats
