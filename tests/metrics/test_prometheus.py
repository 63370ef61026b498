"""serve_prometheus: a real scrape on 127.0.0.1 of the driver's stats (issue 18 item 7)."""

from __future__ import annotations

import itertools
import urllib.request

import numpy as np
import pytest

from fastbook import metrics

pc = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(fams, name, **labels):
    for fam in fams.values():
        for s in fam:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError((name, labels))


def driver_stats(hist):
    return {
        "venues": {"binance-spot": {"state": "live", "connections": 1, "reconnects": 2,
                                    "messages": 123, "bytes": 45678, "errors": 0,
                                    "future_key": {"nested": True}}},
        "books": {("binance-spot", "BTCUSDT"): {
            "state": "resyncing", "messages": 100, "applied": 99, "gaps": 1, "resyncs": 1,
            "errors": 0, "conflated": 3, "age_ms": 12.5, "unknown": "x",
            "latency": {"exchange_to_receive": hist.to_dict(buckets=True),
                        "receive_to_applied": hist,
                        "applied_to_consumer": hist.to_dict()}}},
        "consumers": [{"name": "strategy", "queue": 4, "capacity": 1024, "conflated": 7},
                      "not a mapping"],
        "added_later": [1, 2, 3],
    }


def test_a_scrape_exposes_counters_states_percentiles_and_buckets():
    hist = metrics.LatencyHistogram()
    values = np.concatenate([np.full(90, 1_500), np.full(10, 3_000_000)]).astype(np.int64)
    hist.record_many(values)
    calls = []

    def stats():
        calls.append(1)
        return driver_stats(hist)

    with metrics.serve_prometheus(stats, 0) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/metrics"
        fams = scrape(server.url)
        assert len(calls) == 1
        book = {"venue": "binance-spot", "symbol": "BTCUSDT"}
        assert value(fams, "fastbook_venue_messages_total", venue="binance-spot") == 123
        assert value(fams, "fastbook_venue_reconnects_total", venue="binance-spot") == 2
        assert value(fams, "fastbook_venue_connections", venue="binance-spot") == 1
        assert value(fams, "fastbook_book_gaps_total", **book) == 1
        assert value(fams, "fastbook_book_conflated_total", **book) == 3
        assert value(fams, "fastbook_book_age_seconds", **book) == pytest.approx(0.0125)
        states = {s: value(fams, "fastbook_book_state", state=s, **book)
                  for s in metrics.BOOK_STATES}
        assert states == {s: float(s == "resyncing") for s in metrics.BOOK_STATES}
        for kind in ("exchange_to_receive", "receive_to_applied", "applied_to_consumer"):
            lat = {**book, "kind": kind}
            p50 = value(fams, "fastbook_latency_quantile_seconds", quantile="0.5", **lat)
            p99 = value(fams, "fastbook_latency_quantile_seconds", quantile="0.99", **lat)
            assert p50 == pytest.approx(1.5e-6, rel=0.01)
            assert p99 == pytest.approx(3e-3, rel=0.01)
            assert value(fams, "fastbook_latency_max_seconds", **lat) == 3e-3
        # classic buckets only where the histogram's buckets were given
        lat = {**book, "kind": "exchange_to_receive"}
        assert value(fams, "fastbook_latency_seconds_bucket", le="1e-06", **lat) == 0
        assert value(fams, "fastbook_latency_seconds_bucket", le="2e-06", **lat) == 90
        assert value(fams, "fastbook_latency_seconds_bucket", le="0.002", **lat) == 90
        assert value(fams, "fastbook_latency_seconds_bucket", le="0.005", **lat) == 100
        assert value(fams, "fastbook_latency_seconds_bucket", le="+Inf", **lat) == 100
        assert value(fams, "fastbook_latency_seconds_count", **lat) == 100
        assert value(fams, "fastbook_latency_seconds_sum", **lat) == pytest.approx(
            values.sum() / 1e9)
        assert value(fams, "fastbook_latency_seconds_count", kind="receive_to_applied") == 100
        with pytest.raises(KeyError):
            value(fams, "fastbook_latency_seconds_count", kind="applied_to_consumer")
        assert value(fams, "fastbook_consumer_queue", consumer="strategy") == 4
        assert value(fams, "fastbook_consumer_conflated_total", consumer="strategy") == 7
        assert value(fams, "fastbook_stats_errors_total") == 0
        # a private registry: no process or python_gc metrics unless asked
        assert not any(n.startswith(("process_", "python_")) for n in fams)
        scrape(server.url)
        assert len(calls) == 2
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=5)
    server.close()  # idempotent


def test_a_failing_or_malformed_stats_never_fails_the_scrape():
    answers = iter([RuntimeError("driver gone"), "not a mapping",
                    {"venues": [], "books": {"bad-key": {"state": 7, "messages": "x",
                                                         "latency": {"k": 5}}}}])

    def stats():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    with metrics.serve_prometheus(stats, 0) as server:
        assert value(scrape(server.url), "fastbook_stats_errors_total") == 1
        assert value(scrape(server.url), "fastbook_stats_errors_total") == 2
        fams = scrape(server.url)
        assert value(fams, "fastbook_stats_errors_total") == 2
        with pytest.raises(KeyError):
            value(fams, "fastbook_book_messages_total")


def test_process_metrics_on_request():
    with metrics.serve_prometheus(lambda: {}, 0, process_metrics=True) as server:
        fams = scrape(server.url)
    assert any(n.startswith("python_info") or n.startswith("process_") for n in fams)


def test_cumulative_buckets_from_histogram_and_dict_agree():
    h = metrics.LatencyHistogram()
    h.record_many(np.random.default_rng(1).lognormal(10, 2, 5000).astype(np.int64))
    a = metrics.cumulative_buckets(h)
    b = metrics.cumulative_buckets(h.to_dict(buckets=True))
    assert a == b and a is not None
    assert a[-1][1] == 5000
    assert all(x[1] <= y[1] for x, y in itertools.pairwise(a))
    assert metrics.cumulative_buckets(h.to_dict()) is None


def test_missing_prometheus_client_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("prometheus_client"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"fastbook-lob\[metrics\]"):
        metrics.serve_prometheus(lambda: {}, 0)
