"""An independent check of the Python generator: native tools against the echo server.

``.venv/bin/python -m bench.crosscheck [--seconds 5]`` measures the echo server's
maximum rate in one run with h2load (nghttp2's HTTP/2 load tool, sending a gRPC-framed
600-byte message with ``content-type: application/grpc``), with ghz (a gRPC load tool,
``make bench-tools``) when installed, and with this harness's closed-loop
transport-floor measurement, and prints them side by side. If the
Python figure is far below h2load's, the generator, not the server, is the limit.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import harness, processes
from bench.echo_server import METHOD
from bench.scenarios import ECHO_PAYLOAD_BYTES

GHZ = Path(__file__).resolve().parent.parent / ".tools" / "bin" / "ghz"
ECHO_PROTO = Path(__file__).resolve().parent / "echo.proto"
H2LOAD_RATE = re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s")


def _payload() -> bytes:
    return b"\x0a" + bytes([0xD5, 0x04]) + b"x" * (ECHO_PAYLOAD_BYTES - 3)


def ghz_rate(
    address: str, seconds: float, connections: int, concurrency: int
) -> tuple[float, dict[str, int]] | None:
    """OK answers/s ghz gets from the echo method and its errors by code; None when ghz
    is not installed."""
    ghz = str(GHZ) if GHZ.exists() else shutil.which("ghz")
    if ghz is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".bin") as body:
        Path(body.name).write_bytes(_payload())
        cmd = [
            ghz,
            "--insecure",
            f"--proto={ECHO_PROTO}",
            "--call=bench.Echo.Echo",
            f"--binary-file={body.name}",
            f"--duration={seconds:g}s",
            f"--connections={connections}",
            f"--concurrency={concurrency}",
            "--format=json",
            address,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    try:
        report = json.loads(out)
    except ValueError:
        raise harness.HarnessError(f"unexpected ghz output: {out.strip()[-200:]}") from None
    codes: dict[str, int] = report.get("statusCodeDistribution", {})
    # ghz cancels the calls in flight when --duration ends: those are not failures.
    return codes.get("OK", 0) / seconds, {
        k: n for k, n in codes.items() if k not in {"OK", "Canceled"}
    }


def h2load_rate(address: str, seconds: float, clients: int, streams: int) -> tuple[float, str]:
    """Requests/s h2load sustains against the echo method, and its summary line."""
    h2load = shutil.which("h2load")
    if h2load is None:
        raise harness.HarnessError("h2load not found (apt-get install nghttp2-client)")
    payload = _payload()
    frame = b"\x00" + struct.pack(">I", len(payload)) + payload
    with tempfile.NamedTemporaryFile(suffix=".bin") as body:
        Path(body.name).write_bytes(frame)
        cmd = [
            h2load,
            f"--duration={seconds:g}",
            "--warm-up-time=1",
            f"--clients={clients}",
            f"--max-concurrent-streams={streams}",
            "--header=content-type: application/grpc",
            "--header=te: trailers",
            f"--data={body.name}",
            f"http://{address}{METHOD}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    match = H2LOAD_RATE.search(out)
    if match is None:
        raise harness.HarnessError(f"unexpected h2load output: {out.strip()[-200:]}")
    lines = out.splitlines()
    summary = next(line for line in lines if line.startswith("finished in"))
    # h2load does not read grpc-status; the HTTP status line at least shows failures.
    summary += "; " + next((line for line in lines if line.startswith("status codes")), "")
    return float(match.group(1)), summary


def main() -> int:
    """Run both measurements and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    try:
        with processes.start_echo() as echo:
            native, summary = h2load_rate(
                echo.address, args.seconds, args.channels * args.processes, 32
            )
        with processes.start_echo() as echo:
            connections = args.channels * args.processes
            via_ghz = ghz_rate(echo.address, args.seconds, connections, 32 * connections)
        cfg = harness.RunConfig(
            "echo",
            rate=1.0,
            duration_s=1.0,
            processes=args.processes,
            channels=args.channels,
            floor_s=args.seconds,
        )
        ours = harness.transport_floor(cfg)["transport_floor_rps"]
    except (harness.HarnessError, processes.StartError) as exc:
        print(f"crosscheck: {exc}", file=sys.stderr)
        return 2
    print(f"echo server max rate, h2load: {native:.0f}/s  ({summary})")
    if via_ghz is None:
        print("echo server max rate, ghz: not installed (make bench-tools)")
    else:
        print(f"echo server max rate, ghz: {via_ghz[0]:.0f}/s OK, errors {via_ghz[1] or 'none'}")
    print(
        f"echo server max rate, python -m bench ({args.processes} processes x"
        f" {args.channels} channels): {ours:.0f}/s = {ours / native:.0%} of h2load"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
