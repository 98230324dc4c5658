"""``lendgate gen-data``: write a synthetic event stream to a JSON Lines file."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    """Register ``gen-data`` on the ``lendgate`` subcommand parser."""
    p = commands.add_parser(
        "gen-data",
        help="generate synthetic applications, payments and outcomes (JSON Lines or binary)",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same file)")
    p.add_argument("--applicants", type=int, default=1000, help="number of applicants")
    p.add_argument("--days", type=int, default=90, help="length of the simulated period")
    p.add_argument("--start", default="2025-01-01", help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--out", required=True, help="output file: .jsonl, .pb (+ .gz)")
    p.add_argument(
        "--format",
        choices=["jsonl", "pb"],
        help="jsonl, or pb: length-delimited ExportedEvent records (default: by --out name)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Generate the file and print the event counts."""
    from lendgate.datagen import GenConfig, Generator, write_events  # noqa: PLC0415

    if args.applicants < 1 or args.days < 1:
        print("lendgate: --applicants and --days must be positive", file=sys.stderr)
        return 2
    try:
        start = dt.date.fromisoformat(args.start)
    except ValueError:
        print(f"lendgate: --start {args.start!r} is not a YYYY-MM-DD date", file=sys.stderr)
        return 2
    cfg = GenConfig(seed=args.seed, applicants=args.applicants, days=args.days, start=start)
    binary = None if args.format is None else args.format == "pb"
    counts = write_events(Generator(cfg), Path(args.out), progress=not args.quiet, binary=binary)
    summary = ", ".join(f"{v:,} {k} events" for k, v in counts.items())
    print(f"lendgate: wrote {summary} to {args.out}", file=sys.stderr)
    return 0
