"""lendgate: a real-time decision platform for lenders.

Three gRPC services — scoring (fraud), strategy (decisions) and auction (refused
leads) — over a Rust core. This module re-exports the curated public API; the
compiled extension ``lendgate._core`` is private.
"""

from lendgate._core import __version__ as core_version
from lendgate._forksafe import FORK_SAFE
from lendgate.aggregates import AggregateStore
from lendgate.errors import (
    AlreadyExistsError,
    ExpressionEvaluationError,
    FailedPreconditionError,
    InvalidArgumentError,
    LendgateError,
    NotFoundError,
    UnimplementedError,
)
from lendgate.expr import CompiledExpression, CompiledUnaryExpression
from lendgate.keys import normalize_key

__all__ = [
    "FORK_SAFE",
    "AggregateStore",
    "AlreadyExistsError",
    "CompiledExpression",
    "CompiledUnaryExpression",
    "ExpressionEvaluationError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "LendgateError",
    "NotFoundError",
    "UnimplementedError",
    "core_version",
    "normalize_key",
]
