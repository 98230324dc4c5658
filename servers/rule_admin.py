"""RuleAdminService servicer: thin routing between the contract and the rule book/lists.

Serves rules (create, get, list, update by field mask, delete, versions, restore) and
lists (create, get, list, add/remove/list entries) over the *same*
:class:`~lendgate.scoring.ScoringService` that answers CheckApplication: every
successful rule change recompiles its rule set, and list entries live in its
registry, so the next check sees the change.

Not served yet (UNIMPLEMENTED): UpdateList, DeleteList, ImportListEntries, the
aggregate definitions, the scoring settings and BacktestRules.

Limits, said plainly:

- one rule book and one set of lists for the whole server (the consortium's pack),
  not one per partner; the caller is recorded as the author of each change;
- versions and lists live in memory (:class:`~lendgate.rules.InMemoryRuleRepository`)
  until the store-backed repository lands: a restart goes back to the default pack;
- ``filter`` of the List* methods is ignored (every item is returned);
- idempotency by ``request_id`` keeps the first successful answer of each
  (partner, method, request_id) in a bounded in-memory dict (not persisted, not
  shared between processes); a failed call is not remembered and may be retried.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
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


def rule_to_proto(rule: Rule) -> rules_pb2.Rule:
    """The proto of a domain rule."""
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


def version_to_proto(v: RuleVersion) -> rules_pb2.RuleVersion:
    """The proto of a rule version."""
    out = rules_pb2.RuleVersion(
        name=f"rules/{v.rule_id}/versions/{v.version}",
        version=v.version,
        rule=rule_to_proto(v.rule),
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


def list_to_proto(d: ListDefinition, entry_count: int) -> rules_pb2.List:
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

    def run(self, method: str, request: message.Message, make: Callable[[], M]) -> M:
        """``make()``'s answer, or the one remembered for the request's ``request_id``."""
        request_id: str = getattr(request, "request_id", "")
        if not request_id:
            return make()
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
        answer = make()
        self._answers[key] = (digest, answer)
        if len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
        return answer


# --- the servicer -----------------------------------------------------------------


class RuleAdminServicer:
    """Implements the rule and list methods of ``lendgate.v1.RuleAdminService``."""

    def __init__(self, scoring: ScoringService, admins: frozenset[str] | None = None) -> None:
        """``admins``: the partners allowed to change the consortium's rules and lists;
        ``None`` lets every authenticated partner (development mode only)."""
        self.scoring = scoring
        self.answers = FirstAnswers()
        self.admins = admins

    def _require_admin(self) -> None:
        # One rule pack serves the whole consortium: a change affects every partner's
        # checks, so only its administrators (the bureau operator) may make one.
        partner = current_partner().partner_id
        if self.admins is not None and partner not in self.admins:
            raise PermissionDeniedError(
                f"partner {partner!r} may not change the consortium rule pack"
                " (setting 'rule_admins')"
            )

    @staticmethod
    def _author() -> str:
        return current_partner().partner_id

    # rules

    async def CreateRule(
        self, request: rules_pb2.CreateRuleRequest, context: Ctx
    ) -> rules_pb2.CreateRuleResponse:
        self._require_admin()

        def make() -> rules_pb2.CreateRuleResponse:
            rule_id = _required_id(request.rule_id, "rule_id")
            rule = rule_from_proto(rule_id, request.rule)
            book = self.scoring.book
            if request.validate_only:
                if _exists(book, rule_id):
                    raise AlreadyExistsError(f"rule {rule_id!r} already exists")
                candidate = replace(rule, version=1)
                validate(candidate)
                return rules_pb2.CreateRuleResponse(rule=rule_to_proto(candidate))
            created = book.create(rule, author=self._author(), reason=request.change_reason)
            self.scoring.recompile()
            return rules_pb2.CreateRuleResponse(rule=rule_to_proto(created))

        return self.answers.run("CreateRule", request, make)

    async def GetRule(
        self, request: rules_pb2.GetRuleRequest, context: Ctx
    ) -> rules_pb2.GetRuleResponse:
        rule_id = _id_from(request.name, "rules", "name")
        return rules_pb2.GetRuleResponse(rule=rule_to_proto(self.scoring.book.get(rule_id)))

    async def ListRules(
        self, request: rules_pb2.ListRulesRequest, context: Ctx
    ) -> rules_pb2.ListRulesResponse:
        """Rules ordered by id; ``filter`` is ignored (every live rule is returned)."""
        size = _page_size(request.page_size, DEFAULT_RULE_PAGE, MAX_PAGE)
        rules = [r for r in self.scoring.book.rules() if r.rule_id > request.page_token]
        page = rules[:size]
        token = page[-1].rule_id if len(rules) > size else ""
        return rules_pb2.ListRulesResponse(
            rules=[rule_to_proto(r) for r in page], next_page_token=token
        )

    async def UpdateRule(
        self, request: rules_pb2.UpdateRuleRequest, context: Ctx
    ) -> rules_pb2.UpdateRuleResponse:
        self._require_admin()

        def make() -> rules_pb2.UpdateRuleResponse:
            rule_id = _id_from(request.rule.name, "rules", "rule.name")
            if not request.rule.etag:
                raise InvalidArgumentError("required: the etag last read", field="rule.etag")
            book = self.scoring.book
            current = book.get(rule_id)
            merged = _merge(current, request.rule, list(request.update_mask.paths))
            if request.validate_only:
                if request.rule.etag != current.etag:
                    raise AbortedError(
                        f"rule {rule_id!r} changed since it was read", reason="ETAG_MISMATCH"
                    )
                candidate = replace(merged, version=current.version + 1)
                validate(candidate)
                return rules_pb2.UpdateRuleResponse(rule=rule_to_proto(candidate))
            updated = book.update(
                merged, etag=request.rule.etag, author=self._author(), reason=request.change_reason
            )
            self.scoring.recompile()
            return rules_pb2.UpdateRuleResponse(rule=rule_to_proto(updated))

        return self.answers.run("UpdateRule", request, make)

    async def DeleteRule(
        self, request: rules_pb2.DeleteRuleRequest, context: Ctx
    ) -> rules_pb2.DeleteRuleResponse:
        self._require_admin()

        def make() -> rules_pb2.DeleteRuleResponse:
            rule_id = _id_from(request.name, "rules", "name")
            if not request.etag:
                raise InvalidArgumentError("required: the etag last read", field="etag")
            version = self.scoring.book.delete(
                rule_id, etag=request.etag, author=self._author(), reason=request.change_reason
            )
            self.scoring.recompile()
            return rules_pb2.DeleteRuleResponse(version=version_to_proto(version))

        return self.answers.run("DeleteRule", request, make)

    async def ListRuleVersions(
        self, request: rules_pb2.ListRuleVersionsRequest, context: Ctx
    ) -> rules_pb2.ListRuleVersionsResponse:
        """Versions newest first; ``filter`` is ignored (every version is returned)."""
        rule_id = _id_from(request.parent, "rules", "parent")
        size = _page_size(request.page_size, DEFAULT_VERSION_PAGE, MAX_PAGE)
        versions = self.scoring.book.versions(rule_id)
        if request.page_token:
            if not request.page_token.isdigit():
                raise InvalidArgumentError("not a token this method gave", field="page_token")
            before = int(request.page_token)
            versions = [v for v in versions if v.version < before]
        page = versions[:size]
        token = str(page[-1].version) if len(versions) > size else ""
        return rules_pb2.ListRuleVersionsResponse(
            versions=[version_to_proto(v) for v in page], next_page_token=token
        )

    async def GetRuleVersion(
        self, request: rules_pb2.GetRuleVersionRequest, context: Ctx
    ) -> rules_pb2.GetRuleVersionResponse:
        rule_id, number = _version_from(request.name, "name")
        version = self.scoring.book.version(rule_id, number)
        return rules_pb2.GetRuleVersionResponse(version=version_to_proto(version))

    async def RestoreRuleVersion(
        self, request: rules_pb2.RestoreRuleVersionRequest, context: Ctx
    ) -> rules_pb2.RestoreRuleVersionResponse:
        self._require_admin()

        def make() -> rules_pb2.RestoreRuleVersionResponse:
            rule_id, number = _version_from(request.name, "name")
            restored = self.scoring.book.restore(
                rule_id,
                number,
                etag=request.etag,
                author=self._author(),
                reason=request.change_reason,
            )
            self.scoring.recompile()
            return rules_pb2.RestoreRuleVersionResponse(rule=rule_to_proto(restored))

        return self.answers.run("RestoreRuleVersion", request, make)

    # lists

    def _list_proto(self, list_id: str) -> rules_pb2.List:
        lists = self.scoring.lists
        return list_to_proto(lists.get(list_id), lists.entry_count(list_id))

    async def CreateList(
        self, request: rules_pb2.CreateListRequest, context: Ctx
    ) -> rules_pb2.CreateListResponse:
        self._require_admin()

        def make() -> rules_pb2.CreateListResponse:
            list_id = _required_id(request.list_id, "list_id")
            definition = list_from_proto(list_id, request.list)
            self.scoring.lists.create(
                definition, author=self._author(), reason=request.change_reason
            )
            return rules_pb2.CreateListResponse(list=self._list_proto(list_id))

        return self.answers.run("CreateList", request, make)

    async def GetList(
        self, request: rules_pb2.GetListRequest, context: Ctx
    ) -> rules_pb2.GetListResponse:
        return rules_pb2.GetListResponse(
            list=self._list_proto(_id_from(request.name, "lists", "name"))
        )

    async def ListLists(
        self, request: rules_pb2.ListListsRequest, context: Ctx
    ) -> rules_pb2.ListListsResponse:
        """Lists ordered by id; ``filter`` is ignored (every list is returned)."""
        size = _page_size(request.page_size, DEFAULT_RULE_PAGE, MAX_PAGE)
        ids = [d.list_id for d in self.scoring.lists.all() if d.list_id > request.page_token]
        page = ids[:size]
        token = page[-1] if len(ids) > size else ""
        return rules_pb2.ListListsResponse(
            lists=[self._list_proto(i) for i in page], next_page_token=token
        )

    async def AddListEntries(
        self, request: rules_pb2.AddListEntriesRequest, context: Ctx
    ) -> rules_pb2.AddListEntriesResponse:
        self._require_admin()

        def make() -> rules_pb2.AddListEntriesResponse:
            list_id = _id_from(request.name, "lists", "name")
            lists = self.scoring.lists
            definition = lists.get(list_id)
            if not 1 <= len(request.entries) <= MAX_ENTRIES_PER_CALL:
                raise InvalidArgumentError(
                    f"1..{MAX_ENTRIES_PER_CALL} entries (ImportListEntries is for more)",
                    field="entries",
                )
            # Check every value first, so that a bad one changes nothing.
            bad = []
            for i, e in enumerate(request.entries):
                try:
                    _core.ListRegistry.normalize(definition.entry_kind.value, e.value)
                except _core.CoreInvalidArgument as exc:
                    bad.append(FieldViolation(f"entries[{i}].value", str(exc.args[-1])))
            if bad:
                raise InvalidArgumentError(
                    f"{len(bad)} entries are not valid {definition.entry_kind.value} values",
                    violations=bad,
                )
            result = lists.add_entries(
                list_id,
                [
                    ListEntry(
                        e.value,
                        e.expire_time.ToDatetime(tzinfo=UTC) if e.HasField("expire_time") else None,
                        e.comment,
                    )
                    for e in request.entries
                ],
                author=self._author(),
            )
            return rules_pb2.AddListEntriesResponse(
                added_count=result.added,
                replaced_count=result.replaced,
                list=self._list_proto(list_id),
            )

        return self.answers.run("AddListEntries", request, make)

    async def RemoveListEntries(
        self, request: rules_pb2.RemoveListEntriesRequest, context: Ctx
    ) -> rules_pb2.RemoveListEntriesResponse:
        self._require_admin()

        def make() -> rules_pb2.RemoveListEntriesResponse:
            list_id = _id_from(request.name, "lists", "name")
            if not 1 <= len(request.values) <= MAX_ENTRIES_PER_CALL:
                raise InvalidArgumentError(f"1..{MAX_ENTRIES_PER_CALL} values", field="values")
            removed = self.scoring.lists.remove_entries(list_id, list(request.values))
            return rules_pb2.RemoveListEntriesResponse(
                removed_count=removed, list=self._list_proto(list_id)
            )

        return self.answers.run("RemoveListEntries", request, make)

    async def ListListEntries(
        self, request: rules_pb2.ListListEntriesRequest, context: Ctx
    ) -> rules_pb2.ListListEntriesResponse:
        """Live entries ordered by value; ``filter`` is ignored."""
        list_id = _id_from(request.parent, "lists", "parent")
        size = _page_size(request.page_size, DEFAULT_ENTRY_PAGE, MAX_ENTRY_PAGE)
        self.scoring.lists.get(list_id)
        entries = self.scoring.lists.entries(
            list_id, limit=size + 1, after=request.page_token or None
        )
        page = entries[:size]
        token = page[-1].value if len(entries) > size else ""
        return rules_pb2.ListListEntriesResponse(
            entries=[entry_to_proto(e) for e in page], next_page_token=token
        )


def _exists(book: Any, rule_id: str) -> bool:
    try:
        book.versions(rule_id)
    except NotFoundError:
        return False
    return True
