"""``lendgate train``: a LightGBM model of application fraud, exported to ONNX.

Steps: feature rows from the event file, replayed through the live Rust scorer
(``dataset.examples``: the serving code path, which also gives each row the rules' points) →
time-based hold-out (the last ``holdout`` share of the event-time span) → LightGBM →
ONNX (onnxmltools) → a check that ONNX and LightGBM agree on the hold-out → a calibration
table to 0..1000 fitted on the training population → the quality comparison on the
hold-out (the rules' points alone, the model trained without the rule features, this
model) → a model card.

Why LightGBM rather than scikit-learn's HistGradientBoosting: its native tree dump gives the
explainer its arrays directly, onnxmltools converts its boosters without a pipeline
wrapper, it trains faster on two cores, and its wheel is a few MB (scikit-learn still comes
in as a dependency of the converter, but only in the ``train`` extra).

LightGBM, onnxmltools and onnx are imported lazily: they are training-only dependencies.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lendgate.models.calibration import Calibration, band_shares, target_shares
from lendgate.models.dataset import Example, examples
from lendgate.models.explain import PathExplainer
from lendgate.models.features import FEATURE_NAMES, RULE_FEATURES
from lendgate.models.metrics import pr_auc, roc_auc
from lendgate.models.onnx_session import OnnxModel

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
CARD_MD_FILE = "card.md"
EXPLAIN_FILE = "explain.npz"
NATIVE_FILE = "model.txt"
F32_MAX = float(np.finfo(np.float32).max)


class TrainingError(Exception):
    """Training could not produce a trustworthy model (too little data, ONNX mismatch)."""


@dataclass(frozen=True)
class TrainConfig:
    """Training knobs; the defaults suit the generated data."""

    name: str = "application-gbdt"
    holdout: float = 0.2
    rounds: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 40
    seed: int = 1
    threads: int = 2
    onnx_tolerance: float = 1e-4
    window_days: int | None = None
    """Train (and hold out) only on applications of the last ``window_days`` days of the
    data (a rolling window); their history features still see all earlier events."""


@dataclass(frozen=True)
class Dataset:
    """Feature matrix, labels, times, patterns and rule points of the create events."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.bool_]
    t: npt.NDArray[np.int64]
    patterns: list[str]
    points: npt.NDArray[np.float64]
    """The fired working rules' points (the report's fraud_score) of each row."""

    @staticmethod
    def of(rows: list[Example]) -> Dataset:
        """Stack examples (already in event-time order)."""
        x = np.asarray([r.features for r in rows], dtype=np.float32).reshape(-1, len(FEATURE_NAMES))
        return Dataset(
            x=x,
            y=np.asarray([r.fraud for r in rows], dtype=bool),
            t=np.asarray([r.time for r in rows], dtype=np.int64),
            patterns=[r.pattern for r in rows],
            points=np.asarray([r.rule_points for r in rows], dtype=np.float64),
        )

    def take(self, mask: npt.NDArray[np.bool_]) -> Dataset:
        """The rows where ``mask`` is true."""
        return Dataset(
            self.x[mask],
            self.y[mask],
            self.t[mask],
            [p for p, m in zip(self.patterns, mask, strict=True) if m],
            self.points[mask],
        )


def load_dataset(path: Path) -> Dataset:
    """Feature rows of every LOAN_APP_CREATE event of a generated file."""
    from lendgate.datagen import read_events  # noqa: PLC0415

    return Dataset.of(list(examples(read_events(path, kinds=("application", "outcome")))))


def split_by_time(data: Dataset, holdout: float) -> tuple[Dataset, Dataset, int]:
    """Training rows before the split time, hold-out rows from it; and the split time."""
    t0, t1 = int(data.t.min()), int(data.t.max())
    split = t0 + int((t1 - t0) * (1.0 - holdout))
    return data.take(data.t < split), data.take(data.t >= split), split


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def _to_onnx(booster: Any) -> bytes:
    import onnx  # noqa: PLC0415
    from onnxmltools import convert_lightgbm  # noqa: PLC0415
    from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: PLC0415

    model = convert_lightgbm(
        booster,
        initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        zipmap=False,
        target_opset=15,
    )
    _floor_thresholds(model, booster.dump_model())
    # Keep only the probabilities: the label output is unused and its declared shape
    # makes onnxruntime warn on every batch.
    for output in list(model.graph.output):
        if output.name != "probabilities":
            model.graph.output.remove(output)
    model.doc_string = "lendgate application fraud model (LightGBM)"
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _floor_thresholds(model: Any, dump: dict[str, Any]) -> None:
    """Round the ONNX split thresholds down to float32, not to nearest.

    LightGBM compares float32-valued features with double thresholds; ONNX stores float32
    thresholds rounded to nearest, which can round a threshold up onto a feature value and
    send that value the other way. With the threshold rounded down, ``x <= t32`` holds
    exactly when ``x <= t64`` for every float32 ``x``.
    """
    by_f32: dict[float, float] = {}
    stack = [t["tree_structure"] for t in dump["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            t64 = float(node["threshold"])
            if abs(t64) < F32_MAX:  # LightGBM writes +-1e300 for "all values" splits
                by_f32[float(np.float32(t64))] = t64
            stack += [node["left_child"], node["right_child"]]
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "nodes_values":
                values = []
                for v in attr.floats:
                    original = by_f32.get(float(np.float32(v)))
                    if original is not None and float(np.float32(original)) > original:
                        values.append(
                            float(np.nextafter(np.float32(original), np.float32(-np.inf)))
                        )
                    else:
                        values.append(v)
                del attr.floats[:]
                attr.floats.extend(values)


def in_window(data: Dataset, window_days: int | None) -> Dataset:
    """The rows of the last ``window_days`` days of event time (all rows when None)."""
    if window_days is None:
        return data
    return data.take(data.t >= int(data.t.max()) - window_days * 86400)


def train(data_path: Path, out: Path, cfg: TrainConfig | None = None) -> dict[str, Any]:
    """Train, export, check and calibrate; write the model directory; return the card."""
    cfg = cfg or TrainConfig()
    return train_on(in_window(load_dataset(data_path), cfg.window_days), str(data_path), out, cfg)


def train_on(data: Dataset, source: str, out: Path, cfg: TrainConfig) -> dict[str, Any]:
    """:func:`train` on rows already loaded (``source`` names them in the card)."""
    import lightgbm as lgb  # noqa: PLC0415

    started = time.monotonic()
    if data.x.shape[0] < 500:
        raise TrainingError(f"{data.x.shape[0]} applications: need at least 500 to train")
    fit, hold, split = split_by_time(data, cfg.holdout)
    if fit.y.sum() < 10 or hold.y.sum() < 5:
        raise TrainingError("too few fraud examples in the training or hold-out period")
    params = {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "lambda_l2": 5.0,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": cfg.threads,
        "verbose": -1,
    }
    dataset = lgb.Dataset(fit.x, fit.y.astype(np.int32), feature_name=list(FEATURE_NAMES))
    booster = lgb.train(params, dataset, num_boost_round=cfg.rounds)
    # "Model alone" of the quality comparison: the same training without the rule
    # features (never served; it shows what the model adds on its own).
    alone_fit = lgb.Dataset(
        _without_rules(fit.x), fit.y.astype(np.int32), feature_name=list(FEATURE_NAMES)
    )
    alone = lgb.train(params, alone_fit, num_boost_round=cfg.rounds)
    alone_p = alone.predict(_without_rules(hold.x).astype(np.float64), num_threads=cfg.threads)

    onnx_bytes = _to_onnx(booster)
    nan_as_zero = _nan_as_zero(booster.dump_model())
    model = OnnxModel(onnx_bytes, nan_as_zero)
    native = booster.predict(hold.x.astype(np.float64), num_threads=cfg.threads)
    served = model.predict(hold.x)
    diff = float(np.max(np.abs(native - served)))
    if not diff <= cfg.onnx_tolerance:
        raise TrainingError(
            f"ONNX and LightGBM disagree on the hold-out: max |diff| {diff:.3g} > "
            f"{cfg.onnx_tolerance:g}"
        )

    calibration = Calibration.fit(model.predict(fit.x))
    fit_scores = calibration.score(model.predict(fit.x))
    hold_scores = calibration.score(served)
    explainer = PathExplainer.from_lightgbm_dump(booster.dump_model())
    quality = compare_with_rules(hold, np.asarray(alone_p, np.float64), served)

    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(onnx_bytes)
    explainer.save(out / EXPLAIN_FILE)
    booster.save_model(str(out / NATIVE_FILE))
    importance = booster.feature_importance(importance_type="gain")
    card = {
        "name": cfg.name,
        "created": _iso(int(time.time())),
        "kind": "application",
        "algorithm": f"LightGBM {lgb.__version__} binary, exported with onnxmltools",
        "input": {
            "name": "features",
            "shape": [None, len(FEATURE_NAMES)],
            "dtype": "float32",
            "nan_as_zero": nan_as_zero,
        },
        "output": {"name": "probabilities", "column": 1, "meaning": "P(fraud) per row"},
        "features": list(FEATURE_NAMES),
        "data": {
            "file": source,
            "period": [_iso(int(data.t.min())), _iso(int(data.t.max()))],
            "holdout_from": _iso(split),
            "train_rows": int(fit.y.size),
            "train_fraud": int(fit.y.sum()),
            "holdout_rows": int(hold.y.size),
            "holdout_fraud": int(hold.y.sum()),
            "label": "ground-truth fraud label of the generator (label.fraud)",
        },
        "params": {**params, "rounds": cfg.rounds},
        "metrics": {
            "holdout_roc_auc": roc_auc(hold.y, served),
            "holdout_pr_auc": pr_auc(hold.y, served),
            "holdout_fraud_rate": float(hold.y.mean()),
            "holdout_recall_by_pattern_score_ge_500": _recall_by_pattern(hold, hold_scores),
        },
        "quality": quality,
        "onnx_check": {
            "rows": int(hold.y.size),
            "max_abs_diff": diff,
            "tolerance": cfg.onnx_tolerance,
        },
        "calibration": calibration.to_dict(),
        "band_shares": {
            "target": target_shares(),
            "training": band_shares(fit_scores),
            "holdout": band_shares(hold_scores),
        },
        "top_features_by_gain": [
            FEATURE_NAMES[i] for i in np.argsort(-importance)[:10] if importance[i] > 0
        ],
        "explanations": "path attributions (Saabas) from explain.npz, log-odds units",
        "training_seconds": round(time.monotonic() - started, 2),
        "config": asdict(cfg),
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (out / CARD_MD_FILE).write_text(card_markdown(card))
    return card


def _without_rules(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out = x.copy()
    out[:, [FEATURE_NAMES.index(f) for f in RULE_FEATURES]] = np.nan
    return out


def compare_with_rules(
    hold: Dataset, alone_p: npt.NDArray[np.float64], served_p: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """Issue 6 point 7 on the hold-out, by ROC-AUC and PR-AUC: the rules' points alone
    (the report's fraud_score), the model alone (trained without the rule features) and
    rules + model (the served model, which takes the rules' verdict as features)."""
    out: dict[str, Any] = {}
    for label, score in (
        ("rules_alone", hold.points),
        ("model_alone", alone_p),
        ("rules_plus_model", served_p),
    ):
        out[label] = {"roc_auc": roc_auc(hold.y, score), "pr_auc": pr_auc(hold.y, score)}
    r, m, b = (out[k]["pr_auc"] for k in ("rules_alone", "model_alone", "rules_plus_model"))
    out["model_beats_rules_pr_auc"] = bool(m > r)
    out["combination_beats_both_pr_auc"] = bool(b > max(r, m))
    return out


def _nan_as_zero(dump: dict[str, Any]) -> list[str]:
    """Features whose splits treat NaN as 0.0 (LightGBM missing type "None")."""
    found: set[int] = set()
    stack = [t["tree_structure"] for t in dump["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            if node["missing_type"] == "None":
                found.add(int(node["split_feature"]))
            stack += [node["left_child"], node["right_child"]]
    return [FEATURE_NAMES[i] for i in sorted(found)]


def _recall_by_pattern(hold: Dataset, scores: npt.NDArray[np.int32]) -> dict[str, float]:
    total: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    for pattern, score in zip(hold.patterns, scores, strict=True):
        total[pattern] += 1
        caught[pattern] += int(score >= 500)
    return {p: round(caught[p] / n, 3) for p, n in sorted(total.items())}


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as Markdown."""
    m, d = card["metrics"], card["data"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- Created: {card['created']}; {card['algorithm']}",
        f"- Data: `{d['file']}`, events {d['period'][0]} - {d['period'][1]}",
        f"- Training: {d['train_rows']} applications ({d['train_fraud']} fraud) before"
        f" {d['holdout_from']}; hold-out: {d['holdout_rows']} ({d['holdout_fraud']} fraud)",
        f"- Label: {d['label']}",
        f"- Hold-out ROC-AUC **{m['holdout_roc_auc']:.4f}**, PR-AUC **{m['holdout_pr_auc']:.4f}**"
        f" (fraud rate {m['holdout_fraud_rate']:.4f})",
        f"- ONNX vs LightGBM on the hold-out: max |diff| {card['onnx_check']['max_abs_diff']:.2e}"
        f" (tolerance {card['onnx_check']['tolerance']:g})",
        "",
        "## Bands (share of applications)",
        "",
        "| band | seed 003 target | training | hold-out |",
        "| --- | --- | --- | --- |",
    ]
    b = card["band_shares"]
    for band, target in b["target"].items():
        lines.append(
            f"| {band} | {target:.2%} | {b['training'][band]:.2%} | {b['holdout'][band]:.2%} |"
        )
    lines += [
        "",
        "## Calibration (raw probability at each knot)",
        "",
        "| score | raw |",
        "| --- | --- |",
    ]
    for score, raw in zip(card["calibration"]["score"], card["calibration"]["raw"], strict=True):
        lines.append(f"| {score} | {raw:.6g} |")
    q = card["quality"]
    lines += [
        "",
        "## Rules vs model on the hold-out (issue 6 point 7)",
        "",
        "| ranking | ROC-AUC | PR-AUC |",
        "| --- | --- | --- |",
    ]
    for key, label in (
        ("rules_alone", "rules alone (fraud_score points)"),
        ("model_alone", "model alone (trained without the rule features)"),
        ("rules_plus_model", "rules + model (this model: rule verdict as features)"),
    ):
        lines.append(f"| {label} | {q[key]['roc_auc']:.4f} | {q[key]['pr_auc']:.4f} |")
    lines += [
        "",
        f"Model beats the rules on PR-AUC: {q['model_beats_rules_pr_auc']}; rules + model"
        f" beat both: {q['combination_beats_both_pr_auc']}.",
    ]
    lines += ["", "## Hold-out recall at score ≥ 500, by pattern", ""]
    for pattern, recall in m["holdout_recall_by_pattern_score_ge_500"].items():
        lines.append(f"- {pattern}: {recall:.1%}")
    lines += ["", "## Features", "", ", ".join(f"`{f}`" for f in card["features"]), ""]
    lines += [f"Top by gain: {', '.join(card['top_features_by_gain'])}", ""]
    return "\n".join(lines)
