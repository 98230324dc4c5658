"""Child process for the recovery crash test: append under load, keep the aggregates.

Run as ``python tests/recovery_crash_child.py DATABASE_URL``. Tasks append synthetic
applications; one loop applies the log to the aggregates in log order (snapshots every
``SNAPSHOT_EVERY`` events in the background) and, after each page, prints
``STATE <position> <answers as JSON>``: the aggregates' answers to fixed probe queries at
that log position. The parent kills this process with SIGKILL and compares.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.synthetic import params, payload, probes, seed003_document
from lendgate.recovery import (
    AggregateStateMachine,
    StateKeeper,
    answers,
    document_mapper,
)
from lendgate.store import NewEvent, StoreSettings, open_store

CONCURRENCY = 32
SNAPSHOT_EVERY = 700
DEFINITIONS = Path(__file__).resolve().parent.parent / "testdata/aggregates/seed003_rules.json"


def machine() -> AggregateStateMachine:
    """The aggregates of seed 003 fed by the synthetic applications' mapping."""
    return AggregateStateMachine(
        json.loads(DEFINITIONS.read_text()), document_mapper(transform=seed003_document)
    )


async def main(url: str) -> None:
    """Append and apply until killed."""
    settings = StoreSettings(database_url=url, retention_interval_s=0)
    store = await asyncio.to_thread(open_store, None, settings)
    keeper = StateKeeper(store, machine(), every_events=SNAPSHOT_EVERY)
    await keeper.recover()
    probe = probes()
    counter = iter(range(10**9))
    out = sys.stdout

    async def appender() -> None:
        while True:
            i = next(counter)
            p = params(i)
            await store.append_event(
                NewEvent(f"rc-{i}", p["partner"], "application", p["time_s"] * 10**6, payload(p))
            )

    async def applier() -> None:
        while True:
            page = await store.events_page(keeper.position, 300)
            for event in page:
                await keeper.apply(event)
            if page:
                state = answers(keeper.machine, probe)  # type: ignore[arg-type]
                out.write(f"STATE {keeper.position} {json.dumps(state)}\n")
                out.flush()
            else:
                await asyncio.sleep(0.01)

    await asyncio.gather(applier(), *(appender() for _ in range(CONCURRENCY)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
