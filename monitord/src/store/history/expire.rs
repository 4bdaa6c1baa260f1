//! Expiry: what is past its tier's `keep` is deleted, exactly, in bounded steps.
//!
//! Raw samples older than `raw` go: raw rows by `ts`; packed blocks wholly older are
//! deleted, and a block that straddles the cutoff is written again without its old samples,
//! so nothing younger than `keep` is lost and nothing older stays readable. A rollup bucket
//! goes once it ends at or before its tier's cutoff (its pack is deleted, or written again
//! without it). Each round deletes at most [`STEP_ROWS`] rows, [`STEP_BLOCKS`] blocks or
//! [`STEP_PACKS`] packs: read on the pass's connection, removed by the writer between its
//! batches of samples, within the passes' budget ([`crate::store::background`]), so ingest
//! never waits behind it (and never answers 503 because of it). SQLite reuses the freed pages for new rows, so at steady state the
//! file stops growing; compaction's incremental vacuum hands surplus pages back.

use diesel::prelude::*;
use monitor_core::config::{History, Keep};

use crate::store::StoreError;
use crate::store::background::Writes;
use crate::store::background::snapshot;
use crate::store::codec::{decode_block, encode_block};
use crate::store::schema::{raw_samples, sample_blocks};

use super::pack;

/// Raw rows one round deletes at most.
pub const STEP_ROWS: i64 = 2_000;
/// Packed blocks (up to 4,096 samples each) one round deletes or rewrites at most.
const STEP_BLOCKS: i64 = 20;
/// Rollup packs (up to 24 buckets each) one round deletes or rewrites at most.
const STEP_PACKS: i64 = 200;

/// What one expiry run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub raw_samples: i64,
    pub rollups: i64,
}

/// Deletes everything past `keep` as of `now_ms`; reads on `conn`, writes through `writes`.
pub fn expire(
    conn: &mut SqliteConnection,
    writes: Writes<'_>,
    history: &History,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let raw_cutoff = Keep::For(history.raw).cutoff_ms(now_ms).unwrap_or(i64::MIN);
    report.raw_samples += rounds(conn, writes, STEP_ROWS, |conn| {
        let ids = raw_samples::table
            .filter(raw_samples::ts.lt(raw_cutoff))
            .select(raw_samples::id)
            .limit(STEP_ROWS)
            .load::<i64>(conn)?;
        Ok((ids.len(), move |conn: &mut SqliteConnection| {
            let n = diesel::delete(raw_samples::table.filter(raw_samples::id.eq_any(&ids)))
                .execute(conn)?;
            Ok(n as i64)
        }))
    })?;
    report.raw_samples += rounds(conn, writes, STEP_BLOCKS, |conn| {
        let old = read_old_blocks(conn, raw_cutoff)?;
        Ok((old.len(), move |conn: &mut SqliteConnection| {
            write_old_blocks(conn, old)
        }))
    })?;
    for tier in &history.tiers {
        let Some(cutoff) = tier.keep.cutoff_ms(now_ms) else {
            continue;
        };
        let step_ms = i64::try_from(tier.step.as_millis()).unwrap_or(i64::MAX);
        // A bucket goes once it ends at or before the cutoff.
        let last_ms = cutoff - step_ms;
        report.rollups += rounds(conn, writes, STEP_PACKS, |conn| {
            let old = pack::read_expired(conn, step_ms, last_ms, STEP_PACKS)?;
            Ok((old.len(), move |conn: &mut SqliteConnection| {
                pack::write_expired(conn, old)
            }))
        })?;
    }
    Ok(report)
}

/// Runs rounds of expiry until one reads fewer than `limit` rows: `read` gives how many rows
/// it read and the write that removes what is past `keep` of them (returning how many
/// samples or buckets it removed). Rows changed between the two are left for a later round
/// (see [`crate::store::background`]).
fn rounds<W>(
    conn: &mut SqliteConnection,
    writes: Writes<'_>,
    limit: i64,
    mut read: impl FnMut(&mut SqliteConnection) -> Result<(usize, W), StoreError>,
) -> Result<i64, StoreError>
where
    W: FnOnce(&mut SqliteConnection) -> Result<i64, StoreError> + Send + 'static,
{
    let mut total = 0;
    loop {
        let (touched, write) = snapshot(conn, &mut read)?;
        if touched == 0 {
            return Ok(total);
        }
        total += writes.run(conn, write)?;
        if (touched as i64) < limit {
            return Ok(total);
        }
    }
}

/// A packed block with samples past the raw tier's cutoff, as read.
struct OldBlock {
    id: i64,
    samples: i64,
    ts_max: i64,
    /// What is left of it, or `None` when all of it goes.
    kept: Option<(i64, i64, Vec<u8>)>,
}

/// Up to [`STEP_BLOCKS`] blocks with samples before `cutoff`, with what is left of each.
fn read_old_blocks(conn: &mut SqliteConnection, cutoff: i64) -> Result<Vec<OldBlock>, StoreError> {
    let old = sample_blocks::table
        .filter(sample_blocks::ts_min.lt(cutoff))
        .select((
            sample_blocks::id,
            sample_blocks::ts_max,
            sample_blocks::samples,
            sample_blocks::data,
        ))
        .limit(STEP_BLOCKS)
        .load::<(i64, i64, i64, Vec<u8>)>(conn)?;
    let mut out = Vec::with_capacity(old.len());
    for (id, ts_max, samples, data) in old {
        let kept = if ts_max < cutoff {
            None
        } else {
            let kept: Vec<_> = decode_block(&data)?
                .into_iter()
                .filter(|r| r.values.ts >= cutoff)
                .collect();
            let ts_min = kept.iter().map(|r| r.values.ts).min().unwrap_or(cutoff);
            Some((ts_min, kept.len() as i64, encode_block(&kept)))
        };
        out.push(OldBlock {
            id,
            samples,
            ts_max,
            kept,
        });
    }
    Ok(out)
}

/// Deletes or rewrites the blocks read; a block changed since (compaction grew it) is left
/// for the next round. Returns the samples removed.
fn write_old_blocks(conn: &mut SqliteConnection, old: Vec<OldBlock>) -> Result<i64, StoreError> {
    let mut removed = 0;
    for b in old {
        let as_read = sample_blocks::table
            .find(b.id)
            .filter(sample_blocks::samples.eq(b.samples))
            .filter(sample_blocks::ts_max.eq(b.ts_max));
        match b.kept {
            None => {
                if diesel::delete(as_read).execute(conn)? == 1 {
                    removed += b.samples;
                }
            }
            Some((ts_min, samples, data)) => {
                let n = diesel::update(as_read)
                    .set((
                        sample_blocks::ts_min.eq(ts_min),
                        sample_blocks::samples.eq(samples),
                        sample_blocks::data.eq(data),
                    ))
                    .execute(conn)?;
                if n == 1 {
                    removed += b.samples - samples;
                }
            }
        }
    }
    Ok(removed)
}
