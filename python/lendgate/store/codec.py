"""The stored first answer of a write: a record as JSON bytes (bytes fields in base64)."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any, TypeVar

from lendgate.store.interface import Incident, IncidentComment, LedgerTransaction, Posting

T = TypeVar("T")

# Fields holding tuples of records, by record type: rebuilt into those records on load.
_NESTED: dict[type, dict[str, type]] = {
    Incident: {"comments": IncidentComment},
    LedgerTransaction: {"postings": Posting},
}


def dumps(record: object) -> bytes:
    """Serialize a record dataclass."""
    return json.dumps(_encode(dataclasses.asdict(record)), separators=(",", ":")).encode()  # type: ignore[call-overload]


def loads(data: bytes, cls: type[T]) -> T:
    """Rebuild a record of ``cls`` from :func:`dumps` bytes."""
    return _build(cls, _decode(json.loads(data)))


def _build(cls: type[T], values: dict[str, Any]) -> T:
    nested = _NESTED.get(cls, {})
    for name, sub in nested.items():
        values[name] = tuple(_build(sub, item) for item in values[name])
    return cls(**values)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
