"""The ``fastbook`` command line as a newcomer meets it (issue 26, items 7 and 8): real
subprocesses and pipes for stdin, ``| head`` and the files ``fastbook synth`` writes."""

from __future__ import annotations

import argparse
import gzip
import io
import subprocess
import sys

import pytest

from fastbook import capture, codecs, synth
from fastbook.cli import build_parser, main
from fastbook.driver import display_name
from tests.helpers import DATA

CF = DATA / "l2" / "cryptofeed"
KRAKEN = CF / "KRAKEN.ws.50.0.gz"
FASTBOOK = [sys.executable, "-m", "fastbook"]


def run(*args, stdin=None, check=True):  # type: ignore[no-untyped-def]
    return subprocess.run([*FASTBOOK, *map(str, args)], capture_output=True, stdin=stdin,
                          check=check)


def text(proc) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    return proc.stdout.decode(), proc.stderr.decode()


@pytest.fixture(scope="module")
def day_file(tmp_path_factory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("cli") / "day.itch"
    out, err = text(run("synth", "itch50", "--messages", 20_000, "--symbols", 4, "--seed", 5,
                        "-o", path))
    assert err == "" and f"to {path} (" in out and "next: fastbook info" in out
    return path


# -- synth -----------------------------------------------------------------------------------

def test_synth_writes_the_generators_day(day_file, tmp_path):
    assert day_file.read_bytes() == synth.itch_day(20_000, n_symbols=4, seed=5)
    out, _ = text(run("replay", day_file, "--top", 0, "--no-progress"))
    assert "20,000 messages" in out and "4 books" in out
    ose = tmp_path / "ose.itch"
    run("synth", "ose-itch", "--messages", 5000, "--seed", 3, "-o", ose)
    assert ose.read_bytes() == synth.ose_day(5000, seed=3)
    csv = tmp_path / "ose.csv"
    run("synth", "jpx-csv", "--messages", 5000, "--seed", 3, "-o", csv)
    assert csv.read_bytes() == synth.ose_day(5000, seed=3, form="csv")
    out, _ = text(run("replay", ose, "--codec", "ose-itch", "--top", 0, "--no-progress"))
    assert "17 books" in out
    bad = run("synth", "itch50", "-o", tmp_path / "no" / "day.itch", check=False)
    assert bad.returncode == 1 and "does not exist" in text(bad)[1]


# -- stdin -----------------------------------------------------------------------------------

def test_a_cryptofeed_capture_on_stdin_replays_like_the_file():
    with open(KRAKEN, "rb") as f:     # gzipped, on a real pipe
        piped = subprocess.run(["gzip", "-dc"], stdin=f, capture_output=True, check=True)
    proc = subprocess.run([*FASTBOOK, "replay", "-", "--codec", "kraken-v1", "--top", "0",
                           "--no-progress"], input=piped.stdout, capture_output=True)
    out, err = text(proc)
    assert proc.returncode == 0, err
    direct, _ = text(run("replay", KRAKEN, "--codec", "kraken-v1", "--top", 0, "--no-progress"))
    strip = [line.split(";")[0] for line in out.splitlines()]   # not the timing
    assert strip[1:] == [line.split(";")[0] for line in direct.splitlines()][1:]
    assert "10 books (10 synced at the end)" in out and "checksum_ok 4,269" in out
    # the same gzipped bytes through `cat`
    cat = subprocess.Popen(["cat", str(KRAKEN)], stdout=subprocess.PIPE)
    proc = subprocess.run([*FASTBOOK, "replay", "-", "--codec", "kraken_v1", "--top", "0",
                           "--no-progress"], stdin=cat.stdout, capture_output=True)
    cat.stdout.close()
    cat.wait()
    assert proc.returncode == 0 and "checksum_ok 4,269" in text(proc)[0]


def test_a_fastbook_capture_on_stdin_is_not_decoded_as_itch(tmp_path):
    fbcap = tmp_path / "k.fbcap"
    capture.convert(KRAKEN, fbcap, compression="none", meta={"codec": "kraken-v1"})
    with open(fbcap, "rb") as f:
        proc = run("replay", "-", "--top", 0, "--no-progress", stdin=f, check=False)
    out, err = text(proc)
    assert proc.returncode == 0, err
    assert "10 books (10 synced at the end)" in out
    with open(fbcap, "rb") as f:
        out, err = text(run("info", "-", stdin=f))
    assert out.startswith('<stdin>: fastbook capture {"codec": "kraken-v1"')
    assert "4,323 records" in out
    # without a codec in its header, it asks for one
    bare = tmp_path / "bare.fbcap"
    capture.convert(KRAKEN, bare, compression="none")
    with open(bare, "rb") as f:
        proc = run("replay", "-", stdin=f, check=False)
    assert proc.returncode == 1 and "<stdin> is a capture: name its feed with --codec" in \
        text(proc)[1]


def test_itch_on_stdin_still_replays(day_file):
    with open(day_file, "rb") as f:
        out, err = text(run("replay", "-", "--top", 0, "--no-progress", stdin=f))
    assert "20,000 messages" in out and err == ""
    gz = gzip.compress(day_file.read_bytes())
    proc = subprocess.run([*FASTBOOK, "info", "-"], input=gz, capture_output=True, check=True)
    assert "20,000 messages" in proc.stdout.decode()


# -- | head ----------------------------------------------------------------------------------

def test_no_broken_pipe_traceback(tmp_path):
    day = tmp_path / "wide.itch"
    day.write_bytes(synth.itch_day(6 + 4 * 1500 + 2000, n_symbols=1500, seed=1))
    # 1,500 book lines are more than a pipe holds: `head` leaves while they are written
    proc = subprocess.run(f"'{sys.executable}' -m fastbook replay '{day}' --top 1500 "
                          f"--no-progress | head -n 1", shell=True, capture_output=True)
    assert proc.stdout.decode().count("\n") == 1
    assert proc.stderr.decode() == ""
    # and a reader that is gone before anything is written
    child = subprocess.Popen([*FASTBOOK, "codecs"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()
    err = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait() == 141 and "Traceback" not in err and "BrokenPipe" not in err


# -- one naming style, help, defaults, flags -------------------------------------------------

def test_codecs_lists_every_codec_once_dashed():
    out, _ = text(run("codecs"))
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [w[0] for w in lines] == sorted(
        [display_name(c) for c in codecs.available() if codecs.kind(c) == "stream"]) + sorted(
        [display_name(c) for c in codecs.available() if codecs.kind(c) == "l2"])
    assert all(len(w) > 2 for w in lines)          # each with a description
    assert "ose-itch" in out and "ose_itch" not in out and "jpx-csv" in out


def _actions(parser: argparse.ArgumentParser, path: str = "fastbook"):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_option_has_help_and_codec_help_lists_every_codec():
    missing = [(p, a.dest) for p, a in _actions(build_parser()) if not a.help]
    assert missing == []
    help_text, _ = text(run("replay", "--help"))
    flat = " ".join(help_text.split())
    for name in codecs.available():
        assert display_name(name) in flat.replace("- ", "-")
    assert "ose_itch" not in flat and "(default: 10)" in flat and "(default: 3)" in flat
    assert "(default: None)" not in flat


def test_both_codec_spellings_and_a_clear_unknown(day_file, tmp_path):
    ose = tmp_path / "ose.itch"
    ose.write_bytes(synth.ose_day(5000, seed=4))
    a, _ = text(run("info", ose, "--codec", "ose-itch"))
    b, _ = text(run("info", ose, "--codec", "ose_itch"))
    assert a == b and "17 symbols" in a
    proc = run("replay", day_file, "--codec", "itch-5", check=False)
    assert proc.returncode == 2
    assert "unknown codec 'itch-5'; choose one of" in text(proc)[1] and "ose-itch" in text(proc)[1]


def test_errors_name_flags_not_keywords(day_file, tmp_path):
    for args, flag in ((("--every", "0s"), "--every 0s:"),
                       (("--every", "fortnightly"), "--every fortnightly:"),
                       (("-o", tmp_path / "x.parquet"), "--output needs a sampling rule"),
                       (("--every", "1s", "-o", tmp_path / "x.xlsx"), "cannot tell the output"),
                       (("--symbols", "sym0001"), "(--symbols takes the feed's own")):
        proc = run("replay", day_file, *args, check=False)
        err = text(proc)[1]
        assert proc.returncode == 1 and flag in err, (args, err)
        assert not any(f"{k}=" in err for k in ("every", "output", "symbols")), err
    assert not (tmp_path / "x.parquet").exists()


def test_fractional_every_on_the_command_line(day_file, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "s.parquet"
    run("replay", day_file, "--every", "1.5s", "-o", out, "--no-progress")
    ref = tmp_path / "r.parquet"
    run("replay", day_file, "--every", "1500ms", "-o", ref, "--no-progress")
    assert pq.read_table(out).num_rows == pq.read_table(ref).num_rows > 0
    assert pq.read_table(out).column("ts").equals(pq.read_table(ref).column("ts"))


def test_info_draws_a_progress_line_like_replay(day_file, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for command in ("info", "replay"):
        term = Terminal()
        monkeypatch.setattr(sys, "stderr", term)
        assert main([command, str(day_file), "--top", "0"][:2 if command == "info" else 4]) == 0
        assert "msgs/s" in term.getvalue() and term.getvalue().startswith("\r"), command
        term = Terminal()
        monkeypatch.setattr(sys, "stderr", term)
        assert main([command, str(day_file), "--no-progress"]) == 0
        assert term.getvalue() == ""
    capsys.readouterr()


def test_info_on_captures_draws_a_progress_line_too(monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["info", str(KRAKEN)]) == 0
    assert "records/s" in term.getvalue() and term.getvalue().startswith("\r")
    assert "records, " in capsys.readouterr().out
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["info", str(KRAKEN), "--no-progress"]) == 0
    assert term.getvalue() == ""
    capsys.readouterr()


def test_l2_sync_problems_reach_the_command_line():
    proc = run("replay", CF / "BINANCE_FUTURES.ws.1.0.gz", CF / "BINANCE_FUTURES.http.0.0.gz",
               "--codec", "binance-spot", "--top", 0, "--no-progress")
    out = text(proc)[0]
    assert "warning: the captures were recorded from wss://fstream.binance.com/" in out
    assert "try --codec binance-usdm" in out
    out = text(run("replay", CF / "BINANCE.ws.1.0.gz", "--codec", "binance-spot", "--top", 0,
                   "--no-progress"))[0]
    assert "never synced" in out and "add the `*.http.*` capture" in out


def test_the_first_session_in_the_docs_prints_what_it_says(tmp_path):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "command-line.md").read_text()
    section = doc[doc.index("## A first session"):]
    commands, printed = re.findall(r"^```\n(.*?)^```\n", section, flags=re.S | re.M)[:2]
    import os

    import fastbook

    # run in an empty directory, with this fastbook (PYTHONPATH may be relative)
    env = dict(os.environ, PYTHONPATH=str(Path(fastbook.__file__).resolve().parents[1]))
    outputs = [subprocess.run([*FASTBOOK, *line.split()[1:], "--no-progress"]
                              if line.split()[1] in ("info", "replay")
                              else [*FASTBOOK, *line.split()[1:]],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=True).stdout
               for line in commands.splitlines()]
    timing = re.compile(r" in [\d.]+ s: [\d.]+ M msgs/s$")
    assert [timing.sub("", x) for x in outputs[-1].splitlines()] == \
        [timing.sub("", x) for x in printed.splitlines()]


# -- output columns --------------------------------------------------------------------------

def test_replay_output_column_options(day_file, tmp_path):
    # the flags are fb.replay's output options: floats at each instrument's scale,
    # datetimes on the given trading date, NaN for missing levels, reason names
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import datetime

    import fastbook as fb

    out = tmp_path / "top.parquet"
    run("replay", day_file, "--every", "bbo", "--depth", 2, "-o", out, "--no-progress",
        "--top", 0, "--prices", "float", "--timestamps", "datetime", "--date", "2024-06-07",
        "--missing", "nan", "--reason", "names")
    got = pd.read_parquet(out)
    want = fb.replay(day_file.read_bytes(), "itch50", every="bbo", depth=2, prices="float",
                     timestamps="datetime", date=datetime.date(2024, 6, 7), missing="nan",
                     reason="names").to_pandas()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                  check_categorical=False)
    assert str(got["ts"].dt.date.iloc[0]) == "2024-06-07"
    assert got["bid_px_1"].dtype == "float64" and set(got["reason"].unique()) <= {"bbo"}
    # a datetime column needs the date of a feed timed from midnight: said in flags
    bad = run("replay", day_file, "--every", "bbo", "-o", tmp_path / "x.parquet",
              "--timestamps", "datetime", "--no-progress", check=False)
    assert bad.returncode == 1
    assert "--timestamps datetime" in text(bad)[1] and "pass --date YYYY-MM-DD" in text(bad)[1]
