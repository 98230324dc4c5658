"""``python -m bench SCENARIO --rate R --duration S`` and ``python -m bench sweep``.

Open-loop load against a real gRPC server, with the transport floor measured in the
same run (docs/BENCHMARKS.md). Without ``--target`` the harness starts its own
``lendgate serve`` (or, for ``echo``, the echo server) and stops it at the end.
Bad input (unknown scenario, rate of zero, unreachable target) gives a one-line error
and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from bench import harness, report
from bench.scenarios import SCENARIOS, Options

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit with code 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--duration", type=_positive(float), default=10.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not measured")
    parser.add_argument("--target", help="HOST:PORT of a running server (default: start one)")
    parser.add_argument("--processes", type=_positive(int), default=2)
    parser.add_argument("--channels", type=_positive(int), default=2, help="per process")
    parser.add_argument("--timeout", type=_positive(float), default=10.0, help="per call, s")
    parser.add_argument(
        "--floor-seconds", type=float, default=3.0, help="transport floor run; 0 skips it"
    )
    parser.add_argument("--history", type=int, default=2000, help="scoring: events pre-loaded")
    parser.add_argument(
        "--preload-store",
        action="store_true",
        help="scoring: load the --history events into the started server's store with"
        " `lendgate load-history` (fast; for 1,000,000) instead of sending them over the API",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="scoring: send the checks as items of CheckStream calls (one per channel)"
        " instead of unary CheckApplication calls",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")


PRELOAD_START = datetime.now(UTC).date() - timedelta(days=100)


def _config(args: argparse.Namespace, rate: float) -> harness.RunConfig:
    return harness.RunConfig(
        scenario=args.scenario,
        rate=rate,
        duration_s=args.duration,
        warmup_s=args.warmup,
        target=args.target,
        processes=args.processes,
        channels=args.channels,
        timeout_s=args.timeout,
        floor_s=args.floor_seconds,
        options=Options(
            history=args.history,
            preload_store=args.preload_store,
            stream=args.stream,
            # A pre-loaded history must be recent, or the server's retention drops it.
            start=PRELOAD_START if args.preload_store else Options.start,
            calls=max(2000, math.ceil(rate * (args.duration + args.warmup) * 1.05)),
        ),
    )


def _write(path: Path | None, document: object) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")


def run_one(argv: Sequence[str]) -> int:
    """One run at a fixed offered rate."""
    parser = _Parser(prog="python -m bench", description=__doc__)
    _common(parser)
    parser.add_argument("--rate", type=_positive(float), required=True, help="calls/s offered")
    parser.add_argument("--target-p99-ms", type=float, help="report whether p99 meets this target")
    args = parser.parse_args(argv)
    result = harness.run(_config(args, args.rate))
    if args.target_p99_ms is not None:
        p99 = result["p99_ms"]
        result["target_p99_ms"] = args.target_p99_ms
        result["meets_target"] = bool(
            p99 is not None and p99 <= args.target_p99_ms and not result["errors"]
        )
    print(report.text(result))
    _write(args.json, result)
    return 0


def sweep(argv: Sequence[str]) -> int:
    """Increasing offered rates until p99 exceeds the objective or calls fail."""
    parser = _Parser(prog="python -m bench sweep", description=__doc__)
    _common(parser)
    parser.add_argument("--rates", default="50,100,200,400,800,1200,1600,2400,3200")
    parser.add_argument("--slo-ms", type=_positive(float), default=10.0, help="p99 objective")
    args = parser.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError:
        parser.error(f"--rates: expected numbers separated by commas, got {args.rates!r}")
    if not rates or min(rates) <= 0:
        parser.error("--rates: every rate must be > 0")
    if args.preload_store and len(rates) > 1:
        parser.error("--preload-store: one rate (each sweep step moves the history forward)")
    base = _config(args, rates[0])
    steps: list[dict[str, Any]] = []
    best: float | None = None
    with harness.server_for(args.scenario, args.target, base.options) as address:
        for rate in rates:
            step = len(steps)
            options = replace(
                base.options,
                seed=base.options.seed + step,
                start=base.options.start + timedelta(days=130 * step),
                calls=max(2000, math.ceil(rate * (args.duration + args.warmup) * 1.05)),
            )
            result = harness.run(replace(base, rate=rate, floor_s=0, options=options), address)
            ok = (
                result["p99_ms"] is not None
                and result["p99_ms"] <= args.slo_ms
                and not result["errors"]
                and result["achieved_rps"] >= 0.95 * rate
            )
            print(report.text(result))
            print(f"  -> {'within' if ok else 'outside'} p99 <= {args.slo_ms:g} ms", flush=True)
            steps.append(result)
            if not ok:
                break
            best = rate
    floor = harness.transport_floor(base) if args.floor_seconds > 0 else {}
    summary = {
        "scenario": args.scenario,
        "slo_p99_ms": args.slo_ms,
        "highest_rate_within_slo": best,
        **floor,
        "steps": steps,
        **report.machine(),
    }
    print(
        f"sweep {args.scenario}: highest offered rate with p99 <= {args.slo_ms:g} ms and no"
        f" errors: {best if best is not None else 'none'}"
        + (f"; transport floor {floor['transport_floor_rps']:.0f}/s" if floor else "")
    )
    _write(args.json, summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user-fixable problems end in one line on stderr and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["sweep"]:
            return sweep(argv[1:])
        if argv[:1] == ["auction"]:  # a protocol, not one RPC: its own closed-loop bench
            from bench import auction_bench  # noqa: PLC0415

            return auction_bench.cli(argv[1:])
        return run_one(argv)
    except harness.HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
