//! What `bench history` measures on the filled database: bytes per tier, the read API's two
//! queries (`series` and the clients listing) timed over many requests, one history pass as
//! the daemon's 60 s timer runs it, and ingest through the writer with and without the
//! history timer's work running beside it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use monitor_core::config::{Config, History};
use monitord::clock::Clock;
use monitord::store::history::{self, TierStats, series};
use monitord::store::recent::Recent;
use monitord::store::writer::WriterHandle;
use monitord::store::{self, StoreError};
use monitord::web::read;

use super::fill::{HostGen, INTERVAL, INTERVAL_MS, Submitter, timers_pass};
use crate::procstat;

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn number(conn: &mut SqliteConnection, sql: &str) -> Result<i64, StoreError> {
    Ok(diesel::sql_query(sql).get_result::<Named>(conn)?.n)
}

/// The database at steady state.
#[derive(Debug)]
pub struct Sizes {
    pub tiers: Vec<TierStats>,
    pub file_bytes: u64,
    pub wal_bytes: u64,
    pub page_bytes: i64,
    pub free_bytes: i64,
    /// Every table and index by bytes, largest first.
    pub objects: Vec<(String, i64)>,
}

pub fn sizes(conn: &mut SqliteConnection, db: &Path, history: &History) -> anyhow::Result<Sizes> {
    let tiers = history::tier_stats(conn, history)?;
    let page_size = number(
        conn,
        "SELECT 'p' AS name, page_size AS n FROM pragma_page_size()",
    )?;
    let pages = number(
        conn,
        "SELECT 'p' AS name, page_count AS n FROM pragma_page_count()",
    )?;
    let free = number(
        conn,
        "SELECT 'f' AS name, freelist_count AS n FROM pragma_freelist_count()",
    )?;
    let objects = diesel::sql_query(
        "SELECT name, SUM(pgsize) AS n FROM dbstat GROUP BY name ORDER BY n DESC",
    )
    .load::<Named>(conn)?
    .into_iter()
    .map(|r| (r.name, r.n))
    .collect();
    let wal = db.with_extension("sqlite3-wal");
    Ok(Sizes {
        tiers,
        file_bytes: std::fs::metadata(db)?.len(),
        wal_bytes: std::fs::metadata(&wal).map_or(0, |m| m.len()),
        page_bytes: pages * page_size,
        free_bytes: free * page_size,
        objects,
    })
}

/// Durations of many requests of one kind.
#[derive(Debug, Default)]
pub struct Timings {
    pub took: Vec<Duration>,
    /// What the last answer held (buckets per series, tier, step), for the output.
    pub shape: String,
}

impl Timings {
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.took.clone();
        sorted.sort_unstable();
        sorted
            .get(((sorted.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// `requests` answers of `series` over the `span` ms before `now`, each for another host
/// (600 points, the API's default), JSON included.
pub fn time_series(
    conn: &mut SqliteConnection,
    hosts: &[HostGen],
    history: &History,
    span: i64,
    now: i64,
    requests: usize,
) -> anyhow::Result<Timings> {
    let mut out = Timings::default();
    for i in 0..requests {
        let host = &hosts[(i * 37) % hosts.len()];
        let t = Instant::now();
        let answer = series::series(
            conn,
            &host.name,
            INTERVAL,
            history,
            (now - span, now, 600),
            now,
        )?
        .ok_or_else(|| anyhow::anyhow!("series: {} unknown", host.name))?;
        let json = serde_json::to_vec(&answer)?;
        out.took.push(t.elapsed());
        if i + 1 == requests {
            let cpu = answer.series.get("cpu_percent").map_or(0, Vec::len);
            out.shape = format!(
                "tier {}, step {} s, {} cpu buckets, {} series, {} KB JSON",
                answer.tier,
                answer.step_ms / 1000,
                cpu,
                answer.series.len(),
                json.len() / 1000
            );
        }
    }
    Ok(out)
}

/// `requests` answers of the clients listing with each client's last hour, as the fleet page
/// reads it (`web::read::fleet`), for the whole fleet. The first answer seeds monitord's
/// in-memory [`Recent`] from the store (what a daemon does once, at start); its time is in the
/// shape, the rest are the steady state, which the writer keeps current.
pub fn time_fleet(
    conn: &mut SqliteConnection,
    config: &Config,
    now: i64,
    requests: usize,
) -> anyhow::Result<Timings> {
    let recent = Recent::new();
    let t = Instant::now();
    read::fleet(conn, config, &recent, Some(now))?;
    let seed = t.elapsed();
    let mut out = Timings::default();
    for i in 0..requests {
        let t = Instant::now();
        let views = read::fleet(conn, config, &recent, Some(now))?;
        let sparks: usize = views
            .iter()
            .map(|v| recent.cpu_hour(&v.name, now).len())
            .sum();
        out.took.push(t.elapsed());
        if i + 1 == requests {
            let with = views.iter().filter(|v| v.latest.is_some()).count();
            out.shape = format!(
                "{} clients, {with} with a latest sample, {sparks} sparkline points; seeding \
                 from the store took {:.0} ms",
                views.len(),
                seed.as_secs_f64() * 1000.0
            );
        }
    }
    Ok(out)
}

/// One ingest phase: how many samples the writer committed, how fast, and what ran beside.
#[derive(Debug, Default)]
pub struct Phase {
    pub stored: u64,
    /// Answered 503: the writer could not commit their batch.
    pub unavailable: u64,
    pub elapsed: Duration,
    /// Host time covered (ms), from the first round to the last.
    pub host_span_ms: i64,
    /// Busy threads of this process (writer, generator, timers).
    pub threads: String,
    pub writer_cpu: Duration,
    /// The writer's time on the samples' batches (commits included) and on the passes'
    /// writes.
    pub writer_samples: Duration,
    pub writer_background: Duration,
    /// Timers' passes finished, and their totals [packed, rolled, raw expired, buckets expired].
    pub passes: u64,
    pub work: [i64; 4],
    pub pass_time: Duration,
}

impl Phase {
    pub fn per_second(&self) -> f64 {
        self.stored as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What an ingest phase runs beside the writer.
pub struct Background<'a> {
    pub db: &'a Path,
    /// Where the passes' writes go, as in the daemon.
    pub writer: WriterHandle,
    pub history: &'a History,
    pub clock: &'a Clock,
    /// The history timer's pass in a loop, or nothing.
    pub with_history: bool,
}

/// Feeds the writer round after round (every host's next sample, 60 s of host time apart)
/// for at most `limit` and `max_samples`; with `bg.with_history`, one thread runs the
/// daemon's timers' passes (compaction, then rollups and expiry: [`timers_pass`]) back to
/// back, reading on its own connection and writing through the writer as the daemon does,
/// at the committed samples' time, so each pass has the raw samples settled meanwhile to
/// pack, the hours that closed to roll up and the samples that aged past `raw` to expire.
pub fn ingest_phase(
    submitter: &mut Submitter,
    hosts: &mut [HostGen],
    next_ts: &mut i64,
    limit: Duration,
    max_samples: u64,
    bg: &Background<'_>,
) -> anyhow::Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let me = std::process::id();
    let timers = {
        let (stop, db, writer, history, clock, with) = (
            stop.clone(),
            bg.db.to_path_buf(),
            bg.writer.clone(),
            bg.history.clone(),
            bg.clock.clone(),
            bg.with_history,
        );
        std::thread::Builder::new().name("timers".into()).spawn(
            move || -> anyhow::Result<(u64, [i64; 4], Duration)> {
                // As the daemon's timer threads do.
                monitord::periodic::lower_priority();
                let mut conn = store::open_read_only(&db)?;
                let (mut passes, mut work, mut took) = (0, [0i64; 4], Duration::ZERO);
                // Bounded by the phase: it sets `stop` when its time or count is up.
                while with && !stop.load(Ordering::Acquire) {
                    let t = Instant::now();
                    let done = timers_pass(&mut conn, &writer, &history, clock.now_ms(), true)?;
                    took += t.elapsed();
                    passes += 1;
                    for (w, d) in work.iter_mut().zip(done) {
                        *w += d;
                    }
                    if done == [0; 4] {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Ok((passes, work, took))
            },
        )?
    };
    let gauges = bg.writer.gauges();
    let busy = || {
        (
            Duration::from_secs_f64(gauges.commit_duration.snapshot().sum_seconds),
            gauges.background(),
        )
    };
    let (samples0, background0) = busy();
    let before = procstat::thread_times(me)?;
    let start = Instant::now();
    let (stored0, unavailable0) = (submitter.stored, submitter.unavailable);
    let first_ts = *next_ts;
    let mut sent = 0u64;
    while start.elapsed() < limit && sent < max_samples {
        for h in hosts.iter_mut() {
            let s = h.jittered_sample(*next_ts);
            submitter.submit(h.name.clone(), s)?;
        }
        sent += hosts.len() as u64;
        *next_ts += INTERVAL_MS;
    }
    submitter.drain()?;
    let elapsed = start.elapsed();
    let after = procstat::thread_times(me)?;
    let (samples1, background1) = busy();
    stop.store(true, Ordering::Release);
    let (passes, work, pass_time) = timers
        .join()
        .map_err(|_| anyhow::anyhow!("the timers thread panicked"))??;
    let writer_cpu = thread_cpu(&before, &after, "writer");
    Ok(Phase {
        stored: submitter.stored - stored0,
        unavailable: submitter.unavailable - unavailable0,
        elapsed,
        host_span_ms: *next_ts - first_ts,
        threads: procstat::busy_threads(&before, &after, elapsed),
        writer_cpu,
        writer_samples: samples1.saturating_sub(samples0),
        writer_background: background1.saturating_sub(background0),
        passes,
        work,
        pass_time,
    })
}

fn thread_cpu(
    before: &[procstat::ThreadTimes],
    after: &[procstat::ThreadTimes],
    name: &str,
) -> Duration {
    after
        .iter()
        .filter(|t| t.name == name)
        .filter_map(|t| {
            before
                .iter()
                .find(|b| b.tid == t.tid)
                .map(|b| t.on_cpu.saturating_sub(b.on_cpu))
        })
        .sum()
}
