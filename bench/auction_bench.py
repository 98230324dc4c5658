"""Auction throughput and time-to-result over real gRPC on loopback (one process).

``.venv/bin/python -m bench.auction_bench [--bidders 20] [--auctions 20] [--window 0.2]``
prints auctions/s (sequential auctions and a concurrent batch) and the time from the
deadline to the seller's verified result.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import grpc

from lendgate.auction.coordinator import AuctionConfig, Coordinator
from lendgate.auction.node import ParticipantNode
from lendgate.auction.policy import segment_policy
from lendgate.config import Config
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import auction_pb2_grpc, common_pb2
from lendgate.v1 import participant_pb2 as ppb
from servers.app import create_server
from servers.auction import AuctionServicer


async def main(bidders: int, auctions: int, window: float) -> None:
    """Run the benchmark and print the figures."""
    coordinator = Coordinator(AuctionConfig(bidding_window_s=window, duplicate_window_s=0))
    server = await create_server(
        Config(listen="127.0.0.1:0"), {"lendgate.v1.AuctionService": AuctionServicer(coordinator)}
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = auction_pb2_grpc.AuctionServiceStub(channel)
    seller = ParticipantNode("seller", stub, policy=segment_policy({}))
    await seller.start()
    nodes = [seller]
    for i in range(bidders):
        node = ParticipantNode(f"mfo-{i}", stub, policy=segment_policy({"A": 60_000 + 137 * i}))
        await node.start()
        nodes.append(node)

    def request(n: int) -> ppb.SellRequest:
        return ppb.SellRequest(
            lead_id=f"lead-{n}",
            features=pb.LeadFeatures(segment="A"),
            personal_data=pb.PersonalData(phone=f"+7999{n:07d}"),
            min_bid_price=common_pb2.Money(amount_minor=50_000, currency="RUB"),
        )

    lags = []
    start = time.perf_counter()
    for n in range(auctions):
        sale = await seller.sell(request(n))
        record = coordinator.auctions[sale.auction]
        lags.append(time.time() - record.deadline)
        assert sale.outcome == ppb.SALE_OUTCOME_SOLD
    sequential = auctions / (time.perf_counter() - start)
    start = time.perf_counter()
    await asyncio.gather(*(seller.sell(request(10_000 + n)) for n in range(auctions)))
    concurrent = auctions / (time.perf_counter() - start)
    print(f"bidders={bidders} window={window}s auctions={auctions}")
    print(
        f"deadline -> seller's verified result: median {statistics.median(lags) * 1000:.1f} ms,"
        f" max {max(lags) * 1000:.1f} ms"
    )
    print(
        f"sequential: {sequential:.1f} auctions/s;"
        f" {auctions} concurrent: {concurrent:.1f} auctions/s"
    )
    for node in nodes:
        await node.stop()
    await asyncio.sleep(0.1)
    await channel.close()
    await server.stop(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bidders", type=int, default=20)
    parser.add_argument("--auctions", type=int, default=20)
    parser.add_argument("--window", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(main(args.bidders, args.auctions, args.window))
