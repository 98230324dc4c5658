"""Does the model earn its place? Rules' points vs the model vs both, on one hold-out.

    .venv/bin/python -m bench.models_quality [--applicants 4000] [--days 90] [--json FILE]

1. Generates a data set (``lendgate.datagen``, seeded, ground-truth fraud labels).
2. Runs every event in time order through the real :class:`ScoringService` in this process
   (embedded SQLite in a temporary directory, the default rule pack, the Rust aggregates):
   each application's ``fraud_score`` (the fired rules' points) and number of fired rules.
3. On the same time-based split (the last 20% of event time held out), compares by
   ROC-AUC and PR-AUC (average precision):
   * **rules alone**: the fraud score as the ranking;
   * **model alone**: LightGBM on the features of ``features.FEATURE_NAMES`` with the
     two rule features missing (as ``lendgate train`` trains today);
   * **rules + model**: the same model trained with ``rule_points_total`` and
     ``rule_hits_count`` filled from step 2 (how ``build_features`` takes rule hits).

The claim of issue 6 is model > rules on PR-AUC and rules + model > both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lendgate.datagen import GenConfig, Generator, read_events, write_events
from lendgate.errors import LendgateError
from lendgate.models.features import FEATURE_NAMES, examples
from lendgate.models.metrics import pr_auc, roc_auc
from lendgate.models.train import Dataset, TrainConfig, split_by_time, train_on
from lendgate.scoring import ScoringService
from lendgate.store import StoreSettings, open_store
from lendgate.v1 import scoring_pb2 as s

POINTS = FEATURE_NAMES.index("rule_points_total")
HITS = FEATURE_NAMES.index("rule_hits_count")


async def rule_verdicts(path: Path, db: Path) -> tuple[dict[str, tuple[int, int]], Counter[str]]:
    """``application_id -> (fraud_score, fired rules)`` of every create event, from the
    scoring service fed all events of ``path`` in order; and the refusals by reason."""
    settings = StoreSettings(
        database_url=f"sqlite:///{db}", retention_interval_s=0, commit_delay_ms=0
    )
    store = await asyncio.to_thread(open_store, None, settings)
    verdicts: dict[str, tuple[int, int]] = {}
    refused: Counter[str] = Counter()
    owners: dict[str, str] = {}
    try:
        service = ScoringService(store)
        for n, record in enumerate(read_events(path)):
            m = record.message
            try:
                if isinstance(m, s.ApplicationEvent):
                    owners[m.application_id] = m.partner_id
                    body = s.CheckApplicationRequest(request_id=f"q{n}", application=m)
                    raw = await service.check("application", body.SerializeToString(), m.partner_id)
                    if m.subtype == s.APPLICATION_SUBTYPE_LOAN_APP_CREATE:
                        report = s.Report.FromString(raw)
                        verdicts[m.application_id] = (report.fraud_score, len(report.fired_rules))
                elif isinstance(m, s.PaymentEvent):
                    owners[m.payment_id] = m.partner_id
                    body_p = s.CheckPaymentRequest(request_id=f"q{n}", payment=m)
                    await service.check("payment", body_p.SerializeToString(), m.partner_id)
                elif isinstance(m, s.ReportOutcomeRequest):
                    partner = owners.get(m.application_id or m.payment_id, "")
                    await service.report_outcome(m, partner)
            except LendgateError as exc:
                refused[exc.reason] += 1
    finally:
        await store.aclose()
    return verdicts, refused


def main() -> None:
    """Generate, score with the rules, train both models, print and save the comparison."""
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
        verdicts, refused = asyncio.run(rule_verdicts(data, root / "scoring.db"))
        rows = [e for e in examples(read_events(data, kinds=("application", "outcome")))]
        rows = [e for e in rows if e.application_id in verdicts]
        without = Dataset.of(rows)
        with_rules = Dataset(without.x.copy(), without.y, without.t, without.patterns)
        ids = [e.application_id for e in rows]
        with_rules.x[:, POINTS] = [verdicts[i][0] for i in ids]
        with_rules.x[:, HITS] = [verdicts[i][1] for i in ids]
        cfg = TrainConfig()
        _, hold, _ = split_by_time(with_rules, cfg.holdout)
        points = hold.x[:, POINTS].astype(np.float64)
        model = train_on(without, str(data), root / "model", cfg)["metrics"]
        both = train_on(with_rules, str(data), root / "both", cfg)["metrics"]
    result: dict[str, Any] = {
        "applicants": args.applicants,
        "days": args.days,
        "seed": args.seed,
        "applications": len(rows),
        "holdout_applications": int(hold.y.size),
        "holdout_fraud": int(hold.y.sum()),
        "scoring_refusals": dict(refused),
        "rules_alone": {"roc_auc": roc_auc(hold.y, points), "pr_auc": pr_auc(hold.y, points)},
        "model_alone": {"roc_auc": model["holdout_roc_auc"], "pr_auc": model["holdout_pr_auc"]},
        "rules_plus_model": {
            "roc_auc": both["holdout_roc_auc"],
            "pr_auc": both["holdout_pr_auc"],
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    r, m, b = result["rules_alone"], result["model_alone"], result["rules_plus_model"]
    print(
        f"{len(rows)} applications, hold-out {hold.y.size} ({int(hold.y.sum())} fraud);"
        f" scoring refusals {dict(refused) or 'none'}"
    )
    for label, x in (("rules alone (points)", r), ("model alone", m), ("rules + model", b)):
        print(f"{label:22} ROC-AUC {x['roc_auc']:.4f}  PR-AUC {x['pr_auc']:.4f}")
    print(
        f"model beats rules on PR-AUC: {m['pr_auc'] > r['pr_auc']};"
        f" rules + model beat both: {b['pr_auc'] > max(m['pr_auc'], r['pr_auc'])}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
