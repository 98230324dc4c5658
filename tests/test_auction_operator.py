"""The operator role over real gRPC: only configured operator identities list every
participant, activate, suspend and lift suspensions, and read network-wide metrics; a
participant sees and changes only itself (never its own state)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from lendgate.auction import crypto
from lendgate.auction.coordinator import AuctionConfig, auction_operators
from lendgate.auction.crypto import KeyPair
from lendgate.errors import FailedPreconditionError, PermissionDeniedError
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import auction_pb2_grpc
from tests.auction_net import WINDOW_S, Net, start_net
from tests.test_auction import sell_request
from tests.test_auction_reports import period_request

OPERATOR = KeyPair.generate()
SERVICE = "/lendgate.v1.AuctionService/"


class Operator:
    """A client signing its calls as ``operators/{id}``."""

    def __init__(self, stub: auction_pb2_grpc.AuctionServiceStub, name: str, keys: KeyPair):
        self.stub, self.name, self.keys = stub, name, keys

    async def call(self, method: str, request: Any) -> Any:
        ms = int(time.time() * 1000)
        sig = crypto.sign_call(self.keys.signing, self.name, SERVICE + method, ms)
        metadata = (("lg-participant", self.name), ("lg-time-ms", str(ms)), ("lg-auth", sig.hex()))
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=10)


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()


def update(p: pb.Participant, *paths: str, **fields: Any) -> pb.UpdateParticipantRequest:
    new = pb.Participant(name=p.name, etag=p.etag, **fields)
    request = pb.UpdateParticipantRequest(participant=new)
    request.update_mask.paths.extend(paths)
    return request


def test_operator_activates_suspends_lifts_and_sees_the_network() -> None:
    async def main() -> None:
        config = AuctionConfig(
            bidding_window_s=WINDOW_S,
            operators=auction_operators(f"ops:{OPERATOR.signing_public.hex()}"),
            auto_activate=False,
        )
        net: Net = await start_net(config)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{net.server.port}")
        stub = auction_pb2_grpc.AuctionServiceStub(channel)
        ops = Operator(stub, "operators/ops", OPERATOR)
        try:
            seller = await net.add_node("seller", None)
            buyer = await net.add_node("mfo-a", {"A": 90_000})
            other = await net.add_node("mfo-b", {"A": 80_000})
            # Self-registered participants wait for the operator.
            with pytest.raises(FailedPreconditionError):
                await seller.sell(sell_request())

            # A participant sees only itself and cannot change its own state.
            mine = await buyer.call("ListParticipants", pb.ListParticipantsRequest())
            assert [p.name for p in mine.participants] == [buyer.name]
            me = mine.participants[0]
            with pytest.raises(PermissionDeniedError):
                await buyer.call(
                    "UpdateParticipant",
                    update(me, "state", state=pb.PARTICIPANT_STATE_ACTIVE),
                )
            with pytest.raises(PermissionDeniedError):
                await buyer.call("GetParticipant", pb.GetParticipantRequest(name=seller.name))
            # ... but may set its own caps.
            caps = pb.BuyerCaps(max_leads_per_day=5)
            me = (await buyer.call("UpdateParticipant", update(me, "caps", caps=caps))).participant
            assert me.caps.max_leads_per_day == 5

            # The operator lists everyone (filtered, paged) and activates them.
            pending = await ops.call(
                "ListParticipants",
                pb.ListParticipantsRequest(filter='state = "PENDING"', page_size=2),
            )
            assert [p.name for p in pending.participants] == [buyer.name, other.name]
            rest = await ops.call(
                "ListParticipants",
                pb.ListParticipantsRequest(
                    filter='state = "PENDING"', page_token=pending.next_page_token
                ),
            )
            assert [p.name for p in rest.participants] == [seller.name]
            assert not rest.next_page_token
            for p in [*pending.participants, *rest.participants]:
                fresh = await ops.call("GetParticipant", pb.GetParticipantRequest(name=p.name))
                activated = await ops.call(
                    "UpdateParticipant",
                    update(fresh.participant, "state", state=pb.PARTICIPANT_STATE_ACTIVE),
                )
                assert activated.participant.state == pb.PARTICIPANT_STATE_ACTIVE
            sale = await seller.sell(sell_request())
            assert sale.winner == buyer.name

            # Suspend (a stale etag is ABORTED), then lift the suspension.
            assert (
                await code_of(
                    ops.call(
                        "UpdateParticipant",
                        update(
                            me, "state", state=pb.PARTICIPANT_STATE_SUSPENDED, suspension_reason="x"
                        ),
                    )
                )
                == grpc.StatusCode.ABORTED
            )
            current = net.coordinator.participant(buyer.name)
            suspended = await ops.call(
                "UpdateParticipant",
                update(
                    current,
                    "state",
                    state=pb.PARTICIPANT_STATE_SUSPENDED,
                    suspension_reason="unpaid invoices",
                ),
            )
            assert suspended.participant.state == pb.PARTICIPANT_STATE_SUSPENDED
            assert suspended.participant.suspension_reason == "unpaid invoices"
            assert suspended.participant.caps.max_leads_per_day == 5  # the rest unchanged
            # Suspended: it is not offered the next lead; mfo-b wins it.
            second = await seller.sell(sell_request("app-2", "+79990000002"))
            assert second.winner == other.name
            lifted = await ops.call(
                "UpdateParticipant",
                update(suspended.participant, "state", state=pb.PARTICIPANT_STATE_ACTIVE),
            )
            assert lifted.participant.state == pb.PARTICIPANT_STATE_ACTIVE
            assert not lifted.participant.suspension_reason
            assert (
                await code_of(
                    ops.call(
                        "UpdateParticipant",
                        update(lifted.participant, "state", state=pb.PARTICIPANT_STATE_SUSPENDED),
                    )
                )
                == grpc.StatusCode.INVALID_ARGUMENT
            )  # a suspension needs a reason

            # Network-wide metrics for the operator; a participant sees only its own.
            await net.settle()
            network = (
                await ops.call(
                    "GetAuctionMetrics",
                    period_request(pb.GetAuctionMetricsRequest, participant="-"),
                )
            ).metrics
            assert (network.auctions_count, network.leads_sold, network.leads_won) == (2, 2, 2)
            assert network.buyer_spend.amount_minor == 90_000 + 80_000
            own = (
                await buyer.call("GetAuctionMetrics", period_request(pb.GetAuctionMetricsRequest))
            ).metrics
            assert (own.auctions_count, own.leads_won) == (0, 1)
            as_operator = (
                await ops.call(
                    "GetAuctionMetrics",
                    period_request(pb.GetAuctionMetricsRequest, participant=buyer.name),
                )
            ).metrics
            assert as_operator == own
            for who in ("-", other.name):
                with pytest.raises(PermissionDeniedError):
                    await buyer.call(
                        "GetAuctionMetrics",
                        period_request(pb.GetAuctionMetricsRequest, participant=who),
                    )

            # Operators do not trade; an unconfigured key is not an operator.
            assert (
                await code_of(ops.call("ListDeals", pb.ListDealsRequest()))
                == grpc.StatusCode.PERMISSION_DENIED
            )
            impostor = Operator(stub, "operators/ops", KeyPair.generate())
            assert (
                await code_of(impostor.call("ListParticipants", pb.ListParticipantsRequest()))
                == grpc.StatusCode.UNAUTHENTICATED
            )
        finally:
            await channel.close()
            await net.close()

    asyncio.run(main())
