"""fastbook.replay and the ITCH streaming decoder: real samples, chunking, framings, sources,
outputs, the command line, and the compiled path against the pure-Python one."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastbook as fb
from fastbook import _pyl3
from fastbook.codecs import _pyitch50, itch50
from fastbook.driver import parse_every, scan
from fastbook.errors import DecodeError, UpdateError
from fastbook.sampling import Sampler
from fastbook.synth import itch_day
from tests.helpers import DATA as TESTDATA
from tests.helpers.itch import file_frames, mold_packet, soup_frames

DATA = TESTDATA / "itch"
MEATPY = DATA / "sample.itch50"
RITCH = DATA / "ex20101224.TEST_ITCH_50.gz"
RITCH_FIXED = DATA / "ex20101224.TEST_ITCH_50.lenfixed.gz"
RITCH_COUNTS = {"S": 6, "R": 3, "H": 3, "A": 4997, "F": 3, "E": 198, "X": 45, "D": 1745,
                "U": 12, "P": 5000}


@pytest.fixture(scope="module")
def day() -> bytes:
    return itch_day(60_000, n_symbols=6, seed=7)


def book_states(books):
    """Every book by symbol: order count, the top 20 levels, every order's queue position."""
    out = {}
    for i in range(len(books)):
        book = books[i]
        out[books.instrument(i)["symbol"]] = (book.order_count, book.top(20).tolist())
    return out


def reference(data, *, every=None, depth=10, symbols=None, framing="binaryfile"):
    """The pure-Python decoder, BookSet and sampler over ``data`` (one buffer)."""
    books = _pyl3.BookSet()
    dec = itch50.Decoder(books, kernel=_pyitch50, symbols=symbols, framing=framing)
    sampler = Sampler(depth, **parse_every(every)) if every else None
    for events in [*dec.feed(data), *dec.close()]:
        books.apply(events, sampler=sampler)
    return books, (sampler.columns() if sampler else {}), dec


def bbo_changes(data):
    """``(ts, instrument, (bid px, bid qty, ask px, ask qty))`` after every applied event
    that changed its instrument's best level, from the twin's books one event at a time
    (what ``every="bbo"`` samples; skipped events are not applied, so never sampled)."""
    books = _pyl3.BookSet(on_error="skip")
    dec = itch50.Decoder(books, kernel=_pyitch50)
    out, last = [], {}
    for events in [*dec.feed(data), *dec.close()]:
        def step(index, instrument, events=events):
            top = tuple(books[instrument].top(1)[:, 0].tolist())
            if top != last.get(instrument, (0, 0, 0, 0)):
                last[instrument] = top
                out.append((int(events["ts_exchange"][index]), instrument, top))

        books.apply(events, callback=step)
    return out


def same_samples(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------
# real samples
# ---------------------------------------------------------------------------

def test_meatpy_sample_ends_with_the_documented_book():
    result = fb.replay(MEATPY, "itch50")
    assert result.counts == {"S": 6, "R": 2, "A": 7, "E": 2, "X": 1, "D": 1, "P": 1}
    assert result.messages == 20 and result.bytes == MEATPY.stat().st_size
    meat = result.book("MEAT")
    assert meat.best_bid()[0] == 999500 and meat.best_ask()[0] == 1000500
    assert [i["symbol"] for i in result.instruments] == ["MEAT", "PYTH"]
    assert result.books.instrument(0)["price_decimals"] == 4
    assert result.skipped == 0


def test_ritch_zero_length_prefixes_fail_with_offset_and_message_number():
    with pytest.raises(DecodeError, match=r"byte 0, message 0 .*length prefix of 0"):
        fb.replay(RITCH, "itch50")


def test_ritch_lenfixed_raises_on_the_first_dangling_reference():
    with pytest.raises(UpdateError, match=r"TEST_ITCH_50.lenfixed.gz: message 109: cannot "
                                          r"delete order 1440692: it is not in the book "
                                          r"\(instrument 1, 'BOB'\)") as info:
        fb.replay(RITCH_FIXED, "itch50")
    assert info.value.index == 109


def test_a_stop_mode_bookset_stands_as_of_the_message_before_the_failure():
    """replay's own set stops (on_error="stop") rather than undoing a buffer's worth of
    events; a set passed in with that mode shows it: its books are those of messages
    0-108, as a replay of just those bytes gives."""
    books = fb.BookSet(on_error="stop")
    with pytest.raises(UpdateError, match="message 109: cannot delete order 1440692"):
        fb.replay(RITCH_FIXED, "itch50", bookset=books)
    data = gzip.decompress(RITCH_FIXED.read_bytes())
    head = file_frames(list(_messages(data))[:109])
    assert book_states(books) == book_states(fb.replay(head, "itch50").books)
    assert sum(books[i].order_count for i in range(len(books))) > 0


def test_ritch_lenfixed_tolerated_counts_every_dangling_reference():
    result = fb.replay(RITCH_FIXED, "itch50", on_error="skip", every="bbo")
    assert result.counts == RITCH_COUNTS and result.messages == 12_012
    assert result.errors["unknown_order"] == 117 and result.skipped == 117
    assert [i["symbol"] for i in result.instruments] == ["ALC", "BOB", "CHAR"]
    # a row after every applied event that changed its book's best bid or ask, and
    # only then: found event by event with a callback on the twin's books
    want = bbo_changes(gzip.decompress(RITCH_FIXED.read_bytes()))
    got = result.samples
    assert len(got["ts"]) == len(want) > 0
    assert [(t, i, (bp[0], bq[0], ap[0], aq[0])) for t, i, bp, bq, ap, aq in zip(
        got["ts"].tolist(), got["instrument"].tolist(), got["bid_px"].tolist(),
        got["bid_qty"].tolist(), got["ask_px"].tolist(), got["ask_qty"].tolist(),
        strict=True)] == want


# ---------------------------------------------------------------------------
# chunking, sources and framings give the same books
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000, 1 << 20])
def test_any_chunk_size_gives_the_same_books_and_samples(day, chunk_size):
    whole = fb.replay(day, "itch50", every="bbo", depth=3)
    f = _ByteReader(day)
    pieces = fb.replay(f, "itch50", every="bbo", depth=3, chunk_size=chunk_size)
    assert book_states(pieces.books) == book_states(whole.books)
    assert same_samples(pieces.samples, whole.samples)
    assert pieces.messages == whole.messages == 60_000


class _ByteReader:
    """A minimal binary file object (read only), like a socket or a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        n = len(self._data) - self._pos if n < 0 else n
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out


def test_compiled_path_equals_the_pure_python_path(day):
    for every in ("bbo", "1s", "250msgs", "100ms,bbo"):
        fast = fb.replay(day, "itch50", every=every, depth=4)
        books, samples, dec = reference(day, every=every, depth=4)
        assert book_states(fast.books) == book_states(books)
        assert same_samples(fast.samples, samples)
        assert fast.counts == dec.counts()


def test_symbols_filter_builds_only_those_books_and_the_same_ones(day):
    full = fb.replay(day, "itch50")
    some = fb.replay(day, "itch50", symbols="SYM0002,SYM0005")
    assert [i["symbol"] for i in some.instruments] == ["SYM0002", "SYM0005"]
    states = book_states(full.books)
    assert book_states(some.books) == {s: states[s] for s in ("SYM0002", "SYM0005")}
    assert some.messages == full.messages and some.events < full.events


def test_gzip_and_plain_files_give_the_same_result(day, tmp_path):
    plain, packed = tmp_path / "day.itch", tmp_path / "day.itch.gz"
    plain.write_bytes(day)
    packed.write_bytes(gzip.compress(day, compresslevel=1))
    a = fb.replay(plain, "itch50", chunk_size=4096)
    b = fb.replay(packed, "itch50", chunk_size=4096)
    assert book_states(a.books) == book_states(b.books)
    assert a.bytes == b.bytes == len(day)


def _messages(data: bytes):
    p = 0
    while p < len(data):
        (length,) = struct.unpack_from(">H", data, p)
        yield data[p + 2:p + 2 + length]
        p += 2 + length


def test_moldudp64_and_soupbintcp_framings_give_the_same_books(day):
    msgs = list(_messages(day))
    mold = bytearray()
    seq = 1
    for i in range(0, len(msgs), 5):
        group = msgs[i:i + 5]
        mold += mold_packet(seq, group)
        seq += len(group)
    soup = soup_frames(msgs)
    expected = book_states(fb.replay(day, "itch50").books)
    for framing, data in (("moldudp64", bytes(mold)), ("soupbintcp", soup)):
        result = fb.replay(data, "itch50", framing=framing, chunk_size=999)
        assert book_states(result.books) == expected, framing
        assert result.messages == len(msgs)


def test_truncated_stream_names_the_offset(day):
    cut = day[:-5]
    with pytest.raises(DecodeError, match=r"byte \d+, message 59999 .*truncated"):
        fb.replay(cut, "itch50")


# ---------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------

def test_parquet_output_streams_row_groups_with_scales_in_the_metadata(day, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    in_memory = fb.replay(day, "itch50", every="bbo", depth=3)
    out = tmp_path / "samples.parquet"
    streamed = fb.replay(day, "itch50", every="bbo", depth=3, output=out, row_group_size=1000)
    assert streamed.output == str(out) and streamed.rows == len(in_memory.samples["ts"])
    meta = pq.ParquetFile(out).metadata
    assert meta.num_row_groups > 1
    table = pq.read_table(out)
    expected = in_memory.to_arrow()
    assert table.column_names == expected.column_names
    for name in expected.column_names:
        assert table.column(name).to_pylist() == expected.column(name).to_pylist(), name
    info = table.schema.metadata
    assert info[b"fastbook.price_decimals"] == b"4" and info[b"fastbook.ts_unit"] == b"ns"
    assert [i["symbol"] for i in json.loads(info[b"fastbook.instruments"])] == [
        f"SYM{k:04d}" for k in range(1, 7)]
    with pytest.raises(fb.FastbookError, match="streamed"):
        streamed.to_arrow()


def test_row_groups_are_capped_by_bytes_for_deep_samples(day, tmp_path, monkeypatch):
    # a million-row group of depth-50 rows would hold 1.6 GB before being written
    pq = pytest.importorskip("pyarrow.parquet")
    from fastbook import driver

    row = driver._row_bytes(50)
    assert row == 8 + 4 + 8 + 1 + 4 * 8 * 50
    monkeypatch.setattr(driver, "_GROUP_BYTES", 2000 * row)
    out = tmp_path / "deep.parquet"
    result = fb.replay(day, "itch50", every="bbo", depth=50, output=out)
    assert result.rows > 2000
    sizes = [pq.ParquetFile(out).metadata.row_group(k).num_rows
             for k in range(pq.ParquetFile(out).metadata.num_row_groups)]
    assert sum(sizes) == result.rows and max(sizes) <= 2000 and len(sizes) > 1


def test_arrow_csv_pandas_and_to_parquet(day, tmp_path):
    pa = pytest.importorskip("pyarrow")
    result = fb.replay(day, "itch50", every="5000msgs", depth=2)
    table = result.to_arrow()
    assert table.num_rows == len(result.samples["ts"]) > 0
    first = result.samples
    assert table.column("bid_px_2").to_pylist() == first["bid_px"][:, 1].tolist()
    assert table.column("symbol").to_pylist()[0] == \
        result.books.instrument(int(first["instrument"][0]))["symbol"]
    result.to_parquet(tmp_path / "a.parquet", row_group_size=7)
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "a.parquet").num_rows == table.num_rows
    arrow_out = fb.replay(day, "itch50", every="5000msgs", depth=2, output=tmp_path / "s.arrow",
                          row_group_size=5)
    with pa.ipc.open_file(tmp_path / "s.arrow") as f:
        assert f.read_all().column("ts").to_pylist() == first["ts"].tolist()
    assert arrow_out.rows == table.num_rows
    fb.replay(day, "itch50", every="5000msgs", depth=2, output=tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert len(lines) == table.num_rows + 1 and lines[0].startswith('"ts","instrument","symbol"')


def test_to_pandas(day):
    pd = pytest.importorskip("pandas")
    result = fb.replay(day, "itch50", every="5000msgs", depth=2)
    frame = result.to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(result.samples["ts"])
    assert frame["bid_px_1"].tolist() == result.samples["bid_px"][:, 0].tolist()


def test_lobster_files_from_a_replay(day, tmp_path):
    from fastbook.codecs import lobster

    result = fb.replay(day, "itch50", symbols=["SYM0003"], depth=5, lobster=tmp_path / "lob")
    messages = lobster.read_messages(tmp_path / "lob" / "SYM0003_message_5.csv")
    book_rows = lobster.read_orderbook(tmp_path / "lob" / "SYM0003_orderbook_5.csv", levels=5)
    assert len(messages) == len(book_rows) >= result.events
    final = lobster.orderbook_top(book_rows[-1:], levels=5)[0]
    assert final.tolist() == result.book("SYM0003").top(5).tolist()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown codec"):
        fb.replay(b"", "nope")
    with pytest.raises(ValueError, match="sampling rule"):
        fb.replay(b"", "itch50", every="3 fortnights")
    with pytest.raises(ValueError, match="needs a sampling rule"):
        fb.replay(b"", "itch50", output="x.parquet")
    with pytest.raises(ValueError, match="output format"):
        fb.replay(b"", "itch50", every="bbo", output="x.xlsx")
    with pytest.raises(ValueError, match="framing"):
        fb.replay(b"", "itch50", framing="pigeon")
    assert parse_every("1s,bbo,10msgs") == {"interval": 10**9, "on_bbo": True, "every": 10}
    assert parse_every(7) == {"every": 7}


def test_scan_counts_and_time_range(day):
    info = scan(day)
    assert info["messages"] == 60_000 and info["bytes"] == len(day)
    assert sum(info["counts"].values()) == 60_000
    assert [d["symbol"] for d in info["directory"]] == [f"SYM{k:04d}" for k in range(1, 7)]
    assert 4 * 3600 * 10**9 <= info["first_ts"] < info["last_ts"] <= 20 * 3600 * 10**9


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

def run(*args, check=True):
    return subprocess.run([sys.executable, "-m", "fastbook", *args], capture_output=True,
                          text=True, check=check)


def test_cli_replay_info_and_errors(day, tmp_path):
    path = tmp_path / "day.itch"
    path.write_bytes(day)
    out = run("replay", str(path), "--every", "bbo", "-o", str(tmp_path / "o.parquet"),
              "--depth", "3", "--top", "2").stdout
    assert "60,000 messages" in out and "6 books" in out and "sample rows written" in out
    assert out.count(" orders  bid ") == 2
    info = run("info", str(path)).stdout
    assert "60,000 messages" in info and "SYM0001" in info and "book events from 0" in info
    bad = run("replay", str(RITCH), check=False)
    assert bad.returncode == 1 and "byte 0, message 0" in bad.stderr
    dangling = run("replay", str(RITCH_FIXED), check=False)
    assert dangling.returncode == 1 and "--skip-errors" in dangling.stderr
    tolerant = run("replay", str(RITCH_FIXED), "--skip-errors").stdout
    assert "117 skipped" in tolerant and "unknown_order 117" in tolerant
