"""fastbook.plot: real replays rendered to PNG, and the pictures checked.

Replays of the RITCH ITCH 5.0 sample and of a Kraken capture are written to Parquet and
drawn; the PNG is read back (size, not blank, several colours) and the Figure's axes are
checked against the data (y within the real prices, x within the samples' times). A
hand-made book checks that quantities land at the right price and time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import fastbook as fb  # noqa: E402
from fastbook import plot  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
ITCH = DATA / "itch" / "ex20101224.TEST_ITCH_50.lenfixed.gz"
KRAKEN = DATA / "l2" / "cryptofeed" / "KRAKEN.ws.50.0.gz"


@pytest.fixture(scope="module")
def itch() -> Any:
    # the RITCH sample is sampled from a real day, not book-consistent: skip what fails
    return fb.replay(ITCH, every="bbo", depth=5, on_error="skip")


@pytest.fixture(scope="module")
def kraken() -> Any:
    return fb.replay([KRAKEN], "kraken-v1", every="bbo", depth=10)


def _png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    img = imread(str(path))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def _check_picture(path: Path, size: tuple[int, int]) -> None:
    img = _png(path)
    assert img.shape[:2] == (size[1], size[0])
    rgb = img[:, :, :3]
    assert float(rgb.std()) > 0.05                       # not blank
    colours = np.unique((rgb.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 50                             # a colour map, lines, text


def _real_levels(result: Any, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """Every present level's real price, and the samples' times, of ``symbol``."""
    inst = next(i for i in result.instruments if i["symbol"] == symbol)
    s = result.samples
    rows = s["instrument"] == inst["id"]
    prices = []
    for side in ("bid", "ask"):
        px, qty = s[f"{side}_px"][rows], s[f"{side}_qty"][rows]
        prices.append(px[qty > 0] / 10 ** inst["price_decimals"])
    return np.concatenate(prices), s["ts"][rows]


@pytest.mark.parametrize("case", ["itch", "kraken"])
def test_heatmap_of_a_real_replay_file(case: str, tmp_path: Path, request: Any) -> None:
    result = request.getfixturevalue(case)
    symbol = "BOB" if case == "itch" else "XMR/USD"
    parquet = tmp_path / "samples.parquet"
    result.to_parquet(parquet)
    out = tmp_path / "heat.png"
    fig = plot.plot_file(parquet, out, instrument=symbol)
    _check_picture(out, (1200, 600))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "price" and ax.get_xlabel().startswith("time")
    assert symbol in ax.get_title()
    prices, ts = _real_levels(result, symbol)
    y0, y1 = ax.get_ylim()
    span = prices.max() - prices.min()
    # real prices (not fixed-point ints), within the data's range and padding
    assert prices.min() - 0.05 * span <= y0 < y1 <= prices.max() + 0.05 * span
    assert y1 - y0 >= 0.5 * span
    x0, x1 = ax.get_xlim()
    assert x0 == pytest.approx(ts.min() / 1e9) and x1 == pytest.approx(ts.max() / 1e9)
    image = ax.images[0].get_array()
    assert image.shape == (300, 800) and np.nanmax(image) > 0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["best bid", "best ask"]


def test_heatmap_puts_quantity_at_its_price_and_time() -> None:
    # a hand-made book: bid 100.00 x 5 then x 7 from the middle on, ask 101.50 x 2; a
    # deeper bid at 99.00 x 1; qty_decimals 1 (so 50 -> 5.0)
    n = 10
    ts = np.arange(n, dtype=np.int64) * 1_000_000_000
    bid_px = np.tile([10000, 9900], (n, 1)).astype(np.int64)
    bid_qty = np.tile([50, 10], (n, 1)).astype(np.int64)
    bid_qty[n // 2:, 0] = 70
    ask_px = np.tile([10150, 0], (n, 1)).astype(np.int64)
    ask_qty = np.tile([20, 0], (n, 1)).astype(np.int64)
    cols = {"ts": ts, "instrument": np.zeros(n, np.uint32), "bid_px": bid_px,
            "bid_qty": bid_qty, "ask_px": ask_px, "ask_qty": ask_qty}
    inst = [{"symbol": "T", "price_decimals": 2, "qty_decimals": 1}]
    fig = plot.depth_heatmap(cols, instruments=inst, width=10, height=25, log=False,
                             price_range=(98.75, 102.25), ts_origin="epoch")
    grid = np.asarray(fig.axes[0].images[0].get_array().filled(np.nan))
    y = lambda p: int((p - 98.75) / (102.25 - 98.75) * 25)  # noqa: E731
    assert grid[y(100.00), 0] == 5.0 and grid[y(100.00), -1] == 7.0
    assert grid[y(99.00), 3] == 1.0 and grid[y(101.50), 3] == 2.0
    # nothing anywhere else
    assert np.isnan(np.delete(grid, [y(100.0), y(99.0), y(101.5)], axis=0)).all()
    # the BBO lines are the best levels in real prices
    bid_line, ask_line = (p.get_data().values for p in fig.axes[0].patches[:2])
    assert set(bid_line.tolist()) == {100.0} and set(ask_line.tolist()) == {101.5}
    assert fig.axes[0].get_xlabel() == "time (UTC, 1970-01-01)"


def test_a_quiet_stretch_holds_the_book_before_it() -> None:
    # two samples, at 0 s and 9 s: every bin between them shows the first book
    cols = {"ts": np.array([0, 9_000_000_000], np.int64), "instrument": np.zeros(2, np.uint32),
            "bid_px": np.array([[100], [102]], np.int64), "bid_qty": np.array([[3], [4]]),
            "ask_px": np.array([[105], [105]], np.int64), "ask_qty": np.array([[1], [1]])}
    fig = plot.depth_heatmap(cols, instruments=[{"symbol": "Q", "price_decimals": 0,
                                                 "qty_decimals": 0}], width=10, height=12,
                             price_range=(99.5, 105.5), log=False)
    grid = np.asarray(fig.axes[0].images[0].get_array().filled(np.nan))
    assert (grid[1, :9] == 3).all() and grid[5, 9] == 4      # 100 -> row 1, 102 -> row 5
    bid_line = fig.axes[0].patches[0].get_data().values
    assert bid_line.tolist() == [100.0] * 9 + [102.0]


def test_file_in_batches_draws_what_memory_draws(itch: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # the Parquet path reads by row group and batch: small ones give the same picture
    parquet = tmp_path / "small-groups.parquet"
    itch.to_parquet(parquet, row_group_size=37)
    monkeypatch.setattr(plot, "_BATCH", 16)
    from_file = plot.depth_heatmap(str(parquet), "ALC")
    from_memory = plot.plot_result(itch, instrument="ALC")
    a = from_file.axes[0].images[0].get_array().filled(np.nan)
    b = from_memory.axes[0].images[0].get_array().filled(np.nan)
    np.testing.assert_allclose(a, b, equal_nan=True)
    assert from_file.axes[0].get_ylim() == pytest.approx(from_memory.axes[0].get_ylim())
    assert from_file.axes[0].get_xlim() == from_memory.axes[0].get_xlim()


def test_float_prices_file_is_not_scaled_twice(itch: Any, tmp_path: Path) -> None:
    parquet = tmp_path / "floats.parquet"
    itch.to_parquet(parquet, prices="float", quantities="float", missing="nan")
    fig = plot.plot_file(parquet, tmp_path / "f.png", instrument="CHAR")
    ints = plot.plot_result(itch, instrument="CHAR")
    assert fig.axes[0].get_ylim() == pytest.approx(ints.axes[0].get_ylim())


def test_datetime_file(itch: Any, tmp_path: Path) -> None:
    parquet = tmp_path / "dt.parquet"
    itch.to_parquet(parquet, timestamps="datetime")
    fig = plot.plot_file(parquet, tmp_path / "dt.png", instrument="BOB", start="09:30",
                         end="12:00")
    x0, x1 = fig.axes[0].get_xlim()
    day = np.datetime64("2010-12-24", "s").astype(np.int64)
    assert (x0 - day, x1 - day) == pytest.approx((9.5 * 3600, 12 * 3600))


def test_series_of_a_real_file_with_feature_columns(kraken: Any, tmp_path: Path) -> None:
    table = kraken.to_arrow()
    inst = next(i for i in kraken.instruments if i["symbol"] == "XBT/CHF")
    bid = table["bid_px_1"].to_numpy() / 10 ** inst["price_decimals"]
    ask = table["ask_px_1"].to_numpy() / 10 ** inst["price_decimals"]
    table = table.append_column("microprice", pa.array((bid + ask) / 2))
    table = table.append_column("ofi_l1", pa.array(np.arange(len(bid), dtype=np.int64)))
    parquet = tmp_path / "features.parquet"
    pq.write_table(table, parquet)
    out = tmp_path / "series.png"
    fig = plot.plot_file(parquet, out, kind="series", instrument="kraken-v1:XBT/CHF",
                         columns=["microprice", "spread", "ofi_l1"])
    _check_picture(out, (1200, int(100 * (1.0 + 2.2 * 3))))
    assert [ax.get_ylabel() for ax in fig.axes] == ["microprice", "spread", "ofi_l1"]
    rows = table["instrument"].to_numpy() == inst["id"]
    line = fig.axes[0].lines[0].get_ydata()
    mid = ((bid + ask) / 2)[rows]
    assert np.nanmin(line) == pytest.approx(mid.min()) and np.nanmax(line) == pytest.approx(
        mid.max())
    spread = fig.axes[1].lines[0].get_ydata()
    assert np.nanmin(spread) > 0                         # real spread of a synced book


def test_series_aggregates_long_inputs_to_the_width() -> None:
    n = 50_000
    rng = np.random.default_rng(1)
    walk = 10_000 + np.cumsum(rng.integers(-1, 2, n))
    cols = {"ts": np.arange(n, dtype=np.int64) * 1000, "instrument": np.zeros(n, np.uint32),
            "bid_px": walk[:, None], "bid_qty": np.ones((n, 1), np.int64),
            "ask_px": walk[:, None] + 1, "ask_qty": np.ones((n, 1), np.int64),
            "vpin": rng.random(n)}
    fig = plot.series(cols, ["mid", "vpin"], instruments=[{"symbol": "W", "price_decimals": 2,
                                                           "qty_decimals": 0}], width=200)
    mid_line = fig.axes[0].lines[0]
    assert len(mid_line.get_ydata()) == 200
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx((walk.min() + 0.5) / 100)
    assert band.max() == pytest.approx((walk.max() + 0.5) / 100)
    assert fig.axes[1].get_ylabel() == "vpin"


# -- bad input ------------------------------------------------------------------------------

def test_series_names_missing_columns(itch: Any) -> None:
    with pytest.raises(ValueError, match=r"no column 'microprice', 'vpin' in .* it has mid, "
                                         r"spread, .*bid_px_1"):
        plot.plot_result(itch, kind="series", instrument="BOB", columns=["microprice", "vpin",
                                                                         "mid"])


def test_series_refuses_text_columns(itch: Any, tmp_path: Path) -> None:
    parquet = tmp_path / "names.parquet"
    itch.to_parquet(parquet, reason="names")
    with pytest.raises(ValueError, match=r"column 'reason', 'symbol' of .* is not numeric"):
        plot.plot_file(parquet, tmp_path / "x.png", kind="series", instrument="BOB",
                       columns="reason,symbol")


def test_file_without_sample_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"price": [1.5], "size": [2]}), path)
    with pytest.raises(ValueError, match=r"has no sample columns ts, instrument.*its "
                                         r"columns: price, size"):
        plot.plot_file(path, tmp_path / "x.png")
    text = tmp_path / "text.parquet"
    text.write_text("not parquet")
    with pytest.raises(ValueError, match="not a Parquet file"):
        plot.plot_file(text, tmp_path / "x.png")


def test_unknown_instrument_and_empty_selection(itch: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no instrument 'NOPE' .*XNAS:ALC, XNAS:BOB"):
        plot.plot_result(itch, instrument="NOPE")
    with pytest.raises(ValueError, match=r"hold 3 instruments; name one"):
        plot.plot_result(itch)
    with pytest.raises(ValueError, match=r"no samples of 'BOB' .* between 03:00:00.000 and "
                                         r"04:00:00.000 \(the samples run 08:38"):
        plot.plot_result(itch, instrument="BOB", start="03:00", end="04:00")
    with pytest.raises(ValueError, match="start is after end"):
        plot.plot_result(itch, instrument="BOB", start="12:00", end="11:00")
    with pytest.raises(ValueError, match="not a time"):
        plot.plot_result(itch, instrument="BOB", start="noon")
    with pytest.raises(ValueError, match=r"levels=9 is outside 1\.\.5"):
        plot.plot_result(itch, instrument="BOB", levels=9)
    empty = fb.replay(ITCH, on_error="skip")
    with pytest.raises(ValueError, match="took no samples"):
        plot.plot_result(empty)


# -- the command line -----------------------------------------------------------------------

def _cli(argv: list[str]) -> int:
    from fastbook import _plot_cli

    parser = argparse.ArgumentParser(prog="fastbook")
    sub = parser.add_subparsers(dest="command", required=True)
    _plot_cli.add_parser(sub)
    return _plot_cli.run(parser.parse_args(argv))


def test_plot_command(kraken: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parquet = tmp_path / "k.parquet"
    kraken.to_parquet(parquet)
    assert _cli(["plot", str(parquet), "--instrument", "ETH/CHF"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "k.png")
    _check_picture(tmp_path / "k.png", (1200, 600))
    out = tmp_path / "s.png"
    assert _cli(["plot", str(parquet), "--instrument", "4", "--series", "mid,bid_qty_1",
                 "--out", str(out)]) == 0
    _png(out)
    assert _cli(["plot", str(parquet), "--instrument", "ETH/CHF", "--series", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert _cli(["plot", str(tmp_path / "missing.parquet")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_other_inputs_draw_the_same(itch: Any, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    # a replay streamed to Parquet, the Arrow table and the DataFrame give the picture
    # the in-memory samples give
    pytest.importorskip("pandas")
    ref = plot.plot_result(itch, instrument="CHAR").axes[0].images[0].get_array()
    streamed = fb.replay(ITCH, every="bbo", depth=5, on_error="skip",
                         output=tmp_path / "out.parquet")
    assert not streamed.samples
    for source in (streamed, itch.to_arrow(), itch.to_pandas()):
        fig = plot.depth_heatmap(source, "CHAR", progress=True)
        np.testing.assert_allclose(fig.axes[0].images[0].get_array().filled(np.nan),
                                   ref.filled(np.nan), equal_nan=True)
    assert "plot CHAR: depth: 100% of" in capsys.readouterr().err
    fig = plot.series(itch.to_pandas(), "mid", "CHAR")
    assert fig.axes[0].get_ylabel() == "mid"


def test_samples_without_scales_need_instruments(itch: Any) -> None:
    bare = dict(itch.samples)
    with pytest.raises(ValueError, match=r"no fastbook\.instruments metadata"):
        plot.depth_heatmap(bare, 0)
    fig = plot.depth_heatmap(bare, "BOB", instruments=itch.instruments)
    assert fig.axes[0].get_ylim() == pytest.approx(
        plot.plot_result(itch, instrument="BOB").axes[0].get_ylim())
