"""LatencyHistogram: 1% percentiles, exact counts, compiled and twin agree (issue 18 item 7)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbook import _hist, _pyhist

MODULES = [pytest.param(_hist, id="compiled"), pytest.param(_pyhist, id="twin")]
QS = (0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0)


def exact(values: np.ndarray, q: float) -> int:
    """Nearest-rank percentile of the non-negative values."""
    s = np.sort(values)
    rank = min(max(math.ceil(q * float(s.size) / 100.0), 1), s.size)
    return int(s[rank - 1])


def check_within_1pct(h, values: np.ndarray) -> None:
    for q in QS:
        want = exact(values, q)
        got = h.percentile(q)
        assert abs(got - want) <= 0.01 * want, (q, got, want)


@pytest.mark.parametrize("mod", MODULES)
def test_layout_is_the_same_and_buckets_are_within_1pct(mod):
    assert mod.NBUCKETS == _hist.NBUCKETS == _pyhist.NBUCKETS == 4864
    assert mod.LIMIT == 1 << 44
    for i in range(mod.NBUCKETS):
        lo, hi = mod.bucket_low(i), mod.bucket_high(i)
        assert mod.bucket_index(lo) == i and mod.bucket_index(hi) == i
        if i + 1 < mod.NBUCKETS:
            assert mod.bucket_low(i + 1) == hi + 1
        assert hi - lo <= lo / 128
    assert mod.bucket_high(mod.NBUCKETS - 1) == mod.LIMIT - 1
    with pytest.raises(ValueError, match="negative"):
        mod.bucket_index(-1)
    with pytest.raises(IndexError):
        mod.bucket_low(mod.NBUCKETS)


@pytest.mark.parametrize("mod", MODULES)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mu=st.floats(3.0, 20.0), sigma=st.floats(0.1, 3.0),
       n=st.integers(1, 3000))
def test_lognormal_percentiles_within_1pct(mod, seed, mu, sigma, n):
    rng = np.random.default_rng(seed)
    values = np.minimum(rng.lognormal(mu, sigma, n), 2.0**43).astype(np.int64)
    h = mod.LatencyHistogram()
    h.record_many(values)
    check_within_1pct(h, values)
    assert h.count == n and h.min == values.min() and h.max == values.max()


@pytest.mark.parametrize("mod", MODULES)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lo=st.integers(0, 2**40), span=st.integers(1, 2**40),
       n=st.integers(1, 3000))
def test_uniform_percentiles_within_1pct(mod, seed, lo, span, n):
    rng = np.random.default_rng(seed)
    values = rng.integers(lo, lo + span, n, dtype=np.int64)
    h = mod.LatencyHistogram()
    for v in values[: n // 2].tolist():
        h.record(v)
    h.record_many(values[n // 2:])
    check_within_1pct(h, values)
    assert h.mean == pytest.approx(values.astype(np.float64).mean(), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-5, 2**20),
                                 st.integers(2**43, 2**45)), max_size=300),
       split=st.integers(0, 300))
def test_compiled_and_twin_agree_exactly(values, split):
    arr = np.array(values, dtype=np.int64)
    hs = []
    for mod in (_hist, _pyhist):
        a, b = mod.LatencyHistogram(), mod.LatencyHistogram()
        a.record_many(arr[:split])
        for v in arr[split:].tolist():
            b.record(v)
        a.merge(b)
        hs.append(a)
    c, t = hs
    assert np.array_equal(c.buckets, t.buckets)
    assert c.to_dict(buckets=True) == t.to_dict(buckets=True)
    assert c.percentiles(QS) == t.percentiles(QS)
    assert c.__getstate__() == t.__getstate__()


@pytest.mark.parametrize("mod", MODULES)
def test_negative_and_overflow_are_counted_not_crashing(mod):
    h = mod.LatencyHistogram()
    h.record_many(np.array([-1, -(2**63), 5, 2**44, 2**63 - 1], dtype=np.int64))
    h.record(-7)
    assert (h.negative, h.count, h.overflow) == (3, 3, 2)
    assert h.min == 5 and h.max == 2**63 - 1
    assert h.buckets[-1] == 2 and h.buckets[5] == 1 and h.buckets.sum() == 3
    assert h.percentile(100) == 2**63 - 1 and h.percentile(0) == 5
    d = h.to_dict()
    assert set(d) >= {"count", "min", "max", "mean", "p50", "p95", "p99", "p999",
                      "negative", "overflow"}
    assert d["negative"] == 3 and d["overflow"] == 2


@pytest.mark.parametrize("mod", MODULES)
def test_empty_reset_copy_pickle_and_errors(mod):
    h = mod.LatencyHistogram()
    assert h.to_dict() == {"count": 0, "min": 0, "max": 0, "mean": 0.0, "p50": 0, "p95": 0,
                           "p99": 0, "p999": 0, "negative": 0, "overflow": 0, "sum": 0.0}
    h.record_many(np.arange(1000, dtype=np.int64))
    c = h.copy()
    p = pickle.loads(pickle.dumps(h))
    assert c == h == p and c is not h
    h.record(1)
    assert c != h and c.count == 1000
    h.merge(h)
    assert h.count == 2002
    h.reset()
    assert h == mod.LatencyHistogram()
    # nearest ranks 500, 950, 990, 999 of 0..999 -> their buckets' midpoints
    assert p.percentiles() == {50.0: 499, 95.0: 950, 99.0: 990, 99.9: 998}
    with pytest.raises(ValueError, match="outside"):
        h.percentile(100.5)
    with pytest.raises(ValueError, match="1-D"):
        h.record_many(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="dtype"):
        h.record_many(np.array([1.5]))
    with pytest.raises(TypeError):
        h.merge(object())
    with pytest.raises(ValueError):
        h.buckets[0] = 1
    with pytest.raises(ValueError, match="buckets"):
        h.__setstate__((b"\0" * 8, 0, 0, 0, 0, 0, 0.0))
