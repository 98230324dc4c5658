"""Aggregates from Python: compare_fl vs rapidfuzz's Jaro-Winkler, and whole events.

    .venv/bin/python -m bench.aggregates_bench [--pairs 200000] [--events 50000]

Both Jaro-Winkler sides are timed in the same run, interleaved in rounds, on the same
pairs (passport-like numbers with one or two digits changed), each call going through
Python: ``lendgate.aggregates.compare_fl`` (Rust, strsim) and
``rapidfuzz.distance.JaroWinkler.normalized_distance`` (C++). The ratio is
ours / rapidfuzz per pair (below 1 means ours is faster); the best round of each side
is reported. The whole-event part applies the seed-003 pack to JSON events (bytes)
through ``AggregateStore.apply``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

from rapidfuzz.distance import JaroWinkler

from lendgate.aggregates import AggregateStore, compare_fl

PACK = Path(__file__).resolve().parent.parent / "testdata" / "aggregates" / "seed003_rules.json"
T0 = 1_709_251_200_000


def pairs(n: int) -> list[tuple[str, str]]:
    rng = random.Random(3)
    out = []
    for _ in range(n):
        a = f"{rng.randrange(10**10):010d}"
        b = list(a)
        for _ in range(rng.randint(1, 2)):
            b[rng.randrange(10)] = str(rng.randrange(10))
        out.append((a, "".join(b)))
    return out


def time_jw(items: list[tuple[str, str]], rounds: int) -> tuple[float, float, float]:
    """Best ns per pair of ours and of rapidfuzz, and the largest difference of results."""
    rapid = JaroWinkler.normalized_distance
    best_ours = best_rf = float("inf")
    for _ in range(rounds):
        t = time.perf_counter_ns()
        for a, b in items:
            compare_fl(a, b)
        best_ours = min(best_ours, (time.perf_counter_ns() - t) / len(items))
        t = time.perf_counter_ns()
        for a, b in items:
            rapid(a, b)
        best_rf = min(best_rf, (time.perf_counter_ns() - t) / len(items))
    diff = max(abs(compare_fl(a, b) - 100 * rapid(a, b)) for a, b in items[:10_000])
    return best_ours, best_rf, diff


def event(i: int, clients: int) -> bytes:
    r = (i * 0x9E3779B97F4A7C15) & (2**64 - 1)
    client = r % clients
    subs = ["LOAN_APP_CREATE", "LOAN_APP_RESULT", "LOAN_APP_SPECIAL_CHECK", "PAYMENT"]
    return json.dumps(
        {
            "common": {
                "eventTime": T0 + i * 50,
                "subtype": subs[(r >> 20) % 4],
                "partnerId": f"partner-{(r >> 8) % 40}",
            },
            "consumer": {
                "userId": f"user-{client}",
                "fio": f"Name{client % 997} Surname{client}",
                "mobile": f"+7 912 {client:07d}",
                "birthdate": "1990-01-01",
                "idDocumentNumber": f"45{client:08d}",
                "passportIssueRegion": f"region-{client % 85}",
            },
            "employer": {"inn": f"77{(r >> 12) % 20_000:08d}"},
            "device": {"ip": f"10.0.{(r >> 5) % 256}.{(r >> 7) % 256}", "id": f"dev-{client}"},
            "ext": {"requestResult": "REJECTED" if r % 3 == 0 else "APPROVED"},
            "tx": {
                "amount": (r % 100_000) / 10,
                "currency": "RUB",
                "cardNumber": "4276123456789012",
            },
        }
    ).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--clients", type=int, default=10_000)
    args = ap.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ours, rf, diff = time_jw(pairs(args.pairs), args.rounds)
    print(
        f"jaro-winkler per pair from Python (best of {args.rounds} rounds, {args.pairs} pairs): "
        f"compare_fl {ours:.0f} ns, rapidfuzz {rf:.0f} ns, ratio ours/rapidfuzz {ours / rf:.2f}; "
        f"max |difference| {diff:.2e} percentage points"
    )
    store = AggregateStore(PACK.read_bytes())
    evs = [event(i, args.clients) for i in range(args.clients * 3 + args.events)]
    for ev in evs[: args.clients * 3]:
        store.apply(ev)
    timed = evs[args.clients * 3 :]
    t = time.perf_counter()
    c = time.process_time()
    for ev in timed:
        store.apply(ev)
    wall = time.perf_counter() - t
    cpu = time.process_time() - c
    print(
        f"seed-003 pack from Python, {args.events} JSON events over {args.clients} clients: "
        f"{wall * 1e6 / args.events:.1f} us/event wall, {cpu * 1e6 / args.events:.1f} us/event CPU "
        f"= {args.events / cpu:,.0f} events/s per core (CPU time)"
    )


if __name__ == "__main__":
    main()
