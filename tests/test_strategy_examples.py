"""The shipped example strategies, their stored test cases, coverage, the input
generator and ``lendgate strategy test FILE``."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
import zen
from google.protobuf import struct_pb2

from lendgate.cli import main
from lendgate.store import open_store
from lendgate.strategy import CompiledStrategy, StrategyService
from lendgate.strategy.repository import StoreStrategyRepository
from lendgate.strategy.testing import Coverage, boundary_values, generate_inputs, run_file
from lendgate.v1 import strategy_pb2, strategy_pb2_grpc
from servers.strategy import StrategyServicer
from tests.test_server import serve_in_process

EXAMPLES = sorted(
    (Path(__file__).resolve().parent.parent / "examples" / "strategies").glob("*.json")
)


def load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = json.loads(path.read_text())
    tests = doc.pop("tests")
    return doc, tests


def test_three_examples_ship() -> None:
    assert [p.stem for p in EXAMPLES] == ["collections", "credit-decision", "next-best-offer"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_passes_its_tests_from_the_command_line(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["strategy", "test", str(path), "--generate"]) == 0
    out = capsys.readouterr().out
    _, tests = load(path)
    assert f"{len(tests)}/{len(tests)} passed" in out
    assert "never hit" not in out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_zen_agrees_on_the_examples(path: Path) -> None:
    graph, tests = load(path)
    ours = CompiledStrategy.compile(json.dumps(graph))
    theirs = zen.ZenEngine().create_decision(json.dumps(graph))
    for case in tests:
        assert ours.evaluate(case["input"]).output == theirs.evaluate(case["input"])["result"]


def test_a_failing_case_fails_the_command(tmp_path: Path) -> None:
    graph, tests = load(EXAMPLES[1])
    tests[2]["output"]["amount"] = 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**graph, "tests": tests}))
    out = io.StringIO()
    assert run_file(bad, out=out) == 1
    assert "FAIL band A approves the amount asked" in out.getvalue()
    assert "amount: expected 1, got 500000" in out.getvalue()
    assert main(["strategy", "test", str(tmp_path / "missing.json")]) == 2


def test_generator_proposes_boundaries_and_covers_every_row() -> None:
    graph, _ = load(EXAMPLES[1])  # credit-decision
    values = boundary_values(graph)
    assert {749, 750, 751, 599, 600, 601} <= set(values["bureau.score"])
    assert {29, 30, 31} <= set(values["bureau.debtToIncome"])
    assert "DENY" in values["fraudReport.decision"]
    assert {79, 80, 81} <= set(values["fraudReport.riskScore"])
    inputs = generate_inputs(graph, {"application": {"amount": 100000}})
    compiled = CompiledStrategy.compile(json.dumps(graph))
    coverage = Coverage(graph)
    for data in inputs:
        coverage.add(compiled.evaluate(data, trace=True))
    assert all(c.covered == c.total for c in coverage.report()), coverage.report()


def struct(doc: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(doc)
    return s


async def stored_tests_over_grpc(db: Path) -> None:
    store = open_store(f"sqlite:///{db}")
    servicer = StrategyServicer(StrategyService(StoreStrategyRepository(store)))
    await servicer.start()
    try:
        async with serve_in_process({"lendgate.v1.StrategyService": servicer}) as chan:
            stub = strategy_pb2_grpc.StrategyServiceStub(chan)
            for path in EXAMPLES:
                graph, tests = load(path)
                await stub.RegisterStrategy(
                    strategy_pb2.RegisterStrategyRequest(strategy_id=path.stem)
                )
                cases = [
                    strategy_pb2.StrategyTestCase(
                        test_case_id=f"t{i}",
                        description=t["name"],
                        input=struct(t["input"]),
                        expected_output=struct(t["output"]),
                    )
                    for i, t in enumerate(tests)
                ]
                await stub.CreateStrategyVersion(
                    strategy_pb2.CreateStrategyVersionRequest(
                        parent=f"strategies/{path.stem}",
                        strategy_version=strategy_pb2.StrategyVersion(
                            graph_json=json.dumps(graph), test_cases=cases
                        ),
                    )
                )
                run = await stub.RunStrategyTests(
                    strategy_pb2.RunStrategyTestsRequest(name=f"strategies/{path.stem}/versions/1")
                )
                assert (run.passed_count, run.failed_count) == (len(tests), 0), run
                assert run.coverage and all(c.covered == c.total for c in run.coverage)
            # One case only: coverage names the rows never hit.
            graph, tests = load(EXAMPLES[1])
            one = strategy_pb2.StrategyTestCase(
                test_case_id="a", input=struct(tests[2]["input"]), expected_output=struct({})
            )
            run = await stub.RunStrategyTests(
                strategy_pb2.RunStrategyTestsRequest(
                    name="strategies/credit-decision/versions/1", test_cases=[one]
                )
            )
            band = {c.node_id: c for c in run.coverage}["band"]
            assert (band.total, band.covered, list(band.uncovered)) == (4, 1, [1, 2, 3])
    finally:
        await store.aclose()


def test_stored_test_cases_and_coverage_over_grpc(tmp_path: Path) -> None:
    asyncio.run(stored_tests_over_grpc(tmp_path / "lendgate.db"))
