//! Rolling up: the background pass that writes each tier's buckets once they close, and the
//! writer's [`LateSamples`] hook that marks a bucket to be written again when a sample
//! arrives after the bucket ended (drained late from a spool, say).
//!
//! A bucket of the finest tier is made from the raw samples in it; a bucket of a coarser
//! tier from the finer tier's buckets in it. A bucket closes `step` after its start plus the
//! client's interval (the last sample of a span may arrive that much later);
//! `rollup_progress` records per client and tier where the written buckets end. The pass
//! works in rounds (see [`crate::store::background`]): it reads the next window of buckets
//! of each client due (or one late bucket per client) and hands the writes to the writer.
//!
//! Late samples: between a pass's read and its write, the writer may store a sample into a
//! bucket the pass is writing without it. So the writer marks, in the sample's own
//! transaction, the bucket of every sample whose bucket has already ended (`rollup_dirty`;
//! a pass reads only ended buckets), and the next pass recomputes the bucket if it was
//! written. A mark counts the samples that marked it (`version`): a pass deletes the mark
//! it recomputed from only if no sample marked it again after its read.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use monitor_core::config::Tier;

use super::bucket::Bucket;
use super::pack;
use crate::clock::Clock;
use crate::store::StoreError;
use crate::store::background::Writes;
use crate::store::background::{round_is_full, snapshot};
use crate::store::batch::{BatchHook, Committed};
use crate::store::read;
use crate::store::schema::{clients, rollup_dirty, rollup_progress};

/// Buckets of one client a round of the pass writes at most.
const WINDOW_BUCKETS: i64 = 168;
/// Late buckets recomputed per pass at most (the rest wait for the next pass).
const DIRTY_PER_PASS: i64 = 2_000;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn align(ts: i64, step_ms: i64) -> i64 {
    ts.div_euclid(step_ms) * step_ms
}

/// The writer's hook: marks the finest-tier bucket of every newly stored sample whose bucket
/// has ended, as late (see the module's paragraph).
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
            // A bucket still open has not been read by a pass: the usual case costs nothing.
            if bucket + self.step_ms > now {
                continue;
            }
            diesel::insert_into(rollup_dirty::table)
                .values((
                    rollup_dirty::client_id.eq(c.client_id),
                    rollup_dirty::bucket_ms.eq(bucket),
                    rollup_dirty::version.eq(0),
                ))
                .on_conflict((rollup_dirty::client_id, rollup_dirty::bucket_ms))
                .do_update()
                .set(rollup_dirty::version.eq(rollup_dirty::version + 1))
                .execute(conn)?;
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
/// interval after its end). Reads on `conn`, writes through `writes`.
pub fn rollup_pass(
    conn: &mut SqliteConnection,
    writes: Writes<'_>,
    tiers: &[Tier],
    interval_of: &dyn Fn(&str) -> Duration,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    if tiers.is_empty() {
        return Ok(report);
    }
    report.late = recompute_late(conn, writes, tiers)?;
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
        // Which clients have buckets closed: a pass with nothing closed writes nothing.
        let mut due = VecDeque::new();
        for (client_id, name) in &known {
            let closed = align(now_ms - ms(interval_of(name)), step);
            let end = match source {
                Source::Raw => closed,
                Source::Tier(finer) => {
                    let finer_done = progress(conn, *client_id, finer)?.unwrap_or(i64::MIN);
                    closed.min(align(finer_done, step))
                }
            };
            let done = progress(conn, *client_id, step)?;
            if window_start(conn, *client_id, step, source, done)?.is_some_and(|start| start < end)
            {
                due.push_back((*client_id, end));
            }
        }
        // Rounds: the next window of each client still due (up to a round's reading).
        while !due.is_empty() {
            let windows = snapshot(conn, |conn| {
                let started = Instant::now();
                let mut windows = Vec::new();
                for _ in 0..due.len() {
                    if !windows.is_empty() && round_is_full(started) {
                        break;
                    }
                    let (client_id, end) = due.pop_front().expect("counted");
                    if let Some(w) = read_window(conn, client_id, step, source, end)? {
                        if w.next < end {
                            due.push_back((client_id, end));
                        }
                        windows.push(w);
                    }
                }
                Ok::<_, StoreError>(windows)
            })?;
            if windows.is_empty() {
                continue;
            }
            // Packs another process's pass wrote meanwhile: the next round reads afresh.
            let written =
                writes.run_unless_changed(conn, move |conn| write_windows(conn, step, windows))?;
            report.buckets += written.unwrap_or(0);
        }
    }
    Ok(report)
}

/// Where a client's next bucket of a tier starts, given its progress there (`done`): where the
/// written ones end, else at the first data; `None` when there is no data at all.
fn window_start(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    source: Source,
    done: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    Ok(match done {
        Some(done) => Some(done),
        None => first_data(conn, client_id, source)?.map(|ts| align(ts, step)),
    })
}

/// One client's next buckets of a tier, as read, to be written.
struct Window {
    client_id: i64,
    /// The client's progress in the tier when read (`None`: nothing written yet).
    done: Option<i64>,
    buckets: i64,
    /// The pack rows that write them.
    packs: pack::Plan,
    /// Where the written buckets will end.
    next: i64,
}

/// Reads the next window (at most [`WINDOW_BUCKETS`]) of one client's buckets of a tier
/// before `end`; `None` when all before `end` are written.
fn read_window(
    conn: &mut SqliteConnection,
    client_id: i64,
    step: i64,
    source: Source,
    end: i64,
) -> Result<Option<Window>, StoreError> {
    let done = progress(conn, client_id, step)?;
    let Some(start) = window_start(conn, client_id, step, source, done)? else {
        return Ok(None);
    };
    if start >= end {
        return Ok(None);
    }
    let window_end = end.min(start + WINDOW_BUCKETS * step);
    let buckets = read_buckets(conn, client_id, source, step, start, window_end)?;
    // Nothing in the window: skip straight to the next data, not bucket by bucket.
    let next = if buckets.is_empty() {
        next_data(conn, client_id, source, window_end)?
            .map_or(end, |ts| align(ts, step).min(end).max(window_end))
    } else {
        window_end
    };
    Ok(Some(Window {
        client_id,
        done,
        buckets: buckets.len() as i64,
        packs: pack::plan(conn, client_id, step, buckets)?,
        next,
    }))
}

/// Writes the windows read in one round; a client whose progress moved since (another
/// process's pass wrote them) is skipped. Returns the buckets written.
fn write_windows(
    conn: &mut SqliteConnection,
    step: i64,
    windows: Vec<Window>,
) -> Result<i64, StoreError> {
    let mut written = 0;
    for w in windows {
        if progress(conn, w.client_id, step)? != w.done {
            continue;
        }
        w.packs.apply(conn)?;
        set_progress(conn, w.client_id, step, w.next)?;
        written += w.buckets;
    }
    Ok(written)
}

/// The buckets of `[from, to)` from `source`, keyed by start; empty ones absent.
pub(super) fn read_buckets(
    conn: &mut SqliteConnection,
    client_id: i64,
    source: Source,
    step: i64,
    from: i64,
    to: i64,
) -> Result<BTreeMap<i64, Bucket>, StoreError> {
    let mut out: BTreeMap<i64, Bucket> = BTreeMap::new();
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

/// Recomputes the buckets late samples fell into, and the coarser buckets holding them:
/// in rounds of one late bucket per client.
fn recompute_late(
    conn: &mut SqliteConnection,
    writes: Writes<'_>,
    tiers: &[Tier],
) -> Result<i64, StoreError> {
    let dirty = rollup_dirty::table
        .select((rollup_dirty::client_id, rollup_dirty::bucket_ms))
        .order((rollup_dirty::client_id, rollup_dirty::bucket_ms))
        .limit(DIRTY_PER_PASS)
        .load::<(i64, i64)>(conn)?;
    let mut left: BTreeMap<i64, VecDeque<i64>> = BTreeMap::new();
    for &(client_id, bucket_ms) in &dirty {
        left.entry(client_id).or_default().push_back(bucket_ms);
    }
    while !left.is_empty() {
        // One bucket per client a round: two of a client's late buckets may share a coarser
        // one, which each would compute without the other's news.
        let fresh = snapshot(conn, |conn| {
            let started = Instant::now();
            let mut fresh = Vec::new();
            for (&client_id, buckets) in left.iter_mut() {
                if !fresh.is_empty() && round_is_full(started) {
                    break;
                }
                if let Some(bucket_ms) = buckets.pop_front() {
                    fresh.extend(recompute_bucket(conn, tiers, client_id, bucket_ms)?);
                }
            }
            Ok::<_, StoreError>(fresh)
        })?;
        left.retain(|_, buckets| !buckets.is_empty());
        // Packs changed meanwhile: the marks stay, and the next pass recomputes.
        writes.run_unless_changed(conn, move |conn| write_late(conn, fresh))?;
    }
    Ok(dirty.len() as i64)
}

/// A late bucket recomputed from what was read: the mark as read, and the pack rows that
/// write the bucket anew in each tier that has it written.
struct Late {
    client_id: i64,
    bucket_ms: i64,
    version: i64,
    tiers: Vec<pack::Plan>,
}

/// Recomputes one late bucket in each tier that has it written, coarser tiers from the finer
/// one's buckets with the fresh one in place of the old; `None` if it is no longer marked.
fn recompute_bucket(
    conn: &mut SqliteConnection,
    tiers: &[Tier],
    client_id: i64,
    bucket_ms: i64,
) -> Result<Option<Late>, StoreError> {
    let Some(version) = rollup_dirty::table
        .find((client_id, bucket_ms))
        .select(rollup_dirty::version)
        .first::<i64>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let mut late = Late {
        client_id,
        bucket_ms,
        version,
        tiers: Vec::new(),
    };
    let mut finer: Option<(i64, i64, Option<Bucket>)> = None;
    for tier in tiers {
        let step = ms(tier.step);
        let start = align(bucket_ms, step);
        // A coarser bucket not written yet will be, whole, when it closes.
        if progress(conn, client_id, step)?.is_none_or(|done| start >= done) {
            break;
        }
        let fresh = match finer {
            None => read_buckets(conn, client_id, Source::Raw, step, start, start + step)?
                .remove(&start),
            Some((finer_step, finer_start, ref finer_fresh)) => {
                let mut parts: BTreeMap<i64, Bucket> =
                    pack::read(conn, client_id, finer_step, start, start + step)?
                        .into_iter()
                        .collect();
                parts.remove(&finer_start);
                if let Some(b) = finer_fresh {
                    parts.insert(finer_start, b.clone());
                }
                (!parts.is_empty()).then(|| {
                    let mut all = Bucket::default();
                    for b in parts.values() {
                        all.merge(b);
                    }
                    all
                })
            }
        };
        late.tiers.push(match &fresh {
            Some(bucket) => pack::plan(conn, client_id, step, [(start, bucket.clone())])?,
            // No samples left in it.
            None => pack::plan_remove(conn, client_id, step, start)?,
        });
        finer = Some((step, start, fresh));
    }
    Ok(Some(late))
}

/// Writes late buckets recomputed in one round, and forgets their marks; a bucket marked
/// again since it was read keeps its mark, and is recomputed by the next pass.
fn write_late(conn: &mut SqliteConnection, fresh: Vec<Late>) -> Result<(), StoreError> {
    for late in fresh {
        let forgotten = diesel::delete(
            rollup_dirty::table
                .find((late.client_id, late.bucket_ms))
                .filter(rollup_dirty::version.eq(late.version)),
        )
        .execute(conn)?;
        if forgotten == 0 {
            continue;
        }
        for packs in late.tiers {
            packs.apply(conn)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use monitor_core::config::Keep;

    use super::*;
    use crate::store::read;
    use crate::store::tests::{fleet, submit_all, temp_db};
    use crate::store::writer::{Receipt, Writer};

    const HOUR: i64 = 3_600_000;

    /// The hour bucket as written, and as the raw samples make it now.
    fn written_and_fresh(
        conn: &mut SqliteConnection,
        client_id: i64,
        hour: i64,
    ) -> (Option<Bucket>, Option<Bucket>) {
        let written = pack::read(conn, client_id, HOUR, hour, hour + HOUR)
            .unwrap()
            .into_iter()
            .next()
            .map(|(_, b)| b);
        let fresh = read_buckets(conn, client_id, Source::Raw, HOUR, hour, hour + HOUR)
            .unwrap()
            .remove(&hour);
        (written, fresh)
    }

    fn marked(conn: &mut SqliteConnection, client_id: i64, hour: i64) -> Option<i64> {
        rollup_dirty::table
            .find((client_id, hour))
            .select(rollup_dirty::version)
            .first(conn)
            .optional()
            .unwrap()
    }

    /// Samples stored by the writer while a pass is between its read and its write (a round
    /// of windows, then a late bucket) are not lost from the rollups: the next pass has them.
    #[test]
    fn samples_stored_between_a_pass_read_and_its_write_reach_their_buckets() {
        let path = temp_db("late-race");
        let clock = Clock::system();
        let hook = Arc::new(LateSamples::new(Duration::from_secs(3600), clock.clone()));
        let writer = Writer::start(
            crate::store::open_for_writing(&path).unwrap(),
            clock,
            vec![hook],
        )
        .unwrap();
        let tiers = [
            Tier {
                step: Duration::from_secs(3600),
                keep: Keep::Forever,
            },
            Tier {
                step: Duration::from_secs(86_400),
                keep: Keep::Forever,
            },
        ];
        let interval = |_: &str| Duration::from_secs(10);
        // 1,000 samples 10 s apart, three days ago: every bucket has ended.
        let samples = fleet(1, 1000);
        let hour_of = |i: usize| align(samples[i].1.ts, HOUR);
        // a and b 100 s apart in one hour (which side of a depends on the time of day).
        let (c, a) = (700, 300);
        let b = if hour_of(a + 10) == hour_of(a) {
            a + 10
        } else {
            a - 10
        };
        assert_eq!(hour_of(a), hour_of(b));
        let first: Vec<_> = samples
            .iter()
            .enumerate()
            .filter(|(i, _)| ![a, b, c].contains(i))
            .map(|(_, s)| s.clone())
            .collect();
        let stored = |some: &[(String, monitor_core::Sample)]| {
            assert!(
                submit_all(&writer, some)
                    .iter()
                    .all(|r| *r == Receipt::Stored)
            );
        };
        stored(&first);
        let mut conn = crate::store::open_existing(&path).unwrap();
        let id = read::client_id(&mut conn, "host0").unwrap().unwrap();
        let now = Clock::system().now_ms();

        // A round of windows read; sample c stored; the round written without it.
        let end = align(now - 10_000, HOUR);
        let window = snapshot(&mut conn, |conn| {
            read_window(conn, id, HOUR, Source::Raw, end)
        })
        .unwrap()
        .unwrap();
        stored(&samples[c..=c]);
        Writes::Here
            .run(&mut conn, move |conn| {
                write_windows(conn, HOUR, vec![window])
            })
            .unwrap();
        let (written, fresh) = written_and_fresh(&mut conn, id, hour_of(c));
        assert_ne!(written, fresh, "the window was written without sample c");
        assert!(marked(&mut conn, id, hour_of(c)).is_some());
        rollup_pass(&mut conn, Writes::Here, &tiers, &interval, now).unwrap();
        let (written, fresh) = written_and_fresh(&mut conn, id, hour_of(c));
        assert_eq!(written, fresh, "the next pass rolled sample c up");
        assert_eq!(marked(&mut conn, id, hour_of(c)), None);

        // A late bucket recomputed with sample a; b stored before the write: the mark stays.
        stored(&samples[a..=a]);
        let late = snapshot(&mut conn, |conn| {
            recompute_bucket(conn, &tiers, id, hour_of(a))
        })
        .unwrap()
        .unwrap();
        assert_eq!(late.tiers.len(), 2, "both tiers have the bucket written");
        stored(&samples[b..=b]);
        Writes::Here
            .run(&mut conn, move |conn| write_late(conn, vec![late]))
            .unwrap();
        assert_eq!(marked(&mut conn, id, hour_of(a)), Some(1));
        rollup_pass(&mut conn, Writes::Here, &tiers, &interval, now).unwrap();
        let (written, fresh) = written_and_fresh(&mut conn, id, hour_of(a));
        assert_eq!(written, fresh, "the next pass rolled a and b up");
        assert_eq!(
            written.map(|b| b.samples),
            Some(
                samples
                    .iter()
                    .filter(|(_, s)| align(s.ts, HOUR) == hour_of(a))
                    .count() as i64
            )
        );
        assert_eq!(marked(&mut conn, id, hour_of(a)), None);
        // The day holds every sample, exactly as its hours do.
        let day = align(samples[a].1.ts, 86_400_000);
        let days = pack::read(&mut conn, id, 86_400_000, day, day + 86_400_000).unwrap();
        let hours = read_buckets(
            &mut conn,
            id,
            Source::Tier(HOUR),
            86_400_000,
            day,
            day + 86_400_000,
        )
        .unwrap();
        assert_eq!(days.into_iter().collect::<BTreeMap<_, _>>(), hours);
        writer.shutdown();
    }
}
