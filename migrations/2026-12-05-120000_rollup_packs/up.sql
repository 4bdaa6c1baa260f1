-- Rollup buckets in packs (see store::history::pack): up to 24 consecutive buckets of one
-- client's tier per row, each written as a change from the one before; one bucket per row
-- cost 3.3 bytes a stored value. `first_ms` is the pack's oldest bucket (expiry looks for
-- it), `buckets` and `samples` what it holds (the tier statistics count them).
-- The rows of `rollups` are moved into packs by monitord at start (pack::convert_legacy:
-- SQL cannot re-encode them); the table stays, empty, for databases that had it.
CREATE TABLE rollup_packs (
    client_id INTEGER NOT NULL,
    step_s INTEGER NOT NULL,
    pack_ms INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    buckets INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (client_id, step_s, pack_ms)
) WITHOUT ROWID;

CREATE INDEX rollup_packs_by_age ON rollup_packs (step_s, first_ms);
