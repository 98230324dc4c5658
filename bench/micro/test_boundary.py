"""pytest-benchmark micro-benchmarks of the Python↔Rust boundary (``lendgate._core``).

Not collected by ``make test`` (pytest's ``testpaths`` is ``tests/``); ``make bench`` runs
them with ``pytest bench/micro --benchmark-only``. Each benchmark first checks its call
does the real work (a result of the expected shape), so a broken binding fails here
rather than timing an error path.

What crosses the boundary in each: a compiled expression evaluated on a Python dict; the
default rule pack evaluated on one JSON document; one JSON event applied to the seed-003
aggregates; a Jaro-Winkler similarity of two strings; a serialized
``CheckApplicationRequest`` decoded to a Python dict.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.aggregates_bench import PACK as SEED003_PACK
from bench.aggregates_bench import event as aggregates_event
from bench.rules_vs_zen import CONDITIONS, CONTEXT
from lendgate.aggregates import AggregateStore, compare_fl
from lendgate.datagen import GenConfig, generate
from lendgate.document import decode_document
from lendgate.expr import CompiledExpression
from lendgate.lists import Lists
from lendgate.rules import EventKind, InMemoryRuleRepository, RuleBook
from lendgate.scoring.pack import install, load_pack
from lendgate.v1 import scoring_pb2

REQUEST_TYPE = "lendgate.v1.CheckApplicationRequest"


@pytest.fixture(scope="module")
def application_request() -> bytes:
    """A generated application, serialized as the scoring service receives it."""
    for item in generate(GenConfig(seed=7, applicants=50)):
        if isinstance(item.message, scoring_pb2.ApplicationEvent):
            request = scoring_pb2.CheckApplicationRequest(request_id="r1", application=item.message)
            return request.SerializeToString()
    raise AssertionError("the generator produced no application")


@pytest.mark.parametrize("source", CONDITIONS[:3], ids=["params", "model", "application"])
def test_expression_evaluate(benchmark: BenchmarkFixture, source: str) -> None:
    expression = CompiledExpression.compile(source)
    assert isinstance(expression.evaluate(CONTEXT), bool)
    benchmark(expression.evaluate, CONTEXT)


def test_rules_evaluate_default_pack(
    benchmark: BenchmarkFixture, application_request: bytes
) -> None:
    pack = load_pack()
    book, lists = RuleBook(InMemoryRuleRepository()), Lists()
    install(pack, book, lists)
    rules = book.compile(pack.zone_threshold)
    event = decode_document(REQUEST_TYPE, application_request)["application"]
    document = json.dumps(
        {"application": event, "params": {}, "model": {"risk_score": None}}
    ).encode()
    at = datetime(2025, 3, 1, tzinfo=UTC)
    evaluation = rules.evaluate(document, EventKind.APPLICATION, at, lists)
    assert evaluation.fraud_score >= 0
    benchmark(rules.evaluate, document, EventKind.APPLICATION, at, lists)


def test_aggregates_apply_seed003(benchmark: BenchmarkFixture) -> None:
    clients = 1000
    store = AggregateStore(SEED003_PACK.read_bytes())
    for i in range(clients * 3):
        store.apply(aggregates_event(i, clients))
    rounds = 20_000
    events = iter([aggregates_event(i, clients) for i in range(clients * 3, clients * 4 + rounds)])
    params: dict[str, Any] = store.apply(next(events))
    assert params
    # Each round applies a new, later event (re-applying one would be refused as too
    # late), so the rounds are fixed to the events prepared.
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda: store.apply(next(events)), rounds=rounds, warmup_rounds=100
    )


def test_jaro_winkler_compare_fl(benchmark: BenchmarkFixture) -> None:
    # A distance in percentage points: 0 for equal strings, small for a swapped pair.
    assert compare_fl("4506123456", "4506123456") == 0.0
    assert 0.0 < compare_fl("4506123456", "4506123465") < 10.0
    benchmark(compare_fl, "4506123456", "4506123465")


def test_decode_document(benchmark: BenchmarkFixture, application_request: bytes) -> None:
    assert decode_document(REQUEST_TYPE, application_request)["application"]
    benchmark(decode_document, REQUEST_TYPE, application_request)
