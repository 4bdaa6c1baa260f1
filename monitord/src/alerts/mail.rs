//! What an alert mail says: the subject exactly as DESIGN.md's table gives it, and a plain-text
//! body with the client, its address, the rule, value, limit, since when, the last few samples
//! and, for cpu, memory and swap, the processes that use most of it.
//!
//! Not here: headers (Date, Message-ID, From are added when sending, see [`super::sender`]).

use std::fmt::Write as _;
use std::time::Duration;

use monitor_core::Sample;
use monitor_core::config::{AlertKind, AlertRule, format_duration};
use monitor_core::sample::TopProcess;
use monitor_core::time::Utc;

use super::machine::Notice;
use super::measure::{Measure, comparison, format_limit, format_span, format_value};

/// A rendered mail, before headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// Who the mail is about.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo<'a> {
    pub name: &'a str,
    pub address: &'a str,
}

/// A threshold rule's mail: FIRING (first or repeat) or RESOLVED.
#[derive(Debug, Clone, Copy)]
pub struct ThresholdMail<'a> {
    pub client: ClientInfo<'a>,
    pub rule: &'a AlertRule,
    pub notice: Notice,
    pub measure: &'a Measure,
    /// When the value first crossed the limit.
    pub since_ms: i64,
    pub now_ms: i64,
    /// Oldest first; the sample just evaluated is the last.
    pub recent: &'a [Sample],
    /// The latest `top` monitord has for the client.
    pub top: &'a [TopProcess],
}

pub fn threshold(m: &ThresholdMail<'_>) -> Mail {
    let kind = m.rule.kind;
    let what = match &m.measure.mount {
        Some(mount) => format!("{kind} {mount}"),
        None => kind.to_string(),
    };
    let resolved = m.notice == Notice::Resolved;
    let word = if resolved { "RESOLVED" } else { "FIRING" };
    let mut subject = format!(
        "[monitord] {word} {}: {what} {}",
        m.client.name,
        comparison(m.rule, m.measure.value, resolved)
    );
    if kind == AlertKind::Uptime && m.notice != Notice::Resolved {
        subject.push_str(" (rebooted)");
    }

    let mut body = String::new();
    let state = match m.notice {
        Notice::Firing => "FIRING",
        Notice::Repeat => "FIRING (still)",
        Notice::Resolved => "RESOLVED",
    };
    header_lines(&mut body, m.client, state);
    let _ = writeln!(body, "Rule:     {}", describe_rule(m.rule));
    let _ = writeln!(
        body,
        "Value:    {what} {}",
        format_value(kind, m.measure.value)
    );
    let _ = writeln!(body, "Limit:    {}", format_limit(kind, m.rule.limit));
    if m.rule.clear != m.rule.limit {
        let _ = writeln!(body, "Clear:    {}", format_limit(kind, m.rule.clear));
    }
    let span = format_span(ago(m.since_ms, m.now_ms));
    let since = Utc::from_unix_ms(m.since_ms);
    let _ = if m.notice == Notice::Resolved {
        writeln!(body, "Since:    {since} (lasted {span})")
    } else {
        writeln!(body, "Since:    {since} ({span} ago)")
    };
    if matches!(kind, AlertKind::Cpu | AlertKind::Memory | AlertKind::Swap) {
        top_table(&mut body, kind, m.top);
    }
    samples_table(&mut body, m.recent);
    Mail { subject, body }
}

/// The built-in host-down rule's mail.
#[derive(Debug, Clone, Copy)]
pub struct HostDownMail<'a> {
    pub client: ClientInfo<'a>,
    /// Firing: silent this long; resolved: was down this long.
    pub silence: Duration,
    pub down: bool,
    /// When the silence began: the last sample's arrival, or monitord's start if later.
    pub last_seen_ms: i64,
    pub threshold: Duration,
    pub recent: &'a [Sample],
}

pub fn host_down(m: &HostDownMail<'_>) -> Mail {
    let span = format_span(m.silence);
    let subject = if m.down {
        format!(
            "[monitord] FIRING {}: down, no sample for {span}",
            m.client.name
        )
    } else {
        format!(
            "[monitord] RESOLVED {}: up again after {span}",
            m.client.name
        )
    };
    let mut body = String::new();
    header_lines(&mut body, m.client, if m.down { "DOWN" } else { "UP" });
    let _ = writeln!(
        body,
        "Rule:     down (built in): no sample for {} (3 × interval, at least 3m)",
        format_duration(m.threshold)
    );
    // Silence is counted from the last sample or monitord's own start, whichever is later.
    let _ = writeln!(
        body,
        "Silent:   since {} ({span})",
        Utc::from_unix_ms(m.last_seen_ms)
    );
    samples_table(&mut body, m.recent);
    Mail { subject, body }
}

/// The built-in clock rule's mail.
#[derive(Debug, Clone, Copy)]
pub struct ClockMail<'a> {
    pub client: ClientInfo<'a>,
    /// Server clock minus the client's on the newest sample: positive when it is behind.
    pub offset_ms: i64,
    pub firing: bool,
    /// When the offset was first seen (firing), or when it began (resolved).
    pub since_ms: i64,
    /// 2 × the client's interval: how far off a clock may be.
    pub allowed: Duration,
}

pub fn clock(m: &ClockMail<'_>) -> Mail {
    let offset = super::skew::describe(m.offset_ms);
    let subject = if m.firing {
        format!("[monitord] FIRING {}: clock {offset}", m.client.name)
    } else {
        let within = (m.offset_ms.unsigned_abs() + 500) / 1000;
        format!(
            "[monitord] RESOLVED {}: clock within {}",
            m.client.name,
            format_duration(Duration::from_secs(within.max(1)))
        )
    };
    let mut body = String::new();
    header_lines(
        &mut body,
        m.client,
        if m.firing { "CLOCK OFF" } else { "CLOCK RIGHT" },
    );
    let _ = writeln!(
        body,
        "Rule:     clock (built in): the newest samples' time is more than {} from monitord's",
        format_duration(m.allowed)
    );
    let _ = writeln!(body, "Offset:   {offset} (on the newest sample)");
    let _ = writeln!(body, "Since:    {}", Utc::from_unix_ms(m.since_ms));
    if m.firing {
        let _ = writeln!(body);
        let _ = writeln!(
            body,
            "While its clock is off, this client's samples are stored but not checked against\n\
             its alert limits (they look like history). Check time synchronisation on the\n\
             client: `timedatectl` (NTP service active, System clock synchronized: yes)."
        );
    }
    Mail { subject, body }
}

/// The mail of `monitord send-test-mail`.
pub fn test_mail(from_host: &str) -> Mail {
    Mail {
        subject: "[monitord] test mail".into(),
        body: format!(
            "This is a test mail from monitord on {from_host}.\n\
             If you read this, alert mail from this host reaches you.\n"
        ),
    }
}

fn header_lines(body: &mut String, client: ClientInfo<'_>, state: &str) {
    let _ = writeln!(body, "Client:   {}", client.name);
    let _ = writeln!(body, "Address:  {}", client.address);
    let _ = writeln!(body, "State:    {state}");
}

fn describe_rule(rule: &AlertRule) -> String {
    let kind = rule.kind;
    let op = if kind.fires_below() { "<" } else { ">" };
    let mut text = format!("{kind} {op} {}", format_limit(kind, rule.limit));
    if rule.clear != rule.limit {
        let _ = write!(text, ", clear at {}", format_limit(kind, rule.clear));
    }
    if !rule.hold.is_zero() {
        let _ = write!(text, ", for {}", format_duration(rule.hold));
    }
    if let Some(every) = rule.repeat {
        let _ = write!(text, ", repeat every {}", format_duration(every));
    }
    text
}

/// The processes most responsible: by CPU for a cpu alert, by resident memory for memory
/// and swap (swap use follows RSS pressure; the agent reports no per-process swap).
fn top_table(body: &mut String, kind: AlertKind, top: &[TopProcess]) {
    let _ = writeln!(body);
    if top.is_empty() {
        let _ = writeln!(body, "Top processes: the agent reported none.");
        return;
    }
    let mut procs: Vec<&TopProcess> = top.iter().collect();
    if kind == AlertKind::Cpu {
        procs.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
        let _ = writeln!(body, "Top processes by CPU:");
    } else {
        procs.sort_by_key(|p| std::cmp::Reverse(p.rss));
        let _ = writeln!(body, "Top processes by memory (RSS):");
    }
    let _ = writeln!(body, "  {:>8}  {:>7}  {:>10}  NAME", "PID", "CPU%", "RSS");
    for p in procs.iter().take(5) {
        let _ = writeln!(
            body,
            "  {:>8}  {:>7.1}  {:>10}  {}",
            p.pid,
            p.cpu_percent,
            format_bytes(p.rss),
            p.name
        );
    }
}

fn samples_table(body: &mut String, recent: &[Sample]) {
    let _ = writeln!(body);
    if recent.is_empty() {
        let _ = writeln!(body, "Last samples: none received since monitord started.");
        return;
    }
    let _ = writeln!(body, "Last samples (collected at, client clock):");
    let _ = writeln!(
        body,
        "  {:<23}  {:>6}  {:>6}  {:>6}  {:>6}  {:>14}  {:>6}  {:>8}",
        "TIME", "CPU%", "MEM%", "SWAP%", "LOAD1", "DISK (fullest)", "PROCS", "UPTIME"
    );
    for s in recent {
        let dash = || "-".to_string();
        let swap = s
            .swap
            .as_ref()
            .map_or_else(dash, |w| format!("{:.1}", w.percent));
        let load = s.load.map_or_else(dash, |l| format!("{:.2}", l[0]));
        let disk = s
            .fullest_disk()
            .map_or_else(dash, |d| format!("{} {:.1}", d.mount, d.percent()));
        let procs = s.processes.map_or_else(dash, |p| p.to_string());
        let uptime = s.uptime_s.map_or_else(dash, |u| {
            format_duration(Duration::from_secs(u.max(0) as u64))
        });
        let _ = writeln!(
            body,
            "  {:<23}  {:>6.1}  {:>6.1}  {:>6}  {:>6}  {:>14}  {:>6}  {:>8}",
            Utc::from_unix_ms(s.ts),
            s.cpu_percent,
            s.memory.percent,
            swap,
            load,
            disk,
            procs,
            uptime
        );
    }
}

fn ago(then_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis((now_ms - then_ms).max(0) as u64)
}

fn format_bytes(bytes: i64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes.max(0) as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::measure::measure;

    fn rule(kind: AlertKind, limit: f64, clear: f64) -> AlertRule {
        AlertRule {
            kind,
            limit,
            clear,
            hold: Duration::ZERO,
            repeat: None,
        }
    }

    fn subject(kind: AlertKind, limit: f64, clear: f64, notice: Notice, value: f64) -> String {
        let mut s = crate::alerts::measure::tests::sample();
        s.memory.percent = value;
        s.cpu_percent = value;
        s.load = Some([value, 0.0, 0.0]);
        s.processes = Some(value as i64);
        s.uptime_s = Some(value as i64);
        let m = measure(kind, &s).unwrap();
        let r = rule(kind, limit, clear);
        threshold(&ThresholdMail {
            client: ClientInfo {
                name: "web1",
                address: "10.0.0.11",
            },
            rule: &r,
            notice,
            measure: &m,
            since_ms: 0,
            now_ms: 60_000,
            recent: std::slice::from_ref(&s),
            top: &[],
        })
        .subject
    }

    #[test]
    fn subjects_match_the_design_table() {
        use AlertKind::*;
        use Notice::*;
        let cases = [
            (
                Memory,
                50.0,
                50.0,
                Firing,
                73.2,
                "FIRING web1: memory 73.2% > 50%",
            ),
            (
                Cpu,
                90.0,
                90.0,
                Repeat,
                97.0,
                "FIRING web1: cpu 97.0% > 90%",
            ),
            (Load, 8.0, 8.0, Firing, 12.5, "FIRING web1: load 12.5 > 8"),
            (
                Processes,
                900.0,
                900.0,
                Firing,
                950.0,
                "FIRING web1: processes 950 > 900",
            ),
            (
                Uptime,
                600.0,
                600.0,
                Firing,
                180.0,
                "FIRING web1: uptime 3m < 10m (rebooted)",
            ),
            (
                Memory,
                50.0,
                50.0,
                Resolved,
                41.0,
                "RESOLVED web1: memory 41.0% ≤ 50%",
            ),
            (
                Cpu,
                90.0,
                75.0,
                Resolved,
                70.0,
                "RESOLVED web1: cpu 70.0% ≤ 75%",
            ),
            (
                Uptime,
                600.0,
                600.0,
                Resolved,
                600.0,
                "RESOLVED web1: uptime 10m ≥ 10m",
            ),
            (
                Disk,
                90.0,
                90.0,
                Firing,
                0.0,
                "FIRING web1: disk /var 93.1% > 90%",
            ),
        ];
        for (kind, limit, clear, notice, value, want) in cases {
            assert_eq!(
                subject(kind, limit, clear, notice, value),
                format!("[monitord] {want}")
            );
        }
    }

    #[test]
    fn host_down_subjects() {
        let m = |down, secs| {
            host_down(&HostDownMail {
                client: ClientInfo {
                    name: "web1",
                    address: "10.0.0.11",
                },
                silence: Duration::from_secs(secs),
                down,
                last_seen_ms: 0,
                threshold: Duration::from_secs(180),
                recent: &[],
            })
            .subject
        };
        assert_eq!(
            m(true, 185),
            "[monitord] FIRING web1: down, no sample for 3m"
        );
        assert_eq!(m(false, 430), "[monitord] RESOLVED web1: up again after 7m");
    }

    #[test]
    fn cpu_mail_names_the_busiest_process_first() {
        let mut s = crate::alerts::measure::tests::sample();
        s.top = vec![
            TopProcess {
                pid: 10,
                name: "sshd".into(),
                cpu_percent: 1.0,
                rss: 900 << 20,
            },
            TopProcess {
                pid: 4242,
                name: "stress-ng".into(),
                cpu_percent: 95.0,
                rss: 1 << 20,
            },
        ];
        let r = rule(AlertKind::Cpu, 90.0, 90.0);
        let m = measure(AlertKind::Cpu, &s).unwrap();
        let mail = threshold(&ThresholdMail {
            client: ClientInfo {
                name: "web1",
                address: "10.0.0.11",
            },
            rule: &r,
            notice: Notice::Firing,
            measure: &m,
            since_ms: 0,
            now_ms: 0,
            recent: std::slice::from_ref(&s),
            top: &s.top,
        });
        let cpu_line = mail.body.lines().position(|l| l.contains("stress-ng"));
        let sshd_line = mail.body.lines().position(|l| l.contains("sshd"));
        assert!(cpu_line.unwrap() < sshd_line.unwrap(), "{}", mail.body);
        assert!(mail.body.contains("Address:  10.0.0.11"));
    }
}
