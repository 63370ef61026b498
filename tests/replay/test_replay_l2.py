"""fastbook.replay of exchange L2 captures: a toy feed for the mechanics, then the real captures.

The per-message sampling (``Sampler(packets=True)``) is checked against a plain twin
written from its documented rules (events applied one by one to ``fastbook.Book``s);
final BookSet books are checked against the feed's own books.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys

import numpy as np
import pytest

import fastbook as fb
from fastbook import capture, codecs
from fastbook.capture import CaptureWriter, rest_symbol
from fastbook.codecs._l2feed import FeedError, L2Feed, Notice, SyncState
from fastbook.driver import parse_every
from fastbook.errors import DecodeError
from fastbook.events import Action, Flags
from tests.helpers import DATA

CF = DATA / "l2" / "cryptofeed"
LAST = int(Flags.LAST_IN_PACKET)


# ---------------------------------------------------------------------------
# a toy venue: REST snapshots + contiguous update ids, like Binance spot
# ---------------------------------------------------------------------------

class ToyFeed(L2Feed):
    """``{"s","u","t","b","a"}`` updates (``{"multi": [...]}`` several in one message);
    REST snapshots ``{"u","t","b","a"}``; a gap resyncs."""

    venue = "toy"
    default_decimals = (2, 3)

    def feed(self, message, recv_ns=0, /):
        msg = json.loads(message)
        if msg.get("type") == "heartbeat":
            self.counts_total["ignored"] += 1
            return []
        if "bad" in msg:
            self._fail(FeedError("bad message", venue=self.venue, symbol=str(msg["bad"])))
            return []
        parts = msg["multi"] if "multi" in msg else [msg]
        notices: list[Notice] = []
        for k, m in enumerate(parts):
            notices += self._update(m, recv_ns, last=k == len(parts) - 1)
        return notices

    def _levels(self, s, m):
        out = []
        for side, key in ((fb.BID, "b"), (fb.ASK, "a")):
            for p, q in m[key]:
                out.append((side, fb.parse_decimal(p, s.book.price_decimals),
                            fb.parse_decimal(q, s.book.qty_decimals)))
        return out

    def _update(self, m, recv_ns, last):
        if not self._wanted(m["s"]):
            return []
        s = self._sym(m["s"])
        s.counts["messages"] += 1
        if s.state != SyncState.SYNCED:
            s.buffer.append(m)
            s.counts["buffered"] += 1
            if s.state == SyncState.WAITING_SNAPSHOT:
                s.state = SyncState.BUFFERING
                return [Notice("request_snapshot", self.venue, s.native)]
            return []
        if m["u"] != s.last_seq + 1:
            s.counts["gaps"] += 1
            return self._resync(s, "gap", m["u"])
        self._apply(s, m, recv_ns, last)
        return []

    def _apply(self, s, m, recv_ns, last):
        levels = self._levels(s, m)
        s.ts = m["t"] * 1_000_000
        for k, (side, p, q) in enumerate(levels):
            s.book.set(side, p, q)
            if self.events is not None:
                self.events.append(s.id, int(Action.SET_LEVEL), side=side, price=p, qty=q,
                                   ts=s.ts, recv=recv_ns, sequence=m["u"],
                                   flags=LAST if last and k == len(levels) - 1 else 0)
        s.last_seq = m["u"]
        s.counts["applied"] += 1

    def _recover(self, s):
        s.state = SyncState.BUFFERING
        return [Notice("request_snapshot", self.venue, s.native)]

    def snapshot(self, native, message, recv_ns=0, /):
        snap = json.loads(message)
        s = self._sym(native)
        s.book.clear()
        s.ts = snap["t"] * 1_000_000
        ev = self.events
        if ev is not None:
            ev.append(s.id, int(Action.SNAPSHOT_BEGIN), ts=s.ts, recv=recv_ns, sequence=snap["u"])
        for side, p, q in self._levels(s, snap):
            s.book.set(side, p, q)
            if ev is not None:
                ev.append(s.id, int(Action.SET_LEVEL), side=side, price=p, qty=q, ts=s.ts,
                          recv=recv_ns, sequence=snap["u"], flags=int(Flags.SNAPSHOT))
        if ev is not None:
            ev.append(s.id, int(Action.SNAPSHOT_END), ts=s.ts, recv=recv_ns, sequence=snap["u"])
        s.counts["snapshots"] += 1
        s.last_seq = snap["u"]
        notices = [self._synced(s, snap["u"])]
        for m in s.buffer:
            if m["u"] > s.last_seq:
                self._apply(s, m, recv_ns, True)
        s.buffer.clear()
        return notices


def toy_capture(n_messages=3000, seed=1, symbols=("AAA", "BBB", "CCC"), gap_every=700):
    """A toy capture: updates around a moving mid that cross mid-message, snapshots, gaps."""
    rng = random.Random(seed)
    out: list[capture.Record] = [capture.Record(capture.OPEN, 1, "wss://toy", b"", 1, 1)]
    mid = {s: 10_000 for s in symbols}
    seq = {s: 100 for s in symbols}
    snapped: set[str] = set()
    t = 1_600_000_000_000
    ns = 1_600_000_000_000_000_000

    def px(v):
        return f"{v // 100}.{v % 100:02d}"

    def update(sym):
        seq[sym] += 1
        step = rng.choice((-3, -1, 0, 1, 3))
        old = mid[sym]
        mid[sym] += step
        m = mid[sym]
        bids = [[px(m - k), str(rng.randint(0, 3) * 1.5)] for k in range(1, rng.randint(2, 6))]
        asks = [[px(m + k), str(rng.randint(0, 3) * 1.5)] for k in range(1, rng.randint(2, 6))]
        # levels that the move crossed are removed *after* the new ones (as Binance sends
        # bids before asks): half-way through the message the book is crossed
        if step > 0:
            asks += [[px(old + k), "0"] for k in range(0, step + 1)]
        elif step < 0:
            bids += [[px(old - k), "0"] for k in range(0, -step + 1)]
        return {"s": sym, "u": seq[sym], "t": t, "b": bids, "a": asks}

    for _ in range(n_messages):
        t += rng.randint(0, 40)
        ns += rng.randint(0, 40_000_000)
        r = rng.random()
        if r < 0.03:
            msg = {"type": "heartbeat"}
        elif r < 0.10:
            msg = {"multi": [update(s) for s in rng.sample(symbols, 2)]}
        else:
            sym = rng.choice(symbols)
            msg = update(sym)
            if gap_every and rng.randrange(gap_every) == 0:
                seq[sym] += 1                       # a lost message: the next one gaps
        out.append(capture.Record(capture.RECEIVED, ns, "", json.dumps(msg).encode(), 0, 1))
        for sym in symbols:
            if sym not in snapped and rng.random() < 0.05:
                snapped.add(sym)
                m = mid[sym]
                body = {"u": seq[sym] - 1, "t": t,
                        "b": [[px(m - k), "2.5"] for k in range(1, 30)],
                        "a": [[px(m + k), "1.5"] for k in range(1, 30)]}
                url = f"https://toy/api/depth?symbol={sym}&limit=1000"
                out.append(capture.Record(capture.REST, ns, url, json.dumps(body).encode(), 0))
        # re-snapshot a symbol after a gap (the resync asked for one)
        if rng.random() < 0.02:
            snapped.clear()
    return out


def write_capture(records, path, compression="none"):
    with CaptureWriter(path, compression=compression) as w:
        for r in records:
            w.write_record(r)
    return path


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory):
    return write_capture(toy_capture(), tmp_path_factory.mktemp("toy") / "toy.fbcap")


# ---------------------------------------------------------------------------
# the plain twin of per-message sampling, from the documented rules
# ---------------------------------------------------------------------------

def reference_rows(events, record_ends, depth, *, every=None, interval=None, on_bbo=False,
                   scales=None):
    """Rows from ``events`` applied one by one to ``fastbook.Book``s, rules per packet."""
    n = len(events)
    ev = events.tolist()        # (ts, recv, inst, action, side, flags, price, qty, ...)
    boundary = [False] * n
    ends = set(record_ends)
    for j, e in enumerate(ev):
        boundary[j] = bool(e[5] & LAST) or e[3] in (10, 7) or (j + 1) in ends or j == n - 1 \
            or (j + 1 < n and ev[j + 1][3] in (9, 7))
    books: dict[int, fb.Book] = {}
    bbo: dict[int, list[int]] = {}
    since: dict[int, int] = {}
    due: dict[int, int | None] = {}
    rows = []

    def row(i, ts, seq, reason):
        top = books[i].top(depth)
        rows.append((ts, i, seq, reason, top.tolist()))

    j = 0
    while j < n:
        k = j
        while not boundary[k]:
            k += 1
        packet = range(j, k + 1)
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for x in packet:
            first.setdefault(ev[x][2], x)
            last[ev[x][2]] = x
        for x in packet:
            ts, _, i, action, side, _, price, qty = ev[x][:8]
            seq = ev[x][10]
            if i not in books:
                pd, qd = scales[i] if scales else (8, 8)
                books[i] = fb.Book(price_decimals=pd, qty_decimals=qd)
                bbo[i] = [0, 0, 0, 0]
                since[i] = 0
                due[i] = None
            if first[i] == x and interval:
                if due[i] is not None and ts > due[i]:
                    row(i, due[i], seq, 2)
                if due[i] is None or ts > due[i]:
                    due[i] = -((-ts) // interval) * interval
            if action == 6:
                books[i].set(side, price, qty)
            elif action in (7, 9):
                books[i].clear()
            if last[i] == x:
                reason = 0
                if every:
                    since[i] += 1
                    if since[i] == every:
                        since[i] = 0
                        reason |= 1
                if on_bbo:
                    now = books[i].top(1)[:, 0].tolist()
                    if now != bbo[i]:
                        bbo[i] = now
                        reason |= 4
                if reason:
                    row(i, ts, seq, reason)
        j = k + 1
    return rows


def recorded(feed_class, records, **feed_kw):
    """All events a fresh feed records over ``records``, and the record ends."""
    feed = feed_class(record=True, **feed_kw)
    parts, ends, total = [], [], 0
    for r in records:
        if r.kind == capture.RECEIVED:
            feed.feed(r.payload, r.recv_ns)
        elif r.kind == capture.REST and rest_symbol(r.url):
            feed.snapshot(rest_symbol(r.url), r.payload, r.recv_ns)
        else:
            continue
        ev = feed.take_events()
        if len(ev):
            parts.append(ev)
            total += len(ev)
            ends.append(total)
    return feed, np.concatenate(parts), ends


def rows_of(samples):
    return [(int(t), int(i), int(q), int(r), [bp.tolist(), bq.tolist(), ap.tolist(), aq.tolist()])
            for t, i, q, r, bp, bq, ap, aq in zip(
                samples["ts"], samples["instrument"], samples["sequence"], samples["reason"],
                samples["bid_px"], samples["bid_qty"], samples["ask_px"], samples["ask_qty"],
                strict=True)]


def same_books(result):
    """Every BookSet book equals the feed's own book, level by level."""
    feed = result.feed
    assert len(result.books) == len(feed.symbols)
    for native in feed.symbols:
        a, b = result.book(native), feed.book(native)
        for side in (fb.BID, fb.ASK):
            assert list(a.levels(side)) == list(b.levels(side)), native


# ---------------------------------------------------------------------------
# toy feed: mechanics
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("every", ["bbo", "5msgs", "1s", "250ms,bbo", "3msgs,100ms,bbo"])
def test_packet_sampling_equals_the_plain_twin(toy_path, every):
    result = fb.replay(toy_path, ToyFeed, every=every, depth=4)
    same_books(result)
    records = list(capture.read_capture(toy_path))
    feed, events, ends = recorded(ToyFeed, records)
    scales = [(2, 3)] * len(feed.symbols)
    expected = reference_rows(events, ends, 4, scales=scales, **parse_every(every))
    assert rows_of(result.samples) == expected
    assert len(expected) > 50


def test_no_sample_shows_a_half_applied_message(toy_path):
    """The toy capture's messages cross the book half-way; per-event sampling would show it."""
    result = fb.replay(toy_path, ToyFeed, every="bbo", depth=1)
    s = result.samples
    both = (s["bid_qty"][:, 0] > 0) & (s["ask_qty"][:, 0] > 0)
    assert not np.any(s["bid_px"][both, 0] >= s["ask_px"][both, 0])
    # ... whereas a per-event Sampler over the same events does see crossed books
    feed, events, _ = recorded(ToyFeed, list(capture.read_capture(toy_path)))
    books = fb.BookSet()
    for native in feed.symbols:
        books.add_instrument(native, kind="l2", price_decimals=2, qty_decimals=3)
    sampler = fb.Sampler(1, on_bbo=True)
    books.apply(events, sampler=sampler)
    c = sampler.columns()
    both = (c["bid_qty"][:, 0] > 0) & (c["ask_qty"][:, 0] > 0)
    assert np.any(c["bid_px"][both, 0] >= c["ask_px"][both, 0])


def test_counts_notices_and_record_kinds(toy_path):
    result = fb.replay(toy_path, ToyFeed)
    records = list(capture.read_capture(toy_path))
    kinds = {k: sum(r.kind == k for r in records) for k in capture.KINDS}
    c = result.counts
    assert c["records"] == len(records)
    assert all(c[f"records_{k}"] == v for k, v in kinds.items())
    assert c["rest_snapshots"] == kinds[capture.REST] and c["rest_other"] == 0
    assert result.messages == kinds[capture.RECEIVED] + kinds[capture.REST]
    feed = ToyFeed()
    for r in records:
        if r.kind == capture.RECEIVED:
            feed.feed(r.payload, r.recv_ns)
        elif r.kind == capture.REST:
            feed.snapshot(rest_symbol(r.url), r.payload, r.recv_ns)
    assert {k: c[k] for k in feed.counts()} == feed.counts()
    assert c["gaps"] > 0 and c["resyncs"] == c["gaps"] and c["ignored"] > 0
    resyncs = [n for n in result.notices if n.kind == "resync"]
    assert len(resyncs) == c["resyncs"] and all(n.reason == "gap" for n in resyncs)
    assert result.notice_counts["resync (gap)"] == c["resyncs"]
    text = str(resyncs[0])
    assert " toy " in text and "resync (gap) seq " in text and "toy.fbcap record " in text
    assert "notices: " in result.summary() and "gaps " in result.summary()


def test_symbols_filter_and_an_existing_bookset(toy_path):
    only = fb.replay(toy_path, ToyFeed, symbols="BBB", every="bbo")
    assert [i["symbol"] for i in only.instruments] == ["BBB"]
    full = fb.replay(toy_path, ToyFeed, every="bbo")
    j = full.books.find("BBB", "toy")
    assert list(only.book("BBB").levels(fb.BID)) == list(full.book("BBB").levels(fb.BID))
    rows = [r for r in rows_of(full.samples) if r[1] == j]
    assert [r[0] for r in rows_of(only.samples)] == [r[0] for r in rows]
    # continuing a BookSet that already has instruments: ids are shifted, books the same
    books = fb.BookSet()
    books.add_instrument("OTHER", kind="l2", price_decimals=1, qty_decimals=1)
    again = fb.replay(toy_path, ToyFeed, bookset=books)
    assert [i["symbol"] for i in again.instruments] == ["OTHER", *full.feed.symbols]
    for native in full.feed.symbols:
        assert list(again.book(native).levels(fb.ASK)) == list(full.book(native).levels(fb.ASK))


def test_bad_messages_raise_with_the_record_or_are_counted(tmp_path):
    recs = toy_capture(200, seed=3, gap_every=0)
    recs.insert(50, capture.Record(capture.RECEIVED, recs[49].recv_ns, "", b'{"bad":"AAA"}',
                                   0, 1))
    path = write_capture(recs, tmp_path / "bad.fbcap")
    with pytest.raises(FeedError, match=r"bad\.fbcap: record 51: toy AAA: bad message") as e:
        fb.replay(path, ToyFeed)
    assert e.value.venue == "toy" and e.value.symbol == "AAA"
    result = fb.replay(path, ToyFeed, on_error="skip")
    assert result.counts["malformed"] == 1 and len(result.feed.errors) == 1
    same_books(result)


def test_cryptofeed_and_fastbook_captures_of_the_same_messages_replay_the_same(tmp_path):
    recs = toy_capture(500, seed=5)
    cf = []
    for r in recs:
        t = f"{r.recv_ns // 10**9}.{r.recv_ns % 10**9:09d}".encode()
        if r.kind == capture.OPEN:
            cf.append(r.url.encode() + b" <-> " + t)
        elif r.kind == capture.REST:
            cf.append(r.url.encode() + b" -> " + t + b": " + r.payload)
        else:
            cf.append(t + b": " + r.payload)
    cf_path = tmp_path / "toy.cf"
    cf_path.write_bytes(b"\n".join(cf) + b"\n")
    ws, rest = tmp_path / "ws.cf", tmp_path / "rest.cf"
    ws.write_bytes(b"\n".join(x for x in cf if b" -> " not in x) + b"\n")
    rest.write_bytes(b"\n".join(x for x in cf if b" -> " in x) + b"\n")
    a = fb.replay(write_capture(recs, tmp_path / "toy.fbcap"), ToyFeed, every="bbo")
    b = fb.replay(cf_path, ToyFeed, every="bbo")
    c = fb.replay([ws, rest], ToyFeed, every="bbo")
    for other in (b, c):
        assert rows_of(other.samples) == rows_of(a.samples)
        assert other.counts == a.counts


def test_parquet_output_round_trips(toy_path, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "toy.parquet"
    streamed = fb.replay(toy_path, ToyFeed, every="bbo", depth=3, output=out,
                         row_group_size=100)
    kept = fb.replay(toy_path, ToyFeed, every="bbo", depth=3)
    table = pq.read_table(out)
    assert streamed.rows == table.num_rows == len(kept.samples["ts"])
    assert table.column("bid_px_1").to_pylist() == kept.samples["bid_px"][:, 0].tolist()
    assert table.column("ask_qty_3").to_pylist() == kept.samples["ask_qty"][:, 2].tolist()
    meta = table.schema.metadata
    assert meta[b"fastbook.codec"] == b"toy" and meta[b"fastbook.ts_origin"] == b"epoch"
    instruments = json.loads(meta[b"fastbook.instruments"])
    assert [i["symbol"] for i in instruments] == kept.feed.symbols
    assert {(i["price_decimals"], i["qty_decimals"], i["venue"]) for i in instruments} == \
        {(2, 3, "toy")}
    kept.to_parquet(tmp_path / "again.parquet")
    assert pq.read_table(tmp_path / "again.parquet").column("ts").to_pylist() == \
        table.column("ts").to_pylist()


def test_packet_sampler_over_batches_and_growth(toy_path):
    """Sampler(packets=True) over the recorded events gives the plain twin's rows, whether
    they come in one batch or in batches of a few records, from any starting capacity."""
    records = list(capture.read_capture(toy_path))
    feed, events, ends = recorded(ToyFeed, records)
    rules = {"every": 4, "interval": 200_000_000, "on_bbo": True}
    expected = reference_rows(events, ends, 3, scales=[(2, 3)] * len(feed.symbols), **rules)
    marked = events.copy()
    marked["flags"][np.asarray(ends) - 1] |= LAST      # each record is one message
    for per_batch, capacity in ((len(ends), 1 << 16), (5, 1), (1, 3)):
        books = fb.BookSet()
        for native in feed.symbols:
            books.add_instrument(native, kind="l2", price_decimals=2, qty_decimals=3)
        s = fb.Sampler(3, packets=True, capacity=capacity, **rules)
        cuts = [0, *ends[per_batch - 1::per_batch]]
        if cuts[-1] != len(events):
            cuts.append(len(events))
        for lo, hi in itertools.pairwise(cuts):
            books.apply(marked[lo:hi], sampler=s)
        assert rows_of(s.take()) == expected
    assert len(expected) > 100


def test_arguments():
    with pytest.raises(ValueError, match="LOBSTER"):
        fb.replay(b"", ToyFeed, lobster="x")
    with pytest.raises(ValueError, match="book_depth= is for L2"):
        fb.replay(b"", "itch50", book_depth=10)
    with pytest.raises(ValueError, match="sampling rule"):
        fb.replay(b"", ToyFeed, every="sometimes")
    with pytest.raises(TypeError, match="source must be"):
        fb.replay(12, ToyFeed)
    assert rest_symbol("https://fapi.binance.com/fapi/v1/depth?symbol=SUSHIUSDT&limit=1000") \
        == "SUSHIUSDT"
    assert rest_symbol("https://api.kraken.com/0/public/AssetPairs") is None


def test_available_lists_replay_codecs_only():
    names = codecs.available()
    assert "itch50" in names
    assert not {"capture", "instruments", "lobster", "l2replay"} & set(names)
    for name in names:
        assert codecs.kind(name) in ("l2", "stream")
        obj = codecs.load(name)
        if codecs.kind(name) == "l2":
            assert issubclass(obj, L2Feed) and obj.venue == name
        else:
            assert hasattr(obj, "Decoder")
    for helper in ("capture", "instruments", "lobster", "_l2feed", "kraken"):
        with pytest.raises(ValueError, match="unknown codec"):
            codecs.load(helper)


# ---------------------------------------------------------------------------
# real captures
# ---------------------------------------------------------------------------

def need(codec):
    if codec not in codecs.available():
        pytest.skip(f"the {codec} codec is not in this tree yet")


def test_kraken_v1_depth_1000_every_checksum_verifies():
    need("kraken-v1")
    result = fb.replay(CF / "KRAKEN.ws.50.0.gz", "kraken-v1", book_depth=1000, every="bbo",
                       depth=10)
    c = result.counts
    assert c["checksum_ok"] == 4269 and c["checksum_failed"] == 0
    assert c["snapshots"] == 10 and c["applied"] == 4269 and c["resyncs"] == 0
    assert c["records_recv"] == 4321 and c["records_sent"] == 1 and c["records_open"] == 1
    assert result.notice_counts == {"synced": 10}
    same_books(result)
    assert all(result.feed.is_synced(s) for s in result.feed.symbols)
    # the rows equal the plain twin over the same events
    records = list(capture.read_capture(CF / "KRAKEN.ws.50.0.gz"))
    feed, events, ends = recorded(codecs.load("kraken-v1"), records, depth=1000)
    scales = [(feed.book(s).price_decimals, feed.book(s).qty_decimals) for s in feed.symbols]
    assert rows_of(result.samples) == reference_rows(events, ends, 10, on_bbo=True,
                                                      scales=scales)


def test_kraken_rows_equal_the_feeds_own_book_after_each_message():
    """Each bbo row equals the book the feed itself holds right after that message."""
    need("kraken-v1")
    result = fb.replay(CF / "KRAKEN.ws.50.0.gz", "kraken-v1", book_depth=1000, every="bbo",
                       depth=5)
    rows = rows_of(result.samples)
    feed = codecs.load("kraken-v1")(depth=1000)
    expected = []
    last: dict[str, list] = {}
    for r in capture.read_capture(CF / "KRAKEN.ws.50.0.gz"):
        if r.kind != capture.RECEIVED:
            continue
        feed.feed(r.payload, r.recv_ns)
        for i, native in enumerate(feed.symbols):
            top = feed.book(native).top(5).tolist()
            if top != last.get(native) and top[0][0] + top[1][0] + top[2][0] + top[3][0]:
                bbo = [x[0] for x in top]
                if bbo != [x[0] for x in last.get(native, [[0]] * 4)]:
                    expected.append((i, top))
                last[native] = top
    assert [(i, lv) for _, i, _, _, lv in rows] == expected
    assert len(expected) == len(rows) > 500


def test_kraken_through_a_fastbook_capture_and_the_cli(tmp_path):
    need("kraken-v1")
    pq = pytest.importorskip("pyarrow.parquet")
    fbcap = tmp_path / "kraken.fbcap"
    run = [sys.executable, "-m", "fastbook"]
    done = subprocess.run([*run, "capture", "convert", str(CF / "KRAKEN.ws.50.0.gz"),
                           str(fbcap), "--codec", "kraken-v1"],
                          capture_output=True, text=True, check=True)
    assert "4,323 records from 1 file(s)" in done.stdout
    info = subprocess.run([*run, "info", str(fbcap)], capture_output=True, text=True,
                          check=True).stdout
    assert "4,323 records" in info and "recv 4,321, sent 1, open 1" in info
    assert "wss://ws.kraken.com" in info and '"codec": "kraken-v1"' in info
    out = tmp_path / "k.parquet"
    done = subprocess.run([*run, "replay", str(fbcap), "--book-depth", "1000", "--every", "bbo",
                           "-o", str(out), "--no-progress"],
                          capture_output=True, text=True, check=True)
    assert "checksum_ok 4,269" in done.stdout and "10 books (10 synced at the end)" in done.stdout
    direct = fb.replay(CF / "KRAKEN.ws.50.0.gz", "kraken-v1", book_depth=1000, every="bbo")
    table = pq.read_table(out)
    assert table.column("bid_px_1").to_pylist() == direct.samples["bid_px"][:, 0].tolist()
    bad = subprocess.run([*run, "replay", str(CF / "KRAKEN.ws.50.0.gz")], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "name its feed with --codec" in bad.stderr


def test_okx_every_checksum_verifies():
    need("okx")
    result = fb.replay(CF / "OKX.ws.1.0.gz", "okx", every="bbo")
    assert result.counts["checksum_ok"] == 290 and result.counts["checksum_failed"] == 0
    assert result.counts["resyncs"] == 0
    same_books(result)
    assert sorted(result.feed.symbols) == ["BTC-USD-220527", "BTC-USDT", "UNI-USD-SWAP"]


def test_coinbase_exchange_never_crosses():
    need("coinbase-exchange")
    result = fb.replay(CF / "COINBASE.ws.28.0.gz", "coinbase-exchange", every="bbo", depth=1)
    assert result.counts["crossed"] == 0 and result.counts["resyncs"] == 0
    assert len(result.feed.symbols) == 10
    same_books(result)
    s = result.samples
    both = (s["bid_qty"][:, 0] > 0) & (s["ask_qty"][:, 0] > 0)
    assert both.all() and np.all(s["bid_px"][:, 0] < s["ask_px"][:, 0])


def binance_reference(ws, http):
    """Binance spot books rebuilt from the raw JSON by the documented rules, in plain Python."""
    from decimal import Decimal

    def fixed(text):
        return int(Decimal(text) * 10**8)

    recs = list(capture.merge([ws, http]))
    books: dict[str, dict] = {}
    last: dict[str, int] = {}
    buffered: dict[str, list] = {}
    for r in recs:
        if r.kind == capture.REST:
            sym = rest_symbol(r.url)
            snap = json.loads(r.payload)
            books[sym] = {1: {fixed(p): fixed(q) for p, q in snap["bids"]},
                          2: {fixed(p): fixed(q) for p, q in snap["asks"]}}
            last[sym] = snap["lastUpdateId"]
            todo = [m for m in buffered.pop(sym, []) if m["u"] > last[sym]]
        elif r.kind == capture.RECEIVED:
            msg = json.loads(r.payload)
            m = msg.get("data", msg)
            if m.get("e") != "depthUpdate":
                continue
            if m["s"] not in books:
                buffered.setdefault(m["s"], []).append(m)
                continue
            if m["u"] <= last[m["s"]]:
                continue                    # already in the snapshot
            todo = [m]
        else:
            continue
        for m in todo:
            sym = m["s"]
            assert m["U"] <= last[sym] + 1 <= m["u"], (sym, m["U"], last[sym])
            for side, key in ((1, "b"), (2, "a")):
                for p, q in m[key]:
                    if fixed(q):
                        books[sym][side][fixed(p)] = fixed(q)
                    else:
                        books[sym][side].pop(fixed(p), None)
            last[sym] = m["u"]
    return books


def test_binance_spot_ws_and_rest_merged():
    need("binance-spot")
    ws, http = CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"
    result = fb.replay([ws, http], "binance-spot", every="bbo", depth=5)
    c = result.counts
    assert c["gaps"] == 0 and c["resyncs"] == 0 and c["crossed"] == 0
    assert c["rest_snapshots"] == 4 and c["records_rest"] == 4
    feed = result.feed
    assert sorted(feed.symbols) == ["BLZETH", "LRCBTC", "NKNUSDT", "RUNEEUR"]
    assert all(feed.is_synced(s) for s in feed.symbols)
    assert result.notice_counts.get("synced") == 4
    same_books(result)
    nkn = result.book("NKNUSDT")
    scale = 10 ** nkn.price_decimals
    assert nkn.best_bid()[0] * 10**8 // scale == 35270000       # 0.35270000
    assert nkn.best_ask()[0] * 10**8 // scale == 35310000       # 0.35310000
    # the books rebuilt independently from the raw JSON: same levels at the end
    ref = binance_reference(ws, http)
    for native in feed.symbols:
        b = result.book(native)
        to8 = 10 ** (8 - b.price_decimals), 10 ** (8 - b.qty_decimals)
        for side in (fb.BID, fb.ASK):
            got = {p * to8[0]: q * to8[1] for p, q in b.levels(side)}
            assert got == ref[native][side], native
    # every sampled row is a consistent book: never crossed
    s = result.samples
    both = (s["bid_qty"][:, 0] > 0) & (s["ask_qty"][:, 0] > 0)
    assert np.all(s["bid_px"][both, 0] < s["ask_px"][both, 0])


def test_binance_rows_against_an_independent_rebuild(tmp_path):
    """A few rows: the independent rebuild stopped at the row's message gives the same top."""
    need("binance-spot")
    ws, http = CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"
    result = fb.replay([ws, http], "binance-spot", every="bbo", depth=3)
    nkn = result.books.find("NKNUSDT", "binance-spot")
    rows = [r for r in rows_of(result.samples) if r[1] == nkn]
    book = result.book("NKNUSDT")
    to8 = 10 ** (8 - book.price_decimals), 10 ** (8 - book.qty_decimals)
    for ts, _, seq, _, levels in rows[:: max(1, len(rows) // 6)]:
        # cut the stream right after the message with this final update id
        lines, last = [], None
        for r in capture.read_cryptofeed(ws):
            if r.kind != capture.RECEIVED:
                continue
            m = json.loads(r.payload).get("data", {})
            if m.get("s") == "NKNUSDT" and m.get("e") == "depthUpdate":
                if m["u"] > seq:
                    break
                last = m
            lines.append(f"{r.recv_ns / 1e9:.9f}: ".encode() + r.payload)
        cut = tmp_path / "cut.ws"
        cut.write_bytes(b"\n".join(lines) + b"\n")
        ref = binance_reference(cut, http)["NKNUSDT"]
        bids = sorted(ref[1].items(), reverse=True)[:3]
        asks = sorted(ref[2].items())[:3]
        assert [p * to8[0] for p in levels[0] if p] == [p for p, _ in bids]
        assert [q * to8[1] for q in levels[3] if q] == [q for _, q in asks]
        # the row is that message's: its final update id, its event time (ms) in ns
        assert last is not None and last["u"] == seq and ts == last["E"] * 1_000_000


def test_decode_errors_name_the_capture():
    need("kraken-v1")
    data = (CF / "KRAKEN.ws.50.0.gz").read_bytes()
    import gzip

    lines = gzip.decompress(data).split(b"\n")
    lines[20] = lines[20][:40]          # a truncated JSON message
    with pytest.raises(DecodeError, match=r"<bytes>: line 21: kraken-v1: message 19: not JSON"):
        fb.replay(b"\n".join(lines), "kraken-v1", book_depth=1000)
    result = fb.replay(b"\n".join(lines), "kraken-v1", book_depth=1000, on_error="skip")
    assert result.counts["malformed"] == 1


@pytest.mark.parametrize("prefix, codec, n, symbol, bbo", [
    ("BINANCE_US", "binance-us", 4, None, None),
    ("BINANCE_FUTURES", "binance-usdm", 4, "SUSHIUSDT", (7.612, 7.616)),
    ("BINANCE_DELIVERY", "binance-coinm", 10, None, None),
])
def test_binance_us_and_futures_sync_every_symbol(prefix, codec, n, symbol, bbo):
    need(codec)
    result = fb.replay([CF / f"{prefix}.ws.1.0.gz", CF / f"{prefix}.http.0.0.gz"], codec,
                       every="bbo", depth=1)
    c = result.counts
    assert c["gaps"] == 0 and c["resyncs"] == 0 and c["crossed"] == 0
    assert c["rest_snapshots"] == n and result.notice_counts.get("synced") == n
    assert len(result.feed.symbols) == n
    assert all(result.feed.is_synced(s) for s in result.feed.symbols)
    same_books(result)
    s = result.samples
    both = (s["bid_qty"][:, 0] > 0) & (s["ask_qty"][:, 0] > 0)
    assert np.all(s["bid_px"][both, 0] < s["ask_px"][both, 0])
    if symbol:
        book = result.book(symbol)
        assert (book.format_price(book.best_bid()[0], strip=True),
                book.format_price(book.best_ask()[0], strip=True)) == tuple(map(str, bbo))


@pytest.mark.parametrize("paths, codec, feed_kw", [
    (["KRAKEN.ws.50.0.gz"], "kraken-v1", {"depth": 1000}),
    (["COINBASE.ws.28.0.gz"], "coinbase-exchange", {}),
    (["OKX.ws.1.0.gz"], "okx", {}),
    (["BINANCE.ws.1.0.gz", "BINANCE.http.0.0.gz"], "binance-spot", {}),
    (["BINANCE_FUTURES.ws.1.0.gz", "BINANCE_FUTURES.http.0.0.gz"], "binance-usdm", {}),
])
def test_real_captures_sample_once_per_message(paths, codec, feed_kw):
    """The replay's per-message rows (Sampler(packets=True)) on the real captures equal the
    plain twin's rows from the same feed's recorded events (what PacketSampler gave)."""
    need(codec)
    sources = [CF / p for p in paths]
    feed, events, ends = recorded(codecs.load(codec), list(capture.merge(sources)), **feed_kw)
    scales = [(feed.book(s).price_decimals, feed.book(s).qty_decimals) for s in feed.symbols]
    for every in ("bbo", "250ms", "3msgs,1s,bbo"):
        result = fb.replay(sources if len(sources) > 1 else sources[0], codec, every=every,
                           depth=3, book_depth=feed_kw.get("depth"))
        expected = reference_rows(events, ends, 3, scales=scales, **parse_every(every))
        assert rows_of(result.samples) == expected, every
        assert len(expected) > 20
