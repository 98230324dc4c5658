"""Wiring: build the domain services and the servicers that `lendgate serve` hosts.

Each service adds one entry here, keyed by the full gRPC service name; every method
of the contract that no servicer implements answers UNIMPLEMENTED (servers.handlers).
"""

from __future__ import annotations

from lendgate.auction.coordinator import AuctionConfig, Coordinator
from lendgate.config import Config
from servers.auction import AuctionServicer


def build_servicers(config: Config) -> dict[str, object]:
    """Create the servicers for ``config``, keyed by full service name."""
    auction = AuctionConfig(bidding_window_s=config.auction_bidding_window_s)
    return {"lendgate.v1.AuctionService": AuctionServicer(Coordinator(auction))}
