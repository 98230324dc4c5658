"""kill -9 of `lendgate serve` under load: nothing acknowledged is lost, and the restarted
server (latest snapshot + the log's tail) answers like a never-killed replay of the log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sqlite3
import threading
from pathlib import Path

import grpc
import pytest

from lendgate.v1 import scoring_pb2, scoring_pb2_grpc
from tests.conftest import ServerProcess, clean_env, start_server, stop_server
from tests.test_scoring import application
from tests.test_scoring_recovery import outcome, person, served
from tests.test_scoring_service import Client, _comparable

CALLERS = 24
KILL_AFTER = 240  # acknowledged checks before the SIGKILL (the callers keep sending)
SNAPSHOT_EVERY = 50  # events: several snapshots are taken before the kill


def start(data_dir: Path) -> tuple[ServerProcess, list[str], threading.Thread]:
    """Start a server and keep draining its log (a full stderr pipe would stall it); the
    log is closed when the process ends."""
    env = clean_env(LENDGATE_SNAPSHOT_EVERY_EVENTS=str(SNAPSHOT_EVERY))
    server = start_server(data_dir, env=env)
    lines = list(server.log_lines)
    assert server.process.stderr is not None
    stream = server.process.stderr

    def drain() -> None:
        with contextlib.suppress(ValueError), stream:  # ValueError: closed by stop_server
            for line in stream:
                lines.append(line)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return server, lines, thread


async def load_then_kill(server: ServerProcess) -> dict[str, bytes]:
    """Checks (and outcomes) from concurrent callers; SIGKILL the server once enough are
    acknowledged while the callers keep sending. Returns the report of every acknowledged
    check by ``partner/request_id``."""
    acked: dict[str, bytes] = {}
    enough = asyncio.Event()
    target = [KILL_AFTER]
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)

        async def caller(n: int) -> None:
            c = Client(stub, ("bank-a", "bank-b", "bank-c")[n % 3])
            for k in range(10_000):
                i = n + CALLERS * k
                event = application(person(i), minutes=i % 600, app_id=f"k-{i}")
                try:
                    report = await c.check(event, request_id=f"k-{i}")
                    acked[f"{c.partner}/k-{i}"] = report.SerializeToString()
                    if i % 5 == 2:
                        await c.stub.ReportOutcome(
                            scoring_pb2.ReportOutcomeRequest(
                                request_id=f"o-{i}", application_id=f"k-{i}", outcome=outcome(i)
                            ),
                            metadata=c.md,
                            timeout=20,
                        )
                except grpc.aio.AioRpcError as err:  # the server was killed
                    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
                    return
                if len(acked) >= target[0]:
                    enough.set()

        callers = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
        await enough.wait()
        for _ in range(1200):  # the background snapshot comes within its 1 s tick
            if await asyncio.to_thread(snapshot_taken, server.data_dir):
                break
            await asyncio.sleep(0.05)
        target[0] = len(acked) + KILL_AFTER // 4  # a tail after the snapshot, then the kill
        enough.clear()
        await enough.wait()
        server.process.send_signal(signal.SIGKILL)
        await asyncio.gather(*callers)
    return acked


def snapshot_taken(data_dir: Path) -> bool:
    with contextlib.closing(sqlite3.connect(data_dir / "lendgate.db", timeout=10)) as db:
        return bool(db.execute("SELECT count(*) FROM snapshots").fetchone()[0])


async def probes(address: str) -> list[scoring_pb2.Report]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        out = []
        for i in range(8):
            c = Client(stub, ("bank-a", "bank-b")[i % 2])
            event = application(person(i), minutes=700 + i, app_id=f"probe-{i}")
            out.append(_comparable(await c.check(event, request_id=f"probe-{i}")))
        return out


@pytest.mark.timeout(180)
def test_kill_9_under_load_loses_nothing_acknowledged_and_restarts_to_the_same_state(
    tmp_path: Path,
) -> None:
    data = tmp_path / "var"
    server, _, drained = start(data)

    try:
        acked = asyncio.run(load_then_kill(server))
    finally:
        server.process.kill()
        server.process.wait()
    drained.join(timeout=10)
    assert len(acked) >= KILL_AFTER

    # The reference: the same log, replayed whole by a service that was never killed.
    shutil.copytree(data, tmp_path / "reference")  # the database file and its WAL
    reference = tmp_path / "reference" / "lendgate.db"
    with sqlite3.connect(reference) as db:
        snapshots = db.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        db.execute("DELETE FROM snapshots")
    assert snapshots > 0, "no snapshot was taken before the kill"

    restarted, lines, _ = start(data)
    try:
        recovered = [json.loads(x) for x in lines if '"scoring state recovered"' in x]
        assert recovered and recovered[0]["snapshot_position"] > 0  # snapshot + tail

        async def check_restarted() -> list[scoring_pb2.Report]:
            async with grpc.aio.insecure_channel(restarted.address) as channel:
                stub = scoring_pb2_grpc.ScoringServiceStub(channel)
                for key, body in acked.items():
                    partner, request_id = key.split("/", 1)
                    sent = scoring_pb2.Report.FromString(body)
                    got = await stub.GetReport(
                        scoring_pb2.GetReportRequest(name=sent.name),
                        metadata=(("x-lendgate-partner", partner),),
                        timeout=20,
                    )
                    stored = scoring_pb2.Report()
                    stored.CopyFrom(got.report)
                    for field in ("application", "payment", "outcomes"):
                        stored.ClearField(field)
                    assert stored == sent, request_id
            return await probes(restarted.address)

        after_restart = asyncio.run(check_restarted())
    finally:
        assert stop_server(restarted) == 0

    async def check_reference() -> list[scoring_pb2.Report]:
        async with served(reference) as s:
            assert s.service.last_recovery is not None
            assert s.service.last_recovery.snapshot_position == 0
            reports = []
            for i in range(8):
                c = s.client(("bank-a", "bank-b")[i % 2])
                event = application(person(i), minutes=700 + i, app_id=f"probe-{i}")
                reports.append(_comparable(await c.check(event, request_id=f"probe-{i}")))
            return reports

    assert after_restart == asyncio.run(check_reference())
