//! What an alert rule reads from a sample, and how values and limits are written in mail
//! subjects (`73.2%`, `12.5`, `950`, `3m`).
//!
//! Not here: the decision whether a value fires (see [`super::machine`]) or the rest of the
//! mail (see [`super::mail`]).

use std::time::Duration;

use monitor_core::Sample;
use monitor_core::config::{AlertKind, AlertRule, format_duration};

/// One value of one rule, taken from one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub value: f64,
    /// The mount a disk value belongs to (the fullest one), named in the subject.
    pub mount: Option<String>,
}

/// The value `kind` compares with its limit, or `None` when the sample does not carry it
/// (an agent that reports no swap, no disks, no load): such a rule is then left as it is.
pub fn measure(kind: AlertKind, sample: &Sample) -> Option<Measure> {
    let plain = |value: f64| Measure { value, mount: None };
    match kind {
        AlertKind::Memory => Some(plain(sample.memory.percent)),
        AlertKind::Cpu => Some(plain(sample.cpu_percent)),
        AlertKind::Swap => sample.swap.as_ref().map(|s| plain(s.percent)),
        AlertKind::Disk => sample.fullest_disk().map(|d| Measure {
            value: d.percent(),
            mount: Some(d.mount.clone()),
        }),
        AlertKind::Load => sample.load.map(|l| plain(l[0])),
        AlertKind::Processes => sample.processes.map(|p| plain(p as f64)),
        AlertKind::Uptime => sample.uptime_s.map(|u| plain(u as f64)),
    }
}

/// A measured value as subjects show it: percentages with one decimal (`97.0%`), load with
/// up to two (`12.5`), processes whole, uptime as a duration in whole minutes once it is
/// a minute or more (`3m`), as the host's clock granularity makes seconds noise.
pub fn format_value(kind: AlertKind, value: f64) -> String {
    match kind {
        k if k.is_percent() => format!("{value:.1}%"),
        AlertKind::Uptime => format_uptime(value),
        AlertKind::Processes => format!("{}", value.round() as i64),
        _ => trim_number(value),
    }
}

/// A limit or `clear` as config.xml would write it: `50%`, `92.5%`, `8`, `10m`.
pub fn format_limit(kind: AlertKind, limit: f64) -> String {
    match kind {
        k if k.is_percent() => format!("{}%", trim_number(limit)),
        AlertKind::Uptime => format_duration(Duration::from_secs(limit.max(0.0) as u64)),
        _ => trim_number(limit),
    }
}

/// A value against the bound it is compared with, as subjects and log lines show it:
/// `97.0% > 90%` (or `3m < 10m` for uptime) while it breaches `limit`, `70.0% ≤ 75%` against
/// `clear` once it is back.
pub fn comparison(rule: &AlertRule, value: f64, back: bool) -> String {
    let kind = rule.kind;
    let (op, against) = match (back, kind.fires_below()) {
        (true, false) => ("≤", rule.clear),
        (true, true) => ("≥", rule.clear),
        (false, false) => (">", rule.limit),
        (false, true) => ("<", rule.limit),
    };
    format!(
        "{} {op} {}",
        format_value(kind, value),
        format_limit(kind, against)
    )
}

/// A span of silence or downtime as subjects show it: whole minutes once it is a minute
/// or more (`3m`, `1h7m`), else seconds.
pub fn format_span(span: Duration) -> String {
    let secs = span.as_secs();
    let shown = if secs >= 60 { secs - secs % 60 } else { secs };
    format_duration(Duration::from_secs(shown))
}

fn format_uptime(seconds: f64) -> String {
    format_span(Duration::from_secs(seconds.max(0.0) as u64))
}

/// Up to two decimals, trailing zeros dropped: `8`, `12.5`, `0.75`.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use monitor_core::sample::{Disk, Memory, Swap};

    pub(crate) fn sample() -> Sample {
        Sample {
            v: 1,
            agent: None,
            instance: "i".into(),
            seq: 1,
            ts: 0,
            hostname: None,
            os: None,
            cpu_percent: 97.0,
            memory: Memory {
                total: 1000,
                used: 732,
                available: 268,
                percent: 73.2,
            },
            swap: Some(Swap {
                total: 100,
                used: 5,
                percent: 5.0,
            }),
            uptime_s: Some(190),
            load: Some([12.5, 3.0, 1.0]),
            disks: vec![
                Disk {
                    mount: "/".into(),
                    fs: "ext4".into(),
                    total: 100,
                    used: 10,
                    avail: Some(90),
                },
                Disk {
                    mount: "/var".into(),
                    fs: "ext4".into(),
                    total: 1000,
                    used: 931,
                    avail: Some(69),
                },
            ],
            processes: Some(950),
            top: vec![],
        }
    }

    #[test]
    fn every_kind_reads_its_value() {
        let s = sample();
        let v = |k| measure(k, &s).unwrap().value;
        assert_eq!(v(AlertKind::Memory), 73.2);
        assert_eq!(v(AlertKind::Cpu), 97.0);
        assert_eq!(v(AlertKind::Swap), 5.0);
        assert_eq!(v(AlertKind::Load), 12.5);
        assert_eq!(v(AlertKind::Processes), 950.0);
        assert_eq!(v(AlertKind::Uptime), 190.0);
        let disk = measure(AlertKind::Disk, &s).unwrap();
        assert_eq!(disk.mount.as_deref(), Some("/var"));
        assert!((disk.value - 93.1).abs() < 1e-9);
    }

    #[test]
    fn missing_fields_measure_nothing() {
        let mut s = sample();
        s.swap = None;
        s.disks.clear();
        s.load = None;
        assert_eq!(measure(AlertKind::Swap, &s), None);
        assert_eq!(measure(AlertKind::Disk, &s), None);
        assert_eq!(measure(AlertKind::Load, &s), None);
    }

    #[test]
    fn values_and_limits_read_like_the_design() {
        assert_eq!(format_value(AlertKind::Memory, 73.2), "73.2%");
        assert_eq!(format_value(AlertKind::Cpu, 70.0), "70.0%");
        assert_eq!(format_value(AlertKind::Load, 12.5), "12.5");
        assert_eq!(format_value(AlertKind::Processes, 950.0), "950");
        assert_eq!(format_value(AlertKind::Uptime, 190.0), "3m");
        assert_eq!(format_value(AlertKind::Uptime, 45.0), "45s");
        assert_eq!(format_limit(AlertKind::Memory, 50.0), "50%");
        assert_eq!(format_limit(AlertKind::Disk, 92.5), "92.5%");
        assert_eq!(format_limit(AlertKind::Load, 8.0), "8");
        assert_eq!(format_limit(AlertKind::Uptime, 600.0), "10m");
        assert_eq!(format_span(Duration::from_secs(7 * 60 + 20)), "7m");
    }
}
