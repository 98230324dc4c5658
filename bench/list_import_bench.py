"""Bulk load of a list over gRPC: ``ImportListEntries`` with 1,000,000 entries.

Run: ``.venv/bin/python -m bench.list_import_bench [--entries N] [--database-url URL]``.

An in-process server (the real servicer, handlers and store) on a fresh SQLite file
(or the given database); the client streams N tax-id entries in messages of 10,000,
and the script reports the wall time of the whole call (the stream; the Rust staging:
decoding, normalisation, de-duplication, the next content built; the store transaction
that makes the new list version; the swap), then the time a restarted service takes to
load the list back. Figures: bench/RESULTS.md, "Bulk list import".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator

from lendgate.scoring import ScoringService
from lendgate.store import StoreSettings, open_store
from lendgate.v1 import rules_pb2, rules_pb2_grpc
from servers.rule_admin import RuleAdminServicer
from tests.test_server import serve_in_process

MD = (("x-lendgate-partner", "bench"),)
CHUNK = 10_000


async def run(url: str, entries: int) -> None:
    """Import ``entries`` values into a new list and load them back."""
    settings = StoreSettings(database_url=url, retention_interval_s=0)
    store = await asyncio.to_thread(open_store, None, settings)
    try:
        service = ScoringService(store)
        await service.recover()
        servicers: dict[str, object] = {"lendgate.v1.RuleAdminService": RuleAdminServicer(service)}
        async with serve_in_process(servicers) as ch:
            stub = rules_pb2_grpc.RuleAdminServiceStub(ch)
            await stub.CreateList(
                rules_pb2.CreateListRequest(
                    list_id="bulk",
                    list=rules_pb2.List(
                        type=rules_pb2.LIST_TYPE_BLACK,
                        entry_kind=rules_pb2.LIST_ENTRY_KIND_TAX_ID,
                    ),
                ),
                metadata=MD,
            )
            chunks = [
                [
                    rules_pb2.ListEntry(value=f"{7_700_000_000 + i}")
                    for i in range(start, min(start + CHUNK, entries))
                ]
                for start in range(0, entries, CHUNK)
            ]

            async def stream() -> AsyncIterator[rules_pb2.ImportListEntriesRequest]:
                for i, chunk in enumerate(chunks):
                    yield rules_pb2.ImportListEntriesRequest(
                        name="lists/bulk" if i == 0 else "", entries=chunk
                    )

            started = time.perf_counter()
            response: rules_pb2.ImportListEntriesResponse = await stub.ImportListEntries(
                stream(), metadata=MD, timeout=600
            )
            elapsed = time.perf_counter() - started
            assert response.list.entry_count == entries, response.list
            print(
                f"ImportListEntries: {entries:,} entries in {elapsed:.2f} s"
                f" ({entries / elapsed:,.0f} entries/s), list version {response.list.version}"
            )
    finally:
        await store.aclose()

    store = await asyncio.to_thread(open_store, None, settings)
    try:
        started = time.perf_counter()
        service = ScoringService(store)
        await service.admin.load()
        elapsed = time.perf_counter() - started
        loaded = service.admin.lists("").entry_count("bulk")
        print(f"load after restart: {loaded:,} entries in {elapsed:.2f} s")
    finally:
        await store.aclose()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        asyncio.run(run(url, args.entries))


if __name__ == "__main__":
    main()
