ALTER TABLE packed_seqs DROP COLUMN ts_max;
