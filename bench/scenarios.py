"""The scenarios ``python -m bench`` can drive: what each sends and how it prepares.

A scenario's ``prepare`` runs once, before measuring, over a plain channel to the
target: it creates what the traffic needs through the public API (a published
strategy; for scoring, a pre-loaded history) and returns the :class:`~bench.load.Traffic`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from bench.echo_server import METHOD as ECHO_METHOD
from bench.load import Request, Traffic
from lendgate.auth import PARTNER_HEADER
from lendgate.datagen import GenConfig, generate
from lendgate.datagen.output import to_json_line
from lendgate.v1 import auction_pb2, scoring_pb2, strategy_pb2

ZEN_BENCHMARK = Path(__file__).resolve().parent.parent / "testdata" / "zen" / "benchmark"
STRATEGY_GRAPH = "credit-limit-adjustment"
ECHO_PAYLOAD_BYTES = 600
PRELOAD_CONCURRENCY = 32
PARTNER = (("x-lendgate-partner", "bench"),)
assert PARTNER[0][0] == PARTNER_HEADER


@dataclass(frozen=True)
class Options:
    """Scenario settings from the command line."""

    history: int = 2000
    """Scoring: events of generated history sent before measuring."""
    seed: int = 1
    start: dt.date = dt.date(2025, 1, 1)
    """Scoring: first day of the generated history. A sweep moves it forward at every step
    against the same server, so each step's events are newer than the last step's."""
    preload_store: bool = False
    """Scoring: the ``history`` events are loaded into the server's store with
    ``lendgate load-history`` before it starts (:func:`write_history`), not sent over the
    API: quick enough for a history of 1,000,000 events. Only when the harness starts the
    server."""
    stream: bool = False
    """Scoring: send the checks as items of ``CheckStream`` calls (one per channel, each
    item at its scheduled time) instead of unary ``CheckApplication`` calls. A stream has
    one caller, so every item is sent as partner ``bench``."""
    calls: int = 2000
    """Scoring: distinct applications to measure with (at least the calls the run sends).
    Events are never sent twice: a replayed old event would be older than the aggregates'
    watermark and refused as too late, which measures the harness, not the service."""


@dataclass
class Prepared:
    """The traffic and what preparing it did (reported in the results)."""

    traffic: Traffic
    notes: dict[str, object] = field(default_factory=dict)


Prepare = Callable[[grpc.aio.Channel, Options], Awaitable[Prepared]]


async def _unary(
    channel: grpc.aio.Channel,
    method: str,
    request: Message,
    metadata: tuple[tuple[str, str], ...] = PARTNER,
) -> bytes:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    response: bytes = await call(request.SerializeToString(), metadata=metadata, timeout=10)
    return response


def _partner_of(message: Message, owners: dict[str, str]) -> str:
    """The partner an event belongs to; an outcome belongs to its application's partner.

    ``owners`` maps application and payment ids seen so far to their partner.
    """
    if isinstance(message, scoring_pb2.ApplicationEvent):
        owners[message.application_id] = message.partner_id
        return message.partner_id or "bench"
    if isinstance(message, scoring_pb2.PaymentEvent):
        owners[message.payment_id] = message.partner_id
        return message.partner_id or "bench"
    if isinstance(message, scoring_pb2.ReportOutcomeRequest):
        return owners.get(message.application_id or message.payment_id, "bench")
    return "bench"


async def prepare_echo(channel: grpc.aio.Channel, options: Options) -> Prepared:
    """A 600-byte payload to the empty echo handler."""
    del channel, options
    body = Request(b"\x0a" + bytes([0xD5, 0x04]) + b"x" * (ECHO_PAYLOAD_BYTES - 3))
    return Prepared(Traffic(ECHO_METHOD, (body,), request_id=False))


async def prepare_strategy(channel: grpc.aio.Channel, options: Options) -> Prepared:
    """Publish zen's credit-limit-adjustment graph as a fresh strategy; Evaluate it."""
    del options
    manifest = json.loads((ZEN_BENCHMARK / "manifest.json").read_text())
    entry = next(e for e in manifest if e["name"] == STRATEGY_GRAPH)
    graph = (ZEN_BENCHMARK / entry["file"]).read_text()
    sid = f"bench-{uuid.uuid4().hex[:12]}"
    service = "/lendgate.v1.StrategyService/"
    await _unary(
        channel,
        service + "RegisterStrategy",
        strategy_pb2.RegisterStrategyRequest(request_id=sid, strategy_id=sid),
    )
    await _unary(
        channel,
        service + "CreateStrategyVersion",
        strategy_pb2.CreateStrategyVersionRequest(
            parent=f"strategies/{sid}",
            strategy_version=strategy_pb2.StrategyVersion(graph_json=graph),
        ),
    )
    await _unary(
        channel,
        service + "PublishStrategyVersion",
        strategy_pb2.PublishStrategyVersionRequest(name=f"strategies/{sid}/versions/1"),
    )
    doc = struct_pb2.Struct()
    doc.update(entry["input"])
    body = strategy_pb2.EvaluateRequest(strategy=f"strategies/{sid}", input=doc)
    request = Request(body.SerializeToString(), PARTNER)
    return Prepared(
        Traffic(service + "Evaluate", (request,)),
        {"strategy": f"strategies/{sid}", "graph": STRATEGY_GRAPH},
    )


async def prepare_auction(channel: grpc.aio.Channel, options: Options) -> Prepared:
    """GetCoordinatorInfo: the auction service's read path.

    An auction lasts a bidding window (seconds), so auctions per second are measured by
    ``bench/auction_bench.py``, not by this open-loop unary load.
    """
    del channel, options
    body = auction_pb2.GetCoordinatorInfoRequest().SerializeToString()
    method = "/lendgate.v1.AuctionService/GetCoordinatorInfo"
    return Prepared(Traffic(method, (Request(body, PARTNER),), request_id=False))


def _scoring_call(message: Message, request_id: str) -> tuple[str, Message]:
    service = "/lendgate.v1.ScoringService/"
    if isinstance(message, scoring_pb2.ApplicationEvent):
        req: Message = scoring_pb2.CheckApplicationRequest(
            request_id=request_id, application=message
        )
        return service + "CheckApplication", req
    if isinstance(message, scoring_pb2.PaymentEvent):
        return service + "CheckPayment", scoring_pb2.CheckPaymentRequest(
            request_id=request_id, payment=message
        )
    return service + "ReportOutcome", message


def _history_config(options: Options) -> GenConfig:
    applicants = max(200, options.history // 2, options.calls)
    return GenConfig(seed=options.seed, applicants=applicants, start=options.start)


def write_history(options: Options, path: Path) -> int:
    """Write the first ``history`` generated events (what :func:`prepare_scoring` would send)
    as a gen-data file for ``lendgate load-history``; returns how many."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for event in generate(_history_config(options)):
            if written >= options.history:
                break
            out.write(to_json_line(event) + "\n")
            written += 1
    return written


async def prepare_scoring(channel: grpc.aio.Channel, options: Options) -> Prepared:
    """Send ``history`` generated events (applications, payments, outcomes, in time
    order), then measure CheckApplication on the applications that come after them.

    The history goes through the public API, so it works against any server; calls it
    refuses are counted by status code in ``notes["preload_codes"]``.
    """
    history: list[Message] = []
    applications: list[scoring_pb2.ApplicationEvent] = []
    for event in generate(_history_config(options)):
        if len(history) < options.history:
            history.append(event.message)
        elif isinstance(event.message, scoring_pb2.ApplicationEvent):
            applications.append(event.message)
            if len(applications) >= options.calls:
                break
    if not applications:  # a history as long as the data: measure on its applications
        applications = [m for m in history if isinstance(m, scoring_pb2.ApplicationEvent)]
    codes: Counter[str] = Counter()
    owners: dict[str, str] = {}
    # Each event is sent as its own partner (dev auth mode), so the history is accepted.
    queue = [(n, m, _partner_of(m, owners)) for n, m in enumerate(history)]
    if options.preload_store:  # already in the server's store
        queue = []
    run = uuid.uuid4().hex[:8]

    async def preloader() -> None:
        while queue:
            n, message, partner = queue.pop(0)
            method, request = _scoring_call(message, f"h-{run}-{n}")
            try:
                await _unary(channel, method, request, ((PARTNER_HEADER, partner),))
                codes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                codes[exc.code().name] += 1

    await asyncio.gather(*(preloader() for _ in range(PRELOAD_CONCURRENCY)))
    notes = {
        "preload_events": len(history),
        "preload_codes": dict(codes),
        "preloaded_store": options.preload_store,
    }
    if options.stream:
        items = []
        for a in applications:
            item = scoring_pb2.CheckStreamRequest()
            item.application.CopyFrom(a)
            item.application.partner_id = "bench"
            items.append(Request(item.SerializeToString(), ((PARTNER_HEADER, "bench"),)))
        stream = Traffic("/lendgate.v1.ScoringService/CheckStream", tuple(items), stream=True)
        return Prepared(stream, notes | {"stream": True})
    requests = tuple(
        Request(
            scoring_pb2.CheckApplicationRequest(application=a).SerializeToString(),
            ((PARTNER_HEADER, a.partner_id or "bench"),),
        )
        for a in applications
    )
    return Prepared(Traffic("/lendgate.v1.ScoringService/CheckApplication", requests), notes)


SCENARIOS: dict[str, Prepare] = {
    "scoring": prepare_scoring,
    "strategy": prepare_strategy,
    "auction": prepare_auction,
    "echo": prepare_echo,
}
