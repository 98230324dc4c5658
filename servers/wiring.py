"""Wiring: build the domain services and the servicers that `lendgate serve` hosts.

Each service adds one entry here, keyed by the full gRPC service name; every method
of the contract that no servicer implements answers UNIMPLEMENTED (servers.handlers).
"""

from __future__ import annotations

from lendgate.config import Config
from lendgate.store import Store
from lendgate.strategy import StrategyService
from servers.strategy import StrategyServicer


def build_servicers(config: Config, store: Store) -> dict[str, object]:
    """Create the servicers for ``config`` over the opened ``store``, keyed by service name."""
    del config, store  # the strategy repository is in memory until the store is plugged in
    return {"lendgate.v1.StrategyService": StrategyServicer(StrategyService())}
