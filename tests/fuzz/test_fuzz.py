"""The fuzz suite's short seeded run: every target, a few hundred inputs, nothing found.

The long run is ``python fuzz/run.py --codec NAME --inputs 1000000`` (docs/fuzzing.md).
Here each target runs in-process with a fixed seed, so a finding is reproducible from
its input number; the runner itself (subprocess, crash kept) is tested on the
self-test targets, whose findings it must report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import harness

ROOT = Path(__file__).resolve().parents[2]

#: Inputs per target in the short run (about a second each, compiled).
SHORT = {"itch50": 300, "ose": 150, "jpx_csv": 200, "lobster": 400, "capture": 80,
         "book": 4000, "consolidated": 3000, "board": 4000, "server": 2000,
         "features": 600, "backtest": 300}


@pytest.mark.parametrize("target", harness.TARGETS)
def test_short_run_finds_nothing(target: str) -> None:
    stats = harness.run(target, SHORT.get(target, 250), seed=2026)
    assert [f.short() for f in stats.findings] == []
    assert stats.inputs == SHORT.get(target, 250)
    # hostile input is refused, and enough of it still decodes to reach deep code
    assert stats.refused > stats.inputs // 5 and stats.accepted > 0, (stats.refused,
                                                                       stats.accepted)


def test_the_checks_can_fail() -> None:
    stats = harness.run("selftest-builtin", 30, seed=1)
    assert [f.kind for f in stats.findings] == ["builtin"] * 3
    assert [f.index for f in stats.findings] == [9, 19, 29]
    assert "KeyError" in stats.findings[0].detail


def test_a_changed_book_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # a feed that changes a book and then refuses the message must be reported
    from fastbook.codecs import _l2feed

    fail = _l2feed.L2Feed._fail

    def spoil(self, err, s=None):  # type: ignore[no-untyped-def]
        for sym in self.symbols:
            self.book(sym).set(1, 1, 1)
        return fail(self, err, s)

    monkeypatch.setattr(_l2feed.L2Feed, "_fail", spoil)
    stats = harness.run("binance-spot", 40, seed=1)
    assert stats.findings and {f.kind for f in stats.findings} >= {"changed"}


def test_a_live_book_changed_by_a_refused_frame_is_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fastbook.codecs import _l2feed

    fail = _l2feed.L2Feed._fail

    def spoil(self, err, s=None):  # type: ignore[no-untyped-def]
        for sym in self.symbols:
            if self.is_synced(sym):
                self.book(sym).set(1, 1, 1)
        return fail(self, err, s)

    monkeypatch.setattr(_l2feed.L2Feed, "_fail", spoil)
    stats = harness.run("live-okx", 60, seed=1)
    assert "a refused frame changed live" in " ".join(f.detail for f in stats.findings)


def test_a_live_book_that_differs_from_the_plain_codec_is_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fastbook.live import _session

    applied = _session.Session._applied

    def skew(self, t, s, recv_ns):  # type: ignore[no-untyped-def]
        s.book.set(1, s.book.bbo()[0] or 1, 7)          # one more unit at the best bid
        return applied(self, t, s, recv_ns)

    monkeypatch.setattr(_session.Session, "_applied", skew)
    stats = harness.run("live-bybit", 60, seed=1)
    assert "differs from the plain codec" in " ".join(f.detail for f in stats.findings)


def test_runner_keeps_the_input_of_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "found"
    figures = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "run.py"), "--codec", "selftest-crash",
         "--inputs", "20", "--seed", "3", "--out", str(out), "--json", str(figures)],
        capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 1, proc.stderr[-2000:]
    # killed by SIGSEGV (-11); under AddressSanitizer (the CI's sanitizer pass) its SEGV
    # handler reports the crash and exits with status 1 instead
    sanitized = "AddressSanitizer" in proc.stderr
    status = "1" if sanitized else "-11"
    assert f"selftest-crash #5 crash: the worker exited with status {status}\n" in proc.stdout
    (result,) = json.loads(figures.read_text())
    assert result["crashes"] == 1 and result["inputs"] == 20
    kept = (out / "crash-selftest-crash-3-5.bin").read_bytes()
    assert kept.startswith(b"selftest-5-") and len(kept) == len(b"selftest-5-") + 8


def test_runner_continues_a_run_from_start(tmp_path: Path) -> None:
    """--start N runs inputs N.. of the seed: a run continued after input 5 never meets the
    crash of input 5, and one started before it does, at the same number."""
    def run(start: int) -> tuple[int, dict]:
        figures = tmp_path / f"figures-{start}.json"
        proc = subprocess.run(
            [sys.executable, str(ROOT / "fuzz" / "run.py"), "--codec", "selftest-crash",
             "--inputs", "10", "--seed", "3", "--start", str(start), "--out",
             str(tmp_path / "found"), "--json", str(figures)],
            capture_output=True, text=True, timeout=120, cwd=str(ROOT))
        (result,) = json.loads(figures.read_text())
        return proc.returncode, result

    rc, after = run(6)
    assert rc == 0 and after["crashes"] == 0 and after["inputs"] == 10 and after["start"] == 6
    rc, before = run(2)
    assert rc == 1 and before["crashes"] == 1 and before["inputs"] == 10
    assert (tmp_path / "found" / "crash-selftest-crash-3-5.bin").exists()


def test_runner_lists_targets() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "fuzz" / "run.py"), "--list"],
                          capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert proc.returncode == 0 and proc.stdout.split() == list(harness.TARGETS)


def test_a_board_that_differs_from_its_twin_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # a twin that publishes one unit more at the best bid than it was given
    from fastbook import _pyboard

    store = _pyboard.Board._store

    def skew(self, s, state, ts_ns, bp, bq, nb, ap, aq, na):  # type: ignore[no-untyped-def]
        return store(self, s, state, ts_ns, bp, bq + 1, nb, ap, aq, na)

    monkeypatch.setattr(_pyboard.Board, "_store", skew)
    stats = harness.run("board", 200, seed=1)
    assert "disagree" in {f.kind for f in stats.findings}


def test_a_server_request_escaping_as_a_builtin_is_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the parser as it was before the fix: a deep request escaped as RecursionError
    from fastbook.server import _ws

    def parse(self, raw):  # type: ignore[no-untyped-def]
        import json

        return json.loads(raw) if isinstance(raw, str) and raw.startswith("[[[[") else \
            parse_before(self, raw)

    parse_before = _ws.WsEndpoint._parse
    monkeypatch.setattr(_ws.WsEndpoint, "_parse", parse)
    stats = harness.run("server", 400, seed=1)
    assert any(f.kind == "builtin" and "RecursionError" in f.detail for f in stats.findings)
