//! Measuring the host: one [`Sample`] per call, collected with `psutil`.
//!
//! CPU shares are rates, so the [`Collector`] keeps the previous sample's counters: the host's
//! CPU times, and per process (keyed by pid and start time, so a reused pid starts afresh) its
//! busy time. Each sample is one pass over `/proc`: one read of `/proc/<pid>/stat` per process
//! gives name, CPU time and RSS at once (`proc_stat`), and memory and swap come from one read of
//! /proc/meminfo (`meminfo`). The first sample measures over the short time since
//! [`Collector::new`].
//!
//! Not here: parsing those /proc files, the disk filter (`disks`), sending, or deciding when to sample.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use monitor_core::sample::{Memory, SAMPLE_VERSION, Sample, Swap, TopProcess};
use nix::unistd::{SysconfVar, sysconf};
use psutil::cpu::CpuTimes;

use crate::disks;
use crate::meminfo;
use crate::proc_stat;

/// How many processes `top` names by CPU, and how many by RSS (the union is sent).
const TOP_N: usize = 5;

/// A process as of the previous sample: enough to tell a reused pid and to take a CPU delta.
#[derive(Debug, Clone, Copy)]
struct ProcCounters {
    start_ticks: u64,
    busy_ticks: u64,
}

pub struct Collector {
    instance: String,
    seq: i64,
    cpu: CpuTimes,
    procs: HashMap<u32, ProcCounters>,
    at: Instant,
    reader: proc_stat::Reader,
    meminfo: meminfo::Reader,
    ticks_per_second: f64,
    page_size: i64,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("instance", &self.instance)
            .field("seq", &self.seq)
            .field("processes", &self.procs.len())
            .field("open_stat_files", &self.reader.open_files())
            .finish()
    }
}

impl Collector {
    /// Takes the baseline counters the first sample is measured against.
    pub fn new() -> anyhow::Result<Collector> {
        let mut collector = Collector {
            instance: random_instance()?,
            seq: 0,
            cpu: psutil::cpu::cpu_times().context("reading /proc/stat")?,
            procs: HashMap::new(),
            at: Instant::now(),
            reader: proc_stat::Reader::new(),
            meminfo: meminfo::Reader::new(),
            ticks_per_second: sysconf_or(SysconfVar::CLK_TCK, 100) as f64,
            page_size: sysconf_or(SysconfVar::PAGE_SIZE, 4096),
        };
        collector.processes(Duration::ZERO);
        Ok(collector)
    }

    /// This agent process's random id, sent as `instance`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Measures the host now, against the counters of the previous call (or of `new`).
    pub fn sample(&mut self) -> anyhow::Result<Sample> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_millis() as i64;
        let elapsed = self.at.elapsed();
        self.at = Instant::now();

        let cpu = psutil::cpu::cpu_times().context("reading /proc/stat")?;
        let cpu_percent = busy_share(&self.cpu, &cpu);
        self.cpu = cpu;

        let mem = self.meminfo.read()?;
        // `free` (procps-ng ≥ 4) shows used as total − available; psutil's own `used`
        // (total − free − buffers − cache) is the older definition, so it is not used here.
        let (total, available) = (mem.total as i64, mem.available as i64);
        let used = (total - available).max(0);
        let memory = Memory {
            total,
            used,
            available,
            percent: percent(used, total),
        };
        let swap = mem.swap.map(|(total, free)| {
            let used = total.saturating_sub(free) as i64;
            Swap {
                total: total as i64,
                used,
                percent: percent(used, total as i64),
            }
        });
        let load = psutil::host::loadavg()
            .ok()
            .map(|l| [round2(l.one), round2(l.five), round2(l.fifteen)]);
        let all = self.processes(elapsed);
        let processes = all.len() as i64;

        self.seq += 1;
        Ok(Sample {
            v: SAMPLE_VERSION,
            agent: Some(env!("CARGO_PKG_VERSION").to_owned()),
            instance: self.instance.clone(),
            seq: self.seq,
            ts,
            hostname: Some(psutil::host::info().hostname().to_owned()),
            os: os_name(),
            cpu_percent,
            memory,
            swap,
            uptime_s: psutil::host::uptime().ok().map(|d| d.as_secs() as i64),
            load,
            disks: disks::collect(),
            processes: Some(processes),
            top: top(all),
        })
    }

    /// One pass over `/proc`: every process with its CPU share since the previous pass, and
    /// its counters kept for the next one. Processes that exit mid-pass are skipped.
    fn processes(&mut self, elapsed: Duration) -> Vec<TopProcess> {
        let pids = psutil::process::pids().unwrap_or_default();
        let mut seen = HashMap::with_capacity(pids.len());
        let mut all = Vec::with_capacity(pids.len());
        let seconds = elapsed.as_secs_f64();
        for pid in pids {
            let Some(stat) = self.reader.read(pid) else {
                continue;
            };
            let now = ProcCounters {
                start_ticks: stat.start_ticks,
                busy_ticks: stat.busy_ticks,
            };
            let cpu = match self.procs.get(&pid) {
                Some(before) if before.start_ticks == now.start_ticks && seconds > 0.0 => {
                    let busy = now.busy_ticks.saturating_sub(before.busy_ticks) as f64;
                    round2(busy / self.ticks_per_second * 100.0 / seconds)
                }
                // New since the previous sample (or first pass): no rate yet.
                _ => 0.0,
            };
            seen.insert(pid, now);
            all.push(TopProcess {
                pid: i64::from(pid),
                name: String::from_utf8_lossy(stat.name).into_owned(),
                cpu_percent: cpu,
                rss: stat.rss_pages.max(0) * self.page_size,
            });
        }
        self.reader.end_pass();
        self.procs = seen;
        all
    }
}

/// The union of the [`TOP_N`] processes with the most CPU (those that used any) and the
/// [`TOP_N`] with the largest RSS, most CPU first.
fn top(mut all: Vec<TopProcess>) -> Vec<TopProcess> {
    all.sort_by_key(|p| std::cmp::Reverse(p.rss));
    let mut chosen: Vec<TopProcess> = all.iter().take(TOP_N).cloned().collect();
    all.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    for p in all.into_iter().take(TOP_N) {
        if p.cpu_percent > 0.0 && !chosen.iter().any(|c| c.pid == p.pid) {
            chosen.push(p);
        }
    }
    chosen.sort_by(|a, b| {
        b.cpu_percent
            .total_cmp(&a.cpu_percent)
            .then(b.rss.cmp(&a.rss))
    });
    chosen
}

fn sysconf_or(var: SysconfVar, default: i64) -> i64 {
    match sysconf(var) {
        Ok(Some(v)) if v > 0 => v,
        _ => default,
    }
}

/// The host's busy share between two readings of `/proc/stat`, 0–100.
fn busy_share(before: &CpuTimes, now: &CpuTimes) -> f64 {
    let total = now.total().saturating_sub(before.total()).as_secs_f64();
    let busy = now.busy().saturating_sub(before.busy()).as_secs_f64();
    if total <= 0.0 {
        return 0.0;
    }
    round2((busy * 100.0 / total).clamp(0.0, 100.0))
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        return 0.0;
    }
    round2((part as f64 * 100.0 / whole as f64).clamp(0.0, 100.0))
}

/// Values are stored to 0.01 (docs/DESIGN.md); rounding here keeps the JSON short too.
fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}

/// `PRETTY_NAME` from os-release, which psutil does not read.
fn os_name() -> Option<String> {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| pretty_name(&text))
}

fn pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|line| line.trim().strip_prefix("PRETTY_NAME="))?;
    let value = value.trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    let name = unquoted.replace("\\\"", "\"");
    (!name.is_empty()).then_some(name)
}

/// 16 hex digits from the OS's random source: unique enough per agent process, short on the wire.
fn random_instance() -> anyhow::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i64, cpu: f64, rss: i64) -> TopProcess {
        TopProcess {
            pid,
            name: format!("p{pid}"),
            cpu_percent: cpu,
            rss,
        }
    }

    #[test]
    fn top_is_the_union_of_cpu_and_rss_leaders() {
        let mut all: Vec<_> = (1..=20).map(|pid| proc(pid, 0.0, pid * 1000)).collect();
        all[0].cpu_percent = 50.0; // pid 1: small but busy
        all[19].cpu_percent = 10.0; // pid 20: large and busy, counted once
        let top = top(all);
        let pids: Vec<i64> = top.iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![1, 20, 19, 18, 17, 16]);
    }

    #[test]
    fn idle_processes_are_not_cpu_leaders() {
        let all: Vec<_> = (1..=8).map(|pid| proc(pid, 0.0, pid)).collect();
        assert_eq!(top(all).len(), TOP_N);
    }

    #[test]
    fn pretty_name_unquotes() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            pretty_name("PRETTY_NAME=Alpine\n").as_deref(),
            Some("Alpine")
        );
        assert_eq!(pretty_name("NAME=x\n"), None);
    }

    #[test]
    fn two_samples_count_up_and_measure_cpu() {
        let mut c = Collector::new().unwrap();
        // Burn a little CPU so this process has a rate to report.
        let until = Instant::now() + Duration::from_millis(200);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let elapsed = c.at.elapsed();
        let all = c.processes(elapsed);
        let me = i64::from(std::process::id());
        let mine = all.iter().find(|p| p.pid == me).unwrap();
        // Other builds share the cores, so only a loose lower bound is safe.
        assert!(mine.cpu_percent > 20.0, "{mine:?}");
        assert!(all.iter().any(|p| p.pid == 1));

        let first = c.sample().unwrap();
        let second = c.sample().unwrap();
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(first.instance, second.instance);
        assert_eq!(first.instance.len(), 16);
        assert!(first.processes.unwrap() > 1);
        first.validate(first.ts).unwrap();
    }
}
