"""``lendgate train`` and ``lendgate models``: training and the model registry."""

from __future__ import annotations

from typing import Any


def add_parser(commands: Any) -> None:
    """Register ``train`` and ``models`` on the ``lendgate`` subcommand parser."""
