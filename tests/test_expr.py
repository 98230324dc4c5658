"""Tests of lendgate.expr (Rust: core_rs/lendgate-core/src/expr/)."""

import threading

import pytest

from lendgate import (
    CompiledExpression,
    CompiledUnaryExpression,
    ExpressionEvaluationError,
    InvalidArgumentError,
)


def test_simple_condition() -> None:
    e = CompiledExpression.compile("amount > 1000 and age < 30")
    assert e.evaluate({"amount": 5000, "age": 25}) is True
    assert e.evaluate({"amount": 500, "age": 25}) is False
    assert e.source == "amount > 1000 and age < 30"


def test_decimal_semantics() -> None:
    assert CompiledExpression.compile("0.1 + 0.2 == 0.3").evaluate() is True
    assert CompiledExpression.compile("0.1 + 0.2").evaluate() == 0.3
    assert CompiledExpression.compile("6 / 3").evaluate() == 2
    assert isinstance(CompiledExpression.compile("6 / 3").evaluate(), int)


def test_structures_round_trip() -> None:
    e = CompiledExpression.compile("map(items, {id: #.id, big: #.amount > 10})")
    got = e.evaluate({"items": [{"id": 1, "amount": 5}, {"id": 2, "amount": 50.5}]})
    assert got == [{"id": 1, "big": False}, {"id": 2, "big": True}]


def test_missing_field_is_null() -> None:
    assert CompiledExpression.compile("user.name ?? 'guest'").evaluate({}) == "guest"


def test_syntax_error_names_the_position() -> None:
    with pytest.raises(InvalidArgumentError, match="position 4") as info:
        CompiledExpression.compile("a + * 2")
    assert info.value.violations[0].field == "expression"


def test_evaluation_error_is_reported() -> None:
    e = CompiledExpression.compile("a + 1")
    with pytest.raises(ExpressionEvaluationError, match="not supported"):
        e.evaluate({"a": "text"})


def test_pathological_nesting_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="nested deeper"):
        CompiledExpression.compile("(" * 10_000 + "1" + ")" * 10_000)


def test_runaway_evaluation_is_bounded() -> None:
    e = CompiledExpression.compile("count([0..100000000], true)")
    with pytest.raises(ExpressionEvaluationError):
        e.evaluate()


def test_unsupported_input_type() -> None:
    with pytest.raises(TypeError):
        CompiledExpression.compile("a").evaluate({"a": object()})


def test_unary_tests() -> None:
    t = CompiledUnaryExpression.compile("'GB', 'US'")
    assert t.evaluate("US") is True
    assert t.evaluate("FR") is False
    assert CompiledUnaryExpression.compile("[1..10)").evaluate(10) is False
    assert CompiledUnaryExpression.compile("> limit").evaluate(7, {"limit": 5}) is True


def test_concurrent_evaluation() -> None:
    e = CompiledExpression.compile("sum(map(xs, # * k))")
    results: list[object] = []

    def work(k: int) -> None:
        for _ in range(200):
            results.append(e.evaluate({"xs": [1, 2, 3], "k": k}))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(results)) == [0, 6, 12, 18]  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("map([0..3], #)", [0, 1, 2, 3]),
        ("map((0..3], #)", [1, 2, 3]),
        ("map([0..3), #)", [0, 1, 2]),
        ("map((0..3), #)", [1, 2]),
    ],
)
def test_interval_iterator_rows(source: str, expected: list[int]) -> None:
    # The four two-column rows of zen's standard.csv, which its runner skips.
    assert CompiledExpression.compile(source).evaluate() == expected
