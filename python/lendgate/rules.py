"""Scoring rules: the versioned rule book and compiled rule sets.

Rust (``core_rs/lendgate-core/src/rules/``) compiles a set of rules once and evaluates
all of them on one event in one call; this module keeps the rules' history. Every
create, update, delete and restore appends an immutable :class:`RuleVersion` (who,
when, why, content) to a :class:`RuleRepository`; any version can be read and
restored (a restore is a new version with the old content). Versioning lives in
Python because it is administration, not the hot path, and its storage is the
Python store's; the repository Protocol is the seam, :class:`InMemoryRuleRepository`
the implementation until the store lands. See ``docs/RULES.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from lendgate import _core
from lendgate.errors import AbortedError, AlreadyExistsError, NotFoundError, core_errors
from lendgate.lists import Lists, to_ms

DEFAULT_ZONE_THRESHOLD = 432
"""Fraud score at or above which an event is in the black zone (seed 001)."""


class RuleStatus(StrEnum):
    """Status of a rule (proto ``RuleStatus`` without the prefix)."""

    WORKING = "WORKING"
    TEST = "TEST"
    TUNING = "TUNING"
    DISABLED = "DISABLED"


class EventKind(StrEnum):
    """Kind of event (proto ``EventKind`` without the prefix)."""

    APPLICATION = "APPLICATION"
    PAYMENT = "PAYMENT"


class VersionChange(StrEnum):
    """What made a version (proto ``VersionChange`` without the prefix)."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    RESTORED = "RESTORED"


@dataclass(frozen=True)
class SubRule:
    """A sub-rule of a composite rule (proto ``SubRule``)."""

    sub_rule_id: str
    condition: str
    points: int = 0
    display_name: str = ""


@dataclass(frozen=True)
class Rule:
    """A scoring rule (proto ``Rule``). ``version``, ``create_time``,
    ``update_time`` and ``etag`` are output only: set by the :class:`RuleBook`."""

    rule_id: str
    event_kind: EventKind
    condition: str = ""
    points: int = 0
    status: RuleStatus = RuleStatus.WORKING
    display_name: str = ""
    description: str = ""
    recommendation: str = ""
    sub_rules: tuple[SubRule, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    tags: tuple[str, ...] = ()
    source_pack: str = ""
    version: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def etag(self) -> str:
        """Opaque version tag for optimistic concurrency."""
        return f"{self.rule_id}/v{self.version}"

    def to_core(self) -> dict[str, Any]:
        """The rule as the Rust core reads it (``RuleDef``)."""
        return {
            "rule_id": self.rule_id,
            "display_name": self.display_name,
            "description": self.description,
            "recommendation": self.recommendation,
            "status": self.status.value,
            "event_kind": self.event_kind.value,
            "condition": self.condition,
            "points": self.points,
            "sub_rules": [asdict(s) for s in self.sub_rules],
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "tags": list(self.tags),
            "version": self.version,
        }


@dataclass(frozen=True)
class RuleVersion:
    """An immutable version of a rule (proto ``RuleVersion``)."""

    rule_id: str
    version: int
    rule: Rule
    change: VersionChange
    author: str
    create_time: datetime
    change_reason: str = ""
    restored_from_version: int = 0


class RuleRepository(Protocol):
    """Where rule versions are kept. Append-only: versions are never changed."""

    def append(self, version: RuleVersion) -> None:
        """Store a new version; its number is the rule's last number + 1."""

    def versions(self, rule_id: str) -> list[RuleVersion]:
        """All versions of a rule, oldest first (empty if there is no such rule)."""

    def rule_ids(self) -> list[str]:
        """The ids of all rules ever created, sorted."""


class InMemoryRuleRepository:
    """A :class:`RuleRepository` in memory (tests, and until the store lands)."""

    def __init__(self) -> None:
        self._versions: dict[str, list[RuleVersion]] = {}

    def append(self, version: RuleVersion) -> None:
        """Store a new version."""
        history = self._versions.setdefault(version.rule_id, [])
        if version.version != len(history) + 1:
            raise AbortedError(f"rule {version.rule_id!r} changed concurrently")
        history.append(version)

    def versions(self, rule_id: str) -> list[RuleVersion]:
        """All versions of a rule, oldest first."""
        return list(self._versions.get(rule_id, []))

    def rule_ids(self) -> list[str]:
        """The ids of all rules ever created, sorted."""
        return sorted(self._versions)


def _time(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The whole rule (output-only fields included) as a JSON object."""
    out = rule.to_core()
    out.update(
        source_pack=rule.source_pack,
        create_time=_time(rule.create_time),
        update_time=_time(rule.update_time),
    )
    return out


def rule_from_json(raw: Mapping[str, Any]) -> Rule:
    """The rule of :func:`rule_to_json`."""
    return Rule(
        rule_id=raw["rule_id"],
        event_kind=EventKind(raw["event_kind"]),
        condition=raw.get("condition", ""),
        points=int(raw.get("points", 0)),
        status=RuleStatus(raw.get("status", "WORKING")),
        display_name=raw.get("display_name", ""),
        description=raw.get("description", ""),
        recommendation=raw.get("recommendation", ""),
        sub_rules=tuple(
            SubRule(
                s["sub_rule_id"], s["condition"], int(s.get("points", 0)), s.get("display_name", "")
            )
            for s in raw.get("sub_rules", [])
        ),
        valid_from=_parse_time(raw.get("valid_from")),
        valid_until=_parse_time(raw.get("valid_until")),
        tags=tuple(raw.get("tags", [])),
        source_pack=raw.get("source_pack", ""),
        version=int(raw.get("version", 0)),
        create_time=_parse_time(raw.get("create_time")),
        update_time=_parse_time(raw.get("update_time")),
    )


def version_to_json(v: RuleVersion) -> bytes:
    """A rule version as the JSON body the store keeps (who and when are the store's
    columns too; they are kept here so that a version reads back exactly)."""
    return json.dumps(
        {
            "version": v.version,
            "change": v.change.value,
            "restored_from_version": v.restored_from_version,
            "author": v.author,
            "create_time": v.create_time.isoformat(),
            "change_reason": v.change_reason,
            "rule": rule_to_json(v.rule),
        },
        sort_keys=True,
    ).encode()


def version_from_json(body: bytes) -> RuleVersion:
    """The rule version of :func:`version_to_json`."""
    raw = json.loads(body)
    rule = rule_from_json(raw["rule"])
    return RuleVersion(
        rule.rule_id,
        int(raw["version"]),
        rule,
        VersionChange(raw["change"]),
        raw["author"],
        datetime.fromisoformat(raw["create_time"]),
        raw.get("change_reason", ""),
        int(raw.get("restored_from_version", 0)),
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RuleBook:
    """The rules of one partner, with their full history."""

    def __init__(self, repository: RuleRepository, clock: Callable[[], datetime] = _utcnow) -> None:
        self._repo = repository
        self._clock = clock

    def create(self, rule: Rule, *, author: str, reason: str = "") -> Rule:
        """Create a rule (version 1). Its conditions are compiled first: a rule that
        does not compile raises ``InvalidArgumentError`` (field, position, reason)
        and nothing changes. ``AlreadyExistsError`` if the id was ever used."""
        return self.commit(self.plan_create(rule, author=author, reason=reason)).rule

    def plan_create(self, rule: Rule, *, author: str, reason: str = "") -> RuleVersion:
        """The version :meth:`create` would append, compiled and checked, not yet
        appended: a caller that persists versions stores it, then passes it to :meth:`commit`."""
        if self._repo.versions(rule.rule_id):
            raise AlreadyExistsError(f"rule {rule.rule_id!r} already exists")
        now = self._clock()
        content = replace(rule, version=1, create_time=now, update_time=now)
        validate(content)
        return RuleVersion(rule.rule_id, 1, content, VersionChange.CREATED, author, now, reason)

    def commit(self, version: RuleVersion) -> RuleVersion:
        """Append a version made by one of the ``plan_*`` methods."""
        self._repo.append(version)
        return version

    def get(self, rule_id: str) -> Rule:
        """The current version of a live rule; ``NotFoundError`` if none or deleted."""
        last = self._last(rule_id)
        if last.change is VersionChange.DELETED:
            raise NotFoundError(f"rule {rule_id!r} not found (deleted)")
        return last.rule

    def rules(self) -> list[Rule]:
        """Current versions of all live rules, ordered by rule id."""
        out = []
        for rule_id in self._repo.rule_ids():
            last = self._last(rule_id)
            if last.change is not VersionChange.DELETED:
                out.append(last.rule)
        return out

    def update(self, rule: Rule, *, etag: str, author: str, reason: str = "") -> Rule:
        """Replace a rule's content with ``rule``'s, as a new version."""
        return self.commit(self.plan_update(rule, etag=etag, author=author, reason=reason)).rule

    def plan_update(self, rule: Rule, *, etag: str, author: str, reason: str = "") -> RuleVersion:
        """The version :meth:`update` would append (see :meth:`plan_create`)."""
        current = self._checked(rule.rule_id, etag)
        return self._new_version(rule, current, VersionChange.UPDATED, author=author, reason=reason)

    def delete(self, rule_id: str, *, etag: str, author: str, reason: str = "") -> RuleVersion:
        """Delete a rule: a DELETED version holding its last content. It stops being
        evaluated; its versions stay readable and :meth:`restore` brings it back."""
        return self.commit(self.plan_delete(rule_id, etag=etag, author=author, reason=reason))

    def plan_delete(self, rule_id: str, *, etag: str, author: str, reason: str = "") -> RuleVersion:
        """The version :meth:`delete` would append (see :meth:`plan_create`)."""
        current = self._checked(rule_id, etag)
        return RuleVersion(
            rule_id,
            current.version + 1,
            current,
            VersionChange.DELETED,
            author,
            self._clock(),
            reason,
        )

    def versions(self, rule_id: str) -> list[RuleVersion]:
        """All versions of a rule, newest first."""
        history = self._repo.versions(rule_id)
        if not history:
            raise NotFoundError(f"rule {rule_id!r} not found")
        return history[::-1]

    def version(self, rule_id: str, version: int) -> RuleVersion:
        """One version of a rule."""
        history = self._repo.versions(rule_id)
        if not 1 <= version <= len(history):
            raise NotFoundError(f"rule {rule_id!r} has no version {version}")
        return history[version - 1]

    def restore(
        self, rule_id: str, version: int, *, etag: str, author: str, reason: str = ""
    ) -> Rule:
        """Make an old version's content current again, as a new version. ``etag``
        is the current version's, or empty when the rule is deleted."""
        return self.commit(
            self.plan_restore(rule_id, version, etag=etag, author=author, reason=reason)
        ).rule

    def plan_restore(
        self, rule_id: str, version: int, *, etag: str, author: str, reason: str = ""
    ) -> RuleVersion:
        """The version :meth:`restore` would append (see :meth:`plan_create`)."""
        old = self.version(rule_id, version)
        last = self._last(rule_id)
        expected = "" if last.change is VersionChange.DELETED else last.rule.etag
        if etag != expected:
            raise AbortedError(
                f"rule {rule_id!r} changed since it was read", reason="ETAG_MISMATCH"
            )
        return self._new_version(
            old.rule,
            last.rule,
            VersionChange.RESTORED,
            author=author,
            reason=reason,
            restored_from=version,
        )

    def compile(self, zone_threshold: int = DEFAULT_ZONE_THRESHOLD) -> CompiledRuleSet:
        """Compile the current versions of all live rules into one set."""
        return CompiledRuleSet.compile(self.rules(), zone_threshold)

    def _last(self, rule_id: str) -> RuleVersion:
        history = self._repo.versions(rule_id)
        if not history:
            raise NotFoundError(f"rule {rule_id!r} not found")
        return history[-1]

    def _checked(self, rule_id: str, etag: str) -> Rule:
        current = self.get(rule_id)
        if etag != current.etag:
            raise AbortedError(
                f"rule {rule_id!r} changed since it was read", reason="ETAG_MISMATCH"
            )
        return current

    def _new_version(
        self,
        content: Rule,
        current: Rule,
        change: VersionChange,
        *,
        author: str,
        reason: str,
        restored_from: int = 0,
    ) -> RuleVersion:
        now = self._clock()
        number = len(self._repo.versions(current.rule_id)) + 1
        new = replace(
            content,
            rule_id=current.rule_id,
            version=number,
            create_time=current.create_time,
            update_time=now,
        )
        validate(new)
        return RuleVersion(new.rule_id, number, new, change, author, now, reason, restored_from)


def validate(rule: Rule) -> None:
    """Compile ``rule``'s conditions; raises ``InvalidArgumentError`` naming the field
    (``rule.condition``, ``rule.sub_rules[1].condition``), the position and why."""
    with core_errors():
        _core.RuleSet.validate(json.dumps(rule.to_core()))


@dataclass(frozen=True)
class RuleValue:
    """A value that took part in firing a rule: an event path or a host call."""

    name: str
    value: Any


@dataclass(frozen=True)
class FiredSubRule:
    """A sub-rule that fired."""

    sub_rule_id: str
    display_name: str
    points: int
    values: list[RuleValue]


@dataclass(frozen=True)
class FiredRule:
    """A rule that fired, with the values its condition read."""

    rule_id: str
    rule_version: int
    display_name: str
    status: RuleStatus
    points: int
    description: str
    recommendation: str
    values: list[RuleValue]
    sub_rules: list[FiredSubRule]
    tags: list[str]


@dataclass(frozen=True)
class RuleError:
    """A rule that failed on this event; the other rules still ran."""

    rule_id: str
    rule_version: int
    message: str


@dataclass(frozen=True)
class Evaluation:
    """All rules on one event: fired working rules (by rule id), fired test and
    tuning rules (never counted), errors, fraud score and zone."""

    fired_rules: list[FiredRule]
    test_rules: list[FiredRule]
    rule_errors: list[RuleError]
    fraud_score: int
    zone_threshold: int
    zone: str
    rules_evaluated: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes) -> Evaluation:
        """Decode the Rust core's JSON result."""
        raw = json.loads(data)

        def values(items: list[dict[str, Any]]) -> list[RuleValue]:
            return [RuleValue(v["name"], v["value"]) for v in items]

        def fired(r: dict[str, Any]) -> FiredRule:
            return FiredRule(
                r["rule_id"],
                r["rule_version"],
                r["display_name"],
                RuleStatus(r["status"]),
                r["points"],
                r["description"],
                r["recommendation"],
                values(r["values"]),
                [
                    FiredSubRule(
                        s["sub_rule_id"], s["display_name"], s["points"], values(s["values"])
                    )
                    for s in r["sub_rules"]
                ],
                r["tags"],
            )

        return cls(
            [fired(r) for r in raw["fired_rules"]],
            [fired(r) for r in raw["test_rules"]],
            [RuleError(e["rule_id"], e["rule_version"], e["message"]) for e in raw["rule_errors"]],
            raw["fraud_score"],
            raw["zone_threshold"],
            raw["zone"],
            raw["rules_evaluated"],
        )


def build_document(
    event_kind: EventKind,
    event: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
    model_risk_score: int | None = None,
) -> bytes:
    """The document rule conditions see, as JSON bytes: the event under
    ``application`` or ``payment``, aggregate parameters under ``params``, the model
    score as ``model.risk_score`` (null when there is none)."""
    doc = {
        event_kind.value.lower(): dict(event),
        "params": dict(params or {}),
        "model": {"risk_score": model_risk_score},
    }
    return json.dumps(doc, separators=(",", ":"), default=str).encode()


class CompiledRuleSet:
    """Rules compiled once (Rust ``RuleSet``); evaluate all of them on an event in
    one call, from any thread (the GIL is released)."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _core.RuleSet) -> None:
        self._inner = inner

    @classmethod
    def compile(
        cls, rules: Sequence[Rule], zone_threshold: int = DEFAULT_ZONE_THRESHOLD
    ) -> CompiledRuleSet:
        """Compile ``rules``; one that does not compile raises ``InvalidArgumentError``
        and nothing is built."""
        payload = json.dumps([r.to_core() for r in rules])
        with core_errors():
            return cls(_core.RuleSet.compile(payload, zone_threshold))

    def __len__(self) -> int:
        return len(self._inner)

    def evaluate_json(
        self, document: bytes, event_kind: EventKind, event_time: datetime, lists: Lists
    ) -> bytes:
        """Evaluate on a JSON document; the result as JSON bytes (routing only)."""
        with core_errors():
            return self._inner.evaluate(document, event_kind, to_ms(event_time), lists.registry)

    def evaluate(
        self, document: bytes, event_kind: EventKind, event_time: datetime, lists: Lists
    ) -> Evaluation:
        """Evaluate on a JSON document (see :func:`build_document`)."""
        return Evaluation.from_json(self.evaluate_json(document, event_kind, event_time, lists))

    def evaluate_batch(
        self,
        documents: Sequence[bytes],
        event_kind: EventKind,
        event_times: Sequence[datetime],
        lists: Lists,
    ) -> list[bytes]:
        """Evaluate on many events of one kind in one call; JSON results in order."""
        with core_errors():
            return self._inner.evaluate_batch(
                list(documents), event_kind, [to_ms(t) for t in event_times], lists.registry
            )
