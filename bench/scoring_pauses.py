"""Pauses of the scoring service's event loop on a recovered store, old way vs new way.

    .venv/bin/python -m bench.scoring_pauses --data-dir DIR

``DIR`` is a ``lendgate`` data directory (e.g. one filled by ``lendgate load-history``;
it is only read). After the recovery, a task that yields continuously records the
longest gap between two of its turns while the retention pass runs whole
(``ScoringService._prune``, as before) and in steps (``_prune_in_steps``, as served),
alternated twice; then a full garbage collection is timed before and after
``tune_gc_for_serving`` (``gc.freeze``). Ratios within one run hold on a busy machine;
the absolute figures move with its load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from lendgate.scoring import ScoringService
from lendgate.store import StoreSettings, open_store
from servers.scoring import tune_gc_for_serving


async def _stall_during(work: Callable[[], Awaitable[None]]) -> tuple[float, float, int]:
    """(seconds ``work`` took, the longest loop stall meanwhile, loop turns seen)."""
    done = False
    worst = 0.0
    turns = 0

    async def ticker() -> None:
        nonlocal worst, turns
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now
            turns += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done = True
    await task
    return took, worst, turns


async def _main(data_dir: Path) -> None:
    settings = StoreSettings(database_url=f"sqlite:///{data_dir / 'lendgate.db'}")
    store = await asyncio.to_thread(open_store, None, settings)
    service = ScoringService(store)
    try:
        await service.recover()
        keys = sum(service.aggregates.key_counts().values())
        print(f"recovered: {len(service.index):,} indexed applications, {keys:,} aggregate keys")

        async def whole() -> None:
            service._prune()

        for name, work in [("whole", whole), ("steps", service._prune_in_steps)] * 2:
            took, worst, turns = await _stall_during(work)
            print(
                f"retention pass {name}: {took * 1e3:.1f} ms, longest loop stall "
                f"{worst * 1e3:.2f} ms, loop turns {turns}"
            )
        for label in ("before", "after"):
            if label == "after":
                tune_gc_for_serving()
            for _ in range(2):
                started = time.perf_counter()
                gc.collect()
                took = time.perf_counter() - started
                tracked = len(gc.get_objects())
                print(f"full collection {label} freeze: {took * 1e3:.2f} ms, {tracked:,} tracked")
    finally:
        await service.aclose(snapshot=False)
        await store.aclose()


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a lendgate data dir")
    args = parser.parse_args()
    asyncio.run(_main(args.data_dir))


if __name__ == "__main__":
    main()
