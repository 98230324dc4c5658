"""The default pack's per-device, per-IP and per-registration-address parameters, over
the real gRPC server and a SQLite store: applications created over 1/7/30 days (this one
included) and other applicants (passports) over 30 days, keyed by what fraud rings and
mass applications share; and the employer's other applicants and first sighting.

A rule created through RuleAdminService reads the four parameters of one object; the
report's trace of that rule gives their values for a probe application. Each object has a
case where earlier applications count (same key, other people) and one where they must
not (another key)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from lendgate.v1 import common_pb2, scoring_pb2
from tests.test_rule_admin_service import MD, Admin, admin
from tests.test_scoring import Person, application, next_id

DAY = 24 * 60


def with_device(event: scoring_pb2.ApplicationEvent, key: str) -> None:
    event.device.device_id = key


def with_ip(event: scoring_pb2.ApplicationEvent, key: str) -> None:
    event.ip_address = key


def with_address(event: scoring_pb2.ApplicationEvent, key: str) -> None:
    event.applicant.addresses.append(
        common_pb2.Address(
            kind=common_pb2.ADDRESS_KIND_REGISTRATION,
            country="RU",
            city="Moscow",
            street="Tverskaya",
            house=key,
            flat="12",
        )
    )


OBJECTS: dict[str, tuple[Callable[[scoring_pb2.ApplicationEvent, str], None], str, str]] = {
    "device": (with_device, "dev-ring-1", "dev-other-2"),
    "ip": (with_ip, "198.51.100.7", "198.51.100.8"),
    "address": (with_address, "7", "9"),
}


def person(i: int) -> Person:
    return Person(last=f"Ring{i}", number=f"7{i:05d}", phone=f"+7916555{i:04d}", client=f"ring-{i}")


async def params_of(
    a: Admin, rule_id: str, event: scoring_pb2.ApplicationEvent
) -> dict[str, float | None]:
    req = scoring_pb2.CheckApplicationRequest(request_id=f"r-{next_id()}", application=event)
    response: scoring_pb2.CheckApplicationResponse = await a.scoring.CheckApplication(
        req, metadata=MD, timeout=20
    )
    fired = [r for r in response.report.fired_rules if r.rule == f"rules/{rule_id}"]
    assert len(fired) == 1, response.report.fired_rules
    values: dict[str, float | None] = {}
    for v in fired[0].values:
        kind = v.value.WhichOneof("kind")
        assert kind in ("number_value", "null_value"), v
        values[v.name] = v.value.number_value if kind == "number_value" else None
    return values


@pytest.mark.parametrize("obj", sorted(OBJECTS))
def test_shared_key_parameters_count_other_people_and_not_other_keys(
    obj: str, tmp_path: Path
) -> None:
    put, key, other_key = OBJECTS[obj]
    names = [f"{obj}_apps_1d", f"{obj}_apps_7d", f"{obj}_apps_30d", f"{obj}_other_persons_30d"]
    # Always true (a missing parameter is null, never -1), so the trace has all four.
    condition = " and ".join(f"params.{n} != -1" for n in names)

    def event(i: int, minutes: int, k: str) -> scoring_pb2.ApplicationEvent:
        e = application(person(i), minutes=minutes)
        put(e, k)
        return e

    async def scenario() -> None:
        async with admin(tmp_path) as a:
            await a.create("probe", condition, points=0)
            # Three people on the key: 10 days, 5 days and minutes before the probe.
            for i, minutes in ((1, -10 * DAY), (2, -5 * DAY), (3, 0)):
                await a.fired(event(i, minutes, key))
            # Person 1 again: counts include the probe itself (as rule 7's do): today 2,
            # the last week 3, the month 4; other people only persons 2 and 3.
            seen = await params_of(a, "probe", event(1, 0, key))
            assert [seen[f"params.{n}"] for n in names] == [2, 3, 4, 2]
            # Another key shares nothing with them: only the probe itself.
            alone = await params_of(a, "probe", event(4, 0, other_key))
            assert [alone[f"params.{n}"] for n in names] == [1, 1, 1, 0]

    asyncio.run(scenario())


def test_employer_parameters_count_other_people_and_the_first_sighting(tmp_path: Path) -> None:
    names = ["employer_other_persons_30d", "employer_days_since_first_seen"]
    condition = " and ".join(f"params.{n} != -1" for n in names)

    def event(i: int, minutes: int, inn: str) -> scoring_pb2.ApplicationEvent:
        return application(replace(person(i), inn=inn), minutes=minutes)

    async def scenario() -> None:
        async with admin(tmp_path) as a:
            await a.create("probe", condition, points=0)
            for i, minutes in ((1, -40 * DAY), (2, -10 * DAY), (3, -5 * DAY)):
                await a.fired(event(i, minutes, "7705550001"))
            # Person 1 again: persons 2 and 3 within 30 days (person 1's own 40-day-old
            # application is neither other nor within the window); first seen 40 days ago.
            seen = await params_of(a, "probe", event(1, 0, "7705550001"))
            assert [seen[f"params.{n}"] for n in names] == [1 + 1, 40]
            # A new employer: nobody else, never seen before this application.
            fresh = await params_of(a, "probe", event(4, 0, "7705550002"))
            assert [fresh[f"params.{n}"] for n in names] == [0, None]

    asyncio.run(scenario())
