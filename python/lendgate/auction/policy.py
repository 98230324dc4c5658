"""Bidding policies: a Python callable from an offered lead to a bid (or no bid)."""

from __future__ import annotations

from collections.abc import Callable

from lendgate.v1 import auction_pb2 as pb

BiddingPolicy = Callable[[pb.AuctionAnnouncement], int | None]
"""Given the signed announcement's content, the bid in minor units of the auction's
currency, or ``None`` for no bid."""

DEFAULT_SEGMENT_PRICES = {"A": 150_000, "B": 80_000, "C": 30_000}


def segment_policy(prices: dict[str, int] | None = None, max_bid: int = 0) -> BiddingPolicy:
    """The default policy: a fixed price per segment ("*" matches any), no bid below
    the lead's MinBidPrice, never above ``max_bid`` when set."""
    table = dict(DEFAULT_SEGMENT_PRICES if prices is None else prices)

    def policy(announcement: pb.AuctionAnnouncement) -> int | None:
        price = table.get(announcement.features.segment, table.get("*"))
        if price is None:
            return None
        if max_bid:
            price = min(price, max_bid)
        return price if price >= announcement.min_bid_price.amount_minor else None

    return policy
