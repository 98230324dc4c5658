"""Training rows from a generated history, replayed through the live Rust scorer.

Every event goes, in file (event-time) order, through the same calls a server makes: a
check through :class:`lendgate._core.Scorer` ``score`` (via the back-test's
:func:`lendgate.scoring.backtest._score`, with the default pack's compiled rules and
lists), a payment through ``replay`` (the same state change), an outcome through
``apply_outcome``. A capturing model callable is handed to ``score``, so each row's
features are built by :func:`~lendgate.models.features.build_features` from exactly the
event document and aggregate parameters a served check gives the model; the report of the
same call gives the rules' verdict (points, fired rules) that the quality comparison
ranks by. No aggregate is computed a second time in Python.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lendgate import _core
from lendgate.aggregates import AggregateStore
from lendgate.errors import InvalidArgumentError
from lendgate.lists import Lists
from lendgate.models.features import build_features, is_modelled
from lendgate.rules import InMemoryRuleRepository, RuleBook
from lendgate.scoring.backtest import HistoryItem, _apply_outcome, _replay, _score
from lendgate.scoring.pack import Pack, install, load_pack
from lendgate.v1 import scoring_pb2 as s


@dataclass(frozen=True)
class Example:
    """One training row: a create event's features, time, label and the rules' verdict."""

    application_id: str
    time: int
    features: list[float]
    fraud: bool
    pattern: str
    rule_points: int
    rules_fired: int


class _Capture:
    """The model callable of the replay: keeps the row of the last modelled event and
    gives no score (training must not see a model's output)."""

    def __init__(self) -> None:
        self.row: list[float] | None = None

    def __call__(
        self, event: Mapping[str, Any], params: Mapping[str, Any], rules: Mapping[str, Any]
    ) -> None:
        self.row = build_features(event, params, rules) if is_modelled(event) else None


def examples(records: Iterable[Any], pack: Pack | None = None) -> Iterator[Example]:
    """Training rows of a stream of ``datagen.Record``/``GeneratedEvent`` (``message``,
    ``time``, ``label``) in event-time order: one per ``LOAN_APP_CREATE`` the scorer
    accepts."""
    pack = pack or load_pack()
    book, lists = RuleBook(InMemoryRuleRepository()), Lists()
    install(pack, book, lists)
    rules = book.compile(pack.zone_threshold)
    scorer = _core.Scorer({})
    store = AggregateStore(pack.aggregates)
    index = _core.MatchIndex()
    applications: dict[tuple[str, str], bytes] = {}
    partner_of: dict[str, str] = {}
    capture = _Capture()
    for n, record in enumerate(records):
        m = record.message
        time_us = int(record.time) * 1_000_000
        if isinstance(m, s.ApplicationEvent):
            subject = f"application:{m.application_id}"
            payload = s.CheckApplicationRequest(
                request_id=f"train-{n}", application=m
            ).SerializeToString()
            item = HistoryItem(time_us, n, "application", m.partner_id, subject, payload)
            partner_of[m.application_id] = m.partner_id
            applications[(m.partner_id, subject)] = payload
            capture.row = None
            report = _score(
                scorer, item, ruleset=rules, lists=lists, store=store, index=index, model=capture
            )
            if report is None or capture.row is None:
                continue
            label = record.label
            yield Example(
                m.application_id,
                int(record.time),
                capture.row,
                bool(label.get("fraud")),
                str(label.get("pattern", "")),
                int(report.fraud_score),
                len(report.fired_rules),
            )
        elif isinstance(m, s.PaymentEvent):
            payload = s.CheckPaymentRequest(request_id=f"train-{n}", payment=m).SerializeToString()
            item = HistoryItem(
                time_us, n, "payment", m.partner_id, f"payment:{m.payment_id}", payload
            )
            with contextlib.suppress(InvalidArgumentError):  # refused: not history
                _replay(scorer, item, store, index)
        elif isinstance(m, s.ReportOutcomeRequest) and m.application_id:
            partner = partner_of.get(m.application_id)
            if partner is None or not m.HasField("outcome"):
                continue
            outcome = s.Outcome()
            outcome.CopyFrom(m.outcome)
            when = (
                m.outcome.event_time.seconds * 1_000_000 + m.outcome.event_time.nanos // 1000
                if m.outcome.HasField("event_time")
                else time_us
            )
            item = HistoryItem(
                when,
                n,
                "outcome",
                partner,
                f"application:{m.application_id}",
                b"",
                outcome.SerializeToString(),
            )
            with contextlib.suppress(InvalidArgumentError):
                _apply_outcome(scorer, store, index, applications, item)
