//! `/alerts`: what fires and waits now, the incidents of the last [`DAYS`] days with how long
//! each lasted, and the outbox of the same days — mails waiting, retried, sent and refused
//! with the SMTP server's reason — so a broken mail setup shows before an outage needs it.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::format;
use super::page::{Frame, IncidentView, PageError, html, path_segment};
use crate::alerts::incidents;
use crate::web::read;
use crate::web::state::WebState;

/// How far back incidents and the outbox reach.
pub const DAYS: i64 = 7;
/// The most incidents and outbox rows the page lists.
const ROWS_MAX: i64 = 1000;

#[derive(Debug)]
struct NowView {
    client: String,
    href: String,
    rule: String,
    phase: String,
    since: String,
    lasted: String,
    value: String,
    detail: String,
}

#[derive(Debug)]
struct MailView {
    created: String,
    client: String,
    recipient: String,
    subject: String,
    /// `waiting` (not tried yet), `retrying`, `sent`, `refused`.
    state: &'static str,
    attempts: i32,
    error: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    frame: Frame,
    days: i64,
    now: Vec<NowView>,
    incidents: Vec<IncidentView>,
    outbox: Vec<MailView>,
    /// `(state, count)` of the outbox rows, counts above 0.
    outbox_counts: Vec<(&'static str, usize)>,
}

fn mail_state(status: &str, attempts: i32) -> &'static str {
    match status {
        "sent" => "sent",
        "failed" => "refused",
        _ if attempts > 0 => "retrying",
        _ => "waiting",
    }
}

/// `GET /alerts`.
pub async fn page(state: web::Data<WebState>) -> Result<HttpResponse, PageError> {
    let now = state.clock.now_ms();
    let since = now - DAYS * 86_400_000;
    let (states, incidents, outbox) = state
        .read(move |conn| {
            let states = read::alert_states(conn)?;
            let incidents = incidents::since(conn, since, ROWS_MAX)?;
            let outbox = read::outbox_since(conn, since, ROWS_MAX)?;
            Ok((states, incidents, outbox))
        })
        .await?;
    let href = |client: &str| format!("/clients/{}", path_segment(client));
    let mut now_rows: Vec<NowView> = states
        .iter()
        .filter(|s| s.phase == "firing" || s.phase == "pending")
        .map(|s| NowView {
            client: s.client.clone(),
            href: href(&s.client),
            rule: s.rule.clone(),
            phase: s.phase.clone(),
            since: format::time_short(s.since_ms),
            lasted: format::duration_s((now - s.since_ms) / 1000),
            value: format::rule_value(&s.rule, s.value),
            detail: s.detail.clone().unwrap_or_default(),
        })
        .collect();
    now_rows
        .sort_by(|a, b| (a.phase != "firing", &a.client).cmp(&(b.phase != "firing", &b.client)));
    let outbox: Vec<MailView> = outbox
        .iter()
        .map(|r| MailView {
            created: format::time_short(r.created_ms),
            client: r.client.clone(),
            recipient: r.recipient.clone(),
            subject: r.subject.clone(),
            state: mail_state(&r.status, r.attempts),
            attempts: r.attempts,
            error: r.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let outbox_counts = ["refused", "retrying", "waiting", "sent"]
        .iter()
        .map(|s| (*s, outbox.iter().filter(|m| m.state == *s).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    html(&AlertsPage {
        frame: Frame::new("Alerts", "alerts"),
        days: DAYS,
        now: now_rows,
        incidents: incidents
            .iter()
            .map(|i| IncidentView::new(i, now))
            .collect(),
        outbox,
        outbox_counts,
    })
}
