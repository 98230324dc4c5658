"""Match keys of an event: how they are stored in its row and indexed.

An event's keys (``("phone", "79991234567")``...) are kept in its row as one string, and
indexed in ``event_keys`` by a 64-bit hash of kind and value. An integer index costs about
half as much per insert as a text one (the hot path of ingest); a look-up filters the rows it
finds by the exact keys, so a hash collision can never return a wrong event.
"""

from __future__ import annotations

import bisect
import operator
import threading
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
    """Hashed keys of committed events the index does not cover yet.

    The writer hashes an event's keys when it inserts the event, so the indexer does not
    read the rows back and decode them. What a batch adds is *staged* (writer thread only)
    and joins the backlog only when that batch commits (a rolled-back batch leaves no
    trace). The indexer (:class:`lendgate.store.keyindex.KeyIndex`, its own thread) takes
    a bounded prefix and drops it once its own transaction has committed. The backlog
    covers the log from ``start`` (``None`` after a restart, until the first commit) to
    ``end``: the indexer reads the events before ``start`` from the database.
    """

    __slots__ = (
        "_limit",
        "_lock",
        "_staged",
        "_staged_seqs",
        "end",
        "generation",
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
        self.generation = 0
        """Bumped by :meth:`clear`: a prefix taken before it is not dropped after it."""
        self._limit = limit
        self._lock = threading.Lock()
        self._staged: list[tuple[int, int]] = []
        self._staged_seqs: list[int] = []

    @property
    def events(self) -> int:
        """How many events the backlog holds."""
        return len(self.seqs)

    def stage(self, seq: int, keys: Sequence[tuple[str, str]]) -> None:
        """Record the keys of one event the running batch inserted."""
        self.stage_many(((seq, keys),))

    def stage_many(self, events: Iterable[tuple[int, Sequence[tuple[str, str]]]]) -> None:
        """Record the keys of events the running batch inserted: ``(seq, keys)`` pairs,
        in log order (writer thread)."""
        staged, seqs, key_rows = self._staged, self._staged_seqs, _core.key_rows
        for seq, keys in events:
            seqs.append(seq)
            if keys:
                staged.extend(key_rows(seq, keys))

    def commit(self) -> None:
        """The writer's batch committed: its staged events join the backlog."""
        if self._staged_seqs:
            with self._lock:
                if self.start is None:
                    self.start = self._staged_seqs[0]
                self.rows.extend(self._staged)
                self.seqs.extend(self._staged_seqs)
                self.end = max(self.end, self._staged_seqs[-1])
                if len(self.rows) > self._limit:  # nobody indexes: stop holding keys
                    self._clear()
        self.rollback()

    def rollback(self) -> None:
        """The writer's batch is over without effect (or was applied): reset the staging."""
        self._staged = []
        self._staged_seqs = []

    def take(self, max_events: int, through: int) -> tuple[list[tuple[int, int]], int, int] | None:
        """The first ``max_events`` events of the backlog for an index that covers the log
        up to ``through``: their key rows, the last log position they cover and how many;
        ``None`` when the backlog is empty or starts after ``through + 1`` (the events in
        between are read from the log first). They stay until :meth:`drop`."""
        with self._lock:
            if not self.seqs or self.start is None or self.start > through + 1:
                return None
            count = min(max(1, max_events), len(self.seqs))
            if count == len(self.seqs):
                return list(self.rows), self.end, count
            last = self.seqs[count - 1]
            cut = bisect.bisect_right(self.rows, last, key=_SEQ)
            return self.rows[:cut], last, count

    def drop(self, count: int, generation: int) -> None:
        """The index committed the first ``count`` events (taken in ``generation``)."""
        with self._lock:
            if generation != self.generation or count <= 0:
                return
            if count >= len(self.seqs):
                self.start = self.end + 1
                self.seqs, self.rows = [], []
                return
            last = self.seqs[count - 1]
            del self.rows[: bisect.bisect_right(self.rows, last, key=_SEQ)]
            del self.seqs[:count]
            self.start = last + 1

    def clear(self) -> None:
        """Forget everything (the indexer then reads the log from the database)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self.start = None
        self.end = 0
        self.seqs = []
        self.rows = []
        self.generation += 1


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
