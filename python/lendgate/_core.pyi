"""Typed surface of the Rust extension ``lendgate._core`` (built from ``core_rs/lendgate-py``).

Private: import the curated names from :mod:`lendgate` instead.
"""

__version__: str

class CoreInvalidArgument(Exception):
    """Invalid input rejected by the Rust core; ``args`` are ``(field, reason)``."""

class CoreNotFound(Exception):
    """A named object was not found by the Rust core; ``args`` are ``(kind, name)``."""

def normalize_key(kind: str, value: str) -> str:
    """Normalise a key value of the given kind (``"text"`` or ``"phone"``).

    Raises :class:`CoreInvalidArgument` for an unknown kind or an impossible phone.
    """
