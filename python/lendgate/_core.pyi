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

class CompiledStrategy:
    """A compiled JDM decision graph (Rust ``lendgate_core::strategy::Graph``)."""
    @staticmethod
    def compile(graph_json: str) -> CompiledStrategy:
        """Compile; raises :class:`CoreInvalidArgument` naming the node or edge at fault."""
    def sub_decisions(self) -> list[str]:
        """Keys of the sub-strategies its decision nodes call."""
    def custom_kinds(self) -> list[str]:
        """Kinds of custom nodes (other than ``abTest``) the host must provide."""
    def warnings(self) -> list[str]:
        """Table cells and switch conditions that never match because they do not compile."""
    def evaluate(
        self,
        input_json: bytes,
        *,
        trace: bool = False,
        host: Any | None = None,
        max_depth: int = 10,
        timeout_ms: int | None = None,
    ) -> tuple[bytes | None, str | None, str | None, bytes, list[tuple[str, str]]]:
        """Evaluate (GIL released): ``(output, failed_node, error, trace, ab_paths)``."""

def normalize_key(kind: str, value: str) -> str:
    """Normalise a key value of the given kind (``"text"`` or ``"phone"``).

    Raises :class:`CoreInvalidArgument` for an unknown kind or an impossible phone.
    """
