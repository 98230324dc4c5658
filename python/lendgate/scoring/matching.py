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
import marshal
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lendgate.errors import InvalidArgumentError
from lendgate.scoring.events import full_name, mobile, passport_number

MAX_PER_KEY = 50
MAX_PER_RULE = 20

SNAPSHOT_MAGIC = b"LGMI"
SNAPSHOT_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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

    def __len__(self) -> int:
        """Number of application events held."""
        return sum(len(items) for items in self._by_app.values())

    def snapshot(self) -> bytes:
        """The whole index as compact, versioned bytes (:meth:`restore` reads them back).

        Layout: ``b"LGMI"``, one version byte, then a :mod:`marshal` image (plain tuples,
        strings and integers only; nothing is executed on load) of every held event in
        ``seq`` order and, per key, the ``seq`` of its events oldest first. Event times are
        microseconds since the epoch (UTC). Outcome marks travel with their events.
        """
        items = sorted((h for group in self._by_app.values() for h in group), key=lambda h: h.seq)
        records = [
            (
                h.seq,
                h.partner_id,
                h.application_id,
                h.subtype,
                (h.event_time - _EPOCH) // timedelta(microseconds=1),
                h.phone,
                h.name,
                h.birth_date,
                h.passport,
                h.result,
                h.fraud_status,
            )
            for h in items
        ]
        # Keys flat (kinds, values, sizes and one list of every key's seqs): a few large
        # lists marshal and load much faster than one small list per key.
        by_key = self._by_key
        kinds = [k[0] for k in by_key]
        values = [k[1] for k in by_key]
        sizes = [len(q) for q in by_key.values()]
        seqs = [h.seq for q in by_key.values() for h in q]
        image = marshal.dumps((records, kinds, values, sizes, seqs))
        return SNAPSHOT_MAGIC + bytes([SNAPSHOT_VERSION]) + image

    def restore(self, data: bytes) -> None:
        """Replace the contents with a :meth:`snapshot`; a foreign, newer or damaged
        snapshot raises :class:`InvalidArgumentError` (field ``snapshot``) and changes
        nothing."""
        if data[:4] != SNAPSHOT_MAGIC or len(data) < 5:
            raise InvalidArgumentError("not a match index snapshot", field="snapshot")
        if data[4] != SNAPSHOT_VERSION:
            raise InvalidArgumentError(
                f"match index snapshot version {data[4]}, this build reads {SNAPSHOT_VERSION}",
                field="snapshot",
            )
        try:
            # Our own bytes from our own database; marshal builds plain values, runs nothing.
            records, kinds, values, sizes, seqs = marshal.loads(data[5:])  # noqa: S302
            by_seq: dict[int, Historical] = {}
            by_app: dict[tuple[str, str], list[Historical]] = {}
            epoch, micro = _EPOCH, timedelta(microseconds=1)
            for seq, partner, app, subtype, us, phone, name, birth, passport, res, fraud in records:
                h = Historical(
                    seq, partner, app, subtype, epoch + us * micro, phone, name, birth, passport
                )
                h.result, h.fraud_status = res, fraud
                by_seq[h.seq] = h
                by_app.setdefault((h.partner_id, h.application_id), []).append(h)
            if not len(kinds) == len(values) == len(sizes) or sum(sizes) != len(seqs):
                raise ValueError("key lists of different lengths")
            items = list(map(by_seq.__getitem__, seqs))
            by_key: dict[tuple[str, str], deque[Historical]] = {}
            at = 0
            for kind, value, size in zip(kinds, values, sizes, strict=True):
                by_key[(kind, value)] = deque(items[at : at + size], maxlen=MAX_PER_KEY)
                at += size
        except (ValueError, TypeError, EOFError, KeyError, OverflowError) as exc:
            raise InvalidArgumentError(
                f"damaged match index snapshot: {exc}", field="snapshot"
            ) from None
        self._by_key, self._by_app = by_key, by_app

    def prune(self, before: datetime) -> int:
        """Forget every event older than ``before`` (event time): retention of the hot
        state. Returns how many were dropped."""
        dropped = 0
        for app, items in list(self._by_app.items()):
            kept = [h for h in items if h.event_time >= before]
            if len(kept) != len(items):
                dropped += len(items) - len(kept)
                if kept:
                    self._by_app[app] = kept
                else:
                    del self._by_app[app]
        if dropped:
            for key, queue in list(self._by_key.items()):
                if any(h.event_time < before for h in queue):
                    fresh = [h for h in queue if h.event_time >= before]
                    if fresh:
                        self._by_key[key] = deque(fresh, maxlen=MAX_PER_KEY)
                    else:
                        del self._by_key[key]
        return dropped

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
