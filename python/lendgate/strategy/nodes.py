"""The custom nodes the core calls back into Python for: ``model``, ``lookup``,
``aggregate`` (``python`` nodes are in :mod:`lendgate.strategy.engine`).

Each takes its JDM ``content.config`` and the node's input and returns the node's
output, or raises: the core then follows the node's error handling (``onError``
default output or ``error`` edge) and the trace records the reason. Nothing here
makes up a value: no active model, no database, no aggregates → an error.

Common config: ``retries`` (extra attempts after a failure, default 0, at most 5).

- ``model``: ``{"model": NAME, "features": [PATH, ...]}`` — the champion of NAME in
  the model registry scores the row of input values at the dotted PATHs (in the
  model's feature order; a missing value is NaN). Output
  ``{"score", "raw", "modelName", "modelVersion"}``.
- ``lookup``: ``{"sql": "SELECT ... WHERE id = :id", "params": {"id": PATH},
  "timeoutMs": 200, "single": false}`` — one read-only SELECT against the store's
  database (SQLite or PostgreSQL) with named parameters taken from the input. Output
  ``{"rows": [...]}``, or the first row (``null`` if none) when ``single``.
- ``aggregate``: ``{"eventField": PATH}`` — the scoring aggregates' parameters for the
  event at PATH of the input (the whole input if absent), computed without changing
  the aggregates. Output ``{"aggregates": {...}}``.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from lendgate.errors import InvalidArgumentError

MAX_RETRIES = 5
DEFAULT_LOOKUP_TIMEOUT_MS = 1000

AggregateReader = Callable[[bytes], Mapping[str, Any]]
"""Computes the scoring aggregates' parameters for a JSON event (state unchanged)."""


class ModelScorer(Protocol):
    """What the model node needs of :class:`lendgate.models.serving.ModelService`."""

    def score(self, name: str, rows: Any) -> list[Any]:
        """Score rows with the champion of ``name`` (``ScoreResult`` per row)."""
        ...


class NodeError(RuntimeError):
    """A custom node failed; the message is what the trace shows."""


def dig(data: Any, path: str) -> Any:
    """The value at dotted ``path`` of ``data`` (None when absent)."""
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def with_retries(config: Mapping[str, Any], call: Callable[[], Any]) -> Any:
    """Run ``call``, retrying ``config["retries"]`` times on failure."""
    retries = max(0, min(int(config.get("retries", 0) or 0), MAX_RETRIES))
    for attempt in range(retries + 1):
        try:
            return call()
        except NodeError as exc:
            if attempt == retries:
                if retries:
                    raise NodeError(f"{exc} (after {retries + 1} attempts)") from None
                raise
    raise AssertionError("unreachable")


# --- model -----------------------------------------------------------------------------


def run_model(scorer: ModelScorer | None, config: Mapping[str, Any], data: Any) -> Any:
    """Score the input with the active model named in ``config``."""
    if scorer is None:
        raise NodeError("no model registry is configured on this server")
    name = str(config.get("model", ""))
    paths = config.get("features") or []
    row = []
    for p in paths:
        v = dig(data, str(p))
        row.append(float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan)
    [result] = scorer.score(name, [row])
    if result.score is None:
        why = "; ".join(result.warnings) or "no active model"
        raise NodeError(f"model {name!r} gave no score: {why}")
    s = result.score
    return {
        "score": s.risk_score,
        "raw": s.raw,
        "modelName": s.model_name,
        "modelVersion": s.model_version,
    }


# --- lookup ----------------------------------------------------------------------------

_PARAM = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")  # `:name`, not a `::type` cast


def check_select(sql: str) -> None:
    """Reject anything but one SELECT (or WITH ... SELECT) statement."""
    text = sql.strip().rstrip(";").strip()
    head = text.split(None, 1)[0].upper() if text else ""
    if head not in {"SELECT", "WITH"}:
        raise ValueError("a lookup runs one read-only SELECT statement")
    if ";" in text:
        raise ValueError("a lookup runs exactly one statement")


class SqliteLookup:
    """Read-only queries on the store's SQLite file, each with a time limit.

    The connection is opened read-only (``mode=ro``, ``query_only``) and an authorizer
    allows reading only; a progress handler aborts a query past its deadline.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def query(self, sql: str, params: Mapping[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        """Rows of ``sql`` with named ``params`` as dicts; NodeError on error or timeout."""
        check_select(sql)
        deadline = time.monotonic() + timeout_s
        conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=timeout_s)
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.set_authorizer(_read_only)
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            cur = conn.execute(sql, dict(params))
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise NodeError(f"lookup timed out after {timeout_s * 1000:.0f} ms") from None
            raise NodeError(f"lookup failed: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise NodeError(f"lookup failed: {exc}") from None
        finally:
            conn.close()


_READ_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        getattr(sqlite3, "SQLITE_RECURSIVE", 33),  # WITH RECURSIVE
    }
)


def _read_only(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


class PostgresLookup:
    """Read-only queries on the store's PostgreSQL database, each with a time limit.

    Each query runs in its own ``READ ONLY`` transaction with ``statement_timeout`` set
    for it; ``:name`` parameters are passed to the server as bound values.
    """

    def __init__(self, url: str) -> None:
        self._url = url

    def query(self, sql: str, params: Mapping[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        """Rows of ``sql`` with named ``params`` as dicts; NodeError on error or timeout."""
        import psycopg  # noqa: PLC0415 (only with PostgreSQL)
        from psycopg.rows import dict_row  # noqa: PLC0415

        check_select(sql)
        bound = _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
        timeout_ms = max(1, int(timeout_s * 1000))
        try:
            with psycopg.connect(
                self._url, connect_timeout=max(1, int(timeout_s + 0.999)), row_factory=dict_row
            ) as conn:
                conn.read_only = True
                conn.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
                return list(conn.execute(bound, dict(params)).fetchall())
        except psycopg.errors.QueryCanceled:
            raise NodeError(f"lookup timed out after {timeout_ms} ms") from None
        except psycopg.Error as exc:
            raise NodeError(f"lookup failed: {exc}") from None


class LookupReader(Protocol):
    """Runs a read-only query (``SqliteLookup``, or another database's reader)."""

    def query(self, sql: str, params: Mapping[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        """Rows as dicts."""
        ...


def run_lookup(reader: LookupReader | None, config: Mapping[str, Any], data: Any) -> Any:
    """Run the node's query with parameters from the input."""
    if reader is None:
        raise NodeError("no lookup database is configured on this server")
    sql = str(config.get("sql", ""))
    params = {k: dig(data, str(p)) for k, p in (config.get("params") or {}).items()}
    missing = sorted(set(_PARAM.findall(sql)) - set(params))
    if missing:
        raise NodeError(f"lookup parameters without a value: {', '.join(missing)}")
    timeout_ms = int(config.get("timeoutMs", DEFAULT_LOOKUP_TIMEOUT_MS))
    rows = reader.query(sql, params, timeout_ms / 1000)
    if config.get("single"):
        return rows[0] if rows else None
    return {"rows": rows}


# --- aggregate -------------------------------------------------------------------------


def run_aggregate(reader: AggregateReader | None, config: Mapping[str, Any], data: Any) -> Any:
    """The scoring aggregates' parameters for the event in the input."""
    if reader is None:
        raise NodeError(
            "scoring aggregates are not available: the strategy service runs without "
            "the scoring service in this process"
        )
    field = config.get("eventField")
    event = dig(data, str(field)) if field else data
    if not isinstance(event, dict):
        raise NodeError(f"no event object at {field!r}")
    try:
        return {"aggregates": dict(reader(json.dumps(event).encode()))}
    except InvalidArgumentError as exc:
        raise NodeError(f"aggregates: {exc.message}") from None


def validate_custom_nodes(graph_json: str) -> None:
    """Registration checks of custom node configs (the node id names the culprit)."""
    doc = json.loads(graph_json)
    for node in doc.get("nodes") or []:
        if node.get("type") != "customNode":
            continue
        content = node.get("content") or {}
        config = content.get("config") or {}
        field = f"graph_json.nodes[{node.get('id')}].content.config"
        kind = content.get("kind")
        if kind == "lookup":
            try:
                check_select(str(config.get("sql", "")))
            except ValueError as exc:
                raise InvalidArgumentError(
                    f"node {node.get('id')!r}: {exc}", field=f"{field}.sql"
                ) from None
        if kind == "model" and not config.get("model"):
            raise InvalidArgumentError(
                f"node {node.get('id')!r}: a model node names its model", field=f"{field}.model"
            )


class RegistryScorer:
    """A :class:`ModelScorer` over the model registry: a model's champion is loaded on
    first use (and looked up again while it has none)."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._loaded: set[str] = set()

    def score(self, name: str, rows: Any) -> list[Any]:
        """Score ``rows`` with the champion of ``name`` (no champion: no score)."""
        if name not in self._loaded:
            try:
                state = self._service.reload(name)
            except Exception as exc:  # an unknown or unreadable model: the node fails
                raise NodeError(f"model {name!r} is not in the registry: {exc}") from None
            if state.champion is not None:
                self._loaded.add(name)
        return list(self._service.score(name, rows))
