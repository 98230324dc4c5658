"""The scoring service: check an event, record outcomes, manage incidents.

One check (``docs/SCORING.md``): Python routes bytes, the Rust core
(:class:`lendgate._core.Scorer`) decodes, validates, computes and encodes. The request
is decoded and validated completely first (nothing changes for a rejected one); then,
in one synchronous Rust call that the event loop never interleaves with another check,
the aggregates are updated at the event's time, the rules evaluated, the consortium
matches collected, the event indexed and the report encoded; the report is then stored
with the event (``request_id`` idempotency: a retry returns the first report) and an
incident opened when the action is not APPROVE.

If the store refuses the write after the in-memory state took the event, the state is
ahead of the log: the service then rebuilds it from the log before it scores again, so
every answer rests on what the log holds (see "Atomicity" in docs/SCORING.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from lendgate import _core
from lendgate.aggregates import AggregateStore
from lendgate.errors import (
    AbortedError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    core_errors,
)
from lendgate.lists import Lists
from lendgate.rules import CompiledRuleSet, InMemoryRuleRepository, RuleBook
from lendgate.scoring.matching import MatchIndex
from lendgate.scoring.pack import Pack, install, load_pack
from lendgate.store import NewEvent, Store
from lendgate.v1 import scoring_pb2

ModelScorer = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[int, str, str] | None]
"""(event, params) -> (risk score 0..1000, model name, model version), or ``None`` when
no model is active. Never called to make up a score: ``None`` means no score."""

_REQUEST_TYPES = {
    "application": "lendgate.v1.CheckApplicationRequest",
    "payment": "lendgate.v1.CheckPaymentRequest",
}
MAX_REQUEST_ID = 128
MAX_CHECKS_IN_FLIGHT = 2048
"""Checks admitted at once per process; more are refused RESOURCE_EXHAUSTED at once
rather than queued behind the store (where their latency would grow without bound)."""
RESOLUTION_AUTHOR = "$resolution"


def _now() -> datetime:
    return datetime.now(UTC)


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def report_name(request_id: str) -> str:
    """``reports/{id}``: the id encodes the caller's request id (unpadded base64url)."""
    return "reports/" + base64.urlsafe_b64encode(request_id.encode()).decode().rstrip("=")


def _request_id_of(name: str, field: str) -> str:
    prefix = "reports/"
    token = name[len(prefix) :] if name.startswith(prefix) else ""
    try:
        request_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        request_id = ""
    if not token or not request_id:
        raise InvalidArgumentError("a report name reports/{report_id}", field=field)
    return request_id


def _reused(request_id: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"request_id {request_id!r} was used for another operation",
        field="request_id",
        reason="REQUEST_ID_REUSED",
    )


def _invalid(violations: list[tuple[str, str]]) -> InvalidArgumentError:
    return InvalidArgumentError(
        "; ".join(f"{field}: {why}" for field, why in violations[:5]),
        violations=[FieldViolation(field, why) for field, why in violations],
    )


class ScoringService:
    """Consortium application and payment scoring over one store (seed 001, seed 003)."""

    def __init__(
        self,
        store: Store,
        pack: Pack | None = None,
        *,
        model: ModelScorer | None = None,
        clock: Callable[[], datetime] = _now,
        max_in_flight: int = MAX_CHECKS_IN_FLIGHT,
    ) -> None:
        self.store = store
        self.pack = pack or load_pack()
        self.book = RuleBook(InMemoryRuleRepository())
        self.lists = Lists()
        install(self.pack, self.book, self.lists)
        self.rules: CompiledRuleSet = self.book.compile(self.pack.zone_threshold)
        self._shipped_digest = self._rules_digest()
        self.rule_pack_revision = self.pack.revision
        """Reported in every report's provenance: the shipped pack's revision, suffixed
        with a digest of the live rules once they differ from what the pack shipped."""
        self._scorer = _core.Scorer({k: list(v) for k, v in self.pack.matches.items() if v})
        self.aggregates = AggregateStore(self.pack.aggregates)
        self.index = MatchIndex()
        self._model = model
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._incidents: dict[str, list[str]] = {}
        self._recovered = False
        self._in_flight = 0
        self._max_in_flight = max_in_flight
        self._recovering = asyncio.Lock()
        self._appending = 0
        self._appends_settled = asyncio.Event()
        self._appends_settled.set()
        self.rebuilds = 0
        """How many times the in-memory state was rebuilt from the log after a failed
        write (0 in a healthy process)."""
        self.knows_every_logged_key = False
        """Set by a recovery that noted every request key of the log in the match index
        (``MatchIndex`` snapshot + ``note_logged`` for each replayed event): only then
        may a check skip the store read for a key the index does not know."""

    def recompile(self) -> None:
        """Swap in the rule book's current rules (after an edit through the admin API)."""
        self.rules = self.book.compile(self.pack.zone_threshold)
        digest = self._rules_digest()
        self.rule_pack_revision = (
            self.pack.revision
            if digest == self._shipped_digest
            else f"{self.pack.revision}+{digest[:12]}"
        )

    def _rules_digest(self) -> str:
        """SHA-256 of the live rules' content: equal rules, equal revision."""
        content = json.dumps([r.to_core() for r in self.book.rules()], sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()

    async def recover(self) -> int:
        """Rebuild the in-memory state (aggregates, match index, incident index) by
        replaying the store's log in order; done once before the first call is served,
        and again after a write the store refused. Returns the number of events
        replayed."""
        async with self._recovering:
            if self._recovered:
                return 0
            # Every write already issued must have landed (or failed) first: the
            # replay must see exactly what the log will hold.
            while self._appending:
                await self._appends_settled.wait()
            self.aggregates = AggregateStore(self.pack.aggregates)
            self.index = MatchIndex()
            self._incidents = {}
            replayed = 0
            applications: dict[str, bytes] = {}
            async for stored in self.store.snapshots.events_after(0):
                replayed += 1
                self.index._core.note_logged(stored.request_id)
                if stored.kind in _REQUEST_TYPES:
                    self._replay_check(stored, applications)
                elif stored.kind == "outcome":
                    request = scoring_pb2.ReportOutcomeRequest.FromString(stored.payload)
                    app = applications.get(f"{stored.partner_id}\x1f{stored.subject_id}")
                    outcome = scoring_pb2.Outcome.FromString(stored.response or b"")
                    if app is not None:
                        self._apply_outcome(app, stored.partner_id, outcome, request.outcome)
            self.knows_every_logged_key = True
            self._recovered = True
            return replayed

    def _replay_check(self, stored: Any, applications: dict[str, bytes]) -> None:
        with core_errors():
            self._scorer.replay(
                stored.kind,
                stored.payload,
                stored.request_id,
                stored.partner_id,
                stored.event_time_us,
                self.aggregates._core,
                self.index._core,
            )
        if stored.kind == "application":
            applications[f"{stored.partner_id}\x1f{stored.subject_id}"] = stored.payload
        report = scoring_pb2.Report.FromString(stored.response or b"")
        if report.incident:
            incident_id = report.incident.removeprefix("incidents/")
            self._incidents.setdefault(stored.partner_id, []).append(incident_id)

    async def _ready(self) -> None:
        if not self._recovered:
            await self.recover()

    def _diverged(self) -> None:
        """The state took an event (or outcome) the log may not hold: rebuild it from
        the log before the next check is scored."""
        if self._recovered:
            self._recovered = False
            self.rebuilds += 1

    async def _logged(self, event: NewEvent) -> Any:
        """Append ``event``, whose effect the in-memory state already holds. The write
        goes on when the caller is cancelled (a client deadline): it is then logged as
        scored. A write the store refuses marks the state for a rebuild from the log."""
        self._appending += 1
        self._appends_settled.clear()
        # A task started now runs before any later one, so the log keeps scoring order.
        write = asyncio.ensure_future(self.store.append_event(event))
        write.add_done_callback(self._settled)
        return await asyncio.shield(write)

    def _settled(self, write: asyncio.Future[Any]) -> None:
        self._appending -= 1
        if not self._appending:
            self._appends_settled.set()
        if write.cancelled() or write.exception() is not None:
            self._diverged()

    # --- checks ------------------------------------------------------------------------

    async def check(self, kind: str, request: bytes, partner: str) -> bytes:
        """Check one serialized ``Check{Application,Payment}Request`` for ``partner``;
        returns the serialized ``Report``. A retry of a ``request_id`` returns the first
        report and changes nothing. Over ``max_in_flight`` checks at once, the call is
        refused with :class:`ResourceExhaustedError`."""
        if self._in_flight >= self._max_in_flight:
            raise ResourceExhaustedError("too many checks in flight; retry later")
        self._in_flight += 1
        try:
            return await self._check(kind, request, partner)
        finally:
            self._in_flight -= 1

    async def _check(self, kind: str, request: bytes, partner: str) -> bytes:
        started = time.perf_counter_ns()
        receive_time = self._clock()
        try:
            prepared = self._scorer.prepare(kind, request, _us(receive_time))
        except _core.CoreInvalidArgument as exc:
            raise InvalidArgumentError(
                f"the request is not a valid {_REQUEST_TYPES[kind]} message: {exc.args[1]}",
                reason="MALFORMED_MESSAGE",
            ) from None
        request_id = prepared.request_id or uuid.uuid4().hex
        if len(request_id) > MAX_REQUEST_ID:
            raise InvalidArgumentError(f"at most {MAX_REQUEST_ID} characters", field="request_id")
        if not prepared.has_event:
            raise InvalidArgumentError("required", field=kind)
        claimed = prepared.claimed_partner_id
        if claimed and claimed != partner:
            raise PermissionDeniedError(f"{kind}.partner_id: not the caller's partner id")
        key = f"{partner}/{request_id}"
        first = self._inflight.get(key)
        if first is not None:
            return await asyncio.shield(first)
        # Registered before the first await, so a concurrent retry waits for this one.
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            body = await self._score(
                kind,
                prepared,
                payload=request,
                key=key,
                request_id=request_id,
                partner=partner,
                receive_time=receive_time,
                started=started,
            )
            future.set_result(body)
            return body
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a lone caller must not log "never retrieved"
            raise
        finally:
            del self._inflight[key]

    async def _score(
        self,
        kind: str,
        prepared: _core.PreparedCheck,
        *,
        payload: bytes,
        key: str,
        request_id: str,
        partner: str,
        receive_time: datetime,
        started: int,
    ) -> bytes:
        if not self._recovered:
            await self._ready()
        # The index knows a hash of every request key the log holds: a new request
        # (nearly all of them) needs no store read.
        if not self.knows_every_logged_key or self.index._core.maybe_logged(key):
            stored = await self.store.get_event_by_request(key)
            if stored is not None and stored.response is not None:
                if stored.kind != kind:
                    raise _reused(request_id)
                return stored.response
            if not self._recovered:
                await self._ready()
        if prepared.violations:
            raise _invalid(prepared.violations)
        # From here to the append, no await: checks pass through the scoring call one
        # at a time, in arrival order, and the store's seq follows the same order.
        incident_id = uuid.uuid4().hex
        with core_errors():
            body, incident, event_time_us, event_id, keys = self._scorer.score(
                prepared,
                partner_id=partner,
                request_id=request_id,
                report_name=report_name(request_id),
                receive_time_us=_us(receive_time),
                incident_id=incident_id,
                elapsed_ns=time.perf_counter_ns() - started,
                aggregates=self.aggregates._core,
                rules=self.rules._inner,
                lists=self.lists.registry,
                index=self.index._core,
                revision=self.rule_pack_revision,
                model=self._model,
            )
        ack = await self._logged(
            NewEvent(
                key,
                partner,
                kind,
                event_time_us,
                payload,
                subject_id=f"{kind}:{event_id}",
                keys=keys,
                response=body,
            )
        )
        if ack.duplicate:
            # Another writer logged this key first: the state took an event the log
            # holds under another answer. Rebuild, and answer what the log holds.
            self._diverged()
            if ack.response is not None:
                return bytes(ack.response)
        if incident:
            await self._open_incident(
                incident_id, partner, scoring_pb2.Report.FromString(body), ack.seq
            )
        return bytes(body)

    async def get_report(self, name: str, partner: str) -> scoring_pb2.Report:
        """A stored report with its event and outcomes; NOT_FOUND for another partner's."""
        await self._ready()
        request_id = _request_id_of(name, "name")
        stored = await self.store.get_event_by_request(f"{partner}/{request_id}")
        if (
            stored is None
            or stored.partner_id != partner
            or stored.kind not in _REQUEST_TYPES
            or stored.response is None
        ):
            raise NotFoundError(f"{name} not found")
        report = scoring_pb2.Report.FromString(stored.response)
        if stored.kind == "application":
            report.application.CopyFrom(
                scoring_pb2.CheckApplicationRequest.FromString(stored.payload).application
            )
        else:
            report.payment.CopyFrom(
                scoring_pb2.CheckPaymentRequest.FromString(stored.payload).payment
            )
        for ev in await self.store.events_by_subject(partner, stored.subject_id):
            if ev.kind == "outcome":
                report.outcomes.append(scoring_pb2.Outcome.FromString(ev.response or b""))
        return report

    # --- outcomes ----------------------------------------------------------------------

    async def report_outcome(
        self, request: scoring_pb2.ReportOutcomeRequest, partner: str, *, source: str = "partner"
    ) -> scoring_pb2.Outcome:
        """Record one outcome; confirmed fraud and refusals feed every later check."""
        await self._ready()
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidArgumentError("one of report, application_id, payment_id", field="target")
        if not request.HasField("outcome"):
            raise InvalidArgumentError("required", field="outcome")
        o = request.outcome
        if not (o.decision or o.fraud_status or o.HasField("performance")):
            raise InvalidArgumentError(
                "at least one of decision, fraud_status, performance", field="outcome"
            )
        for field, enum, v in (
            ("outcome.decision", scoring_pb2.ApplicationDecision, o.decision),
            ("outcome.fraud_status", scoring_pb2.FraudStatus, o.fraud_status),
            ("outcome.fraud_type", scoring_pb2.FraudType, o.fraud_type),
        ):
            if v not in enum.values():
                raise InvalidArgumentError(f"unknown enum value {v}", field=field)
        subject = await self._subject(request, target, partner)
        request_id = request.request_id or uuid.uuid4().hex
        key = f"{partner}/{request_id}"
        stored = await self.store.get_event_by_request(key)
        if stored is not None and stored.response is not None:
            if stored.kind != "outcome":
                raise _reused(request_id)
            return scoring_pb2.Outcome.FromString(stored.response)
        now = self._clock()
        event_time = o.event_time.ToDatetime(UTC) if o.HasField("event_time") else now
        outcome = scoring_pb2.Outcome()
        outcome.CopyFrom(o)
        outcome.name = f"{report_name(subject.request_id.split('/', 1)[1])}/outcomes/{request_id}"
        outcome.record_time.FromDatetime(now)
        outcome.source = source
        if not o.HasField("event_time"):
            outcome.event_time.FromDatetime(event_time)
        if subject.kind == "application":
            if not self._recovered:
                await self._ready()
            # No await from here to the append (as for a check).
            self._apply_outcome(subject.payload, partner, outcome, o)
        self.index._core.note_logged(key)
        body = outcome.SerializeToString()
        ack = await self._logged(
            NewEvent(
                key,
                partner,
                "outcome",
                _us(event_time),
                request.SerializeToString(),
                subject_id=subject.subject_id,
                response=body,
            )
        )
        return scoring_pb2.Outcome.FromString(ack.response) if ack.response else outcome

    def _apply_outcome(
        self,
        application_request: bytes,
        partner: str,
        outcome: scoring_pb2.Outcome,
        reported: scoring_pb2.Outcome,
    ) -> None:
        decision = scoring_pb2.ApplicationDecision.Name(reported.decision).removeprefix(
            "APPLICATION_DECISION_"
        )
        fraud = scoring_pb2.FraudStatus.Name(reported.fraud_status).removeprefix("FRAUD_STATUS_")
        with core_errors():
            self._scorer.apply_outcome(
                application_request,
                partner,
                _us(outcome.event_time.ToDatetime(UTC)),
                decision,
                fraud,
                self.aggregates._core,
                self.index._core,
            )

    async def _subject(
        self, request: scoring_pb2.ReportOutcomeRequest, target: str, partner: str
    ) -> Any:
        if target == "report":
            request_id = _request_id_of(request.report, "report")
            stored = await self.store.get_event_by_request(f"{partner}/{request_id}")
            if stored is None or stored.partner_id != partner or stored.kind == "outcome":
                raise NotFoundError(f"{request.report} not found")
            return stored
        kind = "application" if target == "application_id" else "payment"
        event_id = getattr(request, target)
        found = [
            e
            for e in await self.store.events_by_subject(partner, f"{kind}:{event_id}")
            if e.kind == kind
        ]
        if not found:
            raise NotFoundError(f"{kind} {event_id!r} not found")
        return found[-1]

    async def batch_report_outcomes(
        self, requests: list[scoring_pb2.ReportOutcomeRequest], partner: str
    ) -> list[scoring_pb2.Outcome | Exception]:
        """Record outcomes one by one, in order; each item succeeds or fails alone."""
        if len(requests) > 10_000:
            raise InvalidArgumentError("at most 10,000 items", field="requests")
        results: list[scoring_pb2.Outcome | Exception] = []
        for item in requests:
            try:
                results.append(await self.report_outcome(item, partner))
            except (InvalidArgumentError, NotFoundError, PermissionDeniedError) as exc:
                results.append(exc)
        return results

    # --- incidents ---------------------------------------------------------------------

    async def _open_incident(
        self, incident_id: str, partner: str, report: scoring_pb2.Report, seq: int
    ) -> None:
        payload = {
            "partner": partner,
            "report": report.name,
            "event_kind": report.event_kind,
            "event_id": report.event_id,
            "fraud_score": report.fraud_score,
            "zone": report.zone,
            "model_risk_score": report.model_risk_score
            if report.HasField("model_risk_score")
            else None,
            "recommended_action": report.recommended_action,
            "fired_rule_names": [r.display_name for r in report.fired_rules],
        }
        await self.store.create_incident(
            f"incident/{incident_id}", incident_id, json.dumps(payload).encode(), event_seq=seq
        )
        self._incidents.setdefault(partner, []).append(incident_id)

    async def get_incident(self, name: str, partner: str) -> scoring_pb2.Incident:
        """One of the caller's incidents with its comments; NOT_FOUND otherwise."""
        return self._incident_proto(await self._stored_incident(name, partner))

    async def _stored_incident(self, name: str, partner: str) -> Any:
        incident_id = name.removeprefix("incidents/")
        if not name.startswith("incidents/") or not incident_id:
            raise InvalidArgumentError("an incident name incidents/{incident_id}", field="name")
        try:
            stored = await self.store.get_incident(incident_id)
        except NotFoundError:
            raise NotFoundError(f"{name} not found") from None
        if json.loads(stored.payload).get("partner") != partner:
            raise NotFoundError(f"{name} not found")
        return stored

    @staticmethod
    def _incident_proto(stored: Any, *, comments: bool = True) -> scoring_pb2.Incident:
        p = json.loads(stored.payload)
        out = scoring_pb2.Incident(
            name=f"incidents/{stored.incident_id}",
            report=p["report"],
            event_kind=p["event_kind"],
            event_id=p["event_id"],
            state=scoring_pb2.IncidentState.Value(f"INCIDENT_STATE_{stored.status.upper()}"),
            fraud_score=p["fraud_score"],
            zone=p["zone"],
            recommended_action=p["recommended_action"],
            fired_rule_names=p["fired_rule_names"],
            assignee=stored.assignee,
            etag=str(stored.updated_at_us),
        )
        if p.get("model_risk_score") is not None:
            out.model_risk_score = p["model_risk_score"]
        out.create_time.FromDatetime(_from_us(stored.created_at_us))
        out.update_time.FromDatetime(_from_us(stored.updated_at_us))
        for c in stored.comments:
            if c.author == RESOLUTION_AUTHOR:
                out.resolution.CopyFrom(
                    scoring_pb2.IncidentResolution.FromString(bytes.fromhex(c.body))
                )
            elif comments:
                comment = out.comments.add(
                    name=f"{out.name}/comments/{c.comment_id}", author=c.author, text=c.body
                )
                comment.create_time.FromDatetime(_from_us(c.created_at_us))
        return out

    async def list_incidents(
        self, partner: str, *, page_size: int, page_token: str, filter_text: str
    ) -> tuple[list[scoring_pb2.Incident], str]:
        """The caller's incidents, newest first, filtered by ``field = "VALUE"`` clauses
        joined with AND (state, zone, assignee, event_kind, recommended_action)."""
        await self._ready()
        wanted = _parse_filter(filter_text)
        size = 50 if page_size <= 0 else min(page_size, 1000)
        try:
            offset = int(page_token or "0")
        except ValueError:
            raise InvalidArgumentError("not a page token", field="page_token") from None
        selected = []
        for incident_id in reversed(self._incidents.get(partner, [])):
            incident = self._incident_proto(
                await self.store.get_incident(incident_id), comments=False
            )
            if all(_field_text(incident, f) == v for f, v in wanted):
                selected.append(incident)
        page = selected[offset : offset + size]
        more = offset + size < len(selected)
        return page, str(offset + size) if more else ""

    async def assign_incident(
        self, request_id: str, name: str, assignee: str, etag: str, partner: str
    ) -> scoring_pb2.Incident:
        """Assign (or unassign) an incident; an OPEN one becomes IN_PROGRESS."""
        stored = await self._stored_incident(name, partner)
        if etag and etag != str(stored.updated_at_us):
            raise AbortedError(f"{name}: etag is stale", reason="ETAG_MISMATCH")
        status = "in_progress" if stored.status == "open" and assignee else stored.status
        updated = await self.store.update_incident(
            request_id or uuid.uuid4().hex, stored.incident_id, status=status, assignee=assignee
        )
        return self._incident_proto(updated)

    async def comment_incident(
        self, request_id: str, name: str, text: str, partner: str
    ) -> scoring_pb2.IncidentComment:
        """Add a comment by the caller."""
        if not 1 <= len(text) <= 10_000:
            raise InvalidArgumentError("1..10,000 characters", field="text")
        stored = await self._stored_incident(name, partner)
        updated = await self.store.add_incident_comment(
            request_id or uuid.uuid4().hex, stored.incident_id, author=partner, body=text
        )
        return self._incident_proto(updated).comments[-1]

    async def resolve_incident(
        self,
        request_id: str,
        name: str,
        resolution: scoring_pb2.IncidentResolution,
        etag: str,
        partner: str,
    ) -> tuple[scoring_pb2.Incident, scoring_pb2.Outcome]:
        """Resolve an incident; the verdict is recorded as an outcome of its event."""
        verdicts = {
            scoring_pb2.INCIDENT_VERDICT_CONFIRMED_FRAUD: scoring_pb2.FRAUD_STATUS_CONFIRMED,
            scoring_pb2.INCIDENT_VERDICT_FALSE_POSITIVE: scoring_pb2.FRAUD_STATUS_NOT_FRAUD,
            scoring_pb2.INCIDENT_VERDICT_SUSPECTED: scoring_pb2.FRAUD_STATUS_SUSPECTED,
        }
        if resolution.verdict not in verdicts:
            raise InvalidArgumentError("required", field="resolution.verdict")
        stored = await self._stored_incident(name, partner)
        if etag and etag != str(stored.updated_at_us):
            raise AbortedError(f"{name}: etag is stale", reason="ETAG_MISMATCH")
        if stored.status == "resolved":
            raise AbortedError(f"{name} is already resolved", reason="ALREADY_RESOLVED")
        request_id = request_id or uuid.uuid4().hex
        done = scoring_pb2.IncidentResolution()
        done.CopyFrom(resolution)
        done.resolved_by = partner
        done.resolve_time.FromDatetime(self._clock())
        outcome_request = scoring_pb2.ReportOutcomeRequest(
            request_id=f"{request_id}/outcome",
            report=json.loads(stored.payload)["report"],
            outcome=scoring_pb2.Outcome(
                fraud_status=verdicts[resolution.verdict],
                fraud_type=resolution.fraud_type,
                decision=resolution.decision,
                comment=resolution.comment,
            ),
        )
        outcome = await self.report_outcome(outcome_request, partner, source=partner)
        await self.store.add_incident_comment(
            f"{request_id}/resolution",
            stored.incident_id,
            author=RESOLUTION_AUTHOR,
            body=done.SerializeToString().hex(),
        )
        updated = await self.store.update_incident(
            request_id, stored.incident_id, status="resolved"
        )
        return self._incident_proto(updated), outcome


_FILTER_FIELDS = {
    "state": ("state", scoring_pb2.IncidentState, "INCIDENT_STATE_"),
    "zone": ("zone", scoring_pb2.Zone, "ZONE_"),
    "recommended_action": (
        "recommended_action",
        scoring_pb2.RecommendedAction,
        "RECOMMENDED_ACTION_",
    ),
    "assignee": ("assignee", None, ""),
}


def _parse_filter(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not text.strip():
        return out
    for clause in text.split(" AND "):
        name, sep, raw = clause.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or name not in _FILTER_FIELDS or len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
            raise InvalidArgumentError(
                f'unsupported clause {clause.strip()!r}: use field = "VALUE" joined by AND '
                f"over {', '.join(sorted(_FILTER_FIELDS))}",
                field="filter",
            )
        out.append((name, raw[1:-1]))
    return out


def _field_text(incident: scoring_pb2.Incident, name: str) -> str:
    attr, enum, prefix = _FILTER_FIELDS[name]
    v = getattr(incident, attr)
    return enum.Name(v).removeprefix(prefix) if enum is not None else str(v)


__all__ = ["FieldViolation", "ModelScorer", "ScoringService", "report_name"]
