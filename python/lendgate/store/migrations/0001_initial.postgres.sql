-- lendgate schema, version 1 (PostgreSQL). The SQLite twin is 0001_initial.sqlite.sql.
-- Times are microseconds since the Unix epoch (UTC); payloads are serialized protobuf.

-- First answer to every non-event write, by the client's request_id.
CREATE TABLE idempotency (
    request_id    TEXT PRIMARY KEY,
    operation     TEXT NOT NULL,
    response      BYTEA NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE INDEX idempotency_created ON idempotency (created_at_us);

-- The append-only event log: applications, outcomes, transactions. seq is the log position.
CREATE TABLE events (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id     TEXT NOT NULL UNIQUE,
    partner_id     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    event_time_us  BIGINT NOT NULL,
    received_at_us BIGINT NOT NULL,
    payload        BYTEA NOT NULL,
    response       BYTEA,
    match_keys     TEXT NOT NULL
);
CREATE INDEX events_event_time ON events (event_time_us);
CREATE INDEX events_subject ON events (partner_id, subject_id);

-- Index of the normalised match keys (phone, passport, employer INN, IP...) of each event:
-- key_hash is a 64-bit hash of kind and value (see lendgate/store/matchkeys.py); the exact
-- keys are in events.match_keys, and look-ups filter by them. The index is derived data,
-- built behind the log in large batches: it covers the events with seq <= through_seq.
CREATE TABLE event_keys (
    key_hash  BIGINT NOT NULL,
    event_seq BIGINT NOT NULL,
    PRIMARY KEY (key_hash, event_seq)
);
CREATE TABLE event_keys_indexed (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    through_seq BIGINT NOT NULL
);
INSERT INTO event_keys_indexed (id, through_seq) VALUES (1, 0);

CREATE TABLE reports (
    report_id     TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    partner_id    TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    payload       BYTEA NOT NULL
);
CREATE INDEX reports_subject ON reports (partner_id, subject_id);

-- Versioned definitions: kind is rule | list | aggregate | strategy.
CREATE TABLE definitions (
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    latest_version BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE definition_versions (
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    status        TEXT NOT NULL,
    body          BYTEA NOT NULL,
    author        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    restored_from BIGINT,
    PRIMARY KEY (kind, name, version)
);
-- An entry is in version v of its list when added_in <= v and (removed_in IS NULL or v < removed_in).
CREATE TABLE list_entries (
    list_name  TEXT NOT NULL,
    value      TEXT NOT NULL,
    added_in   BIGINT NOT NULL,
    removed_in BIGINT,
    PRIMARY KEY (list_name, value, added_in)
);
CREATE INDEX list_entries_live ON list_entries (list_name, value) WHERE removed_in IS NULL;

CREATE TABLE models (
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    status        TEXT NOT NULL,
    author        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    metadata      TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    artifact      BYTEA NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE incidents (
    incident_id   TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    assignee      TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    event_seq     BIGINT,
    payload       BYTEA NOT NULL
);
CREATE INDEX incidents_status ON incidents (status, updated_at_us);
CREATE TABLE incident_comments (
    comment_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id   TEXT NOT NULL REFERENCES incidents (incident_id),
    author        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX incident_comments_incident ON incident_comments (incident_id, comment_id);

CREATE TABLE deals (
    deal_id       TEXT PRIMARY KEY,
    auction_id    TEXT NOT NULL,
    seller_id     TEXT NOT NULL,
    buyer_id      TEXT NOT NULL,
    price_minor   BIGINT NOT NULL,
    currency      TEXT NOT NULL CHECK (length(currency) = 3),
    created_at_us BIGINT NOT NULL,
    payload       BYTEA NOT NULL
);

-- Double-entry ledger: the entries of one transaction sum to zero per currency.
CREATE TABLE ledger_transactions (
    txn_id        TEXT PRIMARY KEY,
    deal_id       TEXT REFERENCES deals (deal_id),
    memo          TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE TABLE ledger_entries (
    entry_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txn_id       TEXT NOT NULL REFERENCES ledger_transactions (txn_id),
    account      TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency     TEXT NOT NULL CHECK (length(currency) = 3)
);
CREATE INDEX ledger_entries_txn ON ledger_entries (txn_id);
CREATE INDEX ledger_entries_account ON ledger_entries (account, currency);

-- Snapshots of the in-memory state, each covering the events with seq <= position.
CREATE TABLE snapshots (
    position      BIGINT PRIMARY KEY,
    created_at_us BIGINT NOT NULL,
    data          BYTEA NOT NULL
);
