-- The auction's books (python/lendgate/auction/books.py): the coordinator's deal registry,
-- its append-only double-entry ledger, and the final settlements of periods.

-- One row per deal, its current state (the protobuf lendgate.v1.Deal with its history).
CREATE TABLE auction_deals (
    deal_name      TEXT PRIMARY KEY,
    auction        TEXT NOT NULL,
    seller         TEXT NOT NULL,
    buyer          TEXT NOT NULL,
    create_time_us BIGINT NOT NULL,
    update_time_us BIGINT NOT NULL,
    payload        BYTEA NOT NULL
);

-- Ledger entries, gap-free sequence assigned by the coordinator; append-only (corrections
-- are REVERSAL entries). postings: JSON [[account, amount_minor], ...] summing to zero.
CREATE TABLE auction_ledger (
    sequence     BIGINT PRIMARY KEY,
    entry_type   TEXT NOT NULL,
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    deal         TEXT NOT NULL,
    reverses     BIGINT NOT NULL,
    description  TEXT NOT NULL,
    post_time_us BIGINT NOT NULL,
    postings     TEXT NOT NULL
);
CREATE INDEX auction_ledger_deal ON auction_ledger (deal);

-- Final settlements (`lendgate settle`): written once per period and currency.
CREATE TABLE auction_settlements (
    settlement_id TEXT PRIMARY KEY,
    created_at_us BIGINT NOT NULL,
    payload       TEXT NOT NULL
);
