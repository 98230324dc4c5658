"""The model registry: versions of each named model, its champion and its shadows.

``ModelRegistry`` is the seam the storage layer will implement; ``FileSystemRegistry``
keeps everything under the data directory::

    models/NAME/VERSION/{model.onnx, card.json, explain.npz}
    models/NAME/active.json    {"champion": "3", "shadows": ["4"], "history": ["1", "2"]}

Versions are 1, 2, ... per name. A model is validated when it is registered (loads in
onnxruntime, takes exactly ``FEATURE_NAMES``, yields finite probabilities, carries a
monotone calibration table), so a bad file never reaches serving. Writes of
``active.json`` are atomic (write then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lendgate.models.calibration import Calibration
from lendgate.models.explain import PathExplainer
from lendgate.models.features import FEATURE_NAMES
from lendgate.models.onnx_session import OnnxModel

MODEL_FILE, CARD_FILE, EXPLAIN_FILE = "model.onnx", "card.json", "explain.npz"


class RegistryError(Exception):
    """A registry operation was refused; the message says why.

    ``field`` names the part of a registered model at fault (``onnx``, ``card``,
    ``explainer``), None when the refusal is not about the model's files.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class ActiveState:
    """Which versions of a name serve: one champion, any shadows, earlier champions."""

    champion: str | None = None
    shadows: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelFiles:
    """One registered version: its ONNX bytes, explainer arrays (``explain.npz`` bytes,
    optional) and card."""

    name: str
    version: str
    onnx: bytes
    explain: bytes | None
    card: dict[str, Any]

    @property
    def sha256(self) -> str:
        """SHA-256 of the ONNX bytes (hex)."""
        return hashlib.sha256(self.onnx).hexdigest()


class ModelRegistry(Protocol):
    """Model versions with metadata, and the serving state of each name."""

    def register(self, name: str, source: Path, extra: dict[str, Any] | None = None) -> str:
        """Validate and copy a trained model directory; return the new version.
        ``extra`` is merged into the stored card (e.g. who registered it, when)."""
        ...

    def names(self) -> list[str]:
        """Names that have at least one version."""
        ...

    def versions(self, name: str) -> list[ModelFiles]:
        """Versions of a name, oldest first."""
        ...

    def files(self, name: str, version: str) -> ModelFiles:
        """One version; RegistryError if unknown."""
        ...

    def state(self, name: str) -> ActiveState:
        """The serving state of a name (empty if never promoted)."""
        ...

    def promote(self, name: str, version: str, *, shadow: bool = False) -> ActiveState:
        """Make a version the champion (or add it as a shadow)."""
        ...

    def unshadow(self, name: str, version: str) -> ActiveState:
        """Stop scoring a version as a shadow (no change if it is not one)."""
        ...

    def rollback(self, name: str) -> ActiveState:
        """Return to the previous champion."""
        ...


def validate_model_dir(source: Path) -> dict[str, Any]:
    """Check a trained model directory; return its card or raise RegistryError."""
    try:
        card = json.loads((source / CARD_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"unreadable model card: {exc}", field="card") from exc
    if not isinstance(card, dict):
        raise RegistryError("the model card is not a JSON object", field="card")
    try:
        model = OnnxModel(
            (source / MODEL_FILE).read_bytes(), card.get("input", {}).get("nan_as_zero", ())
        )
    except (OSError, ValueError) as exc:  # ModelSchemaError is a ValueError
        raise RegistryError(str(exc), field="onnx") from exc
    if card.get("features") != list(FEATURE_NAMES):
        raise RegistryError("the card's features are not this server's FEATURE_NAMES", field="card")
    try:
        Calibration.from_dict(card["calibration"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"bad calibration table: {exc}", field="card") from exc
    probe = np.zeros((3, len(FEATURE_NAMES)), np.float32)
    probe[1, :] = np.nan
    probe[2, :] = 1e6
    try:
        p = model.predict(probe)
    except Exception as exc:  # onnxruntime's own exception types
        raise RegistryError(f"the model fails on a probe row: {exc}", field="onnx") from exc
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise RegistryError(
            "the model yields NaN or values outside 0..1 on probe rows", field="onnx"
        )
    if (source / EXPLAIN_FILE).exists():
        try:
            explainer = PathExplainer.load(source / EXPLAIN_FILE)
        except Exception as exc:  # numpy and zipfile raise many types on a bad archive
            raise RegistryError(f"unreadable {EXPLAIN_FILE}: {exc}", field="explainer") from exc
        if explainer.n_features != len(FEATURE_NAMES):
            raise RegistryError(
                f"{EXPLAIN_FILE} has the wrong number of features", field="explainer"
            )
    return dict(card)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class FileSystemRegistry:
    """``ModelRegistry`` on a directory (``DATA_DIR/models``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def register(self, name: str, source: Path, extra: dict[str, Any] | None = None) -> str:
        """Validate and copy a trained model directory; return the new version.
        ``extra`` is merged into the stored card (e.g. who registered it, when)."""
        if not name or "/" in name or name.startswith("."):
            raise RegistryError(f"bad model name {name!r}")
        card = {**validate_model_dir(source), **(extra or {})}
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name) for p in home.iterdir() if p.is_dir() and p.name.isdigit()]
        version = str(max(numbers, default=0) + 1)
        staging = Path(tempfile.mkdtemp(dir=home, prefix=".new-"))
        for file in (MODEL_FILE, EXPLAIN_FILE):
            if (source / file).exists():
                shutil.copyfile(source / file, staging / file)
        card = {**card, "name": name, "version": version}
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
        staging.rename(home / version)
        return version

    def names(self) -> list[str]:
        """Names that have at least one version."""
        if not self.root.is_dir():
            return []
        # Only directory listings (no card reads): the server polls this every few seconds.
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and any(v.is_dir() and v.name.isdigit() for v in p.iterdir())
        )

    def versions(self, name: str) -> list[ModelFiles]:
        """Versions of a name, oldest first."""
        home = self.root / name
        if not home.is_dir():
            return []
        numbers = sorted(int(p.name) for p in home.iterdir() if p.is_dir() and p.name.isdigit())
        return [self.files(name, str(n)) for n in numbers]

    def files(self, name: str, version: str) -> ModelFiles:
        """One version; RegistryError if unknown."""
        where = self.root / name / version
        try:
            card = json.loads((where / CARD_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"no model {name} version {version}") from exc
        explain = where / EXPLAIN_FILE
        return ModelFiles(
            name,
            version,
            (where / MODEL_FILE).read_bytes(),
            explain.read_bytes() if explain.exists() else None,
            card,
        )

    def state(self, name: str) -> ActiveState:
        """The serving state of a name (empty if never promoted)."""
        try:
            data = json.loads((self.root / name / "active.json").read_text())
        except FileNotFoundError:
            return ActiveState()
        return ActiveState(data.get("champion"), list(data["shadows"]), list(data["history"]))

    def _save(self, name: str, state: ActiveState) -> ActiveState:
        _write_atomic(self.root / name / "active.json", json.dumps(asdict(state), indent=2))
        return state

    def promote(self, name: str, version: str, *, shadow: bool = False) -> ActiveState:
        """Make a version the champion (or add it as a shadow)."""
        self.files(name, version)
        state = self.state(name)
        if shadow:
            if version != state.champion and version not in state.shadows:
                state.shadows.append(version)
            return self._save(name, state)
        if state.champion == version:
            return state
        if state.champion is not None:
            state.history.append(state.champion)
        state.champion = version
        state.shadows = [v for v in state.shadows if v != version]
        return self._save(name, state)

    def rollback(self, name: str) -> ActiveState:
        """Return to the previous champion."""
        state = self.state(name)
        if not state.history:
            raise RegistryError(f"model {name} has no earlier champion to roll back to")
        state.champion = state.history.pop()
        return self._save(name, state)

    def unshadow(self, name: str, version: str) -> ActiveState:
        """Stop scoring a version as a shadow (no change if it is not one)."""
        self.files(name, version)
        state = self.state(name)
        if version not in state.shadows:
            return state
        state.shadows.remove(version)
        return self._save(name, state)
