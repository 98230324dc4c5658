-- The match-key index moves to a file of its own (lendgate.store.keyindex): SQLite locks a
-- whole file, so key inserts in the log's file held every append behind them. The new
-- file starts empty and the indexer rebuilds it from events.match_keys in the background
-- (look-ups stay exact meanwhile: they scan the log past the index's through_seq).
-- store_identity ties an index file to the log it indexes.
CREATE TABLE store_identity (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    store_id TEXT NOT NULL
);
INSERT INTO store_identity (id, store_id) VALUES (1, lower(hex(randomblob(16))));
DROP TABLE event_keys;
DROP TABLE event_keys_indexed;
