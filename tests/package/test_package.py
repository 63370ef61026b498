"""Package-level promises: which core is loaded, the public names, no hidden allocation."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import fastbook
from tests.helpers.impls import NO_EXTENSIONS as NO_EXT


def run_python(code: str, **env: str) -> str:
    full_env = {k: v for k, v in os.environ.items() if k != "FASTBOOK_NO_EXTENSIONS"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.skipif(NO_EXT, reason="this run tests the twin on purpose")
def test_compiled_core_is_the_default():
    assert fastbook.COMPILED is True
    assert fastbook.Book.__module__ == "fastbook._core"
    assert fastbook.parse_decimal.__module__ == "fastbook._core"
    # and in a fresh interpreter with a clean environment
    out = run_python("import fastbook; print(fastbook.COMPILED, fastbook.Book.__module__)")
    assert out == "True fastbook._core"


def test_env_switch_selects_the_twin():
    out = run_python(
        "import fastbook; print(fastbook.COMPILED, fastbook.Book.__module__)",
        FASTBOOK_NO_EXTENSIONS="1",
    )
    assert out == "False fastbook._pycore"


def test_missing_build_warns_and_falls_back_to_the_twins():
    # a build without a C compiler: the compiled modules cannot be imported
    code = """
import importlib.abc, sys, warnings

class NoExtensions(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in ("fastbook._core", "fastbook._l3"):
            raise ImportError(f"no module named {name!r} (simulated)")
        return None

sys.meta_path.insert(0, NoExtensions())
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastbook
    from fastbook import _select, l3
print(fastbook.COMPILED, l3.COMPILED, _select.compiled("_core"), _select.compiled("_l3"))
print(fastbook.Book.__module__, l3.OrderBook.__module__, l3.BookSet.__module__)
print(sorted({(w.category.__name__, str(w.message).split(" (")[0]) for w in caught}))
"""
    lines = run_python(code).splitlines()
    assert lines[0] == "False False False False"
    assert lines[1] == "fastbook._pycore fastbook._pyl3 fastbook._pyl3"
    assert lines[2] == str(sorted({
        ("RuntimeWarning", "fastbook: the compiled core could not be imported"),
        ("RuntimeWarning", "fastbook: the compiled L3 book could not be imported"),
    }))


def test_compiled_is_what_the_selector_chose():
    from fastbook import _select, l3

    assert fastbook.COMPILED is _select.compiled("_core") is _select.compiled()
    assert l3.COMPILED is _select.compiled("_l3")
    # each module's own constant says only what that module is
    assert fastbook.COMPILED is (fastbook.Book.__module__ == "fastbook._core")
    assert _select.no_extensions() is NO_EXT
    with pytest.raises(KeyError, match=r"has not chosen fastbook\.nope \(or its twin\) yet"):
        _select.compiled("nope")


def test_public_names():
    for name in fastbook.__all__:
        assert hasattr(fastbook, name), name
    assert fastbook.BID == 1 and fastbook.ASK == 2
    assert fastbook.__version__


def test_package_ships_typing_and_cython_headers():
    from importlib import resources

    files = {p.name for p in resources.files("fastbook").iterdir()}
    assert {"py.typed", "_core.pyi", "_l3.pyi", "_core.pxd", "_l3.pxd", "__init__.pxd"} <= files
    codecs = {p.name for p in resources.files("fastbook.codecs").iterdir()}
    assert {"_l2json.pyi", "_checksum.pyi", "_itch50.pyi", "_ose.pyi"} <= codecs


def test_codecs_package_is_importable():
    from fastbook import codecs

    names = codecs.available()
    # sorted; the venues' L2 feeds and the byte-stream decoders the README names, each
    # loadable and of its kind
    assert names == sorted(names)
    assert set(names) == set(codecs.L2_FEEDS) | {"itch50", "ose_itch", "jpx_csv"}
    for name in names:
        assert codecs.load(name) is not None
        assert codecs.kind(name) == ("l2" if name in codecs.L2_FEEDS else "stream")
    with pytest.raises(ValueError, match="unknown codec 'nope'"):
        codecs.load("nope")


@pytest.mark.skipif(NO_EXT, reason="allocation-free reads are a property of the compiled core")
def test_hot_reads_allocate_nothing():
    book = fastbook.Book(price_decimals=2, qty_decimals=3, capacity=64)
    for i in range(50):
        book.set(fastbook.BID, 10_000 - i, 1 + i)
        book.set(fastbook.ASK, 10_001 + i, 1 + i)
    out = np.empty((4, 10), dtype=np.int64)
    book.top(10, out=out)  # warm up
    book.set(fastbook.BID, 9_990, 77)
    def hot_reads():
        book.top(10, out=out)
        book.top(10, out)
        book.set(fastbook.BID, 9_990, 78)   # updates within capacity
        book.set(fastbook.BID, 9_990, 77)
        book.set(fastbook.BID, 9_989, 0)
        book.set(fastbook.BID, 9_989, 3)

    def nothing():
        pass

    def peak_growth(body):
        steps = itertools.repeat(None, 1000)  # a range would allocate ints above 256
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()
            for _ in steps:
                body()
            end = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return end[1] - base[0]

    hot_reads()
    # the measuring calls allocate their own result tuples; an empty body shows how much
    assert peak_growth(hot_reads) == peak_growth(nothing)
    assert out[0, 0] == 10_000 and out[1, 0] == 1


def test_demo_runs_on_built_in_data():
    out = subprocess.run(
        [sys.executable, "-m", "fastbook", "demo", "--messages", "30000", "--symbols", "4",
         "--verify", "4000"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "30,000 messages" in out and "M msgs/s" in out
    assert "4 books" in out and "best bid" in out and "best ask" in out
    assert "verified against the pure-Python decoder and books: OK" in out


def test_l2_demo_runs_on_built_in_data():
    out = subprocess.run(
        [sys.executable, "-m", "fastbook", "demo", "--l2", "--updates", "20000"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "updates/s" in out
    assert "best bid" in out and "best ask" in out
    assert "verified against the pure-Python reference: OK" in out


@pytest.mark.skipif(NO_EXT, reason="compares the compiled classes with the twin")
@pytest.mark.parametrize("compiled, twin", [
    ("fastbook._core.Book", "fastbook._pycore.Book"),
    ("fastbook._l3.OrderBook", "fastbook._pyl3.OrderBook"),
    ("fastbook._l3.BookSet", "fastbook._pyl3.BookSet"),
    ("fastbook.codecs._l2json.Scanner", "fastbook.codecs._pyl2json.Scanner"),
])
def test_compiled_methods_keep_the_twins_signatures(compiled, twin):
    # The per-call methods are plain (non-binding) methods for speed; inspect.signature
    # must still read them, and every method must take what the twin takes.
    import importlib
    import inspect

    def load(dotted):
        module, name = dotted.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    def params(fn):     # all but self (positional-only in a plain method's signature)
        return [(p.name, p.kind, p.default)
                for p in list(inspect.signature(fn).parameters.values())[1:]]

    fast, slow = load(compiled), load(twin)
    names = [n for n, v in vars(fast).items() if not n.startswith("_") and callable(v)]
    assert len(names) >= 4
    for name in names:
        assert params(getattr(fast, name)) == params(getattr(slow, name)), name


@pytest.mark.skipif(NO_EXT, reason="compares the compiled kernels with the twins")
@pytest.mark.parametrize("compiled, twin, names", [
    ("fastbook.codecs._itch50", "fastbook.codecs._pyitch50", ["decode_chunk"]),
    ("fastbook.codecs._ose", "fastbook.codecs._pyose", ["decode_chunk"]),
    ("fastbook.codecs._checksum", "fastbook.codecs._pychecksum",
     ["crc32", "kraken_text", "kraken_checksum", "okx_text", "okx_checksum", "truncate",
      "parse_levels", "set_levels"]),
])
def test_compiled_kernels_keep_the_twins_signatures(compiled, twin, names):
    # the codec kernels' module-level entry points: the same names, kinds (positional-only
    # data, keyword-only options) and defaults in both
    import importlib
    import inspect

    def params(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    fast, slow = importlib.import_module(compiled), importlib.import_module(twin)
    assert fast.COMPILED
    for name in names:
        assert params(getattr(fast, name)) == params(getattr(slow, name)), name


def test_codec_entry_points_take_their_data_positionally():
    # msgspec's shape: the data positional-only, options keyword-only
    import inspect

    from fastbook.codecs import binance, bybit, coinbase, itch50, jpx_csv, kraken, okx, ose_itch
    from fastbook.codecs._l2feed import L2Feed

    def kinds(fn):
        return [(p.name, p.kind.name) for p in list(inspect.signature(fn).parameters.values())[1:]]

    pos = "POSITIONAL_ONLY"
    feeds = [L2Feed] + [v for m in (binance, bybit, coinbase, kraken, okx)
                        for v in vars(m).values() if isinstance(v, type)
                        and issubclass(v, L2Feed) and v.__module__ == m.__name__]
    assert len(feeds) >= 9
    for cls in feeds:
        want = [("message", pos), ("recv_ns", pos)]
        if cls is coinbase.CoinbaseAdvanced:
            want.append(("connection", "KEYWORD_ONLY"))
        assert kinds(cls.feed) == want, cls
        assert kinds(cls.snapshot) == [("native", pos), *want[:2]], cls
    for dec in (itch50.Decoder, ose_itch.Decoder, jpx_csv.Decoder):
        assert kinds(dec.feed) == [("chunk", pos)], dec
    with pytest.raises(TypeError, match="positional"):
        coinbase.CoinbaseAdvanced().feed(message=b"{}")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional"):
        coinbase.CoinbaseAdvanced().feed(b"{}", 0, 1)  # type: ignore[misc]
