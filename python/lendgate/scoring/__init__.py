"""Scoring: consortium application anti-fraud and payment monitoring (seeds 001, 003).

See ``docs/SCORING.md``. :class:`ScoringService` is the domain service the gRPC
servicer (``servers/scoring.py``) delegates to; the default rule pack is data in
``default_pack/``.
"""

from lendgate.scoring.pack import DEFAULT_PACK_DIR, Pack, install, load_pack
from lendgate.scoring.service import (
    ModelScorer,
    RecoveryReport,
    ScoringService,
    StateSettings,
    report_name,
)

__all__ = [
    "DEFAULT_PACK_DIR",
    "ModelScorer",
    "Pack",
    "RecoveryReport",
    "ScoringService",
    "StateSettings",
    "install",
    "load_pack",
    "report_name",
]
