"""Daily retraining: train on a rolling window, promote only a model that beats the champion.

``lendgate retrain --data FILE`` (once, e.g. from cron) or ``--schedule daily --at HH:MM``
(a loop in the foreground) trains a candidate on the last ``--window-days`` days of the
events and scores the candidate **and the current champion** on the same rows: the
candidate's hold-out (the most recent ``holdout`` share of the window) from the later of
the two models' hold-out starts, so neither was trained on them. It registers and
promotes the candidate only when its PR-AUC there beats the champion's by more than
``min_gain``; otherwise the champion stays and nothing is registered. A running
``lendgate serve`` picks the new champion up from the registry on its next poll
(``ModelService.watch``), without a restart.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lendgate.models.metrics import pr_auc
from lendgate.models.onnx_session import OnnxModel
from lendgate.models.registry import ModelRegistry
from lendgate.models.train import MODEL_FILE, TrainConfig, in_window, load_dataset, split_by_time
from lendgate.models.train import train_on as train_model


class RetrainError(Exception):
    """The candidate and the champion cannot be compared; the message says why."""


def _time(iso: object) -> int | None:
    if not isinstance(iso, str):
        return None
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


@dataclass(frozen=True)
class Decision:
    """What one retraining run decided, and on what figures."""

    name: str
    promoted: bool
    reason: str
    candidate_pr_auc: float
    champion_version: str | None
    champion_pr_auc: float | None
    new_version: str | None
    holdout_rows: int
    holdout_fraud: int

    def as_dict(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict (printed as one log line)."""
        return asdict(self)


def retrain(
    data_path: Path, registry: ModelRegistry, cfg: TrainConfig, min_gain: float = 0.0
) -> Decision:
    """Train a candidate on the rolling window of ``data_path``; promote it if it beats
    the champion of ``cfg.name`` on the candidate's hold-out by more than ``min_gain``."""
    data = in_window(load_dataset(data_path), cfg.window_days)
    _, hold, _ = split_by_time(data, cfg.holdout)
    with tempfile.TemporaryDirectory(prefix="lendgate-retrain-") as tmp:
        out = Path(tmp) / "candidate"
        card = train_model(data, str(data_path), out, cfg)
        candidate = OnnxModel((out / MODEL_FILE).read_bytes(), card["input"]["nan_as_zero"])
        candidate_auc = pr_auc(hold.y, candidate.predict(hold.x))
        state = registry.state(cfg.name)
        champion_auc = None
        if state.champion is not None:
            files = registry.files(cfg.name, state.champion)
            champion = OnnxModel(files.onnx, files.card.get("input", {}).get("nan_as_zero", ()))
            seen_until = _time(files.card.get("data", {}).get("holdout_from"))
            if seen_until is not None:  # rows the champion was trained on do not count
                hold = hold.take(hold.t >= seen_until)
            if hold.y.sum() == 0:
                raise RetrainError("no fraud in the hold-out rows both models are new to")
            candidate_auc = pr_auc(hold.y, candidate.predict(hold.x))
            champion_auc = pr_auc(hold.y, champion.predict(hold.x))
        if champion_auc is None:
            promote, reason = True, "no champion yet"
        elif candidate_auc > champion_auc + min_gain:
            promote = True
            reason = f"candidate PR-AUC {candidate_auc:.4f} > champion {champion_auc:.4f}"
            reason += f" + {min_gain:g}" if min_gain else ""
        else:
            promote = False
            reason = f"candidate PR-AUC {candidate_auc:.4f} does not beat champion"
            reason += f" {champion_auc:.4f}" + (f" + {min_gain:g}" if min_gain else "")
        version = None
        if promote:
            extra = {
                "registered_at": dt.datetime.now(dt.UTC).isoformat(),
                "retrain": {
                    "champion_before": state.champion,
                    "champion_holdout_pr_auc": champion_auc,
                    "candidate_holdout_pr_auc": candidate_auc,
                },
            }
            version = registry.register(cfg.name, out, extra)
            registry.promote(cfg.name, version)
    return Decision(
        name=cfg.name,
        promoted=promote,
        reason=reason,
        candidate_pr_auc=candidate_auc,
        champion_version=state.champion,
        champion_pr_auc=champion_auc,
        new_version=version,
        holdout_rows=int(hold.y.size),
        holdout_fraud=int(hold.y.sum()),
    )


def seconds_until(at: dt.time, now: dt.datetime) -> float:
    """Seconds from ``now`` (aware, UTC) to the next ``at`` o'clock UTC (today or tomorrow)."""
    target = dt.datetime.combine(now.date(), at, tzinfo=dt.UTC)
    if target <= now:
        target += dt.timedelta(days=1)
    return (target - now).total_seconds()


def run_daily(
    job: Callable[[], object],
    at: dt.time,
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    sleep: Callable[[float], None] = time.sleep,
    runs: int | None = None,
) -> None:
    """Run ``job`` every day at ``at`` UTC (``runs`` times, forever when None)."""
    done = 0
    while runs is None or done < runs:
        sleep(seconds_until(at, clock()))
        job()
        done += 1
