"""The auction's books in the store (both backends): deals and the ledger survive a
coordinator restart; ``lendgate settle`` settles a period once, its nets sum to zero,
and the coordinator adopts it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lendgate.auction import reports
from lendgate.auction.coordinator import Coordinator
from lendgate.auction.ledger import EntryType
from lendgate.cli import main
from lendgate.store import open_store
from lendgate.v1 import auction_pb2 as pb
from tests.auction_net import start_net
from tests.test_auction_reports import PRICES, trade
from tests.test_store import database_url, settings_for

__all__ = ["database_url"]  # the fixture, both backends


def settle(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    today = datetime.now(UTC).date()
    period = f"{today - timedelta(days=1)}/{today + timedelta(days=2)}"
    assert main(["settle", "--period", period, "--database-url", url]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_books_survive_a_restart_and_settlement_is_final_once(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def first_life() -> tuple[dict[str, pb.Deal], dict[str, int]]:
        store = open_store(None, settings_for(database_url))
        net = await start_net(store=store)
        try:
            for pid, table in PRICES.items():
                await net.add_node(pid, table)
            await trade(net)
            await net.coordinator.sync_books()
            ledger = net.coordinator.ledger
            accounts = {p.account for e in ledger.repository.entries() for p in e.postings}
            balances = {a: ledger.balance(a, "RUB") for a in accounts}
            return dict(net.coordinator.deals), balances
        finally:
            await net.close()
            await store.aclose()

    deals, balances = asyncio.run(first_life())
    assert len(deals) == 4 and sum(balances.values()) == 0

    first = settle(database_url, capsys)
    assert first["created"] is True and first["sum_of_nets"] == 0
    assert first["nets"] == {a: n for a, n in balances.items() if n}
    again = settle(database_url, capsys)
    assert again["created"] is False and again["transfers"] == first["transfers"]

    async def second_life() -> None:
        store = open_store(None, settings_for(database_url))
        try:
            coordinator = Coordinator(store=store)
            # Deals (with their status history) and the ledger came back as they were.
            assert coordinator.deals == deals
            ledger = coordinator.ledger
            assert {a: ledger.balance(a, "RUB") for a in balances} == balances
            # The settlement made meanwhile is adopted once: every position is closed.
            await coordinator.sync_books()
            await coordinator.sync_books()
            settlements = [e for e in ledger.repository.entries() if e.type is EntryType.SETTLEMENT]
            assert len(settlements) == len(first["transfers"])  # type: ignore[arg-type]
            assert all(ledger.balance(a, "RUB") == 0 for a in balances)
            s = ledger.settlement(*_period(first), "RUB")
            assert s.final
            view = reports.settlement_proto(s, "participants/seller")
            assert view.state == pb.SETTLEMENT_STATE_FINAL and view.name
        finally:
            await store.aclose()
        # A third start finds the adopted settlement and books nothing more.
        store = open_store(None, settings_for(database_url))
        try:
            coordinator = Coordinator(store=store)
            before = len(coordinator.ledger.repository.entries())
            await coordinator.sync_books()
            assert len(coordinator.ledger.repository.entries()) == before
        finally:
            await store.aclose()

    asyncio.run(second_life())


def _period(settlement: dict[str, object]) -> tuple[float, float]:
    start = datetime.fromisoformat(str(settlement["start"])).timestamp()
    end = datetime.fromisoformat(str(settlement["end"])).timestamp()
    return start, end


def test_settle_refuses_a_bad_period(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settle", "--period", "2026-13", "--data-dir", str(tmp_path)]) == 2
    assert "lendgate settle:" in capsys.readouterr().err
    assert main(["settle", "--period", "2026-11-02/2026-11-01", "--data-dir", str(tmp_path)]) == 2
