"""RuleAdminService keeps every change in the store: a server restarted on the same
database (SQLite file, PostgreSQL schema) serves the same rules, versions, lists,
entries and settings. Also the list and settings methods (update, delete, bulk import)
and the partners' private rules and lists, all over real gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from lendgate.scoring import ScoringService
from lendgate.store import open_store
from lendgate.v1 import common_pb2, rules_pb2, rules_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from servers import rule_admin
from servers.rule_admin import RuleAdminServicer
from servers.scoring import ScoringServicer
from tests.test_rule_admin_service import Admin, amount_is, details
from tests.test_scoring import Person, application, next_id
from tests.test_server import serve_in_process
from tests.test_store import database_url, settings_for  # noqa: F401 (a fixture)

MD_A = (("x-lendgate-partner", "bank-a"),)
MD_B = (("x-lendgate-partner", "bank-b"),)
MD_OP = (("x-lendgate-partner", "bureau"),)
PRIVATE = rules_pb2.DEFINITION_SCOPE_PARTNER


@asynccontextmanager
async def serving(url: str, admins: frozenset[str] | None = None) -> AsyncIterator[Admin]:
    """A ScoringService and a RuleAdminService over the database at ``url``; leaving the
    block stops both and closes the store, as a server process would on shutdown."""
    store = await asyncio.to_thread(
        open_store, None, settings_for(url, commit_delay_ms=0, sqlite_synchronous="NORMAL")
    )
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
                ch,
            )
    finally:
        await store.aclose()


async def code_of(call: object) -> grpc.StatusCode:
    """The status code a failing call ends with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code()


def entry(value: str, comment: str = "", expire_ms: int | None = None) -> rules_pb2.ListEntry:
    out = rules_pb2.ListEntry(value=value, comment=comment)
    if expire_ms is not None:
        out.expire_time.FromMilliseconds(expire_ms)
    return out


def inn_list(list_id: str, scope: int = 0) -> rules_pb2.CreateListRequest:
    return rules_pb2.CreateListRequest(
        list_id=list_id,
        list=rules_pb2.List(
            type=rules_pb2.LIST_TYPE_BLACK,
            entry_kind=rules_pb2.LIST_ENTRY_KIND_TAX_ID,
            scope=scope,  # type: ignore[arg-type]
        ),
        change_reason="new list",
    )


async def all_entries(a: Admin, list_id: str, md: tuple[tuple[str, str], ...] = MD_A) -> list[str]:
    out: list[str] = []
    token = ""
    while True:
        page: rules_pb2.ListListEntriesResponse = await a.rules.ListListEntries(
            rules_pb2.ListListEntriesRequest(parent=f"lists/{list_id}", page_token=token),
            metadata=md,
        )
        out += [f"{e.value}|{e.comment}|{e.expire_time.ToMilliseconds()}" for e in page.entries]
        token = page.next_page_token
        if not token:
            return out


async def import_entries(
    a: Admin,
    list_id: str,
    chunks: list[list[rules_pb2.ListEntry]],
    mode: int = rules_pb2.IMPORT_MODE_MERGE,
    md: tuple[tuple[str, str], ...] = MD_A,
) -> rules_pb2.ImportListEntriesResponse:
    async def stream() -> AsyncIterator[rules_pb2.ImportListEntriesRequest]:
        for i, chunk in enumerate(chunks):
            if i == 0:
                yield rules_pb2.ImportListEntriesRequest(
                    name=f"lists/{list_id}",
                    mode=mode,  # type: ignore[arg-type]
                    entries=chunk,
                )
            else:
                yield rules_pb2.ImportListEntriesRequest(entries=chunk)

    response: rules_pb2.ImportListEntriesResponse = await a.rules.ImportListEntries(
        stream(), metadata=md, timeout=60
    )
    return response


def test_rules_lists_and_settings_survive_a_restart(database_url: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with serving(database_url) as a:
            v1 = await a.create("t-keep", amount_is(888_001), points=40)
            v2 = await a.update(
                rules_pb2.Rule(name=v1.name, etag=v1.etag, points=45), ["points"], "heavier"
            )
            gone = await a.get("r07-employer-ip-mass-applications")
            await a.rules.DeleteRule(
                rules_pb2.DeleteRuleRequest(name=gone.name, etag=gone.etag, change_reason="noisy"),
                metadata=MD_A,
            )
            await a.rules.CreateList(inn_list("kept-inns"), metadata=MD_A)
            await a.rules.AddListEntries(
                rules_pb2.AddListEntriesRequest(
                    name="lists/kept-inns",
                    entries=[
                        entry("7709990001", "one-day"),
                        entry("7709990002", expire_ms=4_102_444_800_000),
                        entry("7709990003"),
                    ],
                ),
                metadata=MD_A,
            )
            await a.rules.AddListEntries(
                rules_pb2.AddListEntriesRequest(
                    name="lists/kept-inns", entries=[entry("7709990001", "re-listed")]
                ),
                metadata=MD_A,
            )
            await a.rules.RemoveListEntries(
                rules_pb2.RemoveListEntriesRequest(name="lists/kept-inns", values=["7709990003"]),
                metadata=MD_A,
            )
            await a.create(
                "t-kept-inn", "in_list('kept-inns', application.applicant.employer.tax_id)", 7
            )
            settings: rules_pb2.GetScoringSettingsResponse = await a.rules.GetScoringSettings(
                rules_pb2.GetScoringSettingsRequest(name="scoringSettings"), metadata=MD_A
            )
            await a.rules.UpdateScoringSettings(
                rules_pb2.UpdateScoringSettingsRequest(
                    scoring_settings=rules_pb2.ScoringSettings(
                        zone_threshold=40, etag=settings.scoring_settings.etag
                    ),
                    update_mask=field_mask_pb2.FieldMask(paths=["zone_threshold"]),
                    change_reason="stricter",
                ),
                metadata=MD_A,
            )
            before_rules: rules_pb2.ListRulesResponse = await a.rules.ListRules(
                rules_pb2.ListRulesRequest(page_size=1000), metadata=MD_A
            )
            before_versions: rules_pb2.ListRuleVersionsResponse = await a.rules.ListRuleVersions(
                rules_pb2.ListRuleVersionsRequest(parent="rules/t-keep"), metadata=MD_A
            )
            before_list: rules_pb2.GetListResponse = await a.rules.GetList(
                rules_pb2.GetListRequest(name="lists/kept-inns"), metadata=MD_A
            )
            before_entries = await all_entries(a, "kept-inns")
            before_pack_list = await all_entries(a, "one-day-companies")
            revision = a.service.rule_pack_revision

        async with serving(database_url) as b:
            after_rules: rules_pb2.ListRulesResponse = await b.rules.ListRules(
                rules_pb2.ListRulesRequest(page_size=1000), metadata=MD_A
            )
            assert after_rules == before_rules
            assert "rules/r07-employer-ip-mass-applications" not in [
                r.name for r in after_rules.rules
            ]
            after_versions: rules_pb2.ListRuleVersionsResponse = await b.rules.ListRuleVersions(
                rules_pb2.ListRuleVersionsRequest(parent="rules/t-keep"), metadata=MD_A
            )
            assert after_versions == before_versions
            assert [(v.version, v.author, v.change_reason) for v in after_versions.versions] == [
                (2, "bank-a", "heavier"),
                (1, "bank-a", "first cut"),
            ]
            assert await b.get("t-keep") == v2
            after_list: rules_pb2.GetListResponse = await b.rules.GetList(
                rules_pb2.GetListRequest(name="lists/kept-inns"), metadata=MD_A
            )
            assert after_list == before_list
            assert after_list.list.version == 4  # created, added, replaced, removed
            assert await all_entries(b, "kept-inns") == before_entries
            assert before_entries == [
                "7709990001|re-listed|0",
                "7709990002||4102444800000",
            ]
            assert await all_entries(b, "one-day-companies") == before_pack_list
            got: rules_pb2.GetScoringSettingsResponse = await b.rules.GetScoringSettings(
                rules_pb2.GetScoringSettingsRequest(name="scoringSettings"), metadata=MD_A
            )
            assert (got.scoring_settings.zone_threshold, got.scoring_settings.version) == (40, 1)
            assert got.scoring_settings.change_reason == "stricter"
            assert b.service.rule_pack_revision == revision

            # The restarted server scores with what it loaded.
            fired = await b.fired(application(Person(inn="7709990001"), amount=888_001))
            assert (fired["t-keep"], fired["t-kept-inn"]) == (45, 7)
            assert "r07-employer-ip-mass-applications" not in fired
            # A deleted rule's history is still there and restorable after the restart.
            restored: rules_pb2.RestoreRuleVersionResponse = await b.rules.RestoreRuleVersion(
                rules_pb2.RestoreRuleVersionRequest(
                    name="rules/r07-employer-ip-mass-applications/versions/1",
                    etag="",
                    change_reason="back",
                ),
                metadata=MD_A,
            )
            assert restored.rule.version == 3

        async with serving(database_url) as c:
            again = await c.get("r07-employer-ip-mass-applications")
            assert again == restored.rule

    asyncio.run(scenario())


def test_update_and_delete_a_list(database_url: str) -> None:  # noqa: F811
    async def scenario() -> None:
        async with serving(database_url, admins=frozenset({"bank-a"})) as a:
            created: rules_pb2.CreateListResponse = await a.rules.CreateList(
                inn_list("edit-inns"), metadata=MD_A
            )
            lst = created.list
            mask = field_mask_pb2.FieldMask(paths=["description", "type", "default_entry_ttl"])
            edit = rules_pb2.List(
                name=lst.name, etag=lst.etag, description="grey now", type=rules_pb2.LIST_TYPE_GREY
            )
            edit.default_entry_ttl.FromSeconds(86_400)
            updated: rules_pb2.UpdateListResponse = await a.rules.UpdateList(
                rules_pb2.UpdateListRequest(list=edit, update_mask=mask, change_reason="demoted"),
                metadata=MD_A,
            )
            u = updated.list
            assert (u.version, u.description, u.type) == (2, "grey now", rules_pb2.LIST_TYPE_GREY)
            assert (u.update_author, u.change_reason) == ("bank-a", "demoted")
            assert u.default_entry_ttl.seconds == 86_400

            # Bad input, stale etags, other partners.
            bad_mask = rules_pb2.UpdateListRequest(
                list=rules_pb2.List(name=lst.name, etag=u.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["entry_kind"]),
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.UpdateList(bad_mask, metadata=MD_A)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "update_mask.paths[0]" in details(caught.value)[1]
            stale = rules_pb2.UpdateListRequest(
                list=rules_pb2.List(name=lst.name, etag=lst.etag, description="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
            assert await code_of(a.rules.UpdateList(stale, metadata=MD_A)) == (
                grpc.StatusCode.ABORTED
            )
            assert await code_of(a.rules.UpdateList(stale, metadata=MD_B)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            # A partner that may not change the list is refused on the import's first
            # message, and nothing changes.
            denied = import_entries(a, "edit-inns", [[entry("7709990012")]], md=MD_B)
            assert await code_of(denied) == grpc.StatusCode.PERMISSION_DENIED
            assert await all_entries(a, "edit-inns") == []
            missing = rules_pb2.DeleteListRequest(name="lists/no-such-list", etag="v1")
            assert await code_of(a.rules.DeleteList(missing, metadata=MD_A)) == (
                grpc.StatusCode.NOT_FOUND
            )
            no_etag = rules_pb2.DeleteListRequest(name=lst.name)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.DeleteList(no_etag, metadata=MD_A)
            assert "etag" in details(caught.value)[1]

            # A working rule that reads the list keeps it alive.
            await a.rules.AddListEntries(
                rules_pb2.AddListEntriesRequest(name=lst.name, entries=[entry("7709990011")]),
                metadata=MD_A,
            )
            user = await a.create(
                "t-edit-inn", "in_list('edit-inns', application.applicant.employer.tax_id)"
            )
            current: rules_pb2.GetListResponse = await a.rules.GetList(
                rules_pb2.GetListRequest(name=lst.name), metadata=MD_A
            )
            delete = rules_pb2.DeleteListRequest(name=lst.name, etag=current.list.etag)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.DeleteList(delete, metadata=MD_A)
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert details(caught.value)[0] == "LIST_IN_USE"
            await a.rules.DeleteRule(
                rules_pb2.DeleteRuleRequest(name=user.name, etag=user.etag), metadata=MD_A
            )
            await a.rules.DeleteList(delete, metadata=MD_A)
            get = rules_pb2.GetListRequest(name=lst.name)
            assert await code_of(a.rules.GetList(get, metadata=MD_A)) == grpc.StatusCode.NOT_FOUND

        async with serving(database_url, admins=frozenset({"bank-a"})) as b:
            assert await code_of(b.rules.GetList(get, metadata=MD_A)) == grpc.StatusCode.NOT_FOUND
            # The id can be used again, and the new list starts empty.
            again: rules_pb2.CreateListResponse = await b.rules.CreateList(
                inn_list("edit-inns"), metadata=MD_A
            )
            assert again.list.entry_count == 0
            assert await all_entries(b, "edit-inns") == []

        async with serving(database_url, admins=frozenset({"bank-a"})) as c:
            assert await all_entries(c, "edit-inns") == []

    asyncio.run(scenario())


def test_a_bad_message_in_an_import_changes_nothing(tmp_path: Path) -> None:
    """The messages of an import are decoded by the Rust core once the stream ends: a
    message that does not decode, one with too many entries or an invalid expiry is
    INVALID_ARGUMENT naming the field, and the list keeps its version and entries."""
    url = f"sqlite:///{tmp_path}/bad-import.db"
    head = rules_pb2.ImportListEntriesRequest(name="lists/careful", entries=[entry("7700000001")])

    async def scenario() -> None:
        async with serving(url) as a:
            assert a.channel is not None
            await a.rules.CreateList(inn_list("careful"), metadata=MD_A)
            before = await import_entries(a, "careful", [[entry("7700000001", "kept")]])
            raw = a.channel.stream_unary(
                "/lendgate.v1.RuleAdminService/ImportListEntries",
                request_serializer=lambda b: b,
                response_deserializer=rules_pb2.ImportListEntriesResponse.FromString,
            )
            bad_expiry = rules_pb2.ListEntry(value="7700000002")
            bad_expiry.expire_time.nanos = -1
            cases = {
                "a message that does not decode": b"\xff\xff\xff",
                "10,001 entries in one message": rules_pb2.ImportListEntriesRequest(
                    entries=[entry(f"77{i:08d}") for i in range(10_001)]
                ).SerializeToString(),
                "nanos out of range": rules_pb2.ImportListEntriesRequest(
                    entries=[bad_expiry]
                ).SerializeToString(),
            }
            for why, second in cases.items():
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await raw(iter([head.SerializeToString(), second]), metadata=MD_A)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, why
                assert details(caught.value)[1].keys() <= {"entries", "entries.expire_time"}, why
                assert details(caught.value)[1], why
            got: rules_pb2.GetListResponse = await a.rules.GetList(
                rules_pb2.GetListRequest(name="lists/careful"), metadata=MD_A
            )
            assert (got.list.entry_count, got.list.version) == (1, before.list.version)
            assert await all_entries(a, "careful") == ["7700000001|kept|0"]

        async with serving(url) as b:
            assert await all_entries(b, "careful") == ["7700000001|kept|0"]

    asyncio.run(scenario())


def test_an_import_past_its_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream is held whole until it ends, so its size is bounded: past the limit
    (lowered here) the import is INVALID_ARGUMENT on ``entries`` and changes nothing."""
    monkeypatch.setattr(rule_admin, "MAX_IMPORT_BYTES", 4_000)
    url = f"sqlite:///{tmp_path}/big-import.db"

    async def scenario() -> None:
        async with serving(url) as a:
            await a.rules.CreateList(inn_list("capped"), metadata=MD_A)
            chunk = [entry(f"77{i:08d}") for i in range(200)]  # ~2,800 bytes a message
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await import_entries(a, "capped", [chunk, chunk])
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "entries" in details(caught.value)[1]
            assert await all_entries(a, "capped") == []
            ok = await import_entries(a, "capped", [chunk])
            assert ok.list.entry_count == 200

    asyncio.run(scenario())


def test_import_list_entries_merges_or_replaces_in_one_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/import.db"

    async def scenario() -> None:
        async with serving(url) as a:
            await a.rules.CreateList(inn_list("bulk-inns"), metadata=MD_A)
            first = await import_entries(
                a,
                "bulk-inns",
                [
                    [entry(f"77{i:08d}") for i in range(0, 5000)],
                    [entry(f"77{i:08d}") for i in range(5000, 12_000)]
                    + [entry("not-an-inn"), entry("")],
                ],
            )
            assert (first.received_count, first.rejected_count) == (12_002, 2)
            assert [v.field for v in first.rejections] == [
                "entries[12000].value",
                "entries[12001].value",
            ]
            assert (first.list.entry_count, first.list.version) == (12_000, 2)
            assert "t-bulk" not in await a.fired(application(Person(inn="7700000042")))
            await a.create(
                "t-bulk", "in_list('bulk-inns', application.applicant.employer.tax_id)", 9
            )
            assert (await a.fired(application(Person(inn="7700000042"))))["t-bulk"] == 9

            second = await import_entries(
                a,
                "bulk-inns",
                [[entry("7799999999", "only one")]],
                mode=rules_pb2.IMPORT_MODE_REPLACE,
            )
            assert (second.list.entry_count, second.list.version) == (1, 3)
            assert "t-bulk" not in await a.fired(application(Person(inn="7700000042")))
            assert await all_entries(a, "bulk-inns") == ["7799999999|only one|0"]

            empty = await code_of(
                a.rules.ImportListEntries(
                    iter([rules_pb2.ImportListEntriesRequest(name="lists/nope")]), metadata=MD_A
                )
            )
            assert empty == grpc.StatusCode.NOT_FOUND

        async with serving(url) as b:
            assert await all_entries(b, "bulk-inns") == ["7799999999|only one|0"]
            assert (await b.fired(application(Person(inn="7799999999"))))["t-bulk"] == 9

    asyncio.run(scenario())


def test_the_zone_threshold_is_a_versioned_setting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/settings.db"

    async def scenario() -> None:
        async with serving(url, admins=frozenset({"bureau"})) as a:
            got: rules_pb2.GetScoringSettingsResponse = await a.rules.GetScoringSettings(
                rules_pb2.GetScoringSettingsRequest(name="scoringSettings"), metadata=MD_A
            )
            s = got.scoring_settings
            assert (s.zone_threshold, s.version, s.etag) == (432, 0, "v0")
            req = rules_pb2.UpdateScoringSettingsRequest(
                scoring_settings=rules_pb2.ScoringSettings(zone_threshold=1, etag=s.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["zone_threshold"]),
            )
            assert await code_of(a.rules.UpdateScoringSettings(req, metadata=MD_A)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            bad = rules_pb2.UpdateScoringSettingsRequest()
            bad.CopyFrom(req)
            bad.scoring_settings.zone_threshold = 0
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.UpdateScoringSettings(bad, metadata=MD_OP)
            assert "scoring_settings.zone_threshold" in details(caught.value)[1]
            fixed = rules_pb2.UpdateScoringSettingsRequest()
            fixed.CopyFrom(req)
            fixed.update_mask.paths.append("review_threshold")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.UpdateScoringSettings(fixed, metadata=MD_OP)
            assert "update_mask.paths[1]" in details(caught.value)[1]

            check = rules_pb2.CreateRuleRequest(
                rule_id="t-zone",
                rule=rules_pb2.Rule(
                    event_kind=common_pb2.EVENT_KIND_APPLICATION,
                    condition=amount_is(888_101),
                    points=50,
                ),
            )
            await a.rules.CreateRule(check, metadata=MD_OP)
            req.scoring_settings.zone_threshold = 50
            done: rules_pb2.UpdateScoringSettingsResponse = await a.rules.UpdateScoringSettings(
                req, metadata=MD_OP
            )
            assert (done.scoring_settings.zone_threshold, done.scoring_settings.version) == (50, 1)
            assert await code_of(a.rules.UpdateScoringSettings(req, metadata=MD_OP)) == (
                grpc.StatusCode.ABORTED
            )
            response = await a.scoring.CheckApplication(
                scoring_request(application(amount=888_101)), metadata=MD_A
            )
            assert response.report.zone == scoring_pb2.ZONE_BLACK

    asyncio.run(scenario())


def scoring_request(event: scoring_pb2.ApplicationEvent) -> scoring_pb2.CheckApplicationRequest:
    """A check of ``event`` with a fresh request id."""
    return scoring_pb2.CheckApplicationRequest(request_id=f"z-{next_id()}", application=event)


@pytest.fixture
def two_partners(tmp_path: Path) -> Iterator[str]:
    """A SQLite file for a server shared by two partners and the bureau."""
    yield f"sqlite:///{tmp_path}/partners.db"


def test_private_rules_and_lists_are_the_partners_own(two_partners: str) -> None:
    async def scenario() -> None:
        async with serving(two_partners, admins=frozenset({"bureau"})) as s:
            private = rules_pb2.CreateRuleRequest(
                rule_id="a-own",
                rule=rules_pb2.Rule(
                    event_kind=common_pb2.EVENT_KIND_APPLICATION,
                    condition="in_list('a-inns', application.applicant.employer.tax_id)",
                    points=33,
                    scope=PRIVATE,
                ),
            )
            await s.rules.CreateList(inn_list("a-inns", PRIVATE), metadata=MD_A)
            made: rules_pb2.CreateRuleResponse = await s.rules.CreateRule(private, metadata=MD_A)
            assert made.rule.scope == PRIVATE
            await s.rules.AddListEntries(
                rules_pb2.AddListEntriesRequest(name="lists/a-inns", entries=[entry("7709990077")]),
                metadata=MD_A,
            )
            # A cannot write the consortium's pack; it can write its own.
            shared = rules_pb2.CreateRuleRequest()
            shared.CopyFrom(private)
            shared.rule_id = "a-shared"
            shared.rule.scope = rules_pb2.DEFINITION_SCOPE_CONSORTIUM
            assert await code_of(s.rules.CreateRule(shared, metadata=MD_A)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )

            event = application(Person(inn="7709990077"))
            md_a, md_b = MD_A, MD_B
            assert (await s.fired(event))["a-own"] == 33
            b_report = await s.scoring.CheckApplication(
                scoring_request(application(Person(inn="7709990077"))), metadata=md_b
            )
            assert "rules/a-own" not in [r.rule for r in b_report.report.fired_rules]

            # B sees neither A's rule nor A's list, and cannot change them.
            for call in (
                s.rules.GetRule(rules_pb2.GetRuleRequest(name="rules/a-own"), metadata=md_b),
                s.rules.GetList(rules_pb2.GetListRequest(name="lists/a-inns"), metadata=md_b),
                s.rules.ListRuleVersions(
                    rules_pb2.ListRuleVersionsRequest(parent="rules/a-own"), metadata=md_b
                ),
                s.rules.UpdateRule(
                    rules_pb2.UpdateRuleRequest(
                        rule=rules_pb2.Rule(name="rules/a-own", etag="a-own/v1", points=0),
                        update_mask=field_mask_pb2.FieldMask(paths=["points"]),
                    ),
                    metadata=md_b,
                ),
                s.rules.DeleteRule(
                    rules_pb2.DeleteRuleRequest(name="rules/a-own", etag="a-own/v1"), metadata=md_b
                ),
                s.rules.AddListEntries(
                    rules_pb2.AddListEntriesRequest(
                        name="lists/a-inns", entries=[entry("7709990078")]
                    ),
                    metadata=md_b,
                ),
                s.rules.ListListEntries(
                    rules_pb2.ListListEntriesRequest(parent="lists/a-inns"), metadata=md_b
                ),
            ):
                assert await code_of(call) == grpc.StatusCode.NOT_FOUND
            b_rules: rules_pb2.ListRulesResponse = await s.rules.ListRules(
                rules_pb2.ListRulesRequest(page_size=1000), metadata=md_b
            )
            assert "rules/a-own" not in [r.name for r in b_rules.rules]
            b_lists: rules_pb2.ListListsResponse = await s.rules.ListLists(
                rules_pb2.ListListsRequest(), metadata=md_b
            )
            assert "lists/a-inns" not in [x.name for x in b_lists.lists]
            a_rules: rules_pb2.ListRulesResponse = await s.rules.ListRules(
                rules_pb2.ListRulesRequest(page_size=1000), metadata=md_a
            )
            assert "rules/a-own" in [r.name for r in a_rules.rules]
            # Partners' private ids are separate namespaces: B may have its own
            # "a-inns", which is not A's (and learns nothing about A's).
            b_same: rules_pb2.CreateListResponse = await s.rules.CreateList(
                inn_list("a-inns", PRIVATE), metadata=md_b
            )
            assert (b_same.list.entry_count, b_same.list.version) == (0, 1)
            assert await all_entries(s, "a-inns", md_b) == []
            assert await all_entries(s, "a-inns", md_a) == ["7709990077||0"]
            # But nobody can shadow a consortium id.
            assert (
                await code_of(
                    s.rules.CreateList(inn_list("one-day-companies", PRIVATE), metadata=md_b)
                )
                == grpc.StatusCode.ALREADY_EXISTS
            )
            # B's own private rule does not touch A's checks.
            b_rule = rules_pb2.CreateRuleRequest()
            b_rule.CopyFrom(private)
            b_rule.rule_id = "b-own"
            b_rule.rule.condition = amount_is(888_201)
            await s.rules.CreateRule(b_rule, metadata=md_b)
            assert "b-own" not in await s.fired(application(amount=888_201))

        async with serving(two_partners, admins=frozenset({"bureau"})) as t:
            assert (await t.fired(application(Person(inn="7709990077"))))["a-own"] == 33
            again = await t.scoring.CheckApplication(
                scoring_request(application(Person(inn="7709990077"))), metadata=MD_B
            )
            assert "rules/a-own" not in [r.rule for r in again.report.fired_rules]
            got: rules_pb2.GetRuleResponse = await t.rules.GetRule(
                rules_pb2.GetRuleRequest(name="rules/b-own"), metadata=MD_B
            )
            assert got.rule.scope == PRIVATE
            assert (
                await code_of(
                    t.rules.GetRule(rules_pb2.GetRuleRequest(name="rules/b-own"), metadata=MD_A)
                )
                == grpc.StatusCode.NOT_FOUND
            )

    asyncio.run(scenario())


def test_two_servers_starting_together_write_the_pack_once(tmp_path: Path) -> None:
    """The first start writes the shipped pack with version checks: two servers on one
    empty database never make a rule's version 1 twice, and neither fails to start."""
    url = f"sqlite:///{tmp_path}/twice.db"

    async def scenario() -> None:
        settings = settings_for(url, commit_delay_ms=0)
        stores = [await asyncio.to_thread(open_store, None, settings) for _ in range(2)]
        try:
            services = [ScoringService(s) for s in stores]
            await asyncio.gather(*(s.recover() for s in services))
            for rule in services[0].pack.rules:
                versions = await stores[0].list_definition_versions(
                    "rule", f"consortium/{rule.rule_id}"
                )
                assert [v.version for v in versions] == [1], rule.rule_id
            # Both serve the whole pack, not the part the other had written so far.
            for service in services:
                assert pack_as_served(service) == pack_as_served(services[0])
                assert {r.rule_id for r in service.admin.consortium.book.rules()} == {
                    r.rule_id for r in service.pack.rules
                }
        finally:
            for s in stores:
                await s.aclose()

    asyncio.run(scenario())


def pack_as_served(service: ScoringService) -> tuple[object, ...]:
    """What a server took from the store: rule ids and versions, lists with their entry
    counts, the aggregate definitions' digest."""
    admin = service.admin
    rules = sorted((r.rule_id, r.version) for r in admin.consortium.book.rules())
    lists = sorted(
        (d.list_id, len(admin.consortium.lists.registry.entries(d.list_id, -(2**62), 2**62)))
        for d in admin.consortium.lists.all()
    )
    return rules, lists, service.aggregate_state.digest


class DiesAfter:
    """A real store whose process 'dies' (raises) after ``writes`` definition writes."""

    def __init__(self, store: object, writes: int) -> None:
        self._store = store
        self._left = writes

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def put_definition(self, *args: object, **kwargs: object) -> object:
        if self._left == 0:
            raise ConnectionError("the process died here")
        self._left -= 1
        return await self._store.put_definition(*args, **kwargs)  # type: ignore[attr-defined]


def test_a_first_start_that_died_half_way_is_completed_by_the_next(tmp_path: Path) -> None:
    """The pack is written item by item; a first start that dies after some of them
    leaves no mark that the pack is whole, so the next start writes the rest (each item
    still once) and serves the whole pack — the same as a store written in one go."""
    settings = settings_for(f"sqlite:///{tmp_path}/half.db", commit_delay_ms=0)
    whole_settings = settings_for(f"sqlite:///{tmp_path}/whole.db", commit_delay_ms=0)

    async def scenario() -> None:
        store = await asyncio.to_thread(open_store, None, settings)
        whole = await asyncio.to_thread(open_store, None, whole_settings)
        try:
            dying = ScoringService(DiesAfter(store, 5))  # type: ignore[arg-type]
            with pytest.raises(ConnectionError):
                await dying.recover()
            assert len(await store.list_definitions("rule")) == 5
            again = ScoringService(store)
            await again.recover()
            reference = ScoringService(whole)
            await reference.recover()
            assert pack_as_served(again) == pack_as_served(reference)
            for rule in again.pack.rules:
                versions = await store.list_definition_versions(
                    "rule", f"consortium/{rule.rule_id}"
                )
                assert [v.version for v in versions] == [1], rule.rule_id
        finally:
            await store.aclose()
            await whole.aclose()

    asyncio.run(scenario())


def test_a_request_id_keeps_its_first_answer_across_a_restart(database_url: str) -> None:  # noqa: F811
    """Idempotency keys are in the store: a retry after a restart changes nothing and
    gets the first answer; the same key with another request is refused."""
    req = rules_pb2.CreateRuleRequest(
        request_id="create-once",
        rule_id="t-once",
        rule=rules_pb2.Rule(
            event_kind=common_pb2.EVENT_KIND_APPLICATION, condition=amount_is(777_001), points=3
        ),
        change_reason="first",
    )

    async def scenario() -> None:
        async with serving(database_url) as a:
            first: rules_pb2.CreateRuleResponse = await a.rules.CreateRule(req, metadata=MD_A)
        async with serving(database_url) as a:
            again: rules_pb2.CreateRuleResponse = await a.rules.CreateRule(req, metadata=MD_A)
            assert again == first
            assert len(a.service.book.versions("t-once")) == 1
            other = rules_pb2.CreateRuleRequest()
            other.CopyFrom(req)
            other.rule.points = 4
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.CreateRule(other, metadata=MD_A)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert details(caught.value)[0] == "REQUEST_ID_REUSED"
            # Another partner's key space is its own.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.CreateRule(req, metadata=MD_B)
            assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS

    asyncio.run(scenario())
