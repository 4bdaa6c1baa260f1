-- The newest `ts` among the samples of each packed range, so the replay guard can forget
-- ranges once every sample in them is older than the 7-day acceptance window (a replay of
-- such a sample is refused as too old before anything looks for it). NULL for ranges packed
-- before this column existed: their age is unknown, so the guard keeps them for a window
-- counted from when it loads them.
ALTER TABLE packed_seqs ADD COLUMN ts_max INTEGER;
