"""The ``lendgate`` command: ``lendgate serve`` runs the platform.

Errors a user can fix (a bad config file, a taken port) end with one line on stderr
naming the problem and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from lendgate.auction import cli as auction_cli
from lendgate.config import ConfigError, load_config
from lendgate.datagen import cli as datagen_cli
from lendgate.logs import configure_logging
from lendgate.models import cli as models_cli
from lendgate.scoring import cli as scoring_cli

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lendgate`` console script."""
    parser = argparse.ArgumentParser(prog="lendgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the platform's gRPC server")
    serve.add_argument("--config", help="TOML config file (default: $LENDGATE_CONFIG)")
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:50051)")
    serve.add_argument("--data-dir", help="directory of the embedded storage (default var)")
    serve.add_argument("--database-url", help="sqlite:///PATH or postgresql://...")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    auction_cli.register(commands)
    datagen_cli.add_parser(commands)
    models_cli.add_parser(commands)
    scoring_cli.add_parser(commands)
    serve.set_defaults(handler=_serve)
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(
            args.config,
            overrides={
                "listen": args.listen,
                "data_dir": args.data_dir,
                "database_url": args.database_url,
                "log_level": args.log_level,
            },
        )
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    except (ConfigError, OSError) as exc:
        print(f"lendgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(config.log_level)

    # Imported here so `lendgate --help` stays fast and works without the servers.
    from servers.app import ServerStartError, serve  # noqa: PLC0415

    try:
        asyncio.run(serve(config))
    except (ServerStartError, ConfigError) as exc:
        print(f"lendgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
