"""The auction's books in the store: deals, the ledger and final settlements.

The coordinator books on its event loop and must not wait for the database on the
auction path, so its entries and deal changes go to the store *write-behind*, in the
order they were made, by one writer task (a failed write is retried, never dropped).
Readers that must see everything (the ledger and settlement RPCs) ``flush()`` first. On
start the coordinator restores its deals, its ledger and the final settlements.

Final settlements are made by ``lendgate settle`` (another process) straight in the
store; the coordinator adopts each new one once (booking its SETTLEMENT entries) the
next time someone reads the ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque

from lendgate.auction.ledger import (
    Entry,
    EntryType,
    InMemoryLedgerRepository,
    Ledger,
    Posting,
    Settlement,
    Transfer,
)
from lendgate.store import Store
from lendgate.store.interface import AuctionDealRow, AuctionLedgerRow
from lendgate.v1 import auction_pb2 as pb

log = logging.getLogger("lendgate.auction.books")

RETRY_S = 1.0


def settlement_id(s: Settlement) -> str:
    """Stable id of a period's settlement: ``{currency}-{start}-{end}`` (epoch seconds)."""
    return f"{s.currency}-{int(s.start)}-{int(s.end)}"


def settlement_json(s: Settlement) -> str:
    """A final settlement as stored."""
    return json.dumps(
        {
            "start": s.start,
            "end": s.end,
            "currency": s.currency,
            "nets": s.nets,
            "receivable": s.receivable,
            "payable": s.payable,
            "transfers": [[t.from_account, t.to_account, t.amount_minor] for t in s.transfers],
            "last_sequence": s.last_sequence,
        },
        sort_keys=True,
    )


def settlement_from_json(text: str) -> Settlement:
    """Inverse of :func:`settlement_json`."""
    d = json.loads(text)
    return Settlement(
        float(d["start"]),
        float(d["end"]),
        d["currency"],
        {k: int(v) for k, v in d["nets"].items()},
        {k: int(v) for k, v in d["receivable"].items()},
        {k: int(v) for k, v in d["payable"].items()},
        tuple(Transfer(a, b, int(n)) for a, b, n in d["transfers"]),
        int(d["last_sequence"]),
        True,
    )


def entry_row(e: Entry) -> AuctionLedgerRow:
    """A ledger entry as stored."""
    return AuctionLedgerRow(
        e.sequence,
        e.type.name,
        e.currency,
        e.deal,
        e.reverses,
        e.description,
        round(e.post_time * 1e6),
        json.dumps([[p.account, p.amount_minor] for p in e.postings]),
    )


def entry_from_row(r: AuctionLedgerRow) -> Entry:
    """Inverse of :func:`entry_row`."""
    return Entry(
        r.sequence,
        EntryType[r.entry_type],
        r.currency,
        tuple(Posting(a, int(n)) for a, n in json.loads(r.postings)),
        r.deal,
        r.reverses,
        r.description,
        r.post_time_us / 1e6,
    )


def deal_row(deal: pb.Deal) -> AuctionDealRow:
    """A deal as stored."""
    return AuctionDealRow(
        deal.name,
        deal.auction,
        deal.seller,
        deal.buyer,
        deal.create_time.ToMicroseconds(),
        deal.update_time.ToMicroseconds(),
        deal.SerializeToString(deterministic=True),
    )


def load_ledger(store: Store) -> tuple[Ledger, dict[str, pb.Deal], dict[str, Settlement]]:
    """Read the books (blocking): the ledger with its final settlements, and the deals."""
    books = store.auction_books_blocking()
    repository = InMemoryLedgerRepository([entry_from_row(r) for r in books.entries])
    ledger = Ledger(repository)
    settlements = {k: settlement_from_json(v) for k, v in books.settlements.items()}
    deals = {r.deal_name: pb.Deal.FromString(r.payload) for r in books.deals}
    return ledger, deals, settlements


class _Journal(InMemoryLedgerRepository):
    """The in-memory ledger that also queues every new entry for the store."""

    def __init__(self, entries: list[Entry], books: Books) -> None:
        super().__init__(entries)
        self._books = books

    def append(self, entry: Entry) -> Entry:
        stored = super().append(entry)
        self._books.queue(entry_row(stored))
        return stored


class Books:
    """The coordinator's persistence: restore on start, write-behind while running."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: deque[AuctionLedgerRow | AuctionDealRow] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._adopted: set[str] = set()

    def restore(self) -> tuple[Ledger, dict[str, pb.Deal]]:
        """The ledger (journaled to the store from now on) and the deals, as stored.
        Settlements made while the coordinator was down are adopted by :meth:`sync`."""
        loaded, deals, settlements = load_ledger(self.store)
        ledger = Ledger(_Journal(loaded.repository.entries(), self))
        for sid, s in settlements.items():
            settled = any(
                e.type is EntryType.SETTLEMENT
                and e.currency == s.currency
                and e.description == _description(s)
                for e in ledger.repository.entries()
            )
            if settled:
                ledger.restore_final(s)
                self._adopted.add(sid)
        return ledger, deals

    def queue(self, row: AuctionLedgerRow | AuctionDealRow) -> None:
        """Queue a write; starts the writer task if it is not running."""
        self._pending.append(row)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def deal_changed(self, deal: pb.Deal) -> None:
        """Queue a deal's new state."""
        self.queue(deal_row(deal))

    async def _drain(self) -> None:
        while self._pending:
            head = self._pending[0]
            try:
                if isinstance(head, AuctionDealRow):
                    await self.store.put_auction_deal(head)
                    self._pending.popleft()
                else:
                    batch = []
                    for row in self._pending:
                        if not isinstance(row, AuctionLedgerRow):
                            break
                        batch.append(row)
                    await self.store.append_auction_entries(batch)
                    for _ in batch:
                        self._pending.popleft()
            except Exception:
                log.exception("cannot write the auction books; retrying")
                await asyncio.sleep(RETRY_S)

    async def flush(self) -> None:
        """Wait until everything booked so far is in the store."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def sync(self, ledger: Ledger) -> None:
        """Flush, then adopt final settlements made by ``lendgate settle`` since."""
        await self.flush()
        for sid, text in sorted((await self.store.auction_settlements()).items()):
            if sid not in self._adopted:
                ledger.adopt(settlement_from_json(text))
                self._adopted.add(sid)
        await self.flush()


def _description(s: Settlement) -> str:
    return f"settlement {s.start:.0f}-{s.end:.0f}"
