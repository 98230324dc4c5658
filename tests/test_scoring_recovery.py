"""Restarting the scoring service: the latest snapshot plus the log's tail gives the state
a whole-log replay gives, and a never-restarted service's answers, over real gRPC and a
real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from lendgate import _core
from lendgate.aggregates import AggregateStore
from lendgate.errors import AbortedError, InvalidArgumentError
from lendgate.scoring import ScoringService, StateSettings
from lendgate.scoring import service as service_module
from lendgate.scoring.matching import MatchIndex
from lendgate.scoring.pack import load_pack
from lendgate.store import Snapshot, Store, StoreSettings, open_store, sqlstore
from lendgate.v1 import scoring_pb2, scoring_pb2_grpc
from servers.scoring import ScoringServicer
from tests.conftest import clean_env
from tests.test_scoring import T0, Person, application
from tests.test_scoring_service import Client, _comparable, rule
from tests.test_server import serve_in_process

NO_BACKGROUND = StateSettings(snapshot_every_events=0, snapshot_every_seconds=0, retention_days=0)


@dataclass
class Served:
    service: ScoringService
    client: Callable[[str], Client]


@asynccontextmanager
async def served(db: Path, state: StateSettings = NO_BACKGROUND) -> AsyncIterator[Served]:
    """A new ScoringService over the SQLite file ``db`` (recovered from it), over gRPC."""
    settings = StoreSettings(
        database_url=f"sqlite:///{db}",
        retention_interval_s=0,
        commit_delay_ms=0,
        sqlite_synchronous="NORMAL",
    )
    store = await asyncio.to_thread(open_store, None, settings)
    service = ScoringService(store, state=state)
    try:
        await service.recover()
        async with serve_in_process({"lendgate.v1.ScoringService": ScoringServicer(service)}) as ch:
            stub = scoring_pb2_grpc.ScoringServiceStub(ch)
            yield Served(service, lambda partner: Client(stub, partner))
    finally:
        await service.aclose(snapshot=False)
        await store.aclose()


def person(i: int) -> Person:
    """Applicants that share phones, passports and employers in overlapping groups."""
    return Person(
        last=("Ivanov", "Petrov", "Sidorov", "Orlov", "Popov")[i % 5],
        first=("Ivan", "Petr")[i % 2],
        series=f"45{i % 4:02d}",
        number=f"{100000 + i % 5}",
        phone=f"+7916{1000000 + i % 6:07d}",
        client=f"c-{i % 7}",
        inn=f"77{i % 3:08d}",
        employees=(3, 1000)[i % 2],
    )


async def history(client: Callable[[str], Client], start: int, stop: int) -> None:
    """Applications of three partners with outcomes (confirmed fraud, refusals) mixed in;
    every id is fixed so two runs are the same history."""
    for i in range(start, stop):
        c = client(("bank-a", "bank-b", "bank-c")[i % 3])
        event = application(person(i), minutes=i, app_id=f"h-{i}", ip=f"10.0.0.{i % 4}")
        await c.check(event, request_id=f"h-{i}")
        if i % 4 == 1:
            await c.stub.ReportOutcome(
                scoring_pb2.ReportOutcomeRequest(
                    request_id=f"o-{i}",
                    application_id=f"h-{i - 3 if i % 8 == 1 and i >= 3 else i}",
                    outcome=outcome(i),
                ),
                metadata=c.md,
                timeout=20,
            )


def outcome(i: int) -> scoring_pb2.Outcome:
    out = scoring_pb2.Outcome(
        fraud_status=scoring_pb2.FRAUD_STATUS_CONFIRMED
        if i % 3
        else scoring_pb2.FRAUD_STATUS_UNSPECIFIED,
        decision=scoring_pb2.APPLICATION_DECISION_REFUSED,
    )
    out.event_time.FromDatetime(T0 + timedelta(minutes=i, seconds=30))
    return out


async def probes(client: Callable[[str], Client]) -> list[scoring_pb2.Report]:
    """Checks that read the whole state: matches, outcome marks, windowed counters."""
    reports = []
    for i in range(6):
        c = client(("bank-a", "bank-b")[i % 2])
        event = application(person(i + 1), minutes=200 + i, app_id=f"p-{i}", ip="10.0.0.1")
        reports.append(_comparable(await c.check(event, request_id=f"p-{i}")))
    return reports


def run(body: Callable[[], Coroutine[None, None, None]]) -> None:
    asyncio.run(body())


def test_restart_answers_like_a_service_never_restarted_with_and_without_a_snapshot(
    tmp_path: Path,
) -> None:
    straight, snap, full = (tmp_path / n for n in ("straight.db", "snap.db", "full.db"))
    answers: dict[str, list[scoring_pb2.Report]] = {}
    states: dict[str, bytes] = {}

    async def never_restarted() -> None:
        async with served(straight) as s:
            await history(s.client, 0, 40)
            answers["straight"] = await probes(s.client)

    async def with_snapshot() -> None:
        async with served(snap) as s:
            await history(s.client, 0, 25)
            assert await s.service.snapshot_now() > 0
            await history(s.client, 25, 40)  # the tail, with outcomes of earlier events
        shutil.copy(snap, full)
        async with served(snap) as s:
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.snapshot_position > 0
            assert 0 < recovery.replayed < recovery.position  # only the tail
            states["snap"] = s.service.index.snapshot()
            answers["snap"] = await probes(s.client)

    async def whole_log() -> None:
        async with served(full) as s:
            await s.service.store.snapshots.save(10_000, b"LGSS\x09 from a newer build")
        async with served(full) as s:  # an unreadable snapshot: the whole log instead
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.snapshot_position == 0
            assert recovery.replayed == recovery.position
            states["full"] = s.service.index.snapshot()
            answers["full"] = await probes(s.client)

    run(never_restarted)
    run(with_snapshot)
    run(whole_log)
    fired = {r.rule for report in answers["straight"] for r in report.fired_rules}
    assert {"rules/s02-phone-other-name", "rules/s06-confirmed-fraud-applicant"} <= fired
    marks = [m.fraud_status for r in answers["straight"] for f in r.fired_rules for m in f.matches]
    assert scoring_pb2.FRAUD_STATUS_CONFIRMED in marks
    assert states["snap"] == states["full"]
    assert answers["snap"] == answers["straight"]
    assert answers["full"] == answers["straight"]


def test_a_final_snapshot_at_shutdown_leaves_nothing_to_replay(tmp_path: Path) -> None:
    db = tmp_path / "s.db"

    async def body() -> None:
        async with served(db) as s:
            await history(s.client, 0, 10)
            await s.service.aclose()  # what `lendgate serve` does on SIGTERM
        async with served(db) as s:
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.replayed == 0
            assert recovery.snapshot_position == recovery.position > 0
            listed = await s.client("bank-a").stub.ListIncidents(
                scoring_pb2.ListIncidentsRequest(), metadata=s.client("bank-a").md
            )
            assert len(listed.incidents) == len(s.service._incidents.get("bank-a", []))

    run(body)


BY_COUNT = StateSettings(
    snapshot_every_events=5, snapshot_every_seconds=0, retention_days=0, tick_s=0.01
)
"""A snapshot every 5 events, looked for every 10 ms."""


async def background_snapshot(store: Store) -> Snapshot | None:
    """The latest snapshot once the background task has stored one (its next ticks;
    not a timing check), or ``None`` if none came."""
    for _ in range(2000):
        latest = await store.snapshots.load_latest()
        if latest is not None:
            return latest
        await asyncio.sleep(0.01)
    return None


def test_snapshots_are_taken_in_the_background_by_event_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot falls due every 5 events and is stored paced: the writer is left to
    the appends between its parts."""
    state = BY_COUNT
    monkeypatch.setattr(sqlstore, "SNAPSHOT_PART_BYTES", 4096)  # a state of many parts
    pauses: list[float] = []

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    async def body() -> None:
        async with served(tmp_path / "b.db", state) as s:
            store = s.service.store
            store.snapshots._pause = record  # type: ignore[attr-defined]
            await history(s.client, 0, 12)
            latest = await background_snapshot(store)
            assert latest is not None and 0 < latest.position <= await store.last_seq()
            assert pauses and all(p > 0 for p in pauses)

    run(body)


def test_a_replayed_tail_counts_toward_the_next_snapshot(tmp_path: Path) -> None:
    """A restart that replayed a tail takes a snapshot as soon as the tail alone is due,
    with no new traffic, so the restart after it does not replay the tail again."""
    db = tmp_path / "t.db"
    state = BY_COUNT

    async def body() -> None:
        async with served(db) as s:  # no snapshot in the background, none at the end
            await history(s.client, 0, 8)
        async with served(db, state) as s:
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.replayed >= 5
            store = s.service.store
            latest = await background_snapshot(store)
            assert latest is not None and latest.position == await store.last_seq()
        async with served(db) as s:
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.replayed == 0

    run(body)


def test_a_snapshot_covers_exactly_the_checks_it_holds(tmp_path: Path) -> None:
    """A check applied just before the capture, whose append has not been submitted yet,
    is inside the snapshot's log position (else a restart would apply it twice)."""
    db = tmp_path / "s.db"

    async def body() -> None:
        async with served(db) as s:
            await s.client("bank-a").check(application(Person(), minutes=1), request_id="a")
            request = scoring_pb2.CheckApplicationRequest(
                request_id="b", application=application(Person(last="Other"), minutes=2)
            ).SerializeToString()
            check = asyncio.ensure_future(s.service.check("application", request, "bank-a"))
            snap = asyncio.ensure_future(s.service.snapshot_now())  # captures after b applied
            await check
            assert await snap == await s.service.store.last_seq() == 2
            held = s.service.index.snapshot()
        async with served(db) as s:
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.snapshot_position == 2
            assert recovery.replayed == 0 and s.service.index.snapshot() == held

    run(body)


def test_a_forked_capture_is_the_state_at_the_fork(tmp_path: Path) -> None:
    """The snapshot is captured by a forked child (serving pauses only for the fork):
    its bytes are the in-process capture of the same state, and a restart from it
    answers like the service that took it."""
    db = tmp_path / "f.db"
    forking = replace(NO_BACKGROUND, fork_capture=True)

    async def body() -> None:
        async with served(db, forking) as s:
            await history(s.client, 0, 9)
            child = s.service._fork_capture()
            assert child is not None  # fork is available and grpc's fork handlers are off
            forked = await asyncio.to_thread(service_module._collect_capture, *child)
            assert forked == s.service._capture()
            await s.service.snapshot_now()
            assert s.service.forked_captures == 1
        replayed = tmp_path / "replayed.db"
        shutil.copy(db, replayed)
        with sqlite3.connect(replayed) as con:  # this copy replays the whole log instead
            con.execute("DELETE FROM snapshot_parts")
            con.execute("DELETE FROM snapshots")
        async with served(db, forking) as s:
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.snapshot_position > 0
            assert recovery.replayed == 0
            from_snapshot = await probes(s.client)
        async with served(replayed) as s:
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.snapshot_position == 0
            assert await probes(s.client) == from_snapshot

    run(body)


def test_a_failed_forked_capture_falls_back_to_capturing_in_process(tmp_path: Path) -> None:
    """A child that dies does not lose the snapshot: it is captured in the serving
    process instead, and later snapshots stop forking."""
    db = tmp_path / "h.db"
    parent = os.getpid()

    async def body() -> None:
        async with served(db, replace(NO_BACKGROUND, fork_capture=True)) as s:
            await history(s.client, 0, 5)
            capture = s.service._capture

            def dies_in_the_child() -> bytes:
                if os.getpid() != parent:
                    time.sleep(0.5)  # a check is applied meanwhile
                    os._exit(7)
                return capture()

            s.service._capture = dies_in_the_child  # type: ignore[method-assign]
            snapshot = asyncio.ensure_future(s.service.snapshot_now())
            await asyncio.sleep(0.1)
            await s.client("bank-a").check(application(person(40), minutes=300), request_id="x")
            position = await snapshot
            assert s.service.forked_captures == 0
            assert not s.service._state.fork_capture
            latest = await s.service.store.snapshots.load_latest()
            # The check applied while the child ran is inside the snapshot and its position.
            assert latest is not None and latest.position == position
            assert position == await s.service.store.last_seq()
            assert latest.data == capture()

    run(body)


def test_a_snapshot_and_tail_restart_knows_every_logged_key(tmp_path: Path) -> None:
    """The logged request keys travel in the snapshot and the tail notes its own: after a
    snapshot+tail restart, new keys skip the store read, and a retry of a key from before
    the snapshot or from the tail returns the first report and changes nothing."""
    db = tmp_path / "k.db"
    first: dict[str, scoring_pb2.Report] = {}

    async def body() -> None:
        async with served(db) as s:
            c = s.client("bank-a")
            first["early"] = await c.check(application(Person(), minutes=1), request_id="early")
            assert await s.service.snapshot_now() == 1
            first["tail"] = await c.check(
                application(Person(last="Other"), minutes=2), request_id="tail"
            )
        async with served(db) as s:
            recovery = s.service.last_recovery
            assert recovery is not None and (recovery.snapshot_position, recovery.replayed) == (
                1,
                1,
            )
            assert s.service.knows_every_logged_key
            core = s.service.index._core
            assert core.maybe_logged("bank-a/early") and core.maybe_logged("bank-a/tail")
            assert not core.maybe_logged("bank-a/new")
            c = s.client("bank-a")
            for key, event in (("early", application(Person(), minutes=1)), ("tail", None)):
                again = await c.check(
                    event or application(Person(last="Other"), minutes=2), request_id=key
                )
                assert again == first[key]
            assert await s.service.store.last_seq() == 2 and s.service.rebuilds == 0

    run(body)


def test_a_refused_write_is_rebuilt_from_the_snapshot_and_the_tail(tmp_path: Path) -> None:
    """After the store refuses a check's write, the state is rebuilt from the latest
    snapshot plus the log after it (not the whole log), and holds no trace of the check."""
    db = tmp_path / "r.db"

    async def body() -> None:
        async with served(db) as s:
            c = s.client("bank-a")
            for i, last in enumerate(("Alpha", "Beta")):
                await c.check(application(Person(last=last, client=f"c{i}"), minutes=i))
            assert await s.service.snapshot_now() == 2
            await c.check(application(Person(last="Gamma", client="c2"), minutes=2))
            with sqlite3.connect(db) as con:
                con.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON events"
                    " WHEN NEW.request_id = 'bank-a/doomed'"
                    " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            with pytest.raises(grpc.aio.AioRpcError):
                await c.check(application(Person(last="Delta", client="c3")), request_id="doomed")
            assert s.service.rebuilds == 1
            probe = await c.check(application(Person(last="Omega", client="c9"), minutes=5))
            recovery = s.service.last_recovery
            assert recovery is not None and (recovery.snapshot_position, recovery.replayed) == (
                2,
                1,
            )
            assert s.service.knows_every_logged_key
            # Alpha, Beta, Gamma share the phone; the refused Delta left no trace.
            assert len(rule(probe, "s02-phone-other-name").matches) == 3

    run(body)


def test_a_snapshot_covering_a_refused_write_is_not_stored(tmp_path: Path) -> None:
    """A capture that holds a check whose write the store then refuses would label a
    state the log does not have: the snapshot is dropped, and the state rebuilt."""
    db = tmp_path / "d.db"

    async def body() -> None:
        async with served(db) as s:
            await s.client("bank-a").check(application(Person(), minutes=1), request_id="a")
            with sqlite3.connect(db) as con:
                con.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON events"
                    " WHEN NEW.request_id = 'bank-a/doomed'"
                    " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            request = scoring_pb2.CheckApplicationRequest(
                request_id="doomed", application=application(Person(last="Other"), minutes=2)
            ).SerializeToString()
            check = asyncio.ensure_future(s.service.check("application", request, "bank-a"))
            snap = asyncio.ensure_future(s.service.snapshot_now())  # holds the doomed check
            checked, snapped = await asyncio.gather(check, snap, return_exceptions=True)
            assert isinstance(checked, Exception)
            assert isinstance(snapped, AbortedError) and snapped.reason == "STATE_DIVERGED"
            assert await s.service.store.snapshots.load_latest() is None
            assert s.service.rebuilds == 1
            assert await s.service.snapshot_now() == 1  # after the rebuild: the log's state

    run(body)


def _indexed(apps: list[tuple[str, scoring_pb2.ApplicationEvent]]) -> tuple[MatchIndex, Any]:
    """A Rust match index holding ``apps`` (partner, event), as a replay of the log
    builds it; and a function applying an outcome to an index."""
    pack = load_pack()
    scorer = _core.Scorer({k: list(v) for k, v in pack.matches.items() if v})
    aggregates = AggregateStore(pack.aggregates)
    index = MatchIndex()
    requests: dict[tuple[str, str], bytes] = {}
    for n, (partner, event) in enumerate(apps):
        event.partner_id = partner
        request = scoring_pb2.CheckApplicationRequest(request_id=f"r{n}", application=event)
        data = request.SerializeToString()
        requests[(partner, event.application_id)] = data
        scorer.replay(
            "application", data, f"{partner}/r{n}", partner, 0, aggregates._core, index._core
        )

    def outcome(into: MatchIndex, partner: str, app_id: str, decision: str, fraud: str) -> None:
        at = int(T0.timestamp() * 1_000_000) + 86_400_000_000
        store = AggregateStore(pack.aggregates)  # the index's marks are what is compared
        scorer.apply_outcome(
            requests[(partner, app_id)], partner, at, decision, fraud, store._core, into._core
        )

    return index, outcome


def test_match_index_snapshot_round_trip_keeps_order_marks_and_sharing() -> None:
    """The Rust index (``LGMXSNAP``): a restored copy is the same index, byte for byte,
    outcome marks included, and a later mark reaches every indexed event of the
    application in the copy as in the original (one application, several events)."""
    apps = []
    for seq in range(1, 120):
        p = Person(last=f"N{seq % 7}", phone=f"+7916{seq % 4:07d}", number=f"{seq % 9:06d}")
        apps.append((f"bank-{seq % 3}", application(p, minutes=seq, app_id=f"a{seq % 30}")))
    index, outcome = _indexed(apps)
    outcome(index, "bank-1", "a1", "REFUSED", "CONFIRMED")
    data = index.snapshot()
    copy = MatchIndex()
    copy.restore(data)
    assert copy.snapshot() == data and len(copy) == len(index) == 119
    # A part of a larger snapshot is restored from a read-only view, without a copy;
    # a writable buffer is refused (Rust reads it without the GIL).
    framed = b"head" + data + b"tail"
    viewed = MatchIndex()
    viewed.restore(memoryview(framed).toreadonly()[4:-4])
    assert viewed.snapshot() == data
    with pytest.raises(TypeError, match="read-only"):
        MatchIndex().restore(bytearray(data))  # type: ignore[arg-type]
    for each in (index, copy):
        outcome(each, "bank-1", "a1", "APPROVED", "UNSPECIFIED")
    assert copy.snapshot() == index.snapshot() != data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "not a match index snapshot"),
        (b"LGMXSNAP\x06\x00", "version 6"),
        (b"LGMXSNAP\x05\x00garbage", "corrupt"),
        (b"LGMXSNAP\x04\x00garbage", "corrupt"),
        (b"LGMXSNAP\x03\x00garbage", "corrupt"),
        (b"LGMXSNAP\x02\x00garbage", "corrupt"),
        (b"LGMXSNAP\x01\x00garbage", "corrupt"),
        (MatchIndex().snapshot()[:-1], "corrupt"),
    ],
)
def test_a_foreign_or_damaged_index_snapshot_is_refused(data: bytes, problem: str) -> None:
    index = MatchIndex()
    with pytest.raises(InvalidArgumentError, match=problem) as exc:
        index.restore(data)
    assert [v.field for v in exc.value.violations] == ["snapshot"] and len(index) == 0


def test_retention_prunes_the_match_index_by_event_time() -> None:
    """(The key lists after a prune are checked by the Rust unit test
    ``prune_forgets_old_events_and_keeps_the_rest_answering_the_same``.)"""
    index, _ = _indexed(
        [("b", application(minutes=seq * 1440, app_id=f"a{seq}")) for seq in range(1, 11)]
    )
    assert index.prune(T0 + timedelta(days=4)) == 3
    assert len(index) == 7
    assert index.prune(T0 + timedelta(days=4)) == 0
    assert index.prune(T0 + timedelta(days=99)) == 7 and len(index) == 0


def test_load_history_answers_like_the_same_history_sent_over_grpc(tmp_path: Path) -> None:
    from lendgate.datagen import GenConfig, Generator  # noqa: PLC0415
    from lendgate.datagen.output import read_events, write_events  # noqa: PLC0415

    fired: set[str] = set()

    data = tmp_path / "history.jsonl"
    start = (datetime.now(UTC) - timedelta(days=12)).date()
    write_events(Generator(GenConfig(seed=3, applicants=150, days=10, start=start)), data, False)
    records = list(read_events(data))
    history: list[Message] = [r.message for r in records[:-40]]
    later = [m for r in records[-40:] if isinstance(m := r.message, scoring_pb2.ApplicationEvent)]
    later = later[:4]  # the next events (no outcome of theirs is known yet)
    created = [
        m
        for m in history
        if isinstance(m, scoring_pb2.ApplicationEvent) and m.applicant.passport.number
    ]
    # Six applicants apply once more, are confirmed as fraud, then apply again: the marks
    # (aggregates and match index) must count the same way on both paths.
    for n, m in enumerate(created[-6:]):
        victim = scoring_pb2.ApplicationEvent()
        victim.CopyFrom(m)
        victim.application_id = f"victim-{n}"
        victim.event_time.CopyFrom(later[0].event_time)
        fraud = scoring_pb2.Outcome(fraud_status=scoring_pb2.FRAUD_STATUS_CONFIRMED)
        fraud.event_time.CopyFrom(later[0].event_time)
        history += [
            victim,
            scoring_pb2.ReportOutcomeRequest(application_id=f"victim-{n}", outcome=fraud),
        ]
        reapply = scoring_pb2.ApplicationEvent()
        reapply.CopyFrom(victim)
        reapply.application_id = f"again-{n}"
        reapply.event_time.CopyFrom(later[-1].event_time)
        later.append(reapply)
    assert len(history) > 300 and len(later) == 10
    kinds = {"ApplicationEvent": "application", "PaymentEvent": "payment"}
    with data.open("w") as out:  # the history as a gen-data file
        for m in history:
            kind = kinds.get(m.DESCRIPTOR.name, "outcome")
            doc = {"kind": kind, "time": 0, "event": json_format.MessageToDict(m), "label": {}}
            out.write(json.dumps(doc) + "\n")
    loaded = tmp_path / "loaded"
    cmd = [sys.executable, "-m", "lendgate.cli", "load-history", str(data), "--quiet"]
    cmd += ["--data-dir", str(loaded), "--batch", "64"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("lendgate: loaded ") and result.stderr.count("\n") == 1
    again = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), check=False)
    assert again.returncode == 1 and "already loaded" in again.stderr

    async def probe(s: Served) -> list[scoring_pb2.Report]:
        reports = []
        for n, m in enumerate(later):
            c = s.client(m.partner_id)
            reports.append(_comparable(await c.check(m, request_id=f"probe-{n}")))
            fired.update(r.rule for r in reports[-1].fired_rules)
        return reports

    async def over_grpc() -> list[scoring_pb2.Report]:
        async with served(tmp_path / "grpc.db") as s:
            owners: dict[str, str] = {}
            for n, m in enumerate(history):
                if isinstance(m, scoring_pb2.ReportOutcomeRequest):
                    m.request_id = f"history-{n}"
                    c = s.client(owners[m.application_id])
                    await c.stub.ReportOutcome(m, metadata=c.md, timeout=20)
                elif isinstance(m, scoring_pb2.ApplicationEvent):
                    owners[m.application_id] = m.partner_id
                    await s.client(m.partner_id).check(m, request_id=f"history-{n}")
                else:
                    assert isinstance(m, scoring_pb2.PaymentEvent)
                    c = s.client(m.partner_id)
                    request = scoring_pb2.CheckPaymentRequest(request_id=f"history-{n}", payment=m)
                    await c.stub.CheckPayment(request, metadata=c.md, timeout=20)
            return await probe(s)

    async def from_loaded_store() -> list[scoring_pb2.Report]:
        async with served(loaded / "lendgate.db") as s:
            recovery = s.service.last_recovery
            assert recovery is not None and recovery.replayed == 0  # the load's snapshot
            assert recovery.position == len(history)
            return await probe(s)

    assert asyncio.run(from_loaded_store()) == asyncio.run(over_grpc())
    assert "rules/s06-confirmed-fraud-applicant" in fired


def test_retention_while_serving_expires_in_steps_and_lets_checks_through(
    tmp_path: Path,
) -> None:
    """The background retention pass expires the aggregates one shard at a time, with
    the event loop free between shards: a check arriving meanwhile is scored between two
    steps, and the steps drop what a whole pass drops."""

    async def main() -> None:
        async with served(tmp_path / "s.db") as s:
            a = s.client("bank-a")
            for i in range(20):
                early = Person(client=f"k{i}", phone=f"+7916000{i:04d}")
                await a.check(application(early, minutes=i - 800_000))
            # A year and a half later: every key of the first checks left its windows.
            await a.check(application(Person(client="late")))
            service, aggregates = s.service, s.service.aggregates
            keys_before = sum(aggregates.key_counts().values())
            applied_at_step: list[int] = []
            step = aggregates.expire_step

            def observed_step(max_shards: int = 64) -> Any:
                applied_at_step.append(service._applied_count)
                return step(max_shards)

            aggregates.expire_step = observed_step  # type: ignore[method-assign]
            late = scoring_pb2.CheckApplicationRequest(
                request_id="meanwhile",
                application=application(Person(client="meanwhile"), minutes=1),
            ).SerializeToString()
            pruning = asyncio.create_task(service._prune_in_steps())
            checking = asyncio.create_task(service.check("application", late, "bank-a"))
            await asyncio.gather(pruning, checking)
            aggregates.expire_step = step  # type: ignore[method-assign]
            assert len(applied_at_step) > 1  # one shard a step (of every aggregate object)
            assert applied_at_step[0] == 21 and applied_at_step[-1] == 22
            assert aggregates.expire_all() == 0  # the steps did the whole pass
            assert sum(aggregates.key_counts().values()) < keys_before

    run(main)
