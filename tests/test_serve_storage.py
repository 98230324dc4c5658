"""Storage seen from the served scoring service: start-up errors of `lendgate serve`, a lost
PostgreSQL connection during serving, retention of the store and the hot state."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import pytest

from lendgate.scoring import ScoringService, StateSettings
from lendgate.store import StoreSettings, open_store
from lendgate.v1 import scoring_pb2_grpc
from servers.scoring import ScoringServicer
from tests.conftest import clean_env
from tests.test_scoring import Person, application
from tests.test_scoring_service import Client
from tests.test_server import serve_in_process
from tests.test_store import postgres_schema


def serve_fails(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lendgate.cli", "serve", "--listen", "127.0.0.1:0"]
    cmd += ["--data-dir", str(tmp_path), *args]
    env = clean_env()
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)


def assert_one_line(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("lendgate: ") and result.stderr.count("\n") == 1
    assert words in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_a_foreign_sqlite_database(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "lendgate.db") as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    assert_one_line(serve_fails(tmp_path), "not lendgate's")


def test_serve_refuses_a_schema_newer_than_the_code(tmp_path: Path) -> None:
    open_store(None, StoreSettings(database_url=f"sqlite:///{tmp_path / 'lendgate.db'}")).close()
    with sqlite3.connect(tmp_path / "lendgate.db") as db:
        db.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at_us)"
            " VALUES (999, 'future', 'x', 0)"
        )
    assert_one_line(serve_fails(tmp_path), "newer than this lendgate")


def test_serve_refuses_an_unreachable_postgres(tmp_path: Path) -> None:
    url = "postgresql://lendgate@127.0.0.1:1/lendgate"
    assert_one_line(serve_fails(tmp_path, "--database-url", url), "cannot connect to PostgreSQL")


@pytest.mark.postgres
def test_a_lost_connection_answers_unavailable_then_serving_resumes() -> None:
    async def scenario(url: str) -> None:
        # No background key indexing: its pass could meet the dead connection first, and
        # the writer would reconnect before the check below (answering it OK, rightly).
        settings = StoreSettings(database_url=url, key_index_interval_s=3600)
        store = await asyncio.to_thread(open_store, None, settings)
        service = ScoringService(store)
        try:
            async with serve_in_process(
                {"lendgate.v1.ScoringService": ScoringServicer(service)}
            ) as ch:
                c = Client(scoring_pb2_grpc.ScoringServiceStub(ch), "bank-a")
                await c.check(application(Person(), app_id="before"), request_id="before")
                writer = store._writer._tx
                assert writer is not None
                with psycopg.connect(url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (writer.raw.info.backend_pid,))
                with pytest.raises(grpc.aio.AioRpcError) as lost:
                    await c.check(application(Person(), app_id="lost"), request_id="lost")
                assert lost.value.code() == grpc.StatusCode.UNAVAILABLE
                # Nothing unacknowledged was stored...
                assert await store.get_event_by_request("bank-a/lost") is None
                # ...and the writer reconnects (with backoff): a later check is served.
                for _ in range(400):
                    try:
                        await c.check(application(Person(), app_id="after"), request_id="after")
                        break
                    except grpc.aio.AioRpcError as err:
                        assert err.code() == grpc.StatusCode.UNAVAILABLE
                        await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the writer did not reconnect")
                assert await store.get_event_by_request("bank-a/after") is not None
        finally:
            await service.aclose(snapshot=False)
            await store.aclose()

    with postgres_schema() as url:
        asyncio.run(scenario(url))


def test_retention_removes_old_events_from_the_store_and_the_match_index(tmp_path: Path) -> None:
    """An application older than the horizon leaves the log and the index in the background;
    a later check no longer matches it."""
    horizon_days = 5.0
    settings = StoreSettings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        retention_days=horizon_days,
        retention_interval_s=0.05,
        commit_delay_ms=0,
    )
    state = StateSettings(
        snapshot_every_events=0,
        snapshot_every_seconds=0,
        retention_days=horizon_days,
        retention_interval_s=0.05,
        tick_s=0.02,
    )
    old = application(Person(), app_id="old")
    old.event_time.FromDatetime(datetime.now(UTC) - timedelta(days=10))
    fresh = application(Person(last="Other", client="c-2"), app_id="fresh")
    fresh.event_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))

    async def scenario() -> None:
        store = await asyncio.to_thread(open_store, None, settings)
        service = ScoringService(store, state=state)
        try:
            async with serve_in_process(
                {"lendgate.v1.ScoringService": ScoringServicer(service)}
            ) as ch:
                c = Client(scoring_pb2_grpc.ScoringServiceStub(ch), "bank-a")
                await c.check(old, request_id="old")
                for _ in range(2000):  # the next retention passes (not a timing check)
                    gone = await store.get_event_by_request("bank-a/old") is None
                    if gone and len(service.index) == 0:
                        break
                    await asyncio.sleep(0.01)
                assert await store.get_event_by_request("bank-a/old") is None
                assert len(service.index) == 0
                report = await c.check(fresh, request_id="fresh")
                assert not [m for r in report.fired_rules for m in r.matches]
        finally:
            await service.aclose(snapshot=False)
            await store.aclose()

    asyncio.run(scenario())


def test_retention_forgets_logged_request_keys_so_a_late_retry_is_a_new_write(
    tmp_path: Path,
) -> None:
    """The match index's hash of a logged request key leaves with its event: before the
    horizon a retry returns the first report; once the store and the index have pruned
    the event, the same request id is evaluated as a new write (the store's rule for
    idempotency keys), while a recent request's key is still known."""
    horizon_days = 5.0
    settings = StoreSettings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        retention_days=horizon_days,
        retention_interval_s=3600,  # passes run below, on demand
        commit_delay_ms=0,
    )
    state = StateSettings(
        snapshot_every_events=0,
        snapshot_every_seconds=0,
        retention_days=horizon_days,
        retention_interval_s=3600,
        tick_s=0.02,
    )
    now = datetime.now(UTC)
    old = application(Person(), app_id="old")
    old.event_time.FromDatetime(now - timedelta(days=8))
    fresh = application(Person(last="Other", client="c-2"), app_id="fresh")
    fresh.event_time.FromDatetime(now - timedelta(hours=1))

    async def scenario() -> None:
        store = await asyncio.to_thread(open_store, None, settings)
        service = ScoringService(store, state=state)
        try:
            async with serve_in_process(
                {"lendgate.v1.ScoringService": ScoringServicer(service)}
            ) as ch:
                c = Client(scoring_pb2_grpc.ScoringServiceStub(ch), "bank-a")
                first = await c.check(old, request_id="late")
                assert await c.check(old, request_id="late") == first  # a retry: the same
                kept = await c.check(fresh, request_id="kept")
                stored_kept = await store.get_event_by_request("bank-a/kept")
                assert stored_kept is not None
                assert service.index._core.logged_len() == 2
                await asyncio.to_thread(store.index_keys_blocking)  # the pass waits for it
                await store.purge_expired()
                service._prune()
                assert await store.get_event_by_request("bank-a/late") is None
                assert service.index._core.logged_len() == 1
                assert not service.index._core.maybe_logged("bank-a/late")
                # The recent key is still known: its retry returns the first report.
                assert await c.check(fresh, request_id="kept") == kept
                again = await c.check(old, request_id="late")
                assert again != first  # evaluated again (its own receive and processing time)
                stored = await store.get_event_by_request("bank-a/late")
                assert stored is not None and stored.seq > stored_kept.seq  # a new write
                assert service.index._core.maybe_logged("bank-a/late")
        finally:
            await service.aclose(snapshot=False)
            await store.aclose()

    asyncio.run(scenario())
