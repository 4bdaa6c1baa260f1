//! `/metrics`: DESIGN.md's names with the values of real samples, passing
//! `promtool check metrics` (Debian's `prometheus`; in CI a missing promtool fails).

use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::monitord::sample;
use testkit::util;

use super::fleet_with_an_alert;

fn promtool_available() -> bool {
    Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn metrics_name_monitord_and_every_client_and_pass_promtool() {
    let mut m = fleet_with_an_alert(r#"listen="127.0.0.1:0""#);
    m.spawn();
    let ts = m.now_ms();
    assert_eq!(
        m.put_sample("web1", &sample("metrics", 1, ts))
            .unwrap()
            .status,
        200
    );
    // One refusal, so requests_total has two statuses.
    assert_eq!(m.put("web1", b"not base64!").unwrap().status, 400);

    let scrape = m.web_get("/metrics", &[]).unwrap();
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = scrape.text();
    let seconds = ts as f64 / 1000.0;
    for line in [
        "monitord_requests_total{status=\"200\"} 1".to_owned(),
        "monitord_requests_total{status=\"400\"} 1".into(),
        "monitord_samples_stored_total 1".into(),
        "monitord_writer_queue_depth 0".into(),
        "monitord_commit_duration_seconds_count 1".into(),
        "monitord_commit_duration_seconds_bucket{le=\"+Inf\"} 1".into(),
        "monitord_alerts{phase=\"firing\"} 1".into(),
        "monitord_alerts{phase=\"pending\"} 0".into(),
        "monitord_client_up{client=\"web1\"} 1".into(),
        "monitord_client_up{client=\"db1\"} 0".into(),
        format!("monitord_client_last_sample_timestamp_seconds{{client=\"web1\"}} {seconds}"),
        "monitord_client_cpu_percent{client=\"web1\"} 12.5".into(),
        "monitord_client_memory_percent{client=\"web1\"} 25".into(),
        "monitord_client_swap_percent{client=\"web1\"} 0".into(),
        "monitord_client_load1{client=\"web1\"} 0.5".into(),
        "monitord_alert_firing{client=\"web1\",rule=\"processes\"} 1".into(),
        "monitord_alert_firing{client=\"web1\",rule=\"down\"} 0".into(),
        "monitord_alert_firing{client=\"db1\",rule=\"down\"} 0".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    for prefix in [
        "monitord_client_disk_used_percent{client=\"web1\",mount=\"/\"} 52.6",
        "monitord_outbox_mails{state=\"pending\"} ",
        "monitord_background_writes_seconds_total ",
        "monitord_database_bytes ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(prefix)),
            "no {prefix:?} in:\n{text}"
        );
    }
    // A client that never sent has `up` 0 and no values.
    assert!(
        !text.contains("monitord_client_cpu_percent{client=\"db1\"}"),
        "{text}"
    );

    if !util::runnable(
        promtool_available(),
        "promtool not found (Debian package prometheus)",
    ) {
        return;
    }
    let out = testkit::process::output_within(
        Command::new("promtool").args(["check", "metrics"]),
        text.as_bytes(),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("promtool: {e}"));
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    m.terminate();
}
