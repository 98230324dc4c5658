"""RuleAdminService servicer: thin routing between the contract and rule administration.

Serves rules (create, get, list, update by field mask, delete, versions, restore),
lists (create, get, list, update, delete, add/remove/list entries, bulk import) and
the scoring settings over :class:`~lendgate.scoring.admin.RuleAdmin`, which stores
every change as a new version before it takes effect, and the *same*
:class:`~lendgate.scoring.ScoringService` that answers CheckApplication recompiles
after each change, so the next check sees it.

Scopes: a rule or list is the consortium's (every partner's checks; changed only by
the partners in ``rule_admins``) or private to the partner that created it (seen,
changed and evaluated for that partner alone). Another partner's private rule or list
is NOT_FOUND, exactly like one that does not exist.

Aggregate definitions are the consortium's (read by every partner, changed by the
``rule_admins``), versioned like rules; a change is stored first, then the live
aggregates are rebuilt from the event log in the background
(:meth:`ScoringService.rebuild_aggregates`) while the old definitions keep answering;
``AggregateDefinition.state_status`` says which version serves.

``filter`` of the List* methods is a subset of AIP-160 (:mod:`lendgate.listfilter`).

Limits, said plainly:

- idempotency by ``request_id`` keeps the first successful answer of each
  (partner, method, request_id) in the store (:class:`FirstAnswers`); a failed call is
  not remembered and may be retried;
- of the scoring settings only ``zone_threshold`` is configurable; the review and
  model thresholds are the server's fixed ones (reported by GetScoringSettings).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any, TypeVar

from google.protobuf import duration_pb2, message

from lendgate import _core
from lendgate.auth import current_partner
from lendgate.errors import (
    AbortedError,
    AlreadyExistsError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from lendgate.listfilter import Fields, compile_filter
from lendgate.lists import ListDefinition, ListEntry, ListEntryKind, ListType
from lendgate.rules import (
    EventKind,
    Rule,
    RuleStatus,
    RuleVersion,
    SubRule,
    validate,
)
from lendgate.scoring import ScoringService
from lendgate.scoring.admin import CONSORTIUM, ScoringSettings
from lendgate.scoring.aggdefs import (
    AGGREGATE_ID_RE,
    ELEMENT_ID_RE,
    PARAM_NAME_RE,
    AggregateDefinition,
    AggregateVersion,
)
from lendgate.scoring.backtest import (
    BacktestOutcome,
    Counts,
    TestedRule,
    history_item,
    run_backtest,
)
from lendgate.store import Store
from lendgate.v1 import common_pb2, rules_pb2
from servers.handlers import Ctx, parse_request, raw_request

M = TypeVar("M", bound=message.Message)

ID_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
MAX_PAGE = 1000
DEFAULT_RULE_PAGE = 100
DEFAULT_VERSION_PAGE = 50
DEFAULT_ENTRY_PAGE = 1000
MAX_ENTRY_PAGE = 10_000
MAX_ENTRIES_PER_CALL = 10_000
MAX_IMPORT_BYTES = 512 * 1024 * 1024
"""Most serialized bytes one ImportListEntries stream may carry (a million entries are
~25 MB); the stream is held whole until it ends, so it is bounded."""
MAX_REQUEST_ID = 128

UPDATABLE_RULE_FIELDS = (
    "display_name",
    "description",
    "recommendation",
    "status",
    "event_kind",
    "condition",
    "points",
    "sub_rules",
    "valid_from",
    "valid_until",
    "tags",
)
UPDATABLE_LIST_FIELDS = ("display_name", "description", "type", "default_entry_ttl", "tags")


# --- names and paging -------------------------------------------------------------


def _id_from(name: str, collection: str, field: str) -> str:
    prefix = f"{collection}/"
    if not name:
        raise InvalidArgumentError("required", field=field)
    if not name.startswith(prefix) or not ID_RE.match(name[len(prefix) :]):
        raise InvalidArgumentError(f"must be {collection}/{{id}}, id of [a-z0-9_-]", field=field)
    return name[len(prefix) :]


def _version_from(name: str, field: str) -> tuple[str, int]:
    match = re.fullmatch(r"rules/([a-z0-9_-]{1,64})/versions/([1-9][0-9]{0,17})", name)
    if not match:
        raise InvalidArgumentError("must be rules/{rule_id}/versions/{version}", field=field)
    return match.group(1), int(match.group(2))


def _page_size(size: int, default: int, maximum: int, field: str = "page_size") -> int:
    if size < 0:
        raise InvalidArgumentError("must be >= 0", field=field)
    return min(size or default, maximum)


def _required_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgumentError("required", field=field)
    if not ID_RE.match(value):
        raise InvalidArgumentError("1..64 characters of [a-z0-9_-]", field=field)
    return value


_SCOPE = {
    CONSORTIUM: rules_pb2.DEFINITION_SCOPE_CONSORTIUM,
}


def _scope_proto(scope: str) -> rules_pb2.DefinitionScope.ValueType:
    return _SCOPE.get(scope, rules_pb2.DEFINITION_SCOPE_PARTNER)


# --- rules: proto <-> domain ------------------------------------------------------


def _enum_suffix(value: int, enum: Any, prefix: str, field: str) -> str:
    if value not in enum.values():
        raise InvalidArgumentError(f"unknown {enum.DESCRIPTOR.name} value {value}", field=field)
    return str(enum.Name(value)).removeprefix(prefix)


def rule_from_proto(rule_id: str, msg: rules_pb2.Rule) -> Rule:
    """The domain rule of ``msg`` (output-only fields ignored)."""
    if msg.event_kind == common_pb2.EVENT_KIND_UNSPECIFIED:
        raise InvalidArgumentError("required", field="rule.event_kind")
    status = (
        RuleStatus.WORKING
        if msg.status == common_pb2.RULE_STATUS_UNSPECIFIED
        else RuleStatus(
            _enum_suffix(msg.status, common_pb2.RuleStatus, "RULE_STATUS_", "rule.status")
        )
    )
    for i, sub in enumerate(msg.sub_rules):
        if not ID_RE.match(sub.sub_rule_id):
            raise InvalidArgumentError(
                "1..64 characters of [a-z0-9_-]", field=f"rule.sub_rules[{i}].sub_rule_id"
            )
    return Rule(
        rule_id=rule_id,
        event_kind=EventKind(
            _enum_suffix(msg.event_kind, common_pb2.EventKind, "EVENT_KIND_", "rule.event_kind")
        ),
        condition=msg.condition,
        points=msg.points,
        status=status,
        display_name=msg.display_name,
        description=msg.description,
        recommendation=msg.recommendation,
        sub_rules=tuple(
            SubRule(s.sub_rule_id, s.condition, s.points, s.display_name) for s in msg.sub_rules
        ),
        valid_from=msg.valid_from.ToDatetime(tzinfo=UTC) if msg.HasField("valid_from") else None,
        valid_until=(
            msg.valid_until.ToDatetime(tzinfo=UTC) if msg.HasField("valid_until") else None
        ),
        tags=tuple(msg.tags),
    )


def rule_to_proto(rule: Rule, scope: str = CONSORTIUM) -> rules_pb2.Rule:
    """The proto of a domain rule of ``scope``."""
    out = rules_pb2.Rule(
        name=f"rules/{rule.rule_id}",
        display_name=rule.display_name,
        description=rule.description,
        recommendation=rule.recommendation,
        status=common_pb2.RuleStatus.Value(f"RULE_STATUS_{rule.status.value}"),
        event_kind=common_pb2.EventKind.Value(f"EVENT_KIND_{rule.event_kind.value}"),
        condition=rule.condition,
        points=rule.points,
        sub_rules=[
            rules_pb2.SubRule(
                sub_rule_id=s.sub_rule_id,
                display_name=s.display_name,
                condition=s.condition,
                points=s.points,
            )
            for s in rule.sub_rules
        ],
        tags=list(rule.tags),
        source_pack=rule.source_pack,
        version=rule.version,
        etag=rule.etag,
        scope=_scope_proto(scope),
    )
    if rule.valid_from:
        out.valid_from.FromDatetime(rule.valid_from)
    if rule.valid_until:
        out.valid_until.FromDatetime(rule.valid_until)
    if rule.create_time:
        out.create_time.FromDatetime(rule.create_time)
    if rule.update_time:
        out.update_time.FromDatetime(rule.update_time)
    return out


def version_to_proto(v: RuleVersion, scope: str = CONSORTIUM) -> rules_pb2.RuleVersion:
    """The proto of a rule version."""
    out = rules_pb2.RuleVersion(
        name=f"rules/{v.rule_id}/versions/{v.version}",
        version=v.version,
        rule=rule_to_proto(v.rule, scope),
        change=rules_pb2.VersionChange.Value(f"VERSION_CHANGE_{v.change.value}"),
        restored_from_version=v.restored_from_version,
        author=v.author,
        change_reason=v.change_reason,
    )
    out.create_time.FromDatetime(v.create_time)
    return out


def _merge(current: Rule, incoming: rules_pb2.Rule, paths: list[str]) -> Rule:
    """``current`` with the fields named by ``paths`` taken from ``incoming``."""
    if not paths:
        raise InvalidArgumentError("required: the fields to update", field="update_mask")
    if "*" in paths:
        paths = list(UPDATABLE_RULE_FIELDS)
    for i, path in enumerate(paths):
        if path not in UPDATABLE_RULE_FIELDS:
            raise InvalidArgumentError(
                f"{path!r} is not an updatable field of Rule", field=f"update_mask.paths[{i}]"
            )
    if "event_kind" not in paths:
        # rule_from_proto insists on an event kind; keep the current one.
        kept = rules_pb2.Rule()
        kept.CopyFrom(incoming)
        kept.event_kind = common_pb2.EventKind.Value(f"EVENT_KIND_{current.event_kind.value}")
        incoming = kept
    source = rule_from_proto(current.rule_id, incoming)
    return replace(current, **{p: getattr(source, p) for p in paths})


# --- lists: proto <-> domain ------------------------------------------------------


def list_from_proto(list_id: str, msg: rules_pb2.List) -> ListDefinition:
    """The domain list definition of ``msg`` (output-only fields ignored)."""
    if msg.entry_kind == rules_pb2.LIST_ENTRY_KIND_UNSPECIFIED:
        raise InvalidArgumentError("required", field="list.entry_kind")
    if msg.type == rules_pb2.LIST_TYPE_UNSPECIFIED:
        raise InvalidArgumentError("required", field="list.type")
    ttl = msg.default_entry_ttl.ToTimedelta() if msg.HasField("default_entry_ttl") else None
    if ttl is not None and ttl <= timedelta(0):
        raise InvalidArgumentError("must be positive", field="list.default_entry_ttl")
    return ListDefinition(
        list_id=list_id,
        entry_kind=ListEntryKind(
            _enum_suffix(
                msg.entry_kind, rules_pb2.ListEntryKind, "LIST_ENTRY_KIND_", "list.entry_kind"
            )
        ),
        type=ListType(_enum_suffix(msg.type, rules_pb2.ListType, "LIST_TYPE_", "list.type")),
        display_name=msg.display_name,
        description=msg.description,
        default_entry_ttl=ttl,
        tags=tuple(msg.tags),
    )


def list_to_proto(d: ListDefinition, entry_count: int, scope: str = CONSORTIUM) -> rules_pb2.List:
    """The proto of a list definition."""
    out = rules_pb2.List(
        name=f"lists/{d.list_id}",
        display_name=d.display_name,
        description=d.description,
        type=rules_pb2.ListType.Value(f"LIST_TYPE_{d.type.value}"),
        entry_kind=rules_pb2.ListEntryKind.Value(f"LIST_ENTRY_KIND_{d.entry_kind.value}"),
        tags=list(d.tags),
        entry_count=entry_count,
        version=d.version,
        update_author=d.update_author,
        change_reason=d.change_reason,
        etag=d.etag,
        scope=_scope_proto(scope),
    )
    if d.default_entry_ttl is not None:
        out.default_entry_ttl.FromTimedelta(d.default_entry_ttl)
    if d.create_time:
        out.create_time.FromDatetime(d.create_time)
    if d.update_time:
        out.update_time.FromDatetime(d.update_time)
    return out


def entry_to_proto(e: ListEntry) -> rules_pb2.ListEntry:
    """The proto of a list entry."""
    out = rules_pb2.ListEntry(value=e.value, comment=e.comment, author=e.author)
    if e.expire_time:
        out.expire_time.FromDatetime(e.expire_time)
    if e.create_time:
        out.create_time.FromDatetime(e.create_time)
    return out


# --- aggregate definitions: proto <-> domain --------------------------------------

_KEY_NORMALIZATIONS = {
    "text": (rules_pb2.NORMALIZATION_WHITESPACE, rules_pb2.NORMALIZATION_LOWERCASE),
    "phone": (rules_pb2.NORMALIZATION_PHONE_E164,),
    "alnum": (rules_pb2.NORMALIZATION_STRIP_PUNCTUATION, rules_pb2.NORMALIZATION_LOWERCASE),
}
_AGG_FUNCTIONS = {
    rules_pb2.AGGREGATE_FUNCTION_VALUE: "value",
    rules_pb2.AGGREGATE_FUNCTION_MAX: "max",
    rules_pb2.AGGREGATE_FUNCTION_MIN: "min",
    rules_pb2.AGGREGATE_FUNCTION_MEDIAN: "median",
    rules_pb2.AGGREGATE_FUNCTION_PERCENTILE: "percentile",
    rules_pb2.AGGREGATE_FUNCTION_SUM: "sum",
    rules_pb2.AGGREGATE_FUNCTION_MEAN: "mean",
    rules_pb2.AGGREGATE_FUNCTION_COUNT: "count",
    rules_pb2.AGGREGATE_FUNCTION_ANY_COUNT: "any_count",
    rules_pb2.AGGREGATE_FUNCTION_UNIQUE_COUNT: "unique_count",
}
_INTERVALS = {
    rules_pb2.AGGREGATE_FUNCTION_TIME_SINCE_LAST: "last",
    rules_pb2.AGGREGATE_FUNCTION_TIME_SINCE_FIRST: "first",
}
_EXCLUSIONS = {
    rules_pb2.AGGREGATE_EXCLUSION_CURRENT_RECORD: "record",
    rules_pb2.AGGREGATE_EXCLUSION_CURRENT_VALUE: "value",
}
_UNITS = {
    rules_pb2.INTERVAL_UNIT_SECONDS: "seconds",
    rules_pb2.INTERVAL_UNIT_MINUTES: "minutes",
    rules_pb2.INTERVAL_UNIT_HOURS: "hours",
    rules_pb2.INTERVAL_UNIT_DAYS: "days",
}
_UNIT_SECONDS = {"days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}
_FILTER_OPS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
UPDATABLE_AGGREGATE_FIELDS = (
    "display_name",
    "description",
    "event_kind",
    "key_attributes",
    "elements",
    "parameters",
    "backfill",
)


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def render_filter(spec: Mapping[str, Any]) -> str:
    """A structured element filter (``{all: [...], any: [...]}``) as the equivalent
    expression, the form the API shows."""

    def cond(c: Mapping[str, Any]) -> str:
        attr = c["attr"]
        for op, sym in _FILTER_OPS.items():
            if op in c:
                return f"{attr} {sym} {_literal(c[op])}"
        if "in" in c:
            return f"{attr} in [{', '.join(_literal(v) for v in c['in'])}]"
        if "not_in" in c:
            return f"not ({attr} in [{', '.join(_literal(v) for v in c['not_in'])}])"
        return f"{attr} {'!=' if c.get('exists') else '=='} null"

    parts = [cond(c) for c in spec.get("all", [])]
    anys = [cond(c) for c in spec.get("any", [])]
    if anys:
        parts.append("(" + " or ".join(anys) + ")" if len(anys) > 1 else anys[0])
    return " and ".join(parts)


def _window_spec(
    last: duration_pb2.Duration | None, skip: duration_pb2.Duration | None, field: str
) -> dict[str, Any] | None:
    seconds = {}
    for name, d, sub in (("last", last, "window"), ("skip", skip, "window_offset")):
        if d is None:
            continue
        if d.nanos or d.seconds <= 0 or d.seconds > 3_660 * 86_400:
            raise InvalidArgumentError("whole seconds, 1 s .. 3660 days", field=f"{field}.{sub}")
        seconds[name] = d.seconds
    if not seconds:
        return None
    unit = next(u for u, n in _UNIT_SECONDS.items() if all(v % n == 0 for v in seconds.values()))
    return {"unit": unit, **{k: v // _UNIT_SECONDS[unit] for k, v in seconds.items()}}


def _window_proto(spec: Mapping[str, Any] | None, out: rules_pb2.AggregateParameter) -> None:
    if not spec:
        return
    n = _UNIT_SECONDS[spec.get("unit", "days")]
    if spec.get("last") is not None:
        out.window.seconds = int(spec["last"]) * n
    if spec.get("skip"):
        out.window_offset.seconds = int(spec["skip"]) * n


def _key_kind(normalizations: Iterable[int], field: str) -> str:
    given = set(normalizations)
    for n in given:
        if n not in rules_pb2.Normalization.values():
            raise InvalidArgumentError(f"unknown Normalization value {n}", field=field)
    if rules_pb2.NORMALIZATION_TRANSLITERATE in given:
        raise InvalidArgumentError("TRANSLITERATE is not served in this release", field=field)
    if rules_pb2.NORMALIZATION_PHONE_E164 in given:
        return "phone"
    if given & {rules_pb2.NORMALIZATION_DIGITS_ONLY, rules_pb2.NORMALIZATION_STRIP_PUNCTUATION}:
        return "alnum"
    return "text"


def _element_from_proto(
    e: rules_pb2.AggregateElement, ef: str, old: Mapping[str, Any]
) -> dict[str, Any]:
    if not ELEMENT_ID_RE.match(e.element_id):
        raise InvalidArgumentError(
            "1..64 characters of [A-Za-z0-9_], starting with a letter", field=f"{ef}.element_id"
        )
    if e.kind == rules_pb2.AGGREGATE_ELEMENT_KIND_UNSPECIFIED:
        raise InvalidArgumentError("required", field=f"{ef}.kind")
    out: dict[str, Any] = {
        "name": e.element_id,
        "description": e.description,
        "kind": _enum_suffix(
            e.kind, rules_pb2.AggregateElementKind, "AGGREGATE_ELEMENT_KIND_", f"{ef}.kind"
        ).lower(),
    }
    if e.source_attribute:
        out["attr"] = e.source_attribute
    if e.value_type != rules_pb2.VALUE_TYPE_UNSPECIFIED:
        out["type"] = _enum_suffix(
            e.value_type, rules_pb2.ValueType, "VALUE_TYPE_", f"{ef}.value_type"
        ).lower()
    kept = old.get(e.element_id, {}).get("filter")
    if kept is not None and render_filter(kept) == e.filter:
        out["filter"] = kept  # unchanged: keep the structured form (no document parse)
    elif e.filter.strip():
        out["filter_expr"] = e.filter
    for name, proto_name, value in (
        ("max_records", "max_records", e.max_records),
        ("max_days", "max_age_days", e.max_age_days),
    ):
        if value < 0:
            raise InvalidArgumentError("must be >= 0", field=f"{ef}.{proto_name}")
        if value:
            out[name] = value
    if e.bucket != rules_pb2.BUCKET_GRANULARITY_UNSPECIFIED:
        out["bucket"] = _enum_suffix(
            e.bucket, rules_pb2.BucketGranularity, "BUCKET_GRANULARITY_", f"{ef}.bucket"
        ).lower()
    return out


def _search(values: list[str]) -> dict[str, Any]:
    if not values:
        return {"any": True}
    return {"equal": values[0]} if len(values) == 1 else {"in": values}


def _param_from_proto(
    p: rules_pb2.AggregateParameter, pf: str, aggregate_id: str
) -> dict[str, Any]:
    if not PARAM_NAME_RE.match(p.name):
        raise InvalidArgumentError(
            "1..64 characters of [A-Za-z0-9_], starting with a letter", field=f"{pf}.name"
        )
    window = _window_spec(
        p.window if p.HasField("window") else None,
        p.window_offset if p.HasField("window_offset") else None,
        pf,
    )
    param: dict[str, Any]
    if p.function in _AGG_FUNCTIONS:
        param = {"fn": "calc_aggregate", "agg": _AGG_FUNCTIONS[p.function]}
        if p.function == rules_pb2.AGGREGATE_FUNCTION_PERCENTILE:
            param["p"] = p.percentile
    elif p.function in _INTERVALS:
        if p.interval_unit not in (*_UNITS, rules_pb2.INTERVAL_UNIT_UNSPECIFIED):
            raise InvalidArgumentError(
                f"unknown IntervalUnit value {p.interval_unit}", field=f"{pf}.interval_unit"
            )
        param = {
            "fn": "calc_interval",
            "unit": _UNITS.get(p.interval_unit, "days"),
            "search": _search(list(p.match_values)),
        }
        if _INTERVALS[p.function] == "first":
            param["which"] = "first"
    else:
        raise InvalidArgumentError(
            "required"
            if p.function == rules_pb2.AGGREGATE_FUNCTION_UNSPECIFIED
            else f"unknown AggregateFunction value {p.function}",
            field=f"{pf}.function",
        )
    if p.exclusion not in (*_EXCLUSIONS, rules_pb2.AGGREGATE_EXCLUSION_UNSPECIFIED):
        raise InvalidArgumentError(
            f"unknown AggregateExclusion value {p.exclusion}", field=f"{pf}.exclusion"
        )
    param.update(name=p.name, object=aggregate_id, element=p.element_id)
    if window is not None:
        param["window"] = window
    if p.exclusion in _EXCLUSIONS:
        param["except"] = _EXCLUSIONS[p.exclusion]
    return param


def aggregate_from_proto(
    aggregate_id: str,
    msg: rules_pb2.AggregateDefinition,
    current: AggregateDefinition | None = None,
) -> AggregateDefinition:
    """The domain definition of ``msg`` (output-only fields ignored). An element whose
    filter text is unchanged from ``current``'s rendering keeps its structured form."""
    f = "aggregate_definition"
    if msg.event_kind == common_pb2.EVENT_KIND_UNSPECIFIED:
        raise InvalidArgumentError("required", field=f"{f}.event_kind")
    if msg.event_kind != common_pb2.EVENT_KIND_APPLICATION:
        raise InvalidArgumentError(
            "only EVENT_KIND_APPLICATION is served in this release", field=f"{f}.event_kind"
        )
    if not msg.key_attributes:
        raise InvalidArgumentError("at least one", field=f"{f}.key_attributes")
    if not msg.elements:
        raise InvalidArgumentError("at least one", field=f"{f}.elements")
    key = [
        {
            "attr": k.attribute,
            "kind": _key_kind(k.normalizations, f"{f}.key_attributes[{i}].normalizations"),
        }
        for i, k in enumerate(msg.key_attributes)
    ]
    old = {e["name"]: e for e in (current.spec["elements"] if current else [])}
    elements = [
        _element_from_proto(e, f"{f}.elements[{i}]", old) for i, e in enumerate(msg.elements)
    ]
    params = [
        _param_from_proto(p, f"{f}.parameters[{i}]", aggregate_id)
        for i, p in enumerate(msg.parameters)
    ]
    return AggregateDefinition(
        aggregate_id=aggregate_id,
        spec={
            "name": aggregate_id,
            "description": msg.description,
            "key": key,
            "elements": elements,
        },
        params=tuple(params),
        display_name=msg.display_name,
        event_kind="APPLICATION",
    )


def _param_to_proto(p: Mapping[str, Any]) -> rules_pb2.AggregateParameter:
    out = rules_pb2.AggregateParameter(name=p["name"], element_id=p["element"])
    if p["fn"] == "calc_aggregate":
        out.function = rules_pb2.AggregateFunction.Value(f"AGGREGATE_FUNCTION_{p['agg'].upper()}")
        if p.get("p") is not None:
            out.percentile = float(p["p"])
    else:
        which = p.get("which", "last")
        out.function = rules_pb2.AggregateFunction.Value(
            f"AGGREGATE_FUNCTION_TIME_SINCE_{which.upper()}"
        )
        out.interval_unit = rules_pb2.IntervalUnit.Value(
            f"INTERVAL_UNIT_{p.get('unit', 'days').upper()}"
        )
        search = p.get("search", {})
        if "equal" in search:
            out.match_values.append(str(search["equal"]))
        out.match_values.extend(str(v) for v in search.get("in", []))
    _window_proto(p.get("window"), out)
    if p.get("except", "none") != "none":
        out.exclusion = rules_pb2.AggregateExclusion.Value(
            f"AGGREGATE_EXCLUSION_CURRENT_{p['except'].upper()}"
        )
    return out


def aggregate_to_proto(
    d: AggregateDefinition,
    serving_version: int = 0,
    failure: str | None = None,
) -> rules_pb2.AggregateDefinition:
    """The proto of a definition, with the state of the live aggregates."""
    out = rules_pb2.AggregateDefinition(
        name=f"aggregateDefinitions/{d.aggregate_id}",
        display_name=d.display_name,
        description=d.spec.get("description", ""),
        event_kind=common_pb2.EventKind.Value(f"EVENT_KIND_{d.event_kind}"),
        key_attributes=[
            rules_pb2.KeyAttribute(
                attribute=k["attr"], normalizations=_KEY_NORMALIZATIONS[k.get("kind", "text")]
            )
            for k in d.spec["key"]
        ],
        parameters=[_param_to_proto(p) for p in d.params],
        version=d.version,
        update_author=d.update_author,
        change_reason=d.change_reason,
        etag=d.etag,
        serving_version=serving_version,
    )
    for e in d.spec["elements"]:
        el = out.elements.add(
            element_id=e["name"],
            description=e.get("description", ""),
            kind=rules_pb2.AggregateElementKind.Value(
                f"AGGREGATE_ELEMENT_KIND_{e['kind'].upper()}"
            ),
            source_attribute=e.get("attr", ""),
            max_records=e.get("max_records", 0),
            max_age_days=e.get("max_days", 0),
        )
        if "type" in e:
            el.value_type = rules_pb2.ValueType.Value(f"VALUE_TYPE_{e['type'].upper()}")
        if "bucket" in e:
            el.bucket = rules_pb2.BucketGranularity.Value(
                f"BUCKET_GRANULARITY_{e['bucket'].upper()}"
            )
        if e.get("filter_expr"):
            el.filter = e["filter_expr"]
        elif e.get("filter"):
            el.filter = render_filter(e["filter"])
    if serving_version == d.version:
        out.state_status = rules_pb2.AGGREGATE_STATE_STATUS_SERVING
    elif failure is not None:
        out.state_status = rules_pb2.AGGREGATE_STATE_STATUS_FAILED
        out.state_detail = failure
    else:
        out.state_status = rules_pb2.AGGREGATE_STATE_STATUS_REBUILDING
    if d.create_time:
        out.create_time.FromDatetime(d.create_time)
    if d.update_time:
        out.update_time.FromDatetime(d.update_time)
    return out


def _aggregate_version_from(name: str, field: str) -> tuple[str, int]:
    match = re.fullmatch(
        r"aggregateDefinitions/([A-Za-z0-9_-]{1,64})/versions/([1-9][0-9]{0,17})", name
    )
    if not match:
        raise InvalidArgumentError(
            "must be aggregateDefinitions/{aggregate_id}/versions/{version}", field=field
        )
    return match.group(1), int(match.group(2))


def _aggregate_id_from(name: str, field: str) -> str:
    prefix = "aggregateDefinitions/"
    if not name:
        raise InvalidArgumentError("required", field=field)
    if not name.startswith(prefix) or not AGGREGATE_ID_RE.match(name[len(prefix) :]):
        raise InvalidArgumentError(
            "must be aggregateDefinitions/{id}, id of [A-Za-z0-9_-]", field=field
        )
    return name[len(prefix) :]


def _merge_aggregate(
    current: AggregateDefinition, incoming: rules_pb2.AggregateDefinition, paths: list[str]
) -> AggregateDefinition:
    """``current`` with the fields named by ``paths`` taken from ``incoming``."""
    if not paths:
        raise InvalidArgumentError("required: the fields to update", field="update_mask")
    if "*" in paths:
        paths = list(UPDATABLE_AGGREGATE_FIELDS)
    for i, path in enumerate(paths):
        if path not in UPDATABLE_AGGREGATE_FIELDS:
            raise InvalidArgumentError(
                f"{path!r} is not an updatable field of AggregateDefinition",
                field=f"update_mask.paths[{i}]",
            )
    merged = aggregate_to_proto(current)
    for path in paths:
        if path == "backfill":
            continue
        merged.ClearField(path)  # type: ignore[arg-type]
        value = getattr(incoming, path)
        if isinstance(value, (str, int)):
            setattr(merged, path, value)
        else:
            getattr(merged, path).extend(value)
    candidate = aggregate_from_proto(current.aggregate_id, merged, current)
    return replace(
        candidate,
        version=current.version,
        create_time=current.create_time,
    )


def aggregate_version_to_proto(
    v: AggregateVersion, serving_version: int = 0
) -> rules_pb2.AggregateDefinitionVersion:
    """The proto of an aggregate definition's version."""
    out = rules_pb2.AggregateDefinitionVersion(
        name=f"aggregateDefinitions/{v.definition.aggregate_id}/versions/{v.version}",
        version=v.version,
        aggregate_definition=aggregate_to_proto(v.definition, serving_version),
        change=rules_pb2.VersionChange.Value(f"VERSION_CHANGE_{v.change.value}"),
        restored_from_version=v.restored_from_version,
        author=v.author,
        change_reason=v.change_reason,
    )
    out.create_time.FromDatetime(v.create_time)
    return out


# --- filters of the List methods (AIP-160 subset, lendgate.listfilter) ------------

RULE_FILTER = {
    "status": "enum:RULE_STATUS_",
    "event_kind": "enum:EVENT_KIND_",
    "tags": "strs",
    "source_pack": "str",
    "display_name": "str",
    "update_time": "time",
}
VERSION_FILTER = {"author": "str", "change": "enum:VERSION_CHANGE_", "create_time": "time"}
LIST_FILTER = {
    "type": "enum:LIST_TYPE_",
    "entry_kind": "enum:LIST_ENTRY_KIND_",
    "tags": "strs",
    "display_name": "str",
}
ENTRY_FILTER = {"value": "str", "expire_time": "time", "create_time": "time"}
AGGREGATE_FILTER = {
    "event_kind": "enum:EVENT_KIND_",
    "display_name": "str",
    "update_time": "time",
}
AGGREGATE_VERSION_FILTER = {"author": "str", "change": "enum:VERSION_CHANGE_"}


def _rule_fields(r: Rule) -> Fields:
    return {
        "status": r.status.value,
        "event_kind": r.event_kind.value,
        "tags": r.tags,
        "source_pack": r.source_pack,
        "display_name": r.display_name,
        "update_time": r.update_time,
    }


def _list_fields(d: ListDefinition) -> Fields:
    return {
        "type": d.type.value,
        "entry_kind": d.entry_kind.value,
        "tags": d.tags,
        "display_name": d.display_name,
    }


# --- idempotency ------------------------------------------------------------------


class FirstAnswers:
    """The first successful answer of each (partner, method, request_id), kept in the
    store's idempotency table (so a retry after a restart, or to another server on the
    same database, gets it too; purged with the events' retention).

    The stored answer is prefixed by a SHA-256 of the request: the same id with another
    request is refused (``REQUEST_ID_REUSED``). Calls with one key in flight in this
    process wait for each other. A failed call is not remembered and may be retried; a
    call whose change succeeded but whose answer could not be stored is not remembered
    either (its retry meets the change: e.g. ``ALREADY_EXISTS``).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._inflight: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    async def run(
        self, method: str, request: message.Message, make: Callable[[], Awaitable[M]]
    ) -> M:
        """``make()``'s answer, or the one remembered for the request's ``request_id``."""
        request_id: str = getattr(request, "request_id", "")
        if not request_id:
            return await make()
        if len(request_id) > MAX_REQUEST_ID:
            raise InvalidArgumentError(f"at most {MAX_REQUEST_ID} characters", field="request_id")
        key = f"rule-admin/{current_partner().partner_id}/{method}/{request_id}"
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        lock = self._inflight.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                found = await self._store.recall_answer(key)
                if found is not None:
                    recalled: M = self._kept(method, request_id, digest, found[1])
                    return recalled
                answer = await make()
                kept = await self._store.remember_answer(
                    key, method, digest + answer.SerializeToString()
                )
                first: M = self._kept(method, request_id, digest, kept)
                return first
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._inflight[key]

    @staticmethod
    def _kept(method: str, request_id: str, digest: bytes, stored: bytes) -> Any:
        if stored[:32] != digest:
            raise InvalidArgumentError(
                f"request_id {request_id!r} was used for another request",
                field="request_id",
                reason="REQUEST_ID_REUSED",
            )
        return getattr(rules_pb2, f"{method}Response").FromString(stored[32:])


# --- the servicer -----------------------------------------------------------------


def _requested_scope(value: int, partner: str, field: str) -> str:
    if value in (rules_pb2.DEFINITION_SCOPE_UNSPECIFIED, rules_pb2.DEFINITION_SCOPE_CONSORTIUM):
        return CONSORTIUM
    if value == rules_pb2.DEFINITION_SCOPE_PARTNER:
        return partner
    raise InvalidArgumentError(f"unknown DefinitionScope value {value}", field=field)


def settings_to_proto(s: ScoringSettings) -> rules_pb2.ScoringSettings:
    """The proto of the scoring settings (with the server's fixed review thresholds)."""
    out = rules_pb2.ScoringSettings(
        name="scoringSettings",
        zone_threshold=s.zone_threshold,
        review_threshold=_core.REVIEW_THRESHOLD,
        model_decline_score=_core.MODEL_DECLINE_SCORE,
        model_review_score=_core.MODEL_REVIEW_SCORE,
        version=s.version,
        update_author=s.update_author,
        change_reason=s.change_reason,
        etag=s.etag,
    )
    if s.update_time:
        out.update_time.FromDatetime(s.update_time)
    return out


class RuleAdminServicer:
    """Implements ``lendgate.v1.RuleAdminService``."""

    def __init__(self, scoring: ScoringService, admins: frozenset[str] | None = None) -> None:
        """``admins``: the partners allowed to change the consortium's rules, lists and
        settings; ``None`` lets every authenticated partner (development mode only)."""
        self.scoring = scoring
        self.admin = scoring.admin
        self.answers = FirstAnswers(scoring.store)
        self.admins = admins

    async def _ready(self) -> str:
        """The caller's partner id, once the configuration is loaded from the store."""
        await self.scoring.recover()
        return current_partner().partner_id

    def _may_change(self, scope: str) -> None:
        # The consortium's pack serves every partner: a change affects everyone's
        # checks, so only its administrators (the bureau operator) may make one. A
        # private scope is only ever resolved for its own partner.
        partner = current_partner().partner_id
        if scope == CONSORTIUM and self.admins is not None and partner not in self.admins:
            raise PermissionDeniedError(
                f"partner {partner!r} may not change the consortium rule pack"
                " (setting 'rule_admins')"
            )

    async def _run(
        self, method: str, request: message.Message, make: Callable[[], Awaitable[M]]
    ) -> M:
        """``make()`` with ``request_id`` idempotency, then the scoring recompiled."""
        answer = await self.answers.run(method, request, make)
        self.scoring.recompile()
        return answer

    @staticmethod
    def _author() -> str:
        return current_partner().partner_id

    # rules

    async def CreateRule(
        self, request: rules_pb2.CreateRuleRequest, context: Ctx
    ) -> rules_pb2.CreateRuleResponse:
        partner = await self._ready()
        scope = _requested_scope(request.rule.scope, partner, "rule.scope")
        self._may_change(scope)

        async def make() -> rules_pb2.CreateRuleResponse:
            rule_id = _required_id(request.rule_id, "rule_id")
            rule = rule_from_proto(rule_id, request.rule)
            if request.validate_only:
                self.admin.check_new_rule_id(scope, rule_id)
                if _exists(self.admin.book(scope), rule_id):
                    raise AlreadyExistsError(f"rule {rule_id!r} already exists")
                candidate = replace(rule, version=1)
                validate(candidate)
                return rules_pb2.CreateRuleResponse(rule=rule_to_proto(candidate, scope))
            created = await self.admin.create_rule(
                scope, rule, author=self._author(), reason=request.change_reason
            )
            return rules_pb2.CreateRuleResponse(rule=rule_to_proto(created, scope))

        return await self._run("CreateRule", request, make)

    async def GetRule(
        self, request: rules_pb2.GetRuleRequest, context: Ctx
    ) -> rules_pb2.GetRuleResponse:
        partner = await self._ready()
        rule_id = _id_from(request.name, "rules", "name")
        scope = self.admin.rule_scope(partner, rule_id)
        rule = self.admin.book(scope).get(rule_id)
        return rules_pb2.GetRuleResponse(rule=rule_to_proto(rule, scope))

    async def ListRules(
        self, request: rules_pb2.ListRulesRequest, context: Ctx
    ) -> rules_pb2.ListRulesResponse:
        """The consortium's and the caller's rules by id, those ``filter`` selects."""
        partner = await self._ready()
        size = _page_size(request.page_size, DEFAULT_RULE_PAGE, MAX_PAGE)
        wanted = compile_filter(request.filter, RULE_FILTER)
        rules = [
            (scope, r)
            for scope, r in self.admin.visible_rules(partner)
            if r.rule_id > request.page_token and wanted(_rule_fields(r))
        ]
        page = rules[:size]
        token = page[-1][1].rule_id if len(rules) > size else ""
        return rules_pb2.ListRulesResponse(
            rules=[rule_to_proto(r, scope) for scope, r in page], next_page_token=token
        )

    async def UpdateRule(
        self, request: rules_pb2.UpdateRuleRequest, context: Ctx
    ) -> rules_pb2.UpdateRuleResponse:
        partner = await self._ready()
        rule_id = _id_from(request.rule.name, "rules", "rule.name")
        scope = self.admin.rule_scope(partner, rule_id)
        self._may_change(scope)

        async def make() -> rules_pb2.UpdateRuleResponse:
            if not request.rule.etag:
                raise InvalidArgumentError("required: the etag last read", field="rule.etag")
            current = self.admin.book(scope).get(rule_id)
            merged = _merge(current, request.rule, list(request.update_mask.paths))
            if request.validate_only:
                if request.rule.etag != current.etag:
                    raise AbortedError(
                        f"rule {rule_id!r} changed since it was read", reason="ETAG_MISMATCH"
                    )
                candidate = replace(merged, version=current.version + 1)
                validate(candidate)
                return rules_pb2.UpdateRuleResponse(rule=rule_to_proto(candidate, scope))
            updated = await self.admin.update_rule(
                scope,
                merged,
                etag=request.rule.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            return rules_pb2.UpdateRuleResponse(rule=rule_to_proto(updated, scope))

        return await self._run("UpdateRule", request, make)

    async def DeleteRule(
        self, request: rules_pb2.DeleteRuleRequest, context: Ctx
    ) -> rules_pb2.DeleteRuleResponse:
        partner = await self._ready()
        rule_id = _id_from(request.name, "rules", "name")
        scope = self.admin.rule_scope(partner, rule_id)
        self._may_change(scope)

        async def make() -> rules_pb2.DeleteRuleResponse:
            if not request.etag:
                raise InvalidArgumentError("required: the etag last read", field="etag")
            version = await self.admin.delete_rule(
                scope,
                rule_id,
                etag=request.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            return rules_pb2.DeleteRuleResponse(version=version_to_proto(version, scope))

        return await self._run("DeleteRule", request, make)

    async def ListRuleVersions(
        self, request: rules_pb2.ListRuleVersionsRequest, context: Ctx
    ) -> rules_pb2.ListRuleVersionsResponse:
        """Versions newest first, those ``filter`` selects."""
        partner = await self._ready()
        rule_id = _id_from(request.parent, "rules", "parent")
        scope = self.admin.rule_scope(partner, rule_id)
        size = _page_size(request.page_size, DEFAULT_VERSION_PAGE, MAX_PAGE)
        wanted = compile_filter(request.filter, VERSION_FILTER)
        versions = [
            v
            for v in self.admin.book(scope).versions(rule_id)
            if wanted({"author": v.author, "change": v.change.value, "create_time": v.create_time})
        ]
        if request.page_token:
            if not request.page_token.isdigit():
                raise InvalidArgumentError("not a token this method gave", field="page_token")
            before = int(request.page_token)
            versions = [v for v in versions if v.version < before]
        page = versions[:size]
        token = str(page[-1].version) if len(versions) > size else ""
        return rules_pb2.ListRuleVersionsResponse(
            versions=[version_to_proto(v, scope) for v in page], next_page_token=token
        )

    async def GetRuleVersion(
        self, request: rules_pb2.GetRuleVersionRequest, context: Ctx
    ) -> rules_pb2.GetRuleVersionResponse:
        partner = await self._ready()
        rule_id, number = _version_from(request.name, "name")
        scope = self.admin.rule_scope(partner, rule_id)
        version = self.admin.book(scope).version(rule_id, number)
        return rules_pb2.GetRuleVersionResponse(version=version_to_proto(version, scope))

    async def RestoreRuleVersion(
        self, request: rules_pb2.RestoreRuleVersionRequest, context: Ctx
    ) -> rules_pb2.RestoreRuleVersionResponse:
        partner = await self._ready()
        rule_id, number = _version_from(request.name, "name")
        scope = self.admin.rule_scope(partner, rule_id)
        self._may_change(scope)

        async def make() -> rules_pb2.RestoreRuleVersionResponse:
            restored = await self.admin.restore_rule(
                scope,
                rule_id,
                number,
                etag=request.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            return rules_pb2.RestoreRuleVersionResponse(rule=rule_to_proto(restored, scope))

        return await self._run("RestoreRuleVersion", request, make)

    # lists

    def _list_proto(self, scope: str, list_id: str) -> rules_pb2.List:
        lists = self.admin.lists(scope)
        return list_to_proto(lists.get(list_id), lists.entry_count(list_id), scope)

    async def _list_scope(self, name: str, field: str) -> tuple[str, str]:
        """(scope, list_id) of a list name as the caller sees it."""
        partner = await self._ready()
        list_id = _id_from(name, "lists", field)
        return self.admin.list_scope(partner, list_id), list_id

    async def CreateList(
        self, request: rules_pb2.CreateListRequest, context: Ctx
    ) -> rules_pb2.CreateListResponse:
        partner = await self._ready()
        scope = _requested_scope(request.list.scope, partner, "list.scope")
        self._may_change(scope)

        async def make() -> rules_pb2.CreateListResponse:
            list_id = _required_id(request.list_id, "list_id")
            definition = list_from_proto(list_id, request.list)
            await self.admin.create_list(
                scope, definition, author=self._author(), reason=request.change_reason
            )
            return rules_pb2.CreateListResponse(list=self._list_proto(scope, list_id))

        return await self._run("CreateList", request, make)

    async def GetList(
        self, request: rules_pb2.GetListRequest, context: Ctx
    ) -> rules_pb2.GetListResponse:
        scope, list_id = await self._list_scope(request.name, "name")
        return rules_pb2.GetListResponse(list=self._list_proto(scope, list_id))

    async def ListLists(
        self, request: rules_pb2.ListListsRequest, context: Ctx
    ) -> rules_pb2.ListListsResponse:
        """The consortium's and the caller's lists by id, those ``filter`` selects."""
        partner = await self._ready()
        size = _page_size(request.page_size, DEFAULT_RULE_PAGE, MAX_PAGE)
        wanted = compile_filter(request.filter, LIST_FILTER)
        found = [
            (scope, d.list_id)
            for scope, d in self.admin.visible_lists(partner)
            if d.list_id > request.page_token and wanted(_list_fields(d))
        ]
        page = found[:size]
        token = page[-1][1] if len(found) > size else ""
        return rules_pb2.ListListsResponse(
            lists=[self._list_proto(scope, i) for scope, i in page], next_page_token=token
        )

    async def UpdateList(
        self, request: rules_pb2.UpdateListRequest, context: Ctx
    ) -> rules_pb2.UpdateListResponse:
        scope, list_id = await self._list_scope(request.list.name, "list.name")
        self._may_change(scope)

        async def make() -> rules_pb2.UpdateListResponse:
            if not request.list.etag:
                raise InvalidArgumentError("required: the etag last read", field="list.etag")
            current = self.admin.lists(scope).get(list_id)
            merged = _merge_list(current, request.list, list(request.update_mask.paths))
            await self.admin.update_list(
                scope,
                merged,
                etag=request.list.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            return rules_pb2.UpdateListResponse(list=self._list_proto(scope, list_id))

        return await self._run("UpdateList", request, make)

    async def DeleteList(
        self, request: rules_pb2.DeleteListRequest, context: Ctx
    ) -> rules_pb2.DeleteListResponse:
        scope, list_id = await self._list_scope(request.name, "name")
        self._may_change(scope)

        async def make() -> rules_pb2.DeleteListResponse:
            if not request.etag:
                raise InvalidArgumentError("required: the etag last read", field="etag")
            await self.admin.delete_list(
                scope,
                list_id,
                etag=request.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            return rules_pb2.DeleteListResponse()

        return await self._run("DeleteList", request, make)

    async def AddListEntries(
        self, request: rules_pb2.AddListEntriesRequest, context: Ctx
    ) -> rules_pb2.AddListEntriesResponse:
        scope, list_id = await self._list_scope(request.name, "name")
        self._may_change(scope)

        async def make() -> rules_pb2.AddListEntriesResponse:
            definition = self.admin.lists(scope).get(list_id)
            if not 1 <= len(request.entries) <= MAX_ENTRIES_PER_CALL:
                raise InvalidArgumentError(
                    f"1..{MAX_ENTRIES_PER_CALL} entries (ImportListEntries is for more)",
                    field="entries",
                )
            rows = _entry_rows(request.entries)
            # Check every value first, so that a bad one changes nothing.
            bad = [
                FieldViolation(f"entries[{i}].value", why)
                for i, why in _invalid_values(definition.entry_kind.value, rows)
            ]
            if bad:
                raise InvalidArgumentError(
                    f"{len(bad)} entries are not valid {definition.entry_kind.value} values",
                    violations=bad,
                )
            result = await self.admin.write_entries(scope, list_id, rows, author=self._author())
            return rules_pb2.AddListEntriesResponse(
                added_count=result.added,
                replaced_count=result.replaced,
                list=self._list_proto(scope, list_id),
            )

        return await self._run("AddListEntries", request, make)

    async def RemoveListEntries(
        self, request: rules_pb2.RemoveListEntriesRequest, context: Ctx
    ) -> rules_pb2.RemoveListEntriesResponse:
        scope, list_id = await self._list_scope(request.name, "name")
        self._may_change(scope)

        async def make() -> rules_pb2.RemoveListEntriesResponse:
            if not 1 <= len(request.values) <= MAX_ENTRIES_PER_CALL:
                raise InvalidArgumentError(f"1..{MAX_ENTRIES_PER_CALL} values", field="values")
            removed = await self.admin.remove_entries(
                scope, list_id, list(request.values), author=self._author()
            )
            return rules_pb2.RemoveListEntriesResponse(
                removed_count=removed, list=self._list_proto(scope, list_id)
            )

        return await self._run("RemoveListEntries", request, make)

    async def ListListEntries(
        self, request: rules_pb2.ListListEntriesRequest, context: Ctx
    ) -> rules_pb2.ListListEntriesResponse:
        """Live entries ordered by value, those ``filter`` selects (a filter scans the
        list from the page token on until the page is full)."""
        scope, list_id = await self._list_scope(request.parent, "parent")
        size = _page_size(request.page_size, DEFAULT_ENTRY_PAGE, MAX_ENTRY_PAGE)
        wanted = compile_filter(request.filter, ENTRY_FILTER)
        lists = self.admin.lists(scope)
        entries: list[ListEntry] = []
        after = request.page_token or None
        while len(entries) <= size:
            chunk = lists.entries(list_id, limit=max(size + 1, 10_000), after=after)
            entries += [
                e
                for e in chunk
                if not request.filter
                or wanted(
                    {"value": e.value, "expire_time": e.expire_time, "create_time": e.create_time}
                )
            ]
            if len(chunk) < max(size + 1, 10_000):
                break
            after = chunk[-1].value
        page = entries[:size]
        token = page[-1].value if len(entries) > size else ""
        return rules_pb2.ListListEntriesResponse(
            entries=[entry_to_proto(e) for e in page], next_page_token=token
        )

    @raw_request
    async def ImportListEntries(
        self, requests: AsyncIterator[bytes], context: Ctx
    ) -> rules_pb2.ImportListEntriesResponse:
        """Collect the whole stream, then apply it as one change (one new version).
        The list, the caller's right to change it and the mode are checked on the first
        message, before the rest is read. The messages are kept serialized: the Rust
        core decodes their entries (a million entries make no Python objects)."""
        first: rules_pb2.ImportListEntriesRequest | None = None
        chunks: list[bytes] = []
        size = 0
        scope, list_id = CONSORTIUM, ""
        async for chunk in requests:
            size += len(chunk)
            if size > MAX_IMPORT_BYTES:
                raise InvalidArgumentError(
                    f"an import carries at most {MAX_IMPORT_BYTES // 2**20} MiB; split it",
                    field="entries",
                )
            if first is None:
                first = parse_request(rules_pb2.ImportListEntriesRequest, chunk)
                scope, list_id = await self._list_scope(first.name, "name")
                self._may_change(scope)
                if first.mode not in rules_pb2.ImportMode.values():
                    raise InvalidArgumentError(
                        f"unknown ImportMode value {first.mode}", field="mode"
                    )
            chunks.append(chunk)
        if first is None:
            raise InvalidArgumentError("the stream carried no message", field="name")
        replace_all = first.mode == rules_pb2.IMPORT_MODE_REPLACE
        request = rules_pb2.ImportListEntriesRequest(
            request_id=first.request_id, name=first.name, mode=first.mode
        )

        async def make() -> rules_pb2.ImportListEntriesResponse:
            result = await self.admin.import_entries(
                scope,
                list_id,
                chunks,
                author=self._author(),
                reason="import",
                replace_all=replace_all,
            )
            return rules_pb2.ImportListEntriesResponse(
                received_count=result.received,
                rejected_count=len(result.rejected),
                rejections=[
                    common_pb2.FieldViolation(field=f"entries[{i}].value", description=why)
                    for i, why in result.rejected[:100]
                ],
                list=self._list_proto(scope, list_id),
            )

        # The idempotency key covers the import's head (name, mode), not its content.
        return await self._run("ImportListEntries", request, make)

    # aggregate definitions

    def _aggregate_proto(self, d: AggregateDefinition) -> rules_pb2.AggregateDefinition:
        serving = self.scoring.aggregate_state.versions.get(d.aggregate_id, 0)
        failed = self.scoring.aggregate_rebuild_error
        wanted = self.admin.aggregate_state()
        failure = failed[1] if failed is not None and failed[0] == wanted.digest else None
        return aggregate_to_proto(d, serving, failure)

    def _aggregate_changed(self) -> None:
        """Start bringing the live state to the stored definitions (background)."""
        self.scoring.rebuild_aggregates()

    async def CreateAggregateDefinition(
        self, request: rules_pb2.CreateAggregateDefinitionRequest, context: Ctx
    ) -> rules_pb2.CreateAggregateDefinitionResponse:
        await self._ready()
        self._may_change(CONSORTIUM)

        async def make() -> rules_pb2.CreateAggregateDefinitionResponse:
            if not AGGREGATE_ID_RE.match(request.aggregate_id):
                raise InvalidArgumentError(
                    "1..64 characters of [A-Za-z0-9_-]" if request.aggregate_id else "required",
                    field="aggregate_id",
                )
            d = aggregate_from_proto(request.aggregate_id, request.aggregate_definition)
            created = await self.admin.create_aggregate(
                d,
                author=self._author(),
                reason=request.change_reason,
                validate_only=request.validate_only,
            )
            if not request.validate_only:
                self._aggregate_changed()
            return rules_pb2.CreateAggregateDefinitionResponse(
                aggregate_definition=self._aggregate_proto(created)
            )

        return await self._run("CreateAggregateDefinition", request, make)

    async def GetAggregateDefinition(
        self, request: rules_pb2.GetAggregateDefinitionRequest, context: Ctx
    ) -> rules_pb2.GetAggregateDefinitionResponse:
        await self._ready()
        aggregate_id = _aggregate_id_from(request.name, "name")
        return rules_pb2.GetAggregateDefinitionResponse(
            aggregate_definition=self._aggregate_proto(self.admin.aggregates.get(aggregate_id))
        )

    async def ListAggregateDefinitions(
        self, request: rules_pb2.ListAggregateDefinitionsRequest, context: Ctx
    ) -> rules_pb2.ListAggregateDefinitionsResponse:
        """Every live definition by id (they are the consortium's: every partner reads
        them)."""
        await self._ready()
        size = _page_size(request.page_size, DEFAULT_RULE_PAGE, MAX_PAGE)
        wanted = compile_filter(request.filter, AGGREGATE_FILTER)
        found = [
            self._aggregate_proto(d)
            for d in self.admin.aggregates.live()
            if d.aggregate_id > request.page_token
            and wanted(
                {
                    "event_kind": d.event_kind,
                    "display_name": d.display_name,
                    "update_time": d.update_time,
                }
            )
        ]
        page = found[:size]
        token = page[-1].name.split("/", 1)[1] if len(found) > size else ""
        return rules_pb2.ListAggregateDefinitionsResponse(
            aggregate_definitions=page, next_page_token=token
        )

    async def UpdateAggregateDefinition(
        self, request: rules_pb2.UpdateAggregateDefinitionRequest, context: Ctx
    ) -> rules_pb2.UpdateAggregateDefinitionResponse:
        await self._ready()
        aggregate_id = _aggregate_id_from(
            request.aggregate_definition.name, "aggregate_definition.name"
        )
        self._may_change(CONSORTIUM)

        async def make() -> rules_pb2.UpdateAggregateDefinitionResponse:
            if not request.aggregate_definition.etag:
                raise InvalidArgumentError(
                    "required: the etag last read", field="aggregate_definition.etag"
                )
            current = self.admin.aggregates.get(aggregate_id)
            merged = _merge_aggregate(
                current, request.aggregate_definition, list(request.update_mask.paths)
            )
            updated = await self.admin.update_aggregate(
                merged,
                etag=request.aggregate_definition.etag,
                author=self._author(),
                reason=request.change_reason,
                validate_only=request.validate_only,
            )
            if not request.validate_only:
                self._aggregate_changed()
            return rules_pb2.UpdateAggregateDefinitionResponse(
                aggregate_definition=self._aggregate_proto(updated)
            )

        return await self._run("UpdateAggregateDefinition", request, make)

    async def DeleteAggregateDefinition(
        self, request: rules_pb2.DeleteAggregateDefinitionRequest, context: Ctx
    ) -> rules_pb2.DeleteAggregateDefinitionResponse:
        await self._ready()
        aggregate_id = _aggregate_id_from(request.name, "name")
        self._may_change(CONSORTIUM)

        async def make() -> rules_pb2.DeleteAggregateDefinitionResponse:
            if not request.etag:
                raise InvalidArgumentError("required: the etag last read", field="etag")
            await self.admin.delete_aggregate(
                aggregate_id,
                etag=request.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            self._aggregate_changed()
            return rules_pb2.DeleteAggregateDefinitionResponse()

        return await self._run("DeleteAggregateDefinition", request, make)

    async def ListAggregateDefinitionVersions(
        self, request: rules_pb2.ListAggregateDefinitionVersionsRequest, context: Ctx
    ) -> rules_pb2.ListAggregateDefinitionVersionsResponse:
        """Versions newest first."""
        await self._ready()
        aggregate_id = _aggregate_id_from(request.parent, "parent")
        size = _page_size(request.page_size, DEFAULT_VERSION_PAGE, MAX_PAGE)
        wanted = compile_filter(request.filter, AGGREGATE_VERSION_FILTER)
        versions = [
            v
            for v in self.admin.aggregates.history(aggregate_id)
            if wanted({"author": v.author, "change": v.change.value})
        ]
        if request.page_token:
            if not request.page_token.isdigit():
                raise InvalidArgumentError("not a token this method gave", field="page_token")
            before = int(request.page_token)
            versions = [v for v in versions if v.version < before]
        page = versions[:size]
        token = str(page[-1].version) if len(versions) > size else ""
        serving = self.scoring.aggregate_state.versions.get(aggregate_id, 0)
        return rules_pb2.ListAggregateDefinitionVersionsResponse(
            versions=[aggregate_version_to_proto(v, serving) for v in page],
            next_page_token=token,
        )

    async def GetAggregateDefinitionVersion(
        self, request: rules_pb2.GetAggregateDefinitionVersionRequest, context: Ctx
    ) -> rules_pb2.GetAggregateDefinitionVersionResponse:
        await self._ready()
        aggregate_id, number = _aggregate_version_from(request.name, "name")
        serving = self.scoring.aggregate_state.versions.get(aggregate_id, 0)
        return rules_pb2.GetAggregateDefinitionVersionResponse(
            version=aggregate_version_to_proto(
                self.admin.aggregates.version(aggregate_id, number), serving
            )
        )

    async def RestoreAggregateDefinitionVersion(
        self, request: rules_pb2.RestoreAggregateDefinitionVersionRequest, context: Ctx
    ) -> rules_pb2.RestoreAggregateDefinitionVersionResponse:
        await self._ready()
        aggregate_id, number = _aggregate_version_from(request.name, "name")
        self._may_change(CONSORTIUM)

        async def make() -> rules_pb2.RestoreAggregateDefinitionVersionResponse:
            restored = await self.admin.restore_aggregate(
                aggregate_id,
                number,
                etag=request.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            self._aggregate_changed()
            return rules_pb2.RestoreAggregateDefinitionVersionResponse(
                aggregate_definition=self._aggregate_proto(restored)
            )

        return await self._run("RestoreAggregateDefinitionVersion", request, make)

    # scoring settings

    async def GetScoringSettings(
        self, request: rules_pb2.GetScoringSettingsRequest, context: Ctx
    ) -> rules_pb2.GetScoringSettingsResponse:
        await self._ready()
        if request.name not in ("", "scoringSettings"):
            raise NotFoundError(f"{request.name!r} not found (the name is scoringSettings)")
        return rules_pb2.GetScoringSettingsResponse(
            scoring_settings=settings_to_proto(self.admin.settings)
        )

    async def UpdateScoringSettings(
        self, request: rules_pb2.UpdateScoringSettingsRequest, context: Ctx
    ) -> rules_pb2.UpdateScoringSettingsResponse:
        await self._ready()
        self._may_change(CONSORTIUM)

        async def make() -> rules_pb2.UpdateScoringSettingsResponse:
            incoming = request.scoring_settings
            paths = list(request.update_mask.paths)
            if not paths:
                raise InvalidArgumentError("required: the fields to update", field="update_mask")
            for i, path in enumerate(paths):
                if path != "zone_threshold":
                    raise InvalidArgumentError(
                        f"{path!r} cannot be changed in this release (only zone_threshold)",
                        field=f"update_mask.paths[{i}]",
                    )
            if not incoming.etag:
                raise InvalidArgumentError(
                    "required: the etag last read", field="scoring_settings.etag"
                )
            current = self.admin.settings
            updated = await self.admin.update_settings(
                replace(current, zone_threshold=incoming.zone_threshold),
                etag=incoming.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            return rules_pb2.UpdateScoringSettingsResponse(
                scoring_settings=settings_to_proto(updated)
            )

        return await self._run("UpdateScoringSettings", request, make)

    # back-test

    async def BacktestRules(
        self, request: rules_pb2.BacktestRulesRequest, context: Ctx
    ) -> AsyncIterator[rules_pb2.BacktestRulesResponse]:
        """Progress every 10,000 events, then the result; the replay runs in a worker
        thread so the server keeps answering other calls meanwhile."""
        partner = await self._ready()
        tested = self._tested_rules(partner, request)
        kind, start_us, end_us = _backtest_period(request)
        threshold = (
            request.zone_threshold
            if request.HasField("zone_threshold")
            else self.admin.settings.zone_threshold
        )
        if threshold < 1:
            raise InvalidArgumentError("must be >= 1", field="zone_threshold")
        operator = self.admins is None or partner in self.admins
        history = [
            history_item(e)
            async for e in self.scoring.store.snapshots.events_after(0)
            if e.kind in ("application", "payment", "outcome")
        ]
        _, lists = self.scoring.evaluator(partner)
        revision = self.scoring.rule_pack_revision
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

        def report(done: int, total: int) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (done, total))

        job = asyncio.ensure_future(
            asyncio.to_thread(
                run_backtest,
                history,
                tested,
                aggregates=self.scoring.aggregate_state.document,
                lists=lists,
                event_kind=kind,
                start_us=start_us,
                end_us=end_us,
                zone_threshold=threshold,
                exclude_unlabelled=request.exclude_unlabelled,
                # A partner learns only about its own events; the operator about all.
                partners=None if operator else frozenset({partner}),
                progress=report,
            )
        )
        try:
            while not job.done() or not queue.empty():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    done, total = getter.result()
                    yield rules_pb2.BacktestRulesResponse(
                        progress=rules_pb2.BacktestProgress(events_done=done, events_total=total)
                    )
                else:
                    getter.cancel()
            outcome = job.result()
        finally:
            job.cancel()
        yield rules_pb2.BacktestRulesResponse(result=backtest_result_proto(outcome, revision))

    def _tested_rules(
        self, partner: str, request: rules_pb2.BacktestRulesRequest
    ) -> list[TestedRule]:
        tested: list[TestedRule] = []
        for i, name in enumerate(request.rules):
            field = f"rules[{i}]"
            match = re.fullmatch(r"rules/([a-z0-9_-]{1,64})(?:/versions/([1-9][0-9]{0,17}))?", name)
            if not match:
                raise InvalidArgumentError(
                    "must be rules/{rule_id} or rules/{rule_id}/versions/{version}", field=field
                )
            rule_id, number = match.group(1), match.group(2)
            book = self.admin.book(self.admin.rule_scope(partner, rule_id))
            rule = book.version(rule_id, int(number)).rule if number else book.get(rule_id)
            tested.append(TestedRule(name, rule))
        for i, draft in enumerate(request.draft_rules):
            label = draft.name or f"draft_rules[{i}]"
            try:
                rule = rule_from_proto("draft", draft)
                validate(rule)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(
                    exc.message,
                    violations=[
                        FieldViolation(
                            v.field.replace("rule.", f"draft_rules[{i}].", 1), v.description
                        )
                        for v in exc.violations
                    ],
                ) from None
            tested.append(TestedRule(label, rule))
        if not tested:
            tested = [
                TestedRule(f"rules/{r.rule_id}", r)
                for _, r in self.admin.visible_rules(partner)
                if r.status.value == "WORKING"
            ]
        return tested


def _backtest_period(request: rules_pb2.BacktestRulesRequest) -> tuple[EventKind, int, int]:
    if request.event_kind == common_pb2.EVENT_KIND_UNSPECIFIED:
        raise InvalidArgumentError("required", field="event_kind")
    kind = EventKind(
        _enum_suffix(request.event_kind, common_pb2.EventKind, "EVENT_KIND_", "event_kind")
    )
    for name in ("start_time", "end_time"):
        if not request.HasField(name):
            raise InvalidArgumentError("required", field=name)
    start_us = request.start_time.ToMicroseconds()
    end_us = request.end_time.ToMicroseconds()
    if end_us <= start_us:
        raise InvalidArgumentError("must be after start_time", field="end_time")
    return kind, start_us, end_us


def _counts_proto(label: str, display: str, c: Counts) -> rules_pb2.RuleBacktestResult:
    return rules_pb2.RuleBacktestResult(
        rule=label,
        display_name=display,
        fraud_stopped=c.fraud_stopped,
        legit_excluded=c.legit_excluded,
        legit_stopped=c.legit_stopped,
        fraud_missed=c.fraud_missed,
        precision=c.precision,
        recall=c.recall,
        alert_rate=c.alert_rate,
        error_count=c.errors,
    )


def backtest_result_proto(outcome: BacktestOutcome, revision: str) -> rules_pb2.BacktestResult:
    """The proto of a back-test's result."""
    out = rules_pb2.BacktestResult(
        rules=[_counts_proto(t.label, t.rule.display_name, c) for t, c in outcome.rules],
        set_result=_counts_proto("", "the set", outcome.set_counts),
        events_evaluated=outcome.events_evaluated,
        events_unlabelled=outcome.events_unlabelled,
        rule_pack_revision=revision,
    )
    out.elapsed.FromNanoseconds(int(outcome.elapsed_s * 1e9))
    return out


def _entry_rows(
    entries: Iterable[rules_pb2.ListEntry],
) -> list[tuple[str, int | None, str]]:
    """(value, expire_ms, comment) of proto entries."""
    return [
        (
            e.value,
            e.expire_time.ToMilliseconds() if e.HasField("expire_time") else None,
            e.comment,
        )
        for e in entries
    ]


def _invalid_values(kind: str, rows: Iterable[tuple[str, Any, str]]) -> list[tuple[int, str]]:
    """``(index, reason)`` of the values not valid for ``kind`` (one Rust call)."""
    _, rejected = _core.ListRegistry.normalize_many(kind, [value for value, _, _ in rows])
    return rejected


def _merge_list(
    current: ListDefinition, incoming: rules_pb2.List, paths: list[str]
) -> ListDefinition:
    """``current`` with the fields named by ``paths`` taken from ``incoming``."""
    if not paths:
        raise InvalidArgumentError("required: the fields to update", field="update_mask")
    for i, path in enumerate(paths):
        if path not in UPDATABLE_LIST_FIELDS:
            raise InvalidArgumentError(
                f"{path!r} is not an updatable field of List", field=f"update_mask.paths[{i}]"
            )
    changes: dict[str, Any] = {}
    if "display_name" in paths:
        changes["display_name"] = incoming.display_name
    if "description" in paths:
        changes["description"] = incoming.description
    if "tags" in paths:
        changes["tags"] = tuple(incoming.tags)
    if "type" in paths:
        if incoming.type == rules_pb2.LIST_TYPE_UNSPECIFIED:
            raise InvalidArgumentError("required", field="list.type")
        changes["type"] = ListType(
            _enum_suffix(incoming.type, rules_pb2.ListType, "LIST_TYPE_", "list.type")
        )
    if "default_entry_ttl" in paths:
        ttl = (
            incoming.default_entry_ttl.ToTimedelta()
            if incoming.HasField("default_entry_ttl")
            else None
        )
        if ttl is not None and ttl <= timedelta(0):
            raise InvalidArgumentError("must be positive", field="list.default_entry_ttl")
        changes["default_entry_ttl"] = ttl
    return replace(current, **changes)


def _exists(book: Any, rule_id: str) -> bool:
    try:
        book.versions(rule_id)
    except NotFoundError:
        return False
    return True
