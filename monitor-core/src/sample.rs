//! The sample: what an agent measures once and what monitord stores.
//!
//! [`Sample::parse`] turns the opened envelope's JSON into a `Sample` (a missing required
//! field, a wrong type or `v` other than 1 is a [`SampleError::Malformed`], answered 400) and
//! [`Sample::validate`] checks the ranges (answered 422): percentages 0–100, sizes not
//! negative, `used` not above `total`, and `ts` no more than 10 minutes ahead of the server
//! clock nor more than 7 days old. Sizes are signed on purpose, so that a negative size is
//! a range error (422), not a type error (400), as the contract says.

use serde::{Deserialize, Serialize};

/// The only version of the sample format there is.
pub const SAMPLE_VERSION: u32 = 1;
/// How far ahead of the server clock a sample's `ts` may be.
pub const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;
/// How old a sample may be and still be accepted (an agent draining its spool).
pub const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub instance: String,
    pub seq: i64,
    /// Unix time in milliseconds when the sample was collected.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    pub cpu_percent: f64,
    pub memory: Memory,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Swap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<[f64; 3]>,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TopProcess>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub total: i64,
    pub used: i64,
    pub available: i64,
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Swap {
    pub total: i64,
    pub used: i64,
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub mount: String,
    pub fs: String,
    pub total: i64,
    pub used: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avail: Option<i64>,
}

impl Disk {
    /// Percent used as `df` shows it: `used / (used + avail)`, else `used / total`.
    pub fn percent(&self) -> f64 {
        let base = match self.avail {
            // Saturating: both are validated not negative, but not bounded above.
            Some(avail) => self.used.saturating_add(avail),
            None => self.total,
        };
        if base <= 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / base as f64
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopProcess {
    pub pid: i64,
    pub name: String,
    /// Share of one core since the previous sample; may exceed 100 on a multi-core host.
    pub cpu_percent: f64,
    pub rss: i64,
}

/// Why a sample was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// Not a sample at all: invalid JSON, a missing field, a wrong type, `v` not 1 (400).
    #[error("not a valid sample: {0}")]
    Malformed(String),
    /// A well-formed sample whose values cannot be true (422).
    #[error("{0}")]
    OutOfRange(String),
}

impl Sample {
    /// Parses the JSON of an opened envelope.
    pub fn parse(json: &[u8]) -> Result<Sample, SampleError> {
        let sample: Sample =
            serde_json::from_slice(json).map_err(|e| SampleError::Malformed(e.to_string()))?;
        if sample.v != SAMPLE_VERSION {
            return Err(SampleError::Malformed(format!(
                "unsupported sample version {}, expected {SAMPLE_VERSION}",
                sample.v
            )));
        }
        Ok(sample)
    }

    /// Checks every value's range and the `ts` window against `now_ms` (the server clock).
    pub fn validate(&self, now_ms: i64) -> Result<(), SampleError> {
        let out = |msg: String| Err(SampleError::OutOfRange(msg));
        if self.ts > now_ms + MAX_AHEAD_MS {
            return out(format!(
                "ts is {} s ahead of the server clock (at most {} s allowed): check the client's clock",
                (self.ts - now_ms) / 1000,
                MAX_AHEAD_MS / 1000
            ));
        }
        if self.ts < now_ms - MAX_AGE_MS {
            return out(format!(
                "ts is more than {} days old",
                MAX_AGE_MS / 86_400_000
            ));
        }
        if self.seq < 0 {
            return out("seq is negative".into());
        }
        if self.instance.is_empty() || self.instance.len() > 64 {
            return out("instance must be 1 to 64 characters".into());
        }
        percent("cpu_percent", self.cpu_percent)?;
        let m = &self.memory;
        sizes("memory", m.total, m.used)?;
        non_negative("memory.available", m.available)?;
        percent("memory.percent", m.percent)?;
        if let Some(s) = &self.swap {
            sizes("swap", s.total, s.used)?;
            percent("swap.percent", s.percent)?;
        }
        if let Some(uptime) = self.uptime_s {
            non_negative("uptime_s", uptime)?;
        }
        if let Some(load) = self.load {
            if load.iter().any(|l| !l.is_finite() || *l < 0.0) {
                return out("load values must be 0 or more".into());
            }
        }
        if let Some(p) = self.processes {
            non_negative("processes", p)?;
        }
        for d in &self.disks {
            sizes(format_args!("disk {}", d.mount), d.total, d.used)?;
            if let Some(avail) = d.avail {
                non_negative(format_args!("disk {} avail", d.mount), avail)?;
            }
        }
        for p in &self.top {
            if !p.cpu_percent.is_finite() || p.cpu_percent < 0.0 {
                return out(format!("top process {} has a negative cpu_percent", p.pid));
            }
            non_negative(format_args!("top process {} rss", p.pid), p.rss)?;
        }
        Ok(())
    }

    /// The mount with the highest percent used, which a disk alert compares with its limit.
    pub fn fullest_disk(&self) -> Option<&Disk> {
        self.disks
            .iter()
            .max_by(|a, b| a.percent().total_cmp(&b.percent()))
    }
}

fn percent(what: &str, value: f64) -> Result<(), SampleError> {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(SampleError::OutOfRange(format!(
            "{what} is {value}, expected 0 to 100"
        )))
    }
}

// The helpers below take `what` as `impl Display` (often `format_args!`) so that the message
// is only built for a refusal: validation runs on every request and nearly always passes.

fn non_negative(what: impl std::fmt::Display, value: i64) -> Result<(), SampleError> {
    if value >= 0 {
        Ok(())
    } else {
        Err(SampleError::OutOfRange(format!("{what} is negative")))
    }
}

fn sizes(what: impl std::fmt::Display, total: i64, used: i64) -> Result<(), SampleError> {
    non_negative(format_args!("{what} total"), total)?;
    non_negative(format_args!("{what} used"), used)?;
    if used > total {
        return Err(SampleError::OutOfRange(format!(
            "{what} used ({used}) is above total ({total})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn json() -> serde_json::Value {
        serde_json::json!({
            "v": 1, "agent": "0.1.0", "instance": "abc", "seq": 1, "ts": NOW,
            "hostname": "web1", "os": "Debian 12", "cpu_percent": 12.5,
            "memory": {"total": 1000, "used": 400, "available": 600, "percent": 40.0},
            "swap": {"total": 0, "used": 0, "percent": 0.0},
            "uptime_s": 100, "load": [0.1, 0.2, 0.3],
            "disks": [{"mount": "/", "fs": "ext4", "total": 100, "used": 50, "avail": 40}],
            "processes": 99,
            "top": [{"pid": 1, "name": "init", "cpu_percent": 0.0, "rss": 4096}],
            "future_field": true
        })
    }

    fn check(value: serde_json::Value) -> Result<Sample, SampleError> {
        let s = Sample::parse(value.to_string().as_bytes())?;
        s.validate(NOW)?;
        Ok(s)
    }

    #[test]
    fn a_full_sample_parses_and_validates() {
        let s = check(json()).unwrap();
        assert_eq!(s.fullest_disk().unwrap().mount, "/");
        assert!((s.disks[0].percent() - 55.555).abs() < 0.01);
    }

    #[test]
    fn missing_or_mistyped_fields_are_malformed() {
        for field in ["v", "instance", "seq", "ts", "cpu_percent", "memory"] {
            let mut v = json();
            v.as_object_mut().unwrap().remove(field);
            assert!(
                matches!(check(v), Err(SampleError::Malformed(_))),
                "{field}"
            );
        }
        let mut v = json();
        v["seq"] = "one".into();
        assert!(matches!(check(v), Err(SampleError::Malformed(_))));
        let mut v = json();
        v["v"] = 2.into();
        assert!(matches!(check(v), Err(SampleError::Malformed(_))));
        assert!(matches!(
            Sample::parse(b"{not json"),
            Err(SampleError::Malformed(_))
        ));
    }

    #[test]
    fn impossible_values_are_out_of_range() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("cpu_percent", 100.5.into()),
            ("cpu_percent", (-1.0).into()),
            ("ts", (NOW + MAX_AHEAD_MS + 1000).into()),
            ("ts", (NOW - MAX_AGE_MS - 1000).into()),
        ];
        for (field, value) in cases {
            let mut v = json();
            v[field] = value.clone();
            assert!(
                matches!(check(v), Err(SampleError::OutOfRange(_))),
                "{field}={value}"
            );
        }
        let mut v = json();
        v["memory"]["used"] = 2000.into();
        assert!(matches!(check(v), Err(SampleError::OutOfRange(_))));
        let mut v = json();
        v["disks"][0]["total"] = (-5).into();
        assert!(matches!(check(v), Err(SampleError::OutOfRange(_))));
        let mut v = json();
        v["load"] = serde_json::json!([-0.5, 0, 0]);
        assert!(matches!(check(v), Err(SampleError::OutOfRange(_))));
    }

    #[test]
    fn a_disk_with_huge_sizes_is_a_percentage() {
        // used + avail overflowed i64 (a panic with overflow checks, a wrapped percent without).
        let mut v = json();
        v["disks"][0] = serde_json::json!({
            "mount": "/", "fs": "ext4", "total": i64::MAX, "used": i64::MAX, "avail": i64::MAX
        });
        let s = check(v).unwrap();
        let p = s.fullest_disk().unwrap().percent();
        assert!((0.0..=100.0).contains(&p), "{p}");
    }

    #[test]
    fn edges_of_the_window_are_accepted() {
        let mut v = json();
        v["ts"] = (NOW + MAX_AHEAD_MS).into();
        check(v).unwrap();
        let mut v = json();
        v["ts"] = (NOW - MAX_AGE_MS).into();
        check(v).unwrap();
    }
}
