"""The results of a run: the JSON document and its one-screen text form."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.load import Merged, percentile

# A client process busier than this share of one core may be what limits the run.
SATURATED_CPU_SHARE = 0.8
# Sends later than this behind their schedule (p99) mean the generator could not keep up.
SATURATED_LAG_S = 0.005
ROOT = Path(__file__).resolve().parent.parent


def git_sha() -> str:
    """HEAD of the checkout, with ``-dirty`` when it has uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ms(seconds: float | None) -> float | None:
    """Seconds to milliseconds, rounded to the microsecond."""
    return None if seconds is None else round(seconds * 1000, 3)


def summarize(merged: Merged, rate: float, duration_s: float) -> dict[str, Any]:
    """Rates, latency percentiles, errors and the generator's self-check of one run."""
    lat = merged.latencies
    errors = {code: n for code, n in sorted(merged.codes.items()) if code != "OK"}
    lag_p99 = percentile(merged.lags, 99)
    busiest = max(merged.cpu_shares, default=0.0)
    warnings = []
    if busiest > SATURATED_CPU_SHARE:
        warnings.append(
            f"generator saturated: a client process used {busiest:.0%} of a core (add --processes)"
        )
    if lag_p99 is not None and lag_p99 > SATURATED_LAG_S:
        warnings.append(
            f"generator late: p99 send lag {lag_p99 * 1000:.1f} ms behind schedule"
            " (client CPU or machine load)"
        )
    return {
        "offered_rps": rate,
        "achieved_rps": round(merged.ok_in_window / duration_s, 1),
        "answered_rps": round(merged.answered_in_window / duration_s, 1),
        "ok": merged.codes.get("OK", 0),
        "p50_ms": ms(percentile(lat, 50)),
        "p90_ms": ms(percentile(lat, 90)),
        "p99_ms": ms(percentile(lat, 99)),
        "p999_ms": ms(percentile(lat, 99.9)),
        "max_ms": ms(lat[-1] if lat else None),
        "errors": errors,
        "generator_cpu_share": [round(s, 3) for s in merged.cpu_shares],
        "send_lag_p99_ms": ms(lag_p99),
        "warnings": warnings,
    }


def machine() -> dict[str, Any]:
    """Where the run happened: cores, CPU model, load average, commit, date."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "git_sha": git_sha(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def text(result: dict[str, Any]) -> str:
    """A few lines for a terminal."""
    lines = [
        f"{result['scenario']} @ {result['offered_rps']:g}/s for {result['duration_s']:g}s"
        f" (warm-up {result['warmup_s']:g}s, {result['processes']} processes x"
        f" {result['channels']} channels) against {result['target']}",
        f"  achieved {result['achieved_rps']:.1f}/s OK"
        f" (answered {result['answered_rps']:.1f}/s), {result['ok']} OK calls measured",
        "  latency ms (from schedule): "
        + "  ".join(f"{k} {_fmt(result[k + '_ms'])}" for k in ("p50", "p90", "p99", "p999", "max")),
        f"  errors: {result['errors'] or 'none'}",
        f"  generator CPU share per process: {result['generator_cpu_share']},"
        f" send lag p99 {_fmt(result['send_lag_p99_ms'])} ms",
    ]
    floor = result.get("transport_floor_rps")
    if floor:
        share = result["achieved_rps"] / floor
        lines.append(
            f"  transport floor (echo, closed loop, same run): {floor:.0f}/s;"
            f" this run is {share:.1%} of it"
        )
    if "target_p99_ms" in result:
        verdict = "meets" if result["meets_target"] else "MISSES"
        lines.append(f"  p99 vs {result['target_p99_ms']:g} ms target: {verdict}")
    for key, value in result.get("notes", {}).items():
        lines.append(f"  {key}: {value}")
    lines.append(
        f"  machine: {result['cpu_count']} cores ({result['cpu_model']}),"
        f" load average {result['load_average']}, commit {result['git_sha'][:12]}"
    )
    lines.extend(f"  WARNING: {w}" for w in result["warnings"])
    return "\n".join(lines)
