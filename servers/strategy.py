"""StrategyService servicer: thin conversion between the contract and lendgate.strategy."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

from google.protobuf import json_format, struct_pb2

from lendgate import core_version
from lendgate.auth import current_partner
from lendgate.errors import InvalidArgumentError, LendgateError
from lendgate.strategy import (
    Challenger,
    PublishSettings,
    StrategyRecord,
    StrategyService,
    StrategyVersionRecord,
    TestCase,
)
from lendgate.strategy.decisions import DecisionLog
from lendgate.strategy.render import render
from lendgate.strategy.simulate import Progress, SimulationInput, simulate
from lendgate.v1 import common_pb2, strategy_pb2
from servers.scoring import item_error

PREFIX = "strategies/"


def _strategy_id(name: str, field: str = "name") -> str:
    sid = name.removeprefix(PREFIX)
    if not sid or "/" in sid:
        raise InvalidArgumentError(
            f"expected strategies/{{strategy_id}}, got {name!r}", field=field
        )
    return sid


def _version_name(name: str, field: str = "name") -> tuple[str, int]:
    parts = name.removeprefix(PREFIX).split("/")
    if len(parts) != 3 or parts[1] != "versions" or not parts[2].isdigit():
        raise InvalidArgumentError(
            f"expected strategies/{{strategy_id}}/versions/{{version}}, got {name!r}", field=field
        )
    return parts[0], int(parts[2])


def _to_struct(value: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    if isinstance(value, dict):
        out.update(value)
    elif value is not None:
        out.update({"value": value})
    return out


def _strategy_pb(r: StrategyRecord) -> strategy_pb2.Strategy:
    pb = strategy_pb2.Strategy(
        name=PREFIX + r.name,
        display_name=r.display_name,
        description=r.description,
        tags=r.tags,
        latest_version=r.latest_version,
        etag=r.etag,
    )
    pb.create_time.FromDatetime(r.create_time)
    pb.update_time.FromDatetime(r.update_time)
    for history in r.publications.values():
        p = history[-1]
        pub = pb.publications.add(
            environment=p.environment,
            champion_version=p.champion_version,
            author=p.author,
            comment=p.comment,
        )
        pub.publish_time.FromDatetime(p.publish_time)
        pub.settings.sticky_key_path = p.settings.sticky_key_path
        for c in p.settings.challengers:
            pub.settings.challengers.add(
                version=c.version, traffic_bps=c.traffic_bps, label=c.label
            )
    return pb


def _version_pb(v: StrategyVersionRecord, published: set[int]) -> strategy_pb2.StrategyVersion:
    pb = strategy_pb2.StrategyVersion(
        name=f"{PREFIX}{v.name}/versions/{v.version}",
        version=v.version,
        graph_json=v.graph_json,
        content_sha256=v.content_sha256,
        comment=v.comment,
        author=v.author,
        state=strategy_pb2.STRATEGY_VERSION_STATE_PUBLISHED
        if v.version in published
        else strategy_pb2.STRATEGY_VERSION_STATE_DRAFT,
    )
    pb.create_time.FromDatetime(v.create_time)
    for t in v.test_cases:
        pb.test_cases.add(
            test_case_id=t.test_case_id,
            description=t.description,
            input=_to_struct(t.input),
            expected_output=_to_struct(t.expected_output),
        )
    return pb


def _cases(pbs: Any) -> list[TestCase]:
    return [
        TestCase(
            t.test_case_id,
            json_format.MessageToDict(t.input),
            json_format.MessageToDict(t.expected_output),
            t.description,
        )
        for t in pbs
    ]


class StrategyServicer:
    """lendgate.v1.StrategyService over an injected :class:`StrategyService`."""

    def __init__(self, service: StrategyService, decisions: DecisionLog | None = None) -> None:
        self._svc = service
        # Where decisions are logged (idempotent retries, simulation history); None
        # keeps nothing (tests of the engine alone).
        self._log = decisions

    async def start(self) -> None:
        """Load the strategies from the store (called once before serving)."""
        await self._svc.load()

    def _published(self, sid: str) -> set[int]:
        return {
            p.champion_version
            for history in self._svc.get(sid).publications.values()
            for p in history[-1:]
        }

    async def Evaluate(self, request: Any, context: Any) -> strategy_pb2.EvaluateResponse:
        """Evaluate by strategy id (published version, A/B included) or explicit version."""
        return await self._evaluate(request, current_partner().partner_id)

    async def EvaluateStream(
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[strategy_pb2.EvaluateStreamResponse]:
        """Evaluate each item as the unary call would; an item's error does not end the stream.

        Items are answered in order, one at a time: the next item is read only after the
        previous answer was handed to gRPC, whose flow control then holds back a client
        that sends faster than it reads.
        """
        partner = current_partner().partner_id
        seen: set[str] = set()
        async for item in requests:
            out = strategy_pb2.EvaluateStreamResponse(correlation_id=item.correlation_id)
            try:
                if not item.correlation_id:
                    raise InvalidArgumentError("required", field="correlation_id")
                if item.correlation_id in seen:
                    raise InvalidArgumentError(
                        f"{item.correlation_id!r} was used before in this stream",
                        field="correlation_id",
                    )
                seen.add(item.correlation_id)
                out.evaluation.CopyFrom(await self._evaluate(item.evaluation, partner))
            except LendgateError as exc:
                out.error.CopyFrom(item_error(exc))
            yield out

    async def _evaluate(self, request: Any, partner: str) -> strategy_pb2.EvaluateResponse:
        sid = _strategy_id(request.strategy, "strategy")
        if self._log is not None and request.request_id:
            stored = await self._log.find(request.request_id, partner)
            if stored is not None:
                return strategy_pb2.EvaluateResponse.FromString(stored)
        decided_at_us = time.time_ns() // 1000
        result = await self._svc.evaluate_async(
            sid,
            request.input,
            version=request.version if request.HasField("version") else None,
            environment=request.environment,
            trace=request.trace,
        )
        decision = result.decision
        if not decision.ok:
            raise InvalidArgumentError(
                f"node {decision.failed_node!r} failed: {decision.error}",
                field="input",
                reason="STRATEGY_NODE_FAILED",
            )
        decision_id = request.request_id or uuid.uuid4().hex
        response = strategy_pb2.EvaluateResponse(
            decision=f"decisions/{decision_id}",
            version=result.version,
            variant=result.variant,
            provenance=common_pb2.DecisionProvenance(
                strategy=PREFIX + sid,
                strategy_version=result.version,
                strategy_variant=result.variant,
                server_version=core_version,
            ),
            ab_test_paths=[
                strategy_pb2.AbTestPath(node_id=node, path=path) for node, path in decision.ab_paths
            ],
        )
        if decision.raw is not None:
            response.output.MergeFromString(decision.raw)
        response.processing_time.FromNanoseconds(int(result.processing_seconds * 1e9))
        for t in decision.trace:
            node = response.trace.add(
                node_id=t["nodeId"],
                node_name=t["name"],
                node_type=t["kind"],
                sequence=t["order"],
                input=_to_struct(t["input"]),
                output=_to_struct(t["output"]),
                details=_to_struct(t["detail"]),
                attempts=1,
            )
            node.duration.FromMicroseconds(t["durationUs"])
            if t["error"]:
                node.error.message = t["error"]
        if self._log is not None:
            first = await self._log.record(
                request_id=decision_id,
                partner_id=partner,
                strategy=sid,
                decided_at_us=decided_at_us,
                request=request.SerializeToString(),
                response=response.SerializeToString(),
            )
            return strategy_pb2.EvaluateResponse.FromString(first)
        return response

    async def RegisterStrategy(
        self, request: Any, context: Any
    ) -> strategy_pb2.RegisterStrategyResponse:
        """Register a strategy."""
        s = request.strategy
        record = await self._svc.register(
            request.strategy_id,
            display_name=s.display_name,
            description=s.description,
            tags=list(s.tags),
        )
        return strategy_pb2.RegisterStrategyResponse(strategy=_strategy_pb(record))

    async def GetStrategy(self, request: Any, context: Any) -> strategy_pb2.GetStrategyResponse:
        """One strategy."""
        return strategy_pb2.GetStrategyResponse(
            strategy=_strategy_pb(self._svc.get(_strategy_id(request.name)))
        )

    async def ListStrategies(
        self, request: Any, context: Any
    ) -> strategy_pb2.ListStrategiesResponse:
        """Every strategy (one page)."""
        return strategy_pb2.ListStrategiesResponse(
            strategies=[_strategy_pb(r) for r in self._svc.list_all()]
        )

    async def CreateStrategyVersion(
        self, request: Any, context: Any
    ) -> strategy_pb2.CreateStrategyVersionResponse:
        """Validate and save a new version (a draft)."""
        sid = _strategy_id(request.parent, "parent")
        v = request.strategy_version
        try:
            json.loads(v.graph_json)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"graph_json is not valid JSON: {exc}", field="strategy_version.graph_json"
            ) from None
        record = await self._svc.create_version(
            sid,
            v.graph_json,
            test_cases=_cases(v.test_cases),
            comment=v.comment,
            author=v.author,
            validate_only=request.validate_only,
        )
        return strategy_pb2.CreateStrategyVersionResponse(
            strategy_version=_version_pb(record, self._published(sid))
        )

    async def GetStrategyVersion(
        self, request: Any, context: Any
    ) -> strategy_pb2.GetStrategyVersionResponse:
        """One version."""
        sid, version = _version_name(request.name)
        record = self._svc.get_version(sid, version)
        return strategy_pb2.GetStrategyVersionResponse(
            strategy_version=_version_pb(record, self._published(sid))
        )

    async def ListStrategyVersions(
        self, request: Any, context: Any
    ) -> strategy_pb2.ListStrategyVersionsResponse:
        """Every version of a strategy."""
        sid = _strategy_id(request.parent, "parent")
        published = self._published(sid)
        return strategy_pb2.ListStrategyVersionsResponse(
            strategy_versions=[_version_pb(v, published) for v in self._svc.list_versions(sid)]
        )

    async def PublishStrategyVersion(
        self, request: Any, context: Any
    ) -> strategy_pb2.PublishStrategyVersionResponse:
        """Publish a version with settings (challengers, sticky key, window)."""
        sid, version = _version_name(request.name)
        s = request.settings
        settings = PublishSettings(
            challengers=tuple(Challenger(c.version, c.traffic_bps, c.label) for c in s.challengers),
            sticky_key_path=s.sticky_key_path,
            active_from=s.active_from.ToDatetime(tzinfo=UTC) if s.HasField("active_from") else None,
            active_until=s.active_until.ToDatetime(tzinfo=UTC)
            if s.HasField("active_until")
            else None,
        )
        record = await self._svc.publish(
            sid,
            version,
            environment=request.environment,
            settings=settings,
            comment=request.comment,
            etag=request.etag,
        )
        return strategy_pb2.PublishStrategyVersionResponse(strategy=_strategy_pb(record))

    async def RollbackStrategy(
        self, request: Any, context: Any
    ) -> strategy_pb2.RollbackStrategyResponse:
        """Serve the previous publication (or an explicit version) again."""
        record = await self._svc.rollback(
            _strategy_id(request.name),
            environment=request.environment,
            version=request.version if request.HasField("version") else None,
            comment=request.comment,
        )
        return strategy_pb2.RollbackStrategyResponse(strategy=_strategy_pb(record))

    async def RunStrategyTests(
        self, request: Any, context: Any
    ) -> strategy_pb2.RunStrategyTestsResponse:
        """Run test cases (given, or the version's stored ones) against a version."""
        if "/versions/" in request.name:
            sid, version = _version_name(request.name)
        else:
            sid, version = _strategy_id(request.name), 0
        cases = _cases(request.test_cases) if request.test_cases else None
        results, coverage = self._svc.run_tests_with_coverage(sid, version or None, cases)
        response = strategy_pb2.RunStrategyTestsResponse(
            passed_count=sum(r.passed for r in results),
            failed_count=sum(not r.passed for r in results),
            coverage=[
                strategy_pb2.NodeCoverage(
                    node_id=c.node_id,
                    node_type=c.node_type,
                    total=c.total,
                    covered=c.covered,
                    uncovered=list(c.uncovered),
                )
                for c in coverage
            ],
        )
        for r in results:
            item = response.results.add(
                test_case_id=r.test_case_id, passed=r.passed, actual_output=_to_struct(r.actual)
            )
            if r.error:
                item.error.message = r.error
            for path, expected, actual in r.diffs:
                d = item.diffs.add(path=path)
                json_format.ParseDict(expected, d.expected)
                json_format.ParseDict(actual, d.actual)
        return response

    async def SimulateStrategy(
        self, request: Any, context: Any
    ) -> AsyncIterator[strategy_pb2.SimulateStrategyResponse]:
        """Run a candidate against a baseline over stored decisions or given inputs."""
        sid, cand_version = _version_name(request.candidate, "candidate")
        candidate = self._svc.compiled(sid, cand_version)
        if request.baseline:
            base_sid, base_version = _version_name(request.baseline, "baseline")
            if base_sid != sid:
                raise InvalidArgumentError(
                    "baseline and candidate must be versions of one strategy", field="baseline"
                )
        else:
            base_version = self._svc.live(sid).champion_version
        baseline = self._svc.compiled(sid, base_version)
        source = request.WhichOneof("source")
        if source == "inputs":
            inputs = [
                SimulationInput(f"inputs/{i}", s.SerializeToString())
                for i, s in enumerate(request.inputs.inputs)
            ]
        elif source == "period":
            if self._log is None:
                raise InvalidArgumentError(
                    "this server keeps no decision history; send inputs", field="period"
                )
            p = request.period
            end_us = p.end_time.ToMicroseconds() if p.HasField("end_time") else 2**62
            stored = await self._log.between(
                current_partner().partner_id, sid, p.start_time.ToMicroseconds(), end_us
            )
            inputs = [
                SimulationInput(
                    f"decisions/{d.request_id}",
                    strategy_pb2.EvaluateRequest.FromString(d.request).input.SerializeToString(),
                )
                for d in stored
            ]
        else:
            raise InvalidArgumentError("one of period or inputs is required", field="source")
        async for step in simulate(
            candidate,
            baseline,
            inputs,
            host=self._svc.host,
            compare_paths=list(request.compare_paths),
            max_examples=request.max_examples or 100,
        ):
            if isinstance(step, Progress):
                yield strategy_pb2.SimulateStrategyResponse(
                    progress=strategy_pb2.SimulationProgress(
                        done_count=step.done, total_count=step.total
                    )
                )
                continue
            result = strategy_pb2.SimulationResult(
                total_count=step.total, changed_count=step.changed, error_count=step.errors
            )
            for c in step.changes:
                change = result.changes.add(path=c.path, count=c.count)
                json_format.ParseDict(c.baseline, change.baseline)
                json_format.ParseDict(c.candidate, change.candidate)
            for ex in step.examples:
                result.examples.add(
                    input_ref=ex.ref,
                    baseline_output=_to_struct(ex.baseline_output),
                    candidate_output=_to_struct(ex.candidate_output),
                )
            yield strategy_pb2.SimulateStrategyResponse(result=result)

    async def ExportStrategyGraph(
        self, request: Any, context: Any
    ) -> strategy_pb2.ExportStrategyGraphResponse:
        """A version's graph as Mermaid or Graphviz DOT text."""
        sid, version = _version_name(request.name)
        graph_json = self._svc.get_version(sid, version).graph_json
        dot = request.format == strategy_pb2.GRAPH_FORMAT_DOT
        return strategy_pb2.ExportStrategyGraphResponse(
            text=render(graph_json, "dot" if dot else "mermaid")
        )
