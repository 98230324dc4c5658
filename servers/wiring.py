"""Wiring: build the domain services and the servicers that `lendgate serve` hosts.

Each service adds one entry here, keyed by the full gRPC service name; every method
of the contract that no servicer implements answers UNIMPLEMENTED (servers.handlers).
"""

from __future__ import annotations

from pathlib import Path

from lendgate.auction.coordinator import AuctionConfig, Coordinator, auction_operators
from lendgate.auction.keystore import KeyFileError, key_path
from lendgate.config import Config, ConfigError
from lendgate.models.admin import ModelAdmin
from lendgate.models.serving import CheckModel, ModelService
from lendgate.models.store_registry import registry_for
from lendgate.scoring import ScoringService, StateSettings
from lendgate.store import Store
from lendgate.strategy import StrategyService
from lendgate.strategy.decisions import DecisionLog
from lendgate.strategy.engine import NodeServices
from lendgate.strategy.nodes import LookupReader, PostgresLookup, RegistryScorer, SqliteLookup
from lendgate.strategy.repository import StoreStrategyRepository
from servers.auction import AuctionServicer
from servers.models import ModelRegistryServicer
from servers.rule_admin import RuleAdminServicer
from servers.scoring import ScoringServicer
from servers.strategy import StrategyServicer


def build_servicers(config: Config, store: Store) -> dict[str, object]:
    """Create the servicers for ``config`` over the opened ``store``, keyed by service name.

    RuleAdminService edits the scoring service's rules, lists and settings (stored).
    Scoring keeps its events, reports, outcomes and incidents in ``store`` (its
    aggregates and match index are in memory, restored from snapshots); strategies and
    their decisions are in ``store``; the auction keeps its deals, ledger and settlements
    in ``store`` (auctions in flight in memory). A servicer with an async ``start()`` is
    started (e.g. loads its state) before the server accepts calls.
    """
    state = StateSettings.for_store(
        store,
        snapshot_every_events=config.snapshot_every_events,
        snapshot_every_seconds=config.snapshot_every_s,
    )
    # Model versions and serving states live in the store (migration 0007).
    models = ModelService(registry_for(store, Path(config.data_dir)))
    models.load_all()
    models.watch()  # picks up promotions made by other processes (lendgate retrain, models)
    # Application checks carry the champion's score (none while no version is promoted).
    scoring = ScoringService(store, state=state, model=CheckModel(models))
    return {
        "lendgate.v1.ScoringService": ScoringServicer(scoring),
        # Shares the ScoringService: rule and list edits apply to the next check.
        "lendgate.v1.RuleAdminService": RuleAdminServicer(scoring, config.rule_admin_partners),
        # Strategies live in the store (loaded by the servicer's start()); every
        # decision is logged there too.
        "lendgate.v1.StrategyService": StrategyServicer(
            StrategyService(
                StoreStrategyRepository(store),
                node_services=_node_services(config, scoring, models),
            ),
            DecisionLog(store),
        ),
        # Participants, auctions, deals and the ledger in the store; the keys in a 0600
        # file under data_dir (lendgate.auction.keystore).
        "lendgate.v1.AuctionService": AuctionServicer(_coordinator(config, store)),
        # Model changes are the consortium operator's, like rule changes.
        "lendgate.v1.ModelRegistryService": ModelRegistryServicer(
            ModelAdmin(models), config.rule_admin_partners
        ),
    }


def _coordinator(config: Config, store: Store) -> Coordinator:
    """The auction coordinator; ConfigError for bad operators or an unusable key file."""
    try:
        operators = auction_operators(config.auction_operators)
        auction = AuctionConfig(
            bidding_window_s=config.auction_bidding_window_s,
            operators=operators,
            auto_activate=not operators,
        )
        return Coordinator(auction, store=store, key_file=key_path(config.data_dir))
    except (ValueError, KeyFileError) as exc:
        raise ConfigError(str(exc)) from None


def _node_services(config: Config, scoring: ScoringService, models: ModelService) -> NodeServices:
    """What strategy custom nodes read: the served models (the registry's champions),
    the store's database (lookups) and the in-process scoring service's aggregates."""
    url = config.effective_database_url
    lookup: LookupReader = (
        SqliteLookup(url.removeprefix("sqlite:///"))
        if url.startswith("sqlite:///")
        else PostgresLookup(url)
    )
    return NodeServices(
        models=RegistryScorer(models),
        lookup=lookup,
        aggregates=lambda: scoring.aggregates.evaluate,
    )


async def recover_state(servicers: dict[str, object]) -> None:
    """Rebuild the in-memory state from the store before the server takes its first
    call: scoring's latest snapshot + the log's tail, then every servicer with an async
    ``start()`` (strategies load their repository)."""
    scoring = servicers.get("lendgate.v1.ScoringService")
    if isinstance(scoring, ScoringServicer):
        await scoring.service.recover()
    for servicer in servicers.values():
        start = getattr(servicer, "start", None)
        if start is not None:
            await start()


async def close_state(servicers: dict[str, object]) -> None:
    """Stop background state work and store a last snapshot (after the server stopped)."""
    scoring = servicers.get("lendgate.v1.ScoringService")
    if isinstance(scoring, ScoringServicer):
        await scoring.service.aclose()
