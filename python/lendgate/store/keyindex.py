"""The match-key index, kept behind the log and off its write path.

``event_keys`` maps a 64-bit hash of each match key to the events carrying it (see
:mod:`lendgate.store.matchkeys`). It is derived data: everything in it can be rebuilt from
``events.match_keys``. Inserting into it is random access (the hashes are uniform), about
25 µs of SQLite work per key once the index outgrows the page cache — far too much to sit
in the transaction that acknowledges appends. So the index has its own connection and its
own thread, and never holds the log's write lock:

- SQLite: a second database file next to the log (``lendgate-keys.db`` beside
  ``lendgate.db``), attached to the read connections as ``keys``. SQLite locks a file, not
  a table: a key insert in the log's file would hold every append behind it.
- PostgreSQL: the tables stay in the main database (row locks, no file lock); the indexer
  uses a connection of its own instead of the writer's.

The writer hands the keys of every committed event to a :class:`~lendgate.store.matchkeys.
KeyBacklog`; :meth:`KeyIndex.catch_up` takes a bounded prefix of it (or reads events back
from the log after a restart), inserts their rows and advances ``through_seq`` in one
transaction of the index. Inserts are idempotent (a row already there is skipped), so the
read-back path and the backlog may overlap. The index file records the identity of the
log it indexes: an index file left over from another database, or ahead of the log (a
database restored from an older copy), is emptied and rebuilt in the background.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from lendgate.errors import UnavailableError
from lendgate.store import matchkeys
from lendgate.store.backends import Backend, SqliteBackend, StoreOpenError, Tx, keys_path

log = logging.getLogger(__name__)

_first = operator.itemgetter(0)
_MAX_SEQ = 2**63 - 1

_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS event_keys ("
    " key_hash INTEGER NOT NULL, event_seq INTEGER NOT NULL,"
    " PRIMARY KEY (key_hash, event_seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS event_keys_indexed ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), through_seq INTEGER NOT NULL,"
    " store_id TEXT NOT NULL)",
)


class KeyIndex:
    """The match-key index of one store (see the module docstring). Thread-safe: every
    operation runs under one lock, on the index's own connection."""

    def __init__(self, backend: Backend, backlog: matchkeys.KeyBacklog) -> None:
        self._db = backend
        self._backlog = backlog
        self._lock = threading.Lock()
        self._tx: Tx | None = None
        self.schema = "keys." if isinstance(backend, SqliteBackend) else ""
        """Prefix of the index tables in a read connection's SQL."""

    # --- connection ------------------------------------------------------------------

    def open(self, store_id: str, log_end: int) -> None:
        """Connect, and (SQLite) create or check the index file against the log."""
        with self._lock:
            self._tx = self._connect(store_id, log_end)

    def close(self) -> None:
        """Close the index's connection."""
        with self._lock:
            if self._tx is not None:
                self._tx.raw.close()
                self._tx = None

    def _connect(self, store_id: str, log_end: int) -> Tx:
        if not isinstance(self._db, SqliteBackend):
            return self._db.connect_writer()
        path = keys_path(self._db.path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # Derived data with its own `through_seq` in the same file: a commit lost to a
            # power cut rolls the index back consistently and it catches up from the log.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-32768")
            for statement in _SQLITE_SCHEMA:
                conn.execute(statement)
            row = conn.execute(
                "SELECT through_seq, store_id FROM event_keys_indexed WHERE id = 1"
            ).fetchone()
            if row is None or row[1] != store_id or int(row[0]) > log_end:
                if row is not None:
                    log.warning(
                        "match-key index %s belongs to another log or is ahead of it;"
                        " rebuilding it from the log",
                        path,
                    )
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM event_keys")
                conn.execute("DELETE FROM event_keys_indexed")
                conn.execute(
                    "INSERT INTO event_keys_indexed (id, through_seq, store_id) VALUES (1, 0, ?)",
                    (store_id,),
                )
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreOpenError(f"cannot open the match-key index {path}: {exc}") from exc
        return Tx(conn, "sqlite")

    def _connection(self) -> Tx:
        if self._tx is None:
            if isinstance(self._db, SqliteBackend):  # closed (or never opened)
                raise UnavailableError("the match-key index is closed")
            self._tx = self._db.connect_writer()  # PostgreSQL after a lost connection
        return self._tx

    def _drop_connection(self) -> None:
        if self._tx is not None and not isinstance(self._db, SqliteBackend):
            try:
                self._tx.raw.close()
            finally:
                self._tx = None

    # --- reading ---------------------------------------------------------------------

    def through(self) -> int:
        """The last log position the index covers."""
        with self._lock:
            return indexed_through(self._connection())

    # --- writing ---------------------------------------------------------------------

    def catch_up(self, max_events: int) -> int:
        """Index at most ``max_events`` more events, in one transaction; how many."""
        with self._lock:
            tx = self._connection()
            try:
                return self._catch_up(tx, max(1, max_events))
            except BaseException as exc:
                self._rollback(tx, exc)
                raise

    def _catch_up(self, tx: Tx, size: int) -> int:
        backlog = self._backlog
        generation = backlog.generation
        start = through = indexed_through(tx)
        first = backlog.start
        done = 0
        rows: list[tuple[int, int]] = []
        if first is None or first > through + 1:
            # After a restart: the events before the backlog are read back from the log.
            before = _MAX_SEQ if first is None else first
            with self._db.reader() as reader:
                logged = reader.execute(
                    "SELECT seq, match_keys FROM events WHERE seq > ? AND seq < ?"
                    " ORDER BY seq LIMIT ?",
                    (through, before, size),
                ).fetchall()
            rows = [
                (matchkeys.key_hash(kind, value), int(seq))
                for seq, text in logged
                for kind, value in matchkeys.decode(text)
            ]
            done = len(logged)
            if logged and (done == size or first is None):
                through = int(logged[-1][0])
            elif first is not None:
                through = first - 1  # the log has nothing else before the backlog
        taken = 0
        if done < size:
            held = backlog.take(size - done, through)
            if held is not None:
                held_rows, held_through, taken = held
                rows.extend(held_rows)
                through = max(through, held_through)
                done += taken
        if through == start and not rows:
            if taken:  # events the index already covers (read back from the log): done
                backlog.drop(taken, generation)
            return 0
        self._db.begin(tx)
        if rows:
            self._db.insert_keys(tx, sorted(rows, key=_first), idempotent=True)
        tx.execute("UPDATE event_keys_indexed SET through_seq = ? WHERE id = 1", (through,))
        tx.execute("COMMIT")
        if taken:
            backlog.drop(taken, generation)
        return done

    def delete(self, rows: Sequence[tuple[int, int]]) -> None:
        """Remove the rows of events that left the log (retention)."""
        if not rows:
            return
        with self._lock:
            tx = self._connection()
            try:
                self._db.begin(tx)
                self._db.delete_keys(tx, rows)
                tx.execute("COMMIT")
            except BaseException as exc:
                self._rollback(tx, exc)
                raise

    def _rollback(self, tx: Tx, exc: BaseException) -> None:
        try:
            tx.execute("ROLLBACK")
        except Exception:  # the connection itself is gone
            self._drop_connection()
            return
        if self._db.is_disconnect(exc):
            self._drop_connection()


def indexed_through(tx: Tx, schema: str = "") -> int:
    """The last log position the index covers, read on ``tx`` (``schema``: the prefix of
    the index tables on that connection, ``KeyIndex.schema`` on a read connection)."""
    sql = f"SELECT through_seq FROM {schema}event_keys_indexed WHERE id = 1"  # noqa: S608
    row: Any = tx.execute(sql).fetchone()
    return int(row[0])
