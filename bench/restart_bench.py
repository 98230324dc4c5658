"""Restart with a long history: open the store, load the latest snapshot, replay the tail.

    .venv/bin/python -m bench.restart_bench --events 10000000 --tail 100000 --dir /tmp/rb

Builds (once; ``--reuse`` keeps it) an SQLite store holding ``--events`` synthetic
applications, and a snapshot of the seed-003 aggregates covering all but the last
``--tail`` of them (the tail is what a snapshot every ``--tail`` events leaves at worst).
How the history is built, quicker than through the gRPC path:

- the log rows go straight into ``events`` with ``executemany`` (``synchronous=OFF`` while
  building); the tail's payloads are real serialized ``ApplicationEvent``s, one per event,
  the older rows reuse 4,096 distinct serialized events (they are never read at restart);
- the key index is not built for the history (``through_seq`` is set to the end): it plays
  no part in restart;
- the snapshot's state comes from applying each history event's seed-003 document built
  directly (``bench.synthetic.direct_document``, what the mapper gives for its payload)
  to ``AggregateStore``, then ``snapshots.save``.

Then a fresh process restarts: ``open_store`` (migrations check, writer), load the latest
snapshot, ``AggregateStore.restore``, replay the tail through ``decode_document`` → mapping
→ ``apply``, and serve one append + evaluate. Each part's time is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench.synthetic import direct_document, params, payload, seed003_document
from lendgate.aggregates import AggregateStore
from lendgate.recovery import AggregateStateMachine, StateKeeper, answers, document_mapper
from lendgate.store import NewEvent, StoreSettings, open_store

DEFINITIONS = Path(__file__).resolve().parent.parent / "testdata/aggregates/seed003_rules.json"


def settings(path: Path) -> StoreSettings:
    """Store settings for the bench's database."""
    return StoreSettings(database_url=f"sqlite:///{path}", retention_interval_s=0)


def build(path: Path, events: int, tail: int) -> None:
    """Write the history and the snapshot (see the module docstring)."""
    open_store(None, settings(path)).close()  # the schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    templates = [payload(params(i)) for i in range(4096)]
    definitions = json.loads(DEFINITIONS.read_text())
    aggregates = AggregateStore(definitions)
    history = events - tail
    started = time.perf_counter()
    chunk = 50_000
    for start in range(0, events, chunk):
        rows = []
        for i in range(start, min(events, start + chunk)):
            p = params(i)
            data = templates[i % 4096] if i < history else payload(p)
            us = p["time_s"] * 1_000_000
            rows.append(
                (i + 1, f"rb-{i}", p["partner"], "application", f"app-{i}", us, us, data, None, "")
            )
            if i < history:
                aggregates.apply(direct_document(p))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        if start // chunk % 20 == 0:
            rate = (start + len(rows)) / (time.perf_counter() - started)
            print(f"  built {start + len(rows):,} events ({rate:,.0f}/s)", flush=True)
    conn.execute("UPDATE event_keys_indexed SET through_seq = ?", (events,))
    conn.close()
    data = aggregates.snapshot()
    print(f"  snapshot {len(data) / 1e6:.1f} MB at position {history:,}", flush=True)

    async def save() -> None:
        store = open_store(None, settings(path))
        try:
            await store.snapshots.save(history, data)
        finally:
            await store.aclose()

    asyncio.run(save())


def machine() -> AggregateStateMachine:
    """Seed-003 aggregates fed through decode_document and the synthetic mapping."""
    return AggregateStateMachine(
        json.loads(DEFINITIONS.read_text()), document_mapper(transform=seed003_document)
    )


def restart(path: Path) -> dict[str, float]:
    """One restart, timed part by part (run in a fresh process)."""
    t0 = time.perf_counter()
    store = open_store(None, settings(path))
    opened = time.perf_counter() - t0

    async def recover() -> dict[str, float]:
        keeper = StateKeeper(store, machine())
        report = await keeper.recover()
        t = time.perf_counter()
        p = params(report.position)
        ack = await store.append_event(
            NewEvent(
                f"rb-live-{os.getpid()}",
                p["partner"],
                "application",
                p["time_s"] * 10**6,
                payload(p),
            )
        )
        event = await store.get_event(ack.seq)
        await keeper.apply(event)
        answers(keeper.machine, [direct_document(p)])  # type: ignore[arg-type]
        served = time.perf_counter() - t
        serving_at = time.perf_counter() - t0  # before shutdown (freeing the state is slow)
        await store.aclose()
        return {
            "open_store_s": opened,
            "load_snapshot_s": report.load_snapshot_s,
            "restore_s": report.restore_s,
            "replay_s": report.replay_s,
            "replayed": report.replayed,
            "first_request_s": served,
            "position": report.position,
            "serving_s": serving_at,
        }

    return asyncio.run(recover())


def main() -> None:
    """Build (unless reused), then restart in a fresh process and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--tail", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/lendgate-restart-bench"))
    parser.add_argument("--reuse", action="store_true", help="keep an existing build")
    parser.add_argument("--restart-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.dir / "lendgate.db"
    if args.restart_only:
        print(json.dumps(restart(path)))
        return
    if not (args.reuse and path.exists()):
        args.dir.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        t = time.perf_counter()
        build(path, args.events, args.tail)
        print(f"build              {time.perf_counter() - t:.0f} s", flush=True)
    cmd = [sys.executable, "-m", "bench.restart_bench", "--restart-only", "--dir", str(args.dir)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    size = sum(f.stat().st_size for f in args.dir.iterdir()) / 1e9
    position, replayed = int(r["position"]), int(r["replayed"])
    rate = replayed / max(r["replay_s"], 1e-9)
    print(f"history            {position:,} events, tail {replayed:,}, {size:.1f} GB")
    print(f"open store         {r['open_store_s']:.2f} s")
    print(f"load snapshot      {r['load_snapshot_s']:.2f} s")
    print(f"restore aggregates {r['restore_s']:.2f} s")
    print(f"replay tail        {r['replay_s']:.2f} s ({rate:,.0f} events/s)")
    print(f"first request      {r['first_request_s'] * 1000:.1f} ms")
    print(f"serving again in   {r['serving_s']:.2f} s (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
