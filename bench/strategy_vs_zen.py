"""Strategy engine vs the ``zen-engine`` package on zen's own benchmark graphs.

Both engines evaluate the same graph on the same input in the same run, from Python,
one call at a time (input as a dict for zen, as JSON for ours — each engine's normal
Python entry point). Run: ``.venv/bin/python -m bench.strategy_vs_zen``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zen

from lendgate.strategy import CompiledStrategy

DATA = Path(__file__).resolve().parent.parent / "testdata" / "zen" / "benchmark"
SECONDS = 1.0


def rate(call: Callable[[], Any]) -> float:
    """Evaluations per second of ``call`` over about ``SECONDS``."""
    call()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < SECONDS:
        for _ in range(50):
            call()
        n += 50
    return n / elapsed


def main() -> None:
    """Print one row per benchmark graph and the geometric-mean ratio."""
    manifest = json.loads((DATA / "manifest.json").read_text())
    engine = zen.ZenEngine()
    ratios = []
    print(f"{'graph':40} {'lendgate/s':>12} {'zen/s':>12} {'ratio':>7}")
    for entry in (e for e in manifest if e["kind"] == "graph"):  # "policy" is not JDM
        content = (DATA / entry["file"]).read_text()
        data = entry["input"]
        ours = CompiledStrategy.compile(content)
        theirs = engine.create_decision(content)
        mine = rate(functools.partial(ours.evaluate, data))
        zens = rate(functools.partial(theirs.evaluate, data))
        ratios.append(mine / zens)
        print(f"{entry['name']:40} {mine:12.0f} {zens:12.0f} {mine / zens:6.1f}x")
    geo = 1.0
    for r in ratios:
        geo *= r
    print(f"geometric mean ratio: {geo ** (1 / len(ratios)):.1f}x")


if __name__ == "__main__":
    main()
