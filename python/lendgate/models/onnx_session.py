"""One onnxruntime session configured for a latency-bound server on few cores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from lendgate.models.features import FEATURE_NAMES


class ModelSchemaError(ValueError):
    """The ONNX model does not take the feature row or yield probabilities."""


def session_options() -> ort.SessionOptions:
    """One thread per session and no spinning: a request never burns a second core
    waiting for work, and sessions of several models share the machine fairly."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class OnnxModel:
    """A loaded ONNX fraud model: float32 rows of ``FEATURE_NAMES`` → P(fraud)."""

    def __init__(self, model: bytes | str, nan_as_zero: Sequence[str] = ()) -> None:
        # LightGBM reads NaN as 0.0 in features that had no missing values in training;
        # ONNX trees would send NaN the other way, so those columns are zeroed first.
        self._zero = np.asarray([FEATURE_NAMES.index(f) for f in nan_as_zero], np.intp)
        try:
            self.session = ort.InferenceSession(
                model, session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelSchemaError(f"not a loadable ONNX model: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise ModelSchemaError("the model must take one float tensor")
        shape = inputs[0].shape
        if len(shape) != 2 or shape[1] != len(FEATURE_NAMES):
            raise ModelSchemaError(
                f"the model input has shape {shape}, expected [N, {len(FEATURE_NAMES)}]"
            )
        outputs = [o.name for o in self.session.get_outputs()]
        if "probabilities" not in outputs:
            raise ModelSchemaError(f"the model has no 'probabilities' output (has {outputs})")
        self._input = inputs[0].name
        self._outputs = ["probabilities"]

    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """P(fraud) of each row."""
        rows = np.ascontiguousarray(np.atleast_2d(np.asarray(x, dtype=np.float32)))
        if self._zero.size and rows.shape[1] == len(FEATURE_NAMES):
            cols = rows[:, self._zero]
            if np.isnan(cols).any():
                rows = rows.copy()
                rows[:, self._zero] = np.nan_to_num(cols, nan=0.0)
        (proba,) = self.session.run(self._outputs, {self._input: rows})
        return np.asarray(proba, dtype=np.float64)[:, 1]
