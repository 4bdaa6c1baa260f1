//! What every page shares: its [`Frame`] (templates/base.html), the [`PageError`] that
//! becomes an HTML error page, rendering ([`html`]), reading the query and the path, and an
//! incident's row ([`IncidentView`], on the alerts page and a host's).

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::{assets, format};
use crate::alerts::incidents::Incident;
use crate::web::error::ApiError;

/// What every page's frame (templates/base.html) needs.
#[derive(Debug, Clone)]
pub struct Frame {
    pub title: String,
    /// `fleet`, `host`, `alerts`: which navigation link is the current page.
    pub nav: &'static str,
    pub css: &'static str,
    pub js: &'static str,
}

impl Frame {
    pub fn new(title: impl Into<String>, nav: &'static str) -> Frame {
        Frame {
            title: title.into(),
            nav,
            css: assets::STYLE.url(),
            js: assets::SCRIPT.url(),
        }
    }
}

/// One incident as a row of a table: its client, rule, times, values, and the processes
/// that led when it fired.
#[derive(Debug)]
pub struct IncidentView {
    pub client: String,
    pub href: String,
    pub rule: String,
    pub fired: String,
    /// Or `firing now`.
    pub resolved: String,
    pub open: bool,
    pub lasted: String,
    pub value: String,
    pub peak: String,
    pub limit: String,
    /// The first five top processes at firing: `postgres (97% CPU, 1.2 GB)`, ….
    pub top: String,
}

impl IncidentView {
    pub fn new(i: &Incident, now: i64) -> IncidentView {
        let top = i
            .top()
            .iter()
            .take(5)
            .map(|p| {
                format!(
                    "{} ({:.0}% CPU, {})",
                    p.name,
                    p.cpu_percent,
                    format::bytes(p.rss)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        IncidentView {
            client: i.client.clone(),
            href: format!("/clients/{}", path_segment(&i.client)),
            rule: i.rule.clone(),
            fired: format::time_short(i.fired_ms),
            resolved: i
                .resolved_ms
                .map_or_else(|| "firing now".into(), format::time_short),
            open: i.resolved_ms.is_none(),
            lasted: format::duration_s((i.resolved_ms.unwrap_or(now) - i.fired_ms) / 1000),
            value: format::rule_value(&i.rule, i.value),
            peak: format::rule_value(&i.rule, i.peak),
            limit: i
                .limit_value
                .map(|l| format::rule_value(&i.rule, l))
                .unwrap_or_default(),
            top,
        }
    }
}

/// Why a page could not be shown: an HTML page with the status, never a store detail.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("There is no client named “{0}” in config.xml.")]
    UnknownClient(String),
    #[error("{0}")]
    BadParameter(String),
    #[error(
        "There is no page at {0}: the dashboard has the fleet (/), each host (/clients/NAME) and the alerts (/alerts)."
    )]
    NoSuchPage(String),
    #[error("The database cannot be read right now; try again in a moment.")]
    Unavailable,
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        match e {
            ApiError::BadParameter { name, why } => {
                PageError::BadParameter(format!("{name}: {why}"))
            }
            ApiError::UnknownClient => PageError::UnknownClient(String::new()),
            ApiError::NotFound => PageError::BadParameter("no such page".into()),
            ApiError::Store(e) => {
                tracing::warn!("dashboard: a read failed: {e}");
                PageError::Unavailable
            }
            ApiError::Blocking => PageError::Unavailable,
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    frame: Frame,
    status: u16,
    message: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::UnknownClient(_) | PageError::NoSuchPage(_) => StatusCode::NOT_FOUND,
            PageError::BadParameter(_) => StatusCode::BAD_REQUEST,
            PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let page = ErrorPage {
            frame: Frame::new(status.canonical_reason().unwrap_or("Error").to_owned(), ""),
            status: status.as_u16(),
            message: self.to_string(),
        };
        HttpResponse::build(status)
            .content_type(ContentType::html())
            .body(page.render().unwrap_or_else(|_| self.to_string()))
    }
}

/// A rendered template as a 200 `text/html` answer. Pages are never cached: they are the
/// fleet's state now.
pub fn html(page: &impl Template) -> Result<HttpResponse, PageError> {
    let body = page.render().map_err(|e| {
        tracing::error!("dashboard: a template failed to render: {e}");
        PageError::Unavailable
    })?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

/// A client's name as a URL path segment (`/clients/{this}`): unreserved bytes as they are,
/// everything else (`:`, `[`, `]` of `[v6]:port` names) percent-encoded.
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string value, percent-encoded.
pub fn query_value(text: &str) -> String {
    path_segment(text)
}

/// The value of `name` in a query, if given.
pub fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
