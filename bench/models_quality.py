"""Does the model earn its place? Rules' points vs the model vs both, on one hold-out.

    .venv/bin/python -m bench.models_quality [--applicants 4000] [--days 90] [--json FILE]

1. Generates a data set (``lendgate.datagen``, seeded, ground-truth fraud labels).
2. ``lendgate train``'s path: every event replayed in time order through the live Rust
   scorer with the default pack (``lendgate.models.dataset``), which gives each
   application both its model features (the model callable's arguments) and its rules'
   verdict (the report's ``fraud_score``); LightGBM on a time-based split (the last 20%
   of event time held out), exported to ONNX.
3. On the hold-out, by ROC-AUC and PR-AUC (average precision):
   * **rules alone**: the fraud score (Σ points of fired working rules) as the ranking;
   * **model alone**: the same training without the two rule features (event fields +
     the pack's aggregate parameters only);
   * **rules + model**: the served model, whose features include the rules' verdict
     (fraud score and fired-rule count, from the same scorer call, evaluated before the
     model).

The claim of issue 6 is model > rules on PR-AUC and rules + model > both.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from lendgate.datagen import GenConfig, Generator, write_events
from lendgate.models.train import TrainConfig, train


def main() -> None:
    """Generate, train (with the comparison), print and save the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--applicants", type=int, default=4000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "events.jsonl"
        config = GenConfig(seed=args.seed, applicants=args.applicants, days=args.days)
        write_events(Generator(config), data, progress=False)
        card = train(data, root / "model", TrainConfig())
    q, d = card["quality"], card["data"]
    result: dict[str, Any] = {
        "applicants": args.applicants,
        "days": args.days,
        "seed": args.seed,
        "applications": d["train_rows"] + d["holdout_rows"],
        "holdout_applications": d["holdout_rows"],
        "holdout_fraud": d["holdout_fraud"],
        **{k: q[k] for k in ("rules_alone", "model_alone", "rules_plus_model")},
        "seconds": round(time.monotonic() - started, 1),
    }
    print(
        f"{result['applications']} applications, hold-out {d['holdout_rows']}"
        f" ({d['holdout_fraud']} fraud)"
    )
    for label, key in (
        ("rules alone (points)", "rules_alone"),
        ("model alone", "model_alone"),
        ("rules + model", "rules_plus_model"),
    ):
        print(f"{label:22} ROC-AUC {q[key]['roc_auc']:.4f}  PR-AUC {q[key]['pr_auc']:.4f}")
    print(
        f"model beats rules on PR-AUC: {q['model_beats_rules_pr_auc']};"
        f" rules + model beat both: {q['combination_beats_both_pr_auc']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
