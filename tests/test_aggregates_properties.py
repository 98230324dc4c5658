"""Property tests: the Rust aggregates against ``tests/aggregates_reference.py``.

Random definitions (record and counter elements, depth in records and days, windows
with ``last``/``skip``, composite keys, ``except: record``/``value``, filters) and random
event streams (out of order within the lateness, some beyond it, missing and
differently spelt key parts) must give the same parameters as the naive reference,
event by event, and the same refusals.
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
AGGS_RECORDS = ["count", "any_count", "unique_count", "sum", "max", "min", "mean", "value"]
AGGS_COUNTERS = ["sum", "count", "any_count", "unique_count", "max", "min", "mean", "value"]


@st.composite
def element(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["time_and_value", "date_and_counter"]))
    e: dict[str, Any] = {"name": name, "kind": kind}
    if kind == "time_and_value":
        e.update(attr="v", type="integer")
    else:
        e["bucket"] = draw(st.sampled_from(["day", "hour"]))
    if draw(st.booleans()):
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
                records = e["kind"] == "time_and_value"
                p: dict[str, Any] = {
                    "fn": "calc_aggregate",
                    "name": f"p{len(params)}",
                    "object": obj["name"],
                    "element": e["name"],
                    "agg": draw(st.sampled_from(AGGS_RECORDS if records else AGGS_COUNTERS)),
                }
                excepts = ["none", "record", "value"] if records else ["none", "record"]
                ex = draw(st.sampled_from(excepts))
                if ex != "none":
                    p["except"] = ex
                if draw(st.booleans()):
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
@given(defs=definitions(), stream=events())
def test_rust_matches_the_reference(defs: dict[str, Any], stream: list[dict[str, Any]]) -> None:
    store = AggregateStore(defs)
    ref = Reference(defs)
    for i, ev in enumerate(stream):
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
