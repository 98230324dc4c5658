"""Ledger invariants under generated sequences of sales, issues, refusals and returns."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lendgate.auction.ledger import EntryType, Ledger

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


@given(ops)
def test_every_entry_balances_and_settlement_nets_to_zero(
    sequence: list[tuple[str, str, str, int]],
) -> None:
    ledger = Ledger()
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
