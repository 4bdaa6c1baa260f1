//! A synthetic fleet for the ingest benchmark: hosts whose measurements move like real ones.
//!
//! Every host walks its own values (cpu, memory, swap, load, disks, process count, top
//! processes) with small mean-reverting steps, its `ts` moves 10 s per sample and its
//! `(instance, seq)` is distinct, so what monitord stores (and how well it compacts) is what a
//! real fleet would give it, not a column of constants. Sizes are whole KiB (memory) or
//! 4 KiB blocks (disks), as `/proc` and `statvfs` report them.
//!
//! Not here: sending anything. [`seal_rounds`] only turns samples into sealed bodies ahead of
//! time, so the benchmark's clock never measures the load generator's crypto.

use bytes::Bytes;
use monitor_core::MasterKey;
use monitor_core::envelope::{self, ClientKeys};
use monitor_core::sample::{Disk, Memory, Sample, Swap, TopProcess};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Milliseconds between two samples of one host (what `--interval 10s` gives).
pub const STEP_MS: i64 = 10_000;

const KIB: i64 = 1024;
const GIB: i64 = 1024 * 1024 * 1024;
const BLOCK: i64 = 4096;

/// One sealed request body and the client it is for (an index into the fleet's names).
#[derive(Debug, Clone)]
pub struct SealedSample {
    pub client: usize,
    pub body: Bytes,
}

/// A value that drifts around a host-specific level and stays within bounds.
#[derive(Debug, Clone)]
struct Walk {
    value: f64,
    level: f64,
    step: f64,
    lo: f64,
    hi: f64,
}

impl Walk {
    fn new(lo: f64, hi: f64, level: f64, step: f64, rng: &mut SmallRng) -> Walk {
        let value = (level + rng.random_range(-step..=step) * 3.0).clamp(lo, hi);
        Walk {
            value,
            level,
            step,
            lo,
            hi,
        }
    }

    /// Ornstein–Uhlenbeck-like step: pulled back towards the level, pushed by noise, and now
    /// and then a burst, as a busy host has.
    fn next(&mut self, rng: &mut SmallRng) -> f64 {
        let burst = if rng.random_ratio(1, 200) { 10.0 } else { 1.0 };
        let noise = rng.random_range(-1.0..=1.0) * self.step * burst;
        self.value += 0.05 * (self.level - self.value) + noise;
        self.value = self.value.clamp(self.lo, self.hi);
        self.value
    }
}

#[derive(Debug, Clone)]
struct DiskState {
    mount: &'static str,
    fs: &'static str,
    total_blocks: i64,
    reserved_blocks: i64,
    used: Walk,
}

#[derive(Debug, Clone)]
struct Proc {
    pid: i64,
    name: &'static str,
    cpu: Walk,
    rss_kib: Walk,
}

/// One host's state between samples.
#[derive(Debug, Clone)]
pub struct Host {
    instance: String,
    seq: i64,
    ts: i64,
    uptime_s: i64,
    hostname: String,
    cpu: Walk,
    mem_total_kib: i64,
    mem_used_kib: Walk,
    swap_total_kib: i64,
    swap_used_kib: Walk,
    load: [f64; 3],
    cores: f64,
    disks: Vec<DiskState>,
    processes: Walk,
    top: Vec<Proc>,
}

const MOUNTS: [(&str, &str); 3] = [("/", "ext4"), ("/var", "xfs"), ("/srv", "ext4")];
const PROCESS_NAMES: [&str; 8] = [
    "postgres", "nginx", "java", "python3", "sshd", "systemd", "node", "rsyslogd",
];

impl Host {
    /// A host named `name` whose first sample is taken at `first_ts` (unix ms).
    pub fn new(name: &str, first_ts: i64, rng: &mut SmallRng) -> Host {
        let cores = [2.0, 4.0, 8.0, 16.0][rng.random_range(0..4)];
        let mem_total_kib = [2, 4, 8, 16, 32][rng.random_range(0..5)] * GIB / KIB;
        let mem_level = rng.random_range(15.0..75.0) / 100.0 * mem_total_kib as f64;
        let swap_total_kib = if rng.random_bool(0.3) {
            0
        } else {
            2 * GIB / KIB
        };
        let disks = (0..rng.random_range(1..=3))
            .map(|i| {
                let total_blocks = rng.random_range(20..500) * GIB / BLOCK;
                let level = rng.random_range(0.2..0.85) * total_blocks as f64;
                DiskState {
                    mount: MOUNTS[i].0,
                    fs: MOUNTS[i].1,
                    total_blocks,
                    // ext4 keeps 5 % for root, which is why df's percent is not used/total.
                    reserved_blocks: total_blocks / 20,
                    used: Walk::new(0.0, total_blocks as f64 * 0.94, level, 40.0, rng),
                }
            })
            .collect();
        let top = (0..6)
            .map(|i| Proc {
                pid: rng.random_range(300..60_000),
                name: PROCESS_NAMES
                    [(i + rng.random_range(0..PROCESS_NAMES.len())) % PROCESS_NAMES.len()],
                cpu: Walk::new(0.0, 100.0 * cores, rng.random_range(0.0..40.0), 3.0, rng),
                rss_kib: Walk::new(1024.0, 4.0 * 1024.0 * 1024.0, 200_000.0, 500.0, rng),
            })
            .collect();
        Host {
            instance: format!("{:016x}", rng.random::<u64>()),
            seq: rng.random_range(0..1000),
            ts: first_ts,
            uptime_s: rng.random_range(600..90 * 86_400),
            hostname: name.to_owned(),
            cpu: Walk::new(0.0, 100.0, rng.random_range(2.0..60.0), 2.5, rng),
            mem_total_kib,
            mem_used_kib: Walk::new(
                0.05 * mem_total_kib as f64,
                0.98 * mem_total_kib as f64,
                mem_level,
                mem_total_kib as f64 * 0.002,
                rng,
            ),
            swap_total_kib,
            swap_used_kib: Walk::new(
                0.0,
                swap_total_kib as f64,
                swap_total_kib as f64 * 0.1,
                swap_total_kib as f64 * 0.001,
                rng,
            ),
            load: [0.0; 3],
            cores,
            disks,
            processes: Walk::new(40.0, 2000.0, rng.random_range(90.0..600.0), 2.0, rng),
            top,
        }
    }

    /// The host's next sample; every call moves the clock 10 s and the sequence by one.
    pub fn next_sample(&mut self, rng: &mut SmallRng) -> Sample {
        self.seq += 1;
        self.ts += STEP_MS + rng.random_range(-20..=20);
        self.uptime_s += STEP_MS / 1000;
        let cpu = round2(self.cpu.next(rng));
        // Load averages follow the CPU share, each with its own time constant.
        let runnable = cpu / 100.0 * self.cores * rng.random_range(0.8..1.3);
        for (avg, alpha) in self.load.iter_mut().zip([0.15, 0.033, 0.011]) {
            *avg += alpha * (runnable - *avg);
        }
        let total = self.mem_total_kib * KIB;
        let used = self.mem_used_kib.next(rng) as i64 * KIB;
        let swap_used = self.swap_used_kib.next(rng) as i64 * KIB;
        Sample {
            v: 1,
            agent: Some("bench".to_owned()),
            instance: self.instance.clone(),
            seq: self.seq,
            ts: self.ts,
            hostname: Some(self.hostname.clone()),
            os: Some("Debian GNU/Linux 12 (bookworm)".to_owned()),
            cpu_percent: cpu,
            memory: Memory {
                total,
                used,
                available: total - used,
                percent: percent(used, total),
            },
            swap: Some(Swap {
                total: self.swap_total_kib * KIB,
                used: swap_used,
                percent: percent(swap_used, self.swap_total_kib * KIB),
            }),
            uptime_s: Some(self.uptime_s),
            load: Some(self.load.map(round2)),
            disks: self.disks.iter_mut().map(|d| d.next(rng)).collect(),
            processes: Some(self.processes.next(rng) as i64),
            top: self
                .top
                .iter_mut()
                .map(|p| TopProcess {
                    pid: p.pid,
                    name: p.name.to_owned(),
                    cpu_percent: round2(p.cpu.next(rng)),
                    rss: p.rss_kib.next(rng) as i64 * KIB,
                })
                .collect(),
        }
    }
}

impl DiskState {
    fn next(&mut self, rng: &mut SmallRng) -> Disk {
        let used = self.used.next(rng) as i64;
        Disk {
            mount: self.mount.to_owned(),
            fs: self.fs.to_owned(),
            total: self.total_blocks * BLOCK,
            used: used * BLOCK,
            avail: Some((self.total_blocks - self.reserved_blocks - used).max(0) * BLOCK),
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn percent(used: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        round2(used as f64 * 100.0 / total as f64)
    }
}

/// The names of a fleet of `count` clients: `host0001`, `host0002`, …
pub fn names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("host{i:04}")).collect()
}

/// Seals `rounds` samples of every host, round by round (all hosts' first sample, then all
/// second samples, …), so any prefix of the result keeps each host's `ts` moving forward. The
/// last round is stamped about `now_ms`; the first `rounds × 10 s` earlier. Work is split over
/// `threads` threads by host.
pub fn seal_rounds(
    master: &MasterKey,
    names: &[String],
    rounds: usize,
    now_ms: i64,
    threads: usize,
) -> Vec<SealedSample> {
    let first_ts = now_ms - rounds as i64 * STEP_MS;
    let chunk = names.len().div_ceil(threads.max(1));
    // Each thread produces its hosts' bodies round-major; the interleave below restores the
    // global round-major order.
    let per_thread: Vec<Vec<SealedSample>> = std::thread::scope(|scope| {
        let workers: Vec<_> = names
            .chunks(chunk.max(1))
            .enumerate()
            .map(|(t, slice)| {
                scope.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(0x5eed ^ t as u64);
                    let base = t * chunk;
                    let mut hosts: Vec<(Host, ClientKeys)> = slice
                        .iter()
                        .map(|n| {
                            (
                                Host::new(n, first_ts, &mut rng),
                                ClientKeys::derive(master, n),
                            )
                        })
                        .collect();
                    let mut out = Vec::with_capacity(rounds * slice.len());
                    for _ in 0..rounds {
                        for (i, (host, keys)) in hosts.iter_mut().enumerate() {
                            let name = &names[base + i];
                            let json = serde_json::to_vec(&host.next_sample(&mut rng))
                                .expect("a sample always serializes");
                            let body = envelope::seal(keys, name, &json);
                            out.push(SealedSample {
                                client: base + i,
                                body: Bytes::from(body),
                            });
                        }
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a sealing thread panicked"))
            .collect()
    });
    let sizes: Vec<usize> = names.chunks(chunk.max(1)).map(<[String]>::len).collect();
    let mut iters: Vec<_> = per_thread.into_iter().map(Vec::into_iter).collect();
    let mut all = Vec::with_capacity(rounds * names.len());
    for _ in 0..rounds {
        for (it, size) in iters.iter_mut().zip(&sizes) {
            all.extend(it.by_ref().take(*size));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_core::Envelope;

    #[test]
    fn samples_are_valid_move_and_open_for_their_client() {
        let master = MasterKey::from_bytes([9; 32]);
        let names = names(5);
        let now = 1_790_000_000_000;
        let sealed = seal_rounds(&master, &names, 50, now, 2);
        assert_eq!(sealed.len(), 250);
        let mut cpu_values = std::collections::HashSet::new();
        let mut last_ts = vec![0i64; names.len()];
        for s in &sealed {
            let name = &names[s.client];
            let keys = ClientKeys::derive(&master, name);
            let json = Envelope::decode(&s.body)
                .unwrap()
                .open(&keys, name)
                .unwrap();
            let sample = Sample::parse(&json).unwrap();
            sample.validate(now).unwrap();
            assert!(sample.ts > last_ts[s.client], "ts moves forward per host");
            last_ts[s.client] = sample.ts;
            cpu_values.insert(sample.cpu_percent.to_bits());
        }
        assert!(
            cpu_values.len() > 100,
            "cpu walks, {} distinct",
            cpu_values.len()
        );
    }
}
