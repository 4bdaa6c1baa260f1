DROP TABLE incidents;
DROP TABLE rollup_dirty;
DROP TABLE rollup_progress;
DROP TABLE rollups;
