//! The real static agent feeding a real monitord: samples land in the database with
//! plausible values, `--interval` keeps sending, and a restarted monitord still has them.

use std::time::Duration;

use testkit::agent;
use testkit::monitord::Monitord;
use testkit::util;

use crate::support::{bin, counts};

fn check_plausible(s: &serde_json::Value) {
    let total = s["memory"]["total"].as_i64().unwrap_or(0);
    let used = s["memory"]["used"].as_i64().unwrap_or(-1);
    assert!(total > 0 && (0..=total).contains(&used), "memory: {s}");
    let cpu = s["cpu_percent"].as_f64().unwrap_or(-1.0);
    assert!((0.0..=100.0).contains(&cpu), "cpu_percent: {s}");
    let ts = s["ts"].as_i64().unwrap_or(0);
    assert!(
        (testkit::monitord::now_ms() - ts).abs() < 10 * 60 * 1000,
        "ts: {s}"
    );
}

#[test]
fn agent_samples_are_stored_and_survive_a_restart() {
    let mut m = Monitord::start(bin(), &["web1"]);
    let state = util::temp_dir("agent");
    let settings = m.agent_settings("web1");
    for _ in 0..3 {
        agent::once(&settings, state.path());
    }
    let stored = m.samples("web1");
    assert_eq!(
        stored.len(),
        3,
        "three --once runs, three samples: {stored:?}"
    );
    stored.iter().for_each(check_plausible);

    let running = agent::Running::start(&settings, state.path(), &["--interval", "1"]);
    util::wait_until(
        Duration::from_secs(30),
        "three samples from --interval 1",
        || {
            std::thread::sleep(Duration::from_millis(250));
            m.samples("web1").len() >= 6
        },
    );
    let agent_log = running.stop();
    let before = counts(&m.samples("web1"));
    assert!(
        before.values().all(|&n| n == 1),
        "stored twice: {before:?}\n{agent_log}"
    );

    // A clean stop (SIGTERM) and a crash both keep what was stored.
    assert!(
        m.terminate().success(),
        "SIGTERM exit status; stderr:\n{}",
        m.stderr()
    );
    m.spawn();
    assert_eq!(
        counts(&m.samples("web1")),
        before,
        "after SIGTERM and start"
    );
    m.restart();
    assert_eq!(
        counts(&m.samples("web1")),
        before,
        "after kill -9 and start"
    );

    let stats = m.stats();
    assert_eq!(
        stats["samples"].as_u64(),
        Some(before.len() as u64),
        "stats: {stats}"
    );
    assert!(
        stats["db_bytes"].as_u64().unwrap_or(0) > 0,
        "stats: {stats}"
    );

    // And the restarted daemon takes new samples from the same agent state directory.
    agent::once(&m.agent_settings("web1"), state.path());
    assert_eq!(m.samples("web1").len(), before.len() + 1);
}

#[test]
fn clients_lists_the_client_with_its_last_sample() {
    let m = Monitord::start(bin(), &["web1"]);
    let state = util::temp_dir("agent");
    agent::once(&m.agent_settings("web1"), state.path());
    let table = m.command_ok(&["clients"]);
    assert!(table.contains("web1"), "{table}");
    let table = m.command_ok(&["samples", "web1", "--since", "1h"]);
    assert!(
        table.lines().count() >= 2,
        "a header and one sample: {table}"
    );
}
