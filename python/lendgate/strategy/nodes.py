"""The custom nodes the core calls back into Python for: ``model``, ``lookup``,
``aggregate`` (``python`` nodes are in :mod:`lendgate.strategy.engine`).

Each takes its JDM ``content.config`` and the node's input and returns the node's
output, or raises: the core then follows the node's error handling (``onError``
default output or ``error`` edge) and the trace records the reason. Nothing here
makes up a value: no active model, no database, no aggregates → an error.

Common config: ``retries`` (extra attempts after a failure, default 0, at most 5).
Every custom node runs on a :class:`NodeRunner` worker thread and is abandoned at its
deadline — the node's ``timeoutMs`` (JDM ``content.timeoutMs``) or what is left of the
evaluation's, else :data:`DEFAULT_NODE_TIMEOUT_MS` — with the error
``timeout after N ms``; retries share that deadline.

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
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from lendgate.errors import InvalidArgumentError

MAX_RETRIES = 5
DEFAULT_LOOKUP_TIMEOUT_MS = 1000
DEFAULT_NODE_TIMEOUT_MS = 10_000
"""A custom node's limit when neither the node nor the evaluation sets one."""
DEFAULT_NODE_WORKERS = 16
"""Worker threads of a :class:`NodeRunner`: at most this many nodes run at once,
counting abandoned ones that have not returned yet."""

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


def with_retries(
    config: Mapping[str, Any], call: Callable[[], Any], deadline: float | None = None
) -> Any:
    """Run ``call``, retrying ``config["retries"]`` times on failure (no retry starts
    after the ``time.monotonic()`` ``deadline``)."""
    retries = max(0, min(int(config.get("retries", 0) or 0), MAX_RETRIES))
    for attempt in range(retries + 1):
        try:
            return call()
        except NodeError as exc:
            late = deadline is not None and time.monotonic() >= deadline
            if attempt == retries or late:
                if attempt:
                    raise NodeError(f"{exc} (after {attempt + 1} attempts)") from None
                raise
    raise AssertionError("unreachable")


class NodeRunner:
    """Runs custom nodes on a bounded pool of daemon worker threads, each call within a
    deadline.

    Python cannot stop a thread, so a node that overruns is *abandoned*: the caller gets
    ``NodeError("timeout after N ms")`` at the deadline and the evaluation goes on (the
    node's ``onError`` default or ``error`` edge), while the worker finishes the call in
    the background and its result is dropped. At most ``workers`` calls are in flight,
    abandoned ones included, so runaway nodes cannot pile up threads: once every worker
    is stuck, further nodes wait for one until their own deadline and then time out.
    Lookups also get the deadline as their SQL timeout, so they stop on their own.
    """

    def __init__(self, workers: int = DEFAULT_NODE_WORKERS) -> None:
        if workers < 1:
            raise ValueError("a node runner needs at least one worker")
        self.workers = workers
        self._slots = threading.BoundedSemaphore(workers)
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[float], Any], float]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads = 0
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Calls started and not yet returned (abandoned ones included)."""
        with self._lock:
            return self._in_flight

    @property
    def threads(self) -> int:
        """Worker threads started so far (never more than ``workers``)."""
        with self._lock:
            return self._threads

    def run(self, call: Callable[[float], Any], timeout_ms: int) -> Any:
        """``call(deadline)`` on a worker, its result or exception; ``NodeError`` when it
        has not returned ``timeout_ms`` from now (``deadline`` is ``time.monotonic()``)."""
        timeout_s = max(timeout_ms, 0) / 1000
        deadline = time.monotonic() + timeout_s
        if not self._slots.acquire(timeout=timeout_s):
            raise NodeError(
                f"timeout after {timeout_ms} ms: all {self.workers} node workers stayed busy"
            )
        future: Future[Any] = Future()
        with self._lock:
            self._in_flight += 1
            if self._threads < self._in_flight:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"strategy-node-{self._threads}", daemon=True
                ).start()
        self._jobs.put((future, call, deadline))
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if future.done():  # the node itself raised TimeoutError
                raise
            future.cancel()
            raise NodeError(f"timeout after {timeout_ms} ms") from None

    def _work(self) -> None:
        while True:
            future, call, deadline = self._jobs.get()
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(call(deadline))
                    except BaseException as exc:  # handed to the caller, as Future does
                        future.set_exception(exc)
            finally:
                with self._lock:
                    self._in_flight -= 1
                self._slots.release()


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
                raise NodeError(
                    f"timeout after {timeout_s * 1000:.0f} ms (the lookup's query was interrupted)"
                ) from None
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
    """Read-only queries on a PostgreSQL database through a pool of connections, each
    query with a time limit.

    The pool (``psycopg_pool``, opened on first use) keeps up to ``max_size`` read-only
    connections: each query runs in its own transaction with ``statement_timeout`` set
    for it (``SET LOCAL``), so the server cancels an overrunning statement and the
    connection goes back to the pool clean. ``:name`` parameters are passed to the
    server as bound values. Waiting for a free connection counts against the limit.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self._url = url
        self._min_size = min_size
        self._max_size = max_size
        self._lock = threading.Lock()
        self._pool: Any = None

    def _connections(self) -> Any:
        import psycopg_pool  # noqa: PLC0415 (only with PostgreSQL)
        from psycopg.rows import dict_row  # noqa: PLC0415

        with self._lock:
            if self._pool is None:

                def configure(conn: Any) -> None:
                    conn.read_only = True  # every transaction is BEGIN READ ONLY

                self._pool = psycopg_pool.ConnectionPool(
                    self._url,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    kwargs={"row_factory": dict_row, "connect_timeout": 5},
                    configure=configure,
                    open=True,
                    name="strategy-lookup",
                )
            return self._pool

    def query(self, sql: str, params: Mapping[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        """Rows of ``sql`` with named ``params`` as dicts; NodeError on error or timeout."""
        import psycopg  # noqa: PLC0415 (only with PostgreSQL)
        import psycopg_pool  # noqa: PLC0415

        check_select(sql)
        bound = _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
        timeout_ms = max(1, int(timeout_s * 1000))
        pool = self._connections()
        try:
            with pool.connection(timeout=timeout_s) as conn, conn.transaction():
                conn.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
                return list(conn.execute(bound, dict(params)).fetchall())
        except psycopg_pool.PoolTimeout:
            raise NodeError(
                f"timeout after {timeout_ms} ms waiting for a database connection"
            ) from None
        except psycopg.errors.QueryCanceled:
            raise NodeError(
                f"timeout after {timeout_ms} ms (the lookup's statement was cancelled)"
            ) from None
        except psycopg.Error as exc:
            raise NodeError(f"lookup failed: {exc}") from None

    @property
    def pool_stats(self) -> dict[str, int]:
        """The pool's counters (``psycopg_pool`` ``get_stats()``); empty before first use."""
        with self._lock:
            return dict(self._pool.get_stats()) if self._pool is not None else {}

    def close(self) -> None:
        """Close the pool's connections (a later query opens a new pool)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class LookupReader(Protocol):
    """Runs a read-only query (``SqliteLookup``, or another database's reader)."""

    def query(self, sql: str, params: Mapping[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        """Rows as dicts."""
        ...


def run_lookup(
    reader: LookupReader | None,
    config: Mapping[str, Any],
    data: Any,
    deadline: float | None = None,
) -> Any:
    """Run the node's query with parameters from the input; its time limit is the
    config's ``timeoutMs`` or what is left until ``deadline``, whichever is shorter."""
    if reader is None:
        raise NodeError("no lookup database is configured on this server")
    sql = str(config.get("sql", ""))
    params = {k: dig(data, str(p)) for k, p in (config.get("params") or {}).items()}
    missing = sorted(set(_PARAM.findall(sql)) - set(params))
    if missing:
        raise NodeError(f"lookup parameters without a value: {', '.join(missing)}")
    timeout_s = int(config.get("timeoutMs", DEFAULT_LOOKUP_TIMEOUT_MS)) / 1000
    if deadline is not None:
        timeout_s = min(timeout_s, deadline - time.monotonic())
    if timeout_s <= 0:
        raise NodeError("lookup not started: the node's deadline has passed")
    rows = reader.query(sql, params, timeout_s)
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
