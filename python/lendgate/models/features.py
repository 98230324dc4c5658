"""The feature vector of an application: one function for training and for serving.

``build_features(event, params, rules)`` turns what the Rust scorer hands its model
callable — the event document (``lendgate._core.Scorer.score`` decodes the request into a
dict: proto field names, enum names without their prefix, RFC 3339 timestamps), the rule
pack's aggregate parameters as of the event's time (the event not yet applied) and the
working rules' verdict on them without a model score (``{"fraud_score", "fired"}``) — into
the model's input row. Serving calls it from that callable; training obtains the very same
three arguments by replaying the generated history through the same Rust scorer
(:mod:`lendgate.models.dataset`), so there is no second implementation of any aggregate or
rule and no train/serve skew.

The scorer evaluates the rules once without a model score, hands that verdict to the
model, and evaluates them again with the score only when the model gave one (rules may
read ``model.risk_score``, docs/RULES.md); so the rule features never depend on the model.

A missing parameter or field is NaN (the model treats it as missing). Never rename or
reorder ``FEATURE_NAMES`` within a model version: a model's input schema is checked against
it at registration, and the card records it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from lendgate.v1 import common_pb2 as c
from lendgate.v1 import scoring_pb2 as s

NAN = float("nan")

EVENT_FEATURES: tuple[str, ...] = (
    "age_years",
    "loan_amount_log",
    "loan_term_months",
    "product",
    "channel",
    "income_log",
    "loan_to_income",
    "employer_size",
    "employment_months",
    "passport_issue_age",
    "passport_issue_off_rule",
    "previous_passports_count",
    "previous_passport_digit_match",
    "device_missing",
    "device_web",
    "device_emulator",
    "device_rooted",
    "device_remote_control",
    "device_remote_app_recent",
    "device_phone_call",
    "device_ip_mismatch",
    "hour_of_day",
)
PARAM_FEATURES: tuple[str, ...] = (
    # Aggregate parameters of the default pack (default_pack/aggregates.json), by their
    # pack names. Left out: the *_ratio duplicates of the *_pct ones, and
    # rule11_previous_passport (a document number, not a number to split on).
    "rule1_other_birth_dates",
    "rule2_other_borrowers",
    "rule2_other_borrower_apps",
    "rule3_days_since_employer_fraud",
    "rule4_finished_60d",
    "rule4_reject_pct_60d",
    "rule4_special_60d",
    "rule4_special_reject_pct_60d",
    "rule5_partner_special_reject_pct_6m",
    "rule5_partner_received_6m",
    "rule5_employer_special_6m",
    "rule5_employer_special_reject_pct_6m",
    "rule5_employer_received_6m",
    "rule6_region_reject_pct_1y",
    "rule6_region_default_pct_1y",
    "rule7_apps_by_employer_ip_2d",
    "rule11_passport_mismatch_pct",
    "s02_other_names_by_phone",
    "s03_other_birth_dates_by_passport",
    "s04_other_names_by_passport",
    "s06_days_since_fraud_by_passport",
    "s06_days_since_fraud_by_phone",
)
RULE_FEATURES: tuple[str, ...] = ("rule_points_total", "rule_hits_count")
"""The working rules' fraud score (Σ points) and number of fired rules, without a model
score."""
SHARED_FEATURES: tuple[str, ...] = (
    *(
        f"{key}_{count}"
        for key in ("device", "ip", "address")
        for count in ("apps_1d", "apps_7d", "apps_30d", "other_persons_30d")
    ),
    "employer_other_persons_30d",
    "employer_days_since_first_seen",
)
"""The default pack's per-device-id, per-IP and per-registration-address parameters
(applications created over 1/7/30 days, this one included, other applicants' passports over
30 days), and per employer INN the other applicants over 30 days and the days since the
employer was first seen (183 days kept): shared devices, IPs and flats are where fraud
rings and mass applications show, new employers with many people are one-day firms.
Appended after the rule features, so older feature indices keep their meaning."""
FEATURE_NAMES: tuple[str, ...] = EVENT_FEATURES + PARAM_FEATURES + RULE_FEATURES + SHARED_FEATURES

MODELLED_SUBTYPE = "LOAN_APP_CREATE"
"""The application subtype the model scores (the one it is trained on); other subtypes
and payments get no model score."""


def is_modelled(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` (a scorer event document) is one the model scores."""
    return event.get("subtype") == MODELLED_SUBTYPE and "application_id" in event


def build_features(
    event: Mapping[str, Any], params: Mapping[str, Any], rules: Mapping[str, Any] | None = None
) -> list[float]:
    """The model input row for an application document, in ``FEATURE_NAMES`` order.

    ``params`` maps the pack's parameter names to their values as of the event's time,
    without the event itself (what the scorer hands its model); absent or non-numeric
    values are NaN. ``rules`` is the scorer's rule verdict (``fraud_score``, ``fired``);
    None gives NaN rule features.
    """
    row = _event_features(event)
    row.extend(_number(params.get(name)) for name in PARAM_FEATURES)
    if rules is None:
        row.extend((NAN, NAN))
    else:
        fired = rules.get("fired")
        row.append(_number(rules.get("fraud_score")))
        row.append(float(len(fired)) if isinstance(fired, list | tuple) else NAN)
    row.extend(_number(params.get(name)) for name in SHARED_FEATURES)
    # Four decimals: no two feature values are then adjacent float32 numbers, so a split
    # threshold (a double midpoint in LightGBM, a float32 in ONNX) sends every value the
    # same way in both, and ONNX reproduces the native model.
    return [round(v, 4) for v in row]


def _number(v: Any) -> float:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        x = float(v)
        return x if math.isfinite(x) else NAN
    return NAN


def _date(text: Any) -> dt.date | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        return None


def _years(later: dt.date, earlier: dt.date) -> float:
    return (later - earlier).days / 365.25


def _digit_match(a: str, b: str) -> float:
    # Share of equal positions of two document numbers (1.0 = same number): a tampered
    # passport keeps most digits of the previous one (seed 003 rule 11).
    if not a or not b or len(a) != len(b):
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _enum_numbers(enum: Any) -> dict[str, float]:
    """Document enum names (the value name without the enum's UPPER_SNAKE prefix) to the
    enum's numbers: the same numeric code as the proto, so the feature stays stable."""
    prefix = "".join(f"_{ch}" if ch.isupper() and i else ch for i, ch in enumerate(enum.name))
    prefix = prefix.upper() + "_"
    return {v.name.removeprefix(prefix): float(v.number) for v in enum.values}


_PRODUCT = _enum_numbers(s.ApplicationEvent.DESCRIPTOR.fields_by_name["product"].enum_type)
_CHANNEL = _enum_numbers(s.ApplicationEvent.DESCRIPTOR.fields_by_name["channel"].enum_type)
_CALL_STATES = {
    c.PhoneCallState.Name(v).removeprefix("PHONE_CALL_STATE_")
    for v in (
        c.PHONE_CALL_STATE_INCOMING,
        c.PHONE_CALL_STATE_OUTGOING,
        c.PHONE_CALL_STATE_ACTIVE,
    )
}
_WEB = c.DevicePlatform.Name(c.DEVICE_PLATFORM_WEB).removeprefix("DEVICE_PLATFORM_")
_DAYS = c.TermUnit.Name(c.TERM_UNIT_DAYS).removeprefix("TERM_UNIT_")


def _obj(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _minor(v: Any) -> float:
    return _number(_obj(v).get("amount_minor", 0)) / 100.0


def _flag(d: Mapping[str, Any], key: str) -> float:
    # Optional booleans: absent is unknown (NaN), not false.
    return _number(d[key]) if key in d else NAN


def _event_features(e: Mapping[str, Any]) -> list[float]:
    p = _obj(e.get("applicant"))
    when = _time(e.get("event_time"))
    today = when.date() if when else None
    birth = _date(p.get("birth_date"))
    age = _years(today, birth) if birth and today else NAN
    amount = _minor(e.get("loan_amount"))
    income = _minor(p.get("monthly_income"))
    term_doc = _obj(e.get("loan_term"))
    term = _number(term_doc.get("count", 0))
    if term_doc.get("unit") == _DAYS:
        term /= 30.0
    employer = _obj(p.get("employer"))
    size = _number(employer["employee_count"]) if "employee_count" in employer else NAN
    started = _date(employer.get("employment_start_date"))
    employment = _years(today, started) * 12 if started and today else NAN
    passport = _obj(p.get("passport"))
    issued = _date(passport.get("issue_date"))
    issue_age = _years(issued, birth) if issued and birth else NAN
    off_rule = NAN
    if not math.isnan(issue_age):
        off_rule = 0.0 if any(0 <= issue_age - a < 0.5 for a in (14, 20, 45)) else 1.0
    previous = p.get("previous_passports")
    previous = previous if isinstance(previous, list) else []
    match = (
        _digit_match(str(passport.get("number", "")), str(_obj(previous[0]).get("number", "")))
        if previous
        else NAN
    )
    has_device = "device" in e
    d = _obj(e.get("device"))
    anydesk = _number(d.get("hours_since_anydesk_install", -1))
    ip = e.get("ip_address", "")
    reported = d.get("reported_ip", "")
    return [
        age,
        math.log1p(max(amount, 0.0)),
        term,
        _PRODUCT.get(str(e.get("product", "UNSPECIFIED")), NAN),
        _CHANNEL.get(str(e.get("channel", "UNSPECIFIED")), NAN),
        math.log1p(max(income, 0.0)),
        amount / income if income > 0 else NAN,
        size,
        employment,
        issue_age,
        off_rule,
        float(len(previous)),
        match,
        0.0 if has_device else 1.0,
        1.0 if d.get("platform") == _WEB else 0.0,
        _flag(d, "emulator"),
        _flag(d, "rooted"),
        _flag(d, "remote_control_active"),
        1.0 if 0 <= anydesk <= 168 else 0.0,
        1.0 if d.get("phone_call_state") in _CALL_STATES else 0.0,
        1.0 if reported and ip and reported != ip else 0.0,
        float(when.hour) if when else NAN,
    ]
