"""What the wheels promise (issue 26, item 9): stripped shared objects, and on a
free-threaded CPython the GIL stays on, since the compiled modules rely on it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import fastbook

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / ".github" / "check_stripped.py"


def checker():
    if not CHECKER.exists():
        pytest.skip("no .github/check_stripped.py beside the tests")
    spec = importlib.util.spec_from_file_location("check_stripped", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def an_elf_extension() -> Path:
    if not fastbook.COMPILED:
        pytest.skip("the compiled core is not in use")
    import fastbook._core as core

    so = Path(core.__file__)
    if so.read_bytes()[:4] != b"\x7fELF":
        pytest.skip("not an ELF shared object")
    return so


def test_the_strip_check_tells_stripped_from_unstripped(tmp_path):
    check = checker()
    so = an_elf_extension()
    strip = shutil.which("strip")
    if strip is None:
        pytest.skip("no strip tool")
    plain, stripped = tmp_path / "plain.so", tmp_path / "stripped.so"
    shutil.copy(so, plain)
    shutil.copy(so, stripped)
    subprocess.run([strip, "-s", str(stripped)], check=True)
    assert check.unstripped_sections(stripped.read_bytes()) == []
    for name, path in (("plain", plain), ("stripped", stripped)):
        with zipfile.ZipFile(tmp_path / f"{name}.whl", "w") as wheel:
            wheel.write(path, "fastbook/_core.cpython-3x.so")
    assert check.check([str(tmp_path / "stripped.whl")]) == []
    if check.unstripped_sections(plain.read_bytes()):     # a -g build, as Python's CFLAGS ask
        assert check.main([str(tmp_path / "plain.whl")]) == 1
        assert "is not stripped" in check.check([str(tmp_path / "plain.whl")])[0]


@pytest.mark.skipif(not sysconfig.get_config_var("Py_GIL_DISABLED"),
                    reason="only on a free-threaded CPython build")
def test_free_threaded_python_keeps_the_gil_for_fastbook():
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    code = ("import sys, warnings; warnings.simplefilter('ignore'); import fastbook; "
            "print(fastbook.COMPILED, sys._is_gil_enabled())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["True", "True"]
