"""CPU per check of the scoring service in process (no gRPC), with a real SQLite store.

``python -m bench.scoring_cpu --history 10000 --checks 3000``: checks ``--history``
generated applications (seed 1), then measures ``--checks`` more with ``--concurrency``
callers, and prints the wall rate and the process CPU time per measured check (all
threads: the event loop, the Rust calls, the store's writer and readers). CPU time
moves much less than wall-clock latency when other work shares the machine, so two
builds can be compared on a busy machine by alternating runs of each.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from lendgate.datagen.generator import GenConfig, generate
from lendgate.scoring import ScoringService
from lendgate.store import StoreSettings, open_store
from lendgate.v1 import scoring_pb2


def _requests(count: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for event in generate(GenConfig(seed=1, applicants=max(200, count))):
        message = event.message
        if isinstance(message, scoring_pb2.ApplicationEvent):
            request = scoring_pb2.CheckApplicationRequest(
                request_id=uuid.uuid4().hex, application=message
            )
            out.append((message.partner_id or "bench", request.SerializeToString()))
            if len(out) >= count:
                break
    return out


async def _run(service: ScoringService, batch: list[tuple[str, bytes]], callers: int) -> int:
    pending = iter(batch)
    failed = 0

    async def caller() -> None:
        nonlocal failed
        for partner, request in pending:
            try:
                await service.check("application", request, partner)
            except Exception:  # a refused generated event: counted
                failed += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    return failed


async def _main(history: int, checks: int, callers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = StoreSettings(
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", retention_interval_s=0
        )
        store = await asyncio.to_thread(open_store, None, settings)
        try:
            service = ScoringService(store)
            requests = _requests(history + checks)
            await _run(service, requests[:history], callers)
            wall, cpu = time.perf_counter(), time.process_time()
            failed = await _run(service, requests[history:], callers)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            n = len(requests) - history
            print(
                f"{n} checks after {history}: {n / wall:.0f}/s wall, "
                f"{cpu / n * 1e6:.0f} us CPU per check, {failed} refused"
            )
        finally:
            await store.aclose()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(_main(args.history, args.checks, args.concurrency))


if __name__ == "__main__":
    main()
