"""StrategyService through the real ``lendgate serve`` process and its SQLite store:
the repository survives a restart, decisions are logged (version, A/B path) and
idempotent, EvaluateStream, SimulateStrategy and ExportStrategyGraph."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from lendgate.v1 import strategy_pb2, strategy_pb2_grpc
from tests.conftest import start_server, stop_server


def table_graph(threshold: int, amount: str = "1000") -> str:
    """score >= threshold → approve (amount), else refuse; behind a switch on `product`."""
    return json.dumps(
        {
            "nodes": [
                {"id": "in", "name": "request", "type": "inputNode"},
                {
                    "id": "sw",
                    "name": "product",
                    "type": "switchNode",
                    "content": {
                        "hitPolicy": "first",
                        "statements": [
                            {"id": "loan", "condition": "product == 'loan'"},
                            {"id": "other", "condition": ""},
                        ],
                    },
                },
                {
                    "id": "t",
                    "name": "band",
                    "type": "decisionTableNode",
                    "content": {
                        "hitPolicy": "first",
                        "inputs": [{"id": "c", "field": "score"}],
                        "outputs": [
                            {"id": "o", "field": "decision"},
                            {"id": "a", "field": "amount"},
                        ],
                        "rules": [
                            {"_id": "r1", "c": f">= {threshold}", "o": "'approve'", "a": amount},
                            {"_id": "r2", "c": "", "o": "'refuse'", "a": "0"},
                        ],
                    },
                },
                {
                    "id": "x",
                    "name": "no product",
                    "type": "expressionNode",
                    "content": {"expressions": [{"id": "e", "key": "decision", "value": "'n/a'"}]},
                },
                {"id": "out", "name": "response", "type": "outputNode"},
            ],
            "edges": [
                {"id": "e1", "sourceId": "in", "targetId": "sw"},
                {"id": "e2", "sourceId": "sw", "targetId": "t", "sourceHandle": "loan"},
                {"id": "e3", "sourceId": "sw", "targetId": "x", "sourceHandle": "other"},
                {"id": "e4", "sourceId": "t", "targetId": "out"},
                {"id": "e5", "sourceId": "x", "targetId": "out"},
            ],
        }
    )


def ab_graph() -> str:
    """An abTest node splitting on client.id: 50 % challenger."""
    return json.dumps(
        {
            "nodes": [
                {"id": "in", "name": "in", "type": "inputNode"},
                {
                    "id": "ab",
                    "name": "split",
                    "type": "customNode",
                    "content": {
                        "kind": "abTest",
                        "config": {"key": "client.id", "challengerPercent": 50},
                    },
                },
                {
                    "id": "a",
                    "name": "a",
                    "type": "expressionNode",
                    "content": {"expressions": [{"id": "1", "key": "arm", "value": "'A'"}]},
                },
                {
                    "id": "b",
                    "name": "b",
                    "type": "expressionNode",
                    "content": {"expressions": [{"id": "1", "key": "arm", "value": "'B'"}]},
                },
                {"id": "out", "name": "out", "type": "outputNode"},
            ],
            "edges": [
                {"id": "1", "sourceId": "in", "targetId": "ab"},
                {"id": "2", "sourceId": "ab", "targetId": "a", "sourceHandle": "champion"},
                {"id": "3", "sourceId": "ab", "targetId": "b", "sourceHandle": "challenger"},
                {"id": "4", "sourceId": "a", "targetId": "out"},
                {"id": "5", "sourceId": "b", "targetId": "out"},
            ],
        }
    )


def struct(doc: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(doc)
    return s


def register(stub: Any, sid: str, *graphs: str) -> None:
    stub.RegisterStrategy(strategy_pb2.RegisterStrategyRequest(strategy_id=sid))
    for i, g in enumerate(graphs, 1):
        stub.CreateStrategyVersion(
            strategy_pb2.CreateStrategyVersionRequest(
                parent=f"strategies/{sid}",
                strategy_version=strategy_pb2.StrategyVersion(
                    graph_json=g, comment=f"change {i}", author="ana"
                ),
            )
        )


def publish(stub: Any, sid: str, version: int, **kw: Any) -> None:
    stub.PublishStrategyVersion(
        strategy_pb2.PublishStrategyVersionRequest(
            name=f"strategies/{sid}/versions/{version}", **kw
        )
    )


def evaluate(stub: Any, sid: str, doc: dict[str, Any], **kw: Any) -> Any:
    return stub.Evaluate(
        strategy_pb2.EvaluateRequest(strategy=f"strategies/{sid}", input=struct(doc), **kw)
    )


def test_repository_and_decisions_survive_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        with grpc.insecure_channel(server.address) as chan:
            stub = strategy_pb2_grpc.StrategyServiceStub(chan)
            register(stub, "credit", table_graph(600), table_graph(650))
            publish(stub, "credit", 1)
            settings = strategy_pb2.PublishSettings(
                challengers=[strategy_pb2.Challenger(version=1, traffic_bps=5000, label="old")],
                sticky_key_path="client",
            )
            settings.active_from.FromJsonString("2020-01-01T00:00:00Z")
            publish(stub, "credit", 2, environment="staging", settings=settings, comment="try")
            publish(stub, "credit", 2)
            stub.RollbackStrategy(strategy_pb2.RollbackStrategyRequest(name="strategies/credit"))
            first = evaluate(stub, "credit", {"product": "loan", "score": 620}, request_id="r-1")
            assert first.version == 1 and first.output["decision"] == "approve"
            register(stub, "ab", ab_graph())
            split = evaluate(stub, "ab", {"client": {"id": "c-7"}}, version=1, request_id="r-2")
            assert [p.node_id for p in split.ab_test_paths] == ["ab"]
            arm = split.ab_test_paths[0].path
            assert split.output["arm"] == ("B" if arm == "challenger" else "A")
        assert stop_server(server) == 0

        server = start_server(tmp_path)
        with grpc.insecure_channel(server.address) as chan:
            stub = strategy_pb2_grpc.StrategyServiceStub(chan)
            got = stub.GetStrategy(strategy_pb2.GetStrategyRequest(name="strategies/credit"))
            strategy = got.strategy
            assert strategy.latest_version == 2
            live = {p.environment: p for p in strategy.publications}
            assert live["production"].champion_version == 1
            assert live["production"].comment == "rollback"
            staging = live["staging"]
            assert staging.champion_version == 2 and staging.comment == "try"
            assert [(c.version, c.traffic_bps, c.label) for c in staging.settings.challengers] == [
                (1, 5000, "old")
            ]
            versions = stub.ListStrategyVersions(
                strategy_pb2.ListStrategyVersionsRequest(parent="strategies/credit")
            ).strategy_versions
            assert [(v.version, v.comment, v.author) for v in versions] == [
                (1, "change 1", "ana"),
                (2, "change 2", "ana"),
            ]
            assert versions[0].state == strategy_pb2.STRATEGY_VERSION_STATE_PUBLISHED
            # The rollback survives: production still serves version 1.
            again = evaluate(stub, "credit", {"product": "loan", "score": 620})
            assert again.version == 1
            # A retry of a logged request gets the first decision back, even with a
            # different input, and the A/B path it took.
            retry = evaluate(stub, "credit", {"product": "loan", "score": 1}, request_id="r-1")
            assert retry == first
            retry = evaluate(stub, "ab", {"client": {"id": "zz"}}, version=1, request_id="r-2")
            assert retry.ab_test_paths[0].path == arm
            # Staging splits by the sticky key: champion v2 or the "old" challenger v1.
            for n in range(20):
                r = evaluate(
                    stub,
                    "credit",
                    {"product": "loan", "score": 620, "client": n},
                    environment="staging",
                )
                assert (r.version, r.variant) in {(2, "champion"), (1, "old")}
                assert r.provenance.strategy_version == r.version
                assert r.output["decision"] == ("approve" if r.version == 1 else "refuse")
    finally:
        stop_server(server)


def stream_items(items: list[tuple[str, str, dict[str, Any]]]) -> Any:
    for cid, sid, doc in items:
        yield strategy_pb2.EvaluateStreamRequest(
            correlation_id=cid,
            evaluation=strategy_pb2.EvaluateRequest(
                strategy=f"strategies/{sid}", input=struct(doc)
            ),
        )


def test_evaluate_stream_answers_as_unary(channel: grpc.Channel) -> None:
    stub = strategy_pb2_grpc.StrategyServiceStub(channel)
    sid = f"stream-{uuid.uuid4().hex[:8]}"
    register(stub, sid, table_graph(600))
    publish(stub, sid, 1)
    docs = [{"product": "loan", "score": s} for s in range(500, 800, 7)] + [{"product": "car"}]
    items = [(f"c{i}", sid, d) for i, d in enumerate(docs)]
    items.insert(3, ("bad", "no-such-strategy", {}))
    items.insert(5, ("c0", sid, {}))  # a correlation id used twice
    answers = list(stub.EvaluateStream(stream_items(items)))
    assert [a.correlation_id for a in answers] == [i[0] for i in items]
    assert answers[3].WhichOneof("result") == "error"
    assert answers[3].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert answers[5].error.field_violations[0].field == "correlation_id"
    good = [a for a in answers if a.WhichOneof("result") == "evaluation"]
    assert len(good) == len(docs)
    for answer, doc in zip(good, docs, strict=True):
        unary = evaluate(stub, sid, doc)
        assert answer.evaluation.output == unary.output
        assert answer.evaluation.version == unary.version == 1


def test_simulation_over_inputs_and_stored_decisions(channel: grpc.Channel) -> None:
    stub = strategy_pb2_grpc.StrategyServiceStub(channel)
    sid = f"sim-{uuid.uuid4().hex[:8]}"
    register(stub, sid, table_graph(600), table_graph(650, amount="2000"))
    publish(stub, sid, 1)
    scores = list(range(560, 700, 10))  # 14 inputs; 600..640 flip approve → refuse
    for s in scores:
        evaluate(stub, sid, {"product": "loan", "score": s}, request_id=f"{sid}-{s}")
    request = strategy_pb2.SimulateStrategyRequest(
        candidate=f"strategies/{sid}/versions/2",
        compare_paths=["/decision"],
        period=strategy_pb2.SimulationPeriod(),
    )
    request.period.start_time.FromSeconds(0)
    messages = list(stub.SimulateStrategy(request))
    assert messages[-1].WhichOneof("payload") == "result"
    progress = [m.progress for m in messages[:-1]]
    assert progress and progress[-1].done_count == progress[-1].total_count == len(scores)
    result = messages[-1].result
    flipped = [s for s in scores if 600 <= s < 650]
    assert (result.total_count, result.changed_count, result.error_count) == (
        len(scores),
        len(flipped),
        0,
    )
    [change] = result.changes
    assert (change.path, change.count) == ("/decision", len(flipped))
    assert (change.baseline.string_value, change.candidate.string_value) == ("approve", "refuse")
    assert sorted(e.input_ref for e in result.examples) == sorted(
        f"decisions/{sid}-{s}" for s in flipped
    )

    # Explicit inputs, whole outputs compared: amounts change too.
    inputs = strategy_pb2.SimulationInputs(
        inputs=[struct({"product": "loan", "score": 700}), struct({"product": "x"})]
    )
    messages = list(
        stub.SimulateStrategy(
            strategy_pb2.SimulateStrategyRequest(
                candidate=f"strategies/{sid}/versions/2", inputs=inputs
            )
        )
    )
    result = messages[-1].result
    assert (result.total_count, result.changed_count) == (2, 1)
    assert [
        (c.path, c.baseline.number_value, c.candidate.number_value) for c in result.changes
    ] == [("/amount", 1000, 2000)]
    assert result.examples[0].input_ref == "inputs/0"
    assert json_format.MessageToDict(result.examples[0].candidate_output)["amount"] == 2000

    with pytest.raises(grpc.RpcError) as exc:
        list(
            stub.SimulateStrategy(
                strategy_pb2.SimulateStrategyRequest(candidate=f"strategies/{sid}/versions/2")
            )
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_export_mermaid_and_dot(channel: grpc.Channel) -> None:
    stub = strategy_pb2_grpc.StrategyServiceStub(channel)
    sid = f"export-{uuid.uuid4().hex[:8]}"
    register(stub, sid, table_graph(600))
    name = f"strategies/{sid}/versions/1"
    mermaid = stub.ExportStrategyGraph(strategy_pb2.ExportStrategyGraphRequest(name=name)).text
    assert mermaid.startswith("flowchart LR")
    for text in (
        "band",
        "decision table (first)",
        "#gt;= 600 → 'approve' #124; 1000",
        "'approve'",
        "no product",
    ):
        assert text in mermaid, text
    assert "|\"product == 'loan'\"|" in mermaid  # the switch condition labels its edge
    assert mermaid.count("-->") == 5
    dot = stub.ExportStrategyGraph(
        strategy_pb2.ExportStrategyGraphRequest(name=name, format=strategy_pb2.GRAPH_FORMAT_DOT)
    ).text
    assert dot.startswith("digraph strategy {") and dot.rstrip().endswith("}")
    assert dot.count("->") == 5 and "<TD>&gt;= 600</TD>" in dot
    assert "label=\"product == 'loan'\"" in dot
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExportStrategyGraph(
            strategy_pb2.ExportStrategyGraphRequest(name=f"strategies/{sid}/versions/9")
        )
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def bad_version(stub: Any, sid: str, nodes: list[Any], edges: list[Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as exc:
        stub.CreateStrategyVersion(
            strategy_pb2.CreateStrategyVersionRequest(
                parent=f"strategies/{sid}",
                strategy_version=strategy_pb2.StrategyVersion(
                    graph_json=json.dumps({"nodes": nodes, "edges": edges})
                ),
            )
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return exc.value


def violation(err: Any) -> bytes:
    return bytes(dict(err.trailing_metadata() or ())["grpc-status-details-bin"])


def test_bad_graphs_are_rejected_at_registration_naming_the_node(channel: grpc.Channel) -> None:
    stub = strategy_pb2_grpc.StrategyServiceStub(channel)
    sid = f"bad-{uuid.uuid4().hex[:8]}"
    stub.RegisterStrategy(strategy_pb2.RegisterStrategyRequest(strategy_id=sid))
    inp = {"id": "in", "name": "in", "type": "inputNode"}

    def expr(node_id: str) -> dict[str, Any]:
        return {
            "id": node_id,
            "name": node_id,
            "type": "expressionNode",
            "content": {"expressions": [{"id": "1", "key": "v", "value": "1"}]},
        }

    cycle = bad_version(
        stub,
        sid,
        [inp, expr("a"), expr("b")],
        [
            {"id": "1", "sourceId": "in", "targetId": "a"},
            {"id": "2", "sourceId": "a", "targetId": "b"},
            {"id": "3", "sourceId": "b", "targetId": "a"},
        ],
    )
    assert "cycle through node `a`" in (cycle.details() or "")
    dangling = bad_version(stub, sid, [inp], [{"id": "d", "sourceId": "in", "targetId": "gone"}])
    assert b"edges[d].targetId" in violation(dangling)
    js = {"id": "js", "name": "js", "type": "functionNode", "content": "export const handler"}
    assert b"nodes[js].type" in violation(bad_version(stub, sid, [inp, js], []))
    sub = {"id": "call", "name": "call", "type": "decisionNode", "content": {"key": "nowhere"}}
    missing = bad_version(
        stub, sid, [inp, sub], [{"id": "1", "sourceId": "in", "targetId": "call"}]
    )
    assert "'nowhere'" in (missing.details() or "") and "not registered" in (
        missing.details() or ""
    )
    odd = {"id": "o", "name": "o", "type": "customNode", "content": {"kind": "teleport"}}
    assert "teleport" in (bad_version(stub, sid, [inp, odd], []).details() or "")


def test_runaway_graphs_are_bounded(channel: grpc.Channel) -> None:
    stub = strategy_pb2_grpc.StrategyServiceStub(channel)
    # A strategy that calls itself: stopped at the sub-strategy depth limit.
    sid = f"rec-{uuid.uuid4().hex[:8]}"
    nodes = [
        {"id": "in", "name": "in", "type": "inputNode"},
        {"id": "self", "name": "self", "type": "decisionNode", "content": {"key": sid}},
    ]
    register(
        stub,
        sid,
        json.dumps({"nodes": nodes, "edges": [{"id": "1", "sourceId": "in", "targetId": "self"}]}),
    )
    publish(stub, sid, 1)
    with pytest.raises(grpc.RpcError) as exc:
        evaluate(stub, sid, {})
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "depth limit" in (exc.value.details() or "")
    # A loop node over more items than the step limit (100,000 node runs).
    loop = f"loop-{uuid.uuid4().hex[:8]}"
    table = {
        "id": "t",
        "name": "t",
        "type": "expressionNode",
        "content": {
            "expressions": [{"id": "1", "key": "v", "value": "1"}],
            "inputField": "items",
            "executionMode": "loop",
        },
    }
    register(
        stub,
        loop,
        json.dumps(
            {
                "nodes": [{"id": "in", "name": "in", "type": "inputNode"}, table],
                "edges": [{"id": "1", "sourceId": "in", "targetId": "t"}],
            }
        ),
    )
    with pytest.raises(grpc.RpcError) as exc:
        evaluate(stub, loop, {"items": list(range(100_001))}, version=1)
    assert "node steps" in (exc.value.details() or "")
    # Under the limit it runs; a non-object output travels as {"value": ...}.
    small = evaluate(stub, loop, {"items": list(range(1000))}, version=1)
    assert len(small.output["value"]) == 1000
