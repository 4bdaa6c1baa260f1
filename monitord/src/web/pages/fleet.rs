//! `/`: every client in one table — state by colour and by word, CPU, memory, swap, the
//! fullest disk, load, uptime, last seen, and a sparkline of the last hour's CPU — firing and
//! down hosts first. `?sort=` (a column; `-` before it reverses), `?q=` (filter by name,
//! address, tag or state) and `?group=tag` work without JavaScript; `?partial=1` answers the
//! table alone (templates/fleet_partial.html, which the full page includes), which the
//! page's script fetches every interval to refresh in place.
//!
//! Nothing here reads a sample from the database: each client's newest sample and its last
//! hour of CPU come from memory ([`crate::store::recent`]), so the page costs the same with
//! sparklines for 500 hosts as without (they were limited to 25 hosts when each cost a read).

use std::cmp::Ordering;

use actix_web::{HttpResponse, web};
use askama::Template;

use super::page::{Frame, PageError, html, param, path_segment, query_value};
use super::{chart, format};
use crate::store::recent::HOUR_MS;
use crate::web::read::{self, ClientView};
use crate::web::state::WebState;

/// One client's row.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub href: String,
    pub ip: String,
    pub tags: Vec<String>,
    pub state: &'static str,
    /// The rules not ok, `cpu firing`, for the state cell's title.
    pub why: String,
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    pub swap: Option<f64>,
    pub disk: Option<f64>,
    pub disk_mount: String,
    pub load: Option<f64>,
    pub uptime_s: Option<i64>,
    pub last_ms: Option<i64>,
    pub spark: String,
    pub cpu_text: String,
    pub memory_text: String,
    pub swap_text: String,
    pub disk_text: String,
    pub load_text: String,
    pub uptime_text: String,
    pub last_text: String,
    pub last_title: String,
}

/// Firing first, then down, pending, never seen, ok.
fn rank(state: &str) -> u8 {
    match state {
        "firing" => 0,
        "down" => 1,
        "pending" => 2,
        "never" => 3,
        _ => 4,
    }
}

impl Row {
    fn new(c: &ClientView, spark: String, now: i64) -> Row {
        let s = c.latest.as_ref();
        let disk = s.and_then(|s| s.fullest_disk());
        let cpu = s.map(|s| s.cpu_percent);
        let memory = s.map(|s| s.memory.percent);
        let swap = s.and_then(|s| s.swap.as_ref().map(|w| w.percent));
        let load = s.and_then(|s| s.load.map(|l| l[0]));
        let uptime_s = s.and_then(|s| s.uptime_s);
        let last_ms = s.map(|s| s.ts);
        Row {
            name: c.name.clone(),
            href: format!("/clients/{}", path_segment(&c.name)),
            ip: c.ip.clone(),
            tags: c.tags.clone(),
            state: c.state(),
            why: c
                .alerts
                .iter()
                .map(|a| format!("{} {}", a.rule, a.phase))
                .collect::<Vec<_>>()
                .join(", "),
            cpu,
            memory,
            swap,
            disk: disk.map(|d| d.percent()),
            disk_mount: disk.map(|d| d.mount.clone()).unwrap_or_default(),
            load,
            uptime_s,
            last_ms,
            spark,
            cpu_text: format::percent(cpu),
            memory_text: format::percent(memory),
            swap_text: format::percent(swap),
            disk_text: format::percent(disk.map(|d| d.percent())),
            load_text: format::number(load),
            uptime_text: uptime_s.map_or_else(|| "–".into(), format::duration_s),
            last_text: format::ago(last_ms, now),
            last_title: last_ms.map(format::time).unwrap_or_default(),
        }
    }

    fn matches(&self, q: &str) -> bool {
        q.split_whitespace().all(|word| {
            let word = word.to_lowercase();
            self.name.to_lowercase().contains(&word)
                || self.ip.to_lowercase().contains(&word)
                || self.state == word
                || self.tags.iter().any(|t| t.contains(&word))
        })
    }
}

/// The sortable columns: query name and header.
const COLUMNS: [(&str, &str); 10] = [
    ("state", "State"),
    ("name", "Host"),
    ("cpu", "CPU"),
    ("memory", "Memory"),
    ("swap", "Swap"),
    ("disk", "Disk"),
    ("load", "Load"),
    ("uptime", "Uptime"),
    ("last", "Last seen"),
    ("", "Last hour CPU"),
];

/// `a` against `b` with missing values last whichever way the column sorts.
fn cmp_opt<T: PartialOrd>(a: Option<T>, b: Option<T>, descending: bool) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => {
            let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if descending { o.reverse() } else { o }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Sorts by `key`: names A→Z, numbers worst (highest) first, uptime shortest first (a
/// reboot), last seen oldest first; `reverse` turns it around, with missing values still
/// last. Ties: state, then name.
pub fn sort(rows: &mut [Row], key: &str, reverse: bool) {
    rows.sort_by(|a, b| {
        let by_state = rank(a.state).cmp(&rank(b.state));
        let by_name = a.name.cmp(&b.name);
        let flip = |o: Ordering| if reverse { o.reverse() } else { o };
        let primary = match key {
            "name" => flip(by_name),
            "cpu" => cmp_opt(a.cpu, b.cpu, !reverse),
            "memory" => cmp_opt(a.memory, b.memory, !reverse),
            "swap" => cmp_opt(a.swap, b.swap, !reverse),
            "disk" => cmp_opt(a.disk, b.disk, !reverse),
            "load" => cmp_opt(a.load, b.load, !reverse),
            "uptime" => cmp_opt(a.uptime_s, b.uptime_s, reverse),
            "last" => cmp_opt(a.last_ms, b.last_ms, reverse),
            _ => flip(by_state),
        };
        primary.then(by_state).then(by_name)
    });
}

/// A group of rows under a tag (or one group, untitled, when not grouping).
#[derive(Debug, Clone)]
pub struct Group {
    pub title: String,
    pub rows: Vec<Row>,
}

/// A column header: its text, the link that sorts by it, and `aria-sort`.
#[derive(Debug, Clone)]
pub struct Header {
    pub label: &'static str,
    pub href: String,
    pub aria_sort: &'static str,
    pub arrow: &'static str,
}

/// What both the page and its fragment render.
#[derive(Debug, Clone)]
pub struct Table {
    pub groups: Vec<Group>,
    pub headers: Vec<Header>,
    pub shown: usize,
    pub total: usize,
    /// `(state, count)` of the shown clients, in rank order, counts above 0.
    pub counts: Vec<(&'static str, usize)>,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    frame: Frame,
    t: Table,
    q: String,
    sort: String,
    grouped: bool,
    refresh_s: u64,
}

#[derive(Template)]
#[template(path = "fleet_partial.html")]
struct FleetPartial {
    t: Table,
}

/// The query of the page with `sort` replaced: what a header links to.
fn link(q: &str, sort: &str, grouped: bool) -> String {
    let mut parts = vec![format!("sort={}", query_value(sort))];
    if !q.is_empty() {
        parts.push(format!("q={}", query_value(q)));
    }
    if grouped {
        parts.push("group=tag".into());
    }
    format!("/?{}", parts.join("&amp;"))
}

fn headers(q: &str, sort: &str, grouped: bool) -> Vec<Header> {
    let (current, reverse) = match sort.strip_prefix('-') {
        Some(key) => (key, true),
        None => (sort, false),
    };
    COLUMNS
        .iter()
        .map(|&(key, label)| {
            let active = !key.is_empty() && key == current;
            let next = if active && !reverse {
                format!("-{key}")
            } else {
                key.to_owned()
            };
            Header {
                label,
                href: if key.is_empty() {
                    String::new()
                } else {
                    link(q, &next, grouped)
                },
                // Names ascend; numbers sort worst first, i.e. descending.
                aria_sort: match (
                    active,
                    key == "name" || key == "uptime" || key == "last",
                    reverse,
                ) {
                    (false, _, _) => "none",
                    (true, asc, rev) if asc != rev => "ascending",
                    _ => "descending",
                },
                arrow: match (active, reverse) {
                    (false, _) => "",
                    (true, false) => " ▾",
                    (true, true) => " ▴",
                },
            }
        })
        .collect()
}

/// Rows into groups: one per tag (a host with two tags is in both), `untagged` last.
fn group(rows: Vec<Row>, by_tag: bool) -> Vec<Group> {
    if !by_tag {
        return vec![Group {
            title: String::new(),
            rows,
        }];
    }
    let mut tags: Vec<&String> = rows.iter().flat_map(|r| r.tags.iter()).collect();
    tags.sort();
    tags.dedup();
    let mut groups: Vec<Group> = tags
        .iter()
        .map(|tag| Group {
            title: (*tag).clone(),
            rows: rows
                .iter()
                .filter(|r| r.tags.contains(tag))
                .cloned()
                .collect(),
        })
        .collect();
    let untagged: Vec<Row> = rows.into_iter().filter(|r| r.tags.is_empty()).collect();
    if !untagged.is_empty() {
        groups.push(Group {
            title: "untagged".into(),
            rows: untagged,
        });
    }
    groups
}

/// `GET /`.
pub async fn page(
    state: web::Data<WebState>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let q = param(&query, "q").unwrap_or("").trim().to_owned();
    let sort_key = param(&query, "sort").unwrap_or("state").to_owned();
    let grouped = param(&query, "group") == Some("tag");
    let partial = param(&query, "partial") == Some("1");
    let snapshot = state.shared.snapshot();
    let now = state.clock.now_ms();
    let refresh_s = snapshot
        .config
        .clients
        .iter()
        .map(|c| c.interval.as_secs())
        .min()
        .unwrap_or(60)
        .clamp(5, 60);
    let filter = q.clone();
    let recent = state.recent.clone();
    let (rows, total) = state
        .read(move |conn| {
            let views = read::fleet(conn, &snapshot.config, &recent, Some(now))?;
            let total = views.len();
            let rows: Vec<Row> = views
                .iter()
                .map(|c| Row::new(c, String::new(), now))
                .filter(|row| filter.is_empty() || row.matches(&filter))
                .map(|mut row| {
                    let points = recent.cpu_hour(&row.name, now);
                    row.spark = chart::sparkline(&points, now - HOUR_MS, now);
                    row
                })
                .collect();
            Ok((rows, total))
        })
        .await?;
    let (key, reverse) = match sort_key.strip_prefix('-') {
        Some(key) => (key, true),
        None => (sort_key.as_str(), false),
    };
    let mut rows = rows;
    sort(&mut rows, key, reverse);
    let mut counts: Vec<(&'static str, usize)> = ["firing", "down", "pending", "never", "ok"]
        .iter()
        .map(|s| (*s, rows.iter().filter(|r| r.state == *s).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort_by_key(|(s, _)| rank(s));
    let t = Table {
        headers: headers(&q, &sort_key, grouped),
        shown: rows.len(),
        total,
        counts,
        groups: group(rows, grouped),
    };
    if partial {
        return html(&FleetPartial { t });
    }
    html(&FleetPage {
        frame: Frame::new("Fleet", "fleet"),
        t,
        q,
        sort: sort_key,
        grouped,
        refresh_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: &'static str, cpu: Option<f64>) -> Row {
        let mut r = Row::new(
            &ClientView {
                name: name.into(),
                ip: "10.0.0.1".into(),
                interval_s: 10,
                tags: vec!["web".into()],
                rules: vec![],
                latest: None,
                alerts: vec![],
            },
            String::new(),
            0,
        );
        r.state = state;
        r.cpu = cpu;
        r
    }

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn firing_and_down_come_first_then_columns_sort_worst_first() {
        let mut rows = vec![
            row("a", "ok", Some(90.0)),
            row("b", "down", None),
            row("c", "firing", Some(10.0)),
            row("d", "never", None),
            row("e", "pending", Some(50.0)),
        ];
        sort(&mut rows, "state", false);
        assert_eq!(names(&rows), ["c", "b", "e", "d", "a"]);
        sort(&mut rows, "cpu", false);
        assert_eq!(names(&rows), ["a", "e", "c", "b", "d"], "no value last");
        sort(&mut rows, "cpu", true);
        assert_eq!(names(&rows), ["c", "e", "a", "b", "d"]);
        sort(&mut rows, "name", false);
        assert_eq!(names(&rows), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn the_filter_matches_names_tags_and_states() {
        let r = row("web-01", "firing", None);
        assert!(r.matches("web"));
        assert!(r.matches("WEB firing"));
        assert!(!r.matches("db"));
        assert!(r.matches("10.0.0"));
    }
}
