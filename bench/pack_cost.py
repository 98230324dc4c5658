"""What the shared-key parameters cost per check: ``.venv/bin/python -m bench.pack_cost``.

Replays one generated history through the Rust scorer's ``score`` call (no model) twice,
alternating per event: once with the default pack as shipped and once with the pack
without the parameters the models branch added (the ``DeviceId``, ``ClientIp`` and
``RegistrationAddress`` objects, the ``EmployerINN.applicantPassports`` element and their
parameters). Each variant has its own aggregate state, fed the same events. Reported:
the thread CPU time of the call per event (p50, mean) — CPU time, not wall time, so the
other processes on a shared machine move it little.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lendgate import _core
from lendgate.aggregates import AggregateStore
from lendgate.datagen import GenConfig, Generator, read_events, write_events
from lendgate.lists import Lists
from lendgate.rules import InMemoryRuleRepository, RuleBook
from lendgate.scoring.backtest import HistoryItem, _score
from lendgate.scoring.pack import install, load_pack
from lendgate.v1 import scoring_pb2 as s

ADDED_OBJECTS = {"DeviceId", "ClientIp", "RegistrationAddress"}
ADDED_ELEMENTS = {("EmployerINN", "applicantPassports")}


def without_added(aggregates: dict[str, Any]) -> dict[str, Any]:
    """The pack's aggregate definitions without the models branch's additions."""
    out = copy.deepcopy(aggregates)
    out["objects"] = [o for o in out["objects"] if o["name"] not in ADDED_OBJECTS]
    for o in out["objects"]:
        o["elements"] = [e for e in o["elements"] if (o["name"], e["name"]) not in ADDED_ELEMENTS]
    out["params"] = [
        p
        for p in out["params"]
        if p.get("object") not in ADDED_OBJECTS
        and (p.get("object"), p.get("element")) not in ADDED_ELEMENTS
    ]
    return out


class _Variant:
    def __init__(self, aggregates: dict[str, Any]) -> None:
        pack = load_pack()
        book, self.lists = RuleBook(InMemoryRuleRepository()), Lists()
        install(pack, book, self.lists)
        self.rules = book.compile(pack.zone_threshold)
        self.scorer = _core.Scorer({})
        self.store = AggregateStore(aggregates)
        self.index = _core.MatchIndex()
        self.params = len(aggregates["params"])
        self.cpu_us: list[float] = []

    def check(self, item: HistoryItem) -> None:
        t = time.thread_time_ns()
        _score(
            self.scorer,
            item,
            ruleset=self.rules,
            lists=self.lists,
            store=self.store,
            index=self.index,
            model=None,
        )
        self.cpu_us.append((time.thread_time_ns() - t) / 1000)


def main() -> None:
    """Generate, replay twice, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--applicants", type=int, default=4000)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args()
    pack = load_pack()
    shipped, before = _Variant(pack.aggregates), _Variant(without_added(pack.aggregates))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "events.jsonl"
        config = GenConfig(seed=5, applicants=args.applicants, days=args.days)
        write_events(Generator(config), data, progress=False)
        for n, record in enumerate(read_events(data, kinds=("application",))):
            m = record.message
            assert isinstance(m, s.ApplicationEvent)
            payload = s.CheckApplicationRequest(
                request_id=f"c-{n}", application=m
            ).SerializeToString()
            item = HistoryItem(
                int(record.time) * 1_000_000,
                n,
                "application",
                m.partner_id,
                f"application:{m.application_id}",
                payload,
            )
            first, second = (shipped, before) if n % 2 else (before, shipped)
            first.check(item)
            second.check(item)
    print(f"{len(shipped.cpu_us)} application checks each (thread CPU time of `score`)")
    print("| pack | parameters | p50 µs | mean µs |")
    print("| --- | ---: | ---: | ---: |")
    for label, v in (("without the shared-key additions", before), ("as shipped", shipped)):
        p50, mean = statistics.median(v.cpu_us), statistics.fmean(v.cpu_us)
        print(f"| {label} | {v.params} | {p50:.1f} | {mean:.1f} |")


if __name__ == "__main__":
    main()
