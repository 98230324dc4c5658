-- Snapshots larger than one value may hold (a bytea is at most 1 GB; the served state of
-- millions of events is several GB) are stored in parts: the first in snapshots.data, the
-- others here, in order. parts counts them all (1: data is the whole).
ALTER TABLE snapshots ADD COLUMN parts INTEGER NOT NULL DEFAULT 1;
CREATE TABLE snapshot_parts (
    position BIGINT NOT NULL,
    part     INTEGER NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (position, part)
);
