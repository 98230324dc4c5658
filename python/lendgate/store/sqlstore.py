"""The :class:`~lendgate.store.interface.Store` over SQL, shared by SQLite and PostgreSQL.

Writes are closures run by the group-commit writer inside its transaction; reads run on a
small thread pool with their own connections. The SQL here is the common subset of both
dialects (``ON CONFLICT``, ``RETURNING``, savepoints); what differs lives in
``backends.py`` and the migrations.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg

from lendgate.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from lendgate.store import codec, matchkeys, migrations
from lendgate.store.backends import Backend, StoreOpenError, Tx
from lendgate.store.interface import (
    DEFINITION_KINDS,
    AuctionBooks,
    AuctionDealRow,
    AuctionKeyRow,
    AuctionLedgerRow,
    AuctionParticipantRow,
    AuctionRow,
    AuctionStateRow,
    Deal,
    DefinitionKind,
    DefinitionVersion,
    Event,
    EventAck,
    Incident,
    IncidentComment,
    LedgerTransaction,
    ModelRecord,
    NewEvent,
    Posting,
    PurgeResult,
    Report,
    Snapshot,
)
from lendgate.store.keyindex import KeyIndex, indexed_through
from lendgate.store.settings import StoreSettings
from lendgate.store.writer import GroupCommitWriter, OpFn, now_us

T = TypeVar("T")
log = logging.getLogger(__name__)

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_US_PER_DAY = 86_400 * 1_000_000
_SNAPSHOTS_KEPT = 2
SNAPSHOT_PART_BYTES = 2**20
"""Largest piece of a snapshot stored as one value. Each piece is one write of the
writer's queue, so this bounds how long a snapshot being stored holds the appends behind
it (a 256 MiB piece held them for seconds; 1 MiB is a few milliseconds)."""
_SNAPSHOT_PARTS_PER_DELETE = 4
"""Parts of a dropped snapshot deleted per write, for the same reason."""
SNAPSHOT_WRITE_SHARE = 0.25
"""At most this share of the time a paced snapshot (``save(..., paced=True)``: the
background snapshots of a serving process) is being stored goes to writing its parts:
after a part that took ``t`` seconds, the next one waits ``t * (1 / share - 1)``.
Storing a part is the writer's CPU and the disk's bandwidth, both shared with the
appends; written back to back, the ~200 parts of a 1,000,000-event state took most of a
core for ~2 s, and a server at full load fell a second behind. Paced, the same snapshot
takes ~4x as long to be stored and the checks do not notice."""
_DB_ERRORS = (sqlite3.Error, psycopg.Error)

_EVENT_COLUMNS = (
    "seq, request_id, partner_id, kind, subject_id, event_time_us, received_at_us,"
    " payload, response, match_keys"
)
_DEF_COLUMNS = "kind, name, version, status, body, author, reason, created_at_us, restored_from"


class SqlStore:
    """A store on one database (see :class:`lendgate.store.interface.Store`)."""

    def __init__(self, backend: Backend, settings: StoreSettings) -> None:
        self.backend = backend.name
        self.settings = settings
        self._db = backend
        self._readers = ThreadPoolExecutor(
            max_workers=max(1, settings.pool_size), thread_name_prefix="lendgate-store-read"
        )
        self._writer = GroupCommitWriter(backend, settings)
        self._keys = KeyIndex(backend, self._writer.key_backlog)
        self._stopping = threading.Event()
        self._retention: threading.Thread | None = None
        self._indexer: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self.snapshots = SqlSnapshots(self)

    def open(self) -> None:
        """Connect, apply migrations, start the writer and the retention thread."""
        tx = self._db.connect_writer()
        try:
            migrations.apply(tx)
        except StoreOpenError:
            tx.raw.close()
            raise
        except Exception as exc:
            tx.raw.close()
            raise StoreOpenError(f"cannot migrate the {self.backend} database: {exc}") from exc
        try:
            store_id = str(tx.execute("SELECT store_id FROM store_identity").fetchone()[0])
            log_end = int(tx.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
            self._keys.open(store_id, log_end)
        except StoreOpenError:
            tx.raw.close()
            raise
        self._writer.start(tx)
        self._indexer = threading.Thread(
            target=self._indexer_loop, name="lendgate-store-indexer", daemon=True
        )
        self._indexer.start()
        if self.settings.retention_interval_s > 0 and self.settings.retention_days > 0:
            self._retention = threading.Thread(
                target=self._retention_loop, name="lendgate-store-retention", daemon=True
            )
            self._retention.start()
        if self.backend == "sqlite" and self.settings.checkpoint_interval_s > 0:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="lendgate-store-checkpoint", daemon=True
            )
            self._checkpointer.start()

    async def aclose(self) -> None:
        """Flush pending writes, stop background work and close connections."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Blocking form of :meth:`aclose` (for scripts and shutdown hooks)."""
        self._stopping.set()
        for thread in (self._retention, self._indexer, self._checkpointer):
            if thread is not None:
                thread.join()
        self._writer.close()
        self._readers.shutdown(wait=True)
        self._keys.close()
        self._db.close()

    # --- plumbing --------------------------------------------------------------------

    async def _write(self, request_id: str | None, operation: str, fn: OpFn) -> bytes:
        return await self._writer.submit(request_id, operation, fn)

    async def _read(self, fn: Callable[[Tx], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _run_read(self, fn: Callable[[Tx], T]) -> T:
        with self._db.reader() as tx:
            return fn(tx)

    def read_blocking(self, fn: Callable[[Tx], T]) -> T:
        """Run a read on the calling thread (a plain thread or a script, not the loop)."""
        return self._run_read(fn)

    def write_blocking(self, operation: str, fn: OpFn) -> bytes:
        """Run one write through the writer from a plain thread; returns after commit."""
        return self._writer.submit_blocking(None, operation, fn).result()

    # --- the event log -----------------------------------------------------------------

    async def append_event(self, event: NewEvent) -> EventAck:
        """Append one event (idempotent on ``request_id``); returns after commit."""
        return await self._writer.submit_event(event)

    async def append_events(self, events: Sequence[NewEvent]) -> list[EventAck]:
        """Append several events; one ack per event, in order."""
        return list(await asyncio.gather(*self._writer.submit_events(events)))

    def fence(self) -> asyncio.Future[int]:
        """A future for the log position that covers every event appended so far.

        Enqueued at the call (not at the first await), behind every write submitted
        before it: it resolves once those have committed (or failed), to the highest log
        position among them, or the last committed position when there were none. Whoever
        changed in-memory state for each event it appended, synchronously with the append,
        labels a snapshot taken at the call with this position.
        """
        return self._writer.submit_fence()

    async def get_event(self, seq: int) -> Event:
        """The event at ``seq`` with its keys; ``NotFoundError`` if absent."""

        def read(tx: Tx) -> Event:
            row = tx.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,))
            found = row.fetchone()
            if found is None:
                raise NotFoundError(f"event {seq} not found")
            return _event(found)

        return await self._read(read)

    async def get_event_by_request(self, request_id: str) -> Event | None:
        """The event appended with ``request_id``, or ``None``."""

        def read(tx: Tx) -> Event | None:
            row = tx.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE request_id = ?", (request_id,)
            ).fetchone()
            return None if row is None else _event(row)

        return await self._read(read)

    async def events_by_key(
        self, key_kind: str, key_value: str, *, since_us: int = 0, limit: int = 1000
    ) -> list[Event]:
        """Events carrying the match key, newest first, with ``event_time_us >= since_us``."""
        key = (key_kind, key_value)

        def read(tx: Tx) -> list[Event]:
            # The index covers seq <= through; the few newer events are scanned directly.
            # Reading `through` first keeps both parts exact even while the indexer advances.
            keys = self._keys.schema
            through = indexed_through(tx, keys)
            # LIKE narrows the scan in the engine (a superset: SQLite's LIKE ignores ASCII
            # case); the decoded keys decide.
            hits = [
                int(seq)
                for seq, text in tx.execute(
                    "SELECT seq, match_keys FROM events WHERE seq > ? AND event_time_us >= ?"
                    " AND match_keys LIKE ? ESCAPE '!' ORDER BY seq DESC",
                    (through, since_us, matchkeys.like_pattern(key_kind, key_value)),
                ).fetchall()
                if key in matchkeys.decode(text)
            ][:limit]
            # A row may have left with retention since; skip it.
            rows = [_row_by_seq(tx, seq) for seq in hits]
            tail = [_event(row) for row in rows if row is not None]
            rows = tx.execute(
                f"SELECT {_prefixed('e.')} FROM {keys}event_keys k"
                " JOIN events e ON e.seq = k.event_seq"
                " WHERE k.key_hash = ? AND k.event_seq <= ? AND e.event_time_us >= ?"
                " ORDER BY k.event_seq DESC LIMIT ?",
                (matchkeys.key_hash(key_kind, key_value), through, since_us, limit),
            ).fetchall()
            indexed = [e for e in map(_event, rows) if key in e.keys]  # drop hash collisions
            return (tail + indexed)[:limit]

        return await self._read(read)

    async def events_by_subject(self, partner_id: str, subject_id: str) -> list[Event]:
        """Every event about one application/transaction, in log order."""

        def read(tx: Tx) -> list[Event]:
            rows = tx.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE partner_id = ? AND subject_id = ?"
                " ORDER BY seq",
                (partner_id, subject_id),
            ).fetchall()
            return [_event(r) for r in rows]

        return await self._read(read)

    async def last_seq(self) -> int:
        """The highest committed log position (0 when the log is empty)."""
        return await self._read(
            lambda tx: int(tx.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
        )

    async def events_page(self, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events with ``seq > after``, in log order, with their keys."""

        def read(tx: Tx) -> list[Event]:
            rows = tx.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
            return [_event(r) for r in rows]

        return await self._read(read)

    # --- first answers of requests (idempotency of API calls) --------------------------

    async def remember_answer(self, request_id: str, operation: str, answer: bytes) -> bytes:
        """Keep ``answer`` as the first answer to ``request_id`` in the idempotency table
        (purged with the events' retention); returns the answer kept."""
        return await self._write(request_id, operation, lambda tx, clock: answer)

    async def recall_answer(self, request_id: str) -> tuple[str, bytes] | None:
        """``(operation, answer)`` kept for ``request_id``, or ``None``."""

        def read(tx: Tx) -> tuple[str, bytes] | None:
            row = tx.execute(
                "SELECT operation, response FROM idempotency WHERE request_id = ?",
                (request_id,),
            ).fetchone()
            return None if row is None else (str(row[0]), bytes(row[1]))

        return await self._read(read)

    # --- reports -----------------------------------------------------------------------

    async def put_report(self, request_id: str, report: Report) -> Report:
        """Store a report; a retry returns the first one."""

        def op(tx: Tx, clock: int) -> bytes:
            if tx.execute(
                "SELECT 1 FROM reports WHERE report_id = ?", (report.report_id,)
            ).fetchone():
                raise AlreadyExistsError(f"report {report.report_id!r} exists")
            stored = Report(
                report.report_id,
                report.kind,
                report.partner_id,
                report.subject_id,
                report.created_at_us or clock,
                report.payload,
            )
            tx.execute(
                "INSERT INTO reports (report_id, kind, partner_id, subject_id, created_at_us,"
                " payload) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    stored.report_id,
                    stored.kind,
                    stored.partner_id,
                    stored.subject_id,
                    stored.created_at_us,
                    stored.payload,
                ),
            )
            return codec.dumps(stored)

        return codec.loads(await self._write(request_id, "put_report", op), Report)

    async def get_report(self, report_id: str) -> Report:
        """The report named ``report_id``; ``NotFoundError`` if absent."""

        def read(tx: Tx) -> Report:
            row = tx.execute(
                "SELECT report_id, kind, partner_id, subject_id, created_at_us, payload"
                " FROM reports WHERE report_id = ?",
                (report_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"report {report_id!r} not found")
            return Report(row[0], row[1], row[2], row[3], int(row[4]), bytes(row[5]))

        return await self._read(read)

    # --- versioned definitions ------------------------------------------------------------

    async def put_definition(
        self,
        request_id: str,
        kind: DefinitionKind,
        name: str,
        body: bytes,
        *,
        status: str,
        author: str,
        reason: str,
        expected_version: int | None = None,
    ) -> DefinitionVersion:
        """Create the next version of a definition (``expected_version`` is the etag)."""
        _check_kind(kind)
        if not name:
            raise InvalidArgumentError("must not be empty", field="name")

        def op(tx: Tx, clock: int) -> bytes:
            version = _bump(tx, kind, name, expected_version)
            stored = DefinitionVersion(kind, name, version, status, body, author, reason, clock)
            _insert_version(tx, stored)
            return codec.dumps(stored)

        data = await self._write(request_id, "put_definition", op)
        return codec.loads(data, DefinitionVersion)

    async def get_definition(
        self, kind: DefinitionKind, name: str, version: int | None = None
    ) -> DefinitionVersion:
        """A version of a definition (the latest by default); ``NotFoundError`` if absent."""
        return await self._read(lambda tx: _get_version(tx, kind, name, version))

    async def list_definition_versions(
        self, kind: DefinitionKind, name: str
    ) -> list[DefinitionVersion]:
        """Every version of one definition, oldest first."""

        def read(tx: Tx) -> list[DefinitionVersion]:
            rows = tx.execute(
                f"SELECT {_DEF_COLUMNS} FROM definition_versions WHERE kind = ? AND name = ?"
                " ORDER BY version",
                (kind, name),
            ).fetchall()
            return [_definition(r) for r in rows]

        return await self._read(read)

    async def list_definitions(self, kind: DefinitionKind) -> list[DefinitionVersion]:
        """The latest version of every definition of ``kind``, by name."""

        def read(tx: Tx) -> list[DefinitionVersion]:
            rows = tx.execute(
                f"SELECT {_prefixed('v.', _DEF_COLUMNS)} FROM definitions d"
                " JOIN definition_versions v ON v.kind = d.kind AND v.name = d.name"
                " AND v.version = d.latest_version WHERE d.kind = ? ORDER BY d.name",
                (kind,),
            ).fetchall()
            return [_definition(r) for r in rows]

        return await self._read(read)

    async def restore_definition(
        self,
        request_id: str,
        kind: DefinitionKind,
        name: str,
        version: int,
        *,
        author: str,
        reason: str,
        expected_version: int | None = None,
    ) -> DefinitionVersion:
        """Make a new version equal to ``version`` (body, status and, for lists, entries)."""
        _check_kind(kind)

        def op(tx: Tx, clock: int) -> bytes:
            old = _get_version(tx, kind, name, version)
            new_version = _bump(tx, kind, name, expected_version)
            stored = DefinitionVersion(
                kind, name, new_version, old.status, old.body, author, reason, clock, version
            )
            _insert_version(tx, stored)
            if kind == "list":
                live = set(_entries_at(tx, name, new_version - 1))
                target = set(_entries_at(tx, name, version))
                _change_entries(tx, name, new_version, target - live, live - target)
            return codec.dumps(stored)

        data = await self._write(request_id, "restore_definition", op)
        return codec.loads(data, DefinitionVersion)

    async def change_list_entries(
        self,
        request_id: str,
        list_name: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        author: str,
        reason: str,
        expected_version: int | None = None,
        distinct: bool = False,
    ) -> DefinitionVersion:
        """Add and remove entries of a list; the change is a new version of the list."""
        # A bulk import is a million values: de-duplicated on a worker thread, not on
        # the event loop the checks are served from (~0.3 s per million).
        if not distinct and len(add) + len(remove) > 10_000:
            add, remove = await asyncio.to_thread(_distinct_change, add, remove)
        elif not distinct:
            add, remove = _distinct_change(add, remove)

        def op(tx: Tx, clock: int) -> bytes:
            latest = _get_version(tx, "list", list_name, None)
            version = _bump(tx, "list", list_name, expected_version)
            stored = DefinitionVersion(
                "list", list_name, version, latest.status, latest.body, author, reason, clock
            )
            _insert_version(tx, stored)
            live = set(_entries_at(tx, list_name, version - 1))
            _change_entries(
                tx,
                list_name,
                version,
                [v for v in add if v not in live] if live else add,
                set(remove) & live,
            )
            return codec.dumps(stored)

        data = await self._write(request_id, "change_list_entries", op)
        return codec.loads(data, DefinitionVersion)

    async def list_entries(self, list_name: str, version: int | None = None) -> list[str]:
        """The entries of a list at ``version`` (the latest by default), sorted."""

        def read(tx: Tx) -> list[str]:
            at = _get_version(tx, "list", list_name, version).version
            return sorted(_entries_at(tx, list_name, at))

        return await self._read(read)

    async def list_contains(self, list_name: str, value: str) -> bool:
        """Whether ``value`` is in the latest version of the list."""
        return await self._read(
            lambda tx: (
                tx.execute(
                    "SELECT 1 FROM list_entries WHERE list_name = ? AND value = ?"
                    " AND removed_in IS NULL",
                    (list_name, value),
                ).fetchone()
                is not None
            )
        )

    # --- models ----------------------------------------------------------------------------

    async def put_model(
        self,
        request_id: str,
        name: str,
        artifact: bytes,
        *,
        metadata: Mapping[str, Any],
        author: str,
        status: str = "registered",
    ) -> ModelRecord:
        """Register the next version of a model with its artifact bytes."""
        meta = json.dumps(dict(metadata), sort_keys=True)
        digest = hashlib.sha256(artifact).hexdigest()

        def op(tx: Tx, clock: int) -> bytes:
            latest = tx.execute(
                "SELECT coalesce(max(version), 0) FROM models WHERE name = ?", (name,)
            ).fetchone()[0]
            record = ModelRecord(
                name, int(latest) + 1, status, author, clock, json.loads(meta), digest, artifact
            )
            tx.execute(
                "INSERT INTO models (name, version, status, author, created_at_us, metadata,"
                " sha256, artifact) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, record.version, status, author, clock, meta, digest, artifact),
            )
            return codec.dumps(record)

        return codec.loads(await self._write(request_id, "put_model", op), ModelRecord)

    async def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        """A model version (the latest by default); ``NotFoundError`` if absent."""

        def read(tx: Tx) -> ModelRecord:
            columns = "name, version, status, author, created_at_us, metadata, sha256, artifact"
            if version is None:
                row = tx.execute(
                    f"SELECT {columns} FROM models WHERE name = ? ORDER BY version DESC LIMIT 1",
                    (name,),
                ).fetchone()
            else:
                row = tx.execute(
                    f"SELECT {columns} FROM models WHERE name = ? AND version = ?",
                    (name, version),
                ).fetchone()
            if row is None:
                raise NotFoundError(f"model {name!r} version {version or 'latest'} not found")
            return ModelRecord(
                row[0],
                int(row[1]),
                row[2],
                row[3],
                int(row[4]),
                json.loads(row[5]),
                row[6],
                bytes(row[7]),
            )

        return await self._read(read)

    # --- incidents ------------------------------------------------------------------------

    async def create_incident(
        self,
        request_id: str,
        incident_id: str,
        payload: bytes,
        *,
        event_seq: int | None = None,
        status: str = "open",
        assignee: str = "",
    ) -> Incident:
        """Open an incident; ``AlreadyExistsError`` if ``incident_id`` is taken."""

        def op(tx: Tx, clock: int) -> bytes:
            if tx.execute(
                "SELECT 1 FROM incidents WHERE incident_id = ?", (incident_id,)
            ).fetchone():
                raise AlreadyExistsError(f"incident {incident_id!r} exists")
            tx.execute(
                "INSERT INTO incidents (incident_id, status, assignee, created_at_us,"
                " updated_at_us, event_seq, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (incident_id, status, assignee, clock, clock, event_seq, payload),
            )
            return codec.dumps(_incident(tx, incident_id))

        return codec.loads(await self._write(request_id, "create_incident", op), Incident)

    async def update_incident(
        self,
        request_id: str,
        incident_id: str,
        *,
        status: str | None = None,
        assignee: str | None = None,
    ) -> Incident:
        """Change an incident's status and/or assignee."""

        def op(tx: Tx, clock: int) -> bytes:
            current = _incident(tx, incident_id)
            tx.execute(
                "UPDATE incidents SET status = ?, assignee = ?, updated_at_us = ?"
                " WHERE incident_id = ?",
                (
                    current.status if status is None else status,
                    current.assignee if assignee is None else assignee,
                    clock,
                    incident_id,
                ),
            )
            return codec.dumps(_incident(tx, incident_id))

        return codec.loads(await self._write(request_id, "update_incident", op), Incident)

    async def add_incident_comment(
        self, request_id: str, incident_id: str, *, author: str, body: str
    ) -> Incident:
        """Append a comment to an incident; returns the incident with its comments."""

        def op(tx: Tx, clock: int) -> bytes:
            _incident(tx, incident_id)
            tx.execute(
                "INSERT INTO incident_comments (incident_id, author, created_at_us, body)"
                " VALUES (?, ?, ?, ?)",
                (incident_id, author, clock, body),
            )
            tx.execute(
                "UPDATE incidents SET updated_at_us = ? WHERE incident_id = ?",
                (clock, incident_id),
            )
            return codec.dumps(_incident(tx, incident_id))

        return codec.loads(await self._write(request_id, "add_incident_comment", op), Incident)

    async def get_incident(self, incident_id: str) -> Incident:
        """An incident with its comments; ``NotFoundError`` if absent."""
        return await self._read(lambda tx: _incident(tx, incident_id))

    # --- deals and the ledger -----------------------------------------------------------------

    async def record_deal(
        self, request_id: str, deal: Deal, postings: Sequence[Posting], *, memo: str = ""
    ) -> LedgerTransaction:
        """Store a deal and its settlement (ledger ``txn_id = deal_id``) atomically."""
        _check_postings(postings)
        if not _CURRENCY.match(deal.currency):
            raise InvalidArgumentError("must be an ISO 4217 code", field="currency")

        def op(tx: Tx, clock: int) -> bytes:
            if tx.execute("SELECT 1 FROM deals WHERE deal_id = ?", (deal.deal_id,)).fetchone():
                raise AlreadyExistsError(f"deal {deal.deal_id!r} exists")
            tx.execute(
                "INSERT INTO deals (deal_id, auction_id, seller_id, buyer_id, price_minor,"
                " currency, created_at_us, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    deal.deal_id,
                    deal.auction_id,
                    deal.seller_id,
                    deal.buyer_id,
                    deal.price_minor,
                    deal.currency,
                    deal.created_at_us or clock,
                    deal.payload,
                ),
            )
            return codec.dumps(_post(tx, deal.deal_id, postings, memo, clock, deal_id=deal.deal_id))

        data = await self._write(request_id, "record_deal", op)
        return codec.loads(data, LedgerTransaction)

    async def get_deal(self, deal_id: str) -> Deal:
        """A deal; ``NotFoundError`` if absent."""

        def read(tx: Tx) -> Deal:
            row = tx.execute(
                "SELECT deal_id, auction_id, seller_id, buyer_id, price_minor, currency,"
                " created_at_us, payload FROM deals WHERE deal_id = ?",
                (deal_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"deal {deal_id!r} not found")
            return Deal(
                row[0], row[1], row[2], row[3], int(row[4]), row[5], int(row[6]), bytes(row[7])
            )

        return await self._read(read)

    async def post_ledger(
        self, request_id: str, txn_id: str, postings: Sequence[Posting], *, memo: str = ""
    ) -> LedgerTransaction:
        """Post a balanced double-entry transaction (``InvalidArgumentError`` if unbalanced)."""
        _check_postings(postings)

        def op(tx: Tx, clock: int) -> bytes:
            return codec.dumps(_post(tx, txn_id, postings, memo, clock, deal_id=None))

        data = await self._write(request_id, "post_ledger", op)
        return codec.loads(data, LedgerTransaction)

    async def balance(self, account: str, currency: str) -> int:
        """An account's balance in minor units of ``currency``."""
        return await self._read(
            lambda tx: int(
                tx.execute(
                    "SELECT coalesce(sum(amount_minor), 0) FROM ledger_entries"
                    " WHERE account = ? AND currency = ?",
                    (account, currency),
                ).fetchone()[0]
            )
        )

    async def trial_balance(self) -> dict[str, int]:
        """Sum of every posting per currency; zero for each currency when books balance."""
        return await self._read(
            lambda tx: {
                currency: int(total)
                for currency, total in tx.execute(
                    "SELECT currency, sum(amount_minor) FROM ledger_entries GROUP BY currency"
                ).fetchall()
            }
        )

    # --- the auction's books ---------------------------------------------------------------

    async def append_auction_entries(self, rows: Sequence[AuctionLedgerRow]) -> None:
        """Append ledger entries; rows already stored (same sequence) are skipped."""
        await self.write_auction_state(rows)

    async def put_auction_deal(self, row: AuctionDealRow) -> None:
        """Insert or replace a deal's current state."""
        await self.write_auction_state([row])

    async def write_auction_state(self, rows: Sequence[AuctionStateRow]) -> None:
        """Write ``rows`` in order in one transaction (entries appended, the rest upserted)."""

        def op(tx: Tx, clock: int) -> bytes:
            for row in rows:
                _write_auction_row(tx, row)
            return b""

        await self._write(None, "write_auction_state", op)

    async def put_auction_settlement(self, settlement_id: str, payload: str) -> str:
        """Store a final settlement once; returns the stored one."""

        def op(tx: Tx, clock: int) -> bytes:
            tx.execute(
                "INSERT INTO auction_settlements (settlement_id, created_at_us, payload)"
                " VALUES (?, ?, ?) ON CONFLICT (settlement_id) DO NOTHING",
                (settlement_id, clock, payload),
            )
            row = tx.execute(
                "SELECT payload FROM auction_settlements WHERE settlement_id = ?",
                (settlement_id,),
            ).fetchone()
            return str(row[0]).encode()

        return (await self._write(None, "put_auction_settlement", op)).decode()

    async def auction_settlements(self) -> dict[str, str]:
        """Every final settlement by id."""
        return await self._read(_auction_settlements)

    def auction_books_blocking(self) -> AuctionBooks:
        """All deals, entries and settlements, read on the calling thread."""

        def read(tx: Tx) -> AuctionBooks:
            entries = tx.execute(
                "SELECT sequence, entry_type, currency, deal, reverses, description,"
                " post_time_us, postings FROM auction_ledger ORDER BY sequence"
            ).fetchall()
            deals = tx.execute(
                "SELECT deal_name, auction, seller, buyer, create_time_us, update_time_us,"
                " payload FROM auction_deals ORDER BY create_time_us, deal_name"
            ).fetchall()
            participants = tx.execute(
                "SELECT name, state, update_time_us, payload FROM auction_participants"
                " ORDER BY name"
            ).fetchall()
            auctions = tx.execute(
                "SELECT name, seller, state, open_time_us, update_time_us, payload"
                " FROM auction_auctions ORDER BY open_time_us, name"
            ).fetchall()
            keys = tx.execute(
                "SELECT signing_public_key, encryption_public_key, first_used_us"
                " FROM auction_coordinator_keys ORDER BY first_used_us"
            ).fetchall()
            return AuctionBooks(
                tuple(
                    AuctionLedgerRow(int(r[0]), r[1], r[2], r[3], int(r[4]), r[5], int(r[6]), r[7])
                    for r in entries
                ),
                tuple(
                    AuctionDealRow(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), bytes(r[6]))
                    for r in deals
                ),
                _auction_settlements(tx),
                tuple(
                    AuctionParticipantRow(r[0], int(r[1]), int(r[2]), bytes(r[3]))
                    for r in participants
                ),
                tuple(
                    AuctionRow(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), str(r[5]))
                    for r in auctions
                ),
                tuple(AuctionKeyRow(bytes(r[0]), bytes(r[1]), int(r[2])) for r in keys),
            )

        return self._run_read(read)

    # --- retention ---------------------------------------------------------------------------

    async def purge_expired(self, *, now_us: int | None = None) -> PurgeResult:
        """Delete events (and idempotency keys) older than the horizon, in small batches."""
        return await asyncio.to_thread(self.purge_expired_blocking, now_us=now_us)

    def purge_expired_blocking(self, *, now_us: int | None = None) -> PurgeResult:
        """Blocking form of :meth:`purge_expired`, used by the retention thread."""
        if self.settings.retention_days <= 0:
            return PurgeResult(0, 0)
        clock = _now() if now_us is None else now_us
        cutoff = clock - int(self.settings.retention_days * _US_PER_DAY)
        size = max(1, self.settings.retention_batch)
        events = keys = 0
        while not self._stopping.is_set():
            # Only indexed events: the keys of newer ones may still be on their way into
            # the index. Each batch is one small writer operation, so writers queue behind
            # it briefly; the index then drops the batch's key rows (if that fails, rows of
            # deleted events stay behind: look-ups join them with the log and skip them).
            key_rows: list[tuple[int, int]] = []
            future = self._writer.submit_blocking(
                None, "purge", _purge_batch(cutoff, size, self._keys.through(), key_rows)
            )
            removed_events, removed_keys = json.loads(future.result())
            self._keys.delete(key_rows)
            events += removed_events
            keys += removed_keys
            if removed_events < size and removed_keys < size:
                break
        return PurgeResult(events, keys, cutoff)

    def index_keys_blocking(self) -> int:
        """Index the match keys of every event appended so far; the events indexed.

        The background indexer does this every ``key_index_interval_s``, in transactions
        of at most ``key_index_batch`` events on the index's own connection (never the
        log's writer: see :mod:`lendgate.store.keyindex`).
        """
        total = 0
        size = max(1, self.settings.key_index_batch)
        while True:
            done = self._keys.catch_up(size)
            total += done
            if done < size or self._stopping.is_set():
                return total

    def _indexer_loop(self) -> None:
        while not self._stopping.wait(self.settings.key_index_interval_s):
            try:
                self.index_keys_blocking()
            except (UnavailableError, *_DB_ERRORS) as exc:
                # The next pass reconnects (PostgreSQL) and catches up from the log.
                log.warning("key indexing paused: %s", exc)
            except Exception:
                log.exception("key indexing failed")

    def _checkpoint_loop(self) -> None:
        """SQLite: copy the WAL's committed pages into the database file in the background
        (a PASSIVE checkpoint takes no write lock), so the checkpoint the writer itself runs
        when the WAL reaches its limit finds little left to copy — that one ran inside a
        commit and held every append for tens of milliseconds per 40 MB of WAL."""
        while not self._stopping.wait(self.settings.checkpoint_interval_s):
            try:
                with self._db.reader() as tx:
                    tx.execute("PRAGMA main.wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("background WAL checkpoint failed: %s", exc)

    def _retention_loop(self) -> None:
        while not self._stopping.wait(self.settings.retention_interval_s):
            try:
                self.purge_expired_blocking()
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("retention pass failed")


class SqlSnapshots:
    """Snapshots of the in-memory state and the log tail after them (rebuild hook)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._pause: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How a save waits between two parts (:data:`SNAPSHOT_WRITE_SHARE`)."""

    async def save(self, position: int, data: bytes, *, paced: bool = False) -> Snapshot:
        """Store ``data`` as the state after every event with ``seq <= position``.

        A snapshot larger than :data:`SNAPSHOT_PART_BYTES` is stored in parts, each one
        write of its own (appends are committed between them); it exists for readers
        only once its ``snapshots`` row, written last, has committed.
        """
        store = self._store
        part = SNAPSHOT_PART_BYTES
        view = memoryview(data)  # slices without copies (a snapshot may be several GB)
        pieces = [view[i : i + part] for i in range(part, len(data), part)]
        if pieces:

            def clear(tx: Tx, clock: int) -> bytes:
                # Re-saving a position replaces it: it is not readable until the end.
                tx.execute("DELETE FROM snapshots WHERE position = ?", (position,))
                tx.execute("DELETE FROM snapshot_parts WHERE position = ?", (position,))
                return b""

            await store._write(None, "save_snapshot", clear)
            pause = 1 / SNAPSHOT_WRITE_SHARE - 1 if paced else 0.0
            for number, piece in enumerate(pieces, 1):
                started = time.monotonic()
                await store._write(None, "save_snapshot", _snapshot_part(position, number, piece))
                if pause:
                    await self._pause((time.monotonic() - started) * pause)

        def op(tx: Tx, clock: int) -> bytes:
            tx.execute(
                "INSERT INTO snapshots (position, created_at_us, data, parts) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (position) DO UPDATE SET created_at_us = excluded.created_at_us,"
                " data = excluded.data, parts = excluded.parts",
                (position, clock, view[:part], len(pieces) + 1),
            )
            keep_from = tx.execute(
                "SELECT position FROM snapshots ORDER BY position DESC LIMIT 1 OFFSET ?",
                (_SNAPSHOTS_KEPT - 1,),
            ).fetchone()
            if keep_from is not None:
                tx.execute("DELETE FROM snapshots WHERE position < ?", (keep_from[0],))
            return codec.dumps(Snapshot(position, clock, b""))

        def drop_orphans(tx: Tx, clock: int) -> bytes:
            # Parts of dropped snapshots, and of a save that never finished: a few per
            # write, so the appends queued meanwhile are committed between them.
            deleted = tx.execute(
                "DELETE FROM snapshot_parts WHERE (position, part) IN (SELECT position, part"
                " FROM snapshot_parts WHERE position NOT IN (SELECT position FROM snapshots)"
                " LIMIT ?)",
                (_SNAPSHOT_PARTS_PER_DELETE,),
            )
            return str(max(deleted.rowcount, 0)).encode()

        stored = codec.loads(await store._write(None, "save_snapshot", op), Snapshot)
        while int(await store._write(None, "save_snapshot", drop_orphans)) > 0:
            pass
        return Snapshot(stored.position, stored.created_at_us, data)

    async def load_latest(self) -> Snapshot | None:
        """The snapshot with the highest position, or ``None`` when there is none."""

        def read(tx: Tx) -> Snapshot | None:
            heads = tx.execute(
                "SELECT position, created_at_us, parts FROM snapshots ORDER BY position DESC"
                " LIMIT ?",
                (_SNAPSHOTS_KEPT,),
            ).fetchall()
            for position, created, parts in heads:
                first = tx.execute("SELECT data FROM snapshots WHERE position = ?", (position,))
                # One buffer that grows part by part (in place: realloc moves pages, it
                # does not copy them); only one part at a time besides it. A snapshot
                # of 10M events is gigabytes: a list of parts then a join would touch
                # twice the memory, at about a second per gigabyte.
                data = bytearray(first.fetchone()[0])
                read = 1
                for number in range(1, int(parts)):
                    row = tx.execute(
                        "SELECT data FROM snapshot_parts WHERE position = ? AND part = ?",
                        (position, number),
                    ).fetchone()
                    if row is None:
                        break
                    data += row[0]
                    read += 1
                if read == int(parts):
                    return Snapshot(int(position), int(created), memoryview(data).toreadonly())
                log.warning("snapshot at position %d misses parts: using an older one", position)
            return None

        return await self._store._read(read)

    async def events_after(self, position: int, *, page_size: int = 5000) -> AsyncIterator[Event]:
        """Every event with ``seq > position`` in log order (read page by page)."""
        after = position
        while True:
            page = await self._store.events_page(after, page_size)
            for event in page:
                yield event
            if len(page) < page_size:
                return
            after = page[-1].seq


# --- helpers run inside a transaction ------------------------------------------------------


def _now() -> int:
    return now_us()


def _prefixed(prefix: str, columns: str = _EVENT_COLUMNS) -> str:
    return ", ".join(prefix + c.strip() for c in columns.split(","))


def _event(row: Sequence[Any]) -> Event:
    return Event(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        int(row[5]),
        int(row[6]),
        bytes(row[7]),
        None if row[8] is None else bytes(row[8]),
        matchkeys.decode(row[9]),
    )


def _check_kind(kind: str) -> None:
    if kind not in DEFINITION_KINDS:
        raise InvalidArgumentError(f"unknown definition kind {kind!r}", field="kind")


def _definition(row: Sequence[Any]) -> DefinitionVersion:
    return DefinitionVersion(
        row[0],
        row[1],
        int(row[2]),
        row[3],
        bytes(row[4]),
        row[5],
        row[6],
        int(row[7]),
        None if row[8] is None else int(row[8]),
    )


def _get_version(tx: Tx, kind: str, name: str, version: int | None) -> DefinitionVersion:
    if version is None:
        row = tx.execute(
            f"SELECT {_DEF_COLUMNS} FROM definition_versions WHERE kind = ? AND name = ?"
            " ORDER BY version DESC LIMIT 1",
            (kind, name),
        ).fetchone()
    else:
        row = tx.execute(
            f"SELECT {_DEF_COLUMNS} FROM definition_versions"
            " WHERE kind = ? AND name = ? AND version = ?",
            (kind, name, version),
        ).fetchone()
    if row is None:
        which = "" if version is None else f" version {version}"
        raise NotFoundError(f"{kind} {name!r}{which} not found")
    return _definition(row)


def _bump(tx: Tx, kind: str, name: str, expected: int | None) -> int:
    row = tx.execute(
        "SELECT latest_version FROM definitions WHERE kind = ? AND name = ?", (kind, name)
    ).fetchone()
    latest = 0 if row is None else int(row[0])
    if expected is not None and expected != latest:
        raise FailedPreconditionError(
            f"{kind} {name!r} is at version {latest}, not {expected}", reason="STALE_VERSION"
        )
    if row is None:
        tx.execute(
            "INSERT INTO definitions (kind, name, latest_version) VALUES (?, ?, 1)", (kind, name)
        )
    else:
        tx.execute(
            "UPDATE definitions SET latest_version = ? WHERE kind = ? AND name = ?",
            (latest + 1, kind, name),
        )
    return latest + 1


def _insert_version(tx: Tx, v: DefinitionVersion) -> None:
    tx.execute(
        f"INSERT INTO definition_versions ({_DEF_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            v.kind,
            v.name,
            v.version,
            v.status,
            v.body,
            v.author,
            v.reason,
            v.created_at_us,
            v.restored_from,
        ),
    )


def _entries_at(tx: Tx, list_name: str, version: int) -> list[str]:
    rows = tx.execute(
        "SELECT value FROM list_entries WHERE list_name = ? AND added_in <= ?"
        " AND (removed_in IS NULL OR removed_in > ?)",
        (list_name, version, version),
    ).fetchall()
    return [r[0] for r in rows]


def _distinct_change(add: Sequence[str], remove: Sequence[str]) -> tuple[list[str], list[str]]:
    """``add`` and ``remove`` without repeats (first occurrence kept);
    ``InvalidArgumentError`` when a value is in both."""
    added, removed = list(dict.fromkeys(add)), list(dict.fromkeys(remove))
    if removed and not set(removed).isdisjoint(added):
        raise InvalidArgumentError("a value is both added and removed", field="add")
    return added, removed


def _change_entries(
    tx: Tx, list_name: str, version: int, add: Sequence[str] | set[str], remove: set[str]
) -> None:
    # A bulk import is a million rows: one statement each way, not one per row
    # (executemany binds every row through Python on SQLite, and costs a message per
    # row on PostgreSQL). SQLite reads the values from one JSON array; PostgreSQL
    # takes them by COPY and removes them with one array parameter.
    if add:
        values = sorted(add)
        if tx.backend == "postgres":
            with (
                tx.raw.cursor() as cur,
                cur.copy("COPY list_entries (list_name, value, added_in) FROM STDIN") as copy,
            ):
                for value in values:
                    copy.write_row((list_name, value, version))
        else:
            tx.execute(
                "INSERT INTO list_entries (list_name, value, added_in)"
                " SELECT ?, value, ? FROM json_each(?)",
                (list_name, version, json.dumps(values)),
            )
    if remove:
        values = sorted(remove)
        if tx.backend == "postgres":
            tx.raw.execute(
                "UPDATE list_entries SET removed_in = %s"
                " WHERE list_name = %s AND removed_in IS NULL AND value = ANY(%s::text[])",
                (version, list_name, values),
            )
        else:
            tx.execute(
                "UPDATE list_entries SET removed_in = ? WHERE list_name = ?"
                " AND removed_in IS NULL AND value IN (SELECT value FROM json_each(?))",
                (version, list_name, json.dumps(values)),
            )


def _incident(tx: Tx, incident_id: str) -> Incident:
    row = tx.execute(
        "SELECT incident_id, status, assignee, created_at_us, updated_at_us, event_seq, payload"
        " FROM incidents WHERE incident_id = ?",
        (incident_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"incident {incident_id!r} not found")
    comments = tuple(
        IncidentComment(int(c[0]), c[1], int(c[2]), c[3])
        for c in tx.execute(
            "SELECT comment_id, author, created_at_us, body FROM incident_comments"
            " WHERE incident_id = ? ORDER BY comment_id",
            (incident_id,),
        ).fetchall()
    )
    return Incident(
        row[0],
        row[1],
        row[2],
        int(row[3]),
        int(row[4]),
        None if row[5] is None else int(row[5]),
        bytes(row[6]),
        comments,
    )


def _check_postings(postings: Sequence[Posting]) -> None:
    if len(postings) < 2:
        raise InvalidArgumentError("a transaction needs at least two postings", field="postings")
    totals: dict[str, int] = {}
    for i, p in enumerate(postings):
        if not _CURRENCY.match(p.currency):
            raise InvalidArgumentError("must be an ISO 4217 code", field=f"postings[{i}].currency")
        if isinstance(p.amount_minor, bool) or not isinstance(p.amount_minor, int):
            raise InvalidArgumentError(
                "must be an integer of minor units", field=f"postings[{i}].amount_minor"
            )
        if not p.account:
            raise InvalidArgumentError("must not be empty", field=f"postings[{i}].account")
        totals[p.currency] = totals.get(p.currency, 0) + p.amount_minor
    unbalanced = {c: t for c, t in totals.items() if t != 0}
    if unbalanced:
        raise InvalidArgumentError(
            f"postings do not balance: {unbalanced}", field="postings", reason="UNBALANCED"
        )


def _post(
    tx: Tx,
    txn_id: str,
    postings: Sequence[Posting],
    memo: str,
    clock: int,
    *,
    deal_id: str | None,
) -> LedgerTransaction:
    if tx.execute("SELECT 1 FROM ledger_transactions WHERE txn_id = ?", (txn_id,)).fetchone():
        raise AlreadyExistsError(f"ledger transaction {txn_id!r} exists")
    tx.execute(
        "INSERT INTO ledger_transactions (txn_id, deal_id, memo, created_at_us)"
        " VALUES (?, ?, ?, ?)",
        (txn_id, deal_id, memo, clock),
    )
    tx.executemany(
        "INSERT INTO ledger_entries (txn_id, account, amount_minor, currency) VALUES (?, ?, ?, ?)",
        [(txn_id, p.account, p.amount_minor, p.currency) for p in postings],
    )
    return LedgerTransaction(txn_id, memo, clock, tuple(postings), deal_id)


def _write_auction_row(tx: Tx, row: AuctionStateRow) -> None:
    if isinstance(row, AuctionLedgerRow):
        tx.execute(
            "INSERT INTO auction_ledger (sequence, entry_type, currency, deal, reverses,"
            " description, post_time_us, postings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (sequence) DO NOTHING",
            (
                row.sequence,
                row.entry_type,
                row.currency,
                row.deal,
                row.reverses,
                row.description,
                row.post_time_us,
                row.postings,
            ),
        )
    elif isinstance(row, AuctionDealRow):
        tx.execute(
            "INSERT INTO auction_deals (deal_name, auction, seller, buyer, create_time_us,"
            " update_time_us, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (deal_name) DO UPDATE SET update_time_us = excluded.update_time_us,"
            " payload = excluded.payload",
            (
                row.deal_name,
                row.auction,
                row.seller,
                row.buyer,
                row.create_time_us,
                row.update_time_us,
                row.payload,
            ),
        )
    elif isinstance(row, AuctionParticipantRow):
        tx.execute(
            "INSERT INTO auction_participants (name, state, update_time_us, payload)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
            " update_time_us = excluded.update_time_us, payload = excluded.payload",
            (row.name, row.state, row.update_time_us, row.payload),
        )
    elif isinstance(row, AuctionRow):
        tx.execute(
            "INSERT INTO auction_auctions (name, seller, state, open_time_us, update_time_us,"
            " payload) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " state = excluded.state, update_time_us = excluded.update_time_us,"
            " payload = excluded.payload",
            (row.name, row.seller, row.state, row.open_time_us, row.update_time_us, row.payload),
        )
    else:
        tx.execute(
            "INSERT INTO auction_coordinator_keys (signing_public_key, encryption_public_key,"
            " first_used_us) VALUES (?, ?, ?) ON CONFLICT (signing_public_key) DO NOTHING",
            (row.signing_public_key, row.encryption_public_key, row.first_used_us),
        )


def _auction_settlements(tx: Tx) -> dict[str, str]:
    rows = tx.execute("SELECT settlement_id, payload FROM auction_settlements").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _row_by_seq(tx: Tx, seq: int) -> Any:
    return tx.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone()


def _snapshot_part(position: int, number: int, data: memoryview) -> OpFn:
    def op(tx: Tx, clock: int) -> bytes:
        tx.execute(
            "INSERT INTO snapshot_parts (position, part, data) VALUES (?, ?, ?)",
            (position, number, data),
        )
        return b""

    return op


def _purge_batch(cutoff: int, size: int, through: int, key_rows: list[tuple[int, int]]) -> OpFn:
    """Delete up to ``size`` events older than ``cutoff`` among those the index covers
    (``seq <= through``); ``key_rows`` receives their index rows for the index to drop."""

    def op(tx: Tx, clock: int) -> bytes:
        rows = tx.execute(
            "SELECT seq, match_keys FROM events WHERE event_time_us < ? AND seq <= ?"
            " ORDER BY event_time_us, seq LIMIT ?",
            (cutoff, through, size),
        ).fetchall()
        key_rows[:] = [
            (matchkeys.key_hash(kind, value), int(seq))
            for seq, text in rows
            for kind, value in matchkeys.decode(text)
        ]
        if rows:
            # Delete exactly the selected rows: same filter, same order, same limit.
            tx.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE event_time_us < ?"
                " AND seq <= ? ORDER BY event_time_us, seq LIMIT ?)",
                (cutoff, through, size),
            )
        keys = tx.execute(
            "DELETE FROM idempotency WHERE request_id IN"
            " (SELECT request_id FROM idempotency WHERE created_at_us < ? LIMIT ?)",
            (cutoff, size),
        )
        return json.dumps([len(rows), max(keys.rowcount, 0)]).encode()

    return op
