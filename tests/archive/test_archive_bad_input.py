"""Bad input: truncated and corrupt archives raise DecodeError naming the file (and the
block), an unknown symbol a KeyError naming close ones, a time before the first event
gives the empty book, and a failed replay leaves no archive behind."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastbook as fb
import fastbook.archive as fa
from fastbook.errors import DecodeError


@pytest.fixture
def archived(itch_day, tmp_path):
    path = tmp_path / "day.fba"
    fb.replay(itch_day.source, "itch50", archive=path, checkpoint=500)
    return path


def test_truncated_archives_name_the_file(archived, tmp_path):
    data = archived.read_bytes()
    for size in (0, 10, 40, len(data) // 2, len(data) - 1):
        cut = tmp_path / f"cut{size}.fba"
        cut.write_bytes(data[:size])
        with pytest.raises(DecodeError, match=str(cut)):
            fa.open(cut)


def test_not_an_archive(tmp_path, itch_day):
    with pytest.raises(DecodeError, match="not a fastbook archive"):
        fa.open(itch_day.source)


def test_a_corrupt_block_is_named_by_number_and_symbol(archived, itch_day, tmp_path):
    archive = fa.open(archived)
    symbol = itch_day.symbols[0]
    meta = archive.instrument(symbol)
    blocks = archive._blocks[meta["id"]]
    row = blocks[1]
    archive.close()
    data = bytearray(archived.read_bytes())
    data[int(row["offset"]) + int(row["length"]) // 2] ^= 0xFF
    bad = tmp_path / "bad.fba"
    bad.write_bytes(bytes(data))
    archive = fa.open(bad)
    t = int(blocks[1]["ts_first"])
    with pytest.raises(DecodeError, match=rf"{bad}: block 1 of '{symbol}' .*CRC32"):
        archive.book_at(symbol, t)
    # the other blocks still read
    assert archive.book_at(symbol, int(blocks[0]["ts_first"])) is not None
    assert archive.book_at(itch_day.symbols[1], 2**62).order_count >= 0


def test_a_damaged_index_is_refused(archived, tmp_path):
    data = bytearray(archived.read_bytes())
    data[-40] ^= 0x01       # inside the index: its CRC no longer matches
    bad = tmp_path / "bad.fba"
    bad.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match="index fails its CRC32"):
        fa.open(bad)


def test_a_newer_format_is_refused(archived, tmp_path):
    data = bytearray(archived.read_bytes())
    data[8] = 99
    newer = tmp_path / "newer.fba"
    newer.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match="version 99 is newer"):
        fa.open(newer)


def test_unknown_symbols_name_close_ones(archived, itch_day):
    archive = fa.open(archived)
    symbol = itch_day.symbols[0]
    with pytest.raises(KeyError, match=rf"no symbol '{symbol}X'.*close: .*{symbol}"):
        archive.book_at(symbol + "X", 0)
    with pytest.raises(KeyError, match="no symbol 'ZZZZZZZZ'"):
        archive.samples("ZZZZZZZZ", 0, 1, every="1s")
    with pytest.raises(TypeError, match="int of nanoseconds"):
        archive.book_at(symbol, 1.5)


def test_before_the_first_event_the_book_is_empty(archived, itch_day):
    archive = fa.open(archived)
    for symbol in itch_day.symbols:
        first = int(archive._blocks[archive.instrument(symbol)["id"]]["ts_first"][0])
        book = archive.book_at(symbol, first - 1)
        assert book.order_count == 0 and book.bbo() == (None, None, None, None)
        assert book.price_decimals == archive.instrument(symbol)["price_decimals"]
        assert len(archive.events(symbol, 0, first)) == 0


def test_a_failed_replay_leaves_no_archive(tmp_path, itch_day):
    # a stream that fails part way: the day with a message cut off at the end
    data = itch_day.source.read_bytes()
    bad = tmp_path / "bad.itch"
    bad.write_bytes(data[: len(data) - 7])
    out = tmp_path / "out.fba"
    with pytest.raises(DecodeError):
        fb.replay(bad, "itch50", archive=out)
    assert not out.exists() and not (tmp_path / "out.fba.partial").exists()
    assert os.listdir(tmp_path) == ["bad.itch"]


def test_an_archive_that_cannot_be_written_is_refused_before_the_work(tmp_path, itch_day):
    with pytest.raises(FileNotFoundError, match=r"archive .*does not exist"):
        fb.replay(itch_day.source, "itch50", archive=tmp_path / "nowhere" / "x.fba")
    with pytest.raises(ValueError, match="checkpoint must be"):
        fb.replay(itch_day.source, "itch50", archive=tmp_path / "x.fba", checkpoint="bbo")
    with pytest.raises(ValueError, match="does not take consolidate="):
        fb.replay([itch_day.source], consolidate=True, archive=tmp_path / "x.fba")
    assert os.listdir(tmp_path) == []


def test_the_cli_writes_and_reads(tmp_path, itch_day):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = tmp_path / "cli.fba"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "fastbook", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=120)

    made = cli("archive", itch_day.source, out, "--checkpoint", "300", "--compression", "zlib")
    assert made.returncode == 0, made.stderr
    assert "events of 12 instruments" in made.stdout
    archive = fa.open(out)
    assert archive.codec == "zlib" and archive.checkpoint == {
        "mode": "events", "step": 300, "min_events": 300, "max_events": 300}
    symbol = itch_day.symbols[2]
    ts = itch_day.events["ts_exchange"][itch_day.events["instrument"]
                                         == itch_day.instrument(symbol)]
    t = int(np.median(ts))
    shown = cli("book-at", out, symbol, t, "--depth", 2, "--orders")
    assert shown.returncode == 0, shown.stderr
    want = itch_day.truth(symbol, t)
    assert f"{want.order_count:,} orders" in shown.stdout
    bid = want.best_bid()
    assert f"{want.format_qty(bid[1])} @ {want.format_price(bid[0])}" in shown.stdout
    clock = cli("book-at", out, symbol, "12:00:00.5")
    assert clock.returncode == 0 and "43200500000000 ns" in clock.stdout
    missing = cli("book-at", out, symbol + "Q", t)
    assert missing.returncode == 2 and "no symbol" in missing.stderr
    corrupt = tmp_path / "corrupt.fba"
    corrupt.write_bytes(out.read_bytes()[:-5])
    broken = cli("book-at", corrupt, symbol, t)
    assert broken.returncode == 2 and "trailer" in broken.stderr


def test_damage_anywhere_is_an_error_or_the_exact_book(archived, itch_day, tmp_path):
    # flip bytes at random places: opening and reading either fail with DecodeError
    # (naming the file) or give exactly the books of the undamaged archive
    import random

    data = archived.read_bytes()
    good = fa.open(archived)
    rng = random.Random(22)
    symbols = itch_day.symbols
    probes = [(s, t) for s in symbols[:4] for t in (0, 10**12 * 3, 10**13 * 5, 2**62)]
    want = {p: good.book_at(*p).orders().tobytes() for p in probes}
    failures = 0
    for k in range(60):
        bad = bytearray(data)
        for _ in range(rng.choice([1, 1, 3])):
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"bad{k}.fba"
        path.write_bytes(bytes(bad))
        try:
            archive = fa.open(path)
            for probe in probes:
                assert archive.book_at(*probe).orders().tobytes() == want[probe]
        except DecodeError as exc:
            assert str(path) in str(exc)
            failures += 1
        os.unlink(path)
    assert failures > 0


def test_a_book_error_names_the_same_message_and_leaves_no_archive(tmp_path, itch_day):
    # an execution of an order that was never added, in the middle of the day: the
    # replay with an archive fails as the one without (same message), and leaves nothing
    from fastbook.errors import UpdateError

    data = bytearray(itch_day.source.read_bytes())
    pos, seen = 0, 0
    while pos < len(data):      # BinaryFILE: a 2-byte length, then the message
        size = int.from_bytes(data[pos:pos + 2], "big")
        if data[pos + 2:pos + 3] == b"E":
            seen += 1
            if seen == 200:
                data[pos + 2 + 11:pos + 2 + 19] = (2**63 + 5).to_bytes(8, "big")
                break
        pos += 2 + size
    assert seen == 200
    bad = tmp_path / "bad.itch"
    bad.write_bytes(bytes(data))
    with pytest.raises(UpdateError) as plain:
        fb.replay(bad, "itch50")
    out = tmp_path / "out.fba"
    with pytest.raises(UpdateError) as archived:
        fb.replay(bad, "itch50", archive=out, checkpoint=50)
    assert str(archived.value) == str(plain.value) and "message" in str(plain.value)
    assert sorted(os.listdir(tmp_path)) == ["bad.itch"]


def test_a_book_without_events_is_archived_empty(tmp_path):
    # an instrument announced (a stock directory message) that never gets an order
    from fastbook import synth

    day = bytearray(synth.itch_day(2000, n_symbols=3, seed=4))
    # a stock directory message of a fourth symbol, first in the file
    body = bytearray(39)
    body[0:1] = b"R"
    body[1:3] = (77).to_bytes(2, "big")
    body[11:19] = b"QUIET   "
    body[19:20] = b"Q"
    path = tmp_path / "day.itch"
    path.write_bytes(len(body).to_bytes(2, "big") + bytes(body) + bytes(day))
    result = fb.replay(path, "itch50", archive=tmp_path / "x.fba")
    assert "QUIET" in [result.books.instrument(i)["symbol"] for i in range(len(result.books))]
    archive = fa.open(tmp_path / "x.fba")
    assert "QUIET" in archive.symbols
    book = archive.book_at("QUIET", 2**62)
    assert book.order_count == 0 and book.price_decimals == 4
    assert len(archive.events("QUIET")) == 0
