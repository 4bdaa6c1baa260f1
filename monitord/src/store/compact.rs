//! Packing the raw tier: older raw samples move into [`sample_blocks`] rows, one or more per
//! client, of up to [`BLOCK_MAX`] samples each (see [`super::codec`]), and their
//! `(instance, seq)` pairs into `packed_seqs` ranges, so a replay of a packed sample is still
//! recognised after a restart.
//!
//! Raw rows are taken in arrival order, [`CHUNK`] at a time, each chunk a round of its own
//! (read, then written in the writer's transaction: see [`super::background`]): its rows are
//! grouped per client, appended to the client's newest block while that has room (so a
//! client's samples end up in few, full blocks however often this runs), and deleted.
//! Taking rows in arrival order keeps each round's deletes on neighbouring pages; taking them
//! per client would touch most of the raw table once per client. Used by
//! the daemon's timer and by `monitord compact`, which also delete the `packed_seqs` ranges
//! the replay guard has forgotten (all samples older than [`super::seen::FORGET_AFTER_MS`]).
//!
//! [`sample_blocks`]: super::schema::sample_blocks

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;

use super::StoreError;
use super::background::{Writes, expect_rows, snapshot};
use super::codec::{PackedRow, decode_block, encode_block};
use super::schema::{RawRow, instances, packed_seqs, raw_samples, sample_blocks};
use super::seen::FORGET_AFTER_MS;

/// The most samples one block holds.
pub const BLOCK_MAX: usize = 4_096;
/// The longest time one block spans, from its first sample to its last. A block is written
/// again whenever it grows (every compaction, with the samples settled since) and whenever
/// expiry trims its oldest samples (every history pass), so its size is what every such write
/// costs: 6 hours of samples at 60 s are ~5 KB, where 4,096 samples were ~57 KB (at 500 hosts,
/// ~28 MB written a minute by expiry alone). Blocks this long cost ~13 % more bytes per
/// sample than full ones, each starting with its first sample in full (`bench history`: 0.84
/// against 0.74 bytes a stored value; the goal is 2).
pub const BLOCK_SPAN_MS: i64 = 6 * 3_600_000;
/// Raw rows packed per round (one read, one write in a batch of the writer's).
pub const CHUNK: i64 = 8_192;

/// Which raw samples to pack.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Leave samples younger than this raw (recent samples are read most).
    pub settle: Duration,
}

impl Policy {
    /// The daemon's timer.
    pub const TIMER: Policy = Policy {
        settle: Duration::from_secs(10 * 60),
    };
    /// `monitord compact`: everything, now.
    pub const ALL: Policy = Policy {
        settle: Duration::ZERO,
    };
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub samples: i64,
    pub blocks: i64,
}

/// Packs what `policy` selects, as of `now_ms`; reads on `conn` and writes through `writes`.
pub fn compact(
    conn: &mut SqliteConnection,
    writes: Writes<'_>,
    policy: Policy,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let settle = i64::try_from(policy.settle.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_ms.saturating_sub(settle);
    let mut report = Report::default();
    writes.run(conn, move |conn| Ok(forget_old_ranges(conn, now_ms)?))?;
    loop {
        let chunk = snapshot(conn, |conn| read_chunk(conn, cutoff))?;
        let read = chunk.ids.len() as i64;
        if read == 0 {
            break;
        }
        // Rows another writer packed or expired meanwhile: read the next chunk afresh.
        if let Some(blocks) = writes.run_unless_changed(conn, move |conn| chunk.write(conn))? {
            report.samples += read;
            report.blocks += blocks;
        }
        if read < CHUNK {
            break;
        }
    }
    Ok(report)
}

/// One chunk of raw rows, packed: what to write instead of them.
struct Chunk {
    /// The raw rows packed.
    ids: Vec<i64>,
    clients: Vec<ClientBlocks>,
}

/// One client's rows of a chunk, as blocks.
struct ClientBlocks {
    client_id: i64,
    /// The newest block the rows were appended to, as read: (id, samples, ts_max).
    grown: Option<(i64, i64, i64)>,
    blocks: Vec<NewBlock>,
    runs: Vec<SeqRun>,
}

struct NewBlock {
    ts_min: i64,
    ts_max: i64,
    samples: i64,
    data: Vec<u8>,
}

/// Reads the next [`CHUNK`] settled raw rows and packs them, appended to each client's newest
/// block while that has room.
fn read_chunk(conn: &mut SqliteConnection, cutoff: i64) -> Result<Chunk, StoreError> {
    let raw = raw_samples::table
        .filter(raw_samples::ts.le(cutoff))
        .order(raw_samples::id)
        .limit(CHUNK)
        .select((raw_samples::id, RawRow::as_select()))
        .load::<(i64, RawRow)>(conn)?;
    let mut chunk = Chunk {
        ids: Vec::with_capacity(raw.len()),
        clients: Vec::new(),
    };
    if raw.is_empty() {
        return Ok(chunk);
    }
    let client_of: HashMap<i64, i64> = instances::table
        .select((instances::id, instances::client_id))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    let mut by_client: BTreeMap<i64, Vec<PackedRow>> = BTreeMap::new();
    for (id, row) in raw {
        chunk.ids.push(id);
        // Every instance row is written before its samples, in the same transaction.
        let client_id = client_of.get(&row.instance_id).copied().unwrap_or(-1);
        by_client
            .entry(client_id)
            .or_default()
            .push(row.into_packed()?);
    }
    for (client_id, rows) in by_client {
        chunk.clients.push(pack_client(conn, client_id, rows)?);
    }
    Ok(chunk)
}

impl Chunk {
    /// Deletes the packed raw rows and writes their blocks and seq ranges; returns the
    /// blocks added. [`StoreError::Changed`] if a raw row or a grown block is not as read.
    fn write(self, conn: &mut SqliteConnection) -> Result<i64, StoreError> {
        // Runs of consecutive ids, a statement each: no row is ever inserted between two
        // (a new row's id is above every other), so a run is exactly the rows read.
        let mut deleted = 0;
        for (lo, hi) in id_runs(&self.ids) {
            deleted += diesel::delete(raw_samples::table.filter(raw_samples::id.between(lo, hi)))
                .execute(conn)?;
        }
        expect_rows(deleted, self.ids.len())?;
        let mut blocks = 0;
        for c in self.clients {
            if let Some((id, samples, ts_max)) = c.grown {
                let gone = diesel::delete(
                    sample_blocks::table
                        .find(id)
                        .filter(sample_blocks::samples.eq(samples))
                        .filter(sample_blocks::ts_max.eq(ts_max)),
                )
                .execute(conn)?;
                expect_rows(gone, 1)?;
                // A grown block replaces one that was there.
                blocks -= 1;
            }
            for b in &c.blocks {
                diesel::insert_into(sample_blocks::table)
                    .values((
                        sample_blocks::client_id.eq(c.client_id),
                        sample_blocks::ts_min.eq(b.ts_min),
                        sample_blocks::ts_max.eq(b.ts_max),
                        sample_blocks::samples.eq(b.samples),
                        sample_blocks::data.eq(&b.data),
                    ))
                    .execute(conn)?;
                blocks += 1;
            }
            for &run in &c.runs {
                add_packed_range(conn, run)?;
            }
        }
        Ok(blocks)
    }
}

/// The database's free pages, and all its pages.
pub fn free_pages(conn: &mut SqliteConnection) -> Result<(i64, i64), StoreError> {
    #[derive(QueryableByName)]
    struct Pages {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        free: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        pages: i64,
    }
    let p: Pages = diesel::sql_query(
        "SELECT f.freelist_count AS free, p.page_count AS pages \
         FROM pragma_freelist_count() f, pragma_page_count() p",
    )
    .get_result(conn)?;
    Ok((p.free, p.pages))
}

/// Free pages kept for the next rows: a [`KEEP_FREE`]th of the file, at most
/// [`KEEP_FREE_MAX`]. New rows go on free pages first, so pages packing frees at steady state
/// are used again within minutes; handing them back only for the file to grow again moved
/// pages about (an incremental vacuum relocates pages from the end of the file) for nothing.
const KEEP_FREE: i64 = 10;
/// 32 MB of 4 KB pages: what the tiers churn between two compactions is a matter of the
/// fleet's rate, not of the file's size (500 hosts: ~3 MB in 5 minutes), and a tenth of a
/// year's file (~1 GB at 500 hosts) would be 100 MB kept for nothing.
const KEEP_FREE_MAX: i64 = 8_192;
/// Pages one round of [`release_free_pages`] hands back at most (8 MB): a round is one of
/// the writer's background writes.
const RELEASE_PAGES: i64 = 2_048;

/// Free pages kept in a file of `pages` pages.
fn kept_free(pages: i64) -> i64 {
    (pages / KEEP_FREE).min(KEEP_FREE_MAX)
}

/// Hands the pages that packing (or expiry) freed back to the file system (the database is
/// created with `auto_vacuum = INCREMENTAL`), all but those kept for the next rows (see
/// [`KEEP_FREE`]), in rounds of at most [`RELEASE_PAGES`].
pub fn release_free_pages(
    conn: &mut SqliteConnection,
    writes: Writes<'_>,
) -> Result<(), StoreError> {
    let mut before = i64::MAX;
    loop {
        let (free, pages) = free_pages(conn)?;
        let surplus = free - kept_free(pages);
        // Nothing left to hand back, or a round handed nothing back (a database made
        // without `auto_vacuum`).
        if surplus <= 0 || free >= before {
            return Ok(());
        }
        before = free;
        let n = surplus.min(RELEASE_PAGES);
        writes.run(conn, move |conn| {
            conn.batch_execute(&format!("PRAGMA incremental_vacuum({n});"))?;
            Ok(())
        })?;
    }
}

/// One client's rows as blocks, growing its newest block first.
fn pack_client(
    conn: &mut SqliteConnection,
    client_id: i64,
    mut rows: Vec<PackedRow>,
) -> Result<ClientBlocks, StoreError> {
    rows.sort_by_key(|r| (r.values.ts, r.instance_id, r.seq));
    let mut keys: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.instance_id, r.seq, r.values.ts))
        .collect();
    let first_ts = rows.first().map_or(i64::MIN, |r| r.values.ts);
    let newest = sample_blocks::table
        .filter(sample_blocks::client_id.eq(client_id))
        .order(sample_blocks::ts_max.desc())
        .select((
            sample_blocks::id,
            sample_blocks::ts_min,
            sample_blocks::ts_max,
            sample_blocks::samples,
            sample_blocks::data,
        ))
        .first::<(i64, i64, i64, i64, Vec<u8>)>(conn)
        .optional()?;
    let mut grown = None;
    let last_ts = rows.last().map_or(i64::MIN, |r| r.values.ts);
    if let Some((id, ts_min, ts_max, samples, data)) = newest {
        if ts_max <= first_ts
            && samples as usize + rows.len() <= BLOCK_MAX
            && last_ts - ts_min < BLOCK_SPAN_MS
        {
            let mut merged = decode_block(&data)?;
            merged.append(&mut rows);
            rows = merged;
            grown = Some((id, samples, ts_max));
        }
    }
    let blocks = split_blocks(&rows)
        .into_iter()
        .map(|chunk| NewBlock {
            ts_min: chunk.iter().map(|r| r.values.ts).min().unwrap_or(0),
            ts_max: chunk.iter().map(|r| r.values.ts).max().unwrap_or(0),
            samples: chunk.len() as i64,
            data: encode_block(chunk),
        })
        .collect();
    keys.sort_unstable();
    Ok(ClientBlocks {
        client_id,
        grown,
        blocks,
        runs: ranges(&keys),
    })
}

/// Sorted ids as closed runs of consecutive ones.
fn id_runs(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((_, hi)) if *hi + 1 == id => *hi = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// `rows` (in time order) cut into blocks of at most [`BLOCK_MAX`] samples spanning less than
/// [`BLOCK_SPAN_MS`] each.
fn split_blocks(rows: &[PackedRow]) -> Vec<&[PackedRow]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, r) in rows.iter().enumerate() {
        if i - start == BLOCK_MAX || r.values.ts - rows[start].values.ts >= BLOCK_SPAN_MS {
            out.push(&rows[start..i]);
            start = i;
        }
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// A closed run of consecutive seqs of one instance, and the newest `ts` among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeqRun {
    instance_id: i64,
    lo: i64,
    hi: i64,
    ts_max: i64,
}

/// Sorted `(instance, seq, ts)` triples as closed runs of consecutive seqs.
fn ranges(keys: &[(i64, i64, i64)]) -> Vec<SeqRun> {
    let mut out: Vec<SeqRun> = Vec::new();
    for &(instance_id, seq, ts) in keys {
        match out.last_mut() {
            Some(run) if run.instance_id == instance_id && run.hi + 1 == seq => {
                run.hi = seq;
                run.ts_max = run.ts_max.max(ts);
            }
            _ => out.push(SeqRun {
                instance_id,
                lo: seq,
                hi: seq,
                ts_max: ts,
            }),
        }
    }
    out
}

/// Records `run` as packed, merged with any range it touches. A touching range of unknown
/// age (`ts_max` NULL, packed before the column existed) holds lower seqs of the same agent
/// process, so older samples: the run's own `ts_max` stands for the merged range.
fn add_packed_range(conn: &mut SqliteConnection, run: SeqRun) -> QueryResult<()> {
    let SeqRun {
        instance_id,
        lo,
        hi,
        ts_max,
    } = run;
    let touching = packed_seqs::table
        .filter(packed_seqs::instance_id.eq(instance_id))
        .filter(packed_seqs::lo.le(hi.saturating_add(1)))
        .filter(packed_seqs::hi.ge(lo.saturating_sub(1)))
        .select((packed_seqs::lo, packed_seqs::hi, packed_seqs::ts_max))
        .load::<(i64, i64, Option<i64>)>(conn)?;
    let new_lo = touching.iter().map(|r| r.0).fold(lo, i64::min);
    let new_hi = touching.iter().map(|r| r.1).fold(hi, i64::max);
    let new_ts = touching.iter().filter_map(|r| r.2).fold(ts_max, i64::max);
    for (old_lo, _, _) in touching {
        diesel::delete(packed_seqs::table.find((instance_id, old_lo))).execute(conn)?;
    }
    diesel::insert_into(packed_seqs::table)
        .values((
            packed_seqs::instance_id.eq(instance_id),
            packed_seqs::lo.eq(new_lo),
            packed_seqs::hi.eq(new_hi),
            packed_seqs::ts_max.eq(new_ts),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes the packed ranges the replay guard no longer needs (see [`super::seen`]).
fn forget_old_ranges(conn: &mut SqliteConnection, now_ms: i64) -> QueryResult<usize> {
    diesel::delete(packed_seqs::table.filter(packed_seqs::ts_max.lt(now_ms - FORGET_AFTER_MS)))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_runs_are_consecutive_ids() {
        assert_eq!(id_runs(&[3, 4, 5, 7, 9, 10]), vec![(3, 5), (7, 7), (9, 10)]);
        assert!(id_runs(&[]).is_empty());
    }

    #[test]
    fn a_tenth_of_the_file_is_kept_free_up_to_32_mb() {
        assert_eq!(kept_free(1_000), 100);
        assert_eq!(kept_free(81_920), 8_192);
        // A year of 500 hosts: ~240,000 pages of 4 KB.
        assert_eq!(kept_free(240_000), KEEP_FREE_MAX);
    }

    #[test]
    fn ranges_split_on_gaps_and_instances() {
        let keys = [
            (1, 0, 10),
            (1, 1, 30),
            (1, 2, 20),
            (1, 5, 50),
            (2, 6, 5),
            (2, 7, 7),
        ];
        let runs: Vec<_> = ranges(&keys)
            .into_iter()
            .map(|r| (r.instance_id, r.lo, r.hi, r.ts_max))
            .collect();
        assert_eq!(runs, vec![(1, 0, 2, 30), (1, 5, 5, 50), (2, 6, 7, 7)]);
    }
}
