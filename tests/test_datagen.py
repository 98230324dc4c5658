"""The data generator: determinism, validity, order, pattern rates, the CLI."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from lendgate.cli import main
from lendgate.datagen import PATTERNS, GenConfig, Generator, read_events
from lendgate.datagen.output import to_json_line
from lendgate.v1 import scoring_pb2 as s


def _lines(cfg: GenConfig) -> list[str]:
    return [to_json_line(e) for e in Generator(cfg)]


def test_same_seed_same_events_other_seed_other_events() -> None:
    cfg = GenConfig(seed=3, applicants=200, days=20)
    assert _lines(cfg) == _lines(cfg)
    assert _lines(cfg) != _lines(GenConfig(seed=4, applicants=200, days=20))


def test_events_are_in_time_order_and_valid_messages() -> None:
    events = list(Generator(GenConfig(seed=5, applicants=300, days=30)))
    times = [e.time for e in events]
    assert times == sorted(times)
    kinds = Counter(e.kind for e in events)
    assert kinds["application"] > 300 and kinds["payment"] > 0 and kinds["outcome"] > 0
    for e in events:
        assert e.message.IsInitialized()
        if isinstance(e.message, s.ApplicationEvent):
            assert e.message.event_time.seconds == e.time
            assert e.message.subtype != s.APPLICATION_SUBTYPE_UNSPECIFIED
        elif isinstance(e.message, s.PaymentEvent):
            assert e.message.amount.amount_minor > 0
        else:
            assert isinstance(e.message, s.ReportOutcomeRequest)
            assert e.message.application_id


def test_application_stages_follow_each_other() -> None:
    stages: dict[str, list[int]] = {}
    for e in Generator(GenConfig(seed=6, applicants=200, days=30)):
        if isinstance(e.message, s.ApplicationEvent):
            stages.setdefault(e.message.application_id, []).append(e.message.subtype)
    complete = [v for v in stages.values() if s.APPLICATION_SUBTYPE_LOAN_APP_RESULT in v]
    assert len(complete) > 150
    for subtypes in complete:
        assert subtypes[0] == s.APPLICATION_SUBTYPE_LOAN_APP_CREATE
        assert subtypes[1] == s.APPLICATION_SUBTYPE_LOAN_APP_BKI_CHECK
        assert subtypes[-1] == s.APPLICATION_SUBTYPE_LOAN_APP_RESULT


def test_pattern_rates_are_within_tolerance() -> None:
    creates: Counter[str] = Counter()
    for e in Generator(GenConfig(seed=11, applicants=8000, days=90)):
        if e.kind == "application" and e.message.subtype == 1:  # type: ignore[attr-defined]
            creates[str(e.label["pattern"])] += 1
    total = sum(creates.values())
    for name, (share, _, _) in PATTERNS.items():
        assert creates[name] / total == pytest.approx(share, rel=0.45), name
    fraud = sum(v for k, v in creates.items() if k != "legit") / total
    assert fraud == pytest.approx(sum(v[0] for v in PATTERNS.values()), rel=0.2)


def test_identity_theft_reuses_a_phone_or_name_with_another_birth_date() -> None:
    by_phone: dict[str, set[str]] = {}
    thefts = []
    for e in Generator(GenConfig(seed=12, applicants=3000, days=60)):
        m = e.message
        if isinstance(m, s.ApplicationEvent) and m.subtype == 1:
            phone = m.applicant.phones[0].number
            if e.label["pattern"] == "identity_theft":
                thefts.append((phone, m.applicant.birth_date))
            by_phone.setdefault(phone, set()).add(m.applicant.birth_date)
    assert thefts
    shared = [p for p, _ in thefts if len(by_phone[p]) > 1]
    assert len(shared) >= len(thefts) // 3


def test_cli_writes_gzip_json_lines_that_read_back(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl.gz"
    argv = ["gen-data", "--seed", "2", "--applicants", "100", "--days", "10"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    with gzip.open(out, "rt") as f:
        first = json.loads(f.readline())
    assert first["kind"] == "application" and "label" in first
    records = list(read_events(out))
    assert len(records) > 100
    assert {r.kind for r in records} == {"application", "payment", "outcome"}
    assert main([*argv, "--days", "0", "--out", str(out)]) == 2
