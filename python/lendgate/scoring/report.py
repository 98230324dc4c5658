"""Building the ``lendgate.v1.Report`` of one check from the rule engine's evaluation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import struct_pb2

from lendgate.rules import Evaluation, FiredRule
from lendgate.scoring.matching import Match
from lendgate.v1 import common_pb2, scoring_pb2

REVIEW_THRESHOLD = 100
"""Fraud score at or above which a grey-zone report is sent to REVIEW."""
MODEL_REVIEW_SCORE = 700
MODEL_DECLINE_SCORE = 900


def value(x: Any) -> struct_pb2.Value:
    """A JSON-like Python value as ``google.protobuf.Value``."""
    v = struct_pb2.Value()
    if x is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(x, bool):
        v.bool_value = x
    elif isinstance(x, int | float):
        v.number_value = float(x)
    elif isinstance(x, str):
        v.string_value = x
    elif isinstance(x, Mapping):
        v.struct_value.update(x)
    elif isinstance(x, Sequence):
        v.list_value.extend(list(x))
    else:
        v.string_value = str(x)
    return v


def recommended_action(
    zone: str, fraud_score: int, model_score: int | None
) -> scoring_pb2.RecommendedAction.ValueType:
    """DECLINE in the black zone or on a very high model score; REVIEW from
    :data:`REVIEW_THRESHOLD` points or a high model score; else APPROVE."""
    if zone == "BLACK" or (model_score is not None and model_score >= MODEL_DECLINE_SCORE):
        return scoring_pb2.RECOMMENDED_ACTION_DECLINE
    if fraud_score >= REVIEW_THRESHOLD or (
        model_score is not None and model_score >= MODEL_REVIEW_SCORE
    ):
        return scoring_pb2.RECOMMENDED_ACTION_REVIEW
    return scoring_pb2.RECOMMENDED_ACTION_APPROVE


@dataclass(frozen=True)
class CheckFacts:
    """What a report states besides the evaluation."""

    name: str
    event_kind: str
    event_id: str
    subtype: str
    request_id: str
    event_time: datetime
    receive_time: datetime
    model_risk_score: int | None
    rule_pack_revision: str
    model_name: str = ""
    model_version: str = ""


def _fired(rule: FiredRule, matches: Sequence[Match]) -> scoring_pb2.FiredRule:
    out = scoring_pb2.FiredRule(
        rule=f"rules/{rule.rule_id}",
        rule_version=rule.rule_version,
        display_name=rule.display_name,
        status=common_pb2.RuleStatus.Value(f"RULE_STATUS_{rule.status.value}"),
        points=rule.points,
        description=rule.description,
        recommendation=rule.recommendation,
        tags=rule.tags,
    )
    for v in rule.values:
        out.values.add(name=v.name, value=value(v.value))
    for s in rule.sub_rules:
        sub = out.sub_rules.add(
            sub_rule_id=s.sub_rule_id, display_name=s.display_name, points=s.points
        )
        for v in s.values:
            sub.values.add(name=v.name, value=value(v.value))
    for m in matches:
        hm = out.matches.add(
            match_ref=m.match_ref,
            own_application=m.own_application,
            application_id=m.application_id,
            subtype=scoring_pb2.ApplicationSubtype.Value(
                f"APPLICATION_SUBTYPE_{m.subtype}"
                if m.subtype
                else "APPLICATION_SUBTYPE_UNSPECIFIED"
            ),
            result=scoring_pb2.CheckResult.Value(f"CHECK_RESULT_{m.result or 'UNSPECIFIED'}"),
            fraud_status=scoring_pb2.FraudStatus.Value(
                f"FRAUD_STATUS_{m.fraud_status or 'UNSPECIFIED'}"
            ),
        )
        hm.event_time.FromDatetime(m.event_day)
        for f in m.fields:
            hm.fields.add(
                field=f.field,
                kind=scoring_pb2.MatchKind.Value(f"MATCH_KIND_{f.kind}"),
                current_value=f.current_value,
                historical_value=f.historical_value,
            )
    return out


def build_report(
    facts: CheckFacts, evaluation: Evaluation, matches: Mapping[str, Sequence[Match]]
) -> scoring_pb2.Report:
    """The report (without processing time and incident, set by the caller)."""
    report = scoring_pb2.Report(
        name=facts.name,
        event_kind=common_pb2.EventKind.Value(f"EVENT_KIND_{facts.event_kind.upper()}"),
        event_id=facts.event_id,
        request_id=facts.request_id,
        fraud_score=evaluation.fraud_score,
        zone_threshold=evaluation.zone_threshold,
        zone=scoring_pb2.Zone.Value(f"ZONE_{evaluation.zone}"),
        recommended_action=recommended_action(
            evaluation.zone, evaluation.fraud_score, facts.model_risk_score
        ),
        provenance=common_pb2.DecisionProvenance(
            rule_pack_revision=facts.rule_pack_revision,
            model_name=facts.model_name,
            model_version=facts.model_version,
        ),
    )
    if facts.subtype:
        report.application_subtype = scoring_pb2.ApplicationSubtype.Value(
            f"APPLICATION_SUBTYPE_{facts.subtype}"
        )
    report.event_time.FromDatetime(facts.event_time)
    report.receive_time.FromDatetime(facts.receive_time)
    if facts.model_risk_score is not None:
        report.model_risk_score = facts.model_risk_score
    for rule in evaluation.fired_rules:
        report.fired_rules.append(_fired(rule, matches.get(rule.rule_id, ())))
    for rule in evaluation.test_rules:
        report.test_rules.append(_fired(rule, ()))
    for err in evaluation.rule_errors:
        report.rule_errors.add(
            rule=f"rules/{err.rule_id}", rule_version=err.rule_version, message=err.message
        )
    return report
