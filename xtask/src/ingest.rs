//! `xtask bench ingest`: the real release monitord against an empty actix-web handler, both
//! driven by the same keep-alive HTTP load generator with the same pre-sealed bodies.
//!
//! Phases, each bounded in time and in count: a short warm-up; the empty handler's peak; then
//! monitord's peak (closed loop, 200s = committed samples); both at half of monitord's peak
//! in an open loop for p50/p99 latency; then `monitord stats --json` before and after
//! `monitord compact` for the bytes each stored sample costs. All traffic goes to 127.0.0.1.
//!
//! Not here: the sample generator (`fleet`), the HTTP client (`load`), process handling
//! (`server`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::fleet::{self, SealedSample};
use crate::load::{self, Tally, Work};
use crate::procstat;
use crate::server::{self, EmptyHandler};

/// The goals issue 2 sets.
const GOAL_RATE: f64 = 50_000.0;
const GOAL_RATIO: f64 = 0.6;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Clients in config.xml, each a host with its own keys and random walks.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Concurrent keep-alive connections (default: one per client, as a fleet has; group
    /// commit needs many requests in flight to fill its batches).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds for each measured phase (peak and paced).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Samples sealed before the clock starts; a phase also ends when its share runs out.
    #[arg(long, default_value_t = 1_200_000)]
    samples: usize,
    /// Threads of the load generator (it shares the machine's cores with the server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// actix-web workers of the empty handler; match monitord's.
    #[arg(long)]
    workers: Option<usize>,
    /// The monitord binary [default: $CARGO_TARGET_DIR/release/monitord].
    #[arg(long)]
    monitord: Option<PathBuf>,
    /// Keep the temporary directory (database, logs) and print where it is.
    #[arg(long)]
    keep: bool,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let binary = server::monitord_binary(opts.monitord.clone())?;
    let names = fleet::names(opts.clients);
    let mut monitord = server::prepare_monitord(&binary, &clients_xml(&names))?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = opts.workers.unwrap_or(cores);

    let rounds = opts.samples.div_ceil(names.len());
    let sealing = Instant::now();
    let now_ms = testkit::monitord::now_ms();
    let bodies: Arc<[SealedSample]> =
        fleet::seal_rounds(&monitord.master_key(), &names, rounds, now_ms, cores).into();
    let mean_body = bodies.iter().map(|s| s.body.len()).sum::<usize>() / bodies.len().max(1);
    println!(
        "bench ingest: {} clients, {} samples sealed in {:.1} s (mean body {mean_body} B), \
         {} connections, {} s per phase",
        names.len(),
        bodies.len(),
        sealing.elapsed().as_secs_f64(),
        opts.connections,
        opts.seconds
    );
    println!(
        "note: the load generator ({} thread{}) runs on the same {cores} cores as the server \
         under test and takes part of them; load average before: {}",
        opts.client_threads,
        if opts.client_threads == 1 { "" } else { "s" },
        procstat::load_average()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads.max(1))
        .enable_all()
        .build()?;
    let limit = Duration::from_secs(opts.seconds);
    let warmup = Duration::from_secs(1);

    // The empty handler first: its bodies are never stored, so it may reuse any of them.
    let empty = EmptyHandler::start(workers)?;
    let empty_work = Work::new(empty.addr, &names, bodies.clone());
    let all = 0..bodies.len();
    runtime.block_on(load::closed_loop(
        &empty_work,
        all.clone(),
        opts.connections,
        warmup,
    ))?;
    let (empty_peak, empty_cpu) = measured(empty.pid(), || {
        runtime.block_on(load::closed_loop(
            &empty_work,
            all.clone(),
            opts.connections,
            limit,
        ))
    })?;
    report_peak("empty handler", &empty_peak, &empty_cpu, limit);

    server::start(&mut monitord);
    let work = Work::new(monitord.addr(), &names, bodies.clone());
    // monitord stores every body once: warm-up, peak and paced phases take disjoint ranges,
    // the paced phase keeping a third (it runs at half the rate for as long as the peak).
    let mut cursor = 0;
    let w = runtime.block_on(load::closed_loop(
        &work,
        0..bodies.len() / 20,
        opts.connections,
        warmup,
    ))?;
    cursor += (w.ok + w.refused.values().sum::<u64>() + w.errors) as usize;
    let peak_end = cursor + (bodies.len() - cursor) * 2 / 3;
    let (peak, monitord_cpu) = measured(monitord.pid(), || {
        runtime.block_on(load::closed_loop(
            &work,
            cursor..peak_end,
            opts.connections,
            limit,
        ))
    })?;
    cursor += (peak.ok + peak.refused.values().sum::<u64>() + peak.errors) as usize;
    report_peak("monitord", &peak, &monitord_cpu, limit);

    let ratio = peak.per_second() / empty_peak.per_second().max(1e-9);
    println!(
        "ratio       : {ratio:.2} of the empty handler (goal ≥ {GOAL_RATIO}: {}); \
         {:.0} samples/s (goal ≥ {GOAL_RATE:.0}: {})",
        verdict(ratio >= GOAL_RATIO),
        peak.per_second(),
        verdict(peak.per_second() >= GOAL_RATE)
    );

    let rate = (peak.per_second() / 2.0).max(1.0);
    let mut paced = runtime.block_on(load::open_loop(
        &work,
        cursor..bodies.len(),
        opts.connections,
        rate,
        limit,
    ))?;
    report_latency("monitord", rate, &mut paced);
    let mut empty_paced = runtime.block_on(load::open_loop(
        &empty_work,
        all,
        opts.connections,
        rate,
        limit,
    ))?;
    report_latency("empty handler", rate, &mut empty_paced);
    drop(empty);

    let stats = server::stats(&monitord)?;
    println!(
        "storage     : {} samples of {} clients stored, {} bytes on disk, {} bytes per sample",
        stats.samples,
        stats.clients,
        stats.db_bytes,
        per_sample(&stats)
    );
    server::stop(&mut monitord).context("stopping monitord")?;
    let compacting = Instant::now();
    let compact_output = monitord.command_ok(&["compact"]);
    let after = server::stats(&monitord)?;
    println!(
        "compacted   : {} samples, {} bytes on disk, {} bytes per sample (monitord compact took \
         {:.1} s{})",
        after.samples,
        after.db_bytes,
        per_sample(&after),
        compacting.elapsed().as_secs_f64(),
        summary(&compact_output)
    );
    println!("load average after: {}", procstat::load_average());
    if opts.keep {
        println!("kept {}", monitord.keep_dir().display());
    }
    Ok(())
}

/// CPU time used during one phase, by the server and by the load generator (this process).
#[derive(Debug)]
struct CpuUse {
    server: Duration,
    generator: Duration,
    /// The server's busy threads, on CPU and waiting for one (see `procstat::busy_threads`).
    threads: String,
}

/// Runs `f` and returns its outcome with the CPU time process `pid` and this process used
/// meanwhile (clock ticks are fine over seconds of busy work).
fn measured(
    pid: u32,
    f: impl FnOnce() -> anyhow::Result<Tally>,
) -> anyhow::Result<(Tally, CpuUse)> {
    let me = std::process::id();
    let (server0, me0) = (
        procstat::cpu_ticks_time(pid)?,
        procstat::cpu_ticks_time(me)?,
    );
    let (threads0, start) = (procstat::thread_times(pid)?, Instant::now());
    let outcome = f()?;
    let cpu = CpuUse {
        server: procstat::cpu_ticks_time(pid)? - server0,
        generator: procstat::cpu_ticks_time(me)? - me0,
        threads: procstat::busy_threads(&threads0, &procstat::thread_times(pid)?, start.elapsed()),
    };
    Ok((outcome, cpu))
}

fn report_peak(what: &str, o: &Tally, cpu: &CpuUse, limit: Duration) {
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{what:<12}: {:>7.0} /s at peak ({} answered 200 in {:.1} s{}; refused: {}); \
         cores used: server {:.2}, load generator {:.2}; CPU per request: server {:.1} µs, \
         load generator {:.1} µs",
        o.per_second(),
        o.ok,
        o.elapsed.as_secs_f64(),
        if o.elapsed < limit {
            ", bodies ran out"
        } else {
            ""
        },
        o.refusals(),
        cpu.server.as_secs_f64() / secs,
        cpu.generator.as_secs_f64() / secs,
        per_request(cpu.server, o.ok),
        per_request(cpu.generator, o.ok),
    );
    println!("{:<12}  server threads: {}", "", cpu.threads);
}

/// Microseconds of CPU per answered request: unlike the rate, hardly changed by other load.
fn per_request(cpu: Duration, requests: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
}

fn report_latency(what: &str, rate: f64, o: &mut Tally) {
    println!(
        "{what:<12}: at {rate:.0} /s (open loop, {:.1} s): p50 {:.2} ms, p99 {:.2} ms, \
         max {:.2} ms ({} answered 200, refused: {})",
        o.elapsed.as_secs_f64(),
        ms(o.quantile(0.5)),
        ms(o.quantile(0.99)),
        ms(o.quantile(1.0)),
        o.ok,
        o.refusals()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn per_sample(stats: &server::Stats) -> String {
    match stats.bytes_per_sample {
        Some(b) => format!("{b:.1}"),
        None if stats.samples > 0 => format!("{:.1}", stats.db_bytes as f64 / stats.samples as f64),
        None => "n/a".to_owned(),
    }
}

fn summary(output: &str) -> String {
    match output.lines().next().map(str::trim) {
        Some(line) if !line.is_empty() => format!("; it said: {line}"),
        _ => String::new(),
    }
}

/// The bench fleet in config.xml: `fleet_xml` with an interval of a day, so every sample of
/// the run (they span hours of host time, 10 s apart) falls inside the evaluation window of
/// 2 × interval.
fn clients_xml(names: &[String]) -> String {
    fleet_xml(names, "1d")
}

/// One `<client>` line per host, after `<defaults>` with the alert rules a real fleet has and
/// `interval`, so monitord evaluates them on every sample as it would in production. No
/// `mail`: nothing is sent anywhere. Also `bench history`'s fleet.
pub fn fleet_xml(names: &[String], interval: &str) -> String {
    let mut xml = format!(
        "  <defaults username=\"bench\" interval=\"{interval}\" mail=\"\">\n\
         \x20   <alert type=\"cpu\" limit=\"95%\" for=\"5m\"/>\n\
         \x20   <alert type=\"memory\" limit=\"90%\"/>\n\
         \x20   <alert type=\"disk\" limit=\"90%\"/>\n\
         \x20   <alert type=\"load\" limit=\"32\"/>\n\
         \x20 </defaults>\n",
    );
    for (i, name) in names.iter().enumerate() {
        // Addresses in 127.0.0.0/8: never contacted by monitord, and loopback if they were.
        xml.push_str(&format!(
            "  <client name=\"{name}\" ip=\"127.1.{}.{}\"/>\n",
            i / 250,
            i % 250 + 1
        ));
    }
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_config_is_valid_and_gives_every_client_the_alert_rules() {
        let dir = testkit::util::temp_dir("bench-config");
        let path = dir.path().join("config.xml");
        let names = fleet::names(300);
        std::fs::write(&path, server::config_xml(&clients_xml(&names))).unwrap();
        let loaded = monitor_core::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let clients = &loaded.config.clients;
        assert_eq!(clients.len(), 300);
        assert_eq!(clients[299].name, "host0300");
        assert!(clients.iter().all(|c| c.alerts.len() == 4));
    }
}
