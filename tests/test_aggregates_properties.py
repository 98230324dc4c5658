"""Property tests: the Rust aggregates against ``tests/aggregates_reference.py``.

Random definitions (every element kind: single values, ``time_and_value``,
``date_and_counter`` by day or hour, ``unique`` and ``time_and_last_unique_value``; depth
in records and days, windows with ``last``/``skip``, composite keys, ``except:
record``/``value``, filters, every ``calc_aggregate`` function including median and
percentiles) and random event streams (out of order within the lateness, some beyond
it, missing and differently spelt key parts, values seen again) must give the same
parameters as the reference, event by event, and the same refusals — with expiry passes
at random points, which must not change any answer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lendgate import AggregateStore, InvalidArgumentError
from tests.aggregates_reference import DAY, Reference, RefusedError

T0 = 1_709_251_200_000
LATENESS_S = 6 * 3600
AGGS = [
    "count",
    "any_count",
    "unique_count",
    "sum",
    "max",
    "min",
    "mean",
    "value",
    "median",
    "percentile",
]

SINGLES = ["first", "last", "sum", "min", "max", "count"]
ARRAYS = ["time_and_value", "date_and_counter", "unique", "time_and_last_unique_value"]


@st.composite
def element(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(ARRAYS + SINGLES))
    e: dict[str, Any] = {"name": name, "kind": kind}
    if kind == "date_and_counter":
        e["bucket"] = draw(st.sampled_from(["day", "hour"]))
    elif kind != "count":
        e.update(attr="v", type="integer")
    if kind in ARRAYS and draw(st.booleans()):
        e["max_records"] = draw(st.integers(1, 6))
    if draw(st.booleans()):
        e["max_days"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        e["filter"] = {"all": [{"attr": "f", "eq": "y"}]}
    return e


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    objects = []
    params: list[dict[str, Any]] = []
    for oi in range(draw(st.integers(1, 2))):
        key_attrs = draw(st.sampled_from([["k1"], ["k2"], ["k1", "k2"]]))
        elements = [draw(element(f"e{i}")) for i in range(draw(st.integers(1, 2)))]
        obj = {
            "name": f"O{oi}",
            "key": [{"attr": a, "kind": "text"} for a in key_attrs],
            "elements": elements,
        }
        objects.append(obj)
        for e in elements:
            for _ in range(draw(st.integers(1, 3))):
                single = e["kind"] in SINGLES
                p: dict[str, Any] = {
                    "fn": "calc_aggregate",
                    "name": f"p{len(params)}",
                    "object": obj["name"],
                    "element": e["name"],
                    "agg": "value" if single else draw(st.sampled_from(AGGS)),
                }
                if p["agg"] == "percentile":
                    p["p"] = draw(st.sampled_from([0, 10, 25, 50, 90, 95, 100]))
                values = e["kind"] not in [*SINGLES, "date_and_counter"]
                ex = draw(
                    st.sampled_from(["none", "record", "value"] if values else ["none", "record"])
                )
                if ex != "none":
                    p["except"] = ex
                if not single and draw(st.booleans()):
                    unit = draw(st.sampled_from(["minutes", "hours", "days"]))
                    p["window"] = {"unit": unit, "last": draw(st.integers(1, 90))}
                    if draw(st.booleans()):
                        p["window"]["skip"] = draw(st.integers(0, 3))
                params.append(p)
    return {
        "time_attr": "t",
        "allowed_lateness_seconds": LATENESS_S,
        "retention_days": 4,
        "objects": objects,
        "params": params,
    }


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    t = T0
    for _ in range(draw(st.integers(1, 40))):
        # Mostly forward (minutes to a day), sometimes back within (or beyond) lateness.
        step = draw(
            st.one_of(
                st.integers(0, 3 * 3_600_000),
                st.integers(DAY // 2, 2 * DAY),
                st.integers(-(LATENESS_S + 600) * 1000, 0),
            )
        )
        t = max(T0, t + step)
        ev: dict[str, Any] = {"t": t}
        for k in ("k1", "k2"):
            part = draw(st.sampled_from(["a", "A ", " a", "b", "c", "", None]))
            if part is not None:
                ev[k] = part
        v = draw(st.one_of(st.none(), st.integers(-3, 5)))
        if v is not None:
            ev["v"] = v
        ev["f"] = draw(st.sampled_from(["y", "n"]))
        out.append(ev)
    return out


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(defs=definitions(), stream=events(), expire_at=st.sets(st.integers(0, 40)))
def test_rust_matches_the_reference(
    defs: dict[str, Any], stream: list[dict[str, Any]], expire_at: set[int]
) -> None:
    check_against_reference(defs, stream, expire_at)


def check_against_reference(
    defs: dict[str, Any], stream: list[dict[str, Any]], expire_at: set[int]
) -> None:
    """Applies ``stream`` to the Rust store and the reference; expiry passes run before
    the events numbered in ``expire_at``. Answers and refusals must be the same."""
    store = AggregateStore(defs)
    ref = Reference(defs)
    for i, ev in enumerate(stream):
        if i in expire_at:
            store.expire_all()
        try:
            want = ref.apply(ev)
        except RefusedError:
            with pytest.raises(InvalidArgumentError) as err:
                store.apply(json.dumps(ev))
            assert err.value.violations[0].field == "t"
            continue
        got = store.apply(json.dumps(ev))
        for name, w in want.items():
            g = got[name]
            assert g == w and type(g) is type(w), (
                f"event {i} {ev}: {name} = {g!r}, reference {w!r}\n"
                f"defs: {json.dumps(defs)}\nstream: {json.dumps(stream[: i + 1])}"
            )


@st.composite
def distinct_case(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One key, one ``unique`` or ``time_and_last_unique_value`` element with a small
    depth, and a stream that keeps coming back below the watermark: values seen again
    move or restart records that lie before the cut, and later late events (some
    without a value, so they only query) look at the times in between."""
    kind = draw(st.sampled_from(["unique", "time_and_last_unique_value"]))
    element: dict[str, Any] = {"name": "e", "kind": kind, "attr": "v", "type": "integer"}
    element["max_records"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        element["max_days"] = 1
    params: list[dict[str, Any]] = [
        {"fn": "calc_aggregate", "name": f"p{i}", "object": "O", "element": "e", "agg": agg}
        for i, agg in enumerate(["count", "value", "min", "unique_count"])
    ]
    params.append({**params[0], "name": "before", "except": "record"})
    defs = {
        "time_attr": "t",
        "allowed_lateness_seconds": 3600,
        "retention_days": 2,
        "objects": [{"name": "O", "key": [{"attr": "k"}], "elements": [element]}],
        "params": params,
    }
    stream = []
    t = T0
    minute = 60_000
    for _ in range(draw(st.integers(4, 30))):
        t = max(
            T0, t + draw(st.sampled_from([-70, -50, -30, -10, -1, 0, 1, 10, 30, 90, 600])) * minute
        )
        ev: dict[str, Any] = {"t": t, "k": "a"}
        v = draw(st.one_of(st.none(), st.integers(0, 3)))
        if v is not None:
            ev["v"] = v
        stream.append(ev)
    return defs, stream


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=distinct_case(), expire_at=st.sets(st.integers(0, 30)))
def test_late_events_do_not_bring_back_distinct_values_past_the_depth(
    case: tuple[dict[str, Any], list[dict[str, Any]]], expire_at: set[int]
) -> None:
    """The decision of docs/AGGREGATES.md, "Late events and distinct values", on
    out-of-order streams: the same answers as the reference, expiry passes or not."""
    defs, stream = case
    check_against_reference(defs, stream, expire_at)
