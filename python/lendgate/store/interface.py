"""The storage interface every backend implements, and the records it reads and writes.

Domain payloads cross this boundary as bytes (serialized protobuf) or JSON; only the
columns needed for look-ups are first-class. Times are integer microseconds since the
Unix epoch (UTC); money is integer minor units plus an ISO 4217 currency code.

Every write takes the client's ``request_id``: a retry with the same id returns the first
answer and changes nothing. A write returns only after its transaction is committed
(group commit, see ``docs/STORAGE.md``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

DefinitionKind = Literal["rule", "list", "aggregate", "strategy", "settings"]
"""What a versioned definition is: a rule, a list (with entries), an aggregate, a strategy,
or a singleton of settings (e.g. the scoring thresholds)."""

DEFINITION_KINDS: frozenset[str] = frozenset({"rule", "list", "aggregate", "strategy", "settings"})


@dataclass(frozen=True)
class NewEvent:
    """An event to append to the log: an application, an outcome, a transaction...

    ``kind`` names the payload's message type (``"application"``, ``"outcome"``...);
    ``subject_id`` is the application or transaction the event is about, so an outcome
    shares the ``subject_id`` of its application. ``keys`` are the normalised match keys
    (``("phone", "79991234567")``) that later checks look events up by. ``response`` is the
    answer sent to the client, returned unchanged to a retry of the same ``request_id``.
    """

    request_id: str
    partner_id: str
    kind: str
    event_time_us: int
    payload: bytes
    subject_id: str = ""
    keys: Sequence[tuple[str, str]] = ()
    response: bytes | None = None


class EventAck(NamedTuple):
    """The store's answer to an append: the event's log position and its first response.

    ``duplicate`` is true when ``request_id`` had been appended before; ``seq``,
    ``received_at_us`` and ``response`` are then the first append's.

    A named tuple rather than a frozen dataclass: the writer makes one per appended event,
    and a frozen dataclass costs ~1.5 µs to build against ~0.3 µs.
    """

    seq: int
    request_id: str
    received_at_us: int
    response: bytes | None
    duplicate: bool


@dataclass(frozen=True)
class Event:
    """An event as stored; ``seq`` is its position in the log (increasing in commit order)."""

    seq: int
    request_id: str
    partner_id: str
    kind: str
    subject_id: str
    event_time_us: int
    received_at_us: int
    payload: bytes
    response: bytes | None
    keys: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DefinitionVersion:
    """One version of a rule, list, aggregate or strategy: what, who, when, why, status.

    ``status`` is the definition's own word (rules: ``working``/``test``/``tuning``;
    strategies: ``draft``/``published``...). ``restored_from`` names the version this
    one copies when it was made by a restore.
    """

    kind: str
    name: str
    version: int
    status: str
    body: bytes
    author: str
    reason: str
    created_at_us: int
    restored_from: int | None = None


@dataclass(frozen=True)
class Report:
    """A stored report (a scoring report, an analytics report) as opaque bytes."""

    report_id: str
    kind: str
    partner_id: str
    subject_id: str
    created_at_us: int
    payload: bytes


@dataclass(frozen=True)
class ModelRecord:
    """A registered model version: metadata (JSON object) and the artifact bytes (ONNX)."""

    name: str
    version: int
    status: str
    author: str
    created_at_us: int
    metadata: Mapping[str, Any]
    sha256: str
    artifact: bytes


@dataclass(frozen=True)
class IncidentComment:
    """A fraud officer's comment on an incident."""

    comment_id: int
    author: str
    created_at_us: int
    body: str


@dataclass(frozen=True)
class Incident:
    """A fraud case with its comments, oldest first."""

    incident_id: str
    status: str
    assignee: str
    created_at_us: int
    updated_at_us: int
    event_seq: int | None
    payload: bytes
    comments: tuple[IncidentComment, ...] = ()


@dataclass(frozen=True)
class Posting:
    """One leg of a ledger transaction; the legs of one transaction sum to zero per currency."""

    account: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class LedgerTransaction:
    """A committed double-entry transaction."""

    txn_id: str
    memo: str
    created_at_us: int
    postings: tuple[Posting, ...]
    deal_id: str | None = None


@dataclass(frozen=True)
class Deal:
    """A closed auction deal: the winning buyer pays ``price_minor`` for the lead."""

    deal_id: str
    auction_id: str
    seller_id: str
    buyer_id: str
    price_minor: int
    currency: str
    created_at_us: int
    payload: bytes = b""


@dataclass(frozen=True)
class AuctionLedgerRow:
    """One entry of the auction's ledger as stored (see ``lendgate.auction.books``)."""

    sequence: int
    entry_type: str
    currency: str
    deal: str
    reverses: int
    description: str
    post_time_us: int
    postings: str
    """JSON ``[[account, amount_minor], ...]``, summing to zero."""


@dataclass(frozen=True)
class AuctionDealRow:
    """One deal of the auction's registry, its current state."""

    deal_name: str
    auction: str
    seller: str
    buyer: str
    create_time_us: int
    update_time_us: int
    payload: bytes
    """The protobuf ``lendgate.v1.Deal``."""


@dataclass(frozen=True)
class AuctionParticipantRow:
    """One participant of the auction network, its current state."""

    name: str
    state: int
    update_time_us: int
    payload: bytes
    """The protobuf ``lendgate.v1.Participant``."""


@dataclass(frozen=True)
class AuctionRow:
    """One auction as the coordinator last stored it (opened or decided)."""

    name: str
    seller: str
    state: int
    """``lendgate.v1.AuctionState`` number."""
    open_time_us: int
    update_time_us: int
    payload: str
    """JSON, see ``lendgate.auction.books.record_json``."""


@dataclass(frozen=True)
class AuctionKeyRow:
    """A public key pair the coordinator has signed (and been encrypted to) with."""

    signing_public_key: bytes
    encryption_public_key: bytes
    first_used_us: int


AuctionStateRow = (
    AuctionLedgerRow | AuctionDealRow | AuctionParticipantRow | AuctionRow | AuctionKeyRow
)
"""Anything the coordinator writes to the store in one ordered batch."""


@dataclass(frozen=True)
class AuctionBooks:
    """Everything the auction coordinator restores on start."""

    entries: tuple[AuctionLedgerRow, ...]
    deals: tuple[AuctionDealRow, ...]
    settlements: dict[str, str]
    """Final settlements by id, as JSON."""
    participants: tuple[AuctionParticipantRow, ...] = ()
    auctions: tuple[AuctionRow, ...] = ()
    """By open time."""
    keys: tuple[AuctionKeyRow, ...] = ()
    """By first use."""


@dataclass(frozen=True)
class Snapshot:
    """Serialized in-memory state covering every event with ``seq <= position``."""

    position: int
    created_at_us: int
    #: The bytes saved; a loaded snapshot's are a read-only view of one buffer (no
    #: copy of what may be gigabytes; ``bytes(data)`` makes one when needed).
    data: bytes | memoryview


@dataclass(frozen=True)
class PurgeResult:
    """What one retention pass removed."""

    events: int
    idempotency_keys: int
    cutoff_us: int = field(default=0)


class Snapshots(Protocol):
    """The hook for rebuilding in-memory state: latest snapshot plus the log's tail."""

    async def save(self, position: int, data: bytes, *, paced: bool = False) -> Snapshot:
        """Store ``data`` as the state after every event with ``seq <= position``.
        ``paced``: a background snapshot of a serving process, which leaves most of the
        writer's time to the appends while it is stored; otherwise it is stored as fast
        as the store takes it (start-up, shutdown, a bulk load)."""
        ...

    async def load_latest(self) -> Snapshot | None:
        """The snapshot with the highest position, or ``None`` when there is none."""
        ...

    def events_after(self, position: int, *, page_size: int = 5000) -> AsyncIterator[Event]:
        """Every event with ``seq > position`` in log order (read page by page)."""
        ...


class Store(Protocol):
    """Durable storage for lendgate: one interface, an SQLite and a PostgreSQL backend.

    Open one with :func:`lendgate.store.open_store`; migrations are applied on open.
    Every method is a coroutine that never blocks the event loop: writes go to the
    group-commit writer thread, reads to a small thread pool. Domain errors are the
    :mod:`lendgate.errors` ones (``NotFoundError``, ``FailedPreconditionError`` on a
    stale ``expected_version``, ``InvalidArgumentError``); a lost database surfaces as
    :class:`lendgate.store.StoreUnavailableError` and nothing is acknowledged that was
    not committed.
    """

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        ...

    @property
    def snapshots(self) -> Snapshots:
        """Snapshots of the in-memory state, for restarts (see ``docs/STORAGE.md``)."""
        ...

    async def aclose(self) -> None:
        """Flush pending writes, stop background work and close connections."""
        ...

    # --- the event log -------------------------------------------------------------

    async def append_event(self, event: NewEvent) -> EventAck:
        """Append one event (idempotent on ``request_id``); returns after commit."""
        ...

    async def append_events(self, events: Sequence[NewEvent]) -> list[EventAck]:
        """Append several events in one commit batch; one ack per event, in order."""
        ...

    def fence(self) -> Awaitable[int]:
        """The log position covering every event appended before this call, once they have
        committed (enqueued at the call: see :meth:`lendgate.store.SqlStore.fence`)."""
        ...

    async def get_event(self, seq: int) -> Event:
        """The event at log position ``seq`` (with its keys); ``NotFoundError`` if absent."""
        ...

    async def get_event_by_request(self, request_id: str) -> Event | None:
        """The event appended with ``request_id``, or ``None``."""
        ...

    async def events_by_key(
        self, key_kind: str, key_value: str, *, since_us: int = 0, limit: int = 1000
    ) -> list[Event]:
        """Events carrying the match key, newest first, with ``event_time_us >= since_us``."""
        ...

    async def events_by_subject(self, partner_id: str, subject_id: str) -> list[Event]:
        """Every event about one application/transaction (e.g. it and its outcome), in order."""
        ...

    async def last_seq(self) -> int:
        """The highest committed log position (0 when the log is empty)."""
        ...

    # --- first answers of requests (idempotency of API calls) ------------------------

    async def remember_answer(self, request_id: str, operation: str, answer: bytes) -> bytes:
        """Keep ``answer`` as the first answer to ``request_id``; returns the answer kept
        (an earlier one wins). ``InvalidArgumentError`` (``REQUEST_ID_REUSED``) when the
        id was first used for another operation."""
        ...

    async def recall_answer(self, request_id: str) -> tuple[str, bytes] | None:
        """``(operation, answer)`` kept for ``request_id``, or ``None``."""
        ...

    # --- reports -------------------------------------------------------------------

    async def put_report(self, request_id: str, report: Report) -> Report:
        """Store a report; a retry returns the first one."""
        ...

    async def get_report(self, report_id: str) -> Report:
        """The report named ``report_id``; ``NotFoundError`` if absent."""
        ...

    # --- versioned definitions: rules, lists, aggregates, strategies -----------------

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
        """Create the next version of a definition.

        ``expected_version`` is the optimistic-concurrency check (the etag): the latest
        version the caller saw, ``0`` for "must not exist yet", ``None`` for no check.
        """
        ...

    async def get_definition(
        self, kind: DefinitionKind, name: str, version: int | None = None
    ) -> DefinitionVersion:
        """A version of a definition (the latest by default); ``NotFoundError`` if absent."""
        ...

    async def list_definition_versions(
        self, kind: DefinitionKind, name: str
    ) -> list[DefinitionVersion]:
        """Every version of one definition, oldest first (its change history)."""
        ...

    async def list_definitions(self, kind: DefinitionKind) -> list[DefinitionVersion]:
        """The latest version of every definition of ``kind``, by name."""
        ...

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
        ...

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
        """Add and remove entries of a list; the change is a new version of the list.
        Repeated values are written once, and a value both added and removed is
        ``InvalidArgumentError``; with ``distinct`` the caller vouches that there are
        neither (a staged bulk write), and the check of a million values is skipped."""
        ...

    async def list_entries(self, list_name: str, version: int | None = None) -> list[str]:
        """The entries of a list at ``version`` (the latest by default), sorted."""
        ...

    async def list_contains(self, list_name: str, value: str) -> bool:
        """Whether ``value`` is in the latest version of the list."""
        ...

    # --- models ----------------------------------------------------------------------

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
        ...

    async def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        """A model version (the latest by default); ``NotFoundError`` if absent."""
        ...

    # --- incidents -------------------------------------------------------------------

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
        ...

    async def update_incident(
        self,
        request_id: str,
        incident_id: str,
        *,
        status: str | None = None,
        assignee: str | None = None,
    ) -> Incident:
        """Change an incident's status and/or assignee."""
        ...

    async def add_incident_comment(
        self, request_id: str, incident_id: str, *, author: str, body: str
    ) -> Incident:
        """Append a comment to an incident; returns the incident with its comments."""
        ...

    async def get_incident(self, incident_id: str) -> Incident:
        """An incident with its comments; ``NotFoundError`` if absent."""
        ...

    # --- auction deals and the ledger ----------------------------------------------------

    async def record_deal(
        self, request_id: str, deal: Deal, postings: Sequence[Posting], *, memo: str = ""
    ) -> LedgerTransaction:
        """Store a deal and its settlement (ledger ``txn_id = deal_id``) atomically."""
        ...

    async def get_deal(self, deal_id: str) -> Deal:
        """A deal; ``NotFoundError`` if absent."""
        ...

    async def post_ledger(
        self, request_id: str, txn_id: str, postings: Sequence[Posting], *, memo: str = ""
    ) -> LedgerTransaction:
        """Post a balanced double-entry transaction (``InvalidArgumentError`` if unbalanced)."""
        ...

    async def balance(self, account: str, currency: str) -> int:
        """An account's balance in minor units of ``currency``."""
        ...

    async def trial_balance(self) -> dict[str, int]:
        """Sum of every posting per currency; zero for each currency when books balance."""
        ...

    # --- the auction's books --------------------------------------------------------

    async def append_auction_entries(self, rows: Sequence[AuctionLedgerRow]) -> None:
        """Append ledger entries (a row whose sequence is stored already is skipped, so a
        retried batch is harmless)."""
        ...

    async def put_auction_deal(self, row: AuctionDealRow) -> None:
        """Insert or replace a deal's current state."""
        ...

    async def put_auction_settlement(self, settlement_id: str, payload: str) -> str:
        """Store a final settlement once; returns the stored one (the first, on a repeat)."""
        ...

    async def auction_settlements(self) -> dict[str, str]:
        """Every final settlement by id."""
        ...

    def auction_books_blocking(self) -> AuctionBooks:
        """All deals, entries and settlements, participants, auctions and coordinator
        keys, read on the calling thread (start-up only)."""
        ...

    async def write_auction_state(self, rows: Sequence[AuctionStateRow]) -> None:
        """Write ``rows`` in order in one transaction: ledger entries are appended (a
        sequence stored already is skipped), everything else is inserted or replaced."""
        ...

    # --- retention -------------------------------------------------------------------

    async def purge_expired(self, *, now_us: int | None = None) -> PurgeResult:
        """Delete events (and idempotency keys) older than the retention horizon, in batches."""
        ...
