//! Rolling up: the background pass that writes each tier's buckets once they close, and the
//! writer's [`LateSamples`] hook that marks a bucket to be written again when a sample
//! drained late from a spool falls into it.
//!
//! A bucket of the finest tier is made from the raw samples in it; a bucket of a coarser
//! tier from the finer tier's buckets in it. A bucket closes `step` after its start plus the
//! client's interval (the last sample of a span may arrive that much later);
//! `rollup_progress` records per client and tier where the written buckets end. The pass
//! works in steps (one client's window of buckets, or one late bucket) in the background
//! passes' short transactions ([`crate::store::background_steps`]), so ingest never waits
//! long behind it.
//!
//! Late samples: the writer checks, in the sample's own transaction, whether the sample's
//! finest bucket is already written (before `done_ms`); if so it records the bucket in
//! `rollup_dirty`. Both run under SQLite's write lock, so either the pass wrote the bucket
//! first (and the writer marks it) or the sample was stored first (and the pass reads it).

use std::time::Duration;

use diesel::prelude::*;
use monitor_core::config::Tier;

use super::bucket::Bucket;
use super::pack;
use crate::clock::Clock;
use crate::store::StoreError;
use crate::store::batch::{BatchHook, Committed};
use crate::store::read;
use crate::store::schema::{clients, rollup_dirty, rollup_progress};

/// Buckets one transaction of the pass writes at most, per client.
const WINDOW_BUCKETS: i64 = 168;
/// Late buckets recomputed per pass at most (the rest wait for the next pass).
const DIRTY_PER_PASS: i64 = 2_000;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn align(ts: i64, step_ms: i64) -> i64 {
    ts.div_euclid(step_ms) * step_ms
}

/// The writer's hook: marks written finest-tier buckets that a newly stored sample falls in.
#[derive(Debug)]
pub struct LateSamples {
    step_ms: i64,
    clock: Clock,
}

impl LateSamples {
    /// `finest` is the finest tier's step.
    pub fn new(finest: Duration, clock: Clock) -> LateSamples {
        LateSamples {
            step_ms: ms(finest),
            clock,
        }
    }
}

impl BatchHook for LateSamples {
    fn in_batch(&self, conn: &mut SqliteConnection, stored: &[Committed<'_>]) -> QueryResult<()> {
        let now = self.clock.now_ms();
        for c in stored {
            let bucket = align(c.sample.ts, self.step_ms);
            // A bucket still open cannot have been written: the usual case costs nothing.
            if bucket + self.step_ms > now {
                continue;
            }
            let done = progress(conn, c.client_id, self.step_ms)?;
            if done.is_some_and(|done| bucket < done) {
                diesel::insert_into(rollup_dirty::table)
                    .values((
                        rollup_dirty::client_id.eq(c.client_id),
                        rollup_dirty::bucket_ms.eq(bucket),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)?;
            }
        }
        Ok(())
    }
}

fn progress(conn: &mut SqliteConnection, client_id: i64, step_ms: i64) -> QueryResult<Option<i64>> {
    rollup_progress::table
        .find((client_id, step_ms / 1000))
        .select(rollup_progress::done_ms)
        .first(conn)
        .optional()
}

fn set_progress(
    conn: &mut SqliteConnection,
    client_id: i64,
    step_ms: i64,
    done_ms: i64,
) -> QueryResult<()> {
    diesel::replace_into(rollup_progress::table)
        .values((
            rollup_progress::client_id.eq(client_id),
            rollup_progress::step_s.eq(step_ms / 1000),
            rollup_progress::done_ms.eq(done_ms),
        ))
        .execute(conn)?;
    Ok(())
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub buckets: i64,
    pub late: i64,
}

/// Where a tier's buckets come from: raw samples, or the finer tier.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    Raw,
    Tier(i64),
}

/// Writes every bucket that has closed by `now_ms` and recomputes the late ones, for every
/// tier; `interval_of` gives a client's sampling interval by name (a bucket closes one
/// interval after its end).
pub fn rollup_pass(
    conn: &mut SqliteConnection,
    tiers: &[Tier],
    interval_of: &dyn Fn(&str) -> Duration,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    if tiers.is_empty() {
        return Ok(report);
    }
    report.late = recompute_late(conn, tiers)?;
    let known = clients::table
        .select((clients::id, clients::name))
        .load::<(i64, String)>(conn)?;
    for (k, tier) in tiers.iter().enumerate() {
        let step = ms(tier.step);
        let source = if k == 0 {
            Source::Raw
        } else {
            Source::Tier(ms(tiers[k - 1].step))
        };
        // Which clients have buckets closed, looked at outside a transaction: a pass with
        // nothing closed takes no lock.
        let mut due = std::collections::VecDeque::new();
        for (client_id, name) in &known {
            let closed = align(now_ms - ms(interval_of(name)), step);
            let end = match source {
                Source::Raw => closed,
                Source::Tier(finer) => {
                    let finer_done = progress(conn, *client_id, finer)?.unwrap_or(i64::MIN);
                    closed.min(align(finer_done, step))
                }
            };
            if window_start(conn, *client_id, step, source)?.is_some_and(|start| start < end) {
                due.push_back((*client_id, end));
            }
        }
        if due.is_empty() {
            continue;
        }
        crate::store::background_steps(conn, |conn| {
            let Some(&(client_id, end)) = due.front() else {
                return Ok(false);
            };
            match write_window(conn, client_id, step, source, end)? {
                Some(n) => report.buckets += n,
                None => {
                    due.pop_front();
                }
            }
            Ok::<_, StoreError>(!due.is_empty())
        })?;
    }
    Ok(report)
}

/// Where a client's next bucket of a tier starts: where the written ones end, else at the
/// first data; `None` when there is no data at all.
fn window_start(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    source: Source,
) -> Result<Option<i64>, StoreError> {
    Ok(match progress(conn, client_id, step)? {
        Some(done) => Some(done),
        None => first_data(conn, client_id, source)?.map(|ts| align(ts, step)),
    })
}

/// Writes the next window (at most [`WINDOW_BUCKETS`]) of one client's buckets of a tier
/// before `end`; `None` when all before `end` are written.
fn write_window(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    source: Source,
    end: i64,
) -> Result<Option<i64>, StoreError> {
    let Some(start) = window_start(conn, client_id, step, source)? else {
        return Ok(None);
    };
    if start >= end {
        return Ok(None);
    }
    let window_end = end.min(start + WINDOW_BUCKETS * step);
    let buckets = read_buckets(conn, client_id, source, step, start, window_end)?;
    let n = buckets.len() as i64;
    pack::write(conn, client_id, step, buckets)?;
    // Nothing in the window: skip straight to the next data, not bucket by bucket.
    let next = if n == 0 {
        next_data(conn, client_id, source, window_end)?
            .map_or(end, |ts| align(ts, step).min(end).max(window_end))
    } else {
        window_end
    };
    set_progress(conn, client_id, step, next)?;
    Ok(Some(n))
}

/// The buckets of `[from, to)` from `source`, keyed by start; empty ones absent.
pub(super) fn read_buckets(
    conn: &mut SqliteConnection,
    client_id: i64,
    source: Source,
    step: i64,
    from: i64,
    to: i64,
) -> Result<std::collections::BTreeMap<i64, Bucket>, StoreError> {
    let mut out: std::collections::BTreeMap<i64, Bucket> = std::collections::BTreeMap::new();
    match source {
        Source::Raw => {
            for row in read::rows_between(conn, client_id, from, to)? {
                out.entry(align(row.values.ts, step))
                    .or_default()
                    .add(&row.values, &row.disks);
            }
        }
        Source::Tier(finer) => {
            for (bucket_ms, bucket) in pack::read(conn, client_id, finer, from, to)? {
                out.entry(align(bucket_ms, step))
                    .or_default()
                    .merge(&bucket);
            }
        }
    }
    Ok(out)
}

/// The oldest data a tier can be made from.
fn first_data(
    conn: &mut SqliteConnection,
    client_id: i64,
    source: Source,
) -> Result<Option<i64>, StoreError> {
    next_data(conn, client_id, source, i64::MIN)
}

/// The first data at or after `from_ms`: a raw sample's `ts`, or a finer bucket's start.
fn next_data(
    conn: &mut SqliteConnection,
    client_id: i64,
    source: Source,
    from_ms: i64,
) -> Result<Option<i64>, StoreError> {
    match source {
        Source::Raw => read::first_ts_at_or_after(conn, client_id, from_ms),
        Source::Tier(finer) => pack::first_at_or_after(conn, client_id, finer, from_ms),
    }
}

/// Recomputes the buckets late samples fell into, and the coarser buckets holding them.
fn recompute_late(conn: &mut SqliteConnection, tiers: &[Tier]) -> Result<i64, StoreError> {
    let dirty = rollup_dirty::table
        .select((rollup_dirty::client_id, rollup_dirty::bucket_ms))
        .limit(DIRTY_PER_PASS)
        .load::<(i64, i64)>(conn)?;
    if dirty.is_empty() {
        return Ok(0);
    }
    let mut left = dirty.iter();
    crate::store::background_steps(conn, |conn| {
        let Some(&(client_id, bucket_ms)) = left.next() else {
            return Ok(false);
        };
        recompute_bucket(conn, tiers, client_id, bucket_ms)?;
        Ok::<_, StoreError>(left.len() > 0)
    })?;
    Ok(dirty.len() as i64)
}

/// Writes one late bucket again in each tier that has it written, and forgets it is dirty.
fn recompute_bucket(
    conn: &mut SqliteConnection,
    tiers: &[Tier],
    client_id: i64,
    bucket_ms: i64,
) -> Result<(), StoreError> {
    let mut source = Source::Raw;
    for tier in tiers {
        let step = ms(tier.step);
        let start = align(bucket_ms, step);
        // A coarser bucket not written yet will be, whole, when it closes.
        if progress(conn, client_id, step)?.is_none_or(|done| start >= done) {
            break;
        }
        let fresh = read_buckets(conn, client_id, source, step, start, start + step)?;
        match fresh.get(&start) {
            Some(bucket) => pack::write(conn, client_id, step, [(start, bucket.clone())])?,
            None => pack::remove(conn, client_id, step, start)?,
        }
        source = Source::Tier(step);
    }
    diesel::delete(rollup_dirty::table.find((client_id, bucket_ms))).execute(conn)?;
    Ok(())
}
