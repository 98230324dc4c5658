"""A deliberately simple reference of the aggregates, for the property tests.

``time_and_value`` and ``date_and_counter`` are answered from a list of every accepted
event, scanned per query: no pruning, no sorting tricks, no incremental state. The
elements whose rules are sequential by definition keep explicit state, updated by the
rules of ``docs/AGGREGATES.md`` written as plainly as possible:

- single values (``first``, ``last``, ``sum``, ``min``, ``max``, ``count``): one
  ``[updated, at, value]`` per key, reset when nothing touched it for ``max_days``;
- distinct values (``unique``: the time a value was first seen; ``time_and_last_unique_value``:
  last seen): a sorted list of ``[time, value]`` per key, where a value seen again moves
  or restarts its record, and every update drops the records older than the cut
  (watermark minus lateness) beyond the newest ``max_records`` of them — "Late events
  and distinct values" in the doc.

``calc_aggregate`` is covered with windows, depth in records and days, lateness,
composite keys, both ``except`` forms and every ``agg``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

DAY = 86_400_000
UNITS = {"minutes": 60_000, "hours": 3_600_000, "days": DAY}
BUCKETS = {"day": DAY, "hour": 3_600_000}

Value = int | float | None
SINGLES = ("first", "last", "sum", "min", "max", "count")
DISTINCT = ("unique", "time_and_last_unique_value")


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
    # (object, element, key) -> [updated, at, value] (singles) or [[t, value], ...].
    state: dict[tuple[str, str, str], Any] = field(default_factory=dict)

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
        state_before = copy.deepcopy(self.state)
        self.events.append(Applied(t, len(self.events), keys, values))
        self.watermark = t if self.watermark is None else max(self.watermark, t)
        cut = self.watermark - lateness
        for o in self.defs["objects"]:
            key = keys[o["name"]]
            for e in o["elements"]:
                if key is None or (o["name"], e["name"]) not in values:
                    continue
                v = values[(o["name"], e["name"])]
                sk = (o["name"], e["name"], key)
                if e["kind"] in SINGLES:
                    self._update_single(e, sk, t, v)
                elif e["kind"] in DISTINCT:
                    self._update_distinct(e, sk, t, v, cut)
        out: dict[str, Value] = {}
        for p in self.defs["params"]:
            obj = next(o for o in self.defs["objects"] if o["name"] == p["object"])
            key = keys[obj["name"]]
            if key is None:
                out[p["name"]] = None
                continue
            record = p.get("except") == "record"
            history = before if record else self.events
            state = state_before if record else self.state
            current = ev.get(_element(obj, p["element"]).get("attr") or "")
            out[p["name"]] = self._aggregate(obj, p, key, t, history, state, current)
        return out

    def _horizon(self, e: dict[str, Any]) -> int:
        return int(e.get("max_days", self.defs["retention_days"]) * DAY)

    def _update_single(
        self, e: dict[str, Any], sk: tuple[str, str, str], t: int, v: int | None
    ) -> None:
        kind = e["kind"]
        st = self.state.get(sk)
        if st is not None and st[0] <= t - self._horizon(e):
            st = None  # untouched for max_days: starts again
        if st is None:
            self.state[sk] = [t, t, 1 if kind == "count" else v]
            return
        st[0] = max(st[0], t)
        if (kind == "first" and t < st[1]) or (kind == "last" and t >= st[1]):
            st[1], st[2] = t, v
        elif kind == "count":
            st[2] += 1
        elif kind == "sum":
            st[2] += v
        elif (kind == "min" and v < st[2]) or (kind == "max" and v > st[2]):
            st[2] = v

    def _update_distinct(
        self, e: dict[str, Any], sk: tuple[str, str, str], t: int, v: int | None, cut: int
    ) -> None:
        recs: list[list[Any]] = self.state.setdefault(sk, [])
        depth = e.get("max_records", 100_000)
        mine = [i for i, r in enumerate(recs) if r[1] == v]
        insert = True
        if mine:
            i = mine[0]
            if e["kind"] == "unique":
                # First seen: an earlier sighting moves it back; a record no query at
                # `t` sees any more (beyond the horizon or the depth) starts again.
                upto_t = sum(r[0] <= t for r in recs)
                live = recs[i][0] > t - self._horizon(e) and i >= upto_t - depth
                moves = t < recs[i][0] or not live
            else:
                moves = t > recs[i][0]  # last seen: a later sighting moves it forward
            if moves:
                del recs[i]
            else:
                insert = False
        if insert:
            recs.insert(sum(r[0] <= t for r in recs), [t, v])
        # The depth, applied now and for good: before the cut, only the newest
        # `max_records` records stay (no burst here reaches the hard bound).
        before_cut = sum(r[0] < cut for r in recs)
        del recs[: max(0, before_cut - depth)]

    def _aggregate(
        self,
        obj: dict[str, Any],
        p: dict[str, Any],
        key: str,
        t: int,
        history: list[Applied],
        state: dict[tuple[str, str, str], Any],
        current: Any,
    ) -> Value:
        e = _element(obj, p["element"])
        horizon = self._horizon(e)
        depth = e.get("max_records", 100_000)
        sk = (obj["name"], e["name"], key)
        if e["kind"] in SINGLES:
            st = state.get(sk)
            if st is None or st[0] <= t - horizon:
                return 0 if e["kind"] in ("count", "sum") else None
            return int(st[2])
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
            return _over(seen, agg, p.get("p"))
        if e["kind"] in DISTINCT:
            kept = state.get(sk, [])
            upto = [r for r in kept if r[0] <= t][-depth:]
            vals: list[int | None] = [r[1] for r in upto if lo < r[0] <= hi]
        else:
            recs = sorted(mine, key=lambda a: (a.t, a.seq))
            upto_t = [a for a in recs if a.t <= t]
            newest = {a.seq for a in upto_t[-depth:]}
            vals = [
                a.values[(obj["name"], e["name"])]
                for a in recs
                if a.seq in newest and lo < a.t <= hi
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
        return _over([v for v in vals if v is not None], agg, p.get("p"))


def _element(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in obj["elements"] if e["name"] == name)


def _over(vals: list[int], agg: str, p: float | None = None) -> Value:
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
    if agg in ("median", "percentile"):
        # Linear interpolation between the closest ranks (numpy's default).
        xs = sorted(float(v) for v in vals)
        rank = (50.0 if p is None else float(p)) / 100.0 * (len(xs) - 1)
        below = math.floor(rank)
        a = xs[below]
        b = xs[below + 1] if rank > below else a
        return a + (b - a) * (rank - below)
    raise ValueError(agg)
