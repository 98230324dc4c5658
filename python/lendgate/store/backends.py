"""What differs between SQLite and PostgreSQL: connecting, parameters, bulk event inserts.

Everything else (the domain operations, the writer, retention) is shared SQL in
``sqlstore.py``, written with ``?`` placeholders that :meth:`Tx.execute` rewrites for
psycopg.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg
import psycopg_pool

from lendgate.errors import UnavailableError
from lendgate.store.interface import EventAck
from lendgate.store.settings import StoreSettings

EventRow = tuple[str, str, str, str, int, int, bytes, bytes | None, str]
"""An event as the backends insert it, built once when it is queued: ``request_id``,
``partner_id``, ``kind``, ``subject_id``, ``event_time_us``, ``received_at_us``,
``payload``, ``response``, ``match_keys`` (encoded). The log position comes at insert."""

_SQLITE_MAX_PARAMS = 30_000  # below SQLITE_MAX_VARIABLE_NUMBER (32766 since 3.32)
_PG_POOL_WAIT_S = 10.0  # longest wait for a pooled read connection
_PG_OUTAGE_WAIT_S = 0.5  # the same while the writer cannot reach the server
_PG_INSERT = (
    "INSERT INTO events (request_id, partner_id, kind, subject_id, event_time_us,"
    " received_at_us, payload, response, match_keys)"
    " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::int8[], %b::int8[], %b::bytea[], %b::bytea[], %b::text[])"
)
_PG_RETURNING = " RETURNING request_id, seq"
_SQLITE_INSERT = (
    "INSERT INTO events (request_id, partner_id, kind, subject_id, event_time_us,"
    " received_at_us, payload, response, match_keys, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# Writer connection tuning: a larger page cache and fewer, larger WAL checkpoints keep the
# random inserts into the match-key index from rewriting the same pages at every commit.
_SQLITE_WRITER_PRAGMAS = ("PRAGMA cache_size=-65536", "PRAGMA wal_autocheckpoint=10000")


class StoreOpenError(RuntimeError):
    """The store cannot start: unreachable server, corrupt or foreign file, newer schema.

    The message is one line meant for the operator; the process should exit non-zero.
    """


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses (sqlite3 and psycopg alike)."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""
        ...

    def fetchone(self) -> Any:
        """The next row or ``None``."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")


class Tx:
    """A connection inside the store's own transaction handling, with one SQL dialect."""

    def __init__(self, raw: Any, backend: Literal["sqlite", "postgres"]) -> None:
        self.raw = raw
        self.backend = backend
        self._pg = backend == "postgres"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement written with ``?`` placeholders."""
        cursor: Cursor = self.raw.execute(_pg_sql(sql) if self._pg else sql, params)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        if self._pg:
            with self.raw.cursor() as cur:
                cur.executemany(_pg_sql(sql), rows)
        else:
            self.raw.executemany(sql, rows)


class Backend(ABC):
    """One database engine: how to connect the writer and readers, and its bulk insert."""

    name: Literal["sqlite", "postgres"]

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.outage = False
        """Set by the writer while it cannot reach the database (cleared when it has
        reconnected): readers then give up waiting for a connection sooner."""

    @abstractmethod
    def connect_writer(self) -> Tx:
        """A new connection for the writer thread (autocommit; the store issues BEGIN)."""

    @abstractmethod
    @contextmanager
    def reader(self) -> Iterator[Tx]:
        """A connection for reads on the calling (pool) thread."""
        yield  # type: ignore[misc]

    @abstractmethod
    def close(self) -> None:
        """Close the readers' connections."""

    @abstractmethod
    def is_disconnect(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection is gone (reconnect, report UNAVAILABLE)."""

    @abstractmethod
    def insert_events(self, tx: Tx, rows: Sequence[EventRow]) -> list[EventAck]:
        """Insert events not seen before (by ``request_id``); acks in input order.

        A repeated ``request_id`` (stored before, or earlier in ``rows``) inserts nothing
        and its ack is the first append's, with ``duplicate`` set.
        """

    def begin(self, tx: Tx) -> None:
        """Start the writer's transaction."""
        tx.execute("BEGIN")

    def insert_keys(
        self, tx: Tx, rows: Sequence[tuple[int, int]], *, idempotent: bool = False
    ) -> None:
        """Add ``(key_hash, event_seq)`` rows to the match-key index (``idempotent``: a
        row already there is skipped)."""
        verb = "INSERT OR IGNORE" if idempotent else "INSERT"
        tx.executemany(f"{verb} INTO event_keys (key_hash, event_seq) VALUES (?, ?)", rows)

    def delete_keys(self, tx: Tx, rows: Sequence[tuple[int, int]]) -> None:
        """Remove ``(key_hash, event_seq)`` rows from the match-key index."""
        tx.executemany("DELETE FROM event_keys WHERE key_hash = ? AND event_seq = ?", rows)


def _sqlite_insert_keys(
    tx: Tx, rows: Sequence[tuple[int, int]], *, idempotent: bool = False
) -> None:
    """SQLite: the rows as one JSON array in one statement. ``executemany`` hands the GIL
    back and forth once per row (bind in Python, step without the GIL); on a large index a
    row costs ~25 µs of SQLite work, so the serving thread met those hand-offs thousands
    of times a second. One statement runs entirely in SQLite with the GIL released."""
    verb = "INSERT OR IGNORE" if idempotent else "INSERT"
    tx.execute(
        f"{verb} INTO event_keys (key_hash, event_seq)"  # noqa: S608 - constant verbs
        " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)",
        (json.dumps(rows, separators=(",", ":")),),
    )


def keys_path(log_path: Path) -> Path:
    """The SQLite file of the match-key index of the log at ``log_path``."""
    return log_path.with_name(f"{log_path.stem}-keys{log_path.suffix or '.db'}")


class SqliteBackend(Backend):
    """The embedded default: one file in WAL mode, one writer connection, pooled readers."""

    name: Literal["sqlite", "postgres"] = "sqlite"

    def __init__(self, settings: StoreSettings) -> None:
        super().__init__(settings)
        self.path = settings.sqlite_path
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous={self.settings.sqlite_synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as exc:
            raise StoreOpenError(f"cannot open SQLite database {self.path}: {exc}") from exc
        if mode != "wal":
            conn.close()
            raise StoreOpenError(f"SQLite database {self.path} refused WAL mode ({mode})")
        return conn

    def connect_writer(self) -> Tx:
        """A writer connection (``BEGIN IMMEDIATE`` takes the write lock up front)."""
        conn = self._connect()
        for pragma in _SQLITE_WRITER_PRAGMAS:
            conn.execute(pragma)
        return Tx(conn, "sqlite")

    def begin(self, tx: Tx) -> None:
        """Take the write lock at once, so a second process fails fast, not at COMMIT."""
        tx.execute("BEGIN IMMEDIATE")

    @contextmanager
    def reader(self) -> Iterator[Tx]:
        """The calling thread's own read connection (WAL readers never block the writer)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            # The match-key index lives in a file of its own (lendgate.store.keyindex).
            conn.execute("ATTACH DATABASE ? AS keys", (str(keys_path(self.path)),))
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        yield Tx(conn, "sqlite")

    def close(self) -> None:
        """Close every reader connection."""
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def insert_keys(
        self, tx: Tx, rows: Sequence[tuple[int, int]], *, idempotent: bool = False
    ) -> None:
        """One statement for all rows (:func:`_sqlite_insert_keys`)."""
        _sqlite_insert_keys(tx, rows, idempotent=idempotent)

    def is_disconnect(self, exc: BaseException) -> bool:
        """SQLite has no connection to lose; disk and lock errors fail the batch only."""
        return isinstance(exc, sqlite3.OperationalError) and "disk" in str(exc)

    def insert_events(self, tx: Tx, rows: Sequence[EventRow]) -> list[EventAck]:
        """One ``executemany`` per batch; the single writer numbers the events itself.

        New request ids are the rule, so the batch is inserted as it is under a savepoint
        and the unique index on ``request_id`` is the duplicate check; only a batch that
        breaks it (a retry) is rolled back and inserted again after looking its ids up.
        The match-key index is not written here but behind the log (``index_keys``).
        """
        raw: sqlite3.Connection = tx.raw
        found = raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        last = 0 if found is None else int(found[0])
        raw.execute("SAVEPOINT append")
        try:
            raw.executemany(_SQLITE_INSERT, [(*row, last + i) for i, row in enumerate(rows, 1)])
        except sqlite3.IntegrityError:
            raw.execute("ROLLBACK TO append")
            raw.execute("RELEASE append")
            return self._insert_new(raw, rows, last)
        raw.execute("RELEASE append")
        return [EventAck(last + i, r[0], r[5], r[7], False) for i, r in enumerate(rows, 1)]

    def _insert_new(
        self, raw: sqlite3.Connection, rows: Sequence[EventRow], last: int
    ) -> list[EventAck]:
        """Insert the rows whose request id is new; the others get their first ack."""
        acks: dict[str, EventAck] = {}
        ids = list(dict.fromkeys(r[0] for r in rows))
        for start in range(0, len(ids), _SQLITE_MAX_PARAMS):
            chunk = ids[start : start + _SQLITE_MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            for request_id, seq, received, response in raw.execute(
                "SELECT request_id, seq, received_at_us, response FROM events"  # noqa: S608
                f" WHERE request_id IN ({marks})",
                chunk,
            ):
                acks[request_id] = EventAck(int(seq), request_id, int(received), response, True)
        seq = last
        new: list[tuple[Any, ...]] = []
        result: list[EventAck] = []
        for row in rows:
            request_id = row[0]
            ack = acks.get(request_id)
            if ack is None:
                seq += 1
                new.append((*row, seq))
                result.append(EventAck(seq, request_id, row[5], row[7], False))
                acks[request_id] = EventAck(seq, request_id, row[5], row[7], True)
            else:
                result.append(ack)
        if new:
            raw.executemany(_SQLITE_INSERT, new)
        return result


class PostgresBackend(Backend):
    """PostgreSQL through psycopg 3: a dedicated writer connection and a reader pool."""

    name: Literal["sqlite", "postgres"] = "postgres"

    def __init__(self, settings: StoreSettings) -> None:
        super().__init__(settings)
        self.url = settings.database_url
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreOpenError(f"cannot connect to PostgreSQL: {detail}") from exc

    def connect_writer(self) -> Tx:
        """A dedicated autocommit connection; the store brackets batches in BEGIN/COMMIT."""
        return Tx(self._connect(), "postgres")

    @contextmanager
    def reader(self) -> Iterator[Tx]:
        """A pooled connection for the duration of one read."""
        if self._pool is None:
            self._pool = psycopg_pool.ConnectionPool(
                self.url,
                min_size=1,
                max_size=max(1, self.settings.pool_size),
                kwargs={"autocommit": True},
                open=True,
                timeout=_PG_POOL_WAIT_S,
            )
        # In an outage the pool has no connection to give: answer UNAVAILABLE in a moment
        # rather than after the full wait (a client deadline would come first).
        wait = _PG_OUTAGE_WAIT_S if self.outage else _PG_POOL_WAIT_S
        try:
            with self._pool.connection(timeout=wait) as conn:
                yield Tx(conn, "postgres")
        except psycopg_pool.PoolTimeout as exc:
            raise UnavailableError("the database is unreachable") from exc
        except psycopg.OperationalError as exc:
            raise UnavailableError(f"the database is unreachable: {exc}") from exc

    def close(self) -> None:
        """Close the reader pool."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def is_disconnect(self, exc: BaseException) -> bool:
        """Operational errors (server gone, network) need a new connection."""
        return isinstance(exc, psycopg.OperationalError)

    def insert_keys(
        self, tx: Tx, rows: Sequence[tuple[int, int]], *, idempotent: bool = False
    ) -> None:
        """One statement over two arrays (``executemany`` would cost a message per row)."""
        sql = (
            "INSERT INTO event_keys (key_hash, event_seq)"
            " SELECT * FROM unnest(%b::int8[], %b::int8[])"
        )
        if idempotent:
            sql += " ON CONFLICT DO NOTHING"
        tx.raw.execute(
            sql,
            ([r[0] for r in rows], [r[1] for r in rows]),
        )

    def delete_keys(self, tx: Tx, rows: Sequence[tuple[int, int]]) -> None:
        """One statement over two arrays."""
        tx.raw.execute(
            "DELETE FROM event_keys WHERE (key_hash, event_seq) IN"
            " (SELECT * FROM unnest(%s::int8[], %s::int8[]))",
            ([r[0] for r in rows], [r[1] for r in rows]),
        )

    def insert_events(self, tx: Tx, rows: Sequence[EventRow]) -> list[EventAck]:
        """One ``INSERT ... SELECT FROM unnest(arrays)`` per batch: a few round trips in all.

        Parameters go in binary (``%b``): bytea arrays in text form would hex-escape every
        byte. The rows are turned into the nine column arrays by one ``zip``. New request
        ids are the rule: a plain insert under a savepoint (``ON CONFLICT`` costs the server
        a speculative insertion per row); only a batch the unique index refuses goes again
        with ``ON CONFLICT DO NOTHING`` and looks the stored ids up.
        """
        raw = tx.raw
        first: dict[str, int] = {}
        for i, row in enumerate(rows):
            first.setdefault(row[0], i)
        unique = rows if len(first) == len(rows) else [rows[i] for i in first.values()]
        columns = list(map(list, zip(*unique, strict=True)))
        inserted: dict[str, int] | None = None
        if unique is rows:
            raw.execute("SAVEPOINT append")
            try:
                inserted = dict(raw.execute(_PG_INSERT + _PG_RETURNING, columns).fetchall())
            except psycopg.errors.UniqueViolation:
                raw.execute("ROLLBACK TO SAVEPOINT append")
            raw.execute("RELEASE SAVEPOINT append")
        if inserted is None:
            inserted = dict(
                raw.execute(
                    _PG_INSERT + " ON CONFLICT (request_id) DO NOTHING" + _PG_RETURNING, columns
                ).fetchall()
            )
        by_request: dict[str, EventAck] = {}
        for row in unique:
            seq = inserted.get(row[0])
            if seq is not None:
                by_request[row[0]] = EventAck(seq, row[0], row[5], row[7], False)
        missing = [r[0] for r in unique if r[0] not in inserted]
        if missing:
            for request_id, seq, recv, response in raw.execute(
                "SELECT request_id, seq, received_at_us, response FROM events"
                " WHERE request_id = ANY(%s)",
                (missing,),
            ).fetchall():
                by_request[request_id] = EventAck(int(seq), request_id, int(recv), response, True)
        if unique is rows:
            return [by_request[r[0]] for r in rows]
        acks = []
        for i, row in enumerate(rows):
            ack = by_request[row[0]]
            if first[row[0]] != i and not ack.duplicate:
                ack = ack._replace(duplicate=True)
            acks.append(ack)
        return acks


def make_backend(settings: StoreSettings) -> Backend:
    """The backend ``settings.database_url`` names."""
    factories: dict[str, Callable[[StoreSettings], Backend]] = {
        "sqlite": SqliteBackend,
        "postgres": PostgresBackend,
    }
    return factories[settings.backend](settings)
