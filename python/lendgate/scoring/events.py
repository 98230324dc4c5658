"""Validation and projections of a decoded event document.

The Rust core decodes the request (``lendgate.document.decode_document``); this module
checks it (field violations name proto field paths of the request) and projects it
into the two shapes the rest of the service needs: the flat event of the aggregates
(seed 003's attribute names, ``consumer.fio``...) and the normalised match keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from lendgate.errors import FieldViolation

MAX_STRING_CHARS = 4096
"""Longest string accepted in any field of an event (a 1 MB name is rejected)."""

EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(days=1)

# Enum fields of the events, by field name: a value the server does not know is
# decoded as a number, never as a name, and is rejected.
_ENUM_FIELDS = frozenset(
    {
        "subtype",
        "channel",
        "product",
        "unit",
        "gender",
        "kind",
        "platform",
        "status",
        "special_check_result",
        "result",
        "type",
    }
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_FIELDS = frozenset({"birth_date", "issue_date", "expiry_date", "employment_start_date"})


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp of the document, or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _walk(value: Any, path: str) -> Iterator[FieldViolation]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key in _ENUM_FIELDS and isinstance(item, int) and not isinstance(item, bool):
                yield FieldViolation(sub, f"unknown enum value {item}")
            elif key in _DATE_FIELDS and isinstance(item, str) and item:
                yield from _date_violation(item, sub)
            else:
                yield from _walk(item, sub)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        yield FieldViolation(path, f"at most {MAX_STRING_CHARS} characters")


def _date_violation(value: str, path: str) -> Iterator[FieldViolation]:
    if len(value) > MAX_STRING_CHARS:
        yield FieldViolation(path, f"at most {MAX_STRING_CHARS} characters")
        return
    if not _DATE.fullmatch(value):
        yield FieldViolation(path, "a date YYYY-MM-DD")
        return
    try:
        date.fromisoformat(value)
    except ValueError:
        yield FieldViolation(path, "not a calendar date")


def validate(kind: str, event: Mapping[str, Any], now: datetime) -> list[FieldViolation]:
    """Every problem of the event ``kind`` (``application``/``payment``), as violations
    whose field is the request's proto path (``application.applicant.birth_date``)."""
    out = list(_walk(event, kind))
    id_field = "application_id" if kind == "application" else "payment_id"
    if not event.get(id_field):
        out.append(FieldViolation(f"{kind}.{id_field}", "required"))
    event_time = parse_time(event.get("event_time"))
    if event_time is None:
        out.append(FieldViolation(f"{kind}.event_time", "required"))
    elif not EARLIEST_EVENT <= event_time <= now + MAX_CLOCK_SKEW:
        out.append(FieldViolation(f"{kind}.event_time", "before 2000-01-01 or in the future"))
    if kind == "application":
        out += _validate_application(event, event_time or now)
    else:
        out += _validate_payment(event)
    return out


def _validate_application(event: Mapping[str, Any], event_time: datetime) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    subtype = event.get("subtype")
    if subtype in (None, "", "UNSPECIFIED"):
        out.append(FieldViolation("application.subtype", "required"))
    applicant = event.get("applicant") or {}
    if subtype == "LOAN_APP_CREATE" and not applicant:
        out.append(FieldViolation("application.applicant", "required for LOAN_APP_CREATE"))
    people = [("application.applicant", applicant)]
    people += [
        (f"application.co_borrowers[{i}]", p) for i, p in enumerate(event.get("co_borrowers") or [])
    ]
    people += [
        (f"application.guarantors[{i}]", p) for i, p in enumerate(event.get("guarantors") or [])
    ]
    for path, person in people:
        birth = person.get("birth_date") or ""
        if _DATE.fullmatch(birth):
            try:
                if date.fromisoformat(birth) > event_time.date():
                    out.append(FieldViolation(f"{path}.birth_date", "in the future"))
            except ValueError:
                pass  # reported by the walk
        income = (person.get("monthly_income") or {}).get("amount_minor")
        if isinstance(income, int) and income < 0:
            out.append(FieldViolation(f"{path}.monthly_income.amount_minor", "negative"))
    amount = (event.get("loan_amount") or {}).get("amount_minor")
    if isinstance(amount, int) and amount < 0:
        out.append(FieldViolation("application.loan_amount.amount_minor", "negative"))
    return out


def _validate_payment(event: Mapping[str, Any]) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if event.get("type") in (None, "", "UNSPECIFIED"):
        out.append(FieldViolation("payment.type", "required"))
    amount = (event.get("amount") or {}).get("amount_minor")
    if not isinstance(amount, int) or amount <= 0:
        out.append(FieldViolation("payment.amount.amount_minor", "required, > 0"))
    return out


def passport_number(person: Mapping[str, Any] | None) -> str:
    """Series and number of a person's passport, letters and digits only, upper case."""
    p = (person or {}).get("passport") or {}
    raw = f"{p.get('series') or ''}{p.get('number') or ''}"
    return "".join(c for c in raw if c.isalnum()).upper()


def full_name(person: Mapping[str, Any] | None) -> str:
    """Last, first and middle name, lower case, single spaces."""
    p = person or {}
    parts = (p.get("last_name"), p.get("first_name"), p.get("middle_name"))
    return " ".join(" ".join(str(x) for x in parts if x).lower().split())


def normalize_phone(value: str) -> str:
    """Digits only; an 11-digit national ``8…`` becomes ``7…`` (as the core's lists)."""
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]
    return digits


def mobile(person: Mapping[str, Any] | None) -> str:
    """The person's mobile phone (the first MOBILE one, else the first one), normalised."""
    phones = (person or {}).get("phones") or []
    for phone in phones:
        if phone.get("kind") == "MOBILE" and phone.get("number"):
            return normalize_phone(phone["number"])
    return normalize_phone(phones[0].get("number") or "") if phones else ""


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, ""):
        target[key] = value


def aggregate_event(
    event: Mapping[str, Any], partner_id: str, event_time: datetime
) -> dict[str, Any]:
    """The flat event the default pack's aggregates read (seed 003 attribute names)."""
    applicant = event.get("applicant") or {}
    employer = applicant.get("employer") or {}
    consumer: dict[str, Any] = {}
    _set(consumer, "fio", full_name(applicant))
    _set(consumer, "mobile", mobile(applicant))
    _set(consumer, "birthdate", applicant.get("birth_date"))
    _set(consumer, "idDocumentNumber", passport_number(applicant))
    _set(consumer, "passportIssueRegion", (applicant.get("passport") or {}).get("issuing_region"))
    if applicant.get("client_id"):
        # Client ids are the partner's own: scope them so two partners' ids never meet.
        consumer["userId"] = f"{partner_id}/{applicant['client_id']}"
    co_borrowers = event.get("co_borrowers") or []
    ext: dict[str, Any] = {}
    _set(ext, "requestResult", event.get("result"))
    _set(ext, "checkResultSpecial", event.get("special_check_result"))
    bureau = event.get("bureau_check") or {}
    if bureau:
        ext["bkiDefault90and12"] = int(bureau.get("default_90_12_count") or 0)
    employer_out: dict[str, Any] = {}
    _set(employer_out, "inn", employer.get("tax_id"))
    device: dict[str, Any] = {}
    _set(device, "ip", event.get("ip_address"))
    out: dict[str, Any] = {
        "common": {
            "eventTime": _ms(event_time),
            "subtype": event.get("subtype"),
            "partnerId": partner_id,
            "riskScore": 0,
        },
        "consumer": consumer,
        "employer": employer_out,
        "device": device,
        "ext": ext,
    }
    if co_borrowers:
        out["coBorrower"] = {"idDocumentNumber": passport_number(co_borrowers[0])}
    return out


def outcome_event(
    application_event: Mapping[str, Any],
    partner_id: str,
    event_time: datetime,
    *,
    decision: str | None,
    fraud_status: str | None,
) -> list[dict[str, Any]]:
    """Aggregate events for an outcome of ``application_event``: a refusal counts as a
    finished, rejected application (rules 4-6); confirmed fraud marks the employer,
    passport and phone (rule 3, seed 001's confirmed-fraud check)."""
    base = aggregate_event(application_event, partner_id, event_time)
    keys = {
        "common": base["common"],
        "consumer": {
            k: v for k, v in base["consumer"].items() if k in ("idDocumentNumber", "mobile")
        },
        "employer": base["employer"],
    }
    out = []
    if decision in ("APPROVED", "REFUSED"):
        result = "REJECTED" if decision == "REFUSED" else "APPROVED"
        out.append(
            {
                **keys,
                "common": {**base["common"], "subtype": "LOAN_APP_RESULT"},
                "consumer": {
                    **keys["consumer"],
                    **(
                        {"passportIssueRegion": base["consumer"]["passportIssueRegion"]}
                        if "passportIssueRegion" in base["consumer"]
                        else {}
                    ),
                },
                "ext": {"requestResult": result},
            }
        )
    resolution = {"CONFIRMED": "F", "SUSPECTED": "S", "NOT_FRAUD": "N"}.get(fraud_status or "")
    if resolution:
        out.append(
            {
                **keys,
                "common": {**base["common"], "subtype": "LOAN_APP_RESOLUTION"},
                "ext": {"resolution": resolution},
            }
        )
    return out


def match_keys(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Normalised keys the event is matched on: phone, passport, name + phone,
    co-borrower passport, employer INN, IP, device, e-mail."""
    applicant = event.get("applicant") or {}
    keys: list[tuple[str, str]] = []
    phone = mobile(applicant)
    name = full_name(applicant)
    passport = passport_number(applicant)
    if phone:
        keys.append(("phone", phone))
        if name:
            keys.append(("fio_phone", f"{name}|{phone}"))
    if passport:
        keys.append(("passport", passport))
    for person in event.get("co_borrowers") or []:
        if p := passport_number(person):
            keys.append(("co_borrower_passport", p))
    if inn := (applicant.get("employer") or {}).get("tax_id"):
        keys.append(("employer", str(inn)))
    if ip := event.get("ip_address"):
        keys.append(("ip", str(ip)))
    if device := (event.get("device") or {}).get("device_id"):
        keys.append(("device", str(device)))
    for email in applicant.get("emails") or []:
        keys.append(("email", str(email).strip().lower()))
    return keys
