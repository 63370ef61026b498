"""OSE through fastbook.replay (sampling, Parquet, symbols, CLI) and the queue-position check."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest

import fastbook as fb
from fastbook import synth
from fastbook.cli import main
from fastbook.codecs import _pyose, ose_itch
from fastbook.driver import scan
from fastbook.errors import DecodeError

NS = 1_000_000_000


@pytest.fixture(scope="module")
def day() -> bytes:
    return synth.ose_day(20_000, seed=21)


def test_replay_with_bbo_and_interval_sampling(day):
    result = fb.replay(day, "ose_itch", every="bbo", depth=5)
    assert result.codec == "ose_itch" and result.ts_origin == "epoch"
    s = result.samples
    assert len(s["ts"]) > 1000
    for i in range(len(result.books)):
        rows = np.flatnonzero(s["instrument"] == i)
        book = result.books[i]
        bb, ba = book.best_bid(), book.best_ask()
        last = rows[-1]
        assert (int(s["bid_px"][last, 0]), int(s["bid_qty"][last, 0])) == (bb or (0, 0))
        assert (int(s["ask_px"][last, 0]), int(s["ask_qty"][last, 0])) == (ba or (0, 0))
    timed = fb.replay(day, "ose_itch", every="1s", depth=3)
    assert len(timed.samples["ts"]) > 100 and np.all(timed.samples["ts"] % NS == 0)


def test_replay_to_parquet_keeps_each_books_decimals(tmp_path, day):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "ose.parquet"
    result = fb.replay(day, "ose_itch", every="bbo", depth=2, output=out)
    table = pq.read_table(out)
    assert table.num_rows == result.rows > 0
    meta = json.loads(table.schema.metadata[b"fastbook.instruments"])
    assert {m["symbol"]: m["price_decimals"] for m in meta}["TOPIX_F_2406"] == 1
    assert {m["price_decimals"] for m in meta} == {0, 1, 4}
    assert table.schema.metadata[b"fastbook.ts_origin"] == b"epoch"


def test_replay_framings_symbols_and_files(tmp_path, day):
    mold = synth.ose_day(20_000, seed=21, form="moldudp64")
    a = fb.replay(day, "ose_itch")
    b = fb.replay(mold, "ose_itch", framing="moldudp64", chunk_size=777)
    assert a.counts == b.counts and a.events == b.events
    assert [a.books[i].top(5).tolist() for i in range(len(a.books))] == \
        [b.books[i].top(5).tolist() for i in range(len(b.books))]
    path = tmp_path / "day.itch.gz"
    path.write_bytes(gzip.compress(day))
    some = fb.replay(path, "ose_itch", symbols="NK225_F_2406,TOPIX_F_2406")
    assert [some.books.instrument(i)["symbol"] for i in range(len(some.books))] == \
        ["NK225_F_2406", "TOPIX_F_2406"]
    assert some.book("TOPIX_F_2406").top(5).tolist() == a.book("TOPIX_F_2406").top(5).tolist()
    info = scan(day, "ose_itch")
    assert info["messages"] == a.messages and len(info["directory"]) == 17
    assert info["first_ts"] >= 1717369200 * NS


def test_skip_invalid_through_codec_options(day):
    headless = day[7:]                  # drop the first T: messages before any seconds
    with pytest.raises(DecodeError, match="before any T"):
        fb.replay(headless, "ose_itch")
    result = fb.replay(headless, "ose_itch", on_invalid="skip")
    assert result.messages == fb.replay(day, "ose_itch").messages - 1


def test_cli_replay_and_info(tmp_path, day, capsys):
    path = tmp_path / "day.itch"
    path.write_bytes(day)
    assert main(["replay", str(path), "--codec", "ose_itch", "--no-progress", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "17 books" in out
    assert main(["info", str(path), "--codec", "ose_itch"]) == 0
    out = capsys.readouterr().out
    assert "NK225_F_2406" in out
    assert re.search(r"book events from 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} to .* UTC", out)
    csv = tmp_path / "day.csv"
    csv.write_bytes(synth.ose_day(20_000, seed=21, form="csv"))
    assert main(["replay", str(csv), "--codec", "jpx_csv", "--no-progress", "--top", "0"]) == 0


# -- the queue-position check ------------------------------------------------------------------

def _frames(data: bytes):  # type: ignore[no-untyped-def]
    """(offset of the type byte, message number) of every BinaryFILE frame."""
    pos = number = 0
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 2], "big")
        yield pos + 2, number
        pos += 2 + length
        number += 1


def test_the_check_catches_a_corrupted_stream(day):
    assert ose_itch.check_queues(day).mismatched == 0
    adds = [(off, n) for off, n in _frames(day) if day[off:off + 1] == b"A"]
    (off, number), (off2, number2) = adds[len(adds) // 2], adds[len(adds) // 3]
    msg = _pyose.parse_message(day[off:off + 37])
    msg2 = _pyose.parse_message(day[off2:off2 + 37])
    bad = bytearray(day)
    bad[off + 18:off + 22] = (msg.order_book_position + 1).to_bytes(4, "big")
    bad[off2 + 18:off2 + 22] = (10**6).to_bytes(4, "big")
    report = ose_itch.check_queues(bytes(bad))
    assert report.checked == ose_itch.check_queues(day).checked
    assert (report.mismatched, report.beyond_queue) == (2, 1)
    first, second = sorted(report.disagreements, key=lambda d: d.message)
    assert (second.message, second.order_id, second.order_book_id, second.position,
            second.rank, second.kind, second.action) == (
        number, msg.order_id, msg.order_book_id, msg.order_book_position + 1,
        msg.order_book_position, "mismatch", "ADD")
    assert (first.message, first.order_id, first.position, first.kind) == \
        (number2, msg2.order_id, 10**6, "beyond queue")
    assert first.symbol and first.side == (1 if msg2.side == "B" else 2)
    assert "2 disagreements (1 beyond the queue)" in str(report)
    assert len(ose_itch.check_queues(bytes(bad), limit=1).disagreements) == 1


def test_the_check_catches_a_dropped_message(day):
    # remove one resting add that no later message names: the orders queued behind it on
    # its side now rank one better in fastbook than the exchange says
    adds = [(off, n) for off, n in _frames(day) if day[off:off + 1] == b"A"]
    for off, _ in adds[len(adds) // 2:]:
        msg = _pyose.parse_message(day[off:off + 37])
        key = msg.order_id.to_bytes(8, "big") + msg.order_book_id.to_bytes(4, "big")
        if day.find(key, off + 37) < 0:
            break
    report = ose_itch.check_queues(day[:off - 2] + day[off + 37:])
    assert report.mismatched > 0 and report.beyond_queue == 0
    first = report.disagreements[0]
    assert first.order_book_id == msg.order_book_id
    assert first.side == (1 if msg.side == "B" else 2)
    assert first.rank == first.position - 1 and first.kind == "mismatch"


def test_lobster_files_from_an_ose_replay(tmp_path):
    """LOBSTER export of side-keyed books with per-book decimals and epoch times."""
    from fastbook.codecs import lobster
    from fastbook.synth import ose_day

    data = ose_day(20_000, seed=11)
    result = fb.replay(data, "ose_itch", depth=5, lobster=tmp_path / "lob")
    written = sorted(p.name for p in (tmp_path / "lob").iterdir())
    assert written and len(written) == 2 * len({n.rsplit("_message_", 1)[0]
                                                for n in written if "_message_" in n})
    checked = 0
    for i in range(len(result.books)):
        meta = result.books.instrument(i)
        base = tmp_path / "lob" / meta["symbol"]
        if not (tmp_path / "lob" / f"{meta['symbol']}_message_5.csv").exists():
            continue
        messages = lobster.read_messages(f"{base}_message_5.csv",
                                         price_decimals=meta["price_decimals"])
        rows = lobster.read_orderbook(f"{base}_orderbook_5.csv", levels=5)
        assert len(messages) == len(rows) > 0
        # times after the local (JST) midnight of the first event: never negative, < 2 days
        assert 0 <= messages["ts_exchange"].min() <= messages["ts_exchange"].max() < 2 * 86400e9
        final = lobster.orderbook_top(rows[-1:], levels=5,
                                      price_decimals=meta["price_decimals"])[0]
        assert final.tolist() == result.books[i].top(5).tolist()
        checked += 1
    assert checked >= 3
