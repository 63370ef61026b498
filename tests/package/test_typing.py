"""Users' type checkers see the real types of the public API.

``fastbook`` chooses the compiled core or its twin at run time, but imports the
compiled modules under ``TYPE_CHECKING``, so mypy reads their stubs (``_core.pyi``,
``_l3.pyi``). Two scripts in ``tests/typing`` prove it: ``user_script.py`` passes
``mypy --strict`` with ``assert_type`` on what it uses, and ``misuse.py`` gets exactly
the errors its ``# E:`` comments expect (none at all if the names were ``Any``).
Where ``pyright`` is on PATH, it must agree (strict mode, the same lines).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import fastbook

pytestmark = pytest.mark.slow

TESTS = next(p for p in Path(__file__).resolve().parents if p.name == "tests")
TYPING = TESTS / "typing"
PYPROJECT = TESTS.parent / "pyproject.toml"


def source_tree() -> Path | None:
    """The directory holding the imported fastbook when it is not installed.

    A source tree (PYTHONPATH=src, an editable install): type checkers do not read
    PYTHONPATH, so they are pointed at the same package the tests import.
    """
    package_root = Path(fastbook.__file__).resolve().parent.parent
    paths = sysconfig.get_paths()
    installed = {paths["purelib"], paths["platlib"], *site.getsitepackages()}
    if package_root in {Path(p).resolve() for p in installed}:
        return None     # (mypy refuses site-packages in MYPYPATH)
    return package_root


def expected_errors(script: Path) -> set[tuple[int, str]]:
    """(line, mypy error code) of every ``# E: <code>`` comment of ``script``."""
    expected = set()
    for number, line in enumerate(script.read_text("utf-8").splitlines(), 1):
        mark = re.search(r"# E: ([a-z-]+)$", line)
        if mark:
            expected.add((number, mark.group(1)))
    return expected


def mypy(*files: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip('mypy is not installed (pip install ".[test]")')
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    tree = source_tree()
    if tree is not None:
        env["MYPYPATH"] = str(tree)
    args = [sys.executable, "-m", "mypy", "--cache-dir", str(cache),
            # the package's own modules are read for their types, not checked
            "--follow-imports", "silent", "--no-error-summary", "--show-error-codes"]
    if PYPROJECT.is_file():
        args += ["--config-file", str(PYPROJECT)]
    else:  # tests run from an installed copy without the project's configuration
        args += ["--strict", "--python-version", "3.10"]
    return subprocess.run([*args, *map(str, files)], cwd=TESTS.parent, env=env,
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy_cache")


def test_user_script_sees_the_real_types(cache: Path) -> None:
    proc = mypy(TYPING / "user_script.py", cache=cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and it is a working program, against whichever core is in use
    out = subprocess.run([sys.executable, str(TYPING / "user_script.py")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"


def test_misuse_is_refused(cache: Path) -> None:
    script = TYPING / "misuse.py"
    expected = expected_errors(script)
    assert len(expected) >= 15
    proc = mypy(script, cache=cache)
    got = {(int(m.group(1)), m.group(2)) for m in re.finditer(
        r"^[^\n]*misuse\.py:(\d+): error: .*\[([a-z-]+)\]$", proc.stdout, re.MULTILINE)}
    assert got == expected, proc.stdout + proc.stderr


def test_pyright_agrees(tmp_path: Path) -> None:
    # pyright is not a Python package; run it where a developer has it
    pyright = shutil.which("pyright")
    if pyright is None:
        pytest.skip("pyright is not on PATH")
    tree = source_tree()
    config = {"pythonVersion": "3.10", "typeCheckingMode": "strict",
              "extraPaths": [str(tree)] if tree is not None else []}
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config), "utf-8")
    misuse = TYPING / "misuse.py"
    proc = subprocess.run(
        [pyright, "-p", str(tmp_path), "--pythonpath", sys.executable,
         str(TYPING / "user_script.py"), str(misuse)],
        capture_output=True, text=True, check=False)
    got = {(Path(m.group(1)).name, int(m.group(2))) for m in re.finditer(
        r"^\s*(\S+\.py):(\d+):\d+ - error:", proc.stdout, re.MULTILINE)}
    assert got == {("misuse.py", line) for line, _ in expected_errors(misuse)}, proc.stdout
