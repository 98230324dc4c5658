"""Key normalisation (Rust: ``core_rs/lendgate-core/src/normalize.rs``)."""

from typing import Literal

from lendgate import _core
from lendgate.errors import core_errors

KeyKind = Literal["text", "phone", "alnum"]


def normalize_key(kind: KeyKind, value: str) -> str:
    """Return ``value`` normalised as a key of ``kind``.

    ``"text"`` lowercases and collapses whitespace; ``"phone"`` keeps the digits and
    rewrites the national trunk prefix 8 of an 11-digit number to the country code 7;
    ``"alnum"`` keeps letters and digits, lowercased (passports, INNs, card numbers).
    Raises :class:`~lendgate.errors.InvalidArgumentError` naming the field when the
    value cannot be a key.
    """
    with core_errors():
        return _core.normalize_key(kind, value)
