"""The coordinator's state survives a restart: participants, decided auctions and the
keys old signatures verify under come back from the store (both backends); an auction
in flight when the process is SIGKILLed ends deterministically in a signed CANCELLED
result that its seller and bidders verify, with no deal and no ledger entry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import threading
import time
from pathlib import Path

import grpc
import pytest

from lendgate.auction import crypto, keystore
from lendgate.auction.coordinator import RESTART_CANCEL_REASON, Coordinator
from lendgate.auction.node import ParticipantNode
from lendgate.auction.policy import segment_policy
from lendgate.store import open_store
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import auction_pb2_grpc
from lendgate.v1 import participant_pb2 as ppb
from tests.auction_net import start_net
from tests.conftest import ServerProcess, clean_env, start_server, stop_server
from tests.test_auction import sell_request
from tests.test_store import database_url, settings_for

__all__ = ["database_url"]  # the fixture, both backends

PRICES = {"mfo-a": 90_000, "mfo-b": 150_000}
RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)]


def test_participants_auctions_and_keys_come_back_from_the_store(
    database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "auction" / "coordinator.key"

    async def first_life() -> tuple[dict[str, pb.Participant], pb.SignedPayload, str, bytes]:
        store = open_store(None, settings_for(database_url))
        net = await start_net(store=store, key_file=key_file)
        try:
            await net.add_node("seller", None)
            for pid, price in PRICES.items():
                await net.add_node(pid, {"A": price})
            sale = await net.node_stubs["seller"].Sell(
                sell_request("app-1", "+70000000001"), timeout=10
            )
            assert sale.outcome == ppb.SALE_OUTCOME_SOLD
            # The operator-side change of a participant is kept too.
            net.coordinator.suspend("participants/mfo-a", "unpaid balance")
            await net.coordinator.flush_books()
            return (
                dict(net.coordinator.participants),
                sale.result,
                sale.auction,
                net.coordinator.keys.signing_public,
            )
        finally:
            await net.close()
            await store.aclose()

    participants, signed_result, auction, key = asyncio.run(first_life())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    async def second_life() -> None:
        store = open_store(None, settings_for(database_url))
        try:
            coordinator = Coordinator(store=store, key_file=key_file)
            await coordinator.start()
            assert coordinator.keys.signing_public == key
            assert coordinator.participants == participants
            suspended = coordinator.participants["participants/mfo-a"]
            assert suspended.state == pb.PARTICIPANT_STATE_SUSPENDED
            record = coordinator.auctions[auction]
            assert record.state == pb.AUCTION_STATE_SOLD and record.result == signed_result
            # Signed before the restart, verified under the key served after it.
            result = crypto.verify(
                signed_result, pb.AuctionResult, coordinator.info().signing_public_key
            )
            assert result.state == pb.AUCTION_STATE_SOLD
            # The seller's view (winner, price) is rebuilt from the stored bids.
            view = coordinator.result_view("participants/seller", auction)
            assert view.seller_view.winner == "participants/mfo-b"
            assert view.seller_view.price.amount_minor == PRICES["mfo-b"]
        finally:
            await store.aclose()

    asyncio.run(second_life())

    # Without the key file the store's keys would become unverifiable: refuse to start.
    key_file.unlink()
    store = open_store(None, settings_for(database_url))
    try:
        with pytest.raises(keystore.KeyFileError, match="restore the key file"):
            Coordinator(store=store, key_file=key_file)
    finally:
        store.close()


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = keystore.key_path(tmp_path)
    keystore.load_or_create(path)
    os.chmod(path, 0o644)
    with pytest.raises(keystore.KeyFileError, match="chmod 600"):
        keystore.load_or_create(path)


def test_a_sealed_key_file_needs_its_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = keystore.key_path(tmp_path)
    monkeypatch.setenv(keystore.PASSPHRASE_ENV, "correct horse")
    keys = keystore.load_or_create(path)
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert keystore.load_or_create(path).signing_public == keys.signing_public
    monkeypatch.setenv(keystore.PASSPHRASE_ENV, "wrong")
    with pytest.raises(keystore.KeyFileError):
        keystore.load_or_create(path)


def _start(data_dir: Path, *args: str) -> ServerProcess:
    """A coordinator process whose log is drained (a full pipe would stall it)."""
    server = start_server(data_dir, *args, env=clean_env())
    assert server.process.stderr is not None
    stream = server.process.stderr

    def drain() -> None:
        with contextlib.suppress(ValueError), stream:
            for line in stream:
                server.log_lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return server


async def _until(check: object, what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check()`` (a guard against hanging, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_sigkill_mid_auction_then_restart(tmp_path: Path) -> None:
    server = _start(tmp_path)
    port = server.address.rsplit(":", 1)[1]
    processes = [server]

    async def main() -> None:
        running = server
        channel = grpc.aio.insecure_channel(server.address, options=RECONNECT)
        stub = auction_pb2_grpc.AuctionServiceStub(channel)
        seller = ParticipantNode("seller", stub, policy=segment_policy({}))
        buyers = {
            pid: ParticipantNode(pid, stub, policy=segment_policy({"A": price}))
            for pid, price in PRICES.items()
        }
        # Offered every lead, never bids: an auction stays open until its deadline.
        idle = ParticipantNode("idle", stub, policy=segment_policy({}))
        nodes = [seller, *buyers.values(), idle]
        try:
            for node in nodes:
                await node.start()
            first = sell_request("app-1", "+70000000001")
            first.bidding_window.FromMilliseconds(300)
            sold = await asyncio.wait_for(seller.sell(first), 30)
            assert sold.outcome == ppb.SALE_OUTCOME_SOLD and sold.winner == buyers["mfo-b"].name
            loser_receipt = next(
                n.lead_offered.bid_response.receipt
                for n in buyers["mfo-a"].notices
                if n.HasField("lead_offered") and n.lead_offered.auction == sold.auction
            )
            pinned = seller.coordinator_key

            second = sell_request("app-2", "+70000000002")
            second.bidding_window.FromSeconds(30)
            pending = asyncio.create_task(seller.sell(second))
            await _until(
                lambda: (
                    len(seller.sales) == 2
                    and all(
                        any(a != sold.auction and b.receipt for a, b in n.bids.items())
                        for n in buyers.values()
                    )
                ),
                "both bids receipted in the second auction",
            )
            in_flight = next(a for a in seller.sales if a != sold.auction)

            os.kill(running.process.pid, signal.SIGKILL)
            running.process.wait()
            running = _start(tmp_path, "--listen", f"127.0.0.1:{port}")
            processes.append(running)

            # The seller's pending Sell ends: a signed CANCELLED, verified by its node.
            cancelled = await asyncio.wait_for(pending, 60)
            assert cancelled.outcome == ppb.SALE_OUTCOME_CANCELLED
            assert cancelled.auction == in_flight
            result = crypto.verify(cancelled.result, pb.AuctionResult, pinned)
            assert result.state == pb.AUCTION_STATE_CANCELLED
            assert result.cancel_reason == RESTART_CANCEL_REASON
            # Each bidder learns it too, from the same signed result.
            for node in buyers.values():
                await _until(
                    lambda node=node: any(
                        n.HasField("bid_lost") and n.bid_lost.auction == in_flight
                        for n in node.notices
                    ),
                    f"{node.name} told of the cancellation",
                )
                notice = next(
                    n.bid_lost
                    for n in node.notices
                    if n.HasField("bid_lost") and n.bid_lost.auction == in_flight
                )
                assert notice.outcome == pb.BID_OUTCOME_CANCELLED and notice.proofs_verified
                assert not node.evidence

            # Same keys: what was signed before the crash still verifies.
            info = await stub.GetCoordinatorInfo(pb.GetCoordinatorInfoRequest())
            assert info.signing_public_key == pinned
            assert crypto.verify(sold.result, pb.AuctionResult, info.signing_public_key)
            assert crypto.verify(loser_receipt, pb.BidReceipt, info.signing_public_key)
            # Participants are still registered (their call signatures verify).
            me = await buyers["mfo-a"].call("GetParticipant", pb.GetParticipantRequest())
            assert me.participant.name == buyers["mfo-a"].name
            # One deal (the first auction's), none for the cancelled one; books balance.
            deals = (await seller.call("ListDeals", pb.ListDealsRequest())).deals
            assert [d.auction for d in deals] == [sold.auction]
            for node in nodes:
                ledger = await node.call("GetLedger", pb.GetLedgerRequest())
                expected = {
                    "seller": 150_000 - 15_000,
                    "mfo-b": -150_000,
                }.get(node.id, 0)
                assert sum(b.amount_minor for b in ledger.balances) == expected, node.id

            # Deterministic: after another crash the cancellation is the same bytes.
            os.kill(running.process.pid, signal.SIGKILL)
            running.process.wait()
            running = _start(tmp_path, "--listen", f"127.0.0.1:{port}")
            processes.append(running)
            view = await seller.call(
                "GetAuctionResult", pb.GetAuctionResultRequest(auction=in_flight)
            )
            assert view.result == cancelled.result
        finally:
            for node in nodes:
                await node.stop()
            await channel.close()

    try:
        asyncio.run(main())
    finally:
        for process in processes:
            if process.process.poll() is None:
                stop_server(process)
