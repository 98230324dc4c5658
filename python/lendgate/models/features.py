"""The feature vector of an application: one function for training and for serving.

``build_features(event, aggregates, rule_hits)`` turns a ``LOAN_APP_CREATE``
``ApplicationEvent`` plus its aggregate parameters (history of the consortium as of the
event's time) plus, when available, the rule engine's verdict into the model's input row.
Training and serving call it the same way, so there is no train/serve skew.

Where the aggregates come from is the caller's business. Until the Rust aggregates engine
serves them, :class:`History` computes the documented set (``AGGREGATE_NAMES``) in one
streaming pass with plain Python state; the scoring service will hand the same names from
the Rust engine instead. A missing aggregate or rule value is NaN (the model treats it as
missing), so the signature and the feature names stay stable while the sources change.
Never rename or reorder ``FEATURE_NAMES``: a model's input schema is checked against it at
registration.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from lendgate.v1 import common_pb2 as c
from lendgate.v1 import scoring_pb2 as s

NAN = float("nan")
DAY = 86400

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
AGGREGATE_NAMES: tuple[str, ...] = (
    "phone_name_other_birthdates",
    "phone_other_names",
    "phone_apps_30d",
    "device_apps_7d",
    "device_persons_30d",
    "ip_apps_2d",
    "ip_persons_7d",
    "employer_ip_apps_2d",
    "employer_apps_7d",
    "employer_persons_30d",
    "employer_age_days",
    "employer_refusal_rate_60d",
    "employer_days_since_fraud",
    "address_persons_30d",
    "person_apps_30d",
    "person_days_since_last_app",
)
RULE_FEATURES: tuple[str, ...] = ("rule_points_total", "rule_hits_count")
FEATURE_NAMES: tuple[str, ...] = EVENT_FEATURES + AGGREGATE_NAMES + RULE_FEATURES


@dataclass(frozen=True)
class RuleHits:
    """What the rule engine said about the event: total points and number of fired rules."""

    points_total: float
    hits_count: int


def build_features(
    event: s.ApplicationEvent,
    aggregates: Mapping[str, float],
    rule_hits: RuleHits | None = None,
) -> list[float]:
    """The model input row for ``event``, in ``FEATURE_NAMES`` order.

    ``aggregates`` maps names of ``AGGREGATE_NAMES`` to values as of the event's time,
    excluding the event itself; absent names are NaN. ``rule_hits`` is None when no rules
    were evaluated (NaN features).
    """
    row = _event_features(event)
    row.extend(float(aggregates.get(name, NAN)) for name in AGGREGATE_NAMES)
    if rule_hits is None:
        row.extend((NAN, NAN))
    else:
        row.extend((float(rule_hits.points_total), float(rule_hits.hits_count)))
    # Four decimals: no two feature values are then adjacent float32 numbers, so a split
    # threshold (a double midpoint in LightGBM, a float32 in ONNX) sends every value the
    # same way in both, and ONNX reproduces the native model.
    return [round(v, 4) for v in row]


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
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


def _event_features(e: s.ApplicationEvent) -> list[float]:
    p = e.applicant
    when = dt.datetime.fromtimestamp(e.event_time.seconds, dt.UTC)
    today = when.date()
    birth = _date(p.birth_date)
    age = _years(today, birth) if birth else NAN
    amount = e.loan_amount.amount_minor / 100.0
    income = p.monthly_income.amount_minor / 100.0
    term = float(e.loan_term.count)
    if e.loan_term.unit == c.TERM_UNIT_DAYS:
        term /= 30.0
    employer = p.employer
    size = float(employer.employee_count) if employer.HasField("employee_count") else NAN
    started = _date(employer.employment_start_date)
    employment = _years(today, started) * 12 if started else NAN
    issued = _date(p.passport.issue_date)
    issue_age = _years(issued, birth) if issued and birth else NAN
    off_rule = NAN
    if not math.isnan(issue_age):
        off_rule = 0.0 if any(0 <= issue_age - a < 0.5 for a in (14, 20, 45)) else 1.0
    previous = p.previous_passports
    match = _digit_match(p.passport.number, previous[0].number) if previous else NAN
    d = e.device
    has_device = e.HasField("device")
    anydesk = d.hours_since_anydesk_install if d.HasField("hours_since_anydesk_install") else -1
    call = d.phone_call_state in {
        c.PHONE_CALL_STATE_INCOMING,
        c.PHONE_CALL_STATE_OUTGOING,
        c.PHONE_CALL_STATE_ACTIVE,
    }
    return [
        age,
        math.log1p(amount),
        term,
        float(e.product),
        float(e.channel),
        math.log1p(income),
        amount / income if income > 0 else NAN,
        size,
        employment,
        issue_age,
        off_rule,
        float(len(previous)),
        match,
        0.0 if has_device else 1.0,
        1.0 if d.platform == c.DEVICE_PLATFORM_WEB else 0.0,
        float(d.emulator) if d.HasField("emulator") else NAN,
        float(d.rooted) if d.HasField("rooted") else NAN,
        float(d.remote_control_active) if d.HasField("remote_control_active") else NAN,
        1.0 if 0 <= anydesk <= 168 else 0.0,
        1.0 if call else 0.0,
        1.0 if d.reported_ip and e.ip_address and d.reported_ip != e.ip_address else 0.0,
        float(when.hour),
    ]


# --- history aggregates (interim Python implementation) ------------------------------


class _Window:
    """Timestamped values under one key, oldest first, trimmed to ``horizon`` seconds."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: deque[tuple[int, str]] = deque()

    def add(self, t: int, value: str, horizon: int) -> None:
        self.items.append((t, value))
        while self.items and self.items[0][0] < t - horizon:
            self.items.popleft()

    def count(self, now: int, window: int) -> int:
        return sum(1 for t, _ in self.items if t >= now - window)

    def distinct(self, now: int, window: int, exclude: str = "") -> int:
        return len({v for t, v in self.items if t >= now - window and v != exclude})


def _key(*parts: str) -> str | None:
    return "|".join(parts) if all(parts) else None


class History:
    """The consortium history needed by ``AGGREGATE_NAMES``, fed event by event.

    Call :meth:`aggregates` for a ``LOAN_APP_CREATE`` event *before* :meth:`observe` of
    that event, and feed every application event and outcome in event-time order. Memory
    grows with the number of distinct keys (phones, devices, employers, ...).
    """

    HORIZON = 60 * DAY

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._sets: dict[str, set[str]] = {}
        self._first_seen: dict[str, int] = {}
        self._last_seen: dict[str, int] = {}
        self._employer_of_app: dict[str, str] = {}
        self._fraud_at: dict[str, int] = {}

    def _w(self, key: str) -> _Window:
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = _Window()
        return w

    def _peek(self, key: str | None) -> _Window | None:
        return self._windows.get(key) if key else None

    def aggregates(self, e: s.ApplicationEvent) -> dict[str, float]:
        """The aggregate parameters of a create event, as of its time, without it."""
        k = _Keys.of(e)
        now = e.event_time.seconds
        out: dict[str, float] = {}

        def count(key: str | None, window: int) -> float:
            w = self._peek(key)
            return float(w.count(now, window)) if w else 0.0

        def distinct(key: str | None, window: int, exclude: str = "") -> float:
            w = self._peek(key)
            return float(w.distinct(now, window, exclude)) if w else 0.0

        births = self._sets.get(f"pnb|{k.phone_name}", set()) if k.phone_name else set()
        out["phone_name_other_birthdates"] = float(len(births - {k.birth}))
        names = self._sets.get(f"pn|{k.phone}", set()) if k.phone else set()
        out["phone_other_names"] = float(len(names - {k.name}))
        out["phone_apps_30d"] = count(_key("ph", k.phone), 30 * DAY)
        out["device_apps_7d"] = count(_key("dv", k.device), 7 * DAY)
        out["device_persons_30d"] = distinct(_key("dv", k.device), 30 * DAY, k.person)
        out["ip_apps_2d"] = count(_key("ip", k.ip), 2 * DAY)
        out["ip_persons_7d"] = distinct(_key("ip", k.ip), 7 * DAY, k.person)
        out["employer_ip_apps_2d"] = count(_key("ei", k.employer, k.ip), 2 * DAY)
        out["employer_apps_7d"] = count(_key("em", k.employer), 7 * DAY)
        out["employer_persons_30d"] = distinct(_key("em", k.employer), 30 * DAY, k.person)
        first = self._first_seen.get(k.employer) if k.employer else None
        out["employer_age_days"] = (now - first) / DAY if first is not None else NAN
        finished = count(_key("ef", k.employer), 60 * DAY)
        refused = count(_key("er", k.employer), 60 * DAY)
        out["employer_refusal_rate_60d"] = refused / finished if finished else NAN
        fraud = self._fraud_at.get(k.employer) if k.employer else None
        out["employer_days_since_fraud"] = (now - fraud) / DAY if fraud is not None else NAN
        out["address_persons_30d"] = distinct(_key("ad", k.address), 30 * DAY, k.person)
        out["person_apps_30d"] = count(_key("pp", k.person), 30 * DAY)
        last = self._last_seen.get(k.person) if k.person else None
        out["person_days_since_last_app"] = (now - last) / DAY if last is not None else NAN
        return out

    def observe(self, e: s.ApplicationEvent) -> None:
        """Add an application event (any subtype) to the history."""
        now = e.event_time.seconds
        h = self.HORIZON
        if e.subtype == s.APPLICATION_SUBTYPE_LOAN_APP_CREATE:
            k = _Keys.of(e)
            if k.phone_name:
                self._sets.setdefault(f"pnb|{k.phone_name}", set()).add(k.birth)
            if k.phone:
                self._sets.setdefault(f"pn|{k.phone}", set()).add(k.name)
            for key in (
                _key("ph", k.phone),
                _key("dv", k.device),
                _key("ip", k.ip),
                _key("ei", k.employer, k.ip),
                _key("em", k.employer),
                _key("ad", k.address),
                _key("pp", k.person),
            ):
                if key:
                    self._w(key).add(now, k.person, h)
            if k.employer:
                self._first_seen.setdefault(k.employer, now)
                self._employer_of_app[e.application_id] = k.employer
            if k.person:
                self._last_seen[k.person] = now
        elif e.subtype == s.APPLICATION_SUBTYPE_LOAN_APP_RESULT:
            employer = self._employer_of_app.get(e.application_id)
            if employer:
                self._w(f"ef|{employer}").add(now, "", h)
                if e.result == s.CHECK_RESULT_REJECTED:
                    self._w(f"er|{employer}").add(now, "", h)

    def observe_outcome(self, o: s.ReportOutcomeRequest) -> None:
        """Add an outcome: confirmed fraud marks the application's employer."""
        if o.outcome.fraud_status != s.FRAUD_STATUS_CONFIRMED:
            return
        employer = self._employer_of_app.get(o.application_id)
        if employer:
            self._fraud_at[employer] = o.outcome.event_time.seconds


@dataclass(frozen=True)
class _Keys:
    phone: str
    name: str
    phone_name: str
    birth: str
    device: str
    ip: str
    employer: str
    address: str
    person: str

    @staticmethod
    def of(e: s.ApplicationEvent) -> _Keys:
        p = e.applicant
        phone = p.phones[0].number if p.phones else ""
        name = f"{p.last_name}|{p.first_name}".lower()
        a = p.addresses[0] if p.addresses else None
        address = f"{a.city}|{a.street}|{a.house}|{a.flat}".lower() if a else ""
        device = e.device.device_id or e.device.fingerprint
        return _Keys(
            phone=phone,
            name=name,
            phone_name=f"{phone}|{name}" if phone else "",
            birth=p.birth_date,
            device=device,
            ip=e.ip_address,
            employer=p.employer.tax_id,
            address=address,
            person=f"{p.passport.series}{p.passport.number}",
        )


@dataclass(frozen=True)
class Example:
    """One training row: a create event's features, its time, label and pattern."""

    application_id: str
    time: int
    features: list[float]
    fraud: bool
    pattern: str


def examples(records: Iterable[object]) -> Iterator[Example]:
    """Training rows of a stream of ``datagen.Record``s in event-time order.

    One row per ``LOAN_APP_CREATE`` event, built by ``build_features`` with the
    aggregates of a :class:`History` fed by the same stream (rule hits: not yet).
    """
    history = History()
    for record in records:
        message = getattr(record, "message", None)
        label = getattr(record, "label", {})
        if isinstance(message, s.ApplicationEvent):
            if message.subtype == s.APPLICATION_SUBTYPE_LOAN_APP_CREATE:
                row = build_features(message, history.aggregates(message))
                yield Example(
                    message.application_id,
                    message.event_time.seconds,
                    row,
                    bool(label.get("fraud")),
                    str(label.get("pattern", "")),
                )
            history.observe(message)
        elif isinstance(message, s.ReportOutcomeRequest):
            history.observe_outcome(message)
