"""Server processes the harness starts and stops: ``lendgate serve`` and the echo server.

Both log ``{"msg": "serving", "address": ...}`` on stderr once bound; stderr goes to a
file (a pipe nobody reads would eventually block the server) that is polled for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

START_TIMEOUT_S = 30.0


class StartError(Exception):
    """A server process did not report that it was serving; the message says why."""


@dataclass
class ServerProcess:
    """A started server process, the address it bound and its log file."""

    process: subprocess.Popen[bytes]
    address: str
    workdir: tempfile.TemporaryDirectory[str]

    def stop(self) -> None:
        """SIGTERM the process, kill it if it lingers, and remove its directory."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.workdir.cleanup()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _start(args: list[str], workdir: tempfile.TemporaryDirectory[str]) -> ServerProcess:
    log_path = Path(workdir.name) / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == "serving":
                return ServerProcess(process, str(entry["address"]), workdir)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
    workdir.cleanup()
    raise StartError(f"{args[1]} did not start: {tail[0] if tail else 'no output'}")


def start_lendgate() -> ServerProcess:
    """``lendgate serve`` on a free loopback port, embedded storage in a temporary dir."""
    workdir = tempfile.TemporaryDirectory(prefix="lendgate-bench-")
    data_dir = str(Path(workdir.name) / "var")
    args = ["-m", "lendgate.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir]
    return _start(args, workdir)


def start_echo(delay_ms: float = 0.0, code: str = "OK") -> ServerProcess:
    """The echo server (:mod:`bench.echo_server`) on a free loopback port."""
    workdir = tempfile.TemporaryDirectory(prefix="lendgate-echo-")
    args = ["-m", "bench.echo_server", "--delay-ms", str(delay_ms), "--code", code]
    return _start(args, workdir)
