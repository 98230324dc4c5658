"""Raw model score → seed 003's normalised risk score 0..1000.

The table is fitted on the training population so that each 100-point band holds seed
003's share of events (the riskiest 0.25% at 900-1000, ..., the safest 50% at 0-100).
Inside a band the score is interpolated linearly in the raw score, so the map is monotone.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# (low, high, share of events) from seed 003's "normalised risk score" table.
BANDS: tuple[tuple[int, int, float], ...] = (
    (900, 1000, 0.0025),
    (800, 900, 0.0025),
    (700, 800, 0.005),
    (600, 700, 0.02),
    (500, 600, 0.02),
    (400, 500, 0.05),
    (300, 400, 0.10),
    (200, 300, 0.10),
    (100, 200, 0.20),
    (0, 100, 0.50),
)
SCORE_KNOTS: tuple[int, ...] = tuple(range(0, 1001, 100))


def _cumulative_from_bottom() -> list[float]:
    shares = [b[2] for b in sorted(BANDS)]
    out = [0.0]
    for share in shares:
        out.append(out[-1] + share)
    out[-1] = 1.0
    return out


@dataclass(frozen=True)
class Calibration:
    """Knots: raw score ``raw[k]`` maps to ``100 * k``; linear in between."""

    raw: tuple[float, ...]

    @staticmethod
    def fit(raw_scores: npt.ArrayLike) -> Calibration:
        """Fit the knots on a population's raw scores (probabilities in 0..1)."""
        x = np.sort(np.asarray(raw_scores, dtype=np.float64))
        if x.size < 400:
            raise ValueError(f"calibration needs at least 400 scores, got {x.size}")
        knots = [0.0]
        for q in _cumulative_from_bottom()[1:-1]:
            # Band k starts at the first score above the q share of the population.
            knots.append(float(x[min(round(q * x.size), x.size - 1)]))
        knots.append(1.0)
        for k in range(1, len(knots)):  # ties: keep the map strictly increasing
            if knots[k] <= knots[k - 1]:
                knots[k] = float(np.nextafter(knots[k - 1], np.inf))
        return Calibration(tuple(knots))

    def score(self, raw_scores: npt.ArrayLike) -> npt.NDArray[np.int32]:
        """Risk scores 0..1000 of raw scores (NaN is not allowed: check before)."""
        x = np.asarray(raw_scores, dtype=np.float64)
        scores = np.floor(np.interp(x, self.raw, SCORE_KNOTS))
        return np.clip(scores, 0, 1000).astype(np.int32)

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """JSON form for the model card."""
        return {"raw": list(self.raw), "score": list(SCORE_KNOTS)}

    @staticmethod
    def from_dict(data: Mapping[str, Sequence[float]]) -> Calibration:
        """Read the model card's form; rejects a table that is not monotone."""
        raw = tuple(float(v) for v in data["raw"])
        if len(raw) != len(SCORE_KNOTS) or list(data["score"]) != list(SCORE_KNOTS):
            raise ValueError("calibration table must have knots at 0, 100, ..., 1000")
        if any(b <= a for a, b in itertools.pairwise(raw)):
            raise ValueError("calibration table is not strictly increasing")
        return Calibration(raw)


def band_shares(scores: npt.ArrayLike) -> dict[str, float]:
    """Share of scores in each band, keyed "900-1000", ..., "0-100"."""
    x = np.asarray(scores)
    n = max(x.size, 1)
    out = {}
    for low, high, _ in BANDS:
        inside = (x >= low) & ((x < high) if high < 1000 else (x <= high))
        out[f"{low}-{high}"] = float(inside.sum()) / n
    return out


def target_shares() -> dict[str, float]:
    """Seed 003's share of each band."""
    return {f"{low}-{high}": share for low, high, share in BANDS}
