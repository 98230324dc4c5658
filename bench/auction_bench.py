"""Auction speed over real gRPC on loopback: time to result, throughput, coordinator
cost per auction, and the losers' zero-knowledge proof, all crypto on.

``.venv/bin/python -m bench auction [--bidders 20] [--auctions 40] [--window 0.5]``
(also ``python -m bench.auction_bench``). One process holds the coordinator's server,
the seller's node and the bidders' nodes (each with its own keys and channel), so the
wall-clock throughput counts every party's crypto on the same cores; the coordinator's
own share is measured separately by timing its handlers (CPU time of the event loop
thread while in them), which bounds what one coordinator core can carry. The transport
floor (an empty unary call) is measured in the same run and each figure is given as a
ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from lendgate import _core
from lendgate.auction.coordinator import AuctionConfig, Coordinator
from lendgate.auction.node import ParticipantNode
from lendgate.auction.policy import segment_policy
from lendgate.config import Config
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import auction_pb2_grpc, common_pb2
from lendgate.v1 import participant_pb2 as ppb
from servers.app import create_server
from servers.auction import AuctionServicer

COORDINATOR_STEPS = ("open_auction", "place_bid", "_close", "unseal", "result_view", "release_key")


class StepClock:
    """Thread CPU time spent inside the coordinator's protocol steps."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(COORDINATOR_STEPS, 0.0)
        for name in COORDINATOR_STEPS:
            setattr(coordinator, name, self._wrap(name, getattr(coordinator, name)))

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.thread_time() - start

        return timed

    def total(self) -> float:
        """Seconds in all steps."""
        return sum(self.seconds.values())


def sell_request(n: int) -> ppb.SellRequest:
    return ppb.SellRequest(
        lead_id=f"lead-{n}",
        features=pb.LeadFeatures(segment="A"),
        personal_data=pb.PersonalData(phone=f"+7999{n:07d}"),
        min_bid_price=common_pb2.Money(amount_minor=50_000, currency="RUB"),
    )


async def transport_floor(stub: auction_pb2_grpc.AuctionServiceStub, calls: int) -> float:
    """Median seconds of an unauthenticated, empty unary call on the same server."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        await stub.GetCoordinatorInfo(pb.GetCoordinatorInfoRequest())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def proof_costs(repeat: int) -> tuple[float, float, int]:
    """Median CPU seconds (of the calling thread: the Rust code runs on it with the GIL
    released) to prove and to verify one loser's range proof, and the proof's size."""
    auction, root = "auctions/bench", bytes(range(32))
    w_nonce, l_nonce = os.urandom(32), os.urandom(32)
    pw = _core.pedersen_commitment(90_000, w_nonce, "participants/w", auction)
    pl = _core.pedersen_commitment(70_000, l_nonce, "participants/l", auction)
    prove, verify, proof = [], [], b""
    for _ in range(repeat):
        start = time.thread_time()
        proof = _core.prove_winner_exceeds(
            auction, root, 3, 90_000, w_nonce, "participants/w", 1, 70_000, l_nonce,
            "participants/l",
        )  # fmt: skip
        prove.append(time.thread_time() - start)
        start = time.thread_time()
        assert _core.verify_winner_exceeds(auction, root, 3, pw, 1, pl, proof)
        verify.append(time.thread_time() - start)
    return statistics.median(prove), statistics.median(verify), len(proof)


@dataclass
class Sequential:
    """Figures of auctions run one after the other."""

    lags: list[float] = field(default_factory=list)
    decides: list[float] = field(default_factory=list)
    bids: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    def __iter__(self) -> Any:
        return iter((self.lags, self.decides, self.bids, self.outcomes))


async def time_to_result(
    coordinator: Coordinator, seller: ParticipantNode, auctions: int
) -> Sequential:
    """Time to result: from the close of the bid set (the last invited buyer's bid, or
    the deadline if someone never bids) to the signed result (coordinator clock) and to
    the moment the seller's node holds the verified result (root signed, bids unsealed by
    the seller, opened, decided, checked)."""
    out = Sequential()
    for n in range(auctions):
        sale = await seller.sell(sell_request(n))
        done = time.time()
        record = coordinator.auctions[sale.auction]
        out.outcomes.append(ppb.SaleOutcome.Name(sale.outcome))
        if sale.outcome != ppb.SALE_OUTCOME_SOLD or record.bid_set is None:
            continue  # bids all late under load: counted, not timed
        out.bids.append(len(record.bids))
        closed = pb.BidSetCommitment.FromString(record.bid_set.payload).close_time
        out.lags.append(done - closed.ToNanoseconds() / 1e9)
        assert record.result is not None
        decided = pb.AuctionResult.FromString(record.result.payload).decide_time
        out.decides.append((decided.ToNanoseconds() - closed.ToNanoseconds()) / 1e9)
    return out


async def main(bidders: int, auctions: int, window: float, out: Path | None) -> dict[str, Any]:
    """Run the benchmark; print and return the figures."""
    coordinator = Coordinator(AuctionConfig(bidding_window_s=window, duplicate_window_s=0))
    server = await create_server(
        Config(listen="127.0.0.1:0"), {"lendgate.v1.AuctionService": AuctionServicer(coordinator)}
    )
    channels = []

    def stub() -> auction_pb2_grpc.AuctionServiceStub:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        channels.append(channel)
        return auction_pb2_grpc.AuctionServiceStub(channel)

    seller = ParticipantNode("seller", stub(), policy=segment_policy({}))
    await seller.start()
    nodes = [seller]
    for i in range(bidders):
        price = 60_000 + 137 * i
        node = ParticipantNode(f"mfo-{i}", stub(), policy=segment_policy({"A": price}))
        await node.start()
        nodes.append(node)
    floor = await transport_floor(stub(), 200)
    prove_s, verify_s, proof_bytes = proof_costs(30)  # before any load of our own

    sequential = await time_to_result(coordinator, seller, auctions)
    lags, decides, bids, sequential_outcomes = sequential
    await asyncio.sleep(0.5)  # let the last results' notices settle

    # The batch runs with the production window (2 s): with every bidder's sealing in
    # this one process, a short window would leave most bids late (UNSOLD).
    coordinator.config = replace(coordinator.config, bidding_window_s=max(window, 2.0))
    clock = StepClock(coordinator)
    start = time.perf_counter()
    batch = [seller.sell(sell_request(100_000 + n)) for n in range(auctions)]
    results = await asyncio.gather(*batch)
    wall = time.perf_counter() - start
    outcomes = [ppb.SaleOutcome.Name(r.outcome) for r in results]
    await asyncio.sleep(0.5)
    coordinator_cpu = clock.total() / auctions
    rpcs_per_auction = 1 + bidders + 1 + 1  # OpenAuction, PlaceBid x n, UnsealBids, release
    figures = {
        "bidders": bidders,
        "window_s": window,
        "auctions": auctions,
        "load_average": os.getloadavg(),
        "transport_floor_ms": floor * 1000,
        "sequential_outcomes": {
            o: sequential_outcomes.count(o) for o in sorted(set(sequential_outcomes))
        },
        "bids_per_auction_mean": statistics.mean(bids),
        "closed_early_share": sum(1 for b in bids if b == bidders) / len(bids),
        "signed_result_after_close_ms_median": statistics.median(decides) * 1000,
        "signed_result_after_close_ms_p90": sorted(decides)[int(0.9 * (len(decides) - 1))] * 1000,
        "seller_result_after_close_ms_median": statistics.median(lags) * 1000,
        "seller_result_after_close_ms_p90": sorted(lags)[int(0.9 * (len(lags) - 1))] * 1000,
        "signed_result_after_close_in_floors": statistics.median(decides) / floor,
        "seller_result_after_close_in_floors": statistics.median(lags) / floor,
        "concurrent_window_s": coordinator.config.bidding_window_s,
        "concurrent_auctions_per_s_one_process": auctions / wall,
        "concurrent_outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "coordinator_cpu_ms_per_auction": coordinator_cpu * 1000,
        "coordinator_cpu_by_step_ms": {k: v * 1000 / auctions for k, v in clock.seconds.items()},
        "coordinator_core_capacity_auctions_per_s": 1 / coordinator_cpu,
        "coordinator_core_capacity_with_every_loser_proof_per_s": 1
        / (coordinator_cpu + (bidders - 1) * prove_s),
        "coordinator_cpu_in_floors": coordinator_cpu / (floor * rpcs_per_auction),
        "loser_proof_prove_cpu_ms": prove_s * 1000,
        "loser_proof_verify_cpu_ms": verify_s * 1000,
        "loser_proof_bytes": proof_bytes,
    }
    print(json.dumps(figures, indent=2))
    if out is not None:
        await asyncio.to_thread(_write, out, json.dumps(figures, indent=2))
    for node in nodes:
        await node.stop()
    await asyncio.sleep(0.1)
    for channel in channels:
        await channel.close()
    await server.stop(0)
    return figures


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cli(argv: list[str] | None = None) -> int:
    """``python -m bench auction ...``."""
    parser = argparse.ArgumentParser(prog="python -m bench auction", description=__doc__)
    parser.add_argument("--bidders", type=int, default=20)
    parser.add_argument("--auctions", type=int, default=40)
    parser.add_argument("--window", type=float, default=0.5, help="bidding window, s")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.bidders < 1 or args.auctions < 1 or args.window <= 0:
        parser.error("bidders and auctions must be >= 1, window > 0")
    asyncio.run(main(args.bidders, args.auctions, args.window, args.json))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
