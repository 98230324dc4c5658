"""A quick look at CheckApplication over gRPC against a real ``lendgate serve``.

    .venv/bin/python -m bench.scoring_quick --checks 3000 --concurrency 64
    .venv/bin/python -m bench.scoring_quick --checks 2000 --rate 200

Starts ``lendgate serve`` (SQLite in a temp dir, ``synchronous=NORMAL``, the default pack)
and sends distinct applications, either from ``--concurrency`` callers as fast as they are
answered, or open-loop at ``--rate`` per second; prints checks/s and latency percentiles.
Client and server share the machine. Not the issue's benchmark (1,000,000 prior
applications, the load generator of ``bench/``'s own branch): a smoke figure only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import grpc

from lendgate.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc

MD = (("x-lendgate-partner", "bench"),)


def _request(i: int, t0: datetime) -> scoring_pb2.CheckApplicationRequest:
    event = scoring_pb2.ApplicationEvent(
        application_id=f"a{i}",
        subtype=scoring_pb2.APPLICATION_SUBTYPE_LOAN_APP_CREATE,
        ip_address=f"10.0.{i % 250}.{i % 200}",
        loan_amount=common_pb2.Money(amount_minor=10_000_000, currency="RUB"),
        applicant=common_pb2.Person(
            client_id=f"c{i}",
            last_name=f"L{i % 500}",
            first_name="Ivan",
            birth_date="1990-05-15",
            passport=common_pb2.Passport(
                series="4510", number=f"{i:06d}", issue_date="2010-05-20", issuing_region="77"
            ),
            phones=[
                common_pb2.Phone(number=f"+7916{i % 700:07d}", kind=common_pb2.PHONE_KIND_MOBILE)
            ],
            employer=common_pb2.Employer(tax_id=f"77{i % 300:08d}", employee_count=1000),
        ),
    )
    event.event_time.FromDatetime(t0 + timedelta(seconds=i))
    return scoring_pb2.CheckApplicationRequest(request_id=f"r{i}", application=event)


async def _run(address: str, args: argparse.Namespace) -> None:
    t0 = datetime.now(UTC) - timedelta(days=1)
    requests = [_request(i, t0) for i in range(args.checks)]
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)

        async def one(request: scoring_pb2.CheckApplicationRequest) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                await stub.CheckApplication(request, metadata=MD, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
            latencies.append(time.perf_counter() - started)

        start = time.perf_counter()
        if args.rate:
            tasks = []
            for i, request in enumerate(requests):
                delay = start + i / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(request)))
            await asyncio.gather(*tasks)
        else:
            queue = iter(requests)

            async def caller() -> None:
                for request in queue:
                    await one(request)

            await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1e3

    print(
        f"{args.checks} checks: {args.checks / elapsed:.0f}/s, p50 {pct(0.5):.1f} ms, "
        f"p99 {pct(0.99):.1f} ms, errors {errors}, load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    """Parse the flags, start the server, run, stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop, checks per second")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LENDGATE_")}
    env["LENDGATE_SQLITE_SYNCHRONOUS"] = "NORMAL"
    with tempfile.TemporaryDirectory() as data_dir:
        cmd = [sys.executable, "-m", "lendgate.cli", "serve", "--listen", "127.0.0.1:0"]
        server = subprocess.Popen(
            [*cmd, "--data-dir", data_dir], stderr=subprocess.PIPE, text=True, env=env
        )
        assert server.stderr is not None
        try:
            for line in server.stderr:
                entry = json.loads(line)
                if entry.get("msg") == "serving":
                    asyncio.run(_run(entry["address"], args))
                    break
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
