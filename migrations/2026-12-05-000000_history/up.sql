-- History: rollup tiers after the raw tier, and alert incidents (see store::history).

-- One row per client, tier step and step-aligned bucket (UTC, unix milliseconds): how many
-- samples fell in it and, per numeric field, min, max and sum, packed in `data` (see
-- store::history::bucket). A coarser tier is made of whole buckets of the finer one.
CREATE TABLE rollups (
    client_id INTEGER NOT NULL,
    step_s INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (client_id, step_s, bucket_ms)
) WITHOUT ROWID;

-- How far each client's tier is rolled up: every bucket starting before done_ms is written.
CREATE TABLE rollup_progress (
    client_id INTEGER NOT NULL,
    step_s INTEGER NOT NULL,
    done_ms INTEGER NOT NULL,
    PRIMARY KEY (client_id, step_s)
) WITHOUT ROWID;

-- Buckets of the finest tier that a late sample (drained from a spool) fell into after
-- they were written; the next rollup pass recomputes them and the coarser ones above.
-- Written by the writer in the late sample's own transaction.
CREATE TABLE rollup_dirty (
    client_id INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    PRIMARY KEY (client_id, bucket_ms)
) WITHOUT ROWID;

-- Every firing -> resolved episode of an alert, kept as long as the coarsest tier.
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    client TEXT NOT NULL,
    rule TEXT NOT NULL,
    fired_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    -- the value that fired it, the worst value while it fired, the limit it crossed
    -- (NULL for the built-in rules)
    value REAL NOT NULL,
    peak REAL NOT NULL,
    limit_value REAL,
    -- JSON: the client's top processes when it fired, as the agent sent them
    top TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX incidents_by_time ON incidents (fired_ms);
CREATE UNIQUE INDEX incidents_open ON incidents (client, rule) WHERE resolved_ms IS NULL;
