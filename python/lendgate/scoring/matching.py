"""Consortium matches: the match index and the disclosure policy, in Rust.

:class:`MatchIndex` (``lendgate_core::scoring::matching``) keeps, per normalised key
(phone, passport, name + phone, co-borrower passport, employer, IP, device, e-mail),
the 50 most recent applications that carried it; the scoring call reads it for the
fired rules that name match kinds and adds the checked application to it. Every
match is masked for the caller by the consortium's disclosure policy (docs/SCORING.md):
the other partner is never named nor its application id shown; the event time is
truncated to the day; phones keep the country code and the last 4 digits, names the
first letter of each word, passports the last 4 characters, birth dates the year.

The index also remembers, per application, whether the aggregates already counted its
finish, so a refusal reported both as a ``LOAN_APP_RESULT`` event and as an outcome
counts once, and a hash of every logged request key (a new request needs no store read).
:meth:`MatchIndex.snapshot` and :meth:`MatchIndex.restore` carry all of it (versioned
binary, ``LGMXSNAP``) across a restart; :meth:`MatchIndex.prune` is retention.
"""

from __future__ import annotations

from datetime import datetime

from lendgate import _core
from lendgate.errors import core_errors
from lendgate.timeutil import to_us


class MatchIndex:
    """In-memory index of recent applications by match key (one process's view)."""

    __slots__ = ("_core",)

    def __init__(self) -> None:
        self._core = _core.MatchIndex()

    def __len__(self) -> int:
        return len(self._core)

    def prune(self, before: datetime, *, sweep_shards: int = 64) -> int:
        """Forget every application event older than ``before`` (event time): retention
        of the hot state. Returns how many were dropped. The cost is what is dropped
        plus a sweep of ``sweep_shards`` of the key lists' 64 shards (the rest let go of
        dropped entries in later calls; answers are the same either way)."""
        return self._core.prune(to_us(before), sweep_shards)

    def snapshot(self) -> bytes:
        """The whole index as compact, versioned bytes (deterministic for one state)."""
        return self._core.snapshot()

    def restore(self, data: bytes | memoryview) -> None:
        """Replace the index with :meth:`snapshot` bytes (or a read-only view of them);
        another format version or foreign bytes raise ``InvalidArgumentError`` (field
        ``snapshot``) saying so, and the index is left as it was."""
        with core_errors():
            self._core.restore(data)


def mask_phone(value: str) -> str:
    """``79991234567`` -> ``+7******4567``."""
    return _core.mask_match_value("phone", value)


def mask_name(value: str) -> str:
    """``ivanov ivan`` -> ``I*** I***``."""
    return _core.mask_match_value("name", value)


def mask_passport(value: str) -> str:
    """All but the last 4 characters hidden."""
    return _core.mask_match_value("passport", value)


def mask_birth_date(value: str) -> str:
    """The year only."""
    return _core.mask_match_value("birth_date", value)
