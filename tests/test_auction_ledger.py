"""Ledger invariants under generated sequences of sales, issues, refusals and returns."""

from __future__ import annotations

import asyncio
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from lendgate.auction.books import entry_row, load_ledger
from lendgate.auction.ledger import EntryType, Ledger
from lendgate.store import open_store
from tests.test_store import settings_for

ACCOUNTS = ["participants/a", "participants/b", "participants/c"]
ops = st.lists(
    st.tuples(
        st.sampled_from(["sale", "issued", "refused", "return"]),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(ACCOUNTS),
        st.integers(1, 10**9),
    ),
    max_size=40,
)


def book(ledger: Ledger, sequence: list[tuple[str, str, str, int]]) -> None:
    """Book a generated sequence of sales, issued loans, refusals and returns."""
    for n, (op, buyer, seller, amount) in enumerate(sequence):
        if buyer == seller:
            continue
        deal = f"deals/{n}"
        if op == "sale":
            ledger.transfer(EntryType.LEAD_PRICE, "RUB", buyer, seller, amount, deal=deal)
            ledger.transfer(
                EntryType.COMMISSION, "RUB", seller, "platform", amount // 10, deal=deal
            )
        elif op == "issued":
            ledger.transfer(EntryType.CPA_PAYOUT, "RUB", buyer, seller, amount, deal=deal)
        elif op == "refused":
            ledger.transfer(EntryType.REFUSAL_FEE, "RUB", buyer, seller, amount, deal=deal)
        else:
            ledger.transfer(EntryType.LEAD_PRICE, "RUB", buyer, seller, amount, deal=deal)
            ledger.reverse_deal(deal, "returned")
            assert ledger.reverse_deal(deal, "again") == []


@given(ops)
def test_every_entry_balances_and_settlement_nets_to_zero(
    sequence: list[tuple[str, str, str, int]],
) -> None:
    ledger = Ledger()
    book(ledger, sequence)
    entries = ledger.repository.entries()
    assert [e.sequence for e in entries] == list(range(1, len(entries) + 1))
    assert all(sum(p.amount_minor for p in e.postings) == 0 for e in entries)
    settlement = ledger.settle(0, 1e12, "RUB")
    assert sum(settlement.nets.values()) == 0
    for account, net in settlement.nets.items():
        paid = sum(t.amount_minor for t in settlement.transfers if t.from_account == account)
        got = sum(t.amount_minor for t in settlement.transfers if t.to_account == account)
        assert got - paid == net
    assert ledger.settle(0, 1e12, "RUB") is settlement
    after = ledger.settlement(0, 1e12, "RUB")
    assert after is settlement
    assert all(ledger.balance(a, "RUB") == 0 for a in [*ACCOUNTS, "platform"])


@settings(max_examples=15, deadline=None)
@given(ops)
def test_the_stored_ledger_reads_back_the_same_and_settles_the_same(
    sequence: list[tuple[str, str, str, int]],
) -> None:
    ledger = Ledger()
    book(ledger, sequence)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(None, settings_for(f"sqlite:///{tmp}/books.db"))
        try:
            rows = [entry_row(e) for e in ledger.repository.entries()]
            asyncio.run(store.append_auction_entries(rows))
            asyncio.run(store.append_auction_entries(rows[:3]))  # a retried batch: no-op
            loaded, _, _ = load_ledger(store)
        finally:
            store.close()
    assert loaded.repository.entries() == ledger.repository.entries()
    assert loaded.final_settlement(0, 1e12, "RUB") == ledger.final_settlement(0, 1e12, "RUB")
