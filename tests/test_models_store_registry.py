"""The model registry in the store (migration 0007) on SQLite and PostgreSQL: versions with
their bytes and cards, champion/shadow/rollback, a reopen keeps all of it, and the
file-system registry of earlier releases is imported once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lendgate.datagen import GenConfig, Generator, write_events
from lendgate.models.registry import FileSystemRegistry, RegistryError
from lendgate.models.store_registry import StoreRegistry, import_file_registry, registry_for
from lendgate.models.train import TrainConfig, train
from lendgate.store import StoreSettings, open_store
from lendgate.store.sqlstore import SqlStore
from tests.test_store import postgres_schema

# Training a model (the module fixtures) takes longer than the default 60 s under load.
pytestmark = pytest.mark.timeout(300)

NAME = "application-gbdt"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    data = root / "events.jsonl.gz"
    write_events(Generator(GenConfig(seed=41, applicants=1200, days=40)), data, progress=False)
    train(data, root / "model", TrainConfig(rounds=20))
    return root / "model"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/lendgate.db"
        return
    with postgres_schema() as url:
        yield url


def opened(url: str) -> SqlStore:
    return open_store(None, StoreSettings(database_url=url, retention_interval_s=0))


def test_versions_promote_shadow_rollback_and_reopen(model_dir: Path, database_url: str) -> None:
    store = opened(database_url)
    try:
        registry = StoreRegistry(store)
        assert registry.names() == [] and registry.state(NAME).champion is None
        v1 = registry.register(NAME, model_dir, {"registered_request_id": "a"})
        v2 = registry.register(NAME, model_dir)
        assert (v1, v2) == ("1", "2") and registry.names() == [NAME]
        files = registry.files(NAME, "1")
        assert files.onnx == (model_dir / "model.onnx").read_bytes()
        assert files.explain == (model_dir / "explain.npz").read_bytes()
        assert files.sha256 == hashlib.sha256(files.onnx).hexdigest()
        assert files.card["version"] == "1" and files.card["registered_request_id"] == "a"
        assert [f.version for f in registry.versions(NAME)] == ["1", "2"]

        assert registry.promote(NAME, "1").champion == "1"
        state = registry.promote(NAME, "2", shadow=True)
        assert (state.champion, state.shadows) == ("1", ["2"])
        state = registry.promote(NAME, "2")
        assert (state.champion, state.shadows, state.history) == ("2", [], ["1"])
        with pytest.raises(RegistryError, match="no model"):
            registry.promote(NAME, "9")
        with pytest.raises(RegistryError, match="no model"):
            registry.files(NAME, "x")
        assert registry.rollback(NAME).champion == "1"
        with pytest.raises(RegistryError, match="no earlier champion"):
            registry.rollback(NAME)
        registry.promote(NAME, "2", shadow=True)
        assert registry.unshadow(NAME, "2").shadows == []
        registry.promote(NAME, "2", shadow=True)
    finally:
        store.close()

    store = opened(database_url)
    try:
        registry = StoreRegistry(store)
        state = registry.state(NAME)
        assert (state.champion, state.shadows, state.history) == ("1", ["2"], [])
        assert registry.files(NAME, "2").onnx == (model_dir / "model.onnx").read_bytes()
    finally:
        store.close()


def test_a_bad_model_is_refused_and_nothing_is_stored(
    model_dir: Path, database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.json").write_text((model_dir / "card.json").read_text())
    (bad / "model.onnx").write_bytes(b"not onnx")
    store = opened(database_url)
    try:
        registry = StoreRegistry(store)
        with pytest.raises(RegistryError, match="not a loadable ONNX model"):
            registry.register(NAME, bad)
        assert registry.names() == []
    finally:
        store.close()


def test_the_file_system_registry_is_imported_once(model_dir: Path, tmp_path: Path) -> None:
    legacy = FileSystemRegistry(tmp_path / "var" / "models")
    legacy.register(NAME, model_dir)
    legacy.register(NAME, model_dir)
    legacy.promote(NAME, "1")
    legacy.promote(NAME, "2")
    legacy.promote(NAME, "1", shadow=True)
    store = opened(f"sqlite:///{tmp_path}/var/lendgate.db")
    try:
        registry = registry_for(store, tmp_path / "var")
        assert isinstance(registry, StoreRegistry)
        state = registry.state(NAME)
        assert (state.champion, state.shadows, state.history) == ("2", ["1"], ["1"])
        assert [f.version for f in registry.versions(NAME)] == ["1", "2"]
        assert registry.files(NAME, "2").onnx == legacy.files(NAME, "2").onnx
        # A second import (the next server start) leaves the store's registry alone.
        registry.rollback(NAME)
        assert import_file_registry(legacy, registry) == []
        assert registry.state(NAME).champion == "1"
    finally:
        store.close()
