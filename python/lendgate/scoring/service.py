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
import contextlib
import hashlib
import json
import logging
import os
import signal
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import lendgate
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
    malformed_message,
)
from lendgate.listfilter import Fields, compile_filter
from lendgate.lists import Lists
from lendgate.rules import CompiledRuleSet, RuleBook
from lendgate.scoring.admin import RuleAdmin
from lendgate.scoring.aggdefs import Composed
from lendgate.scoring.matching import MatchIndex
from lendgate.scoring.pack import Pack, load_pack
from lendgate.store import NewEvent, Store, StoreSettings
from lendgate.timeutil import from_us, to_us, utc_now
from lendgate.v1 import common_pb2, scoring_pb2

log = logging.getLogger(__name__)

ModelScorer = Callable[
    [Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]], tuple[int, str, str] | None
]
"""(event, params, rules) -> (risk score 0..1000, model name, model version), or ``None``
when no model is active. ``rules`` is the working rules' verdict without a model score,
``{"fraud_score": int, "fired": [rule_id, ...]}``. Never called to make up a score:
``None`` means no score."""


CAPTURE_CHILD_TIMEOUT_S = 900
"""A forked capture child is killed (SIGALRM) if it has not finished by then."""

CAPTURE_CHILD_NICENESS = 10
"""How much lower than the server a forked capture child runs: serialising the state
costs seconds of CPU (≈ 1.5 s at 1,000,000 events), and at full priority the child
takes a core from the checks for that long, so a saturated server falls seconds
behind at every snapshot. At niceness 10 the scheduler gives it about a tenth of a
contended core and all of an idle one: the snapshot is ready later, never starved."""


def _collect_capture(pid: int, read_end: int) -> bytes | None:
    """Read a forked capture child's snapshot to its end and reap the child: the bytes,
    or ``None`` if it did not exit cleanly (blocking: run it on a worker thread)."""
    chunks: list[bytes] = []
    try:
        while chunk := os.read(read_end, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None
    return b"".join(chunks)


def _model_active(model: ModelScorer | None) -> bool:
    """Whether to hand the scorer ``model`` for this check: a model callable may say it
    has nothing to score with (``is_active()``, e.g. no champion), which spares the check
    the cost of calling it."""
    if model is None:
        return False
    is_active = getattr(model, "is_active", None)
    return bool(is_active()) if callable(is_active) else True


_REQUEST_TYPES = {
    "application": "lendgate.v1.CheckApplicationRequest",
    "payment": "lendgate.v1.CheckPaymentRequest",
}
MAX_REQUEST_ID = 128
MAX_CHECKS_IN_FLIGHT = 2048
"""Checks admitted at once per process; more are refused RESOURCE_EXHAUSTED at once
rather than queued behind the store (where their latency would grow without bound)."""
RESOLUTION_AUTHOR = "$resolution"

STATE_MAGIC = b"LGSS"
STATE_VERSION = 1


@dataclass(frozen=True)
class StateSettings:
    """When the service snapshots and trims its in-memory state (``docs/STORAGE.md``).

    - ``snapshot_every_events``: take a snapshot once this many events (checks and
      outcomes) were applied since the last one (0: never by count);
    - ``snapshot_every_seconds``: take one when this much time has passed and at least one
      event was applied (0: never by time);
    - ``retention_days``: events older than this (event time) leave the match index, as
      they leave the store (0 keeps everything); checked every ``retention_interval_s``;
    - ``tick_s``: how often the background task looks;
    - ``fork_capture``: take the capture in a forked child process (Linux), which holds a
      copy-on-write image of the state at the fork, so serving pauses for the fork
      (page tables: tens of milliseconds per few GB), not for the whole serialization
      (about 0.9 s per million events); off, or where ``fork`` is missing or the child
      fails, the capture runs in the serving process.
    """

    snapshot_every_events: int = 100_000
    snapshot_every_seconds: float = 300.0
    retention_days: float = 180.0
    retention_interval_s: float = 60.0
    tick_s: float = 1.0
    fork_capture: bool = True

    @classmethod
    def for_store(cls, store: Store, **overrides: Any) -> StateSettings:
        """Defaults with the store's retention horizon (an :class:`SqlStore`'s settings)."""
        settings = getattr(store, "settings", None)
        if isinstance(settings, StoreSettings):
            # The hot state forgets what the store forgets, and only when it does.
            purging = settings.retention_interval_s > 0
            overrides.setdefault("retention_days", settings.retention_days if purging else 0)
            overrides.setdefault("retention_interval_s", settings.retention_interval_s)
        return cls(**overrides)


@dataclass(frozen=True)
class RecoveryReport:
    """What :meth:`ScoringService.recover` did: the snapshot it started from (0: none),
    the log position reached, the events replayed after the snapshot, and the time each
    part took (seconds)."""

    snapshot_position: int
    position: int
    replayed: int
    restore_s: float
    replay_s: float


@dataclass(frozen=True)
class HistoryLoad:
    """What :meth:`ScoringService.load_history` did: checks and outcomes stored, events
    refused by validation (or duplicates of stored ones), outcomes whose application was not
    in the history, the snapshot's log position and the seconds it took."""

    checks: int
    outcomes: int
    refused: int
    orphan_outcomes: int
    position: int
    seconds: float


HistoryItem = tuple[str, Any]
"""(kind, message): ``("application", ApplicationEvent)``, ``("payment", PaymentEvent)`` or
``("outcome", ReportOutcomeRequest)`` naming its application by ``application_id``."""


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
        clock: Callable[[], datetime] = utc_now,
        max_in_flight: int = MAX_CHECKS_IN_FLIGHT,
        state: StateSettings | None = None,
    ) -> None:
        self.store = store
        self.pack = pack or load_pack()
        self.admin = RuleAdmin(store, self.pack, clock=clock)
        """The consortium's and the partners' rules, lists and settings (persisted)."""
        self.aggregate_state: Composed = self.admin.aggregate_state()
        """The aggregate definitions the live state answers with (a changed definition
        serves once :meth:`rebuild_aggregates` has rebuilt the state from the log)."""
        self.aggregate_rebuild_error: tuple[str, str] | None = None
        """(digest of the definitions, why) of the last rebuild that was not swapped in."""
        self._rebuilding: asyncio.Task[None] | None = None
        self._admission = asyncio.Event()
        self._admission.set()
        self._epoch = 0
        self.book: RuleBook = self.admin.consortium.book
        self.lists: Lists = self.admin.consortium.lists
        self.rules: CompiledRuleSet = self.book.compile(self.pack.zone_threshold)
        self._private_rules: dict[str, CompiledRuleSet] = {}
        self._shipped_digest = self._rules_digest()
        self.rule_pack_revision = self.pack.revision
        """Reported in every report's provenance: the shipped pack's revision, suffixed
        with a digest of the live rules once they differ from what the pack shipped."""
        self._scorer = _core.Scorer(
            {k: list(v) for k, v in self.pack.matches.items() if v},
            name_similarity=self.pack.name_similarity,
        )
        self.aggregates = AggregateStore(self.aggregate_state.document)
        self.index = MatchIndex()
        self._model = model
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._incidents: dict[str, list[str]] = {}
        self._recovered = False
        self._in_flight = 0
        self._max_in_flight = max_in_flight
        self._recovering = asyncio.Lock()
        self._writes: set[asyncio.Future[Any]] = set()
        self._appends_settled = asyncio.Event()
        self._appends_settled.set()
        self.rebuilds = 0
        """How many times the in-memory state was rebuilt from the log after a failed
        write (0 in a healthy process)."""
        self.knows_every_logged_key = False
        """Set by a recovery that noted every request key of the log in the match index
        (the snapshot's index holds the keys of the events it covers, and the tail's are
        noted as they are replayed): only then may a check skip the store read for a key
        the index does not know."""
        self._state = state or StateSettings.for_store(store)
        self.forked_captures = 0
        """Snapshots captured by a forked child (see ``StateSettings.fork_capture``)."""
        self._applied_count = 0
        """Checks and outcomes applied to the state by this process (snapshot policy)."""
        self._applied_at_snapshot = 0
        self._snapshot_time = time.monotonic()
        self._pruned_at = time.monotonic()
        self._snapshotting = asyncio.Lock()
        self._maintenance: asyncio.Task[None] | None = None
        self.last_recovery: RecoveryReport | None = None

    def recompile(self) -> None:
        """Swap in the current rules, lists and settings (after a load or an edit
        through the admin API)."""
        self.book = self.admin.consortium.book
        self.lists = self.admin.consortium.lists
        self.rules, self._private_rules = self.admin.compile()
        digest = self._rules_digest()
        self.rule_pack_revision = (
            self.pack.revision
            if digest == self._shipped_digest
            else f"{self.pack.revision}+{digest[:12]}"
        )

    def evaluator(self, partner: str) -> tuple[CompiledRuleSet, Lists]:
        """The compiled rules and the lists a check of ``partner`` runs: the
        consortium's, plus the partner's private ones when it has any."""
        private = self._private_rules.get(partner)
        if private is None:
            return self.rules, self.lists
        return private, self.admin.lists(partner)

    def _rules_digest(self) -> str:
        """SHA-256 of the live rules' content: equal rules, equal revision."""
        content = json.dumps(
            {
                "rules": [r.to_core() for r in self.book.rules()],
                "zone_threshold": self.admin.settings.zone_threshold,
                "aggregates": self.aggregate_state.digest,
            },
            sort_keys=True,
        )
        return hashlib.sha256(content.encode()).hexdigest()

    async def recover(self) -> int:
        """Rebuild the in-memory state (aggregates, match index with its sequence counter,
        outcome marks, counted finishes and logged request keys, incident index): restore
        the latest snapshot, then replay the log after it in order (the whole log when
        there is no usable snapshot). Done once before the first call is served (then the
        background snapshots start), and again after a write the store refused. Returns
        the number of events replayed."""
        async with self._recovering:
            if self._recovered:
                return 0
            # Every write already issued must have landed (or failed) first: the
            # snapshot and the replay must see exactly what the log will hold.
            while self._writes:
                await self._appends_settled.wait()
            await self.admin.load()
            # A recovery replays the whole state: with the newest definitions.
            self._epoch += 1
            self.aggregate_state = self.admin.aggregate_state()
            self.recompile()
            t0 = time.perf_counter()
            self._reset_state()
            position = 0
            snapshot = await self.store.snapshots.load_latest()
            loaded_s = time.perf_counter() - t0
            if snapshot is not None:
                try:
                    self._restore_state(snapshot.data)
                    position = snapshot.position
                except InvalidArgumentError as exc:
                    log.warning(
                        "snapshot at log position %d not usable (%s); replaying the whole log",
                        snapshot.position,
                        exc.message,
                    )
                    self._reset_state()
            t1 = time.perf_counter()
            replayed, last = await self._replay(position)
            # The snapshot's index holds the key of every event up to its position (each
            # was noted when applied), and the replay noted the tail's.
            self.knows_every_logged_key = True
            self._prune()
            # The replayed tail counts toward the next snapshot: otherwise it would be
            # replayed again by every restart until new traffic made one due.
            self._applied_at_snapshot = self._applied() - replayed
            self._snapshot_time = time.monotonic()
            self._recovered = True
            self.last_recovery = RecoveryReport(
                position, max(position, last), replayed, t1 - t0, time.perf_counter() - t1
            )
            log.info(
                "scoring state recovered",
                extra={
                    "snapshot_position": position,
                    "replayed": replayed,
                    "restore_s": round(t1 - t0, 3),
                    "snapshot_bytes": 0 if snapshot is None else len(snapshot.data),
                    "snapshot_load_s": round(loaded_s, 3),
                    "replay_s": round(self.last_recovery.replay_s, 3),
                },
            )
            self._start_maintenance()
            return replayed

    async def _replay(self, after: int) -> tuple[int, int]:
        """Apply every event after log position ``after``; (events replayed, last seq)."""
        replayed, last = 0, after
        applications: dict[str, bytes] = {}
        async for stored in self.store.snapshots.events_after(after):
            replayed += 1
            last = stored.seq
            self.index._core.note_logged(stored.request_id, stored.event_time_us)
            if stored.kind in _REQUEST_TYPES:
                self._replay_check(stored, applications)
            elif stored.kind == "outcome":
                request = scoring_pb2.ReportOutcomeRequest.FromString(stored.payload)
                subject = f"{stored.partner_id}\x1f{stored.subject_id}"
                app = applications.get(subject)
                if app is None and after > 0:  # its application may be before the snapshot
                    app = await self._application_before(stored)
                outcome = scoring_pb2.Outcome.FromString(stored.response or b"")
                if app is not None:
                    self._apply_outcome(app, stored.partner_id, outcome, request.outcome)
        return replayed, last

    async def _application_before(self, outcome: Any) -> bytes | None:
        """The request of the latest application event of an outcome's subject logged
        before it (what a whole-log replay would hold for it), or ``None`` (gone with
        retention)."""
        found = [
            e
            for e in await self.store.events_by_subject(outcome.partner_id, outcome.subject_id)
            if e.kind == "application" and e.seq < outcome.seq
        ]
        if not found:
            return None
        return bytes(max(found, key=lambda e: e.seq).payload)

    # --- aggregate definitions changed: rebuild the state from the log ----------------

    def rebuild_aggregates(self) -> asyncio.Task[None]:
        """Bring the live aggregates to the current definitions
        (:meth:`RuleAdmin.aggregate_state`) in the background; returns the task.

        A new :class:`AggregateStore` of the new definitions replays the whole stored
        log (checks and outcomes, as a recovery does, on worker threads) while the old
        one keeps answering checks. Once it has caught up, new checks and outcomes wait
        a moment at the door, the few events logged meanwhile are applied, and the new
        store is swapped in; a snapshot is then taken. A change made during a rebuild
        starts another one after it. A rebuild that the new definitions make refuse a
        stored event is not swapped in (:attr:`aggregate_rebuild_error`).
        """
        if self._rebuilding is None or self._rebuilding.done():
            self._rebuilding = asyncio.get_running_loop().create_task(
                self._rebuild_until_current(), name="lendgate-aggregates-rebuild"
            )
        return self._rebuilding

    async def _rebuild_until_current(self) -> None:
        while True:
            await self._ready()
            wanted = self.admin.aggregate_state()
            failed = self.aggregate_rebuild_error
            if wanted.digest == self.aggregate_state.digest or (
                failed is not None and failed[0] == wanted.digest
            ):
                return
            try:
                swapped = await self._rebuild(wanted)
            except Exception as exc:
                log.exception("aggregate rebuild failed")
                self.aggregate_rebuild_error = (wanted.digest, str(exc))
                return
            if swapped:
                self.aggregate_rebuild_error = None
                try:
                    await self.snapshot_now(background=True)
                except Exception:  # the next scheduled snapshot retries
                    log.exception("snapshot after the aggregate rebuild failed")

    async def _rebuild(self, wanted: Composed) -> bool:
        """Replay the log into a new store of ``wanted`` and swap it in; ``False`` when a
        recovery replaced the state meanwhile (it used the newest definitions)."""
        epoch = self._epoch
        started = time.perf_counter()
        aggregates = AggregateStore(wanted.document)
        index = MatchIndex()  # the marks the replay needs (counted finishes), thrown away
        applications: dict[str, bytes] = {}
        refused: list[str] = []
        position = 0

        async def catch_up() -> int:
            nonlocal position
            batch: list[Any] = []
            replayed = 0
            async for stored in self.store.snapshots.events_after(position):
                batch.append(stored)
                if len(batch) >= 2000:
                    await asyncio.to_thread(
                        self._replay_into, batch, aggregates, index, applications, refused
                    )
                    position, replayed, batch = batch[-1].seq, replayed + len(batch), []
            if batch:
                await asyncio.to_thread(
                    self._replay_into, batch, aggregates, index, applications, refused
                )
                position, replayed = batch[-1].seq, replayed + len(batch)
            return replayed

        while await catch_up() > 1000:  # the log grew meanwhile: again, until it is short
            if epoch != self._epoch:
                return False
        self._admission.clear()
        try:
            while True:
                applied = self._applied_count
                while self._writes:  # every event applied live is in the log first
                    await self._appends_settled.wait()
                if await catch_up() == 0 and applied == self._applied_count and not self._writes:
                    break
            if refused:
                self.aggregate_rebuild_error = (
                    wanted.digest,
                    f"the new definitions refuse {len(refused)} stored event(s): {refused[0]}",
                )
                log.error("aggregate rebuild not swapped in: %s", self.aggregate_rebuild_error[1])
                return False
            if epoch != self._epoch or not self._recovered:
                return False
            # Synchronous from here: no check runs between the last catch-up and the swap.
            self.aggregates = aggregates
            self.aggregate_state = wanted
            self.recompile()
        finally:
            self._admission.set()
        log.info(
            "aggregates rebuilt from the log",
            extra={"position": position, "seconds": round(time.perf_counter() - started, 3)},
        )
        return True

    def _replay_into(
        self,
        events: list[Any],
        aggregates: AggregateStore,
        index: MatchIndex,
        applications: dict[str, bytes],
        refused: list[str],
    ) -> None:
        """Apply stored checks and outcomes to a state being rebuilt (a worker thread:
        the Rust calls release the GIL and touch only this new state)."""
        for stored in events:
            try:
                if stored.kind in _REQUEST_TYPES:
                    with core_errors():
                        self._scorer.replay(
                            stored.kind,
                            stored.payload,
                            stored.request_id,
                            stored.partner_id,
                            stored.event_time_us,
                            aggregates._core,
                            index._core,
                        )
                    if stored.kind == "application":
                        applications[f"{stored.partner_id}\x1f{stored.subject_id}"] = bytes(
                            stored.payload
                        )
                elif stored.kind == "outcome":
                    app = applications.get(f"{stored.partner_id}\x1f{stored.subject_id}")
                    if app is None:  # gone with retention, as in a whole-log recovery
                        continue
                    reported = scoring_pb2.ReportOutcomeRequest.FromString(stored.payload).outcome
                    outcome = scoring_pb2.Outcome.FromString(stored.response or b"")
                    with core_errors():
                        self._scorer.apply_outcome(
                            app,
                            stored.partner_id,
                            to_us(outcome.event_time.ToDatetime(UTC)),
                            scoring_pb2.ApplicationDecision.Name(reported.decision).removeprefix(
                                "APPLICATION_DECISION_"
                            ),
                            scoring_pb2.FraudStatus.Name(reported.fraud_status).removeprefix(
                                "FRAUD_STATUS_"
                            ),
                            aggregates._core,
                            index._core,
                        )
            except InvalidArgumentError as exc:
                refused.append(f"log position {stored.seq}: {exc.message}")

    async def load_history(
        self,
        items: Iterable[HistoryItem],
        *,
        request_prefix: str = "history",
        batch: int = 2000,
        progress: Callable[[int], None] | None = None,
    ) -> HistoryLoad:
        """Feed prior events, in event-time order, into the store and the state in process.

        Each check goes through the live path's Rust scoring call (validation, aggregates,
        rules, matches, index) and is stored with its report; outcomes go through
        :meth:`_apply_outcome`. Appends are batched (``batch`` events, one batch committing
        while the next is scored); a request id is ``{request_prefix}-{n}`` for the n-th
        item, the partner the event's own. History opens no incident. Ends with a snapshot,
        so a server started on the store replays nothing. Loading the same items twice is
        refused (:class:`AbortedError`) before anything changes.
        """
        await self._ready()
        started = time.perf_counter()
        checks = outcomes = refused = orphans = 0
        apps: dict[str, tuple[str, bytes, str, str]] = {}
        pending: list[NewEvent] = []
        committing: asyncio.Future[list[Any]] | None = None

        async def flush() -> None:
            nonlocal committing, refused
            if committing is not None:
                try:
                    acks = await committing
                except BaseException:
                    self._diverged()  # the state holds events the log may not
                    raise
                duplicates = sum(1 for ack in acks if ack.duplicate)
                if duplicates:
                    # The state took events the log holds under other answers.
                    refused += duplicates
                    self._diverged()
            committing = None
            if pending:
                committing = asyncio.ensure_future(self.store.append_events(list(pending)))
                pending.clear()
                await asyncio.sleep(0)  # let it enqueue (in order) before scoring goes on

        for n, (kind, message) in enumerate(items):
            request_id = f"{request_prefix}-{n}"
            if n == 0 and await self.store.get_event_by_request(
                f"{_partner_of(kind, message, apps)}/{request_id}"
            ):
                raise AbortedError(
                    f"history {request_prefix!r} is already loaded ({request_id} is stored);"
                    " use another request prefix",
                    reason="HISTORY_LOADED",
                )
            event = (
                self._history_check(kind, message, request_id, apps)
                if kind in _REQUEST_TYPES
                else self._history_outcome(message, request_id, apps)
            )
            if event is None:
                if kind == "outcome":
                    orphans += 1
                else:
                    refused += 1
                continue
            pending.append(event)
            if kind == "outcome":
                outcomes += 1
            else:
                checks += 1
            if len(pending) >= batch:
                await flush()
                if progress is not None:
                    progress(n + 1)
        await flush()
        await flush()
        position = await self.snapshot_now()
        return HistoryLoad(
            checks, outcomes, refused, orphans, position, time.perf_counter() - started
        )

    def _history_check(
        self,
        kind: str,
        message: Any,
        request_id: str,
        apps: dict[str, tuple[str, bytes, str, str]],
    ) -> NewEvent | None:
        started = time.perf_counter_ns()
        request = (
            scoring_pb2.CheckApplicationRequest(request_id=request_id, application=message)
            if kind == "application"
            else scoring_pb2.CheckPaymentRequest(request_id=request_id, payment=message)
        ).SerializeToString()
        partner = str(message.partner_id)
        receive_time = self._clock()
        prepared = self._scorer.prepare(kind, request, to_us(receive_time))
        if not partner or prepared.violations:
            return None
        try:
            body, incident, event_time_us, event_id, keys = self._apply_check(
                prepared,
                partner=partner,
                request_id=request_id,
                receive_time=receive_time,
                started=started,
                incident_id="",
            )
        except InvalidArgumentError:  # e.g. later than the aggregates accept: unchanged
            return None
        if incident:  # history opens no incident
            report = scoring_pb2.Report.FromString(body)
            report.ClearField("incident")
            body = report.SerializeToString()
        subject_id = f"{kind}:{event_id}"
        if kind == "application":
            apps[event_id] = (partner, request, subject_id, request_id)
        return NewEvent(
            f"{partner}/{request_id}",
            partner,
            kind,
            event_time_us,
            request,
            subject_id=subject_id,
            keys=keys,
            response=body,
        )

    def _history_outcome(
        self,
        request: scoring_pb2.ReportOutcomeRequest,
        request_id: str,
        apps: dict[str, tuple[str, bytes, str, str]],
    ) -> NewEvent | None:
        found = apps.get(request.application_id)
        if found is None or not request.HasField("outcome"):
            return None
        partner, app, subject_id, app_request_id = found
        stored = scoring_pb2.ReportOutcomeRequest()
        stored.CopyFrom(request)
        stored.request_id = request_id
        o = stored.outcome
        now = self._clock()
        event_time = o.event_time.ToDatetime(UTC) if o.HasField("event_time") else now
        outcome = scoring_pb2.Outcome()
        outcome.CopyFrom(o)
        outcome.name = f"{report_name(app_request_id)}/outcomes/{request_id}"
        outcome.record_time.FromDatetime(now)
        outcome.source = "history"
        if not o.HasField("event_time"):
            outcome.event_time.FromDatetime(event_time)
        key = f"{partner}/{request_id}"
        self._apply_outcome(app, partner, outcome, o)
        self.index._core.note_logged(key, to_us(event_time))
        return NewEvent(
            key,
            partner,
            "outcome",
            to_us(event_time),
            stored.SerializeToString(),
            subject_id=subject_id,
            response=outcome.SerializeToString(),
        )

    # --- snapshots of the in-memory state ----------------------------------------------

    def _applied(self) -> int:
        return self._applied_count

    def _capture(self) -> bytes:
        """The whole in-memory state as versioned bytes; synchronous, so no check or
        outcome is applied while it is taken (the aggregates' snapshot is consistent only
        between applies). The match index's part (Rust, ``LGMXSNAP``) carries the
        sequence counter, outcome marks, counted finishes and logged request keys."""
        meta = json.dumps(
            {
                "incidents": self._incidents,
                "pack": self.pack.revision,
                "aggregates": self.aggregate_state.digest,
            },
            separators=(",", ":"),
        ).encode()
        # Independent parts, each Rust call releasing the GIL: the index is serialised on
        # a second thread meanwhile (10M events: 9.3 s and 5.0 s one after the other).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lendgate-capture") as pool:
            capturing = pool.submit(self.index.snapshot)
            aggregates = self.aggregates.snapshot()
            index = capturing.result()
        return b"".join(
            (
                STATE_MAGIC,
                bytes([STATE_VERSION]),
                struct.pack("<IQ", len(meta), len(aggregates)),
                meta,
                aggregates,
                index,
            )
        )

    def _restore_state(self, data: bytes | memoryview) -> None:
        """Replace the in-memory state with a :meth:`_capture`; raises
        :class:`InvalidArgumentError` for a foreign, older, newer or damaged snapshot."""
        head = len(STATE_MAGIC) + 1 + 12
        if len(data) < head or data[:4] != STATE_MAGIC:
            raise InvalidArgumentError("not a scoring state snapshot", field="snapshot")
        if data[4] != STATE_VERSION:
            raise InvalidArgumentError(
                f"scoring snapshot version {data[4]}, this build reads {STATE_VERSION}",
                field="snapshot",
            )
        meta_len, agg_len = struct.unpack_from("<IQ", data, 5)
        if head + meta_len + agg_len > len(data):
            raise InvalidArgumentError("truncated scoring snapshot", field="snapshot")
        try:
            meta = json.loads(bytes(data[head : head + meta_len]))
            incidents = {str(p): [str(i) for i in ids] for p, ids in meta["incidents"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidArgumentError(
                f"damaged scoring snapshot: {exc}", field="snapshot"
            ) from None
        if meta.get("aggregates") != self.aggregate_state.digest:
            # Same layout is not enough: a changed filter or attribute keeps the layout.
            raise InvalidArgumentError(
                "the snapshot was taken with other aggregate definitions", field="snapshot"
            )
        at = head + meta_len
        index = MatchIndex()
        # Views, not slices: a 10M-event snapshot is gigabytes, a copy costs seconds.
        view = memoryview(data).toreadonly()
        # The two parts are independent and each Rust restore releases the GIL: the match
        # index is rebuilt on a second thread while this one rebuilds the aggregates.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lendgate-restore") as pool:
            restoring = pool.submit(index.restore, view[at + agg_len :])
            aggregates = AggregateStore.restore(
                self.aggregate_state.document, view[at : at + agg_len]
            )
            restoring.result()
        self.aggregates, self.index, self._incidents = aggregates, index, incidents

    def _reset_state(self) -> None:
        self.aggregates = AggregateStore(self.aggregate_state.document)
        self.index = MatchIndex()
        self._incidents = {}
        self.knows_every_logged_key = False

    async def snapshot_now(self, *, background: bool = False) -> int:
        """Take a snapshot of the in-memory state and store it; returns its log position.
        ``background``: taken while serving, so it is stored paced (the store's
        ``save(..., paced=True)``), leaving the writer to the appends.

        The store's fence is enqueued behind the append of every event applied before the
        capture and ahead of any applied after it (appends and the fence are submitted by
        tasks in creation order, each check's created with its apply), so the position it
        resolves to is exactly what the state holds
        — provided each of those appends was stored as applied: when one failed or met
        another writer's event, the state was ahead of the log, and the snapshot is not
        stored (:class:`AbortedError`; the state is rebuilt from the log). The capture
        pauses the event loop for its duration; storing it does not.
        """
        async with self._snapshotting:
            while not self._recovered:  # never capture a state the log does not hold
                await self._ready()
            while True:
                applied = self._applied()
                writes = list(self._writes)
                # Appends go through tasks (``_logged``) that submit on their first step,
                # in creation order: the fence goes through one too, created now, so it
                # lands behind the append of every event the capture holds and before any
                # later.
                fence = asyncio.ensure_future(self._fence())
                paused = time.perf_counter()
                child = self._fork_capture() if self._state.fork_capture else None
                data = self._capture() if child is None else b""
                paused = time.perf_counter() - paused
                if child is None:
                    break
                captured = await asyncio.to_thread(_collect_capture, *child)
                if captured is not None:
                    data = captured
                    self.forked_captures += 1
                    break
                # The child failed. The state has moved on since the fork, so this fence
                # no longer labels it: start over, capturing in process this time.
                log.warning("forked snapshot capture failed; capturing in process")
                self._state = replace(self._state, fork_capture=False)
                await fence
            position = await fence
            if writes:
                await asyncio.wait(writes)
            if any(_diverging(w) for w in writes):
                raise AbortedError(
                    "a write covered by the snapshot was not stored as applied; the state "
                    "is rebuilt from the log and the snapshot dropped",
                    reason="STATE_DIVERGED",
                )
            await self.store.snapshots.save(position, data, paced=background)
            self._applied_at_snapshot = applied
            self._snapshot_time = time.monotonic()
            log.info(
                "state snapshot stored",
                extra={
                    "position": position,
                    "bytes": len(data),
                    "events_applied": applied,
                    "capture_s": round(paused, 3),
                    "forked": child is not None and self._state.fork_capture,
                },
            )
            return position

    def _fork_capture(self) -> tuple[int, int] | None:
        """Fork a child that captures the state as it is at this instant and writes it to
        a pipe: (child pid, read end); ``None`` where ``fork`` is unavailable.

        Safe here because the fork happens on the event loop between two applies (no
        check is inside the Rust state), and the child touches nothing but the state's
        own memory and the pipe: no store connection, no gRPC, no event loop; it ends with
        ``os._exit`` (no atexit handlers, no buffered output of the parent), and an alarm
        kills it if it ever hangs."""
        if not hasattr(os, "fork") or not lendgate.FORK_SAFE:
            return None
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return None
        if pid == 0:  # the child
            status = 1
            try:
                os.close(read_end)
                signal.alarm(CAPTURE_CHILD_TIMEOUT_S)
                os.nice(CAPTURE_CHILD_NICENESS)
                view = memoryview(self._capture())
                while view:
                    view = view[os.write(write_end, view) :]
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        return pid, read_end

    async def _fence(self) -> int:
        return await self.store.fence()

    def _start_maintenance(self) -> None:
        if self._maintenance is None:
            self._maintenance = asyncio.get_running_loop().create_task(
                self._maintain(), name="lendgate-scoring-state"
            )

    async def _maintain(self) -> None:
        """Background: snapshots by count or time, retention of the match index."""
        s = self._state
        while True:
            await asyncio.sleep(s.tick_s)
            since = self._applied() - self._applied_at_snapshot
            elapsed = time.monotonic() - self._snapshot_time
            due = (s.snapshot_every_events > 0 and since >= s.snapshot_every_events) or (
                s.snapshot_every_seconds > 0 and since > 0 and elapsed >= s.snapshot_every_seconds
            )
            try:
                if due:
                    await self.snapshot_now(background=True)
                if time.monotonic() - self._pruned_at >= s.retention_interval_s:
                    await self._prune_in_steps()
            except Exception:  # the store is unreachable...: retry after another interval
                log.exception("background state maintenance failed")
                self._snapshot_time = time.monotonic()  # (each try costs a capture pause)
                self._applied_at_snapshot = self._applied()

    def _prune(self) -> None:
        """Retention of the hot state: the match index forgets events older than the
        store's horizon; the aggregates expire what left their windows (in one go: at
        recovery, before the first call)."""
        self._pruned_at = time.monotonic()
        if self._state.retention_days > 0:
            self.index.prune(
                self._clock() - timedelta(days=self._state.retention_days), sweep_shards=1
            )
        self.aggregates.expire_all()

    async def _prune_in_steps(self) -> None:
        """:meth:`_prune` while serving: the aggregates' expiry pass goes one shard of
        one aggregate object at a time (576 steps for the default pack), yielding to the
        event loop between steps, so checks are not held for the whole pass (half a
        second or more with a million keys). The index's prune is one call: it drops
        what passed the horizon without renumbering anything and sweeps one of the key
        lists' 64 shards (milliseconds where renumbering took seconds at 10M events)."""
        self._pruned_at = time.monotonic()
        if self._state.retention_days > 0:
            self.index.prune(
                self._clock() - timedelta(days=self._state.retention_days), sweep_shards=1
            )
        while True:
            if self.aggregates.expire_step(max_shards=1).pass_complete:
                return
            await asyncio.sleep(0)  # let the checks that arrived meanwhile through

    async def aclose(self, *, snapshot: bool = True) -> None:
        """Stop the background task; with ``snapshot``, store a last snapshot so the next
        start replays nothing (call after the server stopped taking calls)."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        if snapshot and self._recovered and self._applied() != self._applied_at_snapshot:
            try:
                await self.snapshot_now()
            except Exception:  # shutting down: the log still has everything
                log.exception("final state snapshot failed")

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
        self._applied_count += 1
        if stored.kind == "application":
            applications[f"{stored.partner_id}\x1f{stored.subject_id}"] = bytes(stored.payload)
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

    def _logged(self, event: NewEvent) -> Awaitable[Any]:
        """Append ``event``, whose effect the in-memory state already holds; the append
        is queued now (the log keeps scoring order), the result is awaited. The write
        goes on when the caller is cancelled (a client deadline): it is then logged as
        scored. A write the store refuses, or finds another writer's event under the same
        key, marks the state for a rebuild from the log."""
        self._appends_settled.clear()
        # A task started now runs before any later one, so the log keeps scoring order.
        write = asyncio.ensure_future(self.store.append_event(event))
        self._writes.add(write)
        write.add_done_callback(self._settled)
        return asyncio.shield(write)

    def _settled(self, write: asyncio.Future[Any]) -> None:
        self._writes.discard(write)
        if not self._writes:
            self._appends_settled.set()
        if _diverging(write):
            self._diverged()

    # --- checks ------------------------------------------------------------------------

    async def check(
        self,
        kind: str,
        request: bytes,
        partner: str,
        *,
        ordered: asyncio.Future[None] | None = None,
    ) -> bytes:
        """Check one serialized ``Check{Application,Payment}Request`` for ``partner``;
        returns the serialized ``Report``. A retry of a ``request_id`` returns the first
        report and changes nothing. Over ``max_in_flight`` checks at once, the call is
        refused with :class:`ResourceExhaustedError`.

        ``ordered``, when given, is resolved as soon as this check's place in the
        scoring order is fixed — it was scored (its append may still be pending), or it
        ended without scoring (refused, a retry answered, an error) — so a caller can
        start the next check of a sequence then and still have them scored in order
        (``CheckStream``)."""
        try:
            if self._in_flight >= self._max_in_flight:
                raise ResourceExhaustedError("too many checks in flight; retry later")
            self._in_flight += 1
            try:
                return await self._check(kind, request, partner, ordered)
            finally:
                self._in_flight -= 1
        finally:
            if ordered is not None and not ordered.done():
                ordered.set_result(None)

    async def _check(
        self, kind: str, request: bytes, partner: str, ordered: asyncio.Future[None] | None
    ) -> bytes:
        started = time.perf_counter_ns()
        receive_time = self._clock()
        try:
            prepared = self._scorer.prepare(kind, request, to_us(receive_time))
        except _core.CoreInvalidArgument as exc:
            raise malformed_message(_REQUEST_TYPES[kind], exc.args[1]) from None
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
                ordered=ordered,
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
        ordered: asyncio.Future[None] | None = None,
    ) -> bytes:
        if not self._admission.is_set():  # the aggregates are being swapped
            await self._admission.wait()
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
        body, incident, event_time_us, event_id, keys = self._apply_check(
            prepared,
            partner=partner,
            request_id=request_id,
            receive_time=receive_time,
            started=started,
            incident_id=incident_id,
        )
        if incident:
            # Indexed with the event (as a replay of the log would), so a snapshot taken
            # before the incident is stored still lists it.
            self._incidents.setdefault(partner, []).append(incident_id)
        write = self._logged(
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
        if ordered is not None:  # scored, and its append queued behind the previous one's
            ordered.set_result(None)
        ack = await write
        if ack.duplicate and ack.response is not None:
            # Another writer logged this key first: the state took an event the log
            # holds under another answer (it is rebuilt); answer what the log holds.
            return bytes(ack.response)
        if incident:
            await self._open_incident(
                incident_id, partner, scoring_pb2.Report.FromString(body), ack.seq
            )
        return bytes(body)

    def _apply_check(
        self,
        prepared: _core.PreparedCheck,
        *,
        partner: str,
        request_id: str,
        receive_time: datetime,
        started: int,
        incident_id: str,
    ) -> tuple[bytes, bool, int, str, list[tuple[str, str]]]:
        """The Rust scoring call on the live state (synchronous; an error changes
        nothing): (report, opens an incident, event time µs, event id, match keys)."""
        rules, lists = self.evaluator(partner)
        with core_errors():
            scored = self._scorer.score(
                prepared,
                partner_id=partner,
                request_id=request_id,
                report_name=report_name(request_id),
                receive_time_us=to_us(receive_time),
                incident_id=incident_id,
                elapsed_ns=time.perf_counter_ns() - started,
                aggregates=self.aggregates._core,
                rules=rules._inner,
                lists=lists.registry,
                index=self.index._core,
                revision=self.rule_pack_revision,
                model=self._model if _model_active(self._model) else None,
            )
        self._applied_count += 1
        # The model's explanation and warnings (lendgate.models.serving.CheckModel), as
        # serialized Report fields: appended bytes merge into the report.
        addendum = getattr(self._model, "take_report_addendum", None)
        if addendum is not None and (extra := addendum()):
            scored = (scored[0] + extra, *scored[1:])
        return scored

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
        if not self._admission.is_set():  # the aggregates are being swapped
            await self._admission.wait()
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
        self.index._core.note_logged(key, to_us(event_time))
        body = outcome.SerializeToString()
        ack = await self._logged(
            NewEvent(
                key,
                partner,
                "outcome",
                to_us(event_time),
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
        self._applied_count += 1  # counted for the snapshot policy
        with core_errors():
            self._scorer.apply_outcome(
                application_request,
                partner,
                to_us(outcome.event_time.ToDatetime(UTC)),
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
        out.create_time.FromDatetime(from_us(stored.created_at_us))
        out.update_time.FromDatetime(from_us(stored.updated_at_us))
        for c in stored.comments:
            if c.author == RESOLUTION_AUTHOR:
                out.resolution.CopyFrom(
                    scoring_pb2.IncidentResolution.FromString(bytes.fromhex(c.body))
                )
            elif comments:
                comment = out.comments.add(
                    name=f"{out.name}/comments/{c.comment_id}", author=c.author, text=c.body
                )
                comment.create_time.FromDatetime(from_us(c.created_at_us))
        return out

    async def list_incidents(
        self, partner: str, *, page_size: int, page_token: str, filter_text: str
    ) -> tuple[list[scoring_pb2.Incident], str]:
        """The caller's incidents, newest first, filtered by AIP-160 over
        :data:`INCIDENT_FILTER`'s fields."""
        await self._ready()
        wanted = compile_filter(filter_text, INCIDENT_FILTER)
        size = 50 if page_size <= 0 else min(page_size, 1000)
        try:
            offset = int(page_token or "0")
        except ValueError:
            raise InvalidArgumentError("not a page token", field="page_token") from None
        selected = []
        for incident_id in reversed(self._incidents.get(partner, [])):
            try:
                stored = await self.store.get_incident(incident_id)
            except NotFoundError:  # its check is still being stored
                continue
            incident = self._incident_proto(stored, comments=False)
            if wanted(_incident_fields(incident)):
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


def _diverging(write: asyncio.Future[Any]) -> bool:
    """Whether a settled append leaves the state ahead of the log: it failed, or the log
    already held another event under its key (another writer's)."""
    return write.cancelled() or write.exception() is not None or bool(write.result().duplicate)


def _partner_of(kind: str, message: Any, apps: Mapping[str, tuple[str, Any, str, str]]) -> str:
    """The partner a history item belongs to (an outcome's: its application's)."""
    if kind == "outcome":
        found = apps.get(message.application_id)
        return found[0] if found else ""
    return str(message.partner_id)


INCIDENT_FILTER = {
    "state": "enum:INCIDENT_STATE_",
    "zone": "enum:ZONE_",
    "event_kind": "enum:EVENT_KIND_",
    "recommended_action": "enum:RECOMMENDED_ACTION_",
    "assignee": "str",
    "fraud_score": "int",
    "model_risk_score": "int",
    "create_time": "time",
    "update_time": "time",
}
"""Fields of ``ListIncidents.filter`` (AIP-160 subset of :mod:`lendgate.listfilter`)."""


def _incident_fields(i: scoring_pb2.Incident) -> Fields:
    return {
        "state": scoring_pb2.IncidentState.Name(i.state).removeprefix("INCIDENT_STATE_"),
        "zone": scoring_pb2.Zone.Name(i.zone).removeprefix("ZONE_"),
        "event_kind": common_pb2.EventKind.Name(i.event_kind).removeprefix("EVENT_KIND_"),
        "recommended_action": scoring_pb2.RecommendedAction.Name(i.recommended_action).removeprefix(
            "RECOMMENDED_ACTION_"
        ),
        "assignee": i.assignee,
        "fraud_score": i.fraud_score,
        "model_risk_score": i.model_risk_score if i.HasField("model_risk_score") else None,
        "create_time": i.create_time.ToDatetime(UTC),
        "update_time": i.update_time.ToDatetime(UTC),
    }


__all__ = [
    "FieldViolation",
    "HistoryItem",
    "HistoryLoad",
    "ModelScorer",
    "RecoveryReport",
    "ScoringService",
    "StateSettings",
    "report_name",
]
