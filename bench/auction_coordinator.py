"""The coordinator's own CPU per auction, without gRPC and without the other parties.

``.venv/bin/python -m bench.auction_coordinator [--bidders 20] [--auctions 200] [--profile]``

The parties' work (sealing bids, the seller's unsealing, signing) is done beforehand or
outside the clock; the clock (``time.thread_time``, the CPU of the one thread that runs
the coordinator) covers exactly what the coordinator does for one auction: verify each
call's signature header (1 + bidders + 2 calls), open the auction, accept every sealed
bid with a signed receipt, close (Merkle root, unseal task), open the bids, decide,
sign the result and build every party's view, and forward the seller's key release.
It runs against whatever ``lendgate`` is on ``sys.path``, so the same script measures
two versions of the code in one session (see bench/RESULTS.md, "Auction").
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import time
from dataclasses import dataclass
from typing import Any

from lendgate.auction import crypto
from lendgate.auction.coordinator import AuctionConfig, Coordinator
from lendgate.auction.node import ParticipantNode
from lendgate.auction.policy import segment_policy
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import common_pb2

SERVICE = "/lendgate.v1.AuctionService/"


class _Local:
    """Stands in for the AuctionService stub: calls the coordinator in-process."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.c = coordinator

    async def GetCoordinatorInfo(self, request: Any, **_: Any) -> Any:  # noqa: N802
        return self.c.info()

    async def RegisterParticipant(self, request: Any, **_: Any) -> Any:  # noqa: N802
        return pb.RegisterParticipantResponse(participant=self.c.register(request))

    def Subscribe(self, request: Any, **_: Any) -> Any:  # noqa: N802
        return _Silent()


class _Silent:
    def __aiter__(self) -> _Silent:
        return self

    async def __anext__(self) -> Any:
        await asyncio.Event().wait()

    async def wait_for_connection(self) -> None:
        return None


@dataclass
class Clock:
    """CPU seconds of the coordinator's thread per step."""

    auth: float = 0.0
    open: float = 0.0
    bid: float = 0.0
    close: float = 0.0
    unseal: float = 0.0
    release: float = 0.0

    def total(self) -> float:
        """All steps."""
        return self.auth + self.open + self.bid + self.close + self.unseal + self.release


def _auth(node: ParticipantNode, method: str) -> tuple[str, str, int, bytes]:
    ms = int(time.time() * 1000)
    sig = crypto.sign_call(node.keys.signing, node.name, SERVICE + method, ms)
    return node.name, SERVICE + method, ms, sig


async def run(bidders: int, auctions: int, profile: cProfile.Profile | None) -> dict[str, Any]:
    """Run ``auctions`` auctions with ``bidders`` bidders; the figures."""
    coordinator = Coordinator(
        AuctionConfig(bidding_window_s=30.0, max_bidding_window_s=60.0, close_when_all_bid=False,
                      duplicate_window_s=0)
    )  # fmt: skip
    stub = _Local(coordinator)
    seller = ParticipantNode("seller", stub, policy=segment_policy({}))
    buyers = [
        ParticipantNode(f"mfo-{i}", stub, policy=segment_policy({"A": 60_000 + 137 * i}))
        for i in range(bidders)
    ]
    for node in (seller, *buyers):
        await node.start()
    clock = Clock()
    per_auction = []

    def timed(step: str, fn: Any, *args: Any) -> Any:
        if profile is not None:
            profile.enable()
        start = time.thread_time()
        try:
            return fn(*args)
        finally:
            setattr(clock, step, getattr(clock, step) + time.thread_time() - start)
            if profile is not None:
                profile.disable()

    for n in range(auctions):
        before = clock.total()
        layer = crypto.KeyPair.generate()
        signed_offer = _offer(seller, layer, n)
        timed("auth", coordinator.authenticate, *_auth(seller, "OpenAuction"))
        auction = timed("open", coordinator.open_auction, seller.name, signed_offer)
        announcement = pb.AuctionAnnouncement.FromString(auction.announcement.payload)
        bids = [(b, *b.seal_bid(announcement, b.policy(announcement) or 0)) for b in buyers]
        for buyer, signed_bid, _own in bids:
            if hasattr(coordinator, "payload_signer"):  # a bid authenticates its own call
                timed("auth", coordinator.payload_signer, signed_bid)
            else:  # the code before: a signed call header as well
                timed("auth", coordinator.authenticate, *_auth(buyer, "PlaceBid"))
            response = timed("bid", coordinator.place_bid, buyer.name, signed_bid)
            assert response.HasField("receipt")
        timed("close", coordinator._close, auction.name)
        task = seller_task(coordinator, auction.name)
        unsealed = seller_unseal(seller, layer, task)
        if hasattr(coordinator, "payload_signer"):
            timed("auth", coordinator.payload_signer, unsealed)
        else:
            timed("auth", coordinator.authenticate, *_auth(seller, "UnsealBids"))
        timed("unseal", coordinator.unseal, seller.name, unsealed)
        record = coordinator.auctions[auction.name]
        assert record.state == pb.AUCTION_STATE_SOLD, record.state
        await asyncio.sleep(0)
        signed_release = _release(coordinator, seller, auction.name)
        if hasattr(coordinator, "payload_signer"):
            timed("auth", coordinator.payload_signer, signed_release)
        else:
            timed("auth", coordinator.authenticate, *_auth(seller, "ReleaseLeadKey"))
        timed("release", coordinator.release_key, seller.name, signed_release)
        per_auction.append(clock.total() - before)
    cpu = clock.total() / auctions
    return {
        "bidders": bidders,
        "auctions": auctions,
        "load_average": os.getloadavg(),
        "coordinator_cpu_ms_per_auction": cpu * 1000,
        "coordinator_cpu_ms_per_auction_median": statistics.median(per_auction) * 1000,
        "by_step_ms": {k: v * 1000 / auctions for k, v in vars(clock).items()},
        "one_core_auctions_per_s": 1 / cpu,
    }


def _offer(seller: ParticipantNode, layer: crypto.KeyPair, n: int) -> pb.SignedPayload:
    """The seller's signed offer of lead ``n`` (its side of Sell)."""
    offer = pb.LeadOffer(
        seller=seller.name,
        lead_id=f"lead-{n}",
        lead_ref=os.urandom(16),
        features=pb.LeadFeatures(segment="A"),
        min_bid_price=common_pb2.Money(amount_minor=50_000, currency="RUB"),
        seller_layer_public_key=layer.encryption_public,
    )
    offer.create_time.GetCurrentTime()
    return crypto.sign(seller.keys.signing, offer, seller.name)


def _release(coordinator: Coordinator, seller: ParticipantNode, name: str) -> pb.SignedPayload:
    """The seller's signed release of a data key to the winner."""
    view = coordinator.result_view(seller.name, name)
    release = pb.LeadKeyRelease(
        auction=name,
        winner=view.seller_view.winner,
        award_round=1,
        wrapped_data_key=crypto.seal(
            view.seller_view.winner_encryption_public_key, "x", b"", os.urandom(32)
        ),
    )
    return crypto.sign(seller.keys.signing, release, seller.name)


def seller_task(coordinator: Coordinator, name: str) -> pb.UnsealTask:
    """The unseal task the coordinator emitted to the seller for ``name``."""
    for event in reversed(coordinator._events["participants/seller"]):
        if event.HasField("unseal_task") and event.unseal_task.auction == name:
            return event.unseal_task
    raise AssertionError("no unseal task")


def seller_unseal(
    seller: ParticipantNode, layer: crypto.KeyPair, task: pb.UnsealTask
) -> pb.SignedPayload:
    """The seller's outer-layer opening of every bid (its work, outside the clock)."""
    from lendgate.auction.coordinator import OUTER_LABEL  # noqa: PLC0415

    bid_set = pb.BidSetCommitment.FromString(task.bid_set.payload)
    out = pb.UnsealedBids(auction=task.auction, merkle_root=bid_set.merkle_root)
    for item in task.items:
        inner = crypto.open_sealed(
            layer.encryption,
            OUTER_LABEL,
            task.auction.encode(),
            pb.SealedBox.FromString(item.encrypted_opening),
        )
        out.bids.add(leaf_index=item.inclusion.leaf_index, inner_opening=inner)
    return crypto.sign(seller.keys.signing, out, seller.name)


def cli(argv: list[str] | None = None) -> int:
    """``python -m bench.auction_coordinator ...``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bidders", type=int, default=20)
    parser.add_argument("--auctions", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the steps")
    args = parser.parse_args(argv)
    profile = cProfile.Profile() if args.profile else None
    figures = asyncio.run(run(args.bidders, args.auctions, profile))
    print(json.dumps(figures, indent=2))
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
