"""Aggregate definitions as administered resources ("dynamic calculation objects").

The live aggregates (``lendgate.aggregates.AggregateStore``) compile one document: a
few settings, the objects and the parameters (``docs/AGGREGATES.md``). Administration
splits it into one versioned resource per object — its key, its elements and the
``calc_aggregate``/``calc_interval`` parameters over them — which
:func:`compose` puts back together, in a stable order, with the pack's *derived*
parameters (ratios, products, ``save``, ``compare_fl``: they read other parameters or
keep hidden objects, and are the pack's, not editable over the API).

The attributes an object reads are those of the aggregates' event document that the
scoring service builds for every event (``lendgate_core::scoring::event``,
``aggregate_event`` and ``outcome_events``): :data:`ATTRIBUTES` lists them with the
value types an element may store from each, so a typo or a type that would make the
live state refuse events is rejected before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from lendgate.errors import (
    AbortedError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from lendgate.rules import Rule, VersionChange

OBJECT_PARAM_FNS = frozenset({"calc_aggregate", "calc_interval"})
"""Parameter functions that belong to one object (the others are the pack's own)."""

ATTRIBUTES: Mapping[str, frozenset[str]] = {
    "common.eventTime": frozenset({"integer", "decimal", "timestamp"}),
    "common.subtype": frozenset({"string"}),
    "common.partnerId": frozenset({"string"}),
    "common.riskScore": frozenset({"integer", "decimal"}),
    "consumer.fio": frozenset({"string"}),
    "consumer.mobile": frozenset({"string"}),
    "consumer.birthdate": frozenset({"string"}),
    "consumer.idDocumentNumber": frozenset({"string"}),
    "consumer.passportIssueRegion": frozenset({"string"}),
    "consumer.userId": frozenset({"string"}),
    "employer.inn": frozenset({"string"}),
    "device.ip": frozenset({"string"}),
    "coBorrower.idDocumentNumber": frozenset({"string"}),
    "ext.requestResult": frozenset({"string"}),
    "ext.checkResultSpecial": frozenset({"string"}),
    "ext.bkiDefault90and12": frozenset({"integer", "decimal"}),
    "ext.resolution": frozenset({"string"}),
}
"""Attribute paths of the aggregates' event document, each with the element value
types that may store it (see the module docstring)."""

AGGREGATE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARAM_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
ELEMENT_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, eq=False)
class AggregateDefinition:
    """One object of the aggregates with its parameters, and its version metadata.

    ``spec`` is the object in the definition format (``name``, ``description``, ``key``,
    ``elements``); ``params`` are ``calc_aggregate``/``calc_interval`` parameters whose
    ``object`` is this one.
    """

    aggregate_id: str
    spec: dict[str, Any]
    params: tuple[dict[str, Any], ...] = ()
    display_name: str = ""
    event_kind: str = "APPLICATION"
    version: int = 0
    update_author: str = ""
    change_reason: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def etag(self) -> str:
        """Opaque version tag for optimistic concurrency."""
        return f"v{self.version}"

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of its parameters (``params.<name>`` in rule conditions)."""
        return tuple(str(p["name"]) for p in self.params)

    def content(self) -> dict[str, Any]:
        """What a version stores of the definition (no version metadata)."""
        return {
            "aggregate_id": self.aggregate_id,
            "display_name": self.display_name,
            "event_kind": self.event_kind,
            "object": self.spec,
            "params": list(self.params),
        }


@dataclass(frozen=True, eq=False)
class AggregateVersion:
    """An immutable version of an aggregate definition."""

    definition: AggregateDefinition
    change: VersionChange
    author: str
    change_reason: str
    create_time: datetime
    restored_from_version: int = 0

    @property
    def version(self) -> int:
        """The version number."""
        return self.definition.version


def version_body(v: AggregateVersion) -> bytes:
    """The JSON a version is stored as."""
    return json.dumps(
        {
            **v.definition.content(),
            "change": v.change.value,
            "restored_from_version": v.restored_from_version,
            "create_time": (
                v.definition.create_time.isoformat() if v.definition.create_time else None
            ),
        },
        sort_keys=True,
    ).encode()


def version_from_body(
    body: bytes, *, version: int, author: str, reason: str, at: datetime
) -> AggregateVersion:
    """The version :func:`version_body` stored."""
    raw = json.loads(body)
    created = raw.get("create_time")
    definition = AggregateDefinition(
        aggregate_id=raw["aggregate_id"],
        spec=raw["object"],
        params=tuple(raw.get("params", [])),
        display_name=raw.get("display_name", ""),
        event_kind=raw.get("event_kind", "APPLICATION"),
        version=version,
        update_author=author,
        change_reason=reason,
        create_time=datetime.fromisoformat(created) if created else at,
        update_time=at,
    )
    return AggregateVersion(
        definition,
        VersionChange(raw["change"]),
        author,
        reason,
        at,
        int(raw.get("restored_from_version", 0)),
    )


@dataclass
class AggregateBook:
    """Every version of every aggregate definition, in memory (oldest first)."""

    versions: dict[str, list[AggregateVersion]] = field(default_factory=dict)

    def commit(self, v: AggregateVersion) -> AggregateVersion:
        """Append a version (already stored)."""
        self.versions.setdefault(v.definition.aggregate_id, []).append(v)
        return v

    def history(self, aggregate_id: str) -> list[AggregateVersion]:
        """Versions newest first; ``NotFoundError`` for an id never used."""
        found = self.versions.get(aggregate_id)
        if not found:
            raise NotFoundError(f"aggregate definition {aggregate_id!r} not found")
        return list(reversed(found))

    def version(self, aggregate_id: str, number: int) -> AggregateVersion:
        """One version; ``NotFoundError`` when absent."""
        for v in self.versions.get(aggregate_id, []):
            if v.version == number:
                return v
        raise NotFoundError(f"aggregate definition {aggregate_id!r} has no version {number}")

    def latest(self, aggregate_id: str) -> AggregateVersion | None:
        """The newest version, deleted or not, or ``None``."""
        found = self.versions.get(aggregate_id)
        return found[-1] if found else None

    def get(self, aggregate_id: str) -> AggregateDefinition:
        """The current definition; ``NotFoundError`` when absent or deleted."""
        latest = self.latest(aggregate_id)
        if latest is None or latest.change is VersionChange.DELETED:
            raise NotFoundError(f"aggregate definition {aggregate_id!r} not found")
        return latest.definition

    def live(self) -> list[AggregateDefinition]:
        """Every current (not deleted) definition, by id."""
        return [
            v[-1].definition
            for _, v in sorted(self.versions.items())
            if v and v[-1].change is not VersionChange.DELETED
        ]

    def check_etag(self, aggregate_id: str, etag: str) -> AggregateVersion | None:
        """The latest version, after checking ``etag`` against it (``AbortedError``)."""
        latest = self.latest(aggregate_id)
        deleted = latest is None or latest.change is VersionChange.DELETED
        current = "" if deleted or latest is None else latest.definition.etag
        if etag != current:
            raise AbortedError(
                f"aggregate definition {aggregate_id!r} changed since it was read",
                reason="ETAG_MISMATCH",
            )
        return latest


# --- the pack and the composed document ------------------------------------------------


def split_pack(document: Mapping[str, Any]) -> tuple[list[AggregateDefinition], list[Any]]:
    """The pack's objects as definitions (each with its own parameters), and the
    pack's derived parameters (in their order)."""
    objects = list(document.get("objects", []))
    names = {o["name"] for o in objects}
    own: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    derived = []
    for p in document.get("params", []):
        if p.get("fn") in OBJECT_PARAM_FNS and p.get("object") in names:
            own[p["object"]].append(p)
        else:
            derived.append(p)
    defs = [
        AggregateDefinition(
            aggregate_id=o["name"],
            spec=_normalized(o),
            params=tuple(own[o["name"]]),
            display_name=o["name"],
        )
        for o in objects
    ]
    return defs, derived


def _normalized(o: Mapping[str, Any]) -> dict[str, Any]:
    """An object with its defaults spelt out (descriptions, key kinds), as the API
    writes it back, so an unchanged pack object compares equal to its round trip."""
    return {
        **o,
        "description": o.get("description", ""),
        "key": [{"kind": "text", **k} for k in o["key"]],
        "elements": [{"description": "", **e} for e in o["elements"]],
    }


@dataclass(frozen=True)
class Composed:
    """The document the live aggregates compile, and what it was made of."""

    document: dict[str, Any]
    digest: str
    versions: Mapping[str, int]
    """aggregate_id → the version of it the document holds."""
    objects: tuple[str, ...]
    """aggregate ids in document order."""
    param_ranges: Mapping[str, tuple[int, int]]
    """aggregate_id → [start, end) of its parameters in ``document["params"]``."""


def compose(
    pack_document: Mapping[str, Any], definitions: Iterable[AggregateDefinition]
) -> Composed:
    """The live document: the pack's settings, the definitions' objects (the pack's in
    the pack's order, then the others by id), their parameters, then the pack's derived
    parameters."""
    order = {o["name"]: i for i, o in enumerate(pack_document.get("objects", []))}
    defs = sorted(
        definitions,
        key=lambda d: (
            (0, order[d.aggregate_id], "") if d.aggregate_id in order else (1, 0, d.aggregate_id)
        ),
    )
    _, derived = split_pack(pack_document)
    params: list[Any] = []
    ranges = {}
    for d in defs:
        ranges[d.aggregate_id] = (len(params), len(params) + len(d.params))
        params.extend(d.params)
    document = {k: v for k, v in pack_document.items() if k not in ("objects", "params")}
    document["objects"] = [d.spec for d in defs]
    document["params"] = params + list(derived)
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    return Composed(
        document,
        digest,
        {d.aggregate_id: d.version for d in defs},
        tuple(d.aggregate_id for d in defs),
        ranges,
    )


# --- validation ------------------------------------------------------------------------

_ELEMENT_FIELDS = {
    "name": "element_id",
    "attr": "source_attribute",
    "type": "value_type",
    "max_days": "max_age_days",
    "filter_expr": "filter",
    "filter": "filter",
}
_PARAM_FIELDS = {
    "element": "element_id",
    "agg": "function",
    "p": "percentile",
    "except": "exclusion",
    "unit": "interval_unit",
    "search": "match_values",
    "window": "window",
    "name": "name",
}
PREFIX = "aggregate_definition"


def _object_field(rest: str) -> str:
    e = re.match(r"\.elements\[(\d+)\](?:\.(\w+))?", rest)
    if e:
        sub = f".{_ELEMENT_FIELDS.get(e.group(2), e.group(2))}" if e.group(2) else ""
        return f"{PREFIX}.elements[{e.group(1)}]{sub}"
    k = re.match(r"\.key(?:\[(\d+)\])?", rest)
    if k:
        return f"{PREFIX}.key_attributes" + (f"[{k.group(1)}].attribute" if k.group(1) else "")
    return PREFIX


def proto_field(path: str, composed: Composed, aggregate_id: str) -> str | None:
    """The request field of a compile error's ``path`` in the composed document, or
    ``None`` when the path is outside the definition ``aggregate_id``."""
    m = re.match(r"objects\[(\d+)\](.*)", path)
    if m:
        index = int(m.group(1))
        mine = index < len(composed.objects) and composed.objects[index] == aggregate_id
        return _object_field(m.group(2)) if mine else None
    m = re.match(r"params\[(\d+)\](?:\.(\w+))?", path)
    start, end = composed.param_ranges.get(aggregate_id, (0, 0))
    if m is None or not start <= int(m.group(1)) < end:
        return None
    sub = f".{_PARAM_FIELDS.get(m.group(2), m.group(2))}" if m.group(2) else ""
    return f"{PREFIX}.parameters[{int(m.group(1)) - start}]{sub}"


def check_attributes(d: AggregateDefinition) -> None:
    """Every attribute is one of the event document's, stored with a type it has."""
    bad = []
    for i, k in enumerate(d.spec.get("key", [])):
        if k.get("attr") not in ATTRIBUTES:
            bad.append(
                FieldViolation(
                    f"{PREFIX}.key_attributes[{i}].attribute",
                    f"unknown attribute {k.get('attr')!r}; one of {', '.join(sorted(ATTRIBUTES))}",
                )
            )
    for i, e in enumerate(d.spec.get("elements", [])):
        attr = e.get("attr")
        if attr is None:
            continue
        types = ATTRIBUTES.get(attr)
        if types is None:
            bad.append(
                FieldViolation(
                    f"{PREFIX}.elements[{i}].source_attribute",
                    f"unknown attribute {attr!r}; one of {', '.join(sorted(ATTRIBUTES))}",
                )
            )
        elif e.get("type", "string") not in types:
            bad.append(
                FieldViolation(
                    f"{PREFIX}.elements[{i}].value_type",
                    f"{attr} holds {' or '.join(sorted(types))} values,"
                    f" not {e.get('type', 'string')}",
                )
            )
    if bad:
        raise InvalidArgumentError(
            "; ".join(f"{v.field}: {v.description}" for v in bad[:3]), violations=bad
        )


def rules_reading(rules: Iterable[Rule], names: Sequence[str]) -> list[str]:
    """Ids of the rules whose condition (or a sub-rule's) reads ``params.<name>`` of
    any of ``names``."""
    if not names:
        return []
    pattern = re.compile(
        r"params\s*(?:\.\s*(?:"
        + "|".join(re.escape(n) for n in names)
        + r")\b|\[\s*[\"'](?:"
        + "|".join(re.escape(n) for n in names)
        + r")[\"']\s*\])"
    )
    return sorted(
        {
            r.rule_id
            for r in rules
            if any(pattern.search(c) for c in (r.condition, *(s.condition for s in r.sub_rules)))
        }
    )


def with_version(
    d: AggregateDefinition, version: int, author: str, reason: str, at: datetime
) -> AggregateDefinition:
    """``d`` stamped as version ``version``."""
    return replace(
        d,
        version=version,
        update_author=author,
        change_reason=reason,
        create_time=d.create_time or at,
        update_time=at,
    )


__all__ = [
    "ATTRIBUTES",
    "AggregateBook",
    "AggregateDefinition",
    "AggregateVersion",
    "Composed",
    "check_attributes",
    "compose",
    "proto_field",
    "rules_reading",
    "split_pack",
    "version_body",
    "version_from_body",
]
