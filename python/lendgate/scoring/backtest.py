"""Back-testing rules on stored history with known outcomes (seed 003's rule results).

The history is replayed the way live scoring saw it, but in **event-time order**: a
fresh :class:`~lendgate.aggregates.AggregateStore` of the pack's definitions receives
every check (``events.aggregate_event``) and every outcome (``events.outcome_event``)
exactly as :class:`~lendgate.scoring.ScoringService` applies them, and the tested rules
are evaluated on the same document a live check builds (event, aggregate parameters,
model score) through the same compiled :class:`~lendgate.rules.CompiledRuleSet` — so
there is no train/serve skew between a back-test and production.

An application is **fraud** when an outcome of it reports ``FRAUD_STATUS_CONFIRMED``,
**legitimate** when its outcomes report another fraud status, and **unlabelled** when no
outcome reports one (counted as legitimate unless excluded). A rule **stops** an event
when it fires on it; the set stops it when the points of its fired rules reach the zone
threshold. Limits, said plainly: no model scores (rules on ``model.risk_score`` see
null), the lists are today's (their expiry is judged at each event's time), and the
period's events are held in memory while they are sorted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from lendgate.aggregates import AggregateStore
from lendgate.document import decode_document
from lendgate.lists import Lists
from lendgate.rules import CompiledRuleSet, Evaluation, EventKind, Rule, RuleStatus
from lendgate.scoring import events
from lendgate.store import Event
from lendgate.v1 import scoring_pb2

REQUEST_TYPES = {
    "application": "lendgate.v1.CheckApplicationRequest",
    "payment": "lendgate.v1.CheckPaymentRequest",
}
PROGRESS_EVERY = 10_000
"""Events between two progress reports."""


@dataclass
class Counts:
    """Seed 003's four counts for one rule (or the set), plus errors."""

    fraud_stopped: int = 0
    legit_excluded: int = 0
    legit_stopped: int = 0
    fraud_missed: int = 0
    errors: int = 0

    def add(self, *, stopped: bool, fraud: bool) -> None:
        """Count one evaluated event."""
        if fraud:
            if stopped:
                self.fraud_stopped += 1
            else:
                self.fraud_missed += 1
        elif stopped:
            self.legit_stopped += 1
        else:
            self.legit_excluded += 1

    @property
    def evaluated(self) -> int:
        """Events counted."""
        return self.fraud_stopped + self.fraud_missed + self.legit_stopped + self.legit_excluded

    @property
    def precision(self) -> float:
        """fraud_stopped / stopped; 0 when nothing was stopped."""
        stopped = self.fraud_stopped + self.legit_stopped
        return self.fraud_stopped / stopped if stopped else 0.0

    @property
    def recall(self) -> float:
        """fraud_stopped / fraud; 0 when there was no fraud."""
        fraud = self.fraud_stopped + self.fraud_missed
        return self.fraud_stopped / fraud if fraud else 0.0

    @property
    def alert_rate(self) -> float:
        """Share of evaluated events stopped."""
        n = self.evaluated
        return (self.fraud_stopped + self.legit_stopped) / n if n else 0.0


@dataclass(frozen=True)
class TestedRule:
    """A rule under test and the label its results carry."""

    label: str
    rule: Rule


@dataclass
class BacktestOutcome:
    """The result of a back-test: per rule (in request order) and for the set."""

    rules: list[tuple[TestedRule, Counts]]
    set_counts: Counts
    zone_threshold: int
    events_evaluated: int = 0
    events_unlabelled: int = 0
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class HistoryItem:
    """One stored event, ready to replay."""

    event_time_us: int
    seq: int
    kind: str
    partner_id: str
    subject_id: str
    payload: bytes
    response: bytes | None = field(default=None, compare=False)


def history_item(stored: Event) -> HistoryItem:
    """The replayable form of a stored event."""
    return HistoryItem(
        stored.event_time_us,
        stored.seq,
        stored.kind,
        stored.partner_id,
        stored.subject_id,
        stored.payload,
        stored.response,
    )


def labels(history: Iterable[HistoryItem]) -> dict[tuple[str, str], str]:
    """(partner, subject) -> the fraud status its latest labelled outcome reports."""
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for item in history:
        if item.kind != "outcome" or not item.response:
            continue
        status = scoring_pb2.Outcome.FromString(item.response).fraud_status
        if status == scoring_pb2.FRAUD_STATUS_UNSPECIFIED:
            continue
        key = (item.partner_id, item.subject_id)
        seen = out.get(key)
        if seen is None or seen[0] <= item.event_time_us:
            out[key] = (
                item.event_time_us,
                scoring_pb2.FraudStatus.Name(status).removeprefix("FRAUD_STATUS_"),
            )
    return {k: v[1] for k, v in out.items()}


def run_backtest(
    history: Sequence[HistoryItem],
    tested: Sequence[TestedRule],
    *,
    aggregates: Mapping[str, Any],
    lists: Lists,
    event_kind: EventKind,
    start_us: int,
    end_us: int,
    zone_threshold: int,
    exclude_unlabelled: bool = False,
    partners: frozenset[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestOutcome:
    """Replay ``history`` (any order; sorted here by event time, then log position)
    up to ``end_us`` and evaluate ``tested`` on the events of ``event_kind`` in
    ``[start_us, end_us)`` (of ``partners`` only, when given). ``progress(done,
    total)`` is called every :data:`PROGRESS_EVERY` evaluated events."""
    started = time.perf_counter()
    # Each tested rule gets a unique internal id (a rule may be tested in two versions).
    compiled_rules = [
        replace(t.rule, rule_id=f"b{i}", status=RuleStatus.WORKING) for i, t in enumerate(tested)
    ]
    ruleset = CompiledRuleSet.compile(compiled_rules, zone_threshold)
    index_of = {f"b{i}": i for i in range(len(tested))}
    counts = [Counts() for _ in tested]
    whole = Counts()
    known = labels(history)
    kind = event_kind.value.lower()
    ordered = sorted(
        (h for h in history if h.event_time_us < end_us),
        key=lambda h: (h.event_time_us, h.seq),
    )
    total = sum(
        1
        for h in ordered
        if h.kind == kind
        and h.event_time_us >= start_us
        and (partners is None or h.partner_id in partners)
    )
    store = AggregateStore(aggregates)
    applications: dict[tuple[str, str], Mapping[str, Any]] = {}
    done = unlabelled = 0
    for item in ordered:
        if item.kind in REQUEST_TYPES:
            event = decode_document(REQUEST_TYPES[item.kind], item.payload)[item.kind]
            event_time = events.parse_time(event.get("event_time")) or _from_us(item.event_time_us)
            agg = events.aggregate_event(event, item.partner_id, event_time)
            params = store.apply(json.dumps(agg, separators=(",", ":")).encode())
            if item.kind == "application":
                applications[(item.partner_id, item.subject_id)] = event
            if (
                item.kind != kind
                or item.event_time_us < start_us
                or (partners is not None and item.partner_id not in partners)
            ):
                continue
            label = known.get((item.partner_id, item.subject_id))
            if label is None:
                unlabelled += 1
                if exclude_unlabelled:
                    continue
            fraud = label == "CONFIRMED"
            doc = json.dumps(
                {kind: event, "params": params, "model": {"risk_score": None}},
                separators=(",", ":"),
            ).encode()
            evaluation = ruleset.evaluate(doc, event_kind, event_time, lists)
            _count(evaluation, index_of, counts, whole, fraud=fraud)
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, total)
        elif item.kind == "outcome" and item.response:
            _apply_outcome(store, applications, item)
    if progress is not None:
        progress(done, total)
    return BacktestOutcome(
        list(zip(tested, counts, strict=True)),
        whole,
        zone_threshold,
        events_evaluated=done,
        events_unlabelled=unlabelled,
        elapsed_s=time.perf_counter() - started,
    )


def _count(
    evaluation: Evaluation,
    index_of: Mapping[str, int],
    counts: Sequence[Counts],
    whole: Counts,
    *,
    fraud: bool,
) -> None:
    fired = {r.rule_id for r in evaluation.fired_rules}
    failed = {e.rule_id for e in evaluation.rule_errors}
    for rule_id, i in index_of.items():
        counts[i].add(stopped=rule_id in fired, fraud=fraud)
        if rule_id in failed:
            counts[i].errors += 1
    whole.add(stopped=evaluation.fraud_score >= evaluation.zone_threshold, fraud=fraud)
    whole.errors += bool(failed)


def _apply_outcome(
    store: AggregateStore,
    applications: Mapping[tuple[str, str], Mapping[str, Any]],
    item: HistoryItem,
) -> None:
    """Feed an outcome to the aggregates as ``ScoringService`` does."""
    app = applications.get((item.partner_id, item.subject_id))
    if app is None or not item.response:
        return
    outcome = scoring_pb2.Outcome.FromString(item.response)
    decision = scoring_pb2.ApplicationDecision.Name(outcome.decision).removeprefix(
        "APPLICATION_DECISION_"
    )
    fraud_status = scoring_pb2.FraudStatus.Name(outcome.fraud_status).removeprefix("FRAUD_STATUS_")
    for agg in events.outcome_event(
        app,
        item.partner_id,
        _from_us(item.event_time_us),
        decision=decision,
        fraud_status=fraud_status,
    ):
        store.apply(json.dumps(agg, separators=(",", ":")).encode())


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)
