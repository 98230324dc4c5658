"""Differential test: lendgate's expression engine against zen-engine (the reference).

Hypothesis generates expressions over literals, variables, arithmetic, comparisons,
and/or/not, ternaries, ``in`` over intervals and lists, string functions and
closures; both engines must give the same value or both must fail.
"""

from __future__ import annotations

import math
from typing import Any

import zen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lendgate import CompiledExpression, CompiledUnaryExpression, LendgateError

CONTEXT = st.fixed_dictionaries(
    {
        "a": st.integers(-20, 20),
        "b": st.sampled_from([0, 0.5, 1.25, -3.75, 10]),
        "s": st.sampled_from(["", "abc", "Hello World", " pad "]),
        "flag": st.booleans(),
        "xs": st.lists(st.integers(-5, 5), max_size=5),
        "none": st.none(),
    }
)

NUMBER = st.one_of(
    st.integers(-50, 50).map(str),
    st.sampled_from(["0.1", "0.2", "2.5", "1e2", "3.14"]),
)
STRING = st.sampled_from(["'abc'", '"Hello"', "''", "'a b'", "'World'"])
ATOM = st.one_of(
    NUMBER,
    STRING,
    st.sampled_from(["true", "false", "null", "a", "b", "s", "flag", "xs", "none", "missing"]),
)
CLOSURE_BODY = st.sampled_from(["# > 0", "# * 2", "# % 2 == 0", "# + a", "# == 3", "-#"])


def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One level of the grammar over smaller expressions."""
    binary = st.sampled_from(
        ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or", "??"]
    )
    return st.one_of(
        st.tuples(children, binary, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        children.map(lambda c: f"not {c}"),
        children.map(lambda c: f"-{c}"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(
            children,
            st.sampled_from(["[", "("]),
            NUMBER,
            NUMBER,
            st.sampled_from(["]", ")"]),
        ).map(lambda t: f"({t[0]} in {t[1]}{t[2]}..{t[3]}{t[4]})"),
        st.tuples(children, st.lists(ATOM, max_size=3)).map(
            lambda t: f"({t[0]} not in [{', '.join(t[1])}])"
        ),
        st.tuples(
            st.sampled_from(["upper", "lower", "trim", "len", "string", "number", "bool"]),
            children,
        ).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["startsWith", "endsWith", "contains"]), children, STRING).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(
            st.sampled_from(["map", "filter", "some", "all", "none", "count", "one"]),
            st.sampled_from(["xs", "[1, 2, 3]", "[0..4]", "[]"]),
            CLOSURE_BODY,
        ).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(["sum", "max", "min", "len"]), children).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
    )


EXPRESSION = st.recursive(ATOM, combine, max_leaves=8)


def run_zen(fn: Any, expression: str, context: dict[str, Any]) -> tuple[bool, Any]:
    try:
        return True, fn(expression, context)
    except Exception:
        return False, None


def run_ours(compiled: Any, context: dict[str, Any]) -> tuple[bool, Any]:
    try:
        return True, compiled(context)
    except LendgateError:
        return False, None


def same(a: Any, b: Any) -> bool:
    """Value equality that tells bools from numbers and compares floats closely."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=EXPRESSION, context=CONTEXT)
def test_standard_expressions_agree_with_zen(expression: str, context: dict[str, Any]) -> None:
    zen_ok, zen_value = run_zen(zen.evaluate_expression, expression, context)
    try:
        compiled = CompiledExpression.compile(expression)
    except LendgateError:
        assert not zen_ok, f"{expression!r}: zen gave {zen_value!r}, we reject the syntax"
        return
    ok, value = run_ours(compiled.evaluate, context)
    assert ok == zen_ok, f"{expression!r} on {context}: zen {zen_value!r}, ours {value!r}"
    if ok:
        assert same(value, zen_value), (
            f"{expression!r} on {context}: zen {zen_value!r}, ours {value!r}"
        )


UNARY_TERM = st.one_of(
    st.tuples(st.sampled_from([">", ">=", "<", "<=", "==", "!="]), NUMBER).map(
        lambda t: f"{t[0]} {t[1]}"
    ),
    st.tuples(st.sampled_from(["[", "("]), NUMBER, NUMBER, st.sampled_from(["]", ")"])).map(
        lambda t: f"{t[0]}{t[1]}..{t[2]}{t[3]}"
    ),
    NUMBER,
    STRING,
    st.sampled_from(["startsWith($, 'a')", "len($) > 2", "$ * 2 > 10", "[1, 2, 3]"]),
)
UNARY = st.lists(UNARY_TERM, min_size=1, max_size=3).flatmap(
    lambda terms: st.lists(
        st.sampled_from([", ", " and ", " or "]),
        min_size=len(terms) - 1,
        max_size=len(terms) - 1,
    ).map(lambda joins: terms[0] + "".join(j + t for j, t in zip(joins, terms[1:], strict=True)))
)
SUBJECT = st.one_of(st.integers(-20, 20), st.sampled_from([0.5, 2.5, "abc", "a", "Hello", None]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(test=UNARY, subject=SUBJECT)
def test_unary_tests_agree_with_zen(test: str, subject: Any) -> None:
    context = {"$": subject}
    zen_ok, zen_value = run_zen(zen.evaluate_unary_expression, test, context)
    try:
        compiled = CompiledUnaryExpression.compile(test)
    except LendgateError:
        assert not zen_ok, f"{test!r}: zen gave {zen_value!r}, we reject the syntax"
        return
    ok, value = run_ours(lambda c: compiled.evaluate(c["$"]), context)
    assert ok == zen_ok, f"{test!r} on {subject!r}: zen {zen_value!r}, ours {value!r}"
    if ok:
        assert value == zen_value, f"{test!r} on {subject!r}: zen {zen_value!r}, ours {value!r}"
