"""Wiring: build the domain services and the servicers that `lendgate serve` hosts.

Each service adds one entry here, keyed by the full gRPC service name; every method
of the contract that no servicer implements answers UNIMPLEMENTED (servers.handlers).
"""

from __future__ import annotations

from pathlib import Path

from lendgate.auction.coordinator import AuctionConfig, Coordinator
from lendgate.config import Config
from lendgate.models.admin import ModelAdmin
from lendgate.models.registry import FileSystemRegistry
from lendgate.models.serving import ModelService
from lendgate.scoring import ScoringService
from lendgate.store import Store
from lendgate.strategy import StrategyService
from servers.auction import AuctionServicer
from servers.models import ModelRegistryServicer
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
    scoring = ScoringService(store)
    models = ModelService(FileSystemRegistry(Path(config.data_dir) / "models"))
    models.load_all()
    models.watch()  # picks up promotions made by other processes (lendgate retrain, models)
    return {
        "lendgate.v1.ScoringService": ScoringServicer(scoring),
        # Shares the ScoringService: rule and list edits apply to the next check.
        "lendgate.v1.RuleAdminService": RuleAdminServicer(scoring, config.rule_admin_partners),
        "lendgate.v1.StrategyService": StrategyServicer(StrategyService()),
        "lendgate.v1.AuctionService": AuctionServicer(Coordinator(auction)),
        # Model changes are the consortium operator's, like rule changes.
        "lendgate.v1.ModelRegistryService": ModelRegistryServicer(
            ModelAdmin(models), config.rule_admin_partners
        ),
    }
