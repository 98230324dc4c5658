"""JSON Lines files of generated events: writing (with a progress bar) and reading.

One line per event::

    {"kind": "application", "time": 1735740000, "event": {...}, "label": {...}}

``event`` is the canonical proto3 JSON of an ``ApplicationEvent``, a ``PaymentEvent`` or
(kind ``outcome``) a ``ReportOutcomeRequest``; ``label`` is the generator's ground truth.
A name ending in ``.gz`` is gzip-compressed.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from google.protobuf import json_format
from google.protobuf.message import Message

from lendgate.datagen.generator import GeneratedEvent, Generator, Kind
from lendgate.v1 import scoring_pb2 as s

_MESSAGES: dict[str, type[Message]] = {
    "application": s.ApplicationEvent,
    "payment": s.PaymentEvent,
    "outcome": s.ReportOutcomeRequest,
}


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return cast(IO[str], gzip.open(path, mode + "t", encoding="utf-8", compresslevel=5))
    return path.open(mode, encoding="utf-8")


def to_json_line(event: GeneratedEvent) -> str:
    """One event as a JSON line (without the newline)."""
    body = json_format.MessageToDict(event.message)
    return json.dumps(
        {"kind": event.kind, "time": event.time, "event": body, "label": event.label},
        separators=(",", ":"),
    )


class Progress:
    """A one-line progress bar on stderr, redrawn at most every 0.2 s."""

    def __init__(self, total: int, enabled: bool = True, out: IO[str] | None = None) -> None:
        self.total = max(total, 1)
        self.enabled = enabled
        self.out = out or sys.stderr
        self._last = 0.0
        self._start = time.monotonic()

    def update(self, done: int, count: int, force: bool = False) -> None:
        """Show ``done`` of ``total`` units and the number of events written."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        share = min(done / self.total, 1.0)
        bar = "#" * int(share * 30)
        rate = count / max(now - self._start, 1e-9)
        self.out.write(
            f"\rgen-data [{bar:<30}] {share:6.1%} day {done}/{self.total}"
            f" {count:,} events {rate:,.0f}/s"
        )
        if force:
            self.out.write("\n")
        self.out.flush()


def write_events(gen: Generator, path: Path, progress: bool = True) -> dict[str, int]:
    """Stream the generator's events to ``path``; returns the count per kind."""
    counts: dict[str, int] = {"application": 0, "payment": 0, "outcome": 0}
    bar = Progress(gen.cfg.days, enabled=progress)
    n = 0
    with _open(path, "w") as out:
        for event in gen:
            out.write(to_json_line(event))
            out.write("\n")
            counts[event.kind] += 1
            n += 1
            if n % 512 == 0:
                bar.update(gen.day, n)
    bar.update(gen.cfg.days, n, force=True)
    return counts


@dataclass(frozen=True)
class Record:
    """One event read back from a file."""

    kind: Kind
    time: int
    message: Message
    label: dict[str, Any]


def read_events(path: Path, kinds: Iterable[str] | None = None) -> Iterator[Record]:
    """The events of a file in file order, parsed into protobuf messages.

    ``kinds`` limits parsing to those kinds (the others are skipped cheaply).
    """
    wanted = set(kinds) if kinds is not None else set(_MESSAGES)
    with _open(path, "r") as lines:
        for line in lines:
            raw = json.loads(line)
            kind = raw["kind"]
            if kind not in wanted:
                continue
            message = json_format.ParseDict(raw["event"], _MESSAGES[kind]())
            yield Record(kind, int(raw["time"]), message, raw["label"])
