"""The public C API works for a downstream Cython project.

A small consumer (``CONSUMER_PYX`` below) does ``cimport fastbook``, is built with
the running interpreter against the *installed* ``fastbook`` package (whose
``.pxd`` files ship as package data), and calls the core with the GIL released.
This is the numpy.random ``test_extending`` pattern: if the ``.pxd`` files stop
shipping, stop matching the compiled core, or stop being usable from ``nogil``
code, this test fails.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import fastbook as fb

pytestmark = pytest.mark.slow

MODULE_NAME = "fastbook_capi_consumer"

# Keep this module free of Python objects inside ``with nogil:``: Cython refuses
# to compile GIL-requiring code there, which is half of what this test proves.
# The other half is ``PyGILState_Check()``, which each nogil block records.
CONSUMER_PYX = '''
# cython: language_level=3
"""Downstream consumer of fastbook's C API (built by tests/test_capi.py)."""

cimport fastbook
from libc.stdint cimport INT64_MIN, int8_t, int64_t, uint64_t


cdef extern from "Python.h":
    int PyGILState_Check() nogil


BID = fastbook.FB_BID
ASK = fastbook.FB_ASK
BOOK_TYPE = fastbook.Book
FORMAT_BUFSIZE = fastbook.FB_FORMAT_BUFSIZE
STATUS = {
    "FB_OK": fastbook.FB_OK,
    "FB_TOP_CHANGED": fastbook.FB_TOP_CHANGED,
    "FB_ENOMEM": fastbook.FB_ENOMEM,
    "FB_ESIDE": fastbook.FB_ESIDE,
    "FB_EQTY": fastbook.FB_EQTY,
    "FB_EPRICE": fastbook.FB_EPRICE,
    "FB_EPARSE_EMPTY": fastbook.FB_EPARSE_EMPTY,
    "FB_EPARSE_SYNTAX": fastbook.FB_EPARSE_SYNTAX,
    "FB_EPARSE_PRECISION": fastbook.FB_EPARSE_PRECISION,
    "FB_EPARSE_OVERFLOW": fastbook.FB_EPARSE_OVERFLOW,
    "FB_EDECIMALS": fastbook.FB_EDECIMALS,
}


cdef object _best(bint has, int64_t price, int64_t qty):
    return (price, qty) if has else None


cdef fastbook.fb_book *_core_of(object book) except NULL:
    # Checked cast with the GIL held; the caller's reference keeps the Book (and
    # so the struct) alive while nogil code uses the pointer.
    if not isinstance(book, fastbook.Book):
        raise TypeError(f"expected fastbook.Book, got {type(book).__name__}")
    return &(<fastbook.Book>book)._book


def snapshot(book):
    """Read a Book from nogil code: (best bid, best ask, bid depth, ask depth, qty at 10000)."""
    cdef fastbook.fb_book *p = _core_of(book)
    cdef int64_t bp = 0, bq = 0, ap = 0, aq = 0, q10000 = -1
    cdef bint hb, ha
    cdef Py_ssize_t nb, na
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        hb = fastbook.fb_book_best(p, fastbook.FB_BID, &bp, &bq)
        ha = fastbook.fb_book_best(p, fastbook.FB_ASK, &ap, &aq)
        nb = fastbook.fb_book_depth(p, fastbook.FB_BID)
        na = fastbook.fb_book_depth(p, fastbook.FB_ASK)
        q10000 = fastbook.fb_book_qty_at(p, fastbook.FB_BID, 10000)
    return {
        "gil": gil,
        "best_bid": _best(hb, bp, bq),
        "best_ask": _best(ha, ap, aq),
        "depth": (nb, na),
        "qty_at_bid_10000": q10000,
    }


def mutate(book):
    """Drive a Python-owned Book through fb_book_set with the GIL released."""
    cdef fastbook.fb_book *p = _core_of(book)
    cdef int rc[8]
    cdef int64_t bp = 0, bq = 0, ap = 0, aq = 0
    cdef bint hb = False, ha = False
    cdef Py_ssize_t nb = -1, na = -1, bad_side_depth = -1
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        rc[0] = fastbook.fb_book_set(p, fastbook.FB_BID, 10000, 5)   # first bid
        rc[1] = fastbook.fb_book_set(p, fastbook.FB_BID, 10050, 7)   # new best bid
        rc[2] = fastbook.fb_book_set(p, fastbook.FB_BID, 9950, 3)    # behind the best
        rc[3] = fastbook.fb_book_set(p, fastbook.FB_ASK, 10100, 2)   # first ask
        rc[4] = fastbook.fb_book_set(p, fastbook.FB_ASK, 10075, 4)   # new best ask
        rc[5] = fastbook.fb_book_set(p, fastbook.FB_BID, 10000, 0)   # delete a middle level
        rc[6] = fastbook.fb_book_set(p, fastbook.FB_ASK, 10100, 6)   # resize a non-best level
        rc[7] = fastbook.fb_book_set(p, fastbook.FB_BID, 1, 0)       # delete an absent level
        hb = fastbook.fb_book_best(p, fastbook.FB_BID, &bp, &bq)
        ha = fastbook.fb_book_best(p, fastbook.FB_ASK, &ap, &aq)
        nb = fastbook.fb_book_depth(p, fastbook.FB_BID)
        na = fastbook.fb_book_depth(p, fastbook.FB_ASK)
        bad_side_depth = fastbook.fb_book_depth(p, 0)
    return {
        "gil": gil,
        "rcs": [rc[i] for i in range(8)],
        "best_bid": _best(hb, bp, bq),
        "best_ask": _best(ha, ap, aq),
        "depth": (nb, na),
        "bad_side_depth": bad_side_depth,
    }


def refuse_bad_updates(book):
    """Invalid updates through the C API: their statuses and the book version around them."""
    cdef fastbook.fb_book *p = _core_of(book)
    cdef uint64_t version_before, version_after
    cdef int rc[5]
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        version_before = p.version
        rc[0] = fastbook.fb_book_set(p, 0, 10000, 1)                 # zero-filled side
        rc[1] = fastbook.fb_book_set(p, 3, 10000, 1)
        rc[2] = fastbook.fb_book_set(p, -1, 10050, 0)
        rc[3] = fastbook.fb_book_set(p, fastbook.FB_BID, 10000, -1)  # negative quantity
        rc[4] = fastbook.fb_book_set(p, fastbook.FB_ASK, INT64_MIN, 1)
        version_after = p.version
    return {
        "gil": gil,
        "rcs": [rc[i] for i in range(5)],
        "version": (version_before, version_after),
    }


cdef int _standalone(int64_t *out, Py_ssize_t *counts, int *codes) noexcept nogil:
    """Own an fb_book from init to free without the GIL; fill ``out`` with its top 3."""
    cdef fastbook.fb_book book
    cdef int8_t sides[8]
    cdef int64_t prices[8]
    cdef int64_t qtys[8]
    cdef int8_t bad_sides[3]
    cdef int64_t bad_prices[3]
    cdef int64_t bad_qtys[3]
    cdef Py_ssize_t applied = -1
    cdef int rc
    codes[0] = PyGILState_Check()
    # capacity 2 per side: the batch below must grow the ladders from nogil code
    rc = fastbook.fb_book_init(&book, 2, 8, 2)
    codes[1] = rc
    if rc < 0:
        return rc
    sides[0] = fastbook.FB_BID; prices[0] = 2743100; qtys[0] = 100
    sides[1] = fastbook.FB_BID; prices[1] = 2743150; qtys[1] = 250
    sides[2] = fastbook.FB_ASK; prices[2] = 2743200; qtys[2] = 300
    sides[3] = fastbook.FB_ASK; prices[3] = 2743175; qtys[3] = 10
    sides[4] = fastbook.FB_BID; prices[4] = 2743000; qtys[4] = 50
    sides[5] = fastbook.FB_BID; prices[5] = 2742900; qtys[5] = 70
    sides[6] = fastbook.FB_ASK; prices[6] = 2743300; qtys[6] = 80
    sides[7] = fastbook.FB_BID; prices[7] = 2743100; qtys[7] = 0
    rc = fastbook.fb_book_apply(&book, sides, prices, qtys, 8, &applied)
    codes[2] = rc
    counts[0] = applied
    counts[1] = fastbook.fb_book_top(&book, 3, out, out + 3, out + 6, out + 9)
    counts[2] = fastbook.fb_book_depth(&book, fastbook.FB_BID)
    counts[3] = fastbook.fb_book_depth(&book, fastbook.FB_ASK)
    # a batch with a bad side in the middle stops there; the first update stays applied
    bad_sides[0] = fastbook.FB_ASK; bad_prices[0] = 2743400; bad_qtys[0] = 1
    bad_sides[1] = 0;               bad_prices[1] = 2743500; bad_qtys[1] = 1
    bad_sides[2] = fastbook.FB_ASK; bad_prices[2] = 2743600; bad_qtys[2] = 1
    applied = -1
    codes[3] = fastbook.fb_book_apply(&book, bad_sides, bad_prices, bad_qtys, 3, &applied)
    counts[4] = applied
    counts[5] = fastbook.fb_book_depth(&book, fastbook.FB_ASK)
    counts[6] = book.ladders[0].capacity
    fastbook.fb_book_free(&book)
    counts[7] = book.ladders[0].capacity + book.ladders[1].capacity
    return fastbook.FB_OK


def standalone():
    cdef int64_t out[12]
    cdef Py_ssize_t counts[8]
    cdef int codes[4]
    cdef int rc
    cdef Py_ssize_t i
    for i in range(12):
        out[i] = -1
    for i in range(8):
        counts[i] = -1
    for i in range(4):
        codes[i] = -99
    with nogil:
        rc = _standalone(out, counts, codes)
    return {
        "rc": rc,
        "gil": codes[0],
        "init": codes[1],
        "apply": codes[2],
        "applied": counts[0],
        "top_filled": counts[1],
        "depth": (counts[2], counts[3]),
        "top": [[out[r * 3 + c] for c in range(3)] for r in range(4)],
        "bad_apply": codes[3],
        "bad_applied": counts[4],
        "ask_depth_after_bad": counts[5],
        "bid_capacity": counts[6],
        "capacity_after_free": counts[7],
    }


def parse_and_format(bytes text, int decimals, bint strip):
    """fb_parse_decimal then fb_format_decimal, both without the GIL."""
    cdef const char *ptr = text
    cdef Py_ssize_t n = len(text)
    cdef int64_t value = 0
    cdef char buf[fastbook.FB_FORMAT_BUFSIZE]
    cdef Py_ssize_t written = -1
    cdef int rc
    cdef int gil = -1
    with nogil:
        gil = PyGILState_Check()
        rc = fastbook.fb_parse_decimal(ptr, n, decimals, &value)
        if rc == fastbook.FB_OK:
            written = fastbook.fb_format_decimal(value, decimals, strip, buf)
    return {
        "gil": gil,
        "rc": rc,
        "value": value if rc == fastbook.FB_OK else None,
        "text": buf[:written].decode("ascii") if written >= 0 else None,
    }


def format_value(int64_t value, int decimals, bint strip):
    """fb_format_decimal alone: (length or status, text)."""
    cdef char buf[fastbook.FB_FORMAT_BUFSIZE]
    cdef Py_ssize_t written
    with nogil:
        written = fastbook.fb_format_decimal(value, decimals, strip, buf)
    return written, (buf[:written].decode("ascii") if written >= 0 else None)
'''

CONSUMER_SETUP = """
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    name={name!r},
    ext_modules=cythonize(
        [Extension({name!r}, [{name!r} + ".pyx"], include_dirs=[numpy.get_include()])],
        include_path=[{include!r}],
        compiler_directives={{"language_level": 3}},
    ),
)
"""


def _compiler_hint() -> str:
    """Name a missing C compiler, the usual reason a build fails on a fresh machine."""
    if sys.platform == "win32":  # MSVC is found through the registry, not PATH
        return ""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler):
        return ""
    return f" (the C compiler {compiler!r} is not on PATH; install one, e.g. gcc or clang)"


def _built_extension(directory: Path) -> Path:
    for path in directory.iterdir():
        if path.name.startswith(MODULE_NAME + ".") and any(
            path.name.endswith(suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES
        ):
            return path
    raise AssertionError(
        f"the build reported success but no {MODULE_NAME} extension is in {directory}: "
        f"{sorted(p.name for p in directory.iterdir())}"
    )


@pytest.fixture(scope="module")
def consumer_build(tmp_path_factory: pytest.TempPathFactory) -> ModuleType | str:
    """Build and import the consumer once per module: the module, or why it failed."""
    if not fb.COMPILED:
        pytest.skip(
            "the compiled core is not in use (FASTBOOK_NO_EXTENSIONS is set or the "
            "extension failed to import), so there is no C API to cimport"
        )
    for requirement in ("Cython", "setuptools"):
        if importlib.util.find_spec(requirement) is None:
            return (
                f"{requirement} is not installed, but the C-API test builds a Cython "
                'module; install the test extras: pip install ".[test]"'
            )

    # The directory that CONTAINS the installed package: site-packages for a wheel,
    # src/ for an editable install. Its fastbook/*.pxd are what downstream cimports.
    include = Path(fb.__file__).resolve().parent.parent
    for pxd in ("__init__.pxd", "_core.pxd"):
        if not (include / "fastbook" / pxd).is_file():
            return (
                f"fastbook/{pxd} is not installed next to {fb.__file__}; the .pxd "
                "files must ship as package data for `cimport fastbook` to work"
            )

    build_dir = tmp_path_factory.mktemp("capi_consumer")
    (build_dir / f"{MODULE_NAME}.pyx").write_text(textwrap.dedent(CONSUMER_PYX), "utf-8")
    (build_dir / "setup.py").write_text(
        CONSUMER_SETUP.format(name=MODULE_NAME, include=str(include)), "utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTBOOK_")}
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=build_dir,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",  # compiler output may not be UTF-8 (MSVC, localized gcc)
        check=False,
    )
    if proc.returncode != 0:
        return (
            f"building the downstream Cython consumer in {build_dir} failed with exit "
            f"code {proc.returncode}{_compiler_hint()}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )

    path = _built_extension(build_dir)
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def consumer(consumer_build: ModuleType | str) -> ModuleType:
    if isinstance(consumer_build, str):
        pytest.fail(consumer_build, pytrace=False)
    return consumer_build


def test_constants_match_the_python_api(consumer: ModuleType) -> None:
    assert consumer.BID == fb.BID
    assert consumer.ASK == fb.ASK
    # the cimported class is the very type fastbook.Book, not a copy
    assert consumer.BOOK_TYPE is fb.Book
    # the status codes are part of the ABI: downstream code compiles them in
    assert consumer.STATUS == {
        "FB_OK": 0,
        "FB_TOP_CHANGED": 1,
        "FB_ENOMEM": -1,
        "FB_ESIDE": -2,
        "FB_EQTY": -3,
        "FB_EPRICE": -4,
        "FB_EPARSE_EMPTY": -10,
        "FB_EPARSE_SYNTAX": -11,
        "FB_EPARSE_PRECISION": -12,
        "FB_EPARSE_OVERFLOW": -13,
        "FB_EDECIMALS": -14,
    }
    # sign + 19 digits + point + 18 zeros + NUL must fit
    assert consumer.FORMAT_BUFSIZE >= 40


def test_nogil_updates_to_a_python_book(consumer: ModuleType) -> None:
    book = fb.Book(price_decimals=2, qty_decimals=0, capacity=4)
    empty = consumer.snapshot(book)
    assert empty == {
        "gil": 0,
        "best_bid": None,
        "best_ask": None,
        "depth": (0, 0),
        "qty_at_bid_10000": 0,
    }

    got = consumer.mutate(book)
    assert got["gil"] == 0, "fb_book_set ran with the GIL held"
    ok, top = consumer.STATUS["FB_OK"], consumer.STATUS["FB_TOP_CHANGED"]
    assert got["rcs"] == [top, top, ok, top, top, ok, ok, ok]
    assert got["best_bid"] == (10050, 7)
    assert got["best_ask"] == (10075, 4)
    assert got["depth"] == (2, 2)
    assert got["bad_side_depth"] == 0

    # the Python object sees every change made through &book._book
    assert book.bbo() == (10050, 7, 10075, 4)
    assert book.depth(fb.BID) == 2
    assert book.depth(fb.ASK) == 2
    assert len(book) == 4
    assert list(book.levels(fb.BID)) == [(10050, 7), (9950, 3)]
    assert list(book.levels(fb.ASK)) == [(10075, 4), (10100, 6)]
    assert book.qty_at(fb.BID, 10000) == 0
    assert book.qty_at(fb.ASK, 10100) == 6
    assert book.missing_deletes == 1
    np.testing.assert_array_equal(book.top(2), [[10050, 9950], [7, 3], [10075, 10100], [4, 6]])

    # and the C side sees changes made from Python
    book.set(fb.BID, 10000, 9)
    book.set(fb.BID, 10050, 0)
    assert consumer.snapshot(book) == {
        "gil": 0,
        "best_bid": (10000, 9),
        "best_ask": (10075, 4),
        "depth": (2, 2),
        "qty_at_bid_10000": 9,
    }


def test_bad_side_leaves_the_book_unchanged(consumer: ModuleType) -> None:
    book = fb.Book(price_decimals=2, qty_decimals=0)
    book.set(fb.BID, 10000, 5)
    book.set(fb.BID, 10050, 7)
    book.set(fb.ASK, 10100, 2)
    before = (book.bbo(), book.depth(fb.BID), book.depth(fb.ASK), list(book), book.missing_deletes)

    got = consumer.refuse_bad_updates(book)
    status = consumer.STATUS
    assert got["gil"] == 0
    assert got["rcs"] == [
        status["FB_ESIDE"],
        status["FB_ESIDE"],
        status["FB_ESIDE"],
        status["FB_EQTY"],
        status["FB_EPRICE"],
    ]
    version_before, version_after = got["version"]
    assert version_after == version_before, "a refused update bumped the book version"
    after = (book.bbo(), book.depth(fb.BID), book.depth(fb.ASK), list(book), book.missing_deletes)
    assert after == before
    assert consumer.snapshot(book)["depth"] == (2, 1)


def test_standalone_fb_book_without_the_gil(consumer: ModuleType) -> None:
    got = consumer.standalone()
    status = consumer.STATUS
    assert got["gil"] == 0
    assert got["rc"] == status["FB_OK"]
    assert got["init"] == status["FB_OK"]
    assert got["apply"] == status["FB_OK"]
    assert got["applied"] == 8
    # bids 2743150, 2743000, 2742900 (2743100 was deleted); asks 2743175, 2743200, 2743300
    assert got["depth"] == (3, 3)
    assert got["top_filled"] == 3
    assert got["top"] == [
        [2743150, 2743000, 2742900],
        [250, 50, 70],
        [2743175, 2743200, 2743300],
        [10, 300, 80],
    ]
    # stop-at-first-failure: update 0 applied, update 1 (side 0) refused, update 2 not reached
    assert got["bad_apply"] == status["FB_ESIDE"]
    assert got["bad_applied"] == 1
    assert got["ask_depth_after_bad"] == 4
    assert got["bid_capacity"] >= 4, "the ladder did not grow past its initial capacity"
    assert got["capacity_after_free"] == 0


@pytest.mark.parametrize(
    ("text", "decimals", "strip", "value", "formatted"),
    [
        (b"27431.50", 2, False, 2743150, "27431.50"),
        (b"27431.50", 2, True, 2743150, "27431.5"),
        (b"-0.00012000", 5, False, -12, "-0.00012"),
        (b"+7", 3, True, 7000, "7"),
        (b"1.5e3", 0, False, 1500, "1500"),
        (b"9223372036854775807", 0, False, 2**63 - 1, "9223372036854775807"),
        (b"-9.223372036854775808", 18, False, -(2**63), "-9.223372036854775808"),
    ],
)
def test_decimal_text_without_the_gil(
    consumer: ModuleType, text: bytes, decimals: int, strip: bool, value: int, formatted: str
) -> None:
    got = consumer.parse_and_format(text, decimals, strip)
    assert got == {"gil": 0, "rc": consumer.STATUS["FB_OK"], "value": value, "text": formatted}
    # the C API and the Python API agree
    assert fb.parse_decimal(text, decimals) == value
    assert fb.format_decimal(value, decimals, strip=strip) == formatted


@pytest.mark.parametrize(
    ("text", "decimals", "status"),
    [
        (b"", 2, "FB_EPARSE_EMPTY"),
        (b"12a", 2, "FB_EPARSE_SYNTAX"),
        (b".", 2, "FB_EPARSE_SYNTAX"),
        (b"1.234", 2, "FB_EPARSE_PRECISION"),
        (b"9223372036854775808", 0, "FB_EPARSE_OVERFLOW"),
        (b"1", 19, "FB_EDECIMALS"),
    ],
)
def test_decimal_parse_errors_without_the_gil(
    consumer: ModuleType, text: bytes, decimals: int, status: str
) -> None:
    got = consumer.parse_and_format(text, decimals, False)
    assert got == {"gil": 0, "rc": consumer.STATUS[status], "value": None, "text": None}


def test_format_decimal_limits(consumer: ModuleType) -> None:
    # INT64_MIN at every scale is the longest text each scale can produce
    for decimals in range(19):
        n, text = consumer.format_value(-(2**63), decimals, False)
        assert text == fb.format_decimal(-(2**63), decimals)
        assert n == len(text) < consumer.FORMAT_BUFSIZE
    assert consumer.format_value(5, 18, False) == (20, "0.000000000000000005")
    assert consumer.format_value(0, 3, True) == (1, "0")
    assert consumer.format_value(1, -1, False) == (consumer.STATUS["FB_EDECIMALS"], None)
    assert consumer.format_value(1, 19, False) == (consumer.STATUS["FB_EDECIMALS"], None)


def test_wrong_object_is_refused(consumer: ModuleType) -> None:
    # the consumer's isinstance check before its cast keeps stray objects out of C code
    twin = importlib.import_module("fastbook._pycore").Book(price_decimals=2, qty_decimals=0)
    for wrong in (object(), None, twin):
        with pytest.raises(TypeError, match=r"expected fastbook\.Book"):
            consumer.mutate(wrong)
