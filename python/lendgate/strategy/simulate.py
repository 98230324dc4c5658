"""Simulation: run a candidate version and a baseline over the same inputs and report
what changes — how many decisions, in which direction (baseline value → candidate
value, per compared path), and on which inputs.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lendgate.errors import InvalidArgumentError
from lendgate.strategy.engine import CompiledStrategy, Host

CHUNK = 200
"""Inputs evaluated between two progress reports."""

_MISSING = object()


@dataclass(frozen=True)
class SimulationInput:
    """One input: a reference to report it by and a serialized ``google.protobuf.Struct``."""

    ref: str
    input_struct: bytes


@dataclass(frozen=True)
class Progress:
    """Inputs evaluated so far, of ``total``."""

    done: int
    total: int


@dataclass(frozen=True)
class Change:
    """``count`` inputs whose value at ``path`` went from ``baseline`` to ``candidate``."""

    path: str
    baseline: Any
    candidate: Any
    count: int


@dataclass(frozen=True)
class Example:
    """A changed input with both outputs."""

    ref: str
    baseline_output: Any
    candidate_output: Any


@dataclass
class SimulationResult:
    """The outcome of a simulation."""

    total: int = 0
    changed: int = 0
    errors: int = 0
    changes: list[Change] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)


def pointer_get(doc: Any, pointer: str) -> Any:
    """The value at JSON Pointer ``pointer`` (RFC 6901), or a missing marker."""
    if pointer in ("", "/"):
        return doc
    if not pointer.startswith("/"):
        raise InvalidArgumentError(
            f"{pointer!r} is not a JSON Pointer (it starts with '/')", field="compare_paths"
        )
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return _MISSING
    return doc


def _key(v: Any) -> str:
    return "" if v is _MISSING else json.dumps(v, sort_keys=True)


def _paths(compare: Sequence[str], baseline: Any, candidate: Any) -> list[str]:
    if compare:
        return list(compare)
    keys: set[str] = set()
    for doc in (baseline, candidate):
        if isinstance(doc, dict):
            keys |= set(doc)
    return ["/" + k.replace("~", "~0").replace("/", "~1") for k in sorted(keys)]


async def simulate(
    candidate: CompiledStrategy,
    baseline: CompiledStrategy,
    inputs: Sequence[SimulationInput],
    *,
    host: Host | None = None,
    compare_paths: Sequence[str] = (),
    max_examples: int = 100,
) -> AsyncIterator[Progress | SimulationResult]:
    """Evaluate both versions on every input; yield progress per chunk, then the result.

    An input on which either version fails counts as an error, not as a change.
    """
    for p in compare_paths:
        pointer_get({}, p)  # validates the pointer syntax up front
    result = SimulationResult(total=len(inputs))
    counts: Counter[tuple[str, str, str]] = Counter()
    values: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def run(chunk: Sequence[SimulationInput]) -> list[tuple[str, Any, Any, bool]]:
        out = []
        for item in chunk:
            b = baseline.evaluate_struct(item.input_struct, host=host)
            c = candidate.evaluate_struct(item.input_struct, host=host)
            ok = b.ok and c.ok
            out.append((item.ref, b.output if ok else None, c.output if ok else None, ok))
        return out

    done = 0
    for start in range(0, len(inputs), CHUNK):
        chunk = inputs[start : start + CHUNK]
        for ref, b_out, c_out, ok in await asyncio.to_thread(run, chunk):
            if not ok:
                result.errors += 1
                continue
            changed = False
            for path in _paths(compare_paths, b_out, c_out):
                bv, cv = pointer_get(b_out, path), pointer_get(c_out, path)
                if _key(bv) == _key(cv):
                    continue
                changed = True
                k = (path, _key(bv), _key(cv))
                counts[k] += 1
                values[k] = (None if bv is _MISSING else bv, None if cv is _MISSING else cv)
            if changed:
                result.changed += 1
                if len(result.examples) < max_examples:
                    result.examples.append(Example(ref, b_out, c_out))
        done += len(chunk)
        yield Progress(done, len(inputs))
    result.changes = [
        Change(k[0], values[k][0], values[k][1], n)
        for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    yield result
