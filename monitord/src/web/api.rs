//! `/api/v1`: the read API of DESIGN.md ("The web listener"), JSON only, times in unix
//! milliseconds, errors as `{"error": "..."}` through one [`ApiError`].
//!
//! Here: `clients`, `clients/{name}/top`, `alerts`, `outbox`. The lead adds
//! `clients/{name}/series` and the alert incidents beside these (see [`configure`]). Not here:
//! SQL (see [`super::read`]), authentication (see [`super::auth`]).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde_json::{Value, json};

use super::WebState;
use super::read::{self, ClientView};
use crate::alerts::store::{OutboxRow, StateRow};
use crate::store::{StoreError, read as samples};

/// How far back `/api/v1/outbox` reaches.
pub const OUTBOX_DAYS: i64 = 7;
/// The most outbox rows one answer holds.
const OUTBOX_MAX: i64 = 10_000;

/// Why a request got no data. The body names the bad parameter; store details only go to
/// the log, never to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{name}: {why}")]
    BadParameter { name: &'static str, why: String },
    #[error("unknown client")]
    UnknownClient,
    #[error("no such path")]
    NotFound,
    #[error("the database cannot be read right now")]
    Store(#[from] StoreError),
    #[error("the database cannot be read right now")]
    Blocking,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownClient | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::Blocking => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Store(e) = self {
            tracing::warn!("web listener: a read failed: {e}");
        }
        HttpResponse::build(self.status_code())
            .content_type("application/json")
            .body(json!({ "error": self.to_string() }).to_string())
    }
}

/// The read API's routes, mounted at the listener's root.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/clients").route(web::get().to(clients)))
        .service(web::resource("/api/v1/clients/{name}/top").route(web::get().to(top)))
        // `clients/{name}/series` (history tiers) is added beside these.
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
    let snapshot = state.shared.snapshot();
    let views = state
        .read(move |conn| read::fleet(conn, &snapshot.config))
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
    // Checked now so a bad value is a 400 before incidents exist to filter.
    let _since = millis(&query, "since")?;
    let now = state.read(read::alert_states).await?;
    // TODO(lead): incidents table
    let incidents: Vec<Value> = Vec::new();
    Ok(ok_json(&json!({
        "now": now.iter().map(state_json).collect::<Vec<_>>(),
        "incidents": incidents,
    })))
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

/// Anything else on the listener: 404 in the API's shape.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
