//! A sample at its stored precision: percentages and load × 100, sizes in KiB, counts and
//! times exact. [`Quantized::from_sample`] is the only place that rounds; [`to_sample`] turns
//! stored numbers back into the contract's [`Sample`], so what `monitord samples --json`
//! prints is exactly what was stored, whichever tier it came from.
//!
//! Not here: how the numbers are laid out on disk (see [`super::codec`]).

use monitor_core::sample::{Disk, Memory, Sample, Swap};

/// The numbers of one sample, without its identity (client, instance, seq) or text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    /// Unix milliseconds.
    pub ts: i64,
    /// Percent × 100.
    pub cpu: i64,
    pub mem_total: i64,
    pub mem_used: i64,
    pub mem_avail: i64,
    /// Percent × 100.
    pub mem_pct: i64,
    /// total KiB, used KiB, percent × 100.
    pub swap: Option<[i64; 3]>,
    /// Seconds.
    pub uptime: Option<i64>,
    /// Load × 100.
    pub load: Option<[i64; 3]>,
    pub processes: Option<i64>,
}

/// One disk of one sample; `disk_id` points at the `disks` table (mount and fs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskValues {
    pub disk_id: i64,
    pub total: i64,
    pub used: i64,
    pub avail: Option<i64>,
}

/// hostname / os / agent version, stored once per change in the `metas` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Meta {
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub agent: Option<String>,
}

/// A disk as the handler sees it, before the writer has given (mount, fs) an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedDisk {
    pub mount: String,
    pub fs: String,
    pub total: i64,
    pub used: i64,
    pub avail: Option<i64>,
}

/// A whole sample at stored precision, as the handler hands it to the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantized {
    pub instance: String,
    pub seq: i64,
    pub meta: Meta,
    pub values: Values,
    pub disks: Vec<NamedDisk>,
}

/// Bytes to KiB, rounded to the nearest (what /proc reports is already whole KiB).
pub fn kib(bytes: i64) -> i64 {
    (bytes + 512).div_euclid(1024)
}

/// A percentage or load to hundredths.
pub fn centi(value: f64) -> i64 {
    (value * 100.0).round() as i64
}

fn uncenti(value: i64) -> f64 {
    value as f64 / 100.0
}

impl Meta {
    pub fn of(s: &Sample) -> Meta {
        Meta {
            hostname: s.hostname.clone(),
            os: s.os.clone(),
            agent: s.agent.clone(),
        }
    }

    /// Whether `s` carries this meta (without copying its strings).
    pub fn matches(&self, s: &Sample) -> bool {
        self.hostname == s.hostname && self.os == s.os && self.agent == s.agent
    }
}

impl Values {
    /// The numbers of a validated sample at stored precision.
    pub fn of(s: &Sample) -> Values {
        Values {
            ts: s.ts,
            cpu: centi(s.cpu_percent),
            mem_total: kib(s.memory.total),
            mem_used: kib(s.memory.used),
            mem_avail: kib(s.memory.available),
            mem_pct: centi(s.memory.percent),
            swap: s
                .swap
                .as_ref()
                .map(|w| [kib(w.total), kib(w.used), centi(w.percent)]),
            uptime: s.uptime_s,
            load: s.load.map(|l| l.map(centi)),
            processes: s.processes,
        }
    }
}

impl NamedDisk {
    pub fn of(d: &Disk) -> NamedDisk {
        NamedDisk {
            mount: d.mount.clone(),
            fs: d.fs.clone(),
            total: kib(d.total),
            used: kib(d.used),
            avail: d.avail.map(kib),
        }
    }
}

impl Quantized {
    /// Rounds a validated sample to stored precision. `top` is not part of it: monitord keeps
    /// only the latest `top` per client.
    pub fn from_sample(s: &Sample) -> Quantized {
        Quantized {
            instance: s.instance.clone(),
            seq: s.seq,
            meta: Meta::of(s),
            values: Values::of(s),
            disks: s.disks.iter().map(NamedDisk::of).collect(),
        }
    }
}

/// `s` as reading it back from the store gives it: at stored precision, without `top`.
pub fn as_stored(s: &Sample) -> Sample {
    let q = Quantized::from_sample(s);
    to_sample(q.instance, q.seq, &q.meta, &q.values, q.disks)
}

/// Turns stored numbers back into a [`Sample`] (without `top`).
pub fn to_sample(
    instance: String,
    seq: i64,
    meta: &Meta,
    v: &Values,
    disks: impl IntoIterator<Item = NamedDisk>,
) -> Sample {
    Sample {
        v: monitor_core::sample::SAMPLE_VERSION,
        agent: meta.agent.clone(),
        instance,
        seq,
        ts: v.ts,
        hostname: meta.hostname.clone(),
        os: meta.os.clone(),
        cpu_percent: uncenti(v.cpu),
        memory: Memory {
            total: v.mem_total * 1024,
            used: v.mem_used * 1024,
            available: v.mem_avail * 1024,
            percent: uncenti(v.mem_pct),
        },
        swap: v.swap.map(|[total, used, pct]| Swap {
            total: total * 1024,
            used: used * 1024,
            percent: uncenti(pct),
        }),
        uptime_s: v.uptime,
        load: v.load.map(|l| l.map(uncenti)),
        disks: disks
            .into_iter()
            .map(|d| Disk {
                mount: d.mount,
                fs: d.fs,
                total: d.total * 1024,
                used: d.used * 1024,
                avail: d.avail.map(|a| a * 1024),
            })
            .collect(),
        processes: v.processes,
        top: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_stored_precision_and_stable() {
        assert_eq!(kib(1024), 1);
        assert_eq!(kib(1535), 1);
        assert_eq!(kib(1536), 2);
        assert_eq!(centi(12.346), 1235);
        assert_eq!(centi(99.999), 10000);
        // Stored values survive a second round trip unchanged.
        for c in [0, 1, 1234, 9999, 10000] {
            assert_eq!(centi(uncenti(c)), c);
        }
    }
}
