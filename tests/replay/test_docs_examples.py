"""The documentation's replay examples give what they say (issue 26, item 10): the code
block of docs/captures.md is run from the repository root, its commented values and its
printed lines are checked against the real output."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```\n", text, flags=re.S | re.M)


def test_the_captures_md_example_matches_the_real_output(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "captures.md").read_text()
    section = text[text.index("## Replaying L2 captures"):]
    code = _blocks(section, "python")[0]
    printed = _blocks(section[section.index("\nprints\n"):], "")[0].splitlines()
    out = tmp_path / "binance.parquet"
    monkeypatch.chdir(ROOT)
    code = code.replace('output="binance.parquet"', f"output={str(out)!r}")
    lines = code.splitlines()
    checks = [(line.split("#")[0].strip(), line.split("#", 1)[1].strip())
              for line in lines if re.search(r"#\s*[(\[{'\d]", line)]
    assert len(checks) >= 3
    scope: dict[str, object] = {}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, "docs/captures.md", "exec"), scope)
    for expr, value in checks:
        assert eval(expr, scope) == ast.literal_eval(value), expr
    got = stdout.getvalue().replace(str(out), "binance.parquet").splitlines()
    timing = re.compile(r"; [\d.]+ s, [\d,]+ k msgs/s$")
    assert [timing.sub("", g) for g in got] == [timing.sub("", p) for p in printed]


def test_the_l2_readme_commands_name_files_that_exist():
    text = (ROOT / "docs" / "captures.md").read_text()
    data = ROOT / "tests" / "data" / "l2" / "cryptofeed"
    named = set(re.findall(r"\b([A-Z_]+\.(?:ws|http)\.\d+\.\d+\.gz|[A-Z_]+\.0\.gz)\b", text))
    assert named and all((data / n).exists() for n in named), sorted(
        n for n in named if not (data / n).exists())
