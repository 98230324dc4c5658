"""ModelRegistryService servicer: thin conversion between the contract and lendgate.models."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from lendgate.auth import current_partner
from lendgate.errors import InvalidArgumentError, PermissionDeniedError
from lendgate.models.admin import ModelAdmin, VersionInfo, check_model_id
from lendgate.models.registry import ActiveState
from lendgate.v1 import models_pb2

PREFIX = "models/"


def _model_id(name: str, field: str) -> str:
    model_id = name.removeprefix(PREFIX) if name.startswith(PREFIX) else ""
    if not model_id:
        raise InvalidArgumentError(f"expected models/{{model_id}}, got {name!r}", field=field)
    return check_model_id(model_id, field)


def _version_name(name: str) -> tuple[str, int]:
    parts = name.removeprefix(PREFIX).split("/") if name.startswith(PREFIX) else []
    if len(parts) != 3 or parts[1] != "versions" or not parts[2].isdigit():
        raise InvalidArgumentError(
            f"expected models/{{model_id}}/versions/{{version}}, got {name!r}", field="name"
        )
    return check_model_id(parts[0], "name"), int(parts[2])


def _version_pb(v: VersionInfo) -> models_pb2.ModelVersion:
    card = v.files.card
    metrics = card.get("metrics", {})
    pb = models_pb2.ModelVersion(
        name=f"{PREFIX}{v.files.name}/versions/{v.files.version}",
        version=int(v.files.version),
        card_json=json.dumps(card, indent=2),
        holdout_roc_auc=float(metrics.get("holdout_roc_auc", 0.0)),
        holdout_pr_auc=float(metrics.get("holdout_pr_auc", 0.0)),
        feature_count=len(card.get("features", ())),
        onnx_sha256=v.onnx_sha256,
        champion=v.champion,
        shadow=v.shadow,
    )
    if "registered_at" in card:
        pb.create_time.FromDatetime(datetime.fromisoformat(card["registered_at"]))
    return pb


def _model_pb(model_id: str, state: ActiveState, count: int) -> models_pb2.Model:
    def version(v: str) -> str:
        return f"{PREFIX}{model_id}/versions/{v}"

    return models_pb2.Model(
        name=PREFIX + model_id,
        champion_version=version(state.champion) if state.champion else "",
        shadow_versions=[version(v) for v in state.shadows],
        previous_champions=[version(v) for v in state.history],
        version_count=count,
    )


class ModelRegistryServicer:
    """Implements lendgate.v1.ModelRegistryService over a :class:`ModelAdmin`."""

    def __init__(self, admin: ModelAdmin, admins: frozenset[str] | None = None) -> None:
        """``admins``: the partners allowed to register and promote models (the
        consortium's operators, setting ``rule_admins``); ``None`` lets every
        authenticated partner (development mode only). Reads are open to all."""
        self._admin = admin
        self._admins = admins

    def _require_admin(self) -> None:
        # The champion scores every partner's applications: changing it is the
        # consortium operator's decision, like a change of the rule pack.
        partner = current_partner().partner_id
        if self._admins is not None and partner not in self._admins:
            raise PermissionDeniedError(
                f"partner {partner!r} may not change the consortium's models"
                " (setting 'rule_admins')"
            )

    def _model(self, model_id: str, state: ActiveState) -> models_pb2.Model:
        return _model_pb(model_id, state, len(self._admin.registry.versions(model_id)))

    async def RegisterModelVersion(
        self, request: Any, context: Any
    ) -> models_pb2.RegisterModelVersionResponse:
        """Validate (in a worker thread: it loads the model) and store a new version."""
        self._require_admin()
        model_id = _model_id(request.parent, "parent")
        info = await asyncio.to_thread(
            self._admin.register,
            model_id,
            request.request_id,
            request.onnx,
            request.card_json,
            request.explainer,
        )
        return models_pb2.RegisterModelVersionResponse(model_version=_version_pb(info))

    async def ListModelVersions(
        self, request: Any, context: Any
    ) -> models_pb2.ListModelVersionsResponse:
        """Every version of a model, oldest first."""
        model_id = _model_id(request.parent, "parent")
        return models_pb2.ListModelVersionsResponse(
            model_versions=[_version_pb(v) for v in self._admin.versions(model_id)]
        )

    async def GetModelVersion(
        self, request: Any, context: Any
    ) -> models_pb2.GetModelVersionResponse:
        """One version with its card."""
        return models_pb2.GetModelVersionResponse(
            model_version=_version_pb(self._admin.get(*_version_name(request.name)))
        )

    async def GetModel(self, request: Any, context: Any) -> models_pb2.GetModelResponse:
        """A model's serving state."""
        model_id = _model_id(request.name, "name")
        state, count = self._admin.state(model_id)
        return models_pb2.GetModelResponse(model=_model_pb(model_id, state, count))

    async def PromoteModelVersion(
        self, request: Any, context: Any
    ) -> models_pb2.PromoteModelVersionResponse:
        """Make a version the champion; in effect when this returns."""
        self._require_admin()
        model_id, version = _version_name(request.name)
        state = await asyncio.to_thread(self._admin.promote, model_id, version)
        return models_pb2.PromoteModelVersionResponse(model=self._model(model_id, state))

    async def SetShadowModelVersion(
        self, request: Any, context: Any
    ) -> models_pb2.SetShadowModelVersionResponse:
        """Add or remove a shadow; in effect when this returns."""
        self._require_admin()
        model_id, version = _version_name(request.name)
        state = await asyncio.to_thread(self._admin.set_shadow, model_id, version, request.shadow)
        return models_pb2.SetShadowModelVersionResponse(model=self._model(model_id, state))

    async def RollbackModel(self, request: Any, context: Any) -> models_pb2.RollbackModelResponse:
        """Return to the previous champion; in effect when this returns."""
        self._require_admin()
        model_id = _model_id(request.name, "name")
        state = await asyncio.to_thread(self._admin.rollback, model_id)
        return models_pb2.RollbackModelResponse(model=self._model(model_id, state))
