-- Rollup buckets in packs (see store::history::pack): consecutive buckets of one client's
-- tier per row, each written as a change from the one before, `data` at most ~2 KB so two
-- rows fill a 4 KB page; one bucket per row cost 3.3 bytes a stored value. A pack is keyed
-- by its first bucket's start and holds the buckets up to the next pack's; `buckets` and
-- `samples` say what it holds (the tier statistics count them).
-- The rows of `rollups` are moved into packs by monitord when it opens the database
-- (pack::convert_legacy: SQL cannot re-encode them); the table stays, empty.
CREATE TABLE rollup_packs (
    id INTEGER PRIMARY KEY,
    client_id INTEGER NOT NULL,
    step_s INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    buckets INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL
);

-- Expiry seeks this index client by client: no index by age.
CREATE UNIQUE INDEX rollup_packs_by_client ON rollup_packs (client_id, step_s, first_ms);
