"""ROC-AUC and PR-AUC (average precision) in numpy, so serving needs no scikit-learn."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def roc_auc(y: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    yy = np.asarray(y, dtype=bool)
    x = np.asarray(score, dtype=np.float64)
    pos, neg = int(yy.sum()), int((~yy).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, np.float64)
    sorted_x = x[order]
    # Average ranks over runs of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], x.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[yy].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def pr_auc(y: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Average precision: the mean of the precision at each positive, best score first."""
    yy = np.asarray(y, dtype=bool)
    x = np.asarray(score, dtype=np.float64)
    pos = int(yy.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-x, kind="mergesort")
    hits = yy[order]
    precision = np.cumsum(hits) / np.arange(1, x.size + 1)
    return float(precision[hits].sum() / pos)
