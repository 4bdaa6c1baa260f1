//! Filling `bench history`'s database with a year of a fleet, through the store code
//! monitord runs, in two parts:
//!
//! - **Raw part** (the last `raw` + 1 days): every sample goes through the real group-commit
//!   [`Writer`] (with the rollup tier's late-sample hook, as the daemon wires it), on a
//!   manual [`Clock`] that follows the samples; after each simulated day, on a connection
//!   of its own, the compaction timer's pass (`compact` with the timer's policy, then the
//!   release of free pages) and the history timer's pass (`history::maintain`: rollups,
//!   then expiry). The extra day is there so that the final pass expires real samples.
//! - **Older part** (the rest of the year): 241 M samples at 500 hosts cannot go through the
//!   raw tier in bounded time, so each host's samples of each hour are generated all the
//!   same, folded into a bucket with [`Bucket::add`] (what the rollup pass does with raw
//!   samples) and written with [`pack::write`] (what the pass writes with), a day of each
//!   host's buckets at a time across the fleet. One raw sample per host a minute before
//!   the year starts creates the client and disk rows through the writer; the rollup pass
//!   rolls it up and expiry removes it like any other.
//!
//! Values come from `bench ingest`'s random walks ([`crate::fleet::Host`]), sampled every
//! 60 s; raw timestamps carry ±20 ms of jitter, as agents' do.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use monitor_core::Sample;
use monitor_core::config::History;
use monitord::clock::Clock;
use monitord::store::background::Writes;
use monitord::store::batch::BatchHook;
use monitord::store::history::bucket::Bucket;
use monitord::store::history::pack;
use monitord::store::history::rollup::LateSamples;
use monitord::store::stored::{DiskValues, Values, kib};
use monitord::store::writer::{Receipt, Writer, WriterHandle};
use monitord::store::{self, StoreError, compact, history, schema};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

use crate::fleet::Host;

pub const INTERVAL: Duration = Duration::from_secs(60);
pub const INTERVAL_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Requests in flight at once, as `bench ingest`'s 1,000 connections keep.
const IN_FLIGHT: usize = 1_000;

/// One host of the fleet: `bench ingest`'s random walks, one sample a minute.
pub struct HostGen {
    pub name: Arc<str>,
    host: Host,
    rng: SmallRng,
    /// `ts` and uptime of the first sample, so uptime follows the 60 s steps.
    first: Option<(i64, i64)>,
    pub client_id: i64,
    disk_ids: HashMap<String, i64>,
    /// Numeric fields of one raw sample: 13 scalars and total, used, avail per disk.
    pub raw_values: usize,
    /// Numbers of one rollup bucket: min, max, sum of 13 scalars and 4 fields per disk, and
    /// the count.
    pub bucket_values: usize,
}

impl HostGen {
    pub fn new(index: usize, name: &str, first_ts: i64) -> HostGen {
        let mut rng = SmallRng::seed_from_u64(0x0b15_7041 ^ index as u64);
        let host = Host::new(name, first_ts, &mut rng);
        HostGen {
            name: name.into(),
            host,
            rng,
            first: None,
            client_id: -1,
            disk_ids: HashMap::new(),
            raw_values: 0,
            bucket_values: 0,
        }
    }

    /// The host's next sample, taken at `ts`.
    pub fn sample_at(&mut self, ts: i64) -> Sample {
        let mut s = self.host.next_sample(&mut self.rng);
        let (ts0, up0) = *self.first.get_or_insert((ts, s.uptime_s.unwrap_or(0)));
        s.ts = ts;
        s.uptime_s = Some(up0 + (ts - ts0) / 1000);
        if self.raw_values == 0 {
            let v = Values::of(&s);
            let scalars = 5
                + v.swap.map_or(0, |_| 3)
                + usize::from(v.uptime.is_some())
                + v.load.map_or(0, |_| 3)
                + usize::from(v.processes.is_some());
            let disk_fields: usize = s
                .disks
                .iter()
                .map(|d| 2 + usize::from(d.avail.is_some()))
                .sum();
            self.raw_values = scalars + disk_fields;
            self.bucket_values = 3 * (scalars + 4 * s.disks.len()) + 1;
        }
        s
    }

    /// The sample due at `ts` with an agent's jitter.
    pub fn jittered_sample(&mut self, ts: i64) -> Sample {
        let jitter = self.rng.random_range(-20..=20);
        self.sample_at(ts + jitter)
    }

    /// The bucket of the hour starting at `hour`: its 60 samples, added as the pass adds raw
    /// samples.
    fn hour_bucket(&mut self, hour: i64) -> Bucket {
        let mut bucket = Bucket::default();
        for k in 0..HOUR_MS / INTERVAL_MS {
            let s = self.sample_at(hour + k * INTERVAL_MS);
            let disks: Vec<DiskValues> = s
                .disks
                .iter()
                .map(|d| DiskValues {
                    disk_id: self.disk_ids.get(&d.mount).copied().unwrap_or(-1),
                    total: kib(d.total),
                    used: kib(d.used),
                    avail: d.avail.map(kib),
                })
                .collect();
            bucket.add(&Values::of(&s), &disks);
        }
        bucket
    }
}

/// Hands samples to the writer with at most [`IN_FLIGHT`] unanswered, and moves the clock to
/// the newest committed sample: samples go in round by round and the writer commits in
/// order, so a bucket has closed (one interval after its end) only once all its samples are
/// committed, and none arrives late.
pub struct Submitter {
    handle: WriterHandle,
    clock: Clock,
    in_flight: VecDeque<(i64, oneshot::Receiver<Receipt>)>,
    pub stored: u64,
    /// Answered 503 (the batch could not commit; the writer logs why). Not sent again.
    pub unavailable: u64,
}

/// Samples answered 503 before the fill gives up.
const UNAVAILABLE_MAX: u64 = 100_000;

impl Submitter {
    pub fn new(handle: WriterHandle, clock: Clock) -> Submitter {
        Submitter {
            handle,
            clock,
            in_flight: VecDeque::with_capacity(IN_FLIGHT),
            stored: 0,
            unavailable: 0,
        }
    }

    pub fn submit(&mut self, client: Arc<str>, sample: Sample) -> anyhow::Result<()> {
        if self.in_flight.len() >= IN_FLIGHT {
            self.wait_one()?;
        }
        let ts = sample.ts;
        let reply = self.handle.submit(client, sample)?;
        self.in_flight.push_back((ts, reply));
        Ok(())
    }

    fn wait_one(&mut self) -> anyhow::Result<()> {
        let Some((ts, reply)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match reply.blocking_recv() {
            Ok(Receipt::Stored) => self.stored += 1,
            Ok(Receipt::Duplicate) => bail!("the writer took a generated sample for a replay"),
            Ok(Receipt::Unavailable) => {
                self.unavailable += 1;
                if self.unavailable > UNAVAILABLE_MAX {
                    bail!(
                        "the writer could not commit {UNAVAILABLE_MAX} samples (see its log above)"
                    );
                }
            }
            Err(_) => bail!("the writer thread stopped"),
        }
        advance_to(&self.clock, ts);
        Ok(())
    }

    /// Waits until every submitted sample is answered.
    pub fn drain(&mut self) -> anyhow::Result<()> {
        while !self.in_flight.is_empty() {
            self.wait_one()?;
        }
        Ok(())
    }
}

/// Moves a manual clock forward to `ts` (never back).
pub fn advance_to(clock: &Clock, ts: i64) {
    let now = clock.now_ms();
    if ts > now {
        clock.advance(Duration::from_millis((ts - now) as u64));
    }
}

/// What the timers of the daemon do, once, on their own connection: the compaction timer's
/// pass, then the history timer's. Returns (raw samples packed, buckets rolled, raw samples
/// expired, buckets expired).
pub fn timers_pass(
    conn: &mut SqliteConnection,
    writer: &WriterHandle,
    history: &History,
    now_ms: i64,
    with_history: bool,
) -> anyhow::Result<[i64; 4]> {
    let writes = Writes::Writer(writer);
    let packed = compact::compact(conn, writes, compact::Policy::TIMER, now_ms)?;
    if packed.samples > 0 {
        compact::release_free_pages(conn, writes)?;
    }
    if !with_history {
        return Ok([packed.samples, 0, 0, 0]);
    }
    let (rolled, expired) = history::maintain(conn, writes, history, &|_| INTERVAL, now_ms)?;
    Ok([
        packed.samples,
        rolled.buckets,
        expired.raw_samples,
        expired.rollups,
    ])
}

/// The span of time the fill covers, all hour-aligned.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// The year's first hour.
    pub start: i64,
    /// Where raw samples start (`raw` + 1 day before the end, or the start).
    pub raw_from: i64,
    /// "Now" at the end of the fill.
    pub end: i64,
}

impl Span {
    pub fn new(end: i64, days: u32, history: &History) -> Span {
        let end = end.div_euclid(HOUR_MS) * HOUR_MS;
        let start = end - i64::from(days) * DAY_MS;
        let raw_days = (history.raw.as_millis() as i64 + DAY_MS - 1) / DAY_MS + 1;
        Span {
            start,
            raw_from: (end - raw_days * DAY_MS).max(start),
            end,
        }
    }
}

/// How long each part took, and what the last timers' pass did.
#[derive(Debug, Default)]
pub struct FillReport {
    pub register: Duration,
    pub older: Duration,
    pub older_buckets: u64,
    pub raw_ingest: Duration,
    pub raw_samples: u64,
    pub timers: Duration,
    /// The final pass at the end of the year: [packed, rolled, raw expired, buckets expired].
    pub last_pass: [i64; 4],
    /// Over all passes.
    pub rolled: i64,
    pub expired_raw: i64,
}

/// The database and the writer once filled.
pub struct Filled {
    pub hosts: Vec<HostGen>,
    pub writer: Writer,
    pub submitter: Submitter,
    pub clock: Clock,
    pub report: FillReport,
}

pub fn fill(
    db: &Path,
    names: &[String],
    span: Span,
    history: &History,
    deadline: Instant,
) -> anyhow::Result<Filled> {
    let clock = Clock::manual(span.start - INTERVAL_MS);
    let conn = store::open_for_writing(db)?;
    let mut hooks: Vec<Arc<dyn BatchHook>> = Vec::new();
    if let Some(finest) = history.tiers.first() {
        hooks.push(Arc::new(LateSamples::new(finest.step, clock.clone())));
    }
    let writer = Writer::start(conn, clock.clone(), hooks).context("starting the writer")?;
    let mut submitter = Submitter::new(writer.handle(), clock.clone());
    let mut conn = store::open_existing(db)?;
    let mut hosts: Vec<HostGen> = names
        .iter()
        .enumerate()
        .map(|(i, n)| HostGen::new(i, n, span.start - INTERVAL_MS))
        .collect();
    let mut report = FillReport::default();

    let t = Instant::now();
    for h in &mut hosts {
        let s = h.sample_at(span.start - INTERVAL_MS);
        submitter.submit(h.name.clone(), s)?;
    }
    submitter.drain()?;
    learn_ids(&mut conn, &mut hosts)?;
    report.register = t.elapsed();

    let t = Instant::now();
    let step = history
        .tiers
        .first()
        .map(|t| t.step.as_millis() as i64)
        .unwrap_or(HOUR_MS);
    if step != HOUR_MS && span.raw_from > span.start {
        bail!("the older part is generated as 1-hour buckets; the finest tier here is {step} ms");
    }
    let mut day = span.start;
    while day < span.raw_from {
        check_deadline(deadline, "the older part")?;
        let hours = ((span.raw_from - day) / HOUR_MS).min(24);
        let buckets = day_buckets(&mut hosts, day, hours);
        conn.immediate_transaction(|conn| {
            for (h, b) in hosts.iter().zip(buckets) {
                let at = (0..hours).map(|k| day + k * HOUR_MS);
                pack::write(conn, h.client_id, HOUR_MS, at.zip(b))?;
            }
            Ok::<_, StoreError>(())
        })?;
        report.older_buckets += (hosts.len() as i64 * hours) as u64;
        day += hours * HOUR_MS;
        if (day - span.start) % (30 * DAY_MS) == 0 {
            println!(
                "  older part: {} of {} days in {:.0} s",
                (day - span.start) / DAY_MS,
                (span.raw_from - span.start) / DAY_MS,
                t.elapsed().as_secs_f64()
            );
        }
    }
    report.older = t.elapsed();

    let mut ts = span.raw_from;
    while ts < span.end {
        check_deadline(deadline, "the raw part")?;
        let day_end = (ts + DAY_MS).min(span.end);
        let t = Instant::now();
        while ts < day_end {
            for h in &mut hosts {
                let s = h.jittered_sample(ts);
                submitter.submit(h.name.clone(), s)?;
            }
            ts += INTERVAL_MS;
        }
        submitter.drain()?;
        report.raw_ingest += t.elapsed();
        advance_to(&clock, day_end);
        let t = Instant::now();
        let done = timers_pass(&mut conn, &writer.handle(), history, clock.now_ms(), true)?;
        report.timers += t.elapsed();
        report.rolled += done[1];
        report.expired_raw += done[2];
        report.last_pass = done;
        if (day_end - span.raw_from) % (5 * DAY_MS) == 0 {
            println!(
                "  raw part: {} of {} days, {} samples through the writer in {:.0} s, timers' passes {:.0} s",
                (day_end - span.raw_from) / DAY_MS,
                (span.end - span.raw_from) / DAY_MS,
                submitter.stored,
                report.raw_ingest.as_secs_f64(),
                report.timers.as_secs_f64()
            );
        }
    }
    report.raw_samples = submitter.stored;
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(Filled {
        hosts,
        writer,
        submitter,
        clock,
        report,
    })
}

fn check_deadline(deadline: Instant, what: &str) -> anyhow::Result<()> {
    if Instant::now() > deadline {
        bail!("filling took longer than --max-fill-minutes (stopped in {what})");
    }
    Ok(())
}

/// Each host's client id and disk ids, as the writer created them.
fn learn_ids(conn: &mut SqliteConnection, hosts: &mut [HostGen]) -> anyhow::Result<()> {
    use schema::{clients, disks};
    let ids: HashMap<String, i64> = clients::table
        .select((clients::name, clients::id))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let mut mounts: HashMap<i64, HashMap<String, i64>> = HashMap::new();
    for (client_id, mount, id) in disks::table
        .select((disks::client_id, disks::mount, disks::id))
        .load::<(i64, String, i64)>(conn)?
    {
        mounts.entry(client_id).or_default().insert(mount, id);
    }
    for h in hosts {
        h.client_id = *ids
            .get(&*h.name)
            .with_context(|| format!("the writer did not create client {}", h.name))?;
        h.disk_ids = mounts.remove(&h.client_id).unwrap_or_default();
    }
    Ok(())
}

/// `hours` buckets per host from `day`, made on every core (hosts split between threads).
fn day_buckets(hosts: &mut [HostGen], day: i64, hours: i64) -> Vec<Vec<Bucket>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = hosts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .chunks_mut(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter_mut()
                        .map(|h| {
                            (0..hours)
                                .map(|k| h.hour_bucket(day + k * HOUR_MS))
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a bucket thread panicked"))
            .collect()
    })
}
