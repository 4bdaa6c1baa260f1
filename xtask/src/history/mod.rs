//! `xtask bench history`: a year of a fleet in the store, then what it costs to keep and to
//! read — bytes per tier, the read API's `series` and clients listing, and ingest with the
//! history timer's rollups and expiry running beside it against ingest without.
//!
//! Everything runs in this process on monitord's own store code (the library), not over
//! HTTP: the writer, compaction, rollups, expiry and the read functions the web API calls.
//! How the database is filled is in [`fill`]; what is measured in [`measure`].
//!
//! Not here: HTTP ingest (that is `bench ingest`).

mod fill;
mod layout;
mod measure;
mod pages;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use monitor_core::config::{self, Config};
use monitord::store;

use self::fill::{DAY_MS, HOUR_MS, INTERVAL_MS, Span};
use self::measure::{Background, Phase, Sizes, Timings};
use crate::{fleet, procstat, server};

/// The goals of issue 13.
const GOAL_TOTAL_BYTES: u64 = 1_000_000_000;
const GOAL_BYTES_PER_VALUE: f64 = 2.0;
const GOAL_P99: Duration = Duration::from_millis(50);
/// Issue 14's goals for the dashboard: server time per page (p99), the fleet page's bytes on
/// the wire (gzip), Chromium's time to paint.
const PAGE_GOAL_P99: Duration = Duration::from_millis(100);
const FLEET_PAGE_GOAL_BYTES: usize = 150_000;
const PAINT_GOAL: Duration = Duration::from_secs(1);
const GOAL_INGEST_RATIO: f64 = 0.9;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Hosts in the fleet, each sampled every 60 s.
    #[arg(long, default_value_t = 500)]
    hosts: usize,
    /// Days of history: the last `--raw-days` + 1 through the raw tier, the rest as 1-hour
    /// buckets.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// The raw tier's keep (`<history raw="…d">`, at least 7): fewer days make a quick run
    /// of the ingest phases at a fleet's full width (`--hosts 500 --days 9 --raw-days 7`).
    #[arg(long, default_value_t = 30)]
    raw_days: u32,
    /// Requests per measured query (series per range, clients listing).
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// Seconds of each ingest phase (with and without the history timer's work).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Samples per ingest phase at most.
    #[arg(long, default_value_t = 1_500_000)]
    ingest_samples: u64,
    /// Give up filling after this many minutes.
    #[arg(long, default_value_t = 60)]
    max_fill_minutes: u64,
    /// Where the database goes (its files there are replaced).
    #[arg(long, default_value = "/var/cache/monitord/bench-history")]
    dir: PathBuf,
    /// Keep the database afterwards and print where it is.
    #[arg(long)]
    keep: bool,
    /// Ingest phases, alone and with history, alternated this many times (the ratio is the
    /// median of the rounds').
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measure only ingest beside history after filling: no sizes, reads or pages.
    #[arg(long)]
    ingest_only: bool,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    // The writer says on stderr why a batch could not commit, and which commits were slow.
    monitord::logging::init();
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let names = fleet::names(opts.hosts);
    let config = write_config(&opts.dir, &names, opts.raw_days)?;
    let db = config.server.database.clone();
    remove_database(&db)?;
    let history = config.history.clone();
    let span = Span::new(testkit::monitord::now_ms(), opts.days, &history);
    let result = measure_all(opts, &config, &db, span);
    if opts.keep {
        println!("kept {}", opts.dir.display());
    } else {
        remove_database(&db)?;
        let _ = std::fs::remove_file(opts.dir.join("config.xml"));
        let _ = std::fs::remove_dir(&opts.dir);
    }
    result
}

fn measure_all(opts: &Options, config: &Config, db: &Path, span: Span) -> anyhow::Result<()> {
    let history = &config.history;
    println!(
        "bench history: {} hosts × {} days at 60 s into {}; load average before: {}",
        opts.hosts,
        opts.days,
        db.display(),
        procstat::load_average()
    );
    println!(
        "filling: the last {} days ({} samples) through the real writer (group commit, late-sample \
         hook), the compaction and history timers' passes after each day; the {} days before as \
         1-hour buckets of the same generated samples (Bucket::add, pack::write), a day at a time \
         across the fleet",
        (span.end - span.raw_from) / DAY_MS,
        opts.hosts as i64 * (span.end - span.raw_from) / INTERVAL_MS,
        (span.raw_from - span.start) / DAY_MS
    );
    let t = Instant::now();
    let deadline = t + Duration::from_secs(opts.max_fill_minutes * 60);
    let filled = fill::fill(db, &fleet::names(opts.hosts), span, history, deadline)?;
    let r = &filled.report;
    println!(
        "filled in {:.0} s: clients {:.1} s; older part {} buckets in {:.0} s; raw part {} samples \
         through the writer in {:.0} s ({:.0}/s), timers' passes {:.0} s ({} buckets rolled up, \
         {} raw samples expired); the last pass, at the end of the year: {} packed, {} rolled \
         up, {} raw samples and {} buckets expired",
        t.elapsed().as_secs_f64(),
        r.register.as_secs_f64(),
        r.older_buckets,
        r.older.as_secs_f64(),
        r.raw_samples,
        r.raw_ingest.as_secs_f64(),
        r.raw_samples as f64 / r.raw_ingest.as_secs_f64().max(1e-9),
        r.timers.as_secs_f64(),
        r.rolled,
        r.expired_raw,
        r.last_pass[0],
        r.last_pass[1],
        r.last_pass[2],
        r.last_pass[3],
    );
    if filled.submitter.unavailable > 0 {
        println!(
            "note: {} samples were answered 503 (not committed; the writer's log says why) and \
             not sent again",
            filled.submitter.unavailable
        );
    }

    if !opts.ingest_only {
        measure_reads(opts, config, db, span, &filled)?;
    }
    measure_ingest(opts, db, history, span, filled)
}

/// Bytes per tier, the read API's queries, the pages, and one history pass as the daemon's
/// timer runs it.
fn measure_reads(
    opts: &Options,
    config: &Config,
    db: &Path,
    span: Span,
    filled: &fill::Filled,
) -> anyhow::Result<()> {
    let history = &config.history;
    let mut reader = store::open_read_only(db)?;
    let sizes = measure::sizes(&mut reader, db, history)?;
    report_sizes(&sizes, &filled.hosts, span.end);
    let b = layout::breakdown(&mut reader, &filled.hosts, 10, (span.start, span.end))?;
    let per = |x: u64| x as f64 / b.buckets.max(1) as f64;
    let rows_bytes = sizes
        .tiers
        .iter()
        .find(|t| t.name == "1h")
        .map_or(0.0, |t| t.bytes as f64 / t.rows.max(1) as f64);
    println!(
        "1h buckets : {:.1} bytes of payload each ({} buckets of every 10th host): counts {:.1}, \
         mins {:.1}, ranges {:.1}, sums {:.1}, place, sample count and disks {:.1}; {:.1} bytes each in \
         pages (packs of ~2 KB: key, record, index, b-tree); by field: {}",
        per(b.payload()),
        b.buckets,
        per(b.parts[0]),
        per(b.parts[1]),
        per(b.parts[2]),
        per(b.parts[3]),
        per(b.framing),
        rows_bytes,
        b.largest_fields(8)
    );

    let now = span.end;
    for (label, range) in [
        ("1 h", HOUR_MS),
        ("24 h", DAY_MS),
        ("30 d", 30 * DAY_MS),
        ("1 y", 365 * DAY_MS),
    ] {
        let t = measure::time_series(
            &mut reader,
            &filled.hosts,
            history,
            range,
            now,
            opts.requests,
        )?;
        report_timings(&format!("series {label}"), &t, GOAL_P99);
    }
    let t = measure::time_fleet(&mut reader, config, now, opts.requests)?;
    report_timings("clients", &t, GOAL_P99);
    drop(reader);

    let names = fleet::names(opts.hosts);
    let clients_xml = crate::ingest::fleet_xml(&names, "60s");
    for page in pages::measure(db, &clients_xml, &names, opts.requests)? {
        report_timings(page.what, &page.timings, PAGE_GOAL_P99);
        if page.what == "fleet page" {
            println!(
                "{:<12}: {} bytes gzipped on the wire (goal ≤ {} KB: {})",
                page.what,
                page.wire_bytes,
                FLEET_PAGE_GOAL_BYTES / 1000,
                verdict(page.wire_bytes <= FLEET_PAGE_GOAL_BYTES)
            );
        }
        match page.painted {
            Some(t) => println!(
                "{:<12}: painted by headless Chromium {:.0} ms after an empty page (median of \
                 3; goal ≤ {} ms: {})",
                page.what,
                ms(t),
                PAINT_GOAL.as_millis(),
                verdict(t <= PAINT_GOAL)
            ),
            None => println!(
                "{:<12}: no /usr/bin/chromium, paint time not measured",
                page.what
            ),
        }
    }

    // One pass as the daemon's 60 s history timer runs it at steady state.
    let mut conn = store::open_existing(db)?;
    fill::advance_to(&filled.clock, span.end + INTERVAL_MS);
    let t = Instant::now();
    let handle = filled.writer.handle();
    let (rolled, expired) = store::history::maintain(
        &mut conn,
        store::background::Writes::Writer(&handle),
        history,
        &|_| fill::INTERVAL,
        span.end + INTERVAL_MS,
    )?;
    println!(
        "history pass: {:.0} ms one minute later (the daemon's 60 s timer): {} buckets rolled up, \
         {} raw samples and {} buckets expired",
        t.elapsed().as_secs_f64() * 1000.0,
        rolled.buckets,
        expired.raw_samples,
        expired.rollups
    );
    Ok(())
}

/// Ingest alone against ingest beside the history timer's passes, alternated `opts.rounds`
/// times.
fn measure_ingest(
    opts: &Options,
    db: &Path,
    history: &config::History,
    span: Span,
    mut filled: fill::Filled,
) -> anyhow::Result<()> {
    println!(
        "ingest: {} hosts' next samples round by round into the writer, {} in flight, at most \
         {} s and {} samples per phase: alone, then with one thread running the timers' passes \
         (compaction, rollups, expiry) back to back at the committed samples' time, reading on \
         its own connection and writing through the writer",
        opts.hosts, 1000, opts.seconds, opts.ingest_samples
    );
    let mut next_ts = span.end + INTERVAL_MS;
    let mut ratios = Vec::new();
    for round in 1..=opts.rounds {
        let [alone, with] = ingest_round(opts, db, history, &mut filled, &mut next_ts)?;
        let ratio = with.per_second() / alone.per_second().max(1e-9);
        let cpu = |p: &Phase| p.writer_cpu.as_secs_f64() * 1e6 / p.stored.max(1) as f64;
        println!(
            "round {round}: ingest ratio {ratio:.2}; writer CPU per sample {:.1} µs alone, {:.1} µs \
             with",
            cpu(&alone),
            cpu(&with)
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    println!(
        "ingest ratio: {ratio:.2} with the history timer's work running (median of {} rounds; \
         goal ≥ {GOAL_INGEST_RATIO}: {})",
        ratios.len(),
        verdict(ratio >= GOAL_INGEST_RATIO),
    );
    filled.writer.shutdown();
    println!(
        "note: the machine has {} cores shared with other work; load average after: {}",
        std::thread::available_parallelism().map_or(1, usize::from),
        procstat::load_average()
    );
    Ok(())
}

/// One ingest phase alone, then one beside the history timer's passes.
fn ingest_round(
    opts: &Options,
    db: &Path,
    history: &config::History,
    filled: &mut fill::Filled,
    next_ts: &mut i64,
) -> anyhow::Result<[Phase; 2]> {
    let mut phases: Vec<Phase> = Vec::new();
    for with_history in [false, true] {
        if with_history {
            // The alone phase's samples are packed, rolled up and expired first, untimed:
            // the passes beside ingest then have only the with-phase's own work to do.
            let t = Instant::now();
            let mut conn = store::open_read_only(db)?;
            let done = fill::timers_pass(
                &mut conn,
                &filled.writer.handle(),
                history,
                filled.clock.now_ms(),
                true,
            )?;
            println!(
                "caught up (untimed) in {:.1} s: {} samples packed, {} buckets rolled up, {} raw \
                 samples expired",
                t.elapsed().as_secs_f64(),
                done[0],
                done[1],
                done[2]
            );
        }
        // Each phase starts from an empty WAL: a checkpoint of the phase before (its
        // background writes' pages above all) would otherwise land in this one's commits.
        diesel::connection::SimpleConnection::batch_execute(
            &mut store::open_existing(db)?,
            "PRAGMA wal_checkpoint(TRUNCATE);",
        )?;
        let bg = Background {
            db,
            writer: filled.writer.handle(),
            history,
            clock: &filled.clock,
            with_history,
        };
        let phase = measure::ingest_phase(
            &mut filled.submitter,
            &mut filled.hosts,
            next_ts,
            Duration::from_secs(opts.seconds),
            opts.ingest_samples,
            &bg,
        )?;
        report_phase(
            if with_history {
                "with history"
            } else {
                "alone"
            },
            &phase,
        );
        phases.push(phase);
    }
    let [alone, with] =
        <[Phase; 2]>::try_from(phases).map_err(|_| anyhow::anyhow!("two phases were measured"))?;
    Ok([alone, with])
}

fn report_sizes(sizes: &Sizes, hosts: &[fill::HostGen], now: i64) {
    let n = hosts.len().max(1) as f64;
    let raw_per_sample = hosts.iter().map(|h| h.raw_values).sum::<usize>() as f64 / n;
    let per_bucket = hosts.iter().map(|h| h.bucket_values).sum::<usize>() as f64 / n;
    println!(
        "stored values: raw, per sample: its numeric fields ({raw_per_sample:.2} on average: 13 \
         scalars + total, used, avail per disk); rollup, per bucket: min, max and sum of 13 scalars \
         and 4 fields per disk, + the count ({per_bucket:.2} on average)"
    );
    for tier in &sizes.tiers {
        let per_row = if tier.name == "raw" {
            raw_per_sample
        } else {
            per_bucket
        };
        let values = tier.rows as f64 * per_row;
        let bpv = tier.bytes as f64 / values.max(1.0);
        println!(
            "tier {:<5}: {:>13} rows, {:>13} bytes, {:.0} values, {bpv:.2} bytes per value (goal ≤ \
             {GOAL_BYTES_PER_VALUE}: {}), {:.1} bytes per row, oldest {}",
            tier.name,
            tier.rows,
            tier.bytes,
            values,
            verdict(bpv <= GOAL_BYTES_PER_VALUE),
            tier.bytes as f64 / tier.rows.max(1) as f64,
            tier.oldest_ms.map_or("-".to_owned(), |ms| format!(
                "{:.1} d before the end",
                (now - ms) as f64 / DAY_MS as f64
            ))
        );
    }
    let total = sizes.file_bytes + sizes.wal_bytes;
    println!(
        "total      : {total} bytes on disk (file {} + WAL {}; {} in pages, {} of them free) (goal ≤ \
         {GOAL_TOTAL_BYTES}: {})",
        sizes.file_bytes,
        sizes.wal_bytes,
        sizes.page_bytes,
        sizes.free_bytes,
        verdict(total <= GOAL_TOTAL_BYTES)
    );
    let top: Vec<String> = sizes
        .objects
        .iter()
        .take(6)
        .map(|(name, bytes)| format!("{name} {bytes}"))
        .collect();
    println!("largest    : {}", top.join(", "));
}

fn report_timings(what: &str, t: &Timings, goal: Duration) {
    let p99 = t.quantile(0.99);
    println!(
        "{what:<12}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} requests (goal p99 ≤ {} ms: \
         {}); {}",
        ms(t.quantile(0.5)),
        ms(p99),
        ms(t.quantile(1.0)),
        t.took.len(),
        goal.as_millis(),
        verdict(p99 <= goal),
        t.shape
    );
}

fn report_phase(what: &str, p: &Phase) {
    println!(
        "{what:<12}: {:>7.0} samples/s committed ({} in {:.1} s, {} answered 503, {:.1} h of host \
         time); writer on samples {:.0} %, on the passes' writes {:.0} % of the phase; timers' \
         passes: {} in {:.1} s ({} samples packed, {} buckets rolled up, {} raw samples \
         expired); threads: {}",
        p.per_second(),
        p.stored,
        p.elapsed.as_secs_f64(),
        p.unavailable,
        p.host_span_ms as f64 / HOUR_MS as f64,
        100.0 * p.writer_samples.as_secs_f64() / p.elapsed.as_secs_f64().max(1e-9),
        100.0 * p.writer_background.as_secs_f64() / p.elapsed.as_secs_f64().max(1e-9),
        p.passes,
        p.pass_time.as_secs_f64(),
        p.work[0],
        p.work[1],
        p.work[2],
        p.threads
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// config.xml for the fleet (interval 60 s, `bench ingest`'s alert rules), read back as
/// monitord reads it; its database lies next to it.
fn write_config(dir: &Path, names: &[String], raw_days: u32) -> anyhow::Result<Config> {
    let xml = format!(
        "  <history raw=\"{raw_days}d\">\n    <rollup step=\"1h\" keep=\"5y\"/>\n  </history>\n{}",
        crate::ingest::fleet_xml(names, "60s")
    );
    let path = dir.join("config.xml");
    let text = server::config_xml(&xml);
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    let loaded = config::parse_bytes(text.as_bytes(), &path).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(loaded.config)
}

fn remove_database(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {path:?}")),
        }
    }
    Ok(())
}
