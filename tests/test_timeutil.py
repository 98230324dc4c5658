"""Microsecond timestamps: exact, both ways."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from lendgate.timeutil import from_us, to_us


def test_far_dates_are_exact_where_a_float_timestamp_is_not() -> None:
    t = datetime(2107, 1, 26, 14, 41, 11, 827_287, tzinfo=UTC)
    assert int(t.timestamp() * 1_000_000) == 4_325_496_071_827_286  # the float way: 1 µs off
    assert to_us(t) == 4_325_496_071_827_287
    assert from_us(to_us(t)) == t
    assert to_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_us(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1


def test_a_naive_time_is_taken_as_utc() -> None:
    assert to_us(datetime(2026, 11, 22, 6)) == to_us(datetime(2026, 11, 22, 6, tzinfo=UTC))


@given(st.integers(min_value=-(2**55), max_value=2**57))
def test_round_trip(us: int) -> None:
    assert to_us(from_us(us)) == us
