-- The auction coordinator's state beyond its books (python/lendgate/auction/books.py):
-- participants, auctions and the coordinator's public signing keys, so a restart keeps
-- every participant, every decided auction and the keys old signatures verify under.

-- One row per participant, its current state (the protobuf lendgate.v1.Participant).
CREATE TABLE auction_participants (
    name           TEXT PRIMARY KEY,
    state          INTEGER NOT NULL,
    update_time_us INTEGER NOT NULL,
    payload        BLOB NOT NULL
);

-- One row per auction: written when it opens and at each decision (award round), as JSON
-- (books.record_json). A row left OPEN or UNSEALING by a crash is closed on restart with
-- a signed CANCELLED result.
CREATE TABLE auction_auctions (
    name           TEXT PRIMARY KEY,
    seller         TEXT NOT NULL,
    state          INTEGER NOT NULL,
    open_time_us   INTEGER NOT NULL,
    update_time_us INTEGER NOT NULL,
    payload        TEXT NOT NULL
);
CREATE INDEX auction_auctions_open_time ON auction_auctions (open_time_us);

-- Every Ed25519 key the coordinator has signed with (the private key is never stored
-- here: it is in a 0600 file under data_dir, see auction/keystore.py).
CREATE TABLE auction_coordinator_keys (
    signing_public_key    BLOB PRIMARY KEY,
    encryption_public_key BLOB NOT NULL,
    first_used_us         INTEGER NOT NULL
);
