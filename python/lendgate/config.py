"""Configuration of a lendgate process: defaults < config file < environment < flags.

The config file is TOML (standard library ``tomllib``)::

    # lendgate.toml
    listen = "127.0.0.1:50051"
    data_dir = "var"
    database_url = "sqlite:///var/lendgate.db"   # or postgresql://user@host/db
    log_level = "INFO"
    grace_period_s = 5.0

Environment variables are the upper-cased keys with the ``LENDGATE_`` prefix
(``LENDGATE_LISTEN``, ``LENDGATE_DATABASE_URL``...). ``LENDGATE_CONFIG`` names the file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "LENDGATE_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the source and the problem."""


@dataclass(frozen=True)
class Config:
    """Settings of one ``lendgate serve`` process."""

    listen: str = "127.0.0.1:50051"
    """``HOST:PORT`` to listen on; port 0 picks a free port (logged at start)."""
    data_dir: str = "var"
    """Directory of the embedded storage and snapshots."""
    database_url: str = ""
    """``sqlite:///path`` or ``postgresql://...``; empty means ``sqlite:///{data_dir}/lendgate.db``."""
    log_level: str = "INFO"
    """One of DEBUG, INFO, WARNING, ERROR."""
    grace_period_s: float = 5.0
    """On SIGTERM, seconds in-flight calls get to finish before they are cancelled."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest request or response message accepted, in bytes."""
    max_concurrent_rpcs: int = 512
    """Calls (unary calls and open streams, all services together) the server runs at
    once; one more is refused at once with RESOURCE_EXHAUSTED instead of joining a queue
    whose latency grows without bound. 0 means no limit. Long-lived streams (auction
    subscriptions, check streams) count for as long as they are open."""
    max_pending_calls: int = 512
    """Calls grpc has received that the server has not taken up yet (the queue in front
    of the handlers, which forms when calls arrive faster than the asyncio server accepts
    them, one per turn of its event loop). At this many, grpc's core refuses a new call
    at once (half of it is grpc's soft limit). The client sees CANCELLED (grpc's core
    sets that status, not lendgate), so under overload the queue — and the latency of
    the calls that are served — stays bounded (≈ 200 to 350 ms at 512 on the 2-core
    reference machine) instead of growing into every client's deadline. grpc's limit on
    how long one call may wait stays at its default (30 s): grpc applies it to every
    waiting call however short the queue, so a lower one cancels calls whenever the
    server pauses. 0 leaves grpc's defaults (1,000 / 3,000 calls, 30 s)."""
    auth_mode: str = "dev"
    """``dev`` (partner from the ``x-lendgate-partner`` header; never in production) or
    ``token`` (bearer tokens checked against ``auth_tokens_file``); see ``lendgate.auth``."""
    auth_tokens_file: str = ""
    """File of ``<partner_id> <sha256-hex-of-token>`` lines, for ``auth_mode = "token"``."""
    rule_admins: str = ""
    """Comma-separated partner ids allowed to change the consortium's rules and lists.
    Empty: every partner in ``dev`` auth mode, nobody in ``token`` mode."""

    @property
    def rule_admin_partners(self) -> frozenset[str] | None:
        """The rule administrators; ``None`` means every partner (dev mode, none set)."""
        admins = frozenset(p.strip() for p in self.rule_admins.split(",") if p.strip())
        if not admins and self.auth_mode == "dev":
            return None
        return admins

    auction_bidding_window_s: float = 2.0
    """Default bidding window of an auction, in seconds (sellers may ask for another)."""
    auction_operators: str = ""
    """Comma-separated ``operator_id:ed25519-public-key-hex`` of the auction network's
    operators (they sign calls as ``operators/{operator_id}``). Set: self-registered
    participants start PENDING until an operator activates them."""
    snapshot_every_events: int = 100_000
    """Snapshot the scoring state after this many events (0: never by count); a restart
    restores the latest snapshot and replays only the log after it."""
    snapshot_every_s: float = 300.0
    """Snapshot the scoring state after this many seconds if anything changed (0: never)."""

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file under ``data_dir``."""
        return self.database_url or f"sqlite:///{Path(self.data_dir) / 'lendgate.db'}"

    @property
    def host_port(self) -> tuple[str, int]:
        """``listen`` split into host and port (validated by :func:`load_config`)."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build a validated :class:`Config` from the file, the environment and flag overrides.

    ``path`` defaults to ``$LENDGATE_CONFIG``; no file is read when neither is set.
    ``overrides`` holds flag values; ``None`` values are ignored.
    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = path or env.get(f"{ENV_PREFIX}CONFIG")
    if path:
        values.update(_read_file(Path(path)))
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for name in fields:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    typed = {name: _coerce(name, fields[name].type, value) for name, value in values.items()}
    config = Config(**typed)
    _validate(config)
    return config


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    return data


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    kinds = {"str": str, "int": int, "float": float}
    kind = kinds[str(type_name)]
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and kind is not str:
        try:
            return kind(value)
        except ValueError:
            pass
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"setting {name!r}: expected {kind.__name__}, got {value!r}")


def _validate(config: Config) -> None:
    host, sep, port = config.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"setting 'listen': expected HOST:PORT, got {config.listen!r}")
    if config.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"setting 'log_level': expected one of {', '.join(LOG_LEVELS)}")
    if config.max_concurrent_rpcs < 0:
        raise ConfigError("setting 'max_concurrent_rpcs': must be >= 0 (0: no limit)")
    if config.max_pending_calls < 0 or config.max_pending_calls == 1:
        raise ConfigError("setting 'max_pending_calls': must be 0 (grpc's defaults) or at least 2")
    if config.grace_period_s < 0:
        raise ConfigError("setting 'grace_period_s': must be >= 0")
    if config.max_message_bytes < 1024:
        raise ConfigError("setting 'max_message_bytes': must be >= 1024")
    if config.snapshot_every_events < 0 or config.snapshot_every_s < 0:
        raise ConfigError("settings 'snapshot_every_events', 'snapshot_every_s': must be >= 0")
    if config.auth_mode not in ("dev", "token"):
        raise ConfigError("setting 'auth_mode': expected 'dev' or 'token'")
    if not config.effective_database_url.startswith(("sqlite:///", "postgresql://")):
        raise ConfigError("setting 'database_url': expected sqlite:///PATH or postgresql://...")
