"""Typed surface of the Rust extension ``lendgate._core`` (built from ``core_rs/lendgate-py``).

Private: import the curated names from :mod:`lendgate` instead.
"""

from collections.abc import Callable, Sequence
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
    def evaluate_struct(
        self,
        input_struct: bytes,
        *,
        trace: bool = False,
        host: Any | None = None,
        max_depth: int = 10,
        timeout_ms: int | None = None,
    ) -> tuple[bytes | None, str | None, str | None, bytes, list[tuple[str, str]]]:
        """Like ``evaluate`` with serialized ``google.protobuf.Struct`` input and output."""

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
    def restore(definitions: bytes, snapshot: bytes | memoryview) -> AggregateStore:
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

def leaf_hash(commitment: bytes, encrypted_opening: bytes, pedersen_commitment: bytes) -> bytes:
    """RFC 6962 leaf hash of a bid:
    ``H(0x00 || commitment || H(encrypted_opening) || pedersen_commitment)``."""

def leaf_hash_from_digest(
    commitment: bytes, opening_digest: bytes, pedersen_commitment: bytes
) -> bytes:
    """:func:`leaf_hash` from ``H(encrypted_opening)`` instead of the opening."""

def pedersen_commitment(amount_minor: int, nonce: bytes, bidder: str, auction: str) -> bytes:
    """The 32-byte Pedersen commitment (Ristretto255) to a bid; blinding derived from the
    32-byte commitment nonce, the bidder and the auction (GIL released)."""

def verify_pedersen_opening(
    commitment: bytes, amount_minor: int, nonce: bytes, bidder: str, auction: str
) -> bool:
    """Whether ``(amount_minor, nonce)`` opens the Pedersen ``commitment`` (GIL released)."""

class Ed25519Signer:
    """An Ed25519 key signing typed payloads (``type_name || 0x00 || payload``);
    deterministic, the same signatures as ``cryptography``'s."""

    def __init__(self, seed: bytes) -> None:
        """The signer of a 32-byte Ed25519 seed (the raw private key)."""

    def public_key(self) -> bytes:
        """The 32-byte public key."""

    def sign(self, type_name: str, payload: bytes) -> bytes:
        """The 64-byte signature over ``type_name || 0x00 || payload``."""

def verify_pedersen_openings(
    auction: str, openings: list[tuple[bytes, int, bytes, str]]
) -> list[bool]:
    """For each ``(commitment, amount_minor, nonce, bidder)`` of one auction, whether it
    opens the Pedersen commitment; one batched multiscalar check (GIL released)."""

def prove_winner_exceeds(
    auction: str,
    merkle_root: bytes,
    winner_leaf: int,
    winner_amount_minor: int,
    winner_nonce: bytes,
    winner_bidder: str,
    loser_leaf: int,
    loser_amount_minor: int,
    loser_nonce: bytes,
    loser_bidder: str,
) -> bytes:
    """Bulletproofs range proof that the winning amount exceeds the losing one under the
    tie rule (lower leaf wins a tie), bound to the auction and the signed root (GIL
    released). Raises :class:`CoreInvalidArgument` when the claim is false."""

def verify_winner_exceeds(
    auction: str,
    merkle_root: bytes,
    winner_leaf: int,
    winner_commitment: bytes,
    loser_leaf: int,
    loser_commitment: bytes,
    proof: bytes,
) -> bool:
    """The loser's check of a :func:`prove_winner_exceeds` proof against the two Pedersen
    commitments (GIL released); raises :class:`CoreInvalidArgument` for a commitment that
    is not a Ristretto255 point."""

def merkle_root(leaf_hashes: list[bytes]) -> bytes:
    """RFC 6962 root over leaf hashes in leaf order (``H("")`` when empty)."""

def inclusion_proof(leaf_hashes: list[bytes], index: int) -> list[bytes]:
    """The RFC 6962 audit path of leaf ``index``."""

def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, audit_path: list[bytes], root: bytes
) -> bool:
    """Whether ``audit_path`` proves the leaf at ``index`` under ``root`` of ``size`` leaves."""

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
    @staticmethod
    def normalize_many(
        entry_kind: str, values: list[str]
    ) -> tuple[list[str | None], list[tuple[int, str]]]:
        """Normalise a batch (GIL released): normal forms (``None`` where invalid) and
        ``(index, reason)`` of the invalid values."""
    def write(
        self,
        list_id: str,
        entries: list[tuple[str, int | None, str, int, str]],
        replace: bool = False,
    ) -> tuple[int, int, list[tuple[int, str]]]:
        """Merge (or replace the content), atomically: (added, replaced, rejected)."""
    def stage(
        self,
        list_id: str,
        rows: list[tuple[str, int | None, str]],
        author: str,
        now_ms: int,
        default_expire_ms: int | None = None,
        replace: bool = False,
    ) -> StagedListWrite:
        """Prepare a write of ``(value, expire_ms | None, comment)`` rows (GIL released):
        normalised, de-duplicated (the last of a value wins), the next content built.
        Nothing is visible until :meth:`commit`."""
    def stage_import(
        self,
        list_id: str,
        chunks: Sequence[bytes],
        author: str,
        now_ms: int,
        default_expire_ms: int | None = None,
        replace: bool = False,
    ) -> StagedListWrite:
        """:meth:`stage` from serialized ``ImportListEntriesRequest`` messages (decoded
        in Rust); raises :class:`CoreInvalidArgument` for a bad message."""
    def commit(self, staged: StagedListWrite) -> tuple[int, int]:
        """Publish a staged write once its change is stored: ``(added, replaced)``."""
    def load_stored(self, list_id: str, texts: list[str]) -> int:
        """Add entries in the store's text form (GIL released); how many were written."""
    @staticmethod
    def encode_entry(entry: tuple[str, int | None, str, int, str]) -> str:
        """An entry in the store's text form: ``value␟expire␟create␟author␟comment``."""
    @staticmethod
    def decode_entry(text: str) -> tuple[str, int | None, str, int, str]:
        """The entry of :meth:`encode_entry`; ``RuntimeError`` if malformed."""
    def load_lines(
        self, list_id: str, text: bytes, author: str, create_time_ms: int, replace: bool = False
    ) -> tuple[int, int, list[tuple[int, str]]]:
        """Bulk load tab-separated ``value[\\texpire_ms[\\tcomment]]`` lines (GIL released)."""
    def remove(self, list_id: str, values: list[str]) -> int:
        """Remove values; returns how many were there."""
    def lookup(
        self, list_id: str, values: list[str]
    ) -> list[tuple[str, int | None, str, int, str] | None]:
        """Stored entries (live or expired) of normalised values; ``None`` if absent."""
    def link(self, source: ListRegistry, list_id: str) -> None:
        """Share ``source``'s list ``list_id`` into this registry (same content)."""
    def contains(self, list_id: str, value: str, at_ms: int) -> bool:
        """Whether ``value`` is a live member at event time ``at_ms``."""
    def live_count(self, list_id: str, at_ms: int) -> int:
        """Number of entries live at ``at_ms``."""
    def entries(
        self, list_id: str, at_ms: int, limit: int, after: str | None = None
    ) -> list[tuple[str, int | None, str, int, str]]:
        """Live entries ordered by value, after ``after``, ``limit`` at most."""

class StagedListWrite:
    """A list write prepared by :meth:`ListRegistry.stage`, not yet visible."""

    def take_change(self) -> tuple[list[str], list[str]]:
        """Stored entries to add and to remove (sorted, store text form); taken once."""
    @property
    def rejected(self) -> list[tuple[int, str]]:
        """``(index, reason)`` of the entries invalid for the list's kind."""
    @property
    def received(self) -> int:
        """Number of entries given, valid or not, repeated or not."""

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

def key_hash(kind: str, value: str) -> int:
    """The store's signed 64-bit index value of one match key (SipHash-1-3, stable)."""

def key_rows(seq: int, keys: Sequence[tuple[str, str]]) -> list[tuple[int, int]]:
    """``(key_hash, seq)`` index rows for one event's keys, without duplicate keys."""

# Scoring (Rust ``lendgate_core::scoring``; see docs/SCORING.md).

class MatchIndex:
    """The consortium match index (Rust ``lendgate_core::scoring::matching``)."""

    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    def note_logged(self, request_key: str, event_time_us: int) -> None:
        """Record that the log holds an event with this request key (event time in µs);
        retention forgets the key with its newest event."""
    def logged_len(self) -> int:
        """Number of logged request-key hashes held."""
    def maybe_logged(self, request_key: str) -> bool:
        """``False`` when the log certainly holds no event with this key."""
    def prune(self, before_us: int, sweep_shards: int = 64) -> int:
        """Forget application events older than ``before_us`` (event time); how many.
        ``sweep_shards`` of the key lists' 64 shards let go of dropped entries now."""
    def snapshot(self) -> bytes:
        """The whole index as versioned bytes."""
    def restore(self, data: bytes | memoryview) -> None:
        """Replace the index with a snapshot's; raises ``CoreInvalidArgument`` for
        another format version or foreign bytes, and changes nothing then."""

class PreparedCheck:
    """A decoded, validated check request."""

    @property
    def request_id(self) -> str: ...
    @property
    def claimed_partner_id(self) -> str: ...
    @property
    def has_event(self) -> bool: ...
    @property
    def violations(self) -> list[tuple[str, str]]: ...

REVIEW_THRESHOLD: int
"""Fraud score (points) from which a report recommends REVIEW."""
MODEL_REVIEW_SCORE: int
"""Model risk score (0..1000) from which a report recommends REVIEW."""
MODEL_DECLINE_SCORE: int
DEFAULT_NAME_SIMILARITY: float
"""Model risk score (0..1000) from which a report recommends DECLINE."""

class Scorer:
    """One check from request bytes to report bytes (Rust ``lendgate_core::scoring``)."""

    def __init__(
        self, matches: dict[str, list[str]], name_similarity: float = DEFAULT_NAME_SIMILARITY
    ) -> None: ...
    def prepare(self, kind_name: str, request: bytes, receive_time_us: int) -> PreparedCheck: ...
    def score(
        self,
        prepared: PreparedCheck,
        *,
        partner_id: str,
        request_id: str,
        report_name: str,
        receive_time_us: int,
        incident_id: str,
        elapsed_ns: int,
        aggregates: AggregateStore,
        rules: RuleSet,
        lists: ListRegistry,
        index: MatchIndex,
        revision: str,
        model: Callable[
            [dict[str, Any], dict[str, Any], dict[str, Any]], tuple[int, str, str] | None
        ]
        | None = None,
    ) -> tuple[bytes, bool, int, str, list[tuple[str, str]]]:
        """(report, opens an incident, event time µs, event id, match keys)."""
    def replay(
        self,
        kind_name: str,
        request: bytes,
        request_key: str,
        partner_id: str,
        fallback_time_us: int,
        aggregates: AggregateStore,
        index: MatchIndex,
    ) -> int: ...
    def apply_outcome(
        self,
        application_request: bytes,
        partner_id: str,
        event_time_us: int,
        decision: str,
        fraud_status: str,
        aggregates: AggregateStore,
        index: MatchIndex,
    ) -> None: ...

def validate_event(kind_name: str, event_json: str, now_us: int) -> list[tuple[str, str]]:
    """Every problem of one event document, as ``(proto field path, description)``."""

def split_check_stream_item(raw: bytes) -> tuple[str, str, bytes]:
    """One serialized ``CheckStreamRequest`` taken apart without decoding its event:
    ``(correlation_id, kind, unary_request)``; ``kind`` is ``application``, ``payment``
    or ``""`` (no event, ``unary_request`` empty); the unary request carries the item's
    ``request_id``. Raises
    ``CoreInvalidArgument`` for bytes that are not one."""

def mask_match_value(field: str, value: str) -> str:
    """A historical value masked by the disclosure policy (phone, name, passport,
    birth_date)."""
