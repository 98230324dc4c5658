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

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lendgate import _core
from lendgate.aggregates import AggregateStore
from lendgate.errors import InvalidArgumentError, core_errors
from lendgate.lists import Lists
from lendgate.rules import CompiledRuleSet, EventKind, Rule, RuleStatus
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


@dataclass(frozen=True, slots=True)
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
    # The live scoring code: the same Rust scorer, aggregates and match index as a check.
    scorer = _core.Scorer({})
    store = AggregateStore(aggregates)
    index = _core.MatchIndex()
    applications: dict[tuple[str, str], bytes] = {}
    done = unlabelled = 0
    for item in ordered:
        if item.kind in REQUEST_TYPES:
            if item.kind == "application":
                applications[(item.partner_id, item.subject_id)] = bytes(item.payload)
            if (
                item.kind != kind
                or item.event_time_us < start_us
                or (partners is not None and item.partner_id not in partners)
            ):
                _replay(scorer, item, store, index)
                continue
            label = known.get((item.partner_id, item.subject_id))
            if label is None:
                unlabelled += 1
                if exclude_unlabelled:
                    _replay(scorer, item, store, index)
                    continue
            report = _score(scorer, item, ruleset=ruleset, lists=lists, store=store, index=index)
            if report is None:
                continue
            _count(report, index_of, counts, whole, fraud=label == "CONFIRMED")
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, total)
        elif item.kind == "outcome" and item.response:
            _apply_outcome(scorer, store, index, applications, item)
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


def _replay(
    scorer: _core.Scorer, item: HistoryItem, store: AggregateStore, index: _core.MatchIndex
) -> None:
    """Apply a check that is not evaluated to the state, as a restart's replay does."""
    with core_errors():
        scorer.replay(
            item.kind,
            item.payload,
            f"{item.partner_id}/backtest-{item.seq}",
            item.partner_id,
            item.event_time_us,
            store._core,
            index,
        )


def _score(
    scorer: _core.Scorer,
    item: HistoryItem,
    *,
    ruleset: CompiledRuleSet,
    lists: Lists,
    store: AggregateStore,
    index: _core.MatchIndex,
    model: Callable[[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]], Any] | None = None,
) -> scoring_pb2.Report | None:
    """Score one stored check as live traffic is scored (``None``: the stored request
    no longer validates, e.g. an event too late for the aggregates). ``model`` is the
    scorer's model callable, as a live check passes it (training replays through here)."""
    prepared = scorer.prepare(item.kind, item.payload, item.event_time_us)
    if prepared.violations:
        return None
    try:
        with core_errors():
            body, *_ = scorer.score(
                prepared,
                partner_id=item.partner_id,
                request_id=f"backtest-{item.seq}",
                report_name=f"reports/backtest-{item.seq}",
                receive_time_us=item.event_time_us,
                incident_id="",
                elapsed_ns=0,
                aggregates=store._core,
                rules=ruleset._inner,
                lists=lists.registry,
                index=index,
                revision="backtest",
                model=model,
            )
    except InvalidArgumentError:
        return None
    return scoring_pb2.Report.FromString(body)


def _count(
    report: scoring_pb2.Report,
    index_of: Mapping[str, int],
    counts: Sequence[Counts],
    whole: Counts,
    *,
    fraud: bool,
) -> None:
    fired = {r.rule.removeprefix("rules/") for r in report.fired_rules}
    failed = {e.rule.removeprefix("rules/") for e in report.rule_errors}
    for rule_id, i in index_of.items():
        counts[i].add(stopped=rule_id in fired, fraud=fraud)
        if rule_id in failed:
            counts[i].errors += 1
    whole.add(stopped=report.zone == scoring_pb2.ZONE_BLACK, fraud=fraud)
    whole.errors += bool(failed)


def _apply_outcome(
    scorer: _core.Scorer,
    store: AggregateStore,
    index: _core.MatchIndex,
    applications: Mapping[tuple[str, str], bytes],
    item: HistoryItem,
) -> None:
    """Feed an outcome to the state as ``ScoringService`` does."""
    app = applications.get((item.partner_id, item.subject_id))
    if app is None or not item.response:
        return
    outcome = scoring_pb2.Outcome.FromString(item.response)
    decision = scoring_pb2.ApplicationDecision.Name(outcome.decision).removeprefix(
        "APPLICATION_DECISION_"
    )
    fraud_status = scoring_pb2.FraudStatus.Name(outcome.fraud_status).removeprefix("FRAUD_STATUS_")
    with core_errors():
        scorer.apply_outcome(
            app, item.partner_id, item.event_time_us, decision, fraud_status, store._core, index
        )
