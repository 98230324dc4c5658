"""lendgate's expression engine side by side with zen-engine, in one run.

Run: ``.venv/bin/python -m bench.rules_vs_zen`` (about 20 s). Both engines evaluate the
same rule conditions on the same event; the script first checks they agree, then
times, per condition evaluation:

* one-shot per call from Python: ``zen.evaluate_expression(src, ctx)`` vs our
  ``CompiledExpression.compile(src).evaluate(ctx)``;
* compiled once, per call from Python: zen's ``compile_expression(src).evaluate(ctx)``
  vs our ``CompiledExpression.evaluate(ctx)`` (a dict crosses the boundary each call);
* our batched path: all conditions as rules of one ``RuleSet``, many events as JSON
  bytes, one call (``evaluate_batch``) — zen has no batched API, so its figure there
  is its best per-call one (compiled);
* the default rule pack, per event, as each engine evaluates a rule pack: every condition
  of the shipped pack that zen can evaluate (all but the two that call our ``in_list``;
  composite rules' sub-rules included), ours in one call per event from the event's JSON
  (``evaluate_batch``, one event per call: the scoring service's shape), zen compiled
  once per condition and called per condition with the event as a dict.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import zen

from lendgate.expr import CompiledExpression
from lendgate.lists import Lists
from lendgate.rules import CompiledRuleSet, EventKind, InMemoryRuleRepository, Rule, RuleBook
from lendgate.scoring.pack import DEFAULT_PACK_DIR, install, load_pack

CONDITIONS = [
    "params.EmployerINNAndIP.countToday >= 5",
    "model.risk_score >= 900",
    "application.amount.amount_minor > 1000000 and application.applicant.age < 21",
    "application.applicant.registration_address.region != "
    "application.applicant.passport.issuing_region",
    "application.product == 'PAYDAY' and application.term_days < 7",
    "application.applicant.actual_address.region not in ['77', '50', '78']",
    "endsWith(application.applicant.email, '@tempmail.io')",
    "some(application.applicant.phones, #.kind == 'MOBILE' and startsWith(#.number, '7999'))",
]

CONTEXT: dict[str, Any] = {
    "application": {
        "subtype": "LOAN_APP_CREATE",
        "product": "PAYDAY",
        "term_days": 5,
        "amount": {"amount_minor": 3_000_000, "currency": "RUB"},
        "applicant": {
            "age": 19,
            "email": "ivan@example.com",
            "phones": [{"number": "79123456789", "kind": "MOBILE"}],
            "passport": {"number": "4506123456", "issuing_region": "77"},
            "registration_address": {"region": "77"},
            "actual_address": {"region": "50"},
        },
    },
    "params": {"EmployerINNAndIP": {"countToday": 6}},
    "model": {"risk_score": 640},
}


def pack_conditions() -> list[str]:
    """The shipped pack's conditions zen can evaluate (rules and sub-rules, in pack order;
    the ones calling ``in_list`` — lendgate's list look-up — are left out)."""
    document = json.loads((DEFAULT_PACK_DIR / "rules.json").read_text())
    found: list[str] = []
    for rule in document["rules"]:
        sources = [rule.get("condition", "")]
        sources += [sub.get("condition", "") for sub in rule.get("sub_rules", [])]
        found += [c for c in sources if c and "in_list(" not in c]
    return found


def pack_context(conditions: list[str]) -> dict[str, Any]:
    """An application event with every parameter the conditions read set (values chosen
    so that some conditions fire and some do not)."""
    params = sorted({m for c in conditions for m in re.findall(r"params\.(\w+)", c)})
    consortium = sorted({m for c in conditions for m in re.findall(r"consortium\.(\w+)", c)})
    return {
        "application": {
            "subtype": "LOAN_APP_CREATE",
            "loan_amount": {"amount_minor": 25_000_000, "currency": "RUB"},
            "applicant": {
                "birth_date": "1990-04-12",
                "passport": {"series": "4510", "number": "123456", "issue_date": "2010-05-01"},
                "employer": {"tax_id": "7701234567", "employee_count": 150},
            },
            "co_borrowers": [],
            "guarantors": [],
        },
        "params": {name: (i * 7) % 23 for i, name in enumerate(params)},
        "consortium": {name: i % 2 for i, name in enumerate(consortium)},
    }


def per_call(fn: Callable[[], object], seconds: float) -> float:
    """Seconds per call of ``fn``, timed over about ``seconds``."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / n
        n *= 2


def one_shot(src: str) -> object:
    """Our engine used like ``zen.evaluate_expression``: compile, then evaluate."""
    return CompiledExpression.compile(src).evaluate(CONTEXT)


def main() -> None:
    """Check agreement, time both engines, print a table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.3, help="time per measurement")
    parser.add_argument("--events", type=int, default=2000, help="events per batched call")
    parser.add_argument(
        "--latency-calls", type=int, default=100_000, help="calls timed one by one (pack)"
    )
    args = parser.parse_args()

    ours = [CompiledExpression.compile(src) for src in CONDITIONS]
    theirs = [zen.compile_expression(src) for src in CONDITIONS]
    for src, o, t in zip(CONDITIONS, ours, theirs, strict=True):
        a, b = o.evaluate(CONTEXT), t.evaluate(CONTEXT)
        if a != b:
            raise SystemExit(f"engines disagree on {src!r}: ours {a!r}, zen {b!r}")

    rows: list[tuple[str, float, float]] = []
    for src, o, t in zip(CONDITIONS, ours, theirs, strict=True):
        zen_oneshot = per_call(partial(zen.evaluate_expression, src, CONTEXT), args.seconds)
        our_oneshot = per_call(partial(one_shot, src), args.seconds)
        zen_compiled = per_call(partial(t.evaluate, CONTEXT), args.seconds)
        our_compiled = per_call(partial(o.evaluate, CONTEXT), args.seconds)
        rows.append((src, zen_oneshot / our_oneshot, zen_compiled / our_compiled))
        print(
            f"{src[:60]:60}  one-shot zen {zen_oneshot * 1e6:6.2f} µs ours "
            f"{our_oneshot * 1e6:6.2f} µs  compiled zen {zen_compiled * 1e6:6.2f} µs ours "
            f"{our_compiled * 1e6:6.2f} µs"
        )

    # Batched: every condition as a rule, many events, one call.
    rules = [Rule(f"c{i:02d}", EventKind.APPLICATION, src, 1) for i, src in enumerate(CONDITIONS)]
    rule_set = CompiledRuleSet.compile(rules)
    lists = Lists()
    document = json.dumps(CONTEXT).encode()
    docs = [document] * args.events
    times = [datetime(2026, 1, 1, tzinfo=UTC)] * args.events
    batch = per_call(
        partial(rule_set.evaluate_batch, docs, EventKind.APPLICATION, times, lists), args.seconds
    )
    batched_per_eval = batch / (args.events * len(CONDITIONS))
    zen_all = sum(per_call(partial(t.evaluate, CONTEXT), args.seconds) for t in theirs)
    zen_per_eval = zen_all / len(CONDITIONS)

    def geo(xs: list[float]) -> float:
        prod = 1.0
        for x in xs:
            prod *= x
        return float(prod ** (1 / len(xs)))

    print()
    print(f"ratio zen/ours, one-shot per call (geometric mean): {geo([r[1] for r in rows]):.1f}x")
    print(f"ratio zen/ours, compiled per call (geometric mean): {geo([r[2] for r in rows]):.1f}x")
    print(
        f"batched: ours {batched_per_eval * 1e9:.0f} ns per condition evaluation "
        f"({args.events} events x {len(CONDITIONS)} rules per call, JSON parse and result "
        f"included) vs zen compiled per call {zen_per_eval * 1e9:.0f} ns: "
        f"{zen_per_eval / batched_per_eval:.1f}x"
    )
    compare_pack(lists, args.seconds)
    pack_latency(args.latency_calls)


def compare_pack(lists: Lists, seconds: float) -> None:
    """The default pack on one event, as each engine would run a rule pack."""
    conditions = pack_conditions()
    context = pack_context(conditions)
    zen_pack = [zen.compile_expression(c) for c in conditions]
    pack_rules = [Rule(f"p{i:02d}", EventKind.APPLICATION, c, 1) for i, c in enumerate(conditions)]
    pack_set = CompiledRuleSet.compile(pack_rules)
    event = [json.dumps(context).encode()]
    when = [datetime(2026, 1, 1, tzinfo=UTC)]
    result = json.loads(pack_set.evaluate_batch(event, EventKind.APPLICATION, when, lists)[0])
    if result.get("errors"):
        raise SystemExit(f"pack conditions failed on the event: {result['errors']}")
    fired = {r["rule_id"] for r in result["fired_rules"]}
    for i, (src, t) in enumerate(zip(conditions, zen_pack, strict=True)):
        if bool(t.evaluate(context)) != (f"p{i:02d}" in fired):
            raise SystemExit(f"engines disagree on pack condition {src!r}")

    def zen_event() -> None:
        for t in zen_pack:
            t.evaluate(context)

    ours_event = per_call(
        partial(pack_set.evaluate_batch, event, EventKind.APPLICATION, when, lists), seconds
    )
    zen_event_s = per_call(zen_event, seconds)
    print(
        f"default pack, one event: ours {ours_event * 1e6:.2f} µs (one call, {len(conditions)}"
        f" conditions, {len(fired)} fired, from the event's JSON) vs zen"
        f" {zen_event_s * 1e6:.2f} µs ({len(conditions)} compiled calls on a dict):"
        f" {zen_event_s / ours_event:.1f}x"
    )


def pack_latency(calls: int) -> None:
    """The whole shipped pack (every rule, its lists with their entries, composites,
    test and tuning rules) on one event, one call at a time, in-process: latency
    percentiles of the call from Python (the event's JSON in, the result JSON out)."""
    pack = load_pack()
    book, lists = RuleBook(InMemoryRuleRepository()), Lists()
    install(pack, book, lists)
    rule_set = book.compile(pack.zone_threshold)
    context = pack_context(pack_conditions())
    event = [json.dumps(context).encode()]
    when = [datetime(2026, 1, 1, tzinfo=UTC)]
    result = json.loads(rule_set.evaluate_batch(event, EventKind.APPLICATION, when, lists)[0])
    if result.get("errors"):
        raise SystemExit(f"the pack failed on the event: {result['errors']}")
    evaluate = partial(rule_set.evaluate_batch, event, EventKind.APPLICATION, when, lists)
    for _ in range(calls // 10):  # warm caches and the allocator
        evaluate()
    took = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        evaluate()
        took.append(clock() - start)
    took.sort()

    def at(q: float) -> float:
        return took[min(len(took) - 1, int(q * len(took)))] / 1000

    print(
        f"whole default pack ({len(pack.rules)} rules, {len(result['fired_rules'])} fired),"
        f" one event per call, {calls:,} calls: p50 {at(0.5):.1f} µs, p99 {at(0.99):.1f} µs,"
        f" p99.9 {at(0.999):.1f} µs, max {took[-1] / 1000:.1f} µs"
    )


if __name__ == "__main__":
    main()
