"""``lendgate rules backtest``: back-test rules with a progress bar.

Two sources of history:

* ``--server HOST:PORT`` asks a running server (``BacktestRules``) to replay its stored
  history, as partner ``--partner`` (``--token`` in token mode);
* ``--events FILE`` replays an exported event file of ``lendgate gen-data``
  (applications, payments and outcomes; JSON Lines, or the binary ``.pb`` format whose
  request bytes are replayed as they are — the fast one) here, with the shipped pack's
  aggregates and lists, through the same code as the server.

Rules: ``--rule ID`` or ``--rule ID@VERSION`` (server only), ``--draft FILE`` (a JSON
list of rules in the pack's ``rules.json`` form); none = every working rule. The result
is printed as a table, or as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from google.protobuf import json_format

from lendgate.errors import LendgateError
from lendgate.lists import Lists
from lendgate.rules import EventKind, InMemoryRuleRepository, RuleBook, RuleStatus, rule_from_json
from lendgate.scoring.backtest import (
    BacktestOutcome,
    HistoryItem,
    TestedRule,
    run_backtest,
)
from lendgate.scoring.pack import install, load_pack
from lendgate.timeutil import to_us
from lendgate.v1 import common_pb2, rules_pb2, scoring_pb2

EXIT_USAGE = 2


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``rules backtest``."""
    rules = commands.add_parser("rules", help="rule administration tools")
    sub = rules.add_subparsers(dest="rules_command", required=True)
    p = sub.add_parser("backtest", help="run rules over history with known outcomes")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--server", help="HOST:PORT of a lendgate server")
    source.add_argument(
        "--events", type=Path, help="exported event file (.jsonl, or binary .pb: faster)"
    )
    p.add_argument("--partner", default="", help="partner id (server in dev mode)")
    p.add_argument("--token", default="", help="bearer token (server in token mode)")
    p.add_argument("--rule", action="append", default=[], help="ID or ID@VERSION")
    p.add_argument("--draft", type=Path, help="JSON file: a list of draft rules")
    p.add_argument("--kind", default="APPLICATION", choices=["APPLICATION", "PAYMENT"])
    p.add_argument("--start", default="1970-01-01", help="period start, ISO date/time (UTC)")
    p.add_argument("--end", default="2100-01-01", help="period end (exclusive)")
    p.add_argument("--zone-threshold", type=int, help="points for the set (default: config)")
    p.add_argument("--exclude-unlabelled", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


class Bar:
    """A one-line progress bar on stderr."""

    def __init__(self, enabled: bool, out: IO[str] | None = None) -> None:
        self.enabled = enabled
        self.out = out or sys.stderr

    def update(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` events."""
        if not self.enabled:
            return
        share = done / total if total else 1.0
        self.out.write(f"\rbacktest [{'#' * int(share * 30):<30}] {share:6.1%} {done:,}/{total:,}")
        self.out.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled:
            self.out.write("\n")


def _time(text: str, flag: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r} is not an ISO date or date-time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _drafts(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    raw = json.loads(path.read_text())
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of rules")
    return raw


def run(args: argparse.Namespace) -> int:
    """Run the back-test and print its result."""
    bar = Bar(not args.quiet)
    try:
        start, end = _time(args.start, "--start"), _time(args.end, "--end")
        drafts = _drafts(args.draft)
        if args.server:
            result = asyncio.run(_on_server(args, start, end, drafts, bar))
        else:
            result = _on_file(args, start, end, drafts, bar)
    except (OSError, ValueError, LendgateError) as exc:
        print(f"lendgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    bar.close()
    if args.json:
        print(json_format.MessageToJson(result))
    else:
        print(table(result))
    return 0


async def _on_server(
    args: argparse.Namespace,
    start: datetime,
    end: datetime,
    drafts: list[dict[str, Any]],
    bar: Bar,
) -> rules_pb2.BacktestResult:
    import grpc  # noqa: PLC0415

    from lendgate.v1 import rules_pb2_grpc  # noqa: PLC0415

    request = rules_pb2.BacktestRulesRequest(
        rules=[_rule_name(r) for r in args.rule],
        draft_rules=[_draft_proto(d) for d in drafts],
        event_kind=common_pb2.EventKind.Value(f"EVENT_KIND_{args.kind}"),
        exclude_unlabelled=args.exclude_unlabelled,
    )
    request.start_time.FromDatetime(start)
    request.end_time.FromDatetime(end)
    if args.zone_threshold is not None:
        request.zone_threshold = args.zone_threshold
    metadata = []
    if args.partner:
        metadata.append(("x-lendgate-partner", args.partner))
    if args.token:
        metadata.append(("authorization", f"Bearer {args.token}"))
    async with grpc.aio.insecure_channel(args.server) as channel:
        stub = rules_pb2_grpc.RuleAdminServiceStub(channel)
        try:
            async for message in stub.BacktestRules(request, metadata=metadata):
                if message.HasField("progress"):
                    bar.update(message.progress.events_done, message.progress.events_total)
                else:
                    result: rules_pb2.BacktestResult = message.result
                    return result
        except grpc.aio.AioRpcError as exc:
            raise ValueError(f"{exc.code().name}: {exc.details()}") from None
    raise ValueError("the server ended the stream without a result")


def _rule_name(text: str) -> str:
    rule_id, _, version = text.partition("@")
    return f"rules/{rule_id}" + (f"/versions/{version}" if version else "")


def _draft_proto(raw: dict[str, Any]) -> rules_pb2.Rule:
    rule = rules_pb2.Rule(
        name=raw.get("rule_id", ""),
        display_name=raw.get("display_name", ""),
        event_kind=common_pb2.EventKind.Value(f"EVENT_KIND_{raw.get('event_kind', 'APPLICATION')}"),
        condition=raw.get("condition", ""),
        points=int(raw.get("points", 0)),
    )
    for s in raw.get("sub_rules", []):
        rule.sub_rules.add(
            sub_rule_id=s["sub_rule_id"],
            condition=s["condition"],
            points=int(s.get("points", 0)),
            display_name=s.get("display_name", ""),
        )
    return rule


def _on_file(
    args: argparse.Namespace,
    start: datetime,
    end: datetime,
    drafts: list[dict[str, Any]],
    bar: Bar,
) -> rules_pb2.BacktestResult:
    from servers.rule_admin import backtest_result_proto  # noqa: PLC0415

    if args.rule and any("@" in r for r in args.rule):
        raise ValueError("--rule ID@VERSION needs --server (versions live in the server)")
    pack = load_pack()
    by_id = {r.rule_id: r for r in pack.rules}
    tested = []
    for rule_id in args.rule:
        if rule_id not in by_id:
            raise ValueError(f"--rule {rule_id!r} is not a rule of the shipped pack")
        tested.append(TestedRule(f"rules/{rule_id}", by_id[rule_id]))
    for i, d in enumerate(drafts):
        raw = {"rule_id": f"draft-{i}", "event_kind": "APPLICATION", **d}
        tested.append(TestedRule(raw["rule_id"], rule_from_json(raw)))
    if not tested:
        tested = [
            TestedRule(f"rules/{r.rule_id}", r)
            for r in pack.rules
            if r.status is RuleStatus.WORKING
        ]
    lists = Lists()
    install(replace(pack, rules=()), RuleBook(InMemoryRuleRepository()), lists)
    outcome: BacktestOutcome = run_backtest(
        list(read_history(args.events)),
        tested,
        aggregates=pack.aggregates,
        lists=lists,
        event_kind=EventKind(args.kind),
        start_us=to_us(start),
        end_us=to_us(end),
        zone_threshold=args.zone_threshold or pack.zone_threshold,
        exclude_unlabelled=args.exclude_unlabelled,
        progress=bar.update,
    )
    return backtest_result_proto(outcome, pack.revision)


def read_history(path: Path) -> Iterator[HistoryItem]:
    """The events of an exported file as replayable history: checks carry their partner,
    outcomes are attached to their application's partner."""
    from lendgate.datagen.output import is_binary  # noqa: PLC0415

    if is_binary(path):
        yield from _read_binary_history(path)
        return
    from lendgate.datagen.output import read_events  # noqa: PLC0415

    owner: dict[str, str] = {}
    outcomes: list[tuple[int, scoring_pb2.ReportOutcomeRequest]] = []
    seq = 0
    for record in read_events(path):
        seq += 1
        message: Any = record.message
        if record.kind == "application":
            owner[message.application_id] = message.partner_id
            payload = scoring_pb2.CheckApplicationRequest(application=message).SerializeToString()
            subject = f"application:{message.application_id}"
        elif record.kind == "payment":
            payload = scoring_pb2.CheckPaymentRequest(payment=message).SerializeToString()
            subject = f"payment:{message.payment_id}"
        else:
            outcomes.append((seq, message))
            continue
        yield HistoryItem(
            message.event_time.ToMicroseconds(),
            seq,
            record.kind,
            message.partner_id,
            subject,
            payload,
        )
    for position, o in outcomes:
        target = o.WhichOneof("target")
        if target != "application_id" or o.application_id not in owner:
            continue
        yield HistoryItem(
            o.outcome.event_time.ToMicroseconds(),
            position,
            "outcome",
            owner[o.application_id],
            f"application:{o.application_id}",
            o.SerializeToString(),
            o.outcome.SerializeToString(),
        )


def _read_binary_history(path: Path) -> Iterator[HistoryItem]:
    """:func:`read_history` of a binary file: the request bytes are the payload as they
    are; only the fields the replay orders and keys by are decoded."""
    from lendgate.datagen.output import read_requests  # noqa: PLC0415

    application = scoring_pb2.CheckApplicationRequest.FromString
    payment = scoring_pb2.CheckPaymentRequest.FromString
    owner: dict[str, str] = {}
    outcomes: list[tuple[int, bytes]] = []
    for seq, (kind, payload) in enumerate(read_requests(path), start=1):
        if kind == "application":
            a = application(payload).application
            owner[a.application_id] = a.partner_id
            yield HistoryItem(
                a.event_time.ToMicroseconds(),
                seq,
                kind,
                a.partner_id,
                f"application:{a.application_id}",
                payload,
            )
        elif kind == "payment":
            p = payment(payload).payment
            yield HistoryItem(
                p.event_time.ToMicroseconds(),
                seq,
                kind,
                p.partner_id,
                f"payment:{p.payment_id}",
                payload,
            )
        else:
            outcomes.append((seq, payload))
    for position, payload in outcomes:
        o = scoring_pb2.ReportOutcomeRequest.FromString(payload)
        if o.WhichOneof("target") != "application_id" or o.application_id not in owner:
            continue
        yield HistoryItem(
            o.outcome.event_time.ToMicroseconds(),
            position,
            "outcome",
            owner[o.application_id],
            f"application:{o.application_id}",
            payload,
            o.outcome.SerializeToString(),
        )


def table(result: rules_pb2.BacktestResult) -> str:
    """The result as a plain-text table, one rule per line, the set last."""
    head = (
        f"{'rule':<44} {'fraud stopped':>13} {'legit excluded':>14} {'legit stopped':>13}"
        f" {'fraud missed':>12} {'precision':>9} {'recall':>7} {'alerts':>7}"
    )
    lines = [head, "-" * len(head)]
    rows: Sequence[rules_pb2.RuleBacktestResult] = [*result.rules, result.set_result]
    for r in rows:
        lines.append(
            f"{(r.rule or '(the set)')[:44]:<44} {r.fraud_stopped:>13,} {r.legit_excluded:>14,}"
            f" {r.legit_stopped:>13,} {r.fraud_missed:>12,} {r.precision:>9.3f}"
            f" {r.recall:>7.3f} {r.alert_rate:>7.2%}"
        )
    lines.append(
        f"{result.events_evaluated:,} events ({result.events_unlabelled:,} unlabelled)"
        f" in {result.elapsed.ToTimedelta().total_seconds():.1f} s,"
        f" rule pack {result.rule_pack_revision}"
    )
    return "\n".join(lines)
