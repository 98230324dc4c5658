"""Decision strategies: versioned GoRules JDM graphs evaluated by the Rust core.

See ``docs/STRATEGIES.md``.
"""

from lendgate.strategy.engine import CompiledStrategy, Decision, PythonNodes
from lendgate.strategy.repository import (
    Challenger,
    InMemoryStrategyRepository,
    Publication,
    PublishSettings,
    StrategyRecord,
    StrategyRepository,
    StrategyVersionRecord,
    TestCase,
)
from lendgate.strategy.service import Evaluation, StrategyService, TestResult

__all__ = [
    "Challenger",
    "CompiledStrategy",
    "Decision",
    "Evaluation",
    "InMemoryStrategyRepository",
    "Publication",
    "PublishSettings",
    "PythonNodes",
    "StrategyRecord",
    "StrategyRepository",
    "StrategyService",
    "StrategyVersionRecord",
    "TestCase",
    "TestResult",
]
