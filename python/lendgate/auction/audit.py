"""Checks any third party (an arbiter) can run on signed protocol artefacts."""

from __future__ import annotations

from lendgate import _core
from lendgate.auction import crypto
from lendgate.v1 import auction_pb2 as pb


def loss_is_consistent(  # noqa: PLR0917 - the dispute's evidence, item by item
    coordinator_key: bytes,
    signed_result: pb.SignedPayload,
    signed_receipt: pb.SignedPayload,
    loser_amount: int,
    loser_nonce: bytes,
    encrypted_opening: bytes,
    winner_price: int,
    currency: str,
) -> bool:
    """Dispute check of a losing bidder against a (revealed) winning price.

    The loser reveals its opening; the seller (who knows the price, verified against the
    winning commitment) or an arbiter checks: the receipt and the result are signed by
    the coordinator, the opening opens the receipted bid's commitment, and the loser's
    amount did not beat the price under the fixed rule (higher wins; a tie goes to the
    lower leaf index). ``False`` is evidence that the coordinator changed the winner.
    """
    result = crypto.verify(signed_result, pb.AuctionResult, coordinator_key)
    receipt = crypto.verify(signed_receipt, pb.BidReceipt, coordinator_key)
    if receipt.auction != result.auction or receipt.leaf_index in result.invalid_leaf_indexes:
        return True  # an invalid bid loses whatever it offered
    commitment = _core.bid_commitment(
        loser_amount, currency, loser_nonce, receipt.bidder, receipt.auction
    )
    pedersen = _core.pedersen_commitment(loser_amount, loser_nonce, receipt.bidder, receipt.auction)
    if _core.leaf_hash(commitment, encrypted_opening, pedersen) != receipt.leaf_hash:
        raise ValueError("the revealed opening is not the receipted bid")
    if receipt.leaf_index == result.winning_leaf_index:
        return True
    if loser_amount > winner_price:
        return False
    return not (loser_amount == winner_price and receipt.leaf_index < result.winning_leaf_index)
