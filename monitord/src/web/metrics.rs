//! `GET /metrics`: the Prometheus text format (version 0.0.4), with exactly the metric names of
//! DESIGN.md, so one scrape of monitord shows its own health and the whole fleet.
//!
//! monitord's own counters come from shared atomics ([`crate::telemetry`], the writer's
//! [`WriterGauges`]); the rest is read per scrape: the outbox and alert states, the database
//! size, each client's latest sample. Not here: storing anything (a scrape only reads).

use std::fmt::Write as _;

use actix_web::{HttpResponse, web};

use super::error::ApiError;
use super::read::{self, ClientView, Health};
use super::state::WebState;
use crate::alerts::tables::HOST_DOWN_RULE;
use crate::store::writer::WriterGauges;
use crate::telemetry::RequestCounts;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(state: web::Data<WebState>) -> Result<HttpResponse, ApiError> {
    let (snapshot, recent) = (state.shared.snapshot(), state.recent.clone());
    let (health, clients) = state
        .read(move |conn| {
            let clients = read::fleet(conn, &snapshot.config, &recent, None)?;
            Ok((read::health(conn)?, clients))
        })
        .await?;
    let mut out = Exposition::default();
    own(
        &mut out,
        &state.requests,
        state.writer.stored_total(),
        state.writer.gauges(),
        &health,
        &clients,
    );
    fleet(&mut out, &clients);
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(out.0))
}

/// The text being built.
#[derive(Debug, Default)]
pub struct Exposition(pub String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn number(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

fn own(
    out: &mut Exposition,
    requests: &RequestCounts,
    stored: u64,
    writer: &WriterGauges,
    health: &Health,
    clients: &[ClientView],
) {
    out.family(
        "monitord_requests_total",
        "counter",
        "Ingest requests (PUT /v1/samples) answered since start, by HTTP status.",
    );
    for (status, n) in requests.snapshot() {
        out.sample(
            "monitord_requests_total",
            &[("status", &status.to_string())],
            n as f64,
        );
    }
    out.family(
        "monitord_samples_stored_total",
        "counter",
        "Samples newly stored since start.",
    );
    out.sample("monitord_samples_stored_total", &[], stored as f64);
    out.family(
        "monitord_writer_queue_depth",
        "gauge",
        "Samples waiting for the writer's next batch.",
    );
    let queued = writer.queued.load(std::sync::atomic::Ordering::Relaxed);
    out.sample("monitord_writer_queue_depth", &[], queued as f64);

    let h = writer.commit_duration.snapshot();
    out.family(
        "monitord_commit_duration_seconds",
        "histogram",
        "Time to commit one batch of samples (storing, alerts, fsync).",
    );
    for (le, n) in &h.buckets {
        out.sample(
            "monitord_commit_duration_seconds_bucket",
            &[("le", &number(*le))],
            *n as f64,
        );
    }
    out.sample("monitord_commit_duration_seconds_sum", &[], h.sum_seconds);
    out.sample(
        "monitord_commit_duration_seconds_count",
        &[],
        h.count as f64,
    );
    out.family(
        "monitord_background_writes_seconds_total",
        "counter",
        "Time the writer spent on the background passes' writes (compaction, rollups, expiry, \
         alert timers), commits included.",
    );
    out.sample(
        "monitord_background_writes_seconds_total",
        &[],
        writer.background().as_secs_f64(),
    );

    out.family(
        "monitord_outbox_mails",
        "gauge",
        "Alert mails in the outbox, one per recipient, by state.",
    );
    for state in ["pending", "sent", "failed"] {
        let n = health.outbox.get(state).copied().unwrap_or(0);
        out.sample("monitord_outbox_mails", &[("state", state)], n as f64);
    }
    out.family(
        "monitord_alerts",
        "gauge",
        "Alert rules (client, rule) not ok, by phase.",
    );
    for phase in ["pending", "firing"] {
        let n = clients
            .iter()
            .flat_map(|c| &c.alerts)
            .filter(|a| a.phase == phase)
            .count();
        out.sample("monitord_alerts", &[("phase", phase)], n as f64);
    }
    out.family(
        "monitord_database_bytes",
        "gauge",
        "Size of the SQLite database file in use (pages x page size).",
    );
    out.sample("monitord_database_bytes", &[], health.database_bytes as f64);
}

fn fleet(out: &mut Exposition, clients: &[ClientView]) {
    out.family(
        "monitord_client_up",
        "gauge",
        "1 when the client sends samples, 0 while it is down or was never seen.",
    );
    for c in clients {
        let up = c.latest.is_some() && c.state() != "down";
        out.sample(
            "monitord_client_up",
            &[("client", &c.name)],
            if up { 1.0 } else { 0.0 },
        );
    }
    type Value = fn(&monitor_core::Sample) -> Option<f64>;
    let gauges: [(&str, &str, Value); 5] = [
        (
            "monitord_client_last_sample_timestamp_seconds",
            "When the client's latest sample was collected (unix seconds).",
            |s| Some(s.ts as f64 / 1000.0),
        ),
        (
            "monitord_client_cpu_percent",
            "The client's CPU busy share in its latest sample (0-100).",
            |s| Some(s.cpu_percent),
        ),
        (
            "monitord_client_memory_percent",
            "The client's memory in use in its latest sample (0-100).",
            |s| Some(s.memory.percent),
        ),
        (
            "monitord_client_swap_percent",
            "The client's swap in use in its latest sample (0-100).",
            |s| s.swap.as_ref().map(|w| w.percent),
        ),
        (
            "monitord_client_load1",
            "The client's 1-minute load average in its latest sample.",
            |s| s.load.map(|l| l[0]),
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        for c in clients {
            if let Some(v) = c.latest.as_deref().and_then(value) {
                out.sample(name, &[("client", &c.name)], v);
            }
        }
    }
    out.family(
        "monitord_client_disk_used_percent",
        "gauge",
        "Each filesystem's use in the client's latest sample (0-100), as df shows it.",
    );
    for c in clients {
        for d in c.latest.iter().flat_map(|s| &s.disks) {
            out.sample(
                "monitord_client_disk_used_percent",
                &[("client", &c.name), ("mount", &d.mount)],
                d.percent(),
            );
        }
    }
    out.family(
        "monitord_alert_firing",
        "gauge",
        "1 while the client's alert rule fires, else 0 (rule \"down\": no samples).",
    );
    for c in clients {
        let mut rules = c.rules.clone();
        rules.push(HOST_DOWN_RULE.to_owned());
        for a in &c.alerts {
            if !rules.contains(&a.rule) {
                rules.push(a.rule.clone());
            }
        }
        for rule in &rules {
            let firing = c
                .alerts
                .iter()
                .any(|a| &a.rule == rule && a.phase == "firing");
            out.sample(
                "monitord_alert_firing",
                &[("client", &c.name), ("rule", rule)],
                if firing { 1.0 } else { 0.0 },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        let mut out = Exposition::default();
        out.sample("m", &[("mount", "/mnt/\"odd\"")], 1.5);
        assert_eq!(out.0, "m{mount=\"/mnt/\\\"odd\\\"\"} 1.5\n");
    }

    #[test]
    fn numbers_in_the_text_format() {
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(0.0025), "0.0025");
        assert_eq!(number(3.0), "3");
    }
}
