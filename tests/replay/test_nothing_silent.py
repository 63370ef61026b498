"""Issue 26 (items 4-7): a replay says what went wrong and what would fix it, checks its
outputs before the work, honours skip mode in LOBSTER output, and reads stdin as it is."""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import warnings

import numpy as np
import pytest

import fastbook as fb
from fastbook import _pyl3, capture
from fastbook.codecs import itch50, lobster
from fastbook.driver import codec_name, parse_every
from fastbook.errors import DecodeError, ReplayError, ReplayWarning, UpdateError
from fastbook.sources import Peekable, peekable
from fastbook.synth import itch_day
from tests.helpers import DATA
from tests.helpers.itch import add, binfile, directory_msg, system

ITCH = DATA / "itch"
MEATPY = ITCH / "sample.itch50"
RITCH = ITCH / "ex20101224.TEST_ITCH_50.gz"
RITCH_FIXED = ITCH / "ex20101224.TEST_ITCH_50.lenfixed.gz"
CF = DATA / "l2" / "cryptofeed"


@pytest.fixture(scope="module")
def day() -> bytes:
    return itch_day(20_000, n_symbols=4, seed=11)


# -- symbols= that match nothing -------------------------------------------------------------

def test_symbols_matching_nothing_is_an_error_with_the_closest(day):
    with pytest.raises(ReplayError) as err:
        fb.replay(day, "itch50", symbols="sym0001")
    text = str(err.value)
    assert "'sym0001'" in text and "closest: SYM0001" in text and "no books" in text
    with pytest.raises(ReplayError, match=r"'SYM001' \(closest: SYM0001"):
        fb.replay(day, "itch50", symbols=["SYM001"])
    # a symbol the day does not have at all: its symbols are listed
    with pytest.raises(ReplayError, match="it names MEAT, PYTH"):
        fb.replay(MEATPY, "itch50", symbols="ZZZZZZZZZ")


def test_symbols_partly_found_replays_and_warns(day):
    result = fb.replay(day, "itch50", symbols="SYM0002,SYM0O03")
    assert [i["symbol"] for i in result.instruments] == ["SYM0002"]
    assert result.warnings == [
        "<buffer> has no symbol 'SYM0O03' (closest: SYM0003, SYM0004, SYM0002)"]
    assert "warning: <buffer> has no symbol 'SYM0O03'" in result.summary()
    with pytest.raises(ValueError, match="names no symbol"):
        fb.replay(day, "itch50", symbols=" , ")


def test_l2_symbols_matching_nothing_names_the_captures_symbols():
    with pytest.raises(ReplayError, match=r"'nknusdt' \(closest: NKNUSDT\)"):
        fb.replay([CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"], "binance-spot",
                  symbols="nknusdt")


# -- L2 replays that cannot sync -------------------------------------------------------------

def test_binance_without_its_rest_snapshots_says_add_the_http_capture():
    result = fb.replay(CF / "BINANCE.ws.1.0.gz", "binance-spot")
    assert result.counts["rest_snapshots"] == 0
    # the only events are the capture's 2 aggTrade prints (a trade needs no synced book)
    assert result.events == result.counts["trades"] == 2 and result.counts["applied"] == 0
    [text] = result.warnings
    assert text.startswith("4 book(s) never synced (NKNUSDT, BLZETH, LRCBTC, RUNEEUR): no "
                           "REST depth snapshot")
    assert "GET /api/v3/depth?symbol=NKNUSDT" in text and "`*.http.*` capture" in text
    assert "warning: 4 book(s) never synced" in result.summary()
    # with it, nothing to say
    good = fb.replay([CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"], "binance-spot")
    assert good.warnings == [] and "warning" not in good.summary()


def test_a_futures_stream_under_the_spot_codec_says_try_binance_usdm():
    files = [CF / "BINANCE_FUTURES.ws.1.0.gz", CF / "BINANCE_FUTURES.http.0.0.gz"]
    result = fb.replay(files, "binance-spot")
    assert result.warnings[0].startswith("the captures were recorded from "
                                         "wss://fstream.binance.com/")
    assert result.warnings[0].endswith("which is binance-usdm's, not binance-spot's: try "
                                       "--codec binance-usdm")
    assert "4 book(s) not synced at the end" in result.warnings[1]
    assert "snapshot_too_old 3" in result.warnings[1]
    assert fb.replay(files, "binance-usdm").warnings == []


def test_a_book_asked_for_that_never_synced_is_a_replay_warning():
    with pytest.warns(ReplayWarning, match="NKNUSDT never became valid.*http"):
        fb.replay(CF / "BINANCE.ws.1.0.gz", "binance-spot", symbols="NKNUSDT")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayWarning)
        fb.replay([CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"], "binance-spot",
                  symbols="NKNUSDT")


# -- empty and foreign input -----------------------------------------------------------------

def test_an_empty_input_is_an_error(tmp_path):
    empty = tmp_path / "empty.itch"
    empty.write_bytes(b"")
    for source in (empty, b"", io.BytesIO(b"")):
        with pytest.raises(DecodeError, match="the input is empty"):
            fb.replay(source, "itch50")
    gz = tmp_path / "empty.itch.gz"
    gz.write_bytes(gzip.compress(b""))
    with pytest.raises(DecodeError, match=r"empty \(0 bytes decompressed\)"):
        fb.replay(gz, "itch50")
    with pytest.raises(DecodeError, match="the input is empty"):
        fb.driver.scan(empty)
    # an empty capture, among others
    (tmp_path / "empty.fbcap").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty\.fbcap: the capture is empty"):
        fb.replay([CF / "OKX.ws.1.0.gz", tmp_path / "empty.fbcap"], "okx")


def test_bytes_of_another_format_get_a_hint():
    with pytest.raises(DecodeError) as err:
        fb.replay(CF / "KRAKEN.ws.50.0.gz", "itch50")
    text = str(err.value)
    assert "this does not look like NASDAQ TotalView-ITCH 5.0 BinaryFILE" in text
    assert "it is a cryptofeed capture of an L2 feed" in text
    lob = (DATA / "lobster" / "AAPL_2012-06-21_34200000_57600000_message_10_first998.csv")
    with pytest.raises(DecodeError, match=r"\(it is CSV text: '34200.004241176,1,16113575"):
        fb.replay(lob, "itch50")
    with pytest.raises(DecodeError, match=r"does not look like .* \(it is JSON text"):
        fb.replay(b'{"bids": [["1.0", "2"]], "asks": []}' * 4, "itch50")
    with pytest.raises(DecodeError, match=r"does not look like NASDAQ TotalView-ITCH 5[.]0 "
                                          "MoldUDP64"):
        fb.replay(MEATPY, "itch50", framing="moldudp64")
    # the RITCH file's zero prefixes: the codec's own message, and the hint
    with pytest.raises(DecodeError, match=r"RITCH.*does not look like"):
        fb.replay(RITCH, "itch50")


def test_a_stream_of_unknown_types_is_a_warning():
    junk = binfile(*(b"~" + bytes(10) for _ in range(50)), system(b"O"))
    result = fb.replay(junk, "itch50")
    assert result.unknown_types == 50
    assert result.warnings == ["<buffer>: 50 of 51 messages are of unknown types: this does "
                               "not look like NASDAQ TotalView-ITCH 5.0 BinaryFILE"]


def test_crossed_books_are_counted_and_reported():
    data = binfile(system(b"O"), directory_msg(1, "AAA"), directory_msg(2, "BBB"),
                   add(1, "B", 100, "AAA", 10_100, locate=1),
                   add(2, "S", 100, "AAA", 10_000, locate=1),      # bid above ask
                   add(3, "B", 100, "BBB", 10_000, locate=2),
                   add(4, "S", 100, "BBB", 10_100, locate=2))
    result = fb.replay(data, "itch50")
    assert result.crossed == ["AAA"]
    assert ("1 book(s) crossed at the end (best bid at or above best ask: messages missed?): "
            "AAA") in result.warnings
    assert "warning: 1 book(s) crossed" in result.summary()
    assert fb.replay(itch_day(5000, n_symbols=2, seed=3), "itch50").crossed == []


# -- outputs checked before the work ---------------------------------------------------------

def test_output_paths_are_checked_before_the_replay(day, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the directory .*nodir.* does not exist"):
        fb.replay(day, "itch50", every="bbo", output=tmp_path / "nodir" / "s.parquet")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fb.replay(day, "itch50", every="bbo", output=tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a directory"):
        fb.replay(day, "itch50", lobster=afile)
    with pytest.raises(NotADirectoryError):
        fb.replay(day, "itch50", lobster=afile / "sub")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="needs POSIX permissions that apply (not root)")
def test_unwritable_output_fails_before_the_work(day, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            fb.replay(day, "itch50", every="bbo", output=locked / "s.csv")
        with pytest.raises(PermissionError, match="not writable"):
            fb.replay(day, "itch50", lobster=locked)
    finally:
        locked.chmod(stat.S_IRWXU)


def test_the_check_comes_before_any_byte_is_read(tmp_path):
    class Exploding(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            raise AssertionError("the source was read before the output was checked")

    with pytest.raises(FileNotFoundError):
        fb.replay(Exploding(), "itch50", every="bbo", output=tmp_path / "no" / "x.parquet")


# -- LOBSTER output in skip and raise mode ---------------------------------------------------

def _reference_lobster(data: bytes, depth: int) -> dict[str, tuple[str, str]]:
    """LOBSTER text per symbol of the events a skip-mode BookSet applies."""
    books = _pyl3.BookSet(on_error="skip")
    dec = itch50.Decoder(books)
    texts: dict[int, tuple[io.StringIO, io.StringIO, object]] = {}
    for events in [*dec.feed(data), *dec.close()]:
        applied: list[int] = []
        books.apply(events, callback=lambda i, inst, applied=applied: applied.append(i))
        kept = events[np.asarray(applied, dtype=np.int64)]
        for inst in np.unique(kept["instrument"]).tolist():
            if inst not in texts:
                texts[inst] = (io.StringIO(), io.StringIO(), fb.OrderBook(
                    price_decimals=books.instrument(inst)["price_decimals"]))
            m, o, book = texts[inst]
            lobster.write(kept[kept["instrument"] == inst], m, o, levels=depth,
                          price_decimals=books.instrument(inst)["price_decimals"], book=book)
    return {books.instrument(i)["symbol"]: (m.getvalue(), o.getvalue())
            for i, (m, o, _) in texts.items()}


def test_lobster_honours_skip_errors(tmp_path):
    data = gzip.decompress(RITCH_FIXED.read_bytes())
    out = tmp_path / "lob"
    result = fb.replay(data, "itch50", on_error="skip", lobster=out, depth=5,
                       chunk_size=1 << 14)
    assert result.skipped == 117
    assert any("LOBSTER: 117 event(s)" in w for w in result.warnings)
    expected = _reference_lobster(data, 5)
    assert sorted(expected) == ["ALC", "BOB", "CHAR"]
    for symbol, (messages, orderbook) in expected.items():
        assert (out / f"{symbol}_message_5.csv").read_text() == messages
        assert (out / f"{symbol}_orderbook_5.csv").read_text() == orderbook
        assert messages.count("\n") > 1000


def test_a_raising_lobster_replay_leaves_no_files(tmp_path):
    out = tmp_path / "made" / "lob"
    with pytest.raises(UpdateError):
        fb.replay(RITCH_FIXED, "itch50", lobster=out)
    assert not (tmp_path / "made").exists()
    # a directory that was there stays, without the replay's files, but with its own
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("x")
    with pytest.raises(UpdateError):
        fb.replay(RITCH_FIXED, "itch50", lobster=kept)
    assert [p.name for p in kept.iterdir()] == ["mine.txt"]


# -- stdin and peeked streams ----------------------------------------------------------------

def test_peekable_gives_back_what_it_peeked():
    raw = io.BytesIO(b"0123456789")
    p = Peekable(raw, "<test>")
    assert p.peek(4) == b"0123" and p.peek(20) == b"0123456789"
    buf = bytearray(3)
    assert p.readinto(buf) == 3 and bytes(buf) == b"012"
    assert p.read(2) == b"34" and p.read() == b"56789" and p.read(1) == b""
    assert peekable(p) is p and peekable(b"x") == b"x" and peekable("file.itch") == "file.itch"


def test_sniffing_a_peekable_stream_does_not_consume_it(tmp_path):
    fbcap = tmp_path / "k.fbcap"
    capture.convert(CF / "KRAKEN.ws.50.0.gz", fbcap, compression="none")
    for data, fmt in ((fbcap.read_bytes(), "fastbook"),
                      (gzip.decompress((CF / "KRAKEN.ws.50.0.gz").read_bytes()), "cryptofeed"),
                      ((CF / "KRAKEN.ws.50.0.gz").read_bytes(), "cryptofeed"),   # gzipped
                      (MEATPY.read_bytes(), None)):
        stream = Peekable(io.BytesIO(data))
        assert capture.sniff(stream) == fmt
        assert capture.sniff(stream) == fmt
        assert stream.read() == data
    # a plain stream is still not sniffed (it cannot be rewound)
    assert capture.sniff(io.BytesIO(fbcap.read_bytes())) is None


def test_an_l2_replay_of_a_stream_equals_the_file():
    raw = gzip.decompress((CF / "KRAKEN.ws.50.0.gz").read_bytes())
    from_file = fb.replay(CF / "KRAKEN.ws.50.0.gz", "kraken-v1", every="bbo")
    from_stream = fb.replay(io.BytesIO(raw), "kraken-v1", every="bbo")
    assert from_stream.counts == from_file.counts
    for k in from_file.samples:
        assert np.array_equal(from_stream.samples[k], from_file.samples[k])


# -- names and rules -------------------------------------------------------------------------

def test_codec_names_take_either_separator(day):
    assert codec_name("ose-itch") == codec_name("OSE_ITCH") == "ose_itch"
    assert codec_name("jpx-csv") == "jpx_csv" and codec_name("kraken_v1") == "kraken-v1"
    assert codec_name("nope") == "nope"
    a = fb.replay(day, "itch50")
    assert a.codec == "itch50"
    from fastbook.synth import ose_day

    ose = ose_day(5000, seed=2)
    assert fb.replay(ose, "ose-itch").counts == fb.replay(ose, "ose_itch").counts


def test_fractional_sampling_rules(day):
    assert parse_every("1.5s") == {"interval": 1_500_000_000}
    assert parse_every("0.25ms,bbo") == {"interval": 250_000, "on_bbo": True}
    assert parse_every(".5us") == {"interval": 500}
    for bad in ("1.5ns", "0s", "0.5msgs", "1.s.5"):
        with pytest.raises(ValueError):
            parse_every(bad)
    half = fb.replay(day, "itch50", every="1.5s").samples
    same = fb.replay(day, "itch50", every="1500ms").samples
    assert len(half["ts"]) > 0 and half.keys() == same.keys()
    assert all(np.array_equal(half[k], same[k]) for k in same)
    assert not np.array_equal(fb.replay(day, "itch50", every="1s").samples["ts"], half["ts"])
