-- A late-sample mark counts the samples that marked it: a background pass that recomputed
-- the bucket from what it read deletes the mark only if no sample marked it since.
ALTER TABLE rollup_dirty ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
