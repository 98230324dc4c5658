-- Snapshots larger than one value may hold (SQLite's SQLITE_MAX_LENGTH, 1 GB by default;
-- the served state of millions of events is several GB) are stored in parts: the first in
-- snapshots.data, the others here, in order. parts counts them all (1: data is the whole).
ALTER TABLE snapshots ADD COLUMN parts INTEGER NOT NULL DEFAULT 1;
CREATE TABLE snapshot_parts (
    position INTEGER NOT NULL,
    part     INTEGER NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (position, part)
);
