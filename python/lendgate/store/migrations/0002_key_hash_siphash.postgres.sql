-- The match-key hash moved from BLAKE2b (Python) to SipHash-1-3 (the Rust core): empty the
-- index and let the indexer rebuild it from the log (events_by_key stays exact meanwhile:
-- it scans the events the index does not cover yet).
DELETE FROM event_keys;
UPDATE event_keys_indexed SET through_seq = 0 WHERE id = 1;
