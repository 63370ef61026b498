"""The README's pandas example runs and gives what its comment says (issue 26 target)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- readme-pandas:"


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(marker)
    found = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert found, f"no python block after {marker!r} in README.md"
    return found.group(1)


def test_the_pandas_example_is_three_lines_from_install_to_a_frame():
    code = readme_block(MARKER)
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) == 3
    assert "pip install 'fastbook-lob[pandas]'" in lines[0]


def test_the_pandas_example_gives_float_prices_and_datetimes(monkeypatch):
    pd = pytest.importorskip("pandas")
    monkeypatch.chdir(ROOT)               # the example names a file under tests/data
    scope: dict[str, object] = {}
    exec(compile(readme_block(MARKER), "README.md", "exec"), scope)
    df = scope["df"]
    assert isinstance(df, pd.DataFrame)
    assert str(df["ts"].dtype) == "datetime64[ns]" and str(df["bid_px_1"].dtype) == "float64"
    # the comment: df.loc[1]: 2010-12-24 08:39:00 BOB 5.3167
    row = df.loc[1]
    assert row["ts"] == pd.Timestamp("2010-12-24 08:39:00")
    assert row["symbol"] == "BOB" and row["bid_px_1"] == 5.3167
    assert "2010-12-24 08:39:00 BOB 5.3167" in readme_block(MARKER)


def test_the_features_example_gives_its_columns_and_trades(monkeypatch):
    pd = pytest.importorskip("pandas")
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {}
    code = readme_block("<!-- readme-features:")
    exec(compile(code, "README.md", "exec"), scope)
    df = scope["df"]
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["symbol", "mid", "microprice", "ofi_l1", "trade_qty", "vpin"]
    assert df["mid"].notna().any() and df["vpin"].dropna().between(0, 1).all()
    run = scope["run"]
    assert len(run.trades["ts"]) == 5180 and "# 5180 prints" in code
