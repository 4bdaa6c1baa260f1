DROP TABLE client_top;
DROP TABLE packed_seqs;
DROP TABLE sample_blocks;
DROP TABLE raw_samples;
DROP TABLE disks;
DROP TABLE metas;
DROP TABLE instances;
DROP TABLE clients;
