"""Where strategies and their versions live: a Protocol and an in-memory implementation.

The durable store (being built on the storage branch) will implement the same
Protocol; the domain service only talks to :class:`StrategyRepository`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol


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

    def put(self, record: StrategyRecord) -> None:
        """Create or replace a strategy record."""
        ...

    def list_all(self) -> list[StrategyRecord]:
        """Every strategy, by name."""
        ...

    def add_version(self, version: StrategyVersionRecord) -> None:
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

    def put(self, record: StrategyRecord) -> None:
        """Create or replace a strategy record."""
        self._strategies[record.name] = record

    def list_all(self) -> list[StrategyRecord]:
        """Every strategy, by name."""
        return [self._strategies[k] for k in sorted(self._strategies)]

    def add_version(self, version: StrategyVersionRecord) -> None:
        """Store a new version."""
        self._versions.setdefault(version.name, []).append(version)

    def get_version(self, name: str, version: int) -> StrategyVersionRecord | None:
        """One version, or None."""
        versions = self._versions.get(name, [])
        return versions[version - 1] if 0 < version <= len(versions) else None

    def list_versions(self, name: str) -> list[StrategyVersionRecord]:
        """Every version of ``name``, oldest first."""
        return list(self._versions.get(name, []))
