"""ScoringService over real gRPC: every default-pack rule fires and stays quiet, outcomes
change later answers, partners are isolated, a stream answers like unary calls, bad
input is refused naming the field and stores nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from lendgate.scoring import ScoringService, report_name
from lendgate.store import StoreSettings, open_store
from lendgate.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc
from servers.scoring import ScoringServicer
from tests.test_scoring import T0, Person, application, next_id
from tests.test_server import serve_in_process


@dataclass
class Client:
    """A stub acting as one partner."""

    stub: scoring_pb2_grpc.ScoringServiceStub
    partner: str
    channel: grpc.aio.Channel | None = None

    @property
    def md(self) -> tuple[tuple[str, str]]:
        return (("x-lendgate-partner", self.partner),)

    async def check(
        self, event: scoring_pb2.ApplicationEvent, request_id: str = ""
    ) -> scoring_pb2.Report:
        req = scoring_pb2.CheckApplicationRequest(
            request_id=request_id or f"r-{next_id()}", application=event
        )
        response: scoring_pb2.CheckApplicationResponse = await self.stub.CheckApplication(
            req, metadata=self.md, timeout=20
        )
        return response.report

    async def outcome(
        self, application_id: str, minutes: int = 2, **fields: Any
    ) -> scoring_pb2.Outcome:
        """Report an outcome that happened ``minutes`` after T0."""
        outcome = scoring_pb2.Outcome(**fields)
        outcome.event_time.FromDatetime(T0 + timedelta(minutes=minutes))
        req = scoring_pb2.ReportOutcomeRequest(
            request_id=f"o-{next_id()}", application_id=application_id, outcome=outcome
        )
        response: scoring_pb2.ReportOutcomeResponse = await self.stub.ReportOutcome(
            req, metadata=self.md, timeout=20
        )
        return response.outcome


@asynccontextmanager
async def scoring(tmp: Path) -> AsyncIterator[Callable[[str], Client]]:
    """A fresh ScoringService over a fresh SQLite store, served in process."""
    settings = StoreSettings(
        database_url=f"sqlite:///{tmp / 'scoring.db'}",
        retention_interval_s=0,
        commit_delay_ms=0,
        sqlite_synchronous="NORMAL",
    )
    store = await asyncio.to_thread(open_store, None, settings)
    try:
        service = ScoringService(store)
        async with serve_in_process({"lendgate.v1.ScoringService": ScoringServicer(service)}) as ch:
            stub = scoring_pb2_grpc.ScoringServiceStub(ch)
            yield lambda partner: Client(stub, partner, ch)
    finally:
        await store.aclose()


def run(tmp: Path, body: Callable[[Callable[[str], Client]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with scoring(tmp) as client:
            await body(client)

    asyncio.run(main())


def fired(report: scoring_pb2.Report) -> set[str]:
    return {r.rule.removeprefix("rules/") for r in report.fired_rules}


def rule(report: scoring_pb2.Report, rule_id: str) -> scoring_pb2.FiredRule:
    return next(r for r in report.fired_rules if r.rule == f"rules/{rule_id}")


# --- each rule: a case that fires and one that must not --------------------------------

Scenario = Callable[[Client, bool], Awaitable[scoring_pb2.Report]]


async def r01(c: Client, fire: bool) -> scoring_pb2.Report:
    await c.check(application(Person()))
    return await c.check(
        application(
            Person(
                birth="1991-01-02" if fire else "1990-05-15",
                series="4511",
                number="999999",
                issued="2011-01-05",
            ),
            minutes=1,
        )
    )


async def r02(c: Client, fire: bool) -> scoring_pb2.Report:
    co = Person(last="Petrov", series="4600", number="111111", phone="+79160000011")
    borrowers = [
        Person(series="4512", number=f"00000{i}", phone=f"+7916000002{i}", client=f"b{i}")
        for i in range(3)
    ]
    if not fire:
        borrowers = [borrowers[0]] * 3
    report = None
    for i, b in enumerate(borrowers):
        report = await c.check(application(b, co_borrower=co, minutes=i))
    assert report is not None
    return report


async def r03(c: Client, fire: bool) -> scoring_pb2.Report:
    first = application(Person(inn="7709999999"))
    await c.check(first)
    if fire:
        await c.outcome(first.application_id, fraud_status=scoring_pb2.FRAUD_STATUS_CONFIRMED)
    other = Person(
        last="Sidorov",
        series="4513",
        number="222222",
        phone="+79160000033",
        client="c-3",
        inn="7709999999",
    )
    return await c.check(application(other, minutes=5))


async def r04(c: Client, fire: bool) -> scoring_pb2.Report:
    decision = (
        scoring_pb2.APPLICATION_DECISION_REFUSED
        if fire
        else scoring_pb2.APPLICATION_DECISION_APPROVED
    )
    for i in range(5):
        p = Person(
            last=f"L{i}",
            series="4514",
            number=f"10000{i}",
            phone=f"+7916100000{i}",
            client=f"e{i}",
            inn="7708888888",
        )
        event = application(p, minutes=i)
        await c.check(event)
        await c.outcome(event.application_id, minutes=5, decision=decision)
    return await c.check(application(Person(inn="7708888888"), minutes=10))


async def r05(c: Client, fire: bool) -> scoring_pb2.Report:
    result = scoring_pb2.CHECK_RESULT_REJECTED if fire else scoring_pb2.CHECK_RESULT_APPROVED
    events = []
    for i in range(10):
        p = Person(
            last=f"M{i}",
            series="4515",
            number=f"20000{i}",
            phone=f"+7916200000{i}",
            client=f"f{i}",
            inn=f"77070000{i:02d}",
        )
        events.append(application(p, minutes=i))
        await c.check(events[-1])
    for i in range(6):
        special = application(
            Person(
                last=f"M{i}",
                series="4515",
                number=f"20000{i}",
                phone=f"+7916200000{i}",
                client=f"f{i}",
                inn=f"77070000{i:02d}",
            ),
            minutes=20 + i,
            subtype="LOAN_APP_SPECIAL_CHECK",
            app_id=events[i].application_id,
            special_check_result=result,
        )
        await c.check(special)
    return await c.check(application(Person(), minutes=40))


async def r06(c: Client, fire: bool) -> scoring_pb2.Report:
    first = application(Person(region="05", client="g1"))
    await c.check(first)
    decision = (
        scoring_pb2.APPLICATION_DECISION_REFUSED
        if fire
        else scoring_pb2.APPLICATION_DECISION_APPROVED
    )
    await c.outcome(first.application_id, decision=decision)
    return await c.check(
        application(
            Person(
                last="Kuz",
                region="05",
                series="4516",
                number="333333",
                phone="+79163000000",
                client="g2",
            ),
            minutes=5,
        )
    )


async def r07(c: Client, fire: bool) -> scoring_pb2.Report:
    report = None
    for i in range(5):
        p = Person(
            last=f"N{i}",
            series="4517",
            number=f"40000{i}",
            phone=f"+7916400000{i}",
            client=f"h{i}",
            inn="7706666666",
            employees=50 if fire else 1000,
        )
        report = await c.check(application(p, minutes=i, ip="192.0.2.7"))
    assert report is not None
    return report


async def r08(c: Client, fire: bool) -> scoring_pb2.Report:
    return await c.check(application(Person(issued="2015-08-01" if fire else "2010-05-20")))


async def r09(c: Client, fire: bool) -> scoring_pb2.Report:
    return await c.check(application(Person(inn="7700000001" if fire else "7701234567")))


async def r10(c: Client, fire: bool) -> scoring_pb2.Report:
    co = Person(
        last="Co",
        series="0000" if fire else "4600",
        number="000001",
        phone="+79165550000",
    )
    return await c.check(application(Person(), co_borrower=co))


async def r11(c: Client, fire: bool) -> scoring_pb2.Report:
    await c.check(application(Person(series="4510", number="123456")))
    return await c.check(
        application(Person(series="4510", number="654321" if fire else "123456"), minutes=30)
    )


async def s01(c: Client, fire: bool) -> scoring_pb2.Report:
    return await c.check(application(Person(issued="1985-01-01" if fire else "2010-05-20")))


async def s02(c: Client, fire: bool) -> scoring_pb2.Report:
    await c.check(application(Person()))
    other = Person(
        last="Smirnov" if fire else "Ivanov",
        series="4518",
        number="555555",
        birth="1980-02-02",
        issued="2000-02-10",
        client="c-9",
    )
    return await c.check(application(other, minutes=1))


async def s03(c: Client, fire: bool) -> scoring_pb2.Report:
    await c.check(application(Person()))
    again = Person(
        birth="1989-03-03" if fire else "1990-05-15",
        issued="2009-03-10" if fire else "2010-05-20",
        phone="+79167777777",
    )
    return await c.check(application(again, minutes=1))


async def s04(c: Client, fire: bool) -> scoring_pb2.Report:
    await c.check(application(Person()))
    return await c.check(
        application(Person(first="Petr" if fire else "Ivan", phone="+79168888888"), minutes=1)
    )


async def s05(c: Client, fire: bool) -> scoring_pb2.Report:
    return await c.check(application(Person(phone="+79990000001" if fire else "+79161234567")))


async def s06(c: Client, fire: bool) -> scoring_pb2.Report:
    first = application(Person())
    await c.check(first)
    if fire:
        await c.outcome(first.application_id, fraud_status=scoring_pb2.FRAUD_STATUS_CONFIRMED)
    # Another partner's applicant with the same passport: the consortium shares fraud.
    return await c.check(application(Person(phone="+79169999999", client="x"), minutes=5))


def _other_documents(**fields: Any) -> Person:
    """The default applicant's birth date under another passport, phone and client."""
    base = {"series": "4599", "number": "777777", "phone": "+79165550000", "client": "c-7"}
    return Person(**{**base, **fields})


async def s07(c: Client, fire: bool) -> scoring_pb2.Report:
    await c.check(application(Person()))
    # A typo in the last name; quiet: the same typo with another birth date.
    other = (
        _other_documents(last="Ivanof")
        if fire
        else _other_documents(last="Ivanof", birth="1990-05-16", issued="2010-05-21")
    )
    return await c.check(application(other, minutes=1))


SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "r01": ("r01-phone-name-other-birth-date", r01),
    "r02": ("r02-co-borrower-mass-applications", r02),
    "r03": ("r03-employer-fraud-180d", r03),
    "r04": ("r04-employer-high-refusal", r04),
    "r05": ("r05-special-check-refusal", r05),
    "r06": ("r06-passport-region-refusal-default", r06),
    "r07": ("r07-employer-ip-mass-applications", r07),
    "r08": ("r08-passport-changed-off-age", r08),
    "r09": ("r09-one-day-employer", r09),
    "r10": ("r10-invalid-passport", r10),
    "r11": ("r11-passport-number-mismatch", r11),
    "s01": ("s01-internal-contradiction", s01),
    "s02": ("s02-phone-other-name", s02),
    "s03": ("s03-passport-other-birth-date", s03),
    "s04": ("s04-passport-other-name", s04),
    "s05": ("s05-compromised-data", s05),
    "s06": ("s06-confirmed-fraud-applicant", s06),
    "s07": ("s07-similar-name-other-documents", s07),
}


@pytest.mark.parametrize("fire", [True, False], ids=["fires", "quiet"])
@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_rule(case: str, fire: bool, tmp_path: Path) -> None:
    rule_id, scenario = SCENARIOS[case]

    async def body(client: Callable[[str], Client]) -> None:
        report = await scenario(client("bank-a"), fire)
        assert (rule_id in fired(report)) == fire, fired(report)
        if fire:
            r = rule(report, rule_id)
            assert r.points > 0 and r.description and r.recommendation
            assert r.values or (all(sub.values for sub in r.sub_rules) and r.sub_rules)
            assert report.fraud_score >= r.points

    run(tmp_path, body)


def test_black_zone_opens_incident_and_resolution_feeds_back(tmp_path: Path) -> None:
    async def body(client: Callable[[str], Client]) -> None:
        a, b = client("bank-a"), client("bank-b")
        report = await a.check(application(Person(series="0000", number="000001")))  # rule 10
        assert report.zone == scoring_pb2.ZONE_BLACK and report.fraud_score >= 432
        assert report.recommended_action == scoring_pb2.RECOMMENDED_ACTION_DECLINE
        assert report.incident.startswith("incidents/")
        listed = await a.stub.ListIncidents(
            scoring_pb2.ListIncidentsRequest(filter='state = "OPEN" AND zone = "BLACK"'),
            metadata=a.md,
        )
        assert [i.name for i in listed.incidents] == [report.incident]
        for text, found in (
            (f"fraud_score >= {report.fraud_score}", [report.incident]),
            (f"fraud_score > {report.fraud_score}", []),
            ('create_time > "2000-01-01T00:00:00Z" AND NOT state = "RESOLVED"', [report.incident]),
        ):
            listed = await a.stub.ListIncidents(
                scoring_pb2.ListIncidentsRequest(filter=text), metadata=a.md
            )
            assert [i.name for i in listed.incidents] == found, text
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await a.stub.ListIncidents(
                scoring_pb2.ListIncidentsRequest(filter="no_such_field = 1"), metadata=a.md
            )
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await b.stub.GetIncident(
                scoring_pb2.GetIncidentRequest(name=report.incident), metadata=b.md
            )
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        assert not (
            await b.stub.ListIncidents(scoring_pb2.ListIncidentsRequest(), metadata=b.md)
        ).incidents
        assigned = await a.stub.AssignIncident(
            scoring_pb2.AssignIncidentRequest(name=report.incident, assignee="officer-1"),
            metadata=a.md,
        )
        assert assigned.incident.state == scoring_pb2.INCIDENT_STATE_IN_PROGRESS
        await a.stub.CommentIncident(
            scoring_pb2.CommentIncidentRequest(name=report.incident, text="called the client"),
            metadata=a.md,
        )
        verdict = scoring_pb2.IncidentResolution(
            verdict=scoring_pb2.INCIDENT_VERDICT_CONFIRMED_FRAUD,
            fraud_type=scoring_pb2.FRAUD_TYPE_DOCUMENT_FORGERY,
        )
        with pytest.raises(grpc.aio.AioRpcError) as exc:  # the comment changed it since
            await a.stub.ResolveIncident(
                scoring_pb2.ResolveIncidentRequest(
                    name=report.incident, etag=assigned.incident.etag, resolution=verdict
                ),
                metadata=a.md,
            )
        assert exc.value.code() == grpc.StatusCode.ABORTED
        current = await a.stub.GetIncident(
            scoring_pb2.GetIncidentRequest(name=report.incident), metadata=a.md
        )
        resolved = await a.stub.ResolveIncident(
            scoring_pb2.ResolveIncidentRequest(
                name=report.incident, etag=current.incident.etag, resolution=verdict
            ),
            metadata=a.md,
        )
        assert resolved.incident.state == scoring_pb2.INCIDENT_STATE_RESOLVED
        assert resolved.outcome.fraud_status == scoring_pb2.FRAUD_STATUS_CONFIRMED
        got = (
            await a.stub.GetIncident(
                scoring_pb2.GetIncidentRequest(name=report.incident), metadata=a.md
            )
        ).incident
        assert [c.text for c in got.comments] == ["called the client"]
        assert got.resolution.verdict == scoring_pb2.INCIDENT_VERDICT_CONFIRMED_FRAUD
        # The resolution is an outcome: bank-b's applicant with the same phone is flagged.
        # (resolved now, so the later application is an hour after now)
        later = await b.check(
            application(
                Person(last="Other", series="4519", number="777777", client="z"),
                minutes=2 * 24 * 60 + 60,
            )
        )
        assert "s06-confirmed-fraud-applicant" in fired(later)
        full = (
            await a.stub.GetReport(scoring_pb2.GetReportRequest(name=report.name), metadata=a.md)
        ).report
        assert full.application.application_id == report.event_id
        assert [o.fraud_status for o in full.outcomes] == [scoring_pb2.FRAUD_STATUS_CONFIRMED]

    run(tmp_path, body)


def test_partner_isolation_and_masked_matches(tmp_path: Path) -> None:
    async def body(client: Callable[[str], Client]) -> None:
        a, b = client("bank-a"), client("bank-b")
        first = application(Person())
        mine = await a.check(first, request_id="same-id")
        theirs = await b.check(
            application(
                Person(
                    last="Smirnov",
                    series="4520",
                    number="123123",
                    birth="1970-01-01",
                    issued="1990-01-05",
                    client="q",
                ),
                minutes=1,
            ),
            request_id="same-id",
        )
        assert theirs.name == mine.name  # same request id, but two partners: two reports
        assert "s02-phone-other-name" in fired(theirs)
        (match,) = rule(theirs, "s02-phone-other-name").matches
        assert not match.own_application and match.application_id == ""
        shown = {f.field: f for f in match.fields}
        phone = shown["application.applicant.phones"]
        assert (
            phone.kind == scoring_pb2.MATCH_KIND_EXACT and phone.historical_value == "+7******4567"
        )
        name = shown["application.applicant.last_name"]
        assert (
            name.kind == scoring_pb2.MATCH_KIND_CONTRADICTION
            and name.historical_value == "I*** I***"
        )
        assert "bank-a" not in str(theirs) and first.application_id not in str(theirs)
        got = (
            await a.stub.GetReport(scoring_pb2.GetReportRequest(name=mine.name), metadata=a.md)
        ).report
        assert got.application.applicant.last_name == "Ivanov"
        got_b = (
            await b.stub.GetReport(scoring_pb2.GetReportRequest(name=mine.name), metadata=b.md)
        ).report
        assert got_b.application.applicant.last_name == "Smirnov"
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await b.outcome(first.application_id, decision=scoring_pb2.APPLICATION_DECISION_REFUSED)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        c = client("bank-c")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await c.stub.GetReport(scoring_pb2.GetReportRequest(name=mine.name), metadata=c.md)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await c.check(replace_partner(application(Person()), "bank-a"))
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED

    run(tmp_path, body)


def test_a_misspelt_name_with_the_same_birth_date_matches_another_partner(
    tmp_path: Path,
) -> None:
    s07 = "s07-similar-name-other-documents"

    async def body(client: Callable[[str], Client]) -> None:
        a, b, c = client("bank-a"), client("bank-b"), client("bank-c")
        first = application(Person())
        await a.check(first)
        # Another birth date: the same typo matches nothing.
        elsewhere = await b.check(
            application(
                _other_documents(last="Ivanof", birth="1990-05-16", issued="2010-05-21"),
                minutes=1,
            )
        )
        assert s07 not in fired(elsewhere)
        typo = await b.check(application(_other_documents(last="Ivanof"), minutes=2))
        (match,) = rule(typo, s07).matches
        assert not match.own_application and match.application_id == ""
        shown = {f.field: f for f in match.fields}
        name = shown["application.applicant.last_name"]
        assert name.kind == scoring_pb2.MATCH_KIND_FUZZY
        assert 0.92 <= name.similarity < 1.0
        assert name.current_value == "ivanof ivan" and name.historical_value == "I*** I***"
        birth = shown["application.applicant.birth_date"]
        assert birth.kind == scoring_pb2.MATCH_KIND_EXACT
        assert birth.historical_value == "1990-**-**"
        passport = shown["application.applicant.passport.number"]
        assert passport.kind == scoring_pb2.MATCH_KIND_CONTRADICTION
        assert passport.historical_value == "******3456"
        assert shown["application.applicant.phones"].historical_value == "+7******4567"
        assert not shown["application.applicant.phones"].HasField("similarity")
        assert "bank-a" not in str(typo) and first.application_id not in str(typo)
        # Another alphabet: the transliterated name is the same person's.
        cyrillic = await c.check(
            application(
                _other_documents(
                    last="Иванов", first="Иван", series="4598", phone="+79165550001", client="k"
                ),
                minutes=3,
            )
        )
        matches = rule(cyrillic, s07).matches
        assert len(matches) == 2 and not any(m.own_application for m in matches)
        names = [f for m in matches for f in m.fields if f.field.endswith("last_name")]
        assert {n.kind for n in names} == {scoring_pb2.MATCH_KIND_FUZZY}
        assert max(n.similarity for n in names) == 1.0  # ivanov ivan, transliterated
        assert {n.historical_value for n in names} == {"I*** I***"}
        # The caller's own earlier application is shown unmasked, with its id.
        own = await a.check(application(_other_documents(last="Ivanow"), minutes=4))
        mine = [m for m in rule(own, s07).matches if m.own_application]
        assert [m.application_id for m in mine] == [first.application_id]
        assert {f.historical_value for f in mine[0].fields if f.field.endswith("last_name")} == {
            "ivanov ivan"
        }

    run(tmp_path, body)


def replace_partner(
    event: scoring_pb2.ApplicationEvent, partner: str
) -> scoring_pb2.ApplicationEvent:
    event.partner_id = partner
    return event


def violations(err: grpc.aio.AioRpcError) -> list[str]:
    raw = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    out = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out += [v.field for v in bad.field_violations]
    return out


BAD_INPUTS: dict[str, tuple[Callable[[scoring_pb2.ApplicationEvent], None], str]] = {
    "future-birth": (
        lambda e: setattr(e.applicant, "birth_date", "2999-01-01"),
        "application.applicant.birth_date",
    ),
    "malformed-date": (
        lambda e: setattr(e.applicant.passport, "issue_date", "20-01-2010"),
        "application.applicant.passport.issue_date",
    ),
    "negative-amount": (
        lambda e: setattr(e.loan_amount, "amount_minor", -5),
        "application.loan_amount.amount_minor",
    ),
    "huge-string": (
        lambda e: setattr(e.applicant, "last_name", "x" * 1_000_000),
        "application.applicant.last_name",
    ),
    "unknown-enum": (lambda e: setattr(e, "channel", 999), "application.channel"),
    "missing-id": (lambda e: e.ClearField("application_id"), "application.application_id"),
    "missing-time": (lambda e: e.ClearField("event_time"), "application.event_time"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_the_field_and_stores_nothing(case: str, tmp_path: Path) -> None:
    spoil, field = BAD_INPUTS[case]

    async def body(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        bad = application(Person(last="Orlov"))
        spoil(bad)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await a.check(bad, request_id="bad-1")
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(exc.value)
        # Nothing stored, no aggregate changed: same phone, other name does not fire.
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await a.stub.GetReport(
                scoring_pb2.GetReportRequest(name=report_name("bad-1")), metadata=a.md
            )
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        later = await a.check(application(Person(), minutes=1))
        assert "s02-phone-other-name" not in fired(later)

    run(tmp_path, body)


def _comparable(report: scoring_pb2.Report) -> scoring_pb2.Report:
    out = scoring_pb2.Report()
    out.CopyFrom(report)
    for f in ("processing_time", "receive_time", "incident"):
        out.ClearField(f)
    return out


def test_stream_gives_the_unary_answers_and_survives_a_bad_item(tmp_path: Path) -> None:
    people = [
        Person(),
        Person(last="Smirnov", client="c2"),
        Person(birth="1991-01-01", series="4521", number="1", client="c3", issued="2011-01-05"),
    ]
    events = [application(p, minutes=i, app_id=f"s-{i}") for i, p in enumerate(people)]
    bad = application(Person(birth="2999-01-01"), minutes=5, app_id="s-bad")

    async def unary(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        unary_reports.extend([await a.check(e, request_id=f"q-{i}") for i, e in enumerate(events)])

    async def stream(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        items = [
            scoring_pb2.CheckStreamRequest(
                correlation_id=f"k{i}", request_id=f"q-{i}", application=e
            )
            for i, e in enumerate(events)
        ]
        items.insert(
            1,
            scoring_pb2.CheckStreamRequest(
                correlation_id="kbad", request_id="q-bad", application=bad
            ),
        )
        async for answer in a.stub.CheckStream(iter(items), metadata=a.md, timeout=30):
            stream_answers.append(answer)

    unary_reports: list[scoring_pb2.Report] = []
    stream_answers: list[scoring_pb2.CheckStreamResponse] = []
    for name, scenario in (("unary", unary), ("stream", stream)):
        (tmp_path / name).mkdir()
        run(tmp_path / name, scenario)
    assert [a.correlation_id for a in stream_answers] == ["k0", "kbad", "k1", "k2"]
    assert stream_answers[1].error.code == 3
    assert [f.field for f in stream_answers[1].error.field_violations] == [
        "application.applicant.birth_date"
    ]
    got = [_comparable(a.report) for a in stream_answers if a.HasField("report")]
    assert got == [_comparable(r) for r in unary_reports]
    assert "s02-phone-other-name" in fired(unary_reports[1])


def test_stream_items_are_taken_apart_on_the_wire(tmp_path: Path) -> None:
    """Stream items reach the service as bytes: an item whose event does not decode gets
    the unary call's MALFORMED_MESSAGE as its own error and the stream goes on; an item
    whose own framing is broken ends the stream INVALID_ARGUMENT; an answered item's
    report is the unary call's report, byte for byte but for times and processing."""
    event = application(Person(), app_id="w-1")
    good = scoring_pb2.CheckStreamRequest(correlation_id="k1", request_id="q-1", application=event)
    # Field 3 (application) holding bytes that are no ApplicationEvent: a truncated varint.
    broken_event = scoring_pb2.CheckStreamRequest(correlation_id="kx").SerializeToString() + (
        b"\x1a\x02\x08\xff"
    )

    async def body(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        assert a.channel is not None
        call = a.channel.stream_stream(
            "/lendgate.v1.ScoringService/CheckStream",
            request_serializer=lambda raw: raw,
            response_deserializer=scoring_pb2.CheckStreamResponse.FromString,
        )
        items = [broken_event, good.SerializeToString()]
        answers = [answer async for answer in call(iter(items), metadata=a.md, timeout=30)]
        assert [x.correlation_id for x in answers] == ["kx", "k1"]
        assert answers[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert answers[0].error.reason == "MALFORMED_MESSAGE"
        assert answers[1].HasField("report") and fired(answers[1].report) == set()

        again = await a.check(application(Person(), app_id="w-1"), request_id="q-1")
        assert _comparable(again) == _comparable(answers[1].report)  # a retry: the same

        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call(iter([b"\x0a\x7fk"]), metadata=a.md, timeout=30):
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "CheckStreamRequest" in (info.value.details() or "")

    run(tmp_path, body)


def test_retry_returns_the_first_report_and_changes_nothing(tmp_path: Path) -> None:
    async def body(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        event = application(Person())
        first = await a.check(event, request_id="retry-1")
        again = await a.check(event, request_id="retry-1")
        assert again == first
        other = await a.check(application(Person(last="Smirnov", client="c2"), minutes=1))
        (match,) = rule(other, "s02-phone-other-name").matches  # one event, not two
        assert match.own_application and match.application_id == event.application_id

    run(tmp_path, body)


def test_concurrent_applications_sharing_a_phone_see_each_other_in_one_order(
    tmp_path: Path,
) -> None:
    async def body(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        one = application(Person(last="Alpha", client="p1"))
        two = application(Person(last="Beta", client="p2", series="4522", number="2"))
        reports = await asyncio.gather(a.check(one), a.check(two))
        flags = ["s02-phone-other-name" in fired(r) for r in reports]
        assert sorted(flags) == [False, True]  # exactly the later one sees the earlier one

    run(tmp_path, body)


def test_test_rules_are_reported_apart_and_never_counted(tmp_path: Path) -> None:
    async def body(client: Callable[[str], Client]) -> None:
        report = await client("bank-a").check(application(Person(), amount=600_000_000))
        assert [r.rule for r in report.test_rules] == ["rules/t01-large-amount"]
        assert report.fraud_score == 0 and not report.fired_rules
        assert report.recommended_action == scoring_pb2.RECOMMENDED_ACTION_APPROVE
        assert not report.HasField("model_risk_score")  # no model is active: no score
        assert report.provenance.rule_pack_revision == "default-1"

    run(tmp_path, body)


def test_restart_keeps_every_answer_the_same(tmp_path: Path) -> None:
    invalid = Person(series="0000", number="000001")  # rule 10: black zone, an incident
    first = application(invalid, app_id="first")
    later = application(
        Person(first="Petr", series="0000", number="000001", phone="+79161110000", client="c5"),
        minutes=5,
    )
    typo = application(_other_documents(last="Ivanof"), minutes=6)  # fuzzy: rule s07

    async def before(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        await a.check(first, request_id="q-1")
        await a.outcome("first", fraud_status=scoring_pb2.FRAUD_STATUS_CONFIRMED)

    async def after(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        reports.append(await a.check(later, request_id="q-2"))
        reports.append(await a.check(typo, request_id="q-3"))
        listed = await a.stub.ListIncidents(scoring_pb2.ListIncidentsRequest(), metadata=a.md)
        incidents.append(len(listed.incidents))

    reports: list[scoring_pb2.Report] = []
    incidents: list[int] = []
    for name, restart in (("straight", False), ("restarted", True)):
        (tmp_path / name).mkdir()

        async def both(client: Callable[[str], Client], restart: bool = restart) -> None:
            await before(client)
            if not restart:
                await after(client)

        run(tmp_path / name, both)
        if restart:
            run(tmp_path / name, after)  # a new service over the same store
    straight, straight_typo, restarted, restarted_typo = reports
    assert {"s04-passport-other-name", "s06-confirmed-fraud-applicant"} <= fired(straight)
    assert _comparable(restarted) == _comparable(straight)
    assert "s07-similar-name-other-documents" in fired(straight_typo)
    assert _comparable(restarted_typo) == _comparable(straight_typo)
    assert incidents[0] == incidents[1] == 3


def test_payment_is_checked_and_validated(tmp_path: Path) -> None:
    async def body(client: Callable[[str], Client]) -> None:
        a = client("bank-a")
        payment = scoring_pb2.PaymentEvent(
            payment_id="pay-1",
            type=scoring_pb2.PAYMENT_TYPE_CARD_TRANSFER,
            amount=common_pb2.Money(amount_minor=150_000, currency="RUB"),
        )
        payment.event_time.FromDatetime(T0)
        request = scoring_pb2.CheckPaymentRequest(request_id="p-1", payment=payment)
        answer = await a.stub.CheckPayment(request, metadata=a.md, timeout=20)
        assert answer.report.event_kind == common_pb2.EVENT_KIND_PAYMENT
        assert answer.report.event_id == "pay-1" and answer.report.fraud_score == 0
        full = await a.stub.GetReport(
            scoring_pb2.GetReportRequest(name=answer.report.name), metadata=a.md
        )
        assert full.report.payment.payment_id == "pay-1"
        payment.amount.amount_minor = -1
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await a.stub.CheckPayment(
                scoring_pb2.CheckPaymentRequest(request_id="p-2", payment=payment), metadata=a.md
            )
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(exc.value) == ["payment.amount.amount_minor"]

    run(tmp_path, body)


S01_CASES = {
    "passport-before-birth": (Person(issued="1985-01-01"), None),
    "under-18": (Person(birth="2010-01-01", issued="2024-02-01"), None),
    "shared-passport": (Person(), Person(last="Twin", phone="+79164440000")),
}


@pytest.mark.parametrize("sub_rule", sorted(S01_CASES))
def test_each_internal_contradiction(sub_rule: str, tmp_path: Path) -> None:
    applicant, co_borrower = S01_CASES[sub_rule]

    async def body(client: Callable[[str], Client]) -> None:
        report = await client("bank-a").check(application(applicant, co_borrower=co_borrower))
        s01 = rule(report, "s01-internal-contradiction")
        assert [s.sub_rule_id for s in s01.sub_rules] == [sub_rule]
        assert s01.points == s01.sub_rules[0].points > 0

    run(tmp_path, body)
