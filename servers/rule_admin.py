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

Not served yet (UNIMPLEMENTED): the aggregate definitions (their live state cannot be
rebuilt from a changed definition yet).

Limits, said plainly:

- ``filter`` of the List* methods is ignored (every item is returned);
- idempotency by ``request_id`` keeps the first successful answer of each
  (partner, method, request_id) in a bounded in-memory dict (not persisted, not
  shared between processes); a failed call is not remembered and may be retried;
- of the scoring settings only ``zone_threshold`` is configurable; the review and
  model thresholds are the server's fixed ones (reported by GetScoringSettings).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any, TypeVar

from google.protobuf import message

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
from lendgate.scoring.backtest import (
    BacktestOutcome,
    Counts,
    TestedRule,
    history_item,
    run_backtest,
)
from lendgate.v1 import common_pb2, rules_pb2
from servers.handlers import Ctx

M = TypeVar("M", bound=message.Message)

ID_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
MAX_PAGE = 1000
DEFAULT_RULE_PAGE = 100
DEFAULT_VERSION_PAGE = 50
DEFAULT_ENTRY_PAGE = 1000
MAX_ENTRY_PAGE = 10_000
MAX_ENTRIES_PER_CALL = 10_000
IDEMPOTENCY_CAPACITY = 10_000

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


# --- idempotency ------------------------------------------------------------------


class FirstAnswers:
    """The first successful answer of each (partner, method, request_id), in memory.

    A stop-gap until idempotency keys are stored: bounded (oldest forgotten first), not
    persisted. A key reused for a different request is refused (REQUEST_ID_REUSED).
    """

    def __init__(self, capacity: int = IDEMPOTENCY_CAPACITY) -> None:
        self._capacity = capacity
        self._answers: OrderedDict[tuple[str, str, str], tuple[bytes, message.Message]] = (
            OrderedDict()
        )

    async def run(
        self, method: str, request: message.Message, make: Callable[[], Awaitable[M]]
    ) -> M:
        """``make()``'s answer, or the one remembered for the request's ``request_id``."""
        request_id: str = getattr(request, "request_id", "")
        if not request_id:
            return await make()
        key = (current_partner().partner_id, method, request_id)
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        seen = self._answers.get(key)
        if seen is not None:
            if seen[0] != digest:
                raise InvalidArgumentError(
                    f"request_id {request_id!r} was used for another request",
                    field="request_id",
                    reason="REQUEST_ID_REUSED",
                )
            answer: M = seen[1]  # type: ignore[assignment]
            return answer
        answer = await make()
        self._answers[key] = (digest, answer)
        if len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
        return answer


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
    """Implements ``lendgate.v1.RuleAdminService`` (but the aggregate definitions)."""

    def __init__(self, scoring: ScoringService, admins: frozenset[str] | None = None) -> None:
        """``admins``: the partners allowed to change the consortium's rules, lists and
        settings; ``None`` lets every authenticated partner (development mode only)."""
        self.scoring = scoring
        self.admin = scoring.admin
        self.answers = FirstAnswers()
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
        """The consortium's and the caller's rules by id; ``filter`` is ignored."""
        partner = await self._ready()
        size = _page_size(request.page_size, DEFAULT_RULE_PAGE, MAX_PAGE)
        rules = [
            (scope, r)
            for scope, r in self.admin.visible_rules(partner)
            if r.rule_id > request.page_token
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
        """Versions newest first; ``filter`` is ignored (every version is returned)."""
        partner = await self._ready()
        rule_id = _id_from(request.parent, "rules", "parent")
        scope = self.admin.rule_scope(partner, rule_id)
        size = _page_size(request.page_size, DEFAULT_VERSION_PAGE, MAX_PAGE)
        versions = self.admin.book(scope).versions(rule_id)
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
        """The consortium's and the caller's lists by id; ``filter`` is ignored."""
        partner = await self._ready()
        size = _page_size(request.page_size, DEFAULT_RULE_PAGE, MAX_PAGE)
        found = [
            (scope, d.list_id)
            for scope, d in self.admin.visible_lists(partner)
            if d.list_id > request.page_token
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
        """Live entries ordered by value; ``filter`` is ignored."""
        scope, list_id = await self._list_scope(request.parent, "parent")
        size = _page_size(request.page_size, DEFAULT_ENTRY_PAGE, MAX_ENTRY_PAGE)
        entries = self.admin.lists(scope).entries(
            list_id, limit=size + 1, after=request.page_token or None
        )
        page = entries[:size]
        token = page[-1].value if len(entries) > size else ""
        return rules_pb2.ListListEntriesResponse(
            entries=[entry_to_proto(e) for e in page], next_page_token=token
        )

    async def ImportListEntries(
        self, requests: AsyncIterator[rules_pb2.ImportListEntriesRequest], context: Ctx
    ) -> rules_pb2.ImportListEntriesResponse:
        """Collect the whole stream, then apply it as one change (one new version).
        The list, the caller's right to change it and the mode are checked on the first
        message, before the rest is read."""
        first: rules_pb2.ImportListEntriesRequest | None = None
        rows: list[tuple[str, int | None, str]] = []
        scope, list_id = CONSORTIUM, ""
        async for chunk in requests:
            if first is None:
                first = chunk
                scope, list_id = await self._list_scope(first.name, "name")
                self._may_change(scope)
                if first.mode not in rules_pb2.ImportMode.values():
                    raise InvalidArgumentError(
                        f"unknown ImportMode value {first.mode}", field="mode"
                    )
            if len(chunk.entries) > MAX_ENTRIES_PER_CALL:
                raise InvalidArgumentError(
                    f"at most {MAX_ENTRIES_PER_CALL} entries per message", field="entries"
                )
            rows.extend(_entry_rows(chunk.entries))
        if first is None:
            raise InvalidArgumentError("the stream carried no message", field="name")
        replace_all = first.mode == rules_pb2.IMPORT_MODE_REPLACE
        request = rules_pb2.ImportListEntriesRequest(
            request_id=first.request_id, name=first.name, mode=first.mode
        )

        async def make() -> rules_pb2.ImportListEntriesResponse:
            result = await self.admin.write_entries(
                scope,
                list_id,
                rows,
                author=self._author(),
                reason="import",
                replace_all=replace_all,
            )
            return rules_pb2.ImportListEntriesResponse(
                received_count=len(rows),
                rejected_count=len(result.rejected),
                rejections=[
                    common_pb2.FieldViolation(field=f"entries[{i}].value", description=why)
                    for i, why in result.rejected[:100]
                ],
                list=self._list_proto(scope, list_id),
            )

        # The idempotency key covers the import's head (name, mode), not its content.
        return await self._run("ImportListEntries", request, make)

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
                aggregates=self.scoring.pack.aggregates,
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
    bad = []
    for i, (value, _, _) in enumerate(rows):
        try:
            _core.ListRegistry.normalize(kind, value)
        except _core.CoreInvalidArgument as exc:
            bad.append((i, str(exc.args[-1])))
    return bad


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
