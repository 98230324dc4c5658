"""Wiring: build the domain services and the servicers that `lendgate serve` hosts.

Each service adds one entry here, keyed by the full gRPC service name; every method
of the contract that no servicer implements answers UNIMPLEMENTED (servers.handlers).
"""

from __future__ import annotations

from lendgate.auction.coordinator import AuctionConfig, Coordinator
from lendgate.config import Config
from lendgate.scoring import ScoringService, StateSettings
from lendgate.store import Store
from lendgate.strategy import StrategyService
from servers.auction import AuctionServicer
from servers.rule_admin import RuleAdminServicer
from servers.scoring import ScoringServicer
from servers.strategy import StrategyServicer


def build_servicers(config: Config, store: Store) -> dict[str, object]:
    """Create the servicers for ``config`` over the opened ``store``, keyed by service name.

    RuleAdminService edits the scoring service's rule book and lists (in memory).
    Scoring keeps its events, reports, outcomes and incidents in ``store`` (its
    aggregates and match index are in memory); strategies and the auction keep their
    state in memory until their repositories are moved onto ``store``.
    """
    auction = AuctionConfig(bidding_window_s=config.auction_bidding_window_s)
    state = StateSettings.for_store(
        store,
        snapshot_every_events=config.snapshot_every_events,
        snapshot_every_seconds=config.snapshot_every_s,
    )
    scoring = ScoringService(store, state=state)
    return {
        "lendgate.v1.ScoringService": ScoringServicer(scoring),
        # Shares the ScoringService: rule and list edits apply to the next check.
        "lendgate.v1.RuleAdminService": RuleAdminServicer(scoring, config.rule_admin_partners),
        "lendgate.v1.StrategyService": StrategyServicer(StrategyService()),
        "lendgate.v1.AuctionService": AuctionServicer(Coordinator(auction)),
    }


async def recover_state(servicers: dict[str, object]) -> None:
    """Rebuild the in-memory state from the store (latest snapshot + the log's tail)
    before the server takes its first call."""
    scoring = servicers.get("lendgate.v1.ScoringService")
    if isinstance(scoring, ScoringServicer):
        await scoring.service.recover()


async def close_state(servicers: dict[str, object]) -> None:
    """Stop background state work and store a last snapshot (after the server stopped)."""
    scoring = servicers.get("lendgate.v1.ScoringService")
    if isinstance(scoring, ScoringServicer):
        await scoring.service.aclose()
