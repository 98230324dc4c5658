"""Consortium matches: earlier applications of all partners sharing a key, masked.

The index keeps, per normalised key (``("phone", "79991234567")``), the most recent
applications that carried it. A fired rule that names match kinds in the pack gets the
applications behind it, as the caller may see them (the disclosure policy below).

Disclosure policy (the consortium's, applied to every match):

- the other partner is never named, and its application id is never shown; a match of
  the caller's own application carries its application id;
- ``match_ref`` is a hash of the report id and the historical event, so it is stable
  within one report and cannot link two reports or find the partner;
- event time is truncated to the day;
- compared values are masked: phones keep the country code and the last 4 digits,
  names keep the first letter of each word, passports the last 4 characters, birth
  dates the year only; the caller's own application is shown unmasked;
- the result and fraud status of the historical application are shown (that is the
  point of the consortium).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lendgate.scoring.events import full_name, mobile, passport_number

MAX_PER_KEY = 50
MAX_PER_RULE = 20


@dataclass
class Historical:
    """What the index remembers of one application event."""

    seq: int
    partner_id: str
    application_id: str
    subtype: str
    event_time: datetime
    phone: str
    name: str
    birth_date: str
    passport: str
    result: str = ""
    fraud_status: str = ""


@dataclass(frozen=True)
class MatchedField:
    """A compared field (proto ``MatchedField``)."""

    field: str
    kind: str
    current_value: str
    historical_value: str


@dataclass(frozen=True)
class Match:
    """A historical application as the caller may see it (proto ``HistoricalMatch``)."""

    match_ref: str
    own_application: bool
    application_id: str
    event_day: datetime
    subtype: str
    fields: tuple[MatchedField, ...]
    result: str
    fraud_status: str


def mask_phone(value: str) -> str:
    """``79991234567`` -> ``+7******4567``."""
    if len(value) <= 5:
        return "*" * len(value)
    return f"+{value[0]}{'*' * (len(value) - 5)}{value[-4:]}"


def mask_name(value: str) -> str:
    """``ivanov ivan`` -> ``I*** I***``."""
    return " ".join(w[0].upper() + "***" for w in value.split())


def mask_passport(value: str) -> str:
    """All but the last 4 characters hidden."""
    return "*" * max(0, len(value) - 4) + value[-4:]


def mask_birth_date(value: str) -> str:
    """The year only."""
    return value[:4] + "-**-**" if value else ""


_FIELDS = (
    ("application.applicant.phones", "phone", mask_phone),
    ("application.applicant.last_name", "name", mask_name),
    ("application.applicant.birth_date", "birth_date", mask_birth_date),
    ("application.applicant.passport.number", "passport", mask_passport),
)


@dataclass
class MatchIndex:
    """In-memory index of recent applications by match key (one process's view)."""

    _by_key: dict[tuple[str, str], deque[Historical]] = field(default_factory=dict)
    _by_app: dict[tuple[str, str], list[Historical]] = field(default_factory=dict)

    @staticmethod
    def record(
        seq: int, partner_id: str, event: Mapping[str, Any], event_time: datetime
    ) -> Historical:
        """What the index keeps of ``event``."""
        applicant = event.get("applicant") or {}
        return Historical(
            seq,
            partner_id,
            str(event.get("application_id") or ""),
            str(event.get("subtype") or ""),
            event_time,
            mobile(applicant),
            full_name(applicant),
            str(applicant.get("birth_date") or ""),
            passport_number(applicant),
            result=str(event.get("result") or ""),
        )

    def add(self, item: Historical, keys: Sequence[tuple[str, str]]) -> None:
        """Index ``item`` under ``keys``."""
        for key in keys:
            self._by_key.setdefault(key, deque(maxlen=MAX_PER_KEY)).append(item)
        self._by_app.setdefault((item.partner_id, item.application_id), []).append(item)

    def mark(self, partner_id: str, application_id: str, *, result: str, fraud_status: str) -> None:
        """Record an outcome on every indexed event of the application."""
        for item in self._by_app.get((partner_id, application_id), []):
            if result:
                item.result = result
            if fraud_status:
                item.fraud_status = fraud_status

    def matches(
        self,
        kinds: Sequence[str],
        keys: Sequence[tuple[str, str]],
        current: Historical,
        caller: str,
        report_id: str,
    ) -> list[Match]:
        """Earlier applications sharing a key of ``kinds``, most recent first, masked for
        ``caller``; the caller's other events of the same application are left out."""
        found: dict[int, Historical] = {}
        for key in keys:
            if key[0] in kinds:
                for item in self._by_key.get(key, ()):
                    same_app = (item.partner_id, item.application_id) == (
                        caller,
                        current.application_id,
                    )
                    if not same_app:
                        found[item.seq] = item
        ordered = sorted(found.values(), key=lambda h: (h.event_time, h.seq), reverse=True)
        return [self._masked(h, current, caller, report_id) for h in ordered[:MAX_PER_RULE]]

    @staticmethod
    def _masked(h: Historical, current: Historical, caller: str, report_id: str) -> Match:
        own = h.partner_id == caller
        ref = hashlib.blake2b(f"{report_id}\x1f{h.seq}".encode(), digest_size=8).hexdigest()
        fields = []
        for path, attr, mask in _FIELDS:
            mine, theirs = getattr(current, attr), getattr(h, attr)
            if not mine or not theirs:
                continue
            kind = "EXACT" if mine == theirs else "CONTRADICTION"
            fields.append(MatchedField(path, kind, mine, theirs if own else mask(theirs)))
        day = h.event_time.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return Match(
            ref,
            own,
            h.application_id if own else "",
            day,
            h.subtype,
            tuple(fields),
            h.result,
            h.fraud_status,
        )
