"""Versioned schema migrations, applied on start.

Each version is a pair of files side by side, ``NNNN_name.sqlite.sql`` and
``NNNN_name.postgres.sql``: the same change in each dialect. Applied versions are recorded
in ``schema_migrations`` with a checksum of their SQL, so an edited migration or a
database from a newer lendgate stops the start with a clear one-line error.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from importlib import resources

from lendgate.store.backends import StoreOpenError, Tx

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sqlite|postgres)\.sql$")
_PG_LOCK_KEY = 0x1E4D6A7E  # advisory lock: one migrator at a time per database


@dataclass(frozen=True)
class Migration:
    """One schema version in one dialect."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text: a changed migration is refused, not silently skipped."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The SQL split into statements (comments dropped; no ``;`` inside statements)."""
        text = "\n".join(line.split("--", 1)[0] for line in self.sql.splitlines())
        return [s.strip() for s in text.split(";") if s.strip()]


def load(backend: str) -> list[Migration]:
    """Every migration for ``backend``, by version."""
    found = []
    for entry in resources.files(__name__).iterdir():
        match = _FILE.match(entry.name)
        if match and match.group(3) == backend:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def apply(tx: Tx) -> list[int]:
    """Bring the schema up to date in one transaction; the versions applied, if any."""
    migrations = load(tx.backend)
    if tx.backend == "postgres":
        tx.execute("BEGIN")
        tx.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_KEY,))
    else:
        tx.execute("BEGIN IMMEDIATE")
    try:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at_us BIGINT NOT NULL)"
        )
        applied = _check(tx, migrations)
        done = []
        for migration in migrations:
            if migration.version in applied:
                continue
            for statement in migration.statements():
                tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at_us)"
                " VALUES (?, ?, ?, ?)",
                (migration.version, migration.name, migration.checksum, time.time_ns() // 1000),
            )
            done.append(migration.version)
        tx.execute("COMMIT")
    except BaseException:
        tx.execute("ROLLBACK")
        raise
    return done


def _check(tx: Tx, migrations: list[Migration]) -> set[int]:
    rows = tx.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    applied = {int(version): checksum for version, checksum in rows}
    known = {m.version: m for m in migrations}
    newest = max(known, default=0)
    if applied and max(applied) > newest:
        raise StoreOpenError(
            f"the database schema is at version {max(applied)}, newer than this lendgate"
            f" (which knows up to {newest}): upgrade lendgate"
        )
    for version, checksum in applied.items():
        if version not in known:  # a gap: applied by a build that had a migration this lacks
            raise StoreOpenError(
                f"the database has schema migration {version}, which this lendgate does not"
                " know: use the lendgate that applied it"
            )
        if known[version].checksum != checksum:
            raise StoreOpenError(
                f"schema migration {version} ({known[version].name}) differs from the one"
                " applied to this database"
            )
    if not applied and _has_foreign_tables(tx):
        raise StoreOpenError("the database holds tables that are not lendgate's")
    return set(applied)


def _has_foreign_tables(tx: Tx) -> bool:
    if tx.backend == "sqlite":
        sql = (
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'"
        )
    else:
        sql = (
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_name <> 'schema_migrations'"
        )
    return int(tx.execute(sql).fetchone()[0]) > 0
