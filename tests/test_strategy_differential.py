"""Differential tests: our engine and the ``zen-engine`` package on generated JDM graphs.

Hypothesis builds graphs from JDM's node types — input, switch (first / collect),
decision table (first / collect, loop mode, inputField / outputPath / passThrough), expression
(passThrough), output — and inputs; both engines must give the same output.
"""

from __future__ import annotations

import json
from typing import Any

import zen
from hypothesis import given, settings
from hypothesis import strategies as st

from lendgate.strategy import CompiledStrategy

FIELDS = ("a", "b")
WORDS = ("x", "y", "z")

numbers = st.integers(-20, 20)
unary_num = st.one_of(
    st.just(""),
    numbers.map(lambda k: f"> {k}"),
    numbers.map(lambda k: f"<= {k}"),
    numbers.map(str),
    st.tuples(numbers, numbers).map(lambda p: f"[{min(p)}..{max(p)}]"),
    st.tuples(numbers, numbers).map(lambda p: f"{p[0]}, {p[1]}"),
)
unary_word = st.one_of(
    st.just(""),
    st.sampled_from(WORDS).map(lambda w: f"'{w}'"),
    st.just("'x', 'y'"),
    st.just("not('z')"),
)
arith = st.one_of(
    st.sampled_from(
        [
            "a + b",
            "a * 2 - b",
            "max([a, b])",
            "a > b",
            "c == 'x' ? 1 : 2",
            "abs(a) + 1",
            "c + '-' + c",
            "a % 3",
            "len(c)",
            "a == b or c != 'y'",
        ]
    ),
    numbers.map(str),
)
conditions = st.one_of(
    numbers.map(lambda k: f"a > {k}"),
    numbers.map(lambda k: f"b <= {k}"),
    st.sampled_from(WORDS).map(lambda w: f"c == '{w}'"),
)


@st.composite
def table(draw: st.DrawFn, n: int) -> dict[str, Any]:
    """A decision table over a, b, c with 1..5 rules."""
    hit = draw(st.sampled_from(["first", "collect"]))
    inputs = [{"id": "ia", "field": "a"}, {"id": "ib", "field": "b"}, {"id": "ic", "field": "c"}]
    outputs = [{"id": "o1", "field": "r"}, {"id": "o2", "field": "s.v"}]
    rules = []
    for i in range(draw(st.integers(1, 5))):
        rules.append(
            {
                "_id": f"r{i}",
                "ia": draw(unary_num),
                "ib": draw(unary_num),
                "ic": draw(unary_word),
                "o1": draw(arith),
                "o2": draw(st.sampled_from(["'low'", "'high'", "a", "b + 1"])),
            }
        )
    content: dict[str, Any] = {
        "hitPolicy": hit,
        "inputs": inputs,
        "outputs": outputs,
        "rules": rules,
        "passThrough": True,
        "outputPath": f"t{n}",
    }
    if draw(st.booleans()):  # loop mode over the input's `items`
        content.update(inputField="items", executionMode="loop")
    return {"id": f"n{n}", "name": f"table{n}", "type": "decisionTableNode", "content": content}


@st.composite
def expression(draw: st.DrawFn, n: int) -> dict[str, Any]:
    """An expression node adding 1..3 keys (pass-through)."""
    exprs = [
        {"id": f"e{i}", "key": f"x{n}_{i}", "value": draw(arith)}
        for i in range(draw(st.integers(1, 3)))
    ]
    return {
        "id": f"n{n}",
        "name": f"expr{n}",
        "type": "expressionNode",
        "content": {"expressions": exprs, "passThrough": True},
    }


@st.composite
def graphs(draw: st.DrawFn) -> str:
    """input → a chain of tables / expressions / switch diamonds → output."""
    nodes: list[dict[str, Any]] = [{"id": "in", "name": "request", "type": "inputNode"}]
    edges: list[dict[str, Any]] = []
    last = "in"
    n = 0

    def link(src: str, dst: str, handle: str | None = None) -> None:
        edge = {"id": f"e{len(edges)}", "sourceId": src, "targetId": dst}
        if handle:
            edge["sourceHandle"] = handle
        edges.append(edge)

    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["table", "expression", "switch"]))
        n += 1
        if kind == "switch":
            hit = draw(st.sampled_from(["first", "collect"]))
            statements = [
                {"id": "s1", "condition": draw(conditions)},
                {"id": "s2", "condition": ""},
            ]
            sw_id = f"n{n}"
            sw: dict[str, Any] = {
                "id": sw_id,
                "name": f"switch{n}",
                "type": "switchNode",
                "content": {"hitPolicy": hit, "statements": statements},
            }
            nodes.append(sw)
            link(last, sw_id)
            branches = []
            for handle in ("s1", "s2"):
                n += 1
                branch = draw(expression(n))
                nodes.append(branch)
                link(sw_id, branch["id"], handle)
                branches.append(branch["id"])
            n += 1
            join = draw(expression(n))
            nodes.append(join)
            for b in branches:
                link(b, join["id"])
            last = join["id"]
            continue
        node = draw(table(n) if kind == "table" else expression(n))
        nodes.append(node)
        link(last, node["id"])
        last = node["id"]
    nodes.append({"id": "out", "name": "response", "type": "outputNode"})
    link(last, "out")
    return json.dumps({"nodes": nodes, "edges": edges})


item = st.fixed_dictionaries({"a": numbers, "b": numbers, "c": st.sampled_from(WORDS)})
inputs = st.builds(
    lambda top, items: {**top, "items": items}, item, st.lists(item, min_size=0, max_size=3)
)

ENGINE = zen.ZenEngine()


@settings(max_examples=150, deadline=None)
@given(graph=graphs(), data=st.lists(inputs, min_size=1, max_size=4))
def test_same_output_as_zen(graph: str, data: list[dict[str, Any]]) -> None:
    ours = CompiledStrategy.compile(graph)
    theirs = ENGINE.create_decision(graph)
    for item in data:
        expected = theirs.evaluate(item)["result"]
        decision = ours.evaluate(item)
        assert decision.ok, decision.error
        assert decision.output == expected, (graph, item)
