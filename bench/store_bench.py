"""Sustained event ingest into the store: events/s and acknowledgement latency.

    .venv/bin/python -m bench.store_bench --backend sqlite --events 200000
    .venv/bin/python -m bench.store_bench --backend postgres --events 200000

Each event is a realistic application: a ~600-byte payload and four match keys, appended
with its own ``request_id`` and acknowledged only after its group commit. ``--concurrency``
callers (asyncio tasks, like the RPCs of a ``grpc.aio`` server) append one event at a time.
SQLite runs in a temp dir (``synchronous`` as ``LENDGATE_SQLITE_SYNCHRONOUS``, FULL by
default); PostgreSQL uses ``--database-url``, else ``LENDGATE_TEST_DATABASE_URL``, else a
throwaway cluster started with ``scripts/pg_test_cluster.sh`` for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg

from lendgate.store import NewEvent, SqlStore, StoreSettings, open_store

PAYLOAD_BYTES = 600


def make_event(run: str, i: int, rng: random.Random) -> NewEvent:
    """The i-th application event of a run."""
    return NewEvent(
        request_id=f"{run}-{i}",
        partner_id=f"partner-{i % 20}",
        kind="application",
        event_time_us=1_800_000_000_000_000 + i * 1000,
        payload=rng.randbytes(PAYLOAD_BYTES),
        subject_id=f"app-{run}-{i}",
        keys=[
            ("phone", f"7999{rng.randrange(10_000_000):07d}"),
            ("passport", f"{rng.randrange(10_000):04d} {rng.randrange(1_000_000):06d}"),
            ("employer_inn", f"77{rng.randrange(100_000):08d}"),
            ("ip", f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"),
        ],
        response=b"report" * 10,
    )


async def ingest(
    store: SqlStore, events: int, concurrency: int, batch: int = 1
) -> tuple[float, float, list[float]]:
    """Append ``events`` from ``concurrency`` tasks: wall s, process CPU s, ack latencies (ms).

    Each task appends ``batch`` events per call (1: ``append_event``, else ``append_events``).
    """
    run = uuid.uuid4().hex[:8]
    rng = random.Random(7)
    prepared = [make_event(run, i, rng) for i in range(events)]
    # The prepared workload is the harness's, not the store's: keep the cyclic garbage
    # collector from walking it again and again (a server's requests are short-lived).
    gc.collect()
    gc.freeze()
    latencies: list[float] = []
    next_index = 0

    async def caller() -> None:
        nonlocal next_index
        while next_index < events:
            items = prepared[next_index : next_index + batch]
            next_index += len(items)
            start = time.perf_counter()
            if batch == 1:
                await store.append_event(items[0])
            else:
                await store.append_events(items)
            latencies.append((time.perf_counter() - start) * 1000)

    start, cpu = time.perf_counter(), time.process_time()
    written = written_bytes()
    commits, writes = _counts(store)
    server = server_cpu(store)
    threads_before = store_thread_cpu()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    # The store's own threads (writer, indexer...): what storage costs per event, whoever calls.
    threads_after = store_thread_cpu()
    THREAD_CPU.clear()
    THREAD_CPU.update({k: v - threads_before.get(k, 0.0) for k, v in threads_after.items()})
    WRITTEN[0] = written_bytes() - written
    now_commits, now_writes = _counts(store)
    BATCHES[:] = [now_commits - commits, now_writes - writes]
    SERVER_CPU[0] = server_cpu(store) - server
    return time.perf_counter() - start, time.process_time() - cpu, latencies


THREAD_CPU: dict[str, float] = {}
WRITTEN = [0]
BATCHES = [0, 0]  # commits, writes committed
SERVER_CPU = [0.0]


def server_cpu(store: SqlStore) -> float:
    """CPU seconds of the PostgreSQL backend serving the writer's connection (a local
    server: read from /proc), 0 for SQLite (its work is the writer thread's own)."""
    tx = store._writer._tx
    if tx is None or tx.backend != "postgres":
        return 0.0
    try:
        stat = Path(f"/proc/{tx.raw.info.backend_pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _counts(store: SqlStore) -> tuple[int, int]:
    """Commits and writes committed so far by the store's writer."""
    writer = store._writer
    return getattr(writer, "commits", 0), getattr(writer, "committed_writes", 0)


def written_bytes() -> int:
    """Bytes this process has passed to write system calls (``wchar`` in /proc): what the
    database engine writes (WAL frames, checkpoints) for SQLite; sockets count too."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def store_thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live ``lendgate-store-*`` thread, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    result: dict[str, float] = {}
    for thread in threading.enumerate():
        if not thread.name.startswith("lendgate-store") or thread.native_id is None:
            continue
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        name = thread.name.removeprefix("lendgate-store-").split("_")[0]
        result[name] = result.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return result


CLUSTER_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg_test_cluster.sh"


def start_cluster() -> tuple[str, str]:
    """A throwaway PostgreSQL for this run: (url, cluster dir)."""
    out = subprocess.run([CLUSTER_SCRIPT, "start"], check=True, capture_output=True, text=True)
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return values["LENDGATE_TEST_DATABASE_URL"], values["LENDGATE_TEST_PG_DIR"]


def main() -> None:
    """Parse arguments, run the benchmark, print one result block."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=1, help="events per call (append_events)")
    parser.add_argument(
        "--key-index-interval",
        type=float,
        default=None,
        help="seconds between key-index passes (default: the store's setting)",
    )
    args = parser.parse_args()

    cluster_dir = None
    tmp = None
    if args.backend == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="lendgate-bench-")
        url = args.database_url or f"sqlite:///{tmp.name}/lendgate.db"
    else:
        url = args.database_url or os.environ.get("LENDGATE_TEST_DATABASE_URL") or ""
        if not url:
            url, cluster_dir = start_cluster()
    schema = None
    if args.backend == "postgres":
        # A schema of its own, so the run starts empty and leaves nothing behind.
        schema = "bench_" + uuid.uuid4().hex[:12]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    settings = replace(StoreSettings.from_env(), database_url=url, retention_interval_s=0)
    if args.key_index_interval is not None:
        settings = replace(settings, key_index_interval_s=args.key_index_interval)
    store = open_store(None, settings)
    try:
        asyncio.run(ingest(store, args.warmup, args.concurrency, args.batch))
        seconds, cpu, latencies = asyncio.run(
            ingest(store, args.events, args.concurrency, args.batch)
        )
    finally:
        store.close()
        if schema:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
        if cluster_dir:
            subprocess.run([CLUSTER_SCRIPT, "stop", cluster_dir], check=True)
        if tmp:
            tmp.cleanup()
    report(args, settings, seconds, cpu, latencies)


def report(
    args: argparse.Namespace,
    settings: StoreSettings,
    seconds: float,
    cpu: float,
    latencies: list[float],
) -> None:
    """Print the result block."""
    latencies.sort()
    sync = settings.sqlite_synchronous if args.backend == "sqlite" else "server default"
    print(f"backend            {args.backend} (synchronous: {sync})")
    print(f"events             {args.events} (+{args.warmup} warm-up), {PAYLOAD_BYTES} B, 4 keys")
    print(
        f"concurrency        {args.concurrency} callers x {args.batch} event(s) per call,"
        f" commit delay {settings.commit_delay_ms} ms"
    )
    print(f"wall               {seconds:.2f} s")
    print(f"throughput         {args.events / seconds:,.0f} events/s")
    # CPU of this process only (client side + writer); a PostgreSQL server's is not counted.
    print(
        f"process CPU        {cpu / args.events * 1e6:.1f} us/event (load {os.getloadavg()[0]:.1f})"
    )
    per_thread = ", ".join(
        f"{name} {cpu_s / args.events * 1e6:.1f}" for name, cpu_s in sorted(THREAD_CPU.items())
    )
    print(f"store threads CPU  {per_thread} us/event")
    print(f"written            {WRITTEN[0] / args.events:,.0f} bytes/event (write system calls)")
    if args.backend == "postgres":
        server = SERVER_CPU[0] / args.events * 1e6
        print(f"server CPU         {server:.1f} us/event (the writer's PostgreSQL backend)")
    commits, writes = BATCHES
    print(f"commits            {commits:,} ({writes / max(commits, 1):,.0f} writes per commit)")
    print(
        f"call latency (ms)  p50 {statistics.median(latencies):.2f}"
        f"  p99 {latencies[int(len(latencies) * 0.99)]:.2f}  max {latencies[-1]:.2f}"
    )


if __name__ == "__main__":
    main()
