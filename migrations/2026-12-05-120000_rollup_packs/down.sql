DROP INDEX rollup_packs_by_age;
DROP TABLE rollup_packs;
