"""Timestamps as the store and the Rust core hold them: integer microseconds since the
Unix epoch, UTC. Conversions are exact integer arithmetic (``datetime.timestamp()`` goes
through a float and can be a microsecond off far from 1970)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_us(t: datetime) -> int:
    """Microseconds since the epoch of an aware ``t`` (a naive one is taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t - EPOCH) // _MICROSECOND


def from_us(us: int) -> datetime:
    """The aware UTC datetime of ``us`` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)
