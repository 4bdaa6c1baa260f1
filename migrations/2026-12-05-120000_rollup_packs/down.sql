DROP INDEX rollup_packs_by_client;
DROP TABLE rollup_packs;
