"""A full auction between separate processes over real gRPC: one ``lendgate serve``
(the coordinator) and six ``lendgate node`` processes (a seller and five buyers), each
with its own keys, on ephemeral loopback ports."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import common_pb2, participant_pb2_grpc
from lendgate.v1 import participant_pb2 as ppb
from tests.conftest import START_TIMEOUT_S, ServerProcess, clean_env, start_server, stop_server

BUYERS = {"mfo-1": 60_000, "mfo-2": 90_000, "mfo-3": 150_000, "mfo-4": 120_000, "mfo-5": 0}
"""Segment "A" price per buyer; 0 = bidding disabled (it is offered the lead, no bid)."""


@dataclass
class NodeProcess:
    """A ``lendgate node`` child process, the address it reported and its log."""

    participant: str
    process: subprocess.Popen[str]
    address: str = ""
    log: list[str] = field(default_factory=list)
    drain: threading.Thread | None = None


def _drain(node: NodeProcess, ready: threading.Event) -> None:
    assert node.process.stderr is not None
    for line in node.process.stderr:
        node.log.append(line)
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "node serving":
            node.address = entry["address"]
            ready.set()
    node.process.stderr.close()
    ready.set()  # exited: let the waiter see it


def start_node(participant: str, coordinator: str) -> tuple[NodeProcess, threading.Event]:
    """Start ``lendgate node`` on port 0; its stderr is drained by a thread."""
    cmd = [sys.executable, "-m", "lendgate.cli", "node", "--participant", participant]
    cmd += ["--listen", "127.0.0.1:0", "--coordinator", coordinator]
    cmd += ["--landing-url", f"https://{participant}.example/landing"]
    process = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=clean_env()
    )
    node = NodeProcess(participant, process)
    ready = threading.Event()
    node.drain = threading.Thread(target=_drain, args=(node, ready), daemon=True)
    node.drain.start()
    return node, ready


def stop(node: NodeProcess) -> None:
    """SIGTERM the node (SIGKILL if it hangs)."""
    if node.process.poll() is None:
        node.process.terminate()
        try:
            node.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
    if node.drain is not None:
        node.drain.join(timeout=20)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, NodeProcess]]]:
    """The coordinator process and the six node processes."""
    server = start_server(tmp_path, env=clean_env(LENDGATE_AUCTION_BIDDING_WINDOW_S="2.0"))
    nodes: dict[str, NodeProcess] = {}
    try:
        started = [start_node(pid, server.address) for pid in ("seller", *BUYERS)]
        for node, _ in started:
            nodes[node.participant] = node
        for node, ready in started:
            ready.wait(START_TIMEOUT_S)
            assert node.address, f"{node.participant} did not start:\n" + "".join(node.log)
        yield server, nodes
    finally:
        for node in nodes.values():
            stop(node)
        stop_server(server)


def policy(price: int) -> ppb.SetBiddingPolicyRequest:
    if not price:
        return ppb.SetBiddingPolicyRequest(policy=ppb.BiddingPolicy(enabled=False))
    table = ppb.SegmentPricingTable(
        entries=[
            ppb.SegmentPrice(
                segment="A", price=common_pb2.Money(amount_minor=price, currency="RUB")
            )
        ]
    )
    return ppb.SetBiddingPolicyRequest(policy=ppb.BiddingPolicy(enabled=True, segment_prices=table))


def offer(lead_id: str, phone: str) -> ppb.SellRequest:
    return ppb.SellRequest(
        lead_id=lead_id,
        features=pb.LeadFeatures(segment="A", region="RU-MOW", session_id=f"s-{lead_id}"),
        personal_data=pb.PersonalData(phone=phone, consent_id="c-1"),
        min_bid_price=common_pb2.Money(amount_minor=50_000, currency="RUB"),
    )


async def next_outcome(
    stub: participant_pb2_grpc.ParticipantNodeServiceStub, after: int
) -> ppb.NotifyResponse:
    """The first won/lost notice after sequence ``after`` on a node's Notify stream."""
    stream = stub.Notify(ppb.NotifyRequest(after_sequence=after))
    try:
        async for notice in stream:
            if notice.HasField("lead_won") or notice.HasField("bid_lost"):
                return notice  # type: ignore[no-any-return]
    finally:
        stream.cancel()
    raise AssertionError("the Notify stream ended")


def test_full_auction_between_a_coordinator_and_six_node_processes(
    network: tuple[ServerProcess, dict[str, NodeProcess]],
) -> None:
    _, nodes = network

    async def main() -> None:
        channels = {pid: grpc.aio.insecure_channel(n.address) for pid, n in nodes.items()}
        stubs = {
            pid: participant_pb2_grpc.ParticipantNodeServiceStub(ch) for pid, ch in channels.items()
        }
        try:
            for pid, price in BUYERS.items():
                await stubs[pid].SetBiddingPolicy(policy(price), timeout=10)
            await stubs["seller"].SetBiddingPolicy(policy(0), timeout=10)

            sale = await stubs["seller"].Sell(offer("app-1", "+79990000001"), timeout=30)
            assert sale.outcome == ppb.SALE_OUTCOME_SOLD
            assert (sale.winner, sale.price.amount_minor) == ("participants/mfo-3", 150_000)
            assert sale.redirect_url.startswith("https://mfo-3.example/landing?lg_lead=")

            # Each bidder's first notice is the offer; the next outcome is the result.
            bidders = [pid for pid, price in BUYERS.items() if price]
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(next_outcome(stubs[pid], 1) for pid in bidders)), 60
            )
            by_pid = dict(zip(bidders, outcomes, strict=True))
            won = by_pid.pop("mfo-3").lead_won
            # Only the winner decrypted the personal data (HPKE-wrapped key).
            assert won.personal_data.phone == "+79990000001" and won.deal == sale.deal
            for pid, notice in by_pid.items():
                lost = notice.bid_lost
                # Every loser checked its inclusion proof and the ZK range proof.
                assert lost.outcome == pb.BID_OUTCOME_LOST, pid
                assert lost.proofs_verified, pid

            # The winner confirms the client arrived, then the loan was issued.
            for status in (pb.LEAD_STATUS_CLIENT_ARRIVED, pb.LEAD_STATUS_ISSUED):
                change = ppb.UpdateLeadStatusRequest(
                    deal=sale.deal,
                    status=status,
                    loan_amount=common_pb2.Money(amount_minor=3_000_000, currency="RUB"),
                )
                deal = (await stubs["mfo-3"].UpdateLeadStatus(change, timeout=10)).deal
            assert deal.status == pb.LEAD_STATUS_ISSUED
            assert [h.status for h in deal.history] == [
                pb.LEAD_STATUS_CLIENT_ARRIVED,
                pb.LEAD_STATUS_ISSUED,
            ]

            # The highest bidder's node dies; the next auction completes for the others.
            nodes["mfo-3"].process.kill()
            stop(nodes["mfo-3"])
            second = await stubs["seller"].Sell(offer("app-2", "+79990000002"), timeout=30)
            assert second.outcome == ppb.SALE_OUTCOME_SOLD
            assert (second.winner, second.price.amount_minor) == ("participants/mfo-4", 120_000)
        finally:
            for ch in channels.values():
                await ch.close()

    asyncio.run(main())
