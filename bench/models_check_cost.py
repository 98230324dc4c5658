"""What the champion adds to one check: ``.venv/bin/python -m bench.models_check_cost``.

Generates a data set, trains a model and makes it the champion of a ``ModelService`` over
a temporary file-system registry, then replays the same applications twice through the
Rust scorer's ``score`` call — the synchronous part of a served check — once without a
model and once with :class:`~lendgate.models.serving.CheckModel` (what ``lendgate serve``
passes), alternating the two per event so load changes hit both alike. Each variant
has its own aggregate state, fed the same events. Reported: p50/p99 of the call per
LOAN_APP_CREATE for each, and the difference. The model's part covers the event and
parameters crossing to Python, the features, onnxruntime (one row, one thread),
calibration, the path explainer (top 10) and the report fields. A third variant adds one
TEST rule that reads ``model.risk_score``, which makes the scorer evaluate the rules a
second time with the score (the default pack's rules never read it: one pass).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lendgate import _core
from lendgate.aggregates import AggregateStore
from lendgate.datagen import GenConfig, Generator, read_events, write_events
from lendgate.lists import Lists
from lendgate.models.registry import FileSystemRegistry
from lendgate.models.serving import CheckModel, ModelService
from lendgate.models.train import TrainConfig, train
from lendgate.rules import EventKind, InMemoryRuleRepository, Rule, RuleBook, RuleStatus
from lendgate.scoring.backtest import HistoryItem, _score
from lendgate.scoring.pack import install, load_pack
from lendgate.v1 import scoring_pb2 as s

NAME = "application-gbdt"


class _Variant:
    """One replay: its own aggregates and match index; timings of create events."""

    def __init__(self, model: Any, reads_model: bool = False) -> None:
        pack = load_pack()
        book, self.lists = RuleBook(InMemoryRuleRepository()), Lists()
        install(pack, book, self.lists)
        if reads_model:
            probe = Rule(
                rule_id="t-reads-model",
                event_kind=EventKind.APPLICATION,
                condition="(model.risk_score ?? 0) > 2000",
                status=RuleStatus.TEST,
            )
            book.create(probe, author="bench")
        self.rules = book.compile(pack.zone_threshold)
        self.scorer = _core.Scorer({})
        self.store = AggregateStore(pack.aggregates)
        self.index = _core.MatchIndex()
        self.model = model
        self.us: list[float] = []
        self.scored = 0

    def check(self, item: HistoryItem, create: bool) -> None:
        t = time.perf_counter_ns()
        report = _score(
            self.scorer,
            item,
            ruleset=self.rules,
            lists=self.lists,
            store=self.store,
            index=self.index,
            model=self.model,
        )
        if create:
            self.us.append((time.perf_counter_ns() - t) / 1000)
            self.scored += report is not None and report.HasField("model_risk_score")


def main() -> None:
    """Train, replay twice, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--applicants", type=int, default=4000)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "events.jsonl"
        config = GenConfig(seed=5, applicants=args.applicants, days=args.days)
        write_events(Generator(config), data, progress=False)
        train(data, root / "model", TrainConfig())
        registry = FileSystemRegistry(root / "models")
        service = ModelService(registry)
        service.promote(NAME, registry.register(NAME, root / "model"))
        plain, modelled = _Variant(None), _Variant(CheckModel(service, NAME))
        twice = _Variant(CheckModel(service, NAME), reads_model=True)
        for n, record in enumerate(read_events(data, kinds=("application",))):
            m = record.message
            assert isinstance(m, s.ApplicationEvent)
            payload = s.CheckApplicationRequest(
                request_id=f"c-{n}", application=m
            ).SerializeToString()
            item = HistoryItem(
                int(record.time) * 1_000_000,
                n,
                "application",
                m.partner_id,
                f"application:{m.application_id}",
                payload,
            )
            create = m.subtype == s.APPLICATION_SUBTYPE_LOAN_APP_CREATE
            variants = (plain, modelled, twice)
            for v in variants[n % 3 :] + variants[: n % 3]:
                v.check(item, create)
    rows = []
    for label, v in (
        ("no model", plain),
        ("champion (CheckModel), rules evaluated once", modelled),
        ("champion, a rule reads model.* (rules evaluated twice)", twice),
    ):
        v.us.sort()
        rows.append((label, statistics.median(v.us), v.us[int(len(v.us) * 0.99)], v.scored))
    print(f"{len(plain.us)} LOAN_APP_CREATE checks each")
    print("| variant | p50 µs | p99 µs | reports with a model score |")
    print("| --- | ---: | ---: | ---: |")
    for label, p50, p99, scored in rows:
        print(f"| {label} | {p50:.1f} | {p99:.1f} | {scored} |")
    print(
        f"| added by the model | {rows[1][1] - rows[0][1]:.1f} | {rows[1][2] - rows[0][2]:.1f} | |"
    )
    print(f"| added by the second rule pass | {rows[2][1] - rows[1][1]:.1f} | | |")


if __name__ == "__main__":
    main()
