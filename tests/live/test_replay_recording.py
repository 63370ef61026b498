"""``fb.replay`` / ``fastbook replay`` of a live recording give the live run's books, states
and counts: the real driver runs against the loopback simulator with faults on three venues
(and make-before-break handovers), records to rotated parts, and the replay must agree with
what the live run had at the end of the recording, level by level."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time

import numpy as np
import pytest

pytest.importorskip("websockets")

import fastbook as fb
from fastbook.capture import CaptureReader, CaptureWriter
from fastbook.cli import main
from fastbook.errors import DecodeError
from fastbook.live import BookState
from fastbook.live._record import LiveRecorder, SessionRun, replay_recording
from fastbook.live._recorder import recording_files
from fastbook.testing import ExchangeSimulator, book_equals_truth
from tests.live.servers import until
from tests.live.test_live_cli import okx_server  # noqa: F401  (the fixture)

VENUES = {"binance-spot": ["BTCUSDT", "ETHUSDT"], "okx": ["BTC-USDT"],
          "coinbase-advanced": ["BTC-USD", "ETH-USD"]}
SPECS = [f"{v}:{s}" for v, ss in VENUES.items() for s in ss]
KEYS = [(v, s) for v, ss in VENUES.items() for s in ss]


def levels(book):
    return list(book.levels(fb.BID)), list(book.levels(fb.ASK))


async def record_run(directory):
    """The live run: faults on three venues, handovers on Binance; its end, as it was."""
    async with ExchangeSimulator(VENUES, rate=150, seed=21) as sim:
        recorder = LiveRecorder(directory, max_bytes=40_000, compression="none",
                                meta={"specs": SPECS})
        async with fb.live(SPECS, endpoints=sim.endpoints, record=recorder, backoff_s=0.05,
                           latency=False, max_age_s={"binance-spot": 1.0}) as feed:
            assert await feed.wait_live(20), feed.stats()["books"]
            await asyncio.sleep(0.2)
            sim.inject("binance-spot", "drop", symbol="BTCUSDT")
            sim.inject("okx", "bad_checksum", symbol="BTC-USDT")
            sim.inject("coinbase-advanced", "disconnect")

            def healed():
                st = feed.stats()
                return (st["books"][("binance-spot", "BTCUSDT")]["gaps"] >= 1
                        and st["books"][("okx", "BTC-USDT")]["checksum_failed"] >= 1
                        and st["venues"]["coinbase-advanced"]["disconnects"] >= 1
                        and st["venues"]["binance-spot"]["handovers"] >= 1
                        and all(feed.state(v, s) is BookState.LIVE for v, s in KEYS))
            assert await until(healed, 20), feed.stats()
            for venue in VENUES:
                sim.pause(venue)
            await sim.wait_idle()
            await asyncio.sleep(0.3)
            assert await until(lambda: all(feed.state(v, s) is BookState.LIVE
                                           for v, s in KEYS))
            # no await from here on: nothing is received between the cut and the copies
            cut = time.time_ns()
            end = {k: (levels(feed.book(*k)), feed.state(*k), feed.session.counts(*k),
                       feed.stats()["books"][k]) for k in KEYS}
            for k in KEYS:
                assert book_equals_truth(feed.book(*k), sim.truth(*k)), k
        return cut, end


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("live") / "rec")
    cut, end = asyncio.run(asyncio.wait_for(record_run(directory), 90))
    return directory, cut, end


def test_replay_of_a_rotated_recording_is_the_live_run(recording):
    directory, cut, end = recording
    parts = recording_files(directory)
    assert len(parts) >= 3
    assert all(CaptureReader(p).meta["recorder"] == "fastbook.live" for p in parts)
    opens = [json.loads(r.payload) for p in parts for r in CaptureReader(p) if r.kind == "open"]
    assert any(o["standby"] for o in opens)              # a make-before-break handover
    # the moment the standby took over is in the recording: no frame shows it
    promoted = {r.conn for p in parts for r in CaptureReader(p) if r.kind == "driver"
                and json.loads(r.payload) == {"promote": True}}
    assert promoted and promoted <= {r.conn for p in parts for r in CaptureReader(p)
                                     if r.kind == "open" and json.loads(r.payload)["standby"]}
    result = fb.replay(directory, until_ns=cut)
    assert result.kind == "live" and result.codec == "binance-spot,okx,coinbase-advanced"
    assert result.counts["records_after_until"] > 0       # the run's own shutdown, left out
    assert len(result.books) == len(KEYS)
    for key, (lv, state, counts, stats) in end.items():
        venue, native = key
        assert levels(result.book(native, venue=venue)) == lv, key
        assert levels(result.session.book(venue, native)) == lv, key
        b = result.book_stats[key]
        assert b["state"] == state.value and b["counts"] == counts, key
        for k in ("messages", "applied", "snapshots", "gaps", "resyncs", "errors",
                  "checksum_failed", "state_changes"):
            assert b[k] == stats[k], (key, k)
    # the faults are in the replayed counts too, as the live run counted them
    assert result.book_stats[("binance-spot", "BTCUSDT")]["gaps"] >= 1
    assert result.book_stats[("okx", "BTC-USDT")]["checksum_failed"] >= 1
    assert result.counts["connections"] >= 5                 # reconnect and handovers
    text = result.summary()
    for venue, native in KEYS:
        assert f"{venue}:{native} live" in text


def test_the_bookset_follows_the_primary_after_every_record(recording):
    """The events the replay applies keep each BookSet book equal to the session's book after
    every record (reconnects and handovers replace it whole), so samples are exact."""
    directory, cut, _ = recording
    books = fb.BookSet(on_error="stop")
    from fastbook.driver import Instruments

    run = SessionRun(directory, Instruments(books), until_ns=cut, batch_events=1)
    checked = 0
    with run:
        for events in run:
            books.apply(events)
            for key, i in run._ids.items():
                want = run.session.book(*key)
                assert levels(books[i]) == (levels(want) if want is not None else ([], [])), key
            checked += 1
    assert checked > 500 and run.rebuilds >= len(KEYS) + 2


def test_sampling_and_symbols(recording):
    directory, cut, end = recording
    # a row at the end of every message (never inside one): the last is the final book
    result = fb.replay(directory, until_ns=cut, every=1, depth=3,
                       symbols=["BTC-USDT", "ETHUSDT"])
    assert sorted(result.book_stats) == [("binance-spot", "ETHUSDT"), ("okx", "BTC-USDT")]
    with pytest.raises(KeyError):
        result.book("BTC-USD", venue="coinbase-advanced")
    s = result.samples
    assert s["bid_px"].shape[1] == 3
    assert len(s["ts"]) > 100 and (s["ts"] > 1_700_000_000 * 10**9).all()
    # the last row of each book is its top at the end
    for inst in result.instruments:
        rows = np.flatnonzero(s["instrument"] == inst["id"])
        assert len(rows), inst
        (bids, asks) = end[(inst["venue"], inst["symbol"])][0]
        last = rows[-1]
        for side, want in (("bid", bids), ("ask", asks)):
            got = zip(s[f"{side}_px"][last], s[f"{side}_qty"][last], strict=True)
            assert [tuple(int(v) for v in x) for x in got] == want[:3], (inst, side)
    # the same columns as any L2 replay's
    okx = os.path.join(os.path.dirname(__file__), "..", "data", "l2", "cryptofeed",
                       "OKX.ws.1.0.gz")
    other = fb.replay(okx, "okx", every="bbo", depth=3)
    assert sorted(other.samples) == sorted(s)
    assert all(other.samples[k].dtype == s[k].dtype for k in s)


def test_a_codec_that_contradicts_the_recording_is_an_error(recording):
    directory, _, _ = recording
    with pytest.raises(ValueError, match="binance-spot, okx, coinbase-advanced; codec 'okx'"):
        fb.replay(directory, "okx")
    with pytest.raises(ValueError, match="LOBSTER"):
        fb.replay(directory, lobster=directory)


def _rewrite(path, records, meta, compression="none", flush_every=0):
    w = CaptureWriter(path, compression=compression, meta=meta)
    for i, r in enumerate(records, 1):
        w.write(r.kind, r.payload, r.recv_ns, conn=r.conn, url=r.url, binary=bool(r.flags & 1))
        if flush_every and i % flush_every == 0:
            w.flush()                   # a complete zstd frame, as the recorder's write-outs
    w.close()


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_a_recording_cut_short_is_a_clear_error_or_replays_to_its_last_record(
        recording, tmp_path, compression):
    """A crash mid-write leaves the last part ending inside a record (or a zstd frame): a
    clear error, or (skip) the replay of every whole record (every complete frame), never a
    book from half a record."""
    if compression == "zstd":
        pytest.importorskip("zstandard")
    directory, _, _ = recording
    cut, clean = str(tmp_path / "cut"), str(tmp_path / "clean")
    shutil.copytree(directory, cut)
    shutil.copytree(directory, clean)
    # the crash comes in the middle of the run: the parts after the one cut are not written
    parts = recording_files(directory)
    last = parts[len(parts) // 2]
    for later in parts[len(parts) // 2 + 1:]:
        os.remove(os.path.join(cut, os.path.basename(later)))
        os.remove(os.path.join(clean, os.path.basename(later)))
    name = os.path.basename(last)
    meta = CaptureReader(last).meta
    records = list(CaptureReader(last))
    k = next(i for i in range(len(records) // 2, len(records))
             if records[i].kind == "recv" and (i + 1) % 5)
    path = os.path.join(cut, name)
    if compression == "zstd":
        whole = (k + 1) // 5 * 5                # the records of the complete frames
        assert whole > 0
        _rewrite(os.path.join(clean, name), records[:whole], meta)
        _rewrite(path, records[:k + 1], meta, "zstd", flush_every=5)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 5)
        message = rf"{name}: truncated zstd data.*cut short"
    else:
        _rewrite(os.path.join(clean, name), records[:k], meta)
        _rewrite(path, records[:k + 1], meta)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - len(records[k].payload) // 2 - 3)
        message = rf"{name}: truncated capture: record {k + 1} .*cut short"
    with pytest.raises(DecodeError, match=message):
        fb.replay(cut)
    result = fb.replay(cut, on_error="skip")
    assert result.counts["truncated_records"] == 1
    assert any("truncated" in w for w in result.warnings)
    whole_run = fb.replay(clean)
    session = replay_recording(clean)
    assert result.counts["records"] == whole_run.counts["records"]
    for venue, native in KEYS:
        lv = levels(result.book(native, venue=venue))
        assert lv == levels(whole_run.book(native, venue=venue)), (venue, native)
        assert lv == levels(session.book(venue, native)), (venue, native)
        assert result.book_stats[(venue, native)] == whole_run.book_stats[(venue, native)]
        assert result.book_stats[(venue, native)]["counts"] == session.counts(venue, native)
    # a part cut short that is not the last is corrupt, whatever on_error says
    shutil.copy(path, recording_files(cut)[0])
    with pytest.raises(DecodeError, match="truncated"):
        fb.replay(cut, on_error="skip")


def test_one_recording_file_and_a_bad_open_record(tmp_path):
    path = str(tmp_path / "one.fbcap")
    w = CaptureWriter(path, compression="none", meta={"recorder": "fastbook.live"})
    w.write("open", b'{"venue": "okx", "symbols": ["BTC-USDT"]}', 1, conn=1, url="ws://127.0.0.1:1")
    w.write("recv", b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}',
            2, conn=1)
    w.write("open", b'{"venue": "okx"}', 3, conn=2, url="ws://127.0.0.1:1")
    w.close()
    with pytest.raises(DecodeError, match=r"one.fbcap: record 3: an open record"):
        fb.replay(path)
    # a venue that connects only later (no specs in the metadata) joins the replay then
    late = str(tmp_path / "late.fbcap")
    w = CaptureWriter(late, compression="none", meta={"recorder": "fastbook.live"})
    w.write("open", b'{"venue": "okx", "symbols": ["BTC-USDT"]}', 1, conn=1, url="ws://127.0.0.1:1")
    w.write("recv", b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}',
            2, conn=1)
    w.write("open", b'{"venue": "bybit", "symbols": ["BTCUSDT"]}', 3, conn=2, url="ws://127.0.0.1:2")
    w.write("recv", b'{"op":"pong"}', 4, conn=2)
    w.write("close", b"1006 gone", 5, conn=1)
    w.write("recv", b'{"event":"late"}', 6, conn=1)     # read after its close: not fed
    w.write("recv", b'{"event":"who"}', 7, conn=9)      # opened in a part not here
    w.close()
    result = fb.replay(late)
    assert (result.counts["records_after_close"],
            result.counts["records_unknown_connection"]) == (1, 1)
    assert any("open record is not in the recording" in x for x in result.warnings)
    assert replay_recording(late).track("okx", "BTC-USDT").state is BookState.CONNECTING
    assert result.codec == "okx"            # what the recording's start says
    assert {k: b["state"] for k, b in result.book_stats.items()} == {
        ("okx", "BTC-USDT"): "connecting", ("bybit", "BTCUSDT"): "syncing"}
    assert len(result.books) == 2
    bad = str(tmp_path / "bad_venue.fbcap")
    w = CaptureWriter(bad, compression="none", meta={"recorder": "fastbook.live"})
    w.write("open", b'{"venue": "okx", "symbols": ["BTC-USDT"]}', 1, conn=1, url="ws://127.0.0.1:1")
    w.write("recv", b'{"event":"subscribe"}', 2, conn=1)
    w.write("open", b'{"venue": "nasdaq", "symbols": ["AAPL"]}', 3, conn=2, url="ws://127.0.0.1:2")
    w.close()
    with pytest.raises(DecodeError, match=r"bad_venue\.fbcap: record 3: .*nasdaq"):
        fb.replay(bad)
    # one file, zstd, cut short inside its last frame
    pytest.importorskip("zstandard")
    cut = str(tmp_path / "cut.fbcap.zst")
    good = [r for r in CaptureReader(path)][:2]
    _rewrite(cut, good * 3, {"recorder": "fastbook.live"}, "zstd", flush_every=2)
    with open(cut, "r+b") as f:
        f.truncate(os.path.getsize(cut) - 5)
    with pytest.raises(DecodeError, match=r"cut\.fbcap\.zst: truncated zstd data"):
        fb.replay(cut)
    result = fb.replay(cut, on_error="skip")
    assert (result.counts["records"], result.counts["truncated_records"]) == (4, 1)
    assert result.counts["connections"] == 2 and result.book_stats[("okx", "BTC-USDT")]
    # a capture without the recorder's mark is not a live recording: the codec replays it
    plain = str(tmp_path / "plain.fbcap")
    w = CaptureWriter(plain, compression="none", meta={"codec": "okx"})
    w.write("recv", b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}',
            2, conn=1)
    w.close()
    assert fb.replay(plain, "okx").kind == "l2"


def test_cli_replays_a_recording(recording, capsys):
    directory, _, _ = recording
    assert main(["replay", directory, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "of a live recording" in out
    for venue, native in KEYS:
        assert f"{venue}:{native} " in out
    assert main(["replay", directory, "--codec", "bybit"]) == 1
    err = capsys.readouterr().err
    assert "live recording of binance-spot, okx, coinbase-advanced" in err and "bybit" in err


def test_a_single_file_recording_of_a_reconnecting_run(tmp_path):
    """The real driver records one file (a mid-stream disconnect, so two connections);
    fb.replay of it, with the recording's own venue as codec, is the live end."""
    from tests.live.servers import CaptureServer, capture_frames

    okx = os.path.join(os.path.dirname(__file__), "..", "data", "l2", "cryptofeed",
                       "OKX.ws.1.0.gz")
    frames = capture_frames(okx)
    insts = ["BTC-USD-220527", "BTC-USDT", "UNI-USD-SWAP"]
    path = str(tmp_path / "okx.fbcap")

    async def main():
        async with CaptureServer(frames, close_after=200) as srv, \
                fb.live([f"okx:{i}" for i in insts], endpoints={"okx": {"ws": srv.url}},
                        latency=False, record=path, backoff_s=0.01) as feed:
            # the venue's total counts the first connection's 200 frames too
            assert await until(lambda: srv.connections == 2 and feed.stats()["venues"]
                               ["okx"]["messages"] == 200 + len(frames), 15)
            cut = time.time_ns()
            return cut, {i: (levels(feed.book("okx", i)), feed.state("okx", i),
                             feed.session.counts("okx", i)) for i in insts}

    cut, end = asyncio.run(asyncio.wait_for(main(), 30))
    result = fb.replay(path, "okx", until_ns=cut)
    assert result.counts["connections"] == 2
    for inst, (lv, state, counts) in end.items():
        assert levels(result.book(inst)) == lv
        assert result.book_stats[("okx", inst)]["state"] == state.value
        assert result.book_stats[("okx", inst)]["counts"] == counts
    # without the cut: nothing came after it but the run's own shutdown, which is counted
    # and not applied, so the books and states are the same
    whole = fb.replay(path)
    assert whole.counts["shutdown_closes"] == 1 and whole.book_stats == result.book_stats
    assert all(levels(whole.book(i)) == end[i][0] for i in insts)


def test_a_venue_the_driver_gave_up_on_is_down_in_the_replay(tmp_path):
    """A venue that never connects goes down in the live run; no frame of it is recorded,
    so the driver's decision is: the replay has it down with the live reason, while the
    other venue's books are the live ones."""
    from tests.live.servers import CaptureServer, capture_frames

    okx = os.path.join(os.path.dirname(__file__), "..", "data", "l2", "cryptofeed",
                       "OKX.ws.1.0.gz")
    frames = capture_frames(okx)
    insts = ["BTC-USDT", "UNI-USD-SWAP"]
    path = str(tmp_path / "down.fbcap")
    keys = [("okx", i) for i in insts] + [("bybit", "BTCUSDT")]

    async def main():
        async with CaptureServer(frames) as srv, \
                fb.live([f"okx:{i}" for i in insts] + ["bybit:BTCUSDT"],
                        endpoints={"okx": {"ws": srv.url}, "bybit": {"ws": "ws://127.0.0.1:9"}},
                        latency=False, record=path, max_attempts=2, backoff_s=0.01,
                        backoff_cap_s=0.05) as feed:
            assert await until(lambda: feed.state("bybit", "BTCUSDT") is BookState.DOWN
                               and all(feed.state("okx", i) is BookState.LIVE for i in insts)
                               and feed.stats()["venues"]["okx"]["messages"] == len(frames),
                               15)
            cut = time.time_ns()
            t = feed.session.track("bybit", "BTCUSDT")
            return cut, {k: (levels(feed.session.book(*k)) if k[0] == "okx" else None,
                             feed.state(*k), feed.session.track(*k).state_changes)
                         for k in keys}, t.reason

    cut, end, reason = asyncio.run(asyncio.wait_for(main(), 30))
    assert "connection attempts failed" in reason
    downs = [json.loads(r.payload) for r in CaptureReader(path) if r.kind == "driver"]
    assert downs and all(d == {"down": "bybit", "reason": d["reason"]} for d in downs)
    assert downs[-1]["reason"] == reason
    session = replay_recording(path, until_ns=cut)
    result = fb.replay(path, until_ns=cut)
    assert result.counts["records_driver"] == len(downs)
    for key, (lv, state, changes) in end.items():
        t = session.track(*key)
        assert (t.state, t.state_changes) == (state, changes), key
        assert result.book_stats[key]["state"] == state.value, key
        assert result.book_stats[key]["state_changes"] == changes, key
        if lv is not None:
            assert levels(session.book(*key)) == lv == levels(result.book(key[1], venue="okx"))
    assert session.book("bybit", "BTCUSDT") is None
    assert session.track("bybit", "BTCUSDT").reason == reason
    assert "bybit:BTCUSDT down" in " ".join(result.warnings)


def test_a_driver_record_that_is_not_understood_is_a_clear_error(tmp_path):
    path = str(tmp_path / "odd.fbcap")
    with CaptureWriter(path, meta={"recorder": "fastbook.live", "specs": ["okx:BTC-USDT"]}) as w:
        w.write("open", json.dumps({"venue": "okx", "symbols": ["BTC-USDT"]}), 1, conn=1,
                url="ws://127.0.0.1:1")
        w.driver({"handover": 2}, 2, conn=1)
    for call in (lambda: replay_recording(path), lambda: fb.replay(path)):
        with pytest.raises(DecodeError, match=r"odd\.fbcap: record 2: a driver record"):
            call()


def test_fastbook_record_then_fastbook_replay(okx_server, tmp_path, capsys):  # noqa: F811
    """The command line end to end: what `fastbook record` counted, `fastbook replay` says."""
    rec = str(tmp_path / "rec")
    assert main(["record", "okx:BTC-USDT", "--endpoint", f"okx={okx_server.url}",
                 "--duration", "1.5", "--json", "-o", rec]) == 0
    b = json.loads(capsys.readouterr().out)["books"]["okx:BTC-USDT"]
    assert main(["replay", rec, "--no-progress", "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert f"okx:BTC-USDT live: messages {b['messages']:,}, applied {b['applied']:,}, " \
        f"gaps {b['gaps']:,}, resyncs {b['resyncs']:,}, errors {b['errors']:,}" in out, out
    assert "1 of them the run's shutdown, not applied" in out
    assert main(["replay", rec, "--codec", "okx", "--every", "bbo", "-o",
                 str(tmp_path / "s.csv"), "--no-progress"]) == 0
    assert "sample rows written to" in capsys.readouterr().out
