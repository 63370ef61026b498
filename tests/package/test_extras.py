"""The distribution is fastbook-lob, and every install hint names it with an extra that
exists (issue 26, item 1)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import fastbook
from fastbook import _extras

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(fastbook.__file__).resolve().parent


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    path = ROOT / "pyproject.toml"
    if not path.exists():
        pytest.skip("no pyproject.toml beside the tests")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def features(project: dict) -> set[str]:
    """The extras that add a feature (not the test, bench and dev tool sets, nor all)."""
    return set(project["optional-dependencies"]) - {"test", "bench", "dev", "all"}


def test_the_distribution_is_fastbook_lob():
    project = pyproject()["project"]
    assert project["name"] == _extras.DISTRIBUTION == "fastbook-lob"
    assert all("fastbook-lob" in dep for dep in project["optional-dependencies"]["dev"]
               if dep.startswith("fastbook"))
    assert set(project["urls"]) >= {"Source", "Issues", "Changelog"}


def test_all_installs_every_feature_and_the_helper_knows_each():
    extras = pyproject()["project"]["optional-dependencies"]
    (spec,) = extras["all"]
    named = re.fullmatch(r"fastbook-lob\[([a-z,]+)\]", spec)
    assert named, spec
    assert set(named.group(1).split(",")) == features(pyproject()["project"])
    assert set(_extras.EXTRAS) == features(pyproject()["project"])


def source_texts():
    for path in sorted(SRC.rglob("*.py")):
        yield path, path.read_text(encoding="utf-8")
    for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        if path.exists():
            yield path, path.read_text(encoding="utf-8")


def test_every_install_hint_names_fastbook_lob_and_a_real_extra():
    extras = set(pyproject()["project"]["optional-dependencies"])
    seen = 0
    for path, text in source_texts():
        # the distribution on PyPI named "fastbook" is another project
        assert not re.search(r"fastbook\[", text), f"{path}: names fastbook[...]"
        for extra in re.findall(r"fastbook-lob\[([a-z,]+)\]", text):
            for name in extra.split(","):
                assert name in extras, f"{path}: no extra {name!r} in pyproject.toml"
                seen += 1
        # calls of the helper name extras it knows
        for extra in re.findall(r"\b(?:missing|require)\(\s*\"[^\"]*\",\s*\"(\w+)\"", text) + \
                re.findall(r"\bmissing\(\s*\"(\w+)\"", text):
            assert extra in extras, f"{path}: missing/require names no extra {extra!r}"
            seen += 1
    assert seen > 10


def test_hint_text_and_error_type():
    assert _extras.hint("arrow") == "pip install 'fastbook-lob[arrow]'"
    err = _extras.missing("arrow", "Parquet output")
    assert isinstance(err, ModuleNotFoundError) and isinstance(err, fastbook.FastbookError)
    assert str(err) == ("Parquet output needs pyarrow, which is not installed: "
                        "pip install 'fastbook-lob[arrow]'")
    assert err.extra == "arrow" and err.name == "pyarrow"
    with pytest.raises(ValueError, match="no extra 'arow'"):
        _extras.hint("arow")


@pytest.mark.parametrize("blocked", ["pyarrow", "pyarrow.parquet"])
def test_arrow_output_without_pyarrow_names_the_extra(blocked, monkeypatch, tmp_path):
    import fastbook as fb
    from fastbook.synth import itch_day

    result = fb.replay(itch_day(2_000, n_symbols=2), every="bbo")
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(_extras.MissingExtraError, match=r"fastbook-lob\[arrow\]"):
        result.to_parquet(tmp_path / "x.parquet")
    if blocked == "pyarrow":
        with pytest.raises(ImportError, match=r"fastbook-lob\[arrow\]"):
            result.to_arrow()
        with pytest.raises(ImportError, match=r"fastbook-lob\[arrow\]"):
            fb.Sampler(1, on_bbo=True).to_arrow()


def test_zstd_captures_without_zstandard_name_the_extra(monkeypatch, tmp_path):
    from fastbook.capture import CaptureWriter

    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(ImportError, match=r"pip install 'fastbook-lob\[zstd\]'"):
        CaptureWriter(tmp_path / "c.fbcap", compression="zstd")
