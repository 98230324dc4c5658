-- PostgreSQL keeps the match-key index in this database (row locks: its inserts, on the
-- indexer's own connection, never hold the log's appends). store_identity names the store
-- as in SQLite, where it ties the separate index file to its log.
CREATE TABLE store_identity (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    store_id TEXT NOT NULL
);
INSERT INTO store_identity (id, store_id) VALUES (1, md5(random()::text || clock_timestamp()::text));
