"""Cost of the state snapshot's capture and of the match index's retention pass on a
large served state.

Restores the scoring state of an existing store (``lendgate load-history`` output), times
the capture of a snapshot in process (the aggregates alone, then the whole state) and the
``fork`` that starts a live server's capture, then times ``MatchIndex.prune`` calls that
drop growing slices of the oldest events, as the service's retention pass does every
``retention_interval_s`` (one key-list shard swept per call), and once with every shard
swept::

    .venv/bin/python -m bench.prune_bench --data-dir DIR --start 2026-08-14T07:00:00Z

``--start`` is the event time of the history's first event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from lendgate.scoring import ScoringService
from lendgate.store import StoreSettings, open_store

STEPS = [
    ("the first 12 h", timedelta(hours=12), 1),
    ("the next minute", timedelta(hours=12, minutes=1), 1),
    ("the next minute", timedelta(hours=12, minutes=2), 1),
    ("nothing to drop", timedelta(hours=12, minutes=2), 1),
    ("the next minute, every shard swept", timedelta(hours=12, minutes=3), 64),
    ("up to day 10", timedelta(days=10), 1),
]


async def run(data_dir: Path, start: datetime) -> None:
    settings = StoreSettings(
        database_url=f"sqlite:///{data_dir / 'lendgate.db'}",
        retention_days=0,  # the bench prunes by hand
        retention_interval_s=0,
        key_index_interval_s=3600,
    )
    store = open_store(None, settings)
    try:
        service = ScoringService(store)
        t = time.perf_counter()
        await service.recover()
        print(f"recovered in {time.perf_counter() - t:.1f} s, {len(service.index):,} held")
        t = time.perf_counter()
        captured = len(service.aggregates.snapshot())
        print(f"aggregates serialised in {time.perf_counter() - t:.2f} s ({captured:,} bytes)")
        t = time.perf_counter()
        captured = len(service._capture())
        print(f"whole state captured in {time.perf_counter() - t:.2f} s ({captured:,} bytes)")
        for _ in range(3):
            t = time.perf_counter()
            child = os.fork()
            if child == 0:
                os._exit(0)
            paused = time.perf_counter() - t
            await asyncio.to_thread(os.waitpid, child, 0)
            print(f"fork of the process: {paused * 1000:.1f} ms")
        print(f"{'prune':38} {'dropped':>10} {'ms':>9}")
        for label, after, shards in STEPS:
            t = time.perf_counter()
            dropped = service.index.prune(start + after, sweep_shards=shards)
            ms = (time.perf_counter() - t) * 1000
            print(f"{label:38} {dropped:>10,} {ms:>9.1f}")
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--start", type=datetime.fromisoformat, required=True)
    args = parser.parse_args()
    asyncio.run(run(args.data_dir, args.start))


if __name__ == "__main__":
    main()
