"""The model, lookup and aggregate custom nodes over gRPC, on a real SQLite store,
a real (empty) model registry and real scoring aggregates."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from lendgate import AggregateStore
from lendgate.models.registry import FileSystemRegistry
from lendgate.models.serving import ModelService
from lendgate.store import open_store
from lendgate.strategy import StrategyService
from lendgate.strategy.decisions import DecisionLog
from lendgate.strategy.engine import NodeServices, PythonNodes
from lendgate.strategy.nodes import NodeRunner, PostgresLookup, RegistryScorer, SqliteLookup
from lendgate.strategy.repository import StoreStrategyRepository
from lendgate.v1 import strategy_pb2, strategy_pb2_grpc
from servers.strategy import StrategyServicer
from tests.test_aggregates import YAML_DEFS, pay
from tests.test_server import serve_in_process
from tests.test_store import postgres_schema


def one_node(node: dict[str, Any], *, error_edge: bool = False) -> str:
    """input → node → output (plus, optionally, node -error-> fallback → output)."""
    nodes = [
        {"id": "in", "name": "in", "type": "inputNode"},
        node,
        {"id": "out", "name": "out", "type": "outputNode"},
    ]
    edges = [
        {"id": "1", "sourceId": "in", "targetId": node["id"]},
        {"id": "2", "sourceId": node["id"], "targetId": "out"},
    ]
    if error_edge:
        nodes.append(
            {
                "id": "fb",
                "name": "fallback",
                "type": "expressionNode",
                "content": {
                    "expressions": [
                        {"id": "1", "key": "decision", "value": "'manual'"},
                        {"id": "2", "key": "why", "value": "$error.message"},
                    ]
                },
            }
        )
        edges += [
            {"id": "3", "sourceId": node["id"], "targetId": "fb", "sourceHandle": "error"},
            {"id": "4", "sourceId": "fb", "targetId": "out"},
        ]
    return json.dumps({"nodes": nodes, "edges": edges})


def custom(node_id: str, kind: str, config: dict[str, Any], **content: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "name": node_id,
        "type": "customNode",
        "content": {"kind": kind, "config": config, **content},
    }


def struct(doc: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(doc)
    return s


async def scenario(tmp_path: Path, with_aggregates: bool) -> None:
    db = tmp_path / "lendgate.db"
    store = open_store(f"sqlite:///{db}")
    aggregates = AggregateStore.from_yaml(YAML_DEFS)
    aggregates.apply(pay(1_709_251_200_000, 70, client="c9"))
    services = NodeServices(
        models=RegistryScorer(ModelService(FileSystemRegistry(tmp_path / "models"))),
        lookup=SqliteLookup(str(db)),
        aggregates=(lambda: aggregates.evaluate) if with_aggregates else None,
    )
    service = StrategyService(StoreStrategyRepository(store), node_services=services)
    servicer = StrategyServicer(service, DecisionLog(store))
    await servicer.start()
    try:
        async with serve_in_process({"lendgate.v1.StrategyService": servicer}) as chan:
            stub = strategy_pb2_grpc.StrategyServiceStub(chan)

            async def add(sid: str, graph: str) -> None:
                await stub.RegisterStrategy(strategy_pb2.RegisterStrategyRequest(strategy_id=sid))
                await stub.CreateStrategyVersion(
                    strategy_pb2.CreateStrategyVersionRequest(
                        parent=f"strategies/{sid}",
                        strategy_version=strategy_pb2.StrategyVersion(graph_json=graph),
                    )
                )

            async def run(sid: str, doc: dict[str, Any]) -> Any:
                return await stub.Evaluate(
                    strategy_pb2.EvaluateRequest(
                        strategy=f"strategies/{sid}", version=1, input=struct(doc), trace=True
                    )
                )

            # lookup: a parameterised read of the store itself (the strategy just saved).
            sql = "SELECT name, latest_version FROM definitions WHERE kind = :kind AND name = :n"
            lookup = custom("q", "lookup", {"sql": sql, "params": {"kind": "k", "n": "who"}})
            await add("look", one_node(lookup))
            r = await run("look", {"k": "strategy", "who": "look"})
            assert json_format.MessageToDict(r.output) == {
                "rows": [{"name": "look", "latest_version": 1}]
            }
            assert [t.node_id for t in r.trace] == ["in", "q", "out"]

            # A lookup that writes, or runs two statements, is refused at registration.
            for bad in ("DELETE FROM definitions", "SELECT 1; DELETE FROM definitions"):
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await add(f"bad{len(bad)}", one_node(custom("w", "lookup", {"sql": bad})))
                assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (
                    b"nodes[w].content.config.sql"
                    in dict(exc.value.trailing_metadata() or ())["grpc-status-details-bin"]
                )
            needs_param = "SELECT * FROM definitions WHERE name = :n"
            slow = (
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                "SELECT count(*) FROM c"
            )
            await add(
                "slow",
                one_node(custom("s", "lookup", {"sql": slow, "timeoutMs": 50}), error_edge=True),
            )
            r = await run("slow", {})
            assert r.output["decision"] == "manual"
            assert "timeout after 50 ms" in r.output["why"]
            assert "timeout after 50 ms" in r.trace[1].error.message
            await add("noparam", one_node(custom("p", "lookup", {"sql": needs_param})))
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await run("noparam", {})
            assert "without a value: n" in (exc.value.details() or "")

            # model: no active model → the node's onError output, never a made-up score.
            model = custom(
                "m", "model", {"model": "application-gbdt", "features": ["a"], "retries": 1}
            )
            model["content"]["onError"] = {"output": {"scored": False}}
            await add("mod", one_node(model))
            r = await run("mod", {"a": 1})
            assert json_format.MessageToDict(r.output) == {"scored": False}
            assert "application-gbdt" in r.trace[1].error.message
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await add("mod2", one_node(custom("m", "model", {})))
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            # aggregate: the scoring aggregates for the event's client.
            agg = custom("g", "aggregate", {"eventField": "payment"})
            await add("agg", one_node(agg, error_edge=True))
            event = {"t": 1_709_251_300_000, "client": {"id": "c9"}, "amount": 5, "device": "d"}
            r = await run("agg", {"payment": event})
            if with_aggregates:
                out = json_format.MessageToDict(r.output)["aggregates"]
                assert out["sum_2d"] == 75 and out["sum_before"] == 70
            else:
                assert r.output["decision"] == "manual"
                assert "without the scoring service" in r.output["why"]
    finally:
        await store.aclose()


@pytest.mark.parametrize("with_aggregates", [True, False])
def test_custom_nodes(tmp_path: Path, with_aggregates: bool) -> None:
    asyncio.run(scenario(tmp_path, with_aggregates))


async def postgres_lookups(url: str) -> None:
    store = open_store(url)
    lookups = PostgresLookup(url, max_size=2)
    service = StrategyService(
        StoreStrategyRepository(store), node_services=NodeServices(lookup=lookups)
    )
    try:
        await service.register("look")
        sql = (
            "SELECT name, latest_version FROM definitions "
            "WHERE kind = :kind AND name LIKE :n || '%' AND name NOT LIKE '%/meta' "
            "AND latest_version::int > 0"
        )
        lookup = custom("q", "lookup", {"sql": sql, "params": {"kind": "k", "n": "who"}})
        await service.create_version("look", one_node(lookup))
        out = service.evaluate("look", {"k": "strategy", "who": "look"}, version=1).decision
        assert out.ok, out.error
        assert out.output == {"rows": [{"name": "look", "latest_version": 1}]}
        slow = custom("s", "lookup", {"sql": "SELECT pg_sleep(2)", "timeoutMs": 50})
        await service.create_version("look", one_node(slow, error_edge=True))
        out = service.evaluate("look", {}, version=2).decision
        assert out.output["decision"] == "manual"
        assert "timeout after 50 ms (the lookup's statement was cancelled)" in out.output["why"]
        # The node's own timeoutMs, shorter than the query's, is the statement timeout.
        slower = custom(
            "s", "lookup", {"sql": "SELECT pg_sleep(2)", "timeoutMs": 5000}, timeoutMs=80
        )
        await service.create_version("look", one_node(slower, error_edge=True))
        out = service.evaluate("look", {}, version=3).decision
        assert out.output["decision"] == "manual"
        # The runner abandons the node at 80 ms, or the server cancels the statement
        # first (its timeout is the time left: 79-80 ms); either way the node timed out.
        assert "timeout after" in out.output["why"]
        # Pooled connections: eight lookups above and below, cancelled ones included,
        # on at most the pool's two connections, none left in a transaction.
        for _ in range(5):
            out = service.evaluate("look", {"k": "strategy", "who": "look"}, version=1).decision
            assert out.output == {"rows": [{"name": "look", "latest_version": 3}]}
        stats = lookups.pool_stats
        assert stats["requests_num"] == 8 and stats["connections_num"] <= 2, stats
        # Read only: a data-modifying CTE passes the SELECT check, not the database.
        write = custom(
            "w",
            "lookup",
            {"sql": "WITH d AS (DELETE FROM definitions RETURNING 1) SELECT count(*) FROM d"},
        )
        await service.create_version("look", one_node(write, error_edge=True))
        out = service.evaluate("look", {}, version=4).decision
        assert "read-only transaction" in out.output["why"]
        assert service.evaluate("look", {"k": "strategy", "who": "look"}, version=1).decision.ok
    finally:
        lookups.close()
        await store.aclose()


@pytest.mark.postgres
def test_lookup_on_postgres() -> None:
    with postgres_schema() as url:
        asyncio.run(postgres_lookups(url))


async def slow_python_nodes(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'lendgate.db'}")
    release = threading.Event()
    finished: list[str] = []

    def stuck(config: Any, data: Any) -> Any:
        """A python node that overruns any deadline until the test releases it."""
        release.wait(60)
        finished.append(data["who"])
        return {"late": True}

    python = PythonNodes()
    python.register("stuck", stuck)
    python.register("quick", lambda config, data: {"echo": data["who"]})
    runner = NodeRunner(workers=2)
    service = StrategyService(
        StoreStrategyRepository(store), python_nodes=python, node_runner=runner
    )
    servicer = StrategyServicer(service, DecisionLog(store))
    await servicer.start()
    try:
        async with serve_in_process({"lendgate.v1.StrategyService": servicer}) as chan:
            stub = strategy_pb2_grpc.StrategyServiceStub(chan)

            async def add(sid: str, graph: str) -> None:
                await stub.RegisterStrategy(strategy_pb2.RegisterStrategyRequest(strategy_id=sid))
                await stub.CreateStrategyVersion(
                    strategy_pb2.CreateStrategyVersionRequest(
                        parent=f"strategies/{sid}",
                        strategy_version=strategy_pb2.StrategyVersion(graph_json=graph),
                    )
                )

            async def run(sid: str, who: str) -> Any:
                return await stub.Evaluate(
                    strategy_pb2.EvaluateRequest(
                        strategy=f"strategies/{sid}",
                        version=1,
                        input=struct({"who": who}),
                        trace=True,
                    )
                )

            edge = custom("p", "python", {"function": "stuck"}, timeoutMs=50)
            await add("edge", one_node(edge, error_edge=True))
            default = custom("p", "python", {"function": "stuck"}, timeoutMs=50)
            default["content"]["onError"] = {"output": {"decision": "refer"}}
            await add("default", one_node(default))
            await add("quick", one_node(custom("p", "python", {"function": "quick"})))

            # The overrunning node is abandoned at its deadline: the error edge is taken
            # and the trace says why, while the node is still running.
            r = await run("edge", "a")
            assert json_format.MessageToDict(r.output)["decision"] == "manual"
            assert r.output["why"].endswith("timeout after 50 ms")
            assert r.trace[1].node_id == "p"
            assert r.trace[1].error.message == r.output["why"]
            assert finished == [] and runner.in_flight == 1

            # ... or its onError default output.
            r = await run("default", "b")
            assert json_format.MessageToDict(r.output) == {"decision": "refer"}
            assert "timeout after 50 ms" in r.trace[1].error.message
            assert runner.in_flight == 2

            # Both workers are stuck: a third node waits for one until its own deadline,
            # and no thread is added beyond the pool's two.
            r = await run("edge", "c")
            assert "all 2 node workers stayed busy" in r.output["why"]
            assert runner.threads == 2 and runner.in_flight == 2

            # Once the runaways return (their results dropped), the pool serves again.
            release.set()
            for _ in range(600):
                if runner.in_flight == 0:
                    break
                await asyncio.sleep(0.01)
            assert sorted(finished) == ["a", "b"] and runner.in_flight == 0
            r = await run("quick", "d")
            assert json_format.MessageToDict(r.output) == {"echo": "d"}
            assert runner.threads == 2
    finally:
        release.set()
        await store.aclose()


def test_overrunning_python_node_is_abandoned_at_its_deadline(tmp_path: Path) -> None:
    asyncio.run(slow_python_nodes(tmp_path))


def test_node_runner_passes_results_and_errors_through() -> None:
    runner = NodeRunner(workers=1)
    assert runner.run(lambda deadline: deadline > time.monotonic(), 1000) is True

    def fails(deadline: float) -> Any:
        raise TimeoutError("the node's own timeout")

    # An exception of the node itself, even a TimeoutError, is the node's error.
    with pytest.raises(TimeoutError, match="the node's own timeout"):
        runner.run(fails, 1000)
    assert runner.in_flight == 0 and runner.threads == 1


ECHO = {
    "id": "e",
    "name": "echo",
    "type": "expressionNode",
    "content": {"expressions": [{"id": "1", "key": "who", "value": "who"}]},
}


async def loop_stays_free(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'lendgate.db'}")
    release, started = threading.Event(), threading.Event()

    def waits(config: Any, data: Any) -> Any:
        started.set()
        release.wait(20)
        return {"done": data["who"]}

    python = PythonNodes()
    python.register("waits", waits)
    runner = NodeRunner(workers=2)
    service = StrategyService(
        StoreStrategyRepository(store), python_nodes=python, node_runner=runner
    )
    servicer = StrategyServicer(service, DecisionLog(store))
    await servicer.start()
    try:
        async with serve_in_process({"lendgate.v1.StrategyService": servicer}) as chan:
            stub = strategy_pb2_grpc.StrategyServiceStub(chan)
            for sid, graph in (
                ("slow", one_node(custom("p", "python", {"function": "waits"}, timeoutMs=15000))),
                ("pure", one_node(ECHO)),
            ):
                await stub.RegisterStrategy(strategy_pb2.RegisterStrategyRequest(strategy_id=sid))
                await stub.CreateStrategyVersion(
                    strategy_pb2.CreateStrategyVersionRequest(
                        parent=f"strategies/{sid}",
                        strategy_version=strategy_pb2.StrategyVersion(graph_json=graph),
                    )
                )

            def run(sid: str, who: str) -> Any:
                return stub.Evaluate(
                    strategy_pb2.EvaluateRequest(
                        strategy=f"strategies/{sid}", version=1, input=struct({"who": who})
                    )
                )

            slow = asyncio.ensure_future(run("slow", "a"))
            assert await asyncio.to_thread(started.wait, 20)  # the slow node is running
            # The server answers other calls while that node waits: it waits on a worker
            # thread, not on the server's event loop.
            r = await run("pure", "b")
            assert json_format.MessageToDict(r.output) == {"who": "b"}
            assert not slow.done()
            release.set()
            assert json_format.MessageToDict((await slow).output) == {"done": "a"}
    finally:
        release.set()
        await store.aclose()


def test_a_waiting_custom_node_does_not_hold_the_server(tmp_path: Path) -> None:
    asyncio.run(loop_stays_free(tmp_path))
