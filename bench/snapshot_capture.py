"""How long a snapshot capture stops the scoring service, in process and forked.

    .venv/bin/python -m bench.snapshot_capture --data-dir DIR

``DIR`` is a ``lendgate`` data directory (e.g. one filled by ``lendgate load-history``); it
is copied to a temporary directory first and never changed. The script recovers the
scoring state from it, then times, twice each: the in-process capture (``_capture()``:
the aggregates' and the match index's serialization, during which a serving loop would
stop) and the forked one (the fork itself — what the loop waits for — and the child's
whole capture, read through its pipe). Bad input: a missing directory or one without a
store gives a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lendgate.scoring import ScoringService
from lendgate.scoring import service as scoring_service
from lendgate.store import StoreSettings, open_store


async def _measure(data_dir: Path, rounds: int) -> None:
    settings = StoreSettings(
        database_url=f"sqlite:///{data_dir / 'lendgate.db'}",
        retention_interval_s=0,
        key_index_interval_s=3600,
    )
    store = await asyncio.to_thread(open_store, None, settings)
    try:
        service = ScoringService(store)
        started = time.perf_counter()
        await service.recover()
        print(f"recovered in {time.perf_counter() - started:.2f} s")
        for _ in range(rounds):
            started = time.perf_counter()
            data = service._capture()
            print(
                f"in process: {time.perf_counter() - started:.3f} s stopped,"
                f" {len(data) / 2**20:.0f} MiB"
            )
            started = time.perf_counter()
            child = service._fork_capture()
            if child is None:
                print("forked: fork unavailable here")
                continue
            paused = time.perf_counter() - started
            forked = await asyncio.to_thread(scoring_service._collect_capture, *child)
            total = time.perf_counter() - started
            same = forked == data
            print(f"forked: {paused:.3f} s stopped, {total:.3f} s to the bytes, same: {same}")
    finally:
        await store.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.data_dir / "lendgate.db").is_file():
        print(f"snapshot_capture: no lendgate store in {args.data_dir}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lendgate-capture-") as tmp:
        for path in args.data_dir.iterdir():
            if path.is_file():
                shutil.copy(path, tmp)
        asyncio.run(_measure(Path(tmp), max(1, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
