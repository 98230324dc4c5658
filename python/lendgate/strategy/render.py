"""Strategy graphs as text for review: Mermaid flowcharts and Graphviz DOT.

Both show every node (name and kind), every edge (a switch's condition, an abTest's
path, an error edge's ``error`` label) and the content of decision tables (one line or
row per rule: input cells → output cells) and expression nodes (``key = expression``).
"""

from __future__ import annotations

import html
import json
from typing import Any, Literal

Format = Literal["mermaid", "dot"]

KIND_NAMES = {
    "inputNode": "input",
    "outputNode": "output",
    "switchNode": "switch",
    "decisionTableNode": "decision table",
    "expressionNode": "expression",
    "decisionNode": "sub-strategy",
    "customNode": "custom",
    "functionNode": "function",
}


def _kind(node: dict[str, Any]) -> str:
    kind = KIND_NAMES.get(str(node.get("type")), str(node.get("type")))
    content = node.get("content") or {}
    if node.get("type") == "decisionTableNode":
        kind += f" ({content.get('hitPolicy', 'first')})"
    elif node.get("type") == "customNode":
        kind += f": {content.get('kind', '?')}"
    elif node.get("type") == "decisionNode":
        kind += f": {content.get('key', '?')}"
    if content.get("executionMode") == "loop":
        kind += ", loop"
    return kind


def _table(content: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header (input fields, then output fields) and one row of cells per rule."""
    inputs = content.get("inputs") or []
    outputs = content.get("outputs") or []
    columns = [*inputs, *outputs]
    header = [str(c.get("field") or c.get("name") or c.get("id") or "") for c in inputs] + [
        "→ " + str(c.get("field") or c.get("name") or "") for c in outputs
    ]
    rows = [
        [str(rule.get(c.get("id"), "") or "-") for c in columns]
        for rule in content.get("rules") or []
    ]
    return header, rows


def _lines(node: dict[str, Any]) -> list[str]:
    """The node's content as plain text lines."""
    content = node.get("content") or {}
    kind = node.get("type")
    if kind == "decisionTableNode":
        header, rows = _table(content)
        n_in = len(content.get("inputs") or [])
        out = [" | ".join(header)]
        for row in rows:
            out.append(" | ".join(row[:n_in]) + " → " + " | ".join(row[n_in:]))
        return out
    if kind == "expressionNode":
        return [f"{e.get('key')} = {e.get('value')}" for e in content.get("expressions") or []]
    if kind == "customNode":
        return [json.dumps(content.get("config") or {}, sort_keys=True)]
    return []


def _edge_labels(doc: dict[str, Any]) -> dict[str, str]:
    """Edge id → label: a switch statement's condition, an abTest path, ``error``."""
    conditions: dict[str, str] = {}
    for node in doc.get("nodes") or []:
        content = node.get("content") or {}
        for st in content.get("statements") or []:
            conditions[str(st.get("id"))] = str(st.get("condition") or "else")
    labels = {}
    for edge in doc.get("edges") or []:
        handle = edge.get("sourceHandle")
        if handle:
            labels[str(edge.get("id"))] = conditions.get(str(handle), str(handle))
    return labels


def _mermaid_text(s: str) -> str:
    """Text safe inside a quoted Mermaid label (Mermaid's ``#name;`` entity codes)."""
    s = s.replace("#", "#35;")
    for ch, code in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        s = s.replace(ch, code)
    return s


def render(graph_json: str, fmt: Format = "mermaid") -> str:
    """Render a JDM graph as a Mermaid flowchart or a Graphviz DOT digraph."""
    doc = json.loads(graph_json)
    nodes = doc.get("nodes") or []
    ids = {str(n.get("id")): f"n{i}" for i, n in enumerate(nodes)}
    labels = _edge_labels(doc)
    if fmt == "dot":
        return _dot(nodes, doc.get("edges") or [], ids, labels)
    out = ["flowchart LR"]
    for node in nodes:
        name = _mermaid_text(str(node.get("name") or node.get("id")))
        label = "<br/>".join([f"<b>{name}</b>", *map(_mermaid_text, [_kind(node), *_lines(node)])])
        out.append(f'  {ids[str(node.get("id"))]}["{label}"]')
    for edge in doc.get("edges") or []:
        src, dst = ids.get(str(edge.get("sourceId"))), ids.get(str(edge.get("targetId")))
        if src is None or dst is None:
            continue
        edge_label = labels.get(str(edge.get("id")))
        arrow = f' -->|"{_mermaid_text(edge_label)}"| ' if edge_label else " --> "
        out.append(f"  {src}{arrow}{dst}")
    return "\n".join(out) + "\n"


def _dot(
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    ids: dict[str, str],
    labels: dict[str, str],
) -> str:
    out = ["digraph strategy {", "  rankdir=LR;", "  node [shape=plaintext];"]
    for node in nodes:
        e = html.escape
        rows = [
            f"<TR><TD><B>{e(str(node.get('name') or node.get('id')))}</B></TD></TR>",
            f"<TR><TD><I>{e(_kind(node))}</I></TD></TR>",
        ]
        content = node.get("content") or {}
        if node.get("type") == "decisionTableNode":
            header, table_rows = _table(content)
            cells = "".join(f"<TD><B>{e(h)}</B></TD>" for h in header)
            inner = [f"<TR>{cells}</TR>"]
            inner += ["<TR>" + "".join(f"<TD>{e(c)}</TD>" for c in r) + "</TR>" for r in table_rows]
            rows.append(
                '<TR><TD><TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0">'
                + "".join(inner)
                + "</TABLE></TD></TR>"
            )
        else:
            rows += [f"<TR><TD>{e(line)}</TD></TR>" for line in _lines(node)]
        table = '<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0">' + "".join(rows) + "</TABLE>"
        out.append(f"  {ids[str(node.get('id'))]} [label=<{table}>];")
    for edge in edges:
        src, dst = ids.get(str(edge.get("sourceId"))), ids.get(str(edge.get("targetId")))
        if src is None or dst is None:
            continue
        label = labels.get(str(edge.get("id")))
        attr = f" [label={json.dumps(label)}]" if label else ""
        out.append(f"  {src} -> {dst}{attr};")
    out.append("}")
    return "\n".join(out) + "\n"
