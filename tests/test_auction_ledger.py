"""Ledger invariants under generated sequences of sales, issues, refusals and returns."""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendgate.auction.books import entry_row, load_ledger
from lendgate.auction.ledger import EntryType, Ledger, Posting
from lendgate.cli import main
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


PERIODS = [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0)]
AFTER = (40.0, 50.0)
late_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("book"),
            st.floats(0, 39.9),
            st.sampled_from(ACCOUNTS),
            st.sampled_from(ACCOUNTS),
            st.integers(1, 10**6),
        ),
        st.tuples(st.just("settle"), st.integers(0, len(PERIODS) - 1)),
    ),
    max_size=40,
)


@given(late_ops)
def test_entries_booked_into_settled_periods_are_carried_once(
    sequence: list[tuple],  # type: ignore[type-arg]
) -> None:
    ledger = Ledger()
    for op in sequence:
        if op[0] == "book":
            _, t, payer, payee, amount = op
            if payer != payee:
                ledger.book(
                    EntryType.LEAD_PRICE,
                    "RUB",
                    [Posting(payee, amount), Posting(payer, -amount)],
                    post_time=t,
                )
        else:
            start, end = PERIODS[op[1]]
            first = ledger.settle(start, end, "RUB")
            assert ledger.settle(start, end, "RUB") == first  # idempotent
            assert ledger.settlement(start, end, "RUB") == first
    finals = [ledger.settle(start, end, "RUB") for start, end in [*PERIODS, AFTER]]
    business = [e for e in ledger.repository.entries() if e.type is not EntryType.SETTLEMENT]
    for e in business:
        # Every entry is settled exactly once: in its period, or carried as an adjustment.
        assert sum(f.covers(e) for f in finals) == 1, e
    for f in finals:
        assert sum(f.nets.values()) == 0
        covered = [e for e in business if f.covers(e)]
        nets: dict[str, int] = {}
        for e in covered:
            for p in e.postings:
                nets[p.account] = nets.get(p.account, 0) + p.amount_minor
        assert {a: n for a, n in f.nets.items() if n} == {a: n for a, n in nets.items() if n}
        # Adjustments come only from earlier periods.
        assert all(
            next(e for e in business if e.sequence == n).post_time < f.start for n in f.adjustments
        )


def test_settle_carries_a_late_entry_into_the_next_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lendgate settle`` over the store: an entry booked into a settled day goes into
    the next day's settlement as an adjustment; the settled day stays as it was."""
    day = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
    url = f"sqlite:///{tmp_path / 'books.db'}"
    ledger = Ledger()

    def book(t: float, amount: int) -> None:
        ledger.book(
            EntryType.LEAD_PRICE,
            "RUB",
            [Posting("participants/a", amount), Posting("participants/b", -amount)],
            post_time=t,
        )
        store = open_store(url)
        try:
            asyncio.run(store.append_auction_entries([entry_row(ledger.repository.entries()[-1])]))
        finally:
            store.close()

    def settle(period: str) -> dict[str, object]:
        assert main(["settle", "--period", period, "--database-url", url]) == 0
        out: dict[str, object] = json.loads(capsys.readouterr().out)
        return out

    book(day + 3600, 1_000)
    first = settle("2026-11-02")
    assert first["nets"] == {"participants/a": 1_000, "participants/b": -1_000}
    book(day + 7200, 250)  # late: into 2026-11-02, already settled
    book(day + 86400 + 60, 40)  # the next day's own business
    assert settle("2026-11-02") == {**first, "created": False}  # not reopened
    second = settle("2026-11-03")
    assert second["adjustments"] == [2]
    assert second["nets"] == {"participants/a": 290, "participants/b": -290}
    assert second["sum_of_nets"] == 0
    assert settle("2026-11-03") == {**second, "created": False}  # idempotent
    # Carried once: a later period does not see it again.
    third = settle("2026-11-04")
    assert third["adjustments"] == [] and third["nets"] == {}
