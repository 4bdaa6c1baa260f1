//! A client's history over any range, as the read API gives it: buckets of `step_ms` with
//! avg, min and max per series, from the finest tier still holding `from`.
//!
//! The step is the tier's own (the raw tier's: the client's interval) times the smallest
//! whole number that gives at most `points` buckets, aligned to UTC. A tier is written only
//! up to where its buckets have closed, so the newest part of any range comes from the
//! finer tiers and finally the raw samples: every bucket is complete and exact, and a range
//! spanning tiers reads as one continuous series. A bucket without samples is absent.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::prelude::*;
use monitor_core::config::{History, Keep, format_duration};

use super::bucket::{Agg, Bucket, SCALARS};
use super::rollup::{Source, read_buckets};
use crate::store::schema::rollup_progress;
use crate::store::{StoreError, read};

/// How a stored integer reads in the API: percent and load × 100, sizes in KiB.
const SCALES: [f64; SCALARS.len()] = [
    0.01, 0.01, 1024.0, 1024.0, 1024.0, 0.01, 1024.0, 1024.0, 1.0, 0.01, 0.01, 0.01, 1.0,
];

/// One bucket: its start (unix ms), then avg, min and max; JSON `[ts, avg, min, max]`.
pub type Point = (i64, f64, f64, f64);

/// One client's series over a range.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Series {
    pub name: String,
    pub from: i64,
    pub to: i64,
    pub step_ms: i64,
    /// `raw` or the tier's step (`1h`).
    pub tier: String,
    /// Series name → `[ts, avg, min, max]` per bucket that has samples, oldest first.
    pub series: BTreeMap<String, Vec<Point>>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The tier `from` is read from: its name and its step (the raw tier's is `interval`).
fn choose_tier(history: &History, interval: Duration, from: i64, now: i64) -> (usize, i64) {
    let raw_cutoff = Keep::For(history.raw).cutoff_ms(now).unwrap_or(i64::MIN);
    if from >= raw_cutoff || history.tiers.is_empty() {
        return (0, ms(interval).max(1000));
    }
    let holding = history
        .tiers
        .iter()
        .position(|t| t.keep.cutoff_ms(now).is_none_or(|cutoff| from >= cutoff))
        .unwrap_or(history.tiers.len() - 1);
    (holding + 1, ms(history.tiers[holding].step))
}

/// The smallest multiple of `base` that gives at most `points` buckets over `[from, to)`.
fn step_for(base: i64, from: i64, to: i64, points: i64) -> i64 {
    let span = (to - from).max(1);
    let mut k = (span / (points.max(1) * base)).max(1);
    while (to - from.div_euclid(k * base) * k * base + k * base - 1) / (k * base) > points {
        k += 1;
    }
    k * base
}

/// `name`'s series over `[from, to)` in at most `points` buckets; `None` for a client the
/// database has never seen.
pub fn series(
    conn: &mut SqliteConnection,
    name: &str,
    interval: Duration,
    history: &History,
    (from, to, points): (i64, i64, i64),
    now: i64,
) -> Result<Option<Series>, StoreError> {
    let Some(client_id) = read::client_id(conn, name)? else {
        return Ok(None);
    };
    let (tier, base) = choose_tier(history, interval, from, now);
    // Raw: a multiple of the interval. A rollup tier: the smallest tier step from it on that
    // gives at most `points` buckets (so days read as UTC days), else a multiple of the
    // coarsest.
    let step = if tier == 0 {
        step_for(base, from, to, points)
    } else {
        let steps: Vec<i64> = history.tiers[tier - 1..]
            .iter()
            .map(|t| ms(t.step))
            .collect();
        steps
            .iter()
            .copied()
            .find(|&s| step_for(s, from, to, points) == s)
            .unwrap_or_else(|| step_for(*steps.last().unwrap_or(&base), from, to, points))
    };
    let grid_from = from.div_euclid(step) * step;
    // Tier `tier` up to where it is written, then each finer tier, then the raw samples.
    let mut ranges: Vec<(Source, i64, i64)> = Vec::new();
    let mut lo = grid_from;
    for k in (1..=tier).rev() {
        let tier_step = ms(history.tiers[k - 1].step);
        let done = rollup_progress::table
            .find((client_id, tier_step / 1000))
            .select(rollup_progress::done_ms)
            .first::<i64>(conn)
            .optional()?
            .unwrap_or(i64::MIN)
            .min(to);
        if done > lo {
            ranges.push((Source::Tier(tier_step), lo, done));
            lo = done;
        }
    }
    if lo < to {
        ranges.push((Source::Raw, lo, to));
    }
    let mut grid: BTreeMap<i64, Bucket> = BTreeMap::new();
    for (source, lo, hi) in ranges {
        for (start, bucket) in read_buckets(conn, client_id, source, step, lo, hi)? {
            grid.entry(start).or_default().merge(&bucket);
        }
    }
    let mounts = read::disk_mounts(conn, client_id)?;
    let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for (start, bucket) in &grid {
        for (i, agg) in bucket.scalars.iter().enumerate() {
            push(&mut series, SCALARS[i], *start, agg, SCALES[i]);
        }
        for (disk_id, aggs) in &bucket.disks {
            let mount = mounts.get(disk_id).map_or("?", String::as_str);
            push(
                &mut series,
                &format!("disk:{mount}"),
                *start,
                &aggs[3],
                0.01,
            );
        }
    }
    let tier_name = match tier {
        0 => "raw".to_owned(),
        k => format_duration(history.tiers[k - 1].step),
    };
    Ok(Some(Series {
        name: name.to_owned(),
        from,
        to,
        step_ms: step,
        tier: tier_name,
        series,
    }))
}

fn push(series: &mut BTreeMap<String, Vec<Point>>, name: &str, ts: i64, agg: &Agg, scale: f64) {
    let Some(avg) = agg.avg() else { return };
    let round = |v: f64| (v * scale * 100.0).round() / 100.0;
    series.entry(name.to_owned()).or_default().push((
        ts,
        round(avg),
        round(agg.min as f64),
        round(agg.max as f64),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_core::config::{Tier, default_history};

    #[test]
    fn the_step_is_a_multiple_of_the_tier_and_gives_at_most_points_buckets() {
        let hour = 3_600_000;
        for (from, to, points) in [
            (0, 24 * hour, 600),
            (17, 365 * 24 * hour, 600),
            (5, 7 * hour, 3),
        ] {
            let step = step_for(hour, from, to, points);
            assert_eq!(step % hour, 0);
            let first = from.div_euclid(step) * step;
            let buckets = (to - first + step - 1) / step;
            assert!(
                buckets <= points,
                "{buckets} buckets of {step} for {from}..{to}"
            );
        }
        assert_eq!(step_for(60_000, 0, 3_600_000, 600), 60_000);
    }

    #[test]
    fn the_finest_tier_still_holding_from_is_chosen() {
        let now = 1_000 * 86_400_000;
        let mut h = default_history();
        h.tiers.push(Tier {
            step: Duration::from_secs(86_400),
            keep: Keep::Forever,
        });
        let day = 86_400_000;
        let ten = Duration::from_secs(10);
        assert_eq!(choose_tier(&h, ten, now - day, now), (0, 10_000));
        assert_eq!(choose_tier(&h, ten, now - 40 * day, now), (1, 3_600_000));
        assert_eq!(choose_tier(&h, ten, now - 6 * 365 * day, now), (2, day));
    }
}
