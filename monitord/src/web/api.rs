//! `/api/v1`: the read API of DESIGN.md ("The web listener"), JSON only, times in unix
//! milliseconds, errors as `{"error": "..."}` through one [`ApiError`].
//!
//! Here: `clients`, `clients/{name}/series` (from the history tier that fits),
//! `clients/{name}/top`, `alerts` (states now and incidents), `outbox`. Not here: SQL (see
//! [`super::read`], [`crate::store::history::series`]), authentication (see [`super::auth`]).

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::error::ApiError;
use super::read::{self, ClientView};
use super::state::WebState;
use crate::alerts::incidents::{self, Incident};
use crate::alerts::tables::{OutboxRow, StateRow};
use crate::store::history::series as history_series;
use crate::store::read as samples;

/// How far back `/api/v1/outbox` reaches.
pub const OUTBOX_DAYS: i64 = 7;
/// How far back `/api/v1/alerts` lists incidents without `since`.
const INCIDENT_DAYS: i64 = 7;
/// The most incidents one answer holds.
const INCIDENTS_MAX: i64 = 10_000;
/// Buckets of a series without `points`, and the most it may ask for.
const DEFAULT_POINTS: i64 = 600;
const MAX_POINTS: i64 = 5_000;
/// The most outbox rows one answer holds.
const OUTBOX_MAX: i64 = 10_000;

/// The read API's routes, mounted at the listener's root.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/clients").route(web::get().to(clients)))
        .service(web::resource("/api/v1/clients/{name}/series").route(web::get().to(series)))
        .service(web::resource("/api/v1/clients/{name}/top").route(web::get().to(top)))
        .service(web::resource("/api/v1/alerts").route(web::get().to(alerts)))
        .service(web::resource("/api/v1/outbox").route(web::get().to(outbox)));
}

fn ok_json(value: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(value.to_string())
}

/// A client as `/api/v1/clients` lists it.
pub fn client_json(c: &ClientView) -> Value {
    let latest = c.latest.as_ref().map(|s| {
        json!({
            "cpu_percent": s.cpu_percent,
            "memory_percent": s.memory.percent,
            "swap_percent": s.swap.as_ref().map(|w| w.percent),
            "disk_percent": s.fullest_disk().map(|d| d.percent()),
            "load1": s.load.map(|l| l[0]),
            "processes": s.processes,
            "uptime_s": s.uptime_s,
        })
    });
    json!({
        "name": c.name,
        "ip": c.ip,
        "interval_s": c.interval_s,
        "tags": c.tags,
        "state": c.state(),
        "last_ms": c.latest.as_ref().map(|s| s.ts),
        "latest": latest,
        "alerts": c.alerts.iter().map(|a| json!({
            "rule": a.rule,
            "phase": a.phase,
            "since_ms": a.since_ms,
            "value": a.value,
            "detail": a.detail,
        })).collect::<Vec<_>>(),
    })
}

async fn clients(state: web::Data<WebState>) -> Result<HttpResponse, ApiError> {
    let (snapshot, recent) = (state.shared.snapshot(), state.recent.clone());
    let views = state
        .read(move |conn| read::fleet(conn, &snapshot.config, &recent, None))
        .await?;
    Ok(ok_json(&Value::Array(
        views.iter().map(client_json).collect(),
    )))
}

async fn top(
    state: web::Data<WebState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let known = state.shared.snapshot().config.client(&name).is_some();
    let lookup = name.clone();
    let top = state
        .read(move |conn| samples::latest_top(conn, &lookup))
        .await?;
    match top {
        Some((ts, top)) => Ok(ok_json(&json!({ "ts": ts, "top": top }))),
        None if known => Ok(ok_json(&json!({ "ts": null, "top": [] }))),
        None => Err(ApiError::UnknownClient),
    }
}

/// `?since=MS` as unix milliseconds; absent: `default`.
fn millis(
    query: &web::Query<Vec<(String, String)>>,
    name: &'static str,
) -> Result<Option<i64>, ApiError> {
    let Some((_, text)) = query.iter().find(|(k, _)| k == name) else {
        return Ok(None);
    };
    text.parse::<i64>()
        .ok()
        .filter(|ms| *ms >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::BadParameter {
            name,
            why: format!(
                "{text:?} is not a time: expected unix milliseconds, e.g. since=1767225600000"
            ),
        })
}

fn state_json(a: &StateRow) -> Value {
    json!({
        "client": a.client,
        "rule": a.rule,
        "phase": a.phase,
        "since_ms": a.since_ms,
        "value": a.value,
        "detail": a.detail,
    })
}

async fn alerts(
    state: web::Data<WebState>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    // Default: the last 7 days of incidents (and every one still open).
    let since = millis(&query, "since")?
        .unwrap_or_else(|| state.clock.now_ms() - INCIDENT_DAYS * 24 * 3600 * 1000);
    let now = state.read(read::alert_states).await?;
    let incidents = state
        .read(move |conn| Ok(incidents::since(conn, since, INCIDENTS_MAX)?))
        .await?;
    Ok(ok_json(&json!({
        "now": now.iter().map(state_json).collect::<Vec<_>>(),
        "incidents": incidents.iter().map(incident_json).collect::<Vec<_>>(),
    })))
}

fn incident_json(i: &Incident) -> Value {
    json!({
        "client": i.client,
        "rule": i.rule,
        "fired_ms": i.fired_ms,
        "resolved_ms": i.resolved_ms,
        "value": i.value,
        "peak": i.peak,
        "limit": i.limit_value,
        "top": i.top(),
    })
}

/// `?from=MS&to=MS&points=N` (default: the last 24 h, 600 points, at most 5000).
async fn series(
    state: web::Data<WebState>,
    name: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let snapshot = state.shared.snapshot();
    let now = state.clock.now_ms();
    let to = millis(&query, "to")?.unwrap_or(now);
    let from = millis(&query, "from")?.unwrap_or(to - 24 * 3600 * 1000);
    if from >= to {
        return Err(ApiError::BadParameter {
            name: "from",
            why: format!("{from} is not before to={to}"),
        });
    }
    let points = match query.iter().find(|(k, _)| k == "points") {
        None => DEFAULT_POINTS,
        Some((_, text)) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_POINTS).contains(n))
            .ok_or_else(|| ApiError::BadParameter {
                name: "points",
                why: format!("{text:?} is not a number of buckets from 1 to {MAX_POINTS}"),
            })?,
    };
    let config = &snapshot.config;
    let known = config.client(&name).is_some();
    let (interval, history) = (config.interval_of(&name), config.history.clone());
    let lookup = name.clone();
    let found = state
        .read(move |conn| {
            history_series::series(conn, &lookup, interval, &history, (from, to, points), now)
        })
        .await?;
    match found {
        Some(series) => Ok(ok_json(&serde_json::to_value(&series).unwrap_or_default())),
        // Configured but never heard from: an empty series, not an error.
        None if known => Ok(ok_json(&json!({
            "name": name, "from": from, "to": to, "step_ms": null, "tier": null, "series": {},
        }))),
        None => Err(ApiError::UnknownClient),
    }
}

fn outbox_json(r: &OutboxRow) -> Value {
    json!({
        "id": r.id,
        "client": r.client,
        "rule": r.rule,
        "recipient": r.recipient,
        "subject": r.subject,
        "created_ms": r.created_ms,
        "attempts": r.attempts,
        "state": r.status,
        "error": r.last_error,
    })
}

async fn outbox(state: web::Data<WebState>) -> Result<HttpResponse, ApiError> {
    let since = state.clock.now_ms() - OUTBOX_DAYS * 24 * 3600 * 1000;
    let rows = state
        .read(move |conn| read::outbox_since(conn, since, OUTBOX_MAX))
        .await?;
    Ok(ok_json(&Value::Array(
        rows.iter().map(outbox_json).collect(),
    )))
}

/// Anything else on the listener: 404 in the API's shape under `/api/`, else the dashboard's
/// 404 page (a person typed or followed it).
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    use actix_web::ResponseError as _;
    let path = req.path();
    if path.starts_with("/api/") || path == "/api" {
        ApiError::NotFound.error_response()
    } else {
        crate::web::pages::page::PageError::NoSuchPage(path.to_owned()).error_response()
    }
}
