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
import time
import uuid
from pathlib import Path

import grpc

from bench.processes import log_path, serve_existing
from lendgate.datagen.generator import GenConfig, generate
from lendgate.v1 import scoring_pb2, scoring_pb2_grpc


async def push(address: str, checks: int, after: dt.date) -> None:
    """Send `checks` generated applications dated from `after`, 64 in flight."""
    apps = []
    for ev in generate(GenConfig(seed=11, applicants=checks, start=after, days=5)):
        if isinstance(ev.message, scoring_pb2.ApplicationEvent):
            apps.append(ev.message)
            if len(apps) >= checks:
                break
    async with grpc.aio.insecure_channel(address) as channel:
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
    first = serve_existing(args.data_dir)
    print(f"first start: serving after {first.notes['start_s']} s")
    asyncio.run(push(first.address, args.checks, args.after))
    first.process.kill()  # SIGKILL: no final snapshot
    first.process.wait()
    first.workdir.cleanup()
    with serve_existing(args.data_dir) as second:
        print(f"after kill -9: serving after {second.notes['start_s']} s")
        for line in log_path(second).read_text().splitlines():
            if "recovered" in line:
                print(line)


if __name__ == "__main__":
    main()
