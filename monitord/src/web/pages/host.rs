//! `/clients/{name}`: one host — charts of CPU, memory, swap, load, processes and each disk
//! over `?range=1h|6h|24h|7d|30d|1y` (default 24h) or `?from=&to=` (unix ms, or
//! `YYYY-MM-DDTHH:MM` in UTC as the custom-range form sends it), read from the history tier
//! that fits ([`series`] with [`POINTS`] buckets, what `/api/v1/…/series` gives for the same
//! range and `points`), with the client's rules as lines and its incidents shaded; its
//! latest top processes, its incidents with the processes at firing, agent, OS, uptime and
//! interval. An unknown client is a 404 page.

use actix_web::{HttpResponse, web};
use askama::Template;
use monitor_core::config::{AlertKind, AlertRule, format_duration};

use super::chart::{self, Limit, Span, Unit};
use super::format;
use super::page::{Frame, IncidentView, PageError, html, param, path_segment};
use crate::alerts::incidents::{self, Incident};
use crate::store::history::series as history_series;
use crate::store::read as samples;
use crate::web::read;
use crate::web::state::WebState;

/// Buckets per chart: about two SVG units each on a 640-wide chart, which two columns of
/// a laptop's screen show at about its own size (so its 11-unit labels stay readable).
pub const POINTS: i64 = 300;
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
/// The most incidents one host page lists.
const INCIDENTS_MAX: i64 = 10_000;

/// The ranges the page links, by name.
pub const RANGES: [(&str, i64); 6] = [
    ("1h", 3_600_000),
    ("6h", 6 * 3_600_000),
    ("24h", 24 * 3_600_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
    ("1y", 365 * 86_400_000),
];

/// The charts, in page order: series key, title, unit, the rule drawn on it.
const CHARTS: [(&str, &str, Unit, AlertKind); 5] = [
    ("cpu_percent", "CPU", Unit::Percent, AlertKind::Cpu),
    ("memory_percent", "Memory", Unit::Percent, AlertKind::Memory),
    ("swap_percent", "Swap", Unit::Percent, AlertKind::Swap),
    ("load1", "Load (1 min)", Unit::Number, AlertKind::Load),
    ("processes", "Processes", Unit::Number, AlertKind::Processes),
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix ms, or `YYYY-MM-DDTHH:MM` (the custom-range form's `datetime-local`) read as UTC.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return (ms >= 0).then_some(ms);
    }
    let (date, clock) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min) = (c.next()??, c.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 {
        return None;
    }
    Some((days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60) * 1000)
}

/// `YYYY-MM-DDTHH:MM` in UTC, what a `datetime-local` input shows.
fn datetime_local(ms: i64) -> String {
    let t = monitor_core::time::Utc::from_unix_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// The range a query asks for: `(from, to, name)`, name `custom` for `from`/`to`.
pub fn range(query: &[(String, String)], now: i64) -> Result<(i64, i64, String), PageError> {
    let custom = |name: &str| -> Result<Option<i64>, PageError> {
        match param(query, name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => parse_time(text).map(Some).ok_or_else(|| {
                PageError::BadParameter(format!(
                    "{name}: {text:?} is not a time: expected unix milliseconds or YYYY-MM-DDTHH:MM (UTC)"
                ))
            }),
        }
    };
    let (from, to) = (custom("from")?, custom("to")?);
    if from.is_some() || to.is_some() {
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - 24 * 3_600_000);
        if from >= to {
            return Err(PageError::BadParameter(format!(
                "from: {} is not before to ({})",
                format::time(from),
                format::time(to)
            )));
        }
        return Ok((from, to, "custom".into()));
    }
    let name = param(query, "range").unwrap_or("24h");
    let span = RANGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, span)| *span)
        .ok_or_else(|| {
            PageError::BadParameter(format!(
                "range: {name:?} is not one of 1h, 6h, 24h, 7d, 30d, 1y"
            ))
        })?;
    Ok((now - span, now, name.to_owned()))
}

/// A rule's lines: its limit, and its clear when that differs.
fn limits(rule: Option<&AlertRule>) -> Vec<Limit> {
    let Some(rule) = rule else {
        return Vec::new();
    };
    let mut out = vec![Limit {
        value: rule.limit,
        kind: "limit",
    }];
    if rule.clear != rule.limit {
        out.push(Limit {
            value: rule.clear,
            kind: "clear",
        });
    }
    out
}

/// One chart as the page shows it.
#[derive(Debug)]
struct ChartView {
    key: String,
    title: String,
    svg: String,
    /// `limit 90% · clear 75%`, or empty.
    lines: String,
}

#[derive(Debug)]
struct RangeLink {
    name: &'static str,
    href: String,
    current: bool,
}

#[derive(Debug)]
struct ProcessView {
    pid: i64,
    name: String,
    cpu: String,
    rss: String,
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    frame: Frame,
    name: String,
    ip: String,
    tags: Vec<String>,
    state: &'static str,
    /// (label, value) facts: agent, OS, uptime, interval, last seen.
    facts: Vec<(&'static str, String)>,
    /// The rules as config.xml says them: `cpu > 90% (clear 75%) for 5m`.
    rules: Vec<String>,
    ranges: Vec<RangeLink>,
    from_local: String,
    to_local: String,
    shown: String,
    tier: String,
    charts: Vec<ChartView>,
    top_when: String,
    top: Vec<ProcessView>,
    incidents: Vec<IncidentView>,
}

fn rule_text(r: &AlertRule) -> String {
    let kind = r.kind.as_str();
    let op = if r.kind.fires_below() { "<" } else { ">" };
    let mut text = format!("{kind} {op} {}", format::rule_value(kind, r.limit));
    if r.clear != r.limit {
        text.push_str(&format!(" (clear {})", format::rule_value(kind, r.clear)));
    }
    if !r.hold.is_zero() {
        text.push_str(&format!(" for {}", format_duration(r.hold)));
    }
    text
}

/// `GET /clients/{name}`.
pub async fn page(
    state: web::Data<WebState>,
    name: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let name = name.into_inner();
    let snapshot = state.shared.snapshot();
    let Some(client) = snapshot.config.client(&name).cloned() else {
        return Err(PageError::UnknownClient(name));
    };
    let now = state.clock.now_ms();
    let (from, to, range_name) = range(&query, now)?;
    let (interval, history) = (client.interval, snapshot.config.history.clone());
    let lookup = name.clone();
    let recent = state.recent.clone();
    let (series, latest, top, incidents, views) = state
        .read(move |conn| {
            let series =
                history_series::series(conn, &lookup, interval, &history, (from, to, POINTS), now)?;
            let latest = recent.latest(conn, &lookup, None)?;
            let top = samples::latest_top(conn, &lookup)?;
            let incidents: Vec<Incident> = incidents::since(conn, from, INCIDENTS_MAX)?
                .into_iter()
                .filter(|i| i.client == lookup)
                .collect();
            let states: Vec<_> = read::alert_states(conn)?
                .into_iter()
                .filter(|s| s.client == lookup)
                .collect();
            Ok((series, latest, top, incidents, states))
        })
        .await?;
    let view = read::ClientView {
        name: name.clone(),
        ip: client.ip.clone(),
        interval_s: client.interval.as_secs(),
        tags: client.tags.clone(),
        rules: vec![],
        latest: latest.clone(),
        alerts: views,
    };
    let rule_of = |kind: AlertKind| client.alerts.iter().find(|r| r.kind == kind);
    // Firing spans by rule, each ending now while it still fires; only those in the range.
    let spans = |rule: &str| -> Vec<Span> {
        incidents
            .iter()
            .filter(|i| i.rule == rule && i.fired_ms < to)
            .map(|i| (i.fired_ms, i.resolved_ms.unwrap_or(now)))
            .collect()
    };
    let (step_ms, tier, mut data) = match series {
        Some(s) => (s.step_ms, s.tier, s.series),
        None => (
            interval.as_millis() as i64,
            String::new(),
            Default::default(),
        ),
    };
    let frame = |unit| chart::Frame {
        width: WIDTH,
        height: HEIGHT,
        from,
        to,
        step_ms,
        unit,
    };
    let disks: Vec<String> = data
        .keys()
        .filter(|k| k.starts_with("disk:"))
        .cloned()
        .collect();
    let mut charts = Vec::new();
    let mut draw = |key: &str, title: String, unit: Unit, kind: AlertKind| {
        let points = data.remove(key).unwrap_or_default();
        let lines = limits(rule_of(kind));
        let svg = chart::chart(&points, &frame(unit), &lines, &spans(kind.as_str()), &title);
        charts.push(ChartView {
            key: key.to_owned(),
            title,
            svg,
            lines: lines
                .iter()
                .map(|l| format!("{} {}", l.kind, unit.format(l.value)))
                .collect::<Vec<_>>()
                .join(" · "),
        });
    };
    for (key, title, unit, kind) in CHARTS {
        draw(key, title.to_owned(), unit, kind);
    }
    for key in disks {
        let title = format!("Disk {}", &key["disk:".len()..]);
        draw(&key, title, Unit::Percent, AlertKind::Disk);
    }
    let s = latest.as_ref();
    let facts = vec![
        ("Address", client.ip.clone()),
        (
            "Agent",
            s.and_then(|s| s.agent.clone())
                .unwrap_or_else(|| "–".into()),
        ),
        (
            "OS",
            s.and_then(|s| s.os.clone()).unwrap_or_else(|| "–".into()),
        ),
        (
            "Host name",
            s.and_then(|s| s.hostname.clone())
                .unwrap_or_else(|| "–".into()),
        ),
        (
            "Uptime",
            s.and_then(|s| s.uptime_s)
                .map_or_else(|| "–".into(), format::duration_s),
        ),
        ("Interval", format_duration(client.interval)),
        ("Last seen", format::ago(s.map(|s| s.ts), now)),
    ];
    let base = format!("/clients/{}", path_segment(&name));
    let page = HostPage {
        frame: Frame::new(name.clone(), "host"),
        state: view.state(),
        name,
        ip: client.ip.clone(),
        tags: client.tags.clone(),
        facts,
        rules: client.alerts.iter().map(rule_text).collect(),
        ranges: RANGES
            .iter()
            .map(|(n, _)| RangeLink {
                name: n,
                href: format!("{base}?range={n}"),
                current: *n == range_name,
            })
            .collect(),
        from_local: datetime_local(from),
        to_local: datetime_local(to),
        shown: format!("{} – {}", format::time(from), format::time(to)),
        tier,
        charts,
        top_when: top
            .as_ref()
            .map(|(ts, _)| format::time(*ts))
            .unwrap_or_default(),
        top: top
            .map(|(_, t)| t)
            .unwrap_or_default()
            .iter()
            .map(|p| ProcessView {
                pid: p.pid,
                name: p.name.clone(),
                cpu: format!("{:.1}%", p.cpu_percent),
                rss: format::bytes(p.rss),
            })
            .collect(),
        incidents: incidents
            .iter()
            .map(|i| IncidentView::new(i, now))
            .collect(),
    };
    html(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_unix_ms_or_utc_datetimes() {
        assert_eq!(parse_time("1767225600000"), Some(1_767_225_600_000));
        assert_eq!(parse_time("2026-01-01T00:00"), Some(1_767_225_600_000));
        assert_eq!(parse_time("1970-01-01T01:30"), Some(5_400_000));
        assert_eq!(parse_time("2026-13-01T00:00"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(datetime_local(1_767_225_600_000), "2026-01-01T00:00");
    }

    #[test]
    fn ranges_by_name_or_from_and_to() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let now = 100 * 86_400_000;
        assert_eq!(
            range(&q(&[]), now).unwrap(),
            (now - 86_400_000, now, "24h".into())
        );
        assert_eq!(
            range(&q(&[("range", "1h")]), now).unwrap().0,
            now - 3_600_000
        );
        assert_eq!(
            range(&q(&[("from", "1000"), ("to", "2000")]), now).unwrap(),
            (1000, 2000, "custom".into())
        );
        assert!(range(&q(&[("range", "2w")]), now).is_err());
        assert!(range(&q(&[("from", "2000"), ("to", "1000")]), now).is_err());
    }
}
