"""Scoring: consortium application anti-fraud and payment monitoring (seeds 001, 003).

The default rule pack is data in ``default_pack/``; see :mod:`lendgate.scoring.pack`.
"""

from lendgate.scoring.pack import DEFAULT_PACK_DIR, Pack, install, load_pack

__all__ = ["DEFAULT_PACK_DIR", "Pack", "install", "load_pack"]
