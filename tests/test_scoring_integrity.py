"""The check path over real gRPC and a real SQLite store: a check is applied entirely or
not at all when the store refuses its write, a refusal reported twice counts once,
overload is refused at once with a retry hint, and the match index survives a
snapshot/restore with the same answers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from lendgate.errors import InvalidArgumentError
from lendgate.scoring import ModelScorer, ScoringService
from lendgate.scoring.matching import MatchIndex
from lendgate.store import StoreSettings, open_store
from lendgate.v1 import scoring_pb2, scoring_pb2_grpc
from servers.scoring import STREAM_WINDOW, ScoringServicer
from tests.test_scoring import Person, application, next_id
from tests.test_scoring_service import Client, fired, rule
from tests.test_server import serve_in_process

S02 = "s02-phone-other-name"


@asynccontextmanager
async def served(
    tmp: Path, max_in_flight: int = 2048, model: ModelScorer | None = None
) -> AsyncIterator[tuple[ScoringService, scoring_pb2_grpc.ScoringServiceStub, Path]]:
    """A ScoringService over a fresh SQLite file, served in process."""
    db = tmp / "scoring.db"
    settings = StoreSettings(
        database_url=f"sqlite:///{db}", retention_interval_s=0, commit_delay_ms=0
    )
    store = await asyncio.to_thread(open_store, None, settings)
    try:
        service = ScoringService(store, max_in_flight=max_in_flight, model=model)
        await service.recover()  # as `lendgate serve` does before it takes calls
        async with serve_in_process({"lendgate.v1.ScoringService": ScoringServicer(service)}) as ch:
            yield service, scoring_pb2_grpc.ScoringServiceStub(ch), db
    finally:
        await store.aclose()


def _status(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    trailer = dict(err.trailing_metadata() or ())
    return status_pb2.Status.FromString(trailer["grpc-status-details-bin"])


def test_a_check_the_store_refuses_leaves_no_trace(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as (service, stub, db):
            a = Client(stub, "bank-a")
            with sqlite3.connect(db) as con:  # a real write failure, inside the database
                con.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON events"
                    " WHEN NEW.request_id = 'bank-a/doomed'"
                    " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            doomed = application(Person(last="Alpha", client="c1"))
            with pytest.raises(grpc.aio.AioRpcError):
                await a.check(doomed, request_id="doomed")
            assert service.rebuilds == 1
            # The refused check is in neither the log nor the state: no match to it.
            second = await a.check(application(Person(last="Beta", client="c2"), minutes=1))
            assert S02 not in fired(second)
            with sqlite3.connect(db) as con:
                con.execute("DROP TRIGGER refuse")
            # A retry is applied once, like a first attempt.
            retried = await a.check(doomed, request_id="doomed")
            assert retried.event_id == doomed.application_id
            third = await a.check(application(Person(last="Gamma", client="c3"), minutes=2))
            assert len(rule(third, S02).matches) == 2
            assert await service.store.last_seq() == 3

    asyncio.run(main())


def test_a_refusal_reported_as_result_and_as_outcome_counts_once(tmp_path: Path) -> None:
    inn = "7709999999"

    async def main() -> None:
        async with served(tmp_path) as (_, stub, _db):
            a = Client(stub, "bank-a")

            async def refused(i: int, *, outcome: bool) -> None:
                p = Person(
                    last=f"L{i}",
                    series="4514",
                    number=f"20000{i}",
                    phone=f"+7916200000{i}",
                    client=f"e{i}",
                    inn=inn,
                )
                app_id = f"app-{next_id()}"
                await a.check(application(p, minutes=i, app_id=app_id))
                await a.check(
                    application(
                        p,
                        minutes=i,
                        app_id=app_id,
                        subtype="LOAN_APP_RESULT",
                        result=scoring_pb2.CHECK_RESULT_REJECTED,
                    )
                )
                if outcome:
                    decision = scoring_pb2.APPLICATION_DECISION_REFUSED
                    await a.outcome(app_id, minutes=i, decision=decision)

            for i in range(3):  # each refusal sent both ways: 3 finished, not 6
                await refused(i, outcome=True)
            probe = await a.check(application(Person(inn=inn), minutes=10))
            assert "r04-employer-high-refusal" not in fired(probe)
            for i in range(3, 5):
                await refused(i, outcome=False)
            probe = await a.check(application(Person(inn=inn, client="c9"), minutes=11))
            r04 = rule(probe, "r04-employer-high-refusal")
            values = {v.name: v.value.number_value for v in r04.values}
            assert values["params.rule4_finished_60d"] == 5

    asyncio.run(main())


def test_overload_is_refused_at_once_with_a_retry_hint(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path, max_in_flight=1) as (service, stub, db):
            a = Client(stub, "bank-a")
            # Hold the database's write lock: the first check waits in its append.
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            first = asyncio.create_task(a.check(application(Person())))
            # The server's admission count is not observable from the client: poll it.
            while service._in_flight == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.check(application(Person(), minutes=1))
            holder.execute("ROLLBACK")
            holder.close()
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            details = _status(caught.value).details
            hint = error_details_pb2.RetryInfo()
            assert any(d.Unpack(hint) for d in details)
            assert hint.retry_delay.ToMilliseconds() > 0
            assert (await first).fraud_score == 0
            await a.check(application(Person(), minutes=1))  # admitted once the first is done

    asyncio.run(main())


def test_a_stream_scores_ahead_of_a_pending_write_within_its_window_and_in_order(
    tmp_path: Path,
) -> None:
    """CheckStream is pipelined: while the first item's write waits (the database's write
    lock is held), the next items are scored — up to the window and no further — in
    stream order (each sees the ones before it), and answered in that order."""
    count = STREAM_WINDOW + 8
    items = [
        scoring_pb2.CheckStreamRequest(
            correlation_id=f"k{i}",
            request_id=f"q-{i}",
            # One phone, another name each: rule s02 names every earlier item.
            application=application(
                Person(last=f"Name{i:03d}x{'q' * i}", client=f"c{i}"), minutes=i
            ),
        )
        for i in range(count)
    ]

    async def main() -> None:
        async with served(tmp_path) as (service, stub, db):
            a = Client(stub, "bank-a")
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            answers: list[scoring_pb2.CheckStreamResponse] = []

            async def consume() -> None:
                async for answer in stub.CheckStream(iter(items), metadata=a.md, timeout=60):
                    answers.append(answer)

            streaming = asyncio.create_task(consume())
            # The server's state is not observable from the client: poll it.
            while len(service.index) < STREAM_WINDOW:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.2)  # room for a wrong read-ahead to show
            scored_while_blocked, answered_while_blocked = len(service.index), len(answers)
            holder.execute("ROLLBACK")
            holder.close()
            await streaming
            assert scored_while_blocked == STREAM_WINDOW and answered_while_blocked == 0
            assert [x.correlation_id for x in answers] == [f"k{i}" for i in range(count)]
            seen = [
                len(rule(x.report, S02).matches) if S02 in fired(x.report) else 0 for x in answers
            ]
            assert seen == [min(i, 20) for i in range(count)]

    asyncio.run(main())


def test_the_match_index_restores_from_its_snapshot(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as (service, stub, _db):
            a = Client(stub, "bank-a")
            await a.check(application(Person(last="Alpha", client="c1")))
            await a.check(application(Person(last="Beta", client="c2"), minutes=1))
            probe = application(Person(last="Gamma", client="c3"), minutes=2)
            data = service.index.snapshot()
            assert data == service.index.snapshot()  # deterministic
            restored = MatchIndex()
            restored.restore(data)
            assert len(restored) == 2 and restored.snapshot() == data
            with pytest.raises(InvalidArgumentError, match="version 7"):
                restored.restore(data[:8] + b"\x07\x00" + data[10:])
            with pytest.raises(InvalidArgumentError, match="not a match index snapshot"):
                restored.restore(b"garbage")
            assert len(restored) == 2  # a refused restore changes nothing
            service.index = restored
            report = await a.check(probe, request_id="probe")
            assert len(rule(report, S02).matches) == 2

    asyncio.run(main())


def test_the_model_reads_the_event_and_parameters_and_a_failure_changes_nothing(
    tmp_path: Path,
) -> None:
    seen: list[tuple[str, int]] = []

    def model(
        event: Mapping[str, Any], params: Mapping[str, Any], rules: Mapping[str, Any]
    ) -> tuple[int, str, str] | None:
        if event["applicant"]["last_name"] == "Broken":
            raise RuntimeError("model server down")
        if event["applicant"]["last_name"] == "Unknown":
            return None
        # The rules' verdict without a model score (nothing fires on this applicant).
        assert (rules["fraud_score"], rules["fired"]) == (0, [])
        seen.append((event["application_id"], params["rule1_other_birth_dates"]))
        return 950, "fraud-gbm", "3"

    async def main() -> None:
        async with served(tmp_path, model=model) as (service, stub, _db):
            a = Client(stub, "bank-a")
            scored = await a.check(application(Person(), app_id="m1"))
            assert scored.model_risk_score == 950
            assert scored.recommended_action == scoring_pb2.RECOMMENDED_ACTION_DECLINE
            assert scored.provenance.model_name == "fraud-gbm"
            assert scored.provenance.model_version == "3"
            assert seen == [("m1", 0)]
            unscored = await a.check(application(Person(last="Unknown"), minutes=1))
            assert not unscored.HasField("model_risk_score")  # never made up
            before = service.index.snapshot(), service.aggregates.snapshot()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.check(application(Person(last="Broken"), minutes=2))
            assert caught.value.code() == grpc.StatusCode.INTERNAL
            assert (service.index.snapshot(), service.aggregates.snapshot()) == before

    asyncio.run(main())


def test_a_retry_after_a_restart_returns_the_first_report(tmp_path: Path) -> None:
    event = application(Person())
    reports: list[scoring_pb2.Report] = []

    async def main() -> None:
        for _ in range(2):  # the second service is a restart over the same database
            async with served(tmp_path) as (service, stub, _db):
                reports.append(await Client(stub, "bank-a").check(event, request_id="once"))
                assert service.knows_every_logged_key  # the replay noted every key
                assert await service.store.last_seq() == 1
                assert service.rebuilds == 0  # the retry was answered, not scored again

    asyncio.run(main())
    assert reports[0] == reports[1]


def test_a_check_cancelled_by_its_deadline_is_still_logged_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as (service, stub, db):
            a = Client(stub, "bank-a")
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # the append waits for the lock
            request = scoring_pb2.CheckApplicationRequest(
                request_id="late", application=application(Person(last="Alpha", client="c1"))
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CheckApplication(request, metadata=a.md, timeout=2)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            holder.execute("ROLLBACK")
            holder.close()
            # The scored event is logged after all (the store's state is polled: the
            # client cannot observe the server's write).
            while await service.store.last_seq() == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            assert service.rebuilds == 0
            later = await a.check(application(Person(last="Beta", client="c2"), minutes=1))
            assert len(rule(later, S02).matches) == 1
            again = await a.check(request.application, request_id="late")
            assert again.event_id == request.application.application_id
            assert await service.store.last_seq() == 2

    asyncio.run(main())
