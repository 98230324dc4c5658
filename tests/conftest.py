"""Shared fixtures: the real ``lendgate serve`` process on an ephemeral loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Before grpc is imported: the scoring service forks its snapshot captures (lendgate's
# own import sets the same default when it comes first).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc
import pytest

START_TIMEOUT_S = 30.0


@dataclass
class ServerProcess:
    """A ``lendgate serve`` child process and the address it reported."""

    process: subprocess.Popen[str]
    address: str
    data_dir: Path
    log_lines: list[str]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any LENDGATE_* setting of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LENDGATE_")}
    env.update(extra)
    return env


def start_server(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start ``lendgate serve`` on port 0 and wait for its "serving" log line."""
    cmd = [sys.executable, "-m", "lendgate.cli", "serve", "--listen", "127.0.0.1:0"]
    cmd += ["--data-dir", str(data_dir), *args]
    process = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env or clean_env()
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        entry = json.loads(line)
        if entry.get("msg") == "serving":
            return ServerProcess(process, entry["address"], data_dir, lines)
    process.kill()
    process.wait()
    raise AssertionError("lendgate serve did not start:\n" + "".join(lines))


def stop_server(server: ServerProcess) -> int:
    """SIGTERM the server and return its exit code."""
    server.process.terminate()
    try:
        return server.process.wait(timeout=20)
    finally:
        if server.process.poll() is None:
            server.process.kill()
        assert server.process.stderr is not None
        server.process.stderr.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the whole session, on an ephemeral loopback port."""
    running = start_server(tmp_path_factory.mktemp("var"))
    yield running
    stop_server(running)


@pytest.fixture
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    """A plaintext channel to the session's server."""
    with grpc.insecure_channel(server.address) as chan:
        grpc.channel_ready_future(chan).result(timeout=10)
        yield chan
