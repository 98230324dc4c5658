"""Restart after ``kill -9`` with a tail: serve an existing store, push N new checks over
gRPC, SIGKILL the server, start it again and time it to "serving"::

    .venv/bin/python -m bench.kill_restart_bench --data-dir DIR --checks 30000 --after 2026-09-16

``--after`` is a day after the store's newest event (the pushed checks are dated from it).
Prints both starts' times and the second one's recovery log line (snapshot position,
events replayed, restore and replay seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc

from lendgate.datagen.generator import GenConfig, generate
from lendgate.v1 import scoring_pb2, scoring_pb2_grpc


def start(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """``lendgate serve`` on a random loopback port; (process, port, seconds to serving)."""
    port = 51000 + int.from_bytes(os.urandom(2), "little") % 4000
    cmd = [sys.executable, "-m", "lendgate.cli", "serve", "--listen", f"127.0.0.1:{port}"]
    with log.open("w") as out:
        proc = subprocess.Popen([*cmd, "--data-dir", str(data_dir)], stdout=out, stderr=out)
    t0 = time.perf_counter()
    while '"msg": "serving"' not in log.read_text():
        if proc.poll() is not None:
            sys.exit("the server died: " + log.read_text()[-500:])
        time.sleep(0.2)
    return proc, port, time.perf_counter() - t0


async def push(port: int, checks: int, after: dt.date) -> None:
    apps = []
    for ev in generate(GenConfig(seed=11, applicants=checks, start=after, days=5)):
        if isinstance(ev.message, scoring_pb2.ApplicationEvent):
            apps.append(ev.message)
            if len(apps) >= checks:
                break
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        gate = asyncio.Semaphore(64)
        errors = 0

        async def one(app: scoring_pb2.ApplicationEvent) -> None:
            nonlocal errors
            request = scoring_pb2.CheckApplicationRequest(
                request_id=uuid.uuid4().hex, application=app
            )
            async with gate:
                try:
                    md = (("x-lendgate-partner", app.partner_id or "bench"),)
                    await stub.CheckApplication(request, metadata=md, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1

        t = time.perf_counter()
        await asyncio.gather(*(one(a) for a in apps))
        took = time.perf_counter() - t
        print(f"pushed {len(apps) - errors:,} checks ({errors} errors) in {took:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--checks", type=int, default=30_000)
    parser.add_argument("--after", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args()
    logs = args.data_dir.parent
    proc, port, took = start(args.data_dir, logs / "kill-restart-1.log")
    print(f"first start: serving after {took:.1f} s")
    asyncio.run(push(port, args.checks, args.after))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc, port, took = start(args.data_dir, logs / "kill-restart-2.log")
    print(f"after kill -9: serving after {took:.1f} s")
    for line in (logs / "kill-restart-2.log").read_text().splitlines():
        if "recovered" in line:
            print(line)
    proc.send_signal(signal.SIGTERM)
    proc.wait()


if __name__ == "__main__":
    main()
