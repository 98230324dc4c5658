"""The auction protocol over real gRPC: one coordinator and participant node servers.

Each property of issue 7 has a test where a misbehaving party tries to break it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import grpc
import pytest

from lendgate import _core
from lendgate.auction import crypto
from lendgate.auction.audit import loss_is_consistent
from lendgate.auction.coordinator import INNER_LABEL, LEAD_KEY_LABEL, OUTER_LABEL
from lendgate.auction.crypto import CryptoError
from lendgate.auction.records import Bid
from lendgate.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import common_pb2
from lendgate.v1 import participant_pb2 as ppb
from tests.auction_net import Net, start_net

PRICES = {"seller": None, "mfo-a": {"A": 90_000}, "mfo-b": {"A": 150_000}, "mfo-c": {"A": 120_000}}


def run(test: Callable[[Net], Awaitable[None]], prices: dict[str, Any] = PRICES) -> None:
    async def main() -> None:
        net = await start_net()
        try:
            for pid, table in prices.items():
                await net.add_node(pid, table)
            await test(net)
        finally:
            await net.close()

    asyncio.run(main())


def sell_request(lead_id: str = "app-1", phone: str = "+79990001122") -> ppb.SellRequest:
    return ppb.SellRequest(
        lead_id=lead_id,
        features=pb.LeadFeatures(segment="A", region="RU-MOW", session_id="s-1"),
        personal_data=pb.PersonalData(phone=phone, consent_id="c-1"),
        min_bid_price=common_pb2.Money(amount_minor=50_000, currency="RUB"),
    )


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``condition`` until it holds (a guard against hanging, not a timed assertion)."""
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def settle_notices(net: Net) -> None:
    await net.settle()


def test_full_auction_over_grpc_highest_bid_wins_and_only_winner_reads_the_lead() -> None:
    async def test(net: Net) -> None:
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        assert sale.outcome == ppb.SALE_OUTCOME_SOLD
        assert sale.winner == "participants/mfo-b" and sale.price.amount_minor == 150_000
        assert sale.redirect_url.startswith("https://mfo-b.example/landing?lg_lead=")
        await settle_notices(net)
        won = [n.lead_won for n in net.nodes["mfo-b"].notices if n.HasField("lead_won")]
        assert won and won[0].personal_data.phone == "+79990001122"
        for loser in ("mfo-a", "mfo-c"):
            lost = [n.bid_lost for n in net.nodes[loser].notices if n.HasField("bid_lost")]
            assert lost and lost[0].outcome == pb.BID_OUTCOME_LOST and lost[0].proofs_verified
            assert not any(n.HasField("lead_won") for n in net.nodes[loser].notices)
        # The signed result is checkable by anyone holding the coordinator's key...
        info = net.coordinator.info()
        result = crypto.verify(sale.result, pb.AuctionResult, info.signing_public_key)
        assert result.state == pb.AUCTION_STATE_SOLD
        # ...and a forged one is not.
        forged = pb.SignedPayload()
        forged.CopyFrom(sale.result)
        forged.payload = forged.payload.replace(result.winning_commitment, bytes(32))
        with pytest.raises(CryptoError):
            crypto.verify(forged, pb.AuctionResult, info.signing_public_key)
        # Ledger: lead price and commission booked, each entry balanced.
        entries = net.coordinator.ledger.repository.entries()
        assert [e.type.name for e in entries] == ["LEAD_PRICE", "COMMISSION"]
        assert all(sum(p.amount_minor for p in e.postings) == 0 for e in entries)

    run(test)


def test_bids_stay_hidden_from_coordinator_and_seller_until_unsealed() -> None:
    async def test(net: Net) -> None:
        net.coordinator.config = replace(
            net.coordinator.config, close_when_all_bid=False, bidding_window_s=3.0
        )

        async def sell() -> ppb.SellResponse:
            return await net.node_stubs["seller"].Sell(sell_request(), timeout=10)  # type: ignore[no-any-return]

        seller_task = asyncio.create_task(sell())
        await until(lambda: any(len(r.bids) == 3 for r in net.coordinator.auctions.values()))
        record = next(iter(net.coordinator.auctions.values()))
        assert record.bids and record.state == pb.AUCTION_STATE_OPEN
        sale_state = net.nodes["seller"].sales[record.name]
        for bid in record.bids:
            outer = pb.SealedBox.FromString(bid.encrypted_opening)
            # The coordinator's key does not open the outer (seller) layer...
            with pytest.raises(CryptoError):
                crypto.open_sealed(
                    net.coordinator.keys.encryption, OUTER_LABEL, record.name.encode(), outer
                )
            # ...and the seller, who can strip its layer, cannot read the inner one.
            inner = crypto.open_sealed(
                sale_state.layer_key, OUTER_LABEL, record.name.encode(), outer
            )
            aad = f"{record.name}\x00{bid.bidder}".encode()
            with pytest.raises(CryptoError):
                crypto.open_sealed(
                    sale_state.layer_key, INNER_LABEL, aad, pb.SealedBox.FromString(inner)
                )
            assert bid.amount_minor == 0  # nothing opened before the deadline
        assert (await seller_task).outcome == ppb.SALE_OUTCOME_SOLD

    run(test)


def test_late_bid_gets_a_signed_rejection() -> None:
    async def test(net: Net) -> None:
        net.coordinator.config = replace(net.coordinator.config, close_when_all_bid=False)
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        record = net.coordinator.auctions[sale.auction]
        announcement = crypto.verify(
            record.announcement, pb.AuctionAnnouncement, net.coordinator.keys.signing_public
        )
        late = net.nodes["mfo-a"]
        del late.bids[sale.auction]
        signed, own = late.seal_bid(announcement, 999_000)
        response = await late.call("PlaceBid", pb.PlaceBidRequest(bid=signed))
        late.check_response(own, response)  # verifies the coordinator's signature
        assert own.rejection is not None and own.rejection.reason == pb.BID_REJECTION_REASON_LATE
        assert len(record.bids) == 3

    run(test)


def test_replayed_and_forged_bids_are_rejected() -> None:
    async def test(net: Net) -> None:
        net.coordinator.config = replace(net.coordinator.config, close_when_all_bid=False)
        await net.nodes["seller"].call("OpenAuction", pb.OpenAuctionRequest(offer=_offer(net)))
        record = next(iter(net.coordinator.auctions.values()))
        announcement = crypto.verify(
            record.announcement, pb.AuctionAnnouncement, net.coordinator.keys.signing_public
        )
        node = net.nodes["mfo-a"]
        await until(lambda: node.name in record.bidders)
        signed, own = node.seal_bid(announcement, 60_000)
        # Replay of a bid the policy already placed (same bidder) -> signed DUPLICATE.
        response = await node.call("PlaceBid", pb.PlaceBidRequest(bid=signed))
        node.check_response(own, response)
        assert (
            own.rejection is not None and own.rejection.reason == pb.BID_REJECTION_REASON_DUPLICATE
        )
        # A bid by mfo-a re-signed as mfo-c (forged signer) -> PERMISSION_DENIED.
        forged = pb.SignedPayload(
            payload=signed.payload, signature=signed.signature, signer="participants/mfo-c"
        )
        with pytest.raises(PermissionDeniedError):
            await net.nodes["mfo-c"].call("PlaceBid", pb.PlaceBidRequest(bid=forged))
        # PlaceBid is authenticated by the bid's own signature, not a call header: the
        # replay sent without one is still the same bid -> signed DUPLICATE.
        response = await node.stub.PlaceBid(pb.PlaceBidRequest(bid=signed))
        node.check_response(own, response)
        assert own.rejection.reason == pb.BID_REJECTION_REASON_DUPLICATE
        # A bid whose signer is not registered -> UNAUTHENTICATED.
        stranger = pb.SignedPayload(
            payload=signed.payload, signature=signed.signature, signer="participants/nobody"
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await node.stub.PlaceBid(pb.PlaceBidRequest(bid=stranger))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Another call without the caller's signature header -> UNAUTHENTICATED.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await node.stub.ListDeals(pb.ListDealsRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        await until(lambda: record.state == pb.AUCTION_STATE_CANCELLED)  # no Sell: no unseal

    run(test)


def _offer(net: Net, phone: str = "+79990009999") -> pb.SignedPayload:
    seller = net.nodes["seller"]
    offer = pb.LeadOffer(
        seller=seller.name,
        lead_id="x",
        lead_ref=b"r" * 16,
        features=pb.LeadFeatures(segment="A"),
        min_bid_price=common_pb2.Money(amount_minor=50_000, currency="RUB"),
        seller_layer_public_key=crypto.KeyPair.generate().encryption_public,
        phone_keyed_hash=crypto.phone_keyed_hash(b"k", phone),
    )
    import time  # noqa: PLC0415

    from lendgate.auction.coordinator import ts  # noqa: PLC0415

    offer.create_time.CopyFrom(ts(time.time()))
    return crypto.sign(seller.keys.signing, offer, seller.name)


def test_dropped_bid_is_detected_by_its_owner() -> None:
    async def test(net: Net) -> None:
        original_close = net.coordinator._close

        def dishonest_close(name: str) -> None:
            record = net.coordinator.auctions[name]
            victim = next(b for b in record.bids if b.bidder == "participants/mfo-b")
            record.bids.remove(victim)  # drop the highest bid before signing the root
            for i, b in enumerate(record.bids):
                b.leaf_index = i
            original_close(name)

        net.coordinator._close = dishonest_close  # type: ignore[method-assign]
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        assert sale.winner == "participants/mfo-c"
        owner = net.nodes["mfo-b"]
        view = net.coordinator.result_view(owner.name, sale.auction)
        own = owner.bids[sale.auction]
        assert own.receipt is not None  # the owner holds a signed receipt...
        bid_set = crypto.verify(view.bid_set, pb.BidSetCommitment, owner.coordinator_key)
        # ...whose leaf cannot be under the signed root: no proof exists, and the
        # coordinator can only answer NOT_FOUND — the receipt is the evidence.
        assert bid_set.leaf_count == 2
        with pytest.raises(NotFoundError):
            await owner.check_own_bid(sale.auction, view)

    run(test)


def test_coordinator_changing_the_winner_is_detected() -> None:
    async def test(net: Net) -> None:
        net.coordinator.cheat_pick_second = True
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        assert sale.winner == "participants/mfo-c"  # the cheat happened
        record = net.coordinator.auctions[sale.auction]
        cheated = net.nodes["mfo-b"]
        own = cheated.bids[sale.auction]
        victim = next(b for b in record.bids if b.bidder == cheated.name)
        assert own.receipt is not None
        receipt = crypto.sign(net.coordinator.keys.signing, own.receipt, "coordinator")
        # The loser reveals its opening in a dispute; with the seller's verified price the
        # signed result is shown inconsistent with the fixed winner rule.
        assert not loss_is_consistent(
            net.coordinator.keys.signing_public,
            sale.result,
            receipt,
            own.amount,
            own.nonce,
            victim.encrypted_opening,
            sale.price.amount_minor,
            "RUB",
        )
        # Without any dispute, the cheated loser's node catches it: no range proof can
        # show that the announced winner beats its bid.
        await settle_notices(net)
        lost = [n.bid_lost for n in cheated.notices if n.HasField("bid_lost")]
        assert lost and lost[0].outcome == pb.BID_OUTCOME_LOST and not lost[0].proofs_verified
        assert any("loss not proven" in e for e in cheated.evidence)
        honest = net.nodes["mfo-a"]
        honest_lost = [n.bid_lost for n in honest.notices if n.HasField("bid_lost")]
        assert honest_lost and honest_lost[0].proofs_verified and not honest.evidence
        honest_bid = honest.bids[sale.auction]
        assert honest_bid.receipt is not None
        honest_receipt = crypto.sign(
            net.coordinator.keys.signing, honest_bid.receipt, "coordinator"
        )
        honest_leaf = next(b for b in record.bids if b.bidder == honest.name)
        assert loss_is_consistent(
            net.coordinator.keys.signing_public,
            sale.result,
            honest_receipt,
            honest_bid.amount,
            honest_bid.nonce,
            honest_leaf.encrypted_opening,
            sale.price.amount_minor,
            "RUB",
        )

    run(test)


def test_coordinator_forging_a_loser_proof_about_the_winning_price_is_caught() -> None:
    async def test(net: Net) -> None:
        net.coordinator.cheat_pick_second = True

        def forge(auction: str, root: bytes, winner: Bid, loser: Bid) -> bytes:
            # The liar proves "winner - loser - k >= 0" for a loser amount of 1 (or, in
            # effect, a higher winning price): a valid proof, but of another statement.
            return _core.prove_winner_exceeds(
                auction,
                root,
                winner.leaf_index,
                winner.amount_minor,
                winner.nonce,
                winner.bidder,
                loser.leaf_index,
                1,
                loser.nonce,
                loser.bidder,
            )

        net.coordinator.prove_winner_exceeds = forge  # type: ignore[method-assign]
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        await settle_notices(net)
        cheated = net.nodes["mfo-b"]
        view = net.coordinator.result_view(cheated.name, sale.auction)
        proof = await net.coordinator.bid_proof(
            cheated.name, sale.auction, cheated.bids[sale.auction].bid_hash
        )
        assert proof.range_proof  # a proof was sent...
        assert not await cheated.check_own_bid(sale.auction, view)  # ...and rejected
        lost = [n.bid_lost for n in cheated.notices if n.HasField("bid_lost")]
        assert lost and not lost[0].proofs_verified

    run(test)


def test_loser_proof_reveals_no_amount_and_is_bound_to_its_auction() -> None:
    async def test(net: Net) -> None:
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        await settle_notices(net)
        loser = net.nodes["mfo-c"]
        own = loser.bids[sale.auction]
        proof = await loser.call(
            "GetBidProof", pb.GetBidProofRequest(auction=sale.auction, bid_hash=own.bid_hash)
        )
        assert proof.outcome == pb.BID_OUTCOME_LOST and proof.range_proof
        assert proof.tie_break.startswith("highest amount")
        # Neither the winning amount nor the price appears in anything the loser gets.
        view = await loser.call(
            "GetAuctionResult", pb.GetAuctionResultRequest(auction=sale.auction)
        )
        assert not view.HasField("seller_view") and not view.HasField("winner_view")
        for blob in (proof.SerializeToString(), view.SerializeToString()):
            assert (150_000).to_bytes(8, "big") not in blob
            assert common_pb2.Money(amount_minor=150_000).SerializeToString() not in blob
        result = crypto.verify(view.result, pb.AuctionResult, loser.coordinator_key)
        assert result.tie_break == proof.tie_break
        # The proof verifies here and nowhere else: another auction id or root fails.
        bid_set = crypto.verify(view.bid_set, pb.BidSetCommitment, loser.coordinator_key)
        args = (
            result.winning_leaf_index,
            result.winning_pedersen_commitment,
            proof.inclusion.leaf_index,
            own.pedersen,
            proof.range_proof,
        )
        assert _core.verify_winner_exceeds(sale.auction, bid_set.merkle_root, *args)
        assert not _core.verify_winner_exceeds("auctions/other", bid_set.merkle_root, *args)
        assert not _core.verify_winner_exceeds(sale.auction, bytes(32), *args)

    run(test)


def test_ties_go_to_the_earlier_receipt_and_low_bids_are_invalid() -> None:
    prices = {
        "seller": None,
        "mfo-a": {"A": 100_000},
        "mfo-b": {"A": 100_000},
        "mfo-c": {"A": 40_000},
    }

    async def test(net: Net) -> None:
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        record = net.coordinator.auctions[sale.auction]
        first = min(
            (b for b in record.bids if b.amount_minor == 100_000), key=lambda b: b.leaf_index
        )
        assert sale.winner == first.bidder
        # The tied loser's zero-knowledge proof holds with k = 0 (the tie rule is part of
        # the proven statement), so it verifies without learning that it was a tie.
        await settle_notices(net)
        tied = next(b.bidder for b in record.bids if b.amount_minor == 100_000 and b is not first)
        node = net.nodes[tied.split("/")[1]]
        lost = [n.bid_lost for n in node.notices if n.HasField("bid_lost")]
        assert lost and lost[0].outcome == pb.BID_OUTCOME_LOST and lost[0].proofs_verified
        # mfo-c's policy does not bid below MinBidPrice; force one through and see it invalid.
        assert "participants/mfo-c" not in record.bidders

    run(test, prices)


def test_only_the_winner_can_decrypt_the_personal_data() -> None:
    async def test(net: Net) -> None:
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        await settle_notices(net)
        record = net.coordinator.auctions[sale.auction]
        wrapped = [
            e.lead_key
            for e in net.coordinator._events["participants/mfo-b"]
            if e.HasField("lead_key")
        ]
        release = pb.LeadKeyRelease.FromString(wrapped[0].payload)
        # The coordinator relays the release but its key does not open it, and a loser's neither.
        for key in (net.coordinator.keys.encryption, net.nodes["mfo-c"].keys.encryption):
            with pytest.raises(CryptoError):
                crypto.open_sealed(
                    key, LEAD_KEY_LABEL, sale.auction.encode(), release.wrapped_data_key
                )
        # The coordinator stores only ciphertext; the phone appears nowhere in clear.
        assert b"+79990001122" not in record.offer.SerializeToString()
        # The coordinator refuses to release a key to anyone but the winner.
        seller = net.nodes["seller"]
        to_loser = pb.LeadKeyRelease(
            auction=sale.auction, winner="participants/mfo-c", award_round=1
        )
        signed = crypto.sign(seller.keys.signing, to_loser, seller.name)
        with pytest.raises(PermissionDeniedError):
            await seller.call("ReleaseLeadKey", pb.ReleaseLeadKeyRequest(release=signed))

    run(test)


def test_duplicate_lead_and_lead_tracking_book_balanced_entries() -> None:
    async def test(net: Net) -> None:
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await net.node_stubs["seller"].Sell(sell_request("app-2"), timeout=10)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        buyer = net.node_stubs["mfo-b"]
        issued = ppb.UpdateLeadStatusRequest(
            deal=sale.deal,
            status=pb.LEAD_STATUS_ISSUED,
            loan_amount=common_pb2.Money(amount_minor=1_000_000, currency="RUB"),
        )
        deal = (await buyer.UpdateLeadStatus(issued, timeout=5)).deal
        assert deal.status == pb.LEAD_STATUS_ISSUED
        # The seller may not report the buyer's outcome.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await net.node_stubs["seller"].UpdateLeadStatus(issued, timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        ledger = net.coordinator.ledger
        assert all(
            sum(p.amount_minor for p in e.postings) == 0 for e in ledger.repository.entries()
        )
        settlement = ledger.settle(0, 1e12, "RUB")
        assert sum(settlement.nets.values()) == 0
        assert ledger.settle(0, 1e12, "RUB") is settlement  # idempotent

    run(test)


def test_rejected_lead_passes_to_the_next_highest_bid() -> None:
    async def test(net: Net) -> None:
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        reject = ppb.UpdateLeadStatusRequest(
            deal=sale.deal, status=pb.LEAD_STATUS_REJECTED_BY_BUYER
        )
        await net.node_stubs["mfo-b"].UpdateLeadStatus(reject, timeout=5)
        await settle_notices(net)
        record = net.coordinator.auctions[sale.auction]
        assert record.award_round == 2 and record.ranking[0].bidder == "participants/mfo-c"
        won = [n for n in net.nodes["mfo-c"].notices if n.HasField("lead_won")]
        assert won and won[0].lead_won.personal_data.phone == "+79990001122"
        # The rejecting buyer is told its bid was relinquished (no false loss alarm), and
        # mfo-a's loss is proven again against the new winner.
        proof = await net.nodes["mfo-b"].call(
            "GetBidProof",
            pb.GetBidProofRequest(
                auction=sale.auction, bid_hash=net.nodes["mfo-b"].bids[sale.auction].bid_hash
            ),
        )
        assert proof.outcome == pb.BID_OUTCOME_RELINQUISHED and not proof.range_proof
        assert not net.nodes["mfo-b"].evidence
        lost = [n.bid_lost for n in net.nodes["mfo-a"].notices if n.HasField("bid_lost")]
        assert len(lost) == 2 and all(n.proofs_verified for n in lost)
        ledger = net.coordinator.ledger
        assert ledger.balance("participants/mfo-b", "RUB") == 0  # reversed
        assert ledger.balance("participants/mfo-c", "RUB") == -120_000

    run(test)


def test_bidding_policy_is_set_over_grpc_and_bad_policies_are_refused() -> None:
    async def test(net: Net) -> None:
        stub = net.node_stubs["mfo-a"]

        def money(amount: int) -> common_pb2.Money:
            return common_pb2.Money(amount_minor=amount, currency="RUB")

        table = ppb.SegmentPricingTable(
            entries=[ppb.SegmentPrice(segment="A", price=money(170_000))]
        )
        capped = ppb.BiddingPolicy(enabled=True, segment_prices=table, max_bid=money(160_000))
        await stub.SetBiddingPolicy(ppb.SetBiddingPolicyRequest(policy=capped), timeout=5)
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        assert (sale.winner, sale.price.amount_minor) == ("participants/mfo-a", 160_000)
        bad = {
            grpc.StatusCode.INVALID_ARGUMENT: ppb.BiddingPolicy(
                enabled=True, segment_prices=table, max_bid=money(-1)
            ),
            grpc.StatusCode.NOT_FOUND: ppb.BiddingPolicy(enabled=True, python_function="nope"),
            grpc.StatusCode.UNIMPLEMENTED: ppb.BiddingPolicy(
                enabled=True, strategy="strategies/s1"
            ),
        }
        for code, spec in bad.items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.SetBiddingPolicy(ppb.SetBiddingPolicyRequest(policy=spec), timeout=5)
            assert err.value.code() == code

    run(test)


def test_an_altered_bid_is_detected_by_its_owner() -> None:
    async def test(net: Net) -> None:
        original_close = net.coordinator._close

        def altering_close(name: str) -> None:
            record = net.coordinator.auctions[name]
            victim = next(b for b in record.bids if b.bidder == "participants/mfo-b")
            # Swap in another encrypted opening (e.g. one the coordinator made up).
            victim.encrypted_opening = b"\x00" + victim.encrypted_opening[1:]
            victim.leaf_hash = _core.leaf_hash(
                victim.commitment, victim.encrypted_opening, victim.pedersen
            )
            original_close(name)

        net.coordinator._close = altering_close  # type: ignore[method-assign]
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        await settle_notices(net)
        owner = net.nodes["mfo-b"]
        view = net.coordinator.result_view(owner.name, sale.auction)
        # The proof the coordinator can give is for the altered leaf, not the receipted one.
        assert not await owner.check_own_bid(sale.auction, view)
        assert any("not under the signed root" in e for e in owner.evidence)

    run(test)


def test_the_seller_learns_only_winner_and_price_and_buyers_not_the_seller() -> None:
    async def test(net: Net) -> None:
        seller = net.nodes["seller"]
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        record = net.coordinator.auctions[sale.auction]
        # The announcement buyers get names no seller (participants are pseudonymous).
        assert b"seller" not in record.announcement.payload
        offered = [n.lead_offered for n in net.nodes["mfo-a"].notices if n.lead_offered.auction]
        assert offered and b"participants/seller" not in offered[0].SerializeToString()
        # The seller's view: winner and price; no other bid's amount anywhere in it.
        view = await seller.call(
            "GetAuctionResult", pb.GetAuctionResultRequest(auction=sale.auction)
        )
        assert view.seller_view.winner == "participants/mfo-b"
        assert not view.HasField("bidder_view") and not view.HasField("winner_view")
        blob = view.SerializeToString()
        for amount in (90_000, 120_000):
            assert common_pb2.Money(amount_minor=amount).SerializeToString()[1:] not in blob
        # The seller cannot fetch a proof about someone else's bid.
        other = next(b for b in record.bids if b.bidder == "participants/mfo-c")
        with pytest.raises(PermissionDeniedError):
            await seller.call(
                "GetBidProof",
                pb.GetBidProofRequest(auction=sale.auction, bid_hash=other.bid_hash),
            )

    run(test)


def test_retried_writes_are_answered_once_and_a_reused_key_is_refused() -> None:
    async def test(net: Net) -> None:
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        buyer = net.nodes["mfo-b"]
        issued = pb.ReportLeadStatusRequest(
            request_id="r-1",
            deal=sale.deal,
            status=pb.LEAD_STATUS_ISSUED,
            loan_amount=common_pb2.Money(amount_minor=1_000_000, currency="RUB"),
        )
        first = await buyer.call("ReportLeadStatus", issued)
        again = await buyer.call("ReportLeadStatus", issued)
        assert again == first and len(first.ledger_entries) == 1
        cpa = [
            e for e in net.coordinator.ledger.repository.entries() if e.type.name == "CPA_PAYOUT"
        ]
        assert len(cpa) == 1  # booked once
        entry = first.ledger_entries[0]
        assert entry.type == pb.LEDGER_ENTRY_TYPE_CPA_PAYOUT and len(entry.postings) == 2
        reused = pb.ReportLeadStatusRequest()
        reused.CopyFrom(issued)
        reused.status = pb.LEAD_STATUS_REFUSED
        with pytest.raises(InvalidArgumentError):
            await buyer.call("ReportLeadStatus", reused)

    run(test)


def test_sanctions_budget_and_suspension_after_repeated_rejections() -> None:
    async def test(net: Net) -> None:
        coordinator = net.coordinator
        # mfo-b's daily budget covers one lead at 150 000: its second bid opens as invalid.
        coordinator.participants["participants/mfo-b"].caps.daily_budget.CopyFrom(
            common_pb2.Money(amount_minor=200_000, currency="RUB")
        )
        stub = net.node_stubs["seller"]
        first = await stub.Sell(sell_request("app-1", "+70000000001"), timeout=10)
        assert first.winner == "participants/mfo-b"
        second = await stub.Sell(sell_request("app-2", "+70000000002"), timeout=10)
        assert second.winner == "participants/mfo-c"
        record = coordinator.auctions[second.auction]
        over = next(b for b in record.bids if b.bidder == "participants/mfo-b")
        assert over.invalid_reason == "over the buyer's daily budget"
        # mfo-c rejects three won leads: suspended; it may no longer bid or sell.
        buyer = net.nodes["mfo-c"]
        deal = second.deal
        for n in range(3):
            await buyer.call(
                "ReportLeadStatus",
                pb.ReportLeadStatusRequest(deal=deal, status=pb.LEAD_STATUS_REJECTED_BY_BUYER),
            )
            if n < 2:
                sale = await stub.Sell(sell_request(f"app-c{n}", f"+7100000000{n}"), timeout=10)
                assert sale.winner == "participants/mfo-c"
                deal = sale.deal
        suspended = coordinator.participants["participants/mfo-c"]
        assert suspended.state == pb.PARTICIPANT_STATE_SUSPENDED
        assert "rejected" in suspended.suspension_reason
        sale = await stub.Sell(sell_request("app-9", "+79000000009"), timeout=10)
        record = coordinator.auctions[sale.auction]
        assert "participants/mfo-c" not in record.bidders  # not even offered the lead
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await net.node_stubs["mfo-c"].Sell(sell_request("own", "+79000000010"), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    run(test)


def test_the_bid_set_closes_when_every_invited_buyer_has_bid() -> None:
    async def test(net: Net) -> None:
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        record = net.coordinator.auctions[sale.auction]
        assert record.bid_set is not None
        bid_set = crypto.verify(
            record.bid_set, pb.BidSetCommitment, net.coordinator.keys.signing_public
        )
        # Closed before the announced deadline, and says so in the signed root.
        assert bid_set.close_time.ToNanoseconds() < bid_set.deadline.ToNanoseconds()
        assert bid_set.leaf_count == 3 and record.invited == record.bidders
        # A bid now is refused with a signed AUCTION_CLOSED (not LATE: the deadline holds).
        late = net.nodes["mfo-a"]
        announcement = crypto.verify(
            record.announcement, pb.AuctionAnnouncement, net.coordinator.keys.signing_public
        )
        del late.bids[sale.auction]
        signed, own = late.seal_bid(announcement, 999_000)
        response = await late.call("PlaceBid", pb.PlaceBidRequest(bid=signed))
        late.check_response(own, response)
        assert own.rejection is not None
        assert own.rejection.reason in (
            pb.BID_REJECTION_REASON_AUCTION_CLOSED,
            pb.BID_REJECTION_REASON_LATE,
        )

    run(test)


def test_unsold_leads_are_reported_and_the_rejection_window_is_enforced() -> None:
    async def test(net: Net) -> None:
        stub = net.node_stubs["seller"]
        # Nobody bids at MinBidPrice 500 000: UNSOLD, no deal, no ledger entry.
        high = sell_request("app-1", "+70000000001")
        high.min_bid_price.amount_minor = 500_000
        sale = await stub.Sell(high, timeout=10)
        assert sale.outcome == ppb.SALE_OUTCOME_UNSOLD and not sale.deal
        assert not net.coordinator.deals and not net.coordinator.ledger.repository.entries()
        # At 130 000 only mfo-b bids; it rejects the lead: no next bid, so UNSOLD again.
        only_one = sell_request("app-2", "+70000000002")
        only_one.min_bid_price.amount_minor = 130_000
        sale = await stub.Sell(only_one, timeout=10)
        assert sale.winner == "participants/mfo-b"
        reject = ppb.UpdateLeadStatusRequest(
            deal=sale.deal, status=pb.LEAD_STATUS_REJECTED_BY_BUYER
        )
        await net.node_stubs["mfo-b"].UpdateLeadStatus(reject, timeout=5)
        await settle_notices(net)
        assert net.coordinator.auctions[sale.auction].state == pb.AUCTION_STATE_UNSOLD
        results = [
            n.sale_result.sale
            for n in net.nodes["seller"].notices
            if n.HasField("sale_result") and n.sale_result.sale.auction == sale.auction
        ]
        assert [r.outcome for r in results] == [
            ppb.SALE_OUTCOME_SOLD,
            ppb.SALE_OUTCOME_UNSOLD,
        ]
        assert net.coordinator.ledger.balance("participants/mfo-b", "RUB") == 0
        # Past the rejection window a won lead can no longer be rejected.
        net.coordinator.config = replace(net.coordinator.config, rejection_window_s=0.0)
        sale = await stub.Sell(sell_request("app-3", "+70000000003"), timeout=10)
        late = ppb.UpdateLeadStatusRequest(deal=sale.deal, status=pb.LEAD_STATUS_REJECTED_BY_BUYER)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await net.node_stubs["mfo-b"].UpdateLeadStatus(late, timeout=5)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    run(test)


def test_a_seller_that_vanishes_before_unsealing_gets_its_auction_cancelled() -> None:
    async def test(net: Net) -> None:
        net.coordinator.config = replace(net.coordinator.config, unseal_timeout_s=0.3)
        seller = net.nodes["seller"]

        async def gone(task: pb.UnsealTask) -> None:
            return None  # the seller's node dropped off after the deadline

        seller._on_unseal = gone  # type: ignore[method-assign]
        sale = await net.node_stubs["seller"].Sell(sell_request(), timeout=10)
        assert sale.outcome == ppb.SALE_OUTCOME_CANCELLED
        await settle_notices(net)
        record = net.coordinator.auctions[sale.auction]
        assert record.state == pb.AUCTION_STATE_CANCELLED
        # Every bidder is told, nobody is charged.
        for pid in ("mfo-a", "mfo-b", "mfo-c"):
            lost = [n.bid_lost for n in net.nodes[pid].notices if n.HasField("bid_lost")]
            assert lost and lost[0].outcome == pb.BID_OUTCOME_CANCELLED, pid
        assert not net.coordinator.deals and not net.coordinator.ledger.repository.entries()

    run(test)


def test_the_rust_signer_signs_exactly_as_cryptography_does() -> None:
    keys = crypto.KeyPair.generate()
    signer = _core.Ed25519Signer(keys.signing.private_bytes_raw())
    assert signer.public_key() == keys.signing_public
    message = pb.BidReceipt(auction="auctions/a", bidder="participants/b", leaf_index=3)
    expected = crypto.sign(keys.signing, message, "coordinator")
    signature = signer.sign("lendgate.v1.BidReceipt", expected.payload)
    assert signature == expected.signature  # Ed25519 is deterministic (RFC 8032)
    with pytest.raises(_core.CoreInvalidArgument):
        _core.Ed25519Signer(b"short")


def test_batched_pedersen_openings_find_the_one_that_lies() -> None:
    auction, bids = "auctions/x", []
    for i in range(20):
        nonce = bytes([i + 1]) * 32
        bidder = f"participants/b{i}"
        commitment = _core.pedersen_commitment(50_000 + i, nonce, bidder, auction)
        bids.append((commitment, 50_000 + i, nonce, bidder))
    assert all(_core.verify_pedersen_openings(auction, bids))
    lying = list(bids)
    lying[11] = (bids[11][0], bids[11][1] + 1, bids[11][2], bids[11][3])
    lying[4] = (b"\xff" * 32, *bids[4][1:])
    got = _core.verify_pedersen_openings(auction, lying)
    assert [i for i, ok in enumerate(got) if not ok] == [4, 11]
    assert _core.verify_pedersen_openings(auction, []) == []


def test_the_coordinator_cpu_bench_runs_whole_auctions() -> None:
    from bench import auction_coordinator  # noqa: PLC0415

    figures = asyncio.run(auction_coordinator.run(3, 2, None))
    assert figures["auctions"] == 2 and set(figures["by_step_ms"]) == {
        "auth", "open", "bid", "close", "unseal", "release"
    }  # fmt: skip
