"""The sealed-bid auction of refused leads (docs/AUCTION_PROTOCOL.md)."""
