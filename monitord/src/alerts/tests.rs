//! [`Alerts`] on its own: a real SQLite file, a config.xml parsed from text and a manual
//! clock, so `for`, `repeat` and host down are decided in microseconds, not minutes. What a
//! test reads back is what the sender would deliver: the outbox rows.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use monitor_core::{MasterKey, Sample};

use super::Alerts;
use super::tables::{self, OutboxRow};
use crate::clock::Clock;
use crate::state::{Shared, Snapshot};

/// 2026-12-01T00:00:00Z: a fixed start, so subjects and spans do not depend on the day.
const START_MS: i64 = 1_796_083_200_000;

struct Bench {
    dir: PathBuf,
    conn: SqliteConnection,
    alerts: Alerts,
    clock: Clock,
    seq: i64,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bench {
    /// One client `web1` (interval 10 s, mail to ops@test.example) with `rules`.
    fn new(rules: &str) -> Bench {
        let dir = bench_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let xml = format!(
            r#"<monitor><client name="web1" ip="127.0.0.1" username="m" mail="ops@test.example" interval="10s">{rules}</client></monitor>"#
        );
        let path = dir.join("config.xml");
        let config = monitor_core::config::parse_bytes(xml.as_bytes(), &path)
            .unwrap_or_else(|e| panic!("{:?}", e.errors))
            .config;
        let conn = crate::store::open_for_writing(&dir.join("db.sqlite3")).unwrap();
        let shared = Arc::new(Shared::new(Snapshot::new(
            config,
            &MasterKey::from_bytes([7; 32]),
        )));
        let clock = Clock::manual(START_MS);
        Bench {
            dir,
            conn,
            alerts: Alerts::new(shared, clock.clone()),
            clock,
            seq: 0,
        }
    }

    /// A sample collected now with `cpu_percent`, evaluated in its own transaction.
    fn cpu(&mut self, cpu: f64) {
        let ts = self.clock.now_ms();
        self.cpu_at(cpu, ts);
    }

    fn cpu_at(&mut self, cpu: f64, ts: i64) {
        self.seq += 1;
        let json = serde_json::json!({
            "v": 1, "instance": "unit", "seq": self.seq, "ts": ts, "cpu_percent": cpu,
            "memory": {"total": 1000, "used": 500, "available": 500, "percent": 50.0},
        });
        let sample = Sample::parse(json.to_string().as_bytes()).unwrap();
        let alerts = &self.alerts;
        self.conn
            .immediate_transaction(|conn| alerts.evaluate(conn, [("web1", &sample)]))
            .unwrap();
        alerts.committed();
    }

    fn timers(&mut self) {
        let alerts = &self.alerts;
        if alerts.timers_due() {
            self.conn
                .immediate_transaction(|conn| alerts.check_timers(conn))
                .unwrap();
            alerts.timers_committed();
        }
    }

    /// A sample collected `behind_ms` before now arrives (the ingest handler tells the
    /// clock rule), then the timer runs.
    fn clock_sample(&mut self, behind_ms: i64) {
        let now = self.clock.now_ms();
        self.alerts
            .clock_watch()
            .observe("web1", now - behind_ms, now);
        self.cpu_at(5.0, now - behind_ms);
        self.timers();
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Every mail written so far, oldest first.
    fn subjects(&mut self) -> Vec<String> {
        let mut rows: Vec<OutboxRow> = tables::recent_outbox(&mut self.conn, 100).unwrap();
        rows.reverse();
        rows.into_iter().map(|r| r.subject).collect()
    }
}

/// Tests run in parallel threads of one process: each bench gets its own directory.
fn bench_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("monitord-alerts-{}-{n}", std::process::id()))
}

#[test]
fn fires_once_and_resolves_once() {
    let mut b = Bench::new(r#"<alert type="cpu" limit="90%"/>"#);
    b.cpu(95.0);
    b.advance(10);
    b.cpu(96.0);
    assert_eq!(b.subjects(), ["[monitord] FIRING web1: cpu 95.0% > 90%"]);
    b.advance(10);
    b.cpu(40.0);
    b.advance(10);
    b.cpu(30.0);
    assert_eq!(
        b.subjects(),
        [
            "[monitord] FIRING web1: cpu 95.0% > 90%",
            "[monitord] RESOLVED web1: cpu 40.0% ≤ 90%"
        ]
    );
}

#[test]
fn for_waits_on_the_server_clock_and_a_blip_resets_it() {
    let mut b = Bench::new(r#"<alert type="cpu" limit="90%" for="5m"/>"#);
    b.cpu(95.0);
    b.advance(240);
    b.cpu(95.0);
    assert!(b.subjects().is_empty(), "fired before 5 minutes");
    b.cpu(50.0); // the blip: back under the limit
    b.advance(10);
    b.cpu(95.0);
    b.advance(290);
    b.cpu(95.0);
    assert!(b.subjects().is_empty(), "the blip did not reset `for`");
    b.advance(20);
    b.cpu(95.0);
    assert_eq!(b.subjects(), ["[monitord] FIRING web1: cpu 95.0% > 90%"]);
}

#[test]
fn repeat_re_mails_while_firing_and_not_before() {
    let mut b = Bench::new(r#"<alert type="cpu" limit="90%" repeat="1h"/>"#);
    b.cpu(95.0);
    b.advance(3590);
    b.cpu(95.0);
    assert_eq!(b.subjects().len(), 1);
    b.advance(20);
    b.cpu(95.0);
    assert_eq!(b.subjects().len(), 2);
}

#[test]
fn host_down_after_three_minutes_counted_from_start_then_up_again() {
    let mut b = Bench::new("");
    // Never heard from: silence counts from monitord's start.
    b.advance(179);
    b.timers();
    assert!(b.subjects().is_empty());
    b.advance(2);
    b.timers();
    assert_eq!(
        b.subjects(),
        ["[monitord] FIRING web1: down, no sample for 3m"]
    );
    b.timers();
    assert_eq!(b.subjects().len(), 1, "down mailed twice");
    b.advance(240);
    b.cpu(5.0);
    assert_eq!(
        b.subjects()[1],
        "[monitord] RESOLVED web1: up again after 7m"
    );
}

#[test]
fn a_late_sample_is_history_not_evaluated() {
    let mut b = Bench::new(r#"<alert type="cpu" limit="90%"/>"#);
    // 2 × interval is 20 s: a sample 21 s old is an agent draining its spool.
    let old = b.clock.now_ms() - 21_000;
    b.cpu_at(99.0, old);
    assert!(b.subjects().is_empty());
    let recent = b.clock.now_ms() - 19_000;
    b.cpu_at(99.0, recent);
    assert_eq!(b.subjects(), ["[monitord] FIRING web1: cpu 99.0% > 90%"]);
}

#[test]
fn a_clock_that_stays_wrong_for_ten_minutes_is_mailed_and_its_fix_too() {
    let mut b = Bench::new("");
    // 4m12s behind, a sample every 10 s (interval 10 s: 20 s off is allowed), for 10 min.
    for _ in 0..=60 {
        b.clock_sample(252_000);
        b.advance(10);
    }
    assert_eq!(b.subjects(), ["[monitord] FIRING web1: clock 4m12s behind"]);
    b.advance(10);
    b.clock_sample(252_000);
    assert_eq!(b.subjects().len(), 1, "mailed twice");
    b.advance(10);
    b.clock_sample(4_600);
    assert_eq!(
        b.subjects(),
        [
            "[monitord] FIRING web1: clock 4m12s behind",
            "[monitord] RESOLVED web1: clock within 5s"
        ]
    );
}

#[test]
fn a_spool_draining_after_an_outage_is_not_a_wrong_clock() {
    let mut b = Bench::new("");
    b.clock_sample(0);
    // monitord was away for an hour; the agent sends its spool oldest first, quickly, and
    // ends with a current sample.
    b.advance(3600);
    for i in (0..360).rev() {
        b.clock_sample(i * 10_000 + 10_000);
    }
    b.clock_sample(0);
    b.advance(600);
    b.clock_sample(0);
    assert!(b.subjects().is_empty(), "{:?}", b.subjects());
}

#[test]
fn a_clock_ahead_is_mailed_too() {
    let mut b = Bench::new("");

    for _ in 0..62 {
        b.clock_sample(-90_000);
        b.advance(10);
    }
    assert_eq!(b.subjects(), ["[monitord] FIRING web1: clock 1m30s ahead"]);
}
