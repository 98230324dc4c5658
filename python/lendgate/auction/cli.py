"""``lendgate node``: run a participant node (registered by ``lendgate.cli``)."""

from __future__ import annotations

import argparse
import asyncio


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``node`` subcommand."""
    node = commands.add_parser("node", help="run a participant node of the lead auction")
    node.add_argument("--participant", required=True, help="participant id (pseudonym)")
    node.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT of the node")
    node.add_argument(
        "--coordinator", default="127.0.0.1:50051", help="HOST:PORT of lendgate serve"
    )
    node.add_argument("--landing-url", default="https://example.invalid/landing")
    node.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the node until SIGTERM/SIGINT."""
    from servers.participant import run_node  # noqa: PLC0415

    asyncio.run(run_node(args.participant, args.listen, args.coordinator, args.landing_url))
    return 0
