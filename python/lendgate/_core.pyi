"""Typed surface of the Rust extension ``lendgate._core`` (built from ``core_rs/lendgate-py``).

Private: import the curated names from :mod:`lendgate` instead.
"""

__version__: str

class CoreInvalidArgument(Exception):  # noqa: N818 (mirrors the Rust name)
    """Invalid input rejected by the Rust core; ``args`` are ``(field, reason)``."""

class CoreNotFound(Exception):  # noqa: N818 (mirrors the Rust name)
    """A named object was not found by the Rust core; ``args`` are ``(kind, name)``."""

def normalize_key(kind: str, value: str) -> str:
    """Normalise a key value of the given kind (``"text"``, ``"phone"`` or ``"alnum"``).

    Raises :class:`CoreInvalidArgument` for an unknown kind or an impossible phone.
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
