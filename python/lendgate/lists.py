"""Black, white and grey lists (Rust: ``core_rs/lendgate-core/src/lists.rs``).

A :class:`Lists` holds one partner's lists: their definitions (here, in Python: they
change rarely and are read by the admin API) and their entries (in Rust, where
``in_list("list_id", value)`` reads them without a lock on every event). Values are
normalised by the list's entry kind; an entry matches only while the *event* time is
before its ``expire_time``. See ``docs/RULES.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from lendgate import _core
from lendgate.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    core_errors,
)


class ListType(StrEnum):
    """Colour of a list (proto ``ListType`` without the prefix)."""

    BLACK = "BLACK"
    WHITE = "WHITE"
    GREY = "GREY"


class ListEntryKind(StrEnum):
    """What the values are; decides their normalisation (proto ``ListEntryKind``)."""

    TAX_ID = "TAX_ID"
    PASSPORT = "PASSPORT"
    PHONE = "PHONE"
    IP = "IP"
    CARD = "CARD"
    DEVICE = "DEVICE"
    EMAIL = "EMAIL"
    ACCOUNT = "ACCOUNT"
    STRING = "STRING"


def to_ms(t: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime."""
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """The UTC datetime of milliseconds since the Unix epoch."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class ListDefinition:
    """A list's definition (proto ``List``), without its entries."""

    list_id: str
    entry_kind: ListEntryKind
    type: ListType
    display_name: str = ""
    description: str = ""
    default_entry_ttl: timedelta | None = None
    tags: tuple[str, ...] = ()
    version: int = 0
    update_author: str = ""
    change_reason: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def etag(self) -> str:
        """Opaque version tag for optimistic concurrency."""
        return f"v{self.version}"


@dataclass(frozen=True)
class ListEntry:
    """An entry (proto ``ListEntry``); ``value`` is normalised when read back."""

    value: str
    expire_time: datetime | None = None
    comment: str = ""
    create_time: datetime | None = None
    author: str = ""


@dataclass(frozen=True)
class WriteResult:
    """What a write did: new values, replaced values, rejected (index, reason), and
    how many entries it was given (valid or not, repeated or not)."""

    added: int
    replaced: int
    rejected: list[tuple[int, str]] = field(default_factory=list)
    received: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Lists:
    """One partner's lists: definitions and entries."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._definitions: dict[str, ListDefinition] = {}
        self.registry = _core.ListRegistry()
        """The Rust registry that compiled rule sets read (``in_list``)."""

    def create(
        self, definition: ListDefinition, *, author: str, reason: str = ""
    ) -> ListDefinition:
        """Create an empty list; ``AlreadyExistsError`` if the id is taken."""
        if definition.list_id in self._definitions:
            raise AlreadyExistsError(f"list {definition.list_id!r} already exists")
        now = self._clock()
        with core_errors():
            self.registry.create(definition.list_id, definition.entry_kind, definition.type)
        stored = replace(
            definition,
            version=1,
            update_author=author,
            change_reason=reason,
            create_time=now,
            update_time=now,
        )
        self._definitions[definition.list_id] = stored
        return stored

    def get(self, list_id: str) -> ListDefinition:
        """A list's definition; ``NotFoundError`` if there is none."""
        try:
            return self._definitions[list_id]
        except KeyError:
            raise NotFoundError(f"list {list_id!r} not found") from None

    def all(self) -> list[ListDefinition]:
        """All definitions, ordered by list id."""
        return [self._definitions[k] for k in sorted(self._definitions)]

    def update(
        self, definition: ListDefinition, *, etag: str, author: str, reason: str = ""
    ) -> ListDefinition:
        """Replace the editable fields (not the entry kind) of a list."""
        current = self._checked(definition.list_id, etag)
        if definition.entry_kind != current.entry_kind:
            raise FailedPreconditionError("a list's entry kind cannot change")
        stored = replace(
            definition,
            version=current.version + 1,
            update_author=author,
            change_reason=reason,
            create_time=current.create_time,
            update_time=self._clock(),
        )
        self._definitions[definition.list_id] = stored
        return stored

    def delete(self, list_id: str, *, etag: str) -> None:
        """Delete a list and its entries."""
        self._checked(list_id, etag)
        with core_errors():
            self.registry.delete(list_id)
        del self._definitions[list_id]

    def add_entries(
        self, list_id: str, entries: Iterable[ListEntry], *, author: str, replace_all: bool = False
    ) -> WriteResult:
        """Add entries (an existing value gets the new expiry and comment), or with
        ``replace_all`` make them the whole content. Atomic; invalid values are
        rejected one by one. Entries without expiry get the list's default TTL."""
        definition = self.get(list_id)
        now = self._clock()
        default_expiry = (
            to_ms(now + definition.default_entry_ttl) if definition.default_entry_ttl else None
        )
        rows = [
            (
                e.value,
                to_ms(e.expire_time) if e.expire_time else default_expiry,
                e.comment,
                to_ms(now),
                author,
            )
            for e in entries
        ]
        with core_errors():
            added, replaced, rejected = self.registry.write(list_id, rows, replace_all)
        self._touch(list_id, now)
        return WriteResult(added, replaced, rejected, len(rows))

    def load_lines(
        self, list_id: str, text: bytes, *, author: str, replace_all: bool = False
    ) -> WriteResult:
        """Bulk load tab-separated lines ``value[\\texpire_ms[\\tcomment]]`` in one call
        (the GIL is released). Rejections name 0-based line numbers."""
        self.get(list_id)
        now = self._clock()
        with core_errors():
            added, replaced, rejected = self.registry.load_lines(
                list_id, text, author, to_ms(now), replace_all
            )
        self._touch(list_id, now)
        return WriteResult(added, replaced, rejected)

    def remove_entries(self, list_id: str, values: Sequence[str]) -> int:
        """Remove values (normalised like added ones); returns how many were there."""
        self.get(list_id)
        with core_errors():
            removed = self.registry.remove(list_id, list(values))
        if removed:
            self._touch(list_id, self._clock())
        return removed

    def contains(self, list_id: str, value: str, at: datetime) -> bool:
        """Whether ``value`` is a live member at event time ``at``."""
        with core_errors():
            return self.registry.contains(list_id, value, to_ms(at))

    def entry_count(self, list_id: str, at: datetime | None = None) -> int:
        """Number of entries live at ``at`` (default: now)."""
        with core_errors():
            return self.registry.live_count(list_id, to_ms(at or self._clock()))

    def entries(
        self, list_id: str, *, limit: int = 1000, after: str | None = None
    ) -> list[ListEntry]:
        """Live entries ordered by value, ``limit`` at most, values after ``after``."""
        with core_errors():
            rows = self.registry.entries(list_id, to_ms(self._clock()), limit, after)
        return [
            ListEntry(value, from_ms(exp) if exp is not None else None, comment, from_ms(ct), who)
            for value, exp, comment, ct, who in rows
        ]

    def install(self, definition: ListDefinition) -> None:
        """Put a stored definition (with its version and times) and an empty list in
        place, as loaded from the store; ``AlreadyExistsError`` if the id is taken."""
        if definition.list_id in self._definitions:
            raise AlreadyExistsError(f"list {definition.list_id!r} already exists")
        with core_errors():
            self.registry.create(definition.list_id, definition.entry_kind, definition.type)
        self._definitions[definition.list_id] = definition

    def link(self, source: Lists, list_id: str) -> None:
        """Let this registry's ``in_list`` see ``source``'s list ``list_id`` (shared
        content, definition kept by ``source``): a partner sees the consortium's lists."""
        with core_errors():
            self.registry.link(source.registry, list_id)

    def unlink(self, list_id: str) -> None:
        """Drop a list linked with :meth:`link` (its owner deleted it)."""
        if list_id not in self._definitions and list_id in self.registry.ids():
            with core_errors():
                self.registry.delete(list_id)

    def stamp(
        self, list_id: str, *, version: int, author: str, reason: str, at: datetime
    ) -> ListDefinition:
        """Record that a change (of entries) made ``version`` of the list."""
        stamped = replace(
            self.get(list_id),
            version=version,
            update_author=author,
            change_reason=reason,
            update_time=at,
        )
        self._definitions[list_id] = stamped
        return stamped

    def _checked(self, list_id: str, etag: str) -> ListDefinition:
        current = self.get(list_id)
        if etag != current.etag:
            raise AbortedError(
                f"list {list_id!r} changed since it was read", reason="ETAG_MISMATCH"
            )
        return current

    def _touch(self, list_id: str, now: datetime) -> None:
        self._definitions[list_id] = replace(self._definitions[list_id], update_time=now)
