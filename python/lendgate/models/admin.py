"""Model administration behind ``ModelRegistryService``: register from bytes, promote.

:class:`ModelAdmin` turns the API's operations into registry calls and, for anything that
changes which versions serve, goes through :class:`~lendgate.models.serving.ModelService`,
which swaps the loaded models in one assignment (hot swap: no restart, and a call in
flight finishes with the models it started with). Refusals become the domain errors the
server maps to gRPC statuses: INVALID_ARGUMENT with the field at fault, NOT_FOUND,
FAILED_PRECONDITION.
"""

from __future__ import annotations

import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lendgate.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from lendgate.models.registry import (
    CARD_FILE,
    EXPLAIN_FILE,
    MODEL_FILE,
    ActiveState,
    ModelFiles,
    RegistryError,
)
from lendgate.models.serving import ModelService

MODEL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_REQUEST_ID = 128
# Where a registry refusal points in RegisterModelVersionRequest.
_REQUEST_FIELD = {"onnx": "onnx", "card": "card_json", "explainer": "explainer"}


@dataclass(frozen=True)
class VersionInfo:
    """A registered version, its ONNX digest and its role now."""

    files: ModelFiles
    onnx_sha256: str
    champion: bool
    shadow: bool


def check_model_id(model_id: str, field: str) -> str:
    """``model_id`` if well formed, else InvalidArgumentError on ``field``."""
    if not MODEL_ID.match(model_id):
        raise InvalidArgumentError(
            "model_id: 1..64 letters, digits, '-' or '_'", field=field, reason="BAD_MODEL_ID"
        )
    return model_id


class ModelAdmin:
    """Registry operations of the API over one :class:`ModelService`."""

    def __init__(self, service: ModelService) -> None:
        self.service = service
        self.registry = service.registry
        # Registrations number versions one at a time; state changes apply one at a time.
        self._lock = threading.Lock()

    def register(
        self, model_id: str, request_id: str, onnx: bytes, card_json: str, explainer: bytes
    ) -> VersionInfo:
        """Validate and store a new version; a retried ``request_id`` returns the first."""
        if not request_id or len(request_id) > MAX_REQUEST_ID:
            raise InvalidArgumentError(
                f"required, at most {MAX_REQUEST_ID} characters", field="request_id"
            )
        if not onnx:
            raise InvalidArgumentError("required: the model as ONNX bytes", field="onnx")
        if not card_json:
            raise InvalidArgumentError("required: the model card as JSON", field="card_json")
        with self._lock:
            for files in self.registry.versions(model_id):
                if files.card.get("registered_request_id") == request_id:
                    return self.info(files)
            with tempfile.TemporaryDirectory(prefix="lendgate-model-") as tmp:
                source = Path(tmp)
                (source / MODEL_FILE).write_bytes(onnx)
                (source / CARD_FILE).write_text(card_json)
                if explainer:
                    (source / EXPLAIN_FILE).write_bytes(explainer)
                extra = {
                    "registered_request_id": request_id,
                    "registered_at": datetime.now(UTC).isoformat(),
                }
                try:
                    version = self.registry.register(model_id, source, extra)
                except RegistryError as exc:
                    field = _REQUEST_FIELD.get(exc.field or "", "parent")
                    raise InvalidArgumentError(
                        str(exc), field=field, reason="INVALID_MODEL"
                    ) from exc
        return self.info(self.registry.files(model_id, version))

    def info(self, files: ModelFiles) -> VersionInfo:
        """``files`` with its digest and its role in the serving state."""
        state = self.registry.state(files.name)
        return VersionInfo(
            files, files.sha256, files.version == state.champion, files.version in state.shadows
        )

    def versions(self, model_id: str) -> list[VersionInfo]:
        """Every version of a model, oldest first (empty for an unknown model)."""
        return [self.info(f) for f in self.registry.versions(model_id)]

    def get(self, model_id: str, version: int) -> VersionInfo:
        """One version; NotFoundError if unknown."""
        return self.info(self._files(model_id, version))

    def state(self, model_id: str) -> tuple[ActiveState, int]:
        """A model's serving state and its number of versions; NotFoundError if unknown."""
        count = len(self.registry.versions(model_id))
        if count == 0:
            raise NotFoundError(f"model {model_id!r} not found")
        return self.registry.state(model_id), count

    def promote(self, model_id: str, version: int) -> ActiveState:
        """Make a version the champion and swap it in."""
        self._files(model_id, version)
        with self._lock:
            return self.service.promote(model_id, str(version))

    def set_shadow(self, model_id: str, version: int, shadow: bool) -> ActiveState:
        """Add or remove a shadow and swap the serving models."""
        self._files(model_id, version)
        with self._lock:
            if shadow and self.registry.state(model_id).champion == str(version):
                raise FailedPreconditionError(f"version {version} is the champion, not a shadow")
            if shadow:
                return self.service.promote(model_id, str(version), shadow=True)
            return self.service.unshadow(model_id, str(version))

    def rollback(self, model_id: str) -> ActiveState:
        """Return to the previous champion and swap it in."""
        self.state(model_id)
        try:
            with self._lock:
                return self.service.rollback(model_id)
        except RegistryError as exc:
            raise FailedPreconditionError(str(exc)) from exc

    def _files(self, model_id: str, version: int) -> ModelFiles:
        try:
            return self.registry.files(model_id, str(version))
        except RegistryError:
            raise NotFoundError(f"model {model_id!r} has no version {version}") from None
