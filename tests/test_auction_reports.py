"""Ledger, settlement and metrics RPCs of the coordinator over real gRPC: each participant
reads only its own account, positions, transfers and metrics."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from lendgate.errors import InvalidArgumentError, PermissionDeniedError
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import common_pb2
from lendgate.v1 import participant_pb2 as ppb
from tests.auction_net import Net
from tests.test_auction import run, sell_request, settle_notices

PRICES = {
    "seller": None,
    "mfo-a": {"A": 90_000},
    "mfo-b": {"A": 150_000},
    "mfo-c": {"A": 120_000},
}
CPA, FEE, BPS = 500_000, 10_000, 1000  # AuctionConfig defaults


def period_request(cls: type, currency: str = "RUB", **kw: object) -> object:
    request = cls(currency=currency, **kw)
    request.start_time.FromSeconds(int(time.time()) - 3600)
    request.end_time.FromSeconds(int(time.time()) + 3600)
    return request


async def trade(net: Net) -> tuple[ppb.SellResponse, ppb.SellResponse, ppb.SellResponse]:
    """Three sales: one issued, one refused, one whose buyer rejects it (passes on)."""
    stub = net.node_stubs["seller"]
    issued = await stub.Sell(sell_request("app-1", "+70000000001"), timeout=10)
    refused = await stub.Sell(sell_request("app-2", "+70000000002"), timeout=10)
    rejected = await stub.Sell(sell_request("app-3", "+70000000003"), timeout=10)
    buyer = net.node_stubs["mfo-b"]
    loan = common_pb2.Money(amount_minor=1_000_000, currency="RUB")
    for sale, status in (
        (issued, pb.LEAD_STATUS_ISSUED),
        (refused, pb.LEAD_STATUS_REFUSED),
        (rejected, pb.LEAD_STATUS_REJECTED_BY_BUYER),
    ):
        change = ppb.UpdateLeadStatusRequest(deal=sale.deal, status=status, loan_amount=loan)
        await buyer.UpdateLeadStatus(change, timeout=5)
    await settle_notices(net)
    return issued, refused, rejected


def test_ledger_settlement_and_metrics_show_each_participant_only_its_own() -> None:
    async def test(net: Net) -> None:
        await trade(net)
        seller, b, c = net.nodes["seller"], net.nodes["mfo-b"], net.nodes["mfo-c"]
        # mfo-b: two leads at 150 000 (the rejected one reversed), one CPA, one fee.
        ledger = await b.call("GetLedger", pb.GetLedgerRequest())
        assert ledger.account == b.name
        assert [(m.currency, m.amount_minor) for m in ledger.balances] == [
            ("RUB", -(2 * 150_000 + CPA + FEE))
        ]
        # mfo-c got the rejected lead at 120 000.
        ledger_c = await c.call("GetLedger", pb.GetLedgerRequest())
        assert ledger_c.balances[0].amount_minor == -120_000
        with pytest.raises(PermissionDeniedError):
            await b.call("GetLedger", pb.GetLedgerRequest(account=seller.name))

        # Entries: paged by sequence, filtered by type; none of another's entries.
        page = await b.call("ListLedgerEntries", pb.ListLedgerEntriesRequest(page_size=2))
        assert len(page.entries) == 2 and page.next_page_token
        rest = await b.call(
            "ListLedgerEntries",
            pb.ListLedgerEntriesRequest(page_size=100, page_token=page.next_page_token),
        )
        mine = [*page.entries, *rest.entries]
        assert [e.sequence for e in mine] == sorted(e.sequence for e in mine)
        assert all(any(p.account == b.name for p in e.postings) for e in mine)
        assert all(sum(p.amount.amount_minor for p in e.postings) == 0 for e in mine)
        types = [pb.LedgerEntryType.Name(e.type) for e in mine]
        assert types.count("LEDGER_ENTRY_TYPE_LEAD_PRICE") == 3
        assert types.count("LEDGER_ENTRY_TYPE_REVERSAL") == 1  # the price (commission: seller)
        reversal = next(e for e in mine if e.type == pb.LEDGER_ENTRY_TYPE_REVERSAL)
        assert reversal.reverses.startswith("ledgerEntries/")
        fees = await b.call(
            "ListLedgerEntries", pb.ListLedgerEntriesRequest(filter='type = "REFUSAL_FEE"')
        )
        assert [e.postings[0].amount.amount_minor for e in fees.entries] == [FEE]
        later = await b.call(
            "ListLedgerEntries",
            pb.ListLedgerEntriesRequest(filter=f"sequence > {mine[1].sequence}", page_size=100),
        )
        assert [e.sequence for e in later.entries] == [e.sequence for e in mine[2:]]
        with pytest.raises(InvalidArgumentError):
            await b.call("ListLedgerEntries", pb.ListLedgerEntriesRequest(filter="amount > 5"))

        # Settlement: provisional; nets sum to zero network-wide; each sees its own part.
        full = net.coordinator.ledger.settlement(0, 1e12, "RUB")
        assert sum(full.nets.values()) == 0
        s = (await b.call("GetSettlement", period_request(pb.GetSettlementRequest))).settlement
        assert s.state == pb.SETTLEMENT_STATE_PROVISIONAL
        assert {p.account for p in s.positions} <= {b.name, "platform"}
        assert all(b.name in (t.from_account, t.to_account) for t in s.transfers)
        assert [(t.from_account, t.to_account, t.amount.amount_minor) for t in s.transfers] == [
            (b.name, seller.name, 2 * 150_000 + CPA + FEE)
        ]
        bad = pb.GetSettlementRequest(currency="RUB")
        with pytest.raises(InvalidArgumentError):
            await b.call("GetSettlement", bad)

        # Metrics of seed 000, per participant.
        m = (
            await seller.call("GetAuctionMetrics", period_request(pb.GetAuctionMetricsRequest))
        ).metrics
        assert (m.auctions_count, m.leads_offered, m.leads_sold, m.leads_unsold) == (3, 3, 3, 0)
        assert m.sold_share == 1.0 and m.leads_issued == 1
        assert m.issue_conversion == pytest.approx(1 / 3)
        assert m.average_price.amount_minor == (150_000 * 2 + 120_000) // 3
        assert m.refusal_fees.amount_minor == FEE
        commission = (2 * 150_000 + 120_000) * BPS // 10_000
        assert m.seller_revenue.amount_minor == 2 * 150_000 + 120_000 + CPA + FEE - commission
        mb = (
            await b.call("GetAuctionMetrics", period_request(pb.GetAuctionMetricsRequest))
        ).metrics
        assert (mb.bids_placed, mb.leads_won, mb.auctions_count) == (3, 2, 0)
        assert mb.buyer_spend.amount_minor == 2 * 150_000 + CPA + FEE
        other = period_request(pb.GetAuctionMetricsRequest, participant=seller.name)
        with pytest.raises(PermissionDeniedError):
            await b.call("GetAuctionMetrics", other)
        with pytest.raises(InvalidArgumentError):
            await b.call(
                "GetAuctionMetrics", period_request(pb.GetAuctionMetricsRequest, currency="rub")
            )

    run(test, PRICES)


def test_reports_need_a_signed_caller() -> None:
    async def test(net: Net) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await net.nodes["mfo-a"].stub.GetLedger(pb.GetLedgerRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        await asyncio.sleep(0)

    run(test, PRICES)
