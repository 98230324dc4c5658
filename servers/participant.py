"""The participant node process: ParticipantNodeService over a
:class:`~lendgate.auction.node.ParticipantNode` (started by ``lendgate node``)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator

import grpc

from lendgate.auction.node import ParticipantNode
from lendgate.auth import DevAuthenticator
from lendgate.v1 import auction_pb2_grpc
from lendgate.v1 import participant_pb2 as ppb
from servers.app import service_descriptor
from servers.handlers import Ctx, service_handlers

SERVICE = "lendgate.v1.ParticipantNodeService"


class ParticipantNodeServicer:
    """Thin proto <-> domain layer of a participant node."""

    def __init__(self, node: ParticipantNode) -> None:
        self.node = node

    async def Sell(self, request: ppb.SellRequest, context: Ctx) -> ppb.SellResponse:
        """Offer a lead; returns when decided."""
        return await self.node.sell(request)

    async def Notify(
        self, request: ppb.NotifyRequest, context: Ctx
    ) -> AsyncIterator[ppb.NotifyResponse]:
        """The bank's notification stream."""
        async for notice in self.node.notifications(request.after_sequence):
            yield notice

    async def SetBiddingPolicy(
        self, request: ppb.SetBiddingPolicyRequest, context: Ctx
    ) -> ppb.SetBiddingPolicyResponse:
        """Replace the node's bidding policy."""
        return ppb.SetBiddingPolicyResponse(policy=self.node.set_policy(request.policy))

    async def UpdateLeadStatus(
        self, request: ppb.UpdateLeadStatusRequest, context: Ctx
    ) -> ppb.UpdateLeadStatusResponse:
        """Forward a status change to the coordinator."""
        return ppb.UpdateLeadStatusResponse(deal=await self.node.update_status(request))


async def start_node(node: ParticipantNode, listen: str) -> tuple[grpc.aio.Server, int]:
    """Start the node's server on ``listen``; returns the server and bound port."""
    server = grpc.aio.server()
    # The node's only caller is its own bank, inside that bank's network: no partner
    # identity is needed beyond the node's own (bank-side tokens/mTLS are future work).
    handlers = service_handlers(
        service_descriptor(SERVICE), ParticipantNodeServicer(node), DevAuthenticator()
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port(listen)
    await server.start()
    return server, port


async def run_node(participant: str, listen: str, coordinator: str, landing_url: str) -> None:
    """Run a node until SIGTERM/SIGINT; prints one JSON line with the bound address."""
    channel = grpc.aio.insecure_channel(coordinator)
    node = ParticipantNode(
        participant, auction_pb2_grpc.AuctionServiceStub(channel), landing_url=landing_url
    )
    await node.start()
    server, port = await start_node(node, listen)
    host = listen.rpartition(":")[0]
    print(
        json.dumps(
            {"msg": "node serving", "participant": participant, "address": f"{host}:{port}"}
        ),
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()
    await server.stop(1.0)
    await channel.close()
