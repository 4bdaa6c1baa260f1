-- The sample store. Everything here is numbers: sizes in KiB, percentages and load × 100,
-- times in unix milliseconds (ts) or seconds (uptime). Text lives only in small lookup tables.

-- One row per client name ever seen; ids are what every other table refers to.
CREATE TABLE clients (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per agent process (the sample's `instance`).
CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id),
    name TEXT NOT NULL,
    UNIQUE (client_id, name)
);

-- hostname / os / agent version: they change rarely, so samples point at a row here.
CREATE TABLE metas (
    id INTEGER PRIMARY KEY,
    hostname TEXT,
    os TEXT,
    agent TEXT
);

-- One row per (client, mount, fs).
CREATE TABLE disks (
    id INTEGER PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id),
    mount TEXT NOT NULL,
    fs TEXT NOT NULL,
    UNIQUE (client_id, mount, fs)
);

-- The raw tier: one row per sample until `compact` packs it into sample_blocks.
-- Rows are appended in arrival order (`id`), and the only index is on `ts`, which also grows
-- with time: a batch of samples from a thousand clients dirties a handful of pages, not one
-- page per client. `(instance, seq)` uniqueness is kept by the writer (see store::writer),
-- which loads the stored pairs from here and from packed_seqs when it starts.
-- `disks` is a few varints per disk (see store::codec), not text.
CREATE TABLE raw_samples (
    id INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    meta_id INTEGER NOT NULL,
    cpu INTEGER NOT NULL,
    mem_total INTEGER NOT NULL,
    mem_used INTEGER NOT NULL,
    mem_avail INTEGER NOT NULL,
    mem_pct INTEGER NOT NULL,
    swap_total INTEGER,
    swap_used INTEGER,
    swap_pct INTEGER,
    uptime INTEGER,
    load1 INTEGER,
    load5 INTEGER,
    load15 INTEGER,
    processes INTEGER,
    disks BLOB NOT NULL
);
CREATE INDEX raw_samples_by_time ON raw_samples (ts);

-- The packed tier: up to a few thousand samples of one client per row, columnar,
-- delta + varint encoded (see store::codec).
CREATE TABLE sample_blocks (
    id INTEGER PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id),
    ts_min INTEGER NOT NULL,
    ts_max INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX sample_blocks_by_client_time ON sample_blocks (client_id, ts_max);

-- Which seqs of an instance live in sample_blocks, as closed ranges, so a replay of a packed
-- sample is still recognised after a restart.
CREATE TABLE packed_seqs (
    instance_id INTEGER NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    PRIMARY KEY (instance_id, lo)
) WITHOUT ROWID;

-- The latest `top` of each client (not kept per sample): JSON array of
-- {"pid","name","cpu_percent","rss"} exactly as the agent sent it, from the sample with the
-- newest ts. Alert mail names these processes.
CREATE TABLE client_top (
    client_id INTEGER PRIMARY KEY REFERENCES clients(id),
    ts INTEGER NOT NULL,
    top TEXT NOT NULL
);
