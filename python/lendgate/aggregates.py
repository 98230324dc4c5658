"""Keyed, time-windowed aggregates (Rust: ``core_rs/lendgate-core/src/aggregates``).

The seed's "dynamic calculation objects": per-key state updated on every event by the
event's own time, and the parameters computed for the event in the same call. Python
only routes bytes: definitions and events go to Rust as JSON, and the store works with
the GIL released. The definition format is described in ``docs/AGGREGATES.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

import yaml

from lendgate import _core
from lendgate.errors import InvalidArgumentError, core_errors

ParamValue = bool | int | float | str | None
"""The value of one calculated parameter (``None`` when it does not apply)."""

Definitions = bytes | str | Mapping[str, Any]
"""Definitions as a JSON document (bytes or text) or an already parsed mapping."""


class ExpireProgress(NamedTuple):
    """What one :meth:`AggregateStore.expire_step` did."""

    shards: int
    keys_dropped: int
    pass_complete: bool


def _definitions_json(definitions: Definitions) -> bytes:
    if isinstance(definitions, bytes):
        return definitions
    if isinstance(definitions, str):
        return definitions.encode()
    try:
        return json.dumps(definitions).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(str(exc), field="definitions") from exc


def _event_bytes(event: bytes | str) -> bytes:
    return event.encode() if isinstance(event, str) else event


def compare_fl(a: str, b: str) -> float:
    """Jaro-Winkler mismatch percentage of two strings, ``(1 - jw) * 100`` (seed ``CompareFL``)."""
    return _core.compare_fl(a, b)


class AggregateStore:
    """An in-memory store of dynamic calculation objects, safe to share across threads."""

    def __init__(self, definitions: Definitions) -> None:
        """Compile ``definitions``; raise :class:`InvalidArgumentError` naming the bad field."""
        with core_errors():
            self._core = _core.AggregateStore(_definitions_json(definitions))

    @classmethod
    def from_yaml(cls, text: str) -> AggregateStore:
        """Build a store from definitions written in YAML."""
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidArgumentError(f"not YAML: {exc}", field="definitions") from exc
        if not isinstance(doc, Mapping):
            raise InvalidArgumentError("definitions must be a mapping", field="definitions")
        return cls(doc)

    @classmethod
    def restore(cls, definitions: Definitions, snapshot: bytes | memoryview) -> AggregateStore:
        """Rebuild a store from :meth:`snapshot` bytes (or a read-only view of them) taken
        with the same definitions.

        A snapshot of another format version or of other object definitions is refused
        with :class:`InvalidArgumentError` (field ``snapshot``).
        """
        store = cls.__new__(cls)
        with core_errors():
            store._core = _core.AggregateStore.restore(_definitions_json(definitions), snapshot)
        return store

    @property
    def param_names(self) -> list[str]:
        """Names of the calculated parameters, in output order."""
        return self._core.param_names()

    @property
    def watermark(self) -> int | None:
        """The newest event time applied so far (epoch milliseconds), or ``None``."""
        return self._core.watermark()

    def apply(self, event: bytes | str) -> dict[str, ParamValue]:
        """Apply one JSON event to every object and return every parameter's value for it.

        The event is applied entirely or not at all; a bad event raises
        :class:`InvalidArgumentError` naming the attribute.
        """
        with core_errors():
            return self._core.apply(_event_bytes(event))

    def apply_proto(self, message_type: str, data: bytes) -> dict[str, ParamValue]:
        """Apply one serialized ``lendgate.v1`` message (e.g. ``lendgate.v1.ApplicationEvent``).

        The bytes are decoded in Rust into the event document (``document.rs``
        convention: proto field names, enums by name, timestamps as RFC 3339), with the
        GIL released; attribute paths in the definitions use the proto field names.
        """
        with core_errors():
            return self._core.apply_proto(message_type, data)

    def evaluate_proto(self, message_type: str, data: bytes) -> dict[str, ParamValue]:
        """Return what :meth:`apply_proto` would return, without changing the state."""
        with core_errors():
            return self._core.evaluate_proto(message_type, data)

    def evaluate(self, event: bytes | str) -> dict[str, ParamValue]:
        """Return what :meth:`apply` would return for ``event``, without changing the state."""
        with core_errors():
            return self._core.evaluate(_event_bytes(event))

    def expire_step(self, max_shards: int = 64) -> ExpireProgress:
        """Drop expired data from up to ``max_shards`` shards (call repeatedly, e.g. on a timer)."""
        return ExpireProgress(*self._core.expire_step(max_shards))

    def expire_all(self) -> int:
        """Run one whole expiry pass; return the number of keys dropped."""
        dropped = 0
        while True:
            step = self.expire_step()
            dropped += step.keys_dropped
            if step.pass_complete:
                return dropped

    def snapshot(self) -> bytes:
        """Serialise the whole state (versioned binary); consistent when no apply runs."""
        with core_errors():
            return self._core.snapshot()

    def key_counts(self) -> dict[str, int]:
        """Number of keys held per object (built-in parameters' objects are ``$name``)."""
        return dict(self._core.key_counts())
