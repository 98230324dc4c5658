"""Restart with a long history: open the store, load the latest snapshot, replay the tail.

    .venv/bin/python -m bench.restart_bench --state scoring --events 3000000 --tail 100000
    .venv/bin/python -m bench.restart_bench --state aggregates --events 10000000 --tail 100000

``--state scoring`` (the default) is what ``lendgate serve`` restores: the scoring
service's whole served state (aggregates, consortium match index with its logged request
keys, incident index) through :meth:`ScoringService.recover`. How it is built:

- the log rows (``CheckApplicationRequest`` payloads, synthetic applicants from
  ``bench.synthetic``, event times ending now so retention keeps them) go straight into
  ``events`` with ``executemany`` (``synchronous=OFF`` while building);
- a ``ScoringService`` on that store recovers from the log (a whole-log replay through the
  same ``Scorer.replay`` path as a restart's tail; its time is printed) and stores a
  snapshot (``snapshot_now``);
- ``--tail`` more rows are appended after the snapshot.

Then a fresh process starts a ``ScoringService`` on the store, recovers (latest snapshot +
tail) and answers one ``CheckApplication``: "serving again" is the time from the start of
the process's work to that answer.

``--state aggregates`` is the earlier, narrower bench: the seed-003 aggregates alone through
:class:`lendgate.recovery.StateKeeper`:

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

The database goes in ``--dir``; delete it afterwards (``--cleanup``): at 10 million events it
is several GB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.synthetic import direct_document, params, payload, seed003_document
from lendgate.aggregates import AggregateStore
from lendgate.recovery import AggregateStateMachine, StateKeeper, answers, document_mapper
from lendgate.scoring import ScoringService, StateSettings
from lendgate.store import NewEvent, StoreSettings, open_store
from lendgate.store.backends import keys_path
from lendgate.v1 import scoring_pb2

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
    conn.close()
    mark_indexed(path, events)
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


# --- the served scoring state ----------------------------------------------------------------

SPACING_MS = 50  # between synthetic events: 10 million span ~6 days, inside the retention


def scoring_request(i: int, base_s: int) -> tuple[str, str, int, bytes]:
    """Event ``i``: (partner, request id, event time µs, serialized CheckApplicationRequest)."""
    p = params(i)
    p["time_s"] = base_s + i * SPACING_MS // 1000
    request_id = f"rb-{i}"
    request = scoring_pb2.CheckApplicationRequest(
        request_id=request_id, application=scoring_pb2.ApplicationEvent.FromString(payload(p))
    )
    return p["partner"], request_id, p["time_s"] * 1_000_000, request.SerializeToString()


def insert_scoring_rows(path: Path, start: int, stop: int, base_s: int) -> None:
    """Log rows ``start..stop`` as the scoring service stores checks (report left empty)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    chunk = 50_000
    t = time.perf_counter()
    for at in range(start, stop, chunk):
        rows = []
        for i in range(at, min(stop, at + chunk)):
            partner, request_id, event_us, request = scoring_request(i, base_s)
            rows.append(
                (
                    i + 1,
                    f"{partner}/{request_id}",
                    partner,
                    "application",
                    f"application:app-{i}",
                    event_us,
                    event_us,
                    request,
                    None,
                    "",
                )
            )
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        if (at - start) // chunk % 20 == 0:
            done = at + len(rows) - start
            print(
                f"  rows {at + len(rows):,} ({done / (time.perf_counter() - t):,.0f}/s)", flush=True
            )
    conn.close()
    mark_indexed(path, stop)


def mark_indexed(path: Path, through: int) -> None:
    """The key index plays no part in a restart and these events carry no keys: mark it
    caught up in its own file (``lendgate-keys.db``, created when the store was opened)."""
    keys = sqlite3.connect(keys_path(path))
    try:
        keys.execute("UPDATE event_keys_indexed SET through_seq = ?", (through,))
        keys.commit()
    finally:
        keys.close()


def quiet_state() -> StateSettings:
    """No background snapshots or pruning while measuring."""
    return StateSettings(snapshot_every_events=0, snapshot_every_seconds=0, retention_days=0)


def build_scoring(path: Path, events: int, tail: int) -> dict[str, float]:
    """History rows, a whole-log recovery and a snapshot, then the tail (module docstring)."""
    open_store(None, settings(path)).close()  # the schema
    base_s = int(time.time()) - events * SPACING_MS // 1000 - 3600
    history = events - tail
    t = time.perf_counter()
    insert_scoring_rows(path, 0, history, base_s)
    rows_s = time.perf_counter() - t

    async def replay_and_snapshot() -> dict[str, float]:
        store = open_store(None, settings(path))
        service = ScoringService(store, state=quiet_state())
        try:
            t0 = time.perf_counter()
            replayed = await service.recover()
            replay_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            position = await service.snapshot_now()
            snapshot_s = time.perf_counter() - t1
            latest = await store.snapshots.load_latest()
            size = 0 if latest is None else len(latest.data)
            return {
                "replayed": replayed,
                "replay_s": replay_s,
                "snapshot_s": snapshot_s,
                "position": position,
                "snapshot_mb": size / 1e6,
                "index_records": len(service.index),
                "maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            }
        finally:
            await service.aclose(snapshot=False)
            await store.aclose()

    built = asyncio.run(replay_and_snapshot())
    gc.collect()
    insert_scoring_rows(path, history, events, base_s)
    return {"rows_s": rows_s, "base_s": base_s, **built}


def restart_scoring(path: Path) -> dict[str, float]:
    """One restart of the scoring service, timed part by part (run in a fresh process)."""

    async def go() -> dict[str, Any]:
        t0 = time.perf_counter()
        store = open_store(None, settings(path))
        service = ScoringService(store, state=quiet_state())
        opened = time.perf_counter() - t0
        await service.recover()
        recovered = time.perf_counter() - t0
        last = await store.last_seq()
        # Event `last` a minute ago (validation refuses event times far in the future).
        base_s = int(time.time()) - 60 - last * SPACING_MS // 1000
        partner, _, _, data = scoring_request(last, base_s)
        request = scoring_pb2.CheckApplicationRequest.FromString(data)
        request.request_id = f"rb-live-{os.getpid()}"
        t1 = time.perf_counter()
        report = await service.check("application", request.SerializeToString(), partner)
        first = time.perf_counter() - t1
        serving = time.perf_counter() - t0
        assert scoring_pb2.Report.FromString(report).name  # a real report came back
        r = service.last_recovery
        assert r is not None
        out = {
            "open_s": opened,
            "restore_s": r.restore_s,
            "replay_s": r.replay_s,
            "replayed": r.replayed,
            "snapshot_position": r.snapshot_position,
            "recovered_s": recovered,
            "first_request_s": first,
            "serving_s": serving,
            "index_records": len(service.index),
            "maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        }
        await service.aclose(snapshot=False)
        await store.aclose()
        return out

    return asyncio.run(go())


def print_scoring(built: dict[str, float] | None, r: dict[str, float], directory: Path) -> None:
    """The result block of a scoring-state run."""
    size = sum(f.stat().st_size for f in directory.iterdir()) / 1e9
    if built:
        print(f"rows written       {built['rows_s']:.0f} s")
        print(
            f"whole-log replay   {built['replayed']:,.0f} events in {built['replay_s']:.1f} s"
            f" ({built['replayed'] / max(built['replay_s'], 1e-9):,.0f} events/s)"
        )
        print(
            f"snapshot           {built['snapshot_mb']:.0f} MB at {built['position']:,.0f},"
            f" capture + store {built['snapshot_s']:.1f} s; build RSS {built['maxrss_gb']:.1f} GB"
        )
    rate = r["replayed"] / max(r["replay_s"], 1e-9)
    print(f"database           {size:.1f} GB; index holds {r['index_records']:,.0f} applications")
    print(f"open store+service {r['open_s']:.2f} s")
    print(f"restore snapshot   {r['restore_s']:.2f} s (load + aggregates + match index)")
    print(f"replay tail        {r['replay_s']:.2f} s ({r['replayed']:,.0f} events, {rate:,.0f}/s)")
    print(f"first check        {r['first_request_s'] * 1000:.1f} ms")
    print(
        f"serving again in   {r['serving_s']:.2f} s (load {os.getloadavg()[0]:.1f},"
        f" RSS {r['maxrss_gb']:.1f} GB)"
    )


def main() -> None:
    """Build (unless reused), then restart in a fresh process and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", choices=["scoring", "aggregates"], default="scoring")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--tail", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/lendgate-restart-bench"))
    parser.add_argument("--reuse", action="store_true", help="keep an existing build")
    parser.add_argument("--cleanup", action="store_true", help="delete --dir when done")
    parser.add_argument("--restart-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.dir / "lendgate.db"
    if args.restart_only:
        result = restart_scoring(path) if args.state == "scoring" else restart(path)
        print(json.dumps(result))
        return
    built: dict[str, float] | None = None
    if not (args.reuse and path.exists()):
        args.dir.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        t = time.perf_counter()
        if args.state == "scoring":
            built = build_scoring(path, args.events, args.tail)
        else:
            build(path, args.events, args.tail)
        print(f"build              {time.perf_counter() - t:.0f} s", flush=True)
    cmd = [sys.executable, "-m", "bench.restart_bench", "--restart-only", "--dir", str(args.dir)]
    cmd += ["--state", args.state]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    try:
        if args.state == "scoring":
            print_scoring(built, r, args.dir)
        else:
            print_aggregates(r, args.dir)
    finally:
        if args.cleanup:
            shutil.rmtree(args.dir)


def print_aggregates(r: dict[str, float], directory: Path) -> None:
    """The result block of an aggregates-only run."""
    size = sum(f.stat().st_size for f in directory.iterdir()) / 1e9
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
