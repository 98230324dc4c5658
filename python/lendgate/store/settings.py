"""Storage settings: from the environment, or built explicitly (tests, the config file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from lendgate.errors import InvalidArgumentError

DEFAULT_DATABASE_URL = "sqlite:///var/lendgate.db"

SqliteSynchronous = Literal["NORMAL", "FULL"]


@dataclass(frozen=True)
class StoreSettings:
    """How the store connects, commits and forgets. See ``docs/STORAGE.md``.

    - ``database_url``: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
      ``postgresql://user@host:port/db`` (``LENDGATE_DATABASE_URL``).
    - ``commit_delay_ms``: how long the writer waits for more writes before committing a
      batch (``LENDGATE_COMMIT_DELAY_MS``, default 0: it commits whatever is queued at
      once, and under load batches form while the previous commit runs). A delay helps
      only where an fsync is slow (a few ms): fewer, bigger commits at the cost of write
      latency.
    - ``max_batch``: most writes in one commit (``LENDGATE_COMMIT_MAX_BATCH``).
    - ``sqlite_synchronous``: ``FULL`` (default) fsyncs the WAL at every commit, so an
      acknowledged write survives a power cut; ``NORMAL`` survives a crash of the process
      (kill -9) but may lose the last commits on power loss, for much higher throughput on
      slow disks (``LENDGATE_SQLITE_SYNCHRONOUS``).
    - ``retention_days``: events older than this leave the store (``LENDGATE_RETENTION_DAYS``,
      default 180; 0 keeps everything); ``retention_interval_s`` is how often the background
      pass runs (0 disables it) and ``retention_batch`` how many events one delete removes.
    - ``key_index_interval_s``/``key_index_batch``: how often, and in operations of at most
      how many events, the match-key index catches up with the log (look-ups scan the
      unindexed tail, so they are exact at any lag). The bound keeps one operation short:
      appends queued behind it wait for it.
    - ``checkpoint_interval_s``: SQLite: how often a background thread copies the WAL
      into the database file (0: only the writer's own checkpoint, inside its commits).
    - ``pool_size``: PostgreSQL connections for reads (the writer has its own).
    """

    database_url: str = DEFAULT_DATABASE_URL
    commit_delay_ms: float = 0.0
    max_batch: int = 2000
    sqlite_synchronous: SqliteSynchronous = "FULL"
    retention_days: float = 180.0
    retention_interval_s: float = 60.0
    retention_batch: int = 1000
    key_index_interval_s: float = 1.0
    key_index_batch: int = 256
    checkpoint_interval_s: float = 0.25
    pool_size: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        """Settings from ``LENDGATE_*`` variables, defaults for the rest."""
        env = os.environ if env is None else env
        base = cls()
        sync = env.get("LENDGATE_SQLITE_SYNCHRONOUS", base.sqlite_synchronous).upper()
        if sync not in ("NORMAL", "FULL"):
            raise InvalidArgumentError(
                "must be NORMAL or FULL", field="LENDGATE_SQLITE_SYNCHRONOUS"
            )
        return replace(
            base,
            database_url=env.get("LENDGATE_DATABASE_URL", base.database_url),
            commit_delay_ms=_number(env, "LENDGATE_COMMIT_DELAY_MS", base.commit_delay_ms),
            max_batch=int(_number(env, "LENDGATE_COMMIT_MAX_BATCH", base.max_batch)),
            sqlite_synchronous="FULL" if sync == "FULL" else "NORMAL",
            retention_days=_number(env, "LENDGATE_RETENTION_DAYS", base.retention_days),
        )

    @property
    def backend(self) -> Literal["sqlite", "postgres"]:
        """Which backend ``database_url`` names."""
        if self.database_url.startswith("sqlite:///"):
            return "sqlite"
        if self.database_url.startswith(("postgresql://", "postgres://")):
            return "postgres"
        raise InvalidArgumentError(
            "must start with sqlite:/// or postgresql://", field="LENDGATE_DATABASE_URL"
        )

    @property
    def sqlite_path(self) -> Path:
        """The database file of an ``sqlite:///`` URL (relative to the working directory)."""
        return Path(self.database_url.removeprefix("sqlite:///"))


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgumentError(f"not a number: {raw!r}", field=name) from None
    if value < 0:
        raise InvalidArgumentError("must not be negative", field=name)
    return value
