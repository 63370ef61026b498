"""Sample outputs for pandas and Arrow users: float prices and quantities scaled by each
instrument's decimals, datetimes, NaN for missing levels, reason names, CSV without pyarrow,
and the metadata of a streamed Parquet file (issue 26, items 2 and 3)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys

import numpy as np
import pytest

import fastbook as fb
from fastbook._extras import MissingExtraError
from fastbook.sampling import REASON_LABELS, Sampler, reason_labels, reason_names
from fastbook.synth import itch_day
from fastbook.writers import OutputOptions, SampleWriter, date_from_name
from tests.helpers import DATA

RITCH = DATA / "itch" / "ex20101224.TEST_ITCH_50.lenfixed.gz"   # an ITCH day of 2010-12-24
CF = DATA / "l2" / "cryptofeed"
BINANCE = [CF / "BINANCE.ws.1.0.gz", CF / "BINANCE.http.0.0.gz"]


@pytest.fixture(scope="module")
def ritch():
    return fb.replay(RITCH, "itch50", every="1s,bbo", depth=3, on_error="skip")


@pytest.fixture(scope="module")
def binance():
    return fb.replay(BINANCE, "binance-spot", every="bbo", depth=5)


def scales(result, key):
    """10**decimals of each sample row's instrument."""
    per_id = np.array([10 ** i[key] for i in result.instruments])
    return per_id[result.samples["instrument"]]


# ---------------------------------------------------------------------------
# the defaults stay exact integers
# ---------------------------------------------------------------------------

def test_defaults_are_the_exact_integers(ritch):
    pytest.importorskip("pandas")
    frame = ritch.to_pandas()
    assert str(frame["ts"].dtype) == "int64" and str(frame["bid_px_1"].dtype) == "int64"
    assert frame["reason"].tolist() == ritch.samples["reason"].tolist()
    assert frame["ask_qty_3"].tolist() == ritch.samples["ask_qty"][:, 2].tolist()
    assert ritch.options == OutputOptions(date=dt.date(2010, 12, 24))


# ---------------------------------------------------------------------------
# floats: the integer over 10**decimals of its own instrument
# ---------------------------------------------------------------------------

def test_float_prices_and_quantities_are_scaled_exactly(binance):
    pd = pytest.importorskip("pandas")
    frame = binance.to_pandas(prices="float", quantities="float")
    px, qty = scales(binance, "price_decimals"), scales(binance, "qty_decimals")
    assert {i["qty_decimals"] for i in binance.instruments} == {8}
    for k in range(5):
        for side in ("bid", "ask"):
            raw_px = binance.samples[f"{side}_px"][:, k]
            raw_qty = binance.samples[f"{side}_qty"][:, k]
            got_px = frame[f"{side}_px_{k + 1}"].to_numpy()
            got_qty = frame[f"{side}_qty_{k + 1}"].to_numpy()
            assert got_px.dtype == np.float64 and np.array_equal(got_px, raw_px / px)
            assert np.array_equal(got_qty, raw_qty / qty)
    # each float is the one nearest the exact decimal: its repr is that decimal
    meta = {i["id"]: i for i in binance.instruments}
    for row in range(0, len(frame), 37):
        d = meta[int(binance.samples["instrument"][row])]["price_decimals"]
        exact = fb.format_decimal(int(binance.samples["bid_px"][row, 0]), d, strip=True)
        value = float(frame["bid_px_1"].iloc[row])
        assert float(exact) == value and repr(value) in (exact, exact + ".0")
    assert isinstance(frame, pd.DataFrame)


def test_each_instrument_gets_its_own_scale():
    pytest.importorskip("pandas")
    from fastbook.events import events_from_records
    from fastbook.l3 import BookSet

    books = BookSet()
    books.add_instrument("A", price_decimals=4)
    books.add_instrument("B", price_decimals=2, qty_decimals=3)
    sampler = Sampler(depth=1, on_bbo=True)
    books.apply(events_from_records([
        {"instrument": 0, "action": "add", "side": 1, "price": 1_234_567, "qty": 5,
         "order_id": 1},
        {"instrument": 1, "action": "add", "side": 1, "price": 1_234_567, "qty": 2500,
         "order_id": 2},
    ]), sampler=sampler)
    frame = sampler.to_pandas(prices="float", quantities="float")
    assert frame["bid_px_1"].tolist() == [123.4567, 12345.67]
    assert frame["bid_qty_1"].tolist() == [5.0, 2.5]
    table = sampler.to_arrow(prices="float", missing="nan")
    assert table.column("bid_px").to_pylist() == [[123.4567], [12345.67]]
    assert table.column("ask_px").to_pylist() == [[None], [None]]
    # the default Arrow layout is unchanged
    assert sampler.to_arrow().column("bid_px").to_pylist() == [[1_234_567], [1_234_567]]


# ---------------------------------------------------------------------------
# datetimes
# ---------------------------------------------------------------------------

def test_itch_datetimes_use_the_date_in_the_file_name(ritch):
    pd = pytest.importorskip("pandas")
    assert ritch.date == dt.date(2010, 12, 24)
    frame = ritch.to_pandas(timestamps="datetime")
    assert str(frame["ts"].dtype) == "datetime64[ns]"          # local exchange time, naive
    midnight = np.datetime64("2010-12-24T00:00:00", "ns")
    expected = midnight + ritch.samples["ts"].astype("timedelta64[ns]")
    assert np.array_equal(frame["ts"].to_numpy(), expected)
    assert frame["ts"].iloc[0] == pd.Timestamp("2010-12-24") + pd.Timedelta(
        int(ritch.samples["ts"][0]), "ns")
    # date= overrides the name
    other = ritch.to_pandas(timestamps="datetime", date="2019-12-30")
    assert other["ts"].iloc[0].date() == dt.date(2019, 12, 30)


def test_epoch_feeds_give_utc_datetimes(binance):
    pd = pytest.importorskip("pandas")
    frame = binance.to_pandas(timestamps="datetime")
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert frame["ts"].tolist() == pd.to_datetime(binance.samples["ts"], unit="ns",
                                                  utc=True).tolist()
    pa = pytest.importorskip("pyarrow")
    assert binance.to_arrow(timestamps="datetime").schema.field("ts").type == \
        pa.timestamp("ns", tz="UTC")


def test_datetimes_without_a_date_fail_before_the_work():
    day = itch_day(2_000, n_symbols=2)
    with pytest.raises(ValueError, match=r"since midnight.*date='YYYY-MM-DD'"):
        fb.replay(day, "itch50", every="bbo", timestamps="datetime")
    result = fb.replay(day, "itch50", every="bbo")
    assert result.date is None
    with pytest.raises(ValueError, match="date="):
        result.to_arrow(timestamps="datetime")
    assert fb.replay(day, "itch50", every="bbo", timestamps="datetime",
                     date=dt.date(2020, 1, 2)).date == dt.date(2020, 1, 2)


def test_a_date_for_an_epoch_feed_is_refused():
    with pytest.raises(ValueError, match="date= is for feeds timed from midnight"):
        fb.replay(BINANCE, "binance-spot", every="bbo", date="2020-01-02")


@pytest.mark.parametrize(("name", "day"), [
    ("12302019.NASDAQ_ITCH50.gz", dt.date(2019, 12, 30)),
    ("/data/20191230.BX_ITCH_50.gz", dt.date(2019, 12, 30)),
    ("ex20101224.TEST_ITCH_50.gz", dt.date(2010, 12, 24)),
    ("01302019.PSX_ITCH50", dt.date(2019, 1, 30)),
    ("day.itch", None),
    ("12345678.itch", None),           # neither reading is a date
    ("20190102_20190103.itch", None),  # two dates: which one?
])
def test_date_from_name(name, day):
    assert date_from_name(name) == day


@pytest.mark.parametrize(("options", "match"), [
    ({"prices": "double"}, "prices must be one of 'int', 'float', got 'double'"),
    ({"timestamps": "iso"}, "timestamps must be one of"),
    ({"reason": "text"}, "reason must be one of"),
    ({"date": "30/12/2019"}, "date= must be a datetime.date or a 'YYYY-MM-DD'"),
    ({"date": dt.datetime(2019, 12, 30)}, "not a datetime"),
])
def test_bad_options_name_themselves(options, match):
    with pytest.raises(ValueError, match=match):
        fb.replay(b"", "itch50", **options)


# ---------------------------------------------------------------------------
# missing levels and reasons
# ---------------------------------------------------------------------------

def test_missing_levels_are_nan_or_null(ritch):
    pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    empty = ritch.samples["ask_qty"][:, 2] == 0
    assert 0 < empty.sum() < len(empty)
    frame = ritch.to_pandas(missing="nan", prices="float")
    assert np.array_equal(frame["ask_px_3"].isna().to_numpy(), empty)
    assert np.array_equal(frame["ask_qty_3"].isna().to_numpy(), empty)
    assert frame["ask_qty_3"][~empty].tolist() == ritch.samples["ask_qty"][~empty, 2].tolist()
    table = ritch.to_arrow(missing="nan")
    assert table.column("ask_px_3").null_count == int(empty.sum())
    assert table.schema.field("ask_px_3").type == pa.int64()


def test_reason_names():
    assert reason_names(Sampler.EVERY | Sampler.BBO) == ("every", "bbo")
    assert reason_names(Sampler.INTERVAL) == ("interval",)
    assert REASON_LABELS[7] == "every|interval|bbo"
    with pytest.raises(ValueError, match=r"bits 1 \(every\), 2 \(interval\) and 4 \(bbo\); got 9"):
        reason_names(9)
    with pytest.raises(ValueError, match="got 8"):
        reason_labels(np.array([1, 8], np.uint8))


def test_reason_column_as_names(ritch):
    pytest.importorskip("pandas")
    frame = ritch.to_pandas(reason="names")
    bits = ritch.samples["reason"]
    assert frame["reason"].tolist() == ["|".join(reason_names(b)) for b in bits.tolist()]
    assert {"interval", "bbo"} <= set(frame["reason"])
    assert frame["reason"].str.contains("bbo").sum() == int((bits & Sampler.BBO != 0).sum())


# ---------------------------------------------------------------------------
# files: Parquet keeps the scales for pandas, CSV carries them and needs no pyarrow
# ---------------------------------------------------------------------------

def test_scales_survive_read_parquet(binance, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = tmp_path / "b.parquet"
    binance.to_parquet(out, prices="float", timestamps="datetime")
    frame = pd.read_parquet(out)
    instruments = json.loads(frame.attrs["fastbook.instruments"])
    assert {(i["symbol"], i["price_decimals"], i["qty_decimals"]) for i in instruments} == \
        {(i["symbol"], i["price_decimals"], i["qty_decimals"]) for i in binance.instruments}
    assert frame.attrs["fastbook.prices"] == "float"
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert frame["bid_px_1"].tolist() == binance.to_pandas(prices="float")["bid_px_1"].tolist()
    assert binance.to_pandas().attrs == {**frame.attrs, "fastbook.prices": "int",
                                         "fastbook.timestamps": "int"}


def test_streamed_output_takes_the_options(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = tmp_path / "r.parquet"
    streamed = fb.replay(RITCH, every="1s", on_error="skip", output=out, row_group_size=50,
                         prices="float", timestamps="datetime", missing="nan", reason="names")
    kept = fb.replay(RITCH, every="1s", on_error="skip", prices="float",
                     timestamps="datetime", missing="nan", reason="names")
    expected = kept.to_pandas()
    frame = pd.read_parquet(out)
    assert len(frame) == streamed.rows == len(expected)
    for name in ("ts", "reason", "bid_px_1", "ask_px_2", "bid_qty_3"):
        assert frame[name].astype(str).tolist() == expected[name].astype(str).tolist(), name
    assert frame.attrs["fastbook.date"] == "2010-12-24"


def test_csv_needs_no_pyarrow_and_carries_its_scales(binance, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    out = tmp_path / "b.csv"
    streamed = fb.replay(BINANCE, "binance-spot", every="bbo", depth=5, output=out,
                         prices="float", missing="nan")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == streamed.rows == len(binance.samples["ts"])
    meta = {i["symbol"]: i for i in binance.instruments}
    for r, row in enumerate(rows):
        inst = meta[row["symbol"]]
        assert int(row["price_decimals"]) == inst["price_decimals"]
        assert int(row["qty_decimals"]) == inst["qty_decimals"]
        raw = int(binance.samples["bid_px"][r, 0])
        assert float(row["bid_px_1"]) == raw / 10 ** inst["price_decimals"]
        assert int(row["bid_qty_1"]) == int(binance.samples["bid_qty"][r, 0])
        for k in range(5):
            if binance.samples["ask_qty"][r, k] == 0:
                assert row[f"ask_px_{k + 1}"] == "" and row[f"ask_qty_{k + 1}"] == ""
    # Arrow and Parquet output still need pyarrow, and say which extra brings it
    with pytest.raises(MissingExtraError, match=r"pip install 'fastbook-lob\[arrow\]'"):
        fb.replay(BINANCE, "binance-spot", every="bbo", output=tmp_path / "b.parquet")
    binance.to_csv(tmp_path / "again.csv", prices="float", missing="nan")
    assert (tmp_path / "again.csv").read_text() == out.read_text()
    with pytest.raises(ValueError, match=r"to_csv writes a \.csv file, not .*b\.parquet"):
        binance.to_csv(tmp_path / "b.parquet")


def test_csv_datetimes_and_names_read_back_with_pandas(ritch, tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "r.csv"
    ritch.to_csv(out, timestamps="datetime", reason="names", prices="float")
    frame = pd.read_csv(out, parse_dates=["ts"])
    expected = ritch.to_pandas(timestamps="datetime", reason="names", prices="float")
    assert frame["ts"].tolist() == expected["ts"].tolist()
    assert frame["reason"].tolist() == expected["reason"].tolist()
    assert frame["bid_px_1"].tolist() == expected["bid_px_1"].tolist()
    assert set(frame["price_decimals"]) == {4}


def test_to_pandas_without_pandas_names_the_extra(ritch, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'fastbook-lob\[pandas\]'") \
            as info:
        ritch.to_pandas()
    assert info.value.extra == "pandas"


# ---------------------------------------------------------------------------
# a streamed Parquet file's metadata describes the whole file
# ---------------------------------------------------------------------------

def _columns(rows, instrument):
    cols = {"ts": np.arange(rows, dtype=np.int64), "instrument": np.full(rows, instrument,
                                                                          np.uint32),
            "sequence": np.arange(rows, dtype=np.uint64),
            "reason": np.full(rows, Sampler.BBO, np.uint8)}
    for name in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
        cols[name] = np.full((rows, 2), 7, np.int64)
    return cols


def test_streamed_parquet_metadata_counts_every_row_and_instrument(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    a = {"id": 0, "symbol": "AAA", "venue": "x", "price_decimals": 4, "qty_decimals": 0,
         "tick_size": 1, "lot_size": 1}
    b = dict(a, id=1, symbol="BBB", price_decimals=2, qty_decimals=8)
    out = tmp_path / "late.parquet"
    writer = SampleWriter(out, 3, "toy", "epoch")
    writer.write(_columns(5, 0), [a])              # row groups of 3: BBB comes in the third
    writer.write(_columns(4, 1), [a, b])
    writer.close([a, b])
    assert pq.ParquetFile(out).metadata.num_row_groups == 4
    for meta in (pq.read_table(out).schema.metadata, pq.read_schema(out).metadata,
                 pq.ParquetFile(out).schema_arrow.metadata,
                 pq.ParquetFile(out).metadata.metadata):
        assert meta[b"fastbook.rows"] == b"9"
        assert [i["symbol"] for i in json.loads(meta[b"fastbook.instruments"])] == ["AAA", "BBB"]
        # the instruments no longer share one scale, so no file-wide scale is claimed
        assert b"fastbook.price_decimals" not in meta and b"fastbook.qty_decimals" not in meta
    assert pq.read_table(out).column("symbol").to_pylist() == ["AAA"] * 5 + ["BBB"] * 4
    pd = pytest.importorskip("pandas")
    assert pd.read_parquet(out).attrs["fastbook.rows"] == "9"


def test_streamed_replay_metadata_counts_every_row_group(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "day.parquet"
    # a row group holds at least 1024 rows; this day samples about 9,000
    result = fb.replay(itch_day(30_000, n_symbols=3, seed=5), every="bbo", output=out,
                       row_group_size=100)
    assert pq.ParquetFile(out).metadata.num_row_groups > 1
    meta = pq.read_schema(out).metadata
    assert int(meta[b"fastbook.rows"]) == result.rows == pq.ParquetFile(out).metadata.num_rows
    assert [i["symbol"] for i in json.loads(meta[b"fastbook.instruments"])] == \
        [i["symbol"] for i in result.instruments]
