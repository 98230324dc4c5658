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
    """Normalise a key value of the given kind (``"text"`` or ``"phone"``).

    Raises :class:`CoreInvalidArgument` for an unknown kind or an impossible phone.
    """

class ListRegistry:
    """One partner's lists (Rust ``lendgate_core::lists::ListRegistry``).

    Entries cross as ``(value, expire_ms | None, comment, create_ms, author)``.
    """

    def __init__(self) -> None: ...
    def create(self, list_id: str, entry_kind: str, list_type: str) -> None:
        """Create an empty list; raises :class:`CoreInvalidArgument` if invalid or taken."""
    def delete(self, list_id: str) -> None:
        """Delete a list; raises :class:`CoreNotFound`."""
    def ids(self) -> list[str]:
        """The ids of all lists, sorted."""
    @staticmethod
    def normalize(entry_kind: str, value: str) -> str:
        """Normalise a value of the kind; raises :class:`CoreInvalidArgument`."""
    def write(
        self,
        list_id: str,
        entries: list[tuple[str, int | None, str, int, str]],
        replace: bool = False,
    ) -> tuple[int, int, list[tuple[int, str]]]:
        """Merge (or replace the content), atomically: (added, replaced, rejected)."""
    def load_lines(
        self, list_id: str, text: bytes, author: str, create_time_ms: int, replace: bool = False
    ) -> tuple[int, int, list[tuple[int, str]]]:
        """Bulk load tab-separated ``value[\\texpire_ms[\\tcomment]]`` lines (GIL released)."""
    def remove(self, list_id: str, values: list[str]) -> int:
        """Remove values; returns how many were there."""
    def contains(self, list_id: str, value: str, at_ms: int) -> bool:
        """Whether ``value`` is a live member at event time ``at_ms``."""
    def live_count(self, list_id: str, at_ms: int) -> int:
        """Number of entries live at ``at_ms``."""
    def entries(
        self, list_id: str, at_ms: int, limit: int, after: str | None = None
    ) -> list[tuple[str, int | None, str, int, str]]:
        """Live entries ordered by value, after ``after``, ``limit`` at most."""

class RuleSet:
    """Compiled rules (Rust ``lendgate_core::rules::RuleSet``); JSON in, JSON out."""

    @staticmethod
    def compile(rules_json: str, zone_threshold: int) -> RuleSet:
        """Compile a JSON array of rules; raises :class:`CoreInvalidArgument`."""
    @staticmethod
    def validate(rule_json: str) -> None:
        """Check that one rule compiles; raises :class:`CoreInvalidArgument`."""
    def __len__(self) -> int: ...
    def evaluate(
        self, document: bytes, event_kind: str, event_time_ms: int, lists: ListRegistry
    ) -> bytes:
        """Evaluate all rules on one JSON document (GIL released); JSON result."""
    def evaluate_batch(
        self,
        documents: list[bytes],
        event_kind: str,
        event_times_ms: list[int],
        lists: ListRegistry,
    ) -> list[bytes]:
        """Evaluate on many documents in one call; one JSON result each."""
