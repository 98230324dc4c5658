"""Match keys of an event: how they are stored in its row and indexed.

An event's keys (``("phone", "79991234567")``...) are kept in its row as one string, and
indexed in ``event_keys`` by a 64-bit hash of kind and value. An integer index costs about
half as much per insert as a text one (the hot path of ingest); a look-up filters the rows it
finds by the exact keys, so a hash collision can never return a wrong event.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable, Sequence

from lendgate import _core
from lendgate.errors import InvalidArgumentError

_PAIR = "\x1f"  # between a key's kind and value
_KEY = "\x1e"  # between keys
_SEQ = operator.itemgetter(1)


def key_hash(kind: str, value: str) -> int:
    """The signed 64-bit index value of one key (stable across processes and machines).

    SipHash-1-3 in the Rust core (``lendgate_core::matchkeys``): about 0.2 µs a key where
    ``hashlib.blake2b`` from Python cost 1.1 µs (migration 0002 rebuilt the index).
    """
    return _core.key_hash(kind, value)


class KeyBacklog:
    """Hashed keys of committed events the index does not cover yet (writer thread only).

    The writer hashes an event's keys when it inserts the event, so the indexer does not
    read the rows back and decode them. What a batch adds is *staged* and joins the backlog
    only when that batch commits (a rolled-back batch leaves no trace); the index operation
    likewise drops what it took from the backlog only when its own transaction commits. The
    backlog covers the log from ``start`` (``None`` after a restart, until the first commit)
    to ``end``: the indexer reads the events before ``start`` from the database, the rest
    from here. It takes the backlog a bounded prefix at a time (:meth:`take`), so one index
    operation never holds the writer — and the appends queued behind it — for long.
    """

    __slots__ = (
        "_limit",
        "_staged",
        "_staged_seqs",
        "_taken_events",
        "_taken_rows",
        "end",
        "rows",
        "seqs",
        "start",
    )

    def __init__(self, limit: int = 4_000_000) -> None:
        self.start: int | None = None
        self.end = 0
        self.seqs: list[int] = []
        """The log positions of the backlog's events, ascending (one per event)."""
        self.rows: list[tuple[int, int]] = []
        """``(key hash, seq)`` of the backlog's events, in log order."""
        self._limit = limit
        self._taken_events = 0
        self._taken_rows = 0
        self._staged: list[tuple[int, int]] = []
        self._staged_seqs: list[int] = []

    @property
    def events(self) -> int:
        """How many events the backlog holds."""
        return len(self.seqs)

    @property
    def first_held(self) -> int | None:
        """The first event whose keys are held in memory: the backlog's, else the running
        batch's staged ones (their rows are visible to an operation of that batch but
        will join the backlog on commit), else ``None``."""
        if self.start is not None:
            return self.start
        return self._staged_seqs[0] if self._staged_seqs else None

    def stage(self, seq: int, keys: Sequence[tuple[str, str]]) -> None:
        """Record the keys of one event the running batch inserted."""
        self.stage_many(((seq, keys),))

    def stage_many(self, events: Iterable[tuple[int, Sequence[tuple[str, str]]]]) -> None:
        """Record the keys of events the running batch inserted: ``(seq, keys)`` pairs,
        in log order."""
        staged, seqs, key_rows = self._staged, self._staged_seqs, _core.key_rows
        for seq, keys in events:
            seqs.append(seq)
            if keys:
                staged.extend(key_rows(seq, keys))

    def take(self, max_events: int) -> tuple[list[tuple[int, int]], int, int]:
        """The running batch indexes the backlog's first ``max_events`` events (they leave
        it on commit): their key rows, the last log position covered, and the number of
        events. Call only when :attr:`start` is set and the backlog is not empty."""
        count = min(max(1, max_events), len(self.seqs))
        through = self.seqs[count - 1]
        if count == len(self.seqs):
            through, cut = self.end, len(self.rows)
        else:
            cut = bisect.bisect_right(self.rows, through, key=_SEQ)
        self._taken_events, self._taken_rows = count, cut
        return self.rows[:cut], through, count

    def commit(self) -> None:
        """The batch committed: apply what it took and staged."""
        if self._taken_events and self.start is not None:
            taken = self._taken_events
            if taken == len(self.seqs):
                self.start = self.end + 1
                self.seqs, self.rows = [], []
            else:
                self.start = self.seqs[taken - 1] + 1
                del self.seqs[:taken]
                del self.rows[: self._taken_rows]
        if self._staged_seqs:
            if self.start is None:
                self.start = self._staged_seqs[0]
            self.rows.extend(self._staged)
            self.seqs.extend(self._staged_seqs)
            self.end = max(self.end, self._staged_seqs[-1])
        self.rollback()
        if len(self.rows) > self._limit:  # nobody indexes: stop holding keys in memory
            self.clear()

    def rollback(self) -> None:
        """The batch is over without effect (or its effect was applied): reset the staging."""
        self._taken_events = self._taken_rows = 0
        self._staged = []
        self._staged_seqs = []

    def clear(self) -> None:
        """Forget everything (the indexer then reads the log from the database)."""
        self.start = None
        self.end = 0
        self.seqs = []
        self.rows = []


def encode(keys: Iterable[tuple[str, str]]) -> str:
    """The keys, without duplicates, as the row's ``match_keys`` string."""
    return _KEY.join(map(_PAIR.join, dict.fromkeys(keys)))


def encode_checked(keys: Sequence[tuple[str, str]]) -> str:
    """:func:`encode` for an event being appended, refusing keys :func:`check` refuses.

    Checked on the encoded string (a few C-level scans instead of a Python loop over the
    keys: this runs once per appended event): ``n`` distinct keys encode to exactly ``n``
    kind/value separators and ``n - 1`` key separators, and no kind is empty.
    """
    unique = dict.fromkeys(keys)
    text = _KEY.join(map(_PAIR.join, unique))
    n = len(unique)
    if n and (
        text.count(_PAIR) != n
        or text.count(_KEY) != n - 1
        or text.startswith(_PAIR)
        or _KEY + _PAIR in text
    ):
        check(keys)  # names the offending key
        raise InvalidArgumentError("a key needs a kind and a value", field="keys")
    return text


def like_pattern(kind: str, value: str) -> str:
    """A ``LIKE`` pattern (escape character ``!``) matching every ``match_keys`` string
    that holds the key (and possibly a few that do not: filter by :func:`decode`)."""
    escaped = f"{kind}{_PAIR}{value}".replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


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
