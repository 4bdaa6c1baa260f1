//! `xtask bench agent`: the release static agent's footprint next to Debian's
//! `prometheus-node-exporter`, measured in the same run on the same machine.
//!
//! The agent runs `--interval 10s` against a real monitord on a temporary directory; the node
//! exporter runs on a free loopback port and this program scrapes it every 10 s, as Prometheus
//! would. For both it prints peak RSS (`VmHWM`), CPU as a share of one core from the
//! nanosecond counters in `/proc/PID/task/*/schedstat`, and the binary's size, then the
//! ratios and the goals of issue 2.
//!
//! Not here: the agent's own correctness (its tests do that); this only checks that its
//! samples arrived, so a broken agent cannot look cheap.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use monitor_core::{AgentSettings, ClientKeys};

use crate::load;
use crate::procstat::{self, CpuMeter};
use crate::server;

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const CLIENT: &str = "bench-agent";

/// The goals issue 2 sets for the agent.
const GOAL_RSS: u64 = 2 * 1024 * 1024;
const GOAL_CPU_PERCENT: f64 = 0.02;
const GOAL_BINARY: u64 = 1536 * 1024;
const GOAL_RSS_RATIO: f64 = 10.0;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// The agent's sampling interval and the node exporter's scrape interval, in seconds.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// The static agent [default: $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/agent/monitor-agent].
    #[arg(long)]
    agent: Option<PathBuf>,
    /// The monitord binary [default: $CARGO_TARGET_DIR/release/monitord].
    #[arg(long)]
    monitord: Option<PathBuf>,
    /// The node exporter; installed with apt-get when it is missing and we are root.
    #[arg(long, default_value = NODE_EXPORTER)]
    node_exporter: PathBuf,
}

/// A measured child process, killed on drop.
#[derive(Debug)]
struct Measured {
    name: &'static str,
    child: Child,
    binary: PathBuf,
    cpu: CpuMeter,
    started: Instant,
    /// CPU time and moment once start-up is over (half an interval in), for the steady state.
    settled: Option<(Duration, Instant)>,
}

impl Drop for Measured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What was measured for one process.
#[derive(Debug)]
struct Footprint {
    rss: u64,
    /// Whole run, start-up included.
    cpu_percent: f64,
    /// From half an interval in (after start-up and the first sample) to the end.
    steady_cpu_percent: f64,
    binary: u64,
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let monitord_bin = server::monitord_binary(opts.monitord.clone())?;
    let agent_bin = server::agent_binary(opts.agent.clone())?;
    ensure_node_exporter(&opts.node_exporter)?;
    let client = format!(
        "  <client name=\"{CLIENT}\" ip=\"127.0.0.1\" username=\"bench\" interval=\"{}s\"/>\n",
        opts.interval
    );
    let mut monitord = server::prepare_monitord(&monitord_bin, &client)?;
    server::start(&mut monitord);
    // The agent's and the node exporter's state and logs go beside monitord's.
    let temp = monitord.dir().to_path_buf();
    println!(
        "bench agent: {} s, agent --interval {}s against monitord on {}, node exporter scraped \
         every {} s; load average before: {}",
        opts.seconds,
        opts.interval,
        monitord.addr(),
        opts.interval,
        procstat::load_average()
    );

    let processes_at_start = procstat::process_count();
    let keys = ClientKeys::derive(&monitord.master_key(), CLIENT);
    let url = monitord.url();
    let mut agent = start_agent(&agent_bin, &temp, &keys, &url, opts.interval)?;
    let port = testkit::util::free_port();
    let mut exporter = start_node_exporter(&opts.node_exporter, &temp, port)?;
    let exporter_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut scrapes = 0;
    wait_for_exporter(&runtime, exporter_addr)?;
    let end = Instant::now() + Duration::from_secs(opts.seconds);
    let mut next_scrape = Instant::now();
    let settle_at = Instant::now() + Duration::from_millis(opts.interval * 500);
    while Instant::now() < end {
        if Instant::now() >= next_scrape {
            let (status, len) = runtime.block_on(load::get(exporter_addr, "/metrics"))?;
            if status != 200 || len == 0 {
                bail!("node exporter answered {status} with {len} bytes to a scrape");
            }
            scrapes += 1;
            next_scrape += Duration::from_secs(opts.interval);
        }
        for p in [&mut agent, &mut exporter] {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "{} exited early with {status}; see its log in {}",
                    p.name,
                    monitord.keep_dir().display()
                );
            }
            let cpu = p.cpu.poll()?;
            if p.settled.is_none() && Instant::now() >= settle_at {
                p.settled = Some((cpu, Instant::now()));
            }
        }
        std::thread::sleep(
            Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
        );
    }
    let agent_fp = footprint(&mut agent)?;
    let exporter_fp = footprint(&mut exporter)?;
    drop(agent);
    drop(exporter);
    let stats = server::stats(&monitord)?;
    server::stop(&mut monitord).context("stopping monitord")?;

    let rss_ratio = print_table(&agent_fp, &exporter_fp, opts.interval);
    println!(
        "samples stored by monitord: {} (expected about {}); node exporter scrapes: {scrapes}",
        stats.samples,
        opts.seconds.div_ceil(opts.interval.max(1))
    );
    if stats.samples == 0 {
        bail!(
            "the agent stored no sample; its log is in {}",
            monitord.keep_dir().display()
        );
    }
    println!(
        "goals: agent RSS ≤ 2 MB {}, steady CPU ≤ {GOAL_CPU_PERCENT}% {} (whole run: {}), binary ≤ 1.5 MB {}, \
         ≥ {GOAL_RSS_RATIO}× less RSS than node_exporter {}",
        verdict(agent_fp.rss <= GOAL_RSS),
        verdict(agent_fp.steady_cpu_percent <= GOAL_CPU_PERCENT),
        verdict(agent_fp.cpu_percent <= GOAL_CPU_PERCENT),
        verdict(agent_fp.binary <= GOAL_BINARY),
        verdict(rss_ratio >= GOAL_RSS_RATIO)
    );
    println!(
        "load average after: {}; processes on the machine: {} at start, {} at the end \
         (both programs read each one's /proc entry every interval)",
        procstat::load_average(),
        processes_at_start,
        procstat::process_count()
    );
    Ok(())
}

fn footprint(p: &mut Measured) -> anyhow::Result<Footprint> {
    let cpu = p.cpu.poll()?;
    let share = |cpu: Duration, wall: Duration| cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    let (cpu0, t0) = p.settled.unwrap_or((Duration::ZERO, p.started));
    Ok(Footprint {
        rss: procstat::peak_rss(p.child.id())?,
        cpu_percent: share(cpu, p.started.elapsed()),
        steady_cpu_percent: share(cpu - cpu0, t0.elapsed()),
        binary: std::fs::metadata(&p.binary)?.len(),
    })
}

/// Prints both footprints and their ratios; returns node_exporter's RSS over the agent's.
fn print_table(agent: &Footprint, exporter: &Footprint, interval: u64) -> f64 {
    println!(
        "{:<15} {:>12} {:>12} {:>12} {:>12}",
        "", "peak RSS", "CPU % core", "steady CPU", "binary"
    );
    for (name, fp) in [("monitor-agent", agent), ("node_exporter", exporter)] {
        println!(
            "{name:<15} {:>8.0} KiB {:>11.4}% {:>11.4}% {:>8.0} KiB",
            fp.rss as f64 / 1024.0,
            fp.cpu_percent,
            fp.steady_cpu_percent,
            fp.binary as f64 / 1024.0
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    let rss_ratio = ratio(exporter.rss as f64, agent.rss as f64);
    println!(
        "{:<15} {:>11.1}× {:>11.1}× {:>11.1}× {:>11.1}×",
        "node_exporter /",
        rss_ratio,
        ratio(exporter.cpu_percent, agent.cpu_percent),
        ratio(exporter.steady_cpu_percent, agent.steady_cpu_percent),
        ratio(exporter.binary as f64, agent.binary as f64)
    );
    println!(
        "(CPU % core: whole run from spawn; steady CPU: from {:.0} s in, after start-up and \
         the first sample)",
        interval as f64 / 2.0
    );
    rss_ratio
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn ensure_node_exporter(path: &Path) -> anyhow::Result<()> {
    if path.is_file() {
        return Ok(());
    }
    if path != Path::new(NODE_EXPORTER) {
        bail!("no node exporter at {}", path.display());
    }
    println!("installing Debian's prometheus-node-exporter with apt-get …");
    let status = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "--no-install-recommends",
            "prometheus-node-exporter",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() || !path.is_file() {
        bail!(
            "could not install prometheus-node-exporter (apt-get: {status}); install it yourself \
             (`apt-get update && apt-get install prometheus-node-exporter`, as root) or pass --node-exporter PATH"
        );
    }
    Ok(())
}

fn start_agent(
    binary: &Path,
    dir: &Path,
    keys: &ClientKeys,
    url: &str,
    interval: u64,
) -> anyhow::Result<Measured> {
    use std::io::Write as _;
    let state = dir.join("agent");
    std::fs::create_dir_all(&state)?;
    let log = std::fs::File::create(dir.join("agent.log"))?;
    let mut child = Command::new(binary)
        .arg("--interval")
        .arg(format!("{interval}s"))
        .arg("--dir")
        .arg(&state)
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let settings = serde_json::to_vec(&AgentSettings::new(CLIENT, keys, url, None))?;
    // Dropping stdin after the write closes it: the agent reads settings to end of file.
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&settings)
        .context("cannot hand the agent its settings on stdin")?;
    Ok(Measured {
        name: "monitor-agent",
        cpu: CpuMeter::new(child.id()),
        child,
        binary: binary.to_path_buf(),
        started: Instant::now(),
        settled: None,
    })
}

fn start_node_exporter(binary: &Path, dir: &Path, port: u16) -> anyhow::Result<Measured> {
    let log = std::fs::File::create(dir.join("node-exporter.log"))?;
    let child = Command::new(binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    Ok(Measured {
        name: "node_exporter",
        cpu: CpuMeter::new(child.id()),
        child,
        binary: binary.to_path_buf(),
        started: Instant::now(),
        settled: None,
    })
}

fn wait_for_exporter(runtime: &tokio::runtime::Runtime, addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..100 {
        if let Ok((200, _)) = runtime.block_on(load::get(addr, "/metrics")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("node exporter did not answer on {addr} within 10 s")
}
