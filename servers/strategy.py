"""StrategyService servicer: thin conversion between the contract and lendgate.strategy."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format, struct_pb2

from lendgate.errors import InvalidArgumentError
from lendgate.strategy import (
    Challenger,
    PublishSettings,
    StrategyRecord,
    StrategyService,
    StrategyVersionRecord,
    TestCase,
)
from lendgate.v1 import common_pb2, strategy_pb2

PREFIX = "strategies/"


def _strategy_id(name: str, field: str = "name") -> str:
    sid = name.removeprefix(PREFIX)
    if not sid or "/" in sid:
        raise InvalidArgumentError(
            f"expected strategies/{{strategy_id}}, got {name!r}", field=field
        )
    return sid


def _version_name(name: str) -> tuple[str, int]:
    parts = name.removeprefix(PREFIX).split("/")
    if len(parts) != 3 or parts[1] != "versions" or not parts[2].isdigit():
        raise InvalidArgumentError(
            f"expected strategies/{{strategy_id}}/versions/{{version}}, got {name!r}", field="name"
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

    def __init__(self, service: StrategyService) -> None:
        self._svc = service

    def _published(self, sid: str) -> set[int]:
        return {
            p.champion_version
            for history in self._svc.get(sid).publications.values()
            for p in history[-1:]
        }

    async def Evaluate(self, request: Any, context: Any) -> strategy_pb2.EvaluateResponse:
        """Evaluate by strategy id (published version, A/B included) or explicit version."""
        sid = _strategy_id(request.strategy, "strategy")
        result = self._svc.evaluate(
            sid,
            json_format.MessageToDict(request.input),
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
        out = decision.output
        response = strategy_pb2.EvaluateResponse(
            output=_to_struct(out),
            decision=str(out.get("decision", "")) if isinstance(out, dict) else "",
            version=result.version,
            variant=result.variant,
            provenance=common_pb2.DecisionProvenance(
                strategy=PREFIX + sid,
                strategy_version=result.version,
                strategy_variant=result.variant,
            ),
        )
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
        return response

    async def RegisterStrategy(
        self, request: Any, context: Any
    ) -> strategy_pb2.RegisterStrategyResponse:
        """Register a strategy."""
        s = request.strategy
        record = self._svc.register(
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
        record = self._svc.create_version(
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
            active_from=s.active_from.ToDatetime(tzinfo=None)
            if s.HasField("active_from")
            else None,
            active_until=s.active_until.ToDatetime(tzinfo=None)
            if s.HasField("active_until")
            else None,
        )
        record = self._svc.publish(
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
        record = self._svc.rollback(
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
        results = self._svc.run_tests(sid, version or None, cases)
        response = strategy_pb2.RunStrategyTestsResponse(
            passed_count=sum(r.passed for r in results),
            failed_count=sum(not r.passed for r in results),
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
