"""RuleAdminService over real gRPC, sharing the ScoringService that answers checks:
a created rule fires on the next check, updates make versions and refuse a stale etag,
old versions come back, a rule that does not compile is refused naming the field and
changes nothing, list entries added through the API make in_list rules fire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

from lendgate.scoring import ScoringService
from lendgate.scoring.pack import load_pack
from lendgate.store import StoreSettings, open_store
from lendgate.v1 import common_pb2, rules_pb2, rules_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from servers.rule_admin import RuleAdminServicer
from servers.scoring import ScoringServicer
from tests.conftest import ServerProcess
from tests.test_scoring import Person, application, next_id
from tests.test_server import serve_in_process

MD = (("x-lendgate-partner", "bank-a"),)
APP = common_pb2.EVENT_KIND_APPLICATION


@dataclass
class Admin:
    """Stubs of both services acting as partner bank-a."""

    rules: rules_pb2_grpc.RuleAdminServiceStub
    scoring: scoring_pb2_grpc.ScoringServiceStub
    service: ScoringService
    channel: grpc.aio.Channel | None = None  # for calls the typed stubs cannot make

    async def fired(self, event: scoring_pb2.ApplicationEvent) -> dict[str, int]:
        """Fired working rules of a check of ``event``: rule id -> points."""
        req = scoring_pb2.CheckApplicationRequest(request_id=f"r-{next_id()}", application=event)
        response: scoring_pb2.CheckApplicationResponse = await self.scoring.CheckApplication(
            req, metadata=MD, timeout=20
        )
        return {r.rule.removeprefix("rules/"): r.points for r in response.report.fired_rules}

    async def create(self, rule_id: str, condition: str, points: int = 50) -> rules_pb2.Rule:
        req = rules_pb2.CreateRuleRequest(
            rule_id=rule_id,
            rule=rules_pb2.Rule(
                display_name=f"test {rule_id}",
                event_kind=common_pb2.EVENT_KIND_APPLICATION,
                condition=condition,
                points=points,
            ),
            change_reason="first cut",
        )
        response: rules_pb2.CreateRuleResponse = await self.rules.CreateRule(
            req, metadata=MD, timeout=10
        )
        return response.rule

    async def update(
        self, rule: rules_pb2.Rule, paths: list[str], reason: str = ""
    ) -> rules_pb2.Rule:
        req = rules_pb2.UpdateRuleRequest(
            rule=rule, update_mask=field_mask_pb2.FieldMask(paths=paths), change_reason=reason
        )
        response: rules_pb2.UpdateRuleResponse = await self.rules.UpdateRule(
            req, metadata=MD, timeout=10
        )
        return response.rule

    async def get(self, rule_id: str) -> rules_pb2.Rule:
        response: rules_pb2.GetRuleResponse = await self.rules.GetRule(
            rules_pb2.GetRuleRequest(name=f"rules/{rule_id}"), metadata=MD, timeout=10
        )
        return response.rule


@asynccontextmanager
async def admin(tmp: Path, admins: frozenset[str] | None = None) -> AsyncIterator[Admin]:
    """A fresh ScoringService served with a RuleAdminService over it, in process."""
    settings = StoreSettings(
        database_url=f"sqlite:///{tmp / 'scoring.db'}",
        retention_interval_s=0,
        commit_delay_ms=0,
        sqlite_synchronous="NORMAL",
    )
    store = await asyncio.to_thread(open_store, None, settings)
    try:
        service = ScoringService(store)
        servicers = {
            "lendgate.v1.ScoringService": ScoringServicer(service),
            "lendgate.v1.RuleAdminService": RuleAdminServicer(service, admins),
        }
        async with serve_in_process(servicers) as ch:
            yield Admin(
                rules_pb2_grpc.RuleAdminServiceStub(ch),
                scoring_pb2_grpc.ScoringServiceStub(ch),
                service,
            )
    finally:
        await store.aclose()


def details(err: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """The ErrorInfo reason and the BadRequest violations (field -> description)."""
    raw = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    reason, fields = "", {}
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad):
            fields.update({v.field: v.description for v in bad.field_violations})
    return reason, fields


def amount_is(amount: int) -> str:
    return f"application.loan_amount.amount_minor == {amount}"


def test_created_rule_fires_on_the_next_check(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            assert "t-amount" not in await a.fired(application(amount=777_001))
            rule = await a.create("t-amount", amount_is(777_001), points=50)
            assert (rule.name, rule.version, rule.etag) == ("rules/t-amount", 1, "t-amount/v1")
            assert rule.status == common_pb2.RULE_STATUS_WORKING
            assert (await a.fired(application(amount=777_001)))["t-amount"] == 50
            assert "t-amount" not in await a.fired(application(amount=777_002))
            assert await a.get("t-amount") == rule

    asyncio.run(scenario())


def test_update_makes_a_version_and_a_stale_etag_is_aborted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            v1 = await a.create("t-upd", amount_is(777_101), points=50)
            edit = rules_pb2.Rule(name=v1.name, etag=v1.etag, points=70, condition="ignored")
            v2 = await a.update(edit, ["points"], reason="more weight")
            assert (v2.version, v2.points, v2.condition) == (2, 70, v1.condition)
            assert (await a.fired(application(amount=777_101)))["t-upd"] == 70

            stale = rules_pb2.Rule(name=v1.name, etag=v1.etag, points=1)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.update(stale, ["points"])
            assert caught.value.code() == grpc.StatusCode.ABORTED
            assert details(caught.value)[0] == "ETAG_MISMATCH"
            assert await a.get("t-upd") == v2

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.update(rules_pb2.Rule(name=v1.name, etag=v2.etag), ["name"])
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "update_mask.paths[0]" in details(caught.value)[1]

    asyncio.run(scenario())


def test_an_old_version_is_restored_and_a_deleted_rule_comes_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            v1 = await a.create("t-res", amount_is(777_201), points=50)
            v2 = await a.update(
                rules_pb2.Rule(name=v1.name, etag=v1.etag, condition=amount_is(1)), ["condition"]
            )
            assert "t-res" not in await a.fired(application(amount=777_201))

            restored: rules_pb2.RestoreRuleVersionResponse = await a.rules.RestoreRuleVersion(
                rules_pb2.RestoreRuleVersionRequest(
                    name="rules/t-res/versions/1", etag=v2.etag, change_reason="back"
                ),
                metadata=MD,
            )
            assert (restored.rule.version, restored.rule.condition) == (3, v1.condition)
            assert (await a.fired(application(amount=777_201)))["t-res"] == 50

            deleted: rules_pb2.DeleteRuleResponse = await a.rules.DeleteRule(
                rules_pb2.DeleteRuleRequest(name=v1.name, etag=restored.rule.etag), metadata=MD
            )
            assert deleted.version.change == rules_pb2.VERSION_CHANGE_DELETED
            assert "t-res" not in await a.fired(application(amount=777_201))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.get("t-res")
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND

            back: rules_pb2.RestoreRuleVersionResponse = await a.rules.RestoreRuleVersion(
                rules_pb2.RestoreRuleVersionRequest(name="rules/t-res/versions/3", etag=""),
                metadata=MD,
            )
            assert back.rule.version == 5
            assert (await a.fired(application(amount=777_201)))["t-res"] == 50
            version: rules_pb2.GetRuleVersionResponse = await a.rules.GetRuleVersion(
                rules_pb2.GetRuleVersionRequest(name="rules/t-res/versions/5"), metadata=MD
            )
            assert version.version.change == rules_pb2.VERSION_CHANGE_RESTORED
            assert version.version.restored_from_version == 3

    asyncio.run(scenario())


def test_a_condition_that_does_not_compile_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            before = len(a.service.rules)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.create("t-bad", "application.loan_amount.amount_minor == )")
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            fields = details(caught.value)[1]
            assert "rule.condition" in fields
            # The position (0-based, of the `)`) and why.
            assert "position 40" in fields["rule.condition"], fields
            assert "unexpected `)`" in fields["rule.condition"], fields
            assert len(a.service.rules) == before
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.get("t-bad")
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND

            good = await a.create("t-good", amount_is(777_301))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.update(
                    rules_pb2.Rule(name=good.name, etag=good.etag, condition="1 +"), ["condition"]
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "rule.condition" in details(caught.value)[1]
            assert await a.get("t-good") == good
            assert "t-good" in await a.fired(application(amount=777_301))

    asyncio.run(scenario())


def test_a_list_entry_added_through_the_api_makes_in_list_rules_fire(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            created: rules_pb2.CreateListResponse = await a.rules.CreateList(
                rules_pb2.CreateListRequest(
                    list_id="test-inns",
                    list=rules_pb2.List(
                        type=rules_pb2.LIST_TYPE_BLACK, entry_kind=rules_pb2.LIST_ENTRY_KIND_TAX_ID
                    ),
                ),
                metadata=MD,
            )
            assert (created.list.name, created.list.entry_count) == ("lists/test-inns", 0)
            await a.create(
                "t-inn", "in_list('test-inns', application.applicant.employer.tax_id)", 60
            )
            event = application(Person(inn="7709990001"))
            assert "t-inn" not in await a.fired(event)

            added: rules_pb2.AddListEntriesResponse = await a.rules.AddListEntries(
                rules_pb2.AddListEntriesRequest(
                    name="lists/test-inns",
                    entries=[rules_pb2.ListEntry(value="7709990001", comment="one-day")],
                ),
                metadata=MD,
            )
            assert (added.added_count, added.list.entry_count) == (1, 1)
            assert (await a.fired(application(Person(inn="7709990001"))))["t-inn"] == 60

            listed: rules_pb2.ListListEntriesResponse = await a.rules.ListListEntries(
                rules_pb2.ListListEntriesRequest(parent="lists/test-inns"), metadata=MD
            )
            assert [(e.value, e.author) for e in listed.entries] == [("7709990001", "bank-a")]

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.AddListEntries(
                    rules_pb2.AddListEntriesRequest(
                        name="lists/test-inns",
                        entries=[rules_pb2.ListEntry(value="7709990002"), rules_pb2.ListEntry()],
                    ),
                    metadata=MD,
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "entries[1].value" in details(caught.value)[1]
            got: rules_pb2.GetListResponse = await a.rules.GetList(
                rules_pb2.GetListRequest(name="lists/test-inns"), metadata=MD
            )
            assert got.list.entry_count == 1

            removed: rules_pb2.RemoveListEntriesResponse = await a.rules.RemoveListEntries(
                rules_pb2.RemoveListEntriesRequest(name="lists/test-inns", values=["7709990001"]),
                metadata=MD,
            )
            assert removed.removed_count == 1
            assert "t-inn" not in await a.fired(application(Person(inn="7709990001")))

            lists: rules_pb2.ListListsResponse = await a.rules.ListLists(
                rules_pb2.ListListsRequest(), metadata=MD
            )
            assert "lists/test-inns" in [x.name for x in lists.lists]

    asyncio.run(scenario())


def test_version_history_says_who_and_why_newest_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            v1 = await a.create("t-hist", amount_is(777_401))
            await a.update(
                rules_pb2.Rule(name=v1.name, etag=v1.etag, points=5), ["points"], "too strong"
            )
            page: rules_pb2.ListRuleVersionsResponse = await a.rules.ListRuleVersions(
                rules_pb2.ListRuleVersionsRequest(parent="rules/t-hist", page_size=1), metadata=MD
            )
            assert [(v.version, v.author, v.change_reason) for v in page.versions] == [
                (2, "bank-a", "too strong")
            ]
            assert page.versions[0].change == rules_pb2.VERSION_CHANGE_UPDATED
            rest: rules_pb2.ListRuleVersionsResponse = await a.rules.ListRuleVersions(
                rules_pb2.ListRuleVersionsRequest(
                    parent="rules/t-hist", page_size=1, page_token=page.next_page_token
                ),
                metadata=MD,
            )
            assert [(v.version, v.author, v.change_reason) for v in rest.versions] == [
                (1, "bank-a", "first cut")
            ]
            assert rest.next_page_token == ""

    asyncio.run(scenario())


def test_a_repeated_request_id_gets_the_first_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            req = rules_pb2.CreateRuleRequest(
                request_id="once",
                rule_id="t-idem",
                rule=rules_pb2.Rule(
                    event_kind=common_pb2.EVENT_KIND_APPLICATION, condition=amount_is(1)
                ),
            )
            first = await a.rules.CreateRule(req, metadata=MD)
            again = await a.rules.CreateRule(req, metadata=MD)
            assert first == again
            assert len(a.service.book.versions("t-idem")) == 1
            req.rule.points = 9
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.CreateRule(req, metadata=MD)
            assert details(caught.value)[0] == "REQUEST_ID_REUSED"

    asyncio.run(scenario())


def test_aggregate_definition_names_are_checked(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            for name, code in (
                ("aggregateDefinitions/x", grpc.StatusCode.NOT_FOUND),
                ("aggregates/x", grpc.StatusCode.INVALID_ARGUMENT),
                ("", grpc.StatusCode.INVALID_ARGUMENT),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await a.rules.GetAggregateDefinition(
                        rules_pb2.GetAggregateDefinitionRequest(name=name), metadata=MD
                    )
                assert caught.value.code() == code, name

    asyncio.run(scenario())


def test_the_served_app_lists_the_default_pack(server: ServerProcess) -> None:
    """`lendgate serve` hosts RuleAdminService over its ScoringService's rule book."""
    with grpc.insecure_channel(server.address) as chan:
        stub = rules_pb2_grpc.RuleAdminServiceStub(chan)
        names: list[str] = []
        token = ""
        while True:
            page: rules_pb2.ListRulesResponse = stub.ListRules(
                rules_pb2.ListRulesRequest(page_size=7, page_token=token), metadata=MD, timeout=10
            )
            names += [r.name for r in page.rules]
            token = page.next_page_token
            if not token:
                break
        assert names == sorted(f"rules/{r.rule_id}" for r in load_pack().rules)


def test_bad_fields_are_named(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path) as a:
            cases = {
                "rule_id": rules_pb2.CreateRuleRequest(
                    rule_id="Bad Id", rule=rules_pb2.Rule(event_kind=APP, condition="true")
                ),
                "rule.event_kind": rules_pb2.CreateRuleRequest(
                    rule_id="t-x", rule=rules_pb2.Rule(condition="true")
                ),
                "rule.status": rules_pb2.CreateRuleRequest(
                    rule_id="t-x",
                    rule=rules_pb2.Rule(
                        event_kind=APP, status=common_pb2.RuleStatus.ValueType(99), condition="true"
                    ),
                ),
            }
            for field, req in cases.items():
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await a.rules.CreateRule(req, metadata=MD)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
                assert field in details(caught.value)[1], field

    asyncio.run(scenario())


def test_only_rule_admins_change_the_consortium_pack(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with admin(tmp_path, admins=frozenset({"bureau"})) as a:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.create("t-intruder", amount_is(1))
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "rule_admins" in (caught.value.details() or "")
            assert "t-intruder" not in {r.rule_id for r in a.service.book.rules()}
            request = rules_pb2.CreateRuleRequest(
                request_id="by-bureau",
                rule_id="t-bureau",
                rule=rules_pb2.Rule(
                    display_name="bureau rule",
                    event_kind=common_pb2.EVENT_KIND_APPLICATION,
                    condition=amount_is(5),
                    points=10,
                ),
            )
            created = await a.rules.CreateRule(
                request, metadata=(("x-lendgate-partner", "bureau"),), timeout=10
            )
            assert created.rule.name == "rules/t-bureau"

    asyncio.run(scenario())


def test_reports_name_the_rule_revision_that_evaluated_them(tmp_path: Path) -> None:
    async def revision(a: Admin, amount: int) -> str:
        req = scoring_pb2.CheckApplicationRequest(
            request_id=f"r-{next_id()}", application=application(amount=amount)
        )
        response = await a.scoring.CheckApplication(req, metadata=MD, timeout=20)
        return str(response.report.provenance.rule_pack_revision)

    async def scenario() -> None:
        async with admin(tmp_path) as a:
            assert await revision(a, 1_001) == "default-1"
            rule = await a.create("t-rev", amount_is(1_002))
            edited = await revision(a, 1_003)
            assert edited.startswith("default-1+") and len(edited) == len("default-1+") + 12
            await a.rules.DeleteRule(
                rules_pb2.DeleteRuleRequest(name=rule.name, etag=rule.etag), metadata=MD
            )
            # Back to the shipped content: back to the shipped revision.
            assert await revision(a, 1_004) == "default-1"

    asyncio.run(scenario())
