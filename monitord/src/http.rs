//! `PUT /v1/samples/{name}`: the only thing the ingest listener serves (the read-only web
//! listener is [`crate::web`], on its own socket).
//!
//! The checks run in the order DESIGN.md fixes, and each maps to one status: 413 body over
//! 64 KiB (from Content-Length before reading, and while reading a chunked body); 400 not an
//! envelope; 404 unknown client (after re-reading a changed config.xml); 401 bad tag; 400 not a
//! sample; 422 out of range; 503 + Retry-After when the writer is full or cannot commit; 200
//! once committed (`stored`, or `duplicate` for a replayed `(instance, seq)`).
//!
//! The body must arrive within [`BODY_TIMEOUT`] of the head (else 408 and the connection is
//! closed): actix bounds the time to send a head but not a body, and a client dribbling one
//! would hold its connection and a handler forever.
//!
//! Bodies are short JSON; the reason for the client is short and never holds paths, SQL or
//! keys. Every refusal is logged once, its message starting with the client's name and the
//! name also in a `client` field (`journalctl -u monitord CLIENT=web1`), up to
//! [`REFUSALS_PER_MINUTE`] a minute per client; past that they are counted and said in one
//! line a minute. The URL is not
//! authenticated, so a name that no client can have (see DESIGN.md's characters) is refused
//! before config.xml is consulted and logged escaped: it cannot forge a log line.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use actix_web::web::{self, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt as _;
use monitor_core::Envelope;
use monitor_core::config::is_client_name;
use monitor_core::envelope::MAX_BODY;
use monitor_core::sample::{Sample, SampleError};

use crate::alerts::skew::ClockWatch;
use crate::clock::Clock;
use crate::logging::{Budget, Skipped};
use crate::state::Shared;
use crate::store::writer::{Receipt, WriterHandle};
use crate::telemetry::RequestCounts;

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 2;

/// How long a body may take to arrive once the head has. A sample's body is at most 64 KiB
/// and agents write it together with the head, so a live client needs a fraction of this even
/// on a slow link (64 KiB in 10 s is 52 kbit/s); a client dribbling it is cut off after it.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub shared: Arc<Shared>,
    pub writer: WriterHandle,
    pub in_flight: InFlight,
    /// The acceptance window of a sample's `ts` is judged on it.
    pub clock: Clock,
    /// Every authentic sample's `ts` is told to the clock rule, stored or not.
    pub clock_watch: Arc<ClockWatch>,
    /// Answers by status, for `/metrics`.
    pub requests: Arc<RequestCounts>,
    /// How many refusals are logged one by one: see [`refused`].
    pub refusals: Arc<Budget>,
}

/// Requests between their head arriving and their answer, which SIGTERM waits for.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }
}

struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/samples/{name}", web::put().to(put_sample));
}

fn json(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}

fn error(status: StatusCode, reason: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(serde_json::json!({ "error": reason }).to_string())
}

fn unavailable(reason: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
        .content_type("application/json")
        .body(serde_json::json!({ "error": reason }).to_string())
}

fn too_large() -> HttpResponse {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body is larger than 65536 bytes",
    )
}

/// A client name from the URL as the log shows it: as it is when a client could have it,
/// escaped (Debug) otherwise, so a control character cannot forge a line.
fn logged_name(name: &str) -> Cow<'_, str> {
    if is_client_name(name) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("{name:?}"))
    }
}

/// Reads the body, refusing it as soon as it is known to exceed [`MAX_BODY`].
async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
) -> Result<BytesMut, HttpResponse> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.map_or(4096, |n| n as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| error(StatusCode::BAD_REQUEST, "could not read the body"))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn put_sample(
    req: HttpRequest,
    name: web::Path<String>,
    mut payload: web::Payload,
    ingest: web::Data<Ingest>,
) -> HttpResponse {
    let _in_flight = ingest.in_flight.enter();
    let name = name.into_inner();
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(&req, &mut payload)).await {
        Ok(Ok(body)) => body,
        Err(_) => {
            let shown = logged_name(&name);
            let peer = req
                .peer_addr()
                .map_or_else(|| "an unknown peer".to_owned(), |a| a.to_string());
            refused(
                &ingest,
                &name,
                408,
                format_args!(
                    "{shown}: refused a body that took over {} s, from {peer}: connection closed",
                    BODY_TIMEOUT.as_secs()
                ),
            );
            ingest.requests.record(408);
            // The rest of the body may still come: the connection cannot carry another request.
            return HttpResponse::RequestTimeout()
                .force_close()
                .content_type("application/json")
                .body(r#"{"error":"the body did not arrive in time"}"#);
        }
        Ok(Err(response)) => {
            let shown = logged_name(&name);
            let status = response.status().as_u16();
            let why = if status == 413 {
                "a body over 64 KiB"
            } else {
                "a body that could not be read"
            };
            refused(
                &ingest,
                &name,
                status,
                format_args!("{shown}: refused {why}"),
            );
            ingest.requests.record(status);
            return response;
        }
    };
    let (Ok(response) | Err(response)) = ingest_body(&ingest, &name, &body).await;
    ingest.requests.record(response.status().as_u16());
    response
}

/// Refusals logged one by one per client in a minute (and as many for all names not in
/// config.xml together); past that they are counted and said in one line a minute.
pub const REFUSALS_PER_MINUTE: u32 = 20;

/// Logs a refusal of a request for `name` (its message starts with the name as logged), in
/// the budget of that client, or of all names config.xml does not have: an unauthenticated
/// flood of bad requests costs the journal a line a minute, and a client refused over and
/// over (a wrong key after a master key change) a few lines a minute each.
fn refused(ingest: &Ingest, name: &str, status: u16, message: std::fmt::Arguments<'_>) {
    let known = is_client_name(name) && ingest.shared.snapshot().client(name).is_some();
    let key = if known { name } else { "" };
    let (allowed, ended) = ingest.refusals.allow(key, status);
    if let Some(skipped) = ended {
        log_skipped(&skipped);
    }
    if allowed {
        let shown = logged_name(name);
        tracing::warn!(client = %shown, status, "{message}");
    }
}

/// The line for refusals [`refused`] did not log one by one.
pub fn log_skipped(skipped: &Skipped) {
    let (n, statuses) = (skipped.total(), skipped.statuses());
    if skipped.key.is_empty() {
        tracing::warn!(
            "refused {n} more requests for names not in config.xml in the last minute, not \
             logged one by one ({statuses}); /metrics counts every answer"
        );
    } else {
        let name = &skipped.key;
        tracing::warn!(
            client = %name,
            "{name}: refused {n} more requests in the last minute, not logged one by one \
             ({statuses})"
        );
    }
}

/// Everything after the body is read; `Err` carries a refusal, already logged.
async fn ingest_body(
    ingest: &Ingest,
    name: &str,
    body: &[u8],
) -> Result<HttpResponse, HttpResponse> {
    let shown = logged_name(name);
    let envelope = Envelope::decode(body).map_err(|e| {
        refused(ingest, name, 400, format_args!("{shown}: refused: {e}"));
        error(StatusCode::BAD_REQUEST, &e.to_string())
    })?;

    if !is_client_name(name) {
        // Not worth a look at config.xml: no client can have this name.
        refused(
            ingest,
            name,
            404,
            format_args!("{shown}: refused a sample for a name no client can have"),
        );
        return Err(error(StatusCode::NOT_FOUND, "unknown client"));
    }
    let mut snapshot = ingest.shared.snapshot();
    if snapshot.client(name).is_none() && ingest.shared.reload_if_changed() {
        snapshot = ingest.shared.snapshot();
    }
    let Some((client, keys)) = snapshot.client(name) else {
        refused(
            ingest,
            name,
            404,
            format_args!("{name}: refused a sample: no such client in config.xml"),
        );
        return Err(error(StatusCode::NOT_FOUND, "unknown client"));
    };

    let plaintext = envelope.open(keys, name).map_err(|e| {
        refused(
            ingest,
            name,
            401,
            format_args!("{name}: refused: {e}: wrong key or tampered message"),
        );
        error(StatusCode::UNAUTHORIZED, &e.to_string())
    })?;
    let now = ingest.clock.now_ms();
    let sample = Sample::parse(&plaintext)
        .and_then(|s| {
            // Before validation: a sample refused for a `ts` far off says the most about
            // the client's clock.
            ingest.clock_watch.observe(name, s.ts, now);
            s.validate(now).map(|()| s)
        })
        .map_err(|e| {
            let status = match e {
                SampleError::Malformed(_) => StatusCode::BAD_REQUEST,
                SampleError::OutOfRange(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            refused(
                ingest,
                name,
                status.as_u16(),
                format_args!("{name}: refused sample: {e}"),
            );
            error(status, &e.to_string())
        })?;

    let client = client.clone();
    drop(snapshot);
    let Ok(done) = ingest.writer.submit(client, sample) else {
        tracing::debug!(client = %name, status = 503, "{name}: writer queue full");
        return Err(unavailable("overloaded, retry later"));
    };
    match done.await {
        Ok(Receipt::Stored) => Ok(json(StatusCode::OK, r#"{"status":"stored"}"#)),
        Ok(Receipt::Duplicate) => Ok(json(StatusCode::OK, r#"{"status":"duplicate"}"#)),
        Ok(Receipt::Unavailable) | Err(_) => {
            // The writer logs the failed batch once; one line per request would flood the log.
            tracing::debug!(client = %name, status = 503, "{name}: sample not stored: database unavailable");
            Err(unavailable("storage unavailable, retry later"))
        }
    }
}
