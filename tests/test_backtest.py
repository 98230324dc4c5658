"""BacktestRules over real gRPC on a small history whose counts are known: seed 003's
four counts, precision, recall and alert rate per rule and for the set; the replay
agrees with what live scoring reported; bad requests are refused naming the field."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format, timestamp_pb2

from lendgate.cli import main
from lendgate.v1 import common_pb2, rules_pb2, scoring_pb2
from tests.conftest import ServerProcess
from tests.test_rule_admin_persistence import MD_A, MD_B, scoring_request, serving
from tests.test_rule_admin_service import Admin, amount_is, details
from tests.test_scoring import T0, Person, application

APP = common_pb2.EVENT_KIND_APPLICATION
CONFIRMED = scoring_pb2.FRAUD_STATUS_CONFIRMED
NOT_FRAUD = scoring_pb2.FRAUD_STATUS_NOT_FRAUD

# (amount, fraud status or None = no outcome) of bank-a's six applications, in time order.
HISTORY = [
    (6_000_000, CONFIRMED),
    (7_000_000, NOT_FRAUD),
    (1_000_000, CONFIRMED),
    (2_000_000, NOT_FRAUD),
    (8_000_000, None),
    (3_000_000, None),
]


def ts(minutes: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(T0 + timedelta(minutes=minutes))
    return out


def draft(name: str, condition: str, points: int) -> rules_pb2.Rule:
    return rules_pb2.Rule(
        name=name, display_name=name, event_kind=APP, condition=condition, points=points
    )


async def backtest(
    a: Admin, request: rules_pb2.BacktestRulesRequest, md: tuple[tuple[str, str], ...] = MD_A
) -> tuple[list[rules_pb2.BacktestProgress], rules_pb2.BacktestResult]:
    progress: list[rules_pb2.BacktestProgress] = []
    results: list[rules_pb2.BacktestResult] = []
    async for message in a.rules.BacktestRules(request, metadata=md, timeout=60):
        if message.HasField("progress"):
            assert not results, "progress after the result"
            progress.append(message.progress)
        else:
            results.append(message.result)
    assert len(results) == 1
    return progress, results[0]


async def load_history(a: Admin, partner_md: tuple[tuple[str, str], ...] = MD_A) -> None:
    for i, (amount, fraud) in enumerate(HISTORY):
        event = application(Person(client=f"bt-{i}"), minutes=i, amount=amount)
        await a.scoring.CheckApplication(scoring_request(event), metadata=partner_md)
        if fraud is not None:
            await a.scoring.ReportOutcome(
                scoring_pb2.ReportOutcomeRequest(
                    application_id=event.application_id,
                    outcome=scoring_pb2.Outcome(fraud_status=fraud, event_time=ts(30 + i)),
                ),
                metadata=partner_md,
            )


def counts(r: rules_pb2.RuleBacktestResult) -> tuple[int, int, int, int]:
    return (r.fraud_stopped, r.legit_excluded, r.legit_stopped, r.fraud_missed)


START, END = ts(-60), ts(24 * 60)


def test_counts_per_rule_and_for_the_set(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(f"sqlite:///{tmp_path}/bt.db", frozenset({"bank-a"})) as a:
            await load_history(a)
            request = rules_pb2.BacktestRulesRequest(
                draft_rules=[
                    draft("big", "application.loan_amount.amount_minor >= 5000000", 500),
                    draft("small", "application.loan_amount.amount_minor <= 1500000", 100),
                ],
                event_kind=APP,
                zone_threshold=100,
                start_time=START,
                end_time=END,
            )
            progress, result = await backtest(a, request)
            assert progress[-1].events_done == progress[-1].events_total == 6
            big, small = result.rules
            assert (big.rule, big.display_name) == ("big", "big")
            # big stops 6M (fraud), 7M (legit), 8M (unlabelled = legit).
            assert counts(big) == (1, 2, 2, 1)
            assert (big.precision, big.recall, big.alert_rate) == (1 / 3, 1 / 2, 3 / 6)
            assert counts(small) == (1, 4, 0, 1)
            assert (small.precision, small.recall) == (1.0, 0.5)
            # The set at 100 points stops what either stops.
            assert counts(result.set_result) == (2, 2, 2, 0)
            assert (result.events_evaluated, result.events_unlabelled) == (6, 2)
            assert result.rule_pack_revision == a.service.rule_pack_revision

            request.exclude_unlabelled = True
            request.ClearField("zone_threshold")  # the configured 432: only big reaches it
            _, labelled = await backtest(a, request)
            assert counts(labelled.rules[0]) == (1, 1, 1, 1)
            assert counts(labelled.set_result) == (1, 1, 1, 1)
            assert labelled.events_evaluated == 4

            # A stored rule, its current version and an older one, side by side.
            v1 = await a.create("t-bt", amount_is(2_000_000), points=10)
            await a.update(
                rules_pb2.Rule(name=v1.name, etag=v1.etag, condition=amount_is(6_000_000)),
                ["condition"],
            )
            _, versions = await backtest(
                a,
                rules_pb2.BacktestRulesRequest(
                    rules=["rules/t-bt", "rules/t-bt/versions/1"],
                    event_kind=APP,
                    start_time=START,
                    end_time=END,
                ),
            )
            now, old = versions.rules
            assert (now.rule, counts(now)) == ("rules/t-bt", (1, 4, 0, 1))
            assert (old.rule, counts(old)) == ("rules/t-bt/versions/1", (0, 3, 1, 2))

            # A partner (not an operator) back-tests on its own events only: none here.
            _, other = await backtest(a, request, md=MD_B)
            assert other.events_evaluated == 0

    asyncio.run(scenario())


def test_the_replay_agrees_with_live_scoring(tmp_path: Path) -> None:
    """Every working rule of the pack stops, in the back-test, exactly the events live
    scoring fired it on (no labels: every stop is a legitimate one)."""

    async def scenario() -> None:
        async with serving(f"sqlite:///{tmp_path}/live.db") as a:
            people = [
                Person(client="l1", birth="1990-05-15"),
                Person(client="l2", birth="1985-01-01"),  # r01: same phone + name
                Person(client="l3", last="Petrov", number="999999"),
                Person(client="l4", birth="1970-02-02"),
            ]
            live: Counter[str] = Counter()
            for i, p in enumerate(people):
                response = await a.scoring.CheckApplication(
                    scoring_request(application(p, minutes=i, amount=90_000_000)), metadata=MD_A
                )
                live.update(r.rule.removeprefix("rules/") for r in response.report.fired_rules)
            assert live, "the history should fire some pack rules"
            _, result = await backtest(
                a, rules_pb2.BacktestRulesRequest(event_kind=APP, start_time=START, end_time=END)
            )
            replayed = {
                r.rule.removeprefix("rules/"): r.legit_stopped
                for r in result.rules
                if r.legit_stopped
            }
            assert replayed == dict(live)
            assert sum(r.fraud_stopped + r.fraud_missed for r in result.rules) == 0

    asyncio.run(scenario())


def test_bad_back_test_requests_name_the_field(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(f"sqlite:///{tmp_path}/bad.db") as a:
            cases = {
                "event_kind": rules_pb2.BacktestRulesRequest(start_time=START, end_time=END),
                "end_time": rules_pb2.BacktestRulesRequest(
                    event_kind=APP, start_time=ts(10), end_time=ts(5)
                ),
                "start_time": rules_pb2.BacktestRulesRequest(event_kind=APP, end_time=ts(5)),
                "rules[0]": rules_pb2.BacktestRulesRequest(
                    rules=["rule/x"], event_kind=APP, start_time=START, end_time=END
                ),
                "draft_rules[1].condition": rules_pb2.BacktestRulesRequest(
                    draft_rules=[draft("ok", "true", 1), draft("bad", "1 +", 1)],
                    event_kind=APP,
                    start_time=START,
                    end_time=END,
                ),
                "zone_threshold": rules_pb2.BacktestRulesRequest(
                    event_kind=APP, zone_threshold=0, start_time=START, end_time=END
                ),
            }
            for field, request in cases.items():
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await backtest(a, request)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
                assert field in details(caught.value)[1], (field, details(caught.value))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await backtest(
                    a,
                    rules_pb2.BacktestRulesRequest(
                        rules=["rules/no-such-rule"], event_kind=APP, start_time=START, end_time=END
                    ),
                )
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    asyncio.run(scenario())


def test_the_cli_back_tests_an_exported_event_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lendgate rules backtest --events FILE` replays a gen-data file with the pack."""
    events = tmp_path / "events.jsonl"
    assert main(["gen-data", "--applicants", "150", "--days", "4", "--out", str(events)]) == 0
    applications = sum('"kind":"application"' in line for line in events.read_text().splitlines())
    capsys.readouterr()
    draft_file = tmp_path / "drafts.json"
    draft_file.write_text(json.dumps([{"rule_id": "every", "condition": "true", "points": 1}]))
    argv = ["rules", "backtest", "--events", str(events), "--draft", str(draft_file)]
    assert main([*argv, "--rule", "r01-phone-name-other-birth-date", "--json"]) == 0
    captured = capsys.readouterr()
    assert "backtest [" in captured.err  # the progress bar
    result = json_format.Parse(captured.out, rules_pb2.BacktestResult())
    assert result.events_evaluated == applications > 0
    assert [r.rule for r in result.rules] == ["rules/r01-phone-name-other-birth-date", "every"]
    every = result.rules[1]
    # A rule that always fires stops every event: its alert rate is 1, it misses nothing.
    assert (every.alert_rate, every.fraud_missed, every.legit_excluded) == (1.0, 0, 0)
    assert every.fraud_stopped + every.legit_stopped == applications
    for r in result.rules:
        assert r.fraud_stopped + r.legit_excluded + r.legit_stopped + r.fraud_missed == (
            applications
        )

    assert main([*argv, "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "(the set)" in table and "every" in table
    assert main(["rules", "backtest", "--events", str(tmp_path / "nope.jsonl")]) == 2
    assert "lendgate:" in capsys.readouterr().err


def test_the_binary_event_file_round_trips_and_back_tests_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gen-data --format pb` writes the same events as the JSON Lines file (messages,
    times and labels read back equal), and a back-test of either file gives exactly the
    same result; a truncated binary file is a clear error."""
    from lendgate.datagen import read_events  # noqa: PLC0415
    from lendgate.datagen.output import read_requests  # noqa: PLC0415

    gen = ["gen-data", "--applicants", "400", "--days", "15", "--quiet"]
    as_json, as_pb = tmp_path / "events.jsonl", tmp_path / "events.pb"
    assert main([*gen, "--out", str(as_json)]) == 0
    assert main([*gen, "--out", str(as_pb)]) == 0
    from_json, from_pb = list(read_events(as_json)), list(read_events(as_pb))
    assert len(from_json) > 500
    assert from_pb == from_json
    # The request bytes are the records' own, byte for byte what the API is sent.
    requests = list(read_requests(as_pb))
    assert [k for k, _ in requests] == [r.kind for r in from_json]
    kind, first = requests[0]
    assert kind == "application"
    sent = scoring_pb2.CheckApplicationRequest()
    sent.application.MergeFromString(from_json[0].message.SerializeToString())
    assert first == sent.SerializeToString()
    # --format overrides the name.
    named_jsonl = tmp_path / "binary.jsonl"
    assert main([*gen, "--out", str(named_jsonl), "--format", "pb"]) == 0
    assert named_jsonl.read_bytes() == as_pb.read_bytes()
    capsys.readouterr()

    results = []
    for path in (as_json, as_pb):
        argv = ["rules", "backtest", "--events", str(path), "--json", "--quiet"]
        assert main(argv) == 0
        result = json_format.Parse(capsys.readouterr().out, rules_pb2.BacktestResult())
        result.ClearField("elapsed")
        results.append(result)
    assert results[0].events_evaluated > 0
    # Rules fired, so the equality below says something.
    assert any(r.fraud_stopped + r.legit_stopped for r in results[0].rules)
    assert results[1] == results[0]

    truncated = tmp_path / "truncated.pb"
    truncated.write_bytes(as_pb.read_bytes()[:-3])
    assert main(["rules", "backtest", "--events", str(truncated), "--quiet"]) == 2
    assert "truncated" in capsys.readouterr().err


def test_the_cli_back_tests_on_a_running_server(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lendgate rules backtest --server` streams BacktestRules from `lendgate serve`."""
    argv = ["rules", "backtest", "--server", server.address, "--partner", "bank-a"]
    assert main([*argv, "--rule", "r09-one-day-employer@1", "--json"]) == 0
    captured = capsys.readouterr()
    result = json_format.Parse(captured.out, rules_pb2.BacktestResult())
    assert [r.rule for r in result.rules] == ["rules/r09-one-day-employer/versions/1"]
    r = result.rules[0]
    assert r.fraud_stopped + r.legit_excluded + r.legit_stopped + r.fraud_missed == (
        result.events_evaluated
    )
    assert main([*argv, "--rule", "no-such-rule"]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err
