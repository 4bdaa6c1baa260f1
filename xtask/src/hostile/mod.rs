//! `xtask bench hostile`: the release monitord under hostile connections (issue 11), on each
//! listener in turn, against a baseline from the same run.
//!
//! Four phases of `--seconds` each, all on loopback: ingest without and then with the hostile
//! connections, then the web listener without and with them. The hostile connections are
//! `--idle` idle ones (half say nothing at all, half send one request and then sit on the
//! keep-alive connection) and `--slow` slow senders (half dribble a request head, half a body
//! of 60,000 bytes after a complete head, one byte a second). They are opened before the good
//! requests start, over two seconds, and each is reopened as soon as the server closes it, so
//! the server always faces about that many. The good requests come from `--agents` agents,
//! each on its own schedule and, like the real agent, on a fresh `Connection: close`
//! connection per request: on ingest a freshly sealed sample of its own host (the bench fleet's
//! random walks, stamped now); on the web listener `GET /api/v1/clients`. Real agents send
//! every 10 s; the default `--interval-ms 1000` sends ten times as often, so a short run sees
//! as many requests as a fleet's minute (`--web-interval-ms`, 1 s by default, paces the
//! reads the same way). Latency is counted from each request's scheduled
//! moment, so a request that waited behind a slow earlier one is not flattered.
//!
//! It prints, per phase: requests sent and answered 200, samples stored (from `monitord stats`),
//! p50/p99/max latency, monitord's RSS (VmRSS before, the highest seen while sampling every
//! 0.5 s, after; VmHWM at the end) and open files, and for each kind of hostile connection how
//! many the server closed and after how long (from connect to close). Not here: anything a test
//! asserts (see monitord/tests/hostile.rs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use monitor_core::envelope::ClientKeys;
use tokio::time::{Instant, sleep, sleep_until};

mod conn;

use crate::procstat::{self, open_files, status_kib};
use crate::server;
use conn::{Good, Hostile, Kind, KindStats, Listener, agent, hold};

/// The goal for the good requests' p99 under hostile load.
const GOAL_P99: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Seconds of each of the four phases (ingest and web, each without and with hostile load).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Simulated agents, each a client in config.xml with its own keys.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Milliseconds between two requests of one agent on ingest (real agents: 10,000).
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Milliseconds between two `GET /api/v1/clients` of one simulated reader on the web
    /// listener: 1 s, 100 requests/s in all, like ingest. (Before the clients listing came
    /// from memory, `store::recent`, 100/s was more than the listener served on a busy 2-core
    /// machine even without hostile load, p50 4.3 s, and the default was 10 s.)
    #[arg(long, default_value_t = 1000)]
    web_interval_ms: u64,
    /// Idle connections held open (half silent, half after one request).
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    /// Slow senders at 1 byte/s (half dribbling a head, half a body).
    #[arg(long, default_value_t = 500)]
    slow: usize,
    /// The monitord binary [default: $CARGO_TARGET_DIR/release/monitord].
    #[arg(long)]
    monitord: Option<PathBuf>,
}

/// The kinds of hostile connection, in the order they are reported.
/// monitord's memory and open files over a phase.
#[derive(Debug, Default, Clone, Copy)]
struct Footprint {
    rss_max_kib: u64,
    fds_max: usize,
    hostile_open_min: usize,
    hostile_open_max: usize,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let binary = server::monitord_binary(opts.monitord.clone())?;
    let files = raise_open_file_limit()?;
    let names: Vec<String> = (1..=opts.agents).map(|i| format!("agent{i:03}")).collect();
    let mut monitord = server::prepare_monitord(&binary, &clients_xml(&names))?;
    server::start(&mut monitord);
    let pid = monitord.pid();
    let (ingest, web) = (monitord.addr(), monitord.web_addr());
    let seconds = Duration::from_secs(opts.seconds);
    println!(
        "bench hostile: {} agents every {} ms on ingest (real agents: every 10 s, so {:.0}× their \
         rate), {} readers every {} ms on the web listener, {} idle + {} slow connections, {} s per phase; open-file limit {files} here and for \
         monitord ({}); load average before: {}",
        opts.agents,
        opts.interval_ms,
        10_000.0 / opts.interval_ms as f64,
        opts.agents,
        opts.web_interval_ms,
        opts.idle,
        opts.slow,
        opts.seconds,
        limit_of(pid),
        procstat::load_average()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let master = monitord.master_key();
    let keys: Arc<[ClientKeys]> = names
        .iter()
        .map(|n| ClientKeys::derive(&master, n))
        .collect();
    let names: Arc<[String]> = names.into();

    let rss_start = status_kib(pid, "VmRSS:")?;
    println!("monitord VmRSS at start: {rss_start} KiB");
    for listener in [Listener::Ingest, Listener::Web] {
        let addr = match listener {
            Listener::Ingest => ingest,
            Listener::Web => web,
        };
        let (label, interval) = match listener {
            Listener::Ingest => ("ingest (PUT /v1/samples)", opts.interval_ms),
            Listener::Web => ("web (GET /api/v1/clients)", opts.web_interval_ms),
        };
        let label = format!("{label}, each of {} every {interval} ms", opts.agents);
        let interval = Duration::from_millis(interval);
        let mut rows = Vec::new();
        for hostile_load in [false, true] {
            let before = server::stats(&monitord)?.samples;
            let rss_before = status_kib(pid, "VmRSS:")?;
            let (good, footprint, hostile) = runtime.block_on(phase(
                addr,
                listener,
                &names,
                &keys,
                interval,
                seconds,
                hostile_load.then_some((opts.idle, opts.slow)),
                pid,
            ))?;
            // Let the server close what the phase left behind before reading its memory.
            std::thread::sleep(Duration::from_secs(2));
            let stored = server::stats(&monitord)?.samples - before;
            let rss_after = status_kib(pid, "VmRSS:")?;
            rows.push((
                hostile_load,
                good,
                footprint,
                hostile,
                stored,
                rss_before,
                rss_after,
            ));
        }
        report(&label, listener, &rows);
    }
    let hwm = status_kib(pid, "VmHWM:")?;
    println!(
        "monitord VmRSS at start {rss_start} KiB, now {} KiB, peak (VmHWM) {hwm} KiB; \
         load average after: {}",
        status_kib(pid, "VmRSS:")?,
        procstat::load_average()
    );
    let timeouts = monitord
        .stderr()
        .lines()
        .filter(|l| l.contains("refused a body that took over"))
        .count();
    println!("monitord logged {timeouts} bodies cut off with 408");
    server::stop(&mut monitord)
}

type Row = (
    bool,
    Good,
    Footprint,
    BTreeMap<Kind, KindStats>,
    u64,
    u64,
    u64,
);

fn report(label: &str, listener: Listener, rows: &[Row]) {
    println!("\n{label}");
    let mut p99s = Vec::new();
    for (hostile_load, good, fp, _, stored, rss_before, rss_after) in rows {
        let what = if *hostile_load {
            "with hostile load"
        } else {
            "baseline"
        };
        let stored = match listener {
            Listener::Ingest => format!(", {stored} stored"),
            Listener::Web => String::new(),
        };
        let mut refusals: Vec<String> = good
            .refused
            .iter()
            .map(|(c, n)| format!("{c} ×{n}"))
            .collect();
        if good.errors > 0 {
            refusals.push(format!("{} errors", good.errors));
        }
        let refusals = if refusals.is_empty() {
            "none".to_owned()
        } else {
            refusals.join(", ")
        };
        println!(
            "  {what:<18} {} sent, {} answered 200{stored}, other: {refusals}; latency p50 {:.1} ms, \
             p99 {:.1} ms, max {:.1} ms",
            good.sent,
            good.ok,
            ms(good.quantile(0.5)),
            ms(good.quantile(0.99)),
            ms(good.quantile(1.0)),
        );
        let held = if *hostile_load {
            format!(
                ", hostile connections open {}–{}",
                fp.hostile_open_min, fp.hostile_open_max
            )
        } else {
            String::new()
        };
        println!(
            "  {:<18} monitord VmRSS {rss_before} KiB before, ≤ {} KiB during, {rss_after} KiB \
             after; open files ≤ {}{held}",
            "", fp.rss_max_kib, fp.fds_max
        );
        p99s.push(good.quantile(0.99));
    }
    if let [(_, _, _, _, _, _, _), (_, _, _, hostile, _, _, _)] = rows {
        for (kind, s) in hostile {
            let mut closed = s.closed_after.clone();
            closed.sort_unstable();
            let at = |q: f64| {
                closed
                    .get(((closed.len().max(1) - 1) as f64 * q).round() as usize)
                    .map_or(0.0, Duration::as_secs_f64)
            };
            let statuses: Vec<String> = s
                .statuses
                .iter()
                .map(|(c, n)| format!("{c} ×{n}"))
                .collect();
            println!(
                "  {:<22} {} connects ({} failed), {} closed by monitord after {:.1}/{:.1}/{:.1} s \
                 (min/median/max from connect); answers before the close: {}",
                kind.describe(),
                s.connects,
                s.connect_errors,
                closed.len(),
                at(0.0),
                at(0.5),
                at(1.0),
                if statuses.is_empty() {
                    "none".to_owned()
                } else {
                    statuses.join(", ")
                }
            );
        }
    }
    if let [base, loaded] = p99s[..] {
        let ok = if loaded <= GOAL_P99 { "met" } else { "NOT met" };
        println!(
            "  p99 with hostile load / baseline: {:.2} ({:.1} ms / {:.1} ms); goal p99 ≤ 1 s: {ok}",
            loaded.as_secs_f64() / base.as_secs_f64().max(1e-9),
            ms(loaded),
            ms(base)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One phase: the hostile connections (when `hostile` gives their numbers) opened first, then
/// the agents for `seconds`; then everything is closed from our side.
#[allow(clippy::too_many_arguments)]
async fn phase(
    addr: SocketAddr,
    listener: Listener,
    names: &Arc<[String]>,
    keys: &Arc<[ClientKeys]>,
    interval: Duration,
    seconds: Duration,
    hostile: Option<(usize, usize)>,
    pid: u32,
) -> anyhow::Result<(Good, Footprint, BTreeMap<Kind, KindStats>)> {
    let ramp = Duration::from_secs(2);
    let start = Instant::now()
        + if hostile.is_some() {
            ramp * 2
        } else {
            ramp / 4
        };
    let end = start + seconds;
    let shared = Arc::new(Hostile::default());
    let mut holders = Vec::new();
    if let Some((idle, slow)) = hostile {
        let kinds = (0..idle)
            .map(|i| {
                if i % 2 == 0 {
                    Kind::Silent
                } else {
                    Kind::KeepAlive
                }
            })
            .chain((0..slow).map(|i| {
                if i % 2 == 0 {
                    Kind::SlowHead
                } else {
                    Kind::SlowBody
                }
            }));
        let total = idle + slow;
        for (i, kind) in kinds.enumerate() {
            let first = Instant::now() + ramp.mul_f64(i as f64 / total.max(1) as f64);
            let shared = shared.clone();
            holders.push(tokio::spawn(hold(addr, listener, kind, first, end, shared)));
        }
    }
    let meter = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut fp = Footprint {
                hostile_open_min: usize::MAX,
                ..Footprint::default()
            };
            sleep_until(start).await;
            while Instant::now() < end {
                fp.rss_max_kib = fp.rss_max_kib.max(status_kib(pid, "VmRSS:").unwrap_or(0));
                fp.fds_max = fp.fds_max.max(open_files(pid));
                let open = shared.open.load(Ordering::Relaxed);
                fp.hostile_open_min = fp.hostile_open_min.min(open);
                fp.hostile_open_max = fp.hostile_open_max.max(open);
                sleep(Duration::from_millis(500)).await;
            }
            fp
        })
    };
    let agents: Vec<_> = (0..names.len())
        .map(|i| {
            let (names, keys) = (names.clone(), keys.clone());
            // Spread over the interval, as a fleet's agents are.
            let first = start + interval.mul_f64(i as f64 / names.len() as f64);
            tokio::spawn(agent(addr, listener, names, keys, i, first, interval, end))
        })
        .collect();
    let mut good = Good::default();
    for a in agents {
        let g = a.await?;
        good.sent += g.sent;
        good.ok += g.ok;
        good.errors += g.errors;
        for (c, n) in g.refused {
            *good.refused.entry(c).or_default() += n;
        }
        good.latencies.extend(g.latencies);
    }
    let mut footprint = meter.await?;
    if hostile.is_none() {
        footprint.hostile_open_min = 0;
    }
    for h in holders {
        h.await?;
    }
    let kinds = std::mem::take(&mut *shared.kinds.lock().expect("stats lock"));
    Ok((good, footprint, kinds))
}

/// The agents as clients of config.xml, and the web listener on a free loopback port.
fn clients_xml(names: &[String]) -> String {
    let mut xml = String::from("  <defaults username=\"bench\" interval=\"10s\" mail=\"\"/>\n");
    for (i, name) in names.iter().enumerate() {
        // Never contacted by monitord; loopback if they were.
        xml.push_str(&format!(
            "  <client name=\"{name}\" ip=\"127.2.{}.{}\"/>\n",
            i / 250,
            i % 250 + 1
        ));
    }
    xml.push_str("  <web listen=\"127.0.0.1:0\"/>\n");
    xml
}

/// Raises this process's soft open-file limit to its hard limit (monitord, spawned after,
/// inherits it): 2,500 hostile connections and their server ends need more than the usual
/// 1,024. Returns the new soft limit.
fn raise_open_file_limit() -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .context("cannot raise the open-file limit")?;
    }
    Ok(hard)
}

/// monitord's `Max open files` soft limit as /proc shows it.
fn limit_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
