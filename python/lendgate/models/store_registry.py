"""The model registry in the store (SQLite or PostgreSQL), migration 0007.

Versions live in the ``models`` table: the ONNX bytes in ``artifact`` (with their SHA-256
in ``sha256``), the explainer arrays in ``explainer``, the card in ``metadata``. The
serving state of each name (champion, shadows, earlier champions) is one row of
``model_serving``. The bytes are kept in the database rather than under the data
directory: a model is a few hundred KB, the database is what is backed up and shared by
every server process, and a version can then never point at a file another host lacks.

Every change is one write transaction through the store's single writer, so the version
numbering and the read-modify-write of a serving state never race. The methods block the
calling thread (the API runs them through ``asyncio.to_thread``, the registry poll runs
in its own thread), as :class:`~lendgate.models.registry.FileSystemRegistry`'s do.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from lendgate.models.registry import (
    EXPLAIN_FILE,
    MODEL_FILE,
    ActiveState,
    FileSystemRegistry,
    ModelFiles,
    ModelRegistry,
    RegistryError,
    validate_model_dir,
)
from lendgate.store.backends import Tx
from lendgate.store.sqlstore import SqlStore

log = logging.getLogger(__name__)

_COLUMNS = "name, version, metadata, artifact, explainer"


def _files(row: Any) -> ModelFiles:
    return ModelFiles(
        row[0],
        str(row[1]),
        bytes(row[3]),
        bytes(row[4]) if row[4] is not None else None,
        json.loads(row[2]),
    )


def _state(tx: Tx, name: str) -> ActiveState:
    row = tx.execute(
        "SELECT champion, shadows, history FROM model_serving WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        return ActiveState()
    return ActiveState(
        None if row[0] is None else str(row[0]),
        [str(v) for v in json.loads(row[1])],
        [str(v) for v in json.loads(row[2])],
    )


def _save(tx: Tx, name: str, state: ActiveState, clock: int) -> bytes:
    values = (
        None if state.champion is None else int(state.champion),
        json.dumps([int(v) for v in state.shadows]),
        json.dumps([int(v) for v in state.history]),
        clock,
    )
    updated = tx.execute(
        "UPDATE model_serving SET champion = ?, shadows = ?, history = ?, updated_at_us = ?"
        " WHERE name = ?",
        (*values, name),
    ).rowcount
    if not updated:
        tx.execute(
            "INSERT INTO model_serving (champion, shadows, history, updated_at_us, name)"
            " VALUES (?, ?, ?, ?, ?)",
            (*values, name),
        )
    return json.dumps([state.champion, state.shadows, state.history]).encode()


def _decode(body: bytes) -> ActiveState:
    champion, shadows, history = json.loads(body)
    return ActiveState(champion, list(shadows), list(history))


def _has_version(tx: Tx, name: str, version: str) -> bool:
    if not version.isdigit():
        return False
    return (
        tx.execute(
            "SELECT 1 FROM models WHERE name = ? AND version = ?", (name, int(version))
        ).fetchone()
        is not None
    )


class StoreRegistry:
    """``ModelRegistry`` on the lendgate store."""

    def __init__(self, store: SqlStore, author: str = "lendgate") -> None:
        self.store = store
        self.author = author

    def register(self, name: str, source: Path, extra: dict[str, Any] | None = None) -> str:
        """Validate a trained model directory and store it as the next version of
        ``name``; return the version. ``extra`` is merged into the stored card."""
        if not name or "/" in name or name.startswith("."):
            raise RegistryError(f"bad model name {name!r}")
        card = {**validate_model_dir(source), **(extra or {})}
        onnx = (source / MODEL_FILE).read_bytes()
        explain = (source / EXPLAIN_FILE).read_bytes() if (source / EXPLAIN_FILE).exists() else None
        return self.add(name, card, onnx, explain)

    def add(
        self,
        name: str,
        card: dict[str, Any],
        onnx: bytes,
        explain: bytes | None,
        version: str | None = None,
    ) -> str:
        """Store an already validated version (``version``: keep that number, for an
        import; by default the next one). Returns the version."""
        digest = hashlib.sha256(onnx).hexdigest()

        def op(tx: Tx, clock: int) -> bytes:
            if version is None:
                latest = tx.execute(
                    "SELECT coalesce(max(version), 0) FROM models WHERE name = ?", (name,)
                ).fetchone()[0]
                number = int(latest) + 1
            else:
                number = int(version)
            stored = {**card, "name": name, "version": str(number)}
            tx.execute(
                "INSERT INTO models (name, version, status, author, created_at_us, metadata,"
                " sha256, artifact, explainer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    number,
                    "registered",
                    self.author,
                    clock,
                    json.dumps(stored, sort_keys=True),
                    digest,
                    onnx,
                    explain,
                ),
            )
            return str(number).encode()

        return self.store.write_blocking("register_model", op).decode()

    def names(self) -> list[str]:
        """Names that have at least one version."""
        rows = self.store.read_blocking(
            lambda tx: tx.execute("SELECT DISTINCT name FROM models ORDER BY name").fetchall()
        )
        return [str(r[0]) for r in rows]

    def versions(self, name: str) -> list[ModelFiles]:
        """Versions of a name, oldest first."""
        rows = self.store.read_blocking(
            lambda tx: tx.execute(
                f"SELECT {_COLUMNS} FROM models WHERE name = ? ORDER BY version",  # noqa: S608
                (name,),
            ).fetchall()
        )
        return [_files(r) for r in rows]

    def files(self, name: str, version: str) -> ModelFiles:
        """One version; RegistryError if unknown."""
        if not version.isdigit():
            raise RegistryError(f"no model {name} version {version}")
        row = self.store.read_blocking(
            lambda tx: tx.execute(
                f"SELECT {_COLUMNS} FROM models WHERE name = ? AND version = ?",  # noqa: S608
                (name, int(version)),
            ).fetchone()
        )
        if row is None:
            raise RegistryError(f"no model {name} version {version}")
        return _files(row)

    def state(self, name: str) -> ActiveState:
        """The serving state of a name (empty if never promoted)."""
        return self.store.read_blocking(lambda tx: _state(tx, name))

    def _change(self, name: str, version: str | None, change: Any) -> ActiveState:
        """Apply ``change(state) -> state`` in one write transaction."""
        refused: list[RegistryError] = []

        def op(tx: Tx, clock: int) -> bytes:
            if version is not None and not _has_version(tx, name, version):
                refused.append(RegistryError(f"no model {name} version {version}"))
                return b""
            try:
                state = change(_state(tx, name))
            except RegistryError as exc:
                refused.append(exc)
                return b""
            return _save(tx, name, state, clock)

        body = self.store.write_blocking("model_serving", op)
        if refused:
            raise refused[0]
        return _decode(body)

    def promote(self, name: str, version: str, *, shadow: bool = False) -> ActiveState:
        """Make a version the champion (or add it as a shadow)."""

        def change(state: ActiveState) -> ActiveState:
            if shadow:
                if version != state.champion and version not in state.shadows:
                    state.shadows.append(version)
                return state
            if state.champion == version:
                return state
            if state.champion is not None:
                state.history.append(state.champion)
            state.champion = version
            state.shadows = [v for v in state.shadows if v != version]
            return state

        return self._change(name, version, change)

    def unshadow(self, name: str, version: str) -> ActiveState:
        """Stop scoring a version as a shadow (no change if it is not one)."""

        def change(state: ActiveState) -> ActiveState:
            state.shadows = [v for v in state.shadows if v != version]
            return state

        return self._change(name, version, change)

    def rollback(self, name: str) -> ActiveState:
        """Return to the previous champion."""

        def change(state: ActiveState) -> ActiveState:
            if not state.history:
                raise RegistryError(f"model {name} has no earlier champion to roll back to")
            state.champion = state.history.pop()
            return state

        return self._change(name, None, change)


def import_file_registry(source: FileSystemRegistry, target: StoreRegistry) -> list[str]:
    """Copy every version and serving state of a file-system registry into the store,
    keeping version numbers; names the store already has are left alone (so a second
    import, or a server start after one, changes nothing). Returns the names imported."""
    have = set(target.names())
    imported = []
    for name in source.names():
        if name in have:
            continue
        for files in source.versions(name):
            target.add(name, files.card, files.onnx, files.explain, version=files.version)
        state = source.state(name)

        def replace(_: ActiveState, state: ActiveState = state) -> ActiveState:
            return ActiveState(state.champion, list(state.shadows), list(state.history))

        if state.champion is not None or state.shadows:
            target._change(name, None, replace)
        imported.append(name)
    return imported


def registry_for(store: object, data_dir: Path) -> ModelRegistry:
    """The registry a server uses: the store's (importing, once, the file-system registry
    ``data_dir/models`` of earlier releases); a store that is not SQL (a test double)
    keeps the file-system registry."""
    legacy = FileSystemRegistry(data_dir / "models")
    if not isinstance(store, SqlStore):
        return legacy
    registry = StoreRegistry(store)
    imported = import_file_registry(legacy, registry)
    if imported:
        log.info("file-system model registry imported into the store", extra={"models": imported})
    return registry
