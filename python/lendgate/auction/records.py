"""What the coordinator keeps about an auction, and its stored form.

An auction is stored when it opens and at each decision (``auction_auctions``, migration
0008) as JSON: protobuf messages (the offer, the signed announcement, bid-set root and
result) as base64 of their exact bytes, so a restored signature verifies as before.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

from lendgate.v1 import auction_pb2 as pb


@dataclass
class Bid:
    """An accepted bid."""

    leaf_index: int
    bidder: str
    bid_hash: bytes
    commitment: bytes
    encrypted_opening: bytes
    leaf_hash: bytes
    pedersen: bytes
    amount_minor: int = 0
    nonce: bytes = b""
    invalid_reason: str = ""
    range_proofs: dict[tuple[int, int], bytes] = field(default_factory=dict)
    """Loser proofs by (award round, winning leaf), made on first request."""


@dataclass
class AuctionRecord:
    """Everything the coordinator keeps about one auction."""

    name: str
    seller: str
    offer: pb.LeadOffer
    announcement: pb.SignedPayload
    deadline: float
    currency: str
    min_price: int
    open_time: float = 0.0
    state: int = pb.AUCTION_STATE_OPEN
    bids: list[Bid] = field(default_factory=list)
    nonces: set[bytes] = field(default_factory=set)
    bidders: set[str] = field(default_factory=set)
    invited: set[str] = field(default_factory=set)
    """Buyers the auction was announced to."""
    bid_set: pb.SignedPayload | None = None
    result: pb.SignedPayload | None = None
    """The signed result, once stored (with a store, it is published only then)."""
    ranking: list[Bid] = field(default_factory=list)
    award_round: int = 0
    relinquished: set[int] = field(default_factory=set)
    """Leaves of winners that rejected the lead."""
    deal: str = ""
    cancel_reason: str = ""
    published: bool = False
    """Whether the current result was told to anyone (with a store: once it is stored)."""
    decided: asyncio.Event = field(default_factory=asyncio.Event)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _signed(signed: pb.SignedPayload | None) -> str:
    return "" if signed is None else _b64(signed.SerializeToString(deterministic=True))


def _unsigned(text: str) -> pb.SignedPayload | None:
    return pb.SignedPayload.FromString(_unb64(text)) if text else None


def _bid_json(b: Bid) -> dict[str, Any]:
    return {
        "leaf": b.leaf_index,
        "bidder": b.bidder,
        "hash": _b64(b.bid_hash),
        "commitment": _b64(b.commitment),
        "opening": _b64(b.encrypted_opening),
        "leaf_hash": _b64(b.leaf_hash),
        "pedersen": _b64(b.pedersen),
        "amount": b.amount_minor,
        "nonce": _b64(b.nonce),
        "invalid": b.invalid_reason,
    }


def _bid_from(d: dict[str, Any]) -> Bid:
    return Bid(
        int(d["leaf"]),
        d["bidder"],
        _unb64(d["hash"]),
        _unb64(d["commitment"]),
        _unb64(d["opening"]),
        _unb64(d["leaf_hash"]),
        _unb64(d["pedersen"]),
        int(d["amount"]),
        _unb64(d["nonce"]),
        d["invalid"],
    )


def record_json(r: AuctionRecord) -> str:
    """An auction as stored."""
    return json.dumps(
        {
            "name": r.name,
            "seller": r.seller,
            "offer": _b64(r.offer.SerializeToString(deterministic=True)),
            "announcement": _signed(r.announcement),
            "deadline": r.deadline,
            "currency": r.currency,
            "min_price": r.min_price,
            "open_time": r.open_time,
            "state": r.state,
            "bids": [_bid_json(b) for b in r.bids],
            "invited": sorted(r.invited),
            "bid_set": _signed(r.bid_set),
            "result": _signed(r.result),
            "ranking": [b.leaf_index for b in r.ranking],
            "award_round": r.award_round,
            "relinquished": sorted(r.relinquished),
            "deal": r.deal,
            "cancel_reason": r.cancel_reason,
        },
        separators=(",", ":"),
    )


def record_from_json(text: str) -> AuctionRecord:
    """Inverse of :func:`record_json` (the bids' range-proof cache starts empty)."""
    d = json.loads(text)
    bids = [_bid_from(b) for b in d["bids"]]
    announcement = _unsigned(d["announcement"])
    assert announcement is not None
    record = AuctionRecord(
        d["name"],
        d["seller"],
        pb.LeadOffer.FromString(_unb64(d["offer"])),
        announcement,
        float(d["deadline"]),
        d["currency"],
        int(d["min_price"]),
        float(d["open_time"]),
        int(d["state"]),
        bids,
        invited=set(d["invited"]),
        bid_set=_unsigned(d["bid_set"]),
        result=_unsigned(d["result"]),
        ranking=[bids[i] for i in d["ranking"]],
        award_round=int(d["award_round"]),
        relinquished=set(d["relinquished"]),
        deal=d["deal"],
        cancel_reason=d["cancel_reason"],
    )
    record.bidders = {b.bidder for b in bids}
    if record.result is not None:
        record.decided.set()
    return record
