"""Compiled strategies and the custom nodes the engine calls back into Python.

The graph itself is evaluated by the Rust core (``core_rs/lendgate-core/src/strategy/``)
with the GIL released; Python is entered only for sub-strategies (``load``) and for
custom nodes other than ``abTest`` (which is built into the core).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from google.protobuf import json_format, struct_pb2

from lendgate import _core
from lendgate.errors import core_errors
from lendgate.strategy.nodes import (
    DEFAULT_NODE_TIMEOUT_MS,
    AggregateReader,
    LookupReader,
    ModelScorer,
    NodeRunner,
    run_aggregate,
    run_lookup,
    run_model,
    with_retries,
)

PythonNode = Callable[[Mapping[str, Any], Any], Any]
"""A ``python`` node: ``(config, input) -> output`` (JSON-like values)."""


OutputFormat = Literal["json", "struct"]


@dataclass(frozen=True)
class Decision:
    """The result of one evaluation: an output, or the node that failed and why.

    The output stays the bytes the core wrote (``raw``: JSON, or a serialized
    ``google.protobuf.Struct``) until :attr:`output` is first read, so a caller that
    only forwards it (the gRPC servicer) never builds Python objects for it.
    """

    raw: bytes | None
    raw_format: OutputFormat = "json"
    failed_node: str | None = None
    error: str | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    ab_paths: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the evaluation produced an output."""
        return self.error is None

    @cached_property
    def output(self) -> Any:
        """The output as JSON-like Python values (None if the evaluation failed)."""
        if self.raw is None:
            return None
        if self.raw_format == "json":
            return json.loads(self.raw)
        return json_format.MessageToDict(struct_pb2.Struct.FromString(self.raw))


class CompiledStrategy:
    """A validated, compiled JDM graph; immutable and safe to share between threads."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _core.CompiledStrategy) -> None:
        self._inner = inner

    @classmethod
    def compile(cls, graph_json: str) -> CompiledStrategy:
        """Compile ``graph_json``; raises ``InvalidArgumentError`` naming the node or edge."""
        with core_errors():
            return cls(_core.CompiledStrategy.compile(graph_json))

    @property
    def core(self) -> _core.CompiledStrategy:
        """The Rust object (handed to the core when this graph is a sub-strategy)."""
        return self._inner

    def sub_decisions(self) -> list[str]:
        """Keys (strategy names) its decision nodes call."""
        return self._inner.sub_decisions()

    def custom_kinds(self) -> list[str]:
        """Kinds of its custom nodes other than ``abTest``."""
        return self._inner.custom_kinds()

    def warnings(self) -> list[str]:
        """Cells and conditions that never match because they do not compile (as in ZEN)."""
        return self._inner.warnings()

    def evaluate(
        self,
        data: Any,
        *,
        trace: bool = False,
        host: Host | None = None,
        timeout_ms: int | None = None,
    ) -> Decision:
        """Evaluate on ``data`` (JSON-like); a failing node gives a ``Decision`` with an error."""
        return self.evaluate_json(
            json.dumps(data).encode(), trace=trace, host=host, timeout_ms=timeout_ms
        )

    def evaluate_json(
        self,
        input_json: bytes,
        *,
        trace: bool = False,
        host: Host | None = None,
        timeout_ms: int | None = None,
    ) -> Decision:
        """Evaluate on JSON bytes; the decision's ``raw`` output is JSON bytes."""
        out, node, error, trace_json, ab = self._inner.evaluate(
            input_json, trace=trace, host=host, timeout_ms=timeout_ms
        )
        return Decision(out, "json", node, error, json.loads(trace_json) if trace else [], ab)

    def evaluate_struct(
        self,
        input_struct: bytes,
        *,
        trace: bool = False,
        host: Host | None = None,
        timeout_ms: int | None = None,
    ) -> Decision:
        """Evaluate on a serialized ``google.protobuf.Struct``; ``raw`` is one too.

        The gRPC path: the request's input crosses as the bytes it arrived in and the
        output goes back as bytes merged into the response. A non-object output is
        wrapped as ``{"value": ...}``.
        """
        out, node, error, trace_json, ab = self._inner.evaluate_struct(
            input_struct, trace=trace, host=host, timeout_ms=timeout_ms
        )
        return Decision(out, "struct", node, error, json.loads(trace_json) if trace else [], ab)


class PythonNodes:
    """The registered ``python`` node functions: code deployed with the service, never
    uploaded. A graph names one with ``{"kind": "python", "config": {"function": NAME}}``."""

    def __init__(self) -> None:
        self._functions: dict[str, PythonNode] = {}

    def register(self, name: str, function: PythonNode) -> None:
        """Register ``function`` under ``name`` (replacing any previous one)."""
        self._functions[name] = function

    def get(self, name: str) -> PythonNode | None:
        """The function registered as ``name``, if any."""
        return self._functions.get(name)


@dataclass
class NodeServices:
    """What the ``model``, ``lookup`` and ``aggregate`` nodes read from; None = not
    available on this server (the node then fails with a clear error)."""

    models: ModelScorer | None = None
    lookup: LookupReader | None = None
    aggregates: Callable[[], AggregateReader | None] | None = None


class Host:
    """Serves the core's callbacks: sub-strategies and custom nodes.

    Custom nodes run on ``runner``'s worker threads, each abandoned at its deadline
    (see :class:`~lendgate.strategy.nodes.NodeRunner`).
    """

    def __init__(
        self,
        load: Callable[[str], CompiledStrategy],
        python: PythonNodes,
        services: NodeServices | None = None,
        runner: NodeRunner | None = None,
    ) -> None:
        self._load = load
        self._python = python
        self.services = services or NodeServices()
        self.runner = runner or NodeRunner()

    def load(self, key: str) -> _core.CompiledStrategy:
        """The compiled sub-strategy ``key`` (called by the core, with the GIL)."""
        return self._load(key).core

    def custom(
        self, kind: str, config_json: bytes, input_json: bytes, timeout_ms: int | None = None
    ) -> bytes:
        """Run custom node ``kind`` within ``timeout_ms`` (what is left of the node's
        ``timeoutMs`` or of the evaluation's deadline; None: the default limit).

        Exceptions, and ``timeout after N ms``, become the node's error in the trace.
        """
        config = json.loads(config_json) or {}
        data = json.loads(input_json)
        limit = DEFAULT_NODE_TIMEOUT_MS if timeout_ms is None else timeout_ms
        out = self.runner.run(lambda deadline: self._node(kind, config, data, deadline), limit)
        # A python node must return JSON-like values; database values (dates,
        # decimals) of the other kinds are written as strings.
        return json.dumps(out, default=None if kind == "python" else str).encode()

    def _node(self, kind: str, config: dict[str, Any], data: Any, deadline: float) -> Any:
        """One custom node's output (on a runner's worker thread)."""
        if kind == "python":
            name = str(config.get("function", ""))
            function = self._python.get(name)
            if function is None:
                raise LookupError(f"no python node function is registered as {name!r}")
            return function(config, data)
        svc = self.services
        if kind == "model":
            return with_retries(config, lambda: run_model(svc.models, config, data), deadline)
        if kind == "lookup":
            return with_retries(
                config, lambda: run_lookup(svc.lookup, config, data, deadline), deadline
            )
        if kind == "aggregate":
            reader = svc.aggregates() if svc.aggregates is not None else None
            return with_retries(config, lambda: run_aggregate(reader, config, data), deadline)
        raise LookupError(f"unknown custom node kind {kind!r}")
