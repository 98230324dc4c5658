"""Validation of a decoded event document.

The check path validates in Rust (``lendgate_core::scoring::event``, inside
:meth:`lendgate._core.Scorer.prepare`); this module exposes the same validation for a
document already in Python (tests, tools). Violations name the request's proto path
(``application.applicant.birth_date``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lendgate import _core
from lendgate.errors import FieldViolation, core_errors
from lendgate.timeutil import to_us


def validate(kind: str, event: Mapping[str, Any], now: datetime) -> list[FieldViolation]:
    """Every problem of the event ``kind`` (``application``/``payment``) received at
    ``now``, as violations whose field is the request's proto path."""
    with core_errors():
        found = _core.validate_event(kind, json.dumps(event, default=str), to_us(now))
    return [FieldViolation(field, description) for field, description in found]
