"""The storage suite, run against both backends: SQLite in a temp dir, and a real PostgreSQL.

PostgreSQL comes from ``LENDGATE_TEST_DATABASE_URL`` (``make test`` starts a throwaway
cluster with ``scripts/pg_test_cluster.sh`` and sets it, with ``LENDGATE_REQUIRE_POSTGRES=1``
so a missing server fails the run instead of skipping). Each PostgreSQL test gets its own
schema. Nothing here mocks the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from bench.synthetic import probes
from lendgate.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from lendgate.recovery import StateKeeper, answers
from lendgate.store import (
    Deal,
    NewEvent,
    Posting,
    Report,
    SqlStore,
    StoreOpenError,
    StoreSettings,
    open_store,
    sqlstore,
)
from lendgate.store import migrations as store_migrations
from lendgate.store.backends import Tx
from tests.recovery_crash_child import machine

T = TypeVar("T")
DAY_US = 86_400 * 1_000_000
NOW_US = 1_800_000_000_000_000
CHILD = Path(__file__).with_name("store_crash_child.py")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion (the suite needs no async plugin)."""
    return asyncio.run(coro)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL for a fresh schema of the test server, dropped afterwards."""
    base = os.environ.get("LENDGATE_TEST_DATABASE_URL")
    if not base:
        if os.environ.get("LENDGATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                "LENDGATE_TEST_DATABASE_URL is not set but LENDGATE_REQUIRE_POSTGRES=1: "
                "start a server with scripts/pg_test_cluster.sh (make test does)"
            )
        pytest.skip("no PostgreSQL: set LENDGATE_TEST_DATABASE_URL (make test does)")
    schema = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/var/lendgate.db"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema (for what only a server can do)."""
    with postgres_schema() as url:
        yield url


def settings_for(url: str, **changes: Any) -> StoreSettings:
    """Settings for tests: no background retention unless asked."""
    return replace(StoreSettings(database_url=url, retention_interval_s=0), **changes)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """An open store on a fresh database."""
    opened = open_store(None, settings_for(database_url))
    try:
        yield opened
    finally:
        opened.close()


def event(request_id: str, *, at: int = NOW_US, **changes: Any) -> NewEvent:
    """An application event with two match keys."""
    base = NewEvent(
        request_id,
        "partner-a",
        "application",
        at,
        b"\x08\x01payload-" + request_id.encode(),
        subject_id="app-" + request_id,
        keys=[("phone", "79990001122"), ("passport", "4510 123456")],
    )
    return replace(base, **changes)


# --- migrations ----------------------------------------------------------------------------


def test_migrations_apply_once_and_are_idempotent_on_restart(database_url: str) -> None:
    for _ in range(3):
        open_store(None, settings_for(database_url)).close()
    s = open_store(None, settings_for(database_url))
    try:
        versions = s._run_read(
            lambda tx: tx.execute("SELECT version FROM schema_migrations").fetchall()
        )
        # Every shipped version once, numbering gaps allowed (branches take fixed numbers).
        shipped = [m.version for m in store_migrations.load(s.backend)]
        assert [int(v[0]) for v in sorted(versions)] == shipped and shipped[:2] == [1, 2]
    finally:
        s.close()


def test_a_newer_schema_is_refused_with_a_clear_error(database_url: str) -> None:
    s = open_store(None, settings_for(database_url))

    def bump(tx: Any) -> None:
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at_us)"
            " VALUES (999, 'future', 'x', 0)"
        )

    s._run_read(bump)
    s.close()
    with pytest.raises(StoreOpenError, match="newer than this lendgate"):
        open_store(None, settings_for(database_url))


def test_migration_numbers_may_have_gaps_but_an_unknown_applied_one_is_refused(
    database_url: str,
) -> None:
    """Parallel branches take numbers from a plan (0002, 0006, 0012...): the runner
    applies what it has in order; a database with a migration this build lacks is refused
    with a clear error, not a crash."""
    known = [m.version for m in store_migrations.load(settings_for(database_url).backend)]
    missing = next(v for v in range(1, max(known)) if v not in known)
    s = open_store(None, settings_for(database_url))

    def add(tx: Any) -> None:
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at_us)"
            " VALUES (?, 'elsewhere', 'x', 0)",
            (missing,),
        )

    s._run_read(add)
    s.close()
    with pytest.raises(StoreOpenError, match=f"migration {missing}, which this lendgate"):
        open_store(None, settings_for(database_url))


def test_list_entries_move_to_a_clustered_table_with_their_versions(tmp_path: Path) -> None:
    """Migration 0017 (SQLite) rebuilds list_entries WITHOUT ROWID: a database written
    before it keeps every entry with the versions it was added and removed in."""
    url = f"sqlite:///{tmp_path}/lists.db"
    s = open_store(None, settings_for(url))
    try:
        run(
            s.put_definition(
                "d1", "list", "consortium/inns", b"{}", status="active", author="a", reason="r"
            )
        )
        run(s.change_list_entries("c1", "consortium/inns", add=["a", "b"], author="a", reason="r"))
        run(s.change_list_entries("c2", "consortium/inns", remove=["a"], author="a", reason="r"))
    finally:
        s.close()
    # Put the table back as it was before 0017 (a rowid table), and forget 0017.
    with sqlite3.connect(tmp_path / "lists.db") as conn:
        conn.executescript(
            "CREATE TABLE old_entries (list_name TEXT NOT NULL, value TEXT NOT NULL,"
            " added_in INTEGER NOT NULL, removed_in INTEGER,"
            " PRIMARY KEY (list_name, value, added_in));"
            "INSERT INTO old_entries SELECT * FROM list_entries;"
            "DROP TABLE list_entries; ALTER TABLE old_entries RENAME TO list_entries;"
            "DELETE FROM schema_migrations WHERE version = 17;"
        )
    conn.close()
    s = open_store(None, settings_for(url))
    try:
        assert run(s.list_entries("consortium/inns")) == ["b"]
        assert run(s.list_entries("consortium/inns", version=2)) == ["a", "b"]
        ddl = s._run_read(
            lambda tx: tx.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'list_entries'"
            ).fetchone()[0]
        )
        assert "WITHOUT ROWID" in ddl
    finally:
        s.close()


def test_a_corrupt_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lendgate.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreOpenError, match="cannot open SQLite database"):
        open_store(f"sqlite:///{path}", settings_for(f"sqlite:///{path}"))


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.close()
    with pytest.raises(StoreOpenError, match="not lendgate's"):
        open_store(None, settings_for(f"sqlite:///{path}"))


def test_an_unreachable_postgres_is_a_one_line_error() -> None:
    with pytest.raises(StoreOpenError, match="cannot connect to PostgreSQL") as info:
        open_store(None, settings_for("postgresql://nobody@127.0.0.1:9/none"))
    assert "\n" not in str(info.value)


# --- the event log -------------------------------------------------------------------------


def test_append_and_read_back(store: SqlStore) -> None:
    async def scenario() -> None:
        ack = await store.append_event(event("r1", response=b"report-1"))
        assert ack.seq >= 1
        assert not ack.duplicate
        assert ack.response == b"report-1"
        got = await store.get_event(ack.seq)
        assert got.request_id == "r1"
        assert got.payload == b"\x08\x01payload-r1"
        assert got.event_time_us == NOW_US
        assert got.received_at_us == ack.received_at_us
        assert got.keys == (("phone", "79990001122"), ("passport", "4510 123456"))
        outcome = await store.append_event(
            event("r1-outcome", kind="outcome", subject_id="app-r1", keys=())
        )
        assert outcome.seq > ack.seq
        about = await store.events_by_subject("partner-a", "app-r1")
        assert [e.kind for e in about] == ["application", "outcome"]
        await store.append_event(event("r2", keys=[("phone", "79990001122")]))
        await asyncio.to_thread(store.index_keys_blocking)
        await store.append_event(event("r3", keys=[("phone", "79990001122")]))
        # r1 and r2 come from the key index, r3 from the unindexed tail of the log.
        by_phone = await store.events_by_key("phone", "79990001122")
        assert [e.request_id for e in by_phone] == ["r3", "r2", "r1"]
        assert [
            e.request_id for e in await store.events_by_key("phone", "79990001122", limit=2)
        ] == ["r3", "r2"]
        await asyncio.to_thread(store.index_keys_blocking)
        assert await store.events_by_key("phone", "79990001122") == by_phone
        assert await store.events_by_key("phone", "nobody") == []
        assert await store.events_by_key("passport", "4510 123456", since_us=NOW_US + 1) == []
        last = await store.get_event_by_request("r3")
        assert last is not None
        assert await store.last_seq() == last.seq
        with pytest.raises(NotFoundError):
            await store.get_event(10_000)

    run(scenario())


def test_a_retried_append_returns_the_first_answer_and_changes_nothing(store: SqlStore) -> None:
    async def scenario() -> None:
        first = await store.append_event(event("same", response=b"first"))
        again = await store.append_event(event("same", response=b"second", payload=b"other"))
        assert again.duplicate
        assert (again.seq, again.received_at_us, again.response) == (
            first.seq,
            first.received_at_us,
            b"first",
        )
        # Duplicates inside one batch, too.
        acks = await store.append_events([event("twin"), event("twin"), event("same")])
        assert acks[0].seq == acks[1].seq
        assert [a.duplicate for a in acks] == [False, True, True]
        assert await store.last_seq() == acks[0].seq
        stored = await store.get_event(first.seq)
        assert stored.payload == event("same").payload
        assert len(await store.events_by_key("phone", "79990001122")) == 2

    run(scenario())


def test_a_retried_write_returns_the_first_answer_and_changes_nothing(store: SqlStore) -> None:
    async def scenario() -> None:
        one = await store.put_definition(
            "req-1", "rule", "same_phone", b"v1", status="test", author="ann", reason="new"
        )
        again = await store.put_definition(
            "req-1", "rule", "same_phone", b"v2", status="working", author="bob", reason="x"
        )
        assert again == one
        assert len(await store.list_definition_versions("rule", "same_phone")) == 1
        postings = [Posting("a", 100, "RUB"), Posting("b", -100, "RUB")]
        await store.post_ledger("pay-1", "t1", postings)
        await store.post_ledger("pay-1", "t1", postings)
        assert await store.balance("a", "RUB") == 100
        with pytest.raises(InvalidArgumentError, match="first used for post_ledger"):
            await store.put_definition(
                "pay-1", "rule", "x", b"", status="test", author="a", reason="r"
            )

    run(scenario())


# --- versioned definitions -----------------------------------------------------------------


def test_a_batch_mixing_new_and_stored_request_ids_appends_only_the_new(store: SqlStore) -> None:
    """The fast path inserts a batch as it is; a stored id in it sends the whole batch
    down the duplicate path, which must still store the new events, in order."""

    async def scenario() -> None:
        stored = await store.append_event(event("old", response=b"first"))
        acks = await store.append_events(
            [event("n1"), event("old", response=b"again"), event("n2"), event("n1")]
        )
        assert [a.duplicate for a in acks] == [False, True, False, True]
        assert acks[1].seq == stored.seq and acks[1].response == b"first"
        assert acks[3].seq == acks[0].seq
        assert acks[0].seq < acks[2].seq == await store.last_seq()
        page = await store.events_page(stored.seq, 10)
        assert [e.request_id for e in page] == ["n1", "n2"]
        # The key backlog holds the new events only: indexing adds exactly their keys.
        assert await asyncio.to_thread(store.index_keys_blocking) == 3
        assert len(await store.events_by_key("phone", "79990001122")) == 3

    run(scenario())


def test_unstorable_keys_are_refused_and_the_batch_enqueues_nothing(store: SqlStore) -> None:
    async def scenario() -> None:
        before = await store.last_seq()
        for bad in ([("", "x")], [("phone", "1\x1f2")], [("ph\x1eone", "1")]):
            with pytest.raises(InvalidArgumentError) as refused:
                await store.append_events([event("fine"), event("bad", keys=bad)])
            assert [v.field for v in refused.value.violations] == ["keys[0]"]
        assert await store.last_seq() == before
        assert await store.get_event_by_request("fine") is None
        # Repeated keys are stored once.
        ack = await store.append_event(event("twice", keys=[("ip", "10.0.0.1")] * 2))
        assert (await store.get_event(ack.seq)).keys == (("ip", "10.0.0.1"),)

    run(scenario())


def test_key_lookups_take_like_wildcards_literally(store: SqlStore) -> None:
    """The unindexed tail is narrowed with LIKE: ``%``, ``_`` and ``!`` in a value must
    match only themselves."""

    async def scenario() -> None:
        for rid, value in (("pct", "50%_off!"), ("plain", "50xyoff!"), ("other", "50%_offX")):
            await store.append_event(event(rid, keys=[("email", value)]))
        for indexed in (False, True):
            if indexed:
                await asyncio.to_thread(store.index_keys_blocking)
            found = await store.events_by_key("email", "50%_off!")
            assert [e.request_id for e in found] == ["pct"], indexed
            assert await store.events_by_key("email", "50%") == []
            assert await store.events_by_key("EMAIL", "50%_off!") == []

    run(scenario())


def test_rule_versions_history_and_restore(store: SqlStore) -> None:
    async def scenario() -> None:
        v1 = await store.put_definition(
            "a", "rule", "employer_fraud", b"score: 100", status="test", author="ann",
            reason="draft", expected_version=0,
        )  # fmt: skip
        v2 = await store.put_definition(
            "b", "rule", "employer_fraud", b"score: 250", status="working", author="bob",
            reason="tuned on Q3", expected_version=1,
        )  # fmt: skip
        with pytest.raises(FailedPreconditionError, match="at version 2, not 1"):
            await store.put_definition(
                "c", "rule", "employer_fraud", b"stale", status="test", author="eve",
                reason="stale edit", expected_version=1,
            )  # fmt: skip
        v3 = await store.restore_definition(
            "d", "rule", "employer_fraud", 1, author="carl", reason="v2 stopped good clients"
        )
        assert (v3.version, v3.body, v3.status, v3.restored_from) == (3, b"score: 100", "test", 1)
        assert (await store.get_definition("rule", "employer_fraud")) == v3
        assert (await store.get_definition("rule", "employer_fraud", 2)) == v2
        history = await store.list_definition_versions("rule", "employer_fraud")
        assert [(h.version, h.author, h.reason) for h in history] == [
            (1, "ann", "draft"),
            (2, "bob", "tuned on Q3"),
            (3, "carl", "v2 stopped good clients"),
        ]
        assert v1.created_at_us <= v2.created_at_us <= v3.created_at_us
        await store.put_definition(
            "e", "strategy", "main", b"graph", status="published", author="a", reason="r"
        )
        assert [d.name for d in await store.list_definitions("rule")] == ["employer_fraud"]
        with pytest.raises(NotFoundError):
            await store.get_definition("rule", "nope")
        with pytest.raises(NotFoundError):
            await store.restore_definition("f", "rule", "employer_fraud", 9, author="a", reason="")

    run(scenario())


def test_list_entries_are_versioned_and_restored(store: SqlStore) -> None:
    async def scenario() -> None:
        await store.put_definition(
            "l0", "list", "one_day_companies", b"", status="working", author="a", reason="new"
        )
        v2 = await store.change_list_entries(
            "l1", "one_day_companies", add=["7701", "7702", "7703"], author="a", reason="feed"
        )
        v3 = await store.change_list_entries(
            "l2", "one_day_companies", add=["7704"], remove=["7701"], author="b", reason="fix"
        )
        assert (v2.version, v3.version) == (2, 3)
        assert await store.list_entries("one_day_companies") == ["7702", "7703", "7704"]
        assert await store.list_entries("one_day_companies", 2) == ["7701", "7702", "7703"]
        assert await store.list_contains("one_day_companies", "7704")
        assert not await store.list_contains("one_day_companies", "7701")
        v4 = await store.restore_definition(
            "l3", "list", "one_day_companies", 2, author="c", reason="undo"
        )
        assert v4.restored_from == 2
        assert await store.list_entries("one_day_companies") == ["7701", "7702", "7703"]
        assert await store.list_entries("one_day_companies", 3) == ["7702", "7703", "7704"]

    run(scenario())


def test_list_entries_keep_every_character_in_bulk(store: SqlStore) -> None:
    """A bulk change goes in one statement (SQLite json_each, PostgreSQL COPY text):
    tabs, newlines, backslashes and quotes in a stored entry come back unchanged."""
    odd = ["a\tb", "line\nbreak", "back\\slash", "\\.", "cr\rlf", 'quote"s', "ünï\x1fcode"]
    plain = [f"v{i:05d}" for i in range(20_000)]

    async def scenario() -> None:
        await store.put_definition(
            "o0", "list", "odd\tname", b"", status="working", author="a", reason="new"
        )
        await store.change_list_entries(
            "o1", "odd\tname", add=odd + plain, author="a", reason="feed", distinct=True
        )
        assert await store.list_entries("odd\tname") == sorted(odd + plain)
        await store.change_list_entries("o2", "odd\tname", remove=odd[:3], author="a", reason="fix")
        assert await store.list_entries("odd\tname") == sorted(odd[3:] + plain)

    run(scenario())


# --- ledger, deals, models, incidents, reports ---------------------------------------------


def test_ledger_balances_to_zero(store: SqlStore) -> None:
    async def scenario() -> None:
        deal = Deal("deal-1", "auction-1", "bank", "mfo", 15_000, "RUB", 0, b"lead")
        await store.record_deal(
            "settle-1",
            deal,
            [
                Posting("buyer:mfo", -15_000, "RUB"),
                Posting("seller:bank", 13_500, "RUB"),
                Posting("platform:commission", 1_500, "RUB"),
            ],
            memo="lead sold",
        )
        await store.post_ledger(
            "fee-1",
            "refusal-fee-1",
            [Posting("seller:bank", -200, "RUB"), Posting("buyer:mfo", 200, "RUB")],
        )
        await store.post_ledger("usd-1", "usd", [Posting("x", 5, "USD"), Posting("y", -5, "USD")])
        assert await store.trial_balance() == {"RUB": 0, "USD": 0}
        assert await store.balance("buyer:mfo", "RUB") == -14_800
        assert await store.balance("seller:bank", "RUB") == 13_300
        assert (await store.get_deal("deal-1")).price_minor == 15_000
        with pytest.raises(InvalidArgumentError, match="do not balance"):
            await store.post_ledger("bad", "t", [Posting("x", 1, "RUB"), Posting("y", 2, "RUB")])
        with pytest.raises(InvalidArgumentError):
            await store.post_ledger("bad2", "t", [Posting("x", 1, "rub"), Posting("y", -1, "rub")])
        with pytest.raises(AlreadyExistsError):
            await store.record_deal(
                "settle-2", deal, [Posting("a", 1, "RUB"), Posting("b", -1, "RUB")]
            )
        assert await store.trial_balance() == {"RUB": 0, "USD": 0}

    run(scenario())


def test_models_incidents_and_reports(store: SqlStore) -> None:
    async def scenario() -> None:
        m1 = await store.put_model("m1", "fraud", b"onnx-1", metadata={"auc": 0.91}, author="ml")
        m2 = await store.put_model("m2", "fraud", b"onnx-2", metadata={"auc": 0.93}, author="ml")
        assert (m1.version, m2.version) == (1, 2)
        latest = await store.get_model("fraud")
        assert (latest.artifact, latest.metadata) == (b"onnx-2", {"auc": 0.93})
        assert (await store.get_model("fraud", 1)).sha256 == m1.sha256
        inc = await store.create_incident("i1", "case-1", b"alert", event_seq=7)
        assert inc.status == "open"
        with pytest.raises(AlreadyExistsError):
            await store.create_incident("i2", "case-1", b"alert")
        await store.update_incident("i3", "case-1", status="investigating", assignee="olga")
        await store.add_incident_comment("i4", "case-1", author="olga", body="called the client")
        got = await store.get_incident("case-1")
        assert (got.status, got.assignee) == ("investigating", "olga")
        assert [c.body for c in got.comments] == ["called the client"]
        with pytest.raises(NotFoundError):
            await store.add_incident_comment("i5", "case-2", author="x", body="y")
        report = Report("rep-1", "scoring", "partner-a", "app-1", 0, b"report")
        stored = await store.put_report("p1", report)
        assert stored.created_at_us > 0
        assert await store.get_report("rep-1") == stored

    run(scenario())


# --- snapshots (the rebuild hook) ----------------------------------------------------------


def test_snapshot_plus_tail_covers_the_log(store: SqlStore) -> None:
    async def scenario() -> None:
        assert await store.snapshots.load_latest() is None
        acks = await store.append_events([event(f"s{i}") for i in range(25)])
        await store.snapshots.save(acks[9].seq, b"state@10")
        await store.snapshots.save(acks[19].seq, b"state@20")
        await store.snapshots.save(acks[4].seq, b"old")  # older positions are kept at most 2
        latest = await store.snapshots.load_latest()
        assert latest is not None
        assert (latest.position, latest.data) == (acks[19].seq, b"state@20")
        tail = [
            e.request_id async for e in store.snapshots.events_after(latest.position, page_size=2)
        ]
        assert tail == [f"s{i}" for i in range(20, 25)]

    run(scenario())


def test_a_snapshot_larger_than_one_value_is_stored_in_parts(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both engines cap one value near 1 GB; a served state of millions of events is
    larger. Parts are written one write each; the row that makes the snapshot visible is
    written last, and a snapshot that misses a part is passed over for the older one."""
    monkeypatch.setattr(sqlstore, "SNAPSHOT_PART_BYTES", 10)

    async def scenario() -> None:
        await store.append_events([event(f"p{i}") for i in range(3)])
        older = bytes(range(35))
        await store.snapshots.save(2, older)
        latest = await store.snapshots.load_latest()
        assert latest is not None and (latest.position, latest.data) == (2, older)
        newer = b"state@3" * 9
        await store.snapshots.save(3, newer)
        await store.snapshots.save(3, newer)  # re-saving a position replaces it
        latest = await store.snapshots.load_latest()
        assert latest is not None and (latest.position, latest.data) == (3, newer)
        parts = store._run_read(
            lambda tx: tx.execute(
                "SELECT position, count(*) FROM snapshot_parts GROUP BY position ORDER BY 1"
            ).fetchall()
        )
        assert [tuple(map(int, r)) for r in parts] == [(2, 3), (3, 6)]

        def lose_a_part(tx: Tx, clock: int) -> bytes:
            tx.execute("DELETE FROM snapshot_parts WHERE position = 3 AND part = 4")
            return b""

        # A lost part (a save that never finished, a damaged database): the older one.
        await store._write(None, "test", lose_a_part)
        latest = await store.snapshots.load_latest()
        assert latest is not None and (latest.position, latest.data) == (2, older)
        # Only the latest two are kept, parts included.
        await store.snapshots.save(4, b"small")
        parts = store._run_read(
            lambda tx: tx.execute("SELECT DISTINCT position FROM snapshot_parts").fetchall()
        )
        assert [int(r[0]) for r in parts] == [3]

    run(scenario())


def test_a_snapshot_in_parts_leaves_the_writer_to_the_appends_between_parts(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each part, a paced save (a serving process's background snapshot) waits in
    proportion to the time the part took (the writer's share for snapshots,
    SNAPSHOT_WRITE_SHARE), and appends submitted meanwhile are acknowledged before the
    save ends; an unpaced save (start-up, shutdown, a bulk load) does not wait."""
    monkeypatch.setattr(sqlstore, "SNAPSHOT_PART_BYTES", 10)
    monkeypatch.setattr(sqlstore, "SNAPSHOT_WRITE_SHARE", 0.2)
    pauses: list[float] = []
    appended: list[int] = []

    async def scenario() -> None:
        async def pause(seconds: float) -> None:
            pauses.append(seconds)
            if len(pauses) == 2:  # mid-save: an append goes through before the save ends
                (ack,) = await store.append_events([event("during")])
                appended.append(ack.seq)
            await asyncio.sleep(0)

        store.snapshots._pause = pause
        await store.append_events([event("before")])
        await store.snapshots.save(1, bytes(range(60)))
        assert pauses == []
        await store.snapshots.save(1, bytes(range(60)), paced=True)
        latest = await store.snapshots.load_latest()
        assert latest is not None and latest.data == bytes(range(60))

    run(scenario())
    assert len(pauses) == 5  # after each of the parts beyond the first value
    assert all(p > 0 for p in pauses)  # 4x each part's own time, which is never 0
    assert appended == [2]


def test_key_index_resumes_after_restart_from_log_then_backlog(database_url: str) -> None:
    """Unindexed events of a previous run are read back; new ones come from the backlog."""
    quiet = settings_for(database_url, key_index_interval_s=3600)

    async def first() -> None:
        s = open_store(None, quiet)
        try:
            await s.append_events([event(f"a{i}") for i in range(5)])
            # A duplicate adds no keys.
            await s.append_event(event("a0"))
        finally:
            await s.aclose()

    async def second() -> None:
        s = open_store(None, quiet)
        try:
            await s.append_events([event(f"b{i}") for i in range(3)])
            assert await asyncio.to_thread(s.index_keys_blocking) == 8
            assert await asyncio.to_thread(s.index_keys_blocking) == 0
            keys = s._run_read(
                lambda tx: tx.execute("SELECT count(*) FROM event_keys").fetchone()[0]
            )
            assert int(keys) == 2 * 8
            found = await s.events_by_key("phone", "79990001122", limit=100)
            assert len(found) == 8
            await s.append_event(event("c0"))
            assert await asyncio.to_thread(s.index_keys_blocking) == 1
            assert len(await s.events_by_key("phone", "79990001122", limit=100)) == 9
        finally:
            await s.aclose()

    run(first())
    run(second())


def test_key_index_where_log_and_backlog_overlap_indexes_each_key_once(
    database_url: str,
) -> None:
    """The index reads events back from the log while the writer keeps handing it new
    ones: where both cover an event (a backlog dropped over its limit, then refilled), each
    key row is inserted once and the index ends at the log's end."""
    quiet = settings_for(database_url, key_index_interval_s=3600)

    async def scenario() -> None:
        s = open_store(None, quiet)
        try:
            await s.append_events([event(f"t{i}") for i in range(4)])
            s._writer.key_backlog.clear()  # as when nobody indexed for millions of keys
            await s.append_events([event(f"u{i}") for i in range(2)])
            assert await asyncio.to_thread(s.index_keys_blocking) == 6
            assert await asyncio.to_thread(s.index_keys_blocking) == 0
            keys = s._run_read(lambda tx: tx.execute("SELECT count(*) FROM event_keys").fetchone())
            assert int(keys[0]) == 2 * 6
            assert len(await s.events_by_key("phone", "79990001122", limit=100)) == 6
        finally:
            await s.aclose()

    run(scenario())


def test_appends_do_not_wait_for_the_key_index(database_url: str) -> None:
    """The index has its own file (SQLite) or rows (PostgreSQL) and its own connection:
    while another connection holds the index's write lock, appends are still acknowledged
    (they used to queue behind every index operation), and the index catches up after."""
    quiet = settings_for(database_url, key_index_interval_s=3600)

    async def scenario() -> None:
        s = open_store(None, quiet)
        try:
            blocker: Any
            if database_url.startswith("sqlite"):
                blocker = sqlite3.connect(
                    Path(database_url.removeprefix("sqlite:///")).with_name("lendgate-keys.db"),
                    isolation_level=None,
                )
                blocker.execute("BEGIN IMMEDIATE")
            else:
                blocker = psycopg.connect(database_url, autocommit=False)
                blocker.execute("LOCK TABLE event_keys IN ACCESS EXCLUSIVE MODE")
            try:
                acks = await asyncio.wait_for(
                    s.append_events([event(f"w{i}") for i in range(3)]), timeout=10
                )
                assert [a.duplicate for a in acks] == [False, False, False]
                indexing = asyncio.create_task(asyncio.to_thread(s.index_keys_blocking))
                await asyncio.sleep(0.2)
                assert not indexing.done()  # the index waits for its own lock...
                await s.append_event(event("w3"))  # ...and the log does not
            finally:
                blocker.rollback()
                blocker.close()
            assert await indexing >= 3
            await asyncio.to_thread(s.index_keys_blocking)
            assert len(await s.events_by_key("phone", "79990001122", limit=100)) == 4
        finally:
            await s.aclose()

    run(scenario())


def test_key_index_file_of_another_log_is_rebuilt(tmp_path: Path) -> None:
    """SQLite: an index file that belongs to another database (or runs ahead of this log,
    as after restoring an older copy) is emptied at start and rebuilt from the log."""
    url = f"sqlite:///{tmp_path}/var/lendgate.db"
    other = f"sqlite:///{tmp_path}/other/lendgate.db"
    quiet = settings_for(url, key_index_interval_s=3600)

    async def fill(target: str, prefix: str, count: int) -> None:
        s = open_store(None, settings_for(target, key_index_interval_s=3600))
        try:
            await s.append_events([event(f"{prefix}{i}") for i in range(count)])
            await asyncio.to_thread(s.index_keys_blocking)
        finally:
            await s.aclose()

    run(fill(url, "a", 2))
    run(fill(other, "b", 5))
    keys_file = tmp_path / "var" / "lendgate-keys.db"
    keys_file.unlink()
    (tmp_path / "other" / "lendgate-keys.db").rename(keys_file)

    async def check() -> None:
        s = open_store(None, quiet)
        try:
            assert s._keys.through() == 0
            assert await asyncio.to_thread(s.index_keys_blocking) == 2
            assert len(await s.events_by_key("phone", "79990001122", limit=100)) == 2
        finally:
            await s.aclose()

    run(check())
    ahead = sqlite3.connect(keys_file, isolation_level=None)
    ahead.execute("UPDATE event_keys_indexed SET through_seq = 999")
    ahead.close()
    run(check())


def test_key_index_takes_the_backlog_a_bounded_prefix_per_operation(database_url: str) -> None:
    """One index transaction covers at most ``key_index_batch`` events; the passes still
    index every event exactly once, events without keys included, and a look-up is exact
    while the index is part-way."""
    bounded = settings_for(database_url, key_index_interval_s=3600, key_index_batch=2)

    async def scenario() -> None:
        s = open_store(None, bounded)
        try:
            await s.append_events([event(f"k{i}") for i in range(3)])
            await s.append_event(event("nokeys", keys=[]))
            await s.append_events([event(f"m{i}") for i in range(3)])
            assert await asyncio.to_thread(s._keys.catch_up, 2) == 2
            # Part-way: two events indexed, five scanned from the log; all seven found.
            assert len(await s.events_by_key("phone", "79990001122", limit=100)) == 6
            assert await asyncio.to_thread(s.index_keys_blocking) == 5
            assert await asyncio.to_thread(s.index_keys_blocking) == 0
            keys = s._run_read(lambda tx: tx.execute("SELECT count(*) FROM event_keys").fetchone())
            assert int(keys[0]) == 2 * 6
            through = s._run_read(
                lambda tx: tx.execute("SELECT through_seq FROM event_keys_indexed").fetchone()
            )
            last = s._run_read(lambda tx: tx.execute("SELECT max(seq) FROM events").fetchone())
            assert int(through[0]) == int(last[0])
            assert len(await s.events_by_key("passport", "4510 123456", limit=100)) == 6
        finally:
            await s.aclose()

    run(scenario())


# --- retention -----------------------------------------------------------------------------


def test_retention_deletes_only_expired_events_in_batches(database_url: str) -> None:
    s = open_store(None, settings_for(database_url, retention_days=180, retention_batch=3))
    try:

        async def scenario() -> None:
            old = [event(f"old{i}", at=NOW_US - 200 * DAY_US) for i in range(10)]
            new = [event(f"new{i}", at=NOW_US - 10 * DAY_US) for i in range(4)]
            await s.append_events(old + new)
            assert await asyncio.to_thread(s.index_keys_blocking) == 14
            result = await s.purge_expired(now_us=NOW_US)
            assert result.events == 10
            left = await s.events_by_key("phone", "79990001122", limit=100)
            assert sorted(e.request_id for e in left) == sorted(e.request_id for e in new)
            remaining_keys = s._run_read(
                lambda tx: tx.execute("SELECT count(*) FROM event_keys").fetchone()[0]
            )
            assert int(remaining_keys) == 2 * len(new)
            assert (await s.purge_expired(now_us=NOW_US)).events == 0

        run(scenario())
    finally:
        s.close()


def test_retention_prunes_idempotency_keys_and_key_index_rows_past_the_horizon(
    database_url: str,
) -> None:
    """What retention removes besides events: the first answers of other writes (by their
    write time) and the key-index rows of the removed events; a retry older than the
    horizon is then evaluated again."""
    s = open_store(None, settings_for(database_url, retention_days=180, retention_batch=2))

    def count(table: str) -> int:
        sql = f"SELECT count(*) FROM {table}"
        return int(s._run_read(lambda tx: tx.execute(sql).fetchone()[0]))

    async def scenario() -> None:
        now = time.time_ns() // 1000
        legs = [Posting("a", 5, "RUB"), Posting("b", -5, "RUB")]
        for i in range(5):
            await s.post_ledger(f"w{i}", f"txn{i}", legs)
        old = [event(f"old{i}", at=now - 200 * DAY_US) for i in range(3)]
        fresh = [event(f"new{i}", at=now) for i in range(2)]
        await s.append_events(old + fresh)
        await asyncio.to_thread(s.index_keys_blocking)
        assert (count("idempotency"), count("event_keys")) == (5, 2 * 5)
        # Tomorrow: the old events and their index rows go; the writes are recent.
        first = await s.purge_expired(now_us=now + DAY_US)
        assert (first.events, first.idempotency_keys) == (3, 0)
        assert (count("idempotency"), count("event_keys")) == (5, 2 * 2)
        with pytest.raises(AlreadyExistsError):  # not a retry any more: evaluated again
            await s.post_ledger("w0-new-id", "txn0", legs)
        assert (await s.post_ledger("w0", "txn0", legs)).txn_id == "txn0"  # a retry
        # Past the horizon of everything: batches of two until nothing is left.
        later = await s.purge_expired(now_us=now + 200 * DAY_US)
        assert (later.events, later.idempotency_keys) == (2, 5)
        assert (count("idempotency"), count("event_keys"), count("events")) == (0, 0, 0)
        with pytest.raises(AlreadyExistsError):  # the retry is now a new write
            await s.post_ledger("w0", "txn0", legs)

    try:
        run(scenario())
    finally:
        s.close()


def test_background_retention_runs_while_writers_write(database_url: str) -> None:
    s = open_store(
        None,
        settings_for(database_url, retention_days=1, retention_batch=50, retention_interval_s=0.05),
    )
    try:

        async def scenario() -> None:
            now = time.time_ns() // 1000
            await s.append_events([event(f"old{i}", at=now - 2 * DAY_US) for i in range(500)])
            fresh = await s.append_events([event(f"new{i}", at=now) for i in range(200)])
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if len(await s.events_by_key("phone", "79990001122", limit=1000)) == 200:
                    break
                await s.append_event(event(f"more{time.monotonic_ns()}", at=now, keys=()))
                await asyncio.sleep(0.01)
            left = await s.events_by_key("phone", "79990001122", limit=1000)
            assert {e.seq for e in left} == {a.seq for a in fresh}

        run(scenario())
    finally:
        s.close()


# --- concurrency and crashes ---------------------------------------------------------------


def test_concurrent_writers_from_many_threads_and_tasks(store: SqlStore) -> None:
    threads, per_thread = 4, 300
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        async def go() -> None:
            await asyncio.gather(
                *(store.append_event(event(f"t{t}-{i}")) for i in range(per_thread)),
                *(
                    store.post_ledger(
                        f"l{t}-{i}",
                        f"txn{t}-{i}",
                        [Posting("a", i + 1, "RUB"), Posting("b", -(i + 1), "RUB")],
                    )
                    for i in range(20)
                ),
            )

        try:
            run(go())
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []

    async def check() -> None:
        events = [e async for e in store.snapshots.events_after(0)]
        assert len(events) == threads * per_thread
        assert len({e.request_id for e in events}) == threads * per_thread
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert await store.trial_balance() == {"RUB": 0}
        assert await store.balance("a", "RUB") == threads * sum(range(1, 21))

    run(check())


@pytest.mark.postgres
def test_a_lost_connection_is_unavailable_then_the_writer_reconnects(postgres_url: str) -> None:
    # No background key indexing: its pass could meet the dead connection first.
    s = open_store(None, settings_for(postgres_url, key_index_interval_s=3600))
    try:

        async def scenario() -> None:
            await s.append_event(event("before"))
            tx = s._writer._tx
            assert tx is not None
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (tx.raw.info.backend_pid,))
            with pytest.raises(UnavailableError):
                await s.append_event(event("during"))
            deadline = time.monotonic() + 10
            while True:
                try:
                    ack = await s.append_event(event("during"))
                    break
                except UnavailableError:
                    assert time.monotonic() < deadline, "the writer did not reconnect"
                    await asyncio.sleep(0.05)
            assert not ack.duplicate
            assert (await s.get_event(ack.seq)).request_id == "during"

        run(scenario())
    finally:
        s.close()


def test_no_acknowledged_write_is_lost_to_kill_9(database_url: str) -> None:
    open_store(None, settings_for(database_url)).close()  # migrate before the clock starts
    child = subprocess.Popen(
        [sys.executable, str(CHILD), database_url, "crash"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 30
    while len(acked) < 3000 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acked.append(line.decode().rstrip("\n"))
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL, err.decode()  # killed mid-stream, not exited
    # Lines flushed before the kill were acknowledged too; a torn last line was not.
    acked += [line.decode() for line in rest.split(b"\n")[:-1]]
    assert len(acked) >= 3000, err.decode()

    s = open_store(None, settings_for(database_url))
    try:
        stored = s._run_read(
            lambda tx: {
                row[0]
                for row in tx.execute(
                    "SELECT request_id FROM events WHERE request_id LIKE ?", ("crash-%",)
                ).fetchall()
            }
        )
    finally:
        s.close()
    missing = [r for r in acked if r not in stored]
    assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    assert len(stored) >= len(acked)


# --- settings ---------------------------------------------------------------------------------


def test_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = StoreSettings.from_env(
        {
            "LENDGATE_DATABASE_URL": "postgresql://u@h/db",
            "LENDGATE_COMMIT_DELAY_MS": "0.5",
            "LENDGATE_SQLITE_SYNCHRONOUS": "normal",
            "LENDGATE_RETENTION_DAYS": "30",
        }
    )
    assert (settings.backend, settings.commit_delay_ms) == ("postgres", 0.5)
    assert (settings.sqlite_synchronous, settings.retention_days) == ("NORMAL", 30)
    assert StoreSettings.from_env({}).database_url == "sqlite:///var/lendgate.db"
    with pytest.raises(InvalidArgumentError, match="NORMAL or FULL"):
        StoreSettings.from_env({"LENDGATE_SQLITE_SYNCHRONOUS": "OFF"})
    with pytest.raises(InvalidArgumentError, match="not a number"):
        StoreSettings.from_env({"LENDGATE_COMMIT_DELAY_MS": "soon"})
    with pytest.raises(InvalidArgumentError, match="sqlite:/// or postgresql://"):
        _ = StoreSettings(database_url="mysql://x").backend

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LENDGATE_DATABASE_URL", "sqlite:///var/lendgate.db")
    monkeypatch.setenv("LENDGATE_COMMIT_DELAY_MS", "0")
    s = open_store()
    try:
        assert s.backend == "sqlite"
        assert run(s.append_event(event("env"))).seq == 1
    finally:
        s.close()
    assert (tmp_path / "var" / "lendgate.db").exists()


# --- recovery of the in-memory state -------------------------------------------------------

RECOVERY_CHILD = Path(__file__).with_name("recovery_crash_child.py")


def test_state_after_kill_9_and_restart_answers_as_before(database_url: str) -> None:

    open_store(None, settings_for(database_url)).close()
    child = subprocess.Popen(
        [sys.executable, str(RECOVERY_CHILD), database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    states: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        states.append(line.decode())
        if int(line.split()[1]) >= 3000:
            break
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL, err.decode()
    states += [line.decode() + "\n" for line in rest.split(b"\n")[:-1]]
    _, position, before = states[-1].split(" ", 2)
    assert int(position) >= 3000, err.decode()

    s = open_store(None, settings_for(database_url))
    try:

        async def restart() -> None:
            snapshot = await s.snapshots.load_latest()
            assert snapshot is not None and 0 < snapshot.position <= int(position)
            keeper = StateKeeper(s, machine())
            report = await keeper.recover(until=int(position))
            assert report.snapshot_position == snapshot.position
            assert report.position == int(position)
            assert 0 <= report.replayed <= int(position) - snapshot.position
            after = json.loads(json.dumps(answers(keeper.machine, probes())))  # type: ignore[arg-type]
            assert after == json.loads(before)
            # And the whole log: every acknowledged event is in the state after restart.
            full = StateKeeper(s, machine())
            assert (await full.recover()).position == await s.last_seq()

        run(restart())
    finally:
        s.close()
