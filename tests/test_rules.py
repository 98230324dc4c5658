"""Tests of lendgate.rules (Rust: core_rs/lendgate-core/src/rules/)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from lendgate.errors import AbortedError, AlreadyExistsError, InvalidArgumentError, NotFoundError
from lendgate.lists import ListDefinition, ListEntry, ListEntryKind, Lists, ListType
from lendgate.rules import (
    CompiledRuleSet,
    Evaluation,
    EventKind,
    InMemoryRuleRepository,
    Rule,
    RuleBook,
    RuleStatus,
    SubRule,
    VersionChange,
    build_document,
)

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
APP = EventKind.APPLICATION


@pytest.fixture
def lists() -> Lists:
    lists = Lists(clock=lambda: NOW)
    lists.create(
        ListDefinition("one-day-companies", ListEntryKind.TAX_ID, ListType.BLACK), author="a"
    )
    lists.add_entries(
        "one-day-companies",
        [ListEntry("7701234567", expire_time=NOW + timedelta(days=30))],
        author="a",
    )
    return lists


@pytest.fixture
def book() -> RuleBook:
    return RuleBook(InMemoryRuleRepository(), clock=lambda: NOW)


def event(**over: object) -> bytes:
    app: dict[str, object] = {
        "subtype": "LOAN_APP_CREATE",
        "amount": {"amount_minor": 5_000_000, "currency": "RUB"},
        "applicant": {"age": 19, "employer": {"tax_id": "7701234567"}},
    }
    app.update(over)
    return build_document(
        APP, app, params={"EmployerINNAndIP": {"countToday": 7}}, model_risk_score=950
    )


def rule(rule_id: str, condition: str, points: int, **kw: object) -> Rule:
    return Rule(rule_id, APP, condition, points, **kw)  # type: ignore[arg-type]


def evaluate(rules: list[Rule], lists: Lists, at: datetime = NOW) -> Evaluation:
    return CompiledRuleSet.compile(rules).evaluate(event(), APP, at, lists)


def test_statuses_test_and_tuning_never_count(lists: Lists) -> None:
    out = evaluate(
        [
            rule("w", "application.applicant.age < 21", 100),
            rule("t", "true", 900, status=RuleStatus.TEST),
            rule("u", "true", 900, status=RuleStatus.TUNING),
            rule("d", "true", 900, status=RuleStatus.DISABLED),
        ],
        lists,
    )
    assert out.fraud_score == 100
    assert out.zone == "GREY"
    assert [r.rule_id for r in out.fired_rules] == ["w"]
    assert [(r.rule_id, r.points) for r in out.test_rules] == [("t", 900), ("u", 900)]


def test_black_zone_deterministic_order_and_trace(lists: Lists) -> None:
    rules = [
        rule(
            "r09-one-day",
            "in_list('one-day-companies', application.applicant.employer.tax_id)",
            300,
        ),
        rule("r02-model", "model.risk_score >= 900", 100),
        rule("r05-employer-ip", "params.EmployerINNAndIP.countToday > 5", 32),
    ]
    out = evaluate(rules, lists)
    assert out.fraud_score == 432
    assert out.zone == "BLACK"
    assert [r.rule_id for r in out.fired_rules] == ["r02-model", "r05-employer-ip", "r09-one-day"]
    values = {v.name: v.value for r in out.fired_rules for v in r.values}
    assert values["params.EmployerINNAndIP.countToday"] == 7
    assert values["model.risk_score"] == 950
    assert values['in_list("one-day-companies", "7701234567")'] is True
    assert evaluate(rules[::-1], lists) == out


def test_composite_rule_scores_fired_sub_rules(lists: Lists) -> None:
    composite = rule(
        "c",
        "",
        0,
        sub_rules=(
            SubRule("young", "application.applicant.age < 21", 40, "Young"),
            SubRule("big", "application.amount.amount_minor > 1000000", 60),
            SubRule("never", "false", 1000),
        ),
    )
    out = evaluate([composite], lists)
    fired = out.fired_rules[0]
    assert fired.points == out.fraud_score == 100
    assert [s.sub_rule_id for s in fired.sub_rules] == ["young", "big"]
    assert fired.sub_rules[0].values[0].name == "application.applicant.age"


def test_validity_window_by_event_time(lists: Lists) -> None:
    r = rule("v", "true", 10, valid_from=NOW, valid_until=NOW + timedelta(days=1))
    assert evaluate([r], lists, NOW - timedelta(seconds=1)).fraud_score == 0
    assert evaluate([r], lists, NOW).fraud_score == 10
    assert evaluate([r], lists, NOW + timedelta(days=1)).fraud_score == 0


def test_list_expiry_by_event_time(lists: Lists) -> None:
    r = rule("l", "in_list('one-day-companies', application.applicant.employer.tax_id)", 5)
    assert evaluate([r], lists, NOW + timedelta(days=29)).fraud_score == 5
    assert evaluate([r], lists, NOW + timedelta(days=30)).fraud_score == 0


def test_runtime_errors_are_isolated(lists: Lists) -> None:
    out = evaluate(
        [
            rule("a", "application.applicant.age + 'x' > 1", 10),
            rule("b", "in_list('no-such-list', application.subtype)", 10),
            rule("c", "true", 3),
        ],
        lists,
    )
    assert out.fraud_score == 3
    assert [e.rule_id for e in out.rule_errors] == ["a", "b"]
    assert "unknown list `no-such-list`" in out.rule_errors[1].message


def test_compile_error_has_position_and_changes_nothing(book: RuleBook) -> None:
    book.create(rule("ok", "true", 1), author="alice")
    with pytest.raises(InvalidArgumentError, match="position 20") as info:
        book.create(rule("bad", "application.amount >", 1), author="alice")
    assert info.value.violations[0].field == "rule.condition"
    with pytest.raises(NotFoundError):
        book.get("bad")
    bad_sub = rule("ok", "", 0, sub_rules=(SubRule("s", "1 +", 1),))
    with pytest.raises(InvalidArgumentError) as info:
        book.update(bad_sub, etag=book.get("ok").etag, author="alice")
    assert info.value.violations[0].field == "rule.sub_rules[0].condition"
    assert book.get("ok").version == 1
    with pytest.raises(InvalidArgumentError):
        book.create(rule("unknown-fn", "in_lists('x', 1)", 1), author="alice")


def test_versions_restore_and_delete(book: RuleBook) -> None:
    v1 = book.create(rule("r1", "true", 10), author="alice", reason="new")
    with pytest.raises(AlreadyExistsError):
        book.create(rule("r1", "true", 10), author="alice")
    v2 = book.update(rule("r1", "false", 20), etag=v1.etag, author="bob", reason="tune")
    assert (v2.version, v2.points, v2.create_time) == (2, 20, NOW)
    with pytest.raises(AbortedError):
        book.update(rule("r1", "true", 30), etag=v1.etag, author="bob")
    v3 = book.restore("r1", 1, etag=v2.etag, author="carol", reason="undo")
    assert (v3.version, v3.condition, v3.points) == (3, "true", 10)
    history = book.versions("r1")
    assert [(h.version, h.change, h.author) for h in history] == [
        (3, VersionChange.RESTORED, "carol"),
        (2, VersionChange.UPDATED, "bob"),
        (1, VersionChange.CREATED, "alice"),
    ]
    assert history[0].restored_from_version == 1
    assert book.version("r1", 2).rule.points == 20
    deleted = book.delete("r1", etag=v3.etag, author="dave")
    assert deleted.change is VersionChange.DELETED
    with pytest.raises(NotFoundError):
        book.get("r1")
    assert book.rules() == []
    assert len(book.compile()) == 0
    back = book.restore("r1", 2, etag="", author="erin")
    assert (back.version, back.points) == (5, 20)
    assert len(book.compile()) == 1


def test_batch_matches_single_calls(lists: Lists) -> None:
    rules = CompiledRuleSet.compile([rule("w", "application.applicant.age < 21", 100)])
    docs = [event(applicant={"age": age}) for age in (18, 30)]
    batch = rules.evaluate_batch(docs, APP, [NOW, NOW], lists)
    single = [rules.evaluate_json(d, APP, NOW, lists) for d in docs]
    assert batch == single
    assert [json.loads(b)["fraud_score"] for b in batch] == [100, 0]


def test_bad_document_is_invalid_argument(lists: Lists) -> None:
    rules = CompiledRuleSet.compile([rule("w", "true", 1)])
    with pytest.raises(InvalidArgumentError):
        rules.evaluate(b"{not json", APP, NOW, lists)
