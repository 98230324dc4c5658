"""The ``filter`` of List methods: a subset of AIP-160 (https://google.aip.dev/160).

The contract promises AIP-160 on every List method (``common.proto``), so clients
written against Google-style APIs already know it; rule conditions use the ZEN
expression language instead because they compute over an event, while a filter only
selects resources by their fields. Supported:

- comparisons ``field = value``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, and the has
  operator ``field:value`` (for a repeated field: one of its items matches; for a
  scalar: the same as ``=``);
- values: quoted strings (``"..."`` or ``'...'``, with ``\\`` escapes), numbers,
  ``true``/``false`` and bare words (enum names: ``status = WORKING`` or
  ``RULE_STATUS_WORKING``); a string ending in ``*`` compared with ``=`` or ``:``
  is a prefix match (``value = "7701*"``);
- timestamps compare as RFC 3339 strings (``update_time > "2026-01-01T00:00:00Z"``);
- ``AND``, ``OR`` (binding tighter than ``AND``, as AIP-160 says), ``NOT`` / ``-``,
  parentheses, and juxtaposition as ``AND``.

Not supported (``INVALID_ARGUMENT``): traversal (``a.b``), functions, ``*`` elsewhere
than at the end of a string. An unknown field is ``INVALID_ARGUMENT`` naming the ones
the method accepts.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lendgate.errors import InvalidArgumentError

Value = str | int | float | bool | datetime | None
Fields = Mapping[str, Value | Sequence[Value]]
"""A resource as a filter sees it: field name → value (a sequence for repeated fields)."""

Predicate = Callable[[Fields], bool]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lp>\() | (?P<rp>\)) | (?P<op><=|>=|!=|=|<|>|:) | (?P<neg>-(?=[A-Za-z_(]))
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<word>[A-Za-z0-9_.+\-*]+?(?=\s|$|[()=<>!:]))
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _syntax(pos, f"unexpected {text[pos:].strip()[:1]!r}")
        kind = m.lastgroup or ""
        start = m.start(kind)
        out.append(_Tok(kind, m.group(kind), start))
        pos = m.end()
    return out


def _syntax(pos: int, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"position {pos}: {why}", field="filter")


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s[1:-1])


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, str]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.fields = fields
        self.end = len(text)

    def peek(self, *words: str) -> bool:
        if self.i >= len(self.toks):
            return False
        t = self.toks[self.i]
        return t.kind == "word" and t.text in words

    def take(self) -> _Tok:
        if self.i >= len(self.toks):
            raise _syntax(self.end, "unexpected end of the filter")
        t = self.toks[self.i]
        self.i += 1
        return t

    def parse(self) -> Predicate:
        pred = self.expression()
        if self.i < len(self.toks):
            t = self.toks[self.i]
            raise _syntax(t.pos, f"unexpected {t.text!r}")
        return pred

    def expression(self) -> Predicate:
        parts = [self.sequence()]
        while self.peek("AND"):
            self.take()
            parts.append(self.sequence())
        return lambda r: all(p(r) for p in parts)

    def sequence(self) -> Predicate:
        parts = [self.factor()]
        while self.i < len(self.toks) and not self.peek("AND") and self.toks[self.i].kind != "rp":
            parts.append(self.factor())
        return lambda r: all(p(r) for p in parts)

    def factor(self) -> Predicate:
        parts = [self.term()]
        while self.peek("OR"):
            self.take()
            parts.append(self.term())
        return lambda r: any(p(r) for p in parts)

    def term(self) -> Predicate:
        if self.peek("NOT") or (self.i < len(self.toks) and self.toks[self.i].kind == "neg"):
            self.take()
            inner = self.simple()
            return lambda r: not inner(r)
        return self.simple()

    def simple(self) -> Predicate:
        t = self.take()
        if t.kind == "lp":
            inner = self.expression()
            close = self.take()
            if close.kind != "rp":
                raise _syntax(close.pos, "expected ')'")
            return inner
        if t.kind != "word" or t.text in ("AND", "OR", "NOT"):
            raise _syntax(t.pos, f"expected a field name, found {t.text!r}")
        name = t.text
        if name not in self.fields:
            raise InvalidArgumentError(
                f"position {t.pos}: unknown field {name!r}; this method filters on "
                + ", ".join(sorted(self.fields)),
                field="filter",
            )
        op = self.take()
        if op.kind != "op":
            raise _syntax(op.pos, f"expected a comparison after {name!r}")
        arg = self.take()
        if arg.kind not in ("str", "word"):
            raise _syntax(arg.pos, "expected a value")
        raw = _unquote(arg.text) if arg.kind == "str" else arg.text
        return _restriction(name, self.fields[name], op.text, raw, arg.pos)


def _as_time(raw: str, pos: int) -> datetime:
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _syntax(pos, f"{raw!r} is not an RFC 3339 timestamp") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


_OPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    ":": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _restriction(name: str, kind: str, op: str, raw: str, pos: int) -> Predicate:
    """One comparison. ``kind``: ``str``, ``enum:PREFIX_``, ``int``, ``time``, ``bool``,
    ``strs`` (repeated strings)."""
    if kind == "strs":  # a repeated field: one of its items matches
        if op not in (":", "=", "!="):
            raise _syntax(pos, f"{name} is repeated: use {name}:value")
        one = _restriction(name, "str", "=", raw, pos)

        def hit(r: Fields) -> bool:
            return any(one({name: v}) for v in _items(r.get(name)))

        return (lambda r: not hit(r)) if op == "!=" else hit
    ordered = op in ("<", "<=", ">", ">=")
    target: Any
    if kind == "int":
        try:
            target = int(raw)
        except ValueError:
            raise _syntax(pos, f"{name} is a number, not {raw!r}") from None
    elif kind == "time":
        target = _as_time(raw, pos)
    elif kind == "bool":
        if raw not in ("true", "false"):
            raise _syntax(pos, f"{name} is true or false")
        target = raw == "true"
    elif kind.startswith("enum:"):
        target = raw.removeprefix(kind[5:])
        if ordered:
            raise _syntax(pos, f"{name} is an enum: only =, != and :")
    else:
        target = raw
    prefix = isinstance(target, str) and op in ("=", ":") and raw.endswith("*")
    if isinstance(target, str) and "*" in raw[:-1]:
        raise _syntax(pos, "'*' is a wildcard only at the end of a value")

    compare = _OPS[op]

    def test(v: Any) -> bool:
        if v is None:
            return op == "!=" and target is not None
        if prefix:
            return str(v).startswith(target[:-1])
        try:
            return bool(compare(v, target))
        except TypeError:
            return False

    return lambda r: test(r.get(name))


def _items(v: object) -> Sequence[Any]:
    return v if isinstance(v, (list, tuple)) else ()


def compile_filter(text: str, fields: Mapping[str, str]) -> Predicate:
    """A predicate over resources for ``text`` (empty: everything), accepting the
    ``fields`` named (name → kind, see :func:`_restriction`); ``InvalidArgumentError``
    on ``filter`` for a syntax error or an unknown field."""
    if not text.strip():
        return lambda _: True
    return _Parser(text, fields).parse()


__all__ = ["Fields", "Predicate", "compile_filter"]
