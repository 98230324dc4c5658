"""Match keys of an event: how they are stored in its row and indexed.

An event's keys (``("phone", "79991234567")``...) are kept in its row as one string, and
indexed in ``event_keys`` by a 64-bit hash of kind and value. An integer index costs about
half as much per insert as a text one (the hot path of ingest); a look-up filters the rows it
finds by the exact keys, so a hash collision can never return a wrong event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from lendgate.errors import InvalidArgumentError

_PAIR = "\x1f"  # between a key's kind and value
_KEY = "\x1e"  # between keys


def key_hash(kind: str, value: str) -> int:
    """The signed 64-bit index value of one key (stable across processes and machines)."""
    digest = hashlib.blake2b(f"{kind}{_PAIR}{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def encode(keys: Iterable[tuple[str, str]]) -> str:
    """The keys, without duplicates, as the row's ``match_keys`` string."""
    return _KEY.join(f"{kind}{_PAIR}{value}" for kind, value in dict.fromkeys(keys))


def decode(text: str) -> tuple[tuple[str, str], ...]:
    """The keys stored by :func:`encode`, in order."""
    if not text:
        return ()
    pairs = (item.split(_PAIR, 1) for item in text.split(_KEY))
    return tuple((kind, value) for kind, value in pairs)


def check(keys: Iterable[tuple[str, str]]) -> None:
    """Refuse keys that cannot be stored (empty kinds, separator characters)."""
    for i, (kind, value) in enumerate(keys):
        if not kind or _PAIR in kind or _KEY in kind or _PAIR in value or _KEY in value:
            raise InvalidArgumentError(
                "a key needs a kind and no control separators", field=f"keys[{i}]"
            )
