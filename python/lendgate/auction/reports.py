"""What a participant may read about money and activity: its ledger, its part of a
period's settlement, and the metrics of seed 000 (per period and participant).

A participant sees only its own account, its own positions and transfers, and its own
metrics; the platform's account is visible to all (it is the counterparty of every
commission). Periods are half-open ``[start, end)`` in event time (the entry's post
time, the auction's open time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from lendgate.auction.coordinator import PLATFORM, Coordinator, entry_proto, ts
from lendgate.auction.ledger import Entry, EntryType, Settlement
from lendgate.errors import InvalidArgumentError, PermissionDeniedError
from lendgate.listfilter import Fields, compile_filter
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import common_pb2

NETWORK = "-"
"""GetAuctionMetricsRequest.participant of the whole network (the operator only)."""
MAX_PAGE = 1000
DEFAULT_PAGE = 100
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_FILTER_TERM = re.compile(r'^\s*(type|deal)\s*=\s*"([^"]*)"\s*$')


@dataclass(frozen=True)
class Period:
    """A half-open interval of event time, in seconds since the epoch."""

    start: float
    end: float


def period(start: Timestamp, end: Timestamp, *, has_start: bool, has_end: bool) -> Period:
    """Validate a request's period; INVALID_ARGUMENT naming the field otherwise."""
    if not has_start:
        raise InvalidArgumentError("required", field="start_time")
    if not has_end:
        raise InvalidArgumentError("required", field="end_time")
    p = Period(start.ToNanoseconds() / 1e9, end.ToNanoseconds() / 1e9)
    if p.end <= p.start:
        raise InvalidArgumentError("must be after start_time", field="end_time")
    return p


def currency(code: str) -> str:
    """Validate an ISO 4217 code."""
    if not _CURRENCY.match(code):
        raise InvalidArgumentError("an ISO 4217 code such as RUB is required", field="currency")
    return code


def _money(amount: int, cur: str) -> common_pb2.Money:
    return common_pb2.Money(amount_minor=amount, currency=cur)


def _own_account(caller: str, account: str) -> str:
    account = account or caller
    if account != caller:
        raise PermissionDeniedError("a participant may read only its own account")
    return account


def ledger(
    coordinator: Coordinator, caller: str, request: pb.GetLedgerRequest
) -> pb.GetLedgerResponse:
    """Balances of the caller's account per currency as of a time (default now)."""
    account = _own_account(caller, request.account)
    as_of = request.as_of.ToNanoseconds() / 1e9 if request.HasField("as_of") else None
    balances: dict[str, int] = {}
    last = 0
    for e in coordinator.ledger.repository.entries():
        if as_of is not None and e.post_time > as_of:
            continue
        for p in e.postings:
            if p.account == account:
                balances[e.currency] = balances.get(e.currency, 0) + p.amount_minor
                last = max(last, e.sequence)
    out = pb.GetLedgerResponse(
        account=account,
        balances=[_money(v, c) for c, v in sorted(balances.items())],
        last_sequence=last,
    )
    if as_of is not None:
        out.as_of.CopyFrom(request.as_of)
    else:
        out.as_of.GetCurrentTime()
    return out


ENTRY_FILTER = {
    "type": "enum:LEDGER_ENTRY_TYPE_",
    "deal": "str",
    "post_time": "time",
    "sequence": "int",
}
"""Fields of ``ListLedgerEntries.filter`` (AIP-160 subset of :mod:`lendgate.listfilter`)."""


def _entry_fields(e: Entry) -> Fields:
    return {
        "type": e.type.name,
        "deal": e.deal,
        "post_time": datetime.fromtimestamp(e.post_time, UTC),
        "sequence": e.sequence,
    }


def _page(page_size: int, page_token: str) -> tuple[int, int]:
    if page_size < 0:
        raise InvalidArgumentError("must not be negative", field="page_size")
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    try:
        after = int(page_token) if page_token else 0
    except ValueError:
        raise InvalidArgumentError("not a token from this API", field="page_token") from None
    return size, after


def ledger_entries(
    coordinator: Coordinator, caller: str, request: pb.ListLedgerEntriesRequest
) -> pb.ListLedgerEntriesResponse:
    """The caller's entries in sequence order, filtered and paged (token = last sequence)."""
    account = _own_account(caller, request.account)
    wanted = compile_filter(request.filter, ENTRY_FILTER)
    size, after = _page(request.page_size, request.page_token)
    out = pb.ListLedgerEntriesResponse()
    for e in coordinator.ledger.repository.entries():
        if e.sequence <= after or all(p.account != account for p in e.postings):
            continue
        if not wanted(_entry_fields(e)):
            continue
        if len(out.entries) == size:
            out.next_page_token = str(out.entries[-1].sequence)
            break
        out.entries.append(entry_proto(e))
    return out


def settlement_proto(
    s: Settlement, caller: str | None, own_sequences: set[int] | None = None
) -> pb.Settlement:
    """The wire form of a settlement; ``caller`` set = only what that participant may see
    (its own and the platform's positions, the transfers it is party to, and the
    adjustments among ``own_sequences``, the entries it is party to)."""
    out = pb.Settlement(
        currency=s.currency,
        state=pb.SETTLEMENT_STATE_FINAL if s.final else pb.SETTLEMENT_STATE_PROVISIONAL,
        last_sequence=s.last_sequence,
        adjustment_sequences=[
            n for n in s.adjustments if caller is None or n in (own_sequences or set())
        ],
    )
    if s.final:
        out.name = f"settlements/{s.currency}-{int(s.start)}-{int(s.end)}"
    out.start_time.CopyFrom(ts(s.start))
    out.end_time.CopyFrom(ts(s.end))
    visible = None if caller is None else {caller, PLATFORM}
    for account in sorted(s.nets):
        if visible is not None and account not in visible:
            continue
        out.positions.add(
            account=account,
            receivable=_money(s.receivable.get(account, 0), s.currency),
            payable=_money(s.payable.get(account, 0), s.currency),
            net=_money(s.nets[account], s.currency),
        )
    for t in s.transfers:
        if caller is not None and caller not in (t.from_account, t.to_account):
            continue
        out.transfers.add(
            from_account=t.from_account,
            to_account=t.to_account,
            amount=_money(t.amount_minor, s.currency),
        )
    return out


def settlement(
    coordinator: Coordinator, caller: str, request: pb.GetSettlementRequest
) -> pb.GetSettlementResponse:
    """The period's settlement (final once settled, else provisional), as the caller sees it."""
    p = period(
        request.start_time,
        request.end_time,
        has_start=request.HasField("start_time"),
        has_end=request.HasField("end_time"),
    )
    s = coordinator.ledger.settlement(p.start, p.end, currency(request.currency))
    own = {
        e.sequence
        for e in coordinator.ledger.repository.entries()
        if e.sequence in s.adjustments and any(x.account == caller for x in e.postings)
    }
    return pb.GetSettlementResponse(settlement=settlement_proto(s, caller, own))


def metrics(
    coordinator: Coordinator, caller: str, request: pb.GetAuctionMetricsRequest
) -> pb.GetAuctionMetricsResponse:
    """Seed 000's metrics of the caller over the period: as seller (offered, sold,
    unsold, conversion to issued loans, average price, refusal fees, revenue) and as
    buyer (bids, leads won, spend). The operator may ask for any participant, or for
    "-" (its default): the whole network."""
    operator = coordinator.is_operator(caller)
    who = request.participant or ("-" if operator else caller)
    if who != caller and not operator:
        raise PermissionDeniedError("a participant sees only its own metrics")
    if who != NETWORK:
        coordinator.participant(who)  # NOT_FOUND for an unknown participant
    p = period(
        request.start_time,
        request.end_time,
        has_start=request.HasField("start_time"),
        has_end=request.HasField("end_time"),
    )
    cur = currency(request.currency)
    m = pb.AuctionMetrics()
    sold_prices: list[int] = []
    for record in coordinator.auctions.values():
        if not p.start <= record.open_time < p.end or record.currency != cur:
            continue
        if who in (NETWORK, record.seller):
            m.auctions_count += 1
            m.leads_offered += 1
            if record.state == pb.AUCTION_STATE_SOLD:
                m.leads_sold += 1
                sold_prices.append(record.ranking[0].amount_minor)
            elif record.state == pb.AUCTION_STATE_UNSOLD:
                m.leads_unsold += 1
        m.bids_placed += sum(1 for b in record.bids if who in (NETWORK, b.bidder))
    deals = [
        d
        for d in coordinator.deals.values()
        if d.price.currency == cur and p.start <= d.create_time.ToNanoseconds() / 1e9 < p.end
    ]
    m.leads_issued = sum(
        1 for d in deals if who in (NETWORK, d.seller) and d.status == pb.LEAD_STATUS_ISSUED
    )
    m.leads_won = sum(
        1
        for d in deals
        if who in (NETWORK, d.buyer)
        and d.status not in (pb.LEAD_STATUS_REJECTED_BY_BUYER, pb.LEAD_STATUS_RETURNED)
    )
    if m.leads_offered:
        m.sold_share = m.leads_sold / m.leads_offered
    if m.leads_sold:
        m.issue_conversion = m.leads_issued / m.leads_sold
    average = sum(sold_prices) // len(sold_prices) if sold_prices else 0
    m.average_price.CopyFrom(_money(average, cur))
    _money_metrics(coordinator, m, who, cur, deals)
    return pb.GetAuctionMetricsResponse(metrics=m)


def _money_metrics(
    coordinator: Coordinator, m: pb.AuctionMetrics, who: str, cur: str, deals: list[pb.Deal]
) -> None:
    """Refusal fees and revenue of ``who``'s sales, spend on its purchases: sums of its
    postings in the deals' entries (reversals included, settlements not). For the
    network (``who`` = "-"): every seller's and every buyer's, added up."""
    sellers = {d.name: d.seller for d in deals if who in (NETWORK, d.seller)}
    buyers = {d.name: d.buyer for d in deals if who in (NETWORK, d.buyer)}
    refusal_fees = revenue = spend = 0
    for e in coordinator.ledger.repository.entries():
        if e.currency != cur or e.type is EntryType.SETTLEMENT:
            continue
        seller, buyer = sellers.get(e.deal), buyers.get(e.deal)
        if seller is not None:
            mine = sum(x.amount_minor for x in e.postings if x.account == seller)
            revenue += mine
            if e.type is EntryType.REFUSAL_FEE:
                refusal_fees += mine
        if buyer is not None and (who == NETWORK or seller is None):
            spend -= sum(x.amount_minor for x in e.postings if x.account == buyer)
    m.refusal_fees.CopyFrom(_money(refusal_fees, cur))
    m.seller_revenue.CopyFrom(_money(revenue, cur))
    m.buyer_spend.CopyFrom(_money(spend, cur))
