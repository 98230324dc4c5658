"""Files of generated events: writing (with a progress bar) and reading.

Two formats, chosen by the file name (``.gz`` = gzip-compressed):

* **JSON Lines** (``.jsonl``), one line per event::

      {"kind": "application", "time": 1735740000, "event": {...}, "label": {...}}

  ``event`` is the canonical proto3 JSON of an ``ApplicationEvent``, a ``PaymentEvent``
  or (kind ``outcome``) a ``ReportOutcomeRequest``; ``label`` is the generator's ground
  truth. Readable by anyone, but slow to turn back into protobuf (~100 µs an event).
* **Binary** (``.pb``): length-delimited ``lendgate.v1.ExportedEvent`` records (varint
  byte length, then the message) holding the request exactly as the API receives it
  (``CheckApplicationRequest``, ``CheckPaymentRequest``, ``ReportOutcomeRequest``) and
  the label. :func:`read_requests` hands out the request bytes without decoding the
  record, which is what a back-test replays.
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
from google.protobuf.message import DecodeError, Message
from google.protobuf.struct_pb2 import Struct

from lendgate.datagen.generator import GeneratedEvent, Generator, Kind
from lendgate.v1 import scoring_pb2 as s

_MESSAGES: dict[str, type[Message]] = {
    "application": s.ApplicationEvent,
    "payment": s.PaymentEvent,
    "outcome": s.ReportOutcomeRequest,
}


_FIELD_OF: dict[str, int] = {"application": 1, "payment": 2, "outcome": 3}
"""``ExportedEvent`` field number of each kind."""
_KIND_OF_TAG: dict[int, Kind] = {0x0A: "application", 0x12: "payment", 0x1A: "outcome"}
"""Wire tag (field number << 3 | length-delimited) -> kind."""
_CHUNK = 1 << 22


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return cast(IO[str], gzip.open(path, mode + "t", encoding="utf-8", compresslevel=5))
    return path.open(mode, encoding="utf-8")


def _open_binary(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, mode + "b", compresslevel=5))
    return path.open(mode + "b")


def is_binary(path: Path) -> bool:
    """Whether ``path`` names a binary event file (``.pb`` or ``.pb.gz``)."""
    suffixes = path.suffixes
    return bool(suffixes) and (suffixes[-1] == ".pb" or suffixes[-2:] == [".pb", ".gz"])


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def to_record(event: GeneratedEvent) -> bytes:
    """One event as a length-delimited ``ExportedEvent`` record."""
    message: Any = event.message
    if event.kind == "application":
        request: Message = s.CheckApplicationRequest(application=message)
    elif event.kind == "payment":
        request = s.CheckPaymentRequest(payment=message)
    else:
        request = message
    label = Struct()
    label.update(cast(dict[str, Any], event.label))
    body = request.SerializeToString()
    # Field 1/2/3 first, then the label (4): read_requests slices the request out.
    data = (
        _varint(_FIELD_OF[event.kind] << 3 | 2)
        + _varint(len(body))
        + body
        + s.ExportedEvent(label=label).SerializeToString()
    )
    return _varint(len(data)) + data


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


def write_events(
    gen: Generator, path: Path, progress: bool = True, binary: bool | None = None
) -> dict[str, int]:
    """Stream the generator's events to ``path``; returns the count per kind.

    ``binary`` picks the format; by default the name does (:func:`is_binary`)."""
    counts: dict[str, int] = {"application": 0, "payment": 0, "outcome": 0}
    bar = Progress(gen.cfg.days, enabled=progress)
    n = 0
    if binary is None:
        binary = is_binary(path)
    with _open_binary(path, "w") if binary else _open(path, "w") as out:
        for event in gen:
            if binary:
                cast(IO[bytes], out).write(to_record(event))
            else:
                cast(IO[str], out).write(to_json_line(event) + "\n")
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

    ``kinds`` limits parsing to those kinds (the others are skipped cheaply). Both
    formats; a binary record's ``time`` is its event time in whole seconds.
    """
    wanted = set(kinds) if kinds is not None else set(_MESSAGES)
    if is_binary(path):
        for data in _delimited(path):
            record = s.ExportedEvent.FromString(data)
            kind = cast(Kind, record.WhichOneof("event"))
            if kind is None:
                raise ValueError(f"{path}: a record holds no event")
            if kind not in wanted:
                continue
            message: Any = getattr(record, kind)
            if kind == "application":
                message = message.application
            elif kind == "payment":
                message = message.payment
            when = message.outcome.event_time if kind == "outcome" else message.event_time
            label = json_format.MessageToDict(record.label)
            if "person" in label:
                label["person"] = int(label["person"])
            yield Record(kind, when.seconds, message, label)
        return
    with _open(path, "r") as lines:
        for line in lines:
            raw = json.loads(line)
            kind = raw["kind"]
            if kind not in wanted:
                continue
            message = json_format.ParseDict(raw["event"], _MESSAGES[kind]())
            yield Record(kind, int(raw["time"]), message, raw["label"])


def read_requests(path: Path) -> Iterator[tuple[Kind, bytes]]:
    """The events of a binary file in file order: each kind and the serialized request
    (``CheckApplicationRequest``, ``CheckPaymentRequest``, ``ReportOutcomeRequest``),
    taken from the record as it is when the record starts with it (as written here)."""
    for data in _delimited(path):
        kind = _KIND_OF_TAG.get(data[0]) if data else None
        if kind is not None:
            size, start = _read_varint(data, 1)
            if size is not None and start + size <= len(data):
                yield kind, data[start : start + size]
                continue
        try:
            record = s.ExportedEvent.FromString(data)
        except DecodeError as exc:
            raise ValueError(f"{path}: a record is not an ExportedEvent ({exc})") from None
        which = record.WhichOneof("event")
        if which is None:
            raise ValueError(f"{path}: a record holds no event")
        yield which, getattr(record, which).SerializeToString()


def _read_varint(data: bytes, pos: int) -> tuple[int | None, int]:
    """The varint at ``pos`` and the position after it; None when ``data`` ends first."""
    value = shift = 0
    end = len(data)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("a record length is not a valid varint")
    return None, pos


def _delimited(path: Path) -> Iterator[bytes]:
    """The length-delimited records of ``path``, read in large chunks."""
    with _open_binary(path, "r") as f:
        buf = b""
        while chunk := f.read(_CHUNK):
            buf += chunk
            pos, end = 0, len(buf)
            while pos < end:
                first = buf[pos]
                if first < 0x80:
                    size: int | None = first
                    start = pos + 1
                else:
                    size, start = _read_varint(buf, pos)
                if size is None or start + size > end:
                    break
                yield buf[start : start + size]
                pos = start + size
            buf = buf[pos:]
        if buf:
            raise ValueError(f"{path}: the last record is truncated ({len(buf)} bytes left)")
