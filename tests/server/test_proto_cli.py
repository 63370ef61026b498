"""The published ``fastbook.proto`` is what the server speaks, and the two commands work."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.conftest import COINBASE, NAMES

PROTO = Path(__file__).resolve().parents[2] / "src" / "fastbook" / "server" / "fastbook.proto"


def test_the_descriptor_built_at_import_is_protocs_compile_of_fastbook_proto(tmp_path):
    pytest.importorskip("google.protobuf")
    protoc = pytest.importorskip("grpc_tools.protoc")
    import grpc_tools
    from google.protobuf import descriptor_pb2

    from fastbook.server._proto import file_descriptor_proto

    if not PROTO.exists():
        pytest.skip("fastbook.proto is not beside the sources")
    include = Path(grpc_tools.__file__).parent / "_proto"
    out = tmp_path / "fastbook.pb"
    rc = protoc.main(["protoc", f"-I{PROTO.parents[2]}", f"-I{include}",
                      f"--descriptor_set_out={out}", str(PROTO)])
    assert rc == 0
    (compiled,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    assert compiled == file_descriptor_proto()


FASTBOOK = [sys.executable, "-m", "fastbook"]


def test_serve_a_replay_and_print_its_quotes(capsys):
    from fastbook.cli import main

    # replayed over and over (10x real time): a single fast pass can end before the
    # client subscribes, and --count 2 would then wait for a second quote that never comes
    proc = subprocess.Popen([*FASTBOOK, "serve", *NAMES[:2], "--replay", str(COINBASE),
                             "--speed", "10", "--repeat", "0", "--ws-port", "0",
                             "--grpc-port", "0", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        assert ports["instruments"] == NAMES[:2]
        for args in ([f"127.0.0.1:{ports['ws']}"], [f"127.0.0.1:{ports['grpc']}", "--grpc"]):
            assert main(["quotes", *args, NAMES[0], "--count", "2"]) == 0
            lines = capsys.readouterr().out.splitlines()
            assert len(lines) == 2 and all(line.startswith(f"{NAMES[0]} seq ") for line in lines)
            assert main(["quotes", *args, NAMES[1], "--snapshot", "--json"]) == 0
            q = json.loads(capsys.readouterr().out)
            assert q["instrument"] == NAMES[1] and q["price_scale"] == 8
            assert main(["quotes", *args, "coinbase-exchange:NOPE"]) == 2
            assert "unknown instrument 'coinbase-exchange:NOPE'" in capsys.readouterr().err
        proc.send_signal(signal.SIGTERM)            # stops cleanly, with its stats
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    stats = json.loads(out.decode().splitlines()[-1])
    assert stats["source"]["messages"] > 0 and stats["ws"]["refused"] == {"4404": 1}
    assert stats["grpc"]["refused"] == {"NOT_FOUND": 1}


@pytest.mark.parametrize(("args", "words"), [
    (["serve", "coinbase-exchange:A", "--replay", "/nonexistent/x.gz"], "does not exist"),
    (["serve", "x:A", "y:B", "--replay", str(COINBASE)], "one venue"),
    (["serve", "nocolon", "--replay", str(COINBASE)], "not VENUE:SYMBOL"),
    (["serve", "coinbase-exchange:A", "--replay", str(COINBASE), "--ws-port", "70000"],
     "not a port number"),
    (["quotes", "nohostport", "x:A"], "not HOST:PORT"),
    (["quotes", "127.0.0.1:1", "x:A", "--count", "0"], "--count"),
])
def test_usage_errors_exit_2_with_the_reason(args, words, capsys):
    from fastbook.cli import main

    assert main(args) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("grpc", [False, True])
def test_quotes_from_a_server_that_is_not_there_exit_1(grpc, capsys):
    from fastbook.cli import main

    if grpc:
        pytest.importorskip("grpc")
    assert main(["quotes", "127.0.0.1:1", "x:A", *(["--grpc"] if grpc else [])]) == 1
    assert "cannot reach 127.0.0.1:1" in capsys.readouterr().err
