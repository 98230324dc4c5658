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
from dataclasses import dataclass, field
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
    notes: dict[str, object] = field(default_factory=dict)
    """What starting it took (``start_s``; with a pre-loaded store, ``history_load_s``)."""

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


def _start(
    args: list[str],
    workdir: tempfile.TemporaryDirectory[str],
    start_timeout_s: float = START_TIMEOUT_S,
) -> ServerProcess:
    log_file = Path(workdir.name) / "server.log"
    started = time.monotonic()
    with log_file.open("wb") as log:
        process = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        for line in log_file.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == "serving":
                notes: dict[str, object] = {"start_s": round(time.monotonic() - started, 2)}
                return ServerProcess(process, str(entry["address"]), workdir, notes)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    tail = log_file.read_text(errors="replace").strip().splitlines()[-1:]
    workdir.cleanup()
    raise StartError(f"{args[1]} did not start: {tail[0] if tail else 'no output'}")


def start_lendgate(history_file: Path | None = None) -> ServerProcess:
    """``lendgate serve`` on a free loopback port, embedded storage in a temporary dir;
    with ``history_file`` (a gen-data file), the store is first loaded with
    ``lendgate load-history`` and the server starts on it (restores its snapshot)."""
    workdir = tempfile.TemporaryDirectory(prefix="lendgate-bench-")
    data_dir = str(Path(workdir.name) / "var")
    load_s = None
    if history_file is not None:
        started = time.monotonic()
        command = ["-m", "lendgate.cli", "load-history", str(history_file)]
        loaded = subprocess.run(
            [sys.executable, *command, "--data-dir", data_dir, "--quiet"],
            capture_output=True,
            text=True,
            check=False,
        )
        if loaded.returncode != 0:
            workdir.cleanup()
            raise StartError(f"load-history failed: {loaded.stderr.strip()}")
        load_s = round(time.monotonic() - started, 1)
    args = ["-m", "lendgate.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir]
    server = _start(args, workdir, START_TIMEOUT_S if history_file is None else 600.0)
    if load_s is not None:
        server.notes["history_load_s"] = load_s
    return server


def start_echo(delay_ms: float = 0.0, code: str = "OK") -> ServerProcess:
    """The echo server (:mod:`bench.echo_server`) on a free loopback port."""
    workdir = tempfile.TemporaryDirectory(prefix="lendgate-echo-")
    args = ["-m", "bench.echo_server", "--delay-ms", str(delay_ms), "--code", code]
    return _start(args, workdir)


def serve_existing(data_dir: Path, start_timeout_s: float = 120.0) -> ServerProcess:
    """``lendgate serve`` on a free loopback port over an existing ``data_dir`` (kept
    when the server stops; its log goes to a temporary directory, ``log_path``)."""
    workdir = tempfile.TemporaryDirectory(prefix="lendgate-bench-")
    args = ["-m", "lendgate.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)]
    return _start(args, workdir, start_timeout_s)


def log_path(server: ServerProcess) -> Path:
    """The server's log file (JSON lines), while it has not been stopped."""
    return Path(server.workdir.name) / "server.log"
