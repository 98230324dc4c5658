"""Domain tests of lendgate.strategy (no gRPC)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from lendgate.errors import InvalidArgumentError, NotFoundError
from lendgate.strategy import (
    Challenger,
    CompiledStrategy,
    PublishSettings,
    StrategyService,
    TestCase,
)


def graph(*middle: dict[str, Any], edges: list[tuple[str, str]] | None = None) -> str:
    """Input → middle nodes in a chain → output, unless ``edges`` are given."""
    nodes = [
        {"id": "in", "name": "in", "type": "inputNode"},
        *middle,
        {"id": "out", "name": "out", "type": "outputNode"},
    ]
    ids = [n["id"] for n in nodes]
    pairs = edges if edges is not None else list(itertools.pairwise(ids))
    return json.dumps(
        {
            "nodes": nodes,
            "edges": [
                {"id": f"e{i}", "sourceId": s, "targetId": t} for i, (s, t) in enumerate(pairs)
            ],
        }
    )


def expr(node_id: str, **exprs: str) -> dict[str, Any]:
    items = [{"id": k, "key": k, "value": v} for k, v in exprs.items()]
    return {
        "id": node_id,
        "name": node_id,
        "type": "expressionNode",
        "content": {"expressions": items},
    }


def custom(node_id: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": node_id,
        "name": node_id,
        "type": "customNode",
        "content": {"kind": kind, "config": config},
    }


run = asyncio.run


def test_compiled_strategy_evaluates_with_trace() -> None:
    compiled = CompiledStrategy.compile(graph(expr("x", limit="income * 3")))
    decision = compiled.evaluate({"income": 1000}, trace=True)
    assert decision.ok and decision.output == {"limit": 3000}
    assert [t["nodeId"] for t in decision.trace] == ["in", "x", "out"]


def test_bad_graph_names_the_node() -> None:
    with pytest.raises(InvalidArgumentError) as exc:
        CompiledStrategy.compile(graph(expr("x", limit="income *")))
    assert "nodes[x]" in exc.value.violations[0].field


def test_versions_publish_and_rollback() -> None:
    svc = StrategyService()
    run(svc.register("credit"))
    run(
        svc.create_version(
            "credit", graph(expr("x", decision="'approve'")), comment="v1", author="ana"
        )
    )
    run(
        svc.create_version(
            "credit", graph(expr("x", decision="'refuse'")), comment="v2", author="ana"
        )
    )
    with pytest.raises(Exception, match="no published version"):
        svc.evaluate("credit", {})
    run(svc.publish("credit", 1))
    run(svc.publish("credit", 2))
    result = svc.evaluate("credit", {})
    assert (result.version, result.decision.output) == (2, {"decision": "refuse"})
    run(svc.rollback("credit"))
    assert svc.evaluate("credit", {}).version == 1
    assert svc.evaluate("credit", {}, version=2).decision.output == {"decision": "refuse"}
    assert [v.comment for v in svc.list_versions("credit")] == ["v1", "v2"]
    with pytest.raises(NotFoundError):
        svc.evaluate("nope", {})


def test_ab_split_is_sticky() -> None:
    svc = StrategyService()
    run(svc.register("s"))
    run(svc.create_version("s", graph(expr("x", arm="'champion'"))))
    run(svc.create_version("s", graph(expr("x", arm="'challenger'"))))
    settings = PublishSettings(challengers=(Challenger(2, 3000, "b"),), sticky_key_path="client.id")
    run(svc.publish("s", 1, settings=settings))
    arms = [svc.evaluate("s", {"client": {"id": i}}) for i in range(400)]
    again = [svc.evaluate("s", {"client": {"id": i}}) for i in range(400)]
    assert [a.version for a in arms] == [a.version for a in again]
    share = sum(a.variant == "b" for a in arms) / len(arms)
    assert 0.2 < share < 0.4
    assert all(
        a.decision.output["arm"] == ("challenger" if a.version == 2 else "champion") for a in arms
    )


def test_python_node_and_model_node_without_registry() -> None:
    svc = StrategyService()
    svc.python_nodes.register("double", lambda config, data: {"y": data["x"] * config["factor"]})
    run(svc.register("p"))
    run(svc.create_version("p", graph(custom("py", "python", {"function": "double", "factor": 2}))))
    assert svc.evaluate("p", {"x": 21}, version=1).decision.output == {"y": 42}
    run(svc.create_version("p", graph(custom("m", "model", {"model": "fraud"}))))
    decision = svc.evaluate("p", {}, version=2, trace=True).decision
    assert not decision.ok and decision.failed_node == "m"
    assert "no model registry is configured" in (decision.error or "")
    assert decision.trace[-1]["error"]


def test_sub_strategy_must_exist_and_is_called() -> None:
    svc = StrategyService()
    sub = {"id": "d", "name": "d", "type": "decisionNode", "content": {"key": "child"}}
    run(svc.register("parent"))
    with pytest.raises(InvalidArgumentError, match="not registered"):
        run(svc.create_version("parent", graph(sub)))
    run(svc.register("child"))
    run(svc.create_version("child", graph(expr("c", v="x + 1"))))
    run(svc.publish("child", 1))
    run(svc.create_version("parent", graph(sub)))
    assert svc.evaluate("parent", {"x": 1}, version=1).decision.output == {"v": 2}


def test_run_tests_reports_diffs() -> None:
    svc = StrategyService()
    run(svc.register("t"))
    cases = [TestCase("ok", {"a": 2}, {"b": 4}), TestCase("bad", {"a": 2}, {"b": 5})]
    run(svc.create_version("t", graph(expr("x", b="a * 2")), test_cases=cases))
    results = svc.run_tests("t")
    assert [r.passed for r in results] == [True, False]
    assert results[1].diffs == [("b", 5, 4)]
