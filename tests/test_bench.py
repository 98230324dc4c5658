"""The load harness works: short runs, no thresholds on the machine's speed.

Latency bounds asserted here are lower bounds the server imposes (an artificial delay),
never upper bounds, so a busy machine cannot make these tests fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import harness, processes
from bench.__main__ import main


def quick(scenario: str, rate: float) -> harness.RunConfig:
    """Two seconds measured after half a second of warm-up; no transport floor."""
    return harness.RunConfig(scenario, rate=rate, duration_s=2.0, warmup_s=0.5, floor_s=0.0)


def test_echo_at_a_low_rate_achieves_the_offered_rate(tmp_path: Path) -> None:
    out = tmp_path / "echo.json"
    argv = ["echo", "--rate", "50", "--duration", "2", "--warmup", "0.5"]
    assert main([*argv, "--floor-seconds", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in (
        "offered_rps",
        "achieved_rps",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "errors",
        "cpu_count",
        "git_sha",
        "load_average",
        "transport_floor_rps",
        "generator_cpu_share",
    ):
        assert key in result, key
    assert result["errors"] == {}
    assert result["ok"] == 100  # every scheduled call of the window, none lost
    assert result["achieved_rps"] == pytest.approx(50, rel=0.15)
    assert result["transport_floor_rps"] > 0
    assert len(result["generator_cpu_share"]) == 2


def test_latency_runs_from_the_scheduled_time() -> None:
    with processes.start_echo(delay_ms=50) as echo:
        result = harness.run(quick("echo", 40), echo.address)
    assert result["ok"] == 80
    assert result["p50_ms"] >= 50
    assert result["max_ms"] >= result["p99_ms"] >= result["p50_ms"]


def test_errors_are_counted_by_status_code() -> None:
    with processes.start_echo(code="NOT_FOUND") as echo:
        result = harness.run(quick("echo", 30), echo.address)
    assert result["errors"] == {"NOT_FOUND": 60}
    assert result["achieved_rps"] == 0
    assert result["p50_ms"] is None


def test_strategy_evaluate_over_a_real_server() -> None:
    result = harness.run(quick("strategy", 30))
    assert result["errors"] == {}
    assert result["ok"] == 60
    assert result["method"] == "/lendgate.v1.StrategyService/Evaluate"


def test_scoring_on_a_store_preloaded_with_load_history(tmp_path: Path) -> None:
    out = tmp_path / "scoring.json"
    argv = ["scoring", "--rate", "20", "--duration", "1", "--warmup", "0.5", "--history", "300"]
    assert main([*argv, "--preload-store", "--floor-seconds", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["errors"] == {}
    notes = result["notes"]
    assert notes["preloaded_store"] is True and notes["preload_events"] == 300
    assert notes["preload_codes"] == {}  # nothing sent over the API
    assert notes["history_load_s"] > 0 and notes["start_s"] > 0


@pytest.mark.parametrize(
    "argv",
    [
        ["echo", "--rate", "0"],
        ["nope", "--rate", "10"],
        ["echo", "--rate", "10", "--duration", "1", "--target", "127.0.0.1:1"],
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
