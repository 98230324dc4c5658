"""Match keys of an event: how they are stored in its row and indexed.

An event's keys (``("phone", "79991234567")``...) are kept in its row as one string, and
indexed in ``event_keys`` by a 64-bit hash of kind and value. An integer index costs about
half as much per insert as a text one (the hot path of ingest); a look-up filters the rows it
finds by the exact keys, so a hash collision can never return a wrong event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lendgate import _core
from lendgate.errors import InvalidArgumentError

_PAIR = "\x1f"  # between a key's kind and value
_KEY = "\x1e"  # between keys


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
    likewise empties the backlog only when its own transaction commits. The backlog covers
    the log from ``start`` (``None`` after a restart, until the first commit) to ``end``:
    the indexer reads the events before ``start`` from the database, the rest from here.
    """

    __slots__ = (
        "_limit",
        "_staged",
        "_staged_events",
        "_staged_first",
        "_staged_last",
        "_taken",
        "end",
        "events",
        "rows",
        "start",
    )

    def __init__(self, limit: int = 4_000_000) -> None:
        self.start: int | None = None
        self.end = 0
        self.events = 0
        self.rows: list[tuple[int, int]] = []
        self._limit = limit
        self._taken = False
        self._staged: list[tuple[int, int]] = []
        self._staged_events = 0
        self._staged_first = 0
        self._staged_last = 0

    @property
    def first_held(self) -> int | None:
        """The first event whose keys are held in memory: the backlog's, else the running
        batch's staged ones (their rows are visible to an operation of that batch but
        will join the backlog on commit), else ``None``."""
        if self.start is not None:
            return self.start
        return self._staged_first if self._staged_events else None

    def stage(self, seq: int, keys: Sequence[tuple[str, str]]) -> None:
        """Record the keys of one event the running batch inserted."""
        self.stage_many(((seq, keys),))

    def stage_many(self, events: Iterable[tuple[int, Sequence[tuple[str, str]]]]) -> None:
        """Record the keys of events the running batch inserted: ``(seq, keys)`` pairs."""
        staged, key_rows = self._staged, _core.key_rows
        first, last, count = self._staged_first, self._staged_last, self._staged_events
        for seq, keys in events:
            if not count:
                first = last = seq
            elif seq < first:
                first = seq
            elif seq > last:
                last = seq
            count += 1
            if keys:
                staged.extend(key_rows(seq, keys))
        self._staged_first, self._staged_last, self._staged_events = first, last, count

    def take(self) -> None:
        """The running batch indexes the whole backlog (it empties on commit)."""
        self._taken = True

    def commit(self) -> None:
        """The batch committed: apply what it took and staged."""
        if self._taken and self.start is not None:
            self.rows = []
            self.events = 0
            self.start = self.end + 1
        if self._staged_events:
            if self.start is None:
                self.start = self._staged_first
            self.rows.extend(self._staged)
            self.events += self._staged_events
            self.end = self._staged_last
        self.rollback()
        if len(self.rows) > self._limit:  # nobody indexes: stop holding keys in memory
            self.clear()

    def rollback(self) -> None:
        """The batch is over without effect (or its effect was applied): reset the staging."""
        self._taken = False
        self._staged = []
        self._staged_events = 0

    def clear(self) -> None:
        """Forget everything (the indexer then reads the log from the database)."""
        self.start = None
        self.end = 0
        self.events = 0
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
