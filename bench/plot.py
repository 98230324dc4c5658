"""p50/p99 latency against offered rate, from sweep results: a PNG for bench/RESULTS.md.

    .venv/bin/python -m bench.plot bench/out/*-sweep.json --out bench/latency-vs-rate.png

Each input is the ``--json`` of ``python -m bench sweep``; each becomes one colour, p50 a
solid line and p99 a dashed one, on a log latency axis, with each sweep's p99 objective
drawn across (a sweep stops at the first rate over its objective).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class PlotError(Exception):
    """An input is not a sweep result; the message says which and why."""


def series(document: dict[str, Any], source: str) -> tuple[str, list[tuple[float, float, float]]]:
    """The scenario and its ``(offered rate, p50 ms, p99 ms)`` points, steps with no OK
    answer left out (they have no latency)."""
    try:
        steps = document["steps"]
        points = [
            (float(s["offered_rps"]), float(s["p50_ms"]), float(s["p99_ms"]))
            for s in steps
            if s.get("p50_ms") is not None and s.get("p99_ms") is not None
        ]
        return str(document["scenario"]), points
    except (KeyError, TypeError, ValueError) as exc:
        raise PlotError(f"{source}: not a `python -m bench sweep` result ({exc!r})") from None


def plot(inputs: Sequence[Path], out: Path) -> list[str]:
    """Draw every sweep of ``inputs`` into ``out`` (PNG); return the scenarios drawn."""
    import matplotlib  # noqa: PLC0415 - loaded only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    drawn: list[str] = []
    slos: dict[float, list[str]] = {}
    loads: list[float] = []
    machine = ""
    for path in inputs:
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PlotError(f"{path}: {exc}") from None
        scenario, points = series(document, str(path))
        if not points:
            continue
        rates = [p[0] for p in points]
        (line,) = ax.plot(rates, [p[1] for p in points], "o-", label=f"{scenario} p50")
        ax.plot(
            rates, [p[2] for p in points], "s--", color=line.get_color(), label=f"{scenario} p99"
        )
        drawn.append(scenario)
        if document.get("slo_p99_ms") is not None:
            slos.setdefault(float(document["slo_p99_ms"]), []).append(scenario)
        loads += [float(s["load_average"][0]) for s in document["steps"] if "load_average" in s]
        sha = str(document.get("git_sha", "?"))[:10]
        machine = f"{document.get('cpu_count', '?')} cores, commit {sha}"
    if not drawn:
        raise PlotError("no sweep with measured latencies among the inputs")
    for slo, scenarios in sorted(slos.items()):
        label = f"p99 objective {slo:g} ms ({', '.join(scenarios)})"
        ax.axhline(slo, color="grey", linewidth=0.8, linestyle=":", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (calls/s, open loop)")
    ax.set_ylabel("latency from scheduled send (ms)")
    if loads:
        machine += f", load avg {min(loads):g}-{max(loads):g}"
    ax.set_title(f"lendgate: latency vs offered rate ({machine})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
    return drawn


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; a bad input is one line on stderr and exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__)
    parser.add_argument("inputs", nargs="+", type=Path, help="sweep JSON files")
    parser.add_argument("--out", type=Path, default=Path("bench/latency-vs-rate.png"))
    args = parser.parse_args(argv)
    try:
        drawn = plot(args.inputs, args.out)
    except PlotError as exc:
        print(f"bench.plot: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({', '.join(drawn)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
