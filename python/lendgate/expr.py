"""The expression language (Rust: ``core_rs/lendgate-core/src/expr/``).

Compatible with GoRules' ZEN expression language. Compile once, evaluate many times;
evaluation releases the GIL. See ``docs/EXPRESSIONS.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lendgate import _core
from lendgate.errors import core_errors


class CompiledExpression:
    """A compiled standard expression, e.g. ``amount > 1000 and age < 30``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _core.CompiledExpression) -> None:
        self._inner = inner

    @classmethod
    def compile(cls, source: str) -> CompiledExpression:
        """Compile ``source``.

        Raises :class:`~lendgate.errors.InvalidArgumentError` whose message names the
        character position and the reason when the source does not parse.
        """
        with core_errors():
            return cls(_core.CompiledExpression.compile(source))

    @property
    def source(self) -> str:
        """The source text."""
        return self._inner.source

    def evaluate(self, context: Mapping[str, Any] | None = None) -> Any:
        """Evaluate against ``context`` (its keys are the expression's variables).

        Raises :class:`~lendgate.errors.ExpressionEvaluationError` on a type error or
        when a run-time limit is exceeded.
        """
        with core_errors():
            return self._inner.evaluate(None if context is None else dict(context))


class CompiledUnaryExpression:
    """A compiled unary test (a decision-table cell) such as ``> 5`` or ``'GB', 'US'``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _core.CompiledUnaryExpression) -> None:
        self._inner = inner

    @classmethod
    def compile(cls, source: str) -> CompiledUnaryExpression:
        """Compile a unary test; syntax errors raise ``InvalidArgumentError``."""
        with core_errors():
            return cls(_core.CompiledUnaryExpression.compile(source))

    @property
    def source(self) -> str:
        """The source text."""
        return self._inner.source

    def evaluate(self, subject: Any, context: Mapping[str, Any] | None = None) -> bool:
        """Test ``subject`` (``$`` in the test); ``context`` supplies other variables."""
        document = dict(context or {})
        document["$"] = subject
        with core_errors():
            return self._inner.evaluate(document)
