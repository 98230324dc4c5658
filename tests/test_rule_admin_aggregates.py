"""Aggregate definitions over real gRPC (SQLite file and PostgreSQL): create, read,
list, update, delete, versions and restore; validation that changes nothing; the live
state rebuilt from the stored event log, so a definition created after the events it
counts answers as a replay of history does; refusal to delete what a rule reads;
partners; a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from lendgate.scoring.aggdefs import compose, split_pack
from lendgate.scoring.pack import load_pack
from lendgate.v1 import common_pb2, rules_pb2
from servers.rule_admin import aggregate_from_proto, aggregate_to_proto
from tests.test_rule_admin_persistence import MD_A, MD_B, serving
from tests.test_rule_admin_service import Admin, details
from tests.test_scoring import Person, application, next_id
from tests.test_store import database_url  # noqa: F401 (a fixture)

ADMINS = frozenset({"bank-a"})
SERVING = rules_pb2.AGGREGATE_STATE_STATUS_SERVING


def ip_definition(window_days: int = 1) -> rules_pb2.AggregateDefinition:
    """Applications created per IP address, per day; ``ip_apps`` sums a window."""
    out = rules_pb2.AggregateDefinition(
        display_name="Applications per IP",
        description="test object",
        event_kind=common_pb2.EVENT_KIND_APPLICATION,
        key_attributes=[
            rules_pb2.KeyAttribute(
                attribute="device.ip", normalizations=[rules_pb2.NORMALIZATION_WHITESPACE]
            )
        ],
        elements=[
            rules_pb2.AggregateElement(
                element_id="created",
                kind=rules_pb2.AGGREGATE_ELEMENT_KIND_DATE_AND_COUNTER,
                filter='common.subtype == "LOAN_APP_CREATE"',
                bucket=rules_pb2.BUCKET_GRANULARITY_HOUR,
                max_age_days=30,
            )
        ],
        parameters=[
            rules_pb2.AggregateParameter(
                name="ip_apps", element_id="created", function=rules_pb2.AGGREGATE_FUNCTION_SUM
            )
        ],
    )
    out.parameters[0].window.FromSeconds(window_days * 86_400)
    return out


async def get(a: Admin, aggregate_id: str) -> rules_pb2.AggregateDefinition:
    response: rules_pb2.GetAggregateDefinitionResponse = await a.rules.GetAggregateDefinition(
        rules_pb2.GetAggregateDefinitionRequest(name=f"aggregateDefinitions/{aggregate_id}"),
        metadata=MD_A,
        timeout=10,
    )
    return response.aggregate_definition


async def serving_version(a: Admin, aggregate_id: str, version: int) -> None:
    """Wait until the live state answers with ``version`` (the background rebuild)."""
    for _ in range(600):
        d = await get(a, aggregate_id)
        if d.state_status == SERVING and d.serving_version == version:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{aggregate_id} never served version {version}: {d}")


async def fired(a: Admin, **kw: Any) -> set[str]:
    """Ids of the fired rules of a check of an application from IP 10.9.9.9."""
    person = Person(client=f"c-{next_id()}", phone=f"+7916{next_id():07d}")
    return set(await a.fired(application(person, ip="10.9.9.9", **kw)))


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def test_a_definition_counts_history_and_a_changed_window_changes_the_answer(
    database_url: str,  # noqa: F811
) -> None:
    async def scenario() -> None:
        async with serving(database_url, ADMINS) as a:
            hour = 60
            # History the definition does not exist for yet: 30 h apart.
            assert "burst-2" not in await fired(a, minutes=0)
            await fired(a, minutes=30 * hour)
            created: rules_pb2.CreateAggregateDefinitionResponse = (
                await a.rules.CreateAggregateDefinition(
                    rules_pb2.CreateAggregateDefinitionRequest(
                        aggregate_id="IpApps",
                        aggregate_definition=ip_definition(1),
                        change_reason="bursts per IP",
                    ),
                    metadata=MD_A,
                    timeout=10,
                )
            )
            d = created.aggregate_definition
            assert (d.name, d.version, d.update_author) == (
                "aggregateDefinitions/IpApps",
                1,
                "bank-a",
            )
            await serving_version(a, "IpApps", 1)
            for rule_id, threshold in (("burst-2", 2), ("burst-4", 4)):
                await a.create(rule_id, f"(params.ip_apps ?? 0) >= {threshold}", points=10)
            # Rebuilt from the log: the event 1 minute ago counts, the one 30 h ago not.
            assert {"burst-2"} <= await fired(a, minutes=30 * hour + 1)
            assert "burst-4" not in await fired(a, minutes=30 * hour + 2)  # 3 in a day

            current = await get(a, "IpApps")
            update: rules_pb2.UpdateAggregateDefinitionResponse = (
                await a.rules.UpdateAggregateDefinition(
                    rules_pb2.UpdateAggregateDefinitionRequest(
                        aggregate_definition=rules_pb2.AggregateDefinition(
                            name=current.name,
                            etag=current.etag,
                            parameters=ip_definition(2).parameters,
                        ),
                        update_mask=field_mask_pb2.FieldMask(paths=["parameters"]),
                        change_reason="two days",
                    ),
                    metadata=MD_A,
                    timeout=10,
                )
            )
            assert update.aggregate_definition.version == 2
            assert update.aggregate_definition.elements[0].filter == (
                'common.subtype == "LOAN_APP_CREATE"'
            )
            await serving_version(a, "IpApps", 2)
            # Two days now reach the first event: 5 with this one.
            assert {"burst-2", "burst-4"} <= await fired(a, minutes=30 * hour + 3)

            # Deleting what a rule reads is refused, naming the rule.
            current = await get(a, "IpApps")
            err = await refused(
                a.rules.DeleteAggregateDefinition(
                    rules_pb2.DeleteAggregateDefinitionRequest(
                        name=current.name, etag=current.etag
                    ),
                    metadata=MD_A,
                )
            )
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "burst-2" in (err.details() or "") and "burst-4" in (err.details() or "")
            assert details(err)[0] == "AGGREGATE_IN_USE"
            for rule_id in ("burst-2", "burst-4"):
                r = await a.get(rule_id)
                await a.rules.DeleteRule(
                    rules_pb2.DeleteRuleRequest(name=r.name, etag=r.etag), metadata=MD_A
                )
            await a.rules.DeleteAggregateDefinition(
                rules_pb2.DeleteAggregateDefinitionRequest(
                    name=current.name, etag=current.etag, change_reason="done"
                ),
                metadata=MD_A,
            )
            err = await refused(
                a.rules.GetAggregateDefinition(
                    rules_pb2.GetAggregateDefinitionRequest(name=current.name), metadata=MD_A
                )
            )
            assert err.code() == grpc.StatusCode.NOT_FOUND

            # Versions stay readable; version 1 comes back (one-day window) as version 4.
            versions: rules_pb2.ListAggregateDefinitionVersionsResponse = (
                await a.rules.ListAggregateDefinitionVersions(
                    rules_pb2.ListAggregateDefinitionVersionsRequest(parent=current.name),
                    metadata=MD_A,
                )
            )
            assert [(v.version, v.change, v.change_reason) for v in versions.versions] == [
                (3, rules_pb2.VERSION_CHANGE_DELETED, "done"),
                (2, rules_pb2.VERSION_CHANGE_UPDATED, "two days"),
                (1, rules_pb2.VERSION_CHANGE_CREATED, "bursts per IP"),
            ]
            one: rules_pb2.GetAggregateDefinitionVersionResponse = (
                await a.rules.GetAggregateDefinitionVersion(
                    rules_pb2.GetAggregateDefinitionVersionRequest(
                        name="aggregateDefinitions/IpApps/versions/1"
                    ),
                    metadata=MD_A,
                )
            )
            assert one.version.aggregate_definition.parameters[0].window.seconds == 86_400
            restored: rules_pb2.RestoreAggregateDefinitionVersionResponse = (
                await a.rules.RestoreAggregateDefinitionVersion(
                    rules_pb2.RestoreAggregateDefinitionVersionRequest(
                        name="aggregateDefinitions/IpApps/versions/1", change_reason="back"
                    ),
                    metadata=MD_A,
                )
            )
            assert restored.aggregate_definition.version == 4
            assert restored.aggregate_definition.parameters[0].window.seconds == 86_400
            await serving_version(a, "IpApps", 4)
            await a.create("burst-5", "(params.ip_apps ?? 0) >= 5", points=10)
            # One day again: the events of the last day (4 of them) and this one.
            assert "burst-5" in await fired(a, minutes=30 * hour + 4)
            assert "burst-5" not in await fired(a, minutes=60 * hour)

        # A restarted server serves the same definitions and versions.
        async with serving(database_url, ADMINS) as a:
            d = await get(a, "IpApps")
            assert (d.version, d.serving_version, d.state_status) == (4, 4, SERVING)
            # The state was rebuilt with version 4 (one day): the five of 30 h .. 30 h 4 min.
            assert "burst-5" in await fired(a, minutes=30 * hour + 5)

    asyncio.run(scenario())


def test_bad_definitions_name_the_field_and_change_nothing(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/lendgate.db"

    async def scenario() -> None:
        async with serving(url, ADMINS) as a:

            async def violations(d: rules_pb2.AggregateDefinition) -> dict[str, str]:
                err = await refused(
                    a.rules.CreateAggregateDefinition(
                        rules_pb2.CreateAggregateDefinitionRequest(
                            aggregate_id="Bad", aggregate_definition=d
                        ),
                        metadata=MD_A,
                    )
                )
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
                return details(err)[1]

            d = ip_definition()
            d.elements[0].filter = 'common.subtype == "LOAN_APP_CREATE" and ('
            found = await violations(d)
            assert "position" in found["aggregate_definition.elements[0].filter"]

            d = ip_definition()
            d.elements[0].kind = 99  # type: ignore[assignment]
            assert "aggregate_definition.elements[0].kind" in await violations(d)

            d = ip_definition()
            d.parameters[0].window.nanos = 5
            assert "aggregate_definition.parameters[0].window" in await violations(d)

            d = ip_definition()
            d.parameters[0].element_id = "nope"
            assert "aggregate_definition.parameters[0].element_id" in await violations(d)

            d = ip_definition()
            d.key_attributes[0].attribute = "device.ipp"
            assert "aggregate_definition.key_attributes[0].attribute" in await violations(d)

            d = ip_definition()
            d.elements[0].source_attribute = "consumer.fio"
            d.elements[0].value_type = rules_pb2.VALUE_TYPE_INTEGER
            assert "aggregate_definition.elements[0].value_type" in await violations(d)

            d = ip_definition()
            d.parameters[0].name = "rule7_apps_by_employer_ip_2d"  # the pack's
            assert "aggregate_definition.parameters[0].name" in await violations(d)

            listed: rules_pb2.ListAggregateDefinitionsResponse = (
                await a.rules.ListAggregateDefinitions(
                    rules_pb2.ListAggregateDefinitionsRequest(), metadata=MD_A
                )
            )
            names = [x.name.split("/")[1] for x in listed.aggregate_definitions]
            assert "Bad" not in names and "EmployerINNAndIP" in names
            err = await refused(
                a.rules.ListAggregateDefinitionVersions(
                    rules_pb2.ListAggregateDefinitionVersionsRequest(
                        parent="aggregateDefinitions/Bad"
                    ),
                    metadata=MD_A,
                )
            )
            assert err.code() == grpc.StatusCode.NOT_FOUND

            # validate_only checks and stores nothing.
            ok: rules_pb2.CreateAggregateDefinitionResponse = (
                await a.rules.CreateAggregateDefinition(
                    rules_pb2.CreateAggregateDefinitionRequest(
                        aggregate_id="Dry", aggregate_definition=ip_definition(), validate_only=True
                    ),
                    metadata=MD_A,
                )
            )
            assert ok.aggregate_definition.version == 1
            err = await refused(
                a.rules.GetAggregateDefinition(
                    rules_pb2.GetAggregateDefinitionRequest(name="aggregateDefinitions/Dry"),
                    metadata=MD_A,
                )
            )
            assert err.code() == grpc.StatusCode.NOT_FOUND

            # The pack's own rules read the pack's definitions: not deletable.
            pack_def = await get(a, "EmployerINNAndIP")
            err = await refused(
                a.rules.DeleteAggregateDefinition(
                    rules_pb2.DeleteAggregateDefinitionRequest(
                        name=pack_def.name, etag=pack_def.etag
                    ),
                    metadata=MD_A,
                )
            )
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "r07-employer-ip-mass-applications" in (err.details() or "")

    asyncio.run(scenario())


def test_only_rule_admins_change_definitions_every_partner_reads_them(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/lendgate.db"

    async def scenario() -> None:
        async with serving(url, ADMINS) as a:
            err = await refused(
                a.rules.CreateAggregateDefinition(
                    rules_pb2.CreateAggregateDefinitionRequest(
                        aggregate_id="Mine", aggregate_definition=ip_definition()
                    ),
                    metadata=MD_B,
                )
            )
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED
            await a.rules.CreateAggregateDefinition(
                rules_pb2.CreateAggregateDefinitionRequest(
                    aggregate_id="Shared", aggregate_definition=ip_definition()
                ),
                metadata=MD_A,
            )
            seen: rules_pb2.GetAggregateDefinitionResponse = await a.rules.GetAggregateDefinition(
                rules_pb2.GetAggregateDefinitionRequest(name="aggregateDefinitions/Shared"),
                metadata=MD_B,
            )
            d = seen.aggregate_definition
            for call in (
                a.rules.UpdateAggregateDefinition(
                    rules_pb2.UpdateAggregateDefinitionRequest(
                        aggregate_definition=rules_pb2.AggregateDefinition(
                            name=d.name, etag=d.etag, display_name="x"
                        ),
                        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                    ),
                    metadata=MD_B,
                ),
                a.rules.DeleteAggregateDefinition(
                    rules_pb2.DeleteAggregateDefinitionRequest(name=d.name, etag=d.etag),
                    metadata=MD_B,
                ),
                a.rules.RestoreAggregateDefinitionVersion(
                    rules_pb2.RestoreAggregateDefinitionVersionRequest(
                        name=f"{d.name}/versions/1", etag=d.etag
                    ),
                    metadata=MD_B,
                ),
            ):
                assert (await refused(call)).code() == grpc.StatusCode.PERMISSION_DENIED
            assert (await get(a, "Shared")).version == 1
            # A stale etag is ABORTED and changes nothing.
            err = await refused(
                a.rules.UpdateAggregateDefinition(
                    rules_pb2.UpdateAggregateDefinitionRequest(
                        aggregate_definition=rules_pb2.AggregateDefinition(
                            name=d.name, etag="v7", display_name="x"
                        ),
                        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                    ),
                    metadata=MD_A,
                )
            )
            assert err.code() == grpc.StatusCode.ABORTED

    asyncio.run(scenario())


def test_every_pack_definition_round_trips_through_the_contract() -> None:
    """What Get shows of a pack object, sent back unchanged, is the same definition
    (structured filters kept), so the pack is editable field by field."""
    pack = load_pack()
    defs, _ = split_pack(pack.aggregates)
    back = [aggregate_from_proto(d.aggregate_id, aggregate_to_proto(d), current=d) for d in defs]
    for d, b in zip(defs, back, strict=True):
        assert b.content() == d.content(), d.aggregate_id
    assert compose(pack.aggregates, back).digest == compose(pack.aggregates, defs).digest


def test_checks_during_a_rebuild_are_all_counted(database_url: str) -> None:  # noqa: F811
    """Events scored while the new state is built from the log reach it too: the
    answer after the swap is the one a replay of the whole log gives."""

    async def scenario() -> None:
        async with serving(database_url, ADMINS) as a:
            for i in range(10):
                await fired(a, minutes=i)

            async def create() -> None:
                await a.rules.CreateAggregateDefinition(
                    rules_pb2.CreateAggregateDefinitionRequest(
                        aggregate_id="IpApps", aggregate_definition=ip_definition(1)
                    ),
                    metadata=MD_A,
                )

            await asyncio.gather(create(), *(fired(a, minutes=10 + i) for i in range(30)))
            await serving_version(a, "IpApps", 1)
            await a.create("exactly-41", "params.ip_apps == 41", points=1)
            assert "exactly-41" in await fired(a, minutes=50)
            assert a.service.aggregate_rebuild_error is None

    asyncio.run(scenario())
