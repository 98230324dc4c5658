"""The open-loop load generator: client processes, each with several channels.

Every request ``i`` of a process has a scheduled send time ``phase + i / rate``; the
process sends it at that time whether or not earlier calls have answered (open loop),
and its latency runs from the *scheduled* time to the answer, so a server (or a
generator) that falls behind shows up as latency instead of as a lower offered rate.
Calls scheduled during the warm-up are sent but not measured. Each process returns its
raw latency samples, which :func:`merge` concatenates: percentiles are computed once,
over every sample, never averaged across processes.

The transport floor uses the same processes in closed loop (a fixed number of calls in
flight per channel) to find the most calls per second the client and server can pass.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

# An open-loop process refuses to hold more calls in flight than this; a refused call
# is counted as the error CLIENT_BACKLOG, so an overloaded server cannot exhaust memory.
MAX_IN_FLIGHT = 20_000
START_MARGIN_S = 0.3  # between "all processes ready" and the first scheduled send


@dataclass(frozen=True)
class Request:
    """One request of the traffic: serialized body and call metadata.

    With ``request_id`` the harness prepends a unique ``request_id`` (field 1, a
    string) to the body, so retries of identical bodies are not deduplicated.
    """

    body: bytes
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Traffic:
    """What to send: the method path and the requests to cycle through.

    With ``stream`` the method is a bidirectional stream whose items are requests (e.g.
    ``ScoringService/CheckStream``): each channel holds one call open, every request is an
    item written at its scheduled time (field 1, a correlation id, and field 2, the
    ``request_id``, are prepended), and its latency runs to its answer, which the server
    sends in item order."""

    method: str
    requests: tuple[Request, ...]
    request_id: bool = True
    stream: bool = False


@dataclass(frozen=True)
class WorkerSpec:
    """One client process's share of a run."""

    target: str
    traffic: Traffic
    index: int
    channels: int
    warmup_s: float
    duration_s: float
    timeout_s: float
    rate: float = 0.0
    """Calls per second of this process (open loop); 0 with ``in_flight`` = closed loop."""
    phase_s: float = 0.0
    """Offset of this process's first call, so processes interleave their sends."""
    in_flight: int = 0
    """Closed loop: calls kept in flight per channel."""


@dataclass
class WorkerResult:
    """What one process measured; ``latencies``/``lags`` are raw samples in seconds."""

    latencies: array[float] = field(default_factory=lambda: array("d"))
    codes: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    answered_in_window: int = 0
    ok_in_window: int = 0
    lags: array[float] = field(default_factory=lambda: array("d"))
    cpu_s: float = 0.0
    wall_s: float = 0.0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def with_request_id(request_id: str, body: bytes) -> bytes:
    """``body`` with field 1 (``request_id``) set: protobuf merges concatenated fields."""
    raw = request_id.encode()
    return b"\x0a" + _varint(len(raw)) + raw + body


def stream_item(correlation_id: str, request_id: str, body: bytes) -> bytes:
    """A stream item: ``body`` with field 1 (correlation id) and field 2 (``request_id``)."""
    cid, rid = correlation_id.encode(), request_id.encode()
    return b"\x0a" + _varint(len(cid)) + cid + b"\x12" + _varint(len(rid)) + rid + body


def answer_code(raw: bytes) -> str:
    """``OK`` for a stream answer that carries a result in field 2 (the report), else
    ``ITEM_ERROR`` (field 3, the error the unary call would have returned)."""
    at = 0
    if raw[:1] == b"\x0a":  # skip field 1, the correlation id
        length, shift, at = 0, 0, 1
        while True:
            byte = raw[at]
            length |= (byte & 0x7F) << shift
            at += 1
            if not byte & 0x80:
                break
            shift += 7
        at += length
    return "OK" if raw[at : at + 1] == b"\x12" else "ITEM_ERROR"


class _Stream:
    """One open streaming call of a process: items go out in order, answers come back in
    order, so the oldest waiting schedule belongs to the next answer."""

    def __init__(self, call: Any, worker: _Worker) -> None:
        self.call = call
        self.waiting: collections.deque[float] = collections.deque()
        self.lock = asyncio.Lock()
        self.worker = worker
        self.reader = asyncio.get_running_loop().create_task(self.read())

    async def send(self, body: bytes, scheduled: float) -> None:
        async with self.lock:  # one write at a time, in schedule order
            self.waiting.append(scheduled)
            await self.call.write(body)

    async def read(self) -> None:
        try:
            async for raw in self.call:
                self.worker.record(answer_code(raw), self.waiting.popleft())
        except grpc.aio.AioRpcError as exc:
            while self.waiting:
                self.worker.record(exc.code().name, self.waiting.popleft())

    async def finish(self, wait_s: float) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await self.call.done_writing()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.reader), wait_s)


class _Worker:
    """The event-loop side of one client process."""

    def __init__(self, spec: WorkerSpec, start_wall: float, calls: list[Any]) -> None:
        self.spec = spec
        self.calls = calls
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time() + (start_wall - time.time())
        self.window_start = self.t0 + spec.warmup_s
        self.window_end = self.window_start + spec.duration_s
        self.prefix = f"p{spec.index}-{int(start_wall * 1000)}-"
        self.result = WorkerResult()
        self.pending: set[asyncio.Task[None]] = set()
        self.cpu0 = self.wall0 = 0.0
        self.streams: list[_Stream] = []
        if spec.traffic.stream:
            metadata = spec.traffic.requests[0].metadata if spec.traffic.requests else ()
            self.streams = [_Stream(call(metadata=metadata), self) for call in calls]

    async def call(self, i: int, scheduled: float) -> None:
        """Send request ``i`` and record its outcome against its ``scheduled`` time."""
        requests = self.spec.traffic.requests
        request = requests[i % len(requests)]
        body = request.body
        if self.streams:
            item = stream_item(str(i), self.prefix + str(i), body)
            await self.streams[i % len(self.streams)].send(item, scheduled)
            return
        if self.spec.traffic.request_id:
            body = with_request_id(self.prefix + str(i), body)
        method = self.calls[i % len(self.calls)]
        try:
            await method(body, timeout=self.spec.timeout_s, metadata=request.metadata)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        self.record(code, scheduled)

    def record(self, code: str, scheduled: float) -> None:
        """Count an answer (``code``) to the call scheduled at ``scheduled``."""
        done = self.loop.time()
        result = self.result
        if self.window_start <= done < self.window_end:
            result.answered_in_window += 1
            result.ok_in_window += code == "OK"
        if self.window_start <= scheduled < self.window_end:
            result.codes[code] += 1
            if code == "OK":
                result.latencies.append(done - scheduled)

    def fire(self, i: int, scheduled: float) -> None:
        """Start call ``i`` without waiting for it (refused past MAX_IN_FLIGHT)."""
        if not self.cpu0 and self.loop.time() >= self.window_start:
            self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        if len(self.pending) >= MAX_IN_FLIGHT:
            if self.window_start <= scheduled < self.window_end:
                self.result.codes["CLIENT_BACKLOG"] += 1
            return
        task = self.loop.create_task(self.call(i, scheduled))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        self.result.sent += 1

    async def open_loop(self) -> None:
        """Send each call at ``t0 + phase + i / rate``, late or not."""
        spec = self.spec
        end = spec.warmup_s + spec.duration_s
        i = 0
        while (offset := spec.phase_s + i / spec.rate) < end:
            scheduled = self.t0 + offset
            lag = self.loop.time() - scheduled
            if lag < 0:
                await asyncio.sleep(-lag)
                lag = self.loop.time() - scheduled
            if scheduled >= self.window_start:
                self.result.lags.append(max(0.0, lag))
            self.fire(i, scheduled)
            i += 1

    async def closed_loop(self) -> None:
        """Keep ``in_flight`` calls per channel busy until the window ends."""
        limit = self.spec.in_flight * self.spec.channels
        i = 0
        while (now := self.loop.time()) < self.window_end:
            if len(self.pending) >= limit:
                await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
                continue
            self.fire(i, now)
            i += 1

    async def run(self) -> WorkerResult:
        """Run the schedule, then wait for the calls still in flight."""
        await asyncio.sleep(max(0.0, self.t0 - self.loop.time()))
        await (self.closed_loop() if self.spec.in_flight else self.open_loop())
        await asyncio.sleep(max(0.0, self.window_end - self.loop.time()))
        if self.cpu0:
            self.result.cpu_s = time.process_time() - self.cpu0
            self.result.wall_s = time.perf_counter() - self.wall0
        if self.pending:
            await asyncio.wait(self.pending, timeout=self.spec.timeout_s + 1)
        for stream in self.streams:
            await stream.finish(self.spec.timeout_s + 1)
        return self.result


async def _run(spec: WorkerSpec, conn: multiprocessing.connection.Connection) -> WorkerResult:
    channels = [grpc.aio.insecure_channel(spec.target) for _ in range(spec.channels)]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), timeout=10)
    except TimeoutError:
        conn.send(f"cannot connect to {spec.target}")
        raise SystemExit(1) from None
    conn.send("ready")
    start_wall: float = conn.recv()
    try:
        method = spec.traffic.method
        calls = [
            ch.stream_stream(method) if spec.traffic.stream else ch.unary_unary(method)
            for ch in channels
        ]
        return await _Worker(spec, start_wall, calls).run()
    finally:
        for channel in channels:
            await channel.close()


def worker(spec: WorkerSpec, conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a client process: run ``spec`` and send back its result."""
    result = asyncio.run(_run(spec, conn))
    conn.send(result)
    conn.close()


class GeneratorError(Exception):
    """A client process failed (e.g. the target is unreachable); the message says why."""


def run_workers(specs: list[WorkerSpec]) -> list[WorkerResult]:
    """Start one process per spec, start them together, and collect their results."""
    ctx = multiprocessing.get_context("spawn")
    procs, conns = [], []
    for spec in specs:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(spec, child), daemon=True)
        proc.start()
        procs.append(proc)
        conns.append(parent)
    try:
        for conn in conns:
            if not conn.poll(60):
                raise GeneratorError("a client process did not start within 60 s")
            status = conn.recv()
            if status != "ready":
                raise GeneratorError(str(status))
        start_wall = time.time() + START_MARGIN_S
        for conn in conns:
            conn.send(start_wall)
        limit = max(spec.warmup_s + spec.duration_s + 2 * spec.timeout_s for spec in specs) + 30
        results = []
        for conn in conns:
            if not conn.poll(limit):
                raise GeneratorError("a client process did not report its result")
            results.append(conn.recv())
        return results
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


def open_loop_specs(
    *,
    target: str,
    traffic: Traffic,
    rate: float,
    processes: int,
    channels: int,
    warmup_s: float,
    duration_s: float,
    timeout_s: float,
) -> list[WorkerSpec]:
    """Split ``rate`` over ``processes``, interleaving their schedules evenly."""
    share = rate / processes
    return [
        WorkerSpec(
            target=target,
            traffic=traffic,
            index=p,
            channels=channels,
            warmup_s=warmup_s,
            duration_s=duration_s,
            timeout_s=timeout_s,
            rate=share,
            phase_s=p / rate,
        )
        for p in range(processes)
    ]


def closed_loop_specs(
    *,
    target: str,
    traffic: Traffic,
    processes: int,
    channels: int,
    in_flight: int,
    warmup_s: float,
    duration_s: float,
    timeout_s: float,
) -> list[WorkerSpec]:
    """``processes`` processes keeping ``in_flight`` calls per channel busy."""
    return [
        WorkerSpec(
            target=target,
            traffic=traffic,
            index=p,
            channels=channels,
            warmup_s=warmup_s,
            duration_s=duration_s,
            timeout_s=timeout_s,
            in_flight=in_flight,
        )
        for p in range(processes)
    ]


@dataclass
class Merged:
    """The union of every process's samples and counts."""

    latencies: list[float]
    lags: list[float]
    codes: Counter[str]
    sent: int
    answered_in_window: int
    ok_in_window: int
    cpu_shares: list[float]


def merge(results: list[WorkerResult]) -> Merged:
    """Concatenate the raw samples and add up the counts of every process."""
    latencies: list[float] = []
    lags: list[float] = []
    codes: Counter[str] = Counter()
    for r in results:
        latencies.extend(r.latencies)
        lags.extend(r.lags)
        codes.update(r.codes)
    latencies.sort()
    lags.sort()
    return Merged(
        latencies=latencies,
        lags=lags,
        codes=codes,
        sent=sum(r.sent for r in results),
        answered_in_window=sum(r.answered_in_window for r in results),
        ok_in_window=sum(r.ok_in_window for r in results),
        cpu_shares=[r.cpu_s / r.wall_s if r.wall_s else 0.0 for r in results],
    )


def percentile(sorted_samples: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of sorted samples; None when empty."""
    if not sorted_samples:
        return None
    rank = max(1, -(-len(sorted_samples) * q // 100))
    return sorted_samples[int(rank) - 1]
