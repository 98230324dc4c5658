"""Serving risk models: champion and shadows per name, hot swap, micro-batching.

``ModelService.score(name, rows)`` returns, for each feature row, the champion's risk score
0..1000 with its top contributing features, or no score with a warning; never a made-up
score. Shadow versions are scored on the same rows and logged, never returned.

Hot swap: the models of a name live in one immutable ``_Slot``; ``reload`` builds the new
slot (loading sessions takes milliseconds) and then replaces the reference in one
assignment. A call in flight keeps the slot it started with, so no request fails or mixes
versions during a promote or a rollback, and the server never restarts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import struct_pb2

from lendgate.models.calibration import Calibration
from lendgate.models.explain import PathExplainer
from lendgate.models.features import FEATURE_NAMES, build_features, is_modelled
from lendgate.models.onnx_session import OnnxModel
from lendgate.models.registry import ActiveState, ModelFiles, ModelRegistry
from lendgate.v1 import scoring_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contribution:
    """One feature's part in a score (log-odds units; positive raises the risk)."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True)
class ModelScore:
    """A calibrated model score and what produced it."""

    model_name: str
    model_version: str
    risk_score: int
    raw: float
    explanation: tuple[Contribution, ...] = ()


@dataclass(frozen=True)
class ScoreResult:
    """The score of one row, or None with the reason in ``warnings``."""

    score: ModelScore | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, ready to score."""

    name: str
    version: str
    onnx: OnnxModel
    calibration: Calibration
    explainer: PathExplainer | None

    @staticmethod
    def load(files: ModelFiles) -> LoadedModel:
        """Open the ONNX session and read the calibration and explainer."""
        explainer = PathExplainer.load(files.explain) if files.explain else None
        return LoadedModel(
            files.name,
            files.version,
            OnnxModel(files.onnx, files.card["input"].get("nan_as_zero", ())),
            Calibration.from_dict(files.card["calibration"]),
            explainer,
        )

    def score(
        self, rows: npt.NDArray[np.float32], top_k: int, explain_from: int = 0
    ) -> list[ScoreResult]:
        """Scores of the rows; a NaN probability gives no score for that row. Rows scored
        at least ``explain_from`` get their ``top_k`` contributions."""
        raw = self.onnx.predict(rows)
        finite = np.isfinite(raw)
        scores = self.calibration.score(np.where(finite, raw, 0.0))
        explained: dict[int, npt.NDArray[np.float64]] = {}
        if self.explainer is not None and top_k > 0:
            wanted = np.flatnonzero(finite & (scores >= explain_from))
            if wanted.size:
                contrib = self.explainer.contributions(rows[wanted])
                explained = {int(i): contrib[k] for k, i in enumerate(wanted)}
        out = []
        for i in range(rows.shape[0]):
            if not finite[i]:
                out.append(ScoreResult(None, ("model returned NaN: no model score",)))
                continue
            explanation: tuple[Contribution, ...] = ()
            c = explained.get(i)
            if c is not None:
                top = np.argsort(-np.abs(c))[:top_k]
                explanation = tuple(
                    Contribution(FEATURE_NAMES[j], float(rows[i, j]), float(c[j]))
                    for j in top
                    if c[j] != 0.0
                )
            score = ModelScore(self.name, self.version, int(scores[i]), float(raw[i]), explanation)
            out.append(ScoreResult(score))
        return out


@dataclass(frozen=True)
class _Slot:
    champion: LoadedModel | None = None
    shadows: tuple[LoadedModel, ...] = ()


@dataclass
class ModelService:
    """The serving side of the registry: score rows with the active models of a name."""

    registry: ModelRegistry
    top_k: int = 10
    explain_from: int = 0
    """Explain only scores of at least this (0..1000): the explainer costs several times
    the score itself, and a report below the review band is rarely read. 0 explains all."""
    _slots: dict[str, _Slot] = field(default_factory=dict)

    def reload(self, name: str) -> ActiveState:
        """Load the registry's current champion and shadows of ``name`` and swap them in."""
        state = self.registry.state(name)
        champion = None
        if state.champion is not None:
            champion = LoadedModel.load(self.registry.files(name, state.champion))
        shadows = tuple(LoadedModel.load(self.registry.files(name, v)) for v in state.shadows)
        self._slots[name] = _Slot(champion, shadows)  # the atomic swap
        return state

    def load_all(self) -> list[str]:
        """Load the serving state of every registered name (at server start); return the
        names loaded. A name whose files fail to load serves no score (logged), rather
        than keeping the server from starting."""
        loaded = []
        for name in self.registry.names():
            try:
                self.reload(name)
                loaded.append(name)
            except Exception as exc:  # onnxruntime, numpy and OS errors alike
                log.warning("model not loaded", extra={"model": name, "error": str(exc)})
        return loaded

    def refresh(self) -> list[str]:
        """Reload the names whose serving state in the registry differs from what is
        loaded (changed by another process, e.g. ``lendgate retrain``); return them."""
        changed = []
        for name in self.registry.names():
            state = self.registry.state(name)
            if self.active(name) != (state.champion, tuple(state.shadows)):
                self.reload(name)
                changed.append(name)
        return changed

    def watch(self, interval_s: float = 2.0) -> threading.Event:
        """Poll the registry every ``interval_s`` in a daemon thread and hot-swap what
        changed; set the returned event to stop."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval_s):
                try:
                    for name in self.refresh():
                        log.info("model state reloaded", extra={"model": name})
                except Exception as exc:  # a bad registry write must not stop serving
                    log.warning("model registry poll failed", extra={"error": str(exc)})

        threading.Thread(target=loop, name="model-registry-watch", daemon=True).start()
        return stop

    def promote(self, name: str, version: str, *, shadow: bool = False) -> ActiveState:
        """Promote in the registry, then hot-swap."""
        self.registry.promote(name, version, shadow=shadow)
        return self.reload(name)

    def unshadow(self, name: str, version: str) -> ActiveState:
        """Remove a shadow in the registry, then hot-swap."""
        self.registry.unshadow(name, version)
        return self.reload(name)

    def rollback(self, name: str) -> ActiveState:
        """Roll back in the registry, then hot-swap."""
        self.registry.rollback(name)
        return self.reload(name)

    def serving(self, name: str) -> bool:
        """Whether ``name`` has a champion loaded now."""
        slot = self._slots.get(name)
        return slot is not None and slot.champion is not None

    def active(self, name: str) -> tuple[str | None, tuple[str, ...]]:
        """Versions serving now: the champion's and the shadows'."""
        slot = self._slots.get(name, _Slot())
        return (
            slot.champion.version if slot.champion else None,
            tuple(m.version for m in slot.shadows),
        )

    def score(
        self, name: str, rows: Sequence[Sequence[float]] | npt.ArrayLike
    ) -> list[ScoreResult]:
        """Score feature rows (``FEATURE_NAMES`` order) with the champion of ``name``."""
        x = np.atleast_2d(np.asarray(rows, dtype=np.float32))
        slot = self._slots.get(name)  # one read: the whole call uses this slot
        if slot is None or slot.champion is None:
            return [ScoreResult(None) for _ in range(x.shape[0])]
        try:
            results = slot.champion.score(x, self.top_k, self.explain_from)
        except Exception as exc:  # a failing model degrades to "no score", never an error
            log.warning("model scoring failed", extra={"model": name, "error": str(exc)})
            warning = f"model scoring failed ({type(exc).__name__}): no model score"
            return [ScoreResult(None, (warning,)) for _ in range(x.shape[0])]
        for shadow in slot.shadows:
            self._score_shadow(shadow, x)
        return results

    def _score_shadow(self, shadow: LoadedModel, x: npt.NDArray[np.float32]) -> None:
        try:
            for r in shadow.score(x, top_k=0):
                if r.score is not None:
                    log.info(
                        "shadow score",
                        extra={
                            "model": shadow.name,
                            "version": shadow.version,
                            "risk_score": r.score.risk_score,
                        },
                    )
        except Exception as exc:  # a shadow never affects the answer
            log.warning("shadow model failed", extra={"model": shadow.name, "error": str(exc)})


class MicroBatcher:
    """Batches the rows of concurrent requests into one ONNX call.

    The first request of a batch schedules a flush for the next event-loop turn (or after
    ``max_delay_s``); every request that arrives before it joins the batch, up to
    ``max_batch`` rows, which flush at once. A lone request is therefore never delayed by
    more than one loop turn.
    """

    def __init__(
        self, service: ModelService, name: str, max_batch: int = 64, max_delay_s: float = 0.0
    ) -> None:
        self.service = service
        self.name = name
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._rows: list[Sequence[float]] = []
        self._waiters: list[asyncio.Future[ScoreResult]] = []
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self.batches = 0

    async def score(self, row: Sequence[float]) -> ScoreResult:
        """The score of one feature row."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ScoreResult] = loop.create_future()
        self._rows.append(row)
        self._waiters.append(future)
        if len(self._rows) >= self.max_batch:
            self._flush()
        elif self._scheduled is None:
            if self.max_delay_s > 0:
                self._scheduled = loop.call_later(self.max_delay_s, self._flush)
            else:
                self._scheduled = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        rows, waiters = self._rows, self._waiters
        self._rows, self._waiters = [], []
        if not rows:
            return
        self.batches += 1
        try:
            results = self.service.score(self.name, rows)
        except Exception as exc:  # e.g. a malformed row: fail those calls, not the loop
            for w in waiters:
                if not w.done():
                    w.set_exception(exc)
            return
        for w, r in zip(waiters, results, strict=True):
            if not w.done():
                w.set_result(r)


APPLICATION_MODEL = "application-gbdt"
"""The model name whose champion scores application checks (``lendgate train``'s default
name): register and promote versions under it to have them serve."""


class CheckModel:
    """The model callable the scoring service hands the Rust scorer (``ModelScorer``).

    Called once per check with the event document, the aggregate parameters the scorer
    computed (the event not yet applied) and the rules' verdict without a model score, it
    builds the feature row
    (:func:`~lendgate.models.features.build_features`, the training code path), scores it
    with the champion of ``name`` — reading the serving slot once, so a promote in
    between swaps cleanly — and returns ``(risk score, name, version)``, or ``None``: no
    champion, an event the model does not score, or a model that failed or gave NaN. It
    never raises (a failing model must never fail the check). Shadows are scored and
    logged by :meth:`ModelService.score`, never returned.

    What the scorer's return value cannot carry — the top contributions and the warnings
    — is kept as serialized ``Report`` fields (:meth:`take_report_addendum`), which the
    scoring service appends to the report bytes the scorer encoded (protobuf merges
    concatenated messages: repeated fields append).
    """

    def __init__(self, service: ModelService, name: str = APPLICATION_MODEL) -> None:
        self.service = service
        self.name = name
        self._addendum = b""

    def is_active(self) -> bool:
        """Whether a champion serves now. The scoring service asks before each check and
        hands the scorer no model otherwise: the call itself (the event, the parameters
        and the verdict turned into Python objects, the aggregates evaluated once more)
        costs a few hundred microseconds a check even when it returns ``None``."""
        return self.service.serving(self.name)

    def __call__(
        self, event: Mapping[str, Any], params: Mapping[str, Any], rules: Mapping[str, Any]
    ) -> tuple[int, str, str] | None:
        self._addendum = b""
        if not is_modelled(event) or not self.service.serving(self.name):
            return None
        try:
            row = build_features(event, params, rules)
        except Exception as exc:  # a malformed document must degrade, not fail the check
            log.warning("model features failed", extra={"model": self.name, "error": str(exc)})
            self._set_addendum(
                ScoreResult(
                    None, (f"model features failed ({type(exc).__name__}): no model score",)
                )
            )
            return None
        (result,) = self.service.score(self.name, [row])
        self._set_addendum(result)
        if result.score is None:
            return None
        return result.score.risk_score, result.score.model_name, result.score.model_version

    def take_report_addendum(self) -> bytes:
        """Serialized ``Report`` fields of the last call (``model_explanation``,
        ``warnings``), then forgotten; empty when there are none."""
        out, self._addendum = self._addendum, b""
        return out

    def _set_addendum(self, result: ScoreResult) -> None:
        report = scoring_pb2.Report(warnings=result.warnings)
        if result.score is not None:
            for c in result.score.explanation:
                value = (
                    struct_pb2.Value(number_value=c.value)
                    if math.isfinite(c.value)
                    else struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
                )
                report.model_explanation.add(
                    feature=c.feature, value=value, contribution=c.contribution
                )
        self._addendum = report.SerializeToString()
