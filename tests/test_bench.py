"""The load harness works: short runs, no thresholds on the machine's speed.

Latency bounds asserted here are lower bounds the server imposes (an artificial delay),
never upper bounds, so a busy machine cannot make these tests fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import harness, load, plot, processes, snapshot_capture, stream_vs_unary
from bench.__main__ import main
from lendgate.v1 import scoring_pb2


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


def test_scoring_checks_as_stream_items(tmp_path: Path) -> None:
    """``--stream`` sends every check as an item of a CheckStream call: each one answered
    with a report (an item error would count as ITEM_ERROR), none lost."""
    out = tmp_path / "stream.json"
    argv = ["scoring", "--stream", "--rate", "40", "--duration", "1", "--warmup", "0.5"]
    argv += ["--history", "300", "--preload-store", "--floor-seconds", "0"]
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["method"] == "/lendgate.v1.ScoringService/CheckStream"
    assert result["notes"]["stream"] is True
    assert result["errors"] == {}
    assert result["ok"] == 40


def test_snapshot_capture_bench_refuses_a_directory_without_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert snapshot_capture.main(["--data-dir", str(tmp_path)]) == 2
    assert "no lendgate store" in capsys.readouterr().err


def test_stream_answer_codes() -> None:
    report = scoring_pb2.CheckStreamResponse(correlation_id="7", report=scoring_pb2.Report())
    report.report.fraud_score = 10
    failed = scoring_pb2.CheckStreamResponse(correlation_id="8")
    failed.error.message = "bad"
    assert load.answer_code(report.SerializeToString()) == "OK"
    assert load.answer_code(failed.SerializeToString()) == "ITEM_ERROR"


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


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "echo", "--rates", "0,10"],
        ["sweep", "echo", "--rates", "ten"],
        ["sweep", "nope"],
        ["sweep", "echo", "--rates", "10", "--duration", "1", "--target", "127.0.0.1:1"],
    ],
)
def test_sweep_bad_input_is_one_line_and_exit_code_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err


def _sweep(scenario: str, steps: list[tuple[float, float | None, float | None]]) -> object:
    return {
        "scenario": scenario,
        "slo_p99_ms": 10.0,
        "cpu_count": 2,
        "load_average": [1.0, 1.0, 1.0],
        "git_sha": "0123456789ab",
        "steps": [{"offered_rps": r, "p50_ms": a, "p99_ms": b} for r, a, b in steps],
    }


def test_plot_draws_a_png_from_sweep_results(tmp_path: Path) -> None:
    echo, strategy = tmp_path / "echo.json", tmp_path / "strategy.json"
    echo.write_text(json.dumps(_sweep("echo", [(100, 1.1, 3.0), (200, 1.2, 4.0)])))
    # A step with no OK answer has no latency: it is left out, not drawn as zero.
    strategy.write_text(json.dumps(_sweep("strategy", [(100, 2.0, 6.0), (400, None, None)])))
    out = tmp_path / "plot.png"
    assert plot.plot([echo, strategy], out) == ["echo", "strategy"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.series(json.loads(strategy.read_text()), "s")[1] == [(100.0, 2.0, 6.0)]


def test_plot_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"scenario": "echo", "p99_ms": 3.0}))  # a single run, no steps
    assert plot.main([str(run), "--out", str(tmp_path / "x.png")]) == 2
    assert plot.main([str(tmp_path / "missing.json"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a `python -m bench sweep` result" in err[0]
    assert not (tmp_path / "x.png").exists()


def test_unary_and_stream_scoring_compared_in_one_run(tmp_path: Path) -> None:
    out = tmp_path / "svu.json"
    argv = ["--events", "60", "--rounds", "1", "--history", "50", "--concurrency", "4"]
    assert stream_vs_unary.main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for mode in ("unary-1", "unary-4", "stream"):
        assert result[mode]["events"] == 20
        assert result[mode]["codes"] == {"OK": 20}, result[mode]
        assert result[mode]["p99_ms"] >= result[mode]["p50_ms"] > 0


def test_stream_vs_unary_unreachable_target_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert stream_vs_unary.main(["--target", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot connect" in err, err


def test_micro_benchmarks_run_once_without_timing() -> None:
    # make bench times them (--benchmark-only); here each runs once as a plain test.
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench/micro",
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-disable",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=50,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
