"""``lendgate load-history``: load generated history into the store and the scoring state.

Reads a ``lendgate gen-data`` file (JSON Lines, in event-time order) and feeds it through
the scoring service in process (:meth:`ScoringService.load_history`): the same validation,
scoring and storage as live checks, batched appends, a last snapshot. A server started
afterwards on the same store restores that snapshot and replays nothing. For benchmarks
("with 1,000,000 prior applications loaded") and migrations.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

EXIT_USAGE = 2
EXIT_FAILED = 1


def add_parser(commands: Any) -> None:
    """Register ``load-history`` on the ``lendgate`` subcommand parser."""
    p = commands.add_parser(
        "load-history",
        help="load a gen-data file into the store and the scoring state (then snapshot)",
    )
    p.add_argument("file", help="a `lendgate gen-data` file (.jsonl or .jsonl.gz)")
    p.add_argument("--config", help="TOML config file (default: $LENDGATE_CONFIG)")
    p.add_argument("--data-dir", help="directory of the embedded storage (default var)")
    p.add_argument("--database-url", help="sqlite:///PATH or postgresql://...")
    p.add_argument("--limit", type=int, default=0, help="load at most this many events")
    p.add_argument("--batch", type=int, default=2000, help="events per append batch")
    p.add_argument(
        "--request-prefix", default="history", help="request ids are PREFIX-N (N: line number)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the file; one summary line on stderr; exit 2 on a usage error, 1 on failure."""
    from lendgate.config import ConfigError, load_config  # noqa: PLC0415
    from lendgate.errors import LendgateError  # noqa: PLC0415
    from lendgate.store import StoreOpenError  # noqa: PLC0415

    path = Path(args.file)
    if not path.is_file():
        print(f"lendgate: {path}: no such file", file=sys.stderr)
        return EXIT_USAGE
    if args.limit < 0 or args.batch < 1:
        print("lendgate: --limit must be >= 0 and --batch >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(
            args.config, overrides={"data_dir": args.data_dir, "database_url": args.database_url}
        )
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    except (ConfigError, OSError) as exc:
        print(f"lendgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = asyncio.run(_load(config.effective_database_url, path, args))
    except StoreOpenError as exc:
        print(f"lendgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (LendgateError, ValueError) as exc:
        print(f"lendgate: loading {path} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"lendgate: {summary}", file=sys.stderr)
    return 0


_CHUNK = 2000


def _parse_chunk(lines: list[str]) -> list[tuple[str, bytes]]:
    """JSON lines → (kind, serialized message): run in a worker process, since parsing
    proto3 JSON in Python costs as much as scoring the event."""
    from google.protobuf import json_format  # noqa: PLC0415

    from lendgate.v1 import scoring_pb2  # noqa: PLC0415

    messages: dict[str, Any] = {
        "application": scoring_pb2.ApplicationEvent,
        "payment": scoring_pb2.PaymentEvent,
        "outcome": scoring_pb2.ReportOutcomeRequest,
    }
    out = []
    for line in lines:
        raw = json.loads(line)
        message = json_format.ParseDict(raw["event"], messages[raw["kind"]]())
        out.append((raw["kind"], message.SerializeToString()))
    return out


def _items(path: Path, limit: int) -> Iterator[tuple[str, Any]]:
    """The file's events as messages, parsed a chunk ahead in another process."""
    from lendgate.datagen.output import _open  # noqa: PLC0415
    from lendgate.v1 import scoring_pb2  # noqa: PLC0415

    types: dict[str, Any] = {
        "application": scoring_pb2.ApplicationEvent,
        "payment": scoring_pb2.PaymentEvent,
        "outcome": scoring_pb2.ReportOutcomeRequest,
    }
    # spawn: a fresh interpreter, not a fork of this one with the store's threads in it.
    spawn = multiprocessing.get_context("spawn")
    with _open(path, "r") as lines, ProcessPoolExecutor(1, mp_context=spawn) as pool:
        wanted = itertools.islice(lines, limit) if limit else lines
        chunks = iter(lambda: list(itertools.islice(wanted, _CHUNK)), [])
        ahead: deque[Future[list[tuple[str, bytes]]]] = deque()
        for chunk in itertools.islice(chunks, 2):
            ahead.append(pool.submit(_parse_chunk, chunk))
        while ahead:
            parsed = ahead.popleft().result()
            for chunk in itertools.islice(chunks, 1):
                ahead.append(pool.submit(_parse_chunk, chunk))
            for kind, data in parsed:
                yield kind, types[kind].FromString(data)


async def _load(database_url: str, path: Path, args: argparse.Namespace) -> str:
    from lendgate.scoring import ScoringService, StateSettings  # noqa: PLC0415
    from lendgate.store import open_store  # noqa: PLC0415

    store = await asyncio.to_thread(open_store, database_url)
    try:
        # No background snapshot while loading: one at the end.
        state = StateSettings.for_store(store, snapshot_every_events=0, snapshot_every_seconds=0)
        service = ScoringService(store, state=state)
        started = time.monotonic()
        recovered = await service.recover()

        def progress(done: int) -> None:
            if not args.quiet:
                rate = done / max(time.monotonic() - started, 1e-9)
                sys.stderr.write(f"\rload-history {done:,} events {rate:,.0f}/s")
                sys.stderr.flush()

        loaded = await service.load_history(
            _items(path, args.limit),
            request_prefix=args.request_prefix,
            batch=args.batch,
            progress=progress,
        )
        await service.aclose(snapshot=False)
    finally:
        await store.aclose()
    if not args.quiet:
        sys.stderr.write("\n")
    total = loaded.checks + loaded.outcomes
    return (
        f"loaded {loaded.checks:,} checks and {loaded.outcomes:,} outcomes"
        f" ({loaded.refused:,} refused, {loaded.orphan_outcomes:,} outcomes without their"
        f" application) in {loaded.seconds:.1f} s ({total / max(loaded.seconds, 1e-9):,.0f}"
        f" events/s) after replaying {recovered:,}; snapshot at log position {loaded.position:,}"
    )
