"""The auction's books in the store: deals, the ledger and final settlements; and the
coordinator's participants, auctions and public keys (migration 0008).

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
import time
from collections import deque
from dataclasses import dataclass

from lendgate.auction.ledger import (
    Entry,
    EntryType,
    InMemoryLedgerRepository,
    Ledger,
    Posting,
    Settlement,
    Transfer,
)
from lendgate.auction.records import AuctionRecord, record_from_json, record_json
from lendgate.store import Store
from lendgate.store.interface import (
    AuctionDealRow,
    AuctionKeyRow,
    AuctionLedgerRow,
    AuctionParticipantRow,
    AuctionRow,
    AuctionStateRow,
)
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
            "adjustments": list(s.adjustments),
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
        tuple(int(n) for n in d.get("adjustments", ())),
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
    for s in settlements.values():
        ledger.restore_final(s)  # what they settled is not settled again
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


@dataclass
class Restored:
    """What the coordinator finds in the store on start."""

    ledger: Ledger
    deals: dict[str, pb.Deal]
    participants: dict[str, pb.Participant]
    auctions: list[AuctionRecord]
    """By open time."""
    signing_keys: list[bytes]
    """Every coordinator signing key used so far, oldest first."""


def participant_row(p: pb.Participant) -> AuctionParticipantRow:
    """A participant as stored."""
    return AuctionParticipantRow(
        p.name, p.state, p.update_time.ToMicroseconds(), p.SerializeToString(deterministic=True)
    )


def auction_row(record: AuctionRecord) -> AuctionRow:
    """An auction as stored."""
    return AuctionRow(
        record.name,
        record.seller,
        record.state,
        round(record.open_time * 1e6),
        time.time_ns() // 1000,
        record_json(record),
    )


class Books:
    """The coordinator's persistence: restore on start, write-behind while running.

    Rows are written in the order they were queued, each batch in one transaction, so
    the store always holds a prefix of what the coordinator did: never a ledger entry
    without its deal, never a deal without the stored auction decision it came from.
    """

    MAX_BATCH = 2000

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: deque[AuctionStateRow] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._adopted: set[str] = set()
        self._queued = 0
        self._written = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._started = False

    def restore(self) -> Restored:
        """Everything stored, the ledger journaled to the store from now on.
        Settlements made while the coordinator was down are adopted by :meth:`sync`."""
        books = self.store.auction_books_blocking()
        ledger = Ledger(_Journal([entry_from_row(r) for r in books.entries], self))
        for sid, text in books.settlements.items():
            s = settlement_from_json(text)
            settled = any(
                e.type is EntryType.SETTLEMENT
                and e.currency == s.currency
                and e.description == _description(s)
                for e in ledger.repository.entries()
            )
            if settled:
                ledger.restore_final(s)
                self._adopted.add(sid)
        return Restored(
            ledger,
            {r.deal_name: pb.Deal.FromString(r.payload) for r in books.deals},
            {r.name: pb.Participant.FromString(r.payload) for r in books.participants},
            [record_from_json(r.payload) for r in books.auctions],
            [k.signing_public_key for k in books.keys],
        )

    def queue(self, row: AuctionStateRow) -> None:
        """Queue a write; starts the writer task if it is not running (and a loop is)."""
        self._pending.append(row)
        self._queued += 1
        self._kick()

    def _kick(self) -> None:
        # Nothing is written before the coordinator starts (or someone flushes): a start
        # that fails after construction (e.g. the port is taken) leaves the store alone.
        if not self._started:
            return
        if self._pending and (self._writer is None or self._writer.done()):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop yet: the next flush() kicks it
            self._writer = loop.create_task(self._drain())

    def deal_changed(self, deal: pb.Deal) -> None:
        """Queue a deal's new state."""
        self.queue(deal_row(deal))

    def participant_changed(self, participant: pb.Participant) -> None:
        """Queue a participant's new state."""
        self.queue(participant_row(participant))

    def auction_changed(self, record: AuctionRecord) -> None:
        """Queue an auction's new state (opened, decided)."""
        self.queue(auction_row(record))

    def key_used(self, signing_public: bytes, encryption_public: bytes) -> None:
        """Queue the coordinator's public keys (kept once, with their first use)."""
        self.queue(AuctionKeyRow(signing_public, encryption_public, time.time_ns() // 1000))

    async def _drain(self) -> None:
        while self._pending:
            batch = [self._pending[i] for i in range(min(len(self._pending), self.MAX_BATCH))]
            try:
                await self.store.write_auction_state(batch)
            except Exception:
                log.exception("cannot write the auction state; retrying")
                await asyncio.sleep(RETRY_S)
                continue
            for _ in batch:
                self._pending.popleft()
            self._written += len(batch)
            still = []
            for target, waiter in self._waiters:
                if target <= self._written:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    still.append((target, waiter))
            self._waiters = still

    async def flush(self) -> None:
        """Wait until everything queued so far is in the store (not what is queued later)."""
        self._started = True
        target = self._queued
        if self._written >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._kick()
        await waiter

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
