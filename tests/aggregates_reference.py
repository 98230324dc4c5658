"""A deliberately simple reference of the aggregates, for the property tests.

It keeps every accepted event in a list and answers each query by scanning that list:
no pruning, no sorting tricks, no incremental state. It covers the record and counter
elements (``time_and_value``, ``date_and_counter``) and ``calc_aggregate`` with windows,
depth in records and days, lateness, composite keys and both ``except`` forms — the
rules of ``docs/AGGREGATES.md``, "Windows and event time" and "Out-of-order events".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DAY = 86_400_000
UNITS = {"minutes": 60_000, "hours": 3_600_000, "days": DAY}
BUCKETS = {"day": DAY, "hour": 3_600_000}

Value = int | float | None


class RefusedError(Exception):
    """The event is older than the watermark minus the allowed lateness."""


def norm_text(s: str) -> str:
    """The ``text`` key normalisation: whitespace collapsed, lowercase."""
    return " ".join(s.split()).lower()


@dataclass
class Applied:
    """One accepted event: its time, arrival number, key per object, value per element."""

    t: int
    seq: int
    keys: dict[str, str | None]
    values: dict[tuple[str, str], int | None]


@dataclass
class Reference:
    """The reference store for one definitions document (the shapes the tests generate)."""

    defs: dict[str, Any]
    events: list[Applied] = field(default_factory=list)
    watermark: int | None = None

    def _key(self, obj: dict[str, Any], ev: dict[str, Any]) -> str | None:
        parts = []
        for part in obj["key"]:
            raw = ev.get(part["attr"])
            if raw is None:
                return None
            p = norm_text(str(raw))
            if not p:
                return None
            parts.append(p)
        return "\x1f".join(parts)

    def apply(self, ev: dict[str, Any]) -> dict[str, Value]:
        """Apply ``ev`` and return every parameter, or raise :class:`RefusedError`."""
        t = ev["t"]
        lateness = self.defs["allowed_lateness_seconds"] * 1000
        if self.watermark is not None and t < self.watermark - lateness:
            raise RefusedError
        keys = {o["name"]: self._key(o, ev) for o in self.defs["objects"]}
        values: dict[tuple[str, str], int | None] = {}
        for o in self.defs["objects"]:
            for e in o["elements"]:
                flt = e.get("filter")
                passes = flt is None or all(ev.get(c["attr"]) == c["eq"] for c in flt["all"])
                if not passes:
                    continue
                attr = e.get("attr")
                if attr is None:
                    values[(o["name"], e["name"])] = 0  # a counter: present, no value
                elif ev.get(attr) is not None:
                    values[(o["name"], e["name"])] = ev[attr]
        before = list(self.events)
        self.events.append(Applied(t, len(self.events), keys, values))
        self.watermark = t if self.watermark is None else max(self.watermark, t)
        out: dict[str, Value] = {}
        for p in self.defs["params"]:
            obj = next(o for o in self.defs["objects"] if o["name"] == p["object"])
            key = keys[obj["name"]]
            if key is None:
                out[p["name"]] = None
                continue
            history = before if p.get("except") == "record" else self.events
            current = ev.get(_element(obj, p["element"]).get("attr") or "")
            out[p["name"]] = self._aggregate(obj, p, key, t, history, current)
        return out

    def _aggregate(
        self,
        obj: dict[str, Any],
        p: dict[str, Any],
        key: str,
        t: int,
        history: list[Applied],
        current: Any,
    ) -> Value:
        e = _element(obj, p["element"])
        horizon = e.get("max_days", self.defs["retention_days"]) * DAY
        depth = e.get("max_records", 100_000)
        win = p.get("window") or {}
        lo = t - horizon
        if "last" in win:
            lo = max(lo, t - win["last"] * UNITS[win["unit"]])
        hi = t - win.get("skip", 0) * UNITS.get(win.get("unit", "days"), DAY)
        mine = [
            a
            for a in history
            if a.keys[obj["name"]] == key and (obj["name"], e["name"]) in a.values
        ]
        agg = p["agg"]
        if e["kind"] == "date_and_counter":
            width = BUCKETS[e.get("bucket", "day")]
            counts: dict[int, int] = {}
            for a in mine:
                counts[a.t // width] = counts.get(a.t // width, 0) + 1
            starts = sorted(counts)
            buckets_upto_t = [b for b in starts if b * width <= t]
            newest_buckets = set(buckets_upto_t[-depth:])
            seen = [counts[b] for b in starts if b in newest_buckets and lo < b * width <= hi]
            if agg in ("sum", "count"):
                return sum(seen)
            if agg in ("any_count", "unique_count"):
                return len(seen)
            return _over(seen, agg)
        recs = sorted(mine, key=lambda a: (a.t, a.seq))
        upto_t = [a for a in recs if a.t <= t]
        newest = {a.seq for a in upto_t[-depth:]}
        vals = [
            a.values[(obj["name"], e["name"])] for a in recs if a.seq in newest and lo < a.t <= hi
        ]
        if p.get("except") == "value":
            vals = [v for v in vals if v != current]
        if agg == "count":
            return len(vals)
        if agg == "any_count":
            return sum(v is not None for v in vals)
        if agg == "unique_count":
            return len({v for v in vals if v is not None})
        if agg == "sum":
            return sum(v for v in vals if v is not None)
        return _over([v for v in vals if v is not None], agg)


def _element(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in obj["elements"] if e["name"] == name)


def _over(vals: list[int], agg: str) -> Value:
    if agg == "value":
        return vals[-1] if vals else None
    if not vals:
        return None
    if agg == "max":
        return max(vals)
    if agg == "min":
        return min(vals)
    if agg == "mean":
        total = 0.0
        for v in vals:
            total += float(v)
        return total / len(vals)
    raise ValueError(agg)
