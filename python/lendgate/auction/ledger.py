"""The double-entry, append-only ledger of the auction and the settlement of a period.

Amounts are integers in minor units. Every entry has at least two postings summing to
zero (positive = the account is owed it); corrections are reversing entries, never
edits. Storage sits behind :class:`LedgerRepository` so the store branch can plug in
SQLite or PostgreSQL; :class:`InMemoryLedgerRepository` serves now.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


class EntryType(Enum):
    """Kinds of entries (``lendgate.v1.LedgerEntryType`` without the prefix)."""

    LEAD_PRICE = 1
    COMMISSION = 2
    CPA_PAYOUT = 3
    REFUSAL_FEE = 4
    REVERSAL = 5
    SETTLEMENT = 6


class UnbalancedEntryError(ValueError):
    """An entry whose postings do not sum to zero, or with fewer than two postings."""


@dataclass(frozen=True)
class Posting:
    """One leg: ``amount_minor`` > 0 means ``account`` is owed it, < 0 that it owes it."""

    account: str
    amount_minor: int


@dataclass(frozen=True)
class Entry:
    """A booked entry."""

    sequence: int
    type: EntryType
    currency: str
    postings: tuple[Posting, ...]
    deal: str = ""
    reverses: int = 0
    description: str = ""
    post_time: float = 0.0


class LedgerRepository(Protocol):
    """Append-only storage of entries."""

    def append(self, entry: Entry) -> Entry:
        """Store ``entry`` with the next gap-free sequence number and return it."""
        ...

    def entries(self) -> list[Entry]:
        """All entries in sequence order."""
        ...


@dataclass
class InMemoryLedgerRepository:
    """A :class:`LedgerRepository` in a list (one process, lost on exit)."""

    _entries: list[Entry] = field(default_factory=list)

    def append(self, entry: Entry) -> Entry:
        """Store ``entry`` with the next sequence number."""
        stored = Entry(
            len(self._entries) + 1,
            entry.type,
            entry.currency,
            entry.postings,
            entry.deal,
            entry.reverses,
            entry.description,
            entry.post_time,
        )
        self._entries.append(stored)
        return stored

    def entries(self) -> list[Entry]:
        """All entries in sequence order."""
        return list(self._entries)


@dataclass(frozen=True)
class Transfer:
    """A settling payment between two accounts (amount > 0)."""

    from_account: str
    to_account: str
    amount_minor: int


@dataclass(frozen=True)
class Settlement:
    """Net positions and pairwise transfers of a period in one currency."""

    start: float
    end: float
    currency: str
    nets: dict[str, int]
    receivable: dict[str, int]
    payable: dict[str, int]
    transfers: tuple[Transfer, ...]
    last_sequence: int
    final: bool
    adjustments: tuple[int, ...] = ()
    """Sequences of entries carried in from earlier periods that were already settled
    when they were booked into them (see :meth:`Ledger.settlement`)."""

    def covers(self, entry: Entry) -> bool:
        """Whether this (final) settlement settled ``entry``."""
        if entry.currency != self.currency:
            return False
        in_period = self.start <= entry.post_time < self.end
        return (in_period and entry.sequence <= self.last_sequence) or (
            entry.sequence in self.adjustments
        )


class Ledger:
    """Books balanced entries and settles periods."""

    def __init__(self, repository: LedgerRepository | None = None) -> None:
        self.repository: LedgerRepository = repository or InMemoryLedgerRepository()
        self._final: dict[tuple[float, float, str], Settlement] = {}

    def book(
        self,
        kind: EntryType,
        currency: str,
        postings: list[Posting],
        *,
        deal: str = "",
        reverses: int = 0,
        description: str = "",
        post_time: float | None = None,
    ) -> Entry:
        """Append one entry; raises :class:`UnbalancedEntryError` unless it balances."""
        if len(postings) < 2 or sum(p.amount_minor for p in postings) != 0:
            raise UnbalancedEntryError(f"{kind.name} entry does not balance: {postings}")
        if any(p.amount_minor == 0 for p in postings):
            raise UnbalancedEntryError("a posting of zero")
        entry = Entry(
            0,
            kind,
            currency,
            tuple(postings),
            deal,
            reverses,
            description,
            # Whole microseconds, the store's resolution: an entry reads back identical.
            time.time_ns() // 1000 / 1e6 if post_time is None else post_time,
        )
        return self.repository.append(entry)

    def transfer(
        self,
        kind: EntryType,
        currency: str,
        payer: str,
        payee: str,
        amount: int,
        *,
        deal: str = "",
        description: str = "",
    ) -> Entry | None:
        """Book ``payer`` owes ``payee`` ``amount``; nothing for a zero amount."""
        if amount == 0:
            return None
        postings = [Posting(payee, amount), Posting(payer, -amount)]
        return self.book(kind, currency, postings, deal=deal, description=description)

    def reverse_deal(self, deal: str, description: str) -> list[Entry]:
        """Book a reversal of every not yet reversed entry of ``deal``."""
        entries = [e for e in self.repository.entries() if e.deal == deal]
        reversed_ = {e.reverses for e in entries if e.type is EntryType.REVERSAL}
        out = []
        for e in entries:
            if e.type is EntryType.REVERSAL or e.sequence in reversed_:
                continue
            postings = [Posting(p.account, -p.amount_minor) for p in e.postings]
            out.append(
                self.book(
                    EntryType.REVERSAL,
                    e.currency,
                    postings,
                    deal=deal,
                    reverses=e.sequence,
                    description=description,
                )
            )
        return out

    def balance(self, account: str, currency: str) -> int:
        """Sum of the account's postings in ``currency`` (positive = owed to it)."""
        return sum(
            p.amount_minor
            for e in self.repository.entries()
            if e.currency == currency
            for p in e.postings
            if p.account == account
        )

    def settlement(self, start: float, end: float, currency: str) -> Settlement:
        """The settlement of ``[start, end)``: the final one if settled, else provisional.

        An entry booked into a period after that period was settled (its post time in
        the period, its sequence after the settlement's last one) is not lost and the
        settled period is not reopened: like a bank's late booking, it is carried into
        the next settlement of a later period as an adjustment (``adjustments``), once.
        """
        key = (start, end, currency)
        if key in self._final:
            return self._final[key]
        return self._compute(start, end, currency, final=False)

    def settle(self, start: float, end: float, currency: str) -> Settlement:
        """Settle the period once: book one SETTLEMENT entry per transfer; idempotent."""
        return self.adopt(self.final_settlement(start, end, currency))

    def final_settlement(self, start: float, end: float, currency: str) -> Settlement:
        """The period's final settlement: the one adopted already, or computed now without
        booking anything (``lendgate settle`` stores it; the coordinator adopts it)."""
        key = (start, end, currency)
        if key in self._final:
            return self._final[key]
        return self._compute(start, end, currency, final=True)

    def is_settled(self, start: float, end: float, currency: str) -> bool:
        """Whether the period has a final settlement."""
        return (start, end, currency) in self._final

    def restore_final(self, settlement: Settlement) -> None:
        """Mark a settlement final whose SETTLEMENT entries are already in the ledger."""
        self._final[(settlement.start, settlement.end, settlement.currency)] = settlement

    def adopt(self, result: Settlement) -> Settlement:
        """Book a final settlement's transfers as SETTLEMENT entries, once per period."""
        key = (result.start, result.end, result.currency)
        if key in self._final:
            return self._final[key]
        start, end, currency = key
        for t in result.transfers:
            self.transfer(
                EntryType.SETTLEMENT,
                currency,
                payer=t.to_account,
                payee=t.from_account,
                amount=t.amount_minor,
                description=f"settlement {start:.0f}-{end:.0f}",
            )
        self._final[key] = result
        return result

    def _compute(self, start: float, end: float, currency: str, *, final: bool) -> Settlement:
        nets: dict[str, int] = defaultdict(int)
        receivable: dict[str, int] = defaultdict(int)
        payable: dict[str, int] = defaultdict(int)
        pair: dict[tuple[str, str], int] = defaultdict(int)
        last = 0
        finals = [s for s in self._final.values() if s.currency == currency]
        adjustments = []
        for e in self.repository.entries():
            place = _place(e, start, end, currency, finals)
            if place is None:
                continue
            if place == "period":
                last = max(last, e.sequence)
            else:
                adjustments.append(e.sequence)
            for p in e.postings:
                nets[p.account] += p.amount_minor
                if p.amount_minor > 0:
                    receivable[p.account] += p.amount_minor
                else:
                    payable[p.account] -= p.amount_minor
            creditors = [p for p in e.postings if p.amount_minor > 0]
            debtors = [p for p in e.postings if p.amount_minor < 0]
            # Entries here are two-legged (payer -> payee); pair flows follow directly.
            if len(creditors) == 1 and len(debtors) == 1:
                a, b = sorted((creditors[0].account, debtors[0].account))
                sign = 1 if creditors[0].account == a else -1
                pair[(a, b)] += sign * creditors[0].amount_minor
        transfers = []
        for (a, b), owed_to_a in sorted(pair.items()):
            if owed_to_a > 0:
                transfers.append(Transfer(b, a, owed_to_a))
            elif owed_to_a < 0:
                transfers.append(Transfer(a, b, -owed_to_a))
        return Settlement(
            start,
            end,
            currency,
            dict(nets),
            dict(receivable),
            dict(payable),
            tuple(transfers),
            last,
            final,
            tuple(adjustments),
        )


def _place(
    e: Entry, start: float, end: float, currency: str, finals: list[Settlement]
) -> str | None:
    """Where ``e`` goes in the settlement of ``[start, end)``: "period" (its own
    business), "adjustment" (booked late into an earlier, settled period), or None."""
    # Settlement entries close earlier periods; they are not business to settle.
    if e.type is EntryType.SETTLEMENT or e.currency != currency:
        return None
    if any(f.covers(e) for f in finals):
        return None
    if start <= e.post_time < end:
        return "period"
    if e.post_time < start and any(f.start <= e.post_time < f.end for f in finals):
        return "adjustment"
    return None
