"""One benchmark run: start (or reach) the server, prepare, measure, add the floor."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench import load, processes, report, scenarios

FLOOR_IN_FLIGHT = 32  # closed-loop calls per channel when measuring the transport floor


@dataclass(frozen=True)
class RunConfig:
    """A run as the command line describes it."""

    scenario: str
    rate: float
    duration_s: float
    warmup_s: float = 2.0
    target: str | None = None
    processes: int = 2
    channels: int = 2
    timeout_s: float = 10.0
    floor_s: float = 3.0
    """Seconds of transport-floor measurement; 0 skips it."""
    options: scenarios.Options = field(default_factory=scenarios.Options)


class HarnessError(Exception):
    """The run cannot go on (unreachable target, server failed to start...)."""


@contextlib.contextmanager
def server_for(
    scenario: str,
    target: str | None,
    options: scenarios.Options | None = None,
    notes: dict[str, object] | None = None,
) -> Iterator[str]:
    """The address to drive: ``target``, or a server started (and stopped) here — on a
    store pre-loaded with the scoring history when ``options.preload_store``. What
    starting it took goes into ``notes``."""
    if target:
        yield target
        return
    try:
        if scenario == "echo":
            server = processes.start_echo()
        elif scenario == "scoring" and options is not None and options.preload_store:
            with tempfile.TemporaryDirectory(prefix="lendgate-history-") as tmp:
                history = Path(tmp) / "history.jsonl"
                scenarios.write_history(options, history)
                server = processes.start_lendgate(history)
        else:
            server = processes.start_lendgate()
    except processes.StartError as exc:
        raise HarnessError(str(exc)) from None
    if notes is not None:
        notes.update(server.notes)
    with server:
        yield server.address


async def _prepare(address: str, cfg: RunConfig) -> scenarios.Prepared:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout=5)
        except TimeoutError:
            raise HarnessError(f"cannot connect to {address}") from None
        try:
            return await scenarios.SCENARIOS[cfg.scenario](channel, cfg.options)
        except grpc.aio.AioRpcError as exc:
            raise HarnessError(
                f"preparing {cfg.scenario} failed: {exc.code().name}: {exc.details()}"
            ) from None


def measure(address: str, traffic: load.Traffic, cfg: RunConfig) -> dict[str, Any]:
    """The open-loop measurement of ``traffic`` at ``cfg.rate`` against ``address``."""
    specs = load.open_loop_specs(
        target=address,
        traffic=traffic,
        rate=cfg.rate,
        processes=cfg.processes,
        channels=cfg.channels,
        warmup_s=cfg.warmup_s,
        duration_s=cfg.duration_s,
        timeout_s=cfg.timeout_s,
    )
    try:
        results = load.run_workers(specs)
    except load.GeneratorError as exc:
        raise HarnessError(str(exc)) from None
    return report.summarize(load.merge(results), cfg.rate, cfg.duration_s)


def transport_floor(cfg: RunConfig) -> dict[str, Any]:
    """Closed-loop maximum of the empty echo handler, with the run's processes/channels."""
    with server_for("echo", None) as address:
        traffic = asyncio.run(_prepare(address, cfg_for_echo(cfg))).traffic
        specs = load.closed_loop_specs(
            target=address,
            traffic=traffic,
            processes=cfg.processes,
            channels=cfg.channels,
            in_flight=FLOOR_IN_FLIGHT,
            warmup_s=1.0,
            duration_s=cfg.floor_s,
            timeout_s=cfg.timeout_s,
        )
        try:
            merged = load.merge(load.run_workers(specs))
        except load.GeneratorError as exc:
            raise HarnessError(f"transport floor: {exc}") from None
    return {
        "transport_floor_rps": round(merged.ok_in_window / cfg.floor_s, 1),
        "transport_floor_p50_ms": report.ms(load.percentile(merged.latencies, 50)),
        "transport_floor_generator_cpu_share": [round(s, 3) for s in merged.cpu_shares],
    }


def cfg_for_echo(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the echo scenario (the floor's traffic)."""
    return RunConfig("echo", cfg.rate, cfg.duration_s, options=cfg.options)


def run(cfg: RunConfig, address: str | None = None) -> dict[str, Any]:
    """Measure ``cfg`` (against ``address`` when given) and the transport floor."""
    machine_before = report.machine()
    with contextlib.ExitStack() as stack:
        server_notes: dict[str, object] = {}
        if address is None:
            address = stack.enter_context(
                server_for(cfg.scenario, cfg.target, cfg.options, server_notes)
            )
        prepared = asyncio.run(_prepare(address, cfg))
        prepared.notes.update(server_notes)
        result = measure(address, prepared.traffic, cfg)
    floor = transport_floor(cfg) if cfg.floor_s > 0 else {"transport_floor_rps": None}
    machine = report.machine()
    # The load average can move during a run: report the higher of start and end.
    machine["load_average"] = max(machine_before["load_average"], machine["load_average"])
    return {
        "scenario": cfg.scenario,
        "method": prepared.traffic.method,
        "target": cfg.target or f"own server at {address}",
        "duration_s": cfg.duration_s,
        "warmup_s": cfg.warmup_s,
        "processes": cfg.processes,
        "channels": cfg.channels,
        **result,
        **floor,
        "share_of_floor": (
            round(result["achieved_rps"] / floor["transport_floor_rps"], 4)
            if floor["transport_floor_rps"]
            else None
        ),
        **machine,
        "notes": prepared.notes,
    }
