"""``lendgate node`` (run a participant node) and ``lendgate settle`` (settle a period of
the auction's ledger); registered by ``lendgate.cli``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, date, datetime

EXIT_USAGE = 2


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``node`` and ``settle`` subcommands."""
    node = commands.add_parser("node", help="run a participant node of the lead auction")
    node.add_argument("--participant", required=True, help="participant id (pseudonym)")
    node.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT of the node")
    node.add_argument(
        "--coordinator", default="127.0.0.1:50051", help="HOST:PORT of lendgate serve"
    )
    node.add_argument("--landing-url", default="https://example.invalid/landing")
    node.set_defaults(handler=run)
    settle = commands.add_parser(
        "settle", help="settle a period of the auction's ledger (idempotent)"
    )
    settle.add_argument(
        "--period",
        required=True,
        help="YYYY-MM (a month), YYYY-MM-DD (a day) or START/END dates (END exclusive), UTC",
    )
    settle.add_argument("--currency", default="RUB", help="ISO 4217 code (default RUB)")
    settle.add_argument("--config", help="TOML config file (default: $LENDGATE_CONFIG)")
    settle.add_argument("--data-dir", help="directory of the embedded storage (default var)")
    settle.add_argument("--database-url", help="sqlite:///PATH or postgresql://...")
    settle.set_defaults(handler=run_settle)


def run(args: argparse.Namespace) -> int:
    """Run the node until SIGTERM/SIGINT."""
    from servers.participant import run_node  # noqa: PLC0415

    asyncio.run(run_node(args.participant, args.listen, args.coordinator, args.landing_url))
    return 0


def parse_period(text: str) -> tuple[float, float]:
    """``[start, end)`` in epoch seconds of a period given as a month, a day or two dates."""

    def day(s: str) -> datetime:
        return datetime.combine(date.fromisoformat(s), datetime.min.time(), UTC)

    if "/" in text:
        first, _, last = text.partition("/")
        start, end = day(first), day(last)
    elif len(text) == 7:
        start = day(f"{text}-01")
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    else:
        start = day(text)
        end = datetime.fromtimestamp(start.timestamp() + 86400, UTC)
    if end <= start:
        raise ValueError("the period ends before it starts")
    return start.timestamp(), end.timestamp()


def run_settle(args: argparse.Namespace) -> int:
    """Settle the period: compute every pair's net, store the final settlement once, print
    it as JSON. A repeat prints the settlement stored the first time."""
    from lendgate.auction.books import (  # noqa: PLC0415
        load_ledger,
        settlement_from_json,
        settlement_id,
        settlement_json,
    )
    from lendgate.config import ConfigError, load_config  # noqa: PLC0415
    from lendgate.store import StoreOpenError, open_store  # noqa: PLC0415

    try:
        start, end = parse_period(args.period)
        if len(args.currency) != 3 or not args.currency.isupper():
            raise ValueError("--currency must be an ISO 4217 code such as RUB")
        config = load_config(
            args.config,
            overrides={"data_dir": args.data_dir, "database_url": args.database_url},
        )
        store = open_store(config.effective_database_url)
    except (ValueError, ConfigError, StoreOpenError) as exc:
        print(f"lendgate settle: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def settle() -> tuple[str, bool]:
        ledger, _, settlements = load_ledger(store)
        computed = ledger.final_settlement(start, end, args.currency)
        sid = settlement_id(computed)
        if sid in settlements:
            return settlement_json(settlements[sid]), False
        if sum(computed.nets.values()) != 0:
            raise RuntimeError(f"the nets of {sid} do not sum to zero: the ledger is corrupt")
        stored = await store.put_auction_settlement(sid, settlement_json(computed))
        return stored, True

    try:
        text, created = asyncio.run(settle())
    finally:
        store.close()
    s = settlement_from_json(text)
    print(
        json.dumps(
            {
                "settlement": f"settlements/{settlement_id(s)}",
                "state": "FINAL",
                "created": created,
                "start": datetime.fromtimestamp(s.start, UTC).isoformat(),
                "end": datetime.fromtimestamp(s.end, UTC).isoformat(),
                "currency": s.currency,
                "nets": s.nets,
                "sum_of_nets": sum(s.nets.values()),
                "transfers": [
                    {"from": t.from_account, "to": t.to_account, "amount_minor": t.amount_minor}
                    for t in s.transfers
                ],
                "last_sequence": s.last_sequence,
                "adjustments": list(s.adjustments),
            },
            sort_keys=True,
        )
    )
    return 0
