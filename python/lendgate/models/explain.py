"""Per-score explanations: path attributions of a tree ensemble, computed with numpy.

For every tree the row's decision path is followed; each split's change of the node value
(child minus parent) is credited to the split's feature (the Saabas method). The
contributions plus the bias (sum of the root values) add up exactly to the raw log-odds, as
tree SHAP's do; unlike SHAP they can favour features split near the leaves. We use it
because LightGBM's exact tree SHAP (``pred_contrib``) costs about 4 ms per row and needs
the native library at serve time, while this needs only the tree arrays saved next to the
ONNX model (``explain.npz``). Each leaf's contributions are tabulated when the explainer is
loaded, so a row costs a walk to its leaves and one gather-and-sum (see docs/MODELS.md).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2


class PathExplainer:
    """Tree arrays of a LightGBM binary model, padded to (trees, nodes)."""

    def __init__(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.feature = arrays["feature"].astype(np.int32)
        self.threshold = arrays["threshold"].astype(np.float64)
        self.left = arrays["left"].astype(np.int32)
        self.right = arrays["right"].astype(np.int32)
        self.value = arrays["value"].astype(np.float64)
        self.is_leaf = arrays["is_leaf"].astype(bool)
        self.default_left = arrays["default_left"].astype(bool)
        self.missing = arrays["missing"].astype(np.int8)
        self.n_features = int(arrays["n_features"])
        self.depth = int(arrays["depth"])
        self.bias = float(self.value[:, 0].sum())
        self._compile()

    def _compile(self) -> None:
        """Flatten the trees for the walk and tabulate each leaf's contributions.

        A leaf's contributions (the value changes along its path, credited to each
        split's feature) do not depend on the row, so they are summed once here; scoring
        a row is then a walk to its leaves plus one gather-and-sum. Node ``(t, i)`` is
        ``t * width + i`` in the flat arrays; a leaf's "children" are itself, so rows
        that reached a leaf early stay put while the others walk on.
        """
        n_trees, width = self.feature.shape
        base = (np.arange(n_trees, dtype=np.int64) * width)[:, None]
        leaf = self.is_leaf
        own = np.broadcast_to(np.arange(width), (n_trees, width))
        self._base = base[:, 0]
        self._feature = self.feature.ravel().astype(np.intp)
        self._threshold = self.threshold.ravel()
        self._left = (base + np.where(leaf, own, self.left)).ravel()
        self._right = (base + np.where(leaf, own, self.right)).ravel()
        # Where a NaN goes: the default side when NaN or zero means missing, else where
        # 0.0 goes (LightGBM reads NaN as 0 there). Zero itself takes the default side
        # only at "zero is missing" splits: _zero_default marks them.
        missing, default_left = self.missing.ravel(), self.default_left.ravel()
        self._nan_left = np.where(missing == _MISSING_NONE, self._threshold >= 0.0, default_left)
        self._zero_default = missing == _MISSING_ZERO
        self._default_left = default_left
        table = np.zeros((n_trees * width, self.n_features), np.float64)
        value = self.value.ravel()
        for t in range(n_trees):  # depth-first from each root: parents before children
            stack = [int(base[t, 0])]
            while stack:
                node = stack.pop()
                if leaf.ravel()[node]:
                    continue
                f = self._feature[node]
                for child in (int(self._left[node]), int(self._right[node])):
                    table[child] = table[node]
                    table[child, f] += value[child] - value[node]
                    stack.append(child)
        self._leaf_table = table

    @staticmethod
    def from_lightgbm_dump(dump: dict[str, Any]) -> PathExplainer:
        """Build from ``Booster.dump_model()`` (numerical splits only)."""
        trees = [t["tree_structure"] for t in dump["tree_info"]]
        nodes: list[list[dict[str, Any]]] = []
        depth = 0
        for root in trees:
            flat: list[dict[str, Any]] = []
            stack = [(root, 0)]
            while stack:  # number nodes depth-first; children refer to indexes
                node, d = stack.pop()
                depth = max(depth, d)
                node = dict(node)
                node["_id"] = len(flat)
                flat.append(node)
                if "split_index" in node:
                    node["_children"] = (node.pop("left_child"), node.pop("right_child"))
                    stack.append((node["_children"][1], d + 1))
                    stack.append((node["_children"][0], d + 1))
            nodes.append(flat)
        width = max(len(f) for f in nodes)
        shape = (len(nodes), width)
        a: dict[str, npt.NDArray[Any]] = {
            "feature": np.zeros(shape, np.int32),
            "threshold": np.zeros(shape, np.float64),
            "left": np.zeros(shape, np.int32),
            "right": np.zeros(shape, np.int32),
            "value": np.zeros(shape, np.float64),
            "is_leaf": np.ones(shape, bool),
            "default_left": np.zeros(shape, bool),
            "missing": np.zeros(shape, np.int8),
        }
        for t, flat in enumerate(nodes):
            for n in flat:
                i = n["_id"]
                if "split_index" not in n:
                    a["value"][t, i] = n["leaf_value"]
                    continue
                if n.get("decision_type", "<=") != "<=":
                    raise ValueError("categorical splits are not supported by the explainer")
                a["is_leaf"][t, i] = False
                a["feature"][t, i] = n["split_feature"]
                a["threshold"][t, i] = n["threshold"]
                a["value"][t, i] = n["internal_value"]
                a["default_left"][t, i] = n["default_left"]
                a["missing"][t, i] = {"None": 0, "Zero": 1, "NaN": 2}[n["missing_type"]]
            for n in flat:
                if "_children" in n:
                    left, right = n["_children"]
                    a["left"][t, n["_id"]] = _find(flat, left)
                    a["right"][t, n["_id"]] = _find(flat, right)
        a["n_features"] = np.array(dump["max_feature_idx"] + 1)
        a["depth"] = np.array(depth)
        return PathExplainer(a)

    def save(self, path: Path) -> None:
        """Write the arrays as ``.npz`` (no pickles)."""
        np.savez_compressed(
            path,
            feature=self.feature,
            threshold=self.threshold,
            left=self.left,
            right=self.right,
            value=self.value,
            is_leaf=self.is_leaf,
            default_left=self.default_left,
            missing=self.missing,
            n_features=np.array(self.n_features),
            depth=np.array(self.depth),
        )

    @staticmethod
    def load(source: Path | bytes) -> PathExplainer:
        """Read arrays written by :meth:`save` (a file, or its bytes)."""
        with np.load(
            io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False
        ) as data:
            return PathExplainer({k: data[k] for k in data.files})

    def contributions(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Contributions (rows, features) to the raw log-odds; rows sum to raw - bias."""
        rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if rows.shape[0] == 1:
            return self._one(rows[0])[None, :]
        node = np.broadcast_to(self._base, (rows.shape[0], self._base.size))
        zero_splits = bool(self._zero_default.any())
        for _ in range(self.depth):
            v = np.take_along_axis(rows, self._feature[node], axis=1)
            go_left = np.where(np.isnan(v), self._nan_left[node], v <= self._threshold[node])
            if zero_splits:
                zero = self._zero_default[node] & (np.abs(v) <= 1e-35)
                go_left = np.where(zero, self._default_left[node], go_left)
            node = np.where(go_left, self._left[node], self._right[node])
        out: npt.NDArray[np.float64] = self._leaf_table[node].sum(axis=1)
        return out

    def _one(self, row: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """:meth:`contributions` of one row (a served check): plain fancy indexing, about
        half the cost of the batch walk's ``take_along_axis`` on a 1-row batch."""
        node = self._base
        zero_splits = bool(self._zero_default.any())
        for _ in range(self.depth):
            v = row[self._feature[node]]
            go_left = np.where(np.isnan(v), self._nan_left[node], v <= self._threshold[node])
            if zero_splits:
                zero = self._zero_default[node] & (np.abs(v) <= 1e-35)
                go_left = np.where(zero, self._default_left[node], go_left)
            node = np.where(go_left, self._left[node], self._right[node])
        out: npt.NDArray[np.float64] = self._leaf_table[node].sum(axis=0)
        return out


def _find(flat: list[dict[str, Any]], child: dict[str, Any]) -> int:
    key = child.get("split_index"), child.get("leaf_index")
    for n in flat:
        if (n.get("split_index", None), n.get("leaf_index", None)) == key:
            return int(n["_id"])
    raise ValueError("malformed tree dump")
