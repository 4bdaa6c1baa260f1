//! Expiry: what is past its tier's `keep` is deleted, exactly, in bounded steps.
//!
//! Raw samples older than `raw` go: raw rows by `ts`; packed blocks wholly older are
//! deleted, and a block that straddles the cutoff is written again without its old samples,
//! so nothing younger than `keep` is lost and nothing older stays readable. A rollup bucket
//! goes once it ends at or before its tier's cutoff (its pack is deleted, or written again
//! without it). Each step deletes at most [`STEP_ROWS`] rows, [`STEP_BLOCKS`] blocks or
//! [`STEP_PACKS`] packs, in the background passes' short transactions
//! ([`store::background_steps`]), so the writer never waits for long behind it (and never
//! answers 503 because of it). SQLite reuses the freed pages for new rows, so at steady state the
//! file stops growing; compaction's incremental vacuum hands surplus pages back.

use diesel::prelude::*;
use monitor_core::config::{History, Keep};

use crate::store::codec::{decode_block, encode_block};
use crate::store::schema::{raw_samples, sample_blocks};
use crate::store::{self, StoreError};

use super::pack;

/// Rows one transaction deletes at most.
pub const STEP_ROWS: i64 = 2_000;
/// Packed blocks (up to 4,096 samples each) one transaction deletes or rewrites at most.
const STEP_BLOCKS: i64 = 20;
/// Rollup packs (up to 24 buckets each) one transaction deletes or rewrites at most.
const STEP_PACKS: i64 = 200;

/// What one bounded step removed, and whether there may be more.
struct Step {
    removed: i64,
    more: bool,
}

impl Step {
    fn of(removed: i64, touched: usize, limit: i64) -> Step {
        Step {
            removed,
            more: touched as i64 == limit,
        }
    }
}

/// What one expiry run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub raw_samples: i64,
    pub rollups: i64,
}

/// Deletes everything past `keep` as of `now_ms`.
pub fn expire(
    conn: &mut SqliteConnection,
    history: &History,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let raw_cutoff = Keep::For(history.raw).cutoff_ms(now_ms).unwrap_or(i64::MIN);
    report.raw_samples += repeat(
        conn,
        |conn| {
            diesel::select(diesel::dsl::exists(
                raw_samples::table.filter(raw_samples::ts.lt(raw_cutoff)),
            ))
            .get_result(conn)
        },
        |conn| expire_raw_rows(conn, raw_cutoff),
    )?;
    report.raw_samples += repeat(
        conn,
        |conn| {
            diesel::select(diesel::dsl::exists(
                sample_blocks::table.filter(sample_blocks::ts_min.lt(raw_cutoff)),
            ))
            .get_result(conn)
        },
        |conn| expire_blocks(conn, raw_cutoff),
    )?;
    for tier in &history.tiers {
        let Some(cutoff) = tier.keep.cutoff_ms(now_ms) else {
            continue;
        };
        let step_ms = i64::try_from(tier.step.as_millis()).unwrap_or(i64::MAX);
        // A bucket goes once it ends at or before the cutoff.
        let last_ms = cutoff - step_ms;
        report.rollups += repeat(
            conn,
            |conn| pack::any_at_or_before(conn, step_ms, last_ms),
            |conn| {
                let (removed, touched) = pack::expire_step(conn, step_ms, last_ms, STEP_PACKS)?;
                Ok(Step::of(removed, touched, STEP_PACKS))
            },
        )?;
    }
    Ok(report)
}

/// Runs `step` until it says there is no more, in the background passes' transactions
/// ([`store::background_steps`]). `any` looks first, outside a transaction: a pass with
/// nothing to expire never takes the write lock.
fn repeat(
    conn: &mut SqliteConnection,
    any: impl FnOnce(&mut SqliteConnection) -> QueryResult<bool>,
    mut step: impl FnMut(&mut SqliteConnection) -> Result<Step, StoreError>,
) -> Result<i64, StoreError> {
    if !any(conn)? {
        return Ok(0);
    }
    let mut total = 0;
    store::background_steps(conn, |conn| {
        let done = step(conn)?;
        total += done.removed;
        Ok::<_, StoreError>(done.more)
    })?;
    Ok(total)
}

fn expire_raw_rows(conn: &mut SqliteConnection, cutoff: i64) -> Result<Step, StoreError> {
    let ids = raw_samples::table
        .filter(raw_samples::ts.lt(cutoff))
        .select(raw_samples::id)
        .limit(STEP_ROWS)
        .load::<i64>(conn)?;
    let n =
        diesel::delete(raw_samples::table.filter(raw_samples::id.eq_any(&ids))).execute(conn)?;
    Ok(Step::of(n as i64, ids.len(), STEP_ROWS))
}

/// Deletes blocks wholly before `cutoff` and rewrites those straddling it.
fn expire_blocks(conn: &mut SqliteConnection, cutoff: i64) -> Result<Step, StoreError> {
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
    let mut removed = 0;
    for (id, ts_max, samples, data) in &old {
        if *ts_max < cutoff {
            diesel::delete(sample_blocks::table.find(id)).execute(conn)?;
            removed += samples;
            continue;
        }
        let kept: Vec<_> = decode_block(data)?
            .into_iter()
            .filter(|r| r.values.ts >= cutoff)
            .collect();
        let ts_min = kept.iter().map(|r| r.values.ts).min().unwrap_or(cutoff);
        removed += samples - kept.len() as i64;
        diesel::update(sample_blocks::table.find(id))
            .set((
                sample_blocks::ts_min.eq(ts_min),
                sample_blocks::samples.eq(kept.len() as i64),
                sample_blocks::data.eq(encode_block(&kept)),
            ))
            .execute(conn)?;
    }
    Ok(Step::of(removed, old.len(), STEP_BLOCKS))
}
