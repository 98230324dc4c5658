"""The ``filter`` of the List methods (an AIP-160 subset), over real gRPC and as a parser."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from lendgate.errors import InvalidArgumentError
from lendgate.listfilter import Fields, compile_filter
from lendgate.v1 import common_pb2, rules_pb2
from tests.test_rule_admin_persistence import MD_A, entry, inn_list, serving
from tests.test_rule_admin_service import amount_is, details

FIELDS = {"status": "enum:RULE_STATUS_", "tags": "strs", "name": "str", "n": "int", "t": "time"}
ROW: Fields = {
    "status": "WORKING",
    "tags": ("seed-003", "rates"),
    "name": "Rule 4 - refusals",
    "n": 5,
    "t": datetime(2026, 5, 1, tzinfo=UTC),
}


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ("", True),
        ("status = WORKING", True),
        ('status = "RULE_STATUS_WORKING"', True),
        ("status != WORKING", False),
        ('tags:"rates"', True),
        ("tags:seed*", True),
        ("tags:other", False),
        ("tags != rates", False),
        ('name = "Rule 4*"', True),
        ('name = "Rule 4"', False),
        ("n >= 5 AND n < 6", True),
        ('t > "2026-01-01T00:00:00Z"', True),
        ('t <= "2026-04-30T23:59:59Z"', False),
        ("NOT status = TEST", True),
        ("-tags:rates", False),
        # OR binds tighter than AND (AIP-160): false AND (false OR true) is false.
        ("n = 4 AND n = 6 OR n = 5", False),
        ("n = 5 n = 5", True),
        ("(n = 4 OR n = 5) AND status = WORKING", True),
    ],
)
def test_filters_select_as_aip_160_says(text: str, selected: bool) -> None:
    assert compile_filter(text, FIELDS)(ROW) is selected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("status =", "end of the filter"),
        ("colour = red", "unknown field 'colour'"),
        ("status > WORKING", "enum"),
        ("n = five", "number"),
        ('t > "yesterday"', "RFC 3339"),
        ("(n = 5", "end of the filter"),
        ("n = 5)", "unexpected ')'"),
        ('name = "a*b"', "wildcard"),
        ("tags > a", "repeated"),
    ],
)
def test_bad_filters_are_invalid_argument_on_filter(text: str, says: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        compile_filter(text, FIELDS)
    assert caught.value.violations[0].field == "filter"
    assert says in caught.value.message


def test_list_methods_honour_the_filter_over_grpc(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/lendgate.db"

    async def scenario() -> None:
        async with serving(url) as a:
            rules: rules_pb2.ListRulesResponse = await a.rules.ListRules(
                rules_pb2.ListRulesRequest(filter="status = TEST", page_size=1000), metadata=MD_A
            )
            assert rules.rules and all(r.status == common_pb2.RULE_STATUS_TEST for r in rules.rules)
            everything: rules_pb2.ListRulesResponse = await a.rules.ListRules(
                rules_pb2.ListRulesRequest(page_size=1000), metadata=MD_A
            )
            assert len(rules.rules) < len(everything.rules)

            created = await a.create("t-filter", amount_is(5), points=1)
            await a.update(
                rules_pb2.Rule(name=created.name, etag=created.etag, points=2), ["points"], "more"
            )
            versions: rules_pb2.ListRuleVersionsResponse = await a.rules.ListRuleVersions(
                rules_pb2.ListRuleVersionsRequest(parent=created.name, filter="change = UPDATED"),
                metadata=MD_A,
            )
            assert [v.version for v in versions.versions] == [2]

            await a.rules.CreateList(inn_list("filtered-inns"), metadata=MD_A)
            await a.rules.AddListEntries(
                rules_pb2.AddListEntriesRequest(
                    name="lists/filtered-inns",
                    entries=[entry("7709990001"), entry("7709990002"), entry("7801000001")],
                ),
                metadata=MD_A,
            )
            lists: rules_pb2.ListListsResponse = await a.rules.ListLists(
                rules_pb2.ListListsRequest(filter="entry_kind = TAX_ID"), metadata=MD_A
            )
            assert "lists/filtered-inns" in [x.name for x in lists.lists]
            assert all(x.entry_kind == rules_pb2.LIST_ENTRY_KIND_TAX_ID for x in lists.lists)
            entries: rules_pb2.ListListEntriesResponse = await a.rules.ListListEntries(
                rules_pb2.ListListEntriesRequest(
                    parent="lists/filtered-inns", filter='value = "77099*"', page_size=1
                ),
                metadata=MD_A,
            )
            assert [e.value for e in entries.entries] == ["7709990001"]
            rest: rules_pb2.ListListEntriesResponse = await a.rules.ListListEntries(
                rules_pb2.ListListEntriesRequest(
                    parent="lists/filtered-inns",
                    filter='value = "77099*"',
                    page_token=entries.next_page_token,
                ),
                metadata=MD_A,
            )
            assert [e.value for e in rest.entries] == ["7709990002"]
            assert not rest.next_page_token

            aggs: rules_pb2.ListAggregateDefinitionsResponse = (
                await a.rules.ListAggregateDefinitions(
                    rules_pb2.ListAggregateDefinitionsRequest(filter='display_name = "Employer*"'),
                    metadata=MD_A,
                )
            )
            assert [d.name for d in aggs.aggregate_definitions] == [
                "aggregateDefinitions/EmployerINN",
                "aggregateDefinitions/EmployerINNAndIP",
            ]

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.rules.ListRules(
                    rules_pb2.ListRulesRequest(filter="colour = red"), metadata=MD_A
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "status" in details(caught.value)[1]["filter"]

    asyncio.run(scenario())
