//! The operator commands of alerts: `monitord alerts` (every configured rule's state and the
//! outbox) and `monitord send-test-mail ADDRESS` (checks `<smtp>` with one real delivery).
//! Both are safe while monitord runs: the listing only reads, the test mail bypasses the
//! outbox.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use diesel::prelude::*;
use monitor_core::config::{AlertKind, Config, Security, format_duration};

use super::evaluate::{message_id, now_ms};
use super::machine::host_down_after;
use super::mail::{self, format_time};
use super::measure::{format_limit, format_value};
use super::smtp::{DeliveryError, Outgoing, Session, from_address};
use super::store::{self, HOST_DOWN_RULE, StateRow};

/// Outbox rows shown besides the pending and failed ones.
const OUTBOX_SHOWN: i64 = 50;

/// The text `monitord alerts` prints.
pub fn listing(conn: &mut SqliteConnection, config: &Config) -> QueryResult<String> {
    let states = store::load_states(conn)?;
    let find =
        |client: &str, rule: &str| states.iter().find(|s| s.client == client && s.rule == rule);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<10} {:<8} {:<24} {:<10} RULE",
        "CLIENT", "ALERT", "STATE", "SINCE", "VALUE"
    );
    for client in &config.clients {
        for rule in &client.alerts {
            let op = if rule.kind.fires_below() { "<" } else { ">" };
            let text = format!("{op} {}", format_limit(rule.kind, rule.limit));
            line(
                &mut out,
                &client.name,
                rule.kind.as_str(),
                find(&client.name, rule.kind.as_str()),
                Some(rule.kind),
                &text,
            );
        }
        let down = format!(
            "no sample for {}",
            format_duration(host_down_after(client.interval))
        );
        line(
            &mut out,
            &client.name,
            HOST_DOWN_RULE,
            find(&client.name, HOST_DOWN_RULE),
            None,
            &down,
        );
    }
    let rows = store::recent_outbox(conn, OUTBOX_SHOWN)?;
    let _ = writeln!(out);
    if rows.is_empty() {
        let _ = writeln!(out, "Outbox: empty.");
        return Ok(out);
    }
    let _ = writeln!(out, "Outbox (newest first):");
    let _ = writeln!(
        out,
        "{:<6} {:<8} {:<8} {:<24} {:<28} SUBJECT (LAST ERROR)",
        "ID", "STATUS", "ATTEMPTS", "WRITTEN", "TO"
    );
    for r in rows {
        let error = match r.last_error.filter(|_| r.status != "sent") {
            Some(e) => format!("  (last error: {e})"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<6} {:<8} {:<8} {:<24} {:<28} {}{error}",
            r.id,
            r.status,
            r.attempts,
            format_time(r.created_ms),
            r.recipient,
            r.subject
        );
    }
    Ok(out)
}

fn line(
    out: &mut String,
    client: &str,
    rule: &str,
    state: Option<&StateRow>,
    kind: Option<AlertKind>,
    text: &str,
) {
    let (phase, since, value) = match state {
        None => ("ok".to_owned(), "-".to_owned(), "-".to_owned()),
        Some(s) => {
            let value = match kind {
                Some(k) => {
                    let v = format_value(k, s.value);
                    s.detail.as_ref().map_or(v.clone(), |d| format!("{d} {v}"))
                }
                None => format!("{}s silent", s.value as i64),
            };
            (s.phase.clone(), format_time(s.since_ms), value)
        }
    };
    let _ = writeln!(
        out,
        "{client:<20} {rule:<10} {phase:<8} {since:<24} {value:<10} {text}"
    );
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
    let now = now_ms();
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

/// Loads config.xml for a command, printing every problem when it is invalid.
fn load_config(path: &Path) -> anyhow::Result<Config> {
    match monitor_core::config::load(path) {
        Ok(loaded) => Ok(loaded.config),
        Err(invalid) => {
            for e in &invalid.errors {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "{} has {} problem(s); fix them first (`monitord check-config`)",
                path.display(),
                invalid.errors.len()
            )
        }
    }
}

/// `monitord alerts`: every configured rule's state, and the outbox.
pub fn alerts_command(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path)?;
    let mut conn = crate::store::open_existing(&config.server.database)?;
    let text = listing(&mut conn, &config).with_context(|| {
        format!(
            "cannot read alerts from {}",
            config.server.database.display()
        )
    })?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `monitord send-test-mail ADDRESS`: exit 0 once the SMTP server accepted it.
pub fn send_test_mail_command(config_path: &Path, address: &str) -> anyhow::Result<ExitCode> {
    let config = load_config(config_path)?;
    let done = send_test_mail(&config, address).map_err(|e| {
        anyhow::anyhow!(
            "the test mail to {address} was not accepted: {e} (check <smtp> in {})",
            config_path.display()
        )
    })?;
    println!("{done}");
    Ok(ExitCode::SUCCESS)
}
