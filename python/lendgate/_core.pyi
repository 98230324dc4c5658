"""Typed surface of the Rust extension ``lendgate._core`` (built from ``core_rs/lendgate-py``).

Private: import the curated names from :mod:`lendgate` instead.
"""

from typing import Any

__version__: str

class CoreInvalidArgument(Exception):
    """Invalid input rejected by the Rust core; ``args`` are ``(field, reason)``."""

class CoreNotFound(Exception):
    """A named object was not found by the Rust core; ``args`` are ``(kind, name)``."""

class CoreEvaluationError(Exception):
    """An expression failed at run time; ``args`` are ``(field, reason)``."""

class CompiledExpression:
    """A compiled ZEN expression (Rust ``lendgate_core::expr::Expression``)."""

    @staticmethod
    def compile(source: str) -> CompiledExpression:
        """Compile; raises :class:`CoreInvalidArgument` with the position on bad syntax."""
    @property
    def source(self) -> str:
        """The source text."""
    def evaluate(self, context: dict[str, Any] | None = None) -> Any:
        """Evaluate (GIL released); raises :class:`CoreEvaluationError` on failure."""

class CompiledUnaryExpression:
    """A compiled unary test over ``$`` (Rust ``lendgate_core::expr::UnaryExpression``)."""

    @staticmethod
    def compile(source: str) -> CompiledUnaryExpression:
        """Compile; raises :class:`CoreInvalidArgument` with the position on bad syntax."""
    @property
    def source(self) -> str:
        """The source text."""
    def evaluate(self, context: dict[str, Any]) -> bool:
        """Test ``context["$"]`` (GIL released); raises :class:`CoreEvaluationError`."""

def normalize_key(kind: str, value: str) -> str:
    """Normalise a key value of the given kind (``"text"``, ``"phone"`` or ``"alnum"``).

    Raises :class:`CoreInvalidArgument` for an unknown kind or an impossible phone.
    """

def compare_fl(a: str, b: str) -> float:
    """Jaro-Winkler mismatch percentage ``(1 - jw) * 100`` (the seed's CompareFL)."""

def decode_document(message_type: str, data: bytes) -> str:
    """Decode a serialized ``lendgate.v1`` message; return its expression document as JSON.

    Raises :class:`CoreInvalidArgument` for bytes that are not such a message and
    :class:`CoreNotFound` for an unknown message type.
    """

class AggregateStore:
    """Keyed, time-windowed aggregates over JSON events (GIL released while working)."""

    def __init__(self, definitions: bytes) -> None:
        """Compile JSON definitions; raises :class:`CoreInvalidArgument` naming the field."""
    @staticmethod
    def restore(definitions: bytes, snapshot: bytes) -> AggregateStore:
        """Rebuild a store from a snapshot taken with definitions of the same layout."""
    def param_names(self) -> list[str]:
        """Parameter names, in output order."""
    def apply(self, event: bytes) -> dict[str, bool | int | float | str | None]:
        """Apply one JSON event and return every parameter's value for it."""
    def evaluate(self, event: bytes) -> dict[str, bool | int | float | str | None]:
        """What ``apply`` would return, without changing the state."""
    def apply_proto(
        self, message_type: str, data: bytes
    ) -> dict[str, bool | int | float | str | None]:
        """Apply one serialized ``lendgate.v1`` message (decoded in Rust)."""
    def evaluate_proto(
        self, message_type: str, data: bytes
    ) -> dict[str, bool | int | float | str | None]:
        """What ``apply_proto`` would return, without changing the state."""
    def expire_step(self, max_shards: int) -> tuple[int, int, bool]:
        """Prune up to ``max_shards`` shards: ``(shards, keys_dropped, pass_complete)``."""
    def snapshot(self) -> bytes:
        """The whole state as versioned bytes."""
    def key_counts(self) -> list[tuple[str, int]]:
        """Number of keys per object name."""
    def watermark(self) -> int | None:
        """The newest event time applied (epoch ms), or None."""
