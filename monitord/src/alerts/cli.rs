//! The operator commands of alerts: `monitord alerts [--json]` (every configured rule's state
//! and the outbox) and `monitord send-test-mail ADDRESS` (checks `<smtp>` with one real delivery).
//! Both are safe while monitord runs: the listing only reads, the test mail bypasses the
//! outbox.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use diesel::prelude::*;
use monitor_core::config::{AlertKind, Config, Security, format_duration};
use monitor_core::time::Utc;

use super::machine::host_down_after;
use super::mail;
use super::measure::{format_limit, format_value};
use super::smtp::{DeliveryError, Outgoing, Session, from_address};
use super::tables::{self, HOST_DOWN_RULE};
use super::update::message_id;
use crate::commands::{Warnings, load_config};

/// Outbox rows shown besides the pending and failed ones.
const OUTBOX_SHOWN: i64 = 50;

/// What `monitord alerts` shows: every configured rule with its state, then the outbox.
/// `--json` prints it as one object with the database's own field names.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Listing {
    pub states: Vec<RuleView>,
    pub outbox: Vec<OutboxView>,
}

/// One (client, rule): `phase` is `ok` (no stored state), `pending` or `firing`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleView {
    pub client: String,
    pub rule: String,
    pub phase: String,
    /// When the limit was first crossed (unix ms); null when ok.
    pub since_ms: Option<i64>,
    /// The value at the last change (host down: seconds silent); null when ok.
    pub value: Option<f64>,
    /// What `value` is about, e.g. the disk's mount.
    pub detail: Option<String>,
    /// The rule as text, e.g. `> 90%` or `no sample for 3m`.
    pub condition: String,
    /// The threshold kind, for formatting `value`; none for host down.
    #[serde(skip)]
    pub kind: Option<AlertKind>,
}

/// One outbox row, without its body.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxView {
    pub id: i64,
    pub message_id: String,
    pub recipient: String,
    pub client: String,
    pub rule: String,
    pub subject: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub done_ms: Option<i64>,
}

/// Reads the states of every rule of `config` and the latest outbox rows, newest first.
pub fn listing(conn: &mut SqliteConnection, config: &Config) -> QueryResult<Listing> {
    let stored = tables::load_states(conn)?;
    let view = |client: &str, rule: &str, kind: Option<AlertKind>, condition: String| {
        let found = stored.iter().find(|s| s.client == client && s.rule == rule);
        RuleView {
            client: client.to_owned(),
            rule: rule.to_owned(),
            phase: found.map_or_else(|| "ok".to_owned(), |s| s.phase.clone()),
            since_ms: found.map(|s| s.since_ms),
            value: found.map(|s| s.value),
            detail: found.and_then(|s| s.detail.clone()),
            condition,
            kind,
        }
    };
    let mut states = Vec::new();
    for client in &config.clients {
        for rule in &client.alerts {
            let op = if rule.kind.fires_below() { "<" } else { ">" };
            let condition = format!("{op} {}", format_limit(rule.kind, rule.limit));
            states.push(view(
                &client.name,
                rule.kind.as_str(),
                Some(rule.kind),
                condition,
            ));
        }
        let down = format!(
            "no sample for {}",
            format_duration(host_down_after(client.interval))
        );
        states.push(view(&client.name, HOST_DOWN_RULE, None, down));
    }
    let outbox = tables::recent_outbox(conn, OUTBOX_SHOWN)?
        .into_iter()
        .map(|r| OutboxView {
            id: r.id,
            message_id: r.message_id,
            recipient: r.recipient,
            client: r.client,
            rule: r.rule,
            subject: r.subject,
            status: r.status,
            attempts: r.attempts,
            created_ms: r.created_ms,
            next_attempt_ms: r.next_attempt_ms,
            last_error: r.last_error,
            done_ms: r.done_ms,
        })
        .collect();
    Ok(Listing { states, outbox })
}

/// The text `monitord alerts` prints.
pub fn render_text(listing: &Listing) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<10} {:<8} {:<24} {:<10} RULE",
        "CLIENT", "ALERT", "STATE", "SINCE", "VALUE"
    );
    for r in &listing.states {
        let value = match (r.value, r.kind) {
            (None, _) => "-".to_owned(),
            (Some(v), Some(k)) => {
                let v = format_value(k, v);
                r.detail.as_ref().map_or(v.clone(), |d| format!("{d} {v}"))
            }
            (Some(v), None) => format!("{}s silent", v as i64),
        };
        let since = r
            .since_ms
            .map_or_else(|| "-".to_owned(), |ms| Utc::from_unix_ms(ms).to_string());
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<8} {since:<24} {value:<10} {}",
            r.client, r.rule, r.phase, r.condition
        );
    }
    let _ = writeln!(out);
    if listing.outbox.is_empty() {
        let _ = writeln!(out, "Outbox: empty.");
        return out;
    }
    let _ = writeln!(out, "Outbox (newest first):");
    let _ = writeln!(
        out,
        "{:<6} {:<8} {:<8} {:<24} {:<28} SUBJECT (LAST ERROR)",
        "ID", "STATUS", "ATTEMPTS", "WRITTEN", "TO"
    );
    for r in &listing.outbox {
        let error = match r.last_error.as_ref().filter(|_| r.status != "sent") {
            Some(e) => format!("  (last error: {e})"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<6} {:<8} {:<8} {:<24} {:<28} {}{error}",
            r.id,
            r.status,
            r.attempts,
            Utc::from_unix_ms(r.created_ms),
            r.recipient,
            r.subject
        );
    }
    out
}

/// Sends one test mail to `address` with the `<smtp>` settings, bypassing the outbox.
pub fn send_test_mail(config: &Config, address: &str) -> Result<String, DeliveryError> {
    let host = gethostname::gethostname()
        .to_str()
        .unwrap_or("localhost")
        .to_owned();
    let smtp = &config.smtp;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DeliveryError::Temporary(format!("cannot start a runtime: {e}")))?;
    let test = mail::test_mail(&host);
    let now = crate::clock::Clock::from_env().now_ms();
    let id = message_id(now, &host);
    runtime.block_on(async {
        let mut session = Session::connect(smtp, from_address(smtp, &host)).await?;
        session
            .deliver(&Outgoing {
                message_id: &id,
                created_ms: now,
                to: address,
                subject: &test.subject,
                body: &test.body,
            })
            .await?;
        session.quit().await;
        Ok::<(), DeliveryError>(())
    })?;
    let security = match smtp.security {
        Security::None => "no TLS",
        Security::StartTls => "STARTTLS",
        Security::Tls => "TLS",
    };
    Ok(format!(
        "sent a test mail to {address} through {}:{} ({security}), Message-ID {id}",
        smtp.host, smtp.port
    ))
}

/// `monitord alerts [--json]`: every configured rule's state, and the outbox.
pub fn alerts_command(config_path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, Warnings::Print)?;
    let mut conn = crate::store::open_read_only(&config.server.database)?;
    let listing = listing(&mut conn, &config).with_context(|| {
        format!(
            "cannot read alerts from {}",
            config.server.database.display()
        )
    })?;
    if json {
        println!("{}", serde_json::to_string(&listing)?);
    } else {
        print!("{}", render_text(&listing));
    }
    Ok(ExitCode::SUCCESS)
}

/// `monitord send-test-mail ADDRESS`: exit 0 once the SMTP server accepted it.
pub fn send_test_mail_command(config_path: &Path, address: &str) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path, Warnings::Print)?;
    let done = send_test_mail(&config, address).map_err(|e| {
        anyhow::anyhow!(
            "the test mail to {address} was not accepted: {e} (check <smtp> in {})",
            config_path.display()
        )
    })?;
    println!("{done}");
    Ok(ExitCode::SUCCESS)
}
