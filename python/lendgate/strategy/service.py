"""The strategy domain service: register, version, publish, roll back, evaluate, test.

No gRPC types here; ``servers/strategy.py`` converts the contract to these calls.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2

from lendgate.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from lendgate.strategy.engine import CompiledStrategy, Decision, Host, NodeServices, PythonNodes
from lendgate.strategy.nodes import NodeRunner, validate_custom_nodes
from lendgate.strategy.repository import (
    InMemoryStrategyRepository,
    Publication,
    PublishSettings,
    StrategyRecord,
    StrategyRepository,
    StrategyVersionRecord,
    TestCase,
)
from lendgate.strategy.testing import Coverage, NodeCoverage, diff

DEFAULT_ENVIRONMENT = "production"
SUPPORTED_CUSTOM = frozenset({"python", "model", "lookup", "aggregate"})


@dataclass(frozen=True)
class Evaluation:
    """A decision with its provenance: which strategy version and which A/B variant."""

    strategy: str
    version: int
    variant: str
    decision: Decision
    processing_seconds: float


@dataclass(frozen=True)
class TestResult:
    """One test case's outcome."""

    __test__ = False

    test_case_id: str
    passed: bool
    actual: Any
    error: str | None
    diffs: list[tuple[str, Any, Any]] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def _bucket(name: str, key: str) -> int:
    digest = hashlib.sha256(f"{name}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def _dig(data: Any, path: str) -> Any:
    """The value at dotted ``path`` of a dict or a ``google.protobuf.Struct``."""
    if isinstance(data, struct_pb2.Struct):
        value: Any = data
        for part in path.split("."):
            if not isinstance(value, struct_pb2.Struct) or part not in value.fields:
                return None
            item = value.fields[part]
            is_struct = item.WhichOneof("kind") == "struct_value"
            value = item.struct_value if is_struct else json_format.MessageToDict(item)
        return value
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


class StrategyService:
    """Strategies as versioned JDM graphs, evaluated by the Rust core."""

    def __init__(
        self,
        repository: StrategyRepository | None = None,
        python_nodes: PythonNodes | None = None,
        node_services: NodeServices | None = None,
        node_runner: NodeRunner | None = None,
    ) -> None:
        self._repo: StrategyRepository = repository or InMemoryStrategyRepository()
        self.python_nodes = python_nodes or PythonNodes()
        # Versions are immutable, so compiled graphs are cached for ever.
        self._compiled: dict[tuple[str, int], CompiledStrategy] = {}
        self._host = Host(self._load_published, self.python_nodes, node_services, node_runner)
        self._register_lock = asyncio.Lock()

    async def load(self) -> None:
        """Read the repository's strategies (a durable repository loads them at start)."""
        load = getattr(self._repo, "load", None)
        if load is not None:
            await load()
        self._compiled.clear()

    @property
    def host(self) -> Host:
        """What the core calls back into: sub-strategies (published) and custom nodes."""
        return self._host

    # --- strategies ------------------------------------------------------------

    async def register(
        self,
        name: str,
        *,
        display_name: str = "",
        description: str = "",
        tags: list[str] | None = None,
    ) -> StrategyRecord:
        """Register a new strategy (no version yet)."""
        if not name or "/" in name:
            raise InvalidArgumentError(
                "a strategy id is required and has no '/'", field="strategy_id"
            )
        exists = AlreadyExistsError(f"strategy {name!r} exists already")
        # The check and the write are one step for this process (concurrent calls wait
        # here); another process sharing the store is caught by the store's version check.
        async with self._register_lock:
            if self._repo.get(name) is not None:
                raise exists
            now = _now()
            record = StrategyRecord(
                name, display_name or name, description, list(tags or []), now, now
            )
            try:
                await self._repo.put(record)
            except FailedPreconditionError:
                raise exists from None
        return record

    def get(self, name: str) -> StrategyRecord:
        """The strategy ``name``; ``NotFoundError`` if unknown."""
        record = self._repo.get(name)
        if record is None:
            raise NotFoundError(f"strategy {name!r} not found")
        return record

    def list_all(self) -> list[StrategyRecord]:
        """Every strategy."""
        return self._repo.list_all()

    # --- versions --------------------------------------------------------------

    def validate(self, graph_json: str) -> CompiledStrategy:
        """Compile and check a graph: sub-strategies exist, custom nodes are known."""
        compiled = CompiledStrategy.compile(graph_json)
        for key in compiled.sub_decisions():
            if self._repo.get(key) is None:
                raise InvalidArgumentError(
                    f"decision node calls strategy {key!r}, which is not registered",
                    field="graph_json",
                )
        for kind in compiled.custom_kinds():
            if kind not in SUPPORTED_CUSTOM:
                raise InvalidArgumentError(f"unknown custom node kind {kind!r}", field="graph_json")
        validate_custom_nodes(graph_json)
        return compiled

    async def create_version(
        self,
        name: str,
        graph_json: str,
        *,
        test_cases: list[TestCase] | None = None,
        comment: str = "",
        author: str = "",
        validate_only: bool = False,
    ) -> StrategyVersionRecord:
        """Save a new immutable version (a draft) after validating the graph."""
        record = copy.deepcopy(self.get(name))
        compiled = self.validate(graph_json)
        version = StrategyVersionRecord(
            name=name,
            version=record.latest_version + 1,
            graph_json=graph_json,
            test_cases=tuple(test_cases or ()),
            content_sha256=hashlib.sha256(graph_json.encode()).hexdigest(),
            comment=comment,
            author=author,
            create_time=_now(),
        )
        if validate_only:
            return version
        await self._repo.add_version(version)
        self._compiled[(name, version.version)] = compiled
        record.latest_version = version.version
        record.update_time = version.create_time
        await self._repo.put(record)
        return version

    def get_version(self, name: str, version: int) -> StrategyVersionRecord:
        """One version; ``NotFoundError`` if unknown."""
        self.get(name)
        found = self._repo.get_version(name, version)
        if found is None:
            raise NotFoundError(f"strategy {name!r} has no version {version}")
        return found

    def list_versions(self, name: str) -> list[StrategyVersionRecord]:
        """Every version of ``name``, oldest first."""
        self.get(name)
        return self._repo.list_versions(name)

    async def publish(
        self,
        name: str,
        version: int,
        *,
        environment: str = DEFAULT_ENVIRONMENT,
        settings: PublishSettings | None = None,
        comment: str = "",
        author: str = "",
        etag: str = "",
    ) -> StrategyRecord:
        """Serve ``version`` as the champion of ``environment`` (with optional challengers)."""
        record = copy.deepcopy(self.get(name))
        if etag and etag != record.etag:
            raise FailedPreconditionError("the strategy changed since it was read (stale etag)")
        settings = settings or PublishSettings()
        for v in [version, *(c.version for c in settings.challengers)]:
            self.get_version(name, v)
        if sum(c.traffic_bps for c in settings.challengers) > 10_000:
            raise InvalidArgumentError(
                "challengers take more than 100% of traffic", field="settings"
            )
        if settings.challengers and not settings.sticky_key_path:
            raise InvalidArgumentError(
                "an A/B split needs a sticky key path", field="settings.sticky_key_path"
            )
        env = environment or DEFAULT_ENVIRONMENT
        record.publications.setdefault(env, []).append(
            Publication(env, version, settings, author, comment, _now())
        )
        record.update_time = _now()
        await self._repo.put(record)
        return record

    async def rollback(
        self,
        name: str,
        *,
        environment: str = DEFAULT_ENVIRONMENT,
        version: int | None = None,
        comment: str = "",
        author: str = "",
    ) -> StrategyRecord:
        """Serve the previous publication again (or ``version``, if given)."""
        record = self.get(name)
        env = environment or DEFAULT_ENVIRONMENT
        history = record.publications.get(env, [])
        if version is None:
            if len(history) < 2:
                raise FailedPreconditionError(f"nothing to roll back to in {env!r}")
            target = history[-2]
            version, settings = target.champion_version, target.settings
        else:
            settings = PublishSettings()
        return await self.publish(
            name,
            version,
            environment=env,
            settings=settings,
            comment=comment or "rollback",
            author=author,
        )

    # --- evaluation ------------------------------------------------------------

    def compiled(self, name: str, version: int) -> CompiledStrategy:
        """The compiled graph of a version (cached)."""
        key = (name, version)
        if key not in self._compiled:
            self._compiled[key] = CompiledStrategy.compile(
                self.get_version(name, version).graph_json
            )
        return self._compiled[key]

    def live(self, name: str, environment: str = DEFAULT_ENVIRONMENT) -> Publication:
        """The publication ``environment`` serves; ``FailedPreconditionError`` if none."""
        history = self.get(name).publications.get(environment or DEFAULT_ENVIRONMENT, [])
        if not history:
            raise FailedPreconditionError(f"strategy {name!r} has no published version")
        return history[-1]

    def _load_published(self, name: str) -> CompiledStrategy:
        return self.compiled(name, self.live(name).champion_version)

    def evaluate(
        self,
        name: str,
        data: Any,
        *,
        version: int | None = None,
        environment: str = DEFAULT_ENVIRONMENT,
        trace: bool = False,
    ) -> Evaluation:
        """Evaluate ``data`` with ``version``, or with what ``environment`` serves (A/B too).

        ``data`` is JSON-like, or a ``google.protobuf.Struct`` (the gRPC path: it is
        handed to the core as its serialized bytes and the output comes back as a
        serialized Struct, see :meth:`Decision.raw`).
        """
        start = time.perf_counter()
        resolved = self._resolve(name, data, version, environment)
        return self._run(name, resolved, data, trace=trace, start=start)

    async def evaluate_async(
        self,
        name: str,
        data: Any,
        *,
        version: int | None = None,
        environment: str = DEFAULT_ENVIRONMENT,
        trace: bool = False,
    ) -> Evaluation:
        """:meth:`evaluate` for an event loop: a graph that can call back into Python
        (custom nodes, sub-strategies) runs on a worker thread, so a slow node waits
        there, not on the loop; a graph without them (microseconds) runs inline."""
        start = time.perf_counter()
        resolved = self._resolve(name, data, version, environment)
        compiled = resolved[2]
        if compiled.custom_kinds() or compiled.sub_decisions():
            return await asyncio.to_thread(
                functools.partial(self._run, name, resolved, data, trace=trace, start=start)
            )
        return self._run(name, resolved, data, trace=trace, start=start)

    def _resolve(
        self, name: str, data: Any, version: int | None, environment: str
    ) -> tuple[int, str, CompiledStrategy]:
        variant = ""
        if version is None:
            publication = self.live(name, environment)
            version, variant = self._pick(name, publication, data)
        return version, variant, self.compiled(name, version)

    def _run(
        self,
        name: str,
        resolved: tuple[int, str, CompiledStrategy],
        data: Any,
        *,
        trace: bool,
        start: float,
    ) -> Evaluation:
        version, variant, compiled = resolved
        if isinstance(data, struct_pb2.Struct):
            decision = compiled.evaluate_struct(
                data.SerializeToString(), trace=trace, host=self._host
            )
        else:
            decision = compiled.evaluate(data, trace=trace, host=self._host)
        return Evaluation(name, version, variant, decision, time.perf_counter() - start)

    def _pick(self, name: str, publication: Publication, data: Any) -> tuple[int, str]:
        settings = publication.settings
        now = _now()
        active = (settings.active_from is None or settings.active_from <= now) and (
            settings.active_until is None or now < settings.active_until
        )
        if not settings.challengers or not active:
            return publication.champion_version, "champion" if settings.challengers else ""
        key = _dig(data, settings.sticky_key_path)
        if isinstance(key, float) and key.is_integer():
            key = int(key)  # a Struct carries 42 as 42.0: the same client, the same bucket
        bucket = _bucket(name, json.dumps(key, sort_keys=True))
        edge = 0
        for challenger in settings.challengers:
            edge += challenger.traffic_bps
            if bucket < edge:
                return challenger.version, challenger.label or f"challenger-v{challenger.version}"
        return publication.champion_version, "champion"

    def run_tests(
        self, name: str, version: int | None = None, cases: list[TestCase] | None = None
    ) -> list[TestResult]:
        """Run ``cases`` (default: the stored ones) against a version (default: latest)."""
        return self.run_tests_with_coverage(name, version, cases)[0]

    def run_tests_with_coverage(
        self, name: str, version: int | None = None, cases: list[TestCase] | None = None
    ) -> tuple[list[TestResult], list[NodeCoverage]]:
        """Like :meth:`run_tests`, with the table rows and switch branches the cases hit."""
        record = self.get(name)
        version = version or record.latest_version
        stored = self.get_version(name, version)
        compiled = self.compiled(name, version)
        coverage = Coverage(json.loads(stored.graph_json))
        results = []
        for case in cases if cases is not None else list(stored.test_cases):
            decision = compiled.evaluate(case.input, host=self._host, trace=True)
            coverage.add(decision)
            diffs = diff(case.expected_output, decision.output) if decision.ok else []
            results.append(
                TestResult(
                    case.test_case_id,
                    decision.ok and not diffs,
                    decision.output,
                    decision.error,
                    diffs,
                )
            )
        return results, coverage.report()
