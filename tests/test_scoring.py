"""The scoring domain without gRPC: the default pack, validation, masking, idempotency."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lendgate.aggregates import AggregateStore
from lendgate.errors import InvalidArgumentError, PermissionDeniedError, ResourceExhaustedError
from lendgate.lists import Lists
from lendgate.rules import InMemoryRuleRepository, RuleBook
from lendgate.scoring import ScoringService, install, load_pack
from lendgate.scoring.events import validate
from lendgate.scoring.matching import mask_birth_date, mask_name, mask_passport, mask_phone
from lendgate.store import StoreSettings, open_store
from lendgate.v1 import common_pb2, scoring_pb2

NOW = datetime.now(UTC)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
_ids = itertools.count(1)


def next_id() -> int:
    """A number unique within the test session (ids of applications and requests)."""
    return next(_ids)


@dataclass(frozen=True)
class Person:
    """The few applicant facts the tests vary."""

    last: str = "Ivanov"
    first: str = "Ivan"
    birth: str = "1990-05-15"
    series: str = "4510"
    number: str = "123456"
    issued: str = "2010-05-20"
    region: str = "77"
    phone: str = "+79161234567"
    client: str = "c-1"
    inn: str = "7701234567"
    employees: int = 1000
    email: str = "ivan@example.com"


def application(
    p: Person = Person(),
    *,
    minutes: int = 0,
    subtype: str = "LOAN_APP_CREATE",
    co_borrower: Person | None = None,
    ip: str = "10.0.0.1",
    amount: int = 10_000_000,
    app_id: str | None = None,
    **extra: Any,
) -> scoring_pb2.ApplicationEvent:
    """An application event, ``minutes`` after T0."""

    def person(q: Person) -> common_pb2.Person:
        return common_pb2.Person(
            client_id=q.client,
            last_name=q.last,
            first_name=q.first,
            birth_date=q.birth,
            passport=common_pb2.Passport(
                series=q.series, number=q.number, issue_date=q.issued, issuing_region=q.region
            ),
            phones=[common_pb2.Phone(number=q.phone, kind=common_pb2.PHONE_KIND_MOBILE)],
            emails=[q.email],
            employer=common_pb2.Employer(name="Acme", tax_id=q.inn, employee_count=q.employees),
        )

    event = scoring_pb2.ApplicationEvent(
        application_id=app_id or f"app-{next_id()}",
        subtype=scoring_pb2.ApplicationSubtype.Value(f"APPLICATION_SUBTYPE_{subtype}"),
        applicant=person(p),
        ip_address=ip,
        loan_amount=common_pb2.Money(amount_minor=amount, currency="RUB"),
        **extra,
    )
    if co_borrower is not None:
        event.co_borrowers.append(person(co_borrower))
    event.event_time.FromDatetime(T0 + timedelta(minutes=minutes))
    return event


SEED_003 = [f"r{i:02d}" for i in range(1, 12)]
SEED_001 = ["s01", "s02", "s03", "s04", "s05", "s06"]


def test_default_pack_has_every_seed_rule_with_points_and_advice() -> None:
    pack = load_pack()
    by_prefix = {r.rule_id[:3]: r for r in pack.rules}
    for prefix in SEED_003 + SEED_001:
        rule = by_prefix[prefix]
        points = rule.points + sum(s.points for s in rule.sub_rules)
        assert points > 0 and rule.description and rule.recommendation, prefix
    assert pack.zone_threshold == 432
    assert by_prefix["t01"].status == "TEST"


def test_default_pack_compiles_and_builds_its_aggregates() -> None:
    pack = load_pack()
    book, lists = RuleBook(InMemoryRuleRepository()), Lists()
    install(pack, book, lists)
    assert len(book.compile(pack.zone_threshold)) == len(pack.rules)
    assert "rule7_apps_by_employer_ip_2d" in AggregateStore(pack.aggregates).param_names
    assert {d.list_id for d in lists.all()} >= {"one-day-companies", "invalid-passports"}


def _doc(**applicant: str) -> dict[str, object]:
    return {
        "application_id": "a",
        "subtype": "LOAN_APP_CREATE",
        "event_time": NOW.isoformat(),
        "applicant": {"last_name": "X", **applicant},
    }


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (_doc(birth_date="2999-01-01"), "application.applicant.birth_date"),
        (_doc(birth_date="1990-02-30"), "application.applicant.birth_date"),
        (_doc(last_name="x" * 5000), "application.applicant.last_name"),
        ({**_doc(), "channel": 42}, "application.channel"),
        ({**_doc(), "event_time": "1999-12-31T00:00:00Z"}, "application.event_time"),
        ({**_doc(), "loan_amount": {"amount_minor": -1}}, "application.loan_amount.amount_minor"),
        ({"event_time": NOW.isoformat()}, "application.application_id"),
        ({"application_id": "a", "event_time": NOW.isoformat()}, "application.subtype"),
    ],
)
def test_validation_names_the_proto_field(doc: dict[str, object], field: str) -> None:
    assert field in [v.field for v in validate("application", doc, NOW)]


def test_a_valid_application_has_no_violations() -> None:
    assert validate("application", _doc(birth_date="1990-01-01"), NOW) == []


def test_masks_hide_all_but_what_the_policy_allows() -> None:
    assert mask_phone("79991234567") == "+7******4567"
    assert mask_name("ivanov ivan") == "I*** I***"
    assert mask_passport("4510123456") == "******3456"
    assert mask_birth_date("1990-05-15") == "1990-**-**"


@asynccontextmanager
async def service(tmp: Path) -> AsyncIterator[ScoringService]:
    settings = StoreSettings(
        database_url=f"sqlite:///{tmp / 's.db'}", retention_interval_s=0, commit_delay_ms=0
    )
    store = await asyncio.to_thread(open_store, None, settings)
    try:
        yield ScoringService(store)
    finally:
        await store.aclose()


def _request(request_id: str, event: scoring_pb2.ApplicationEvent) -> bytes:
    return scoring_pb2.CheckApplicationRequest(
        request_id=request_id, application=event
    ).SerializeToString()


def test_concurrent_retries_get_one_report_and_apply_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with service(tmp_path) as svc:
            req = _request("same", application(Person()))
            answers = await asyncio.gather(*(svc.check("application", req, "p") for _ in range(5)))
            assert len(set(answers)) == 1
            assert svc.aggregates.key_counts()["ApplicantPhone"] == 1
            other = application(Person(last="Other", client="c2"), minutes=1)
            report = scoring_pb2.Report.FromString(
                await svc.check("application", _request("next", other), "p")
            )
            (rule,) = [r for r in report.fired_rules if r.rule == "rules/s02-phone-other-name"]
            assert len(rule.matches) == 1

    asyncio.run(main())


def test_rejected_request_changes_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with service(tmp_path) as svc:
            bad = application(Person(birth="2999-01-01"))
            with pytest.raises(InvalidArgumentError):
                await svc.check("application", _request("bad", bad), "p")
            foreign = application(Person())
            foreign.partner_id = "someone-else"
            with pytest.raises(PermissionDeniedError):
                await svc.check("application", _request("foreign", foreign), "p")
            assert svc.aggregates.watermark is None
            assert await svc.store.last_seq() == 0

    asyncio.run(main())


def test_a_request_id_cannot_serve_two_operations(tmp_path: Path) -> None:
    async def main() -> None:
        async with service(tmp_path) as svc:
            event = application(Person())
            await svc.check("application", _request("one", event), "p")
            outcome = scoring_pb2.ReportOutcomeRequest(
                request_id="one",
                application_id=event.application_id,
                outcome=scoring_pb2.Outcome(decision=scoring_pb2.APPLICATION_DECISION_APPROVED),
            )
            with pytest.raises(InvalidArgumentError) as caught:
                await svc.report_outcome(outcome, "p")
            assert caught.value.reason == "REQUEST_ID_REUSED"

    asyncio.run(main())


def test_overload_is_refused_at_once_not_queued(tmp_path: Path) -> None:
    async def main() -> None:
        settings = StoreSettings(
            database_url=f"sqlite:///{tmp_path / 'o.db'}", retention_interval_s=0
        )
        store = await asyncio.to_thread(open_store, None, settings)
        try:
            svc = ScoringService(store, max_in_flight=1)
            requests = [_request(f"o{i}", application(Person(), minutes=i)) for i in range(2)]
            results = await asyncio.gather(
                *(svc.check("application", r, "p") for r in requests), return_exceptions=True
            )
            assert isinstance(results[0], bytes)
            assert isinstance(results[1], ResourceExhaustedError)
            await svc.check("application", requests[1], "p")  # admitted once the first is done
        finally:
            await store.aclose()

    asyncio.run(main())
