"""Where strategies and their versions live: a Protocol, an in-memory implementation
and one on the durable store.

Reads are synchronous and served from memory (an evaluation never waits on the
database); writes are async and, in :class:`StoreStrategyRepository`, return only once
the store has committed them. The store keeps strategies as versioned definitions of
kind ``"strategy"``: ``{id}`` holds the graph versions (one definition version per
strategy version, so the numbers agree) and ``{id}/meta`` the record (descriptive
fields and every publication), a new definition version per change — strategy ids
have no ``/``, so the two never collide.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, Protocol

from lendgate.store import Store
from lendgate.timeutil import from_us, to_us


class VersionState(Enum):
    """Life cycle of a version: a draft until published; retired once replaced."""

    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


@dataclass(frozen=True)
class TestCase:
    """A stored test case: an input and the expected output (JDM's ``tests``)."""

    __test__ = False  # not a pytest class

    test_case_id: str
    input: Any
    expected_output: Any
    description: str = ""


@dataclass(frozen=True)
class Challenger:
    """A challenger version and its share of traffic (basis points, 0..10000)."""

    version: int
    traffic_bps: int
    label: str = ""


@dataclass(frozen=True)
class PublishSettings:
    """How a published version is served: A/B challengers, sticky key, active window."""

    challengers: tuple[Challenger, ...] = ()
    sticky_key_path: str = ""
    active_from: datetime | None = None
    active_until: datetime | None = None


@dataclass(frozen=True)
class Publication:
    """What an environment serves, and who published it when."""

    environment: str
    champion_version: int
    settings: PublishSettings
    author: str
    comment: str
    publish_time: datetime


@dataclass
class StrategyRecord:
    """A strategy: its metadata and, per environment, the history of publications."""

    name: str
    display_name: str
    description: str
    tags: list[str]
    create_time: datetime
    update_time: datetime
    latest_version: int = 0
    # Per environment, oldest first; the last one is live. Roll-back appends.
    publications: dict[str, list[Publication]] = field(default_factory=dict)
    etag: str = "0"


@dataclass(frozen=True)
class StrategyVersionRecord:
    """An immutable version: the graph, its test cases, and who made it."""

    name: str
    version: int
    graph_json: str
    test_cases: tuple[TestCase, ...]
    content_sha256: str
    comment: str
    author: str
    create_time: datetime


class StrategyRepository(Protocol):
    """Storage of strategies and versions (versions are immutable once added)."""

    def get(self, name: str) -> StrategyRecord | None:
        """The strategy ``name``, or None."""
        ...

    async def put(self, record: StrategyRecord) -> None:
        """Create or replace a strategy record."""
        ...

    def list_all(self) -> list[StrategyRecord]:
        """Every strategy, by name."""
        ...

    async def add_version(self, version: StrategyVersionRecord) -> None:
        """Store a new version."""
        ...

    def get_version(self, name: str, version: int) -> StrategyVersionRecord | None:
        """One version, or None."""
        ...

    def list_versions(self, name: str) -> list[StrategyVersionRecord]:
        """Every version of ``name``, oldest first."""
        ...


class InMemoryStrategyRepository:
    """A :class:`StrategyRepository` in a dict (tests, development, single process)."""

    def __init__(self) -> None:
        self._strategies: dict[str, StrategyRecord] = {}
        self._versions: dict[str, list[StrategyVersionRecord]] = {}

    def get(self, name: str) -> StrategyRecord | None:
        """The strategy ``name``, or None."""
        return self._strategies.get(name)

    async def put(self, record: StrategyRecord) -> None:
        """Create or replace a strategy record (its ``etag`` counts the writes)."""
        previous = self._strategies.get(record.name)
        record.etag = str(int(previous.etag) + 1) if previous is not None else "1"
        self._strategies[record.name] = record

    def list_all(self) -> list[StrategyRecord]:
        """Every strategy, by name."""
        return [self._strategies[k] for k in sorted(self._strategies)]

    async def add_version(self, version: StrategyVersionRecord) -> None:
        """Store a new version."""
        self._versions.setdefault(version.name, []).append(version)

    def get_version(self, name: str, version: int) -> StrategyVersionRecord | None:
        """One version, or None."""
        versions = self._versions.get(name, [])
        return versions[version - 1] if 0 < version <= len(versions) else None

    def list_versions(self, name: str) -> list[StrategyVersionRecord]:
        """Every version of ``name``, oldest first."""
        return list(self._versions.get(name, []))


KIND: Final = "strategy"
META = "/meta"


def _us(t: datetime | None) -> int | None:
    return None if t is None else to_us(t)


def _time(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


def _record_json(r: StrategyRecord) -> bytes:
    def settings(s: PublishSettings) -> dict[str, Any]:
        return {
            "challengers": [[c.version, c.traffic_bps, c.label] for c in s.challengers],
            "sticky_key_path": s.sticky_key_path,
            "active_from_us": _us(s.active_from),
            "active_until_us": _us(s.active_until),
        }

    return json.dumps(
        {
            "display_name": r.display_name,
            "description": r.description,
            "tags": r.tags,
            "create_time_us": _us(r.create_time),
            "update_time_us": _us(r.update_time),
            "latest_version": r.latest_version,
            "publications": {
                env: [
                    {
                        "champion_version": p.champion_version,
                        "settings": settings(p.settings),
                        "author": p.author,
                        "comment": p.comment,
                        "publish_time_us": _us(p.publish_time),
                    }
                    for p in history
                ]
                for env, history in r.publications.items()
            },
        }
    ).encode()


def _record_from(name: str, body: bytes, etag: int) -> StrategyRecord:
    d = json.loads(body)

    def settings(s: dict[str, Any]) -> PublishSettings:
        return PublishSettings(
            challengers=tuple(Challenger(v, bps, label) for v, bps, label in s["challengers"]),
            sticky_key_path=s["sticky_key_path"],
            active_from=_time(s["active_from_us"]),
            active_until=_time(s["active_until_us"]),
        )

    record = StrategyRecord(
        name,
        d["display_name"],
        d["description"],
        list(d["tags"]),
        _time(d["create_time_us"]) or datetime.now(UTC),
        _time(d["update_time_us"]) or datetime.now(UTC),
        d["latest_version"],
        {
            env: [
                Publication(
                    env,
                    p["champion_version"],
                    settings(p["settings"]),
                    p["author"],
                    p["comment"],
                    _time(p["publish_time_us"]) or datetime.now(UTC),
                )
                for p in history
            ]
            for env, history in d["publications"].items()
        },
        str(etag),
    )
    return record


def _version_json(v: StrategyVersionRecord) -> bytes:
    return json.dumps(
        {
            "graph_json": v.graph_json,
            "content_sha256": v.content_sha256,
            "test_cases": [
                [t.test_case_id, t.input, t.expected_output, t.description] for t in v.test_cases
            ],
        }
    ).encode()


class StoreStrategyRepository(InMemoryStrategyRepository):
    """A :class:`StrategyRepository` on the durable store, cached in memory.

    Call :meth:`load` once at start; afterwards reads come from memory and every
    write is committed to the store before it is applied to the cache. The record's
    ``etag`` is the version of its ``{id}/meta`` definition, so two servers editing
    one strategy cannot silently overwrite each other (``FailedPreconditionError``).
    """

    def __init__(self, store: Store) -> None:
        super().__init__()
        self._store = store

    async def load(self) -> None:
        """Read every strategy and version from the store into memory."""
        for latest in await self._store.list_definitions(KIND):
            if not latest.name.endswith(META):
                continue
            name = latest.name.removesuffix(META)
            self._strategies[name] = _record_from(name, latest.body, latest.version)
            versions = []
            for d in await self._store.list_definition_versions(KIND, name):
                body = json.loads(d.body)
                versions.append(
                    StrategyVersionRecord(
                        name=name,
                        version=d.version,
                        graph_json=body["graph_json"],
                        test_cases=tuple(TestCase(*t) for t in body["test_cases"]),
                        content_sha256=body["content_sha256"],
                        comment=d.reason,
                        author=d.author,
                        create_time=_time(d.created_at_us) or datetime.now(UTC),
                    )
                )
            self._versions[name] = versions

    async def put(self, record: StrategyRecord) -> None:
        """Write the record as the next version of ``{id}/meta`` (checked against its etag)."""
        previous = self._strategies.get(record.name)
        expected = 0 if previous is None else int(previous.etag)
        stored = await self._store.put_definition(
            uuid.uuid4().hex,
            KIND,
            record.name + META,
            _record_json(record),
            status="active",
            author="",
            reason="",
            expected_version=expected,
        )
        record.etag = str(stored.version)
        self._strategies[record.name] = record

    async def add_version(self, version: StrategyVersionRecord) -> None:
        """Write a new graph version; its number must be the next of ``{id}``."""
        await self._store.put_definition(
            uuid.uuid4().hex,
            KIND,
            version.name,
            _version_json(version),
            status=VersionState.DRAFT.value,
            author=version.author,
            reason=version.comment,
            expected_version=version.version - 1,
        )
        await super().add_version(version)
