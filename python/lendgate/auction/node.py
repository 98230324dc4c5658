"""A participant node: holds the participant's keys and runs its side of the protocol
(selling, bidding by policy, unsealing, key release, proof checks); see
docs/AUCTION_PROTOCOL.md. ``servers/participant.py`` exposes it as
ParticipantNodeService; it talks to the coordinator through an AuctionService stub.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from lendgate import _core
from lendgate.auction import crypto
from lendgate.auction.coordinator import (
    INNER_LABEL,
    LEAD_KEY_LABEL,
    OUTER_LABEL,
    participant_name,
    ts,
)
from lendgate.auction.crypto import CryptoError, KeyPair
from lendgate.auction.policy import BiddingPolicy, segment_policy
from lendgate.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    LendgateError,
    NotFoundError,
    PermissionDeniedError,
    UnimplementedError,
)
from lendgate.v1 import auction_pb2 as pb
from lendgate.v1 import common_pb2
from lendgate.v1 import participant_pb2 as ppb

log = logging.getLogger("lendgate.node")

DEV_NETWORK_KEY = b"lendgate-dev-network-duplicate-key"
SERVICE = "/lendgate.v1.AuctionService/"
RESUBSCRIBE_S = 0.5
"""Pause before subscribing again after the event stream broke."""
_REMOTE_ERRORS: dict[str, type[LendgateError]] = {
    "ALREADY_EXISTS": AlreadyExistsError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "INVALID_ARGUMENT": InvalidArgumentError,
}


@dataclass
class OwnBid:
    """A bid this node placed, with what it needs to check the outcome."""

    amount: int
    nonce: bytes
    commitment: bytes
    pedersen: bytes
    receipt: pb.BidReceipt | None
    rejection: pb.BidRejection | None
    bid_hash: bytes


@dataclass
class Sale:
    """A lead this node is selling."""

    lead_id: str
    data_key: bytes
    layer_key: Any
    done: asyncio.Future[ppb.SellResponse]
    commitments: dict[int, bytes] = field(default_factory=dict)
    pedersen: dict[int, bytes] = field(default_factory=dict)
    released_round: int = 0


class ParticipantNode:
    """The node's domain service."""

    def __init__(
        self,
        participant_id: str,
        coordinator: Any,
        *,
        keys: KeyPair | None = None,
        landing_url: str = "https://example.invalid/landing",
        policy: BiddingPolicy | None = None,
        filters: pb.BuyerFilters | None = None,
        network_key: bytes = DEV_NETWORK_KEY,
        functions: dict[str, BiddingPolicy] | None = None,
    ) -> None:
        self.id = participant_id
        self.name = participant_name(participant_id)
        self.stub = coordinator
        self.keys = keys or KeyPair.generate()
        self.landing_url = landing_url
        self.policy: BiddingPolicy = policy or segment_policy()
        self.policy_spec = ppb.BiddingPolicy(enabled=True)
        self.functions = dict(functions or {})
        """Bidding functions deployed with the node, selectable by name."""
        self.filters = filters or pb.BuyerFilters()
        self.network_key = network_key
        self.coordinator_key = b""
        self.coordinator_enc_key = b""
        self.bids: dict[str, OwnBid] = {}
        self.sales: dict[str, Sale] = {}
        self.notices: list[ppb.NotifyResponse] = []
        self.evidence: list[str] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self.events_seen = 0
        """Sequence number of the last coordinator event taken from the stream."""
        self._results: dict[str, tuple[int, int]] = {}
        """(state, award round) of the last result handled per auction."""

    def metadata(self, method: str) -> tuple[tuple[str, str], ...]:
        """Call metadata authenticating this node to the coordinator."""
        ms = int(time.time() * 1000)
        sig = crypto.sign_call(self.keys.signing, self.name, SERVICE + method, ms)
        return (("lg-participant", self.name), ("lg-time-ms", str(ms)), ("lg-auth", sig.hex()))

    async def call(self, method: str, request: Any) -> Any:
        """Call ``method`` on the coordinator, authenticated.

        The coordinator's refusals come back as the same domain errors, so the bank
        sees ALREADY_EXISTS for a duplicate lead rather than an internal error.
        """
        try:
            return await getattr(self.stub, method)(request, metadata=self.metadata(method))
        except Exception as exc:
            code = getattr(exc, "code", None)
            error = _REMOTE_ERRORS.get(code().name if callable(code) else "")
            if error is None:
                raise
            raise error(f"coordinator: {exc.details()}") from None  # type: ignore[attr-defined]

    async def start(self) -> None:
        """Pin the coordinator's keys, register, and start following events."""
        info = await self.stub.GetCoordinatorInfo(pb.GetCoordinatorInfoRequest())
        self.coordinator_key = info.signing_public_key
        self.coordinator_enc_key = info.encryption_public_key
        participant = pb.Participant(
            signing_public_key=self.keys.signing_public,
            encryption_public_key=self.keys.encryption_public,
            landing_url=self.landing_url,
            filters=self.filters,
        )
        pop = self.keys.signing.sign(
            b"lendgate.v1.ProofOfPossession\x00"
            + self.id.encode()
            + b"\x00"
            + self.keys.encryption_public
        )
        await self.stub.RegisterParticipant(
            pb.RegisterParticipantRequest(
                participant_id=self.id, participant=participant, proof_of_possession=pop
            )
        )
        self._task = asyncio.create_task(self._follow())
        await asyncio.wait_for(self._subscribed.wait(), 10)

    async def stop(self) -> None:
        """Stop following events."""
        if self._task is not None:
            self._task.cancel()

    def _notify(self, notice: ppb.NotifyResponse) -> None:
        notice.sequence = len(self.notices) + 1
        self.notices.append(notice)
        self._wake.set()

    async def notifications(self, after: int) -> AsyncIterator[ppb.NotifyResponse]:
        """Notifications after sequence ``after`` (0 = from now), forever."""
        position = after if after > 0 else len(self.notices)
        while True:
            while position < len(self.notices):
                yield self.notices[position]
                position += 1
            self._wake.clear()
            await self._wake.wait()

    def busy(self) -> bool:
        """Whether event handlers (bidding, unsealing, proof checks) are still running."""
        return bool(self._background)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("node task failed", exc_info=task.exception())

    async def _follow(self) -> None:
        """Follow the coordinator's event stream; when it breaks (the coordinator
        restarted), subscribe again and catch up on every auction still pending here."""
        resumed = False
        while True:
            try:
                stream = self.stub.Subscribe(
                    pb.SubscribeRequest(), metadata=self.metadata("Subscribe")
                )
                if resumed:
                    await stream.wait_for_connection()
                    await self._catch_up()
                # A new participant's event queue starts empty, so nothing can be missed
                # between registering and the stream reaching the coordinator.
                self._subscribed.set()
                async for event in stream:
                    self._on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event stream lost (%s); subscribing again", exc)
            resumed = True
            self.events_seen = 0  # a restarted coordinator numbers its events afresh
            await asyncio.sleep(RESUBSCRIBE_S)

    async def _catch_up(self) -> None:
        """After a reconnect: check the coordinator still signs with the pinned key, then
        ask for the result of every auction this node sells or bid in and has no result
        for (a coordinator that restarted closes undecided ones with a signed CANCELLED)."""
        info = await self.stub.GetCoordinatorInfo(pb.GetCoordinatorInfoRequest())
        if info.signing_public_key != self.coordinator_key:
            self.evidence.append("the coordinator's signing key changed across a reconnect")
            raise CryptoError("the coordinator's signing key changed; keeping the pinned one")
        pending = [a for a, sale in self.sales.items() if not sale.done.done()]
        pending += [a for a in self.bids if a not in self._results and a not in pending]
        for auction in pending:
            view = await self.call("GetAuctionResult", pb.GetAuctionResultRequest(auction=auction))
            if view.HasField("result"):
                self._spawn(self._on_result(pb.AuctionResultNotice(auction=auction, result=view)))

    def _on_event(self, event: pb.SubscribeResponse) -> None:
        self.events_seen = event.sequence
        kind = event.WhichOneof("event")
        if kind == "announcement":
            self._spawn(self._on_announcement(event.announcement))
        elif kind == "unseal_task":
            self._spawn(self._on_unseal(event.unseal_task))
        elif kind == "result":
            self._spawn(self._on_result(event.result))
        elif kind == "lead_key":
            self._spawn(self._on_lead_key(event.lead_key))
        elif kind == "deal":
            self._notify(ppb.NotifyResponse(deal_updated=event.deal))

    # --- buying ------------------------------------------------------------------

    def seal_bid(
        self, announcement: pb.AuctionAnnouncement, amount: int
    ) -> tuple[pb.SignedPayload, OwnBid]:
        """Build and sign a sealed bid of ``amount`` (commitment + two-layer opening)."""
        auction, currency = announcement.auction, announcement.min_bid_price.currency
        nonce = os.urandom(32)
        commitment = _core.bid_commitment(amount, currency, nonce, self.name, auction)
        pedersen = _core.pedersen_commitment(amount, nonce, self.name, auction)
        opening = pb.BidOpening(
            auction=auction,
            amount=common_pb2.Money(amount_minor=amount, currency=currency),
            blinding=nonce,
            bidder=self.name,
        )
        inner = crypto.seal(
            self.coordinator_enc_key,
            INNER_LABEL,
            f"{auction}\x00{self.name}".encode(),
            opening.SerializeToString(deterministic=True),
        )
        outer = crypto.seal(
            announcement.seller_layer_public_key,
            OUTER_LABEL,
            auction.encode(),
            inner.SerializeToString(deterministic=True),
        )
        bid = pb.SealedBid(
            auction=auction,
            bidder=self.name,
            nonce=os.urandom(16),
            commitment=commitment,
            encrypted_opening=outer.SerializeToString(deterministic=True),
            pedersen_commitment=pedersen,
        )
        bid.create_time.CopyFrom(ts(time.time()))
        signed = crypto.sign(self.keys.signing, bid, self.name)
        own = OwnBid(amount, nonce, commitment, pedersen, None, None, crypto.sha256(signed.payload))
        return signed, own

    def check_response(self, own: OwnBid, response: pb.PlaceBidResponse) -> None:
        """Verify the coordinator's signed receipt or rejection of our bid."""
        if response.WhichOneof("outcome") == "receipt":
            receipt = crypto.verify(response.receipt, pb.BidReceipt, self.coordinator_key)
            if receipt.bid_hash != own.bid_hash:
                raise CryptoError("the receipt is for another bid")
            own.receipt = receipt
        else:
            rejection = crypto.verify(response.rejection, pb.BidRejection, self.coordinator_key)
            if rejection.bid_hash != own.bid_hash:
                raise CryptoError("the rejection is for another bid")
            own.rejection = rejection

    async def _on_announcement(self, signed: pb.SignedPayload) -> None:
        announcement = crypto.verify(signed, pb.AuctionAnnouncement, self.coordinator_key)
        amount = self.policy(announcement)
        notice = ppb.LeadOfferedNotice(
            auction=announcement.auction,
            features=announcement.features,
            min_bid_price=announcement.min_bid_price,
            deadline=announcement.deadline,
        )
        if amount:
            bid, own = self.seal_bid(announcement, amount)
            self.bids[announcement.auction] = own
            response = await self.call("PlaceBid", pb.PlaceBidRequest(bid=bid))
            self.check_response(own, response)
            notice.bid.CopyFrom(
                common_pb2.Money(amount_minor=amount, currency=announcement.min_bid_price.currency)
            )
            notice.bid_response.CopyFrom(response)
        self._notify(ppb.NotifyResponse(lead_offered=notice))

    async def check_own_bid(self, auction: str, result: pb.GetAuctionResultResponse) -> bool:
        """The owner's audit of its bid: under the signed root, and — if it lost — beaten,
        by the zero-knowledge range proof against the winning Pedersen commitment."""
        own = self.bids[auction]
        if own.receipt is None:
            return True
        bid_set = crypto.verify(result.bid_set, pb.BidSetCommitment, self.coordinator_key)
        proof = await self.call(
            "GetBidProof", pb.GetBidProofRequest(auction=auction, bid_hash=own.bid_hash)
        )
        inc = proof.inclusion
        if not (
            inc.leaf_hash == own.receipt.leaf_hash
            and inc.leaf_index == own.receipt.leaf_index
            and _proves(inc, bid_set)
        ):
            return False
        if proof.outcome != pb.BID_OUTCOME_LOST or not result.HasField("result"):
            return True
        signed = crypto.verify(result.result, pb.AuctionResult, self.coordinator_key)
        # Verifying costs about a millisecond in Rust with the GIL released: off the loop.
        return await asyncio.to_thread(loss_is_proven, auction, own, signed, bid_set, proof)

    async def _on_result(self, notice: pb.AuctionResultNotice) -> None:
        auction, view = notice.auction, notice.result
        result = crypto.verify(view.result, pb.AuctionResult, self.coordinator_key)
        seen = (result.state, result.award_round)
        if self._results.get(auction) == seen:
            return  # the same result twice (the stream and a catch-up after a reconnect)
        self._results[auction] = seen
        if auction in self.sales:
            await self._seller_result(auction, view)
        own = self.bids.get(auction)
        if own is None:
            return
        if result.state == pb.AUCTION_STATE_CANCELLED and not view.HasField("bidder_view"):
            # Cancelled by a coordinator restart before the bid was stored: nothing was
            # opened, nothing is owed; the signed cancellation (verified above) says so.
            self._notify(
                ppb.NotifyResponse(
                    bid_lost=ppb.BidLostNotice(
                        auction=auction,
                        outcome=pb.BID_OUTCOME_CANCELLED,
                        bid=common_pb2.Money(amount_minor=own.amount),
                        proofs_verified=True,
                    )
                )
            )
            return
        if not view.HasField("bidder_view"):
            return
        outcome = view.bidder_view.outcome
        if outcome in (pb.BID_OUTCOME_WON, pb.BID_OUTCOME_RELINQUISHED):
            return  # a won lead's notice comes with the key; a rejected one is ours to know
        ok = await self.check_own_bid(auction, view)
        if not ok:
            self.evidence.append(
                f"{auction}: own bid not under the signed root, or the loss not proven"
            )
        self._notify(
            ppb.NotifyResponse(
                bid_lost=ppb.BidLostNotice(
                    auction=auction,
                    outcome=outcome,
                    bid=common_pb2.Money(amount_minor=own.amount),
                    proofs_verified=ok,
                )
            )
        )

    async def _on_lead_key(self, signed: pb.SignedPayload) -> None:
        release = pb.LeadKeyRelease.FromString(signed.payload)
        view = await self.call(
            "GetAuctionResult", pb.GetAuctionResultRequest(auction=release.auction)
        )
        w = view.winner_view
        data_key = crypto.open_sealed(
            self.keys.encryption, LEAD_KEY_LABEL, release.auction.encode(), release.wrapped_data_key
        )
        personal = pb.PersonalData.FromString(
            crypto.decrypt_personal_data(data_key, w.lead_ref, w.personal_data)
        )
        result = await self.call("ListDeals", pb.ListDealsRequest())
        deal = next(
            (d.name for d in result.deals if d.auction == release.auction and d.buyer == self.name),
            "",
        )
        self._notify(
            ppb.NotifyResponse(
                lead_won=ppb.LeadWonNotice(
                    auction=release.auction,
                    deal=deal,
                    price=w.price,
                    personal_data=personal,
                    lead_token=w.lead_token,
                    rejection_deadline=w.rejection_deadline,
                )
            )
        )

    # --- selling -----------------------------------------------------------------

    async def sell(self, request: ppb.SellRequest) -> ppb.SellResponse:
        """Offer a lead; returns when the auction is decided."""
        if not request.lead_id or not request.personal_data.phone:
            raise InvalidArgumentError(
                "lead_id and personal_data.phone are required", field="lead_id"
            )
        data_key = os.urandom(32)
        lead_ref = os.urandom(16)
        layer = crypto.KeyPair.generate().encryption
        layer_public = crypto.KeyPair(self.keys.signing, layer).encryption_public
        offer = pb.LeadOffer(
            seller=self.name,
            lead_id=request.lead_id,
            lead_ref=lead_ref,
            features=request.features,
            min_bid_price=request.min_bid_price,
            seller_layer_public_key=layer_public,
            personal_data=crypto.encrypt_personal_data(
                data_key, lead_ref, request.personal_data.SerializeToString(deterministic=True)
            ),
            phone_keyed_hash=crypto.phone_keyed_hash(self.network_key, request.personal_data.phone),
        )
        if request.HasField("bidding_window"):
            offer.bidding_window.CopyFrom(request.bidding_window)
        offer.create_time.CopyFrom(ts(time.time()))
        signed = crypto.sign(self.keys.signing, offer, self.name)
        done: asyncio.Future[ppb.SellResponse] = asyncio.get_running_loop().create_future()
        response = await self.call("OpenAuction", pb.OpenAuctionRequest(offer=signed))
        self.sales[response.auction.name] = Sale(request.lead_id, data_key, layer, done)
        return await done

    async def _on_unseal(self, task: pb.UnsealTask) -> None:
        sale = self.sales.get(task.auction)
        if sale is None:
            return
        bid_set = crypto.verify(task.bid_set, pb.BidSetCommitment, self.coordinator_key)
        if bid_set.auction != task.auction or len(task.items) != bid_set.leaf_count:
            raise CryptoError("the unseal task does not match the signed bid set")
        out = pb.UnsealedBids(auction=task.auction, merkle_root=bid_set.merkle_root)
        for item in task.items:
            inc = item.inclusion
            leaf = _core.leaf_hash(
                item.commitment, item.encrypted_opening, item.pedersen_commitment
            )
            # Only bids provably under the signed root are unsealed.
            if leaf != inc.leaf_hash or not _core.verify_inclusion(
                leaf, inc.leaf_index, bid_set.leaf_count, list(inc.audit_path), bid_set.merkle_root
            ):
                raise CryptoError("an unseal item is not under the signed root")
            sale.commitments[inc.leaf_index] = item.commitment
            sale.pedersen[inc.leaf_index] = item.pedersen_commitment
            try:
                inner = crypto.open_sealed(
                    sale.layer_key,
                    OUTER_LABEL,
                    task.auction.encode(),
                    pb.SealedBox.FromString(item.encrypted_opening),
                )
            except (CryptoError, Exception):
                inner = b""
            out.bids.add(leaf_index=inc.leaf_index, inner_opening=inner)
        await self.call(
            "UnsealBids",
            pb.UnsealBidsRequest(unsealed=crypto.sign(self.keys.signing, out, self.name)),
        )

    async def _seller_result(self, auction: str, view: pb.GetAuctionResultResponse) -> None:
        sale = self.sales[auction]
        result = crypto.verify(view.result, pb.AuctionResult, self.coordinator_key)
        sell = ppb.SellResponse(auction=auction, result=view.result)
        if result.state == pb.AUCTION_STATE_SOLD:
            s = view.seller_view
            committed = sale.commitments.get(result.winning_leaf_index)
            pedersen = sale.pedersen.get(result.winning_leaf_index)
            # The price must open both winning commitments that were under the signed root
            # (the Pedersen one is what the losers' proofs are against).
            if (
                committed != result.winning_commitment
                or pedersen != result.winning_pedersen_commitment
                or not _core.verify_bid_opening(
                    result.winning_commitment,
                    s.price.amount_minor,
                    s.price.currency,
                    s.price_blinding,
                    s.winner,
                    auction,
                )
                or not _core.verify_pedersen_opening(
                    pedersen, s.price.amount_minor, s.price_blinding, s.winner, auction
                )
            ):
                self.evidence.append(f"{auction}: the price does not open the winning commitment")
                raise CryptoError("the coordinator's price does not match the winning commitment")
            wrapped = crypto.seal(
                s.winner_encryption_public_key, LEAD_KEY_LABEL, auction.encode(), sale.data_key
            )
            release = pb.LeadKeyRelease(
                auction=auction,
                winner=s.winner,
                award_round=result.award_round,
                wrapped_data_key=wrapped,
            )
            await self.call(
                "ReleaseLeadKey",
                pb.ReleaseLeadKeyRequest(
                    release=crypto.sign(self.keys.signing, release, self.name)
                ),
            )
            sell.outcome = ppb.SALE_OUTCOME_SOLD
            sell.winner = s.winner
            sell.price.CopyFrom(s.price)
            sell.redirect_url = s.redirect_url
            sell.deal = f"deals/{s.redirect_url.rsplit('lg_lead=', 1)[-1]}"
        elif result.state == pb.AUCTION_STATE_UNSOLD:
            sell.outcome = ppb.SALE_OUTCOME_UNSOLD
        else:
            sell.outcome = ppb.SALE_OUTCOME_CANCELLED
        if not sale.done.done():
            sale.done.set_result(sell)
        self._notify(
            ppb.NotifyResponse(sale_result=ppb.SaleResultNotice(lead_id=sale.lead_id, sale=sell))
        )

    def set_policy(self, spec: ppb.BiddingPolicy) -> ppb.BiddingPolicy:
        """Replace the bidding policy (segment table or a deployed Python function)."""
        kind = spec.WhichOneof("pricing")
        max_bid = spec.max_bid.amount_minor
        if max_bid < 0:
            raise InvalidArgumentError("must not be negative", field="policy.max_bid")
        policy: BiddingPolicy
        if not spec.enabled or kind is None:
            policy = _no_bid
        elif kind == "segment_prices":
            table: dict[str, int] = {}
            for i, entry in enumerate(spec.segment_prices.entries):
                if not entry.segment or entry.price.amount_minor <= 0:
                    raise InvalidArgumentError(
                        "a segment and a positive price are required",
                        field=f"policy.segment_prices.entries[{i}]",
                    )
                table.setdefault(entry.segment, entry.price.amount_minor)
            policy = segment_policy(table, max_bid)
        elif kind == "python_function":
            function = self.functions.get(spec.python_function)
            if function is None:
                raise NotFoundError(f"no bidding function {spec.python_function!r} on this node")
            policy = _capped(function, max_bid)
        else:
            raise UnimplementedError("strategy-priced bidding is not wired to the node yet")
        self.policy, self.policy_spec = policy, spec
        return spec

    async def update_status(self, request: ppb.UpdateLeadStatusRequest) -> pb.Deal:
        """Forward a lead status change to the coordinator."""
        if not request.deal:
            raise FailedPreconditionError("deal is required")
        forwarded = pb.ReportLeadStatusRequest(
            request_id=request.request_id,
            deal=request.deal,
            status=request.status,
            loan_amount=request.loan_amount,
            reason=request.reason,
        )
        response = await self.call("ReportLeadStatus", forwarded)
        return response.deal  # type: ignore[no-any-return]


def _no_bid(announcement: pb.AuctionAnnouncement) -> int | None:
    return None


def _capped(function: BiddingPolicy, max_bid: int) -> BiddingPolicy:
    if not max_bid:
        return function

    def policy(announcement: pb.AuctionAnnouncement) -> int | None:
        amount = function(announcement)
        return None if amount is None else min(amount, max_bid)

    return policy


def _proves(inc: pb.MerkleInclusionProof, bid_set: pb.BidSetCommitment) -> bool:
    return inc.leaf_count == bid_set.leaf_count and _core.verify_inclusion(
        inc.leaf_hash, inc.leaf_index, inc.leaf_count, list(inc.audit_path), bid_set.merkle_root
    )


def loss_is_proven(
    auction: str,
    own: OwnBid,
    result: pb.AuctionResult,
    bid_set: pb.BidSetCommitment,
    proof: pb.GetBidProofResponse,
) -> bool:
    """A loser's check that it really lost, learning nothing about the winning amount.

    The signed result names the winning leaf and its commitments; the winning leaf must
    be under the same signed root; and the Bulletproofs range proof must show that the
    winning Pedersen commitment exceeds ours under the tie rule, in a transcript bound
    to this auction, root and both leaves.
    """
    if own.receipt is None or result.auction != auction or proof.award_round != result.award_round:
        return False
    if result.merkle_root != bid_set.merkle_root or result.state != pb.AUCTION_STATE_SOLD:
        return False
    win = proof.winning_inclusion
    try:
        winning_leaf = _core.leaf_hash_from_digest(
            result.winning_commitment,
            proof.winning_opening_digest,
            result.winning_pedersen_commitment,
        )
        return (
            win.leaf_index == result.winning_leaf_index
            and win.leaf_hash == winning_leaf
            and _proves(win, bid_set)
            and _core.verify_winner_exceeds(
                auction,
                bid_set.merkle_root,
                result.winning_leaf_index,
                result.winning_pedersen_commitment,
                own.receipt.leaf_index,
                own.pedersen,
                proof.range_proof,
            )
        )
    except _core.CoreInvalidArgument:
        return False
