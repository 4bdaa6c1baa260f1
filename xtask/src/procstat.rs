//! What a benchmark reads about a running process from /proc: peak RSS and CPU time.
//!
//! CPU time comes from `/proc/PID/task/*/schedstat` (nanoseconds on a CPU, per thread), not
//! from `/proc/PID/stat`'s 10 ms clock ticks: an agent that wakes every 10 s for a millisecond
//! reads 0 ticks for minutes. Threads are summed; [`CpuMeter`] keeps the highest value seen
//! per thread, so a thread that exits between two polls still counts up to the last poll.
//!
//! Not here: starting or stopping processes.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;

/// Peak resident set size (`VmHWM`) in bytes.
pub fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// Open file descriptors of `pid` (0 when they cannot be read).
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// A `… kB` line of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{path} has no {key} line"))
}

/// CPU time of every thread of `pid`, in nanoseconds, by thread id.
fn thread_cpu_ns(pid: u32) -> anyhow::Result<HashMap<u32, u64>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {dir}"))? {
        let entry = entry?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A thread may exit between read_dir and this read: skip it, the meter keeps its last.
        if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat"))
            && let Some(ns) = text.split_whitespace().next().and_then(|f| f.parse().ok())
        {
            out.insert(tid, ns);
        }
    }
    Ok(out)
}

/// One thread's counters from `/proc/PID/task/TID/schedstat`: time on a CPU and time spent
/// runnable but waiting for one (other processes' load shows up there).
#[derive(Debug, Clone)]
pub struct ThreadTimes {
    pub tid: u32,
    pub name: String,
    pub on_cpu: Duration,
    pub runqueue: Duration,
}

/// Every thread of `pid` with its counters now.
pub fn thread_times(pid: u32) -> anyhow::Result<Vec<ThreadTimes>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {dir}"))? {
        let path = entry?.path();
        let Some(tid) = path.file_name().and_then(|n| n.to_str()?.parse().ok()) else {
            continue;
        };
        let (Ok(sched), Ok(name)) = (
            std::fs::read_to_string(path.join("schedstat")),
            std::fs::read_to_string(path.join("comm")),
        ) else {
            continue;
        };
        let mut fields = sched.split_whitespace().map(|f| f.parse().unwrap_or(0));
        out.push(ThreadTimes {
            tid,
            name: name.trim().to_owned(),
            on_cpu: Duration::from_nanos(fields.next().unwrap_or(0)),
            runqueue: Duration::from_nanos(fields.next().unwrap_or(0)),
        });
    }
    Ok(out)
}

/// Per thread that was busy between two [`thread_times`] snapshots taken `wall` apart:
/// `writer 38% on CPU + 52% waiting for one`.
pub fn busy_threads(before: &[ThreadTimes], after: &[ThreadTimes], wall: Duration) -> String {
    let wall = wall.as_secs_f64().max(1e-9);
    let mut parts = Vec::new();
    for t in after {
        let Some(b) = before.iter().find(|b| b.tid == t.tid) else {
            continue;
        };
        let on = (t.on_cpu - b.on_cpu).as_secs_f64() / wall * 100.0;
        let waiting = (t.runqueue.saturating_sub(b.runqueue)).as_secs_f64() / wall * 100.0;
        if on >= 1.0 {
            parts.push(format!(
                "{} {on:.0}% on CPU + {waiting:.0}% waiting for one",
                t.name
            ));
        }
    }
    parts.join(", ")
}

/// Accumulates a process's CPU time across polls.
#[derive(Debug, Default)]
pub struct CpuMeter {
    pid: u32,
    threads: HashMap<u32, u64>,
}

impl CpuMeter {
    pub fn new(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            threads: HashMap::new(),
        }
    }

    /// Reads every thread's counter now and returns the process's total CPU time so far.
    pub fn poll(&mut self) -> anyhow::Result<Duration> {
        for (tid, ns) in thread_cpu_ns(self.pid)? {
            let seen = self.threads.entry(tid).or_default();
            *seen = (*seen).max(ns);
        }
        Ok(self.total())
    }

    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.threads.values().sum())
    }
}

/// User + system CPU time of a whole process (all threads, dead ones included) from
/// `/proc/PID/stat`, in clock ticks' resolution: fine over seconds of busy work.
pub fn cpu_ticks_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name (field 2) may contain spaces; fields after its ')' are fixed.
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path} is not in the expected format"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let ticks: u64 = fields
        .get(11..13)
        .with_context(|| format!("{path} has too few fields"))?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(Duration::from_millis(
        ticks * 1000 / clock_ticks_per_second(),
    ))
}

/// `getconf CLK_TCK`; 100 on every Linux this runs on, asked anyway.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// How many processes the machine runs now: the agent's `top` and the node exporter both read
/// every one of them, so their CPU cost grows with it.
pub fn process_count() -> usize {
    std::fs::read_dir("/proc").map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count()
    })
}

/// The machine's 1, 5 and 15 minute load averages as `/proc/loadavg` has them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// CPU time the whole machine spent busy (everything but idle and iowait, all CPUs) so far,
/// from `/proc/stat`: the difference over a phase is what that phase (and, on a shared
/// machine, everything else running) cost in CPU.
pub fn machine_busy() -> Duration {
    let ticks = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("cpu "))?;
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
            let total: u64 = fields.iter().take(8).sum();
            Some(total - fields.get(3)? - fields.get(4)?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}
