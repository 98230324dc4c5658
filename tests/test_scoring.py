"""The scoring domain without gRPC: the default pack."""

from __future__ import annotations

from lendgate.aggregates import AggregateStore
from lendgate.lists import Lists
from lendgate.rules import InMemoryRuleRepository, RuleBook
from lendgate.scoring import install, load_pack

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
