"""Daily retraining: the promote / keep decision on generated data, the schedule, hot pick-up."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lendgate.datagen import GenConfig, Generator, write_events
from lendgate.models.features import FEATURE_NAMES
from lendgate.models.registry import FileSystemRegistry
from lendgate.models.retrain import retrain, run_daily, seconds_until
from lendgate.models.serving import ModelService
from lendgate.models.train import TrainConfig

# Training a model (the module fixtures) takes longer than the default 60 s under load.
pytestmark = pytest.mark.timeout(300)

NAME = "application-gbdt"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("retrain") / "events.jsonl.gz"
    write_events(Generator(GenConfig(seed=41, applicants=2500, days=60)), path, progress=False)
    return path


def test_first_model_is_promoted_and_an_equal_one_is_not(data: Path, tmp_path: Path) -> None:
    registry = FileSystemRegistry(tmp_path / "models")
    cfg = TrainConfig(rounds=40, window_days=45)
    first = retrain(data, registry, cfg)
    assert first.promoted and first.new_version == "1" and first.reason == "no champion yet"
    assert registry.state(NAME).champion == "1"
    # Same data, same seed: the same model, which does not beat itself.
    second = retrain(data, registry, cfg)
    assert not second.promoted and second.new_version is None
    assert second.champion_pr_auc == pytest.approx(second.candidate_pr_auc)
    assert "does not beat" in second.reason
    assert [f.version for f in registry.versions(NAME)] == ["1"]
    assert registry.state(NAME).champion == "1"


def test_a_better_candidate_replaces_a_weak_champion(data: Path, tmp_path: Path) -> None:
    registry = FileSystemRegistry(tmp_path / "models")
    weak = retrain(data, registry, TrainConfig(rounds=1, num_leaves=2, window_days=45))
    assert weak.promoted
    # A required gain no model can reach keeps the champion ...
    kept = retrain(data, registry, TrainConfig(rounds=60, window_days=45), min_gain=1.0)
    assert not kept.promoted and registry.state(NAME).champion == "1"
    # ... the same candidate with no margin beats it on the same hold-out rows.
    better = retrain(data, registry, TrainConfig(rounds=60, window_days=45))
    assert better.champion_pr_auc is not None
    assert better.candidate_pr_auc > better.champion_pr_auc
    assert better.promoted and better.new_version == "2"
    state = registry.state(NAME)
    assert state.champion == "2" and state.history == ["1"]
    card = registry.files(NAME, "2").card
    assert card["retrain"]["champion_before"] == "1"


def test_retrain_command_prints_the_decision(data: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "lendgate.cli", "retrain", "--data", str(data)]
    cmd += ["--data-dir", str(tmp_path), "--rounds", "20", "--window-days", "45"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=50)
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout.strip().splitlines()[-1])
    assert decision["promoted"] is True and decision["new_version"] == "1"
    bad = subprocess.run(
        [*cmd[:-2], "--window-days", "0"], capture_output=True, text=True, check=False, timeout=50
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_daily_schedule_waits_for_the_next_run_time() -> None:
    at = dt.time(3, 0)
    before = dt.datetime(2026, 5, 1, 2, 30, tzinfo=dt.UTC)
    after = dt.datetime(2026, 5, 1, 3, 0, tzinfo=dt.UTC)
    assert seconds_until(at, before) == 1800
    assert seconds_until(at, after) == 86400  # just ran: tomorrow
    now = [before]
    slept: list[float] = []
    runs: list[dt.datetime] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += dt.timedelta(seconds=seconds)

    run_daily(lambda: runs.append(now[0]), at, clock=lambda: now[0], sleep=sleep, runs=2)
    assert runs == [after, after + dt.timedelta(days=1)]
    assert slept == [1800, 86400]


def test_a_serving_process_picks_up_a_promotion_made_elsewhere(data: Path, tmp_path: Path) -> None:
    serving = ModelService(FileSystemRegistry(tmp_path / "models"))
    stop = serving.watch(interval_s=0.05)
    try:
        elsewhere = FileSystemRegistry(tmp_path / "models")  # e.g. the retrain job
        retrain(data, elsewhere, TrainConfig(rounds=10, window_days=45))
        deadline = time.monotonic() + 30  # a bound against hanging, not a speed check
        while serving.active(NAME) != ("1", ()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert serving.active(NAME) == ("1", ())
        assert serving.score(NAME, [[0.0] * len(FEATURE_NAMES)])[0].score is not None
    finally:
        stop.set()


def test_a_broken_champion_on_disk_serves_no_score_instead_of_failing(
    data: Path, tmp_path: Path
) -> None:
    registry = FileSystemRegistry(tmp_path / "models")
    retrain(data, registry, TrainConfig(rounds=10, window_days=45))
    (tmp_path / "models" / NAME / "1" / "model.onnx").write_bytes(b"truncated")
    service = ModelService(registry)
    assert service.load_all() == []
    result = service.score(NAME, [[0.0] * len(FEATURE_NAMES)])[0]
    assert result.score is None
