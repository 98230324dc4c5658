"""AuctionService servicer: authenticates the calling participant and delegates to the
domain :class:`~lendgate.auction.coordinator.Coordinator`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from google.protobuf.message import Message

from lendgate.auction import reports
from lendgate.auction.coordinator import Coordinator
from lendgate.errors import PermissionDeniedError, UnauthenticatedError
from lendgate.v1 import auction_pb2 as pb
from servers.handlers import Ctx

SERVICE = "/lendgate.v1.AuctionService/"
T = TypeVar("T")


class AuctionServicer:
    """Thin proto <-> domain layer of the coordinator."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    async def start(self) -> None:
        """Store what the coordinator's start-up decided before the first call."""
        await self.coordinator.start()

    def _signer(self, context: Ctx, method: str) -> str:
        md = dict(context.invocation_metadata() or ())
        try:
            participant = md["lg-participant"]
            ms = int(md["lg-time-ms"])
            signature = bytes.fromhex(md["lg-auth"])
        except (KeyError, ValueError):
            raise UnauthenticatedError("missing or malformed call signature") from None
        return self.coordinator.authenticate(participant, SERVICE + method, ms, signature)

    def _caller(self, context: Ctx, method: str) -> str:
        """The calling participant (an operator does not trade: PERMISSION_DENIED)."""
        caller = self._signer(context, method)
        if self.coordinator.is_operator(caller):
            raise PermissionDeniedError(f"{method} is for participants, not operators")
        return caller

    def _once(self, caller: str, method: str, request: Message, write: Callable[[], T]) -> T:
        request_id = getattr(request, "request_id", "")
        body = request.SerializeToString(deterministic=True)
        return self.coordinator.once(caller, method, request_id, body, write)

    async def GetCoordinatorInfo(
        self, request: pb.GetCoordinatorInfoRequest, context: Ctx
    ) -> pb.GetCoordinatorInfoResponse:
        """Public keys and parameters (no authentication)."""
        return self.coordinator.info()

    async def RegisterParticipant(
        self, request: pb.RegisterParticipantRequest, context: Ctx
    ) -> pb.RegisterParticipantResponse:
        """Register (authenticated by the proof of possession); answered once stored."""
        response = pb.RegisterParticipantResponse(participant=self.coordinator.register(request))
        await self.coordinator.flush_books()
        return response

    async def GetParticipant(
        self, request: pb.GetParticipantRequest, context: Ctx
    ) -> pb.GetParticipantResponse:
        """A participant may read itself only; the operator any."""
        caller = self._signer(context, "GetParticipant")
        return pb.GetParticipantResponse(
            participant=self.coordinator.readable_participant(caller, request.name)
        )

    async def ListParticipants(
        self, request: pb.ListParticipantsRequest, context: Ctx
    ) -> pb.ListParticipantsResponse:
        """All participants for the operator; a participant sees only itself."""
        caller = self._signer(context, "ListParticipants")
        return self.coordinator.list_participants(caller, request)

    async def UpdateParticipant(
        self, request: pb.UpdateParticipantRequest, context: Ctx
    ) -> pb.UpdateParticipantResponse:
        """Masked update (state changes: the operator only); answered once stored."""
        caller = self._signer(context, "UpdateParticipant")
        response = self._once(
            caller,
            "UpdateParticipant",
            request,
            lambda: pb.UpdateParticipantResponse(
                participant=self.coordinator.update_participant(caller, request)
            ),
        )
        await self.coordinator.flush_books()
        return response

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: Ctx
    ) -> AsyncIterator[pb.SubscribeResponse]:
        """The caller's event stream."""
        caller = self._caller(context, "Subscribe")
        # Headers now, not with the first event: a node resuming after a restart learns
        # at once that it is subscribed (and then catches up on what it missed).
        await context.send_initial_metadata(())
        async for event in self.coordinator.subscribe(caller, request.after_sequence):
            yield event

    async def OpenAuction(
        self, request: pb.OpenAuctionRequest, context: Ctx
    ) -> pb.OpenAuctionResponse:
        """Open an auction for the caller's signed offer."""
        caller = self._caller(context, "OpenAuction")
        return self._once(
            caller,
            "OpenAuction",
            request,
            lambda: pb.OpenAuctionResponse(
                auction=self.coordinator.open_auction(caller, request.offer)
            ),
        )

    async def PlaceBid(self, request: pb.PlaceBidRequest, context: Ctx) -> pb.PlaceBidResponse:
        """A sealed bid: signed receipt or signed rejection. Authenticated by the bid's
        own signature (docs/AUCTION_PROTOCOL.md, "Caller identity"): a SealedBid is signed
        by its bidder and accepted once per auction, so a call header would only add a
        second Ed25519 verification on the hot path."""
        caller = self.coordinator.payload_signer(request.bid)
        return self._once(
            caller, "PlaceBid", request, lambda: self.coordinator.place_bid(caller, request.bid)
        )

    async def UnsealBids(
        self, request: pb.UnsealBidsRequest, context: Ctx
    ) -> pb.UnsealBidsResponse:
        """The seller's unsealing of its auction's bids (authenticated by the signed
        UnsealedBids, like PlaceBid: idempotent, and useless to anyone but the seller)."""
        caller = self.coordinator.payload_signer(request.unsealed)
        return self._once(
            caller,
            "UnsealBids",
            request,
            lambda: pb.UnsealBidsResponse(
                auction=self.coordinator.unseal(caller, request.unsealed)
            ),
        )

    async def GetAuctionResult(
        self, request: pb.GetAuctionResultRequest, context: Ctx
    ) -> pb.GetAuctionResultResponse:
        """The result as the caller may see it."""
        return self.coordinator.result_view(
            self._caller(context, "GetAuctionResult"), request.auction
        )

    async def GetBidProof(
        self, request: pb.GetBidProofRequest, context: Ctx
    ) -> pb.GetBidProofResponse:
        """Inclusion proof of the caller's bid."""
        caller = self._caller(context, "GetBidProof")
        return await self.coordinator.bid_proof(caller, request.auction, request.bid_hash)

    async def ReleaseLeadKey(
        self, request: pb.ReleaseLeadKeyRequest, context: Ctx
    ) -> pb.ReleaseLeadKeyResponse:
        """Forward the seller's key release to the winner (authenticated by the signed
        LeadKeyRelease, which only the seller can make)."""
        caller = self.coordinator.payload_signer(request.release)

        def release() -> pb.ReleaseLeadKeyResponse:
            self.coordinator.release_key(caller, request.release)
            return pb.ReleaseLeadKeyResponse()

        return self._once(caller, "ReleaseLeadKey", request, release)

    async def ReportLeadStatus(
        self, request: pb.ReportLeadStatusRequest, context: Ctx
    ) -> pb.ReportLeadStatusResponse:
        """Lead tracking: status change and its ledger entries."""
        caller = self._caller(context, "ReportLeadStatus")
        response = self._once(
            caller,
            "ReportLeadStatus",
            request,
            lambda: self.coordinator.report_status(caller, request),
        )
        await self.coordinator.flush_books()  # answered once its entries are stored
        return response

    async def ListDeals(self, request: pb.ListDealsRequest, context: Ctx) -> pb.ListDealsResponse:
        """Deals the caller is party to."""
        return pb.ListDealsResponse(
            deals=self.coordinator.list_deals(self._caller(context, "ListDeals"))
        )

    async def GetLedger(self, request: pb.GetLedgerRequest, context: Ctx) -> pb.GetLedgerResponse:
        """The caller's balances."""
        caller = self._caller(context, "GetLedger")
        await self.coordinator.sync_books()
        return reports.ledger(self.coordinator, caller, request)

    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: Ctx
    ) -> pb.ListLedgerEntriesResponse:
        """The caller's ledger entries, paged."""
        caller = self._caller(context, "ListLedgerEntries")
        await self.coordinator.sync_books()
        return reports.ledger_entries(self.coordinator, caller, request)

    async def GetSettlement(
        self, request: pb.GetSettlementRequest, context: Ctx
    ) -> pb.GetSettlementResponse:
        """The caller's part of a period's settlement."""
        caller = self._caller(context, "GetSettlement")
        await self.coordinator.sync_books()
        return reports.settlement(self.coordinator, caller, request)

    async def GetAuctionMetrics(
        self, request: pb.GetAuctionMetricsRequest, context: Ctx
    ) -> pb.GetAuctionMetricsResponse:
        """The caller's metrics over a period (the operator: anyone's, or "-" = all)."""
        caller = self._signer(context, "GetAuctionMetrics")
        await self.coordinator.sync_books()
        return reports.metrics(self.coordinator, caller, request)
