"""Group commit: one writer thread batches writes and acknowledges them after COMMIT.

Callers enqueue writes and get a :class:`concurrent.futures.Future` (``asyncio.wrap_future``
makes it awaitable without blocking the event loop). The writer takes the first queued
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

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from lendgate.errors import InvalidArgumentError, LendgateError, UnavailableError
from lendgate.store.backends import Backend, StoreOpenError, Tx
from lendgate.store.interface import EventAck, NewEvent
from lendgate.store.settings import StoreSettings

log = logging.getLogger(__name__)

OpFn = Callable[[Tx, int], bytes]
"""A write: runs inside the batch's transaction with the commit-time clock (µs)."""


@dataclass
class _EventWrite:
    event: NewEvent
    received_at_us: int
    future: Future[EventAck] = field(default_factory=Future)


@dataclass
class _OpWrite:
    request_id: str | None
    operation: str
    fn: OpFn
    future: Future[bytes] = field(default_factory=Future)


_Write = _EventWrite | _OpWrite
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
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._tx: Tx | None = None
        self._retry_at = 0.0
        self._backoff_s = 0.05
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lendgate-store-writer", daemon=True)

    def start(self, tx: Tx) -> None:
        """Start the writer thread on an open connection."""
        self._tx = tx
        self._thread.start()

    def submit_events(self, events: Sequence[NewEvent]) -> list[Future[EventAck]]:
        """Enqueue event appends; each future resolves after its batch commits."""
        received = now_us()
        writes = [_EventWrite(_checked(event), received) for event in events]
        for write in writes:
            self._put(write)
        return [write.future for write in writes]

    def submit(self, request_id: str | None, operation: str, fn: OpFn) -> Future[bytes]:
        """Enqueue one operation, idempotent on ``request_id`` unless that is ``None``."""
        if request_id is not None and not request_id:
            raise InvalidArgumentError("must not be empty", field="request_id")
        write = _OpWrite(request_id, operation, fn)
        self._put(write)
        return write.future

    def _put(self, write: _Write) -> None:
        if self._closed:
            raise UnavailableError("the store is closed")
        self._queue.put(write)

    def close(self) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join()
        if self._tx is not None:
            with contextlib.suppress(Exception):
                self._tx.raw.close()
            self._tx = None

    # --- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            batch: list[_Write] = [item]
            deadline = time.monotonic() + self._delay_s
            while len(batch) < self._max_batch:
                timeout = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=timeout)
                        if timeout > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            live = [w for w in batch if w.future.set_running_or_notify_cancel()]
            if live:
                self._commit(live)
        # Writes that raced with close(): refuse them rather than leave callers hanging.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(UnavailableError("the store is closed"))

    def _connection(self) -> Tx:
        if self._tx is not None:
            return self._tx
        if time.monotonic() < self._retry_at:
            raise UnavailableError("the database is unreachable; reconnecting")
        try:
            self._tx = self._backend.connect_writer()
        except StoreOpenError as exc:
            self._retry_at = time.monotonic() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, 2.0)
            raise UnavailableError(f"the database is unreachable: {exc}") from exc
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
            results = self._apply(tx, batch)
            tx.execute("COMMIT")
        except BaseException as exc:
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
        for write, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                write.future.set_exception(result)
            else:
                write.future.set_result(result)  # type: ignore[arg-type]

    def _apply(self, tx: Tx, batch: list[_Write]) -> list[object]:
        results: list[object] = [None] * len(batch)
        events = [(i, w) for i, w in enumerate(batch) if isinstance(w, _EventWrite)]
        if events:
            acks = self._backend.insert_events(
                tx, [w.event for _, w in events], [w.received_at_us for _, w in events]
            )
            for (i, _), ack in zip(events, acks, strict=True):
                results[i] = ack
        clock = now_us()
        for i, write in enumerate(batch):
            if isinstance(write, _OpWrite):
                try:
                    results[i] = _run_op(tx, write, clock)
                except LendgateError as exc:
                    results[i] = exc
        return results


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
    for write in batch:
        write.future.set_exception(exc)


def _checked(event: NewEvent) -> NewEvent:
    if not event.request_id:
        raise InvalidArgumentError("must not be empty", field="request_id")
    if not isinstance(event.payload, bytes):
        raise InvalidArgumentError("must be bytes", field="payload")
    return event
