"""Unary vs streaming scoring in one run: ``CheckApplication`` vs ``CheckStream``.

    .venv/bin/python -m bench.stream_vs_unary [--events 3000] [--rounds 3] [--json FILE]

One ``lendgate serve`` (started here, or ``--target``) with a pre-loaded generated
history. The measured applications (newer than the history, each sent once) are cut into
``3 * rounds`` consecutive chunks, and the modes take turns on them (unary, stream,
unary, ...), so both see the same load and the same state of the aggregates:

* ``unary-1``: one caller, one ``CheckApplication`` at a time (closed loop);
* ``unary-C``: ``C`` concurrent callers on one channel (``--concurrency``);
* ``stream``: one ``CheckStream`` with up to ``C`` items in flight (the server answers
  the items of a stream one after another, in order).

Each prints events/s (answers over wall time) and per-event latency p50/p99 (from the
send of the request or item to its answer), and the ratios stream / unary. Every event
is sent as partner ``bench`` (its ``partner_id`` set so), the same for all modes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench import harness, report, scenarios
from bench.load import percentile
from lendgate.v1 import scoring_pb2

SERVICE = "/lendgate.v1.ScoringService/"
PARTNER = scenarios.PARTNER


@dataclass
class Tally:
    """One mode's measurements over all its chunks."""

    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        """events/s, latency percentiles (ms) and answers by code."""
        lat = sorted(self.latencies)
        return {
            "events": self.events,
            "events_per_s": round(self.events / self.seconds, 1) if self.seconds else None,
            "p50_ms": report.ms(percentile(lat, 50)),
            "p99_ms": report.ms(percentile(lat, 99)),
            "codes": dict(self.codes),
        }


async def unary(
    channel: grpc.aio.Channel,
    apps: Sequence[scoring_pb2.ApplicationEvent],
    callers: int,
    tally: Tally,
) -> None:
    """``callers`` closed-loop callers of CheckApplication share ``apps`` in order."""
    call = channel.unary_unary(SERVICE + "CheckApplication")
    queue = list(reversed(apps))
    run = uuid.uuid4().hex[:8]

    async def caller() -> None:
        while queue:
            app = queue.pop()
            body = scoring_pb2.CheckApplicationRequest(
                request_id=f"u-{run}-{len(queue)}", application=app
            ).SerializeToString()
            t = time.perf_counter()
            try:
                await call(body, metadata=PARTNER, timeout=30)
                tally.codes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                tally.codes[exc.code().name] += 1
            tally.latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    tally.seconds += time.perf_counter() - start
    tally.events += len(apps)


async def stream(
    channel: grpc.aio.Channel,
    apps: Sequence[scoring_pb2.ApplicationEvent],
    window: int,
    tally: Tally,
) -> None:
    """One CheckStream carrying ``apps``, at most ``window`` items unanswered at once."""
    call = channel.stream_stream(
        SERVICE + "CheckStream",
        request_serializer=scoring_pb2.CheckStreamRequest.SerializeToString,
        response_deserializer=scoring_pb2.CheckStreamResponse.FromString,
    )
    run = uuid.uuid4().hex[:8]
    sent_at: dict[str, float] = {}
    credit = asyncio.Semaphore(window)

    async def items() -> AsyncIterator[scoring_pb2.CheckStreamRequest]:
        for n, app in enumerate(apps):
            await credit.acquire()
            cid = str(n)
            sent_at[cid] = time.perf_counter()
            yield scoring_pb2.CheckStreamRequest(
                correlation_id=cid, request_id=f"s-{run}-{n}", application=app
            )

    start = time.perf_counter()
    responses = call(items(), metadata=PARTNER, timeout=300)
    async for answer in responses:
        tally.latencies.append(time.perf_counter() - sent_at.pop(answer.correlation_id))
        code = "OK" if answer.WhichOneof("result") == "report" else answer.error.reason or "ERROR"
        tally.codes[code] += 1
        credit.release()
    tally.seconds += time.perf_counter() - start
    tally.events += len(apps)


async def compare(address: str, args: argparse.Namespace) -> dict[str, Any]:
    """Pre-load, then alternate the modes over consecutive chunks of new applications."""
    options = scenarios.Options(history=args.history, calls=args.events)
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout=5)
        except TimeoutError:
            raise harness.HarnessError(f"cannot connect to {address}") from None
        prepared = await scenarios.prepare_scoring(channel, options)
        apps = []
        for request in prepared.traffic.requests:
            app = scoring_pb2.CheckApplicationRequest.FromString(request.body).application
            app.partner_id = "bench"
            apps.append(app)
        modes = ("unary-1", f"unary-{args.concurrency}", "stream")
        tallies = {m: Tally() for m in modes}
        chunk = len(apps) // (len(modes) * args.rounds)
        if chunk < 10:
            raise harness.HarnessError(f"--events {args.events}: too few for {args.rounds} rounds")
        turns = [m for _ in range(args.rounds) for m in modes]
        for i, mode in enumerate(turns):
            part = apps[i * chunk : (i + 1) * chunk]
            if mode == "stream":
                await stream(channel, part, args.concurrency, tallies[mode])
            else:
                callers = 1 if mode == "unary-1" else args.concurrency
                await unary(channel, part, callers, tallies[mode])
    result: dict[str, Any] = {m: t.summary() for m, t in tallies.items()}
    result["notes"] = prepared.notes
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print one line per mode plus the ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench.stream_vs_unary", description=__doc__)
    parser.add_argument("--events", type=int, default=3000, help="measured applications")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each mode")
    parser.add_argument("--concurrency", type=int, default=16, help="callers / stream window")
    parser.add_argument("--history", type=int, default=2000, help="events pre-loaded")
    parser.add_argument("--target", help="HOST:PORT of a running server (default: start one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        with harness.server_for("scoring", args.target) as address:
            result = asyncio.run(compare(address, args))
    except harness.HarnessError as exc:
        print(f"bench.stream_vs_unary: {exc}", file=sys.stderr)
        return 2
    result.update(report.machine())
    for mode in ("unary-1", f"unary-{args.concurrency}", "stream"):
        r = result[mode]
        print(
            f"{mode:10} {r['events']:6d} events  {r['events_per_s'] or 0:8.1f} events/s"
            f"  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  answers {r['codes']}"
        )
    s, u1, uc = result["stream"], result["unary-1"], result[f"unary-{args.concurrency}"]
    if s["events_per_s"] and u1["events_per_s"] and uc["events_per_s"]:
        print(
            f"stream / unary-1 events/s: {s['events_per_s'] / u1['events_per_s']:.2f};"
            f" stream / unary-{args.concurrency}: {s['events_per_s'] / uc['events_per_s']:.2f}"
        )
    print(
        f"machine: {result['cpu_count']} cores ({result['cpu_model']}), load average"
        f" {result['load_average']}, commit {result['git_sha'][:12]}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
