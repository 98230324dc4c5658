"""Group commit: one writer thread batches writes and acknowledges them after COMMIT.

Callers on an event loop enqueue writes and await an :class:`asyncio.Future` (never
blocking the loop); other threads get a :class:`concurrent.futures.Future`. After a commit
the writer settles all the asyncio futures of one loop with a single
``call_soon_threadsafe``, so the per-write cost on the loop stays a few microseconds.
The writer takes the first queued
write, waits at most ``commit_delay_ms`` for more (up to ``max_batch``), runs them all in
one transaction, commits once, and only then resolves every future. One fsync is shared by
the whole batch, which is what lets a single disk take tens of thousands of durable
writes per second.

A failing write must not fail its neighbours: a domain error inside one operation is
rolled back to that operation's savepoint; any other error rolls the batch back and
replays its writes one per transaction, so only the culprit fails. A lost connection fails
the batch with :class:`~lendgate.errors.UnavailableError` (nothing acknowledged was
uncommitted) and the writer reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from lendgate.errors import InvalidArgumentError, LendgateError, UnavailableError
from lendgate.store import matchkeys
from lendgate.store.backends import Backend, EventRow, StoreOpenError, Tx
from lendgate.store.interface import EventAck, NewEvent
from lendgate.store.settings import StoreSettings

log = logging.getLogger(__name__)

OpFn = Callable[[Tx, int], bytes]
"""A write: runs inside the batch's transaction with the commit-time clock (µs)."""


Waiter = Future[Any] | asyncio.Future[Any]
"""Who is told the outcome of a write: a thread's future or an event loop's."""


@dataclass(slots=True)
class _EventWrite:
    row: EventRow
    keys: Sequence[tuple[str, str]]
    future: Waiter


@dataclass(slots=True)
class _OpWrite:
    request_id: str | None
    operation: str
    fn: OpFn
    future: Waiter


@dataclass(slots=True)
class _Fence:
    future: Waiter


_Write = _EventWrite | _OpWrite | _Fence
_STOP = object()


def now_us() -> int:
    """Wall-clock microseconds since the Unix epoch."""
    return time.time_ns() // 1000


class GroupCommitWriter:
    """The single writer of one store (see the module docstring)."""

    def __init__(self, backend: Backend, settings: StoreSettings) -> None:
        self._backend = backend
        self._delay_s = settings.commit_delay_ms / 1000.0
        self._max_batch = max(1, settings.max_batch)
        # A deque and an Event rather than a queue.Queue: the writer takes a whole batch in
        # one pass (popleft is ~50 ns; a timed Queue.get is ~1 µs per write).
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._tx: Tx | None = None
        self._retry_at = 0.0
        self._backoff_s = 0.05
        self._closed = False
        self._last_seq = 0  # highest log position committed so far (set at start)
        self.key_backlog = matchkeys.KeyBacklog()
        self.commits = 0
        """Transactions committed so far (with :attr:`committed_writes`: the mean batch)."""
        self.committed_writes = 0
        self._thread = threading.Thread(target=self._run, name="lendgate-store-writer", daemon=True)

    def start(self, tx: Tx) -> None:
        """Start the writer thread on an open connection."""
        self._tx = tx
        row = tx.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        self._last_seq = int(row[0])
        self._thread.start()

    def submit_event(self, event: NewEvent) -> asyncio.Future[EventAck]:
        """Enqueue one event append from a coroutine; the future resolves after its commit."""
        future: asyncio.Future[EventAck] = asyncio.get_running_loop().create_future()
        self._put(_EventWrite(_row(event, now_us()), event.keys, future))
        return future

    def submit_events(self, events: Sequence[NewEvent]) -> list[asyncio.Future[EventAck]]:
        """Enqueue event appends from a coroutine; each future resolves after its commit."""
        loop = asyncio.get_running_loop()
        received = now_us()
        writes = [_EventWrite(_row(e, received), e.keys, loop.create_future()) for e in events]
        if self._closed:
            raise UnavailableError("the store is closed")
        self._queue.extend(writes)  # all or none: a refused event enqueues nothing
        if not self._wake.is_set():
            self._wake.set()
        return [w.future for w in writes]  # type: ignore[misc]

    def submit(self, request_id: str | None, operation: str, fn: OpFn) -> asyncio.Future[bytes]:
        """Enqueue one operation from a coroutine (idempotent on ``request_id`` if given)."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._put(_OpWrite(_checked_id(request_id), operation, fn, future))
        return future

    def submit_fence(self) -> asyncio.Future[int]:
        """Enqueue a fence from a coroutine: it resolves once every write queued before it
        has been committed (or has failed), to the highest log position among the events
        appended before it (the last committed position when there were none)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._put(_Fence(future))
        return future

    def submit_blocking(self, request_id: str | None, operation: str, fn: OpFn) -> Future[bytes]:
        """Enqueue one operation from a plain thread (retention, scripts)."""
        future: Future[bytes] = Future()
        self._put(_OpWrite(_checked_id(request_id), operation, fn, future))
        return future

    def _put(self, write: _Write) -> None:
        if self._closed:
            raise UnavailableError("the store is closed")
        self._queue.append(write)
        if not self._wake.is_set():
            self._wake.set()

    def close(self) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.append(_STOP)
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._tx is not None:
            with contextlib.suppress(Exception):
                self._tx.raw.close()
            self._tx = None

    # --- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        pending, wake, max_batch = self._queue, self._wake, self._max_batch
        stopping = False
        while not stopping:
            if not pending:
                wake.wait()
            wake.clear()  # before taking: a write appended after this sets it again
            batch: list[_Write] = []
            deadline = time.monotonic() + self._delay_s
            while True:
                while pending and len(batch) < max_batch:
                    item = pending.popleft()
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                if stopping or len(batch) >= max_batch:
                    break
                timeout = deadline - time.monotonic()
                if timeout <= 0 or not wake.wait(timeout):
                    break
                wake.clear()
            live = [w for w in batch if _still_wanted(w.future)]
            if live:
                self._commit(live)
        # Writes that raced with close(): refuse them rather than leave callers hanging.
        while pending:
            item = pending.popleft()
            if item is not _STOP and _still_wanted(item.future):
                _settle([item], [UnavailableError("the store is closed")])

    def _connection(self) -> Tx:
        if self._tx is not None:
            return self._tx
        if time.monotonic() < self._retry_at:
            raise UnavailableError("the database is unreachable; reconnecting")
        try:
            self._tx = self._backend.connect_writer()
        except StoreOpenError as exc:
            self._backend.outage = True
            self._retry_at = time.monotonic() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, 2.0)
            raise UnavailableError(f"the database is unreachable: {exc}") from exc
        self._backend.outage = False
        self._backoff_s = 0.05
        log.info("store writer reconnected")
        return self._tx

    def _commit(self, batch: list[_Write]) -> None:
        try:
            tx = self._connection()
        except UnavailableError as exc:
            _fail(batch, exc)
            return
        try:
            self._backend.begin(tx)
            results, last_seq = self._apply(tx, batch)
            tx.execute("COMMIT")
        except BaseException as exc:
            self.key_backlog.rollback()
            with contextlib.suppress(Exception):
                tx.execute("ROLLBACK")
            if self._backend.is_disconnect(exc):
                log.warning("store writer lost its connection: %s", exc)
                with contextlib.suppress(Exception):
                    tx.raw.close()
                self._tx = None
                _fail(batch, UnavailableError("the database connection was lost"))
            elif len(batch) > 1:
                for write in batch:  # isolate the write that broke the batch
                    self._commit([write])
            else:
                _fail(batch, exc)
            return
        self.key_backlog.commit()
        self._last_seq = last_seq
        self.commits += 1
        self.committed_writes += len(batch)
        _settle(batch, results)

    def _apply(self, tx: Tx, batch: list[_Write]) -> tuple[Sequence[object], int]:
        """Run a batch inside the open transaction: its results in batch order and the
        highest log position once it commits.

        All the batch's events are inserted first, in one bulk statement, then the other
        operations run in queue order (they see the events); a fence resolves to the
        highest position among the events queued before it.
        """
        events = [w for w in batch if type(w) is _EventWrite]
        acks: list[EventAck] = []
        last = self._last_seq
        if events:
            acks = self._backend.insert_events(tx, [w.row for w in events])
            self.key_backlog.stage_many(
                (ack.seq, w.keys) for ack, w in zip(acks, events, strict=True) if not ack.duplicate
            )
            last = max(last, *(ack.seq for ack in acks))
            if len(events) == len(batch):  # the common batch: appends only
                return acks, last
        results: list[object] = []
        next_ack = iter(acks).__next__
        clock = now_us()
        position = self._last_seq
        for write in batch:
            if isinstance(write, _EventWrite):
                ack = next_ack()
                results.append(ack)
                position = max(position, ack.seq)
            elif isinstance(write, _Fence):
                results.append(position)
            else:
                try:
                    results.append(_run_op(tx, write, clock))
                except LendgateError as exc:
                    results.append(exc)
        return results, last


def _run_op(tx: Tx, write: _OpWrite, clock: int) -> bytes:
    if write.request_id is not None:
        row = tx.execute(
            "SELECT operation, response FROM idempotency WHERE request_id = ?",
            (write.request_id,),
        ).fetchone()
        if row is not None:
            if row[0] != write.operation:
                raise InvalidArgumentError(
                    f"request_id was first used for {row[0]}, not {write.operation}",
                    field="request_id",
                    reason="REQUEST_ID_REUSED",
                )
            return bytes(row[1])
    tx.execute("SAVEPOINT op")
    try:
        response = write.fn(tx, clock)
        if write.request_id is not None:
            tx.execute(
                "INSERT INTO idempotency (request_id, operation, response, created_at_us)"
                " VALUES (?, ?, ?, ?)",
                (write.request_id, write.operation, response, clock),
            )
    except LendgateError:
        tx.execute("ROLLBACK TO SAVEPOINT op")
        tx.execute("RELEASE SAVEPOINT op")
        raise
    tx.execute("RELEASE SAVEPOINT op")
    return response


def _fail(batch: Sequence[_Write], exc: BaseException) -> None:
    _settle(batch, [exc] * len(batch))


def _still_wanted(future: Waiter) -> bool:
    """Start a thread's future (False if it was cancelled); loop futures are checked later."""
    return type(future) is not Future or future.set_running_or_notify_cancel()


def _settle(batch: Sequence[_Write], results: Sequence[object]) -> None:
    """Resolve each write's future; one thread-safe call per event loop, not per write."""
    by_loop: dict[asyncio.AbstractEventLoop, tuple[list[Any], list[object]]] = {}
    for write, result in zip(batch, results, strict=True):
        future = write.future
        if isinstance(future, Future):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
            continue
        loop = future.get_loop()
        pair = by_loop.get(loop)
        if pair is None:
            pair = by_loop[loop] = ([], [])
        pair[0].append(future)
        pair[1].append(result)
    for loop, (futures, values) in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop has closed: no one waits
            loop.call_soon_threadsafe(_resolve, futures, values)


def _resolve(futures: list[asyncio.Future[Any]], results: list[object]) -> None:
    for future, result in zip(futures, results, strict=True):
        if future.done():  # cancelled by its caller; the write itself may have committed
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


def _checked_id(request_id: str | None) -> str | None:
    if request_id is not None and not request_id:
        raise InvalidArgumentError("must not be empty", field="request_id")
    return request_id


def _row(event: NewEvent, received_at_us: int) -> EventRow:
    """The event's row, checked and encoded on the caller's side of the queue."""
    if not event.request_id:
        raise InvalidArgumentError("must not be empty", field="request_id")
    if not isinstance(event.payload, bytes):
        raise InvalidArgumentError("must be bytes", field="payload")
    return (
        event.request_id,
        event.partner_id,
        event.kind,
        event.subject_id,
        event.event_time_us,
        received_at_us,
        event.payload,
        event.response,
        matchkeys.encode_checked(event.keys),
    )
