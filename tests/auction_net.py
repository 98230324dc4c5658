"""A test network: one coordinator server and participant node servers on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from lendgate.auction.coordinator import AuctionConfig, Coordinator
from lendgate.auction.node import ParticipantNode
from lendgate.auction.policy import segment_policy
from lendgate.config import Config
from lendgate.store import Store
from lendgate.v1 import auction_pb2_grpc, participant_pb2_grpc
from servers.app import RunningServer, create_server
from servers.auction import AuctionServicer
from servers.participant import start_node

WINDOW_S = 1.0
"""Bidding window of the test network; auctions close earlier once every invited buyer
has bid, so only tests where someone does not bid wait for it."""
POLL_S = 0.01


@dataclass
class Net:
    """The running network."""

    coordinator: Coordinator
    server: RunningServer
    nodes: dict[str, ParticipantNode] = field(default_factory=dict)
    node_servers: list[grpc.aio.Server] = field(default_factory=list)
    node_stubs: dict[str, participant_pb2_grpc.ParticipantNodeServiceStub] = field(
        default_factory=dict
    )
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    async def add_node(self, pid: str, prices: dict[str, int] | None) -> ParticipantNode:
        """Start a node (its own server and its own coordinator channel)."""
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.server.port}")
        self.channels.append(channel)
        node = ParticipantNode(
            pid,
            auction_pb2_grpc.AuctionServiceStub(channel),
            landing_url=f"https://{pid}.example/landing",
            policy=segment_policy(prices or {}),
        )
        await node.start()
        server, port = await start_node(node, "127.0.0.1:0")
        self.node_servers.append(server)
        node_channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.channels.append(node_channel)
        self.nodes[pid] = node
        self.node_stubs[pid] = participant_pb2_grpc.ParticipantNodeServiceStub(node_channel)
        return node

    async def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until every node has taken every event the coordinator emitted for it and
        finished handling them (a guard against hanging, not a timed assertion)."""

        def quiet() -> bool:
            return all(
                node.events_seen == len(self.coordinator._events[node.name]) and not node.busy()
                for node in self.nodes.values()
            )

        # Handlers may emit follow-up events (results after unsealing, proofs): quiet
        # for several polls in a row, not just once.
        stable = 0
        for _ in range(int(timeout_s / POLL_S)):
            stable = stable + 1 if quiet() else 0
            if stable >= 5:
                return
            await asyncio.sleep(POLL_S)
        raise AssertionError("the auction network did not settle")

    async def close(self) -> None:
        """Stop everything."""
        for node in self.nodes.values():
            await node.stop()
        for channel in self.channels:
            await channel.close()
        for server in self.node_servers:
            await server.stop(0)
        await self.server.stop(0)


async def start_net(
    config: AuctionConfig | None = None, store: Store | None = None, key_file: Path | None = None
) -> Net:
    """Start a coordinator with a short bidding window (its state in ``store`` and its keys
    in ``key_file`` if given)."""
    coordinator = Coordinator(
        config or AuctionConfig(bidding_window_s=WINDOW_S, unseal_timeout_s=2.0),
        store=store,
        key_file=key_file,
    )
    await coordinator.start()
    server = await create_server(
        Config(listen="127.0.0.1:0"), {"lendgate.v1.AuctionService": AuctionServicer(coordinator)}
    )
    return Net(coordinator, server)
