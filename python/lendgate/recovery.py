"""Rebuilding in-memory state after a restart: the latest snapshot plus the log's tail.

The in-memory state (the Rust aggregates today, matching indexes later) is derived from the
event log. :class:`StateKeeper` keeps one :class:`StateMachine` in step with the log:

- :meth:`StateKeeper.recover` at start: restore the latest snapshot (``store.snapshots``),
  then apply every event after its position, in log order;
- :meth:`StateKeeper.apply` while serving: the caller hands it the events it appended, in
  log order (``seq`` increasing), or :meth:`StateKeeper.follow` tails the log itself;
- background snapshots every ``every_events`` events or ``every_seconds`` seconds. The
  state is serialized while applies wait (the aggregates' snapshot is consistent only when
  no apply runs) on a worker thread, so the event loop keeps serving; the bytes are then
  stored as one write in the store's queue, so appends do not wait for it.

:class:`AggregateStateMachine` implements the protocol for :class:`AggregateStore`: each
stored event's payload goes through an injectable mapper (by default
:func:`lendgate.document.decode_document` of the message type its ``kind`` names, as JSON)
to :meth:`AggregateStore.apply`. The scoring service will own the exact mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lendgate.aggregates import AggregateStore, Definitions
from lendgate.document import decode_document
from lendgate.store.interface import Event, Snapshots

log = logging.getLogger(__name__)


class EventLog(Protocol):
    """What recovery needs of a store (:class:`lendgate.store.SqlStore` has it)."""

    @property
    def snapshots(self) -> Snapshots:
        """The snapshot hook: ``save``, ``load_latest``, ``events_after``."""
        ...

    async def events_page(self, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events with ``seq > after``, in log order."""
        ...


class StateMachine(Protocol):
    """In-memory state rebuilt from the event log."""

    def snapshot(self) -> bytes:
        """The whole state, serialized (called while no apply runs)."""
        ...

    def restore(self, data: bytes | memoryview) -> None:
        """Replace the state with one :meth:`snapshot` produced."""
        ...

    def apply(self, event: Event) -> None:
        """Apply one stored event (called in log order)."""
        ...


EventMapper = Callable[[Event], bytes | None]
"""A stored event → the JSON document the aggregates apply (``None``: not for them)."""

MESSAGE_TYPES: Mapping[str, str] = {
    "application": "lendgate.v1.ApplicationEvent",
}
"""The ``lendgate.v1`` message type of each event ``kind`` the default mapper decodes."""


def document_mapper(
    message_types: Mapping[str, str] = MESSAGE_TYPES,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> EventMapper:
    """The default mapper: decode the payload as its kind's message, as a JSON document.

    ``transform`` reshapes the decoded document into the attributes the definitions read
    (the scoring service's mapping); without it the document is applied as decoded.
    """

    def mapper(event: Event) -> bytes | None:
        message_type = message_types.get(event.kind)
        if message_type is None:
            return None
        document = decode_document(message_type, event.payload)
        if transform is not None:
            document = transform(document)
        return json.dumps(document, separators=(",", ":")).encode()

    return mapper


class AggregateStateMachine:
    """The Rust aggregates as a :class:`StateMachine`."""

    def __init__(self, definitions: Definitions, mapper: EventMapper | None = None) -> None:
        self._definitions = definitions
        self._mapper = mapper or document_mapper()
        self.aggregates = AggregateStore(definitions)

    def snapshot(self) -> bytes:
        """The aggregates' own versioned binary snapshot."""
        return self.aggregates.snapshot()

    def restore(self, data: bytes | memoryview) -> None:
        """Rebuild the aggregates from a snapshot taken with the same definitions."""
        self.aggregates = AggregateStore.restore(self._definitions, data)

    def apply(self, event: Event) -> None:
        """Map the event to its document and apply it (events not for the aggregates: skip)."""
        document = self._mapper(event)
        if document is not None:
            self.aggregates.apply(document)


@dataclass(frozen=True)
class RecoveryReport:
    """What :meth:`StateKeeper.recover` did and how long each part took."""

    snapshot_position: int
    position: int
    replayed: int
    load_snapshot_s: float
    restore_s: float
    replay_s: float


class StateKeeper:
    """Keeps a :class:`StateMachine` in step with the log, with periodic snapshots."""

    def __init__(
        self,
        store: EventLog,
        machine: StateMachine,
        *,
        every_events: int = 100_000,
        every_seconds: float = 300.0,
        on_error: Callable[[Event, Exception], None] | None = None,
    ) -> None:
        self.store = store
        self.machine = machine
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.position = 0
        self.snapshot_position = 0
        self._since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self._lock = asyncio.Lock()
        self._snapshotting: asyncio.Task[None] | None = None
        self._on_error = on_error or _skip

    async def recover(self, *, until: int | None = None) -> RecoveryReport:
        """Restore the latest snapshot and replay the log after it (up to ``until``)."""
        async with self._lock:
            t0 = time.perf_counter()
            snapshot = await self.store.snapshots.load_latest()
            t1 = time.perf_counter()
            if snapshot is not None and (until is None or snapshot.position <= until):
                await asyncio.to_thread(self.machine.restore, snapshot.data)
                self.position = self.snapshot_position = snapshot.position
            t2 = time.perf_counter()
            replayed = 0
            async for event in self.store.snapshots.events_after(self.position):
                if until is not None and event.seq > until:
                    break
                self._apply_one(event)
                replayed += 1
            t3 = time.perf_counter()
            self._since_snapshot = replayed
            self._last_snapshot = time.monotonic()
            return RecoveryReport(
                self.snapshot_position, self.position, replayed, t1 - t0, t2 - t1, t3 - t2
            )

    async def apply(self, event: Event) -> None:
        """Apply one event appended after :attr:`position` (events must come in log order)."""
        async with self._lock:
            if event.seq <= self.position:
                return  # already in the state (a retry, or replayed at recovery)
            self._apply_one(event)
        self._maybe_snapshot()

    async def follow(self, *, poll_s: float = 0.05, page: int = 5000) -> None:
        """Tail the log forever, applying each new event (cancel the task to stop)."""
        while True:
            events = await self.store.events_page(self.position, page)
            if events:
                async with self._lock:
                    for event in events:
                        if event.seq > self.position:
                            self._apply_one(event)
                self._maybe_snapshot()
            if len(events) < page:
                await asyncio.sleep(poll_s)

    async def snapshot_now(self) -> int:
        """Take and store a snapshot of the state now; its position."""
        async with self._lock:
            position = self.position
            data = await asyncio.to_thread(self.machine.snapshot)
            self._since_snapshot = 0
            self._last_snapshot = time.monotonic()
        await self.store.snapshots.save(position, data)
        self.snapshot_position = position
        return position

    async def aclose(self) -> None:
        """Wait for a background snapshot in progress."""
        if self._snapshotting is not None:
            with contextlib.suppress(Exception):
                await self._snapshotting

    def _apply_one(self, event: Event) -> None:
        try:
            self.machine.apply(event)
        except Exception as exc:  # refused live (late, malformed): refused again at replay
            self._on_error(event, exc)
        self.position = event.seq
        self._since_snapshot += 1

    def _maybe_snapshot(self) -> None:
        due = self._since_snapshot >= self.every_events or (
            self._since_snapshot > 0
            and time.monotonic() - self._last_snapshot >= self.every_seconds
        )
        if due and (self._snapshotting is None or self._snapshotting.done()):
            self._snapshotting = asyncio.get_running_loop().create_task(self._background())

    async def _background(self) -> None:
        try:
            await self.snapshot_now()
        except Exception:
            log.exception("background snapshot failed; the next one retries")


def _skip(event: Event, exc: Exception) -> None:
    """The default for an event the state refuses: it changed nothing live either; skip it."""
    log.debug("event %d not applied: %s", event.seq, exc)


def answers(machine: AggregateStateMachine, probes: list[bytes]) -> list[Any]:
    """The aggregates' answers to probe documents (``evaluate``: the state is unchanged)."""
    return [machine.aggregates.evaluate(probe) for probe in probes]
