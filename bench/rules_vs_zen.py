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
  is its best per-call one (compiled).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import zen

from lendgate.expr import CompiledExpression
from lendgate.lists import Lists
from lendgate.rules import CompiledRuleSet, EventKind, Rule

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


if __name__ == "__main__":
    main()
