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
    """Normalise a key value of the given kind (``"text"``, ``"phone"`` or ``"alnum"``).

    Raises :class:`CoreInvalidArgument` for an unknown kind or an impossible phone.
    """

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
    def expire_step(self, max_shards: int) -> tuple[int, int, bool]:
        """Prune up to ``max_shards`` shards: ``(shards, keys_dropped, pass_complete)``."""
    def snapshot(self) -> bytes:
        """The whole state as versioned bytes."""
    def key_counts(self) -> list[tuple[str, int]]:
        """Number of keys per object name."""
    def watermark(self) -> int | None:
        """The newest event time applied (epoch ms), or None."""

# Auction verification (Rust ``lendgate_core::auction``; see docs/AUCTION_PROTOCOL.md).

def verify_signature(public_key: bytes, type_name: str, payload: bytes, signature: bytes) -> bool:
    """Strict Ed25519 check over ``type_name || 0x00 || payload`` (GIL released).

    Raises :class:`CoreInvalidArgument` for a malformed or small-order key or a signature
    that is not 64 bytes; returns ``False`` for a well-formed wrong signature.
    """

def bid_commitment(
    amount_minor: int, currency: str, nonce: bytes, bidder: str, auction: str
) -> bytes:
    """The 32-byte hash commitment to a bid; amount in 1..2^62, nonce 32 bytes."""

def verify_bid_opening(
    commitment: bytes, amount_minor: int, currency: str, nonce: bytes, bidder: str, auction: str
) -> bool:
    """Whether the opening opens ``commitment``."""

def leaf_hash(commitment: bytes, encrypted_opening: bytes) -> bytes:
    """RFC 6962 leaf hash of a bid: ``H(0x00 || commitment || H(encrypted_opening))``."""

def merkle_root(leaf_hashes: list[bytes]) -> bytes:
    """RFC 6962 root over leaf hashes in leaf order (``H("")`` when empty)."""

def inclusion_proof(leaf_hashes: list[bytes], index: int) -> list[bytes]:
    """The RFC 6962 audit path of leaf ``index``."""

def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, audit_path: list[bytes], root: bytes
) -> bool:
    """Whether ``audit_path`` proves the leaf at ``index`` under ``root`` of ``size`` leaves."""
