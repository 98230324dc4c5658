"""Rule administration: the consortium's and each partner's rules, lists and settings.

Every change is written to the store first, as a new version of a definition (who,
when, why — ``Store.put_definition`` / ``change_list_entries``), and only then applied
in memory; so a restarted server loads exactly what it served (:meth:`RuleAdmin.load`).
On the first start over an empty store the shipped pack is written as version 1 of
each rule, list and aggregate definition, then a mark that the pack is whole.

Scopes. The **consortium** scope holds the pack every partner's checks run (edited by
the consortium's rule administrators). Each partner may also keep **private** rules and
lists: only that partner sees or changes them, and they are evaluated only on its own
checks, together with the consortium's. A private id may not repeat a consortium id, so
``rules/{id}`` always names one rule for a caller; partners' private ids are separate
namespaces (two partners may both have a list "watch", and neither learns of the other's).
Store names are ``consortium/{id}`` and ``partner/{partner_id}/{id}``.

Aggregate definitions (``lendgate.scoring.aggdefs``) are the consortium's only: the
aggregates are one state fed by every partner's events, and a partner's private object
over it would let that partner read other partners' data through its values. They are
stored as kind ``aggregate``, versioned like rules; :meth:`RuleAdmin.aggregate_state`
composes the document the live aggregates compile (the scoring service rebuilds its
state when it changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from lendgate import _core
from lendgate.aggregates import AggregateStore
from lendgate.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    core_errors,
)
from lendgate.lists import ListDefinition, ListEntryKind, Lists, ListType, WriteResult, to_ms
from lendgate.rules import (
    CompiledRuleSet,
    InMemoryRuleRepository,
    Rule,
    RuleBook,
    RuleVersion,
    VersionChange,
    version_from_json,
    version_to_json,
)
from lendgate.scoring.aggdefs import (
    AggregateBook,
    AggregateDefinition,
    AggregateVersion,
    Composed,
    check_attributes,
    compose,
    proto_field,
    rules_reading,
    split_pack,
    version_body,
    version_from_body,
    with_version,
)
from lendgate.scoring.pack import PACK_AUTHOR, Pack, install
from lendgate.store import DefinitionVersion, Store
from lendgate.timeutil import from_us, utc_now

CONSORTIUM = ""
"""The scope of the consortium's pack (a partner's scope is its partner id)."""

SETTINGS_NAME = "consortium/scoring"
PACK_MARK_NAME = "consortium/pack"
"""A settings record written once the shipped pack is wholly in the store."""
EntryRow = tuple[str, int | None, str, int, str]
"""An entry as the Rust registry takes it: (value, expire_ms, comment, create_ms, author)."""
_Stamp = tuple[str, int, int | None]
"""What a list write is stamped with: (author, now_ms, default expiry ms or None)."""
_NEVER = -(2**62)
_ALL = 2**62


def store_name(scope: str, item_id: str) -> str:
    """The store's name of a rule or list of ``scope``."""
    return f"consortium/{item_id}" if scope == CONSORTIUM else f"partner/{scope}/{item_id}"


def parse_store_name(name: str) -> tuple[str, str] | None:
    """(scope, id) of a store name, or ``None`` for a name this module did not make."""
    parts = name.split("/")
    if len(parts) == 2 and parts[0] == "consortium":
        return CONSORTIUM, parts[1]
    if len(parts) == 3 and parts[0] == "partner":
        return parts[1], parts[2]
    return None


def encode_entry(row: EntryRow) -> str:
    """One list entry as the store keeps it: its value and metadata in one string, so
    that a change of expiry or comment is a removal plus an addition of a version
    (the format is the Rust core's, which stages bulk writes in it)."""
    return _core.ListRegistry.encode_entry(row)


def decode_entry(text: str) -> EntryRow:
    """The entry of :func:`encode_entry`."""
    return _core.ListRegistry.decode_entry(text)


def _request_id() -> str:
    return f"rule-admin/{uuid.uuid4().hex}"


@dataclass(frozen=True)
class ScoringSettings:
    """How the fraud score becomes a zone (proto ``ScoringSettings``)."""

    zone_threshold: int
    version: int = 0
    update_author: str = ""
    change_reason: str = ""
    update_time: datetime | None = None

    @property
    def etag(self) -> str:
        """Opaque version tag for optimistic concurrency."""
        return f"v{self.version}"


@dataclass
class Workspace:
    """The rules and lists of one scope."""

    scope: str
    book: RuleBook
    lists: Lists


def _list_body(d: ListDefinition) -> bytes:
    return json.dumps(
        {
            "list_id": d.list_id,
            "entry_kind": d.entry_kind.value,
            "type": d.type.value,
            "display_name": d.display_name,
            "description": d.description,
            "default_entry_ttl_s": (
                d.default_entry_ttl.total_seconds() if d.default_entry_ttl else None
            ),
            "tags": list(d.tags),
            "create_time": d.create_time.isoformat() if d.create_time else None,
        },
        sort_keys=True,
    ).encode()


def _list_from(stored: DefinitionVersion) -> ListDefinition:
    raw = json.loads(stored.body)
    ttl = raw.get("default_entry_ttl_s")
    created = raw.get("create_time")
    return ListDefinition(
        list_id=raw["list_id"],
        entry_kind=ListEntryKind(raw["entry_kind"]),
        type=ListType(raw["type"]),
        display_name=raw.get("display_name", ""),
        description=raw.get("description", ""),
        default_entry_ttl=timedelta(seconds=ttl) if ttl is not None else None,
        tags=tuple(raw.get("tags", [])),
        version=stored.version,
        update_author=stored.author,
        change_reason=stored.reason,
        create_time=datetime.fromisoformat(created) if created else None,
        update_time=from_us(stored.created_at_us),
    )


def _mentions_list(rule: Rule, list_id: str) -> bool:
    pattern = re.compile(r"in_list\(\s*[\"']" + re.escape(list_id) + r"[\"']")
    return any(pattern.search(c) for c in (rule.condition, *(s.condition for s in rule.sub_rules)))


async def _unless_written(write: Awaitable[object]) -> bool:
    """Await a first-version ``write``; False when another server had written it."""
    try:
        await write
    except AbortedError:
        return False
    return True


class RuleAdmin:
    """The consortium's pack and the partners' private rules and lists, persisted."""

    def __init__(self, store: Store, pack: Pack, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.pack = pack
        self._clock = clock
        self.consortium = self._workspace(CONSORTIUM)
        install(pack, self.consortium.book, self.consortium.lists)
        self.private: dict[str, Workspace] = {}
        self.settings = ScoringSettings(pack.zone_threshold)
        self.aggregates = AggregateBook()
        """Every version of every aggregate definition (the consortium's)."""
        self._install_pack_aggregates()
        self._lock = asyncio.Lock()
        self.loaded = False

    def _install_pack_aggregates(self) -> None:
        self.aggregates = AggregateBook()
        now = self._clock()
        reason = f"{self.pack.name} pack {self.pack.revision}"
        for d in split_pack(self.pack.aggregates)[0]:
            stamped = with_version(d, 1, PACK_AUTHOR, reason, now)
            self.aggregates.commit(
                AggregateVersion(stamped, VersionChange.CREATED, PACK_AUTHOR, reason, now)
            )

    def _workspace(self, scope: str) -> Workspace:
        return Workspace(scope, RuleBook(InMemoryRuleRepository(), self._clock), Lists(self._clock))

    # --- loading ---------------------------------------------------------------------

    async def load(self) -> None:
        """Load every scope from the store. Until the store holds the mark that the
        shipped pack was written in full, write whatever of it is missing first (a new
        store, a start that died half way, or another server writing it right now)."""
        async with self._lock:
            if self.loaded:
                return
            if not await self._pack_written():
                await self._write_pack()
            await self._read_all(
                await self.store.list_definitions("rule"),
                await self.store.list_definitions("list"),
            )
            try:
                stored = await self.store.get_definition("settings", SETTINGS_NAME)
            except NotFoundError:
                pass
            else:
                self.settings = _settings_from(stored)
            await self._load_aggregates()
            self.loaded = True

    async def _pack_written(self) -> bool:
        try:
            await self.store.get_definition("settings", PACK_MARK_NAME)
        except NotFoundError:
            return False
        return True

    async def _load_aggregates(self) -> None:
        """Read the stored aggregate definitions (the pack's are among them)."""
        book = AggregateBook()
        for latest in await self.store.list_definitions("aggregate"):
            parsed = parse_store_name(latest.name)
            if parsed is None or parsed[0] != CONSORTIUM:
                continue
            for stored_version in await self.store.list_definition_versions(
                "aggregate", latest.name
            ):
                book.commit(
                    version_from_body(
                        stored_version.body,
                        version=stored_version.version,
                        author=stored_version.author,
                        reason=stored_version.reason,
                        at=from_us(stored_version.created_at_us),
                    )
                )
        if not book.versions:
            self._install_pack_aggregates()
        else:
            self.aggregates = book

    async def _write_pack(self) -> None:
        """Store the shipped pack (rules, lists with their entries, aggregate definitions)
        as first versions, then the mark that it is whole. Every write checks its version,
        so an item is never written twice; a conflict means that item is already stored
        (by an earlier start, or another server starting at the same time) and the next
        one is tried, so when this returns every item of the pack is in the store."""
        ws = self.consortium
        for rule in ws.book.rules():
            for v in reversed(ws.book.versions(rule.rule_id)):
                await _unless_written(self._put_rule_version(CONSORTIUM, v, expected=v.version - 1))
        reason = f"{self.pack.name} pack {self.pack.revision}"
        for d in ws.lists.all():
            name = store_name(CONSORTIUM, d.list_id)
            await _unless_written(
                self._put_list(
                    CONSORTIUM, d, 0, d.update_author or PACK_AUTHOR, d.change_reason or reason
                )
            )
            rows = ws.lists.registry.entries(d.list_id, _NEVER, _ALL)
            if rows:
                await _unless_written(
                    self._change_entries(
                        name,
                        add=[encode_entry(r) for r in rows],
                        remove=[],
                        expected=1,
                        author=PACK_AUTHOR,
                        reason=reason,
                    )
                )
        for first in [vs[0] for vs in self.aggregates.versions.values()]:
            await _unless_written(self._put_aggregate(first, expected=0))
        with contextlib.suppress(FailedPreconditionError):  # the other server marked it
            await self.store.put_definition(
                _request_id(),
                "settings",
                PACK_MARK_NAME,
                json.dumps({"pack": self.pack.name, "revision": self.pack.revision}).encode(),
                status="active",
                author=PACK_AUTHOR,
                reason=reason,
                expected_version=0,
            )

    async def _read_all(
        self, rules: Sequence[DefinitionVersion], lists: Sequence[DefinitionVersion]
    ) -> None:
        self.consortium = self._workspace(CONSORTIUM)
        self.private = {}
        for latest in rules:
            parsed = parse_store_name(latest.name)
            if parsed is None:
                continue
            ws = self._scope(parsed[0], create=True)
            for stored in await self.store.list_definition_versions("rule", latest.name):
                ws.book.commit(version_from_json(stored.body))
        for latest in lists:
            parsed = parse_store_name(latest.name)
            if parsed is None or latest.status == "deleted":
                continue
            scope, list_id = parsed
            ws = self._scope(scope, create=True)
            ws.lists.install(_list_from(latest))
            stored_entries = await self.store.list_entries(latest.name)
            if stored_entries:
                await asyncio.to_thread(ws.lists.registry.load_stored, list_id, stored_entries)
        for ws in self.private.values():
            self._link_consortium_lists(ws)

    def _link_consortium_lists(self, ws: Workspace) -> None:
        own = {d.list_id for d in ws.lists.all()}
        for d in self.consortium.lists.all():
            if d.list_id not in own and d.list_id not in ws.lists.registry.ids():
                ws.lists.link(self.consortium.lists, d.list_id)

    def _scope(self, scope: str, *, create: bool = False) -> Workspace:
        if scope == CONSORTIUM:
            return self.consortium
        ws = self.private.get(scope)
        if ws is None:
            if not create:
                raise NotFoundError(f"partner {scope!r} has no private rules or lists")
            ws = self._workspace(scope)
            self._link_consortium_lists(ws)
            self.private[scope] = ws
        return ws

    # --- what a partner sees ---------------------------------------------------------

    def rule_scope(self, partner: str, rule_id: str) -> str:
        """The scope of ``rule_id`` as ``partner`` names it; ``NotFoundError`` when it is
        neither the partner's nor the consortium's (another partner's rule is not found)."""
        ws = self.private.get(partner)
        if ws is not None and _has_rule(ws.book, rule_id):
            return partner
        if _has_rule(self.consortium.book, rule_id):
            return CONSORTIUM
        raise NotFoundError(f"rule {rule_id!r} not found")

    def list_scope(self, partner: str, list_id: str) -> str:
        """The scope of ``list_id`` as ``partner`` names it (see :meth:`rule_scope`)."""
        ws = self.private.get(partner)
        if ws is not None and list_id in {d.list_id for d in ws.lists.all()}:
            return partner
        self.consortium.lists.get(list_id)
        return CONSORTIUM

    def book(self, scope: str) -> RuleBook:
        """The rule book of a scope (empty for a partner without private rules)."""
        ws = self.private.get(scope) if scope != CONSORTIUM else self.consortium
        return ws.book if ws is not None else RuleBook(InMemoryRuleRepository())

    def lists(self, scope: str) -> Lists:
        """The lists of a scope (definitions are the scope's own; the registry of a
        partner's scope also links the consortium's lists)."""
        return self._scope(scope).lists

    def visible_rules(self, partner: str) -> list[tuple[str, Rule]]:
        """(scope, rule) of every live rule ``partner`` sees, ordered by rule id."""
        out = [(CONSORTIUM, r) for r in self.consortium.book.rules()]
        ws = self.private.get(partner)
        if ws is not None:
            out += [(partner, r) for r in ws.book.rules()]
        return sorted(out, key=lambda sr: sr[1].rule_id)

    def visible_lists(self, partner: str) -> list[tuple[str, ListDefinition]]:
        """(scope, definition) of every list ``partner`` sees, ordered by list id."""
        out = [(CONSORTIUM, d) for d in self.consortium.lists.all()]
        ws = self.private.get(partner)
        if ws is not None:
            out += [(partner, d) for d in ws.lists.all()]
        return sorted(out, key=lambda sd: sd[1].list_id)

    def compile(self) -> tuple[CompiledRuleSet, dict[str, CompiledRuleSet]]:
        """The consortium's compiled rules, and per partner with private rules or lists
        the consortium's plus its own (evaluated with the partner's lists)."""
        threshold = self.settings.zone_threshold
        consortium = self.consortium.book.rules()
        shared = CompiledRuleSet.compile(consortium, threshold)
        private = {
            scope: CompiledRuleSet.compile(consortium + ws.book.rules(), threshold)
            for scope, ws in self.private.items()
        }
        return shared, private

    # --- rules -----------------------------------------------------------------------

    async def create_rule(self, scope: str, rule: Rule, *, author: str, reason: str) -> Rule:
        """Create a rule in ``scope`` (compiled first; nothing changes if it fails)."""
        async with self._lock:
            self.check_new_rule_id(scope, rule.rule_id)
            book = self._scope(scope, create=True).book
            version = book.plan_create(rule, author=author, reason=reason)
            await self._put_rule_version(scope, version, expected=0)
            return book.commit(version).rule

    async def update_rule(
        self, scope: str, rule: Rule, *, etag: str, author: str, reason: str
    ) -> Rule:
        """A new version of a rule with ``rule``'s content."""
        async with self._lock:
            book = self._scope(scope).book
            version = book.plan_update(rule, etag=etag, author=author, reason=reason)
            await self._put_rule_version(scope, version, expected=version.version - 1)
            return book.commit(version).rule

    async def delete_rule(
        self, scope: str, rule_id: str, *, etag: str, author: str, reason: str
    ) -> RuleVersion:
        """Delete a rule (a DELETED version; restorable)."""
        async with self._lock:
            book = self._scope(scope).book
            version = book.plan_delete(rule_id, etag=etag, author=author, reason=reason)
            await self._put_rule_version(scope, version, expected=version.version - 1)
            return book.commit(version)

    async def restore_rule(
        self, scope: str, rule_id: str, number: int, *, etag: str, author: str, reason: str
    ) -> Rule:
        """Make version ``number``'s content current again, as a new version."""
        async with self._lock:
            book = self._scope(scope).book
            version = book.plan_restore(rule_id, number, etag=etag, author=author, reason=reason)
            await self._put_rule_version(scope, version, expected=version.version - 1)
            return book.commit(version).rule

    def check_new_rule_id(self, scope: str, rule_id: str) -> None:
        """``AlreadyExistsError`` if ``rule_id`` is used in a scope that would clash."""
        owners = [CONSORTIUM] if scope != CONSORTIUM else list(self.private)
        for other in owners:
            if _has_rule(self.book(other), rule_id):
                # Says nothing about whose: another partner's ids stay private.
                raise AlreadyExistsError(f"rule id {rule_id!r} is taken")

    async def _put_rule_version(
        self, scope: str, v: RuleVersion, expected: int | None = None
    ) -> None:
        status = "deleted" if v.change is VersionChange.DELETED else v.rule.status.value.lower()
        try:
            await self.store.put_definition(
                _request_id(),
                "rule",
                store_name(scope, v.rule_id),
                version_to_json(v),
                status=status,
                author=v.author,
                reason=v.change_reason,
                expected_version=expected,
            )
        except FailedPreconditionError:
            raise AbortedError(
                f"rule {v.rule_id!r} changed concurrently", reason="ETAG_MISMATCH"
            ) from None

    # --- lists -----------------------------------------------------------------------

    async def create_list(
        self, scope: str, definition: ListDefinition, *, author: str, reason: str
    ) -> ListDefinition:
        """Create an empty list in ``scope``."""
        async with self._lock:
            self._check_new_list_id(scope, definition.list_id)
            ws = self._scope(scope, create=True)
            name = store_name(scope, definition.list_id)
            try:
                latest = (await self.store.get_definition("list", name)).version
            except NotFoundError:
                latest = 0
            now = self._clock()
            candidate = replace(definition, create_time=now)
            stored = await self.store.put_definition(
                _request_id(),
                "list",
                name,
                _list_body(candidate),
                status="active",
                author=author,
                reason=reason,
                expected_version=latest,
            )
            ws.lists.install(_list_from(stored))
            if scope == CONSORTIUM:
                for partner_ws in self.private.values():
                    partner_ws.lists.link(ws.lists, definition.list_id)
            return ws.lists.get(definition.list_id)

    def _check_new_list_id(self, scope: str, list_id: str) -> None:
        owners = (
            [self.consortium, *self.private.values()]
            if scope == CONSORTIUM
            else [self.consortium, *([self.private[scope]] if scope in self.private else [])]
        )
        for ws in owners:
            if list_id in {d.list_id for d in ws.lists.all()}:
                # Says nothing about whose: another partner's ids stay private.
                raise AlreadyExistsError(f"list id {list_id!r} is taken")

    async def update_list(
        self, scope: str, definition: ListDefinition, *, etag: str, author: str, reason: str
    ) -> ListDefinition:
        """Replace a list's editable fields, as a new version."""
        async with self._lock:
            lists = self._scope(scope).lists
            current = lists.get(definition.list_id)
            if etag != current.etag:
                raise AbortedError(
                    f"list {definition.list_id!r} changed since it was read",
                    reason="ETAG_MISMATCH",
                )
            if definition.entry_kind != current.entry_kind:
                raise InvalidArgumentError(
                    "a list's entry kind cannot change", field="list.entry_kind"
                )
            candidate = replace(definition, create_time=current.create_time)
            stored = await self._put_list(scope, candidate, current.version, author, reason)
            updated = lists.update(candidate, etag=etag, author=author, reason=reason)
            return lists.stamp(
                updated.list_id,
                version=stored.version,
                author=author,
                reason=reason,
                at=from_us(stored.created_at_us),
            )

    async def delete_list(
        self, scope: str, list_id: str, *, etag: str, author: str, reason: str
    ) -> None:
        """Delete a list and its entries; ``FailedPreconditionError`` while a working
        rule that can see it refers to it."""
        async with self._lock:
            lists = self._scope(scope).lists
            current = lists.get(list_id)
            if etag != current.etag:
                raise AbortedError(
                    f"list {list_id!r} changed since it was read", reason="ETAG_MISMATCH"
                )
            books = (
                [self.consortium.book, *(ws.book for ws in self.private.values())]
                if scope == CONSORTIUM
                else [self._scope(scope).book]
            )
            users = sorted(
                r.rule_id
                for b in books
                for r in b.rules()
                if r.status.value == "WORKING" and _mentions_list(r, list_id)
            )
            if users:
                raise FailedPreconditionError(
                    f"list {list_id!r} is used by working rules: {', '.join(users[:10])}",
                    reason="LIST_IN_USE",
                )
            name = store_name(scope, list_id)
            live = await self.store.list_entries(name)
            version = current.version
            if live:
                version = (
                    await self._change_entries(
                        name, add=[], remove=live, expected=version, author=author, reason=reason
                    )
                ).version
            await self.store.put_definition(
                _request_id(),
                "list",
                name,
                _list_body(current),
                status="deleted",
                author=author,
                reason=reason,
                expected_version=version,
            )
            lists.delete(list_id, etag=etag)
            if scope == CONSORTIUM:
                for ws in self.private.values():
                    ws.lists.unlink(list_id)

    async def write_entries(
        self,
        scope: str,
        list_id: str,
        rows: Iterable[tuple[str, int | None, str]],
        *,
        author: str,
        reason: str = "",
        replace_all: bool = False,
    ) -> WriteResult:
        """Add ``(value, expire_ms, comment)`` entries (an existing value gets the new
        expiry and comment), or with ``replace_all`` make them the whole content, as one
        new version. Values invalid for the list's kind are rejected one by one (index,
        reason) and the rest applied. Entries without expiry get the default TTL."""
        rows = list(rows)

        def stage(registry: _core.ListRegistry, stamp: _Stamp) -> _core.StagedListWrite:
            return registry.stage(list_id, rows, *stamp, replace=replace_all)

        return await self._write_staged(scope, list_id, stage, author=author, reason=reason)

    async def import_entries(
        self,
        scope: str,
        list_id: str,
        chunks: Sequence[bytes],
        *,
        author: str,
        reason: str = "",
        replace_all: bool = False,
    ) -> WriteResult:
        """:meth:`write_entries` from the serialized ``ImportListEntriesRequest``
        messages of an import stream, decoded by the Rust core (no Python object per
        entry); ``InvalidArgumentError`` for a message that does not decode."""

        def stage(registry: _core.ListRegistry, stamp: _Stamp) -> _core.StagedListWrite:
            return registry.stage_import(list_id, chunks, *stamp, replace=replace_all)

        return await self._write_staged(scope, list_id, stage, author=author, reason=reason)

    async def _write_staged(
        self,
        scope: str,
        list_id: str,
        stage: Callable[[_core.ListRegistry, _Stamp], _core.StagedListWrite],
        *,
        author: str,
        reason: str,
    ) -> WriteResult:
        """Stage a write in the Rust registry (normalised, de-duplicated, the next
        content built: CPU work on a worker thread, so checks keep being served), store
        its change as one new list version, then publish it. A failed store leaves the
        served list as it was."""
        async with self._lock:
            lists = self._scope(scope).lists
            d = lists.get(list_id)
            now = self._clock()
            default = to_ms(now + d.default_entry_ttl) if d.default_entry_ttl else None
            registry = lists.registry
            stamp = (author, to_ms(now), default)

            def staged_change() -> tuple[_core.StagedListWrite, list[str], list[str]]:
                # Also the million Python strings of the change: off the loop.
                staged = stage(registry, stamp)
                return (staged, *staged.take_change())

            with core_errors():
                staged, add, remove = await asyncio.to_thread(staged_change)
            if add or remove:
                stored = await self._change_entries(
                    store_name(scope, list_id),
                    add=add,
                    remove=remove,
                    expected=d.version,
                    author=author,
                    reason=reason,
                    distinct=True,  # staged: de-duplicated, and no value both ways
                )
                lists.stamp(
                    list_id,
                    version=stored.version,
                    author=author,
                    reason=reason,
                    at=from_us(stored.created_at_us),
                )
            # A swap, but the content it replaces is freed here: off the loop.
            added, replaced = await asyncio.to_thread(registry.commit, staged)
            return WriteResult(added, replaced, staged.rejected, staged.received)

    async def remove_entries(
        self, scope: str, list_id: str, values: Sequence[str], *, author: str, reason: str = ""
    ) -> int:
        """Remove values (normalised like added ones; absent or invalid ones ignored)."""
        async with self._lock:
            lists = self._scope(scope).lists
            d = lists.get(list_id)
            keys = []
            for value in values:
                try:
                    keys.append(_core.ListRegistry.normalize(d.entry_kind.value, value))
                except _core.CoreInvalidArgument:
                    continue
            found = [r for r in lists.registry.lookup(list_id, keys) if r is not None]
            if not found:
                return 0
            stored = await self._change_entries(
                store_name(scope, list_id),
                add=[],
                remove=[encode_entry(r) for r in found],
                expected=d.version,
                author=author,
                reason=reason,
            )
            lists.stamp(
                list_id,
                version=stored.version,
                author=author,
                reason=reason,
                at=from_us(stored.created_at_us),
            )
            return lists.registry.remove(list_id, [r[0] for r in found])

    async def _put_list(
        self, scope: str, d: ListDefinition, expected: int, author: str, reason: str
    ) -> DefinitionVersion:
        try:
            return await self.store.put_definition(
                _request_id(),
                "list",
                store_name(scope, d.list_id),
                _list_body(d),
                status="active",
                author=author,
                reason=reason,
                expected_version=expected,
            )
        except FailedPreconditionError:
            raise AbortedError(
                f"list {d.list_id!r} changed concurrently", reason="ETAG_MISMATCH"
            ) from None

    async def _change_entries(
        self,
        name: str,
        *,
        add: Sequence[str],
        remove: Sequence[str],
        expected: int,
        author: str,
        reason: str,
        distinct: bool = False,
    ) -> DefinitionVersion:
        try:
            return await self.store.change_list_entries(
                _request_id(),
                name,
                add=add,
                remove=remove,
                author=author,
                reason=reason,
                expected_version=expected,
                distinct=distinct,
            )
        except FailedPreconditionError:
            raise AbortedError(
                f"list {name!r} changed concurrently", reason="ETAG_MISMATCH"
            ) from None

    # --- aggregate definitions -------------------------------------------------------

    def aggregate_state(self) -> Composed:
        """The document the live aggregates should compile: the current definitions."""
        return compose(self.pack.aggregates, self.aggregates.live())

    def _all_rules(self) -> list[tuple[str, Rule]]:
        out = [(CONSORTIUM, r) for r in self.consortium.book.rules()]
        for scope, ws in self.private.items():
            out += [(scope, r) for r in ws.book.rules()]
        return out

    def _refuse_if_read(self, aggregate_id: str, names: Sequence[str]) -> None:
        """``FailedPreconditionError`` naming the rules that read any of ``names``."""
        consortium = rules_reading([r for s, r in self._all_rules() if s == CONSORTIUM], names)
        private = rules_reading([r for s, r in self._all_rules() if s != CONSORTIUM], names)
        if consortium or private:
            # Partners' private rule ids stay private: counted, not named.
            said = ", ".join(consortium[:10])
            if private:
                said += f"{' and ' if said else ''}{len(private)} private rule(s) of partners"
            raise FailedPreconditionError(
                f"aggregate definition {aggregate_id!r}: its parameters"
                f" {', '.join(sorted(names))} are read by rules: {said}",
                reason="AGGREGATE_IN_USE",
            )

    def check_aggregate(self, candidate: AggregateDefinition) -> Composed:
        """Compile the live document with ``candidate`` in place of its current version;
        ``InvalidArgumentError`` naming the request field when it does not compile."""
        check_attributes(candidate)
        others = [d for d in self.aggregates.live() if d.aggregate_id != candidate.aggregate_id]
        composed = compose(self.pack.aggregates, [*others, candidate])
        self._compile(composed, candidate.aggregate_id)
        return composed

    def _compile(self, composed: Composed, aggregate_id: str) -> None:
        try:
            AggregateStore(composed.document)
        except InvalidArgumentError as exc:
            violations = []
            for v in exc.violations:
                mapped = proto_field(v.field, composed, aggregate_id)
                if mapped is None:
                    # Something else (a pack parameter) reads what the change removes.
                    raise FailedPreconditionError(
                        f"aggregate definition {aggregate_id!r}: the change breaks"
                        f" {v.field}: {v.description}",
                        reason="AGGREGATE_IN_USE",
                    ) from None
                violations.append(FieldViolation(mapped, v.description))
            raise InvalidArgumentError(
                "; ".join(f"{v.field}: {v.description}" for v in violations),
                violations=violations,
            ) from None

    async def create_aggregate(
        self, d: AggregateDefinition, *, author: str, reason: str, validate_only: bool = False
    ) -> AggregateDefinition:
        """Create a definition (version 1, or the next one of a deleted id)."""
        async with self._lock:
            latest = self.aggregates.latest(d.aggregate_id)
            if latest is not None and latest.change is not VersionChange.DELETED:
                raise AlreadyExistsError(f"aggregate definition {d.aggregate_id!r} exists")
            number = 1 if latest is None else latest.version + 1
            candidate = with_version(d, number, author, reason, self._clock())
            self.check_aggregate(candidate)
            if validate_only:
                return candidate
            v = AggregateVersion(
                candidate,
                VersionChange.CREATED,
                author,
                reason,
                candidate.update_time or self._clock(),
            )
            return (await self._commit_aggregate(v)).definition

    async def update_aggregate(
        self,
        d: AggregateDefinition,
        *,
        etag: str,
        author: str,
        reason: str,
        validate_only: bool = False,
    ) -> AggregateDefinition:
        """A new version with ``d``'s content; refused while a rule reads a parameter
        the update removes."""
        async with self._lock:
            current = self.aggregates.get(d.aggregate_id)
            self.aggregates.check_etag(d.aggregate_id, etag)
            removed = sorted(set(current.param_names) - set(d.param_names))
            self._refuse_if_read(d.aggregate_id, removed)
            candidate = with_version(
                replace(d, create_time=current.create_time),
                current.version + 1,
                author,
                reason,
                self._clock(),
            )
            self.check_aggregate(candidate)
            if validate_only:
                return candidate
            v = AggregateVersion(
                candidate,
                VersionChange.UPDATED,
                author,
                reason,
                candidate.update_time or self._clock(),
            )
            return (await self._commit_aggregate(v)).definition

    async def delete_aggregate(
        self, aggregate_id: str, *, etag: str, author: str, reason: str
    ) -> AggregateVersion:
        """Delete a definition (a DELETED version; restorable); refused
        (``FAILED_PRECONDITION``) while a rule reads one of its parameters."""
        async with self._lock:
            current = self.aggregates.get(aggregate_id)
            self.aggregates.check_etag(aggregate_id, etag)
            self._refuse_if_read(aggregate_id, current.param_names)
            others = [d for d in self.aggregates.live() if d.aggregate_id != aggregate_id]
            self._compile(compose(self.pack.aggregates, others), aggregate_id)
            at = self._clock()
            deleted = with_version(current, current.version + 1, author, reason, at)
            v = AggregateVersion(deleted, VersionChange.DELETED, author, reason, at)
            return await self._commit_aggregate(v)

    async def restore_aggregate(
        self, aggregate_id: str, number: int, *, etag: str, author: str, reason: str
    ) -> AggregateDefinition:
        """Make version ``number``'s content current again, as a new version."""
        async with self._lock:
            old = self.aggregates.version(aggregate_id, number)
            latest = self.aggregates.check_etag(aggregate_id, etag)
            assert latest is not None  # version() found the id
            if latest.change is not VersionChange.DELETED:
                removed = sorted(
                    set(latest.definition.param_names) - set(old.definition.param_names)
                )
                self._refuse_if_read(aggregate_id, removed)
            candidate = with_version(
                replace(old.definition, create_time=latest.definition.create_time),
                latest.version + 1,
                author,
                reason,
                self._clock(),
            )
            self.check_aggregate(candidate)
            v = AggregateVersion(
                candidate,
                VersionChange.RESTORED,
                author,
                reason,
                candidate.update_time or self._clock(),
                restored_from_version=number,
            )
            return (await self._commit_aggregate(v)).definition

    async def _commit_aggregate(self, v: AggregateVersion) -> AggregateVersion:
        stored = await self._put_aggregate(v, expected=v.version - 1)
        at = from_us(stored.created_at_us)
        stamped = replace(v, create_time=at, definition=replace(v.definition, update_time=at))
        return self.aggregates.commit(stamped)

    async def _put_aggregate(self, v: AggregateVersion, expected: int) -> DefinitionVersion:
        try:
            return await self.store.put_definition(
                _request_id(),
                "aggregate",
                store_name(CONSORTIUM, v.definition.aggregate_id),
                version_body(v),
                status="deleted" if v.change is VersionChange.DELETED else "active",
                author=v.author,
                reason=v.change_reason,
                expected_version=expected,
            )
        except FailedPreconditionError:
            raise AbortedError(
                f"aggregate definition {v.definition.aggregate_id!r} changed concurrently",
                reason="ETAG_MISMATCH",
            ) from None

    # --- settings --------------------------------------------------------------------

    async def update_settings(
        self, settings: ScoringSettings, *, etag: str, author: str, reason: str
    ) -> ScoringSettings:
        """New consortium scoring settings, as a new version."""
        async with self._lock:
            if etag != self.settings.etag:
                raise AbortedError(
                    "the scoring settings changed since they were read", reason="ETAG_MISMATCH"
                )
            if settings.zone_threshold < 1:
                raise InvalidArgumentError("must be >= 1", field="scoring_settings.zone_threshold")
            try:
                stored = await self.store.put_definition(
                    _request_id(),
                    "settings",
                    SETTINGS_NAME,
                    json.dumps({"zone_threshold": settings.zone_threshold}).encode(),
                    status="active",
                    author=author,
                    reason=reason,
                    expected_version=self.settings.version,
                )
            except FailedPreconditionError:
                raise AbortedError(
                    "the scoring settings changed concurrently", reason="ETAG_MISMATCH"
                ) from None
            self.settings = _settings_from(stored)
            return self.settings


def _settings_from(stored: DefinitionVersion) -> ScoringSettings:
    raw = json.loads(stored.body)
    return ScoringSettings(
        int(raw["zone_threshold"]),
        stored.version,
        stored.author,
        stored.reason,
        from_us(stored.created_at_us),
    )


def _has_rule(book: RuleBook, rule_id: str) -> bool:
    try:
        book.versions(rule_id)
    except NotFoundError:
        return False
    return True


__all__ = [
    "CONSORTIUM",
    "AggregateDefinition",
    "RuleAdmin",
    "ScoringSettings",
    "Workspace",
    "decode_entry",
    "encode_entry",
    "parse_store_name",
    "store_name",
]
