"""Durable storage behind one interface: SQLite (embedded default) or PostgreSQL.

``open_store()`` picks the backend from ``LENDGATE_DATABASE_URL`` (``sqlite:///var/lendgate.db``
by default) or an explicit URL, applies the schema migrations and starts the group-commit
writer and the retention thread. See ``docs/STORAGE.md``.
"""

from __future__ import annotations

from dataclasses import replace

from lendgate.errors import UnavailableError as StoreUnavailableError
from lendgate.store.backends import StoreOpenError, make_backend
from lendgate.store.interface import (
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
    Snapshots,
    Store,
)
from lendgate.store.settings import StoreSettings
from lendgate.store.sqlstore import SqlStore

__all__ = [
    "Deal",
    "DefinitionKind",
    "DefinitionVersion",
    "Event",
    "EventAck",
    "Incident",
    "IncidentComment",
    "LedgerTransaction",
    "ModelRecord",
    "NewEvent",
    "Posting",
    "PurgeResult",
    "Report",
    "Snapshot",
    "Snapshots",
    "SqlStore",
    "Store",
    "StoreOpenError",
    "StoreSettings",
    "StoreUnavailableError",
    "open_store",
]


def open_store(database_url: str | None = None, settings: StoreSettings | None = None) -> SqlStore:
    """Open the store named by ``database_url`` (or ``settings``, or the environment).

    Blocking (connects and migrates): call it before serving, or via ``asyncio.to_thread``.
    Raises :class:`StoreOpenError` with a one-line reason when the database cannot be used.
    """
    settings = settings or StoreSettings.from_env()
    if database_url is not None:
        settings = replace(settings, database_url=database_url)
    store = SqlStore(make_backend(settings), settings)
    store.open()
    return store
