"""The public C API works for a downstream Cython project.

A small consumer (``tests/capi/fastbook_capi_consumer.pyx``) does ``cimport fastbook``
and ``from fastbook._l3 cimport ...``, is built by ``tests/capi/setup.py`` with the
running interpreter against the *installed* ``fastbook`` package (whose ``.pxd``
files ship as package data), and calls the L2 core, the L3 book and the BookSet
loop with the GIL released.
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
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import fastbook as fb
import fastbook.l3
from fastbook import events as fb_events

pytestmark = pytest.mark.slow

MODULE_NAME = "fastbook_capi_consumer"
# The consumer's sources: what a downstream project would keep in its own tree.
CONSUMER = next(p for p in Path(__file__).resolve().parents if p.name == "tests") / "capi"


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
    for pxd in ("__init__.pxd", "_core.pxd", "_l3.pxd"):
        if not (include / "fastbook" / pxd).is_file():
            return (
                f"fastbook/{pxd} is not installed next to {fb.__file__}; the .pxd "
                "files must ship as package data for `cimport fastbook` to work"
            )

    build_dir = tmp_path_factory.mktemp("capi_consumer")
    for name in (f"{MODULE_NAME}.pyx", "setup.py"):
        shutil.copy(CONSUMER / name, build_dir / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTBOOK_")}
    env["FASTBOOK_INCLUDE"] = str(include)
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


def test_abi_versions_match_the_running_package(consumer: ModuleType) -> None:
    # what a binary built against these headers checks at import time
    from fastbook import _core, _l3

    assert consumer.ABI_VERSION == _core.ABI_VERSION
    assert consumer.L3_ABI_VERSION == _l3.ABI_VERSION
    assert consumer.EVENT_BYTES == 64 == fb_events.EVENT_DTYPE.itemsize


def _one_bid(kind: str, action: int, **fields: int) -> tuple[Any, Any, np.ndarray]:
    """A BookSet with one ``kind`` book and one event bidding 5 at 10000 on it."""
    books = fb.BookSet()
    book = books[books.add_instrument(kind.upper(), kind=kind, price_decimals=2)]
    events = fb_events.empty_events(1)
    for name, value in dict(instrument=0, action=action, side=fb.BID, price=10000, qty=5,
                            **fields).items():
        events[name] = value
    return books, book, events


def test_guard_accessors_refuse_writes_during_a_bookset_callback(consumer: ModuleType) -> None:
    # book_writable / book_readable, exported by ``cimport fastbook``, make a compiled
    # caller refuse what Book's own methods refuse: no update while a BookSet.apply
    # callback runs (reads are fine)
    books, book, events = _one_bid("l2", fb_events.Action.SET_LEVEL)
    seen = []

    def callback(index: int, instrument: int) -> None:
        seen.append(consumer.snapshot(book)["best_bid"])
        consumer.mutate(book)

    with pytest.raises(RuntimeError, match=r"Book is read-only while BookSet\.apply runs"):
        books.apply(events, callback=callback)
    assert seen == [(10000, 5)]
    assert book.bbo() == (None, None, None, None)    # raise mode: the event was taken back
    assert consumer.mutate(book)["rcs"][0] == consumer.STATUS["FB_TOP_CHANGED"]


def test_l3_guard_accessors_refuse_writes_during_a_bookset_callback(
        consumer: ModuleType) -> None:
    # orderbook_writable / orderbook_readable (``from fastbook._l3 cimport``) do for an
    # OrderBook what book_writable / book_readable do for a Book
    books, book, events = _one_bid("l3", fb_events.Action.ADD, order_id=7)
    seen = []

    def callback(index: int, instrument: int) -> None:
        seen.append(consumer.l3_best_bid(book))
        consumer.l3_orders(book)

    with pytest.raises(RuntimeError, match=r"OrderBook is read-only while BookSet\.apply runs"):
        books.apply(events, callback=callback)
    assert seen == [(10000, 5)]
    assert book.order_count == 0                    # raise mode: the add was taken back
    assert consumer.l3_orders(book)["best_bid"] == (10000, 10)   # 3 of order 1 + 7


def test_nogil_updates_to_a_python_order_book(consumer: ModuleType) -> None:
    book = fb.OrderBook(price_decimals=2)
    got = consumer.l3_orders(book)
    ok, top = consumer.STATUS["FB_OK"], consumer.STATUS["FB_TOP_CHANGED"]
    assert got == {
        "gil": 0,
        "rcs": [top, top, top, consumer.L3_STATUS["FB_EUNKNOWN_ORDER"], ok],
        "best_bid": (10000, 10),
        "depth": 1,
        "ahead": (1, 3),
    }
    # the Python object sees the orders the C code added
    assert book.order(1) == (fb.BID, 10000, 3) and book.order(2) == (fb.BID, 10000, 7)
    assert book.queue_position(2) == (1, 3)
    assert book.orders_at(fb.BID, 10000) == [(1, 3), (2, 7)]


def test_standalone_l3_book_without_the_gil(consumer: ModuleType) -> None:
    ok, top = consumer.STATUS["FB_OK"], consumer.STATUS["FB_TOP_CHANGED"]
    assert consumer.standalone_l3() == {
        "init": ok, "rc": top, "best_ask": (10050, 3), "cleared": 0,
    }


def _bookset_events() -> np.ndarray:
    # instrument 0 is an L3 book, 1 an L2 book; event 3 names an unknown order and
    # event 4 an instrument the set does not have
    a = fb_events.Action
    rows = [
        (0, a.ADD, fb.BID, 10000, 5, 1),
        (0, a.ADD, fb.ASK, 10100, 3, 2),
        (1, a.SET_LEVEL, fb.BID, 9900, 4, 0),
        (0, a.EXECUTE, fb.BID, 0, 1, 77),
        (9, a.ADD, fb.BID, 10000, 1, 3),
        (0, a.EXECUTE, fb.BID, 0, 2, 1),
    ]
    events = fb_events.empty_events(len(rows))
    for i, (inst, action, side, price, qty, oid) in enumerate(rows):
        events[i]["instrument"], events[i]["action"], events[i]["side"] = inst, action, side
        events[i]["price"], events[i]["qty"], events[i]["order_id"] = price, qty, oid
    return events


@pytest.mark.parametrize("skip", [True, False], ids=["skip", "raise"])
def test_bookset_loop_without_the_gil(consumer: ModuleType, skip: bool) -> None:
    # fb_bookset_apply over the consumer's own set gives what BookSet.apply gives
    events = _bookset_events()
    l3, l2 = fb.OrderBook(price_decimals=2), fb.Book(price_decimals=2, qty_decimals=0)
    got = consumer.bookset_apply(l3, l2, events.view(np.uint8), skip)

    reference = fb.BookSet(on_error="skip" if skip else "raise")
    ref_l3 = reference[reference.add_instrument("L3", price_decimals=2)]
    ref_l2 = reference[reference.add_instrument("L2", kind="l2", price_decimals=2)]
    assert got["gil"] == 0
    if skip:
        assert reference.apply(events) == 4
        assert got["rc"] == consumer.STATUS["FB_OK"]
        assert (got["done"], got["skipped"]) == (6, 2)
        kinds = list(fb.l3.ERROR_KINDS)
        assert got["errors"] == [[reference.instrument_errors(i)[k] for k in kinds]
                                 for i in range(2)]
        assert got["errors"][0][kinds.index("unknown_order")] == 1
        assert got["bad_instrument"] == reference.errors["bad_instrument"] == 1
    else:
        with pytest.raises(fb.UpdateError) as raised:
            reference.apply(events)
        assert got["rc"] == consumer.L3_STATUS["FB_EUNKNOWN_ORDER"]
        assert got["done"] == raised.value.index == 3
    assert (l3.bbo(), list(l3), l2.bbo()) == (ref_l3.bbo(), list(ref_l3), ref_l2.bbo())
    if not skip:     # all-or-nothing: the books are as before the call
        assert l3.bbo() == l2.bbo() == (None, None, None, None)


def test_wrong_object_is_refused_by_the_l3_entry_points(consumer: ModuleType) -> None:
    twin = importlib.import_module("fastbook._pyl3").OrderBook(price_decimals=2)
    for wrong in (object(), None, twin, fb.Book(price_decimals=2, qty_decimals=0)):
        with pytest.raises(TypeError, match=r"expected fastbook\.OrderBook"):
            consumer.l3_orders(wrong)
