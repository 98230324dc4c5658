"""Strategy engine vs the ``zen-engine`` package on zen's own benchmark graphs.

Both engines evaluate the same graph on the same input in the same run, from Python,
one call at a time, alternating in short rounds so that machine load hits both alike.
Three ways of calling are measured, because where the input and output live decides
most of the cost on zen's large-input graphs (100-200 kB of output):

- ``dict``:  Python dict in, Python dict out, both engines (zen: ``evaluate(dict)``;
  ours: ``evaluate(dict).output``). Both pay for building the output's Python objects.
- ``bytes``: JSON bytes in; zen's cheapest input form (it accepts bytes) and its only
  output form (a dict); ours returns JSON bytes (``evaluate_json(...).raw``).
- ``struct``: ours only on the gRPC path: a serialized ``google.protobuf.Struct`` in and
  out (``evaluate_struct``), compared with zen's ``bytes`` figure.

Run: ``.venv/bin/python -m bench.strategy_vs_zen [--seconds S] [--markdown]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zen
from google.protobuf import struct_pb2

from lendgate.strategy import CompiledStrategy

DATA = Path(__file__).resolve().parent.parent / "testdata" / "zen" / "benchmark"


def rates(calls: dict[str, Callable[[], Any]], seconds: float) -> dict[str, float]:
    """Calls per second of each callable, measured in alternating rounds of ~50 ms."""
    for call in calls.values():
        call()
    spent = dict.fromkeys(calls, 0.0)
    count = dict.fromkeys(calls, 0)
    deadline = time.perf_counter() + seconds * len(calls)
    while time.perf_counter() < deadline:
        for name, call in calls.items():
            n, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < 0.05:
                for _ in range(5):
                    call()
                n += 5
            spent[name] += elapsed
            count[name] += n
    return {name: count[name] / spent[name] for name in calls}


def struct_bytes(data: Any) -> bytes:
    """``data`` as a serialized Struct (what a gRPC request carries)."""
    s = struct_pb2.Struct()
    s.update(data)
    return s.SerializeToString()


def _dict_output(strategy: CompiledStrategy, data: Any) -> Any:
    """Dict in, dict out: the decision's output is decoded (as zen's always is)."""
    return strategy.evaluate(data).output


def geomean(xs: list[float]) -> float:
    """Geometric mean."""
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main() -> None:
    """Print one row per benchmark graph and the geometric-mean ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per engine and mode")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    manifest = json.loads((DATA / "manifest.json").read_text())
    engine = zen.ZenEngine()
    rows = []
    for entry in (e for e in manifest if e["kind"] == "graph"):  # "policy" is not JDM
        content = (DATA / entry["file"]).read_text()
        data = entry["input"]
        raw = json.dumps(data).encode()
        pb = struct_bytes(data)
        ours = CompiledStrategy.compile(content)
        theirs = engine.create_decision(content)
        assert ours.evaluate(data).output == theirs.evaluate(data)["result"], entry["name"]
        r = rates(
            {
                "zen_dict": functools.partial(theirs.evaluate, data),
                "ours_dict": functools.partial(_dict_output, ours, data),
                "zen_bytes": functools.partial(theirs.evaluate, raw),
                "ours_bytes": functools.partial(ours.evaluate_json, raw),
                "ours_struct": functools.partial(ours.evaluate_struct, pb),
            },
            args.seconds,
        )
        rows.append((entry["name"], len(raw), r))
    header = (
        "graph",
        "input B",
        "zen dict/s",
        "ours dict/s",
        "ratio",
        "zen bytes/s",
        "ours bytes/s",
        "ratio",
        "ours struct/s",
        "ratio",
    )
    ratio_cols: dict[str, list[float]] = {"dict": [], "bytes": [], "struct": []}
    lines = []
    for name, size, r in rows:
        d = r["ours_dict"] / r["zen_dict"]
        b = r["ours_bytes"] / r["zen_bytes"]
        s = r["ours_struct"] / r["zen_bytes"]
        ratio_cols["dict"].append(d)
        ratio_cols["bytes"].append(b)
        ratio_cols["struct"].append(s)
        lines.append(
            (
                name,
                f"{size:,}",
                f"{r['zen_dict']:,.0f}",
                f"{r['ours_dict']:,.0f}",
                f"{d:.1f}x",
                f"{r['zen_bytes']:,.0f}",
                f"{r['ours_bytes']:,.0f}",
                f"{b:.1f}x",
                f"{r['ours_struct']:,.0f}",
                f"{s:.1f}x",
            )
        )
    geo = {k: geomean(v) for k, v in ratio_cols.items()}
    lines.append(
        (
            "geometric mean",
            "",
            "",
            "",
            f"{geo['dict']:.1f}x",
            "",
            "",
            f"{geo['bytes']:.1f}x",
            "",
            f"{geo['struct']:.1f}x",
        )
    )
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        for line in (header, *lines):
            print(f"{line[0]:34}" + "".join(f"{c:>14}" for c in line[1:]))


if __name__ == "__main__":
    main()
