"""StrategyService over real gRPC (an in-process server on an ephemeral port)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from lendgate.errors import AlreadyExistsError
from lendgate.store import open_store
from lendgate.strategy import StrategyService
from lendgate.strategy.decisions import DecisionLog
from lendgate.strategy.repository import StoreStrategyRepository
from lendgate.v1 import strategy_pb2, strategy_pb2_grpc
from servers.strategy import StrategyServicer
from tests.test_server import serve_in_process

GRAPH = json.dumps(
    {
        "nodes": [
            {"id": "in", "name": "in", "type": "inputNode"},
            {
                "id": "t",
                "name": "band",
                "type": "decisionTableNode",
                "content": {
                    "hitPolicy": "first",
                    "inputs": [{"id": "c", "field": "score"}],
                    "outputs": [{"id": "o", "field": "decision"}],
                    "rules": [{"c": ">= 600", "o": "'approve'"}, {"c": "", "o": "'refuse'"}],
                },
            },
            {"id": "out", "name": "out", "type": "outputNode"},
        ],
        "edges": [
            {"id": "1", "sourceId": "in", "targetId": "t"},
            {"id": "2", "sourceId": "t", "targetId": "out"},
        ],
    }
)


def struct(**fields: Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(fields)
    return s


async def scenario() -> None:
    servicers: dict[str, object] = {
        "lendgate.v1.StrategyService": StrategyServicer(StrategyService())
    }
    async with serve_in_process(servicers) as chan:
        stub = strategy_pb2_grpc.StrategyServiceStub(chan)
        await stub.RegisterStrategy(strategy_pb2.RegisterStrategyRequest(strategy_id="credit"))
        version = strategy_pb2.StrategyVersion(graph_json=GRAPH, comment="first")
        await stub.CreateStrategyVersion(
            strategy_pb2.CreateStrategyVersionRequest(
                parent="strategies/credit", strategy_version=version
            )
        )
        await stub.PublishStrategyVersion(
            strategy_pb2.PublishStrategyVersionRequest(name="strategies/credit/versions/1")
        )
        resp = await stub.Evaluate(
            strategy_pb2.EvaluateRequest(
                strategy="strategies/credit", input=struct(score=700), trace=True
            )
        )
        assert resp.output["decision"] == "approve" and resp.version == 1
        assert resp.decision.startswith("decisions/")
        assert (
            resp.provenance.strategy == "strategies/credit"
            and resp.provenance.strategy_version == 1
        )
        assert [t.node_id for t in resp.trace] == ["in", "t", "out"]

        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.Evaluate(strategy_pb2.EvaluateRequest(strategy="strategies/nope"))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND

        bad_graph = GRAPH.replace('"field": "score"', '"field": "score +"')
        bad = strategy_pb2.StrategyVersion(graph_json=bad_graph)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.CreateStrategyVersion(
                strategy_pb2.CreateStrategyVersionRequest(
                    parent="strategies/credit", strategy_version=bad
                )
            )
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # The offending node travels as a google.rpc.BadRequest field violation.
        details = dict(exc.value.trailing_metadata() or ())
        assert b"nodes[t].inputs[c]" in details["grpc-status-details-bin"]

        broken = strategy_pb2.StrategyVersion(graph_json="{not json")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.CreateStrategyVersion(
                strategy_pb2.CreateStrategyVersionRequest(
                    parent="strategies/credit", strategy_version=broken
                )
            )
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        case = strategy_pb2.StrategyTestCase(
            test_case_id="low", input=struct(score=100), expected_output=struct(decision="refuse")
        )
        tests = await stub.RunStrategyTests(
            strategy_pb2.RunStrategyTestsRequest(name="strategies/credit", test_cases=[case])
        )
        assert (tests.passed_count, tests.failed_count) == (1, 0)
        versions = await stub.ListStrategyVersions(
            strategy_pb2.ListStrategyVersionsRequest(parent="strategies/credit")
        )
        assert versions.strategy_versions[0].state == strategy_pb2.STRATEGY_VERSION_STATE_PUBLISHED


def test_strategy_service_over_grpc() -> None:
    asyncio.run(scenario())


async def duplicate_registrations(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'lendgate.db'}")
    here = StrategyService(StoreStrategyRepository(store))
    # A second server on the same database, loaded before the strategy exists.
    there = StrategyService(StoreStrategyRepository(store))
    await there.load()
    servicer = StrategyServicer(here, DecisionLog(store))
    await servicer.start()
    try:
        async with serve_in_process({"lendgate.v1.StrategyService": servicer}) as chan:
            stub = strategy_pb2_grpc.StrategyServiceStub(chan)
            calls = [
                stub.RegisterStrategy(strategy_pb2.RegisterStrategyRequest(strategy_id="dup"))
                for _ in range(5)
            ]
            results = await asyncio.gather(*calls, return_exceptions=True)
            ok = [r for r in results if isinstance(r, strategy_pb2.RegisterStrategyResponse)]
            refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
            assert len(ok) == 1 and len(refused) == 4, results
            assert {r.code() for r in refused} == {grpc.StatusCode.ALREADY_EXISTS}
        # The other server's cache has not seen it: the store's version check has.
        with pytest.raises(AlreadyExistsError):
            await there.register("dup")
    finally:
        await store.aclose()


def test_concurrent_duplicate_registrations_answer_already_exists(tmp_path: Path) -> None:
    asyncio.run(duplicate_registrations(tmp_path))
