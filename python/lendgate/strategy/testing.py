"""Strategy test cases: running them with coverage, generating inputs from the graph,
and the ``lendgate strategy test FILE`` command.

Coverage counts, per decision table, the rows some case matched and, per switch,
the branches some case took (from the evaluation trace). The generator reads every
table cell and switch condition that compares a field with a literal and proposes
boundary values — the literal itself, one below and one above for numbers, each
listed string — then varies one field at a time from a base input, so that every
boundary is tried; a generated input has no expected output (it is a starting point
for the author, or for a simulation).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from lendgate.errors import LendgateError
from lendgate.strategy.engine import CompiledStrategy, Decision, Host, PythonNodes

_NUMBER = r"-?\d+(?:\.\d+)?"
_COMPARE = re.compile(rf"(?:^|[\s(,])(<=|>=|<|>|==|!=)?\s*({_NUMBER})(?=$|[\s),\]])")
_RANGE = re.compile(rf"[\[(]\s*({_NUMBER})\s*\.\.\s*({_NUMBER})\s*[\])]")
_STRING = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_FIELD_CMP = re.compile(rf"([A-Za-z_][\w.]*)\s*(<=|>=|<|>|==|!=)\s*({_NUMBER}|'[^']*')")


@dataclass(frozen=True)
class NodeCoverage:
    """Rows (tables) or branches (switches) of one node, and which were hit."""

    node_id: str
    node_type: str
    total: int
    covered: int
    uncovered: tuple[int, ...]


@dataclass
class Coverage:
    """Accumulates the rows and branches hit over many evaluations of one graph."""

    graph: Mapping[str, Any]
    hits: dict[str, set[str]] = field(default_factory=dict)

    def add(self, decision: Decision) -> None:
        """Record what one evaluation (run with ``trace=True``) hit."""
        for entry in decision.trace:
            detail = entry.get("detail") or {}
            ids = detail.get("matchedRules") or detail.get("statements") or []
            self.hits.setdefault(entry["nodeId"], set()).update(str(i) for i in ids)

    def report(self) -> list[NodeCoverage]:
        """Per table and switch node, in graph order."""
        out = []
        for node in self.graph.get("nodes") or []:
            content = node.get("content") or {}
            if node.get("type") == "decisionTableNode":
                items = [str(r.get("_id", i)) for i, r in enumerate(content.get("rules") or [])]
            elif node.get("type") == "switchNode":
                items = [str(s.get("id")) for s in content.get("statements") or []]
            else:
                continue
            hit = self.hits.get(str(node.get("id")), set())
            uncovered = tuple(i for i, item in enumerate(items) if item not in hit)
            out.append(
                NodeCoverage(
                    str(node.get("id")),
                    str(node.get("type")),
                    len(items),
                    len(items) - len(uncovered),
                    uncovered,
                )
            )
        return out


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        nxt = doc.get(part)
        if not isinstance(nxt, dict):
            nxt = doc[part] = {}
        doc = nxt
    doc[parts[-1]] = value


def _num(text: str) -> int | float:
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() else float(d)


def _cell_values(cell: str) -> list[Any]:
    """Boundary values a unary table cell suggests."""
    values: list[Any] = []
    for lo, hi in _RANGE.findall(cell):
        a, b = _num(lo), _num(hi)
        values += [a - 1, a, b, b + 1]
    stripped = _RANGE.sub(" ", cell)
    for s1, s2 in _STRING.findall(stripped):
        values.append(s1 or s2)
    for op, number in _COMPARE.findall(_STRING.sub(" ", stripped)):
        n = _num(number)
        values += [n] if op in {"", "=="} else [n - 1, n, n + 1]
    return values


def boundary_values(graph: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Field path → the boundary values of every table cell and switch condition on it."""
    found: dict[str, list[Any]] = {}

    def add(path: str, values: Iterable[Any]) -> None:
        bucket = found.setdefault(path, [])
        for v in values:
            if v not in bucket:
                bucket.append(v)

    for node in graph.get("nodes") or []:
        content = node.get("content") or {}
        if node.get("type") == "decisionTableNode":
            for column in content.get("inputs") or []:
                path = column.get("field")
                if not path or not re.fullmatch(r"[A-Za-z_][\w.]*", str(path)):
                    continue
                for rule in content.get("rules") or []:
                    add(str(path), _cell_values(str(rule.get(column.get("id"), "") or "")))
        elif node.get("type") == "switchNode":
            for statement in content.get("statements") or []:
                for path, op, literal in _FIELD_CMP.findall(str(statement.get("condition") or "")):
                    if literal.startswith("'"):
                        add(path, [literal.strip("'")])
                    else:
                        n = _num(literal)
                        add(path, [n] if op in {"==", "!="} else [n - 1, n, n + 1])
    return found


def _neutral(options: list[Any]) -> Any:
    """A value below every numeric boundary, or a string matching none of the listed."""
    numbers = [v for v in options if isinstance(v, int | float) and not isinstance(v, bool)]
    return min(numbers) - 1 if numbers else "(other)"


def generate_inputs(graph: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> list[Any]:
    """Inputs trying every boundary value: a base input (each field below every numeric
    boundary, or an unlisted string, unless ``base`` sets it), then one field varied at
    a time."""
    values = boundary_values(graph)
    start: dict[str, Any] = json.loads(json.dumps(base or {}))
    for path, options in values.items():
        if options and _get(start, path) is None:
            _set(start, path, _neutral(options))
    out = [start]
    for path, options in values.items():
        for v in options:
            variant = json.loads(json.dumps(start))
            _set(variant, path, v)
            if variant not in out:
                out.append(variant)
    return out


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def diff(expected: Any, actual: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Where ``actual`` differs from ``expected`` (numbers compared by value)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(expected) | set(actual)):
            sub = f"{path}.{key}" if path else key
            out += diff(expected.get(key), actual.get(key), sub)
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in diff(e, a, f"{path}[{i}]")
        ]
    same_number = (
        isinstance(expected, int | float)
        and isinstance(actual, int | float)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
        and float(expected) == float(actual)
    )
    return [] if expected == actual or same_number else [(path, expected, actual)]


# --- the command -----------------------------------------------------------------------


def load_test_file(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """A JDM graph file and its test cases: ``{"nodes", "edges", "tests": [{"name",
    "input", "output"}]}`` (tests inline, as the GoRules editor keeps them) or
    ``{"graph": {...}, "tests": [...]}``."""
    doc = json.loads(path.read_text())
    tests = list(doc.get("tests") or [])
    graph = doc.get("graph", doc)
    graph = {k: v for k, v in graph.items() if k != "tests"}
    return json.dumps(graph), tests


def run_file(path: Path, *, generate: bool = False, out: Any = None) -> int:
    """Run a file's test cases with coverage; print a report (to ``out``, default
    stdout); 0 if all pass."""
    out = out or sys.stdout
    graph_json, tests = load_test_file(path)
    compiled = CompiledStrategy.compile(graph_json)
    graph = json.loads(graph_json)
    coverage = Coverage(graph)
    failed = 0
    host = Host(_no_sub_strategies, PythonNodes())
    for i, case in enumerate(tests):
        name = case.get("name") or f"case {i + 1}"
        decision = compiled.evaluate(case.get("input", {}), trace=True, host=host)
        coverage.add(decision)
        diffs = diff(case.get("output"), decision.output) if decision.ok else []
        if decision.ok and not diffs:
            print(f"PASS {name}", file=out)
            continue
        failed += 1
        print(f"FAIL {name}: {decision.error or ''}", file=out)
        for where, expected, actual in diffs:
            print(f"     {where or '(output)'}: expected {expected!r}, got {actual!r}", file=out)
    generated = generate_inputs(graph) if generate else []
    for data in generated:
        coverage.add(compiled.evaluate(data, trace=True, host=host))
    print(f"{len(tests) - failed}/{len(tests)} passed", file=out)
    for c in coverage.report():
        gaps = f"; never hit: {list(c.uncovered)}" if c.uncovered else ""
        print(f"coverage {c.node_id} ({c.node_type}): {c.covered}/{c.total}{gaps}", file=out)
    if generate:
        print(f"{len(generated)} generated inputs included in coverage", file=out)
    return 1 if failed else 0


def _no_sub_strategies(key: str) -> CompiledStrategy:
    raise LookupError(f"sub-strategy {key!r} is not available to `lendgate strategy test`")


def add_parser(commands: Any) -> None:
    """Register ``strategy test`` on the ``lendgate`` subcommand parser."""
    p = commands.add_parser("strategy", help="decision strategies: run a graph's test cases")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser("test", help="run a JDM file's test cases and report coverage")
    t.add_argument("file", type=Path, help="JDM graph JSON with a top-level `tests` list")
    t.add_argument(
        "--generate",
        action="store_true",
        help="also evaluate inputs generated from the table cells (coverage only)",
    )
    t.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return run_file(args.file, generate=args.generate)
    except (OSError, ValueError, LendgateError) as exc:
        print(f"lendgate: {args.file}: {exc}", file=sys.stderr)
        return 2
